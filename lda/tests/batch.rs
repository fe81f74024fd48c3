//! Appending several messages under one lock and one sync (what mtad's
//! delivery helper does with mail that queued up for one mailbox): all
//! land in order; and when one cannot be written (a file size limit, as a
//! quota), it fails alone, the mailbox cut back to the others.
//! (One test in this binary: it forks, so no other test thread may be
//! running.)

use std::os::fd::FromRawFd;

use lda::deliver::append_all;
use lda::dir::MboxPath;
use lda::lock::LockOptions;

fn options() -> LockOptions<'static> {
    LockOptions {
        create: true,
        ..LockOptions::default()
    }
}

#[test]
fn a_batch_lands_in_order_and_a_message_that_cannot_be_written_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mbox = MboxPath::new(dir.path(), "inbox");
    let first = b"Subject: one\n\nFrom the first\n".to_vec();
    let second = b"Subject: two\n\nsecond\n".to_vec();
    let results = append_all(
        &mbox,
        &[
            ("From a@example.org Tue Dec  1 00:00:00 2026\n", &first),
            ("From b@example.org Tue Dec  1 00:00:01 2026\n", &second),
        ],
        options(),
    );
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let data = std::fs::read(mbox.full()).unwrap();
    let messages = bsfilter::mbox::split(&data);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].message(), first, "quoted on disk, read back whole");
    assert!(data.windows(16).any(|w| w == b"\n>From the first"));
    assert_eq!(messages[1].message(), second);

    // a child whose files may grow only 4 KB past the mailbox: the big
    // message in the middle fails, the small ones around it land
    let before = data.len() as u64;
    let big = [b"Subject: big\n\n".to_vec(), vec![b'x'; 64 * 1024], b"\n".to_vec()].concat();
    let small = b"Subject: small\n\nfits\n".to_vec();
    let mut pipe = [0; 2];
    // SAFETY: pipe has room for two descriptors.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    // SAFETY: this test binary runs this one test: no other thread holds
    // a lock the child could need.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let limit = libc::rlimit {
            rlim_cur: before + 4096,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: plain system calls on valid arguments, then _exit.
        unsafe {
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
        let results = append_all(
            &mbox,
            &[
                ("From c@example.org Tue Dec  1 00:00:02 2026\n", &small),
                ("From d@example.org Tue Dec  1 00:00:03 2026\n", &big),
                ("From e@example.org Tue Dec  1 00:00:04 2026\n", &small),
            ],
            options(),
        );
        let said: String = results.iter().map(|r| if r.is_ok() { 'o' } else { 'x' }).collect();
        // SAFETY: the write end, written once, then the child ends.
        unsafe {
            libc::write(pipe[1], said.as_ptr().cast(), said.len());
            libc::_exit(0);
        }
    }
    // SAFETY: our descriptors: the write end closed, the read end owned.
    unsafe { libc::close(pipe[1]) };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut unsafe { std::fs::File::from_raw_fd(pipe[0]) }, &mut said).unwrap();
    let mut status = 0;
    // SAFETY: waiting for our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(said, "oxo");
    let data = std::fs::read(mbox.full()).unwrap();
    let messages = bsfilter::mbox::split(&data);
    let subjects: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.message()[..14]).into_owned())
        .collect();
    assert_eq!(
        subjects,
        [
            "Subject: one\n\n",
            "Subject: two\n\n",
            "Subject: small",
            "Subject: small"
        ]
    );
    assert!(
        !data.windows(100).any(|w| w.iter().all(|&b| b == b'x')),
        "nothing of the big one"
    );
    assert!(!dir.path().join("inbox.lock").exists(), "the locks are released");
}
