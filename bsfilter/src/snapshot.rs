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
//! header, a bucket index and the tokens' 64-bit hashes (xxh3) with their
//! counts, sorted by hash: 17 bytes per token. The index maps the top bits
//! of a hash to the run of entries sharing them (about four), so a lookup
//! reads one index slot and one short run. Why sorted and dense rather
//! than a hash table: a fresh process pays a page fault for every 64 KiB
//! block of the file it touches (~2.5 µs each here), and a message's
//! tokens land in random places; a table at most half full was 4 MiB for
//! 70,000 tokens and cost 60–80 faults per message, the dense layout is
//! 1.2 MiB and ~20 (BENCHMARKS.md). A colliding pair of tokens would share
//! counts; with 64-bit hashes that is vanishingly rare, and a sender who
//! crafted a token colliding with a ham token gains nothing he could not
//! get by writing the ham token itself.
//!
//! Staying current: every write to the database removes the snapshot while
//! it holds the database's write lock, before committing
//! ([`crate::store`]); a snapshot is written only under that same lock, so
//! a snapshot that exists describes the committed database. A reader that
//! mapped it just before a write sees the state of just before that write,
//! as a read transaction begun then would. The header records the
//! database file's device, inode and birth time, so a database replaced or
//! restored from a backup does not inherit an old snapshot — not even when
//! the new file is given the inode the old one freed (ext4 reuses them
//! at once), since a new file has a new birth time. Anything else that
//! writes the database (the `sqlite3` shell, an older bsfilter) must delete
//! the snapshot.

use std::fs::{File, Metadata};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::counts::{Counts, Totals};

const MAGIC: &[u8; 8] = b"BSFSNAP2";
const HEADER_LEN: usize = 64;
const ENTRY_LEN: usize = 16;
const INDEX_SLOT_LEN: usize = 4;
/// Entries per index slot, on average.
const ENTRIES_PER_SLOT: usize = 4;
/// Header fields, at these byte offsets: magic; database device and inode;
/// spam and clean message totals; index bits; entry count; database birth
/// time.
const AT_DEV: usize = 8;
const AT_INO: usize = 16;
const AT_SPAM_MESSAGES: usize = 24;
const AT_CLEAN_MESSAGES: usize = 32;
const AT_INDEX_BITS: usize = 40;
const AT_ENTRIES: usize = 48;
const AT_BORN: usize = 56;

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

fn key(token: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(token.as_bytes())
}

/// The index slot of `key` in an index of `2^bits` slots: its top bits,
/// so slots follow the sort order of the entries.
fn slot_of(key: u64, bits: u32) -> usize {
    key.checked_shr(64 - bits).unwrap_or(0) as usize
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// A mapped snapshot.
pub struct Snapshot {
    map: Mmap,
    totals: Totals,
    index_bits: u32,
    entries: usize,
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
        if u64_at(&map, AT_DEV) != db_meta.dev()
            || u64_at(&map, AT_INO) != db_meta.ino()
            || u64_at(&map, AT_BORN) != born(db_meta)
        {
            return None;
        }
        let index_bits = u32::try_from(u64_at(&map, AT_INDEX_BITS)).ok().filter(|&b| b < 32)?;
        let entries = usize::try_from(u64_at(&map, AT_ENTRIES)).ok()?;
        let len = ((1usize << index_bits) + 1)
            .checked_mul(INDEX_SLOT_LEN)?
            .checked_add(entries.checked_mul(ENTRY_LEN)?)?
            .checked_add(HEADER_LEN)?;
        if len != map.len() {
            return None;
        }
        Some(Snapshot {
            totals: Totals {
                spam_messages: u64_at(&map, AT_SPAM_MESSAGES),
                clean_messages: u64_at(&map, AT_CLEAN_MESSAGES),
            },
            index_bits,
            entries,
            map,
        })
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// The counts of each of `tokens`, in their order. They are looked up
    /// in the order of their hashes, the order of the file: a fresh
    /// process then walks its pages front to back instead of jumping
    /// between them.
    pub fn get_all<'t>(&self, tokens: impl Iterator<Item = &'t str>) -> Vec<Counts> {
        let mut keys: Vec<(u64, usize)> = tokens.enumerate().map(|(i, t)| (key(t), i)).collect();
        keys.sort_unstable();
        let mut counts = vec![Counts::default(); keys.len()];
        for (key, i) in keys {
            counts[i] = self.get_key(key);
        }
        counts
    }

    /// The counts of the token whose key is `key` (zero when unknown).
    fn get_key(&self, key: u64) -> Counts {
        let slots = (1usize << self.index_bits) + 1;
        let index = &self.map[HEADER_LEN..HEADER_LEN + slots * INDEX_SLOT_LEN];
        let table = &self.map[HEADER_LEN + slots * INDEX_SLOT_LEN..];
        let slot = slot_of(key, self.index_bits);
        // clamped, so a damaged index gives wrong counts, never a panic
        let end = (u32_at(index, (slot + 1) * INDEX_SLOT_LEN) as usize).min(self.entries);
        let start = (u32_at(index, slot * INDEX_SLOT_LEN) as usize).min(end);
        for at in (start..end).map(|i| i * ENTRY_LEN) {
            let entry_key = u64_at(table, at);
            if entry_key == key {
                return Counts {
                    spam: u32_at(table, at + 8).into(),
                    clean: u32_at(table, at + 12).into(),
                };
            }
            if entry_key > key {
                break;
            }
        }
        Counts::default()
    }
}

