//! mtad over real sockets with Python's smtplib and raw conversations:
//! local delivery through lda, the refusals and their codes, relaying
//! only for mynetworks (clients from 127.0.0.2 are outside), pipelining,
//! BDAT, and a second mtad as the next hop.

mod common;

use common::{Raw, Site};
use serde_json::Value;

fn send(site: &Site, args: &[&str]) -> Value {
    let port = site.port.to_string();
    let mut all = vec![port.as_str()];
    all.extend_from_slice(args);
    serde_json::from_str(&site.python("send.py", &all)).unwrap()
}

#[test]
fn a_message_for_a_local_user_reaches_their_mailbox() {
    let site = Site::start("");
    let result = send(
        &site,
        &[
            "--from",
            "carol@example.org",
            "--to",
            "alice@example.jp",
            "--to",
            "bob@EXAMPLE.JP",
            "--message",
            "Subject: hello\r\n\r\nfirst line\r\n.starts with a dot\r\n",
        ],
    );
    assert_eq!(result["refused"], serde_json::json!({}), "{result}");
    for feature in [
        "pipelining",
        "size",
        "8bitmime",
        "smtputf8",
        "enhancedstatuscodes",
        "dsn",
        "chunking",
        "starttls",
    ] {
        assert!(
            result["ehlo"].as_array().unwrap().iter().any(|f| f == feature),
            "{feature} in {result}"
        );
    }
    assert!(
        !result["ehlo"].as_array().unwrap().iter().any(|f| f == "auth"),
        "no AUTH on port 25"
    );
    for user in ["alice", "bob"] {
        let messages = site.wait_for_messages(user, 1);
        let text = String::from_utf8_lossy(&messages[0]);
        assert!(
            text.starts_with(
                "Received: from client.example.org (localhost [127.0.0.1])\n\tby mx.example.jp (mailkit) with ESMTP id "
            ),
            "{text}"
        );
        assert!(
            text.ends_with("Subject: hello\n\nfirst line\n.starts with a dot\n"),
            "{text}"
        );
    }
    let line = site.wait_for_log("event=\"done\"");
    for want in [
        "client=localhost[127.0.0.1]",
        "helo=client.example.org",
        "from=<carol@example.org>",
        "nrcpt=2",
        "<alice@example.jp>:sent:2.0.0:local",
        "<bob@EXAMPLE.JP>:sent:2.0.0:local",
        "size=",
    ] {
        assert!(line.contains(want), "{want} in {line}");
    }
    // delay=TOTAL delays=RECEIVING/QUEUED/DELIVERING, in seconds, adding up
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {line}"))
            .to_owned()
    };
    let total: f64 = field("delay=").parse().unwrap();
    let parts: Vec<f64> = field("delays=").split('/').map(|p| p.parse().unwrap()).collect();
    assert_eq!(parts.len(), 3, "{line}");
    assert!((parts.iter().sum::<f64>() - total).abs() <= 0.02, "{line}");
    assert!(
        site.queue_tool(&["list"]).1.is_empty(),
        "the queue is empty once delivered"
    );
}

#[test]
fn refusals_have_postfix_codes() {
    let site = Site::start("");
    let (mut c, greeting) = Raw::connect(site.port);
    assert!(greeting.starts_with("220 mx.example.jp ESMTP"), "{greeting}");
    for (command, want) in [
        ("MAIL FROM:<a@example.org>", "503 5.5.1 Error: send HELO/EHLO first"),
        ("EHLO client.example.org", "250-mx.example.jp"),
        ("RCPT TO:<alice@example.jp>", "503 5.5.1 Error: need MAIL command"),
        ("DATA", "503 5.5.1 Error: need RCPT command"),
        ("VRFY alice", "502 5.5.1 VRFY command is disabled"),
        ("EXPN staff", "502 5.5.1 EXPN command is disabled"),
        ("XYZZY", "500 5.5.2 Error: command not recognized"),
        (
            "MAIL FROM:<a@example.org> SIZE=999999999",
            "552 5.3.4 Message size exceeds fixed limit",
        ),
        ("MAIL FROM:<a@example.org>", "250 2.1.0 Ok"),
        ("MAIL FROM:<a@example.org>", "503 5.5.1 Error: nested MAIL command"),
        (
            "RCPT TO:<nobody@example.jp>",
            "550 5.1.1 <nobody@example.jp>: Recipient address rejected: User unknown in local recipient table",
        ),
        ("DATA", "554 5.5.1 Error: no valid recipients"),
        ("RCPT TO:<alice@example.jp>", "250 2.1.5 Ok"),
        ("RSET", "250 2.0.0 Ok"),
        ("NOOP", "250 2.0.0 Ok"),
        ("HELP", "214 2.0.0"),
        ("QUIT", "221 2.0.0 Bye"),
    ] {
        let reply = c.command(command);
        assert!(reply.starts_with(want), "{command}: {reply}");
    }
    let reject = site.wait_for_log("cause=\"unknown_user\"");
    assert!(reject.contains("client=127.0.0.1"), "{reject}");
}

