//! The durable queue: an accepted message and its envelope are on disk,
//! synced, before the `250` that gives its queue id.
//!
//! ```text
//! QUEUE/incoming/ID.tmp   being written: removed at start-up (never acknowledged)
//! QUEUE/active/ID         the envelope (see envelope.rs) then the message
//! QUEUE/state/ID          what became of each recipient, rewritten whole
//! QUEUE/lock              held (flock) by the mtad that owns the queue
//! QUEUE/control           its socket for `mtad queue …`
//! ```
//!
//! A commit writes `incoming/ID.tmp`, syncs its data, renames it into
//! `active/` and syncs that directory: after a crash a message is either
//! wholly in `active/` (acknowledged or about to be) or not at all. The
//! state file is replaced the same way after each delivery attempt; losing
//! an update (a crash between a delivery and its record) delivers that
//! recipient again — at least once, never a half message.
//!
//! Group commit: each session syncs its own message, and the sessions do
//! it at once — the filesystem commits concurrent fsyncs together.
//! Measured on this machine (5 KB files, each with its directory sync):
//! one writer 2,231 commits/s, 4 at once 6,131/s, 10 at once 11,113/s; a
//! single committer thread syncing a batch's files one after another
//! reached 3,476/s, and one syncfs per batch 2,704/s. So the sessions
//! sync their files concurrently (each in a blocking thread of its own),
//! and share the directory's sync: one that begins after a commit's
//! rename covers every commit waiting for it ([`DirSync`]).

use std::fs::File;
use std::io::{self, Read, Seek, Write};

/// The lines of a stored message (each ending in `\n`, as the queue
/// keeps them), each without its line end.
pub fn lines(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    message.split_inclusive(|&b| b == b'\n').map(|line| {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        content.strip_suffix(b"\r").unwrap_or(content)
    })
}

/// A stored message with the line ends it had on the wire, CRLF: what
/// DKIM signs and verifies (simple canonicalization hashes the bytes as
/// sent; measured: every dkimpy signature with simple header
/// canonicalization failed on the stored form and passes on this one).
pub fn with_crlf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 2);
    for line in lines(message) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::envelope::Envelope;

/// A queue id: 16 upper-case hex digits (the accept time in microseconds
/// and a counter), as Postfix's short ids are hex.
pub type QueueId = String;

/// Whether `id` could be a queue id (a tool's argument, a file name).
pub fn is_queue_id(id: &str) -> bool {
    (8..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// What became of one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    /// Delivered (or relayed).
    Sent,
    /// Failed for good; the sender is told.
    Bounced,
    /// Failed for now; tried again later.
    Deferred,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Bounced => "bounced",
            Status::Deferred => "deferred",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "sent" => Status::Sent,
            "bounced" => Status::Bounced,
            "deferred" => Status::Deferred,
            _ => return None,
        })
    }

    /// Final: nothing more to do for this recipient.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Sent | Status::Bounced)
    }
}

/// One recipient's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientState {
    pub status: Status,
    pub attempts: u32,
    /// Unix seconds of the next attempt (deferred).
    pub next_attempt: u64,
    /// The enhanced status code of the last attempt (`2.0.0`, `4.4.1`).
    pub dsn: String,
    /// Where it went (`local`, `mx.example.net[192.0.2.25]:25`).
    pub relay: String,
    /// What the last attempt said.
    pub reply: String,
    /// Sent to a next hop that took the DSN request: it reports, not us.
    pub dsn_passed_on: bool,
}

impl Default for RecipientState {
    fn default() -> Self {
        RecipientState {
            status: Status::Pending,
            attempts: 0,
            next_attempt: 0,
            dsn: String::new(),
            relay: String::new(),
            reply: String::new(),
            dsn_passed_on: false,
        }
    }
}

/// A message's delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// Held by the administrator: not delivered until released.
    pub held: bool,
    pub recipients: Vec<RecipientState>,
}

fn one_word(text: &str) -> String {
    let t: String = text
        .chars()
        .map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c })
        .collect();
    if t.is_empty() { "-".into() } else { t }
}

impl State {
    /// A state with every one of `n` recipients pending.
    pub fn new(n: usize) -> State {
        State {
            held: false,
            recipients: vec![RecipientState::default(); n],
        }
    }

