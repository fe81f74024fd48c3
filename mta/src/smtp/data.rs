//! The message after DATA (dot-stuffed, ended by `<CR><LF>.<CR><LF>`) and
//! after BDAT (chunks of a stated size), turned into the message as the
//! queue stores it: lines ending in `\n`.
//!
//! Ours and strict, not smtp-proto's receiver: measured here, that one
//! passes bare CR and LF into the message and takes `\r\n.\r\r\n` as the
//! end of data — the ambiguity behind SMTP smuggling (a second message
//! hidden in the first, ended differently by two servers). Here the end
//! of data is exactly `<CR><LF>.<CR><LF>`, as RFC 5321 says and Postfix
//! 3.9 requires: `<LF>.<LF>`, `<LF>.<CR><LF>`, `<CR><LF>.<LF>`,
//! `<CR>.<CR>` and the rest are message content, so one DATA is never two
//! messages. A line ending in a bare LF is either taken as if it ended in
//! CRLF ([`BareNewline::Normalize`], Postfix 3.9's default
//! `smtpd_forbid_bare_newline = normalize`) or refused
//! ([`BareNewline::Reject`]). A CR not before an LF is message content.
//!
//! Bytes are counted as received; past the size limit the rest is read
//! and dropped (the client is still sending it) and the message is
//! refused at its end.

/// What to do with a line that ends in LF without CR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareNewline {
    /// Take it as a line end (Postfix 3.9's default).
    Normalize,
    /// Refuse the message: `550 5.5.2` and the connection closes.
    Reject,
}

/// Why the message cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    /// More bytes than the size limit.
    TooBig,
    /// A bare LF, with [`BareNewline::Reject`].
    BareNewline,
}

/// What feeding bytes gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The end was not seen: more bytes are needed.
    More,
    /// The end of data was at `consumed` bytes into what was fed: the
    /// rest is the client's next command.
    Done { consumed: usize },
    /// Refused at once (a bare newline in reject mode): the connection
    /// closes, the rest of its bytes can't be framed.
    Refused(DataError),
}

/// Receives one message's DATA, streaming: memory is the message so far
/// (nothing once it is over the limit), never a line of it.
#[derive(Debug)]
pub struct DataReceiver {
    message: Vec<u8>,
    received: usize,
    limit: usize,
    bare: BareNewline,
    too_big: bool,
    /// No byte of the current line yet.
    at_line_start: bool,
    /// The current line is a dot and nothing more (so far).
    dot_only: bool,
    /// The line so far ends in a CR, held back until it is known whether
    /// an LF follows.
    pending_cr: bool,
    /// The line before ended in CRLF (the end of data must follow one).
    previous_crlf: bool,
}

impl DataReceiver {
    pub fn new(limit: usize, bare: BareNewline) -> DataReceiver {
        DataReceiver {
            message: Vec::new(),
            received: 0,
            limit,
            bare,
            too_big: false,
            at_line_start: true,
            dot_only: false,
            pending_cr: false,
            previous_crlf: true,
        }
    }

    /// Feeds the next bytes from the client.
    pub fn feed(&mut self, bytes: &[u8]) -> Feed {
        let mut pos = 0;
        while pos < bytes.len() {
            let newline = memchr::memchr(b'\n', &bytes[pos..]).map(|i| pos + i);
            let segment = &bytes[pos..newline.unwrap_or(bytes.len())];
            self.received = self.received.saturating_add(segment.len());
            self.line_bytes(segment);
            let Some(at) = newline else {
                break;
            };
            pos = at + 1;
            self.received = self.received.saturating_add(1);
            let crlf = std::mem::take(&mut self.pending_cr);
            if !crlf && self.bare == BareNewline::Reject {
                return Feed::Refused(DataError::BareNewline);
            }
            if crlf && self.dot_only && self.previous_crlf {
                return Feed::Done { consumed: pos };
            }
            self.emit(b"\n");
            self.previous_crlf = crlf;
            self.at_line_start = true;
            self.dot_only = false;
        }
        Feed::More
    }

    /// Bytes of the current line, before its LF.
    fn line_bytes(&mut self, mut segment: &[u8]) {
        if segment.is_empty() {
            return;
        }
        if std::mem::take(&mut self.at_line_start) && segment[0] == b'.' {
            // dot-stuffing: the line's first dot was added by the client
            self.dot_only = true;
            segment = &segment[1..];
            if segment.is_empty() {
                return;
            }
        }
        if std::mem::take(&mut self.pending_cr) {
            // a CR with more after it on the line: content
            self.dot_only = false;
            self.emit(b"\r");
        }
        let (body, cr) = match segment.split_last() {
            Some((b'\r', body)) => (body, true),
            _ => (segment, false),
        };
        if !body.is_empty() {
            self.dot_only = false;
            self.emit(body);
        }
        self.pending_cr = cr;
    }

