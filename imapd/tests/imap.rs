//! imapd over a real socket with Python's imaplib as the client.

mod common;

use common::Site;
use imapd::mailbox::{FLAGGED, Folder, SEEN, Stamp};

pub const PLAIN: &[u8] = b"Subject: hello\nFrom: Carol <carol@example.com>\nTo: alice@example.org\nDate: Tue, 1 Jan 2002 10:00:00 +0000\nMessage-ID: <m1@example.com>\n\nFrom the start\n>From quoted\nbody one\n";

pub const JAPANESE: &[u8] = b"Subject: =?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?=\nFrom: Dave <dave@example.net>\nTo: alice@example.org\nMessage-ID: <m2@example.net>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain; charset=ISO-2022-JP\n\n\x1b$B$3$s$K$A$O\x1b(B \x1b$B@$3&\x1b(B\n--b1\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\"a.pdf\"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQgZmFrZSBwZGYgYnl0ZXMgaGVyZSBmb3IgdGhlIHRlc3Q=\n--b1--\n";

pub const SHORT: &[u8] = b"Subject: third\n\nshort\n";

/// alice's INBOX holds PLAIN, JAPANESE and SHORT, delivered as lda does.
fn site_with_three_messages() -> (Site, std::path::PathBuf) {
    let site = Site::start();
    let inbox = site.inbox("alice");
    for (sender, message) in [
        ("carol@example.com", PLAIN),
        ("dave@example.net", JAPANESE),
        ("x@y", SHORT),
    ] {
        site.deliver(&inbox, sender, message);
    }
    (site, inbox)
}

#[test]
fn imaplib_suite_covers_the_commands() {
    let (site, inbox) = site_with_three_messages();
    let out = site.python("imap_suite.py", &[]);
    assert!(out.contains("imap suite: ok"), "{out}");

    // what the session did is in the files, in Dovecot's headers
    let folder = Folder::parse(&std::fs::read(&inbox).unwrap(), Stamp::default());
    assert_eq!(folder.messages.len(), 1);
    let first = &folder.messages[0];
    // renamed away with INBOX and copied back: a new UID, never a reused one
    assert_eq!((first.uid, first.flags), (4, SEEN | FLAGGED));
    assert_eq!(&first.content[..], PLAIN, "delivered bytes changed");
    assert!(!folder.needs_write);
    let moved = Folder::parse(
        &std::fs::read(site.folder("alice", "&j,dg0TDhMPww6w-")).unwrap(),
        Stamp::default(),
    );
    assert_eq!(moved.messages.len(), 1);
    assert_eq!(&moved.messages[0].content[..], JAPANESE);
    let archive = Folder::parse(
        &std::fs::read(site.folder("alice", "Archive")).unwrap(),
        Stamp::default(),
    );
    assert_eq!(archive.messages[0].flags, SEEN);
    assert_eq!(
        &archive.messages[0].content[..],
        b"From: eve@example.com\r\nSubject: appended\r\n\r\nnew body\r\n"
    );
    assert!(!site.dir.path().join("evil").exists());
}

fn spam_message(n: u32) -> Vec<u8> {
    format!(
        "From: winner{n}@lottery.example\nTo: alice@example.org\nSubject: You won {n} million dollars\nMessage-ID: <spam{n}@lottery.example>\n\nClaim your prize now, send your bank details to claim {n} million.\n"
    )
    .into_bytes()
}

#[test]
fn moving_mail_trains_the_users_filter() {
    let site = Site::start();
    let inbox = site.inbox("alice");
    site.deliver(&inbox, "winner1@lottery.example", &spam_message(1));
    site.deliver(&inbox, "winner2@lottery.example", &spam_message(2));
    assert_eq!(site.learned("alice"), (0, 0));

    site.python("training.py", &["move-to-spam"]);
    let took = site.wait_learned("alice", (1, 0));
    eprintln!("learned {took:?} after the MOVE returned");
    // out of Spam: the ledger moves the message from spam to clean
    site.python("training.py", &["move-back"]);
    site.wait_learned("alice", (0, 1));
    // INBOX is now: message 2, message 1 (moved back). COPY message 2 to
    // Spam teaches it; copying it on from Spam to Trash teaches nothing
    site.python("training.py", &["copy-to-spam-then-trash"]);
    site.wait_learned("alice", (1, 1));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(site.learned("alice"), (1, 1), "moving to Trash trained");
    // APPEND to Spam (mbsync's way of moving) of message 1: clean → spam
    site.python("training.py", &["append-to-spam"]);
    site.wait_learned("alice", (2, 0));
    // flags on message 2: $NotJunk, then $Junk again
    site.python("training.py", &["flag-not-junk"]);
    site.wait_learned("alice", (1, 1));
    site.python("training.py", &["flag-junk"]);
    site.wait_learned("alice", (2, 0));
    // bob learned nothing from alice's moves; a folder under Spam counts
    assert_eq!(site.learned("bob"), (0, 0));
    site.deliver(&site.inbox("bob"), "winner3@lottery.example", &spam_message(3));
    site.python("training.py", &["bob-copy-to-spam-sub"]);
    site.wait_learned("bob", (1, 0));
    assert_eq!(site.learned("alice"), (2, 0));
}

