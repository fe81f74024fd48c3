//! One mbox folder as IMAP sees it: messages with UIDs, flags and keywords,
//! kept in the mbox itself the way Dovecot and UW-IMAP keep them, so a user
//! can move between servers without losing either:
//!
//! | header | meaning |
//! |---|---|
//! | `X-IMAPbase: UIDVALIDITY UIDLAST [KEYWORD…]` | on the first message (UIDLAST = UIDNEXT − 1, UW-IMAP's convention) |
//! | `X-IMAP: …` | the same, on UW-IMAP's pseudo message of an empty folder |
//! | `X-UID: N` | the message's UID |
//! | `Status: RO` | R = `\Seen`, O = seen by a server (not `\Recent`) |
//! | `X-Status: AFTD` | `\Answered` `\Flagged` `\Draft` `\Deleted` |
//! | `X-Keywords: $Junk …` | keywords |
//!
//! These headers (and `Content-Length`) are never shown to clients.
//!
//! Every change is written as a whole new file under the mailbox locks
//! (dotlock + fcntl, as lda appends) and renamed over the old one: a crash
//! at any point leaves either the old or the new mbox, never half of one.
//! The file is re-read under the lock first, so mail lda appended meanwhile
//! is kept (and gets its UID then). Files are reached through their
//! directory without following links ([`lda::dir`]): a link planted in a
//! user's folders never leads to another user's mail.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use lda::dir::MboxPath;
use lda::lock::{LockError, LockOptions, LockTimeouts, LockedMbox};
use lda::users::SpoolGroup;

pub const SEEN: u8 = 1;
pub const ANSWERED: u8 = 2;
pub const FLAGGED: u8 = 4;
pub const DELETED: u8 = 8;
pub const DRAFT: u8 = 16;

/// The system flags with their IMAP names.
pub const SYSTEM_FLAGS: [(u8, &str); 5] = [
    (SEEN, "\\Seen"),
    (ANSWERED, "\\Answered"),
    (FLAGGED, "\\Flagged"),
    (DELETED, "\\Deleted"),
    (DRAFT, "\\Draft"),
];

// The header fields that hold server state, hidden from clients.
use bsfilter::mbox::STATE_HEADERS as STATE_FIELDS;

const PSEUDO_SUBJECT: &str = "DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub uid: u32,
    /// [`SEEN`] | [`ANSWERED`] | …
    pub flags: u8,
    pub keywords: Vec<String>,
    /// No server had seen it when this state was read (no `O` in Status).
    pub recent: bool,
    /// The mbox `From ` line, without its newline.
    pub from_line: Arc<str>,
    /// The message as delivered, state headers removed, line ends as stored.
    pub content: Arc<Vec<u8>>,
    /// Where its state headers sit in the file, when they can be rewritten
    /// in place (one block at the end of the header).
    pub state_block: Option<StateBlock>,
    /// CONDSTORE's mod-sequence of its flags (see [`carry_modseqs`]).
    pub modseq: u64,
}

/// The byte range of a message's state headers in the mbox file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBlock {
    pub offset: u64,
    pub len: usize,
}

/// Room kept in X-Keywords (as Dovecot does) so flag and keyword changes
/// can be written over the old header instead of rewriting the file.
const KEYWORD_PADDING: usize = 40;

impl Message {
    /// Seconds since the epoch from the `From ` line's asctime date.
    pub fn internal_date(&self) -> i64 {
        bsfilter::mbox::from_line_date(self.from_line.as_bytes()).unwrap_or(0)
    }

    /// The size a client sees: every line ending as CRLF.
    pub fn size(&self) -> usize {
        self.content.len() + lone_newlines(&self.content)
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A folder's state as read from (or written to) its mbox.
#[derive(Debug, Clone, Default)]
pub struct Folder {
    pub uid_validity: u32,
    pub uid_next: u32,
    /// Keywords declared in X-IMAPbase (Dovecot reads only those from
    /// X-Keywords), in order.
    pub keywords: Vec<String>,
    pub messages: Vec<Message>,
    /// What the file looked like when read, to notice changes cheaply.
    pub stamp: Stamp,
    /// UIDs or state headers are missing: writing the file would add them.
    pub needs_write: bool,
    /// CONDSTORE's HIGHESTMODSEQ (see [`carry_modseqs`]).
    pub highest_modseq: u64,
}

/// Identity and size of the file a [`Folder`] was read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    inode: u64,
    len: u64,
    modified_ns: i128,
}

impl Stamp {
    /// The stamp of what is at `path` now (a link's own: a link is never
    /// read as a mailbox).
    pub fn of(path: &MboxPath) -> Option<Stamp> {
        std::fs::symlink_metadata(path.full())
            .ok()
            .map(|m| Stamp::of_metadata(&m))
    }

