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
