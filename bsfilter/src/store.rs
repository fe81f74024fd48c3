//! The token store: one SQLite file per user (and one system-wide).
//!
//! Tables (all `WITHOUT ROWID`):
//! - `meta(key, value)`: `schema_version`, `spam_messages`, `clean_messages`;
//! - `tokens(token, spam, clean)`: how many learned messages of each class
//!   contain the token;
//! - `ledger(key, class, message_id, learned_at)`: every message learned,
//!   keyed by its Message-ID and a digest of its tokens, so a message counts
//!   at most once and re-learning it as the other class moves its counts.
//!
//! Many processes share one file: WAL mode lets readers run beside a
//! writer; writers take the lock up front (`BEGIN IMMEDIATE`), keep
//! transactions short, and wait up to the busy timeout before giving up
//! with [`Error::Locked`] (exit 75, "try again"). Every write removes the
//! database's [`snapshot`] before it commits.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

pub use crate::counts::{Class, Counts, Totals};
use crate::error::{Error, Result};
use crate::snapshot;
use crate::tokenize::TokenSet;

/// Version of the schema this build writes.
pub const SCHEMA_VERSION: i64 = 1;
/// File name of the token database inside a bsfilter home directory.
pub const DB_FILE_NAME: &str = "bsfilter.sqlite3";
/// How long to wait for another process's lock by default.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add(Class),
    Sub(Class),
}

/// The identity of a learned message: Message-ID plus token digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageKey([u8; 16]);

impl MessageKey {
    pub fn new(message_id: Option<&str>, tokens: &TokenSet) -> MessageKey {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(message_id.unwrap_or("").as_bytes());
        hasher.update(&[0]);
        hasher.update(&tokens.digest().to_le_bytes());
        MessageKey(hasher.digest128().to_le_bytes())
    }
}

/// One message to learn or unlearn.
#[derive(Debug, Clone, Copy)]
pub struct Lesson<'a> {
    pub tokens: &'a TokenSet,
    pub key: MessageKey,
    pub message_id: Option<&'a str>,
    pub action: Action,
}

/// What training did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Counted in the class.
    Learned,
    /// It was counted in the other class; its counts moved.
    Moved,
    /// It was already counted in that class: nothing changed.
    AlreadyLearned,
    /// Removed from the class.
    Unlearned,
    /// `--sub-*` of a message not learned in that class: nothing changed.
    NotLearned,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    writable: bool,
}

