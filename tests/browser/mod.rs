//! Headless Chromium for the wall tests, driven over the DevTools protocol
//! (tokio-tungstenite), shared by every wall test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::wsutil::Ws;
use crate::wsutil::support::eventually;

pub fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!(
            "\n*** SKIPPED: Chromium is not installed. Run scripts/install-test-deps.sh (CI does). ***\n"
        );
    }
    found
}

pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools protocol session on one page.
pub struct Page {
    ws: Ws,
    id: u64,
}

impl Page {
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let id = self.id;
        self.ws
            .send(Message::text(
                json!({"id": id, "method": method, "params": params}).to_string(),
            ))
            .await
            .unwrap();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("DevTools {method}: no answer"))
                .expect("devtools socket open")
                .unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// A PNG of the page as shown (1920x1080), written to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or(""))
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Evaluates `expr` until it yields a value `ok` accepts (at most
    /// `within`), and returns it; panics with the last value otherwise.
    pub async fn until(
        &mut self,
        expr: &str,
        within: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let v = self.eval(expr).await;
            if ok(&v) {
                return v;
            }
            assert!(start.elapsed() < within, "{expr}: still {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub async fn launch(url: &str) -> Option<(Browser, Page)> {
    launch_as(url, None).await
}

/// [`launch`] with the browser's language (`Accept-Language`), as a
/// browser set up for that language sends it.
pub async fn launch_as(url: &str, accept_language: Option<&str>) -> Option<(Browser, Page)> {
    let bin = chromium()?;
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1920,1080",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let browser = Browser {
        child,
        _profile: profile,
    };
    // Chromium writes its DevTools port into the profile.
    let port_file = browser._profile.path().join("DevToolsActivePort");
    let port: u16 = eventually(Duration::from_secs(20), "DevToolsActivePort", || async {
        std::fs::read_to_string(&port_file)
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    })
    .await;
    let devtools = format!("127.0.0.1:{port}");
    let ws_url = eventually(Duration::from_secs(10), "a page target", || async {
        let v = get_json(&devtools, "/json/list").await?;
        v.as_array()?
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .map(|u| u.replacen("localhost", "127.0.0.1", 1))
    })
    .await;
    let (ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let mut page = Page { ws, id: 0 };
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    if let Some(lang) = accept_language {
        let v = page.call("Browser.getVersion", json!({})).await;
        page.call(
            "Network.setUserAgentOverride",
            json!({"userAgent": v["userAgent"], "acceptLanguage": lang}),
        )
        .await;
    }
    page.call("Page.enable", json!({})).await;
    page.call("Page.navigate", json!({"url": url})).await;
    Some((browser, page))
}

/// GET with Content-Length framing: Chromium's DevTools server keeps the
/// connection open, so reading to the end would wait for its timeout.
async fn get_json(addr: &str, path: &str) -> Option<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline.into(), s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= len {
                return serde_json::from_str(&body[..len]).ok();
            }
        }
    }
}
