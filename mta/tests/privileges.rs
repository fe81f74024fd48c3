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
