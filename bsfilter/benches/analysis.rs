//! Message analysis speed: `cargo bench -p bsfilter --bench analysis [LIST]`.
//!
//! What a fresh `lda` or `bsfilter --pipe` process spends on one message
//! before any counts are read: decoding (MIME, charsets, HTML) and
//! tokenizing, each as microseconds per message, median of five rounds over
//! the messages named one per line in LIST (default: the test half of the
//! SpamAssassin corpus's split a, `$CORPUS/splits/a.test`, CORPUS defaulting
//! to /tmp/corpus/spamassassin as ../shared/corpus/prepare.sh leaves it;
//! without it, `samples/`). Figures, not pass/fail: see BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bsfilter::decode::DecodedMessage;
use bsfilter::tokenize::{Bigram, Tokenizer, TokenizerOptions};

fn message_paths() -> Vec<PathBuf> {
    if let Some(list) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        let text = std::fs::read_to_string(&list).unwrap_or_else(|e| panic!("{list}: {e}"));
        return text.lines().filter(|l| !l.is_empty()).map(PathBuf::from).collect();
    }
    let corpus = PathBuf::from(std::env::var("CORPUS").unwrap_or_else(|_| "/tmp/corpus/spamassassin".into()));
    if let Ok(index) = std::fs::read_to_string(corpus.join("splits/a.test")) {
        return index
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(_, path)| corpus.join(path))
            .collect();
    }
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let mut paths = Vec::new();
    for dir in ["spam", "ham"] {
        for entry in std::fs::read_dir(samples.join(dir)).expect("samples/") {
            paths.push(entry.expect("samples/ entry").path());
        }
    }
    paths
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    let paths = message_paths();
    let messages: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    let bytes: usize = messages.iter().map(Vec::len).sum();
    let tokenizer = Tokenizer::new(TokenizerOptions::default(), Box::new(Bigram));
    let per_message = |seconds: f64| seconds * 1e6 / messages.len() as f64;
    let (mut decode_runs, mut tokenize_runs) = (Vec::new(), Vec::new());
    let mut tokens = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let decoded: Vec<DecodedMessage> = messages.iter().map(|m| DecodedMessage::parse(m)).collect();
        decode_runs.push(per_message(start.elapsed().as_secs_f64()));
        let start = Instant::now();
        tokens = decoded.iter().map(|d| tokenizer.tokenize(d, None).len()).sum::<usize>();
        tokenize_runs.push(per_message(start.elapsed().as_secs_f64()));
    }
    println!(
        "{} messages, {:.1} KB average, {:.0} tokens average",
        messages.len(),
        bytes as f64 / messages.len() as f64 / 1e3,
        tokens as f64 / messages.len() as f64
    );
    println!(
        "decode:   {:.1} µs per message (median of 5 rounds)",
        median(decode_runs)
    );
    println!(
        "tokenize: {:.1} µs per message (median of 5 rounds)",
        median(tokenize_runs)
    );
}
