//! The policy chain: stages that look at a connection, its envelope and
//! its message and say what to do, in order, as Postfix's `smtpd_*_
//! restrictions` and checks do. Relay control and unknown local
//! recipients are not stages but the session's own rules, which run first
//! and cannot be switched off. The stages, in their order:
//!
//! - [`access`] — `check_{client,helo,sender,recipient}_access`;
//! - [`dnsbl`] — DNS allow and block lists;
//! - [`greylist`] — a first attempt waits (all clients, or those tables name);
//! - [`tarpit`] — the clients tables name wait before each answer;
//! - [`auth`] — SPF, DKIM and DMARC at the end of DATA, and the
//!   Authentication-Results field ([`spf_record`]: the record checks of
//!   RFC 7208 that mail-auth leaves out);
//! - [`content`] — header and body rules at the end of DATA;
//! - [`virus`] — virus scanning (clamd or built-in) at the end of DATA;
//! - [`bayes`] — the site-wide spam score at the end of DATA;
//! - [`dkim`] — DKIM signatures on mail from mynetworks and logged-in
//!   users, last, over the message as the others left it;
//!
//! with what they share: [`table`] (Postfix's lookup tables, read from
//! their files and reread when edited) and [`action`] (what a table's
//! value says to do).
//!
//! A stage is asynchronous (a DNS lookup, a virus scanner) and sees what
//! is known at its point of the session ([`Point`], [`Facts`]). The first
//! verdict that ends the chain decides ([`Verdict::Accept`] — an `OK` in
//! an access table beats a blocklist —, a refusal, a discard); holds,
//! header fields, a redirect and a rewritten message accumulate.

pub mod access;
pub mod action;
pub mod auth;
pub mod bayes;
pub mod content;
pub mod dkim;
pub mod dnsbl;
pub mod greylist;
pub mod spf_record;
pub mod table;
pub mod tarpit;
pub mod virus;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use crate::smtp::reply::Reply;

/// Where in the session a stage is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Connect,
    Helo,
    Mail,
    /// For the recipient last added to [`Facts::recipients`].
    Rcpt,
    /// The whole message is in [`Facts::message`].
    Data,
}

/// What is known when a stage is asked.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub client_addr: Option<IpAddr>,
    pub client_name: String,
    pub helo: String,
    pub sender: Option<String>,
    pub recipients: Vec<String>,
    pub auth_user: Option<String>,
    /// The client may relay (mynetworks or logged in).
    pub trusted: bool,
    pub message: Option<std::sync::Arc<Vec<u8>>>,
}

/// A stage's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No opinion: ask the next stage.
    Continue,
    /// Accept at this point without asking further stages.
    Accept,
    /// Refuse with this reply (4xx: try later; 5xx: never).
    Reject(Reply),
    /// Refuse, and name what refused after the stage in the log's cause
    /// (`dnsbl:zen.example`: the report counts refusals by list).
    RejectBy(String, Reply),
    /// Accept, and drop the message silently (with a log line).
    Discard,
    /// Accept, and keep the message on hold in the queue.
    Hold,
    /// Add these header fields (each `Name: value`) and go on.
    AddHeaders(Vec<String>),
    /// Deliver to this address instead of the recipients, and go on.
    Redirect(String),
    /// At DATA: the message as changed (header lines removed or
    /// replaced); later stages see this one.
    Rewrite(Vec<u8>),
    /// Each of these in order, as if given by stages one after another.
    Several(Vec<Verdict>),
    /// Postfix's DEFER_IF_REJECT: a later refusal is answered with this
    /// (temporary) reply instead.
    DeferIfReject(Reply),
    /// Postfix's DEFER_IF_PERMIT: if nothing later refuses, this reply.
    DeferIfPermit(Reply),
}

