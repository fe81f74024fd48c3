//! POP3 (RFC 1939, CAPA and AUTH of RFC 2449 / 5034) over the user's INBOX.
//!
//! A session works on the INBOX as it was at login. DELE marks; QUIT
//! removes the marked messages and sets `\Seen` on the retrieved ones in one
//! update under the mailbox locks (mail that arrived meanwhile is kept).
//! UIDL is Dovecot's default format (`%08Xu%08Xv`: UID and UIDVALIDITY,
//! which Dovecot's `%X` writes in lower-case hex), so clients moving from
//! Dovecot, which compare UIDLs as strings, don't fetch everything again.
//!
//! Like [`crate::imap::Session`], a [`Pop3Session`] turns one line into
//! response bytes; [`crate::server`] does the socket.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use daemon::auth::{LoginError, base64_decode, plaintext_secret, sasl_plain};
use daemon::limits::Permit;
use lda::dir::MboxPath;
use lda::folders::Layout;
use md5::{Digest, Md5};

use crate::Context;
use crate::mailbox::{Message, SEEN};

/// What the connection does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop3Step {
    Continue,
    Close,
    /// `AUTH PLAIN` without an initial response: send `+ `, pass the next
    /// line to [`Pop3Session::auth_response`].
    AuthContinue,
    /// STLS accepted: do the handshake, then [`Pop3Session::tls_started`].
    StartTls,
}

enum State {
    /// Before login; the name from USER.
    Authorization {
        user: Option<String>,
    },
    Transaction(Box<Maildrop>),
}

struct Maildrop {
    user: lda::users::User,
    inbox: MboxPath,
    uid_validity: u32,
    messages: Vec<Message>,
    deleted: HashSet<usize>,
    retrieved: HashSet<u32>,
}

pub struct Pop3Session {
    ctx: Arc<Context>,
    client: IpAddr,
    secure: bool,
    state: State,
    /// The APOP challenge of the greeting.
    timestamp: String,
    pub out: Vec<u8>,
    bad_commands: u32,
    /// The current command was answered `-ERR`.
    failed: bool,
    /// This connection's place under the server's caps.
    permit: Option<Permit>,
    /// How long to wait before sending `out` (after a failed login).
    pause: Option<Duration>,
}

const MAX_BAD_COMMANDS: u32 = 20;

impl Pop3Session {
    pub fn new(ctx: Arc<Context>, client: IpAddr, secure: bool, permit: Option<Permit>) -> Pop3Session {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Pop3Session {
            ctx,
            client,
            secure,
            state: State::Authorization { user: None },
            timestamp: format!("<{}.{nanos}@mailkit>", std::process::id()),
            out: Vec::new(),
            bad_commands: 0,
            failed: false,
            permit,
            pause: None,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Transaction(_))
    }

    /// How long to wait before sending what is in `out`, once.
    pub fn take_pause(&mut self) -> Option<Duration> {
        self.pause.take()
    }

    pub fn greeting(&mut self) {
        let line = format!("+OK mailkit POP3 ready {}", self.timestamp);
        self.line(&line);
    }

