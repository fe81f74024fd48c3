//! One IMAP connection's state and its commands.

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bsfilter::store::Class;
use daemon::auth::{LoginError, base64_decode, sasl_plain};
use daemon::limits::Permit;
use imap_codec::CommandCodec;
use imap_codec::decode::{CommandDecodeError, Decoder};
use imap_types::auth::AuthMechanism;
use imap_types::bounded_static::IntoBoundedStatic;
use imap_types::command::{Command, CommandBody};
use imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
use imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_types::mailbox::{ListMailbox, Mailbox};
use imap_types::search::SearchKey;
use imap_types::sequence::SequenceSet;
use imap_types::status::StatusDataItemName;
use lda::dir::{Kind, MboxPath};
use lda::folders::{self, Layout};
use lda::users::User;

use super::append;
use super::extended::{self, Extended, Return};
use super::fetch::{self, View};
use super::list::{self, ListExtended};
use super::modifiers::{self, Modifiers, Qresync};
use super::pattern;
use super::search::{self, Scope};
use super::sequence::{compact, positions};
use super::sort::{self, Facts};
use super::thread;
use super::uidkeys;
use super::utf8;
use crate::Context;
use crate::mailbox::{self, DELETED, Folder, FolderError, Message, SEEN, Stamp};
use crate::training::Lesson;
use crate::wire;

/// What the connection does after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Continue,
    /// Close the connection (after LOGOUT, or too many errors).
    Close,
    /// IDLE: send the continuation, then poll until `DONE`.
    Idle,
    /// AUTHENTICATE without an initial response: send `+ ` and pass the
    /// client's next line to [`Session::authenticate_response`].
    AuthenticateContinue,
    /// STARTTLS accepted: do the handshake, then [`Session::tls_started`].
    StartTls,
    /// COMPRESS accepted (its OK sent plain): deflate both ways from here.
    Compress,
}

struct Selected {
    name: String,
    path: MboxPath,
    read_only: bool,
    folder: Arc<Folder>,
    /// UIDs that are `\Recent` in this session.
    recent: HashSet<u32>,
    /// Keywords announced in FLAGS (a client learns of new ones before
    /// they appear in a FETCH).
    keywords: Vec<String>,
    /// The view still holds messages another session expunged, not yet
    /// reported.
    holds_expunged: bool,
}

pub struct Session {
    ctx: Arc<Context>,
    client: IpAddr,
    /// The connection is encrypted (implicit TLS or after STARTTLS).
    secure: bool,
    user: Option<(User, Layout)>,
    selected: Option<Selected>,
    /// Tag of the command waiting for a continuation (IDLE, AUTHENTICATE).
    pending_tag: String,
    /// Responses to send.
    pub out: Vec<u8>,
    bad_commands: u32,
    /// This connection's place under the server's caps (none in tests
    /// that drive a session directly).
    permit: Option<Permit>,
    /// How long to wait before sending `out` (after a failed login).
    pause: Option<Duration>,
    /// A FETCH whose responses are still to be written.
    pending_fetch: Option<PendingFetch>,
    /// CONDSTORE is on (ENABLE, or any command that uses it: RFC 7162
    /// §3.1): every FETCH with FLAGS carries MODSEQ.
    condstore: bool,
    /// QRESYNC is on (ENABLE QRESYNC): expunges are told as VANISHED.
    qresync: bool,
    /// The CONDSTORE modifiers of the command being run.
    modifiers: Option<Modifiers>,
    /// SEARCHRES's saved result (`$`), as UIDs.
    saved: Vec<u32>,
    /// The search being run has a MODSEQ key.
    search_modseq: bool,
    /// UTF8=ACCEPT is on: mailbox names are UTF-8 both ways.
    utf8: bool,
    /// IMAP4rev2 enabled (RFC 9051): no \Recent or RECENT, SEARCH answered
    /// by ESEARCH, SELECT without UNSEEN and with the mailbox's LIST,
    /// mailbox names in UTF-8.
    rev2: bool,
    /// COMPRESS=DEFLATE is active.
    compressed: bool,
}

/// The rest of a FETCH: written a few messages at a time, as the client
/// reads them, so that its size in memory is one message's, not the
/// whole answer's.
struct PendingFetch {
    tag: String,
    items: Vec<MessageDataItemName<'static>>,
    targets: VecDeque<usize>,
    /// Each answer carries `MODSEQ (n)`.
    modseq: bool,
    /// BINARY items, written after the others.
    binary: Vec<modifiers::Binary>,
}

/// Output gathered before the server writes it, during a long FETCH.
const FETCH_CHUNK: usize = 256 * 1024;
/// Data items one FETCH may name (after duplicates are dropped).
const MAX_FETCH_ITEMS: usize = 64;

/// Commands answered BAD this many times in a row close the connection.
const MAX_BAD_COMMANDS: u32 = 20;

const FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk $NotJunk";

impl Session {
    pub fn new(ctx: Arc<Context>, client: IpAddr, secure: bool, permit: Option<Permit>) -> Session {
        Session {
            ctx,
            client,
            secure,
            user: None,
            selected: None,
            pending_tag: String::new(),
            out: Vec::new(),
            bad_commands: 0,
            permit,
            pause: None,
            pending_fetch: None,
            condstore: false,
            qresync: false,
            modifiers: None,
            saved: Vec::new(),
            search_modseq: false,
            utf8: false,
            rev2: false,
            compressed: false,
        }
    }

    /// The selected mailbox's file, for IDLE to watch.
    pub fn selected_file(&self) -> Option<std::path::PathBuf> {
        self.selected.as_ref().map(|s| s.path.full())
    }

    pub fn is_authenticated(&self) -> bool {
        self.user.is_some()
    }

    /// How long to wait before sending what is in `out`, once.
    pub fn take_pause(&mut self) -> Option<Duration> {
        self.pause.take()
    }

    /// Whether a command's responses are not all in `out` yet: call
    /// [`Session::continue_output`] once `out` is sent.
    pub fn has_more_output(&self) -> bool {
        self.pending_fetch.is_some()
    }

    pub fn greeting(&mut self) {
        let caps = self.capabilities();
        self.untagged(&format!("OK [CAPABILITY {caps}] mailkit imapd ready."));
    }

    /// The TLS handshake after STARTTLS succeeded.
    pub fn tls_started(&mut self) {
        self.secure = true;
    }

    /// May a password be sent here: over TLS, or where the configuration
    /// allows it in the clear.
    fn plaintext_allowed(&self) -> bool {
        self.secure || self.ctx.imapd.plaintext_auth.allows(self.client)
    }

    fn capabilities(&self) -> String {
        let mut caps = String::from(
            "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE MOVE UIDPLUS NAMESPACE UNSELECT SPECIAL-USE CHILDREN \
             ESEARCH SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES CONDSTORE QRESYNC STATUS=SIZE WITHIN ESORT SEARCHRES LIST-EXTENDED LIST-STATUS CREATE-SPECIAL-USE MULTIAPPEND CATENATE UTF8=ACCEPT BINARY QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE",
        );
        if self.user.is_some() && !self.compressed {
            caps.push_str(" COMPRESS=DEFLATE");
        }
        if self.user.is_none() {
            if self.ctx.tls.is_some() && !self.secure {
                caps.push_str(" STARTTLS");
            }
            if self.plaintext_allowed() {
                caps.push_str(" AUTH=PLAIN");
            } else {
                caps.push_str(" LOGINDISABLED");
            }
        }
        caps
    }

