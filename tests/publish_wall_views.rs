//! Many queues: named walls (`[[walls]]`, `/wall/{name}`) show one team's
//! queues in large type, `/` lists them, and the dense table (`/table`)
//! keeps 1,000 queues sorted by service-level breach and waiting while only
//! the rows in view exist in the page. Headless Chromium; saves
//! `test-output/table.png` and `test-output/table-update.json` (the update
//! cost measured in the page). Skips loudly when Chromium is not installed.

mod browser;
mod wsutil;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use wsutil::support::{self, eventually};
use wsutil::*;

fn ev(ts: i64, body: Value) -> String {
    let mut v = body;
    v["ts"] = json!(ts);
    v.to_string() + "\n"
}

fn enqueue_at(ts: i64, queue: &str, call: &str) -> String {
    ev(
        ts,
        json!({"type": "call_enqueued", "call": call, "queue": queue}),
    )
}

const TEAM_WALLS: &str = "[[queues]]\nname = \"repair-north\"\n[[queues]]\nname = \"repair-south\"\n\
[[queues]]\nname = \"billing\"\n[[queues]]\nname = \"vip\"\n[[queues]]\nname = \"complaints\"\n\
[[walls]]\nname = \"repair\"\ntitle = \"报修组 <TV 2>\"\npattern = \"repair-*\"\n\
[[walls]]\nname = \"front\"\ntitle = \"Front desk\"\nqueues = [\"vip\", \"billing\"]\n";

const READ_TILES: &str = r#"JSON.stringify({
  live: document.getElementById('conn').className.includes('live'),
  named: document.body.classList.contains('named'),
  title: document.title,
  tiles: [...document.querySelectorAll('article.tile')].map(t => [t.dataset.queue,
    t.querySelector('[data-field=waiting]').textContent]),
})"#;

/// The repair team's TV shows its two queues and nothing else, and moves
/// with their calls; `/` lists the walls; an unknown wall is a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_wall_shows_only_its_queues() {
    let d = daemon("", TEAM_WALLS).await;
    let now = now_ms();
    let mut seed = String::new();
    for (i, q) in [
        "repair-north",
        "repair-south",
        "repair-south",
        "billing",
        "vip",
        "complaints",
    ]
    .iter()
    .enumerate()
    {
        seed += &enqueue_at(now - 1_000 * i as i64, q, &format!("c{i}"));
    }
    post(&d.addr, &seed).await;

    let list = support::http(&d.addr, "GET", &format!("/?token={READ}"), None, "").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains(&format!("href=\"/wall/repair?token={READ}\"")),
        "{}",
        list.body
    );
    assert!(list.body.contains("data-wall=\"front\""));
    assert!(
        list.body.contains("报修组 &lt;TV 2&gt;"),
        "the title is text"
    );
    assert!(
        list.body.contains("href=\"/?view=wall&amp;token="),
        "the whole wall stays reachable"
    );
    let missing = support::http(
        &d.addr,
        "GET",
        &format!("/wall/nope?token={READ}"),
        None,
        "",
    )
    .await;
    assert_eq!(missing.status, 404);
    let locked = support::http(&d.addr, "GET", "/wall/repair", None, "").await;
    assert_eq!(locked.status, 401, "a named wall needs the read token too");

    let url = format!("http://{}/wall/repair?token={READ}", d.addr);
    let Some((_browser, mut page)) = browser::launch(&url).await else {
        return;
    };
    let read = |v: &Value| -> Value { serde_json::from_str(v.as_str().unwrap_or("{}")).unwrap() };
    let shown = page
        .until(READ_TILES, Duration::from_secs(15), |v| {
            let p = read(v);
            p["live"] == true && p["tiles"].as_array().is_some_and(|t| t.len() == 2)
        })
        .await;
    let p = read(&shown);
    assert_eq!(
        p["tiles"],
        json!([["repair-north", "1"], ["repair-south", "2"]])
    );
    assert_eq!(p["named"], true, "large type");
    assert_eq!(p["title"], "报修组 <TV 2>");
    // Calls elsewhere do not reach this wall; its own do.
    post(
        &d.addr,
        &(enqueue_at(now_ms(), "billing", "x1") + &enqueue_at(now_ms(), "repair-north", "x2")),
    )
    .await;
    let moved = page
        .until(READ_TILES, Duration::from_secs(5), |v| {
            read(v)["tiles"][0][1] == "2"
        })
        .await;
    assert_eq!(read(&moved)["tiles"].as_array().unwrap().len(), 2);

    // The front desk wall lists its queues by name.
    page.call(
        "Page.navigate",
        json!({"url": format!("http://{}/wall/front?token={READ}", d.addr)}),
    )
    .await;
    let front = page
        .until(READ_TILES, Duration::from_secs(10), |v| {
            let p = read(v);
            p["live"] == true
                && p["title"] == "Front desk"
                && p["tiles"].as_array().is_some_and(|t| t.len() == 2)
        })
        .await;
    assert_eq!(
        read(&front)["tiles"],
        json!([["billing", "2"], ["vip", "1"]])
    );
}