    fn of_file(file: &File) -> std::io::Result<Stamp> {
        Ok(Stamp::of_metadata(&file.metadata()?))
    }

    fn of_metadata(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            inode: meta.ino(),
            len: meta.len(),
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

#[derive(Debug)]
pub enum FolderError {
    NotFound(PathBuf),
    Locked(PathBuf),
    Io(PathBuf, std::io::Error),
    /// A link or another user's file under the mailbox's name.
    Refused(PathBuf, &'static str),
}

impl std::fmt::Display for FolderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FolderError::NotFound(p) => write!(f, "{}: no such mailbox", p.display()),
            FolderError::Locked(p) => write!(f, "{}: mailbox is locked, try again", p.display()),
            FolderError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            FolderError::Refused(p, why) => write!(f, "{}: refused: it {why}", p.display()),
        }
    }
}

impl std::error::Error for FolderError {}

impl From<LockError> for FolderError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Timeout(p) => FolderError::Locked(p),
            LockError::Io(p, e) => FolderError::Io(p, e),
            LockError::Refused(p, why) => FolderError::Refused(p, why),
        }
    }
}

/// The parsed folders, shared by every session: a folder is re-read only
/// when its file changed (inode, length or modification time), so a
/// repeated SELECT of a large mailbox costs a `stat`, not a parse. The
/// sessions share each parse (`Arc`): copying and dropping the message
/// list of 10,000 messages was 58 % of a repeated SELECT's time (perf).
pub struct Folders {
    timeouts: LockTimeouts,
    /// The `mail` group, for INBOXes in a spool.
    spool: Option<SpoolGroup>,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    folders: HashMap<PathBuf, Arc<Folder>>,
    /// The HIGHESTMODSEQ of each sidecar written ([`crate::modseq`]),
    /// kept when the folders are dropped: the first mod-sequence beyond
    /// it removes the sidecar.
    saved: HashMap<PathBuf, u64>,
}

/// Folders kept parsed, and their total size (the file sizes, about what
/// the parsed messages hold); past either the cache starts over. A folder
/// bigger than the byte budget is not kept at all.
const CACHED_FOLDERS: usize = 256;
const CACHED_BYTES: u64 = 512 << 20;