#[test]
fn hostile_input_leaves_the_server_up() {
    let site = Site::start();
    site.deliver(&site.inbox("alice"), "carol@example.com", PLAIN);
    let out = site.python("hostile.py", &[]);
    assert!(out.contains("hostile: ok"), "{out}");
    // nothing half-appended
    let folder = Folder::parse(&std::fs::read(site.inbox("alice")).unwrap(), Stamp::default());
    assert_eq!(folder.messages.len(), 1);
}

#[test]
fn idle_reports_a_delivery_as_it_happens() {
    let site = Site::start();
    let inbox = site.inbox("alice");
    site.deliver(&inbox, "carol@example.com", PLAIN);
    let signal = site.dir.path().join("deliver-now");
    let deliverer = {
        let inbox = inbox.clone();
        let signal = signal.clone();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !signal.exists() {
                assert!(start.elapsed().as_secs() < 20, "the client never started idling");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            (inbox, start)
        })
    };
    let python = std::thread::scope(|scope| {
        let run = scope.spawn(|| site.python("idle.py", &[]));
        let (inbox, _) = deliverer.join().unwrap();
        site.deliver(&inbox, "dave@example.net", SHORT);
        run.join().unwrap()
    });
    // Not asserted against a clock (CI machines stall): inotify tells the
    // session (the fallback poll of a watched file is every 30 s, past
    // idle.py's 10 s timeout), and this prints the delay actually seen.
    let delay: f64 = python.trim().rsplit(' ').next().unwrap().parse().unwrap();
    eprintln!("EXISTS {delay:.3} s after the delivery signal");
}

#[test]
fn poplib_suite_covers_pop3() {
    let (site, inbox) = site_with_three_messages();
    let out = site.python("pop3_suite.py", &[]);
    assert!(out.contains("pop3 suite: ok"), "{out}");
    let folder = Folder::parse(&std::fs::read(&inbox).unwrap(), Stamp::default());
    assert_eq!(folder.messages.len(), 2, "DELE 3 then QUIT removed it");
    assert_eq!(folder.messages[0].flags, SEEN, "RETR marks \\Seen");
    assert_eq!(folder.messages[1].flags, 0, "TOP does not");
    assert_eq!(&folder.messages[1].content[..], JAPANESE);
}

#[test]
fn tls_starttls_imaps_stls_and_pop3s() {
    let site = Site::start_with(|c| c.plaintext_auth = imapd::config::PlaintextAuth::Never);
    site.deliver(&site.inbox("alice"), "carol@example.com", PLAIN);
    let out = site.python(
        "tls.py",
        &[
            &site.pop3_port.to_string(),
            &site.imaps_port.to_string(),
            &site.pop3s_port.to_string(),
            site.cert.to_str().unwrap(),
        ],
    );
    assert!(out.contains("tls: ok"), "{out}");
}

/// A broken token database costs the lesson, never the user's MOVE.
#[test]
fn training_failure_does_not_fail_the_move() {
    let site = Site::start();
    site.deliver(&site.inbox("alice"), "winner1@lottery.example", &spam_message(1));
    site.deliver(&site.inbox("alice"), "winner2@lottery.example", &spam_message(2));
    let db = site.home("alice").join(".bsfilter");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(db.join(bsfilter::store::DB_FILE_NAME), vec![b'x'; 8192]).unwrap();
    site.python("training.py", &["move-to-spam"]);
    let spam = Folder::parse(&std::fs::read(site.folder("alice", "Spam")).unwrap(), Stamp::default());
    assert_eq!(spam.messages.len(), 1, "the message moved");
    let inbox = Folder::parse(&std::fs::read(site.inbox("alice")).unwrap(), Stamp::default());
    assert_eq!(inbox.messages.len(), 1);
    // the trainer survived the failure: with the database repaired, the
    // next lesson is learned
    std::fs::remove_file(db.join(bsfilter::store::DB_FILE_NAME)).unwrap();
    site.python("training.py", &["flag-junk"]);
    site.wait_learned("alice", (1, 0));
}

