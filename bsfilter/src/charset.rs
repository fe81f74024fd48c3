//! Charsets that the labels get wrong: detection (chardetng) for
//! unlabelled and mislabelled text, and RFC 2047 words decoded the way
//! Japanese mail needs.
//!
//! mail-parser decodes what is labelled correctly. Japanese mail often is
//! not: 8-bit Shift_JIS labelled ISO-2022-JP (a 7-bit charset), raw 8-bit
//! text labelled us-ascii or not labelled at all, raw 8-bit bytes in
//! headers, and ISO-2022-JP encoded words split in the middle of a
//! character run (the escape state carries from one word to the next,
//! which decoding each word on its own loses — hence [`decode_header`],
//! written here rather than taken from mail-parser).

use encoding_rs::{EUC_JP, Encoding, ISO_2022_JP, SHIFT_JIS, UTF_8};

/// Labels under which 8-bit bytes cannot be what the label says.
fn label_excludes_8bit(label: Option<&str>) -> bool {
    match label.map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "us-ascii" | "ascii" | "ansi_x3.4-1968" | "7bit") => true,
        Some(l) => l.starts_with("iso-2022-"),
    }
}

/// Encodings worth overriding a plausible-looking single-byte decode for.
fn is_multibyte_east_asian(e: &'static Encoding) -> bool {
    e == SHIFT_JIS
        || e == EUC_JP
        || e == ISO_2022_JP
        || e == encoding_rs::GBK
        || e == encoding_rs::GB18030
        || e == encoding_rs::BIG5
        || e == encoding_rs::EUC_KR
}

/// Whether 8-bit bytes come in runs, as multi-byte characters do (EUC-JP,
/// Shift_JIS lead bytes, UTF-8), rather than alone, as Latin accents do.
fn high_byte_runs(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .filter(|w| w[0] >= 0x80 && w[1] >= 0x80)
        .take(4)
        .count()
        >= 4
}

/// The charset an HTML document declares in its first KiB
/// (`<meta charset=…>` or `<meta http-equiv=Content-Type content="…; charset=…">`).
fn html_meta_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(1024)];
    let lower = head.to_ascii_lowercase();
    let at = lower.windows(8).position(|w| w == b"charset=")? + 8;
    let value = &head[at..];
    let value = value
        .strip_prefix(b"\"")
        .or_else(|| value.strip_prefix(b"'"))
        .unwrap_or(value);
    let end = value
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || b"-_:.".contains(b)))
        .unwrap_or(value.len());
    // only from inside a tag
    if !lower[..at].contains(&b'<') {
        return None;
    }
    Encoding::for_label(&value[..end])
}

/// Guesses the encoding of `bytes` and decodes them, if the guess decodes
/// them without a single error.
pub fn detect(bytes: &[u8]) -> Option<(String, &'static Encoding)> {
    // The first 8 KiB tell the encoding as well as the whole part does, and
    // the detector is the costliest step of decoding a big part.
    const SAMPLE: usize = 8 << 10;
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(&bytes[..bytes.len().min(SAMPLE)], bytes.len() <= SAMPLE);
    let encoding = detector.guess(Some(b"jp"), true);
    let text = encoding.decode_without_bom_handling_and_without_replacement(bytes)?;
    Some((text.into_owned(), encoding))
}

/// Whether a part that mail-parser decoded to `decoded` under `label` may
/// be decoded wrong — cheap checks, before its bytes are looked at again.
pub fn worth_checking(label: Option<&str>, decoded: &str) -> bool {
    if decoded.contains('\u{FFFD}') {
        return true;
    }
    // ASCII text from an ASCII-compatible label: the bytes were ASCII too
    let stateful = label.is_some_and(|l| l.to_ascii_lowercase().starts_with("iso-2022"));
    if decoded.is_ascii() && !stateful {
        return false;
    }
    // valid UTF-8 that says so: nothing else decodes it that well
    label.and_then(|l| Encoding::for_label(l.as_bytes())) != Some(UTF_8)
}

/// The text of a body part: `decoded` is mail-parser's decoding under the
/// part's `label`; `bytes` the part after transfer decoding. Returns a
/// better decoding when the label cannot be right.
pub fn redecode_body(bytes: &[u8], label: Option<&str>, decoded: &str) -> Option<String> {
    if bytes.is_ascii() {
        return None;
    }
    let label_wrong = label_excludes_8bit(label) || decoded.contains('\u{FFFD}');
    // An HTML part may name its charset itself, as browsers read it.
    if label_wrong
        && let Some(encoding) = html_meta_charset(bytes)
        && let Some(text) = encoding.decode_without_bom_handling_and_without_replacement(bytes)
    {
        return Some(text.into_owned());
    }
    let labelled = label.and_then(|l| Encoding::for_label(l.as_bytes()));
    if !label_wrong && !high_byte_runs(bytes) {
        // isolated 8-bit bytes are accents of a single-byte charset, which
        // the label names: not worth running the detector over
        return None;
    }
    let (text, encoding) = detect(bytes)?;
    if label_wrong {
        return Some(text);
    }
    // A single-byte label decodes any bytes, but Japanese bytes read as
    // Latin-1 are mojibake: trust the detector when it finds a multi-byte
    // encoding that decodes every byte and the label is not one itself.
    let label_multibyte = labelled.is_some_and(is_multibyte_east_asian);
    (is_multibyte_east_asian(encoding) && !label_multibyte && text != decoded).then_some(text)
}