    fn untagged(&mut self, text: &str) {
        self.out.extend_from_slice(b"* ");
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn tagged(&mut self, tag: &str, text: &str) {
        self.out.extend_from_slice(tag.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// Handles one complete command line (with its literals).
    pub fn handle(&mut self, input: &[u8]) -> Step {
        // a caller that did not take all of the last answer gets it first
        while self.has_more_output() {
            self.continue_output();
        }
        let tag = tag_of(input);
        if let Some(step) = self.handle_unparsed(&tag, input) {
            return step;
        }
        let rewritten;
        let saved_set = self
            .selected
            .as_ref()
            .and_then(|sel| uidkeys::saved_set(input, &self.saved, &sel.folder.messages));
        let input = match saved_set {
            Some(uidkeys::SavedSet::Empty) => {
                self.tagged(&tag, "OK No messages in the saved result.");
                return Step::Continue;
            }
            Some(uidkeys::SavedSet::Command(command)) => {
                rewritten = command;
                &rewritten[..]
            }
            None => input,
        };
        let keys;
        self.search_modseq = false;
        let input = match self.uid_keys(input) {
            Some(replaced) => {
                // (a MODSEQ key turns CONDSTORE on, as its other commands do)
                self.search_modseq = replaced.modseq;
                self.condstore |= replaced.modseq;
                keys = replaced.input;
                &keys[..]
            }
            None => input,
        };
        if let Some(parsed) = extended::parse(input, self.rev2) {
            self.bad_commands = 0;
            return self.extended(&tag, parsed);
        }
        if let Some(parsed) = append::parse(input) {
            return match parsed {
                Err(e) => self.bad(&tag, &format!("{e}.")),
                Ok(taken_apart) => {
                    self.bad_commands = 0;
                    self.append_taken_apart(&tag, input, &taken_apart)
                }
            };
        }
        if let Some(parsed) = list::parse(input) {
            self.bad_commands = 0;
            match parsed {
                Err(e) => return self.bad(&tag, &format!("{e}.")),
                Ok(_) if self.user.is_none() => self.tagged(&tag, "BAD Log in first."),
                Ok(command) => self.list_extended(&tag, command),
            }
            return Step::Continue;
        }
        if let Some(parsed) = modifiers::parse(input) {
            let modified = match parsed {
                Ok(m) => m,
                Err(e) => return self.bad(&tag, &format!("{e}.")),
            };
            let literals = utf8::quoted_to_literals(&modified.input);
            let Ok((_, command)) = CommandCodec::default().decode(literals.as_deref().unwrap_or(&modified.input))
            else {
                return self.bad(&tag, "Syntax error in command.");
            };
            self.bad_commands = 0;
            // (a CONDSTORE modifier turns CONDSTORE on: RFC 7162 §3.1)
            if self.user.is_some() && !matches!(modified.modifiers, Modifiers::StatusSize | Modifiers::CreateUse(_)) {
                self.condstore = true;
            }
            self.modifiers = Some(modified.modifiers);
            let step = self.dispatch(command);
            self.modifiers = None;
            return step;
        }
        // (UTF8=ACCEPT's 8-bit quoted strings as literals, for imap-codec)
        let literals = utf8::quoted_to_literals(input);
        let command = match CommandCodec::default().decode(literals.as_deref().unwrap_or(input)) {
            Ok((_, command)) => command,
            Err(CommandDecodeError::Failed | CommandDecodeError::Incomplete) => {
                return self.bad(&tag, "Syntax error in command.");
            }
            Err(CommandDecodeError::LiteralFound { .. }) => {
                return self.bad(&tag, "Literal without its data.");
            }
        };
        self.bad_commands = 0;
        self.dispatch(command)
    }

    /// A SEARCH, SORT or THREAD of the selected mailbox with its WITHIN
    /// and SEARCHRES keys replaced ([`uidkeys`]), or None.
    fn uid_keys(&self, input: &[u8]) -> Option<uidkeys::Rewritten> {
        let sel = self.selected.as_ref()?;
        let head = String::from_utf8_lossy(&input[..input.len().min(64)]).to_ascii_uppercase();
        let mut words = head.split(' ').skip(1);
        let command = match words.next()? {
            "UID" => words.next()?,
            other => other,
        };
        if !matches!(command, "SEARCH" | "SORT" | "THREAD") {
            return None;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        uidkeys::rewrite(input, &sel.folder.messages, now, &self.saved)
    }

    fn bad(&mut self, tag: &str, text: &str) -> Step {
        self.tagged(tag, &format!("BAD {text}"));
        self.bad_commands += 1;
        if self.bad_commands >= MAX_BAD_COMMANDS {
            self.untagged("BYE Too many invalid commands.");
            return Step::Close;
        }
        Step::Continue
    }

    /// Commands imap-codec 1.0 does not parse: NAMESPACE, ID, UID EXPUNGE.
    fn handle_unparsed(&mut self, tag: &str, input: &[u8]) -> Option<Step> {
        let line = String::from_utf8_lossy(input);
        let mut words = line.split_whitespace().skip(1);
        let first = words.next()?.to_ascii_uppercase();
        match first.as_str() {
            "NAMESPACE" if self.user.is_some() => {
                self.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
                self.tagged(tag, "OK Namespace completed.");
            }
            "ID" => {
                self.untagged("ID (\"name\" \"mailkit imapd\")");
                self.tagged(tag, "OK ID completed.");
            }
            "UID" if words.next().is_some_and(|w| w.eq_ignore_ascii_case("EXPUNGE")) && self.selected.is_some() => {
                match SequenceSet::try_from(words.next().unwrap_or_default()) {
                    Ok(set) => self.expunge(tag, Some(&set)),
                    Err(_) => return Some(self.bad(tag, "UID EXPUNGE needs a UID set.")),
                }
            }
            _ => return None,
        }
        Some(Step::Continue)
    }

    fn dispatch(&mut self, command: Command<'_>) -> Step {
        let tag = command.tag.inner().to_owned();
        let tag = tag.as_str();
        let authenticated = self.user.is_some();
        let selected = self.selected.is_some();
        match command.body {
            CommandBody::Capability => {
                let caps = self.capabilities();
                self.untagged(&format!("CAPABILITY {caps}"));
                self.tagged(tag, "OK Capability completed.");
            }
            CommandBody::Noop | CommandBody::Check => {
                self.refresh(true);
                self.tagged(tag, "OK Completed.");
            }
            CommandBody::Logout => {
                self.untagged("BYE Logging out.");
                self.tagged(tag, "OK Logout completed.");
                return Step::Close;
            }
            CommandBody::StartTLS if self.secure => self.tagged(tag, "BAD TLS is already active."),
            CommandBody::StartTLS if self.ctx.tls.is_none() => {
                self.tagged(tag, "NO [UNAVAILABLE] TLS is not configured on this server.")
            }
            CommandBody::StartTLS if authenticated => self.tagged(tag, "BAD Already logged in."),
            CommandBody::StartTLS if self.compressed => self.tagged(tag, "BAD TLS cannot start under COMPRESS."),
            CommandBody::StartTLS => {
                self.tagged(tag, "OK Begin TLS negotiation now.");
                return Step::StartTls;
            }
            CommandBody::Login { username, password } if !authenticated => {
                if !self.plaintext_allowed() {
                    self.tagged(tag, "NO [PRIVACYREQUIRED] Plaintext logins are disabled here.");
                } else {
                    let name = String::from_utf8_lossy(username.as_ref()).into_owned();
                    self.login(tag, &name, password.declassify().as_ref());
                }
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } if !authenticated => {
                if !matches!(mechanism, AuthMechanism::Plain) {
                    self.tagged(tag, "NO [CANNOT] Only AUTHENTICATE PLAIN is supported.");
                } else if !self.plaintext_allowed() {
                    self.tagged(tag, "NO [PRIVACYREQUIRED] Plaintext logins are disabled here.");
                } else if let Some(response) = initial_response {
                    self.authenticate_plain(tag, response.declassify());
                } else {
                    self.pending_tag = tag.to_owned();
                    return Step::AuthenticateContinue;
                }
            }
            CommandBody::Login { .. } | CommandBody::Authenticate { .. } => {
                self.tagged(tag, "BAD Already logged in.");
            }
            _ if !authenticated => self.tagged(tag, "BAD Log in first."),
            CommandBody::Select { mailbox } => self.select(tag, &mailbox, false),
            CommandBody::Examine { mailbox } => self.select(tag, &mailbox, true),
            CommandBody::Create { mailbox } => self.create(tag, &mailbox),
            CommandBody::Delete { mailbox } => self.delete(tag, &mailbox),
            CommandBody::Rename { from, to } => self.rename(tag, &from, &to),
            CommandBody::Subscribe { mailbox } => self.subscribe(tag, &mailbox, true),
            CommandBody::Unsubscribe { mailbox } => self.subscribe(tag, &mailbox, false),
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => self.list(tag, &reference, &mailbox_wildcard, false),
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(tag, &reference, &mailbox_wildcard, true),
            CommandBody::Status { mailbox, item_names } => self.status(tag, &mailbox, &item_names),
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                let message = Appended {
                    flags,
                    date: date.map(|d| d.as_ref().timestamp()),
                    message: std::borrow::Cow::Borrowed(message.as_ref()),
                };
                self.append(tag, &mailbox, &[message]);
            }
            CommandBody::GetQuotaRoot { mailbox } => self.get_quota_root(tag, &mailbox),
            CommandBody::GetQuota { root } => {
                if root.as_ref().is_empty() && self.quota().is_some() {
                    let line = self.quota_line();
                    self.untagged(&line);
                    self.tagged(tag, "OK Getquota completed.");
                } else {
                    self.tagged(tag, "NO [NONEXISTENT] No such quota root.");
                }
            }
            CommandBody::SetQuota { .. } => {
                self.tagged(tag, "NO [CANNOT] Quotas are set in the user table (userdb_quota_rule).")
            }
            CommandBody::Enable { capabilities } => {
                let mut enabled = Vec::new();
                for name in capabilities.as_ref().iter().map(|c| c.to_string().to_ascii_uppercase()) {
                    match name.as_str() {
                        "CONDSTORE" if !self.condstore => self.condstore = true,
                        "QRESYNC" if !self.qresync => (self.condstore, self.qresync) = (true, true),
                        "UTF8=ACCEPT" if !self.utf8 => self.utf8 = true,
                        // (its mailbox names are UTF-8, as UTF8=ACCEPT's)
                        "IMAP4REV2" if !self.rev2 => (self.rev2, self.utf8) = (true, true),
                        _ => continue,
                    }
                    enabled.push(if name == "IMAP4REV2" {
                        "IMAP4rev2".to_owned()
                    } else {
                        name
                    });
                }
                let line = std::iter::once("ENABLED".to_owned()).chain(enabled).collect::<Vec<_>>();
                self.untagged(&line.join(" "));
                self.tagged(tag, "OK Enabled.");
            }
            CommandBody::Compress { .. } if self.compressed => {
                self.tagged(tag, "NO [COMPRESSIONACTIVE] DEFLATE is already active.")
            }
            CommandBody::Compress { .. } => {
                self.compressed = true;
                self.tagged(tag, "OK DEFLATE active.");
                return Step::Compress;
            }
            CommandBody::Idle => {
                self.pending_tag = tag.to_owned();
                self.refresh(true);
                return Step::Idle;
            }
            _ if !selected => self.tagged(tag, "BAD Select a mailbox first."),
            CommandBody::Close => {
                // (or the file changed: another session may have set \Deleted)
                let deleted = |s: &Selected| {
                    s.folder.messages.iter().any(|m| m.has(DELETED)) || Stamp::of(&s.path) != Some(s.folder.stamp)
                };
                if self.selected.as_ref().is_some_and(|s| !s.read_only && deleted(s)) {
                    self.expunge_silently();
                }
                self.leave();
                self.tagged(tag, "OK Close completed.");
            }
            CommandBody::Unselect => {
                self.leave();
                self.tagged(tag, "OK Unselect completed.");
            }
            CommandBody::Expunge => self.expunge(tag, None),
            CommandBody::Search { charset, criteria, uid } => {
                self.refresh(uid);
                let charset = charset.map(|c| c.as_ref().to_ascii_uppercase());
                self.search(tag, charset.as_deref(), &criteria, uid);
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
            } => {
                self.refresh(uid);
                self.fetch(tag, &sequence_set, macro_or_item_names, uid);
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
            } => {
                self.refresh(uid);
                self.store(tag, &sequence_set, kind, response, &flags, uid);
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => {
                self.refresh(uid);
                self.copy(tag, &sequence_set, &mailbox, uid, false);
            }
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => {
                self.refresh(uid);
                self.copy(tag, &sequence_set, &mailbox, uid, true);
            }
        }
        Step::Continue
    }

    // ----- authentication -----

    fn login(&mut self, tag: &str, name: &str, password: &[u8]) {
        match self.ctx.auth.login(self.client, name, password) {
            Ok(user) => {
                if let Some(permit) = &mut self.permit
                    && permit.logged_in(&user.name).is_err()
                {
                    tracing::warn!(user = %user.name, client = %self.client, "login refused: too many connections");
                    return self.tagged(
                        tag,
                        "NO [LIMIT] Too many connections for this user from your address; close some first.",
                    );
                }
                tracing::info!(event = "login", service = "imap", client = %self.client, user = ?user.name, "logged in");
                let layout = Layout::of(&user, &self.ctx.config);
                self.user = Some((user, layout));
                let caps = self.capabilities();
                self.tagged(tag, &format!("OK [CAPABILITY {caps}] Logged in."));
            }
            Err(LoginError::Rejected) => {
                tracing::warn!(user = %name, client = %self.client, "login failed");
                self.pause = Some(self.ctx.auth.policy().failure_delay);
                self.tagged(tag, "NO [AUTHENTICATIONFAILED] Authentication failed.");
            }
            Err(LoginError::TooManyFailures) => {
                tracing::warn!(user = %name, client = %self.client, "login refused: too many failures");
                self.pause = Some(self.ctx.auth.policy().failure_delay);
                self.tagged(
                    tag,
                    "NO [UNAVAILABLE] Too many failed logins from your address; try later.",
                );
            }
            Err(LoginError::Unavailable(e)) => {
                tracing::error!("user table: {e}");
                self.tagged(tag, "NO [UNAVAILABLE] Authentication is temporarily unavailable.");
            }
        }
    }

    /// `authzid NUL authcid NUL password`.
    fn authenticate_plain(&mut self, tag: &str, data: &[u8]) {
        match sasl_plain(data) {
            Some((name, password)) => self.login(tag, &name, password),
            None => self.tagged(tag, "BAD Malformed PLAIN response."),
        }
    }

    /// The client's answer to AUTHENTICATE's `+ ` (base64, or `*` to cancel).
    pub fn authenticate_response(&mut self, line: &[u8]) {
        let tag = std::mem::take(&mut self.pending_tag);
        let line = trim_crlf(line);
        if line == b"*" {
            self.tagged(&tag, "BAD Authentication cancelled.");
            return;
        }
        match base64_decode(line) {
            Some(data) => self.authenticate_plain(&tag, &data),
            None => self.tagged(&tag, "BAD Invalid base64."),
        }
    }

    // ----- IDLE -----

    /// Called periodically while idling: reports changes.
    pub fn idle_poll(&mut self) {
        self.refresh(true);
    }

    pub fn idle_done(&mut self, line: &[u8]) -> Step {
        let tag = std::mem::take(&mut self.pending_tag);
        if trim_crlf(line).eq_ignore_ascii_case(b"DONE") {
            self.tagged(&tag, "OK Idle completed.");
            Step::Continue
        } else {
            self.bad(&tag, "Expected DONE.")
        }
    }

    // ----- mailboxes -----

    fn layout(&self) -> &Layout {
        &self.user.as_ref().expect("authenticated").1
    }

    /// A checked name and its path, or a tagged NO already written.
    fn resolve(&mut self, tag: &str, mailbox: &Mailbox<'_>) -> Option<(String, MboxPath)> {
        let raw: &[u8] = match mailbox {
            Mailbox::Inbox => b"INBOX",
            Mailbox::Other(other) => other.as_ref(),
        };
        let encoded;
        let raw = match self.utf8_name_as_stored(raw) {
            Some(name) => {
                encoded = name;
                encoded.as_bytes()
            }
            None => raw,
        };
        match folders::check(raw) {
            Ok(name) => {
                let path = self.layout().path(&name);
                Some((name, path))
            }
            Err(folders::BadName(why)) => {
                self.tagged(tag, &format!("NO [CANNOT] Invalid mailbox name: {why}."));
                None
            }
        }
    }

    /// In a UTF8=ACCEPT session, a client's UTF-8 mailbox name (or
    /// pattern) in the modified UTF-7 the folders are kept under.
    fn utf8_name_as_stored(&self, raw: &[u8]) -> Option<String> {
        if !self.utf8 {
            return None;
        }
        std::str::from_utf8(raw).ok().map(folders::encode_mutf7)
    }

    /// A mailbox name as this session writes it: modified UTF-7, or UTF-8
    /// once UTF8=ACCEPT is on.
    fn write_name(&self, out: &mut Vec<u8>, name: &str) {
        match folders::decode_mutf7(name).filter(|_| self.utf8) {
            Some(decoded) => wire::utf8_string(out, &decoded),
            None => wire::string(out, name.as_bytes()),
        }
    }

    fn is_spam_folder(&self, name: &str) -> bool {
        let spam = &self.ctx.config.spam_folder;
        name == spam || name.starts_with(&format!("{spam}/"))
    }

    fn is_trash_folder(&self, name: &str) -> bool {
        let trash = &self.ctx.imapd.trash_folder.0;
        name == trash || name.starts_with(&format!("{trash}/"))
    }

    fn folder_error(&mut self, tag: &str, e: FolderError) {
        match e {
            FolderError::NotFound(_) => self.tagged(tag, "NO [NONEXISTENT] Mailbox doesn't exist."),
            FolderError::Locked(_) => self.tagged(tag, "NO [INUSE] Mailbox is locked; try again."),
            FolderError::Io(p, e) => {
                tracing::error!("{}: {e}", p.display());
                self.tagged(tag, "NO [SERVERBUG] Internal error reading the mailbox.");
            }
            FolderError::Refused(p, why) => {
                tracing::warn!("{}: refused: it {why}", p.display());
                self.tagged(tag, "NO [NOPERM] That mailbox is not a plain mail file.");
            }
        }
    }

    /// INBOX exists from the first delivery on; before that it reads as empty.
    fn ensure_inbox(&self, name: &str, path: &MboxPath) {
        if name == "INBOX" && matches!(path.kind(), Ok(None)) {
            let _ = Folder::create(path, self.ctx.folders.spool());
        }
    }

    /// Leaves the selected mailbox: its mod-sequences go to their sidecar
    /// (for a server restarted later), SEARCHRES's result is forgotten.
    fn leave(&mut self) {
        if let Some(sel) = self.selected.take() {
            self.ctx.folders.save_modseqs(&sel.path);
        }
        self.saved.clear();
    }

    fn select(&mut self, tag: &str, mailbox: &Mailbox<'_>, read_only: bool) {
        if self.selected.is_some() && (self.qresync || self.rev2) {
            // RFC 7162 §3.2.11, RFC 9051 §6.3.2: the end of the old
            // mailbox's responses (also when the new one fails)
            self.untagged("OK [CLOSED] Previous mailbox closed.");
        }
        let Some((name, path)) = self.resolve(tag, mailbox) else {
            self.leave();
            return;
        };
        if self.selected.as_ref().is_some_and(|s| s.path.full() == path.full()) {
            // The same folder again (clients re-SELECT to resynchronise):
            // the session has not left it, so its mod-sequences need not
            // be kept yet — writing the sidecar of 10,000 messages was
            // most of a repeated SELECT's 3.6 ms.
            self.selected = None;
            self.saved.clear();
        } else {
            self.leave();
        }
        self.ensure_inbox(&name, &path);
        let unclaimed = |f: Arc<Folder>| {
            let recent = f.messages.iter().filter(|m| m.recent).map(|m| m.uid).collect();
            (f, recent)
        };
        let loaded = if read_only {
            self.ctx.folders.read(&path).map(unclaimed)
        } else {
            // Nothing to claim or write (the usual case after the first
            // SELECT): the unlocked read is enough. A message delivered
            // after it is claimed by the next refresh, as one delivered
            // just after the SELECT would be.
            match self.ctx.folders.read(&path) {
                Ok(f) if !f.needs_write && !f.messages.iter().any(|m| m.recent) => Ok(unclaimed(f)),
                _ => self.ctx.folders.update(&path, claim_recent),
            }
        };
        let (folder, mut recent) = match loaded {
            Ok(x) => x,
            Err(e) => return self.folder_error(tag, e),
        };
        if self.rev2 {
            // IMAP4rev2 has no \Recent (RFC 9051 Appendix E)
            recent.clear();
        }
        let keywords = folder_keywords(&folder);
        let listed: String = keywords.iter().map(|k| format!(" {k}")).collect();
        self.untagged(&format!("FLAGS ({FLAGS}{listed})"));
        self.untagged(&format!("OK [PERMANENTFLAGS ({FLAGS}{listed} \\*)] Flags permitted."));
        self.untagged(&format!("{} EXISTS", folder.messages.len()));
        if self.rev2 {
            // RFC 9051 §6.3.2: the mailbox's LIST, its attributes as LIST
            // gives them; no RECENT, no UNSEEN
            let attrs = self
                .mailboxes()
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, attrs)| attrs.join(" "))
                .unwrap_or_default();
            let mut line = format!("* LIST ({attrs}) \"/\" ").into_bytes();
            self.write_name(&mut line, &name);
            self.out.extend_from_slice(&line);
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.untagged(&format!("{} RECENT", recent.len()));
            if let Some(first) = folder.messages.iter().position(|m| !m.has(SEEN)) {
                self.untagged(&format!("OK [UNSEEN {}] First unseen.", first + 1));
            }
        }
        self.untagged(&format!("OK [UIDVALIDITY {}] UIDs valid.", folder.uid_validity));
        self.untagged(&format!("OK [UIDNEXT {}] Predicted next UID.", folder.uid_next));
        self.untagged(&format!("OK [HIGHESTMODSEQ {}] Highest.", folder.highest_modseq));
        if let Some(Modifiers::Select(Some(q))) = &self.modifiers
            && self.qresync
            && q.uid_validity == folder.uid_validity
        {
            let q = q.clone();
            self.resync(&folder, &recent, &q);
        }
        self.tagged(
            tag,
            if read_only {
                "OK [READ-ONLY] Examine completed."
            } else {
                "OK [READ-WRITE] Select completed."
            },
        );
        self.selected = Some(Selected {
            name,
            path,
            read_only,
            folder,
            recent,
            keywords,
            holds_expunged: false,
        });
    }

    /// QRESYNC's part of SELECT (RFC 7162 §3.2.5): the UIDs the client may
    /// hold that are gone, and every message changed since its modseq.
    fn resync(&mut self, folder: &Folder, recent: &HashSet<u32>, q: &Qresync) {
        let last = folder.uid_next.saturating_sub(1);
        let known = q
            .known_uids
            .as_deref()
            .and_then(|u| modifiers::uid_ranges(u, last))
            .unwrap_or_else(|| vec![(1, last)]);
        let present: Vec<u32> = folder.messages.iter().map(|m| m.uid).collect();
        let gone = modifiers::absent(&present, &known);
        if !gone.is_empty() {
            self.untagged(&format!("VANISHED (EARLIER) {gone}"));
        }
        for (i, m) in folder.messages.iter().enumerate().filter(|(_, m)| m.modseq > q.modseq) {
            let flags = fetch::flags_list(m, recent.contains(&m.uid));
            self.untagged(&format!(
                "{} FETCH (UID {} FLAGS {flags} MODSEQ ({}))",
                i + 1,
                m.uid,
                m.modseq
            ));
        }
    }

    /// Re-reads the selected folder if its file changed and reports the
    /// differences. Expunges by others are only reported where the
    /// protocol allows (`allow_expunge`); otherwise the old view stays.
    fn refresh(&mut self, allow_expunge: bool) {
        let Some(sel) = &self.selected else { return };
        if Stamp::of(&sel.path) == Some(sel.folder.stamp) && !(sel.holds_expunged && allow_expunge) {
            return;
        }
        let loaded = if sel.read_only {
            self.ctx.folders.read(&sel.path).map(|f| {
                let recent: HashSet<u32> = f.messages.iter().filter(|m| m.recent).map(|m| m.uid).collect();
                (f, recent)
            })
        } else {
            self.ctx.folders.update(&sel.path, claim_recent)
        };
        if let Ok((new, new_recent)) = loaded {
            self.apply(new, new_recent, allow_expunge, &HashSet::new(), &HashSet::new());
        }
    }

    /// Makes `new` the selected folder's view, writing the untagged
    /// responses for what changed: FLAGS for new keywords, EXPUNGE, EXISTS,
    /// RECENT, and FETCH FLAGS for changed messages except `quiet` ones,
    /// plus `always` ones. Where expunges may not be reported
    /// (`allow_expunge` false: during FETCH, STORE, SEARCH, COPY), the
    /// messages another session expunged stay in the view, under their
    /// numbers, until a command that may report them.
    fn apply(
        &mut self,
        new: Arc<Folder>,
        new_recent: HashSet<u32>,
        allow_expunge: bool,
        quiet: &HashSet<u32>,
        always: &HashSet<u32>,
    ) {
        let Some(sel) = &mut self.selected else { return };
        // both lists are in UID order: walk them together
        let mut gone = Vec::new();
        let mut changed = Vec::new();
        let mut added = false;
        let (old, newer) = (&sel.folder.messages, &new.messages);
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < newer.len() {
            match (old.get(i), newer.get(j)) {
                (Some(o), Some(n)) if o.uid == n.uid => {
                    let differs = o.flags != n.flags || o.keywords != n.keywords;
                    if always.contains(&n.uid) || (differs && !quiet.contains(&n.uid)) {
                        changed.push(n.uid);
                    }
                    i += 1;
                    j += 1;
                }
                (Some(o), Some(n)) if o.uid < n.uid => {
                    gone.push(i);
                    i += 1;
                }
                (Some(_), None) => {
                    gone.push(i);
                    i += 1;
                }
                _ => {
                    added = true;
                    j += 1;
                }
            }
        }
        let mut out = Vec::new();
        let keywords = folder_keywords(&new);
        let fresh: Vec<&String> = keywords
            .iter()
            .filter(|k| !sel.keywords.iter().any(|s| s.eq_ignore_ascii_case(k)))
            .collect();
        if !fresh.is_empty() {
            let fresh: Vec<String> = fresh.into_iter().cloned().collect();
            sel.keywords.extend(fresh);
            let listed: String = sel.keywords.iter().map(|k| format!(" {k}")).collect();
            out.extend_from_slice(format!("* FLAGS ({FLAGS}{listed})\r\n").as_bytes());
            out.extend_from_slice(
                format!("* OK [PERMANENTFLAGS ({FLAGS}{listed} \\*)] Flags permitted.\r\n").as_bytes(),
            );
        }
        let report_expunges = allow_expunge || gone.is_empty();
        if report_expunges && self.qresync && !gone.is_empty() {
            let uids: Vec<u32> = gone.iter().map(|&i| sel.folder.messages[i].uid).collect();
            out.extend_from_slice(format!("* VANISHED {}\r\n", compact(&uids)).as_bytes());
        } else {
            for &i in gone.iter().rev().filter(|_| report_expunges) {
                out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
            }
        }
        let mut view = new;
        sel.holds_expunged = !report_expunges;
        if !report_expunges {
            let view = Arc::make_mut(&mut view);
            view.messages
                .extend(gone.iter().map(|&i| sel.folder.messages[i].clone()));
            view.messages.sort_by_key(|m| m.uid);
        }
        if !self.rev2 {
            sel.recent.extend(new_recent);
        }
        for uid in changed {
            let Ok(j) = view.messages.binary_search_by_key(&uid, |m| m.uid) else {
                continue;
            };
            let m = &view.messages[j];
            let flags = fetch::flags_list(m, sel.recent.contains(&m.uid));
            let modseq = if self.condstore {
                format!(" MODSEQ ({})", m.modseq)
            } else {
                String::new()
            };
            out.extend_from_slice(format!("* {} FETCH (FLAGS {flags} UID {}{modseq})\r\n", j + 1, m.uid).as_bytes());
        }
        if added || (report_expunges && !gone.is_empty()) {
            out.extend_from_slice(format!("* {} EXISTS\r\n", view.messages.len()).as_bytes());
            if !self.rev2 {
                let recent = view.messages.iter().filter(|m| sel.recent.contains(&m.uid)).count();
                out.extend_from_slice(format!("* {recent} RECENT\r\n").as_bytes());
            }
        }
        sel.folder = view;
        self.out.extend_from_slice(&out);
    }

    fn create(&mut self, tag: &str, mailbox: &Mailbox<'_>) {
        let Some((name, path)) = self.resolve(tag, mailbox) else {
            return;
        };
        if name == "INBOX" || !matches!(path.kind(), Ok(None)) {
            return self.tagged(tag, "NO [ALREADYEXISTS] Mailbox already exists.");
        }
        // RFC 6154 §5.2: a special use is this site's configured folder's
        if let Some(Modifiers::CreateUse(uses)) = &self.modifiers {
            let mine = self.special_use(&name);
            if let Some(other) = uses.iter().find(|u| mine.is_none_or(|m| !m.eq_ignore_ascii_case(u))) {
                let configured = self.folder_for_use(other);
                let text = match configured {
                    Some(folder) => format!("NO [USEATTR] {other} is the folder {folder} here (mailkit.toml)."),
                    None => format!("NO [USEATTR] {other} is not a special use this server gives."),
                };
                return self.tagged(tag, &text);
            }
        }
        let as_directory = match mailbox {
            Mailbox::Other(o) => o.as_ref().ends_with(b"/"),
            Mailbox::Inbox => false,
        };
        let result = if as_directory {
            path.create_dir()
        } else {
            Folder::create(&path, None)
        };
        match result {
            Ok(()) => self.tagged(tag, "OK Create completed."),
            Err(e) => {
                tracing::warn!("create {}: {e}", path.full().display());
                self.tagged(tag, "NO [CANNOT] Cannot create that mailbox here.");
            }
        }
    }

    fn delete(&mut self, tag: &str, mailbox: &Mailbox<'_>) {
        let Some((name, path)) = self.resolve(tag, mailbox) else {
            return;
        };
        if name == "INBOX" {
            return self.tagged(tag, "NO [CANNOT] INBOX cannot be deleted.");
        }
        if self.selected.as_ref().is_some_and(|s| s.name == name) {
            self.selected = None;
        }
        match path.kind() {
            Ok(Some(Kind::File | Kind::Directory)) => {}
            Ok(Some(Kind::Other)) => return self.tagged(tag, "NO [NOPERM] That mailbox is not a plain mail file."),
            _ => return self.tagged(tag, "NO [NONEXISTENT] Mailbox doesn't exist."),
        }
        self.ctx.folders.forget(&path);
        if matches!(path.kind(), Ok(Some(Kind::Directory))) {
            crate::modseq::remove_orphans(&path);
        }
        match path.remove() {
            Ok(()) => self.tagged(tag, "OK Delete completed."),
            Err(_) => self.tagged(tag, "NO [INUSE] Mailbox has children; delete them first."),
        }
    }

    fn rename(&mut self, tag: &str, from: &Mailbox<'_>, to: &Mailbox<'_>) {
        let Some((from_name, from_path)) = self.resolve(tag, from) else {
            return;
        };
        let Some((to_name, to_path)) = self.resolve(tag, to) else {
            return;
        };
        if to_name == "INBOX" {
            return self.tagged(tag, "NO [CANNOT] Nothing can be renamed to INBOX.");
        }
        self.ensure_inbox(&from_name, &from_path);
        match from_path.kind() {
            Ok(Some(Kind::File | Kind::Directory)) => {}
            Ok(Some(Kind::Other)) => return self.tagged(tag, "NO [NOPERM] That mailbox is not a plain mail file."),
            _ => return self.tagged(tag, "NO [NONEXISTENT] Mailbox doesn't exist."),
        }
        if !matches!(to_path.kind(), Ok(None)) {
            return self.tagged(tag, "NO [ALREADYEXISTS] Target mailbox already exists.");
        }
        if from_name == "INBOX" {
            return self.rename_inbox(tag, &from_path, &to_path);
        }
        // (the mod-sequences start again under the new name)
        self.ctx.folders.forget(&from_path);
        match from_path.rename_to(&to_path) {
            Ok(()) => self.tagged(tag, "OK Rename completed."),
            Err(_) => self.tagged(tag, "NO [CANNOT] Cannot rename that mailbox."),
        }
    }

    /// RFC 3501: renaming INBOX moves its messages to the new mailbox and
    /// leaves INBOX empty. Copies first, then removes what was copied, so a
    /// failure (or mail arriving meanwhile) loses nothing.
    fn rename_inbox(&mut self, tag: &str, inbox: &MboxPath, to: &MboxPath) {
        let messages = match self.ctx.folders.read(inbox) {
            Ok(f) => Arc::unwrap_or_clone(f).messages,
            Err(e) => return self.folder_error(tag, e),
        };
        if let Err(e) = Folder::create(to, None) {
            tracing::warn!("rename INBOX to {}: {e}", to.full().display());
            return self.tagged(tag, "NO [CANNOT] Cannot create the new mailbox.");
        }
        let copied = self.ctx.folders.update(to, |f| {
            for m in &messages {
                let when = UNIX_EPOCH + std::time::Duration::from_secs(m.internal_date().max(0) as u64);
                f.push(
                    m.content.to_vec(),
                    m.flags,
                    m.keywords.clone(),
                    when,
                    Some(m.from_line.clone()),
                );
            }
        });
        if let Err(e) = copied {
            return self.folder_error(tag, e);
        }
        let moved: HashSet<u32> = messages.iter().map(|m| m.uid).collect();
        if let Err(e) = self
            .ctx
            .folders
            .update(inbox, |f| f.messages.retain(|m| !moved.contains(&m.uid)))
        {
            return self.folder_error(tag, e);
        }
        self.refresh(true);
        self.tagged(tag, "OK Rename completed.");
    }

    fn subscriptions(&self) -> Vec<String> {
        self.layout().read_subscriptions().unwrap_or_default()
    }

    fn subscribe(&mut self, tag: &str, mailbox: &Mailbox<'_>, on: bool) {
        let Some((name, _)) = self.resolve(tag, mailbox) else {
            return;
        };
        let mut subs = self.subscriptions();
        subs.retain(|s| s != &name);
        if on {
            subs.push(name);
        }
        match self.layout().write_subscriptions(&subs) {
            Ok(()) => self.tagged(
                tag,
                if on {
                    "OK Subscribe completed."
                } else {
                    "OK Unsubscribe completed."
                },
            ),
            Err(e) => {
                tracing::warn!("subscriptions: {e}");
                self.tagged(tag, "NO [SERVERBUG] Cannot write the subscriptions.");
            }
        }
    }

    fn special_use(&self, name: &str) -> Option<&'static str> {
        let imapd = &self.ctx.imapd;
        if name == self.ctx.config.spam_folder {
            Some("\\Junk")
        } else if name == imapd.trash_folder.0 {
            Some("\\Trash")
        } else if name == imapd.sent_folder.0 {
            Some("\\Sent")
        } else if name == imapd.drafts_folder.0 {
            Some("\\Drafts")
        } else {
            None
        }
    }

    /// The user's limits, if the user table gives any.
    fn quota(&self) -> Option<lda::users::Quota> {
        let quota = self.user.as_ref()?.0.quota;
        (quota.storage.is_some() || quota.messages.is_some()).then_some(quota)
    }

    /// What the user's folders hold together: (bytes, messages).
    fn usage(&self) -> (u64, u64) {
        let (mut bytes, mut messages) = (0u64, 0u64);
        for path in self.layout().mail_files() {
            if let Ok(folder) = self.ctx.folders.read(&path) {
                bytes += folder.messages.iter().map(|m| m.size() as u64).sum::<u64>();
                messages += folder.messages.len() as u64;
            }
        }
        (bytes, messages)
    }

    /// `QUOTA "" (STORAGE used limit MESSAGE used limit)`, storage in
    /// units of 1024 octets (RFC 9208 §5.1).
    fn quota_line(&self) -> String {
        let quota = self.quota().unwrap_or_default();
        let (bytes, messages) = self.usage();
        let mut resources = Vec::new();
        if let Some(limit) = quota.storage {
            resources.push(format!("STORAGE {} {}", bytes.div_ceil(1024), limit / 1024));
        }
        if let Some(limit) = quota.messages {
            resources.push(format!("MESSAGE {messages} {limit}"));
        }
        format!("QUOTA \"\" ({})", resources.join(" "))
    }

    fn get_quota_root(&mut self, tag: &str, mailbox: &Mailbox<'_>) {
        let Some((name, _)) = self.resolve(tag, mailbox) else {
            return;
        };
        let mut line = b"* QUOTAROOT ".to_vec();
        self.write_name(&mut line, &name);
        if self.quota().is_some() {
            // one root for all of a user's folders
            line.extend_from_slice(b" \"\"");
        }
        line.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&line);
        if self.quota().is_some() {
            let quota = self.quota_line();
            self.untagged(&quota);
        }
        self.tagged(tag, "OK Getquotaroot completed.");
    }

