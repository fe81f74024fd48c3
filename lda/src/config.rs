//! The toolkit's one configuration file, `mailkit.toml`: read once by each
//! program, which takes the sections it needs as typed structures
//! ([`ConfigFile::sections`]); a key a section does not know, a value of
//! the wrong kind or out of range, or a section no program has, is
//! refused with the file, line and column. Every key is optional; without
//! a file (at the default path) the built-in defaults apply.
//!
//! This module owns the file, the value types several programs share
//! ([`Seconds`], [`Probability`], [`FolderName`]) and the sections of
//! delivery — `[users]`, `[mailbox]`, `[filter]`, which lda, imapd and
//! mtad all read. Each server's own section lives with that server
//! (`imapd::config`), so a new program adds its section without touching
//! another's; it only adds its name to [`SECTIONS`].
//!
//! ```toml
//! [users]
//! passwd_file = "/etc/mailkit/passwd"   # Dovecot passwd-file format
//! system_users = true                   # also look users up in /etc/passwd (NSS)
//!
//! [mailbox]
//! inbox = "/var/mail/%u"                # %u user, %h or ~ home
//! folders = "~/mail"
//! spam_folder = "Spam"                  # UTF-8; stored as modified UTF-7
//! lock_timeout = 30                     # seconds to wait for a lock, then exit 75
//! dotlock_stale = 600                   # seconds after which a dotlock is stale
//! quota_full_tempfail = false           # over the user's quota: exit 77, or 75 if true
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
//! auth_results_id = "mx.example.jp"     # tokens of mtad's Authentication-Results (its hostname)
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use bsfilter::morphology::JapaneseTokenizer;
use bsfilter::score::Method;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

/// Where the configuration file is looked for when none is named.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/mailkit/mailkit.toml";

/// Every section a program of the toolkit reads.
pub const SECTIONS: &[&str] = &["users", "mailbox", "filter", "imapd", "mtad"];

/// What is wrong with the configuration, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based; 0 when the problem has no place in the file (unreadable).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// The configuration file, read.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    text: String,
}

impl ConfigFile {
    /// Reads `path`; with `None`, the default file if it exists, else an
    /// empty one (every default).
    pub fn load(path: Option<&Path>) -> Result<ConfigFile, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_owned(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(ConfigError {
                    path,
                    line: 0,
                    column: 0,
                    message: e.to_string(),
                });
            }
        };
        ConfigFile::from_text(path, text)
    }

    /// The file `path` holding `text` (checked when its sections are
    /// taken).
    pub fn from_text(path: impl Into<PathBuf>, text: impl Into<String>) -> Result<ConfigFile, ConfigError> {
        Ok(ConfigFile {
            path: path.into(),
            text: text.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed document, its top level checked: sections only, and
    /// only sections some program has.
    fn document(&self) -> Result<toml::Spanned<toml::de::DeTable<'_>>, ConfigError> {
        let root = toml::de::DeTable::parse(&self.text).map_err(|e| self.error(&e))?;
        for (name, value) in root.get_ref().iter() {
            // the start of the line that names it: `[section]`
            let at = self.text[..name.span().start].rfind('\n').map_or(0, |i| i + 1);
            if !SECTIONS.contains(&name.get_ref().as_ref()) {
                let message = format!("unknown section [{}] (known: {})", name.get_ref(), SECTIONS.join(", "));
                return Err(self.error_at(at, message));
            }
            if !matches!(value.get_ref(), toml::de::DeValue::Table(_)) {
                return Err(self.error_at(at, format!("`{}` should be a [section]", name.get_ref())));
            }
        }
        Ok(root)
    }

    /// The file's sections as a program sees them: `T` names the sections
    /// it reads as fields (with `#[serde(default)]`); the others are left
    /// to their programs. One parse of the text (lda's start-up is
    /// measured per delivery: a second parse and a key search per section
    /// cost ~11 page faults, 4 % of a delivery).
    pub fn sections<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let root = self.document()?;
        T::deserialize(toml::de::Deserializer::from(root)).map_err(|e| self.error(&e))
    }

    /// One program's section, `[name]` (its defaults when the file has
    /// none): what a server reads of the file, the other sections left
    /// to their programs.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &'static str) -> Result<T, ConfigError> {
        let root = self.document()?;
        serde::de::DeserializeSeed::deserialize(
            Section::<T>(name, std::marker::PhantomData),
            toml::de::Deserializer::from(root),
        )
        .map_err(|e| self.error(&e))
    }

    fn error(&self, e: &toml::de::Error) -> ConfigError {
        let at = e.span().map_or(0, |s| s.start);
        self.error_at(at, e.message().to_owned())
    }

    fn error_at(&self, at: usize, message: String) -> ConfigError {
        let before = &self.text[..at.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        // name the section, for messages about a key
        let section = before
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix('[').and_then(|l| l.split(']').next()));
        let message = match section {
            Some(s) if !message.contains(&format!("[{s}]")) && !message.starts_with("unknown section") => {
                format!("[{s}] {message}")
            }
            _ => message,
        };
        ConfigError {
            path: self.path.clone(),
            line,
            column,
            message,
        }
    }
}

