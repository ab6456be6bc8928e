//! Failover times of cluster mode over repeated SIGKILLs: a real
//! `nats-server` and two `acdmon run` processes; the instance that holds
//! the site's CTI lease (and, usually, the source's) is killed at a random
//! moment, the time until the other one holds both leases is measured, and
//! the killed one is started again. Prints the distribution.
//!
//! Run: `cargo build --release && cargo run --release --example
//! cluster_failover -- [kills] [lease_ttl_seconds]` (defaults 20 and 2; the
//! `acdmon` binary is taken from the same target directory, or
//! `ACDMON_BIN`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// (CTI leader, feed ingester) as this instance's /metrics say.
fn leases(addr: &str) -> (bool, bool) {
    let m = get(addr, "/metrics").unwrap_or_default();
    let held = |prefix: &str| {
        m.lines()
            .any(|l| l.starts_with(prefix) && l.trim_end().ends_with(" 1"))
    };
    (
        held("acd_cluster_cti_leader{"),
        held("acd_cluster_lease_held{source=\"feed\""),
    )
}

struct Instance {
    cfg: PathBuf,
    addr: String,
    child: Option<Child>,
}

impl Instance {
    fn start(&mut self, bin: &Path) {
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(&self.cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("acdmon");
        self.child = Some(child);
        let t = Instant::now();
        while get(&self.addr, "/healthz").is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "acdmon did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kills: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let ttl: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2);
    let bin = std::env::var_os("ACDMON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("exe");
            exe.parent()
                .and_then(Path::parent)
                .map(|d| d.join("acdmon"))
                .expect("target dir")
        });
    let dir = tempfile::tempdir().expect("temp dir");
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
        .arg(dir.path().join("js"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server (scripts/install-nats.sh)");
    std::thread::sleep(Duration::from_millis(300));
    let feed = dir.path().join("feed.jsonl");
    std::fs::write(&feed, "").expect("feed");
    let mut inst: Vec<Instance> = ["east", "west"]
        .iter()
        .map(|name| {
            let port = free_port();
            let cfg = dir.path().join(format!("{name}.toml"));
            std::fs::write(
                &cfg,
                format!(
                    "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{db}\"\n\
                     [[queues]]\nname = \"hotline\"\n\
                     [[cti]]\nname = \"crm\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\ndefault = true\n\
                     [[sources]]\nname = \"feed\"\nkind = \"json\"\npath = \"{feed}\"\nfollow = true\n\
                     [cluster]\nnats = [\"nats://127.0.0.1:{nats_port}\"]\nsite = \"north\"\ninstance = \"{name}\"\nlease_ttl = \"{ttl}s\"\n",
                    db = dir.path().join(format!("{name}.sqlite")).display(),
                    feed = feed.display(),
                ),
            )
            .expect("config");
            Instance {
                cfg,
                addr: format!("127.0.0.1:{port}"),
                child: None,
            }
        })
        .collect();
    for i in &mut inst {
        i.start(&bin);
    }
    let mut times = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for k in 0..kills {
        // Wait for one leader holding both leases.
        let t = Instant::now();
        let leader = loop {
            let l: Vec<(bool, bool)> = inst.iter().map(|i| leases(&i.addr)).collect();
            if let Some(n) = l.iter().position(|&(c, f)| c && f) {
                break n;
            }
            if let Some(n) = l.iter().position(|&(c, _)| c) {
                // The two leases on different instances: kill the CTI leader.
                break n;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "no leader");
            std::thread::sleep(Duration::from_millis(20));
        };
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 1000));
        let other = 1 - leader;
        inst[leader].kill();
        let killed = Instant::now();
        loop {
            let (c, _) = leases(&inst[other].addr);
            if c {
                break;
            }
            assert!(killed.elapsed() < Duration::from_secs(60), "no takeover");
            std::thread::sleep(Duration::from_millis(10));
        }
        let took = killed.elapsed();
        eprintln!("kill {}: takeover {:.2} s", k + 1, took.as_secs_f64());
        times.push(took.as_secs_f64());
        inst[leader].start(&bin);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "CTI leader takeover after SIGKILL, {} kills, lease_ttl {ttl} s: min {:.2} s, median {:.2} s, p90 {:.2} s, max {:.2} s",
        times.len(),
        at(0.0),
        at(0.5),
        at(0.9),
        at(1.0)
    );
    drop(inst);
    let _ = nats.kill();
    let _ = nats.wait();
}
