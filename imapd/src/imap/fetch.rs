//! FETCH: one message's data items.

use imap_types::fetch::{MessageDataItemName, Section};

use super::modifiers::Binary;
use crate::mailbox::{self, Message, SYSTEM_FLAGS};
use crate::mime::{self, Node};
use crate::wire::{astring, literal};

/// The message as clients see it (CRLF line ends) and its MIME tree,
/// made only when an item needs them (FETCH FLAGS needs neither).
pub struct View<'m> {
    message: &'m Message,
    data: Option<Vec<u8>>,
    root: Option<Node>,
}

impl<'m> View<'m> {
    pub fn new(message: &'m Message) -> View<'m> {
        View {
            message,
            data: None,
            root: None,
        }
    }

    fn data(&mut self) -> &[u8] {
        self.data.get_or_insert_with(|| mailbox::to_crlf(&self.message.content))
    }

    fn parsed(&mut self) -> (&[u8], &Node) {
        let data = self.data.get_or_insert_with(|| mailbox::to_crlf(&self.message.content));
        let root = self
            .root
            .get_or_insert_with(|| mime::parse(data, 0..data.len(), ("text", "plain"), 0));
        (data, root)
    }
}

/// `(\Seen $Junk …)`.
pub fn flags_list(message: &Message, recent: bool) -> String {
    let mut names: Vec<&str> = SYSTEM_FLAGS
        .iter()
        .filter(|(f, _)| message.has(*f))
        .map(|&(_, n)| n)
        .collect();
    // \Recent among the system flags, before the keywords (as Dovecot)
    if recent {
        names.push("\\Recent");
    }
    names.extend(message.keywords.iter().map(String::as_str));
    format!("({})", names.join(" "))
}

/// `"28-Nov-2026 04:03:56 +0000"`.
pub fn internal_date(seconds: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = bsfilter::time::UtcTime::from_unix(seconds.max(0) as u64);
    format!(
        "\"{:02}-{}-{} {:02}:{:02}:{:02} +0000\"",
        t.day,
        MONTHS[(t.month - 1) as usize],
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

/// Does fetching `item` set `\Seen`?
pub fn sets_seen(item: &MessageDataItemName<'_>) -> bool {
    matches!(
        item,
        MessageDataItemName::BodyExt { peek: false, .. }
            | MessageDataItemName::Rfc822
            | MessageDataItemName::Rfc822Text
    )
}

/// A FETCH item this server does not answer (written as nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsupportedItem;

impl std::fmt::Display for UnsupportedItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unsupported FETCH item")
    }
}

impl std::error::Error for UnsupportedItem {}

/// Writes one item (name and value) of `message`.
pub fn write_item(
    item: &MessageDataItemName<'_>,
    message: &Message,
    view: &mut View,
    recent: bool,
    out: &mut Vec<u8>,
) -> Result<(), UnsupportedItem> {
    match item {
        MessageDataItemName::Uid => out.extend_from_slice(format!("UID {}", message.uid).as_bytes()),
        MessageDataItemName::Flags => {
            out.extend_from_slice(format!("FLAGS {}", flags_list(message, recent)).as_bytes())
        }
        MessageDataItemName::InternalDate => {
            out.extend_from_slice(format!("INTERNALDATE {}", internal_date(message.internal_date())).as_bytes())
        }
        MessageDataItemName::Rfc822Size => out.extend_from_slice(format!("RFC822.SIZE {}", message.size()).as_bytes()),
        MessageDataItemName::Rfc822 => {
            out.extend_from_slice(b"RFC822 ");
            literal_crlf(out, &message.content);
        }
        MessageDataItemName::Rfc822Header => {
            let (data, root) = view.parsed();
            out.extend_from_slice(b"RFC822.HEADER ");
            literal(out, &data[root.header.clone()]);
        }
        MessageDataItemName::Rfc822Text => {
            let (data, root) = view.parsed();
            out.extend_from_slice(b"RFC822.TEXT ");
            literal(out, &data[root.body.clone()]);
        }
        MessageDataItemName::Envelope => {
            out.extend_from_slice(b"ENVELOPE ");
            let (data, root) = view.parsed();
            root.write_envelope(data, out);
        }
        MessageDataItemName::Body | MessageDataItemName::BodyStructure => {
            let extended = matches!(item, MessageDataItemName::BodyStructure);
            out.extend_from_slice(if extended { b"BODYSTRUCTURE " } else { b"BODY " });
            let (data, root) = view.parsed();
            root.write_structure(data, extended, out);
        }
        MessageDataItemName::BodyExt {
            section: None,
            partial: None,
            ..
        } => {
            // the whole message, the most common big fetch: converted
            // straight into the response
            out.extend_from_slice(b"BODY[] ");
            literal_crlf(out, &message.content);
        }
        MessageDataItemName::BodyExt { section, partial, .. } => {
            let content = section_bytes(view, section.as_ref());
            out.extend_from_slice(b"BODY[");
            out.extend_from_slice(section_name(section.as_ref()).as_bytes());
            out.push(b']');
            match partial {
                Some((start, length)) => {
                    out.extend_from_slice(format!("<{start}> ").as_bytes());
                    let start = (*start as usize).min(content.len());
                    let end = start.saturating_add(length.get() as usize).min(content.len());
                    literal(out, &content[start..end]);
                }
                None => {
                    out.push(b' ');
                    literal(out, &content);
                }
            }
        }
        #[allow(unreachable_patterns)]
        _ => return Err(UnsupportedItem),
    }
    Ok(())
}

/// A literal of `content` with every line ending as CRLF.
fn literal_crlf(out: &mut Vec<u8>, content: &[u8]) {
    let size = content.len() + mailbox::lone_newlines(content);
    out.extend_from_slice(format!("{{{size}}}\r\n").as_bytes());
    mailbox::append_crlf(content, out);
}

fn part_numbers(part: &imap_types::fetch::Part) -> Vec<u32> {
    part.0.as_ref().iter().map(|n| n.get()).collect()
}

/// The bytes of `BODY[section]`; an empty string for parts that do not
/// exist (as Dovecot answers).
fn section_bytes(view: &mut View, section: Option<&Section<'_>>) -> Vec<u8> {
    section_part(view, section).unwrap_or_default()
}

/// The bytes of `BODY[section]` of `message`, the section written as in
/// FETCH (`1.2.MIME`, `HEADER.FIELDS (To)`; None: the whole message),
/// or None if it is no section or names no part (CATENATE's URLs).
pub fn section_of(message: &Message, section: Option<&str>) -> Option<Vec<u8>> {
    use imap_codec::CommandCodec;
    use imap_codec::decode::Decoder;
    use imap_types::command::CommandBody;
    use imap_types::fetch::MacroOrMessageDataItemNames;
    let mut view = View::new(message);
    let Some(section) = section else {
        return Some(view.data().to_vec());
    };
    // the section parsed as imap-codec parses FETCH's
    let command = format!("s FETCH 1 BODY.PEEK[{section}]\r\n");
    let (rest, parsed) = CommandCodec::default().decode(command.as_bytes()).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(items),
        ..
    } = parsed.body
    else {
        return None;
    };
    match items.as_slice() {
        [
            MessageDataItemName::BodyExt {
                section, partial: None, ..
            },
        ] => section_part(&mut view, section.as_ref()),
        _ => None,
    }
}

