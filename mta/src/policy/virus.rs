//! Virus scanning at the end of DATA: every MIME part, decoded from its
//! transfer encoding (base64, quoted-printable; parts of attached
//! messages too), is scanned, by clamd or by the built-in scanner.
//!
//! - **clamd** (`virus_scanner = "clamd:/run/clamav/clamd.ctl"` or
//!   `"clamd:127.0.0.1:3310"`) over its INSTREAM protocol: each part is
//!   streamed in chunks, clamd unpacks archives (zip and the rest) itself.
//!   The client is ours (a few lines of protocol, no crate does it for
//!   tokio): each scan is bounded by [`CLAMD_TIMEOUT`], a part larger than
//!   clamd's `StreamMaxLength` comes back as an error, and an error or an
//!   unreachable clamd follows `virus_scanner_failure`. Signatures are
//!   clamd's to reload (freshclam tells it; `SelfCheck`).
//! - **built-in** (`virus_scanner = "builtin"`): the EICAR test file, and
//!   ClamAV hash signatures from `virus_signatures` files — `.hdb` lines
//!   `md5:size:name`, `.hsb` lines `sha1:size:name` or `sha256:size:name`
//!   (size `*` for any) — reread when a file changes. No archive is opened.
//!
//! What a virus gets (`virus_action`): `reject` (`554 5.7.0`, naming it),
//! `strip` (the part is replaced by a text/plain notice naming the virus,
//! the rest delivered — what the seed site's gateway did; a message that
//! is one infected part is refused), or `hold`.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use md5::Digest as _;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::table::Stamp;
use super::{Facts, Point, Stage, Verdict};
use crate::smtp::reply::Reply;

/// How long clamd may take over one part.
pub const CLAMD_TIMEOUT: Duration = Duration::from_secs(60);

