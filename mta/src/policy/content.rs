//! Header and body rules: Postfix's `header_checks`, `mime_header_checks`,
//! `nested_header_checks` and `body_checks`, asked at the end of DATA as
//! Postfix's cleanup asks them while the message streams in.
//!
//! The message is walked as Postfix's MIME reader walks it: each logical
//! header (a field with its continuation lines, newlines kept) of the
//! message goes to `header_checks`, its `Content-*` fields and every
//! header of a MIME part to `mime_header_checks`, the header of an
//! attached message (message/rfc822) to `nested_header_checks`; every
//! other line, boundaries included, to `body_checks` without its line end,
//! up to the first 50 KB of each part (`body_checks_size_limit`). Matching
//! is on the raw bytes, as Postfix's: a rule in Japanese does not see an
//! encoded Subject.
//!
//! Beyond Postfix, `content_checks_decoded = true` makes the tables see
//! text: each header as `Name: value` with the value RFC 2047-decoded
//! (any charset, the filter library's decoder) and NFKC-normalised, and
//! instead of raw body lines each line of each text part, decoded from
//! its transfer encoding and charset (HTML as its text), NFKC-normalised.
//! So `/^Subject:.*未承諾広告/ REJECT` matches the Subject whether it came
//! in ISO-2022-JP, Shift_JIS, EUC-JP or UTF-8, base64 or
//! quoted-printable. A decoded body line is no longer a line of the
//! message: IGNORE, REPLACE and PREPEND on one are logged, not applied.
//!
//! Actions: REJECT (550 5.7.1 "message content rejected"; 451 when its
//! text starts with a 4.x.x code), DISCARD, HOLD, WARN, IGNORE (the line
//! is removed), REPLACE, PREPEND (a line before it), REDIRECT, OK and
//! DUNNO (nothing); the first refusal or discard ends the walk. What is
//! not an action here (DEFER, `4NN`, and what we have not: FILTER, BCC)
//! is logged and skipped, as Postfix warns and skips it.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use unicode_normalization::UnicodeNormalization;

use super::action::Action;
use super::table::{Lookups, Table};
use super::{Facts, Point, Stage, Verdict};

/// Postfix's `body_checks_size_limit`: what of each part is looked at.
const BODY_CHECKS_SIZE_LIMIT: usize = 51_200;

#[derive(Default)]
pub struct ContentChecks {
    pub header: Vec<Arc<Table>>,
    pub mime_header: Vec<Arc<Table>>,
    pub nested_header: Vec<Arc<Table>>,
    pub body: Vec<Arc<Table>>,
    /// The tables see decoded text, not raw bytes.
    pub decoded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Header,
    MimeHeader,
    NestedHeader,
    Body,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Header => "header",
            Class::MimeHeader => "mime_header",
            Class::NestedHeader => "nested_header",
            Class::Body => "body",
        }
    }
}

/// Where the walk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entity {
    /// The message's own header.
    Message,
    /// A MIME part's header.
    Part,
    /// The header of a message attached as message/rfc822.
    Nested,
}

impl ContentChecks {
    pub fn is_empty(&self) -> bool {
        self.header.is_empty() && self.mime_header.is_empty() && self.nested_header.is_empty() && self.body.is_empty()
    }

    fn tables(&self, class: Class) -> &[Arc<Table>] {
        match class {
            Class::Header => &self.header,
            Class::MimeHeader => &self.mime_header,
            Class::NestedHeader => &self.nested_header,
            Class::Body => &self.body,
        }
    }

