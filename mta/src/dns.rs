//! DNS for the front door, through hickory-resolver: the client's name
//! (reverse lookup confirmed forward, as Postfix names a client
//! `unknown` otherwise), and where mail for a domain goes (MX in
//! preference order, else the domain's own A/AAAA). One resolver for the
//! process, its answers cached with their TTLs; every lookup bounded in
//! time. The resolver is the system's (`/etc/resolv.conf`) or the one
//! `[mtad] resolver` names (a test's own DNS server).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;

/// How long one lookup may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where mail for a domain goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Hosts in the order to try, each with its addresses.
    Hosts(Vec<(String, Vec<IpAddr>)>),
    /// The domain does not exist, or has no MX and no address.
    NoSuchDomain,
    /// The domain says it takes no mail: a null MX (RFC 7505).
    NullMx,
}

/// Why a lookup gave no answer (try again later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsFailure(pub String);

impl std::fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DNS lookup failed: {}", self.0)
    }
}

impl std::error::Error for DnsFailure {}

/// What a failed lookup said. hickory reports REFUSED and SERVFAIL as
/// "no records found" too, with the response code inside: those are
/// failures to try again later, never "no such domain" (which would
/// bounce the mail).
enum Negative {
    /// The name exists without records of the type asked.
    NoData,
    /// The name does not exist.
    NxDomain,
    Failure,
}

fn negative(e: &NetError) -> Negative {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => match no_records.response_code {
            ResponseCode::NoError => Negative::NoData,
            ResponseCode::NXDomain => Negative::NxDomain,
            _ => Negative::Failure,
        },
        _ => Negative::Failure,
    }
}

