//! The sidecar that keeps a folder's CONDSTORE mod-sequences across
//! restarts: `.NAME.modseq` beside the mbox `NAME` (a dot file: neither
//! we nor lda nor Dovecot list it as a mailbox), written when the last
//! session leaves the folder, as text:
//!
//! ```text
//! mailkit-modseq 1
//! UIDVALIDITY HIGHESTMODSEQ
//! UID MODSEQ FLAGS [KEYWORD…]      (one line per message)
//! ```
//!
//! It is only ever exact: the first mod-sequence handed out beyond the
//! saved HIGHESTMODSEQ removes the file ([`crate::mailbox::Folders`]
//! does), so a server that crashes leaves none, and the folder starts
//! again from the clock — every client resyncs fully, none misses a
//! change. A sidecar that cannot be read for any reason is the same as
//! none. Changes made while no imapd had the folder (lda, Dovecot,
//! mutt) are found by comparing the file with the sidecar's flags.
//!
//! One imapd per mail store: two servers sharing folders would each
//! hand out the numbers after the saved ones.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;

use lda::dir::MboxPath;
use rustix::fs::OFlags;

use crate::mailbox::{Folder, Message};

const MAGIC: &str = "mailkit-modseq 1";
/// Bigger than any sidecar of a real folder (30 bytes a message).
const MAX_SIZE: u64 = 256 << 20;

fn name_of(file: &std::ffi::OsStr) -> OsString {
    let mut name = OsString::from(".");
    name.push(file);
    name.push(".modseq");
    name
}

/// The saved state of the folder at `path`: a folder holding only UIDs,
/// flags, keywords and mod-sequences (and its UIDVALIDITY and
/// HIGHESTMODSEQ), or None.
pub fn read(path: &MboxPath) -> Option<Folder> {
    let (dir, file) = path.open_dir(false).ok()?;
    let sidecar = dir.open_file(&name_of(&file), OFlags::RDONLY, 0).ok()?;
    // a file someone else planted (or linked) here is not ours to believe
    if lda::dir::check_mailbox(&sidecar).ok()?.is_some() {
        return None;
    }
    let mut text = String::new();
    sidecar.take(MAX_SIZE).read_to_string(&mut text).ok()?;
    parse(&text)
}

fn parse(text: &str) -> Option<Folder> {
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let mut head = lines.next()?.split(' ');
    let uid_validity = head.next()?.parse().ok()?;
    let highest_modseq = head.next()?.parse().ok()?;
    let mut messages: Vec<Message> = Vec::new();
    for line in lines {
        let mut words = line.split(' ');
        let uid: u32 = words.next()?.parse().ok()?;
        let modseq: u64 = words.next()?.parse().ok()?;
        let flags: u8 = words.next()?.parse().ok()?;
        if messages.last().is_some_and(|m| m.uid >= uid) || modseq > highest_modseq {
            return None;
        }
        messages.push(Message {
            uid,
            flags,
            keywords: words.map(str::to_owned).collect(),
            recent: false,
            from_line: "".into(),
            content: Default::default(),
            state_block: None,
            modseq,
        });
    }
    Some(Folder {
        uid_validity,
        highest_modseq,
        messages,
        ..Folder::default()
    })
}

/// Writes `folder`'s mod-sequences for `path` (a new file renamed over
/// the old, created without following links).
pub fn write(path: &MboxPath, folder: &Folder) -> std::io::Result<()> {
    let (dir, file) = path.open_dir(false)?;
    let mut text = format!("{MAGIC}\n{} {}\n", folder.uid_validity, folder.highest_modseq);
    for m in &folder.messages {
        let _ = write!(text, "{} {} {}", m.uid, m.modseq, m.flags);
        for k in &m.keywords {
            text.push(' ');
            text.push_str(k);
        }
        text.push('\n');
    }
    let name = name_of(&file);
    let mut tmp = name.clone();
    tmp.push(".tmp");
    let mut out = dir.create_replacing(&tmp, 0o600)?;
    out.write_all(text.as_bytes())?;
    dir.rename(&tmp, &dir, &name)
}

/// Removes the sidecar of `path` (a mod-sequence beyond it was handed
/// out): from now on it would not be exact.
pub fn remove(path: &MboxPath) {
    if let Ok((dir, file)) = path.open_dir(false) {
        let name = name_of(&file);
        if let Err(e) = dir.remove(&name)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(
                "{}: cannot remove {}: {e}",
                path.full().display(),
                name.as_bytes().escape_ascii()
            );
        }
    }
}

/// Removes, from the folder directory at `path`, the sidecars whose
/// folder is gone (removed outside imapd, by a shell's `rm`): they would
/// keep the directory from being deleted. Names are looked up and removed
/// through the directory itself (`unlinkat` follows no link).
pub fn remove_orphans(path: &MboxPath) {
    let Ok((parent, name)) = path.open_dir(false) else {
        return;
    };
    let Ok(dir) = parent.descend(std::path::Path::new(&name), false) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir.path()) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(folder) = file
            .as_bytes()
            .strip_prefix(b".")
            .and_then(|f| f.strip_suffix(b".modseq"))
        else {
            continue;
        };
        let gone = matches!(
            dir.stat(std::ffi::OsStr::from_bytes(folder)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        );
        if !folder.is_empty() && gone {
            let _ = dir.remove(&file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = MboxPath::new(dir.path(), "inbox");
        std::fs::write(path.full(), b"").unwrap();
        let mut folder = Folder {
            uid_validity: 7,
            highest_modseq: 12,
            ..Folder::default()
        };
        for (uid, modseq, keywords) in [(1, 3, vec![]), (4, 12, vec!["$Junk".to_owned(), "work".to_owned()])] {
            folder.messages.push(Message {
                uid,
                flags: 5,
                keywords,
                recent: false,
                from_line: "".into(),
                content: Default::default(),
                state_block: None,
                modseq,
            });
        }
        write(&path, &folder).unwrap();
        let back = read(&path).unwrap();
        assert_eq!((back.uid_validity, back.highest_modseq), (7, 12));
        let summary = |f: &Folder| {
            f.messages
                .iter()
                .map(|m| (m.uid, m.modseq, m.flags, m.keywords.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(summary(&back), summary(&folder));
        remove(&path);
        assert!(read(&path).is_none());
        for broken in [
            "",
            "mailkit-modseq 2\n1 2\n",
            "mailkit-modseq 1\n1\n",
            "mailkit-modseq 1\n1 5\n2 9 0\n",
            "mailkit-modseq 1\n1 5\n2 1 0\n2 1 0\n",
            "mailkit-modseq 1\n1 5\nx 1 0\n",
        ] {
            assert!(parse(broken).is_none(), "{broken:?}");
        }
    }
}
