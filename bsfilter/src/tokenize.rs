//! Tokens: what a decoded message is made of, for the filter.
//!
//! A token is a string with no white space or control characters. Body words stand alone; tokens
//! from elsewhere carry a tag and a colon, the same categories the original
//! bsfilter uses (so `--export-*` maps onto its `LANG CATEGORY TOKEN COUNT`
//! lines):
//!
//! | source | token |
//! |---|---|
//! | body word | `viagra` (lower-cased) |
//! | header field `NAME` | `subject:viagra`, `from:example.com` |
//! | URL, link target, host or e-mail domain anywhere | `url:spam.example.net`, `url:example.net`, `url:buy` |
//! | attachment | `attachment:application/pdf`, `attachment:invoice`, `attachment:.pdf` |
//!
//! **Numbers.** A run of one to four digits is kept as it is (years,
//! prices, counts); a longer run becomes its shape, `num:N` with N its
//! length (phone numbers, order and tracking numbers are unique per message,
//! but "a 10-digit number" is evidence). Dotted numbers (`12.34`, IPv4
//! addresses, versions) are kept whole; an IPv4 address also yields its /24
//! prefix (`received:192.0.2`).
//!
//! **Length.** Words shorter than 2 or longer than [`MAX_WORD_BYTES`] are
//! dropped, as the original drops words of 20 characters or more.
//!
//! **Japanese** (and other CJK) runs go to a pluggable [`Segmenter`]; the
//! default is [`Bigram`].
//!
//! Each message yields a *set* of tokens: counts are "messages containing
//! the token", as Robinson's and Graham's formulas assume.

use unicode_normalization::UnicodeNormalization;

use crate::decode::DecodedMessage;

/// Longest word kept, in bytes (the original: fewer than 20 characters).
pub const MAX_WORD_BYTES: usize = 40;
/// Longest word kept, in characters.
const MAX_WORD_CHARS: usize = 19;

/// The original's default `--mark-in-token`.
pub const DEFAULT_MARK_IN_TOKEN: &str = "|!*'";
/// The original's default `--max-line`.
pub const DEFAULT_MAX_LINE: usize = 500;
/// The default `--refer-header`: the original's list (`ufrom` is the mbox
/// `From ` line, `charset` the charset parameters of Content-Type) plus the
/// sending software (`x-mailer`, `user-agent`: bulk-mail tools against mail
/// clients) and `message-id` (its host and shape tell the sending system).
/// Measured on all three evaluation settings, each improved (BENCHMARKS.md).
pub const DEFAULT_REFER_HEADERS: &[&str] = &[
    "ufrom",
    "from",
    "to",
    "cc",
    "subject",
    "reply-to",
    "return-path",
    "received",
    "content-transfer-encoding",
    "content-type",
    "charset",
    "content-disposition",
    "x-mailer",
    "user-agent",
    "message-id",
];

/// Headers never tokenized besides the mbox state headers
/// ([`crate::mbox::STATE_HEADERS`]): `Lines`, which readers recompute.
/// Learning either would make a message's tokens change when it is read
/// or moved.
const VOLATILE_HEADERS: &[&str] = &["lines"];

/// Splits a run of CJK text into tokens.
pub trait Segmenter: Send + Sync {
    /// Calls `emit` for every token of `run`, which holds only characters
    /// for which [`is_cjk`] is true.
    fn segment(&self, run: &str, emit: &mut dyn FnMut(&str));

    /// How much a token (tagged or not) counts as evidence when a message
    /// is scored: 1 unless the segmenter's tokens overlap, so that
    /// neighbouring tokens state the same characters.
    fn weight(&self, _token: &str) -> f64 {
        1.0
    }
}

/// The original bsfilter's `bigram` tokenizer, improved for hiragana: kanji
/// runs of one or two characters are a token, longer runs give their
/// bigrams; a katakana run (with `ー`) is one token; hiragana runs, which
/// the original drops, give their bigrams too (particles and endings carry
/// style: spam's `〜しませんか` is not a business letter's `〜いたします`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Bigram;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Han,
    Hiragana,
    Katakana,
}

fn script_of(c: char) -> Script {
    match c {
        '\u{3040}'..='\u{309F}' => Script::Hiragana,
        '\u{30A0}'..='\u{30FF}' | '\u{31F0}'..='\u{31FF}' | '\u{FF66}'..='\u{FF9F}' => Script::Katakana,
        _ => Script::Han,
    }
}

impl Segmenter for Bigram {
    fn segment(&self, run: &str, emit: &mut dyn FnMut(&str)) {
        let mut chars = run.char_indices().peekable();
        while let Some((start, first)) = chars.next() {
            let script = script_of(first);
            let mut end = start + first.len_utf8();
            let mut bounds = vec![start];
            while let Some(&(i, c)) = chars.peek() {
                if script_of(c) != script {
                    break;
                }
                bounds.push(i);
                end = i + c.len_utf8();
                chars.next();
            }
            let segment = &run[start..end];
            if script == Script::Katakana || bounds.len() <= 2 {
                emit(segment);
            } else {
                bounds.push(end);
                for w in bounds.windows(3) {
                    emit(&run[w[0]..w[2]]);
                }
            }
        }
    }

    /// ½ for two kanji or two hiragana: a run of n characters gives n − 1
    /// overlapping bigrams, so each character is stated twice, and the
    /// combination takes tokens for independent evidence — a Japanese
    /// sentence outweighed an English one of as many words about twice
    /// over. (A word of exactly two kanji, which is its own run, counts ½
    /// too: the database keeps tokens, not the runs they came from.)
    fn weight(&self, token: &str) -> f64 {
        let text = token.rsplit_once(':').map_or(token, |(_, text)| text);
        let mut chars = text.chars();
        match (chars.next(), chars.next(), chars.next()) {
            (Some(a), Some(b), None)
                if is_cjk(a) && is_cjk(b) && script_of(a) == script_of(b) && script_of(a) != Script::Katakana =>
            {
                0.5
            }
            _ => 1.0,
        }
    }
}

