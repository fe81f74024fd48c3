//! Evaluation runs: train/test split, k-fold cross-validation and TREC-style
//! online filtering, against a filter engine — our library in-process, or
//! the `bsfilter` binary end to end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bsfilter::store::{Action, Class, Store};
use bsfilter::tokenize::Segmenter;
use bsfilter::{Analyzed, Filter, FilterConfig};

use crate::metrics::{Scored, Verdict};
use crate::samples::{Label, Sample};

#[derive(Debug)]
pub struct EvalError(pub String);

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<bsfilter::Error> for EvalError {
    fn from(e: bsfilter::Error) -> Self {
        EvalError(e.to_string())
    }
}

/// A filter under test. Messages are indices into the corpus it was built
/// over.
pub trait Engine {
    /// Starts over with an empty token database.
    fn reset(&mut self) -> Result<(), EvalError>;
    fn train(&mut self, messages: &[usize], label: Label) -> Result<(), EvalError>;
    /// Spam probability and ranking strength of each message, in order.
    fn score(&mut self, messages: &[usize]) -> Result<Vec<Score>, EvalError>;
}

/// A filter's score for one message.
#[derive(Debug, Clone, Copy)]
pub struct Score {
    /// The spam probability the cutoffs apply to.
    pub probability: f64,
    /// The ranking key (higher is spammier), finer than the probability
    /// where that saturates.
    pub strength: f64,
}

/// Thresholds turning a score into a verdict: spam above `spam_cutoff`,
/// unsure between `ham_cutoff` (when set) and it.
#[derive(Debug, Clone, Copy)]
pub struct Cutoffs {
    pub spam: f64,
    pub ham: Option<f64>,
}

impl Cutoffs {
    pub fn verdict(&self, score: f64) -> Verdict {
        if score > self.spam {
            Verdict::Spam
        } else if self.ham.is_some_and(|h| score > h) {
            Verdict::Unsure
        } else {
            Verdict::Ham
        }
    }
}

/// Our filter, in this process: every message is analysed once, up front,
/// on all cores; training and scoring then reuse the tokens.
pub struct InProcess {
    filter: Filter,
    analyzed: Vec<Analyzed>,
    home: tempfile::TempDir,
    store: Option<Store>,
}

