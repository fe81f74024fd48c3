//! The manual pages, made from the programs' own command-line
//! definitions (clap_mangen): `mailkit man DIR`, `mtad --man-page`,
//! `imapd --man-page`.

mod common;

use std::process::Command;

use common::{MAILKIT, program};

#[test]
fn every_program_has_its_manual_page() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(MAILKIT).arg("man").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (page, mentions) in [
        ("mailkit.1", &["mailkit", "report", "up"][..]),
        ("mailkit-up.1", &["\\-\\-port\\-base", "\\-\\-foreground", "\\-\\-data"]),
        ("mailkit-report.1", &["\\-\\-since", "\\-\\-inside", "\\-\\-html"]),
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH "), "{page}: {text}");
        for m in mentions {
            assert!(text.contains(m), "{page} mentions {m}:\n{text}");
        }
    }
    for (name, mentions) in [
        ("mtad", &["\\-\\-check\\-config", "refused", "dkim"][..]),
        ("imapd", &["\\-\\-check\\-config", "\\-\\-config"]),
    ] {
        let out = Command::new(program(name)).arg("--man-page").output().unwrap();
        assert!(out.status.success(), "{name}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(&format!(".TH {name} 8")), "{name}: {text}");
        for m in mentions {
            assert!(text.contains(m), "{name} mentions {m}");
        }
    }
}
