//! CONDSTORE and QRESYNC (RFC 7162): what changed since a mod-sequence,
//! conditional STORE, VANISHED; the same script run against Dovecot 2.3's
//! own imap on the same mbox gives the same messages; and a server that
//! lost its mod-sequences (a restart) makes a client resync everything
//! rather than miss a change.

mod common;

use std::process::Command;

use common::pair::Pair;
use common::{Client, Site};

fn mbox(n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 1..=n {
        out.extend_from_slice(
            format!("From a@b Tue Dec  1 10:00:0{i} 2026\nSubject: message {i}\nMessage-ID: <{i}@x>\n\nbody {i}\n\n")
                .as_bytes(),
        );
    }
    out
}

/// The number after `word ` in `text`.
fn number_after(text: &str, word: &str) -> u64 {
    let at = text.find(word).unwrap_or_else(|| panic!("no {word} in {text}")) + word.len();
    text[at..]
        .trim_start_matches([' ', '('])
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The message numbers of the FETCH responses in `text`.
fn fetched(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("* ")?
                .split_once(" FETCH ")
                .map(|(n, _)| n.parse().unwrap())
        })
        .collect()
}

/// What one server answers: the lines of each step.
fn script(mut send: impl FnMut(&str, &str) -> String) -> Vec<String> {
    let mut answers = Vec::new();
    answers.push(send("s1 ENABLE CONDSTORE", "s1 "));
    let select = send("s2 SELECT INBOX", "s2 ");
    let h = number_after(&select, "HIGHESTMODSEQ");
    answers.push(send("s3 STORE 2 +FLAGS.SILENT (\\Flagged)", "s3 "));
    answers.push(send(&format!("s4 FETCH 1:* (FLAGS) (CHANGEDSINCE {h})"), "s4 "));
    answers.push(send(
        &format!("s5 STORE 1:3 (UNCHANGEDSINCE {h}) +FLAGS (\\Seen)"),
        "s5 ",
    ));
    answers.push(send(&format!("s6 UID FETCH 1:* (UID) (CHANGEDSINCE {h})"), "s6 "));
    let status = send("s7 STATUS INBOX (HIGHESTMODSEQ)", "s7 ");
    assert!(number_after(&status, "HIGHESTMODSEQ") > h, "{status}");
    answers.push(send("s8 FETCH 1:* (FLAGS) (CHANGEDSINCE 1)", "s8 "));
    answers.push(send(&format!("s9 SEARCH MODSEQ {}", h + 1), "s9 "));
    answers.push(send("s11 FETCH 2 MODSEQ", "s11 "));
    answers.push(send(
        &format!("s10 SEARCH MODSEQ \"/flags/\\\\seen\" all {} SEEN", h + 1),
        "s10 ",
    ));
    answers
}

/// The numbers of the SEARCH response in `text`, and whether it names a
/// mod-sequence.
fn searched(text: &str) -> (Vec<u32>, bool) {
    let Some(line) = text.lines().find_map(|l| l.strip_prefix("* SEARCH")) else {
        return (Vec::new(), false);
    };
    let (numbers, modseq) = line.split_once(" (MODSEQ ").map_or((line, false), |(n, _)| (n, true));
    (numbers.split_whitespace().map(|n| n.parse().unwrap()).collect(), modseq)
}

#[test]
fn changed_since_and_unchanged_since_select_the_messages_dovecot_does() {
    let pair = Pair::start();
    pair.put("inbox", &mbox(4));
    let mut ours = pair.ours();
    let ours = script(|line, last| String::from_utf8(ours.exchange(line, last)).unwrap());
    let mut theirs = pair.theirs();
    let theirs = script(|line, last| String::from_utf8(theirs.exchange(line, last)).unwrap());

    let enabled = |a: &str| a.lines().next().unwrap_or_default().to_owned();
    assert_eq!(enabled(&ours[0]), "* ENABLED CONDSTORE");
    assert_eq!(enabled(&ours[0]), enabled(&theirs[0]));
    for (step, (o, t)) in ours.iter().zip(&theirs).enumerate().skip(1) {
        assert_eq!(fetched(o), fetched(t), "step {step}:\n ours:    {o}\n Dovecot: {t}");
        assert_eq!(searched(o), searched(t), "step {step}:\n ours:    {o}\n Dovecot: {t}");
    }
    assert_eq!(searched(&ours[6]), (vec![1, 2, 3], true), "{}", ours[6]);
    // MODSEQ alone: the item and nothing else, as Dovecot answers
    let shape = |a: &str| {
        a.lines()
            .next()
            .unwrap_or_default()
            .split(" (")
            .take(2)
            .collect::<Vec<_>>()
            .join(" (")
    };
    assert_eq!(shape(&ours[7]), "* 2 FETCH (MODSEQ", "{}", ours[7]);
    assert_eq!(shape(&ours[7]), shape(&theirs[7]));
    // the cases are there: only message 2 changed; STORE skipped it
    assert_eq!(fetched(&ours[2]), [2]);
    assert!(
        ours[3].contains("OK [MODIFIED 2]") && theirs[3].contains("[MODIFIED 2]"),
        "{}\n{}",
        ours[3],
        theirs[3]
    );
    assert_eq!(fetched(&ours[3]), [1, 3]);
    assert!(ours[2].contains("MODSEQ ("), "{}", ours[2]);
    assert_eq!(fetched(&ours[5]), [1, 2, 3, 4]);
}