/// Decodes a raw header value: unfolds it, decodes RFC 2047 words
/// (adjacent words in one charset are joined before decoding, so a
/// stateful charset split across words decodes whole), and decodes raw
/// 8-bit runs by detection.
pub fn decode_header(raw: &[u8]) -> String {
    let unfolded = unfold(raw);
    let mut out = String::with_capacity(unfolded.len());
    // (charset, bytes) of the run of encoded words being joined
    let mut pending: Option<(String, Vec<u8>)> = None;
    let mut plain: Vec<u8> = Vec::new();
    let mut pos = 0;
    let flush_plain = |plain: &mut Vec<u8>, out: &mut String| {
        if plain.is_empty() {
            return;
        }
        match std::str::from_utf8(plain) {
            Ok(s) => out.push_str(s),
            Err(_) => match detect(plain) {
                Some((text, _)) => out.push_str(&text),
                None => out.push_str(&String::from_utf8_lossy(plain)),
            },
        }
        plain.clear();
    };
    let flush_words = |pending: &mut Option<(String, Vec<u8>)>, out: &mut String| {
        if let Some((charset, bytes)) = pending.take() {
            out.push_str(&decode_word(&charset, &bytes));
        }
    };
    while pos < unfolded.len() {
        if let Some((charset, bytes, len)) = encoded_word(&unfolded[pos..]) {
            // only white space between two encoded words: it goes
            if pending.is_some() && plain.iter().all(u8::is_ascii_whitespace) {
                plain.clear();
            }
            flush_plain(&mut plain, &mut out);
            match &mut pending {
                Some((c, b)) if c.eq_ignore_ascii_case(&charset) => b.extend_from_slice(&bytes),
                _ => {
                    flush_words(&mut pending, &mut out);
                    pending = Some((charset, bytes));
                }
            }
            pos += len;
        } else {
            if !unfolded[pos].is_ascii_whitespace() {
                flush_words(&mut pending, &mut out);
            }
            plain.push(unfolded[pos]);
            pos += 1;
        }
    }
    if pending.is_some() && plain.iter().all(u8::is_ascii_whitespace) {
        plain.clear();
    }
    flush_words(&mut pending, &mut out);
    flush_plain(&mut plain, &mut out);
    out.trim().to_owned()
}

/// The bytes of encoded words in their `charset` — unless they cannot be
/// in it, the repair a mislabelled body gets (Japanese spam of every year
/// wraps Shift_JIS in `=?iso-2022-jp?B?…?=`): 8-bit bytes under a 7-bit
/// label, or bytes the label's decoder finds no character for, are decoded
/// as detection says; valid UTF-8 under a Japanese label is UTF-8 when
/// the label cannot decode it, or when it holds two characters of three
/// bytes or more (Japanese in UTF-8; Shift_JIS and EUC-JP text rarely
/// forms that by chance, though a single EUC-JP character may).
fn decode_word(charset: &str, bytes: &[u8]) -> String {
    let encoding = Encoding::for_label(charset.as_bytes()).unwrap_or(UTF_8);
    let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
    if bytes.is_ascii() || encoding == UTF_8 {
        return text.into_owned();
    }
    let japanese = encoding == ISO_2022_JP || encoding == SHIFT_JIS || encoding == EUC_JP;
    if japanese && let Ok(utf8) = std::str::from_utf8(bytes) {
        let wide = utf8.chars().filter(|c| c.len_utf8() >= 3).take(2).count();
        if had_errors || encoding == ISO_2022_JP || wide >= 2 {
            return utf8.to_owned();
        }
    }
    if (had_errors || label_excludes_8bit(Some(charset)))
        && let Some((detected, _)) = detect(bytes)
    {
        return detected;
    }
    text.into_owned()
}

