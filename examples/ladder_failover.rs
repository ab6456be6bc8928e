//! Does the CTI leader's death mid-ladder lose or repeat a sign-in? Cycles
//! of a surge and a calm against a real `nats-server` and two (or three)
//! `acdmon run` processes in cluster mode, the current CTI leader killed
//! (SIGKILL) at a random moment of the walk, every webhook request recorded.
//!
//! Issue 13's aim is "0 duplicate and 0 lost actions over 100 leader kills
//! mid-ladder, takeover under 5 s". A test can kill once or twice; this tool
//! repeats it often enough to catch what depends on the moment of the kill
//! (between `decided` and the call, during a release hold, while the killed
//! instance is still replaying its day), and measures the takeover.
//!
//! One cycle: eight callers enqueue 250 ms apart (the ladder's three stages
//! fire at the 3rd, 5th and 7th: two agents each), a second at the top,
//! then all hang up; `release_hold = 1s` walks the ladder down a stage a
//! second. Event times are the write times, so a walk takes about 6 s.
//! A kill cycle kills whichever instance `/metrics` names CTI leader
//! (`acd_cluster_cti_leader 1`) at a random moment inside the walk, times
//! until another instance says it leads (the lease takeover) and until the
//! next webhook request arrives, and starts the killed one again (it
//! replays its day from the stream, as after a real crash). Baseline cycles
//! (the same script, no kill) run first in the same run.
//!
//! The receiver behaves as a careful CRM would: it remembers every
//! `Idempotency-Key` and drops a request whose key it saw already: a
//! same-key repeat within the cycle is a retry (harmless); a key first sent
//! in an earlier cycle is a *recycled* key, a new action the receiver drops
//! (it shows up as lost). A new key that signs in an agent already in, or
//! out an agent already out, is a duplicate it cannot tell from a new
//! action. Lost: an agent of a stage the receiver never signed in, or
//! still in when the cycle ends (15 s after the last release was due).
//! A sign-in that never came is told apart with the instances' audit logs
//! (`/api/v1/escalations`): *decided, never carried out* (a log has it:
//! lost); *never decided* though a leader could have while the stage was
//! due (lost); or *due while nobody led, over at takeover* (the stage came
//! due after the kill, the hang-ups came before the survivor took the
//! lease: the new leader acts on the figures it finds, docs/cluster.md
//! "One CTI leader per site"; counted as `gap`, not lost).
//! Key-blind counts (what a receiver that ignores the header would see):
//! requests beyond one per expected verb and agent, and expected ones that
//! never came. Lateness: each action's arrival after the moment the script
//! made it due (the enqueue that crossed the stage's threshold; the drain
//! plus one hold per stage released); its maximum per cycle compares kill
//! cycles with the baseline.
//!
//! Run (the `acdmon` binary is taken from the same target directory, or
//! `ACDMON_BIN`; nats-server from scripts/install-nats.sh):
//!   cargo build --release --bin acdmon --example ladder_failover
//!   nice -n 5 target/release/examples/ladder_failover --kills 100 --baseline 20
//! Options: `--instances 3`, `--lease-ttl 2`, `--seed N`, `--keep` (keeps
//! the temp dir: configs, each instance's log, `requests.jsonl`),
//! `--membership` (the receiver reports each sign-in and sign-out into the
//! feed, as a phone system the sources watch would; without it the engine
//! never sees the webhook's membership changes).
//! Exit status 1 when a different-key duplicate or a lost action appears,
//! or a cycle ends with an instance's ladder not walked down (a `gap`
//! alone does not fail the run).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The ladder's stages: (name, group, waiting above which it fires).
const STAGES: [(&str, &str, u32); 3] = [("first", "a", 2), ("second", "b", 4), ("third", "c", 6)];
/// Callers per surge, and the time between two of them.
const CALLERS: u32 = 8;
const STEP: Duration = Duration::from_millis(250);
/// Time at the top before everyone hangs up.
const TOP: Duration = Duration::from_secs(1);
/// `release_hold` of the ladder.
const HOLD: Duration = Duration::from_secs(1);
/// How long after the last release was due the cycle waits for stragglers.
const GRACE: Duration = Duration::from_secs(15);

