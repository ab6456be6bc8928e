//! Datagrams the kernel dropped before the collector read them.
//!
//! Why: HEP senders mirror SIP over UDP and never retransmit, so a burst
//! that overflows the socket's receive buffer loses SIP messages silently,
//! and with them calls. The loss is invisible to us (nothing arrives to be
//! rejected); only the kernel knows. Linux counts it per socket in the last
//! column of `/proc/net/udp` and `/proc/net/udp6`, keyed by the socket's
//! inode, which is the inode of its file descriptor. Elsewhere there is
//! nothing to read and the count stays unknown.

/// The inode of a socket (what `/proc/net/udp` lists it by).
#[cfg(target_os = "linux")]
pub fn socket_inode(s: &impl std::os::fd::AsRawFd) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let fd = s.as_raw_fd();
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(|m| m.ino())
}

#[cfg(not(target_os = "linux"))]
pub fn socket_inode<T>(_s: &T) -> Option<u64> {
    None
}

/// Drops counted for the socket with this inode, from the kernel's tables.
pub fn read(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .find_map(|t| in_table(&t, inode))
}

/// The `drops` column of the row whose `inode` column is `inode`, in the
/// text of `/proc/net/udp` (header, then one row per socket).
pub fn in_table(text: &str, inode: u64) -> Option<u64> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    // The header names "tx_queue rx_queue" and "tr tm->when" as two
    // columns each but rows fill them as one; find columns from the end.
    let from_end = |name: &str| -> Option<usize> {
        let i = header.iter().position(|h| *h == name)?;
        Some(header.len() - i)
    };
    let (inode_back, drops_back) = (from_end("inode")?, from_end("drops")?);
    lines.find_map(|row| {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let at = |back: usize| cols.len().checked_sub(back).and_then(|i| cols.get(i));
        let ino: u64 = at(inode_back)?.parse().ok()?;
        (ino == inode)
            .then(|| at(drops_back)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops             \n\
   99: 0100007F:2382 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 55501 2 0000000000000000 0        \n\
  100: 00000000:13C4 00000000:0000 07 00000000:00034000 00:00000000 00000000     0        0 55502 2 0000000000000000 1742     \n";

    #[test]
    fn reads_the_drops_of_one_socket() {
        assert_eq!(in_table(TABLE, 55502), Some(1742));
        assert_eq!(in_table(TABLE, 55501), Some(0));
        assert_eq!(in_table(TABLE, 1), None);
        assert_eq!(in_table("", 1), None);
        assert_eq!(in_table("garbage\nmore garbage", 1), None);
    }

    /// The real kernel table: a socket nobody reads, flooded, shows drops.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_counts_drops_of_an_unread_socket() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = socket_inode(&rx).expect("inode");
        if std::fs::read_to_string("/proc/net/udp").is_err() {
            eprintln!("*** SKIPPED: /proc/net/udp is not readable here ***");
            return;
        }
        assert_eq!(read(inode), Some(0));
        let payload = [0u8; 1200];
        for _ in 0..20_000 {
            let _ = tx.send_to(&payload, to);
        }
        let n = read(inode).expect("listed");
        assert!(n > 0, "an unread socket flooded with 24 MB dropped nothing");
    }
}
