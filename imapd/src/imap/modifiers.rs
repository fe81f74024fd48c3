//! What imap-codec 1.0 does not parse inside commands it knows: the
//! modifiers of CONDSTORE and QRESYNC (RFC 7162) — `SELECT box
//! (CONDSTORE)`, `SELECT box (QRESYNC (validity modseq [uids]))`, `FETCH
//! set items (CHANGEDSINCE n [VANISHED])` and the `MODSEQ` item, `STORE
//! set (UNCHANGEDSINCE n) …` — BINARY's FETCH items (RFC 3516),
//! STATUS=SIZE's `SIZE` item (RFC 8438) and
//! CREATE-SPECIAL-USE's `CREATE box (USE (\\Junk))` (RFC 6154).
//! They are taken off the command here; the rest goes to imap-codec.

/// A command with its modifiers taken off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modified {
    /// The command without them, for imap-codec.
    pub input: Vec<u8>,
    pub modifiers: Modifiers,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modifiers {
    Select(Option<Qresync>),
    Fetch {
        /// The sequence set as sent (VANISHED reads it as UIDs).
        set: String,
        changed_since: Option<u64>,
        vanished: bool,
        /// The MODSEQ item was asked for.
        modseq: bool,
        /// BINARY items (RFC 3516), in the order asked.
        binary: Vec<Binary>,
        /// Every item was one of those: the UID item given to imap-codec
        /// in their place is not to be answered (unless UID FETCH).
        placeholder: bool,
    },
    Store {
        unchanged_since: u64,
    },
    /// STATUS with the SIZE item.
    StatusSize,
    /// CREATE with special uses (`\\Junk`…).
    CreateUse(Vec<String>),
}

/// `BINARY[1.2]<0.100>`, `BINARY.PEEK[…]` or `BINARY.SIZE[…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    pub peek: bool,
    /// BINARY.SIZE: the decoded size, not the bytes.
    pub size: bool,
    pub section: Vec<u32>,
    /// `<start.length>`.
    pub partial: Option<(u32, u32)>,
}

fn binary_item(word: &str) -> Option<Binary> {
    let upper = word.to_ascii_uppercase();
    let (peek, size, rest) = if let Some(r) = upper.strip_prefix("BINARY.PEEK[") {
        (true, false, r)
    } else if let Some(r) = upper.strip_prefix("BINARY.SIZE[") {
        (true, true, r)
    } else {
        (false, false, upper.strip_prefix("BINARY[")?)
    };
    let (section, after) = rest.split_once(']')?;
    let section = if section.is_empty() {
        Vec::new()
    } else {
        section
            .split('.')
            .map(|n| n.parse::<u32>().ok().filter(|&n| n > 0))
            .collect::<Option<Vec<u32>>>()?
    };
    let partial = match after.strip_prefix('<').and_then(|p| p.strip_suffix('>')) {
        Some(p) if !size => {
            let (start, length) = p.split_once('.')?;
            Some((start.parse().ok()?, length.parse().ok()?))
        }
        _ if after.is_empty() => None,
        _ => return None,
    };
    Some(Binary {
        peek,
        size,
        section,
        partial,
    })
}

/// `QRESYNC (uidvalidity modseq [known-uids])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub uid_validity: u32,
    pub modseq: u64,
    pub known_uids: Option<String>,
}

/// Reads `input` (a whole command): None when it carries none of these
/// modifiers, `Err(text)` for a BAD answer.
pub fn parse(input: &[u8]) -> Option<Result<Modified, String>> {
    // modifiers never follow a literal here; a command with one is
    // imap-codec's alone
    if input.windows(3).any(|w| w == b"}\r\n") {
        return None;
    }
    let line = std::str::from_utf8(input).ok()?;
    let body = line.trim_end_matches(['\r', '\n']);
    let mut words = body.splitn(3, ' ');
    let tag = words.next()?;
    let mut command = words.next()?.to_ascii_uppercase();
    let mut rest = words.next().unwrap_or_default();
    let mut prefix = format!("{tag} {command}");
    if command == "UID" {
        let (name, after) = rest.split_once(' ')?;
        command = name.to_ascii_uppercase();
        rest = after;
        prefix = format!("{tag} UID {name}");
    }
    let result = match command.as_str() {
        "SELECT" | "EXAMINE" => select(rest)?,
        "FETCH" => fetch(rest)?,
        "STORE" => store(rest)?,
        "STATUS" => status(rest)?,
        "CREATE" => create(rest)?,
        _ => return None,
    };
    Some(result.map(|(rest, modifiers)| Modified {
        input: format!("{prefix} {rest}\r\n").into_bytes(),
        modifiers,
    }))
}

