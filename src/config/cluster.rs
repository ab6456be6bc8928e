//! `[cluster]`: cluster mode on NATS JetStream (docs/cluster.md).
//!
//! Absent, acdmon is the embedded single process it always was; present,
//! sources append to a JetStream stream and the engine reads that stream.
//! Everything the broker will refuse later (a site name that is not a
//! subject token, a source name with a dot, a retention shorter than the day
//! an instance replays after a restart) is refused here, with its position,
//! so `check-config` finds it rather than the first failover.

use serde::Deserialize;
use serde_spanned::Spanned;

use super::values::{HumanDuration, Secret};
use super::{LadderConfig, Loader, PostConfig, SourceConfig};

/// `[cluster]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Server URLs (`nats://host:4222`, `tls://host:4222`); the client
    /// tries them in turn and reconnects to any.
    pub nats: Spanned<Vec<String>>,
    /// This site's name: the stream is `ACDMON_<site>`, its subjects
    /// `acdmon.<site>.events.<source>`.
    pub site: Spanned<String>,
    /// This instance's name in leases and logs; default host name and pid.
    #[serde(default)]
    pub instance: Option<String>,
    /// A NATS credentials file's content (JWT and nkey seed), usually
    /// `"file:/etc/acdmon/nats.creds"`.
    #[serde(default)]
    pub credentials: Option<Secret>,
    /// A server token (`authorization { token }`).
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub tls: Option<ClusterTls>,
    /// How long the stream keeps events (JetStream `max_age`). An instance
    /// replays today's events after a restart, so at least a day.
    #[serde(default = "default_retention")]
    pub retention: Spanned<HumanDuration>,
    /// `file` (survives a server restart) or `memory`.
    #[serde(default = "default_storage")]
    pub storage: Spanned<String>,
    /// Stream and lease bucket replicas (a JetStream cluster of 3 or 5).
    #[serde(default = "default_replicas")]
    pub replicas: Spanned<usize>,
    /// How long a source's lease outlives its holder: after a crash
    /// another instance takes the source over within this time.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: Spanned<HumanDuration>,
    /// JetStream's de-duplication window (`Nats-Msg-Id`).
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window: Spanned<HumanDuration>,
    /// A central instance: the sites whose streams it shows on one wall
    /// (read only: it ingests no source, holds no lease, runs no ladder).
    /// Empty: this instance belongs to `site`.
    #[serde(default = "default_sites")]
    pub sites: Spanned<Vec<String>>,
    /// A central instance marks a site STALE when nothing (not even the
    /// heartbeat its instances publish every 5 s) reached its stream for
    /// this long.
    #[serde(default = "default_stale_after")]
    pub stale_after: Spanned<HumanDuration>,
}

/// `[cluster.tls]`: file paths of PEM certificates.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClusterTls {
    /// CA certificates the server's certificate must chain to.
    #[serde(default)]
    pub ca: Option<String>,
    /// Client certificate and key, for servers that verify clients.
    #[serde(default)]
    pub cert: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
}

fn default_retention() -> Spanned<HumanDuration> {
    Spanned::new(0..0, HumanDuration::from_secs(2 * 86_400))
}
fn default_storage() -> Spanned<String> {
    Spanned::new(0..0, "file".into())
}
fn default_replicas() -> Spanned<usize> {
    Spanned::new(0..0, 1)
}
fn default_lease_ttl() -> Spanned<HumanDuration> {
    Spanned::new(0..0, HumanDuration::from_secs(10))
}
fn default_sites() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}
fn default_stale_after() -> Spanned<HumanDuration> {
    Spanned::new(0..0, HumanDuration::from_secs(15))
}
fn default_duplicate_window() -> Spanned<HumanDuration> {
    Spanned::new(0..0, HumanDuration::from_secs(120))
}

impl ClusterConfig {
    /// The server URLs.
    pub fn servers(&self) -> &[String] {
        self.nats.get_ref()
    }
    pub fn site(&self) -> &str {
        self.site.get_ref()
    }
    pub fn lease_ttl(&self) -> std::time::Duration {
        self.lease_ttl.get_ref().0
    }
    pub fn retention(&self) -> std::time::Duration {
        self.retention.get_ref().0
    }
    pub fn duplicate_window(&self) -> std::time::Duration {
        self.duplicate_window.get_ref().0
    }
    pub fn memory_storage(&self) -> bool {
        self.storage.get_ref() == "memory"
    }
    pub fn replicas(&self) -> usize {
        *self.replicas.get_ref()
    }
    /// The sites a central instance shows; empty on a site's own instance.
    pub fn sites(&self) -> &[String] {
        self.sites.get_ref()
    }
    pub fn is_central(&self) -> bool {
        !self.sites().is_empty()
    }
    pub fn stale_after(&self) -> std::time::Duration {
        self.stale_after.get_ref().0
    }
    /// The stream(s) the engine reads, as the checkpoint records it.
    pub fn stream_label(&self) -> String {
        if self.is_central() {
            let names: Vec<String> = self.sites().iter().map(|s| format!("ACDMON_{s}")).collect();
            format!("central:{}", names.join("+"))
        } else {
            format!("ACDMON_{}", self.site())
        }
    }
}

