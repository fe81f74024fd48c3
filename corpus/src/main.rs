//! `bsfilter-eval`: accuracy and speed of the filter on a labelled corpus.
//!
//! ```text
//! bsfilter-eval --index INDEX --cv 5
//! bsfilter-eval --index INDEX --train LIST --test LIST --scores OUT --roc-svg roc.svg
//! bsfilter-eval --index INDEX --online [--batch 50] [--train-on error]
//! bsfilter-eval --spam-dir DIR --ham-dir DIR --cv 5 --binary target/release/bsfilter
//! ```

use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use corpus::eval::{self, Binary, Cutoffs, Engine, InProcess, Run, TrainOn};
use corpus::metrics::{self, Scored};
use corpus::samples::{self, Label, Sample};

fn command() -> Command {
    let value = |name: &'static str, placeholder: &'static str, help: &'static str| {
        Arg::new(name).long(name).value_name(placeholder).help(help)
    };
    let flag = |name: &'static str, help: &'static str| Arg::new(name).long(name).action(ArgAction::SetTrue).help(help);
    Command::new("bsfilter-eval")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Measure the filter on a labelled corpus: split, cross-validation or online")
        .arg(value(
            "index",
            "FILE",
            "Corpus index: `spam|ham PATH` lines (paths relative to --root)",
        ))
        .arg(value(
            "root",
            "DIR",
            "Directory the index paths are relative to (default: the index's)",
        ))
        .arg(value("spam-dir", "DIR", "Every file under DIR is spam").action(ArgAction::Append))
        .arg(value("ham-dir", "DIR", "Every file under DIR is ham").action(ArgAction::Append))
        .arg(value("spam-mbox", "FILE", "An mbox of spam").action(ArgAction::Append))
        .arg(value("ham-mbox", "FILE", "An mbox of ham").action(ArgAction::Append))
        .arg(value("train", "LIST", "Train on this index-format list (with --test)"))
        .arg(value("test", "LIST", "Test on this index-format list (with --train)"))
        .arg(value(
            "cv",
            "K",
            "K-fold cross-validation; message i is in fold i mod K",
        ))
        .arg(flag("online", "TREC-style online: classify, then learn"))
        .arg(value(
            "batch",
            "N",
            "Online: feedback delayed by batches of N messages (default 1)",
        ))
        .arg(value(
            "train-on",
            "all|error",
            "Online: learn every message, or only errors (default all)",
        ))
        .arg(value(
            "binary",
            "PATH",
            "Run this bsfilter binary end to end instead of the library in-process",
        ))
        .arg(value("method", "g|r|rf", "Scoring method (default rf)"))
        .arg(value(
            "jtokenizer",
            "bigram|lindera",
            "Japanese tokenizer (default bigram)",
        ))
        .arg(value("spam-cutoff", "P", "Spam above P (default: the method's)"))
        .arg(value("robs", "S", "Robinson's s: weight of the prior for rare tokens"))
        .arg(value(
            "young-prior",
            "C",
            "Extra prior weight C / min(spam, ham messages) added to s (default 1; 0 = the original's constant s)",
        ))
        .arg(value("robx", "X", "Robinson's x: probability of an unknown token"))
        .arg(value(
            "min-dev",
            "D",
            "Ignore tokens whose probability is within D of 0.5",
        ))
        .arg(flag(
            "no-conflict-fallback",
            "Fisher: score conflicting evidence (both tails tiny) 0.5, as the original, not by Robinson's means",
        ))
        .arg(value(
            "conflict-tail",
            "A",
            "Fisher: both tails below A = the message fits neither class; ordered by Robinson's means within A/2 of 0.5 (default 0.1)",
        ))
        .arg(flag(
            "no-one-sided-spam",
            "Fisher: score by (1 + S - H)/2 only, not spam when ham's tail is 1000 times smaller than spam's",
        ))
        .arg(flag(
            "every-host-token",
            "Count each of a host's url: tokens (name, parent domains) and Received words on its own, as the original, not once per site",
        ))
        .arg(flag(
            "every-name-token",
            "Count a word repeated in To, Cc, Return-Path and URLs once per field, as the original, not once per message",
        ))
        .arg(value(
            "received-hops",
            "N",
            "Read only the last N Received fields (0 = all)",
        ))
        .arg(value(
            "auth-results-id",
            "ID",
            "Tokens of the Authentication-Results field of this authserv-id (auth:dkim=pass:example.jp)",
        ))
        .arg(value(
            "spam-esf",
            "F",
            "Fisher: effective size factor of the spam tail (default 1)",
        ))
        .arg(value(
            "ham-esf",
            "F",
            "Fisher: effective size factor of the ham tail (default 1)",
        ))
        .arg(value(
            "max-tokens",
            "K",
            "Combine only the K most telling tokens (0 = all)",
        ))
        .arg(value(
            "max-line",
            "N",
            "Read only the first N body lines (default 500; 0 = all)",
        ))
        .arg(value(
            "refer-header",
            "LIST",
            "Tokenize these header fields (comma-separated) instead of the default list",
        ))
        .arg(flag("html-tags", "Learn HTML tag names"))
        .arg(flag("word-pairs", "Also learn pairs of adjacent words"))
        .arg(flag("refer-all-header", "Tokenize every header field"))
        .arg(value(
            "ham-cutoff",
            "P",
            "Unsure between P and the spam cutoff (default: no unsure band)",
        ))
        .arg(value(
            "scores",
            "FILE",
            "Write per-message scores (the format of ../shared/peers/metrics.py)",
        ))
        .arg(value("roc-csv", "FILE", "Write the ROC curve as CSV"))
        .arg(value("roc-svg", "FILE", "Write the ROC curve as SVG"))
}

