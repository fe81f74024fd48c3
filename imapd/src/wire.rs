//! Writing IMAP strings: quoted when that is safe, a literal otherwise.

/// `NIL` or a string.
pub fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => string(out, v),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A quoted string, or a literal when the value holds CR, LF, NUL, 8-bit
/// bytes or is long.
pub fn string(out: &mut Vec<u8>, value: &[u8]) {
    if value.len() <= 1024 && value.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        out.push(b'"');
        for &b in value {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, value);
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
        assert_eq!(out, b"\"a \\\"b\\\" \\\\c\"");
        out.clear();
        string(&mut out, "日本".as_bytes());
        assert_eq!(out, "{6}\r\n日本".as_bytes());
        out.clear();
        nstring(&mut out, None);
        assert_eq!(out, b"NIL");
    }
}
