//! A message's MIME tree with byte ranges, for what FETCH returns: body
//! sections (`BODY[1.2.MIME]`), BODYSTRUCTURE and ENVELOPE.
//!
//! Written here rather than taken from mail-parser, checked against
//! mail-parser 0.11.9's `MessagePart::offset_header/offset_body/offset_end`:
//! they are byte ranges of the raw message for parts parsed in place, but
//! a message/rfc822 part that is base64 or quoted-printable encoded is
//! decoded and parsed again, so its parts' offsets point into the decoded
//! copy — bytes that are not in the mailbox, where IMAP numbers such a
//! part as one leaf (as Dovecot does); a part whose nested message fails
//! to parse becomes a Text part; and ENVELOPE and BODYSTRUCTURE are made
//! of the raw, undecoded header values and parameters in their order,
//! which mail-parser decodes away. Only the ranges of the unencoded case
//! would carry over, and they are the easy part of this module.
//!
//! The input is the message as sent to clients (CRLF line ends).

use std::ops::Range;

use crate::wire::{nstring, string};

/// Deepest nesting of multiparts and messages followed.
const MAX_DEPTH: usize = 32;
/// Most parts read from one multipart.
const MAX_PARTS: usize = 1000;

#[derive(Debug, Clone)]
pub struct Node {
    pub header: Range<usize>,
    pub body: Range<usize>,
    /// Lower-case type and subtype.
    pub media_type: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Leaf,
    Multipart(Vec<Node>),
    /// message/rfc822: the message inside.
    Message(Box<Node>),
}

/// Parses `data[range]` as a message (or a body part).
pub fn parse(data: &[u8], range: Range<usize>, default_type: (&str, &str), depth: usize) -> Node {
    let (header, body) = split_header(data, range);
    let fields = header_fields(&data[header.clone()]);
    let (media_type, subtype, mut params) = match field(&fields, "content-type").and_then(|v| parse_content_type(&v)) {
        Some(ct) => ct,
        None => (
            default_type.0.to_owned(),
            default_type.1.to_owned(),
            if default_type.0 == "text" {
                vec![("charset".to_owned(), "us-ascii".to_owned())]
            } else {
                Vec::new()
            },
        ),
    };
    // RFC 2045 §5.2: text without a charset is US-ASCII (and Dovecot says so)
    if media_type == "text" && !params.iter().any(|(k, _)| k == "charset") {
        params.insert(0, ("charset".to_owned(), "us-ascii".to_owned()));
    }
    let kind = if depth >= MAX_DEPTH {
        Kind::Leaf
    } else if media_type == "multipart" {
        let boundary = params.iter().find(|(k, _)| k == "boundary").map(|(_, v)| v.clone());
        match boundary {
            Some(b) if !b.is_empty() => {
                let child_default = if subtype == "digest" {
                    ("message", "rfc822")
                } else {
                    ("text", "plain")
                };
                let parts = split_multipart(data, body.clone(), b.as_bytes())
                    .into_iter()
                    .take(MAX_PARTS)
                    .map(|r| parse(data, r, child_default, depth + 1))
                    .collect();
                Kind::Multipart(parts)
            }
            _ => Kind::Multipart(Vec::new()),
        }
    } else if media_type == "message" && subtype == "rfc822" {
        Kind::Message(Box::new(parse(data, body.clone(), ("text", "plain"), depth + 1)))
    } else {
        Kind::Leaf
    };
    Node {
        header,
        body,
        media_type,
        subtype,
        params,
        kind,
    }
}

/// Header range (including the blank line) and body range.
fn split_header(data: &[u8], range: Range<usize>) -> (Range<usize>, Range<usize>) {
    let bytes = &data[range.clone()];
    let mut pos = 0;
    while pos < bytes.len() {
        if bytes[pos..].starts_with(b"\r\n") {
            let end = range.start + pos + 2;
            return (range.start..end, end..range.end);
        }
        if bytes[pos] == b'\n' {
            let end = range.start + pos + 1;
            return (range.start..end, end..range.end);
        }
        pos = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| pos + i + 1);
    }
    (range.clone(), range.end..range.end)
}

