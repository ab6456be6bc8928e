//! Settings of the `[[cti]]` kinds (today: `webhook`), validated when the
//! configuration is loaded, with the URL and CA-file checks the action uses
//! again when it is built. Like `sources.rs`, plain data: `crate::cti`
//! imports it, never the other way round.

use std::time::Duration;

use hyper::http::Uri;
use serde::Deserialize;
use serde_spanned::Spanned;

use super::{HumanDuration, Secret};

/// Settings of a `[[cti]]` entry with `kind = "webhook"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://host:port/path` that receives the POSTs.
    pub url: Spanned<String>,
    /// Per attempt: connect, send and read the answer.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Further attempts after the first fails (0..=10).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    #[serde(default = "default_backoff")]
    pub backoff: HumanDuration,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub token: Option<Secret>,
    /// PEM file of CA certificates trusted for `https://` besides the
    /// public roots (a private CA, or the receiver's self-signed one).
    pub ca_file: Option<String>,
}

pub(crate) fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn default_retries() -> u32 {
    3
}
pub(crate) fn default_backoff() -> HumanDuration {
    HumanDuration(Duration::from_millis(500))
}

impl WebhookConfig {
    /// Checks what serde cannot: the URL's shape and the bounds.
    pub fn check(&self) -> Result<(), String> {
        parse_url(self.url.get_ref())?;
        if self.timeout.0.is_zero() {
            return Err("webhook `timeout` must be above 0s".into());
        }
        if self.retries > 10 {
            return Err(format!(
                "webhook `retries` = {} is too many (at most 10)",
                self.retries
            ));
        }
        if let Some(path) = &self.ca_file {
            extra_roots(path)?;
        }
        Ok(())
    }
}

/// The certificates of a PEM file (at least one).
pub(crate) fn extra_roots(
    path: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("webhook `ca_file` {path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("webhook `ca_file` {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "webhook `ca_file` {path}: no PEM certificate in it"
        ));
    }
    Ok(certs)
}

pub(crate) fn parse_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("webhook url `{url}` is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!(
            "webhook url `{url}` must look like https://host:port/path (or http://)"
        ));
    }
    Ok(uri)
}
