//! Protocol answers compared with Dovecot's on the same mbox files: the
//! same commands go to our server (over TCP) and to Dovecot 2.3's own
//! imap and pop3 programs (pre-authenticated over pipes), and the
//! answers must be the same bytes — ENVELOPE, body sections inside
//! message/rfc822 and digests, BODYSTRUCTURE, SEARCH on headers, LSUB,
//! SORT, THREAD, ESEARCH, ESORT, WITHIN, SEARCHRES, STATUS=SIZE, MULTIAPPEND,
//! CATENATE, POP3 UIDL. Then what Dovecot cannot be asked through one pipe: STORE
//! after another session's EXPUNGE, UIDVALIDITY of a recreated mailbox,
//! new keywords announced. Runs as root (as CI does): Dovecot's programs
//! run as nobody.

mod common;

use common::pair::{Answer, Pair};
use common::{Client, Site};

/// Messages with what the conformance suite found wrong: addresses with
/// comments, routes and groups; a message that is message/rfc822; one
/// with a multipart inside a message/rfc822 part; a digest whose parts
/// have empty MIME headers; headers for SEARCH. The nested multiparts
/// have epilogues: without one, Dovecot counts the line end after the
/// inner close delimiter into the enclosing part, where RFC 2046 §5.1.1
/// gives it to the outer delimiter (as we do).
const MESSAGES: &[&str] = &[
    "From: user@domain (Real Name)\n\
     To: group2: (foo) ;, \"Quoted, Name\" <q@x.org>, <@route1,@route2:r@y.org>, groupname: a@b.c, d@e.f;\n\
     Cc: undisclosed-recipients:;\n\
     Subject: envelope test\n\
     Message-ID: <a0@loop.test>\n\
     Content-Type: message/rfc822\n\
     \n\
     From: inner@example.com\n\
     Subject: inner subject\n\
     \n\
     inner body line\n",
    "From: =?UTF-8?B?5bGx55Sw?= <yamada@example.jp>\n\
     Sender: John Q. Public <jqp@[192.0.2.1]>\n\
     Reply-To: \"a \\\"quoted\\\" name\" <r@example.jp>, plain@example.jp (Comment (nested))\n\
     To: nodomain, <>, \"john doe\"@example.org\n\
     Subject: =?ISO-2022-JP?B?GyRCJEgkKhsoQg==?=\n\
     Date: Tue, 1 Dec 2026 10:00:00 +0900\n\
     Message-ID: <b1@loop.test>\n\
     In-Reply-To: <a0@loop.test>\n\
     References: <a0@loop.test> <z9@loop.test>\n\
     MIME-Version: 1.0\n\
     Content-Type: multipart/mixed; boundary=\"outer\"\n\
     \n\
     preamble\n\
     --outer\n\
     Content-Type: text/plain; charset=utf-8\n\
     \n\
     first part\n\
     --outer\n\
     Content-Type: message/rfc822\n\
     Content-Description: forwarded\n\
     \n\
     From: fwd@example.com\n\
     Subject: forwarded message\n\
     Content-Type: multipart/alternative; boundary=\"inner\"\n\
     \n\
     --inner\n\
     Content-Type: text/plain\n\
     \n\
     plain text\n\
     --inner\n\
     Content-Type: text/html\n\
     \n\
     <p>html</p>\n\
     --inner--\n\
     epilogue\n\
     --outer--\n",
    "From: digest-owner@example.com\n\
     To: list@example.com\n\
     Subject: digest\n\
     MIME-Version: 1.0\n\
     Content-Type: multipart/mixed; boundary=\"m\"\n\
     \n\
     --m\n\
     Content-Type: multipart/digest; boundary=\"d\"\n\
     \n\
     --d\n\
     \n\
     From: one@example.com\n\
     Subject: first of the digest\n\
     \n\
     one's body\n\
     --d\n\
     \n\
     From: two@example.com\n\
     Subject: second of the digest\n\
     \n\
     two's body\n\
     --d--\n\
     end of the digest\n\
     --m--\n",
    "From: plain@example.com\n\
     To: someone@example.com\n\
     Subject: a plain message\n\
     \n\
     just text\n",
];

