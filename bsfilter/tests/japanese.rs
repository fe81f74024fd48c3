//! The Japanese test messages in corpus/ja decode to what a Japanese mail
//! client shows: one per charset, per mislabelling, raw and encoded
//! headers, HTML, emoji. Each `NAME.eml` has a `NAME.expected`: a
//! `Subject: …` line, an empty line, and the body text.

use bsfilter::decode::DecodedMessage;

/// White space runs as one space: HTML text extraction decides line breaks.
fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn every_japanese_sample_decodes_as_a_reader_sees_it() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../corpus/ja");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".eml")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 12, "{names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let raw = std::fs::read(format!("{dir}/{name}.eml")).unwrap();
        let expected = std::fs::read_to_string(format!("{dir}/{name}.expected")).unwrap();
        let (subject_line, body) = expected.split_once("\n\n").unwrap();
        let subject = subject_line.strip_prefix("Subject: ").unwrap();
        let m = DecodedMessage::parse(&raw);
        let got_subject = m
            .headers
            .iter()
            .find(|h| h.name == "subject")
            .map(|h| h.value.as_str())
            .unwrap_or("");
        if got_subject != subject {
            failures.push(format!("{name}: subject {got_subject:?}, expected {subject:?}"));
        }
        if squeeze(&m.body_text()) != squeeze(body) {
            failures.push(format!("{name}: body {:?}, expected {:?}", m.body_text(), body));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
