//! A real `nats-server` with JetStream for the cluster tests: its own free
//! port and store directory, killed when dropped. scripts/install-nats.sh
//! installs the server.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    token: Option<String>,
}

impl NatsServer {
    /// Starts a server with JetStream (file storage in a temp dir).
    pub fn start() -> NatsServer {
        Self::start_with(None)
    }

    /// With `authorization { token }`.
    pub fn start_with(token: Option<&str>) -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut s = NatsServer {
            child: None,
            port,
            dir,
            token: token.map(String::from),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("nats-server");
        cmd.args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(t) = &self.token {
            cmd.args(["--auth", t]);
        }
        let child = cmd
            .spawn()
            .expect("nats-server not found: run scripts/install-nats.sh");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and
    /// store: a broker restart under load.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A three-node JetStream cluster on one machine.
pub struct NatsCluster {
    pub nodes: Vec<Node>,
}

pub struct Node {
    child: Option<Child>,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Node {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

impl NatsCluster {
    pub fn start(token: Option<&str>) -> NatsCluster {
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_urls = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let mut cmd = Command::new("nats-server");
            cmd.args(["-js", "-a", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .arg("-sd")
                .arg(dir.path())
                .args(["-n", &format!("n{i}"), "--cluster_name", "acdmon-test"])
                .arg("--cluster")
                .arg(format!("nats://127.0.0.1:{route}"))
                .arg("--routes")
                .arg(&route_urls)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some(t) = token {
                cmd.args(["--auth", t]);
            }
            let child = cmd
                .spawn()
                .expect("nats-server not found: run scripts/install-nats.sh");
            nodes.push(Node {
                child: Some(child),
                port,
                _dir: dir,
            });
        }
        for n in &nodes {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", n.port)).is_err() {
                assert!(Instant::now() < deadline, "nats-server node did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        NatsCluster { nodes }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }
}
