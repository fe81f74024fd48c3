//! One log line of mtad or imapd, as their tracing layer writes it:
//!
//! ```text
//! 2026-12-02T01:48:30.243615Z  INFO refused event="reject" cause="dnsbl:zen.example" client=192.0.2.1 …
//! ```
//!
//! optionally behind a journal or syslog prefix (`Dec 02 10:48:30 mx
//! mtad[812]: `). Sans-IO and allocation-free: bytes in, an [`Event`]
//! borrowing them out.
//!
//! Only a line whose message — the text between the level and
//! ` event="` — is plain (no `=`, no `"`) counts: every message the
//! programs log with an event is a fixed word of theirs, and the clients'
//! words (a HELO name, a sender, a remote server's reply) come only as
//! field values, after a `name=`. So a client that puts ` event="accepted"`
//! into its HELO or its AUTH user name forges nothing. Of each field the
//! first is taken: the programs log the figures the report reads before
//! any field that holds a client's words.

use memchr::memmem;

use super::time;

/// What one line is to the report.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    /// A line with an event: when (Unix seconds, UTC) and what.
    Event(i64, Event<'a>),
    /// A line of the programs that carries no event (start-up, errors):
    /// understood, not counted.
    Other,
    /// Not a line of theirs (no timestamp and level where they belong,
    /// or an event without the fields it needs).
    NotUnderstood,
}

/// The events the report counts (the names the programs log them by).
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// mtad queued a message for delivery (`event="accepted"`).
    Accepted { size: u64 },
    /// mtad refused: at connect, a command or a recipient (`event="reject"`).
    Rejected { cause: &'a [u8] },
    /// mtad's policy accepted a message and dropped it (`event="discard"`).
    Discarded,
    /// mtad's virus stage found one or more viruses in a message.
    Virus { names: &'a [u8] },
    /// A local delivery filed a message (`event="delivered"`, mtad's
    /// delivery helper running lda's delivery).
    Delivered { user: &'a [u8], verdict: &'a [u8] },
    /// imapd: a login over IMAP or POP3 (`event="login"`).
    Login { pop3: bool, client: &'a [u8] },
}

static EVENT: std::sync::LazyLock<memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memmem::Finder::new(b" event=\""));

/// Reads one line (without its line end).
pub fn parse(line: &[u8]) -> Line<'_> {
    let Some((at, seconds)) = time::find_timestamp(line) else {
        return Line::NotUnderstood;
    };
    // past the timestamp: spaces, the level, spaces, the message
    let rest = &line[at..];
    let rest = trim_spaces(rest);
    let level_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    if !matches!(&rest[..level_end], b"TRACE" | b"DEBUG" | b"INFO" | b"WARN" | b"ERROR") {
        return Line::NotUnderstood;
    }
    let rest = trim_spaces(&rest[level_end..]);
    let Some(event_at) = EVENT.find(rest) else {
        return Line::Other;
    };
    let message = &rest[..event_at];
    if message.iter().any(|&b| b == b'=' || b == b'"') {
        return Line::Other;
    }
    let fields = Fields(&rest[event_at + 1..]);
    let Some(name) = fields.get(b"event") else {
        return Line::NotUnderstood;
    };
    let event = match name {
        b"accepted" => fields.number(b"size").map(|size| Event::Accepted { size }),
        b"reject" => fields.get(b"cause").map(|cause| Event::Rejected { cause }),
        b"discard" => Some(Event::Discarded),
        b"virus" => fields.get(b"viruses").map(|names| Event::Virus { names }),
        b"delivered" => match (fields.get(b"user"), fields.get(b"verdict")) {
            (Some(user), Some(verdict)) => Some(Event::Delivered { user, verdict }),
            _ => None,
        },
        b"login" => match (fields.get(b"service"), fields.get(b"client")) {
            (Some(service @ (b"imap" | b"pop3")), Some(client)) => Some(Event::Login {
                pop3: service == b"pop3",
                client,
            }),
            _ => None,
        },
        // events the report has no figure for (deferred, done, greylist…)
        _ => return Line::Other,
    };
    match event {
        Some(event) => Line::Event(seconds, event),
        None => Line::NotUnderstood,
    }
}

fn trim_spaces(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| c != b' ').unwrap_or(b.len());
    &b[start..]
}

/// The `name=value …` part of a line.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    /// The first field called `name`: a quoted value without its quotes
    /// (escapes left as written), a list with its brackets, or a bare
    /// value up to the next space.
    fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        let mut rest = self.0;
        loop {
            let eq = memchr::memchr(b'=', rest)?;
            let key = &rest[..eq];
            let after = &rest[eq + 1..];
            let (value, next) = match after.first() {
                Some(b'"') => {
                    let end = closing_quote(&after[1..])?;
                    (&after[1..1 + end], &after[(2 + end).min(after.len())..])
                }
                // a Debug list (`viruses=["A", "B"]`): to its `]`
                Some(b'[') => {
                    let end = closing_bracket(after)?;
                    (&after[..=end], &after[end + 1..])
                }
                _ => {
                    let end = memchr::memchr(b' ', after).unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            if key == name {
                return Some(value);
            }
            rest = trim_spaces(next);
        }
    }

    fn number(&self, name: &[u8]) -> Option<u64> {
        let v = self.get(name)?;
        if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
    }
}

