//! imapd: IMAP4rev1 and POP3 over the users' mbox folders, and the training that
//! follows what users do with their mail.
//!
//! - [`config`]: the `[imapd]` section of the toolkit's TOML file;
//! - [`auth`]: passwords (libcrypt schemes), failure delay, per-IP limit;
//! - [`names`]: mailbox names (modified UTF-7), confinement, the folder tree;
//! - [`mailbox`]: one mbox folder with UIDs and flags in Dovecot's headers;
//! - [`mime`]: MIME structure with byte ranges (sections, BODYSTRUCTURE);
//! - [`imap`]: the protocol: sessions, FETCH, SEARCH, sequence sets;
//! - [`pop3`]: POP3 sessions over the INBOX;
//! - [`training`]: the queue that teaches users' filters from their moves;
//! - [`server`]: sockets: framing, literals, IDLE, STARTTLS; `run` takes a listener;
//! - [`tls`]: the rustls server configuration from PEM files.

pub mod auth;
pub mod config;
pub mod imap;
pub mod mailbox;
pub mod mime;
pub mod names;
pub mod pop3;
pub mod server;
pub mod tls;
pub mod training;
pub mod wire;

use std::sync::Arc;

/// What every session shares.
pub struct Context {
    /// Mailbox layout, locking and filter settings (shared with lda).
    pub config: Arc<lda::config::Config>,
    pub imapd: config::ImapdConfig,
    pub auth: auth::Authenticator,
    /// Parsed folders shared by the sessions.
    pub folders: mailbox::Folders,
    /// The certificate, when TLS is configured (STARTTLS, STLS, imaps, pop3s).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub trainer: training::Trainer,
}

impl Context {
    /// Everything a server needs from the configuration; starts the
    /// training thread. Fails when the TLS certificate or key can't be read.
    pub fn new(
        config: lda::config::Config,
        imapd: config::ImapdConfig,
        passwd_file: std::path::PathBuf,
    ) -> Result<Context, String> {
        let tls = match (&imapd.tls_cert, &imapd.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            (None, None) => None,
            _ => return Err("[imapd] tls_cert and tls_key go together".into()),
        };
        let config = Arc::new(config);
        let timeouts = lda::lock::LockTimeouts {
            wait: config.lock_timeout,
            stale_after: config.dotlock_stale,
        };
        Ok(Context {
            trainer: training::Trainer::start(config.clone()),
            folders: mailbox::Folders::new(timeouts),
            auth: auth::Authenticator::new(passwd_file),
            config,
            imapd,
            tls,
        })
    }
}