impl Drop for Store {
    /// A writer leaves the database checkpointed and the WAL empty: a
    /// reader then finds every page in the (memory-mapped) database file
    /// instead of reading the WAL page by page, which halves the time a
    /// fresh process needs to classify one message.
    fn drop(&mut self) {
        if self.writable {
            // Best effort and brief: a busy reader only delays it to the
            // next writer.
            let _ = self.conn.busy_timeout(Duration::from_millis(50));
            let _ = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

impl Store {
    /// Opens the store at `path` for reading and writing, creating it (and
    /// its schema) when missing: private (0600) in a private directory (a
    /// user's tokens are words of their mail; the original bsfilter's
    /// files are 0600 too), readable by those the directory lets read
    /// (a site-wide database in a directory the administrator opened).
    /// SQLite gives the WAL and shared-memory files the database's mode.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Store> {
        create_private(path).map_err(|e| Error::Database {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let create = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let mut store = Store::open_for_writing(path, busy_timeout, create)?;
        store.create_schema()?;
        Ok(store)
    }

    /// Opens an existing store for reading and writing; `None` when there
    /// is no file, or when this process may not write it or create files
    /// beside it (a user's delivery agent reading the site-wide database).
    pub fn open_writable(path: &Path, busy_timeout: Duration) -> Result<Option<Store>> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !may_write(path) || !may_write(dir) {
            return Ok(None);
        }
        let store = Store::open_for_writing(path, busy_timeout, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        store.check_schema()?;
        Ok(Some(store))
    }

    fn open_for_writing(path: &Path, busy_timeout: Duration, flags: OpenFlags) -> Result<Store> {
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| Error::from_sqlite(path, e))?;
        let mut store = Store {
            conn,
            path: path.to_owned(),
            writable: true,
        };
        store.configure(busy_timeout)?;
        Ok(store)
    }

    /// Opens an existing store for reading only; `None` when there is no file.
    pub fn open_read_only(path: &Path, busy_timeout: Duration) -> Result<Option<Store>> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Database {
                    path: path.to_owned(),
                    message: e.to_string(),
                });
            }
            Ok(_) => {}
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| Error::from_sqlite(path, e))?;
        let store = Store {
            conn,
            path: path.to_owned(),
            writable: false,
        };
        store.conn.busy_timeout(busy_timeout).map_err(|e| store.err(e))?;
        // Lookups touch pages all over the token table: mapped, they cost no
        // system call each.
        store
            .conn
            .execute_batch("PRAGMA mmap_size=268435456")
            .map_err(|e| store.err(e))?;
        store.check_schema()?;
        Ok(Some(store))
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        Error::from_sqlite(&self.path, e)
    }

    fn configure(&mut self, busy_timeout: Duration) -> Result<()> {
        self.conn.busy_timeout(busy_timeout).map_err(|e| self.err(e))?;
        // Switching to WAL needs a moment of exclusive access; the busy
        // handler covers it, and an existing WAL database needs no switch.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Database {
                path: self.path.clone(),
                message: format!("cannot use WAL mode (got {mode})"),
            });
        }
        // WAL + NORMAL is durable against process crashes; an OS crash may
        // lose the last transactions, never corrupt the file.
        self.conn
            .execute_batch("PRAGMA synchronous=NORMAL")
            .map_err(|e| self.err(e))?;
        self.persist_wal_files();
        Ok(())
    }

    /// Keeps the `-wal` and `-shm` files when the last writer closes. A
    /// reader that cannot create files in the database's directory (a user
    /// reading the site-wide database) can open a WAL database only while
    /// they exist.
    fn persist_wal_files(&self) {
        let mut on: std::ffi::c_int = 1;
        // SAFETY: the handle is a live connection owned by self.conn, the
        // database name is a NUL-terminated string, and PERSIST_WAL takes a
        // pointer to an int, which lives across the call.
        unsafe {
            rusqlite::ffi::sqlite3_file_control(
                self.conn.handle(),
                c"main".as_ptr(),
                rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
                (&raw mut on).cast(),
            );
        }
    }

    fn create_schema(&mut self) -> Result<()> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| Error::from_sqlite(&path, e))?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS tokens(token TEXT PRIMARY KEY, spam INTEGER NOT NULL, clean INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS ledger(key BLOB PRIMARY KEY, class INTEGER NOT NULL, message_id TEXT, learned_at INTEGER NOT NULL) WITHOUT ROWID;
             INSERT OR IGNORE INTO meta(key, value) VALUES ('spam_messages', 0), ('clean_messages', 0);",
        )
        .map_err(|e| Error::from_sqlite(&path, e))?;
        tx.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION],
        )
        .map_err(|e| Error::from_sqlite(&path, e))?;
        tx.commit().map_err(|e| Error::from_sqlite(&path, e))?;
        self.check_schema()
    }

    fn check_schema(&self) -> Result<()> {
        let version: Option<i64> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key='schema_version'", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        match version {
            Some(SCHEMA_VERSION) => Ok(()),
            Some(v) => Err(Error::Database {
                path: self.path.clone(),
                message: format!("schema version {v}, this bsfilter reads version {SCHEMA_VERSION}"),
            }),
            None => Err(Error::Database {
                path: self.path.clone(),
                message: "not a bsfilter token database".into(),
            }),
        }
    }

    /// Runs `f` inside one read transaction, so every lookup it makes sees
    /// the same snapshot.
    pub fn read<T>(&self, f: impl FnOnce(&Reader<'_>) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN DEFERRED").map_err(|e| self.err(e))?;
        let result = f(&Reader { store: self });
        // A read transaction has nothing to keep: end it either way.
        let end = self.conn.execute_batch("COMMIT").map_err(|e| self.err(e));
        let value = result?;
        end?;
        Ok(value)
    }

    /// Applies a batch of lessons in one write transaction.
    pub fn train(&mut self, lessons: &[Lesson<'_>]) -> Result<Vec<Outcome>> {
        let path = self.path.clone();
        let sql = |e| Error::from_sqlite(&path, e);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let mut deltas: FxHashMap<&str, (i64, i64)> = FxHashMap::default();
        let mut message_deltas = (0i64, 0i64);
        let mut outcomes = Vec::with_capacity(lessons.len());
        {
            let mut find = tx
                .prepare_cached("SELECT class FROM ledger WHERE key=?1")
                .map_err(sql)?;
            let mut record = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO ledger(key, class, message_id, learned_at) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sql)?;
            let mut forget = tx.prepare_cached("DELETE FROM ledger WHERE key=?1").map_err(sql)?;
            for lesson in lessons {
                let known: Option<Class> = find
                    .query_row([&lesson.key.0[..]], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(sql)?
                    .map(class_of_code);
                let mut change = |class: Class, sign: i64| {
                    for t in lesson.tokens.iter() {
                        let d = deltas.entry(t).or_default();
                        match class {
                            Class::Spam => d.0 += sign,
                            Class::Clean => d.1 += sign,
                        }
                    }
                    match class {
                        Class::Spam => message_deltas.0 += sign,
                        Class::Clean => message_deltas.1 += sign,
                    }
                };
                let outcome = match (lesson.action, known) {
                    (Action::Add(class), Some(k)) if k == class => Outcome::AlreadyLearned,
                    (Action::Add(class), Some(k)) => {
                        change(k, -1);
                        change(class, 1);
                        Outcome::Moved
                    }
                    (Action::Add(class), None) => {
                        change(class, 1);
                        Outcome::Learned
                    }
                    (Action::Sub(class), Some(k)) if k == class => {
                        change(class, -1);
                        Outcome::Unlearned
                    }
                    (Action::Sub(_), _) => Outcome::NotLearned,
                };
                match (outcome, lesson.action) {
                    (Outcome::Learned | Outcome::Moved, Action::Add(class)) => {
                        record
                            .execute(params![&lesson.key.0[..], class_code(class), lesson.message_id, now])
                            .map_err(sql)?;
                    }
                    (Outcome::Unlearned, _) => {
                        forget.execute([&lesson.key.0[..]]).map_err(sql)?;
                    }
                    _ => {}
                }
                outcomes.push(outcome);
            }
        }
        // In token order, the B-tree is written page after page.
        let mut deltas: Vec<(&str, (i64, i64))> = deltas.into_iter().collect();
        deltas.sort_unstable_by_key(|(t, _)| *t);
        apply_deltas(&tx, deltas.into_iter(), message_deltas).map_err(sql)?;
        drop_snapshot(&path)?;
        tx.commit().map_err(sql)?;
        Ok(outcomes)
    }

    /// Adds raw counts (from an export file) to one class, bypassing the
    /// ledger: the messages behind them are not known.
    pub fn import(&mut self, class: Class, tokens: &HashMap<String, u64>, messages: u64) -> Result<()> {
        let path = self.path.clone();
        let sql = |e| Error::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let as_delta = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let deltas = tokens.iter().map(|(t, &n)| match class {
            Class::Spam => (t.as_str(), (as_delta(n), 0)),
            Class::Clean => (t.as_str(), (0, as_delta(n))),
        });
        let message_delta = match class {
            Class::Spam => (as_delta(messages), 0),
            Class::Clean => (0, as_delta(messages)),
        };
        apply_deltas(&tx, deltas, message_delta).map_err(sql)?;
        drop_snapshot(&path)?;
        tx.commit().map_err(sql)
    }

    /// Writes the database's [`snapshot`] unless a current one exists.
    /// Returns `false` without waiting when another process is writing the
    /// database (its snapshot would be stale at once).
    pub fn write_snapshot(&mut self, busy_timeout: Duration) -> Result<bool> {
        // Under the write lock no write can slip between reading the
        // counts and renaming the snapshot into place.
        self.conn.busy_timeout(Duration::ZERO).map_err(|e| self.err(e))?;
        let begun = self.conn.execute_batch("BEGIN IMMEDIATE");
        self.conn.busy_timeout(busy_timeout).map_err(|e| self.err(e))?;
        match begun {
            Ok(()) => {}
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy => {
                return Ok(false);
            }
            Err(e) => return Err(self.err(e)),
        }
        let written = self.write_snapshot_locked();
        // nothing was written to the database: ending either way is fine
        let ended = self.conn.execute_batch("ROLLBACK").map_err(|e| self.err(e));
        let written = written?;
        ended?;
        Ok(written)
    }

    fn write_snapshot_locked(&self) -> Result<bool> {
        let meta = std::fs::metadata(&self.path).map_err(|e| Error::Database {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        if snapshot::Snapshot::open(&self.path, &meta).is_some() {
            return Ok(false);
        }
        let reader = Reader { store: self };
        let mut builder = snapshot::Builder::new(&meta, reader.totals()?, reader.token_count()? as usize);
        reader.for_each_token(|token, counts| {
            builder.insert(token, counts);
            Ok(())
        })?;
        snapshot::install(&self.path, &builder.finish()).map_err(|e| Error::Database {
            path: snapshot::path_for(&self.path),
            message: format!("cannot write the snapshot: {e}"),
        })?;
        Ok(true)
    }
}

/// A class as the ledger stores it.
fn class_code(class: Class) -> i64 {
    match class {
        Class::Spam => 1,
        Class::Clean => 0,
    }
}

fn class_of_code(code: i64) -> Class {
    if code == 1 { Class::Spam } else { Class::Clean }
}

/// Creates an empty `path` when there is none, mode 0600 plus the read
/// and group-write bits its directory grants (never write for others).
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mode = 0o600 | (std::fs::metadata(dir)?.mode() & 0o064);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(mode)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map(drop),
    }
}

/// Whether this process (its effective ids) may write `path`.
fn may_write(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: c_path is a NUL-terminated string that outlives the call.
    unsafe { libc::faccessat(libc::AT_FDCWD, c_path.as_ptr(), libc::W_OK, libc::AT_EACCESS) == 0 }
}

/// Removes the snapshot of the database at `path`; every write calls it
/// while holding the write lock, before committing (see [`snapshot`]).
fn drop_snapshot(path: &Path) -> Result<()> {
    snapshot::remove(path).map_err(|e| Error::Database {
        path: snapshot::path_for(path),
        message: format!("cannot remove the stale snapshot ({e}); remove it by hand"),
    })
}

fn apply_deltas<'t>(
    tx: &rusqlite::Transaction<'_>,
    deltas: impl Iterator<Item = (&'t str, (i64, i64))>,
    messages: (i64, i64),
) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO tokens(token, spam, clean) VALUES (?1, max(?2, 0), max(?3, 0))
         ON CONFLICT(token) DO UPDATE SET spam = max(spam + ?2, 0), clean = max(clean + ?3, 0)",
    )?;
    let mut prune = tx.prepare_cached("DELETE FROM tokens WHERE token=?1 AND spam=0 AND clean=0")?;
    for (token, (spam, clean)) in deltas {
        if spam == 0 && clean == 0 {
            continue;
        }
        upsert.execute(params![token, spam, clean])?;
        if spam < 0 || clean < 0 {
            prune.execute([token])?;
        }
    }
    let mut bump = tx.prepare_cached("UPDATE meta SET value = max(value + ?2, 0) WHERE key=?1")?;
    if messages.0 != 0 {
        bump.execute(params!["spam_messages", messages.0])?;
    }
    if messages.1 != 0 {
        bump.execute(params!["clean_messages", messages.1])?;
    }
    Ok(())
}

