//! Clients attacking the server (issue 15's findings, each performed): the
//! imapd binary must stay up, keep serving others, and keep its memory
//! bounded before and after login.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::Client;

/// The server's resident memory, in MiB.
fn rss_mib(server: &common::KillOnDrop) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.0.id())).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024
}

fn write_users(dir: &Path) -> std::path::PathBuf {
    let home = dir.join("alice");
    std::fs::create_dir_all(home.join("mail")).unwrap();
    // bob: bcrypt at cost 10 (~60 ms a check) of "right", made with Python's
    // crypt.crypt('right', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024))
    std::fs::write(
        dir.join("passwd"),
        format!(
            "alice:{{PLAIN}}secret::::{}::\nbob:{{BLF-CRYPT}}$2b$10$G5Ov2A8/MeqyEmH0EAOgKekR/aDPvSv256/yXHdC0hUQjx1xFmF4K::::{}::\n",
            home.display(),
            dir.join("bob").display()
        ),
    )
    .unwrap();
    home
}

fn connect(port: u16) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

fn line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

/// Reads until the tagged answer of `tag`; returns it.
fn tagged(reader: &mut BufReader<TcpStream>, tag: &str) -> String {
    loop {
        let l = line(reader);
        assert!(!l.is_empty(), "closed before {tag}'s answer");
        if l.starts_with(&format!("{tag} ")) {
            return l;
        }
    }
}

/// Announcing a 64 MiB literal before login reserved it: 40 such
/// connections took the server from 6 MB to 2.6 GB. Before login only
/// small literals are taken, and none is reserved before its bytes come.
#[test]
fn huge_literals_before_login_cost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path());
    let (server, port) = common::spawn_imapd(dir.path(), "max_connections_per_ip = 100\n");
    let server = common::KillOnDrop(server);
    Client::connect(port); // up
    let before = rss_mib(&server);
    let mut held = Vec::new();
    for i in 0..40 {
        let (mut s, mut r) = connect(port);
        assert!(line(&mut r).starts_with("* OK"));
        s.write_all(format!("a{i} LOGIN {{67108864}}\r\n").as_bytes()).unwrap();
        let answer = line(&mut r);
        assert!(answer.starts_with(&format!("a{i} NO [TOOBIG]")), "{answer}");
        // a non-synchronizing one is not waited for either
        s.write_all(format!("b{i} LOGIN {{67108864+}}\r\nxxxx").as_bytes())
            .unwrap();
        assert!(line(&mut r).starts_with("* BYE"));
        held.push((s, r));
    }
    let (mut s, mut r) = connect(port);
    line(&mut r);
    s.write_all(b"c LOGIN alice {6}\r\n").unwrap();
    assert!(line(&mut r).starts_with('+'));
    s.write_all(b"secret\r\n").unwrap();
    assert!(tagged(&mut r, "c").starts_with("c OK"), "a small literal still logs in");
    let after = rss_mib(&server);
    assert!(after < before + 32, "{before} MiB -> {after} MiB");
}

/// After login: bytes with no newline during IDLE grew without bound,
/// and a FETCH naming one body 1,500 times built gigabytes.
#[test]
fn memory_after_login_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let home = write_users(dir.path());
    let mut message = b"Subject: big\r\n\r\n".to_vec();
    while message.len() < 1 << 20 {
        message.extend_from_slice(b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n");
    }
    let mut mbox = b"From a@b Sat Nov 28 04:03:56 2026\n".to_vec();
    mbox.extend_from_slice(&message);
    mbox.extend_from_slice(b"\n");
    std::fs::write(home.join("inbox"), &mbox).unwrap();
    let (server, port) = common::spawn_imapd(dir.path(), "");
    let server = common::KillOnDrop(server);
    Client::connect(port);
    let before = rss_mib(&server);

    let (mut s, mut r) = connect(port);
    line(&mut r);
    s.write_all(b"l LOGIN alice secret\r\ns SELECT INBOX\r\n").unwrap();
    tagged(&mut r, "s");
    let items = vec!["BODY.PEEK[]"; 1500].join(" ");
    s.write_all(format!("f FETCH 1 ({items})\r\n").as_bytes()).unwrap();
    let head = line(&mut r);
    assert!(head.starts_with("* 1 FETCH (BODY[] {"), "{head}");
    let size: usize = head
        .trim_end()
        .rsplit('{')
        .next()
        .unwrap()
        .trim_end_matches('}')
        .parse()
        .unwrap();
    assert_eq!(size, message.len(), "the body, once");
    let mut body = vec![0; size];
    r.read_exact(&mut body).unwrap();
    assert_eq!(body, message);
    assert!(tagged(&mut r, "f").starts_with("f OK"));
    let many: Vec<String> = (0..100).map(|i| format!("BODY.PEEK[HEADER.FIELDS (X-{i})]")).collect();
    s.write_all(format!("g FETCH 1 ({})\r\n", many.join(" ")).as_bytes())
        .unwrap();
    assert!(tagged(&mut r, "g").starts_with("g BAD"), "too many distinct items");

    s.write_all(b"i IDLE\r\n").unwrap();
    assert!(line(&mut r).starts_with('+'));
    let junk = vec![b'x'; 1 << 20];
    for _ in 0..16 {
        if s.write_all(&junk).is_err() {
            break;
        }
    }
    let mut rest = String::new();
    let _ = r.read_to_string(&mut rest);
    assert!(rest.contains("* BYE Line too long."), "{rest}");
    let after = rss_mib(&server);
    assert!(after < before + 48, "{before} MiB -> {after} MiB");
    Client::connect(port).run("LOGIN alice secret");
}

