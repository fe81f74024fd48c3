//! Remote delivery: the SMTP client. Where: the relayhost, else the
//! domain's MX hosts in preference order (each of their addresses in
//! turn), else its own A/AAAA. How: EHLO (HELO for an old server),
//! STARTTLS whenever offered (opportunistic, unverified, as Postfix's
//! `smtp_tls_security_level = may`), MAIL with SIZE, BODY, SMTPUTF8 and
//! the DSN parameters when the server takes them, one RCPT per
//! recipient, DATA (dot-stuffed, CRLF) — pipelined when the server offers
//! PIPELINING. Each recipient's reply decides for it: 2xx sent, 4xx
//! deferred, 5xx bounced; a host that cannot be reached or answers 4xx as
//! a whole passes the recipients to the next host.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::TcpStream;

use super::Outcome;
use crate::dns::Route;
use crate::envelope::{Envelope, Recipient, Return};
use crate::queue::Status;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 5321 §4.5.3.2's minimums, shortened where a stuck peer would hold
/// a delivery slot: greeting 5 min, commands 5 min, DATA's end 10 min.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);
const DATA_END_TIMEOUT: Duration = Duration::from_secs(600);

/// One SMTP reply from a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl ServerReply {
    /// The enhanced status code it gives (`5.1.1`), or one made from its
    /// class.
    pub fn dsn(&self) -> String {
        let first = self.lines.first().map(String::as_str).unwrap_or("");
        let word = first.split(' ').next().unwrap_or("");
        let parts: Vec<&str> = word.split('.').collect();
        if parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            word.to_owned()
        } else {
            format!("{}.0.0", self.code / 100)
        }
    }

    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }

    fn has(&self, keyword: &str) -> bool {
        self.lines
            .iter()
            .skip(1)
            .any(|l| l.split(' ').next().is_some_and(|w| w.eq_ignore_ascii_case(keyword)))
    }

    fn outcome(&self, relay: &str) -> Outcome {
        let dsn = self.dsn();
        let text = self.text();
        match self.code {
            200..=399 => Outcome::sent(&dsn, &text, relay),
            400..=499 => Outcome::deferred(&dsn, &text, relay),
            _ => Outcome::bounced(&dsn, &text, relay),
        }
    }
}

/// Parses one reply line (`250-text`, `250 text`); `(code, last, text)`.
pub fn parse_reply_line(line: &str) -> Option<(u16, bool, &str)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let code: u16 = line.get(..3)?.parse().ok().filter(|c| (200..600).contains(c))?;
    match line.as_bytes().get(3) {
        None => Some((code, true, "")),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        _ => None,
    }
}

enum ClientStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

struct Client {
    io: BufReader<ClientStream>,
    relay: String,
}

/// Opportunistic TLS: encrypt, accept any certificate (there is no
/// authenticated name to check it against without DANE or MTA-STS).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client's TLS configuration.
pub fn tls_connector() -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

impl Client {
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let stream = self.io.get_mut();
        stream.write_all(bytes).await?;
        stream.flush().await
    }

    async fn reply(&mut self, timeout: Duration) -> std::io::Result<ServerReply> {
        let read = async {
            let mut reply = ServerReply {
                code: 0,
                lines: Vec::new(),
            };
            loop {
                let mut line = String::new();
                let n = (&mut self.io).take(4096).read_line(&mut line).await?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed",
                    ));
                }
                let Some((code, last, text)) = parse_reply_line(&line) else {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("bad reply line {:?}", line.trim_end()),
                    ));
                };
                if reply.lines.len() > 100 {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "reply too long"));
                }
                reply.code = code;
                reply.lines.push(text.to_owned());
                if last {
                    return Ok(reply);
                }
            }
        };
        match tokio::time::timeout(timeout, read).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out waiting for the server",
            )),
        }
    }
}

/// What the delivery attempt needs to know.
pub struct Attempt<'a> {
    pub hostname: &'a str,
    pub envelope: &'a Envelope,
    /// The message as queued (LF line ends).
    pub message: &'a [u8],
    pub recipients: &'a [&'a Recipient],
}

