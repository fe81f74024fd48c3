//! imapd: IMAP4rev1 and POP3 over the users' mbox folders, and the training that
//! follows what users do with their mail.
//!
//! - [`config`]: the `[imapd]` section of the toolkit's TOML file;
//! - [`mailbox`]: one mbox folder with UIDs and flags in Dovecot's headers;
//! - [`modseq`]: the sidecar keeping CONDSTORE's mod-sequences across
//!   restarts;
//! - [`mime`]: MIME structure with byte ranges (sections, BODYSTRUCTURE);
//! - [`address`]: address lists as ENVELOPE shows them;
//! - [`imap`]: the protocol: sessions, FETCH, SEARCH, sequence sets;
//! - [`pop3`]: POP3 sessions over the INBOX;
//! - [`training`]: the queue that teaches users' filters from their moves;
//! - [`server`]: the protocol loops: command framing, literals, IDLE, STARTTLS;
//!   `run` takes a listener;
//! - [`watch`]: changes to mailbox files pushed to IDLE (inotify);
//! - [`wire`]: IMAP strings.
//!
//! Folder names and layout come from lda ([`lda::folders`]); listening,
//! TLS, logins and limits from the [`daemon`] crate.

pub mod address;
pub mod config;
pub mod imap;
pub mod mailbox;
pub mod mime;
pub mod modseq;
pub mod pop3;
pub mod server;
pub mod training;
pub mod watch;
pub mod wire;

use std::sync::Arc;

use daemon::auth::{AuthPolicy, Authenticator};
use daemon::limits::ConnectionLimits;
use daemon::shutdown::Shutdown;
use lda::users::SpoolGroup;

/// What every session shares.
pub struct Context {
    /// Mailbox layout, locking and filter settings (shared with lda).
    pub config: Arc<lda::config::Config>,
    pub imapd: config::ImapdConfig,
    pub auth: Authenticator,
    /// Parsed folders shared by the sessions.
    pub folders: mailbox::Folders,
    /// The certificate, when TLS is configured (STARTTLS, STLS, imaps, pop3s).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub trainer: training::Trainer,
    /// Changes to mailbox files, for IDLE.
    pub watcher: watch::Watcher,
    pub limits: Arc<ConnectionLimits>,
    pub shutdown: Shutdown,
}

/// The TLS acceptor for `[imapd] tls_cert` and `tls_key`, if set. Read
/// before privileges are dropped: private keys are usually root's alone.
pub fn tls_acceptor(imapd: &config::ImapdConfig) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
    match (&imapd.tls_cert, &imapd.tls_key) {
        (Some(cert), Some(key)) => daemon::tls::acceptor(cert, key).map(Some).map_err(|e| e.to_string()),
        (None, None) => Ok(None),
        _ => Err("[imapd] tls_cert and tls_key go together".into()),
    }
}

impl Context {
    /// Everything a server needs; starts the training thread. `spool` is
    /// the `mail` group kept for INBOXes in a spool
    /// ([`daemon::privileges::drop_to`]).
    pub fn new(
        config: lda::config::Config,
        imapd: config::ImapdConfig,
        passwd_file: std::path::PathBuf,
        tls: Option<tokio_rustls::TlsAcceptor>,
        spool: Option<SpoolGroup>,
        shutdown: Shutdown,
    ) -> Context {
        let config = Arc::new(config);
        let timeouts = lda::lock::LockTimeouts {
            wait: config.lock_timeout,
            stale_after: config.dotlock_stale,
        };
        Context {
            trainer: training::Trainer::start(config.clone()),
            watcher: watch::Watcher::default(),
            folders: mailbox::Folders::new(timeouts, spool),
            auth: Authenticator::new(passwd_file, AuthPolicy::default()),
            limits: ConnectionLimits::new(imapd.limits()),
            config,
            imapd,
            tls,
            shutdown,
        }
    }
}
