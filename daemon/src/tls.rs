//! TLS with rustls (ring provider): the server configuration from a PEM
//! certificate chain and private key, as Dovecot's `ssl_cert`/`ssl_key`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the TLS configuration could not be made; every variant names the
/// file.
#[derive(Debug)]
pub enum TlsError {
    Certificate(PathBuf, String),
    NoCertificate(PathBuf),
    Key(PathBuf, String),
    /// The certificate and key do not go together (or rustls refused them).
    Mismatch(PathBuf, String),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Certificate(p, e) => write!(f, "{}: cannot read the certificate: {e}", p.display()),
            TlsError::NoCertificate(p) => write!(f, "{}: no certificate in the file", p.display()),
            TlsError::Key(p, e) => write!(f, "{}: cannot read the private key: {e}", p.display()),
            TlsError::Mismatch(p, e) => write!(f, "{}: the certificate and key don't go together: {e}", p.display()),
        }
    }
}

impl std::error::Error for TlsError {}

/// An acceptor for `cert` (PEM chain, leaf first) and `key` (PEM).
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| TlsError::Certificate(cert.to_owned(), e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key(key.to_owned(), e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| TlsError::Mismatch(cert.to_owned(), e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