/// The bytes of `BODY[section]`, None for parts that do not exist.
fn section_part(view: &mut View, section: Option<&Section<'_>>) -> Option<Vec<u8>> {
    let Some(section) = section else {
        return Some(view.data().to_vec());
    };
    let (data, root) = view.parsed();
    match section {
        Section::Part(part) => {
            let path = part_numbers(part);
            root.part(&path).map(|n| data[n.body.clone()].to_vec())
        }
        Section::Header(part) => {
            let path = part.as_ref().map(part_numbers).unwrap_or_default();
            root.message_of(&path).map(|n| data[n.header.clone()].to_vec())
        }
        Section::Text(part) => {
            let path = part.as_ref().map(part_numbers).unwrap_or_default();
            root.message_of(&path).map(|n| data[n.body.clone()].to_vec())
        }
        Section::Mime(part) => {
            let path = part_numbers(part);
            root.part(&path).map(|n| data[n.header.clone()].to_vec())
        }
        Section::HeaderFields(part, names) | Section::HeaderFieldsNot(part, names) => {
            let path = part.as_ref().map(part_numbers).unwrap_or_default();
            let wanted: Vec<String> = names
                .as_ref()
                .iter()
                .map(|n| String::from_utf8_lossy(n.as_ref()).to_ascii_lowercase())
                .collect();
            let not = matches!(section, Section::HeaderFieldsNot(..));
            root.message_of(&path)
                .map(|n| filter_header(&data[n.header.clone()], &wanted, not))
        }
    }
}