/// The watcher IDLE uses: an append in place (as lda appends) and a
/// rewrite renamed over the file (as imapd writes) are both told.
#[test]
fn inotify_tells_of_an_append_and_a_rewrite() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("inbox");
        std::fs::write(&file, b"").unwrap();
        let watcher = imapd::watch::Watcher::default();
        let mut changes = watcher.watch(&file).expect("inotify works here");
        // (the timeouts bound a failing test; they synchronise nothing)
        let bound = std::time::Duration::from_secs(10);
        let append = {
            let file = file.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
                f.write_all(b"From a@b Thu Jan  1 00:00:00 2026\n\nx\n").unwrap();
            })
        };
        tokio::time::timeout(bound, changes.changed())
            .await
            .expect("told of the append");
        append.join().unwrap();
        std::fs::write(dir.path().join("inbox.tmp"), b"").unwrap();
        std::fs::rename(dir.path().join("inbox.tmp"), &file).unwrap();
        tokio::time::timeout(bound, changes.changed())
            .await
            .expect("told of the rename");
    });
}

/// QUOTA (RFC 9208) with the limits of the user table's quota rules: the
/// usage of every folder together, APPEND and COPY refused past the limit,
/// a MOVE allowed (it adds nothing).
#[test]
fn quota_from_the_user_table() {
    let (site, _) = site_with_three_messages();
    // alice's entry gains Dovecot's quota rules (the table is read again
    // when it changes)
    let passwd = site.dir.path().join("passwd");
    let text = std::fs::read_to_string(&passwd).unwrap();
    let alice = text.lines().next().unwrap();
    let limited = format!("{alice}userdb_quota_rule=*:storage=2K userdb_quota_rule2=*:messages=4");
    std::fs::write(&passwd, text.replacen(alice, &limited, 1)).unwrap();
    let out = site.python("quota.py", &[]);
    assert!(out.contains("quota: ok"), "{out}");
}

/// COMPRESS=DEFLATE (RFC 4978): offered after login, the same answers
/// compressed as plain, a large APPEND and FETCH through it, and the
/// refusals (before login, twice, STARTTLS after it).
#[test]
fn compress_deflate_through_imaplib() {
    let (site, _) = site_with_three_messages();
    let out = site.python("compress.py", &[]);
    assert!(out.contains("compress: ok"), "{out}");
}

/// APPEND's message as `UTF8 (~{n})` (UTF8=ACCEPT, RFC 6855 §4) and as a
/// literal8 (BINARY, RFC 3516 §4.4). (Python's imaplib puts `UTF8 (`
/// inside its literal, so this test speaks the protocol by hand.)
#[test]
fn append_takes_utf8_and_literal8_messages() {
    let site = Site::start();
    std::fs::create_dir_all(site.home("alice")).unwrap();
    let mut client = common::Client::connect(site.port);
    client.run("LOGIN alice secret");
    client.run("ENABLE UTF8=ACCEPT");
    let message = "Subject: 会議の件\r\nFrom: 山田 <yamada@example.jp>\r\n\r\n本文\r\n";
    let len = message.len();
    client.send(&format!("APPEND INBOX UTF8 (~{{{len}+}}\r\n{message})"));
    let answer = client.lines().join("");
    assert!(answer.contains("OK [APPENDUID "), "{answer}");
    client.send(&format!("APPEND INBOX (\\Seen) ~{{{len}+}}\r\n{message}"));
    let answer = client.lines().join("");
    assert!(answer.contains("OK [APPENDUID "), "{answer}");
    let folder = imapd::mailbox::Folder::parse(
        &std::fs::read(site.inbox("alice")).unwrap(),
        imapd::mailbox::Stamp::default(),
    );
    assert_eq!(folder.messages.len(), 2);
    for m in &folder.messages {
        assert_eq!(
            String::from_utf8_lossy(&m.content)
                .replace('\n', "\r\n")
                .replace("\r\r\n", "\r\n"),
            message
        );
    }
}

