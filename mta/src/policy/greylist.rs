//! Greylisting, as postgrey does it for Postfix sites: the first attempt
//! of a (client network, sender, recipient) triplet gets `450 4.7.1`; a
//! retry after `greylist_delay` seconds passes, and the triplet is then
//! let through at once for `greylist_max_age`. A real mail server
//! retries; spamware that fires once does not. With
//! `greylist_clients` tables (the S25R sample, for instance) only clients
//! those tables name are greylisted — Japan's "Rgrey", which spares the
//! mail of well-named servers any delay.
//!
//! The client counts by its /24 (IPv6: /64), as postgrey's default, since
//! a big sender retries from another address of the same farm. Triplets
//! are kept in memory, at most [`MAX_TRIPLETS`] (the oldest go first), and
//! in `QUEUE/greylist` across restarts, as postgrey keeps its database: a
//! restart that forgot them would delay every sender once more. The file
//! is rewritten whole (a temporary file renamed over it) at most once a
//! [`SAVE_EVERY`] when triplets changed, and when mtad stops; it is not
//! synced — a crash loses at most the last minute's triplets, which only
//! delays those senders once more. Times are the wall clock's seconds.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::table::Table;
use super::{Facts, Point, Stage, Verdict};
use crate::smtp::reply::Reply;

/// How many triplets are remembered.
pub const MAX_TRIPLETS: usize = 500_000;

/// How often, at most, the triplets are written out.
pub const SAVE_EVERY: Duration = Duration::from_secs(60);

pub struct Greylist {
    delay: Duration,
    max_age: Duration,
    /// Only clients these tables list are greylisted (empty: all).
    clients: Vec<Table>,
    seen: Mutex<Seen>,
    /// Where the triplets are kept across restarts.
    file: Option<PathBuf>,
}

#[derive(Default)]
struct Seen {
    /// Triplet → when it was first seen (seconds since the epoch), and
    /// whether a retry passed.
    triplets: HashMap<String, (u64, bool)>,
    /// Changed since written out.
    dirty: bool,
    /// When last written out.
    saved: u64,
}

impl Greylist {
    /// `file`: where triplets are kept across restarts (read now, if it
    /// is there; a line that is not a triplet is skipped).
    pub fn new(delay: Duration, max_age: Duration, clients: Vec<Table>, file: Option<PathBuf>) -> Greylist {
        let mut seen = Seen {
            saved: unix_now(),
            ..Seen::default()
        };
        if let Some(bytes) = file.as_deref().and_then(|f| std::fs::read(f).ok()) {
            for line in String::from_utf8_lossy(&bytes).lines() {
                let mut fields = line.splitn(3, ' ');
                if let (Some(Ok(first)), Some(passed @ ("0" | "1")), Some(key)) =
                    (fields.next().map(str::parse), fields.next(), fields.next())
                    && seen.triplets.len() < MAX_TRIPLETS
                {
                    seen.triplets.insert(key.to_owned(), (first, passed == "1"));
                }
            }
        }
        Greylist {
            delay,
            max_age,
            clients,
            seen: Mutex::new(seen),
            file,
        }
    }

    /// The triplets, one a line: `FIRST_SEEN PASSED KEY`.
    fn snapshot(seen: &Seen) -> String {
        let mut text = String::with_capacity(seen.triplets.len() * 64);
        for (key, (first, passed)) in &seen.triplets {
            text.push_str(&format!("{first} {} {key}\n", u8::from(*passed)));
        }
        text
    }

    fn write(file: &Path, text: &str) -> std::io::Result<()> {
        let tmp = file.with_extension("tmp");
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        out.write_all(text.as_bytes())?;
        std::fs::rename(&tmp, file)
    }

    /// Writes the triplets out if they changed and the last write is
    /// `SAVE_EVERY` old (or `now` is None: at once), in a thread of its
    /// own so that no session waits for the disk.
    fn save(&self, seen: &mut Seen, now: Option<u64>) {
        let Some(file) = &self.file else { return };
        if !seen.dirty || now.is_some_and(|t| t < seen.saved + SAVE_EVERY.as_secs()) {
            return;
        }
        seen.dirty = false;
        seen.saved = now.unwrap_or_else(unix_now);
        let text = Greylist::snapshot(seen);
        let file = file.clone();
        let write = move || {
            if let Err(e) = Greylist::write(&file, &text) {
                tracing::warn!("{}: greylist triplets not kept: {e}", file.display());
            }
        };
        if now.is_some() {
            std::thread::spawn(write);
        } else {
            write();
        }
    }

