//! Which [`Cti`] signs a given agent in and out: a map from a name (an
//! agent's `source`, naming a `[[sources]]` or `[[cti]]` entry) to an action.
//! Adapters register under their source name when they start (AMI, ESL);
//! `[[cti]]` entries are registered from the config. The map is written a
//! handful of times at start-up and read once per action, so a `RwLock`
//! costs nothing that matters.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::Cti;

#[derive(Default)]
pub struct CtiRegistry {
    map: RwLock<HashMap<String, Arc<dyn Cti>>>,
    /// For agents without a `source`.
    default: RwLock<Option<String>>,
    /// When set, every agent goes through this one (replay's log-only CTI).
    only: Option<Arc<dyn Cti>>,
    /// Wraps every action inserted from now on (cluster mode's leader gate).
    wrap: RwLock<Option<Wrap>>,
}

/// See [`CtiRegistry::wrap_inserts`].
pub type Wrap = Arc<dyn Fn(&str, Arc<dyn Cti>) -> Arc<dyn Cti> + Send + Sync>;

impl std::fmt::Debug for CtiRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .map
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("CtiRegistry")
            .field("names", &names)
            .finish()
    }
}

impl CtiRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry that sends every action to `cti` (replay).
    pub fn only(cti: Arc<dyn Cti>) -> Self {
        CtiRegistry {
            only: Some(cti),
            ..Default::default()
        }
    }

    /// Passes every action inserted from now on, and those already in, through
    /// `wrap` (which may return it unchanged).
    pub fn wrap_inserts(&self, wrap: Wrap) {
        if let Ok(mut m) = self.map.write() {
            for (name, cti) in m.iter_mut() {
                *cti = wrap(name, cti.clone());
            }
        }
        if let Ok(mut w) = self.wrap.write() {
            *w = Some(wrap);
        }
    }

    pub fn insert(&self, name: &str, cti: Arc<dyn Cti>) {
        let wrap = self.wrap.read().ok().and_then(|w| w.clone());
        let cti = match wrap {
            Some(w) => w(name, cti),
            None => cti,
        };
        if let Ok(mut m) = self.map.write() {
            m.insert(name.to_string(), cti);
        }
    }

    /// Registers `cti` as it is, past the wrap (the wrap's own result:
    /// cluster mode's proxy for a source this instance may not run).
    pub fn insert_unwrapped(&self, name: &str, cti: Arc<dyn Cti>) {
        if let Ok(mut m) = self.map.write() {
            m.insert(name.to_string(), cti);
        }
    }

    /// A source or `[[cti]]` entry removed by a config reload.
    pub fn remove(&self, name: &str) {
        if let Ok(mut m) = self.map.write() {
            m.remove(name);
        }
    }

    /// Agents without a `source` use `name`.
    pub fn set_default(&self, name: &str) {
        if let Ok(mut d) = self.default.write() {
            *d = Some(name.to_string());
        }
    }

    /// No default any more (a reload removed the `[[cti]]` marked default).
    pub fn clear_default(&self) {
        if let Ok(mut d) = self.default.write() {
            *d = None;
        }
    }

    /// The action for an agent whose `source` is `source`; the error says why
    /// there is none (it goes into the log entry's `detail`).
    pub fn for_source(&self, source: Option<&str>) -> Result<Arc<dyn Cti>, String> {
        if let Some(c) = &self.only {
            return Ok(c.clone());
        }
        let default = self.default.read().ok().and_then(|d| d.clone());
        let name = match source.map(str::to_string).or(default) {
            Some(n) => n,
            None => {
                return Err(
                    "the agent has no `source` and no [[cti]] entry is `default = true`".into(),
                );
            }
        };
        self.map
            .read()
            .ok()
            .and_then(|m| m.get(&name).cloned())
            .ok_or_else(|| {
                format!("`{name}` cannot sign agents in or out (no CTI action registered under that name)")
            })
    }
}

impl CtiRegistry {
    /// The pause reason that means "signed out" for an agent whose `source`
    /// is `source` (see [`Cti::sign_out_pause_reason`]).
    pub fn sign_out_pause_reason(&self, source: Option<&str>) -> Option<String> {
        self.for_source(source)
            .ok()?
            .sign_out_pause_reason()
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cti::log_only::LogOnly;

    #[test]
    fn lookup_by_source_then_default() {
        let r = CtiRegistry::new();
        assert!(r.for_source(None).err().unwrap().contains("default"));
        r.insert("hook", Arc::new(LogOnly));
        assert!(r.for_source(Some("hook")).is_ok());
        assert!(r.for_source(Some("pbx9")).err().unwrap().contains("pbx9"));
        r.set_default("hook");
        assert!(r.for_source(None).is_ok());
        let only = CtiRegistry::only(Arc::new(LogOnly));
        assert!(only.for_source(Some("anything")).is_ok());
    }
}
