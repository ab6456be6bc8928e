//! Loading the `[[sources]]` and `[[cti]]` entries: `name` and `kind`, then
//! the kind's typed settings ([`super::sources`], [`super::cti`]) with every
//! bad key reported at its position, as the rest of the file is.

use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::cti::WebhookConfig;
use super::{
    CtiConfig, CtiSpec, HepSourceConfig, JsonSourceConfig, Loader, SOURCE_KINDS, SourceConfig,
    SourceSpec, first_line, line_col,
};

impl SourceSpec {
    /// Reads one source's kind-specific settings (what follows `name` and
    /// `kind` in a `[[sources]]` entry) from TOML text, validated exactly
    /// as the loader validates a file's entry; every error, joined by `; `.
    /// For tests and tools that start one source on its own.
    pub fn from_toml(kind: &str, text: &str) -> Result<SourceSpec, String> {
        let mut l = Loader {
            file: "source",
            text,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        // Where each key starts: an error is named by the key above it (the
        // text has no file for a position to point into).
        let mut keys: Vec<(usize, String)> = Vec::new();
        let spec = match DeTable::parse(text) {
            Ok(t) => {
                let mut table = t.into_inner();
                for k in table.keys() {
                    keys.push((line_col(text, k.span().start).0, k.get_ref().to_string()));
                }
                keys.sort();
                let at = |v: DeValue<'static>| Spanned::new(0..0, v);
                table.insert(
                    Spanned::new(0..0, "name".into()),
                    at(DeValue::String("source".into())),
                );
                table.insert(
                    Spanned::new(0..0, "kind".into()),
                    at(DeValue::String(kind.to_string().into())),
                );
                l.source(&Spanned::new(0..text.len(), DeValue::Table(table)))
            }
            Err(e) => {
                l.err(e.span(), first_line(e.message()));
                None
            }
        };
        match spec {
            Some(c) if l.errors.is_empty() => Ok(c.spec),
            _ => {
                let e: Vec<String> = l
                    .errors
                    .iter()
                    .map(
                        |e| match keys.iter().rev().find(|(line, _)| *line <= e.line) {
                            Some((_, key)) => format!("{e} (in `{key}`)"),
                            None => e.to_string(),
                        },
                    )
                    .collect();
                Err(e.join("; "))
            }
        }
    }
}

impl Loader<'_> {
    /// The `name` of a `[[sources]]` or `[[cti]]` entry (`what`): a
    /// non-empty string, else an error at the value (or at the entry when
    /// it is missing).
    fn entry_name(
        &mut self,
        name: Option<&Spanned<DeValue<'_>>>,
        entry: &Spanned<DeValue<'_>>,
        what: &str,
    ) -> Option<String> {
        match name.map(|v| (v.get_ref().as_str(), v.span())) {
            Some((Some(n), _)) if !n.is_empty() => Some(n.to_string()),
            Some((_, s)) => {
                self.err(Some(s), format!("{what} `name` must be a non-empty string"));
                None
            }
            None => {
                self.err(Some(entry.span()), "missing field `name`");
                None
            }
        }
    }

