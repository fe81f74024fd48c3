//! What imap-codec 1.0 does not parse in APPEND, parsed here into where
//! each message's parts lie in the command (nothing is copied):
//! - MULTIAPPEND (RFC 3502): `APPEND mailbox [flags] [date] data
//!   [flags] [date] data …`; the session appends them all in one update,
//!   so either every message lands or none does;
//! - the message as a literal8 `~{n}` (BINARY, RFC 3516 §4.4), which may
//!   hold NUL bytes (a literal may not: imap-codec refuses it), or as
//!   `UTF8 (~{n}…)` (UTF8=ACCEPT, RFC 6855 §4);
//! - CATENATE (RFC 4469): `CATENATE (TEXT {n}… URL "/INBOX;UIDVALIDITY=…/;UID=…")`,
//!   the message put together from literals and parts of messages the
//!   user already has ([`ImapUrl`] says which).
//!
//! The session hands each message's flags and date to imap-codec (as an
//! APPEND of a stand-in literal) and takes the message's bytes from here.
//! An APPEND of one ordinary literal is imap-codec's alone: [`parse`]
//! answers None without a copy, the common case.

use std::ops::Range;

use super::scan::{literal_end, quoted_end};

const NUL_IN_LITERAL: &str = "A NUL byte in a literal: send the message as a literal8 (~{n}, BINARY)";

/// An APPEND this module takes apart.
#[derive(Debug, PartialEq, Eq)]
pub struct Append {
    /// `tag APPEND mailbox`.
    pub head: Range<usize>,
    pub messages: Vec<Message>,
}

/// One message: its `[flags] [date]` and its data.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub options: Range<usize>,
    pub data: Data,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Data {
    /// A literal's or literal8's bytes.
    Bytes(Range<usize>),
    /// CATENATE's parts, in order.
    Catenate(Vec<Part>),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Part {
    /// A TEXT literal's bytes.
    Text(Range<usize>),
    /// A URL, as the client wrote it (unquoted).
    Url(Vec<u8>),
}

/// The APPEND in `input` taken apart; None for any other command and for
/// an APPEND of one plain literal (imap-codec's); an error text for a BAD.
pub fn parse(input: &[u8]) -> Option<Result<Append, &'static str>> {
    let mut pos = 0;
    word(input, &mut pos)?;
    if !word(input, &mut pos)?.eq_ignore_ascii_case(b"APPEND") {
        return None;
    }
    skip_spaces(input, &mut pos);
    match input.get(pos)? {
        b'{' => pos = literal_end(input, pos)?,
        b'"' => pos = quoted_end(input, pos)?,
        _ => {
            word(input, &mut pos)?;
        }
    }
    let head = 0..pos;
    let mut messages = Vec::new();
    let mut ours = false;
    loop {
        skip_spaces(input, &mut pos);
        if pos >= input.len() || input[pos..].starts_with(b"\r\n") {
            break;
        }
        let start = pos;
        // [flags]
        if input[pos] == b'(' {
            let close = pos + input[pos..].iter().position(|&b| b == b')')?;
            if input[pos..close]
                .iter()
                .any(|&b| matches!(b, b'\r' | b'\n' | b'{' | b'"'))
            {
                return Some(Err("Syntax error in APPEND's flags"));
            }
            pos = close + 1;
            skip_spaces(input, &mut pos);
        }
        // [date]
        if input.get(pos) == Some(&b'"') {
            pos = quoted_end(input, pos)?;
            skip_spaces(input, &mut pos);
        }
        let options = start..pos;
        let rest = &input[pos..];
        let data = if rest.starts_with(b"{") {
            let (bytes, end) = literal_data(input, pos)?;
            if input[bytes.clone()].contains(&0) {
                // RFC 3501's literal is CHAR8, which leaves NUL out
                return Some(Err(NUL_IN_LITERAL));
            }
            pos = end;
            Data::Bytes(bytes)
        } else if rest.starts_with(b"~{") {
            let (bytes, end) = literal_data(input, pos + 1)?;
            pos = end;
            ours = true;
            Data::Bytes(bytes)
        } else if starts_with_word(rest, b"UTF8 (~{") {
            let (bytes, end) = literal_data(input, pos + 7)?;
            if input.get(end) != Some(&b')') {
                return Some(Err("Syntax error in APPEND's UTF8 message"));
            }
            pos = end + 1;
            ours = true;
            Data::Bytes(bytes)
        } else if starts_with_word(rest, b"CATENATE (") {
            pos += b"CATENATE (".len();
            let parts = match catenate(input, &mut pos) {
                Ok(parts) => parts,
                Err(e) => return Some(Err(e)),
            };
            ours = true;
            Data::Catenate(parts)
        } else {
            return Some(Err("Syntax error in APPEND: a message literal or CATENATE expected"));
        };
        messages.push(Message { options, data });
    }
    if messages.is_empty() {
        return Some(Err("APPEND needs a message"));
    }
    (ours || messages.len() > 1).then_some(Ok(Append { head, messages }))
}

