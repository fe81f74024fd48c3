//! Delivery: the queue manager. Every queued message is tried as soon as
//! it is accepted, and a deferred one again after a backoff (Postfix's:
//! `minimal_backoff`, doubling per attempt up to `maximal_backoff`) until
//! `maximal_queue_lifetime`, when it bounces. Local recipients go to lda
//! ([`local`]), remote ones over SMTP to the relayhost or their domain's
//! MX ([`remote`]), at most `delivery_concurrency` messages at once and
//! as many connections per destination domain. When every recipient of a
//! message has its answer, the sender gets one report of the failures
//! (and of the deliveries they asked to hear of), one log line tells the
//! message's whole story, and the message leaves the queue.
//!
//! The administrator's commands (`mtad queue …`) reach the manager here:
//! list, flush (try everything now), hold, release, delete.

pub mod local;
pub mod remote;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::Context;
use crate::dns::Route;
use crate::dsn;
use crate::envelope::{Envelope, Notify, Recipient};
use crate::queue::{QueueId, RecipientState, State, Status};

/// What one delivery attempt of one recipient ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    pub dsn: String,
    pub reply: String,
    pub relay: String,
    /// The next hop offered DSN and took the request along with the
    /// message: any report is now its to send (RFC 3461 §4.1).
    pub dsn_passed_on: bool,
}

impl Outcome {
    pub fn sent(dsn: &str, reply: &str, relay: &str) -> Outcome {
        Outcome::new(Status::Sent, dsn, reply, relay)
    }
    pub fn deferred(dsn: &str, reply: &str, relay: &str) -> Outcome {
        Outcome::new(Status::Deferred, dsn, reply, relay)
    }
    pub fn bounced(dsn: &str, reply: &str, relay: &str) -> Outcome {
        Outcome::new(Status::Bounced, dsn, reply, relay)
    }
    fn new(status: Status, dsn: &str, reply: &str, relay: &str) -> Outcome {
        Outcome {
            status,
            dsn: dsn.to_owned(),
            reply: reply.to_owned(),
            relay: relay.to_owned(),
            dsn_passed_on: false,
        }
    }
}

/// An entry of `mtad queue list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: QueueId,
    pub size: u64,
    pub arrival: SystemTime,
    pub sender: String,
    pub held: bool,
    /// Each recipient not yet done, with why it waits.
    pub waiting: Vec<(String, String)>,
}

/// A command to the queue manager.
pub enum Command {
    /// A message was just committed.
    New(QueueId, bool),
    Flush,
    Hold(QueueId, oneshot::Sender<bool>),
    Release(QueueId, oneshot::Sender<bool>),
    Delete(QueueId, oneshot::Sender<bool>),
    List(oneshot::Sender<Vec<Listed>>),
    /// Start no more attempts; answer once the running ones have ended
    /// (mtad is stopping: a delivery cut off would be made again).
    Stop(oneshot::Sender<()>),
}

/// The handle sessions and tools reach the manager through.
#[derive(Clone)]
pub struct Manager {
    tx: mpsc::UnboundedSender<Command>,
}