impl Folders {
    pub fn new(timeouts: LockTimeouts, spool: Option<SpoolGroup>) -> Folders {
        Folders {
            timeouts,
            spool,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The `mail` group, for INBOXes in a spool.
    pub fn spool(&self) -> Option<&SpoolGroup> {
        self.spool.as_ref()
    }

    fn lock(&self, path: &MboxPath) -> Result<LockedMbox, FolderError> {
        let options = LockOptions {
            timeouts: self.timeouts,
            spool: self.spool.as_ref(),
            create: false,
        };
        LockedMbox::lock(path, options).map_err(|e| match e {
            LockError::Io(p, e) if e.kind() == std::io::ErrorKind::NotFound => FolderError::NotFound(p),
            e => e.into(),
        })
    }

    /// Reads the folder at `path` under its locks (a reader must not see
    /// half of an append in progress).
    pub fn read(&self, path: &MboxPath) -> Result<Arc<Folder>, FolderError> {
        // Unchanged since it was parsed (under the lock): no need to lock.
        // A writer mid-append has already changed the length.
        let key = path.full();
        if let Some(stamp) = Stamp::of(path) {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(folder) = cache.folders.get(&key).filter(|f| f.stamp == stamp) {
                return Ok(Arc::clone(folder));
            }
        } else {
            return Err(FolderError::NotFound(key));
        }
        let mut locked = self.lock(path)?;
        self.load(path, &mut locked)
    }

    /// Reads the folder under its locks, applies `change`, and writes the
    /// result (also when only UIDs were missing). Returns the new state and
    /// what `change` returned.
    pub fn update<T>(
        &self,
        path: &MboxPath,
        change: impl FnOnce(&mut Folder) -> T,
    ) -> Result<(Arc<Folder>, T), FolderError> {
        let key = path.full();
        let mut locked = self.lock(path)?;
        let before = self.load(path, &mut locked)?;
        let mut folder = Folder::clone(&before);
        let result = change(&mut folder);
        let changed =
            folder.needs_write
                || folder.uid_next != before.uid_next
                || folder.messages.len() != before.messages.len()
                || folder.messages.iter().zip(&before.messages).any(|(a, b)| {
                    a.uid != b.uid || a.flags != b.flags || a.keywords != b.keywords || a.recent != b.recent
                });
        if changed {
            carry_modseqs(Some(&before), &mut folder);
            let io = |e| FolderError::Io(key.clone(), e);
            if let Some(patches) = folder.in_place_patches(&before) {
                // Flags only: written over the old headers, same length, so
                // no message moves. Not synced (as Dovecot's default): a
                // crash can lose a flag change, never a message.
                for (offset, bytes) in &patches {
                    locked.file().write_all_at(bytes, *offset).map_err(io)?;
                }
                folder.stamp = Stamp::of_file(locked.file()).map_err(io)?;
            } else {
                let (data, blocks) = folder.serialize();
                locked.replace(&data).map_err(io)?;
                for (m, block) in folder.messages.iter_mut().zip(blocks) {
                    m.state_block = block;
                }
                folder.needs_write = false;
                folder.stamp = Stamp::of(path).unwrap_or_default();
            }
            folder.keywords = folder.declared_keywords();
            let folder = self.remember(path, folder);
            drop(locked);
            return Ok((folder, result));
        }
        drop(locked);
        Ok((Arc::new(folder), result))
    }

    /// The locked file's folder: from the cache if the file is unchanged.
    fn load(&self, path: &MboxPath, locked: &mut LockedMbox) -> Result<Arc<Folder>, FolderError> {
        let key = path.full();
        let io = |e| FolderError::Io(key.clone(), e);
        let stamp = Stamp::of_file(locked.file()).map_err(io)?;
        let previous = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            match cache.folders.get(&key) {
                Some(folder) if folder.stamp == stamp => return Ok(Arc::clone(folder)),
                Some(folder) => Some(Arc::clone(folder)),
                None => None,
            }
        };
        // not in memory: the mod-sequences the sidecar kept, if any (and
        // the first one handed out beyond them removes it)
        let previous = previous.or_else(|| {
            let saved = crate::modseq::read(path)?;
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.saved.insert(key.clone(), saved.highest_modseq);
            Some(Arc::new(saved))
        });
        let mut data = Vec::with_capacity(stamp.len as usize);
        let file = locked.file();
        file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        file.read_to_end(&mut data).map_err(io)?;
        let mut folder = Folder::parse(&data, stamp);
        carry_modseqs(previous.as_deref(), &mut folder);
        Ok(self.remember(path, folder))
    }

    /// Keeps `folder` as the parse of `path`'s file, and hands it back
    /// shared.
    fn remember(&self, path: &MboxPath, folder: Folder) -> Arc<Folder> {
        let folder = Arc::new(folder);
        let key = path.full();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache
            .saved
            .get(&key)
            .is_some_and(|&saved| folder.highest_modseq != saved)
        {
            // beyond what the sidecar says: it is no longer exact
            crate::modseq::remove(path);
            cache.saved.remove(&key);
        }
        cache.folders.remove(&key);
        if folder.stamp.len > CACHED_BYTES {
            return folder;
        }
        let bytes: u64 = cache.folders.values().map(|f| f.stamp.len).sum();
        if cache.folders.len() >= CACHED_FOLDERS || bytes + folder.stamp.len > CACHED_BYTES {
            cache.folders.clear();
        }
        cache.folders.insert(key, Arc::clone(&folder));
        folder
    }

    /// Forgets the folder at `path` (it is being deleted or renamed): its
    /// parse, and its sidecar, which would block removing its directory.
    pub fn forget(&self, path: &MboxPath) {
        let key = path.full();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.folders.remove(&key);
        cache.saved.remove(&key);
        crate::modseq::remove(path);
    }

    /// Keeps the mod-sequences of the folder at `path` in its sidecar (when
    /// a session leaves it), unless the sidecar already holds them.
    pub fn save_modseqs(&self, path: &MboxPath) {
        let key = path.full();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let Some(folder) = cache.folders.get(&key) else { return };
        if cache.saved.get(&key) == Some(&folder.highest_modseq) || folder.highest_modseq == 0 {
            return;
        }
        // (under the cache's lock: no mod-sequence is handed out meanwhile)
        match crate::modseq::write(path, folder) {
            Ok(()) => {
                let highest = folder.highest_modseq;
                cache.saved.insert(key, highest);
            }
            Err(e) => tracing::warn!("{}: mod-sequences not kept: {e}", key.display()),
        }
    }
}

impl Folder {
    /// Creates an empty mbox at `path` (its directories too); fails if
    /// anything has that name. `spool`: the group an INBOX in a spool
    /// needs ([`Folders::spool`]).
    pub fn create(path: &MboxPath, spool: Option<&SpoolGroup>) -> std::io::Result<()> {
        let empty = Folder {
            uid_validity: new_uid_validity(),
            uid_next: 1,
            ..Folder::default()
        };
        lda::lock::create_mbox(path, &empty.serialize().0, spool)
    }

