//! The REST API (contract section 4) and the health routes.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::AppState;
use super::auth;
use crate::sources::Envelope;
use crate::sources::json::LineDecoder;

pub fn routes(_state: AppState) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/queues", get(queues))
        .route("/api/v1/queues/{queue}", get(queue))
        .route("/api/v1/queues/{queue}/trend", get(trend))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/sites", get(sites))
        .route("/api/v1/events", post(ingest))
}

#[allow(clippy::result_large_err)]
pub(crate) fn read_guard(s: &AppState, h: &HeaderMap, q: &Option<String>) -> Result<(), Response> {
    let c = s.config.load();
    auth::check_read(
        &c.server.read_token,
        &c.server.admin_token,
        auth::presented(h, q.as_deref()).as_deref(),
    )
    .map_err(|c| (c, Json(json!({"error": "a valid read token is required"}))).into_response())
}

#[allow(clippy::result_large_err)]
pub(crate) fn admin_guard(s: &AppState, h: &HeaderMap, q: &Option<String>) -> Result<(), Response> {
    let cfg = s.config.load();
    auth::check_admin(
        &cfg.server.admin_token,
        auth::presented(h, q.as_deref()).as_deref(),
    )
    .map_err(|c| {
        let msg = if cfg.server.admin_token.is_none() {
            "control routes are disabled: no admin token is configured"
        } else {
            "a valid admin token is required"
        };
        (c, Json(json!({"error": msg}))).into_response()
    })
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 `{"ready": true}`, or 503 with `reasons` (text, one per problem)
/// and `not_ready` (`[{kind, detail}]`, what the wall's banner shows). See
/// [`super::health::not_ready_reasons`].
async fn readyz(State(s): State<AppState>) -> Response {
    let not_ready = super::health::not_ready_reasons(&s);
    if not_ready.is_empty() {
        (StatusCode::OK, Json(json!({"ready": true}))).into_response()
    } else {
        let reasons: Vec<&str> = not_ready.iter().map(|r| r.detail.as_str()).collect();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reasons": reasons, "not_ready": not_ready})),
        )
            .into_response()
    }
}

/// A central instance's sites and their freshness (docs/cluster.md,
/// "Several sites"); `stale` lists the sites whose figures are not
/// current, which any centre-wide total lacks. Empty elsewhere.
async fn sites(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    let Some(board) = &s.sites else {
        return Json(json!({"sites": [], "stale": []})).into_response();
    };
    let views = board.views(crate::time::Ts::now());
    let stale: Vec<&str> = views
        .iter()
        .filter(|v| v.state == "stale")
        .map(|v| v.site.as_str())
        .collect();
    Json(json!({
        "sites": views,
        "stale": stale,
        "stale_after_s": board.stale_after.as_secs_f64(),
    }))
    .into_response()
}

async fn queues(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    Json(s.publisher.snapshot().queues.clone()).into_response()
}

async fn queue(
    State(s): State<AppState>,
    Path(name): Path<String>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    match s.publisher.snapshot().queue(&name) {
        Some(v) => Json(v.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown queue {name}")})),
        )
            .into_response(),
    }
}

/// `?minutes=N` (1 to the samples kept; default 60): a queue's one-minute
/// samples, oldest first.
async fn trend(
    State(s): State<AppState>,
    Path(name): Path<String>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    use crate::state::trend::{KEEP_MINUTES, STEP_MS};
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    let mut minutes = 60usize;
    for kv in q.as_deref().unwrap_or("").split('&') {
        if let Some(v) = kv.strip_prefix("minutes=") {
            match v.parse::<usize>() {
                Ok(n) if (1..=KEEP_MINUTES).contains(&n) => minutes = n,
                _ => {
                    return (
                        StatusCode::BAD_REQUEST,
                        Json(json!({"error": format!("minutes must be 1 to {KEEP_MINUTES}, got {v:?}")})),
                    )
                        .into_response();
                }
            }
        }
    }
    let snap = s.publisher.snapshot();
    if snap.queue(&name).is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown queue {name}")})),
        )
            .into_response();
    }
    let samples = snap.trends.get(&name).map_or(&[][..], |v| &v[..]);
    let from = samples.len().saturating_sub(minutes);
    Json(json!({
        "queue": name,
        "step_s": STEP_MS / 1000,
        "samples": &samples[from..],
    }))
    .into_response()
}

async fn agents(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    Json(s.publisher.snapshot().agents.clone()).into_response()
}

/// Events sent to the engine at a time while a body streams in.
const INGEST_BATCH: usize = 4096;
/// Most rejected lines listed one by one in the answer; the rest are
/// counted in `rejected_total` (and in the metrics).
pub const MAX_LISTED_REJECTS: usize = 1000;

/// The engine's answer on one batch: index in the batch and reason.
type Verdict = tokio::sync::oneshot::Receiver<Vec<(usize, crate::sources::Reject)>>;

/// Longest wait for the engine's verdict on a request's events.
const VERDICT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// The same in cluster mode, where the events go to the engine by way of
/// the stream (publish, acknowledgement, this instance's consumer) and an
/// instance still catching up applies them after what it has to read first.
const CLUSTER_VERDICT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What one `POST /api/v1/events` did, built as the body streams in.
#[derive(Default)]
struct IngestReport {
    accepted: usize,
    /// Lines the decoder took (the engine may still refuse some: an
    /// `unknown_call` is a fact about the feed, not a bad request).
    decoded: usize,
    rejected_total: usize,
    rejected: Vec<serde_json::Value>,
    /// Accepted events whose verdict did not come within the wait
    /// ([`VERDICT_WAIT`], [`CLUSTER_VERDICT_WAIT`]).
    unconfirmed: usize,
    /// The engine's verdict on each batch sent, with the batch's line numbers.
    pending: Vec<(Vec<u64>, Verdict)>,
}

