//! A daemon asked to stop (SIGTERM, as systemd does) stops serving, lets the
//! engine apply what came before and drop its observers (the interval
//! history writer flushes on drop), and exits 0 promptly.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{eventually, free_port, http};

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_engine_cleanly_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("acdmon.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_token = \"boss\"\n\
             [storage]\npath = \"{}/acdmon.sqlite\"\n[[queues]]\nname = \"hotline\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("ACDMON_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    eventually(LIMIT, "the daemon serves", || {
        let a = addr.clone();
        async move {
            tokio::net::TcpStream::connect(&a).await.ok()?;
            (http(&a, "GET", "/healthz", None, "").await.status == 200).then_some(())
        }
    })
    .await;
    let now = acdmon::time::Ts::now().0;
    let r = http(
        &addr,
        "POST",
        "/api/v1/events",
        Some("boss"),
        &format!(
            "{{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"c1\",\"queue\":\"hotline\"}}\n"
        ),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("the daemon did not exit within {LIMIT:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("shutting down"), "{text}");
    assert!(text.contains("engine stopped: shutdown"), "{text}");
}