impl Manager {
    /// A handle and the receiver [`run`] takes.
    pub fn channel() -> (Manager, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Manager { tx }, rx)
    }

    pub fn send(&self, command: Command) {
        let _ = self.tx.send(command);
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx));
        rx.await.ok()
    }

    pub async fn list(&self) -> Vec<Listed> {
        self.ask(Command::List).await.unwrap_or_default()
    }
    pub async fn hold(&self, id: QueueId) -> bool {
        self.ask(|tx| Command::Hold(id, tx)).await.unwrap_or(false)
    }
    pub async fn release(&self, id: QueueId) -> bool {
        self.ask(|tx| Command::Release(id, tx)).await.unwrap_or(false)
    }
    pub async fn delete(&self, id: QueueId) -> bool {
        self.ask(|tx| Command::Delete(id, tx)).await.unwrap_or(false)
    }
    /// Returns when the manager has stopped (see [`Command::Stop`]).
    pub async fn stop(&self) {
        self.ask(Command::Stop).await;
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The wait after the `attempts`th failed attempt.
pub fn backoff(minimal: Duration, maximal: Duration, attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
    minimal.saturating_mul(factor).min(maximal).max(minimal.min(maximal))
}

/// Runs the queue manager until the process ends.
pub async fn run(ctx: Arc<Context>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut due: BinaryHeap<Reverse<(u64, QueueId)>> = BinaryHeap::new();
    let mut held: HashSet<QueueId> = HashSet::new();
    let mut running: HashSet<QueueId> = HashSet::new();
    // a command for a message under way waits for its attempt's end
    let mut deleted: HashSet<QueueId> = HashSet::new();
    let slots = Arc::new(Semaphore::new(ctx.config.delivery_concurrency.get()));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(QueueId, Option<u64>)>();
    let queue = ctx.queue.clone();
    let ids = tokio::task::spawn_blocking(move || queue.list())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    for id in ids {
        match load_state(&ctx, &id).await {
            Some((envelope, state)) if state.held => {
                let _ = envelope;
                held.insert(id);
            }
            Some((_, state)) => due.push(Reverse((next_due(&state), id))),
            None => {}
        }
    }
    let mut stopping: Option<oneshot::Sender<()>> = None;
    loop {
        if stopping.is_some() && running.is_empty() {
            if let Some(reply) = stopping.take() {
                let _ = reply.send(());
            }
            return;
        }
        let now = unix_now();
        while let Some(Reverse((when, _))) = due.peek()
            && stopping.is_none()
        {
            if *when > now {
                break;
            }
            let Reverse((_, id)) = due.pop().expect("peeked");
            if running.contains(&id) || held.contains(&id) {
                continue;
            }
            running.insert(id.clone());
            let (ctx, slots, done) = (ctx.clone(), slots.clone(), done_tx.clone());
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await;
                let next = attempt(&ctx, &id).await;
                let _ = done.send((id, next));
            });
        }
        let sleep = match due.peek() {
            Some(Reverse((when, _))) if stopping.is_none() => Duration::from_secs(when.saturating_sub(now)),
            _ => Duration::from_secs(3600),
        };
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                match command {
                    Command::New(id, hold) => {
                        if hold {
                            held.insert(id);
                        } else {
                            due.push(Reverse((0, id)));
                        }
                    }
                    Command::Flush => {
                        let all: Vec<QueueId> = due.drain().map(|Reverse((_, id))| id).collect();
                        due.extend(all.into_iter().map(|id| Reverse((0, id))));
                    }
                    Command::Hold(id, reply) => {
                        let ok = set_held(&ctx, &id, true).await;
                        if ok {
                            held.insert(id);
                        }
                        let _ = reply.send(ok);
                    }
                    Command::Release(id, reply) => {
                        let ok = held.remove(&id) && set_held(&ctx, &id, false).await;
                        if ok {
                            due.push(Reverse((0, id)));
                        }
                        let _ = reply.send(ok);
                    }
                    Command::Delete(id, reply) => {
                        let exists = ctx.queue.list().map(|l| l.contains(&id)).unwrap_or(false);
                        if exists && running.contains(&id) {
                            deleted.insert(id);
                        } else if exists {
                            held.remove(&id);
                            let _ = ctx.queue.remove(&id);
                            tracing::info!(event = "deleted", queue_id = %id, "removed by the administrator");
                        }
                        let _ = reply.send(exists);
                    }
                    Command::List(reply) => {
                        let _ = reply.send(list(&ctx, &held).await);
                    }
                    Command::Stop(reply) => stopping = Some(reply),
                }
            }
            Some((id, next)) = done_rx.recv() => {
                running.remove(&id);
                if deleted.remove(&id) {
                    held.remove(&id);
                    let _ = ctx.queue.remove(&id);
                    tracing::info!(event = "deleted", queue_id = %id, "removed by the administrator");
                } else if let Some(when) = next
                    && !held.contains(&id)
                {
                    due.push(Reverse((when, id)));
                }
            }
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// When the earliest deferred recipient is due (now for pending ones).
fn next_due(state: &State) -> u64 {
    state
        .recipients
        .iter()
        .filter(|r| !r.status.is_final())
        .map(|r| if r.status == Status::Pending { 0 } else { r.next_attempt })
        .min()
        .unwrap_or(0)
}