/// CATENATE's parts up to its closing parenthesis (RFC 4469 §5:
/// `cat-part *(SP cat-part)`, a part being `TEXT literal` or `URL astring`;
/// a TEXT as literal8 is taken too, as BINARY allows).
fn catenate(input: &[u8], pos: &mut usize) -> Result<Vec<Part>, &'static str> {
    const SYNTAX: &str = "Syntax error in CATENATE";
    let mut parts = Vec::new();
    loop {
        skip_spaces(input, pos);
        let rest = input.get(*pos..).ok_or(SYNTAX)?;
        if rest.starts_with(b")") {
            *pos += 1;
            break;
        }
        if starts_with_word(rest, b"TEXT ") {
            *pos += 5;
            let at = *pos + usize::from(input.get(*pos) == Some(&b'~'));
            let (bytes, end) = literal_data(input, at).ok_or(SYNTAX)?;
            if at == *pos && input[bytes.clone()].contains(&0) {
                return Err(NUL_IN_LITERAL);
            }
            parts.push(Part::Text(bytes));
            *pos = end;
        } else if starts_with_word(rest, b"URL ") {
            *pos += 4;
            let url = astring(input, pos).ok_or(SYNTAX)?;
            parts.push(Part::Url(url));
        } else {
            return Err(SYNTAX);
        }
    }
    if parts.is_empty() {
        return Err("CATENATE needs a part");
    }
    Ok(parts)
}

/// The data of the literal whose `{` is at `start`, and where it ends.
fn literal_data(input: &[u8], start: usize) -> Option<(Range<usize>, usize)> {
    let end = literal_end(input, start)?;
    let close = start + input[start..].iter().position(|&b| b == b'}')?;
    Some((close + 3..end, end))
}

/// An atom, a quoted string (unescaped) or a literal's bytes.
fn astring(input: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    match input.get(*pos)? {
        b'"' => {
            let end = quoted_end(input, *pos)?;
            let mut out = Vec::new();
            let mut escaped = false;
            for &b in &input[*pos + 1..end - 1] {
                if b == b'\\' && !escaped {
                    escaped = true;
                } else {
                    out.push(b);
                    escaped = false;
                }
            }
            *pos = end;
            Some(out)
        }
        b'{' => {
            let (bytes, end) = literal_data(input, *pos)?;
            *pos = end;
            Some(input[bytes].to_vec())
        }
        _ => {
            let start = *pos;
            while *pos < input.len() && !matches!(input[*pos], b' ' | b')' | b'\r' | b'\n') {
                *pos += 1;
            }
            (*pos > start).then(|| input[start..*pos].to_vec())
        }
    }
}

fn starts_with_word(rest: &[u8], word: &[u8]) -> bool {
    rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word)
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

/// A CATENATE URL (RFC 5092's IMAP URL, the forms RFC 4469 §5 has a
/// server take): `imap://[user@]host/MAILBOX[;UIDVALIDITY=n]/;UID=n`,
/// the same from `/MAILBOX` on (this server), or from `;UID=n` on (the
/// selected mailbox); then `[/;SECTION=s][/;PARTIAL=o[.n]]`. URLAUTH's
/// URLs are not taken (this server has no URLAUTH).
#[derive(Debug, PartialEq, Eq)]
pub struct ImapUrl {
    /// The user named in an `imap://` URL.
    pub user: Option<String>,
    /// None: the selected mailbox.
    pub mailbox: Option<Vec<u8>>,
    pub uid_validity: Option<u32>,
    pub uid: u32,
    /// The FETCH section (`1.2.MIME`, `HEADER`, …), upper-cased.
    pub section: Option<String>,
    pub partial: Option<(usize, Option<usize>)>,
}