/// True for the characters handed to the [`Segmenter`]: kanji, kana and the
/// CJK iteration and prolonged-sound marks.
pub fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3005}' | '\u{3006}' | '\u{3007}' // 々 〆 〇
        | '\u{3040}'..='\u{30FF}'   // hiragana, katakana, ー
        | '\u{31F0}'..='\u{31FF}'   // katakana phonetic extensions
        | '\u{3400}'..='\u{4DBF}'   // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'   // CJK unified ideographs
        | '\u{F900}'..='\u{FAFF}'   // compatibility ideographs
        | '\u{FF66}'..='\u{FF9F}'   // half-width katakana
        | '\u{20000}'..='\u{2FA1F}')
}

/// Which header fields are tokenized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderSelection {
    All,
    /// Lower-cased names; empty means no headers (`--ignore-header`).
    Listed(Vec<String>),
}

impl HeaderSelection {
    fn includes(&self, name: &str) -> bool {
        match self {
            HeaderSelection::All => true,
            HeaderSelection::Listed(names) => names.iter().any(|n| n == name),
        }
    }
}

impl Default for HeaderSelection {
    fn default() -> Self {
        HeaderSelection::Listed(DEFAULT_REFER_HEADERS.iter().map(|s| s.to_string()).collect())
    }
}

/// What the tokenizer reads and how.
#[derive(Debug, Clone)]
pub struct TokenizerOptions {
    /// Characters besides letters and digits that belong to a word.
    pub mark_in_token: String,
    /// Body lines read, over all text parts (0 = all).
    pub max_line: usize,
    pub headers: HeaderSelection,
    /// Header names (lower case, ending in '-') whose fields are never read:
    /// verdict headers such as `x-spam-`.
    pub verdict_header_prefix: String,
    /// `--ignore-body`: only URLs and addresses of the body count.
    pub ignore_body: bool,
    /// `--ignore-plain-text-part`: when an HTML part exists, skip plain ones.
    pub ignore_plain_text_part: bool,
    /// Also a token for each pair of adjacent body words (`cheap~viagra`).
    pub word_pairs: bool,
    /// A token for each HTML start-tag name (`html:font`).
    pub html_tags: bool,
    /// Read only the last N `Received` fields (the hops nearest the
    /// sender; the first ones are the recipient's own relays, shared by
    /// all mail). 0 = all.
    pub received_hops: usize,
    /// The site's authserv-id (mtad's hostname): the first
    /// `Authentication-Results` field that names it gives tokens of its
    /// verdicts (`auth:dkim=pass:example.jp`). Fields naming another id
    /// are anyone's words and give none; `None`: no such tokens.
    pub auth_results_id: Option<String>,
}

impl Default for TokenizerOptions {
    fn default() -> Self {
        TokenizerOptions {
            mark_in_token: DEFAULT_MARK_IN_TOKEN.to_owned(),
            max_line: DEFAULT_MAX_LINE,
            headers: HeaderSelection::default(),
            verdict_header_prefix: "x-spam-".to_owned(),
            ignore_body: false,
            ignore_plain_text_part: false,
            word_pairs: false,
            html_tags: false,
            received_hops: 0,
            auth_results_id: None,
        }
    }
}

/// The set of tokens of one message, in the order they first appeared,
/// kept end to end in one string (one allocation per message, not one per
/// token).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSet {
    text: String,
    /// where each token ends in `text`
    ends: Vec<usize>,
}

impl TokenSet {
    /// De-duplicates `tokens`, dropping any that would break the
    /// one-token-per-field formats (export lines, `--show-tokens`): empty
    /// ones and ones with white space or control characters, which odd
    /// header values (a Content-Type of control bytes) can produce.
    pub fn from_unsorted(tokens: Vec<String>) -> TokenSet {
        let mut sink = TokenSink::new();
        for token in &tokens {
            sink.push(None, token);
        }
        sink.into_set()
    }
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        (0..self.ends.len()).map(|i| self.get(i))
    }
    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    /// A digest of the set, independent of how the message was encoded
    /// and of the order of its tokens (a sum of per-token hashes).
    pub fn digest(&self) -> u128 {
        self.iter().fold(0u128, |sum, t| {
            sum.wrapping_add(xxhash_rust::xxh3::xxh3_128(t.as_bytes()))
        })
    }
}

/// Whether `token` would break a one-token-per-field format: white space
/// or control characters.
fn breaks_field(token: &str) -> bool {
    if token.is_ascii() {
        token.bytes().any(|b| b == b' ' || b.is_ascii_control())
    } else {
        token.chars().any(|c| c.is_whitespace() || c.is_control())
    }
}

/// Collects the tokens of one message as they are found, each once: a
/// token already seen costs a hash and no copy (most of a message's tokens
/// repeat). Tokens that would break the one-token-per-field formats
/// (empty, white space, control characters — odd header values produce
/// them) are dropped here.
struct TokenSink {
    set: TokenSet,
    /// token hash → index in `set` of the first token with that hash
    index: rustc_hash::FxHashMap<u64, usize>,
    /// the token being built
    scratch: String,
    /// when recording word pairs: every token pushed, repeats included
    trail: Option<Vec<usize>>,
}

impl TokenSink {
    fn new() -> TokenSink {
        TokenSink {
            set: TokenSet {
                text: String::with_capacity(8192),
                ends: Vec::with_capacity(512),
            },
            index: rustc_hash::FxHashMap::with_capacity_and_hasher(512, Default::default()),
            scratch: String::with_capacity(64),
            trail: None,
        }
    }

    fn push(&mut self, tag: Option<&str>, token: &str) {
        self.push_with(tag, |s| s.push_str(token));
    }

    /// Pushes `token` lower-cased.
    fn push_lower(&mut self, tag: Option<&str>, token: &str) {
        if token.is_ascii() {
            self.push_with(tag, |s| {
                let start = s.len();
                s.push_str(token);
                s[start..].make_ascii_lowercase();
            });
        } else {
            self.push(tag, &token.to_lowercase());
        }
    }

