//! The shift handover: at each shift's end, on event time, one written
//! record of what the outgoing shift leaves behind — queue figures, peaks,
//! escalations and who the ladder still has signed in, advice nobody
//! answered, and the duty log the supervisor kept.
//!
//! Why the figures come from closed intervals: the handover must say the
//! same as `acdmon report` and the interval history, so it adds up the
//! shift's interval records (those this process closed, and those stored
//! before a restart) instead of keeping counters of its own. Peaks (most
//! calls waiting, longest wait) are not in the intervals; they are tracked
//! here and saved at every interval close, so a restart keeps them.
//!
//! Why the record is finished one engine step after the shift ends: the
//! engine closes the interval that ends with the shift in the same step
//! and hands it to observers after them; the escalation state is taken as
//! it stood at the end, the figures once the last interval has arrived.
//!
//! Writes follow the escalation log's care: a record that cannot be written
//! is kept and retried, and the store's health says so meanwhile.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

mod markdown;
mod record;

pub use markdown::markdown;
pub use record::*;

use super::shift::{self, Shift, ShiftSpan};
use crate::engine_thread::Observer;
use crate::escalation::{Direction, Entry};
use crate::state::kpi::{self, SlFormula};
use crate::state::window::Tally;
use crate::state::{Engine, IntervalRecord};
use crate::store::{IntervalRow, Store};
use crate::time::Ts;

/// Most escalation log entries read for one shift.
const MAX_ENTRIES: usize = 10_000;
/// Most duty-log entries carried in one record.
pub const MAX_DUTY: usize = 1_000;
/// First retry of a record that could not be written (event time); doubles
/// up to [`RETRY_MAX_MS`].
const RETRY_FIRST_MS: i64 = 1_000;
const RETRY_MAX_MS: i64 = 60_000;
/// Records kept for retry while the disk refuses them (a week of 3 shifts).
const KEPT_UNWRITTEN: usize = 21;
/// Source outages read back at start: from this long before the first event
/// (the shift in progress and the one a `late` record is written for).
const OUTAGES_BACK_MS: i64 = 2 * 86_400_000;
/// Outage transitions kept for retry while the disk refuses them.
const KEPT_OUTAGE_MARKS: usize = 1_000;

/// A shift in progress.
struct Running {
    span: ShiftSpan,
    peaks: HashMap<String, Peak>,
    records: Vec<IntervalRecord>,
    /// The adherence day totals as the shift began (stored, so a restart
    /// keeps them): the shift's own adherence is the totals at its end
    /// minus these.
    adherence_base: Vec<super::adherence::DayAdherence>,
}

/// A shift that ended: its end-of-shift state, waiting for its last
/// intervals.
struct Due {
    running: Running,
    active: Vec<ActiveStage>,
    signed_in: Vec<String>,
    pending: Vec<u64>,
    formulas: HashMap<String, SlFormula>,
    /// `floor_rules` as of the shift's end.
    floor: Option<serde_json::Value>,
    /// `source_outages` as of the shift's end.
    outages: Option<Vec<serde_json::Value>>,
}

/// Writes a handover record at each shift's end (see the module docs).
pub struct HandoverObserver {
    shifts: Vec<Shift>,
    zone: jiff::tz::TimeZone,
    /// The escalation log (the ladder's store: in a replay, its private one).
    audit: Arc<Store>,
    /// Interval history, duty log and handover records.
    store: Arc<Store>,
    started: bool,
    current: Option<Running>,
    /// When to look again without an event: the current shift's end, or
    /// the next shift's start.
    next_check: Option<Ts>,
    due: Option<Due>,
    unwritten: VecDeque<Handover>,
    retry_at: Ts,
    retry_ms: i64,
    /// The floor rules' boards (posts, adherence) for `floor_rules`.
    floor: Option<super::FloorHandles>,
    outages: super::outages::OutageLog,
    /// The stored outages have been read back (at the first sample).
    outages_restored: bool,
    /// Outage transitions the store refused, retried at the next sample.
    outage_marks: VecDeque<super::outages::OutageMark>,
    outage_write_failing: bool,
}