/// The repair team's pattern wall (`pattern = "repair-*"`) is open on the
/// TV when a queue nobody configured, `repair-east`, takes its first call:
/// its tile appears live, in name order, without a reload; a new queue
/// outside the pattern does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_wall_shows_a_matching_queue_that_appears_later() {
    let d = daemon("", TEAM_WALLS).await;
    let now = now_ms();
    post(
        &d.addr,
        &(enqueue_at(now - 2_000, "repair-north", "c1")
            + &enqueue_at(now - 1_000, "billing", "c2")),
    )
    .await;
    let url = format!("http://{}/wall/repair?token={READ}", d.addr);
    let Some((_browser, mut page)) = browser::launch(&url).await else {
        return;
    };
    let read = |v: &Value| -> Value { serde_json::from_str(v.as_str().unwrap_or("{}")).unwrap() };
    let shown = page
        .until(READ_TILES, Duration::from_secs(15), |v| {
            let p = read(v);
            p["live"] == true && p["tiles"].as_array().is_some_and(|t| t.len() == 2)
        })
        .await;
    assert_eq!(
        read(&shown)["tiles"],
        json!([["repair-north", "1"], ["repair-south", "0"]]),
        "the configured repair queues"
    );
    let reloads = page
        .eval("performance.getEntriesByType('navigation').length")
        .await;

    post(
        &d.addr,
        &(enqueue_at(now_ms(), "repair-east", "n1")
            + &enqueue_at(now_ms(), "repair-east", "n2")
            + &enqueue_at(now_ms(), "billing-east", "n3")),
    )
    .await;
    let grown = page
        .until(READ_TILES, Duration::from_secs(5), |v| {
            read(v)["tiles"].as_array().is_some_and(|t| t.len() == 3)
        })
        .await;
    assert_eq!(
        read(&grown)["tiles"],
        json!([
            ["repair-east", "2"],
            ["repair-north", "1"],
            ["repair-south", "0"]
        ]),
        "the new repair queue, live and in order; billing-east is not on this wall"
    );
    assert_eq!(
        page.eval("performance.getEntriesByType('navigation').length")
            .await,
        reloads,
        "no reload"
    );
    assert_eq!(
        page.eval("window.acdmonWall.snapshots").await,
        json!(1),
        "one snapshot: the queue came in a delta"
    );
}

