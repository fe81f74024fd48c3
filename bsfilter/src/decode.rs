//! Message decoding: raw RFC 5322 bytes → decoded header values, text, links
//! and attachment descriptions, all as UTF-8.
//!
//! MIME structure, transfer encodings, charsets and RFC 2047 words are
//! mail-parser's job; this module flattens its result into what the
//! tokenizer needs. Attachments contribute their name and type, never their
//! bytes.

use mail_parser::{Address, HeaderValue, MessageParser, MessagePart, MimeHeaders, PartType};

use crate::{charset, html};

/// Nested message/rfc822 parts deeper than this are not descended into.
const MAX_NESTING: usize = 8;

/// MIME parts analysed at most. mail-parser keeps a few hundred bytes for
/// every part it finds: a 16 MB message of 500,000 empty parts cost 430 MB
/// and 0.5 s. What follows the boundary line that would start part 1,001
/// is not read (each part starts at a line beginning `--`; text lines that
/// begin so count too, which only makes the cut earlier in a message that
/// has a thousand of them).
pub const MAX_PARTS: usize = 1000;

/// One header field: lower-cased name and decoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    pub name: String,
    pub value: String,
}

/// One text body part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPart {
    pub text: String,
    /// The text was extracted from a text/html part.
    pub from_html: bool,
}

/// A non-text part, described by its metadata only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub content_type: String,
    pub file_name: Option<String>,
}

/// What the tokenizer sees of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedMessage {
    /// Top-level header fields followed by the MIME part headers of the
    /// body parts, in message order.
    pub headers: Vec<HeaderField>,
    pub texts: Vec<TextPart>,
    /// Link and image targets found in HTML parts (`href`, `src`, …).
    pub links: Vec<String>,
    /// Start-tag names found in HTML parts.
    pub html_tags: Vec<String>,
    pub attachments: Vec<Attachment>,
    pub message_id: Option<String>,
}

impl DecodedMessage {
    /// Decodes one message. Never fails: bytes that are not a message at all
    /// decode as a message with no headers whose body is the text.
    pub fn parse(raw: &[u8]) -> DecodedMessage {
        let raw = within_part_limit(raw);
        let mut out = DecodedMessage::default();
        match MessageParser::default().parse(raw) {
            Some(message) => {
                out.message_id = message.message_id().map(str::to_owned);
                out.add_message(&message, 0);
            }
            None => out.texts.push(TextPart {
                text: String::from_utf8_lossy(raw).into_owned(),
                from_html: false,
            }),
        }
        out
    }

    fn add_message(&mut self, message: &mail_parser::Message<'_>, depth: usize) {
        let raw = message.raw_message();
        for (index, part) in message.parts.iter().enumerate() {
            // Part 0's headers are the message's own; later parts carry only
            // their MIME headers, which are worth tokens as well.
            self.add_headers(part, raw);
            match &part.body {
                PartType::Text(text) => {
                    let attached = is_attachment(part, index);
                    if attached {
                        self.add_attachment(part);
                    }
                    let mut text = redecode(part, raw, text).unwrap_or_else(|| text.to_string());
                    if attached {
                        truncate_at_char(&mut text, MAX_ATTACHED_TEXT);
                    }
                    self.texts.push(TextPart { text, from_html: false });
                }
                PartType::Html(markup) => {
                    let attached = is_attachment(part, index);
                    if attached {
                        self.add_attachment(part);
                    }
                    let redecoded = redecode(part, raw, markup);
                    let mut extracted = html::extract(redecoded.as_deref().unwrap_or(markup));
                    if attached {
                        truncate_at_char(&mut extracted.text, MAX_ATTACHED_TEXT);
                    }
                    self.links.extend(extracted.links);
                    self.html_tags.extend(extracted.tags);
                    self.texts.push(TextPart {
                        text: extracted.text,
                        from_html: true,
                    });
                }
                PartType::Binary(_) | PartType::InlineBinary(_) => self.add_attachment(part),
                PartType::Message(nested) => {
                    if depth < MAX_NESTING {
                        self.add_message(nested, depth + 1);
                    }
                }
                PartType::Multipart(_) => {}
            }
        }
    }

