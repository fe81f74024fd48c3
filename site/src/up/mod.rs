//! `mailkit up`: the whole site on this machine in one command — mtad and
//! imapd (built beside `mailkit`) under a supervisor, with a data
//! directory made on the first start ([`setup`]) and reused after.
//!
//! - [`setup`]: the data directory, its configuration, user, certificate
//!   and seeded tokens
//! - [`supervise`]: the daemons as processes, restarted when they die,
//!   signals passed on

pub mod setup;
pub mod supervise;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct Options {
    pub data: PathBuf,
    pub port_base: u16,
    pub foreground: bool,
    /// Where mtad and imapd are.
    pub programs: PathBuf,
}

/// The supervisor's own log: `log/mailkit.log`, and the terminal in the
/// foreground.
struct Tee {
    file: Option<std::fs::File>,
    terminal: bool,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(f) = &mut self.file {
            f.write_all(buf)?;
        }
        if self.terminal {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The services each daemon's log announces, as it words them.
const ANNOUNCED: [(&str, &str, &str); 7] = [
    ("mtad", " Smtp on ", "SMTP"),
    ("mtad", " Submission on ", "submission"),
    ("mtad", " submissions (TLS) on ", "submissions"),
    ("imapd", " Imap on ", "IMAP"),
    ("imapd", " Imaps on ", "IMAPS"),
    ("imapd", " Pop3 on ", "POP3"),
    ("imapd", " Pop3s on ", "POP3S"),
];

/// What the daemons have said so far: the addresses they listen on.
#[derive(Default)]
struct Heard {
    listening: BTreeMap<&'static str, String>,
    mtad_ready: bool,
    told: bool,
}

fn program(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build the site's programs together (cargo build --release -p site -p mta -p imapd)",
            path.display()
        ))
    }
}

pub fn up(options: Options) -> Result<(), String> {
    // before any thread: the supervisor takes its signals synchronously
    supervise::block_signals();
    let (mtad, imapd) = (
        program(&options.programs, "mtad")?,
        program(&options.programs, "imapd")?,
    );
    let site = setup::prepare(&options.data, options.port_base)?;
    let log_dir = site.data.join("log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join("mailkit.log"))
        .map_err(|e| format!("{}: {e}", log_dir.display()))?;
    let terminal = options.foreground;
    let _ = tracing_subscriber::fmt()
        .with_writer(move || Tee {
            file: log.try_clone().ok(),
            terminal,
        })
        .with_ansi(false)
        .with_target(false)
        .try_init();
    if site.made {
        println!(
            "Made the demo site in {} (the site's tokens trained on the 8 sample messages in samples/).",
            site.data.display()
        );
    } else {
        println!("Starting the demo site in {} again.", site.data.display());
    }
    let heard = Arc::new(Mutex::new(Heard::default()));
    let site_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let told_up = site_up.clone();
    let (data, password) = (site.data.clone(), site.password.clone());
    let on_line: supervise::OnLine = Arc::new(move |name, line| {
        let mut h = heard.lock().unwrap_or_else(|e| e.into_inner());
        for (daemon, words, service) in ANNOUNCED {
            if name == daemon
                && let Some(at) = line.find(words)
            {
                h.listening.insert(service, line[at + words.len()..].trim().to_owned());
            }
        }
        if name == "mtad" && line.ends_with(" ready") {
            h.mtad_ready = true;
        }
        if !h.told && h.mtad_ready && h.listening.len() == ANNOUNCED.len() {
            h.told = true;
            tell(&data, &password, &h.listening);
            told_up.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let config = site.config.display().to_string();
    let programs = vec![
        supervise::Program {
            name: "mtad",
            path: mtad,
            args: vec!["--config".into(), config.clone()],
        },
        supervise::Program {
            name: "imapd",
            path: imapd,
            args: vec!["--config".into(), config],
        },
    ];
    // a configuration a daemon would refuse is said once, here, rather
    // than by a daemon started again and again
    for p in &programs {
        let checked = std::process::Command::new(&p.path)
            .args(&p.args)
            .arg("--check-config")
            .output()
            .map_err(|e| format!("{}: {e}", p.path.display()))?;
        if !checked.status.success() {
            return Err(String::from_utf8_lossy(&checked.stderr).trim().to_owned());
        }
    }
    let ended = supervise::supervise(programs, &log_dir, options.foreground, on_line, &site_up)
        .map_err(|e| format!("starting the daemons: {e}"))?;
    if let supervise::Ended::DiedAtStart(name, status) = ended {
        // its own last words say why (a port in use, a file it cannot read)
        let log = log_dir.join(format!("{name}.log"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let last: Vec<&str> = text.lines().rev().take(3).collect();
        return Err(format!(
            "{name} stopped before the site was up ({status}); the end of {}:\n{}",
            log.display(),
            last.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    println!("The demo site has stopped; `mailkit up` starts it again with the same data.");
    Ok(())
}

/// How to use the site, once every daemon listens.
fn tell(data: &Path, password: &str, listening: &BTreeMap<&'static str, String>) {
    let at = |service: &str| listening.get(service).cloned().unwrap_or_default();
    let port = |service: &str| at(service).rsplit(':').next().unwrap_or("").to_owned();
    let (domain, user) = (setup::DOMAIN, setup::USER);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\nThe site is up. Mail for {user}@{domain}; user {user}, password {password}\n\
         \n  SMTP         {}   (127.0.0.1 may relay; 127.0.0.2 and up are outside)\n  \
         submission   {}   STARTTLS, then AUTH\n  submissions  {}   TLS\n  \
         IMAP         {}   STARTTLS\n  IMAPS        {}\n  POP3         {}   STLS\n  POP3S        {}\n\
         \nSend a message:\n  swaks --server 127.0.0.1:{} --from you@example.org --to {user}@{domain}\n  \
         python3 -c 'import smtplib; smtplib.SMTP(\"127.0.0.1\", {}).sendmail(\"you@example.org\", [\"{user}@{domain}\"], \"Subject: hello\\r\\n\\r\\nhello\\r\\n\")'\n\
         \nRead it with any mail client: IMAP server 127.0.0.1, port {} (STARTTLS) or {} (TLS), user {user},\n\
         the password above; the certificate is self-signed ({}/tls/cert.pem). Move mail into Spam to teach the filter.\n\
         \nThe site's figures: mailkit report --config {}/mailkit.toml {}/log\n\
         Logs in {}/log. Ctrl-C stops the site.",
        at("SMTP"),
        at("submission"),
        at("submissions"),
        at("IMAP"),
        at("IMAPS"),
        at("POP3"),
        at("POP3S"),
        port("SMTP"),
        port("SMTP"),
        port("IMAP"),
        port("IMAPS"),
        data.display(),
        data.display(),
        data.display(),
        data.display(),
    );
    let _ = out.flush();
}
