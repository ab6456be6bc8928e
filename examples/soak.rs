//! Soak: does the daemon's memory stay flat under steady traffic once the
//! rolling window is full?
//!
//! Starts the real binary (`acdmon run`, release build expected next to
//! this example) with a JSON TCP source and storage in a temp dir, feeds a
//! steady stream of call lifecycles and agent changes at `--rate` events/s
//! (stamped with the current time, so windows roll and intervals close as
//! they would live), and samples the daemon's resident set size
//! (`/proc/PID/status` VmRSS) every `--sample` seconds. The rolling window
//! is `--window` long, so the run should last well past it: before it fills
//! the window's contents grow; after it, memory must stay flat.
//!
//! Prints one CSV line per sample (`elapsed_s,rss_kib,events_sent`) and, at
//! the end, one JSON line with the first sample after the window filled,
//! the last, the min and max after the window filled and their spread.
//!
//! Run (30 minutes at 2,000 events/s past a 15-minute window):
//!   cargo build --release && cargo run --release --example soak -- --minutes 30 --rate 2000 --window 15m
//! A short check: `--minutes 3 --window 1m --sample 10`. `--checkpoint-every
//! 0s` runs without engine checkpoints (a baseline for their memory cost).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

struct Args {
    minutes: u64,
    rate: u64,
    window: String,
    sample_s: u64,
    queues: usize,
    agents: usize,
    binary: String,
    /// `[storage] checkpoint_every` ("0s": off; the baseline run).
    checkpoint_every: String,
}

fn args() -> Args {
    let mut a = Args {
        minutes: 30,
        rate: 2000,
        window: "15m".into(),
        sample_s: 30,
        queues: 50,
        agents: 1000,
        binary: "target/release/acdmon".into(),
        checkpoint_every: "5s".into(),
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < v.len() {
        let val = v[i + 1].clone();
        match v[i].as_str() {
            "--minutes" => a.minutes = val.parse().expect("--minutes N"),
            "--rate" => a.rate = val.parse().expect("--rate N"),
            "--window" => a.window = val,
            "--sample" => a.sample_s = val.parse().expect("--sample SECONDS"),
            "--queues" => a.queues = val.parse().expect("--queues N"),
            "--agents" => a.agents = val.parse().expect("--agents N"),
            "--binary" => a.binary = val,
            "--checkpoint-every" => a.checkpoint_every = val,
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One step of the traffic: a call enters, is answered or abandoned, and
/// completes; agents flip between available and wrap-up. Every call leaves,
/// so the waiting lists stay bounded and only the windows grow.
struct Traffic {
    queues: usize,
    agents: usize,
    n: u64,
}

impl Traffic {
    fn next_lines(&mut self, out: &mut String) {
        use std::fmt::Write;
        let ts = now_ms();
        let n = self.n;
        self.n += 1;
        let q = (n as usize) % self.queues;
        let a = (n as usize) % self.agents;
        let call = format!("s{n}");
        let _ = writeln!(
            out,
            r#"{{"ts":{ts},"type":"call_enqueued","call":"{call}","queue":"q{q}"}}"#
        );
        if n.is_multiple_of(10) {
            let _ = writeln!(
                out,
                r#"{{"ts":{ts},"type":"call_abandoned","call":"{call}","queue":"q{q}"}}"#
            );
        } else {
            let _ = writeln!(
                out,
                r#"{{"ts":{ts},"type":"call_answered","call":"{call}","queue":"q{q}","agent":"a{a}"}}"#
            );
            let _ = writeln!(
                out,
                r#"{{"ts":{ts},"type":"call_completed","call":"{call}","queue":"q{q}","agent":"a{a}"}}"#
            );
            let _ = writeln!(
                out,
                r#"{{"ts":{ts},"type":"agent_state","agent":"a{a}","state":"available"}}"#
            );
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("a temp dir");
    let http = free_port();
    let feed = free_port();
    let cfg = dir.path().join("soak.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{http}\"\n[storage]\npath = \"{}/soak.sqlite\"\ncheckpoint_every = \"{}\"\n\
             [defaults]\nrolling_window = \"{}\"\n\
             [[sources]]\nname = \"feed\"\nkind = \"json\"\nlisten = \"127.0.0.1:{feed}\"\n",
            dir.path().display(),
            a.checkpoint_every,
            a.window
        ),
    )
    .expect("write the config");
    let mut child = Command::new(&a.binary)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("ACDMON_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (cargo build --release first)",
                a.binary
            )
        });
    let pid = child.id();
    let mut sock = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", feed)).await {
            sock = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut sock = sock.expect("the daemon's feed listens");
    let window = humantime::parse_duration(&a.window).expect("--window like 15m");
    let start = Instant::now();
    let end = start + Duration::from_secs(a.minutes * 60);
    // Each step writes 1 (abandon: 2) to 4 events; 3.7 on average.
    let steps_per_s = (a.rate as f64 / 3.7).max(1.0);
    let tick = Duration::from_millis(10);
    let per_tick = steps_per_s * tick.as_secs_f64();
    let mut traffic = Traffic {
        queues: a.queues,
        agents: a.agents,
        n: 0,
    };
    let mut owed = 0.0f64;
    let mut sent_events = 0u64;
    let mut next_sample = start;
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut buf = String::new();
    let stdout = std::io::stdout();
    writeln!(stdout.lock(), "elapsed_s,rss_kib,events_sent").ok();
    let mut interval = tokio::time::interval(tick);
    while Instant::now() < end {
        interval.tick().await;
        owed += per_tick;
        buf.clear();
        while owed >= 1.0 {
            traffic.next_lines(&mut buf);
            owed -= 1.0;
        }
        sent_events += buf.lines().count() as u64;
        if sock.write_all(buf.as_bytes()).await.is_err() {
            eprintln!("soak: the daemon closed the feed");
            break;
        }
        if Instant::now() >= next_sample {
            let el = start.elapsed().as_secs_f64();
            let rss = rss_kib(pid).unwrap_or(0);
            samples.push((el, rss));
            writeln!(stdout.lock(), "{el:.0},{rss},{sent_events}").ok();
            next_sample += Duration::from_secs(a.sample_s);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let full = window.as_secs_f64() + a.sample_s as f64;
    let after: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= full)
        .map(|(_, r)| *r)
        .collect();
    let (min, max) = (
        after.iter().copied().min().unwrap_or(0),
        after.iter().copied().max().unwrap_or(0),
    );
    println!(
        "{}",
        serde_json::json!({
            "minutes": a.minutes,
            "rate_events_per_s": a.rate,
            "events_sent": sent_events,
            "window": a.window,
            "samples_after_window_filled": after.len(),
            "rss_kib_first_after_fill": after.first(),
            "rss_kib_last": after.last(),
            "rss_kib_min_after_fill": min,
            "rss_kib_max_after_fill": max,
            "spread_kib_after_fill": max.saturating_sub(min),
        })
    );
}
