//! A scripted HTTP receiver for webhook tests: a real TCP listener on
//! 127.0.0.1 that records every request and answers from a script (a
//! status, or no answer at all), then a default.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16, String),
    /// Read the request, never answer.
    Hang,
}

#[derive(Debug, Clone)]
pub struct Seen {
    /// The request head, lower-cased.
    pub head: String,
    pub body: Value,
}

#[derive(Clone)]
pub struct Hook {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Hook {
    pub async fn start(default: Answer) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hook = Hook {
            url: format!("http://{addr}/cti"),
            seen: Arc::default(),
            script: Arc::default(),
        };
        let h = hook.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let h = h.clone();
                let default = default.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head, body) = loop {
                        let n = match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                            let head = head.to_ascii_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if rest.len() >= len {
                                break (head, rest[..len].to_string());
                            }
                        }
                    };
                    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    h.seen.lock().unwrap().push(Seen { head, body });
                    let answer = h.script.lock().unwrap().pop_front().unwrap_or(default);
                    match answer {
                        Answer::Status(code, text) => {
                            let resp = format!(
                                "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                                text.len()
                            );
                            let _ = s.write_all(resp.as_bytes()).await;
                            let _ = s.shutdown().await;
                        }
                        Answer::Hang => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                    }
                });
            }
        });
        hook
    }

    /// Answers for the next requests, in order.
    pub fn then(&self, a: Answer) {
        self.script.lock().unwrap().push_back(a);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// (verb, agent) of every request, in arrival order.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.seen()
            .iter()
            .map(|s| {
                (
                    s.body["verb"].as_str().unwrap_or("").to_string(),
                    s.body["agent"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}
