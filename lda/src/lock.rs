//! Mailbox locking as Debian policy, procmail and Dovecot do it: a dotlock
//! (`MBOX.lock`, created with `O_EXCL`) and then an fcntl write lock on the
//! mbox itself, both waited for up to a timeout.
//!
//! The dotlock also carries what a crashed writer needs undone: before
//! appending, the writer records the mbox length and the first bytes it
//! is about to write. Whoever next finds that dotlock stale (its process is
//! gone, or it is older than the stale timeout) and the mbox still ending
//! in that half-written message, truncates it back — so a deliverer killed
//! with SIGKILL mid-write leaves no partial message for long, and none that
//! a reader taking the lock would see.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Why a lock could not be had.
#[derive(Debug)]
pub enum LockError {
    /// Still held by someone else after the timeout.
    Timeout(PathBuf),
    Io(PathBuf, std::io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Timeout(p) => write!(f, "{} is locked by another process", p.display()),
            LockError::Io(p, e) => write!(f, "cannot lock {}: {e}", p.display()),
        }
    }
}

/// How long to wait, and when a dotlock is stale.
#[derive(Debug, Clone, Copy)]
pub struct LockTimeouts {
    pub wait: Duration,
    pub stale_after: Duration,
}

impl Default for LockTimeouts {
    fn default() -> Self {
        LockTimeouts {
            wait: Duration::from_secs(30),
            stale_after: Duration::from_secs(600),
        }
    }
}

/// An mbox held under both locks. Dropping it releases them.
pub struct LockedMbox {
    file: File,
    dotlock: PathBuf,
    /// The dotlock, kept open to record a pending append in place.
    dotlock_file: File,
}

pub fn dotlock_path(mbox: &Path) -> PathBuf {
    let mut p = mbox.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// What an appending writer left in its dotlock.
#[derive(Debug, PartialEq, Eq)]
struct PendingAppend {
    pid: Option<u32>,
    from: u64,
    prefix: Vec<u8>,
}

impl PendingAppend {
    fn parse(content: &[u8]) -> PendingAppend {
        let mut pending = PendingAppend {
            pid: None,
            from: 0,
            prefix: Vec::new(),
        };
        let mut from = None;
        for line in content.split(|&b| b == b'\n') {
            let Some(eq) = line.iter().position(|&b| b == b'=') else {
                // procmail and Dovecot write a bare pid (or nothing)
                if let Some(pid) = std::str::from_utf8(line).ok().and_then(|l| l.trim().parse().ok()) {
                    pending.pid = Some(pid);
                }
                continue;
            };
            let (key, value) = (&line[..eq], &line[eq + 1..]);
            match key {
                b"pid" => pending.pid = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()),
                b"append-from" => from = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()),
                b"append-prefix" => pending.prefix = hex_decode(value).unwrap_or_default(),
                _ => {}
            }
        }
        pending.from = from.unwrap_or(u64::MAX);
        pending
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl LockedMbox {
    /// Locks (creating it with mode 0600 when missing) the mbox at `path`.
    pub fn lock(path: &Path, timeouts: LockTimeouts) -> Result<LockedMbox, LockError> {
        let deadline = Instant::now() + timeouts.wait;
        let dotlock = dotlock_path(path);
        let mut recovered = None;
        let mut pause = Duration::from_millis(1);
        // 1. the dotlock
        let dotlock_file = loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&dotlock)
            {
                Ok(mut f) => {
                    let _ = f.write_all(format!("{}\n", std::process::id()).as_bytes());
                    break f;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if let Some((pending, judged)) = stale_dotlock(&dotlock, timeouts.stale_after) {
                        // Remove it only if it is still the one we judged: its
                        // owner may have finished and another process created
                        // a new dotlock meanwhile (often on the same inode).
                        let unchanged = read_dotlock(&dotlock).is_some_and(|now| now == judged);
                        if unchanged && std::fs::remove_file(&dotlock).is_ok() {
                            recovered = Some(pending);
                        }
                        continue;
                    }
                }
                Err(e) => return Err(LockError::Io(dotlock, e)),
            }
            if Instant::now() >= deadline {
                return Err(LockError::Timeout(path.to_owned()));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        // From here the dotlock is ours: remove it on every failure.
        let release = |e: LockError| {
            let _ = std::fs::remove_file(&dotlock);
            e
        };
        // 2. fcntl on the mbox itself
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| release(LockError::Io(path.to_owned(), e)))?;
        loop {
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = libc::F_WRLCK as _;
            fl.l_whence = libc::SEEK_SET as _;
            // SAFETY: fd is open for the life of `file`; fl is a valid flock.
            let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) };
            if r == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if !matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::EACCES | libc::EINTR)) {
                return Err(release(LockError::Io(path.to_owned(), err)));
            }
            if Instant::now() >= deadline {
                return Err(release(LockError::Timeout(path.to_owned())));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        let mut locked = LockedMbox {
            file,
            dotlock,
            dotlock_file,
        };
        if let Some(pending) = recovered {
            locked
                .undo_partial_append(&pending)
                .map_err(|e| LockError::Io(path.to_owned(), e))?;
        }
        Ok(locked)
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Records, in the dotlock, that `prefix` is about to be written at
    /// offset `from`, for whoever must undo it if this process dies.
    pub fn announce_append(&mut self, from: u64, prefix: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        // One write over the pid line, which is shorter, so nothing of it
        // is left: a reader never sees a half-written announcement. Not
        // reopened with O_TRUNC: ext4 then flushes the file on close, and
        // removing it afterwards waits for that — 0.4 ms of a delivery.
        let text = format!(
            "pid={}\nappend-from={from}\nappend-prefix={}\n",
            std::process::id(),
            hex_encode(prefix)
        );
        self.dotlock_file.write_all_at(text.as_bytes(), 0)
    }

    /// Truncates the mbox back to where a dead writer started, if it still
    /// ends with what that writer announced.
    fn undo_partial_append(&mut self, pending: &PendingAppend) -> std::io::Result<()> {
        let len = self.file.metadata()?.len();
        if pending.prefix.is_empty() || pending.from >= len {
            return Ok(());
        }
        let mut head = vec![0; pending.prefix.len().min((len - pending.from) as usize)];
        self.file.seek(SeekFrom::Start(pending.from))?;
        self.file.read_exact(&mut head)?;
        if pending.prefix.starts_with(&head) {
            self.file.set_len(pending.from)?;
            self.file.sync_all()?;
        }
        Ok(())
    }
}