fn split_multipart(data: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = body.start;
    while pos < body.end {
        let line_end = data[pos..body.end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.end, |i| pos + i + 1);
        let line = &data[pos..line_end];
        if line.starts_with(b"--") && line[2..].starts_with(boundary) {
            let rest = &line[2 + boundary.len()..];
            let closing = rest.starts_with(b"--");
            let trimmed = if closing { &rest[2..] } else { rest };
            if trimmed.iter().all(|b| b.is_ascii_whitespace()) {
                if let Some(s) = start {
                    // the CRLF before the delimiter belongs to the delimiter
                    let mut end = pos;
                    if end > s && data[end - 1] == b'\n' {
                        end -= 1;
                        if end > s && data[end - 1] == b'\r' {
                            end -= 1;
                        }
                    }
                    parts.push(s..end.max(s));
                }
                if closing {
                    return parts;
                }
                start = Some(line_end);
            }
        }
        pos = line_end;
    }
    if let Some(s) = start {
        parts.push(s..body.end);
    }
    parts
}

/// Unfolded header fields: (lower-case name, raw value).
pub fn header_fields(header: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    for line in header.split_inclusive(|&b| b == b'\n') {
        let line = trim_newline(line);
        if line.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            if let Some(last) = fields.last_mut() {
                last.1.extend_from_slice(line);
            }
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(&line[..colon]).trim().to_ascii_lowercase();
            let value = trim_bytes(&line[colon + 1..]).to_vec();
            fields.push((name, value));
        }
    }
    fields
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_bytes(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end]
}

pub fn field(fields: &[(String, Vec<u8>)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// (type, subtype, parameters), lower-case names.
type ContentType = (String, String, Vec<(String, String)>);

fn parse_content_type(value: &str) -> Option<ContentType> {
    let mut parts = split_params(value);
    let first = parts.remove(0);
    let (t, s) = first.split_once('/')?;
    let (t, s) = (t.trim().to_ascii_lowercase(), s.trim().to_ascii_lowercase());
    if t.is_empty() || s.is_empty() {
        return None;
    }
    Some((t, s, params_of(&parts)))
}

fn params_of(parts: &[String]) -> Vec<(String, String)> {
    parts
        .iter()
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .map_or_else(|| v.to_owned(), |v| v.replace("\\\"", "\"").replace("\\\\", "\\"));
            Some((k.trim().to_ascii_lowercase(), v))
        })
        .collect()
}

/// Splits on `;` outside quotes.
fn split_params(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == ';' && !quoted {
            out.push(String::new());
            continue;
        }
        out.last_mut().expect("never empty").push(c);
    }
    let mut parts: Vec<String> = out
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        parts.push(String::new());
    }
    parts
}

impl Node {
    /// The part `path` of this message (1-based numbers, as in
    /// `BODY[1.2]`): the message's body is part 1 unless it is a
    /// multipart, whose parts are 1, 2, …; a message/rfc822 part's own
    /// parts are numbered as the message inside it (RFC 3501 §6.4.5), so
    /// for a message that *is* message/rfc822, `BODY[1]` is the whole
    /// embedded message and `BODY[1.1]` that message's body.
    pub fn part(&self, path: &[u32]) -> Option<&Node> {
        let (&first, rest) = path.split_first()?;
        let index = first.checked_sub(1)? as usize;
        let child = match &self.kind {
            Kind::Multipart(parts) => parts.get(index)?,
            _ if index == 0 => self,
            _ => return None,
        };
        if rest.is_empty() {
            return Some(child);
        }
        match &child.kind {
            Kind::Message(inner) => inner.part(rest),
            Kind::Multipart(_) => child.part(rest),
            // a leaf's only part is itself
            Kind::Leaf => (rest == [1]).then_some(child),
        }
    }

