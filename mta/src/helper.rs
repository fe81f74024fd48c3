//! The delivery helper: the one part of mtad that stays root, as
//! Postfix's `local` runs as root while `smtpd` runs as `postfix`.
//!
//! An mtad started as root starts this helper (itself, re-executed with
//! `--delivery-helper`) before it becomes its service user; the helper
//! does one thing — run lda for a recipient with a message on its stdin,
//! which lda needs root for (it becomes the recipient) — and answers with
//! lda's exit code. It takes requests only on its stdin, a pipe only its
//! parent holds, and runs lda with a clean environment; the SMTP
//! sessions, the queue and the SMTP client never hold uid 0.
//!
//! The protocol, over the pipes:
//!
//! ```text
//! mtad → helper:  ID USER SENDER LENGTH\n  then LENGTH bytes of message
//! helper → mtad:  ID CODE TEXT\n           (CODE: lda's exit code, -1 for a signal)
//! ```
//!
//! USER and SENDER are hex (any byte may be in an address); requests run
//! at once, each in a thread of its own, answers in the order they end.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::delivery::Outcome;
use crate::delivery::local::{lda_args, outcome_of};

fn hex(s: &str) -> String {
    if s.is_empty() {
        return "-".into();
    }
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if s == "-" {
        return Some(String::new());
    }
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The helper's loop (`mtad --delivery-helper LDA [CONFIG]`): serves
/// requests from stdin until it closes.
pub fn serve(lda: PathBuf, config: Option<PathBuf>) -> i32 {
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    loop {
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return 0,
            Ok(_) => {}
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [id, user, sender, length] = words[..] else {
            return 65;
        };
        let (Some(user), Some(sender), Ok(length), Ok(id)) =
            (unhex(user), unhex(sender), length.parse::<usize>(), id.parse::<u64>())
        else {
            return 65;
        };
        if length > 1 << 31 {
            return 65;
        }
        let mut message = vec![0u8; length];
        if input.read_exact(&mut message).is_err() {
            return 0;
        }
        let (lda, config, out) = (lda.clone(), config.clone(), out.clone());
        std::thread::spawn(move || {
            let (code, text) = run_lda(&lda, config.as_deref(), &sender, &user, &message);
            let line = format!("{id} {code} {}\n", text.replace(['\n', '\r'], " "));
            let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        });
    }
}

fn run_lda(
    lda: &std::path::Path,
    config: Option<&std::path::Path>,
    sender: &str,
    user: &str,
    message: &[u8],
) -> (i32, String) {
    let child = std::process::Command::new(lda)
        .args(lda_args(config, sender, user))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (71, format!("cannot run {}: {e}", lda.display())),
    };
    let mut stdin = child.stdin.take().expect("piped");
    let message = message.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&message);
    });
    let out = child.wait_with_output();
    let _ = writer.join();
    match out {
        Ok(out) => (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .to_owned(),
        ),
        Err(e) => (71, format!("waiting for lda: {e}")),
    }
}

/// Deliveries waiting for the helper's answer, by request id.
type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<(i32, String)>>>>;

/// mtad's side: the helper process and the deliveries waiting for it.
pub struct Helper {
    stdin: tokio::sync::Mutex<tokio::process::ChildStdin>,
    waiting: Waiting,
    next: std::sync::atomic::AtomicU64,
    _child: tokio::process::Child,
}

impl Helper {
    /// Starts the helper (call while still root, before dropping
    /// privileges). `exe` is mtad itself.
    pub fn start(
        exe: &std::path::Path,
        lda: &std::path::Path,
        config: Option<&std::path::Path>,
    ) -> std::io::Result<Helper> {
        let mut command = tokio::process::Command::new(exe);
        command.arg("--delivery-helper").arg(lda);
        if let Some(c) = config {
            command.arg(c);
        }
        let mut child = command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let waiting: Waiting = Arc::default();
        let answers = waiting.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut words = line.splitn(3, ' ');
                let (Some(id), Some(code)) = (words.next().and_then(|w| w.parse::<u64>().ok()), words.next()) else {
                    continue;
                };
                let code = code.parse().unwrap_or(-1);
                let text = words.next().unwrap_or("").to_owned();
                if let Some(tx) = answers.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                    let _ = tx.send((code, text));
                }
            }
            // the helper is gone: everything waiting is deferred
            answers.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        Ok(Helper {
            stdin: tokio::sync::Mutex::new(stdin),
            waiting,
            next: std::sync::atomic::AtomicU64::new(1),
            _child: child,
        })
    }

    /// Delivers `message` to `user` through the helper.
    pub async fn deliver(&self, sender: &str, user: &str, message: &[u8]) -> Outcome {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        let request = format!("{id} {} {} {}\n", hex(user), hex(sender), message.len());
        let sent = {
            let mut stdin = self.stdin.lock().await;
            match stdin.write_all(request.as_bytes()).await {
                Ok(()) => stdin.write_all(message).await.and(stdin.flush().await),
                Err(e) => Err(e),
            }
        };
        if let Err(e) = sent {
            self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            return Outcome::deferred("4.3.0", &format!("delivery helper: {e}"), "local");
        }
        match rx.await {
            Ok((code, text)) => outcome_of(if code < 0 { None } else { Some(code) }, &text),
            Err(_) => Outcome::deferred("4.3.0", "delivery helper gone", "local"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        for s in ["", "alice", "a b\nc@例え.jp", "-"] {
            assert_eq!(unhex(&hex(s)).as_deref(), Some(s));
        }
        assert_eq!(unhex("zz"), None);
    }
}
