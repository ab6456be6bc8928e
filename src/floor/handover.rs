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

use serde::{Deserialize, Serialize};

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

/// One supervisor's note in the duty log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DutyEntry {
    pub id: u64,
    pub ts: Ts,
    pub by: String,
    pub text: String,
}

/// Who acknowledged a handover, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub at: Ts,
}

/// Running peaks of one queue in the shift in progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Peak {
    pub peak_waiting: u32,
    pub peak_at: Option<Ts>,
    /// Longest wait of a call that left the queue in the shift.
    pub longest_wait_ms: i64,
    /// Join time of the oldest waiting call as last seen: when it changes,
    /// that call has left, and it waited longest of all that left since.
    pub oldest: Option<Ts>,
}

/// One queue's shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueShift {
    pub queue: String,
    pub offered: u64,
    pub answered: u64,
    pub answered_in_sl: u64,
    pub abandoned: u64,
    pub abandoned_in_sl: u64,
    pub short_abandoned: u64,
    pub exited: u64,
    /// The queue's configured formula over the shift's summed intervals.
    pub service_level: Option<f64>,
    /// Answered-weighted mean of the intervals' ASA.
    pub asa_s: Option<f64>,
    /// Longest wait of a call that left the queue during the shift, or of
    /// one still waiting at its end.
    pub longest_wait_s: f64,
    pub peak_waiting: u32,
    pub peak_waiting_at: Option<Ts>,
    /// Interval records added up.
    pub intervals: u32,
    /// Some interval was observed only in part (a restart inside it).
    pub partial: bool,
}

/// An escalation log entry, in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryBrief {
    pub id: u64,
    pub ts: Ts,
    pub queue: String,
    pub stage: u32,
    pub stage_name: String,
    pub direction: Direction,
    pub mode: String,
    pub reason: String,
}

impl From<&Entry> for EntryBrief {
    fn from(e: &Entry) -> Self {
        EntryBrief {
            id: e.id,
            ts: e.ts,
            queue: e.queue.clone(),
            stage: e.stage,
            stage_name: e.stage_name.clone(),
            direction: e.direction,
            mode: e.mode.clone(),
            reason: e.reason.clone(),
        }
    }
}

/// A ladder stage still active at the handover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveStage {
    pub queue: String,
    pub stage: u32,
    pub stage_name: String,
    pub since: Ts,
    pub signed_in: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShiftEscalations {
    /// Entries going up during the shift.
    pub started: Vec<EntryBrief>,
    /// Entries going down during the shift.
    pub ended: Vec<EntryBrief>,
    /// Stages active at the end (`None`: not known, a record caught up
    /// after the daemon was down at the shift's end).
    pub active: Option<Vec<ActiveStage>>,
    /// Agents the ladder still had signed in at the end.
    pub signed_in_by_ladder: Option<Vec<String>>,
    /// Advice waiting for an answer at the end.
    pub advice_pending: Vec<EntryBrief>,
}

/// The handover record of one shift occurrence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handover {
    /// Assigned by the store (0 until written).
    #[serde(default)]
    pub id: u64,
    pub shift: String,
    /// Local date the shift started on.
    pub day: String,
    pub start: Ts,
    pub end: Ts,
    /// Event time the record was made: the shift's end, or later when
    /// `late`.
    pub written: Ts,
    /// Made after a restart because the daemon was down when the shift
    /// ended: figures from the stored history, no end-of-shift state.
    #[serde(default)]
    pub late: bool,
    pub queues: Vec<QueueShift>,
    pub escalations: ShiftEscalations,
    /// Handed over during an unresolved emergency: a ladder stage still
    /// active or advice still pending at the end.
    pub unresolved: bool,
    pub unresolved_reasons: Vec<String>,
    pub duty_log: Vec<DutyEntry>,
    /// Source outages during the shift: not captured yet (always `null`;
    /// source health lives outside the engine thread).
    pub source_outages: Option<Vec<serde_json::Value>>,
    /// Post breaches and adherence summary, for the floor rules (posts,
    /// adherence) to fill; `null` while they do not run.
    pub floor_rules: Option<serde_json::Value>,
    /// Who acknowledged it and when (stored apart; never in the record
    /// as written).
    #[serde(default)]
    pub ack: Option<Ack>,
}

/// A shift in progress.
struct Running {
    span: ShiftSpan,
    peaks: HashMap<String, Peak>,
    records: Vec<IntervalRecord>,
}

/// A shift that ended: its end-of-shift state, waiting for its last
/// intervals.
struct Due {
    running: Running,
    active: Vec<ActiveStage>,
    signed_in: Vec<String>,
    pending: Vec<u64>,
    formulas: HashMap<String, SlFormula>,
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
        }
    }

    fn begin(&self, span: ShiftSpan, engine: &Engine) -> Running {
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
                let due = Due {
                    running: Running {
                        span: last,
                        peaks: peaks.into_iter().collect(),
                        records: Vec::new(),
                    },
                    active: Vec::new(),
                    signed_in: Vec::new(),
                    pending: Vec::new(),
                    formulas: formulas(engine),
                };
                let mut h = self.compose(due);
                h.late = true;
                h.written = now;
                h.escalations.active = None;
                h.escalations.signed_in_by_ladder = None;
                self.write(h, now);
            }
        }
        self.current = shift::current(&self.shifts, now, &self.zone).map(|s| self.begin(s, engine));
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
        self.due = Some(Due {
            running,
            active,
            signed_in,
            pending,
            formulas: formulas(engine),
        });
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
            source_outages: None,
            floor_rules: None,
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
                self.current =
                    shift::current(&self.shifts, now, &self.zone).map(|s| self.begin(s, engine));
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
                self.current = span.map(|s| self.begin(s, engine));
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

