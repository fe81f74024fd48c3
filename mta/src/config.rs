//! The `[mtad]` section of the toolkit's configuration file, with
//! Postfix's names in the comments for a site moving from `main.cf`:
//!
//! ```toml
//! [mtad]
//! hostname = "mx.example.jp"          # myhostname
//! local_domains = ["example.jp"]      # mydestination (the hostname is always local)
//! mynetworks = ["127.0.0.0/8", "::1/128"]   # mynetworks: may relay
//! listen = ["0.0.0.0:25"]             # smtpd on port 25
//! submission_listen = ["0.0.0.0:587"] # submission: STARTTLS, then AUTH
//! submissions_listen = ["0.0.0.0:465"]  # smtps: implicit TLS
//! tls_cert = "/etc/mailkit/cert.pem"  # smtpd_tls_cert_file
//! tls_key = "/etc/mailkit/key.pem"    # smtpd_tls_key_file
//! plaintext_auth = "loopback"         # AUTH without TLS: "loopback", "always", "never"
//! relayhost = "[smtp.example.net]:25" # relayhost; default: MX lookup
//! resolver = "127.0.0.1:53"           # DNS server for MX lookups; default: /etc/resolv.conf
//! smtp_port = 25                      # smtp_tcp_port: the port of MX hosts
//! queue_dir = "/var/spool/mailkit"    # queue_directory
//! run_as = "mailkit"                  # mail_owner: started as root, become this user
//! postmaster = "root"                 # the local user postmaster@ (and <postmaster>) reaches
//! message_size_limit = 10240000       # message_size_limit
//! recipient_limit = 1000              # smtpd_recipient_limit
//! bare_newline = "normalize"          # smtpd_forbid_bare_newline: "normalize" or "reject"
//! greet_pause = 0                     # seconds to wait before the greeting, outside mynetworks
//! command_timeout = 300               # smtpd_timeout: a whole command line must come within it
//! max_connections = 5000
//! max_connections_per_ip = 50         # smtpd_client_connection_count_limit
//! max_connection_rate = 0             # smtpd_client_connection_rate_limit, per minute (0: off)
//! hard_error_limit = 20               # smtpd_hard_error_limit
//! delivery_concurrency = 20           # default_destination_concurrency_limit
//! minimal_backoff = 300               # minimal_backoff_time (seconds)
//! maximal_backoff = 4000              # maximal_backoff_time
//! maximal_queue_lifetime = 432000     # maximal_queue_lifetime (5 days)
//! # the filter chain, in this order, each off when empty (Postfix's names):
//! check_client_access = ["cidr:/etc/postfix/client.cidr", "hash:/etc/postfix/access"]
//! check_helo_access = []
//! check_sender_access = ["hash:/etc/postfix/sender_access"]
//! check_recipient_access = []
//! permit_dnswl_client = ["list.dnswl.example=127.0.[0..255].[1..3]"]
//! reject_rbl_client = ["bl.example.net", "zen.example.org=127.0.0.[2..11]"]
//! reject_rhsbl_sender = ["dbl.example.org"]
//! reject_rhsbl_helo = []
//! rbl_reply = { "bl.example.net" = "$rbl_code Listed at $rbl_domain${rbl_reason?: $rbl_reason}" }
//! dnsbl_threshold = 3                # score the lists (zone*weight, as postscreen) and refuse at this sum
//! greylist = false                   # postgrey's: a first attempt waits
//! greylist_delay = 300                # seconds before a retry passes
//! greylist_max_age = 3024000          # seconds a passed triplet is remembered (35 days)
//! greylist_clients = ["regexp:/etc/mailkit/s25r.regexp"]   # only these clients (empty: all)
//! tarpit_clients = ["regexp:/etc/mailkit/s25r.regexp"]     # these wait before each answer (empty: off)
//! tarpit_delay = 15                   # seconds, before the greeting and each HELO, MAIL, RCPT answer
//! sender_auth = false                 # SPF, DKIM, DMARC for mail from outside; Authentication-Results
//! dmarc_reject = true                 # 550 5.7.1 for a DMARC failure where the domain says p=reject
//! dmarc_quarantine = true             # ... p=quarantine: the recipient's Spam folder (through lda)
//! spf_fail_reject = false             # 550 5.7.23 for an SPF fail (-all)
//! auth_tempfail = true                # a DNS failure in SPF or DMARC: 451 (false: pass on)
//! dkim_keys = [{ domain = "example.jp", selector = "mail", key = "/etc/mailkit/dkim/example.jp.mail.pem" }]
//! header_checks = ["regexp:/etc/postfix/header_checks"]
//! mime_header_checks = [...]          # unset: the header_checks tables
//! nested_header_checks = [...]        # unset: the header_checks tables
//! body_checks = ["regexp:/etc/postfix/body_checks"]
//! content_checks_decoded = false      # true: the tables see decoded text (beyond Postfix)
//! site_bayes_db = "/var/lib/mailkit/bsfilter"   # the site-wide score (unset: off)
//! site_bayes_reject_above = 0.999     # unset: add the headers, never refuse
//! virus_scanner = "clamd:/run/clamav/clamd.ctl"   # or "clamd:127.0.0.1:3310", "builtin" (unset: off)
//! virus_signatures = ["/var/lib/clamav/local.hdb"] # the built-in scanner's hash signatures
//! virus_action = "reject"             # or "strip" (the part replaced by a notice), "hold"
//! virus_scanner_failure = "tempfail"  # or "accept" (unscanned, logged)
//! reject_footer = "see https://mail.example.jp/refused"   # smtpd_reject_footer
//! ```

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use lda::config::{ConfigError, ConfigFile, Seconds};
use serde::{Deserialize, Deserializer};

