//! End-to-end test support shared by the programs' test suites: peers
//! that run for real (a scratch Dovecot) rather than mocks.

pub mod dovecot;

use std::process::{Command, ExitStatus, Stdio};

/// A self-signed certificate for `name` (and 127.0.0.1), valid two days,
/// with its key: `dir/cert.pem` and `dir/key.pem` (openssl, P-256).
pub fn certificate(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let openssl = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name},IP:127.0.0.1"), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(openssl.status.success(), "{}", String::from_utf8_lossy(&openssl.stderr));
    (cert, key)
}

/// True when the tests run as root (CI does); tests that need another uid
/// (Dovecot refuses to serve mail as root) require it.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The shared libraries a program asks the loader for (`readelf -d`'s
/// NEEDED entries), leaving out the loader itself, which every process
/// maps anyway (unoptimised builds name it for its TLS helper). The
/// per-message programs are built to need libc alone: each library more
/// is start-up cost in every delivery.
pub fn needed_libraries(program: &str) -> Vec<String> {
    let out = std::process::Command::new("readelf")
        .args(["-d", program])
        .output()
        .expect("readelf (binutils) runs");
    assert!(out.status.success(), "readelf -d {program}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .map(|l| l.rsplit('[').next().unwrap_or("").trim_end_matches(']').to_owned())
        .filter(|library| !library.starts_with("ld-linux"))
        .collect()
}

/// Runs a terminal program (mutt) under `script`, which gives it a pty,
/// and returns its exit status; `timeout 60` ends a hung one.
///
/// `script` is given a stdin that stays open and silent until the program
/// exits: at end of its stdin, `script` types an end-of-file (^D) into the
/// pty, and a ^D arriving while mutt runs its pushed keys (mutt flushes
/// them on an unexpected key) cut a test's `<tag-pattern>~A` short at
/// random — the cause of a flaky "mutt found every message: left 1".
pub fn run_under_script(command: &str, env: &[(&str, &std::path::Path)]) -> ExitStatus {
    let mut child = Command::new("timeout")
        .args(["60", "script", "-qec", command, "/dev/null"])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("script and mutt are installed (.ci/run)");
    let silent_stdin = child.stdin.take();
    let status = child.wait().expect("waiting for script");
    drop(silent_stdin);
    status
}
