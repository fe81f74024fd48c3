//! End-to-end test support shared by the programs' test suites: peers
//! that run for real (a scratch Dovecot) rather than mocks.

pub mod dovecot;

/// True when the tests run as root (CI does); tests that need another uid
/// (Dovecot refuses to serve mail as root) require it.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}