    /// Would `bytes` and `messages` more go over the user's limits?
    fn over_quota(&self, bytes: u64, messages: u64) -> bool {
        let Some(quota) = self.quota() else { return false };
        let (used_bytes, used_messages) = self.usage();
        quota.storage.is_some_and(|limit| used_bytes + bytes > limit)
            || quota.messages.is_some_and(|limit| used_messages + messages > limit)
    }

    /// The folder configured for a special use (`\\Junk` …).
    fn folder_for_use(&self, special: &str) -> Option<String> {
        let imapd = &self.ctx.imapd;
        let folder = match special.to_ascii_lowercase().as_str() {
            "\\junk" => &self.ctx.config.spam_folder,
            "\\trash" => &imapd.trash_folder.0,
            "\\sent" => &imapd.sent_folder.0,
            "\\drafts" => &imapd.drafts_folder.0,
            _ => return None,
        };
        Some(folder.clone())
    }

    fn list(&mut self, tag: &str, reference: &Mailbox<'_>, pattern: &ListMailbox<'_>, lsub: bool) {
        let reference = match reference {
            Mailbox::Inbox => "INBOX".to_owned(),
            Mailbox::Other(o) => String::from_utf8_lossy(o.as_ref()).into_owned(),
        };
        let pattern = match pattern {
            ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
            ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
        };
        let reference = self.utf8_name_as_stored(reference.as_bytes()).unwrap_or(reference);
        let pattern = self.utf8_name_as_stored(pattern.as_bytes()).unwrap_or(pattern);
        let command = if lsub { "LSUB" } else { "LIST" };
        if pattern.is_empty() && !lsub {
            self.untagged("LIST (\\Noselect) \"/\" \"\"");
            return self.tagged(tag, "OK List completed.");
        }
        let full = format!("{reference}{pattern}");
        let mut entries: Vec<(String, Vec<&'static str>)> = Vec::new();
        if lsub {
            let subscribed = self.subscriptions();
            for name in &subscribed {
                if pattern::matches(&full, name) {
                    entries.push((name.clone(), Vec::new()));
                    continue;
                }
                // RFC 3501 §6.3.9: where `%` stops short of a subscribed
                // name, its unsubscribed parent is listed, \Noselect
                let parents = name.match_indices('/').map(|(i, _)| &name[..i]);
                for parent in parents {
                    if pattern::matches(&full, parent)
                        && !subscribed.iter().any(|s| s == parent)
                        && !entries.iter().any(|(n, _)| n == parent)
                    {
                        entries.push((parent.to_owned(), vec!["\\Noselect"]));
                    }
                }
            }
        } else {
            entries = self.mailboxes();
            entries.retain(|(name, _)| pattern::matches(&full, name));
        }
        for (name, attrs) in entries {
            let mut line = format!("{command} ({}) \"/\" ", attrs.join(" ")).into_bytes();
            self.write_name(&mut line, &name);
            self.out.extend_from_slice(b"* ");
            self.out.extend_from_slice(&line);
            self.out.extend_from_slice(b"\r\n");
        }
        self.tagged(tag, &format!("OK {} completed.", if lsub { "Lsub" } else { "List" }));
    }

    /// INBOX and every folder, with their LIST attributes.
    fn mailboxes(&self) -> Vec<(String, Vec<&'static str>)> {
        let mut entries = vec![("INBOX".to_owned(), vec!["\\HasNoChildren"])];
        for (name, selectable, children) in self.layout().folders() {
            let mut attrs = Vec::new();
            if !selectable {
                attrs.push("\\Noselect");
            }
            attrs.push(if children { "\\HasChildren" } else { "\\HasNoChildren" });
            if let Some(special) = self.special_use(&name) {
                attrs.push(special);
            }
            entries.push((name, attrs));
        }
        entries
    }

    /// LIST-EXTENDED, LIST-STATUS and SPECIAL-USE's options.
    fn list_extended(&mut self, tag: &str, list: ListExtended) {
        let mut items = Vec::new();
        let mut size = false;
        for item in list.status.iter().flatten() {
            items.push(match item.as_str() {
                "MESSAGES" => StatusDataItemName::Messages,
                "RECENT" => StatusDataItemName::Recent,
                "UIDNEXT" => StatusDataItemName::UidNext,
                "UIDVALIDITY" => StatusDataItemName::UidValidity,
                "UNSEEN" => StatusDataItemName::Unseen,
                "DELETED" => StatusDataItemName::Deleted,
                "HIGHESTMODSEQ" => StatusDataItemName::HighestModSeq,
                "SIZE" => {
                    size = true;
                    continue;
                }
                other => {
                    self.bad(tag, &format!("Unknown status item {other}."));
                    return;
                }
            });
        }
        let subscribed = self.subscriptions();
        let existing = self.mailboxes();
        let mut listed: Vec<String> = Vec::new();
        for pattern in &list.patterns {
            let full = format!("{}{pattern}", list.reference);
            let full = self.utf8_name_as_stored(full.as_bytes()).unwrap_or(full);
            let mut entries: Vec<(String, Vec<&'static str>)> = if list.subscribed {
                subscribed
                    .iter()
                    .filter(|name| pattern::matches(&full, name))
                    .map(|name| {
                        let attrs = existing
                            .iter()
                            .find(|(n, _)| n == name)
                            .map_or_else(|| vec!["\\NonExistent"], |(_, a)| a.clone());
                        (name.clone(), attrs)
                    })
                    .collect()
            } else {
                existing
                    .iter()
                    .filter(|(n, _)| pattern::matches(&full, n))
                    .cloned()
                    .collect()
            };
            if list.special_use {
                entries.retain(|(name, _)| self.special_use(name).is_some());
            }
            for (name, mut attrs) in entries {
                if listed.contains(&name) {
                    continue;
                }
                if (list.subscribed || list.return_subscribed) && subscribed.contains(&name) {
                    attrs.push("\\Subscribed");
                }
                let mut line = format!("* LIST ({}) \"/\" ", attrs.join(" ")).into_bytes();
                self.write_name(&mut line, &name);
                line.extend_from_slice(b"\r\n");
                self.out.extend_from_slice(&line);
                let selectable = !attrs.iter().any(|a| matches!(*a, "\\Noselect" | "\\NonExistent"));
                if list.status.is_some() && selectable {
                    let path = self.layout().path(&name);
                    // (RFC 5819: a mailbox whose status cannot be had is
                    // listed without it)
                    if let Ok(status) = self.status_line(&name, &path, &items, size) {
                        self.out.extend_from_slice(&status);
                    }
                }
                listed.push(name);
            }
        }
        self.tagged(tag, "OK List completed.");
    }

    fn status(&mut self, tag: &str, mailbox: &Mailbox<'_>, items: &[StatusDataItemName]) {
        let Some((name, path)) = self.resolve(tag, mailbox) else {
            return;
        };
        let size = matches!(self.modifiers, Some(Modifiers::StatusSize));
        match self.status_line(&name, &path, items, size) {
            Ok(line) => {
                self.out.extend_from_slice(&line);
                self.tagged(tag, "OK Status completed.");
            }
            Err(e) => self.folder_error(tag, e),
        }
    }

    /// `* STATUS name (…)` with CRLF, for STATUS and LIST-STATUS.
    fn status_line(
        &self,
        name: &str,
        path: &MboxPath,
        items: &[StatusDataItemName],
        size: bool,
    ) -> Result<Vec<u8>, FolderError> {
        self.ensure_inbox(name, path);
        let folder = match self.ctx.folders.read(path)? {
            f if f.needs_write => self.ctx.folders.update(path, |_| ()).map_or(f, |(f, ())| f),
            f => f,
        };
        let mut values = Vec::new();
        for item in items {
            let value = match item {
                StatusDataItemName::Messages => format!("MESSAGES {}", folder.messages.len()),
                StatusDataItemName::Recent => {
                    format!("RECENT {}", folder.messages.iter().filter(|m| m.recent).count())
                }
                StatusDataItemName::UidNext => format!("UIDNEXT {}", folder.uid_next),
                StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", folder.uid_validity),
                StatusDataItemName::Unseen => {
                    format!("UNSEEN {}", folder.messages.iter().filter(|m| !m.has(SEEN)).count())
                }
                StatusDataItemName::Deleted => {
                    format!("DELETED {}", folder.messages.iter().filter(|m| m.has(DELETED)).count())
                }
                StatusDataItemName::HighestModSeq => format!("HIGHESTMODSEQ {}", folder.highest_modseq),
                _ => continue,
            };
            values.push(value);
        }
        if size {
            let size: usize = folder.messages.iter().map(Message::size).sum();
            values.push(format!("SIZE {size}"));
        }
        let mut line = b"* STATUS ".to_vec();
        self.write_name(&mut line, name);
        line.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
        Ok(line)
    }

    /// APPEND of one message, or MULTIAPPEND's several (in one update:
    /// all of them land, or none).
    fn append(&mut self, tag: &str, mailbox: &Mailbox<'_>, messages: &[Appended<'_>]) {
        let Some((name, path)) = self.resolve(tag, mailbox) else {
            return;
        };
        self.ensure_inbox(&name, &path);
        if path.kind().ok().flatten() != Some(Kind::File) {
            return self.tagged(tag, "NO [TRYCREATE] Mailbox doesn't exist.");
        }
        if messages.iter().any(|m| m.message.is_empty()) {
            return self.tagged(tag, "NO Empty message.");
        }
        let added: u64 = messages
            .iter()
            .map(|m| (m.message.len() + mailbox::lone_newlines(&m.message)) as u64)
            .sum();
        if self.over_quota(added, messages.len() as u64) {
            return self.tagged(
                tag,
                "NO [OVERQUOTA] This would go over your quota; delete some mail first.",
            );
        }
        let spam = self.is_spam_folder(&name);
        let prepared: Vec<(Vec<u8>, u8, Vec<String>, SystemTime)> = messages
            .iter()
            .map(|m| {
                let (system, mut keywords) = split_flags(&m.flags);
                if spam {
                    mark_junk(&mut keywords, Class::Spam);
                }
                let when = m.date.map_or_else(SystemTime::now, |s| {
                    UNIX_EPOCH + std::time::Duration::from_secs(s.max(0) as u64)
                });
                (m.message.to_vec(), system, keywords, when)
            })
            .collect();
        let result = self.ctx.folders.update(&path, |f| {
            let uids: Vec<u32> = prepared
                .iter()
                .map(|(content, system, keywords, when)| {
                    f.push(content.clone(), *system, keywords.clone(), *when, None)
                })
                .collect();
            (uids, f.uid_validity)
        });
        match result {
            Ok((_, (uids, validity))) => {
                if spam {
                    for (content, ..) in prepared {
                        self.train(Arc::new(content), Class::Spam, format!("APPEND to {name}"));
                    }
                }
                self.refresh(false);
                self.tagged(
                    tag,
                    &format!("OK [APPENDUID {validity} {}] Append completed.", compact(&uids)),
                );
            }
            Err(e) => self.folder_error(tag, e),
        }
    }

