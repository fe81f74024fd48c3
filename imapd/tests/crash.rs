//! A server killed (SIGKILL) in the middle of EXPUNGE's rewrite loses
//! nothing: the mbox is the old one or the new one, every message whole.

mod common;

use std::time::Duration;

use common::Client;

use imapd::mailbox::{Folder, Stamp};

const MESSAGES: u32 = 20_000;

#[test]
fn killed_mid_expunge_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    std::fs::create_dir_all(home.join("mail")).unwrap();
    std::fs::write(
        dir.path().join("passwd"),
        format!("alice:{{PLAIN}}secret::::{}::\n", home.display()),
    )
    .unwrap();
    // every other message is \Deleted; UIDs already assigned
    let mut mbox = String::new();
    for uid in 1..=MESSAGES {
        mbox.push_str(&format!("From a@b Sat Nov 28 04:03:56 2026\nSubject: message {uid}\n"));
        if uid == 1 {
            mbox.push_str(&format!("X-IMAPbase: 1234 {MESSAGES:010}\n"));
        }
        let deleted = if uid % 2 == 0 { "X-Status: D\n" } else { "" };
        mbox.push_str(&format!(
            "Status: O\n{deleted}X-UID: {uid}\n\nbody of message {uid}\n\n"
        ));
    }
    let inbox = home.join("inbox");
    let all: Vec<u32> = (1..=MESSAGES).collect();
    let kept: Vec<u32> = (1..=MESSAGES).filter(|u| u % 2 == 1).collect();
    for round in 0..6u64 {
        std::fs::write(&inbox, &mbox).unwrap();
        let (mut server, port) = common::spawn_imapd(dir.path(), "");
        let mut client = Client::connect(port);
        client.run("LOGIN alice secret");
        client.run("SELECT INBOX");
        client.send("EXPUNGE");
        // kill at a different point of the rewrite each round
        std::thread::sleep(Duration::from_millis(round * 8));
        server.kill().unwrap();
        server.wait().unwrap();

        let folder = Folder::parse(&std::fs::read(&inbox).unwrap(), Stamp::default());
        let uids: Vec<u32> = folder.messages.iter().map(|m| m.uid).collect();
        assert!(uids == all || uids == kept, "round {round}: {} messages", uids.len());
        eprintln!("round {round}: {} messages after the kill", uids.len());
        // nothing but the mailbox, its lock and the rewrite's scratch file
        for entry in std::fs::read_dir(&home).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                ["inbox", "inbox.lock", ".inbox.tmp", "mail"].contains(&name.as_str()),
                "{name}"
            );
        }
        for m in &folder.messages {
            let want = format!("Subject: message {0}\n\nbody of message {0}\n", m.uid);
            assert_eq!(String::from_utf8_lossy(&m.content), want, "round {round}");
        }
    }
}

/// A deliverer killed with SIGKILL in the middle of appending to a folder
/// leaves half a message and its dotlock (which records where the append
/// began). imapd, which takes the locks to read, finds the dotlock stale
/// and cuts the half message away before anyone sees it — without waiting
/// for the next delivery to that folder.
#[test]
fn a_half_appended_message_is_never_shown() {
    let site = common::Site::start();
    let folder = site.folder("alice", "Lists");
    site.deliver(&folder, "a@example.org", b"Subject: whole\n\nthe first message\n");
    let whole = std::fs::read(&folder).unwrap();
    // what a killed lda leaves: the start of its message, and its dotlock
    // naming a process that is gone
    let half = b"From b@example.org Sat Nov 28 04:03:56 2026\nSubject: half\n\nthe second mess";
    std::fs::write(&folder, [&whole[..], &half[..]].concat()).unwrap();
    let prefix: String = half[..40].iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(
        lda::lock::dotlock_path(&folder),
        format!(
            "pid={}\nappend-from={}\nappend-prefix={prefix}\n",
            u32::MAX / 2,
            whole.len()
        ),
    )
    .unwrap();

    let mut client = Client::connect(site.port);
    client.run("LOGIN alice secret");
    let lines = client.run("SELECT Lists").join("");
    assert!(lines.contains("* 1 EXISTS"), "{lines}");
    let fetched = client.run("FETCH 1:* (BODY[HEADER.FIELDS (SUBJECT)])").join("");
    assert!(fetched.contains("whole") && !fetched.contains("half"), "{fetched}");
    let now = std::fs::read(&folder).unwrap();
    assert!(
        !String::from_utf8_lossy(&now).contains("the second mess"),
        "cut back on disk too"
    );
    assert!(!lda::lock::dotlock_path(&folder).exists());
}