    /// Pushes the token `write` appends to an empty buffer, after `tag:`.
    fn push_with(&mut self, tag: Option<&str>, write: impl FnOnce(&mut String)) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        if let Some(tag) = tag {
            scratch.push_str(tag);
            scratch.push(':');
        }
        let start = scratch.len();
        write(&mut scratch);
        if scratch.len() > start && !breaks_field(&scratch) {
            self.add(&scratch);
        }
        self.scratch = scratch;
    }

    fn add(&mut self, token: &str) {
        let hash = xxhash_rust::xxh3::xxh3_64(token.as_bytes());
        let at = match self.index.get(&hash) {
            Some(&i) if self.set.get(i) == token => Some(i),
            // a 64-bit collision: fall back to a scan
            Some(_) => self.set.iter().position(|t| t == token),
            None => None,
        };
        let at = at.unwrap_or_else(|| {
            let at = self.set.ends.len();
            self.index.entry(hash).or_insert(at);
            self.set.text.push_str(token);
            self.set.ends.push(self.set.text.len());
            at
        });
        if let Some(trail) = &mut self.trail {
            trail.push(at);
        }
    }

    fn into_set(self) -> TokenSet {
        self.set
    }
}

/// Turns decoded messages into token sets.
pub struct Tokenizer {
    options: TokenizerOptions,
    segmenter: Box<dyn Segmenter>,
}

impl Tokenizer {
    pub fn new(options: TokenizerOptions, segmenter: Box<dyn Segmenter>) -> Tokenizer {
        Tokenizer { options, segmenter }
    }

    /// A token's weight as evidence (see [`Segmenter::weight`]).
    pub fn weight(&self, token: &str) -> f64 {
        self.segmenter.weight(token)
    }

    /// Tokens of a message; `envelope_sender` is the mbox `From ` line's
    /// address when there is one (the original's `ufrom` header).
    pub fn tokenize(&self, message: &DecodedMessage, envelope_sender: Option<&str>) -> TokenSet {
        let mut out = TokenSink::new();
        if let Some(sender) = envelope_sender
            && self.options.headers.includes("ufrom")
        {
            self.text(sender, Some("ufrom"), &mut out);
        }
        if let Some(id) = &self.options.auth_results_id
            && let Some(field) = message
                .headers
                .iter()
                .find(|f| f.name == "authentication-results" && authserv_id(&f.value).eq_ignore_ascii_case(id))
        {
            auth_tokens(&field.value, &mut out);
        }
        let received = message.headers.iter().filter(|f| f.name == "received").count();
        let mut received_seen = 0;
        for field in &message.headers {
            if field.name == "received" {
                received_seen += 1;
                if self.options.received_hops > 0 && received - received_seen >= self.options.received_hops {
                    continue;
                }
            }
            self.header(&field.name, &field.value, &mut out);
        }
        let has_html = message.texts.iter().any(|t| t.from_html);
        let mut lines_left = if self.options.max_line == 0 {
            usize::MAX
        } else {
            self.options.max_line
        };
        for part in &message.texts {
            if lines_left == 0 {
                break;
            }
            if self.options.ignore_plain_text_part && has_html && !part.from_html {
                continue;
            }
            let mut text = part.text.as_str();
            let lines = text.lines().count();
            if lines > lines_left {
                let cut = text
                    .match_indices('\n')
                    .nth(lines_left - 1)
                    .map_or(text.len(), |(i, _)| i);
                text = &text[..cut];
                lines_left = 0;
            } else {
                lines_left -= lines;
            }
            if self.options.ignore_body {
                self.addresses_only(text, &mut out);
            } else if self.options.word_pairs {
                out.trail = Some(Vec::new());
                self.text(text, None, &mut out);
                let trail = out.trail.take().unwrap_or_default();
                push_word_pairs(&mut out, &trail);
            } else {
                self.text(text, None, &mut out);
            }
        }
        for link in &message.links {
            url_tokens(link, &mut out);
        }
        if self.options.html_tags {
            for tag in &message.html_tags {
                out.push(Some("html"), tag);
            }
        }
        for attachment in &message.attachments {
            out.push(Some("attachment"), &attachment.content_type);
            if let Some(name) = &attachment.file_name {
                if let Some((_, ext)) = name.rsplit_once('.')
                    && !ext.is_empty()
                    && ext.len() <= 8
                    && !ext.contains(char::is_whitespace)
                {
                    out.push_with(Some("attachment"), |s| {
                        s.push('.');
                        s.push_str(&ext.to_lowercase());
                    });
                }
                self.text(name, Some("attachment"), &mut out);
            }
        }
        out.into_set()
    }

    fn header(&self, name: &str, value: &str, out: &mut TokenSink) {
        if VOLATILE_HEADERS.contains(&name)
            || crate::mbox::STATE_HEADERS.contains(&name)
            || (!self.options.verdict_header_prefix.is_empty() && name.starts_with(&self.options.verdict_header_prefix))
        {
            return;
        }
        if name == "content-type" {
            // The original's pseudo-header `charset`.
            if self.options.headers.includes("charset")
                && let Some(charset) = value.split_whitespace().find_map(|a| a.strip_prefix("charset="))
            {
                self.text(charset, Some("charset"), out);
            }
        }
        if !self.options.headers.includes(name) {
            return;
        }
        if name == "received" {
            // Hosts and addresses are the evidence; the date after ';' and
            // the queue id are unique per message.
            let mut v = value;
            if let Some(i) = v.find(';') {
                v = &v[..i];
            }
            if let Some(i) = find_word(v, "id") {
                v = &v[..i];
            }
            self.text(v, Some("received"), out);
        } else {
            self.text(value, Some(name), out);
        }
    }

    /// `--ignore-body`: URLs and addresses only.
    fn addresses_only(&self, text: &str, out: &mut TokenSink) {
        let mut all = TokenSink::new();
        self.text(text, None, &mut all);
        for token in all.set.iter().filter(|t| t.starts_with("url:")) {
            out.add(token);
        }
    }