/// The failure cap was checked before the password and counted after, so
/// 300 LOGINs sent at once checked ~200 passwords and the right one got
/// in. Counted before: from one address exactly the cap's worth are
/// checked, however many come at once, and then even the right password
/// is refused.
#[test]
fn simultaneous_logins_check_at_most_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path());
    let (server, port) = common::spawn_imapd(dir.path(), "max_connections_per_ip = 200\n");
    let _server = common::KillOnDrop(server);
    Client::connect(port);
    let mut checked = 0;
    loop {
        let mut clients: Vec<_> = (0..30)
            .map(|_| {
                let (s, mut r) = connect(port);
                line(&mut r);
                (s, r)
            })
            .collect();
        for (i, (s, _)) in clients.iter_mut().enumerate() {
            s.write_all(format!("a{i} LOGIN bob guess{i}\r\n").as_bytes()).unwrap();
        }
        let mut checked_now = 0;
        for (i, (_, r)) in clients.iter_mut().enumerate() {
            let answer = tagged(r, &format!("a{i}"));
            if answer.contains("[AUTHENTICATIONFAILED]") {
                checked_now += 1;
            } else {
                assert!(answer.contains("NO [UNAVAILABLE]"), "{answer}");
            }
        }
        checked += checked_now;
        if checked_now == 0 {
            break;
        }
    }
    assert_eq!(checked, 10, "passwords checked from one address");
    let mut c = Client::connect(port);
    c.send("LOGIN bob right");
    assert!(c.answer().contains("NO [UNAVAILABLE]"));
}

