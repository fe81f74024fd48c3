//! IMAP LIST and LSUB patterns (RFC 3501 §6.3.8).

use lda::folders::MAX_NAME;

/// IMAP LIST pattern matching: `*` matches anything, `%` anything but the
/// delimiter. INBOX matches case-insensitively.
pub fn matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some(b'%') => {
                let limit = n.iter().position(|&b| b == b'/').unwrap_or(n.len());
                (0..=limit).any(|i| go(&p[1..], &n[i..]))
            }
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    if name == "INBOX" && pattern.len() >= 5 && pattern[..5].eq_ignore_ascii_case("INBOX") {
        return go(&pattern.as_bytes()[5..], b"");
    }
    // bound the backtracking on hostile patterns
    pattern.len() <= 2 * MAX_NAME
        && pattern.matches(['*', '%']).count() <= 16
        && go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(matches("*", "a/b"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("S*", "Spam"));
        assert!(!matches("S*x", "Spam"));
    }
}
