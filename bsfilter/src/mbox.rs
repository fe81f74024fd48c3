//! The mbox format as mutt, Dovecot, procmail and UW-IMAP share it — the
//! one implementation every program of the toolkit uses (bsfilter's
//! `--mbox`, lda's appends, imapd's folders).
//!
//! A message is stored as its `From ` line (envelope sender and asctime
//! date), the message with mboxrd quoting (a line matching `>*From ` gains
//! one `>`), and one `\n` that ends it: the empty line between messages
//! when the message ends with a newline, the end of its last line when it
//! does not. Reading undoes exactly that, so every message — NUL bytes,
//! CRLF, no final newline, body lines starting `From ` or `>From ` — reads
//! back as the bytes that were delivered.
//!
//! A message starts at a `From_` line: a line beginning `From `, then the
//! sender, then an asctime date (mutt's `is_from` test), at the start of
//! the file or of any line. Writers quote every body line that starts
//! `From `, and a body line that happens to look like an envelope is
//! quoted too, so no body line can split a message; text such as `From
//! here on…` in a file another program wrote unquoted has no date and
//! splits nothing either.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::time::UtcTime;

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

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

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

/// The date of a `From ` line (its asctime date; a time zone after it,
/// as some writers add, is ignored), as Unix seconds.
pub fn from_line_date(line: &[u8]) -> Option<i64> {
    let line = std::str::from_utf8(line.strip_prefix(b"From ")?).ok()?;
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    // sender, then: weekday month day hh:mm[:ss] [zone…] year [zone…]
    let at = words.iter().skip(1).position(|w| MONTHS.contains(w))? + 1;
    if !DAYS.contains(words.get(at - 1)?) || at < 2 {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == words[at])? as i64 + 1;
    let day: i64 = words.get(at + 1)?.parse().ok().filter(|d| (1..=31).contains(d))?;
    let mut hms = words.get(at + 2)?.split(':').map(|p| p.parse::<i64>());
    let (h, m) = (hms.next()?.ok()?, hms.next()?.ok()?);
    let s = hms.next().unwrap_or(Ok(0)).ok()?;
    let year: i64 = words
        .get(at + 3..)?
        .iter()
        .take(3)
        .find_map(|w| w.parse().ok().filter(|y| (1900..10000).contains(y)))?;
    Some(crate::time::days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + s)
}

/// Whether `line` (from a line start, its newline optional) starts a
/// message: `From `, a sender, an asctime date.
pub fn is_from_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    from_line_date(line).is_some()
}

/// True when `line` (from a line start) must be quoted: `>*From `.
fn needs_quote(line: &[u8]) -> bool {
    let unquoted = line.iter().position(|&b| b != b'>').map_or(&[][..], |i| &line[i..]);
    unquoted.starts_with(b"From ")
}

/// Appends the stored form of `message` (after `from_line`, which ends
/// with its newline) to `out`.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored<'a> {
    /// Byte offset of its `From ` line in the file.
    pub offset: usize,
    /// The `From ` line, without its newline; empty for bytes before the
    /// first one (a plain message given as an mbox, or a damaged start).
    pub from_line: &'a [u8],
    /// The message as stored: quoting kept, the separating `\n` not.
    pub raw: &'a [u8],
}

impl<'a> Stored<'a> {
    /// The message as delivered (quoting undone).
    pub fn message(&self) -> Vec<u8> {
        let mut message = Vec::with_capacity(self.raw.len());
        for line in self.raw.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b">") && needs_quote(line) {
                message.extend_from_slice(&line[1..]);
            } else {
                message.extend_from_slice(line);
            }
        }
        message
    }

    /// The envelope sender of the `From ` line.
    pub fn envelope_sender(&self) -> Option<&'a str> {
        envelope_sender(self.from_line)
    }
}

/// The envelope sender of a `From ` line.
pub fn envelope_sender(from_line: &[u8]) -> Option<&str> {
    let line = std::str::from_utf8(from_line.strip_prefix(b"From ")?).ok()?;
    line.split_whitespace().next()
}

