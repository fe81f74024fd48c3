//! Where remote mail goes, found in a real DNS server the test starts
//! (hickory-server, authoritative for `mx.test`, on a UDP and a TCP port
//! the kernel picked): MX hosts tried in preference order, a host that is
//! down passed over for the next, a domain without MX reached at its own
//! address, AAAA as well as A, and the domains that take no mail (a null
//! MX, a name that does not exist) bounced with Postfix's codes, and a
//! lookup the server refuses deferred.

mod common;

use std::net::IpAddr;

use common::dns::DnsServer;
use common::{Gate, Site};
use mta::dns::{Dns, Route};

/// `two` lists its better MX second, so preference (not the order of
/// the answer) must decide; its better MX is down.
const ZONE: &str = "\
$ORIGIN mx.test.
$TTL 60
@        IN SOA ns.mx.test. hostmaster.mx.test. 1 3600 600 86400 60
@        IN NS  ns.mx.test.
ns       IN A   127.0.0.1
two      IN MX  20 up.mx.test.
two      IN MX  10 down.mx.test.
down     IN A   127.0.0.5
up       IN A   127.0.0.6
bare     IN A   127.0.0.6
six      IN AAAA ::1
both     IN MX  10 six.mx.test.
both     IN MX  20 up.mx.test.
nullmx   IN MX  0 .
";

fn resolve(dns: &DnsServer, domain: &str) -> Route {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async { Dns::new(Some(dns.addr)).unwrap().route(domain).await.unwrap() })
}

#[test]
fn routes_from_a_real_dns_server() {
    let dns = DnsServer::start(ZONE);
    let host = |name: &str, ip: &str| (name.to_owned(), vec![ip.parse::<IpAddr>().unwrap()]);
    assert_eq!(
        resolve(&dns, "two.mx.test"),
        Route::Hosts(vec![host("down.mx.test", "127.0.0.5"), host("up.mx.test", "127.0.0.6")])
    );
    assert_eq!(
        resolve(&dns, "bare.mx.test"),
        Route::Hosts(vec![host("bare.mx.test", "127.0.0.6")])
    );
    assert_eq!(
        resolve(&dns, "both.mx.test"),
        Route::Hosts(vec![host("six.mx.test", "::1"), host("up.mx.test", "127.0.0.6")])
    );
    assert_eq!(resolve(&dns, "nullmx.mx.test"), Route::NullMx);
    assert_eq!(resolve(&dns, "nosuch.mx.test"), Route::NoSuchDomain);
    // a domain the server does not serve is refused: a failure to try
    // again later, not a bounce
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refused = runtime.block_on(async { Dns::new(Some(dns.addr)).unwrap().route("example.org").await });
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn mail_goes_to_the_mx_hosts_in_preference_order() {
    let dns = DnsServer::start(ZONE);
    // the MX hosts: 127.0.0.5 and 127.0.0.6 on one port (mtad's
    // smtp_port), the first down, the second passing to a second mtad
    let (down, up) = loop {
        let up = Gate::closed_at("127.0.0.6", 0).unwrap();
        if let Ok(down) = Gate::closed_at("127.0.0.5", up.port) {
            break (down, up);
        }
    };
    let hop = Site::start("hostname = \"mx.remote.example\"\nlocal_domains = [\"two.mx.test\", \"bare.mx.test\"]\n");
    up.open_to(hop.port);
    let site = Site::start(&format!("resolver = \"{}\"\nsmtp_port = {}\n", dns.addr, up.port));

    let id = site.submit("alice@example.jp", "bob@two.mx.test", "by preference");
    let done = site.wait_for_log(&format!("event=\"done\" queue_id={id}"));
    assert!(
        done.contains(&format!(
            "<bob@two.mx.test>:sent:2.0.0:up.mx.test[127.0.0.6]:{}",
            up.port
        )),
        "{done}"
    );
    assert!(down.connections() >= 1, "the better MX was tried first");
    let messages = hop.wait_for_messages("bob", 1);
    assert!(String::from_utf8_lossy(&messages[0]).contains("the body of by preference"));

    // no MX: the domain's own address
    let id = site.submit("alice@example.jp", "bob@bare.mx.test", "no mx");
    let done = site.wait_for_log(&format!("event=\"done\" queue_id={id}"));
    assert!(
        done.contains(&format!(
            "<bob@bare.mx.test>:sent:2.0.0:bare.mx.test[127.0.0.6]:{}",
            up.port
        )),
        "{done}"
    );
    hop.wait_for_messages("bob", 2);

    // no mail taken: one report each to alice, with Postfix's codes
    for (rcpt, status) in [("bob@nullmx.mx.test", "5.1.10"), ("bob@nosuch.mx.test", "5.4.4")] {
        let id = site.submit("alice@example.jp", rcpt, "undeliverable");
        let done = site.wait_for_log(&format!("event=\"done\" queue_id={id}"));
        assert!(done.contains(&format!("<{rcpt}>:bounced:{status}")), "{done}");
    }
    // a DNS server that refuses to answer: deferred, not bounced
    let id = site.submit("alice@example.jp", "bob@example.org", "refused lookup");
    let deferred = site.wait_for_log(&format!("event=\"deferred\" queue_id={id}"));
    assert!(deferred.contains("dsn=4.4.3"), "{deferred}");
    let reports = site.wait_for_messages("alice", 2);
    let reports: Vec<String> = reports
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    assert!(reports[0].contains("Status: 5.1.10"), "{}", reports[0]);
    assert!(reports[1].contains("Status: 5.4.4"), "{}", reports[1]);
}