pub use daemon::auth::PlaintextAuth;

/// A network, `192.0.2.0/24` or `2001:db8::/32` (a bare address is /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix.min(32));
                let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix.min(128));
                let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Network, String> {
        let (address, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{s:?} is not a network (address/prefix)"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix must be 0 to {max}"))?,
        };
        Ok(Network { address, prefix })
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The next hop for all remote mail: `host`, `[host]` (no MX lookup),
/// either with `:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayhost {
    pub host: String,
    pub port: u16,
    /// `[host]`: connect to the host itself, not its MX.
    pub no_mx: bool,
}

impl<'de> Deserialize<'de> for Relayhost {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let (host, port) = match text.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => (
                h,
                p.parse()
                    .map_err(|_| serde::de::Error::custom(format!("{text:?}: bad port")))?,
            ),
            _ => (text.as_str(), 25),
        };
        let (host, no_mx) = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(h) => (h, true),
            None => (host, false),
        };
        if host.is_empty() {
            return Err(serde::de::Error::custom("relayhost: empty host"));
        }
        Ok(Relayhost {
            host: host.to_owned(),
            port,
            no_mx,
        })
    }
}

/// What to do with a line that ends in a bare LF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareNewlinePolicy {
    Normalize,
    Reject,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MtadConfig {
    pub hostname: String,
    pub local_domains: Vec<String>,
    pub mynetworks: Vec<Network>,
    pub listen: Vec<SocketAddr>,
    pub submission_listen: Vec<SocketAddr>,
    pub submissions_listen: Vec<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub plaintext_auth: PlaintextAuth,
    pub relayhost: Option<Relayhost>,
    pub resolver: Option<SocketAddr>,
    pub smtp_port: u16,
    pub queue_dir: PathBuf,
    pub run_as: Option<String>,
    pub postmaster: String,
    pub message_size_limit: NonZeroUsize,
    pub recipient_limit: NonZeroUsize,
    pub bare_newline: BareNewlinePolicy,
    pub greet_pause: Seconds,
    pub command_timeout: Seconds,
    pub max_connections: NonZeroUsize,
    pub max_connections_per_ip: NonZeroUsize,
    pub max_connection_rate: usize,
    pub hard_error_limit: NonZeroUsize,
    pub delivery_concurrency: NonZeroUsize,
    pub minimal_backoff: Seconds,
    pub maximal_backoff: Seconds,
    pub maximal_queue_lifetime: LongSeconds,
    // the filter chain (README "The filter chain"), Postfix's names
    pub check_client_access: Vec<String>,
    pub check_helo_access: Vec<String>,
    pub check_sender_access: Vec<String>,
    pub check_recipient_access: Vec<String>,
    pub permit_dnswl_client: Vec<crate::policy::dnsbl::List>,
    pub reject_rbl_client: Vec<crate::policy::dnsbl::List>,
    pub reject_rhsbl_sender: Vec<crate::policy::dnsbl::List>,
    pub reject_rhsbl_helo: Vec<crate::policy::dnsbl::List>,
    /// Reply templates by list zone (Postfix's `rbl_reply_maps`).
    pub rbl_reply: std::collections::HashMap<String, String>,
    /// Score the block lists by their weights (`zone*N`) and refuse at
    /// this sum (postscreen's `postscreen_dnsbl_threshold`); unset: the
    /// first list that lists refuses.
    pub dnsbl_threshold: Option<i32>,
    /// Greylisting (postgrey's): off unless true.
    pub greylist: bool,
    pub greylist_delay: Seconds,
    pub greylist_max_age: LongSeconds,
    /// Only clients these tables list are greylisted (empty: every client).
    pub greylist_clients: Vec<String>,
    /// Clients these tables list wait `tarpit_delay` before each answer
    /// (none: off).
    pub tarpit_clients: Vec<String>,
    pub tarpit_delay: Seconds,
    /// SPF, DKIM and DMARC for mail from outside, and their
    /// Authentication-Results (off unless true).
    pub sender_auth: bool,
    /// Refuse (550 5.7.1) what fails DMARC where the domain says p=reject.
    pub dmarc_reject: bool,
    /// File what fails DMARC where the domain says p=quarantine in the
    /// recipient's Spam folder.
    pub dmarc_quarantine: bool,
    /// Refuse (550 5.7.23) an SPF fail (`-all`).
    pub spf_fail_reject: bool,
    /// A DNS failure in SPF or DMARC: 451, try later (false: pass on).
    pub auth_tempfail: bool,
    /// Keys that sign the mail of their domain from mynetworks and
    /// logged-in users.
    pub dkim_keys: Vec<crate::policy::dkim::KeyConfig>,
    pub header_checks: Vec<String>,
    /// Unset: the header_checks tables, as Postfix.
    pub mime_header_checks: Option<Vec<String>>,
    pub nested_header_checks: Option<Vec<String>>,
    pub body_checks: Vec<String>,
    /// The header and body tables see decoded, NFKC-normalised text.
    pub content_checks_decoded: bool,
    /// The site's token database for the site-wide score (unset: off).
    pub site_bayes_db: Option<PathBuf>,
    /// Refuse above this site-wide probability (unset: never).
    pub site_bayes_reject_above: Option<f64>,
    /// `builtin`, `clamd:/path/to/socket` or `clamd:host:port` (unset: off).
    pub virus_scanner: Option<String>,
    /// The built-in scanner's ClamAV `.hdb`/`.hsb` files.
    pub virus_signatures: Vec<PathBuf>,
    pub virus_action: crate::policy::virus::VirusAction,
    pub virus_scanner_failure: crate::policy::virus::ScannerFailure,
    /// Lines added to every refusal (Postfix's smtpd_reject_footer; `\n`
    /// starts another line): where a sender learns why and whom to ask.
    pub reject_footer: Option<String>,
}

