//! The lindera tokenizer against MeCab with the same dictionary (IPADIC):
//! a few hundred Japanese sentences — business mail, newsletters, ads,
//! spam-like text, ASCII, numbers, symbols — must split into identical
//! surface forms. MeCab and its UTF-8 IPADIC come from Debian
//! (`apt-get install mecab mecab-ipadic-utf8`, installed by .ci/run).

use std::io::Write;
use std::process::{Command, Stdio};

use bsfilter::morphology::Lindera;

fn sentences() -> Vec<String> {
    let text = include_str!("data/ja-sentences.txt");
    let base: Vec<&str> = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let mut all: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    // joined pairs: new contexts at the seams
    let n = base.len();
    all.extend((0..n).map(|i| format!("{}{}", base[i], base[(i * 7 + 3) % n])));
    // ASCII, numbers, full-width forms and symbols around the text
    let frames = [
        "【速報】{}",
        "{}（2026年11月28日）",
        "No.{i} {}",
        "{} http://example.com/?id={i}",
        "ＵＲＬ：{}",
        "{}★☆★ 0120-{i}-{i}",
    ];
    all.extend((0..n).map(|i| {
        frames[i % frames.len()]
            .replace("{i}", &(i * 37).to_string())
            .replace("{}", base[i])
    }));
    all
}

#[test]
fn lindera_splits_like_mecab() {
    let lindera = Lindera::load().expect("the IPADIC dictionary is built (apt-get install mecab-ipadic)");
    let sentences = sentences();
    assert!(sentences.len() >= 300, "{} sentences", sentences.len());

    let mut mecab = Command::new("mecab");
    for dic in [
        "/var/lib/mecab/dic/ipadic-utf8",
        "/usr/lib/x86_64-linux-gnu/mecab/dic/ipadic-utf8",
    ] {
        if std::path::Path::new(dic).is_dir() {
            mecab.args(["-d", dic]);
            break;
        }
    }
    let mut child = mecab
        .arg("-Owakati")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("mecab is installed (apt-get install mecab mecab-ipadic-utf8)");
    let input = sentences.join("\n") + "\n";
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    let expected: Vec<Vec<String>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert_eq!(expected.len(), sentences.len());
    let morphemes: usize = expected.iter().map(Vec::len).sum();
    assert!(morphemes > 10 * sentences.len(), "{morphemes} morphemes from MeCab");
    eprintln!("{} sentences, {morphemes} morphemes", sentences.len());

    let mut differing = Vec::new();
    for (sentence, want) in sentences.iter().zip(&expected) {
        let mut got = Vec::new();
        lindera.surfaces(sentence, &mut |t| {
            if !t.trim().is_empty() {
                got.push(t.to_owned());
            }
        });
        if &got != want {
            differing.push(format!(
                "{sentence}\n  mecab:   {}\n  lindera: {}",
                want.join(" "),
                got.join(" ")
            ));
        }
    }
    assert!(
        differing.is_empty(),
        "{} of {} sentences split differently:\n{}",
        differing.len(),
        sentences.len(),
        differing.join("\n")
    );
}