type Parsed = Option<Result<(String, Modifiers), String>>;

/// `mailbox (CONDSTORE)` or `mailbox (QRESYNC (…))`.
fn select(rest: &str) -> Parsed {
    let rest = rest.trim_end();
    if !rest.ends_with(')') {
        return None;
    }
    let open = matching_open(rest)?;
    let (mailbox, params) = (rest[..open].trim_end(), &rest[open + 1..rest.len() - 1]);
    let upper = params.trim().to_ascii_uppercase();
    if upper == "CONDSTORE" {
        return Some(Ok((mailbox.to_owned(), Modifiers::Select(None))));
    }
    let list = upper.strip_prefix("QRESYNC")?;
    let list = list.trim();
    let inner = list.strip_prefix('(').and_then(|l| l.strip_suffix(')'));
    let Some(inner) = inner else {
        return Some(Err("QRESYNC needs (uidvalidity modseq [known-uids])".into()));
    };
    let mut parts = inner.split_whitespace();
    let (Some(validity), Some(modseq)) = (parts.next(), parts.next()) else {
        return Some(Err("QRESYNC needs a UIDVALIDITY and a mod-sequence".into()));
    };
    let (Ok(uid_validity), Ok(modseq)) = (validity.parse::<u32>(), modseq.parse::<u64>()) else {
        return Some(Err("QRESYNC's UIDVALIDITY and mod-sequence are numbers".into()));
    };
    // the known UIDs (a sequence-match list after them is optional help
    // this server does without)
    let known_uids = parts.next().filter(|u| !u.starts_with('(')).map(str::to_owned);
    Some(Ok((
        mailbox.to_owned(),
        Modifiers::Select(Some(Qresync {
            uid_validity,
            modseq,
            known_uids,
        })),
    )))
}

/// `set items [(CHANGEDSINCE n [VANISHED])]`, MODSEQ taken out of items.
fn fetch(rest: &str) -> Parsed {
    let (set, after) = rest.split_once(' ')?;
    let after = after.trim_end();
    let (items, modifiers) = if after.starts_with('(') {
        let close = matching_close(after)?;
        (&after[..=close], after[close + 1..].trim())
    } else {
        after.split_once(' ').unwrap_or((after, ""))
    };
    // MODSEQ and BINARY items taken out; imap-codec wants one item at least
    let listed = items.strip_prefix('(').and_then(|i| i.strip_suffix(')'));
    let words: Vec<&str> = match listed {
        Some(inner) => top_level_words(inner),
        None => vec![items],
    };
    let mut modseq = false;
    let mut binary = Vec::new();
    let mut kept: Vec<&str> = Vec::new();
    for w in words {
        if w.eq_ignore_ascii_case("MODSEQ") {
            modseq = true;
        } else if w.len() >= 7 && w[..7].eq_ignore_ascii_case("BINARY.")
            || w.len() >= 7 && w[..7].eq_ignore_ascii_case("BINARY[")
        {
            match binary_item(w) {
                Some(item) => binary.push(item),
                None => return Some(Err(format!("Malformed {w}"))),
            }
        } else {
            kept.push(w);
        }
    }
    let placeholder = kept.is_empty();
    let items = match (kept.as_slice(), listed) {
        ([], _) => "(UID)".to_owned(),
        // a lone item or macro (ALL, FAST, FULL) as it was
        ([one], None) => (*one).to_owned(),
        (kept, _) => format!("({})", kept.join(" ")),
    };
    let (mut changed_since, mut vanished) = (None, false);
    if !modifiers.is_empty() {
        let Some(inner) = modifiers.strip_prefix('(').and_then(|m| m.strip_suffix(')')) else {
            return Some(Err("FETCH modifiers go in parentheses".into()));
        };
        let mut words = inner.split_whitespace();
        while let Some(word) = words.next() {
            match word.to_ascii_uppercase().as_str() {
                "CHANGEDSINCE" => match words.next().and_then(|n| n.parse::<u64>().ok()) {
                    Some(n) => changed_since = Some(n),
                    None => return Some(Err("CHANGEDSINCE needs a mod-sequence".into())),
                },
                "VANISHED" => vanished = true,
                other => return Some(Err(format!("Unknown FETCH modifier {other}"))),
            }
        }
        if vanished && changed_since.is_none() {
            return Some(Err("VANISHED goes with CHANGEDSINCE".into()));
        }
    } else if !modseq && binary.is_empty() {
        return None;
    }
    Some(Ok((
        format!("{set} {items}"),
        Modifiers::Fetch {
            set: set.to_owned(),
            changed_since,
            vanished,
            modseq,
            binary,
            placeholder,
        },
    )))
}