/// What a whole chain decided at one point.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// The refusal, if a stage refused; `stage` names it (the log's cause).
    pub reject: Option<(String, Reply)>,
    pub discard: bool,
    pub hold: bool,
    pub headers: Vec<String>,
    pub redirect: Option<String>,
    /// The message as the stages changed it, if they did.
    pub message: Option<Vec<u8>>,
    /// A DEFER_IF_REJECT or DEFER_IF_PERMIT waiting for the outcome.
    defer_if_reject: Option<(String, Reply)>,
    defer_if_permit: Option<(String, Reply)>,
}

/// Whether one of `tables` lists the client, by its name or its address
/// (the greylist's and the tarpit's `*_clients` tables: S25R's regexps of
/// dynamic-looking names, or a list of networks).
fn client_listed(tables: &[table::Table], facts: &Facts) -> bool {
    let addr = facts
        .client_addr
        .map(|a| a.to_canonical().to_string())
        .unwrap_or_default();
    tables.iter().any(|t| {
        let lookups = t.lookups();
        [facts.client_name.as_str(), addr.as_str()]
            .iter()
            .any(|k| !k.is_empty() && lookups.get(k.as_bytes()).is_some())
    })
}

/// One stage of the chain.
pub trait Stage: Send + Sync {
    /// Its name in logs (`access`, `dnsbl`, `header_checks`…).
    fn name(&self) -> &'static str;

    /// The stage's verdict at `point`.
    fn check<'a>(&'a self, point: Point, facts: &'a Facts) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;
}

/// The stages, in order.
#[derive(Default)]
pub struct Chain {
    stages: Vec<Box<dyn Stage>>,
}

