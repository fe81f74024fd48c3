//! The counts, line by line: per day, per size bucket, per list and virus
//! name. What it keeps grows with the days and the names seen, never
//! with the number of lines: a year of a big site is a few hundred days.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::line::{self, Event, Line};

/// Why mtad refused, as the report groups the causes it logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    Dnsbl,
    Access,
    Rules,
    Virus,
    Relay,
    UnknownUser,
    SenderAuth,
    Greylist,
    Bayes,
    Protocol,
    Other,
}

impl Cause {
    pub const ALL: [Cause; 11] = [
        Cause::Dnsbl,
        Cause::Access,
        Cause::Rules,
        Cause::Virus,
        Cause::Relay,
        Cause::UnknownUser,
        Cause::SenderAuth,
        Cause::Greylist,
        Cause::Bayes,
        Cause::Protocol,
        Cause::Other,
    ];

    /// The column's name in every output.
    pub fn name(self) -> &'static str {
        match self {
            Cause::Dnsbl => "dnsbl",
            Cause::Access => "access",
            Cause::Rules => "rules",
            Cause::Virus => "virus",
            Cause::Relay => "relay_denied",
            Cause::UnknownUser => "unknown_user",
            Cause::SenderAuth => "sender_auth",
            Cause::Greylist => "greylist",
            Cause::Bayes => "site_bayes",
            Cause::Protocol => "protocol",
            Cause::Other => "other",
        }
    }

    /// The group of one of mtad's causes (its stage names; a DNS list's
    /// is `dnsbl:ZONE`).
    pub fn of(cause: &[u8]) -> Cause {
        match cause {
            b"check_client_access" | b"check_helo_access" | b"check_sender_access" | b"check_recipient_access" => {
                Cause::Access
            }
            b"content_checks" => Cause::Rules,
            b"virus" => Cause::Virus,
            b"relay_denied" => Cause::Relay,
            b"unknown_user" => Cause::UnknownUser,
            b"sender_auth" => Cause::SenderAuth,
            b"greylist" => Cause::Greylist,
            b"site_bayes" => Cause::Bayes,
            b"pregreet" => Cause::Protocol,
            c if c == b"dnsbl" || c.starts_with(b"dnsbl:") => Cause::Dnsbl,
            _ => Cause::Other,
        }
    }
}

/// One day's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Day {
    /// Messages accepted for delivery (queued).
    pub received: u64,
    pub refused: [u64; Cause::ALL.len()],
    /// Accepted by SMTP and dropped by policy (DISCARD).
    pub discarded: u64,
    /// Messages the virus stage found a virus in.
    pub viruses: u64,
    /// Local deliveries, and how many of them the filter called spam.
    pub delivered: u64,
    pub spam: u64,
    /// The same for the user asked about (`--user`).
    pub user_delivered: u64,
    pub user_spam: u64,
    pub imap_inside: u64,
    pub imap_outside: u64,
    pub pop_inside: u64,
    pub pop_outside: u64,
}

impl Day {
    pub fn refused_total(&self) -> u64 {
        self.refused.iter().sum()
    }

    /// Adds another day's (or period's) counts to these.
    pub fn add(&mut self, other: &Day) {
        self.received += other.received;
        for (m, o) in self.refused.iter_mut().zip(other.refused) {
            *m += o;
        }
        self.discarded += other.discarded;
        self.viruses += other.viruses;
        self.delivered += other.delivered;
        self.spam += other.spam;
        self.user_delivered += other.user_delivered;
        self.user_spam += other.user_spam;
        self.imap_inside += other.imap_inside;
        self.imap_outside += other.imap_outside;
        self.pop_inside += other.pop_inside;
        self.pop_outside += other.pop_outside;
    }
}

/// Upper bounds of the size buckets, bytes (the seed's Table 3:
/// ≤1 KB, ≤10 KB, ≤100 KB, ≤1 MB, ≤10 MB, more; KB = 1,024 bytes).
pub const SIZE_BOUNDS: [u64; 5] = [1 << 10, 10 << 10, 100 << 10, 1 << 20, 10 << 20];
pub const SIZE_LABELS: [&str; 6] = ["<=1KB", "<=10KB", "<=100KB", "<=1MB", "<=10MB", ">10MB"];

/// What to count.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Seconds east of UTC the site's days begin at.
    pub utc_offset: i64,
    /// The first and last day to count (day numbers, inclusive).
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// The user of the per-user figure (lda's user name).
    pub user: Option<String>,
    /// The site's own networks: logins from them are "inside".
    pub inside: Vec<ipnet::IpNet>,
}

