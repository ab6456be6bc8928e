//! The typed settings of each `[[sources]]` kind: plain data, validated
//! when the configuration is loaded and kept ([`SourceSpec`]), then handed
//! as they are to the adapter that starts the source or replays its
//! recordings.
//!
//! Dependency direction: `config` owns these types and imports nothing from
//! `crate::sources` or `crate::cti`; the adapters import them (and add their
//! own inherent methods that turn a spec into a session's settings). So a
//! new kind adds its spec here and its adapter under `src/sources/`, never a
//! cycle between the two.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{HumanDuration, Secret};
use crate::event::ExitReason;

/// Kind-specific settings of a `[[sources]]` entry, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    Json(JsonSourceConfig),
    Ami(AmiConfig),
    QueueLog(QueueLogConfig),
    Esl(EslConfig),
    Hep(HepSourceConfig),
}

impl SourceSpec {
    /// The `kind` written in the file (also the health entry's kind).
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Json(_) => "json",
            SourceSpec::Ami(_) => "ami",
            SourceSpec::QueueLog(_) => "queue_log",
            SourceSpec::Esl(_) => "esl",
            SourceSpec::Hep(_) => "hep",
        }
    }
}

/// Source kinds the daemon knows.
pub const SOURCE_KINDS: [&str; 5] = ["ami", "queue_log", "esl", "hep", "json"];

/// Settings of the native JSON source (`kind = "json"`): exactly one of
/// `listen` (accept producers), `address` (connect to a producer, with
/// reconnect) or `path` (read a file; `follow` keeps reading as it grows).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSourceConfig {
    pub listen: Option<String>,
    pub address: Option<String>,
    pub path: Option<String>,
    #[serde(default)]
    pub follow: bool,
    /// `listen` only: producers must send `AUTH <token>` as their first
    /// line. Without it the port is open to anyone who can reach it.
    pub token: Option<Secret>,
    /// `listen` only: most producers connected at once; more are refused
    /// (closed at once) and counted.
    pub max_connections: Option<usize>,
}

/// Default of a `json` `listen` source's `max_connections`.
pub const JSON_MAX_CONNECTIONS: usize = 64;

/// `[[sources]] kind = "ami"` (name and kind are handled by the loader).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmiConfig {
    /// Manager interface address, `host:port` (Asterisk default port 5038).
    pub address: String,
    /// `manager.conf` user.
    pub username: String,
    /// Its secret: inline, `env:NAME` or `file:/path`.
    pub secret: Secret,
    /// `plain` (default) or `md5` (challenge/response; the secret never
    /// crosses the wire).
    #[serde(default)]
    pub auth: Auth,
    /// Event classes asked for at login. `agent` carries the queue events,
    /// `call` the `HangupRequest` that tells an abandon from a timeout.
    #[serde(default = "default_events")]
    pub events: String,
    /// Which member field is the agent id: `auto` (MemberName unless it
    /// equals the interface, else the interface), `member_name` or
    /// `interface`. A configured `[[agents]] interface` always wins.
    #[serde(default)]
    pub agent_id: AgentNaming,
    /// How the CTI signs an agent out: `remove` (QueueRemove; the default)
    /// or `pause` (QueuePause, the agent stays a member).
    #[serde(default)]
    pub sign_out: SignOutMode,
    /// Pause reason sent with `sign_out = "pause"`.
    #[serde(default = "default_pause_reason")]
    pub pause_reason: String,
    /// TCP connect timeout.
    #[serde(default = "secs::<5>")]
    pub connect_timeout: HumanDuration,
    /// Keepalive `Ping` period.
    #[serde(default = "secs::<20>")]
    pub ping_interval: HumanDuration,
    /// How long an action (login, ping, sign-in/out) may wait for its reply.
    #[serde(default = "secs::<5>")]
    pub action_timeout: HumanDuration,
    /// Relist all queues (`QueueStatus`) this often while connected, to heal
    /// drift from lost or filtered events; `"0s"` = only on connect. Five
    /// minutes: `queue reload members` in Asterisk raises no event at all.
    #[serde(default = "secs::<300>")]
    pub resync_interval: HumanDuration,
    /// First reconnect delay; doubles per failure up to `reconnect_max`,
    /// with jitter.
    #[serde(default = "secs::<1>")]
    pub reconnect_min: HumanDuration,
    #[serde(default = "secs::<30>")]
    pub reconnect_max: HumanDuration,
}

fn default_events() -> String {
    "agent,call".into()
}

fn default_pause_reason() -> String {
    "acdmon".into()
}

fn secs<const N: u64>() -> HumanDuration {
    HumanDuration::from_secs(N)
}