impl Chain {
    pub fn new(stages: Vec<Box<dyn Stage>>) -> Chain {
        Chain { stages }
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// The chain `config` asks for, in the documented order: the access
    /// tables (client, HELO, sender, recipient), the DNS lists, the
    /// header and body rules, then the site-wide score (with `delivery`'s
    /// filter settings). A table that cannot be read or has a
    /// mistake is an error naming its file and line.
    pub fn from_config(
        config: &crate::config::MtadConfig,
        delivery: &lda::config::Config,
        dns: &crate::dns::Dns,
    ) -> Result<Chain, String> {
        use std::sync::Arc;
        let open = |key: &str, specs: &[String]| -> Result<Vec<table::Table>, String> {
            specs
                .iter()
                .map(|s| table::Table::open(s).map_err(|e| format!("[mtad] {key}: {e}")))
                .collect()
        };
        let mut stages: Vec<Box<dyn Stage>> = Vec::new();
        for (key, subject, specs) in [
            (
                "check_client_access",
                access::Subject::Client,
                &config.check_client_access,
            ),
            ("check_helo_access", access::Subject::Helo, &config.check_helo_access),
            (
                "check_sender_access",
                access::Subject::Sender,
                &config.check_sender_access,
            ),
            (
                "check_recipient_access",
                access::Subject::Recipient,
                &config.check_recipient_access,
            ),
        ] {
            if !specs.is_empty() {
                stages.push(Box::new(access::Access::new(subject, open(key, specs)?)));
            }
        }
        let mut lists = dnsbl::Dnsbl::new(dns.clone());
        lists.allow.clone_from(&config.permit_dnswl_client);
        lists.client.clone_from(&config.reject_rbl_client);
        lists.sender.clone_from(&config.reject_rhsbl_sender);
        lists.helo.clone_from(&config.reject_rhsbl_helo);
        lists.replies = config
            .rbl_reply
            .iter()
            .map(|(z, t)| (z.trim_end_matches('.').to_ascii_lowercase(), t.clone()))
            .collect();
        lists.threshold = config.dnsbl_threshold;
        if !lists.is_empty() {
            stages.push(Box::new(lists));
        }
        if config.greylist {
            stages.push(Box::new(greylist::Greylist::new(
                config.greylist_delay.0,
                config.greylist_max_age.0,
                open("greylist_clients", &config.greylist_clients)?,
                Some(config.queue_dir.join("greylist")),
            )));
        }
        if !config.tarpit_clients.is_empty() {
            stages.push(Box::new(tarpit::Tarpit::new(
                config.tarpit_delay.0,
                open("tarpit_clients", &config.tarpit_clients)?,
            )));
        }
        if config.sender_auth {
            let mut auth = auth::SenderAuth::new(dns, &config.hostname);
            auth.dmarc_reject = config.dmarc_reject;
            auth.dmarc_quarantine = config.dmarc_quarantine;
            auth.spf_fail_reject = config.spf_fail_reject;
            auth.tempfail = config.auth_tempfail;
            stages.push(Box::new(auth));
        }
        let shared = |key: &str, specs: &[String]| -> Result<Vec<Arc<table::Table>>, String> {
            Ok(open(key, specs)?.into_iter().map(Arc::new).collect())
        };
        let header = shared("header_checks", &config.header_checks)?;
        let content = content::ContentChecks {
            mime_header: match &config.mime_header_checks {
                Some(specs) => shared("mime_header_checks", specs)?,
                None => header.clone(),
            },
            nested_header: match &config.nested_header_checks {
                Some(specs) => shared("nested_header_checks", specs)?,
                None => header.clone(),
            },
            body: shared("body_checks", &config.body_checks)?,
            header,
            decoded: config.content_checks_decoded,
        };
        if !content.is_empty() {
            stages.push(Box::new(content));
        }
        if let Some(scanner) = &config.virus_scanner {
            stages.push(Box::new(virus::VirusScan::new(
                scanner,
                &config.virus_signatures,
                config.virus_action,
                config.virus_scanner_failure,
                &config.hostname,
            )?));
        }
        if let Some(db) = &config.site_bayes_db {
            let bayes = bayes::SiteBayes::open(db, config.site_bayes_reject_above, &delivery.filter)?;
            stages.push(Box::new(bayes));
        }
        if !config.dkim_keys.is_empty() {
            stages.push(Box::new(dkim::DkimSign::new(&config.dkim_keys)?));
        }
        Ok(Chain { stages })
    }

    /// Asks every stage at `point`, in order, until one decides. The
    /// envelope stages are not asked for a client that may relay
    /// (mynetworks or logged in), as Postfix sites list
    /// `permit_mynetworks, permit_sasl_authenticated` first; the content
    /// stages ask about every message.
    pub async fn decide(&self, point: Point, facts: &Facts) -> Decision {
        let mut decision = Decision::default();
        if facts.trusted && point != Point::Data {
            return decision;
        }
        let mut rewritten: Option<Facts> = None;
        for stage in &self.stages {
            let verdict = stage.check(point, rewritten.as_ref().unwrap_or(facts)).await;
            if apply(stage.name(), verdict, &mut decision) {
                break;
            }
            if let Some(message) = &decision.message
                && rewritten.as_ref().and_then(|f| f.message.as_deref()) != Some(message)
            {
                let mut changed = facts.clone();
                changed.message = Some(std::sync::Arc::new(message.clone()));
                rewritten = Some(changed);
            }
        }
        // a permit (OK, or no stage refusing) with a DEFER_IF_PERMIT pending
        if decision.reject.is_none()
            && !decision.discard
            && let Some(deferred) = decision.defer_if_permit.take()
        {
            decision.reject = Some(deferred);
        }
        decision
    }
}

/// Adds `verdict` to `decision`; whether it ends the chain.
fn apply(stage: &str, verdict: Verdict, decision: &mut Decision) -> bool {
    match verdict {
        Verdict::Continue => false,
        Verdict::Accept => true,
        Verdict::Reject(reply) => apply(stage, Verdict::RejectBy(String::new(), reply), decision),
        Verdict::RejectBy(by, reply) => {
            decision.reject = match decision.defer_if_reject.take() {
                Some(deferred) if reply.code >= 500 => Some(deferred),
                _ if by.is_empty() => Some((stage.to_owned(), reply)),
                _ => Some((format!("{stage}:{by}"), reply)),
            };
            true
        }
        Verdict::DeferIfReject(reply) => {
            decision.defer_if_reject.get_or_insert((stage.to_owned(), reply));
            false
        }
        Verdict::DeferIfPermit(reply) => {
            decision.defer_if_permit.get_or_insert((stage.to_owned(), reply));
            false
        }
        Verdict::Discard => {
            decision.discard = true;
            true
        }
        Verdict::Hold => {
            decision.hold = true;
            false
        }
        Verdict::AddHeaders(h) => {
            decision.headers.extend(h);
            false
        }
        Verdict::Redirect(to) => {
            decision.redirect = Some(to);
            false
        }
        Verdict::Rewrite(message) => {
            decision.message = Some(message);
            false
        }
        Verdict::Several(verdicts) => verdicts.into_iter().any(|v| apply(stage, v, decision)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Verdict);

    impl Stage for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn check<'a>(&'a self, _: Point, _: &'a Facts) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
            Box::pin(async move { self.1.clone() })
        }
    }