#[test]
fn never_an_open_relay() {
    let site = Site::start("");
    // from outside mynetworks (127.0.0.1/32 only): relaying is refused,
    // mail for local users is taken
    let result = send(
        &site,
        &[
            "--source",
            "127.0.0.2",
            "--to",
            "someone@elsewhere.example",
            "--to",
            "alice@example.jp",
        ],
    );
    assert_eq!(
        result["refused"]["someone@elsewhere.example"],
        serde_json::json!([554, "5.7.1 <someone@elsewhere.example>: Relay access denied"]),
        "{result}"
    );
    assert!(result["refused"].get("alice@example.jp").is_none(), "{result}");
    site.wait_for_messages("alice", 1);
    let reject = site.wait_for_log("cause=\"relay_denied\"");
    assert!(reject.contains("client=127.0.0.2"), "{reject}");
    // the domain part's case, a trailing dot, a source route: still not ours
    let (mut c, _) = Raw::connect_from("127.0.0.2", site.port);
    c.command("EHLO outside.example");
    c.command("MAIL FROM:<x@outside.example>");
    for rcpt in [
        "<x@Elsewhere.Example>",
        "<x@example.jp.evil.example>",
        "<@example.jp:x@evil.example>",
    ] {
        let reply = c.command(&format!("RCPT TO:{rcpt}"));
        assert!(
            reply.starts_with("554 5.7.1") || reply.starts_with("501"),
            "{rcpt}: {reply}"
        );
    }
}

#[test]
fn relaying_from_mynetworks_through_a_next_hop() {
    // the next hop: a second mtad, where remote.example is local
    let hop = Site::start("hostname = \"mx.remote.example\"\nlocal_domains = [\"remote.example\"]\n");
    let site = Site::start(&format!("relayhost = \"[127.0.0.1]:{}\"\n", hop.port));
    let result = send(
        &site,
        &[
            "--from",
            "alice@example.jp",
            "--to",
            "bob@remote.example",
            "--mail-option",
            "RET=HDRS",
            "--mail-option",
            "ENVID=QQ314159",
            "--rcpt-option",
            "NOTIFY=FAILURE,DELAY",
            "--message",
            "Subject: relayed\r\n\r\nover two hops\r\n..dot\r\n",
        ],
    );
    assert_eq!(result["refused"], serde_json::json!({}), "{result}");
    let messages = hop.wait_for_messages("bob", 1);
    let text = String::from_utf8_lossy(&messages[0]);
    assert_eq!(text.matches("Received: from").count(), 2, "{text}");
    // (smtplib dot-stuffed "..dot" as "...dot"; each hop takes one back)
    assert!(text.ends_with("Subject: relayed\n\nover two hops\n..dot\n"), "{text}");
    let line = site.wait_for_log("event=\"done\"");
    assert!(
        line.contains(&format!(
            "<bob@remote.example>:sent:2.0.0:127.0.0.1[127.0.0.1]:{}",
            hop.port
        )),
        "{line}"
    );
    // the DSN requests went along
    let queued = hop.wait_for_log("event=\"accepted\"");
    assert!(queued.contains("from=<alice@example.jp>"), "{queued}");
}

#[test]
fn pipelined_commands_and_bdat() {
    let site = Site::start("");
    let (mut c, _) = Raw::connect(site.port);
    c.command("EHLO client.example.org");
    // a whole transaction in one write, as RFC 2920 allows
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.jp>\r\nRCPT TO:<nobody@example.jp>\r\nDATA\r\n");
    let replies: Vec<String> = (0..4).map(|_| c.reply()).collect();
    assert!(replies[0].starts_with("250 2.1.0"), "{replies:?}");
    assert!(replies[1].starts_with("250 2.1.5"), "{replies:?}");
    assert!(replies[2].starts_with("550 5.1.1"), "{replies:?}");
    assert!(replies[3].starts_with("354 "), "{replies:?}");
    c.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.jp>\r\n");
    assert!(c.reply().starts_with("250 2.0.0 Ok: queued as "));
    assert!(c.reply().starts_with("250 2.1.0"));
    assert!(c.reply().starts_with("250 2.1.5"));
    // BDAT: two chunks, no dot-stuffing, no end-of-data marker
    let (first, last) = (&b"Subject: chunked\r\n\r\n.dot\r"[..], &b"\nend\r\n\r\n"[..]);
    c.send(&[format!("BDAT {}\r\n", first.len()).as_bytes(), first].concat());
    let reply = c.reply();
    assert!(
        reply.starts_with(&format!("250 2.0.0 Ok: {} bytes", first.len())),
        "{reply}"
    );
    c.send(&[format!("BDAT {} LAST\r\n", last.len()).as_bytes(), last].concat());
    let reply = c.reply();
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    let messages = site.wait_for_messages("alice", 2);
    let bodies: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8_lossy(m).split_once("Subject:").unwrap().1.to_owned())
        .collect();
    assert!(bodies.contains(&" pipelined\n\nbody\n".to_owned()), "{bodies:?}");
    assert!(bodies.contains(&" chunked\n\n.dot\nend\n\n".to_owned()), "{bodies:?}");
}
