//! The mbox format as mutt, Dovecot and UW-IMAP share it, byte-exact.
//!
//! A message is stored as its `From ` line (envelope sender and asctime
//! date), the message with mboxrd quoting (a line matching `>*From ` gains
//! one `>`), and one `\n` that ends it: the empty line between messages when
//! the message ends with a newline, the end of its last line when it does
//! not. Reading undoes exactly that, so every message — NUL bytes, CRLF,
//! no final newline, body lines starting `From ` or `>From ` — reads back as
//! the bytes that were delivered.
//!
//! Because every body line starting `From ` is quoted, any line starting
//! `From ` is a message boundary.

use std::time::{SystemTime, UNIX_EPOCH};

use bsfilter::time::UtcTime;

/// The `From ` line for a message from `sender` delivered at `time` (UTC),
/// newline included. An empty sender (a bounce, `<>`) is `MAILER-DAEMON`,
/// as Dovecot and procmail write it; white space in a sender would break
/// the line, so it becomes `_`.
pub fn from_line(sender: &str, time: SystemTime) -> String {
    let sender = sender.trim().trim_start_matches('<').trim_end_matches('>');
    let sender: String = if sender.is_empty() {
        "MAILER-DAEMON".to_owned()
    } else {
        sender
            .chars()
            .map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c })
            .collect()
    };
    format!("From {sender} {}\n", asctime(time))
}

/// `Thu Nov 28 01:02:03 2026`: the 24-character asctime date, UTC.
pub fn asctime(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = UtcTime::from_unix(time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[t.weekday as usize],
        MONTHS[(t.month - 1) as usize],
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    )
}

/// True when `line` (from a line start) must be quoted: `>*From `.
fn needs_quote(line: &[u8]) -> bool {
    let unquoted = line.iter().position(|&b| b != b'>').map_or(&[][..], |i| &line[i..]);
    unquoted.starts_with(b"From ")
}

/// Appends the stored form of `message` (after `from_line`) to `out`.
pub fn encode(from_line: &str, message: &[u8], out: &mut Vec<u8>) {
    out.reserve(from_line.len() + message.len() + message.len() / 64 + 2);
    out.extend_from_slice(from_line.as_bytes());
    for line in message.split_inclusive(|&b| b == b'\n') {
        if needs_quote(line) {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    out.push(b'\n');
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<'a> {
    /// Byte offset of its `From ` line in the file.
    pub offset: usize,
    /// The `From ` line, without its newline.
    pub from_line: &'a [u8],
    /// The message as delivered (quoting undone).
    pub message: Vec<u8>,
}

/// Reads every message of an mbox. Bytes before the first `From ` line
/// (not an mbox, or a damaged start) are ignored.
pub fn parse(data: &[u8]) -> Vec<Stored<'_>> {
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        if data[pos..].starts_with(b"From ") {
            starts.push(pos);
        }
        pos = match data[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => pos + i + 1,
            None => data.len(),
        };
    }
    let mut messages = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(data.len());
        let chunk = &data[start..end];
        let line_end = chunk.iter().position(|&b| b == b'\n').map_or(chunk.len(), |p| p + 1);
        let from_line = chunk[..line_end].strip_suffix(b"\n").unwrap_or(&chunk[..line_end]);
        let mut body = &chunk[line_end..];
        // the one newline that ends every stored message
        if let Some(b) = body.strip_suffix(b"\n") {
            body = b;
        }
        let mut message = Vec::with_capacity(body.len());
        for line in body.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b">") && needs_quote(line) {
                message.extend_from_slice(&line[1..]);
            } else {
                message.extend_from_slice(line);
            }
        }
        messages.push(Stored {
            offset: start,
            from_line,
            message,
        });
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn asctime_format() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_827_723); // 2026-11-28 01:02:03 UTC
        assert_eq!(asctime(t), "Sat Nov 28 01:02:03 2026");
        assert_eq!(asctime(UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
        assert_eq!(
            from_line("<>", UNIX_EPOCH),
            "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"
        );
        assert_eq!(from_line("a b@c", UNIX_EPOCH), "From a_b@c Thu Jan  1 00:00:00 1970\n");
    }

    #[test]
    fn awkward_messages_round_trip() {
        let messages: Vec<&[u8]> = vec![
            b"Subject: a\n\nFrom the start\n>From quoted\n>>From twice\nFrom\nFromage\n",
            b"Subject: no final newline\n\nlast line",
            b"Subject: crlf\r\n\r\nFrom x\r\nbody\r\n",
            b"Subject: nul\n\n\0\0bytes\0\n",
            b"",
            b"\n",
            b"From ",
            b"Subject: ends with blank lines\n\nbody\n\n\n",
        ];
        let mut file = Vec::new();
        for m in &messages {
            encode("From s@example.com Thu Jan  1 00:00:00 1970\n", m, &mut file);
        }
        let parsed = parse(&file);
        assert_eq!(parsed.len(), messages.len());
        for (p, m) in parsed.iter().zip(&messages) {
            assert_eq!(&p.message[..], *m, "{:?}", String::from_utf8_lossy(m));
            assert_eq!(p.from_line, b"From s@example.com Thu Jan  1 00:00:00 1970");
        }
    }

    #[test]
    fn quoting_is_mboxrd() {
        let mut out = Vec::new();
        encode(
            "From a Thu Jan  1 00:00:00 1970\n",
            b"X: y\n\nFrom a\n>From b\nfrom c\n",
            &mut out,
        );
        assert_eq!(
            out,
            b"From a Thu Jan  1 00:00:00 1970\nX: y\n\n>From a\n>>From b\nfrom c\n\n".to_vec()
        );
    }
}