/// Delivers to the hosts of `route`, in order, until every recipient has
/// a final answer or the hosts are tried; returns one outcome per
/// recipient.
pub async fn deliver(
    route: &Route,
    port: u16,
    attempt: &Attempt<'_>,
    tls: &tokio_rustls::TlsConnector,
) -> Vec<Outcome> {
    let hosts = match route {
        // Postfix's codes and words for these two
        Route::NoSuchDomain => {
            let o = Outcome::bounced("5.4.4", "Host or domain name not found", "none");
            return vec![o; attempt.recipients.len()];
        }
        Route::NullMx => {
            let o = Outcome::bounced("5.1.10", "Recipient address has null MX", "none");
            return vec![o; attempt.recipients.len()];
        }
        Route::Hosts(hosts) => hosts,
    };
    let mut outcomes: Vec<Option<Outcome>> = vec![None; attempt.recipients.len()];
    let mut last_failure = Outcome::deferred("4.4.1", "no host could be reached", "none");
    for (host, addresses) in hosts {
        if host.eq_ignore_ascii_case(attempt.hostname) {
            let o = Outcome::bounced("5.4.6", &format!("mail for {host} loops back to myself"), host);
            return vec![o; attempt.recipients.len()];
        }
        for &ip in addresses {
            let pending: Vec<usize> = (0..outcomes.len())
                .filter(|&i| outcomes[i].as_ref().is_none_or(|o| o.status == Status::Deferred))
                .collect();
            if pending.is_empty() {
                return outcomes
                    .into_iter()
                    .map(|o| o.unwrap_or_else(|| last_failure.clone()))
                    .collect();
            }
            match session(host, SocketAddr::new(ip, port), attempt, &pending, tls).await {
                Ok(results) => {
                    let whole_host_deferred = results.iter().all(|(_, o)| o.status == Status::Deferred);
                    for (i, o) in results {
                        outcomes[i] = Some(o);
                    }
                    if !whole_host_deferred {
                        // a host that answered decides; the deferred ones
                        // are tried again later, not at the next MX
                        return outcomes
                            .into_iter()
                            .map(|o| o.unwrap_or_else(|| last_failure.clone()))
                            .collect();
                    }
                }
                Err(o) => last_failure = o,
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| last_failure.clone()))
        .collect()
}

/// The DSN parameters of a RCPT, when the server takes them.
fn rcpt_params(r: &Recipient) -> String {
    let mut p = String::new();
    if r.notify.given {
        let mut words = Vec::new();
        if r.notify.never {
            words.push("NEVER");
        } else {
            for (on, w) in [
                (r.notify.success, "SUCCESS"),
                (r.notify.failure, "FAILURE"),
                (r.notify.delay, "DELAY"),
            ] {
                if on {
                    words.push(w);
                }
            }
        }
        p.push_str(&format!(" NOTIFY={}", words.join(",")));
    }
    if let Some(o) = &r.orcpt {
        p.push_str(&format!(" ORCPT=rfc822;{}", xtext(o)));
    }
    p
}

/// RFC 3461's xtext: `+XX` for `+`, `=`, and bytes outside `!`..`~`.
pub fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b == b'+' || b == b'=' || !(b'!'..=b'~').contains(&b) {
            out.push_str(&format!("+{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// One connection to one address: `Ok` with an outcome for each of the
/// recipients it was given, or `Err` when the host could not be used at
/// all (connection, greeting, TLS, MAIL refused for now).
async fn session(
    host: &str,
    addr: SocketAddr,
    attempt: &Attempt<'_>,
    pending: &[usize],
    tls: &tokio_rustls::TlsConnector,
) -> Result<Vec<(usize, Outcome)>, Outcome> {
    let relay = format!("{host}[{}]:{}", addr.ip(), addr.port());
    let failed =
        |what: &str, e: &dyn std::fmt::Display| Outcome::deferred("4.4.1", &format!("{what} {relay}: {e}"), &relay);
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(failed("connect to", &e)),
        Err(_) => return Err(failed("connect to", &"timed out")),
    };
    let _ = tcp.set_nodelay(true);
    let mut client = Client {
        io: BufReader::new(ClientStream::Plain(tcp)),
        relay: relay.clone(),
    };
    let io = |e: std::io::Error| Outcome::deferred("4.4.2", &format!("conversation with {relay}: {e}"), &relay);
    let greeting = client.reply(REPLY_TIMEOUT).await.map_err(io)?;
    if greeting.code != 220 {
        return Err(greeting.outcome(&client.relay).into_deferred_unless_permanent());
    }
    let mut ehlo = ehlo(&mut client, attempt.hostname).await.map_err(io)?;
    if ehlo.code == 250 && ehlo.has("STARTTLS") {
        client.send(b"STARTTLS\r\n").await.map_err(io)?;
        let reply = client.reply(REPLY_TIMEOUT).await.map_err(io)?;
        if reply.code == 220 {
            let ClientStream::Plain(tcp) = client.io.into_inner() else {
                unreachable!("TLS starts once")
            };
            let name = rustls_pki_types::ServerName::try_from(host.to_owned())
                .unwrap_or_else(|_| rustls_pki_types::ServerName::IpAddress(addr.ip().into()));
            let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(name, tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(failed("TLS with", &e)),
                Err(_) => return Err(failed("TLS with", &"timed out")),
            };
            client = Client {
                io: BufReader::new(ClientStream::Tls(Box::new(stream))),
                relay: relay.clone(),
            };
            ehlo = ehlo_again(&mut client, attempt.hostname).await.map_err(io)?;
        }
    }
    let (pipelining, dsn, size, smtputf8, eight_bit) = if ehlo.code == 250 {
        (
            ehlo.has("PIPELINING"),
            ehlo.has("DSN"),
            ehlo.has("SIZE"),
            ehlo.has("SMTPUTF8"),
            ehlo.has("8BITMIME"),
        )
    } else {
        (false, false, false, false, false)
    };
    let envelope = attempt.envelope;
    if envelope.smtputf8 && !smtputf8 {
        let o = Outcome::bounced("5.6.7", &format!("{relay} does not take SMTPUTF8 mail"), &relay);
        return Ok(pending.iter().map(|&i| (i, o.clone())).collect());
    }
    let body = wire_form(attempt.message);
    let mut mail = format!("MAIL FROM:<{}>", envelope.sender);
    if size {
        mail.push_str(&format!(" SIZE={}", body.len()));
    }
    if envelope.eight_bit && eight_bit {
        mail.push_str(" BODY=8BITMIME");
    }
    if envelope.smtputf8 {
        mail.push_str(" SMTPUTF8");
    }
    if dsn {
        match envelope.ret {
            Some(Return::Full) => mail.push_str(" RET=FULL"),
            Some(Return::Headers) => mail.push_str(" RET=HDRS"),
            None => {}
        }
        if let Some(envid) = &envelope.envid {
            mail.push_str(&format!(" ENVID={}", xtext(envid)));
        }
    }
    mail.push_str("\r\n");
    let rcpts: Vec<String> = pending
        .iter()
        .map(|&i| {
            let r = attempt.recipients[i];
            let params = if dsn { rcpt_params(r) } else { String::new() };
            format!("RCPT TO:<{}>{params}\r\n", r.address)
        })
        .collect();
    // MAIL, every RCPT and DATA in one write when pipelining
    let mut replies = Vec::new();
    if pipelining {
        let mut batch = mail.into_bytes();
        for r in &rcpts {
            batch.extend_from_slice(r.as_bytes());
        }
        batch.extend_from_slice(b"DATA\r\n");
        client.send(&batch).await.map_err(io)?;
        for _ in 0..rcpts.len() + 2 {
            replies.push(client.reply(REPLY_TIMEOUT).await.map_err(io)?);
        }
    } else {
        client.send(mail.as_bytes()).await.map_err(io)?;
        let reply = client.reply(REPLY_TIMEOUT).await.map_err(io)?;
        let accepted = reply.code == 250;
        replies.push(reply);
        if accepted {
            for r in &rcpts {
                client.send(r.as_bytes()).await.map_err(io)?;
                replies.push(client.reply(REPLY_TIMEOUT).await.map_err(io)?);
            }
            if replies[1..].iter().any(|r| r.code / 100 == 2) {
                client.send(b"DATA\r\n").await.map_err(io)?;
                replies.push(client.reply(REPLY_TIMEOUT).await.map_err(io)?);
            }
        }
    }
    let mail_reply = &replies[0];
    if mail_reply.code / 100 != 2 {
        let _ = client.send(b"QUIT\r\n").await;
        let o = mail_reply.outcome(&relay);
        if o.status == Status::Deferred {
            return Err(o);
        }
        return Ok(pending.iter().map(|&i| (i, o.clone())).collect());
    }
    let mut results: Vec<(usize, Outcome)> = Vec::new();
    let mut accepted = Vec::new();
    for (k, &i) in pending.iter().enumerate() {
        match replies.get(1 + k) {
            Some(r) if r.code / 100 == 2 => accepted.push(i),
            Some(r) => results.push((i, r.outcome(&relay))),
            None => results.push((i, Outcome::deferred("4.4.2", "no reply to RCPT", &relay))),
        }
    }
    let data_reply = replies.get(1 + rcpts.len());
    if accepted.is_empty() {
        if data_reply.is_some_and(|r| r.code == 354) {
            // pipelined DATA went through with no recipient: end it empty
            let _ = client.send(b".\r\n").await;
            let _ = client.reply(REPLY_TIMEOUT).await;
        }
        let _ = client.send(b"QUIT\r\n").await;
        return Ok(results);
    }
    match data_reply {
        Some(r) if r.code == 354 => {}
        Some(r) => {
            let o = r.outcome(&relay);
            results.extend(accepted.iter().map(|&i| (i, o.clone())));
            let _ = client.send(b"QUIT\r\n").await;
            return Ok(results);
        }
        None => {
            results.extend(
                accepted
                    .iter()
                    .map(|&i| (i, Outcome::deferred("4.4.2", "no reply to DATA", &relay))),
            );
            return Ok(results);
        }
    }
    client.send(&body).await.map_err(io)?;
    let end = client.reply(DATA_END_TIMEOUT).await.map_err(io)?;
    let mut o = end.outcome(&relay);
    o.dsn_passed_on = dsn && o.status == Status::Sent;
    results.extend(accepted.iter().map(|&i| (i, o.clone())));
    let _ = client.send(b"QUIT\r\n").await;
    let _ = client.reply(Duration::from_secs(10)).await;
    Ok(results)
}

async fn ehlo(client: &mut Client, hostname: &str) -> std::io::Result<ServerReply> {
    client.send(format!("EHLO {hostname}\r\n").as_bytes()).await?;
    let reply = client.reply(REPLY_TIMEOUT).await?;
    if reply.code == 250 {
        return Ok(reply);
    }
    client.send(format!("HELO {hostname}\r\n").as_bytes()).await?;
    client.reply(REPLY_TIMEOUT).await
}

async fn ehlo_again(client: &mut Client, hostname: &str) -> std::io::Result<ServerReply> {
    client.send(format!("EHLO {hostname}\r\n").as_bytes()).await?;
    client.reply(REPLY_TIMEOUT).await
}

/// The message as it goes on the wire after DATA: CRLF line ends, dot-
/// stuffed, ended by `.` on a line of its own.
pub fn wire_form(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 5);
    for content in crate::queue::lines(message) {
        if content.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

impl Outcome {
    /// A permanent refusal of the whole session stays permanent; anything
    /// else about a host means "try another, or later".
    fn into_deferred_unless_permanent(self) -> Outcome {
        if self.status == Status::Bounced {
            self
        } else {
            Outcome {
                status: Status::Deferred,
                ..self
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines() {
        assert_eq!(
            parse_reply_line("250-mx.example.net\r\n"),
            Some((250, false, "mx.example.net"))
        );
        assert_eq!(parse_reply_line("250 SIZE 1000\r\n"), Some((250, true, "SIZE 1000")));
        assert_eq!(parse_reply_line("354\r\n"), Some((354, true, "")));
        assert_eq!(parse_reply_line("2500 x"), None);
        assert_eq!(parse_reply_line("hello"), None);
        let r = ServerReply {
            code: 550,
            lines: vec!["5.1.1 <x@y>: Recipient address rejected".into()],
        };
        assert_eq!(r.dsn(), "5.1.1");
        let r = ServerReply {
            code: 451,
            lines: vec!["try later".into()],
        };
        assert_eq!(r.dsn(), "4.0.0");
    }

    proptest::proptest! {
        // what a remote server says is anything at all
        #[test]
        fn any_reply_line(line in "(?s).{0,80}") {
            if let Some((code, _, text)) = parse_reply_line(&line) {
                proptest::prop_assert!((200..600).contains(&code));
                proptest::prop_assert!(line.contains(text));
            }
        }
    }

    #[test]
    fn xtext_encoding() {
        assert_eq!(xtext("bob@example.jp"), "bob@example.jp");
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }

    #[test]
    fn wire() {
        assert_eq!(wire_form(b"a\n.b\n\nc"), b"a\r\n..b\r\n\r\nc\r\n.\r\n");
        assert_eq!(wire_form(b""), b".\r\n");
        assert_eq!(wire_form(b"x\r\n"), b"x\r\n.\r\n");
    }
}
