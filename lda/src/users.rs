//! Mail users: a table in Dovecot's passwd-file format (shared with imapd
//! and mtad) and, optionally, the system's users.
//!
//! passwd-file lines are `user:password:uid:gid:gecos:home:shell:extra`,
//! trailing fields optional, `#` comments; extra fields are space-separated
//! `key=value`, of which `userdb_mail` (or `mail`) is the mail location,
//! Dovecot's `mbox:~/mail:INBOX=/var/mail/%u`, and `userdb_quota_rule` /
//! `userdb_quota_rule2` (or without `userdb_`) the user's limits
//! (`*:storage=100M`, `*:messages=1000`, as Dovecot writes them).

use std::ffi::CStr;
use std::path::{Path, PathBuf};

use bsfilter::error::exit;

use crate::config::Config;

/// One mail user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// Password hash (`{SCHEME}…`), empty for system users.
    pub password: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: PathBuf,
    /// Dovecot-style mail location, when the table gives one.
    pub mail_location: Option<String>,
    /// Limits from the table's `userdb_quota_rule=*:storage=100M` and
    /// `*:messages=N` (Dovecot's syntax), for imapd's QUOTA.
    pub quota: Quota,
}

/// A user's limits; None is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// In bytes.
    pub storage: Option<u64>,
    pub messages: Option<u64>,
}

impl Quota {
    /// Reads one `quota_rule` value (`*:storage=100M`, `*:messages=1000`,
    /// `*:storage=0` meaning none) into these limits; false if it is not
    /// one this reads (a rule for one folder, a percentage…).
    fn add_rule(&mut self, rule: &str) -> bool {
        let Some(rest) = rule.strip_prefix("*:") else {
            return false;
        };
        let Some((what, value)) = rest.split_once('=') else {
            return false;
        };
        let (digits, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len()));
        let Ok(n) = digits.parse::<u64>() else { return false };
        let scale: u64 = match unit.to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "K" | "KB" => 1 << 10,
            "M" | "MB" => 1 << 20,
            "G" | "GB" => 1 << 30,
            "T" | "TB" => 1 << 40,
            _ => return false,
        };
        let limit = (n > 0).then(|| n.saturating_mul(scale));
        match what {
            // Dovecot counts storage without a unit in bytes
            "storage" | "bytes" => self.storage = limit,
            "messages" if scale == 1 => self.messages = limit,
            _ => return false,
        }
        true
    }
}

/// Where a user's mail lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailLocation {
    /// The INBOX mbox file.
    pub inbox: PathBuf,
    /// The directory holding the other folders.
    pub folders: PathBuf,
}

impl User {
    /// Expands `~`, `%u` and `%h` in a configured path.
    pub fn expand(&self, template: &str) -> PathBuf {
        let home = self.home.to_string_lossy();
        let expanded = template.replace("%u", &self.name).replace("%h", &home);
        match expanded.strip_prefix("~/") {
            Some(rest) => self.home.join(rest),
            None if expanded == "~" => self.home.clone(),
            None => PathBuf::from(expanded),
        }
    }

    /// The mail location: the user's own `mail=` field, else the defaults.
    pub fn mail_location(&self, default_inbox: &str, default_folders: &str) -> MailLocation {
        let mut inbox = self.expand(default_inbox);
        let mut folders = self.expand(default_folders);
        if let Some(loc) = &self.mail_location
            && let Some(spec) = loc.strip_prefix("mbox:")
        {
            let mut parts = spec.split(':');
            if let Some(root) = parts.next().filter(|r| !r.is_empty()) {
                folders = self.expand(root);
            }
            for part in parts {
                if let Some(path) = part.strip_prefix("INBOX=") {
                    inbox = self.expand(path);
                }
            }
        }
        MailLocation { inbox, folders }
    }
}

/// Why a user table could not be read.
#[derive(Debug)]
pub struct TableError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        }
    }
}