/// Texts of the Markdown report, in one place per language.
struct Texts {
    title: &'static str,
    unresolved: &'static str,
    late: &'static str,
    queue_head: &'static str,
    escalations: &'static str,
    started: &'static str,
    ended: &'static str,
    active: &'static str,
    signed_in: &'static str,
    advice: &'static str,
    duty_log: &'static str,
    none: &'static str,
    ack: &'static str,
    not_ack: &'static str,
    outages: &'static str,
    not_captured: &'static str,
}

const EN: Texts = Texts {
    title: "Shift handover",
    unresolved: "UNRESOLVED: handed over during an active emergency",
    late: "Written late (the daemon was down at the shift's end): no end-of-shift state.",
    queue_head: "| queue | offered | answered | abandoned | SL | ASA s | longest wait s | peak waiting (at) |",
    escalations: "Escalations",
    started: "Started",
    ended: "Ended",
    active: "Still active",
    signed_in: "Signed in by the ladder",
    advice: "Advice pending",
    duty_log: "Duty log",
    none: "none",
    ack: "Acknowledged by",
    not_ack: "Not acknowledged yet",
    outages: "Source outages",
    not_captured: "not captured",
};

const ZH_CN: Texts = Texts {
    title: "交接班记录",
    unresolved: "未解决：交接时应急仍在进行",
    late: "补写（班次结束时守护进程未运行）：无班末状态。",
    queue_head: "| 队列 | 进线 | 接通 | 放弃 | 服务水平 | 平均应答秒 | 最长等待秒 | 最多排队（时间） |",
    escalations: "升级",
    started: "开始",
    ended: "结束",
    active: "仍在进行",
    signed_in: "由升级签入的坐席",
    advice: "待处理建议",
    duty_log: "值班日志",
    none: "无",
    ack: "确认人",
    not_ack: "尚未确认",
    outages: "数据源中断",
    not_captured: "未采集",
};

fn texts(lang: &str) -> &'static Texts {
    if lang.eq_ignore_ascii_case("zh-CN") || lang.eq_ignore_ascii_case("zh") {
        &ZH_CN
    } else {
        &EN
    }
}

/// Handover records as Markdown (`acdmon report --handover DAY`); times in
/// `zone`; `lang` is `en` or `zh-CN`.
pub fn markdown(records: &[Handover], zone: &jiff::tz::TimeZone, lang: &str) -> String {
    use std::fmt::Write;
    let t = texts(lang);
    let local = |ts: Ts| -> String {
        ts.to_jiff()
            .to_zoned_datetime(zone.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    };
    let mut s = String::new();
    for h in records {
        let _ = writeln!(
            s,
            "# {} — {} {} ({} – {})\n",
            t.title,
            h.shift,
            h.day,
            local(h.start),
            local(h.end)
        );
        if h.unresolved {
            let _ = writeln!(s, "**{}**\n", t.unresolved);
            for r in &h.unresolved_reasons {
                let _ = writeln!(s, "- {r}");
            }
            s.push('\n');
        }
        if h.late {
            let _ = writeln!(s, "_{}_\n", t.late);
        }
        let _ = writeln!(s, "{}", t.queue_head);
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---|");
        let opt = |x: Option<f64>, pct: bool| match x {
            Some(v) if pct => format!("{:.1}%", v * 100.0),
            Some(v) => format!("{v:.1}"),
            None => "—".into(),
        };
        for q in &h.queues {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.0} | {} ({}) |",
                q.queue,
                q.offered,
                q.answered,
                q.abandoned,
                opt(q.service_level, true),
                opt(q.asa_s, false),
                q.longest_wait_s,
                q.peak_waiting,
                q.peak_waiting_at.map_or("—".into(), local)
            );
        }
        let e = &h.escalations;
        let _ = writeln!(s, "\n## {}\n", t.escalations);
        let list = |s: &mut String, head: &str, v: &[EntryBrief]| {
            let _ = writeln!(s, "- {head}: {}", if v.is_empty() { t.none } else { "" });
            for x in v {
                let _ = writeln!(
                    s,
                    "  - {} {} stage {} ({}): {}",
                    local(x.ts),
                    x.queue,
                    x.stage,
                    x.stage_name,
                    x.reason
                );
            }
        };
        list(&mut s, t.started, &e.started);
        list(&mut s, t.ended, &e.ended);
        match &e.active {
            Some(a) if !a.is_empty() => {
                let _ = writeln!(s, "- {}:", t.active);
                for x in a {
                    let _ = writeln!(
                        s,
                        "  - {} stage {} ({}) since {}",
                        x.queue,
                        x.stage,
                        x.stage_name,
                        local(x.since)
                    );
                }
            }
            _ => {
                let _ = writeln!(s, "- {}: {}", t.active, t.none);
            }
        }
        let signed = e
            .signed_in_by_ladder
            .as_ref()
            .filter(|v| !v.is_empty())
            .map_or(t.none.to_string(), |v| v.join(", "));
        let _ = writeln!(s, "- {}: {signed}", t.signed_in);
        list(&mut s, t.advice, &e.advice_pending);
        let _ = writeln!(s, "- {}: {}", t.outages, t.not_captured);
        let _ = writeln!(s, "\n## {}\n", t.duty_log);
        if h.duty_log.is_empty() {
            let _ = writeln!(s, "{}", t.none);
        }
        for d in &h.duty_log {
            let _ = writeln!(s, "- {} {}: {}", local(d.ts), d.by, d.text);
        }
        s.push('\n');
        match &h.ack {
            Some(a) => {
                let _ = writeln!(s, "{} {} ({})\n", t.ack, a.by, local(a.at));
            }
            None => {
                let _ = writeln!(s, "{}\n", t.not_ack);
            }
        }
    }
    s
}
