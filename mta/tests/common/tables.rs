//! The filter tables the filter tests use, written once for mtad and for
//! a Postfix given the same files: the seed site's entries among ours.

use std::path::PathBuf;

use super::Raw;

/// The seed's Subject rules, verbatim, then ours.
pub const HEADER_CHECKS: &str = "/^Subject: .*Make Money Fast/ REJECT\n/^Subject:.*V[i|1]agra/ REJECT\n\
    /^Subject:.*V.I.A.G.R.A/ REJECT\n/^Subject:.*F￥.R￥.E￥.E/i REJECT\n/^Subject:.*ink*jet.*cartridges/ REJECT\n\
    /^Subject:.*sex life/ REJECT\n/^Subject:.*fat.*muscle/ REJECT\n\
    /^X-Strip:/ IGNORE\n/^Subject: held (.*)/ HOLD for $1\n/^Subject: deferred/ REJECT 4.7.0 not today\n";

/// The tables, in a directory of their own.
pub struct Tables {
    pub dir: tempfile::TempDir,
}

impl Tables {
    pub fn write() -> Tables {
        let tables = Tables {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::set_permissions(tables.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        for (name, text) in [
            ("client.cidr", "127.0.0.3/32 REJECT\n127.0.0.4 DEFER come back later\n"),
            (
                "client_access",
                "# the seed's entries\n150.59.112.17 OK\n61.49.138.219 REJECT\n\
                 127.0.0.5 OK\n127.0.0.6 DISCARD\n127.0.0.7 HOLD\n127.0.0.8 DUNNO\n127.0.0.12 DEFER_IF_REJECT maybe later\n\
                 127.0.0 PREPEND X-Net: loopback\n",
            ),
            ("helo_access", "bad.helo.example REJECT go away\n"),
            (
                "sender_access",
                "spammer.example REJECT\nfriend@spammer.example OK\ninfo@ 550 5.7.1 no info senders\n\
                 deferme.example DEFER_IF_PERMIT not yet\n",
            ),
            ("recipient_access", "bob@example.jp REDIRECT alice@example.jp\n"),
            ("header_checks", HEADER_CHECKS),
            ("body_checks", "/^viagra now$/ DISCARD\n"),
        ] {
            std::fs::write(tables.path(name), text).unwrap();
        }
        tables
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spec(&self, kind: &str, name: &str) -> String {
        format!("{kind}:{}", self.path(name).display())
    }

    /// Each table as `type:path`, under its Postfix parameter, in the
    /// order both programs ask them.
    fn specs(&self) -> [(&'static str, String); 7] {
        [
            ("check_client_access", self.spec("cidr", "client.cidr")),
            ("check_client_access", self.spec("hash", "client_access")),
            ("check_helo_access", self.spec("hash", "helo_access")),
            ("check_sender_access", self.spec("hash", "sender_access")),
            ("check_recipient_access", self.spec("hash", "recipient_access")),
            ("header_checks", self.spec("regexp", "header_checks")),
            ("body_checks", self.spec("regexp", "body_checks")),
        ]
    }

    /// The [mtad] keys that use them.
    pub fn mtad_keys(&self) -> String {
        let mut keys: Vec<(&str, Vec<String>)> = Vec::new();
        for (key, spec) in self.specs() {
            match keys.last_mut() {
                Some((last, specs)) if *last == key => specs.push(spec),
                _ => keys.push((key, vec![spec])),
            }
        }
        keys.iter().map(|(key, specs)| format!("{key} = {specs:?}\n")).collect()
    }

    /// The main.cf lines that make Postfix use them in the same order
    /// (its hash tables need `postmap` first).
    pub fn postfix_main_cf(&self) -> String {
        let (restrictions, checks): (Vec<_>, Vec<_>) =
            self.specs().into_iter().partition(|(key, _)| key.starts_with("check_"));
        let restrictions: Vec<String> = restrictions
            .into_iter()
            .map(|(key, spec)| format!("{key} {spec}"))
            .collect();
        let mut main_cf = format!(
            "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, {}\n",
            restrictions.join(", ")
        );
        for (key, spec) in checks {
            main_cf.push_str(&format!("{key} = {spec}\n"));
        }
        main_cf
    }
}

/// From `client` to `server`: EHLO `helo`, MAIL, RCPT; the RCPT reply and
/// the connection (in the transaction when the RCPT was taken).
pub fn rcpt(server: (&str, u16), client: &str, helo: &str, from: &str, to: &str) -> (String, Raw) {
    let (mut c, greeting) = Raw::connect_between(client, server.0, server.1);
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(c.command(&format!("EHLO {helo}")).starts_with("250"));
    let mail = c.command(&format!("MAIL FROM:<{from}>"));
    assert!(mail.starts_with("250"), "{mail}");
    (c.command(&format!("RCPT TO:<{to}>")).trim_end().to_owned(), c)
}

/// One message from `client` (EHLO `helo`) as `from` to `to` at `site`,
/// over a fresh connection whose RCPT must be taken: the DATA reply.
pub fn send(site: &super::Site, client: &str, helo: &str, from: &str, to: &str, message: &str) -> String {
    let (reply, mut c) = rcpt(("127.0.0.1", site.port), client, helo, from, to);
    assert!(reply.starts_with("250"), "RCPT: {reply}");
    data(&mut c, message)
}

/// The DATA reply for `message` on a connection whose RCPT was taken.
pub fn data(c: &mut Raw, message: &str) -> String {
    assert!(c.command("DATA").starts_with("354"));
    c.command(&format!("{message}\r\n.")).trim_end().to_owned()
}
