//! LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819) and SPECIAL-USE's
//! selection and return options (RFC 6154), which imap-codec 1.0 does not
//! parse: `LIST [(selection)] reference (pattern | (patterns)) [RETURN
//! (options)]`. A plain `LIST reference pattern` stays imap-codec's.

/// One extended LIST.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListExtended {
    pub reference: String,
    pub patterns: Vec<String>,
    /// Selection SUBSCRIBED: only subscribed names (and those that no
    /// longer exist, `\NonExistent`).
    pub subscribed: bool,
    /// Selection SPECIAL-USE: only mailboxes with a special use.
    pub special_use: bool,
    /// RETURN (SUBSCRIBED): `\Subscribed` on subscribed names.
    pub return_subscribed: bool,
    /// RETURN (STATUS (…)): the upper-case item names.
    pub status: Option<Vec<String>>,
}

/// Reads a LIST command: None for a plain one (imap-codec's) or another
/// command, `Err(text)` for a BAD answer.
pub fn parse(input: &[u8]) -> Option<Result<ListExtended, String>> {
    // a literal mailbox name: imap-codec's (which refuses the extensions)
    if input.windows(3).any(|w| w == b"}\r\n") {
        return None;
    }
    let line = std::str::from_utf8(input).ok()?.trim_end_matches(['\r', '\n']);
    let (_tag, rest) = line.split_once(' ')?;
    let (command, rest) = rest.split_once(' ')?;
    if !command.eq_ignore_ascii_case("LIST") {
        return None;
    }
    let mut tokens = tokenize(rest).ok()?;
    let extended = matches!(tokens.first(), Some(Token::List(_)))
        || matches!(tokens.get(1), Some(Token::List(_)))
        || tokens.len() > 2;
    if !extended {
        return None;
    }
    Some(build(&mut tokens))
}

fn build(tokens: &mut Vec<Token>) -> Result<ListExtended, String> {
    let mut list = ListExtended::default();
    let mut tokens = std::mem::take(tokens).into_iter().peekable();
    if let Some(Token::List(options)) = tokens.peek() {
        let options = options.clone();
        tokens.next();
        for option in options {
            match word(&option)?.to_ascii_uppercase().as_str() {
                "SUBSCRIBED" => list.subscribed = true,
                "SPECIAL-USE" => list.special_use = true,
                // no remote mailboxes here; children are always told
                "REMOTE" | "RECURSIVEMATCH" => {}
                other => return Err(format!("Unknown LIST selection option {other}")),
            }
        }
    }
    list.reference = match tokens.next() {
        Some(Token::Word(w)) => w,
        _ => return Err("LIST needs a reference".into()),
    };
    list.patterns = match tokens.next() {
        Some(Token::Word(w)) => vec![w],
        Some(Token::List(items)) => items.iter().map(word).collect::<Result<_, _>>()?,
        None => return Err("LIST needs a mailbox pattern".into()),
    };
    match (tokens.next(), tokens.next()) {
        (None, _) => {}
        (Some(Token::Word(r)), Some(Token::List(options))) if r.eq_ignore_ascii_case("RETURN") => {
            let mut options = options.into_iter().peekable();
            while let Some(option) = options.next() {
                match word(&option)?.to_ascii_uppercase().as_str() {
                    "SUBSCRIBED" => list.return_subscribed = true,
                    // told always
                    "CHILDREN" | "SPECIAL-USE" => {}
                    "STATUS" => match options.next() {
                        Some(Token::List(items)) => {
                            let items: Vec<String> = items
                                .iter()
                                .map(|i| word(i).map(|w| w.to_ascii_uppercase()))
                                .collect::<Result<_, _>>()?;
                            list.status = Some(items);
                        }
                        _ => return Err("RETURN STATUS needs a list of status items".into()),
                    },
                    other => return Err(format!("Unknown LIST return option {other}")),
                }
            }
        }
        _ => return Err("Unexpected words after the LIST patterns".into()),
    }
    if tokens.next().is_some() {
        return Err("Unexpected words after RETURN".into());
    }
    Ok(list)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    List(Vec<Token>),
}

fn word(token: &Token) -> Result<String, String> {
    match token {
        Token::Word(w) => Ok(w.clone()),
        Token::List(_) => Err("Unexpected list".into()),
    }
}

/// Atoms, quoted strings (unescaped) and parenthesised lists.
fn tokenize(text: &str) -> Result<Vec<Token>, ()> {
    let mut stack: Vec<Vec<Token>> = vec![Vec::new()];
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' => {
                chars.next();
            }
            '(' => {
                chars.next();
                stack.push(Vec::new());
                if stack.len() > 8 {
                    return Err(());
                }
            }
            ')' => {
                chars.next();
                let list = stack.pop().ok_or(())?;
                stack.last_mut().ok_or(())?.push(Token::List(list));
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next().ok_or(())? {
                        '\\' => s.push(chars.next().ok_or(())?),
                        '"' => break,
                        c => s.push(c),
                    }
                }
                stack.last_mut().ok_or(())?.push(Token::Word(s));
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, ' ' | '(' | ')' | '"') {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                stack.last_mut().ok_or(())?.push(Token::Word(s));
            }
        }
    }
    match (stack.pop(), stack.is_empty()) {
        (Some(tokens), true) => Ok(tokens),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_lists() {
        let l =
            parse(b"a LIST (SUBSCRIBED) \"\" (\"INBOX\" \"Work/*\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n")
                .unwrap()
                .unwrap();
        assert!(l.subscribed && !l.special_use);
        assert_eq!(l.patterns, ["INBOX", "Work/*"]);
        assert_eq!(l.status, Some(vec!["MESSAGES".to_owned(), "UNSEEN".to_owned()]));
        let l = parse(b"b LIST \"\" * RETURN (SPECIAL-USE SUBSCRIBED)\r\n")
            .unwrap()
            .unwrap();
        assert!(l.return_subscribed && l.patterns == ["*"]);
        let l = parse(b"c LIST (SPECIAL-USE) \"\" \"*\"\r\n").unwrap().unwrap();
        assert!(l.special_use);
        // plain LIST: imap-codec's
        assert_eq!(parse(b"d LIST \"\" \"*\"\r\n"), None);
        assert_eq!(parse(b"e LSUB \"\" \"*\"\r\n"), None);
        for bad in [
            &b"f LIST (COLOURFUL) \"\" *\r\n"[..],
            b"g LIST \"\" * RETURN (NEWEST)\r\n",
            b"h LIST \"\" * RETURN (STATUS)\r\n",
            b"i LIST \"\" * EXTRA (x)\r\n",
        ] {
            assert!(matches!(parse(bad), Some(Err(_))), "{}", String::from_utf8_lossy(bad));
        }
    }
}
