//! The filter chain over real sockets: access tables (the seed site's
//! entries among ours), DNS lists served by a real DNS server the test
//! starts, and the seed's Subject rules verbatim, each client connecting
//! from its own loopback address (127.0.0.1 alone is mynetworks, so the
//! others are strangers). Replies are Postfix's, word for word.

mod common;

use common::Site;
use common::dns::DnsServer;
use common::tables::{Tables, data, send};

const LISTS: &str = "\
$ORIGIN test.
$TTL 60
@                          IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60
@                          IN NS  ns.test.
ns                         IN A   127.0.0.1
2.0.0.127.bl               IN A   127.0.0.2
2.0.0.127.bl               IN TXT \"listed for testing\"
5.0.0.127.bl               IN A   127.0.0.2
10.0.0.127.bl              IN A   127.0.0.9
11.0.0.127.any             IN A   127.0.0.4
spam-sender.example.dbl    IN A   127.0.1.2
";

/// The site with the test's tables and DNS lists, and the tables.
fn site(dns: &DnsServer) -> (Site, Tables) {
    let tables = Tables::write();
    let site = Site::start(&format!(
        "resolver = \"{}\"\n{}reject_rbl_client = [\"bl.test=127.0.0.2\", \"any.test\"]\n\
         reject_rhsbl_sender = [\"dbl.test\"]\n",
        dns.addr,
        tables.mtad_keys()
    ));
    (site, tables)
}

#[test]
fn access_tables_and_dns_lists_as_postfix() {
    let dns = DnsServer::start(LISTS);
    let (site, _tables) = site(&dns);
    let ok = |client: &str, from: &str| {
        let (reply, _) = rcpt(&site, client, "client.example.org", from, "alice@example.jp");
        reply
    };
    // client tables: cidr first, then the hash table
    assert_eq!(
        ok("127.0.0.3", "a@example.org"),
        "554 5.7.1 <localhost[127.0.0.3]>: Client host rejected: Access denied"
    );
    assert_eq!(
        ok("127.0.0.4", "a@example.org"),
        "450 4.7.1 <localhost[127.0.0.4]>: Client host rejected: come back later"
    );
    // a block list, its TXT in the reply; the answer filter; a list without one
    assert_eq!(
        ok("127.0.0.2", "a@example.org"),
        "554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using bl.test; listed for testing"
    );
    assert!(
        ok("127.0.0.10", "a@example.org").starts_with("250"),
        "127.0.0.9 is not the answer bl.test lists with"
    );
    assert_eq!(
        ok("127.0.0.11", "a@example.org"),
        "554 5.7.1 Service unavailable; Client host [127.0.0.11] blocked using any.test"
    );
    // OK in an access table beats the list that names the client
    assert!(ok("127.0.0.5", "a@example.org").starts_with("250"));
    // the sender's domain on a domain list
    assert_eq!(
        ok("127.0.0.9", "x@spam-sender.example"),
        "554 5.7.1 Service unavailable; Sender address [spam-sender.example] blocked using dbl.test"
    );
    // sender table: the full address before the domain, parents, user@
    assert!(ok("127.0.0.9", "friend@spammer.example").starts_with("250"));
    assert_eq!(
        ok("127.0.0.9", "x@mail.spammer.example"),
        "554 5.7.1 <x@mail.spammer.example>: Sender address rejected: Access denied"
    );
    assert_eq!(
        ok("127.0.0.9", "info@elsewhere.example"),
        "550 5.7.1 <info@elsewhere.example>: Sender address rejected: no info senders"
    );
    // HELO table with parent domains
    let (reply, _) = rcpt(
        &site,
        "127.0.0.9",
        "x.bad.helo.example",
        "a@example.org",
        "alice@example.jp",
    );
    assert_eq!(reply, "554 5.7.1 <x.bad.helo.example>: Helo command rejected: go away");
    // mynetworks is not asked
    let (reply, _) = rcpt(
        &site,
        "127.0.0.1",
        "x.bad.helo.example",
        "x@spammer.example",
        "alice@example.jp",
    );
    assert!(reply.starts_with("250"), "{reply}");

    // what was refused for alice, from the log, as a user would ask
    let refused = std::process::Command::new(common::MTAD)
        .args(["refused", "--recipient", "Alice@example.jp"])
        .arg(site.dir.path().join("mtad.log"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(0), "{listed}");
    assert_eq!(listed.lines().count(), 8, "every refusal above: {listed}");
    assert!(
        listed.lines().any(|l| l.contains("127.0.0.3  from=<a@example.org>  check_client_access  554 5.7.1 <localhost[127.0.0.3]>: Client host rejected: Access denied")),
        "{listed}"
    );
    let none = std::process::Command::new(common::MTAD)
        .args(["refused", "--recipient", "carol@example.jp", "--since", "2026-01-01"])
        .arg(site.dir.path().join("mtad.log"))
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1), "none refused: exit 1");

    // each refusal logged with its cause
    let log = site.log();
    for cause in [
        "check_client_access",
        "dnsbl:",
        "check_sender_access",
        "check_helo_access",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("event=\"reject\"") && l.contains(&format!("cause=\"{cause}"))),
            "{cause}:\n{log}"
        );
    }
}