    fn add_headers(&mut self, part: &MessagePart<'_>, raw: &[u8]) {
        for header in part.headers() {
            let name = header.name().to_ascii_lowercase();
            let raw_value = raw
                .get(header.offset_start() as usize..header.offset_end() as usize)
                .unwrap_or_default();
            let value = match header.value() {
                // Received is kept raw: the hosts and addresses in it are the
                // tokens, and mail-parser's structured form drops some.
                HeaderValue::Received(_) => Some(String::from_utf8_lossy(raw_value).into_owned()),
                // Encoded words and raw 8-bit bytes: decoded by our rules
                // (words joined per charset, 8-bit detected), see charset.rs.
                HeaderValue::Text(_) | HeaderValue::TextList(_) | HeaderValue::Address(_)
                    if needs_own_decoding(raw_value) =>
                {
                    Some(charset::decode_header(raw_value))
                }
                other => flatten_value(other),
            };
            if let Some(value) = value {
                self.headers.push(HeaderField { name, value });
            }
        }
    }

    fn add_attachment(&mut self, part: &MessagePart<'_>) {
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_owned(),
            })
            .unwrap_or_else(|| "application/octet-stream".to_owned())
            .to_ascii_lowercase();
        self.attachments.push(Attachment {
            content_type,
            file_name: part.attachment_name().map(str::to_owned),
        });
    }

    /// All decoded text, one part after another (used by tests and
    /// `--show-tokens`-style diagnostics).
    pub fn body_text(&self) -> String {
        let mut all = String::new();
        for part in &self.texts {
            if !all.is_empty() {
                all.push('\n');
            }
            all.push_str(&part.text);
        }
        all
    }
}

/// Header bytes that mail-parser's per-word decoding may get wrong.
fn needs_own_decoding(raw_value: &[u8]) -> bool {
    raw_value.windows(2).any(|w| w == b"=?") || std::str::from_utf8(raw_value).is_err()
}

/// A text part's text when its charset label cannot be right (see
/// [`charset::redecode_body`]): the part's bytes, transfer-decoded, and
/// decoded again.
fn redecode(part: &MessagePart<'_>, raw: &[u8], decoded: &str) -> Option<String> {
    let label = part.content_type().and_then(|ct| ct.attribute("charset"));
    if !charset::worth_checking(label, decoded) {
        return None;
    }
    let body = raw.get(part.offset_body as usize..part.offset_end as usize)?;
    let bytes = match part.encoding {
        mail_parser::Encoding::Base64 => mail_parser::decoders::base64::base64_decode(body)?,
        mail_parser::Encoding::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(body)?
        }
        mail_parser::Encoding::None => body.to_vec(),
    };
    charset::redecode_body(&bytes, label, decoded)
}

/// `raw` up to the line that would start part [`MAX_PARTS`] + 1.
fn within_part_limit(raw: &[u8]) -> &[u8] {
    let mut part_lines = memchr::memchr_iter(b'\n', raw).filter(|&at| raw[at + 1..].starts_with(b"--"));
    match part_lines.nth(MAX_PARTS) {
        Some(at) => &raw[..at + 1],
        None => raw,
    }
}

/// A text part that is explicitly an attachment (a `.txt` file sent along,
/// often a Japanese text that way): its name and type count as every
/// attachment's do, and its text, the first [`MAX_ATTACHED_TEXT`] bytes of
/// it, as the body's does; the first part is the body whatever its
/// disposition says.
fn is_attachment(part: &MessagePart<'_>, index: usize) -> bool {
    index > 0 && part.content_disposition().is_some_and(|cd| cd.is_attachment())
}

/// How much of an attached text part is read as text: a long log or
/// listing sent along adds nothing a page of it does not, and costs
/// tokenizing time.
pub const MAX_ATTACHED_TEXT: usize = 64 << 10;

