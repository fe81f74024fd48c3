//! Writing IMAP strings: quoted when that is safe, a literal otherwise.

/// `NIL` or a string.
pub fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => string(out, v),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A quoted string, or a literal when the value holds CR, LF, NUL, 8-bit
/// bytes, a quote or a backslash, or is long. (Escaping would do for the
/// quote and backslash; a literal is what Dovecot sends for them, and
/// what every client reads the same way.)
pub fn string(out: &mut Vec<u8>, value: &[u8]) {
    if value.len() <= 1024
        && value
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(value);
        out.push(b'"');
    } else {
        literal(out, value);
    }
}

/// For UTF8=ACCEPT sessions (RFC 6855): a quoted string that may hold
/// UTF-8, a literal where a quoted string cannot carry the value.
pub fn utf8_string(out: &mut Vec<u8>, value: &str) {
    let quotable = value.len() <= 1024 && !value.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'"' || b == b'\\');
    if quotable {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        literal(out, value.as_bytes());
    }
}

/// An atom where one can stand (as Dovecot writes header names and
/// mailbox names), a string otherwise.
pub fn astring(out: &mut Vec<u8>, value: &[u8]) {
    let atom_char = |b: &u8| b.is_ascii_graphic() && !b"(){%*\"\\".contains(b);
    if !value.is_empty() && value.iter().all(atom_char) && !value.eq_ignore_ascii_case(b"NIL") {
        out.extend_from_slice(value);
    } else {
        string(out, value);
    }
}

pub fn literal(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let mut out = Vec::new();
        string(&mut out, b"a \"b\" \\c");
        assert_eq!(out, b"{8}\r\na \"b\" \\c");
        out.clear();
        string(&mut out, "日本".as_bytes());
        assert_eq!(out, "{6}\r\n日本".as_bytes());
        out.clear();
        nstring(&mut out, None);
        assert_eq!(out, b"NIL");
        for (value, written) in [
            (&b"SUBJECT"[..], &b"SUBJECT"[..]),
            (b"a/b]", b"a/b]"),
            (b"nil", b"\"nil\""),
            (b"", b"\"\""),
            (b"a b", b"\"a b\""),
            (b"a%", b"\"a%\""),
        ] {
            out.clear();
            astring(&mut out, value);
            assert_eq!(out, written);
        }
    }
}
