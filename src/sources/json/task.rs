//! Live JSON-lines sources: a file (read once, or followed as it grows), a
//! TCP listener that accepts producers, or a TCP client that connects to a
//! producer and reconnects with backoff.
//!
//! The listener is a door into the engine, so it can be locked: with a
//! `token`, a producer's first line must be `AUTH <token>` (a line, because
//! the feed is lines: `nc` and a shell script can send it). A bound on
//! producers connected at once keeps a connection flood from exhausting
//! file descriptors; refusals are counted like bad lines.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::decode::LineDecoder;
use crate::config::JsonSourceConfig;
use crate::sources::backoff::Backoff;
use crate::sources::{Reject, RejectReason, SourceCtx, Started};

/// Starts a json source. After a restart a file source resumes where the
/// engine's figures end (`ctx.restart`).
pub fn spawn(cfg: JsonSourceConfig, ctx: SourceCtx) -> Started {
    Started::task(tokio::spawn(async move {
        if let Some(path) = cfg.path.clone() {
            let resume = ctx.restart.and_then(|r| r.applied);
            read_file(&path, cfg.follow, resume, &ctx).await;
        } else if let Some(listen) = cfg.listen.clone() {
            let gate = Gate {
                token: cfg.token.clone(),
                max_connections: cfg
                    .max_connections
                    .unwrap_or(crate::config::JSON_MAX_CONNECTIONS),
            };
            listen_tcp(&listen, gate, &ctx).await;
        } else if let Some(addr) = cfg.address.clone() {
            connect_tcp(&addr, &ctx).await;
        }
    }))
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

/// Who may feed a `listen` source: an optional token (first line
/// `AUTH <token>`) and a bound on producers connected at once.
struct Gate {
    token: Option<crate::config::Secret>,
    max_connections: usize,
}

/// How long a producer has to send its `AUTH` line.
const AUTH_WITHIN: Duration = Duration::from_secs(10);
/// Longest `AUTH` line read before giving up on it.
const AUTH_LINE_MAX: usize = 1024;

/// Reads the first line and checks it is `AUTH <token>`. Returns the bytes
/// read after that line (the start of the feed), or why the producer is
/// refused (`None`: it closed without sending anything, as a load
/// balancer's TCP check does; not counted).
async fn authenticate(
    s: &mut TcpStream,
    token: &crate::config::Secret,
) -> Result<Vec<u8>, Option<Reject>> {
    let refuse = |why: String| Some(Reject::new(RejectReason::Unauthorized, why));
    let mut got = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    let read_line = async {
        loop {
            if let Some(pos) = got.iter().position(|&b| b == b'\n') {
                return Ok(pos);
            }
            if got.len() > AUTH_LINE_MAX {
                return Err(refuse("first line is not `AUTH <token>`".into()));
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) if got.is_empty() => return Err(None),
                Ok(0) | Err(_) => return Err(refuse("closed before `AUTH <token>`".into())),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let pos = match tokio::time::timeout(AUTH_WITHIN, read_line).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(refuse(format!(
                "no `AUTH <token>` line within {AUTH_WITHIN:?}"
            )));
        }
    };
    let line = String::from_utf8_lossy(&got[..pos]);
    match line.trim().strip_prefix("AUTH ").map(str::trim) {
        Some(t) if crate::config::ct_eq(t.as_bytes(), token.expose().as_bytes()) => {
            Ok(got[pos + 1..].to_vec())
        }
        Some(_) => Err(refuse("wrong token".into())),
        None => Err(refuse("first line is not `AUTH <token>`".into())),
    }
}

/// Tells a refused producer why and closes, within a second. Closing with
/// its lines unread would send a reset that can discard the answer, so
/// the answer is followed by a FIN and what the producer still sends is
/// read and dropped until it closes too.
async fn refuse(mut stream: TcpStream, why: &'static str) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(why.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

async fn listen_tcp(addr: &str, gate: Gate, ctx: &SourceCtx) {
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
    tracing::info!(
        source = %ctx.name,
        addr,
        auth = gate.token.is_some(),
        max_connections = gate.max_connections,
        "accepting JSON-lines producers"
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(gate.max_connections));
    let token = gate.token.map(Arc::new);
    loop {
        match listener.accept().await {
            Ok((mut stream, peer)) => {
                let context = format!("tcp {peer}");
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    let rej = Reject::new(
                        RejectReason::ConnectionLimit,
                        format!("{} producers already connected", gate.max_connections),
                    );
                    ctx.rejects.record(&ctx.name, &context, &rej);
                    tokio::spawn(refuse(stream, "ERR too many connections\n"));
                    continue;
                };
                let ctx = ctx.clone();
                let token = token.clone();
                tokio::spawn(async move {
                    let slot = slot;
                    let head = match &token {
                        None => Vec::new(),
                        Some(t) => match authenticate(&mut stream, t).await {
                            Ok(head) => head,
                            Err(rej) => {
                                if let Some(rej) = rej {
                                    ctx.rejects.record(&ctx.name, &context, &rej);
                                }
                                // A refused producer does not hold a slot.
                                drop(slot);
                                refuse(stream, "ERR unauthorized\n").await;
                                return;
                            }
                        },
                    };
                    let _ = read_stream_from(stream, head, &context, &ctx).await;
                    drop(slot);
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
async fn read_stream(s: TcpStream, context: &str, ctx: &SourceCtx) -> Result<(), ()> {
    read_stream_from(s, Vec::new(), context, ctx).await
}

/// [`read_stream`], starting with bytes already read (after an `AUTH` line).
async fn read_stream_from(
    mut s: TcpStream,
    head: Vec<u8>,
    context: &str,
    ctx: &SourceCtx,
) -> Result<(), ()> {
    // Names this connection's lines in cluster mode (see
    // `SourceCtx::deliver_from`): unique to the connection, so it tells a
    // retried publish from new lines, not one producer's resend on a new
    // connection from the first send.
    let peer = context.strip_prefix("tcp ").unwrap_or(context);
    let conn = format!("{peer}:{}", crate::time::Ts::now().0);
    let mut dec = LineDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    if !head.is_empty() {
        dec.feed(&head, &mut out);
        if !ctx.deliver_from(context, &mut out, &conn).await {
            return Err(());
        }
    }
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                dec.feed(&buf[..n], &mut out);
                if !ctx.deliver_from(context, &mut out, &conn).await {
                    return Err(());
                }
            }
        }
    }
    dec.finish(&mut out);
    if ctx.deliver_from(context, &mut out, &conn).await {
        Ok(())
    } else {
        Err(())
    }
}
