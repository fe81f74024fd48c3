//! SORT (RFC 5256, with RFC 5957's DISPLAYFROM and DISPLAYTO): the sort
//! keys of a message and the order they give; the base subject that
//! SORT SUBJECT and THREAD share. Subjects and names are decoded first
//! (RFC 2047 words in any charset bsfilter's decoder reads, raw 8-bit
//! text by detection), so Japanese subjects in ISO-2022-JP, Shift_JIS or
//! UTF-8 sort and thread as the same text.

use std::cmp::Ordering;

use super::extended::{SortCriterion, SortKey};
use crate::address;
use crate::mailbox::Message;
use crate::mime;

/// What sorting and threading need of one message.
pub struct Facts {
    /// The number the answer shows: the sequence number, or the UID for
    /// UID SORT and UID THREAD (both ascend together: the final
    /// tie-break either way).
    pub number: u32,
    /// RFC 5256 base subject, its ASCII letters in upper case.
    pub base_subject: String,
    /// The subject had a reply or forward marker taken off.
    pub is_reply: bool,
    /// The sent date (Date:, in UTC seconds), else the internal date.
    pub sent: i64,
    pub arrival: i64,
    pub size: usize,
    /// The first address's mailbox of From, To and Cc (upper case).
    pub from: String,
    pub to: String,
    pub cc: String,
    /// RFC 5957: the first address's display name, else its address.
    pub display_from: String,
    pub display_to: String,
    pub message_id: Option<String>,
    /// References' message IDs, or In-Reply-To's first one.
    pub references: Vec<String>,
}

impl Facts {
    pub fn of(message: &Message, number: u32) -> Facts {
        let fields = mime::header_fields(&message.content);
        let raw = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice());
        let subject = raw("subject").map(bsfilter::charset::decode_header).unwrap_or_default();
        let (base_subject, is_reply) = base_subject(&subject);
        let first = |name: &str| {
            raw(name)
                .map(address::parse_list)
                .unwrap_or_default()
                .into_iter()
                .find(|a| a.host.is_some())
        };
        let mailbox_of = |a: &Option<address::Address>| {
            a.as_ref()
                .and_then(|a| a.mailbox.as_deref())
                .map(|m| String::from_utf8_lossy(m).to_ascii_uppercase())
                .unwrap_or_default()
        };
        let display_of = |a: &Option<address::Address>| {
            let Some(a) = a else { return String::new() };
            match a.name.as_deref() {
                Some(name) if !name.is_empty() => bsfilter::charset::decode_header(name),
                _ => format!(
                    "{}@{}",
                    String::from_utf8_lossy(a.mailbox.as_deref().unwrap_or_default()),
                    String::from_utf8_lossy(a.host.as_deref().unwrap_or_default())
                ),
            }
            .to_ascii_uppercase()
        };
        let (from, to, cc) = (first("from"), first("to"), first("cc"));
        let arrival = message.internal_date();
        let sent = raw("date").and_then(parse_date).unwrap_or(arrival);
        let message_id = raw("message-id").and_then(|v| message_ids(v).into_iter().next());
        let mut references = raw("references").map(message_ids).unwrap_or_default();
        if references.is_empty() {
            references = raw("in-reply-to")
                .map(message_ids)
                .unwrap_or_default()
                .into_iter()
                .take(1)
                .collect();
        }
        Facts {
            number,
            base_subject,
            is_reply,
            sent,
            arrival,
            size: message.size(),
            from: mailbox_of(&from),
            to: mailbox_of(&to),
            cc: mailbox_of(&cc),
            display_from: display_of(&from),
            display_to: display_of(&to),
            message_id,
            references,
        }
    }
}

/// Sorts `facts` by `criteria`, ties by sequence number.
pub fn sort(facts: &mut [Facts], criteria: &[SortCriterion]) {
    facts.sort_by(|a, b| {
        for c in criteria {
            let order = match c.key {
                SortKey::Arrival => a.arrival.cmp(&b.arrival),
                SortKey::Cc => a.cc.cmp(&b.cc),
                SortKey::Date => a.sent.cmp(&b.sent),
                SortKey::From => a.from.cmp(&b.from),
                SortKey::Size => a.size.cmp(&b.size),
                SortKey::Subject => a.base_subject.cmp(&b.base_subject),
                SortKey::To => a.to.cmp(&b.to),
                SortKey::DisplayFrom => a.display_from.cmp(&b.display_from),
                SortKey::DisplayTo => a.display_to.cmp(&b.display_to),
            };
            let order = if c.reverse { order.reverse() } else { order };
            if order != Ordering::Equal {
                return order;
            }
        }
        a.number.cmp(&b.number)
    });
}

