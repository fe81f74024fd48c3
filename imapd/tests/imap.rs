//! imapd over a real socket with Python's imaplib as the client.

mod common;

use common::Site;
use imapd::mailbox::{FLAGGED, Folder, SEEN, Stamp};

pub const PLAIN: &[u8] = b"Subject: hello\nFrom: Carol <carol@example.com>\nTo: alice@example.org\nDate: Tue, 1 Jan 2002 10:00:00 +0000\nMessage-ID: <m1@example.com>\n\nFrom the start\n>From quoted\nbody one\n";

pub const JAPANESE: &[u8] = b"Subject: =?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?=\nFrom: Dave <dave@example.net>\nTo: alice@example.org\nMessage-ID: <m2@example.net>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain; charset=ISO-2022-JP\n\n\x1b$B$3$s$K$A$O\x1b(B \x1b$B@$3&\x1b(B\n--b1\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\"a.pdf\"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQgZmFrZSBwZGYgYnl0ZXMgaGVyZSBmb3IgdGhlIHRlc3Q=\n--b1--\n";

pub const SHORT: &[u8] = b"Subject: third\n\nshort\n";

#[test]
fn imaplib_suite_covers_the_commands() {
    let site = Site::start();
    let inbox = site.inbox("alice");
    for (sender, message) in [("carol@example.com", PLAIN), ("dave@example.net", JAPANESE), ("x@y", SHORT)] {
        site.deliver(&inbox, sender, message);
    }
    let out = site.python("imap_suite.py", &[]);
    assert!(out.contains("imap suite: ok"), "{out}");

    // what the session did is in the files, in Dovecot's headers
    let folder = Folder::parse(&std::fs::read(&inbox).unwrap(), Stamp::default());
    assert_eq!(folder.messages.len(), 1);
    let first = &folder.messages[0];
    assert_eq!((first.uid, first.flags), (1, SEEN | FLAGGED));
    assert_eq!(&first.content[..], PLAIN, "delivered bytes changed");
    assert!(!folder.needs_write);
    let moved = Folder::parse(&std::fs::read(site.folder("alice", "&j,dg0TDhMPww6w-")).unwrap(), Stamp::default());
    assert_eq!(moved.messages.len(), 1);
    assert_eq!(&moved.messages[0].content[..], JAPANESE);
    let archive = Folder::parse(&std::fs::read(site.folder("alice", "Archive")).unwrap(), Stamp::default());
    assert_eq!(archive.messages[0].flags, SEEN);
    assert_eq!(
        &archive.messages[0].content[..],
        b"From: eve@example.com\r\nSubject: appended\r\n\r\nnew body\r\n"
    );
    assert!(!site.dir.path().join("evil").exists());
}
