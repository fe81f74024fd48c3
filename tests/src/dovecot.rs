//! A scratch Dovecot (Debian's dovecot-core) for checking that it reads
//! our mbox files as we wrote them: no listeners; doveadm, and Dovecot's
//! own imap and pop3 programs run pre-authenticated over pipes (the
//! reference answers our servers are compared with).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A Dovecot master (auth only, no listeners) on a scratch configuration.
pub struct Dovecot {
    conf: PathBuf,
    run: PathBuf,
}

impl Dovecot {
    /// Starts Dovecot with `dir` for its state and logs, users from
    /// `passwd` (Dovecot passwd-file, plaintext passwords) and mail at
    /// `mail_location` (e.g. `mbox:~/mail:INBOX=~/mail/inbox`).
    pub fn start(dir: &Path, passwd: &Path, mail_location: &str) -> Dovecot {
        let run = dir.join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let conf = dir.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "base_dir = {run}\nstate_dir = {state}\nlog_path = {log}\nssl = no\nprotocols =\n\
                 passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {passwd}\n}}\n\
                 userdb {{\n  driver = passwd-file\n  args = username_format=%u {passwd}\n}}\n\
                 mail_location = {mail_location}\n",
                run = run.display(),
                state = dir.join("state").display(),
                log = dir.join("dovecot.log").display(),
                passwd = passwd.display(),
            ),
        )
        .unwrap();
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&conf)
            .status()
            .expect("dovecot is installed (.ci/run)");
        assert!(status.success());
        let dovecot = Dovecot { conf, run };
        for _ in 0..100 {
            if dovecot.run.join("auth-userdb").exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        dovecot
    }

    /// Runs doveadm against this instance; panics unless it succeeds.
    pub fn doveadm(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "doveadm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

/// Dovecot's `imap` or `pop3` program (from dovecot-imapd and
/// dovecot-pop3d) run pre-authenticated over pipes, one command at a time
/// (Dovecot answers pipelined commands out of order).
pub struct Preauth {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl Preauth {
    /// Runs `program` as `user` with uid and gid `uid` and home `home`, on
    /// the configuration of `dir` (written by [`Dovecot::start`]; the
    /// master need not run).
    pub fn start(dir: &Path, program: &str, user: &str, uid: u32, home: &Path) -> Preauth {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(Path::new("/usr/lib/dovecot").join(program))
            .arg("-c")
            .arg(dir.join("dovecot.conf"))
            .env_clear()
            .env("USER", user)
            .env("HOME", home)
            .uid(uid)
            .gid(uid)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("/usr/lib/dovecot/{program} (.ci/run installs it): {e}"));
        let input = child.stdin.take().expect("piped");
        let output = std::io::BufReader::new(child.stdout.take().expect("piped"));
        Preauth { child, input, output }
    }

    /// Sends `line` (CRLF added) and returns what comes back up to and
    /// including the first line that starts with `last`.
    pub fn exchange(&mut self, line: &str, last: &str) -> Vec<u8> {
        use std::io::Write;
        self.input.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.input.flush().unwrap();
        read_through(&mut self.output, last)
    }

    /// Reads up to and including the first line that starts with `last`.
    pub fn read_through(&mut self, last: &str) -> Vec<u8> {
        read_through(&mut self.output, last)
    }
}

/// Reads up to and including the first line that starts with `last`
/// (or to the end of the stream).
pub fn read_through(reader: &mut impl std::io::BufRead, last: &str) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).unwrap() == 0 {
            return out;
        }
        out.extend_from_slice(&line);
        if line.starts_with(last.as_bytes()) {
            return out;
        }
    }
}

impl Drop for Preauth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.run.join("master.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}