    /// An APPEND [`append::parse`] took apart (MULTIAPPEND, literal8,
    /// UTF8, CATENATE): each message's flags and date parsed by imap-codec
    /// as an APPEND of a stand-in literal, its bytes taken from the command
    /// or, for CATENATE, put together here; then all appended in one update.
    fn append_taken_apart(&mut self, tag: &str, input: &[u8], taken: &append::Append) -> Step {
        if self.user.is_none() {
            self.tagged(tag, "BAD Log in first.");
            return Step::Continue;
        }
        let commands: Vec<Vec<u8>> = taken
            .messages
            .iter()
            .map(|m| {
                let mut command = input[taken.head.clone()].to_vec();
                command.push(b' ');
                command.extend_from_slice(&input[m.options.clone()]);
                command.extend_from_slice(b"{1}\r\nx\r\n");
                // (UTF8=ACCEPT's 8-bit quoted strings as literals, for imap-codec)
                utf8::quoted_to_literals(&command).unwrap_or(command)
            })
            .collect();
        let mut mailbox = None;
        let mut messages = Vec::new();
        for (command, m) in commands.iter().zip(&taken.messages) {
            let Ok((
                _,
                Command {
                    body:
                        CommandBody::Append {
                            mailbox: name,
                            flags,
                            date,
                            ..
                        },
                    ..
                },
            )) = CommandCodec::default().decode(command)
            else {
                return self.bad(tag, "Syntax error in a message of the APPEND.");
            };
            let message = match &m.data {
                append::Data::Bytes(bytes) => std::borrow::Cow::Borrowed(&input[bytes.clone()]),
                append::Data::Catenate(parts) => match self.catenated(input, parts) {
                    Ok(message) => std::borrow::Cow::Owned(message),
                    Err(refusal) => {
                        self.tagged(tag, &refusal);
                        return Step::Continue;
                    }
                },
            };
            mailbox.get_or_insert(name);
            messages.push(Appended {
                flags,
                date: date.map(|d| d.as_ref().timestamp()),
                message,
            });
        }
        let mailbox = mailbox.expect("one message at least");
        self.append(tag, &mailbox, &messages);
        Step::Continue
    }

