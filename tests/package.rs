//! The Debian package and its systemd unit, as the engineer who installs
//! acdmon on the centre's monitoring server meets them: the package holds
//! the binary, the config as a conffile, the dashboard and alert rules and a
//! unit systemd accepts; installed with `dpkg -i` (where the test runs as
//! root, as CI does) it creates the system user and /var/lib/acdmon, and the
//! daemon starts from it as that user and says which build it is.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{eventually, free_port, http};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Built once per test binary (both package tests read it).
fn deb() -> &'static Path {
    static DEB: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    &DEB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let deb = build_deb(dir.path());
        (dir, deb)
    })
    .1
}

fn build_deb(out: &Path) -> PathBuf {
    let text = run(Command::new(repo().join("scripts/build-deb.sh"))
        .args(["--fast", "--binary", env!("CARGO_BIN_EXE_acdmon"), "--out"])
        .arg(out));
    let last = text
        .lines()
        .rev()
        .find(|l| l.ends_with(".deb"))
        .unwrap_or_else(|| panic!("no .deb path in:\n{text}"));
    PathBuf::from(last.trim())
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

#[test]
fn version_names_the_build() {
    let out = run(Command::new(env!("CARGO_BIN_EXE_acdmon")).arg("--version"));
    // "acdmon 0.1.0 (commit 1a2b3c4d5e6f, built 2026-12-06)"
    let line = out.trim();
    assert!(
        line.starts_with(&format!("acdmon {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    let built = line
        .split("built ")
        .nth(1)
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no build date in {line}"));
    assert!(
        jiff::civil::Date::strptime("%Y-%m-%d", built).is_ok(),
        "{built}"
    );
    assert!(!line.contains("commit )"), "{line}");
}

#[test]
fn package_holds_the_daemon_its_config_and_a_unit_systemd_accepts() {
    if !have("dpkg-deb") {
        eprintln!("skipped: dpkg-deb is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let deb = deb();
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(deb));
    for f in [
        "./usr/bin/acdmon",
        "./etc/acdmon/acdmon.toml",
        "./etc/acdmon/acdmon.env",
        "./lib/systemd/system/acdmon.service",
        "./usr/share/acdmon/grafana-acdmon.json",
        "./usr/share/acdmon/alerts.yml",
        "./usr/share/doc/acdmon/README.md",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(f)),
            "{f} missing from the package:\n{listing}"
        );
    }
    // The secrets file is not world-readable.
    let env_line = listing
        .lines()
        .find(|l| l.ends_with("./etc/acdmon/acdmon.env"))
        .unwrap();
    assert!(env_line.starts_with("-rw-r-----"), "{env_line}");
    let conffiles = run(Command::new("dpkg-deb")
        .args(["-I"])
        .arg(deb)
        .arg("conffiles"));
    assert!(conffiles.contains("/etc/acdmon/acdmon.toml"), "{conffiles}");

    // The packaged config validates once its secrets are set, and keeps its
    // storage where the unit lets the daemon write.
    let x = dir.path().join("x");
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&x));
    let cfg = std::fs::read_to_string(x.join("etc/acdmon/acdmon.toml")).unwrap();
    assert!(cfg.contains("path = \"/var/lib/acdmon/acdmon.sqlite\""));
    let check = Command::new(x.join("usr/bin/acdmon"))
        .arg("check-config")
        .arg(x.join("etc/acdmon/acdmon.toml"))
        .envs(secrets())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    if !have("systemd-analyze") {
        eprintln!("systemd-analyze is not installed: unit not verified");
        return;
    }
    // Verify the unit as shipped, with its ExecStart pointing at the built
    // binary (systemd checks that the command exists).
    let unit = std::fs::read_to_string(x.join("lib/systemd/system/acdmon.service")).unwrap();
    let local = dir.path().join("acdmon.service");
    std::fs::write(
        &local,
        unit.replace("/usr/bin/acdmon", env!("CARGO_BIN_EXE_acdmon")),
    )
    .unwrap();
    run(Command::new("systemd-analyze").arg("verify").arg(&local));
    // The sandbox: `systemd-analyze security` scores exposure 0 (locked
    // down) to 10; the README promises 2.0 or lower.
    let sec = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&local));
    let score: f64 = sec
        .lines()
        .find_map(|l| l.split("Overall exposure level for").nth(1))
        .and_then(|rest| rest.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{sec}"));
    eprintln!("systemd-analyze security exposure: {score}");
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{sec}");
}

/// Every `env:` secret the example config names.
fn secrets() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ACDMON_READ_TOKEN", "reader-secret"),
        ("ACDMON_ADMIN_TOKEN", "admin-secret"),
        ("AMI_SECRET", "ami-secret"),
        ("CTI_WEBHOOK_TOKEN", "hook-secret"),
        ("HEP_AUTH_KEY", "hep-secret"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_package_runs_as_its_own_user() {
    if !(have("dpkg") && have("runuser") && is_root()) {
        eprintln!("skipped: needs root and dpkg to install the package");
        return;
    }
    run(Command::new("dpkg").arg("-i").arg(deb()));
    let id = run(Command::new("id").arg("acdmon"));
    assert!(id.contains("acdmon"), "{id}");
    let meta = std::fs::metadata("/var/lib/acdmon").unwrap();
    assert!(meta.is_dir());
    if have("systemd-analyze") {
        run(Command::new("systemd-analyze")
            .arg("verify")
            .arg("/lib/systemd/system/acdmon.service"));
    }
    // Start the installed binary with the installed config as the service
    // user (this machine may have no systemd as PID 1), on free ports.
    let port = free_port();
    let cfg = std::fs::read_to_string("/etc/acdmon/acdmon.toml")
        .unwrap()
        .replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace("127.0.0.1:7070", &format!("127.0.0.1:{}", free_port()))
        .replace("127.0.0.1:9060", &format!("127.0.0.1:{}", free_port()));
    let cfg_path = Path::new("/var/lib/acdmon/test-acdmon.toml");
    std::fs::write(cfg_path, cfg).unwrap();
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "acdmon", "--", "/usr/bin/acdmon", "run", "--config"])
        .arg(cfg_path)
        .current_dir("/var/lib/acdmon")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in secrets() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let addr = format!("127.0.0.1:{port}");
    let info = eventually(
        Duration::from_secs(15),
        "the packaged daemon serves",
        || {
            let a = addr.clone();
            async move {
                tokio::net::TcpStream::connect(&a).await.ok()?;
                let r = http(&a, "GET", "/api/v1/info", None, "").await;
                (r.status == 200).then_some(r.body)
            }
        },
    )
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    // It wrote its database as the service user, where the unit allows.
    let db = std::fs::metadata("/var/lib/acdmon/acdmon.sqlite").unwrap();
    use std::os::unix::fs::MetadataExt;
    let uid: u32 = run(Command::new("id").args(["-u", "acdmon"]))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(db.uid(), uid);
    let _ = std::fs::remove_file(cfg_path);
    run(Command::new("dpkg").args(["--purge", "acdmon"]));
    assert!(!Path::new("/usr/bin/acdmon").exists());
    assert!(!Path::new("/var/lib/acdmon").exists());
}
