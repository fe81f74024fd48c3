//! DKIM signing of outgoing mail (RFC 6376): a message from mynetworks or
//! from a logged-in user whose header From is in a domain of `dkim_keys`
//! is signed, before it enters the queue, with every key of that domain —
//! an ed25519-sha256 and an rsa-sha256 key at once is the usual pair (RFC
//! 8463: receivers that do not know ed25519 check the RSA one). Relaxed
//! canonicalization of header and body; the fields below are signed (a
//! field a message lacks is signed as absent, so it cannot be added on the
//! way). The keys are PEM files (PKCS#8; RSA also PKCS#1), read at start:
//! `mtad dkim keygen` makes them and prints the DNS record to publish.
//! Signing runs last in the chain, over the message as the other stages
//! left it.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use mail_auth::AuthenticatedMessage;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::{Facts, Point, Stage, Verdict};

/// The fields signed (those of RFC 6376 §5.4.1's list a message has).
pub const SIGNED_FIELDS: [&str; 12] = [
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// One key of `[mtad] dkim_keys`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub domain: String,
    pub selector: String,
    pub key: std::path::PathBuf,
}

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

pub struct DkimSign {
    /// (domain, lower case; its signer).
    signers: Vec<(String, Signer)>,
}

impl DkimSign {
    /// Reads every key; an error names the file and what is wrong.
    pub fn new(keys: &[KeyConfig]) -> Result<DkimSign, String> {
        let mut signers = Vec::new();
        for k in keys {
            let signer = load(&k.key, &k.domain, &k.selector)
                .map_err(|e| format!("[mtad] dkim_keys: {}: {e}", k.key.display()))?;
            signers.push((k.domain.trim_end_matches('.').to_ascii_lowercase(), signer));
        }
        Ok(DkimSign { signers })
    }

    /// The DKIM-Signature fields for `message` (none when its From domain
    /// has no key).
    fn sign(&self, message: &[u8]) -> Vec<String> {
        // signed as it will go over the wire (CRLF)
        let wire = crate::queue::with_crlf(message);
        let Some(parsed) = AuthenticatedMessage::parse(&wire) else {
            return Vec::new();
        };
        let from = parsed.from().to_ascii_lowercase();
        let Some((_, domain)) = from.rsplit_once('@') else {
            return Vec::new();
        };
        let mut fields = Vec::new();
        for (_, signer) in self.signers.iter().filter(|(d, _)| d == domain) {
            let signed = match signer {
                Signer::Rsa(s) => s.sign(message).map(|sig| sig.to_header()),
                Signer::Ed25519(s) => s.sign(message).map(|sig| sig.to_header()),
            };
            match signed {
                // one line: Verdict::AddHeaders takes `Name: value`
                Ok(header) => fields.push(header.replace("\r\n", "").trim_end().to_owned()),
                Err(e) => tracing::error!(
                    stage = "dkim_sign",
                    domain,
                    "cannot sign, the message goes unsigned: {e}"
                ),
            }
        }
        fields
    }
}

fn load(path: &Path, domain: &str, selector: &str) -> Result<Signer, String> {
    let key = PrivateKeyDer::from_pem_file(path).map_err(|e| format!("not a PEM private key: {e}"))?;
    if let PrivateKeyDer::Pkcs8(der) = &key
        && let Ok(ed) = Ed25519Key::from_pkcs8_der(der.secret_pkcs8_der())
    {
        return Ok(Signer::Ed25519(signer(ed, domain, selector)));
    }
    let rsa = RsaKey::<Sha256>::from_key_der(key).map_err(|e| format!("neither an ed25519 nor an RSA key: {e}"))?;
    Ok(Signer::Rsa(signer(rsa, domain, selector)))
}

fn signer<K: SigningKey>(key: K, domain: &str, selector: &str) -> DkimSigner<K, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_FIELDS)
}

impl Stage for DkimSign {
    fn name(&self) -> &'static str {
        "dkim_sign"
    }

    fn check<'a>(&'a self, point: Point, facts: &'a Facts) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            match (point, &facts.message, facts.trusted) {
                (Point::Data, Some(message), true) => {
                    let fields = self.sign(message);
                    if fields.is_empty() {
                        Verdict::Continue
                    } else {
                        Verdict::AddHeaders(fields)
                    }
                }
                _ => Verdict::Continue,
            }
        })
    }
}

/// `mtad dkim keygen`: a new key written to `path` (mode 0600, never over
/// an existing file), and the TXT record that publishes it. ed25519 with
/// ring; RSA-2048 by `openssl genpkey` (ring makes no RSA keys).
pub fn keygen(domain: &str, selector: &str, rsa: bool, path: &Path) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let domain = domain.trim_end_matches('.');
    let (pem, kind, public) = if rsa {
        let out = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            .output()
            .map_err(|e| format!("openssl genpkey (install openssl for RSA keys): {e}"))?;
        if !out.status.success() {
            return Err(format!("openssl genpkey: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let pem = String::from_utf8(out.stdout).map_err(|_| "openssl wrote no PEM".to_owned())?;
        let mut child = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("openssl pkey: {e}"))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(pem.as_bytes())
            .map_err(|e| format!("openssl pkey: {e}"))?;
        let out = child.wait_with_output().map_err(|e| format!("openssl pkey: {e}"))?;
        if !out.status.success() {
            return Err("openssl pkey could not read the key it made".to_owned());
        }
        (pem, "rsa", out.stdout)
    } else {
        let pkcs8 = Ed25519Key::generate_pkcs8().map_err(|e| format!("ed25519: {e}"))?;
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).map_err(|e| format!("ed25519: {e}"))?;
        (pem_of("PRIVATE KEY", &pkcs8), "ed25519", key.public_key())
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(pem.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let p = daemon::auth::base64_encode(&public);
    // TXT strings are at most 255 bytes: an RSA key's record is cut in two
    let record = format!("v=DKIM1; k={kind}; p={p}");
    let strings: Vec<String> = record
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    Ok(format!(
        "{selector}._domainkey.{domain}. IN TXT {}\n# and in [mtad]: dkim_keys = [{{ domain = \"{domain}\", selector = \"{selector}\", key = \"{}\" }}]",
        strings.join(" "),
        path.display()
    ))
}

fn pem_of(label: &str, der: &[u8]) -> String {
    let b64 = daemon::auth::base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