/// How many lines were read, and of what kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    pub read: u64,
    pub counted: u64,
    /// Lines with an event outside the period.
    pub outside_period: u64,
    pub not_understood: u64,
    /// The first few lines not understood, with where they were.
    pub examples: Vec<String>,
}

const EXAMPLES: usize = 5;

/// Everything counted so far.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub scope: Scope,
    days: HashMap<i64, Day>,
    pub sizes: [u64; SIZE_LABELS.len()],
    /// Refusals by DNS list.
    pub lists: BTreeMap<Vec<u8>, u64>,
    /// Viruses found, by name.
    pub virus_names: BTreeMap<Vec<u8>, u64>,
    pub lines: Lines,
}

impl Tally {
    pub fn new(scope: Scope) -> Tally {
        Tally {
            scope,
            ..Tally::default()
        }
    }

    /// Counts one line; `place` says where it is if it needs naming.
    pub fn add(&mut self, text: &[u8], place: impl FnOnce() -> String) {
        self.lines.read += 1;
        let (seconds, event) = match line::parse(text) {
            Line::Event(seconds, event) => (seconds, event),
            Line::Other => return,
            Line::NotUnderstood => {
                self.lines.not_understood += 1;
                if self.lines.examples.len() < EXAMPLES {
                    let shown: String = String::from_utf8_lossy(text).chars().take(200).collect();
                    self.lines.examples.push(format!("{}: {shown}", place()));
                }
                return;
            }
        };
        let day = (seconds + self.scope.utc_offset).div_euclid(86_400);
        if self.scope.since.is_some_and(|s| day < s) || self.scope.until.is_some_and(|u| day > u) {
            self.lines.outside_period += 1;
            return;
        }
        self.lines.counted += 1;
        let counts = self.days.entry(day).or_default();
        match event {
            Event::Accepted { size } => {
                counts.received += 1;
                let bucket = SIZE_BOUNDS.iter().position(|&b| size <= b).unwrap_or(SIZE_BOUNDS.len());
                self.sizes[bucket] += 1;
            }
            Event::Rejected { cause } => {
                let group = Cause::of(cause);
                counts.refused[group as usize] += 1;
                if group == Cause::Dnsbl {
                    let list = cause.strip_prefix(b"dnsbl:").unwrap_or(b"?");
                    match self.lists.get_mut(list) {
                        Some(n) => *n += 1,
                        None => {
                            self.lists.insert(list.to_vec(), 1);
                        }
                    }
                }
            }
            Event::Discarded => counts.discarded += 1,
            Event::Virus { names } => {
                counts.viruses += 1;
                // Debug of a list of strings: ["Eicar-Test-Signature", …]
                for name in names.split(|&b| b == b',') {
                    let name = trim_set(name, b" [\"\\]");
                    if !name.is_empty() {
                        *self.virus_names.entry(name.to_vec()).or_default() += 1;
                    }
                }
            }
            Event::Delivered { user, verdict } => {
                let spam = matches!(verdict, b"spam" | b"discarded");
                counts.delivered += 1;
                counts.spam += u64::from(spam);
                if self.scope.user.as_deref().is_some_and(|u| u.as_bytes() == user) {
                    counts.user_delivered += 1;
                    counts.user_spam += u64::from(spam);
                }
            }
            Event::Login { pop3, client } => {
                let inside = std::str::from_utf8(client)
                    .ok()
                    .and_then(|c| c.parse::<IpAddr>().ok())
                    .is_some_and(|ip| self.scope.inside.iter().any(|net| net.contains(&ip.to_canonical())));
                match (pop3, inside) {
                    (false, true) => counts.imap_inside += 1,
                    (false, false) => counts.imap_outside += 1,
                    (true, true) => counts.pop_inside += 1,
                    (true, false) => counts.pop_outside += 1,
                }
            }
        }
    }

    /// Adds what another tally counted (of other files, with the same
    /// scope).
    pub fn merge(&mut self, other: Tally) {
        for (day, counts) in other.days {
            self.days.entry(day).or_default().add(&counts);
        }
        for (m, o) in self.sizes.iter_mut().zip(other.sizes) {
            *m += o;
        }
        for (list, n) in other.lists {
            *self.lists.entry(list).or_default() += n;
        }
        for (name, n) in other.virus_names {
            *self.virus_names.entry(name).or_default() += n;
        }
        self.lines.read += other.lines.read;
        self.lines.counted += other.lines.counted;
        self.lines.outside_period += other.lines.outside_period;
        self.lines.not_understood += other.lines.not_understood;
        let room = EXAMPLES.saturating_sub(self.lines.examples.len());
        self.lines.examples.extend(other.lines.examples.into_iter().take(room));
    }