    fn write(&self) -> String {
        let mut text = format!("held {}\n", u8::from(self.held));
        for r in &self.recipients {
            let reply: String = r.reply.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            text.push_str(&format!(
                "rcpt {} {} {} {} {} {} {reply}\n",
                r.status.name(),
                r.attempts,
                r.next_attempt,
                one_word(&r.dsn),
                one_word(&r.relay),
                if r.dsn_passed_on { "dsn-passed-on" } else { "-" },
            ));
        }
        text
    }

    fn parse(text: &str) -> Option<State> {
        let mut state = State::default();
        for line in text.lines() {
            let (key, rest) = line.split_once(' ')?;
            match key {
                "held" => state.held = rest == "1",
                "rcpt" => {
                    let mut words = rest.splitn(7, ' ');
                    let word = |w: Option<&str>| w.filter(|w| *w != "-").unwrap_or("").to_owned();
                    state.recipients.push(RecipientState {
                        status: Status::parse(words.next()?)?,
                        attempts: words.next()?.parse().ok()?,
                        next_attempt: words.next()?.parse().ok()?,
                        dsn: word(words.next()),
                        relay: word(words.next()),
                        dsn_passed_on: words.next()? == "dsn-passed-on",
                        reply: words.next().unwrap_or("").to_owned(),
                    });
                }
                _ => {}
            }
        }
        Some(state)
    }
}

/// The queue directory.
#[derive(Debug)]
pub struct Queue {
    dir: PathBuf,
    counter: AtomicU32,
    /// The flock on `lock`, while this process owns the queue.
    _lock: Option<File>,
    active_sync: DirSync,
    state_sync: DirSync,
}

/// The queue is owned by another process.
#[derive(Debug)]
pub struct QueueBusy(pub PathBuf);

impl std::fmt::Display for QueueBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: another mtad is using this queue", self.0.display())
    }
}

impl std::error::Error for QueueBusy {}

/// A directory's syncs, shared by the threads that need one (group
/// commit): a caller waits for a sync that began after its change, and
/// one sync covers every caller that arrived while the one before it
/// ran. Ten sessions committing at once then cost one or two directory
/// syncs, not ten.
#[derive(Debug)]
struct DirSync {
    path: PathBuf,
    state: std::sync::Mutex<Syncs>,
    finished: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct Syncs {
    started: u64,
    finished: u64,
    running: bool,
    /// The last sync that failed, and how.
    failed: Option<(u64, io::ErrorKind, String)>,
}

impl DirSync {
    fn new(path: PathBuf) -> DirSync {
        DirSync {
            path,
            state: Default::default(),
            finished: Default::default(),
        }
    }

    /// Returns once a sync of the directory that began after this call
    /// has ended.
    fn sync(&self) -> io::Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let needed = s.started + 1;
        loop {
            if s.finished >= needed {
                return match &s.failed {
                    // a later failure may be reported too: the commit
                    // fails, the client tries again
                    Some((at, kind, text)) if *at >= needed => Err(io::Error::new(*kind, text.clone())),
                    _ => Ok(()),
                };
            }
            if s.running {
                s = self.finished.wait(s).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            s.running = true;
            s.started += 1;
            let ticket = s.started;
            drop(s);
            let result = File::open(&self.path).and_then(|d| d.sync_all());
            s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.running = false;
            s.finished = ticket;
            if let Err(e) = result {
                s.failed = Some((ticket, e.kind(), e.to_string()));
            }
            self.finished.notify_all();
        }
    }
}

impl Queue {
    /// Opens (creating) the queue at `dir` and takes it for this process:
    /// only one mtad delivers from a queue.
    pub fn open(dir: &Path) -> io::Result<Queue> {
        let queue = Queue::open_shared(dir)?;
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(dir.join("lock"))?;
        // SAFETY: flock on an open descriptor.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io::Error::other(QueueBusy(dir.to_owned())));
        }
        for leftover in std::fs::read_dir(dir.join("incoming"))?.flatten() {
            let _ = std::fs::remove_file(leftover.path());
        }
        Ok(Queue {
            _lock: Some(lock),
            ..queue
        })
    }