fn truncate_at_char(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

fn flatten_value(value: &HeaderValue<'_>) -> Option<String> {
    match value {
        HeaderValue::Text(text) => Some(text.to_string()),
        HeaderValue::TextList(list) => Some(list.join(" ")),
        HeaderValue::Address(address) => {
            let mut out = String::new();
            let mut push = |addr: &mail_parser::Addr<'_>| {
                for piece in [addr.name.as_deref(), addr.address.as_deref()].into_iter().flatten() {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(piece);
                }
            };
            match address {
                Address::List(list) => list.iter().for_each(&mut push),
                Address::Group(groups) => groups.iter().flat_map(|g| g.addresses.iter()).for_each(&mut push),
            }
            Some(out)
        }
        HeaderValue::ContentType(ct) => {
            let mut out = ct.ctype().to_owned();
            if let Some(sub) = ct.subtype() {
                out.push('/');
                out.push_str(sub);
            }
            for attr in ct.attributes().unwrap_or_default() {
                // Boundaries are random strings: noise, not evidence.
                if !attr.name.eq_ignore_ascii_case("boundary") {
                    out.push(' ');
                    out.push_str(&attr.name);
                    out.push('=');
                    out.push_str(&attr.value);
                }
            }
            Some(out)
        }
        HeaderValue::DateTime(_) | HeaderValue::Received(_) | HeaderValue::Empty => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_message_headers_and_body() {
        let m = DecodedMessage::parse(
            b"From: Alice <alice@example.com>\r\nSubject: =?UTF-8?B?w6l0w6k=?= plans\r\nMessage-ID: <x@y>\r\n\r\nHello world\r\n",
        );
        assert_eq!(m.message_id.as_deref(), Some("x@y"));
        let subject = m.headers.iter().find(|h| h.name == "subject").unwrap();
        assert_eq!(subject.value, "été plans");
        let from = m.headers.iter().find(|h| h.name == "from").unwrap();
        assert_eq!(from.value, "Alice alice@example.com");
        assert_eq!(m.body_text().trim_end(), "Hello world");
    }

    #[test]
    fn multipart_with_html_and_attachment() {
        let raw = b"Subject: t\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: text/html; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n<p>Caf=E9 <a href=3D\"http://shop.example.net/x\">here</a></p>\n--B\nContent-Type: application/pdf; name=\"invoice.pdf\"\nContent-Disposition: attachment; filename=\"invoice.pdf\"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--B--\n";
        let m = DecodedMessage::parse(raw);
        assert!(m.body_text().contains("Café"), "{:?}", m.texts);
        assert!(m.texts[0].from_html);
        assert_eq!(m.links, vec!["http://shop.example.net/x".to_string()]);
        assert_eq!(
            m.attachments,
            vec![Attachment {
                content_type: "application/pdf".into(),
                file_name: Some("invoice.pdf".into())
            }]
        );
        // the PDF's bytes never show up as text
        assert!(!m.body_text().contains("JVBER"));
    }

    #[test]
    fn parts_past_the_limit_are_not_read() {
        let mut raw = String::from("Subject: many\nContent-Type: multipart/mixed; boundary=\"b\"\n\n");
        for i in 0..3 * MAX_PARTS {
            raw.push_str(&format!("--b\nContent-Type: text/plain\n\npart{i}\n"));
        }
        raw.push_str("--b--\n");
        let m = DecodedMessage::parse(raw.as_bytes());
        assert_eq!(m.texts.len(), MAX_PARTS);
        assert_eq!(m.texts[MAX_PARTS - 1].text.trim_end(), format!("part{}", MAX_PARTS - 1));
        assert!(m.headers.iter().any(|h| h.name == "subject" && h.value == "many"));
    }

    #[test]
    fn base64_text_part_in_legacy_charset() {
        // "テスト" in ISO-2022-JP, base64-encoded
        let raw = b"Subject: x\nContent-Type: text/plain; charset=ISO-2022-JP\nContent-Transfer-Encoding: base64\n\nGyRCJUYlOSVIGyhC\n";
        let m = DecodedMessage::parse(raw);
        assert_eq!(m.body_text().trim_end(), "テスト");
    }

    #[test]
    fn not_a_message_is_text() {
        let m = DecodedMessage::parse(b"");
        assert!(m.headers.is_empty());
    }
}
