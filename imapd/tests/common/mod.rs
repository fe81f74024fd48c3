//! A scratch site for imapd tests: users in a passwd-file, their mail
//! under a temporary directory, the server running in-process on a port
//! of 127.0.0.1 chosen by the kernel, and Python's imaplib as the client.
//! (Each test file uses some of these helpers.)
#![allow(dead_code)]

pub mod pair;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use imapd::Context;
use imapd::config::ImapdConfig;
use lda::dir::MboxPath;
use lda::lock::{LockOptions, LockTimeouts};

pub struct Site {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub pop3_port: u16,
    pub imaps_port: u16,
    pub pop3s_port: u16,
    /// The self-signed certificate the server presents (CN localhost).
    pub cert: PathBuf,
}

impl Site {
    /// Users `alice` / `secret` and `bob` / `hunter2` (a SHA512-CRYPT
    /// hash), homes under the scratch directory, INBOX at `~/inbox`,
    /// folders in `~/mail`.
    pub fn start() -> Site {
        Site::start_with(|_| {})
    }

    /// Like [`Site::start`], with the `[imapd]` settings changed by `tune`.
    pub fn start_with(tune: impl FnOnce(&mut ImapdConfig)) -> Site {
        Site::start_configured("", tune)
    }

    /// Like [`Site::start_with`], with `mailbox_keys` added to [mailbox].
    pub fn start_configured(mailbox_keys: &str, tune: impl FnOnce(&mut ImapdConfig)) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let bob_hash =
            "$6$saltsalt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/TFug6pIPSqbJoCT6dfnj.";
        std::fs::write(
            root.join("passwd"),
            format!(
                "alice:{{PLAIN}}secret::::{root}/alice::\nbob:{{SHA512-CRYPT}}{bob_hash}::::{root}/bob::\n",
                root = root.display()
            ),
        )
        .unwrap();
        let text = format!(
            "[users]\npasswd_file = \"{}/passwd\"\nsystem_users = false\n[mailbox]\ninbox = \"~/inbox\"\nfolders = \"~/mail\"\nlock_timeout = 10\n{mailbox_keys}\n",
            root.display()
        );
        let config = lda::config::Config::parse(&text).unwrap();
        let config_text = text;
        let bind = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let port = listener.local_addr().unwrap().port();
            (listener, port)
        };
        let (listener, port) = bind();
        let (pop3_listener, pop3_port) = bind();
        let (imaps_listener, imaps_port) = bind();
        let (pop3s_listener, pop3s_port) = bind();
        let (cert, key) = e2e_tests::certificate(root, "localhost");
        let mut imapd_config = ImapdConfig {
            tls_cert: Some(cert.clone()),
            tls_key: Some(key),
            ..ImapdConfig::default()
        };
        tune(&mut imapd_config);
        let tls = imapd::tls_acceptor(&imapd_config).unwrap();
        let ctx = Arc::new(Context::new(
            config,
            imapd_config,
            root.join("passwd"),
            tls,
            None,
            daemon::shutdown::Shutdown::never(),
        ));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let tokio_listener = |l| tokio::net::TcpListener::from_std(l).unwrap();
                tokio::spawn(imapd::server::run_pop3(tokio_listener(pop3_listener), ctx.clone()));
                tokio::spawn(imapd::server::run_imaps(tokio_listener(imaps_listener), ctx.clone()));
                tokio::spawn(imapd::server::run_pop3s(tokio_listener(pop3s_listener), ctx.clone()));
                imapd::server::run(listener, ctx).await;
            });
        });
        std::fs::write(root.join("mailkit.toml"), config_text).unwrap();
        Site {
            dir,
            port,
            pop3_port,
            imaps_port,
            pop3s_port,
            cert,
        }
    }

    pub fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join(user)
    }

    pub fn inbox(&self, user: &str) -> PathBuf {
        self.home(user).join("inbox")
    }

    pub fn folder(&self, user: &str, name: &str) -> PathBuf {
        self.home(user).join("mail").join(name)
    }

    /// Delivers as lda does (same code, same locks).
    pub fn deliver(&self, mbox: &Path, sender: &str, message: &[u8]) {
        let options = LockOptions {
            timeouts: LockTimeouts {
                wait: Duration::from_secs(10),
                stale_after: Duration::from_secs(600),
            },
            spool: None,
            create: true,
        };
        lda::deliver::append(
            &MboxPath::of_file(mbox),
            &bsfilter::mbox::from_line(sender, SystemTime::now()),
            message,
            options,
        )
        .unwrap();
    }

    /// Runs `tests/py/NAME` with the IMAP port and the scratch directory
    /// (the POP3 port for `pop3*` scripts), then `args`; panics with its
    /// output unless it exits 0.
    pub fn python(&self, script: &str, args: &[&str]) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(script);
        let port = if script.starts_with("pop3") {
            self.pop3_port
        } else {
            self.port
        };
        let out = Command::new("python3")
            .arg(&path)
            .arg(port.to_string())
            .arg(self.dir.path())
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{script} failed:\n--- stdout\n{stdout}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// The user's learned message counts (spam, clean).
    pub fn learned(&self, user: &str) -> (u64, u64) {
        let path = self.home(user).join(".bsfilter").join(bsfilter::store::DB_FILE_NAME);
        let Ok(Some(store)) = bsfilter::store::Store::open_read_only(&path, Duration::from_secs(5)) else {
            return (0, 0);
        };
        let totals = store.read(|r| r.totals()).unwrap();
        (totals.spam_messages, totals.clean_messages)
    }

    /// Waits (up to 5 s) until `user` has learned `want`.
    pub fn wait_learned(&self, user: &str, want: (u64, u64)) -> Duration {
        let start = Instant::now();
        while self.learned(user) != want {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{user} learned {:?}, expected {want:?}",
                self.learned(user)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }
}

