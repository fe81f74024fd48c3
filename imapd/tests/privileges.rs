//! Started as root with `run_as`, imapd binds its port and then serves as
//! that user: the process (every thread) and the files it creates are the
//! user's. Runs as root, as CI does.

mod common;

use common::Client;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

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
    let (mut server, port) = common::spawn_imapd(dir.path(), "run_as = \"nobody\"\n");
    let mut client = Client::connect(port);
    for command in ["LOGIN alice secret", "CREATE Spam", "SELECT INBOX"] {
        client.run(command);
    }
    // every thread of the process runs as nobody
    for task in std::fs::read_dir(format!("/proc/{}/task", server.id())).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            uids.split_whitespace().skip(1).all(|u| u == NOBODY.to_string()),
            "{uids}"
        );
        // the mail group is not in effect anywhere: only kept as the
        // saved group ID, for the moments an INBOX spool needs it
        let mail = lda::users::group_id("mail")
            .expect("Debian has a mail group")
            .to_string();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .split_whitespace()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert!(!field("Groups:").contains(&mail), "{:?}", field("Groups:"));
        let gids = field("Gid:"); // real, effective, saved, filesystem
        assert_ne!(gids[1], mail, "{gids:?}");
        assert_eq!(gids[2], mail, "{gids:?}");
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
    let config = dir.path().join("mailkit.toml");
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

/// INBOXes in a root:mail 2775 spool (Debian's /var/mail), served as
/// `nobody`: the `mail` group, held back as the saved group ID, is put in
/// effect for creating the INBOX, its dotlock and a rewrite's new file in
/// the spool — and every file there ends up the user's.
#[test]
fn inboxes_in_a_mail_group_spool() {
    assert!(e2e_tests::is_root(), "this test runs as root (as CI does)");
    let mail_gid = lda::users::group_id("mail").expect("Debian has a mail group");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::os::unix::fs::chown(&spool, Some(0), Some(mail_gid)).unwrap();
    std::fs::set_permissions(&spool, std::os::unix::fs::PermissionsExt::from_mode(0o2775)).unwrap();
    let home = dir.path().join("alice");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::write(
        dir.path().join("passwd"),
        format!(
            "alice:{{PLAIN}}secret::::{}::userdb_mail=mbox:~/mail:INBOX={}/%u\n",
            home.display(),
            spool.display()
        ),
    )
    .unwrap();
    let (server, port) = common::spawn_imapd(dir.path(), "run_as = \"nobody\"\n");
    let _server = common::KillOnDrop(server);
    let mut client = Client::connect(port);
    for command in [
        "LOGIN alice secret",
        "SELECT INBOX",
        "APPEND INBOX {22}\r\nSubject: one\r\n\r\nbody\r\n",
        "APPEND INBOX {22}\r\nSubject: two\r\n\r\nbody\r\n",
        "STORE 1 +FLAGS (\\Deleted)",
        "EXPUNGE",
    ] {
        client.run(command);
    }
    let entries: Vec<String> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries, ["alice"], "no dotlock or scratch file left");
    assert_eq!(std::fs::metadata(spool.join("alice")).unwrap().uid(), NOBODY);
    let text = std::fs::read_to_string(spool.join("alice")).unwrap();
    assert!(
        text.contains("Subject: two") && !text.contains("Subject: one"),
        "{text}"
    );
}
