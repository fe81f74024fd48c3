//! The site's own programs that are not daemons of their own, under one
//! command, `mailkit`.
//!
//! - [`up`]: `mailkit up`, the whole site on one machine: a data
//!   directory made on the first start, mtad and imapd supervised
//! - [`report`]: `mailkit report`, the site's figures from its logs
//!   (text, CSV, JSON, SVG charts, one HTML page)

pub mod report;
pub mod up;
