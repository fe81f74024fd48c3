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

/// The certificate and key one listener serves, read again on SIGHUP
/// ([`reload_all`]): rustls asks for them at each handshake, so a renewed
/// certificate is served from the next connection on, and one that fails
/// to load leaves the old one in place.
#[derive(Debug)]
struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl rustls::server::ResolvesServerCert for Certificates {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// Every certificate pair this process serves, for [`reload_all`].
static SERVED: std::sync::Mutex<Vec<std::sync::Weak<Certificates>>> = std::sync::Mutex::new(Vec::new());

/// Reads and checks `cert` (PEM chain, leaf first) and `key` (PEM).
fn load(cert: &Path, key: &Path) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| TlsError::Certificate(cert.to_owned(), e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key(key.to_owned(), e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::Key(key.to_owned(), e.to_string()))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| TlsError::Mismatch(cert.to_owned(), e.to_string()))?;
    Ok(certified)
}

/// An acceptor for `cert` (PEM chain, leaf first) and `key` (PEM).
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let served = Arc::new(Certificates {
        current: std::sync::RwLock::new(Arc::new(load(cert, key)?)),
        cert: cert.to_owned(),
        key: key.to_owned(),
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_no_client_auth().with_cert_resolver(served.clone()))
        .map_err(|e| TlsError::Mismatch(cert.to_owned(), e.to_string()))?;
    let mut all = SERVED.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(&served));
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Reads every served certificate and key again (SIGHUP); each pair that
/// fails keeps serving the old one. The certificate files reloaded, or
/// why not.
pub fn reload_all() -> Vec<Result<PathBuf, TlsError>> {
    let served: Vec<Arc<Certificates>> = SERVED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .collect();
    served
        .iter()
        .map(|c| {
            let new = load(&c.cert, &c.key)?;
            *c.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
            Ok(c.cert.clone())
        })
        .collect()
}

/// Reloads the certificates on every SIGHUP, logging what it did (the
/// servers' reload: tables and signatures are reread when they change).
pub async fn reload_on_hangup() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let results = reload_all();
            if results.is_empty() {
                tracing::info!("SIGHUP: no TLS certificate to reload");
            }
            for r in results {
                match r {
                    Ok(cert) => tracing::info!("SIGHUP: reloaded {}", cert.display()),
                    Err(e) => tracing::error!("SIGHUP: {e}; the old certificate stays"),
                }
            }
        }
    });
    Ok(())
}
