//! lda: the local delivery agent. An MTA (or a user's `~/.forward`) runs it
//! once per recipient with the message on stdin; it classifies the message
//! with the user's filter, marks it, and appends it to the right mbox
//! folder — whole, or not at all.
//!
//! - [`args`]: the command line (by hand: it is parsed once per delivery);
//! - [`config`]: the toolkit's TOML configuration (delivery part);
//! - [`users`]: the passwd-file user table and system users, becoming one;
//! - [`folders`]: folder names (modified UTF-7 on disk), where each folder is;
//! - [`dir`]: mail files reached through their directory, never a link;
//! - [`lock`]: dotlock + fcntl locking, and undoing a dead writer's append;
//! - [`filter`]: a user's filter (their database over the system's);
//! - [`deliver`]: the delivery policy: filter, headers, folder, append.

pub mod args;
pub mod config;
pub mod deliver;
pub mod dir;
pub mod filter;
pub mod folders;
pub mod lock;
pub mod users;