    /// CATENATE's message (RFC 4469 §5): the TEXT parts as sent, each URL
    /// replaced by what `FETCH BODY.PEEK[section]<partial>` of it would
    /// return; or the tagged refusal: `NO [BADURL url]` for a URL that
    /// names nothing this user may read, `NO [TOOBIG]` past the literal
    /// limit.
    fn catenated(&mut self, input: &[u8], parts: &[append::Part]) -> Result<Vec<u8>, String> {
        let mut message = Vec::new();
        for part in parts {
            match part {
                append::Part::Text(bytes) => message.extend_from_slice(&input[bytes.clone()]),
                append::Part::Url(url) => {
                    let Some(bytes) = self.url_bytes(url) else {
                        // (resp-text-code: no `]` in it, and on one line)
                        let shown: String = String::from_utf8_lossy(url)
                            .chars()
                            .filter(|c| !matches!(c, ']' | '\r' | '\n'))
                            .collect();
                        return Err(format!(
                            "NO [BADURL {shown}] The URL names no message part you can read."
                        ));
                    };
                    message.extend_from_slice(&bytes);
                }
            }
            if message.len() > crate::server::MAX_LITERAL {
                return Err(format!(
                    "NO [TOOBIG] The message would be larger than {} bytes.",
                    crate::server::MAX_LITERAL
                ));
            }
        }
        Ok(message)
    }