/// CATENATE (RFC 4469): a message put together from TEXT literals and
/// URLs of parts the user already has (absolute, relative to the selected
/// mailbox, `imap://` with the user's name, with PARTIAL); a URL naming
/// nothing the user may read is `NO [BADURL …]` and appends nothing. The
/// protocol is spoken by hand: no installed client sends CATENATE.
#[test]
fn catenate_puts_a_message_together_from_parts_the_user_has() {
    let site = Site::start();
    std::fs::create_dir_all(site.home("alice")).unwrap();
    std::fs::create_dir_all(site.home("bob")).unwrap();
    let mut client = common::Client::connect(site.port);
    client.run("LOGIN alice secret");
    assert!(client.run("CAPABILITY")[0].contains(" CATENATE "));
    client.run("CREATE Drafts");
    let original = "Subject: the original\r\nFrom: a@example.org\r\n\r\nfirst line\r\nsecond line\r\n";
    client.send(&format!("APPEND INBOX {{{}+}}\r\n{original}", original.len()));
    let answer = client.answer();
    // `OK [APPENDUID <validity> 1]`
    let validity: u32 = answer.split_whitespace().nth(3).unwrap().parse().unwrap();
    client.run("SELECT INBOX");
    let text = "Added text\r\n";
    let mut bodies = Vec::new();
    for (urls, expected) in [
        (
            format!(
                "URL \"/INBOX;UIDVALIDITY={validity}/;UID=1/;SECTION=HEADER\" TEXT {{{}+}}\r\n{text}",
                text.len()
            ),
            format!("Subject: the original\r\nFrom: a@example.org\r\n\r\n{text}"),
        ),
        // relative to the selected mailbox; the section's own case; PARTIAL
        (
            "URL \";UID=1/;section=text/;PARTIAL=0.12\" URL \";UID=1/;SECTION=1\"".to_string(),
            "first line\r\nfirst line\r\nsecond line\r\n".to_string(),
        ),
        (
            "URL \"imap://alice@localhost/inbox/;UID=1\"".to_string(),
            original.to_string(),
        ),
    ] {
        client.send(&format!("APPEND Drafts (\\Draft) CATENATE ({urls})"));
        let answer = client.answer();
        assert!(answer.contains("OK [APPENDUID "), "{urls}: {answer}");
        bodies.push(expected);
    }
    for bad in [
        format!("/INBOX;UIDVALIDITY={}/;UID=1", validity.wrapping_add(1)),
        "/INBOX/;UID=2".to_string(),
        "/INBOX/;UID=1/;SECTION=4".to_string(),
        "/Nowhere/;UID=1".to_string(),
        "imap://bob@localhost/INBOX/;UID=1".to_string(),
        "/INBOX/;UID=1/;URLAUTH=anonymous:internal:0123".to_string(),
        "/../bob/inbox/;UID=1".to_string(),
    ] {
        client.send(&format!("APPEND Drafts CATENATE (TEXT {{2+}}\r\nx\n URL \"{bad}\")"));
        let answer = client.answer();
        assert!(answer.contains(&format!("NO [BADURL {bad}]")), "{bad}: {answer}");
    }
    // a NUL: in a literal8 it is taken (BINARY), in a literal refused
    client.send("APPEND Drafts CATENATE (TEXT ~{14+}\r\nSubject: \0\r\n\r\n)");
    assert!(client.answer().contains("OK [APPENDUID "));
    bodies.push("Subject: \0\r\n\r\n".to_string());
    client.send("APPEND Drafts CATENATE (TEXT {1+}\r\n\0)");
    let answer = client.answer();
    assert!(answer.contains("BAD A NUL byte in a literal"), "{answer}");
    client.send("APPEND Drafts CATENATE ()");
    assert!(client.answer().contains(" BAD "));
    // MULTIAPPEND with CATENATE: both messages land, or (a bad URL in the
    // second) neither does
    client.send("APPEND Drafts {10+}\r\nSubject: a CATENATE (URL \";UID=1/;SECTION=TEXT\")");
    let answer = client.answer();
    assert!(answer.contains("OK [APPENDUID "), "{answer}");
    bodies.push("Subject: a".to_string());
    bodies.push("first line\r\nsecond line\r\n".to_string());
    client.send("APPEND Drafts {10+}\r\nSubject: b CATENATE (URL \";UID=7\")");
    assert!(client.answer().contains("NO [BADURL ;UID=7]"));
    // a short command that names one big message many times does not
    // build a message past the literal limit (64 MB): 70 × 1 MB is refused
    let big = format!("Subject: big\r\n\r\n{}", "x".repeat(1 << 20));
    client.send(&format!("APPEND INBOX {{{}+}}\r\n{big}", big.len()));
    let answer = client.answer();
    let big_uid = answer
        .trim_end()
        .trim_end_matches("] Append completed.")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    let urls = vec![format!("URL \"/INBOX/;UID={big_uid}\""); 70].join(" ");
    client.send(&format!("APPEND Drafts CATENATE ({urls})"));
    let answer = client.answer();
    assert!(
        answer.contains(" NO [TOOBIG] The message would be larger than 67108864 bytes."),
        "{answer}"
    );
    // what landed, and only that
    client.run("SELECT Drafts");
    let lines = client.run("FETCH 1:* (BINARY.PEEK[])").join("");
    assert_eq!(lines.matches(" FETCH ").count(), bodies.len(), "{lines}");
    for body in &bodies {
        assert!(lines.contains(body.as_str()), "{body:?} in {lines:?}");
    }
}

