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
//!
//! What a dotlock says is believed only when its owner could have written
//! it honestly: a regular file with one link, owned by root, by this
//! process's user or by the mailbox's owner, writable by nobody else. In a
//! spool where others can create files (a sticky /var/mail), anyone can
//! leave `victim.lock` with an "undo" record that would cut the victim's
//! mailbox to nothing; such a dotlock is still removed when stale, but its
//! record is ignored.
//!
//! Every file is reached through the mailbox's directory ([`Dir`]): the
//! mbox is opened without following links and must be a mailbox this
//! process may use ([`crate::dir::check_mailbox`]). In a spool the user's
//! own rights cannot write (root:mail 2775), the spool's group is in
//! effect only while this module creates and removes files there.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::{FileType, OFlags};

use crate::dir::{Dir, MboxPath, check_mailbox};
use crate::users::{SpoolGroup, SpoolRights};

/// Why a lock could not be had.
#[derive(Debug)]
pub enum LockError {
    /// Still held by someone else after the timeout.
    Timeout(PathBuf),
    Io(PathBuf, std::io::Error),
    /// The mailbox's name leads to something that is not this user's
    /// mailbox (a link, a hard link, another user's file): refused.
    Refused(PathBuf, &'static str),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Timeout(p) => write!(f, "{} is locked by another process", p.display()),
            LockError::Io(p, e) => write!(f, "cannot lock {}: {e}", p.display()),
            LockError::Refused(p, why) => write!(f, "refusing {}: it {why}", p.display()),
        }
    }
}

impl std::error::Error for LockError {}

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

/// How to take a mailbox's locks.
#[derive(Debug, Clone, Copy, Default)]
pub struct LockOptions<'a> {
    pub timeouts: LockTimeouts,
    /// The spool's group: used for a mailbox [in a spool](MboxPath::in_spool)
    /// (the INBOX only, never a user's folders) whose directory is not this
    /// process's user's own.
    pub spool: Option<&'a SpoolGroup>,
    /// Create the mbox (and its missing directories) when there is none.
    pub create: bool,
}

/// An mbox held under both locks. Dropping it releases them.
pub struct LockedMbox {
    file: File,
    dir: Dir,
    name: OsString,
    dotlock: OsString,
    /// The dotlock, kept open to record a pending append in place.
    dotlock_file: File,
    /// Set when the directory needs the spool's group to add or remove
    /// files.
    spool: Option<SpoolGroup>,
    path: PathBuf,
}

/// The dotlock of the mbox at `mbox`.
pub fn dotlock_path(mbox: &Path) -> PathBuf {
    let mut p = mbox.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

fn dotlock_name(name: &OsStr) -> OsString {
    let mut n = name.to_owned();
    n.push(".lock");
    n
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

/// The spool's group when files are to be created or removed in `dir`,
/// which holds `mbox`: for a mailbox in a spool whose directory is not
/// this process's user's own (root needs no group).
fn spool_for<'a>(mbox: &MboxPath, dir: &Dir, spool: Option<&'a SpoolGroup>) -> std::io::Result<Option<&'a SpoolGroup>> {
    let euid = rustix::process::geteuid();
    Ok(match spool {
        Some(group) if mbox.in_spool && !euid.is_root() && dir.owner()? != euid.as_raw() => Some(group),
        _ => None,
    })
}

/// Creates the mbox at `mbox` holding `contents` (synced), with its
/// missing directories; fails if anything has its name already.
pub fn create_mbox(mbox: &MboxPath, contents: &[u8], spool: Option<&SpoolGroup>) -> std::io::Result<()> {
    let (dir, name) = mbox.open_dir(true)?;
    let _rights = spool_for(mbox, &dir, spool)?.map(SpoolGroup::enter).transpose()?;
    let mut file = dir.create_new(&name, 0o600)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The spool's rights for this thread, when `spool` says they are needed.
fn spool_rights<'a>(spool: Option<&'a SpoolGroup>, path: &Path) -> Result<Option<SpoolRights<'a>>, LockError> {
    spool
        .map(|g| g.enter().map_err(|e| LockError::Io(path.to_owned(), e)))
        .transpose()
}

