//! DNS lists: `reject_rbl_client`, `reject_rhsbl_sender`,
//! `reject_rhsbl_helo` and `permit_dnswl_client`, as Postfix names and
//! answers them, asked at RCPT with the access tables (after them: an `OK`
//! in a table is never overruled by a list).
//!
//! A list is `zone` (any A record lists) or `zone=127.0.0.2` (only that
//! answer; each octet may be `[2;4;6..8]`, as Postfix allows). An allow
//! list that lists the client accepts; then every block list is asked at
//! once and the first in the configured order that lists decides, its
//! reply carrying the list's TXT text through the site's template
//! (`rbl_reply`, Postfix's `rbl_reply_maps`). A lookup that times out or
//! fails is logged and counts as not listed (fail-open, as Postfix).
//!
//! With `dnsbl_threshold` the block lists are scored instead, as
//! postscreen's `postscreen_dnsbl_sites` / `postscreen_dnsbl_threshold`:
//! each list that lists adds its weight (`zone*3`, `zone=127.0.0.4*-2`;
//! 1 when not given), and only a sum at or above the threshold refuses —
//! one list's mistake no longer stops mail by itself. The reply is that of
//! the first list in the configured order that listed.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;

use super::{Facts, Point, Stage, Verdict};
use crate::dns::Dns;
use crate::smtp::reply::Reply;

/// Postfix's `default_rbl_reply`.
pub const DEFAULT_REPLY: &str =
    "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}";

/// One list: its zone and which answers count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    pub zone: String,
    filter: Option<[Octet; 4]>,
    /// What a listing adds to the score under `dnsbl_threshold`.
    pub weight: i32,
}

/// One octet of an answer filter: the values it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Octet(Vec<(u8, u8)>);

impl std::str::FromStr for List {
    type Err = String;
    fn from_str(text: &str) -> Result<List, String> {
        // postscreen's weight: `*N` at the end, N maybe negative
        let (s, weight) = match text.rsplit_once('*') {
            Some((list, w)) => (
                list,
                w.trim()
                    .parse()
                    .map_err(|_| format!("{text:?}: the weight after * is a whole number"))?,
            ),
            None => (text, 1),
        };
        let (zone, filter) = match s.split_once('=') {
            Some((z, f)) => (z, Some(f)),
            None => (s, None),
        };
        let zone = zone.trim().trim_end_matches('.').to_ascii_lowercase();
        if zone.is_empty() || zone.contains(char::is_whitespace) {
            return Err(format!("{s:?}: a DNS list is ZONE or ZONE=127.0.0.N"));
        }
        let filter = filter
            .map(|f| parse_filter(f).ok_or_else(|| format!("{s:?}: bad answer filter {f:?}")))
            .transpose()?;
        Ok(List { zone, filter, weight })
    }
}

impl<'de> serde::Deserialize<'de> for List {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// `127.0.0.2`, `127.0.[0..255].[2;4;6..8]`.
fn parse_filter(text: &str) -> Option<[Octet; 4]> {
    // dots inside [..] are ranges, not separators
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    if parts.len() != 4 {
        return None;
    }
    let octet = |p: &str| -> Option<Octet> {
        let ranges = match p.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
            Some(inner) => inner
                .split(';')
                .map(|r| match r.split_once("..") {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => r.parse().ok().map(|v| (v, v)),
                })
                .collect::<Option<Vec<_>>>()?,
            None => vec![(p.parse().ok()?, p.parse().ok()?)],
        };
        Some(Octet(ranges))
    };
    Some([octet(parts[0])?, octet(parts[1])?, octet(parts[2])?, octet(parts[3])?])
}

impl List {
    fn matches(&self, answers: &[Ipv4Addr]) -> bool {
        match &self.filter {
            None => !answers.is_empty(),
            Some(filter) => answers.iter().any(|a| {
                a.octets()
                    .iter()
                    .zip(filter)
                    .all(|(v, Octet(ranges))| ranges.iter().any(|(lo, hi)| (lo..=hi).contains(&v)))
            }),
        }
    }
}

/// The name to look up for `ip` in `zone`: its octets (IPv6: nibbles)
/// reversed.
pub fn reversed(ip: IpAddr, zone: &str) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{zone}.")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(64 + zone.len());
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            name.push_str(zone);
            name.push('.');
            name
        }
    }
}

/// What is looked up in a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Client,
    Sender,
    Helo,
}

impl Kind {
    fn class(self) -> &'static str {
        match self {
            Kind::Client => "Client host",
            Kind::Sender => "Sender address",
            Kind::Helo => "Helo command",
        }
    }
}

pub struct Dnsbl {
    dns: Dns,
    pub client: Vec<List>,
    pub sender: Vec<List>,
    pub helo: Vec<List>,
    pub allow: Vec<List>,
    /// Reply templates by zone (`rbl_reply_maps`); others get [`DEFAULT_REPLY`].
    pub replies: std::collections::HashMap<String, String>,
    /// Score the lists (their weights) and refuse at this sum, instead of
    /// at the first that lists.
    pub threshold: Option<i32>,
}

