//! A local user attacking another through lda, as root delivers to both
//! (an MTA runs lda as root for every local recipient). Each test
//! performs one attack found in review (issue 15) against a scratch host:
//! a spool owned by root:mail 2775 as Debian's /var/mail (or a sticky
//! 1777 one, as some systems have), users `a` (the attacker) and `b` with
//! homes of their own and folders in `~/mail`.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::LDA;

const A: u32 = 60101;
const B: u32 = 60102;

struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    /// A host whose spool has `spool_mode` (owner root, group mail).
    fn new(spool_mode: u32) -> Host {
        assert!(e2e_tests::is_root(), "these tests run as root (as CI does)");
        let mail_gid = lda::users::group_id("mail").expect("Debian has a mail group");
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        chown(&spool, Some(0), Some(mail_gid)).unwrap();
        std::fs::set_permissions(&spool, PermissionsExt::from_mode(spool_mode)).unwrap();
        let mut passwd = String::new();
        for (name, uid) in [("a", A), ("b", B)] {
            let home = dir.path().join(name);
            std::fs::create_dir_all(home.join("mail")).unwrap();
            for d in [home.clone(), home.join("mail")] {
                chown(&d, Some(uid), Some(uid)).unwrap();
            }
            passwd.push_str(&format!("{name}:{{PLAIN}}pw:{uid}:{uid}::{}::\n", home.display()));
        }
        std::fs::write(dir.path().join("passwd"), passwd).unwrap();
        let host = Host { dir };
        // every message spam (no message scores above 0.5 on an empty
        // database, and anything above the cutoff is spam), or no filter
        host.write_config("spam.toml", "[filter]\nspam_cutoff = 0.0\n");
        host.write_config("plain.toml", "[filter]\nenabled = false\n");
        host
    }

    fn write_config(&self, name: &str, extra: &str) {
        std::fs::write(
            self.dir.path().join(name),
            format!(
                "[users]\npasswd_file = \"{}\"\nsystem_users = false\n[mailbox]\ninbox = \"{}/%u\"\nfolders = \"~/mail\"\nlock_timeout = 2\n{extra}",
                self.dir.path().join("passwd").display(),
                self.spool().display()
            ),
        )
        .unwrap();
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join(user)
    }

    /// Runs lda as root for `user` with the configuration `config`.
    fn deliver(&self, config: &str, user: &str, message: &[u8]) -> Output {
        common::run_lda(&self.dir.path().join(config), &["-d", user], message)
    }

    fn inbox_messages(&self, user: &str) -> usize {
        std::fs::read(self.spool().join(user)).map_or(0, |d| bsfilter::mbox::split(&d).len())
    }

    /// `path`, made by `user` (as if with their shell).
    fn as_user(path: &Path, uid: u32) {
        std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    }
}

const MESSAGE: &[u8] = b"From: x@example.org\nSubject: hello\n\nbody\n";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The review's first finding: `~a/mail/Spam -> SPOOL/b.lock`. Delivering
/// spam to `a` with the mail group in effect created `b.lock` owned by
/// `a`, whose forged undo record then cut `b`'s mailbox to nothing at
/// `b`'s next delivery.
#[test]
fn a_folder_linked_to_another_users_dotlock() {
    let host = Host::new(0o2775);
    for _ in 0..2 {
        assert!(host.deliver("plain.toml", "b", MESSAGE).status.success());
    }
    let link = host.home("a").join("mail/Spam");
    symlink(host.spool().join("b.lock"), &link).unwrap();
    Host::as_user(&link, A);

    let out = host.deliver("spam.toml", "a", MESSAGE);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(stderr(&out).contains("refusing"), "{}", stderr(&out));
    assert!(
        !host.spool().join("b.lock").exists(),
        "a's delivery created a file in the spool"
    );

    // Where others can create files in the spool (or by any other means),
    // a dotlock of a's with a forged undo record is not believed.
    let forged = host.spool().join("b.lock");
    std::fs::write(&forged, "pid=999999\nappend-from=0\nappend-prefix=46726f6d20\n").unwrap();
    Host::as_user(&forged, A);
    let out = host.deliver("plain.toml", "b", MESSAGE);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(host.inbox_messages("b"), 3, "b's older mail is all there");
}

