//! The live wall at `/`: static HTML, CSS and JavaScript compiled into the
//! binary (no front-end build, nothing to deploy beside the daemon). The page
//! takes a snapshot and deltas from `/ws`, so it never reloads; its settings
//! (`[server] wall_*`) are written into the page as a small JSON object.
//!
//! The page itself carries no data, but `/` needs the read token like the API
//! (contract section 4), so a wall URL is `/?token=READ`; `admin=ADMIN` in the
//! URL (or the page's Admin button) enables the approve/reject buttons.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::auth;

mod locale;

const INDEX: &str = include_str!("wall/index.html");
const SCRIPT: &str = include_str!("wall/wall.js");
const I18N: &str = include_str!("wall/i18n.js");
const STYLE: &str = include_str!("wall/wall.css");
const LOGIN: &str = include_str!("wall/login.html");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/wall/wall.js", get(script))
        .route("/wall/i18n.js", get(i18n))
        .route("/wall/locales/{file}", get(locale_table))
        .route("/wall/wall.css", get(style))
}

/// The page's settings, as a JavaScript object literal safe inside `<script>`.
fn settings(s: &AppState) -> String {
    let cfg = s.config.load();
    let c = &cfg.server;
    let v = serde_json::json!({
        "title": c.wall_title,
        "sl_amber": c.wall_sl_amber,
        "stale_after_s": c.wall_stale_after.0.as_secs_f64(),
        "coalesce_ms": c.ws_coalesce.0.as_millis() as u64,
        "read_token_required": c.read_token.is_some(),
    });
    // `</script>` in a title must not end the script element.
    v.to_string().replace('<', "\\u003c")
}

async fn index(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let cfg = s.config.load();
    let allowed = auth::check_read(
        &cfg.server.read_token,
        &cfg.server.admin_token,
        auth::presented(&h, q.as_deref()).as_deref(),
    );
    if allowed.is_err() {
        return (StatusCode::UNAUTHORIZED, Html(LOGIN)).into_response();
    }
    let title = html_escape(&cfg.server.wall_title);
    let lang = query_param(q.as_deref(), "lang");
    let accept = h
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let loc = locale::pick(lang.as_deref(), cfg.server.wall_locale, accept);
    let page = INDEX
        .replace("{{SETTINGS}}", &settings(&s))
        .replace("{{TEXT}}", &loc.table().replace('<', "\\u003c"))
        .replace("{{LANG}}", loc.code())
        .replace("{{TITLE}}", &title);
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(page),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn i18n() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        I18N,
    )
        .into_response()
}

/// A locale's string table, for translators and tools (the page has its
/// own written in).
async fn locale_table(Path(file): Path<String>) -> Response {
    match locale::Locale::from_file(&file) {
        Some(l) => (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            l.table(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such locale").into_response(),
    }
}

/// One query parameter, percent-decoded.
fn query_param(q: Option<&str>, name: &str) -> Option<String> {
    q?.split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .map(|v| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        assert_eq!(super::html_escape("<a&'\">"), "&lt;a&amp;&#39;&quot;&gt;");
    }
}
