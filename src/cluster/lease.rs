//! A lease in the site's JetStream key-value bucket: who ingests a source.
//!
//! The bucket's `max_age` is the lease TTL, so a key nobody renews vanishes
//! by itself (JetStream 2.9 has no per-key TTL, and needs none here). Taking
//! a lease is `create` (succeeds only when the key does not exist);
//! renewing is `update` with the revision we wrote last (compare-and-set),
//! so a holder that was presumed dead and whose lease someone else took
//! learns it on its next renewal instead of overwriting the new holder.
//!
//! A holder that cannot reach the broker gives the lease up on its own
//! after [`Lease::safe_for`]: before the key can have expired at the
//! server, so two instances never both believe they hold it.

use std::time::{Duration, Instant};

use async_nats::jetstream::kv;

pub struct Lease {
    kv: kv::Store,
    key: String,
    me: String,
    ttl: Duration,
    /// Revision we wrote last, and when its write was acknowledged.
    held: Option<(u64, Instant)>,
}

/// What a renewal attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    Held,
    /// Someone else holds it now (or it expired and was taken).
    Lost,
    /// The broker did not answer; still ours until [`Lease::safe_for`] runs out.
    Unknown(String),
}

impl Lease {
    pub fn new(kv: kv::Store, key: String, me: String, ttl: Duration) -> Lease {
        Lease {
            kv,
            key,
            me,
            ttl,
            held: None,
        }
    }

    /// How often to renew: three times per TTL.
    pub fn period(&self) -> Duration {
        self.ttl / 3
    }

    /// How long after the last acknowledged write the lease is certainly
    /// still ours (two thirds of the TTL: the key expires a TTL after the
    /// server stored it, which was before we saw the acknowledgement).
    pub fn safe_for(&self) -> Duration {
        self.ttl * 2 / 3
    }

    pub fn is_held(&self) -> bool {
        self.held
            .is_some_and(|(_, at)| at.elapsed() < self.safe_for())
    }

    /// Tries to take the lease; `Ok(true)` when it is ours now.
    pub async fn acquire(&mut self) -> Result<bool, String> {
        match self.kv.create(&self.key, self.me.clone().into()).await {
            Ok(rev) => {
                self.held = Some((rev, Instant::now()));
                Ok(true)
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(format!("lease {}: {e}", self.key)),
        }
    }

    /// Writes the lease again with compare-and-set on our revision.
    pub async fn renew(&mut self) -> Renewal {
        let Some((rev, at)) = self.held else {
            return Renewal::Lost;
        };
        match self.kv.update(&self.key, self.me.clone().into(), rev).await {
            Ok(rev) => {
                self.held = Some((rev, Instant::now()));
                Renewal::Held
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                self.held = None;
                Renewal::Lost
            }
            Err(e) => {
                if at.elapsed() >= self.safe_for() {
                    self.held = None;
                    Renewal::Lost
                } else {
                    Renewal::Unknown(format!("lease {}: {e}", self.key))
                }
            }
        }
    }

    /// Who holds the lease now, as the bucket says.
    pub async fn holder(&self) -> Option<String> {
        let v = self.kv.get(&self.key).await.ok()??;
        Some(String::from_utf8_lossy(&v).into_owned())
    }

    /// Gives the lease up at once (a clean stop), so another instance need
    /// not wait for the TTL.
    pub async fn release(&mut self) {
        if let Some((rev, _)) = self.held.take()
            && let Err(e) = self.kv.purge_expect_revision(&self.key, Some(rev)).await
        {
            tracing::debug!(key = %self.key, error = %e, "lease not released; it expires by itself");
        }
    }
}
