//! RFC 5322 address lists as ENVELOPE shows them: `(name adl mailbox
//! host)` per address, group start `(NIL NIL name NIL)` and end
//! `(NIL NIL NIL NIL)` markers (RFC 3501 §7.4.2), values raw (encoded
//! words stay encoded, as in every IMAP server).
//!
//! Hand-written: mail-parser decodes names and drops routes, comments and
//! empty groups, which ENVELOPE keeps; the rules below are Dovecot's
//! (`message-address.c`), checked against Dovecot 2.3 on the same headers
//! in `tests/conformance.rs`:
//! - `user@host (Real Name)`: a comment is the name when there is no
//!   display name;
//! - `<@a,@b:user@host>`: the route is the adl;
//! - a group holding only comments gives its two markers and nothing more;
//! - a mailbox without `@` gets the host `MISSING_DOMAIN`, an address
//!   without a mailbox `MISSING_MAILBOX`.

/// One entry of an ENVELOPE address list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub name: Option<Vec<u8>>,
    pub route: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub host: Option<Vec<u8>>,
}

impl Address {
    fn group_start(name: Vec<u8>) -> Address {
        Address {
            mailbox: Some(name),
            ..Address::default()
        }
    }

    fn group_end() -> Address {
        Address::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An atom or dot-atom (`john.doe`, `=?utf-8?b?…?=`), or a domain
    /// literal with its brackets.
    Atom(Vec<u8>),
    /// A quoted string's content, unescaped.
    Quoted(Vec<u8>),
    Special(u8),
}

/// Tokens and, per token, the comments just before it (the last entry
/// holds the comments after the last token).
fn tokenize(value: &[u8]) -> (Vec<Token>, Vec<Vec<Vec<u8>>>) {
    let mut tokens = Vec::new();
    let mut comments = vec![Vec::new()];
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                let (text, end) = comment(value, i);
                comments.last_mut().expect("never empty").push(text);
                i = end;
            }
            b'"' => {
                let mut text = Vec::new();
                i += 1;
                while i < value.len() && value[i] != b'"' {
                    if value[i] == b'\\' && i + 1 < value.len() {
                        i += 1;
                    }
                    if !matches!(value[i], b'\r' | b'\n') {
                        text.push(value[i]);
                    }
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Quoted(text));
                comments.push(Vec::new());
            }
            b'[' => {
                let end = value[i..]
                    .iter()
                    .position(|&c| c == b']')
                    .map_or(value.len(), |p| i + p + 1);
                tokens.push(Token::Atom(value[i..end].to_vec()));
                comments.push(Vec::new());
                i = end;
            }
            b'<' | b'>' | b'@' | b':' | b';' | b',' => {
                tokens.push(Token::Special(b));
                comments.push(Vec::new());
                i += 1;
            }
            _ if is_atom_byte(b) => {
                let end = value[i..]
                    .iter()
                    .position(|&c| !is_atom_byte(c))
                    .map_or(value.len(), |p| i + p);
                tokens.push(Token::Atom(value[i..end].to_vec()));
                comments.push(Vec::new());
                i = end;
            }
            // a stray `)`, `]` or `\`: not part of any address
            _ => i += 1,
        }
    }
    (tokens, comments)
}

/// atext, `.` (dot-atoms and obsolete phrases) and 8-bit bytes (raw
/// non-ASCII names, which real mail has).
fn is_atom_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b) || b >= 0x80
}

/// A comment starting at `value[start] == '('`: its text (nested
/// comments kept with their parentheses) and where it ends.
fn comment(value: &[u8], start: usize) -> (Vec<u8>, usize) {
    let mut depth = 0usize;
    let mut text = Vec::new();
    let mut i = start;
    while i < value.len() {
        let b = value[i];
        match b {
            b'\\' if i + 1 < value.len() => {
                text.push(value[i + 1]);
                i += 2;
                continue;
            }
            b'(' => {
                depth += 1;
                if depth > 1 {
                    text.push(b);
                }
            }
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return (text, i + 1);
                }
                text.push(b);
            }
            b'\r' | b'\n' => {}
            _ => text.push(b),
        }
        i += 1;
    }
    (text, value.len())
}

/// The entries of an address header's value.
pub fn parse_list(value: &[u8]) -> Vec<Address> {
    let (tokens, comments) = tokenize(value);
    let mut parser = Parser {
        tokens: &tokens,
        comments: &comments,
        pos: 0,
    };
    let mut out = Vec::new();
    let mut in_group = false;
    while parser.pos < tokens.len() {
        match parser.peek() {
            Some(Token::Special(b',')) => {
                parser.pos += 1;
                continue;
            }
            Some(Token::Special(b';')) => {
                parser.pos += 1;
                if in_group {
                    out.push(Address::group_end());
                    in_group = false;
                }
                continue;
            }
            _ => {}
        }
        let start = parser.pos;
        let phrase = parser.phrase();
        match parser.peek() {
            Some(Token::Special(b':')) if !in_group => {
                parser.pos += 1;
                out.push(Address::group_start(phrase.unwrap_or_default()));
                in_group = true;
            }
            Some(Token::Special(b'<')) => {
                parser.pos += 1;
                out.push(parser.angle_addr(phrase));
            }
            _ => {
                // an addr-spec: read again from its start, as a local part
                parser.pos = start;
                out.extend(parser.addr_spec());
            }
        }
    }
    if in_group {
        out.push(Address::group_end());
    }
    out
}

