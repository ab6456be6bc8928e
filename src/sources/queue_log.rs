//! Asterisk's `queue_log`: a file (or an export of the realtime table) that
//! app_queue appends one line per queue event to (protocols.md 1.9).
//!
//! Why read it at all when AMI exists: it needs no manager account, it
//! states outcomes directly (`ABANDON` vs `EXITWITHTIMEOUT` vs
//! `EXITWITHKEY`, which AMI only implies), and it survives our restarts: in
//! the daemon the tail re-reads the file from its start and hands on only
//! what the restored engine checkpoint does not hold (see [`Restart`]), so
//! callers already waiting are known again and nothing is counted twice; a
//! tail run on its own keeps its read position in a small state file.
//! Its limits: whole-second times, no device state (no ringing, no
//! unavailable), and no list of waiting callers besides the file itself.
//!
//! The decoder is sans-IO ([`QueueLogDecoder::decode_line`]); the tail task
//! polls the file through `tokio::fs` (file I/O on the blocking pool, so a
//! stalled mount never stalls the runtime; no inotify: works the same on NFS
//! and in containers) and
//! follows rotation (the path names a new inode: finish the old file, then
//! read the new one from its start) and truncation (`copytruncate`: the file
//! got shorter than our position: start again from 0).

use std::collections::{HashMap, HashSet};
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::config::HumanDuration;
use crate::event::{AgentStatus, Event, EventKind, ExitReason};
use crate::sources::ami::mapping::AgentIds;
use crate::sources::{Envelope, Inbox, Reject, RejectCounter, SourceHealth};
use crate::time::Ts;

/// Longest accepted line. Real lines are under 300 bytes.
pub const MAX_LINE: usize = 8 * 1024;

/// Where a tail with no saved position (in the daemon: no usable engine
/// checkpoint) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// Only lines written from now on (no history is re-counted); in the
    /// daemon, today's lines (see [`Restart`]).
    #[default]
    End,
    /// The whole file (rebuilds today's figures from a daily-rotated log).
    Beginning,
}

/// `[[sources]] kind = "queue_log"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueLogConfig {
    /// The queue_log file (`/var/log/asterisk/queue_log`).
    pub path: PathBuf,
    /// Directory for the read-position file; default: next to `path`.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// `end` (default) or `beginning`, when no position is saved.
    #[serde(default)]
    pub start_at: StartAt,
    /// How often the file is checked for new lines, rotation and truncation.
    #[serde(default = "default_poll")]
    pub poll_interval: HumanDuration,
    /// IANA zone of `YYYY-MM-DD HH:MM:SS.ffffff` times (realtime/database
    /// exports; Asterisk writes local time unless
    /// `queue_log_realtime_use_gmt`). Default: the system zone.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Configured agents `(id, interface)`, filled in by the config loader:
    /// ADDMEMBER/REMOVEMEMBER log the interface (unless
    /// `log_membername_as_agent = yes`), call lines the member name.
    #[serde(skip)]
    pub agents: Vec<(String, String)>,
    /// Set by the daemon: where a restart starts (see [`Restart`]). Without
    /// it (a tail run on its own) the saved position file decides.
    #[serde(skip)]
    pub restart: Option<Restart>,
}

/// How the daemon's tail starts after a restart. It always reads the file
/// from its first line, so the decoder learns who is a member and paused
/// and which callers are still waiting, but hands on only what the engine
/// does not already hold:
/// - the engine was restored from a checkpoint that holds this file's events
///   up to `applied` (same inode, offset within the file): lines before that
///   offset are decoded and dropped, later lines are handed on. The
///   position was saved in the same transaction as the figures, so this is
///   exact: nothing counted twice, nothing skipped.
/// - otherwise (no checkpoint, another day's, or the file was rotated or
///   truncated since): with `start_at = "end"`, events of today
///   (from `today_start`) are handed on and older ones dropped, rebuilding
///   today's figures and the callers waiting; with `"beginning"`, all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    pub applied: Option<crate::state::SourcePosition>,
    pub today_start: Ts,
    /// The engine already holds every call that ended before this (the
    /// restored checkpoint's time, or a reload's): sources that relist
    /// calls (FreeSWITCH) must not count those again.
    pub counted_until: Option<Ts>,
}

fn default_poll() -> HumanDuration {
    HumanDuration(Duration::from_millis(250))
}