#[test]
fn actions_that_let_the_message_in() {
    let dns = DnsServer::start(LISTS);
    let (site, _tables) = site(&dns);
    // PREPEND from a network entry; DUNNO stops the search at the address
    for (client, subject) in [("127.0.0.9", "prepended"), ("127.0.0.8", "dunno")] {
        let (reply, mut c) = rcpt(&site, client, "client.example.org", "a@example.org", "alice@example.jp");
        assert!(reply.starts_with("250"), "{reply}");
        let reply = data(&mut c, &format!("Subject: {subject}\r\nX-Strip: secret\r\n\r\nbody"));
        assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    }
    // REDIRECT: bob's mail goes to alice
    let (reply, mut c) = rcpt(
        &site,
        "127.0.0.9",
        "client.example.org",
        "a@example.org",
        "bob@example.jp",
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(data(&mut c, "Subject: redirected\r\n\r\nbody").starts_with("250"));
    // DISCARD: taken, never delivered (client table, then a body rule)
    let (reply, mut c) = rcpt(
        &site,
        "127.0.0.6",
        "client.example.org",
        "a@example.org",
        "alice@example.jp",
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(data(&mut c, "Subject: discarded\r\n\r\nbody").starts_with("250 2.0.0 Ok: queued as"));
    let (_, mut c) = rcpt(
        &site,
        "127.0.0.9",
        "client.example.org",
        "a@example.org",
        "alice@example.jp",
    );
    assert!(data(&mut c, "Subject: body discarded\r\n\r\nhello\r\nviagra now\r\nbye").starts_with("250"));
    // HOLD: kept in the queue
    let (_, mut c) = rcpt(
        &site,
        "127.0.0.7",
        "client.example.org",
        "a@example.org",
        "alice@example.jp",
    );
    let held = data(&mut c, "Subject: client held\r\n\r\nbody");
    let (_, mut c) = rcpt(
        &site,
        "127.0.0.9",
        "client.example.org",
        "a@example.org",
        "alice@example.jp",
    );
    let held_by_rule = data(&mut c, "Subject: held by a rule\r\n\r\nbody");

    let messages = site.wait_for_messages("alice", 3);
    let texts: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let find = |subject: &str| {
        texts
            .iter()
            .find(|t| t.contains(&format!("Subject: {subject}\n")))
            .unwrap_or_else(|| panic!("no {subject:?} among {texts:#?}"))
    };
    assert!(find("prepended").contains("\nX-Net: loopback\n"));
    assert!(
        !find("dunno").contains("X-Net:"),
        "DUNNO: the network entry is not tried"
    );
    assert!(!find("prepended").contains("X-Strip"), "IGNORE removed the header");
    assert!(find("redirected").contains("for <alice@example.jp>"));
    assert!(site.messages("bob", "INBOX").is_empty());
    let (_, listed) = site.queue_tool(&["list"]);
    for reply in [&held, &held_by_rule] {
        let id = reply.rsplit(' ').next().unwrap();
        assert!(
            listed.lines().any(|l| l.starts_with(id) && l.ends_with(" HELD")),
            "{id} held:\n{listed}"
        );
    }
    assert_eq!(texts.len(), 3, "nothing discarded or held was delivered: {texts:#?}");
    site.wait_for_log("event=\"discard\"");
}

#[test]
fn the_seeds_subject_rules_refuse_at_the_end_of_data() {
    let dns = DnsServer::start(LISTS);
    let (site, _tables) = site(&dns);
    for subject in [
        "Make Money Fast",
        "cheap V1agra",
        "V-I-A-G-R-A",
        "inkjet cartridges",
        "improve your sex life",
        "lose fat gain\r\n\tmuscle",
    ] {
        let (_, mut c) = rcpt(
            &site,
            "127.0.0.9",
            "client.example.org",
            "a@example.org",
            "alice@example.jp",
        );
        let reply = data(&mut c, &format!("Subject: {subject}\r\n\r\nbody"));
        assert_eq!(reply, "550 5.7.1 message content rejected", "{subject}");
        // the connection goes on
        assert!(c.command("RSET").starts_with("250"));
    }
    let (_, mut c) = rcpt(
        &site,
        "127.0.0.9",
        "client.example.org",
        "a@example.org",
        "alice@example.jp",
    );
    assert_eq!(data(&mut c, "Subject: deferred\r\n\r\nbody"), "451 4.7.0 not today");
    // the fullwidth rule as written (case-sensitive by its i flag)
    let (_, mut c) = rcpt(
        &site,
        "127.0.0.9",
        "client.example.org",
        "a@example.org",
        "alice@example.jp",
    );
    assert_eq!(
        data(&mut c, "Subject: F￥-R￥-E￥-E\r\n\r\nbody"),
        "550 5.7.1 message content rejected"
    );
    let (_, mut c) = rcpt(
        &site,
        "127.0.0.9",
        "client.example.org",
        "a@example.org",
        "alice@example.jp",
    );
    assert!(data(&mut c, "Subject: f￥-r￥-e￥-e\r\n\r\nbody").starts_with("250"));
    let reject = site.wait_for_log("cause=\"content_checks\"");
    assert!(reject.contains("message content rejected"), "{reject}");
}

#[test]
fn a_table_with_a_mistake_stops_the_start_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("header_checks");
    std::fs::write(&table, "/^Subject: ok/ DUNNO\n/^Subject: (a/ REJECT\n").unwrap();
    let (code, said) = failed_start(&format!("header_checks = [\"regexp:{}\"]\n", table.display()));
    assert_eq!(code, Some(78), "{said}");
    // and --check-config says so before a start
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailkit.toml");
    std::fs::write(
        &config,
        format!("[mtad]\nheader_checks = [\"regexp:{}\"]\n", table.display()),
    )
    .unwrap();
    let out = std::process::Command::new(common::MTAD)
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains(":2: bad pattern"));
    assert!(
        said.contains(&format!("header_checks: {}:2: bad pattern", table.display())),
        "{said}"
    );
}