/// Parses a passwd-file.
pub fn read_passwd_file(path: &Path) -> Result<Vec<User>, TableError> {
    let text = std::fs::read(path).map_err(|e| TableError {
        path: path.to_owned(),
        line: 0,
        message: e.to_string(),
    })?;
    let text = String::from_utf8_lossy(&text);
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: &str| TableError {
            path: path.to_owned(),
            line: i + 1,
            message: message.to_owned(),
        };
        let fields: Vec<&str> = line.splitn(8, ':').collect();
        let name = fields[0];
        if name.is_empty() {
            return Err(bad("empty user name"));
        }
        let number = |idx: usize, what: &str| -> Result<Option<u32>, TableError> {
            match fields.get(idx).copied().unwrap_or("") {
                "" => Ok(None),
                v => v
                    .parse()
                    .map(Some)
                    .map_err(|_| bad(&format!("{what} {v:?} is not a number"))),
            }
        };
        let uid = number(2, "uid")?;
        let gid = number(3, "gid")?;
        let home = fields.get(5).copied().unwrap_or("");
        let extra = fields.get(7).copied().unwrap_or("");
        let mail_location = extra.split_whitespace().find_map(|kv| {
            kv.strip_prefix("userdb_mail=")
                .or_else(|| kv.strip_prefix("mail="))
                .map(str::to_owned)
        });
        let mut quota = Quota::default();
        for rule in extra.split_whitespace().filter_map(|kv| {
            kv.strip_prefix("userdb_quota_rule=")
                .or_else(|| kv.strip_prefix("quota_rule="))
                .or_else(|| kv.strip_prefix("userdb_quota_rule2="))
                .or_else(|| kv.strip_prefix("quota_rule2="))
        }) {
            if !quota.add_rule(rule) {
                return Err(bad(&format!(
                    "quota rule {rule:?} is not one this reads (`*:storage=100M` or `*:messages=1000`)"
                )));
            }
        }
        users.push(User {
            name: name.to_owned(),
            password: fields.get(1).copied().unwrap_or("").to_owned(),
            uid,
            gid,
            home: PathBuf::from(home),
            mail_location,
            quota,
        });
    }
    Ok(users)
}

/// Why a recipient could not be found or become.
#[derive(Debug)]
pub enum UserError {
    /// The user table could not be read.
    Table(TableError),
    NoSuchUser(String),
    /// The user's entry has no home directory.
    NoHome(String),
    /// Run as root for a user without a uid of their own.
    NoUid(String),
    /// Run as `uid`, which is not the recipient's.
    NotAllowed {
        uid: u32,
        user: String,
        user_uid: u32,
    },
    /// Switching to the recipient failed.
    Switch(u32, std::io::Error),
}

impl UserError {
    /// The sysexits code: an unknown user is permanent (67), a user lda
    /// may not deliver to 77, a broken table or entry a configuration
    /// error (78), a failed switch may pass (75).
    pub fn exit_code(&self) -> i32 {
        match self {
            UserError::Table(_) | UserError::NoHome(_) | UserError::NoUid(_) => exit::CONFIG,
            UserError::NoSuchUser(_) => exit::NOUSER,
            UserError::NotAllowed { .. } => exit::NOPERM,
            UserError::Switch(..) => exit::TEMPFAIL,
        }
    }
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserError::Table(e) => write!(f, "{e}"),
            UserError::NoSuchUser(name) => write!(f, "{name}: no such user"),
            UserError::NoHome(name) => write!(f, "{name}: no home directory in the user table"),
            UserError::NoUid(name) => write!(f, "{name}: no uid in the user table; lda will not deliver as root"),
            UserError::NotAllowed { uid, user, user_uid } => {
                write!(f, "uid {uid} may not deliver to {user} (uid {user_uid})")
            }
            UserError::Switch(uid, e) => write!(f, "cannot switch to uid {uid}: {e}"),
        }
    }
}

impl std::error::Error for UserError {}

/// A user by name: from the user table, then (unless `system_users` is
/// off) from the system.
pub fn find_user(config: &Config, name: &str) -> Result<User, UserError> {
    let table = match &config.passwd_file {
        Some(path) => read_passwd_file(path).map_err(UserError::Table)?,
        None => Vec::new(),
    };
    let user = table
        .into_iter()
        .find(|u| u.name == name)
        .or_else(|| config.system_users.then(|| system_user_by_name(name)).flatten())
        .ok_or_else(|| UserError::NoSuchUser(name.to_owned()))?;
    if user.home.as_os_str().is_empty() {
        return Err(UserError::NoHome(user.name));
    }
    Ok(user)
}

/// The recipient of a delivery: `name` ([`find_user`]), or with `None`
/// the user running this process.
pub fn find_recipient(config: &Config, name: Option<&str>) -> Result<User, UserError> {
    if let Some(name) = name {
        return find_user(config, name);
    }
    let uid = rustix::process::getuid().as_raw();
    let table = match &config.passwd_file {
        Some(path) => read_passwd_file(path).map_err(UserError::Table)?,
        None => Vec::new(),
    };
    let user = table
        .into_iter()
        .find(|u| u.uid == Some(uid))
        .or_else(|| system_user_by_uid(uid))
        .ok_or_else(|| UserError::NoSuchUser(format!("uid {uid}")))?;
    if user.home.as_os_str().is_empty() {
        return Err(UserError::NoHome(user.name));
    }
    Ok(user)
}

