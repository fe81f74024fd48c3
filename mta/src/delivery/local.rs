//! Local delivery: lda, run once per recipient with the message on its
//! stdin, as Postfix's `local` runs its `mailbox_command`. lda's exit code
//! decides (sysexits): 0 delivered; 75 — and anything that may pass, a
//! configuration or I/O error, a signal — try again later; 64, 65, 67, 77
//! the recipient cannot be reached: bounce.
//!
//! lda must start as root to become each recipient. An mtad started as
//! root keeps a helper process that stays root for this one job
//! ([`crate::helper`]) while mtad itself becomes its service user; an
//! mtad started as a user runs lda itself (it delivers to that user).

use std::process::Stdio;

use bsfilter::error::exit;

use super::Outcome;

/// What running lda for one recipient ended in.
pub fn outcome_of(code: Option<i32>, stderr: &str) -> Outcome {
    let said = stderr
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .trim_start_matches("lda: ")
        .to_owned();
    match code {
        Some(0) => Outcome::sent("2.0.0", "delivered to mailbox", "local"),
        Some(exit::NOUSER) => Outcome::bounced("5.1.1", &said, "local"),
        Some(exit::NOPERM) => Outcome::bounced("5.7.0", &said, "local"),
        Some(exit::USAGE) => Outcome::bounced("5.3.0", &said, "local"),
        Some(exit::DATAERR) => Outcome::bounced("5.6.0", &said, "local"),
        Some(exit::TEMPFAIL) => Outcome::deferred("4.3.0", &said, "local"),
        Some(code) => Outcome::deferred("4.3.0", &format!("lda exited {code}: {said}"), "local"),
        None => Outcome::deferred("4.3.0", "lda was killed by a signal", "local"),
    }
}

/// The arguments lda is run with.
pub fn lda_args(config_path: Option<&std::path::Path>, sender: &str, user: &str) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    if let Some(path) = config_path {
        args.push("--config".into());
        args.push(path.into());
    }
    args.extend(["-f".into(), sender.into(), "-d".into(), user.into()]);
    args
}

/// Runs `lda` as this process's user, its stdin `message`: the queue
/// file itself, opened at the message's first byte — not a pipe, which
/// would end early if mtad died mid-write, and lda would deliver the half
/// message it had read.
pub async fn run_lda(
    lda: &std::path::Path,
    config_path: Option<&std::path::Path>,
    sender: &str,
    user: &str,
    message: std::fs::File,
) -> Outcome {
    let output = tokio::process::Command::new(lda)
        .args(lda_args(config_path, sender, user))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::from(message))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await;
    match output {
        Ok(out) => outcome_of(out.status.code(), &String::from_utf8_lossy(&out.stderr)),
        Err(e) => Outcome::deferred("4.3.0", &format!("cannot run {}: {e}", lda.display()), "local"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Status;

    #[test]
    fn exit_codes() {
        assert_eq!(outcome_of(Some(0), "").status, Status::Sent);
        let o = outcome_of(Some(67), "lda: bob: no such user\n");
        assert_eq!(
            (o.status, o.dsn.as_str(), o.reply.as_str()),
            (Status::Bounced, "5.1.1", "bob: no such user")
        );
        for code in [75, 74, 78, 71, 70] {
            assert_eq!(outcome_of(Some(code), "").status, Status::Deferred, "{code}");
        }
        for code in [64, 65, 77] {
            assert_eq!(outcome_of(Some(code), "").status, Status::Bounced, "{code}");
        }
        assert_eq!(outcome_of(None, "").status, Status::Deferred);
    }
}
