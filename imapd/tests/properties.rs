//! Random and hostile input for imapd's parsers: mbox folders, MIME trees,
//! mailbox names and whole command lines never panic, and keep their
//! promises (round trips, confinement).

use std::net::IpAddr;
use std::sync::Arc;

use imapd::config::ImapdConfig;
use imapd::imap::Session;
use imapd::imap::sort::Facts;
use imapd::mailbox::{Folder, Stamp};
use imapd::{Context, mime};
use lda::folders as names;
use proptest::prelude::*;

/// Message-ish bytes: header lines (some of them our state fields), MIME
/// boundaries, `From ` lines, CR/LF mixes and random bytes.
fn message_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"Subject: x\n".to_vec()),
        Just(b"X-UID: 7\n".to_vec()),
        Just(b"X-IMAPbase: 1 99 $Junk\n".to_vec()),
        Just(b"Status: RO\n".to_vec()),
        Just(b"X-Keywords: a b     \n".to_vec()),
        Just(b"Content-Type: multipart/mixed; boundary=b\n".to_vec()),
        Just(b"Content-Type: message/rfc822\n".to_vec()),
        Just(b"--b\n".to_vec()),
        Just(b"--b--\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"From a@b Sat Nov 28 04:03:56 2026\n".to_vec()),
        Just(b">From quoted\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn folders_parse_and_round_trip(data in message_like()) {
        let folder = Folder::parse(&data, Stamp::default());
        let uids: Vec<u32> = folder.messages.iter().map(|m| m.uid).collect();
        prop_assert!(uids.windows(2).all(|w| w[0] < w[1]), "UIDs ascend: {uids:?}");
        prop_assert!(uids.last().is_none_or(|&u| u < folder.uid_next));
        let (bytes, _) = folder.serialize();
        let again = Folder::parse(&bytes, Stamp::default());
        prop_assert!(!again.needs_write);
        prop_assert_eq!(again.messages.len(), folder.messages.len());
        for (a, b) in again.messages.iter().zip(&folder.messages) {
            prop_assert_eq!(&a.content, &b.content);
            prop_assert_eq!((a.uid, a.flags, &a.keywords), (b.uid, b.flags, &b.keywords));
        }
        prop_assert_eq!((again.uid_validity, again.uid_next), (folder.uid_validity, folder.uid_next));
    }

    #[test]
    fn mime_trees_of_anything(data in message_like()) {
        let data = imapd::mailbox::to_crlf(&data);
        let root = mime::parse(&data, 0..data.len(), ("text", "plain"), 0);
        let mut out = Vec::new();
        root.write_structure(&data, true, &mut out);
        root.write_envelope(&data, &mut out);
        for path in [&[1][..], &[1, 1], &[2, 1, 3], &[0]] {
            if let Some(part) = root.part(path) {
                prop_assert!(part.body.end <= data.len() && part.header.start <= part.body.start);
            }
        }
    }

    #[test]
    fn address_lists_of_anything(value in prop::collection::vec(
        prop::sample::select(b"ab@.,;:<>()\"\\[] \t\r\n\x80=?".to_vec()), 0..120)
    ) {
        let list = imapd::address::parse_list(&value);
        // every entry takes a byte, but a group left open is closed at the end
        prop_assert!(list.len() <= value.len() + 1, "{} entries from {} bytes", list.len(), value.len());
        // group markers come in pairs, never nested
        let mut open = false;
        for a in &list {
            let marker = a.name.is_none() && a.route.is_none() && a.host.is_none();
            if marker {
                prop_assert_eq!(a.mailbox.is_some(), !open, "{:?}", list);
                open = a.mailbox.is_some();
            } else {
                prop_assert!(a.mailbox.is_some() && a.host.is_some(), "{:?}", a);
            }
        }
        prop_assert!(!open);
    }

    #[test]
    fn extended_heads_of_anything(input in prop::collection::vec(
        prop::sample::select(b"a UIDSORTHREADSEARCHRETURN()\"{}1*\r\n".to_vec()), 0..80)
    ) {
        if let Some(Ok(parsed)) = imapd::imap::extended::parse(&input, input.len() % 2 == 0) {
            prop_assert!(parsed.search.len() <= input.len() + 32);
        }
    }

    /// The parsers written beside imap-codec, fed commands made of their
    /// own words, quotes, parentheses and broken literals: none panics,
    /// and what they hand on is bounded by what they were given.
    #[test]
    fn hand_parsers_of_anything(body in prop::collection::vec(prop::sample::select(vec![
        " ", "(", ")", "\"", "\\", "{", "}", "{3}\r\n", "{2+}\r\n", "~{1}\r\n", "\r\n", "1", ":", "*", ",",
        "$", "INBOX", "日本", "\u{ff}", "UID", "FETCH", "STORE", "SEARCH", "SELECT", "STATUS", "APPEND", "LIST",
        "CREATE", "MODSEQ", "BINARY[1]<0.2>", "CHANGEDSINCE", "UNCHANGEDSINCE", "QRESYNC", "CONDSTORE", "RETURN",
        "SAVE", "SIZE", "USE", "OLDER", "YOUNGER", "UTF8", "SUBSCRIBED", "x", "CATENATE", "TEXT", "URL",
        "/INBOX;UIDVALIDITY=1/;UID=1", ";UID=2/;SECTION=1/;PARTIAL=0.1", "imap://u@h/", "%4", "\0",
    ]), 0..40)) {
        use imapd::imap::{append, list, modifiers, uidkeys, utf8};
        let input = format!("a {}\r\n", body.concat()).into_bytes();
        if let Some(Ok(m)) = modifiers::parse(&input) {
            prop_assert!(m.input.len() <= input.len() + 8);
        }
        let _ = list::parse(&input);
        if let Some(Ok(taken)) = append::parse(&input) {
            // every range lies in the command, in order, and each URL
            // either parses or does not, without a panic
            let mut last = taken.head.end;
            prop_assert!(last <= input.len());
            for m in &taken.messages {
                prop_assert!(m.options.start >= last && m.options.end <= input.len());
                last = m.options.end;
                let texts: Vec<std::ops::Range<usize>> = match &m.data {
                    append::Data::Bytes(r) => vec![r.clone()],
                    append::Data::Catenate(parts) => parts
                        .iter()
                        .filter_map(|p| match p {
                            append::Part::Text(r) => Some(r.clone()),
                            append::Part::Url(url) => {
                                let _ = append::ImapUrl::parse(url);
                                None
                            }
                        })
                        .collect(),
                };
                for r in texts {
                    prop_assert!(r.start >= last && r.end <= input.len());
                    last = r.end;
                }
            }
        }
        if let Some(literals) = utf8::quoted_to_literals(&input) {
            prop_assert!(literals.len() <= input.len() + 16 * input.len() / 3);
        }
        let _ = uidkeys::rewrite(&input, &[], 0, &[1, 2]);
        let _ = uidkeys::saved_set(&input, &[1, 2], &[]);
    }

    /// Whatever the references (loops, repeats, missing and shared
    /// IDs), every message is in the threads once.
    #[test]
    fn threads_hold_every_message_once(
        messages in prop::collection::vec((
            prop::option::of(0u8..6),
            prop::collection::vec(0u8..6, 0..4),
            0u8..3,
            0i64..5,
        ), 0..12)
    ) {
        let facts: Vec<Facts> = messages
            .iter()
            .enumerate()
            .map(|(i, (id, refs, subject, sent))| Facts {
                number: i as u32 + 1,
                base_subject: ["", "A", "B"][*subject as usize].to_owned(),
                is_reply: i % 2 == 1,
                sent: *sent,
                arrival: 0,
                size: 0,
                from: String::new(),
                to: String::new(),
                cc: String::new(),
                display_from: String::new(),
                display_to: String::new(),
                message_id: id.map(|n| format!("{n}@x")),
                references: refs.iter().map(|n| format!("{n}@x")).collect(),
            })
            .collect();
        for threads in [imapd::imap::thread::references(&facts), imapd::imap::thread::ordered_subject(&facts)] {
            let mut numbers: Vec<u32> = threads
                .split(|c: char| !c.is_ascii_digit())
                .filter(|n| !n.is_empty())
                .map(|n| n.parse().unwrap())
                .collect();
            numbers.sort();
            prop_assert_eq!(numbers, (1..=facts.len() as u32).collect::<Vec<_>>(), "{}", threads);
            prop_assert_eq!(threads.matches('(').count(), threads.matches(')').count());
        }
    }

    #[test]
    fn mailbox_names_round_trip_and_stay_inside(name in "\\PC{0,30}", raw in prop::collection::vec(any::<u8>(), 0..300)) {
        let encoded = names::encode_mutf7(&name);
        prop_assert_eq!(names::decode_mutf7(&encoded), Some(name));
        if let Ok(checked) = names::check(&raw) {
            prop_assert!(!checked.starts_with('/') && !checked.split('/').any(|c| c == ".." || c.is_empty()));
            prop_assert!(checked.len() <= names::MAX_NAME);
        }
    }
}