    /// The bytes a CATENATE URL names, if this user may read them.
    fn url_bytes(&self, url: &[u8]) -> Option<Vec<u8>> {
        let url = append::ImapUrl::parse(url)?;
        let (user, _) = self.user.as_ref()?;
        if url.user.as_ref().is_some_and(|u| u != &user.name) {
            return None;
        }
        let folder = match &url.mailbox {
            None => Arc::clone(&self.selected.as_ref()?.folder),
            Some(name) => {
                // RFC 5092 §3: the name as UTF-8 (from modified UTF-7);
                // a client may also send it as the IMAP name itself
                let name = std::str::from_utf8(name).ok()?;
                let name = if name.eq_ignore_ascii_case("INBOX") {
                    "INBOX".to_string()
                } else if name.is_ascii() {
                    name.to_string()
                } else {
                    folders::encode_mutf7(name)
                };
                let name = folders::check(name.as_bytes()).ok()?;
                self.ctx.folders.read(&self.layout().path(&name)).ok()?
            }
        };
        if url.uid_validity.is_some_and(|v| v != folder.uid_validity) {
            return None;
        }
        let i = folder.messages.binary_search_by_key(&url.uid, |m| m.uid).ok()?;
        let bytes = fetch::section_of(&folder.messages[i], url.section.as_deref())?;
        Some(match url.partial {
            None => bytes,
            Some((offset, length)) => {
                let start = offset.min(bytes.len());
                let end = length.map_or(bytes.len(), |n| start.saturating_add(n).min(bytes.len()));
                bytes[start..end].to_vec()
            }
        })
    }

    fn train(&self, message: Arc<Vec<u8>>, class: Class, reason: String) {
        if let Some((user, _)) = &self.user {
            self.ctx.trainer.submit(Lesson {
                user: user.clone(),
                message,
                class,
                reason,
            });
        }
    }

    // ----- selected state -----

    fn expunge_silently(&mut self) {
        if let Some(sel) = &mut self.selected {
            let _ = self
                .ctx
                .folders
                .update(&sel.path, |f| f.messages.retain(|m| !m.has(DELETED)));
        }
    }

    fn expunge(&mut self, tag: &str, uids: Option<&SequenceSet>) {
        let Some(sel) = &self.selected else { return };
        if sel.read_only {
            return self.tagged(tag, "NO [READ-ONLY] Mailbox is read-only.");
        }
        let allowed: Option<HashSet<u32>> = uids.map(|set| {
            positions(set, &sel.folder.messages, true)
                .iter()
                .map(|&i| sel.folder.messages[i].uid)
                .collect()
        });
        let result = self.ctx.folders.update(&sel.path, |f| {
            f.messages
                .retain(|m| !(m.has(DELETED) && allowed.as_ref().is_none_or(|a| a.contains(&m.uid))))
        });
        match result {
            Ok(_) => {
                self.refresh(true);
                self.tagged(tag, "OK Expunge completed.");
            }
            Err(e) => self.folder_error(tag, e),
        }
    }

    fn search(&mut self, tag: &str, charset: Option<&str>, criteria: &SearchKey<'_>, uid: bool) {
        let Some(found) = self.matching(tag, charset, criteria) else {
            return;
        };
        let numbers = self.numbers(&found, uid);
        let mut line: String = std::iter::once("SEARCH".to_owned())
            .chain(numbers.iter().map(u32::to_string))
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(highest) = self.highest_found(&found) {
            line.push_str(&format!(" (MODSEQ {highest})"));
        }
        self.untagged(&line);
        self.tagged(tag, "OK Search completed.");
    }

    /// The positions of the selected messages matching `criteria`, or
    /// None with a tagged NO written.
    fn matching(&mut self, tag: &str, charset: Option<&str>, criteria: &SearchKey<'_>) -> Option<Vec<usize>> {
        // any charset encoding_rs knows (ISO-2022-JP, Shift_JIS, EUC-JP…);
        // the BADCHARSET list names the ones Japanese clients send
        let decode: Box<SearchDecoder> = match charset {
            None | Some("UTF-8" | "US-ASCII") => Box::new(|b: &[u8]| String::from_utf8_lossy(b).into_owned()),
            Some(label) => match encoding_rs::Encoding::for_label(label.as_bytes()) {
                Some(encoding) => Box::new(move |b: &[u8]| encoding.decode_without_bom_handling(b).0.into_owned()),
                None => {
                    self.tagged(
                        tag,
                        "NO [BADCHARSET (UTF-8 US-ASCII ISO-2022-JP SHIFT_JIS EUC-JP)] Unsupported charset.",
                    );
                    return None;
                }
            },
        };
        let sel = self.selected.as_ref().expect("selected");
        let recent = |uid: u32| sel.recent.contains(&uid);
        let scope = Scope {
            messages: &sel.folder.messages,
            recent: &recent,
            decode: &*decode,
        };
        match search::search(criteria, &scope) {
            Ok(found) => Some(found),
            Err(e) => {
                self.tagged(tag, &format!("NO {e}"));
                None
            }
        }
    }

    /// SEARCH RETURN (SAVE …): keeps the result as UIDs — all of it, or
    /// with MIN and/or MAX alone, just those (RFC 5182 §2.1).
    fn save(&mut self, found: &[usize], options: &[Return]) {
        let messages = &self.selected.as_ref().expect("selected").folder.messages;
        let uids: Vec<u32> = found.iter().map(|&i| messages[i].uid).collect();
        let whole = options.iter().any(|o| matches!(o, Return::All | Return::Count))
            || !options.iter().any(|o| matches!(o, Return::Min | Return::Max));
        self.saved = if whole {
            uids
        } else {
            let mut kept = Vec::new();
            if options.contains(&Return::Min) {
                kept.extend(uids.first());
            }
            if options.contains(&Return::Max) {
                kept.extend(uids.last());
            }
            kept.dedup();
            kept
        };
    }

    /// For a search with a MODSEQ key, the highest mod-sequence of what it
    /// found (RFC 7162 §3.1.5).
    fn highest_found(&self, found: &[usize]) -> Option<u64> {
        let messages = &self.selected.as_ref()?.folder.messages;
        found
            .iter()
            .map(|&i| messages[i].modseq)
            .max()
            .filter(|_| self.search_modseq)
    }

