//! Errors and the sysexits codes they map to.
//!
//! Exit codes 0 and 1 are verdicts (spam / clean), so an error must never
//! use them: every error carries one of the sysexits(3) codes below.

use std::fmt;
use std::path::{Path, PathBuf};

/// sysexits(3) codes used by every program of the toolkit (bsfilter, lda,
/// imapd, mtad): this is the one list.
pub mod exit {
    /// The command line was wrong.
    pub const USAGE: i32 = 64;
    /// The input data was malformed.
    pub const DATAERR: i32 = 65;
    /// The user named does not exist.
    pub const NOUSER: i32 = 67;
    /// Internal software error.
    pub const SOFTWARE: i32 = 70;
    /// An operating-system error (cannot listen, cannot start threads).
    pub const OSERR: i32 = 71;
    /// An I/O error (reading, writing, a corrupt database).
    pub const IOERR: i32 = 74;
    /// A temporary failure (a lock held past its timeout): try again later.
    pub const TEMPFAIL: i32 = 75;
    /// Not allowed (delivering to another user).
    pub const NOPERM: i32 = 77;
    /// Configuration error.
    pub const CONFIG: i32 = 78;
}

#[derive(Debug)]
pub enum Error {
    /// Bad command line or option value.
    Usage(String),
    /// Bad configuration file.
    Config {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// An input file could not be read.
    Input { path: PathBuf, source: std::io::Error },
    /// Some inputs could not be read (each was reported when skipped).
    InputsSkipped(usize),
    /// Malformed input data (e.g. a bad export file line).
    Data(String),
    /// Writing output failed.
    Output(std::io::Error),
    /// The token database is busy past the busy timeout.
    Locked { path: PathBuf },
    /// The token database is corrupt, unreadable or unwritable.
    Database { path: PathBuf, message: String },
    /// The morphological tokenizer's dictionary is missing or unreadable.
    Dictionary(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The sysexits code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Config { .. } => exit::CONFIG,
            Error::Input { .. } | Error::InputsSkipped(_) => exit::IOERR,
            Error::Data(_) => exit::DATAERR,
            Error::Output(_) => exit::IOERR,
            Error::Locked { .. } => exit::TEMPFAIL,
            Error::Database { .. } => exit::IOERR,
            Error::Dictionary(_) => exit::CONFIG,
        }
    }

    /// Wraps a SQLite error on the database at `path`, telling "busy past the
    /// timeout" (temporary) apart from everything else.
    pub fn from_sqlite(path: &Path, err: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode;
        if let rusqlite::Error::SqliteFailure(e, _) = &err
            && matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        {
            return Error::Locked { path: path.to_owned() };
        }
        Error::Database {
            path: path.to_owned(),
            message: err.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m} (try `bsfilter --help`)"),
            Error::Config { path, line, message } => {
                write!(f, "{}:{line}: {message}", path.display())
            }
            Error::Input { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            Error::InputsSkipped(n) => write!(f, "{n} input(s) could not be read and were skipped"),
            Error::Data(m) => write!(f, "{m}"),
            Error::Output(e) => write!(f, "cannot write output: {e}"),
            Error::Locked { path } => write!(
                f,
                "token database {} is busy (locked by another process past the timeout); try again later",
                path.display()
            ),
            Error::Database { path, message } => write!(
                f,
                "token database {}: {message}; check its permissions, or move it away and retrain (or --import-* an export)",
                path.display()
            ),
            Error::Dictionary(m) => write!(f, "Japanese dictionary: {m}"),
        }
    }
}

impl std::error::Error for Error {}