    fn network(ip: IpAddr) -> String {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                format!("{a}.{b}.{c}")
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}", s[0], s[1], s[2], s[3])
            }
        }
    }

    /// Whether this client is one to greylist.
    fn applies(&self, facts: &Facts) -> bool {
        self.clients.is_empty() || super::client_listed(&self.clients, facts)
    }

    fn verdict(&self, facts: &Facts, now: u64) -> Verdict {
        let (Some(ip), Some(rcpt)) = (facts.client_addr, facts.recipients.last()) else {
            return Verdict::Continue;
        };
        if !self.applies(facts) {
            return Verdict::Continue;
        }
        let sender = facts.sender.as_deref().unwrap_or("").to_ascii_lowercase();
        let key = format!("{}/{sender}/{}", Greylist::network(ip), rcpt.to_ascii_lowercase());
        let mut guard = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let seen = &mut *guard;
        let age = |first: u64| Duration::from_secs(now.saturating_sub(first));
        let passed = match seen.triplets.get_mut(&key) {
            Some((first, passed)) if age(*first) > self.max_age => {
                *first = now;
                *passed = false;
                seen.dirty = true;
                false
            }
            Some((first, passed)) => {
                if !*passed && age(*first) >= self.delay {
                    *passed = true;
                    seen.dirty = true;
                }
                *passed
            }
            None => {
                if seen.triplets.len() >= MAX_TRIPLETS {
                    // forget the oldest tenth
                    let mut ages: Vec<u64> = seen.triplets.values().map(|(t, _)| *t).collect();
                    ages.sort_unstable();
                    let cut = ages[ages.len() / 10];
                    seen.triplets.retain(|_, (t, _)| *t > cut);
                }
                seen.triplets.insert(key, (now, false));
                seen.dirty = true;
                false
            }
        };
        self.save(seen, Some(now));
        drop(guard);
        if passed {
            return Verdict::Continue;
        }
        tracing::info!(event = "greylist", client = %ip, from = %sender, to = %rcpt, "greylisted");
        Verdict::Reject(Reply::new(
            450,
            [4, 7, 1],
            format!(
                "<{rcpt}>: Recipient address rejected: Greylisted, try again in {} seconds",
                self.delay.as_secs()
            ),
        ))
    }
}

impl Stage for Greylist {
    fn name(&self) -> &'static str {
        "greylist"
    }

    fn check<'a>(&'a self, point: Point, facts: &'a Facts) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            if point == Point::Rcpt {
                self.verdict(facts, unix_now())
            } else {
                Verdict::Continue
            }
        })
    }
}

impl Drop for Greylist {
    /// mtad stopping: the triplets are written out now.
    fn drop(&mut self) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        self.save(&mut seen, None);
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(ip: &str, from: &str, to: &str) -> Facts {
        Facts {
            client_addr: Some(ip.parse().unwrap()),
            client_name: "unknown".into(),
            sender: Some(from.into()),
            recipients: vec![to.into()],
            ..Default::default()
        }
    }

    #[test]
    fn first_try_waits_a_retry_after_the_delay_passes() {
        let g = Greylist::new(Duration::from_secs(300), Duration::from_secs(86400), Vec::new(), None);
        let t0 = 1_800_000_000;
        let f = facts("192.0.2.10", "a@example.org", "alice@example.jp");
        let refused = |v: Verdict| matches!(v, Verdict::Reject(r) if r.code == 450);
        assert!(refused(g.verdict(&f, t0)));
        assert!(refused(g.verdict(&f, t0 + 299)), "too soon");
        assert!(!refused(g.verdict(&f, t0 + 300)));
        // from then on at once, from another address of the farm too
        assert!(!refused(g.verdict(
            &facts("192.0.2.77", "A@example.org", "alice@example.jp"),
            t0 + 301
        )));
        // another triplet waits; an old one starts again
        assert!(refused(
            g.verdict(&facts("192.0.2.10", "b@example.org", "alice@example.jp"), t0)
        ));
        assert!(refused(g.verdict(&f, t0 + 300 + 86401)));
    }

    #[test]
    fn kept_triplets_are_read_back_and_broken_lines_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("greylist");
        // (a byte that is not UTF-8 must not cost the good lines)
        std::fs::write(
            &file,
            b"\xff\xfe\n1800000000 1 192.0.2/a@example.org/alice@example.jp\nnot a line\n\
              x 0 192.0.2/b@example.org/alice@example.jp\n1800000000 7 192.0.2/c@example.org/alice@example.jp\n",
        )
        .unwrap();
        let g = Greylist::new(
            Duration::from_secs(300),
            Duration::from_secs(86400),
            Vec::new(),
            Some(file),
        );
        let refused = |v: Verdict| matches!(v, Verdict::Reject(r) if r.code == 450);
        // the one good line: a passed triplet, let through at once
        assert!(!refused(g.verdict(
            &facts("192.0.2.1", "a@example.org", "alice@example.jp"),
            1_800_000_010
        )));
        // the broken ones were not taken: those senders wait
        for from in ["b@example.org", "c@example.org"] {
            assert!(refused(
                g.verdict(&facts("192.0.2.1", from, "alice@example.jp"), 1_800_000_010)
            ));
        }
    }

    #[test]
    fn only_the_clients_a_table_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s25r");
        std::fs::write(&path, "/^[^.]*[0-9]{5}/ 450 dynamic\n").unwrap();
        let table = Table::open(&format!("regexp:{}", path.display())).unwrap();
        let g = Greylist::new(Duration::from_secs(300), Duration::from_secs(86400), vec![table], None);
        let mut dynamic = facts("192.0.2.10", "a@example.org", "alice@example.jp");
        dynamic.client_name = "ntt12345.example.ne.jp".into();
        let mut named = dynamic.clone();
        named.client_name = "mail.example.jp".into();
        assert!(matches!(g.verdict(&dynamic, unix_now()), Verdict::Reject(_)));
        assert_eq!(g.verdict(&named, unix_now()), Verdict::Continue);
    }
}