/// The EICAR test file (its 68 bytes; it may be followed by white space).
const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VirusAction {
    #[default]
    Reject,
    Strip,
    Hold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScannerFailure {
    /// 451: the client tries again later.
    #[default]
    Tempfail,
    /// Let the message through unscanned (logged).
    Accept,
}

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clamd {
    Unix(PathBuf),
    Tcp(String),
}

enum Scanner {
    Clamd(Clamd),
    Builtin(Mutex<Signatures>),
}

/// The built-in scanner's hash signatures and the files they came from.
#[derive(Default)]
struct Signatures {
    files: Vec<(PathBuf, Option<Stamp>)>,
    /// By digest: (size or None for any, name).
    hashes: HashMap<Vec<u8>, Vec<(Option<u64>, String)>>,
}

impl Signatures {
    fn load(files: &[PathBuf]) -> Result<Signatures, String> {
        let mut s = Signatures::default();
        for path in files {
            let stamp = Stamp::of(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let at = |why: &str| format!("{}:{}: {why}", path.display(), i + 1);
                let mut fields = line.splitn(3, ':');
                let (Some(hash), Some(size), Some(name)) = (fields.next(), fields.next(), fields.next()) else {
                    return Err(at("expected hash:size:name"));
                };
                let digest = hex(hash)
                    .filter(|d| matches!(d.len(), 16 | 20 | 32))
                    .ok_or_else(|| at("not an MD5, SHA1 or SHA256 hash"))?;
                let size = match size {
                    "*" => None,
                    n => Some(n.parse().map_err(|_| at("bad size"))?),
                };
                let name = name.split(':').next().unwrap_or(name).to_owned();
                s.hashes.entry(digest).or_default().push((size, name));
            }
            s.files.push((path.clone(), Some(stamp)));
        }
        Ok(s)
    }

    /// Rereads the files if one changed (a broken edit keeps the old set).
    fn refresh(&mut self) {
        let changed = self.files.iter().any(|(p, stamp)| Stamp::of(p).ok() != *stamp);
        if !changed {
            return;
        }
        let paths: Vec<PathBuf> = self.files.iter().map(|(p, _)| p.clone()).collect();
        match Signatures::load(&paths) {
            Ok(new) => {
                tracing::info!(signatures = new.hashes.len(), "virus signatures reloaded");
                *self = new;
            }
            Err(e) => tracing::error!("virus signatures: {e}; the old ones stay"),
        }
    }

    fn find(&self, content: &[u8]) -> Option<String> {
        if is_eicar(content) {
            return Some("Eicar-Test-Signature".to_owned());
        }
        if self.hashes.is_empty() {
            return None;
        }
        let size = content.len() as u64;
        let digests = [
            md5::Md5::digest(content).to_vec(),
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, content)
                .as_ref()
                .to_vec(),
            ring::digest::digest(&ring::digest::SHA256, content).as_ref().to_vec(),
        ];
        digests.iter().find_map(|d| {
            self.hashes
                .get(d)?
                .iter()
                .find(|(s, _)| s.is_none_or(|s| s == size))
                .map(|(_, name)| name.clone())
        })
    }
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The EICAR file: its string first, then nothing but white space, in
/// at most 128 bytes (the test file's own rules).
fn is_eicar(content: &[u8]) -> bool {
    content.len() <= 128 && content.starts_with(EICAR) && content[EICAR.len()..].iter().all(u8::is_ascii_whitespace)
}

/// One part to scan: its bytes decoded, and where the part (header and
/// body) lies in the message when it can be cut out.
struct Leaf {
    content: Vec<u8>,
    range: Option<std::ops::Range<usize>>,
}

/// Every leaf part of `raw`, decoded; `base` is where `raw` starts in the
/// top message (None when it is itself encoded and cannot be cut into).
fn leaves(raw: &[u8], base: Option<usize>, depth: usize, out: &mut Vec<Leaf>) {
    let Some(message) = mail_parser::MessageParser::default().parse(raw) else {
        out.push(Leaf {
            content: raw.to_vec(),
            range: None,
        });
        return;
    };
    let single = message.parts.len() == 1;
    for part in &message.parts {
        let (start, body, end) = (
            part.offset_header as usize,
            part.offset_body as usize,
            part.offset_end as usize,
        );
        let range = match (single, base) {
            (false, Some(b)) => Some(b + start..b + end),
            _ => None,
        };
        let raw_body = raw.get(body..end.min(raw.len())).unwrap_or_default();
        let content = match &part.body {
            mail_parser::PartType::Multipart(_) => continue,
            mail_parser::PartType::Message(nested) if depth < 8 => {
                let nested_raw = nested.raw_message.as_ref();
                // an attached message not transfer-encoded lies in ours
                let nested_base = (part.encoding == mail_parser::Encoding::None)
                    .then(|| base.map(|b| b + body))
                    .flatten();
                leaves(nested_raw, nested_base, depth + 1, out);
                continue;
            }
            mail_parser::PartType::Binary(b) | mail_parser::PartType::InlineBinary(b) => b.to_vec(),
            _ => match part.encoding {
                mail_parser::Encoding::Base64 => {
                    mail_parser::decoders::base64::base64_decode(raw_body).unwrap_or_else(|| raw_body.to_vec())
                }
                mail_parser::Encoding::QuotedPrintable => {
                    mail_parser::decoders::quoted_printable::quoted_printable_decode(raw_body)
                        .unwrap_or_else(|| raw_body.to_vec())
                }
                mail_parser::Encoding::None => raw_body.to_vec(),
            },
        };
        out.push(Leaf { content, range });
    }
}

pub struct VirusScan {
    scanner: Scanner,
    action: VirusAction,
    failure: ScannerFailure,
    hostname: String,
}

impl VirusScan {
    /// From `virus_scanner` (`builtin`, `clamd:PATH`, `clamd:HOST:PORT`).
    pub fn new(
        scanner: &str,
        signatures: &[PathBuf],
        action: VirusAction,
        failure: ScannerFailure,
        hostname: &str,
    ) -> Result<VirusScan, String> {
        let scanner = match scanner.strip_prefix("clamd:") {
            Some(path) if path.starts_with('/') => Scanner::Clamd(Clamd::Unix(path.into())),
            Some(addr) if addr.contains(':') => Scanner::Clamd(Clamd::Tcp(addr.to_owned())),
            Some(other) => {
                return Err(format!(
                    "[mtad] virus_scanner: clamd:{other}: give a socket path or HOST:PORT"
                ));
            }
            None if scanner == "builtin" => Scanner::Builtin(Mutex::new(
                Signatures::load(signatures).map_err(|e| format!("[mtad] virus_signatures: {e}"))?,
            )),
            None => {
                return Err(format!(
                    "[mtad] virus_scanner: {scanner:?}: \"builtin\", \"clamd:/path\" or \"clamd:host:port\""
                ));
            }
        };
        Ok(VirusScan {
            scanner,
            action,
            failure,
            hostname: hostname.to_owned(),
        })
    }

    /// The virus in `content`, if any.
    async fn scan(&self, content: &[u8]) -> Result<Option<String>, String> {
        match &self.scanner {
            Scanner::Builtin(signatures) => {
                let mut s = signatures.lock().unwrap_or_else(|e| e.into_inner());
                s.refresh();
                Ok(s.find(content))
            }
            Scanner::Clamd(at) => tokio::time::timeout(CLAMD_TIMEOUT, instream(at, content))
                .await
                .map_err(|_| "clamd did not answer in time".to_owned())?,
        }
    }

    async fn verdict(&self, message: &[u8], facts: &Facts) -> Verdict {
        let mut parts = Vec::new();
        leaves(message, Some(0), 0, &mut parts);
        let mut found: Vec<(String, Option<std::ops::Range<usize>>)> = Vec::new();
        for part in parts {
            match self.scan(&part.content).await {
                Ok(Some(name)) => found.push((name, part.range)),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(stage = "virus", "scanner failed: {e}");
                    return match self.failure {
                        ScannerFailure::Tempfail => Verdict::Reject(Reply::new(
                            451,
                            [4, 7, 0],
                            "Temporary failure: the virus scanner is unavailable",
                        )),
                        ScannerFailure::Accept => Verdict::Continue,
                    };
                }
            }
        }
        let Some((first, _)) = found.first() else {
            return Verdict::Continue;
        };
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        tracing::info!(event = "virus", viruses = ?names, action = ?self.action, client = ?facts.client_addr, from = ?facts.sender, "virus found");
        let reject = || {
            Verdict::Reject(Reply::new(
                554,
                [5, 7, 0],
                format!("message content rejected: virus {first} found"),
            ))
        };
        match self.action {
            VirusAction::Reject => reject(),
            VirusAction::Hold => Verdict::Hold,
            VirusAction::Strip => {
                if found.iter().any(|(_, r)| r.is_none()) {
                    return reject();
                }
                let eol: &[u8] = if memchr::memmem::find(message, b"\r\n").is_some() {
                    b"\r\n"
                } else {
                    b"\n"
                };
                let mut out = message.to_vec();
                let mut cuts: Vec<(std::ops::Range<usize>, &str)> = found
                    .iter()
                    .filter_map(|(n, r)| r.clone().map(|r| (r, n.as_str())))
                    .collect();
                cuts.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
                for (range, name) in cuts {
                    let notice = [
                        b"Content-Type: text/plain; charset=us-ascii".as_slice(),
                        eol,
                        eol,
                        format!(
                            "This part of the message held the virus {name} and was removed by {}.",
                            self.hostname
                        )
                        .as_bytes(),
                        eol,
                    ]
                    .concat();
                    let end = range.end.min(out.len());
                    out.splice(range.start..end, notice);
                }
                Verdict::Several(vec![
                    Verdict::Rewrite(out),
                    Verdict::AddHeaders(vec![format!("X-Virus-Removed: {}", names.join(", "))]),
                ])
            }
        }
    }
}