    /// Tokens of free text; `tag` prefixes every word token.
    fn text(&self, text: &str, tag: Option<&str>, out: &mut TokenSink) {
        // NFKC: full-width letters and digits become ASCII, half-width kana
        // full-width, ① becomes 1 — one token for what a reader sees as
        // one word. Most text is already normalised (all ASCII text is),
        // and the quick check costs a fraction of normalising.
        let normalized;
        let text = if text.is_ascii()
            || unicode_normalization::is_nfkc_quick(text.chars()) == unicode_normalization::IsNormalized::Yes
        {
            text
        } else {
            normalized = text.nfkc().collect::<String>();
            normalized.as_str()
        };
        spelled_out_words(text, tag, out);
        let marks = self.options.mark_in_token.as_str();
        // An ASCII character is a word character when it is a letter, a
        // digit or a mark: one bit each, no Unicode tables.
        let ascii_marks: u128 = marks.bytes().filter(u8::is_ascii).fold(0, |m, b| m | 1 << b);
        let is_word_byte = |b: u8| b.is_ascii_alphanumeric() || ascii_marks & (1 << (b & 127)) != 0;
        let is_word_char = |c: char| {
            if c.is_ascii() {
                is_word_byte(c as u8)
            } else {
                (c.is_alphanumeric() && !is_cjk(c)) || marks.contains(c)
            }
        };
        // marks that are also separators (`--mark-in-token .`) hide from
        // the scan below
        let marks_separate = marks.contains(['.', '-', '@', '_']);
        let bytes = text.as_bytes();
        let mut pos = 0;
        while pos < bytes.len() {
            let first = bytes[pos];
            if first.is_ascii() && !is_word_byte(first) {
                // white space and punctuation, most of what is not a word
                pos += 1;
                continue;
            }
            let rest = &text[pos..];
            let c = rest.chars().next().expect("pos is on a char boundary");
            if matches!(first, b'h' | b'H' | b'w' | b'W')
                && let Some(len) = url_at(rest, pos == 0 || !is_word_char(prev_char(text, pos)))
            {
                url_tokens(&rest[..len], out);
                pos += len;
            } else if is_cjk(c) {
                let len = rest.find(|c: char| !is_cjk(c)).unwrap_or(rest.len());
                self.segmenter.segment(&rest[..len], &mut |t| out.push(tag, t));
                pos += len;
            } else if is_word_char(c) {
                // A chunk: word characters joined by internal . - @ _
                let mut end = pos;
                let mut separators = Separators::default();
                while end < bytes.len() {
                    let ch = char_at(text, end);
                    if is_word_char(ch) {
                        end += ch.len_utf8();
                    } else if WORD_JOINERS.contains(&ch)
                        && end + 1 < bytes.len()
                        && is_word_char(char_at(text, end + 1))
                    {
                        separators.note(ch);
                        end += 1;
                    } else {
                        break;
                    }
                }
                let chunk = &text[pos..end];
                if marks_separate {
                    separators = Separators::of(chunk);
                }
                self.chunk(chunk, separators, tag, out);
                pos = end;
            } else {
                pos += c.len_utf8();
            }
        }
    }

    fn chunk(&self, chunk: &str, separators: Separators, tag: Option<&str>, out: &mut TokenSink) {
        if separators.at
            && let Some((local, domain)) = chunk.rsplit_once('@')
            && is_hostname(domain)
        {
            host_tokens(domain, out);
            if let Some(tag) = tag {
                // an address in a header: the whole address is evidence too
                if chunk.len() <= 64 {
                    out.push_lower(Some(tag), chunk);
                }
            }
            self.chunk(local, Separators::of(local), tag, out);
            return;
        }
        if separators.dot {
            if is_dotted_number(chunk) {
                if let Some(prefix) = ipv4_prefix(chunk) {
                    out.push(tag, prefix);
                }
                out.push(tag, chunk);
                return;
            }
            if is_hostname(chunk) {
                host_tokens(chunk, out);
                if tag.is_none() {
                    return;
                }
            }
        }
        if separators.any() {
            for word in chunk.split(WORD_JOINERS) {
                self.word(word.trim_matches('\''), tag, out);
            }
        } else {
            self.word(chunk.trim_matches('\''), tag, out);
        }
    }

    fn word(&self, word: &str, tag: Option<&str>, out: &mut TokenSink) {
        if word.len() < 2 && word.chars().next().is_none_or(|c| c.len_utf8() <= 1) {
            return;
        }
        if word.bytes().all(|b| b.is_ascii_digit()) {
            if word.len() <= 4 {
                out.push(tag, word);
            } else {
                out.push_with(tag, |s| {
                    s.push_str("num:");
                    s.push_str(&word.len().to_string());
                });
            }
            return;
        }
        if word.len() > MAX_WORD_BYTES || word.chars().count() > MAX_WORD_CHARS {
            return;
        }
        if let Some(plain) = unleet(word) {
            out.push_lower(tag, &plain);
        }
        out.push_lower(tag, word);
    }
}

/// The characters that join words into one chunk (`alice.smith@example`,
/// `fork-admin`): a chunk is read whole (a host, an address) and as its
/// words.
pub const WORD_JOINERS: [char; 4] = ['.', '-', '@', '_'];

/// Which of the [`WORD_JOINERS`] a chunk holds: a plain word (most
/// chunks) needs no splitting, and only a chunk with a dot can be a host name or a dotted number.
#[derive(Clone, Copy, Default)]
struct Separators {
    at: bool,
    dot: bool,
    other: bool,
}

impl Separators {
    fn note(&mut self, c: char) {
        match c {
            '@' => self.at = true,
            '.' => self.dot = true,
            _ => self.other = true,
        }
    }

    fn of(chunk: &str) -> Separators {
        let mut separators = Separators::default();
        for c in chunk.chars().filter(|c| WORD_JOINERS.contains(c)) {
            separators.note(c);
        }
        separators
    }

    fn any(self) -> bool {
        self.at || self.dot || self.other
    }
}

