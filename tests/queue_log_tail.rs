//! The queue_log tail on a real file: partial lines, rotation (rename and a
//! new file), truncation (copytruncate), and a restart that continues from
//! the saved position without losing or repeating lines.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use acdmon::config::HumanDuration;
use acdmon::event::EventKind;
use acdmon::sources::SourceCtx;
use acdmon::sources::queue_log::{QueueLogConfig, StartAt, spawn};
use acdmon::sources::{Envelope, RejectCounter, SourceHealth};
use tokio::sync::mpsc;

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Receives call ids of `call_enqueued` events until `n` arrived.
async fn calls(rx: &mut mpsc::Receiver<Envelope>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let env = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("timed out waiting for queue_log events")
            .expect("inbox closed");
        let evs = match env {
            Envelope::Batch { events, .. }
            | Envelope::Positioned { events, .. }
            | Envelope::Checked { events, .. } => events,
            Envelope::Event { event, .. } => vec![event],
            _ => Vec::new(),
        };
        for e in evs {
            if let EventKind::CallEnqueued { call, .. } = e.kind {
                out.push(call);
            }
        }
    }
    out
}

async fn quiet(rx: &mut mpsc::Receiver<Envelope>) {
    let got = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
    assert!(got.is_err(), "unexpected events: {got:?}");
}

fn enter(t: i64, id: &str) -> String {
    format!("{t}|{id}|support|NONE|ENTERQUEUE||5550000|1\n")
}

#[tokio::test]
async fn tail_follows_rotation_truncation_and_restarts_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue_log");
    append(&path, "1763900000|NONE|NONE|NONE|QUEUESTART|\n");
    append(&path, &enter(1763900001, "a1"));
    append(&path, &enter(1763900002, "a2"));
    let mut cfg = QueueLogConfig::new(&path);
    cfg.start_at = StartAt::Beginning;
    cfg.poll_interval = HumanDuration(Duration::from_millis(20));
    cfg.state_dir = Some(dir.path().join("state"));
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let health = SourceHealth::new("qlog", "queue_log");
    let rejects = Arc::new(RejectCounter::default());
    let (tx, mut rx) = mpsc::channel(64);
    let task = spawn(
        cfg.clone(),
        SourceCtx::new("qlog", tx, health.clone(), rejects.clone()),
    )
    .task;
    assert_eq!(calls(&mut rx, 2).await, ["a1", "a2"]);

    // A line written in two pieces is read once, whole.
    append(&path, "1763900003|a3|support|NONE|ENTER");
    quiet(&mut rx).await;
    append(&path, "QUEUE||5550000|1\n");
    assert_eq!(calls(&mut rx, 1).await, ["a3"]);
    assert!(health.connected() && health.synced());

    // Rotation: a last line lands in the old file, which is renamed; the
    // new file starts.
    append(&path, &enter(1763900004, "a4"));
    std::fs::rename(&path, dir.path().join("queue_log.1")).unwrap();
    append(&path, &enter(1763900005, "b1"));
    assert_eq!(calls(&mut rx, 2).await, ["a4", "b1"]);

    // Stop (once the position is saved: events are handed on before the
    // position is written, so a kill in between re-reads, never loses);
    // lines written while we are down are read after the restart, and
    // nothing before them is read twice.
    let posfile = dir.path().join("state").join(".queue_log.acdmon-pos");
    let len = std::fs::metadata(&path).unwrap().len();
    for _ in 0..500 {
        let saved = std::fs::read_to_string(&posfile).unwrap_or_default();
        if saved.split_whitespace().nth(1) == Some(len.to_string().as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    let _ = task.await;
    append(&path, &enter(1763900006, "b2"));
    let (tx, mut rx) = mpsc::channel(64);
    let task = spawn(
        cfg.clone(),
        SourceCtx::new("qlog", tx, health.clone(), rejects.clone()),
    )
    .task;
    assert_eq!(calls(&mut rx, 1).await, ["b2"]);
    quiet(&mut rx).await;

    // copytruncate: the file shrinks below our position; read from 0.
    std::fs::write(&path, "").unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    append(&path, &enter(1763900007, "c1"));
    assert_eq!(calls(&mut rx, 1).await, ["c1"]);

    // Garbage is counted and skipped.
    append(&path, "not a queue_log line\n");
    append(&path, &enter(1763900008, "c2"));
    assert_eq!(calls(&mut rx, 1).await, ["c2"]);
    assert_eq!(rejects.by_reason().get("malformed"), Some(&1));
    assert!(
        dir.path()
            .join("state")
            .join(".queue_log.acdmon-pos")
            .exists()
    );
    task.abort();
}

#[tokio::test]
async fn start_at_end_skips_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue_log");
    append(&path, &enter(1763900001, "old"));
    let mut cfg = QueueLogConfig::new(&path);
    cfg.poll_interval = HumanDuration(Duration::from_millis(20));
    let (tx, mut rx) = mpsc::channel(64);
    let health = SourceHealth::new("qlog", "queue_log");
    let task = spawn(
        cfg,
        SourceCtx::new(
            "qlog",
            tx,
            health.clone(),
            Arc::new(RejectCounter::default()),
        ),
    )
    .task;
    for _ in 0..100 {
        if health.synced() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    append(&path, &enter(1763900002, "new"));
    assert_eq!(calls(&mut rx, 1).await, ["new"]);
    task.abort();
}

/// Started by the daemon after a restart: the tail reads the file from its
/// first line, hands on only what the restored engine does not hold (after
/// the checkpoint's offset), and without a checkpoint hands on today's lines
/// (the callers already waiting) but not yesterday's.
#[tokio::test]
async fn after_a_restart_the_tail_hands_on_what_the_checkpoint_lacks() {
    use acdmon::sources::queue_log::Restart;
    use acdmon::state::SourcePosition;
    use acdmon::time::Ts;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue_log");
    let midnight = 1763856000; // 2025-11-23T00:00:00Z
    append(&path, &enter(midnight - 60, "yesterday"));
    append(&path, &enter(midnight + 60, "morning"));
    let applied = std::fs::metadata(&path).unwrap();
    append(&path, &enter(midnight + 120, "after-checkpoint"));
    #[cfg(unix)]
    let file = std::os::unix::fs::MetadataExt::ino(&applied);
    #[cfg(not(unix))]
    let file = 0;
    let run = |restart: Restart| {
        let mut cfg = QueueLogConfig::new(&path);
        cfg.poll_interval = HumanDuration(Duration::from_millis(20));
        cfg.state_dir = Some(dir.path().to_path_buf());
        let (tx, rx) = mpsc::channel(64);
        let health = SourceHealth::new("qlog", "queue_log");
        let task = spawn(
            cfg,
            SourceCtx {
                restart: Some(restart),
                ..SourceCtx::new("qlog", tx, health, Arc::new(RejectCounter::default()))
            },
        )
        .task;
        (task, rx)
    };
    let today = Ts::from_secs(midnight);

    let (task, mut rx) = run(Restart {
        applied: Some(SourcePosition {
            file,
            offset: applied.len(),
        }),
        today_start: today,
        counted_until: None,
    });
    assert_eq!(calls(&mut rx, 1).await, ["after-checkpoint"]);
    quiet(&mut rx).await;
    task.abort();

    let (task, mut rx) = run(Restart {
        applied: None,
        today_start: today,
        counted_until: None,
    });
    assert_eq!(calls(&mut rx, 2).await, ["morning", "after-checkpoint"]);
    quiet(&mut rx).await;
    task.abort();
}
