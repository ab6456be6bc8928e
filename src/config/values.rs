//! Value types shared by every config section: humantime durations and
//! secrets that may live in the environment or a file.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Constant-time equality for secrets (no early exit on the first differing
/// byte); any length difference fails.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A humantime duration (`"20s"`, `"5m"`, `"1h 30m"`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn millis(self) -> i64 {
        self.0.as_millis() as i64
    }
    pub fn secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }
    pub fn from_secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "bad duration {s:?}: {e} (write e.g. \"20s\", \"5m\", \"1h 30m\")"
                ))
            })
    }
}

/// A secret: written inline, or `"env:NAME"`, or `"file:/path"`. The value is
/// resolved when the config is loaded and is never printed: `Debug` and
/// `Display` show only where it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    origin: String,
    value: String,
}

impl Secret {
    /// Resolves a secret spec. Errors say what is missing, never the value.
    /// An empty or whitespace-only secret is an error wherever it comes
    /// from: an empty token would otherwise match an empty `?token=`, and an
    /// empty password is never what the operator meant.
    pub fn resolve(spec: &str) -> Result<Secret, String> {
        let s = Self::resolve_any(spec)?;
        if s.value.trim().is_empty() {
            return Err(format!(
                "the secret from {} is empty (a token, password or key must not be empty or whitespace)",
                s.origin
            ));
        }
        Ok(s)
    }

    fn resolve_any(spec: &str) -> Result<Secret, String> {
        if let Some(name) = spec.strip_prefix("env:") {
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?;
            Ok(Secret {
                origin: format!("env:{name}"),
                value,
            })
        } else if let Some(path) = spec.strip_prefix("file:") {
            let value = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read secret file {path}: {e}"))?;
            Ok(Secret {
                origin: format!("file:{path}"),
                value: value.trim_end_matches(['\r', '\n']).to_string(),
            })
        } else {
            Ok(Secret {
                origin: "inline".into(),
                value: spec.to_string(),
            })
        }
    }

    /// A secret given directly (tests, the demo).
    pub fn inline(value: impl Into<String>) -> Secret {
        Secret {
            origin: "inline".into(),
            value: value.into(),
        }
    }

    /// The secret itself. Call sites must not log it.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}, ***)", self.origin)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Secret::resolve(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::inline("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn empty_secrets_are_refused_from_every_origin() {
        for spec in ["", "   ", "\t"] {
            assert!(
                Secret::resolve(spec).unwrap_err().contains("inline"),
                "{spec:?}"
            );
        }
        // SAFETY: the variable name is unique to this test.
        unsafe { std::env::set_var("ACDMON_TEST_EMPTY_SECRET_V", " ") };
        let e = Secret::resolve("env:ACDMON_TEST_EMPTY_SECRET_V").unwrap_err();
        assert!(
            e.contains("env:ACDMON_TEST_EMPTY_SECRET_V") && e.contains("empty"),
            "{e}"
        );
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "\n").unwrap();
        let e = Secret::resolve(&format!("file:{}", f.path().display())).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        assert!(Secret::resolve("x").is_ok());
    }

    #[test]
    fn durations_parse_humantime() {
        let d: HumanDuration = serde_json::from_str("\"5m\"").unwrap();
        assert_eq!(d.millis(), 300_000);
        assert!(serde_json::from_str::<HumanDuration>("\"5 parsecs\"").is_err());
    }
}
