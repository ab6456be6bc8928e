//! What a reload changes, in words an operator reads in the log, the API
//! answer and the audit trail. Secrets are named, never shown. Settings
//! that only a restart can change (the listener, the database, the time
//! zone every interval is cut in, the per-client WebSocket pacing and the
//! per-agent metric series, both fixed when their tasks start) are listed
//! apart, so a reload never ignores them silently.

use super::Config;
use crate::state::QueueParams;

/// The difference between the running configuration and a new one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigDiff {
    /// Applied by the reload.
    pub changes: Vec<String>,
    /// Different in the file, kept as they are until a restart.
    pub needs_restart: Vec<String>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.needs_restart.is_empty()
    }
}

pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut d = ConfigDiff::default();
    let (o, n) = (&old.server, &new.server);
    if o.listen != n.listen {
        d.needs_restart
            .push(format!("server.listen: {} -> {}", o.listen, n.listen));
    }
    if o.ws_coalesce != n.ws_coalesce {
        d.needs_restart.push(format!(
            "server.ws_coalesce: {} -> {}",
            o.ws_coalesce, n.ws_coalesce
        ));
    }
    if o.per_agent_metrics != n.per_agent_metrics {
        d.needs_restart.push(format!(
            "server.per_agent_metrics: {} -> {}",
            o.per_agent_metrics, n.per_agent_metrics
        ));
    }
    if o.engine_stall_after.get_ref() != n.engine_stall_after.get_ref() {
        d.needs_restart.push(format!(
            "server.engine_stall_after: {} -> {}",
            o.engine_stall_after.get_ref(),
            n.engine_stall_after.get_ref()
        ));
    }
    // The HTTP listener's timeouts are set when it starts; `body_timeout` is
    // read per request and applies at once.
    for (key, a, b) in [
        ("header_timeout", o.header_timeout, n.header_timeout),
        ("shutdown_drain", o.shutdown_drain, n.shutdown_drain),
    ] {
        if a != b {
            d.needs_restart.push(format!("server.{key}: {a} -> {b}"));
        }
    }
    if o.body_timeout != n.body_timeout {
        d.changes.push(format!(
            "server.body_timeout: {} -> {}",
            o.body_timeout, n.body_timeout
        ));
    }
    if old.max_future_skew_ms != new.max_future_skew_ms {
        d.changes.push(format!(
            "time.max_future_skew: {}s -> {}s",
            old.max_future_skew_ms as f64 / 1000.0,
            new.max_future_skew_ms as f64 / 1000.0
        ));
    }
    if old.storage.path != new.storage.path {
        d.needs_restart.push(format!(
            "storage.path: {} -> {}",
            old.storage.path, new.storage.path
        ));
    }
    if old.zone_name != new.zone_name {
        d.needs_restart
            .push(format!("time.zone: {} -> {}", old.zone_name, new.zone_name));
    }
    if old.shifts != new.shifts {
        // From now on; the running shift is kept when it is the same span.
        d.changes.push("shifts changed".into());
    }
    if format!("{:?}", old.posts) != format!("{:?}", new.posts) {
        d.changes.push("posts changed".into());
    }
    if format!("{:?}", old.adherence) != format!("{:?}", new.adherence) {
        d.changes.push("adherence rules or plan changed".into());
    }
    if old.handover.show_before != new.handover.show_before
        || old.handover.show_after != new.handover.show_after
    {
        d.changes
            .push("handover: wall banner timing changed".into());
    }
    if o.read_token != n.read_token {
        d.changes.push("server.read_token changed".into());
    }
    if o.admin_token != n.admin_token {
        d.changes.push("server.admin_token changed".into());
    }
    if o.metrics_auth != n.metrics_auth {
        d.changes.push(format!(
            "server.metrics_auth: {} -> {}",
            o.metrics_auth, n.metrics_auth
        ));
    }
    if o.wall_title != n.wall_title
        || o.wall_sl_amber != n.wall_sl_amber
        || o.wall_stale_after != n.wall_stale_after
        || o.wall_locale != n.wall_locale
    {
        d.changes.push("server: wall settings changed".into());
    }

    // Queues, by the settings the engine resolves (defaults included).
    let (oe, ne) = (old.engine_config(), new.engine_config());
    let mut names: Vec<&str> = oe.queues.iter().map(|(n, _)| n.as_str()).collect();
    for (n, _) in &ne.queues {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    for q in names {
        let (a, b) = (oe.queue_params(q), ne.queue_params(q));
        for c in queue_changes(&a, &b) {
            d.changes.push(format!("queue {q}: {c}"));
        }
    }
    if !ne
        .queues
        .iter()
        .all(|(n, _)| oe.queues.iter().any(|(o, _)| o == n))
    {
        let added: Vec<&str> = ne
            .queues
            .iter()
            .filter(|(n, _)| !oe.queues.iter().any(|(o, _)| o == n))
            .map(|(n, _)| n.as_str())
            .collect();
        d.changes
            .push(format!("queues added: {}", added.join(", ")));
    }

    named(
        &mut d.changes,
        "agent",
        &oe.agents,
        &ne.agents,
        |a| &a.id,
        |a, b| a == b,
    );
    named(
        &mut d.changes,
        "ladder",
        &old.ladders,
        &new.ladders,
        |l| &l.name,
        |a, b| {
            crate::escalation::ladder::Plan::compile(a).ok()
                == crate::escalation::ladder::Plan::compile(b).ok()
        },
    );
    named(
        &mut d.changes,
        "schedule",
        &old.schedules,
        &new.schedules,
        |s| &s.name,
        |a, b| a == b,
    );
    named(
        &mut d.changes,
        "source",
        &old.sources,
        &new.sources,
        |s| &s.name,
        |a, b| a == b,
    );
    named(
        &mut d.changes,
        "cti",
        &old.cti,
        &new.cti,
        |c| &c.name,
        |a, b| a == b,
    );
    // Walls apply on the next page load.
    named(
        &mut d.changes,
        "wall",
        &old.walls,
        &new.walls,
        |w| &w.name,
        |a, b| a == b,
    );
    if old.cluster != new.cluster {
        d.needs_restart.push("cluster: changed".into());
    }
    d
}