    fn emit(&mut self, bytes: &[u8]) {
        if self.too_big {
            return;
        }
        if self.message.len() + bytes.len() > self.limit {
            self.too_big = true;
            self.message = Vec::new();
        } else {
            self.message.extend_from_slice(bytes);
        }
    }

    /// The message (lines ending in `\n`), once [`Feed::Done`].
    pub fn finish(self) -> Result<Vec<u8>, DataError> {
        if self.too_big {
            Err(DataError::TooBig)
        } else {
            Ok(self.message)
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.received
    }
}

/// Receives a message in BDAT chunks (RFC 3030): each chunk's bytes as
/// sent, no dot-stuffing; line ends as for DATA (CRLF, or a bare LF as the
/// policy says; a CR ending one chunk and an LF starting the next are one
/// CRLF).
#[derive(Debug)]
pub struct ChunkReceiver {
    message: Vec<u8>,
    received: usize,
    limit: usize,
    bare: BareNewline,
    /// The last chunk ended in a CR not yet known to end a line.
    pending_cr: bool,
    error: Option<DataError>,
}

impl ChunkReceiver {
    pub fn new(limit: usize, bare: BareNewline) -> ChunkReceiver {
        ChunkReceiver {
            message: Vec::new(),
            received: 0,
            limit,
            bare,
            pending_cr: false,
            error: None,
        }
    }

    /// Whether a chunk of `size` more bytes would pass the size limit
    /// (the chunk is then read and dropped).
    pub fn would_exceed(&self, size: usize) -> bool {
        self.received.saturating_add(size) > self.limit
    }

    /// Adds one chunk's bytes.
    pub fn add(&mut self, chunk: &[u8]) {
        self.received = self.received.saturating_add(chunk.len());
        if self.received > self.limit {
            self.error.get_or_insert(DataError::TooBig);
        }
        if self.error.is_some() {
            return;
        }
        for &b in chunk {
            match (self.pending_cr, b) {
                (true, b'\n') => {
                    self.message.push(b'\n');
                    self.pending_cr = false;
                }
                (true, _) => {
                    self.message.push(b'\r');
                    self.pending_cr = false;
                    self.push(b);
                }
                (false, _) => self.push(b),
            }
        }
    }

    fn push(&mut self, b: u8) {
        match b {
            b'\r' => self.pending_cr = true,
            b'\n' if self.bare == BareNewline::Reject => {
                self.error.get_or_insert(DataError::BareNewline);
            }
            _ => self.message.push(b),
        }
    }

