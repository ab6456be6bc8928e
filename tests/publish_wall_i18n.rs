//! The wall in Chinese: a floor manager whose browser asks for `zh-CN` reads
//! the terms Chinese centres use (排队数, 最长等待, 服务水平 / 20秒接通率,
//! 接通率, 呼损率, 坐席 states, 小休 as a pause reason), and the figures still
//! move live. Saves `test-output/wall-zh-CN.png` (docs/wall-zh-CN.png is
//! this screenshot). Skips loudly when Chromium is not installed.

mod browser;
mod wsutil;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use wsutil::support::{self, eventually};
use wsutil::*;

const QUEUES: &str = "[[queues]]\nname = \"报修热线\"\n[[queues]]\nname = \"电费查询\"\n[[queues]]\nname = \"投诉建议\"\nsl_threshold = \"30s\"\n\
[[agents]]\nid = \"a1\"\nname = \"李娜\"\n[[agents]]\nid = \"a2\"\nname = \"王伟\"\n[[agents]]\nid = \"a3\"\nname = \"张敏\"\n\
[[agents]]\nid = \"a4\"\nname = \"刘洋\"\n[[agents]]\nid = \"a5\"\nname = \"陈静\"\n[[agents]]\nid = \"a6\"\nname = \"杨帆\"\n";

fn ev(ts: i64, body: &str) -> String {
    format!("{{\"ts\":{ts},{body}}}\n")
}

/// A morning on the floor: callers waiting for repairs, a billing call
/// answered and one abandoned, agents in every state.
fn seed(now: i64) -> String {
    let mut s = String::new();
    for (i, ago) in [95_000, 40_000, 5_000].iter().enumerate() {
        s += &ev(
            now - ago,
            &format!("\"type\":\"call_enqueued\",\"call\":\"r{i}\",\"queue\":\"报修热线\""),
        );
    }
    s += &ev(
        now - 12_000,
        "\"type\":\"call_enqueued\",\"call\":\"b1\",\"queue\":\"电费查询\"",
    );
    s += &ev(
        now - 2_000,
        "\"type\":\"call_answered\",\"call\":\"b1\",\"queue\":\"电费查询\",\"agent\":\"a2\"",
    );
    s += &ev(
        now - 50_000,
        "\"type\":\"call_enqueued\",\"call\":\"b2\",\"queue\":\"电费查询\"",
    );
    s += &ev(
        now - 1_000,
        "\"type\":\"call_abandoned\",\"call\":\"b2\",\"queue\":\"电费查询\"",
    );
    s += &ev(
        now - 30_000,
        "\"type\":\"call_enqueued\",\"call\":\"c1\",\"queue\":\"投诉建议\"",
    );
    for (a, st, q) in [
        ("a1", "available", "报修热线"),
        ("a4", "wrap_up", "报修热线"),
        ("a5", "ringing", "电费查询"),
        ("a6", "available", "投诉建议"),
    ] {
        s += &agent(a, st, q);
    }
    s += &ev(
        now,
        "\"type\":\"agent_state\",\"agent\":\"a3\",\"state\":\"paused\",\"reason\":\"break\",\"queue\":\"报修热线\"",
    );
    s
}

const READ_PAGE: &str = r#"JSON.stringify({
  lang: document.documentElement.lang,
  live: document.getElementById('conn').textContent,
  heading: document.querySelector('#board h2').textContent,
  cols: [...document.querySelectorAll('#board th')].map(e => e.textContent),
  summary: document.getElementById('summary').textContent,
  clock: document.getElementById('clock').textContent,
  tiles: [...document.querySelectorAll('article.tile')].map(t => ({
    queue: t.dataset.queue,
    waiting: t.querySelector('[data-field=waiting]').textContent,
    text: t.textContent.replace(/\s+/g, ' '),
  })),
  agents: [...document.querySelectorAll('#agents tr')].map(r => [...r.children].map(c => c.textContent)),
})"#;

fn tile<'a>(page: &'a Value, queue: &str) -> &'a Value {
    page["tiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["queue"] == queue)
        .unwrap_or_else(|| panic!("no tile for {queue}: {page}"))
}

