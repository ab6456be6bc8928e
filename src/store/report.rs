//! `acdmon report`: the interval history as the tables a hotline plans
//! shifts with.
//!
//! One row per queue and interval: what happened (offered, answered, SL,
//! ASA, AHT, abandons), the seats it had (`staffed_agents`, the time-weighted
//! mean of logged-in members) against the seats it needed
//! (`required_agents`, Erlang C from the interval's own arrivals and AHT for
//! the queue's SL target), and a forecast: the mean of the same weekday and
//! local time of day over the previous four weeks found in the history
//! (`forecast_offered`, `forecast_required`), with the actual against it.
//!
//! What it cannot compute: a real forecast (trend, seasonality, campaigns,
//! holidays; the four-week mean is a baseline, no more), shrinkage (breaks,
//! training, absence), schedule adherence, per-agent occupancy, and
//! multi-skill effects (an agent in two queues counts as staffed in both).

use std::collections::HashMap;
use std::fmt::Write;

use serde::Serialize;

use super::{IntervalRow, Store, StoreError};
use crate::config::Config;
use crate::state::erlang;
use crate::time::Ts;

/// Weeks of history the forecast averages.
pub const FORECAST_WEEKS: i64 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Csv,
    Json,
    /// `--handover` only (interval rows are CSV or JSON).
    Markdown,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Args(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    pub queue: String,
    /// Local time with offset.
    pub start: String,
    pub end: String,
    pub offered: u64,
    pub answered: u64,
    pub answered_in_sl: u64,
    pub abandoned: u64,
    pub short_abandoned: u64,
    pub exited: u64,
    pub service_level: Option<f64>,
    pub asa_s: Option<f64>,
    pub aht_s: Option<f64>,
    pub abandon_rate: Option<f64>,
    pub staffed_agents: f64,
    pub required_agents: Option<u32>,
    /// staffed − required: below 0 the interval was understaffed.
    pub staffing_gap: Option<f64>,
    pub forecast_weeks: u32,
    pub forecast_offered: Option<f64>,
    pub forecast_required: Option<u32>,
    /// offered − forecast_offered.
    pub forecast_error: Option<f64>,
    /// The daemon began inside this interval (after a restart, or a replay
    /// starting mid-interval): its figures miss what came before. Partial
    /// intervals are left out of later forecasts.
    pub partial: bool,
}

/// Parses `--from`/`--to`: a local date (`2026-11-23`: the whole day, so
/// `--to` includes it), a local date and time (`2026-11-23T09:30`), or an
/// RFC 3339 instant. Returns the instant; `end_of_day` picks the end of a
/// bare date.
pub fn parse_bound(s: &str, zone: &jiff::tz::TimeZone, end_of_day: bool) -> Result<Ts, String> {
    if let Some(t) = Ts::parse_rfc3339(s) {
        return Ok(t);
    }
    if s.contains(['T', ' ']) {
        if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
            let z = dt
                .to_zoned_datetime(zone.clone())
                .map_err(|e| format!("{s}: {e}"))?;
            return Ok(Ts(z.timestamp().as_millisecond()));
        }
    } else if let Ok(d) = s.parse::<jiff::civil::Date>() {
        let d = if end_of_day {
            d.tomorrow().map_err(|e| e.to_string())?
        } else {
            d
        };
        let z = d
            .to_zoned_datetime(zone.clone())
            .map_err(|e| format!("{s}: {e}"))?;
        return Ok(Ts(z.timestamp().as_millisecond()));
    }
    Err(format!(
        "`{s}` is not a date (2026-11-23), a local time (2026-11-23T09:30) or an RFC 3339 instant"
    ))
}

