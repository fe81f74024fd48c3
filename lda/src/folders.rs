//! Folder names, one rule for every program: IMAP's modified UTF-7
//! (RFC 3501 §5.1.3) on disk, the checks that keep a user inside their
//! own mail directory, where each folder's file is, and the folder tree.
//!
//! Names travel (IMAP) and are stored on disk in modified UTF-7, as
//! Dovecot stores mbox folders by default, so both servers see the same
//! folders; lda (`-m`, `spam_folder`) and the configuration name folders
//! in UTF-8, which [`from_utf8`] turns into that form. The hierarchy
//! delimiter is `/`; `INBOX` (any case) is the user's inbox file.

use std::path::{Path, PathBuf};

use std::ffi::OsStr;
use std::os::unix::fs::DirBuilderExt;

use rustix::fs::OFlags;

use crate::config::Config;
use crate::dir::{Dir, MboxPath};
use crate::users::User;

/// Dovecot's file of subscribed folders, in the folders directory.
const SUBSCRIPTIONS: &str = ".subscriptions";

/// Longest mailbox name accepted, in bytes.
pub const MAX_NAME: usize = 255;

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// UTF-8 → modified UTF-7.
pub fn encode_mutf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        for chunk in bytes.chunks(3) {
            let n = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for i in 0..=chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Modified UTF-7 → UTF-8; `None` when `name` is not valid modified UTF-7.
pub fn decode_mutf7(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(amp) = rest.find('&') {
        let plain = &rest[..amp];
        if !plain.chars().all(|c| (' '..='~').contains(&c)) {
            return None;
        }
        out.push_str(plain);
        let after = &rest[amp + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let mut bits = 0u32;
            let mut nbits = 0;
            let mut units = Vec::new();
            let mut bytes = Vec::new();
            for b in encoded.bytes() {
                let v = BASE64.iter().position(|&x| x == b)? as u32;
                bits = (bits << 6) | v;
                nbits += 6;
                if nbits >= 8 {
                    nbits -= 8;
                    bytes.push((bits >> nbits) as u8);
                    bits &= (1 << nbits) - 1;
                }
            }
            if bytes.len() % 2 != 0 || bits != 0 {
                return None;
            }
            for pair in bytes.chunks(2) {
                units.push(u16::from_be_bytes([pair[0], pair[1]]));
            }
            let decoded = String::from_utf16(&units).ok()?;
            // printable ASCII must not be encoded (the encoding is unique)
            if decoded.chars().any(|c| (' '..='~').contains(&c)) {
                return None;
            }
            out.push_str(&decoded);
        }
        rest = &after[end + 1..];
    }
    if !rest.chars().all(|c| (' '..='~').contains(&c)) {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

/// Why a name is refused.
#[derive(Debug, PartialEq, Eq)]
pub struct BadName(pub &'static str);

/// The canonical form of a client's mailbox name (bytes as sent, already
/// modified UTF-7): `INBOX` in any case becomes `INBOX`; anything that
/// could leave the user's directory or clash with lock files is refused.
pub fn check(name: &[u8]) -> Result<String, BadName> {
    let name = std::str::from_utf8(name).map_err(|_| BadName("names are modified UTF-7"))?;
    let name = name.strip_suffix('/').unwrap_or(name);
    if name.is_empty() {
        return Err(BadName("empty name"));
    }
    if name.len() > MAX_NAME {
        return Err(BadName("name too long"));
    }
    if name.eq_ignore_ascii_case("INBOX") {
        return Ok("INBOX".to_owned());
    }
    if decode_mutf7(name).is_none() {
        return Err(BadName("not valid modified UTF-7"));
    }
    if name.starts_with('/') {
        return Err(BadName("absolute names are not allowed"));
    }
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(BadName("empty, `.` or `..` component"));
        }
        if part.starts_with('.') || part.ends_with(".lock") || part.contains('\0') {
            return Err(BadName("names may not start with `.` or end in `.lock`"));
        }
    }
    let first = name.split('/').next().unwrap_or_default();
    if first.eq_ignore_ascii_case("INBOX") {
        return Err(BadName("INBOX has no sub-folders here"));
    }
    Ok(name.to_owned())
}

/// The on-disk (modified UTF-7) name of a folder named in UTF-8 — on
/// lda's command line, in the configuration — checked as [`check`] does.
pub fn from_utf8(name: &str) -> Result<String, BadName> {
    if name.eq_ignore_ascii_case("INBOX") {
        return Ok("INBOX".to_owned());
    }
    if name.chars().any(char::is_control) {
        return Err(BadName("control characters"));
    }
    check(encode_mutf7(name).as_bytes())
}

/// Where a user's mailboxes live.
#[derive(Debug, Clone)]
pub struct Layout {
    pub inbox: PathBuf,
    pub folders: PathBuf,
    /// The INBOX is outside the user's home: in a spool, whose group may
    /// be needed to create it and its dotlock.
    pub inbox_in_spool: bool,
}

impl Layout {
    /// The layout of `user`'s mail: their own location (passwd-file
    /// `mail=`), else the configured one.
    pub fn of(user: &User, config: &Config) -> Layout {
        let location = user.mail_location(&config.inbox, &config.folders);
        Layout {
            inbox_in_spool: !location.inbox.starts_with(&user.home),
            inbox: location.inbox,
            folders: location.folders,
        }
    }

    /// The mbox file of a checked name: the INBOX's file in its directory,
    /// a folder beneath the folders directory (reached without following
    /// links, [`MboxPath`]).
    pub fn path(&self, name: &str) -> MboxPath {
        if name == "INBOX" {
            MboxPath {
                in_spool: self.inbox_in_spool,
                ..MboxPath::of_file(&self.inbox)
            }
        } else {
            MboxPath::new(&self.folders, name)
        }
    }

    /// The subscribed folders: `.subscriptions` in the folders directory,
    /// one name a line, as Dovecot keeps them for mbox.
    pub fn read_subscriptions(&self) -> std::io::Result<Vec<String>> {
        use std::io::Read;
        let dir = Dir::open(&self.folders)?;
        let mut text = String::new();
        dir.open_file(OsStr::new(SUBSCRIPTIONS), OFlags::RDONLY, 0)?
            .take(1 << 20)
            .read_to_string(&mut text)?;
        Ok(text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
    }

    /// Replaces the subscriptions with `names` (a new file renamed over
    /// the old; a link left under either name is replaced, never written
    /// through).
    pub fn write_subscriptions(&self, names: &[String]) -> std::io::Result<()> {
        use std::io::Write;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.folders)?;
        let dir = Dir::open(&self.folders)?;
        let tmp = OsStr::new(".subscriptions.tmp");
        let mut file = dir.create_replacing(tmp, 0o600)?;
        file.write_all(names.iter().map(|s| format!("{s}\n")).collect::<String>().as_bytes())?;
        file.sync_all()?;
        dir.rename(tmp, &dir, OsStr::new(SUBSCRIPTIONS))
    }

    /// Every folder (not INBOX) under the folders directory: `(name, is a
    /// mailbox file, has children)`. Directories are `\Noselect`.
    pub fn folders(&self) -> Vec<(String, bool, bool)> {
        let mut out = Vec::new();
        walk(&self.folders, "", &self.inbox, &mut out, 0);
        out.sort();
        out
    }

    /// The INBOX and every folder that holds mail (not the directories
    /// that only hold folders): what a quota counts.
    pub fn mail_files(&self) -> Vec<MboxPath> {
        let mut paths = vec![self.path("INBOX")];
        paths.extend(
            self.folders()
                .into_iter()
                .filter(|(_, selectable, _)| *selectable)
                .map(|(name, ..)| self.path(&name)),
        );
        paths
    }

    /// What the user's mail files hold together, for a delivery's quota
    /// check: (bytes, messages). Bytes are the files' sizes — each message
    /// with its `From ` line and state headers, a little more than
    /// imapd's QUOTA counts (the messages as a client sees them), so a
    /// delivery is refused no later than IMAP says the quota is reached;
    /// a `stat` each, where parsing every folder at every delivery would
    /// cost 0.3 s for a 54 MB INBOX. Messages are counted (their `From `
    /// lines, a read of each file) only when `count_messages`. Files are
    /// opened through their directory, never through a link.
    pub fn usage(&self, count_messages: bool) -> (u64, u64) {
        let (mut bytes, mut messages) = (0, 0);
        for path in self.mail_files() {
            let Ok((dir, name)) = path.open_dir(false) else {
                continue;
            };
            let Ok(mut file) = dir.open_file(&name, OFlags::RDONLY, 0) else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            bytes += meta.len();
            if count_messages {
                let mut data = Vec::with_capacity(meta.len() as usize);
                if std::io::Read::read_to_end(&mut file, &mut data).is_ok() {
                    messages += u64::from(data.starts_with(b"From "))
                        + memchr::memmem::find_iter(&data, b"\n\nFrom ").count() as u64;
                }
            }
        }
        (bytes, messages)
    }
}

fn walk(dir: &Path, prefix: &str, inbox: &Path, out: &mut Vec<(String, bool, bool)>, depth: usize) {
    if depth > 32 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else { continue };
        let path = entry.path();
        if file_name.starts_with('.') || file_name.ends_with(".lock") || path == inbox {
            continue;
        }
        let name = format!("{prefix}{file_name}");
        if check(name.as_bytes()).is_err() {
            continue;
        }
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            let before = out.len();
            walk(&path, &format!("{name}/"), inbox, out, depth + 1);
            let has_children = out.len() > before;
            out.push((name, false, has_children));
        } else if kind.is_file() {
            out.push((name, true, false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modified_utf7_round_trips() {
        for (utf8, mutf7) in [
            ("INBOX", "INBOX"),
            ("迷惑メール", "&j,dg0TDhMPww6w-"),
            ("A&B", "A&-B"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("😀", "&2D3eAA-"),
        ] {
            assert_eq!(encode_mutf7(utf8), mutf7);
            assert_eq!(decode_mutf7(mutf7).as_deref(), Some(utf8));
        }
        assert_eq!(decode_mutf7("&Jjo!"), None);
        assert_eq!(decode_mutf7("&AGE-"), None); // encoded ASCII
        assert_eq!(decode_mutf7("日本"), None);
    }

    #[test]
    fn names_from_utf8() {
        assert_eq!(from_utf8("迷惑メール").unwrap(), "&j,dg0TDhMPww6w-");
        assert_eq!(from_utf8("lists/日本語").unwrap(), "lists/&ZeVnLIqe-");
        assert_eq!(from_utf8("inbox").unwrap(), "INBOX");
        assert_eq!(from_utf8("A&B").unwrap(), "A&-B");
        for bad in [
            "",
            "../x",
            "/etc/passwd",
            "a//b",
            "x.lock",
            ".hidden",
            "a\nb",
            "INBOX/x",
        ] {
            assert!(from_utf8(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            &b"../etc/passwd"[..],
            b"/etc",
            b"a/../../b",
            b"a//b",
            b".hidden",
            b"x.lock",
            b"a\0b",
            b"",
            b"INBOX/x",
        ] {
            assert!(check(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(check(&vec![b'a'; 300]).is_err());
        assert_eq!(check(b"inbox").unwrap(), "INBOX");
        assert_eq!(check(b"Spam/old").unwrap(), "Spam/old");
    }
}
