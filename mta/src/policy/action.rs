//! What a table's value says to do: the actions of Postfix's access(5)
//! and header_checks(5), parsed once per lookup from the value's text.

use crate::smtp::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `OK`, or a number (as Postfix): accept, ask no further.
    Ok,
    /// `DUNNO`: as if not found, and stop trying parts of the key.
    Dunno,
    /// `REJECT`, `DEFER`, `4NN`, `5NN`: refuse with this code, optional
    /// enhanced code from the text, and the text.
    Refuse {
        code: u16,
        status: Option<[u16; 3]>,
        text: Option<String>,
    },
    /// Postfix's DEFER_IF_REJECT and DEFER_IF_PERMIT, with their text.
    DeferIfReject(Option<String>),
    DeferIfPermit(Option<String>),
    Discard(Option<String>),
    Hold(Option<String>),
    /// Log the text, go on.
    Warn(Option<String>),
    /// Add this header field (`Name: value`).
    Prepend(String),
    /// Send the message to this address instead of its recipients.
    Redirect(String),
    /// header/body checks: delete the line.
    Ignore,
    /// header/body checks: replace the line with this text.
    Replace(String),
    /// An action Postfix has that we have not, or a word that is none.
    Unknown(String),
}

impl Action {
    /// `reject_code`/`defer_code`: what REJECT and DEFER mean where the
    /// table is used (access tables 554 and 450, content checks 550 and 450).
    pub fn parse(value: &str, reject_code: u16, defer_code: u16) -> Action {
        let value = value.trim();
        let (word, rest) = match value.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (value, ""),
        };
        let text = (!rest.is_empty()).then(|| rest.to_owned());
        match word.to_ascii_uppercase().as_str() {
            "OK" => Action::Ok,
            w if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) && !is_reply_code(w) => Action::Ok,
            "DUNNO" => Action::Dunno,
            "REJECT" => refuse(reject_code, text),
            "DEFER" => refuse(defer_code, text),
            w if is_reply_code(w) => refuse(w.parse().unwrap_or(reject_code), text),
            "DEFER_IF_REJECT" => Action::DeferIfReject(text),
            "DEFER_IF_PERMIT" => Action::DeferIfPermit(text),
            "DISCARD" => Action::Discard(text),
            "HOLD" => Action::Hold(text),
            "WARN" => Action::Warn(text),
            "PREPEND" if rest.contains(':') => Action::Prepend(rest.to_owned()),
            "REDIRECT" if !rest.is_empty() => Action::Redirect(rest.to_owned()),
            "IGNORE" => Action::Ignore,
            "REPLACE" if rest.contains(':') || !rest.is_empty() => Action::Replace(rest.to_owned()),
            _ => Action::Unknown(value.to_owned()),
        }
    }

    /// An action of header_checks(5)/body_checks: as in access tables,
    /// except that REJECT is 550 (451 when its text starts with a 4.x.x
    /// code) and DEFER, `4NN` and `5NN` are not actions there (Postfix
    /// warns and skips them).
    pub fn parse_content(value: &str) -> Action {
        let word = value.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        match Action::parse(value, 550, 450) {
            Action::Refuse { .. } if word == "REJECT" => {
                let rest = value.trim().split_once(char::is_whitespace).map(|(_, r)| r.trim());
                let text = rest.filter(|r| !r.is_empty()).map(str::to_owned);
                // a 4.x.x code in front makes it temporary
                match refuse(451, text.clone()) {
                    temporary @ Action::Refuse { status: Some(_), .. } => temporary,
                    _ => refuse(550, text),
                }
            }
            Action::Refuse { .. } => Action::Unknown(value.trim().to_owned()),
            other => other,
        }
    }

    /// The reply a refusal gives, its text after `prefix` (such as
    /// `<a@b>: Sender address rejected: `), `default` when the table gave
    /// none.
    pub fn reply(code: u16, status: Option<[u16; 3]>, text: Option<&str>, prefix: &str, default: &str) -> Reply {
        let class = code / 100;
        let status = status.unwrap_or([class, 7, 1]);
        Reply::new(code, status, format!("{prefix}{}", text.unwrap_or(default)))
    }
}

