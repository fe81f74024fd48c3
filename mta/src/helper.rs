//! The delivery helper: the one part of mtad that keeps the rights local
//! delivery needs, as Postfix's `local` runs as root while `smtpd` runs
//! as `postfix`.
//!
//! mtad starts it (itself, re-executed with `--delivery-helper`) before
//! it becomes its service user. For each local delivery the helper opens
//! the queued message, forks a child, and the child does what lda does
//! — becomes the recipient, filters, appends whole or not at all (the lda
//! library's [`lda::deliver::as_recipient`]) — and exits with lda's exit
//! code, which decides as lda's always did. The SMTP sessions, the queue
//! and the SMTP client never hold uid 0.
//!
//! Forked, not exec'd: starting a program costs 0.66 ms of CPU on this
//! kind of machine even for `/bin/true` (the dynamic loader's probing of
//! the CPU traps to the hypervisor) and lda's start-up 0.73 ms — more than
//! the rest of a delivery, and half of all that Postfix spends on a
//! message, whose `local` is a process that lives for 100 deliveries.
//! Forking this small single-threaded process costs about a tenth of that
//! (bench/mtad-vs-postfix.sh). So the helper never has a second thread:
//! a child of a multi-threaded process may not safely allocate. A child
//! delivers every message that queued up for its recipient meanwhile:
//! a mailbox is locked and synced once for them all (lda's
//! [`lda::deliver::deliver_all`]), and its sync is what bounds delivery
//! into one mailbox.
//!
//! The message comes from the queue file, not a pipe: a child reads the
//! file it was given open, so a dying mtad cannot cut a message short
//! (lda would deliver the half it had read). The helper opens only queue
//! files (a queue id's name under `active/`, no link followed) owned by
//! the queue's owner with one link: a subverted mtad can show it nothing
//! mtad could not read itself.
//!
//! The protocol, over the helper's stdin and stdout:
//!
//! ```text
//! mtad → helper:  REQUEST QUEUE_ID USER\n
//! helper → mtad:  REQUEST CODE TEXT\n     (CODE: lda's exit code, -1 for a signal)
//! ```
//!
//! USER is hex (any byte may be in a name); requests run at once, up to
//! [`MAX_CHILDREN`] children at a time, one per recipient with all of
//! that recipient's requests (see [`serve`]); answers come in the order
//! deliveries end. The configuration is read once, at start: mtad is
//! restarted after changes.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use bsfilter::error::exit;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::delivery::Outcome;
use crate::delivery::local::{Filed, outcome_of};
use crate::queue::Queue;

/// Children (recipients being delivered to) at once; more requests wait
/// their turn.
pub const MAX_CHILDREN: usize = 64;

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

/// One request, parsed.
struct Request {
    id: u64,
    queue_id: String,
    user: String,
}

fn parse_request(line: &[u8]) -> Option<Request> {
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    let (id, queue_id, user) = (words.next()?, words.next()?, words.next()?);
    if words.next().is_some() || !crate::queue::is_queue_id(queue_id) {
        return None;
    }
    Some(Request {
        id: id.parse().ok()?,
        queue_id: queue_id.to_owned(),
        user: unhex(user)?,
    })
}

/// A delivery under way: the child, the requests it serves, and the pipe
/// it writes their results into (its end closes when the child ends).
struct Running {
    pid: libc::pid_t,
    user: String,
    ids: Vec<u64>,
    said: OwnedFd,
    text: Vec<u8>,
}

