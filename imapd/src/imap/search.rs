//! SEARCH: every RFC 3501 key. Text keys match the decoded message
//! (headers and text parts in UTF-8, through bsfilter's decoder: every
//! charset it repairs is searchable), case-insensitively. A header key
//! also matches the header's own text after the colon (RFC 3501 §6.4.4),
//! where the decoder's value differs from it: the angle brackets of a
//! Message-ID or References, a group's name in To, a comment — a client
//! looking a message up by `<id@host>` must find it.

use bsfilter::decode::DecodedMessage;
use chrono::Datelike;
use imap_types::search::SearchKey;

use super::sequence;
use crate::mailbox::{ANSWERED, DELETED, DRAFT, FLAGGED, Message, SEEN};

/// Deepest nesting of NOT/OR/AND evaluated (hostile input).
pub const MAX_DEPTH: usize = 64;

/// What a key needs to know about the mailbox.
pub struct Scope<'a> {
    pub messages: &'a [Message],
    pub recent: &'a dyn Fn(u32) -> bool,
    /// Turns a search string from the client's charset into UTF-8.
    pub decode: &'a dyn Fn(&[u8]) -> String,
}

/// The positions (0-based) of the messages matching `key`.
pub fn search(key: &SearchKey<'_>, scope: &Scope<'_>) -> Result<Vec<usize>, String> {
    if depth(key, 0) > MAX_DEPTH {
        return Err("search keys nested too deeply".into());
    }
    let mut out = Vec::new();
    for (i, m) in scope.messages.iter().enumerate() {
        let mut decoded = None;
        if matches(key, i, m, scope, &mut decoded) {
            out.push(i);
        }
    }
    Ok(out)
}

fn depth(key: &SearchKey<'_>, d: usize) -> usize {
    if d > MAX_DEPTH {
        return d;
    }
    match key {
        SearchKey::Not(k) => depth(k, d + 1),
        SearchKey::Or(a, b) => depth(a, d + 1).max(depth(b, d + 1)),
        SearchKey::And(keys) => keys.as_ref().iter().map(|k| depth(k, d + 1)).max().unwrap_or(d),
        _ => d,
    }
}

fn matches(
    key: &SearchKey<'_>,
    i: usize,
    m: &Message,
    scope: &Scope<'_>,
    decoded: &mut Option<DecodedMessage>,
) -> bool {
    let text = |needle: &[u8], decoded: &mut Option<DecodedMessage>, what: Field<'_>| {
        let needle = (scope.decode)(needle).to_lowercase();
        let d = decoded.get_or_insert_with(|| DecodedMessage::parse(&m.content));
        contains(d, &m.content, what, &needle)
    };
    let date = |d: &chrono::NaiveDate| {
        bsfilter::time::days_from_civil(i64::from(d.year()), i64::from(d.month()), i64::from(d.day()))
    };
    let internal_day = || m.internal_date().div_euclid(86400);
    let sent_day = || {
        crate::mime::field(&crate::mime::header_fields(&m.content), "date")
            .and_then(|date| parse_rfc2822_day(&date))
            .unwrap_or_else(internal_day)
    };
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().all(|k| matches(k, i, m, scope, decoded)),
        SearchKey::Or(a, b) => matches(a, i, m, scope, decoded) || matches(b, i, m, scope, decoded),
        SearchKey::Not(k) => !matches(k, i, m, scope, decoded),
        SearchKey::SequenceSet(set) => sequence::contains(set, scope.messages, i, false),
        SearchKey::Uid(set) => sequence::contains(set, scope.messages, i, true),
        SearchKey::All => true,
        SearchKey::Answered => m.has(ANSWERED),
        SearchKey::Unanswered => !m.has(ANSWERED),
        SearchKey::Deleted => m.has(DELETED),
        SearchKey::Undeleted => !m.has(DELETED),
        SearchKey::Draft => m.has(DRAFT),
        SearchKey::Undraft => !m.has(DRAFT),
        SearchKey::Flagged => m.has(FLAGGED),
        SearchKey::Unflagged => !m.has(FLAGGED),
        SearchKey::Seen => m.has(SEEN),
        SearchKey::Unseen => !m.has(SEEN),
        SearchKey::Recent => (scope.recent)(m.uid),
        SearchKey::New => (scope.recent)(m.uid) && !m.has(SEEN),
        SearchKey::Old => !(scope.recent)(m.uid),
        SearchKey::Keyword(k) => m.keywords.iter().any(|x| x.eq_ignore_ascii_case(k.as_ref())),
        SearchKey::Unkeyword(k) => !m.keywords.iter().any(|x| x.eq_ignore_ascii_case(k.as_ref())),
        SearchKey::Larger(n) => m.size() > *n as usize,
        SearchKey::Smaller(n) => m.size() < *n as usize,
        SearchKey::Before(d) => internal_day() < date(d.as_ref()),
        SearchKey::On(d) => internal_day() == date(d.as_ref()),
        SearchKey::Since(d) => internal_day() >= date(d.as_ref()),
        SearchKey::SentBefore(d) => sent_day() < date(d.as_ref()),
        SearchKey::SentOn(d) => sent_day() == date(d.as_ref()),
        SearchKey::SentSince(d) => sent_day() >= date(d.as_ref()),
        SearchKey::Bcc(s) => text(s.as_ref(), decoded, Field::Header("bcc")),
        SearchKey::Cc(s) => text(s.as_ref(), decoded, Field::Header("cc")),
        SearchKey::From(s) => text(s.as_ref(), decoded, Field::Header("from")),
        SearchKey::To(s) => text(s.as_ref(), decoded, Field::Header("to")),
        SearchKey::Subject(s) => text(s.as_ref(), decoded, Field::Header("subject")),
        SearchKey::Header(name, s) => {
            let name = String::from_utf8_lossy(name.as_ref()).to_ascii_lowercase();
            text(s.as_ref(), decoded, Field::Header(&name))
        }
        SearchKey::Body(s) => text(s.as_ref(), decoded, Field::Body),
        SearchKey::Text(s) => text(s.as_ref(), decoded, Field::Text),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