    fn line(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn err(&mut self, text: &str) -> Pop3Step {
        self.line(&format!("-ERR {text}"));
        self.failed = true;
        self.bad_commands += 1;
        if self.bad_commands >= MAX_BAD_COMMANDS {
            self.line("-ERR Too many bad commands; closing.");
            return Pop3Step::Close;
        }
        Pop3Step::Continue
    }

    pub fn tls_started(&mut self) {
        self.secure = true;
    }

    fn plaintext_allowed(&self) -> bool {
        self.secure || self.ctx.imapd.plaintext_auth.allows(self.client)
    }

    /// Handles one command line.
    pub fn handle(&mut self, line: &[u8]) -> Pop3Step {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\r', '\n']);
        let (command, args) = line.split_once(' ').unwrap_or((line, ""));
        let command = command.to_ascii_uppercase();
        self.failed = false;
        let step = match (&self.state, command.as_str()) {
            (_, "CAPA") => {
                self.line("+OK Capability list follows");
                for cap in ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"] {
                    self.line(cap);
                }
                if self.ctx.tls.is_some() && !self.secure && matches!(self.state, State::Authorization { .. }) {
                    self.line("STLS");
                }
                if self.plaintext_allowed() {
                    self.line("USER");
                    self.line("SASL PLAIN");
                }
                self.line(".");
                Pop3Step::Continue
            }
            (_, "QUIT") => return self.quit(),
            (_, "NOOP") if matches!(self.state, State::Transaction(_)) => {
                self.line("+OK");
                Pop3Step::Continue
            }
            (State::Authorization { .. }, "USER") => {
                if !self.plaintext_allowed() {
                    return self.err("[AUTH] Plaintext authentication is disabled here.");
                }
                let name = args.trim().to_owned();
                self.state = State::Authorization { user: Some(name) };
                self.line("+OK");
                Pop3Step::Continue
            }
            (State::Authorization { user: Some(name) }, "PASS") => {
                let name = name.clone();
                self.state = State::Authorization { user: None };
                let result = self.ctx.auth.login(self.client, &name, args.as_bytes());
                self.finish_login(result)
            }
            (State::Authorization { .. }, "APOP") => self.apop(args),
            (State::Authorization { .. }, "AUTH") => {
                let mut words = args.split_whitespace();
                match (words.next().map(str::to_ascii_uppercase).as_deref(), words.next()) {
                    (Some("PLAIN"), _) if !self.plaintext_allowed() => {
                        self.err("[AUTH] Plaintext authentication is disabled here.")
                    }
                    (Some("PLAIN"), Some(initial)) => self.auth_plain(initial.as_bytes()),
                    (Some("PLAIN"), None) => return Pop3Step::AuthContinue,
                    (None, _) => {
                        self.line("+OK");
                        self.line("PLAIN");
                        self.line(".");
                        Pop3Step::Continue
                    }
                    _ => self.err("Unsupported mechanism."),
                }
            }
            (State::Authorization { .. }, "STLS") if self.secure => self.err("TLS is already active."),
            (State::Authorization { .. }, "STLS") if self.ctx.tls.is_none() => self.err("TLS is not configured."),
            (State::Authorization { .. }, "STLS") => {
                self.line("+OK Begin TLS negotiation.");
                return Pop3Step::StartTls;
            }
            (State::Authorization { .. }, _) => self.err("Authenticate first."),
            (State::Transaction(_), _) => self.transaction(&command, args),
        };
        if !self.failed {
            self.bad_commands = 0;
        }
        step
    }

    /// The client's answer to AUTH PLAIN's `+ `.
    pub fn auth_response(&mut self, line: &[u8]) -> Pop3Step {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\r', '\n']);
        if line == "*" {
            return self.err("Authentication cancelled.");
        }
        self.auth_plain(line.as_bytes())
    }

    fn auth_plain(&mut self, encoded: &[u8]) -> Pop3Step {
        let Some(data) = base64_decode(encoded) else {
            return self.err("Invalid base64.");
        };
        match sasl_plain(&data) {
            Some((name, password)) => {
                let result = self.ctx.auth.login(self.client, &name, password);
                self.finish_login(result)
            }
            None => self.err("Malformed PLAIN response."),
        }
    }

    /// `APOP name digest`: digest = MD5(timestamp + the user's plaintext
    /// secret); only users with a `{PLAIN}` entry can use it.
    fn apop(&mut self, args: &str) -> Pop3Step {
        let mut words = args.split_whitespace();
        let (Some(name), Some(digest)) = (words.next(), words.next()) else {
            return self.err("Usage: APOP name digest");
        };
        let timestamp = self.timestamp.clone();
        let digest_of = |user: &lda::users::User| {
            plaintext_secret(&user.password).map(|secret| {
                let hash = Md5::new()
                    .chain_update(timestamp.as_bytes())
                    .chain_update(secret.as_bytes())
                    .finalize();
                hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
            })
        };
        let result = self.ctx.auth.check(self.client, name, |user| {
            digest_of(user).is_some_and(|expected| expected.eq_ignore_ascii_case(digest))
        });
        self.finish_login(result)
    }

