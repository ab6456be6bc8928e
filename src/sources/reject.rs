//! Bad input is counted by reason, logged with its context, and skipped.
//!
//! Logging is rate limited per (source, reason): the first
//! `LOG_FIRST` (20) rejections are logged one by one with their line number or
//! peer; after that one line per `LOG_EVERY` (10,000) says how many were skipped, so a
//! firehose of garbage cannot fill the disk with logs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

pub use crate::event::{Reject, RejectReason};

const LOG_FIRST: u64 = 20;
const LOG_EVERY: u64 = 10_000;

/// Counts rejections per source and reason; shared by sources, the engine and
/// the metrics publisher.
#[derive(Debug, Default)]
pub struct RejectCounter {
    counts: Mutex<BTreeMap<(String, RejectReason), u64>>,
}

impl RejectCounter {
    /// Counts one rejection and logs it (rate limited). `context` is where it
    /// came from: `file.json:17`, `tcp 10.0.0.5:4410`, `http`.
    pub fn record(&self, source: &str, context: &dyn fmt::Display, reject: &Reject) {
        let n = {
            let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            let c = m.entry((source.to_string(), reject.reason)).or_insert(0);
            *c += 1;
            *c
        };
        if n <= LOG_FIRST {
            tracing::warn!(source, at = %context, reason = reject.reason.as_str(), detail = %reject.detail, "input rejected and skipped");
        } else if n % LOG_EVERY == 0 {
            tracing::warn!(
                source,
                reason = reject.reason.as_str(),
                total = n,
                "still rejecting input (logging 1 in {LOG_EVERY})"
            );
        }
    }

    /// Totals per reason across all sources (the replay report's `rejected`).
    pub fn by_reason(&self) -> BTreeMap<String, u64> {
        let m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = BTreeMap::new();
        for ((_, reason), n) in m.iter() {
            *out.entry(reason.as_str().to_string()).or_insert(0) += n;
        }
        out
    }

    /// Every (source, reason, count), for metrics.
    pub fn all(&self) -> Vec<(String, &'static str, u64)> {
        let m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .map(|((s, r), n)| (s.clone(), r.as_str(), *n))
            .collect()
    }
}
