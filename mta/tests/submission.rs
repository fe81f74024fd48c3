//! The submission ports: 587 with STARTTLS and 465 with implicit TLS,
//! where users log in (AUTH PLAIN or LOGIN, against the same passwd-file
//! as imapd) and may then relay. AUTH is offered only under TLS — or in
//! the clear from loopback, as `plaintext_auth = "loopback"` allows.

mod common;

use common::{Raw, Site};
use serde_json::{Value, json};

fn send(site: &Site, port: u16, args: &[&str]) -> Value {
    let port = port.to_string();
    let mut all = vec![port.as_str()];
    all.extend_from_slice(args);
    serde_json::from_str(&site.python("send.py", &all)).unwrap()
}

fn has(result: &Value, feature: &str) -> bool {
    result["ehlo"].as_array().unwrap().iter().any(|f| f == feature)
}

#[test]
fn starttls_then_auth_then_relay() {
    let hop = Site::start("hostname = \"mx.remote.example\"\nlocal_domains = [\"remote.example\"]\n");
    let site = Site::start(&format!("relayhost = \"[127.0.0.1]:{}\"\nmynetworks = []\n", hop.port));
    let cert = site.cert.display().to_string();
    let result = send(
        &site,
        site.submission_port,
        &[
            "--source",
            "127.0.0.2",
            "--starttls",
            "--cafile",
            &cert,
            "--auth",
            "alice",
            "secret",
            "--from",
            "alice@example.jp",
            "--to",
            "bob@remote.example",
        ],
    );
    assert_eq!(result["auth"], json!("ok"), "{result}");
    assert!(has(&result, "auth") && !has(&result, "starttls"), "{result}");
    assert_eq!(result["refused"], json!({}), "logged in: may relay: {result}");
    let messages = hop.wait_for_messages("bob", 1);
    let text = String::from_utf8_lossy(&messages[0]);
    assert!(text.contains("with ESMTPSA id"), "{text}");

    // implicit TLS on 465, AUTH LOGIN (smtplib's choice order is its own)
    let result = send(
        &site,
        site.submissions_port,
        &[
            "--ssl",
            "--cafile",
            &cert,
            "--auth",
            "bob",
            "hunter2",
            "--from",
            "bob@example.jp",
            "--to",
            "alice@example.jp",
        ],
    );
    assert_eq!(result["auth"], json!("ok"), "{result}");
    site.wait_for_messages("alice", 1);
}