impl IngestReport {
    fn reject(&mut self, line: u64, rej: &crate::sources::Reject) {
        self.rejected_total += 1;
        if self.rejected.len() < MAX_LISTED_REJECTS {
            self.rejected
                .push(json!({"line": line, "reason": rej.reason, "detail": rej.detail}));
        }
    }

    /// Counts and sends what the decoder produced. `Err` when the engine is
    /// stopping.
    async fn deliver(
        &mut self,
        s: &AppState,
        out: &mut Vec<crate::sources::json::Decoded>,
    ) -> Result<(), ()> {
        let mut events = Vec::with_capacity(out.len());
        let mut lines = Vec::with_capacity(out.len());
        for (line, r) in out.drain(..) {
            match r {
                Ok(ev) => {
                    events.push(ev);
                    lines.push(line);
                }
                Err(rej) => {
                    s.rejects.record(
                        "http",
                        &format_args!("POST /api/v1/events line {line}"),
                        &rej,
                    );
                    self.reject(line, &rej);
                }
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        self.decoded += events.len();
        s.metrics
            .http_events
            .fetch_add(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        s.inbox
            .send(Envelope::Checked {
                source: "http".into(),
                events,
                verdict: tx,
            })
            .await
            .map_err(|_| ())?;
        self.pending.push((lines, rx));
        Ok(())
    }

    /// Waits for the engine's verdicts (at most `wait`) and folds its
    /// refusals in.
    async fn settle(&mut self, wait: std::time::Duration) {
        let mut refused: Vec<(u64, crate::sources::Reject)> = Vec::new();
        // A stalled engine must not hold the client (nor the drain): after
        // the wait the events still queued are answered as accepted
        // but `unconfirmed`; the engine's refusals of those show only in
        // the metrics.
        let deadline = tokio::time::Instant::now() + wait;
        for (lines, rx) in std::mem::take(&mut self.pending) {
            let verdict = match tokio::time::timeout_at(deadline, rx).await {
                Ok(v) => v,
                Err(_) => {
                    self.accepted += lines.len();
                    self.unconfirmed += lines.len();
                    continue;
                }
            };
            match verdict {
                Ok(verdict) => {
                    self.accepted += lines.len() - verdict.len();
                    refused.extend(
                        verdict
                            .into_iter()
                            .filter_map(|(i, rej)| lines.get(i).map(|&l| (l, rej))),
                    );
                }
                // The engine stopped before this batch: not applied.
                Err(_) => refused.extend(lines.iter().map(|&l| {
                    (
                        l,
                        crate::sources::Reject::new(
                            crate::sources::RejectReason::NotApplied,
                            "the engine stopped",
                        ),
                    )
                })),
            }
        }
        for (line, rej) in &refused {
            self.reject(*line, rej);
        }
        self.rejected
            .sort_by_key(|v| v.get("line").and_then(|l| l.as_u64()).unwrap_or(0));
    }
}

/// Native event ingest: a body of JSON lines, read as it streams in and cut
/// into lines with the same per-line limit and counting as the TCP feed (a
/// line over 64 KiB is one `line_too_long`; the lines after it still count).
/// There is no cap on the body's size: at most one line and one batch are
/// held at a time; only `body_timeout` bounds how long it may take. Answers
/// after the engine has applied every event, with what it accepted and what
/// was rejected (line numbers; decoding and the engine's own refusals such
/// as `unknown_call`).
async fn ingest(State(s): State<AppState>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let q = parts.uri.query().map(str::to_string);
    // Also checked by the `before_body` layer; this route must never read a
    // body without it.
    if let Err(r) = admin_guard(&s, &parts.headers, &q) {
        return r;
    }
    let wait = if s.config.load().cluster.is_some() {
        CLUSTER_VERDICT_WAIT
    } else {
        VERDICT_WAIT
    };
    let mut body = body.into_data_stream();
    let mut dec = LineDecoder::new();
    let mut report = IngestReport::default();
    let mut out = Vec::new();
    let stopping = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the engine is stopping"})),
        )
            .into_response()
    };
    loop {
        use futures_util::StreamExt;
        match body.next().await {
            None => break,
            Some(Ok(chunk)) => dec.feed(&chunk, &mut out),
            Some(Err(e)) => {
                // What came before was sent to the engine and counts.
                let (status, msg) = match super::guard::is_body_timeout(&e) {
                    Some(t) => (StatusCode::REQUEST_TIMEOUT, t.to_string()),
                    None => (StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
                };
                if report.deliver(&s, &mut out).await.is_err() {
                    return stopping();
                }
                report.settle(wait).await;
                return (
                    status,
                    Json(json!({
                        "error": msg,
                        "accepted": report.accepted,
                        "rejected_total": report.rejected_total,
                        "rejected": report.rejected,
                    })),
                )
                    .into_response();
            }
        }
        if out.len() >= INGEST_BATCH && report.deliver(&s, &mut out).await.is_err() {
            return stopping();
        }
    }
    dec.finish(&mut out);
    if report.deliver(&s, &mut out).await.is_err() {
        return stopping();
    }
    report.settle(wait).await;
    // 400 only when no line could even be read; the engine's refusals of
    // well-formed events are listed, not an error of the request.
    let status = if report.rejected_total == 0 || report.decoded > 0 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::BAD_REQUEST
    };
    (
        status,
        Json(json!({
            "accepted": report.accepted,
            "unconfirmed": report.unconfirmed,
            "rejected_total": report.rejected_total,
            "rejected": report.rejected,
        })),
    )
        .into_response()
}
