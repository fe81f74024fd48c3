//! One SMTP connection's state and its commands, sans-IO as imapd's
//! session is: a command line in, reply bytes in [`Session::out`] and a
//! [`Step`] out saying what the connection does next (read the message
//! after DATA, read a BDAT chunk, start TLS, ask the policy chain, commit
//! to the queue, close). The socket side is [`crate::server`].
//!
//! The rules that are not policy but the server's own, always on:
//! relaying only for `mynetworks` and logged-in clients (`554 5.7.1 Relay
//! access denied`), unknown local recipients refused at RCPT (`550
//! 5.1.1`, never accepted and bounced later), AUTH only on the submission
//! ports and only under TLS (or from loopback), the recipient limit, the
//! error limit. Replies and their codes are Postfix's, so a site's
//! scripts and users see what they know.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use daemon::auth::{LoginError, base64_decode, sasl_plain};
use daemon::limits::Permit;
use smtp_proto::Request;

use crate::Context;
use crate::envelope::{Envelope, Notify, Recipient, Return};
use crate::policy::{Decision, Facts, Point};
use crate::queue::QueueId;
use crate::smtp::data::{BareNewline, ChunkReceiver, DataError, DataReceiver};
use crate::smtp::reply::Reply;

/// Which kind of listener the connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Port 25: mail from anywhere to here, relaying as the rules allow.
    Smtp,
    /// Port 587 (STARTTLS) or 465 (implicit TLS): users' clients, who
    /// must log in.
    Submission,
}

/// What the connection does after a command.
#[derive(Debug)]
pub enum Step {
    /// Read the next command.
    Continue,
    /// Send what is in `out`, then close.
    Close,
    /// STARTTLS was answered: do the handshake, then [`Session::tls_started`].
    StartTls,
    /// 354 was sent: read the message with this receiver, then call
    /// [`Session::data_received`].
    Data(DataReceiver),
    /// BDAT: read exactly `size` bytes, then call [`Session::chunk_received`].
    Chunk { size: usize, last: bool },
    /// AUTH continues: read one line, then call [`Session::auth_response`].
    AuthContinue,
    /// Ask the policy chain at `point` with these facts, then call
    /// [`Session::decided`].
    Decide(Point, Box<Facts>),
    /// Commit this message to the queue, then call [`Session::committed`].
    Commit(Box<Submission>),
}

/// An accepted message, for the queue.
#[derive(Debug)]
pub struct Submission {
    pub id: QueueId,
    pub envelope: Envelope,
    pub message: Vec<u8>,
    /// Keep it on hold (a stage said HOLD).
    pub hold: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthState {
    /// AUTH LOGIN: the user name is wanted next.
    LoginUser,
    /// AUTH LOGIN: the password, for this user.
    LoginPassword,
    /// AUTH PLAIN without an initial response.
    Plain,
}

/// A transaction from MAIL to the end of its message.
#[derive(Debug)]
struct Transaction {
    id: QueueId,
    sender: String,
    eight_bit: bool,
    smtputf8: bool,
    ret: Option<Return>,
    envid: Option<String>,
    recipients: Vec<Recipient>,
    chunks: Option<ChunkReceiver>,
    /// A BDAT chunk went past the size limit: the rest is read and dropped.
    too_big: bool,
    headers: Vec<String>,
    hold: bool,
    /// A policy said DISCARD: the message is taken and dropped.
    discard: bool,
    /// A policy said REDIRECT: the message goes there instead.
    redirect: Option<String>,
    /// When MAIL came: the time the message took to arrive is logged.
    started: std::time::Instant,
}

/// What [`Session::decided`] is to continue with.
#[derive(Debug)]
enum Pending {
    Connect,
    Helo {
        ehlo: bool,
        host: String,
    },
    Mail(Box<Transaction>),
    Rcpt(Recipient),
    /// The message, shared with the facts the chain is asked with (they
    /// are dropped before [`Session::decided`], so it is not copied).
    Data(Arc<Vec<u8>>),
}

pub struct Session {
    ctx: Arc<Context>,
    listener: Listener,
    client: IpAddr,
    client_name: String,
    tls: bool,
    helo: Option<String>,
    esmtp: bool,
    auth_user: Option<String>,
    auth: Option<(AuthState, String)>,
    transaction: Option<Transaction>,
    pending: Option<Pending>,
    errors: usize,
    permit: Option<Permit>,
    /// Wait this long before sending `out` (after a failed login).
    pause: Option<Duration>,
    /// Replies to send.
    pub out: Vec<u8>,
}

/// The text of the 354 reply.
const DATA_GO_AHEAD: &str = "End data with <CR><LF>.<CR><LF>";

impl Session {
    pub fn new(
        ctx: Arc<Context>,
        listener: Listener,
        client: IpAddr,
        client_name: String,
        tls: bool,
        permit: Option<Permit>,
    ) -> Session {
        Session {
            ctx,
            listener,
            client,
            client_name,
            tls,
            helo: None,
            esmtp: false,
            auth_user: None,
            auth: None,
            transaction: None,
            pending: None,
            errors: 0,
            permit,
            pause: None,
            out: Vec::new(),
        }
    }