impl QueueLogConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        QueueLogConfig {
            path: path.into(),
            state_dir: None,
            start_at: StartAt::End,
            poll_interval: default_poll(),
            time_zone: None,
            agents: Vec::new(),
            restart: None,
        }
    }

    /// Reads the adapter's keys of a `[[sources]]` table (without `name` and
    /// `kind`); unknown keys are errors.
    pub fn from_table(t: toml::Table) -> Result<Self, String> {
        toml::Value::Table(t)
            .try_into()
            .map_err(|e: toml::de::Error| format!("queue_log source: {}", e.message()))
    }

    fn decoder(&self) -> Result<QueueLogDecoder, String> {
        let zone = match &self.time_zone {
            Some(z) => jiff::tz::TimeZone::get(z).map_err(|e| format!("time_zone {z:?}: {e}"))?,
            None => jiff::tz::TimeZone::system(),
        };
        let mut ids = AgentIds::default();
        for (id, iface) in &self.agents {
            ids.insert(id, iface);
        }
        Ok(QueueLogDecoder::new(ids, zone))
    }

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

#[derive(Debug, Default)]
struct AgentTrack {
    queues: HashSet<String>,
    paused: HashSet<String>,
    paused_all: Option<String>,
    on_call: bool,
    reason: Option<String>,
}

impl AgentTrack {
    /// Paused when paused in every queue it is a member of.
    fn is_paused(&self) -> bool {
        self.paused_all.is_some()
            || (!self.paused.is_empty() && self.queues.iter().all(|q| self.paused.contains(q)))
    }

    fn idle_status(&self) -> AgentStatus {
        if self.is_paused() {
            AgentStatus::Paused
        } else {
            AgentStatus::Available
        }
    }
}

/// Turns queue_log lines into domain events.
#[derive(Debug)]
pub struct QueueLogDecoder {
    ids: AgentIds,
    zone: jiff::tz::TimeZone,
    agents: HashMap<String, AgentTrack>,
}

impl QueueLogDecoder {
    pub fn new(ids: AgentIds, zone: jiff::tz::TimeZone) -> Self {
        QueueLogDecoder {
            ids,
            zone,
            agents: HashMap::new(),
        }
    }

