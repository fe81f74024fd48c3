//! Editing the header of a raw message: verdict headers (`X-Spam-Flag`, …)
//! and the spam subject prefix. Bytes outside the edited fields are kept as
//! they are, line endings included.

/// Replaces every field called `name` (case-insensitively, continuation
/// lines included) by one `name: value` at the end of the header. Removing
/// all copies matters: a sender must not be able to forge a verdict by
/// sending the header themselves.
pub fn set_field(message: &[u8], name: &str, value: &str) -> Vec<u8> {
    set_fields(message, &[], &[(name, value)])
}

/// Removes every field named in `remove` or `add` and puts the `add`
/// fields, in order, at the end of the header: one copy of the message
/// however many fields change.
pub fn set_fields(message: &[u8], remove: &[&str], add: &[(&str, &str)]) -> Vec<u8> {
    let names: Vec<&str> = remove
        .iter()
        .copied()
        .chain(add.iter().map(|(name, _)| *name))
        .collect();
    let mut out = remove_fields(message, &names);
    if add.is_empty() {
        return out;
    }
    let at = header_end(&out);
    let eol: &[u8] = if uses_crlf(message) { b"\r\n" } else { b"\n" };
    let mut fields = Vec::new();
    for (name, value) in add {
        fields.extend_from_slice(name.as_bytes());
        fields.extend_from_slice(b": ");
        fields.extend_from_slice(value.as_bytes());
        fields.extend_from_slice(eol);
    }
    // A message that has only a header and no final newline: end the last
    // field first.
    if at > 0 && at == out.len() && !out.ends_with(b"\n") {
        out.extend_from_slice(eol);
        out.extend_from_slice(&fields);
        return out;
    }
    out.splice(at..at, fields);
    out
}

/// Removes every field called one of `names`, continuation lines included.
pub fn remove_fields(message: &[u8], names: &[&str]) -> Vec<u8> {
    remove_fields_where(message, |name, _| {
        names.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
    })
}

/// Removes every field for which `unwanted(name, first line of the value)`
/// holds, continuation lines included.
pub fn remove_fields_where(message: &[u8], unwanted: impl Fn(&[u8], &[u8]) -> bool) -> Vec<u8> {
    let end = header_end(message);
    let mut out = Vec::with_capacity(message.len() + 128);
    let mut skipping = false;
    for line in message[..end].split_inclusive(|&b| b == b'\n') {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            skipping = field_name(line).is_some_and(|n| unwanted(n, &line[n.len() + 1..]));
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&message[end..]);
    out
}

/// Puts `prefix` in front of the Subject (adding a Subject when there is
/// none), unless it is there already.
pub fn prefix_subject(message: &[u8], prefix: &str) -> Vec<u8> {
    let end = header_end(message);
    let mut offset = 0;
    for line in message[..end].split_inclusive(|&b| b == b'\n') {
        if field_name(line).is_some_and(|n| n.eq_ignore_ascii_case(b"subject")) {
            let colon = line.iter().position(|&b| b == b':').expect("field has a colon");
            let mut value_start = colon + 1;
            while line.get(value_start) == Some(&b' ') {
                value_start += 1;
            }
            if line[value_start..].starts_with(prefix.as_bytes()) {
                return message.to_vec();
            }
            let mut out = message.to_vec();
            let at = offset + value_start;
            out.splice(at..at, prefix.bytes());
            return out;
        }
        offset += line.len();
    }
    set_field(message, "Subject", prefix.trim_end())
}

/// The name of the header field starting on `line`, if it starts one.
fn field_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    (!name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic())).then_some(name)
}

/// Whether the header has a field named `name` (any case).
pub fn has_field(message: &[u8], name: &str) -> bool {
    message[..header_end(message)]
        .split_inclusive(|&b| b == b'\n')
        .filter_map(field_name)
        .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
}

/// Offset of the empty line ending the header (or of the first line that
/// cannot be part of a header); the message length if there is neither.
/// An mbox `From ` line first (procmail hands one to every filter) is part
/// of the header block: fields are added after it, and it stays first.
pub fn header_end(message: &[u8]) -> usize {
    let mut offset = 0;
    for line in message.split_inclusive(|&b| b == b'\n') {
        if offset == 0 && line.starts_with(b"From ") {
            offset += line.len();
            continue;
        }
        let is_field = field_name(line).is_some();
        let continuation = offset > 0 && matches!(line.first(), Some(b' ' | b'\t'));
        if !(is_field || continuation) {
            return offset;
        }
        offset += line.len();
    }
    offset
}