/// `mailbox (items)` with SIZE among the items.
fn status(rest: &str) -> Parsed {
    let rest = rest.trim_end();
    let open = matching_open(rest)?;
    let items: Vec<&str> = rest[open + 1..rest.len() - 1].split_whitespace().collect();
    if !items.iter().any(|i| i.eq_ignore_ascii_case("SIZE")) {
        return None;
    }
    let mut kept: Vec<&str> = items.into_iter().filter(|i| !i.eq_ignore_ascii_case("SIZE")).collect();
    if kept.is_empty() {
        // imap-codec wants one item; MESSAGES costs nothing
        kept.push("MESSAGES");
    }
    Some(Ok((
        format!("{} ({})", &rest[..open].trim_end(), kept.join(" ")),
        Modifiers::StatusSize,
    )))
}

/// `mailbox (USE (\\Junk …))`.
fn create(rest: &str) -> Parsed {
    let rest = rest.trim_end();
    if !rest.ends_with("))") {
        return None;
    }
    let open = matching_open(rest)?;
    let params = rest[open + 1..rest.len() - 1].trim();
    let uses = params.get(..3).filter(|u| u.eq_ignore_ascii_case("USE"))?;
    let list = params[uses.len()..].trim();
    let Some(inner) = list.strip_prefix('(').and_then(|l| l.strip_suffix(')')) else {
        return Some(Err("USE needs a list of special uses".into()));
    };
    let uses: Vec<String> = inner.split_whitespace().map(str::to_owned).collect();
    Some(Ok((rest[..open].trim_end().to_owned(), Modifiers::CreateUse(uses))))
}

/// `set (UNCHANGEDSINCE n) op flags`.
fn store(rest: &str) -> Parsed {
    let (set, after) = rest.split_once(' ')?;
    let after = after.trim_start();
    if !after.starts_with('(') {
        return None;
    }
    let close = matching_close(after)?;
    let inner = &after[1..close];
    let mut words = inner.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("UNCHANGEDSINCE") {
        return None;
    }
    let Some(n) = words.next().and_then(|n| n.parse::<u64>().ok()) else {
        return Some(Err("UNCHANGEDSINCE needs a mod-sequence".into()));
    };
    Some(Ok((
        format!("{set} {}", after[close + 1..].trim()),
        Modifiers::Store { unchanged_since: n },
    )))
}

/// UID ranges of a sequence set (`*` and `n:*` up to `max`), or None
/// if it is not one.
pub fn uid_ranges(set: &str, max: u32) -> Option<Vec<(u32, u32)>> {
    let number = |n: &str| if n == "*" { Some(max) } else { n.parse::<u32>().ok() };
    set.split(',')
        .map(|part| {
            let (a, b) = part.split_once(':').unwrap_or((part, part));
            let (a, b) = (number(a)?, number(b)?);
            Some((a.min(b), a.max(b)))
        })
        .collect()
}

/// The UIDs in `ranges` that are not in `present` (ascending), as a
/// sequence set (empty if none): what VANISHED (EARLIER) tells a client.
pub fn absent(present: &[u32], ranges: &[(u32, u32)]) -> String {
    let mut gaps: Vec<(u32, u32)> = Vec::new();
    for &(a, b) in ranges {
        let mut next = a.max(1);
        let start = present.partition_point(|&u| u < next);
        for &u in present[start..].iter().take_while(|&&u| u <= b) {
            if next < u {
                gaps.push((next, u - 1));
            }
            next = u + 1;
        }
        if next <= b {
            gaps.push((next, b));
        }
    }
    gaps.sort_unstable();
    // overlapping ranges from the client's set, merged
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (a, b) in gaps {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let text: Vec<String> = merged
        .iter()
        .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}:{b}") })
        .collect();
    text.join(",")
}

