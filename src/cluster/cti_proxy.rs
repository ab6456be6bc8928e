//! AMI and event-socket CTI in cluster mode: the action travels to the
//! instance that holds the PBX's connection.
//!
//! An AMI or ESL action can only be carried out on its source's own
//! connection, and that connection exists only on the holder of the
//! source's lease, while the ladder acts on the site's CTI leader (the
//! holder of the `cti` lease), which may be another instance. So in
//! cluster mode the registry's action for such a source is a [`Proxy`]: a
//! NATS request to `acdmon.<site>.cti.<source>` with the request as JSON
//! and the action's `Idempotency-Key`. The source's holder answers it
//! ([`serve`], running while it holds the lease) by carrying the action
//! out on its connection. A key it has seen recently is answered with the
//! earlier outcome, not carried out again ([`Repeats`]): the leader retries
//! a request whose answer was lost, and that retry must not sign anyone in
//! twice. With nobody holding the source right now (a takeover under way)
//! the proxy retries until the lease has had time to pass on (twice its
//! TTL), then fails saying so.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{HeaderMap, RequestErrorKind};
use futures_util::StreamExt;
use metrics::{Counter, Key, Label, Metadata, Recorder};
use tokio::sync::{OnceCell, watch};

use super::broker::Broker;
use crate::config::{SourceConfig, SourceSpec};
use crate::cti::{Cti, CtiFuture, CtiOutcome, CtiRequest};

/// The header carrying the action's idempotency key.
pub const KEY_HEADER: &str = "Idempotency-Key";
/// Recent keys kept by a holder: at most this many...
const REPEATS_KEPT: usize = 10_000;
/// ...and none older than a day (the ladder's keys count per day at most).
const REPEATS_FOR: Duration = Duration::from_secs(24 * 3600);
/// How long the proxy waits for the holder's answer to one request: longer
/// than any action's own timeout (AMI: action timeout plus confirmation).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// The subject of `source`'s CTI requests.
pub fn subject(site: &str, source: &str) -> String {
    format!("acdmon.{site}.cti.{source}")
}

/// A source whose CTI action lives on its connection (AMI, ESL), with what
/// every instance must know of it without the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbxSource {
    pub name: String,
    /// [`Cti::sign_out_pause_reason`] of its action (AMI `sign_out = "pause"`).
    pub pause_reason: Option<String>,
}

/// The configured sources that sign agents in and out on their connection.
pub fn pbx_sources(sources: &[SourceConfig]) -> Vec<PbxSource> {
    sources
        .iter()
        .filter_map(|s| match &s.spec {
            SourceSpec::Ami(c) => Some(PbxSource {
                name: s.name.clone(),
                pause_reason: (c.sign_out == crate::config::sources::SignOutMode::Pause)
                    .then(|| c.pause_reason.clone()),
            }),
            SourceSpec::Esl(_) => Some(PbxSource {
                name: s.name.clone(),
                pause_reason: None,
            }),
            _ => None,
        })
        .collect()
}

/// The real actions of the sources this instance has started, by source:
/// what [`serve`] (and the relist, `super::relist`) carry requests out with.
#[derive(Default)]
pub struct Executors {
    map: Mutex<HashMap<String, Arc<dyn Cti>>>,
}