    /// Sequence numbers (or UIDs) of message positions.
    fn numbers(&self, positions: &[usize], uid: bool) -> Vec<u32> {
        let messages = &self.selected.as_ref().expect("selected").folder.messages;
        positions
            .iter()
            .map(|&i| if uid { messages[i].uid } else { i as u32 + 1 })
            .collect()
    }

    /// SORT, THREAD and SEARCH RETURN: the search keys are imap-codec's,
    /// the rest [`extended`]'s.
    fn extended(&mut self, tag: &str, parsed: Result<Extended, String>) -> Step {
        let command = match parsed {
            Ok(command) => command,
            Err(e) => return self.bad(tag, &format!("{e}.")),
        };
        if self.user.is_none() {
            self.tagged(tag, "BAD Log in first.");
            return Step::Continue;
        }
        if self.selected.is_none() {
            self.tagged(tag, "BAD Select a mailbox first.");
            return Step::Continue;
        }
        let literals = utf8::quoted_to_literals(&command.search);
        let (charset, criteria) = match CommandCodec::default().decode(literals.as_deref().unwrap_or(&command.search)) {
            Ok((
                _,
                Command {
                    body: CommandBody::Search { charset, criteria, .. },
                    ..
                },
            )) => (charset.map(|c| c.as_ref().to_ascii_uppercase()), criteria),
            _ => return self.bad(tag, "Syntax error in the search keys."),
        };
        self.refresh(command.uid);
        let Some(found) = self.matching(tag, charset.as_deref(), &criteria) else {
            return Step::Continue;
        };
        let numbers = self.numbers(&found, command.uid);
        let facts = || {
            let messages = &self.selected.as_ref().expect("selected").folder.messages;
            found
                .iter()
                .zip(&numbers)
                .map(|(&i, &n)| Facts::of(&messages[i], n))
                .collect::<Vec<_>>()
        };
        let (line, done) = match command.kind {
            extended::Kind::Sort(criteria, None) => {
                let mut facts = facts();
                sort::sort(&mut facts, &criteria);
                let sorted: Vec<String> = facts.iter().map(|f| f.number.to_string()).collect();
                (
                    std::iter::once("SORT".to_owned())
                        .chain(sorted)
                        .collect::<Vec<_>>()
                        .join(" "),
                    "OK Sort completed.",
                )
            }
            extended::Kind::Sort(criteria, Some(options)) => {
                let mut facts = facts();
                sort::sort(&mut facts, &criteria);
                let sorted: Vec<u32> = facts.iter().map(|f| f.number).collect();
                (
                    esearch_line(tag, command.uid, &options, &sorted, true),
                    "OK Sort completed.",
                )
            }
            extended::Kind::Thread(algorithm) => {
                let facts = facts();
                let threads = match algorithm {
                    extended::Algorithm::OrderedSubject => thread::ordered_subject(&facts),
                    extended::Algorithm::References => thread::references(&facts),
                };
                let line = if threads.is_empty() {
                    "THREAD".to_owned()
                } else {
                    format!("THREAD {threads}")
                };
                (line, "OK Thread completed.")
            }
            extended::Kind::Esearch(options) => {
                if options.contains(&Return::Save) {
                    self.save(&found, &options);
                }
                if options == [Return::Save] {
                    // RFC 5182 §2.1: SAVE alone answers nothing
                    self.tagged(tag, "OK Search completed, result saved.");
                    return Step::Continue;
                }
                let mut line = esearch_line(tag, command.uid, &options, &numbers, false);
                if let Some(highest) = self.highest_found(&found) {
                    line.push_str(&format!(" MODSEQ {highest}"));
                }
                (line, "OK Search completed.")
            }
        };
        self.untagged(&line);
        self.tagged(tag, done);
        Step::Continue
    }

    fn fetch(&mut self, tag: &str, set: &SequenceSet, items: MacroOrMessageDataItemNames<'_>, uid: bool) {
        let expanded;
        let mut items = match items {
            MacroOrMessageDataItemNames::Macro(m) => {
                expanded = m;
                expanded.expand()
            }
            MacroOrMessageDataItemNames::MessageDataItemNames(items) => items,
        };
        if uid && !items.iter().any(|i| matches!(i, MessageDataItemName::Uid)) {
            items.insert(0, MessageDataItemName::Uid);
        }
        let (changed_since, vanished, modseq_item, raw_set, binary) = match &self.modifiers {
            Some(Modifiers::Fetch {
                set,
                changed_since,
                vanished,
                modseq,
                binary,
                placeholder,
            }) => {
                if *placeholder && !uid {
                    items.retain(|i| !matches!(i, MessageDataItemName::Uid));
                }
                (*changed_since, *vanished, *modseq, set.clone(), binary.clone())
            }
            _ => (None, false, false, String::new(), Vec::new()),
        };
        let condstore = self.condstore;
        let sel = self.selected.as_mut().expect("selected");
        let mut targets = positions(set, &sel.folder.messages, uid);
        if vanished && uid && self.qresync {
            let last = sel.folder.uid_next.saturating_sub(1);
            let present: Vec<u32> = sel.folder.messages.iter().map(|m| m.uid).collect();
            let ranges = modifiers::uid_ranges(&raw_set, last).unwrap_or_default();
            let gone = modifiers::absent(&present, &ranges);
            if !gone.is_empty() {
                self.out
                    .extend_from_slice(format!("* VANISHED (EARLIER) {gone}\r\n").as_bytes());
            }
        }
        if let Some(since) = changed_since {
            targets.retain(|&i| sel.folder.messages[i].modseq > since);
        }
        // RFC 3516 §4.2: a part in a transfer encoding we cannot undo
        if let Some(cte) = targets.iter().find_map(|&i| {
            binary
                .iter()
                .find_map(|b| fetch::unknown_encoding(&sel.folder.messages[i], &b.section))
        }) {
            self.tagged(tag, &format!("NO [UNKNOWN-CTE] Cannot decode {cte}."));
            return;
        }
        // fetching a body without PEEK sets \Seen
        if !sel.read_only && (items.iter().any(fetch::sets_seen) || binary.iter().any(|b| !b.peek)) {
            let unseen: HashSet<u32> = targets
                .iter()
                .map(|&i| &sel.folder.messages[i])
                .filter(|m| !m.has(SEEN))
                .map(|m| m.uid)
                .collect();
            if !unseen.is_empty() {
                let written = self.ctx.folders.update(&sel.path, |f| {
                    for m in f.messages.iter_mut().filter(|m| unseen.contains(&m.uid)) {
                        m.flags |= SEEN;
                    }
                });
                let modseqs = written.map(|(f, ())| f).unwrap_or_default();
                let view = Arc::make_mut(&mut sel.folder);
                for m in view.messages.iter_mut().filter(|m| unseen.contains(&m.uid)) {
                    m.flags |= SEEN;
                    if let Ok(j) = modseqs.messages.binary_search_by_key(&m.uid, |n| n.uid) {
                        m.modseq = modseqs.messages[j].modseq;
                    }
                }
                view.highest_modseq = view.highest_modseq.max(modseqs.highest_modseq);
                if !items.iter().any(|i| matches!(i, MessageDataItemName::Flags)) {
                    items.push(MessageDataItemName::Flags);
                }
                // our own write: not news for the next refresh
                view.stamp = Stamp::of(&sel.path).unwrap_or_default();
            }
        }
        // the same item twice is answered once (clients key answers by
        // item name); beyond that, a command may not name dozens
        let mut unique: Vec<MessageDataItemName<'static>> = Vec::new();
        for item in items {
            let item = item.into_static();
            if !unique.contains(&item) {
                unique.push(item);
            }
        }
        if unique.len() > MAX_FETCH_ITEMS {
            self.bad(
                tag,
                &format!("FETCH names more than {MAX_FETCH_ITEMS} different items."),
            );
            return;
        }
        let modseq = modseq_item
            || changed_since.is_some()
            || (condstore && unique.iter().any(|i| matches!(i, MessageDataItemName::Flags)));
        self.pending_fetch = Some(PendingFetch {
            tag: tag.to_owned(),
            items: unique,
            targets: targets.into(),
            modseq,
            binary,
        });
        self.continue_output();
    }

    /// Writes the next messages of a pending FETCH (up to about
    /// [`FETCH_CHUNK`] bytes), and its tagged answer after the last.
    pub fn continue_output(&mut self) {
        let Some(pending) = &mut self.pending_fetch else { return };
        let Some(sel) = &self.selected else {
            self.pending_fetch = None;
            return;
        };
        while self.out.len() < FETCH_CHUNK
            && let Some(i) = pending.targets.pop_front()
        {
            let Some(m) = sel.folder.messages.get(i) else { continue };
            let mut view = View::new(m);
            self.out.extend_from_slice(format!("* {} FETCH (", i + 1).as_bytes());
            for (n, item) in pending.items.iter().enumerate() {
                if n > 0 {
                    self.out.push(b' ');
                }
                if let Err(e) = fetch::write_item(item, m, &mut view, sel.recent.contains(&m.uid), &mut self.out) {
                    tracing::warn!("FETCH: {e}");
                }
            }
            for (n, item) in pending.binary.iter().enumerate() {
                if n > 0 || !pending.items.is_empty() {
                    self.out.push(b' ');
                }
                fetch::write_binary(item, &mut view, &mut self.out);
            }
            if pending.modseq {
                if self.out.last() != Some(&b'(') {
                    self.out.push(b' ');
                }
                self.out.extend_from_slice(format!("MODSEQ ({})", m.modseq).as_bytes());
            }
            self.out.extend_from_slice(b")\r\n");
        }
        if pending.targets.is_empty() {
            let tag = std::mem::take(&mut pending.tag);
            self.pending_fetch = None;
            self.tagged(&tag, "OK Fetch completed.");
        }
    }