impl Dnsbl {
    pub fn new(dns: Dns) -> Dnsbl {
        Dnsbl {
            dns,
            client: Vec::new(),
            sender: Vec::new(),
            helo: Vec::new(),
            allow: Vec::new(),
            replies: Default::default(),
            threshold: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.client.is_empty() && self.sender.is_empty() && self.helo.is_empty() && self.allow.is_empty()
    }

    async fn verdict(&self, facts: &Facts) -> Verdict {
        let Some(client) = facts.client_addr else {
            return Verdict::Continue;
        };
        // allow lists first: one that lists the client accepts
        let allow = self.ask(self.allow.iter().map(|l| {
            (
                Kind::Client,
                l,
                client.to_canonical().to_string(),
                reversed(client, &l.zone),
            )
        }));
        for (list, hit) in allow.await {
            if hit.is_some() {
                tracing::info!(event = "dnswl", list = %list.zone, client = %client, "client on an allow list");
                return Verdict::Accept;
            }
        }
        let sender_domain = facts
            .sender
            .as_deref()
            .and_then(|s| s.rsplit_once('@'))
            .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase());
        let helo = facts.helo.trim_end_matches('.').to_ascii_lowercase();
        let mut queries = Vec::new();
        for l in &self.client {
            queries.push((
                Kind::Client,
                l,
                client.to_canonical().to_string(),
                reversed(client, &l.zone),
            ));
        }
        if let Some(domain) = &sender_domain {
            for l in &self.sender {
                queries.push((Kind::Sender, l, domain.clone(), format!("{domain}.{}.", l.zone)));
            }
        }
        if !helo.is_empty() && !helo.starts_with('[') {
            for l in &self.helo {
                queries.push((Kind::Helo, l, helo.clone(), format!("{helo}.{}.", l.zone)));
            }
        }
        let answers = self.ask(queries.into_iter()).await;
        let mut hits = answers.iter().filter_map(|(list, hit)| Some((*list, hit.as_ref()?)));
        let Some((first, (kind, what, reason))) = hits.clone().next() else {
            return Verdict::Continue;
        };
        if let Some(threshold) = self.threshold {
            let score: i32 = hits.by_ref().map(|(list, _)| list.weight).sum();
            let listed: Vec<&str> = answers
                .iter()
                .filter(|(_, hit)| hit.is_some())
                .map(|(list, _)| list.zone.as_str())
                .collect();
            if score < threshold {
                tracing::info!(event = "dnsbl_score", client = %client, score, threshold, lists = %listed.join(","), "listed, below the threshold");
                return Verdict::Continue;
            }
            tracing::info!(event = "dnsbl_score", client = %client, score, threshold, lists = %listed.join(","), "at the threshold");
        }
        let template = self.replies.get(&first.zone).map_or(DEFAULT_REPLY, String::as_str);
        let reply = expand_reply(template, &first.zone, kind.class(), what, reason.as_deref(), facts);
        Verdict::RejectBy(first.zone.clone(), reply)
    }

    /// Looks up every query at once; each list with what it said, in the
    /// order given: `Some((kind, what, TXT reason))` when it lists.
    async fn ask<'l>(
        &self,
        queries: impl Iterator<Item = (Kind, &'l List, String, String)>,
    ) -> Vec<(&'l List, Option<(Kind, String, Option<String>)>)> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut lists = Vec::new();
        for (i, (kind, list, what, name)) in queries.enumerate() {
            lists.push(list);
            let dns = self.dns.clone();
            let list_owned = list.clone();
            tasks.spawn(async move {
                let answer = match dns.listed(&name).await {
                    Ok(answers) if list_owned.matches(&answers) => Some((kind, what, dns.text(&name).await)),
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!(list = %list_owned.zone, "DNS list lookup failed, counted as not listed: {e}");
                        None
                    }
                };
                (i, answer)
            });
        }
        let mut answers: Vec<Option<(Kind, String, Option<String>)>> = vec![None; lists.len()];
        while let Some(done) = tasks.join_next().await {
            if let Ok((i, answer)) = done {
                answers[i] = answer;
            }
        }
        lists.into_iter().zip(answers).collect()
    }
}