/// When the file was created, in nanoseconds since 1970 (statx's birth
/// time); 0 where the file system does not record it.
fn born(meta: &Metadata) -> u64 {
    meta.created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Builds the snapshot bytes of a database (identified by its metadata)
/// from its totals and every token with its counts. Counts above
/// `u32::MAX` (four billion messages) are capped.
pub struct Builder {
    header: [u8; HEADER_LEN],
    entries: Vec<(u64, [u32; 2])>,
}

impl Builder {
    /// A builder sized for about `expected_tokens` tokens.
    pub fn new(db_meta: &Metadata, totals: Totals, expected_tokens: usize) -> Builder {
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        for (at, value) in [
            (AT_DEV, db_meta.dev()),
            (AT_INO, db_meta.ino()),
            (AT_BORN, born(db_meta)),
            (AT_SPAM_MESSAGES, totals.spam_messages),
            (AT_CLEAN_MESSAGES, totals.clean_messages),
        ] {
            header[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        Builder {
            header,
            entries: Vec::with_capacity(expected_tokens),
        }
    }

    pub fn insert(&mut self, token: &str, counts: Counts) {
        let capped = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        self.entries
            .push((key(token), [capped(counts.spam), capped(counts.clean)]));
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entries.sort_unstable_by_key(|&(key, _)| key);
        // colliding tokens share one entry with their summed counts
        self.entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1[0] = kept.1[0].saturating_add(later.1[0]);
                kept.1[1] = kept.1[1].saturating_add(later.1[1]);
            }
            same
        });
        let entries = self.entries.len();
        // the index may address at most 2^32 entries; beyond that the
        // counts would not fit in memory anyway
        let index_bits = (entries / ENTRIES_PER_SLOT).max(1).ilog2().min(31);
        let slots = (1usize << index_bits) + 1;
        let mut bytes = Vec::with_capacity(HEADER_LEN + slots * INDEX_SLOT_LEN + entries * ENTRY_LEN);
        bytes.extend_from_slice(&self.header);
        bytes[AT_INDEX_BITS..AT_INDEX_BITS + 8].copy_from_slice(&u64::from(index_bits).to_le_bytes());
        bytes[AT_ENTRIES..AT_ENTRIES + 8].copy_from_slice(&(entries as u64).to_le_bytes());
        // slot s starts at the first entry whose slot is s or later
        let mut next = 0;
        for slot in 0..slots {
            while next < entries && slot_of(self.entries[next].0, index_bits) < slot {
                next += 1;
            }
            bytes.extend_from_slice(&u32::try_from(next).unwrap_or(u32::MAX).to_le_bytes());
        }
        for (key, [spam, clean]) in &self.entries {
            bytes.extend_from_slice(&key.to_le_bytes());
            bytes.extend_from_slice(&spam.to_le_bytes());
            bytes.extend_from_slice(&clean.to_le_bytes());
        }
        bytes
    }
}

