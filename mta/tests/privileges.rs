//! Least privilege, tested as root (as CI runs): started as root with
//! `run_as`, mtad binds, hands its queue to that user and becomes it —
//! every thread of the SMTP process — while the one helper that runs lda
//! stays root, so lda can become each recipient.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{Raw, Site};

const NOBODY: u32 = 65534;
const ALICE: u32 = 60201;

fn uids(pid: u32) -> Vec<Vec<String>> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| {
            let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .unwrap()
                .split_whitespace()
                .skip(1)
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn the_smtp_process_is_never_root_after_start_up() {
    assert!(e2e_tests::is_root(), "this test runs as root (as CI does)");
    let site = Site::start_as("run_as = \"nobody\"\n", Some(ALICE));
    // a delivery first, so every part has run
    let (mut c, _) = Raw::connect(site.port);
    c.command("EHLO client.example.org");
    c.command("MAIL FROM:<carol@example.org>");
    c.command("RCPT TO:<alice@example.jp>");
    c.command("DATA");
    assert!(c.command("Subject: as alice\r\n\r\nbody\r\n.").starts_with("250"));
    site.wait_for_messages("alice", 1);
    for task in uids(site.pid()) {
        assert!(
            task.iter().all(|u| *u == NOBODY.to_string()),
            "an mtad thread with {task:?}"
        );
    }
    // the queue is nobody's; the mailbox the recipient's
    let queue = site.dir.path().join("queue");
    for dir in [queue.clone(), queue.join("active"), queue.join("state")] {
        assert_eq!(std::fs::metadata(&dir).unwrap().uid(), NOBODY, "{}", dir.display());
    }
    let inbox = site.home("alice").join("mail/inbox");
    assert_eq!(std::fs::metadata(&inbox).unwrap().uid(), ALICE);
    // the helper: mtad's child, still root (it runs lda)
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", site.pid())).unwrap();
    let helper: u32 = children
        .split_whitespace()
        .next()
        .expect("a helper process")
        .parse()
        .unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{helper}/cmdline")).unwrap();
    assert!(cmdline.contains("--delivery-helper"), "{cmdline}");
    assert!(uids(helper)[0].iter().all(|u| u == "0"));
    // the queue tool works as before
    assert_eq!(site.queue_tool(&["list"]), (Some(0), String::new()));
}

/// A queue file written as root (the test's), owned by `owner` when given.
fn plant(queue: &std::path::Path, id: &str, body: &str, owner: Option<u32>) {
    use mta::envelope::{Envelope, Recipient};
    let envelope = Envelope::new(
        "carol@example.org",
        vec![Recipient::new("alice@example.jp", Some("alice"))],
        ("localhost", "127.0.0.1".parse().unwrap()),
        "client.example.org",
        "ESMTP",
    );
    let message = format!("Subject: {id}\n\n{body}\n");
    mta::queue::Queue::reader(queue)
        .commit(id, &envelope, message.as_bytes())
        .unwrap();
    if let Some(uid) = owner {
        std::os::unix::fs::chown(queue.join("active").join(id), Some(uid), Some(uid)).unwrap();
    }
}

#[test]
fn the_delivery_helper_opens_nothing_but_queue_files() {
    use std::io::{BufRead, Write};
    assert!(e2e_tests::is_root(), "this test runs as root (as CI does)");
    // the queue is nobody's (mtad runs as nobody); a subverted mtad asks
    // its helper (root) to deliver what it planted there
    let site = Site::start_as("run_as = \"nobody\"\n", Some(ALICE));
    let queue = site.dir.path().join("queue");
    let active = queue.join("active");
    std::fs::write(site.dir.path().join("secret"), "root's secret\n").unwrap();
    std::os::unix::fs::symlink(site.dir.path().join("secret"), active.join("00000000000000A1")).unwrap();
    plant(&queue, "00000000000000A2", "root's queue file", None);
    plant(&queue, "00000000000000A3", "linked twice", Some(NOBODY));
    std::fs::hard_link(active.join("00000000000000A3"), site.dir.path().join("elsewhere")).unwrap();
    plant(&queue, "00000000000000A4", "a real queue file", Some(NOBODY));
    let mut helper = std::process::Command::new(common::MTAD)
        .arg("--delivery-helper")
        .arg(site.config_path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = helper.stdin.take().unwrap();
    let alice = "616c696365";
    for (n, id) in ["A1", "A2", "A3", "A4"].iter().enumerate() {
        writeln!(stdin, "{n} 00000000000000{id} {alice}").unwrap();
    }
    let mut answers: Vec<String> = std::io::BufReader::new(helper.stdout.take().unwrap())
        .lines()
        .take(4)
        .map(Result::unwrap)
        .collect();
    answers.sort();
    assert!(
        answers[0].starts_with("0 75 queue file 00000000000000A1: "),
        "{answers:?}"
    );
    for (i, answer) in answers.iter().enumerate().take(3).skip(1) {
        assert!(
            answer.starts_with(&format!("{i} 75 ")) && answer.contains("not a queue file"),
            "{answers:?}"
        );
    }
    // delivered, and where (the filter is off here): what mtad logs
    assert_eq!(
        answers[3],
        format!("3 0 unfiltered - {}", site.home("alice").join("mail/inbox").display()),
        "{answers:?}"
    );
    let inbox = site.messages("alice", "INBOX");
    assert_eq!(inbox.len(), 1);
    assert!(String::from_utf8_lossy(&inbox[0]).contains("a real queue file"));
    // a request that is not mtad's ends the helper
    writeln!(stdin, "9 ../../../etc/shadow {alice}").unwrap();
    assert_eq!(helper.wait().unwrap().code(), Some(65));
}
