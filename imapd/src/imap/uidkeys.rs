//! Search keys that stand for a set of messages, which imap-codec 1.0
//! does not parse: WITHIN's `OLDER n` and `YOUNGER n` (RFC 5032: internal
//! date at least / at most n seconds ago) and SEARCHRES's `$` (RFC 5182:
//! the result a `SEARCH RETURN (SAVE)` kept). Each is replaced, before
//! imap-codec sees the command, by the key for exactly the messages it
//! stands for now — `UID set`, or `NOT ALL` when there are none — so it
//! combines with every other key (OR, NOT, parentheses) as it should. A
//! `$` as the message set of FETCH, STORE, COPY or MOVE makes the command
//! its UID form over the saved UIDs.

use super::sequence::compact;
use crate::mailbox::Message;

/// The command with its OLDER, YOUNGER and `$` keys replaced (`saved`:
/// the UIDs `$` stands for), or None if it has none (strings and literals
/// are skipped, not searched for keys).
pub fn rewrite(input: &[u8], messages: &[Message], now: i64, saved: &[u32]) -> Option<Vec<u8>> {
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
                if at_word && input[i] == b'$' && matches!(input.get(i + 1), None | Some(b' ' | b')' | b'\r' | b'\n')) {
                    out.extend_from_slice(uid_key(saved).as_bytes());
                    replaced = true;
                    i += 1;
                    continue;
                }
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

/// What a command with `$` as its message set becomes.
#[derive(Debug, PartialEq, Eq)]
pub enum SavedSet {
    /// Its UID form over the saved UIDs.
    Command(Vec<u8>),
    /// Nothing is saved: the command has no message to act on.
    Empty,
}

/// For FETCH, STORE, COPY and MOVE (and their UID forms) whose message
/// set is `$`: the command over the saved UIDs (for the plain forms, the
/// numbers those messages have in `messages` now), or None for any other
/// command.
pub fn saved_set(input: &[u8], saved: &[u32], messages: &[Message]) -> Option<SavedSet> {
    let text = std::str::from_utf8(input).ok()?;
    let mut words = text.splitn(3, ' ');
    let tag = words.next()?;
    let mut command = words.next()?;
    let mut rest = words.next()?;
    let uid = command.eq_ignore_ascii_case("UID");
    if uid {
        (command, rest) = rest.split_once(' ')?;
    }
    if !["FETCH", "STORE", "COPY", "MOVE"]
        .iter()
        .any(|c| command.eq_ignore_ascii_case(c))
    {
        return None;
    }
    let after = rest.strip_prefix("$ ")?;
    let numbers: Vec<u32> = if uid {
        saved.to_vec()
    } else {
        saved
            .iter()
            .filter_map(|u| messages.binary_search_by_key(u, |m| m.uid).ok())
            .map(|i| i as u32 + 1)
            .collect()
    };
    if numbers.is_empty() {
        return Some(SavedSet::Empty);
    }
    let prefix = if uid { "UID " } else { "" };
    Some(SavedSet::Command(
        format!("{tag} {prefix}{command} {} {after}", compact(&numbers)).into_bytes(),
    ))
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
    uid_key(&uids)
}

/// The key for exactly these UIDs (ascending).
fn uid_key(uids: &[u32]) -> String {
    if uids.is_empty() {
        "NOT ALL".to_owned()
    } else {
        format!("UID {}", compact(uids))
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

    #[test]
    fn saved_sets() {
        let messages = [
            message(3, "Tue Dec  1 10:00:00 2026"),
            message(4, "Tue Dec  1 10:00:00 2026"),
            message(9, "Tue Dec  1 10:00:00 2026"),
        ];
        assert_eq!(
            saved_set(b"a UID FETCH $ (FLAGS)\r\n", &[3, 4, 9], &messages),
            Some(SavedSet::Command(b"a UID FETCH 3:4,9 (FLAGS)\r\n".to_vec()))
        );
        // by number: the saved messages' numbers now (UID 7 is gone)
        assert_eq!(
            saved_set(b"a STORE $ +FLAGS (x)\r\n", &[4, 7, 9], &messages),
            Some(SavedSet::Command(b"a STORE 2:3 +FLAGS (x)\r\n".to_vec()))
        );
        assert_eq!(
            saved_set(b"a UID COPY $ Trash\r\n", &[], &messages),
            Some(SavedSet::Empty)
        );
        assert_eq!(saved_set(b"a FETCH 1:2 (FLAGS)\r\n", &[3], &messages), None);
        assert_eq!(saved_set(b"a SEARCH $\r\n", &[3], &messages), None);
    }

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
        let r = |s: &str| rewrite(s.as_bytes(), &messages, noon, &[2, 5]).map(|b| String::from_utf8(b).unwrap());
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
        assert_eq!(r("a SEARCH NOT $\r\n").as_deref(), Some("a SEARCH NOT UID 2,5\r\n"));
        assert_eq!(r("a SEARCH SUBJECT \"$\" $x\r\n"), None);
        assert_eq!(
            rewrite(b"a SEARCH $\r\n", &messages, noon, &[]).as_deref(),
            Some(&b"a SEARCH NOT ALL\r\n"[..])
        );
    }
}
