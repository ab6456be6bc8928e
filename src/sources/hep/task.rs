//! The live HEP collector: a UDP socket and an optional TCP listener feeding
//! one [`HepIngest`] owned by a single task (dialog state needs one owner,
//! and one core handles well over 200k messages/s).
//!
//! Backpressure: TCP connections hand framed packets over a bounded channel,
//! so a slow engine slows TCP senders down. UDP cannot be slowed: while the
//! engine inbox is full the socket is not read and the kernel drops
//! datagrams, which is HEP's own delivery contract. Health: `connected` and
//! `synced` mean "listening" (a collector has no upstream to resync from);
//! a failed bind is retried with exponential backoff and jitter.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::packet::{Limits, StreamFramer};
use super::{HepIngest, HepSourceConfig};
use crate::event::Event;
use crate::sources::backoff::Backoff;
use crate::sources::{Envelope, Origin, Reject, RejectCounter, RejectReason, SourceCtx, Started};
use crate::time::Ts;

/// Datagrams drained per wake-up before events are handed over as one batch.
const BATCH_DATAGRAMS: usize = 256;
/// Framed TCP packets in flight from connection tasks to the ingest task.
const TCP_QUEUE: usize = 1024;
/// At most this many TCP senders at once; more are refused.
const MAX_TCP_CONNECTIONS: usize = 256;

/// The bound sockets of a HEP source.
#[derive(Debug)]
pub struct Listeners {
    udp: Option<UdpSocket>,
    tcp: Option<TcpListener>,
}

impl Listeners {
    /// Binds the configured addresses.
    pub async fn bind(cfg: &HepSourceConfig) -> std::io::Result<Listeners> {
        let udp = match cfg.listen_udp.trim() {
            "" => None,
            a => Some(bind_udp(a).await?),
        };
        let tcp = match cfg.listen_tcp.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => Some(TcpListener::bind(a).await?),
        };
        Ok(Listeners { udp, tcp })
    }

    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|s| s.local_addr().ok())
    }
}

/// Asked-for kernel receive buffer of the UDP socket: HEP senders do not
/// retransmit, so bursts must fit in the kernel while a batch is handed to
/// the engine. The kernel caps it at `net.core.rmem_max` (often 208 KB by
/// default; raise it for busy platforms); the size obtained is logged.
const UDP_RECV_BUFFER: usize = 4 << 20;

async fn bind_udp(addr: &str) -> std::io::Result<UdpSocket> {
    let sa: SocketAddr = match addr.parse() {
        Ok(sa) => sa,
        Err(_) => tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("no address for {addr}"),
            )
        })?,
    };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(sa),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: a smaller buffer is not a reason to refuse to run.
    let _ = sock.set_recv_buffer_size(UDP_RECV_BUFFER);
    sock.set_nonblocking(true)?;
    sock.bind(&sa.into())?;
    let got = sock.recv_buffer_size().unwrap_or(0);
    tracing::debug!(addr, recv_buffer = got, "HEP UDP socket bound");
    UdpSocket::from_std(sock.into())
}

/// Spawns the source: binds (retrying with backoff), then runs until the
/// engine goes away.
pub fn spawn(cfg: HepSourceConfig, ctx: SourceCtx) -> Started {
    Started::task(tokio::spawn(async move {
        let (name, health) = (&ctx.name, &ctx.health);
        let ingest = match cfg.ingest() {
            Ok(i) => i,
            Err(e) => {
                health.set_error(format!("bad configuration: {e}"));
                tracing::error!(source = %name, error = %e, "hep source not started");
                return;
            }
        };
        let mut backoff = Backoff::new();
        let listeners = loop {
            match Listeners::bind(&cfg).await {
                Ok(l) => break l,
                Err(e) => {
                    health.set_connected(false);
                    health.set_error(format!(
                        "cannot listen on udp {:?} / tcp {:?}: {e}",
                        cfg.listen_udp, cfg.listen_tcp
                    ));
                    let d = backoff.next_delay();
                    tracing::warn!(source = %name, error = %e, retry_in = ?d, "hep bind failed");
                    tokio::time::sleep(d).await;
                }
            }
        };
        run(listeners, ingest, ctx).await;
    }))
}

