//! Finding quoted strings and literals in a command's bytes, for the
//! parsers written here beside imap-codec (each must step over them
//! whole: a literal may hold anything, quotes and parentheses too).

/// Past the closing quote of the quoted string starting at `start` (a
/// backslash escapes the next byte), or None if it is not closed.
pub fn quoted_end(input: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < input.len() {
        match input[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Past the data of the literal (`{N}` or `{N+}`, CRLF, N bytes)
/// starting at `start`, or None if no whole literal starts there.
pub fn literal_end(input: &[u8], start: usize) -> Option<usize> {
    let close = start + input.get(start..)?.iter().position(|&b| b == b'}')?;
    let size: usize = std::str::from_utf8(&input[start + 1..close])
        .ok()?
        .trim_end_matches('+')
        .parse()
        .ok()?;
    if !input.get(close + 1..)?.starts_with(b"\r\n") {
        return None;
    }
    let end = close.checked_add(3)?.checked_add(size)?;
    (end <= input.len()).then_some(end)
}

/// At a `{`: copies a whole literal to `out` and returns where it ends,
/// or just the `{` (no literal starts here) and the next position.
pub fn copy_literal(input: &[u8], start: usize, out: &mut Vec<u8>) -> usize {
    let end = literal_end(input, start).unwrap_or(start + 1);
    out.extend_from_slice(&input[start..end]);
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_literals() {
        assert_eq!(quoted_end(b"\"a\\\"b\" x", 0), Some(6));
        assert_eq!(quoted_end(b"\"open", 0), None);
        assert_eq!(literal_end(b"{3}\r\nabc rest", 0), Some(8));
        assert_eq!(literal_end(b"{3+}\r\nabc", 0), Some(9));
        assert_eq!(literal_end(b"{9}\r\nabc", 0), None);
        assert_eq!(literal_end(b"{x}\r\nabc", 0), None);
        assert_eq!(literal_end(b"{3}abc", 0), None);
    }
}
