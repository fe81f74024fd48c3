//! The policy chain: stages that look at a connection, its envelope and
//! its message and say what to do, in order, as Postfix's `smtpd_*_
//! restrictions` and checks do. The chain's stages (access tables, DNS
//! blocklists, header and body rules, virus scanning, site-wide Bayes)
//! are each a [`Stage`]; relay control and unknown local recipients are
//! not stages but the session's own rules, which run first and cannot be
//! switched off.
//!
//! A stage is asynchronous (a DNS lookup, a virus scanner) and sees what
//! is known at its point of the session ([`Point`], [`Facts`]). The first
//! verdict that is not [`Verdict::Continue`] decides; [`Verdict::Accept`]
//! ends the chain for that point with an accept (an `OK` in an access
//! table beats a blocklist), headers to add and holds accumulate.

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
    /// Accept, and drop the message silently (with a log line).
    Discard,
    /// Accept, and keep the message on hold in the queue.
    Hold,
    /// Add these header fields (each `Name: value`) and go on.
    AddHeaders(Vec<String>),
}

/// What a whole chain decided at one point.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// The refusal, if a stage refused; `stage` names it (the log's cause).
    pub reject: Option<(String, Reply)>,
    pub discard: bool,
    pub hold: bool,
    pub headers: Vec<String>,
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

    /// Asks every stage at `point`, in order, until one decides.
    pub async fn decide(&self, point: Point, facts: &Facts) -> Decision {
        let mut decision = Decision::default();
        for stage in &self.stages {
            match stage.check(point, facts).await {
                Verdict::Continue => {}
                Verdict::Accept => break,
                Verdict::Reject(reply) => {
                    decision.reject = Some((stage.name().to_owned(), reply));
                    break;
                }
                Verdict::Discard => {
                    decision.discard = true;
                    break;
                }
                Verdict::Hold => decision.hold = true,
                Verdict::AddHeaders(h) => decision.headers.extend(h),
            }
        }
        decision
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