#[test]
fn no_auth_in_the_clear_from_outside_and_never_on_port_25() {
    // (every test client is on loopback: "never" stands for a client
    // outside, where the default "loopback" refuses passwords in the clear)
    let site = Site::start("mynetworks = []\nplaintext_auth = \"never\"\n");
    // without TLS: no AUTH offered, MAIL must wait for TLS
    let (mut c, _) = Raw::connect(site.submission_port);
    let ehlo = c.command("EHLO client.example.org");
    assert!(ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"), "{ehlo}");
    assert!(c.command("AUTH PLAIN AGFsaWNlAHNlY3JldA==").starts_with("503 5.5.1"));
    assert!(
        c.command("MAIL FROM:<alice@example.jp>")
            .starts_with("530 5.7.0 Must issue a STARTTLS command first")
    );
    // after STARTTLS it is offered (smtplib with the site's certificate)
    let cert = site.cert.display().to_string();
    let port = site.submission_port.to_string();
    let result: serde_json::Value = serde_json::from_str(&site.python(
        "send.py",
        &[&port, "--starttls", "--cafile", &cert, "--auth", "alice", "secret"],
    ))
    .unwrap();
    assert_eq!(result["auth"], json!("ok"), "{result}");
    // from loopback in the clear with the default: offered
    let loopback = Site::start("mynetworks = []\n");
    let (mut c, _) = Raw::connect(loopback.submission_port);
    assert!(c.command("EHLO client.example.org").contains("AUTH PLAIN LOGIN"));
    // port 25: never, even from loopback
    let (mut c, _) = Raw::connect(site.port);
    assert!(!c.command("EHLO client.example.org").contains("AUTH"));
    assert!(c.command("AUTH PLAIN AGFsaWNlAHNlY3JldA==").starts_with("503 5.5.1"));
}

#[test]
fn wrong_passwords_are_refused_and_counted() {
    let site = Site::start("mynetworks = []\n");
    let (mut c, _) = Raw::connect(site.submission_port);
    c.command("EHLO client.example.org");
    // PLAIN with a wrong password, then LOGIN step by step with the right one
    assert!(
        c.command("AUTH PLAIN AGFsaWNlAHdyb25n")
            .starts_with("535 5.7.8 Error: authentication failed")
    );
    assert!(c.command("AUTH LOGIN").starts_with("334 VXNlcm5hbWU6"));
    assert!(c.command("YWxpY2U=").starts_with("334 UGFzc3dvcmQ6"));
    assert!(c.command("c2VjcmV0").starts_with("235 2.7.0 Authentication successful"));
    assert!(
        c.command("AUTH PLAIN AGFsaWNlAHNlY3JldA==")
            .starts_with("503 5.5.1 Error: already authenticated")
    );
    // without logging in, submission takes no mail at all
    let (mut c, _) = Raw::connect(site.submission_port);
    c.command("EHLO client.example.org");
    assert!(
        c.command("MAIL FROM:<x@example.org>")
            .starts_with("530 5.7.0 Authentication required")
    );
    // a cancelled exchange
    assert!(c.command("AUTH LOGIN").starts_with("334"));
    assert!(c.command("*").starts_with("501 5.7.0 Authentication aborted"));
}

/// swaks, with `args`; its transcript (and whether it exited 0).
fn swaks(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("swaks")
        .args(["--helo", "client.example.org", "--timeout", "20"])
        .args(args)
        .output()
        .expect("swaks is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn swaks_submits_over_starttls_smtps_and_pipelining() {
    let hop = Site::start("hostname = \"mx.remote.example\"\nlocal_domains = [\"remote.example\"]\n");
    let site = Site::start(&format!("relayhost = \"[127.0.0.1]:{}\"\nmynetworks = []\n", hop.port));
    let submission = format!("127.0.0.1:{}", site.submission_port);
    // 587: STARTTLS, AUTH PLAIN, relayed
    let (ok, text) = swaks(&[
        "--server",
        &submission,
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "secret",
        "--from",
        "alice@example.jp",
        "--to",
        "bob@remote.example",
        "--header",
        "Subject: swaks over STARTTLS",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("<~  235 2.7.0 Authentication successful"), "{text}");
    assert!(text.contains("<~  250 2.0.0 Ok: queued as "), "{text}");
    let messages = hop.wait_for_messages("bob", 1);
    assert!(String::from_utf8_lossy(&messages[0]).contains("with ESMTPSA id"));
    // a wrong password: 535, swaks fails, nothing sent
    let (ok, text) = swaks(&[
        "--server",
        &submission,
        "--tls",
        "--auth",
        "LOGIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "wrong",
        "--from",
        "alice@example.jp",
        "--to",
        "bob@remote.example",
    ]);
    assert!(
        !ok && text.contains("<~* 535 5.7.8 Error: authentication failed"),
        "{text}"
    );
    // 465: implicit TLS, AUTH LOGIN
    let (ok, text) = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", site.submissions_port),
        "--tlsc",
        "--auth",
        "LOGIN",
        "--auth-user",
        "bob",
        "--auth-password",
        "hunter2",
        "--from",
        "bob@example.jp",
        "--to",
        "alice@example.jp",
    ]);
    assert!(ok, "{text}");
    site.wait_for_messages("alice", 1);
    // 25: pipelined, for a local user, without logging in
    let (ok, text) = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", site.port),
        "--pipeline",
        "--from",
        "carol@example.org",
        "--to",
        "alice@example.jp",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("250-PIPELINING"), "{text}");
    site.wait_for_messages("alice", 2);
}
