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