/// clamd's INSTREAM: `zINSTREAM\0`, chunks of length-prefixed data, a
/// zero length; the answer `stream: OK` or `stream: NAME FOUND`.
async fn instream(at: &Clamd, content: &[u8]) -> Result<Option<String>, String> {
    let mut request = Vec::with_capacity(content.len() + 64);
    request.extend_from_slice(b"zINSTREAM\0");
    for chunk in content.chunks(64 * 1024) {
        request.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        request.extend_from_slice(chunk);
    }
    request.extend_from_slice(&0u32.to_be_bytes());
    let answer = match at {
        Clamd::Unix(path) => {
            let mut s = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| format!("clamd {}: {e}", path.display()))?;
            exchange(&mut s, &request).await
        }
        Clamd::Tcp(addr) => {
            let mut s = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("clamd {addr}: {e}"))?;
            exchange(&mut s, &request).await
        }
    }
    .map_err(|e| format!("clamd: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let answer = answer.trim_end_matches(['\0', '\n']).trim();
    let result = answer.strip_prefix("stream:").map(str::trim).unwrap_or(answer);
    if result == "OK" {
        Ok(None)
    } else if let Some(name) = result.strip_suffix(" FOUND") {
        Ok(Some(name.trim().to_owned()))
    } else {
        Err(format!("clamd said {answer:?}"))
    }
}

async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    request: &[u8],
) -> std::io::Result<Vec<u8>> {
    s.write_all(request).await?;
    let mut answer = Vec::new();
    // one short answer, NUL-ended; a clamd that talks on is cut at 4 KB
    let mut buf = [0u8; 512];
    while answer.len() < 4096 {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.contains(&0) {
            break;
        }
    }
    Ok(answer)
}

