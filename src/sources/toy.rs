//! A test-only source built by the checklist in [`crate::sources`], to prove
//! the checklist is enough: a file of lines `<unix ms> enter|leave <call>
//! <queue>` (a caller joins the queue, or hangs up waiting).
//!
//! Step 1 (settings) would put [`ToyConfig`] in `src/config/sources.rs`
//! with a `SourceSpec::Toy` variant, and step 5 would add an arm to
//! [`crate::sources::spawn`] and `crate::replay::decoder`; a test-only
//! kind must not reach the real configuration, so here the settings live
//! beside the adapter and the test starts it the way `daemon::start_source`
//! does (a [`SourceCtx`], then `spawn`).

use crate::event::{Event, EventKind, Reject, RejectReason};
use crate::sources::{Envelope, ReplayDecoder, SourceCtx, Started};
use crate::time::Ts;

/// Step 1: the kind's settings, plain data.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToyConfig {
    pub path: std::path::PathBuf,
}

/// Step 2: the sans-IO core, one line to one event.
pub fn decode_line(line: &str) -> Result<Event, Reject> {
    let bad = |why: &str| Reject::new(RejectReason::Malformed, format!("{why}: {line:?}"));
    let mut f = line.split_whitespace();
    let (Some(ts), Some(verb), Some(call), Some(queue), None) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return Err(bad("expected `<ms> enter|leave <call> <queue>`"));
    };
    let ts = ts.parse::<i64>().map_err(|_| bad("time"))?;
    let ts =
        Ts::event_time(ts).map_err(|_| Reject::new(RejectReason::TsOutOfRange, ts.to_string()))?;
    let (call, queue) = (call.to_string(), queue.to_string());
    let kind = match verb {
        "enter" => EventKind::CallEnqueued {
            call,
            queue,
            caller: None,
            priority: None,
        },
        "leave" => EventKind::CallAbandoned { call, queue },
        _ => return Err(bad("verb")),
    };
    Ok(Event { ts, kind })
}

/// Step 3: the live task. Reads the file once; events go to the engine
/// (awaiting the inbox: backpressure), bad lines are counted and skipped,
/// health says how far it got.
pub fn spawn(cfg: ToyConfig, ctx: SourceCtx) -> Started {
    Started::task(tokio::spawn(async move {
        let text = match tokio::fs::read_to_string(&cfg.path).await {
            Ok(t) => t,
            Err(e) => {
                ctx.health.set_error(format!("{}: {e}", cfg.path.display()));
                return;
            }
        };
        ctx.health.set_connected(true);
        let mut events = Vec::new();
        for (n, line) in text.lines().enumerate() {
            match decode_line(line) {
                Ok(ev) => events.push(ev),
                Err(r) => {
                    let at = format!("{}:{}", cfg.path.display(), n + 1);
                    ctx.rejects.record(&ctx.name, &at, &r);
                }
            }
        }
        ctx.health.add_events(events.len() as u64);
        ctx.health.set_synced(true);
        let source = ctx.name.clone();
        let _ = ctx.inbox.send(Envelope::Batch { source, events }).await;
    }))
}

/// Step 4: the replay entry point, the same core over recorded bytes.
pub fn replay_decoder() -> ToyReplay {
    ToyReplay::default()
}

#[derive(Debug, Default)]
pub struct ToyReplay {
    partial: String,
}

impl ReplayDecoder for ToyReplay {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        self.partial.push_str(&String::from_utf8_lossy(bytes));
        let Some(end) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let done: String = self.partial.drain(..=end).collect();
        done.lines().map(decode_line).collect()
    }

    fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        let rest = std::mem::take(&mut self.partial);
        rest.lines().map(decode_line).collect()
    }
}

/// Step 6: the source feeds the engine, and its events show in the figures.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sources::{RejectCounter, SourceHealth};
    use crate::state::{Engine, EngineConfig};

    const DAY: &str = "1763900000000 enter c1 support
1763900005000 enter c2 support
this line is not a toy line
1763900030000 leave c1 support
";

    #[tokio::test]
    async fn a_toy_source_started_like_the_daemon_starts_one_reaches_the_figures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.toy");
        std::fs::write(&path, DAY).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let health = SourceHealth::new("lobby", "toy");
        let rejects = Arc::new(RejectCounter::default());
        let ctx = SourceCtx::new("lobby", tx, health.clone(), rejects.clone());
        let started = spawn(ToyConfig { path }, ctx);
        assert!(started.cti.is_none(), "a file cannot sign agents in");

        let mut engine = Engine::starting_at(EngineConfig::default(), Ts(1763900000000));
        match rx.recv().await {
            Some(Envelope::Batch { source, events }) => {
                assert_eq!(&*source, "lobby");
                for e in events {
                    engine.apply(e).unwrap();
                }
            }
            other => panic!("expected the toy's batch, got {other:?}"),
        }
        started.task.await.unwrap();

        let q = engine.queue_index("support");
        let view = engine.queue_view(q);
        assert_eq!(view.waiting, 1, "c2 still waits");
        assert_eq!(view.totals.offered, 1, "offered counts outcomes: c1 only");
        assert_eq!(view.totals.abandoned, 1, "c1 hung up after 30 s");
        assert_eq!(health.events(), 3);
        assert!(health.synced());
        assert_eq!(rejects.by_reason().get("malformed"), Some(&1));
    }

    #[test]
    fn the_toy_replays_its_recording_into_the_same_events_in_any_chunking() {
        let whole: Vec<_> = DAY.lines().map(decode_line).collect();
        for chunk in [1, 7, DAY.len()] {
            let mut d = replay_decoder();
            let mut got = Vec::new();
            for part in DAY.as_bytes().chunks(chunk) {
                got.extend(d.feed(part));
            }
            got.extend(d.finish());
            assert_eq!(got, whole, "chunk {chunk}");
        }
        assert_eq!(whole.iter().filter(|r| r.is_err()).count(), 1);
    }
}