    pub(super) fn source(&mut self, value: &Spanned<DeValue<'_>>) -> Option<SourceConfig> {
        let DeValue::Table(table) = value.get_ref() else {
            self.err(Some(value.span()), "expected a table");
            return None;
        };
        let mut rest = table.clone();
        let name = rest.remove("name");
        let kind = rest.remove("kind");
        let name = self.entry_name(name.as_ref(), value, "source")?;
        let (kind, kspan) = match kind.as_ref().map(|v| (v.get_ref().as_str(), v.span())) {
            Some((Some(k), s)) => (k.to_string(), s),
            Some((None, s)) => {
                self.err(Some(s), "source `kind` must be a string");
                return None;
            }
            None => {
                self.err(
                    Some(value.span()),
                    format!("source `{name}`: missing field `kind`"),
                );
                return None;
            }
        };
        let rest_v = Spanned::new(value.span(), DeValue::Table(rest));
        let spec = match kind.as_str() {
            "json" => {
                let c: JsonSourceConfig = self.de(&rest_v).unwrap_or_else(|| JsonSourceConfig {
                    path: Some(String::new()),
                    ..JsonSourceConfig::default()
                });
                let n = [c.listen.is_some(), c.address.is_some(), c.path.is_some()]
                    .iter()
                    .filter(|x| **x)
                    .count();
                if n != 1 {
                    self.err(
                        Some(value.span()),
                        format!("source `{name}`: a json source needs exactly one of `listen`, `address`, `path`"),
                    );
                }
                if c.listen.is_none() && (c.token.is_some() || c.max_connections.is_some()) {
                    self.err(
                        Some(value.span()),
                        format!("source `{name}`: `token` and `max_connections` apply to a `listen` json source only"),
                    );
                }
                if c.max_connections == Some(0) {
                    self.err(
                        Some(value.span()),
                        format!(
                            "source `{name}`: `max_connections = 0` would refuse every producer"
                        ),
                    );
                }
                Some(SourceSpec::Json(c))
            }
            "ami" => self.de(&rest_v).map(SourceSpec::Ami),
            "esl" => self.de(&rest_v).map(SourceSpec::Esl),
            "queue_log" => self.de(&rest_v).map(SourceSpec::QueueLog),
            "hep" => self
                .de(&rest_v)
                .and_then(|c: HepSourceConfig| match c.validate() {
                    Ok(()) => Some(SourceSpec::Hep(c)),
                    Err(e) => {
                        self.err(Some(value.span()), format!("source `{name}`: {e}"));
                        None
                    }
                }),
            other => {
                self.err(
                    Some(kspan),
                    format!(
                        "unknown source kind `{other}` (expected one of: {})",
                        SOURCE_KINDS.join(", ")
                    ),
                );
                return None;
            }
        };
        // A spec with errors is already reported (the configuration is
        // refused); the entry stays so references to its name are not
        // reported as unknown too.
        let spec = spec.unwrap_or_else(|| SourceSpec::Json(JsonSourceConfig::default()));
        Some(SourceConfig { name, kind, spec })
    }

    /// A `[[cti]]` entry: `name`, `kind` and `default` here, the rest is the
    /// kind's own settings.
    pub(super) fn cti(&mut self, value: &Spanned<DeValue<'_>>) -> Option<CtiConfig> {
        let DeValue::Table(table) = value.get_ref() else {
            self.err(Some(value.span()), "expected a table");
            return None;
        };
        let mut rest = table.clone();
        let name = rest.remove("name");
        let kind = rest.remove("kind");
        let default = rest.remove("default");
        let name = self.entry_name(name.as_ref(), value, "cti")?;
        let default = match default.as_ref().map(|v| (v.get_ref(), v.span())) {
            None => false,
            Some((DeValue::Boolean(b), _)) => *b,
            Some((_, s)) => {
                self.err(
                    Some(s),
                    format!("cti `{name}`: `default` must be true or false"),
                );
                false
            }
        };
        let rest_v = Spanned::new(value.span(), DeValue::Table(rest));
        match kind.as_ref().map(|v| (v.get_ref().as_str(), v.span())) {
            Some((Some("webhook"), _)) => {
                let c: WebhookConfig = self.de(&rest_v)?;
                if let Err(e) = c.check() {
                    self.err(Some(c.url.span()), format!("cti `{name}`: {e}"));
                }
                Some(CtiConfig {
                    name,
                    kind: "webhook".into(),
                    default,
                    spec: CtiSpec::Webhook(c),
                })
            }
            Some((Some(k), s)) => {
                self.err(
                    Some(s),
                    format!("unknown cti kind `{k}` (expected: webhook; AMI and ESL sources sign agents in through their own connection)"),
                );
                None
            }
            Some((None, s)) => {
                self.err(Some(s), "cti `kind` must be a string");
                None
            }
            None => {
                self.err(
                    Some(value.span()),
                    format!("cti `{name}`: missing field `kind`"),
                );
                None
            }
        }
    }
}