fn agent_row<'a>(page: &'a Value, name: &str) -> &'a Vec<Value> {
    page["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_array())
        .find(|r| r[0] == name)
        .unwrap_or_else(|| panic!("no row for {name}: {page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chinese_browser_gets_the_chinese_wall_and_it_updates_live() {
    let d = daemon("wall_title = \"国网客服中心 · 大屏\"", QUEUES).await;
    let now = now_ms();
    post(&d.addr, &seed(now)).await;
    eventually(Duration::from_secs(5), "seed applied", || async {
        let r = support::http(&d.addr, "GET", "/api/v1/agents", Some(READ), "").await;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        (v.as_array()?.len() == 6).then_some(())
    })
    .await;

    let url = format!("http://{}/?token={READ}", d.addr);
    let Some((_browser, mut page)) =
        browser::launch_as(&url, Some("zh-CN,zh;q=0.9,en;q=0.8")).await
    else {
        return;
    };
    let read = |v: &Value| -> Value { serde_json::from_str(v.as_str().unwrap_or("{}")).unwrap() };
    let shown = page
        .until(READ_PAGE, Duration::from_secs(15), |v| {
            let p = read(v);
            p["live"] == "实时"
                && p["tiles"].as_array().is_some_and(|t| t.len() == 3)
                && p["agents"].as_array().is_some_and(|a| a.len() == 6)
        })
        .await;
    let p = read(&shown);
    assert_eq!(p["lang"], "zh-CN");
    assert_eq!(
        p["heading"].as_str().unwrap().split_whitespace().next(),
        Some("坐席")
    );
    assert_eq!(
        p["cols"],
        serde_json::json!(["坐席", "状态", "原因", "持续时长", "技能队列"])
    );
    let repair = tile(&p, "报修热线");
    assert_eq!(repair["waiting"], "3");
    let text = repair["text"].as_str().unwrap();
    for term in [
        "排队数",
        "最长等待",
        "服务水平（20秒接通率）",
        "平均应答时长",
        "空闲",
        "示忙",
        "话后",
        "在线",
        "未启动应急",
    ] {
        assert!(text.contains(term), "{term} on the repair tile: {text}");
    }
    let billing = tile(&p, "电费查询")["text"].as_str().unwrap().to_string();
    // One answered, one abandoned today: 接通率 50%, 呼损率 50%.
    assert!(billing.contains("接通率 50%"), "{billing}");
    assert!(billing.contains("呼损率 50%"), "{billing}");
    assert!(
        tile(&p, "投诉建议")["text"]
            .as_str()
            .unwrap()
            .contains("30秒接通率"),
        "the queue's own threshold"
    );
    assert_eq!(agent_row(&p, "张敏")[1], "示忙");
    assert_eq!(
        agent_row(&p, "张敏")[2],
        "小休",
        "the pause reason in Chinese"
    );
    assert_eq!(agent_row(&p, "王伟")[1], "通话");
    assert_eq!(agent_row(&p, "陈静")[1], "振铃");
    assert!(
        p["summary"].as_str().unwrap().starts_with("排队 4 "),
        "{}",
        p["summary"]
    );
    let clock = p["clock"].as_str().unwrap();
    assert!(
        clock.len() == 8 && clock.as_bytes()[2] == b':' && !clock.contains('M'),
        "a 24-hour clock: {clock}"
    );
    browser_shot(&mut page, "wall-zh-CN.png").await;

    // Live: a new caller for repairs and 李娜 takes a call.
    post(
        &d.addr,
        &(ev(
            now_ms(),
            "\"type\":\"call_enqueued\",\"call\":\"r9\",\"queue\":\"报修热线\"",
        ) + &agent("a1", "on_call", "报修热线")),
    )
    .await;
    let moved = page
        .until(READ_PAGE, Duration::from_secs(5), |v| {
            let p = read(v);
            p["tiles"]
                .as_array()
                .is_some_and(|_| tile(&p, "报修热线")["waiting"] == "4")
                && agent_row(&p, "李娜")[1] == "通话"
        })
        .await;
    assert!(
        read(&moved)["summary"]
            .as_str()
            .unwrap()
            .starts_with("排队 5 ")
    );
}

async fn browser_shot(page: &mut browser::Page, name: &str) {
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-output")
        .join(name);
    page.screenshot(&out).await;
}

/// `[server] wall_locale` fixes the language for every screen; `?lang=` in
/// a wall URL overrides it; the tables are served for translators; a value
/// the wall has no texts for is a config error naming the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_locale_wins_over_the_browser_and_the_url_over_both() {
    let d = daemon(
        "wall_locale = \"zh-CN\"",
        "[[queues]]\nname = \"hotline\"\n",
    )
    .await;
    let page = support::http(&d.addr, "GET", &format!("/?token={READ}"), None, "").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<html lang=\"zh-CN\">"), "{}", page.body);
    assert!(page.body.contains("\"tile.waiting\": \"排队数\""));
    let en = support::http(&d.addr, "GET", &format!("/?token={READ}&lang=en"), None, "").await;
    assert!(en.body.contains("<html lang=\"en\">"));
    assert!(en.body.contains("\"tile.waiting\": \"waiting\""));
    let table = support::http(&d.addr, "GET", "/wall/locales/zh-CN.json", None, "").await;
    assert_eq!(table.status, 200);
    let t: Value = serde_json::from_str(&table.body).unwrap();
    assert_eq!(t["tile.longest_wait"], "最长等待");
    assert_eq!(t["state.paused"], "示忙");
    let none = support::http(&d.addr, "GET", "/wall/locales/fr.json", None, "").await;
    assert_eq!(none.status, 404);

    let bad = acdmon::config::Config::parse(
        "bad.toml",
        "[server]\nwall_locale = \"zh-TW\"\n[[queues]]\nname = \"q\"\n",
    );
    let err = format!("{:?}", bad.expect_err("zh-TW has no texts"));
    assert!(
        err.contains("wall_locale") || err.contains("zh-TW"),
        "{err}"
    );
}
