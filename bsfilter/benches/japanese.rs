//! Japanese tokenization speed: `cargo bench -p bsfilter --bench japanese`.
//!
//! Prints MB/s of Japanese text for lindera (morphological, IPADIC) and the
//! bigram segmenter on the same text — tests/data/ja-sentences.txt repeated
//! to about 8 MB, one sentence at a time as message text arrives — and the
//! cost of loading the memory-mapped dictionary, which every process that
//! uses lindera pays once; beside them MeCab (`mecab -Owakati`, the same
//! IPADIC, when installed) on the same text as the peer. Figures, not
//! pass/fail: see BENCHMARKS.md.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use bsfilter::morphology::Lindera;
use bsfilter::tokenize::{Bigram, Segmenter};

fn main() {
    let sentences: Vec<&str> = include_str!("../tests/data/ja-sentences.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let bytes_per_round: usize = sentences.iter().map(|s| s.len()).sum();
    let rounds = (8 << 20) / bytes_per_round + 1;
    let total = (bytes_per_round * rounds) as f64 / 1e6;

    let loads: Vec<f64> = (0..20)
        .map(|_| {
            let start = Instant::now();
            let lindera = Lindera::load().expect("IPADIC built (apt-get install mecab-ipadic)");
            std::hint::black_box(&lindera);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let mut sorted = loads.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "lindera dictionary load: median {:.2} ms (first {:.2} ms)",
        sorted[sorted.len() / 2],
        loads[0]
    );

    let lindera = Lindera::load().expect("IPADIC built");
    let segmenters: [(&str, &dyn Segmenter); 2] = [("lindera", &lindera), ("bigram", &Bigram)];
    for (name, segmenter) in segmenters {
        for run in 0..3 {
            let mut tokens = 0usize;
            let start = Instant::now();
            for _ in 0..rounds {
                for s in &sentences {
                    segmenter.segment(s, &mut |t| tokens += t.len());
                }
            }
            let seconds = start.elapsed().as_secs_f64();
            println!(
                "{name} run {run}: {total:.1} MB in {seconds:.3} s = {:.1} MB/s ({tokens} token bytes)",
                total / seconds
            );
        }
    }

    // the peer: MeCab over the same text, one line per sentence
    let text: String = (0..rounds)
        .flat_map(|_| sentences.iter().map(|s| format!("{s}\n")))
        .collect();
    for run in 0..3 {
        let start = Instant::now();
        let Ok(mut mecab) = Command::new("mecab")
            .arg("-Owakati")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
        else {
            println!("mecab: not installed (apt-get install mecab mecab-ipadic-utf8)");
            break;
        };
        let mut stdin = mecab.stdin.take().expect("piped");
        stdin.write_all(text.as_bytes()).expect("mecab reads its input");
        drop(stdin);
        mecab.wait().expect("mecab runs");
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "mecab run {run}: {total:.1} MB in {seconds:.3} s = {:.1} MB/s",
            total / seconds
        );
    }
}
