//! `imapd --check-config`: "ok" and 0 for a good file; the file, line,
//! column and problem, and 78, for a bad one — a misspelt key is never
//! silently ignored.

use std::process::Command;

const IMAPD: &str = env!("CARGO_BIN_EXE_imapd");

fn check(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailkit.toml");
    std::fs::write(dir.path().join("passwd"), "alice:{PLAIN}x::::/tmp::\n").unwrap();
    std::fs::write(&config, text.replace("DIR", &dir.path().display().to_string())).unwrap();
    let out = Command::new(IMAPD)
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "DIR");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn check_config_names_file_line_and_key() {
    let good = "[users]\npasswd_file = \"DIR/passwd\"\n[imapd]\nlisten = [\"127.0.0.1:1143\"]\n";
    assert_eq!(check(good), (Some(0), "ok\n".into(), String::new()));

    let (code, _, err) = check("[users]\npasswd_file = \"DIR/passwd\"\n[imapd]\nlsiten = [\"127.0.0.1:1143\"]\n");
    assert_eq!(code, Some(78));
    assert!(
        err.contains("DIR/mailkit.toml:4:1: [imapd] unknown field `lsiten`"),
        "{err}"
    );

    let (code, _, err) = check("[users]\npasswd_file = \"DIR/passwd\"\n[mailbox]\nlock_timeout = \"soon\"\n");
    assert_eq!(code, Some(78));
    assert!(err.contains("DIR/mailkit.toml:4:16: [mailbox] invalid type"), "{err}");

    let (code, _, err) = check("[imap]\nlisten = []\n");
    assert_eq!(code, Some(78));
    assert!(err.contains("DIR/mailkit.toml:1:1: unknown section [imap]"), "{err}");

    let (code, _, err) = check(
        "[users]\npasswd_file = \"DIR/passwd\"\n[imapd]\ntls_cert = \"DIR/nope.pem\"\ntls_key = \"DIR/nope.pem\"\n",
    );
    assert_eq!(code, Some(78));
    assert!(err.contains("DIR/nope.pem"), "{err}");

    let (code, _, err) = check("[imapd]\n");
    assert_eq!(code, Some(78));
    assert!(err.contains("passwd_file"), "{err}");
}