    /// Parses an mbox's bytes.
    pub fn parse(data: &[u8], stamp: Stamp) -> Folder {
        let mut folder = Folder {
            stamp,
            ..Folder::default()
        };
        let mut base_seen = false;
        for (index, stored) in bsfilter::mbox::split(data)
            .into_iter()
            .filter(|s| !s.from_line.is_empty())
            .enumerate()
        {
            let state = split_state(&stored.message());
            let content_offset = (stored.offset + stored.from_line.len() + 1) as u64;
            let state_block = state.block.clone().map(|b| StateBlock {
                offset: content_offset + b.start as u64,
                len: b.len(),
            });
            if index == 0 {
                if let Some((validity, next, keywords)) = state.imap_base.as_deref().and_then(parse_imap_base) {
                    (folder.uid_validity, folder.uid_next, folder.keywords) = (validity, next, keywords);
                    base_seen = true;
                }
                if state.pseudo {
                    continue;
                }
            }
            let last = folder.messages.last().map_or(0, |m: &Message| m.uid);
            let uid = match state.uid {
                Some(uid) if uid > last && (uid < folder.uid_next || !base_seen) => uid,
                _ => {
                    folder.needs_write = true;
                    0 // assigned below, once uid_next is known
                }
            };
            folder.messages.push(Message {
                uid,
                flags: state.flags,
                keywords: state.keywords,
                recent: !state.old,
                from_line: Arc::from(String::from_utf8_lossy(stored.from_line).as_ref()),
                content: Arc::new(state.content),
                state_block,
                modseq: 0,
            });
        }
        if !base_seen {
            folder.uid_validity = new_uid_validity();
            folder.needs_write = true;
        }
        let mut next = folder.uid_next.max(1);
        let mut last = 0;
        for m in &mut folder.messages {
            if m.uid == 0 || m.uid <= last {
                m.uid = next.max(last + 1);
                folder.needs_write = true;
            }
            last = m.uid;
            next = next.max(last + 1);
        }
        folder.uid_next = next;
        folder
    }

    /// Every keyword in use, declared: Dovecot ignores undeclared ones.
    fn declared_keywords(&self) -> Vec<String> {
        let mut declared = self.keywords.clone();
        for k in self.messages.iter().flat_map(|m| &m.keywords) {
            if !declared.contains(k) {
                declared.push(k.clone());
            }
        }
        declared
    }

    /// The state headers of message `index` (LF line ends), X-Keywords
    /// padded to `padding` spaces.
    fn state_fields(&self, index: usize, declared: &[String], padding: usize) -> String {
        let m = &self.messages[index];
        let mut fields = String::new();
        if index == 0 {
            fields.push_str(&format!(
                "X-IMAPbase: {} {:010}",
                self.uid_validity,
                self.uid_next.saturating_sub(1)
            ));
            for k in declared {
                fields.push(' ');
                fields.push_str(k);
            }
            fields.push('\n');
        }
        // O: a server has seen it (no longer \Recent)
        match (m.has(SEEN), m.recent) {
            (true, false) => fields.push_str("Status: RO\n"),
            (true, true) => fields.push_str("Status: R\n"),
            (false, false) => fields.push_str("Status: O\n"),
            (false, true) => {}
        }
        let x_status: String = [(ANSWERED, 'A'), (FLAGGED, 'F'), (DRAFT, 'T'), (DELETED, 'D')]
            .iter()
            .filter(|(f, _)| m.has(*f))
            .map(|&(_, c)| c)
            .collect();
        if !x_status.is_empty() {
            fields.push_str(&format!("X-Status: {x_status}\n"));
        }
        fields.push_str(&format!("X-UID: {}\n", m.uid));
        fields.push_str(&format!(
            "X-Keywords: {}{}\n",
            m.keywords.join(" "),
            " ".repeat(padding)
        ));
        fields
    }

