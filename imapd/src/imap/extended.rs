//! The heads of the commands imap-codec 1.0 does not parse that carry
//! search keys: `SORT` and `THREAD` (RFC 5256) and `SEARCH RETURN (…)`
//! (ESEARCH, RFC 4731). The head is read here; the search keys after it
//! (which may hold literals) are handed back as an ordinary `SEARCH`
//! command for imap-codec to parse, so every key means the same thing
//! in all four commands.

/// One command of this family, its search keys rewritten as a SEARCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extended {
    pub uid: bool,
    pub kind: Kind,
    /// `TAG SEARCH [CHARSET c] keys…`, for imap-codec.
    pub search: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// With ESORT's RETURN options (RFC 5267), if given.
    Sort(Vec<SortCriterion>, Option<Vec<Return>>),
    Thread(Algorithm),
    /// ESEARCH's RETURN options (an empty list means ALL).
    Esearch(Vec<Return>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub reverse: bool,
    pub key: SortKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    /// RFC 5957 SORT=DISPLAY.
    DisplayFrom,
    DisplayTo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    OrderedSubject,
    References,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    Min,
    Max,
    Count,
    All,
    /// SEARCHRES (RFC 5182): keep the result for `$`.
    Save,
}

/// Reads `input` (a whole command, literals included) if it is one of
/// these commands: None if it is not, `Err(text)` for a BAD answer.
/// With `esearch_always` (IMAP4rev2, RFC 9051 §6.4.4), a SEARCH without
/// RETURN is answered as `RETURN (ALL)`, with an ESEARCH response.
pub fn parse(input: &[u8], esearch_always: bool) -> Option<Result<Extended, String>> {
    let mut cursor = Cursor { input, pos: 0 };
    let tag = cursor.word()?;
    let mut command = cursor.word()?.to_ascii_uppercase();
    let uid = command == b"UID";
    if uid {
        command = cursor.word()?.to_ascii_uppercase();
    }
    let mut search = tag.to_vec();
    search.extend_from_slice(b" SEARCH ");
    let kind = match command.as_slice() {
        b"SORT" => sort_head(&mut cursor, &mut search),
        b"THREAD" => thread_head(&mut cursor, &mut search),
        b"SEARCH" => {
            let criteria = cursor.pos;
            if cursor.word().is_some_and(|w| w.eq_ignore_ascii_case(b"RETURN")) {
                cursor
                    .list()
                    .ok_or_else(|| "RETURN needs a parenthesised list".to_owned())
                    .and_then(|options| return_options(&options))
                    .map(Kind::Esearch)
            } else if esearch_always {
                cursor.pos = criteria;
                cursor.skip_spaces();
                Ok(Kind::Esearch(vec![Return::All]))
            } else {
                return None;
            }
        }
        // a plain SEARCH, or another command: imap-codec's
        _ => return None,
    };
    Some(kind.map(|kind| {
        search.extend_from_slice(cursor.rest());
        Extended { uid, kind, search }
    }))
}

/// `[RETURN (options)] (criteria) charset`, the charset copied into
/// `search`.
fn sort_head(cursor: &mut Cursor<'_>, search: &mut Vec<u8>) -> Result<Kind, String> {
    let start = cursor.pos;
    let options = if cursor.word().is_some_and(|w| w.eq_ignore_ascii_case(b"RETURN")) {
        let options = cursor.list().ok_or("RETURN needs a parenthesised list")?;
        Some(return_options(&options)?)
    } else {
        cursor.pos = start;
        None
    };
    let criteria = cursor
        .list()
        .ok_or("SORT needs a parenthesised list of sort criteria")?;
    let criteria = sort_criteria(&criteria)?;
    charset(cursor, search, "SORT")?;
    Ok(Kind::Sort(criteria, options))
}

/// `algorithm charset`, the charset copied into `search`.
fn thread_head(cursor: &mut Cursor<'_>, search: &mut Vec<u8>) -> Result<Kind, String> {
    let algorithm = match cursor.word().map(|w| w.to_ascii_uppercase()).as_deref() {
        Some(b"ORDEREDSUBJECT") => Algorithm::OrderedSubject,
        Some(b"REFERENCES") => Algorithm::References,
        _ => return Err("THREAD supports ORDEREDSUBJECT and REFERENCES".into()),
    };
    charset(cursor, search, "THREAD")?;
    Ok(Kind::Thread(algorithm))
}

fn charset(cursor: &mut Cursor<'_>, search: &mut Vec<u8>, command: &str) -> Result<(), String> {
    let charset = cursor.word().ok_or_else(|| format!("{command} needs a charset"))?;
    search.extend_from_slice(b"CHARSET ");
    search.extend_from_slice(charset);
    search.push(b' ');
    Ok(())
}

fn sort_criteria(words: &[Vec<u8>]) -> Result<Vec<SortCriterion>, String> {
    let mut out = Vec::new();
    let mut reverse = false;
    for word in words {
        let key = match word.to_ascii_uppercase().as_slice() {
            b"REVERSE" if !reverse => {
                reverse = true;
                continue;
            }
            b"ARRIVAL" => SortKey::Arrival,
            b"CC" => SortKey::Cc,
            b"DATE" => SortKey::Date,
            b"FROM" => SortKey::From,
            b"SIZE" => SortKey::Size,
            b"SUBJECT" => SortKey::Subject,
            b"TO" => SortKey::To,
            b"DISPLAYFROM" => SortKey::DisplayFrom,
            b"DISPLAYTO" => SortKey::DisplayTo,
            other => return Err(format!("Unknown sort criterion {}", String::from_utf8_lossy(other))),
        };
        out.push(SortCriterion { reverse, key });
        reverse = false;
    }
    if reverse || out.is_empty() {
        return Err("REVERSE needs a sort key after it".into());
    }
    Ok(out)
}