/// A server context for the user alice (password `secret`) whose home is
/// `home`, its user table in `dir`.
fn scratch_context(dir: &std::path::Path, home: &std::path::Path) -> Arc<Context> {
    std::fs::write(
        dir.join("passwd"),
        format!("alice:{{PLAIN}}secret::::{}::\n", home.display()),
    )
    .unwrap();
    let config = lda::config::Config::parse(&format!(
        "[users]\npasswd_file = \"{}/passwd\"\n[mailbox]\ninbox = \"~/inbox\"\nfolders = \"~/mail\"\n",
        dir.display()
    ))
    .unwrap();
    Arc::new(Context::new(
        config,
        ImapdConfig::default(),
        dir.join("passwd"),
        None,
        None,
        daemon::shutdown::Shutdown::never(),
    ))
}

/// Arbitrary command lines against a logged-in session (and before login):
/// answers, never a panic.
#[test]
fn sessions_survive_random_commands() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    let ctx = scratch_context(dir.path(), &home);
    let client: IpAddr = "127.0.0.1".parse().unwrap();
    let commands = prop::collection::vec(
        prop_oneof![
            Just(b"a SELECT INBOX\r\n".to_vec()),
            Just(b"a FETCH 1:* (BODY[1.2.MIME] BODYSTRUCTURE ENVELOPE)\r\n".to_vec()),
            Just(b"a UID SEARCH OR (NOT SEEN) TEXT x\r\n".to_vec()),
            Just(b"a APPEND INBOX {5}\r\nhello\r\n".to_vec()),
            Just(b"a STORE 1:* +FLAGS ($Junk)\r\n".to_vec()),
            Just(b"a CREATE &Jjo-\r\n".to_vec()),
            "[ -~]{0,60}\r\n".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..200),
        ],
        0..20,
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(200));
    runner
        .run(&commands, |lines| {
            let mut session = Session::new(ctx.clone(), client, false, None);
            session.greeting();
            session.handle(b"l LOGIN alice secret\r\n");
            for line in lines {
                session.handle(&line);
                session.out.clear();
            }
            Ok(())
        })
        .unwrap();
    // and the same without logging in
    let mut session = Session::new(ctx, client, false, None);
    for line in [&b"a SELECT INBOX\r\n"[..], b"\xff\xfe\r\n", b"a FETCH 1 BODY[]\r\n"] {
        session.handle(line);
    }
}