    fn finish_login(&mut self, result: Result<lda::users::User, LoginError>) -> Pop3Step {
        match result {
            Ok(user) => {
                if let Some(permit) = &mut self.permit
                    && permit.logged_in(&user.name).is_err()
                {
                    tracing::warn!(user = %user.name, client = %self.client, "POP3 login refused: too many connections");
                    return self.err("[IN-USE] Too many connections for this user from your address.");
                }
                let inbox = Layout::of(&user, &self.ctx.config).path("INBOX");
                if matches!(inbox.kind(), Ok(None)) {
                    let _ = crate::mailbox::Folder::create(&inbox, self.ctx.folders.spool());
                }
                match self.ctx.folders.read(&inbox) {
                    Ok(folder) => {
                        tracing::info!(event = "login", service = "pop3", client = %self.client, user = ?user.name, "POP3 login");
                        let count = folder.messages.len();
                        let octets: usize = folder.messages.iter().map(Message::size).sum();
                        self.state = State::Transaction(Box::new(Maildrop {
                            user,
                            inbox,
                            uid_validity: folder.uid_validity,
                            messages: Arc::unwrap_or_clone(folder).messages,
                            deleted: HashSet::new(),
                            retrieved: HashSet::new(),
                        }));
                        self.line(&format!("+OK {count} messages ({octets} octets)"));
                        Pop3Step::Continue
                    }
                    Err(e) => {
                        tracing::error!("POP3 maildrop: {e}");
                        self.err("[IN-USE] Cannot open the maildrop; try again later.")
                    }
                }
            }
            Err(LoginError::Rejected) => {
                self.pause = Some(self.ctx.auth.policy().failure_delay);
                self.err("[AUTH] Authentication failed.")
            }
            Err(LoginError::TooManyFailures) => {
                self.pause = Some(self.ctx.auth.policy().failure_delay);
                self.err("[SYS/TEMP] Too many failed logins from your address; try later.")
            }
            Err(LoginError::Unavailable(e)) => {
                tracing::error!("user table: {e}");
                self.err("[SYS/TEMP] Authentication is temporarily unavailable.")
            }
        }
    }

