//! The queue: durable before the 250 (kill -9 loses nothing accepted),
//! retried with backoff, administered while mtad runs (mtad queue …),
//! and failures reported to the sender once (RFC 3464).

mod common;

use common::{Gate, Raw, Site};

fn hop() -> Site {
    Site::start("hostname = \"mx.remote.example\"\nlocal_domains = [\"remote.example\"]\n")
}

#[test]
fn accepted_mail_survives_kill_9_and_a_dead_next_hop() {
    let gate = Gate::closed();
    let mut site = Site::start(&format!("relayhost = \"[127.0.0.1]:{}\"\n", gate.port));
    let id = site.submit("alice@example.jp", "bob@remote.example", "survivor");
    let deferred = site.wait_for_log("event=\"deferred\"");
    assert!(deferred.contains(&id) && deferred.contains("dsn=4.4."), "{deferred}");
    let (_, listed) = site.queue_tool(&["list"]);
    assert!(
        listed.contains(&id) && listed.contains("<bob@remote.example> ") && listed.contains("connection closed"),
        "{listed}"
    );
    site.kill(); // kill -9
    let hop = hop();
    gate.open_to(hop.port);
    site.spawn();
    let messages = hop.wait_for_messages("bob", 1);
    assert!(String::from_utf8_lossy(&messages[0]).contains("the body of survivor"));
    let done = site.wait_for_log(&format!("queue_id={id} "));
    let _ = done;
    site.wait_for_log("<bob@remote.example>:sent:2.0.0");
}

#[test]
fn kill_9_mid_load_loses_no_accepted_message() {
    let mut site = Site::start("");
    let port = site.port.to_string();
    // 8 clients send 25 messages each; mtad is killed while they do
    let out_file = site.dir.path().join("acked");
    let sender = std::process::Command::new("python3")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/load.py"))
        .args([&port, "8", "25", out_file.to_str().unwrap()])
        .spawn()
        .unwrap();
    // kill once some messages are acknowledged
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&out_file).map_or(0, |s| s.lines().count()) < 30 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "no message acknowledged"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    site.kill();
    let status = sender.wait_with_output().unwrap();
    assert!(status.status.success());
    site.spawn();
    let acked: Vec<String> = std::fs::read_to_string(&out_file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(acked.len() >= 30);
    // until the queue is empty (what was queued before the kill is
    // delivered after the restart)
    let start = std::time::Instant::now();
    while !site.queue_tool(&["list"]).1.is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{}",
            site.queue_tool(&["list"]).1
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let messages = site.wait_for_messages("alice", acked.len());
    let texts: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    for subject in &acked {
        let copies: Vec<&String> = texts
            .iter()
            .filter(|t| t.contains(&format!("Subject: {subject}\n")))
            .collect();
        assert!(!copies.is_empty(), "{subject} was acknowledged and lost");
        for copy in copies {
            assert!(
                copy.ends_with(&format!("the body of {subject}\n")),
                "a half message: {copy:?}"
            );
        }
    }
    // every message delivered is whole, acknowledged or not
    for t in &texts {
        let subject = t
            .split("Subject: ")
            .nth(1)
            .unwrap_or_else(|| panic!("{t:?}"))
            .lines()
            .next()
            .unwrap();
        assert!(t.ends_with(&format!("the body of {subject}\n")), "{t:?}");
    }
}

#[test]
fn the_queue_tool_while_mtad_runs() {
    let gate = Gate::closed();
    let site = Site::start(&format!("relayhost = \"[127.0.0.1]:{}\"\n", gate.port));
    let id = site.submit("alice@example.jp", "bob@remote.example", "administered");
    site.wait_for_log("event=\"deferred\"");
    assert_eq!(site.queue_tool(&["hold", &id]), (Some(0), "ok\n".into()));
    assert!(site.queue_tool(&["list"]).1.contains(&format!("{id} ")) && site.queue_tool(&["list"]).1.contains("HELD"));
    assert_eq!(site.queue_tool(&["release", &id]).0, Some(0));
    assert!(!site.queue_tool(&["list"]).1.contains("HELD"));
    assert_eq!(
        site.queue_tool(&["hold", "0123456789ABCDEF"]),
        (Some(1), "no such message 0123456789ABCDEF\n".into())
    );
    assert_eq!(site.queue_tool(&["hold", "../../etc"]).0, Some(64), "only queue ids");
    // delete (while the next hop is down, the message waits)
    let doomed = site.submit("alice@example.jp", "carol@remote.example", "deleted");
    site.wait_for_log(&format!("event=\"deferred\" queue_id={doomed}"));
    assert_eq!(site.queue_tool(&["delete", &doomed]).0, Some(0));
    site.wait_for_log(&format!("event=\"deleted\" queue_id={doomed}"));
    assert!(!site.queue_tool(&["list"]).1.contains(&doomed));
    // flush: the next hop is up now, and the message goes at once
    let hop = hop();
    gate.open_to(hop.port);
    assert_eq!(site.queue_tool(&["flush"]).0, Some(0));
    hop.wait_for_messages("bob", 1);
    site.wait_for_log(&format!("event=\"done\" queue_id={id}"));
    assert!(
        !site.log().contains(&format!("event=\"done\" queue_id={doomed}")),
        "deleted: never delivered"
    );
}