    fn reply(&mut self, reply: Reply) {
        if reply.is_refusal() {
            self.errors += 1;
        }
        reply.write(&mut self.out);
    }

    fn say(&mut self, code: u16, status: [u16; 3], text: impl Into<String>) {
        self.reply(Reply::new(code, status, text));
    }

    /// How long to wait before sending `out`, once.
    pub fn take_pause(&mut self) -> Option<Duration> {
        self.pause.take()
    }

    pub fn tls_started(&mut self) {
        self.tls = true;
        // RFC 3207: everything from before the handshake is forgotten
        self.helo = None;
        self.esmtp = false;
        self.transaction = None;
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    fn hostname(&self) -> &str {
        &self.ctx.config.hostname
    }

    /// The client may relay: from mynetworks, or logged in.
    fn trusted(&self) -> bool {
        self.auth_user.is_some() || self.ctx.config.in_mynetworks(self.client)
    }

    fn facts(&self) -> Facts {
        Facts {
            client_addr: Some(self.client),
            client_name: self.client_name.clone(),
            helo: self.helo.clone().unwrap_or_default(),
            sender: self.transaction.as_ref().map(|t| t.sender.clone()),
            recipients: self
                .transaction
                .as_ref()
                .map(|t| t.recipients.iter().map(|r| r.address.clone()).collect())
                .unwrap_or_default(),
            auth_user: self.auth_user.clone(),
            trusted: self.trusted(),
            message: None,
        }
    }

    /// The greeting, after the connection's policy check.
    pub fn connect(&mut self) -> Step {
        if self.ctx.chain.is_empty() {
            return self.greet();
        }
        self.pending = Some(Pending::Connect);
        Step::Decide(Point::Connect, Box::new(self.facts()))
    }

    fn greet(&mut self) -> Step {
        let host = self.hostname().to_owned();
        self.reply(Reply::plain(220, format!("{host} ESMTP mailkit")));
        Step::Continue
    }

    /// Whether the client's errors reached the limit: 421 and close.
    fn too_many_errors(&mut self) -> Option<Step> {
        (self.errors >= self.ctx.config.hard_error_limit.get()).then(|| {
            let host = self.hostname().to_owned();
            self.reply(Reply::new(421, [4, 7, 0], format!("{host} Error: too many errors")));
            Step::Close
        })
    }

    /// Handles one command line (its CRLF or LF included).
    pub fn handle(&mut self, line: &[u8]) -> Step {
        let step = self.command(line);
        match step {
            Step::Continue => self.too_many_errors().unwrap_or(Step::Continue),
            other => other,
        }
    }

    fn command(&mut self, line: &[u8]) -> Step {
        if let Some(auth) = self.auth.take() {
            return self.auth_line(auth, line);
        }
        if line.contains(&0) {
            self.say(500, [5, 5, 2], "Error: bad syntax");
            return Step::Continue;
        }
        let mut bytes = line.iter();
        let request = match Request::parse(&mut bytes) {
            Ok(r) => r,
            Err(e) => return self.syntax_error(line, e),
        };
        match request {
            Request::Ehlo { host } => self.helo(host.as_ref(), true),
            Request::Helo { host } => self.helo(host.as_ref(), false),
            Request::Lhlo { .. } => {
                self.say(500, [5, 5, 1], "Error: command not recognized");
                Step::Continue
            }
            Request::StartTls => self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response.as_ref()),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Bdat { chunk_size, is_last } => self.bdat(chunk_size, is_last),
            Request::Rset => {
                self.transaction = None;
                self.say(250, [2, 0, 0], "Ok");
                Step::Continue
            }
            Request::Noop { .. } => {
                self.say(250, [2, 0, 0], "Ok");
                Step::Continue
            }
            Request::Quit => {
                self.say(221, [2, 0, 0], "Bye");
                Step::Close
            }
            Request::Vrfy { .. } => {
                self.say(502, [5, 5, 1], "VRFY command is disabled");
                Step::Continue
            }
            Request::Expn { .. } => {
                self.say(502, [5, 5, 1], "EXPN command is disabled");
                Step::Continue
            }
            Request::Help { .. } => {
                self.reply(Reply::new(
                    214,
                    [2, 0, 0],
                    "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP STARTTLS AUTH; see RFC 5321",
                ));
                Step::Continue
            }
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.say(502, [5, 5, 1], "Error: command not implemented");
                Step::Continue
            }
        }
    }

