//! What imap-codec 1.0 does not parse in APPEND:
//! - MULTIAPPEND (RFC 3502): `APPEND mailbox [flags] [date] literal
//!   [flags] [date] literal …`. The command is cut into one ordinary
//!   APPEND per message (same tag, same mailbox), each for imap-codec to
//!   parse; the session appends them all in one update, so either every
//!   message lands or none does.
//! - The message as `UTF8 (~{n}…)` (UTF8=ACCEPT, RFC 6855 §4) or as a
//!   literal8 `~{n}` (BINARY, RFC 3516 §4.4): rewritten as the plain
//!   literal with the same bytes (a NUL in them, which a literal cannot
//!   carry, is still refused by imap-codec).

use super::scan::{literal_end, quoted_end};

/// An APPEND whose messages come as `UTF8 (~{n}…)` or `~{n}`, with each
/// written as the literal `{n}…`; None for any other command.
pub fn plain_literals(input: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 0;
    word(input, &mut pos)?;
    if !word(input, &mut pos)?.eq_ignore_ascii_case(b"APPEND") {
        return None;
    }
    // most APPENDs have none: find that out without copying the message
    if !input.windows(2).any(|w| w == b"~{") {
        return None;
    }
    let mut out = input[..pos].to_vec();
    let mut changed = false;
    while pos < input.len() {
        let rest = &input[pos..];
        if rest.len() > 6 && rest[..6].eq_ignore_ascii_case(b"UTF8 (") && rest[6..].starts_with(b"~{") {
            // UTF8 (~{n} CRLF data)
            let end = literal_end(input, pos + 7)?;
            out.extend_from_slice(&input[pos + 7..end]);
            if input.get(end) != Some(&b')') {
                return None;
            }
            pos = end + 1;
            changed = true;
        } else if rest.starts_with(b"~{") {
            let end = literal_end(input, pos + 1)?;
            out.extend_from_slice(&input[pos + 1..end]);
            pos = end;
            changed = true;
        } else if rest[0] == b'"' {
            let end = quoted_end(input, pos)?;
            out.extend_from_slice(&input[pos..end]);
            pos = end;
        } else if rest[0] == b'{' {
            let end = literal_end(input, pos)?;
            out.extend_from_slice(&input[pos..end]);
            pos = end;
        } else {
            out.push(rest[0]);
            pos += 1;
        }
    }
    changed.then_some(out)
}

/// One APPEND per message, or None for a command that is not an APPEND
/// of more than one message.
pub fn split(input: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut pos = 0;
    let tag = word(input, &mut pos)?;
    let command = word(input, &mut pos)?;
    if !command.eq_ignore_ascii_case(b"APPEND") {
        return None;
    }
    skip_spaces(input, &mut pos);
    let mailbox_start = pos;
    match input.get(pos)? {
        b'{' => pos = literal_end(input, pos)?,
        b'"' => pos = quoted_end(input, pos)?,
        _ => {
            word(input, &mut pos)?;
        }
    }
    let mailbox = &input[mailbox_start..pos];
    // where each message's `[flags] [date] literal` lies; copied only when
    // there are several (an ordinary APPEND is imap-codec's, uncopied)
    let mut messages: Vec<(usize, usize)> = Vec::new();
    loop {
        skip_spaces(input, &mut pos);
        if input[pos..].starts_with(b"\r\n") || pos >= input.len() {
            break;
        }
        // [flags] [date] literal
        let start = pos;
        while pos < input.len() && input[pos] != b'{' {
            match input[pos] {
                b'"' => pos = quoted_end(input, pos)?,
                b'\r' | b'\n' => return None,
                _ => pos += 1,
            }
        }
        let end = literal_end(input, pos)?;
        messages.push((start, end));
        pos = end;
    }
    if messages.len() < 2 {
        return None;
    }
    let parts = messages
        .into_iter()
        .map(|(start, end)| {
            let mut part = tag.to_vec();
            part.extend_from_slice(b" APPEND ");
            part.extend_from_slice(mailbox);
            part.push(b' ');
            part.extend_from_slice(&input[start..end]);
            part.extend_from_slice(b"\r\n");
            part
        })
        .collect();
    Some(parts)
}

fn skip_spaces(input: &[u8], pos: &mut usize) {
    while input.get(*pos) == Some(&b' ') {
        *pos += 1;
    }
}

fn word<'a>(input: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    skip_spaces(input, pos);
    let start = *pos;
    while *pos < input.len() && !matches!(input[*pos], b' ' | b'\r' | b'\n') {
        *pos += 1;
    }
    (*pos > start).then(|| &input[start..*pos])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_apart() {
        let input =
            b"a APPEND \"Saved\" (\\Seen) \"01-Dec-2026 10:00:00 +0000\" {5}\r\nhello {3+}\r\n}}} (x) {2}\r\nok\r\n";
        let parts = split(input).unwrap();
        assert_eq!(
            parts,
            [
                b"a APPEND \"Saved\" (\\Seen) \"01-Dec-2026 10:00:00 +0000\" {5}\r\nhello\r\n".to_vec(),
                b"a APPEND \"Saved\" {3+}\r\n}}}\r\n".to_vec(),
                b"a APPEND \"Saved\" (x) {2}\r\nok\r\n".to_vec(),
            ]
        );
        // a mailbox given as a literal
        let parts = split(b"b APPEND {4}\r\nWork {1}\r\nx {1}\r\ny\r\n").unwrap();
        assert_eq!(parts[1], b"b APPEND {4}\r\nWork {1}\r\ny\r\n");
        // one message: imap-codec's; broken ones: not this module's
        assert_eq!(split(b"c APPEND INBOX {1}\r\nx\r\n"), None);
        assert_eq!(split(b"d APPEND INBOX {9}\r\nx\r\n"), None);
        assert_eq!(split(b"e FETCH 1 FLAGS\r\n"), None);
    }

    #[test]
    fn utf8_and_literal8_messages_as_literals() {
        assert_eq!(
            plain_literals("a APPEND \"日本\" (\\Seen) UTF8 (~{4}\r\nab()) ~{2+}\r\n~{\r\n".as_bytes()).unwrap(),
            "a APPEND \"日本\" (\\Seen) {4}\r\nab() {2+}\r\n~{\r\n".as_bytes()
        );
        assert_eq!(plain_literals(b"b APPEND INBOX {3}\r\nabc\r\n"), None);
        assert_eq!(plain_literals(b"c APPEND INBOX UTF8 (~{3}\r\nabc\r\n"), None);
        assert_eq!(plain_literals(b"d SEARCH TEXT ~{1}\r\nx\r\n"), None);
    }
}