/// IMAP4rev2 (RFC 9051) offered beside IMAP4rev1 and turned on by
/// `ENABLE IMAP4rev2`: from then on no `\Recent` and no RECENT, SEARCH
/// answered by ESEARCH, SELECT with the mailbox's LIST and without
/// UNSEEN (and `[CLOSED]` for the one it leaves), mailbox names in UTF-8.
/// A session that does not enable it keeps IMAP4rev1's answers.
#[test]
fn imap4rev2_once_enabled() {
    let site = Site::start();
    std::fs::create_dir_all(site.home("alice")).unwrap();
    let inbox = site.inbox("alice");
    for subject in ["one", "two"] {
        site.deliver(
            &inbox,
            "a@example.org",
            format!("Subject: {subject}\n\nbody\n").as_bytes(),
        );
    }
    let mut rev1 = common::Client::connect(site.port);
    rev1.run("LOGIN alice secret");
    assert!(rev1.run("CAPABILITY")[0].contains(" IMAP4rev1 IMAP4rev2 "));
    let mut client = common::Client::connect(site.port);
    client.run("LOGIN alice secret");
    assert_eq!(client.run("ENABLE IMAP4rev2"), ["* ENABLED IMAP4rev2\r\n"]);
    let select = client.run("EXAMINE INBOX").join("");
    assert!(select.contains("* 2 EXISTS\r\n"), "{select}");
    assert!(
        select.contains("* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n"),
        "{select}"
    );
    assert!(!select.contains("RECENT") && !select.contains("UNSEEN"), "{select}");
    // the same messages are \Recent to an IMAP4rev1 session
    let rev1_select = rev1.run("EXAMINE INBOX").join("");
    assert!(rev1_select.contains("* 2 RECENT"), "{rev1_select}");
    assert!(rev1.run("FETCH 1 FLAGS")[0].contains("\\Recent"));
    assert_eq!(
        client.run("FETCH 1:* FLAGS"),
        ["* 1 FETCH (FLAGS ())\r\n", "* 2 FETCH (FLAGS ())\r\n"]
    );
    // SEARCH by ESEARCH; nothing found: no ALL (RFC 4731)
    let tag = |c: &common::Client| c.tag_of_next();
    let t = tag(&client);
    assert_eq!(
        client.run("SEARCH ALL"),
        [format!("* ESEARCH (TAG \"{t}\") ALL 1:2\r\n")]
    );
    let t = tag(&client);
    assert_eq!(
        client.run("UID SEARCH SUBJECT two"),
        [format!("* ESEARCH (TAG \"{t}\") UID ALL 2\r\n")]
    );
    let t = tag(&client);
    assert_eq!(
        client.run("SEARCH SUBJECT three"),
        [format!("* ESEARCH (TAG \"{t}\")\r\n")]
    );
    assert!(rev1.run("SEARCH ALL")[0].starts_with("* SEARCH 1 2"));
    // a delivery: EXISTS, no RECENT
    site.deliver(&inbox, "a@example.org", b"Subject: three\n\nbody\n");
    let noop = client.run("NOOP").join("");
    assert!(noop.contains("* 3 EXISTS") && !noop.contains("RECENT"), "{noop}");
    // UTF-8 names both ways, and [CLOSED] for the mailbox left
    client.run("CREATE \"日本語\"");
    assert!(site.folder("alice", "&ZeVnLIqe-").exists());
    let list = client.run("LIST \"\" *").join("");
    assert!(list.contains("\"/\" \"日本語\"\r\n"), "{list}");
    let select = client.run("SELECT \"日本語\"");
    assert_eq!(select[0], "* OK [CLOSED] Previous mailbox closed.\r\n");
    assert!(
        select
            .join("")
            .contains("* LIST (\\HasNoChildren) \"/\" \"日本語\"\r\n"),
        "{select:?}"
    );
}

/// CATENATE and IMAP4rev2 through imaplib (`py/catenate_rev2.py`).
#[test]
fn catenate_and_imap4rev2_through_imaplib() {
    let site = Site::start();
    std::fs::create_dir_all(site.home("alice")).unwrap();
    let out = site.python("catenate_rev2.py", &[]);
    assert!(out.contains("catenate_rev2: ok"), "{out}");
}