/// Where the `"` that ends a Debug-quoted value is (backslash escapes
/// skipped).
fn closing_quote(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Where the `]` that ends a Debug list is (quoted strings skipped).
fn closing_bracket(b: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => i += 2 + closing_quote(&b[i + 1..])?,
            b']' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCEPTED: &[u8] = b"2026-12-02T01:48:30.243615Z  INFO queued event=\"accepted\" queue_id=0A1B size=2048 nrcpt=1 hold=false client=mx.example[192.0.2.1] helo=mx.example from=<a@example.org>";

    #[test]
    fn the_events() {
        assert_eq!(
            parse(ACCEPTED),
            Line::Event(1_796_176_110, Event::Accepted { size: 2048 })
        );
        let line = b"2026-12-02T01:48:30Z  INFO refused event=\"reject\" cause=\"dnsbl:zen.example\" client=192.0.2.1 reply=554 5.7.1 Service unavailable";
        assert_eq!(
            parse(line),
            Line::Event(
                1_796_176_110,
                Event::Rejected {
                    cause: b"dnsbl:zen.example"
                }
            )
        );
        let line =
            b"2026-12-02T01:48:30.1Z  INFO logged in event=\"login\" service=\"pop3\" client=10.0.0.7 user=\"alice\"";
        assert_eq!(
            parse(line),
            Line::Event(
                1_796_176_110,
                Event::Login {
                    pop3: true,
                    client: b"10.0.0.7"
                }
            )
        );
        let line = b"2026-12-02T01:48:30.1Z  INFO filed event=\"delivered\" queue_id=0A verdict=\"spam\" probability=0.99 user=\"al \\\"x\\\" ice\" mailbox=\"/m\"";
        assert_eq!(
            parse(line),
            Line::Event(
                1_796_176_110,
                Event::Delivered {
                    user: b"al \\\"x\\\" ice",
                    verdict: b"spam"
                }
            )
        );
    }

    #[test]
    fn behind_a_journal_prefix() {
        let mut line = b"Dec 02 10:48:30 mx mtad[812]: ".to_vec();
        line.extend_from_slice(ACCEPTED);
        assert_eq!(parse(&line), parse(ACCEPTED));
    }

    #[test]
    fn what_is_not_counted() {
        assert_eq!(parse(b"2026-12-02T01:48:30Z  INFO ready"), Line::Other);
        assert_eq!(
            parse(b"2026-12-02T01:48:30Z  INFO deferred event=\"deferred\" queue_id=1"),
            Line::Other
        );
        for junk in [
            &b""[..],
            b"hello",
            b"2026-12-02 INFO x",
            b"2026-12-02T01:48:30Z  LOUD queued event=\"accepted\" size=1",
        ] {
            assert_eq!(parse(junk), Line::NotUnderstood, "{}", String::from_utf8_lossy(junk));
        }
        // an event without the field its figure needs
        assert_eq!(
            parse(b"2026-12-02T01:48:30Z  INFO queued event=\"accepted\" size=12x"),
            Line::NotUnderstood
        );
    }

    proptest::proptest! {
        #[test]
        fn no_line_breaks_it(
            prefix in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            fields in "( ?[a-z_]{0,8}=(\"[^\"]{0,12}\"?|\\[[^\\]]{0,12}\\]?|[a-z0-9.]{0,8})){0,6}",
            event in "(accepted|reject|discard|virus|delivered|login|x)",
        ) {
            // arbitrary bytes, and a well-formed start with any fields after
            let _ = parse(&prefix);
            let line = format!("2026-12-02T01:48:30Z  INFO m event=\"{event}\"{fields}");
            let _ = parse(line.as_bytes());
            let mut cut = line.into_bytes();
            cut.extend_from_slice(&prefix);
            let _ = parse(&cut);
        }
    }

    #[test]
    fn a_client_cannot_forge_an_event() {
        // an AUTH user name holding a whole accepted line
        let line =
            b"2026-12-02T01:48:30Z  WARN AUTH failed: Rejected client=192.0.2.9 user=x event=\"accepted\" size=999";
        assert_eq!(parse(line), Line::Other);
        // a sender holding a second size, after the real one
        let line = b"2026-12-02T01:48:30Z  INFO queued event=\"accepted\" queue_id=1 size=10 nrcpt=1 hold=false client=a[192.0.2.9] helo=x from=<\"x size=999\"@a>";
        assert_eq!(parse(line), Line::Event(1_796_176_110, Event::Accepted { size: 10 }));
    }
}