impl AmiConfig {
    /// A config with defaults (tests, the demo).
    pub fn new(address: &str, username: &str, secret: Secret) -> Self {
        AmiConfig {
            address: address.into(),
            username: username.into(),
            secret,
            auth: Auth::Plain,
            events: default_events(),
            agent_id: AgentNaming::Auto,
            sign_out: SignOutMode::Remove,
            pause_reason: default_pause_reason(),
            connect_timeout: secs::<5>(),
            ping_interval: secs::<20>(),
            action_timeout: secs::<5>(),
            resync_interval: secs::<300>(),
            reconnect_min: secs::<1>(),
            reconnect_max: secs::<30>(),
        }
    }
}

/// Login method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// `Secret:` in the `Login` action (plain text on the wire).
    #[default]
    Plain,
    /// `Challenge` + `Key: md5(challenge + secret)`.
    Md5,
}

/// Which AMI field names an agent (the id the engine and `[[agents]] id` use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentNaming {
    /// `MemberName` when present and different from the interface, else the
    /// interface. This is also what queue_log writes in its agent column.
    #[default]
    Auto,
    /// Always `MemberName` (falls back to the interface when empty).
    MemberName,
    /// Always the interface (`PJSIP/1017`).
    Interface,
}

/// How an agent is signed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignOutMode {
    /// `QueueRemove` (sign-in is `QueueAdd`). Static members from
    /// queues.conf cannot be removed ("Member not dynamic").
    #[default]
    Remove,
    /// `QueuePause Paused: true` (sign-in unpauses, and adds the member when
    /// the interface is not in the queue).
    Pause,
}

/// Where a tail with no saved position (in the daemon: no usable engine
/// checkpoint) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// Only lines written from now on (no history is re-counted); in the
    /// daemon, today's lines (see `crate::sources::Restart`).
    #[default]
    End,
    /// The whole file (rebuilds today's figures from a daily-rotated log).
    Beginning,
}

/// `[[sources]] kind = "queue_log"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueLogConfig {
    /// The queue_log file (`/var/log/asterisk/queue_log`).
    pub path: PathBuf,
    /// Directory for the read-position file; default: next to `path`.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// `end` (default) or `beginning`, when no position is saved.
    #[serde(default)]
    pub start_at: StartAt,
    /// How often the file is checked for new lines, rotation and truncation.
    #[serde(default = "default_poll")]
    pub poll_interval: HumanDuration,
    /// IANA zone of `YYYY-MM-DD HH:MM:SS.ffffff` times (realtime/database
    /// exports; Asterisk writes local time unless
    /// `queue_log_realtime_use_gmt`). Default: the system zone.
    #[serde(default)]
    pub time_zone: Option<String>,
}

fn default_poll() -> HumanDuration {
    HumanDuration(Duration::from_millis(250))
}

impl QueueLogConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        QueueLogConfig {
            path: path.into(),
            state_dir: None,
            start_at: StartAt::End,
            poll_interval: default_poll(),
            time_zone: None,
        }
    }
}

/// Settings of a `kind = "esl"` source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EslConfig {
    /// mod_event_socket's `listen-ip:listen-port`.
    #[serde(default = "default_address")]
    pub address: String,
    /// mod_event_socket's `password` (`"env:NAME"`, `"file:/path"` or inline).
    pub password: Secret,
    /// Log in with `userauth <user>:<password>` (a directory user with
    /// `esl-password`) instead of `auth <password>`.
    #[serde(default)]
    pub user: Option<String>,
    /// Event encoding asked for: `plain` (URL-encoded headers) or `json`.
    #[serde(default)]
    pub format: EventFormat,
    /// mod_callcenter queues to follow (e.g. `"support@default"`); empty
    /// means every queue `callcenter_config queue list` shows.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Wrap-up after a call for agents whose own `wrap-up-time` has not been
    /// read from FreeSWITCH yet.
    #[serde(default)]
    pub wrap_up_time: HumanDuration,
    /// Same, for the pause after a rejected offer (`reject-delay-time`).
    #[serde(default)]
    pub reject_delay_time: HumanDuration,
    /// Same, after a busy agent (`busy-delay-time`).
    #[serde(default)]
    pub busy_delay_time: HumanDuration,
    /// Same, after an unanswered offer (`no-answer-delay-time`).
    #[serde(default)]
    pub no_answer_delay_time: HumanDuration,
    /// Wrap-up per queue, overriding what FreeSWITCH says per agent.
    #[serde(default)]
    pub queue_wrap_up_time: BTreeMap<String, HumanDuration>,
    /// Per-agent overrides of the four times, by agent name.
    #[serde(default)]
    pub agent_timers: BTreeMap<String, AgentTimersConfig>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// How long a CTI command may wait for its reply.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: HumanDuration,
    /// How long a resync may take before the connection is dropped and
    /// retried.
    #[serde(default = "default_resync_timeout")]
    pub resync_timeout: HumanDuration,
    /// Resync also on this period (picks up tier changes made outside
    /// acdmon, which fire no events). Off when absent.
    #[serde(default)]
    pub resync_interval: Option<HumanDuration>,
    /// Resync when `Event-Sequence` jumps by more than this. Off when
    /// absent: the sequence counts every event FreeSWITCH fires, so only
    /// set it where the listener sees nearly all of them.
    #[serde(default)]
    pub max_sequence_gap: Option<u64>,
    /// Resync when `members-count` twice disagrees with the callers tracked.
    #[serde(default = "yes")]
    pub members_count_check: bool,
    /// On sign-out, also set the agent `Logged Out` when it has no tier left.
    #[serde(default)]
    pub sign_out_logs_out: bool,
}

