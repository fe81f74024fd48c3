//! IMAP4rev1 sessions. Commands are parsed by imap-codec (sans-IO); a
//! [`Session`] turns one complete command (literals included) into response
//! bytes, reading and writing mbox folders. The socket side (framing,
//! literals, IDLE, AUTHENTICATE continuations) is in [`crate::server`].
//!
//! - [`session`]: state, login, dispatch; mailbox and message commands;
//! - [`fetch`]: FETCH items;
//! - [`search`]: SEARCH keys;
//! - [`pattern`]: LIST and LSUB patterns;
//! - [`sequence`]: sequence sets to message positions.

pub mod fetch;
pub mod pattern;
pub mod search;
pub mod sequence;
pub mod session;

pub use session::{Session, Step};