/// Splits an mbox into its messages. Every byte of `data` lands in one
/// message, its `From ` line or a separator.
pub fn split(data: &[u8]) -> Vec<Stored<'_>> {
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i + 1);
        if data[pos..].starts_with(b"From ") && is_from_line(&data[pos..end]) {
            starts.push(pos);
        }
        pos = end;
    }
    let mut messages = Vec::with_capacity(starts.len() + 1);
    if starts.first().is_none_or(|&s| s > 0) && !data.is_empty() {
        let end = starts.first().copied().unwrap_or(data.len());
        let raw = &data[..end];
        messages.push(Stored {
            offset: 0,
            from_line: b"",
            raw: if starts.is_empty() {
                raw
            } else {
                raw.strip_suffix(b"\n").unwrap_or(raw)
            },
        });
    }
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(data.len());
        let chunk = &data[start..end];
        let line_end = memchr::memchr(b'\n', chunk).map_or(chunk.len(), |p| p + 1);
        let from_line = chunk[..line_end].strip_suffix(b"\n").unwrap_or(&chunk[..line_end]);
        let body = &chunk[line_end..];
        messages.push(Stored {
            offset: start,
            from_line,
            // the one newline that ends every stored message
            raw: body.strip_suffix(b"\n").unwrap_or(body),
        });
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const FROM: &str = "From s@example.com Thu Jan  1 00:00:00 1970\n";

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
        assert_eq!(
            from_line_date(b"From a@b Sat Nov 28 01:02:03 2026"),
            Some(1_795_827_723)
        );
        assert_eq!(from_line_date(b"From a@b Sat Nov 28 01:02 2026"), Some(1_795_827_720));
        assert_eq!(
            from_line_date(b"From a@b Sat Nov 28 01:02:03 2026 +0900"),
            Some(1_795_827_723)
        );
        assert_eq!(
            from_line_date(b"From a@b Sat Nov 28 01:02:03 JST 2026"),
            Some(1_795_827_723)
        );
        for not_one in [
            &b"From here on, all is well"[..],
            b"From ",
            b"From Sat Nov 28 01:02:03 2026",
            b"From a@b Nov 28 01:02:03 2026",
            b"From a@b Sat Nov 99 01:02:03 2026",
            b"From: a@b",
        ] {
            assert!(!is_from_line(not_one), "{}", String::from_utf8_lossy(not_one));
        }
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
            b"Subject: an envelope in the body\n\nFrom a@b Sat Nov 28 01:02:03 2026\n",
        ];
        let mut file = Vec::new();
        for m in &messages {
            encode(FROM, m, &mut file);
        }
        let parsed = split(&file);
        assert_eq!(parsed.len(), messages.len());
        for (p, m) in parsed.iter().zip(&messages) {
            assert_eq!(&p.message()[..], *m, "{:?}", String::from_utf8_lossy(m));
            assert_eq!(p.from_line, FROM.trim_end().as_bytes());
            assert_eq!(p.envelope_sender(), Some("s@example.com"));
        }
    }

    #[test]
    fn quoting_is_mboxrd() {
        let mut out = Vec::new();
        encode(FROM, b"X: y\n\nFrom a\n>From b\nfrom c\n", &mut out);
        assert_eq!(
            out,
            [FROM.as_bytes(), b"X: y\n\n>From a\n>>From b\nfrom c\n\n"].concat()
        );
    }

    #[test]
    fn other_writers_files() {
        // procmail / mutt: an empty line between messages, unquoted text
        // that merely starts "From " in a body
        let data = b"From a@example.com Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\n\nFrom here is not a separator\n\nFrom b@example.org Mon Jan  1 00:00:01 2024\nSubject: two\n\n>From quoted\n\n";
        let m = split(data);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].envelope_sender(), Some("a@example.com"));
        assert_eq!(m[0].raw, b"Subject: one\n\nbody\n\nFrom here is not a separator\n");
        assert_eq!(m[1].envelope_sender(), Some("b@example.org"));
        assert_eq!(m[1].raw, b"Subject: two\n\n>From quoted\n");
        assert_eq!(m[1].message(), b"Subject: two\n\nFrom quoted\n");
        // a plain message, and leading bytes before the first From line
        assert_eq!(split(b"Subject: x\n\nhi\n").len(), 1);
        assert_eq!(split(b"Subject: x\n\nhi\n")[0].from_line, b"");
        assert_eq!(split(b"Subject: x\n\nhi\n")[0].raw, b"Subject: x\n\nhi\n");
        let with_junk = [&b"junk\n\n"[..], &data[..]].concat();
        let m = split(&with_junk);
        assert_eq!((m.len(), m[0].from_line, m[0].raw), (3, &b""[..], &b"junk\n"[..]));
        assert!(split(b"").is_empty());
    }

    use proptest::strategy::Strategy;

    proptest::proptest! {
        /// Any messages, stored and split again, come back byte for byte,
        /// one for one: no body line, however it starts, splits a message.
        #[test]
        fn arbitrary_messages_round_trip(
            messages in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::prop_oneof![
                        proptest::strategy::Just(b"From a@b Sat Nov 28 01:02:03 2026\n".to_vec()),
                        proptest::strategy::Just(b">From x\n".to_vec()),
                        proptest::strategy::Just(b"\n".to_vec()),
                        proptest::strategy::Just(b"\r\n".to_vec()),
                        proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..20),
                    ],
                    0..8,
                ).prop_map(|parts| parts.concat()),
                1..6,
            )
        ) {
            let mut file = Vec::new();
            for m in &messages {
                encode(FROM, m, &mut file);
            }
            let parsed = split(&file);
            proptest::prop_assert_eq!(parsed.len(), messages.len());
            for (p, m) in parsed.iter().zip(&messages) {
                proptest::prop_assert_eq!(&p.message(), m);
            }
        }
    }
}
