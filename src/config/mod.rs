//! Configuration (contract section 2): TOML, validated with positions.
//!
//! `check-config` must report *every* error, each as `file:line:col:
//! message`. serde stops at the first error, so the loader parses the file
//! into a span-carrying tree first (`toml::de::DeTable`), deserializes each
//! section and each array entry on its own, and when an entry fails it removes
//! the offending key and tries again: one pass finds every bad key of an
//! entry. Cross-references (groups, ladders, sources, zones, expressions) are
//! checked last, with the spans serde kept for them.

mod adherence;
pub mod cluster;
pub mod cti;
pub mod diff;
mod load_sources;
mod model;
mod posts;
pub mod sources;
mod values;
pub mod walls;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

pub use adherence::{ActivityConfig, AdherenceConfig};
pub use cluster::ClusterConfig;
pub use model::*;
pub use posts::PostConfig;
pub use sources::*;
pub use values::{HumanDuration, Secret, ct_eq};
pub use walls::WallConfig;

use crate::escalation::expr::Expr;
use crate::state::{AgentProfile, EngineConfig, QueueParams};

/// A configuration error at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub file: String,
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub zone: jiff::tz::TimeZone,
    pub zone_name: String,
    /// `[time] max_future_skew`, in milliseconds.
    pub max_future_skew_ms: i64,
    pub defaults: QueueParams,
    pub queues: Vec<QueueConfig>,
    pub agents: Vec<AgentConfig>,
    pub sources: Vec<SourceConfig>,
    pub ladders: Vec<LadderConfig>,
    /// `[[schedules]]`, compiled (first match wins).
    pub schedules: Vec<crate::escalation::schedule::Schedule>,
    /// `[[cti]]` entries.
    pub cti: Vec<CtiConfig>,
    /// `[[shifts]]`, compiled (no two overlap).
    pub shifts: Vec<crate::floor::shift::Shift>,
    /// `[handover]`.
    pub handover: HandoverConfig,
    /// `[[posts]]`, compiled (A/B post cover, see `crate::floor::posts`).
    pub posts: Vec<crate::floor::posts::PostRule>,
    /// `[adherence]`, with its plan loaded (see `crate::floor::adherence`).
    pub adherence: Option<crate::floor::adherence::AdherenceRules>,
    /// `[[walls]]`: named walls at `/wall/{name}`.
    pub walls: Vec<WallConfig>,
    /// `[cluster]`: cluster mode on NATS JetStream; `None` is the embedded
    /// single process.
    pub cluster: Option<ClusterConfig>,
    /// What is valid but probably not meant (a ladder stage naming a group
    /// no `[[agents]]` entry is in): `check-config` prints these as
    /// `file:line:col: warning: ...` and exits 0, `run` logs them. Not
    /// errors, because the contract's own example configuration has such
    /// stages and must validate; at run time such a stage signs nobody in
    /// and says so in its entry (fewer eligible than `min`).
    pub warnings: Vec<ConfigError>,
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &str) -> Result<Config, Vec<ConfigError>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) => Err(vec![ConfigError {
                file: path.into(),
                line: 1,
                col: 1,
                message: format!("cannot read: {e}"),
            }]),
        }
    }

    /// Validates configuration text; `file` labels the errors.
    pub fn parse(file: &str, text: &str) -> Result<Config, Vec<ConfigError>> {
        let mut l = Loader {
            file,
            text,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        let cfg = l.load();
        match cfg {
            Some(mut c) if l.errors.is_empty() => {
                c.warnings = std::mem::take(&mut l.warnings);
                c.warnings.sort_by_key(|e| (e.line, e.col));
                Ok(c)
            }
            _ => {
                let mut errs = l.errors;
                errs.sort_by_key(|e| (e.line, e.col));
                errs.dedup();
                Err(errs)
            }
        }
    }

    /// The settings the state engine needs.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            zone: self.zone.clone(),
            defaults: self.defaults.clone(),
            queues: self
                .queues
                .iter()
                .map(|q| (q.name.clone(), resolve(&self.defaults, &q.settings())))
                .collect(),
            agents: self
                .agents
                .iter()
                .map(|a| AgentProfile {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    interface: a.interface.clone(),
                    source: a.source.as_ref().map(|s| s.get_ref().clone()),
                    groups: a.groups.clone(),
                })
                .collect(),
            stream: self.cluster.as_ref().map(|c| c.stream_label()),
            sites: match &self.cluster {
                None => crate::state::SiteNames::None,
                Some(c) if c.is_central() => crate::state::SiteNames::Qualified,
                Some(c) => crate::state::SiteNames::One(c.site().to_string()),
            },
        }
    }

    pub fn ladder(&self, name: &str) -> Option<&LadderConfig> {
        self.ladders.iter().find(|l| l.name == name)
    }
}

