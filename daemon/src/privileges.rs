//! Started as root, a server binds its ports and then becomes its service
//! user (`run_as`); the `mail` group is kept only as the saved group ID,
//! for the spool ([`lda::users::SpoolGroup`]). Also: the open-files limit
//! raised to its hard maximum, since every client is a descriptor
//! (systemd's default soft limit, 1,024, is reached by ~1,000 idle
//! clients).

use lda::users::SpoolGroup;

/// Why the service user could not be taken on.
#[derive(Debug)]
pub enum PrivilegeError {
    /// `run_as` given, but not started as root.
    NotRoot,
    NoSuchUser(String),
    Switch(String, std::io::Error),
}

impl std::fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivilegeError::NotRoot => write!(f, "run_as needs the server to be started as root"),
            PrivilegeError::NoSuchUser(name) => write!(f, "run_as = {name:?}: no such user"),
            PrivilegeError::Switch(name, e) => write!(f, "cannot switch to {name}: {e}"),
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// Whether the process runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Becomes the system user `run_as` (with `keep_spool_group`, holding the
/// `mail` group back for the spool). Without `run_as`, stays who it is
/// (root is warned about: files would be root's).
pub fn drop_to(run_as: Option<&str>, keep_spool_group: bool) -> Result<Option<SpoolGroup>, PrivilegeError> {
    match run_as {
        None => {
            if is_root() {
                tracing::warn!("running as root: set run_as to the user that owns the mail");
            }
            Ok(None)
        }
        Some(_) if !is_root() => Err(PrivilegeError::NotRoot),
        Some(name) => {
            let user = lda::users::system_user_by_name(name).ok_or_else(|| PrivilegeError::NoSuchUser(name.into()))?;
            let uid = user.uid.ok_or_else(|| PrivilegeError::NoSuchUser(name.into()))?;
            let spool = keep_spool_group.then(|| lda::users::group_id("mail")).flatten();
            let group = lda::users::switch_to(uid, user.gid.unwrap_or(uid), spool)
                .map_err(|e| PrivilegeError::Switch(name.into(), e))?;
            tracing::info!("running as {name} (uid {uid})");
            Ok(group)
        }
    }
}

/// Raises the soft limit on open files to the hard limit; returns it.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(limit.current.unwrap_or(u64::MAX))
}
