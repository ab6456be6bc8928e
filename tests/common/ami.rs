//! Test support for the AMI adapter: protocol-faithful event text (as
//! Asterisk 20's manager.c / app_queue.c write it, protocols.md section 1)
//! and a fake AMI server speaking the protocol over real TCP.
//!
//! No Asterisk can run here, so these stand in for it. They follow the wire
//! facts exactly: banner line without a blank line after it, CRLF, responses
//! with echoed `ActionID`, `QueueStatus` list events with `Name`/`Location`
//! and no `Privilege`/`Timestamp`, live events with `Privilege` and
//! `Timestamp`, and app_queue's member semantics for QueueAdd/QueueRemove/
//! QueuePause replies.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub const BANNER: &str = "Asterisk Call Manager/9.0.0\r\n";

/// `Timestamp:` text for epoch seconds + microseconds.
pub fn stamp(sec: i64, usec: u32) -> String {
    format!("{sec}.{usec:06}")
}

/// A block from header pairs.
pub fn block(fields: &[(&str, String)]) -> String {
    let mut s = String::new();
    for (k, v) in fields {
        s.push_str(k);
        s.push_str(": ");
        s.push_str(v);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s
}

/// A live event: `Event`, `Privilege`, `Timestamp`, then the fields.
pub fn event(name: &str, class: &str, sec: i64, usec: u32, fields: &[(&str, String)]) -> String {
    let mut all: Vec<(&str, String)> = vec![
        ("Event", name.to_string()),
        ("Privilege", format!("{class},all")),
        ("Timestamp", stamp(sec, usec)),
    ];
    all.extend(fields.iter().cloned());
    block(&all)
}

/// A caller in a queue.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: String,
    pub chan: String,
    pub num: String,
    pub name: String,
}

impl Caller {
    pub fn new(uid: &str, num: &str) -> Self {
        Caller {
            uid: uid.into(),
            chan: format!("PJSIP/trunk-{}", uid.replace('.', "")),
            num: num.into(),
            name: format!("Caller {num}"),
        }
    }

    /// The caller channel snapshot (manager_channels.c), `prefix` "" or "Dest".
    pub fn snapshot(&self, state: u8) -> Vec<(&'static str, String)> {
        snapshot_fields(
            "",
            &self.chan,
            state,
            &self.num,
            &self.name,
            "<unknown>",
            "<unknown>",
            "queues",
            "100",
            &self.uid,
            &self.uid,
        )
    }
}

/// A queue member (agent).
#[derive(Debug, Clone)]
pub struct Agent {
    pub interface: String,
    pub name: String,
}

impl Agent {
    pub fn new(ext: &str, name: &str) -> Self {
        Agent {
            interface: format!("PJSIP/{ext}"),
            name: name.into(),
        }
    }