/// `<id@host>` message IDs in a header value, brackets kept off.
fn message_ids(value: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(value);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start + 1..].find('>') else { break };
        let id = rest[start + 1..start + 1 + len].trim();
        if id.contains('@') && !id.contains(char::is_whitespace) {
            out.push(id.to_owned());
        }
        rest = &rest[start + 1 + len..];
    }
    out
}

/// An RFC 5322 date in UTC seconds (day names, comments and obsolete
/// zones as chrono reads them).
fn parse_date(value: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(value);
    // a comment such as "(JST)" after the zone
    let text = text.split('(').next().unwrap_or_default().trim();
    chrono::DateTime::parse_from_rfc2822(text).ok().map(|d| d.timestamp())
}

/// RFC 5256 §2.1: the subject without reply and forward markers, list
/// tags and trailers, its white space collapsed and its ASCII letters in
/// upper case (i;ascii-casemap); and whether markers were taken off.
pub fn base_subject(subject: &str) -> (String, bool) {
    let mut s: String = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut is_reply = false;
    loop {
        let before = s.clone();
        // (2) trailers: "(fwd)" and white space
        loop {
            let trimmed = s.trim_end();
            let lower = trimmed.to_ascii_lowercase();
            if lower.ends_with("(fwd)") {
                s = trimmed[..trimmed.len() - 5].to_owned();
                is_reply = true;
            } else {
                s = trimmed.to_owned();
                break;
            }
        }
        // (3)-(4) leaders: "[blob]" and "re:", "fw:", "fwd:" with blobs
        loop {
            let stripped = strip_leader(&s);
            match stripped {
                Some((rest, refwd)) => {
                    is_reply |= refwd;
                    s = rest;
                }
                None => break,
            }
        }
        // (6) "[fwd: …]"
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("[fwd:") && s.ends_with(']') {
            s = s[5..s.len() - 1].trim().to_owned();
            is_reply = true;
            continue;
        }
        if s == before {
            break;
        }
    }
    (s.to_ascii_uppercase(), is_reply)
}

/// One subj-leader taken off the front: the rest, and whether it was a
/// reply or forward marker (not only a blob). A blob is kept when
/// nothing would remain after it.
fn strip_leader(s: &str) -> Option<(String, bool)> {
    let t = s.trim_start();
    // subj-refwd: ("re" / "fw" / "fwd") *WSP [subj-blob] ":"
    let lower = t.to_ascii_lowercase();
    for marker in ["re", "fwd", "fw"] {
        if let Some(after) = lower.strip_prefix(marker) {
            let mut rest = after.trim_start();
            if rest.starts_with('[')
                && let Some(end) = rest.find(']')
            {
                rest = rest[end + 1..].trim_start();
            }
            if let Some(rest) = rest.strip_prefix(':') {
                let cut = t.len() - rest.len();
                return Some((t[cut..].trim_start().to_owned(), true));
            }
        }
    }
    // subj-blob, if something remains
    if t.starts_with('[') {
        let end = t.find(']')?;
        let inner = &t[1..end];
        if inner.contains('[') {
            return None;
        }
        let rest = t[end + 1..].trim_start();
        if !rest.is_empty() {
            return Some((rest.to_owned(), false));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        for (subject, base, reply) in [
            ("Hello", "HELLO", false),
            ("Re: Hello", "HELLO", true),
            ("RE: re: Fwd: hello", "HELLO", true),
            ("[list] Re: [other] hello  (fwd)", "HELLO", true),
            ("Re[2]: hello", "HELLO", true),
            ("[fwd: Re: hello]", "HELLO", true),
            ("[list]", "[LIST]", false),
            ("  many   spaces\there ", "MANY SPACES HERE", false),
            ("Re: 会議の件", "会議の件", true),
            ("", "", false),
        ] {
            assert_eq!(base_subject(subject), (base.to_owned(), reply), "{subject:?}");
        }
    }

    #[test]
    fn ids_and_dates() {
        assert_eq!(message_ids(b"<a@b> junk <c@d>\t<no-at>"), ["a@b", "c@d"]);
        assert_eq!(parse_date(b"Tue, 1 Dec 2026 10:00:00 +0900 (JST)"), Some(1_796_086_800));
        assert_eq!(parse_date(b"garbage"), None);
    }
}
