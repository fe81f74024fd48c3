//! End-to-end test support shared by the programs' test suites: peers
//! that run for real (a scratch Dovecot) rather than mocks.

pub mod dovecot;

/// True when the tests run as root (CI does); tests that need another uid
/// (Dovecot refuses to serve mail as root) require it.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The shared libraries a program asks the loader for (`readelf -d`'s
/// NEEDED entries), leaving out the loader itself, which every process
/// maps anyway (unoptimised builds name it for its TLS helper). The
/// per-message programs are built to need libc alone: each library more
/// is start-up cost in every delivery.
pub fn needed_libraries(program: &str) -> Vec<String> {
    let out = std::process::Command::new("readelf")
        .args(["-d", program])
        .output()
        .expect("readelf (binutils) runs");
    assert!(out.status.success(), "readelf -d {program}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .map(|l| l.rsplit('[').next().unwrap_or("").trim_end_matches(']').to_owned())
        .filter(|library| !library.starts_with("ld-linux"))
        .collect()
}