fn main() {
    let matches = command().get_matches();
    if let Err(e) = run(&matches) {
        eprintln!("bsfilter-eval: {e}");
        std::process::exit(1);
    }
}

fn run(m: &ArgMatches) -> Result<(), String> {
    let get = |name: &str| m.get_one::<String>(name).map(String::as_str);
    let number = |name: &str| -> Result<Option<f64>, String> {
        get(name)
            .map(|v| v.parse::<f64>().map_err(|_| format!("--{name} {v}: not a number")))
            .transpose()
    };
    let method = match get("method") {
        Some(v) => bsfilter::score::Method::parse(v).ok_or(format!("--method {v}: expected g, r or rf"))?,
        None => bsfilter::score::Method::RobinsonFisher,
    };
    let cutoffs = Cutoffs {
        spam: number("spam-cutoff")?.unwrap_or(method.default_cutoff()),
        ham: number("ham-cutoff")?,
    };

    // The corpus: with --train/--test, the two lists; otherwise the sources.
    let root = get("root").map(PathBuf::from);
    let (corpus, split_at) = match (get("train"), get("test")) {
        (Some(train), Some(test)) => {
            let mut c = samples::from_index(Path::new(train), root.as_deref()).map_err(|e| e.to_string())?;
            let n = c.len();
            c.extend(samples::from_index(Path::new(test), root.as_deref()).map_err(|e| e.to_string())?);
            (c, Some(n))
        }
        (None, None) => (load_sources(m, root.as_deref())?, None),
        _ => return Err("--train and --test go together".into()),
    };
    if corpus.is_empty() {
        return Err("no messages: give --index, --spam-dir/--ham-dir, --spam-mbox/--ham-mbox or --train/--test".into());
    }

    let mut config = bsfilter::FilterConfig::new(PathBuf::new());
    config.method = method;
    config.spam_cutoff = cutoffs.spam;
    if let Some(v) = number("robs")? {
        config.robinson.robs = v;
    }
    if let Some(v) = number("young-prior")? {
        config.robinson.young_prior = v;
    }
    if let Some(v) = number("robx")? {
        config.robinson.robx = v;
    }
    if let Some(v) = number("min-dev")? {
        config.robinson.min_dev = v;
    }
    config.robinson.conflict_fallback = !m.get_flag("no-conflict-fallback");
    if let Some(v) = number("conflict-tail")? {
        config.robinson.conflict_tail = v;
    }
    config.robinson.one_sided_spam = !m.get_flag("no-one-sided-spam");
    config.robinson.one_token_per_site = !m.get_flag("every-host-token");
    config.robinson.one_token_per_name = !m.get_flag("every-name-token");
    if let Some(v) = number("received-hops")? {
        config.tokenizer.received_hops = v as usize;
    }
    config.tokenizer.auth_results_id = m.get_one::<String>("auth-results-id").cloned();
    if let Some(v) = number("spam-esf")? {
        config.robinson.spam_esf = v;
    }
    if let Some(v) = number("ham-esf")? {
        config.robinson.ham_esf = v;
    }
    if let Some(v) = number("max-tokens")? {
        config.robinson.max_tokens = v as usize;
    }
    if let Some(v) = number("max-line")? {
        config.tokenizer.max_line = v as usize;
    }
    config.tokenizer.word_pairs = m.get_flag("word-pairs");
    config.tokenizer.html_tags = m.get_flag("html-tags");
    if let Some(list) = get("refer-header") {
        config.tokenizer.headers = bsfilter::tokenize::HeaderSelection::Listed(
            list.split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        );
    }
    if m.get_flag("refer-all-header") {
        config.tokenizer.headers = bsfilter::tokenize::HeaderSelection::All;
    }
    let jtokenizer = get("jtokenizer").unwrap_or("bigram");
    let mut engine: Box<dyn Engine> = match get("binary") {
        Some(program) => {
            let mut args = vec!["--method".to_owned(), get("method").unwrap_or("rf").to_owned()];
            args.extend(["--spam-cutoff".to_owned(), cutoffs.spam.to_string()]);
            args.extend(["--jtokenizer".to_owned(), jtokenizer.to_owned()]);
            Box::new(Binary::new(Path::new(program), args, &corpus).map_err(|e| e.to_string())?)
        }
        None => {
            let japanese = bsfilter::morphology::JapaneseTokenizer::parse(jtokenizer)
                .ok_or(format!("--jtokenizer {jtokenizer}: expected bigram or lindera"))?
                .segmenter()
                .map_err(|e| e.to_string())?;
            Box::new(InProcess::new(config, japanese, &corpus).map_err(|e| e.to_string())?)
        }
    };

    let runs: Vec<Run> = if let Some(n) = split_at {
        let train: Vec<usize> = (0..n).collect();
        let test: Vec<usize> = (n..corpus.len()).collect();
        vec![eval::split(engine.as_mut(), &corpus, &train, &test, cutoffs).map_err(|e| e.to_string())?]
    } else if let Some(k) = get("cv") {
        let k: usize = k
            .parse()
            .ok()
            .filter(|&k| k >= 2)
            .ok_or(format!("--cv {k}: expected a number from 2"))?;
        eval::cross_validate(engine.as_mut(), &corpus, k, cutoffs).map_err(|e| e.to_string())?
    } else if m.get_flag("online") {
        let batch: usize =
            get("batch").map_or(Ok(1), |b| b.parse().map_err(|_| format!("--batch {b}: not a number")))?;
        let train_on = match get("train-on") {
            None | Some("all") => TrainOn::All,
            Some("error") => TrainOn::Errors,
            Some(other) => return Err(format!("--train-on {other}: expected all or error")),
        };
        vec![eval::online(engine.as_mut(), &corpus, batch, train_on, cutoffs).map_err(|e| e.to_string())?]
    } else {
        return Err("choose a mode: --train/--test, --cv K or --online".into());
    };

    report(&runs);
    let all: Vec<Scored> = runs.iter().flat_map(|r| r.scored.iter().cloned()).collect();
    if let Some(path) = get("scores") {
        let text: String = all.iter().map(|s| metrics::scores_line(s) + "\n").collect();
        std::fs::write(path, text).map_err(|e| format!("{path}: {e}"))?;
    }
    let roc = metrics::roc(&all);
    if let Some(path) = get("roc-csv") {
        std::fs::write(path, metrics::roc_csv(&roc)).map_err(|e| format!("{path}: {e}"))?;
    }
    if let Some(path) = get("roc-svg") {
        let name = if get("binary").is_some() {
            "bsfilter (binary)"
        } else {
            "bsfilter"
        };
        std::fs::write(path, metrics::roc_svg(&[(name, &roc)])).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

fn load_sources(m: &ArgMatches, root: Option<&Path>) -> Result<Vec<Sample>, String> {
    let many = |name: &str| {
        m.get_many::<String>(name)
            .into_iter()
            .flatten()
            .map(PathBuf::from)
            .collect::<Vec<_>>()
    };
    let mut corpus = Vec::new();
    if let Some(index) = m.get_one::<String>("index") {
        corpus.extend(samples::from_index(Path::new(index), root).map_err(|e| e.to_string())?);
    }
    for (name, label) in [("spam-dir", Label::Spam), ("ham-dir", Label::Ham)] {
        for dir in many(name) {
            corpus.extend(samples::from_dir(&dir, label).map_err(|e| e.to_string())?);
        }
    }
    for (name, label) in [("spam-mbox", Label::Spam), ("ham-mbox", Label::Ham)] {
        for file in many(name) {
            corpus.extend(samples::from_mbox(&file, label).map_err(|e| e.to_string())?);
        }
    }
    Ok(corpus)
}

fn report(runs: &[Run]) {
    println!("| run | messages | FP/ham | FN/spam | FPR% | FNR% | U% | (1-AUC)% | msg/s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, r) in runs.iter().enumerate() {
        let s = metrics::summarize(&r.scored);
        println!(
            "| {} | {} | {}/{} | {}/{} | {:.2} | {:.2} | {:.1} | {:.3} | {:.0} |",
            if runs.len() > 1 {
                format!("fold {i}")
            } else {
                "all".to_owned()
            },
            s.messages,
            s.false_positives,
            s.ham,
            s.false_negatives,
            s.spam,
            s.fpr,
            s.fnr,
            s.unsure,
            s.one_minus_auc,
            r.messages_per_second
        );
    }
    if runs.len() > 1 {
        let sums: Vec<_> = runs.iter().map(|r| metrics::summarize(&r.scored)).collect();
        let mean = sums.iter().map(|s| s.one_minus_auc).sum::<f64>() / sums.len() as f64;
        let fp: usize = sums.iter().map(|s| s.false_positives).sum();
        let ham: usize = sums.iter().map(|s| s.ham).sum();
        let fn_: usize = sums.iter().map(|s| s.false_negatives).sum();
        let spam: usize = sums.iter().map(|s| s.spam).sum();
        println!(
            "| mean | {} | {fp}/{ham} | {fn_}/{spam} | {:.2} | {:.2} | | {mean:.3} | |",
            sums.iter().map(|s| s.messages).sum::<usize>(),
            100.0 * fp as f64 / ham.max(1) as f64,
            100.0 * fn_ as f64 / spam.max(1) as f64
        );
    }
}