fn uses_crlf(message: &[u8]) -> bool {
    message
        .iter()
        .position(|&b| b == b'\n')
        .is_some_and(|i| i > 0 && message[i - 1] == b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mbox_from_line_stays_first() {
        let message = b"From a@b Mon Jan  1 00:00:00 2024\nSubject: hi\n\nbody\n";
        assert_eq!(
            set_fields(message, &[], &[("X-Spam-Flag", "Yes")]),
            b"From a@b Mon Jan  1 00:00:00 2024\nSubject: hi\nX-Spam-Flag: Yes\n\nbody\n"
        );
        assert_eq!(
            prefix_subject(message, "[SPAM] "),
            b"From a@b Mon Jan  1 00:00:00 2024\nSubject: [SPAM] hi\n\nbody\n"
        );
        // no Subject: one is added after the From line
        let bare = b"From a@b Mon Jan  1 00:00:00 2024\nTo: x\n\nbody\n";
        assert_eq!(
            prefix_subject(bare, "[SPAM] "),
            b"From a@b Mon Jan  1 00:00:00 2024\nTo: x\nSubject: [SPAM]\n\nbody\n"
        );
        // a From line only first; later it is the body's
        assert_eq!(header_end(b"Subject: x\nFrom nobody\n"), 11);
    }

    #[test]
    fn replaces_forged_fields() {
        let m = b"From: a\nX-Spam-Flag: NO\n  continued\nx-spam-flag: no\nSubject: s\n\nbody\nX-Spam-Flag: body line stays\n";
        let out = set_field(m, "X-Spam-Flag", "Yes");
        assert_eq!(
            out,
            b"From: a\nSubject: s\nX-Spam-Flag: Yes\n\nbody\nX-Spam-Flag: body line stays\n".to_vec()
        );
    }

    #[test]
    fn several_fields_in_one_pass() {
        let m = b"X-Spam-Probability: 0.000001\nFrom: a\nX-Spam-Flag: NO\n\tcontinued\nX-Spam-Filter-Error: forged\nSubject: s\n\nbody\n";
        let names = ["X-Spam-Flag", "X-Spam-Probability", "X-Spam-Filter-Error"];
        let out = set_fields(m, &names, &[("X-Spam-Flag", "Yes"), ("X-Spam-Probability", "0.999000")]);
        assert_eq!(
            out,
            b"From: a\nSubject: s\nX-Spam-Flag: Yes\nX-Spam-Probability: 0.999000\n\nbody\n".to_vec()
        );
        // removal alone, and a header with no final newline
        assert_eq!(set_fields(m, &names, &[]), b"From: a\nSubject: s\n\nbody\n".to_vec());
        assert_eq!(remove_fields(m, &names), set_fields(m, &names, &[]));
        assert_eq!(
            set_fields(b"A: b", &[], &[("X-F", "1"), ("X-G", "2")]),
            b"A: b\nX-F: 1\nX-G: 2\n".to_vec()
        );
    }

    #[test]
    fn keeps_crlf_and_handles_headers_only() {
        assert_eq!(
            set_field(b"A: b\r\n\r\nx", "X-F", "1"),
            b"A: b\r\nX-F: 1\r\n\r\nx".to_vec()
        );
        assert_eq!(set_field(b"A: b", "X-F", "1"), b"A: b\nX-F: 1\n".to_vec());
        assert_eq!(set_field(b"", "X-F", "1"), b"X-F: 1\n".to_vec());
        // no header at all: the field goes on top
        assert_eq!(set_field(b"just text\n", "X-F", "1"), b"X-F: 1\njust text\n".to_vec());
    }

    #[test]
    fn subject_prefix() {
        assert_eq!(
            prefix_subject(b"Subject: hi\n\nb", "[SPAM] "),
            b"Subject: [SPAM] hi\n\nb".to_vec()
        );
        assert_eq!(
            prefix_subject(b"Subject: [SPAM] hi\n\nb", "[SPAM] "),
            b"Subject: [SPAM] hi\n\nb".to_vec()
        );
        assert_eq!(
            prefix_subject(b"From: x\n\nb", "[SPAM] "),
            b"From: x\nSubject: [SPAM]\n\nb".to_vec()
        );
    }
}