/// The header lines (with continuations) whose names are (or, with `not`,
/// are not) in `names`, followed by the blank line.
fn filter_header(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line[0], b' ' | b'\t') {
            let name = line
                .iter()
                .position(|&b| b == b':')
                .map(|i| String::from_utf8_lossy(&line[..i]).trim().to_ascii_lowercase());
            keep = name.is_some_and(|n| names.contains(&n) != not);
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn section_name(section: Option<&Section<'_>>) -> String {
    let Some(section) = section else {
        return String::new();
    };
    let part = |p: &imap_types::fetch::Part| part_numbers(p).iter().map(u32::to_string).collect::<Vec<_>>().join(".");
    let prefixed = |p: &Option<imap_types::fetch::Part>, name: &str| match p {
        Some(p) => format!("{}.{name}", part(p)),
        None => name.to_owned(),
    };
    match section {
        Section::Part(p) => part(p),
        Section::Header(p) => prefixed(p, "HEADER"),
        Section::Text(p) => prefixed(p, "TEXT"),
        Section::Mime(p) => format!("{}.MIME", part(p)),
        Section::HeaderFields(p, names) | Section::HeaderFieldsNot(p, names) => {
            let kind = if matches!(section, Section::HeaderFields(..)) {
                "HEADER.FIELDS"
            } else {
                "HEADER.FIELDS.NOT"
            };
            let mut list = Vec::new();
            for (i, n) in names.as_ref().iter().enumerate() {
                if i > 0 {
                    list.push(b' ');
                }
                astring(&mut list, &n.as_ref().to_ascii_uppercase());
            }
            format!("{} ({})", prefixed(p, kind), String::from_utf8_lossy(&list))
        }
    }
}

/// The transfer encoding of part `section` of `message` if BINARY cannot
/// undo it (RFC 3516: answered `NO [UNKNOWN-CTE]`).
pub fn unknown_encoding(message: &Message, section: &[u32]) -> Option<String> {
    let mut view = View::new(message);
    let (data, root) = view.parsed();
    let part = if section.is_empty() {
        Some(root)
    } else {
        root.part(section)
    }?;
    let encoding = transfer_encoding(data, part);
    (!matches!(
        encoding.as_str(),
        "7bit" | "8bit" | "binary" | "base64" | "quoted-printable"
    ))
    .then_some(encoding)
}

fn transfer_encoding(data: &[u8], part: &Node) -> String {
    mime::field(
        &mime::header_fields(&data[part.header.clone()]),
        "content-transfer-encoding",
    )
    .map(|e| e.trim().to_ascii_lowercase())
    .unwrap_or_else(|| "7bit".to_owned())
}

/// `BINARY[section]<partial> literal` or `BINARY.SIZE[section] n`: the
/// part with its transfer encoding undone (RFC 3516); a literal8 (`~{n}`)
/// when the bytes are not 7-bit (RFC 3516 requires it for a NUL; Dovecot
/// uses it for any 8-bit byte, and so do we). A part that does not exist
/// is empty.
pub fn write_binary(item: &Binary, view: &mut View, out: &mut Vec<u8>) {
    let (data, root) = view.parsed();
    let part = if item.section.is_empty() {
        Some(root)
    } else {
        root.part(&item.section)
    };
    let decoded = part
        .map(|part| {
            // the whole message for BINARY[]; a part's body otherwise
            let raw = if item.section.is_empty() {
                data
            } else {
                &data[part.body.clone()]
            };
            match transfer_encoding(data, part).as_str() {
                "base64" if !item.section.is_empty() => mail_parser::decoders::base64::base64_decode(raw),
                "quoted-printable" if !item.section.is_empty() => {
                    mail_parser::decoders::quoted_printable::quoted_printable_decode(raw)
                }
                _ => Some(raw.to_vec()),
            }
            .unwrap_or_else(|| raw.to_vec())
        })
        .unwrap_or_default();
    let section: Vec<String> = item.section.iter().map(u32::to_string).collect();
    let section = section.join(".");
    if item.size {
        out.extend_from_slice(format!("BINARY.SIZE[{section}] {}", decoded.len()).as_bytes());
        return;
    }
    out.extend_from_slice(format!("BINARY[{section}]").as_bytes());
    let bytes = match item.partial {
        Some((start, length)) => {
            out.extend_from_slice(format!("<{start}>").as_bytes());
            let start = (start as usize).min(decoded.len());
            let end = start.saturating_add(length as usize).min(decoded.len());
            &decoded[start..end]
        }
        None => &decoded[..],
    };
    let marker = if bytes.iter().any(|&b| b == 0 || b >= 0x80) {
        "~"
    } else {
        ""
    };
    out.extend_from_slice(format!(" {marker}{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}