/// A reply from a template: `$name`, `${name}`, `${name?text}` (text when
/// the value is not empty), `${name:text}` (text when it is); the first
/// word is the code, an enhanced code may follow.
fn expand_reply(template: &str, zone: &str, class: &str, what: &str, reason: Option<&str>, facts: &Facts) -> Reply {
    let value = |name: &str| -> String {
        match name {
            "rbl_code" => "554".to_owned(),
            "rbl_domain" => zone.to_owned(),
            "rbl_reason" | "rbl_txt" => reason.unwrap_or("").to_owned(),
            "rbl_class" => class.to_owned(),
            "rbl_what" => what.to_owned(),
            "client_address" => facts.client_addr.map(|a| a.to_string()).unwrap_or_default(),
            "client_name" => facts.client_name.clone(),
            "helo_name" => facts.helo.clone(),
            "sender" => facts.sender.clone().unwrap_or_default(),
            "recipient" => facts.recipients.last().cloned().unwrap_or_default(),
            _ => String::new(),
        }
    };
    let text = expand(template, &value);
    let (code, rest) = text.split_once(' ').unwrap_or((&text, ""));
    let code: u16 = code.parse().ok().filter(|c| (400..600).contains(c)).unwrap_or(554);
    let class = code / 100;
    let (status, rest) = match rest.split_once(' ') {
        Some((s, r)) if s.split('.').count() == 3 && s.split('.').all(|p| p.parse::<u16>().is_ok()) => {
            let p: Vec<u16> = s.split('.').map(|p| p.parse().unwrap_or(0)).collect();
            ([p[0], p[1], p[2]], r)
        }
        _ => ([class, 7, 1], rest),
    };
    Reply::new(code, status, rest.to_owned())
}

fn expand(template: &str, value: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(inner) = after.strip_prefix('{') {
            // find the matching close brace
            let mut depth = 1;
            let mut end = None;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(end) = end else {
                out.push_str(&rest[at..]);
                return out;
            };
            let body = &inner[..end];
            let name_len = body.find(['?', ':']).unwrap_or(body.len());
            let v = value(&body[..name_len]);
            match body[name_len..].chars().next() {
                Some('?') if !v.is_empty() => out.push_str(&expand(&body[name_len + 1..], value)),
                Some(':') if v.is_empty() => out.push_str(&expand(&body[name_len + 1..], value)),
                None => out.push_str(&v),
                _ => {}
            }
            rest = &inner[end + 1..];
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if n == 0 {
                out.push('$');
                rest = after.strip_prefix('$').unwrap_or(after);
                continue;
            }
            out.push_str(&value(&after[..n]));
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    out
}

impl Stage for Dnsbl {
    fn name(&self) -> &'static str {
        "dnsbl"
    }

    fn check<'a>(&'a self, point: Point, facts: &'a Facts) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            if point == Point::Rcpt {
                self.verdict(facts).await
            } else {
                Verdict::Continue
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_filters() {
        let l: List = "zen.example=127.0.0.[2..4;10]".parse().unwrap();
        assert_eq!(l.zone, "zen.example");
        assert!(l.matches(&[Ipv4Addr::new(127, 0, 0, 3)]));
        assert!(l.matches(&[Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 10)]));
        assert!(!l.matches(&[Ipv4Addr::new(127, 0, 0, 5)]));
        let any: List = "bl.example.".parse().unwrap();
        assert!(any.matches(&[Ipv4Addr::new(127, 0, 0, 5)]) && !any.matches(&[]));
        assert!("bl.example=127.0.0".parse::<List>().is_err());
        assert!("".parse::<List>().is_err());
        // postscreen's weights
        assert_eq!((l.weight, any.weight), (1, 1));
        let w: List = "zen.example=127.0.0.[2..11]*3".parse().unwrap();
        assert_eq!((w.zone.as_str(), w.weight), ("zen.example", 3));
        assert!(w.matches(&[Ipv4Addr::new(127, 0, 0, 11)]));
        assert_eq!("wl.example*-2".parse::<List>().unwrap().weight, -2);
        assert!("bl.example*x".parse::<List>().is_err());
        assert_eq!(
            reversed("61.49.138.219".parse().unwrap(), "bl.example"),
            "219.138.49.61.bl.example."
        );
        assert!(reversed("2001:db8::1".parse().unwrap(), "z").starts_with("1.0.0.0.0.0.0.0"));
        assert!(reversed("2001:db8::1".parse().unwrap(), "z").ends_with("8.b.d.0.1.0.0.2.z."));
    }

    #[test]
    fn replies_from_templates() {
        let facts = Facts {
            client_addr: Some("192.0.2.9".parse().unwrap()),
            ..Default::default()
        };
        let r = expand_reply(
            DEFAULT_REPLY,
            "bl.example",
            "Client host",
            "192.0.2.9",
            Some("see http://bl.example/q"),
            &facts,
        );
        assert_eq!(
            r.one_line(),
            "554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using bl.example; see http://bl.example/q"
        );
        let r = expand_reply(DEFAULT_REPLY, "bl.example", "Client host", "192.0.2.9", None, &facts);
        assert_eq!(
            r.one_line(),
            "554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using bl.example"
        );
        let r = expand_reply(
            "450 4.7.1 $client_address is listed${rbl_reason:, no reason given} (50$$)",
            "z",
            "Client host",
            "x",
            None,
            &facts,
        );
        assert_eq!(r.one_line(), "450 4.7.1 192.0.2.9 is listed, no reason given (50$)");
    }
}
