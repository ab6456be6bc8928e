//! Clients that are slow, oversized, unauthenticated or carry bad secrets,
//! against a running daemon over real sockets (issue 11, items 3, 5, 7):
//! an empty token is a config error; a client sending a byte a second can
//! neither hold a connection without a token nor delay SIGTERM past the
//! drain period; a 10 MB body is read line by line; the engine's refusals
//! reach the POST answer; errors are JSON; the `json` listen source locks
//! its door and bounds its producers.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acdmon::config::Config;
use serde_json::Value;
use support::{eventually, free_port, http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(10);

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_acdmon"))
}

fn now_ms() -> i64 {
    acdmon::time::Ts::now().0
}

fn enqueue(queue: &str, call: &str) -> String {
    format!(
        "{{\"ts\":{},\"type\":\"call_enqueued\",\"call\":\"{call}\",\"queue\":\"{queue}\"}}\n",
        now_ms()
    )
}

/// An in-process daemon serving on a free port; returns its address.
async fn daemon(text: &str) -> String {
    let cfg = Config::parse("t.toml", text).unwrap();
    let d = acdmon::daemon::start(cfg, Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(acdmon::daemon::serve_on(listener, d.state.clone()));
    addr
}

async fn waiting(addr: &str, queue: &str) -> Option<u64> {
    let r = http(
        addr,
        "GET",
        &format!("/api/v1/queues/{queue}"),
        Some("boss"),
        "",
    )
    .await;
    let v: Value = serde_json::from_str(&r.body).ok()?;
    v["waiting"].as_u64()
}

// ---- item 3: empty secrets -------------------------------------------------

#[test]
fn empty_tokens_are_refused_by_check_config_and_run_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let empty_file = dir.path().join("token");
    std::fs::write(&empty_file, "\n").unwrap();
    let cases = [
        ("inline empty", "admin_token = \"\"".to_string()),
        ("inline blank", "admin_token = \"   \"".to_string()),
        (
            "env: empty",
            "admin_token = \"env:ACDMON_T_EMPTY\"".to_string(),
        ),
        (
            "file: empty",
            format!("admin_token = \"file:{}\"", empty_file.display()),
        ),
    ];
    for (what, line) in cases {
        let cfg = dir.path().join("acdmon.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\nlisten = \"127.0.0.1:{}\"\n{line}\n[storage]\npath = \"{}/db.sqlite\"\n",
                free_port(),
                dir.path().display()
            ),
        )
        .unwrap();
        let out = bin()
            .arg("check-config")
            .arg(&cfg)
            .env("ACDMON_T_EMPTY", "")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{what}: check-config said ok: {err}");
        let at = format!("{}:3:", cfg.display());
        assert!(
            err.contains(&at) && err.contains("empty"),
            "{what}: no position {at} or reason in: {err}"
        );

        let mut child = bin()
            .args(["run", "--config"])
            .arg(&cfg)
            .env("ACDMON_T_EMPTY", "")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > LIMIT {
                let _ = child.kill();
                panic!("{what}: `run` started with an empty token");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(!status.success(), "{what}: {err}");
        assert!(err.contains(&at), "{what}: {err}");
    }
}

#[test]
fn an_empty_ami_secret_is_a_config_error_too() {
    let text = "[[sources]]\nname = \"pbx\"\nkind = \"ami\"\naddress = \"127.0.0.1:5038\"\nusername = \"acd\"\nsecret = \" \"\n";
    let errs = Config::parse("t.toml", text).unwrap_err();
    let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert!(
        shown
            .iter()
            .any(|e| e.starts_with("t.toml:6:") && e.contains("empty")),
        "{shown:?}"
    );
}

// ---- item 5: slow clients ----------------------------------------------------