    /// The verdict on `message`.
    pub fn verdict(&self, message: &[u8], facts: &Facts) -> Verdict {
        // each table read once per message (mime and nested header checks
        // are the header tables unless configured apart)
        let mut taken: Vec<(*const Table, Lookups)> = Vec::new();
        let lookups: Vec<Vec<(&str, Lookups)>> = [Class::Header, Class::MimeHeader, Class::NestedHeader, Class::Body]
            .iter()
            .map(|&c| {
                self.tables(c)
                    .iter()
                    .map(|t| {
                        let at = Arc::as_ptr(t);
                        let l = match taken.iter().find(|(p, _)| *p == at) {
                            Some((_, l)) => l.clone(),
                            None => {
                                let l = t.lookups();
                                taken.push((at, l.clone()));
                                l
                            }
                        };
                        (t.name(), l)
                    })
                    .collect()
            })
            .collect();
        let mut walk = Walk {
            out: Vec::with_capacity(message.len()),
            changed: false,
            effects: Vec::new(),
        };
        let mut stopped = false;
        walk_message(message, |class, bytes| {
            stopped = match class {
                Some(Class::Body) if self.decoded => {
                    walk.keep(bytes);
                    false
                }
                Some(class) => {
                    let key = if self.decoded {
                        Cow::Owned(decoded_header(trim_line_end(bytes)))
                    } else {
                        Cow::Borrowed(trim_line_end(bytes))
                    };
                    walk.line(class, bytes, &key, &lookups, facts)
                }
                None => {
                    walk.keep(bytes);
                    false
                }
            };
            stopped
        });
        if self.decoded && !stopped && !lookups[Class::Body as usize].is_empty() {
            let decoded = bsfilter::decode::DecodedMessage::parse(message);
            let texts: Vec<&str> = decoded.texts.iter().map(|t| t.text.as_str()).collect();
            let text: String = texts.join("\n").nfkc().collect();
            let before = walk.out.len();
            for line in text.lines() {
                if walk.line(Class::Body, b"", line.as_bytes(), &lookups, facts) {
                    break;
                }
            }
            // a decoded line is not the message's: what a rule wrote for
            // it is not kept
            if walk.out.len() != before {
                tracing::info!(
                    stage = "content_checks",
                    "IGNORE, REPLACE and PREPEND are not applied to decoded body lines"
                );
                walk.out.truncate(before);
            }
        }
        walk.verdict()
    }
}

/// Hands every piece of `message` to `visit` in order: each line or
/// logical header with the class of tables it goes to, and with `None`
/// what no table sees (a header's empty line, body past the size limit).
/// `visit` returns whether to stop.
fn walk_message(message: &[u8], mut visit: impl FnMut(Option<Class>, &[u8]) -> bool) {
    let mut lines = Lines { rest: message };
    let mut boundaries: Vec<Vec<u8>> = Vec::new();
    let mut entity = Some(Entity::Message);
    while let Some(entity_now) = entity.take() {
        // the header: logical lines until the empty one
        let mut content_type = Vec::new();
        while let Some(field) = lines.logical_header() {
            let class = match entity_now {
                _ if is_field(field, b"content-") => Class::MimeHeader,
                Entity::Message => Class::Header,
                Entity::Part => Class::MimeHeader,
                Entity::Nested => Class::NestedHeader,
            };
            if is_field(field, b"content-type:") {
                content_type = field.to_vec();
            }
            if visit(Some(class), field) {
                return;
            }
        }
        if let Some(blank) = lines.blank()
            && visit(None, blank)
        {
            return;
        }
        let (boundary, nested) = parse_content_type(&content_type);
        if let Some(b) = boundary {
            boundaries.push(b);
        }
        if nested {
            entity = Some(Entity::Nested);
            continue;
        }
        // the body, to the next boundary of an enclosing multipart
        let mut body_seen = 0usize;
        while let Some(line) = lines.next() {
            if let Some((i, end)) = boundary_of(trim_line_end(line), &boundaries) {
                boundaries.truncate(i + 1);
                if end {
                    boundaries.pop();
                }
                if visit(Some(Class::Body), line) {
                    return;
                }
                if !end {
                    entity = Some(Entity::Part);
                    break;
                }
                body_seen = 0;
                continue;
            }
            body_seen += line.len();
            let class = (body_seen <= BODY_CHECKS_SIZE_LIMIT).then_some(Class::Body);
            if visit(class, line) {
                return;
            }
        }
    }
    if !lines.rest.is_empty() {
        visit(None, lines.rest);
    }
}

/// The message as rebuilt, and what the rules said.
struct Walk {
    out: Vec<u8>,
    changed: bool,
    effects: Vec<Verdict>,
}

