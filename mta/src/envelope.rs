//! What a message carries besides its content: who sent it from where,
//! its sender and recipients with their DSN requests (RFC 3461), kept in
//! the queue with the message and read back by delivery.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RFC 3461 NOTIFY for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
    /// NOTIFY=NEVER.
    pub never: bool,
    /// Whether the client gave NOTIFY at all (without it: failure and
    /// delay, the default).
    pub given: bool,
}

impl Notify {
    /// Whether a failure is reported to the sender.
    pub fn on_failure(&self) -> bool {
        !self.never && (!self.given || self.failure)
    }

    fn text(&self) -> String {
        if !self.given {
            return "-".into();
        }
        if self.never {
            return "NEVER".into();
        }
        let mut parts = Vec::new();
        for (on, name) in [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ] {
            if on {
                parts.push(name);
            }
        }
        parts.join(",")
    }

    fn parse(text: &str) -> Notify {
        if text == "-" {
            return Notify::default();
        }
        let mut n = Notify {
            given: true,
            ..Notify::default()
        };
        for word in text.split(',') {
            match word {
                "NEVER" => n.never = true,
                "SUCCESS" => n.success = true,
                "FAILURE" => n.failure = true,
                "DELAY" => n.delay = true,
                _ => {}
            }
        }
        n
    }
}

/// One recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    /// The local user it is delivered to, when its domain is ours.
    pub local_user: Option<String>,
    pub notify: Notify,
    /// ORCPT's address (its type is rfc822; xtext decoded).
    pub orcpt: Option<String>,
}

/// RET: what a DSN returns of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    Full,
    Headers,
}

/// The envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Empty for the null sender `<>` (bounces).
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub client_name: String,
    pub client_addr: IpAddr,
    pub helo: String,
    /// `SMTP`, `ESMTP`, `ESMTPS`, `ESMTPA`, `ESMTPSA` (RFC 3848), or
    /// `LOCAL` for what mtad makes itself.
    pub protocol: String,
    pub auth_user: Option<String>,
    pub ret: Option<Return>,
    /// ENVID (xtext decoded).
    pub envid: Option<String>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    /// When it was queued.
    pub arrival: SystemTime,
    /// How long it took to arrive, from MAIL to the end of its data.
    pub receiving: Duration,
}