/// Becomes the recipient: run as root (by an MTA), switches to the
/// recipient's uid and gid; run as a user, allows only that user (or
/// virtual users without a uid of their own). Returns the spool's group,
/// held back for the INBOX, when the INBOX is in a directory that is not
/// the recipient's own. Sets `HOME` for the recipient.
pub fn become_recipient(config: &Config, user: &User) -> Result<Option<SpoolGroup>, UserError> {
    let euid = rustix::process::geteuid().as_raw();
    let uid = rustix::process::getuid().as_raw();
    if euid != 0 {
        return match user.uid {
            Some(u) if u != uid => Err(UserError::NotAllowed {
                uid,
                user: user.name.clone(),
                user_uid: u,
            }),
            _ => Ok(None),
        };
    }
    let Some(target) = user.uid else {
        return Err(UserError::NoUid(user.name.clone()));
    };
    if target == 0 {
        return Ok(None);
    }
    let location = user.mail_location(&config.inbox, &config.folders);
    let spool_group = location
        .inbox
        .parent()
        .filter(|dir| needs_mail_group(dir, target))
        .and_then(|_| group_id("mail"));
    let spool = switch_to(target, user.gid.unwrap_or(target), spool_group).map_err(|e| UserError::Switch(target, e))?;
    // So that `~` and the filter's home resolve for the recipient.
    // SAFETY: lda is single-threaded here; a server calling this from
    // several threads would race with getenv.
    unsafe { std::env::set_var("HOME", &user.home) };
    Ok(spool)
}

/// Switches the process (every thread: glibc applies it to all) to `uid`
/// and `gid` with no other group. With `spool_group` (the `mail` group:
/// Debian's /var/mail is root:mail 2775, so only that group can create a
/// mailbox and its dotlock there) that group is kept as the saved group
/// ID only — not in effect — and the returned [`SpoolGroup`] puts it in
/// effect for the moments a spool needs it, as Dovecot's
/// `mail_privileged_group` does. Everything else (folders, the filter's
/// home, all of it in paths the user controls) is done with the user's
/// own rights alone.
pub fn switch_to(uid: u32, gid: u32, spool_group: Option<u32>) -> std::io::Result<Option<SpoolGroup>> {
    let saved = spool_group.unwrap_or(gid);
    // SAFETY: plain system calls on integers and an array of one group.
    let ok = unsafe {
        libc::setgroups(1, &gid) == 0 && libc::setresgid(gid, gid, saved) == 0 && libc::setresuid(uid, uid, uid) == 0
    };
    if !ok {
        return Err(std::io::Error::last_os_error());
    }
    Ok(spool_group.map(|spool| SpoolGroup { spool, own: gid }))
}

/// The spool's group, held as the saved group ID after [`switch_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolGroup {
    spool: u32,
    own: u32,
}

impl SpoolGroup {
    /// Puts the spool's group in effect for the calling thread until the
    /// guard drops. Per thread (the kernel's credentials are; glibc's
    /// `setegid` would change every thread's), so the other sessions of a
    /// server never act with it; the thread must not start threads or
    /// hand work to others meanwhile.
    pub fn enter(&self) -> std::io::Result<SpoolRights<'_>> {
        rustix::thread::set_thread_res_gid(None, Some(rustix::thread::Gid::from_raw(self.spool)), None)?;
        Ok(SpoolRights(self))
    }
}

/// The spool's group in effect for this thread; dropping it returns to
/// the user's own.
pub struct SpoolRights<'a>(&'a SpoolGroup);

impl Drop for SpoolRights<'_> {
    fn drop(&mut self) {
        let own = rustix::thread::Gid::from_raw(self.0.own);
        if rustix::thread::set_thread_res_gid(None, Some(own), None).is_err() {
            // Going back to the real group ID cannot be refused; if it
            // were, going on would act with the spool's rights.
            std::process::abort();
        }
    }
}

/// Whether `uid` needs the `mail` group to create files in `dir`: unless
/// `dir` — or, when it does not exist yet, the nearest directory above it,
/// where it would be created — belongs to `uid`. Why ask: looking the
/// group up starts glibc's NSS (nsswitch.conf, /etc/group, the nscd
/// socket), ~70 µs and 8 page faults of every delivery into a home
/// directory, where the group is of no use (BENCHMARKS.md).
pub fn needs_mail_group(dir: &Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    dir.ancestors()
        .find_map(|d| std::fs::metadata(d).ok())
        .is_none_or(|meta| meta.uid() != uid)
}

