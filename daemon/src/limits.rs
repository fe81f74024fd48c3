//! Connection caps, as Postfix's anvil and Dovecot's login limits keep
//! them: connections in all, connections from one address that have not
//! logged in, and logged-in connections of one user from one address
//! (Dovecot's `mail_max_userip_connections`). A connection over a cap is
//! answered with the protocol's refusal and closed; the others are served
//! as before.
//!
//! A [`Permit`] is one admitted connection; dropping it frees its place.
//! The count of admitted connections also tells a shutting-down server
//! when its sessions are done ([`ConnectionLimits::drained`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub total: usize,
    /// Connections from one address not (yet) logged in.
    pub per_address: usize,
    /// Logged-in connections of one user from one address.
    pub per_user_address: usize,
    /// New connections one address may open per minute (0: no limit), as
    /// Postfix's `smtpd_client_connection_rate_limit`.
    pub rate_per_minute: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            total: 5000,
            per_address: 20,
            per_user_address: 10,
            rate_per_minute: 0,
        }
    }
}

/// Descriptors kept for what is not a connection: listeners, log, the
/// token databases, the files a mailbox operation opens.
const RESERVED_DESCRIPTORS: u64 = 64;

impl Caps {
    /// These caps with `total` lowered, when it must be, to what
    /// `open_files` descriptors carry: two a connection (its socket, and
    /// one on average for the mailbox it works on), beyond a reserve. A
    /// server that admitted more would find `accept` and its own mailbox
    /// opens failing for want of descriptors.
    pub fn within_open_files(self, open_files: u64) -> Caps {
        let carried = (open_files.saturating_sub(RESERVED_DESCRIPTORS) / 2).max(1);
        Caps {
            total: self.total.min(usize::try_from(carried).unwrap_or(usize::MAX)),
            ..self
        }
    }
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerAddress,
    PerUserAddress,
    /// Too many new connections from the address this minute.
    Rate,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    anonymous: HashMap<IpAddr, usize>,
    users: HashMap<(String, IpAddr), usize>,
    /// Recent connection times per address, for the rate cap.
    recent: HashMap<IpAddr, std::collections::VecDeque<std::time::Instant>>,
}

/// The window of the rate cap.
const RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// The counts behind the caps, shared by a server's listeners.
#[derive(Debug)]
pub struct ConnectionLimits {
    caps: Caps,
    counts: Mutex<Counts>,
    drained: Notify,
}

/// One admitted connection.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    address: IpAddr,
    user: Option<String>,
}

impl ConnectionLimits {
    pub fn new(caps: Caps) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            caps,
            counts: Mutex::new(Counts::default()),
            drained: Notify::new(),
        })
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection from `address`, or says which cap is full.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Permit, Refusal> {
        let mut counts = self.counts();
        if counts.total >= self.caps.total {
            return Err(Refusal::Total);
        }
        if self.caps.rate_per_minute > 0 {
            let now = std::time::Instant::now();
            if counts.recent.len() > 16_384 {
                counts
                    .recent
                    .retain(|_, times| times.back().is_some_and(|t| now - *t < RATE_WINDOW));
            }
            let times = counts.recent.entry(address).or_default();
            while times.front().is_some_and(|t| now - *t >= RATE_WINDOW) {
                times.pop_front();
            }
            if times.len() >= self.caps.rate_per_minute {
                return Err(Refusal::Rate);
            }
            times.push_back(now);
        }
        let from_address = counts.anonymous.entry(address).or_insert(0);
        if *from_address >= self.caps.per_address {
            return Err(Refusal::PerAddress);
        }
        *from_address += 1;
        counts.total += 1;
        Ok(Permit {
            limits: self.clone(),
            address,
            user: None,
        })
    }

    /// Connections admitted and not yet closed.
    pub fn active(&self) -> usize {
        self.counts().total
    }

    /// Waits until every admitted connection has closed.
    pub async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Permit {
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The connection logged in as `user`: it now counts against the
    /// user's cap for its address instead of the address's anonymous one.
    /// Refused (and unchanged) when that cap is full.
    pub fn logged_in(&mut self, user: &str) -> Result<(), Refusal> {
        let mut counts = self.limits.counts();
        let key = (user.to_owned(), self.address);
        if self.user.as_deref() == Some(user) {
            return Ok(());
        }
        if counts.users.get(&key).copied().unwrap_or(0) >= self.limits.caps.per_user_address {
            return Err(Refusal::PerUserAddress);
        }
        match self.user.take() {
            Some(previous) => decrement(&mut counts.users, &(previous, self.address)),
            None => decrement(&mut counts.anonymous, &self.address),
        }
        *counts.users.entry(key).or_insert(0) += 1;
        self.user = Some(user.to_owned());
        Ok(())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        match self.user.take() {
            Some(user) => decrement(&mut counts.users, &(user, self.address)),
            None => decrement(&mut counts.anonymous, &self.address),
        }
        counts.total -= 1;
        if counts.total == 0 {
            self.limits.drained.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_user_and_total() {
        let limits = ConnectionLimits::new(Caps {
            total: 4,
            per_address: 2,
            per_user_address: 1,
            rate_per_minute: 0,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut first = limits.admit(a).unwrap();
        let second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::PerAddress);
        // a logged-in connection no longer counts as anonymous
        first.logged_in("alice").unwrap();
        let mut third = limits.admit(a).unwrap();
        assert_eq!(third.logged_in("alice"), Err(Refusal::PerUserAddress));
        third.logged_in("bob").unwrap();
        let _others = [limits.admit(b).unwrap()];
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::Total);
        drop(second);
        assert!(limits.admit(b).is_ok());
        assert_eq!(limits.active(), 3, "the permit just admitted was dropped again");
        drop((first, third));
        assert_eq!(limits.active(), 1);
        assert!(limits.counts().users.is_empty());
    }

    #[test]
    fn connections_per_minute() {
        let limits = ConnectionLimits::new(Caps {
            rate_per_minute: 3,
            ..Caps::default()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            drop(limits.admit(a).unwrap());
        }
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::Rate, "closed ones count too");
        assert!(limits.admit("192.0.2.2".parse().unwrap()).is_ok());
    }

    #[test]
    fn the_total_fits_the_descriptors() {
        let caps = Caps::default();
        assert_eq!(caps.within_open_files(1024).total, 480);
        assert_eq!(caps.within_open_files(1 << 20).total, caps.total);
        assert_eq!(caps.within_open_files(10).total, 1);
    }

    #[tokio::test]
    async fn drained_when_the_last_connection_closes() {
        let limits = ConnectionLimits::new(Caps::default());
        let permit = limits.admit("192.0.2.1".parse().unwrap()).unwrap();
        let waiter = tokio::spawn({
            let limits = limits.clone();
            async move { limits.drained().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(permit);
        waiter.await.unwrap();
    }
}