/// What identifies one dotlock file: inode, modification time and content.
#[derive(Debug, PartialEq, Eq)]
struct DotlockState {
    inode: u64,
    modified: Option<SystemTime>,
    content: Vec<u8>,
}

fn read_dotlock(dotlock: &Path) -> Option<DotlockState> {
    let mut file = File::open(dotlock).ok()?;
    let meta = file.metadata().ok()?;
    let mut content = Vec::new();
    (&mut file).take(4096).read_to_end(&mut content).ok()?;
    Some(DotlockState {
        inode: meta.ino(),
        modified: meta.modified().ok(),
        content,
    })
}

/// The pending append of a stale dotlock and the state it was judged in,
/// or `None` if it is live.
fn stale_dotlock(dotlock: &Path, stale_after: Duration) -> Option<(PendingAppend, DotlockState)> {
    let state = read_dotlock(dotlock)?;
    let pending = PendingAppend::parse(&state.content);
    let owner_dead = pending.pid.is_some_and(|pid| !process_alive(pid));
    let age = state
        .modified
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    (owner_dead || age > stale_after).then_some((pending, state))
}

impl Drop for LockedMbox {
    fn drop(&mut self) {
        // The fcntl lock goes with the file; the dotlock must be removed.
        let _ = std::fs::remove_file(&self.dotlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_append_parses_ours_and_others() {
        let p = PendingAppend::parse(b"pid=42\nappend-from=100\nappend-prefix=46726f6d20\n");
        assert_eq!(
            p,
            PendingAppend {
                pid: Some(42),
                from: 100,
                prefix: b"From ".to_vec()
            }
        );
        assert_eq!(PendingAppend::parse(b"1234\n").pid, Some(1234));
        assert_eq!(PendingAppend::parse(b"").pid, None);
    }

    #[test]
    fn second_locker_times_out_then_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        let quick = LockTimeouts {
            wait: Duration::from_millis(100),
            stale_after: Duration::from_secs(600),
        };
        let held = LockedMbox::lock(&mbox, quick).unwrap();
        assert!(dotlock_path(&mbox).exists());
        assert!(matches!(LockedMbox::lock(&mbox, quick), Err(LockError::Timeout(_))));
        drop(held);
        assert!(!dotlock_path(&mbox).exists());
        assert!(LockedMbox::lock(&mbox, quick).is_ok());
    }

    #[test]
    fn dead_writers_partial_append_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        std::fs::write(
            &mbox,
            b"From a Thu Jan  1 00:00:00 1970\nold\n\nFrom b Thu Jan  1 00:00:00 1970\npart",
        )
        .unwrap();
        // a dotlock left by a process that no longer exists
        let dead_pid = u32::MAX / 2;
        std::fs::write(
            dotlock_path(&mbox),
            format!(
                "pid={dead_pid}\nappend-from=37\nappend-prefix={}\n",
                hex_encode(b"From b Thu")
            ),
        )
        .unwrap();
        let locked = LockedMbox::lock(&mbox, LockTimeouts::default()).unwrap();
        drop(locked);
        assert_eq!(
            std::fs::read(&mbox).unwrap(),
            b"From a Thu Jan  1 00:00:00 1970\nold\n\n"
        );
    }

    #[test]
    fn stale_lock_of_a_dead_process_is_not_undone_when_the_mbox_changed() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        let content = b"From a Thu Jan  1 00:00:00 1970\nold\n\nFrom c Thu Jan  1 00:00:00 1970\nother\n\n";
        std::fs::write(&mbox, content).unwrap();
        std::fs::write(
            dotlock_path(&mbox),
            format!(
                "pid={}\nappend-from=37\nappend-prefix={}\n",
                u32::MAX / 2,
                hex_encode(b"From b Thu")
            ),
        )
        .unwrap();
        drop(LockedMbox::lock(&mbox, LockTimeouts::default()).unwrap());
        assert_eq!(std::fs::read(&mbox).unwrap(), content.to_vec());
    }
}
