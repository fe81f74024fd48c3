//! A scratch mail site for mtad's tests: users in a passwd-file, their
//! mail under a temporary directory, the mtad binary listening on ports
//! of 127.0.0.1 the kernel chose, lda's delivery in its helper, and
//! Python's smtplib as the client. (Each test file uses some of these.)
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod dns;
pub mod tables;

/// `mtad dkim keygen`'s two keys for example.jp in `dir` — ed25519
/// (selector `mail`) and RSA-2048 (`mailrsa`): for each, the zone line it
/// printed, and the TXT record as a resolver returns it (the strings
/// joined); and the `dkim_keys` value that signs with both.
pub fn keygen_both(dir: &Path) -> (Vec<(String, String)>, String) {
    let mut records = Vec::new();
    let mut keys = Vec::new();
    for (selector, rsa) in [("mail", false), ("mailrsa", true)] {
        let path = dir.join(format!("{selector}.pem"));
        let printed = mta::policy::dkim::keygen("example.jp", selector, rsa, &path).unwrap();
        let line = printed.lines().next().unwrap().to_owned();
        let (_, strings) = line.split_once(" IN TXT ").unwrap();
        let record: String = strings.split('"').skip(1).step_by(2).collect();
        records.push((line, record));
        keys.push(format!(
            "{{ domain = \"example.jp\", selector = \"{selector}\", key = \"{}\" }}",
            path.display()
        ));
    }
    (records, format!("[{}]", keys.join(", ")))
}

pub const MTAD: &str = env!("CARGO_BIN_EXE_mtad");