/// A field as one word of its line: `%`, space and control characters
/// as `%XX`, an empty one as `-` (and a `-` itself as `%2D`).
fn clean(text: &str) -> String {
    if text.is_empty() {
        return "-".into();
    }
    if text == "-" {
        return "%2D".into();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '%' || c == ' ' || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The inverse of [`clean`].
fn unclean(text: &str) -> String {
    if text == "-" {
        return String::new();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Recipient {
    /// A recipient without DSN requests.
    pub fn new(address: &str, local_user: Option<&str>) -> Recipient {
        Recipient {
            address: address.to_owned(),
            local_user: local_user.map(str::to_owned),
            notify: Notify::default(),
            orcpt: None,
        }
    }
}

impl Envelope {
    /// An envelope from `sender` to `recipients`, received from
    /// `client` (name, address) who said `helo`, by `protocol`, now;
    /// without DSN requests, 7-bit.
    pub fn new(
        sender: &str,
        recipients: Vec<Recipient>,
        client: (&str, IpAddr),
        helo: &str,
        protocol: &str,
    ) -> Envelope {
        Envelope {
            sender: sender.to_owned(),
            recipients,
            client_name: client.0.to_owned(),
            client_addr: client.1,
            helo: helo.to_owned(),
            protocol: protocol.to_owned(),
            auth_user: None,
            ret: None,
            envid: None,
            eight_bit: false,
            smtputf8: false,
            arrival: SystemTime::now(),
            receiving: Duration::ZERO,
        }
    }

    /// The envelope as the queue file's head: one `key value` line each,
    /// recipients one a line, ended by a line with a single dot.
    pub fn write(&self, out: &mut Vec<u8>) {
        let arrival = self.arrival.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut text = format!(
            "mailkit-queue 1\narrival {}.{:06}\nreceiving {}\nclient {} {}\nhelo {}\nprotocol {}\nauth {}\nsender {}\nret {}\nenvid {}\nbody {}\nsmtputf8 {}\n",
            arrival.as_secs(),
            arrival.subsec_micros(),
            self.receiving.as_micros(),
            clean(&self.client_name),
            self.client_addr,
            clean(&self.helo),
            clean(&self.protocol),
            clean(self.auth_user.as_deref().unwrap_or("")),
            clean(&self.sender),
            match self.ret {
                None => "-",
                Some(Return::Full) => "FULL",
                Some(Return::Headers) => "HDRS",
            },
            clean(self.envid.as_deref().unwrap_or("")),
            if self.eight_bit { "8BITMIME" } else { "7BIT" },
            u8::from(self.smtputf8),
        );
        for r in &self.recipients {
            text.push_str(&format!(
                "rcpt {} {} {} {}\n",
                clean(&r.address),
                clean(r.local_user.as_deref().unwrap_or("")),
                r.notify.text(),
                clean(r.orcpt.as_deref().unwrap_or("")),
            ));
        }
        text.push_str(".\n");
        out.extend_from_slice(text.as_bytes());
    }

    /// Reads what [`Envelope::write`] wrote at the start of `data`;
    /// returns it and where the message starts.
    pub fn read(data: &[u8]) -> Option<(Envelope, usize)> {
        let end = memchr::memmem::find(data, b"\n.\n")? + 3;
        let head = std::str::from_utf8(&data[..end]).ok()?;
        let mut lines = head.lines();
        if lines.next()? != "mailkit-queue 1" {
            return None;
        }
        let mut envelope = Envelope {
            arrival: UNIX_EPOCH,
            ..Envelope::new("", Vec::new(), ("", IpAddr::from([0, 0, 0, 0])), "", "")
        };
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "arrival" => {
                    let (s, us) = value.split_once('.').unwrap_or((value, "0"));
                    envelope.arrival = UNIX_EPOCH
                        + Duration::from_secs(s.parse().ok()?)
                        + Duration::from_micros(us.parse().unwrap_or(0));
                }
                "receiving" => envelope.receiving = Duration::from_micros(value.parse().unwrap_or(0)),
                "client" => {
                    let (name, addr) = value.split_once(' ')?;
                    envelope.client_name = unclean(name);
                    envelope.client_addr = addr.parse().ok()?;
                }
                "helo" => envelope.helo = unclean(value),
                "protocol" => envelope.protocol = unclean(value),
                "auth" => envelope.auth_user = Some(unclean(value)).filter(|a| !a.is_empty()),
                "sender" => envelope.sender = unclean(value),
                "ret" => {
                    envelope.ret = match value {
                        "FULL" => Some(Return::Full),
                        "HDRS" => Some(Return::Headers),
                        _ => None,
                    }
                }
                "envid" => envelope.envid = Some(unclean(value)).filter(|e| !e.is_empty()),
                "body" => envelope.eight_bit = value == "8BITMIME",
                "smtputf8" => envelope.smtputf8 = value == "1",
                "rcpt" => {
                    let mut words = value.split(' ');
                    let address = unclean(words.next()?);
                    let local_user = Some(unclean(words.next()?)).filter(|u| !u.is_empty());
                    let notify = Notify::parse(words.next()?);
                    let orcpt = Some(unclean(words.next()?)).filter(|o| !o.is_empty());
                    envelope.recipients.push(Recipient {
                        address,
                        local_user,
                        notify,
                        orcpt,
                    });
                }
                "." => break,
                _ => {}
            }
        }
        Some((envelope, end))
    }

    /// `<sender>` as the log and replies show it.
    pub fn sender_display(&self) -> String {
        format!("<{}>", self.sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let e = Envelope {
            sender: "alice@example.org".into(),
            recipients: vec![
                Recipient {
                    address: "bob@example.jp".into(),
                    local_user: Some("bob".into()),
                    notify: Notify {
                        success: true,
                        failure: true,
                        given: true,
                        ..Notify::default()
                    },
                    orcpt: Some("rfc822;bob@example.jp".into()),
                },
                Recipient {
                    address: "carol@remote.example".into(),
                    local_user: None,
                    notify: Notify::default(),
                    orcpt: None,
                },
            ],
            client_name: "mail.example.org".into(),
            client_addr: "192.0.2.1".parse().unwrap(),
            helo: "hostile\nhelo %41 -".into(),
            protocol: "ESMTPS".into(),
            auth_user: None,
            ret: Some(Return::Headers),
            envid: Some("QQ314159".into()),
            eight_bit: true,
            smtputf8: false,
            arrival: UNIX_EPOCH + Duration::from_micros(1_795_827_723_123_456),
            receiving: Duration::from_micros(1_500),
        };
        let mut out = e.write_to_vec();
        out.extend_from_slice(b"Subject: x\n\nbody\n");
        let (read, at) = Envelope::read(&out).unwrap();
        assert_eq!(&out[at..], b"Subject: x\n\nbody\n");
        assert_eq!(read, e, "every field as it was, newline and all");
        assert_eq!(
            String::from_utf8_lossy(&out)
                .lines()
                .filter(|l| l.starts_with("helo"))
                .count(),
            1
        );
        assert!(read.recipients[0].notify.on_failure());
        assert!(read.recipients[1].notify.on_failure(), "the default reports failures");
        let never = Notify::parse("NEVER");
        assert!(!never.on_failure());
        assert!(Envelope::read(b"garbage").is_none());
    }

    proptest::proptest! {
        // any bytes where the envelope should be: an answer or None, never
        // a panic; and any text in every field comes back as it went in
        #[test]
        fn hostile_queue_files(bytes in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..600)) {
            if let Some((_, at)) = Envelope::read(&bytes) {
                proptest::prop_assert!(at <= bytes.len());
            }
        }

        #[test]
        fn any_text_round_trips(sender in "\\PC{0,40}", helo in "(?s).{0,60}", address in "\\PC{1,40}",
                                envid in proptest::option::of("(?s).{1,30}"), user in proptest::option::of("\\PC{1,20}")) {
            let recipients = vec![Recipient::new(&address, user.as_deref())];
            let e = Envelope {
                envid,
                smtputf8: true,
                arrival: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                ..Envelope::new(&sender, recipients, ("unknown", "2001:db8::1".parse().unwrap()), &helo, "ESMTP")
            };
            let mut out = e.write_to_vec();
            out.extend_from_slice(b"body");
            let (read, at) = Envelope::read(&out).expect("reads back");
            proptest::prop_assert_eq!(&out[at..], b"body");
            proptest::prop_assert_eq!(read, e);
        }
    }

    impl Envelope {
        fn write_to_vec(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.write(&mut out);
            out
        }
    }
}