/// `v1agra` → `viagra`: a word of letters with a few digits or `@`/`$`
/// standing in for look-alike letters, read as the letters. Words that are
/// mostly digits (`b2b`, `mp3`, part numbers) are left alone.
fn unleet(word: &str) -> Option<String> {
    if !word
        .bytes()
        .any(|b| matches!(b, b'0' | b'1' | b'3' | b'4' | b'5' | b'@' | b'$'))
    {
        return None;
    }
    let letters = word.chars().filter(|c| c.is_alphabetic()).count();
    let stand_ins = word
        .chars()
        .filter(|c| matches!(c, '0' | '1' | '3' | '4' | '5' | '@' | '$'))
        .count();
    if stand_ins == 0
        || letters < 3
        || stand_ins * 3 > letters
        || word.chars().any(|c| c.is_ascii_digit() && !"01345".contains(c))
    {
        return None;
    }
    Some(
        word.chars()
            .map(|c| match c {
                '0' => 'o',
                '1' => 'i',
                '3' => 'e',
                '4' | '@' => 'a',
                '5' | '$' => 's',
                c => c,
            })
            .collect(),
    )
}

/// `F.R.E.E`, `F-R-E-E`, `F R E E`, `F¥.R¥.E`: three or more single letters
/// kept apart by one to two separator characters, as spam spells out words
/// to slip past filters, give the word they spell (`free`). Real text has
/// such runs only as initials (`U.S.A` → `usa`, harmless).
/// The authserv-id an `Authentication-Results` value opens with (RFC
/// 8601: before the first `;`, a version number after it allowed).
fn authserv_id(value: &str) -> &str {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("")
}

/// Tokens of the site's own verdicts: for each `method=result` (dkim,
/// spf, dmarc, arc…) one token of the verdict alone and one with the
/// domain it is about — the signing domain for DKIM (`header.d`, or
/// `header.i`'s), the envelope's for SPF, the From domain for DMARC. The
/// domain that signed is better evidence than any Received line: a
/// sender can write those, not pass for another domain.
fn auth_tokens(value: &str, out: &mut TokenSink) {
    for result in value.split(';').skip(1) {
        // comments in parentheses are the verifier's prose
        let mut plain = String::with_capacity(result.len());
        let mut depth = 0usize;
        for c in result.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ if depth == 0 => plain.push(c),
                _ => {}
            }
        }
        let mut words = plain.split_whitespace();
        let Some((method, verdict)) = words.next().and_then(|w| w.split_once('=')) else {
            continue;
        };
        let (method, verdict) = (method.to_ascii_lowercase(), verdict.to_ascii_lowercase());
        if method.is_empty() || verdict.is_empty() || method == "none" {
            continue;
        }
        out.add(&format!("auth:{method}={verdict}"));
        let domain = words.find_map(|w| {
            let (property, v) = w.split_once('=')?;
            let v = v.trim_matches('"');
            let domain = match property.to_ascii_lowercase().as_str() {
                "header.d" | "header.from" => v,
                "header.i" | "smtp.mailfrom" | "smtp.mail" => v.rsplit_once('@').map_or(v, |(_, d)| d),
                _ => return None,
            };
            (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
        });
        if let Some(domain) = domain {
            out.add(&format!("auth:{method}={verdict}:{domain}"));
        }
    }
}

fn spelled_out_words(text: &str, tag: Option<&str>, out: &mut TokenSink) {
    // ASCII text (most of it) is read as bytes, without UTF-8 decoding
    if text.is_ascii() {
        spelled_out_words_in(text.bytes().map(char::from), tag, out);
    } else {
        spelled_out_words_in(text.chars(), tag, out);
    }
}

fn spelled_out_words_in(mut chars: impl Iterator<Item = char>, tag: Option<&str>, out: &mut TokenSink) {
    #[derive(Clone, Copy, PartialEq)]
    enum Class {
        Letter,
        Separator,
        /// line ends and CJK: they end a run
        Other,
    }
    let class = |c: char| {
        if c.is_ascii() {
            if c.is_ascii_alphanumeric() {
                Class::Letter
            } else if c == '\n' || c == '\r' {
                Class::Other
            } else {
                Class::Separator
            }
        } else if is_cjk(c) {
            Class::Other
        } else if c.is_alphanumeric() {
            Class::Letter
        } else {
            Class::Separator
        }
    };
    let mut run = String::new();
    let mut letters = 0;
    // separators since the last single letter; None outside a run
    let mut gap: Option<usize> = None;
    let mut flush = |run: &mut String, letters: &mut usize| {
        if (3..=MAX_WORD_CHARS).contains(letters) {
            out.push_lower(tag, run);
        }
        run.clear();
        *letters = 0;
    };
    // each character is classified once, as it enters this window
    let mut prev = Class::Separator;
    let Some(mut c) = chars.next() else { return };
    let mut this = class(c);
    loop {
        let following = chars.next();
        let next = following.map_or(Class::Separator, class);
        match this {
            Class::Letter if prev != Class::Letter && next != Class::Letter => {
                // a single letter: continues the run after one or two separators
                if !matches!(gap, Some(1 | 2)) && letters > 0 {
                    flush(&mut run, &mut letters);
                }
                run.push(c);
                letters += 1;
                gap = Some(0);
            }
            Class::Separator if gap.is_some() => gap = gap.map(|g| g + 1),
            _ => {
                if letters > 0 {
                    flush(&mut run, &mut letters);
                }
                gap = None;
            }
        }
        prev = this;
        match following {
            Some(f) => (c, this) = (f, next),
            None => break,
        }
    }
    flush(&mut run, &mut letters);
}

/// Adds `a~b` for each two adjacent plain words in `trail`, the tokens of
/// a text in order (tagged tokens such as `url:…` are not words and break
/// no pair).
fn push_word_pairs(out: &mut TokenSink, trail: &[usize]) {
    let words: Vec<usize> = trail
        .iter()
        .copied()
        .filter(|&i| !out.set.get(i).contains(':'))
        .collect();
    for pair in words.windows(2) {
        let (first, second) = (pair[0], pair[1]);
        let token = format!("{}~{}", out.set.get(first), out.set.get(second));
        out.add(&token);
    }
}