fn return_options(words: &[Vec<u8>]) -> Result<Vec<Return>, String> {
    let mut out = Vec::new();
    for word in words {
        let option = match word.to_ascii_uppercase().as_slice() {
            b"MIN" => Return::Min,
            b"MAX" => Return::Max,
            b"COUNT" => Return::Count,
            b"ALL" => Return::All,
            b"SAVE" => Return::Save,
            other => return Err(format!("Unknown RETURN option {}", String::from_utf8_lossy(other))),
        };
        if !out.contains(&option) {
            out.push(option);
        }
    }
    if out.is_empty() {
        out.push(Return::All);
    }
    Ok(out)
}

struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_spaces(&mut self) {
        while self.input.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    /// An atom, or a quoted string's content.
    fn word(&mut self) -> Option<&'a [u8]> {
        self.skip_spaces();
        let rest = &self.input[self.pos..];
        if let Some(quoted) = rest.strip_prefix(b"\"") {
            let end = quoted.iter().position(|&b| b == b'"')?;
            self.pos += end + 2;
            return Some(&quoted[..end]);
        }
        let end = rest
            .iter()
            .position(|&b| matches!(b, b' ' | b'(' | b')' | b'\r' | b'\n'))
            .unwrap_or(rest.len());
        self.pos += end;
        (end > 0).then(|| &rest[..end])
    }

    /// `(word word …)`.
    fn list(&mut self) -> Option<Vec<Vec<u8>>> {
        self.skip_spaces();
        if self.input.get(self.pos) != Some(&b'(') {
            return None;
        }
        self.pos += 1;
        let mut words = Vec::new();
        loop {
            self.skip_spaces();
            match self.input.get(self.pos) {
                Some(b')') => {
                    self.pos += 1;
                    return Some(words);
                }
                Some(_) => words.push(self.word()?.to_vec()),
                None => return None,
            }
        }
    }

    fn rest(&mut self) -> &'a [u8] {
        self.skip_spaces();
        &self.input[self.pos..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let sort = parse(b"a UID SORT (REVERSE DATE subject) UTF-8 FROM {3}\r\nbob\r\n", false)
            .unwrap()
            .unwrap();
        assert!(sort.uid);
        let esort = parse(b"z SORT RETURN (MIN ALL) (DATE) UTF-8 ALL\r\n", false)
            .unwrap()
            .unwrap();
        assert!(matches!(esort.kind, Kind::Sort(_, Some(ref o)) if *o == [Return::Min, Return::All]));
        assert_eq!(
            sort.kind,
            Kind::Sort(
                vec![
                    SortCriterion {
                        reverse: true,
                        key: SortKey::Date
                    },
                    SortCriterion {
                        reverse: false,
                        key: SortKey::Subject
                    },
                ],
                None
            )
        );
        assert_eq!(sort.search, b"a SEARCH CHARSET UTF-8 FROM {3}\r\nbob\r\n");
        let thread = parse(b"b THREAD REFERENCES US-ASCII ALL\r\n", false).unwrap().unwrap();
        assert_eq!(thread.kind, Kind::Thread(Algorithm::References));
        assert_eq!(thread.search, b"b SEARCH CHARSET US-ASCII ALL\r\n");
        let esearch = parse(b"c SEARCH RETURN (MIN COUNT) UNSEEN\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(esearch.kind, Kind::Esearch(vec![Return::Min, Return::Count]));
        assert_eq!(esearch.search, b"c SEARCH UNSEEN\r\n");
        let all = parse(b"d UID SEARCH RETURN () ALL\r\n", false).unwrap().unwrap();
        assert_eq!(all.kind, Kind::Esearch(vec![Return::All]));
        // a plain SEARCH is not for this module, others are refused clearly
        assert_eq!(parse(b"e SEARCH ALL\r\n", false), None);
        // IMAP4rev2: as RETURN (ALL), the criteria untouched
        let rev2 = parse(b"e SEARCH CHARSET UTF-8 ALL\r\n", true).unwrap().unwrap();
        assert_eq!(rev2.kind, Kind::Esearch(vec![Return::All]));
        assert_eq!(rev2.search, b"e SEARCH CHARSET UTF-8 ALL\r\n");
        assert_eq!(parse(b"f FETCH 1 FLAGS\r\n", false), None);
        for bad in [
            &b"g SORT DATE UTF-8 ALL\r\n"[..],
            b"h SORT (REVERSE) UTF-8 ALL\r\n",
            b"i SORT (COLOUR) UTF-8 ALL\r\n",
            b"j THREAD NEWEST UTF-8 ALL\r\n",
            b"k SEARCH RETURN (NEWEST) ALL\r\n",
            b"l SORT (DATE\r\n",
        ] {
            assert!(
                matches!(parse(bad, false), Some(Err(e)) if !e.is_empty()),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