impl Walk {
    fn keep(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Asks the tables of `class` about `key` (`line` without its line
    /// end, or what decoding made of it) and acts on `line`; whether the
    /// walk ends.
    fn line(&mut self, class: Class, line: &[u8], key: &[u8], lookups: &[Vec<(&str, Lookups)>], facts: &Facts) -> bool {
        let found = lookups[class as usize]
            .iter()
            .find_map(|(name, l)| l.get(key).map(|v| (name, v)));
        let Some((table, value)) = found else {
            self.keep(line);
            return false;
        };
        let shown = String::from_utf8_lossy(&key[..key.len().min(200)]).replace(['\r', '\n'], " ");
        let log = |action: &str, text: &str| {
            // one event name for every action: the session logs the
            // refusal or the discard itself (`event="reject"`), once
            tracing::info!(
                event = "content_check",
                action,
                stage = "content_checks",
                class = class.name(),
                table = %table,
                client = ?facts.client_addr,
                from = ?facts.sender,
                line = %shown,
                text = %text,
                "content rule"
            );
        };
        let eol = &line[trim_line_end(line).len()..];
        let eol = if eol.is_empty() { b"\n".as_slice() } else { eol };
        match Action::parse_content(&value) {
            Action::Ok | Action::Dunno => self.keep(line),
            Action::Refuse { code, status, text } => {
                log("reject", text.as_deref().unwrap_or(""));
                let reply = Action::reply(code, status, text.as_deref(), "", "message content rejected");
                self.effects.push(Verdict::Reject(reply));
                return true;
            }
            Action::Discard(text) => {
                log("discard", text.as_deref().unwrap_or(""));
                self.effects.push(Verdict::Discard);
                return true;
            }
            Action::Hold(text) => {
                log("hold", text.as_deref().unwrap_or(""));
                self.effects.push(Verdict::Hold);
                self.keep(line);
            }
            Action::Warn(text) => {
                log("warn", text.as_deref().unwrap_or(""));
                self.keep(line);
            }
            Action::Ignore => {
                log("ignore", "");
                self.changed = true;
            }
            Action::Replace(text) => {
                log("replace", &text);
                self.out.extend_from_slice(text.as_bytes());
                self.out.extend_from_slice(eol);
                self.changed = true;
            }
            Action::Prepend(text) => {
                log("prepend", &text);
                self.out.extend_from_slice(text.as_bytes());
                self.out.extend_from_slice(eol);
                self.keep(line);
                self.changed = true;
            }
            Action::Redirect(to) => {
                log("redirect", &to);
                self.effects.push(Verdict::Redirect(to));
                self.keep(line);
            }
            Action::DeferIfReject(_) | Action::DeferIfPermit(_) | Action::Unknown(_) => {
                let what = value.trim();
                tracing::warn!(table = %table, action = %what, "unsupported content action skipped");
                self.keep(line);
            }
        }
        false
    }

    fn verdict(mut self) -> Verdict {
        if self.changed
            && !self
                .effects
                .iter()
                .any(|e| matches!(e, Verdict::Reject(_) | Verdict::Discard))
        {
            self.effects.push(Verdict::Rewrite(self.out));
        }
        Verdict::Several(self.effects)
    }
}

/// The message's lines.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', self.rest).map_or(self.rest.len(), |i| i + 1);
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(line)
    }

    fn peek_starts_continuation(&self) -> bool {
        matches!(self.rest.first(), Some(b' ' | b'\t'))
    }

    /// The next header field with its continuation lines, or None at the
    /// header's end (the empty line is left to [`Lines::blank`]) or at a
    /// line that is no header field (it is left for the body).
    fn logical_header(&mut self) -> Option<&'a [u8]> {
        let start = self.rest;
        let first = {
            let mut probe = Lines { rest: self.rest };
            probe.next()?
        };
        let bare = trim_line_end(first);
        let colon = bare.iter().position(|&b| b == b':')?;
        if colon == 0 || !bare[..colon].iter().all(|&b| b.is_ascii_graphic()) {
            return None;
        }
        self.next();
        let mut len = first.len();
        while self.peek_starts_continuation() {
            len += self.next().map_or(0, <[u8]>::len);
        }
        Some(&start[..len])
    }

    /// The empty line ending a header, if that is what comes.
    fn blank(&mut self) -> Option<&'a [u8]> {
        let mut probe = Lines { rest: self.rest };
        let line = probe.next()?;
        if trim_line_end(line).is_empty() {
            self.rest = probe.rest;
            Some(line)
        } else {
            None
        }
    }
}

