//! Hostile clients: the server stays up, other sessions are served, and
//! nothing a client sends makes one message into two or holds resources
//! past the limits.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Raw, Site};

fn still_serving(site: &Site, user: &str, count: usize) {
    let (mut c, greeting) = Raw::connect(site.port);
    assert!(greeting.starts_with("220"), "{greeting}");
    c.command("EHLO check.example.org");
    c.command("MAIL FROM:<check@example.org>");
    c.command(&format!("RCPT TO:<{user}@example.jp>"));
    c.command("DATA");
    assert!(
        c.command("Subject: still here\r\n\r\nok\r\n.")
            .starts_with("250 2.0.0 Ok: queued")
    );
    site.wait_for_messages(user, count);
}

#[test]
fn smuggled_ends_of_data_never_make_a_second_message() {
    let site = Site::start("");
    let smuggles: [&[u8]; 6] = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r\r\n", b"\r\n.\r"];
    for (i, smuggle) in smuggles.iter().enumerate() {
        let (mut c, _) = Raw::connect(site.port);
        c.command("EHLO client.example.org");
        c.command("MAIL FROM:<a@example.org>");
        c.command("RCPT TO:<alice@example.jp>");
        assert!(c.command("DATA").starts_with("354"));
        let mut data = format!("Subject: first {i}\r\n\r\nbody").into_bytes();
        data.extend_from_slice(smuggle);
        data.extend_from_slice(
            format!("MAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@example.jp>\r\nDATA\r\nSubject: smuggled {i}\r\n\r\nsecond\r\n.\r\n").as_bytes(),
        );
        c.send(&data);
        let reply = c.reply();
        assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{smuggle:?}: {reply}");
        assert!(c.command("QUIT").starts_with("221"));
    }
    let messages = site.wait_for_messages("alice", smuggles.len());
    assert_eq!(messages.len(), smuggles.len());
    for m in &messages {
        let text = String::from_utf8_lossy(m);
        assert!(
            text.contains("MAIL FROM:<evil@example.org>") && text.contains("Subject: smuggled"),
            "{text}"
        );
    }
    assert!(site.messages("bob", "INBOX").is_empty(), "no second message, ever");
}

#[test]
fn bare_newlines_refused_when_configured() {
    let site = Site::start("bare_newline = \"reject\"\n");
    let (mut c, _) = Raw::connect(site.port);
    c.command("EHLO client.example.org");
    c.command("MAIL FROM:<a@example.org>");
    c.command("RCPT TO:<alice@example.jp>");
    c.command("DATA");
    c.send(b"Subject: x\r\n\r\nbare\nline\r\n.\r\n");
    assert!(c.reply().starts_with("550 5.5.2 Error: bare <LF> received"));
    assert_eq!(c.rest(), "", "and closed");
    still_serving(&site, "alice", 1);
}

#[test]
fn talking_before_the_greeting_is_refused() {
    let site = Site::start("greet_pause = 0.5\n");
    // outside mynetworks: the 220- line, a pause, and a bot that speaks first
    let mut bot = Raw::connect_quiet("127.0.0.2", site.port);
    let first = bot.line();
    assert!(first.starts_with("220-mx.example.jp"), "{first}");
    bot.send(b"EHLO bot\r\n");
    let reply = bot.reply();
    assert!(
        reply.starts_with("554 5.5.1 Error: protocol error: command sent before the greeting"),
        "{reply}"
    );
    assert_eq!(bot.rest(), "");
    site.wait_for_log("cause=\"pregreet\"");
    // a client that waits gets the greeting's last line
    let mut ok = Raw::connect_quiet("127.0.0.3", site.port);
    assert!(ok.line().starts_with("220-"));
    assert!(ok.line().starts_with("220 mx.example.jp"));
    assert!(ok.command("EHLO patient.example.org").starts_with("250"));
}

