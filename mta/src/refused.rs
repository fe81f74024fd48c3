//! `mtad refused`: what was refused for one recipient and why, read from
//! mtad's log — so a user can ask "was my mail stopped?" and the
//! administrator can answer without grep. Each refusal is one
//! `event="reject"` line with the recipients it stopped (`to=`); lines
//! are read as mtad writes them or with the journal's prefix in front
//! (`journalctl -u mtad`).

/// One refusal, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The RFC 3339 time at the front of mtad's line, when there is one.
    pub time: Option<String>,
    pub cause: String,
    pub client: String,
    pub from: String,
    pub reply: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}  {}  from={}  {}  {}",
            self.time.as_deref().unwrap_or("-"),
            self.client,
            if self.from.is_empty() { "-" } else { &self.from },
            self.cause,
            self.reply
        )
    }
}

/// The refusals in `line` for `recipient`, if it is one: a reject whose
/// `to=` names the recipient (case-insensitively), at or after `since`
/// (a prefix of an RFC 3339 time, `2026-12-02` or `2026-12-02T09:30`;
/// a line without a time is left out when `since` is given).
pub fn parse(line: &str, recipient: &str, since: Option<&str>) -> Option<Refusal> {
    if !line.contains("event=\"reject\"") {
        return None;
    }
    let to = field(line, "to")?;
    let wanted = format!("<{}>", recipient.trim_matches(['<', '>']).to_ascii_lowercase());
    if !to.split(',').any(|r| r.trim().eq_ignore_ascii_case(&wanted)) {
        return None;
    }
    let time = line
        .split_whitespace()
        .find(|w| w.len() >= 10 && w.as_bytes()[4] == b'-' && w.as_bytes()[..4].iter().all(u8::is_ascii_digit))
        .map(str::to_owned);
    if let Some(since) = since {
        match &time {
            Some(t) if t.as_str() >= since => {}
            _ => return None,
        }
    }
    Some(Refusal {
        time,
        cause: field(line, "cause").unwrap_or_default(),
        client: field(line, "client").unwrap_or_default(),
        from: field(line, "from").unwrap_or_default(),
        // the reply is the line's last field: all that follows it
        reply: line
            .find(" reply=")
            .map(|at| line[at + " reply=".len()..].trim().to_owned())
            .unwrap_or_default(),
    })
}

/// A `name=value` field's value (quotes taken off), or None.
fn field(line: &str, name: &str) -> Option<String> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[at..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or(""),
        None => rest.split(' ').next().unwrap_or(""),
    };
    Some(value.to_owned())
}

/// Validates `--since`: a date, or a date and time, as RFC 3339 begins.
pub fn valid_since(since: &str) -> bool {
    // bytes, not str slices: a non-ASCII character must not split a slice
    let b = since.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && digits(0..4)
        && digits(5..7)
        && digits(8..10)
        && (b.len() == 10 || b[10] == b'T')
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "2026-12-02T01:48:30.243615Z  INFO refused event=\"reject\" cause=\"check_client_access\" \
        client=127.0.0.3 client_name=localhost helo=\"client.example.org\" from=<a@example.org> \
        to=<Alice@example.jp>,<bob@example.jp> reply=554 5.7.1 <localhost[127.0.0.3]>: Client host rejected: Access denied";

    #[test]
    fn refusals_for_a_recipient() {
        let r = parse(LINE, "alice@EXAMPLE.jp", None).unwrap();
        assert_eq!(r.cause, "check_client_access");
        assert_eq!(r.client, "127.0.0.3");
        assert_eq!(r.from, "<a@example.org>");
        assert_eq!(
            r.reply,
            "554 5.7.1 <localhost[127.0.0.3]>: Client host rejected: Access denied"
        );
        assert_eq!(r.time.as_deref(), Some("2026-12-02T01:48:30.243615Z"));
        assert!(parse(LINE, "<bob@example.jp>", None).is_some());
        assert!(parse(LINE, "carol@example.jp", None).is_none());
        assert!(parse(LINE, "alice@example.jp", Some("2026-12-02")).is_some());
        assert!(parse(LINE, "alice@example.jp", Some("2026-12-02T01:48:31")).is_none());
        assert!(parse(&LINE.replace("reject", "accepted"), "alice@example.jp", None).is_none());
        // the journal's prefix in front
        let journal = format!("Dec 02 01:48:30 mx mtad[812]: {LINE}");
        assert_eq!(parse(&journal, "alice@example.jp", None), Some(r));
        assert!(valid_since("2026-12-02") && valid_since("2026-12-02T09:30"));
        assert!(!valid_since("yesterday") && !valid_since("2026-12-2"));
    }

    proptest::proptest! {
        /// Any line and any --since: an answer, never a panic.
        #[test]
        fn hostile_lines_and_times(
            line in "\\PC{0,120}( event=\"reject\")?( to=<a@b>)?( reply=\\PC{0,20})?",
            since in "[0-9-]{0,5}\\PC{0,12}",
        ) {
            let _ = valid_since(&since);
            let _ = parse(&line, "a@b", valid_since(&since).then_some(since.as_str()));
            let _ = parse(&line, &since, None);
        }
    }
}