/// ~1,050 idle connections under `ulimit -n 1024` made `accept` fail
/// with EMFILE, and the `?` on it ended imapd. The connection cap is kept
/// below the open-files limit (with descriptors to spare for the
/// mailboxes sessions open), so the connections beyond it are refused,
/// the logged-in sessions go on working, and new clients get in once
/// others leave. (The accept loop surviving EMFILE itself is tested in
/// daemon/tests/descriptors.rs.)
#[test]
fn more_clients_than_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("mailkit.toml");
    std::fs::write(
        &config,
        format!(
            "[users]\npasswd_file = \"{}/passwd\"\nsystem_users = false\n[mailbox]\ninbox = \"~/inbox\"\nfolders = \"~/mail\"\n\
             [imapd]\nlisten = [\"127.0.0.1:{port}\"]\nmax_connections_per_ip = 1000\n",
            dir.path().display()
        ),
    )
    .unwrap();
    // a hard limit of 128 descriptors: imapd cannot raise it
    let server = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 128 && exec {} --config {}",
            env!("CARGO_BIN_EXE_imapd"),
            config.display()
        ))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut server = common::KillOnDrop(server);
    let mut first = Client::connect(port);
    first.run("LOGIN alice secret");
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..150 {
        let (s, mut r) = connect(port);
        let greeting = line(&mut r);
        if greeting.starts_with("* BYE") {
            refused += 1;
        } else {
            assert!(greeting.starts_with("* OK"), "{greeting}");
            idle.push((s, r));
        }
    }
    assert!(
        refused > 0 && !idle.is_empty(),
        "{} admitted, {refused} refused",
        idle.len()
    );
    // the logged-in session is still served, mailbox files and all
    first.run("CREATE Work");
    first.run("SELECT Work");
    first.run("NOOP");
    assert!(server.0.try_wait().unwrap().is_none(), "imapd is still running");
    drop(idle);
    // a new client gets in once the others are gone
    let mut again = None;
    for _ in 0..100 {
        let (mut s, mut r) = connect(port);
        if line(&mut r).starts_with("* OK") {
            s.write_all(b"l LOGIN alice secret\r\n").unwrap();
            again = Some(tagged(&mut r, "l"));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(again.expect("admitted again").starts_with("l OK"));
}

/// 2,000 connections from one address that never log in were all taken
/// and held. Past the per-address cap the server says so and closes;
/// other addresses are still served.
#[test]
fn connections_before_login_are_capped_per_address() {
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path());
    let (server, port) = common::spawn_imapd(dir.path(), "max_connections_per_ip = 20\nmax_userip_connections = 2\n");
    let _server = common::KillOnDrop(server);
    Client::connect(port);
    let mut held = Vec::new();
    for _ in 0..20 {
        let (s, mut r) = connect(port);
        assert!(line(&mut r).starts_with("* OK"));
        held.push((s, r));
    }
    let (_s, mut r) = connect(port);
    let refused = line(&mut r);
    assert!(
        refused.starts_with("* BYE [UNAVAILABLE] Too many connections from your address"),
        "{refused}"
    );
    assert_eq!(line(&mut r), "", "and closed");
    // another address is served
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let greeting = other.block_on(async {
        use tokio::io::AsyncReadExt;
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    assert!(greeting.starts_with("* OK"), "{greeting}");
    // logged in, a connection leaves the anonymous count, and the user's
    // own cap applies: two sessions of alice from here, not three
    for (i, (s, r)) in held.iter_mut().take(3).enumerate() {
        s.write_all(format!("l{i} LOGIN alice secret\r\n").as_bytes()).unwrap();
        let answer = tagged(r, &format!("l{i}"));
        if i < 2 {
            assert!(answer.starts_with(&format!("l{i} OK")), "{answer}");
        } else {
            assert!(answer.starts_with(&format!("l{i} NO [LIMIT]")), "{answer}");
        }
    }
    let (_s, mut r) = connect(port);
    assert!(line(&mut r).starts_with("* OK"), "two left the anonymous count");
}

/// `~alice/mail/steal -> ~bob/inbox` (a user with a shell or SFTP can
/// make it): SELECT and FETCH gave bob's mail. Links under a user's
/// folders are refused, never followed.
#[test]
fn links_in_a_users_folders_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let home = write_users(dir.path());
    let bob = dir.path().join("bob");
    std::fs::create_dir_all(&bob).unwrap();
    let secret = b"From a@b Sat Nov 28 04:03:56 2026\nSubject: bob's secret\n\nfor bob only\n\n";
    std::fs::write(bob.join("inbox"), secret).unwrap();
    std::os::unix::fs::symlink(bob.join("inbox"), home.join("mail/steal")).unwrap();
    std::os::unix::fs::symlink(&bob, home.join("mail/bobdir")).unwrap();
    std::os::unix::fs::symlink(bob.join("inbox"), home.join("mail/.subscriptions.tmp")).unwrap();
    let (server, port) = common::spawn_imapd(dir.path(), "");
    let _server = common::KillOnDrop(server);
    let mut c = Client::connect(port);
    c.run("LOGIN alice secret");
    for (command, what) in [
        ("SELECT steal", "a link to another's mailbox"),
        ("SELECT bobdir/inbox", "a mailbox under a linked directory"),
        ("STATUS steal (MESSAGES)", "its status"),
        ("APPEND steal {1}\r\nx", "appending through it"),
        ("CREATE bobdir/new", "creating under a linked directory"),
        ("RENAME steal mine", "renaming it"),
    ] {
        c.send(command);
        let answer = c.answer();
        assert!(answer.contains(" NO "), "{what}: {answer}");
    }
    c.run("SUBSCRIBE INBOX");
    assert_eq!(
        std::fs::read(bob.join("inbox")).unwrap(),
        secret,
        "bob's mail untouched"
    );
    assert!(!bob.join("new").exists());
    let listed = c.run("LIST \"\" *").join("");
    assert!(!listed.contains("steal") && !listed.contains("bobdir"), "{listed}");
}
