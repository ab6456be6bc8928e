//! Which observers and publishers a daemon or a replay runs with. Kept in one
//! place so `run`, `demo` and `replay` stay the same engine.

use crate::config::Config;
use crate::daemon;
use crate::runtime::Observer;

/// Observers of a replay (the ladder, acting through the log-only CTI).
pub fn replay_observers(_cfg: &Config) -> Vec<Box<dyn Observer>> {
    Vec::new()
}

/// Observers of the daemon.
pub fn daemon_observers(_cfg: &Config) -> Vec<Box<dyn Observer>> {
    Vec::new()
}

/// `acdmon run`.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let obs = daemon_observers(&cfg);
    let d = daemon::start(cfg, obs);
    daemon::serve(d.state).await
}
