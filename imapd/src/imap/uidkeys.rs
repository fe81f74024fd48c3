//! Search keys that stand for a set of messages, which imap-codec 1.0
//! does not parse: WITHIN's `OLDER n` and `YOUNGER n` (RFC 5032: internal
//! date at least / at most n seconds ago), CONDSTORE's `MODSEQ [entry
//! type] n` (RFC 7162: mod-sequence at least n; one per message here, so
//! the entry is the message's) and SEARCHRES's `$` (RFC 5182: the result
//! a `SEARCH RETURN (SAVE)` kept). Each is replaced, before
//! imap-codec sees the command, by the key for exactly the messages it
//! stands for now — `UID set`, or `NOT ALL` when there are none — so it
//! combines with every other key (OR, NOT, parentheses) as it should. A
//! `$` as the message set of FETCH, STORE, COPY or MOVE makes the command
//! its UID form over the saved UIDs.

use super::scan::{copy_literal, quoted_end};
use super::sequence::compact;
use crate::mailbox::Message;

/// A command with its keys replaced.
pub struct Rewritten {
    pub input: Vec<u8>,
    /// It had a MODSEQ key: the answer names the highest mod-sequence
    /// found (RFC 7162 §3.1.5).
    pub modseq: bool,
}

/// The command with its OLDER, YOUNGER, MODSEQ and `$` keys replaced
/// (`saved`: the UIDs `$` stands for), or None if it has none (strings
/// and literals are skipped, not searched for keys).
pub fn rewrite(input: &[u8], messages: &[Message], now: i64, saved: &[u32]) -> Option<Rewritten> {
    let mut modseq = false;
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let mut replaced = false;
    while i < input.len() {
        match input[i] {
            b'"' => {
                let end = quoted_end(input, i).unwrap_or(input.len());
                out.extend_from_slice(&input[i..end]);
                i = end;
            }
            // a literal is passed over whole
            b'{' => i = copy_literal(input, i, &mut out),
            _ => {
                let at_word = i == 0 || matches!(input[i - 1], b' ' | b'(');
                if at_word && input[i] == b'$' && matches!(input.get(i + 1), None | Some(b' ' | b')' | b'\r' | b'\n')) {
                    out.extend_from_slice(uid_key(saved).as_bytes());
                    replaced = true;
                    i += 1;
                    continue;
                }
                match at_word.then(|| key_at(input, i)).flatten() {
                    Some((key, end)) => {
                        modseq |= matches!(key, Key::Modseq(_));
                        out.extend_from_slice(replacement(messages, now, key).as_bytes());
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
    replaced.then_some(Rewritten { input: out, modseq })
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Older(i64),
    Younger(i64),
    Modseq(u64),
}

/// `OLDER n`, `YOUNGER n` or `MODSEQ ["entry" type] n` at `i`, and where
/// it ends.
fn key_at(input: &[u8], i: usize) -> Option<(Key, usize)> {
    let rest = &input[i..];
    let starts = |word: &[u8]| rest.len() > word.len() && rest[..word.len()].eq_ignore_ascii_case(word);
    let (kind, mut len) = if starts(b"OLDER ") {
        (0, 6)
    } else if starts(b"YOUNGER ") {
        (1, 8)
    } else if starts(b"MODSEQ ") {
        (2, 7)
    } else {
        return None;
    };
    if kind == 2 && rest.get(len) == Some(&b'"') {
        // the entry name and its type: `"/flags/\\draft" all `
        len = quoted_end(rest, len)?;
        let word = rest[len..].iter().skip(1).take_while(|&&b| b != b' ').count();
        len += 1 + word + 1;
    }
    let digits = rest.get(len..)?.iter().take_while(|b| b.is_ascii_digit()).count();
    let after = rest.get(len + digits).copied();
    if digits == 0 || digits > 19 || !matches!(after, None | Some(b' ' | b')' | b'\r' | b'\n')) {
        return None;
    }
    let number: u64 = std::str::from_utf8(&rest[len..len + digits]).ok()?.parse().ok()?;
    let key = match kind {
        0 => Key::Older(i64::try_from(number).ok()?),
        1 => Key::Younger(i64::try_from(number).ok()?),
        _ => Key::Modseq(number),
    };
    Some((key, i + len + digits))
}

fn replacement(messages: &[Message], now: i64, key: Key) -> String {
    let uids: Vec<u32> = messages
        .iter()
        .filter(|m| match key {
            Key::Older(seconds) => m.internal_date() <= now - seconds,
            Key::Younger(seconds) => m.internal_date() >= now - seconds,
            Key::Modseq(n) => m.modseq >= n,
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
        let r = |s: &str| rewrite(s.as_bytes(), &messages, noon, &[2, 5]).map(|r| String::from_utf8(r.input).unwrap());
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
            rewrite(b"a SEARCH $\r\n", &messages, noon, &[]).map(|r| r.input),
            Some(b"a SEARCH NOT ALL\r\n".to_vec())
        );
        // (the messages' mod-sequences are 0, 0 and 7 here)
        let mut messages = messages;
        messages[2].modseq = 7;
        let r = |s: &str| {
            rewrite(s.as_bytes(), &messages, noon, &[]).map(|r| (String::from_utf8(r.input).unwrap(), r.modseq))
        };
        assert_eq!(
            r("a SEARCH MODSEQ 5\r\n"),
            Some(("a SEARCH UID 5\r\n".to_owned(), true))
        );
        assert_eq!(
            r("a SEARCH MODSEQ \"/flags/\\\\draft\" all 1 UNSEEN\r\n"),
            Some(("a SEARCH UID 5 UNSEEN\r\n".to_owned(), true))
        );
    }
}
