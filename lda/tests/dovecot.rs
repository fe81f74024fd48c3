//! Dovecot (Debian's dovecot-core, installed by .ci/run) reads what lda
//! wrote: same messages, same boundaries, same bodies — using the very
//! passwd-file lda read the user from.
//!
//! Runs as root: Dovecot refuses to access mail as uid 0, so the mailbox
//! belongs to `nobody` (65534), which lda switches to as an MTA would make
//! it do.

use e2e_tests::dovecot::Dovecot;

mod common;
const NOBODY: u32 = 65534;

#[test]
fn dovecot_reads_what_lda_delivered() {
    let is_root = e2e_tests::is_root();
    assert!(
        is_root,
        "this test runs as root (as CI does): Dovecot needs a non-root mail uid to switch to"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let home = dir.path().join("home/alice");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    let config = common::write_site(
        dir.path(),
        NOBODY,
        &home,
        "~/mail/inbox",
        "",
        "[filter]\nenabled = false\n",
    );
    let passwd = dir.path().join("passwd");

    let mut bodies: Vec<Vec<u8>> = vec![
        b"plain body\n".to_vec(),
        b"no final newline".to_vec(),
        b"crlf line\r\nsecond\r\n".to_vec(),
        b"\n\nbody with leading blank lines\n\n\n".to_vec(),
    ];
    bodies.extend((0..50).map(|i| format!("message number {i}\n").into_bytes()));
    for (i, body) in bodies.iter().enumerate() {
        let mut message = format!("Subject: message {i}\nMessage-ID: <{i}@lda.test>\n\n").into_bytes();
        message.extend_from_slice(body);
        let out = common::run_lda(&config, &["-d", "alice", "-f", "sender@example.com"], &message);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let inbox = home.join("mail/inbox");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&inbox).unwrap().uid(),
        NOBODY,
        "lda switched to the recipient"
    );

    let dovecot = Dovecot::start(dir.path(), &passwd, "mbox:~/mail:INBOX=~/mail/inbox");
    let status = dovecot.doveadm(&["mailbox", "status", "-u", "alice", "messages", "INBOX"]);
    assert_eq!(
        String::from_utf8_lossy(&status).trim(),
        format!("INBOX messages={}", bodies.len())
    );
    for (i, body) in bodies.iter().enumerate() {
        let uid = (i + 1).to_string();
        let subject = dovecot.doveadm(&["fetch", "-u", "alice", "hdr.subject", "mailbox", "INBOX", "uid", &uid]);
        assert!(
            String::from_utf8_lossy(&subject).contains(&format!("message {i}")),
            "{}",
            String::from_utf8_lossy(&subject)
        );
        let fetched = dovecot.doveadm(&["fetch", "-u", "alice", "body", "mailbox", "INBOX", "uid", &uid]);
        // the pager format: "body:\n" then the body, then a form feed
        let fetched = fetched.strip_prefix(b"body:\n").expect("pager format");
        let fetched = fetched
            .strip_suffix(b"\x0c\n")
            .or_else(|| fetched.strip_suffix(b"\x0c"))
            .unwrap_or(fetched);
        assert_eq!(
            String::from_utf8_lossy(fetched),
            String::from_utf8_lossy(body),
            "message {i} as Dovecot reads it"
        );
    }
}

/// The Debian spool: /var/mail is root:mail 2775, so only the `mail` group
/// can create a user's mailbox there. lda, switched to the recipient, keeps
/// that group.
#[test]
fn delivers_into_a_mail_group_spool_as_the_recipient() {
    let is_root = e2e_tests::is_root();
    assert!(is_root, "this test runs as root (as CI does)");
    let mail_gid = lda::users::group_id("mail").expect("Debian has a mail group");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::os::unix::fs::chown(&spool, Some(0), Some(mail_gid)).unwrap();
    std::fs::set_permissions(&spool, std::os::unix::fs::PermissionsExt::from_mode(0o2775)).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    let inbox = format!("{}/%u", spool.display());
    let config = common::write_site(dir.path(), NOBODY, &home, &inbox, "", "[filter]\nenabled = false\n");
    let out = common::run_lda(&config, &["-d", "alice"], b"Subject: spool\n\nhello\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(spool.join("alice")).unwrap();
    assert_eq!(meta.uid(), NOBODY, "the mailbox belongs to the recipient");
    assert!(!spool.join("alice.lock").exists());
}