/// The commands whose answers must be Dovecot's, after an EXAMINE.
const COMMANDS: &[&str] = &[
    "FETCH 1:* (ENVELOPE)",
    "FETCH 1:* (BODYSTRUCTURE)",
    "FETCH 1:* (BODY)",
    "FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.HEADER] BODY.PEEK[1.TEXT] BODY.PEEK[1.HEADER.FIELDS (Subject)] BODY.PEEK[1.1] BODY.PEEK[1.MIME])",
    "FETCH 2 (BODY.PEEK[2] BODY.PEEK[2.MIME] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] BODY.PEEK[2.2] BODY.PEEK[2.1.MIME] BODY.PEEK[2.HEADER.FIELDS.NOT (From)])",
    "FETCH 3 (BODY.PEEK[1] BODY.PEEK[1.1] BODY.PEEK[1.1.MIME] BODY.PEEK[1.1.HEADER] BODY.PEEK[1.2.TEXT] BODY.PEEK[1.2.1])",
    "FETCH 4 (BODY.PEEK[1] BODY.PEEK[TEXT] BODY.PEEK[HEADER.FIELDS (To)])",
    "SEARCH TO groupname",
    "SEARCH TO group2",
    "SEARCH CC undisclosed-recipients",
    "SEARCH FROM \"Real Name\"",
    "SEARCH HEADER Message-ID \"<a0@loop.test>\"",
    "SEARCH HEADER Message-ID a0@loop.test",
    "SEARCH HEADER References \"<z9@loop.test>\"",
    "SEARCH HEADER In-Reply-To \"<a0@loop.test>\"",
    "SEARCH HEADER Date \"1 Dec 2026\"",
    "SEARCH HEADER Reply-To \"quoted\"",
    "SEARCH HEADER Subject \"a plain\"",
    "SEARCH HEADER X-None \"\"",
];

fn mbox(messages: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.extend_from_slice(b"From sender@example.com Tue Dec  1 10:00:00 2026\n");
        out.extend_from_slice(m.as_bytes());
        out.push(b'\n');
    }
    out
}

