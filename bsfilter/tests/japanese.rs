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

/// Bigram's tokens with every weight 1, as before overlapping bigrams were
/// weighed: the same tokens, so the same database serves both.
struct WholeBigrams;

impl bsfilter::tokenize::Segmenter for WholeBigrams {
    fn segment(&self, run: &str, emit: &mut dyn FnMut(&str)) {
        bsfilter::tokenize::Bigram.segment(run, emit)
    }
}

#[test]
fn overlapping_bigrams_weigh_half_in_a_verdict() {
    use bsfilter::store::{Action, Class};
    use bsfilter::{Analyzed, Filter, FilterConfig};
    let home = tempfile::tempdir().unwrap();
    let config = FilterConfig::new(home.path().join("db"));
    let weighed = Filter::new(config.clone());
    let whole = Filter::with_segmenter(config, Box::new(WholeBigrams));
    let spam = |i: usize| format!("Subject: s{i}\n\n今すぐ登録して高収入を手に入れましょう 限定{i}\n");
    let ham = |i: usize| format!("Subject: h{i}\n\nthe meeting notes for project {i} are attached\n");
    let mut store = weighed.open_user_db().unwrap();
    for (text, class) in [(spam as fn(usize) -> String, Class::Spam), (ham, Class::Clean)] {
        let msgs: Vec<Analyzed> = (0..20).map(|i| weighed.analyze(text(i).as_bytes(), None)).collect();
        weighed
            .train(&mut store, &msgs.iter().collect::<Vec<_>>(), Action::Add(class))
            .unwrap();
    }
    drop(store);
    // Japanese spam words beside English ham words: the bigrams' evidence
    // counts half, so the message leans less to spam than when every
    // bigram counted whole
    let mixed = "Subject: x\n\n今すぐ登録して高収入を the meeting notes for project\n";
    let verdict = |f: &Filter| {
        let m = f.analyze(mixed.as_bytes(), None);
        f.classifier(1).unwrap().classify(&[&m]).unwrap()[0]
    };
    let (half, full) = (verdict(&weighed), verdict(&whole));
    assert!(half.strength < full.strength, "{half:?} {full:?}");
}