struct Args {
    kills: usize,
    baseline: usize,
    instances: usize,
    lease_ttl: u64,
    seed: u64,
    keep: bool,
    membership: bool,
}

fn args() -> Args {
    let mut a = Args {
        kills: 100,
        baseline: 20,
        instances: 2,
        lease_ttl: 2,
        seed: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1),
        keep: false,
        membership: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let val = v.get(i + 1).cloned().unwrap_or_default();
        let num = |what: &str| -> u64 {
            val.parse()
                .unwrap_or_else(|_| panic!("{what} wants a number, got {val:?}"))
        };
        match v[i].as_str() {
            "--kills" => a.kills = num("--kills") as usize,
            "--baseline" => a.baseline = num("--baseline") as usize,
            "--instances" => a.instances = num("--instances") as usize,
            "--lease-ttl" => a.lease_ttl = num("--lease-ttl"),
            "--seed" => a.seed = num("--seed"),
            "--keep" => {
                a.keep = true;
                i += 1;
                continue;
            }
            "--membership" => {
                a.membership = true;
                i += 1;
                continue;
            }
            other => panic!(
                "unknown option {other} (--kills N --baseline N --instances 2|3 --lease-ttl S --seed N --keep --membership)"
            ),
        }
        i += 2;
    }
    assert!((2..=3).contains(&a.instances), "--instances is 2 or 3");
    a
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One webhook request as the receiver saw it.
#[derive(Debug, Clone)]
struct Request {
    at: Instant,
    /// The instance that sent it: each instance's `[[cti]] url` ends in its name.
    by: String,
    verb: String,
    agent: String,
    key: Option<String>,
    attempt: String,
}

/// The webhook receiver: records every request, answers `200 {"ok":true}`.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Request>>>,
    /// `--membership`: the receiver plays the phone system the sources
    /// watch, and reports each sign-in and sign-out into the feed
    /// (`agent_joined_queue`, `agent_left_queue`). Without it, it is a CRM
    /// the sources never see.
    membership: Option<PathBuf>,
}

impl Receiver {
    async fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("receiver");
        let addr = listener.local_addr().expect("receiver address");
        let me = self.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move { me.serve(s).await });
            }
        });
        format!("http://{addr}/cti")
    }

    /// One request per connection (the answer closes it).
    async fn serve(&self, mut s: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head, body) = loop {
            let n = match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let head = head.to_ascii_lowercase();
                let len: usize = header(&head, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if rest.len() >= len {
                    break (head, rest[..len].to_string());
                }
            }
        };
        let at = Instant::now();
        let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let path = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("");
        let field = |k: &str| body[k].as_str().unwrap_or("?").to_string();
        let r = Request {
            at,
            by: path.rsplit('/').next().unwrap_or("?").to_string(),
            verb: field("verb"),
            agent: field("agent"),
            key: header(&head, "idempotency-key").map(str::to_string),
            attempt: header(&head, "x-acdmon-attempt").unwrap_or("?").to_string(),
        };
        if let Some(feed) = &self.membership {
            let kind = if r.verb == "sign_in" {
                "agent_joined_queue"
            } else {
                "agent_left_queue"
            };
            let line = Feed::event(kind, &format!(r#""agent":"{}","queue":"hotline""#, r.agent));
            Feed { path: feed.clone() }.write(&[line]);
        }
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).push(r);
        let answer = r#"{"ok":true}"#;
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
        let _ = s.shutdown().await;
    }

    fn since(&self, from: usize) -> Vec<Request> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(from..).map(<[_]>::to_vec).unwrap_or_default()
    }

    fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// `GET path` on an instance; `None` when it does not answer.