async fn load_state(ctx: &Arc<Context>, id: &str) -> Option<(Envelope, State)> {
    let queue = ctx.queue.clone();
    let id = id.to_owned();
    tokio::task::spawn_blocking(move || {
        let (envelope, _, _) = queue.open_message(&id).ok()?;
        let state = queue.state(&id, envelope.recipients.len()).ok()?;
        Some((envelope, state))
    })
    .await
    .ok()
    .flatten()
}

async fn set_held(ctx: &Arc<Context>, id: &str, held: bool) -> bool {
    let queue = ctx.queue.clone();
    let id = id.to_owned();
    tokio::task::spawn_blocking(move || {
        let Ok((envelope, _, _)) = queue.open_message(&id) else {
            return false;
        };
        let Ok(mut state) = queue.state(&id, envelope.recipients.len()) else {
            return false;
        };
        state.held = held;
        queue.save_state(&id, &state).is_ok()
    })
    .await
    .unwrap_or(false)
}

async fn list(ctx: &Arc<Context>, held: &HashSet<QueueId>) -> Vec<Listed> {
    let queue = ctx.queue.clone();
    let held = held.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for id in queue.list().unwrap_or_default() {
            let Ok((envelope, _, size)) = queue.open_message(&id) else {
                continue;
            };
            let state = queue.state(&id, envelope.recipients.len()).unwrap_or_default();
            let waiting = envelope
                .recipients
                .iter()
                .zip(&state.recipients)
                .filter(|(_, s)| !s.status.is_final())
                .map(|(r, s)| (r.address.clone(), s.reply.clone()))
                .collect();
            out.push(Listed {
                held: held.contains(&id) || state.held,
                id,
                size,
                arrival: envelope.arrival,
                sender: envelope.sender,
                waiting,
            });
        }
        out
    })
    .await
    .unwrap_or_default()
}

