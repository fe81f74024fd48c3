//! bsfilter: a learning (Bayesian) spam filter, compatible with the original
//! Ruby bsfilter's command line, with first-class Japanese support.
//!
//! The path of a message through the library:
//!
//! - [`mbox`] is the mbox format every program shares: `From ` lines,
//!   mboxrd quoting, splitting (`--mbox`, lda's appends, imapd's folders);
//! - [`decode`] turns raw bytes into decoded UTF-8 header values, text,
//!   link targets and attachment names (MIME and charsets by mail-parser),
//!   with [`html`] extracting the text and links of HTML parts and
//!   [`charset`] fixing what charset labels get wrong;
//! - [`tokenize`] turns a decoded message into its set of tokens (the
//!   Japanese segmenter plugs in here: its bigrams, or [`morphology`]'s
//!   lindera with IPADIC);
//! - [`store`] keeps per-token [`counts`] and the training ledger in SQLite;
//!   [`snapshot`] is a memory-mapped copy of the counts that lets a fresh
//!   process classify one message without opening SQLite;
//! - [`score`] turns counts into a spam probability (Graham, Robinson,
//!   Robinson-Fisher), layering the user's database over the system's;
//! - [`filter`] ties these together for every program of the toolkit;
//! - [`headers`] edits verdict headers into a message;
//! - [`export`] reads and writes the original's export format;
//! - [`error`] its errors and the exit codes of every program; [`time`]
//!   the UTC dates the toolkit writes.
//!
//! The `bsfilter` command line is the binary's own (`src/cli.rs`), so the
//! library does not depend on clap.

pub mod charset;
pub mod counts;
pub mod decode;
pub mod error;
pub mod export;
pub mod filter;
pub mod headers;
pub mod html;
pub mod mbox;
pub mod morphology;
pub mod score;
pub mod snapshot;
pub mod store;
pub mod time;
pub mod tokenize;

pub use error::{Error, Result};
pub use filter::{Analyzed, Filter, FilterConfig, Verdict};
