//! Sender authentication at the end of DATA, for mail from outside (not
//! mynetworks, not logged in): SPF (RFC 7208) for the HELO and the MAIL
//! FROM identities, every DKIM signature (RFC 6376), the ARC chain (RFC
//! 8617) of a list that forwarded it, and DMARC (RFC 7489) on the header
//! From's domain — with Stalwart's `mail-auth`, whose lookups go through
//! mtad's one resolver ([`Dns`]: `[mtad] resolver`, else the system's),
//! its answers cached for their TTLs, each lookup bounded in time.
//!
//! The verdicts are one `Authentication-Results:` field (RFC 8601) under
//! the site's `hostname` as authserv-id; a field that came from outside
//! claiming that id is removed first (RFC 8601 §5: at the edge it is a
//! forgery). Then the site's policy:
//!
//! - DMARC `p=reject` with a DMARC failure → `550 5.7.1` (`dmarc_reject`,
//!   on by default); `p=quarantine` → the recipient's Spam folder, through
//!   lda (`dmarc_quarantine`, on by default);
//! - SPF `fail` (`-all`) → `550 5.7.23` only with `spf_fail_reject`;
//! - a DNS failure (SPF or DMARC `temperror`) → `451 4.7.0`, try later,
//!   never a pass (`auth_tempfail`, on by default).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator, SpfOutput, SpfResult,
    dmarc::Policy, dmarc::verify::DmarcParameters, spf::verify::SpfParameters,
};

use super::{Facts, Point, Stage, Verdict, spf_record};
use crate::dns::Dns;
use crate::smtp::reply::Reply;

pub struct SenderAuth {
    authenticator: MessageAuthenticator,
    /// The same resolver, for the SPF record checks of our own.
    dns: Dns,
    /// The authserv-id: the site's hostname.
    hostname: String,
    pub dmarc_reject: bool,
    /// A DMARC failure where the domain says p=quarantine goes to the
    /// recipient's Spam folder (lda reads [`lda::deliver::QUARANTINE_FIELD`]).
    pub dmarc_quarantine: bool,
    pub spf_fail_reject: bool,
    pub tempfail: bool,
}

impl SenderAuth {
    /// Lookups go through `dns`, mtad's resolver.
    pub fn new(dns: &Dns, hostname: &str) -> SenderAuth {
        let authenticator = MessageAuthenticator(dns.resolver().clone());
        SenderAuth {
            authenticator,
            dns: dns.clone(),
            hostname: hostname.to_owned(),
            dmarc_reject: true,
            dmarc_quarantine: true,
            spf_fail_reject: false,
            tempfail: true,
        }
    }

    /// `output`, or a permerror when `domain`'s own SPF records break
    /// RFC 7208's rules (two records, a term outside its grammar). A
    /// lookup that fails leaves mail-auth's result.
    async fn strict(&self, domain: &str, output: SpfOutput) -> SpfOutput {
        if domain.is_empty() || matches!(output.result(), SpfResult::TempError | SpfResult::None) {
            return output;
        }
        let Some(records) = self.dns.texts(&format!("{domain}.")).await else {
            return output;
        };
        match spf_record::permerror(&records) {
            Some(why) => {
                tracing::info!(domain = %domain, "SPF permerror: {why}");
                SpfOutput::new(domain.to_owned()).with_result(SpfResult::PermError)
            }
            None => output,
        }
    }