/// The helper's loop (`mtad --delivery-helper [CONFIG]`): serves
/// requests from stdin until it closes and the last delivery has ended.
/// One child at a time per recipient, taking every request for them that
/// has queued up (up to [`MAX_BATCH`]): their mailbox is locked once and
/// synced once for all.
pub fn serve(config_path: Option<PathBuf>) -> i32 {
    let file = match lda::config::ConfigFile::load(config_path.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mtad delivery helper: {e}");
            return exit::CONFIG;
        }
    };
    let (delivery, mtad) = match (
        lda::config::Config::from_file(&file),
        crate::config::MtadConfig::from_file(&file),
    ) {
        (Ok(d), Ok(m)) => (d, m),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("mtad delivery helper: {e}");
            return exit::CONFIG;
        }
    };
    let queue = Queue::reader(&mtad.queue_dir);
    let mut input: Vec<u8> = Vec::new();
    let mut input_open = true;
    let mut waiting: VecDeque<Request> = VecDeque::new();
    let mut running: Vec<Running> = Vec::new();
    let mut out = std::io::stdout().lock();
    loop {
        let mut k = 0;
        while k < waiting.len() && running.len() < MAX_CHILDREN {
            let user = waiting[k].user.clone();
            if running.iter().any(|r| r.user == user) {
                k += 1;
                continue;
            }
            let mut batch = Vec::new();
            let mut j = k;
            while j < waiting.len() && batch.len() < MAX_BATCH {
                if waiting[j].user == user {
                    batch.push(waiting.remove(j).expect("in range"));
                } else {
                    j += 1;
                }
            }
            // nothing buffered may be copied into a child
            let _ = out.flush();
            if let Some(child) = start(&delivery, &queue, user, batch, &mut out) {
                running.push(child);
            }
        }
        if !input_open && running.is_empty() && waiting.is_empty() {
            return 0;
        }
        let mut fds: Vec<libc::pollfd> = running
            .iter()
            .map(|r| libc::pollfd {
                fd: r.said.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // a full backlog is left in the pipe: mtad waits, not our memory
        let reading = input_open && waiting.len() < MAX_WAITING;
        if reading {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: `fds` is a valid array of its length.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return exit::OSERR;
        }
        if reading && fds.last().is_some_and(|f| f.revents != 0) {
            let mut buf = [0u8; 8192];
            // SAFETY: reading into a buffer of its length.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                input_open = false;
            } else {
                input.extend_from_slice(&buf[..n as usize]);
                while let Some(end) = memchr::memchr(b'\n', &input) {
                    let line: Vec<u8> = input.drain(..=end).collect();
                    match parse_request(&line[..end]) {
                        Some(r) => waiting.push_back(r),
                        None => return exit::DATAERR, // not mtad talking
                    }
                }
                if input.len() > 4096 {
                    return exit::DATAERR;
                }
            }
        }
        let mut k = 0;
        for f in &fds[..running.len()] {
            if f.revents == 0 {
                k += 1;
                continue;
            }
            let r = &mut running[k];
            let mut buf = [0u8; 4096];
            // SAFETY: reading into a buffer of its length.
            let n = unsafe { libc::read(r.said.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                if r.text.len() < 1 << 20 {
                    r.text.extend_from_slice(&buf[..n as usize]);
                }
                k += 1;
                continue;
            }
            let r = running.remove(k);
            let code = reap(r.pid);
            let said = String::from_utf8_lossy(&r.text);
            let mut answered = Vec::new();
            for line in said.lines() {
                let mut words = line.splitn(3, ' ');
                let (Some(Ok(id)), Some(Ok(code))) = (words.next().map(str::parse), words.next().map(str::parse))
                else {
                    continue;
                };
                if r.ids.contains(&id) && !answered.contains(&id) {
                    answered.push(id);
                    answer(&mut out, id, code, words.next().unwrap_or(""));
                }
            }
            for &id in r.ids.iter().filter(|id| !answered.contains(id)) {
                let why = if code < 0 {
                    "killed by a signal"
                } else {
                    "ended without an answer"
                };
                answer(&mut out, id, -1, &format!("the delivery {why}"));
            }
        }
    }
}

/// The requests the helper holds before it leaves the rest in its pipe.
const MAX_WAITING: usize = 4096;

/// The most messages one child delivers.
pub const MAX_BATCH: usize = 64;

fn answer(out: &mut (impl Write + ?Sized), id: u64, code: i32, text: &str) {
    let line = format!("{id} {code} {}\n", text.replace(['\n', '\r'], " "));
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// The exit code of `pid` once it has ended (-1: killed by a signal).
fn reap(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return -1;
        }
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    }
}

/// A message a child delivers: its request, sender and open queue file.
struct Opened {
    id: u64,
    sender: String,
    file: std::fs::File,
}

/// Opens the batch's messages (one that cannot be is answered at once)
/// and forks the child that delivers them.
fn start(
    delivery: &lda::config::Config,
    queue: &Queue,
    user: String,
    batch: Vec<Request>,
    out: &mut impl Write,
) -> Option<Running> {
    let mut opened = Vec::new();
    for request in batch {
        match queue.open_message(&request.queue_id) {
            Ok((envelope, file, _)) => opened.push(Opened {
                id: request.id,
                sender: envelope.sender,
                file,
            }),
            Err(e) => answer(
                out,
                request.id,
                exit::TEMPFAIL,
                &format!("queue file {}: {e}", request.queue_id),
            ),
        }
    }
    if opened.is_empty() {
        return None;
    }
    let ids: Vec<u64> = opened.iter().map(|o| o.id).collect();
    let fail_all = |out: &mut dyn Write, why: String| {
        for &id in &ids {
            answer(out, id, exit::TEMPFAIL, &why);
        }
    };
    let mut pipe = [0; 2];
    // SAFETY: `pipe` has room for the two descriptors.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        fail_all(out, format!("pipe: {}", std::io::Error::last_os_error()));
        return None;
    }
    // SAFETY: both descriptors were just created and are ours alone.
    let (said, mut say) = unsafe { (OwnedFd::from_raw_fd(pipe[0]), std::fs::File::from_raw_fd(pipe[1])) };
    // SAFETY: this process has one thread (see the module's comment), so
    // the child may do anything the parent could.
    match unsafe { libc::fork() } {
        -1 => {
            fail_all(out, format!("fork: {}", std::io::Error::last_os_error()));
            None
        }
        0 => {
            drop(said);
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                deliver_in_child(delivery, &user, opened, &mut say)
            }))
            .unwrap_or(exit::SOFTWARE);
            // SAFETY: ending the child without the parent's exit handlers
            // (nothing of the parent's may be flushed twice).
            unsafe { libc::_exit(code) }
        }
        pid => Some(Running {
            pid,
            user,
            ids,
            said,
            text: Vec::new(),
        }),
    }
}