/// Arbitrary POP3 lines, before and after login: answers, never a panic.
#[test]
fn pop3_sessions_survive_random_lines() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("inbox"),
        "From a@b Sat Nov 28 04:03:56 2026\nSubject: x\n\n.dot\nbody\n\n",
    )
    .unwrap();
    let ctx = scratch_context(dir.path(), &home);
    let client: IpAddr = "127.0.0.1".parse().unwrap();
    let lines = prop::collection::vec(
        prop_oneof![
            Just(b"STAT\r\n".to_vec()),
            Just(b"LIST 1\r\n".to_vec()),
            Just(b"RETR 1\r\n".to_vec()),
            Just(b"TOP 1 99999999999\r\n".to_vec()),
            Just(b"DELE 0\r\n".to_vec()),
            Just(b"UIDL -1\r\n".to_vec()),
            Just(b"RSET\r\n".to_vec()),
            Just(b"AUTH PLAIN !!!\r\n".to_vec()),
            Just(b"APOP alice 0123\r\n".to_vec()),
            "[A-Z]{1,5}( [ -~]{0,20}){0,3}\r\n".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..100),
        ],
        0..20,
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(100));
    runner
        .run(&lines, |lines| {
            let mut session = imapd::pop3::Pop3Session::new(ctx.clone(), client, false, None);
            session.greeting();
            session.handle(b"USER alice\r\n");
            session.handle(b"PASS secret\r\n");
            for line in lines {
                session.handle(&line);
                session.out.clear();
            }
            Ok(())
        })
        .unwrap();
    // nothing was lost: the maildrop still holds its message (no QUIT ran)
    let folder = Folder::parse(&std::fs::read(home.join("inbox")).unwrap(), Stamp::default());
    assert_eq!(folder.messages.len(), 1);
}
