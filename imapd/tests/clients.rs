//! Real mail clients moving a message into Spam teach the user's filter:
//! mbsync (isync: APPEND + `\Deleted` + expunge on the wire) and mutt
//! (COPY or MOVE). Both from Debian, installed by .ci/run. Both again
//! with COMPRESS=DEFLATE, seen on the wire; fetchmail over POP3.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::Site;
use imapd::mailbox::{Folder, Stamp};

const SPAM: &[u8] = b"From: winner@lottery.example\nTo: alice@example.org\nSubject: You won a million dollars\nMessage-ID: <won@lottery.example>\n\nClaim your prize now: send your bank details.\n";
const HAM: &[u8] = b"From: bob@example.org\nTo: alice@example.org\nSubject: lunch\nMessage-ID: <lunch@example.org>\n\nNoon at the usual place?\n";

fn folder(site: &Site, name: &str) -> Folder {
    let path = if name == "INBOX" {
        site.inbox("alice")
    } else {
        site.folder("alice", name)
    };
    Folder::parse(&std::fs::read(path).unwrap(), Stamp::default())
}

/// A TCP relay to the server that keeps what the server sent on each
/// connection, to see what went over the wire.
struct Wire {
    port: u16,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Wire {
    fn to(server: u16) -> Wire {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = sent.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let mut server = TcpStream::connect(("127.0.0.1", server)).unwrap();
                let (mut client_in, mut server_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client_in, &mut server_out);
                    let _ = server_out.shutdown(std::net::Shutdown::Write);
                });
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0; 65536];
                    let mut seen = Vec::new();
                    while let Ok(n @ 1..) = server.read(&mut buf) {
                        seen.extend_from_slice(&buf[..n]);
                        if client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = client.shutdown(std::net::Shutdown::Write);
                    record.lock().unwrap().push(seen);
                });
            }
        });
        Wire { port, sent }
    }

    /// Asserts some connection turned compression on and that `text`,
    /// which the client read, never crossed the wire in the clear.
    fn assert_compressed(&self, text: &str) {
        let sent = self.sent.lock().unwrap();
        let compressed: Vec<&Vec<u8>> = sent
            .iter()
            .filter(|s| s.windows(17).any(|w| w == b"OK DEFLATE active"))
            .collect();
        assert!(
            !compressed.is_empty(),
            "no connection used COMPRESS ({} seen)",
            sent.len()
        );
        for wire in compressed {
            assert!(
                !wire.windows(text.len()).any(|w| w == text.as_bytes()),
                "{text:?} crossed the wire uncompressed"
            );
        }
    }
}

#[test]
fn mbsync_moving_a_message_to_spam_trains_spam() {
    mbsync_moves_spam(false);
}

/// mbsync (1.4) uses COMPRESS=DEFLATE where the server offers it.
#[test]
fn mbsync_syncs_over_compress_deflate() {
    mbsync_moves_spam(true);
}

fn mbsync_moves_spam(through_wire: bool) {
    let site = Site::start();
    site.deliver(&site.inbox("alice"), "winner@lottery.example", SPAM);
    site.deliver(&site.inbox("alice"), "bob@example.org", HAM);
    site.python("create.py", &["alice", "secret", "Spam"]);
    let wire = Wire::to(site.port);
    let port = if through_wire { wire.port } else { site.port };
    let work = site.dir.path().join("mbsync");
    std::fs::create_dir_all(work.join("mail")).unwrap();
    let rc = work.join("rc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount acct\nHost 127.0.0.1\nPort {port}\nUser alice\nPass secret\nSSLType None\nAuthMechs PLAIN LOGIN\n\n\
             IMAPStore remote\nAccount acct\n\nMaildirStore local\nPath {w}/mail/\nInbox {w}/mail/INBOX\nSubFolders Verbatim\n\n\
             Channel ch\nFar :remote:\nNear :local:\nPatterns INBOX Spam\nCreate Both\nExpunge Both\nSyncState *\n",
            w = work.display()
        ),
    )
    .unwrap();
    let mbsync = || {
        let out = Command::new("mbsync")
            .arg("-q")
            .arg("-c")
            .arg(&rc)
            .arg("ch")
            .output()
            .expect("mbsync (isync) is installed (.ci/run)");
        assert!(out.status.success(), "mbsync: {}", String::from_utf8_lossy(&out.stderr));
    };
    mbsync();
    // move the spam message locally, as a user's mail client would
    let inbox = work.join("mail/INBOX");
    let (src, name) = ["new", "cur"]
        .iter()
        .flat_map(|d| std::fs::read_dir(inbox.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read(p).unwrap().windows(7).any(|w| w == b"You won"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (p, name)
        })
        .expect("mbsync fetched the spam message");
    // mbsync names files ...,U=<uid>:2,<flags>; a moved file loses its UID
    let stripped: String = {
        let (base, flags) = name.split_once(":2,").unwrap_or((&name, ""));
        let base = base.split(",U=").next().unwrap();
        format!("{base}:2,{flags}")
    };
    std::fs::rename(&src, work.join("mail/Spam/cur").join(stripped)).unwrap();
    mbsync();

    site.wait_learned("alice", (1, 0));
    let inbox = folder(&site, "INBOX");
    assert_eq!(inbox.messages.len(), 1, "the spam left INBOX");
    assert_eq!(&inbox.messages[0].content[..], HAM);
    let spam = folder(&site, "Spam");
    assert_eq!(spam.messages.len(), 1);
    assert!(
        spam.messages[0].keywords.iter().any(|k| k == "$Junk"),
        "{:?}",
        spam.messages[0].keywords
    );
    if through_wire {
        wire.assert_compressed("You won a million dollars");
    }
}