#[test]
fn a_permanent_failure_is_reported_to_the_sender_once() {
    let hop = hop();
    let site = Site::start(&format!("relayhost = \"[127.0.0.1]:{}\"\n", hop.port));
    // unknown at the next hop: 550 at RCPT, a report to alice
    let (mut c, _) = Raw::connect(site.port);
    c.command("EHLO client.example.org");
    c.command("MAIL FROM:<alice@example.jp> RET=HDRS ENVID=ENV123");
    c.command("RCPT TO:<nobody@remote.example> ORCPT=rfc822;nobody@remote.example");
    c.command("DATA");
    assert!(
        c.command("Subject: doomed\r\nMessage-ID: <doomed@example.jp>\r\n\r\nsecret body\r\n.")
            .starts_with("250")
    );
    let reports = site.wait_for_messages("alice", 1);
    let report = String::from_utf8_lossy(&reports[0]);
    for want in [
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.jp>",
        "Subject: Undelivered Mail Returned to Sender",
        "multipart/report; report-type=delivery-status",
        "Original-Envelope-Id: ENV123",
        "Final-Recipient: rfc822; nobody@remote.example",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.example>",
        "text/rfc822-headers",
        "Message-ID: <doomed@example.jp>",
    ] {
        assert!(report.contains(want), "{want} in:\n{report}");
    }
    assert!(!report.contains("secret body"), "RET=HDRS: the header only");
    let done = site.wait_for_log("<nobody@remote.example>:bounced:5.1.1");
    assert!(done.contains("event=\"done\""), "{done}");
    // the report came from <>: a report of a report is never sent
    let (mut c, _) = Raw::connect(site.port);
    c.command("EHLO client.example.org");
    c.command("MAIL FROM:<>");
    c.command("RCPT TO:<nobody@remote.example>");
    c.command("DATA");
    let reply = c.command("Subject: a bounce\r\n\r\nx\r\n.");
    let id = reply.trim_end().rsplit(' ').next().unwrap().to_owned();
    site.wait_for_log(&format!("event=\"done\" queue_id={id}"));
    let lines = site.log();
    let done_bounce = lines
        .lines()
        .filter(|l| l.contains("event=\"done\"") && l.contains("from=<>") && l.contains("nobody@remote.example"))
        .count();
    assert_eq!(done_bounce, 1, "{lines}");
    assert_eq!(site.messages("alice", "INBOX").len(), 1, "no second report");
    drop(hop);
}

#[test]
fn a_message_too_long_in_the_queue_is_returned_once() {
    // the next hop stays down; after maximal_queue_lifetime the sender is
    // told (4.4.7) and the message leaves the queue
    let gate = Gate::closed();
    let site = Site::start(&format!(
        "relayhost = \"[127.0.0.1]:{}\"\nmaximal_queue_lifetime = 2\n",
        gate.port
    ));
    let id = site.submit("alice@example.jp", "bob@remote.example", "patience");
    let done = site.wait_for_log(&format!("event=\"done\" queue_id={id}"));
    assert!(done.contains("<bob@remote.example>:bounced:4.4.7"), "{done}");
    assert!(gate.connections() >= 2, "it was retried before it expired");
    let reports = site.wait_for_messages("alice", 1);
    let report = String::from_utf8_lossy(&reports[0]);
    assert!(report.contains("Status: 4.4.7"), "{report}");
    assert!(
        report.contains("message expired after 2 seconds in the queue"),
        "{report}"
    );
    assert_eq!(
        site.queue_tool(&["list"]),
        (Some(0), String::new()),
        "gone from the queue"
    );
}