/// Removes folding: CRLF or LF followed by white space.
fn unfold(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => i += 1,
            b'\n' => {
                i += 1;
                if !raw.get(i).is_some_and(|b| *b == b' ' || *b == b'\t') {
                    out.push(b' ');
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `=?charset?B|Q?text?=` at the start of `s`: charset, decoded bytes and
/// length.
fn encoded_word(s: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    let rest = s.strip_prefix(b"=?")?;
    let q1 = rest.iter().position(|&b| b == b'?')?;
    let charset = std::str::from_utf8(&rest[..q1]).ok()?;
    // RFC 2231 language suffix: charset*lang
    let charset = charset.split('*').next().unwrap_or(charset);
    let kind = *rest.get(q1 + 1)?;
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    let end = rest[text_start..].windows(2).position(|w| w == b"?=")? + text_start;
    let text = &rest[text_start..end];
    if text.iter().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let bytes = match kind {
        b'B' | b'b' => mail_parser::decoders::base64::base64_decode(text)?,
        b'Q' | b'q' => {
            let spaced: Vec<u8> = text.iter().map(|&b| if b == b'_' { b' ' } else { b }).collect();
            mail_parser::decoders::quoted_printable::quoted_printable_decode(&spaced)?
        }
        _ => return None,
    };
    Some((charset.to_owned(), bytes, 2 + end + 2))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn split_iso_2022_jp_words_decode_whole() {
        // "会議のお知らせ" in ISO-2022-JP, split after 9 bytes into two words
        let raw = b" =?ISO-2022-JP?B?GyRCMnE1RCROJCo=?=\r\n =?ISO-2022-JP?B?Q04kaSQ7GyhC?=";
        assert_eq!(decode_header(raw), "会議のお知らせ");
    }

    #[test]
    fn mislabelled_encoded_words_are_repaired() {
        let word = |label: &str, kind: char, bytes: &[u8]| -> Vec<u8> {
            let text = match kind {
                'B' => base64(bytes),
                _ => bytes.iter().map(|b| format!("={b:02X}")).collect(),
            };
            format!("=?{label}?{kind}?{text}?=").into_bytes()
        };
        let subject = "未承諾広告 今すぐ";
        let sjis = SHIFT_JIS.encode(subject).0.into_owned();
        let euc = EUC_JP.encode(subject).0.into_owned();
        for (label, bytes) in [
            ("iso-2022-jp", &sjis),
            ("ISO-2022-JP", &euc),
            ("iso-2022-jp", &subject.as_bytes().to_vec()),
            ("shift_jis", &subject.as_bytes().to_vec()),
        ] {
            for kind in ['B', 'Q'] {
                let raw = word(label, kind, bytes);
                assert_eq!(decode_header(&raw), subject, "{}", String::from_utf8_lossy(&raw));
            }
        }
        // what is right stays as it is
        let jis = ISO_2022_JP.encode(subject).0.into_owned();
        assert_eq!(decode_header(&word("iso-2022-jp", 'B', &jis)), subject);
        assert_eq!(decode_header(&word("shift_jis", 'B', &sjis)), subject);
        assert_eq!(decode_header(&word("iso-8859-1", 'Q', b"caf\xe9")), "café");
    }

    /// Base64 for test data (mail-parser decodes only).
    pub(crate) fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn words_and_text_mix() {
        assert_eq!(decode_header(b"Re: =?UTF-8?Q?caf=C3=A9_au?= lait"), "Re: café au lait");
        assert_eq!(decode_header(b"=?utf-8?b?w6k=?= =?utf-8?b?w6k=?="), "éé");
        assert_eq!(decode_header(b"plain\n\tfolded"), "plain\tfolded");
        assert_eq!(decode_header(b"=?bogus"), "=?bogus");
    }

    #[test]
    fn html_meta_charset_is_honoured() {
        let mut html =
            b"<html><head><META http-equiv=Content-Type content=\"text/html; charset=big5\"></head><body>".to_vec();
        html.extend_from_slice(&encoding_rs::BIG5.encode("中文郵件測試").0);
        html.extend_from_slice(b"</body></html>");
        let text = redecode_body(&html, None, &String::from_utf8_lossy(&html)).unwrap();
        assert!(text.contains("中文郵件測試"), "{text}");
        assert_eq!(html_meta_charset(b"<meta charset='shift_jis'>"), Some(SHIFT_JIS));
        assert_eq!(html_meta_charset(b"charset=utf-8 outside any tag"), None);
    }

    #[test]
    fn raw_8bit_header_is_detected() {
        let sjis = SHIFT_JIS.encode("会議のお知らせです").0.into_owned();
        assert_eq!(decode_header(&sjis), "会議のお知らせです");
    }

    #[test]
    fn body_redecoding_only_when_the_label_is_wrong() {
        let sjis = SHIFT_JIS
            .encode("お世話になっております。東京都庁で会議を行います。")
            .0
            .into_owned();
        assert!(redecode_body(&sjis, Some("iso-2022-jp"), "garbage\u{FFFD}").is_some());
        assert!(redecode_body(&sjis, None, "").is_some());
        // correctly labelled: left alone
        let right = SHIFT_JIS.decode(&sjis).0.into_owned();
        assert_eq!(redecode_body(&sjis, Some("shift_jis"), &right), None);
        // ASCII: nothing to detect
        assert_eq!(redecode_body(b"hello", None, "hello"), None);
        // real Latin-1 stays Latin-1
        let latin = b"Caf\xe9 cr\xe8me br\xfbl\xe9e, d\xe9j\xe0 vu \xe0 la fran\xe7aise";
        let decoded = encoding_rs::WINDOWS_1252.decode(latin).0.into_owned();
        assert_eq!(redecode_body(latin, Some("iso-8859-1"), &decoded), None);
    }
}
