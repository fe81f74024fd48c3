//! SIGTERM (systemd's stop, Postfix's `postfix stop`): idle sessions are
//! told `421 4.3.2` and closed, a message being received is finished and
//! queued first, a delivery under way is finished and recorded (not made
//! again after the restart), mtad exits 0 without waiting out its
//! clients, and what was queued is delivered after the restart.

mod common;

use std::time::{Duration, Instant};

use common::{Gate, Raw, Site};

#[test]
fn sigterm_finishes_the_message_in_flight_then_closes() {
    let gate = Gate::closed();
    let mut site = Site::start(&format!("relayhost = \"[127.0.0.1]:{}\"\n", gate.port));
    // queued and deferred (the next hop is down) before the signal
    let waiting = site.submit("alice@example.jp", "bob@remote.example", "waiting");
    site.wait_for_log(&format!("event=\"deferred\" queue_id={waiting}"));
    // an idle session, one inside a transaction, one inside DATA
    let (mut idle, _) = Raw::connect(site.port);
    idle.command("EHLO client.example.org");
    let (mut inside, _) = Raw::connect(site.port);
    inside.command("EHLO client.example.org");
    inside.command("MAIL FROM:<carol@example.org>");
    assert!(inside.command("RCPT TO:<alice@example.jp>").starts_with("250"));
    let (mut data, _) = Raw::connect(site.port);
    data.command("EHLO client.example.org");
    data.command("MAIL FROM:<carol@example.org>");
    data.command("RCPT TO:<alice@example.jp>");
    assert!(data.command("DATA").starts_with("354"));
    data.send(b"Subject: in flight\r\n\r\nthe first half\r\n");

    let started = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(site.pid() as libc::pid_t, libc::SIGTERM) };
    for c in [&mut idle, &mut inside] {
        let reply = c.reply();
        assert!(
            reply.starts_with("421 4.3.2 mx.example.jp Service shutting down"),
            "{reply}"
        );
        assert_eq!(c.rest(), "", "and closed");
    }
    // the message in flight is taken whole, then the session ends
    data.send(b"the second half\r\n.\r\n");
    let queued = data.reply();
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    let reply = data.reply();
    assert!(reply.starts_with("421 4.3.2"), "{reply}");
    let status = site.terminate();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    assert!(std::net::TcpStream::connect(("127.0.0.1", site.port)).is_err());

    // after the restart: both delivered, nothing twice
    let hop = Site::start("hostname = \"mx.remote.example\"\nlocal_domains = [\"remote.example\"]\n");
    gate.open_to(hop.port);
    site.spawn();
    let alice = site.wait_for_messages("alice", 1);
    let text = String::from_utf8_lossy(&alice[0]);
    assert!(text.ends_with("the first half\nthe second half\n"), "{text}");
    hop.wait_for_messages("bob", 1);
    site.wait_for_log(&format!("event=\"done\" queue_id={waiting}"));
    assert_eq!(site.messages("alice", "INBOX").len(), 1);
}

#[test]
fn sigterm_waits_for_a_delivery_under_way() {
    let mut site = Site::start("");
    // alice's mailbox is locked by someone else: her delivery waits
    let lock = site.home("alice").join("mail/inbox.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let id = site.submit("carol@example.org", "alice@example.jp", "under way");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(site.pid() as libc::pid_t, libc::SIGTERM) };
    site.wait_for_log("SIGTERM: shutting down");
    // the lock goes: the delivery ends, is recorded, and mtad exits
    std::fs::remove_file(&lock).unwrap();
    let status = site.terminate();
    assert!(status.success(), "{status:?}");
    let done = site.wait_for_log(&format!("event=\"done\" queue_id={id}"));
    assert!(done.contains("<alice@example.jp>:sent:2.0.0:local"), "{done}");
    // after a restart nothing is delivered twice
    site.spawn();
    assert_eq!(site.messages("alice", "INBOX").len(), 1);
    assert_eq!(site.queue_tool(&["list"]), (Some(0), String::new()));
}