    fn syntax_error(&mut self, line: &[u8], e: smtp_proto::Error) -> Step {
        use smtp_proto::Error as E;
        let verb = String::from_utf8_lossy(
            line.split(|&b| b == b' ' || b == b'\r' || b == b'\n')
                .next()
                .unwrap_or(b""),
        )
        .to_ascii_uppercase();
        let reply = match e {
            E::UnknownCommand => Reply::new(500, [5, 5, 2], "Error: command not recognized"),
            E::InvalidSenderAddress => Reply::new(501, [5, 1, 7], "Bad sender address syntax"),
            E::InvalidRecipientAddress => Reply::new(501, [5, 1, 3], "Bad recipient address syntax"),
            E::SyntaxError { syntax } => Reply::new(501, [5, 5, 4], format!("Syntax: {syntax}")),
            E::InvalidParameter { param } => Reply::new(501, [5, 5, 4], format!("Bad {param} parameter")),
            E::UnsupportedParameter { param } => Reply::new(555, [5, 5, 4], format!("Unsupported option: {param}")),
            _ if verb == "HELO" || verb == "EHLO" => Reply::new(501, [5, 5, 4], format!("Syntax: {verb} hostname")),
            _ => Reply::new(500, [5, 5, 2], "Error: bad syntax"),
        };
        self.reply(reply);
        Step::Continue
    }

    fn helo(&mut self, host: &str, ehlo: bool) -> Step {
        if host.is_empty() || host.len() > 255 {
            self.say(501, [5, 5, 4], "Syntax: HELO hostname");
            return Step::Continue;
        }
        if self.ctx.chain.is_empty() {
            return self.helo_accepted(ehlo, host.to_owned());
        }
        self.pending = Some(Pending::Helo {
            ehlo,
            host: host.to_owned(),
        });
        let mut facts = self.facts();
        facts.helo = host.to_owned();
        Step::Decide(Point::Helo, Box::new(facts))
    }

