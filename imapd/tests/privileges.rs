//! Started as root with `run_as`, imapd binds its port and then serves as
//! that user: the process (every thread) and the files it creates are the
//! user's. Runs as root, as CI does.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::Duration;

const IMAPD: &str = env!("CARGO_BIN_EXE_imapd");
const NOBODY: u32 = 65534;

#[test]
fn run_as_drops_root_after_binding() {
    assert!(e2e_tests::is_root(), "this test runs as root (as CI does)");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let home = dir.path().join("alice");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::write(
        dir.path().join("passwd"),
        format!("alice:{{PLAIN}}secret::::{}::\n", home.display()),
    )
    .unwrap();
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
             [imapd]\nlisten = [\"127.0.0.1:{port}\"]\nrun_as = \"nobody\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut server = Command::new(IMAPD)
        .arg("--config")
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stream = (0..100)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .expect("imapd listens");
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    for command in ["a LOGIN alice secret\r\n", "b CREATE Spam\r\n", "c SELECT INBOX\r\n"] {
        stream.write_all(command.as_bytes()).unwrap();
        let tag = &command[..1];
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.starts_with(tag) {
                assert!(line.starts_with(&format!("{tag} OK")), "{command}: {line}");
                break;
            }
        }
    }
    // every thread of the process runs as nobody
    for task in std::fs::read_dir(format!("/proc/{}/task", server.id())).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            uids.split_whitespace().skip(1).all(|u| u == NOBODY.to_string()),
            "{uids}"
        );
    }
    for created in [home.join("mail/Spam"), home.join("inbox")] {
        assert_eq!(
            std::fs::metadata(&created).unwrap().uid(),
            NOBODY,
            "{}",
            created.display()
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();

    // run_as naming nobody that exists: a configuration error, before serving
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("\"nobody\"", "\"no-such-user-x\""),
    )
    .unwrap();
    let out = Command::new(IMAPD).arg("--config").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));
}