#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// The system's resolver, or `server` (UDP and TCP).
    pub fn new(server: Option<SocketAddr>) -> Result<Dns, String> {
        let mut options = ResolverOpts::default();
        options.timeout = Duration::from_secs(2);
        options.attempts = 2;
        let builder = match server {
            Some(addr) => TokioResolver::builder_with_config(server_config(addr), TokioRuntimeProvider::default()),
            None => TokioResolver::builder_tokio().map_err(|e| format!("reading /etc/resolv.conf: {e}"))?,
        };
        let resolver = builder
            .with_options(options)
            .build()
            .map_err(|e| format!("setting up the resolver: {e}"))?;
        Ok(Dns { resolver })
    }

    /// The resolver itself, for what looks up through it too (sender
    /// authentication): one resolver, one cache.
    pub fn resolver(&self) -> &TokioResolver {
        &self.resolver
    }

    /// The client's name, as Postfix gives it: its reverse name when that
    /// name's addresses include the client's, else `unknown`. Loopback
    /// is `localhost` without a lookup.
    pub async fn client_name(&self, ip: IpAddr) -> String {
        let ip = ip.to_canonical();
        if ip.is_loopback() {
            return "localhost".to_owned();
        }
        let lookup = async {
            let names = self.resolver.reverse_lookup(ip).await.ok()?;
            let names = names.answers().iter().filter_map(|r| match &r.data {
                RData::PTR(ptr) => Some(ptr.0.to_string()),
                _ => None,
            });
            for name in names {
                let host = name.trim_end_matches('.').to_owned();
                if let Ok(addresses) = self.resolver.lookup_ip(name.as_str()).await
                    && addresses.iter().any(|a| a == ip)
                {
                    return Some(host);
                }
            }
            None
        };
        tokio::time::timeout(LOOKUP_TIMEOUT, lookup)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// A DNS list's answer for `name` (`4.3.2.1.zone.`, `domain.zone.`):
    /// its A records, none when the name is not listed.
    pub async fn listed(&self, name: &str) -> Result<Vec<std::net::Ipv4Addr>, DnsFailure> {
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.resolver.ipv4_lookup(name)).await {
            Ok(Ok(a)) => Ok(a
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect()),
            Ok(Err(e)) => match negative(&e) {
                Negative::NoData | Negative::NxDomain => Ok(Vec::new()),
                Negative::Failure => Err(DnsFailure(format!("{name}: {e}"))),
            },
            Err(_) => Err(DnsFailure(format!("{name}: timed out"))),
        }
    }

    /// The TXT text of `name`, its strings joined (a list's reason).
    pub async fn text(&self, name: &str) -> Option<String> {
        self.texts(name).await?.into_iter().next()
    }

    /// Every TXT record of `name`, each one's strings joined; None when
    /// the lookup fails or finds nothing.
    pub async fn texts(&self, name: &str) -> Option<Vec<String>> {
        let txt = tokio::time::timeout(LOOKUP_TIMEOUT, self.resolver.txt_lookup(name))
            .await
            .ok()?
            .ok()?;
        let records: Vec<String> = txt
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(txt) => Some(txt.txt_data.iter().map(|d| String::from_utf8_lossy(d)).collect()),
                _ => None,
            })
            .collect();
        (!records.is_empty()).then_some(records)
    }

    /// The addresses of `host` (A and AAAA).
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsFailure> {
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let name = format!("{}.", host.trim_end_matches('.'));
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.resolver.lookup_ip(name.as_str())).await {
            Ok(Ok(ips)) => Ok(ips.iter().collect()),
            Ok(Err(e)) => match negative(&e) {
                Negative::NoData | Negative::NxDomain => Ok(Vec::new()),
                Negative::Failure => Err(DnsFailure(format!("{host}: {e}"))),
            },
            Err(_) => Err(DnsFailure(format!("{host}: timed out"))),
        }
    }

    /// Where mail for `domain` goes: its MX hosts by preference (equal
    /// preferences in the order the server gave them), or without MX
    /// records the domain itself (RFC 5321 §5.1).
    pub async fn route(&self, domain: &str) -> Result<Route, DnsFailure> {
        let name = format!("{}.", domain.trim_end_matches('.'));
        let mx = match tokio::time::timeout(LOOKUP_TIMEOUT, self.resolver.mx_lookup(name.as_str())).await {
            Ok(Ok(mx)) => {
                let mut records: Vec<(u16, String)> = mx
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => {
                            Some((mx.preference, mx.exchange.to_string().trim_end_matches('.').to_owned()))
                        }
                        _ => None,
                    })
                    .collect();
                records.sort_by_key(|(preference, _)| *preference);
                records
            }
            Ok(Err(e)) => match negative(&e) {
                Negative::NxDomain => return Ok(Route::NoSuchDomain),
                Negative::NoData => Vec::new(),
                Negative::Failure => return Err(DnsFailure(format!("MX {domain}: {e}"))),
            },
            Err(_) => return Err(DnsFailure(format!("MX {domain}: timed out"))),
        };
        if mx.len() == 1 && mx[0].1.is_empty() {
            return Ok(Route::NullMx); // "MX 0 ." says no mail
        }
        let hosts: Vec<String> = if mx.is_empty() {
            vec![domain.to_owned()]
        } else {
            mx.into_iter().map(|(_, host)| host).collect()
        };
        let mut route = Vec::new();
        let mut failure = None;
        for host in hosts {
            match self.addresses(&host).await {
                Ok(addresses) if !addresses.is_empty() => route.push((host, addresses)),
                Ok(_) => {}
                Err(e) => failure = Some(e),
            }
        }
        match (route.is_empty(), failure) {
            (true, Some(e)) => Err(e),
            (true, None) => Ok(Route::NoSuchDomain),
            (false, _) => Ok(Route::Hosts(route)),
        }
    }
}

/// `addr` as the one server, over UDP and TCP on its port.
pub fn server_config(addr: SocketAddr) -> ResolverConfig {
    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
        .into_iter()
        .map(|mut c| {
            c.port = addr.port();
            c
        })
        .collect();
    ResolverConfig::from_name_servers(vec![NameServerConfig::new(addr.ip(), true, connections)])
}
