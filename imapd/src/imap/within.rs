//! WITHIN (RFC 5032): the search keys `OLDER n` and `YOUNGER n` (internal
//! date at least / at most n seconds ago), which imap-codec 1.0 does not
//! parse. Each is replaced, before imap-codec sees the command, by the
//! key for exactly the messages it matches now — `UID set`, or `NOT ALL`
//! when there are none — so it combines with every other key (OR, NOT,
//! parentheses) as it should.

use super::sequence::compact;
use crate::mailbox::Message;

/// The command with its OLDER and YOUNGER keys replaced, or None if it has
/// none (strings and literals are skipped, not searched for keys).
pub fn rewrite(input: &[u8], messages: &[Message], now: i64) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let mut replaced = false;
    while i < input.len() {
        match input[i] {
            b'"' => {
                let end = quoted_end(input, i);
                out.extend_from_slice(&input[i..end]);
                i = end;
            }
            b'{' => {
                // a literal: {N} or {N+} CRLF and N bytes, copied whole
                let close = input[i..].iter().position(|&b| b == b'}').map(|p| i + p);
                let size = close.and_then(|c| {
                    std::str::from_utf8(&input[i + 1..c])
                        .ok()?
                        .trim_end_matches('+')
                        .parse::<usize>()
                        .ok()
                });
                match (close, size) {
                    (Some(c), Some(n)) => {
                        let end = (c + 3 + n).min(input.len());
                        out.extend_from_slice(&input[i..end]);
                        i = end;
                    }
                    _ => {
                        out.push(b'{');
                        i += 1;
                    }
                }
            }
            _ => {
                let at_word = i == 0 || matches!(input[i - 1], b' ' | b'(');
                match at_word.then(|| key_at(input, i)).flatten() {
                    Some((older, seconds, end)) => {
                        out.extend_from_slice(replacement(messages, now, older, seconds).as_bytes());
                        replaced = true;
                        i = end;
                    }
                    None => {
                        out.push(input[i]);
                        i += 1;
                    }
                }
            }
        }
    }
    replaced.then_some(out)
}

/// `OLDER n` / `YOUNGER n` at `i`: (is OLDER, n, end).
fn key_at(input: &[u8], i: usize) -> Option<(bool, i64, usize)> {
    let rest = &input[i..];
    let (older, len) = if rest.len() > 6 && rest[..6].eq_ignore_ascii_case(b"OLDER ") {
        (true, 6)
    } else if rest.len() > 8 && rest[..8].eq_ignore_ascii_case(b"YOUNGER ") {
        (false, 8)
    } else {
        return None;
    };
    let digits = rest[len..].iter().take_while(|b| b.is_ascii_digit()).count();
    let after = rest.get(len + digits).copied();
    if digits == 0 || digits > 10 || !matches!(after, None | Some(b' ' | b')' | b'\r' | b'\n')) {
        return None;
    }
    let seconds = std::str::from_utf8(&rest[len..len + digits]).ok()?.parse().ok()?;
    Some((older, seconds, i + len + digits))
}

fn replacement(messages: &[Message], now: i64, older: bool, seconds: i64) -> String {
    let bound = now - seconds;
    let uids: Vec<u32> = messages
        .iter()
        .filter(|m| {
            if older {
                m.internal_date() <= bound
            } else {
                m.internal_date() >= bound
            }
        })
        .map(|m| m.uid)
        .collect();
    if uids.is_empty() {
        "NOT ALL".to_owned()
    } else {
        format!("UID {}", compact(&uids))
    }
}

fn quoted_end(input: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < input.len() {
        match input[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    input.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(uid: u32, date: &str) -> Message {
        Message {
            uid,
            flags: 0,
            keywords: Vec::new(),
            recent: false,
            from_line: format!("From a@b {date}").into(),
            content: std::sync::Arc::new(Vec::new()),
            state_block: None,
            modseq: 0,
        }
    }

    #[test]
    fn keys_become_uid_sets() {
        let messages = [
            message(1, "Tue Dec  1 10:00:00 2026"),
            message(2, "Tue Dec  1 11:00:00 2026"),
            message(5, "Tue Dec  1 12:00:00 2026"),
        ];
        let noon = messages[2].internal_date();
        let r = |s: &str| rewrite(s.as_bytes(), &messages, noon).map(|b| String::from_utf8(b).unwrap());
        assert_eq!(r("a SEARCH YOUNGER 3600\r\n").as_deref(), Some("a SEARCH UID 2,5\r\n"));
        assert_eq!(
            r("a SEARCH OR OLDER 7200 (younger 10)\r\n").as_deref(),
            Some("a SEARCH OR UID 1 (UID 5)\r\n")
        );
        assert_eq!(r("a SEARCH OLDER 99999\r\n").as_deref(), Some("a SEARCH NOT ALL\r\n"));
        // in strings and literals, and as part of other words, they are text
        assert_eq!(r("a SEARCH SUBJECT \"OLDER 5\"\r\n"), None);
        assert_eq!(r("a SEARCH SUBJECT {8}\r\nOLDER 5\r\n"), None);
        assert_eq!(r("a SEARCH XOLDER 5\r\n"), None);
        assert_eq!(r("a SEARCH OLDER x\r\n"), None);
    }
}
