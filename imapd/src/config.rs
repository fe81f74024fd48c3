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

use std::net::{IpAddr, SocketAddr};

/// Where passwords may be sent in the clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaintextAuth {
    /// Only from 127.0.0.0/8 and ::1 (Dovecot's default notion of secure).
    Loopback,
    Always,
    Never,
}

impl PlaintextAuth {
    pub fn allows(self, client: IpAddr) -> bool {
        match self {
            PlaintextAuth::Always => true,
            PlaintextAuth::Never => false,
            PlaintextAuth::Loopback => client.is_loopback() || client.to_canonical().is_loopback(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImapdConfig {
    pub listen: Vec<SocketAddr>,
    pub pop3_listen: Vec<SocketAddr>,
    pub imaps_listen: Vec<SocketAddr>,
    pub pop3s_listen: Vec<SocketAddr>,
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    pub plaintext_auth: PlaintextAuth,
    /// A system user to become once the ports are bound (started as root).
    pub run_as: Option<String>,
    /// Special folders' names as on disk and in IMAP (modified UTF-7).
    pub trash_folder: String,
    pub sent_folder: String,
    pub drafts_folder: String,
    pub limits: daemon::limits::Caps,
}

impl Default for ImapdConfig {
    fn default() -> Self {
        ImapdConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 143))],
            pop3_listen: Vec::new(),
            imaps_listen: Vec::new(),
            pop3s_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            plaintext_auth: PlaintextAuth::Loopback,
            run_as: None,
            trash_folder: "Trash".into(),
            sent_folder: "Sent".into(),
            drafts_folder: "Drafts".into(),
            limits: daemon::limits::Caps::default(),
        }
    }
}

impl ImapdConfig {
    /// The `[imapd]` section of `text` (defaults for what it leaves out).
    pub fn parse(text: &str) -> Result<ImapdConfig, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let mut config = ImapdConfig::default();
        let Some(section) = table.get("imapd") else {
            return Ok(config);
        };
        let section = section.as_table().ok_or("`imapd` should be a [section]")?;
        for (key, value) in section {
            let text = |v: &toml::Value| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or(format!("[imapd] {key}: expected a string"))
            };
            match key.as_str() {
                "listen" | "pop3_listen" | "imaps_listen" | "pop3s_listen" => {
                    let list = value
                        .as_array()
                        .ok_or(format!("[imapd] {key}: expected a list of addresses"))?;
                    let addresses: Vec<SocketAddr> = list
                        .iter()
                        .map(|v| {
                            let s = text(v)?;
                            s.parse()
                                .map_err(|_| format!("[imapd] {key}: {s:?} is not an address:port"))
                        })
                        .collect::<Result<_, String>>()?;
                    *match key.as_str() {
                        "listen" => &mut config.listen,
                        "pop3_listen" => &mut config.pop3_listen,
                        "imaps_listen" => &mut config.imaps_listen,
                        _ => &mut config.pop3s_listen,
                    } = addresses;
                }
                "plaintext_auth" => {
                    config.plaintext_auth = match text(value)?.as_str() {
                        "loopback" => PlaintextAuth::Loopback,
                        "always" => PlaintextAuth::Always,
                        "never" => PlaintextAuth::Never,
                        other => {
                            return Err(format!(
                                "[imapd] plaintext_auth = {other:?}: expected loopback, always or never"
                            ));
                        }
                    }
                }
                "run_as" => config.run_as = Some(text(value)?),
                "tls_cert" => config.tls_cert = Some(text(value)?.into()),
                "tls_key" => config.tls_key = Some(text(value)?.into()),
                "trash_folder" | "sent_folder" | "drafts_folder" => {
                    let name = text(value)?;
                    let on_disk = lda::folders::from_utf8(&name)
                        .ok()
                        .filter(|n| n != "INBOX")
                        .ok_or(format!("[imapd] {key} = {name:?}: not a folder name"))?;
                    *match key.as_str() {
                        "trash_folder" => &mut config.trash_folder,
                        "sent_folder" => &mut config.sent_folder,
                        _ => &mut config.drafts_folder,
                    } = on_disk;
                }
                "max_connections" | "max_connections_per_ip" | "max_userip_connections" => {
                    let n = value
                        .as_integer()
                        .filter(|n| *n > 0)
                        .ok_or(format!("[imapd] {key}: expected a positive number"))?
                        as usize;
                    match key.as_str() {
                        "max_connections" => config.limits.total = n,
                        "max_connections_per_ip" => config.limits.per_address = n,
                        _ => config.limits.per_user_address = n,
                    }
                }
                other => return Err(format!("unknown key `{other}` in [imapd]")),
            }
        }
        Ok(config)
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
        assert!(ImapdConfig::parse("[imapd]\nbogus = 1\n").is_err());
        assert!(ImapdConfig::parse("[imapd]\nlisten = [\"nowhere\"]\n").is_err());
        assert!(PlaintextAuth::Loopback.allows("127.0.0.1".parse().unwrap()));
        assert!(!PlaintextAuth::Loopback.allows("192.0.2.1".parse().unwrap()));
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