#[test]
fn qresync_tells_what_vanished_and_what_changed() {
    let site = Site::start();
    std::fs::create_dir_all(site.home("alice")).unwrap();
    std::fs::write(site.inbox("alice"), mbox(5)).unwrap();
    let mut first = Client::connect(site.port);
    first.run("LOGIN alice secret");
    first.run("ENABLE QRESYNC");
    let select = first.run("SELECT INBOX").join("");
    let (validity, h) = (
        number_after(&select, "UIDVALIDITY"),
        number_after(&select, "HIGHESTMODSEQ"),
    );

    // another session flags 2 and expunges 3; a delivery adds 6
    let mut other = Client::connect(site.port);
    other.run("LOGIN alice secret");
    other.run("SELECT INBOX");
    other.run("STORE 2 +FLAGS.SILENT (\\Flagged)");
    other.run("STORE 3 +FLAGS.SILENT (\\Deleted)");
    other.run("EXPUNGE");
    site.deliver(&site.inbox("alice"), "carol@example.com", b"Subject: six\n\nbody 6\n");

    // the first session is told of the expunge as VANISHED, not EXPUNGE
    let noop = first.run("NOOP").join("");
    assert!(noop.contains("* VANISHED 3\r\n") && !noop.contains("EXPUNGE"), "{noop}");
    assert!(
        noop.contains("* 2 FETCH (FLAGS (\\Flagged \\Recent) UID 2 MODSEQ ("),
        "{noop}"
    );
    let vanished = first
        .run(&format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h} VANISHED)"))
        .join("");
    assert!(vanished.starts_with("* VANISHED (EARLIER) 3\r\n"), "{vanished}");
    assert_eq!(fetched(&vanished), [2, 5], "{vanished}");

    // a client coming back with what it knew resyncs in one SELECT
    let mut again = Client::connect(site.port);
    again.run("LOGIN alice secret");
    again.run("ENABLE QRESYNC");
    let resync = again
        .run(&format!("SELECT INBOX (QRESYNC ({validity} {h} 1:5))"))
        .join("");
    assert!(resync.contains("* VANISHED (EARLIER) 3\r\n"), "{resync}");
    let changed: Vec<u32> = fetched(&resync);
    assert_eq!(changed, [2, 5], "message 2 (flagged) and the delivery: {resync}");
    // with a UIDVALIDITY that is not the folder's, nothing is claimed
    let stale = again
        .run(&format!("SELECT INBOX (QRESYNC ({} {h}))", validity + 1))
        .join("");
    assert!(!stale.contains("VANISHED") && fetched(&stale).is_empty(), "{stale}");
}

/// A user for `common::spawn_imapd` in `dir`, with `messages` in INBOX.
fn spawned_site(dir: &std::path::Path, messages: u32) -> std::path::PathBuf {
    let home = dir.join("alice");
    std::fs::create_dir_all(home.join("mail")).unwrap();
    std::fs::write(
        dir.join("passwd"),
        format!("alice:{{PLAIN}}secret::::{}::\n", home.display()),
    )
    .unwrap();
    std::fs::write(home.join("inbox"), mbox(messages)).unwrap();
    home
}

/// Starts imapd on `dir`, flags message 1 in a CONDSTORE session and
/// returns the server, the session (still in INBOX) and HIGHESTMODSEQ.
fn flag_one(dir: &std::path::Path) -> (common::KillOnDrop, Client, u64) {
    let (server, port) = common::spawn_imapd(dir, "");
    let server = common::KillOnDrop(server);
    let mut client = Client::connect(port);
    client.run("LOGIN alice secret");
    client.run("SELECT INBOX (CONDSTORE)");
    client.run("STORE 1 +FLAGS (\\Answered)");
    let status = client.run("STATUS INBOX (HIGHESTMODSEQ)").join("");
    (server, client, number_after(&status, "HIGHESTMODSEQ"))
}

