//! The HTTP accept loop. `axum::serve` has no header read timeout and its
//! graceful shutdown waits for every connection forever, so one client that
//! sends a byte a second could keep the daemon from stopping. Here each
//! connection is served by hyper's HTTP/1 builder with a header read timeout
//! (slowloris), request bodies carry a deadline (see [`super::guard`]), and
//! on shutdown requests in flight get `shutdown_drain` to finish before
//! every connection still open is dropped.

use std::future::Future;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Timeouts of the HTTP listener (from `[server]`).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub shutdown_drain: Duration,
}

/// Serves `app` on `listener` until `stop` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    // Every connection task holds a clone of `alive`; when the last one
    // ends, `all_closed` yields None.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let (closing_tx, closing) = watch::channel(false);
    tokio::pin!(stop);
    loop {
        let (stream, _peer) = tokio::select! {
            _ = &mut stop => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, typically: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(app.clone());
        let conn = http
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades();
        let alive = alive.clone();
        let mut closing = closing.clone();
        tokio::spawn(async move {
            let _alive = alive;
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = closing.wait_for(|c| *c) => {}
            }
            // Idle connections close at once; a request in flight may finish.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(alive);
    if tokio::time::timeout(limits.shutdown_drain, all_closed.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            drain = ?limits.shutdown_drain,
            "HTTP connections still open after the drain period; closing them"
        );
    }
}