impl HandoverObserver {
    pub fn new(cfg: &crate::config::Config, audit: Arc<Store>, store: Arc<Store>) -> Self {
        HandoverObserver {
            shifts: cfg.shifts.clone(),
            zone: cfg.zone.clone(),
            audit,
            store,
            started: false,
            current: None,
            next_check: None,
            due: None,
            unwritten: VecDeque::new(),
            retry_at: Ts::ZERO,
            retry_ms: RETRY_FIRST_MS,
            floor: None,
            outages: Default::default(),
            outages_restored: false,
            outage_marks: VecDeque::new(),
            outage_write_failing: false,
        }
    }

    /// Fills `floor_rules` from these boards.
    pub fn with_floor(mut self, floor: super::FloorHandles) -> Self {
        self.floor = Some(floor);
        self
    }

    /// The adherence day totals as the shift `span` began: stored by an
    /// earlier run of this shift; else, at the shift's start (`at_edge`),
    /// the totals published at that instant (the adherence observer runs
    /// first and publishes at every shift edge); else (a start in the
    /// middle of the shift) the totals stored before, which the adherence
    /// observer counts on from. `[]` without `[adherence]`.
    fn adherence_base(
        &self,
        span: &ShiftSpan,
        at_edge: bool,
    ) -> Vec<super::adherence::DayAdherence> {
        let Some(h) = self.floor.as_ref().and_then(|f| f.adherence.as_ref()) else {
            return Vec::new();
        };
        match self.store.shift_adherence_base(span.start) {
            Ok(Some(base)) => return base,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, shift = %span.shift,
                "cannot read the shift's adherence base; taking the totals now"),
        }
        let base: Vec<_> = if at_edge {
            h.days().iter().cloned().collect()
        } else {
            let mut days = vec![span.day.clone()];
            if let Ok(d) = span.day.parse::<jiff::civil::Date>()
                && let Ok(next) = d.tomorrow()
            {
                days.push(next.to_string());
            }
            days.iter()
                .flat_map(|d| self.store.adherence_days(d).unwrap_or_default())
                .collect()
        };
        if let Err(e) = self.store.save_shift_adherence_base(span.start, &base) {
            tracing::warn!(error = %e, shift = %span.shift, "cannot save the shift's adherence base");
        }
        base
    }

    fn begin(&self, span: ShiftSpan, engine: &Engine, at_edge: bool) -> Running {
        let adherence_base = self.adherence_base(&span, at_edge);
        let mut peaks: HashMap<String, Peak> = match self.store.progress(span.start) {
            Ok(saved) => saved.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, shift = %span.shift, "cannot read the shift's saved peaks");
                HashMap::new()
            }
        };
        let now = engine.now();
        for q in 0..engine.queue_count() {
            let qs = engine.queue(q);
            let p = peaks.entry(qs.name.to_string()).or_default();
            let waiting = qs.waiting.len() as u32;
            if waiting > p.peak_waiting || p.peak_at.is_none() {
                p.peak_waiting = p.peak_waiting.max(waiting);
                p.peak_at = Some(now);
            }
            p.oldest = qs.oldest_since();
        }
        Running {
            span,
            peaks,
            records: Vec::new(),
            adherence_base,
        }
    }

    /// The first look: the shift running now, and a record for a shift
    /// that ended while the daemon was down (if it ran during that shift).
    fn start(&mut self, engine: &Engine) {
        self.started = true;
        let now = engine.now();
        if let Some(last) = shift::last_ended(&self.shifts, now, &self.zone) {
            let ran = self
                .store
                .intervals(last.start, last.end, None)
                .map(|r| !r.is_empty())
                .unwrap_or(false);
            if ran
                && !self
                    .store
                    .has_handover(&last.shift, last.start)
                    .unwrap_or(true)
            {
                let peaks = self.store.progress(last.start).unwrap_or_default();
                let outages = self.outages_during(&last);
                let due = Due {
                    running: Running {
                        span: last,
                        peaks: peaks.into_iter().collect(),
                        records: Vec::new(),
                        adherence_base: Vec::new(),
                    },
                    active: Vec::new(),
                    signed_in: Vec::new(),
                    pending: Vec::new(),
                    formulas: formulas(engine),
                    floor: None,
                    // Read back from the audit database at start.
                    outages,
                };
                let mut h = self.compose(due);
                h.late = true;
                h.written = now;
                h.escalations.active = None;
                h.escalations.signed_in_by_ladder = None;
                self.write(h, now);
            }
        }
        self.current =
            shift::current(&self.shifts, now, &self.zone).map(|s| self.begin(s, engine, false));
        self.plan(now);
    }

    fn plan(&mut self, now: Ts) {
        self.next_check = match &self.current {
            Some(r) => Some(r.span.end),
            None => shift::next_starting(&self.shifts, now, &self.zone),
        };
    }

    fn track(&mut self, engine: &Engine, q: usize) {
        let Some(r) = self.current.as_mut() else {
            return;
        };
        let now = engine.now();
        let qs = engine.queue(q);
        let p = r.peaks.entry(qs.name.to_string()).or_default();
        let waiting = qs.waiting.len() as u32;
        if waiting > p.peak_waiting {
            p.peak_waiting = waiting;
            p.peak_at = Some(now);
        }
        let oldest = qs.oldest_since();
        if let Some(was) = p.oldest
            && oldest.is_none_or(|o| o > was)
        {
            p.longest_wait_ms = p.longest_wait_ms.max(now.since(was));
        }
        p.oldest = oldest;
    }

    /// The shift ended at the engine's clock: takes its end-of-shift state.
    fn end_shift(&mut self, engine: &Engine) {
        let Some(mut running) = self.current.take() else {
            return;
        };
        let now = engine.now();
        let mut active = Vec::new();
        let mut pending = Vec::new();
        for q in 0..engine.queue_count() {
            let qs = engine.queue(q);
            if let Some(p) = running.peaks.get_mut(&*qs.name)
                && let Some(o) = qs.oldest_since()
            {
                p.longest_wait_ms = p.longest_wait_ms.max(now.since(o));
            }
            if let Some(e) = &qs.escalation {
                if e.stage > 0 {
                    active.push(ActiveStage {
                        queue: qs.name.to_string(),
                        stage: e.stage,
                        stage_name: e.stage_name.clone(),
                        since: e.since,
                        signed_in: e.signed_in.clone(),
                    });
                }
                pending.extend(e.pending.iter().copied());
            }
        }
        let signed_in = (0..engine.agent_count())
            .map(|a| engine.agent(a))
            .filter(|a| a.signed_in_by_escalation)
            .map(|a| a.id.to_string())
            .collect();
        let floor = self.floor.as_ref().and_then(|f| {
            let span = &running.span;
            super::summary::summarise(
                f,
                engine,
                span.start,
                span.end,
                &span.day,
                &running.adherence_base,
            )
        });
        let outages = self.outages_during(&running.span);
        self.due = Some(Due {
            running,
            active,
            signed_in,
            pending,
            formulas: formulas(engine),
            floor,
            outages,
        });
    }

    /// `source_outages` of a shift: `None` where source health is not
    /// watched (a replay).
    fn outages_during(&self, span: &ShiftSpan) -> Option<Vec<serde_json::Value>> {
        let watched = self
            .floor
            .as_ref()
            .is_some_and(|f| f.sources.get().is_some());
        watched.then(|| {
            self.outages
                .during(span.start, span.end)
                .iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .collect()
        })
    }

    /// Samples the sources' health; the transitions go to the audit
    /// database (read back first, at the first sample after a start).
    fn sample_outages(&mut self, now: Ts) {
        let Some(reg) = self.floor.as_ref().and_then(|f| f.sources.get()).cloned() else {
            return;
        };
        if !self.outages_restored {
            self.outages_restored = true;
            match self
                .store
                .outage_marks(Ts(now.0.saturating_sub(OUTAGES_BACK_MS)))
            {
                Ok(marks) => self.outages.restore(&marks),
                Err(e) => tracing::error!(error = %e,
                    "cannot read the stored source outages; the handover lists this run's only"),
            }
        }
        self.outages.sample(&reg, now);
        self.outage_marks.extend(self.outages.take_marks());
        if self.outage_marks.is_empty() {
            return;
        }
        let marks: Vec<_> = self.outage_marks.iter().cloned().collect();
        match self.store.append_outage_marks(&marks) {
            Ok(()) => {
                self.outage_marks.clear();
                self.outage_write_failing = false;
            }
            Err(e) => {
                if !std::mem::replace(&mut self.outage_write_failing, true) {
                    tracing::error!(error = %e, "cannot store a source outage; kept and retried");
                }
                while self.outage_marks.len() > KEPT_OUTAGE_MARKS {
                    self.outage_marks.pop_front();
                }
            }
        }
    }

    /// The record of a shift whose figures are all in.
    fn compose(&self, due: Due) -> Handover {
        let span = &due.running.span;
        // Stored rows first (closed before a restart); this process's own
        // records of the same intervals replace them.
        let mut rows: BTreeMap<(String, Ts), IntervalRow> = BTreeMap::new();
        match self.store.intervals(span.start, span.end, None) {
            Ok(stored) => {
                for r in stored.into_iter().filter(|r| r.end <= span.end) {
                    rows.insert((r.queue.clone(), r.start), r);
                }
            }
            Err(e) => tracing::error!(error = %e, shift = %span.shift,
                "cannot read the stored intervals; the handover has this run's only"),
        }
        for r in &due.running.records {
            rows.insert((r.queue.clone(), r.start), row_of(r));
        }
        let mut by_queue: BTreeMap<String, Vec<IntervalRow>> = BTreeMap::new();
        for ((q, _), r) in rows {
            by_queue.entry(q).or_default().push(r);
        }
        for q in due.running.peaks.keys() {
            by_queue.entry(q.clone()).or_default();
        }
        let queues = by_queue
            .iter()
            .map(|(q, rows)| {
                let f = due.formulas.get(q).copied().unwrap_or_default();
                sum(q, rows, f, due.running.peaks.get(q))
            })
            .collect();

        let entries = self
            .audit
            .entries(None, Some(span.start), MAX_ENTRIES)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the escalation log for the handover");
                Vec::new()
            });
        let in_shift = |e: &&Entry| e.ts >= span.start && e.ts < span.end;
        let started = entries
            .iter()
            .filter(in_shift)
            .filter(|e| e.direction == Direction::Up)
            .map(EntryBrief::from)
            .collect();
        let ended = entries
            .iter()
            .filter(in_shift)
            .filter(|e| e.direction == Direction::Down)
            .map(EntryBrief::from)
            .collect();
        let advice_pending: Vec<EntryBrief> = due
            .pending
            .iter()
            .filter_map(|&id| self.audit.entry(id).ok().flatten())
            .map(|e| EntryBrief::from(&e))
            .collect();
        let duty_log = self
            .store
            .duty_log(span.start, span.end, MAX_DUTY)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the duty log for the handover");
                Vec::new()
            });
        let mut reasons = Vec::new();
        for a in &due.active {
            reasons.push(format!(
                "{}: ladder stage {} ({}) active since {}",
                a.queue, a.stage, a.stage_name, a.since
            ));
        }
        for e in &advice_pending {
            reasons.push(format!(
                "{}: advice of stage {} ({}) pending since {}",
                e.queue, e.stage, e.stage_name, e.ts
            ));
        }
        Handover {
            id: 0,
            shift: span.shift.clone(),
            day: span.day.clone(),
            start: span.start,
            end: span.end,
            // The state it reports is the end's (`late` records: now).
            written: span.end,
            late: false,
            queues,
            escalations: ShiftEscalations {
                started,
                ended,
                active: Some(due.active),
                signed_in_by_ladder: Some(due.signed_in),
                advice_pending,
            },
            unresolved: !reasons.is_empty(),
            unresolved_reasons: reasons,
            duty_log,
            source_outages: due.outages,
            floor_rules: due.floor,
            ack: None,
        }
    }

    fn finish_due(&mut self, now: Ts) {
        if let Some(due) = self.due.take() {
            let h = self.compose(due);
            self.write(h, now);
        }
    }

    fn write(&mut self, h: Handover, now: Ts) {
        self.unwritten.push_back(h);
        self.retry_at = now;
        self.retry(now);
    }

    fn retry(&mut self, now: Ts) {
        if self.unwritten.is_empty() || now < self.retry_at {
            return;
        }
        while let Some(h) = self.unwritten.front() {
            match self.store.insert_handover(h) {
                Ok(id) => {
                    tracing::info!(handover = id, shift = %h.shift, day = %h.day,
                        unresolved = h.unresolved, "shift handover written");
                    self.unwritten.pop_front();
                    self.retry_ms = RETRY_FIRST_MS;
                }
                Err(e) => {
                    if self.retry_ms == RETRY_FIRST_MS {
                        tracing::error!(error = %e, shift = %h.shift, day = %h.day,
                            "cannot write the shift handover; kept and retried");
                    }
                    self.retry_at = now.plus_ms(self.retry_ms);
                    self.retry_ms = (self.retry_ms * 2).min(RETRY_MAX_MS);
                    break;
                }
            }
        }
        while self.unwritten.len() > KEPT_UNWRITTEN {
            if let Some(h) = self.unwritten.pop_front() {
                tracing::error!(shift = %h.shift, day = %h.day,
                    "handover record dropped: storage has failed for too long");
            }
        }
    }
}

