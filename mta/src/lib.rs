//! mtad: the SMTP front door — what Postfix's smtpd, cleanup, qmgr,
//! local and smtp are to a Postfix site, as one program with its parts
//! here:
//!
//! - [`config`]: the `[mtad]` section (with Postfix's names beside ours);
//! - [`smtp`]: the protocol's syntax, sans-IO: DATA/BDAT content, replies;
//! - [`session`]: one connection's SMTP state and commands, sans-IO;
//! - [`policy`]: the filter chain a session consults (access tables, DNS lists, greylisting,
//!   the tarpit, SPF/DKIM/DMARC, header/body rules, virus scanning, the site-wide Bayes
//!   score, DKIM signing);
//! - [`server`]: the listeners and the socket side of sessions; `run` takes a listener;
//! - [`envelope`]: a message's sender, recipients and DSN requests;
//! - [`queue`]: the durable spool (synced before the 250) and delivery state;
//! - [`delivery`]: the queue manager: local (through the helper), remote (SMTP client), retries;
//! - [`dsn`]: the reports a sender gets (RFC 3464);
//! - [`dns`]: client names, MX and addresses (hickory; sender authentication looks up through it);
//! - [`helper`]: the delivery helper that stays root and forks lda's delivery per recipient;
//! - [`control`]: the socket `mtad queue …` talks to;
//! - [`refused`]: `mtad refused`, what the log says was refused for a recipient.

pub mod config;
pub mod control;
pub mod delivery;
pub mod dns;
pub mod dsn;
pub mod envelope;
pub mod helper;
pub mod policy;
pub mod queue;
pub mod refused;
pub mod server;
pub mod session;
pub mod smtp;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daemon::auth::Authenticator;
use daemon::limits::ConnectionLimits;
use daemon::shutdown::Shutdown;

use crate::config::MtadConfig;
use crate::delivery::{Command, Manager, Outcome};
use crate::envelope::Envelope;
use crate::queue::Queue;
use crate::session::Submission;

/// How long a client that passed the pregreet test is not tested again.
const PREGREET_PASS: Duration = Duration::from_secs(24 * 3600);

/// What every session and the queue manager share.
pub struct Context {
    pub config: MtadConfig,
    /// The delivery settings (users, mailboxes): who is a local recipient.
    pub delivery: lda::config::Config,
    pub auth: Authenticator,
    pub queue: Arc<Queue>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub tls_client: tokio_rustls::TlsConnector,
    pub chain: policy::Chain,
    pub limits: Arc<ConnectionLimits>,
    pub shutdown: Shutdown,
    pub dns: dns::Dns,
    pub manager: Manager,
    /// Local delivery: lda's, in the helper's children.
    pub local: helper::Helper,
    pregreet_passed: Mutex<HashMap<IpAddr, Instant>>,
    destinations: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// What [`Context::new`] needs.
pub struct Parts {
    pub config: MtadConfig,
    pub delivery: lda::config::Config,
    pub queue: Queue,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub shutdown: Shutdown,
    pub local: helper::Helper,
}

impl Context {
    /// The context and the queue manager's command receiver (give it to
    /// [`delivery::run`]).
    pub fn new(parts: Parts) -> Result<(Arc<Context>, tokio::sync::mpsc::UnboundedReceiver<Command>), String> {
        let dns = dns::Dns::new(parts.config.resolver)?;
        let chain = policy::Chain::from_config(&parts.config, &parts.delivery, &dns)?;
        let (manager, commands) = Manager::channel();
        let passwd = parts.delivery.passwd_file.clone().unwrap_or_default();
        let ctx = Context {
            limits: ConnectionLimits::new(parts.config.limits()),
            auth: Authenticator::new(passwd, daemon::auth::AuthPolicy::default()),
            config: parts.config,
            delivery: parts.delivery,
            queue: Arc::new(parts.queue),
            tls: parts.tls,
            tls_client: delivery::remote::tls_connector(),
            chain,
            shutdown: parts.shutdown,
            dns,
            manager,
            local: parts.local,
            pregreet_passed: Mutex::new(HashMap::new()),
            destinations: Mutex::new(HashMap::new()),
        };
        Ok((Arc::new(ctx), commands))
    }