struct Parser<'t> {
    tokens: &'t [Token],
    comments: &'t [Vec<Vec<u8>>],
    pos: usize,
}

impl<'t> Parser<'t> {
    fn peek(&self) -> Option<&'t Token> {
        self.tokens.get(self.pos)
    }

    /// Words up to the next special, joined by single spaces; None if
    /// there are none.
    fn phrase(&mut self) -> Option<Vec<u8>> {
        let mut words: Vec<&[u8]> = Vec::new();
        while let Some(Token::Atom(w) | Token::Quoted(w)) = self.peek() {
            words.push(w);
            self.pos += 1;
        }
        (!words.is_empty()).then(|| words.join(&b' '))
    }

    /// Words joined without spaces (a local part or a domain).
    fn joined(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(Token::Atom(w) | Token::Quoted(w)) = self.peek() {
            out.extend_from_slice(w);
            self.pos += 1;
        }
        out
    }

    /// After `<`: `[@route,@route:]local@domain>`.
    fn angle_addr(&mut self, name: Option<Vec<u8>>) -> Address {
        let mut route = None;
        if matches!(self.peek(), Some(Token::Special(b'@'))) {
            let mut text = Vec::new();
            while let Some(token) = self.peek() {
                match token {
                    Token::Special(b':') => {
                        self.pos += 1;
                        break;
                    }
                    Token::Special(b'>' | b';') => break,
                    Token::Special(c) => text.push(*c),
                    Token::Atom(w) | Token::Quoted(w) => text.extend_from_slice(w),
                }
                self.pos += 1;
            }
            route = Some(text);
        }
        let mut address = self.local_and_domain();
        // anything else up to the closing bracket is not an address
        while let Some(token) = self.peek() {
            self.pos += 1;
            if *token == Token::Special(b'>') {
                break;
            }
        }
        address.name = name;
        address.route = route;
        address
    }

    /// `local@domain` without brackets; a comment inside it names it.
    /// None for a token that starts no address (a stray `>`, a `:` in a
    /// group), which is skipped.
    fn addr_spec(&mut self) -> Option<Address> {
        let start = self.pos;
        if !matches!(
            self.peek(),
            Some(Token::Atom(_) | Token::Quoted(_) | Token::Special(b'@'))
        ) {
            self.pos += 1;
            return None;
        }
        let mut address = self.local_and_domain();
        let comment = self.comments[start + 1..=self.pos]
            .iter()
            .flatten()
            .next_back()
            .filter(|c| !c.is_empty());
        address.name = comment.cloned();
        Some(address)
    }

    fn local_and_domain(&mut self) -> Address {
        let local = self.joined();
        let host = if matches!(self.peek(), Some(Token::Special(b'@'))) {
            self.pos += 1;
            let domain = self.joined();
            if domain.is_empty() {
                b"MISSING_DOMAIN".to_vec()
            } else {
                domain
            }
        } else {
            b"MISSING_DOMAIN".to_vec()
        };
        Address {
            mailbox: Some(if local.is_empty() {
                b"MISSING_MAILBOX".to_vec()
            } else {
                local
            }),
            host: Some(host),
            ..Address::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(name: Option<&str>, route: Option<&str>, mailbox: &str, host: &str) -> Address {
        let b = |s: &str| s.as_bytes().to_vec();
        Address {
            name: name.map(b),
            route: route.map(b),
            mailbox: Some(b(mailbox)),
            host: Some(b(host)),
        }
    }

    fn group(name: &str) -> Address {
        Address::group_start(name.as_bytes().to_vec())
    }

    #[test]
    fn the_forms_of_rfc_5322() {
        assert_eq!(
            parse_list(b"user@domain (Real Name)"),
            vec![addr(Some("Real Name"), None, "user", "domain")]
        );
        assert_eq!(
            parse_list(b"\"Quoted, Name\" <q@x.org>, <@r1,@r2:r@y.org>"),
            vec![
                addr(Some("Quoted, Name"), None, "q", "x.org"),
                addr(None, Some("@r1,@r2"), "r", "y.org"),
            ]
        );
        assert_eq!(
            parse_list(b"group2: (foo) ;, g: a@b.c, d@e.f;"),
            vec![
                group("group2"),
                Address::group_end(),
                group("g"),
                addr(None, None, "a", "b.c"),
                addr(None, None, "d", "e.f"),
                Address::group_end(),
            ]
        );
        assert_eq!(
            parse_list(b"John Q. Public <jqp@[1.2.3.4]>"),
            vec![addr(Some("John Q. Public"), None, "jqp", "[1.2.3.4]")]
        );
    }

    #[test]
    fn hostile_values_give_entries_not_panics() {
        for value in [
            &b"<"[..],
            b">",
            b"((((",
            b"\"unterminated",
            b"a@",
            b"@b",
            b"::;;,,<<>>",
            b"x: y: z;",
            b"\\",
        ] {
            let list = parse_list(value);
            assert!(list.len() <= value.len() + 1, "{value:?}: {list:?}");
        }
    }
}