    /// Every day of the period in order, those without a line as zeros:
    /// from `--since` (or the first day seen) to `--until` (or the last).
    pub fn days(&self) -> Vec<(i64, Day)> {
        let first = self.scope.since.or_else(|| self.days.keys().min().copied());
        let last = self.scope.until.or_else(|| self.days.keys().max().copied());
        match (first, last) {
            (Some(first), Some(last)) => (first..=last)
                .map(|d| (d, self.days.get(&d).cloned().unwrap_or_default()))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// `b` without any of `set` at either end.
fn trim_set<'a>(b: &'a [u8], set: &[u8]) -> &'a [u8] {
    let start = b.iter().position(|c| !set.contains(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !set.contains(c)).map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(lines: &[&str], scope: Scope) -> Tally {
        let mut t = Tally::new(scope);
        for l in lines {
            t.add(l.as_bytes(), || "test".into());
        }
        t
    }

    #[test]
    fn days_sizes_and_causes() {
        let t = tally(
            &[
                "2026-12-01T23:59:59Z  INFO queued event=\"accepted\" queue_id=1 size=1024 nrcpt=1",
                "2026-12-02T00:00:00Z  INFO queued event=\"accepted\" queue_id=2 size=1025 nrcpt=1",
                "2026-12-02T00:00:01Z  INFO refused event=\"reject\" cause=\"dnsbl:zen.example\" client=192.0.2.1",
                "2026-12-02T00:00:02Z  INFO refused event=\"reject\" cause=\"check_client_access\" client=192.0.2.1",
                "2026-12-02T00:00:03Z  INFO virus found event=\"virus\" viruses=[\"Eicar-Test-Signature\", \"W32.X\"] action=Strip",
                "garbage",
            ],
            Scope::default(),
        );
        let days = t.days();
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].1.received, 1);
        assert_eq!(days[1].1.received, 1);
        assert_eq!(days[1].1.refused[Cause::Dnsbl as usize], 1);
        assert_eq!(days[1].1.refused[Cause::Access as usize], 1);
        assert_eq!(days[1].1.viruses, 1);
        assert_eq!(t.sizes[..2], [1, 1]);
        assert_eq!(t.lists.get(&b"zen.example"[..]), Some(&1));
        assert_eq!(t.virus_names.len(), 2, "{:?}", t.virus_names);
        assert!(t.virus_names.contains_key(&b"W32.X"[..]));
        assert_eq!((t.lines.read, t.lines.counted, t.lines.not_understood), (6, 5, 1));
        assert_eq!(t.lines.examples, ["test: garbage"]);
    }

    #[test]
    fn the_site_day_and_the_period() {
        // 23:30 UTC is the next morning in Japan
        let scope = Scope {
            utc_offset: 9 * 3600,
            since: Some(super::super::time::parse_date("2026-12-02").unwrap()),
            ..Scope::default()
        };
        let t = tally(
            &[
                "2026-12-01T23:30:00Z  INFO queued event=\"accepted\" size=1",
                "2026-12-01T14:00:00Z  INFO queued event=\"accepted\" size=1",
            ],
            scope,
        );
        assert_eq!(t.days().len(), 1);
        assert_eq!(t.days()[0].1.received, 1);
        assert_eq!(t.lines.outside_period, 1);
    }

    #[test]
    fn logins_inside_and_out() {
        let scope = Scope {
            inside: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            user: Some("alice".into()),
            ..Scope::default()
        };
        let t = tally(
            &[
                "2026-12-02T01:00:00Z  INFO logged in event=\"login\" service=\"imap\" client=10.1.2.3 user=\"alice\"",
                "2026-12-02T01:00:00Z  INFO logged in event=\"login\" service=\"imap\" client=::ffff:10.1.2.3 user=\"alice\"",
                "2026-12-02T01:00:00Z  INFO POP3 login event=\"login\" service=\"pop3\" client=192.0.2.1 user=\"bob\"",
                "2026-12-02T01:00:00Z  INFO filed event=\"delivered\" queue_id=1 verdict=\"spam\" user=\"alice\"",
                "2026-12-02T01:00:00Z  INFO filed event=\"delivered\" queue_id=2 verdict=\"clean\" user=\"alice\"",
                "2026-12-02T01:00:00Z  INFO filed event=\"delivered\" queue_id=3 verdict=\"spam\" user=\"bob\"",
            ],
            scope,
        );
        let d = &t.days()[0].1;
        assert_eq!(
            (d.imap_inside, d.imap_outside, d.pop_inside, d.pop_outside),
            (2, 0, 0, 1)
        );
        assert_eq!((d.delivered, d.spam, d.user_delivered, d.user_spam), (3, 2, 2, 1));
    }
}
