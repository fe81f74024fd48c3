//! `mailkit report`: the site's figures from the logs of mtad and imapd
//! (mtad's log holds lda's deliveries: its delivery helper runs them).
//!
//! - [`line`]: one log line → an event (sans-IO, no allocation)
//! - [`time`]: timestamps, the site's days, dates
//! - [`tally`]: the counts, per day and bucket; memory by days, not lines
//! - [`read`]: plain and gzip'ed files, in any order, one thread per core
//! - [`figures`]: the figures computed from a tally (the JSON output)
//! - [`text`]: aligned tables and CSV
//! - [`charts`]: SVG charts (plotters)
//! - [`html`]: one self-contained page of charts and tables

pub mod charts;
pub mod figures;
pub mod html;
pub mod line;
pub mod read;
pub mod tally;
pub mod text;
pub mod time;
