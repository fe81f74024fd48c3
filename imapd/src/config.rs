//! The `[imapd]` section of the toolkit's configuration file (the other
//! sections — users, mailbox, filter — are lda's and read by lda's code):
//!
//! ```toml
//! [imapd]
//! listen = ["0.0.0.0:143"]
//! pop3_listen = ["0.0.0.0:110"]   # default: none
//! imaps_listen = ["0.0.0.0:993"]  # implicit TLS; default: none
//! pop3s_listen = ["0.0.0.0:995"]
//! tls_cert = "/etc/mailkit/cert.pem"   # PEM chain; enables STARTTLS/STLS
//! tls_key = "/etc/mailkit/key.pem"
//! plaintext_auth = "loopback"   # "always", "never"
//! run_as = "vmail"              # started as root: this user after binding
//! trash_folder = "Trash"        # moving spam here does not train
//! sent_folder = "Sent"
//! drafts_folder = "Drafts"
//! max_connections = 5000        # all clients together
//! max_connections_per_ip = 20   # not logged in, from one address
//! max_userip_connections = 10   # logged in, one user from one address
//! ```

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use lda::config::{ConfigError, ConfigFile, FolderName};
use serde::Deserialize;

pub use daemon::auth::PlaintextAuth;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImapdConfig {
    pub listen: Vec<SocketAddr>,
    pub pop3_listen: Vec<SocketAddr>,
    pub imaps_listen: Vec<SocketAddr>,
    pub pop3s_listen: Vec<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub plaintext_auth: PlaintextAuth,
    /// A system user to become once the ports are bound (started as root).
    pub run_as: Option<String>,
    /// Special folders, named in UTF-8 in the file; their on-disk names.
    pub trash_folder: FolderName,
    pub sent_folder: FolderName,
    pub drafts_folder: FolderName,
    pub max_connections: NonZeroUsize,
    pub max_connections_per_ip: NonZeroUsize,
    pub max_userip_connections: NonZeroUsize,
}

impl Default for ImapdConfig {
    fn default() -> Self {
        let caps = daemon::limits::Caps::default();
        let n = |v: usize| NonZeroUsize::new(v).unwrap_or(NonZeroUsize::MIN);
        let folder = |name: &str| FolderName(name.to_owned());
        ImapdConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 143))],
            pop3_listen: Vec::new(),
            imaps_listen: Vec::new(),
            pop3s_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            plaintext_auth: PlaintextAuth::Loopback,
            run_as: None,
            trash_folder: folder("Trash"),
            sent_folder: folder("Sent"),
            drafts_folder: folder("Drafts"),
            max_connections: n(caps.total),
            max_connections_per_ip: n(caps.per_address),
            max_userip_connections: n(caps.per_user_address),
        }
    }
}

impl ImapdConfig {
    /// The `[imapd]` section of a file already read (defaults for what it
    /// leaves out).
    pub fn from_file(file: &ConfigFile) -> Result<ImapdConfig, ConfigError> {
        file.section("imapd")
    }

    /// The `[imapd]` section of `text`.
    pub fn parse(text: &str) -> Result<ImapdConfig, ConfigError> {
        ImapdConfig::from_file(&ConfigFile::from_text("mailkit.toml", text)?)
    }

    /// The connection caps.
    pub fn limits(&self) -> daemon::limits::Caps {
        daemon::limits::Caps {
            total: self.max_connections.get(),
            per_address: self.max_connections_per_ip.get(),
            per_user_address: self.max_userip_connections.get(),
            rate_per_minute: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let c = ImapdConfig::parse("[imapd]\nlisten = [\"127.0.0.1:1143\"]\nplaintext_auth = \"always\"\n").unwrap();
        assert_eq!(c.listen, vec!["127.0.0.1:1143".parse::<SocketAddr>().unwrap()]);
        assert_eq!(c.plaintext_auth, PlaintextAuth::Always);
        for (text, line, want) in [
            (
                "[imapd]\nlsiten = [\"127.0.0.1:143\"]\n",
                2,
                "[imapd] unknown field `lsiten`",
            ),
            ("[imapd]\nlisten = [\"nowhere\"]\n", 2, "invalid socket address"),
            ("[imapd]\n\nmax_connections = 0\n", 3, "nonzero"),
            ("[imapd]\nplaintext_auth = \"sometimes\"\n", 2, "unknown variant"),
            ("[imapd]\ntrash_folder = \"a//b\"\n", 2, "not a folder name"),
        ] {
            let err = ImapdConfig::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text}: {err}");
            assert!(err.message.contains(want), "{text}: {err}");
        }
        let c = ImapdConfig::parse("[imapd]\ntrash_folder = \"ゴミ箱\"\n").unwrap();
        assert_eq!(c.trash_folder.0, lda::folders::encode_mutf7("ゴミ箱"));
        assert!(PlaintextAuth::Loopback.allows("127.0.0.1".parse().unwrap()));
        assert!(!PlaintextAuth::Loopback.allows("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn the_sample_configuration_names_every_key() {
        let sample = include_str!("../../samples/etc/mailkit.toml");
        let e = ImapdConfig::parse("[imapd]\nno_such_key = 1\n").unwrap_err();
        let missing = lda::config::keys_not_shown(sample, "imapd", &e.to_string());
        assert!(
            missing.is_empty(),
            "samples/etc/mailkit.toml [imapd] does not show {missing:?}"
        );
    }

    #[test]
    fn the_sample_configuration_parses() {
        let text = include_str!("../../samples/etc/mailkit.toml");
        let lda = lda::config::Config::parse(text).unwrap();
        assert_eq!(
            lda.passwd_file.as_deref(),
            Some(std::path::Path::new("/etc/mailkit/passwd"))
        );
        let imapd = ImapdConfig::parse(text).unwrap();
        assert_eq!(imapd.run_as.as_deref(), Some("vmail"));
        assert_eq!(imapd.pop3s_listen, vec!["0.0.0.0:995".parse::<SocketAddr>().unwrap()]);
        assert_eq!(imapd.plaintext_auth, PlaintextAuth::Loopback);
    }
}