async fn get(addr: &str, path: &str) -> Option<String> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        Some(out)
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// What an instance's `/metrics` says of the cluster: (CTI leader, caught up).
async fn cluster_state(addr: &str) -> Option<(bool, bool)> {
    let m = get(addr, "/metrics").await?;
    let one = |prefix: &str| {
        m.lines()
            .any(|l| l.starts_with(prefix) && l.trim_end().ends_with(" 1"))
    };
    Some((
        one("acd_cluster_cti_leader{"),
        one("acd_cluster_caught_up{"),
    ))
}

/// One `acdmon run` process.
struct Instance {
    name: String,
    cfg: PathBuf,
    log: PathBuf,
    addr: String,
    child: Option<Child>,
}

impl Instance {
    fn configure(dir: &Path, name: &str, nats: &str, feed: &Path, hook: &str, ttl: u64) -> Self {
        let port = free_port();
        let mut agents = String::new();
        for (_, group, _) in STAGES {
            for n in 1..=2 {
                agents.push_str(&format!(
                    "[[agents]]\nid = \"{group}{n}\"\ngroups = [\"{group}\"]\n"
                ));
            }
        }
        let mut stages = String::new();
        for (stage, group, above) in STAGES {
            stages.push_str(&format!(
                "[[ladders.stages]]\nname = \"{stage}\"\nwhen = \"waiting > {above}\"\nfor = \"0s\"\nsign_in = {{ group = \"{group}\" }}\n"
            ));
        }
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                r#"[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{db}"
[[queues]]
name = "hotline"
ladder = "surge"
{agents}
[[cti]]
name = "crm"
kind = "webhook"
url = "{hook}/{name}"
timeout = "2s"
retries = 0
default = true
[[ladders]]
name = "surge"
mode = "auto"
release_when = "waiting < 1"
release_hold = "{hold}s"
{stages}
[[sources]]
name = "feed"
kind = "json"
path = "{feed}"
follow = true
[cluster]
nats = ["{nats}"]
site = "north"
instance = "{name}"
lease_ttl = "{ttl}s"
"#,
                db = dir.join(format!("{name}.sqlite")).display(),
                feed = feed.display(),
                hold = HOLD.as_secs(),
            ),
        )
        .expect("config");
        Instance {
            name: name.into(),
            cfg,
            log: dir.join(format!("{name}.log")),
            addr: format!("127.0.0.1:{port}"),
            child: None,
        }
    }

    fn spawn(&mut self, bin: &Path) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(&self.cfg)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        self.child = Some(child);
    }

    fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.sigkill();
    }
}

type Instances = Arc<Vec<Mutex<Instance>>>;

fn addr(inst: &Instances, i: usize) -> String {
    inst[i]
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .addr
        .clone()
}

