//! A `json` file source after a restart: the engine was restored from a
//! checkpoint that holds the file's events up to an offset, so the file is
//! read from there (the calls before it are not counted twice); when the
//! file is another one (rotated), or no checkpoint was restored, from its
//! start.

use std::sync::Arc;
use std::time::Duration;

use acdmon::config::JsonSourceConfig;
use acdmon::event::EventKind;
use acdmon::sources::json::spawn;
use acdmon::sources::{Envelope, RejectCounter, Restart, SourceCtx, SourceHealth};
use acdmon::state::SourcePosition;
use acdmon::time::Ts;
use tokio::sync::mpsc;

fn line(call: &str) -> String {
    format!(
        "{{\"ts\":1763900000000,\"type\":\"call_enqueued\",\"call\":\"{call}\",\"queue\":\"sales\"}}\n"
    )
}

/// Runs the source to the end of the file: the calls it hands on and the
/// last position it reports.
async fn read(
    path: &std::path::Path,
    resume: Option<SourcePosition>,
) -> (Vec<String>, Option<SourcePosition>) {
    let (tx, mut rx) = mpsc::channel(64);
    let cfg = JsonSourceConfig {
        path: Some(path.to_string_lossy().into_owned()),
        ..JsonSourceConfig::default()
    };
    let ctx = SourceCtx {
        restart: resume.map(|applied| Restart {
            applied: Some(applied),
            today_start: Ts::ZERO,
            counted_until: None,
        }),
        ..SourceCtx::new(
            "file",
            tx,
            SourceHealth::new("file", "json"),
            Arc::new(RejectCounter::default()),
        )
    };
    let task = spawn(cfg, ctx).task;
    let mut calls = Vec::new();
    let mut last = None;
    while let Ok(Some(env)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        let evs = match env {
            Envelope::Positioned {
                events, position, ..
            } => {
                last = Some(position);
                events
            }
            Envelope::Batch { events, .. } => events,
            Envelope::Event { event, .. } => vec![event],
            _ => Vec::new(),
        };
        for e in evs {
            if let EventKind::CallEnqueued { call, .. } = e.kind {
                calls.push(call);
            }
        }
    }
    task.await.unwrap();
    (calls, last)
}

#[tokio::test]
async fn a_restored_engine_reads_the_event_file_from_where_its_figures_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, line("morning-1") + &line("morning-2")).unwrap();
    let (calls, at) = read(&path, None).await;
    assert_eq!(calls, ["morning-1", "morning-2"]);
    let at = at.expect("the file source reports where its events end");
    assert_eq!(at.offset, std::fs::metadata(&path).unwrap().len());

    // The day goes on; after a crash the checkpoint holds the morning.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text += &line("afternoon");
    std::fs::write(&path, &text).unwrap();
    let (calls, _) = read(&path, Some(at)).await;
    assert_eq!(calls, ["afternoon"]);

    // Another file under the same name: all of it is new.
    let other = dir.path().join("new.jsonl");
    std::fs::write(&other, line("new-1") + &line("new-2") + &line("new-3")).unwrap();
    std::fs::rename(&other, &path).unwrap();
    let (calls, _) = read(&path, Some(at)).await;
    assert_eq!(calls, ["new-1", "new-2", "new-3"]);
}