/// `~a/mail/Spam -> SPOOL/b` while `b` has no INBOX yet: `a` became the
/// owner of `b`'s INBOX and read `b`'s next mail.
#[test]
fn a_folder_linked_to_another_users_missing_inbox() {
    let host = Host::new(0o2775);
    let link = host.home("a").join("mail/Spam");
    symlink(host.spool().join("b"), &link).unwrap();
    Host::as_user(&link, A);
    let out = host.deliver("spam.toml", "a", MESSAGE);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(!host.spool().join("b").exists(), "a's delivery created b's INBOX");
    assert!(host.deliver("plain.toml", "b", MESSAGE).status.success());
    assert_eq!(std::fs::metadata(host.spool().join("b")).unwrap().uid(), B);
}

/// The folder directory itself linked to the spool: spam for `a` is
/// written with `a`'s rights alone, so it cannot land in the spool.
#[test]
fn a_folder_directory_linked_to_the_spool() {
    let host = Host::new(0o2775);
    let mail = host.home("a").join("mail");
    std::fs::remove_dir(&mail).unwrap();
    symlink(host.spool(), &mail).unwrap();
    Host::as_user(&mail, A);
    let out = host.deliver("spam.toml", "a", MESSAGE);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let entries: Vec<_> = std::fs::read_dir(host.spool()).unwrap().collect();
    assert!(entries.is_empty(), "{entries:?}");
}

/// Links named `~a/.bsfilter/bsfilter.sqlite3-snapshot.<pid>.tmp` for the
/// pids to come made every delivery to `a` create files in the spool: the
/// snapshot's temporary file was opened create+truncate with the mail
/// group in effect.
#[test]
fn links_under_the_snapshots_temporary_names() {
    let host = Host::new(0o2775);
    let home = host.home("a").join(".bsfilter");
    // a's database, trained so that classifying reads it and writes a snapshot
    let filter = bsfilter::Filter::new(bsfilter::FilterConfig::new(home.clone()));
    let mut db = filter.open_user_db().unwrap();
    for (class, text) in [
        (bsfilter::store::Class::Spam, "Subject: pills\n\ncheap pills\n"),
        (bsfilter::store::Class::Clean, "Subject: meeting\n\nproject review\n"),
    ] {
        let analyzed = filter.analyze(text.as_bytes(), None);
        filter
            .train(&mut db, &[&analyzed], bsfilter::store::Action::Add(class))
            .unwrap();
    }
    drop(db);
    let next_pid: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    const PLANTED: u32 = 3000;
    for pid in next_pid + 1..=next_pid + PLANTED {
        let link = home.join(format!("bsfilter.sqlite3-snapshot.{pid}.tmp"));
        symlink(host.spool().join(format!("planted.{pid}")), &link).unwrap();
    }
    Command::new("chown")
        .args(["-hR", &format!("{A}:{A}")])
        .arg(&home)
        .status()
        .unwrap();
    host.write_config("filtered.toml", "");
    let out = host.deliver("filtered.toml", "a", MESSAGE);
    assert!(out.status.success(), "{}", stderr(&out));
    let planted_left = std::fs::read_dir(&home)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(
        planted_left,
        PLANTED as usize - 1,
        "the delivery's own pid was among the planted ones, and its link was replaced"
    );
    assert!(home.join("bsfilter.sqlite3-snapshot").is_file());
    let spool: Vec<String> = std::fs::read_dir(host.spool())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(spool, ["a"], "nothing but a's INBOX in the spool");
}

/// A stale dotlock lda cannot remove (another user's, in a sticky spool)
/// made lda spin at full CPU past its lock timeout. It must wait, give up
/// at the timeout and exit 75.
#[test]
#[allow(clippy::zombie_processes)] // reaped by wait4, which gives its CPU time too
fn a_stale_dotlock_that_cannot_be_removed_is_waited_for() {
    let host = Host::new(0o1777);
    host.write_config("quick.toml", "[filter]\nenabled = false\n");
    // stale (its process is gone), but a's: b may not remove it
    let lock = host.spool().join("b.lock");
    std::fs::write(&lock, "pid=999999\n").unwrap();
    Host::as_user(&lock, A);

    let mut child = Command::new(LDA)
        .arg("--config")
        .arg(host.dir.path().join("quick.toml"))
        .args(["-d", "b"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(MESSAGE).unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid pointers.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), 75, "a temporary failure: the MTA retries");
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let used = cpu(usage.ru_utime) + cpu(usage.ru_stime);
    assert!(used < 0.5, "lda used {used:.2} s of CPU waiting 2 s for a lock");
    assert!(lock.exists());
    assert_eq!(host.inbox_messages("b"), 0);
}
