//! Our server and Dovecot's own imap and pop3 on the same files: a
//! scratch site (alice on our imapd) and a Dovecot configuration with the
//! user `dove` (uid nobody), and the same commands sent to both. Runs as
//! root (as CI does).

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use e2e_tests::dovecot::{self, Dovecot, Preauth};

use super::Site;

pub const NOBODY: u32 = 65534;

/// A scratch site (alice on our server) and a Dovecot configuration with
/// the user `dove` whose home holds a copy of what the caller puts there.
pub struct Pair {
    // first, so that it is dropped first: Dovecot is stopped through the
    // pid file in the site's directory, which goes with the site
    _dovecot: Dovecot,
    pub site: Site,
    pub dovecot_dir: PathBuf,
    pub dove_home: PathBuf,
}

impl Pair {
    pub fn start() -> Pair {
        assert!(e2e_tests::is_root(), "this test runs as root (as CI does)");
        let site = Site::start();
        let root = site.dir.path();
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let dove_home = root.join("dove");
        std::fs::create_dir_all(dove_home.join("mail")).unwrap();
        let passwd = root.join("dovecot-passwd");
        std::fs::write(
            &passwd,
            format!("dove:{{PLAIN}}x:{NOBODY}:{NOBODY}::{}::\n", dove_home.display()),
        )
        .unwrap();
        let dovecot_dir = root.join("dovecot");
        let dovecot = Dovecot::start(&dovecot_dir, &passwd, "mbox:~/mail:INBOX=~/inbox");
        Pair {
            site,
            dovecot_dir,
            dove_home,
            _dovecot: dovecot,
        }
    }

    /// Puts the same file at alice's and dove's `relative` path.
    pub fn put(&self, relative: &str, data: &[u8]) {
        for home in [self.site.home("alice"), self.dove_home.clone()] {
            let path = home.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, data).unwrap();
        }
        chown_tree(&self.dove_home, NOBODY);
    }

    /// A session of alice's on our server, logged in.
    pub fn ours(&self) -> Ours {
        let stream = TcpStream::connect(("127.0.0.1", self.site.port)).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut reader = std::io::BufReader::new(stream);
        dovecot::read_through(&mut reader, "* OK");
        let mut ours = Ours { writer, reader };
        ours.exchange("t0 LOGIN alice secret", "t0 ");
        ours
    }

    /// A session of dove's on Dovecot, pre-authenticated.
    pub fn theirs(&self) -> Preauth {
        let mut theirs = Preauth::start(&self.dovecot_dir, "imap", "dove", NOBODY, &self.dove_home);
        theirs.read_through("* PREAUTH");
        theirs
    }

    /// Each command's answer from our server and from Dovecot's, one
    /// command at a time, after an EXAMINE of INBOX.
    pub fn imap(&self, commands: &[&str]) -> (Vec<Answer>, Vec<Answer>) {
        let mut ours = self.ours();
        let mut dovecot = self.theirs();
        let mut answers = (Vec::new(), Vec::new());
        for (i, command) in ["EXAMINE INBOX"].iter().chain(commands).enumerate() {
            let tag = format!("t{} ", i + 1);
            let line = format!("{tag}{command}");
            let (o, t) = (ours.exchange(&line, &tag), dovecot.exchange(&line, &tag));
            if i > 0 {
                answers.0.push(Answer::of(&o));
                answers.1.push(Answer::of(&t));
            }
        }
        answers
    }

    /// What our POP3 server and Dovecot's answer to `commands` (after
    /// logging in): the data lines and the `+OK` lines that carry data
    /// (`+OK 2 …`), not the free texts.
    pub fn pop3(&self, commands: &[&str]) -> (Vec<String>, Vec<String>) {
        let stream = TcpStream::connect(("127.0.0.1", self.site.pop3_port)).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = std::io::BufReader::new(stream);
        dovecot::read_through(&mut reader, "+OK");
        let mut ours = |line: &str, last: &str| {
            writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
            dovecot::read_through(&mut reader, last)
        };
        ours("USER alice", "+OK");
        ours("PASS secret", "+OK");
        // (pre-authenticated, Dovecot's pop3 sends no greeting)
        let mut dovecot = Preauth::start(&self.dovecot_dir, "pop3", "dove", NOBODY, &self.dove_home);
        let mut answers = (Vec::new(), Vec::new());
        for command in commands {
            // a listing ends with its dot, a single answer is one line
            let last = if command.contains(' ') || *command == "STAT" {
                "+OK"
            } else {
                "."
            };
            let data = |bytes: Vec<u8>| -> Vec<String> {
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter(|l| {
                        !l.starts_with("+OK")
                            || l[3..].starts_with(' ') && l[4..].starts_with(|c: char| c.is_ascii_digit())
                    })
                    .map(str::to_owned)
                    .collect()
            };
            answers.0.extend(data(ours(command, last)));
            answers.1.extend(data(dovecot.exchange(command, last)));
        }
        answers
    }
}

pub fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

/// A session on our server, one command at a time (as [`Preauth`] is on
/// Dovecot's).
pub struct Ours {
    writer: TcpStream,
    reader: std::io::BufReader<TcpStream>,
}

impl Ours {
    /// Sends `line` (CRLF added); what comes back up to and including the
    /// first line that starts with `last`.
    pub fn exchange(&mut self, line: &str, last: &str) -> Vec<u8> {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        dovecot::read_through(&mut self.reader, last)
    }
}

/// One command's untagged responses (exact bytes) and its status word.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub untagged: String,
    pub status: String,
}

impl Answer {
    /// The responses to one command, its tagged line last.
    pub fn of(output: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(output);
        let text = text.strip_suffix("\r\n").unwrap_or(&text);
        let (untagged, tagged) = text.rsplit_once("\r\n").map_or(("", text), |(u, t)| (u, t));
        Answer {
            untagged: if untagged.is_empty() {
                String::new()
            } else {
                format!("{untagged}\r\n")
            },
            status: tagged.split(' ').nth(1).unwrap_or_default().to_owned(),
        }
    }
}
