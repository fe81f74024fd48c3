//! The demo site's data directory, made on the first start and reused
//! after: its configuration (the embedded default, `site.toml`), a demo
//! user with a random password, a self-signed certificate (rcgen), the
//! queue and the mail homes, and the system-wide token database trained
//! on the sample messages so the filter works from the first message.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The demo site's names.
pub const DOMAIN: &str = "example.test";
pub const HOSTNAME: &str = "mail.example.test";
pub const USER: &str = "demo";

/// The sample messages the system-wide tokens are trained on (the
/// repository's `samples/`, built in so the command works from anywhere).
const SPAM: [&[u8]; 4] = [
    include_bytes!("../../../samples/spam/1.eml"),
    include_bytes!("../../../samples/spam/2.eml"),
    include_bytes!("../../../samples/spam/3.eml"),
    include_bytes!("../../../samples/spam/4.eml"),
];
const HAM: [&[u8]; 4] = [
    include_bytes!("../../../samples/ham/1.eml"),
    include_bytes!("../../../samples/ham/2.eml"),
    include_bytes!("../../../samples/ham/3.eml"),
    include_bytes!("../../../samples/ham/4.eml"),
];

/// The embedded default configuration; `@DATA@`, `@UID@`… are filled in.
const TEMPLATE: &str = include_str!("site.toml");

/// Where the site's listeners are: each port is `base` plus the
/// service's well-known one (2000 + 25 = 2025, 2000 + 143 = 2143 …); base 0 lets the kernel
/// pick every port (tests), and the supervisor reads them from the logs.
pub fn ports(base: u16) -> [(&'static str, u16); 7] {
    let at = |well_known: u16| if base == 0 { 0 } else { base + well_known };
    [
        ("SMTP", at(25)),
        ("SUBMISSION", at(587)),
        ("SUBMISSIONS", at(465)),
        ("IMAP", at(143)),
        ("IMAPS", at(993)),
        ("POP3", at(110)),
        ("POP3S", at(995)),
    ]
}

/// What the first start made (or a later one found).
pub struct Site {
    pub data: PathBuf,
    pub config: PathBuf,
    pub password: String,
    /// Whether this start made the directory.
    pub made: bool,
}

fn io(path: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

/// Makes `data` the demo site (on the first start) or checks it is one.
pub fn prepare(data: &Path, port_base: u16) -> Result<Site, String> {
    let config = data.join("mailkit.toml");
    let passwd = data.join("passwd");
    if config.exists() {
        let password = read_password(&passwd)?;
        return Ok(Site {
            data: data.to_owned(),
            config,
            password,
            made: false,
        });
    }
    for dir in ["", "tls", "queue", "log", "site-tokens", "home/demo"] {
        let path = data.join(dir);
        std::fs::create_dir_all(&path).map_err(|e| io(&path, e))?;
    }
    // the data directory holds a password and mail: the user's alone
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)).map_err(|e| io(data, e))?;
    let data = std::fs::canonicalize(data).map_err(|e| io(data, e))?;
    let password = random_password()?;
    let (uid, gid) = (rustix_ids().0, rustix_ids().1);
    let home = data.join("home/demo");
    write_private(
        &passwd,
        format!("{USER}:{{PLAIN}}{password}:{uid}:{gid}::{}::\n", home.display()).as_bytes(),
    )?;
    let cert = rcgen::generate_simple_self_signed(vec![
        HOSTNAME.to_owned(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ])
    .map_err(|e| format!("making the TLS certificate: {e}"))?;
    write_private(&data.join("tls/cert.pem"), cert.cert.pem().as_bytes())?;
    write_private(&data.join("tls/key.pem"), cert.signing_key.serialize_pem().as_bytes())?;
    seed_tokens(&data.join("site-tokens"))?;
    let mut text = TEMPLATE
        .replace("@DATA@", &data.display().to_string())
        .replace("@DOMAIN@", DOMAIN)
        .replace("@HOSTNAME@", HOSTNAME);
    for (name, port) in ports(port_base) {
        text = text.replace(&format!("@{name}@"), &port.to_string());
    }
    // written last: its presence says the directory is whole
    let partial = data.join("mailkit.toml.new");
    write_private(&partial, text.as_bytes())?;
    std::fs::rename(&partial, &config).map_err(|e| io(&config, e))?;
    Ok(Site {
        config: data.join("mailkit.toml"),
        data,
        password,
        made: true,
    })
}

fn rustix_ids() -> (u32, u32) {
    // SAFETY: getuid and getgid cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// A file only its owner reads, created new (never through a link).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io(path, e))
}

/// 16 letters and digits from the kernel's random source.
fn random_password() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    let path = Path::new("/dev/urandom");
    std::io::Read::read_exact(&mut std::fs::File::open(path).map_err(|e| io(path, e))?, &mut bytes)
        .map_err(|e| io(path, e))?;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

/// The demo user's password, as the passwd file holds it.
fn read_password(passwd: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(passwd).map_err(|e| io(passwd, e))?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{USER}:{{PLAIN}}")))
        .and_then(|rest| rest.split(':').next())
        .map(str::to_owned)
        .ok_or_else(|| format!("{}: no {USER} user with a {{PLAIN}} password", passwd.display()))
}

/// The system-wide tokens, trained on the sample messages.
fn seed_tokens(dir: &Path) -> Result<(), String> {
    use bsfilter::store::{Action, Class};
    let filter = bsfilter::Filter::new(bsfilter::FilterConfig::new(dir.to_owned()));
    let mut store = filter.open_user_db().map_err(|e| format!("{}: {e}", dir.display()))?;
    for (messages, class) in [(&SPAM, Class::Spam), (&HAM, Class::Clean)] {
        let analyzed: Vec<bsfilter::Analyzed> = messages.iter().map(|m| filter.analyze(m, None)).collect();
        filter
            .train(&mut store, &analyzed.iter().collect::<Vec<_>>(), Action::Add(class))
            .map_err(|e| format!("{}: training on the samples: {e}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_configuration_is_one_the_programs_read() {
        let dir = tempfile::tempdir().unwrap();
        let site = prepare(&dir.path().join("site"), 2000).unwrap();
        assert!(site.made);
        let text = std::fs::read_to_string(&site.config).unwrap();
        assert!(text.contains("listen = [\"127.0.0.1:2025\"]"), "{text}");
        assert!(
            !text
                .split('@')
                .skip(1)
                .step_by(2)
                .any(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase())),
            "a placeholder left: {text}"
        );
        // lda's sections, as every program reads them
        lda::config::Config::load(Some(&site.config)).unwrap();
        assert_eq!(site.password.len(), 16);
        // a second start finds it and the same password
        let again = prepare(&site.data, 2000).unwrap();
        assert!(!again.made);
        assert_eq!(again.password, site.password);
        let mode = std::fs::metadata(&site.data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
