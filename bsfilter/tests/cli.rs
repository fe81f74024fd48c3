//! The `bsfilter` binary, driven as users and scripts drive it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

use common::{BIN, ORIGINAL, ham, run_program, spam};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--homedir").arg(self.path().join("home"));
        c.env_remove("BSFILTERHOME");
        c
    }
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.cmd();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let input = stdin.unwrap_or("").to_owned();
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
        child.wait_with_output().unwrap()
    }
    /// Writes each message to its own file (`PREFIX0`, `PREFIX1`, …) and
    /// learns them all with `command` (`-s`, `-c`, …).
    fn learn(&self, command: &str, prefix: &str, messages: impl Iterator<Item = String>) {
        let files: Vec<String> = messages
            .enumerate()
            .map(|(i, m)| self.file(&format!("{prefix}{i}"), &m).display().to_string())
            .collect();
        let mut args = vec![command];
        args.extend(files.iter().map(String::as_str));
        let o = self.run(&args, None);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    /// Trains `n` spam and `n` ham messages, one file each.
    fn trained(n: usize) -> Home {
        let home = Home::new();
        home.learn("--add-spam", "s", (0..n).map(spam));
        home.learn("-c", "h", (0..n).map(ham));
        home
    }
    /// `db C CLEAN_TOKENS CLEAN_MSGS SPAM_TOKENS SPAM_MSGS TOKENS`
    fn status(&self) -> Vec<u64> {
        let out = self.run(&["--show-db-status"], None);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text.lines().next().unwrap();
        assert!(line.starts_with("db C "), "{line}");
        line.split_whitespace()
            .skip(2)
            .take(5)
            .map(|n| n.parse().unwrap())
            .collect()
    }
}

use common::{stderr, stdout};

