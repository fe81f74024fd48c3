//! Sender authentication against independent implementations and the
//! RFCs' cases, through real sockets and the test's DNS server:
//!
//! - DKIM both ways with dkimpy (Debian's python3-dkim): its signatures —
//!   rsa-sha256 and ed25519-sha256, simple and relaxed canonicalization,
//!   `l=` — at mtad beside dkimpy's own verdict, broken ones (an altered
//!   body or signed header, whitespace under `simple`) too; mtad's
//!   signatures verify in dkimpy. Where mtad (mail-auth) and dkimpy
//!   differ, the case says why.
//! - SPF (RFC 7208): each mechanism and qualifier of the RFC's §5 and
//!   Appendix A examples, macros, and the permanent errors of §4.
//!
//! The RFC 7208 test suite (pyspf's YAML) and the RFC 8463 example
//! message are not on this machine; the cases here are written from the
//! RFCs' text.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::Site;
use common::dns::DnsServer;

/// Debian's Python, which has python3-dkim (the tests' own `python3` may
/// be another).
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

fn dkimpy(args: &[&str], stdin: &[u8]) -> (bool, Vec<u8>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/dkimpy.py");
    let mut child = Command::new(DEBIAN_PYTHON)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Debian's python3 with python3-dkim (apt-get install python3-dkim)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Traceback"), "dkimpy.py {args:?}: {stderr}");
    (out.status.success(), out.stdout)
}

/// A zone's TXT record, in strings of at most 255 bytes.
fn txt(name: &str, text: &str) -> String {
    let strings: Vec<String> = text
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("{name} IN TXT {}\n", strings.join(" "))
}

/// An empty zone (its names are NXDOMAIN, as DMARC's tree walk expects).
fn empty(origin: &str) -> String {
    format!(
        "$ORIGIN {origin}.\n$TTL 60\n@ IN SOA ns.{origin}. h.{origin}. 1 3600 600 86400 60\n@ IN NS ns.{origin}.\nns IN A 127.0.0.1\n"
    )
}

/// Sends `message` from `client` as `from` to alice; the DATA reply.
fn send(site: &Site, client: &str, from: &str, message: &str) -> String {
    common::tables::send(
        site,
        client,
        "mail.example.org",
        from,
        "alice@example.jp",
        message.trim_end_matches("\r\n"),
    )
}

/// The Authentication-Results field of alice's `n`th message.
fn results(site: &Site, n: usize) -> String {
    let delivered = String::from_utf8(site.wait_for_messages("alice", n + 1).remove(n)).unwrap();
    let mut lines = delivered.lines();
    let mut field = lines
        .find(|l| l.starts_with("Authentication-Results:"))
        .unwrap_or_else(|| panic!("no Authentication-Results in {delivered}"))
        .to_owned();
    for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        field.push_str(l);
    }
    field
}

