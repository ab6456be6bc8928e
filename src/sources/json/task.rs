//! Live JSON-lines sources: a file (read once, or followed as it grows), a
//! TCP listener that accepts producers, or a TCP client that connects to a
//! producer and reconnects with backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::{TcpListener, TcpStream};

use super::decode::{Decoded, LineDecoder};
use crate::config::JsonSourceConfig;
use crate::sources::backoff::Backoff;
use crate::sources::{Envelope, Inbox, RejectCounter, SourceHealth};

/// Everything a running source needs to report.
#[derive(Clone)]
pub struct SourceCtx {
    pub name: Arc<str>,
    pub inbox: Inbox,
    pub health: Arc<SourceHealth>,
    pub rejects: Arc<RejectCounter>,
}

impl SourceCtx {
    /// Sends decoded lines to the engine and counts the bad ones. Returns
    /// false when the engine has stopped.
    pub async fn deliver(&self, context: &str, decoded: &mut Vec<Decoded>) -> bool {
        self.deliver_at(context, decoded, None).await
    }

    /// [`SourceCtx::deliver`], telling the engine where in a re-readable
    /// input these events end (see [`Envelope::Positioned`]).
    pub async fn deliver_at(
        &self,
        context: &str,
        decoded: &mut Vec<Decoded>,
        position: Option<crate::state::SourcePosition>,
    ) -> bool {
        let mut events = Vec::with_capacity(decoded.len());
        for (line, r) in decoded.drain(..) {
            match r {
                Ok(ev) => events.push(ev),
                Err(rej) => {
                    let at = format!("{context}:{line}");
                    self.rejects.record(&self.name, &at, &rej);
                }
            }
        }
        if events.is_empty() {
            return true;
        }
        self.health.add_events(events.len() as u64);
        let source = self.name.clone();
        let env = match position {
            Some(position) => Envelope::Positioned {
                source,
                events,
                position,
            },
            None => Envelope::Batch { source, events },
        };
        self.inbox.send(env).await.is_ok()
    }
}

pub fn spawn(cfg: JsonSourceConfig, ctx: SourceCtx) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Some(path) = cfg.path.clone() {
            read_file(&path, cfg.follow, cfg.resume, &ctx).await;
        } else if let Some(listen) = cfg.listen.clone() {
            listen_tcp(&listen, &ctx).await;
        } else if let Some(addr) = cfg.address.clone() {
            connect_tcp(&addr, &ctx).await;
        }
    })
}

/// Reads an event file. After a restart the engine may already hold its
/// events up to `resume` (restored from a checkpoint): reading starts there
/// when the file is the same one (inode) and not shorter, else at 0.
async fn read_file(
    path: &str,
    follow: bool,
    resume: Option<crate::state::SourcePosition>,
    ctx: &SourceCtx,
) {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => {
            ctx.health.set_error(format!("cannot open {path}: {e}"));
            tracing::error!(source = %ctx.name, path, error = %e, "cannot open event file");
            return;
        }
    };
    let (ino, len) = match file.metadata().await {
        Ok(m) => (file_id(&m), m.len()),
        Err(_) => (0, 0),
    };
    let mut read_pos = 0u64;
    if let Some(p) = resume.filter(|p| p.file == ino && p.offset <= len)
        && file.seek(std::io::SeekFrom::Start(p.offset)).await.is_ok()
    {
        tracing::info!(source = %ctx.name, path, offset = p.offset, "resuming the event file where the restored figures end");
        read_pos = p.offset;
    }
    ctx.health.set_connected(true);
    ctx.health.set_synced(true);
    let mut dec = LineDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        match file.read(&mut buf).await {
            Ok(0) if follow => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(0) => break,
            Ok(n) => {
                read_pos += n as u64;
                dec.feed(&buf[..n], &mut out);
                let position = dec.pending().map(|p| crate::state::SourcePosition {
                    file: ino,
                    offset: read_pos - p as u64,
                });
                if !ctx.deliver_at(path, &mut out, position).await {
                    return;
                }
            }
            Err(e) => {
                ctx.health.set_error(format!("read {path}: {e}"));
                tracing::error!(source = %ctx.name, path, error = %e, "read failed");
                break;
            }
        }
    }
    dec.finish(&mut out);
    let end = crate::state::SourcePosition {
        file: ino,
        offset: read_pos,
    };
    ctx.deliver_at(path, &mut out, Some(end)).await;
}

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.ino()
}

#[cfg(not(unix))]
fn file_id(_m: &std::fs::Metadata) -> u64 {
    0
}

async fn listen_tcp(addr: &str, ctx: &SourceCtx) {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            ctx.health
                .set_error(format!("cannot listen on {addr}: {e}"));
            tracing::error!(source = %ctx.name, addr, error = %e, "cannot listen");
            return;
        }
    };
    ctx.health.set_connected(true);
    ctx.health.set_synced(true);
    tracing::info!(source = %ctx.name, addr, "accepting JSON-lines producers");
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let _ = read_stream(stream, &format!("tcp {peer}"), &ctx).await;
                });
            }
            Err(e) => {
                tracing::warn!(source = %ctx.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connect_tcp(addr: &str, ctx: &SourceCtx) {
    let mut backoff = Backoff::new();
    loop {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                ctx.health.set_connected(true);
                ctx.health.set_synced(true);
                backoff.reset();
                tracing::info!(source = %ctx.name, addr, "connected");
                let r = read_stream(stream, &format!("tcp {addr}"), ctx).await;
                ctx.health.set_connected(false);
                if r.is_err() {
                    return;
                }
                ctx.health.set_error("connection closed");
            }
            Err(e) => {
                ctx.health.set_connected(false);
                ctx.health.set_error(format!("connect {addr}: {e}"));
            }
        }
        let d = backoff.next_delay();
        tracing::warn!(source = %ctx.name, addr, retry_in = ?d, "disconnected; reconnecting");
        tokio::time::sleep(d).await;
    }
}

/// Reads lines until EOF. `Err` means the engine is gone.
async fn read_stream(mut s: TcpStream, context: &str, ctx: &SourceCtx) -> Result<(), ()> {
    let mut dec = LineDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                dec.feed(&buf[..n], &mut out);
                if !ctx.deliver(context, &mut out).await {
                    return Err(());
                }
            }
        }
    }
    dec.finish(&mut out);
    if ctx.deliver(context, &mut out).await {
        Ok(())
    } else {
        Err(())
    }
}