fn formulas(engine: &Engine) -> HashMap<String, SlFormula> {
    (0..engine.queue_count())
        .map(|q| {
            let qs = engine.queue(q);
            (qs.name.to_string(), qs.params.sl_formula)
        })
        .collect()
}

/// An interval record as the history stores it.
fn row_of(r: &IntervalRecord) -> IntervalRow {
    let w = &r.window;
    IntervalRow {
        queue: r.queue.clone(),
        start: r.start,
        end: r.end,
        offered: w.offered,
        answered: w.answered,
        answered_in_sl: w.answered_in_sl,
        abandoned: w.abandoned,
        abandoned_in_sl: w.abandoned_in_sl,
        short_abandoned: w.short_abandoned,
        exited: w.exited,
        arrivals: w.arrivals,
        handled: w.handled,
        service_level: w.service_level,
        asa_s: w.asa_s,
        aht_s: w.aht_s,
        abandon_rate: w.abandon_rate,
        staffed_agents: r.staffed_agents,
        required_agents: r.required_agents,
        observed_from: Some(r.observed_from),
    }
}

/// Adds up one queue's intervals of a shift.
pub fn sum(
    queue: &str,
    rows: &[IntervalRow],
    formula: SlFormula,
    peak: Option<&Peak>,
) -> QueueShift {
    let mut t = Tally::default();
    let mut wait_s = 0.0;
    for r in rows {
        t.answered += r.answered;
        t.answered_in_sl += r.answered_in_sl;
        t.abandoned += r.abandoned;
        t.abandoned_in_sl += r.abandoned_in_sl;
        t.short_abandoned += r.short_abandoned;
        t.exited += r.exited;
        wait_s += r.asa_s.unwrap_or(0.0) * r.answered as f64;
    }
    let round4 = |x: f64| (x * 10_000.0).round() / 10_000.0;
    let round3 = |x: f64| (x * 1_000.0).round() / 1_000.0;
    QueueShift {
        queue: queue.into(),
        offered: t.offered(),
        answered: t.answered,
        answered_in_sl: t.answered_in_sl,
        abandoned: t.abandoned,
        abandoned_in_sl: t.abandoned_in_sl,
        short_abandoned: t.short_abandoned,
        exited: t.exited,
        service_level: kpi::service_level(&t, formula).map(round4),
        asa_s: (t.answered > 0).then(|| round3(wait_s / t.answered as f64)),
        longest_wait_s: peak.map_or(0.0, |p| p.longest_wait_ms as f64 / 1000.0),
        peak_waiting: peak.map_or(0, |p| p.peak_waiting),
        peak_waiting_at: peak.and_then(|p| p.peak_at),
        intervals: rows.len() as u32,
        partial: rows.iter().any(IntervalRow::is_partial),
    }
}