/// From `client` to the site: EHLO `helo`, MAIL, RCPT.
fn rcpt(site: &Site, client: &str, helo: &str, from: &str, to: &str) -> (String, common::Raw) {
    common::tables::rcpt(("127.0.0.1", site.port), client, helo, from, to)
}

fn spam(n: usize) -> String {
    format!(
        "From: Deals <promo{n}@cheap-pills.example>\r\nSubject: Cheap pills offer {n}\r\n\r\n\
         Buy cheap pills now! Limited offer, click http://cheap-pills.example/buy?id={n} and get a viagra discount.\r\n"
    )
}

fn ham(n: usize) -> String {
    format!(
        "From: Carol <carol@work.example>\r\nSubject: Project meeting {n}\r\n\r\n\
         Hi Bob, the project review is moved to Thursday. Please bring the quarterly report and the budget figures.\r\n"
    )
}

#[test]
fn the_site_wide_score_adds_its_verdict_and_can_refuse() {
    use bsfilter::store::{Action, Class};
    // the site's database, trained as an administrator trains it
    let db = tempfile::tempdir().unwrap();
    let filter = bsfilter::Filter::new(bsfilter::FilterConfig::new(db.path().to_owned()));
    let mut store = filter.open_user_db().unwrap();
    for (make, class) in [(spam as fn(usize) -> String, Class::Spam), (ham, Class::Clean)] {
        let analyzed: Vec<bsfilter::Analyzed> = (0..20).map(|i| filter.analyze(make(i).as_bytes(), None)).collect();
        filter
            .train(&mut store, &analyzed.iter().collect::<Vec<_>>(), Action::Add(class))
            .unwrap();
    }
    drop(store);
    let send = |site: &Site, client: &str, message: &str| {
        let (reply, mut c) = rcpt(site, client, "client.example.org", "a@example.org", "alice@example.jp");
        assert!(reply.starts_with("250"), "{reply}");
        data(&mut c, message)
    };
    // headers only: the verdict rides along for lda and the user (held
    // here, to read it in the queue: lda replaces it when it delivers)
    // (a header rule holds every message, from mynetworks too)
    let hold = tempfile::tempdir().unwrap();
    let held = hold.path().join("header_checks");
    std::fs::write(&held, "/^Subject:/ HOLD\n").unwrap();
    let site = Site::start(&format!(
        "site_bayes_db = \"{}\"\nheader_checks = [\"regexp:{}\"]\n",
        db.path().display(),
        held.display()
    ));
    let forged = format!("X-Spam-Flag: No\r\nX-Spam-Probability: 0.000000\r\n{}", spam(100));
    for message in [forged, ham(100)] {
        assert!(send(&site, "127.0.0.9", &message).starts_with("250"));
    }
    let (_, mut c) = rcpt(
        &site,
        "127.0.0.1",
        "client.example.org",
        "a@example.org",
        "alice@example.jp",
    );
    assert!(
        data(&mut c, &spam(102)).starts_with("250"),
        "from mynetworks: not scored"
    );
    let queued: Vec<String> = std::fs::read_dir(site.dir.path().join("queue/active"))
        .unwrap()
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.unwrap().path()).unwrap()).into_owned())
        .collect();
    let fields = |subject: &str| -> Vec<String> {
        let text = queued
            .iter()
            .find(|t| t.contains(subject))
            .unwrap_or_else(|| panic!("{subject} queued"));
        text.lines()
            .filter(|l| l.starts_with("X-Spam-"))
            .map(str::to_owned)
            .collect()
    };
    let spam_fields = fields("offer 100");
    assert_eq!(spam_fields.len(), 2, "the forged fields are gone: {spam_fields:?}");
    assert_eq!(spam_fields[0], "X-Spam-Flag: Yes");
    let p: f64 = spam_fields[1]
        .strip_prefix("X-Spam-Probability: ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(p > 0.9, "{spam_fields:?}");
    assert_eq!(fields("meeting 100")[0], "X-Spam-Flag: No");
    assert!(fields("offer 102").is_empty());
    drop(site);
    // refusing above a cutoff
    let site = Site::start(&format!(
        "site_bayes_db = \"{}\"\nsite_bayes_reject_above = 0.9\n",
        db.path().display()
    ));
    let refused = send(&site, "127.0.0.9", &spam(103));
    assert!(
        refused.starts_with("550 5.7.1 message content rejected: spam (probability "),
        "{refused}"
    );
    assert!(send(&site, "127.0.0.9", &ham(103)).starts_with("250"));
    site.wait_for_log("cause=\"site_bayes\"");
    // a database that is not there stops the start
    let (code, said) = failed_start(&format!("site_bayes_db = \"{}/none\"\n", db.path().display()));
    assert_eq!(code, Some(78), "{said}");
    assert!(
        said.contains("site_bayes_db") && said.contains("no such database"),
        "{said}"
    );
}

