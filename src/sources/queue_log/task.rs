//! The tail: polls the file through `tokio::fs`, follows rotation and
//! truncation, and hands decoded events to the engine with the position
//! they end at (see the module doc of [`super`]).

use std::io::SeekFrom;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::position::{Position, inode, load_position, save_position};
use super::{LineSplitter, QueueLogConfig, StartAt};
use crate::sources::{Envelope, SourceCtx, Started};
use crate::time::Ts;

/// Spawns the tail task.
pub fn spawn(cfg: QueueLogConfig, ctx: SourceCtx) -> Started {
    Started::task(tokio::spawn(tail(cfg, ctx)))
}

struct Open {
    file: tokio::fs::File,
    inode: u64,
    /// Offset of the end of the last complete line handed on.
    offset: u64,
    /// Where the next read starts.
    read_pos: u64,
}

async fn tail(cfg: QueueLogConfig, ctx: SourceCtx) {
    let (name, inbox, health, rejects) = (&ctx.name, &ctx.inbox, &ctx.health, &ctx.rejects);
    let mut decoder = match cfg.decoder(&ctx.agents) {
        Ok(d) => d,
        Err(e) => {
            health.set_error(e.clone());
            tracing::error!(source = %name, error = %e, "queue_log source not started");
            return;
        }
    };
    let posfile = cfg.position_file();
    let poll = cfg.poll_interval.0.max(Duration::from_millis(10));
    let mut restart = ctx.restart;
    let mut saved = match restart {
        Some(_) => None,
        None => load_position(&posfile).await,
    };
    // Set at a restart (see [`Restart`]): lines before this offset are
    // decoded for the decoder's state only; events before `min_ts` dropped.
    let mut discard_until = 0u64;
    let mut min_ts: Option<Ts> = None;
    let mut open: Option<Open> = None;
    let mut lines = LineSplitter::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Vec::new();
    let label = cfg.path.display().to_string();
    loop {
        if open.is_none() {
            let opened = match tokio::fs::File::open(&cfg.path).await {
                Ok(f) => f.metadata().await.map(|m| (f, m)),
                Err(e) => Err(e),
            };
            match opened {
                Ok((mut file, meta)) => {
                    let ino = inode(&meta);
                    let offset = if let Some(r) = restart.take() {
                        match r.applied {
                            Some(p) if p.file == ino && p.offset <= meta.len() => {
                                discard_until = p.offset;
                            }
                            _ if cfg.start_at == StartAt::End => min_ts = Some(r.today_start),
                            _ => {}
                        }
                        tracing::info!(source = %name, path = %label, resume_at = discard_until, today_from = ?min_ts.map(|t| t.to_string()), "re-reading queue_log from its start after a restart");
                        0
                    } else {
                        match saved.take() {
                            Some(p) if p.inode == ino && p.offset <= meta.len() => p.offset,
                            // A different file than the one we stopped in: it was
                            // rotated while we were away; all of it is new.
                            Some(_) => 0,
                            None => match cfg.start_at {
                                StartAt::End => meta.len(),
                                StartAt::Beginning => 0,
                            },
                        }
                    };
                    if file.seek(SeekFrom::Start(offset)).await.is_ok() {
                        tracing::info!(source = %name, path = %label, offset, "tailing queue_log");
                        lines = LineSplitter::default();
                        open = Some(Open {
                            file,
                            inode: ino,
                            offset,
                            read_pos: offset,
                        });
                        health.set_connected(true);
                    }
                }
                Err(e) => {
                    health.set_connected(false);
                    health.set_error(format!("{label}: {e}"));
                }
            }
        }
        let Some(o) = open.as_mut() else {
            tokio::time::sleep(poll).await;
            continue;
        };
        // Read what is there.
        let mut progressed = false;
        loop {
            let n = match o.file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    health.set_error(format!("{label}: {e}"));
                    break;
                }
            };
            if n == 0 {
                break;
            }
            progressed = true;
            let mut chunk = &buf[..n];
            if o.read_pos < discard_until {
                // Already applied before the restart: decoder state only
                // (its rejects were counted then).
                let k = ((discard_until - o.read_pos) as usize).min(n);
                lines.feed(&chunk[..k], |_, l| {
                    if let Ok(line) = l {
                        let _ = decoder.decode_line(line, &mut events);
                    }
                });
                events.clear();
                chunk = &chunk[k..];
            }
            o.read_pos += n as u64;
            lines.feed(chunk, |line_no, l| match l {
                Ok(line) => {
                    if let Err(r) = decoder.decode_line(line, &mut events) {
                        rejects.record(name, &format_args!("{label}:{line_no}"), &r);
                    }
                }
                Err(r) => rejects.record(name, &format_args!("{label}:{line_no}"), &r),
            });
            if let Some(t) = min_ts {
                events.retain(|e| e.ts >= t);
            }
            // Saved positions point past the last complete line, so a
            // restart never reads half a line.
            o.offset = o.read_pos - lines.pending() as u64;
            if !events.is_empty() {
                health.add_events(events.len() as u64);
                let batch = std::mem::take(&mut events);
                if inbox
                    .send(Envelope::Positioned {
                        source: name.clone(),
                        events: batch,
                        position: crate::state::SourcePosition {
                            file: o.inode,
                            offset: o.offset,
                        },
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        if progressed {
            let _ = save_position(
                &posfile,
                Position {
                    inode: o.inode,
                    offset: o.offset,
                },
            )
            .await;
        }
        health.set_synced(true);
        tokio::time::sleep(poll).await;
        // Rotation or truncation?
        match tokio::fs::metadata(&cfg.path).await {
            Ok(meta) if inode(&meta) != o.inode => {
                // Finish the old file first (Asterisk may have written its
                // last lines before the rename), then switch.
                let mut rest = Vec::new();
                let _ = o.file.read_to_end(&mut rest).await;
                lines.feed(&rest, |line_no, l| match l {
                    Ok(line) => {
                        if let Err(r) = decoder.decode_line(line, &mut events) {
                            rejects.record(name, &format_args!("{label}:{line_no}"), &r);
                        }
                    }
                    Err(r) => rejects.record(name, &format_args!("{label}:{line_no}"), &r),
                });
                lines.finish(|line_no, l| {
                    if let Ok(line) = l
                        && let Err(r) = decoder.decode_line(line, &mut events)
                    {
                        rejects.record(name, &format_args!("{label}:{line_no}"), &r);
                    }
                });
                if let Some(t) = min_ts {
                    events.retain(|e| e.ts >= t);
                }
                if !events.is_empty() {
                    let batch = std::mem::take(&mut events);
                    if inbox
                        .send(Envelope::Batch {
                            source: name.clone(),
                            events: batch,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                tracing::info!(source = %name, path = %label, "queue_log rotated; reading the new file");
                discard_until = 0;
                min_ts = None;
                saved = Some(Position {
                    inode: inode(&meta),
                    offset: 0,
                });
                open = None;
            }
            Ok(meta) if meta.len() < o.offset => {
                tracing::info!(source = %name, path = %label, "queue_log truncated; reading from the start");
                discard_until = 0;
                min_ts = None;
                let _ = o.file.seek(SeekFrom::Start(0)).await;
                o.offset = 0;
                o.read_pos = 0;
                lines = LineSplitter::default();
                let _ = save_position(
                    &posfile,
                    Position {
                        inode: o.inode,
                        offset: 0,
                    },
                )
                .await;
            }
            Ok(_) => {}
            Err(_) => {
                // Moved away and not recreated yet: keep reading the old
                // handle until the new file appears.
            }
        }
        if inbox.is_closed() {
            return;
        }
    }
}
