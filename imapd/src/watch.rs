//! Changes to mailbox files, pushed to IDLE sessions as they happen
//! (inotify) instead of each session looking every half second: an lda
//! append is an `IN_MODIFY` of the mbox, an imapd rewrite an
//! `IN_MOVED_TO` of its name, a flag patch an `IN_MODIFY`.
//!
//! One inotify instance for the whole server (the kernel allows a user
//! 128 instances, far fewer than a server has idle sessions), one watch
//! per directory (`max_user_watches` bounds those), shared by every
//! session idling on a file in it and removed once none does. Where
//! inotify is unavailable or a watch cannot be added, sessions fall back
//! to polling ([`crate::server::IDLE_POLL`]).
//!
//! Hand-written on libc: the `inotify` crate would add a dependency for
//! the three calls and the event layout used here.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

/// Events that change what a mailbox file holds or which file has its
/// name.
const MASK: u32 = libc::IN_MODIFY | libc::IN_MOVED_TO | libc::IN_CREATE | libc::IN_DELETE | libc::IN_ATTRIB;

/// The server's watcher; started on first use (inside the runtime).
#[derive(Default)]
pub struct Watcher {
    inner: OnceLock<Option<Arc<Inner>>>,
}

struct Inner {
    fd: AsyncFd<OwnedFd>,
    /// Watch descriptor → (directory, file name → change counter).
    watches: Mutex<HashMap<i32, Directory>>,
}

struct Directory {
    path: OsString,
    files: HashMap<OsString, watch::Sender<u64>>,
}

/// A session's view of changes to one file: [`Changes::changed`] returns
/// when the file may have changed since the last call.
pub struct Changes {
    receiver: watch::Receiver<u64>,
}

impl Changes {
    pub async fn changed(&mut self) {
        if self.receiver.changed().await.is_err() {
            // the watcher is gone (it never is while the server runs)
            std::future::pending::<()>().await;
        }
    }
}

impl Watcher {
    /// Changes to `file`, or None where they cannot be watched (poll).
    pub fn watch(&self, file: &Path) -> Option<Changes> {
        let inner = self.inner.get_or_init(Inner::start).as_ref()?;
        let (dir, name) = (file.parent()?, file.file_name()?);
        let mut watches = inner.watches.lock().unwrap_or_else(|e| e.into_inner());
        inner.forget_unwatched(&mut watches);
        let dir_c = CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: a valid descriptor and a NUL-terminated path; adding a
        // watch for a directory already watched returns its descriptor
        let wd = unsafe { libc::inotify_add_watch(inner.fd.as_raw_fd(), dir_c.as_ptr(), MASK | libc::IN_ONLYDIR) };
        if wd < 0 {
            tracing::debug!("inotify on {}: {}", dir.display(), std::io::Error::last_os_error());
            return None;
        }
        let directory = watches.entry(wd).or_insert_with(|| Directory {
            path: dir.as_os_str().to_owned(),
            files: HashMap::new(),
        });
        let sender = directory
            .files
            .entry(name.to_owned())
            .or_insert_with(|| watch::channel(0).0);
        Some(Changes {
            receiver: sender.subscribe(),
        })
    }
}

impl Inner {
    fn start() -> Option<Arc<Inner>> {
        // SAFETY: no pointers; the result is checked
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            tracing::warn!("inotify unavailable ({}): IDLE polls", std::io::Error::last_os_error());
            return None;
        }
        // SAFETY: a descriptor just opened and owned by nothing else
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an OwnedFd's descriptor stays open and the same while
        // the AsyncFd owns it
        let fd = match unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) } {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!("inotify: {}: IDLE polls", std::io::Error::from(e));
                return None;
            }
        };
        let inner = Arc::new(Inner {
            fd,
            watches: Mutex::new(HashMap::new()),
        });
        tokio::spawn(Arc::clone(&inner).read_events());
        Some(inner)
    }

    /// Drops the files no session watches, and the directories left
    /// without files.
    fn forget_unwatched(&self, watches: &mut HashMap<i32, Directory>) {
        watches.retain(|&wd, directory| {
            directory.files.retain(|_, sender| sender.receiver_count() > 0);
            let keep = !directory.files.is_empty();
            if !keep {
                // SAFETY: valid descriptors; a stale wd only fails
                unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
                tracing::trace!("inotify: no longer watching {:?}", directory.path);
            }
            keep
        });
    }

    async fn read_events(self: Arc<Self>) {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let Ok(mut ready) = self.fd.readable().await else {
                return;
            };
            // SAFETY: the buffer is valid for its length
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    ready.clear_ready();
                    continue;
                }
                tracing::warn!("inotify: {e}");
                return;
            }
            self.dispatch(&buffer[..n as usize]);
        }
    }

    /// Bumps the counter of every watched file an event names (every
    /// file of the directory when the queue overflowed).
    fn dispatch(&self, events: &[u8]) {
        let watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let mut offset = 0;
        // struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }
        while offset + 16 <= events.len() {
            let field = |at: usize| {
                let bytes: [u8; 4] = events[offset + at..offset + at + 4].try_into().expect("4 bytes");
                bytes
            };
            let wd = i32::from_ne_bytes(field(0));
            let mask = u32::from_ne_bytes(field(4));
            let len = u32::from_ne_bytes(field(12)) as usize;
            let name_bytes = events.get(offset + 16..offset + 16 + len).unwrap_or_default();
            let name = OsStr::from_bytes(name_bytes.split(|&b| b == 0).next().unwrap_or_default());
            offset += 16 + len;
            let bump = |sender: &watch::Sender<u64>| sender.send_modify(|n| *n = n.wrapping_add(1));
            if mask & libc::IN_Q_OVERFLOW != 0 {
                watches.values().flat_map(|d| d.files.values()).for_each(bump);
                continue;
            }
            if let Some(sender) = watches.get(&wd).and_then(|d| d.files.get(name)) {
                bump(sender);
            }
        }
    }
}