    /// Decodes one line (without its line end). Blank lines and events that
    /// carry nothing for acdmon (QUEUESTART, PENALTY, RINGNOANSWER, custom
    /// `QueueLog` events, …) produce no event and no rejection.
    pub fn decode_line(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), Reject> {
        let line = trim_line(line);
        if line.is_empty() {
            return Ok(());
        }
        if line.len() > MAX_LINE {
            return Err(Reject::new(
                "line_too_long",
                format!("{} bytes (limit {MAX_LINE})", line.len()),
            ));
        }
        let text = String::from_utf8_lossy(line);
        let mut f = text.split('|');
        let (Some(time), Some(call), Some(queue), Some(agent), Some(event)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(Reject::new(
                "malformed",
                format!("fewer than 5 '|' fields: {:?}", preview(&text)),
            ));
        };
        let data: Vec<&str> = f.collect();
        let event = event.trim();
        // Logger start / reload markers, also in the short form without a
        // time (`NONE|NONE|NONE|QUEUESTART|`).
        if [time, call, queue, agent, event]
            .iter()
            .any(|x| matches!(x.trim(), "QUEUESTART" | "CONFIGRELOAD"))
        {
            return Ok(());
        }
        let ts = self.parse_time(time)?;
        let call_event = |kind: EventKind| Event { ts, kind };
        let need_call = || -> Result<(String, String), Reject> {
            if call.is_empty() || call == "NONE" || queue.is_empty() || queue == "NONE" {
                return Err(Reject::new(
                    "missing_field",
                    format!("{event} without a call id or queue"),
                ));
            }
            Ok((call.to_string(), queue.to_string()))
        };
        let need_agent = || -> Result<String, Reject> {
            if agent.is_empty() || agent == "NONE" {
                return Err(Reject::new(
                    "missing_field",
                    format!("{event} without an agent"),
                ));
            }
            Ok(self.ids.resolve(agent))
        };
        match event {
            "ENTERQUEUE" => {
                let (call, queue) = need_call()?;
                let caller = data
                    .get(1)
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("unknown"))
                    .map(str::to_string);
                out.push(call_event(EventKind::CallEnqueued {
                    call,
                    queue,
                    caller,
                    priority: None,
                }));
            }
            "CONNECT" => {
                let (call, queue) = need_call()?;
                let agent = need_agent()?;
                self.agents.entry(agent.clone()).or_default().on_call = true;
                out.push(call_event(EventKind::CallAnswered { call, queue, agent }));
            }
            "COMPLETECALLER" | "COMPLETEAGENT" | "BLINDTRANSFER" | "ATTENDEDTRANSFER" => {
                let (call, queue) = need_call()?;
                let agent = need_agent()?;
                out.push(call_event(EventKind::CallCompleted {
                    call,
                    queue: queue.clone(),
                    agent: agent.clone(),
                }));
                let t = self.agents.entry(agent.clone()).or_default();
                t.on_call = false;
                if t.is_paused() {
                    // Paused during the call: the engine assumed available.
                    out.push(call_event(EventKind::AgentState {
                        agent,
                        status: AgentStatus::Paused,
                        reason: t.reason.clone(),
                        queue: Some(queue),
                    }));
                }
            }
            "ABANDON" => {
                let (call, queue) = need_call()?;
                out.push(call_event(EventKind::CallAbandoned { call, queue }));
            }
            "EXITWITHTIMEOUT" | "EXITEMPTY" | "EXITWITHKEY" | "WITHDRAW" | "SYSCOMPAT" => {
                let (call, queue) = need_call()?;
                let reason = match event {
                    "EXITWITHTIMEOUT" => ExitReason::Timeout,
                    "EXITEMPTY" => ExitReason::Empty,
                    "EXITWITHKEY" => ExitReason::Key,
                    _ => ExitReason::Other,
                };
                out.push(call_event(EventKind::CallExited {
                    call,
                    queue,
                    reason,
                }));
            }
            "ADDMEMBER" => {
                let agent = need_agent()?;
                let queue = nonempty_queue(queue, event)?;
                let t = self.agents.entry(agent.clone()).or_default();
                t.queues.insert(queue.clone());
                let paused_here = data.first().is_some_and(|d| d.trim() == "PAUSED");
                let changed = if paused_here {
                    t.paused.insert(queue.clone())
                } else {
                    t.paused.remove(&queue)
                };
                let status = if t.on_call {
                    AgentStatus::OnCall
                } else {
                    t.idle_status()
                };
                out.push(call_event(EventKind::AgentJoinedQueue {
                    agent: agent.clone(),
                    queue: queue.clone(),
                }));
                if changed {
                    out.push(call_event(EventKind::AgentQueuePause {
                        agent: agent.clone(),
                        queue: queue.clone(),
                        paused: paused_here,
                    }));
                }
                if status != AgentStatus::OnCall {
                    out.push(call_event(EventKind::AgentState {
                        agent,
                        status,
                        reason: None,
                        queue: Some(queue),
                    }));
                }
            }
            "REMOVEMEMBER" => {
                let agent = need_agent()?;
                let queue = nonempty_queue(queue, event)?;
                let t = self.agents.entry(agent.clone()).or_default();
                t.queues.remove(&queue);
                t.paused.remove(&queue);
                let gone = t.queues.is_empty();
                out.push(call_event(EventKind::AgentLeftQueue {
                    agent: agent.clone(),
                    queue,
                }));
                if gone {
                    self.agents.remove(&agent);
                    out.push(call_event(EventKind::AgentState {
                        agent,
                        status: AgentStatus::LoggedOut,
                        reason: None,
                        queue: None,
                    }));
                }
            }
            "PAUSE" | "UNPAUSE" | "PAUSEALL" | "UNPAUSEALL" => {
                let agent = need_agent()?;
                let reason = data
                    .first()
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string);
                let t = self.agents.entry(agent.clone()).or_default();
                let q = (queue != "NONE" && !queue.is_empty()).then(|| queue.to_string());
                // A pause in one queue is that queue's business
                // (`AgentQueuePause`); the agent's own state folds them.
                let pause_in = |queue: &str, paused: bool| {
                    call_event(EventKind::AgentQueuePause {
                        agent: agent.clone(),
                        queue: queue.to_string(),
                        paused,
                    })
                };
                match (event, &q) {
                    ("PAUSE", Some(q)) => {
                        if t.paused.insert(q.clone()) {
                            out.push(pause_in(q, true));
                        }
                    }
                    ("UNPAUSE", Some(q)) => {
                        if t.paused.remove(q) {
                            out.push(pause_in(q, false));
                        }
                        t.paused_all = None;
                    }
                    ("PAUSEALL", _) | ("PAUSE", None) => {
                        t.paused_all = Some(reason.clone().unwrap_or_default());
                    }
                    _ => {
                        let mut was: Vec<String> = t.paused.drain().collect();
                        was.sort();
                        for q in was {
                            out.push(pause_in(&q, false));
                        }
                        t.paused_all = None;
                    }
                }
                if event.starts_with("PAUSE") {
                    t.reason = reason;
                }
                if !t.on_call {
                    let status = t.idle_status();
                    let reason = (status == AgentStatus::Paused)
                        .then(|| t.reason.clone())
                        .flatten();
                    out.push(call_event(EventKind::AgentState {
                        agent,
                        status,
                        reason,
                        queue: q,
                    }));
                }
            }
            "AGENTLOGIN" => {
                let agent = need_agent()?;
                out.push(call_event(EventKind::AgentState {
                    agent,
                    status: AgentStatus::Available,
                    reason: None,
                    queue: None,
                }));
            }
            "AGENTLOGOFF" => {
                let agent = need_agent()?;
                out.push(call_event(EventKind::AgentState {
                    agent,
                    status: AgentStatus::LoggedOut,
                    reason: None,
                    queue: None,
                }));
            }
            // RINGNOANSWER (ms), RINGCANCELED, AGENTDUMP, PENALTY, RINGINUSE,
            // QUEUESTART, CONFIGRELOAD, OUTCALL and custom events carry no
            // queue outcome or state acdmon tracks from queue_log.
            _ => {}
        }
        Ok(())
    }

    /// `1763900000` (file) or `2025-11-23 12:13:20.123456` (realtime/DB).
    fn parse_time(&self, s: &str) -> Result<Ts, Reject> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<i64>()
                .map(Ts::from_secs)
                .map_err(|_| Reject::new("bad_timestamp", format!("{s:?}")));
        }
        let dt: jiff::civil::DateTime = s
            .parse()
            .map_err(|_| Reject::new("bad_timestamp", format!("{:?}", preview(s))))?;
        let t = self
            .zone
            .to_timestamp(dt)
            .map_err(|e| Reject::new("bad_timestamp", format!("{s:?}: {e}")))?;
        Ok(Ts(t.as_millisecond()))
    }
}