/// mtad started with these [mtad] keys, expected to stop: its exit code
/// and what it said.
fn failed_start(keys: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailkit.toml");
    std::fs::write(
        &config,
        format!(
            "[mtad]\nlisten = [\"127.0.0.1:0\"]\nqueue_dir = \"{}\"\n{keys}",
            dir.path().join("queue").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(common::MTAD)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_refusal_can_say_where_to_ask() {
    let site =
        Site::start("reject_footer = \"see https://mail.example.jp/refused\\\\nor write to postmaster@example.jp\"\n");
    let (reply, _) = rcpt(
        &site,
        "127.0.0.9",
        "client.example.org",
        "a@example.org",
        "nobody@example.jp",
    );
    assert_eq!(
        reply,
        "550-5.1.1 <nobody@example.jp>: Recipient address rejected: User unknown in local recipient table\r\n\
         550-5.1.1 see https://mail.example.jp/refused\r\n550 5.1.1 or write to postmaster@example.jp"
    );
}

#[test]
fn greylisting_delays_the_first_attempt_only() {
    let site = Site::start("greylist = true\ngreylist_delay = 0\n");
    let attempt = |client: &str, from: &str| rcpt(&site, client, "client.example.org", from, "alice@example.jp").0;
    assert_eq!(
        attempt("127.0.0.9", "a@example.org"),
        "450 4.7.1 <alice@example.jp>: Recipient address rejected: Greylisted, try again in 0 seconds"
    );
    // the retry, from another address of the same /24
    let retry = attempt("127.0.0.10", "a@example.org");
    assert!(retry.starts_with("250"), "{retry}");
    let other = attempt("127.0.0.9", "b@example.org");
    assert!(other.starts_with("450"), "another sender waits: {other}");
    let trusted = attempt("127.0.0.1", "c@example.org");
    assert!(trusted.starts_with("250"), "mynetworks never waits: {trusted}");
    site.wait_for_log("cause=\"greylist\"");
}

/// The triplets outlive a restart (as postgrey's database does): a retry
/// after mtad was stopped and started again passes, where a forgetful
/// greylist would delay the sender once more.
#[test]
fn greylist_triplets_outlive_a_restart() {
    let mut site = Site::start("greylist = true\ngreylist_delay = 0\n");
    let attempt = |site: &Site, from: &str| rcpt(site, "127.0.0.9", "client.example.org", from, "alice@example.jp").0;
    assert!(attempt(&site, "a@example.org").starts_with("450"));
    assert!(site.terminate().success());
    let kept = std::fs::read_to_string(site.dir.path().join("queue/greylist")).unwrap();
    assert!(kept.contains(" 0 127.0.0/a@example.org/alice@example.jp\n"), "{kept:?}");
    site.spawn();
    let retry = attempt(&site, "a@example.org");
    assert!(retry.starts_with("250"), "remembered across the restart: {retry}");
    // a sender never seen still waits
    assert!(attempt(&site, "b@example.org").starts_with("450"));
}

/// The tarpit: a client a `tarpit_clients` table lists waits before the
/// greeting and before each of its HELO, MAIL and RCPT answers (four
/// waits of 1 s here), and is logged once; mail from it is still
/// accepted. A client the table does not list is not tarpitted.
#[test]
fn a_tarpitted_client_waits_before_each_answer() {
    let tables = tempfile::tempdir().unwrap();
    let table = tables.path().join("slow");
    std::fs::write(&table, "127.0.0.9 slow\n").unwrap();
    let site = Site::start(&format!(
        "tarpit_clients = [\"cidr:{}\"]\ntarpit_delay = 1\n",
        table.display()
    ));
    let start = std::time::Instant::now();
    let (reply, _) = rcpt(
        &site,
        "127.0.0.9",
        "client.example.org",
        "a@example.org",
        "alice@example.jp",
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(
        start.elapsed() >= std::time::Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    let (reply, _) = rcpt(
        &site,
        "127.0.0.10",
        "client.example.org",
        "a@example.org",
        "alice@example.jp",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let log = site.wait_for_log("event=\"tarpit\"");
    assert_eq!(log.matches("event=\"tarpit\"").count(), 1, "{log}");
    let line = log.lines().find(|l| l.contains("event=\"tarpit\"")).unwrap();
    assert!(line.contains("[127.0.0.9]"), "{line}");
}

/// `dnsbl_threshold`, postscreen's weighted score: each list that lists
/// the client adds its weight (`zone*N`, 1 without one, negative for a
/// list of good clients) and only a sum at the threshold refuses, with
/// the reply of the first list in the configured order that listed.
#[test]
fn dns_lists_scored_against_a_threshold() {
    let dns = DnsServer::start(
        "$ORIGIN test.\n$TTL 60\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n@ IN NS ns.test.\n\
         ns IN A 127.0.0.1\n\
         12.0.0.127.heavy IN A 127.0.0.2\n13.0.0.127.heavy IN A 127.0.0.2\n13.0.0.127.heavy IN TXT \"heavy says so\"\n\
         13.0.0.127.light IN A 127.0.0.2\n14.0.0.127.light IN A 127.0.0.2\n14.0.0.127.light2 IN A 127.0.0.2\n\
         14.0.0.127.good IN A 127.0.0.4\n15.0.0.127.light IN A 127.0.0.2\n15.0.0.127.light2 IN A 127.0.0.2\n\
         15.0.0.127.heavy IN A 127.0.0.2\n",
    );
    let site = Site::start(&format!(
        "resolver = \"{}\"\ndnsbl_threshold = 3\n\
         reject_rbl_client = [\"light.test\", \"heavy.test*2\", \"light2.test\", \"good.test=127.0.0.4*-2\"]\n",
        dns.addr
    ));
    let ok = |client: &str| rcpt(&site, client, "client.example.org", "a@example.org", "alice@example.jp").0;
    // one list, even of weight 2: below 3
    assert!(ok("127.0.0.12").starts_with("250"), "heavy alone");
    // 1 + 2: refused, with the reply of the first that listed in the configured order
    assert_eq!(
        ok("127.0.0.13"),
        "554 5.7.1 Service unavailable; Client host [127.0.0.13] blocked using light.test"
    );
    // 1 + 1 - 2: the good list takes it back below
    assert!(ok("127.0.0.14").starts_with("250"), "a good list's negative weight");
    // 1 + 1 + 2
    assert!(ok("127.0.0.15").starts_with("554"));
    let log = site.wait_for_log("event=\"dnsbl_score\"");
    assert!(log.contains("score=2 threshold=3 lists=heavy.test"), "{log}");
}

/// Sender authentication (`sender_auth = true`) against the test's DNS
/// server: SPF, DKIM (an ed25519 key made here, its public half published)
/// and DMARC of example.org, whose policy is p=reject. Signed mail from
/// the address SPF allows passes all three and carries one
/// Authentication-Results of ours (a forged one from outside removed);
/// unsigned mail in its name from elsewhere is refused; a domain with no
/// records passes with `none`.
#[test]
fn spf_dkim_and_dmarc_against_the_sites_dns() {
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let public = daemon::auth::base64_encode(&key.public_key());
    let zone = format!(
        "$ORIGIN example.org.\n$TTL 60\n@ IN SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 60\n\
         @ IN NS ns.example.org.\nns IN A 127.0.0.1\n\
         @ IN TXT \"v=spf1 ip4:127.0.0.9 -all\"\n\
         _dmarc IN TXT \"v=DMARC1; p=reject\"\n\
         sel._domainkey IN TXT \"v=DKIM1; k=ed25519; p={public}\"\n"
    );
    // and the zones above, where DMARC's tree walk (RFC 9989) asks for
    // `_dmarc.org` and the like: empty, so the answer is NXDOMAIN, as the
    // real ones give (a server that serves no such zone refuses, which is
    // a temporary error)
    let empty = |origin: &str| {
        format!(
            "$ORIGIN {origin}.\n$TTL 60\n@ IN SOA ns.{origin}. h.{origin}. 1 3600 600 86400 60\n@ IN NS ns.{origin}.\nns IN A 127.0.0.1\n"
        )
    };
    let (net, org, example_net, com) = (empty("net"), empty("org"), empty("example.net"), empty("com"));
    // a domain that asks for quarantine
    let example_com = format!(
        "{}@ IN TXT \"v=spf1 ip4:127.0.0.9 -all\"\n_dmarc IN TXT \"v=DMARC1; p=quarantine\"\n",
        empty("example.com")
    );
    let dns = DnsServer::serving(&[&zone, &example_net, &net, &org, &example_com, &com]);
    let site = Site::start(&format!("resolver = \"{}\"\nsender_auth = true\n", dns.addr));
    let message = "From: Carol <carol@example.org>\r\nTo: alice@example.jp\r\nSubject: signed\r\n\
                   Message-ID: <signed@example.org>\r\n\r\nThe body, signed.\r\n";
    let signature = DkimSigner::from_key(Ed25519Key::from_pkcs8_der(&pkcs8).unwrap())
        .domain("example.org")
        .selector("sel")
        .headers(["From", "To", "Subject", "Message-ID"])
        .sign(message.as_bytes())
        .unwrap();
    let forged =
        "Authentication-Results: mx.example.jp; dkim=pass header.d=bank.example\r\nX-Mailkit-Quarantine: forged\r\n";
    let signed = format!("{forged}{}{message}", signature.to_header());
    let reply = send(
        &site,
        "127.0.0.9",
        "mail.example.org",
        "carol@example.org",
        "alice@example.jp",
        signed.trim_end_matches("\r\n"),
    );
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}\n{}", site.log());
    let delivered = String::from_utf8(site.wait_for_messages("alice", 1).remove(0)).unwrap();
    let results: Vec<&str> = delivered
        .lines()
        .filter(|l| l.starts_with("Authentication-Results:"))
        .collect();
    assert_eq!(results.len(), 1, "the forged one is gone: {delivered}");
    assert!(!delivered.contains("X-Mailkit-Quarantine"), "{delivered}");
    // (mail.example.org has no SPF record of its own: the HELO's is none)
    for verdict in [
        "dkim=pass",
        "spf=none (mx.example.jp: no SPF records found for postmaster@mail.example.org) smtp.helo=mail.example.org",
        "spf=pass",
        "smtp.mailfrom=carol@example.org",
        "arc=none",
        "dmarc=pass",
        "header.d=example.org",
        "policy.dmarc=reject",
    ] {
        assert!(results[0].contains(verdict), "{verdict} in {}", results[0]);
    }
    assert!(
        results[0].starts_with("Authentication-Results: mx.example.jp;"),
        "{}",
        results[0]
    );
    // the same domain, unsigned, from an address its SPF does not allow
    let reply = send(
        &site,
        "127.0.0.10",
        "mail.example.org",
        "carol@example.org",
        "alice@example.jp",
        message.trim_end_matches("\r\n"),
    );
    assert_eq!(
        reply,
        "550 5.7.1 Message rejected: it fails the DMARC policy of example.org"
    );
    // a domain without SPF, DKIM or DMARC: none, and accepted
    let reply = send(
        &site,
        "127.0.0.10",
        "mail.example.net",
        "dave@example.net",
        "alice@example.jp",
        "From: dave@example.net\r\nSubject: plain\r\n\r\nhello",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let delivered = String::from_utf8(site.wait_for_messages("alice", 2).remove(1)).unwrap();
    assert!(
        delivered.contains("spf=none") && delivered.contains("dmarc=none"),
        "{delivered}"
    );
    // p=quarantine: taken, and filed in the recipient's Spam folder
    let reply = send(
        &site,
        "127.0.0.10",
        "mail.example.com",
        "erin@example.com",
        "alice@example.jp",
        "From: erin@example.com\r\nSubject: quarantined\r\n\r\nhello",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let start = std::time::Instant::now();
    while site.messages("alice", "Spam").is_empty() {
        assert!(start.elapsed().as_secs() < 15, "never filed in Spam: {}", site.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let spam = String::from_utf8(site.messages("alice", "Spam").remove(0)).unwrap();
    assert!(
        spam.contains("X-Mailkit-Quarantine: dmarc=fail header.from=example.com"),
        "{spam}"
    );
    assert!(spam.contains("policy.dmarc=quarantine"), "{spam}");
    assert_eq!(site.messages("alice", "INBOX").len(), 2);
    // spf_fail_reject: the SPF fail (example.com's -all) is refused itself
    let strict = Site::start(&format!(
        "resolver = \"{}\"\nsender_auth = true\nspf_fail_reject = true\n",
        dns.addr
    ));
    let reply = send(
        &strict,
        "127.0.0.10",
        "mail.example.com",
        "erin@example.com",
        "alice@example.jp",
        "From: erin@example.com\r\nSubject: spf\r\n\r\nhello",
    );
    assert_eq!(
        reply,
        "550 5.7.23 Message rejected: SPF does not allow 127.0.0.10 to send for example.com"
    );
    site.wait_for_log("event=\"sender_auth\"");
}

/// A DNS failure is never a pass: with the resolver unreachable, SPF and
/// DMARC are `temperror` and the message gets 451 (try later); with
/// `auth_tempfail = false` it is taken.
#[test]
fn sender_auth_without_dns_is_a_temporary_failure() {
    // a socket that never answers (kept bound, so no other test can take
    // its port): every lookup times out
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    for (tempfail, expected) in [("", "451 4.7.0"), ("auth_tempfail = false\n", "250 2.0.0")] {
        let site = Site::start(&format!("resolver = \"{addr}\"\nsender_auth = true\n{tempfail}"));
        let reply = send(
            &site,
            "127.0.0.9",
            "mail.example.org",
            "carol@example.org",
            "alice@example.jp",
            "From: carol@example.org\r\nSubject: s\r\n\r\nbody",
        );
        assert!(reply.starts_with(expected), "{tempfail}: {reply}");
    }
}

/// DKIM signing, end to end: `mtad dkim keygen`'s keys (ed25519 and
/// RSA-2048) sign mail from mynetworks with both signatures, and the
/// records keygen printed, published by the test's DNS server, verify
/// them at another mtad with sender authentication on: `dkim=pass` for
/// each. Mail from outside is not signed.
#[test]
fn keygen_keys_sign_and_a_receiver_verifies() {
    let keys = tempfile::tempdir().unwrap();
    let (printed, dkim_keys) = common::keygen_both(keys.path());
    let records: String = printed.iter().map(|(line, _)| format!("{line}\n")).collect();
    // never over a key that is there
    let again = mta::policy::dkim::keygen("example.jp", "mail", false, &keys.path().join("mail.pem"));
    assert!(again.is_err_and(|e| e.contains("File exists")));
    let signing = Site::start(&format!("dkim_keys = {dkim_keys}\n"));
    // from mynetworks (127.0.0.1): signed
    let reply = send(
        &signing,
        "127.0.0.1",
        "client.example.jp",
        "bob@example.jp",
        "alice@example.jp",
        "From: Bob <bob@example.jp>\r\nTo: alice@example.jp\r\nSubject: signed here\r\nMessage-ID: <s1@example.jp>\r\n\r\nA body.",
    );
    assert!(reply.starts_with("250"), "{reply}");
    // from outside: not ours to sign
    let (_, mut c) = rcpt(
        &signing,
        "127.0.0.9",
        "client.example.org",
        "x@example.org",
        "alice@example.jp",
    );
    assert!(data(&mut c, "From: Bob <bob@example.jp>\r\nSubject: forged\r\n\r\nx").starts_with("250"));
    let delivered = signing.wait_for_messages("alice", 2);
    let signed = String::from_utf8(delivered[0].clone()).unwrap();
    assert_eq!(signed.matches("DKIM-Signature:").count(), 2, "{signed}");
    assert!(
        signed.contains("a=ed25519-sha256") && signed.contains("a=rsa-sha256"),
        "{signed}"
    );
    assert!(!String::from_utf8_lossy(&delivered[1]).contains("DKIM-Signature:"));
    // the receiver: the records keygen printed, in DNS
    let zone = format!(
        "$ORIGIN example.jp.\n$TTL 60\n@ IN SOA ns.example.jp. h.example.jp. 1 3600 600 86400 60\n\
         @ IN NS ns.example.jp.\nns IN A 127.0.0.1\n{records}"
    );
    let jp = "$ORIGIN jp.\n$TTL 60\n@ IN SOA ns.jp. h.jp. 1 3600 600 86400 60\n@ IN NS ns.jp.\nns IN A 127.0.0.1\n";
    let dns = DnsServer::serving(&[&zone, jp]);
    let receiving = Site::start(&format!("resolver = \"{}\"\nsender_auth = true\n", dns.addr));
    let (reply, mut c) = rcpt(
        &receiving,
        "127.0.0.9",
        "mx.example.jp",
        "bob@example.jp",
        "alice@example.jp",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let wire = signed.replace("\r\n", "\n").replace('\n', "\r\n");
    let reply = data(&mut c, wire.trim_end_matches("\r\n"));
    assert!(reply.starts_with("250"), "{reply}\n{}", receiving.log());
    let verified = String::from_utf8(receiving.wait_for_messages("alice", 1).remove(0)).unwrap();
    let results = verified
        .lines()
        .find(|l| l.starts_with("Authentication-Results:"))
        .unwrap_or_default();
    assert_eq!(results.matches("dkim=pass").count(), 2, "{results}");
    assert!(
        results.contains("header.s=mail") && results.contains("header.s=mailrsa"),
        "{results}"
    );
}