impl ImapUrl {
    pub fn parse(url: &[u8]) -> Option<ImapUrl> {
        let text = std::str::from_utf8(url).ok()?;
        let mut user = None;
        let path = if text.len() > 7 && text[..7].eq_ignore_ascii_case("imap://") {
            let rest = &text[7..];
            let slash = rest.find('/')?;
            let authority = &rest[..slash];
            if let Some((userinfo, _host)) = authority.rsplit_once('@') {
                let name = userinfo.split(';').next()?;
                user = Some(String::from_utf8(percent_decode(name)?).ok()?);
            }
            &rest[slash..]
        } else {
            text
        };
        let (mailbox, rest) = if let Some(absolute) = path.strip_prefix('/') {
            // MAILBOX[;UIDVALIDITY=n]/;UID=…
            let cut = absolute.find("/;")?;
            let (name, rest) = absolute.split_at(cut);
            (Some(name), &rest[1..])
        } else {
            (None, path)
        };
        let mut uid_validity = None;
        let mailbox = match mailbox {
            Some(name) => {
                let (name, params) = name.split_at(name.find(';').unwrap_or(name.len()));
                if !params.is_empty() {
                    uid_validity = Some(param(params, "UIDVALIDITY")?.parse().ok()?);
                }
                Some(percent_decode(name)?)
            }
            None => None,
        };
        let mut fields = rest.split('/');
        let uid: u32 = param(fields.next()?, "UID")?.parse().ok()?;
        let (mut section, mut partial) = (None, None);
        for field in fields {
            if let Some(s) = param(field, "SECTION") {
                if section.is_some() || partial.is_some() {
                    return None;
                }
                let s = String::from_utf8(percent_decode(s)?).ok()?;
                section = Some(s.to_ascii_uppercase());
            } else if let Some(p) = param(field, "PARTIAL") {
                if partial.is_some() {
                    return None;
                }
                let (offset, length) = match p.split_once('.') {
                    Some((o, n)) => (o.parse().ok()?, Some(n.parse().ok()?)),
                    None => (p.parse().ok()?, None),
                };
                partial = Some((offset, length));
            } else {
                // ;URLAUTH=, ;EXPIRE=, anything else
                return None;
            }
        }
        (uid > 0).then_some(ImapUrl {
            user,
            mailbox,
            uid_validity,
            uid,
            section,
            partial,
        })
    }
}

