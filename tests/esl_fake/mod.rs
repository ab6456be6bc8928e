//! A fake FreeSWITCH event socket for tests: it replays a recorded
//! transcript over real TCP and records the commands it receives.
//!
//! A transcript is what a client received. The server splits it into
//! connections at each `auth/request`, sends events and other unsolicited
//! frames as they come, and sends each reply (`command/reply`,
//! `api/response`) only after it has read one more command from the client,
//! as the real mod_event_socket does. When a connection's part of the
//! transcript is over, the server closes it (the recorded drop) unless it is
//! the last part; then it stays open and answers further commands with the
//! test's responder (CTI commands). Segmentation uses acdmon's own framer;
//! bytes it cannot frame (recorded garbage) are sent verbatim.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use acdmon::sources::esl::parser::{Framer, Parse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Answers a command (without its blank line) after the transcript ends.
pub type Responder = Arc<dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync>;

enum Segment {
    Push(Vec<u8>),
    Reply(Vec<u8>),
}

pub struct FakeSwitch {
    pub addr: String,
    pub commands: Arc<Mutex<Vec<String>>>,
    pub connections: Arc<Mutex<usize>>,
}

impl FakeSwitch {
    pub fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }
    pub fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

fn split(transcript: &[u8]) -> Vec<Vec<Segment>> {
    let mut conns: Vec<Vec<Segment>> = Vec::new();
    let mut framer = Framer::default();
    let mut pos = 0;
    while pos < transcript.len() {
        match framer.next(&transcript[pos..]) {
            Parse::NeedMore => {
                if conns.is_empty() {
                    conns.push(Vec::new());
                }
                let rest = transcript[pos..].to_vec();
                conns.last_mut().unwrap().push(Segment::Push(rest));
                break;
            }
            Parse::Skip(_, n) => {
                if conns.is_empty() {
                    conns.push(Vec::new());
                }
                conns
                    .last_mut()
                    .unwrap()
                    .push(Segment::Push(transcript[pos..pos + n].to_vec()));
                pos += n;
            }
            Parse::Frame(f, n) => {
                let raw = transcript[pos..pos + n].to_vec();
                pos += n;
                match f.content_type {
                    "auth/request" => conns.push(vec![Segment::Push(raw)]),
                    "command/reply" | "api/response" => {
                        conns.last_mut().unwrap().push(Segment::Reply(raw))
                    }
                    _ => {
                        if conns.is_empty() {
                            conns.push(Vec::new());
                        }
                        conns.last_mut().unwrap().push(Segment::Push(raw))
                    }
                }
            }
        }
    }
    conns
}

/// Starts the server on an ephemeral port. `chunk` bounds each write (1 =
/// byte by byte) to exercise half frames.
pub async fn start(transcript: Vec<u8>, chunk: usize, responder: Responder) -> FakeSwitch {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let commands = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(Mutex::new(0));
    let conns = split(&transcript);
    let (log, count) = (commands.clone(), connections.clone());
    tokio::spawn(async move {
        let mut parts = conns.into_iter();
        let mut last: Option<Vec<Segment>> = None;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            *count.lock().unwrap() += 1;
            let (segments, is_last) = match parts.next() {
                Some(p) => {
                    let peek = parts.len() == 0;
                    (p, peek)
                }
                None => (last.take().unwrap_or_default(), true),
            };
            let keep = serve(
                stream,
                segments,
                is_last,
                chunk,
                log.clone(),
                responder.clone(),
            )
            .await;
            last = keep;
        }
    });
    FakeSwitch {
        addr,
        commands,
        connections,
    }
}

/// Serves one connection; returns its segments' replay copy when it was the
/// last part (a later reconnect is served the same part again).
async fn serve(
    stream: TcpStream,
    segments: Vec<Segment>,
    is_last: bool,
    chunk: usize,
    log: Arc<Mutex<Vec<String>>>,
    responder: Responder,
) -> Option<Vec<Segment>> {
    let copy: Vec<Segment> = segments
        .iter()
        .map(|s| match s {
            Segment::Push(b) => Segment::Push(b.clone()),
            Segment::Reply(b) => Segment::Reply(b.clone()),
        })
        .collect();
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        loop {
            let n = match rd.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&tmp[..n]);
            while let Some(i) = buf.windows(2).position(|w| w == b"\n\n") {
                let cmd = String::from_utf8_lossy(&buf[..i]).trim().to_string();
                buf.drain(..i + 2);
                log.lock().unwrap().push(cmd.clone());
                if tx.send(cmd).is_err() {
                    return;
                }
            }
        }
    });
    for s in segments {
        match s {
            Segment::Push(b) => {
                if write(&mut wr, &b, chunk).await.is_err() {
                    return None;
                }
            }
            Segment::Reply(b) => {
                match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                    Ok(Some(_)) => {}
                    _ => return None,
                }
                if write(&mut wr, &b, chunk).await.is_err() {
                    return None;
                }
            }
        }
    }
    if !is_last {
        // The recorded connection ends here.
        reader.abort();
        let _ = wr.shutdown().await;
        return None;
    }
    while let Some(cmd) = rx.recv().await {
        if let Some(b) = responder(&cmd)
            && write(&mut wr, &b, chunk).await.is_err()
        {
            break;
        }
    }
    Some(copy)
}

async fn write(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    b: &[u8],
    chunk: usize,
) -> std::io::Result<()> {
    for part in b.chunks(chunk.max(1)) {
        wr.write_all(part).await?;
        wr.flush().await?;
    }
    Ok(())
}

/// `api/response` framing.
pub fn api(body: &str) -> Vec<u8> {
    format!(
        "Content-Type: api/response\nContent-Length: {}\n\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A plain `callcenter::info` event as FreeSWITCH frames it (values
/// URL-encoded; only the headers the tests need).
pub fn event(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut body = String::from("Event-Subclass: callcenter%3A%3Ainfo\n");
    for (k, v) in headers {
        body.push_str(k);
        body.push_str(": ");
        if v.is_empty() {
            body.push_str("_undef_");
        }
        for b in v.bytes() {
            if !(0x20..=0x7e).contains(&b) || b"\r\n #%&+:;<=>?@[\\]^`{|}\"".contains(&b) {
                body.push_str(&format!("%{b:02X}"));
            } else {
                body.push(b as char);
            }
        }
        body.push('\n');
    }
    body.push_str("Event-Name: CUSTOM\n\n");
    format!(
        "Content-Length: {}\nContent-Type: text/event-plain\n\n{body}",
        body.len()
    )
    .into_bytes()
}
