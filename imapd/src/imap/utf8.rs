//! UTF8=ACCEPT (RFC 6855), for the clients of Japanese users whose
//! folder names and searches are Japanese text: once enabled, mailbox
//! names go both ways as UTF-8 instead of modified UTF-7.
//!
//! imap-codec 1.0 refuses 8-bit bytes in a quoted string, which is how
//! such a client sends `SELECT "日本語"`. Before parsing, each quoted
//! string holding 8-bit text is turned into the literal with the same
//! bytes (`{9}` CRLF `日本語`), which means the same and which imap-codec
//! reads; the session turns UTF-8 names into the modified UTF-7 the
//! folders are kept under.

use super::scan::{copy_literal, literal_end, quoted_end};

/// `input` with every quoted string that holds 8-bit bytes written as a
/// literal, or None if it has none (literals are passed over whole).
pub fn quoted_to_literals(input: &[u8]) -> Option<Vec<u8>> {
    // every command passes here: those without an 8-bit byte (nearly all,
    // and every APPEND of a 7-bit message) are not copied
    if input.is_ascii() || !has_eight_bit_quoted(input) {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() + 16);
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            // a literal is passed over whole
            b'{' => i = copy_literal(input, i, &mut out),
            b'"' => {
                let mut content = Vec::new();
                let mut j = i + 1;
                let mut closed = false;
                while j < input.len() {
                    match input[j] {
                        b'\\' if j + 1 < input.len() => {
                            content.push(input[j + 1]);
                            j += 2;
                        }
                        b'"' => {
                            closed = true;
                            j += 1;
                            break;
                        }
                        b => {
                            content.push(b);
                            j += 1;
                        }
                    }
                }
                let eight_bit = content.iter().any(|&b| b >= 0x80);
                if closed && eight_bit && std::str::from_utf8(&content).is_ok() {
                    out.extend_from_slice(format!("{{{}}}\r\n", content.len()).as_bytes());
                    out.extend_from_slice(&content);
                    changed = true;
                } else {
                    out.extend_from_slice(&input[i..j]);
                }
                i = j;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

/// Whether a quoted string (not a literal's data) holds 8-bit text: the
/// check, without copying, before [`quoted_to_literals`] copies.
fn has_eight_bit_quoted(input: &[u8]) -> bool {
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'{' => i = literal_end(input, i).unwrap_or(i + 1),
            b'"' => {
                let end = quoted_end(input, i).unwrap_or(input.len());
                if input[i..end].iter().any(|&b| b >= 0x80) {
                    return true;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bit_quoted_strings_become_literals() {
        let r = |s: &str| quoted_to_literals(s.as_bytes()).map(|b| String::from_utf8(b).unwrap());
        assert_eq!(
            r("a SELECT \"日本語\"\r\n").as_deref(),
            Some("a SELECT {9}\r\n日本語\r\n")
        );
        assert_eq!(
            r("b SEARCH SUBJECT \"会議 \\\"x\\\"\" FROM \"ascii\"\r\n").as_deref(),
            Some("b SEARCH SUBJECT {10}\r\n会議 \"x\" FROM \"ascii\"\r\n")
        );
        // ASCII strings, literals (even with quotes inside) and broken
        // UTF-8 stay as they are
        assert_eq!(r("c SELECT \"INBOX\"\r\n"), None);
        assert_eq!(r("d APPEND X {4}\r\n\"é\"\r\n"), None);
        assert_eq!(quoted_to_literals(b"e SELECT \"\xff\"\r\n"), None);
        assert_eq!(r("f SELECT \"日本"), None);
    }
}
