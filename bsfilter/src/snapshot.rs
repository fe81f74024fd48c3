//! A read-only, memory-mapped copy of a token database's counts, so a
//! fresh process can classify one message without opening SQLite.
//!
//! Why: the delivery agent and `bsfilter --pipe` start once per message.
//! Opening the SQLite database, reading its schema, setting up the WAL
//! index and looking tokens up through cold B-tree code cost a fresh
//! process ~0.7 ms per message — more than decoding the message. Mapping a
//! ready-made hash table costs an `open`, an `mmap` and one probe per
//! token.
//!
//! The file (`bsfilter.sqlite3-snapshot` beside the database) holds a
//! header and an open-addressing table of 64-bit token hashes (xxh3) with
//! their counts. A colliding pair of tokens would share counts; with
//! 64-bit hashes that is vanishingly rare, and a sender who crafted a
//! token colliding with a ham token gains nothing he could not get by
//! writing the ham token itself.
//!
//! Staying current: every write to the database removes the snapshot while
//! it holds the database's write lock, before committing
//! ([`crate::store`]); a snapshot is written only under that same lock, so
//! a snapshot that exists describes the committed database. A reader that
//! mapped it just before a write sees the state of just before that write,
//! as a read transaction begun then would. The header records the
//! database file's device and inode, so a database replaced or restored
//! from a backup does not inherit an old snapshot. Anything else that
//! writes the database (the `sqlite3` shell, an older bsfilter) must delete
//! the snapshot.

use std::fs::{File, Metadata};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::store::{Counts, Totals};

const MAGIC: &[u8; 8] = b"BSFSNAP1";
const HEADER_LEN: usize = 64;
const BUCKET_LEN: usize = 16;

/// Where the snapshot of the database at `db` lives.
pub fn path_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-snapshot");
    PathBuf::from(name)
}

