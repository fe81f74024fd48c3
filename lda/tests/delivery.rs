//! The `lda` binary delivering into real mbox files.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use bsfilter::mbox;
use bsfilter::store::{Action, Class};
use bsfilter::{Filter, FilterConfig};

mod common;
use common::LDA;

/// A scratch site: one user in a passwd-file, a home, a configuration.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(extra_config: &str) -> Site {
        Site::with_mailbox("", extra_config)
    }
    /// `mailbox_keys` go into [mailbox], `extra_config` after it.
    fn with_mailbox(mailbox_keys: &str, extra_config: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home/alice");
        std::fs::create_dir_all(&home).unwrap();
        // the uid we run as, so lda may deliver (as root it stays root)
        let uid = std::fs::metadata(&home).unwrap().uid();
        common::write_site(dir.path(), uid, &home, "~/mail/inbox", mailbox_keys, extra_config);
        Site { dir }
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home/alice")
    }
    fn mbox(&self, name: &str) -> PathBuf {
        if name == "INBOX" {
            self.home().join("mail/inbox")
        } else {
            self.home().join("mail").join(name)
        }
    }
    fn lda(&self, args: &[&str], message: &[u8]) -> Output {
        common::run_lda(&self.dir.path().join("mailkit.toml"), args, message)
    }
    fn messages(&self, folder: &str) -> Vec<Vec<u8>> {
        match std::fs::read(self.mbox(folder)) {
            Ok(data) => mbox::split(&data).iter().map(|m| m.message()).collect(),
            Err(_) => Vec::new(),
        }
    }
    /// Trains alice's filter on a few spam and clean messages.
    fn train(&self) {
        let filter = Filter::new(FilterConfig::new(self.home().join(".bsfilter")));
        let mut db = filter.open_user_db().unwrap();
        let spam: Vec<_> = (0..20).map(|i| filter.analyze(spam(i).as_bytes(), None)).collect();
        let ham: Vec<_> = (0..20).map(|i| filter.analyze(ham(i).as_bytes(), None)).collect();
        filter
            .train(&mut db, &spam.iter().collect::<Vec<_>>(), Action::Add(Class::Spam))
            .unwrap();
        filter
            .train(&mut db, &ham.iter().collect::<Vec<_>>(), Action::Add(Class::Clean))
            .unwrap();
    }
}

fn spam(n: usize) -> String {
    format!(
        "From: Deals <promo@cheap-pills.example>\nSubject: Cheap pills offer {n}\nMessage-ID: <s{n}@x>\n\n\
         Buy cheap pills now, viagra discount at http://cheap-pills.example/buy unique{n}\n"
    )
}