/// Runs the collector on bound sockets until the engine inbox closes.
pub async fn run(listeners: Listeners, mut ingest: HepIngest, ctx: SourceCtx) {
    let (name, inbox, health, rejects) = (&ctx.name, &ctx.inbox, &ctx.health, &ctx.rejects);
    tracing::info!(
        source = %name,
        udp = ?listeners.udp_addr(),
        tcp = ?listeners.tcp_addr(),
        "collecting HEP"
    );
    health.set_connected(true);
    health.set_synced(true);
    let mut recorder = open_record(name, &mut ingest);
    let mut events: Vec<Event> = Vec::new();
    // With `ctx.origins`: the origin of each event in `events`.
    let mut origins: Vec<Option<Origin>> = Vec::new();
    ingest.handle_start(Ts::now(), &mut events);
    let (tcp_tx, mut tcp_rx) = mpsc::channel::<(SocketAddr, Vec<u8>)>(TCP_QUEUE);
    if let Some(l) = listeners.tcp {
        tokio::spawn(accept_loop(
            name.clone(),
            l,
            tcp_tx,
            ingest.limits(),
            rejects.clone(),
        ));
    } else {
        drop(tcp_tx);
    }
    let udp = listeners.udp;
    // The kernel's drop count for our socket is cumulative over its life;
    // it is read once a second and exported as is.
    let udp_inode = udp.as_ref().and_then(super::drops::socket_inode);
    let mut warned: Option<std::time::Instant> = None;
    let mut buf = vec![0u8; 65_536];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tcp_open = true;
    loop {
        tokio::select! {
            r = recv(udp.as_ref(), &mut buf) => match r {
                Ok((n, peer)) => {
                    let now = Ts::now();
                    handle(&mut ingest, &buf[..n], now, (&mut events, &mut origins), &ctx, "udp", peer);
                    // Drain what else is queued, then hand over one batch.
                    if let Some(s) = udp.as_ref() {
                        for _ in 1..BATCH_DATAGRAMS {
                            match s.try_recv_from(&mut buf) {
                                Ok((n, peer)) => handle(&mut ingest, &buf[..n], now, (&mut events, &mut origins), &ctx, "udp", peer),
                                Err(_) => break,
                            }
                        }
                    }
                }
                Err(e) => {
                    // ICMP errors and the like surface here on some OSes.
                    tracing::debug!(source = %name, error = %e, "udp receive error");
                }
            },
            m = tcp_rx.recv(), if tcp_open => match m {
                Some((peer, bytes)) => {
                    handle_packet_bytes(&mut ingest, &bytes, (&mut events, &mut origins), &ctx, peer);
                    while events.len() < 4096 {
                        match tcp_rx.try_recv() {
                            Ok((peer, bytes)) => handle_packet_bytes(&mut ingest, &bytes, (&mut events, &mut origins), &ctx, peer),
                            Err(_) => break,
                        }
                    }
                }
                None => tcp_open = false,
            },
            _ = tick.tick() => {
                ingest.handle_timeout(Ts::now(), &mut events);
                if let Some(n) = udp_inode.and_then(super::drops::read) {
                    // Said at most once a minute while it goes on.
                    if n > health.dropped() && warned.is_none_or(|t: std::time::Instant| t.elapsed() >= Duration::from_secs(60)) {
                        tracing::warn!(source = %name, dropped = n, "the kernel dropped HEP datagrams (receive buffer full); raise net.core.rmem_max");
                        warned = Some(std::time::Instant::now());
                    }
                    health.set_dropped(n);
                }
            }
        }
        if let Some(file) = recorder.as_mut() {
            let bytes = ingest.take_recorded();
            if !bytes.is_empty()
                && let Err(e) = std::io::Write::write_all(file, &bytes)
            {
                tracing::error!(source = %name, path = ?ingest.record_path(), error = %e, "cannot write the HEP record file; recording stopped");
                ingest.stop_recording();
                recorder = None;
            }
        }
        if !events.is_empty() {
            health.add_events(events.len() as u64);
            let batch = std::mem::take(&mut events);
            let env = if ctx.origins {
                let mut origins = std::mem::take(&mut origins);
                origins.resize(batch.len(), None);
                Envelope::Traced {
                    source: name.clone(),
                    events: batch,
                    origins,
                }
            } else {
                Envelope::Batch {
                    source: name.clone(),
                    events: batch,
                }
            };
            if inbox.send(env).await.is_err() {
                health.set_connected(false);
                return;
            }
        }
    }
}