/// A three-digit 4NN or 5NN.
fn is_reply_code(word: &str) -> bool {
    word.len() == 3 && matches!(word.as_bytes()[0], b'4' | b'5') && word.bytes().all(|b| b.is_ascii_digit())
}

/// A refusal, the enhanced code taken from the front of the text when it
/// has one of the reply's class (`REJECT 5.7.3 go away`).
fn refuse(code: u16, text: Option<String>) -> Action {
    let class = code / 100;
    if let Some(t) = &text {
        let (first, rest) = t.split_once(' ').unwrap_or((t, ""));
        let parts: Vec<u16> = first.split('.').filter_map(|p| p.parse().ok()).collect();
        if let [c, a, b] = parts[..]
            && first.split('.').count() == 3
            && c == class
        {
            let rest = rest.trim();
            return Action::Refuse {
                code,
                status: Some([c, a, b]),
                text: (!rest.is_empty()).then(|| rest.to_owned()),
            };
        }
    }
    Action::Refuse {
        code,
        status: None,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        let p = |v: &str| Action::parse(v, 554, 450);
        assert_eq!(p("OK"), Action::Ok);
        assert_eq!(p("ok"), Action::Ok);
        assert_eq!(p("1234"), Action::Ok, "a number is OK");
        assert_eq!(p("DUNNO"), Action::Dunno);
        assert_eq!(
            p("REJECT"),
            Action::Refuse {
                code: 554,
                status: None,
                text: None
            }
        );
        assert_eq!(
            p("REJECT 5.7.3 no thanks"),
            Action::Refuse {
                code: 554,
                status: Some([5, 7, 3]),
                text: Some("no thanks".into())
            }
        );
        assert_eq!(
            p("REJECT 4.7.3 wrong class"),
            Action::Refuse {
                code: 554,
                status: None,
                text: Some("4.7.3 wrong class".into())
            }
        );
        assert_eq!(
            p("DEFER try later"),
            Action::Refuse {
                code: 450,
                status: None,
                text: Some("try later".into())
            }
        );
        assert_eq!(
            p("421 closing"),
            Action::Refuse {
                code: 421,
                status: None,
                text: Some("closing".into())
            }
        );
        assert_eq!(
            p("550"),
            Action::Refuse {
                code: 550,
                status: None,
                text: None
            }
        );
        assert_eq!(p("PREPEND X-Seen: yes"), Action::Prepend("X-Seen: yes".into()));
        assert_eq!(p("PREPEND no-colon"), Action::Unknown("PREPEND no-colon".into()));
        assert_eq!(
            p("REDIRECT abuse@example.jp"),
            Action::Redirect("abuse@example.jp".into())
        );
        assert_eq!(p("HOLD"), Action::Hold(None));
        assert_eq!(p("DISCARD bye"), Action::Discard(Some("bye".into())));
        assert_eq!(p("WARN look"), Action::Warn(Some("look".into())));
        assert_eq!(
            p("FILTER smtp:[127.0.0.1]:10025"),
            Action::Unknown("FILTER smtp:[127.0.0.1]:10025".into())
        );
        let c = Action::parse_content;
        assert_eq!(
            c("REJECT"),
            Action::Refuse {
                code: 550,
                status: None,
                text: None
            }
        );
        assert_eq!(
            c("REJECT 4.7.0 not today"),
            Action::Refuse {
                code: 451,
                status: Some([4, 7, 0]),
                text: Some("not today".into())
            }
        );
        assert_eq!(c("DEFER later"), Action::Unknown("DEFER later".into()));
        assert_eq!(c("550 no"), Action::Unknown("550 no".into()));
        let r = Action::reply(554, None, None, "<a@b>: Sender address rejected: ", "Access denied");
        assert_eq!(r.one_line(), "554 5.7.1 <a@b>: Sender address rejected: Access denied");
    }
}
