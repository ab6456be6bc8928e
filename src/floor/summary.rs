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
    /// Each agent's adherence within the shift: the day totals at its end
    /// minus those at its start (over both days of a shift that crosses
    /// midnight); agents with nothing scheduled in the shift are left out.
    pub shift: Vec<ShiftAdherence>,
}

/// One agent's adherence within a shift.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShiftAdherence {
    pub agent: String,
    pub scheduled_s: f64,
    pub out_s: f64,
    /// `(scheduled - out) / scheduled`.
    pub adherence: Option<f64>,
}

/// Per agent, `now` minus `base` summed over days (`base`: the day totals
/// as the shift began).
fn per_shift(
    now: &[super::adherence::DayAdherence],
    base: &[super::adherence::DayAdherence],
) -> Vec<ShiftAdherence> {
    let ms = |s: f64| (s * 1000.0).round() as i64;
    let mut by_agent: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
    for r in now {
        let (bs, bo) = base
            .iter()
            .find(|b| b.agent == r.agent && b.day == r.day)
            .map_or((0, 0), |b| (ms(b.scheduled_s), ms(b.out_s)));
        let e = by_agent.entry(&r.agent).or_default();
        e.0 += (ms(r.scheduled_s) - bs).max(0);
        e.1 += (ms(r.out_s) - bo).max(0);
    }
    by_agent
        .into_iter()
        .filter(|(_, (sched, _))| *sched > 0)
        .map(|(agent, (sched, out))| ShiftAdherence {
            agent: agent.to_string(),
            scheduled_s: sched as f64 / 1000.0,
            out_s: out as f64 / 1000.0,
            adherence: Some((sched - out) as f64 / sched as f64),
        })
        .collect()
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
/// when no floor rule runs. `adherence_base`: the adherence day totals as
/// the shift began.
pub fn summarise(
    floor: &FloorHandles,
    engine: &Engine,
    start: Ts,
    end: Ts,
    day: &str,
    adherence_base: &[super::adherence::DayAdherence],
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
    let adherence = floor.adherence.as_ref().map(|h| h.days());
    let adherence = adherence.map(|days| AdherenceAtEnd {
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
        day: days.iter().filter(|r| r.day == day).cloned().collect(),
        shift: per_shift(&days, adherence_base),
    });
    if posts.is_none() && adherence.is_none() {
        return None;
    }
    serde_json::to_value(FloorSummary { posts, adherence }).ok()
}