async fn wait_serving(addr: &str) {
    let t = Instant::now();
    while get(addr, "/healthz").await.is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{addr} did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Until every instance is caught up and exactly one leads; its index.
async fn settled(inst: &Instances) -> usize {
    let t = Instant::now();
    loop {
        let mut leaders = Vec::new();
        let mut all_caught_up = true;
        for i in 0..inst.len() {
            match cluster_state(&addr(inst, i)).await {
                Some((lead, caught_up)) => {
                    if lead {
                        leaders.push(i);
                    }
                    all_caught_up &= caught_up;
                }
                None => all_caught_up = false,
            }
        }
        if all_caught_up && leaders.len() == 1 {
            return leaders[0];
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no settled cluster after 60 s (leaders {leaders:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The feed file the `json` source follows; every line stamped now.
struct Feed {
    path: PathBuf,
}

impl Feed {
    fn write(&self, lines: &[String]) -> Instant {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .expect("feed");
        let mut text = String::new();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        f.write_all(text.as_bytes()).expect("feed write");
        Instant::now()
    }
    fn event(kind: &str, more: &str) -> String {
        format!(r#"{{"ts":{},"type":"{kind}",{more}}}"#, now_ms())
    }
}

/// What happened to one kill.
#[derive(Debug, Clone)]
struct Kill {
    at: Instant,
    offset: Duration,
    victim: String,
    /// Until another instance said it leads.
    takeover: Option<Duration>,
}

/// Kills the CTI leader `offset` into the walk, times the takeover, starts
/// the killed instance again.
async fn kill_leader(inst: Instances, bin: PathBuf, offset: Duration) -> Option<Kill> {
    tokio::time::sleep(offset).await;
    let mut victim = None;
    for i in 0..inst.len() {
        if let Some((true, _)) = cluster_state(&addr(&inst, i)).await {
            victim = Some(i);
            break;
        }
    }
    let v = victim?;
    let (at, name) = {
        let mut g = inst[v].lock().unwrap_or_else(|e| e.into_inner());
        g.sigkill();
        (Instant::now(), g.name.clone())
    };
    let mut takeover = None;
    'poll: while at.elapsed() < Duration::from_secs(60) {
        for i in (0..inst.len()).filter(|&i| i != v) {
            if let Some((true, _)) = cluster_state(&addr(&inst, i)).await {
                takeover = Some(at.elapsed());
                break 'poll;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let a = {
        let mut g = inst[v].lock().unwrap_or_else(|e| e.into_inner());
        g.spawn(&bin);
        g.addr.clone()
    };
    wait_serving(&a).await;
    Some(Kill {
        at,
        offset,
        victim: name,
        takeover,
    })
}

/// The receiver's verdict, applied request by request over the whole run.
#[derive(Default)]
struct Ledger {
    /// Every key seen, and the cycle that first sent it.
    keys: HashMap<String, usize>,
    /// Agents the receiver has signed in.
    signed_in: HashSet<String>,
}

#[derive(Debug, Default, Clone)]
struct Tally {
    requests: usize,
    same_key: usize,
    /// A key first seen in an earlier cycle: a new action the receiver drops.
    recycled_key: usize,
    other_key: usize,
    /// Blind to keys (a receiver that ignores them): requests beyond one
    /// per expected (verb, agent), and expected ones that never came.
    extra: usize,
    missing: usize,
    /// A stage's sign-in that no instance's audit log has: it came due
    /// while nobody led (after the kill, before the takeover) and the
    /// queue had drained by the takeover, so the new leader rightly did
    /// not decide it (docs/cluster.md, "One CTI leader per site").
    gap: usize,
    /// Lost: a sign-in no log has though its stage was still due when a
    /// leader was there to decide it.
    lost_undecided: usize,
    /// Lost: a sign-in a log has (decided) that never reached the
    /// receiver as a new action.
    lost_not_carried: usize,
    left_in: usize,
    /// Cycles whose ladder had not walked down on every instance.
    ladder_up: usize,
    /// Latest action after its due moment.
    max_late: Option<Duration>,
    /// From the kill to the first request after it.
    next_action: Option<Duration>,
    notes: Vec<String>,
}

impl Ledger {
    /// Applies one cycle's requests; `due` is when each (verb, agent) was due.
    fn apply(
        &mut self,
        cycle: usize,
        reqs: &[Request],
        due: &BTreeMap<(String, String), Instant>,
        kill: Option<&Kill>,
        logs: &Logs,
    ) -> Tally {
        let mut t = Tally {
            requests: reqs.len(),
            ..Tally::default()
        };
        // (verb, agent) -> (first arrival, further requests).
        let mut arrived: BTreeMap<(String, String), (Instant, usize)> = BTreeMap::new();
        // (verb, agent) the receiver carried out (not dropped as a repeat).
        let mut accepted: HashSet<(String, String)> = HashSet::new();
        for r in reqs {
            arrived
                .entry((r.verb.clone(), r.agent.clone()))
                .and_modify(|(_, n)| *n += 1)
                .or_insert((r.at, 0));
            if let Some(k) = &r.key
                && let Some(&first) = self.keys.get(k)
            {
                if first == cycle {
                    t.same_key += 1;
                    t.notes.push(format!(
                        "same-key repeat {} {} from {} (key {k}, attempt {})",
                        r.verb, r.agent, r.by, r.attempt
                    ));
                } else {
                    t.recycled_key += 1;
                    t.notes.push(format!(
                        "RECYCLED KEY {} {} from {} (key {k} first sent in cycle {first}): the receiver drops it",
                        r.verb, r.agent, r.by
                    ));
                }
                continue;
            }
            if let Some(k) = &r.key {
                self.keys.insert(k.clone(), cycle);
            }
            accepted.insert((r.verb.clone(), r.agent.clone()));
            let fresh = match r.verb.as_str() {
                "sign_in" => self.signed_in.insert(r.agent.clone()),
                _ => self.signed_in.remove(&r.agent),
            };
            if !fresh {
                t.other_key += 1;
                t.notes.push(format!(
                    "DUPLICATE {} {} from {} with a new key {:?} (attempt {})",
                    r.verb, r.agent, r.by, r.key, r.attempt
                ));
            }
        }
        t.extra = arrived.values().map(|(_, more)| more).sum();
        for ((verb, agent), when) in due {
            match arrived.get(&(verb.clone(), agent.clone())) {
                Some((at, _)) => {
                    let late = at.saturating_duration_since(*when);
                    t.max_late = t.max_late.max(Some(late));
                }
                None => t.missing += 1,
            }
            let accepted = accepted.contains(&(verb.clone(), agent.clone()));
            if verb != "sign_in" || accepted {
                continue;
            }
            if let Some(results) = logs.decided.get(&(verb.clone(), agent.clone())) {
                t.lost_not_carried += 1;
                t.notes.push(format!(
                    "LOST: {agent} never signed in, though decided (results in the logs: {results:?})"
                ));
            } else if kill.is_some_and(|k| in_the_gap(k, *when, logs.drained)) {
                t.gap += 1;
                t.notes.push(format!(
                    "gap: {agent}'s stage came due while nobody led and the queue had drained by the takeover: not decided (by design)"
                ));
            } else {
                t.lost_undecided += 1;
                t.notes.push(format!(
                    "LOST: {agent} never signed in, and no log has the decision"
                ));
            }
        }
        let left: Vec<String> = self.signed_in.drain().collect();
        for agent in &left {
            t.notes.push(format!("LOST: {agent} left signed in"));
        }
        t.left_in = left.len();
        if let Some(k) = kill {
            t.next_action = reqs
                .iter()
                .find(|r| r.at > k.at)
                .map(|r| r.at.duration_since(k.at));
        }
        t
    }
}

/// What a leader has at most to decide a stage before it counts as
/// having had the chance (a decision is written and appended in
/// milliseconds; this is generous).
const DECIDE: Duration = Duration::from_millis(250);

/// Did a stage due at `due` come due while nobody led, with the queue
/// drained by the takeover? The killed leader had under [`DECIDE`] for
/// it, and the new one took the lead after the hang-ups.
fn in_the_gap(k: &Kill, due: Instant, drained: Instant) -> bool {
    let Some(takeover) = k.takeover else {
        return false;
    };
    due + DECIDE > k.at && k.at + takeover > drained
}

/// What the instances' audit logs say of one cycle.
struct Logs {
    /// (verb, agent) decided in the cycle, with the results each log has.
    decided: HashMap<(String, String), Vec<String>>,
    /// When the callers hung up.
    drained: Instant,
}

impl Logs {
    /// Reads `/api/v1/escalations` of every instance that answers, from
    /// `since_ms` (epoch ms: entries carry event time, the feed's write time).
    async fn read(inst: &Instances, since_ms: u128, drained: Instant) -> Logs {
        let mut l = Logs {
            decided: HashMap::new(),
            drained,
        };
        for i in 0..inst.len() {
            let path = format!("/api/v1/escalations?queue=hotline&since={since_ms}");
            let Some(resp) = get(&addr(inst, i), &path).await else {
                continue;
            };
            let Some((_, body)) = resp.split_once("\r\n\r\n") else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_default();
            for e in v.as_array().into_iter().flatten() {
                for a in e["actions"].as_array().into_iter().flatten() {
                    let (Some(kind), Some(agent)) = (a["kind"].as_str(), a["agent"].as_str())
                    else {
                        continue;
                    };
                    if kind == "sign_in" || kind == "sign_out" {
                        l.decided
                            .entry((kind.to_string(), agent.to_string()))
                            .or_default()
                            .push(a["result"].as_str().unwrap_or("?").to_string());
                    }
                }
            }
        }
        l
    }
}

/// What one cycle came to.
struct Walk {
    /// When each (verb, agent) was due.
    due: BTreeMap<(String, String), Instant>,
    reqs: Vec<Request>,
    killed: Option<Kill>,
    /// Instances whose ladder was still up when the cycle ended.
    ladder_up: Vec<String>,
    logs: Logs,
}

/// One surge and calm; with `kill`, the leader dies `kill` into the walk.
async fn cycle(
    n: usize,
    feed: &Feed,
    receiver: &Receiver,
    inst: &Instances,
    bin: &Path,
    kill: Option<Duration>,
) -> Walk {
    let from = receiver.len();
    let start_ms = now_ms();
    let killer =
        kill.map(|offset| tokio::spawn(kill_leader(inst.clone(), bin.to_path_buf(), offset)));
    let mut due = BTreeMap::new();
    let calls: Vec<String> = (1..=CALLERS).map(|i| format!("k{n}-{i}")).collect();
    for (i, call) in calls.iter().enumerate() {
        let at = feed.write(&[Feed::event(
            "call_enqueued",
            &format!(r#""call":"{call}","queue":"hotline""#),
        )]);
        for (_, group, above) in STAGES {
            if i as u32 + 1 == above + 1 {
                for m in 1..=2 {
                    due.insert(("sign_in".to_string(), format!("{group}{m}")), at);
                }
            }
        }
        tokio::time::sleep(STEP).await;
    }
    tokio::time::sleep(TOP).await;
    let hangups: Vec<String> = calls
        .iter()
        .map(|c| {
            Feed::event(
                "call_abandoned",
                &format!(r#""call":"{c}","queue":"hotline""#),
            )
        })
        .collect();
    let drained = feed.write(&hangups);
    // Released newest first, one stage per hold.
    for (k, (_, group, _)) in STAGES.iter().rev().enumerate() {
        let at = drained + HOLD * (k as u32 + 1);
        for m in 1..=2 {
            due.insert(("sign_out".to_string(), format!("{group}{m}")), at);
        }
    }
    let last_due = drained + HOLD * STAGES.len() as u32;
    let killed = match killer {
        Some(k) => k.await.ok().flatten(),
        None => None,
    };
    settled(inst).await;
    // Until every expected action came and every instance's ladder is down
    // (a stale request of an earlier cycle must not end this one early), or
    // the grace ran out.
    let mut up = Vec::new();
    loop {
        let reqs = receiver.since(from);
        let got: HashSet<(String, String)> = reqs
            .iter()
            .map(|r| (r.verb.clone(), r.agent.clone()))
            .collect();
        up.clear();
        for i in 0..inst.len() {
            let a = addr(inst, i);
            if ladder_up(&a).await != Some(false) {
                let name = inst[i]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .name
                    .clone();
                up.push(name);
            }
        }
        let done = due.keys().all(|k| got.contains(k)) && up.is_empty();
        if (done && Instant::now() > last_due) || Instant::now() > last_due + GRACE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Repeats of this cycle land now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Walk {
        due,
        reqs: receiver.since(from),
        killed,
        ladder_up: up,
        logs: Logs::read(inst, start_ms, drained).await,
    }
}

/// Whether an instance's `hotline` has an escalation going (`None`: no answer).
async fn ladder_up(addr: &str) -> Option<bool> {
    let resp = get(addr, "/api/v1/queues").await?;
    let (_, body) = resp.split_once("\r\n\r\n")?;
    let v: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    let queues = v.as_array().or_else(|| v["queues"].as_array())?;
    let q = queues.iter().find(|q| q["queue"] == "hotline")?;
    Some(!q["escalation"].is_null())
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// min / median / p90 / max of some durations, in seconds.
fn spread(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "min {} s, median {} s, p90 {} s, max {} s (n={})",
        secs(at(0.0)),
        secs(at(0.5)),
        secs(at(0.9)),
        secs(at(1.0)),
        v.len()
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let bin = std::env::var_os("ACDMON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("exe");
            exe.parent()
                .and_then(Path::parent)
                .map(|d| d.join("acdmon"))
                .expect("target dir")
        });
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_path_buf();
    let nats_port = free_port();
    let mut nats = Command::new("nats-server")
        .args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &nats_port.to_string(),
            "-sd",
        ])
        .arg(dir.join("js"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server (scripts/install-nats.sh)");
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", nats_port)).await.is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "nats-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let receiver = Receiver {
        membership: a.membership.then(|| dir.join("feed.jsonl")),
        ..Receiver::default()
    };
    let hook = receiver.start().await;
    let feed = Feed {
        path: dir.join("feed.jsonl"),
    };
    std::fs::write(&feed.path, "").expect("feed");
    let names = ["east", "west", "south"];
    let inst: Instances = Arc::new(
        names[..a.instances]
            .iter()
            .map(|name| {
                let url = format!("nats://127.0.0.1:{nats_port}");
                Mutex::new(Instance::configure(
                    &dir,
                    name,
                    &url,
                    &feed.path,
                    &hook,
                    a.lease_ttl,
                ))
            })
            .collect(),
    );
    for i in 0..inst.len() {
        let a = {
            let mut g = inst[i].lock().unwrap_or_else(|e| e.into_inner());
            g.spawn(&bin);
            g.addr.clone()
        };
        wait_serving(&a).await;
    }
    // Every agent logged in and idle, once.
    let agents: Vec<String> = STAGES
        .iter()
        .flat_map(|(_, g, _)| {
            (1..=2).map(move |m| {
                Feed::event(
                    "agent_state",
                    &format!(r#""agent":"{g}{m}","state":"available""#),
                )
            })
        })
        .collect();
    feed.write(&agents);
    settled(&inst).await;
    println!(
        "ladder_failover: {} instances, lease_ttl {} s, {} baseline cycles then {} kill cycles, seed {}, membership in the feed {}, dir {}",
        a.instances,
        a.lease_ttl,
        a.baseline,
        a.kills,
        a.seed,
        if a.membership { "yes" } else { "no" },
        dir.display()
    );
    let mut rng = StdRng::seed_from_u64(a.seed);
    let walk = STEP * CALLERS + TOP + HOLD * STAGES.len() as u32;
    let mut ledger = Ledger::default();
    let mut totals: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut late: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut takeovers = Vec::new();
    let mut next_actions = Vec::new();
    let mut failed_cycles = Vec::new();
    for n in 1..=a.baseline + a.kills {
        let kind = if n <= a.baseline { "baseline" } else { "kill" };
        let offset = (kind == "kill").then(|| walk.mul_f64(rng.random::<f64>()));
        let w = cycle(n, &feed, &receiver, &inst, &bin, offset).await;
        let killed = w.killed;
        let mut t = ledger.apply(n, &w.reqs, &w.due, killed.as_ref(), &w.logs);
        if !w.ladder_up.is_empty() {
            t.ladder_up = 1;
            t.notes.push(format!(
                "LADDER NOT DOWN on {:?} {} s after the last release was due",
                w.ladder_up,
                GRACE.as_secs()
            ));
        }
        let mut line = format!(
            "cycle {n:3} {kind:8} requests {:2} same-key {} recycled-key {} other-key {} lost {} gap {} (key-blind: extra {} missing {}) late {}",
            t.requests,
            t.same_key,
            t.recycled_key,
            t.other_key,
            t.lost_undecided + t.lost_not_carried + t.left_in,
            t.gap,
            t.extra,
            t.missing,
            t.max_late.map(secs).unwrap_or_else(|| "-".into()),
        );
        if let Some(k) = &killed {
            line.push_str(&format!(
                " | killed {} at {} s, takeover {}, next action {}",
                k.victim,
                secs(k.offset),
                k.takeover.map(secs).unwrap_or_else(|| "none".into()),
                t.next_action.map(secs).unwrap_or_else(|| "-".into()),
            ));
            takeovers.extend(k.takeover);
            next_actions.extend(t.next_action);
        } else if kind == "kill" {
            line.push_str(" | no leader to kill");
        }
        println!("{line}");
        for note in &t.notes {
            println!("    {note}");
        }
        if t.other_key + t.lost_undecided + t.lost_not_carried + t.left_in + t.ladder_up > 0 {
            failed_cycles.push(n);
        }
        late.entry(kind).or_default().extend(t.max_late);
        let sum = totals.entry(kind).or_default();
        sum.requests += t.requests;
        sum.same_key += t.same_key;
        sum.recycled_key += t.recycled_key;
        sum.other_key += t.other_key;
        sum.lost_undecided += t.lost_undecided;
        sum.lost_not_carried += t.lost_not_carried;
        sum.gap += t.gap;
        sum.left_in += t.left_in;
        sum.ladder_up += t.ladder_up;
        sum.extra += t.extra;
        sum.missing += t.missing;
    }
    println!(
        "--- summary (seed {}, {} instances, lease_ttl {} s)",
        a.seed, a.instances, a.lease_ttl
    );
    for kind in ["baseline", "kill"] {
        let Some(s) = totals.get(kind) else { continue };
        println!(
            "{kind:8}: requests {}, same-key repeats {}, recycled keys {}, different-key duplicates {}, lost sign-ins (never decided though due {}, decided never carried out {}), left signed in {}, ladder not down {}; due while nobody led and over at takeover (not decided, by design) {}; key-blind: extra requests {}, missing {}; latest action per cycle: {}",
            s.requests,
            s.same_key,
            s.recycled_key,
            s.other_key,
            s.lost_undecided,
            s.lost_not_carried,
            s.left_in,
            s.ladder_up,
            s.gap,
            s.extra,
            s.missing,
            spread(late.remove(kind).unwrap_or_default())
        );
    }
    println!("CTI lease takeover after SIGKILL: {}", spread(takeovers));
    println!("kill -> next webhook request: {}", spread(next_actions));
    if !failed_cycles.is_empty() {
        println!("cycles with a duplicate (new key) or a lost action: {failed_cycles:?}");
    }
    if a.keep {
        let mut out = String::new();
        let start = receiver.since(0).first().map(|r| r.at);
        for r in receiver.since(0) {
            let t = start.map(|s| r.at.duration_since(s)).unwrap_or_default();
            out.push_str(&format!(
                "{}\n",
                serde_json::json!({"t_s": t.as_secs_f64(), "by": r.by, "verb": r.verb,
                    "agent": r.agent, "key": r.key, "attempt": r.attempt})
            ));
        }
        let _ = std::fs::write(dir.join("requests.jsonl"), out);
        let kept = tmp.keep();
        println!("kept {}", kept.display());
    }
    drop(inst);
    let _ = nats.kill();
    let _ = nats.wait();
    if !failed_cycles.is_empty() {
        std::process::exit(1);
    }
}