    async fn verdict(&self, facts: &Facts, message: &[u8], client: IpAddr) -> Verdict {
        // as it came over the wire: simple canonicalization hashes bytes
        let wire = crate::queue::with_crlf(message);
        let Some(parsed) = AuthenticatedMessage::parse(&wire) else {
            // not a message mail-auth can read: nothing to vouch for
            return Verdict::Continue;
        };
        let sender = facts.sender.as_deref().unwrap_or("");
        let helo = facts.helo.trim_start_matches('[').trim_end_matches(']');
        // RFC 7208 §2.3: the HELO identity is checked too; the MAIL FROM's
        // result is the one DMARC and the policy use (HELO's when empty)
        let spf_helo = self
            .authenticator
            .verify_spf(SpfParameters::verify_ehlo(client, helo, &self.hostname))
            .await;
        let spf = if sender.is_empty() {
            spf_helo.clone()
        } else {
            self.authenticator
                .verify_spf(SpfParameters::verify_mail_from(client, helo, &self.hostname, sender))
                .await
        };
        // RFC 7208's record checks mail-auth leaves out (spf_record.rs)
        let spf_helo = self.strict(helo, spf_helo).await;
        let spf = match sender.rsplit_once('@') {
            Some((_, domain)) => self.strict(domain, spf).await,
            None => spf,
        };
        let dkim = self.authenticator.verify_dkim(&parsed).await;
        // ARC (RFC 8617): what a mailing list's server found before it
        // changed the message; recorded for the reader, no policy uses it
        let arc = self.authenticator.verify_arc(&parsed).await;
        let mail_from_domain = match sender.rsplit_once('@') {
            Some((_, domain)) => domain,
            None => helo,
        };
        let dmarc = self
            .authenticator
            .verify_dmarc(DmarcParameters::new(&parsed, &dkim, mail_from_domain, &spf))
            .await;
        let header_from = parsed.from().to_owned();
        let mut results = AuthenticationResults::new(&self.hostname).with_dkim_results(&dkim, &header_from);
        if !helo.is_empty() {
            results = results.with_spf_ehlo_result(&spf_helo, client, helo);
        }
        let results = results
            .with_spf_mailfrom_result(&spf, client, sender, helo)
            .with_arc_result(&arc, client)
            .with_dmarc_result(&dmarc);
        // one line: the folding mail-auth writes is ours to choose
        let field = format!("Authentication-Results: {results}")
            .replace("\r\n\t", " ")
            .replace("\r\n", " ");
        let dmarc_failed = *dmarc.dkim_result() != DmarcResult::Pass && *dmarc.spf_result() != DmarcResult::Pass;
        let dmarc_temp = matches!(dmarc.dkim_result(), DmarcResult::TempError(_))
            || matches!(dmarc.spf_result(), DmarcResult::TempError(_));
        let spf_result = spf.result();
        tracing::info!(
            event = "sender_auth",
            client = %client,
            from = %sender,
            header_from = %header_from,
            spf = ?spf_result,
            dkim = %dkim.iter().map(|d| format!("{:?}", d.result())).collect::<Vec<_>>().join(","),
            dmarc_policy = ?dmarc.policy(),
            dmarc_failed,
            "checked"
        );
        if self.tempfail && (spf_result == SpfResult::TempError || dmarc_temp) {
            return Verdict::Reject(Reply::new(
                451,
                [4, 7, 0],
                "Sender authentication could not be checked (DNS); try again later",
            ));
        }
        if self.dmarc_reject && dmarc_failed && dmarc.policy() == Policy::Reject {
            return Verdict::Reject(Reply::new(
                550,
                [5, 7, 1],
                format!("Message rejected: it fails the DMARC policy of {}", dmarc.domain()),
            ));
        }
        if self.spf_fail_reject && spf_result == SpfResult::Fail {
            return Verdict::Reject(Reply::new(
                550,
                [5, 7, 23],
                format!("Message rejected: SPF does not allow {client} to send for {mail_from_domain}"),
            ));
        }
        let mut effects = Vec::new();
        let unforged = unforged(message, &self.hostname);
        if unforged.len() != message.len() {
            effects.push(Verdict::Rewrite(unforged));
        }
        let mut fields = vec![field];
        if self.dmarc_quarantine && dmarc_failed && dmarc.policy() == Policy::Quarantine {
            tracing::info!(event = "quarantine", client = %client, header_from = %header_from, "DMARC p=quarantine: to the Spam folder");
            fields.push(format!(
                "{}: dmarc=fail header.from={}",
                lda::deliver::QUARANTINE_FIELD,
                dmarc.domain()
            ));
        }
        effects.push(Verdict::AddHeaders(fields));
        Verdict::Several(effects)
    }
}

/// `message` without what only the site may write: the
/// `Authentication-Results` fields whose authserv-id is `hostname`, and
/// the quarantine field.
fn unforged(message: &[u8], hostname: &str) -> Vec<u8> {
    bsfilter::headers::remove_fields_where(message, |name, value| {
        (name.eq_ignore_ascii_case(b"Authentication-Results")
            && authserv_id(value).eq_ignore_ascii_case(hostname.as_bytes()))
            || name.eq_ignore_ascii_case(lda::deliver::QUARANTINE_FIELD.as_bytes())
    })
}

/// The authserv-id at the start of an Authentication-Results value.
fn authserv_id(value: &[u8]) -> &[u8] {
    let value = value.trim_ascii_start();
    let end = value
        .iter()
        .position(|&b| b == b';' || b.is_ascii_whitespace())
        .unwrap_or(value.len());
    &value[..end]
}

impl Stage for SenderAuth {
    fn name(&self) -> &'static str {
        "sender_auth"
    }

    fn check<'a>(&'a self, point: Point, facts: &'a Facts) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            match (point, &facts.message, facts.client_addr, facts.trusted) {
                (Point::Data, Some(message), Some(client), false) => self.verdict(facts, message, client).await,
                _ => Verdict::Continue,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_results_from_outside_are_removed_others_kept() {
        let message = b"Authentication-Results: mx.example.jp; spf=pass\r\n smtp.mailfrom=x\r\n\
Authentication-Results: other.example; dkim=pass\r\nX-Mailkit-Quarantine: forged\r\nSubject: s\r\n\r\nAuthentication-Results: mx.example.jp; body\r\n";
        let out = unforged(message, "MX.example.jp");
        assert_eq!(
            out,
            b"Authentication-Results: other.example; dkim=pass\r\nSubject: s\r\n\r\nAuthentication-Results: mx.example.jp; body\r\n"
        );
    }
}