/// A number of seconds, 0 to 86,400.
/// Picks one table out of the document's root, skipping the others.
struct Section<T>(&'static str, std::marker::PhantomData<T>);

impl<'de, T: DeserializeOwned + Default> serde::de::DeserializeSeed<'de> for Section<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned + Default> serde::de::Visitor<'de> for Section<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a configuration file with a [{}] section", self.0)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'_, str>>()? {
            if key == self.0 {
                found = Some(map.next_value::<T>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found.unwrap_or_default())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = f64::deserialize(d)?;
        if (0.0..=86400.0).contains(&s) {
            Ok(Seconds(Duration::from_secs_f64(s)))
        } else {
            Err(D::Error::custom(format!("{s} should be 0 to 86400 seconds")))
        }
    }
}

/// A probability, 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probability(pub f64);

impl<'de> Deserialize<'de> for Probability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = f64::deserialize(d)?;
        if (0.0..=1.0).contains(&p) {
            Ok(Probability(p))
        } else {
            Err(D::Error::custom(format!("{p} should be between 0 and 1")))
        }
    }
}

/// A folder named in UTF-8, kept as its on-disk (modified UTF-7) name
/// ([`crate::folders::from_utf8`]); never INBOX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderName(pub String);

impl<'de> Deserialize<'de> for FolderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        match crate::folders::from_utf8(&name) {
            Ok(n) if n != "INBOX" => Ok(FolderName(n)),
            Ok(_) => Err(D::Error::custom("INBOX is not a folder to name here")),
            Err(crate::folders::BadName(why)) => Err(D::Error::custom(format!("{name:?} is not a folder name: {why}"))),
        }
    }
}

impl FolderName {
    /// A built-in name: plain ASCII, the same on disk (not run through
    /// the checks at every start of lda).
    fn builtin(name: &str) -> FolderName {
        debug_assert_eq!(crate::folders::from_utf8(name).as_deref(), Ok(name));
        FolderName(name.to_owned())
    }
}

/// The delivery settings every program shares: users, mailboxes, filter.
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
    /// A delivery past the user's quota exits 75 (try later) instead of
    /// 77 (refused): Dovecot's setting of that name.
    pub quota_full_tempfail: bool,
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
    /// mtad's authserv-id: its Authentication-Results verdicts are tokens.
    pub auth_results_id: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        DeliverySections::default().into()
    }
}

/// The sections of the file that delivery reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeliverySections {
    users: UsersSection,
    mailbox: MailboxSection,
    filter: FilterSection,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct UsersSection {
    passwd_file: Option<PathBuf>,
    system_users: bool,
}

