//! HTML parts: the visible text (mail-parser's converter) plus the link and
//! image targets, which the text alone loses and spam depends on.

/// Text, link targets and markup of one HTML document.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    pub text: String,
    pub links: Vec<String>,
    /// Names of the start tags, lower-cased, once each: the layout
    /// vocabulary (font, table, img, …) that mass mail uses and
    /// person-to-person HTML mostly does not.
    pub tags: Vec<String>,
}

/// Attributes whose values are URLs worth tokens.
const LINK_ATTRIBUTES: [&str; 4] = ["href", "src", "action", "background"];

pub fn extract(markup: &str) -> Extracted {
    let (links, tags) = scan_tags(markup);
    Extracted {
        text: mail_parser::decoders::html::html_to_text(markup),
        links,
        tags,
    }
}

/// Scans start tags for their names and link attributes. A forgiving
/// scanner rather than a parser: mail HTML is routinely broken, and a
/// missed quote must not make us skip the rest of the document.
fn scan_tags(markup: &str) -> (Vec<String>, Vec<String>) {
    let bytes = markup.as_bytes();
    let mut found = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    let mut pos = 0;
    while let Some(offset) = bytes[pos..].iter().position(|&b| b == b'<') {
        pos += offset + 1;
        // Only start tags: a letter right after '<'.
        if !bytes.get(pos).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'>')
            .map_or(bytes.len(), |e| pos + e);
        let tag = &markup[pos..end];
        let name_len = tag
            .bytes()
            .position(|b| !b.is_ascii_alphanumeric())
            .unwrap_or(tag.len());
        let name = tag[..name_len].to_ascii_lowercase();
        if name.len() <= 12 && !tags.contains(&name) {
            tags.push(name);
        }
        scan_attributes(tag, &mut found);
        pos = end;
    }
    (found, tags)
}

fn scan_attributes(tag: &str, found: &mut Vec<String>) {
    let bytes = tag.as_bytes();
    // skip the tag name
    let mut i = bytes
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        let name_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'=' | b'/') {
            i += 1;
        }
        let name = &tag[name_start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            if name.is_empty() {
                i += 1;
            }
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let (value_start, value_end, next) = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let close = bytes[i + 1..]
                    .iter()
                    .position(|&b| b == q)
                    .map_or(bytes.len(), |c| i + 1 + c);
                (i + 1, close, close + 1)
            }
            _ => {
                let end = bytes[i..]
                    .iter()
                    .position(u8::is_ascii_whitespace)
                    .map_or(bytes.len(), |e| i + e);
                (i, end, end)
            }
        };
        if LINK_ATTRIBUTES.iter().any(|a| name.eq_ignore_ascii_case(a)) {
            let value = tag[value_start..value_end].trim().replace("&amp;", "&");
            if !value.is_empty() {
                found.push(value);
            }
        }
        i = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_links() {
        let e = extract(
            "<html><head><style>p{}</style></head><body><p>Hi &amp; bye</p>\
             <a class=x href='http://a.example/?q=1&amp;r=2'>go</a><img src=http://img.example/i.gif alt=\"\"></body></html>",
        );
        assert!(e.text.contains("Hi & bye"), "{:?}", e.text);
        assert!(!e.text.contains("p{}"));
        assert_eq!(e.links, vec!["http://a.example/?q=1&r=2", "http://img.example/i.gif"]);
    }

    #[test]
    fn broken_markup_does_not_stop_the_scan() {
        let e = extract("<a href=\"http://one.example/ <b>x</b> <a href=http://two.example>y</a> < 3 <");
        assert!(e.links.iter().any(|l| l.contains("two.example")), "{:?}", e.links);
    }
}
