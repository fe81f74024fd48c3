//! What the site's tests share: the workspace's programs, their logs,
//! the Python clients.

#![allow(dead_code)] // (each test file uses its own part)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MAILKIT: &str = env!("CARGO_BIN_EXE_mailkit");

/// A program of the workspace, built beside `mailkit` (the workspace's
/// test run builds every package's binaries).
pub fn program(name: &str) -> PathBuf {
    let path = Path::new(MAILKIT).with_file_name(name);
    assert!(
        path.exists(),
        "{} is not built: run the whole suite (cargo test --workspace) or cargo build -p mta -p imapd",
        path.display()
    );
    path
}

/// Started with its log to `log`; killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start(program: &Path, config: &Path, log: &Path) -> Running {
    let file = std::fs::File::create(log).unwrap();
    Running(
        Command::new(program)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap(),
    )
}

/// Waits until `log` holds `count` lines containing `needle` (the
/// programs say when they listen and when they deliver).
pub fn wait_for(log: &Path, needle: &str, count: usize) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().filter(|l| l.contains(needle)).count() >= count {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{needle} ×{count} not in {}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The port a program's log says it listens on for `service`.
pub fn port(log: &str, service: &str) -> u16 {
    log.lines()
        .find(|l| l.contains(&format!(" {service} on ")))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {service} port in:\n{log}"))
}

/// Runs `tests/py/SCRIPT` with `args`; what it printed, as JSON.
pub fn python(script: &str, args: &[&str]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(script);
    let out = Command::new("python3").arg(&script).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `mailkit report` in JSON over `logs`, days in UTC, `user` the
/// per-user figure's, `config` the site's (for mynetworks).
pub fn report(config: &Path, logs: &[&Path], user: &str) -> serde_json::Value {
    let out = Command::new(MAILKIT)
        .args([
            "report",
            "--format",
            "json",
            "--utc-offset",
            "+00:00",
            "--user",
            user,
            "--config",
        ])
        .arg(config)
        .args(logs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The period's total refusals for `cause`, from a report.
pub fn refused(report: &serde_json::Value, cause: &str) -> u64 {
    report["totals"]["refused_by"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0] == cause)
        .and_then(|p| p[1].as_u64())
        .unwrap_or_else(|| panic!("no cause {cause}"))
}