    fn helo_accepted(&mut self, ehlo: bool, host: String) -> Step {
        self.helo = Some(host);
        self.esmtp = ehlo;
        self.transaction = None;
        let hostname = self.hostname().to_owned();
        if !ehlo {
            self.reply(Reply::plain(250, hostname));
            return Step::Continue;
        }
        let mut lines = vec![
            hostname,
            "PIPELINING".to_owned(),
            format!("SIZE {}", self.ctx.config.message_size_limit),
        ];
        if self.ctx.tls.is_some() && !self.tls {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.extend(
            ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"]
                .iter()
                .map(|s| (*s).to_owned()),
        );
        self.reply(Reply {
            code: 250,
            status: None,
            lines,
        });
        Step::Continue
    }

    /// AUTH is offered on the submission ports, under TLS or where the
    /// configuration allows passwords in the clear (loopback by default).
    fn auth_offered(&self) -> bool {
        self.listener == Listener::Submission
            && self.auth_user.is_none()
            && (self.tls || self.ctx.config.plaintext_auth.allows(self.client))
    }

    fn starttls(&mut self) -> Step {
        if self.tls {
            self.say(554, [5, 5, 1], "Error: TLS already active");
        } else if self.ctx.tls.is_none() {
            self.say(502, [5, 5, 1], "Error: command not implemented");
        } else {
            self.say(220, [2, 0, 0], "Ready to start TLS");
            return Step::StartTls;
        }
        Step::Continue
    }

    fn auth(&mut self, mechanism: u64, initial: &str) -> Step {
        if self.helo.is_none() || !self.esmtp {
            self.say(503, [5, 5, 1], "Error: send EHLO first");
        } else if self.auth_user.is_some() {
            self.say(503, [5, 5, 1], "Error: already authenticated");
        } else if self.transaction.is_some() {
            self.say(503, [5, 5, 1], "Error: MAIL transaction in progress");
        } else if !self.auth_offered() {
            self.say(503, [5, 5, 1], "Error: authentication not enabled");
        } else if mechanism == smtp_proto::AUTH_PLAIN {
            if initial.is_empty() {
                self.auth = Some((AuthState::Plain, String::new()));
                self.reply(Reply::plain(334, ""));
                return Step::AuthContinue;
            }
            return self.auth_plain(initial.as_bytes());
        } else if mechanism == smtp_proto::AUTH_LOGIN {
            if initial.is_empty() {
                self.auth = Some((AuthState::LoginUser, String::new()));
                self.reply(Reply::plain(334, "VXNlcm5hbWU6"));
            } else {
                let Some(user) = base64_decode(initial.as_bytes()) else {
                    self.say(501, [5, 5, 2], "Error: malformed response");
                    return Step::Continue;
                };
                self.auth = Some((AuthState::LoginPassword, String::from_utf8_lossy(&user).into_owned()));
                self.reply(Reply::plain(334, "UGFzc3dvcmQ6"));
            }
            return Step::AuthContinue;
        } else {
            self.say(535, [5, 7, 8], "Error: authentication failed: mechanism not supported");
        }
        Step::Continue
    }

    /// The client's answer to a 334 challenge.
    pub fn auth_response(&mut self, line: &[u8]) -> Step {
        let step = match self.auth.take() {
            Some(auth) => self.auth_line(auth, line),
            None => Step::Continue,
        };
        match step {
            Step::Continue => self.too_many_errors().unwrap_or(Step::Continue),
            other => other,
        }
    }

    fn auth_line(&mut self, (state, user): (AuthState, String), line: &[u8]) -> Step {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text == b"*" {
            self.say(501, [5, 7, 0], "Authentication aborted");
            return Step::Continue;
        }
        let Some(decoded) = base64_decode(text) else {
            self.say(501, [5, 5, 2], "Error: malformed response");
            return Step::Continue;
        };
        match state {
            AuthState::Plain => self.auth_plain_decoded(&decoded),
            AuthState::LoginUser => {
                self.auth = Some((AuthState::LoginPassword, String::from_utf8_lossy(&decoded).into_owned()));
                self.reply(Reply::plain(334, "UGFzc3dvcmQ6"));
                Step::AuthContinue
            }
            AuthState::LoginPassword => self.login(&user, &decoded),
        }
    }

    fn auth_plain(&mut self, encoded: &[u8]) -> Step {
        match base64_decode(encoded) {
            Some(decoded) => self.auth_plain_decoded(&decoded),
            None => {
                self.say(501, [5, 5, 2], "Error: malformed response");
                Step::Continue
            }
        }
    }

    fn auth_plain_decoded(&mut self, decoded: &[u8]) -> Step {
        match sasl_plain(decoded) {
            Some((name, password)) => self.login(&name, password),
            None => {
                self.say(501, [5, 5, 2], "Error: malformed PLAIN response");
                Step::Continue
            }
        }
    }

    fn login(&mut self, name: &str, password: &[u8]) -> Step {
        match self.ctx.auth.login(self.client, name, password) {
            Ok(user) => {
                if let Some(permit) = &mut self.permit {
                    let _ = permit.logged_in(&user.name);
                }
                tracing::info!(client = %self.client, user = %user.name, "AUTH succeeded");
                self.auth_user = Some(user.name);
                self.say(235, [2, 7, 0], "Authentication successful");
            }
            Err(e) => {
                tracing::warn!(client = %self.client, user = %name, "AUTH failed: {e}");
                self.pause = Some(self.ctx.auth.policy().failure_delay);
                match e {
                    LoginError::Unavailable(_) => self.say(454, [4, 7, 0], "Temporary authentication failure"),
                    LoginError::TooManyFailures => {
                        self.say(421, [4, 7, 0], "Too many failed logins from your address; try later");
                        return Step::Close;
                    }
                    LoginError::Rejected => self.say(535, [5, 7, 8], "Error: authentication failed"),
                }
            }
        }
        Step::Continue
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<std::borrow::Cow<'_, str>>) -> Step {
        if self.helo.is_none() {
            self.say(503, [5, 5, 1], "Error: send HELO/EHLO first");
            return Step::Continue;
        }
        if self.transaction.is_some() {
            self.say(503, [5, 5, 1], "Error: nested MAIL command");
            return Step::Continue;
        }
        if self.listener == Listener::Submission && self.auth_user.is_none() {
            if !self.auth_offered() && !self.tls && self.ctx.tls.is_some() {
                self.say(530, [5, 7, 0], "Must issue a STARTTLS command first");
            } else {
                self.say(530, [5, 7, 0], "Authentication required");
            }
            return Step::Continue;
        }
        let limit = self.ctx.config.message_size_limit.get();
        if from.size > limit {
            self.say(552, [5, 3, 4], "Message size exceeds fixed limit");
            return Step::Continue;
        }
        if !self.esmtp && (from.flags != 0 || from.size != 0 || from.env_id.is_some()) {
            self.say(555, [5, 5, 4], "Unsupported option: parameters need EHLO");
            return Step::Continue;
        }
        let sender = from.address.as_ref().to_owned();
        if !sender.is_empty() && !sender.contains('@') && !self.trusted() {
            self.say(
                553,
                [5, 1, 7],
                format!("<{sender}>: Sender address rejected: need fully-qualified address"),
            );
            return Step::Continue;
        }
        let transaction = Transaction {
            id: self.ctx.queue.new_id(),
            sender,
            eight_bit: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
            smtputf8: from.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
            ret: if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
                Some(Return::Full)
            } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
                Some(Return::Headers)
            } else {
                None
            },
            envid: from.env_id.map(|e| e.into_owned()),
            recipients: Vec::new(),
            chunks: None,
            too_big: false,
            headers: Vec::new(),
            hold: false,
            discard: false,
            redirect: None,
            started: std::time::Instant::now(),
        };
        if self.ctx.chain.is_empty() {
            return self.mail_accepted(transaction);
        }
        let mut facts = self.facts();
        facts.sender = Some(transaction.sender.clone());
        self.pending = Some(Pending::Mail(Box::new(transaction)));
        Step::Decide(Point::Mail, Box::new(facts))
    }

    fn mail_accepted(&mut self, transaction: Transaction) -> Step {
        self.transaction = Some(transaction);
        self.say(250, [2, 1, 0], "Ok");
        Step::Continue
    }

    fn rcpt(&mut self, to: smtp_proto::RcptTo<std::borrow::Cow<'_, str>>) -> Step {
        let Some(transaction) = &self.transaction else {
            self.say(503, [5, 5, 1], "Error: need MAIL command");
            return Step::Continue;
        };
        if transaction.recipients.len() >= self.ctx.config.recipient_limit.get() {
            // 452: the client sends the rest in another transaction
            self.reply(Reply::new(452, [4, 5, 3], "Error: too many recipients"));
            self.errors -= 1; // a limit, not the client's error
            return Step::Continue;
        }
        let address = to.address.as_ref().to_owned();
        let (local_part, domain) = match address.rsplit_once('@') {
            Some((l, d)) => (l.to_owned(), Some(d.to_owned())),
            None => (address.clone(), None),
        };
        let local = domain.as_deref().is_none_or(|d| self.ctx.config.is_local_domain(d));
        let local_user = if local {
            let name = local_part.to_ascii_lowercase();
            let name = if name == "postmaster" {
                self.ctx.config.postmaster.clone()
            } else {
                name
            };
            match lda::users::find_user(&self.ctx.delivery, &name) {
                Ok(user) => Some(user.name),
                Err(lda::users::UserError::NoSuchUser(_)) => {
                    self.reject(
                        "unknown_user",
                        Reply::new(
                            550,
                            [5, 1, 1],
                            format!("<{address}>: Recipient address rejected: User unknown in local recipient table"),
                        ),
                        Some(&address),
                    );
                    return Step::Continue;
                }
                Err(e) => {
                    tracing::error!("recipient lookup: {e}");
                    self.reply(Reply::new(
                        451,
                        [4, 3, 0],
                        format!("<{address}>: Temporary lookup failure"),
                    ));
                    return Step::Continue;
                }
            }
        } else if self.trusted() {
            None
        } else {
            self.reject(
                "relay_denied",
                Reply::new(554, [5, 7, 1], format!("<{address}>: Relay access denied")),
                Some(&address),
            );
            return Step::Continue;
        };
        let notify = Notify {
            success: to.flags & smtp_proto::RCPT_NOTIFY_SUCCESS != 0,
            failure: to.flags & smtp_proto::RCPT_NOTIFY_FAILURE != 0,
            delay: to.flags & smtp_proto::RCPT_NOTIFY_DELAY != 0,
            never: to.flags & smtp_proto::RCPT_NOTIFY_NEVER != 0,
            given: to.flags
                & (smtp_proto::RCPT_NOTIFY_SUCCESS
                    | smtp_proto::RCPT_NOTIFY_FAILURE
                    | smtp_proto::RCPT_NOTIFY_DELAY
                    | smtp_proto::RCPT_NOTIFY_NEVER)
                != 0,
        };
        let recipient = Recipient {
            address,
            local_user,
            notify,
            orcpt: to.orcpt.map(|o| o.into_owned()),
        };
        if self.ctx.chain.is_empty() {
            return self.rcpt_accepted(recipient);
        }
        let mut facts = self.facts();
        facts.recipients.push(recipient.address.clone());
        self.pending = Some(Pending::Rcpt(recipient));
        Step::Decide(Point::Rcpt, Box::new(facts))
    }

    fn rcpt_accepted(&mut self, recipient: Recipient) -> Step {
        if let Some(t) = &mut self.transaction {
            t.recipients.push(recipient);
            self.say(250, [2, 1, 5], "Ok");
        }
        Step::Continue
    }

    /// A refusal, logged with its cause for the site's figures and with
    /// the recipients it stopped (`recipient` at RCPT; at DATA every
    /// recipient of the transaction), for `mtad refused`. The site's
    /// `reject_footer` (Postfix's `smtpd_reject_footer`) ends the reply.
    fn reject(&mut self, cause: &str, mut reply: Reply, recipient: Option<&str>) {
        let (sender, to) = match &self.transaction {
            Some(t) => (
                format!("<{}>", t.sender),
                match recipient {
                    Some(r) => format!("<{r}>"),
                    None => t
                        .recipients
                        .iter()
                        .map(|r| format!("<{}>", r.address))
                        .collect::<Vec<_>>()
                        .join(","),
                },
            ),
            None => (String::new(), recipient.map(|r| format!("<{r}>")).unwrap_or_default()),
        };
        tracing::info!(
            event = "reject",
            cause,
            client = %self.client,
            client_name = %self.client_name,
            helo = self.helo.as_deref().unwrap_or(""),
            from = %sender,
            to = %to,
            reply = %reply.one_line(),
            "refused"
        );
        if let Some(footer) = &self.ctx.config.reject_footer {
            // a newline, or Postfix's `\n` written out, starts a line
            reply
                .lines
                .extend(footer.replace("\\n", "\n").lines().map(str::to_owned));
        }
        self.reply(reply);
    }

    fn data(&mut self) -> Step {
        let Some(t) = &self.transaction else {
            self.say(503, [5, 5, 1], "Error: need RCPT command");
            return Step::Continue;
        };
        if t.recipients.is_empty() {
            self.say(554, [5, 5, 1], "Error: no valid recipients");
            return Step::Continue;
        }
        if t.chunks.is_some() {
            self.say(503, [5, 5, 1], "Error: DATA after BDAT");
            return Step::Continue;
        }
        self.reply(Reply::plain(354, DATA_GO_AHEAD));
        Step::Data(DataReceiver::new(
            self.ctx.config.message_size_limit.get(),
            self.bare_newline(),
        ))
    }

    fn bare_newline(&self) -> BareNewline {
        match self.ctx.config.bare_newline {
            crate::config::BareNewlinePolicy::Normalize => BareNewline::Normalize,
            crate::config::BareNewlinePolicy::Reject => BareNewline::Reject,
        }
    }

    fn bdat(&mut self, size: usize, last: bool) -> Step {
        let limit = self.ctx.config.message_size_limit.get();
        let bare = self.bare_newline();
        match &mut self.transaction {
            Some(t) if !t.recipients.is_empty() => {
                let chunks = t.chunks.get_or_insert_with(|| ChunkReceiver::new(limit, bare));
                if chunks.would_exceed(size) {
                    t.too_big = true;
                }
            }
            _ => {}
        }
        // the chunk is read whatever happens: it is on its way
        Step::Chunk { size, last }
    }

    /// A BDAT chunk's bytes.
    pub fn chunk_received(&mut self, bytes: &[u8], last: bool) -> Step {
        let Some(t) = &mut self.transaction else {
            self.say(503, [5, 5, 1], "Error: need MAIL command");
            return Step::Continue;
        };
        if t.recipients.is_empty() {
            self.say(554, [5, 5, 1], "Error: no valid recipients");
            self.transaction = None;
            return Step::Continue;
        }
        if t.too_big {
            self.transaction = None;
            self.say(552, [5, 3, 4], "Message size exceeds fixed limit");
            return Step::Continue;
        }
        let chunks = t.chunks.as_mut().expect("set by bdat");
        chunks.add(bytes);
        if !last {
            let n = bytes.len();
            self.say(250, [2, 0, 0], format!("Ok: {n} bytes"));
            return Step::Continue;
        }
        let chunks = t.chunks.take().expect("set by bdat");
        self.message_received(chunks.finish())
    }

    /// The message after DATA (the receiver's result).
    pub fn data_received(&mut self, result: Result<Vec<u8>, DataError>) -> Step {
        self.message_received(result)
    }

    fn message_received(&mut self, result: Result<Vec<u8>, DataError>) -> Step {
        let message = match result {
            Ok(m) => m,
            Err(DataError::TooBig) => {
                self.transaction = None;
                self.say(552, [5, 3, 4], "Message size exceeds fixed limit");
                return Step::Continue;
            }
            Err(DataError::BareNewline) => {
                self.transaction = None;
                self.say(550, [5, 5, 2], "Error: bare <LF> received");
                return Step::Close;
            }
        };
        if self.ctx.chain.is_empty() {
            return self.commit(message);
        }
        let mut facts = self.facts();
        let message = Arc::new(message);
        facts.message = Some(message.clone());
        self.pending = Some(Pending::Data(message));
        Step::Decide(Point::Data, Box::new(facts))
    }

    /// The policy chain's decision for what [`Step::Decide`] asked.
    pub fn decided(&mut self, decision: Decision) -> Step {
        let Some(pending) = self.pending.take() else {
            return Step::Continue;
        };
        if let Some((stage, reply)) = decision.reject {
            let close = matches!(pending, Pending::Connect) || reply.code == 421;
            let recipient = match &pending {
                Pending::Rcpt(r) => Some(r.address.as_str()),
                _ => None,
            };
            self.reject(&stage, reply, recipient);
            if matches!(pending, Pending::Data(_)) {
                self.transaction = None;
            }
            return if close { Step::Close } else { Step::Continue };
        }
        match pending {
            Pending::Connect => self.greet(),
            Pending::Helo { ehlo, host } => self.helo_accepted(ehlo, host),
            Pending::Mail(t) => self.mail_accepted(*t),
            Pending::Rcpt(r) => {
                self.take_effects(&decision);
                self.rcpt_accepted(r)
            }
            Pending::Data(message) => {
                self.take_effects(&decision);
                self.commit(
                    decision
                        .message
                        .unwrap_or_else(|| Arc::try_unwrap(message).unwrap_or_else(|m| (*m).clone())),
                )
            }
        }
    }

    /// What a decision that let the command through asks of the
    /// transaction: hold, discard, redirect, header fields to add.
    fn take_effects(&mut self, decision: &Decision) {
        if let Some(t) = &mut self.transaction {
            t.hold |= decision.hold;
            t.discard |= decision.discard;
            t.headers.extend(decision.headers.iter().cloned());
            if decision.redirect.is_some() {
                t.redirect.clone_from(&decision.redirect);
            }
        }
    }

    /// The recipient a REDIRECT names, resolved as RCPT resolves one; None
    /// (with an error logged) when it is a local address without a user.
    fn redirect_recipient(&self, address: &str) -> Option<Recipient> {
        let local = address
            .rsplit_once('@')
            .is_none_or(|(_, d)| self.ctx.config.is_local_domain(d));
        if !local {
            return Some(Recipient::new(address, None));
        }
        let name = address.split('@').next().unwrap_or(address).to_ascii_lowercase();
        match lda::users::find_user(&self.ctx.delivery, &name) {
            Ok(user) => Some(Recipient::new(address, Some(&user.name))),
            Err(e) => {
                tracing::error!(redirect = %address, "REDIRECT to a local address without a user ({e}): the recipients are kept");
                None
            }
        }
    }

    fn protocol(&self) -> &'static str {
        match (self.esmtp, self.tls, self.auth_user.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        }
    }

    /// The message with our Received header (and the policy's headers)
    /// in front, for the queue.
    fn commit(&mut self, message: Vec<u8>) -> Step {
        let Some(mut t) = self.transaction.take() else {
            return Step::Continue;
        };
        if t.discard {
            tracing::info!(event = "discard", queue_id = %t.id, client = %self.client, from = %t.sender, "discarded by policy");
            self.say(250, [2, 0, 0], format!("Ok: queued as {}", t.id));
            return Step::Continue;
        }
        if let Some(to) = t.redirect.take()
            && let Some(recipient) = self.redirect_recipient(&to)
        {
            tracing::info!(event = "redirect", queue_id = %t.id, to = %to, "redirected by policy");
            t.recipients = vec![recipient];
        }
        let helo = self.helo.clone().unwrap_or_default();
        let now = SystemTime::now();
        let for_clause = match t.recipients.as_slice() {
            [one] => format!("\n\tfor <{}>", one.address),
            _ => String::new(),
        };
        let mut head = format!(
            "Received: from {helo} ({} [{}])\n\tby {} (mailkit) with {} id {}{for_clause};\n\t{}\n",
            self.client_name,
            self.client,
            self.hostname(),
            self.protocol(),
            t.id,
            rfc5322_date(now),
        );
        for h in &t.headers {
            head.push_str(h.trim_end());
            head.push('\n');
        }
        let mut full = head.into_bytes();
        full.extend_from_slice(&message);
        let envelope = Envelope {
            sender: t.sender,
            recipients: t.recipients,
            client_name: self.client_name.clone(),
            client_addr: self.client,
            helo,
            protocol: self.protocol().to_owned(),
            auth_user: self.auth_user.clone(),
            ret: t.ret,
            envid: t.envid,
            eight_bit: t.eight_bit,
            smtputf8: t.smtputf8,
            arrival: now,
            receiving: t.started.elapsed(),
        };
        Step::Commit(Box::new(Submission {
            id: t.id,
            envelope,
            message: full,
            hold: t.hold,
        }))
    }

    /// The queue's answer for a [`Step::Commit`].
    pub fn committed(&mut self, id: &str, result: std::io::Result<()>) {
        match result {
            Ok(()) => self.say(250, [2, 0, 0], format!("Ok: queued as {id}")),
            Err(e) => {
                tracing::error!(queue_id = %id, "queue file write error: {e}");
                self.say(451, [4, 3, 0], "Error: queue file write error");
            }
        }
    }

    /// The 421 for a client that went silent.
    pub fn timeout(&mut self) {
        let host = self.hostname().to_owned();
        self.reply(Reply::new(421, [4, 4, 2], format!("{host} Error: timeout exceeded")));
    }

    /// The 421 for a server shutting down.
    pub fn shutting_down(&mut self) {
        let host = self.hostname().to_owned();
        self.reply(Reply::new(
            421,
            [4, 3, 2],
            format!("{host} Service shutting down, closing transmission channel"),
        ));
    }

    /// The answer to a line over the limit.
    pub fn line_too_long(&mut self) {
        self.say(500, [5, 5, 2], "Error: line too long");
    }

    /// What the server's pregreet check found: the client spoke first.
    pub fn pregreet(&mut self) {
        self.reject(
            "pregreet",
            Reply::new(
                554,
                [5, 5, 1],
                "Error: protocol error: command sent before the greeting",
            ),
            None,
        );
    }
}

/// `Tue, 01 Dec 2026 22:41:00 +0000`.
pub fn rfc5322_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = bsfilter::time::UtcTime::from_unix(time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[t.weekday as usize],
        t.day,
        MONTHS[(t.month - 1) as usize],
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}
