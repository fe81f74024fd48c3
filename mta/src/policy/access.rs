//! Access tables: `check_client_access`, `check_helo_access`,
//! `check_sender_access`, `check_recipient_access` in Postfix's access(5)
//! format and search order. All are asked at RCPT, as Postfix does by
//! default (`smtpd_delay_reject = yes`): the client's name, its HELO and
//! the sender are known then, and every refusal is logged with the
//! recipient it stopped.
//!
//! Search order, in a table of exact keys (`hash:` and its kin):
//! - client: its name (`unknown` when not confirmed, looked up as Postfix
//!   does) and each parent domain, then its address and each shorter network (`61.49.138.219`, `61.49.138`,
//!   `61.49`, `61`; IPv6 by `:` groups);
//! - HELO: the name and each parent domain;
//! - sender, recipient: `user@domain`, the domain and each parent
//!   (Postfix's default `parent_domain_matches_subdomains`), then `user@`;
//!   the null sender is `<>`.
//!
//! In `cidr:`, `regexp:` and `pcre:` tables only whole keys are looked up
//! (the client's name, then its address; the HELO name; the address). The first
//! key found decides for that table; `DUNNO` stops the search in it.

use std::future::Future;
use std::pin::Pin;

use super::action::Action;
use super::table::Table;
use super::{Facts, Point, Stage, Verdict};

/// What an access table is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Client,
    Helo,
    Sender,
    Recipient,
}

impl Subject {
    fn stage_name(self) -> &'static str {
        match self {
            Subject::Client => "check_client_access",
            Subject::Helo => "check_helo_access",
            Subject::Sender => "check_sender_access",
            Subject::Recipient => "check_recipient_access",
        }
    }

    /// Postfix's words before "rejected" in the reply.
    fn class(self) -> &'static str {
        match self {
            Subject::Client => "Client host",
            Subject::Helo => "Helo command",
            Subject::Sender => "Sender address",
            Subject::Recipient => "Recipient address",
        }
    }
}

/// One `check_*_access` list of tables.
pub struct Access {
    subject: Subject,
    tables: Vec<Table>,
}

impl Access {
    pub fn new(subject: Subject, tables: Vec<Table>) -> Access {
        Access { subject, tables }
    }

    /// The verdict of the tables for these facts (the recipient is the
    /// last of `facts.recipients`).
    pub fn verdict(&self, facts: &Facts) -> Verdict {
        let (what, keys, whole) = match self.subject {
            Subject::Client => {
                let addr = facts
                    .client_addr
                    .map(|a| a.to_canonical().to_string())
                    .unwrap_or_default();
                // a client without a confirmed name is `unknown`, and that
                // is looked up too, as Postfix does (S25R tables use it)
                let name = if facts.client_name.is_empty() {
                    "unknown"
                } else {
                    facts.client_name.as_str()
                };
                let mut keys = domain_keys(name);
                keys.extend(address_keys(&addr));
                let whole = vec![name.to_owned(), addr.clone()];
                (format!("{name}[{addr}]"), keys, whole)
            }
            Subject::Helo => {
                if facts.helo.is_empty() {
                    return Verdict::Continue;
                }
                (facts.helo.clone(), domain_keys(&facts.helo), vec![facts.helo.clone()])
            }
            Subject::Sender => {
                let Some(sender) = &facts.sender else {
                    return Verdict::Continue;
                };
                if sender.is_empty() {
                    (String::new(), vec!["<>".to_owned()], vec!["<>".to_owned()])
                } else {
                    (sender.clone(), mail_keys(sender), vec![sender.clone()])
                }
            }
            Subject::Recipient => {
                let Some(rcpt) = facts.recipients.last() else {
                    return Verdict::Continue;
                };
                (rcpt.clone(), mail_keys(rcpt), vec![rcpt.clone()])
            }
        };
        let mut effects = Vec::new();
        for table in &self.tables {
            let lookups = table.lookups();
            let keys = if table.is_fixed() { &keys } else { &whole };
            let Some((key, value)) = keys.iter().find_map(|k| lookups.get(k.as_bytes()).map(|v| (k, v))) else {
                continue;
            };
            let log = |action: &str, text: &str| {
                tracing::info!(
                    event = action,
                    stage = self.subject.stage_name(),
                    table = table.name(),
                    key = %key,
                    client = ?facts.client_addr,
                    what = %what,
                    "{text}"
                );
            };
            // DEFER_IF_*: access_map_defer_code, as DEFER
            let deferral = |text: Option<String>| {
                let prefix = format!("<{what}>: {} rejected: ", self.subject.class());
                Action::reply(450, None, text.as_deref(), &prefix, "Access denied")
            };
            match Action::parse(&value, 554, 450) {
                Action::Ok => return Verdict::Several(effects.into_iter().chain([Verdict::Accept]).collect()),
                Action::Dunno => {}
                Action::Refuse { code, status, text } => {
                    let prefix = format!("<{what}>: {} rejected: ", self.subject.class());
                    let reply = Action::reply(code, status, text.as_deref(), &prefix, "Access denied");
                    effects.push(Verdict::Reject(reply));
                    return Verdict::Several(effects);
                }
                Action::DeferIfReject(text) => effects.push(Verdict::DeferIfReject(deferral(text))),
                Action::DeferIfPermit(text) => effects.push(Verdict::DeferIfPermit(deferral(text))),
                Action::Discard(text) => {
                    log("discard", text.as_deref().unwrap_or(""));
                    effects.push(Verdict::Discard);
                    return Verdict::Several(effects);
                }
                Action::Hold(text) => {
                    log("hold", text.as_deref().unwrap_or(""));
                    effects.push(Verdict::Hold);
                }
                Action::Warn(text) => log("warn", text.as_deref().unwrap_or("")),
                Action::Prepend(header) => effects.push(Verdict::AddHeaders(vec![header])),
                Action::Redirect(to) => {
                    log("redirect", &to);
                    effects.push(Verdict::Redirect(to));
                }
                Action::Ignore | Action::Replace(_) | Action::Unknown(_) => {
                    // Postfix answers a result it cannot use so, too
                    tracing::error!(table = table.name(), key = %key, value = %value, "unsupported access action");
                    effects.push(Verdict::Reject(super::Reply::new(
                        451,
                        [4, 3, 5],
                        "Server configuration error",
                    )));
                    return Verdict::Several(effects);
                }
            }
        }
        Verdict::Several(effects)
    }
}