    /// The mbox bytes of this state, and where each message's state
    /// headers landed.
    pub fn serialize(&self) -> (Vec<u8>, Vec<Option<StateBlock>>) {
        let mut out = Vec::with_capacity(self.messages.iter().map(|m| m.content.len() + 200).sum());
        if self.messages.is_empty() {
            // UW-IMAP's and Dovecot's way of keeping UIDVALIDITY and
            // UIDNEXT in a folder with no mail
            let pseudo = format!(
                "Date: {date}\nFrom: Mail System Internal Data <MAILER-DAEMON@localhost>\n\
                 Subject: {PSEUDO_SUBJECT}\nMessage-ID: <{validity}@localhost>\n\
                 X-IMAP: {validity} {last:010}\nStatus: RO\n\n\
                 This text is part of the internal format of your mail folder, and is not\n\
                 a real message.  It is created automatically by the mail system software.\n\
                 If deleted, important folder data will be lost, and it will be re-created\n\
                 with the data reset to initial values.\n",
                date = bsfilter::mbox::asctime(SystemTime::now()),
                validity = self.uid_validity,
                last = self.uid_next.saturating_sub(1),
            );
            bsfilter::mbox::encode(
                &bsfilter::mbox::from_line("MAILER-DAEMON", SystemTime::now()),
                pseudo.as_bytes(),
                &mut out,
            );
            return (out, Vec::new());
        }
        let declared = self.declared_keywords();
        let mut blocks = Vec::with_capacity(self.messages.len());
        for (index, m) in self.messages.iter().enumerate() {
            let fields = self.state_fields(index, &declared, KEYWORD_PADDING);
            let (message, block) = insert_fields(&m.content, &fields);
            let start = out.len() + m.from_line.len() + 1;
            bsfilter::mbox::encode(&format!("{}\n", m.from_line), &message, &mut out);
            // (quoting never touches header lines; check rather than trust)
            let at = start + block.start;
            blocks.push(
                (out.get(at..at + block.len()) == Some(&message[block.clone()])).then_some(StateBlock {
                    offset: at as u64,
                    len: block.len(),
                }),
            );
        }
        (out, blocks)
    }

    /// For a change of flags, keywords or `\Recent` only: the new state
    /// headers of the changed messages, each exactly as long as the old
    /// (the X-Keywords padding absorbs the difference). None when any of
    /// them does not fit or the change is more than that.
    fn in_place_patches(&self, before: &Folder) -> Option<Vec<(u64, Vec<u8>)>> {
        if self.needs_write
            || self.uid_next != before.uid_next
            || self.uid_validity != before.uid_validity
            || self.messages.len() != before.messages.len()
        {
            return None;
        }
        let declared = self.declared_keywords();
        let mut patches = Vec::new();
        for (index, (new, old)) in self.messages.iter().zip(&before.messages).enumerate() {
            if new.uid != old.uid {
                return None;
            }
            let declaration_changed = index == 0 && declared != before.declared_keywords();
            if new.flags == old.flags
                && new.keywords == old.keywords
                && new.recent == old.recent
                && !declaration_changed
            {
                continue;
            }
            let block = old.state_block?;
            let fields = self.state_fields(index, &declared, 0);
            let crlf = header_uses_crlf(&new.content);
            let newlines = fields.matches('\n').count();
            let bare = fields.len() + if crlf { newlines } else { 0 };
            let room = block.len.checked_sub(bare)?;
            let padded = self.state_fields(index, &declared, room);
            let bytes = if crlf { padded.replace('\n', "\r\n") } else { padded };
            debug_assert_eq!(bytes.len(), block.len);
            patches.push((block.offset, bytes.into_bytes()));
        }
        Some(patches)
    }

    /// Appends a message (UID assigned); returns its UID. `from_line`
    /// keeps a copied message's envelope; without it one is made from the
    /// message's Return-Path or From and `internal_date`.
    pub fn push(
        &mut self,
        content: Vec<u8>,
        flags: u8,
        keywords: Vec<String>,
        internal_date: SystemTime,
        from_line: Option<Arc<str>>,
    ) -> u32 {
        let uid = self.uid_next;
        self.uid_next += 1;
        let from_line = from_line.unwrap_or_else(|| {
            let line = bsfilter::mbox::from_line(&envelope_sender(&content), internal_date);
            Arc::from(line.trim_end_matches('\n'))
        });
        self.messages.push(Message {
            uid,
            flags,
            keywords,
            recent: true,
            from_line,
            content: Arc::new(split_state(&content).content),
            state_block: None,
            modseq: 0,
        });
        uid
    }
}

/// Gives `folder`'s messages their CONDSTORE mod-sequences from the state
/// `previous` of the same file: a message whose flags and keywords are
/// unchanged keeps its own, every changed or new one takes the next, and
/// an expunge raises HIGHESTMODSEQ too (a client comparing it sees that
/// the mailbox changed). A folder with another UIDVALIDITY is a new one.
///
/// The mod-sequences live with the parsed folder, in memory (mbox has no
/// field for them), and in a sidecar written when a session leaves the
/// folder ([`crate::modseq`]). When both are lost (a crash, which leaves
/// no sidecar that could be out of date) the folder starts again from the
/// clock in microseconds,
/// above every mod-sequence handed out before (that would take a million
/// changes a second since then), with every message at that value: a
/// client's CHANGEDSINCE then returns every message — a full resync,
/// never a missed change.
pub fn carry_modseqs(previous: Option<&Folder>, folder: &mut Folder) {
    use std::sync::atomic::{AtomicU64, Ordering};
    /// The highest start given in this process (the clock may stand still).
    static LAST_START: AtomicU64 = AtomicU64::new(0);
    let Some(previous) = previous.filter(|p| p.highest_modseq > 0 && p.uid_validity == folder.uid_validity) else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        let last = LAST_START
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(now.max(last + 1)))
            .expect("the closure always gives a value");
        let start = now.max(last + 1);
        folder.messages.iter_mut().for_each(|m| m.modseq = start);
        folder.highest_modseq = start;
        return;
    };
    let mut next = previous.highest_modseq;
    let mut kept = 0;
    for m in &mut folder.messages {
        match previous.messages.binary_search_by_key(&m.uid, |p| p.uid) {
            Ok(i) if previous.messages[i].flags == m.flags && previous.messages[i].keywords == m.keywords => {
                m.modseq = previous.messages[i].modseq;
                kept += 1;
            }
            _ => {
                next += 1;
                m.modseq = next;
            }
        }
    }
    let expunged = previous
        .messages
        .iter()
        .any(|p| folder.messages.binary_search_by_key(&p.uid, |m| m.uid).is_err());
    if expunged && kept == folder.messages.len() {
        next += 1;
    }
    folder.highest_modseq = next;
}