impl Observer for HandoverObserver {
    fn after_event(&mut self, engine: &mut Engine, queue: Option<usize>) {
        if self.shifts.is_empty() {
            return;
        }
        let now = engine.now();
        self.sample_outages(now);
        // The interval closed with the shift has arrived by now.
        self.finish_due(now);
        self.retry(now);
        if !self.started {
            self.start(engine);
        }
        if let Some(q) = queue {
            self.track(engine, q);
        }
        if self.next_check.is_some_and(|t| now >= t) {
            if self.current.as_ref().is_some_and(|r| now >= r.span.end) {
                self.end_shift(engine);
            }
            if self.current.is_none() {
                self.current = shift::current(&self.shifts, now, &self.zone)
                    .map(|s| self.begin(s, engine, true));
            }
            self.plan(now);
        }
    }

    fn intervals_closed(&mut self, records: &[IntervalRecord]) {
        let mut save = None;
        let mut last_in = false;
        for r in records {
            if let Some(d) = self.due.as_mut()
                && r.start >= d.running.span.start
                && r.end <= d.running.span.end
            {
                last_in |= r.end == d.running.span.end;
                d.running.records.push(r.clone());
            } else if let Some(c) = self.current.as_mut()
                && r.start >= c.span.start
                && r.end <= c.span.end
            {
                c.records.push(r.clone());
                save = Some(c.span.start);
            }
        }
        // Every queue closes its intervals at the same boundary: with the
        // one ending at the shift's end in, the record is complete.
        if last_in && let Some(end) = self.due.as_ref().map(|d| d.running.span.end) {
            self.finish_due(end);
        }
        if let (Some(start), Some(c)) = (save, self.current.as_ref()) {
            let peaks: Vec<(String, Peak)> = c
                .peaks
                .iter()
                .map(|(q, p)| (q.clone(), p.clone()))
                .collect();
            if let Err(e) = self.store.save_progress(start, &peaks) {
                tracing::warn!(error = %e, "cannot save the shift's peaks");
            }
        }
    }

    fn reconfigure(&mut self, engine: &mut Engine, config: &crate::config::Config) {
        if config.shifts != self.shifts || config.zone != self.zone {
            // New shifts apply from now: the running shift is kept only if
            // it is still the same span.
            self.shifts = config.shifts.clone();
            self.zone = config.zone.clone();
            let now = engine.now();
            let span = shift::current(&self.shifts, now, &self.zone);
            if self.current.as_ref().map(|r| &r.span) != span.as_ref() {
                self.current = span.map(|s| self.begin(s, engine, false));
            }
            self.plan(now);
        }
    }

    fn on_stop(&mut self, engine: &mut Engine) {
        self.finish_due(engine.now());
        self.retry_at = Ts::ZERO;
        self.retry(engine.now());
    }

    fn next_deadline(&self) -> Option<Ts> {
        self.next_check
    }
}
