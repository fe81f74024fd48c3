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
//! are kept in memory (a restart forgets them: every sender is delayed
//! once more), at most [`MAX_TRIPLETS`]; the oldest go first.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::table::Table;
use super::{Facts, Point, Stage, Verdict};
use crate::smtp::reply::Reply;

/// How many triplets are remembered.
pub const MAX_TRIPLETS: usize = 500_000;

pub struct Greylist {
    delay: Duration,
    max_age: Duration,
    /// Only clients these tables list are greylisted (empty: all).
    clients: Vec<Table>,
    /// Triplet → when it was first seen, and whether a retry passed.
    seen: Mutex<HashMap<String, (Instant, bool)>>,
}

impl Greylist {
    pub fn new(delay: Duration, max_age: Duration, clients: Vec<Table>) -> Greylist {
        Greylist {
            delay,
            max_age,
            clients,
            seen: Mutex::new(HashMap::new()),
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
        if self.clients.is_empty() {
            return true;
        }
        let addr = facts
            .client_addr
            .map(|a| a.to_canonical().to_string())
            .unwrap_or_default();
        self.clients.iter().any(|t| {
            let lookups = t.lookups();
            [facts.client_name.as_str(), addr.as_str()]
                .iter()
                .any(|k| !k.is_empty() && lookups.get(k.as_bytes()).is_some())
        })
    }

    fn verdict(&self, facts: &Facts, now: Instant) -> Verdict {
        let (Some(ip), Some(rcpt)) = (facts.client_addr, facts.recipients.last()) else {
            return Verdict::Continue;
        };
        if !self.applies(facts) {
            return Verdict::Continue;
        }
        let sender = facts.sender.as_deref().unwrap_or("").to_ascii_lowercase();
        let key = format!("{}/{sender}/{}", Greylist::network(ip), rcpt.to_ascii_lowercase());
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let passed = match seen.get_mut(&key) {
            Some((first, passed)) if now.duration_since(*first) > self.max_age => {
                *first = now;
                *passed = false;
                false
            }
            Some((first, passed)) => {
                if !*passed && now.duration_since(*first) >= self.delay {
                    *passed = true;
                }
                *passed
            }
            None => {
                if seen.len() >= MAX_TRIPLETS {
                    // forget the oldest tenth
                    let mut ages: Vec<Instant> = seen.values().map(|(t, _)| *t).collect();
                    ages.sort();
                    let cut = ages[ages.len() / 10];
                    seen.retain(|_, (t, _)| *t > cut);
                }
                seen.insert(key, (now, false));
                false
            }
        };
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
                self.verdict(facts, Instant::now())
            } else {
                Verdict::Continue
            }
        })
    }
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
        let g = Greylist::new(Duration::from_secs(300), Duration::from_secs(86400), Vec::new());
        let t0 = Instant::now();
        let f = facts("192.0.2.10", "a@example.org", "alice@example.jp");
        let refused = |v: Verdict| matches!(v, Verdict::Reject(r) if r.code == 450);
        assert!(refused(g.verdict(&f, t0)));
        assert!(refused(g.verdict(&f, t0 + Duration::from_secs(299))), "too soon");
        assert!(!refused(g.verdict(&f, t0 + Duration::from_secs(300))));
        // from then on at once, from another address of the farm too
        assert!(!refused(g.verdict(
            &facts("192.0.2.77", "A@example.org", "alice@example.jp"),
            t0 + Duration::from_secs(301)
        )));
        // another triplet waits; an old one starts again
        assert!(refused(
            g.verdict(&facts("192.0.2.10", "b@example.org", "alice@example.jp"), t0)
        ));
        assert!(refused(g.verdict(&f, t0 + Duration::from_secs(300 + 86401))));
    }

    #[test]
    fn only_the_clients_a_table_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s25r");
        std::fs::write(&path, "/^[^.]*[0-9]{5}/ 450 dynamic\n").unwrap();
        let table = Table::open(&format!("regexp:{}", path.display())).unwrap();
        let g = Greylist::new(Duration::from_secs(300), Duration::from_secs(86400), vec![table]);
        let mut dynamic = facts("192.0.2.10", "a@example.org", "alice@example.jp");
        dynamic.client_name = "ntt12345.example.ne.jp".into();
        let mut named = dynamic.clone();
        named.client_name = "mail.example.jp".into();
        assert!(matches!(g.verdict(&dynamic, Instant::now()), Verdict::Reject(_)));
        assert_eq!(g.verdict(&named, Instant::now()), Verdict::Continue);
    }
}