/// `[sources.agent_timers."1000@default"]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentTimersConfig {
    pub wrap_up_time: Option<HumanDuration>,
    pub reject_delay_time: Option<HumanDuration>,
    pub busy_delay_time: Option<HumanDuration>,
    pub no_answer_delay_time: Option<HumanDuration>,
}

fn default_address() -> String {
    "127.0.0.1:8021".into()
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_command_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_resync_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn yes() -> bool {
    true
}

/// `event plain …` or `event json …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    #[default]
    Plain,
    Json,
}

/// Settings of a `kind = "hep"` source (everything but `name` and `kind`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HepSourceConfig {
    /// UDP address HEP senders send to (HEPv1/v2/v3). Empty string: no UDP.
    #[serde(default = "default_listen_udp")]
    pub listen_udp: String,
    /// TCP address for HEPv3 over TCP (OpenSIPS' default transport).
    /// Optional; off when absent.
    #[serde(default)]
    pub listen_tcp: Option<String>,
    /// Expected HEPv3 auth key (chunk 0x000e). When set, packets without it
    /// or with another key are rejected (`hep_auth`); HEPv1/v2, which carry
    /// no key, are then rejected too.
    #[serde(default)]
    pub auth_key: Option<Secret>,
    /// Largest HEP packet and SIP payload accepted (also bounds inflated
    /// compressed payloads).
    #[serde(default = "default_max_packet")]
    pub max_packet_bytes: usize,
    /// Validate every SIP message with `rsip` after normalisation and
    /// reject those it refuses (`sip_invalid`). Makes ingest ~6x slower.
    #[serde(default)]
    pub full_parse: bool,
    /// Caller-leg rules: which Request-URI/To users are queues.
    #[serde(default)]
    pub queues: Vec<QueueRule>,
    /// Agent-leg rules: which To/Request-URI users are agents.
    #[serde(default)]
    pub agents: Vec<AgentRule>,
    /// Header naming the queue on agent legs (e.g. `X-Queue`).
    #[serde(default)]
    pub queue_header: Option<String>,
    /// Header carrying the caller leg's Call-ID on agent legs.
    #[serde(default)]
    pub correlation_header: Option<String>,
    /// Tie agent legs to caller legs by the HEP correlation id chunk.
    #[serde(default = "yes")]
    pub hep_correlation: bool,
    /// Without a correlation, an answered agent leg of a known queue takes
    /// that queue's longest-waiting caller.
    #[serde(default = "yes")]
    pub fifo_fallback: bool,
    /// Read agent phone states from dialog-info NOTIFYs (RFC 4235).
    #[serde(default = "yes")]
    pub blf: bool,
    /// `call_exited` reason when the platform hangs up on a waiting caller.
    #[serde(default = "default_platform_hangup")]
    pub platform_hangup: String,
    /// A leg quiet this long before answer is expired.
    #[serde(default = "default_unanswered_timeout")]
    pub unanswered_timeout: HumanDuration,
    /// A leg quiet this long after answer is expired (lost BYE).
    #[serde(default = "default_answered_timeout")]
    pub answered_timeout: HumanDuration,
    /// At most this many legs are followed at once; more are refused and
    /// counted (`sip_dialog_limit`).
    #[serde(default = "default_max_dialogs")]
    pub max_dialogs: usize,
    /// Static membership: queue → agent ids (`[sources.members]`,
    /// `sales = ["1001", "1002"]`). Reported when the source starts, so an
    /// agent whose phone never rings (do-not-disturb, 486 at once) is still
    /// a member.
    #[serde(default)]
    pub members: std::collections::BTreeMap<String, Vec<String>>,
    /// Append every accepted packet to this file, as HEPv3 (HEPv1/v2
    /// packets are re-encoded), for `acdmon replay --format hep`.
    #[serde(default)]
    pub record: Option<std::path::PathBuf>,
}

