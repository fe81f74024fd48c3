//! A scripted day at a real site: mtad (delivering through lda's code,
//! filtering with each user's trained tokens) and imapd started as
//! programs, a DNS list served by a DNS server the test starts, Python's
//! smtplib, imaplib and poplib as the clients (`py/day.py`) — then
//! `mailkit report` over the logs the programs wrote must count exactly
//! what the script did.

#[path = "../../mta/tests/common/dns.rs"]
mod dns;

mod common;

use std::path::Path;

use common::{port, program, start, wait_for};
const EICAR: &str = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// Each user's filter trained on a few messages of each kind (as
/// `bsfilter --add-spam` / `--add-clean` would).
fn train(home: &Path) {
    use bsfilter::store::{Action, Class};
    let filter = bsfilter::Filter::new(bsfilter::FilterConfig::new(home.join(".bsfilter")));
    let mut store = filter.open_user_db().unwrap();
    let spam = |n: usize| {
        format!(
            "Subject: Cheap pills {n}\r\n\r\nBuy cheap pills now! Limited offer, click http://cheap-pills.example/buy?n={n} discount.\r\n"
        )
    };
    let ham = |n: usize| {
        format!(
            "Subject: Project {n}\r\n\r\nHi, the project review moved to Thursday; bring the quarterly report {n}.\r\n"
        )
    };
    for (make, class) in [(&spam as &dyn Fn(usize) -> String, Class::Spam), (&ham, Class::Clean)] {
        let analyzed: Vec<bsfilter::Analyzed> = (0..20).map(|i| filter.analyze(make(i).as_bytes(), None)).collect();
        filter
            .train(&mut store, &analyzed.iter().collect::<Vec<_>>(), Action::Add(class))
            .unwrap();
    }
}

#[test]
fn a_scripted_day_is_counted_exactly() {
    let (mtad, imapd) = (program("mtad"), program("imapd"));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (cert, key) = e2e_tests::certificate(root, "localhost");
    let (uid, gid) = (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw());
    let mut passwd = String::new();
    for (name, password) in [("alice", "secret"), ("bob", "hunter2")] {
        let home = root.join(name);
        std::fs::create_dir_all(&home).unwrap();
        train(&home);
        passwd.push_str(&format!(
            "{name}:{{PLAIN}}{password}:{uid}:{gid}::{}::\n",
            home.display()
        ));
    }
    std::fs::write(root.join("passwd"), passwd).unwrap();
    std::fs::write(root.join("client.cidr"), "127.0.0.3/32 REJECT\n").unwrap();
    std::fs::write(
        root.join("header_checks"),
        "/^Subject: .*forbidden/ REJECT no forbidden words\n",
    )
    .unwrap();
    // 127.0.0.4 is on the DNS list
    let dns = dns::DnsServer::start(
        "$ORIGIN bl.test.\n@ 3600 IN SOA ns.bl.test. root.bl.test. 1 3600 600 86400 60\n\
         4.0.0.127 60 IN A 127.0.0.2\n4.0.0.127 60 IN TXT \"listed for the test\"\n",
    );
    let config = root.join("mailkit.toml");
    std::fs::write(
        &config,
        format!(
            "[users]\npasswd_file = \"{root}/passwd\"\nsystem_users = false\n\
             [mailbox]\ninbox = \"~/mail/inbox\"\nfolders = \"~/mail\"\n\
             [mtad]\nhostname = \"mx.example.jp\"\nlocal_domains = [\"example.jp\"]\nlisten = [\"127.0.0.1:0\"]\n\
             tls_cert = \"{cert}\"\ntls_key = \"{key}\"\nqueue_dir = \"{root}/queue\"\nmynetworks = [\"127.0.0.1/32\"]\n\
             resolver = \"{dns}\"\ncheck_client_access = [\"cidr:{root}/client.cidr\"]\nreject_rbl_client = [\"bl.test\"]\n\
             header_checks = [\"regexp:{root}/header_checks\"]\nvirus_scanner = \"builtin\"\nvirus_action = \"reject\"\n\
             [imapd]\nlisten = [\"127.0.0.1:0\"]\npop3_listen = [\"127.0.0.1:0\"]\nplaintext_auth = \"always\"\n",
            root = root.display(),
            cert = cert.display(),
            key = key.display(),
            dns = dns.addr,
        ),
    )
    .unwrap();
    let (mtad_log, imapd_log) = (root.join("mtad.log"), root.join("imapd.log"));
    let _mtad = start(&mtad, &config, &mtad_log);
    let _imapd = start(&imapd, &config, &imapd_log);
    let smtp = port(&wait_for(&mtad_log, " ready", 1), "Smtp");
    let started = wait_for(&imapd_log, " on 127.0.0.1:", 2);
    let (imap, pop3) = (port(&started, "Imap"), port(&started, "Pop3"));

    let sent = common::python("day.py", &["send", &smtp.to_string(), EICAR]);
    for accepted in ["small", "medium", "large", "outside"] {
        assert_eq!(sent[accepted], 250, "{accepted}: {sent}");
    }
    for refused in ["relay", "unknown", "access", "dnsbl", "rule", "virus"] {
        let code = sent[refused].as_u64().unwrap_or(0);
        assert!((500..600).contains(&code), "{refused}: {sent}");
    }
    wait_for(&mtad_log, "event=\"delivered\"", 4);
    let read = common::python("day.py", &["read", &imap.to_string(), &pop3.to_string()]);
    // alice's INBOX holds her two clean messages (the pill offer is in Spam)
    assert_eq!(read["imap_inside"], serde_json::json!([2, 2]), "{read}");
    assert_eq!(read["pop3_outside"], 1, "{read}");
    wait_for(&imapd_log, "event=\"login\"", 4);

    let report = common::report(&config, &[&mtad_log, &imapd_log], "alice");
    let totals = &report["totals"];
    let n = |k: &str| totals[k].as_u64().unwrap();
    let log = std::fs::read_to_string(&mtad_log).unwrap();
    assert_eq!(n("received"), 4, "{log}");
    for (cause, count) in [
        ("relay_denied", 1),
        ("unknown_user", 1),
        ("access", 1),
        ("dnsbl", 1),
        ("rules", 1),
        ("virus", 1),
        ("other", 0),
    ] {
        assert_eq!(common::refused(&report, cause), count, "{cause}: {totals}\n{log}");
    }
    assert_eq!(n("refused"), 6);
    assert_eq!(report["dnsbl_lists"], serde_json::json!([["bl.test", 1]]));
    assert_eq!(n("viruses"), 1);
    assert_eq!(report["virus_names"][0][0], "Eicar-Test-Signature");
    // alice: three, the pill offer spam; bob: one
    assert_eq!(
        (n("delivered"), n("spam"), n("user_delivered"), n("user_spam")),
        (4, 1, 3, 1),
        "{log}"
    );
    // inside is mtad's mynetworks (127.0.0.1/32), read from the file
    assert_eq!(
        (n("imap_inside"), n("imap_outside"), n("pop_inside"), n("pop_outside")),
        (2, 1, 0, 1)
    );
    let sizes: Vec<u64> = report["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["count"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [1, 2, 1, 0, 0, 0]);
    assert_eq!(report["lines"]["not_understood"], 0, "{}", report["lines"]);
}
