//! One delivery: classify, mark, choose the folder, append whole or not at
//! all.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use bsfilter::headers;
use bsfilter::{Filter, Verdict};

use crate::config::Config;
use crate::dir::MboxPath;
use crate::folders::{self, Layout};
use crate::lock::{LockError, LockOptions, LockTimeouts, LockedMbox};
use crate::users::{SpoolGroup, User};
use bsfilter::mbox;

/// What to deliver, to whom.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub user: &'a User,
    /// Envelope sender (empty for bounces).
    pub sender: &'a str,
    /// `-m FOLDER`: where clean mail goes instead of INBOX.
    pub folder: Option<&'a str>,
    pub message: &'a [u8],
    /// The spool's group (from [`crate::users::switch_to`]), for an INBOX
    /// in a spool the user cannot write.
    pub spool: Option<&'a SpoolGroup>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered {
        mbox: PathBuf,
        /// `None` when the message was not filtered.
        verdict: Option<Verdict>,
        /// Why filtering failed, when it did.
        filter_error: Option<String>,
    },
    /// Spam above `discard_above`: dropped on purpose.
    Discarded { probability: f64 },
}

#[derive(Debug)]
pub enum DeliveryError {
    /// `-m` named a folder outside the user's mail.
    BadFolder(String),
    /// The mailbox stayed locked past the timeout.
    Locked(PathBuf),
    /// Reading or writing the mailbox failed; it was rolled back.
    Io(PathBuf, std::io::Error),
    /// The mailbox's name leads to something else (a link, another
    /// user's file): nothing was written.
    Refused(PathBuf, &'static str),
    /// Filtering failed and the configuration says to try again later.
    Filter(bsfilter::Error),
}

impl DeliveryError {
    /// The sysexits code: a bad folder name is the caller's mistake (64);
    /// everything else may work next time (75, the MTA retries).
    pub fn exit_code(&self) -> i32 {
        match self {
            DeliveryError::BadFolder(_) => bsfilter::error::exit::USAGE,
            _ => bsfilter::error::exit::TEMPFAIL,
        }
    }
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeliveryError::BadFolder(why) => write!(f, "bad folder name: {why}"),
            DeliveryError::Locked(p) => write!(f, "{} stayed locked; try again later", p.display()),
            DeliveryError::Io(p, e) => write!(f, "cannot append to {}: {e} (nothing was written)", p.display()),
            DeliveryError::Refused(p, why) => write!(f, "refusing {}: it {why} (nothing was written)", p.display()),
            DeliveryError::Filter(e) => write!(f, "filter failed: {e}"),
        }
    }
}

