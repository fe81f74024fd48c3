//! bsfilter-eval: measuring the filter against labelled corpora, the same
//! way `../shared/peers/` measures the peer filters, so the figures compare.
//!
//! - [`samples`]: corpora as an index file, a directory per class, or mbox
//!   files;
//! - [`eval`]: the runs (train/test split, k-fold cross-validation, TREC
//!   online) against an engine (our library in-process, or the `bsfilter`
//!   binary end to end);
//! - [`metrics`]: FPR, FNR, unsure %, (1-AUC)%, ROC curve (CSV, SVG).

pub mod eval;
pub mod metrics;
pub mod samples;