    /// Whether `ip` passed the pregreet test lately.
    pub fn pregreet_passed(&self, ip: IpAddr) -> bool {
        let passed = self.pregreet_passed.lock().unwrap_or_else(|e| e.into_inner());
        passed.get(&ip).is_some_and(|t| t.elapsed() < PREGREET_PASS)
    }

    pub fn pregreet_pass(&self, ip: IpAddr) {
        let mut passed = self.pregreet_passed.lock().unwrap_or_else(|e| e.into_inner());
        if passed.len() > 100_000 {
            passed.retain(|_, t| t.elapsed() < PREGREET_PASS);
        }
        passed.insert(ip, Instant::now());
    }

    /// The slots for deliveries to one destination domain: `limit` at
    /// once, as Postfix's per-destination concurrency limit.
    pub fn destination_slots(&self, destination: &str, limit: usize) -> Arc<tokio::sync::Semaphore> {
        let mut map = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= 10_000 {
            // forget the destinations no delivery is using
            map.retain(|_, slots| Arc::strong_count(slots) > 1);
        }
        map.entry(destination.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(limit)))
            .clone()
    }

    /// Commits an accepted message (durably, before its 250) and hands it
    /// to the queue manager.
    pub async fn accept(&self, submission: Submission) -> std::io::Result<()> {
        let Submission {
            id,
            envelope,
            message,
            hold,
        } = submission;
        let queue = self.queue.clone();
        let size = message.len();
        let log = (
            envelope.client_name.clone(),
            envelope.client_addr,
            envelope.helo.clone(),
            envelope.sender_display(),
            envelope.recipients.len(),
        );
        let committed = {
            let id = id.clone();
            tokio::task::spawn_blocking(move || {
                queue.commit(&id, &envelope, &message)?;
                if hold {
                    let mut state = queue.state(&id, envelope.recipients.len())?;
                    state.held = true;
                    queue.save_state(&id, &state)?;
                }
                Ok::<(), std::io::Error>(())
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        };
        committed?;
        let (name, addr, helo, from, nrcpt) = log;
        tracing::info!(
            event = "accepted",
            queue_id = %id,
            // the figures before the client's words (the site report
            // reads the first of each field)
            size,
            nrcpt,
            hold,
            client = %format!("{name}[{addr}]"),
            helo = %helo,
            from = %from,
            "queued"
        );
        self.manager.send(Command::New(id, hold));
        Ok(())
    }

    /// Delivers the queued message `id` to the local `user` (lda, in a
    /// child of the helper: one at a time per recipient, with every
    /// message for them that has queued up meanwhile).
    pub async fn deliver_local(&self, id: &str, user: &str) -> Outcome {
        self.local.deliver(id, user).await
    }

    /// Queues a report to the sender of `original` (from the null sender).
    pub async fn bounce(&self, original: &Envelope, report: Vec<u8>) {
        let address = original.sender.clone();
        let (local_part, domain) = address.rsplit_once('@').unwrap_or((address.as_str(), ""));
        let local_user = (domain.is_empty() || self.config.is_local_domain(domain))
            .then(|| {
                lda::users::find_user(&self.delivery, &local_part.to_ascii_lowercase())
                    .ok()
                    .map(|u| u.name)
            })
            .flatten();
        let envelope = Envelope {
            eight_bit: true,
            ..Envelope::new(
                "",
                vec![delivery::report_recipient(&address, local_user)],
                ("localhost", IpAddr::from([127, 0, 0, 1])),
                &self.config.hostname,
                "LOCAL",
            )
        };
        let submission = Submission {
            id: self.queue.new_id(),
            envelope,
            message: report,
            hold: false,
        };
        let id = submission.id.clone();
        if let Err(e) = self.accept(submission).await {
            tracing::error!(queue_id = %id, "cannot queue a delivery report: {e}");
        }
    }
}