/// One attempt at a message: every recipient due is tried; returns when
/// to try again (None: the message is done and gone).
async fn attempt(ctx: &Arc<Context>, id: &str) -> Option<u64> {
    let queue = ctx.queue.clone();
    let owned_id = id.to_owned();
    let loaded = tokio::task::spawn_blocking(move || {
        let (envelope, message) = queue.load(&owned_id)?;
        let state = queue.state(&owned_id, envelope.recipients.len())?;
        Ok::<_, std::io::Error>((envelope, message, state))
    })
    .await;
    let (envelope, message, mut state) = match loaded {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            tracing::error!(queue_id = %id, "cannot read the queue file: {e}");
            return Some(unix_now() + ctx.config.minimal_backoff.0.as_secs());
        }
        Err(_) => return Some(unix_now() + ctx.config.minimal_backoff.0.as_secs()),
    };
    if state.held {
        return None;
    }
    let now = unix_now();
    let due: Vec<usize> = (0..envelope.recipients.len())
        .filter(|&i| {
            let r = &state.recipients[i];
            r.status == Status::Pending || (r.status == Status::Deferred && r.next_attempt <= now)
        })
        .collect();
    let attempt_started = SystemTime::now();
    let outcomes = deliver_all(ctx, id, &envelope, &message, &due).await;
    let expired = SystemTime::now()
        .duration_since(envelope.arrival)
        .is_ok_and(|age| age >= ctx.config.maximal_queue_lifetime.0);
    for (i, outcome) in due.iter().zip(outcomes) {
        let r = &mut state.recipients[*i];
        r.attempts += 1;
        r.dsn = outcome.dsn;
        r.relay = outcome.relay;
        r.reply = outcome.reply;
        r.dsn_passed_on = outcome.dsn_passed_on;
        r.status = outcome.status;
        if r.status == Status::Deferred {
            if expired {
                r.status = Status::Bounced;
                let lifetime = ctx.config.maximal_queue_lifetime.0.as_secs();
                let lifetime = match lifetime % 86400 {
                    0 => format!("{} days", lifetime / 86400),
                    _ => format!("{lifetime} seconds"),
                };
                r.reply = format!("message expired after {lifetime} in the queue: {}", r.reply);
                r.dsn = "4.4.7".to_owned(); // delivery time expired
            } else {
                let wait = backoff(ctx.config.minimal_backoff.0, ctx.config.maximal_backoff.0, r.attempts);
                r.next_attempt = unix_now() + wait.as_secs();
            }
        }
    }
    if !state.recipients.iter().all(|r| r.status.is_final()) {
        let queue = ctx.queue.clone();
        let (owned_id, saved) = (id.to_owned(), state.clone());
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || queue.save_state(&owned_id, &saved)).await {
            tracing::error!(queue_id = %id, "cannot record the delivery state: {e}");
        }
        // logged once recorded: what the log says, `mtad queue list` shows
        for &i in &due {
            let r = &state.recipients[i];
            if r.status == Status::Deferred {
                tracing::info!(
                    event = "deferred",
                    queue_id = %id,
                    to = %envelope.recipients[i].address,
                    relay = %r.relay,
                    dsn = %r.dsn,
                    attempts = r.attempts,
                    // the next hop's words last, out of the message: the
                    // site report trusts only lines whose message is ours
                    reply = %r.reply,
                    "deferred"
                );
            }
        }
        return Some(next_due(&state));
    }
    finish(ctx, id, &envelope, &message, &state, attempt_started).await;
    None
}

/// Tries every recipient in `due`: locals one by one through lda, remote
/// ones a domain at a time (one connection per domain for all its
/// recipients).
async fn deliver_all(ctx: &Arc<Context>, id: &str, envelope: &Envelope, message: &[u8], due: &[usize]) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; due.len()];
    let mut by_domain: HashMap<String, Vec<usize>> = HashMap::new();
    for (k, &i) in due.iter().enumerate() {
        let r = &envelope.recipients[i];
        match &r.local_user {
            Some(user) => outcomes[k] = Some(ctx.deliver_local(id, user).await),
            None => {
                let domain = r.address.rsplit_once('@').map_or("", |(_, d)| d).to_ascii_lowercase();
                by_domain.entry(domain).or_default().push(k);
            }
        }
    }
    for (domain, ks) in by_domain {
        let recipients: Vec<&Recipient> = ks.iter().map(|&k| &envelope.recipients[due[k]]).collect();
        let results = deliver_remote(ctx, envelope, message, &domain, &recipients).await;
        for (k, o) in ks.into_iter().zip(results) {
            outcomes[k] = Some(o);
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::deferred("4.3.0", "not tried", "none")))
        .collect()
}

async fn deliver_remote(
    ctx: &Arc<Context>,
    envelope: &Envelope,
    message: &[u8],
    domain: &str,
    recipients: &[&Recipient],
) -> Vec<Outcome> {
    let slots = ctx.destination_slots(domain, ctx.config.delivery_concurrency.get());
    let _slot = slots.acquire_owned().await;
    let (route, port) = match &ctx.config.relayhost {
        Some(relay) if relay.no_mx => match ctx.dns.addresses(&relay.host).await {
            Ok(addresses) if !addresses.is_empty() => {
                (Ok(Route::Hosts(vec![(relay.host.clone(), addresses)])), relay.port)
            }
            Ok(_) => (Ok(Route::NoSuchDomain), relay.port),
            Err(e) => (Err(e), relay.port),
        },
        Some(relay) => (ctx.dns.route(&relay.host).await, relay.port),
        None => (ctx.dns.route(domain).await, ctx.config.smtp_port),
    };
    let route = match route {
        Ok(r) => r,
        Err(e) => return vec![Outcome::deferred("4.4.3", &e.to_string(), "none"); recipients.len()],
    };
    let attempt = remote::Attempt {
        hostname: &ctx.config.hostname,
        envelope,
        message,
        recipients,
    };
    remote::deliver(&route, port, &attempt, &ctx.tls_client).await
}