    #[tokio::test]
    async fn defer_if_reject_and_defer_if_permit() {
        let later = Reply::new(554, [5, 7, 1], "listed");
        let soft = Reply::new(450, [4, 7, 1], "try later");
        let decide = |verdicts: Vec<Verdict>| async move {
            let stages: Vec<Box<dyn Stage>> = verdicts
                .into_iter()
                .enumerate()
                .map(|(i, v)| Box::new(Fixed(["a", "b", "c"][i], v)) as Box<dyn Stage>)
                .collect();
            Chain::new(stages).decide(Point::Rcpt, &Facts::default()).await.reject
        };
        // a later 5xx becomes the deferral
        let got = decide(vec![
            Verdict::DeferIfReject(soft.clone()),
            Verdict::Reject(later.clone()),
        ])
        .await;
        assert_eq!(got, Some(("a".into(), soft.clone())));
        // nothing refuses: no deferral
        assert_eq!(
            decide(vec![Verdict::DeferIfReject(soft.clone()), Verdict::Continue]).await,
            None
        );
        // a permit, explicit or at the end, is deferred
        assert_eq!(
            decide(vec![Verdict::DeferIfPermit(soft.clone()), Verdict::Accept]).await,
            Some(("a".into(), soft.clone()))
        );
        assert_eq!(
            decide(vec![Verdict::DeferIfPermit(soft.clone()), Verdict::Continue]).await,
            Some(("a".into(), soft.clone()))
        );
        // a refusal stays a refusal
        assert_eq!(
            decide(vec![
                Verdict::DeferIfPermit(soft.clone()),
                Verdict::Reject(later.clone())
            ])
            .await,
            Some(("b".into(), later))
        );
    }

    #[tokio::test]
    async fn first_decision_wins_headers_accumulate() {
        let reject = Reply::new(554, [5, 7, 1], "listed");
        let chain = Chain::new(vec![
            Box::new(Fixed("a", Verdict::AddHeaders(vec!["X-A: 1".into()]))),
            Box::new(Fixed("b", Verdict::Continue)),
            Box::new(Fixed("dnsbl", Verdict::Reject(reject.clone()))),
            Box::new(Fixed("never", Verdict::Discard)),
        ]);
        let d = chain.decide(Point::Connect, &Facts::default()).await;
        assert_eq!(d.reject, Some(("dnsbl".into(), reject)));
        assert_eq!(d.headers, ["X-A: 1"]);
        assert!(!d.discard);
        let chain = Chain::new(vec![
            Box::new(Fixed("access", Verdict::Accept)),
            Box::new(Fixed("dnsbl", Verdict::Reject(Reply::new(554, [5, 7, 1], "x")))),
        ]);
        assert_eq!(
            chain.decide(Point::Connect, &Facts::default()).await,
            Decision::default()
        );
    }
}