#[test]
fn long_lines_nul_bytes_and_oversized_messages() {
    let site = Site::start("message_size_limit = 2000\n");
    let (mut c, _) = Raw::connect(site.port);
    c.command("EHLO client.example.org");
    let long = format!("MAIL FROM:<{}@example.org>", "x".repeat(5000));
    assert!(c.command(&long).starts_with("500 5.5.2 Error: line too long"));
    assert!(c.command("NOOP").starts_with("250"), "the session goes on");
    assert!(c.command("MAIL FROM:<a@exa\0mple.org>").starts_with("500 5.5.2"));
    c.command("MAIL FROM:<a@example.org>");
    c.command("RCPT TO:<alice@example.jp>");
    c.command("DATA");
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    for _ in 0..100 {
        big.extend_from_slice(&[b'y'; 98]);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b".\r\n");
    c.send(&big);
    assert!(c.reply().starts_with("552 5.3.4 Message size exceeds fixed limit"));
    // the same by BDAT
    c.command("MAIL FROM:<a@example.org>");
    c.command("RCPT TO:<alice@example.jp>");
    c.send(&[b"BDAT 5000 LAST\r\n".as_slice(), &[b'z'; 5000]].concat());
    assert!(c.reply().starts_with("552 5.3.4"));
    // NUL bytes and a 10 KB line inside a message are content
    c.command("MAIL FROM:<a@example.org>");
    c.command("RCPT TO:<alice@example.jp>");
    c.command("DATA");
    c.send(b"Subject: nul\r\n\r\na\0b\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0"));
    let messages = site.wait_for_messages("alice", 1);
    assert!(messages[0].ends_with(b"Subject: nul\n\na\0b\n"));
}

#[test]
fn too_many_recipients_get_452() {
    // 10,000 pipelined at once against the default limit of 1,000
    let site = Site::start("");
    let (mut c, _) = Raw::connect(site.port);
    c.command("EHLO client.example.org");
    c.command("MAIL FROM:<a@example.org>");
    let mut batch = String::new();
    for _ in 0..10_000 {
        batch.push_str("RCPT TO:<alice@example.jp>\r\n");
    }
    // written from a thread: the replies must be read meanwhile, or
    // both sides' buffers fill
    let mut writer = c.stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || writer.write_all(batch.as_bytes()).unwrap());
    let replies: Vec<String> = (0..10_000).map(|_| c.reply()).collect();
    sending.join().unwrap();
    assert!(replies[..1000].iter().all(|r| r.starts_with("250 2.1.5")));
    assert!(
        replies[1000..]
            .iter()
            .all(|r| r.starts_with("452 4.5.3 Error: too many recipients")),
        "{:?}",
        &replies[1000..1002]
    );
    assert!(
        c.command("NOOP").starts_with("250"),
        "a limit, not an error: the session goes on"
    );
}