#[test]
fn a_server_that_crashed_makes_clients_resync_everything() {
    let dir = tempfile::tempdir().unwrap();
    spawned_site(dir.path(), 3);
    let (mut server, client, highest) = flag_one(dir.path());
    // killed with the session still in the mailbox: nothing was saved
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    drop(client);
    let (server, port) = common::spawn_imapd(dir.path(), "");
    let _server = common::KillOnDrop(server);
    let mut client = Client::connect(port);
    client.run("LOGIN alice secret");
    let select = client.run("SELECT INBOX (CONDSTORE)").join("");
    assert!(number_after(&select, "HIGHESTMODSEQ") > highest, "{select}");
    let all = client
        .run(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})"))
        .join("");
    assert_eq!(fetched(&all), [1, 2, 3], "{all}");
}

#[test]
fn a_server_restarted_in_order_keeps_the_mod_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let home = spawned_site(dir.path(), 3);
    let sidecar = home.join(".inbox.modseq");
    let (mut server, mut client, highest) = flag_one(dir.path());
    client.run("LOGOUT");
    // the session's end writes the sidecar (the server learns of it when
    // it reads the closed connection: wait for the file, bounded)
    let start = std::time::Instant::now();
    while !sidecar.exists() {
        assert!(start.elapsed().as_secs() < 10, "no sidecar written");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    // while no server runs, a message arrives
    let options = lda::lock::LockOptions {
        timeouts: lda::lock::LockTimeouts {
            wait: std::time::Duration::from_secs(10),
            stale_after: std::time::Duration::from_secs(600),
        },
        spool: None,
        create: true,
    };
    lda::deliver::append(
        &lda::dir::MboxPath::of_file(&home.join("inbox")),
        &bsfilter::mbox::from_line("carol@example.com", std::time::SystemTime::now()),
        b"Subject: four\n\nbody 4\n",
        options,
    )
    .unwrap();
    let (server, port) = common::spawn_imapd(dir.path(), "");
    let _server = common::KillOnDrop(server);
    let mut client = Client::connect(port);
    client.run("LOGIN alice secret");
    client.run("SELECT INBOX (CONDSTORE)");
    let changed = client
        .run(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})"))
        .join("");
    assert_eq!(fetched(&changed), [4], "only the delivery is news: {changed}");
    // and the sidecar, no longer exact once a mod-sequence beyond it is
    // handed out, is gone until the next orderly leave
    assert!(!sidecar.exists());
}

/// A folder removed outside imapd (a shell's `rm`) leaves its sidecar
/// behind; deleting the directory it was in then removes that orphan
/// instead of answering that the directory still has children.
#[test]
fn an_orphaned_sidecar_does_not_keep_its_directory() {
    let site = Site::start();
    std::fs::create_dir_all(site.home("alice")).unwrap();
    let mut client = Client::connect(site.port);
    client.run("LOGIN alice secret");
    client.run("CREATE a/b");
    client.send("APPEND a/b {14+}\r\nSubject: x\r\n\r\n");
    assert!(client.answer().contains(" OK "));
    client.run("SELECT a/b");
    client.run("STORE 1 +FLAGS (\\Flagged)");
    // leaving the folder keeps its mod-sequences beside it
    client.run("SELECT INBOX");
    let dir = site.folder("alice", "a");
    assert!(dir.join(".b.modseq").exists(), "no sidecar to orphan");
    std::fs::remove_file(dir.join("b")).unwrap();
    // a sidecar whose folder is still there stays
    client.run("CREATE a2/c");
    std::fs::write(site.folder("alice", "a2").join(".c.modseq"), "kept").unwrap();
    client.run("DELETE a");
    assert!(!dir.exists());
    client.send("DELETE a2");
    assert!(client.answer().contains(" NO "));
    assert!(site.folder("alice", "a2").join(".c.modseq").exists());
}