/// The value of `;NAME=value` (the name in any case).
fn param<'a>(field: &'a str, name: &str) -> Option<&'a str> {
    let field = field.strip_prefix(';')?;
    let (key, value) = field.split_once('=')?;
    key.eq_ignore_ascii_case(name).then_some(value)
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<'a>(input: &'a [u8], r: &Range<usize>) -> &'a [u8] {
        &input[r.clone()]
    }

    #[test]
    fn messages_apart() {
        let input =
            b"a APPEND \"Saved\" (\\Seen) \"01-Dec-2026 10:00:00 +0000\" {5}\r\nhello {3+}\r\n}}} (x) {2}\r\nok\r\n";
        let append = parse(input).unwrap().unwrap();
        assert_eq!(at(input, &append.head), b"a APPEND \"Saved\"");
        let got: Vec<(&[u8], Data)> = append
            .messages
            .into_iter()
            .map(|m| (at(input, &m.options), m.data))
            .collect();
        let bytes = |b: &[u8]| {
            let start = input.windows(b.len()).position(|w| w == b).unwrap();
            Data::Bytes(start..start + b.len())
        };
        assert_eq!(
            got,
            [
                (&b"(\\Seen) \"01-Dec-2026 10:00:00 +0000\" "[..], bytes(b"hello")),
                (&b""[..], bytes(b"}}}")),
                (&b"(x) "[..], bytes(b"ok")),
            ]
        );
        // a mailbox given as a literal
        let input = b"b APPEND {4}\r\nWork {1}\r\nx {1}\r\ny\r\n";
        let append = parse(input).unwrap().unwrap();
        assert_eq!(at(input, &append.head), b"b APPEND {4}\r\nWork");
        assert_eq!(append.messages.len(), 2);
        // one plain message: imap-codec's; broken ones and others: not ours
        assert_eq!(parse(b"c APPEND INBOX {1}\r\nx\r\n"), None);
        assert_eq!(parse(b"d APPEND INBOX {9}\r\nx\r\n"), None);
        assert_eq!(parse(b"e FETCH 1 FLAGS\r\n"), None);
    }

    #[test]
    fn literal8_utf8_and_nul() {
        let input = "a APPEND \"日本\" (\\Seen) UTF8 (~{4}\r\nab()) ~{2+}\r\n~{\r\n".as_bytes();
        let append = parse(input).unwrap().unwrap();
        let data: Vec<&[u8]> = append
            .messages
            .iter()
            .map(|m| match &m.data {
                Data::Bytes(r) => at(input, r),
                Data::Catenate(_) => panic!(),
            })
            .collect();
        assert_eq!(data, [&b"ab()"[..], b"~{"]);
        // a NUL: ours to take (literal8) or to refuse with a reason
        let input = b"b APPEND INBOX ~{3}\r\na\0b\r\n";
        assert!(matches!(&parse(input).unwrap().unwrap().messages[0].data, Data::Bytes(r) if at(input, r) == b"a\0b"));
        assert_eq!(parse(b"c APPEND INBOX {3}\r\na\0b\r\n"), Some(Err(NUL_IN_LITERAL)));
        assert_eq!(
            parse(b"d APPEND INBOX UTF8 (~{3}\r\nabc\r\n"),
            Some(Err("Syntax error in APPEND's UTF8 message"))
        );
        assert_eq!(parse(b"e SEARCH TEXT ~{1}\r\nx\r\n"), None);
    }

    #[test]
    fn catenate_parts() {
        let input = b"a APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL \"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER\" TEXT {6}\r\n\r\nab\r\n URL /Drafts;UIDVALIDITY=385759045/;UID=30 TEXT ~{2}\r\n\0x)\r\n";
        let append = parse(input).unwrap().unwrap();
        assert_eq!(at(input, &append.messages[0].options), b"(\\Seen \\Draft $MDNSent) ");
        let Data::Catenate(parts) = &append.messages[0].data else {
            panic!()
        };
        let texts: Vec<Vec<u8>> = parts
            .iter()
            .map(|p| match p {
                Part::Text(r) => at(input, r).to_vec(),
                Part::Url(u) => u.clone(),
            })
            .collect();
        assert_eq!(
            texts,
            [
                b"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER".to_vec(),
                b"\r\nab\r\n".to_vec(),
                b"/Drafts;UIDVALIDITY=385759045/;UID=30".to_vec(),
                b"\0x".to_vec(),
            ]
        );
        for bad in [
            &b"b APPEND INBOX CATENATE ()\r\n"[..],
            b"c APPEND INBOX CATENATE (TEXT x)\r\n",
            b"d APPEND INBOX CATENATE (URL /INBOX/;UID=1\r\n",
            b"e APPEND INBOX CATENATE (TEXT {3}\r\na\0b)\r\n",
            b"f APPEND INBOX CATENATE (FOO bar)\r\n",
        ] {
            assert!(parse(bad).unwrap().is_err(), "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn urls() {
        let url = ImapUrl::parse(b"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.2.MIME/;PARTIAL=10.5").unwrap();
        assert_eq!(
            url,
            ImapUrl {
                user: None,
                mailbox: Some(b"Drafts".to_vec()),
                uid_validity: Some(385759045),
                uid: 20,
                section: Some("1.2.MIME".into()),
                partial: Some((10, Some(5))),
            }
        );
        let url = ImapUrl::parse(b"imap://fred@example.org/my%20folder/;UID=3").unwrap();
        assert_eq!(url.user.as_deref(), Some("fred"));
        assert_eq!(url.mailbox.as_deref(), Some(&b"my folder"[..]));
        assert_eq!(url.uid_validity, None);
        let url = ImapUrl::parse(b";UID=7/;SECTION=TEXT").unwrap();
        assert_eq!((url.mailbox, url.uid, url.section.as_deref()), (None, 7, Some("TEXT")));
        for bad in [
            &b"/INBOX"[..],
            b"/INBOX/;UID=0",
            b"/INBOX/;UID=x",
            b"/INBOX;UIDVALIDITY=x/;UID=1",
            b"/INBOX/;UID=1/;URLAUTH=anonymous:internal:abc",
            b"/INBOX/;UID=1/;PARTIAL=1/;SECTION=1",
            b"/IN%ZZBOX/;UID=1",
            b"\xff/;UID=1",
        ] {
            assert_eq!(ImapUrl::parse(bad), None, "{}", bad.escape_ascii());
        }
    }
}