/// The order a supervisor expects: queues below their SL target first
/// (furthest below first... at equal waiting), then the most callers
/// waiting, then by name; written from /api/v1/queues.
fn expected_order(api: &Value) -> Vec<String> {
    let mut qs: Vec<&Value> = api.as_array().unwrap().iter().collect();
    let sl = |q: &Value| q["windows"]["rolling"]["service_level"].as_f64();
    let breach = |q: &Value| sl(q).is_some_and(|s| s < q["sl_target"].as_f64().unwrap());
    qs.sort_by(|a, b| {
        breach(b)
            .cmp(&breach(a))
            .then(b["waiting"].as_u64().cmp(&a["waiting"].as_u64()))
            .then_with(|| {
                if breach(a) {
                    let d = |q: &Value| sl(q).unwrap() - q["sl_target"].as_f64().unwrap();
                    d(a).total_cmp(&d(b))
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .then(a["queue"].as_str().cmp(&b["queue"].as_str()))
    });
    qs.iter()
        .map(|q| q["queue"].as_str().unwrap().to_string())
        .collect()
}

const READ_ROWS: &str = r#"JSON.stringify({
  live: document.getElementById('conn').className.includes('live'),
  size: window.acdmonTable ? window.acdmonTable.queues.size : 0,
  seq: window.acdmonTable ? window.acdmonTable.seq : null,
  rows: [...document.querySelectorAll('#rows .row')].filter(r => !r.hidden)
    .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
    .map(r => [r.dataset.queue, r.querySelector('[data-field=waiting]').textContent, r.classList.contains('breach')]),
  summary: document.getElementById('summary').textContent,
})"#;

/// A thousand queues on a supervisor's desktop: the table is sorted as the
/// API's figures say, only the rows in view exist, scrolling reaches the
/// last queue, and bursts of calls keep it current; the page measures what
/// each delta costs (applied, sorted and rendered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_keeps_a_thousand_queues_sorted_and_renders_only_what_is_in_view() {
    let d = daemon("", "").await;
    let now = now_ms();
    let mut seed = String::new();
    for i in 0..1000 {
        let q = format!("q{i:03}");
        let waiting = if i % 10 == 0 { (i / 10) % 5 } else { i % 5 };
        for c in 0..waiting {
            seed += &enqueue_at(now - 3_000 - c as i64 * 1_000, &q, &format!("{q}-w{c}"));
        }
        if i % 10 == 0 {
            // Answered after 60 s: the queue's SL is 0%, below target.
            let call = format!("{q}-late");
            seed += &enqueue_at(now - 60_000, &q, &call);
            seed += &ev(
                now - 1_000,
                json!({"type": "call_answered", "call": call, "queue": q, "agent": format!("a{i}")}),
            );
        } else if i % 5 == 1 || i % 10 == 5 {
            let call = format!("{q}-fast");
            seed += &enqueue_at(now - 10_000, &q, &call);
            seed += &ev(
                now - 8_000,
                json!({"type": "call_answered", "call": call, "queue": q, "agent": format!("a{i}")}),
            );
        }
    }
    let r = support::http(&d.addr, "POST", "/api/v1/events", Some(ADMIN), &seed).await;
    assert_eq!(r.status, 202, "{}", &r.body[..r.body.len().min(2000)]);
    let api_queues = || async {
        let r = support::http(&d.addr, "GET", "/api/v1/queues", Some(READ), "").await;
        serde_json::from_str::<Value>(&r.body).unwrap()
    };
    eventually(Duration::from_secs(10), "1,000 queues", || async {
        (api_queues().await.as_array()?.len() == 1000).then_some(())
    })
    .await;

    let url = format!("http://{}/table?token={READ}", d.addr);
    let Some((_browser, mut page)) = browser::launch(&url).await else {
        return;
    };
    let read = |v: &Value| -> Value { serde_json::from_str(v.as_str().unwrap_or("{}")).unwrap() };
    let shown = read(
        &page
            .until(READ_ROWS, Duration::from_secs(20), |v| {
                let p = read(v);
                p["live"] == true
                    && p["size"] == 1000
                    && p["rows"].as_array().is_some_and(|r| !r.is_empty())
            })
            .await,
    );
    let want = expected_order(&api_queues().await);
    let rows = shown["rows"].as_array().unwrap();
    assert!(
        rows.len() < 80,
        "only the rows in view (and a few more) are in the page: {}",
        rows.len()
    );
    let top: Vec<&str> = rows
        .iter()
        .take(20)
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert_eq!(
        top,
        want[..20].iter().map(|s| s.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(rows[0][2], true, "a queue below its SL target leads");
    assert_eq!(
        rows[0][1], "4",
        "the breaching queue with the most callers first"
    );
    assert!(
        shown["summary"].as_str().unwrap().contains("1,000"),
        "{}",
        shown["summary"]
    );

    // Scrolling to the end shows the last queue of the order.
    page.eval("document.getElementById('viewport').scrollTop = 1e9")
        .await;
    let bottom = read(
        &page
            .until(READ_ROWS, Duration::from_secs(5), |v| {
                read(v)["rows"]
                    .as_array()
                    .and_then(|r| r.last())
                    .is_some_and(|r| r[0] == want[999].as_str())
            })
            .await,
    );
    assert!(bottom["rows"].as_array().unwrap().len() < 80);
    page.eval("document.getElementById('viewport').scrollTop = 0")
        .await;

    // Bursts: 40 deltas of 25 new callers each, spread over the floor.
    page.eval("window.acdmonTable.stats.workMs.length = 0; window.acdmonTable.stats.toScreenMs.length = 0")
        .await;
    for b in 0..40 {
        let mut lines = String::new();
        for k in 0..25 {
            let q = format!("q{:03}", (b * 37 + k * 41) % 1000);
            lines += &enqueue_at(now_ms(), &q, &format!("burst-{b}-{k}"));
        }
        post(&d.addr, &lines).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Settled: the page shows the API's order again.
    let api = api_queues().await;
    let want = expected_order(&api);
    let settled = read(
        &page
            .until(READ_ROWS, Duration::from_secs(10), |v| {
                let p = read(v);
                p["rows"].as_array().is_some_and(|r| {
                    r.iter()
                        .take(20)
                        .map(|x| x[0].as_str().unwrap_or(""))
                        .eq(want[..20].iter().map(|s| s.as_str()))
                })
            })
            .await,
    );
    let by_name: std::collections::HashMap<&str, u64> = api
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["queue"].as_str().unwrap(), q["waiting"].as_u64().unwrap()))
        .collect();
    for r in settled["rows"].as_array().unwrap() {
        assert_eq!(
            r[1].as_str().unwrap(),
            by_name[r[0].as_str().unwrap()].to_string(),
            "{r}"
        );
    }
    let stats = page.eval("JSON.stringify(window.acdmonTable.stats)").await;
    let stats: Value = serde_json::from_str(stats.as_str().unwrap()).unwrap();
    let summary = |k: &str| {
        let mut v: Vec<f64> = stats[k]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x.as_f64())
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        assert!(!v.is_empty(), "{k}: no delta measured");
        let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        json!({"n": v.len(), "p50_ms": at(0.5), "p95_ms": at(0.95), "max_ms": at(1.0)})
    };
    let report = json!({
        "queues": 1000,
        "deltas": stats["deltas"],
        "work_per_render (apply + sort + render)": summary("workMs"),
        "message_to_screen (incl. waiting for the next frame)": summary("toScreenMs"),
    });
    eprintln!("table update cost: {report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-output");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("table-update.json"), report.to_string()).unwrap();
    page.screenshot(&out.join("table.png")).await;
}