fn local(ts: Ts, zone: &jiff::tz::TimeZone) -> String {
    ts.to_jiff()
        .to_zoned_datetime(zone.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// The same local time `weeks` weeks earlier.
fn weeks_before(ts: Ts, weeks: i64, zone: &jiff::tz::TimeZone) -> Option<Ts> {
    let z = ts.to_jiff().to_zoned_datetime(zone.clone());
    let earlier = z.checked_sub(jiff::Span::new().weeks(weeks)).ok()?;
    Some(Ts(earlier.timestamp().as_millisecond()))
}

/// The report rows for `[from, to)`.
pub fn rows(
    cfg: &Config,
    store: &Store,
    from: Ts,
    to: Ts,
    queue: Option<&str>,
) -> Result<Vec<ReportRow>, ReportError> {
    if to <= from {
        return Err(ReportError::Args("`--to` must be after `--from`".into()));
    }
    let zone = &cfg.zone;
    let history_from = weeks_before(from, FORECAST_WEEKS, zone)
        .unwrap_or(from)
        .plus_ms(-3_600_000);
    let all = store.intervals(history_from, to, queue)?;
    let by_start: HashMap<(&str, i64), &IntervalRow> = all
        .iter()
        .map(|r| ((r.queue.as_str(), r.start.0), r))
        .collect();
    let engine_cfg = cfg.engine_config();
    let mut out = Vec::new();
    for r in all.iter().filter(|r| r.start >= from && r.start < to) {
        let params = engine_cfg.queue_params(&r.queue);
        let len_s = (r.end.0 - r.start.0).max(1) as f64 / 1000.0;
        let past: Vec<&IntervalRow> = (1..=FORECAST_WEEKS)
            .filter_map(|k| weeks_before(r.start, k, zone))
            .filter_map(|t| by_start.get(&(r.queue.as_str(), t.0)).copied())
            .filter(|p| !p.is_partial())
            .collect();
        let n = past.len() as f64;
        let forecast_offered =
            (!past.is_empty()).then(|| past.iter().map(|p| p.offered as f64).sum::<f64>() / n);
        let handled: u64 = past.iter().map(|p| p.handled).sum();
        let forecast_aht = (handled > 0).then(|| {
            past.iter()
                .map(|p| p.aht_s.unwrap_or(0.0) * p.handled as f64)
                .sum::<f64>()
                / handled as f64
        });
        let forecast_required = match (past.is_empty(), forecast_aht) {
            (false, Some(aht)) => {
                let arrivals = past.iter().map(|p| p.arrivals as f64).sum::<f64>() / n;
                erlang::required_agents(
                    arrivals / len_s,
                    aht,
                    params.sl_threshold_ms as f64 / 1000.0,
                    params.sl_target,
                )
            }
            _ => None,
        };
        out.push(ReportRow {
            queue: r.queue.clone(),
            start: local(r.start, zone),
            end: local(r.end, zone),
            offered: r.offered,
            answered: r.answered,
            answered_in_sl: r.answered_in_sl,
            abandoned: r.abandoned,
            short_abandoned: r.short_abandoned,
            exited: r.exited,
            service_level: r.service_level,
            asa_s: r.asa_s,
            aht_s: r.aht_s,
            abandon_rate: r.abandon_rate,
            staffed_agents: r.staffed_agents,
            required_agents: r.required_agents,
            staffing_gap: r
                .required_agents
                .map(|q| ((r.staffed_agents - q as f64) * 100.0).round() / 100.0),
            forecast_weeks: past.len() as u32,
            forecast_offered: forecast_offered.map(|x| (x * 100.0).round() / 100.0),
            forecast_required,
            forecast_error: forecast_offered
                .map(|f| ((r.offered as f64 - f) * 100.0).round() / 100.0),
            partial: r.is_partial(),
        });
    }
    Ok(out)
}

fn num(x: Option<f64>) -> String {
    x.map(|v| {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".to_string()
        } else {
            s.to_string()
        }
    })
    .unwrap_or_default()
}

/// Renders rows as CSV (with a header) or a JSON array.
pub fn render(rows: &[ReportRow], format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".into()),
        // `run` refuses Markdown for interval rows before rendering.
        ReportFormat::Csv | ReportFormat::Markdown => {
            let mut s = String::from(
                "queue,start,end,offered,answered,answered_in_sl,abandoned,short_abandoned,exited,\
                 service_level,asa_s,aht_s,abandon_rate,staffed_agents,required_agents,staffing_gap,\
                 forecast_weeks,forecast_offered,forecast_required,forecast_error,partial\n",
            );
            for r in rows {
                let q = if r.queue.contains([',', '"', '\n']) {
                    format!("\"{}\"", r.queue.replace('"', "\"\""))
                } else {
                    r.queue.clone()
                };
                let _ = writeln!(
                    s,
                    "{q},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    r.start,
                    r.end,
                    r.offered,
                    r.answered,
                    r.answered_in_sl,
                    r.abandoned,
                    r.short_abandoned,
                    r.exited,
                    num(r.service_level),
                    num(r.asa_s),
                    num(r.aht_s),
                    num(r.abandon_rate),
                    num(Some(r.staffed_agents)),
                    r.required_agents.map(|x| x.to_string()).unwrap_or_default(),
                    num(r.staffing_gap),
                    r.forecast_weeks,
                    num(r.forecast_offered),
                    r.forecast_required
                        .map(|x| x.to_string())
                        .unwrap_or_default(),
                    num(r.forecast_error),
                    r.partial,
                );
            }
            s
        }
    }
}

/// `acdmon report`: opens `[storage]` read-only in spirit (it never writes)
/// and renders the rows.
pub fn run(
    cfg: &Config,
    from: &str,
    to: &str,
    queue: Option<&str>,
    format: ReportFormat,
) -> Result<String, ReportError> {
    if format == ReportFormat::Markdown {
        return Err(ReportError::Args(
            "the interval report is csv or json; markdown is for --handover DAY".into(),
        ));
    }
    let from = parse_bound(from, &cfg.zone, false).map_err(ReportError::Args)?;
    let to = parse_bound(to, &cfg.zone, true).map_err(ReportError::Args)?;
    if !std::path::Path::new(&cfg.storage.path).exists() {
        return Err(ReportError::Args(format!(
            "no history at {} (run the daemon, or `acdmon replay --store`, first)",
            cfg.storage.path
        )));
    }
    let store = Store::open_to_read(&cfg.storage.path)?;
    let rows = rows(cfg, &store, from, to, queue)?;
    Ok(render(&rows, format))
}