/// The character at byte `pos` of `text`, a char boundary: an ASCII one
/// without UTF-8 decoding.
fn char_at(text: &str, pos: usize) -> char {
    match text.as_bytes()[pos] {
        b if b.is_ascii() => char::from(b),
        _ => text[pos..].chars().next().expect("pos is on a char boundary"),
    }
}

fn prev_char(text: &str, pos: usize) -> char {
    text[..pos].chars().next_back().unwrap_or(' ')
}

/// Byte offset of `word` in `text` as a whole word (ASCII case-insensitive).
fn find_word(text: &str, word: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    lower.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = lower[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = lower[i + word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric());
        before && after
    })
}

/// Length of the URL starting at the beginning of `s`, if one does.
fn url_at(s: &str, at_boundary: bool) -> Option<usize> {
    if !at_boundary {
        return None;
    }
    let starts =
        |prefix: &str| s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes());
    let skip = match s.as_bytes().first() {
        Some(b'h' | b'H') if starts("http://") => 7,
        Some(b'h' | b'H') if starts("https://") => 8,
        Some(b'w' | b'W') if starts("www.") => 0,
        _ => return None,
    };
    let len = s
        .char_indices()
        .skip(skip)
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c)))
        .map_or(s.len(), |(i, _)| i);
    // trailing punctuation belongs to the sentence, not the URL
    let url = s[..len].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '\'']);
    (url.len() > skip).then_some(url.len())
}

