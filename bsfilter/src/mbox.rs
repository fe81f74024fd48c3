//! Splitting an mbox into its messages (`--mbox`).
//!
//! A message starts at a `From ` line at the start of the file or after an
//! empty line, as mutt, Dovecot and UW-IMAP write them; the empty line
//! before the next `From ` line is the separator, not part of the message.
//! Quoted `>From ` body lines are left as they are: `>` is not part of any
//! token, so quoting changes no token.

/// One message of an mbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MboxMessage<'a> {
    /// The `From ` line including its line ending; empty when the data does
    /// not start with one (a plain message handed to `--mbox`).
    pub from_line: &'a [u8],
    /// The message itself, headers and body.
    pub content: &'a [u8],
}

impl<'a> MboxMessage<'a> {
    /// The envelope sender of the `From ` line.
    pub fn envelope_sender(&self) -> Option<&'a str> {
        let line = std::str::from_utf8(self.from_line.strip_prefix(b"From ")?).ok()?;
        line.split_whitespace().next()
    }
}

/// Splits `data` into messages. Every byte of `data` lands in exactly one
/// message or separator, so nothing is dropped.
pub fn split(data: &[u8]) -> Vec<MboxMessage<'_>> {
    let mut starts = Vec::new();
    let mut line_start = 0;
    let mut previous_blank = true;
    while line_start < data.len() {
        let line_end = data[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| line_start + i + 1);
        let line = &data[line_start..line_end];
        if previous_blank && line.starts_with(b"From ") {
            starts.push(line_start);
        }
        previous_blank = line == b"\n" || line == b"\r\n";
        line_start = line_end;
    }
    if starts.first() != Some(&0) {
        starts.insert(0, 0);
    }
    let mut messages = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let mut end = starts.get(i + 1).copied().unwrap_or(data.len());
        if i + 1 < starts.len() {
            // drop the separating empty line
            if data[..end].ends_with(b"\r\n\r\n") {
                end -= 2;
            } else if data[..end].ends_with(b"\n\n") {
                end -= 1;
            }
        }
        let chunk = &data[start..end];
        let from_len = if chunk.starts_with(b"From ") {
            chunk.iter().position(|&b| b == b'\n').map_or(chunk.len(), |p| p + 1)
        } else {
            0
        };
        if chunk.is_empty() {
            continue;
        }
        messages.push(MboxMessage {
            from_line: &chunk[..from_len],
            content: &chunk[from_len..],
        });
    }
    messages
}

/// Header fields mail servers and readers keep state in (flags, UIDs,
/// lengths) and rewrite as mail is read or moved — never part of what a
/// message says: the tokenizer skips them, imapd hides them from clients.
pub const STATE_HEADERS: &[&str] = &[
    "status",
    "x-status",
    "x-keywords",
    "x-uid",
    "x-imapbase",
    "x-imap",
    "content-length",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_from_lines_after_blank_lines() {
        let data = b"From a@example.com Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\nFrom here is not a separator\n\nFrom b@example.org Mon Jan  1 00:00:01 2024\nSubject: two\n\n>From quoted\n";
        let m = split(data);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].envelope_sender(), Some("a@example.com"));
        assert_eq!(m[0].content, b"Subject: one\n\nbody\nFrom here is not a separator\n");
        assert_eq!(m[1].envelope_sender(), Some("b@example.org"));
        assert_eq!(m[1].content, b"Subject: two\n\n>From quoted\n");
    }

    #[test]
    fn plain_message_and_empty_input() {
        assert_eq!(split(b"Subject: x\n\nhi\n").len(), 1);
        assert_eq!(split(b"Subject: x\n\nhi\n")[0].from_line, b"");
        assert!(split(b"").is_empty());
    }
}