/// Opens the record file for appending (owner-only: it holds the auth key,
/// as the wire does). A file that cannot be opened is logged and recording
/// is off; collecting goes on.
fn open_record(name: &str, ingest: &mut HepIngest) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = ingest.record_path()?.to_path_buf();
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(f) => {
            tracing::info!(source = %name, path = %path.display(), "recording HEP packets");
            Some(f)
        }
        Err(e) => {
            tracing::error!(source = %name, path = %path.display(), error = %e, "cannot open the HEP record file; not recording");
            ingest.stop_recording();
            None
        }
    }
}

async fn recv(s: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match s {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Decodes one packet onto `out`'s events; with `ctx.origins`, its events'
/// origin onto `out`'s origins.
fn handle(
    ingest: &mut HepIngest,
    d: &[u8],
    now: Ts,
    out: (&mut Vec<Event>, &mut Vec<Option<Origin>>),
    ctx: &SourceCtx,
    transport: &str,
    peer: SocketAddr,
) {
    let (events, origins) = out;
    let before = events.len();
    if let Err(rej) = ingest.handle_datagram(d, now, events) {
        record(&ctx.rejects, &ctx.name, transport, peer, &rej);
    }
    if ctx.origins && events.len() > before {
        origins.resize(before, None);
        origins.resize(events.len(), Some(packet_origin(d)));
    }
}

/// `p<MD5 of the packet>`: a HEP3 packet carries its capture time to the
/// microsecond and the capture agent's node id beside the SIP message, so
/// its bytes name it wherever it is received (an agent sending to two
/// collectors, a resend over TCP).
pub fn packet_origin(packet: &[u8]) -> Origin {
    use md5::{Digest, Md5};
    let d = Md5::digest(packet);
    let mut id = String::with_capacity(33);
    id.push('p');
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in d {
        id.push(HEX[usize::from(b >> 4)] as char);
        id.push(HEX[usize::from(b & 15)] as char);
    }
    id.into()
}

fn handle_packet_bytes(
    ingest: &mut HepIngest,
    bytes: &[u8],
    out: (&mut Vec<Event>, &mut Vec<Option<Origin>>),
    ctx: &SourceCtx,
    peer: SocketAddr,
) {
    // Framed by the connection task already: parse as one packet.
    handle(ingest, bytes, Ts::now(), out, ctx, "tcp", peer);
}

fn record(rejects: &RejectCounter, name: &str, transport: &str, peer: SocketAddr, rej: &Reject) {
    let at = format!("{transport} {peer}");
    rejects.record(name, &at, rej);
}

async fn accept_loop(
    name: Arc<str>,
    l: TcpListener,
    tx: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    limits: Limits,
    rejects: Arc<RejectCounter>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        match l.accept().await {
            Ok((stream, peer)) => {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(source = %name, %peer, "too many HEP TCP senders; refusing");
                    continue;
                };
                let (name, tx, rejects) = (name.clone(), tx.clone(), rejects.clone());
                tokio::spawn(async move {
                    read_tcp(&name, stream, peer, tx, limits, &rejects).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(source = %name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// Frames one TCP sender's stream and forwards whole packets.
async fn read_tcp(
    name: &str,
    mut s: TcpStream,
    peer: SocketAddr,
    tx: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    limits: Limits,
    rejects: &RejectCounter,
) {
    let mut framer = StreamFramer::new(limits);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.feed(&buf[..n]);
        let mut ready = Vec::new();
        while let Some(r) = framer.next_packet() {
            match r {
                Ok(_) => ready.push(framer.last_packet().to_vec()),
                Err(e) => record(rejects, name, "tcp", peer, &e.to_reject()),
            }
        }
        for p in ready {
            if tx.send((peer, p)).await.is_err() {
                return;
            }
        }
    }
    if framer.buffered() > 0 {
        let rej = Reject::new(
            RejectReason::HepTruncated,
            format!(
                "connection closed inside a packet ({} bytes)",
                framer.buffered()
            ),
        );
        record(rejects, name, "tcp", peer, &rej);
    }
}
