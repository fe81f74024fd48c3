//! The site's own programs that are not daemons of their own, under one
//! command, `mailkit`.
//!
//! - [`report`]: `mailkit report`, the site's figures from its logs
//!   (text, CSV, JSON, SVG charts, one HTML page)

pub mod report;
