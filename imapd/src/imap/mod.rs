//! IMAP4rev1 sessions. Commands are parsed by imap-codec (sans-IO); a
//! [`Session`] turns one complete command (literals included) into response
//! bytes, reading and writing mbox folders. The socket side (framing,
//! literals, IDLE, AUTHENTICATE continuations) is in [`crate::server`].
//!
//! - [`session`]: state, login, dispatch; mailbox and message commands;
//! - [`append`]: MULTIAPPEND's messages apart, which imap-codec 1.0 does
//!   not parse;
//! - [`fetch`]: FETCH items;
//! - [`search`]: SEARCH keys;
//! - [`scan`]: quoted strings and literals, for the parsers beside
//!   imap-codec;
//! - [`modifiers`]: the modifiers of CONDSTORE and QRESYNC and STATUS
//!   SIZE, which imap-codec 1.0 does not parse;
//! - [`utf8`]: UTF8=ACCEPT's 8-bit quoted strings, for imap-codec;
//! - [`uidkeys`]: search keys that stand for a set of messages (WITHIN's
//!   OLDER and YOUNGER, SEARCHRES's `$`);
//! - [`extended`]: the heads of SORT, THREAD and SEARCH RETURN, which
//!   imap-codec 1.0 does not parse;
//! - [`sort`]: SORT keys and the base subject;
//! - [`thread`]: THREAD's two algorithms;
//! - [`pattern`]: LIST and LSUB patterns;
//! - [`list`]: LIST-EXTENDED, LIST-STATUS and SPECIAL-USE's LIST options,
//!   which imap-codec 1.0 does not parse;
//! - [`sequence`]: sequence sets to message positions.

pub mod append;
pub mod extended;
pub mod fetch;
pub mod list;
pub mod modifiers;
pub mod pattern;
pub mod scan;
pub mod search;
pub mod sequence;
pub mod session;
pub mod sort;
pub mod thread;
pub mod uidkeys;
pub mod utf8;

pub use session::{Session, Step};