impl LockedMbox {
    /// Locks the mbox at `mbox`.
    pub fn lock(mbox: &MboxPath, options: LockOptions<'_>) -> Result<LockedMbox, LockError> {
        let path = mbox.full();
        let io = |e| LockError::Io(path.clone(), e);
        let (dir, name) = mbox.open_dir(options.create).map_err(io)?;
        let spool = spool_for(mbox, &dir, options.spool).map_err(io)?.copied();
        let rights = spool_rights(spool.as_ref(), &path)?;
        let locked = LockedMbox::lock_in(dir, name, path.clone(), spool, options);
        drop(rights);
        locked
    }

    fn lock_in(
        dir: Dir,
        name: OsString,
        path: PathBuf,
        spool: Option<SpoolGroup>,
        options: LockOptions<'_>,
    ) -> Result<LockedMbox, LockError> {
        let timeouts = options.timeouts;
        let deadline = Instant::now() + timeouts.wait;
        let dotlock = dotlock_name(&name);
        let mut recovered = None;
        let mut pause = Duration::from_millis(1);
        // 1. the dotlock
        let dotlock_file = loop {
            match dir.create_new(&dotlock, 0o600) {
                Ok(mut f) => {
                    let _ = f.write_all(format!("{}\n", std::process::id()).as_bytes());
                    break f;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if let Some((pending, judged)) = stale_dotlock(&dir, &dotlock, &name, timeouts.stale_after) {
                        // Remove it only if it is still the one we judged: its
                        // owner may have finished and another process created
                        // a new dotlock meanwhile (often on the same inode).
                        let unchanged = read_dotlock(&dir, &dotlock, &name).is_some_and(|now| now == judged);
                        if unchanged && dir.remove(&dotlock).is_ok() {
                            recovered = judged.trusted.then_some(pending);
                            continue;
                        }
                        // not ours to remove (a sticky spool): wait like
                        // for a live one, then give up
                    }
                }
                Err(e) => return Err(LockError::Io(dotlock_path(&path), e)),
            }
            if Instant::now() >= deadline {
                return Err(LockError::Timeout(path));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        // From here the dotlock is ours: `locked` removes it when dropped.
        let mut flags = OFlags::RDWR;
        if options.create {
            flags |= OFlags::CREATE;
        }
        let file = match dir.open_file(&name, flags, 0o600) {
            Ok(file) => file,
            Err(e) => {
                let _ = dir.remove(&dotlock);
                return Err(if e.kind() == std::io::ErrorKind::InvalidInput {
                    LockError::Refused(path, "is a symbolic link or not a file")
                } else {
                    LockError::Io(path, e)
                });
            }
        };
        let mut locked = LockedMbox {
            file,
            dir,
            name,
            dotlock,
            dotlock_file,
            spool: None, // set below: the caller still holds the rights
            path,
        };
        match check_mailbox(&locked.file) {
            Ok(None) => {}
            Ok(Some(why)) => return Err(LockError::Refused(locked.path.clone(), why)),
            Err(e) => return Err(LockError::Io(locked.path.clone(), e)),
        }
        // 2. fcntl on the mbox itself
        loop {
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = libc::F_WRLCK as _;
            fl.l_whence = libc::SEEK_SET as _;
            // SAFETY: fd is open for the life of `file`; fl is a valid flock.
            let r = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&locked.file), libc::F_SETLK, &fl) };
            if r == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if !matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::EACCES | libc::EINTR)) {
                return Err(LockError::Io(locked.path.clone(), err));
            }
            if Instant::now() >= deadline {
                return Err(LockError::Timeout(locked.path.clone()));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        if let Some(pending) = recovered {
            locked
                .undo_partial_append(&pending)
                .map_err(|e| LockError::Io(locked.path.clone(), e))?;
        }
        locked.spool = spool;
        Ok(locked)
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The mailbox's full path.
    pub fn path(&self) -> &Path {
        &self.path
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

    /// Replaces the mailbox with `data`, as a whole: written to a new file
    /// beside it (created exclusively: a link left under its name is
    /// removed, never written through), synced, renamed over the mailbox,
    /// the directory synced — a crash leaves the old or the new mailbox,
    /// never half of one. The new file keeps the old one's permissions
    /// and group. The locks stay held until this is dropped.
    pub fn replace(&mut self, data: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let original = self.file.metadata()?;
        let mut tmp = OsString::from(".");
        tmp.push(&self.name);
        // One name per mailbox: writers hold the mailbox lock.
        tmp.push(".tmp");
        let _rights = spool_rights(self.spool.as_ref(), &self.path).map_err(std::io::Error::other)?;
        let result = (|| {
            let mut file = self.dir.create_replacing(&tmp, 0o600)?;
            file.set_permissions(std::fs::Permissions::from_mode(original.mode() & 0o7777))?;
            // Failure is harmless (we may not be in the file's group).
            let _ = rustix::fs::fchown(&file, None, Some(rustix::fs::Gid::from_raw(original.gid())));
            file.write_all(data)?;
            file.sync_all()?;
            self.dir.rename(&tmp, &self.dir, &self.name)?;
            self.dir.sync()
        })();
        if result.is_err() {
            let _ = self.dir.remove(&tmp);
        }
        result
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
        // leave the file as a fresh open would: a reader that reads "the
        // rest" must read all of it (imapd once read nothing here, and
        // took the mailbox for empty)
        self.file.seek(SeekFrom::Start(0))?;
        Ok(())
    }
}

/// What identifies one dotlock file: inode, modification time and
/// content; and whether its content may be believed.
#[derive(Debug, PartialEq, Eq)]
struct DotlockState {
    inode: u64,
    modified: (i64, i64),
    content: Vec<u8>,
    trusted: bool,
}

/// The dotlock `dotlock` of the mailbox `mbox` in `dir`, as it is now. A
/// dotlock that cannot be read (someone else's, mode 0600) is judged by
/// its age alone.
fn read_dotlock(dir: &Dir, dotlock: &OsStr, mbox: &OsStr) -> Option<DotlockState> {
    let stat = dir.stat(dotlock).ok()?;
    let regular = FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile;
    let mut content = Vec::new();
    if regular && let Ok(file) = dir.open_file(dotlock, OFlags::RDONLY, 0) {
        let _ = file.take(4096).read_to_end(&mut content);
    }
    let mbox_owner = dir.stat(mbox).ok().map(|s| s.st_uid);
    let euid = rustix::process::geteuid().as_raw();
    let owner_may_write = stat.st_uid == 0 || stat.st_uid == euid || Some(stat.st_uid) == mbox_owner;
    Some(DotlockState {
        inode: stat.st_ino,
        modified: (stat.st_mtime, stat.st_mtime_nsec as i64),
        content,
        trusted: regular && stat.st_nlink == 1 && stat.st_mode & 0o022 == 0 && owner_may_write,
    })
}

/// The pending append of a stale dotlock and the state it was judged in,
/// or `None` if it is live.
fn stale_dotlock(
    dir: &Dir,
    dotlock: &OsStr,
    mbox: &OsStr,
    stale_after: Duration,
) -> Option<(PendingAppend, DotlockState)> {
    let state = read_dotlock(dir, dotlock, mbox)?;
    let pending = PendingAppend::parse(&state.content);
    let owner_dead = pending.pid.is_some_and(|pid| !process_alive(pid));
    let modified = SystemTime::UNIX_EPOCH
        + Duration::new(
            state.modified.0.max(0) as u64,
            state.modified.1.clamp(0, 999_999_999) as u32,
        );
    let age = SystemTime::now().duration_since(modified).unwrap_or_default();
    (owner_dead || age > stale_after).then_some((pending, state))
}

impl Drop for LockedMbox {
    fn drop(&mut self) {
        // The fcntl lock goes with the file; the dotlock must be removed.
        let _rights = self.spool.as_ref().and_then(|g| g.enter().ok());
        let _ = self.dir.remove(&self.dotlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(mbox: &Path, timeouts: LockTimeouts) -> Result<LockedMbox, LockError> {
        let options = LockOptions {
            timeouts,
            create: true,
            ..LockOptions::default()
        };
        LockedMbox::lock(&MboxPath::of_file(mbox), options)
    }

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
        let held = lock(&mbox, quick).unwrap();
        assert!(dotlock_path(&mbox).exists());
        assert!(matches!(lock(&mbox, quick), Err(LockError::Timeout(_))));
        drop(held);
        assert!(!dotlock_path(&mbox).exists());
        assert!(lock(&mbox, quick).is_ok());
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
        let locked = lock(&mbox, LockTimeouts::default()).unwrap();
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
        drop(lock(&mbox, LockTimeouts::default()).unwrap());
        assert_eq!(std::fs::read(&mbox).unwrap(), content.to_vec());
    }
}

#[cfg(test)]
mod hostile_dotlocks {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn options() -> LockOptions<'static> {
        LockOptions {
            timeouts: LockTimeouts {
                wait: Duration::from_millis(300),
                stale_after: Duration::from_secs(600),
            },
            create: true,
            ..LockOptions::default()
        }
    }

    const OLD: &[u8] = b"From a Thu Jan  1 00:00:00 1970\nold\n\n";

    #[test]
    fn an_undo_record_others_could_write_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        std::fs::write(&mbox, OLD).unwrap();
        let forged = format!("pid={}\nappend-from=0\nappend-prefix=46726f6d20\n", u32::MAX / 2);
        std::fs::write(dotlock_path(&mbox), &forged).unwrap();
        std::fs::set_permissions(dotlock_path(&mbox), std::fs::Permissions::from_mode(0o666)).unwrap();
        drop(LockedMbox::lock(&MboxPath::of_file(&mbox), options()).unwrap());
        assert_eq!(
            std::fs::read(&mbox).unwrap(),
            OLD,
            "a world-writable record is not believed"
        );
        assert!(!dotlock_path(&mbox).exists(), "the stale dotlock is gone all the same");

        // a link under the dotlock's name: removed, never read or followed
        std::fs::write(dir.path().join("record"), &forged).unwrap();
        std::os::unix::fs::symlink(dir.path().join("record"), dotlock_path(&mbox)).unwrap();
        let err = LockedMbox::lock(&MboxPath::of_file(&mbox), options());
        // a link is no process's dotlock: judged by its age (fresh), so it
        // is waited for, and the mailbox is untouched
        assert!(matches!(err, Err(LockError::Timeout(_))));
        assert_eq!(std::fs::read(&mbox).unwrap(), OLD);
        assert_eq!(std::fs::read(dir.path().join("record")).unwrap(), forged.as_bytes());
    }

    #[test]
    fn a_mailbox_name_that_is_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("victim"), OLD).unwrap();
        let mbox = dir.path().join("inbox");
        std::os::unix::fs::symlink(dir.path().join("victim"), &mbox).unwrap();
        let err = LockedMbox::lock(&MboxPath::of_file(&mbox), options()).err().unwrap();
        assert!(matches!(err, LockError::Refused(..)), "{err}");
        assert!(!dotlock_path(&mbox).exists(), "the dotlock is released");
        std::fs::remove_file(&mbox).unwrap();
        std::fs::hard_link(dir.path().join("victim"), &mbox).unwrap();
        let err = LockedMbox::lock(&MboxPath::of_file(&mbox), options()).err().unwrap();
        assert!(err.to_string().contains("hard link"), "{err}");
    }

    #[test]
    fn replacing_never_writes_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        std::fs::write(&mbox, OLD).unwrap();
        std::fs::write(dir.path().join("victim"), b"keep").unwrap();
        std::os::unix::fs::symlink(dir.path().join("victim"), dir.path().join(".inbox.tmp")).unwrap();
        let mut locked = LockedMbox::lock(&MboxPath::of_file(&mbox), options()).unwrap();
        locked.replace(b"From b Thu Jan  1 00:00:00 1970\nnew\n\n").unwrap();
        drop(locked);
        assert_eq!(std::fs::read(dir.path().join("victim")).unwrap(), b"keep");
        assert!(std::fs::read(&mbox).unwrap().ends_with(b"new\n\n"));
        assert!(!dir.path().join(".inbox.tmp").exists());
    }
}