/// A NATS subject token as acdmon uses them (site and source names):
/// no dots, wildcards or white space, so `acdmon.<site>.events.<source>`
/// has exactly four tokens.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Loader<'_> {
    /// A central instance acts on no site: it shows every site's figures
    /// (ids `north/hotline`), while each site's own instances run its
    /// ladder and its CTI. A ladder or an automatic post cover there would
    /// sign agents in through a CTI it does not have, or act a second time
    /// beside the site's own leader: refused, each at its position.
    pub(super) fn check_central_acts(
        &mut self,
        c: &ClusterConfig,
        ladders: &[LadderConfig],
        posts: &[PostConfig],
    ) {
        if !c.is_central() {
            return;
        }
        let sites = (c.sites.span() != (0..0)).then(|| c.sites.span());
        for l in ladders {
            let at = l.stages.first().map(|s| s.when.span()).or(sites.clone());
            self.err(
                at,
                format!(
                    "ladder `{}`: [cluster] sites makes this a central instance, which runs no ladder (each site's own instances run theirs and act on its CTI): remove [[ladders]] (or sites)",
                    l.name
                ),
            );
        }
        for p in posts {
            if let Some(cover) = p.cover.as_ref().filter(|c| c.get_ref() == "auto") {
                self.err(
                    Some(cover.span()),
                    format!(
                        "post `{}`: cover = \"auto\" signs agents in, which a central instance ([cluster] sites) does not do: set cover = \"off\" (or remove sites)",
                        p.name
                    ),
                );
            }
        }
    }

    /// Checks `[cluster]` against itself and the sources it will carry.
    pub(super) fn check_cluster(&mut self, c: &ClusterConfig, sources: &[SourceConfig], cti: bool) {
        let span = |s: std::ops::Range<usize>| (s != (0..0)).then_some(s);
        if c.nats.get_ref().is_empty() {
            self.err(
                span(c.nats.span()),
                "[cluster] nats lists no server (write nats = [\"nats://host:4222\"])",
            );
        }
        for url in c.nats.get_ref() {
            let ok = ["nats://", "tls://"]
                .iter()
                .any(|p| url.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
            if !ok {
                self.err(
                    span(c.nats.span()),
                    format!("[cluster] nats: `{url}` is not a nats:// or tls:// URL"),
                );
            }
        }
        if !is_token(c.site.get_ref()) {
            self.err(
                span(c.site.span()),
                format!(
                    "[cluster] site `{}` must be 1-64 letters, digits, `_` or `-` (it is a NATS subject token)",
                    c.site.get_ref()
                ),
            );
        }
        if let Some(i) = &c.instance
            && (i.is_empty() || i.len() > 128)
        {
            self.err(None, "[cluster] instance must be 1-128 characters");
        }
        let auths = [c.credentials.is_some(), c.token.is_some(), c.user.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if auths > 1 {
            self.err(
                None,
                "[cluster] use one of credentials, token or user/password",
            );
        }
        if c.user.is_some() != c.password.is_some() {
            self.err(
                None,
                "[cluster] user and password go together (one is missing)",
            );
        }
        if let Some(t) = &c.tls
            && t.cert.is_some() != t.key.is_some()
        {
            self.err(
                None,
                "[cluster.tls] cert and key go together (one is missing)",
            );
        }
        if let Some(t) = &c.tls {
            for p in [&t.ca, &t.cert, &t.key].into_iter().flatten() {
                if !std::path::Path::new(p).is_file() {
                    self.err(None, format!("[cluster.tls] cannot read `{p}`"));
                }
            }
        }
        let day = std::time::Duration::from_secs(86_400);
        if c.retention() < day {
            self.err(
                span(c.retention.span()),
                format!(
                    "[cluster] retention {} must be at least 1d (a restarted instance replays today's events from the stream)",
                    c.retention.get_ref()
                ),
            );
        }
        if !["file", "memory"].contains(&c.storage.get_ref().as_str()) {
            self.err(
                span(c.storage.span()),
                format!(
                    "[cluster] storage `{}` must be \"file\" or \"memory\"",
                    c.storage.get_ref()
                ),
            );
        }
        if !(1..=5).contains(c.replicas.get_ref()) {
            self.err(
                span(c.replicas.span()),
                format!("[cluster] replicas {} must be 1..=5", c.replicas.get_ref()),
            );
        }
        let ttl = c.lease_ttl.get_ref().millis();
        if !(2_000..=300_000).contains(&ttl) {
            self.err(
                span(c.lease_ttl.span()),
                format!(
                    "[cluster] lease_ttl {} must be between 2s and 5m",
                    c.lease_ttl.get_ref()
                ),
            );
        }
        let dw = c.duplicate_window();
        if dw < std::time::Duration::from_secs(1) || dw > c.retention() {
            self.err(
                span(c.duplicate_window.span()),
                format!(
                    "[cluster] duplicate_window {} must be between 1s and the retention",
                    c.duplicate_window.get_ref()
                ),
            );
        }
        for site in c.sites() {
            if !is_token(site) {
                self.err(
                    span(c.sites.span()),
                    format!("[cluster] sites: `{site}` must be 1-64 letters, digits, `_` or `-`"),
                );
            }
        }
        if c.is_central() && !sources.is_empty() {
            self.err(
                span(c.sites.span()),
                "[cluster] sites makes this a central instance, which reads the sites' streams and ingests no source: remove [[sources]] (or sites)",
            );
        }
        if c.is_central() && cti {
            self.err(
                span(c.sites.span()),
                "[cluster] sites makes this a central instance, which acts on no site's CTI (each site's own leader does): remove [[cti]] (or sites)",
            );
        }
        let stale = c.stale_after.get_ref().millis();
        if !(10_000..=3_600_000).contains(&stale) {
            self.err(
                span(c.stale_after.span()),
                format!(
                    "[cluster] stale_after {} must be between 10s (two heartbeats) and 1h",
                    c.stale_after.get_ref()
                ),
            );
        }
        for s in sources {
            if !is_token(&s.name) {
                self.err(
                    None,
                    format!(
                        "source `{}`: in cluster mode a source name is a NATS subject token (letters, digits, `_`, `-`)",
                        s.name
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "[[queues]]\nname = \"sales\"\n[[sources]]\nname = \"pbx\"\nkind = \"json\"\nlisten = \"127.0.0.1:0\"\n";

    fn errors(cluster: &str) -> Vec<String> {
        match Config::parse("c.toml", &format!("{BASE}{cluster}")) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn no_cluster_section_is_the_embedded_default() {
        let c = Config::parse("c.toml", BASE).unwrap();
        assert!(c.cluster.is_none());
    }

    #[test]
    fn a_minimal_cluster_section_takes_the_defaults() {
        let c = Config::parse(
            "c.toml",
            &format!("{BASE}[cluster]\nnats = [\"nats://127.0.0.1:4222\"]\nsite = \"north\"\n"),
        )
        .unwrap();
        let cl = c.cluster.unwrap();
        assert_eq!(cl.site(), "north");
        assert_eq!(cl.lease_ttl(), std::time::Duration::from_secs(10));
        assert_eq!(cl.retention(), std::time::Duration::from_secs(2 * 86_400));
        assert!(!cl.memory_storage());
    }

    #[test]
    fn every_bad_key_is_reported_with_its_position() {
        let e = errors(
            "[cluster]\nnats = [\"http://x\"]\nsite = \"north.east\"\nretention = \"1h\"\nlease_ttl = \"1s\"\nstorage = \"disk\"\n",
        );
        let want = [
            ("c.toml:8:8:", "not a nats://"),
            ("c.toml:9:8:", "subject token"),
            ("c.toml:10:13:", "at least 1d"),
            ("c.toml:11:13:", "between 2s and 5m"),
            ("c.toml:12:11:", "\"file\" or \"memory\""),
        ];
        for (pos, text) in want {
            assert!(
                e.iter().any(|l| l.starts_with(pos) && l.contains(text)),
                "{pos} {text}: {e:#?}"
            );
        }
    }

    #[test]
    fn a_central_instance_lists_its_sites_and_ingests_nothing() {
        let central = "[cluster]\nnats = [\"nats://h:4222\"]\nsite = \"hq\"\nsites = [\"north\", \"south\"]\n";
        let c = Config::parse("c.toml", central).unwrap();
        let cl = c.cluster.as_ref().unwrap();
        assert!(cl.is_central());
        assert_eq!(cl.stale_after(), std::time::Duration::from_secs(15));
        assert_eq!(cl.stream_label(), "central:ACDMON_north+ACDMON_south");
        assert_eq!(c.engine_config().sites, crate::state::SiteNames::Qualified);
        // With sources, a bad site name or a stale_after shorter than two
        // heartbeats, check-config says what and where.
        let e = errors(
            "[cluster]\nnats = [\"nats://h:4222\"]\nsite = \"hq\"\nsites = [\"north\", \"so.uth\"]\nstale_after = \"5s\"\n",
        );
        for want in ["ingests no source", "`so.uth`", "two heartbeats"] {
            assert!(e.iter().any(|l| l.contains(want)), "{want}: {e:#?}");
        }
        let site = Config::parse(
            "c.toml",
            &format!("{BASE}[cluster]\nnats = [\"nats://h:4222\"]\nsite = \"north\"\n"),
        )
        .unwrap();
        assert_eq!(
            site.engine_config().sites,
            crate::state::SiteNames::One("north".into())
        );
        assert_eq!(site.engine_config().stream.as_deref(), Some("ACDMON_north"));
        let single = Config::parse("c.toml", BASE).unwrap();
        assert_eq!(single.engine_config().stream, None);
    }

    /// A central instance with a ladder, a CTI and a post that covers by
    /// itself: check-config names each, where it is written.
    #[test]
    fn a_central_instance_refuses_what_acts() {
        let cfg = "[[queues]]\nname = \"north/hotline\"\n\
            [[agents]]\nid = \"north/a1\"\ngroups = [\"backup\"]\n\
            [[agents]]\nid = \"north/a2\"\n\
            [[ladders]]\nname = \"day\"\n[[ladders.stages]]\nname = \"s1\"\nwhen = \"waiting > 5\"\nsign_in = { group = \"backup\" }\n\
            [[cti]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n\
            [[posts]]\nname = \"desk\"\na = [\"north/a2\"]\nb = [\"north/a1\"]\nqueues = [\"north/hotline\"]\ncover = \"auto\"\n\
            [cluster]\nnats = [\"nats://h:4222\"]\nsite = \"hq\"\nsites = [\"north\"]\n";
        let e = match Config::parse("c.toml", cfg) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        };
        let want = [
            (
                "c.toml:12:8:",
                "ladder `day`: [cluster] sites makes this a central instance",
            ),
            ("c.toml:27:9:", "acts on no site's CTI"),
            ("c.toml:23:9:", "post `desk`: cover = \"auto\""),
        ];
        for (pos, text) in want {
            assert!(
                e.iter().any(|l| l.starts_with(pos) && l.contains(text)),
                "{pos} {text}: {e:#?}"
            );
        }
    }

    #[test]
    fn a_source_name_with_a_dot_cannot_be_a_subject() {
        let cfg = "[[sources]]\nname = \"pbx.2\"\nkind = \"json\"\nlisten = \"127.0.0.1:0\"\n[cluster]\nnats = [\"nats://127.0.0.1:4222\"]\nsite = \"north\"\n";
        let e = match Config::parse("c.toml", cfg) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        };
        assert!(
            e.iter()
                .any(|l| l.contains("pbx.2") && l.contains("subject token")),
            "{e:#?}"
        );
    }

    #[test]
    fn credentials_are_secrets_and_one_kind_at_a_time() {
        let e = errors("[cluster]\nnats = [\"nats://h:4222\"]\nsite = \"s\"\ntoken = \"\"\n");
        assert!(
            e.iter()
                .any(|l| l.starts_with("c.toml:10:9:") && l.contains("empty")),
            "{e:#?}"
        );
        let e = errors("[cluster]\nnats = [\"nats://h:4222\"]\nsite = \"s\"\nuser = \"u\"\n");
        assert!(
            e.iter()
                .any(|l| l.contains("user and password go together")),
            "{e:#?}"
        );
        let e = errors(
            "[cluster]\nnats = [\"nats://h:4222\"]\nsite = \"s\"\ntoken = \"t\"\nuser = \"u\"\npassword = \"p\"\n",
        );
        assert!(
            e.iter().any(|l| l.contains("one of credentials, token")),
            "{e:#?}"
        );
        let dbg = format!(
            "{:?}",
            Config::parse(
                "c.toml",
                &format!("{BASE}[cluster]\nnats = [\"nats://h:4222\"]\nsite = \"s\"\ntoken = \"hunter2\"\n")
            )
            .unwrap()
            .cluster
        );
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }
}
