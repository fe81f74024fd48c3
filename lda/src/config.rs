//! The toolkit's TOML configuration, as far as delivery needs it. Every
//! key is optional; without a file the built-in defaults apply.
//!
//! ```toml
//! [users]
//! passwd_file = "/etc/mailkit/passwd"   # Dovecot passwd-file format
//! system_users = true                   # also look users up in /etc/passwd (NSS)
//!
//! [mailbox]
//! inbox = "/var/mail/%u"                # %u user, %h or ~ home
//! folders = "~/mail"
//! spam_folder = "Spam"
//! lock_timeout = 30                     # seconds to wait for a lock, then exit 75
//! dotlock_stale = 600                   # seconds after which a dotlock is stale
//!
//! [filter]
//! enabled = true
//! bsfilter_home = "~/.bsfilter"         # the user's token database
//! system_db = "/var/lib/mailkit/bsfilter"
//! method = "rf"                         # g, r or rf
//! spam_cutoff = 0.95                    # default: the method's
//! header_prefix = "Spam"                # X-Spam-Flag, X-Spam-Probability
//! jtokenizer = "bigram"                 # or "lindera": as the user's bsfilter -j
//! discard_above = 0.9999                # off unless set: drop such spam
//! auto_train = false                    # learn each message as its verdict
//! on_error = "deliver"                  # or "tempfail"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use bsfilter::morphology::JapaneseTokenizer;
use bsfilter::score::Method;

/// Where the configuration file is looked for when none is named.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/mailkit/mailkit.toml";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub passwd_file: Option<PathBuf>,
    pub system_users: bool,
    pub inbox: String,
    pub folders: String,
    /// The spam folder's name on disk and in IMAP (modified UTF-7; the
    /// file gives it in UTF-8).
    pub spam_folder: String,
    pub lock_timeout: Duration,
    pub dotlock_stale: Duration,
    pub filter: FilterSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FilterSettings {
    pub enabled: bool,
    pub bsfilter_home: String,
    pub system_db: Option<PathBuf>,
    pub method: Method,
    pub spam_cutoff: f64,
    pub header_prefix: String,
    pub japanese: JapaneseTokenizer,
    pub discard_above: Option<f64>,
    pub auto_train: bool,
    pub tempfail_on_error: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            passwd_file: None,
            system_users: true,
            inbox: "/var/mail/%u".to_owned(),
            folders: "~/mail".to_owned(),
            spam_folder: "Spam".to_owned(),
            lock_timeout: Duration::from_secs(30),
            dotlock_stale: Duration::from_secs(600),
            filter: FilterSettings {
                enabled: true,
                bsfilter_home: "~/.bsfilter".to_owned(),
                system_db: None,
                method: Method::RobinsonFisher,
                spam_cutoff: Method::RobinsonFisher.default_cutoff(),
                header_prefix: "Spam".to_owned(),
                japanese: JapaneseTokenizer::Bigram,
                discard_above: None,
                auto_train: false,
                tempfail_on_error: false,
            },
        }
    }
}

#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl Config {
    /// Reads `path`; with `None`, the default file if it exists, else the
    /// built-in defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_owned(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text).map_err(|message| ConfigError { path, message }),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(ConfigError {
                path,
                message: e.to_string(),
            }),
        }
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let mut config = Config::default();
        for (section, value) in &table {
            let toml::Value::Table(t) = value else {
                return Err(format!("`{section}` should be a [section]"));
            };
            let keys = Keys { section, table: t };
            match section.as_str() {
                "users" => {
                    keys.allow(&["passwd_file", "system_users"])?;
                    config.passwd_file = keys.string("passwd_file")?.map(PathBuf::from);
                    config.system_users = keys.bool("system_users")?.unwrap_or(config.system_users);
                }
                "mailbox" => {
                    keys.allow(&["inbox", "folders", "spam_folder", "lock_timeout", "dotlock_stale"])?;
                    config.inbox = keys.string("inbox")?.unwrap_or(config.inbox);
                    config.folders = keys.string("folders")?.unwrap_or(config.folders);
                    if let Some(name) = keys.string("spam_folder")? {
                        config.spam_folder = crate::folders::from_utf8(&name)
                            .ok()
                            .filter(|n| n != "INBOX")
                            .ok_or(format!("[mailbox] spam_folder = {name:?}: not a folder name"))?;
                    }
                    if let Some(s) = keys.seconds("lock_timeout")? {
                        config.lock_timeout = s;
                    }
                    if let Some(s) = keys.seconds("dotlock_stale")? {
                        config.dotlock_stale = s;
                    }
                }
                "filter" => {
                    keys.allow(&[
                        "enabled",
                        "bsfilter_home",
                        "system_db",
                        "method",
                        "spam_cutoff",
                        "header_prefix",
                        "jtokenizer",
                        "discard_above",
                        "auto_train",
                        "on_error",
                    ])?;
                    let f = &mut config.filter;
                    f.enabled = keys.bool("enabled")?.unwrap_or(f.enabled);
                    f.bsfilter_home = keys.string("bsfilter_home")?.unwrap_or(f.bsfilter_home.clone());
                    f.system_db = keys.string("system_db")?.map(PathBuf::from);
                    if let Some(m) = keys.string("method")? {
                        f.method = Method::parse(&m).ok_or(format!("[filter] method = {m:?}: expected g, r or rf"))?;
                        f.spam_cutoff = f.method.default_cutoff();
                    }
                    f.spam_cutoff = keys.probability("spam_cutoff")?.unwrap_or(f.spam_cutoff);
                    f.header_prefix = keys.string("header_prefix")?.unwrap_or(f.header_prefix.clone());
                    if f.header_prefix.is_empty()
                        || !f.header_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        return Err("[filter] header_prefix: letters, digits and '-' only".into());
                    }
                    if let Some(j) = keys.string("jtokenizer")? {
                        f.japanese = JapaneseTokenizer::parse(&j)
                            .ok_or(format!("[filter] jtokenizer = {j:?}: expected bigram or lindera"))?;
                    }
                    f.discard_above = keys.probability("discard_above")?;
                    f.auto_train = keys.bool("auto_train")?.unwrap_or(f.auto_train);
                    f.tempfail_on_error = match keys.string("on_error")?.as_deref() {
                        None | Some("deliver") => false,
                        Some("tempfail") => true,
                        Some(other) => {
                            return Err(format!("[filter] on_error = {other:?}: expected deliver or tempfail"));
                        }
                    };
                }
                // sections of the other programs
                "imapd" | "pop3d" | "mta" => {}
                other => return Err(format!("unknown section [{other}]")),
            }
        }
        Ok(config)
    }
}

