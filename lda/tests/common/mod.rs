//! What the lda test files share: a scratch site (one user in a
//! passwd-file, a configuration) and running the binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const LDA: &str = env!("CARGO_BIN_EXE_lda");

/// Writes `DIR/passwd` with the user `alice` (uid and gid `uid`, home
/// `home`) and `DIR/mailkit.toml` using it, with `inbox` as the INBOX
/// template, `mailbox_keys` added to [mailbox] and `extra` after it.
/// Returns the configuration's path.
#[allow(dead_code)] // not every test file writes a one-user site
pub fn write_site(dir: &Path, uid: u32, home: &Path, inbox: &str, mailbox_keys: &str, extra: &str) -> PathBuf {
    let passwd = dir.join("passwd");
    std::fs::write(
        &passwd,
        format!("alice:{{PLAIN}}pw:{uid}:{uid}::{}::\n", home.display()),
    )
    .unwrap();
    let config = dir.join("mailkit.toml");
    std::fs::write(
        &config,
        format!(
            "[users]\npasswd_file = \"{}\"\nsystem_users = false\n[mailbox]\ninbox = \"{inbox}\"\nfolders = \"~/mail\"\n{mailbox_keys}\n{extra}",
            passwd.display()
        ),
    )
    .unwrap();
    config
}

/// Runs lda with `config` and `args`, `message` on stdin.
pub fn run_lda(config: &Path, args: &[&str], message: &[u8]) -> Output {
    let mut child = Command::new(LDA)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let message = message.to_vec();
    // a thread, so a message bigger than the pipe cannot deadlock us
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&message);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}
