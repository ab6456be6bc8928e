//! Bearer tokens. Read routes need the read token when one is configured (the
//! admin token also reads); control routes need the admin token and answer
//! 403 when none is configured. Comparison is constant-time; tokens are never
//! logged. Browsers cannot set headers on a WebSocket, so `?token=` is also
//! accepted.

use axum::http::{HeaderMap, StatusCode};

use crate::config::Secret;

/// Constant-time comparison of tokens (one implementation for the whole
/// daemon; any length difference fails, so a token padded with NUL bytes,
/// reachable as `%00` in a query, never matches).
pub use crate::config::ct_eq;

/// The presented token: `Authorization: Bearer X`, or `token` in the query
/// (percent-decoded: a browser encodes `+`, `/` and `=` of a base64 token).
pub fn presented<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(v) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    {
        return Some(std::borrow::Cow::Borrowed(t.trim()));
    }
    query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
        .map(|t| percent_encoding::percent_decode_str(t).decode_utf8_lossy())
}

fn matches(secret: &Option<Secret>, token: Option<&str>) -> bool {
    match (secret, token) {
        (Some(s), Some(t)) => ct_eq(s.expose().as_bytes(), t.as_bytes()),
        _ => false,
    }
}

/// May this request read?
pub fn check_read(
    read: &Option<Secret>,
    admin: &Option<Secret>,
    token: Option<&str>,
) -> Result<(), StatusCode> {
    if read.is_none() || matches(read, token) || matches(admin, token) {
        Ok(())
    } else {
        Err(StatusCode::UNAUTHORIZED)
    }
}

/// May this request control?
pub fn check_admin(admin: &Option<Secret>, token: Option<&str>) -> Result<(), StatusCode> {
    match admin {
        None => Err(StatusCode::FORBIDDEN),
        Some(_) if matches(admin, token) => Ok(()),
        Some(_) if token.is_none() => Err(StatusCode::UNAUTHORIZED),
        Some(_) => Err(StatusCode::FORBIDDEN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_are_percent_decoded() {
        let h = HeaderMap::new();
        assert_eq!(
            presented(&h, Some("queues=a&token=ab%2Fc%3D%3D")).as_deref(),
            Some("ab/c==")
        );
        assert_eq!(presented(&h, Some("token=plain")).as_deref(), Some("plain"));
        assert_eq!(presented(&h, Some("queues=a")), None);
    }

    #[test]
    fn tokens() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        let mut padded = b"abc".to_vec();
        padded.resize(3 + 65_536, 0);
        assert!(
            !ct_eq(b"abc", &padded),
            "NUL padding by a multiple of 65,536"
        );
        let r = Some(Secret::inline("r"));
        let a = Some(Secret::inline("a"));
        assert!(check_read(&None, &a, None).is_ok());
        assert!(check_read(&r, &a, Some("a")).is_ok());
        assert_eq!(check_read(&r, &a, Some("x")), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(check_admin(&None, Some("a")), Err(StatusCode::FORBIDDEN));
        assert_eq!(check_admin(&a, Some("r")), Err(StatusCode::FORBIDDEN));
        assert!(check_admin(&a, Some("a")).is_ok());
    }
}
