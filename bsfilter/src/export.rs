//! The original bsfilter's export format, so a site can carry trained data
//! between it and us:
//!
//! ```text
//! LANG CATEGORY TOKEN COUNT
//! C subject viagra 12
//! C .internal file_count 345
//! ```
//!
//! LANG is `C` or `ja` (the original keeps Japanese mail in a separate
//! database, its tokens in EUC-JP). CATEGORY is `body`, `url` or a lower-case
//! header name; our token `subject:viagra` is category `subject`, token
//! `viagra`, and a token without a tag is category `body`.
//!
//! We export everything as `C` with UTF-8 tokens; on import, `ja` lines are
//! decoded from EUC-JP, tokens are lower-cased as ours are (the original's
//! `Cheap` and `cheap` add up) and the message counts of all languages add
//! up.
//! (The original, reading our export, files our Japanese tokens under `C`,
//! where its Japanese mail never looks: it gains nothing from them, and
//! loses nothing either.)

use std::collections::HashMap;
use std::io::{BufRead, Write};

use crate::error::{Error, Result};

/// Writes one class's counts. `tokens` yields (token, count) pairs.
pub fn write(out: &mut dyn Write, tokens: impl Iterator<Item = (String, u64)>, messages: u64) -> std::io::Result<()> {
    for (token, count) in tokens {
        let (category, word) = split_token(&token);
        writeln!(out, "C {category} {word} {count}")?;
    }
    writeln!(out, "C .internal file_count {messages}")
}

/// Category and token of the export line for one of our tokens.
fn split_token(token: &str) -> (&str, &str) {
    match token.split_once(':') {
        Some((tag, word)) if !tag.is_empty() && !word.is_empty() => (tag, word),
        _ => ("body", token),
    }
}

/// Counts read from an export file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub tokens: HashMap<String, u64>,
    pub messages: u64,
}

/// Reads an export file; `source` names it in error messages.
pub fn read(input: &mut dyn BufRead, source: &str, into: &mut Imported) -> Result<()> {
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::Data(format!("{source}: cannot read: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let fields: Vec<&[u8]> = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        if fields.is_empty() || fields[0].starts_with(b"#") {
            continue;
        }
        let bad = |why: &str| {
            Error::Data(format!(
                "{source}:{number}: {why}; expected `LANG CATEGORY TOKEN COUNT`"
            ))
        };
        let [lang, category, token, count] = fields[..] else {
            return Err(bad("wrong number of fields"));
        };
        let count = std::str::from_utf8(count)
            .ok()
            .and_then(|c| c.parse::<f64>().ok())
            .filter(|c| c.is_finite() && *c >= 0.0)
            .ok_or_else(|| bad("COUNT is not a non-negative number"))? as u64;
        let category = String::from_utf8_lossy(category);
        let token = match lang {
            b"ja" => encoding_rs::EUC_JP.decode_without_bom_handling(token).0,
            b"C" => String::from_utf8_lossy(token),
            _ => return Err(bad("LANG is neither C nor ja")),
        };
        if category == ".internal" {
            if token == "file_count" {
                into.messages += count;
            }
            continue;
        }
        // Our words are lower-cased; the original's are not.
        let token = token.to_lowercase();
        let key = if category == "body" {
            token
        } else {
            format!("{category}:{token}")
        };
        *into.tokens.entry(key).or_default() += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        let tokens = vec![
            ("viagra".to_string(), 3),
            ("subject:cheap".to_string(), 2),
            ("url:example.net".to_string(), 1),
        ];
        write(&mut out, tokens.clone().into_iter(), 7).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "C body viagra 3\nC subject cheap 2\nC url example.net 1\nC .internal file_count 7\n"
        );
        let mut imported = Imported::default();
        read(&mut &out[..], "x", &mut imported).unwrap();
        assert_eq!(imported.messages, 7);
        assert_eq!(imported.tokens, tokens.into_iter().collect::<HashMap<_, _>>());
    }

    #[test]
    fn reads_the_originals_japanese_lines() {
        // "東京" in EUC-JP
        let data = b"# comment\nja body \xc5\xec\xb5\xfe 2\nja .internal file_count 3\nC body hello 1.0\nC .internal file_count 4\n";
        let mut imported = Imported::default();
        read(&mut &data[..], "x", &mut imported).unwrap();
        assert_eq!(imported.messages, 7);
        assert_eq!(imported.tokens.get("東京"), Some(&2));
        assert_eq!(imported.tokens.get("hello"), Some(&1));
    }

    #[test]
    fn bad_lines_name_the_line() {
        for bad in [
            &b"C body x\n"[..],
            b"C body x -1\n",
            b"C body x NaN\n",
            b"xx body x 1\n",
        ] {
            let err = read(&mut &bad[..], "f.txt", &mut Imported::default()).unwrap_err();
            assert!(err.to_string().starts_with("f.txt:1:"), "{err}");
            assert_eq!(err.exit_code(), crate::error::exit::DATAERR);
        }
    }
}