    /// For `BODY[n.HEADER]`/`TEXT`: the message a part number designates
    /// (the top level, or a message/rfc822 part).
    pub fn message_of(&self, path: &[u32]) -> Option<&Node> {
        if path.is_empty() {
            return Some(self);
        }
        match &self.part(path)?.kind {
            Kind::Message(inner) => Some(inner),
            _ => None,
        }
    }

    /// `BODY` (extended = false) or `BODYSTRUCTURE` (extended = true).
    pub fn write_structure(&self, data: &[u8], extended: bool, out: &mut Vec<u8>) {
        out.push(b'(');
        match &self.kind {
            Kind::Multipart(parts) if !parts.is_empty() => {
                for p in parts {
                    p.write_structure(data, extended, out);
                }
                out.push(b' ');
                string(out, self.subtype.to_ascii_uppercase().as_bytes());
                if extended {
                    out.push(b' ');
                    write_params(&self.params, out);
                    write_disposition_language_location(&header_fields(&data[self.header.clone()]), out);
                }
            }
            _ => {
                let fields = header_fields(&data[self.header.clone()]);
                let (t, s) = match &self.kind {
                    // a multipart without parts is shown as text
                    Kind::Multipart(_) => ("TEXT".to_owned(), "PLAIN".to_owned()),
                    _ => (self.media_type.to_ascii_uppercase(), self.subtype.to_ascii_uppercase()),
                };
                string(out, t.as_bytes());
                out.push(b' ');
                string(out, s.as_bytes());
                out.push(b' ');
                write_params(&self.params, out);
                out.push(b' ');
                nstring(out, field(&fields, "content-id").as_deref().map(str::as_bytes));
                out.push(b' ');
                nstring(out, field(&fields, "content-description").as_deref().map(str::as_bytes));
                out.push(b' ');
                let encoding = field(&fields, "content-transfer-encoding").unwrap_or_else(|| "7BIT".to_owned());
                string(out, encoding.trim().to_ascii_uppercase().as_bytes());
                let body = &data[self.body.clone()];
                out.extend_from_slice(format!(" {}", body.len()).as_bytes());
                match &self.kind {
                    Kind::Message(inner) => {
                        out.push(b' ');
                        inner.write_envelope(data, out);
                        out.push(b' ');
                        inner.write_structure(data, extended, out);
                        out.extend_from_slice(format!(" {}", count_lines(body)).as_bytes());
                    }
                    _ if t == "TEXT" => out.extend_from_slice(format!(" {}", count_lines(body)).as_bytes()),
                    _ => {}
                }
                if extended {
                    out.push(b' ');
                    nstring(out, field(&fields, "content-md5").as_deref().map(str::as_bytes));
                    write_disposition_language_location(&fields, out);
                }
            }
        }
        out.push(b')');
    }

    /// `ENVELOPE` of this message node.
    pub fn write_envelope(&self, data: &[u8], out: &mut Vec<u8>) {
        let fields = header_fields(&data[self.header.clone()]);
        let raw = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        out.push(b'(');
        nstring(out, raw("date").as_deref());
        out.push(b' ');
        nstring(out, raw("subject").as_deref());
        let from = raw("from");
        for (name, fallback) in [
            ("from", None),
            ("sender", from.as_ref()),
            ("reply-to", from.as_ref()),
            ("to", None),
            ("cc", None),
            ("bcc", None),
        ] {
            out.push(b' ');
            let value = raw(name).filter(|v| !v.is_empty()).or_else(|| fallback.cloned());
            write_addresses(value.as_deref(), out);
        }
        out.push(b' ');
        nstring(out, raw("in-reply-to").as_deref());
        out.push(b' ');
        nstring(out, raw("message-id").as_deref());
        out.push(b')');
    }
}

/// A body's size in text lines: its line ends, as Dovecot counts (a last
/// line without one, before a boundary, is not counted).
fn count_lines(body: &[u8]) -> usize {
    body.iter().filter(|&&b| b == b'\n').count()
}