/// A UIDVALIDITY for a new folder: the time in seconds, as Dovecot and
/// UW-IMAP choose it, but never one this process gave before — a folder
/// deleted and created again within a second must not keep its
/// UIDVALIDITY, or a client would take the new messages for the old
/// ones under the same UIDs (RFC 3501 §2.3.1.1).
fn new_uid_validity() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static LAST: AtomicU32 = AtomicU32::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32)
        .max(1);
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last.wrapping_add(1)).max(1))
        })
        .expect("the closure always gives a value");
    now.max(previous.wrapping_add(1)).max(1)
}

/// `UIDVALIDITY UIDLAST [KEYWORD…]` → (UIDVALIDITY, UIDNEXT, keywords).
fn parse_imap_base(value: &str) -> Option<(u32, u32, Vec<String>)> {
    let mut parts = value.split_whitespace();
    let validity = parts.next()?.parse().ok()?;
    let last: u32 = parts.next()?.parse().ok()?;
    Some((validity, last.checked_add(1)?, parts.map(str::to_owned).collect()))
}

/// A message split into its server state and what clients see.
struct StateFields {
    content: Vec<u8>,
    imap_base: Option<String>,
    pseudo: bool,
    uid: Option<u32>,
    flags: u8,
    old: bool,
    keywords: Vec<String>,
    /// The state fields' bytes in `message`, when they are one block
    /// ending the header (and so can be rewritten in place).
    block: Option<Range<usize>>,
}

fn is_state_field(field: &[u8]) -> bool {
    field.iter().position(|&b| b == b':').is_some_and(|i| {
        let name = String::from_utf8_lossy(&field[..i]).trim().to_ascii_lowercase();
        STATE_FIELDS.contains(&name.as_str())
    })
}

fn split_state(message: &[u8]) -> StateFields {
    let header_end = header_end(message);
    let mut state = StateFields {
        content: Vec::with_capacity(message.len()),
        imap_base: None,
        pseudo: false,
        uid: None,
        flags: 0,
        old: false,
        keywords: Vec::new(),
        block: None,
    };
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut pos = 0;
    // header fields with their continuation lines; state fields are one
    // line each (as written): what follows one belongs to the message
    while pos < header_end {
        let mut end = pos;
        loop {
            end = message[end..header_end]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(header_end, |i| end + i + 1);
            if end >= header_end || !matches!(message[end], b' ' | b'\t') || is_state_field(&message[pos..end]) {
                break;
            }
        }
        fields.push(&message[pos..end]);
        pos = end;
    }
    // the state fields as one block at the end of the header?
    let state_count = fields.iter().filter(|f| is_state_field(f)).count();
    let suffix = fields.iter().rev().take_while(|f| is_state_field(f)).count();
    let quoted = message.starts_with(b">") || message[..header_end].windows(2).any(|w| w == b"\n>");
    if state_count > 0 && suffix == state_count && !quoted {
        let start = header_end - fields[fields.len() - suffix..].iter().map(|f| f.len()).sum::<usize>();
        state.block = Some(start..header_end);
    }
    for field in fields {
        let name_end = field.iter().position(|&b| b == b':');
        let name = name_end.map(|i| String::from_utf8_lossy(&field[..i]).trim().to_ascii_lowercase());
        let Some(name) = name.filter(|n| STATE_FIELDS.contains(&n.as_str())) else {
            state.content.extend_from_slice(field);
            continue;
        };
        let value = String::from_utf8_lossy(&field[name_end.unwrap_or(0) + 1..])
            .trim()
            .to_owned();
        match name.as_str() {
            "x-imapbase" => state.imap_base = Some(value),
            "x-imap" => {
                state.imap_base = Some(value);
                state.pseudo = true;
            }
            "x-uid" => state.uid = value.parse().ok(),
            "status" => {
                if value.contains('R') {
                    state.flags |= SEEN;
                }
                state.old = value.contains('O');
            }
            "x-status" => {
                for (c, flag) in [('A', ANSWERED), ('F', FLAGGED), ('T', DRAFT), ('D', DELETED)] {
                    if value.contains(c) {
                        state.flags |= flag;
                    }
                }
            }
            "x-keywords" => {
                for k in value.split([' ', ',', '\t']).filter(|k| !k.is_empty()) {
                    if !state.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                        state.keywords.push(k.to_owned());
                    }
                }
            }
            _ => {} // content-length: recomputed by nobody, dropped
        }
    }
    state.content.extend_from_slice(&message[header_end..]);
    state
}