fn nonempty_queue(queue: &str, event: &str) -> Result<String, Reject> {
    if queue.is_empty() || queue == "NONE" {
        return Err(Reject::new(
            "missing_field",
            format!("{event} without a queue"),
        ));
    }
    Ok(queue.to_string())
}

fn trim_line(mut l: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n'] = l {
        l = rest;
    }
    l
}

fn preview(s: &str) -> String {
    s.chars().take(80).collect()
}

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
                    "line_too_long",
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

/// `acdmon replay --format queue_log`.
#[derive(Debug)]
pub struct QueueLogReplay {
    decoder: QueueLogDecoder,
    lines: LineSplitter,
}

impl QueueLogReplay {
    /// Replays with the given agent directory; times in the database format
    /// are read in `zone`.
    pub fn new(ids: AgentIds, zone: jiff::tz::TimeZone) -> Self {
        QueueLogReplay {
            decoder: QueueLogDecoder::new(ids, zone),
            lines: LineSplitter::default(),
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        let mut out = Vec::new();
        let dec = &mut self.decoder;
        self.lines
            .feed(bytes, |n, l| push_line(dec, n, l, &mut out));
        out
    }

    pub fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        let mut out = Vec::new();
        let dec = &mut self.decoder;
        self.lines.finish(|n, l| push_line(dec, n, l, &mut out));
        out
    }
}

fn push_line(
    dec: &mut QueueLogDecoder,
    n: u64,
    line: Result<&[u8], Reject>,
    out: &mut Vec<Result<Event, Reject>>,
) {
    let mut evs = Vec::new();
    match line.and_then(|l| dec.decode_line(l, &mut evs)) {
        Ok(()) => out.extend(evs.into_iter().map(Ok)),
        Err(mut r) => {
            r.detail = format!("line {n}: {}", r.detail);
            out.push(Err(r));
        }
    }
}

/// The saved read position: which file (inode) and how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    inode: u64,
    offset: u64,
}

