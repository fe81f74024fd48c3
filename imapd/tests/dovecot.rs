//! Dovecot reads the flags, keywords and UIDs our server wrote, and we
//! read what Dovecot changes: a user can move between the two servers.
//! Runs as root (as CI does): Dovecot needs a non-root mail uid.

mod common;

use common::Site;
use e2e_tests::dovecot::Dovecot;
use imapd::mailbox::{Folder, Stamp};

const NOBODY: u32 = 65534;

fn chown_tree(path: &std::path::Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

#[test]
fn dovecot_and_imapd_share_flags_and_uids() {
    assert!(e2e_tests::is_root(), "this test runs as root (as CI does)");
    let site = Site::start();
    std::fs::set_permissions(site.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let inbox = site.inbox("alice");
    for i in 1..=3 {
        site.deliver(
            &inbox,
            "carol@example.com",
            format!("Subject: m{i}\n\nbody {i}\n").as_bytes(),
        );
    }
    site.python("flags_for_dovecot.py", &["set"]);
    let ours = Folder::parse(&std::fs::read(&inbox).unwrap(), Stamp::default());

    let home = site.home("alice");
    chown_tree(&home, NOBODY);
    let passwd = site.dir.path().join("dovecot-passwd");
    std::fs::write(
        &passwd,
        format!("alice:{{PLAIN}}secret:{NOBODY}:{NOBODY}::{}::\n", home.display()),
    )
    .unwrap();
    let dovecot = Dovecot::start(&site.dir.path().join("dovecot"), &passwd, "mbox:~/mail:INBOX=~/inbox");
    let text = |args: &[&str]| String::from_utf8_lossy(&dovecot.doveadm(args)).into_owned();

    let flags = flags_by_uid(&text(&["fetch", "-u", "alice", "uid flags", "mailbox", "INBOX"]));
    let status = text(&[
        "mailbox",
        "status",
        "-u",
        "alice",
        "messages uidnext uidvalidity",
        "INBOX",
    ]);
    assert_eq!(
        status.trim(),
        format!(
            "INBOX messages=3 uidnext={} uidvalidity={}",
            ours.uid_next, ours.uid_validity
        )
    );
    assert_eq!(
        flags,
        vec![
            (1, set(&["\\Flagged", "\\Seen"])),
            (2, set(&["\\Answered", "$Junk", "work"])),
            (3, set(&["\\Deleted"])),
        ]
    );
    let spam = text(&["fetch", "-u", "alice", "uid hdr.subject", "mailbox", "Spam"]);
    assert!(spam.contains("uid: 1\nhdr.subject: m1"), "{spam}");
    assert_eq!(
        flags_by_uid(&text(&["fetch", "-u", "alice", "uid flags", "mailbox", "Spam"])),
        // copied into Spam: $Junk added, and \Recent as no session has seen it yet
        vec![(1, set(&["\\Flagged", "\\Seen", "$Junk", "\\Recent"]))]
    );

    // and back: Dovecot changes flags, our server sees them
    dovecot.doveadm(&["flags", "add", "-u", "alice", "\\Draft", "mailbox", "INBOX", "uid", "1"]);
    dovecot.doveadm(&[
        "flags",
        "remove",
        "-u",
        "alice",
        "\\Deleted",
        "mailbox",
        "INBOX",
        "uid",
        "3",
    ]);
    site.python("flags_for_dovecot.py", &["check"]);
}

fn set(flags: &[&str]) -> std::collections::BTreeSet<String> {
    flags.iter().map(|f| f.to_string()).collect()
}

/// doveadm's `uid: N` / `flags: …` pager output → (uid, flags).
fn flags_by_uid(output: &str) -> Vec<(u32, std::collections::BTreeSet<String>)> {
    let mut out = Vec::new();
    let mut uid = None;
    for line in output.lines() {
        if let Some(u) = line.strip_prefix("uid: ") {
            uid = u.trim().parse().ok();
        } else if let (Some(flags), Some(u)) = (line.strip_prefix("flags:"), uid.take()) {
            out.push((u, flags.split_whitespace().map(str::to_owned).collect()));
        }
    }
    out
}
