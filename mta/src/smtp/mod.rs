//! SMTP's syntax, sans-IO: bytes in, commands and messages out; replies
//! as bytes. Command lines are parsed by smtp-proto; the message after
//! DATA and BDAT by our own receiver ([`data`]).
//!
//! - [`data`]: DATA and BDAT content, strict end of data, bare newlines;
//! - [`reply`]: replies with enhanced status codes.

pub mod data;
pub mod reply;
