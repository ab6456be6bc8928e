//! Bytes to lines, bounded, for the tail and the replay alike.

use super::MAX_LINE;
use crate::sources::{Reject, RejectReason};

/// Splits a byte stream into lines, bounded: a line longer than
/// [`MAX_LINE`] is skipped (one rejection) without being buffered whole.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    skipping: bool,
    line: u64,
}

impl LineSplitter {
    /// Calls `f(line_number, line)` for each complete line in `bytes`.
    pub fn feed(&mut self, bytes: &[u8], mut f: impl FnMut(u64, Result<&[u8], Reject>)) {
        let mut rest = bytes;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            self.line += 1;
            let (head, tail) = (&rest[..i], &rest[i + 1..]);
            rest = tail;
            if self.skipping {
                self.skipping = false;
                self.partial.clear();
                continue;
            }
            if self.partial.is_empty() {
                f(self.line, Ok(head));
            } else {
                self.partial.extend_from_slice(head);
                let line = std::mem::take(&mut self.partial);
                f(self.line, Ok(&line));
            }
        }
        if self.skipping {
            return;
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_LINE {
            self.partial.clear();
            self.skipping = true;
            f(
                self.line + 1,
                Err(Reject::new(
                    RejectReason::LineTooLong,
                    format!("longer than {MAX_LINE} bytes; skipped"),
                )),
            );
        }
    }

    /// The last line, if the input did not end with a line end.
    pub fn finish(&mut self, mut f: impl FnMut(u64, Result<&[u8], Reject>)) {
        if !self.skipping && !self.partial.is_empty() {
            self.line += 1;
            let line = std::mem::take(&mut self.partial);
            f(self.line, Ok(&line));
        }
        self.skipping = false;
    }

    /// Bytes held for an unfinished line.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::Reject;

    #[test]
    fn line_splitter_bounds_long_lines_and_keeps_partials() {
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        let mut cb = |n: u64, l: Result<&[u8], Reject>| {
            got.push(match l {
                Ok(l) => format!("{n}:{}", String::from_utf8_lossy(l)),
                Err(r) => format!("{n}:{}", r.reason),
            })
        };
        s.feed(b"a|b\nc", &mut cb);
        s.feed(b"d\n", &mut cb);
        s.feed(&vec![b'x'; MAX_LINE + 10], &mut cb);
        s.feed(b"xx\nlast", &mut cb);
        s.finish(&mut cb);
        assert_eq!(got, ["1:a|b", "2:cd", "3:line_too_long", "4:last"]);
    }
}
