//! The checks RFC 7208 makes of a domain's SPF record set before any
//! mechanism is evaluated, which mail-auth 0.13.3 leaves out: more than
//! one `v=spf1` record is a permerror (§4.5), and so is a record with a
//! term its grammar does not allow (§4.6, §12) — an unknown mechanism, an
//! address that is not one, a CIDR length out of range, a repeated
//! `redirect=` or `exp=`. Measured against the RFC's cases in
//! `mta/tests/sender_auth.rs`: mail-auth answered `pass`, `neutral` and
//! `fail` where the RFC says permerror. Only the record of the identity
//! itself is checked (an included domain's is mail-auth's alone).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Why `records` (a domain's TXT strings, each record's strings joined)
/// make the SPF check a permerror, if they do.
pub fn permerror(records: &[String]) -> Option<String> {
    let spf: Vec<&String> = records
        .iter()
        .filter(|r| {
            let r = r.as_bytes();
            r.len() >= 6 && r[..6].eq_ignore_ascii_case(b"v=spf1") && (r.len() == 6 || r[6] == b' ')
        })
        .collect();
    match spf.as_slice() {
        [] => None,
        [record] => term_error(record),
        _ => Some(format!("{} SPF records, where one is allowed", spf.len())),
    }
}

fn term_error(record: &str) -> Option<String> {
    let (mut redirect, mut exp) = (0, 0);
    for term in record[6..].split(' ').filter(|t| !t.is_empty()) {
        let problem = || Some(format!("bad term {term:?}"));
        // a modifier: name "=" value, its name before any ':' or '/'
        if let Some(eq) = term.find('=')
            && term[..eq].find([':', '/']).is_none()
        {
            let name = &term[..eq];
            let value = &term[eq + 1..];
            let good_name = name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !good_name {
                return problem();
            }
            match name.to_ascii_lowercase().as_str() {
                "redirect" => redirect += 1,
                "exp" => exp += 1,
                _ => continue,
            }
            if value.is_empty() || redirect > 1 || exp > 1 {
                return problem();
            }
            continue;
        }
        let body = term.strip_prefix(['+', '-', '~', '?']).unwrap_or(term);
        let end = body.find([':', '/']).unwrap_or(body.len());
        let (name, rest) = (body[..end].to_ascii_lowercase(), &body[end..]);
        let ok = match name.as_str() {
            "all" => rest.is_empty(),
            "include" | "exists" => rest.len() > 1 && rest.starts_with(':') && !rest.contains(' '),
            "ptr" => rest.is_empty() || (rest.len() > 1 && rest.starts_with(':')),
            "a" | "mx" => domain_and_cidrs(rest),
            "ip4" => rest.strip_prefix(':').is_some_and(|v| network::<Ipv4Addr>(v, 32)),
            "ip6" => rest.strip_prefix(':').is_some_and(|v| network::<Ipv6Addr>(v, 128)),
            _ => false,
        };
        if !ok {
            return problem();
        }
    }
    None
}

/// `ADDRESS` or `ADDRESS/LENGTH`, the length at most `max`.
fn network<A: std::str::FromStr>(value: &str, max: u8) -> bool {
    let (addr, length) = match value.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (value, None),
    };
    addr.parse::<A>().is_ok() && length.is_none_or(|l| cidr(l, max))
}

fn cidr(length: &str, max: u8) -> bool {
    !length.is_empty() && length.len() <= 3 && length.parse::<u8>().is_ok_and(|n| n <= max)
}

/// What may follow `a` or `mx`: `[:domain][/ip4-cidr][//ip6-cidr]`.
fn domain_and_cidrs(rest: &str) -> bool {
    let (domain, cidrs) = match rest.strip_prefix(':') {
        Some(r) => match r.find('/') {
            Some(at) => (Some(&r[..at]), &r[at..]),
            None => (Some(r), ""),
        },
        None => (None, rest),
    };
    if domain.is_some_and(str::is_empty) {
        return false;
    }
    let (four, six) = match cidrs.split_once("//") {
        Some((four, six)) => (four, Some(six)),
        None => (cidrs, None),
    };
    let four_ok = four.is_empty() || four.strip_prefix('/').is_some_and(|l| cidr(l, 32));
    four_ok && six.is_none_or(|l| cidr(l, 128))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(records: &[&str]) -> Option<String> {
        permerror(&records.iter().map(|r| r.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn rfc_7208_grammar() {
        for good in [
            "v=spf1 -all",
            "v=spf1",
            "v=spf1 +all",
            "v=spf1 a mx -all",
            "v=spf1 a:mail.example.com/24//64 mx:example.org/30 ~all",
            "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ?all",
            "v=spf1 include:_spf.example.com exists:%{i}.bl.example.com -all",
            "v=spf1 ptr ptr:example.com -all",
            "v=spf1 redirect=_spf.example.com",
            "v=spf1 -all exp=explain.%{d} moo=cow",
            "V=SPF1 IP4:192.0.2.1 -ALL",
        ] {
            assert_eq!(check(&[good, "not spf"]), None, "{good}");
        }
        for bad in [
            "v=spf1 frobnicate -all",
            "v=spf1 ip4:192.0.2.300 -all",
            "v=spf1 ip4:192.0.2.0/33 -all",
            "v=spf1 ip6:2001:db8::/129 -all",
            "v=spf1 ip4 -all",
            "v=spf1 include -all",
            "v=spf1 include: -all",
            "v=spf1 a:/24 -all",
            "v=spf1 mx/33 -all",
            "v=spf1 all:x",
            "v=spf1 redirect=a.example redirect=b.example",
            "v=spf1 exp=",
            "v=spf1 1bad=x",
        ] {
            assert!(check(&[bad]).is_some(), "{bad}");
        }
        assert!(
            check(&["v=spf1 +all", "v=spf1 -all"])
                .unwrap()
                .contains("2 SPF records")
        );
        // "v=spf10" is not an SPF record at all
        assert_eq!(check(&["v=spf10 +all", "v=spf1 -all"]), None);
        assert_eq!(check(&[]), None);
    }

    proptest::proptest! {
        // the record is anyone's DNS data: any text is an answer, never a panic
        #[test]
        fn any_record_is_judged(tail in "\\PC{0,60}", raw in "\\PC{0,20}") {
            let _ = check(&[&format!("v=spf1 {tail}"), &raw]);
            let _ = check(&[&format!("v=spf1{tail}")]);
        }
    }
}