    fn transaction(&mut self, command: &str, args: &str) -> Pop3Step {
        let State::Transaction(drop) = &mut self.state else {
            unreachable!("called in the transaction state")
        };
        let numbers: Vec<Option<usize>> = args.split_whitespace().map(|a| a.parse().ok()).collect();
        // message n (1-based), if it exists and is not deleted
        let message = |n: Option<&Option<usize>>| -> Option<usize> {
            let n = (*n?)?;
            (n >= 1 && n <= drop.messages.len() && !drop.deleted.contains(&(n - 1))).then(|| n - 1)
        };
        let mut out = Vec::new();
        let mut ok = |text: String| {
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        let result: Result<(), &str> = match command {
            "STAT" => {
                let live = (0..drop.messages.len()).filter(|i| !drop.deleted.contains(i));
                let (count, octets) = live.fold((0, 0), |(c, o), i| (c + 1, o + drop.messages[i].size()));
                ok(format!("+OK {count} {octets}"));
                Ok(())
            }
            "LIST" | "UIDL" => {
                let value = |i: usize| match command {
                    "LIST" => drop.messages[i].size().to_string(),
                    _ => format!("{:08x}{:08x}", drop.messages[i].uid, drop.uid_validity),
                };
                if args.trim().is_empty() {
                    let live = drop.messages.len() - drop.deleted.len();
                    // (Dovecot's first lines, word for word)
                    ok(if command == "LIST" {
                        format!("+OK {live} messages:")
                    } else {
                        "+OK".into()
                    });
                    for i in (0..drop.messages.len()).filter(|i| !drop.deleted.contains(i)) {
                        ok(format!("{} {}", i + 1, value(i)));
                    }
                    ok(".".into());
                    Ok(())
                } else {
                    match message(numbers.first()) {
                        Some(i) => {
                            ok(format!("+OK {} {}", i + 1, value(i)));
                            Ok(())
                        }
                        None => Err("No such message."),
                    }
                }
            }
            "RETR" | "TOP" => {
                let lines = if command == "TOP" {
                    numbers.get(1).copied().flatten()
                } else {
                    None
                };
                match message(numbers.first()) {
                    Some(_) if command == "TOP" && lines.is_none() => Err("Usage: TOP msg lines"),
                    Some(i) => {
                        let m = &drop.messages[i];
                        ok(format!("+OK {} octets", m.size()));
                        out.extend_from_slice(&dot_stuffed(&m.content, lines));
                        out.extend_from_slice(b".\r\n");
                        if command == "RETR" {
                            drop.retrieved.insert(m.uid);
                        }
                        Ok(())
                    }
                    None => Err("No such message."),
                }
            }
            "DELE" => match message(numbers.first()) {
                Some(i) => {
                    drop.deleted.insert(i);
                    ok(format!("+OK message {} deleted", i + 1));
                    Ok(())
                }
                None => Err("No such message."),
            },
            "RSET" => {
                drop.deleted.clear();
                ok(format!("+OK {} messages", drop.messages.len()));
                Ok(())
            }
            _ => Err("Unknown command."),
        };
        self.out.extend_from_slice(&out);
        match result {
            Ok(()) => Pop3Step::Continue,
            Err(e) => self.err(e),
        }
    }

    /// QUIT: in the transaction state, the UPDATE state of RFC 1939.
    fn quit(&mut self) -> Pop3Step {
        if let State::Transaction(drop) = &self.state {
            let deleted: HashSet<u32> = drop.deleted.iter().map(|&i| drop.messages[i].uid).collect();
            let retrieved = drop.retrieved.clone();
            let result = self.ctx.folders.update(&drop.inbox, |f| {
                f.messages.retain(|m| !deleted.contains(&m.uid));
                for m in f.messages.iter_mut().filter(|m| retrieved.contains(&m.uid)) {
                    m.flags |= SEEN;
                }
            });
            let name = drop.user.name.clone();
            match result {
                Ok(_) => {
                    tracing::info!(user = %name, "POP3 logout, {} deleted", deleted.len());
                    self.line(&format!("+OK Logging out, {} messages deleted.", deleted.len()));
                }
                Err(e) => {
                    tracing::error!(user = %name, "POP3 update failed: {e}");
                    self.line("-ERR [SYS/TEMP] Some deleted messages were not removed.");
                }
            }
        } else {
            self.line("+OK Bye.");
        }
        Pop3Step::Close
    }
}

/// The message (or its header and first `lines` body lines) with CRLF line
/// ends and lines starting with `.` doubled, ending in CRLF.
fn dot_stuffed(content: &[u8], lines: Option<usize>) -> Vec<u8> {
    let crlf = crate::mailbox::to_crlf(content);
    let mut out = Vec::with_capacity(crlf.len() + 64);
    let mut in_body = false;
    let mut body_lines = 0;
    for line in crlf.split_inclusive(|&b| b == b'\n') {
        if in_body {
            if lines.is_some_and(|max| body_lines >= max) {
                break;
            }
            body_lines += 1;
        } else if line == b"\r\n" {
            in_body = true;
        }
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_top() {
        let m = b"Subject: x\n\n.hidden\nline 2\nline 3";
        assert_eq!(
            dot_stuffed(m, None),
            b"Subject: x\r\n\r\n..hidden\r\nline 2\r\nline 3\r\n"
        );
        assert_eq!(dot_stuffed(m, Some(1)), b"Subject: x\r\n\r\n..hidden\r\n");
        assert_eq!(dot_stuffed(m, Some(0)), b"Subject: x\r\n\r\n");
    }
}
