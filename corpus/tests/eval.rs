//! bsfilter-eval on a small corpus it can learn, in-process and through the
//! bsfilter binary.

use std::path::{Path, PathBuf};
use std::process::Command;

const EVAL: &str = env!("CARGO_BIN_EXE_bsfilter-eval");

/// The workspace's bsfilter binary, built beside bsfilter-eval by
/// `cargo test --workspace`.
fn bsfilter_binary() -> PathBuf {
    let path = Path::new(EVAL).with_file_name("bsfilter");
    assert!(path.exists(), "{} is built by `cargo test --workspace`", path.display());
    path
}

/// 60 spam and 60 ham messages with distinct vocabularies, and a shared
/// index in the format of ../shared/corpus/prepare.sh.
fn corpus(dir: &Path) -> PathBuf {
    let mut index = String::new();
    for i in 0..120 {
        let (label, text) = if i % 2 == 0 {
            (
                "spam",
                format!("Subject: cheap pills {i}\n\nbuy cheap viagra pills now, discount offer, click here {i}\n"),
            )
        } else {
            (
                "ham",
                format!("Subject: meeting notes {i}\n\nthe project review is on thursday, bring the report {i}\n"),
            )
        };
        let name = format!("{label}/{i}.eml");
        std::fs::create_dir_all(dir.join(label)).unwrap();
        std::fs::write(dir.join(&name), text).unwrap();
        index.push_str(&format!("{label} {name}\n"));
    }
    std::fs::write(dir.join("index"), index).unwrap();
    dir.join("index")
}

fn run(args: &[&str]) -> String {
    let out = Command::new(EVAL).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// (FP, FN) of the summary line whose run column is `row`.
fn errors(report: &str, row: &str) -> (usize, usize) {
    let line = report.lines().find(|l| l.starts_with(&format!("| {row} |"))).unwrap();
    let cols: Vec<&str> = line.split('|').map(str::trim).collect();
    let fp = cols[3].split('/').next().unwrap().parse().unwrap();
    let fn_ = cols[4].split('/').next().unwrap().parse().unwrap();
    (fp, fn_)
}

#[test]
fn cross_validation_in_process_and_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let index = corpus(dir.path());
    let scores = dir.path().join("scores");
    let report = run(&[
        "--index",
        index.to_str().unwrap(),
        "--cv",
        "3",
        "--scores",
        scores.to_str().unwrap(),
    ]);
    assert_eq!(
        report.lines().filter(|l| l.starts_with("| fold")).count(),
        3,
        "{report}"
    );
    assert_eq!(errors(&report, "mean"), (0, 0), "{report}");
    // the scores file: one line per message, metrics.py's format
    let text = std::fs::read_to_string(&scores).unwrap();
    assert_eq!(text.lines().count(), 120);
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert!(
            matches!(f[0], "spam" | "ham") && f[1].parse::<f64>().is_ok() && matches!(f[2], "S" | "H"),
            "{line}"
        );
    }

    let binary = bsfilter_binary();
    let report = run(&[
        "--index",
        index.to_str().unwrap(),
        "--cv",
        "3",
        "--binary",
        binary.to_str().unwrap(),
    ]);
    assert_eq!(errors(&report, "mean"), (0, 0), "{report}");
}

#[test]
fn online_and_split_modes_and_roc_files() {
    let dir = tempfile::tempdir().unwrap();
    let index = corpus(dir.path());
    let report = run(&["--index", index.to_str().unwrap(), "--online", "--batch", "10"]);
    // the first batch is scored by an empty filter; after that it learns
    let (fp, fn_) = errors(&report, "all");
    assert!(fp + fn_ <= 10, "{report}");

    let text = std::fs::read_to_string(&index).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(dir.path().join("train"), lines[..80].join("\n")).unwrap();
    std::fs::write(dir.path().join("test"), lines[80..].join("\n")).unwrap();
    let (csv, svg) = (dir.path().join("roc.csv"), dir.path().join("roc.svg"));
    let report = run(&[
        "--train",
        dir.path().join("train").to_str().unwrap(),
        "--test",
        dir.path().join("test").to_str().unwrap(),
        "--roc-csv",
        csv.to_str().unwrap(),
        "--roc-svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(errors(&report, "all"), (0, 0), "{report}");
    assert!(report.contains("| 0.000 |"), "perfect separation: {report}");
    assert!(
        std::fs::read_to_string(&csv)
            .unwrap()
            .starts_with("fpr,tpr,threshold\n")
    );
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<path d=\"M"));
}

#[test]
fn bad_input_is_a_clear_error() {
    let out = Command::new(EVAL)
        .args(["--index", "/nonexistent/index", "--cv", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/index"));
    let out = Command::new(EVAL).args(["--cv", "5"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no messages"));
}
