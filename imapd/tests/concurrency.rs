//! lda delivering while an IMAP session sets flags and expunges in the same
//! mbox: every delivered message ends up there exactly once and whole
//! (except the ones the session expunged), under the shared locks.

mod common;

use std::collections::HashSet;

use common::{Client, Site};
use imapd::mailbox::{Folder, Stamp};

#[test]
fn deliveries_and_expunges_interleave_safely() {
    let site = Site::start();
    let inbox = site.inbox("alice");
    site.deliver(&inbox, "a@b", b"Subject: seed\n\nseed\n");
    const WRITERS: usize = 4;
    const EACH: usize = 60;
    let mut expunged: HashSet<String> = HashSet::new();
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let site = &site;
            let inbox = &inbox;
            scope.spawn(move || {
                for i in 0..EACH {
                    let body = format!("Subject: m{w}-{i}\n\nbody of m{w}-{i}\n{}\n", "x".repeat(i * 37));
                    site.deliver(inbox, "sender@example.com", body.as_bytes());
                }
            });
        }
        let mut client = Client::connect(site.port);
        client.run("LOGIN alice secret");
        for round in 0..40 {
            client.run("SELECT INBOX");
            client.run("STORE 1:* +FLAGS.SILENT (\\Seen)");
            if round % 3 == 0 {
                // expunge the first message, remembering which it was
                let header = client.run("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])").join("");
                let subject = header
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .expect("a subject")
                    .trim()
                    .to_owned();
                client.run("STORE 1 +FLAGS.SILENT (\\Deleted)");
                client.run("EXPUNGE");
                expunged.insert(subject);
            }
            client.run("NOOP");
        }
        client.run("LOGOUT");
    });

    let folder = Folder::parse(&std::fs::read(&inbox).unwrap(), Stamp::default());
    let mut seen = HashSet::new();
    for m in &folder.messages {
        let text = String::from_utf8(m.content.to_vec()).unwrap();
        let subject = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("Subject: ")
            .unwrap()
            .to_owned();
        assert!(seen.insert(subject.clone()), "{subject} twice");
        assert!(!expunged.contains(&subject), "{subject} came back after EXPUNGE");
        if subject != "seed" {
            let (w, i) = subject[1..].split_once('-').unwrap();
            let i: usize = i.parse().unwrap();
            assert_eq!(
                text,
                format!("Subject: m{w}-{i}\n\nbody of m{w}-{i}\n{}\n", "x".repeat(i * 37))
            );
        }
    }
    let delivered: HashSet<String> = (0..WRITERS)
        .flat_map(|w| (0..EACH).map(move |i| format!("m{w}-{i}")))
        .chain(["seed".to_owned()])
        .collect();
    let expected: HashSet<String> = delivered.difference(&expunged).cloned().collect();
    assert_eq!(seen, expected, "lost or extra messages");
    assert!(!expunged.is_empty());
    let uids: Vec<u32> = folder.messages.iter().map(|m| m.uid).collect();
    assert!(uids.windows(2).all(|w| w[0] < w[1]), "UIDs ascend");
}