#[test]
fn filtering_exit_status_is_the_verdict() {
    let home = Home::trained(20);
    let s = home.file("new-spam", &spam(1000));
    let h = home.file("new-ham", &ham(1000));
    let o = home.run(&[s.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "spam exits 0: {}", stderr(&o));
    let o = home.run(&[h.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1), "clean exits 1: {}", stderr(&o));
    // the original prints the probability line on stdout in plain filtering mode
    let line = stdout(&o);
    assert!(
        line.starts_with(&format!("combined probability {} 1 0.", h.display())),
        "{line}"
    );
    // from stdin: no probability line (the original prints it only for files)
    let o = home.run(&[], Some(&spam(1001)));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "");
    // several files: 0 when any is spam
    let o = home.run(&[h.to_str().unwrap(), s.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn list_spam_and_list_clean_as_the_original() {
    let home = Home::trained(20);
    let s = home.file("x-spam", &spam(500));
    let h = home.file("x-ham", &ham(500));
    let (s, h) = (s.to_str().unwrap(), h.to_str().unwrap());
    let o = home.run(&["--list-spam", h, s], None);
    assert_eq!(stdout(&o), format!("{s}\n"));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    for (line, file) in lines.iter().zip([h, s]) {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(&parts[..4], ["combined", "probability", file, "1"], "{line}");
        let p: f64 = parts[4].parse().unwrap();
        assert!((0.0..=1.0).contains(&p) && parts[4].len() == 8, "{line}");
    }
    let o = home.run(&["--list-clean", h, s], None);
    assert_eq!(stdout(&o), format!("{h}\n"));
}

#[test]
fn pipe_inserts_headers_and_replaces_forged_ones() {
    let home = Home::trained(20);
    let forged = spam(700).replacen("Subject:", "X-Spam-Flag: No\nX-Spam-Probability: 0.0\nSubject:", 1);
    let o = home.run(
        &["--pipe", "--insert-flag", "--insert-probability", "--mark-spam-subject"],
        Some(&forged),
    );
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert_eq!(out.matches("X-Spam-Flag:").count(), 1, "{out}");
    assert!(out.contains("X-Spam-Flag: Yes\n"), "{out}");
    assert!(out.contains("Subject: [SPAM] Cheap pills offer 700\n"), "{out}");
    let p = out
        .lines()
        .find_map(|l| l.strip_prefix("X-Spam-Probability: "))
        .unwrap();
    assert!(p.parse::<f64>().unwrap() > 0.95 && p.len() == 8, "{p}");
    // the body is untouched
    assert!(out.ends_with(spam(700).split("\n\n").nth(1).unwrap()), "{out}");

    // clean mail, another prefix, CRLF kept; --pipe exits 0 even for clean
    let crlf = ham(701).replace('\n', "\r\n");
    let o = home.run(&["--pipe", "--insert-flag", "--header-prefix", "Bsf"], Some(&crlf));
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("X-Bsf-Flag: No\r\n\r\nHi Bob"), "{out}");
}

#[test]
fn ledger_counts_a_message_once_and_moves_it() {
    let home = Home::new();
    let m = home.file("m", &spam(1));
    let m = m.to_str().unwrap();
    assert_eq!(home.run(&["-s", m], None).status.code(), Some(0));
    assert_eq!(home.run(&["-s", m], None).status.code(), Some(0));
    let st = home.status();
    assert_eq!((st[1], st[3]), (0, 1), "one spam message: {st:?}");
    let spam_tokens = st[2];
    // relearn as clean: its counts move
    assert_eq!(home.run(&["-c", "-v", m], None).status.code(), Some(0));
    let st = home.status();
    assert_eq!((st[0], st[1], st[2], st[3]), (spam_tokens, 1, 0, 0), "{st:?}");
    // the same message with other mbox status headers is still the same message
    let reread = spam(1).replacen("\n\n", "\nStatus: RO\nX-UID: 7\n\n", 1);
    let o = home.run(&["-c", "-v"], Some(&reread));
    assert!(stdout(&o).contains("already learned as clean"), "{}", stdout(&o));
    // unlearning what was never learned changes nothing
    assert_eq!(home.run(&["-S", m], None).status.code(), Some(0));
    assert_eq!(home.status()[1], 1);
    assert_eq!(home.run(&["-C", m], None).status.code(), Some(0));
    assert_eq!(home.status(), [0, 0, 0, 0, 0]);
}

#[test]
fn mbox_input_is_split() {
    let home = Home::new();
    let mbox: String = (0..3)
        .map(|i| format!("From sender{i}@example.com Mon Jan  1 00:00:0{i} 2024\n{}\n", spam(i)))
        .collect();
    let f = home.file("box", &mbox);
    assert_eq!(
        home.run(&["--mbox", "-s", f.to_str().unwrap()], None).status.code(),
        Some(0)
    );
    assert_eq!(home.status()[3], 3);
    // a database that knows no ham cannot compare: no verdict of spam
    // (the original's formula called every known token certain spam)
    let o = home.run(&["--mbox", f.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert_eq!(stdout(&o).matches(" 0.500000").count(), 3, "{}", stdout(&o));
    home.learn("-c", "clean", (0..1).map(ham));
    // classification prints one line per message, numbered within the file
    let o = home.run(&["--mbox", f.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for i in 1..=3 {
        assert!(
            out.contains(&format!("combined probability {} {i} ", f.display())),
            "{out}"
        );
    }
    // --pipe keeps the mbox an mbox
    let o = home.run(&["--mbox", "--pipe", "--insert-flag", f.to_str().unwrap()], None);
    let out = stdout(&o);
    assert_eq!(
        out.matches("\nFrom sender").count() + usize::from(out.starts_with("From sender")),
        3,
        "{out}"
    );
    assert_eq!(out.matches("X-Spam-Flag: Yes").count(), 3, "{out}");
}

#[test]
fn export_import_round_trip() {
    let home = Home::trained(10);
    let export = |h: &Home, what: &str| {
        let o = h.run(&[what], None);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let mut lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    let spam_export = export(&home, "--export-spam");
    let clean_export = export(&home, "--export-clean");
    assert!(
        spam_export.contains(&"C .internal file_count 10".to_string()),
        "{spam_export:?}"
    );
    assert!(
        spam_export.iter().any(|l| l.starts_with("C subject cheap ")),
        "{spam_export:?}"
    );
    assert!(spam_export.iter().all(|l| l.split(' ').count() == 4), "{spam_export:?}");

    let other = Home::new();
    let spam_file = other.file("spam.txt", &(spam_export.join("\n") + "\n"));
    let o = other.run(&["--import-spam", spam_file.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = other.run(&["--import-clean"], Some(&(clean_export.join("\n") + "\n")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(export(&other, "--export-spam"), spam_export);
    assert_eq!(export(&other, "--export-clean"), clean_export);
    assert_eq!(other.status(), home.status());
    // export to a file
    let target = other.path().join("out.txt");
    assert_eq!(
        other
            .run(&["--export-spam", target.to_str().unwrap()], None)
            .status
            .code(),
        Some(0)
    );
    let mut from_file: Vec<String> = std::fs::read_to_string(&target)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    from_file.sort();
    assert_eq!(from_file, spam_export);
}

#[test]
fn errors_exit_with_sysexits_never_a_verdict() {
    let home = Home::trained(3);
    // bad option, bad value
    assert_eq!(home.run(&["--no-such-option"], None).status.code(), Some(64));
    assert_eq!(home.run(&["--method", "x"], Some("x")).status.code(), Some(64));
    assert_eq!(home.run(&["--spam-cutoff", "abc"], Some("x")).status.code(), Some(64));
    let o = home.run(&["--pop"], None);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("not supported"), "{}", stderr(&o));
    // unreadable input: the other files are still handled
    let h = home.file("fine", &ham(77));
    let o = home.run(&["/nonexistent/mail", h.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(74));
    assert!(stderr(&o).contains("cannot read /nonexistent/mail"), "{}", stderr(&o));
    assert!(stdout(&o).contains("combined probability"), "{}", stdout(&o));
    // bad import data names the line
    let o = home.run(&["--import-spam"], Some("C body ok 1\nthis is not an export line\n"));
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("stdin:2:"), "{}", stderr(&o));
    // corrupt database
    let bad = Home::new();
    std::fs::create_dir_all(bad.path().join("home")).unwrap();
    std::fs::write(bad.path().join("home/bsfilter.sqlite3"), vec![b'x'; 10000]).unwrap();
    for args in [&["-s"][..], &[][..], &["--show-db-status"][..]] {
        let o = bad.run(args, Some(&spam(1)));
        assert_eq!(o.status.code(), Some(74), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "one clear line: {}", stderr(&o));
    }
    // unwritable home
    let o = Command::new(BIN)
        .args(["--homedir", "/proc/no/such/dir", "-s"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(74), "{}", stderr(&o));
}

#[test]
fn locked_database_is_a_temporary_failure() {
    let home = Home::trained(2);
    let db = home.path().join("home/bsfilter.sqlite3");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let o = home.run(&["--db-timeout", "0.3", "-s"], Some(&spam(9)));
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(stderr(&o).contains("busy"), "{}", stderr(&o));
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        home.run(&["--db-timeout", "0.3", "-s"], Some(&spam(9))).status.code(),
        Some(0)
    );
}

#[test]
fn config_file_sets_options_and_the_command_line_wins() {
    let home = Home::trained(10);
    std::fs::write(
        home.path().join("home/bsfilter.conf"),
        "# site settings\nheader-prefix Site\ninsert-flag\nmethod g\n",
    )
    .unwrap();
    let o = home.run(&["--pipe"], Some(&spam(42)));
    assert!(stdout(&o).contains("X-Site-Flag: Yes"), "{}", stdout(&o));
    let o = home.run(&["--pipe", "--header-prefix", "Cli"], Some(&spam(42)));
    assert!(stdout(&o).contains("X-Cli-Flag: Yes"), "{}", stdout(&o));
    // an explicit --config-file that does not exist is an error
    let o = home.run(&["--config-file", "/nonexistent.conf"], Some("x"));
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
}

#[test]
fn bsfilterhome_environment() {
    let home = Home::new();
    let dir = home.path().join("envhome");
    let run = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("BSFILTERHOME", &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(spam(3).as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    assert_eq!(run(&["-s"]).status.code(), Some(0));
    assert!(dir.join("bsfilter.sqlite3").is_file());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
}

#[test]
fn show_tokens_and_auto_update() {
    let home = Home::trained(10);
    let o = home.run(&["--show-tokens"], Some(&spam(5)));
    let tokens = stdout(&o);
    for t in ["subject:cheap", "url:cheap-pills.example", "viagra", "uniquespam5"] {
        assert!(tokens.lines().any(|l| l == t), "{t} in {tokens}");
    }
    let before = home.status();
    let o = home.run(&["-a"], Some(&spam(300)));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(home.status()[3], before[3] + 1, "learned as spam");
}

#[test]
fn the_sites_authentication_results_as_tokens() {
    let home = Home::new();
    let mail = "Authentication-Results: mx.example.jp; dkim=pass header.d=news.example.org\n\
                Authentication-Results: other.example; dkim=pass header.d=bank.example\n\
                Subject: s\n\nbody\n";
    // as lda makes them with [filter] auth_results_id, so training by hand agrees
    let tokens = stdout(&home.run(&["--show-tokens", "--auth-results-id", "mx.example.jp"], Some(mail)));
    assert!(
        tokens.lines().any(|l| l == "auth:dkim=pass:news.example.org"),
        "{tokens}"
    );
    assert!(!tokens.contains("bank.example"), "{tokens}");
    let plain = stdout(&home.run(&["--show-tokens"], Some(mail)));
    assert!(!plain.contains("auth:"), "{plain}");
}

#[test]
fn system_db_is_layered_under_the_user_db() {
    let system = Home::trained(20);
    let user = Home::new();
    let sys_path = system.path().join("home");
    let s = user.file("s", &spam(900));
    // the user has learned nothing: the system decides
    let o = user.run(&["--system-db", sys_path.to_str().unwrap(), s.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // without it, nothing is known
    let o = user.run(&[s.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    // a user who says this kind of mail is clean wins over the system
    user.learn("-c", "mine", (2000..2020).map(spam));
    let o = user.run(&["--system-db", sys_path.to_str().unwrap(), s.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
}

#[test]
fn a_new_database_is_private_unless_its_directory_is_shared() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // a new home (made 0700): every file of the database 0600, whatever
    // the umask, as the original bsfilter's
    let home = Home::trained(5);
    let s = home.file("s", &spam(77));
    assert_eq!(home.run(&[s.to_str().unwrap()], None).status.code(), Some(0));
    let dir = home.path().join("home");
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(entry.metadata().unwrap().mode() & 0o777, 0o600, "{name}");
        seen.push(name);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "bsfilter.sqlite3",
            "bsfilter.sqlite3-shm",
            "bsfilter.sqlite3-snapshot",
            "bsfilter.sqlite3-wal"
        ]
    );
    // a site-wide database in a directory the administrator opened to
    // readers: readable, not writable, by the others
    let site = Home::new();
    let shared = site.path().join("home");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    site.learn("--add-spam", "s", (0..3).map(spam));
    let mode = std::fs::metadata(shared.join("bsfilter.sqlite3")).unwrap().mode() & 0o777;
    assert_eq!(mode & 0o644, 0o644, "{mode:o}");
    assert_eq!(mode & 0o022, 0, "{mode:o}");
}

#[test]
fn no_progress_output_when_not_a_terminal() {
    let home = Home::new();
    let files: Vec<String> = (0..300)
        .map(|i| home.file(&format!("m{i}"), &spam(i)).display().to_string())
        .collect();
    let mut args = vec!["-s"];
    args.extend(files.iter().map(String::as_str));
    let o = home.run(&args, None);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stderr(&o), "");
    assert_eq!(home.status()[3], 300);
}

#[test]
fn a_user_without_write_access_reads_the_system_db() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // the administrator makes the site's directory readable, then trains
    let system = Home::new();
    let sys_home = system.path().join("home");
    std::fs::create_dir(&sys_home).unwrap();
    std::fs::set_permissions(&sys_home, std::fs::Permissions::from_mode(0o755)).unwrap();
    system.learn("--add-spam", "s", (0..10).map(spam));
    system.learn("-c", "h", (0..10).map(ham));
    let msg = system.file("new", &spam(4242));
    let as_root = std::fs::metadata(&msg).unwrap().uid() == 0;
    // the site-wide database is read-only for the user reading it
    for p in [system.path(), sys_home.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&msg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = if as_root {
        // root can write anywhere: read as nobody instead
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        std::fs::set_permissions(&sys_home, std::fs::Permissions::from_mode(0o555)).unwrap();
        Command::new(BIN)
    };
    let o = c
        .arg("--homedir")
        .arg("/nonexistent/user/home")
        .arg("--system-db")
        .arg(&sys_home)
        .arg(&msg)
        .output()
        .unwrap();
    std::fs::set_permissions(&sys_home, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(o.status.code(), Some(0), "spam by the system db: {}", stderr(&o));
}

/// An export written by Debian's bsfilter 1.0.19 (`--export-spam` after
/// learning two spam messages, one in Japanese): its `ja` lines are EUC-JP.
#[test]
fn imports_the_original_bsfilters_export() {
    let home = Home::new();
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/original-bsfilter-export-spam.txt"
    );
    let o = home.run(&["--import-spam", data], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let st = home.status();
    assert_eq!((st[1], st[3]), (0, 2), "two spam messages: {st:?}");
    let o = home.run(&["--export-spam"], None);
    let out = stdout(&o);
    for line in [
        "C body 東京 1",
        "C body カタカナ 1",
        "C subject cheap 1",
        "C from 田中 1",
        "C .internal file_count 2",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} in {out}");
    }
}

#[test]
fn jtokenizer_lindera_gives_words_and_a_missing_dictionary_is_a_config_error() {
    let home = Home::new();
    let mail = "Subject: test\nContent-Type: text/plain; charset=utf-8\n\n迷惑メールを無料で受け取る方法\n";
    let lindera = stdout(&home.run(&["--show-tokens", "-j", "lindera"], Some(mail)));
    let bigram = stdout(&home.run(&["--show-tokens", "--jtokenizer", "bigram"], Some(mail)));
    let has = |out: &str, t: &str| out.lines().any(|l| l == t);
    // morphemes: the verb whole; the bigram segmenter cuts it by script
    assert!(has(&lindera, "受け取る") && has(&lindera, "メール"), "{lindera}");
    assert!(!has(&bigram, "受け取る") && has(&bigram, "受"), "{bigram}");
    let o = home
        .cmd()
        .args(["--show-tokens", "-j", "lindera"])
        .env("BSFILTER_IPADIC", home.path().join("no-such-dictionary"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(stderr(&o).contains("Japanese dictionary"), "{}", stderr(&o));
    assert_eq!(home.run(&["-j", "mecab"], Some(mail)).status.code(), Some(64));
}

#[test]
fn classifying_writes_the_snapshot_training_drops_it_update_rebuilds_it() {
    let home = Home::trained(20);
    let snapshot = home.path().join("home/bsfilter.sqlite3-snapshot");
    assert!(!snapshot.exists(), "training leaves none");
    let s = home.file("new-spam", &spam(1000));
    let first = home.run(&[s.to_str().unwrap()], None);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(snapshot.exists(), "written after a classification read the database");
    // from the snapshot: the same verdict, the same probability
    let second = home.run(&[s.to_str().unwrap()], None);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(stdout(&second), stdout(&first));

    // the user relabels this kind of mail as clean: the snapshot goes, and
    // the very next classification sees the change
    home.learn("-c", "mine", (3000..3040).map(spam));
    assert!(!snapshot.exists());
    let relabelled = home.run(&[s.to_str().unwrap()], None);
    assert_eq!(relabelled.status.code(), Some(1), "{}", stdout(&relabelled));

    // --update (as the original's probability table update) writes it
    // straight away, alone or after training
    std::fs::remove_file(&snapshot).unwrap();
    assert_eq!(home.run(&["-u"], None).status.code(), Some(0));
    assert!(snapshot.exists());
    let m = home.file("more", &ham(77));
    assert_eq!(home.run(&["-cu", m.to_str().unwrap()], None).status.code(), Some(0));
    assert!(snapshot.exists());
    assert_eq!(home.run(&[s.to_str().unwrap()], None).status.code(), Some(1));

    // --auto-update learns as it goes: it reads the database, not the snapshot
    let o = home.run(&["-a"], Some(&spam(4000)));
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    assert!(!snapshot.exists(), "auto-update trained, so the snapshot went");
}

/// procmail runs bsfilter once per message, so its start-up is part of
/// every message: it loads libc and nothing else (link/README.md).
#[test]
fn bsfilter_needs_only_libc() {
    assert_eq!(e2e_tests::needed_libraries(BIN), ["libc.so.6"]);
}

#[test]
fn the_originals_spellings_mean_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let message = dir.path().join("m");
    std::fs::write(&message, spam(5)).unwrap();
    let m = message.to_str().unwrap();
    for program in [BIN, ORIGINAL] {
        let home = dir.path().join(if program == BIN { "ours" } else { "original" });
        std::fs::create_dir(&home).unwrap();
        // --revision: a revision line, exit 0
        let o = run_program(program, &home, &["--revision"]);
        assert_eq!(o.status.code(), Some(0), "{program}");
        assert!(stdout(&o).starts_with("bsfilter release "), "{program}: {}", stdout(&o));
        // abbreviations Ruby's option parser takes
        for args in [&["--add-sp", m][..], &["--add-sp", "--upd", m], &["--show-db"]] {
            let o = run_program(program, &home, args);
            assert_eq!(o.status.code(), Some(0), "{program} {args:?}: {}", stderr(&o));
        }
        let o = run_program(program, &home, &["--pipe", "--insert-prob", m]);
        assert_eq!(o.status.code(), Some(0), "{program}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("\nX-Spam-Probability: "),
            "{program}: {}",
            stdout(&o)
        );
        // a negative number as a value: everything is spam
        let o = run_program(program, &home, &["--spam-cutoff", "-1", m]);
        assert_eq!(o.status.code(), Some(0), "{program}: {}", stderr(&o));
        // ambiguous: refused by both
        let o = run_program(program, &home, &["--ins", m]);
        assert_ne!(o.status.code(), Some(0), "{program}");
    }
}

#[test]
fn an_old_bsfilter_conf_with_imap_and_pop_settings_still_filters() {
    let dir = tempfile::tempdir().unwrap();
    let message = dir.path().join("m");
    std::fs::write(&message, spam(5)).unwrap();
    let clean = dir.path().join("c");
    std::fs::write(&clean, ham(5)).unwrap();
    let conf = "# the original's sample, and what sites add\nimap-server imap.example.jp\nimap-auth loginc\n\
                imap-user alice\nimap-password secret\npop-server pop.example.jp\nssl\npid-file /tmp/x.pid\n\
                tasktray\nshow-new-token\nignore-after-last-atag\njtokenizer block\nspam-cutoff 0.9\n";
    for program in [BIN, ORIGINAL] {
        let home = dir.path().join(if program == BIN { "ours" } else { "original" });
        std::fs::create_dir(&home).unwrap();
        std::fs::write(home.join("bsfilter.conf"), conf).unwrap();
        for (class, m) in [("--add-spam", &message), ("--add-clean", &clean)] {
            let o = run_program(program, &home, &[class, "--update", m.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(0), "{program}: {}", stderr(&o));
        }
        let o = run_program(program, &home, &[message.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{program}: spam: {}", stderr(&o));
        if program == BIN {
            // each skipped line said once, with its file and line
            let said = stderr(&o);
            let conf_path = home.join("bsfilter.conf").display().to_string();
            assert!(
                said.contains(&format!("{conf_path}:2: `imap-server` ignored")),
                "{said}"
            );
            assert!(said.contains(&format!("{conf_path}:7: `ssl` ignored")), "{said}");
            assert!(
                said.contains(&format!("{conf_path}:12: jtokenizer block is not here: using bigram")),
                "{said}"
            );
        }
    }
    // on the command line the refusal stays, naming what to use instead
    let o = run_program(
        BIN,
        &dir.path().join("ours"),
        &["--imap-server", "x", message.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("use imapd"), "{}", stderr(&o));
    // a mistake in the file names the file and the line
    let home = dir.path().join("ours");
    std::fs::write(home.join("bsfilter.conf"), "method rf\nspam-cutoff many\n").unwrap();
    let o = run_program(BIN, &home, &[message.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(78));
    let conf_path = home.join("bsfilter.conf").display().to_string();
    assert!(
        stderr(&o).contains(&format!("{conf_path}:2: --spam-cutoff many")),
        "{}",
        stderr(&o)
    );
    std::fs::write(home.join("bsfilter.conf"), "metod rf\n").unwrap();
    let o = run_program(BIN, &home, &[message.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(78));
    assert!(stderr(&o).contains(&format!("{conf_path}:1: ")), "{}", stderr(&o));
}

#[test]
fn every_pipe_mode_keeps_a_from_line_first_as_the_original() {
    // procmail hands filters the mbox From line; the learning modes pass
    // the message on too, and each must leave the same bytes as the original
    let dir = tempfile::tempdir().unwrap();
    let message = "From a@b Mon Jan  1 00:00:00 2024\nSubject: hi\nX-Spam-Flag: forged\n\nbody\nFrom the body\n";
    for (i, mode) in [&["-s"][..], &["-c"], &["-a"], &["-s", "-u"], &["-S"], &["-C"]]
        .iter()
        .enumerate()
    {
        let outputs: Vec<Vec<u8>> = [BIN, ORIGINAL]
            .iter()
            .map(|program| {
                let home = dir.path().join(format!("{i}-{}", program.len()));
                std::fs::create_dir(&home).unwrap();
                let mut child = Command::new(program)
                    .arg("--homedir")
                    .arg(&home)
                    .args(*mode)
                    .args(["--pipe", "--insert-flag", "--mark-spam-subject"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                child.stdin.take().unwrap().write_all(message.as_bytes()).unwrap();
                let o = child.wait_with_output().unwrap();
                assert_eq!(o.status.code(), Some(0), "{program} {mode:?}");
                o.stdout
            })
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&outputs[0]),
            String::from_utf8_lossy(&outputs[1]),
            "{mode:?}: ours, then the original"
        );
        assert!(outputs[0].starts_with(b"From a@b "), "{mode:?}");
    }
}