/// interimap (Debian's, installed by .ci/run): a real client that syncs
/// only through QRESYNC — SELECT … (QRESYNC …), UID FETCH … (CHANGEDSINCE
/// … VANISHED), STORE … (UNCHANGEDSINCE …). It keeps our INBOX and
/// Dovecot's (its "local" side, over a pipe) the same, both ways, run
/// after run: what changed on either side since the last run, and only
/// that, crosses.
#[test]
fn interimap_keeps_ours_and_dovecots_inbox_the_same() {
    let pair = Pair::start();
    pair.put("inbox", b"");
    let site = &pair.site;
    let inbox = site.inbox("alice");
    for n in 1..=3 {
        site.deliver(
            &inbox,
            "a@example.org",
            format!("Subject: message {n}\nMessage-ID: <{n}@x>\n\nbody {n}\n").as_bytes(),
        );
    }
    let root = site.dir.path();
    let config = root.join("interimap.conf");
    std::fs::write(
        &config,
        format!(
            "database = {root}/interimap.db\nlist-mailbox = INBOX\n\
             [local]\ntype = tunnel\nnull-stderr = YES\n\
             command = setpriv --reuid={uid} --regid={uid} --clear-groups env -i USER=dove HOME={home} /usr/lib/dovecot/imap -c {conf}\n\
             [remote]\ntype = imap\nhost = 127.0.0.1\nport = {port}\nSTARTTLS = NO\nusername = alice\npassword = secret\n",
            root = root.display(),
            uid = common::pair::NOBODY,
            home = pair.dove_home.display(),
            conf = pair.dovecot_dir.join("dovecot.conf").display(),
            port = site.port,
        ),
    )
    .unwrap();
    let sync = || {
        let out = Command::new("interimap")
            .arg("--config")
            .arg(&config)
            .output()
            .expect("interimap (.ci/run installs it)");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "interimap failed:\n{said}");
        said
    };
    // Dovecot's INBOX as its own imap shows it: (subject, flags) by UID
    let theirs = || {
        let mut dovecot = pair.theirs();
        let answer = dovecot.exchange("t1 EXAMINE INBOX", "t1 ");
        assert!(String::from_utf8_lossy(&answer).contains("t1 OK"));
        let answer = dovecot.exchange("t2 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])", "t2 ");
        listing(&String::from_utf8_lossy(&answer))
    };
    let ours = || {
        let mut client = Client::connect(site.port);
        client.run("LOGIN alice secret");
        client.run("EXAMINE INBOX");
        listing(
            &client
                .run("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])")
                .join(""),
        )
    };
    sync();
    assert_eq!(theirs().len(), 3, "{:?}", theirs());
    assert_eq!(theirs(), ours());
    // changes on our side: a flag, an expunge, a delivery
    let mut client = Client::connect(site.port);
    client.run("LOGIN alice secret");
    client.run("SELECT INBOX");
    client.run("STORE 2 +FLAGS (\\Flagged)");
    client.run("STORE 1 +FLAGS (\\Deleted)");
    client.run("EXPUNGE");
    client.run("LOGOUT");
    site.deliver(
        &inbox,
        "a@example.org",
        b"Subject: message 4\nMessage-ID: <4@x>\n\nbody 4\n",
    );
    sync();
    let after = theirs();
    assert_eq!(after, ours());
    let subjects: Vec<&str> = after.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(subjects, ["message 2", "message 3", "message 4"]);
    assert!(after[0].1.contains("\\Flagged"), "{after:?}");
    // a change on Dovecot's side comes back to ours
    let mut dovecot = pair.theirs();
    dovecot.exchange("t1 SELECT INBOX", "t1 ");
    let answer = dovecot.exchange("t2 STORE 2 +FLAGS (\\Seen $Work)", "t2 ");
    assert!(String::from_utf8_lossy(&answer).contains("t2 OK"));
    drop(dovecot);
    sync();
    let back = ours();
    assert_eq!(back, theirs());
    assert!(back[1].1.contains("\\Seen") && back[1].1.contains("$Work"), "{back:?}");
    // nothing changed since: a run with nothing to do changes nothing
    sync();
    assert_eq!(ours(), back);
}

/// `(subject, flags without \Recent)` of each `* n FETCH (FLAGS (…) BODY[…] {n} Subject: …)`.
fn listing(answer: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for fetch in answer.split("* ").filter(|f| f.contains(" FETCH ")) {
        let flags = fetch
            .split("FLAGS (")
            .nth(1)
            .and_then(|f| f.split(')').next())
            .unwrap_or_default()
            .split(' ')
            .filter(|f| !f.is_empty() && *f != "\\Recent")
            .collect::<Vec<_>>()
            .join(" ");
        let subject = fetch
            .split("Subject: ")
            .nth(1)
            .and_then(|s| s.split("\r\n").next())
            .unwrap_or_default()
            .to_string();
        out.push((subject, flags));
    }
    out
}