#[test]
fn fetch_and_search_answer_as_dovecot_does() {
    let pair = Pair::start();
    pair.put("inbox", &mbox(MESSAGES));
    let (ours, theirs) = pair.imap(COMMANDS);
    let mut differences = Vec::new();
    for ((command, o), t) in COMMANDS.iter().zip(&ours).zip(&theirs) {
        // BODYSTRUCTURE's names are case-insensitive: we write them in
        // upper case (as UW-IMAP), Dovecot in lower
        let same = if command.contains("(BODY") {
            o.untagged.to_lowercase() == t.untagged.to_lowercase()
        } else {
            o == t
        };
        if !same {
            differences.push(format!(
                "{command}\n  ours:    {:?} {}\n  Dovecot: {:?} {}",
                o.untagged, o.status, t.untagged, t.status
            ));
        }
        assert_eq!(o.status, "OK", "{command}: {o:?}");
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    // and the answers say something: the cases are really there
    let search = |c: &str| &ours[COMMANDS.iter().position(|x| *x == c).unwrap()].untagged;
    assert_eq!(search("SEARCH TO groupname"), "* SEARCH 1\r\n");
    assert_eq!(search("SEARCH HEADER Message-ID \"<a0@loop.test>\""), "* SEARCH 1\r\n");
    assert!(
        ours[0].untagged.contains("((\"Real Name\" NIL \"user\" \"domain\"))"),
        "{:?}",
        ours[0]
    );
}

#[test]
fn lsub_shows_unsubscribed_parents_as_noselect() {
    let pair = Pair::start();
    pair.put("inbox", &mbox(&MESSAGES[3..]));
    pair.put("mail/a/b/c", &mbox(&MESSAGES[3..]));
    pair.put("mail/.subscriptions", b"a/b/c\n");
    let commands = [
        "LSUB \"\" a/%",
        "LSUB \"\" *",
        "LSUB \"\" %",
        "LSUB a/ %",
        "LSUB \"\" a/b/%",
    ];
    let (ours, theirs) = pair.imap(&commands);
    // we quote every name, Dovecot only where an atom would not do
    let unquoted = |a: &Answer| a.untagged.replace(" \"/\" \"", " \"/\" ").replace("\"\r\n", "\r\n");
    assert_eq!(
        ours.iter().map(unquoted).collect::<Vec<_>>(),
        theirs.iter().map(unquoted).collect::<Vec<_>>()
    );
    assert_eq!(unquoted(&ours[0]), "* LSUB (\\Noselect) \"/\" a/b\r\n");
}

#[test]
fn pop3_uidls_are_dovecots() {
    let pair = Pair::start();
    // our server gives the messages their UIDs first: the same file, with
    // its X-IMAPbase and X-UID headers, then goes to Dovecot
    pair.put("inbox", &mbox(MESSAGES));
    let mut client = Client::connect(pair.site.port);
    client.run("LOGIN alice secret");
    client.run("SELECT INBOX");
    client.run("LOGOUT");
    let written = std::fs::read(pair.site.inbox("alice")).unwrap();
    assert!(String::from_utf8_lossy(&written).contains("X-UID: 4"));
    pair.put("inbox", &written);
    let (ours, theirs) = pair.pop3(&["UIDL", "UIDL 2", "STAT", "LIST"]);
    assert_eq!(ours, theirs);
    assert!(ours.iter().any(|l| l.starts_with("1 0000000")), "{ours:?}");
}

#[test]
fn store_answers_with_its_fetch_after_another_sessions_expunge() {
    let site = Site::start();
    let inbox = site.inbox("alice");
    for i in 1..=3 {
        site.deliver(
            &inbox,
            "carol@example.com",
            format!("Subject: m{i}\n\nbody {i}\n").as_bytes(),
        );
    }
    // (the second session takes \Recent)
    let mut second = Client::connect(site.port);
    second.run("LOGIN alice secret");
    second.run("SELECT INBOX");
    let mut first = Client::connect(site.port);
    first.run("LOGIN alice secret");
    first.run("SELECT INBOX");
    second.run("STORE 2 +FLAGS.SILENT (\\Deleted)");
    second.run("EXPUNGE");

    // message 2 is gone, but the first session may not be told during a
    // STORE: its numbers stay, and its STORE still answers with the FETCH
    first.send("STORE 1 FLAGS (\\Answered)");
    let lines = first.lines();
    assert_eq!(
        lines,
        ["* 1 FETCH (FLAGS (\\Answered) UID 1)\r\n", "t3 OK Store completed.\r\n"]
    );
    first.send("STORE 3 +FLAGS (\\Flagged)");
    let lines = first.lines();
    assert_eq!(lines[0], "* 3 FETCH (FLAGS (\\Flagged) UID 3)\r\n", "{lines:?}");
    assert_eq!(lines.len(), 2, "the earlier FETCH is not sent again: {lines:?}");
    // the next NOOP reports the expunge, and only it
    first.send("NOOP");
    let lines = first.lines();
    assert_eq!(
        lines[..lines.len() - 1],
        ["* 2 EXPUNGE\r\n", "* 2 EXISTS\r\n", "* 0 RECENT\r\n"]
    );
    first.send("FETCH 2 (FLAGS)");
    let lines = first.lines();
    assert_eq!(lines[0], "* 2 FETCH (FLAGS (\\Flagged))\r\n", "{lines:?}");
}

#[test]
fn a_mailbox_created_again_gets_a_new_uidvalidity() {
    let site = Site::start();
    let mut client = Client::connect(site.port);
    client.run("LOGIN alice secret");
    let validity = |client: &mut Client| {
        let status = client.run("STATUS Box (UIDVALIDITY)").join("");
        let value = status.split("UIDVALIDITY ").nth(1).unwrap();
        value.trim_end_matches([')', '\r', '\n']).parse::<u32>().unwrap()
    };
    // several times in a row: most of them within the same second
    let mut seen = Vec::new();
    for _ in 0..5 {
        client.run("CREATE Box");
        seen.push(validity(&mut client));
        client.run("DELETE Box");
    }
    let mut distinct = seen.clone();
    distinct.dedup();
    assert_eq!(distinct, seen, "a UIDVALIDITY came back: {seen:?}");
}

#[test]
fn a_new_keyword_is_announced_before_a_fetch_uses_it() {
    let site = Site::start();
    site.deliver(&site.inbox("alice"), "carol@example.com", b"Subject: k\n\nbody\n");
    let mut client = Client::connect(site.port);
    client.run("LOGIN alice secret");
    let select = client.run("SELECT INBOX").join("");
    assert!(!select.contains("Work"), "{select}");
    client.send("STORE 1 +FLAGS (Work)");
    let lines = client.lines();
    let flags = lines
        .iter()
        .position(|l| l.starts_with("* FLAGS (") && l.contains(" Work)"));
    let permanent = lines
        .iter()
        .position(|l| l.starts_with("* OK [PERMANENTFLAGS (") && l.contains(" Work \\*)]"));
    let fetch = lines
        .iter()
        .position(|l| l.starts_with("* 1 FETCH (FLAGS (") && l.contains("Work"));
    assert!(
        matches!((flags, permanent, fetch), (Some(a), Some(b), Some(c)) if a < c && b < c),
        "{lines:?}"
    );
    // announced once: the next change of the same keyword says nothing new
    client.send("STORE 1 -FLAGS (Work)");
    let lines = client.lines();
    assert!(!lines.iter().any(|l| l.starts_with("* FLAGS")), "{lines:?}");

    // and a keyword set by another session is announced at its NOOP
    let mut other = Client::connect(site.port);
    other.run("LOGIN alice secret");
    other.run("SELECT INBOX");
    other.run("STORE 1 +FLAGS.SILENT (Later)");
    client.send("NOOP");
    let lines = client.lines();
    let flags = lines
        .iter()
        .position(|l| l.starts_with("* FLAGS (") && l.contains(" Later)"));
    let fetch = lines.iter().position(|l| l.contains("FETCH") && l.contains("Later"));
    assert!(matches!((flags, fetch), (Some(a), Some(c)) if a < c), "{lines:?}");
}

/// A conversation for SORT and THREAD: replies by References and by
/// In-Reply-To, a Japanese subject in ISO-2022-JP answered in UTF-8
/// without references (joined by subject), two replies to a message that
/// is not here, a message without a Date or without a Message-ID, and a
/// reference loop.
const CONVERSATION: &[(&str, &str)] = &[
    (
        "Mon Nov 30 09:00:01 2026",
        "From: alice@a.example\nTo: zed@z.example\nSubject: Meeting\nMessage-ID: <m1@x>\nDate: Mon, 30 Nov 2026 09:00:00 +0000\n\nshall we meet?\n",
    ),
    (
        "Mon Nov 30 10:00:01 2026",
        "From: Bob <bob@b.example>\nTo: alice@a.example\nCc: carol@c.example\nSubject: Re: Meeting\nMessage-ID: <m2@x>\nIn-Reply-To: <m1@x>\nDate: Mon, 30 Nov 2026 10:00:00 +0000\n\nyes\n",
    ),
    (
        "Sun Nov 29 08:00:01 2026",
        "From: carol@c.example\nTo: yan@y.example\nSubject: =?ISO-2022-JP?B?GyRCMnE1RBsoQg==?=\nMessage-ID: <j1@x>\nDate: Sun, 29 Nov 2026 17:00:00 +0900\n\nJapanese meeting, a long body to make it the largest message here\n",
    ),
    (
        "Tue Dec  1 07:00:01 2026",
        "From: \"Dave\" <dave@d.example>\nTo: carol@c.example\nSubject: Re: =?UTF-8?B?5Lya6K2w?=\nMessage-ID: <j2@x>\nDate: Tue, 1 Dec 2026 07:00:00 +0000\n\nreply\n",
    ),
    (
        "Mon Nov 30 11:00:01 2026",
        "From: eve@e.example\nTo: alice@a.example\nSubject: Re: Meeting\nMessage-ID: <m3@x>\nReferences: <m1@x> <m2@x>\nDate: Mon, 30 Nov 2026 11:00:00 +0000\n\nme too\n",
    ),
    (
        "Sat Nov 28 10:00:01 2026",
        "From: frank@f.example\nTo: x@x.example\nSubject: Re: Lost parent\nMessage-ID: <l1@x>\nReferences: <missing@x>\nDate: Sat, 28 Nov 2026 10:00:00 +0000\n\nfirst\n",
    ),
    (
        "Sat Nov 28 11:00:01 2026",
        "From: grace@g.example\nTo: x@x.example\nSubject: Re: Lost parent\nMessage-ID: <l2@x>\nReferences: <missing@x>\nDate: Sat, 28 Nov 2026 11:00:00 +0000\n\nsecond\n",
    ),
    (
        "Fri Nov 27 12:00:01 2026",
        "From: =?UTF-8?B?5bGx55Sw?= <yamada@h.example>\nTo: w@w.example\nSubject: [list] Fwd: other topic\nMessage-ID: <o1@x>\n\nno date\n",
    ),
    (
        "Fri Nov 27 13:00:01 2026",
        "From: ivan@i.example\nTo: w@w.example\nSubject: other topic (fwd)\nReferences: <o1@x>\nDate: Fri, 27 Nov 2026 13:00:00 +0000\n\nno id\n",
    ),
    (
        "Thu Nov 26 10:00:01 2026",
        "From: judy@j.example\nTo: v@v.example\nSubject: loop one\nMessage-ID: <p1@x>\nReferences: <p2@x>\nDate: Thu, 26 Nov 2026 10:00:00 +0000\n\nloop\n",
    ),
    (
        "Thu Nov 26 11:00:01 2026",
        "From: ken@k.example\nTo: v@v.example\nSubject: loop two\nMessage-ID: <p2@x>\nReferences: <p1@x>\nDate: Thu, 26 Nov 2026 11:00:00 +0000\n\nloop\n",
    ),
];

#[test]
fn sort_thread_and_the_search_extensions_answer_as_dovecot_does() {
    let pair = Pair::start();
    let mut mbox = Vec::new();
    for (date, message) in CONVERSATION {
        mbox.extend_from_slice(format!("From sender@example.com {date}\n{message}\n").as_bytes());
    }
    pair.put("inbox", &mbox);
    let commands = [
        "SORT (SUBJECT) UTF-8 ALL",
        "SORT (REVERSE SUBJECT) UTF-8 ALL",
        "SORT (DATE) UTF-8 ALL",
        "SORT (REVERSE DATE) UTF-8 ALL",
        "SORT (ARRIVAL) UTF-8 ALL",
        "SORT (FROM) UTF-8 ALL",
        "SORT (TO) UTF-8 ALL",
        "SORT (CC DATE) UTF-8 ALL",
        "SORT (SIZE) UTF-8 ALL",
        "SORT (REVERSE SIZE) UTF-8 ALL",
        "SORT (DISPLAYFROM) UTF-8 ALL",
        "SORT (DISPLAYTO) UTF-8 ALL",
        "SORT (SUBJECT DATE) UTF-8 SUBJECT meeting",
        "UID SORT (DATE) UTF-8 1:5",
        "THREAD ORDEREDSUBJECT UTF-8 ALL",
        "THREAD REFERENCES UTF-8 ALL",
        "UID THREAD REFERENCES UTF-8 ALL",
        "THREAD REFERENCES UTF-8 SUBJECT meeting",
        "SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT meeting",
        "SEARCH RETURN () ALL",
        "UID SEARCH RETURN (COUNT) SUBJECT nothing-matches",
        "UID SEARCH RETURN (MIN MAX) FROM example",
        "SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL",
        "UID SORT RETURN (ALL) (REVERSE SIZE) UTF-8 NOT SUBJECT meeting",
        "SEARCH YOUNGER 172800",
        "SEARCH OLDER 259200",
        "SEARCH OR OLDER 345600 YOUNGER 172800",
        "UID SEARCH RETURN (COUNT) YOUNGER 1",
        "STATUS INBOX (MESSAGES SIZE)",
        "SEARCH RETURN (SAVE) SUBJECT meeting",
        "FETCH $ (FLAGS)",
        "UID FETCH $ (FLAGS)",
        "SEARCH NOT $",
        "UID SEARCH RETURN (ALL) $",
        "SEARCH RETURN (SAVE MIN) FROM example",
        "SEARCH $",
    ];
    let (ours, theirs) = pair.imap(&commands);
    let mut differences = Vec::new();
    for ((command, o), t) in commands.iter().zip(&ours).zip(&theirs) {
        // (we quote every mailbox name, Dovecot only where an atom would not do)
        let o = &Answer {
            untagged: o.untagged.replace("STATUS \"INBOX\"", "STATUS INBOX"),
            status: o.status.clone(),
        };
        if o != t {
            differences.push(format!("{command}\n  ours:    {o:?}\n  Dovecot: {t:?}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    assert_eq!(ours[0].status, "OK");
    // the cases are there: replies under their parent, the Japanese
    // subjects joined, the lost parent's replies side by side under it,
    // the loop cut
    assert_eq!(ours[15].untagged, "* THREAD (11 10)(8 9)((6)(7))(3 4)(1 2 5)\r\n");
}

#[test]
fn extended_list_answers_as_dovecot_does() {
    let pair = Pair::start();
    pair.put("inbox", &mbox(&MESSAGES[3..]));
    pair.put("mail/Archive", &mbox(&MESSAGES[2..]));
    pair.put("mail/Work/2026", &mbox(&MESSAGES[1..]));
    pair.put("mail/.subscriptions", b"Archive\nGone\n");
    let commands = [
        "LIST \"\" \"*\" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))",
        "LIST (SUBSCRIBED) \"\" \"*\"",
        "LIST \"\" (\"INBOX\" \"Work/*\")",
        "LIST \"\" \"%\" RETURN (SUBSCRIBED CHILDREN)",
        "LIST (SUBSCRIBED) \"\" \"*\" RETURN (STATUS (MESSAGES))",
    ];
    let (ours, theirs) = pair.imap(&commands);
    // the same mailboxes with the same marks and the same status values;
    // the order of lines, of status items and the other attributes are
    // each server's (Dovecot says \NoInferiors of an mbox file, we say
    // \HasNoChildren)
    for ((command, o), t) in commands.iter().zip(&ours).zip(&theirs) {
        assert_eq!(listing(&o.untagged), listing(&t.untagged), "{command}\n{o:?}\n{t:?}");
        assert_eq!(o.status, "OK", "{command}");
    }
    assert!(
        ours[1].untagged.contains("(\\NonExistent \\Subscribed) \"/\" \"Gone\""),
        "{:?}",
        ours[1]
    );
}

/// LIST and STATUS lines as (name, marks that matter, status items),
/// sorted.
fn listing(untagged: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
    let mut out: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for line in untagged.lines() {
        if let Some(rest) = line.strip_prefix("* LIST (") {
            let (attrs, name) = rest.split_once(") \"/\" ").unwrap();
            let mut marks: Vec<String> = attrs
                .split(' ')
                .filter(|a| matches!(*a, "\\Noselect" | "\\NonExistent" | "\\Subscribed"))
                .map(str::to_owned)
                .collect();
            marks.sort();
            out.push((unquote(name), marks, Vec::new()));
        } else if let Some(rest) = line.strip_prefix("* STATUS ") {
            let (name, items) = rest.rsplit_once(" (").unwrap();
            let words: Vec<&str> = items.trim_end_matches(')').split(' ').collect();
            let mut items: Vec<String> = words.chunks(2).map(|p| p.join(" ")).collect();
            items.sort();
            let name = unquote(name);
            let entry = out
                .iter_mut()
                .find(|(n, ..)| *n == name)
                .expect("STATUS after its LIST");
            entry.2 = items;
        }
    }
    out.sort();
    out
}

#[test]
fn multiappend_answers_as_dovecot_does() {
    let pair = Pair::start();
    pair.put("inbox", &mbox(&MESSAGES[3..]));
    let commands = [
        "APPEND INBOX (\\Seen) \"01-Dec-2026 10:00:00 +0900\" {14+}\r\nSubject: a\r\n\r\n (\\Flagged $Work) {14+}\r\nSubject: b\r\n\r\n {14+}\r\nSubject: c\r\n\r\n",
        // one bad message (its date): none of them lands
        "APPEND INBOX {14+}\r\nSubject: d\r\n\r\n \"99-Foo-2026 10:00:00 +0000\" {14+}\r\nSubject: e\r\n\r\n",
        "NOOP",
        "FETCH 2:* (FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])",
        // (the others' dates are the clock's: they could differ by a second)
        "FETCH 2 (INTERNALDATE)",
    ];
    let (ours, theirs) = pair.imap(&commands);
    assert_eq!(statuses(&ours), statuses(&theirs), "{ours:?}\n{theirs:?}");
    assert_eq!(ours[0].status, "OK");
    assert_eq!(ours[1].status, "BAD");
    // the same three messages with the same flags and dates (our FLAGS
    // name the new keyword first in a * FLAGS line, as Dovecot does)
    assert_eq!(fetches(&ours[3]), fetches(&theirs[3]));
    assert_eq!(ours[4], theirs[4]);
    assert_eq!(ours[3].untagged.matches("FETCH").count(), 3, "{:?}", ours[3]);
}

#[test]
fn binary_answers_as_dovecot_does() {
    let pair = Pair::start();
    let message = "From: a@example.com\n\
                   Subject: parts to decode\n\
                   MIME-Version: 1.0\n\
                   Content-Type: multipart/mixed; boundary=\"b\"\n\
                   \n\
                   --b\n\
                   Content-Type: text/plain; charset=utf-8\n\
                   Content-Transfer-Encoding: quoted-printable\n\
                   \n\
                   caf=C3=A9 au lait, a long line that is soft=\n\
                   -broken\n\
                   --b\n\
                   Content-Type: application/octet-stream\n\
                   Content-Transfer-Encoding: base64\n\
                   \n\
                   YmluAGFyeQFkYXRh\n\
                   --b\n\
                   Content-Type: text/plain\n\
                   \n\
                   plain seven bit\n\
                   --b--\n";
    // (in a message of its own: Dovecot then refuses every BINARY of the
    // message, where we refuse only the part)
    let uuencoded = "From: a@example.com\n\
                     Subject: uuencoded\n\
                     MIME-Version: 1.0\n\
                     Content-Type: application/octet-stream\n\
                     Content-Transfer-Encoding: x-uuencode\n\
                     \n\
                     begin 644 x\n\
                     end\n";
    pair.put("inbox", &mbox(&[message, uuencoded]));
    let commands = [
        "FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[2] BINARY.PEEK[3]<2.5>)",
        "FETCH 1 (BINARY.SIZE[1] BINARY.SIZE[3])",
        "FETCH 1 (BINARY.PEEK[1]<0.4>)",
        // an encoding neither can undo: refused, nothing sent
        "FETCH 2 (BINARY.PEEK[1])",
    ];
    let (ours, theirs) = pair.imap(&commands);
    for ((command, o), t) in commands.iter().zip(&ours).zip(&theirs).take(3) {
        assert_eq!(o, t, "{command}");
    }
    // refused by both (Dovecot sends a FETCH of the UID first; we nothing)
    assert_eq!((ours[3].status.as_str(), theirs[3].status.as_str()), ("NO", "NO"));
    let mut session = pair.ours();
    session.exchange("x1 EXAMINE INBOX", "x1 ");
    let refused = String::from_utf8(session.exchange("x2 FETCH 2 (BINARY.PEEK[1])", "x2 ")).unwrap();
    assert_eq!(refused, "x2 NO [UNKNOWN-CTE] Cannot decode x-uuencode.\r\n");
    // decoded: the é, the base64 with its NUL as a literal8
    assert!(ours[0].untagged.contains("BINARY[1] ~{46}\r\ncafé"), "{:?}", ours[0]);
    assert!(
        ours[0].untagged.contains("BINARY[2] ~{12}\r\nbin\0ary\u{1}data"),
        "{:?}",
        ours[0]
    );
}

/// CATENATE (RFC 4469) beside Dovecot's: the same parts of the same
/// message (a whole message, a header, a body, a MIME part's header, a
/// PARTIAL) put together with TEXT, absolute and relative URLs; the same
/// messages result, byte for byte, and the same URLs are refused. (Each
/// message ends in a line end: one that does not, Dovecot's mbox gives one,
/// where we keep the bytes as appended.)
#[test]
fn catenate_answers_as_dovecot_does() {
    let pair = Pair::start();
    pair.put("inbox", &mbox(&MESSAGES[1..2]));
    let commands = [
        "SELECT INBOX",
        "APPEND INBOX CATENATE (URL \"/INBOX/;UID=1/;SECTION=HEADER\" TEXT {12+}\r\nAdded text\r\n)",
        "APPEND INBOX (\\Seen) CATENATE (TEXT {25+}\r\nSubject: parts\r\n\r\nfirst\r\n URL \";UID=1/;SECTION=1.MIME\" URL \";UID=1/;SECTION=1\" URL \";UID=1/;SECTION=TEXT/;PARTIAL=0.20\" TEXT {2+}\r\n\r\n)",
        "APPEND INBOX CATENATE (URL \"/INBOX/;UID=1\")",
        "APPEND INBOX CATENATE (TEXT {14+}\r\nSubject: x\r\n\r\n URL \"/INBOX/;UID=99\")",
        "NOOP",
        "FETCH 2:* (FLAGS BODY.PEEK[])",
    ];
    let (ours, theirs) = pair.imap(&commands);
    assert_eq!(statuses(&ours), statuses(&theirs), "{ours:?}\n{theirs:?}");
    assert_eq!(statuses(&ours[1..5]), ["OK", "OK", "OK", "NO"]);
    assert_eq!(fetches(&ours[6]), fetches(&theirs[6]));
    assert_eq!(ours[6].untagged.matches(" FETCH ").count(), 3, "{:?}", ours[6]);
}

/// Each answer's status word.
fn statuses(answers: &[Answer]) -> Vec<&str> {
    answers.iter().map(|a| a.status.as_str()).collect()
}

/// An answer's FETCH lines, without the FLAGS and OK lines around them.
fn fetches(a: &Answer) -> String {
    a.untagged
        .lines()
        .filter(|l| !l.starts_with("* FLAGS") && !l.starts_with("* OK"))
        .collect::<Vec<_>>()
        .join("\n")
}