/// A queue's settings over the defaults.
fn resolve(d: &QueueParams, s: &QueueSettings) -> QueueParams {
    QueueParams {
        sl_threshold_ms: s
            .sl_threshold
            .map(|x| x.millis())
            .unwrap_or(d.sl_threshold_ms),
        sl_target: s
            .sl_target
            .as_ref()
            .map(|x| *x.get_ref())
            .unwrap_or(d.sl_target),
        short_abandon_ms: s
            .short_abandon
            .map(|x| x.millis())
            .unwrap_or(d.short_abandon_ms),
        sl_formula: s.sl_formula.unwrap_or(d.sl_formula),
        sl_round: s.sl_round.unwrap_or(d.sl_round),
        rolling_ms: s.rolling_window.map(|x| x.millis()).unwrap_or(d.rolling_ms),
        interval_ms: s
            .interval
            .as_ref()
            .map(|x| x.get_ref().millis())
            .unwrap_or(d.interval_ms),
        wrap_up_ms: s.wrap_up.map(|x| x.millis()).unwrap_or(d.wrap_up_ms),
        ladder: s
            .ladder
            .as_ref()
            .map(|x| x.get_ref().clone())
            .or_else(|| d.ladder.clone()),
    }
}

struct Loader<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

const SECTIONS: &str = "server, storage, time, defaults, queues, agents, sources, ladders, schedules, cti, shifts, handover, posts, adherence, walls, cluster";