/// Seconds without Seconds' one-day bound (queue lifetimes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongSeconds(pub Duration);

impl<'de> Deserialize<'de> for LongSeconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = u64::deserialize(d)?;
        Ok(LongSeconds(Duration::from_secs(s)))
    }
}

/// The machine's name (gethostname), as Postfix's myhostname default.
fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length are valid; the name is NUL-ended
    // when it fits, and we stop at the first NUL or the end.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_owned()
    }
}

impl Default for MtadConfig {
    fn default() -> Self {
        let n = |v: usize| NonZeroUsize::new(v).unwrap_or(NonZeroUsize::MIN);
        MtadConfig {
            hostname: system_hostname(),
            local_domains: Vec::new(),
            mynetworks: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 25))],
            submission_listen: Vec::new(),
            submissions_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            plaintext_auth: PlaintextAuth::Loopback,
            relayhost: None,
            resolver: None,
            smtp_port: 25,
            queue_dir: PathBuf::from("/var/spool/mailkit"),
            run_as: None,
            postmaster: "root".to_owned(),
            message_size_limit: n(10_240_000),
            recipient_limit: n(1000),
            bare_newline: BareNewlinePolicy::Normalize,
            greet_pause: Seconds(Duration::ZERO),
            command_timeout: Seconds(Duration::from_secs(300)),
            max_connections: n(5000),
            max_connections_per_ip: n(50),
            max_connection_rate: 0,
            hard_error_limit: n(20),
            delivery_concurrency: n(20),
            minimal_backoff: Seconds(Duration::from_secs(300)),
            maximal_backoff: Seconds(Duration::from_secs(4000)),
            maximal_queue_lifetime: LongSeconds(Duration::from_secs(5 * 86400)),
            check_client_access: Vec::new(),
            check_helo_access: Vec::new(),
            check_sender_access: Vec::new(),
            check_recipient_access: Vec::new(),
            permit_dnswl_client: Vec::new(),
            reject_rbl_client: Vec::new(),
            reject_rhsbl_sender: Vec::new(),
            reject_rhsbl_helo: Vec::new(),
            rbl_reply: Default::default(),
            dnsbl_threshold: None,
            greylist: false,
            greylist_delay: Seconds(Duration::from_secs(300)),
            greylist_max_age: LongSeconds(Duration::from_secs(35 * 86400)),
            greylist_clients: Vec::new(),
            tarpit_clients: Vec::new(),
            tarpit_delay: Seconds(Duration::from_secs(15)),
            sender_auth: false,
            dmarc_reject: true,
            dmarc_quarantine: true,
            spf_fail_reject: false,
            auth_tempfail: true,
            dkim_keys: Vec::new(),
            header_checks: Vec::new(),
            mime_header_checks: None,
            nested_header_checks: None,
            body_checks: Vec::new(),
            content_checks_decoded: false,
            site_bayes_db: None,
            site_bayes_reject_above: None,
            virus_scanner: None,
            virus_signatures: Vec::new(),
            virus_action: Default::default(),
            virus_scanner_failure: Default::default(),
            reject_footer: None,
        }
    }
}

