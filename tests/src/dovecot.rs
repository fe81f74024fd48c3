//! A scratch Dovecot (Debian's dovecot-core) for checking that it reads
//! our mbox files as we wrote them: no listeners, doveadm only.

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

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.run.join("master.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}