    /// The member channel snapshot, as the `Dest` prefix.
    pub fn dest(&self, call: &Caller, leg: u32) -> Vec<(&'static str, String)> {
        snapshot_fields(
            "Dest",
            &format!("{}-{:08x}", self.interface, leg),
            6,
            &self.interface[6..],
            &self.name,
            &call.num,
            &call.name,
            "from-internal",
            &self.interface[6..],
            &format!("{}.{}", call.uid, leg),
            &call.uid,
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn snapshot_fields(
    prefix: &str,
    chan: &str,
    state: u8,
    num: &str,
    name: &str,
    cl_num: &str,
    cl_name: &str,
    context: &str,
    exten: &str,
    uid: &str,
    linked: &str,
) -> Vec<(&'static str, String)> {
    let desc = match state {
        4 => "Ring",
        5 => "Ringing",
        6 => "Up",
        _ => "Down",
    };
    let names: [&str; 14] = [
        "Channel",
        "ChannelState",
        "ChannelStateDesc",
        "CallerIDNum",
        "CallerIDName",
        "ConnectedLineNum",
        "ConnectedLineName",
        "Language",
        "AccountCode",
        "Context",
        "Exten",
        "Priority",
        "Uniqueid",
        "Linkedid",
    ];
    let values = [
        chan.to_string(),
        state.to_string(),
        desc.to_string(),
        num.to_string(),
        name.to_string(),
        cl_num.to_string(),
        cl_name.to_string(),
        "en".into(),
        String::new(),
        context.to_string(),
        exten.to_string(),
        "1".into(),
        uid.to_string(),
        linked.to_string(),
    ];
    names
        .iter()
        .zip(values)
        .map(|(n, v)| {
            let key: &'static str = Box::leak(format!("{prefix}{n}").into_boxed_str());
            (key, v)
        })
        .collect()
}

/// The member block of `QueueMember*` live events.
#[derive(Debug, Clone)]
pub struct MemberState {
    pub name: String,
    pub status: u8,
    pub paused: bool,
    pub reason: String,
    pub in_call: bool,
    pub wrapup: u32,
    pub calls: u32,
    pub last_call: i64,
    pub login: i64,
    pub dynamic: bool,
}

impl MemberState {
    pub fn new(name: &str, status: u8, login: i64) -> Self {
        MemberState {
            name: name.into(),
            status,
            paused: false,
            reason: String::new(),
            in_call: false,
            wrapup: 0,
            calls: 0,
            last_call: 0,
            login,
            dynamic: true,
        }
    }

    pub fn live_block(&self, queue: &str, interface: &str) -> Vec<(&'static str, String)> {
        vec![
            ("Queue", queue.into()),
            ("MemberName", self.name.clone()),
            ("Interface", interface.into()),
            ("StateInterface", interface.into()),
            (
                "Membership",
                if self.dynamic { "dynamic" } else { "static" }.into(),
            ),
            ("Penalty", "0".into()),
            ("CallsTaken", self.calls.to_string()),
            ("LastCall", self.last_call.to_string()),
            ("LastPause", "0".into()),
            ("LoginTime", self.login.to_string()),
            ("InCall", (self.in_call as u8).to_string()),
            ("Status", self.status.to_string()),
            ("Paused", (self.paused as u8).to_string()),
            ("PausedReason", self.reason.clone()),
            ("Ringinuse", "0".into()),
            ("Wrapuptime", self.wrapup.to_string()),
        ]
    }

    /// The `QueueMember` list event (Name/Location aliases, no Ringinuse).
    pub fn list_block(&self, queue: &str, interface: &str, action_id: &str) -> String {
        block(&[
            ("Event", "QueueMember".into()),
            ("Queue", queue.into()),
            ("Name", self.name.clone()),
            ("Location", interface.into()),
            ("StateInterface", interface.into()),
            (
                "Membership",
                if self.dynamic { "dynamic" } else { "static" }.into(),
            ),
            ("Penalty", "0".into()),
            ("CallsTaken", self.calls.to_string()),
            ("LastCall", self.last_call.to_string()),
            ("LastPause", "0".into()),
            ("LoginTime", self.login.to_string()),
            ("InCall", (self.in_call as u8).to_string()),
            ("Status", self.status.to_string()),
            ("Paused", (self.paused as u8).to_string()),
            ("PausedReason", self.reason.clone()),
            ("Wrapuptime", self.wrapup.to_string()),
            ("ActionID", action_id.into()),
        ])
    }
}

/// A waiting caller as the fake PBX holds it.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub queue: String,
    pub caller: Caller,
    pub joined: i64,
}

/// What the fake PBX knows; tests change it between connections.
#[derive(Debug, Default)]
pub struct PbxState {
    pub username: String,
    pub secret: String,
    pub queues: Vec<String>,
    /// (queue, interface) → member.
    pub members: BTreeMap<(String, String), MemberState>,
    pub waiting: Vec<Waiting>,
    /// Answer Queue* actions (false: stay silent, for timeout tests).
    pub answer_actions: bool,
    /// Start QueueStatus lists but never finish them.
    pub stall_lists: bool,
    /// Every action received, as header lists, across connections.
    pub actions: Vec<Vec<(String, String)>>,
    pub connections: usize,
    /// Server clock for Ping and QueueEntry `Wait` (epoch seconds).
    pub clock: i64,
    pub challenge: String,
}

enum Cmd {
    Write(Vec<u8>),
    Drop,
}

/// A fake Asterisk manager interface on 127.0.0.1.
pub struct FakeAmi {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<PbxState>>,
    conn: Arc<Mutex<Option<mpsc::UnboundedSender<Cmd>>>>,
}

impl FakeAmi {
    pub async fn start(username: &str, secret: &str) -> FakeAmi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(PbxState {
            username: username.into(),
            secret: secret.into(),
            answer_actions: true,
            challenge: "840534122".into(),
            ..PbxState::default()
        }));
        let conn: Arc<Mutex<Option<mpsc::UnboundedSender<Cmd>>>> = Arc::new(Mutex::new(None));
        let (st, cn) = (state.clone(), conn.clone());
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (tx, rx) = mpsc::unbounded_channel();
                *cn.lock().unwrap() = Some(tx);
                st.lock().unwrap().connections += 1;
                tokio::spawn(serve(sock, st.clone(), rx));
            }
        });
        FakeAmi { addr, state, conn }
    }

    /// Writes raw bytes to the current connection.
    pub fn push(&self, bytes: impl Into<Vec<u8>>) {
        if let Some(tx) = self.conn.lock().unwrap().as_ref() {
            let _ = tx.send(Cmd::Write(bytes.into()));
        }
    }

    /// Closes the current connection (after what was pushed before).
    pub fn drop_connection(&self) {
        if let Some(tx) = self.conn.lock().unwrap().take() {
            let _ = tx.send(Cmd::Drop);
        }
    }

    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    pub fn actions(&self) -> Vec<Vec<(String, String)>> {
        self.state.lock().unwrap().actions.clone()
    }

    /// Names of the actions received, in order.
    pub fn action_names(&self) -> Vec<String> {
        self.actions()
            .iter()
            .filter_map(|a| get(a, "Action").map(str::to_string))
            .collect()
    }

    /// Waits until `n` connections were accepted.
    pub async fn wait_connections(&self, n: usize) {
        for _ in 0..500 {
            if self.connections() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fake AMI: fewer than {n} connections");
    }
}