/// The end of a message's stay: its reports, its log line, its removal.
/// (`last_attempt`: when the attempt that finished it began.)
async fn finish(
    ctx: &Arc<Context>,
    id: &str,
    envelope: &Envelope,
    message: &[u8],
    state: &State,
    last_attempt: SystemTime,
) {
    let failed: Vec<(usize, &RecipientState)> = state
        .recipients
        .iter()
        .enumerate()
        .filter(|(i, r)| r.status == Status::Bounced && envelope.recipients[*i].notify.on_failure())
        .collect();
    let succeeded: Vec<(usize, &RecipientState)> = state
        .recipients
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            r.status == Status::Sent
                && !r.dsn_passed_on
                && envelope.recipients[*i].notify.success
                && !envelope.recipients[*i].notify.never
        })
        .collect();
    for (kind, recipients) in [(dsn::Kind::Failure, &failed), (dsn::Kind::Success, &succeeded)] {
        if let Some(report) = dsn::report(&ctx.config.hostname, id, envelope, message, recipients, kind) {
            ctx.bounce(envelope, report).await;
        }
    }
    let stories: Vec<String> = envelope
        .recipients
        .iter()
        .zip(&state.recipients)
        .map(|(r, s)| format!("<{}>:{}:{}:{}", r.address, s.status.name(), s.dsn, s.relay))
        .collect();
    // as Postfix's delay and delays=a/b/c: in all, then receiving, in
    // the queue until the last attempt, and that attempt
    let seconds = |d: Duration| format!("{:.2}", d.as_secs_f64());
    let now = SystemTime::now();
    let queued = last_attempt.duration_since(envelope.arrival).unwrap_or_default();
    let attempt = now.duration_since(last_attempt).unwrap_or_default();
    tracing::info!(
        event = "done",
        queue_id = %id,
        client = %format!("{}[{}]", envelope.client_name, envelope.client_addr),
        helo = %envelope.helo,
        from = %envelope.sender_display(),
        size = message.len(),
        nrcpt = envelope.recipients.len(),
        to = %stories.join(","),
        delay = %seconds(envelope.receiving + queued + attempt),
        delays = %format!("{}/{}/{}", seconds(envelope.receiving), seconds(queued), seconds(attempt)),
        replies = %state.recipients.iter().map(|r| r.reply.as_str()).collect::<Vec<_>>().join(" | "),
        "done"
    );
    let queue = ctx.queue.clone();
    let owned_id = id.to_owned();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || queue.remove(&owned_id)).await {
        tracing::error!(queue_id = %id, "cannot remove a finished message: {e}");
    }
}

/// A recipient for a report to `sender`.
pub fn report_recipient(sender: &str, local_user: Option<String>) -> Recipient {
    Recipient {
        address: sender.to_owned(),
        local_user,
        notify: Notify {
            never: true,
            given: true,
            ..Notify::default()
        },
        orcpt: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let (min, max) = (Duration::from_secs(300), Duration::from_secs(4000));
        assert_eq!(backoff(min, max, 1), min);
        assert_eq!(backoff(min, max, 2), Duration::from_secs(600));
        assert_eq!(backoff(min, max, 4), Duration::from_secs(2400));
        assert_eq!(backoff(min, max, 5), max);
        assert_eq!(backoff(min, max, 100), max);
    }
}