    /// The message after the LAST chunk.
    pub fn finish(mut self) -> Result<Vec<u8>, DataError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.pending_cr {
            self.message.push(b'\r');
        }
        Ok(self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(bytes: &[u8], bare: BareNewline) -> (Feed, Result<Vec<u8>, DataError>) {
        let mut r = DataReceiver::new(1 << 20, bare);
        let feed = r.feed(bytes);
        (feed, r.finish())
    }

    #[test]
    fn dot_stuffing_and_the_one_end() {
        let (feed, message) = receive(
            b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n",
            BareNewline::Normalize,
        );
        assert_eq!(feed, Feed::Done { consumed: 32 });
        assert_eq!(message.unwrap(), b"Subject: x\n\n.leading dot\n");
        let (feed, message) = receive(b".\r\n", BareNewline::Normalize);
        assert_eq!(feed, Feed::Done { consumed: 3 });
        assert_eq!(message.unwrap(), b"");
    }

    #[test]
    fn smuggled_ends_are_content() {
        // every non-standard "end of data" is content of the one message
        for smuggle in [
            &b"\n.\n"[..],
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\r",
            b"\r\n.\r\r\n",
            b"\r\n\x00.\r\n",
        ] {
            let mut data = b"Subject: one\r\n\r\nbody".to_vec();
            data.extend_from_slice(smuggle);
            data.extend_from_slice(
                b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nsecond\r\n.\r\n",
            );
            let (feed, message) = receive(&data, BareNewline::Normalize);
            assert_eq!(feed, Feed::Done { consumed: data.len() }, "{smuggle:?}");
            let message = message.unwrap();
            let text = String::from_utf8_lossy(&message);
            assert!(text.contains("MAIL FROM:<evil@example.com>"), "{smuggle:?}: {text:?}");
            assert!(text.ends_with("second\n"), "{smuggle:?}: {text:?}");
        }
    }

    #[test]
    fn the_end_must_follow_a_crlf() {
        let (feed, message) = receive(b"a\n.\r\nb\r\n.\r\n", BareNewline::Normalize);
        assert_eq!(feed, Feed::Done { consumed: 11 });
        assert_eq!(message.unwrap(), b"a\n\nb\n", "LF . CRLF is a line of content");
    }

    #[test]
    fn bare_newlines_normalized_or_refused() {
        let (feed, message) = receive(b"a\nb\r\nc\rd\r\n.\r\n", BareNewline::Normalize);
        assert!(matches!(feed, Feed::Done { .. }));
        assert_eq!(message.unwrap(), b"a\nb\nc\rd\n");
        let (feed, _) = receive(b"a\r\nb\nc\r\n.\r\n", BareNewline::Reject);
        assert_eq!(feed, Feed::Refused(DataError::BareNewline));
    }

    #[test]
    fn any_split_of_the_input_gives_the_same_message() {
        let data = b"Subject: x\r\n\r\nline\r\n..dot\r\n\n.\n\r\nend\r\n.\r\nNEXT";
        let (_, whole) = receive(data, BareNewline::Normalize);
        for split in 0..data.len() {
            let mut r = DataReceiver::new(1 << 20, BareNewline::Normalize);
            let first = r.feed(&data[..split]);
            let feed = match first {
                Feed::More => match r.feed(&data[split..]) {
                    Feed::Done { consumed } => Feed::Done {
                        consumed: consumed + split,
                    },
                    other => other,
                },
                done => done,
            };
            assert_eq!(
                feed,
                Feed::Done {
                    consumed: data.len() - 4
                },
                "split at {split}"
            );
            assert_eq!(r.finish(), whole, "split at {split}");
        }
    }

    #[test]
    fn over_the_limit_is_read_to_its_end_and_refused() {
        let mut r = DataReceiver::new(100, BareNewline::Normalize);
        let big = [b"x".repeat(10_000).as_slice(), b"\r\n"].concat();
        for _ in 0..100 {
            assert_eq!(r.feed(&big), Feed::More);
        }
        assert_eq!(r.feed(b".\r\n"), Feed::Done { consumed: 3 });
        assert!(r.message.capacity() < 10_000, "nothing kept");
        assert_eq!(r.finish(), Err(DataError::TooBig));
    }

    #[test]
    fn chunks() {
        let mut c = ChunkReceiver::new(1000, BareNewline::Normalize);
        c.add(b"Subject: x\r");
        c.add(b"\n\r\nbody\r\n.\r\n");
        assert_eq!(
            c.finish().unwrap(),
            b"Subject: x\n\nbody\n.\n",
            "no dot-stuffing in BDAT"
        );
        let mut c = ChunkReceiver::new(10, BareNewline::Normalize);
        assert!(!c.would_exceed(10));
        c.add(b"0123456789abc");
        assert_eq!(c.finish(), Err(DataError::TooBig));
        let mut c = ChunkReceiver::new(100, BareNewline::Reject);
        c.add(b"a\nb");
        assert_eq!(c.finish(), Err(DataError::BareNewline));
    }

    proptest::proptest! {
        /// Arbitrary bytes: the receiver ends at the first CRLF.CRLF at a
        /// line start and nowhere else, and never panics.
        #[test]
        fn ends_only_at_crlf_dot_crlf(bytes in proptest::collection::vec(proptest::prop_oneof![
            proptest::strategy::Just(b'\r'), proptest::strategy::Just(b'\n'),
            proptest::strategy::Just(b'.'), proptest::arbitrary::any::<u8>()], 0..300)) {
            let mut r = DataReceiver::new(1 << 20, BareNewline::Normalize);
            let feed = r.feed(&bytes);
            // the reference: the first "\r\n.\r\n" whose "." starts a line
            let mut data = b"\r\n".to_vec();
            data.extend_from_slice(&bytes);
            let mut expected = None;
            let mut line_start = 2;
            for i in 2..data.len() {
                if data[i] == b'\n' {
                    if &data[line_start..=i] == b".\r\n" && data[line_start - 2..line_start] == *b"\r\n" {
                        expected = Some(i + 1 - 2);
                        break;
                    }
                    line_start = i + 1;
                }
            }
            match expected {
                Some(consumed) => proptest::prop_assert_eq!(feed, Feed::Done { consumed }),
                None => proptest::prop_assert_eq!(feed, Feed::More),
            }
        }
    }
}
