//! `acdmon replay`: recorded events through the same engine and observers as
//! the daemon, on event time, as fast as the CPU allows.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{Config, SourceSpec};
use crate::engine_thread::{Driver, Observer};
use crate::escalation::Entry;
use crate::event::Event;
use crate::sources::{self, RejectCounter};
use crate::state::{AgentView, Engine, IntervalRecord, QueueView};

/// Input formats `replay` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    /// Asterisk's `queue_log` (contract spelling; `queue-log` also taken).
    #[value(name = "queue_log", alias = "queue-log")]
    QueueLog,
    Ami,
    /// HEPv3 packets back to back (a TCP capture, or datagrams written one
    /// after another), mapped by the config's `kind = "hep"` source rules.
    Hep,
    /// A FreeSWITCH event-socket transcript (the bytes an ESL client received).
    Esl,
}

pub use crate::sources::ReplayDecoder;

/// The replay report (contract section 1).
#[derive(Debug, Serialize)]
pub struct Report {
    pub queues: Vec<QueueView>,
    pub agents: Vec<AgentView>,
    pub escalations: Vec<Arc<Entry>>,
    pub rejected: BTreeMap<String, u64>,
    /// Extension: intervals closed during the replay.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<IntervalRecord>,
    /// Extension: `[[posts]]` as of the last event, with their breaches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub posts: Vec<crate::floor::posts::PostView>,
    /// Extension: schedule adherence per agent per local day (`[adherence]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adherence: Vec<crate::floor::adherence::DayAdherence>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
}

/// Builds the observers a replay runs with (the ladder, in log-only mode).
pub type ObserverFactory = dyn Fn(&Config) -> Vec<Box<dyn Observer>>;

/// Guesses the format from the first non-blank bytes.
pub fn detect(head: &[u8]) -> Format {
    if head.starts_with(crate::sources::hep::packet::HEP3_MAGIC) {
        return Format::Hep;
    }
    let text = String::from_utf8_lossy(head);
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if first.starts_with("Content-Type:") || first.starts_with("Content-Length:") {
        Format::Esl
    } else if first.starts_with('{') {
        Format::Json
    } else if first.starts_with("Asterisk Call Manager")
        || first.contains(": ") && !first.contains('|')
    {
        Format::Ami
    } else {
        Format::QueueLog
    }
}

/// The decoder of a recorded `format`, set up from the configuration: the
/// settings of its first `[[sources]]` entry of that kind (where the format
/// has any), the `[[agents]]` directory and the `[time] zone`. The one place
/// that maps a format to its adapter's replay entry point (live input has
/// its twin, [`crate::sources::spawn`]).
pub fn decoder(format: Format, cfg: &Config) -> Result<Box<dyn ReplayDecoder>, ReplayError> {
    let spec = |kind: &str| {
        cfg.sources
            .iter()
            .map(|s| &s.spec)
            .find(|s| s.kind() == kind)
    };
    let agents: Vec<(String, String)> = cfg
        .agents
        .iter()
        .filter_map(|a| Some((a.id.clone(), a.interface.clone()?)))
        .collect();
    Ok(match format {
        Format::Json => Box::new(sources::json::replay_decoder()),
        Format::QueueLog => Box::new(sources::queue_log::replay_decoder(
            &agents,
            cfg.zone.clone(),
        )),
        Format::Ami => Box::new(sources::ami::replay_decoder(&agents)),
        Format::Esl => Box::new(sources::esl::replay_decoder(match spec("esl") {
            Some(SourceSpec::Esl(c)) => Some(c),
            _ => None,
        })),
        Format::Hep => Box::new(
            sources::hep::replay_decoder(match spec("hep") {
                Some(SourceSpec::Hep(c)) => Some(c),
                _ => None,
            })
            .map_err(ReplayError::Unsupported)?,
        ),
    })
}