/// Removes the snapshot of `db`, if any.
pub fn remove(db: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path_for(db)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A token's bucket key: never 0, which marks an empty bucket.
fn key(token: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(token.as_bytes()).max(1)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The offset in `table` of the bucket holding `key`, or of the empty
/// bucket where it would go (linear probing from `key`'s home bucket; the
/// table is at most half full, so a probe always reaches an empty bucket).
fn bucket_of(table: &[u8], mask: usize, key: u64) -> usize {
    let mut i = key as usize & mask;
    loop {
        let at = i * BUCKET_LEN;
        let existing = u64_at(table, at);
        if existing == 0 || existing == key {
            return at;
        }
        i = (i + 1) & mask;
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// A mapped snapshot.
pub struct Snapshot {
    map: Mmap,
    totals: Totals,
    mask: usize,
}

impl Snapshot {
    /// Maps the snapshot of the database at `db` (whose metadata is
    /// `db_meta`) when one exists and belongs to that file; `None` when
    /// there is none, or it is unusable — the caller then reads the
    /// database itself.
    pub fn open(db: &Path, db_meta: &Metadata) -> Option<Snapshot> {
        let file = File::open(path_for(db)).ok()?;
        // SAFETY: snapshots are never modified in place — they are written
        // under a temporary name and renamed over the old one — so the
        // mapped bytes cannot change under us.
        let map = unsafe { Mmap::map(&file) }.ok()?;
        if map.len() < HEADER_LEN || &map[..8] != MAGIC {
            return None;
        }
        if u64_at(&map, 8) != db_meta.dev() || u64_at(&map, 16) != db_meta.ino() {
            return None;
        }
        let buckets = usize::try_from(u64_at(&map, 40)).ok()?;
        if !buckets.is_power_of_two() || buckets.checked_mul(BUCKET_LEN)?.checked_add(HEADER_LEN)? != map.len() {
            return None;
        }
        Some(Snapshot {
            totals: Totals {
                spam_messages: u64_at(&map, 24),
                clean_messages: u64_at(&map, 32),
            },
            mask: buckets - 1,
            map,
        })
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// The counts of `token` (zero when unknown).
    pub fn get(&self, token: &str) -> Counts {
        let table = &self.map[HEADER_LEN..];
        let at = bucket_of(table, self.mask, key(token));
        Counts {
            spam: u32_at(table, at + 8).into(),
            clean: u32_at(table, at + 12).into(),
        }
    }
}

/// Builds the snapshot bytes of a database (identified by its metadata)
/// from its totals and every token with its counts. Counts above
/// `u32::MAX` (four billion messages) are capped.
pub struct Builder {
    bytes: Vec<u8>,
    tokens: usize,
}

impl Builder {
    /// A builder sized for about `expected_tokens` tokens.
    pub fn new(db_meta: &Metadata, totals: Totals, expected_tokens: usize) -> Builder {
        let mut bytes = vec![0u8; HEADER_LEN];
        bytes[..8].copy_from_slice(MAGIC);
        for (at, value) in [
            (8, db_meta.dev()),
            (16, db_meta.ino()),
            (24, totals.spam_messages),
            (32, totals.clean_messages),
        ] {
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        let mut builder = Builder { bytes, tokens: 0 };
        builder.resize((expected_tokens.saturating_mul(2)).next_power_of_two().max(16));
        builder
    }

    fn buckets(&self) -> usize {
        (self.bytes.len() - HEADER_LEN) / BUCKET_LEN
    }

    /// Makes the table `buckets` long, re-placing every entry.
    fn resize(&mut self, buckets: usize) {
        let old = self.bytes.split_off(HEADER_LEN);
        self.bytes.resize(HEADER_LEN + buckets * BUCKET_LEN, 0);
        self.bytes[40..48].copy_from_slice(&(buckets as u64).to_le_bytes());
        for entry in old.chunks_exact(BUCKET_LEN).filter(|e| u64_at(e, 0) != 0) {
            self.place(u64_at(entry, 0), entry[8..].try_into().expect("8 bytes"));
        }
    }

    fn place(&mut self, key: u64, counts: [u8; 8]) {
        let mask = self.buckets() - 1;
        let table = &mut self.bytes[HEADER_LEN..];
        let at = bucket_of(table, mask, key);
        table[at..at + 8].copy_from_slice(&key.to_le_bytes());
        table[at + 8..at + 16].copy_from_slice(&counts);
    }

    pub fn insert(&mut self, token: &str, counts: Counts) {
        // at most half full, so every probe ends at an empty bucket
        if (self.tokens + 1) * 2 > self.buckets() {
            self.resize(self.buckets() * 2);
        }
        let capped = |n: u64| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
        let mut packed = [0u8; 8];
        packed[..4].copy_from_slice(&capped(counts.spam));
        packed[4..].copy_from_slice(&capped(counts.clean));
        self.place(key(token), packed);
        self.tokens += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        let tokens = self.tokens as u64;
        self.bytes[48..56].copy_from_slice(&tokens.to_le_bytes());
        self.bytes
    }
}

/// Writes `bytes` as the snapshot of `db`: to a temporary file, synced,
/// then renamed into place, so a reader maps either the old snapshot or
/// the whole new one. The temporary name is this process's: one left by a
/// crashed process whose pid came round again is simply overwritten.
pub fn install(db: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let path = path_for(db);
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        std::fs::rename(&temporary, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(spam: u64, clean: u64) -> Counts {
        Counts { spam, clean }
    }

    #[test]
    fn round_trip_and_identity() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bsfilter.sqlite3");
        std::fs::write(&db, b"stand-in database file").unwrap();
        let meta = std::fs::metadata(&db).unwrap();
        let words: Vec<String> = (0..1000).map(|i| format!("token{i}")).collect();
        let tokens: Vec<(&str, Counts)> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.as_str(), counts(i as u64, 2 * i as u64 + 1)))
            .chain([("日本語", counts(7, 0)), ("huge", counts(u64::MAX, 5))])
            .collect();
        let totals = Totals {
            spam_messages: 11,
            clean_messages: 22,
        };
        // a temporary file left by a crashed process with our pid
        let leftover = format!("{}.{}.tmp", path_for(&db).display(), std::process::id());
        std::fs::write(&leftover, b"half a snapshot").unwrap();
        // sized too small on purpose: the table grows
        let mut builder = Builder::new(&meta, totals, 3);
        for (token, c) in &tokens {
            builder.insert(token, *c);
        }
        install(&db, &builder.finish()).unwrap();
        assert!(!Path::new(&leftover).exists());
        let snapshot = Snapshot::open(&db, &meta).expect("a current snapshot");
        assert_eq!(snapshot.totals(), totals);
        for (i, w) in words.iter().enumerate() {
            assert_eq!(snapshot.get(w), counts(i as u64, 2 * i as u64 + 1), "{w}");
        }
        assert_eq!(snapshot.get("日本語"), counts(7, 0));
        assert_eq!(snapshot.get("huge"), counts(u32::MAX.into(), 5));
        assert_eq!(snapshot.get("absent"), Counts::default());
        assert_eq!(snapshot.get(""), Counts::default());

        // another file at the same path (a restored backup) has another inode
        drop(snapshot);
        std::fs::remove_file(&db).unwrap();
        std::fs::write(dir.path().join("placeholder"), b"keeps the old inode taken").unwrap();
        std::fs::write(&db, b"restored database").unwrap();
        assert!(Snapshot::open(&db, &std::fs::metadata(&db).unwrap()).is_none());

        remove(&db).unwrap();
        remove(&db).unwrap();
        assert!(!path_for(&db).exists());
    }

    #[test]
    fn empty_database_and_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::write(&db, b"x").unwrap();
        let meta = std::fs::metadata(&db).unwrap();
        let bytes = Builder::new(&meta, Totals::default(), 0).finish();
        install(&db, &bytes).unwrap();
        assert_eq!(Snapshot::open(&db, &meta).unwrap().get("any"), Counts::default());
        // truncated, extended, wrong magic, absurd bucket count: all refused
        let mut damaged: Vec<Vec<u8>> = vec![
            bytes[..bytes.len() - 1].to_vec(),
            [&bytes[..], &[0u8; 16]].concat(),
            [b"NOTSNAP!", &bytes[8..]].concat(),
            Vec::new(),
            bytes[..HEADER_LEN - 1].to_vec(),
        ];
        let mut absurd = bytes.clone();
        absurd[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
        damaged.push(absurd);
        let mut odd = bytes.clone();
        odd[40..48].copy_from_slice(&3u64.to_le_bytes());
        damaged.push(odd);
        for bad in damaged {
            std::fs::write(path_for(&db), &bad).unwrap();
            assert!(Snapshot::open(&db, &meta).is_none(), "{} bytes", bad.len());
        }
    }
}