impl MtadConfig {
    /// The `[mtad]` section of a file already read.
    pub fn from_file(file: &ConfigFile) -> Result<MtadConfig, ConfigError> {
        file.section("mtad")
    }

    /// The `[mtad]` section of `text`.
    pub fn parse(text: &str) -> Result<MtadConfig, ConfigError> {
        MtadConfig::from_file(&ConfigFile::from_text("mailkit.toml", text)?)
    }

    /// Whether `domain` is delivered here (the hostname always is).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        domain.eq_ignore_ascii_case(&self.hostname) || self.local_domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// Whether `client` may relay without logging in.
    pub fn in_mynetworks(&self, client: IpAddr) -> bool {
        self.mynetworks.iter().any(|n| n.contains(client))
    }

    /// The connection caps.
    pub fn limits(&self) -> daemon::limits::Caps {
        daemon::limits::Caps {
            total: self.max_connections.get(),
            per_address: self.max_connections_per_ip.get(),
            per_user_address: self.max_connections_per_ip.get(),
            rate_per_minute: self.max_connection_rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_configuration_names_every_key() {
        let sample = include_str!("../../samples/etc/mailkit.toml");
        let e = MtadConfig::parse("[mtad]\nno_such_key = 1\n").unwrap_err();
        let missing = lda::config::keys_not_shown(sample, "mtad", &e.to_string());
        assert!(
            missing.is_empty(),
            "samples/etc/mailkit.toml [mtad] does not show {missing:?}"
        );
    }

    #[test]
    fn the_sample_configuration_parses() {
        let c = MtadConfig::parse(include_str!("../../samples/etc/mailkit.toml")).unwrap();
        let defaults = MtadConfig::default();
        assert_eq!(c.run_as.as_deref(), Some("mailkit"));
        assert_eq!(c.submissions_listen, vec!["0.0.0.0:465".parse::<SocketAddr>().unwrap()]);
        // the values it shows as defaults are the defaults
        assert_eq!(
            (c.mynetworks, c.listen, c.queue_dir, c.message_size_limit),
            (
                defaults.mynetworks,
                defaults.listen,
                defaults.queue_dir,
                defaults.message_size_limit
            )
        );
        assert_eq!(
            (c.maximal_queue_lifetime, c.minimal_backoff, c.max_connections_per_ip),
            (
                defaults.maximal_queue_lifetime,
                defaults.minimal_backoff,
                defaults.max_connections_per_ip
            )
        );
    }

    #[test]
    fn networks() {
        let n: Network = "192.0.2.0/24".parse().unwrap();
        assert!(n.contains("192.0.2.77".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        assert!(n.contains("::ffff:192.0.2.1".parse().unwrap()), "mapped IPv4");
        let n: Network = "2001:db8::/32".parse().unwrap();
        assert!(n.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!n.contains("192.0.2.1".parse().unwrap()));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("nonsense".parse::<Network>().is_err());
    }

    #[test]
    fn parses_and_refuses() {
        let c = MtadConfig::parse(
            "[mtad]\nhostname = \"mx.example.jp\"\nlocal_domains = [\"example.jp\"]\nrelayhost = \"[smtp.example.net]:587\"\nmynetworks = [\"10.0.0.0/8\"]\n",
        )
        .unwrap();
        assert!(c.is_local_domain("EXAMPLE.jp") && c.is_local_domain("mx.example.jp"));
        assert!(!c.is_local_domain("example.com"));
        assert_eq!(
            c.relayhost,
            Some(Relayhost {
                host: "smtp.example.net".into(),
                port: 587,
                no_mx: true
            })
        );
        assert!(c.in_mynetworks("10.1.2.3".parse().unwrap()));
        assert!(
            !c.in_mynetworks("127.0.0.1".parse().unwrap()),
            "the list replaces the default"
        );
        for (text, want) in [
            ("[mtad]\nmynetwork = []\n", "unknown field `mynetwork`"),
            ("[mtad]\nmynetworks = [\"10.0.0.0/40\"]\n", "prefix must be 0 to 32"),
            ("[mtad]\nbare_newline = \"ignore\"\n", "unknown variant"),
            ("[mtad]\nmessage_size_limit = 0\n", "nonzero"),
        ] {
            let err = MtadConfig::parse(text).unwrap_err();
            assert!(err.message.contains(want) && err.line == 2, "{text}: {err}");
        }
    }
}