/// `url:` tokens of a URL or link target: its host (and parent domains) and
/// the words of its path.
fn url_tokens(url: &str, out: &mut TokenSink) {
    let lower = url.trim().to_lowercase();
    let rest = if let Some(i) = lower.find("://") {
        &lower[i + 3..]
    } else if let Some(addr) = lower.strip_prefix("mailto:") {
        addr
    } else {
        &lower[..]
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..host_end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next().unwrap_or(host);
    if is_hostname(host) || is_dotted_number(host) {
        host_tokens(host, out);
    }
    for word in rest[host_end..].split(|c: char| !c.is_alphanumeric()) {
        if (2..=MAX_WORD_CHARS).contains(&word.chars().count()) && !word.bytes().all(|b| b.is_ascii_digit()) {
            out.push(Some("url"), word);
        }
    }
}

/// The registered domain a host token stands for: `host_tokens` makes a
/// `url:` token of a host's name and of each of its parent domains, and
/// they all name one site — `url:mail.example.co.jp` and
/// `url:example.co.jp` give `example.co.jp` (by the Public Suffix List).
/// `None` for every other token. The scorer counts each site once per
/// message (see [`crate::score::RobinsonParams::one_token_per_site`]).
pub fn site_of(token: &str) -> Option<&str> {
    let host = token.strip_prefix("url:")?;
    if !host.contains('.') || is_dotted_number(host) {
        return None;
    }
    // a host that is itself a public suffix (`co.jp`) stands for itself
    Some(psl::domain_str(host).unwrap_or(host))
}

/// Header fields whose words name where a message is addressed and who
/// answers for it: a mailing list's name is in `To` (or `Cc`), in the
/// bounce address of `Return-Path` and in the words of its URLs
/// (`to:fork`, `return-path:fork`, `url:fork` from `…/listinfo/fork`).
const ADDRESSING_TAGS: &[&str] = &["to", "cc", "return-path", "url"];

/// The name a token of the addressing fields stands for: its text, so the
/// same word in `To`, `Cc`, `Return-Path` and a URL is one name (`fork`
/// for `to:fork`, `return-path:fork` and `url:fork`). `None` for hosts
/// (see [`site_of`]) and for every other token. The scorer counts each
/// name once per message (see
/// [`crate::score::RobinsonParams::one_token_per_name`]).
pub fn name_of(token: &str) -> Option<&str> {
    let (tag, text) = token.split_once(':')?;
    (ADDRESSING_TAGS.contains(&tag) && site_of(token).is_none()).then_some(text)
}

/// `url:` tokens of a host: the name itself and each parent domain of two
/// or more labels; for an IPv4 address, the address and its /24.
fn host_tokens(host: &str, out: &mut TokenSink) {
    let host = host.trim_end_matches('.').to_lowercase();
    if host.len() > 253 {
        return;
    }
    if is_dotted_number(&host) {
        if let Some(prefix) = ipv4_prefix(&host) {
            out.push(Some("url"), prefix);
        }
        out.push(Some("url"), &host);
        return;
    }
    let mut suffix = host.as_str();
    for _ in 0..4 {
        if suffix.matches('.').count() == 0 {
            break;
        }
        out.push(Some("url"), suffix);
        match suffix.split_once('.') {
            Some((_, parent)) => suffix = parent,
            None => break,
        }
    }
}

/// `a.b` where every label is letters, digits and '-', and the last is
/// alphabetic: looks like a domain name.
fn is_hostname(s: &str) -> bool {
    let mut labels = s.split('.');
    let Some(tld) = s.rsplit('.').next() else { return false };
    s.contains('.')
        && tld.len() >= 2
        && tld.bytes().all(|b| b.is_ascii_alphabetic())
        && labels.all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// `\d[\d.]*\.[\d.]*\d`: prices, versions, IPv4 addresses.
fn is_dotted_number(s: &str) -> bool {
    s.len() >= 3
        && s.contains('.')
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.as_bytes()[0].is_ascii_digit()
        && s.as_bytes()[s.len() - 1].is_ascii_digit()
        && !s.contains("..")
}

fn ipv4_prefix(s: &str) -> Option<&str> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() == 4 && parts.iter().all(|p| p.len() <= 3 && p.parse::<u8>().is_ok()) {
        let cut = s.rfind('.')?;
        Some(&s[..cut])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_tokens_name_their_site() {
        for (token, site) in [
            ("url:mail.example.co.jp", Some("example.co.jp")),
            ("url:example.co.jp", Some("example.co.jp")),
            ("url:co.jp", Some("co.jp")),
            ("url:a.b.c.d.example.com", Some("example.com")),
            ("url:user.github.io", Some("user.github.io")),
            ("url:192.0.2.7", None),
            ("url:192.0.2", None),
            ("received:mail.example.com", None),
            ("url:index", None),
            ("example.com", None),
            ("", None),
        ] {
            assert_eq!(site_of(token), site, "{token}");
        }
        let mut tokens = TokenSink::new();
        host_tokens("MX1.Mail.Example.CO.JP", &mut tokens);
        let sites: Vec<_> = tokens
            .into_set()
            .iter()
            .map(|t| site_of(t).map(str::to_owned))
            .collect();
        // the public suffix, a token of its own, is no site's
        let example = Some("example.co.jp".to_owned());
        assert_eq!(
            sites,
            [example.clone(), example.clone(), example, Some("co.jp".to_owned())]
        );
    }

    #[test]
    fn a_list_name_in_the_addressing_fields_is_one_name() {
        for (token, name) in [
            ("to:fork", Some("fork")),
            ("cc:fork", Some("fork")),
            ("return-path:fork", Some("fork")),
            ("url:fork", Some("fork")),
            ("to:fork@xent.com", Some("fork@xent.com")),
            ("url:xent.com", None), // a host: its site is the fact
            ("from:fork", None),
            ("received:fork", None),
            ("subject:fork", None),
            ("fork", None),
            ("", None),
        ] {
            assert_eq!(name_of(token), name, "{token}");
        }
        let tokens = tokens_of(
            "To: FoRK <fork@xent.com>\nReturn-Path: <fork-admin@xent.com>\nSubject: hi\n\n\
             http://xent.com/mailman/listinfo/fork\n",
        );
        let mut tags_naming_fork: Vec<_> = tokens
            .iter()
            .filter(|t| name_of(t) == Some("fork"))
            .map(|t| t.split_once(':').unwrap().0)
            .collect();
        tags_naming_fork.sort_unstable();
        assert_eq!(tags_naming_fork, ["return-path", "to", "url"]);
    }

    /// The two defects found in real Japanese mail: a Subject of Shift_JIS
    /// bytes labelled ISO-2022-JP gave no Japanese `subject:` tokens, and
    /// a text/plain part sent as an attachment gave only its name.
    #[test]
    fn japanese_mislabelled_subject_and_attached_text() {
        use encoding_rs::{ISO_2022_JP, SHIFT_JIS};
        let b64 = crate::charset::tests::base64;
        let subject = b64(&SHIFT_JIS.encode("未承諾広告").0);
        let attached = b64(&ISO_2022_JP.encode("出会い系サイトのご案内です").0);
        let raw = format!(
            "Subject: =?iso-2022-jp?B?{subject}?=\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n\
             --b\nContent-Type: text/plain; charset=us-ascii\n\nsee attached\n\
             --b\nContent-Type: text/plain; charset=iso-2022-jp; name=\"annai.txt\"\n\
             Content-Disposition: attachment; filename=\"annai.txt\"\nContent-Transfer-Encoding: base64\n\n{attached}\n--b--\n"
        );
        let tokens = tokens_of(&raw);
        assert!(has(&tokens, "subject:承諾"), "{tokens:?}");
        assert!(
            !tokens
                .iter()
                .any(|t| t.starts_with("subject:") && t.contains('\u{FFFD}'))
        );
        // the attachment's text, and its name as before
        assert!(has(&tokens, "出会"), "{tokens:?}");
        assert!(
            tokens
                .iter()
                .any(|t| t.starts_with("attachment:") && t.contains("annai")),
            "{tokens:?}"
        );
    }

    fn tokens_of(raw: &str) -> Vec<String> {
        tokens_with(&Tokenizer::new(TokenizerOptions::default(), Box::new(Bigram)), raw)
    }

    fn tokens_with(t: &Tokenizer, raw: &str) -> Vec<String> {
        t.tokenize(&DecodedMessage::parse(raw.as_bytes()), None)
            .iter()
            .map(str::to_owned)
            .collect()
    }

    fn has(tokens: &[String], t: &str) -> bool {
        tokens.iter().any(|x| x == t)
    }

    #[test]
    fn words_headers_urls_numbers() {
        let t = tokens_of(
            "From: Alice <alice@mail.example.com>\nSubject: Cheap VIAGRA now!!\nReceived: from relay.example.org (relay.example.org [192.0.2.7]) by mx.example.net; Tue, 1 Jan 2002 00:00:00 +0000\nX-Spam-Flag: YES\nStatus: RO\n\n\
             Buy cheap viagra at http://Spam.Example.net/buy/now.html, call 0123456789 or pay 12.34 in 2002. Let's go.\n",
        );
        for want in [
            "subject:cheap",
            "subject:viagra",
            "subject:now!!",
            "from:alice@mail.example.com",
            "url:mail.example.com",
            "url:example.com",
            "received:192.0.2.7",
            "received:192.0.2",
            "url:relay.example.org",
            "buy",
            "viagra",
            "url:spam.example.net",
            "url:example.net",
            "url:buy",
            "num:10",
            "12.34",
            "2002",
            "let's",
        ] {
            assert!(has(&t, want), "missing {want} in {t:?}");
        }
        // the date after ';' in Received, verdict and status headers: never
        assert!(
            !t.iter().any(|x| x.starts_with("received:") && x.contains("jan")),
            "{t:?}"
        );
        assert!(
            !t.iter().any(|x| x.starts_with("x-spam") || x.starts_with("status:")),
            "{t:?}"
        );
        // unique
        let mut sorted = t.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), t.len());
    }

    #[test]
    fn optional_word_pairs_and_html_tags() {
        let options = TokenizerOptions {
            word_pairs: true,
            html_tags: true,
            ..TokenizerOptions::default()
        };
        let t = Tokenizer::new(options, Box::new(Bigram));
        let m = "Subject: s\nContent-Type: text/html\n\n<html><body><font color=red>cheap pills</font> http://x.example/ now</body></html>\n";
        let tokens = tokens_with(&t, m);
        for want in ["cheap~pills", "pills~now", "html:font", "html:body"] {
            assert!(tokens.iter().any(|x| x == want), "missing {want} in {tokens:?}");
        }
        // off by default
        let plain = tokens_of(m);
        assert!(
            !plain.iter().any(|x| x.contains('~') || x.starts_with("html:")),
            "{plain:?}"
        );
    }

    #[test]
    fn the_sites_own_authentication_results_are_tokens() {
        let m = "Authentication-Results: mx.example.jp; dkim=pass (good signature) header.i=@news.example.org header.s=s1;\n \
                 spf=softfail (mx.example.jp: not designated) smtp.mailfrom=bounce@mailer.example;\n dmarc=pass header.from=news.example.org\n\
                 Authentication-Results: evil.example; dkim=pass header.d=bank.example\n\
                 Subject: s\n\nbody\n";
        let ours = Tokenizer::new(
            TokenizerOptions {
                auth_results_id: Some("MX.example.jp".into()),
                ..TokenizerOptions::default()
            },
            Box::new(Bigram),
        );
        let t = tokens_with(&ours, m);
        for token in [
            "auth:dkim=pass",
            "auth:dkim=pass:news.example.org",
            "auth:spf=softfail:mailer.example",
            "auth:dmarc=pass:news.example.org",
        ] {
            assert!(has(&t, token), "{token}: {t:?}");
        }
        // another id's field is anyone's words; the prose is no token
        assert!(
            !t.iter().any(|x| x.contains("bank.example") || x.contains("designated")),
            "{t:?}"
        );
        // off unless the site's id is given
        assert!(!tokens_of(m).iter().any(|x| x.starts_with("auth:")));
        // a field that only looks like ours (the id as a prefix) is not
        let other = m.replace("mx.example.jp;", "mx.example.jp.evil.example;");
        assert!(!tokens_with(&ours, &other).iter().any(|x| x.starts_with("auth:")));
    }

    #[test]
    fn received_hops_keeps_the_sender_side() {
        let m = "Received: from inner.example by mx.example\nReceived: from relay.example by inner.example\nReceived: from sender.example by relay.example\nSubject: s\n\nbody\n";
        let all = tokens_of(m);
        let t = Tokenizer::new(
            TokenizerOptions {
                received_hops: 1,
                ..TokenizerOptions::default()
            },
            Box::new(Bigram),
        );
        let last = tokens_with(&t, m);
        assert!(
            has(&all, "url:inner.example") && has(&all, "url:sender.example"),
            "{all:?}"
        );
        assert!(
            has(&last, "url:sender.example") && has(&last, "url:relay.example"),
            "{last:?}"
        );
        assert!(
            !has(&last, "url:inner.example") && !has(&last, "url:mx.example"),
            "{last:?}"
        );
    }

    #[test]
    fn normalisation_and_obfuscation() {
        let t = tokens_of(
            "Subject: ＦＲＥＥ ｶﾀｶﾅ\n\nGet F.R.E.E V1agra now, Ｆ￥．Ｒ￥．Ｅ money, C-H-E-A-P and U S A. mp3 b2b\n",
        );
        for want in [
            "subject:free",
            "subject:カタカナ",
            "free",
            "viagra",
            "v1agra",
            "cheap",
            "usa",
            "mp3",
            "b2b",
        ] {
            assert!(has(&t, want), "missing {want} in {t:?}");
        }
        // the full-width, yen-separated spelling gives its letters
        assert!(has(&t, "fre"), "{t:?}");
        // ordinary words are not glued together
        assert!(
            !t.iter().any(|x| x.starts_with("getf") || x.starts_with("nowm")),
            "{t:?}"
        );
        assert_eq!(unleet("b2b"), None);
        assert_eq!(unleet("mp3"), None);
        assert_eq!(unleet("pa$$word").as_deref(), Some("password"));
        assert_eq!(unleet("1a5e"), None, "too many stand-ins for the letters");
        assert_eq!(unleet("c1alis").as_deref(), Some("cialis"));
    }

    #[test]
    fn max_line_limits_body() {
        let body: String = (0..600).map(|i| format!("word{i:03}x\n")).collect();
        let t = tokens_of(&format!("Subject: s\n\n{body}"));
        assert!(has(&t, "word499x"));
        assert!(!has(&t, "word500x"));
    }

    #[test]
    fn bigram_segmenter() {
        let mut got = Vec::new();
        Bigram.segment("東京都庁へ行くコンピューター", &mut |t| {
            got.push(t.to_owned())
        });
        assert_eq!(got, ["東京", "京都", "都庁", "へ", "行", "く", "コンピューター"]);
        let mut got = Vec::new();
        Bigram.segment("ありがとうございます", &mut |t| got.push(t.to_owned()));
        assert_eq!(got[0], "あり");
        assert_eq!(got.len(), 9);
    }

    #[test]
    fn overlapping_bigrams_weigh_half() {
        // each character of a run is in two bigrams
        for token in ["東京", "京都", "subject:あり", "がと"] {
            assert_eq!(Bigram.weight(token), 0.5, "{token}");
        }
        // a katakana run, a lone character, a mixed or a longer token, a
        // Latin word: tokens of their own
        for token in [
            "コンピューター",
            "へ",
            "行く",
            "東京都庁",
            "viagra",
            "subject:free",
            "num:12",
        ] {
            assert_eq!(Bigram.weight(token), 1.0, "{token}");
        }
    }

    #[test]
    fn control_bytes_in_a_content_type_make_no_token() {
        let t = tokens_of("Content-Type: \0\x0b\0\n\nContent-Type: multipart/mixed; boundary=\"b\"\n\n");
        assert!(
            t.iter()
                .all(|x| !x.contains(|c: char| c.is_whitespace() || c.is_control())),
            "{t:?}"
        );
    }

    #[test]
    fn no_token_has_white_space() {
        let t = tokens_of("Subject: a\tb c\n\nfoo\u{3000}bar http://x.example/a%20b ＦＲＥＥ\n");
        assert!(t.iter().all(|x| !x.contains(char::is_whitespace)), "{t:?}");
    }
}