/// Offset just past the last header line (the blank line, if any, is not
/// included), or the message's length when it has no body.
fn header_end(message: &[u8]) -> usize {
    let mut pos = 0;
    while pos < message.len() {
        if message[pos] == b'\n' || message[pos..].starts_with(b"\r\n") {
            return pos;
        }
        pos = message[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(message.len(), |i| pos + i + 1);
    }
    message.len()
}

/// `content` with `fields` (LF-terminated lines) added at the end of its
/// header, in the message's own line-ending style; and where they are.
fn insert_fields(content: &[u8], fields: &str) -> (Vec<u8>, Range<usize>) {
    let end = header_end(content);
    let crlf = header_uses_crlf(content);
    let mut out = Vec::with_capacity(content.len() + fields.len() * 2 + 2);
    if end > 0 && content[end - 1] != b'\n' {
        // a header not ending its last line (no body, no final newline):
        // a newline added after it would change the message (or, after a
        // bare CR, read as the blank line), so the fields go first
        out.extend_from_slice(fields.as_bytes());
        let block = 0..out.len();
        out.extend_from_slice(content);
        return (out, block);
    }
    out.extend_from_slice(&content[..end]);
    let start = out.len();
    if crlf {
        out.extend_from_slice(fields.replace('\n', "\r\n").as_bytes());
    } else {
        out.extend_from_slice(fields.as_bytes());
    }
    let block = start..out.len();
    out.extend_from_slice(&content[end..]);
    (out, block)
}

fn header_uses_crlf(content: &[u8]) -> bool {
    content[..header_end(content)].windows(2).any(|w| w == b"\r\n")
}

/// `\n` not preceded by `\r`.
pub fn lone_newlines(data: &[u8]) -> usize {
    let mut count = 0;
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            count += 1;
        }
        prev = b;
    }
    count
}

/// The message with every line ending as CRLF, as IMAP sends it.
pub fn to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    append_crlf(data, &mut out);
    out
}

/// Appends `data` to `out` with every line ending as CRLF.
pub fn append_crlf(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len() + lone_newlines(data));
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
}