pub fn deliver(config: &Config, request: &Request<'_>) -> Result<Outcome, DeliveryError> {
    let folder = match request.folder.map(folders::from_utf8).transpose() {
        Ok(folder) => folder,
        Err(folders::BadName(why)) => {
            return Err(DeliveryError::BadFolder(format!(
                "{:?}: {why}",
                request.folder.unwrap_or("")
            )));
        }
    };
    let settings = &config.filter;
    let prefix = &settings.header_prefix;

    let (filter, verdict, filter_error) = if settings.enabled {
        match crate::filter::for_user(config, request.user)
            .and_then(|filter| classify(&filter, request).map(|r| (filter, r)))
        {
            Ok((filter, (analyzed, verdict, read_databases))) => {
                (Some((filter, analyzed, read_databases)), Some(verdict), None)
            }
            Err(e) if settings.tempfail_on_error => return Err(DeliveryError::Filter(e)),
            Err(e) => (None, None, Some(e.to_string())),
        }
    } else {
        (None, None, None)
    };

    if let (Some(v), Some(limit)) = (verdict, settings.discard_above)
        && v.is_spam
        && v.probability >= limit
    {
        return Ok(Outcome::Discarded {
            probability: v.probability,
        });
    }

    // Verdict headers from outside are removed whatever happens, so a
    // sender cannot forge one.
    let flag_field = format!("X-{prefix}-Flag");
    let probability_field = format!("X-{prefix}-Probability");
    let error_field = format!("X-{prefix}-Filter-Error");
    let (probability, not_filtered);
    let added: Vec<(&str, &str)> = match (verdict, &filter_error) {
        (Some(v), _) => {
            probability = format!("{:.6}", v.probability);
            vec![
                (&flag_field, if v.is_spam { "Yes" } else { "No" }),
                (&probability_field, &probability),
            ]
        }
        (None, Some(e)) => {
            not_filtered = format!("not filtered: {}", one_line(e));
            vec![(&error_field, &not_filtered)]
        }
        (None, None) => Vec::new(),
    };
    let message = headers::set_fields(
        request.message,
        &[&flag_field, &probability_field, &error_field],
        &added,
    );

    let layout = Layout::of(request.user, config);
    let mbox_path = match (verdict, folder.as_deref()) {
        (Some(v), _) if v.is_spam => layout.path(&config.spam_folder),
        (_, Some(folder)) => layout.path(folder),
        _ => layout.path("INBOX"),
    };
    let options = LockOptions {
        timeouts: LockTimeouts {
            wait: config.lock_timeout,
            stale_after: config.dotlock_stale,
        },
        spool: request.spool,
        create: true,
    };
    append(
        &mbox_path,
        &mbox::from_line(request.sender, SystemTime::now()),
        &message,
        options,
    )?;

    if settings.auto_train
        && let (Some((filter, analyzed, _)), Some(v)) = (&filter, verdict)
    {
        // The mail is delivered; a training failure only costs a lesson.
        if let Err(e) = filter
            .open_user_db()
            .and_then(|mut db| filter.train_verdicts(&mut db, &[(analyzed, v)]))
        {
            eprintln!("lda: {}: auto-training failed: {e}", request.user.name);
        }
    } else if let Some((filter, _, true)) = &filter {
        // The next delivery classifies from the snapshot instead of
        // opening SQLite (auto-training would remove it at once). The mail
        // is delivered; without a snapshot the next one is only slower.
        if let Err(e) = filter.write_snapshots() {
            eprintln!("lda: {}: writing the token snapshot failed: {e}", request.user.name);
        }
    }
    Ok(Outcome::Delivered {
        mbox: mbox_path.full(),
        verdict,
        filter_error,
    })
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The verdict, and whether a database was read without a snapshot.
fn classify(filter: &Filter, request: &Request<'_>) -> bsfilter::Result<(bsfilter::Analyzed, Verdict, bool)> {
    let sender = (!request.sender.is_empty()).then_some(request.sender);
    let analyzed = filter.analyze(request.message, sender);
    let classifier = filter.classifier(1)?;
    let verdict = classifier.classify(&[&analyzed])?[0];
    Ok((analyzed, verdict, classifier.read_databases()))
}

/// Appends one message to the mbox at `mbox` under the mailbox locks:
/// everything is written and synced, or the file is cut back to its old
/// length. Missing directories (mode 0700) and the mbox (0600) are made.
pub fn append(mbox: &MboxPath, from_line: &str, message: &[u8], options: LockOptions<'_>) -> Result<(), DeliveryError> {
    let path = mbox.full();
    let io = |e: std::io::Error| DeliveryError::Io(path.clone(), e);
    let mut locked = LockedMbox::lock(mbox, options).map_err(|e| match e {
        LockError::Timeout(p) => DeliveryError::Locked(p),
        LockError::Io(p, e) => DeliveryError::Io(p, e),
        LockError::Refused(p, why) => DeliveryError::Refused(p, why),
    })?;
    let original_len = locked.file().metadata().map_err(io)?.len();
    let mut data = Vec::new();
    if original_len > 0 {
        // a file that does not end a line (written by something else)
        // gets its line ended, or our From line would not start one
        let mut last = [0u8];
        let file = locked.file();
        file.seek(SeekFrom::Start(original_len - 1)).map_err(io)?;
        file.read_exact(&mut last).map_err(io)?;
        if last[0] != b'\n' {
            data.push(b'\n');
        }
    }
    mbox::encode(from_line, message, &mut data);
    locked
        .announce_append(original_len, &data[..data.len().min(80)])
        .map_err(io)?;
    let written = (|| {
        let file = locked.file();
        file.seek(SeekFrom::Start(original_len))?;
        file.write_all(&data)?;
        file.sync_data()
    })();
    if let Err(e) = written {
        let file = locked.file();
        let rollback = file.set_len(original_len).and_then(|()| file.sync_data());
        if let Err(r) = rollback {
            // The dotlock stays with the recovery record, so the next
            // locker cuts the mbox back.
            std::mem::forget(locked);
            return Err(io(std::io::Error::other(format!("{e}; rolling back failed too: {r}"))));
        }
        return Err(io(e));
    }
    Ok(())
}