impl Executors {
    pub fn set(&self, source: &str, cti: Arc<dyn Cti>) {
        self.lock().insert(source.to_string(), cti);
    }
    pub fn get(&self, source: &str) -> Option<Arc<dyn Cti>> {
        self.lock().get(source).cloned()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<dyn Cti>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The registry's action for a PBX source in cluster mode.
pub struct Proxy {
    pub source: PbxSource,
    pub broker: watch::Receiver<Option<Broker>>,
    /// How long to keep asking while nobody holds the source (2 × lease TTL).
    pub patience: Duration,
}

impl Cti for Proxy {
    fn execute(&self, req: CtiRequest) -> CtiFuture {
        let (broker, source, patience) =
            (self.broker.clone(), self.source.name.clone(), self.patience);
        Box::pin(async move {
            // Read here, inside the caller's scope (the leader gate's).
            let key = crate::cti::IDEMPOTENCY_KEY.try_with(|k| k.clone()).ok();
            ask(broker, &source, key, &req, patience).await
        })
    }

    fn sign_out_pause_reason(&self) -> Option<&str> {
        self.source.pause_reason.as_deref()
    }
}

async fn ask(
    mut broker: watch::Receiver<Option<Broker>>,
    source: &str,
    key: Option<String>,
    req: &CtiRequest,
    patience: Duration,
) -> CtiOutcome {
    let b = match broker.wait_for(|b| b.is_some()).await {
        Ok(b) => b.clone(),
        Err(_) => None,
    };
    let Some(b) = b else {
        return CtiOutcome::failed("cluster mode: not connected to NATS");
    };
    let payload = match serde_json::to_vec(req) {
        Ok(p) => p,
        Err(e) => return CtiOutcome::failed(format!("request not encoded: {e}")),
    };
    let subject = subject(&b.names.site, source);
    let started = Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        let mut headers = HeaderMap::new();
        if let Some(k) = &key {
            headers.insert(KEY_HEADER, k.as_str());
        }
        let request = async_nats::Request::new()
            .payload(payload.clone().into())
            .headers(headers)
            .timeout(Some(ANSWER_WITHIN));
        match b.client.send_request(subject.clone(), request).await {
            Ok(m) => {
                return match serde_json::from_slice::<CtiOutcome>(&m.payload) {
                    Ok(o) => o,
                    Err(e) => CtiOutcome::failed(format!(
                        "unreadable answer from the holder of {source}: {e}"
                    )),
                };
            }
            Err(e) if e.kind() == RequestErrorKind::NoResponders => {
                if started.elapsed() + wait > patience {
                    return CtiOutcome::failed(format!(
                        "no instance holds the source {source} (its PBX connection) to carry this out; waited {:?}",
                        started.elapsed()
                    ));
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            Err(e) if e.kind() == RequestErrorKind::TimedOut => {
                return CtiOutcome::failed(format!(
                    "no answer within {ANSWER_WITHIN:?} from the instance holding {source}: the action may or may not have been carried out"
                ));
            }
            Err(e) => {
                if started.elapsed() + wait > patience {
                    return CtiOutcome::failed(format!("asking the holder of {source}: {e}"));
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Outcomes of recent keys (the last 10,000, none older than
/// a day); a key still being carried out is waited for.
#[derive(Default)]
pub struct Repeats {
    inner: Mutex<RepeatsInner>,
}

#[derive(Default)]
struct RepeatsInner {
    by_key: HashMap<String, Arc<OnceCell<CtiOutcome>>>,
    order: VecDeque<(String, Instant)>,
}

impl Repeats {
    /// The slot of `key`, and whether it is new.
    fn slot(&self, key: &str) -> (Arc<OnceCell<CtiOutcome>>, bool) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((k, at)) = g.order.front() {
            if g.order.len() <= REPEATS_KEPT && at.elapsed() < REPEATS_FOR {
                break;
            }
            let k = k.clone();
            g.order.pop_front();
            g.by_key.remove(&k);
        }
        if let Some(s) = g.by_key.get(key) {
            return (s.clone(), false);
        }
        let s = Arc::new(OnceCell::new());
        g.by_key.insert(key.to_string(), s.clone());
        g.order.push_back((key.to_string(), Instant::now()));
        (s, true)
    }

    /// Carries `req` out with `cti` once per key; a repeat gets the first
    /// outcome, its detail saying so, and is counted.
    pub async fn once(
        &self,
        key: Option<&str>,
        cti: Arc<dyn Cti>,
        req: CtiRequest,
        counted: &Counter,
    ) -> CtiOutcome {
        let Some(key) = key else {
            return cti.execute(req).await;
        };
        let (slot, new) = self.slot(key);
        let outcome = slot.get_or_init(|| cti.execute(req)).await.clone();
        if new {
            return outcome;
        }
        counted.increment(1);
        tracing::info!(%key, "CTI request repeated: answered with the earlier outcome, not carried out again");
        CtiOutcome {
            detail: format!("{} (repeat of {key}: carried out once)", outcome.detail),
            ..outcome
        }
    }
}

/// `acd_cluster_cti_repeats_total{source}`.
pub fn repeats_counter(r: &dyn Recorder, source: &str) -> Counter {
    static META: Metadata<'static> =
        Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));
    let key = Key::from_parts(
        "acd_cluster_cti_repeats_total",
        vec![Label::new("source", source.to_string())],
    );
    r.register_counter(&key, &META)
}

/// Answers `source`'s CTI requests on `b` until aborted (the ingester runs
/// it while it holds the source's lease).
pub async fn serve(
    b: Broker,
    source: String,
    executors: Arc<Executors>,
    repeats: Arc<Repeats>,
    counted: Counter,
) {
    let subject = subject(&b.names.site, &source);
    let mut sub = match b.client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%source, error = %e, "cannot answer CTI requests for this source");
            return;
        }
    };
    tracing::info!(%source, %subject, "answering the site's CTI requests for this source");
    while let Some(m) = sub.next().await {
        let Some(reply) = m.reply.clone() else {
            continue;
        };
        let key = m
            .headers
            .as_ref()
            .and_then(|h| h.get(KEY_HEADER))
            .map(|v| v.as_str().to_string());
        let (client, executors, repeats, counted, source) = (
            b.client.clone(),
            executors.clone(),
            repeats.clone(),
            counted.clone(),
            source.clone(),
        );
        tokio::spawn(async move {
            let outcome = match (
                serde_json::from_slice::<CtiRequest>(&m.payload),
                executors.get(&source),
            ) {
                (Err(e), _) => CtiOutcome::failed(format!("unreadable CTI request: {e}")),
                (Ok(_), None) => CtiOutcome::failed(format!(
                    "the source {source} is not running on this instance"
                )),
                (Ok(req), Some(cti)) => repeats.once(key.as_deref(), cti, req, &counted).await,
            };
            let body = serde_json::to_vec(&outcome).unwrap_or_default();
            if let Err(e) = client.publish(reply, body.into()).await {
                tracing::warn!(%source, error = %e, "CTI outcome not sent back");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::cti::CtiVerb;

    /// A phone system that counts what it was asked to do.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Cti for Counting {
        fn execute(&self, _req: CtiRequest) -> CtiFuture {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move { CtiOutcome::ok(format!("done (#{n})")) })
        }
    }

    fn sign_in() -> CtiRequest {
        CtiRequest {
            verb: CtiVerb::SignIn,
            agent: "2001".into(),
            interface: "PJSIP/2001".into(),
            name: None,
            queue: "support".into(),
        }
    }

    #[tokio::test]
    async fn a_key_is_carried_out_once_while_it_is_remembered() {
        let pbx = Arc::new(Counting::default());
        let repeats = Repeats::default();
        let counter = Counter::noop();
        let first = repeats
            .once(Some("k"), pbx.clone(), sign_in(), &counter)
            .await;
        assert_eq!(first.detail, "done (#1)");
        let again = repeats
            .once(Some("k"), pbx.clone(), sign_in(), &counter)
            .await;
        assert!(again.ok);
        assert_eq!(again.detail, "done (#1) (repeat of k: carried out once)");
        assert_eq!(pbx.0.load(Ordering::SeqCst), 1);
        // Without a key nothing can be recognised: carried out each time.
        repeats.once(None, pbx.clone(), sign_in(), &counter).await;
        assert_eq!(pbx.0.load(Ordering::SeqCst), 2);
        // The memory is bounded: after REPEATS_KEPT newer keys, `k` is new.
        for i in 0..REPEATS_KEPT {
            let _ = repeats.slot(&format!("other{i}"));
        }
        let later = repeats
            .once(Some("k"), pbx.clone(), sign_in(), &counter)
            .await;
        assert_eq!(later.detail, "done (#3)");
        let kept = repeats.inner.lock().unwrap().by_key.len();
        assert!(kept <= REPEATS_KEPT + 1, "{kept}");
    }
}
