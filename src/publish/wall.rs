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
use crate::config::{Config, WallConfig};

mod locale;

const INDEX: &str = include_str!("wall/index.html");
const SCRIPT: &str = include_str!("wall/wall.js");
const I18N: &str = include_str!("wall/i18n.js");
const STYLE: &str = include_str!("wall/wall.css");
const LOGIN: &str = include_str!("wall/login.html");
const HANDOVER: &str = include_str!("wall/handover.js");
const TABLE: &str = include_str!("wall/table.html");
const TABLE_SCRIPT: &str = include_str!("wall/table.js");
const TABLE_STYLE: &str = include_str!("wall/table.css");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/wall/{name}", get(named_wall))
        .route("/table", get(table))
        .route("/wall/table.js", get(table_script))
        .route("/wall/table.css", get(table_style))
        .route("/wall/wall.js", get(script))
        .route("/wall/i18n.js", get(i18n))
        .route("/wall/locales/{file}", get(locale_table))
        .route("/wall/wall.css", get(style))
        .route("/wall/handover.js", get(handover))
}

/// What a page shows: every queue, one named wall's, or the dense table.
enum View<'a> {
    All,
    Named(&'a WallConfig),
    Table,
}

/// The page's settings, as a JavaScript object literal safe inside `<script>`.
fn settings(cfg: &Config, view: &View) -> String {
    let c = &cfg.server;
    let mut v = serde_json::json!({
        "title": c.wall_title,
        "sl_amber": c.wall_sl_amber,
        "stale_after_s": c.wall_stale_after.0.as_secs_f64(),
        "coalesce_ms": c.ws_coalesce.0.as_millis() as u64,
        "read_token_required": c.read_token.is_some(),
    });
    if let View::Named(w) = view {
        v["title"] = w.title().into();
        v["wall"] = w.name.clone().into();
        // A list is the queues shown; a pattern goes to `/ws` as it is, so
        // a matching queue that first appears later shows up live.
        match (&w.queues, &w.pattern) {
            (Some(list), _) => v["queues"] = list.clone().into(),
            (None, Some(p)) => v["pattern"] = p.clone().into(),
            (None, None) => {}
        }
    }
    // `</script>` in a title must not end the script element.
    v.to_string().replace('<', "\\u003c")
}

/// Checks the read token; the login page when it is missing or wrong.
fn gate(cfg: &Config, h: &HeaderMap, q: Option<&str>) -> Option<Response> {
    auth::check_read(
        &cfg.server.read_token,
        &cfg.server.admin_token,
        auth::presented(h, q).as_deref(),
    )
    .is_err()
    .then(|| (StatusCode::UNAUTHORIZED, Html(LOGIN)).into_response())
}

fn page_locale(cfg: &Config, h: &HeaderMap, q: Option<&str>) -> locale::Locale {
    let lang = query_param(q, "lang");
    let accept = h.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    locale::pick(lang.as_deref(), cfg.server.wall_locale, accept)
}

fn html_page(page: String) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(page),
    )
        .into_response()
}

/// Writes a page template: settings, texts, language and title.
fn render(cfg: &Config, h: &HeaderMap, q: Option<&str>, view: View) -> Response {
    let loc = page_locale(cfg, h, q);
    let title = match &view {
        View::Named(w) => html_escape(w.title()),
        _ => html_escape(&cfg.server.wall_title),
    };
    let (template, class) = match &view {
        View::All => (INDEX, ""),
        View::Named(_) => (INDEX, "named"),
        View::Table => (TABLE, "table"),
    };
    html_page(
        template
            .replace("{{SETTINGS}}", &settings(cfg, &view))
            .replace("{{TEXT}}", &loc.table().replace('<', "\\u003c"))
            .replace("{{LANG}}", loc.code())
            .replace("{{VIEW}}", class)
            .replace("{{TITLE}}", &title),
    )
}

