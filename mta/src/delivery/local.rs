//! Local delivery: lda's delivery, once per recipient, in a child of the
//! delivery helper ([`crate::helper`]: it keeps root while mtad becomes
//! its service user, and each child becomes the recipient), as Postfix's
//! `local` delivers. lda's exit code decides (sysexits): 0 delivered; 75 —
//! and anything that may pass, a configuration or I/O error, a signal —
//! try again later; 64, 65, 67, 77 the recipient cannot be reached:
//! bounce. An mtad started as a user delivers only to that user, as lda
//! run by that user does.

use bsfilter::error::exit;

use super::Outcome;

/// What a delivery that succeeded did with the message, as the helper's
/// child tells mtad (`VERDICT PROBABILITY MAILBOX`, one line) and as mtad
/// logs it (`event="delivered"`, which the site report counts: the part
/// of a user's mail the filter called spam).
#[derive(Debug, Clone, PartialEq)]
pub struct Filed {
    /// `spam`, `clean`, `unfiltered` (filtering off or failed) or
    /// `discarded` (spam above lda's `discard_above`).
    pub verdict: &'static str,
    pub probability: Option<f64>,
    /// The mbox it went to; empty when discarded.
    pub mailbox: String,
}

impl Filed {
    pub fn of(outcome: &lda::deliver::Outcome) -> Filed {
        match outcome {
            lda::deliver::Outcome::Delivered { mbox, verdict, .. } => Filed {
                verdict: match verdict {
                    Some(v) if v.is_spam => "spam",
                    Some(_) => "clean",
                    None => "unfiltered",
                },
                probability: verdict.map(|v| v.probability),
                mailbox: mbox.display().to_string(),
            },
            lda::deliver::Outcome::Discarded { probability } => Filed {
                verdict: "discarded",
                probability: Some(*probability),
                mailbox: String::new(),
            },
        }
    }

    /// Reads back what [`Filed`]'s `Display` wrote; None for anything else.
    pub fn parse(text: &str) -> Option<Filed> {
        let mut words = text.splitn(3, ' ');
        let verdict = match words.next()? {
            "spam" => "spam",
            "clean" => "clean",
            "unfiltered" => "unfiltered",
            "discarded" => "discarded",
            _ => return None,
        };
        let probability = match words.next()? {
            "-" => None,
            p => Some(p.parse().ok()?),
        };
        Some(Filed {
            verdict,
            probability,
            mailbox: words.next().unwrap_or("").to_owned(),
        })
    }
}

impl std::fmt::Display for Filed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.probability {
            Some(p) => write!(f, "{} {p:.6} {}", self.verdict, self.mailbox),
            None => write!(f, "{} - {}", self.verdict, self.mailbox),
        }
    }
}

/// What lda's delivery for one recipient ended in (its exit code, or
/// None for a signal, and the last line it said).
pub fn outcome_of(code: Option<i32>, stderr: &str) -> Outcome {
    let said = stderr
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .trim_start_matches("lda: ")
        .to_owned();
    match code {
        Some(0) => Outcome::sent("2.0.0", "delivered to mailbox", "local"),
        Some(exit::NOUSER) => Outcome::bounced("5.1.1", &said, "local"),
        // (lda's own words for a delivery past the user's quota)
        Some(exit::NOPERM) if said.contains(": mailbox full: ") => Outcome::bounced("5.2.2", &said, "local"),
        Some(exit::NOPERM) => Outcome::bounced("5.7.0", &said, "local"),
        Some(exit::USAGE) => Outcome::bounced("5.3.0", &said, "local"),
        Some(exit::DATAERR) => Outcome::bounced("5.6.0", &said, "local"),
        Some(exit::TEMPFAIL) => Outcome::deferred("4.3.0", &said, "local"),
        Some(code) => Outcome::deferred("4.3.0", &format!("lda exited {code}: {said}"), "local"),
        None => Outcome::deferred("4.3.0", "lda was killed by a signal", "local"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Status;

    #[test]
    fn filed_round_trip() {
        for filed in [
            Filed {
                verdict: "spam",
                probability: Some(0.999),
                mailbox: "/home/a b/mail/Spam".into(),
            },
            Filed {
                verdict: "unfiltered",
                probability: None,
                mailbox: "/var/mail/alice".into(),
            },
            Filed {
                verdict: "discarded",
                probability: Some(1.0),
                mailbox: String::new(),
            },
        ] {
            assert_eq!(Filed::parse(&filed.to_string()), Some(filed));
        }
        assert_eq!(Filed::parse("delivered unfiltered: x"), None);
        assert_eq!(Filed::parse("spam nan? /x"), None);
    }

    #[test]
    fn exit_codes() {
        assert_eq!(outcome_of(Some(0), "").status, Status::Sent);
        let o = outcome_of(Some(67), "lda: bob: no such user\n");
        assert_eq!(
            (o.status, o.dsn.as_str(), o.reply.as_str()),
            (Status::Bounced, "5.1.1", "bob: no such user")
        );
        for code in [75, 74, 78, 71, 70] {
            assert_eq!(outcome_of(Some(code), "").status, Status::Deferred, "{code}");
        }
        for code in [64, 65, 77] {
            assert_eq!(outcome_of(Some(code), "").status, Status::Bounced, "{code}");
        }
        assert_eq!(outcome_of(None, "").status, Status::Deferred);
        // a full mailbox: RFC 3463's 5.2.2
        let o = outcome_of(
            Some(77),
            "lda: alice: mailbox full: 2 KB used of 2 KB, and the message is 1 KB\n",
        );
        assert_eq!((o.status, o.dsn.as_str()), (Status::Bounced, "5.2.2"));
        assert_eq!(outcome_of(Some(77), "lda: refusing x: it is a link\n").dsn, "5.7.0");
    }
}