/// Replays `inputs` merged by event time (each input in its own order; on
/// equal times the input given first goes first) and returns the report as
/// of the last event's time. Every input is opened before any is replayed,
/// so an unreadable one fails the replay before it starts.
pub fn replay(
    cfg: &Config,
    inputs: &[String],
    format: Option<Format>,
    observers: &ObserverFactory,
) -> Result<Report, ReplayError> {
    let rejects = Arc::new(RejectCounter::default());
    let mut driver: Option<Driver> = None;
    let mut escalations = Vec::new();
    let mut intervals = Collector::default();
    let intervals_sink = intervals.handle();
    let mut post_board = None;
    let mut adherence = None;

    let mut on_event = |source: &str, ev: Event, driver: &mut Option<Driver>| {
        if driver.is_none()
            && let Err(e) = crate::time::Ts::event_time(ev.ts.0)
        {
            // The engine's clock starts at the first event: never at an
            // absurd one (later ones are checked by the driver).
            let rej = crate::sources::json::decode::time_reject(e);
            rejects.record(
                source,
                &format_args!("replay ({})", ev.kind.type_name()),
                &rej,
            );
            return;
        }
        let d = driver.get_or_insert_with(|| {
            let mut d = Driver::new(
                Engine::starting_at(cfg.engine_config(), ev.ts),
                rejects.clone(),
            );
            d.observers = observers(cfg);
            d.observers.push(Box::new(intervals_sink.clone()));
            if !cfg.posts.is_empty() {
                let (posts, board) = crate::floor::posts::PostsObserver::new(cfg);
                d.observers.push(Box::new(posts));
                post_board = Some(board);
            }
            if let Some((obs, handle)) = crate::floor::adherence::AdherenceObserver::new(cfg) {
                d.observers.push(Box::new(obs));
                adherence = Some(handle);
            }
            d
        });
        d.apply(source, ev);
        escalations.extend(d.before_publish());
    };

    let mut open = inputs
        .iter()
        .map(|path| Input::open(path, format))
        .collect::<Result<Vec<_>, _>>()?;
    loop {
        for input in open.iter_mut() {
            input.fill(cfg, &rejects)?;
        }
        // The input whose next event is earliest (the first given on a tie).
        let next = open
            .iter()
            .enumerate()
            .filter_map(|(i, input)| input.pending.front().map(|e| (e.ts, i)))
            .min();
        let Some((_, i)) = next else {
            break;
        };
        if let Some(ev) = open[i].pending.pop_front() {
            on_event(&open[i].label, ev, &mut driver);
        }
    }

    // Timers still running at the last event (a wrap-up the source times)
    // end as the daemon's tick would have ended them, up to the end of the
    // interval holding the last event; the report is then as of the last
    // of them. Without such timers it is as of the last event.
    if let Some(d) = driver.as_mut() {
        let e = &d.engine;
        let until = (0..e.queue_count())
            .map(|q| e.queue(q).interval.end)
            .max()
            .unwrap_or(e.now());
        let mut timed = Vec::new();
        for input in open.iter_mut() {
            if let Some(dec) = input.decoder.as_mut() {
                for r in dec.finish_timers(until.plus_ms(-1)) {
                    match r {
                        Ok(ev) => timed.push((input.label.clone(), ev)),
                        Err(rej) => rejects.record(&input.label, &input.path.as_str(), &rej),
                    }
                }
            }
        }
        timed.sort_by_key(|(_, ev)| ev.ts);
        for (label, ev) in timed {
            on_event(&label, ev, &mut driver);
        }
    }

    let (queues, agents) = match driver.as_mut() {
        Some(d) => {
            let now = d.engine.now();
            d.advance(now);
            escalations.extend(d.before_publish());
            d.stop();
            let e = &mut d.engine;
            let qs = (0..e.queue_count()).map(|q| e.queue_view(q)).collect();
            let ags = (0..e.agent_count()).map(|a| e.agent_view(a)).collect();
            (qs, ags)
        }
        None => {
            let mut e = Engine::new(cfg.engine_config());
            let qs = (0..e.queue_count()).map(|q| e.queue_view(q)).collect();
            let ags = (0..e.agent_count()).map(|a| e.agent_view(a)).collect();
            (qs, ags)
        }
    };
    // The ladder sends an entry again when one of its results changes; the
    // report lists each entry once, as it stands at the end.
    let mut last: BTreeMap<u64, Arc<Entry>> = BTreeMap::new();
    for e in escalations {
        last.insert(e.id, e);
    }
    let escalations: Vec<Arc<Entry>> = last.into_values().collect();
    Ok(Report {
        queues,
        agents,
        escalations,
        rejected: rejects.by_reason(),
        intervals: intervals.take(),
        posts: post_board
            .map(|b| b.snapshot().posts.clone())
            .unwrap_or_default(),
        adherence: adherence
            .map(|h| h.days().as_ref().clone())
            .unwrap_or_default(),
    })
}

/// Collects closed intervals during a replay.
#[derive(Default, Clone)]
struct Collector {
    inner: Arc<std::sync::Mutex<Vec<IntervalRecord>>>,
}

impl Collector {
    fn handle(&self) -> Collector {
        self.clone()
    }

    fn take(&mut self) -> Vec<IntervalRecord> {
        std::mem::take(&mut *self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Observer for Collector {
    fn intervals_closed(&mut self, records: &[IntervalRecord]) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(records);
    }
}

/// One recorded input, decoded a chunk at a time as the merge needs it.
struct Input {
    path: String,
    label: String,
    file: std::fs::File,
    format: Option<Format>,
    decoder: Option<Box<dyn ReplayDecoder>>,
    pending: VecDeque<Event>,
    done: bool,
}

impl Input {
    fn open(path: &str, format: Option<Format>) -> Result<Input, ReplayError> {
        let file = std::fs::File::open(path).map_err(|e| ReplayError::Io {
            path: path.to_string(),
            source: e,
        })?;
        let label = Path::new(path)
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_else(|| path.to_string());
        Ok(Input {
            path: path.to_string(),
            label,
            file,
            format,
            decoder: None,
            pending: VecDeque::new(),
            done: false,
        })
    }

    /// Reads and decodes until an event is pending or the input ends;
    /// rejected input is counted as it is met.
    fn fill(&mut self, cfg: &Config, rejects: &RejectCounter) -> Result<(), ReplayError> {
        let mut buf = Vec::new();
        while self.pending.is_empty() && !self.done {
            buf.resize(256 * 1024, 0);
            let n = self.file.read(&mut buf).map_err(|e| ReplayError::Io {
                path: self.path.clone(),
                source: e,
            })?;
            let d = match self.decoder.as_mut() {
                Some(d) => d,
                None => {
                    let f = self.format.unwrap_or_else(|| detect(&buf[..n]));
                    self.decoder.insert(decoder(f, cfg)?)
                }
            };
            let out = if n == 0 {
                d.finish()
            } else {
                d.feed(&buf[..n])
            };
            for r in out {
                match r {
                    Ok(ev) => self.pending.push_back(ev),
                    Err(rej) => match d.next_reject_line() {
                        Some(line) => {
                            rejects.record(&self.label, &format_args!("{}:{line}", self.path), &rej)
                        }
                        None => rejects.record(&self.label, &self.path.as_str(), &rej),
                    },
                }
            }
            self.done = n == 0;
        }
        Ok(())
    }
}