/// A real daemon process with the given `[server]` extras.
struct Proc {
    child: std::process::Child,
    addr: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn spawn_daemon(server_extra: &str) -> Proc {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("acdmon.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_token = \"boss\"\n{server_extra}\n\
             [storage]\npath = \"{}/acdmon.sqlite\"\n[[queues]]\nname = \"hotline\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let child = bin()
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
            TcpStream::connect(&a).await.ok()?;
            (http(&a, "GET", "/healthz", None, "").await.status == 200).then_some(())
        }
    })
    .await;
    Proc {
        child,
        addr,
        log,
        _dir: dir,
    }
}

/// Writes `head` at once, then `trickle` one byte every 200 ms, forever.
fn trickle(addr: &str, head: String, trickle: &'static [u8]) -> tokio::task::JoinHandle<()> {
    let addr = addr.to_string();
    tokio::spawn(async move {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for b in trickle.iter().cycle() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(&[*b]).await.is_err() {
                return;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_delay_sigterm_beyond_the_drain_period() {
    let drain = Duration::from_secs(2);
    let mut p = spawn_daemon("shutdown_drain = \"2s\"").await;
    // A body a byte at a time, with the admin token (so it is being read).
    let slow_body = trickle(
        &p.addr,
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer boss\r\n\
         Content-Length: 100000\r\n\r\n"
            .into(),
        b" ",
    );
    // Headers a byte at a time (slowloris).
    let slowloris = trickle(
        &p.addr,
        "GET /api/v1/queues HTTP/1.1\r\nHost: x\r\n".into(),
        b"X-a: b\r\n",
    );
    // Both are connected and trickling.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let term = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > drain + Duration::from_secs(3) {
            let _ = p.child.kill();
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            panic!(
                "still running {:?} after SIGTERM (drain {drain:?}): {text}",
                start.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = std::fs::read_to_string(&p.log).unwrap();
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("shutting down"), "{text}");
    assert!(text.contains("engine stopped: shutdown"), "{text}");
    slow_body.abort();
    slowloris.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_connection_is_closed_after_the_header_timeout() {
    let mut p = spawn_daemon("header_timeout = \"1s\"").await;
    let mut s = TcpStream::connect(&p.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let closed = async {
        let mut buf = [0u8; 1024];
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(b"X").await.is_err() {
                return;
            }
            match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("a client sending headers a byte at a time was not cut off");
    assert!(start.elapsed() >= Duration::from_millis(800));
    let _ = p.child.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_post_is_refused_before_its_body_is_read() {
    let addr = daemon("[server]\nadmin_token = \"boss\"\n").await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    // Promises a megabyte, sends none of it.
    s.write_all(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("the daemon waited for the body of an unauthenticated request")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(text.contains("\"error\""), "{text}");

    // The same with a wrong token in the query: 403, also before the body.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"POST /api/v1/events?token= HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
    )
    .await
    .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("the daemon waited for the body")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slower_than_body_timeout_gets_408_and_keeps_its_complete_lines() {
    let addr = daemon("[server]\nadmin_token = \"boss\"\nbody_timeout = \"1s\"\n").await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let line = enqueue("slowq", "s1");
    s.write_all(
        format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer boss\r\n\
             Content-Length: 100000\r\nConnection: close\r\n\r\n{line}"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let start = Instant::now();
    let reply = async {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = s.write_all(b" ").await;
            if let Ok(r) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
                match r {
                    Ok(0) | Err(_) => return out,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        }
    };
    let out = tokio::time::timeout(Duration::from_secs(5), reply)
        .await
        .expect("a body sent a byte every 200 ms was read for 5 s");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"accepted\":1"), "{text}");
    assert!(start.elapsed() >= Duration::from_millis(800));
    eventually(LIMIT, "the complete line applied", || {
        let a = addr.clone();
        async move { (waiting(&a, "slowq").await == Some(1)).then_some(()) }
    })
    .await;
}

// ---- item 7: oversized bodies, engine verdicts, JSON errors ---------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mb_body_is_read_line_by_line_with_a_long_line_in_the_middle() {
    let addr = daemon("[server]\nadmin_token = \"boss\"\n").await;
    let n = 140_000;
    let mut body = String::with_capacity(11 << 20);
    for i in 0..n {
        if i == n / 2 {
            body.push_str(&format!("{{\"pad\":\"{}\"}}\n", "x".repeat(100 << 10)));
        }
        body.push_str(&enqueue("big", &format!("call-{i:06}")));
    }
    assert!(body.len() > 10 << 20, "{}", body.len());
    let r = http(&addr, "POST", "/api/v1/events", Some("boss"), &body).await;
    assert_eq!(r.status, 202, "{}", &r.body[..r.body.len().min(500)]);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["accepted"], n);
    assert_eq!(v["rejected_total"], 1);
    assert_eq!(v["rejected"][0]["reason"], "line_too_long");
    assert_eq!(v["rejected"][0]["line"], n / 2 + 1);
    eventually(LIMIT, "every call waiting", || {
        let a = addr.clone();
        async move { (waiting(&a, "big").await == Some(n)).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_refusals_are_in_the_post_answer() {
    let addr = daemon("[server]\nadmin_token = \"boss\"\n").await;
    let t = now_ms();
    let body = format!(
        "{}{}{{\"ts\":{t},\"type\":\"call_abandoned\",\"call\":\"ghost\",\"queue\":\"q\"}}\nnot json\n",
        enqueue("q", "c1"),
        enqueue("q", "c1"),
    );
    let r = http(&addr, "POST", "/api/v1/events", Some("boss"), &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["accepted"], 1, "{v}");
    let got: Vec<(u64, String)> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "duplicate_call".to_string()),
            (3, "unknown_call".to_string()),
            (4, "invalid_json".to_string()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_is_json() {
    let addr = daemon("[server]\nadmin_token = \"boss\"\nread_token = \"reader\"\n").await;
    for (method, path, token, want) in [
        ("GET", "/nowhere", Some("boss"), 404),
        ("GET", "/api/v1/queues", None, 401),
        ("POST", "/api/v1/events", Some("reader"), 403),
        ("DELETE", "/api/v1/queues", Some("boss"), 405),
        ("GET", "/api/v1/queues/nope", Some("boss"), 404),
        ("POST", "/api/v1/escalations/1/approve", Some("boss"), 400),
    ] {
        let body = if want == 400 { "{not json" } else { "" };
        let r = http(&addr, method, path, token, body).await;
        // No ladder is configured: approve answers 4xx before parsing; any
        // 4xx must be JSON.
        assert!(r.status >= 400, "{method} {path}: {}", r.status);
        if want != 400 {
            assert_eq!(r.status, want, "{method} {path}: {}", r.body);
        }
        let v: Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {:?}", r.body));
        assert!(v["error"].is_string(), "{method} {path}: {v}");
    }
}

// ---- item 7: the json listen source ------------------------------------------

async fn producer(port: u16, first: &str, lines: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // A refused producer may find the connection closed already.
    let _ = s.write_all(first.as_bytes()).await;
    let _ = s.write_all(lines.as_bytes()).await;
    s
}

async fn read_line(s: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 256];
    match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).to_string(),
        _ => String::new(),
    }
}

async fn rejected(addr: &str, source: &str, reason: &str) -> u64 {
    let r = http(addr, "GET", "/metrics", None, "").await;
    let key =
        format!("acd_source_events_rejected_total{{source=\"{source}\",reason=\"{reason}\"}} ");
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_listen_source_wants_its_token_and_bounds_its_producers() {
    let port = free_port();
    let addr = daemon(&format!(
        "[server]\nadmin_token = \"boss\"\n[[sources]]\nname = \"feed\"\nkind = \"json\"\n\
         listen = \"127.0.0.1:{port}\"\ntoken = \"sesame\"\nmax_connections = 2\n"
    ))
    .await;
    eventually(LIMIT, "the feed listens", || async move {
        TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;

    // No AUTH line: refused, nothing applied.
    let mut s = producer(port, "", &enqueue("door", "x1")).await;
    assert_eq!(read_line(&mut s).await, "ERR unauthorized\n");
    // A wrong token: refused.
    let mut s = producer(port, "AUTH open\n", &enqueue("door", "x2")).await;
    assert_eq!(read_line(&mut s).await, "ERR unauthorized\n");
    eventually(LIMIT, "two refusals counted", || {
        let a = addr.clone();
        async move { (rejected(&a, "feed", "unauthorized").await == 2).then_some(()) }
    })
    .await;

    // The right token: its lines arrive (the first one in the same packet).
    let a = producer(port, "AUTH sesame\n", &enqueue("door", "ok1")).await;
    let b = producer(port, "AUTH sesame\n", &enqueue("door", "ok2")).await;
    eventually(LIMIT, "both producers' calls", || {
        let a = addr.clone();
        async move { (waiting(&a, "door").await == Some(2)).then_some(()) }
    })
    .await;
    // Two producers connected: a third is refused and counted.
    let mut c = producer(port, "AUTH sesame\n", &enqueue("door", "no3")).await;
    assert_eq!(read_line(&mut c).await, "ERR too many connections\n");
    assert_eq!(rejected(&addr, "feed", "connection_limit").await, 1);
    // One leaves: a new one is let in.
    drop(a);
    eventually(LIMIT, "a slot is free again", || async move {
        let mut s = producer(port, "AUTH sesame\n", &enqueue("door", "ok3")).await;
        let r = tokio::time::timeout(Duration::from_millis(300), s.read(&mut [0u8; 64])).await;
        // Not refused: no answer (the feed is one-way).
        r.is_err().then_some(s)
    })
    .await;
    eventually(LIMIT, "the third call", || {
        let a = addr.clone();
        async move { (waiting(&a, "door").await == Some(3)).then_some(()) }
    })
    .await;
    assert_eq!(waiting(&addr, "door").await, Some(3));
    drop(b);
}

#[test]
fn check_config_validates_the_json_listen_keys() {
    let bad = "[[sources]]\nname = \"f\"\nkind = \"json\"\npath = \"x.jsonl\"\ntoken = \"t\"\n";
    let errs = Config::parse("t.toml", bad).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.message.contains("`listen` json source only")),
        "{errs:?}"
    );
    let zero = "[[sources]]\nname = \"f\"\nkind = \"json\"\nlisten = \"127.0.0.1:1\"\nmax_connections = 0\n";
    let errs = Config::parse("t.toml", zero).unwrap_err();
    assert!(
        errs.iter().any(|e| e.message.contains("max_connections")),
        "{errs:?}"
    );
    let empty =
        "[[sources]]\nname = \"f\"\nkind = \"json\"\nlisten = \"127.0.0.1:1\"\ntoken = \"\"\n";
    let errs = Config::parse("t.toml", empty).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.line == 5 && e.message.contains("empty")),
        "{errs:?}"
    );
}

#[test]
fn every_kind_of_secret_refuses_empty() {
    let cases = [
        (
            "webhook token",
            "[[cti]]\nname = \"crm\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9000/x\"\ntoken = \"\"\n",
            5,
        ),
        (
            "esl password",
            "[[sources]]\nname = \"fs\"\nkind = \"esl\"\naddress = \"127.0.0.1:8021\"\npassword = \"  \"\n",
            5,
        ),
        (
            "hep auth_key",
            "[[sources]]\nname = \"sbc\"\nkind = \"hep\"\nlisten = \"127.0.0.1:9060\"\nauth_key = \"\"\n",
            5,
        ),
        ("read token", "[server]\nread_token = \"\\t\"\n", 2),
    ];
    for (what, text, line) in cases {
        let errs = Config::parse("t.toml", text).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.line == line && e.message.contains("empty")),
            "{what}: {errs:?}"
        );
    }
}