fn ham(n: usize) -> String {
    format!(
        "From: Carol <carol@work.example>\nSubject: Project meeting {n}\nMessage-ID: <h{n}@x>\n\n\
         The project review moved to Thursday; bring the quarterly report. note{n}\n"
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn clean_to_inbox_spam_to_spam_with_verdict_headers() {
    let site = Site::new("");
    site.train();
    let forged = spam(100).replacen("Subject:", "X-Spam-Flag: NO\nX-Spam-Probability: 0.000000\nSubject:", 1);
    let o = site.lda(&["-d", "alice", "-f", "promo@cheap-pills.example"], forged.as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = site.lda(&["-d", "alice", "-f", "carol@work.example"], ham(100).as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let spam_box = site.messages("Spam");
    assert_eq!(spam_box.len(), 1);
    let s = String::from_utf8(spam_box[0].clone()).unwrap();
    assert_eq!(s.matches("X-Spam-Flag:").count(), 1, "{s}");
    assert!(
        s.contains("X-Spam-Flag: Yes\n") && !s.contains("X-Spam-Probability: 0.000000"),
        "{s}"
    );
    let inbox = site.messages("INBOX");
    assert_eq!(inbox.len(), 1);
    let h = String::from_utf8(inbox[0].clone()).unwrap();
    assert!(h.contains("X-Spam-Flag: No\n"), "{h}");
    // the body is what was sent
    assert!(h.ends_with(ham(100).split_once("\n\n").unwrap().1), "{h}");
    // the From line carries the envelope sender and an asctime date
    let data = std::fs::read(site.mbox("INBOX")).unwrap();
    let first = String::from_utf8_lossy(&data[..data.iter().position(|&b| b == b'\n').unwrap()]).into_owned();
    assert!(
        first.starts_with("From carol@work.example ") && first.len() == "From carol@work.example ".len() + 24,
        "{first}"
    );
    // mode 0600 mailboxes
    assert_eq!(std::fs::metadata(site.mbox("INBOX")).unwrap().mode() & 0o777, 0o600);
}

#[test]
fn first_delivery_writes_the_token_snapshot_later_ones_use_it() {
    let site = Site::new("");
    site.train();
    let snapshot = bsfilter::snapshot::path_for(&site.home().join(".bsfilter/bsfilter.sqlite3"));
    assert!(!snapshot.exists(), "training leaves none");
    // the same message twice: first read from the database (which leaves
    // the snapshot behind), then from the snapshot
    for round in ["database", "snapshot"] {
        let o = site.lda(&["-d", "alice"], spam(200).as_bytes());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(snapshot.exists(), "after the delivery from the {round}");
        let o = site.lda(&["-d", "alice"], ham(200).as_bytes());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let (spam_box, inbox) = (site.messages("Spam"), site.messages("INBOX"));
    assert_eq!((spam_box.len(), inbox.len()), (2, 2));
    let probability = |m: &[u8]| {
        String::from_utf8_lossy(m)
            .lines()
            .find(|l| l.starts_with("X-Spam-Probability:"))
            .map(str::to_owned)
            .expect("a probability header")
    };
    assert_eq!(probability(&spam_box[0]), probability(&spam_box[1]));
    assert_eq!(probability(&inbox[0]), probability(&inbox[1]));
    // auto-training removes the snapshot at once, so it writes none
    let learning = Site::new("[filter]\nauto_train = true\n");
    learning.train();
    assert_eq!(
        learning.lda(&["-d", "alice"], ham(300).as_bytes()).status.code(),
        Some(0)
    );
    let learning_snapshot = bsfilter::snapshot::path_for(&learning.home().join(".bsfilter/bsfilter.sqlite3"));
    assert!(!learning_snapshot.exists());
}

/// lda's verdict headers carry the library's verdicts to the printed digit,
/// also for a message whose score is not saturated at 0 or 1.
#[test]
fn lda_scores_as_the_library_does() {
    let site = Site::new("");
    site.train();
    let mixed = "From: Carol <carol@work.example>\nSubject: Cheap project pills\nMessage-ID: <m1@x>\n\n\
                 The project review: buy cheap pills now, bring the quarterly discount report.\n";
    let filter = Filter::new(FilterConfig::new(site.home().join(".bsfilter")));
    let classifier = filter.classifier(1).unwrap();
    let mut delivered = Vec::new();
    for message in [mixed.to_owned(), spam(400), ham(400)] {
        let o = site.lda(&["-d", "alice"], message.as_bytes());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let verdict = classifier
            .classify(&[&filter.analyze(message.as_bytes(), None)])
            .unwrap()[0];
        delivered.push(verdict.probability);
        let mut all = site.messages("INBOX");
        all.extend(site.messages("Spam"));
        let expected = format!("X-Spam-Probability: {:.6}", verdict.probability);
        assert!(
            all.iter()
                .any(|m| String::from_utf8_lossy(m).lines().any(|l| l == expected)),
            "no delivered message carries {expected}"
        );
    }
    assert!(
        delivered[0] > 0.001 && delivered[0] < 0.999,
        "the mixed message is in between: {}",
        delivered[0]
    );
}

/// lda's start-up is part of every delivery: it loads libc and nothing
/// else (no libgcc_s, no libm; see link/README.md and bsfilter's
/// libm_symbols).
#[test]
fn lda_needs_only_libc() {
    assert_eq!(e2e_tests::needed_libraries(common::LDA), ["libc.so.6"]);
}

#[test]
fn folder_option_user_errors() {
    let site = Site::new("[filter]\nenabled = false\n");
    assert_eq!(
        site.lda(&["-d", "alice", "-m", "lists/rust"], b"Subject: x\n\nhi\n")
            .status
            .code(),
        Some(0)
    );
    assert_eq!(site.messages("lists/rust"), vec![b"Subject: x\n\nhi\n".to_vec()]);
    let o = site.lda(&["-d", "nobody-here"], b"x");
    assert_eq!(o.status.code(), Some(67), "{}", stderr(&o));
    for bad in ["../../etc/x", "/tmp/x", "a/../../b"] {
        let o = site.lda(&["-d", "alice", "-m", bad], b"x");
        assert_eq!(o.status.code(), Some(64), "{bad}: {}", stderr(&o));
    }
    assert_eq!(site.lda(&["-d", "alice", "--bogus"], b"x").status.code(), Some(64));
    // a bad configuration file
    let bad = site.dir.path().join("bad.toml");
    std::fs::write(&bad, "[mailbox]\ninbx = 1\n").unwrap();
    let o = Command::new(LDA)
        .arg("--config")
        .arg(&bad)
        .args(["-d", "alice"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
}

#[test]
fn filter_failure_never_loses_mail() {
    let site = Site::new("");
    std::fs::create_dir_all(site.home().join(".bsfilter")).unwrap();
    std::fs::write(site.home().join(".bsfilter/bsfilter.sqlite3"), vec![b'x'; 8192]).unwrap();
    let o = site.lda(&["-d", "alice"], ham(1).as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("delivered unfiltered"), "{}", stderr(&o));
    let inbox = site.messages("INBOX");
    assert_eq!(inbox.len(), 1);
    let m = String::from_utf8(inbox[0].clone()).unwrap();
    assert!(m.contains("X-Spam-Filter-Error: not filtered: token database"), "{m}");
    assert!(!m.contains("X-Spam-Flag"), "{m}");

    // the lindera tokenizer configured but its dictionary missing: the
    // same (a filter failure), never a lost message
    let japanese = Site::new("[filter]\njtokenizer = \"lindera\"\n");
    let o = Command::new(LDA)
        .arg("--config")
        .arg(japanese.dir.path().join("mailkit.toml"))
        .args(["-d", "alice"])
        .env("BSFILTER_IPADIC", "/nonexistent/ipadic")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(ham(1).as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m = String::from_utf8(japanese.messages("INBOX")[0].clone()).unwrap();
    assert!(
        m.contains("X-Spam-Filter-Error: not filtered: Japanese dictionary"),
        "{m}"
    );

    // with on_error = "tempfail": exit 75 and nothing written
    let strict = Site::new("[filter]\non_error = \"tempfail\"\n");
    std::fs::create_dir_all(strict.home().join(".bsfilter")).unwrap();
    std::fs::write(strict.home().join(".bsfilter/bsfilter.sqlite3"), vec![b'x'; 8192]).unwrap();
    let o = strict.lda(&["-d", "alice"], ham(1).as_bytes());
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(!strict.mbox("INBOX").exists());
}

#[test]
fn discard_and_auto_train() {
    let site = Site::new("[filter]\ndiscard_above = 0.99\nauto_train = true\n");
    site.train();
    let o = site.lda(&["-d", "alice", "-v"], spam(500).as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("discarded"), "{}", stderr(&o));
    assert!(site.messages("Spam").is_empty());
    // clean mail is delivered and learned
    let filter = Filter::new(FilterConfig::new(site.home().join(".bsfilter")));
    let before = filter.open_user_db().unwrap().read(|r| r.totals()).unwrap();
    assert_eq!(site.lda(&["-d", "alice"], ham(501).as_bytes()).status.code(), Some(0));
    let after = filter.open_user_db().unwrap().read(|r| r.totals()).unwrap();
    assert_eq!(after.clean_messages, before.clean_messages + 1);
}

#[test]
fn a_leading_mbox_from_line_is_the_envelope_not_the_message() {
    // what procmail, or Postfix's local running `|lda` from a .forward,
    // hands a command
    let site = Site::new("[filter]\nenabled = false\n");
    let message = b"From carol@example.org  Tue Dec  1 10:00:00 2026\nSubject: forwarded\n\nFrom the body\n";
    let o = site.lda(&["-d", "alice"], message);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = site.lda(&["-d", "alice", "-f", "dave@example.org"], message);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let data = std::fs::read(site.mbox("INBOX")).unwrap();
    let stored = mbox::split(&data);
    assert_eq!(stored.len(), 2);
    // its sender when none was given; -f wins otherwise
    assert_eq!(stored[0].envelope_sender(), Some("carol@example.org"));
    assert_eq!(stored[1].envelope_sender(), Some("dave@example.org"));
    for m in &stored {
        assert_eq!(m.message(), b"Subject: forwarded\n\nFrom the body\n");
    }
}

#[test]
fn awkward_messages_round_trip_exactly() {
    let site = Site::new("[filter]\nenabled = false\n");
    let mut big = b"Subject: big\n\n".to_vec();
    for i in 0..(50 << 20) / 64 {
        big.extend_from_slice(format!("{i:063}\n").as_bytes());
        if i % 10_000 == 0 {
            big.extend_from_slice(b"From inside the big one\n");
        }
    }
    let messages: Vec<Vec<u8>> = vec![
        b"Subject: from lines\n\nFrom the start\n>From quoted\n>>From twice\nFrom\n".to_vec(),
        b"Subject: nul\n\nNUL\0bytes\0\n".to_vec(),
        b"Subject: no final newline\n\nlast line".to_vec(),
        b"Subject: crlf\r\n\r\nFrom crlf\r\nline\r\n".to_vec(),
        big,
        b"Subject: after the big one\n\nok\n".to_vec(),
    ];
    for m in &messages {
        let o = site.lda(&["-d", "alice", "-f", "sender@example.com"], m);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let got = site.messages("INBOX");
    assert_eq!(got.len(), messages.len());
    for (g, m) in got.iter().zip(&messages) {
        assert!(g == m, "message of {} bytes differs (got {} bytes)", m.len(), g.len());
    }
}

#[test]
fn eight_concurrent_deliverers_each_message_exactly_once() {
    const WORKERS: usize = 8;
    const EACH: usize = 500;
    let site = std::sync::Arc::new(Site::new("[filter]\nenabled = false\n"));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let site = site.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let m = format!("Subject: w{w} m{i}\nMessage-ID: <{w}.{i}@t>\n\nFrom worker {w}\nbody {i}\n");
                    let o = site.lda(&["-d", "alice"], m.as_bytes());
                    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let got = site.messages("INBOX");
    assert_eq!(got.len(), WORKERS * EACH);
    let mut seen = std::collections::HashSet::new();
    for m in &got {
        let text = String::from_utf8(m.clone()).unwrap();
        let subject = text.lines().next().unwrap().to_owned();
        let (w, i) = subject.strip_prefix("Subject: w").unwrap().split_once(" m").unwrap();
        let expected = format!("Subject: w{w} m{i}\nMessage-ID: <{w}.{i}@t>\n\nFrom worker {w}\nbody {i}\n");
        assert_eq!(text, expected);
        assert!(seen.insert(subject), "delivered twice");
    }
    assert!(!lda::lock::dotlock_path(&site.mbox("INBOX")).exists());
}

#[test]
fn lock_held_past_the_timeout_is_a_temporary_failure() {
    let site = Site::with_mailbox("lock_timeout = 0.3", "[filter]\nenabled = false\n");
    assert_eq!(
        site.lda(&["-d", "alice"], b"Subject: 1\n\none\n").status.code(),
        Some(0)
    );
    let before = std::fs::read(site.mbox("INBOX")).unwrap();
    // a live process holds the dotlock (our own pid is alive)
    let dotlock = lda::lock::dotlock_path(&site.mbox("INBOX"));
    std::fs::write(&dotlock, format!("{}\n", std::process::id())).unwrap();
    let o = site.lda(&["-d", "alice"], b"Subject: 2\n\ntwo\n");
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert_eq!(std::fs::read(site.mbox("INBOX")).unwrap(), before);
    std::fs::remove_file(&dotlock).unwrap();
    assert_eq!(
        site.lda(&["-d", "alice"], b"Subject: 2\n\ntwo\n").status.code(),
        Some(0)
    );
    assert_eq!(site.messages("INBOX").len(), 2);
}

#[test]
fn file_size_limit_mid_write_leaves_nothing_behind() {
    let site = Site::new("[filter]\nenabled = false\n");
    assert_eq!(
        site.lda(&["-d", "alice"], b"Subject: 1\n\none\n").status.code(),
        Some(0)
    );
    let before = std::fs::read(site.mbox("INBOX")).unwrap();
    let big = vec![b'a'; 4 << 20];
    // ulimit -f counts 512-byte blocks: 1 MiB
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -f 2048; exec {LDA} --config {} -d alice",
            site.dir.path().join("mailkit.toml").display()
        ))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&big).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert_eq!(std::fs::read(site.mbox("INBOX")).unwrap(), before);
    assert!(!lda::lock::dotlock_path(&site.mbox("INBOX")).exists());
}

#[test]
fn deliverer_killed_mid_write_leaves_no_partial_message() {
    let site = Site::new("[filter]\nenabled = false\n");
    assert_eq!(
        site.lda(&["-d", "alice"], b"Subject: 1\n\none\n").status.code(),
        Some(0)
    );
    let inbox = site.mbox("INBOX");
    let before = std::fs::metadata(&inbox).unwrap().len();
    // Deliver a huge message and kill the deliverer once the mbox grows.
    let mut huge = b"Subject: huge\n\n".to_vec();
    huge.resize(400 << 20, b'x');
    let mut child = Command::new(LDA)
        .arg("--config")
        .arg(site.dir.path().join("mailkit.toml"))
        .args(["-d", "alice"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&huge);
    });
    let mut killed_mid_write = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let len = std::fs::metadata(&inbox).map(|m| m.len()).unwrap_or(0);
        if len > before {
            child.kill().unwrap();
            killed_mid_write = std::fs::metadata(&inbox).unwrap().len() < before + (400 << 20);
            break;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let _ = child.wait();
    feeder.join().unwrap();
    assert!(killed_mid_write, "the deliverer was not caught mid-write");
    // The next delivery finds the dead writer's dotlock and cuts the mbox back.
    assert_eq!(
        site.lda(&["-d", "alice"], b"Subject: 2\n\ntwo\n").status.code(),
        Some(0)
    );
    let got = site.messages("INBOX");
    assert_eq!(
        got,
        vec![b"Subject: 1\n\none\n".to_vec(), b"Subject: 2\n\ntwo\n".to_vec()]
    );
}

/// The user table's quota (Dovecot's `userdb_quota_rule`): a delivery
/// that would take the user's mail files past the storage limit, or past
/// the message limit counted over every folder, is refused with exit 77
/// and "mailbox full" (as Dovecot's `lda -e`), the files untouched; with
/// `quota_full_tempfail` it is put off (75) instead.
#[test]
fn a_delivery_past_the_quota_is_refused_and_writes_nothing() {
    for (rules, tempfail, code) in [
        ("userdb_quota_rule=*:storage=2K", "", 77),
        ("userdb_quota_rule=*:storage=2K", "quota_full_tempfail = true", 75),
        ("userdb_quota_rule=*:messages=3", "", 77),
    ] {
        let site = Site::with_mailbox(tempfail, "[filter]\nenabled = false\n");
        let passwd = site.dir.path().join("passwd");
        let line = std::fs::read_to_string(&passwd).unwrap();
        std::fs::write(&passwd, line.trim_end().to_owned() + rules + "\n").unwrap();
        let body = "x".repeat(400);
        let mut delivered = 0;
        let refused = loop {
            // alternately INBOX and a folder: the limit is over all of them
            let args: &[&str] = if delivered % 2 == 0 {
                &["-d", "alice"]
            } else {
                &["-d", "alice", "-m", "Work"]
            };
            let before = (
                std::fs::read(site.mbox("INBOX")).ok(),
                std::fs::read(site.mbox("Work")).ok(),
            );
            let o = site.lda(args, format!("Subject: {delivered}\n\n{body}\n").as_bytes());
            if o.status.code() != Some(0) {
                let after = (
                    std::fs::read(site.mbox("INBOX")).ok(),
                    std::fs::read(site.mbox("Work")).ok(),
                );
                assert_eq!(before, after, "{rules}: a refused delivery wrote nothing");
                break o;
            }
            delivered += 1;
            assert!(delivered < 10, "{rules}: never refused");
        };
        assert_eq!(refused.status.code(), Some(code), "{rules}: {}", stderr(&refused));
        assert!(stderr(&refused).contains("mailbox full"), "{}", stderr(&refused));
        let files: u64 = ["INBOX", "Work"]
            .iter()
            .filter_map(|f| std::fs::metadata(site.mbox(f)).ok())
            .map(|m| m.len())
            .sum();
        if rules.contains("storage") {
            // as many ~460-byte messages as fit in 2 KB
            assert_eq!(delivered, 4, "{rules}");
            assert!(files <= 2048, "{files}");
        } else {
            assert_eq!(delivered, 3, "{rules}");
        }
        assert_eq!(site.messages("INBOX").len() + site.messages("Work").len(), delivered);
    }
}