/// A port the test holds for a next hop that is down (connections are
/// closed at once) until it is pointed at a real server: the port never
/// changes hands, so no other test can take it meanwhile.
pub struct Gate {
    pub port: u16,
    target: std::sync::Arc<std::sync::Mutex<Option<u16>>>,
    /// Connections it has taken.
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Gate {
    pub fn closed() -> Gate {
        Gate::closed_at("127.0.0.1", 0).unwrap()
    }

    /// A gate on `ip`:`port` (0: the kernel picks).
    pub fn closed_at(ip: &str, port: u16) -> std::io::Result<Gate> {
        let listener = std::net::TcpListener::bind((ip, port))?;
        let port = listener.local_addr()?.port();
        let target: std::sync::Arc<std::sync::Mutex<Option<u16>>> = Default::default();
        let connections: std::sync::Arc<std::sync::atomic::AtomicUsize> = Default::default();
        let (t, n) = (target.clone(), connections.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(to) = *t.lock().unwrap() else {
                    drop(client); // down: the connection closes at once
                    continue;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut c1, mut s1) = (client, server);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c1, &mut s1);
                    let _ = s1.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Ok(Gate {
            port,
            target,
            connections,
        })
    }

    /// From now on, connections go to `port`.
    pub fn open_to(&self, port: u16) {
        *self.target.lock().unwrap() = Some(port);
    }

    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub struct Site {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub submission_port: u16,
    pub submissions_port: u16,
    pub cert: PathBuf,
    mtad_keys: String,
    server: Option<Child>,
}

impl Site {
    /// Users `alice` (password `secret`) and `bob` (`hunter2`), both with
    /// this process's uid, homes under the scratch directory, INBOX at
    /// `~/mail/inbox`; local domain `example.jp`; `mtad_keys` added to
    /// [mtad] (they replace the defaults written here).
    pub fn start(mtad_keys: &str) -> Site {
        Site::start_as(mtad_keys, None)
    }

    /// Like [`Site::start`], the users with uid (and gid) `uid` and
    /// their homes theirs, when given.
    pub fn start_as(mtad_keys: &str, uid: Option<u32>) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let (cert, _) = e2e_tests::certificate(dir.path(), "localhost");
        let mut site = Site {
            dir,
            port: 0,
            submission_port: 0,
            submissions_port: 0,
            cert,
            mtad_keys: mtad_keys.to_owned(),
            server: None,
        };
        site.write_users(&[("alice", "secret"), ("bob", "hunter2")], uid);
        site.write_config();
        site.spawn();
        site
    }

    pub fn write_users(&self, users: &[(&str, &str)], owner: Option<u32>) {
        let (uid, gid) = match owner {
            Some(uid) => (uid, uid),
            None => (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw()),
        };
        let mut passwd = String::new();
        for (name, password) in users {
            let home = self.home(name);
            std::fs::create_dir_all(&home).unwrap();
            if owner.is_some() {
                std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
            }
            passwd.push_str(&format!(
                "{name}:{{PLAIN}}{password}:{uid}:{gid}::{}::\n",
                home.display()
            ));
        }
        std::fs::write(self.dir.path().join("passwd"), passwd).unwrap();
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("mailkit.toml")
    }

    fn write_config(&self) {
        let root = self.dir.path();
        // ports the kernel picks: mtad's log says which (no port is
        // chosen here and bound later, which another test could take)
        let mut mtad = format!(
            "hostname = \"mx.example.jp\"\nlocal_domains = [\"example.jp\"]\nlisten = [\"127.0.0.1:0\"]\n\
             submission_listen = [\"127.0.0.1:0\"]\nsubmissions_listen = [\"127.0.0.1:0\"]\n\
             tls_cert = \"{}\"\ntls_key = \"{}\"\nqueue_dir = \"{}\"\nmynetworks = [\"127.0.0.1/32\"]\n\
             minimal_backoff = 1\nmaximal_backoff = 2\n",
            self.cert.display(),
            root.join("key.pem").display(),
            root.join("queue").display(),
        );
        // later keys win: drop the defaults the test replaces
        for line in self.mtad_keys.lines() {
            if let Some((key, _)) = line.split_once('=') {
                let key = key.trim();
                mtad = mtad
                    .lines()
                    .filter(|l| l.split_once('=').is_none_or(|(k, _)| k.trim() != key))
                    .map(|l| format!("{l}\n"))
                    .collect();
            }
        }
        mtad.push_str(&self.mtad_keys);
        std::fs::write(
            self.config_path(),
            format!(
                "[users]\npasswd_file = \"{}/passwd\"\nsystem_users = false\n[mailbox]\ninbox = \"~/mail/inbox\"\nfolders = \"~/mail\"\n\
                 [filter]\nenabled = false\n[mtad]\n{mtad}\n",
                root.display()
            ),
        )
        .unwrap();
    }

    /// Starts mtad and waits until it listens; learns its ports from its
    /// log.
    pub fn spawn(&mut self) {
        let before = self.log().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mtad.log"))
            .unwrap();
        let child = Command::new(MTAD)
            .arg("--config")
            .arg(self.config_path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.server = Some(child);
        let start = Instant::now();
        let port_of = |log: &str, what: &str| {
            log.lines()
                .find(|l| l.contains(what))
                .and_then(|l| l.rsplit(':').next())
                .and_then(|p| p.trim().parse::<u16>().ok())
        };
        loop {
            let log = self.log();
            let new = &log[before.min(log.len())..];
            if let (Some(smtp), Some(sub), Some(subs)) = (
                port_of(new, " Smtp on "),
                port_of(new, " Submission on "),
                port_of(new, "submissions (TLS) on "),
            ) && new.contains(" ready")
            {
                (self.port, self.submission_port, self.submissions_port) = (smtp, sub, subs);
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "mtad did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One message from `from` to `to` over a fresh connection; its queue id.
    pub fn submit(&self, from: &str, to: &str, subject: &str) -> String {
        let (mut c, _) = Raw::connect(self.port);
        c.command("EHLO client.example.org");
        assert!(c.command(&format!("MAIL FROM:<{from}>")).starts_with("250"));
        let rcpt = c.command(&format!("RCPT TO:<{to}>"));
        assert!(rcpt.starts_with("250"), "{rcpt}");
        assert!(c.command("DATA").starts_with("354"));
        let reply = c.command(&format!("Subject: {subject}\r\n\r\nthe body of {subject}\r\n."));
        assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
        reply.trim_end().rsplit(' ').next().unwrap().to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.server.as_ref().expect("running").id()
    }

    /// `kill -9` mtad.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.server.take().expect("running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        child.wait().unwrap()
    }

    pub fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join(user)
    }

    /// The messages in `user`'s INBOX (or folder `name`).
    pub fn messages(&self, user: &str, folder: &str) -> Vec<Vec<u8>> {
        let path = if folder == "INBOX" {
            self.home(user).join("mail/inbox")
        } else {
            self.home(user).join("mail").join(folder)
        };
        match std::fs::read(path) {
            Ok(data) => bsfilter::mbox::split(&data).iter().map(|m| m.message()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Waits (up to 15 s) until `user`'s INBOX holds `n` messages.
    pub fn wait_for_messages(&self, user: &str, n: usize) -> Vec<Vec<u8>> {
        let start = Instant::now();
        loop {
            let messages = self.messages(user, "INBOX");
            if messages.len() >= n {
                return messages;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{user} has {} messages, expected {n}; log:\n{}",
                messages.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (up to 15 s) until the log has a line containing `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "no {needle:?} in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mtad.log")).unwrap_or_default()
    }

    /// Runs `tests/py/NAME` with `args`; its stdout, panicking unless it
    /// exits 0.
    pub fn python(&self, script: &str, args: &[&str]) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(script);
        let out = Command::new("python3").arg(&path).args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{script} {args:?} failed:\n--- stdout\n{stdout}\n--- stderr\n{}\n--- mtad log\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        stdout
    }

    /// `mtad queue ARGS` against this site.
    pub fn queue_tool(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(MTAD)
            .arg("--config")
            .arg(self.config_path())
            .arg("queue")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A raw SMTP conversation, for what no well-behaved client sends.
pub struct Raw {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    /// Connects (from `source`, e.g. 127.0.0.2, when given) and reads
    /// the greeting.
    pub fn connect(port: u16) -> (Raw, String) {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        Raw::wrap(stream)
    }

    pub fn connect_from(source: &str, port: u16) -> (Raw, String) {
        Raw::connect_between(source, "127.0.0.1", port)
    }

    /// Connects from `source` to `server`:`port`, reads the greeting.
    pub fn connect_between(source: &str, server: &str, port: u16) -> (Raw, String) {
        Raw::wrap(socket2_connect(source, server, port))
    }

    fn wrap(stream: TcpStream) -> (Raw, String) {
        let mut raw = Raw::unread(stream);
        let greeting = raw.reply();
        (raw, greeting)
    }

    /// Connects from `source` without reading anything.
    pub fn connect_quiet(source: &str, port: u16) -> Raw {
        Raw::unread(socket2_connect(source, "127.0.0.1", port))
    }

    fn unread(stream: TcpStream) -> Raw {
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Raw { stream, reader }
    }

    /// One line.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        let _ = self.reader.read_line(&mut line);
        line
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// One whole reply (all its lines).
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    /// Sends `command` and returns its reply.
    pub fn command(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes());
        self.reply()
    }

    /// Everything until the server closes.
    pub fn rest(&mut self) -> String {
        let mut all = String::new();
        let _ = self.reader.read_to_string(&mut all);
        all
    }
}

/// A TCP connection to `server`:`port` from the address `source`.
fn socket2_connect(source: &str, server: &str, port: u16) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let server: std::net::IpAddr = server.parse().unwrap();
        socket.connect((server, port).into()).await.unwrap()
    });
    let std = stream.into_std().unwrap();
    std.set_nonblocking(false).unwrap();
    std
}
