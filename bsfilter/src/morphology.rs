//! The `lindera` Japanese tokenizer: morphological analysis with IPADIC,
//! the dictionary MeCab uses, so a word is what a Japanese reader (and
//! MeCab) takes for a word — `迷惑メール` → `迷惑` `メール` rather than the
//! bigrams `迷惑` `惑メ`… of [`crate::tokenize::Bigram`].
//!
//! The dictionary (46 MB) is never linked into a binary: the build script
//! compiles it from Debian's mecab-ipadic sources into the build directory,
//! and it is memory-mapped from there (or from `$BSFILTER_IPADIC`, for an
//! installed copy) when a process first needs it.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::tokenize::{Bigram, Segmenter};
use crate::{Error, Result};

/// The `--jtokenizer` choices (also `[filter] jtokenizer` for lda and
/// imapd: every program that learns or classifies for a user must split
/// Japanese the same way, or the tokens would not match).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JapaneseTokenizer {
    #[default]
    Bigram,
    Lindera,
}

impl JapaneseTokenizer {
    pub fn parse(name: &str) -> Option<JapaneseTokenizer> {
        match name {
            "bigram" => Some(JapaneseTokenizer::Bigram),
            "lindera" => Some(JapaneseTokenizer::Lindera),
            _ => None,
        }
    }

    /// The segmenter (loading lindera's dictionary).
    pub fn segmenter(self) -> Result<Box<dyn Segmenter>> {
        Ok(match self {
            JapaneseTokenizer::Bigram => Box::new(Bigram),
            JapaneseTokenizer::Lindera => Box::new(Lindera::load()?),
        })
    }
}

/// Where the build put the dictionary (absent when mecab-ipadic was not
/// installed at build time).
const BUILT_DICTIONARY: Option<&str> = option_env!("BSFILTER_IPADIC_DIR");

/// Morphological segmentation of Japanese runs.
pub struct Lindera {
    segmenter: lindera::segmenter::Segmenter,
}

impl Lindera {
    /// The dictionary in `$BSFILTER_IPADIC`, else the one built with this
    /// program.
    pub fn load() -> Result<Lindera> {
        let dir = match std::env::var_os("BSFILTER_IPADIC") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(BUILT_DICTIONARY.ok_or_else(|| {
                Error::Dictionary(
                    "this bsfilter was built without IPADIC (apt-get install mecab-ipadic, then rebuild), \
                     and $BSFILTER_IPADIC names no dictionary"
                        .into(),
                )
            })?),
        };
        Lindera::load_from(&dir)
    }

    pub fn load_from(dir: &Path) -> Result<Lindera> {
        let dictionary = lindera::dictionary::load_fs_dictionary(dir)
            .map_err(|e| Error::Dictionary(format!("{}: {e}", dir.display())))?;
        Ok(Lindera {
            segmenter: lindera::segmenter::Segmenter::new(lindera::mode::Mode::Normal, dictionary, None),
        })
    }

    /// The surface forms of `text`'s morphemes, as `mecab -Owakati` gives
    /// them (white space is not a morpheme).
    pub fn surfaces(&self, text: &str, emit: &mut dyn FnMut(&str)) {
        // segment() fails only on internal errors; a run it cannot analyse
        // is then left out rather than failing the message
        if let Ok(tokens) = self.segmenter.segment(Cow::Borrowed(text)) {
            for token in &tokens {
                emit(&token.surface);
            }
        }
    }
}

impl Segmenter for Lindera {
    fn segment(&self, run: &str, emit: &mut dyn FnMut(&str)) {
        self.surfaces(run, emit);
    }
}
