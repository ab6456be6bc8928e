//! Live JSON-lines sources: a file (read once, or followed as it grows), a
//! TCP listener that accepts producers, or a TCP client that connects to a
//! producer and reconnects with backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
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
        self.inbox
            .send(Envelope::Batch {
                source: self.name.clone(),
                events,
            })
            .await
            .is_ok()
    }
}

pub fn spawn(cfg: JsonSourceConfig, ctx: SourceCtx) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Some(path) = cfg.path.clone() {
            read_file(&path, cfg.follow, &ctx).await;
        } else if let Some(listen) = cfg.listen.clone() {
            listen_tcp(&listen, &ctx).await;
        } else if let Some(addr) = cfg.address.clone() {
            connect_tcp(&addr, &ctx).await;
        }
    })
}

async fn read_file(path: &str, follow: bool, ctx: &SourceCtx) {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => {
            ctx.health.set_error(format!("cannot open {path}: {e}"));
            tracing::error!(source = %ctx.name, path, error = %e, "cannot open event file");
            return;
        }
    };
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
                dec.feed(&buf[..n], &mut out);
                if !ctx.deliver(path, &mut out).await {
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
    ctx.deliver(path, &mut out).await;
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
