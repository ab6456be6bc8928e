//! Stopping a daemon without losing what its sources delivered.
//!
//! Why this order: the engine applies what is in its inbox, and the
//! observers save what the engine holds (interval history, audit log,
//! checkpoint) when it stops. So
//! 1. **sources stop first**, and the daemon waits for each task to end:
//!    after that nothing new enters the inbox from them, and everything they
//!    delivered is in it;
//! 2. **the engine drains**: told to stop, it closes its inbox to new
//!    entries, applies every entry already in it, publishes a last time;
//! 3. **the observers flush** on the engine thread as it ends (`on_stop`,
//!    then drop: the checkpoint is written, the interval history writer
//!    drains, the ladder reports unwritten decisions), and the daemon waits
//!    for the thread, at most [`STOP_WITHIN`];
//! 4. **HTTP closes** last, so `/readyz` and the wall answer while the
//!    daemon stops; requests in flight get `shutdown_drain`.
//!
//! Stopping the engine before the sources (as the daemon once did) dropped
//! whatever a source sent between the stop and the end of the engine
//! thread, though the send had succeeded.

use std::time::Duration;

use super::Daemon;

/// How long a stopping daemon waits for the engine to drain and flush.
pub const STOP_WITHIN: Duration = Duration::from_secs(5);

impl Daemon {
    /// Stops the daemon in order (see the module doc); waits at most
    /// `within` for the engine.
    pub async fn shutdown(self, within: Duration) {
        let Daemon {
            state,
            engine_thread,
            sources,
            http,
            sighup,
            background,
            ..
        } = self;
        // Nothing may start a source from here on (no more SIGHUP reloads;
        // an HTTP reload finds the source set closed).
        if let Some(task) = sighup {
            task.abort();
            let _ = task.await;
        }
        sources.stop_all().await;
        stop_engine(state.inbox.clone(), engine_thread, within).await;
        if let Some((stop, task)) = http {
            let _ = stop.send(());
            let _ = task.await;
        }
        for task in background {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Tells the engine to stop once it has applied everything in its inbox,
/// and waits (at most `within`) for its thread to end, so the observers
/// have flushed.
pub async fn stop_engine(
    inbox: crate::sources::Inbox,
    engine: std::thread::JoinHandle<()>,
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    let sent = tokio::time::timeout_at(deadline, inbox.send(crate::sources::Envelope::Shutdown));
    if !matches!(sent.await, Ok(Ok(()))) {
        tracing::warn!("the engine did not take the shutdown; exiting without it");
        return;
    }
    while !engine.is_finished() {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("the engine did not stop in time; exiting without it");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = engine.join();
}

/// Completes on SIGINT or SIGTERM (systemd's stop).
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