/// The `)` closing the `(` that starts `text`.
fn matching_close(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The `(` opening the `)` that ends `text`.
fn matching_open(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return (i > 0 && text[..i].ends_with(' ')).then_some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Words of a FETCH item list, a `BODY[…]` with its brackets and
/// parentheses kept whole.
fn top_level_words(list: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let (mut start, mut depth) = (None, 0usize);
    for (i, c) in list.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            ' ' if depth == 0 => {
                if let Some(s) = start.take() {
                    words.push(&list[s..i]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    if let Some(s) = start {
        words.push(&list[s..]);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modified(input: &str) -> Modified {
        parse(input.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn modifiers_come_off() {
        let m = modified("a SELECT INBOX (CONDSTORE)\r\n");
        assert_eq!(
            (m.input.as_slice(), m.modifiers),
            (&b"a SELECT INBOX\r\n"[..], Modifiers::Select(None))
        );
        let m = modified("b EXAMINE \"a b\" (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n");
        assert_eq!(m.input, b"b EXAMINE \"a b\"\r\n");
        assert_eq!(
            m.modifiers,
            Modifiers::Select(Some(Qresync {
                uid_validity: 67890007,
                modseq: 20050715194045000,
                known_uids: Some("41,43:211,214:541".into())
            }))
        );
        let m =
            modified("c UID FETCH 1:* (FLAGS MODSEQ BODY.PEEK[HEADER.FIELDS (A B)]) (CHANGEDSINCE 12 VANISHED)\r\n");
        assert_eq!(m.input, b"c UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (A B)])\r\n");
        assert_eq!(
            m.modifiers,
            Modifiers::Fetch {
                set: "1:*".into(),
                changed_since: Some(12),
                vanished: true,
                modseq: true,
                binary: Vec::new(),
                placeholder: false,
            }
        );
        let m = modified("d FETCH 1 MODSEQ\r\n");
        assert_eq!(m.input, b"d FETCH 1 (UID)\r\n");
        let m = modified("e FETCH 1:3 FLAGS (CHANGEDSINCE 5)\r\n");
        assert_eq!(m.input, b"e FETCH 1:3 FLAGS\r\n");
        let m = modified("f UID STORE 1:3 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\r\n");
        assert_eq!(m.input, b"f UID STORE 1:3 +FLAGS.SILENT (\\Deleted)\r\n");
        assert_eq!(
            m.modifiers,
            Modifiers::Store {
                unchanged_since: 320162338
            }
        );
        let m = modified("s FETCH 1 (FLAGS BINARY.PEEK[1.2]<0.10> BINARY.SIZE[1])\r\n");
        assert_eq!(m.input, b"s FETCH 1 (FLAGS)\r\n");
        let Modifiers::Fetch { binary, .. } = m.modifiers else {
            panic!()
        };
        assert_eq!(
            binary,
            [
                Binary {
                    peek: true,
                    size: false,
                    section: vec![1, 2],
                    partial: Some((0, 10))
                },
                Binary {
                    peek: true,
                    size: true,
                    section: vec![1],
                    partial: None
                },
            ]
        );
        assert_eq!(modified("t FETCH 1 BINARY[]\r\n").input, b"t FETCH 1 (UID)\r\n");
        assert!(matches!(parse(b"u FETCH 1 BINARY[1.x]\r\n"), Some(Err(_))));
        assert_eq!(uid_ranges("1:3,7,9:*", 12), Some(vec![(1, 3), (7, 7), (9, 12)]));
        assert_eq!(uid_ranges("1:x", 12), None);
        assert_eq!(absent(&[2, 3, 7], &[(1, 8)]), "1,4:6,8");
        assert_eq!(absent(&[2, 3, 7], &[(2, 3), (3, 3)]), "");
        assert_eq!(absent(&[], &[(1, 2), (2, 5)]), "1:5");
        let m = modified("p STATUS INBOX (SIZE MESSAGES)\r\n");
        assert_eq!(
            (m.input.as_slice(), m.modifiers),
            (&b"p STATUS INBOX (MESSAGES)\r\n"[..], Modifiers::StatusSize)
        );
        let m = modified("r CREATE Junk (USE (\\Junk))\r\n");
        assert_eq!(m.input, b"r CREATE Junk\r\n");
        assert_eq!(m.modifiers, Modifiers::CreateUse(vec!["\\Junk".into()]));
        // none of them: imap-codec's
        for plain in [
            "g SELECT INBOX\r\n",
            "h FETCH 1 (FLAGS)\r\n",
            "i STORE 1 +FLAGS (x)\r\n",
            "j NOOP\r\n",
        ] {
            assert_eq!(parse(plain.as_bytes()), None, "{plain}");
        }
        for bad in [
            "k FETCH 1 FLAGS (CHANGEDSINCE x)\r\n",
            "l FETCH 1 FLAGS (VANISHED)\r\n",
            "m SELECT INBOX (QRESYNC 1 2)\r\n",
            "n STORE 1 (UNCHANGEDSINCE) +FLAGS (x)\r\n",
            "o FETCH 1 FLAGS (SOMETHING)\r\n",
        ] {
            assert!(matches!(parse(bad.as_bytes()), Some(Err(_))), "{bad}");
        }
    }
}
