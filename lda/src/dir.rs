//! Mail files opened, created and removed inside an open directory,
//! never through a symbolic link.
//!
//! A mailbox path has a trusted base (the spool, or the user's folders
//! directory, as the configuration names it) and a name beneath it (a
//! folder, possibly `lists/rust`). The base is opened as named; every
//! component of the name is opened relative to the directory before it
//! with `O_NOFOLLOW`, so a link planted anywhere under the base — by a
//! user with a shell, against a server that reads every user's mail with
//! one uid — is refused instead of followed, and nothing can swap a
//! directory for a link between a check and an open (every step works on
//! a descriptor, not a path). Files are created `O_CREAT | O_EXCL`, and an
//! existing file counts as a mailbox only when it is a regular file with
//! one link, owned by whoever opens it.
//!
//! Written with rustix (its `*at` calls) rather than `std::fs`, which
//! has no directory-relative operations.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

/// Where a mailbox lives: a trusted base directory and the mailbox's
/// name beneath it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MboxPath {
    pub base: PathBuf,
    /// Relative: one or more normal components (no `.`, `..` or root).
    pub name: PathBuf,
    /// The base is a spool: the spool's group may be used to create and
    /// remove files there ([`crate::lock::LockOptions::spool`]). Only an
    /// INBOX outside the user's home is.
    pub in_spool: bool,
}

/// What a name beneath a base is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    /// A link, a device, a FIFO: never a mailbox.
    Other,
}

impl MboxPath {
    /// The mailbox `name` under `base`.
    pub fn new(base: impl Into<PathBuf>, name: impl Into<PathBuf>) -> MboxPath {
        MboxPath {
            base: base.into(),
            name: name.into(),
            in_spool: false,
        }
    }

    /// A file named by a full path: its directory is the base.
    pub fn of_file(path: &Path) -> MboxPath {
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        MboxPath::new(base, path.file_name().map(PathBuf::from).unwrap_or_default())
    }

    /// What is under this name now; `None` when nothing (or a directory
    /// on the way is missing).
    pub fn kind(&self) -> io::Result<Option<Kind>> {
        let (dir, name) = match self.open_dir(false) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match dir.stat(&name) {
            Ok(stat) => Ok(Some(match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => Kind::File,
                FileType::Directory => Kind::Directory,
                _ => Kind::Other,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes the name a directory (and the ones above it).
    pub fn create_dir(&self) -> io::Result<()> {
        let (dir, name) = self.open_dir(true)?;
        dir.descend(Path::new(&name), true)?;
        Ok(())
    }

    /// Removes the file or empty directory under this name (a link is
    /// removed itself).
    pub fn remove(&self) -> io::Result<()> {
        let (dir, name) = self.open_dir(false)?;
        if self.kind()? == Some(Kind::Directory) {
            dir.remove_dir(&name)
        } else {
            dir.remove(&name)
        }
    }

    /// Renames this to `to`, making `to`'s missing directories.
    pub fn rename_to(&self, to: &MboxPath) -> io::Result<()> {
        let (from_dir, from_name) = self.open_dir(false)?;
        let (to_dir, to_name) = to.open_dir(true)?;
        from_dir.rename(&from_name, &to_dir, &to_name)
    }

    /// The whole path, for messages and as a key.
    pub fn full(&self) -> PathBuf {
        self.base.join(&self.name)
    }

    /// The directory part of the name (empty for a top-level mailbox) and
    /// its last component.
    fn split(&self) -> io::Result<(&Path, &OsStr)> {
        let file = self
            .name
            .file_name()
            .ok_or_else(|| invalid(&self.full(), "no file name"))?;
        Ok((self.name.parent().unwrap_or(Path::new("")), file))
    }

    /// Opens the directory that holds the mailbox, refusing links below
    /// the base; with `create`, making the missing directories (mode 0700).
    pub fn open_dir(&self, create: bool) -> io::Result<(Dir, OsString)> {
        let (parent, file) = self.split()?;
        let base = match Dir::open(&self.base) {
            Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&self.base)?;
                Dir::open(&self.base)?
            }
            opened => opened?,
        };
        Ok((base.descend(parent, create)?, file.to_owned()))
    }
}

/// An open directory.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn invalid(path: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{}: {why}", path.display()))
}

/// `ELOOP` from `O_NOFOLLOW` said plainly.
fn refuse_links(path: &Path, e: rustix::io::Errno) -> io::Error {
    if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: not a plain file or directory (a symbolic link?): refused",
                path.display()
            ),
        )
    } else {
        at(path, e.into())
    }
}