    /// Opens the queue without taking it (a tool reading it while mtad
    /// runs; changes go through mtad's control socket).
    pub fn open_shared(dir: &Path) -> io::Result<Queue> {
        for sub in ["incoming", "active", "state"] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir.join(sub))?;
        }
        Ok(Queue::reader(dir))
    }

    /// The queue at `dir`, to read queued messages only (the delivery
    /// helper): nothing is created, nothing taken.
    pub fn reader(dir: &Path) -> Queue {
        Queue {
            dir: dir.to_owned(),
            counter: AtomicU32::new(0),
            _lock: None,
            active_sync: DirSync::new(dir.join("active")),
            state_sync: DirSync::new(dir.join("state")),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The control socket's path.
    pub fn control_path(&self) -> PathBuf {
        self.dir.join("control")
    }

    /// A new queue id.
    pub fn new_id(&self) -> QueueId {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{:012X}{:04X}", micros & 0xFFFF_FFFF_FFFF, n & 0xFFFF)
    }

    fn active(&self, id: &str) -> PathBuf {
        self.dir.join("active").join(id)
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.dir.join("state").join(id)
    }

    /// Puts a message in the queue, durably: when this returns Ok, the
    /// message survives a crash. Blocking (file I/O and fsync).
    pub fn commit(&self, id: &str, envelope: &Envelope, message: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join("incoming").join(format!("{id}.tmp"));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut head = Vec::with_capacity(512);
            envelope.write(&mut head);
            file.write_all(&head)?;
            file.write_all(message)?;
            file.sync_data()?;
            std::fs::rename(&tmp, self.active(id))?;
            self.active_sync.sync()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Every queued message's id.
    pub fn list(&self) -> io::Result<Vec<QueueId>> {
        let mut ids: Vec<QueueId> = std::fs::read_dir(self.dir.join("active"))?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_queue_id(n))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// A queued message's envelope, and its file positioned at the
    /// message's first byte with the message's length. Only a regular
    /// file with one link, owned by the queue's owner, is a queued message
    /// (the root delivery helper reads through this).
    pub fn open_message(&self, id: &str) -> io::Result<(Envelope, File, u64)> {
        use std::os::unix::fs::MetadataExt;
        if !is_queue_id(id) {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(self.active(id))?;
        let meta = file.metadata()?;
        let owner = std::fs::metadata(self.dir.join("active"))?.uid();
        if !meta.is_file() || meta.nlink() != 1 || meta.uid() != owner {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{id}: not a queue file (a link, or not the queue's owner's)"),
            ));
        }
        let mut head = vec![0u8; 64 * 1024];
        let n = read_up_to(&mut file, &mut head)?;
        head.truncate(n);
        let (envelope, at) = Envelope::read(&head)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{id}: bad envelope")))?;
        let len = file.metadata()?.len().saturating_sub(at as u64);
        file.seek(io::SeekFrom::Start(at as u64))?;
        Ok((envelope, file, len))
    }

    /// A queued message's envelope and content.
    pub fn load(&self, id: &str) -> io::Result<(Envelope, Vec<u8>)> {
        let (envelope, mut file, len) = self.open_message(id)?;
        let mut message = Vec::with_capacity(len as usize);
        file.read_to_end(&mut message)?;
        Ok((envelope, message))
    }

    /// A message's state; a fresh one (all pending) when it has none yet.
    pub fn state(&self, id: &str, recipients: usize) -> io::Result<State> {
        match std::fs::read_to_string(self.state_path(id)) {
            Ok(text) => {
                let mut state = State::parse(&text)
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{id}: bad state file")))?;
                state.recipients.resize(recipients, RecipientState::default());
                Ok(state)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::new(recipients)),
            Err(e) => Err(e),
        }
    }

    /// Records a message's state, durably.
    pub fn save_state(&self, id: &str, state: &State) -> io::Result<()> {
        let tmp = self.dir.join("state").join(format!(".{id}.tmp"));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(state.write().as_bytes())?;
            file.sync_data()?;
            std::fs::rename(&tmp, self.state_path(id))?;
            self.state_sync.sync()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Removes a message that is done with (or deleted). Not synced: a
    /// removal lost in a crash delivers the message again, which a crash
    /// between a delivery and its record does anyway (at least once), and
    /// a sync here was one of four per message (as Postfix, which does
    /// not sync its removals either).
    pub fn remove(&self, id: &str) -> io::Result<()> {
        if !is_queue_id(id) {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let _ = std::fs::remove_file(self.state_path(id));
        std::fs::remove_file(self.active(id))
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Recipient;

    fn envelope() -> Envelope {
        let client = ("client.example.org", "192.0.2.1".parse().unwrap());
        Envelope {
            arrival: UNIX_EPOCH,
            ..Envelope::new(
                "a@example.org",
                vec![Recipient::new("b@example.jp", Some("b"))],
                client,
                "client.example.org",
                "ESMTP",
            )
        }
    }

    #[test]
    fn commit_list_load_state_remove() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path()).unwrap();
        let id = queue.new_id();
        assert!(is_queue_id(&id), "{id}");
        assert_ne!(queue.new_id(), id);
        queue.commit(&id, &envelope(), b"Subject: x\n\nbody\n").unwrap();
        assert_eq!(queue.list().unwrap(), std::slice::from_ref(&id));
        let (e, message) = queue.load(&id).unwrap();
        assert_eq!((e, message), (envelope(), b"Subject: x\n\nbody\n".to_vec()));
        let mut state = queue.state(&id, 1).unwrap();
        assert_eq!(state, State::new(1));
        state.recipients[0] = RecipientState {
            status: Status::Deferred,
            attempts: 2,
            next_attempt: 99,
            dsn: "4.4.1".into(),
            relay: "mx.example.net[192.0.2.25]:25".into(),
            reply: "451 4.4.1 try again".into(),
            dsn_passed_on: true,
        };
        state.held = true;
        queue.save_state(&id, &state).unwrap();
        assert_eq!(queue.state(&id, 1).unwrap(), state);
        queue.remove(&id).unwrap();
        assert!(queue.list().unwrap().is_empty());
        // a second owner is refused while the first holds the queue
        assert!(Queue::open(dir.path()).is_err());
        drop(queue);
        assert!(Queue::open(dir.path()).is_ok());
    }

    proptest::proptest! {
        // a state file damaged by anything: read or refused, no panic;
        // and any reply text survives its trip through the file
        #[test]
        fn hostile_state_files(text in "(?s).{0,300}") {
            let _ = State::parse(&text);
        }

        #[test]
        fn replies_round_trip(reply in "\\PC{0,80}", relay in "\\PC{0,30}", attempts in 0u32..1000) {
            let state = State {
                held: false,
                recipients: vec![RecipientState {
                    status: Status::Deferred,
                    attempts,
                    next_attempt: 7,
                    dsn: "4.4.1".into(),
                    relay,
                    reply: reply.clone(),
                    dsn_passed_on: false,
                }],
            };
            let read = State::parse(&state.write()).expect("reads back");
            proptest::prop_assert_eq!(read.recipients[0].attempts, attempts);
            proptest::prop_assert_eq!(&read.recipients[0].reply, &reply);
        }
    }

    #[test]
    fn directory_syncs_are_shared_never_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let syncs = std::sync::Arc::new(DirSync::new(dir.path().to_owned()));
        // one after another: each call has a sync of its own
        for _ in 0..3 {
            syncs.sync().unwrap();
        }
        assert_eq!(syncs.state.lock().unwrap().started, 3);
        // at once: every call answered, by at most one sync each
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let syncs = syncs.clone();
                std::thread::spawn(move || (0..20).try_for_each(|_| syncs.sync()))
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let s = syncs.state.lock().unwrap();
        assert!(s.started <= 3 + 16 * 20 && s.finished == s.started && !s.running);
        // a directory that is gone: the error reaches the caller
        let gone = DirSync::new(dir.path().join("gone"));
        assert_eq!(gone.sync().unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn an_unfinished_commit_is_gone_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("incoming/0000000000000000.tmp"), b"half").unwrap();
        drop(queue);
        let queue = Queue::open(dir.path()).unwrap();
        assert!(std::fs::read_dir(dir.path().join("incoming")).unwrap().next().is_none());
        assert!(queue.list().unwrap().is_empty());
        assert!(queue.load("../etc").is_err(), "only queue ids");
    }
}