#[test]
fn slow_and_silent_clients_time_out() {
    let site = Site::start("command_timeout = 1\n");
    let (mut c, _) = Raw::connect(site.port);
    let start = Instant::now();
    // one byte at a time, never a whole line within the timeout
    for b in b"EHLO slow.example.org" {
        if c.stream.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
        if start.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let rest = c.rest();
    assert!(
        rest.contains("421 4.4.2 mx.example.jp Error: timeout exceeded"),
        "{rest}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "ended by the command deadline, not by the client"
    );
    // a client that stops mid-message
    let (mut c, _) = Raw::connect(site.port);
    c.command("EHLO client.example.org");
    c.command("MAIL FROM:<a@example.org>");
    c.command("RCPT TO:<alice@example.jp>");
    c.command("DATA");
    c.send(b"Subject: half\r\n\r\nand then nothing");
    assert!(c.rest().contains("421 4.4.2"));
    still_serving(&site, "alice", 1);
    assert_eq!(
        site.wait_for_messages("alice", 1).len(),
        1,
        "the half message was not queued"
    );
}

#[test]
fn a_client_that_never_reads_its_replies() {
    let site = Site::start("command_timeout = 1\n");
    let mut flood = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    flood.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let noops = b"NOOP\r\n".repeat(20_000);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        if flood.write_all(&noops).is_err() {
            break; // the server gave up on us
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "the server closed the flooding client"
    );
    still_serving(&site, "alice", 1);
}

#[test]
fn connections_per_address_and_per_minute_are_capped() {
    let site = Site::start("");
    // 1,000 at once from one address: the default 50 are served, every
    // other one is told 421 and closed
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..1000 {
        let (c, greeting) = Raw::connect(site.port);
        if greeting.starts_with("220") {
            held.push(c);
        } else {
            assert_eq!(
                greeting.trim_end(),
                "421 4.7.0 Error: too many connections from your address",
            );
            refused += 1;
        }
    }
    assert_eq!((held.len(), refused), (50, 950));
    // another address is served meanwhile
    let (_other, greeting) = Raw::connect_from("127.0.0.2", site.port);
    assert!(greeting.starts_with("220"), "{greeting}");
    // once they close, the address is served again: the server learns of
    // each close when it reads it, so the first tries may still see 50
    drop(held);
    let start = Instant::now();
    loop {
        let (_c, greeting) = Raw::connect(site.port);
        if greeting.starts_with("220") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "slots never released: {greeting}"
        );
    }
    still_serving(&site, "alice", 1);
    // per minute: 40 connections from 127.0.0.3, open or closed, then no more
    let site = Site::start("max_connection_rate = 40\n");
    let mut refused_by_rate = None;
    for i in 0..45 {
        let (c, greeting) = Raw::connect_from("127.0.0.3", site.port);
        drop(c);
        if greeting.starts_with("421") {
            refused_by_rate = Some((i, greeting));
            break;
        }
    }
    let (i, greeting) = refused_by_rate.expect("the rate cap refused one");
    assert_eq!(i, 40, "{greeting}");
    assert!(
        greeting.contains("too many connections from your address this minute"),
        "{greeting}"
    );
    still_serving(&site, "alice", 1);
}

/// Random command lines (a fixed seed: the same every run): bytes of any
/// value, CRs and NULs among them, lines up to 3 KB, half of them after
/// a valid MAIL and RCPT. Every reply is a well-formed one, every session
/// ends in order, and the server delivers afterwards.
#[test]
fn garbage_commands_get_replies_never_a_crash() {
    let site = Site::start("");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let verbs: [&[u8]; 8] = [
        b"",
        b"MAIL FROM:",
        b"RCPT TO:",
        b"EHLO ",
        b"BDAT ",
        b"AUTH ",
        b"HELO ",
        b"STARTTLS",
    ];
    for round in 0..30 {
        let (mut c, _) = Raw::connect(site.port);
        let mut expected = 1; // EHLO's reply
        c.send(b"EHLO fuzz.example.org\r\n");
        if round % 2 == 1 {
            c.send(b"MAIL FROM:<fuzz@example.org>\r\nRCPT TO:<alice@example.jp>\r\n");
            expected += 2;
        }
        for _ in 0..12 {
            let mut line = verbs[(next() % verbs.len() as u64) as usize].to_vec();
            let len = (next() % 3000) as usize;
            line.extend((0..len).map(|_| {
                let b = next() as u8;
                // no line end inside (each line is one command)
                if b == b'\n' { b'\r' } else { b }
            }));
            line.extend_from_slice(b"\r\n");
            c.send(&line);
            expected += 1;
        }
        c.send(b"QUIT\r\n");
        let rest = c.rest();
        let replies: Vec<&str> = rest.lines().filter(|l| l.as_bytes().get(3) != Some(&b'-')).collect();
        assert!(
            replies
                .iter()
                .all(|r| r.len() >= 3 && r[..3].bytes().all(|b| b.is_ascii_digit())),
            "round {round}: {rest}"
        );
        // each command answered, or the session closed early with 421
        // after too many errors, a 221 at the end either way
        let last = replies.last().copied().unwrap_or("");
        assert!(
            (replies.len() == expected + 1 && last.starts_with("221")) || last.starts_with("421"),
            "round {round}: {} replies for {expected} commands:\n{rest}",
            replies.len()
        );
    }
    still_serving(&site, "alice", 1);
}
