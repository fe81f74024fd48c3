//! A real Postfix (Debian's, in its own scratch directories, as root as
//! CI runs) on both sides of mtad: as the next hop receiving what mtad
//! relays — over STARTTLS, 8-bit intact, the DSN requests honoured so
//! that Postfix's own success report comes back through mtad — and as a
//! client relaying to mtad, whose refusals Postfix turns into its own
//! bounces. Postfix's smtp-source loads mtad, and every message it was
//! told was queued is delivered.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::tables::{Tables, data, rcpt};
use common::{Gate, Site};

/// A scratch Postfix: its smtpd on a loopback address of its own (so a
/// port picked now cannot be taken by another test), virtual mailboxes
/// for `remote.test` (bob), everything else relayed to `relayhost`.
struct Postfix {
    dir: tempfile::TempDir,
    address: String,
    port: u16,
}

impl Postfix {
    fn start(relayhost: &str) -> Postfix {
        Postfix::start_with(relayhost, "")
    }

    /// Started with `extra` main.cf lines after ours (a later line wins).
    fn start_with(relayhost: &str, extra: &str) -> Postfix {
        assert!(e2e_tests::is_root(), "Postfix's master runs as root (as CI does)");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        // 127.P.Q.1 from this process's id: no other test process uses it
        let pid = std::process::id();
        let address = format!("127.{}.{}.1", 100 + (pid >> 8) % 100, pid & 0xff);
        let port = std::net::TcpListener::bind((address.as_str(), 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let etc = root.join("etc");
        for d in ["etc", "spool", "data", "vmail"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        let nobody = 65534;
        std::os::unix::fs::chown(root.join("vmail"), Some(nobody), Some(nobody)).unwrap();
        let postfix_user = Command::new("id").args(["-u", "postfix"]).output().unwrap();
        let postfix_uid: u32 = String::from_utf8_lossy(&postfix_user.stdout).trim().parse().unwrap();
        std::os::unix::fs::chown(root.join("data"), Some(postfix_uid), None).unwrap();
        e2e_tests::certificate(root, "mx.postfix.test");
        std::fs::copy("/etc/postfix/master.cf", etc.join("master.cf")).unwrap();
        let r = root.display();
        let base = format!(
            "compatibility_level = 3.6\nqueue_directory = {r}/spool\ndata_directory = {r}/data\n\
                 mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = mx.postfix.test\n\
                 mydomain = postfix.test\nmydestination =\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n\
                 mynetworks = 127.0.0.0/8\nmaillog_file = {r}/maillog\nmaillog_file_prefixes = {r}\n\
                 alias_maps =\nalias_database =\nsmtpd_peername_lookup = no\nsmtputf8_enable = yes\n\
                 relayhost = {relayhost}\nvirtual_mailbox_domains = remote.test\nvirtual_mailbox_base = {r}/vmail\n\
                 virtual_mailbox_maps = inline:{{ bob@remote.test=bob }}\n\
                 virtual_uid_maps = static:{nobody}\nvirtual_gid_maps = static:{nobody}\n\
                 smtp_tls_security_level = may\nsmtpd_tls_security_level = may\n\
                 smtpd_tls_cert_file = {r}/cert.pem\nsmtpd_tls_key_file = {r}/key.pem\n\
                 smtpd_tls_received_header = yes\nsmtpd_tls_session_cache_database =\n"
        );
        // `extra` replaces lines of ours rather than repeating a key: every
        // Postfix process warns about a repeated key, and postlogd, logging
        // its own warning to its own socket, deadlocks once that fills
        // (seen: `postfix stop` hung in master -t for half an hour)
        let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_owned();
        let replaced: Vec<String> = extra.lines().map(key).collect();
        let mut main_cf: String = base
            .lines()
            .filter(|l| !replaced.contains(&key(l)))
            .map(|l| format!("{l}\n"))
            .collect();
        main_cf.push_str(extra);
        std::fs::write(etc.join("main.cf"), main_cf).unwrap();
        let postconf = |args: &[&str]| {
            let status = Command::new("/usr/sbin/postconf")
                .arg("-c")
                .arg(&etc)
                .args(args)
                .status()
                .unwrap();
            assert!(status.success(), "postconf {args:?}");
        };
        postconf(&["-F", "*/*/chroot = n"]);
        postconf(&["-M#", "smtp/inet"]);
        let service = format!("{address}:{port}/inet");
        postconf(&["-M", &format!("{service}={address}:{port} inet n - n - - smtpd")]);
        let postfix = Postfix { dir, address, port };
        let out = postfix.command(&["start"]);
        assert!(out.status.success(), "postfix start: {out:?}\n{}", postfix.log());
        let start = Instant::now();
        while std::net::TcpStream::connect((postfix.address.as_str(), port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "Postfix did not listen:\n{}",
                postfix.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        postfix
    }

    fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.dir.path().join("etc"))
            .args(args)
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Waits (up to 20 s) for a log line with every one of `needles`.
    fn wait_for_log(&self, needles: &[&str]) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no {needles:?} in Postfix's log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn mailbox(&self, user: &str) -> PathBuf {
        self.dir.path().join("vmail").join(user)
    }

    /// Postfix's sendmail: the message into Postfix's queue.
    fn sendmail(&self, from: &str, to: &str, message: &str) {
        use std::io::Write;
        let mut child = Command::new("/usr/sbin/sendmail")
            .arg("-C")
            .arg(self.dir.path().join("etc"))
            .args(["-f", from, "--", to])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(message.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid_file = self.dir.path().join("spool/pid/master.pid");
        let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
        let _ = self.command(&["stop"]);
        // wait for the master to go before its directories do
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let start = Instant::now();
            // SAFETY: signal 0 only asks whether the process exists.
            while unsafe { libc::kill(pid, 0) } == 0 && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[test]
fn postfix_on_both_sides() {
    // Postfix relays to mtad through a gate (mtad's port is known only
    // once it runs, and mtad must know Postfix's)
    let gate = Gate::closed();
    let postfix = Postfix::start(&format!("[127.0.0.1]:{}", gate.port));
    let site = Site::start(&format!("relayhost = \"[{}]:{}\"\n", postfix.address, postfix.port));
    gate.open_to(site.port);

    // mtad → Postfix: STARTTLS, 8 bits, a dot line, the DSN requests
    let (mut c, _) = common::Raw::connect(site.port);
    c.command("EHLO client.example.org");
    assert!(
        c.command("MAIL FROM:<alice@example.jp> BODY=8BITMIME ENVID=POSTFIX-ENV-1")
            .starts_with("250")
    );
    assert!(
        c.command("RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@remote.test")
            .starts_with("250")
    );
    assert!(c.command("DATA").starts_with("354"));
    let reply = c.command(
        "Subject: =?UTF-8?B?5pel5pys6Kqe?=\r\nContent-Type: text/plain; charset=UTF-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n日本語の本文\r\n..a dot line\r\n.",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let sent = postfix.wait_for_log(&["to=<bob@remote.test>", "status=sent"]);
    assert!(sent.contains("delivered to mailbox"), "{sent}");
    let mailbox = std::fs::read_to_string(postfix.mailbox("bob")).unwrap();
    assert!(
        mailbox.contains("by mx.example.jp (mailkit) with ESMTP id"),
        "{mailbox}"
    );
    assert!(
        mailbox.contains("by mx.postfix.test (Postfix) with ESMTPS id"),
        "mtad used STARTTLS:\n{mailbox}"
    );
    assert!(mailbox.contains("\n日本語の本文\n.a dot line\n"), "{mailbox}");
    let done = site.wait_for_log("<bob@remote.test>:sent:2.0.0");
    assert!(
        done.contains(&format!("[{}]:{}", postfix.address, postfix.port)),
        "{done}"
    );
    // NOTIFY=SUCCESS: Postfix reports the delivery to alice, through mtad
    let reports = site.wait_for_messages("alice", 1);
    let report = String::from_utf8_lossy(&reports[0]);
    for want in [
        "From: Mail Delivery System <MAILER-DAEMON@mx.postfix.test>",
        "Original-Envelope-Id: POSTFIX-ENV-1",
        "Original-Recipient: rfc822;bob@remote.test",
        "Action: delivered",
        "Status: 2.0.0",
    ] {
        assert!(report.contains(want), "{want} in:\n{report}");
    }

    // Postfix → mtad: Postfix relays to us over STARTTLS
    postfix.sendmail(
        "carol@postfix.test",
        "bob@example.jp",
        "Subject: from Postfix\n\nrelayed by Postfix\n",
    );
    let sent = postfix.wait_for_log(&["to=<bob@example.jp>", "status=sent"]);
    assert!(sent.contains("250 2.0.0 Ok: queued as "), "{sent}");
    let messages = site.wait_for_messages("bob", 1);
    let text = String::from_utf8_lossy(&messages[0]);
    assert!(
        text.contains("Received: from mx.postfix.test (localhost [127.0.0.1])"),
        "{text}"
    );
    assert!(text.contains("with ESMTPS id"), "Postfix used STARTTLS:\n{text}");
    assert!(text.ends_with("relayed by Postfix\n"), "{text}");

    // our refusal becomes Postfix's bounce, with our code and words
    postfix.sendmail("carol@postfix.test", "nobody@example.jp", "Subject: unknown\n\nx\n");
    let bounced = postfix.wait_for_log(&["to=<nobody@example.jp>", "status=bounced"]);
    assert!(
        bounced.contains("said: 550 5.1.1 <nobody@example.jp>: Recipient address rejected: User unknown"),
        "{bounced}"
    );
}

#[test]
fn smtp_source_load_is_all_delivered() {
    let site = Site::start("");
    let sessions = "10";
    let messages = 200;
    let out = Command::new("/usr/sbin/smtp-source")
        .args(["-s", sessions, "-m", &messages.to_string(), "-l", "5120"])
        .args(["-f", "loader@example.org", "-t", "alice@example.jp"])
        .arg(format!("127.0.0.1:{}", site.port))
        .output()
        .expect("smtp-source (Postfix) is installed");
    assert!(out.status.success(), "{out:?}");
    let delivered = site.wait_for_messages("alice", messages);
    assert_eq!(delivered.len(), messages, "one delivery per message");
    for m in &delivered {
        assert!(m.len() > 5000, "each whole: {} bytes", m.len());
    }
}

#[test]
fn the_same_tables_give_the_same_replies_as_postfix() {
    let tables = Tables::write();
    // hash tables built before Postfix starts (its smtpd opens them once)
    let empty_config = tempfile::tempdir().unwrap();
    std::fs::write(empty_config.path().join("main.cf"), "").unwrap();
    for name in ["client_access", "helo_access", "sender_access", "recipient_access"] {
        let out = Command::new("/usr/sbin/postmap")
            .arg("-c")
            .arg(empty_config.path())
            .arg(format!("hash:{}", tables.path(name).display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "postmap {name}: {out:?}");
    }
    let postfix = Postfix::start_with(
        "",
        &format!(
            "mynetworks = 127.0.0.1/32\nvirtual_mailbox_domains = remote.test example.jp\n\
             virtual_mailbox_maps = inline:{{ alice@example.jp=alice, bob@example.jp=bob }}\n{}",
            tables.postfix_main_cf()
        ),
    );
    // (a repeated main.cf key makes every process warn, which can
    // deadlock postlogd: see Postfix::start_with)
    assert!(!postfix.log().contains("overriding earlier entry"), "{}", postfix.log());
    let site = Site::start(&tables.mtad_keys());
    // (client, HELO, sender, recipient, message): every table and action
    let cases: &[(&str, &str, &str, &str, Option<&str>)] = &[
        (
            "127.0.0.3",
            "client.example.org",
            "a@example.org",
            "alice@example.jp",
            None,
        ),
        (
            "127.0.0.4",
            "client.example.org",
            "a@example.org",
            "alice@example.jp",
            None,
        ),
        (
            "127.0.0.5",
            "client.example.org",
            "x@spammer.example",
            "alice@example.jp",
            Some("Subject: ok\r\n\r\nbody"),
        ),
        (
            "127.0.0.6",
            "client.example.org",
            "a@example.org",
            "alice@example.jp",
            Some("Subject: discarded\r\n\r\nbody"),
        ),
        (
            "127.0.0.7",
            "client.example.org",
            "a@example.org",
            "alice@example.jp",
            Some("Subject: held\r\n\r\nbody"),
        ),
        (
            "127.0.0.9",
            "x.bad.helo.example",
            "a@example.org",
            "alice@example.jp",
            None,
        ),
        (
            "127.0.0.9",
            "client.example.org",
            "x@mail.spammer.example",
            "alice@example.jp",
            None,
        ),
        (
            "127.0.0.9",
            "client.example.org",
            "friend@spammer.example",
            "alice@example.jp",
            None,
        ),
        (
            "127.0.0.9",
            "client.example.org",
            "info@elsewhere.example",
            "alice@example.jp",
            None,
        ),
        // DEFER_IF_PERMIT: the lists end in a permit; DEFER_IF_REJECT: a later REJECT
        (
            "127.0.0.9",
            "client.example.org",
            "x@deferme.example",
            "alice@example.jp",
            None,
        ),
        (
            "127.0.0.12",
            "client.example.org",
            "x@spammer.example",
            "alice@example.jp",
            None,
        ),
        (
            "127.0.0.12",
            "client.example.org",
            "a@example.org",
            "alice@example.jp",
            None,
        ),
        (
            "127.0.0.9",
            "client.example.org",
            "<>",
            "bob@example.jp",
            Some("Subject: redirected\r\n\r\nbody"),
        ),
        (
            "127.0.0.9",
            "client.example.org",
            "a@example.org",
            "alice@example.jp",
            Some("Subject: Make Money Fast\r\n\r\nbody"),
        ),
        (
            "127.0.0.9",
            "client.example.org",
            "a@example.org",
            "alice@example.jp",
            Some("Subject: lose fat\r\n\tgain muscle\r\n\r\nbody"),
        ),
        (
            "127.0.0.9",
            "client.example.org",
            "a@example.org",
            "alice@example.jp",
            Some("Subject: F\u{ffe5}.R\u{ffe5}.E\u{ffe5}.E\r\n\r\nbody"),
        ),
        (
            "127.0.0.9",
            "client.example.org",
            "a@example.org",
            "alice@example.jp",
            Some("Subject: deferred\r\n\r\nbody"),
        ),
        (
            "127.0.0.9",
            "client.example.org",
            "a@example.org",
            "alice@example.jp",
            Some("Subject: fine\r\n\r\nhello\r\nviagra now\r\n"),
        ),
    ];
    let normalize = |reply: &str| -> String {
        let reply = reply.replace("<unknown[", "<localhost[");
        match reply.split_once("queued as ") {
            Some((head, _)) => format!("{head}queued as ID"),
            None => reply,
        }
    };
    for (client, helo, from, to, message) in cases {
        let from = from.trim_matches(['<', '>']);
        let talk = |server: (&str, u16)| -> String {
            let (reply, mut c) = rcpt(server, client, helo, from, to);
            let mut said = normalize(&reply);
            if let (Some(message), true) = (message, reply.starts_with("250")) {
                said.push_str(" / ");
                said.push_str(&normalize(&data(&mut c, message)));
            }
            said
        };
        let theirs = talk((postfix.address.as_str(), postfix.port));
        let ours = talk(("127.0.0.1", site.port));
        let deferred =
            from.ends_with("@deferme.example") || (*client == "127.0.0.12" && from.ends_with("@spammer.example"));
        if deferred {
            assert!(ours.starts_with("450 4.7.1"), "{client} <{from}>: {ours}");
        }
        assert_eq!(
            ours,
            theirs,
            "{client} {helo} <{from}> <{to}> {message:?}\n{}",
            postfix.log()
        );
    }
}

#[test]
fn tables_look_up_as_postmap_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.cf"), "").unwrap();
    let tables = Tables::write();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let captures = write(
        "captures",
        "/^To: (.*)@(.*)$/ WARN to ${2} user $(1) $$5\n/^X-Mailer: (a|ab)(c|bcd)(d*)/ PREPEND X-Seen: $1-$2-$3\n\
         /^Y: (a)?b/ REPLACE [$1]\nif /^Z/\n!/^Z: keep/ IGNORE\nendif\n/^(x+)(x*)$/ R $1.$2\n",
    );
    let cidr = write("cidr", "10.0.0.0/8 inside\n!192.0.2.0/24 outside\n2001:db8::/32 six\n");
    // what only PCRE has: backreferences, look-ahead, its flags
    let pcre = write(
        "pcre",
        "/^Subject: (\\w+) \\1\\b/ REJECT repeated $1\n/^From: (?!.*@example\\.jp)(.*)/ WARN outsider ${1}\n\
         /^X-Case: abc/i DUNNO exact\n/^X-Dot: a.b/s OK not dotall\n/^X-Ext: a b c/x OK extended\n",
    );
    let hash = tables.path("client_access").display().to_string();
    let out = Command::new("/usr/sbin/postmap")
        .arg("-c")
        .arg(dir.path())
        .arg(format!("hash:{hash}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cases: &[(&str, &[&str])] = &[
        (
            &format!("regexp:{captures}"),
            &[
                "To: bob@example.jp",
                "X-Mailer: abcd",
                "Y: b",
                "Y: ab",
                "Z: drop",
                "Z: keep",
                "xxx",
                "none",
            ],
        ),
        (
            &format!("regexp:{}", tables.path("header_checks").display()),
            &[
                "Subject: Make Money Fast",
                "Subject: make money fast",
                "Subject: cheap v|agra",
                "Subject: F\u{ffe5}.R\u{ffe5}.E\u{ffe5}.E",
                "Subject: f\u{ffe5}.r\u{ffe5}.e\u{ffe5}.e",
                "Subject: held over the weekend",
                "Subject: inkjet",
            ],
        ),
        (
            &format!("cidr:{cidr}"),
            &["10.1.2.3", "192.0.2.1", "198.51.100.7", "2001:db8::1"],
        ),
        (
            &format!("pcre:{pcre}"),
            &[
                "Subject: buy buy now",
                "Subject: buy now",
                "From: a@example.jp",
                "From: b@example.com",
                "X-Case: abc",
                "X-Case: ABC",
                "X-Dot: a\nb",
                "X-Dot: axb",
                "X-Ext: abc",
            ],
        ),
        (
            &format!("hash:{hash}"),
            &["150.59.112.17", "61.49.138.219", "61.49.138", "127.0.0", "127.0.0.8"],
        ),
    ];
    for (spec, keys) in cases {
        let ours = mta::policy::table::Table::open(spec).unwrap();
        for key in *keys {
            let (theirs, said) = postmap_query(dir.path(), key, spec);
            assert_eq!(ours.lookup(key.as_bytes()), theirs, "{spec} {key:?}: {said}");
        }
    }
}

#[test]
fn the_s25r_sample_sorts_dynamic_names_as_postfix_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.cf"), "").unwrap();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/etc/s25r.regexp");
    let spec = format!("regexp:{sample}");
    let ours = mta::policy::table::Table::open(&spec).unwrap();
    let dynamic = [
        "p1234-ipad01tokyo.tokyo.ocn.ne.jp",
        "ntt12345.example.ne.jp",
        "softbank221078042071.bbtec.net",
        "61-49-138-219.rev.example.ne.jp",
        "dhcp7.example.com",
        "ppp12.dialup.example.jp",
        "host1.10-20.example.jp",
        "a1.b2.example.co.jp",
    ];
    let static_names = [
        "mail.example.jp",
        "mx1.example.co.jp",
        "smtp.ocn.ne.jp",
        "www.example.com",
        "localhost",
    ];
    for name in dynamic.iter().chain(&static_names) {
        let (theirs, said) = postmap_query(dir.path(), name, &spec);
        let found = ours.lookup(name.as_bytes());
        assert_eq!(found, theirs, "{name}: {said}");
        assert_eq!(found.is_some(), dynamic.contains(name), "{name}: {found:?}");
    }
}

/// `postmap -q KEY SPEC` with the main.cf in `config`: the value (None
/// when not found) and what postmap said on stderr.
fn postmap_query(config: &std::path::Path, key: &str, spec: &str) -> (Option<String>, String) {
    let out = Command::new("/usr/sbin/postmap")
        .arg("-c")
        .arg(config)
        .args(["-q", key, spec])
        .output()
        .unwrap();
    let value = out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_owned());
    (value, String::from_utf8_lossy(&out.stderr).into_owned())
}
