//! What the floor rules add to a shift's handover record (`floor_rules`):
//! the post breaches during the shift and the adherence state at its end.
//!
//! Read from the boards the posts and adherence observers publish (never
//! their internals), at the moment the shift ends on event time; the boards
//! are at most one publish (a second of event time) behind.

use serde::Serialize;

use super::FloorHandles;
use crate::state::Engine;
use crate::time::Ts;

/// One post during the shift.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostShift {
    pub post: String,
    /// Breaches that overlap the shift, clipped to it; `end` is `null` for
    /// one still open at the end.
    pub breaches: Vec<super::posts::Breach>,
    /// Seconds unmanned within the shift.
    pub unmanned_s: f64,
    /// Who covered it at the end.
    pub cover_at_end: super::posts::Cover,
}

/// Adherence at the end of the shift.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdherenceAtEnd {
    /// Agents out of adherence at the end, with why.
    pub out_of_adherence: Vec<OutOfAdherence>,
    /// Day totals of the day the shift started on, per agent, so far.
    pub day: Vec<super::adherence::DayAdherence>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutOfAdherence {
    pub agent: String,
    pub scheduled: String,
    pub since: Option<Ts>,
    pub why: Option<String>,
}

/// `floor_rules` of a handover record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FloorSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub posts: Option<Vec<PostShift>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adherence: Option<AdherenceAtEnd>,
}

/// The summary of the shift `[start, end)` of local day `day`, or `None`
/// when no floor rule runs.
pub fn summarise(
    floor: &FloorHandles,
    engine: &Engine,
    start: Ts,
    end: Ts,
    day: &str,
) -> Option<serde_json::Value> {
    let posts = floor.posts.as_ref().map(|b| {
        b.snapshot()
            .posts
            .iter()
            .filter(|p| !p.post.is_empty())
            .map(|p| {
                let breaches: Vec<super::posts::Breach> = p
                    .breaches
                    .iter()
                    .filter(|b| b.start < end && b.end.is_none_or(|e| e > start))
                    .map(|b| super::posts::Breach {
                        start: b.start.max(start),
                        end: b.end.filter(|e| *e < end),
                    })
                    .collect();
                let unmanned_ms: i64 = breaches
                    .iter()
                    .map(|b| b.end.unwrap_or(end).since(b.start).max(0))
                    .sum();
                PostShift {
                    post: p.post.clone(),
                    breaches,
                    unmanned_s: unmanned_ms as f64 / 1000.0,
                    cover_at_end: p.cover,
                }
            })
            .collect()
    });
    let adherence = floor.adherence.as_ref().map(|h| AdherenceAtEnd {
        out_of_adherence: (0..engine.agent_count())
            .map(|a| engine.agent(a))
            .filter_map(|a| {
                let m = a.adherence.as_ref().filter(|m| !m.in_adherence)?;
                Some(OutOfAdherence {
                    agent: a.id.to_string(),
                    scheduled: m.scheduled.clone(),
                    since: m.out_since,
                    why: m.why.clone(),
                })
            })
            .collect(),
        day: h.days().iter().filter(|r| r.day == day).cloned().collect(),
    });
    if posts.is_none() && adherence.is_none() {
        return None;
    }
    serde_json::to_value(FloorSummary { posts, adherence }).ok()
}
