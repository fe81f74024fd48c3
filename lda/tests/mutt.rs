//! mutt (Debian's, installed by .ci/run) reads the mbox lda wrote: it finds
//! every message, and each body is the one delivered. mutt wants a
//! terminal, so it runs under `script`, copying every message into a
//! Maildir that the test then reads.

use std::os::unix::fs::MetadataExt;

mod common;

#[test]
fn mutt_reads_what_lda_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let uid = std::fs::metadata(&home).unwrap().uid();
    let config = common::write_site(dir.path(), uid, &home, "~/inbox", "", "[filter]\nenabled = false\n");
    let bodies: Vec<Vec<u8>> = vec![
        b"plain body\n".to_vec(),
        b"no final newline".to_vec(),
        b"crlf line\r\nsecond\r\n".to_vec(),
        b"a body\nwith\nseveral lines\n\nand a paragraph\n".to_vec(),
    ];
    for (i, body) in bodies.iter().enumerate() {
        let mut message = format!("Subject: message {i}\nMessage-ID: <{i}@lda.test>\n\n").into_bytes();
        message.extend_from_slice(body);
        assert!(common::run_lda(&config, &["-d", "alice"], &message).status.success());
    }

    let out = dir.path().join("copied");
    let mutt = format!(
        "mutt -n -F /dev/null -R -e 'set mbox_type=Maildir; set confirmcreate=no; set confirmappend=no; \
         set quit=yes; set wait_key=no; set auto_tag=yes; \
         push <tag-pattern>~A<enter><copy-message>{}<enter><quit>' -f {}",
        out.display(),
        home.join("inbox").display()
    );
    let status = e2e_tests::run_under_script(&mutt, &[]);
    assert!(status.success(), "mutt failed: {status:?}");

    let mut seen = 0;
    for entry in std::fs::read_dir(out.join("new")).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&data).into_owned();
        let i: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: message "))
            .and_then(|n| n.trim().parse().ok())
            .expect("a Subject mutt kept");
        let start = data.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
        assert_eq!(
            String::from_utf8_lossy(&data[start..]),
            String::from_utf8_lossy(&bodies[i]),
            "message {i}"
        );
        seen += 1;
    }
    assert_eq!(seen, bodies.len(), "mutt found every message");
}