#[test]
fn dkim_signatures_of_dkimpy_verify_at_mtad() {
    let keys = tempfile::tempdir().unwrap();
    let rsa = keys.path().join("rsa.pem");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&rsa)
        .output()
        .unwrap();
    assert!(made.status.success());
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&rsa)
        .output()
        .unwrap();
    let rsa_public = daemon::auth::base64_encode(&public.stdout);
    let (ok, ed_public) = dkimpy(&["keys", &keys.path().display().to_string()], b"");
    assert!(ok);
    let ed_public = String::from_utf8(ed_public).unwrap().trim().to_owned();
    let zone = format!(
        "{}{}{}",
        empty("example.org"),
        txt("rsa._domainkey", &format!("v=DKIM1; k=rsa; p={rsa_public}")),
        txt("ed._domainkey", &format!("v=DKIM1; k=ed25519; p={ed_public}")),
    );
    let records = keys.path().join("records.json");
    std::fs::write(
        &records,
        serde_json::json!({
            "rsa._domainkey.example.org": format!("v=DKIM1; k=rsa; p={rsa_public}"),
            "ed._domainkey.example.org": format!("v=DKIM1; k=ed25519; p={ed_public}"),
        })
        .to_string(),
    )
    .unwrap();
    let records = records.display().to_string();
    let dns = DnsServer::serving(&[&zone, &empty("org")]);
    let site = Site::start(&format!("resolver = \"{}\"\nsender_auth = true\n", dns.addr));
    let message = "From: Carol <carol@example.org>\r\nTo: alice@example.jp\r\nSubject: signed by dkimpy\r\n\
                   Message-ID: <{n}@example.org>\r\n\r\nThe body, signed.\r\nA second line.\r\n";
    let ed_key = keys.path().join("ed.key").display().to_string();
    let rsa_key = rsa.display().to_string();
    // (algorithm, key, selector, canonicalization, l=, what is done to
    // the signed message, dkimpy's verdict on it, mtad's)
    type Change = dyn Fn(String) -> String;
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, bool, &'a Change, bool, &'a str);
    let same: &Change = &|m| m;
    #[rustfmt::skip]
    let cases: [Case; 9] = [
        ("rsa-sha256", &rsa_key, "rsa", "relaxed/relaxed", false, same, true, "dkim=pass"),
        // simple header canonicalization hashes the header bytes as sent:
        // mtad verifies the CRLF form, not the queue's LF one (on which
        // every such signature of dkimpy's failed)
        ("rsa-sha256", &rsa_key, "rsa", "simple/simple", false, same, true, "dkim=pass"),
        ("ed25519-sha256", &ed_key, "ed", "relaxed/simple", false, same, true, "dkim=pass"),
        ("ed25519-sha256", &ed_key, "ed", "simple/relaxed", false, same, true, "dkim=pass"),
        // a changed word in the body: RFC 6376's PERMFAIL, which mail-auth
        // words as Gmail does, "neutral (body hash did not verify)"
        ("rsa-sha256", &rsa_key, "rsa", "relaxed/relaxed", false, &|m| m.replace("second", "third"), false,
         "dkim=neutral (body hash did not verify)"),
        // a signed header changed
        ("ed25519-sha256", &ed_key, "ed", "relaxed/relaxed", false, &|m| m.replace("signed by dkimpy", "signed by someone"), false,
         "dkim=fail"),
        // spaces inside a line: relaxed forgives them, simple does not
        ("rsa-sha256", &rsa_key, "rsa", "relaxed/relaxed", false, &|m| m.replace("The body,", "The  body, "), true, "dkim=pass"),
        ("rsa-sha256", &rsa_key, "rsa", "relaxed/simple", false, &|m| m.replace("The body,", "The  body, "), false,
         "dkim=neutral (body hash did not verify)"),
        // l=: text appended after the signed length. dkimpy verifies it
        // (RFC 6376 §3.5 allows it); mail-auth will not vouch for a body
        // partly unsigned, and says so — the safer reading, kept
        ("rsa-sha256", &rsa_key, "rsa", "relaxed/relaxed", true, &|m| format!("{m}An appended line.\r\n"), true,
         "dkim=neutral (signature length ignored"),
    ];
    let mut wrong = Vec::new();
    for (n, (alg, key, selector, canon, length, change, dkimpy_says, verdict)) in cases.iter().enumerate() {
        let mut args = vec!["sign", alg, key, "example.org", selector, canon];
        if *length {
            args.push("length");
        }
        let (ok, signed) = dkimpy(&args, message.replace("{n}", &n.to_string()).as_bytes());
        assert!(ok, "dkimpy signs {args:?}");
        let signed = change(String::from_utf8(signed).unwrap());
        // dkimpy's own verdict on what it signed, as changed
        let (theirs, _) = dkimpy(&["verify", &records], signed.as_bytes());
        assert!(send(&site, "127.0.0.9", "carol@example.org", &signed).starts_with("250"));
        let field = results(&site, n);
        if !field.contains(verdict) || theirs != *dkimpy_says {
            wrong.push(format!(
                "case {n} {alg} {canon}: want {verdict} (dkimpy {dkimpy_says}, said {theirs}), got {field}"
            ));
            continue;
        }
        // a signature mtad weighed names its signer
        if !verdict.contains("signature length ignored") {
            assert!(field.contains("header.i=@example.org"), "{field}");
        }
        if verdict == &"dkim=pass" {
            assert!(field.contains(&format!("header.s={selector}")), "{field}");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn dkim_signatures_of_mtad_verify_in_dkimpy() {
    let keys = tempfile::tempdir().unwrap();
    let (printed, dkim_keys) = common::keygen_both(keys.path());
    let records: serde_json::Map<String, serde_json::Value> = printed
        .into_iter()
        .map(|(line, record)| {
            (
                line.split(' ').next().unwrap().trim_end_matches('.').to_owned(),
                record.into(),
            )
        })
        .collect();
    let record_file = keys.path().join("records.json");
    std::fs::write(&record_file, serde_json::Value::Object(records).to_string()).unwrap();
    let site = Site::start(&format!("dkim_keys = {dkim_keys}\n"));
    let reply = common::tables::send(
        &site,
        "127.0.0.1",
        "client.example.jp",
        "bob@example.jp",
        "alice@example.jp",
        "From: Bob <bob@example.jp>\r\nTo: alice@example.jp\r\nSubject: signed by mtad\r\nMessage-ID: <m1@example.jp>\r\n\r\nA body,\r\nsigned at the site.",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let delivered = String::from_utf8(site.wait_for_messages("alice", 1).remove(0)).unwrap();
    let wire = delivered.replace("\r\n", "\n").replace('\n', "\r\n");
    let file = record_file.display().to_string();
    let (ok, said) = dkimpy(&["verify", &file], wire.as_bytes());
    let said: serde_json::Value = serde_json::from_slice(&said).unwrap();
    assert!(ok, "dkimpy verifies both: {said}\n{delivered}");
    assert_eq!(said, serde_json::json!({"signatures": 2, "verified": [true, true]}));
    // and says no to an altered copy
    let (ok, said) = dkimpy(
        &["verify", &file],
        wire.replace("signed at the site", "signed elsewhere").as_bytes(),
    );
    let said: serde_json::Value = serde_json::from_slice(&said).unwrap();
    assert!(!ok);
    assert_eq!(said, serde_json::json!({"signatures": 2, "verified": [false, false]}));
}

/// RFC 7208's mechanisms and qualifiers, its Appendix A examples moved
/// from 192.0.2.0/24 to 127.0.0.0/24 (the test's clients), macros, and
/// its permanent errors: the `spf=` of smtp.mailfrom in mtad's
/// Authentication-Results for each client and sender domain.
#[test]
fn spf_as_rfc_7208_words_it() {
    let zone = "$ORIGIN test.\n$TTL 60\n@ IN SOA ns.test. h.test. 1 3600 600 86400 60\n@ IN NS ns.test.\nns IN A 127.0.0.1\n\
        all IN TXT \"v=spf1 +all\"\n\
        a IN A 127.0.0.10\na IN TXT \"v=spf1 a -all\"\n\
        a-other IN TXT \"v=spf1 a:a.test -all\"\n\
        a-cidr IN TXT \"v=spf1 a:a.test/30 -all\"\n\
        mx IN MX 10 mail-a.mx.test.\nmx IN MX 20 mail-b.mx.test.\nmail-a.mx IN A 127.0.0.21\nmail-b.mx IN A 127.0.0.22\n\
        mx IN TXT \"v=spf1 mx -all\"\n\
        ip4 IN TXT \"v=spf1 ip4:127.0.0.32/30 -all\"\n\
        include IN TXT \"v=spf1 include:a.test -all\"\n\
        redirect IN TXT \"v=spf1 redirect=a.test\"\n\
        soft IN TXT \"v=spf1 ~all\"\n\
        neutral IN TXT \"v=spf1 ?all\"\n\
        exists IN TXT \"v=spf1 exists:%{i}.ok.exists.test -all\"\n127.0.0.40.ok.exists IN A 127.0.0.2\n\
        bad-syntax IN TXT \"v=spf1 ip4:127.0.0.300 -all\"\n\
        two IN TXT \"v=spf1 +all\"\ntwo IN TXT \"v=spf1 -all\"\n\
        include-none IN TXT \"v=spf1 include:nothing-here.test -all\"\n\
        unknown-mechanism IN TXT \"v=spf1 frobnicate -all\"\n\
        other IN TXT \"not spf at all\"\n";
    let dns = DnsServer::serving(&[zone]);
    let site = Site::start(&format!("resolver = \"{}\"\nsender_auth = true\n", dns.addr));
    let cases = [
        ("127.0.0.9", "all", "pass"),
        ("127.0.0.10", "a", "pass"),
        ("127.0.0.11", "a", "fail"),
        ("127.0.0.10", "a-other", "pass"),
        ("127.0.0.11", "a-cidr", "pass"),
        ("127.0.0.14", "a-cidr", "fail"),
        ("127.0.0.21", "mx", "pass"),
        ("127.0.0.22", "mx", "pass"),
        ("127.0.0.23", "mx", "fail"),
        ("127.0.0.33", "ip4", "pass"),
        ("127.0.0.36", "ip4", "fail"),
        ("127.0.0.10", "include", "pass"),
        ("127.0.0.11", "include", "fail"),
        ("127.0.0.10", "redirect", "pass"),
        ("127.0.0.11", "redirect", "fail"),
        ("127.0.0.9", "soft", "softfail"),
        ("127.0.0.9", "neutral", "neutral"),
        ("127.0.0.40", "exists", "pass"),
        ("127.0.0.41", "exists", "fail"),
        ("127.0.0.9", "bad-syntax", "permerror"),
        ("127.0.0.9", "two", "permerror"),
        ("127.0.0.9", "include-none", "permerror"),
        ("127.0.0.9", "unknown-mechanism", "permerror"),
        ("127.0.0.9", "other", "none"),
        ("127.0.0.9", "no-such-domain", "none"),
    ];
    let mut wrong = Vec::new();
    for (n, (client, domain, verdict)) in cases.iter().enumerate() {
        let from = format!("sender@{domain}.test");
        let reply = send(
            &site,
            client,
            &from,
            &format!("From: {from}\r\nSubject: spf case {n}\r\n\r\nhello"),
        );
        assert!(reply.starts_with("250"), "{domain} from {client}: {reply}");
        let field = results(&site, n);
        let spf = field
            .split(';')
            .find(|r| r.contains(&format!("smtp.mailfrom={from}")))
            .unwrap_or_else(|| panic!("no spf for {from} in {field}"));
        if !spf.trim_start().starts_with(&format!("spf={verdict} ")) {
            wrong.push(format!("{domain} from {client}: want spf={verdict}, got {spf}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