fn write_params(params: &[(String, String)], out: &mut Vec<u8>) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.to_ascii_uppercase().as_bytes());
        out.push(b' ');
        string(out, v.as_bytes());
    }
    out.push(b')');
}

/// The extension data every BODYSTRUCTURE part ends with (after a space).
fn write_disposition_language_location(fields: &[(String, Vec<u8>)], out: &mut Vec<u8>) {
    out.push(b' ');
    write_disposition(fields, out);
    for name in ["content-language", "content-location"] {
        out.push(b' ');
        nstring(out, field(fields, name).as_deref().map(str::as_bytes));
    }
}

fn write_disposition(fields: &[(String, Vec<u8>)], out: &mut Vec<u8>) {
    let Some(value) = field(fields, "content-disposition") else {
        out.extend_from_slice(b"NIL");
        return;
    };
    let parts = split_params(&value);
    out.push(b'(');
    string(out, parts[0].to_ascii_uppercase().as_bytes());
    out.push(b' ');
    write_params(&params_of(&parts[1..]), out);
    out.push(b')');
}

/// An address list as ENVELOPE wants it: `((name adl mailbox host) …)`.
fn write_addresses(value: Option<&[u8]>, out: &mut Vec<u8>) {
    let addresses = value.map(crate::address::parse_list).unwrap_or_default();
    if addresses.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in addresses {
        out.push(b'(');
        for (i, value) in [a.name, a.route, a.mailbox, a.host].iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            nstring(out, value.as_deref());
        }
        out.push(b')');
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &[u8] = b"From: \"A B\" <a@example.com>\r\nTo: c@example.org, Friends: d@x.org, e@y.org;\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=\"xx\"\r\n\r\npreamble\r\n--xx\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--xx\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--xx--\r\n";

    #[test]
    fn parts_and_sections() {
        let root = parse(MULTI, 0..MULTI.len(), ("text", "plain"), 0);
        let p1 = root.part(&[1]).unwrap();
        assert_eq!(&MULTI[p1.body.clone()], b"hello");
        let p2 = root.part(&[2]).unwrap();
        let inner = root.message_of(&[2]).unwrap();
        assert_eq!(&MULTI[inner.body.clone()], b"inner body");
        assert_eq!(&MULTI[p2.header.clone()], b"Content-Type: message/rfc822\r\n\r\n");
        assert_eq!(&MULTI[root.part(&[2, 1]).unwrap().body.clone()], b"inner body");
        assert!(root.part(&[3]).is_none());
        let mut out = Vec::new();
        root.write_structure(MULTI, true, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 5 0 NIL NIL NIL NIL)(\"MESSAGE\" \"RFC822\""), "{s}");
        assert!(s.ends_with(" \"MIXED\" (\"BOUNDARY\" \"xx\") NIL NIL NIL)"), "{s}");
        let mut env = Vec::new();
        root.write_envelope(MULTI, &mut env);
        let env = String::from_utf8(env).unwrap();
        assert_eq!(
            env,
            "(NIL \"hi\" ((\"A B\" NIL \"a\" \"example.com\")) ((\"A B\" NIL \"a\" \"example.com\")) ((\"A B\" NIL \"a\" \"example.com\")) ((NIL NIL \"c\" \"example.org\")(NIL NIL \"Friends\" NIL)(NIL NIL \"d\" \"x.org\")(NIL NIL \"e\" \"y.org\")(NIL NIL NIL NIL)) NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn single_part_message() {
        let m = b"Subject: x\r\n\r\nbody\r\n";
        let root = parse(m, 0..m.len(), ("text", "plain"), 0);
        assert_eq!(&m[root.part(&[1]).unwrap().body.clone()], b"body\r\n");
        let mut out = Vec::new();
        root.write_structure(m, false, &mut out);
        assert_eq!(
            out,
            b"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 6 1)"
        );
    }
}