/// `e` naming the path it happened at.
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Dir {
    /// Opens `path` as named (the configuration's base directories may be
    /// reached through links: the administrator made them).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| at(path, e.into()))?;
        Ok(Dir {
            fd,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory `relative` below this one, each component opened
    /// without following links; with `create`, missing ones are made
    /// (mode 0700).
    pub fn descend(self, relative: &Path, create: bool) -> io::Result<Dir> {
        let mut dir = self;
        for component in relative.components() {
            let Component::Normal(name) = component else {
                return Err(invalid(
                    &dir.path.join(relative),
                    "only plain names below the mail directory",
                ));
            };
            let path = dir.path.join(name);
            if create {
                match rustix::fs::mkdirat(&dir.fd, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(at(&path, e.into())),
                }
            }
            let fd = rustix::fs::openat(
                &dir.fd,
                name,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| refuse_links(&path, e))?;
            dir = Dir { fd, path };
        }
        Ok(dir)
    }

    /// Opens the file `name` here without following a link. `flags` adds
    /// to `O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK` (a FIFO planted under a
    /// mailbox's name must not block the open).
    pub fn open_file(&self, name: &OsStr, flags: OFlags, mode: u32) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| refuse_links(&self.path.join(name), e))?;
        Ok(File::from(fd))
    }

    /// Creates `name` here; fails if anything (a link too) has that name.
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        self.open_file(name, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, mode)
    }

    /// Creates `name` here for writing; a file or link left under that
    /// name (by a writer that crashed) is removed first, never written
    /// through.
    pub fn create_replacing(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        match self.create_new(name, mode) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.remove(name)?;
                self.create_new(name, mode)
            }
            other => other,
        }
    }

    /// What `name` here is, not following a link.
    pub fn stat(&self, name: &OsStr) -> io::Result<Stat> {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| at(&self.path.join(name), e.into()))
    }

    /// Removes the file `name` (a link is removed itself).
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(io::Error::from)
    }

    /// Removes the empty directory `name`.
    pub fn remove_dir(&self, name: &OsStr) -> io::Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR).map_err(io::Error::from)
    }

    /// Renames `from` here to `to` in `target` (replacing a file there).
    pub fn rename(&self, from: &OsStr, target: &Dir, to: &OsStr) -> io::Result<()> {
        rustix::fs::renameat(&self.fd, from, &target.fd, to).map_err(io::Error::from)
    }

    /// Makes the directory's entries durable (after a create or rename).
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd).map_err(io::Error::from)
    }

    /// The directory's owner.
    pub fn owner(&self) -> io::Result<u32> {
        Ok(rustix::fs::fstat(&self.fd)?.st_uid)
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Why an open file is not a mailbox this process may use, if it is not:
/// a regular file, one link, owned by this process's user (root may use
/// any user's).
pub fn check_mailbox(file: &File) -> io::Result<Option<&'static str>> {
    let stat = rustix::fs::fstat(file)?;
    Ok(if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        Some("not a regular file")
    } else if stat.st_nlink != 1 {
        Some("has more than one hard link")
    } else if !owned_by_us(stat.st_uid) {
        Some("belongs to another user")
    } else {
        None
    })
}

/// Whether `uid` is this process's effective user, or it is root.
pub fn owned_by_us(uid: u32) -> bool {
    let euid = rustix::process::geteuid().as_raw();
    euid == 0 || uid == euid
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_below_the_base_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("mail");
        std::fs::create_dir_all(base.join("lists")).unwrap();
        std::fs::write(base.join("lists/rust"), b"").unwrap();
        std::fs::write(dir.path().join("elsewhere"), b"secret").unwrap();
        symlink(dir.path().join("elsewhere"), base.join("steal")).unwrap();
        symlink(base.join("lists"), base.join("linked")).unwrap();

        let (d, name) = MboxPath::new(&base, "lists/rust").open_dir(false).unwrap();
        let file = d.open_file(&name, OFlags::RDWR, 0).unwrap();
        assert_eq!(check_mailbox(&file).unwrap(), None);

        let (d, name) = MboxPath::new(&base, "steal").open_dir(false).unwrap();
        let err = d.open_file(&name, OFlags::RDWR, 0).unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        let err = MboxPath::new(&base, "linked/rust").open_dir(false).unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        assert!(MboxPath::new(&base, "../elsewhere").open_dir(false).is_err());

        // a link under a name being created is replaced, not written through
        symlink(dir.path().join("elsewhere"), base.join("tmp")).unwrap();
        let (d, name) = MboxPath::new(&base, "tmp").open_dir(false).unwrap();
        assert_eq!(
            d.create_new(&name, 0o600).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        drop(d.create_replacing(&name, 0o600).unwrap());
        assert_eq!(std::fs::read(dir.path().join("elsewhere")).unwrap(), b"secret");
    }

    #[test]
    fn hard_links_and_other_files_are_not_mailboxes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"").unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        let d = Dir::open(dir.path()).unwrap();
        let file = d.open_file(OsStr::new("a"), OFlags::RDONLY, 0).unwrap();
        assert_eq!(check_mailbox(&file).unwrap(), Some("has more than one hard link"));
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let file = d.open_file(OsStr::new("sub"), OFlags::RDONLY, 0).unwrap();
        assert_eq!(check_mailbox(&file).unwrap(), Some("not a regular file"));
    }

    #[test]
    fn missing_directories_are_made_beneath_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let path = MboxPath::new(dir.path().join("mail"), "a/b/c");
        let (d, name) = path.open_dir(true).unwrap();
        assert_eq!(name, "c");
        assert_eq!(d.path(), dir.path().join("mail/a/b"));
        assert!(dir.path().join("mail/a/b").is_dir());
    }
}