struct Keys<'a> {
    section: &'a str,
    table: &'a toml::Table,
}

impl Keys<'_> {
    fn allow(&self, known: &[&str]) -> Result<(), String> {
        match self.table.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(format!("unknown key `{k}` in [{}]", self.section)),
            None => Ok(()),
        }
    }
    fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("[{}] {key} should be a string", self.section)),
        }
    }
    fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(_) => Err(format!("[{}] {key} should be true or false", self.section)),
        }
    }
    fn number(&self, key: &str) -> Result<Option<f64>, String> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Float(f)) => Ok(Some(*f)),
            Some(toml::Value::Integer(i)) => Ok(Some(*i as f64)),
            Some(_) => Err(format!("[{}] {key} should be a number", self.section)),
        }
    }
    fn seconds(&self, key: &str) -> Result<Option<Duration>, String> {
        match self.number(key)? {
            Some(s) if (0.0..=86400.0).contains(&s) => Ok(Some(Duration::from_secs_f64(s))),
            Some(_) => Err(format!("[{}] {key} should be 0 to 86400 seconds", self.section)),
            None => Ok(None),
        }
    }
    fn probability(&self, key: &str) -> Result<Option<f64>, String> {
        match self.number(key)? {
            Some(p) if (0.0..=1.0).contains(&p) => Ok(Some(p)),
            Some(_) => Err(format!("[{}] {key} should be between 0 and 1", self.section)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        let c = Config::parse(
            "[users]\npasswd_file = \"/etc/p\"\n[mailbox]\ninbox = \"~/mail/inbox\"\nlock_timeout = 2.5\n\
             [filter]\nmethod = \"g\"\ndiscard_above = 0.999\non_error = \"tempfail\"\njtokenizer = \"lindera\"\n",
        )
        .unwrap();
        assert_eq!(c.passwd_file, Some(PathBuf::from("/etc/p")));
        assert_eq!(c.lock_timeout, Duration::from_millis(2500));
        assert_eq!(c.filter.method, Method::Graham);
        assert_eq!(c.filter.spam_cutoff, 0.9);
        assert_eq!(c.filter.discard_above, Some(0.999));
        assert!(c.filter.tempfail_on_error);
        assert_eq!(c.filter.japanese, JapaneseTokenizer::Lindera);
        let c = Config::parse("[mailbox]\nspam_folder = \"迷惑メール\"\n").unwrap();
        assert_eq!(c.spam_folder, "&j,dg0TDhMPww6w-", "stored as on disk");
    }

    #[test]
    fn mistakes_are_named() {
        for (text, want) in [
            ("[mailbox]\ninbx = \"x\"", "unknown key `inbx`"),
            ("[filter]\nspam_cutoff = 2", "between 0 and 1"),
            ("[mailbox]\nspam_folder = \"../x\"", "not a folder name"),
            ("[mailbox]\nspam_folder = \"INBOX\"", "not a folder name"),
            ("[filter]\nmethod = \"x\"", "expected g, r or rf"),
            ("[filter]\njtokenizer = \"mecab\"", "expected bigram or lindera"),
            ("[nope]\n", "unknown section"),
            ("[users\n", "TOML"),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(want) || want == "TOML", "{text}: {err}");
        }
    }
}