/// A header field as decoded mode shows it: `Name: value`, the value
/// RFC 2047-decoded and NFKC-normalised.
fn decoded_header(field: &[u8]) -> Vec<u8> {
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return field.to_vec();
    };
    let value: String = bsfilter::charset::decode_header(&field[colon + 1..]).nfkc().collect();
    let mut out = field[..colon + 1].to_vec();
    out.push(b' ');
    out.extend_from_slice(value.trim().as_bytes());
    out
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Whether `field` starts with `name` (lower case, with its colon or a
/// prefix such as `content-`).
fn is_field(field: &[u8], name: &[u8]) -> bool {
    field.len() >= name.len() && field[..name.len()].eq_ignore_ascii_case(name)
}

/// A Content-Type field's boundary (for multipart) and whether the body is
/// an attached message.
fn parse_content_type(field: &[u8]) -> (Option<Vec<u8>>, bool) {
    if field.is_empty() {
        return (None, false);
    }
    let value = &field["content-type:".len()..];
    let value = String::from_utf8_lossy(value).replace(['\r', '\n'], " ");
    let lower = value.trim_start().to_ascii_lowercase();
    if lower.starts_with("message/rfc822") {
        return (None, true);
    }
    if !lower.starts_with("multipart/") {
        return (None, false);
    }
    let Some(at) = lower.find("boundary=") else {
        return (None, false);
    };
    let raw = value.trim_start()[at + "boundary=".len()..].trim_start();
    let boundary = match raw.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or(""),
        None => raw.split([';', ' ', '\t']).next().unwrap_or(""),
    };
    ((!boundary.is_empty()).then(|| boundary.as_bytes().to_vec()), false)
}

/// Which open boundary `line` is (its index), and whether it is the
/// closing one.
fn boundary_of(line: &[u8], boundaries: &[Vec<u8>]) -> Option<(usize, bool)> {
    let rest = line.strip_prefix(b"--")?;
    boundaries.iter().enumerate().rev().find_map(|(i, b)| {
        let after = rest.strip_prefix(b.as_slice())?;
        let after = after.trim_ascii_end();
        match after {
            b"" => Some((i, false)),
            b"--" => Some((i, true)),
            _ => None,
        }
    })
}