impl InProcess {
    /// Analyses `corpus` with `config`'s tokenizer and `japanese` for the
    /// Japanese runs.
    pub fn new(config: FilterConfig, japanese: Box<dyn Segmenter>, corpus: &[Sample]) -> Result<InProcess, EvalError> {
        let home = tempfile::tempdir().map_err(|e| EvalError(format!("temporary directory: {e}")))?;
        let mut config = config;
        config.homedir = home.path().join("db");
        let filter = Filter::with_segmenter(config, japanese);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = corpus.len().div_ceil(threads).max(1);
        let analyzed = std::thread::scope(|scope| {
            let handles: Vec<_> = corpus
                .chunks(per)
                .map(|chunk| {
                    let filter = &filter;
                    scope.spawn(move || chunk.iter().map(|s| filter.analyze(&s.raw, None)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("analysis does not panic"))
                .collect()
        });
        Ok(InProcess {
            filter,
            analyzed,
            home,
            store: None,
        })
    }
}

impl Engine for InProcess {
    fn reset(&mut self) -> Result<(), EvalError> {
        self.store = None;
        let _ = std::fs::remove_dir_all(self.home.path().join("db"));
        self.store = Some(self.filter.open_user_db()?);
        Ok(())
    }

    fn train(&mut self, messages: &[usize], label: Label) -> Result<(), EvalError> {
        let store = self
            .store
            .as_mut()
            .ok_or_else(|| EvalError("train before reset".into()))?;
        let class = match label {
            Label::Spam => Class::Spam,
            Label::Ham => Class::Clean,
        };
        for chunk in messages.chunks(1024) {
            let batch: Vec<&Analyzed> = chunk.iter().map(|&i| &self.analyzed[i]).collect();
            self.filter.train(store, &batch, Action::Add(class))?;
        }
        Ok(())
    }

    fn score(&mut self, messages: &[usize]) -> Result<Vec<Score>, EvalError> {
        let classifier = self.filter.classifier(messages.len())?;
        let batch: Vec<&Analyzed> = messages.iter().map(|&i| &self.analyzed[i]).collect();
        Ok(classifier
            .classify(&batch)?
            .into_iter()
            .map(|v| Score {
                probability: v.probability,
                strength: v.strength,
            })
            .collect())
    }
}

/// The `bsfilter` binary, as users run it: whole processes, files as
/// arguments, the probability read from its `combined probability` lines.
pub struct Binary {
    program: PathBuf,
    extra_args: Vec<String>,
    files: Vec<PathBuf>,
    work: tempfile::TempDir,
}

impl Binary {
    pub fn new(program: &Path, extra_args: Vec<String>, corpus: &[Sample]) -> Result<Binary, EvalError> {
        let work = tempfile::tempdir().map_err(|e| EvalError(format!("temporary directory: {e}")))?;
        let dir = work.path().join("messages");
        std::fs::create_dir_all(&dir).map_err(|e| EvalError(e.to_string()))?;
        let files = corpus
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let path = dir.join(format!("{i}.eml"));
                std::fs::write(&path, &s.raw)
                    .map(|()| path)
                    .map_err(|e| EvalError(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Binary {
            program: program.to_owned(),
            extra_args,
            files,
            work,
        })
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.arg("--homedir")
            .arg(self.work.path().join("db"))
            .args(&self.extra_args);
        c
    }
}

impl Engine for Binary {
    fn reset(&mut self) -> Result<(), EvalError> {
        let _ = std::fs::remove_dir_all(self.work.path().join("db"));
        Ok(())
    }

    fn train(&mut self, messages: &[usize], label: Label) -> Result<(), EvalError> {
        for chunk in messages.chunks(2000) {
            let out = self
                .command()
                .arg(if label == Label::Spam {
                    "--add-spam"
                } else {
                    "--add-clean"
                })
                .args(chunk.iter().map(|&i| &self.files[i]))
                .output()
                .map_err(|e| EvalError(format!("{}: {e}", self.program.display())))?;
            if !out.status.success() {
                return Err(EvalError(format!(
                    "training failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
        Ok(())
    }

    fn score(&mut self, messages: &[usize]) -> Result<Vec<Score>, EvalError> {
        let mut scores = Vec::with_capacity(messages.len());
        for chunk in messages.chunks(2000) {
            let out = self
                .command()
                .arg("--list-spam")
                .args(chunk.iter().map(|&i| &self.files[i]))
                .output()
                .map_err(|e| EvalError(format!("{}: {e}", self.program.display())))?;
            if !matches!(out.status.code(), Some(0 | 1)) {
                return Err(EvalError(format!(
                    "classifying failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            let mut by_file = std::collections::HashMap::new();
            for line in String::from_utf8_lossy(&out.stderr).lines() {
                let parts: Vec<&str> = line.split(' ').collect();
                if let ["combined", "probability", file, _, p] = parts[..] {
                    by_file.insert(file.to_owned(), p.parse::<f64>().unwrap_or(f64::NAN));
                }
            }
            for &i in chunk {
                // The CLI prints 6 decimals: that is all the ranking there is.
                let probability = by_file
                    .get(&*self.files[i].to_string_lossy())
                    .copied()
                    .unwrap_or(f64::NAN);
                scores.push(Score {
                    probability,
                    strength: probability,
                });
            }
        }
        Ok(scores)
    }
}

/// The result of a run.
pub struct Run {
    pub scored: Vec<Scored>,
    /// Messages handled (trained and scored) per second of filter time.
    pub messages_per_second: f64,
}

fn split_by_label(corpus: &[Sample], messages: &[usize]) -> (Vec<usize>, Vec<usize>) {
    messages.iter().partition(|&&i| corpus[i].label == Label::Spam)
}

fn scored(corpus: &[Sample], messages: &[usize], scores: Vec<Score>, cutoffs: Cutoffs) -> Vec<Scored> {
    messages
        .iter()
        .zip(scores)
        .map(|(&i, score)| Scored {
            label: corpus[i].label,
            score: ranking_key(score),
            verdict: cutoffs.verdict(score.probability),
            name: corpus[i].name.clone(),
        })
        .collect()
}

/// The probability, with ties at its saturated ends (0 and 1, where f64
/// runs out of digits) broken by the strength of the evidence: saturated
/// spam maps into (1, 2), saturated ham into (-1, 0), monotone in the
/// strength, so the order of unsaturated messages is the probability's.
pub fn ranking_key(score: Score) -> f64 {
    const EDGE: f64 = 1e-9;
    let squash = score.strength.atan() / std::f64::consts::PI + 0.5; // (0, 1)
    if score.probability >= 1.0 - EDGE {
        1.0 + squash
    } else if score.probability <= EDGE {
        squash - 1.0
    } else {
        score.probability
    }
}

/// Train on `train`, test on `test`.
pub fn split(
    engine: &mut dyn Engine,
    corpus: &[Sample],
    train: &[usize],
    test: &[usize],
    cutoffs: Cutoffs,
) -> Result<Run, EvalError> {
    let started = Instant::now();
    engine.reset()?;
    let (spam, ham) = split_by_label(corpus, train);
    engine.train(&spam, Label::Spam)?;
    engine.train(&ham, Label::Ham)?;
    let scores = engine.score(test)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Run {
        scored: scored(corpus, test, scores, cutoffs),
        messages_per_second: (train.len() + test.len()) as f64 / seconds.max(1e-9),
    })
}

/// k-fold cross-validation: message i is in fold i mod k (the folds of
/// `../shared/corpus/make_splits.py` when the corpus is its index).
pub fn cross_validate(
    engine: &mut dyn Engine,
    corpus: &[Sample],
    folds: usize,
    cutoffs: Cutoffs,
) -> Result<Vec<Run>, EvalError> {
    (0..folds)
        .map(|k| {
            let (test, train): (Vec<usize>, Vec<usize>) = (0..corpus.len()).partition(|i| i % folds == k);
            split(engine, corpus, &train, &test, cutoffs)
        })
        .collect()
}

/// Which messages online training learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainOn {
    /// Every message.
    All,
    /// Only misclassified ones, unsure included (train on error).
    Errors,
}

/// TREC-style online filtering in corpus order: each batch is scored, then
/// learned with its true labels (feedback delayed by `batch` messages).
pub fn online(
    engine: &mut dyn Engine,
    corpus: &[Sample],
    batch: usize,
    train_on: TrainOn,
    cutoffs: Cutoffs,
) -> Result<Run, EvalError> {
    let started = Instant::now();
    engine.reset()?;
    let order: Vec<usize> = (0..corpus.len()).collect();
    let mut all = Vec::with_capacity(corpus.len());
    for chunk in order.chunks(batch.max(1)) {
        let results = scored(corpus, chunk, engine.score(chunk)?, cutoffs);
        let learn = |label: Label| -> Vec<usize> {
            chunk
                .iter()
                .zip(&results)
                .filter(|(_, s)| s.label == label)
                .filter(|(_, s)| match train_on {
                    TrainOn::All => true,
                    TrainOn::Errors => {
                        s.verdict
                            != if label == Label::Spam {
                                Verdict::Spam
                            } else {
                                Verdict::Ham
                            }
                    }
                })
                .map(|(&i, _)| i)
                .collect()
        };
        let (spam, ham) = (learn(Label::Spam), learn(Label::Ham));
        engine.train(&spam, Label::Spam)?;
        engine.train(&ham, Label::Ham)?;
        all.extend(results);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Run {
        messages_per_second: all.len() as f64 / seconds.max(1e-9),
        scored: all,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_key_keeps_probability_order_and_breaks_saturated_ties() {
        let key = |probability, strength| ranking_key(Score { probability, strength });
        assert!(key(0.3, 5.0) < key(0.7, -5.0), "unsaturated: the probability decides");
        assert!(key(1.0, 10.0) < key(1.0, 20.0) && key(0.999, 100.0) < key(1.0, 1.0));
        assert!(key(0.0, -20.0) < key(0.0, -10.0) && key(0.0, -1.0) < key(0.001, -100.0));
    }
}