/// Writes `bytes` as the snapshot of `db`: to a temporary file, synced,
/// then renamed into place, so a reader maps either the old snapshot or
/// the whole new one. The temporary name is this process's, created
/// exclusively: whatever is found under it — a file left by a crashed
/// process whose pid came round again, or a link planted to make a
/// deliverer write elsewhere — is removed, never written through.
/// It gets the database's permissions: a private database's snapshot is
/// private too.
pub fn install(db: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let path = path_for(db);
    let mode = std::fs::metadata(db).map_or(0o600, |m| m.mode() & 0o666);
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)
    };
    let written = (|| {
        let mut file = match create() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&temporary)?;
                create()?
            }
            other => other?,
        };
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

    /// One token's counts, looked up on its own.
    fn get(snapshot: &Snapshot, token: &str) -> Counts {
        snapshot.get_key(key(token))
    }

    /// A directory with a file standing in for the database (only its
    /// identity matters to a snapshot), and that file's metadata.
    fn stand_in_db() -> (tempfile::TempDir, PathBuf, Metadata) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bsfilter.sqlite3");
        std::fs::write(&db, b"stand-in database file").unwrap();
        let meta = std::fs::metadata(&db).unwrap();
        (dir, db, meta)
    }

    #[test]
    fn round_trip_and_identity() {
        let (_dir, db, meta) = stand_in_db();
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
            assert_eq!(get(&snapshot, w), counts(i as u64, 2 * i as u64 + 1), "{w}");
        }
        // all at once, in hash order inside, in the callers' order outside
        let all = snapshot.get_all(tokens.iter().map(|(t, _)| *t).chain(["absent"]));
        let one_by_one: Vec<Counts> = tokens
            .iter()
            .map(|(t, _)| get(&snapshot, t))
            .chain([Counts::default()])
            .collect();
        assert_eq!(all, one_by_one);
        assert_eq!(get(&snapshot, "日本語"), counts(7, 0));
        assert_eq!(get(&snapshot, "huge"), counts(u32::MAX.into(), 5));
        assert_eq!(get(&snapshot, "absent"), Counts::default());
        assert_eq!(get(&snapshot, ""), Counts::default());

        // another file at the same path (a restored backup) is another
        // file, also when it is given the inode the old one freed
        drop(snapshot);
        std::fs::remove_file(&db).unwrap();
        std::fs::write(&db, b"restored database").unwrap();
        assert!(Snapshot::open(&db, &std::fs::metadata(&db).unwrap()).is_none());

        remove(&db).unwrap();
        remove(&db).unwrap();
        assert!(!path_for(&db).exists());
    }

    #[test]
    fn a_link_planted_under_the_temporary_name_is_not_written_through() {
        let (dir, db, meta) = stand_in_db();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"not yours").unwrap();
        let temporary = format!("{}.{}.tmp", path_for(&db).display(), std::process::id());
        std::os::unix::fs::symlink(&victim, &temporary).unwrap();
        install(&db, &Builder::new(&meta, Totals::default(), 0).finish()).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"not yours");
        assert!(Snapshot::open(&db, &meta).is_some());
        assert!(!Path::new(&temporary).exists());
    }

    #[test]
    fn empty_database_and_damaged_files() {
        let (_dir, db, meta) = stand_in_db();
        let bytes = Builder::new(&meta, Totals::default(), 0).finish();
        install(&db, &bytes).unwrap();
        assert_eq!(get(&Snapshot::open(&db, &meta).unwrap(), "any"), Counts::default());
        // truncated, extended, wrong magic, absurd index size or entry
        // count, a header that does not match the length: all refused
        let mut damaged: Vec<Vec<u8>> = vec![
            bytes[..bytes.len() - 1].to_vec(),
            [&bytes[..], &[0u8; 16]].concat(),
            [b"NOTSNAP!", &bytes[8..]].concat(),
            Vec::new(),
            bytes[..HEADER_LEN - 1].to_vec(),
        ];
        for (at, value) in [
            (AT_INDEX_BITS, u64::MAX),
            (AT_INDEX_BITS, 40),
            (AT_INDEX_BITS, 3),
            (AT_ENTRIES, u64::MAX),
            (AT_ENTRIES, u64::MAX / 16),
            (AT_ENTRIES, 1),
        ] {
            let mut bad = bytes.clone();
            bad[at..at + 8].copy_from_slice(&value.to_le_bytes());
            damaged.push(bad);
        }
        for bad in damaged {
            std::fs::write(path_for(&db), &bad).unwrap();
            assert!(Snapshot::open(&db, &meta).is_none(), "{} bytes", bad.len());
        }
    }

    #[test]
    fn scrambled_index_gives_wrong_counts_not_a_panic() {
        let (_dir, db, meta) = stand_in_db();
        let mut builder = Builder::new(&meta, Totals::default(), 100);
        for i in 0..100 {
            builder.insert(&format!("t{i}"), counts(1, 1));
        }
        let mut bytes = builder.finish();
        let slots = (1usize << u64_at(&bytes, AT_INDEX_BITS)) + 1;
        // slot offsets out of order and past the end
        for (slot, value) in (0..slots).zip([u32::MAX, 0, 7, 3, 1000, 2].into_iter().cycle()) {
            let at = HEADER_LEN + slot * INDEX_SLOT_LEN;
            bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
        install(&db, &bytes).unwrap();
        let snapshot = Snapshot::open(&db, &meta).unwrap();
        for i in 0..200 {
            let c = get(&snapshot, &format!("t{i}"));
            assert!(c == counts(1, 1) || c == Counts::default());
        }
    }

    proptest::proptest! {
        /// Any bytes after a header that matches the file's length: lookups
        /// give some counts, never a panic or an out-of-bounds read.
        #[test]
        fn random_tables_never_panic(
            index_bits in 0u32..6,
            entries in 0usize..40,
            seed in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64),
            tokens in proptest::collection::vec("[a-z:.]{0,12}", 0..20),
        ) {
            let (_dir, db, meta) = stand_in_db();
            let mut bytes = Builder::new(&meta, Totals::default(), 0).finish();
            bytes.truncate(HEADER_LEN);
            bytes[AT_INDEX_BITS..AT_INDEX_BITS + 8].copy_from_slice(&u64::from(index_bits).to_le_bytes());
            bytes[AT_ENTRIES..AT_ENTRIES + 8].copy_from_slice(&(entries as u64).to_le_bytes());
            let body = ((1usize << index_bits) + 1) * INDEX_SLOT_LEN + entries * ENTRY_LEN;
            bytes.extend(seed.iter().cycle().take(body));
            install(&db, &bytes).unwrap();
            let snapshot = Snapshot::open(&db, &meta).expect("lengths agree");
            let all = snapshot.get_all(tokens.iter().map(String::as_str));
            proptest::prop_assert_eq!(all.len(), tokens.len());
        }
    }
}
