//! What sender authentication costs per message, in the release build:
//! DKIM signing (ed25519, RSA-2048, both, as `dkim_keys` does them) and
//! the whole inbound check (SPF for HELO and MAIL FROM, both signatures,
//! ARC, DMARC, the Authentication-Results field), through mtad's own
//! stages, against the DNS server the tests use, its answers cached after
//! the first message (as a busy server's are). Prints µs per message.
//!
//!     cargo bench -p mta --bench sender_auth

#[path = "../tests/common/dns.rs"]
#[allow(dead_code)] // (the benchmark serves several zones: `serving`)
mod dns;

use std::sync::Arc;
use std::time::Instant;

use mta::policy::{Facts, Point, Stage, Verdict};

const MESSAGES: usize = 2000;

fn message(n: usize, body_kb: usize) -> Vec<u8> {
    let line = "The quarterly figures are attached; the meeting moved to Thursday at ten.\r\n";
    format!(
        "From: Carol <carol@example.org>\r\nTo: alice@example.jp\r\nSubject: report {n}\r\n\
         Message-ID: <{n}@example.org>\r\nDate: Wed, 02 Dec 2026 10:00:00 +0900\r\n\r\n{}",
        line.repeat(body_kb * 1024 / line.len())
    )
    .into_bytes()
}

fn main() {
    let keys = tempfile::tempdir().unwrap();
    let mut records = String::new();
    let mut configs = Vec::new();
    // the records for the peer's run: (name, record)
    let mut published = serde_json::Map::new();
    for (selector, rsa) in [("ed", false), ("rsa", true)] {
        let path = keys.path().join(format!("{selector}.pem"));
        let printed = mta::policy::dkim::keygen("example.org", selector, rsa, &path).unwrap();
        let first = printed.lines().next().unwrap();
        records.push_str(first.replace(".example.org.", "").as_str());
        let (name, strings) = first.split_once(" IN TXT ").unwrap();
        let record: String = strings.split('"').skip(1).step_by(2).collect();
        published.insert(name.trim_end_matches('.').to_owned(), record.into());
        records.push('\n');
        configs.push(mta::policy::dkim::KeyConfig {
            domain: "example.org".into(),
            selector: selector.into(),
            key: path,
        });
    }
    let zone = format!(
        "$ORIGIN example.org.\n$TTL 3600\n@ IN SOA ns.example.org. h.example.org. 1 3600 600 86400 3600\n\
         @ IN NS ns.example.org.\nns IN A 127.0.0.1\nmail IN A 127.0.0.9\n\
         @ IN TXT \"v=spf1 ip4:127.0.0.9 -all\"\nmail IN TXT \"v=spf1 a -all\"\n\
         _dmarc IN TXT \"v=DMARC1; p=reject\"\n{records}"
    );
    let org =
        "$ORIGIN org.\n$TTL 3600\n@ IN SOA ns.org. h.org. 1 3600 600 86400 3600\n@ IN NS ns.org.\nns IN A 127.0.0.1\n";
    let server = dns::DnsServer::serving(&[&zone, org]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resolver = mta::dns::Dns::new(Some(server.addr)).unwrap();
    println!("| what | message | µs per message |\n|---|---|---|");
    for body_kb in [2, 20] {
        let messages: Vec<Vec<u8>> = (0..MESSAGES).map(|n| message(n, body_kb)).collect();
        let mut signed = Vec::new();
        for (what, keys) in [
            ("sign, ed25519", &configs[..1]),
            ("sign, RSA-2048", &configs[1..]),
            ("sign, both", &configs[..]),
        ] {
            let signer = mta::policy::dkim::DkimSign::new(keys).unwrap();
            let start = Instant::now();
            for m in &messages {
                let facts = Facts {
                    trusted: true,
                    message: Some(Arc::new(m.clone())),
                    ..Facts::default()
                };
                let Verdict::AddHeaders(fields) = runtime.block_on(signer.check(Point::Data, &facts)) else {
                    panic!("not signed");
                };
                if keys.len() == 2 {
                    let mut whole = fields.join("\r\n").into_bytes();
                    whole.extend_from_slice(b"\r\n");
                    whole.extend_from_slice(m);
                    signed.push(whole);
                }
            }
            row(what, body_kb, start);
        }
        let auth = mta::policy::auth::SenderAuth::new(&resolver, "mx.example.jp");
        let check = |m: &Vec<u8>| {
            let facts = Facts {
                client_addr: Some("127.0.0.9".parse().unwrap()),
                helo: "mail.example.org".into(),
                sender: Some("carol@example.org".into()),
                message: Some(Arc::new(m.clone())),
                ..Facts::default()
            };
            runtime.block_on(auth.check(Point::Data, &facts))
        };
        // the first fills the resolver's cache
        let first = format!("{:?}", check(&signed[0]));
        assert_eq!(first.matches("dkim=pass").count(), 2, "{first}");
        assert!(first.contains("spf=pass") && first.contains("dmarc=pass"), "{first}");
        let start = Instant::now();
        for m in &signed {
            check(m);
        }
        row("verify: SPF ×2, DKIM ×2, ARC, DMARC", body_kb, start);
        peer(keys.path(), &mut published, &messages[0], body_kb);
    }
}

/// The same signing and DKIM verification by dkimpy (Debian's
/// python3-dkim), in this run: its ed25519 key is its own (it takes a
/// raw seed), the RSA key is keygen's.
fn peer(
    dir: &std::path::Path,
    published: &mut serde_json::Map<String, serde_json::Value>,
    message: &[u8],
    body_kb: usize,
) {
    use std::io::Write;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/dkimpy.py");
    let python = |args: &[&str], stdin: &[u8]| {
        let mut child = std::process::Command::new("/usr/bin/python3")
            .arg(&script)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(stdin).ok()?;
        let out = child.wait_with_output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let dir_text = dir.display().to_string();
    let Some(ed_public) = python(&["keys", &dir_text], b"") else {
        println!("| dkimpy | not installed (apt-get install python3-dkim) | |");
        return;
    };
    published.insert(
        "ed._domainkey.example.org".into(),
        format!("v=DKIM1; k=ed25519; p={ed_public}").into(),
    );
    let records = dir.join("records.json");
    std::fs::write(&records, serde_json::Value::Object(published.clone()).to_string()).unwrap();
    let (rsa, ed) = (
        dir.join("rsa.pem").display().to_string(),
        dir.join("ed.key").display().to_string(),
    );
    let said = python(&["bench", &rsa, &ed, &records.display().to_string(), "200"], message).expect("dkimpy's run");
    let said: serde_json::Value = serde_json::from_str(&said).unwrap();
    for (what, key) in [
        ("dkimpy: sign, ed25519", "sign_ed"),
        ("dkimpy: sign, RSA-2048", "sign_rsa"),
        ("dkimpy: verify DKIM ×2 (DNS answers from memory)", "verify_both"),
    ] {
        println!("| {what} | {body_kb} KB | {:.0} |", said[key].as_f64().unwrap());
    }
}

fn row(what: &str, body_kb: usize, start: Instant) {
    let micros = start.elapsed().as_secs_f64() * 1e6 / MESSAGES as f64;
    println!("| {what} | {body_kb} KB | {micros:.0} |");
}