fn queue_changes(a: &QueueParams, b: &QueueParams) -> Vec<String> {
    let mut v = Vec::new();
    let secs = |ms: i64| format!("{}s", ms as f64 / 1000.0);
    let mut ms = |name: &str, x: i64, y: i64| {
        if x != y {
            v.push(format!("{name} {} -> {}", secs(x), secs(y)));
        }
    };
    ms("sl_threshold", a.sl_threshold_ms, b.sl_threshold_ms);
    ms("short_abandon", a.short_abandon_ms, b.short_abandon_ms);
    ms("rolling_window", a.rolling_ms, b.rolling_ms);
    ms("interval", a.interval_ms, b.interval_ms);
    ms("wrap_up", a.wrap_up_ms, b.wrap_up_ms);
    if a.sl_target != b.sl_target {
        v.push(format!("sl_target {} -> {}", a.sl_target, b.sl_target));
    }
    if a.sl_formula != b.sl_formula {
        v.push(format!(
            "sl_formula {:?} -> {:?}",
            a.sl_formula, b.sl_formula
        ));
    }
    if a.sl_round != b.sl_round {
        v.push(format!("sl_round {:?} -> {:?}", a.sl_round, b.sl_round));
    }
    if a.ladder != b.ladder {
        let s = |l: &Option<String>| l.clone().unwrap_or_else(|| "none".into());
        v.push(format!("ladder {} -> {}", s(&a.ladder), s(&b.ladder)));
    }
    v
}

/// Added, removed and changed entries of a list keyed by name.
fn named<T>(
    out: &mut Vec<String>,
    what: &str,
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> &String,
    same: impl Fn(&T, &T) -> bool,
) {
    let find = |list: &[T], k: &String| list.iter().find(|x| key(x) == k).is_some();
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut changed = Vec::new();
    for n in new {
        match old.iter().find(|o| key(o) == key(n)) {
            None => added.push(key(n).clone()),
            Some(o) if !same(o, n) => changed.push(key(n).clone()),
            Some(_) => {}
        }
    }
    for o in old {
        if !find(new, key(o)) {
            removed.push(key(o).clone());
        }
    }
    for (verb, list) in [("added", added), ("removed", removed), ("changed", changed)] {
        if !list.is_empty() {
            out.push(format!("{what}s {verb}: {}", list.join(", ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::parse(
            "t.toml",
            &format!("[server]\nadmin_token = \"a\"\n[[queues]]\nname = \"hotline\"\n{extra}"),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn a_threshold_change_is_named_and_a_listener_change_needs_a_restart() {
        let a = cfg("sl_threshold = \"20s\"\n");
        let b = cfg("sl_threshold = \"30s\"\n");
        let d = diff(&a, &b);
        assert_eq!(d.changes, vec!["queue hotline: sl_threshold 20s -> 30s"]);
        assert!(d.needs_restart.is_empty());
        let mut c = b.clone();
        c.server.listen = "0.0.0.0:9000".into();
        c.server.admin_token = Some(crate::config::Secret::inline("b"));
        let d = diff(&b, &c);
        assert_eq!(
            d.needs_restart,
            vec!["server.listen: 127.0.0.1:8080 -> 0.0.0.0:9000"]
        );
        assert_eq!(d.changes, vec!["server.admin_token changed"]);
        assert!(!format!("{d:?}").contains("\"b\""));
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn wall_settings_and_named_walls_are_listed_for_a_live_reload() {
        let a = cfg("[[walls]]\nname = \"front\"\nqueues = [\"hotline\"]\n");
        let mut b = cfg(
            "[[walls]]\nname = \"front\"\npattern = \"hot*\"\n[[walls]]\nname = \"night\"\nqueues = [\"hotline\"]\n",
        );
        b.server.wall_locale = crate::config::WallLocale::ZhCn;
        let d = diff(&a, &b);
        assert_eq!(
            d.changes,
            vec![
                "server: wall settings changed",
                "walls added: night",
                "walls changed: front"
            ]
        );
        assert!(
            d.needs_restart.is_empty(),
            "walls apply at the next page load"
        );
        let bad = Config::parse(
            "t.toml",
            "[[walls]]\nname = \"a\"\n[[walls]]\nname = \"b c\"\nqueues = [\"x\"]\n[server]\nwall_locale = \"fr\"\n",
        )
        .expect_err("three mistakes");
        let text: Vec<String> = bad.iter().map(|e| e.to_string()).collect();
        assert!(
            text.iter().any(|e| e.contains("wall `a`: needs `queues`")),
            "{text:?}"
        );
        assert!(text.iter().any(|e| e.contains("wall `b c`")), "{text:?}");
        assert!(
            text.iter()
                .any(|e| e.contains("wall_locale") || e.contains("fr")),
            "{text:?}"
        );
    }
}
