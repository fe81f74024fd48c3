//! Logins: users from the Dovecot-format passwd-file (lda's user table),
//! passwords checked as Dovecot checks them, and the limits that make
//! guessing them slow: IMAP, POP3 and SMTP AUTH all log in through this.
//!
//! Password schemes: `{SHA512-CRYPT}`, `{SHA256-CRYPT}`, `{BLF-CRYPT}`,
//! `{MD5-CRYPT}`, `{CRYPT}` and a bare crypt(3) string are checked with
//! the system's libcrypt (libxcrypt: the same code that checks
//! /etc/shadow), so every hash `doveadm pw` writes works;
//! `{PLAIN}`/`{CLEARTEXT}` are stored secrets (needed for APOP only).
//!
//! Limits, all counted before the password is checked, so that logins
//! sent at once cannot slip past a count that is only raised afterwards:
//! failures per client address and per user name over a window (a
//! success resets neither: an attacker with one account of their own
//! cannot wipe their record), attempts in progress per address, and
//! password checks running at once (a cost-12 bcrypt takes ~0.2 s of a
//! core). A name that is not in the table costs the same check against
//! another user's hash, so the time of a refusal does not tell which
//! names exist. The caller waits [`AuthPolicy::failure_delay`] before
//! answering a failure (asynchronously: a delay must not hold a thread).

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use lda::users::{User, read_passwd_file};

/// Where passwords may be sent in the clear (`plaintext_auth`, in imapd's
/// and mtad's sections): over TLS they always may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaintextAuth {
    /// Only from 127.0.0.0/8 and ::1 (Dovecot's default notion of secure).
    Loopback,
    Always,
    Never,
}

impl PlaintextAuth {
    /// Whether a client at `client`, without TLS, may send a password.
    pub fn allows(self, client: IpAddr) -> bool {
        match self {
            PlaintextAuth::Always => true,
            PlaintextAuth::Never => false,
            PlaintextAuth::Loopback => client.to_canonical().is_loopback(),
        }
    }
}

/// Size of libxcrypt's `struct crypt_data`.
const CRYPT_DATA_SIZE: usize = 32768;

#[link(name = "crypt")]
unsafe extern "C" {
    fn crypt_rn(
        phrase: *const libc::c_char,
        setting: *const libc::c_char,
        data: *mut libc::c_void,
        size: libc::c_int,
    ) -> *mut libc::c_char;
}

/// True when `password` matches the stored `hash` (`{SCHEME}…`).
pub fn verify(hash: &str, password: &[u8]) -> bool {
    let (scheme, value) = split_scheme(hash);
    match scheme.as_str() {
        "PLAIN" | "CLEARTEXT" => constant_time_eq(value.as_bytes(), password),
        "CRYPT" | "SHA512-CRYPT" | "SHA256-CRYPT" | "BLF-CRYPT" | "MD5-CRYPT" => crypt_matches(value, password),
        _ => false,
    }
}

fn split_scheme(hash: &str) -> (String, &str) {
    match hash.strip_prefix('{').and_then(|h| h.split_once('}')) {
        Some((scheme, value)) => (scheme.to_ascii_uppercase(), value),
        None => ("CRYPT".to_owned(), hash),
    }
}

fn is_crypt_hash(hash: &str) -> bool {
    !hash.is_empty() && !matches!(split_scheme(hash).0.as_str(), "PLAIN" | "CLEARTEXT")
}

fn crypt_matches(setting: &str, password: &[u8]) -> bool {
    let (Ok(phrase), Ok(c_setting)) = (CString::new(password), CString::new(setting)) else {
        return false;
    };
    if setting.is_empty() {
        return false;
    }
    let mut data = vec![0u8; CRYPT_DATA_SIZE];
    // SAFETY: both strings are NUL-terminated; `data` is a zeroed buffer of
    // the size passed; the result points into `data`, read before it drops.
    let computed = unsafe {
        let out = crypt_rn(
            phrase.as_ptr(),
            c_setting.as_ptr(),
            data.as_mut_ptr().cast(),
            CRYPT_DATA_SIZE as libc::c_int,
        );
        if out.is_null() {
            return false;
        }
        CStr::from_ptr(out).to_bytes().to_vec()
    };
    // libxcrypt returns "*0"/"*1" on failure: never equal to a real hash
    !computed.starts_with(b"*") && constant_time_eq(&computed, setting.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The stored secret for APOP: only `{PLAIN}`/`{CLEARTEXT}` entries have one.
pub fn plaintext_secret(hash: &str) -> Option<&str> {
    let (scheme, value) = hash.strip_prefix('{')?.split_once('}')?;
    matches!(scheme.to_ascii_uppercase().as_str(), "PLAIN" | "CLEARTEXT").then_some(value)
}

/// Why a login failed.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong user or password (deliberately not saying which).
    Rejected,
    /// Too many failures or attempts from this address (or for this
    /// name) lately.
    TooManyFailures,
    /// The user table could not be read.
    Unavailable(String),
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::Rejected => write!(f, "authentication failed"),
            LoginError::TooManyFailures => write!(f, "too many failed logins; try later"),
            LoginError::Unavailable(e) => write!(f, "the user table is unavailable: {e}"),
        }
    }
}

