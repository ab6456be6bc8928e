//! The read position of a tail run on its own (no engine checkpoint to
//! hold it): a small file beside the log, written by rename so a crash
//! leaves the old one or the new one, never half of one.

use std::path::{Path, PathBuf};

use crate::config::QueueLogConfig;

impl QueueLogConfig {
    /// The position file: `<state_dir or dir of path>/.<file name>.acdmon-pos`.
    pub fn position_file(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "queue_log".into());
        let dir = self
            .state_dir
            .clone()
            .or_else(|| self.path.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        dir.join(format!(".{name}.acdmon-pos"))
    }
}

/// The saved read position: which file (inode) and how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Position {
    pub(super) inode: u64,
    pub(super) offset: u64,
}

pub(super) async fn load_position(p: &Path) -> Option<Position> {
    let s = tokio::fs::read_to_string(p).await.ok()?;
    let mut it = s.split_whitespace();
    let inode = it.next()?.parse().ok()?;
    let offset = it.next()?.parse().ok()?;
    Some(Position { inode, offset })
}

pub(super) async fn save_position(p: &Path, pos: Position) -> std::io::Result<()> {
    let tmp = p.with_extension("tmp");
    tokio::fs::write(&tmp, format!("{} {}\n", pos.inode, pos.offset)).await?;
    tokio::fs::rename(&tmp, p).await
}

#[cfg(unix)]
pub(super) fn inode(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.ino()
}

#[cfg(not(unix))]
pub(super) fn inode(_m: &std::fs::Metadata) -> u64 {
    0
}