enum Field<'a> {
    Header(&'a str),
    Body,
    Text,
}

/// Does `needle` (lower case) occur in `what` of the message `raw`,
/// decoded as `d`?
fn contains(d: &DecodedMessage, raw: &[u8], what: Field<'_>, needle: &str) -> bool {
    let in_headers = |name: Option<&str>| {
        let decoded = d
            .headers
            .iter()
            .filter(|h| name.is_none_or(|n| h.name == n))
            // HEADER name "" matches every message with that field
            .any(|h| needle.is_empty() || h.value.to_lowercase().contains(needle));
        decoded
            || crate::mime::header_fields(raw)
                .iter()
                .filter(|(n, _)| name.is_none_or(|wanted| n == wanted))
                .any(|(_, value)| needle.is_empty() || String::from_utf8_lossy(value).to_lowercase().contains(needle))
    };
    let in_body = || d.texts.iter().any(|t| t.text.to_lowercase().contains(needle));
    match what {
        Field::Header(name) => in_headers(Some(name)),
        Field::Body => in_body(),
        Field::Text => in_headers(None) || in_body(),
    }
}

/// The day (days since the epoch, in the date's own zone) of an RFC 2822
/// date such as `Tue, 1 Jan 2002 10:00:00 +0000`.
fn parse_rfc2822_day(value: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let words: Vec<String> = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let at = words
        .iter()
        .position(|w| MONTHS.contains(&&w[..w.len().min(3)]) && w.len() >= 3)?;
    let month = MONTHS.iter().position(|m| words[at].starts_with(m))? as i64 + 1;
    let day: i64 = words.get(at.checked_sub(1)?)?.parse().ok()?;
    let mut year: i64 = words.get(at + 1)?.parse().ok()?;
    if year < 50 {
        year += 2000;
    } else if year < 1000 {
        year += 1900;
    }
    Some(bsfilter::time::days_from_civil(year, month, day))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2822_days() {
        assert_eq!(parse_rfc2822_day("Tue, 1 Jan 2002 10:00:00 +0000"), Some(11688));
        assert_eq!(parse_rfc2822_day("1 Jan 02 10:00"), Some(11688));
        assert_eq!(parse_rfc2822_day("garbage"), None);
    }
}