/// Appends `s` to `json` as a JSON string.
fn push_json_string(json: &mut String, s: &str) {
    json.push('"');
    for c in s.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            c if (c as u32) < 0x20 => json.push_str(&format!("\\u{:04x}", c as u32)),
            c => json.push(c),
        }
    }
    json.push('"');
}

/// Lookups inside one read transaction.
pub struct Reader<'s> {
    store: &'s Store,
}

impl Reader<'_> {
    pub fn totals(&self) -> Result<Totals> {
        let mut stmt = self
            .store
            .conn
            .prepare_cached("SELECT key, value FROM meta WHERE key IN ('spam_messages', 'clean_messages')")
            .map_err(|e| self.store.err(e))?;
        let mut totals = Totals::default();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.store.err(e))?;
        for row in rows {
            let (key, value) = row.map_err(|e| self.store.err(e))?;
            let value = value.max(0) as u64;
            match key.as_str() {
                "spam_messages" => totals.spam_messages = value,
                _ => totals.clean_messages = value,
            }
        }
        Ok(totals)
    }

    /// Counts of each token (zero for unknown ones), in the same order.
    pub fn lookup<'a>(&self, tokens: impl Iterator<Item = &'a str>) -> Result<Vec<Counts>> {
        // One statement for the whole message: the tokens go in as a JSON
        // array and SQLite joins it against the token table, which costs a
        // fraction of one prepared-statement round trip per token.
        let mut json = String::with_capacity(4096);
        let mut n = 0;
        json.push('[');
        for t in tokens {
            if n > 0 {
                json.push(',');
            }
            push_json_string(&mut json, t);
            n += 1;
        }
        json.push(']');
        let mut stmt = self
            .store
            .conn
            .prepare_cached(
                "SELECT j.key, t.spam, t.clean FROM json_each(?1) AS j JOIN tokens AS t ON t.token = j.value",
            )
            .map_err(|e| self.store.err(e))?;
        let mut counts = vec![Counts::default(); n];
        let mut rows = stmt.query([&json]).map_err(|e| self.store.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.store.err(e))? {
            let index = row.get::<_, i64>(0).map_err(|e| self.store.err(e))? as usize;
            if let Some(slot) = counts.get_mut(index) {
                *slot = Counts {
                    spam: row.get::<_, i64>(1).map_err(|e| self.store.err(e))? as u64,
                    clean: row.get::<_, i64>(2).map_err(|e| self.store.err(e))? as u64,
                };
            }
        }
        Ok(counts)
    }

    /// Number of distinct tokens stored.
    pub fn token_count(&self) -> Result<u64> {
        self.store
            .conn
            .query_row("SELECT count(*) FROM tokens", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.store.err(e))
    }

    /// Number of distinct tokens with a non-zero count in `class`.
    pub fn class_token_count(&self, class: Class) -> Result<u64> {
        let sql = match class {
            Class::Spam => "SELECT count(*) FROM tokens WHERE spam > 0",
            Class::Clean => "SELECT count(*) FROM tokens WHERE clean > 0",
        };
        self.store
            .conn
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.store.err(e))
    }

    /// Calls `f` for every stored token, in token order.
    pub fn for_each_token(&self, mut f: impl FnMut(&str, Counts) -> Result<()>) -> Result<()> {
        let mut stmt = self
            .store
            .conn
            .prepare("SELECT token, spam, clean FROM tokens ORDER BY token")
            .map_err(|e| self.store.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.store.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.store.err(e))? {
            let token = row
                .get_ref(0)
                .map_err(|e| self.store.err(e))?
                .as_str()
                .map_err(|e| self.store.err(e.into()))?;
            let counts = Counts {
                spam: row.get::<_, i64>(1).map_err(|e| self.store.err(e))? as u64,
                clean: row.get::<_, i64>(2).map_err(|e| self.store.err(e))? as u64,
            };
            f(token, counts)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(tokens: &[&str]) -> TokenSet {
        TokenSet::from_unsorted(tokens.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn ledger_counts_once_and_moves() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db"), DEFAULT_BUSY_TIMEOUT).unwrap();
        let a = set(&["cheap", "viagra"]);
        let key = MessageKey::new(Some("<a@x>"), &a);
        let lesson = |action| Lesson {
            tokens: &a,
            key,
            message_id: Some("<a@x>"),
            action,
        };
        assert_eq!(
            store.train(&[lesson(Action::Add(Class::Spam))]).unwrap(),
            [Outcome::Learned]
        );
        assert_eq!(
            store.train(&[lesson(Action::Add(Class::Spam))]).unwrap(),
            [Outcome::AlreadyLearned]
        );
        let counts = |s: &Store| {
            s.read(|r| Ok((r.totals()?, r.lookup(["cheap", "other"].into_iter())?)))
                .unwrap()
        };
        let (totals, c) = counts(&store);
        assert_eq!(
            totals,
            Totals {
                spam_messages: 1,
                clean_messages: 0
            }
        );
        assert_eq!(c, [Counts { spam: 1, clean: 0 }, Counts::default()]);

        assert_eq!(
            store.train(&[lesson(Action::Add(Class::Clean))]).unwrap(),
            [Outcome::Moved]
        );
        let (totals, c) = counts(&store);
        assert_eq!(
            totals,
            Totals {
                spam_messages: 0,
                clean_messages: 1
            }
        );
        assert_eq!(c[0], Counts { spam: 0, clean: 1 });

        assert_eq!(
            store.train(&[lesson(Action::Sub(Class::Spam))]).unwrap(),
            [Outcome::NotLearned]
        );
        assert_eq!(
            store.train(&[lesson(Action::Sub(Class::Clean))]).unwrap(),
            [Outcome::Unlearned]
        );
        let (totals, c) = counts(&store);
        assert_eq!(totals, Totals::default());
        assert_eq!(c[0], Counts::default());
        assert_eq!(store.read(|r| r.token_count()).unwrap(), 0, "zero rows are pruned");
    }

    #[test]
    fn lookup_of_awkward_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db"), DEFAULT_BUSY_TIMEOUT).unwrap();
        let tokens = ["quote\"d", "back\\slash", "東京", "x", "[1]", "{\"a\":1}"];
        let a = set(&tokens);
        let key = MessageKey::new(None, &a);
        let l = Lesson {
            tokens: &a,
            key,
            message_id: None,
            action: Action::Add(Class::Spam),
        };
        store.train(&[l]).unwrap();
        let asked = [
            "missing",
            "quote\"d",
            "back\\slash",
            "東京",
            "x",
            "[1]",
            "{\"a\":1}",
            "missing too",
        ];
        let got = store.read(|r| r.lookup(asked.into_iter())).unwrap();
        let spam: Vec<u64> = got.iter().map(|c| c.spam).collect();
        assert_eq!(spam, [0, 1, 1, 1, 1, 1, 1, 0]);
        assert!(store.read(|r| r.lookup(std::iter::empty())).unwrap().is_empty());
    }

    #[test]
    fn duplicate_within_one_batch_counts_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db"), DEFAULT_BUSY_TIMEOUT).unwrap();
        let a = set(&["x"]);
        let key = MessageKey::new(None, &a);
        let l = Lesson {
            tokens: &a,
            key,
            message_id: None,
            action: Action::Add(Class::Clean),
        };
        assert_eq!(
            store.train(&[l, l]).unwrap(),
            [Outcome::Learned, Outcome::AlreadyLearned]
        );
        assert_eq!(store.read(|r| r.lookup(["x"].into_iter())).unwrap()[0].clean, 1);
    }

    #[test]
    fn garbage_file_is_a_database_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let err = Store::open(&path, DEFAULT_BUSY_TIMEOUT).err().unwrap();
        assert_eq!(err.exit_code(), crate::error::exit::IOERR, "{err}");
        let err = Store::open_read_only(&path, DEFAULT_BUSY_TIMEOUT).err().unwrap();
        assert_eq!(err.exit_code(), crate::error::exit::IOERR, "{err}");
    }

    #[test]
    fn missing_read_only_store_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Store::open_read_only(&dir.path().join("none.db"), DEFAULT_BUSY_TIMEOUT)
                .unwrap()
                .is_none()
        );
    }
}
