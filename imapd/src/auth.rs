//! Logins: users from the Dovecot-format passwd-file (lda's user table),
//! passwords checked as Dovecot checks them, a delay after each failure and
//! a cap on failures per client address.
//!
//! Password schemes: `{SHA512-CRYPT}`, `{SHA256-CRYPT}`, `{BLF-CRYPT}`,
//! `{CRYPT}` and a bare crypt(3) string are checked with the system's
//! libcrypt (libxcrypt: the same code that checks /etc/shadow), so every
//! hash `doveadm pw` writes works; `{PLAIN}`/`{CLEARTEXT}` are stored
//! secrets (needed for APOP only).

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lda::users::{User, read_passwd_file};

/// Failed logins an address may make per [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Pause before answering a failed login.
pub const FAILURE_DELAY: Duration = Duration::from_secs(1);

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
    let (scheme, value) = match hash.strip_prefix('{').and_then(|h| h.split_once('}')) {
        Some((scheme, value)) => (scheme.to_ascii_uppercase(), value),
        None => ("CRYPT".to_owned(), hash),
    };
    match scheme.as_str() {
        "PLAIN" | "CLEARTEXT" => constant_time_eq(value.as_bytes(), password),
        "CRYPT" | "SHA512-CRYPT" | "SHA256-CRYPT" | "BLF-CRYPT" | "MD5-CRYPT" => crypt_matches(value, password),
        _ => false,
    }
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
    /// Too many failures from this address lately.
    TooManyFailures,
    /// The user table could not be read.
    Unavailable(String),
}

/// Checks logins against the passwd-file and counts failures per address.
pub struct Authenticator {
    passwd_file: std::path::PathBuf,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Authenticator {
    pub fn new(passwd_file: std::path::PathBuf) -> Authenticator {
        Authenticator {
            passwd_file,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The user `name` (re-read on each login, so edits to the table take
    /// effect without a restart).
    pub fn user(&self, name: &str) -> Result<Option<User>, LoginError> {
        let table = read_passwd_file(&self.passwd_file).map_err(|e| LoginError::Unavailable(e.to_string()))?;
        Ok(table.into_iter().find(|u| u.name == name))
    }

    /// Checks a password login from `client`. Failures are counted; the
    /// caller delays its answer by [`FAILURE_DELAY`].
    pub fn login(&self, client: IpAddr, name: &str, password: &[u8]) -> Result<User, LoginError> {
        self.check_allowed(client)?;
        match self.user(name)? {
            Some(user) if verify(&user.password, password) => {
                self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&client);
                Ok(user)
            }
            _ => {
                self.record_failure(client);
                Err(LoginError::Rejected)
            }
        }
    }

    pub fn check_allowed(&self, client: IpAddr) -> Result<(), LoginError> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(&client) {
            Some(&(count, since)) if count >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW => {
                Err(LoginError::TooManyFailures)
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, client: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = failures.entry(client).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        // made with: mkpasswd -m sha-512 -S saltsalt secret
        let sha512 =
            "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        let bcrypt = "$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a";
        assert!(verify(&format!("{{BLF-CRYPT}}{bcrypt}"), b"secret"));
        assert!(!verify(&format!("{{BLF-CRYPT}}{bcrypt}"), b"secreT"));
        assert!(verify(&format!("{{SHA512-CRYPT}}{sha512}"), b"secret"));
        assert!(verify(sha512, b"secret"));
        assert!(!verify(sha512, b"Secret"));
        assert!(verify("{PLAIN}pass", b"pass"));
        assert!(!verify("{PLAIN}pass", b"pas"));
        assert!(!verify("{UNKNOWN}x", b"x"));
        assert!(!verify("", b""));
        assert_eq!(plaintext_secret("{PLAIN}pass"), Some("pass"));
        assert_eq!(plaintext_secret(sha512), None);
        assert_eq!(base64_decode(b"AGJvYgBodW50ZXIy").unwrap(), b"\0bob\0hunter2");
        assert_eq!(base64_decode(b"not base64!"), None);
    }

    #[test]
    fn failures_per_address_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "alice:{PLAIN}secret::::/nonexistent::\n").unwrap();
        let auth = Authenticator::new(passwd);
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..MAX_FAILURES {
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
}