#[test]
fn mutt_saving_a_message_to_spam_trains_spam() {
    mutt_saves_spam(false);
}

/// mutt with `imap_deflate`.
#[test]
fn mutt_over_compress_deflate() {
    mutt_saves_spam(true);
}

fn mutt_saves_spam(deflate: bool) {
    let site = Site::start();
    site.deliver(&site.inbox("alice"), "winner@lottery.example", SPAM);
    site.python("create.py", &["alice", "secret", "Spam"]);
    let wire = Wire::to(site.port);
    let port = if deflate { wire.port } else { site.port };
    let muttrc = site.dir.path().join("muttrc");
    std::fs::write(
        &muttrc,
        format!(
            "set folder = \"imap://alice:secret@127.0.0.1:{port}/\"\nset spoolfile = \"+INBOX\"\nset ssl_starttls = no\nset ssl_force_tls = no\n\
             set confirmappend = no\nset delete = yes\nset move = no\nset mail_check = 0\nset timeout = 1\n\
             set header_cache = \"\"\nset message_cachedir = \"\"\nset quit = yes\nset wait_key = no\nset imap_deflate = {}\n",
            if deflate { "yes" } else { "no" }
        ),
    )
    .unwrap();
    let mutt = format!(
        "mutt -n -F {} -e 'push <save-message>=Spam<enter><sync-mailbox><quit>'",
        muttrc.display()
    );
    let status = e2e_tests::run_under_script(&mutt, &[("HOME", site.dir.path())]);
    assert!(status.success(), "mutt failed: {status:?}");
    site.wait_learned("alice", (1, 0));
    assert_eq!(folder(&site, "INBOX").messages.len(), 0, "saved = moved out of INBOX");
    let spam = folder(&site, "Spam");
    assert_eq!(&spam.messages[0].content[..], SPAM);
    if deflate {
        wire.assert_compressed("You won a million dollars");
    }
}

/// fetchmail over POP3 with APOP: every message arrives, and without
/// `keep` the server's INBOX is emptied.
#[test]
fn fetchmail_over_pop3_with_apop() {
    let site = Site::start();
    site.deliver(&site.inbox("alice"), "winner@lottery.example", SPAM);
    site.deliver(&site.inbox("alice"), "bob@example.org", HAM);
    let out = site.dir.path().join("fetched");
    let rc = site.dir.path().join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\npoll 127.0.0.1 service {} protocol APOP\n    user \"alice\" password \"secret\" is root here\n    \
             fetchall sslproto \"\"\n    mda \"/bin/sh -c 'cat >> {}'\"\n",
            site.pop3_port,
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let result = Command::new("fetchmail")
        .args(["-f"])
        .arg(&rc)
        .args(["--nodetach", "--pidfile"])
        .arg(site.dir.path().join("fetchmail.pid"))
        .env("HOME", site.dir.path())
        .output()
        .expect("fetchmail is installed (.ci/run)");
    // fetchmail exits 0 when it fetched mail
    assert!(
        result.status.success(),
        "fetchmail: {:?}\n{}",
        result.status,
        String::from_utf8_lossy(&result.stderr)
    );
    let fetched = std::fs::read(&out).unwrap();
    let text = String::from_utf8_lossy(&fetched);
    assert!(
        text.contains("Subject: You won a million dollars") && text.contains("Subject: lunch"),
        "{text}"
    );
    assert_eq!(
        folder(&site, "INBOX").messages.len(),
        0,
        "fetched without keep: deleted on the server"
    );
}