impl<'a> Loader<'a> {
    fn err(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let (line, col) = span.map(|s| line_col(self.text, s.start)).unwrap_or((1, 1));
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            col,
            message: message.into(),
        });
    }

    /// A finding that is not an error (see [`Config::warnings`]).
    fn warn(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let (line, col) = span.map(|s| line_col(self.text, s.start)).unwrap_or((1, 1));
        self.warnings.push(ConfigError {
            file: self.file.to_string(),
            line,
            col,
            message: message.into(),
        });
    }

    fn load(&mut self) -> Option<Config> {
        let (root, syntax) = DeTable::parse_recoverable(self.text);
        if !syntax.is_empty() {
            for e in syntax {
                let msg = first_line(e.message());
                self.err(e.span(), msg);
            }
            return None;
        }
        let root = root.into_inner();
        let mut server = ServerConfig::default();
        let mut storage = StorageConfig::default();
        let mut time = TimeConfig::default();
        let mut defaults = QueueSettings::default();
        let mut queues: Vec<QueueConfig> = Vec::new();
        let mut agents: Vec<AgentConfig> = Vec::new();
        let mut sources: Vec<SourceConfig> = Vec::new();
        let mut ladders: Vec<LadderConfig> = Vec::new();
        let mut schedule_cfgs: Vec<ScheduleConfig> = Vec::new();
        let mut cti: Vec<CtiConfig> = Vec::new();
        let mut shift_cfgs: Vec<ShiftConfig> = Vec::new();
        let mut handover = HandoverConfig::default();
        let mut post_cfgs: Vec<PostConfig> = Vec::new();
        let mut adherence_cfg: Option<AdherenceConfig> = None;
        let mut walls: Vec<WallConfig> = Vec::new();
        let mut cluster: Option<ClusterConfig> = None;
        for (key, value) in root.iter() {
            match key.get_ref().as_ref() {
                "server" => server = self.de(value).unwrap_or_default(),
                "storage" => storage = self.de(value).unwrap_or_default(),
                "time" => time = self.de(value).unwrap_or_default(),
                "defaults" => defaults = self.de(value).unwrap_or_default(),
                "queues" => queues = self.each(value, "queues", |l, v| l.de(v)),
                "agents" => agents = self.each(value, "agents", |l, v| l.de(v)),
                "sources" => sources = self.each(value, "sources", |l, v| l.source(v)),
                "ladders" => ladders = self.each(value, "ladders", |l, v| l.de(v)),
                "schedules" => schedule_cfgs = self.each(value, "schedules", |l, v| l.de(v)),
                "cti" => cti = self.each(value, "cti", |l, v| l.cti(v)),
                "shifts" => shift_cfgs = self.each(value, "shifts", |l, v| l.de(v)),
                "handover" => handover = self.de(value).unwrap_or_default(),
                "posts" => post_cfgs = self.each(value, "posts", |l, v| l.de(v)),
                "adherence" => adherence_cfg = Some(self.de(value).unwrap_or_default()),
                "walls" => walls = self.each(value, "walls", |l, v| l.de(v)),
                "cluster" => cluster = self.de(value),
                other => self.err(
                    Some(key.span()),
                    format!("unknown section `{other}` (expected one of: {SECTIONS})"),
                ),
            }
        }

        // Time zone.
        let zone_name = time.zone.get_ref().clone();
        let zone = match jiff::tz::TimeZone::get(&zone_name) {
            Ok(z) => z,
            Err(_) => {
                self.err(
                    Some(time.zone.span()),
                    format!(
                        "unknown time zone `{zone_name}` (an IANA name such as \"Asia/Shanghai\")"
                    ),
                );
                jiff::tz::TimeZone::UTC
            }
        };

        let max_future_skew_ms = time.max_future_skew.get_ref().millis();
        if !(1_000..=86_400_000).contains(&max_future_skew_ms) {
            self.err(
                Some(time.max_future_skew.span()),
                format!(
                    "max_future_skew {} must be between 1s and 24h",
                    time.max_future_skew.get_ref()
                ),
            );
        }
        let stall = server.engine_stall_after.get_ref().millis();
        if !(1_000..=3_600_000).contains(&stall) {
            self.err(
                Some(server.engine_stall_after.span()),
                format!(
                    "engine_stall_after {} must be between 1s and 1h",
                    server.engine_stall_after.get_ref()
                ),
            );
        }

        for (key, d) in [
            ("header_timeout", server.header_timeout),
            ("body_timeout", server.body_timeout),
            ("shutdown_drain", server.shutdown_drain),
        ] {
            if d.0.is_zero() {
                self.err(None, format!("[server] {key} must be longer than 0s"));
            }
        }
        let defaults_p = resolve(&QueueParams::default(), &defaults);
        self.check_settings(&defaults);
        let ladder_names: HashSet<&str> = ladders
            .iter()
            .map(|l: &LadderConfig| l.name.as_str())
            .collect();
        let mut seen = HashSet::new();
        for q in &queues {
            if !seen.insert(q.name.clone()) {
                self.err(None, format!("queue `{}` is listed twice", q.name));
            }
            self.check_settings(&q.settings());
        }
        for l in [&defaults.ladder]
            .into_iter()
            .chain(queues.iter().map(|q: &QueueConfig| &q.ladder))
            .flatten()
        {
            if !ladder_names.contains(l.get_ref().as_str()) {
                self.err(
                    Some(l.span()),
                    format!(
                        "unknown ladder `{}` (no [[ladders]] entry has that name)",
                        l.get_ref()
                    ),
                );
            }
        }

        let mut source_names: HashSet<&str> = sources
            .iter()
            .map(|s: &SourceConfig| s.name.as_str())
            .collect();
        let mut defaults_seen = 0;
        for c in &cti {
            if !source_names.insert(c.name.as_str()) {
                self.err(
                    None,
                    format!(
                        "cti `{}`: the name is already used by a [[sources]] or [[cti]] entry",
                        c.name
                    ),
                );
            }
            defaults_seen += c.default as usize;
        }
        if defaults_seen > 1 {
            self.err(None, "more than one [[cti]] entry has `default = true`");
        }
        let mut groups: HashMap<&str, usize> = HashMap::new();
        let mut agent_ids = HashSet::new();
        for a in &agents {
            if !agent_ids.insert(a.id.as_str()) {
                self.err(None, format!("agent `{}` is listed twice", a.id));
            }
            for g in &a.groups {
                *groups.entry(g.as_str()).or_default() += 1;
            }
            if let Some(s) = &a.source
                && !source_names.contains(s.get_ref().as_str())
            {
                self.err(
                    Some(s.span()),
                    format!(
                        "unknown source `{}` (no [[sources]] or [[cti]] entry has that name)",
                        s.get_ref()
                    ),
                );
            }
        }
        let mut wall_names = HashSet::new();
        for w in &walls {
            if let Some(p) = w.problem() {
                self.err(None, p);
            } else if !wall_names.insert(w.name.as_str()) {
                self.err(None, format!("wall `{}` is listed twice", w.name));
            }
        }
        let mut names = HashSet::new();
        for s in &sources {
            if !names.insert(s.name.as_str()) {
                self.err(None, format!("source `{}` is listed twice", s.name));
            }
        }
        let mut lnames = HashSet::new();
        for l in &ladders {
            if !lnames.insert(l.name.as_str()) {
                self.err(None, format!("ladder `{}` is listed twice", l.name));
            }
            self.expr(&l.release_when);
            if l.stages.is_empty() {
                self.err(None, format!("ladder `{}` has no stages", l.name));
            }
            for st in &l.stages {
                self.expr(&st.when);
                if let Some(si) = &st.sign_in {
                    if !groups.contains_key(si.group.get_ref().as_str()) {
                        self.warn(
                            Some(si.group.span()),
                            format!(
                                "unknown group `{}` (no [[agents]] entry is in that group): \
                                 stage `{}` can sign nobody in",
                                si.group.get_ref(),
                                st.name
                            ),
                        );
                    }
                    if si.max == Some(0) {
                        self.err(
                            Some(si.group.span()),
                            format!("stage `{}`: max 0 signs nobody in", st.name),
                        );
                    }
                    if let (Some(min), Some(max)) = (si.min, si.max)
                        && min > max
                    {
                        self.err(
                            Some(si.group.span()),
                            format!("stage `{}`: min {min} > max {max}", st.name),
                        );
                    }
                }
                if st.sign_in.is_none() && st.advise.is_none() {
                    self.err(
                        Some(st.when.span()),
                        format!("stage `{}` neither signs in a group nor advises", st.name),
                    );
                }
                if let Some(s) = &st.staffing
                    && s.get_ref() == "erlang_c"
                    && st.advise.is_none()
                {
                    self.err(
                        Some(s.span()),
                        format!(
                            "stage `{}`: `staffing` sizes an advice; add `advise = \"...\"`",
                            st.name
                        ),
                    );
                }
                if let Some(s) = &st.staffing
                    && s.get_ref() != "erlang_c"
                {
                    self.err(
                        Some(s.span()),
                        format!("unknown staffing `{}` (erlang_c)", s.get_ref()),
                    );
                }
            }
        }

        let schedules = self.schedules(&schedule_cfgs, &ladder_names);
        let intervals: Vec<i64> = std::iter::once(defaults_p.interval_ms)
            .chain(
                queues
                    .iter()
                    .filter_map(|q| Some(q.interval.as_ref()?.get_ref().millis())),
            )
            .collect();
        let shifts = self.shifts(&shift_cfgs, &intervals);
        let posts = self.posts(&post_cfgs, &agent_ids, &schedules);
        let adherence = adherence_cfg.map(|c| self.adherence(&c, &agent_ids, &zone));
        if let Some(c) = &cluster {
            self.check_cluster(c, &sources, !cti.is_empty());
            self.check_central_acts(c, &ladders, &post_cfgs);
        }

        Some(Config {
            file: self.file.to_string(),
            server,
            storage,
            zone,
            zone_name,
            max_future_skew_ms,
            defaults: defaults_p,
            queues,
            agents,
            sources,
            ladders,
            schedules,
            cti,
            shifts,
            handover,
            posts,
            adherence,
            walls,
            cluster,
            warnings: Vec::new(),
        })
    }

    /// Compiles `[[shifts]]`: times `HH:MM` on interval boundaries, no two
    /// shifts overlapping, names unique.
    fn shifts(
        &mut self,
        cfgs: &[ShiftConfig],
        intervals: &[i64],
    ) -> Vec<crate::floor::shift::Shift> {
        use crate::floor::shift::{Shift, check_time};
        let mut out: Vec<Shift> = Vec::new();
        for c in cfgs {
            if c.name.is_empty() || out.iter().any(|s| s.name == c.name) {
                self.err(
                    Some(c.from.span()),
                    format!("shift `{}`: names must be unique and not empty", c.name),
                );
            }
            let time = |t: &Spanned<String>, l: &mut Self| -> Option<jiff::civil::Time> {
                let parsed = crate::escalation::schedule::parse_time(t.get_ref())
                    .ok_or_else(|| "is not a time of day (HH:MM)".to_string())
                    .and_then(|x| check_time(x, intervals).map(|()| x));
                match parsed {
                    Ok(x) => Some(x),
                    Err(why) => {
                        l.err(
                            Some(t.span()),
                            format!("shift `{}`: `{}` {why}", c.name, t.get_ref()),
                        );
                        None
                    }
                }
            };
            let (Some(from), Some(to)) = (time(&c.from, self), time(&c.to, self)) else {
                continue;
            };
            if from == to {
                self.err(
                    Some(c.from.span()),
                    format!("shift `{}`: `from` and `to` are equal", c.name),
                );
                continue;
            }
            let s = Shift {
                name: c.name.clone(),
                from,
                to,
            };
            if let Some(o) = out.iter().find(|o| o.overlaps(&s)) {
                self.err(
                    Some(c.from.span()),
                    format!("shift `{}` overlaps shift `{}`", c.name, o.name),
                );
                continue;
            }
            out.push(s);
        }
        out
    }

    /// Compiles `[[schedules]]`, reporting bad dates, times, weekdays and
    /// ladders at their positions.
    fn schedules(
        &mut self,
        cfgs: &[ScheduleConfig],
        ladders: &HashSet<&str>,
    ) -> Vec<crate::escalation::schedule::Schedule> {
        use crate::escalation::schedule::{Schedule, parse_time, parse_weekday};
        let mut out = Vec::new();
        let mut names = HashSet::new();
        for c in cfgs {
            if !names.insert(c.name.as_str()) {
                self.err(None, format!("schedule `{}` is listed twice", c.name));
            }
            let mut dates = Vec::new();
            for d in &c.dates {
                match d.get_ref().parse::<jiff::civil::Date>() {
                    Ok(x) => dates.push(x),
                    Err(_) => self.err(
                        Some(d.span()),
                        format!(
                            "schedule `{}`: `{}` is not a date (YYYY-MM-DD)",
                            c.name,
                            d.get_ref()
                        ),
                    ),
                }
            }
            let mut weekdays = Vec::new();
            for w in &c.weekdays {
                match parse_weekday(w.get_ref()) {
                    Some(x) => weekdays.push(x),
                    None => self.err(
                        Some(w.span()),
                        format!(
                            "schedule `{}`: `{}` is not a weekday (mon .. sun)",
                            c.name,
                            w.get_ref()
                        ),
                    ),
                }
            }
            let time = |t: &Option<Spanned<String>>, l: &mut Self| {
                t.as_ref().and_then(|t| {
                    let x = parse_time(t.get_ref());
                    if x.is_none() {
                        l.err(
                            Some(t.span()),
                            format!(
                                "schedule `{}`: `{}` is not a time of day (HH:MM)",
                                c.name,
                                t.get_ref()
                            ),
                        );
                    }
                    x
                })
            };
            let from = time(&c.from, self);
            let to = time(&c.to, self);
            let window = match (&c.from, &c.to) {
                (None, None) => None,
                (Some(_), Some(_)) => match (from, to) {
                    (Some(f), Some(t)) if f == t => {
                        self.err(
                            c.from.as_ref().map(|x| x.span()),
                            format!(
                                "schedule `{}`: `from` and `to` are equal (an empty window)",
                                c.name
                            ),
                        );
                        None
                    }
                    (Some(f), Some(t)) => Some((f, t)),
                    _ => None,
                },
                (Some(x), None) | (None, Some(x)) => {
                    self.err(
                        Some(x.span()),
                        format!("schedule `{}`: `from` and `to` go together", c.name),
                    );
                    None
                }
            };
            if c.dates.is_empty() && c.weekdays.is_empty() && c.from.is_none() && c.to.is_none() {
                self.err(
                    None,
                    format!(
                        "schedule `{}` is always on: give it `dates`, `weekdays` or `from`/`to`",
                        c.name
                    ),
                );
            }
            if let Some(l) = &c.ladder
                && !ladders.contains(l.get_ref().as_str())
            {
                self.err(
                    Some(l.span()),
                    format!(
                        "unknown ladder `{}` (no [[ladders]] entry has that name)",
                        l.get_ref()
                    ),
                );
            }
            out.push(Schedule {
                name: c.name.clone(),
                dates,
                weekdays,
                window,
                ladder: c.ladder.as_ref().map(|l| l.get_ref().clone()),
                queues: c.queues.clone(),
                select_ladder: c.select_ladder,
            });
        }
        out
    }

    fn check_settings(&mut self, s: &QueueSettings) {
        if let Some(t) = &s.sl_target
            && !(0.0..=1.0).contains(t.get_ref())
        {
            self.err(
                Some(t.span()),
                format!("sl_target {} is not between 0 and 1", t.get_ref()),
            );
        }
        if let Some(i) = &s.interval {
            let ms = i.get_ref().millis();
            if ms < 60_000 || 86_400_000 % ms != 0 {
                self.err(
                    Some(i.span()),
                    format!(
                        "interval {} must divide a day into whole minutes (e.g. 15m, 30m, 1h)",
                        i.get_ref()
                    ),
                );
            }
        }
    }

    fn expr(&mut self, s: &Spanned<String>) {
        if let Err(e) = Expr::parse(s.get_ref()) {
            let span = (s.span() != (0..0)).then(|| s.span());
            self.err(span, format!("bad expression `{}`: {e}", s.get_ref()));
        }
    }

    /// Each entry of an array of tables.
    fn each<T>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        name: &str,
        mut f: impl FnMut(&mut Self, &Spanned<DeValue<'_>>) -> Option<T>,
    ) -> Vec<T> {
        match value.get_ref() {
            DeValue::Array(items) => items.iter().filter_map(|v| f(self, v)).collect(),
            _ => {
                self.err(
                    Some(value.span()),
                    format!("`{name}` must be an array of tables, written [[{name}]]"),
                );
                Vec::new()
            }
        }
    }

    /// Deserializes one table, reporting every bad key: on an error the key
    /// it points at is removed and the table is tried again.
    fn de<T: DeserializeOwned>(&mut self, value: &Spanned<DeValue<'_>>) -> Option<T> {
        let DeValue::Table(table) = value.get_ref() else {
            self.err(
                Some(value.span()),
                format!("expected a table, found {}", value.get_ref().type_str()),
            );
            return None;
        };
        let mut table: DeTable<'_> = table.clone();
        let span = value.span();
        let mut failed = false;
        let mut removed: Vec<String> = Vec::new();
        for _ in 0..64 {
            let v = Spanned::new(span.clone(), DeValue::Table(table.clone()));
            match T::deserialize(toml::de::ValueDeserializer::from(v)) {
                Ok(t) => return (!failed).then_some(t),
                Err(e) => {
                    failed = true;
                    let espan = e.span();
                    let msg = first_line(e.message());
                    let culprit = espan.as_ref().and_then(|es| {
                        table
                            .iter()
                            .find(|(k, v)| overlaps(&k.span(), es) || overlaps(&v.span(), es))
                            .map(|(k, _)| k.get_ref().to_string())
                    });
                    if removed
                        .iter()
                        .any(|k| msg.starts_with(&format!("missing field `{k}`")))
                    {
                        // Already reported as bad; not missing as well.
                        return None;
                    }
                    let at = espan.filter(|s| *s != span).or(Some(span.clone()));
                    self.err(at, msg);
                    match culprit {
                        Some(k) => {
                            table.remove(k.as_str());
                            removed.push(k);
                        }
                        None => return None,
                    }
                }
            }
        }
        None
    }
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start <= b.start && b.start < a.end.max(a.start + 1)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