impl Stage for VirusScan {
    fn name(&self) -> &'static str {
        "virus"
    }

    fn check<'a>(&'a self, point: Point, facts: &'a Facts) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            match (point, &facts.message) {
                (Point::Data, Some(message)) => self.verdict(message, facts).await,
                _ => Verdict::Continue,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eicar_and_hashes() {
        assert!(is_eicar(EICAR));
        assert!(is_eicar(&[EICAR, b"\r\n"].concat()));
        assert!(!is_eicar(&[EICAR, b"x"].concat()));
        let dir = tempfile::tempdir().unwrap();
        let hdb = dir.path().join("local.hdb");
        // md5 of "hello\n" and sha256 of "bad\n" (any size)
        std::fs::write(
            &hdb,
            "b1946ac92492d2347c6235b4d2611184:6:Test.Hello\n\
             7a8f41b1f8bbc2cc1e80b4bfac1d3c55bc69c1ff10e7df29d5d2e3ba86a8c2de:*:Test.Bad\n",
        )
        .unwrap();
        let s = Signatures::load(std::slice::from_ref(&hdb)).unwrap();
        assert_eq!(s.find(b"hello\n").as_deref(), Some("Test.Hello"));
        assert_eq!(s.find(b"hello"), None);
        assert_eq!(s.find(EICAR).as_deref(), Some("Eicar-Test-Signature"));
        std::fs::write(&hdb, "zz:1:x\n").unwrap();
        let refused = Signatures::load(&[hdb]).err().expect("refused");
        assert!(refused.ends_with(":1: not an MD5, SHA1 or SHA256 hash"), "{refused}");
    }

    #[test]
    fn parts_are_decoded_and_placed() {
        let message = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n\
            Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8K\r\n--b--\r\n";
        let mut parts = Vec::new();
        leaves(message, Some(0), 0, &mut parts);
        let contents: Vec<&[u8]> = parts.iter().map(|p| p.content.as_slice()).collect();
        assert!(contents.contains(&b"hello\n".as_slice()), "{contents:?}");
        let binary = parts.iter().find(|p| p.content == b"hello\n").unwrap();
        let range = binary.range.clone().unwrap();
        assert!(message[range].starts_with(b"Content-Type: application/octet-stream"));
    }
}