async fn load_position(p: &Path) -> Option<Position> {
    let s = tokio::fs::read_to_string(p).await.ok()?;
    let mut it = s.split_whitespace();
    let inode = it.next()?.parse().ok()?;
    let offset = it.next()?.parse().ok()?;
    Some(Position { inode, offset })
}

async fn save_position(p: &Path, pos: Position) -> std::io::Result<()> {
    let tmp = p.with_extension("tmp");
    tokio::fs::write(&tmp, format!("{} {}\n", pos.inode, pos.offset)).await?;
    tokio::fs::rename(&tmp, p).await
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.ino()
}

#[cfg(not(unix))]
fn inode(_m: &std::fs::Metadata) -> u64 {
    0
}

/// Spawns the tail task.
pub fn spawn(
    name: Arc<str>,
    cfg: QueueLogConfig,
    inbox: Inbox,
    health: Arc<SourceHealth>,
    rejects: Arc<RejectCounter>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(tail(name, cfg, inbox, health, rejects))
}

struct Open {
    file: tokio::fs::File,
    inode: u64,
    /// Offset of the end of the last complete line handed on.
    offset: u64,
    /// Where the next read starts.
    read_pos: u64,
}

async fn tail(
    name: Arc<str>,
    cfg: QueueLogConfig,
    inbox: Inbox,
    health: Arc<SourceHealth>,
    rejects: Arc<RejectCounter>,
) {
    let mut decoder = match cfg.decoder() {
        Ok(d) => d,
        Err(e) => {
            health.set_error(e.clone());
            tracing::error!(source = %name, error = %e, "queue_log source not started");
            return;
        }
    };
    let posfile = cfg.position_file();
    let poll = cfg.poll_interval.0.max(Duration::from_millis(10));
    let mut restart = cfg.restart;
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
                        rejects.record(&name, &format_args!("{label}:{line_no}"), &r);
                    }
                }
                Err(r) => rejects.record(&name, &format_args!("{label}:{line_no}"), &r),
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
                            rejects.record(&name, &format_args!("{label}:{line_no}"), &r);
                        }
                    }
                    Err(r) => rejects.record(&name, &format_args!("{label}:{line_no}"), &r),
                });
                lines.finish(|line_no, l| {
                    if let Ok(line) = l
                        && let Err(r) = decoder.decode_line(line, &mut events)
                    {
                        rejects.record(&name, &format_args!("{label}:{line_no}"), &r);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dec() -> QueueLogDecoder {
        let mut ids = AgentIds::default();
        ids.insert("1001", "PJSIP/1001");
        QueueLogDecoder::new(ids, jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
    }

    fn one(d: &mut QueueLogDecoder, line: &str) -> Vec<String> {
        let mut out = Vec::new();
        d.decode_line(line.as_bytes(), &mut out).unwrap();
        out.iter()
            .map(|e| match &e.kind {
                EventKind::CallExited { reason, .. } => format!("exited:{}", reason.as_str()),
                EventKind::AgentState { agent, status, .. } => {
                    format!("{agent}:{}", status.as_str())
                }
                EventKind::CallAnswered { agent, .. } => format!("answered:{agent}"),
                k => k.type_name().to_string(),
            })
            .collect()
    }

    #[test]
    fn every_event_of_the_table() {
        let mut d = dec();
        let t = "1763900000";
        let cases: &[(&str, &[&str])] = &[
            ("NONE|NONE|NONE|QUEUESTART|", &[]),
            ("1|NONE|NONE|CONFIGRELOAD|", &[]),
            (
                "|MANAGER|support|PJSIP/1001|ADDMEMBER|",
                &["agent_joined_queue", "1001:available"],
            ),
            (
                "|1.1|support|NONE|ENTERQUEUE||5551001|1",
                &["call_enqueued"],
            ),
            ("|1.1|support|1001|RINGNOANSWER|15000", &[]),
            ("|1.1|support|1001|RINGCANCELED|1200", &[]),
            (
                "|1.1|support|1001|CONNECT|12|1763900012.5|3",
                &["answered:1001"],
            ),
            // Paused during a call: the queue hears of it now, the agent's
            // state when the call ends.
            ("|NONE|support|1001|PAUSE|Lunch", &["agent_queue_pause"]),
            (
                "|1.1|support|1001|COMPLETECALLER|12|170|1",
                &["call_completed", "1001:paused"],
            ),
            (
                "|NONE|support|1001|UNPAUSE|",
                &["agent_queue_pause", "1001:available"],
            ),
            (
                "|1.2|support|NONE|ENTERQUEUE||5551002|1|Wang Fang",
                &["call_enqueued"],
            ),
            (
                "|1.2|support|1001|CONNECT|2|1763900100.9|1",
                &["answered:1001"],
            ),
            (
                "|1.2|support|1001|COMPLETEAGENT|2|30|1",
                &["call_completed"],
            ),
            (
                "|1.3|support|1001|BLINDTRANSFER|300|default|5|40|1",
                &["call_completed"],
            ),
            (
                "|1.4|support|1001|ATTENDEDTRANSFER|BRIDGE|abc|5|40|1",
                &["call_completed"],
            ),
            ("|1.5|support|NONE|ABANDON|1|1|30", &["call_abandoned"]),
            (
                "|1.6|support|NONE|EXITWITHTIMEOUT|1|1|60",
                &["exited:timeout"],
            ),
            ("|1.7|support|NONE|EXITEMPTY|1|1|3", &["exited:empty"]),
            ("|1.8|support|NONE|EXITWITHKEY|2|1|1|7", &["exited:key"]),
            (
                "|1.9|support|NONE|WITHDRAW|1|1|20|moved to sales",
                &["exited:other"],
            ),
            ("|1.10|support|NONE|SYSCOMPAT|", &["exited:other"]),
            ("|1.11|support|1001|AGENTDUMP|", &[]),
            ("|NONE|support|1001|PENALTY|3", &[]),
            ("|NONE|support|1001|RINGINUSE|1", &[]),
            ("|NONE|NONE|1001|PAUSEALL|Meeting", &["1001:paused"]),
            ("|NONE|NONE|1001|UNPAUSEALL|", &["1001:available"]),
            (
                "|NONE|NONE|Agent/7|AGENTLOGIN|PJSIP/7-0001",
                &["Agent/7:available"],
            ),
            (
                "|NONE|NONE|Agent/7|AGENTLOGOFF|PJSIP/7-0001|3600",
                &["Agent/7:logged_out"],
            ),
            ("|1.12|support|NONE|OUTCALL|ANSWER|30|x", &[]),
            (
                "|MANAGER|support|PJSIP/1001|REMOVEMEMBER|",
                &["agent_left_queue", "1001:logged_out"],
            ),
            ("|1.13|support|NONE|MYCUSTOMEVENT|whatever", &[]),
        ];
        for (line, want) in cases {
            let line = if line.starts_with('|') {
                format!("{t}{line}")
            } else {
                line.to_string()
            };
            assert_eq!(one(&mut d, &line), *want, "{line}");
        }
    }

    #[test]
    fn paused_add_and_membername_as_agent() {
        let mut d = dec();
        assert_eq!(
            one(&mut d, "1|MANAGER|support|Li Na|ADDMEMBER|PAUSED"),
            ["agent_joined_queue", "agent_queue_pause", "Li Na:paused"]
        );
    }

    #[test]
    fn database_time_format_uses_the_zone() {
        let mut d = dec();
        let mut out = Vec::new();
        d.decode_line(
            b"2025-11-23 20:13:20.250000|1.1|support|NONE|ENTERQUEUE||5551001|1",
            &mut out,
        )
        .unwrap();
        // 20:13:20.25 in Shanghai (UTC+8) = 12:13:20.25 UTC.
        assert_eq!(out[0].ts, Ts(1_763_900_000_250));
    }

    #[test]
    fn bad_lines_are_rejected_with_a_reason() {
        let mut d = dec();
        let mut out = Vec::new();
        let r = |d: &mut QueueLogDecoder, l: &str, out: &mut Vec<Event>| {
            d.decode_line(l.as_bytes(), out).unwrap_err().reason
        };
        assert_eq!(r(&mut d, "garbage without pipes", &mut out), "malformed");
        assert_eq!(
            r(&mut d, "yesterday|1.1|q|NONE|ENTERQUEUE|", &mut out),
            "bad_timestamp"
        );
        assert_eq!(
            r(&mut d, "1|NONE|q|NONE|ENTERQUEUE|", &mut out),
            "missing_field"
        );
        assert_eq!(
            r(&mut d, "1|1.1|q|NONE|CONNECT|1|2|3", &mut out),
            "missing_field"
        );
        assert!(out.is_empty());
        assert!(d.decode_line(b"\r\n", &mut out).is_ok());
    }

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