fn default_listen_udp() -> String {
    "127.0.0.1:9060".into()
}
fn default_max_packet() -> usize {
    65_535
}
fn default_platform_hangup() -> String {
    "other".into()
}
fn default_unanswered_timeout() -> HumanDuration {
    HumanDuration::from_secs(3600)
}
fn default_answered_timeout() -> HumanDuration {
    HumanDuration::from_secs(8 * 3600)
}
fn default_max_dialogs() -> usize {
    100_000
}

impl Default for HepSourceConfig {
    fn default() -> Self {
        HepSourceConfig {
            listen_udp: default_listen_udp(),
            listen_tcp: None,
            auth_key: None,
            max_packet_bytes: default_max_packet(),
            full_parse: false,
            queues: Vec::new(),
            agents: Vec::new(),
            queue_header: None,
            correlation_header: None,
            hep_correlation: true,
            fifo_fallback: true,
            blf: true,
            platform_hangup: default_platform_hangup(),
            unanswered_timeout: default_unanswered_timeout(),
            answered_timeout: default_answered_timeout(),
            max_dialogs: default_max_dialogs(),
            members: Default::default(),
            record: None,
        }
    }
}

impl HepSourceConfig {
    /// Checks what serde cannot: patterns compile, the reason is known,
    /// something listens.
    pub fn validate(&self) -> Result<(), String> {
        self.platform_hangup()?;
        for q in &self.queues {
            pattern(&q.pattern, "queue")?;
        }
        for a in &self.agents {
            pattern(&a.pattern, "agent")?;
        }
        if self.listen_udp.trim().is_empty() && self.listen_tcp.is_none() {
            return Err("hep source needs `listen_udp` or `listen_tcp`".into());
        }
        if let Some(p) = &self.record {
            if p.as_os_str().is_empty() {
                return Err("`record` is an empty path".into());
            }
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            if dir.is_some_and(|d| !d.is_dir()) {
                return Err(format!(
                    "`record` {}: the directory does not exist",
                    p.display()
                ));
            }
        }
        if self.max_packet_bytes < 64 {
            return Err("`max_packet_bytes` must be at least 64".into());
        }
        Ok(())
    }

    /// `platform_hangup` as an exit reason.
    pub fn platform_hangup(&self) -> Result<ExitReason, String> {
        ExitReason::parse(&self.platform_hangup).ok_or_else(|| {
            format!(
                "`platform_hangup` {:?} is not one of timeout, empty, key, transfer, other",
                self.platform_hangup
            )
        })
    }
}

/// A rule's pattern compiles (the adapter compiles it again into its rules).
fn pattern(p: &str, what: &str) -> Result<(), String> {
    regex::Regex::new(p)
        .map(|_| ())
        .map_err(|e| format!("{what} pattern {p:?}: {e}"))
}

/// How a queue platform treats a waiting caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AnswerMode {
    /// The platform answers the caller (200 OK) and plays music on hold.
    #[default]
    Platform,
    /// The caller hears early media (183) and is answered with the agent.
    EarlyMedia,
}

/// Which user part a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserFrom {
    RequestUri,
    To,
}

fn request_uri() -> UserFrom {
    UserFrom::RequestUri
}

fn to() -> UserFrom {
    UserFrom::To
}

/// `[[sources.queues]]`: which caller legs are queue calls.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRule {
    /// Regular expression matched against the user part (anchor it:
    /// `"^8001$"`, `"^q-(\\w+)$"`).
    pub pattern: String,
    /// The queue name; `$1` or `${name}` expand capture groups. Default: the
    /// matched text.
    pub queue: Option<String>,
    /// `request_uri` (default) or `to`.
    #[serde(default = "request_uri")]
    pub match_on: UserFrom,
    /// `platform` (default: answer + music on hold) or `early_media`.
    #[serde(default)]
    pub answer: AnswerMode,
}

/// `[[sources.agents]]`: which legs ring agents, and the agent id.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRule {
    /// Regular expression matched against the user part.
    pub pattern: String,
    /// The agent id; `$1`/`${name}` expand groups. Default: the matched text.
    pub agent: Option<String>,
    /// `to` (default) or `request_uri`.
    #[serde(default = "to")]
    pub match_on: UserFrom,
}