impl Stage for Access {
    fn name(&self) -> &'static str {
        self.subject.stage_name()
    }

    fn check<'a>(&'a self, point: Point, facts: &'a Facts) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            if point == Point::Rcpt {
                self.verdict(facts)
            } else {
                Verdict::Continue
            }
        })
    }
}

/// A domain and each parent: `a.b.example.jp`, `b.example.jp`,
/// `example.jp`, `jp`.
fn domain_keys(domain: &str) -> Vec<String> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let mut keys = vec![domain.clone()];
    let mut rest = domain.as_str();
    while let Some((_, parent)) = rest.split_once('.') {
        if parent.is_empty() {
            break;
        }
        keys.push(parent.to_owned());
        rest = parent;
    }
    keys
}

/// An address and each shorter network: `61.49.138.219`, `61.49.138`,
/// `61.49`, `61` (IPv6: cut at each `:` from the end, as Postfix cuts:
/// `2001:db8::1`, `2001:db8:`, `2001:db8`, `2001`).
fn address_keys(addr: &str) -> Vec<String> {
    if addr.is_empty() {
        return Vec::new();
    }
    let sep = if addr.contains(':') { ':' } else { '.' };
    let mut keys = vec![addr.to_owned()];
    let mut rest = addr;
    while let Some((shorter, _)) = rest.rsplit_once(sep) {
        if shorter.is_empty() {
            break;
        }
        keys.push(shorter.to_owned());
        rest = shorter;
    }
    keys
}

/// `user@domain`, the domain and its parents, `user@`.
fn mail_keys(address: &str) -> Vec<String> {
    let address = address.to_ascii_lowercase();
    match address.rsplit_once('@') {
        Some((user, domain)) => {
            let mut keys = vec![address.clone()];
            keys.extend(domain_keys(domain));
            keys.push(format!("{user}@"));
            keys
        }
        None => vec![address.clone(), format!("{address}@")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_client_is_looked_up_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "unknown 450 4.7.1 no reverse name\n").unwrap();
        let access = Access::new(
            Subject::Client,
            vec![Table::open(&format!("hash:{}", path.display())).unwrap()],
        );
        let mut facts = Facts {
            client_addr: Some("192.0.2.9".parse().unwrap()),
            client_name: "unknown".into(),
            recipients: vec!["a@example.jp".into()],
            ..Default::default()
        };
        // Postfix 3.7 answers the same (checked with postmap'd table and swaks)
        let Verdict::Several(v) = access.verdict(&facts) else {
            panic!()
        };
        assert_eq!(
            v,
            [Verdict::Reject(super::super::Reply::new(
                450,
                [4, 7, 1],
                "<unknown[192.0.2.9]>: Client host rejected: no reverse name"
            ))]
        );
        facts.client_name = "mail.example.jp".into();
        assert_eq!(access.verdict(&facts), Verdict::Several(vec![]));
    }

    #[test]
    fn search_orders() {
        assert_eq!(domain_keys("Mx.Example.JP."), ["mx.example.jp", "example.jp", "jp"]);
        assert_eq!(
            address_keys("61.49.138.219"),
            ["61.49.138.219", "61.49.138", "61.49", "61"]
        );
        assert_eq!(
            address_keys("2001:db8:1::1"),
            ["2001:db8:1::1", "2001:db8:1:", "2001:db8:1", "2001:db8", "2001"]
        );
        assert_eq!(
            mail_keys("Bob@Mail.Example.jp"),
            ["bob@mail.example.jp", "mail.example.jp", "example.jp", "jp", "bob@"]
        );
    }
}