/// `/`: the wall of every queue; with `[[walls]]` configured, the list of
/// walls (the whole wall stays at `/?view=wall`, and a `?queues=` URL keeps
/// working); `?view=table` is the table.
async fn index(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let cfg = s.config.load();
    if let Some(r) = gate(&cfg, &h, q.as_deref()) {
        return r;
    }
    let view = query_param(q.as_deref(), "view");
    match view.as_deref() {
        Some("table") => render(&cfg, &h, q.as_deref(), View::Table),
        Some("wall") => render(&cfg, &h, q.as_deref(), View::All),
        _ if !cfg.walls.is_empty() && query_param(q.as_deref(), "queues").is_none() => html_page(
            wall_list(&cfg, page_locale(&cfg, &h, q.as_deref()), q.as_deref()),
        ),
        _ => render(&cfg, &h, q.as_deref(), View::All),
    }
}

async fn named_wall(
    State(s): State<AppState>,
    Path(name): Path<String>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let cfg = s.config.load();
    if let Some(r) = gate(&cfg, &h, q.as_deref()) {
        return r;
    }
    match cfg.walls.iter().find(|w| w.name == name) {
        Some(w) => render(&cfg, &h, q.as_deref(), View::Named(w)),
        None => (
            StatusCode::NOT_FOUND,
            Html(format!(
                "<!doctype html><meta charset=utf-8><p>No wall named <b>{}</b>. <a href=\"/\">All walls</a></p>",
                html_escape(&name)
            )),
        )
            .into_response(),
    }
}

async fn table(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let cfg = s.config.load();
    if let Some(r) = gate(&cfg, &h, q.as_deref()) {
        return r;
    }
    render(&cfg, &h, q.as_deref(), View::Table)
}

/// The list of walls at `/`, in the page's language. Links keep the
/// token the list was opened with (`?token=`), so a TV set up from this
/// page needs nothing typed.
fn wall_list(cfg: &Config, loc: locale::Locale, q: Option<&str>) -> String {
    let text = loc.texts();
    let t = |k: &str| html_escape(text.get(k).and_then(|v| v.as_str()).unwrap_or(k));
    let keep: Vec<String> = ["token", "lang"]
        .iter()
        .filter_map(|k| {
            query_param(q, k).map(|v| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(&v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
        })
        .collect();
    let link = |path: &str, extra: &str| {
        let mut qs: Vec<String> = keep.clone();
        if !extra.is_empty() {
            qs.insert(0, extra.to_string());
        }
        let sep = if qs.is_empty() { "" } else { "?" };
        html_escape(&format!("{path}{sep}{}", qs.join("&")))
    };
    let mut items = String::new();
    for w in &cfg.walls {
        let what = match (&w.queues, &w.pattern) {
            (Some(list), _) => list.join(", "),
            (None, Some(p)) => p.clone(),
            _ => String::new(),
        };
        items.push_str(&format!(
            "<li><a data-wall=\"{}\" href=\"{}\">{}</a> <span>{}</span></li>\n",
            html_escape(&w.name),
            link(
                &format!(
                    "/wall/{}",
                    percent_encoding::utf8_percent_encode(
                        &w.name,
                        percent_encoding::NON_ALPHANUMERIC
                    )
                ),
                ""
            ),
            html_escape(w.title()),
            html_escape(&what)
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"no-referrer\">\
<title>{title}</title><link rel=\"stylesheet\" href=\"/wall/wall.css\"></head>\n\
<body class=\"walls\"><header id=\"top\"><h1>{title}</h1></header>\n<nav class=\"wall-list\"><h2>{heading}</h2><ul>\n{items}</ul>\n\
<p><a data-wall=\"\" href=\"{all}\">{all_label}</a> · <a data-wall=\"table\" href=\"{table}\">{table_label}</a></p></nav></body></html>\n",
        lang = loc.code(),
        title = html_escape(&cfg.server.wall_title),
        heading = t("walls.heading"),
        all = link("/", "view=wall"),
        all_label = t("walls.all"),
        table = link("/table", ""),
        table_label = t("walls.table"),
    )
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// The shift handover banner and duty-log box (its own file: see
/// `publish/handover.rs`).
async fn handover() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        HANDOVER,
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
pub(super) fn query_param(q: Option<&str>, name: &str) -> Option<String> {
    q?.split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .map(|v| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
}

async fn table_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        TABLE_SCRIPT,
    )
        .into_response()
}

async fn table_style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        TABLE_STYLE,
    )
        .into_response()
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