/// The address in the message's Return-Path or From, for an appended
/// message's `From ` line.
fn envelope_sender(content: &[u8]) -> String {
    let end = header_end(content);
    let header = String::from_utf8_lossy(&content[..end]);
    for name in ["return-path:", "from:"] {
        if let Some(line) = header.lines().find(|l| l.to_ascii_lowercase().starts_with(name)) {
            let value = &line[name.len()..];
            let address = match (value.find('<'), value.rfind('>')) {
                (Some(a), Some(b)) if a < b => &value[a + 1..b],
                _ => value.trim(),
            };
            if !address.is_empty() && !address.contains(char::is_whitespace) {
                return address.to_owned();
            }
        }
    }
    "MAILER-DAEMON".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_headers_round_trip_and_stay_hidden() {
        let mbox = b"From a@b Sat Nov 28 04:03:56 2026\nX-IMAPbase: 1234 0000000008\nSubject: one\nStatus: RO\nX-Status: AF\nX-Keywords: $Junk work\nX-UID: 7\n\nbody\n\n\
From c@d Sat Nov 28 04:03:57 2026\nSubject: two\n\n>From quoted\n\n";
        let folder = Folder::parse(mbox, Stamp::default());
        assert_eq!((folder.uid_validity, folder.messages.len()), (1234, 2));
        let m = &folder.messages[0];
        assert_eq!(m.uid, 7);
        assert_eq!(m.flags, SEEN | ANSWERED | FLAGGED);
        assert_eq!(m.keywords, ["$Junk", "work"]);
        assert!(!m.recent);
        assert_eq!(&m.content[..], b"Subject: one\n\nbody\n");
        assert_eq!(m.internal_date(), 1_795_838_636);
        let n = &folder.messages[1];
        assert_eq!((n.uid, n.recent), (9, true));
        assert_eq!(&n.content[..], b"Subject: two\n\nFrom quoted\n");
        assert_eq!(folder.uid_next, 10);
        assert!(folder.needs_write);
        let again = Folder::parse(&folder.serialize().0, Stamp::default());
        assert!(!again.needs_write);
        let without_blocks = |f: &Folder| {
            f.messages
                .iter()
                .cloned()
                .map(|mut m| {
                    m.state_block = None;
                    m
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(without_blocks(&again), without_blocks(&folder));
        // where serialize says the state headers went is where parse finds them
        let (_, blocks) = folder.serialize();
        assert_eq!(again.messages.iter().map(|m| m.state_block).collect::<Vec<_>>(), blocks);
        assert!(blocks.iter().all(Option::is_some));
        assert_eq!((again.uid_validity, again.uid_next), (1234, 10));
    }

    #[test]
    fn empty_folder_keeps_its_uids_in_a_pseudo_message() {
        let folder = Folder {
            uid_validity: 77,
            uid_next: 42,
            ..Folder::default()
        };
        let again = Folder::parse(&folder.serialize().0, Stamp::default());
        assert!(again.messages.is_empty());
        assert_eq!((again.uid_validity, again.uid_next), (77, 42));
    }

    #[test]
    fn crlf_messages_keep_their_line_ends() {
        let mut folder = Folder {
            uid_validity: 1,
            uid_next: 1,
            ..Folder::default()
        };
        folder.push(b"Subject: x\r\n\r\nbody\r\n".to_vec(), SEEN, vec![], UNIX_EPOCH, None);
        let (bytes, _) = folder.serialize();
        assert!(
            bytes.windows(13).any(|w| w == b"Status: R\r\nX-"),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        let again = Folder::parse(&bytes, Stamp::default());
        assert_eq!(&again.messages[0].content[..], b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(again.messages[0].size(), 20);
    }

    #[test]
    fn flag_changes_are_written_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox");
        std::fs::write(
            &path,
            b"From a@b Sat Nov 28 04:03:56 2026\nSubject: one\n\nbody\n\n\
From a@b Sat Nov 28 04:03:57 2026\r\nSubject: two\r\n\r\ncrlf\r\n\n\
From a@b Sat Nov 28 04:03:58 2026\nSubject: three\n\nbody\n\n",
        )
        .unwrap();
        let folders = Folders::new(LockTimeouts::default(), None);
        let mbox = MboxPath::of_file(&path);
        folders.update(&mbox, |_| ()).unwrap(); // assigns UIDs: a rewrite
        let before = std::fs::metadata(&path).unwrap();
        let (mine, ()) = folders
            .update(&mbox, |f| {
                f.messages[1].flags |= FLAGGED | SEEN;
                f.messages[2].keywords.push("$Junk".into());
            })
            .unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!((after.ino(), after.len()), (before.ino(), before.len()), "not in place");
        let again = Folder::parse(&std::fs::read(&path).unwrap(), Stamp::default());
        assert!(!again.needs_write);
        assert_eq!(again.messages[1].flags, FLAGGED | SEEN);
        assert_eq!(again.messages[2].keywords, ["$Junk"]);
        assert_eq!(&again.messages[1].content[..], b"Subject: two\r\n\r\ncrlf\r\n");
        assert_eq!(again.keywords, ["$Junk"], "declared in X-IMAPbase");
        assert_eq!(
            mine.messages.iter().map(|m| m.state_block).collect::<Vec<_>>(),
            again.messages.iter().map(|m| m.state_block).collect::<Vec<_>>()
        );
        // more keywords than the padding holds: the file is rewritten
        let many: Vec<String> = (0..20).map(|i| format!("keyword{i}")).collect();
        folders
            .update(&mbox, |f| f.messages[0].keywords = many.clone())
            .unwrap();
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), before.ino());
        let again = Folder::parse(&std::fs::read(&path).unwrap(), Stamp::default());
        assert_eq!(again.messages[0].keywords, many);
        assert_eq!(again.messages[1].flags, FLAGGED | SEEN);
    }
}