/// A minimal IMAP client for tests that drive the protocol by hand.
pub struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    tag: u32,
}

impl Client {
    /// Connects to 127.0.0.1:`port`, waiting (up to 2 s) for a server
    /// that is still starting, and reads the greeting.
    pub fn connect(port: u16) -> Client {
        let stream = (0..100)
            .find_map(|i| {
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
                TcpStream::connect(("127.0.0.1", port)).ok()
            })
            .expect("imapd listens");
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut greeting = String::new();
        reader.read_line(&mut greeting).unwrap();
        Client { stream, reader, tag: 0 }
    }

    /// The connection's reader, for what the server sends unasked.
    pub fn reader(&mut self) -> &mut BufReader<TcpStream> {
        &mut self.reader
    }

    /// The tag the next command will carry.
    pub fn tag_of_next(&self) -> String {
        format!("t{}", self.tag + 1)
    }

    /// Sends a command without waiting for its answer.
    pub fn send(&mut self, command: &str) {
        self.tag += 1;
        self.stream
            .write_all(format!("t{} {command}\r\n", self.tag).as_bytes())
            .unwrap();
    }

    /// The tagged answer to the command sent last (untagged lines and
    /// continuation requests skipped).
    pub fn answer(&mut self) -> String {
        let tag = format!("t{} ", self.tag);
        loop {
            let mut line = String::new();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "closed before {tag}");
            if line.starts_with(&tag) {
                return line;
            }
        }
    }

    /// Every line up to and including the tagged answer to the command
    /// sent last.
    pub fn lines(&mut self) -> Vec<String> {
        let tag = format!("t{} ", self.tag);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "closed before {tag}");
            let done = line.starts_with(&tag);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Sends a command; returns the untagged lines, panicking unless OK.
    pub fn run(&mut self, command: &str) -> Vec<String> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.stream
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .unwrap();
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "closed during {command}");
            if line.starts_with(&format!("{tag} ")) {
                assert!(line.starts_with(&format!("{tag} OK")), "{command}: {line}");
                return lines;
            }
            lines.push(line);
        }
    }
}

/// Runs the imapd binary on a free port of 127.0.0.1 with a configuration
/// written to `dir`: the user table `dir/passwd` (the caller writes it),
/// INBOX `~/inbox`, folders `~/mail`, and `imapd_keys` added to [imapd].
/// Returns the process (its stderr discarded) and the port.
pub fn spawn_imapd(dir: &Path, imapd_keys: &str) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("mailkit.toml");
    std::fs::write(
        &config,
        format!(
            "[users]\npasswd_file = \"{}/passwd\"\nsystem_users = false\n[mailbox]\ninbox = \"~/inbox\"\nfolders = \"~/mail\"\n\
             [imapd]\nlisten = [\"127.0.0.1:{port}\"]\n{imapd_keys}",
            dir.display()
        ),
    )
    .unwrap();
    let server = Command::new(env!("CARGO_BIN_EXE_imapd"))
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (server, port)
}

/// A server process killed (and reaped) when the test ends, passed or not:
/// a panicking test must not leave it running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