impl Stage for ContentChecks {
    fn name(&self) -> &'static str {
        "content_checks"
    }

    fn check<'a>(&'a self, point: Point, facts: &'a Facts) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            match (point, &facts.message) {
                (Point::Data, Some(message)) => self.verdict(message, facts),
                _ => Verdict::Continue,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dir: &std::path::Path, name: &str, text: &str) -> Arc<Table> {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Arc::new(Table::open(&format!("regexp:{}", path.display())).unwrap())
    }

    const MESSAGE: &[u8] = b"Received: from a\r\n\tby b\r\nSubject: Burn fat,\r\n\tbuild muscle\r\nContent-Type: multipart/mixed;\r\n boundary=\"XX\"\r\nX-Junk: 1\r\n\r\n\
        preamble\r\n--XX\r\nContent-Type: text/plain\r\nX-Part: inner\r\n\r\nhello body\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\n\
        Subject: nested one\r\nX-Nested: yes\r\n\r\nnested body\r\n--XX--\r\nepilogue\r\n";

    #[test]
    fn each_line_goes_to_its_class() {
        let mut seen: Vec<(Option<Class>, String)> = Vec::new();
        let mut whole = Vec::new();
        walk_message(MESSAGE, |class, bytes| {
            whole.extend_from_slice(bytes);
            seen.push((class, String::from_utf8_lossy(trim_line_end(bytes)).into_owned()));
            false
        });
        assert_eq!(whole, MESSAGE, "every byte visited once, in order");
        let of = |class: Class| -> Vec<&str> {
            seen.iter()
                .filter(|(c, _)| *c == Some(class))
                .map(|(_, l)| l.as_str())
                .collect()
        };
        assert_eq!(
            of(Class::Header),
            [
                "Received: from a\r\n\tby b",
                "Subject: Burn fat,\r\n\tbuild muscle",
                "X-Junk: 1"
            ]
        );
        assert_eq!(
            of(Class::MimeHeader),
            [
                "Content-Type: multipart/mixed;\r\n boundary=\"XX\"",
                "Content-Type: text/plain",
                "X-Part: inner",
                "Content-Type: message/rfc822"
            ]
        );
        assert_eq!(of(Class::NestedHeader), ["Subject: nested one", "X-Nested: yes"]);
        assert_eq!(
            of(Class::Body),
            [
                "preamble",
                "--XX",
                "hello body",
                "--XX",
                "nested body",
                "--XX--",
                "epilogue"
            ]
        );
        // past the size limit a part's lines are not looked at
        let mut big = b"Subject: x\n\n".to_vec();
        for _ in 0..2000 {
            big.extend_from_slice(b"0123456789012345678901234567890123456789\n");
        }
        let mut checked = 0;
        walk_message(&big, |class, _| {
            checked += usize::from(class == Some(Class::Body));
            false
        });
        assert_eq!(checked, BODY_CHECKS_SIZE_LIMIT / 41);
    }

    #[test]
    fn actions_change_the_message_or_decide() {
        let dir = tempfile::tempdir().unwrap();
        let checks = ContentChecks {
            header: vec![table(
                dir.path(),
                "h",
                "/^X-Junk:/ IGNORE\n/^Received:/ REPLACE Received: hidden\n/^Subject:.*fat.*muscle/ HOLD\n",
            )],
            body: vec![table(dir.path(), "b", "/^nested body$/ REJECT 5.7.0 no nesting\n")],
            ..Default::default()
        };
        let v = checks.verdict(MESSAGE, &Facts::default());
        assert_eq!(
            v,
            Verdict::Several(vec![
                Verdict::Hold,
                Verdict::Reject(crate::smtp::reply::Reply::new(550, [5, 7, 0], "no nesting"))
            ])
        );
        let checks = ContentChecks {
            header: vec![table(
                dir.path(),
                "h2",
                "/^X-Junk:/ IGNORE\n/^Received:/ REPLACE Received: hidden\n",
            )],
            ..Default::default()
        };
        let Verdict::Several(v) = checks.verdict(MESSAGE, &Facts::default()) else {
            panic!()
        };
        let [Verdict::Rewrite(out)] = &v[..] else {
            panic!("{v:?}")
        };
        let expected = String::from_utf8_lossy(MESSAGE)
            .replace("Received: from a\r\n\tby b\r\n", "Received: hidden\r\n")
            .replace("X-Junk: 1\r\n", "");
        assert_eq!(String::from_utf8_lossy(out), expected);
        // nothing matched: no rewrite
        let checks = ContentChecks {
            body: vec![table(dir.path(), "b2", "/^never$/ REJECT\n")],
            ..Default::default()
        };
        assert_eq!(checks.verdict(MESSAGE, &Facts::default()), Verdict::Several(vec![]));
        let reject = ContentChecks {
            header: vec![table(dir.path(), "h3", "/^Subject:.*fat/ REJECT\n")],
            ..Default::default()
        };
        assert_eq!(
            reject.verdict(MESSAGE, &Facts::default()),
            Verdict::Several(vec![Verdict::Reject(crate::smtp::reply::Reply::new(
                550,
                [5, 7, 1],
                "message content rejected"
            ))])
        );
    }

    fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                out.push(if i <= chunk.len() {
                    ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        out
    }

    fn quoted(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("={b:02X}")).collect()
    }

    /// A Japanese advertisement, its Subject and its text in `charset`,
    /// encoded as `header` (B or Q) and `body` (base64, quoted-printable
    /// or as it is).
    fn japanese(charset: &'static encoding_rs::Encoding, header: char, body: &str) -> Vec<u8> {
        let (subject, _, _) = charset.encode("未承諾広告※お知らせ");
        let (text, _, _) = charset.encode("これは未承諾広告です。\n");
        let name = charset.name();
        let encoded_subject = match header {
            'B' => base64(&subject),
            _ => quoted(&subject),
        };
        let mut m = format!(
            "Subject: =?{name}?{header}?{encoded_subject}?=\nMIME-Version: 1.0\nContent-Type: text/plain; charset={name}\n\
             Content-Transfer-Encoding: {}\n\n",
            if body == "raw" { "8bit" } else { body }
        )
        .into_bytes();
        match body {
            "base64" => m.extend_from_slice(base64(&text).as_bytes()),
            "quoted-printable" => m.extend_from_slice(quoted(&text).as_bytes()),
            _ => m.extend_from_slice(&text),
        }
        m.push(b'\n');
        m
    }

    #[test]
    fn decoded_mode_sees_japanese_in_any_charset_and_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let header = table(dir.path(), "h", "/^Subject:.*未承諾広告/ REJECT header\n");
        let body = table(dir.path(), "b", "/未承諾広告/ REJECT body\n");
        let checks = |decoded: bool| ContentChecks {
            header: vec![header.clone()],
            body: vec![body.clone()],
            decoded,
            ..Default::default()
        };
        let said = |checks: &ContentChecks, m: &[u8]| match checks.verdict(m, &Facts::default()) {
            Verdict::Several(v) => v.iter().find_map(|v| match v {
                Verdict::Reject(r) => Some(r.lines[0].clone()),
                _ => None,
            }),
            other => panic!("{other:?}"),
        };
        let charsets = [
            encoding_rs::ISO_2022_JP,
            encoding_rs::SHIFT_JIS,
            encoding_rs::EUC_JP,
            encoding_rs::UTF_8,
        ];
        for charset in charsets {
            for (h, b) in [('B', "base64"), ('Q', "quoted-printable"), ('B', "raw")] {
                let m = japanese(charset, h, b);
                let what = format!("{} {h} {b}", charset.name());
                assert_eq!(said(&checks(true), &m).as_deref(), Some("header"), "decoded: {what}");
                // Postfix's way: an encoded Subject is never seen, a raw
                // body only when it is the rule's own bytes (UTF-8)
                let raw = said(&checks(false), &m);
                let raw_body_matches = b == "raw" && charset == encoding_rs::UTF_8;
                assert_eq!(raw.as_deref(), raw_body_matches.then_some("body"), "raw: {what}");
            }
        }
        // a body alone is seen decoded; NFKC makes half-width katakana whole
        let only_body = table(dir.path(), "b2", "/^これはテストです/ REJECT body\n");
        let checks = ContentChecks {
            body: vec![only_body],
            decoded: true,
            ..Default::default()
        };
        let (text, _, _) = encoding_rs::SHIFT_JIS.encode("これはﾃｽﾄです");
        let mut m =
            b"Subject: x\nContent-Type: text/plain; charset=Shift_JIS\nContent-Transfer-Encoding: base64\n\n".to_vec();
        m.extend_from_slice(base64(&text).as_bytes());
        assert_eq!(said(&checks, &m).as_deref(), Some("body"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// Any bytes, MIME-like or not: every byte is visited once, in order.
        #[test]
        fn the_walk_visits_every_byte_once(
            parts in proptest::collection::vec(
                "(Content-Type: multipart/mixed; boundary=\"?b\"?|Content-Type: message/rfc822|--b|--b--|Subject: x|\t folded|[ -~]{0,20}|)(\r?\n)?",
                0..40,
            ),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let mut message: Vec<u8> = parts.concat().into_bytes();
            message.extend_from_slice(&noise);
            let mut whole = Vec::new();
            walk_message(&message, |_, bytes| {
                whole.extend_from_slice(bytes);
                false
            });
            proptest::prop_assert_eq!(whole, message);
        }
    }
}
