//! Delivery status notifications (RFC 3464): the one message a sender
//! gets when recipients of theirs failed for good, or were delivered and
//! asked to be told (NOTIFY=SUCCESS). A multipart/report with a text
//! part a person reads, the machine-readable `message/delivery-status`,
//! and the original message (RET=FULL, the default) or its header
//! (RET=HDRS). It comes from the null sender, so it is never answered by
//! another: no notification for mail from `<>`, never a bounce of a
//! bounce.

use std::time::SystemTime;

use crate::envelope::{Envelope, Return};
use crate::queue::{RecipientState, Status};
use crate::session::rfc5322_date;

/// What the report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failure,
    Success,
}

/// The original's header (up to the empty line).
fn header_of(message: &[u8]) -> &[u8] {
    match memchr::memmem::find(message, b"\n\n") {
        Some(i) => &message[..i + 1],
        None => message,
    }
}

/// The report for `recipients` (index into the envelope's, with their
/// state), or None when the sender gets none (null sender).
pub fn report(
    hostname: &str,
    queue_id: &str,
    envelope: &Envelope,
    message: &[u8],
    recipients: &[(usize, &RecipientState)],
    kind: Kind,
) -> Option<Vec<u8>> {
    if envelope.sender.is_empty() || recipients.is_empty() {
        return None;
    }
    let now = SystemTime::now();
    let boundary = format!(
        "{queue_id}.{}/{hostname}",
        now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    );
    let (subject, intro) = match kind {
        Kind::Failure => (
            "Undelivered Mail Returned to Sender",
            "I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients. It's attached below.",
        ),
        Kind::Success => (
            "Successful Mail Delivery Report",
            "Your message was successfully delivered to the destination(s)\nlisted below.",
        ),
    };
    let mut text = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\n\
         To: <{sender}>\n\
         Subject: {subject}\n\
         Date: {date}\n\
         Message-ID: <{queue_id}.dsn@{hostname}>\n\
         Auto-Submitted: auto-replied\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"\n\n\
         This is a MIME-encapsulated message.\n\n\
         --{boundary}\n\
         Content-Description: Notification\n\
         Content-Type: text/plain; charset=utf-8\n\n\
         This is the mail system at host {hostname}.\n\n{intro}\n\n",
        sender = envelope.sender,
        date = rfc5322_date(now),
    );
    for (i, state) in recipients {
        let r = &envelope.recipients[*i];
        let said = if state.reply.is_empty() {
            state.status_text()
        } else {
            state.reply.clone()
        };
        text.push_str(&format!("<{}>: {said}\n", r.address));
    }
    text.push_str(&format!(
        "\n--{boundary}\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n\
         Reporting-MTA: dns; {hostname}\nX-Mailkit-Queue-ID: {queue_id}\n"
    ));
    if let Some(envid) = &envelope.envid {
        text.push_str(&format!("Original-Envelope-Id: {envid}\n"));
    }
    text.push_str(&format!("Arrival-Date: {}\n", rfc5322_date(envelope.arrival)));
    for (i, state) in recipients {
        let r = &envelope.recipients[*i];
        text.push_str(&format!("\nFinal-Recipient: rfc822; {}\n", r.address));
        if let Some(orcpt) = &r.orcpt {
            text.push_str(&format!("Original-Recipient: rfc822; {orcpt}\n"));
        }
        let action = match (kind, state.status) {
            (Kind::Success, _) if state.relay != "local" => "relayed",
            (Kind::Success, _) => "delivered",
            _ => "failed",
        };
        text.push_str(&format!("Action: {action}\nStatus: {}\n", state.dsn));
        if state.relay != "local" && !state.relay.is_empty() && state.relay != "none" {
            let host = state.relay.split('[').next().unwrap_or(&state.relay);
            text.push_str(&format!("Remote-MTA: dns; {host}\n"));
        }
        if !state.reply.is_empty() {
            let kind = if state.relay == "local" { "x-unix" } else { "smtp" };
            text.push_str(&format!("Diagnostic-Code: {kind}; {}\n", state.reply));
        }
    }
    let headers_only = kind == Kind::Success || envelope.ret == Some(Return::Headers);
    if headers_only {
        text.push_str(&format!(
            "\n--{boundary}\nContent-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers\n\n"
        ));
    } else {
        text.push_str(&format!(
            "\n--{boundary}\nContent-Description: Undelivered Message\nContent-Type: message/rfc822\n\n"
        ));
    }
    let mut out = text.into_bytes();
    out.extend_from_slice(if headers_only { header_of(message) } else { message });
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    Some(out)
}

impl RecipientState {
    fn status_text(&self) -> String {
        match self.status {
            Status::Sent => "delivered".into(),
            _ => format!("failed ({})", self.dsn),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Recipient;
    use mail_parser::MimeHeaders;

    fn envelope(sender: &str) -> Envelope {
        let recipient = Recipient {
            orcpt: Some("nobody@example.jp".into()),
            ..Recipient::new("nobody@example.jp", None)
        };
        Envelope {
            envid: Some("ID42".into()),
            arrival: SystemTime::UNIX_EPOCH,
            ..Envelope::new(
                sender,
                vec![recipient],
                ("c", "192.0.2.1".parse().unwrap()),
                "c",
                "ESMTP",
            )
        }
    }

    #[test]
    fn a_failure_report() {
        let state = RecipientState {
            status: Status::Bounced,
            dsn: "5.1.1".into(),
            relay: "mx.example.jp[192.0.2.25]:25".into(),
            reply: "550 5.1.1 <nobody@example.jp>: User unknown".into(),
            ..RecipientState::default()
        };
        let message = b"Subject: hello\nFrom: a@example.org\n\nthe body\n";
        let report_bytes = report(
            "mx.example.org",
            "ABC",
            &envelope("a@example.org"),
            message,
            &[(0, &state)],
            Kind::Failure,
        )
        .unwrap();
        let text = String::from_utf8(report_bytes.clone()).unwrap();
        for want in [
            "To: <a@example.org>",
            "report-type=delivery-status",
            "Reporting-MTA: dns; mx.example.org",
            "Original-Envelope-Id: ID42",
            "Final-Recipient: rfc822; nobody@example.jp",
            "Original-Recipient: rfc822; nobody@example.jp",
            "Action: failed",
            "Status: 5.1.1",
            "Remote-MTA: dns; mx.example.jp",
            "Diagnostic-Code: smtp; 550 5.1.1",
            "Content-Type: message/rfc822",
            "the body",
        ] {
            assert!(text.contains(want), "{want} in:\n{text}");
        }
        // a real MIME message: a multipart/report of three parts, the
        // last the original message
        let parsed = mail_parser::MessageParser::default().parse(&report_bytes).unwrap();
        let root = &parsed.parts[0];
        assert_eq!(root.content_type().unwrap().subtype(), Some("report"));
        let mail_parser::PartType::Multipart(children) = &root.body else {
            panic!("not multipart")
        };
        assert_eq!(children.len(), 3);
        let types: Vec<String> = children
            .iter()
            .map(|&i| {
                let ct = parsed.parts[i as usize].content_type().unwrap();
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
            })
            .collect();
        assert_eq!(types, ["text/plain", "message/delivery-status", "message/rfc822"]);
        assert!(
            report("h", "Q", &envelope(""), b"x", &[(0, &state)], Kind::Failure).is_none(),
            "nothing for the null sender"
        );
    }
}