impl std::error::Error for LoginError {}

/// The limits on logins.
#[derive(Debug, Clone, Copy)]
pub struct AuthPolicy {
    /// Failed logins (and attempts in progress) an address may make per
    /// `window`.
    pub max_failures_per_address: u32,
    /// Failed logins for one user name, from anywhere, per `window`.
    pub max_failures_per_user: u32,
    pub window: Duration,
    /// Logins one address may have in progress at once.
    pub max_attempts_per_address: u32,
    /// Password checks running at once, all clients together.
    pub max_checks: usize,
    /// How long the caller waits before answering a failure.
    pub failure_delay: Duration,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy {
            max_failures_per_address: 10,
            max_failures_per_user: 30,
            window: Duration::from_secs(300),
            max_attempts_per_address: 2,
            max_checks: std::thread::available_parallelism().map_or(2, |n| n.get()),
            failure_delay: Duration::from_secs(1),
        }
    }
}

/// Failures within the window that started at `since`.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

impl Failures {
    fn current(&mut self, window: Duration) -> u32 {
        if self.since.elapsed() >= window {
            *self = Failures {
                count: 0,
                since: Instant::now(),
            };
        }
        self.count
    }
}

#[derive(Debug, Default)]
struct Ledger {
    by_address: HashMap<IpAddr, (Failures, u32)>,
    by_user: HashMap<String, Failures>,
}

/// Names and addresses remembered at most; past it, stale entries are
/// dropped, and if none are stale, new ones are not tracked (bounded
/// memory whatever a client sends).
const MAX_TRACKED: usize = 16_384;

/// Checks logins against the passwd-file and keeps the limits.
pub struct Authenticator {
    passwd_file: PathBuf,
    policy: AuthPolicy,
    ledger: Mutex<Ledger>,
    checks_running: Mutex<usize>,
    check_finished: Condvar,
}

/// An attempt in progress: counted against its address until it ends.
struct Attempt<'a> {
    auth: &'a Authenticator,
    client: IpAddr,
    name: String,
    succeeded: bool,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut ledger = self.auth.ledger.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.auth.policy.window;
        if let Some((failures, in_progress)) = ledger.by_address.get_mut(&self.client) {
            *in_progress = in_progress.saturating_sub(1);
            if !self.succeeded {
                failures.current(window);
                failures.count += 1;
            }
        }
        if !self.succeeded
            && let Some(failures) = ledger.by_user.get_mut(&self.name)
        {
            failures.current(window);
            failures.count += 1;
        }
    }
}

impl Authenticator {
    pub fn new(passwd_file: PathBuf, policy: AuthPolicy) -> Authenticator {
        Authenticator {
            passwd_file,
            policy,
            ledger: Mutex::new(Ledger::default()),
            checks_running: Mutex::new(0),
            check_finished: Condvar::new(),
        }
    }

    pub fn policy(&self) -> &AuthPolicy {
        &self.policy
    }

    /// The user `name` (the table is re-read on each lookup, so edits take
    /// effect without a restart).
    pub fn user(&self, name: &str) -> Result<Option<User>, LoginError> {
        Ok(self.table()?.into_iter().find(|u| u.name == name))
    }

    fn table(&self) -> Result<Vec<User>, LoginError> {
        read_passwd_file(&self.passwd_file).map_err(|e| LoginError::Unavailable(e.to_string()))
    }

    /// Checks a password login from `client`.
    pub fn login(&self, client: IpAddr, name: &str, password: &[u8]) -> Result<User, LoginError> {
        self.check(client, name, |user| verify(&user.password, password))
    }