impl Default for UsersSection {
    fn default() -> Self {
        UsersSection {
            passwd_file: None,
            system_users: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MailboxSection {
    inbox: String,
    folders: String,
    spam_folder: FolderName,
    lock_timeout: Seconds,
    dotlock_stale: Seconds,
    quota_full_tempfail: bool,
}

impl Default for MailboxSection {
    fn default() -> Self {
        MailboxSection {
            inbox: "/var/mail/%u".to_owned(),
            folders: "~/mail".to_owned(),
            spam_folder: FolderName::builtin("Spam"),
            lock_timeout: Seconds(Duration::from_secs(30)),
            dotlock_stale: Seconds(Duration::from_secs(600)),
            quota_full_tempfail: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OnError {
    Deliver,
    Tempfail,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FilterSection {
    enabled: bool,
    bsfilter_home: String,
    system_db: Option<PathBuf>,
    #[serde(deserialize_with = "method")]
    method: Method,
    spam_cutoff: Option<Probability>,
    #[serde(deserialize_with = "header_prefix")]
    header_prefix: String,
    #[serde(deserialize_with = "japanese")]
    jtokenizer: JapaneseTokenizer,
    discard_above: Option<Probability>,
    auto_train: bool,
    on_error: OnError,
    auth_results_id: Option<String>,
}

impl Default for FilterSection {
    fn default() -> Self {
        FilterSection {
            enabled: true,
            bsfilter_home: "~/.bsfilter".to_owned(),
            system_db: None,
            method: Method::RobinsonFisher,
            spam_cutoff: None,
            header_prefix: "Spam".to_owned(),
            jtokenizer: JapaneseTokenizer::Bigram,
            discard_above: None,
            auto_train: false,
            auth_results_id: None,
            on_error: OnError::Deliver,
        }
    }
}

fn method<'de, D: Deserializer<'de>>(d: D) -> Result<Method, D::Error> {
    let name = String::deserialize(d)?;
    Method::parse(&name).ok_or_else(|| D::Error::custom(format!("method = {name:?}: expected g, r or rf")))
}

fn japanese<'de, D: Deserializer<'de>>(d: D) -> Result<JapaneseTokenizer, D::Error> {
    let name = String::deserialize(d)?;
    JapaneseTokenizer::parse(&name)
        .ok_or_else(|| D::Error::custom(format!("jtokenizer = {name:?}: expected bigram or lindera")))
}

fn header_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let prefix = String::deserialize(d)?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(D::Error::custom("header_prefix: letters, digits and '-' only"));
    }
    Ok(prefix)
}

impl From<DeliverySections> for Config {
    fn from(s: DeliverySections) -> Config {
        let f = s.filter;
        Config {
            passwd_file: s.users.passwd_file,
            system_users: s.users.system_users,
            inbox: s.mailbox.inbox,
            folders: s.mailbox.folders,
            spam_folder: s.mailbox.spam_folder.0,
            lock_timeout: s.mailbox.lock_timeout.0,
            dotlock_stale: s.mailbox.dotlock_stale.0,
            quota_full_tempfail: s.mailbox.quota_full_tempfail,
            filter: FilterSettings {
                enabled: f.enabled,
                bsfilter_home: f.bsfilter_home,
                system_db: f.system_db,
                method: f.method,
                spam_cutoff: f.spam_cutoff.map_or(f.method.default_cutoff(), |p| p.0),
                header_prefix: f.header_prefix,
                japanese: f.jtokenizer,
                discard_above: f.discard_above.map(|p| p.0),
                auto_train: f.auto_train,
                tempfail_on_error: f.on_error == OnError::Tempfail,
                auth_results_id: f.auth_results_id,
            },
        }
    }
}

impl Config {
    /// Reads the delivery sections of `path` (see [`ConfigFile::load`]).
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::from_file(&ConfigFile::load(path)?)
    }

    /// The delivery sections of a file already read.
    pub fn from_file(file: &ConfigFile) -> Result<Config, ConfigError> {
        Ok(file.sections::<DeliverySections>()?.into())
    }

    /// The delivery sections of `text` (a file's contents, for tests and
    /// tools).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_file(&ConfigFile::from_text("mailkit.toml", text)?)
    }
}

/// The keys of `[section]` that `sample` (a commented configuration
/// file) does not show, line by line (`key = …` or `# key = …`): the keys
/// serde lists in `unknown_key_error`, the error it gave for an unknown
/// key in that section. Each program's test that samples/etc/mailkit.toml
/// documents all its keys calls this, so a key added is never left out.
pub fn keys_not_shown(sample: &str, section: &str, unknown_key_error: &str) -> Vec<String> {
    // serde's `expected one of `a`, `b``, or `expected `a` or `b``
    let Some(known) = unknown_key_error.split("expected ").nth(1) else {
        return vec![format!("(no key list in {unknown_key_error:?})")];
    };
    let known = known.trim_start_matches("one of ").replace(" or ", ", ");
    let shown = sample
        .split(&format!("\n[{section}]"))
        .nth(1)
        .unwrap_or("")
        .split("\n[")
        .next()
        .unwrap_or("");
    known
        .split(", ")
        .map(|k| k.trim().trim_matches('`'))
        .filter(|key| {
            !shown
                .lines()
                .any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} ")))
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_configuration_names_every_key() {
        let sample = include_str!("../../samples/etc/mailkit.toml");
        assert!(Config::parse(sample).is_ok());
        for section in ["users", "mailbox", "filter"] {
            let e = Config::parse(&format!("[{section}]\nno_such_key = 1\n")).unwrap_err();
            let missing = keys_not_shown(sample, section, &e.to_string());
            assert!(
                missing.is_empty(),
                "samples/etc/mailkit.toml [{section}] does not show {missing:?}"
            );
        }
    }

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
        let c = Config::parse("[filter]\nmethod = \"r\"\nspam_cutoff = 0.7\n").unwrap();
        assert_eq!(c.filter.spam_cutoff, 0.7, "an explicit cutoff wins over the method's");
        // another program's section is that program's business
        assert!(Config::parse("[imapd]\nanything = 1\n").is_ok());
    }

    #[test]
    fn mistakes_are_named_with_their_line() {
        for (text, line, want) in [
            ("[mailbox]\ninbx = \"x\"", 2, "[mailbox] unknown field `inbx`"),
            (
                "[users]\n\n[filter]\nspam_cutoff = 2",
                4,
                "[filter] 2 should be between 0 and 1",
            ),
            ("[filter]\nmethod = \"x\"", 2, "expected g, r or rf"),
            ("[filter]\njtokenizer = \"mecab\"", 2, "expected bigram or lindera"),
            ("[filter]\non_error = \"bounce\"", 2, "unknown variant `bounce`"),
            ("[mailbox]\nlock_timeout = -1", 2, "should be 0 to 86400 seconds"),
            ("[mailbox]\nspam_folder = \"../x\"", 2, "is not a folder name"),
            ("[mailbox]\nspam_folder = \"INBOX\"", 2, "INBOX is not a folder"),
            ("[users]\nsystem_users = \"yes\"", 2, "invalid type"),
            ("[nope]\n", 1, "unknown section [nope]"),
            ("[users\n", 1, ""),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text}: {err}");
            assert!(err.message.contains(want), "{text}: {err}");
            assert!(err.to_string().starts_with(&format!("mailkit.toml:{line}:")), "{err}");
        }
    }
}
