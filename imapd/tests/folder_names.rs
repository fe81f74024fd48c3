//! One folder-name rule for every program: lda files mail into folders
//! named in UTF-8 (`-m 日本語`, a Japanese `spam_folder`), stored in
//! modified UTF-7 as Dovecot stores mbox folders; imapd lists them, and a
//! MOVE into that Spam folder trains; Dovecot lists the same names. (lda
//! once wrote such names as raw UTF-8, which IMAP never listed.)

mod common;

use common::{Client, Site};
use e2e_tests::dovecot::Dovecot;

const NOBODY: u32 = 65534;
const SPAM: &str = "迷惑メール";
const LISTS: &str = "メーリングリスト/日本語";

fn deliver(config: &lda::config::Config, folder: Option<&str>, message: &[u8]) {
    let user = lda::users::find_user(config, "alice").unwrap();
    let request = lda::deliver::Request {
        user: &user,
        sender: "someone@example.jp",
        folder,
        message,
        spool: None,
    };
    let outcome = lda::deliver::deliver(config, &request).unwrap();
    assert!(
        matches!(outcome, lda::deliver::Outcome::Delivered { .. }),
        "{outcome:?}"
    );
}

#[test]
fn japanese_folder_names_from_lda_to_imap_and_dovecot() {
    assert!(e2e_tests::is_root(), "this test runs as root (as CI does)");
    let site = Site::start_configured(&format!("spam_folder = \"{SPAM}\""), |_| {});
    std::fs::set_permissions(site.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = lda::config::Config::load(Some(&site.dir.path().join("mailkit.toml"))).unwrap();
    assert_eq!(config.spam_folder, lda::folders::encode_mutf7(SPAM));

    // lda: into a folder named on its command line, and spam into the
    // configured Spam folder (a cutoff of 0 makes every message spam)
    deliver(&config, Some(LISTS), b"Subject: list\n\nto the list folder\n");
    let mut spam_config = config.clone();
    spam_config.filter.spam_cutoff = 0.0;
    deliver(&spam_config, None, b"Subject: offer\n\nspam for the spam folder\n");
    deliver(&config, None, b"Subject: ham\n\nfor the inbox\n");
    let on_disk = |name: &str| site.home("alice").join("mail").join(lda::folders::encode_mutf7(name));
    assert!(on_disk(LISTS).is_file(), "{}", on_disk(LISTS).display());
    assert!(on_disk(SPAM).is_file());

    // imapd lists both, in modified UTF-7
    let mut client = Client::connect(site.port);
    client.run("LOGIN alice secret");
    let listed = client.run("LIST \"\" *").join("");
    let spam_wire = lda::folders::encode_mutf7(SPAM);
    for name in [lda::folders::encode_mutf7(LISTS), spam_wire.clone()] {
        assert!(listed.contains(&format!("\"{name}\"")), "{name} in {listed}");
    }
    assert!(
        listed.contains(&format!("(\\HasNoChildren \\Junk) \"/\" \"{spam_wire}\"")),
        "{listed}"
    );
    // moving the INBOX message into that Spam folder teaches spam
    client.run("SELECT INBOX");
    client.run(&format!("MOVE 1 \"{spam_wire}\""));
    site.wait_learned("alice", (1, 0));

    // Dovecot lists the same folders, by their UTF-8 names
    let home = site.home("alice");
    let _ = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&home)
        .status();
    let passwd = site.dir.path().join("dovecot-passwd");
    std::fs::write(
        &passwd,
        format!("alice:{{PLAIN}}secret:{NOBODY}:{NOBODY}::{}::\n", home.display()),
    )
    .unwrap();
    let dovecot = Dovecot::start(&site.dir.path().join("dovecot"), &passwd, "mbox:~/mail:INBOX=~/inbox");
    let names = String::from_utf8(dovecot.doveadm(&["mailbox", "list", "-u", "alice"])).unwrap();
    for name in [SPAM, LISTS, "メーリングリスト", "INBOX"] {
        assert!(names.lines().any(|l| l == name), "{name} in Dovecot's list:\n{names}");
    }
    let count = String::from_utf8(dovecot.doveadm(&["mailbox", "status", "-u", "alice", "messages", SPAM])).unwrap();
    assert!(count.contains("messages=2"), "{count}");
}