    /// A login decided by `matches` on the user's entry (APOP compares a
    /// digest of the stored secret). For a name not in the table,
    /// `matches` runs on another user's entry — with a password hash when
    /// the table has one — and the login fails all the same.
    pub fn check(&self, client: IpAddr, name: &str, matches: impl Fn(&User) -> bool) -> Result<User, LoginError> {
        let mut attempt = self.begin(client, name)?;
        let table = self.table()?;
        let user = table.iter().find(|u| u.name == name);
        let decoy = || table.iter().find(|u| is_crypt_hash(&u.password)).or(table.first());
        let _check = self.check_slot();
        match user {
            Some(user) if matches(user) => {
                attempt.succeeded = true;
                Ok(user.clone())
            }
            Some(_) => Err(LoginError::Rejected),
            None => {
                if let Some(other) = decoy() {
                    let _ = matches(other);
                }
                Err(LoginError::Rejected)
            }
        }
    }

    /// Counts an attempt from `client` for `name`, or refuses it.
    fn begin(&self, client: IpAddr, name: &str) -> Result<Attempt<'_>, LoginError> {
        let policy = &self.policy;
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        let ledger = &mut *ledger;
        if ledger.by_address.len() >= MAX_TRACKED {
            ledger
                .by_address
                .retain(|_, (f, in_progress)| *in_progress > 0 || f.since.elapsed() < policy.window);
        }
        if ledger.by_user.len() >= MAX_TRACKED {
            ledger.by_user.retain(|_, f| f.since.elapsed() < policy.window);
        }
        let fresh = Failures {
            count: 0,
            since: Instant::now(),
        };
        if let Some(failures) = ledger.by_user.get_mut(name)
            && failures.current(policy.window) >= policy.max_failures_per_user
        {
            return Err(LoginError::TooManyFailures);
        }
        let tracked_address = ledger.by_address.contains_key(&client) || ledger.by_address.len() < MAX_TRACKED;
        if tracked_address {
            let (failures, in_progress) = ledger.by_address.entry(client).or_insert((fresh, 0));
            let past = failures.current(policy.window);
            if past + *in_progress >= policy.max_failures_per_address || *in_progress >= policy.max_attempts_per_address
            {
                return Err(LoginError::TooManyFailures);
            }
            *in_progress += 1;
        }
        if ledger.by_user.len() < MAX_TRACKED {
            ledger.by_user.entry(name.to_owned()).or_insert(fresh);
        }
        Ok(Attempt {
            auth: self,
            client,
            name: name.to_owned(),
            succeeded: false,
        })
    }

    /// Waits for one of the `max_checks` slots for a password check.
    fn check_slot(&self) -> CheckSlot<'_> {
        let mut running = self.checks_running.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= self.policy.max_checks.max(1) {
            running = self.check_finished.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        CheckSlot(self)
    }
}

struct CheckSlot<'a>(&'a Authenticator);

impl Drop for CheckSlot<'_> {
    fn drop(&mut self) {
        let mut running = self.0.checks_running.lock().unwrap_or_else(|e| e.into_inner());
        *running -= 1;
        self.0.check_finished.notify_one();
    }
}

/// Standard base64 (SASL responses), padding optional.
pub fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text: Vec<u8> = text.iter().copied().filter(|&b| b != b'=').collect();
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut n) = (0u32, 0);
    for b in text {
        let v = ALPHABET.iter().position(|&x| x == b)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    Some(out)
}