/// A system user by name (getpwnam: files, LDAP, whatever NSS says).
pub fn system_user_by_name(name: &str) -> Option<User> {
    let cname = std::ffi::CString::new(name).ok()?;
    lookup(|pwd, buf, result| unsafe {
        // SAFETY: all pointers are valid for the call; buf's length is passed.
        libc::getpwnam_r(cname.as_ptr(), pwd, buf.as_mut_ptr().cast(), buf.len(), result)
    })
}

/// A system user by uid.
pub fn system_user_by_uid(uid: u32) -> Option<User> {
    lookup(|pwd, buf, result| unsafe {
        // SAFETY: as above.
        libc::getpwuid_r(uid, pwd, buf.as_mut_ptr().cast(), buf.len(), result)
    })
}

/// The id of a system group by name.
pub fn group_id(name: &str) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: group is plain data; getgrnam_r fills it, strings in buf.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut group,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        return (rc == 0 && !result.is_null()).then_some(group.gr_gid);
    }
}

fn lookup(call: impl Fn(*mut libc::passwd, &mut [u8], *mut *mut libc::passwd) -> libc::c_int) -> Option<User> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: passwd is plain data; getpw*_r fills it.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pwd, &mut buf, &mut result);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        // SAFETY: on success the strings point into buf, NUL-terminated.
        let text = |p: *const libc::c_char| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        return Some(User {
            name: text(pwd.pw_name),
            password: String::new(),
            uid: Some(pwd.pw_uid),
            gid: Some(pwd.pw_gid),
            home: PathBuf::from(text(pwd.pw_dir)),
            mail_location: None,
            quota: Quota::default(),
        });
    }
}

#[cfg(test)]
mod quota_tests {
    use super::Quota;

    #[test]
    fn dovecot_quota_rules() {
        let mut q = Quota::default();
        assert!(q.add_rule("*:storage=100M") && q.add_rule("*:messages=1000"));
        assert_eq!(
            q,
            Quota {
                storage: Some(100 << 20),
                messages: Some(1000)
            }
        );
        assert!(q.add_rule("*:storage=0"));
        assert_eq!(q.storage, None);
        assert!(q.add_rule("*:bytes=2048"));
        assert_eq!(q.storage, Some(2048));
        for unread in [
            "Trash:storage=+10M",
            "*:storage=10%",
            "*:messages=5K",
            "*:colour=red",
            "*:storage=x",
        ] {
            assert!(!Quota::default().add_rule(unread), "{unread}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_group_only_outside_the_users_own_directories() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let owner = std::fs::metadata(dir.path()).unwrap().uid();
        let not_yet_created = dir.path().join("mail/folders");
        assert!(!needs_mail_group(dir.path(), owner));
        assert!(
            !needs_mail_group(&not_yet_created, owner),
            "judged by the directory it will be made in"
        );
        assert!(needs_mail_group(dir.path(), owner + 1));
        assert!(needs_mail_group(&not_yet_created, owner + 1));
    }

    #[test]
    fn passwd_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(
            &path,
            "# users\nalice:{SHA512-CRYPT}$6$x:1001:1001::/home/alice::userdb_mail=mbox:~/Mail:INBOX=/var/mail/%u\n\
             bob:{PLAIN}pw::::/srv/bob\ncarol:x\n",
        )
        .unwrap();
        let users = read_passwd_file(&path).unwrap();
        assert_eq!(users.len(), 3);
        assert_eq!(users[0].uid, Some(1001));
        let loc = users[0].mail_location("/var/mail/%u", "~/mail");
        assert_eq!(loc.inbox, PathBuf::from("/var/mail/alice"));
        assert_eq!(loc.folders, PathBuf::from("/home/alice/Mail"));
        let loc = users[1].mail_location("~/mail/inbox", "~/mail");
        assert_eq!(loc.inbox, PathBuf::from("/srv/bob/mail/inbox"));
        assert_eq!(users[2].home, PathBuf::new());

        std::fs::write(&path, "dave:x:notanumber:1::/h\n").unwrap();
        let err = read_passwd_file(&path).unwrap_err();
        assert_eq!(err.line, 1);
    }

    #[test]
    fn system_groups() {
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-here"), None);
    }

    #[test]
    fn system_users() {
        let root = system_user_by_uid(0).unwrap();
        assert_eq!(root.name, "root");
        assert_eq!(system_user_by_name("root").unwrap().uid, Some(0));
        assert!(system_user_by_name("no-such-user-here").is_none());
    }
}