/// The child: stdin and stdout away from mtad's pipes, then lda's
/// delivery; a line `REQUEST CODE TEXT` for each message goes into `say`.
fn deliver_in_child(delivery: &lda::config::Config, user: &str, opened: Vec<Opened>, say: &mut std::fs::File) -> i32 {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        // SAFETY: duplicating a descriptor we own onto 0 and 1.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
    // Writing past `ulimit -f` must fail the write (and be rolled back),
    // not kill the child mid-message (as lda's main does).
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let mut files: Vec<std::fs::File> = Vec::with_capacity(opened.len());
    let mut senders = Vec::with_capacity(opened.len());
    let mut ids = Vec::with_capacity(opened.len());
    for o in opened {
        ids.push(o.id);
        senders.push(o.sender);
        files.push(o.file);
    }
    let mut messages: Vec<(&str, &mut dyn std::io::Read)> = senders
        .iter()
        .map(String::as_str)
        .zip(files.iter_mut().map(|f| f as &mut dyn std::io::Read))
        .collect();
    let results: Vec<(i32, String)> = match lda::deliver::all_as_recipient(delivery, Some(user), None, &mut messages) {
        Ok((_, results)) => results
            .into_iter()
            .map(|r| match r {
                Ok(outcome) => (0, Filed::of(&outcome).to_string()),
                Err(failure) => (failure.code, failure.message),
            })
            .collect(),
        Err(failure) => ids.iter().map(|_| (failure.code, failure.message.clone())).collect(),
    };
    let mut text = String::new();
    for (id, (code, said)) in ids.iter().zip(results) {
        text.push_str(&format!("{id} {code} {}\n", said.replace(['\n', '\r'], " ")));
    }
    match say.write_all(text.as_bytes()) {
        Ok(()) => 0,
        Err(_) => exit::IOERR,
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
    /// Starts the helper (while still root, before dropping privileges).
    /// `exe` is mtad itself.
    pub fn start(exe: &Path, config: Option<&Path>) -> std::io::Result<Helper> {
        let mut command = tokio::process::Command::new(exe);
        command.arg("--delivery-helper");
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

    /// Delivers the queued message `queue_id` to the local `user`.
    pub async fn deliver(&self, queue_id: &str, user: &str) -> Outcome {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        let request = format!("{id} {queue_id} {}\n", hex(user));
        let sent = {
            let mut stdin = self.stdin.lock().await;
            match stdin.write_all(request.as_bytes()).await {
                Ok(()) => stdin.flush().await,
                Err(e) => Err(e),
            }
        };
        if let Err(e) = sent {
            self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            return Outcome::deferred("4.3.0", &format!("delivery helper: {e}"), "local");
        }
        match rx.await {
            Ok((0, text)) => {
                if let Some(filed) = Filed::parse(&text) {
                    tracing::info!(
                        event = "delivered",
                        queue_id = %queue_id,
                        verdict = filed.verdict,
                        probability = filed.probability.unwrap_or(f64::NAN),
                        user = ?user,
                        mailbox = ?filed.mailbox,
                        "filed"
                    );
                }
                outcome_of(Some(0), &text)
            }
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

    proptest::proptest! {
        #[test]
        fn any_request_line(line in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..120)) {
            if let Some(r) = parse_request(&line) {
                proptest::prop_assert!(crate::queue::is_queue_id(&r.queue_id));
            }
        }
    }

    #[test]
    fn requests() {
        let r = parse_request(b"7 0123456789ABCDEF 616c696365").unwrap();
        assert_eq!(
            (r.id, r.queue_id.as_str(), r.user.as_str()),
            (7, "0123456789ABCDEF", "alice")
        );
        for bad in [
            &b"7 ../../etc/shadow 616c696365"[..],
            b"7 0123456789ABCDEF",
            b"x 0123456789ABCDEF 61",
            b"7 0123456789ABCDEF 61 extra",
            b"7 0123456789ABCDEF zz",
        ] {
            assert!(parse_request(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