/// Standard base64 with padding (SASL challenges, SMTP AUTH LOGIN).
pub fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `authzid NUL authcid NUL password` (SASL PLAIN, RFC 4616): the login
/// name and password, when the authorization identity is empty or the
/// same (logging in as someone else is not offered).
pub fn sasl_plain(data: &[u8]) -> Option<(String, &[u8])> {
    let parts: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    match parts.as_slice() {
        [authz, authc, password] if authz.is_empty() || authz == authc => {
            Some((String::from_utf8_lossy(authc).into_owned(), password))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // made with: mkpasswd -m sha-512 -S saltsalt secret
    const SHA512: &str =
        "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

    #[test]
    fn schemes() {
        let bcrypt = "$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a";
        assert!(verify(&format!("{{BLF-CRYPT}}{bcrypt}"), b"secret"));
        assert!(!verify(&format!("{{BLF-CRYPT}}{bcrypt}"), b"secreT"));
        assert!(verify(&format!("{{SHA512-CRYPT}}{SHA512}"), b"secret"));
        assert!(verify(SHA512, b"secret"));
        assert!(!verify(SHA512, b"Secret"));
        assert!(verify("{PLAIN}pass", b"pass"));
        assert!(!verify("{PLAIN}pass", b"pas"));
        assert!(!verify("{UNKNOWN}x", b"x"));
        assert!(!verify("", b""));
        assert_eq!(plaintext_secret("{PLAIN}pass"), Some("pass"));
        assert_eq!(plaintext_secret(SHA512), None);
        assert_eq!(base64_decode(b"AGJvYgBodW50ZXIy").unwrap(), b"\0bob\0hunter2");
        assert_eq!(base64_encode(b"\0bob\0hunter2"), "AGJvYgBodW50ZXIy");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_decode(b"not base64!"), None);
        assert_eq!(sasl_plain(b"\0bob\0pw"), Some(("bob".into(), &b"pw"[..])));
        assert_eq!(sasl_plain(b"alice\0bob\0pw"), None);
    }

    fn authenticator(policy: AuthPolicy) -> (tempfile::TempDir, Authenticator) {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            format!("alice:{{PLAIN}}secret::::/nonexistent::\nbob:{{SHA512-CRYPT}}{SHA512}::::/nonexistent::\n"),
        )
        .unwrap();
        (dir, Authenticator::new(passwd, policy))
    }

    #[test]
    fn failures_per_address_are_capped() {
        let (_dir, auth) = authenticator(AuthPolicy::default());
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(auth.login(attacker, "alice", b"guess"), Err(LoginError::Rejected));
        }
        // now even the right password is refused from that address...
        assert_eq!(
            auth.login(attacker, "alice", b"secret"),
            Err(LoginError::TooManyFailures)
        );
        // ...but not from another one
        assert_eq!(auth.login(other, "alice", b"secret").unwrap().name, "alice");
        assert_eq!(auth.login(other, "nobody", b"x"), Err(LoginError::Rejected));
    }

    #[test]
    fn a_success_does_not_wipe_the_record() {
        let (_dir, auth) = authenticator(AuthPolicy::default());
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        for round in 0..20 {
            let expected = if round < 10 {
                Err(LoginError::Rejected)
            } else {
                Err(LoginError::TooManyFailures)
            };
            assert_eq!(auth.login(attacker, "bob", b"guess").map(|u| u.name), expected);
            // the attacker's own account, logged into between guesses
            let _ = auth.login(attacker, "alice", b"secret");
        }
    }

    #[test]
    fn failures_per_user_are_capped_from_anywhere() {
        let policy = AuthPolicy {
            max_failures_per_user: 5,
            ..AuthPolicy::default()
        };
        let (_dir, auth) = authenticator(policy);
        for i in 0..5u8 {
            let address = IpAddr::from([198, 51, 100, i]);
            assert_eq!(auth.login(address, "bob", b"guess"), Err(LoginError::Rejected));
        }
        let fresh = IpAddr::from([203, 0, 113, 1]);
        assert_eq!(auth.login(fresh, "bob", b"secret"), Err(LoginError::TooManyFailures));
        assert_eq!(auth.login(fresh, "alice", b"secret").unwrap().name, "alice");
    }

    #[test]
    fn concurrent_attempts_from_one_address_cannot_overrun_the_cap() {
        let policy = AuthPolicy {
            max_attempts_per_address: 100,
            ..AuthPolicy::default()
        };
        let (_dir, auth) = authenticator(policy);
        let attacker: IpAddr = "192.0.2.9".parse().unwrap();
        let checked = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..64 {
                s.spawn(|| {
                    let _ = auth.check(attacker, "bob", |user| {
                        checked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        verify(&user.password, b"guess")
                    });
                });
            }
        });
        assert!(
            checked.into_inner() <= 10,
            "at most the cap's worth of passwords checked"
        );
    }

    #[test]
    fn unknown_names_cost_a_password_check() {
        let (_dir, auth) = authenticator(AuthPolicy::default());
        let client: IpAddr = "192.0.2.3".parse().unwrap();
        let mut checked = Vec::new();
        let seen = std::sync::Mutex::new(&mut checked);
        let _ = auth.check(client, "nobody", |user| {
            seen.lock().unwrap().push(user.password.clone());
            false
        });
        assert_eq!(
            checked,
            [format!("{{SHA512-CRYPT}}{SHA512}")],
            "checked against bob's hash"
        );
    }
}