pub fn get<'a>(h: &'a [(String, String)], key: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    state: Arc<Mutex<PbxState>>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
) {
    if sock.write_all(BANNER.as_bytes()).await.is_err() {
        return;
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8192];
    let mut authed = false;
    loop {
        tokio::select! {
            r = sock.read(&mut chunk) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                buf.extend_from_slice(&chunk[..n]);
                // Asterisk accepts CRLF or bare LF; the client sends CRLF.
                while let Some(end) = find(&buf, b"\r\n\r\n") {
                    let raw = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let headers: Vec<(String, String)> = raw
                        .split("\r\n")
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_string(), v.trim_start().to_string()))
                        .collect();
                    let out = respond(&state, &headers, &mut authed);
                    if sock.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
            cmd = rx.recv() => match cmd {
                Some(Cmd::Write(b)) => {
                    if sock.write_all(&b).await.is_err() { return; }
                }
                Some(Cmd::Drop) | None => {
                    let _ = sock.shutdown().await;
                    return;
                }
            }
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn md5hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asterisk's answer to one action (manager.c / app_queue.c wording).
fn respond(state: &Arc<Mutex<PbxState>>, h: &[(String, String)], authed: &mut bool) -> String {
    let mut st = state.lock().unwrap();
    st.actions.push(h.to_vec());
    let action = get(h, "Action").unwrap_or("").to_ascii_lowercase();
    let id = get(h, "ActionID").unwrap_or("").to_string();
    let reply = |resp: &str, extra: &[(&str, String)]| {
        let mut f: Vec<(&str, String)> = vec![("Response", resp.to_string())];
        if !id.is_empty() {
            f.push(("ActionID", id.clone()));
        }
        f.extend(extra.iter().cloned());
        block(&f)
    };
    if !*authed && !matches!(action.as_str(), "login" | "challenge" | "logoff") {
        return reply("Error", &[("Message", "Permission denied".into())]);
    }
    match action.as_str() {
        "challenge" => reply("Success", &[("Challenge", st.challenge.clone())]),
        "login" => {
            let user_ok = get(h, "Username") == Some(st.username.as_str());
            let ok = if get(h, "AuthType").is_some_and(|a| a.eq_ignore_ascii_case("md5")) {
                get(h, "Key") == Some(md5hex(&format!("{}{}", st.challenge, st.secret)).as_str())
            } else {
                get(h, "Secret") == Some(st.secret.as_str())
            };
            if user_ok && ok {
                *authed = true;
                reply("Success", &[("Message", "Authentication accepted".into())])
            } else {
                reply("Error", &[("Message", "Authentication failed".into())])
            }
        }
        "ping" => reply(
            "Success",
            &[("Ping", "Pong".into()), ("Timestamp", stamp(st.clock, 0))],
        ),
        "queuestatus" => {
            let only = get(h, "Queue").map(str::to_string);
            let mut out = reply(
                "Success",
                &[
                    ("EventList", "start".into()),
                    ("Message", "Queue status will follow".into()),
                ],
            );
            if st.stall_lists {
                return out;
            }
            let mut items = 0;
            for q in st.queues.clone() {
                if only.as_ref().is_some_and(|o| !o.eq_ignore_ascii_case(&q)) {
                    continue;
                }
                let calls = st.waiting.iter().filter(|w| w.queue == q).count();
                out.push_str(&block(&[
                    ("Event", "QueueParams".into()),
                    ("Queue", q.clone()),
                    ("Max", "0".into()),
                    ("Strategy", "ringall".into()),
                    ("Calls", calls.to_string()),
                    ("Holdtime", "0".into()),
                    ("TalkTime", "0".into()),
                    ("Completed", "0".into()),
                    ("Abandoned", "0".into()),
                    ("ServiceLevel", "60".into()),
                    ("ServicelevelPerf", "0.0".into()),
                    ("ServicelevelPerf2", "0.0".into()),
                    ("Weight", "0".into()),
                    ("ActionID", id.clone()),
                ]));
                items += 1;
                for ((mq, iface), m) in &st.members {
                    if *mq == q {
                        out.push_str(&m.list_block(&q, iface, &id));
                        items += 1;
                    }
                }
                for (pos, w) in st.waiting.iter().filter(|w| w.queue == q).enumerate() {
                    out.push_str(&block(&[
                        ("Event", "QueueEntry".into()),
                        ("Queue", q.clone()),
                        ("Position", (pos + 1).to_string()),
                        ("Channel", w.caller.chan.clone()),
                        ("Uniqueid", w.caller.uid.clone()),
                        ("CallerIDNum", w.caller.num.clone()),
                        ("CallerIDName", w.caller.name.clone()),
                        ("ConnectedLineNum", "unknown".into()),
                        ("ConnectedLineName", "unknown".into()),
                        ("Wait", (st.clock - w.joined).max(0).to_string()),
                        ("Priority", "0".into()),
                        ("ActionID", id.clone()),
                    ]));
                    items += 1;
                }
            }
            out.push_str(&block(&[
                ("Event", "QueueStatusComplete".into()),
                ("ActionID", id.clone()),
                ("EventList", "Complete".into()),
                ("ListItems", items.to_string()),
            ]));
            out
        }
        "queueadd" | "queueremove" | "queuepause" if !st.answer_actions => String::new(),
        "queueadd" => {
            let q = get(h, "Queue").unwrap_or("").to_string();
            let i = get(h, "Interface").unwrap_or("").to_string();
            if !st.queues.contains(&q) {
                return reply(
                    "Error",
                    &[(
                        "Message",
                        "Unable to add interface to queue: No such queue".into(),
                    )],
                );
            }
            let key = (q.clone(), i.clone());
            if st.members.contains_key(&key) {
                return reply(
                    "Error",
                    &[("Message", "Unable to add interface: Already there".into())],
                );
            }
            let name = get(h, "MemberName").unwrap_or(&i).to_string();
            let m = MemberState::new(&name, 1, st.clock);
            let ev = event(
                "QueueMemberAdded",
                "agent",
                st.clock,
                0,
                &m.live_block(&q, &i),
            );
            st.members.insert(key, m);
            reply("Success", &[("Message", "Added interface to queue".into())]) + &ev
        }
        "queueremove" => {
            let q = get(h, "Queue").unwrap_or("").to_string();
            let i = get(h, "Interface").unwrap_or("").to_string();
            match st.members.get(&(q.clone(), i.clone())).cloned() {
                None => reply(
                    "Error",
                    &[("Message", "Unable to remove interface: Not there".into())],
                ),
                Some(m) if !m.dynamic => {
                    reply("Error", &[("Message", "Member not dynamic".into())])
                }
                Some(m) => {
                    st.members.remove(&(q.clone(), i.clone()));
                    let ev = event(
                        "QueueMemberRemoved",
                        "agent",
                        st.clock,
                        0,
                        &m.live_block(&q, &i),
                    );
                    reply(
                        "Success",
                        &[("Message", "Removed interface from queue".into())],
                    ) + &ev
                }
            }
        }
        "queuepause" => {
            let q = get(h, "Queue").unwrap_or("").to_string();
            let i = get(h, "Interface").unwrap_or("").to_string();
            let paused = get(h, "Paused").is_some_and(|p| p == "true" || p == "1");
            let clock = st.clock;
            match st.members.get_mut(&(q.clone(), i.clone())) {
                None => reply("Error", &[("Message", "Interface not found".into())]),
                Some(m) => {
                    m.paused = paused;
                    m.reason = get(h, "Reason").unwrap_or("").to_string();
                    let ev = event("QueueMemberPause", "agent", clock, 0, &m.live_block(&q, &i));
                    let msg = if paused {
                        "Interface paused successfully"
                    } else {
                        "Interface unpaused successfully"
                    };
                    reply("Success", &[("Message", msg.into())]) + &ev
                }
            }
        }
        "logoff" => reply("Goodbye", &[("Message", "Thanks for all the fish.".into())]),
        other => reply(
            "Error",
            &[(
                "Message",
                format!(
                    "Invalid/unknown command: {other}. Use Action: ListCommands to show available commands."
                ),
            )],
        ),
    }
}

/// Queue events as app_queue.c publishes them (fields per protocols.md 1.5).
pub mod ev {
    use super::*;

    fn with(
        mut a: Vec<(&'static str, String)>,
        b: &[(&'static str, String)],
    ) -> Vec<(&'static str, String)> {
        a.extend(b.iter().cloned());
        a
    }

    pub fn join(q: &str, c: &Caller, pos: u32, count: u32, sec: i64, usec: u32) -> String {
        let f = with(
            c.snapshot(6),
            &[
                ("Queue", q.into()),
                ("Position", pos.to_string()),
                ("Count", count.to_string()),
            ],
        );
        event("QueueCallerJoin", "agent", sec, usec, &f)
    }

    pub fn leave(q: &str, c: &Caller, pos: u32, count: u32, sec: i64, usec: u32) -> String {
        let f = with(
            c.snapshot(6),
            &[
                ("Queue", q.into()),
                ("Position", pos.to_string()),
                ("Count", count.to_string()),
            ],
        );
        event("QueueCallerLeave", "agent", sec, usec, &f)
    }

    pub fn abandon(q: &str, c: &Caller, pos: u32, hold_s: i64, sec: i64, usec: u32) -> String {
        let f = with(
            c.snapshot(6),
            &[
                ("Queue", q.into()),
                ("Position", pos.to_string()),
                ("OriginalPosition", pos.to_string()),
                ("HoldTime", hold_s.to_string()),
            ],
        );
        event("QueueCallerAbandon", "agent", sec, usec, &f)
    }

    /// `HangupRequest` (class call) for the caller channel.
    pub fn hangup_request(c: &Caller, sec: i64, usec: u32) -> String {
        event("HangupRequest", "call", sec, usec, &c.snapshot(6))
    }

    pub fn soft_hangup_request(c: &Caller, cause: u32, sec: i64, usec: u32) -> String {
        let f = with(c.snapshot(6), &[("Cause", cause.to_string())]);
        event("SoftHangupRequest", "call", sec, usec, &f)
    }

    pub fn hangup(c: &Caller, sec: i64, usec: u32) -> String {
        let f = with(
            c.snapshot(6),
            &[
                ("Cause", "16".into()),
                ("Cause-txt", "Normal Clearing".into()),
            ],
        );
        event("Hangup", "call", sec, usec, &f)
    }

    fn agent_fields(q: &str, c: &Caller, a: &Agent, leg: u32) -> Vec<(&'static str, String)> {
        let mut f = c.snapshot(6);
        f.extend(a.dest(c, leg));
        f.push(("Queue", q.into()));
        f.push(("Interface", a.interface.clone()));
        f.push(("MemberName", a.name.clone()));
        f
    }

    pub fn agent_called(q: &str, c: &Caller, a: &Agent, leg: u32, sec: i64, usec: u32) -> String {
        event(
            "AgentCalled",
            "agent",
            sec,
            usec,
            &agent_fields(q, c, a, leg),
        )
    }

    /// `RingTime` in milliseconds (app_queue.c rna()).
    pub fn ring_no_answer(
        q: &str,
        c: &Caller,
        a: &Agent,
        leg: u32,
        ring_ms: i64,
        sec: i64,
        usec: u32,
    ) -> String {
        let mut f = agent_fields(q, c, a, leg);
        f.push(("RingTime", ring_ms.to_string()));
        event("AgentRingNoAnswer", "agent", sec, usec, &f)
    }

    /// `HoldTime` and `RingTime` in seconds.
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        q: &str,
        c: &Caller,
        a: &Agent,
        leg: u32,
        hold_s: i64,
        ring_s: i64,
        sec: i64,
        usec: u32,
    ) -> String {
        let mut f = agent_fields(q, c, a, leg);
        f.push(("HoldTime", hold_s.to_string()));
        f.push(("RingTime", ring_s.to_string()));
        event("AgentConnect", "agent", sec, usec, &f)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn complete(
        q: &str,
        c: &Caller,
        a: &Agent,
        leg: u32,
        hold_s: i64,
        talk_s: i64,
        reason: &str,
        sec: i64,
        usec: u32,
    ) -> String {
        let mut f = agent_fields(q, c, a, leg);
        f.push(("HoldTime", hold_s.to_string()));
        f.push(("TalkTime", talk_s.to_string()));
        f.push(("Reason", reason.into()));
        event("AgentComplete", "agent", sec, usec, &f)
    }

    pub fn member(name: &str, q: &str, a: &Agent, m: &MemberState, sec: i64, usec: u32) -> String {
        event(name, "agent", sec, usec, &m.live_block(q, &a.interface))
    }
}