    fn store(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
    ) {
        let sel = self.selected.as_ref().expect("selected");
        if sel.read_only {
            return self.tagged(tag, "NO [READ-ONLY] Mailbox is read-only.");
        }
        let targets: HashSet<u32> = positions(set, &sel.folder.messages, uid)
            .iter()
            .map(|&i| sel.folder.messages[i].uid)
            .collect();
        let (system, mut keywords) = split_flags(flags);
        let junk = keywords.iter().any(|k| k.eq_ignore_ascii_case("$Junk"));
        let not_junk = keywords.iter().any(|k| k.eq_ignore_ascii_case("$NotJunk"));
        let lesson = match (kind, junk, not_junk) {
            (StoreType::Add | StoreType::Replace, true, false) => Some(Class::Spam),
            (StoreType::Add | StoreType::Replace, false, true) => Some(Class::Clean),
            _ => None,
        };
        if let Some(class) = lesson {
            mark_junk(&mut keywords, class);
        }
        let path = sel.path.clone();
        let unchanged_since = match self.modifiers {
            Some(Modifiers::Store { unchanged_since }) => Some(unchanged_since),
            _ => None,
        };
        // RFC 7162 §3.1.3: a message changed since UNCHANGEDSINCE is left
        // alone and named in MODIFIED (checked under the mailbox lock)
        let mut modified: Vec<u32> = Vec::new();
        let result = self.ctx.folders.update(&path, |f| {
            let mut learned = Vec::new();
            for m in f.messages.iter_mut().filter(|m| targets.contains(&m.uid)) {
                if unchanged_since.is_some_and(|n| m.modseq > n) {
                    modified.push(m.uid);
                    continue;
                }
                match kind {
                    StoreType::Replace => {
                        m.flags = system;
                        m.keywords = keywords.clone();
                    }
                    StoreType::Add => {
                        m.flags |= system;
                        if let Some(class) = lesson {
                            // $Junk and $NotJunk exclude each other
                            let other = if class == Class::Spam { "$NotJunk" } else { "$Junk" };
                            m.keywords.retain(|k| !k.eq_ignore_ascii_case(other));
                        }
                        for k in &keywords {
                            if !m.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                                m.keywords.push(k.clone());
                            }
                        }
                    }
                    StoreType::Remove => {
                        m.flags &= !system;
                        m.keywords
                            .retain(|k| !keywords.iter().any(|x| x.eq_ignore_ascii_case(k)));
                    }
                }
                if lesson.is_some() {
                    learned.push((m.uid, m.content.clone()));
                }
            }
            learned
        });
        let (new, learned) = match result {
            Ok(x) => x,
            Err(e) => return self.folder_error(tag, e),
        };
        for (uid, content) in learned {
            let class = lesson.expect("only with a lesson");
            let name = self.selected.as_ref().map(|s| s.name.clone()).unwrap_or_default();
            let keyword = if class == Class::Spam { "$Junk" } else { "$NotJunk" };
            self.train(content, class, format!("STORE {keyword} on {name} UID {uid}"));
        }
        let none = HashSet::new();
        let targets: HashSet<u32> = targets.into_iter().filter(|u| !modified.contains(u)).collect();
        let (quiet, always) = match response {
            StoreResponse::Silent => (&targets, &none),
            StoreResponse::Answer => (&none, &targets),
        };
        let silent = matches!(response, StoreResponse::Silent);
        self.apply(new, HashSet::new(), false, quiet, always);
        if silent && self.condstore {
            // RFC 7162 §3.1.3: .SILENT still tells the new mod-sequences
            let messages = &self.selected.as_ref().expect("selected").folder.messages;
            let mut lines = String::new();
            for (i, m) in messages.iter().enumerate().filter(|(_, m)| targets.contains(&m.uid)) {
                let uid_item = if uid { format!("UID {} ", m.uid) } else { String::new() };
                lines.push_str(&format!("* {} FETCH ({uid_item}MODSEQ ({}))\r\n", i + 1, m.modseq));
            }
            self.out.extend_from_slice(lines.as_bytes());
        }
        if modified.is_empty() {
            self.tagged(tag, "OK Store completed.");
        } else {
            let messages = &self.selected.as_ref().expect("selected").folder.messages;
            let mut numbers: Vec<u32> = modified
                .iter()
                .filter_map(|u| {
                    let i = messages.binary_search_by_key(u, |m| m.uid).ok()?;
                    Some(if uid { *u } else { i as u32 + 1 })
                })
                .collect();
            numbers.sort_unstable();
            self.tagged(
                tag,
                &format!("OK [MODIFIED {}] Conditional STORE failed.", compact(&numbers)),
            );
        }
    }

    fn copy(&mut self, tag: &str, set: &SequenceSet, mailbox: &Mailbox<'_>, uid: bool, is_move: bool) {
        let Some((dest_name, dest_path)) = self.resolve(tag, mailbox) else {
            return;
        };
        self.ensure_inbox(&dest_name, &dest_path);
        if dest_path.kind().ok().flatten() != Some(Kind::File) {
            return self.tagged(tag, "NO [TRYCREATE] Mailbox doesn't exist.");
        }
        let sel = self.selected.as_ref().expect("selected");
        if is_move && sel.read_only {
            return self.tagged(tag, "NO [READ-ONLY] Mailbox is read-only.");
        }
        let source_name = sel.name.clone();
        let source_path = sel.path.clone();
        let messages: Vec<Message> = positions(set, &sel.folder.messages, uid)
            .iter()
            .map(|&i| sel.folder.messages[i].clone())
            .collect();
        if messages.is_empty() {
            return self.tagged(tag, "OK No messages.");
        }
        // a MOVE adds nothing to what the user holds; a COPY does
        let added: u64 = messages.iter().map(|m| m.size() as u64).sum();
        if !is_move && self.over_quota(added, messages.len() as u64) {
            return self.tagged(
                tag,
                "NO [OVERQUOTA] This would go over your quota; delete some mail first.",
            );
        }
        // into Spam: learn spam; out of Spam (not to Trash): learn clean
        let lesson = match (self.is_spam_folder(&source_name), self.is_spam_folder(&dest_name)) {
            (false, true) => Some(Class::Spam),
            (true, false) if !self.is_trash_folder(&dest_name) => Some(Class::Clean),
            _ => None,
        };
        let result = self.ctx.folders.update(&dest_path, |f| {
            let uids: Vec<u32> = messages
                .iter()
                .map(|m| {
                    let mut keywords = m.keywords.clone();
                    if let Some(class) = lesson {
                        mark_junk(&mut keywords, class);
                    }
                    f.push(
                        m.content.to_vec(),
                        m.flags,
                        keywords,
                        UNIX_EPOCH + std::time::Duration::from_secs(m.internal_date().max(0) as u64),
                        Some(m.from_line.clone()),
                    )
                })
                .collect();
            (uids, f.uid_validity)
        });
        let (dest_uids, validity) = match result {
            Ok((_, x)) => x,
            Err(e) => return self.folder_error(tag, e),
        };
        let source_uids: Vec<u32> = messages.iter().map(|m| m.uid).collect();
        if let Some(class) = lesson {
            for m in &messages {
                let verb = if is_move { "MOVE" } else { "COPY" };
                self.train(
                    m.content.clone(),
                    class,
                    format!("{verb} {source_name} -> {dest_name} UID {}", m.uid),
                );
            }
        }
        let code = format!("COPYUID {validity} {} {}", compact(&source_uids), compact(&dest_uids));
        if is_move {
            let moved: HashSet<u32> = source_uids.iter().copied().collect();
            if let Err(e) = self
                .ctx
                .folders
                .update(&source_path, |f| f.messages.retain(|m| !moved.contains(&m.uid)))
            {
                return self.folder_error(tag, e);
            }
            self.untagged(&format!("OK [{code}] Moved."));
            self.refresh(true);
            self.tagged(tag, "OK Move completed.");
        } else {
            self.refresh(false);
            self.tagged(tag, &format!("OK [{code}] Copy completed."));
        }
    }
}

/// `ESEARCH (TAG "t") [UID] MIN … MAX … ALL … COUNT …` (RFC 4731) for
/// `numbers`; for ESORT (RFC 5267, `sorted`) MIN and MAX are the first and
/// last in sort order and ALL keeps that order.
fn esearch_line(tag: &str, uid: bool, options: &[Return], numbers: &[u32], sorted: bool) -> String {
    let mut line = format!("ESEARCH (TAG \"{tag}\")");
    if uid {
        line.push_str(" UID");
    }
    let (min, max) = if sorted {
        (numbers.first(), numbers.last())
    } else {
        (numbers.iter().min(), numbers.iter().max())
    };
    // in Dovecot's order, whatever the request's
    let order = [Return::Min, Return::Max, Return::All, Return::Count];
    for option in order.into_iter().filter(|o| options.contains(o)) {
        match (option, min, max) {
            (Return::Min, Some(min), _) => line.push_str(&format!(" MIN {min}")),
            (Return::Max, _, Some(max)) => line.push_str(&format!(" MAX {max}")),
            (Return::Count, ..) => line.push_str(&format!(" COUNT {}", numbers.len())),
            (Return::All, Some(_), _) => line.push_str(&format!(" ALL {}", compact(numbers))),
            _ => {}
        }
    }
    line
}

impl Drop for Session {
    /// A connection that ends (LOGOUT, a client gone, the server stopping)
    /// leaves its mailbox too.
    fn drop(&mut self) {
        self.leave();
    }
}

/// One message of an APPEND.
struct Appended<'a> {
    flags: Vec<Flag<'a>>,
    date: Option<i64>,
    message: std::borrow::Cow<'a, [u8]>,
}

/// Turns a SEARCH string from the client's charset into UTF-8.
type SearchDecoder = dyn Fn(&[u8]) -> String;

/// For a read-write SELECT: this session takes the `\Recent` messages.
fn claim_recent(folder: &mut Folder) -> HashSet<u32> {
    let mut recent = HashSet::new();
    for m in folder.messages.iter_mut().filter(|m| m.recent) {
        recent.insert(m.uid);
        m.recent = false;
    }
    recent
}

/// The keywords in use in `folder`, beyond the `$Junk` and `$NotJunk` of
/// [`FLAGS`].
fn folder_keywords(folder: &Folder) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for m in &folder.messages {
        for k in &m.keywords {
            if !seen.iter().any(|s| s.eq_ignore_ascii_case(k))
                && !k.eq_ignore_ascii_case("$Junk")
                && !k.eq_ignore_ascii_case("$NotJunk")
            {
                seen.push(k.clone());
            }
        }
    }
    seen
}

/// System flags as bits, keywords as names.
fn split_flags(flags: &[Flag<'_>]) -> (u8, Vec<String>) {
    use crate::mailbox::{ANSWERED, DRAFT, FLAGGED};
    let mut bits = 0;
    let mut keywords: Vec<String> = Vec::new();
    for flag in flags {
        match flag {
            Flag::Seen => bits |= SEEN,
            Flag::Answered => bits |= ANSWERED,
            Flag::Flagged => bits |= FLAGGED,
            Flag::Deleted => bits |= DELETED,
            Flag::Draft => bits |= DRAFT,
            Flag::Keyword(k) => {
                let k = k.as_ref();
                if !keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    keywords.push(k.to_owned());
                }
            }
            Flag::Extension(_) => {}
        }
    }
    (bits, keywords)
}

/// Sets `$Junk` or `$NotJunk` (and drops the other).
fn mark_junk(keywords: &mut Vec<String>, class: Class) {
    let (set, drop) = match class {
        Class::Spam => ("$Junk", "$NotJunk"),
        Class::Clean => ("$NotJunk", "$Junk"),
    };
    keywords.retain(|k| !k.eq_ignore_ascii_case(drop) && !k.eq_ignore_ascii_case(set));
    keywords.push(set.to_owned());
}

/// The tag of a command line, for answering even unparsable commands.
fn tag_of(input: &[u8]) -> String {
    let end = input
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(input.len())
        .min(64);
    let tag = &input[..end];
    if !tag.is_empty() && tag.iter().all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b)) {
        String::from_utf8_lossy(tag).into_owned()
    } else {
        "*".to_owned()
    }
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