/// `acdmon report --handover DAY`: the handover records of the shifts that
/// started on local date `day`, as Markdown (texts in `lang`: `en` or
/// `zh-CN`) or JSON.
pub fn handover(
    cfg: &Config,
    day: &str,
    format: ReportFormat,
    lang: &str,
) -> Result<String, ReportError> {
    let date: jiff::civil::Date = day
        .parse()
        .map_err(|_| ReportError::Args(format!("`{day}` is not a date (2026-11-23)")))?;
    if cfg.shifts.is_empty() {
        return Err(ReportError::Args(
            "no [[shifts]] in the configuration: there are no handovers".into(),
        ));
    }
    if !std::path::Path::new(&cfg.storage.path).exists() {
        return Err(ReportError::Args(format!(
            "no audit database at {} (run the daemon first)",
            cfg.storage.path
        )));
    }
    let store = Store::open_to_read(&cfg.storage.path)?;
    let spans = crate::floor::shift::spans_on(&cfg.shifts, date, &cfg.zone);
    let (Some(first), Some(last)) = (spans.first(), spans.iter().map(|s| s.end).max()) else {
        return Ok(String::new());
    };
    let records: Vec<_> = store
        .handovers(first.end, last.plus_ms(1), 1_000)?
        .into_iter()
        .filter(|h| h.day == day)
        .collect();
    Ok(match format {
        ReportFormat::Json => {
            serde_json::to_string_pretty(&records).unwrap_or_else(|_| "[]".into()) + "\n"
        }
        ReportFormat::Markdown | ReportFormat::Csv => {
            crate::floor::handover::markdown(&records, &cfg.zone, lang)
        }
    })
}

/// `acdmon report --adherence DAY`: each agent's schedule adherence on
/// local day `day`, as the daemon (or `replay --store`) saved it: a
/// Markdown table (English or Chinese) or JSON rows `{agent, day,
/// scheduled_s, out_s, adherence}`.
pub fn adherence(
    cfg: &Config,
    day: &str,
    format: ReportFormat,
    lang: &str,
) -> Result<String, ReportError> {
    let _: jiff::civil::Date = day
        .parse()
        .map_err(|_| ReportError::Args(format!("`{day}` is not a date (2026-11-23)")))?;
    if !std::path::Path::new(&cfg.storage.path).exists() {
        return Err(ReportError::Args(format!(
            "no audit database at {} (run the daemon first)",
            cfg.storage.path
        )));
    }
    let store = Store::open_to_read(&cfg.storage.path)?;
    let rows = store.adherence_days(day)?;
    Ok(match format {
        ReportFormat::Json => {
            serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into()) + "\n"
        }
        ReportFormat::Markdown | ReportFormat::Csv => adherence_markdown(day, &rows, lang),
    })
}

fn adherence_markdown(
    day: &str,
    rows: &[crate::floor::adherence::DayAdherence],
    lang: &str,
) -> String {
    let zh = lang.eq_ignore_ascii_case("zh-CN");
    let (title, head, none) = if zh {
        (
            "排班遵从度",
            "| 坐席 | 排班时长 | 未遵从时长 | 遵从度 |",
            "（当天没有排班记录）",
        )
    } else {
        (
            "Schedule adherence",
            "| agent | scheduled | out of adherence | adherence |",
            "(nothing scheduled that day)",
        )
    };
    let hms = |s: f64| {
        let s = s.round() as i64;
        format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    };
    let mut out = format!("# {title} {day}\n\n");
    if rows.is_empty() {
        out.push_str(none);
        out.push('\n');
        return out;
    }
    out.push_str(head);
    out.push_str("\n|---|---:|---:|---:|\n");
    for r in rows {
        let pct = r
            .adherence
            .map(|a| format!("{:.1} %", a * 100.0))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {pct} |",
            r.agent,
            hms(r.scheduled_s),
            hms(r.out_s)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_local_days() {
        let z = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let f = parse_bound("2026-11-23", &z, false).unwrap();
        let t = parse_bound("2026-11-23", &z, true).unwrap();
        assert_eq!(f, Ts::parse_rfc3339("2026-11-22T16:00:00Z").unwrap());
        assert_eq!(t.0 - f.0, 86_400_000);
        let x = parse_bound("2026-11-23T09:30", &z, true).unwrap();
        assert_eq!(x, Ts::parse_rfc3339("2026-11-23T01:30:00Z").unwrap());
        assert!(parse_bound("yesterday", &z, false).is_err());
        assert_eq!(local(f, &z), "2026-11-23T00:00:00+08:00");
    }

    #[test]
    fn a_week_back_keeps_the_local_time_across_dst() {
        let z = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        // 2026-10-25 is the autumn change; a week later at 09:00 local.
        let t = parse_bound("2026-10-29T09:00", &z, false).unwrap();
        let w = weeks_before(t, 1, &z).unwrap();
        assert_eq!(local(w, &z), "2026-10-22T09:00:00+02:00");
    }
}
