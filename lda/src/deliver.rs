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

/// Why a whole delivery ([`as_recipient`]) did not happen: the sysexits
/// code lda exits with, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

/// What lda does for one message, after its command line: find the
/// recipient (`None`: the invoking user), become them (when root), read
/// the message from `input`, deliver it. [`all_as_recipient`] with one.
pub fn as_recipient(
    config: &Config,
    user: Option<&str>,
    sender: &str,
    folder: Option<&str>,
    input: &mut dyn Read,
) -> Result<(User, Outcome), Failure> {
    let (user, mut results) = all_as_recipient(config, user, folder, &mut [(sender, input)])?;
    let outcome = results.pop().expect("one result per message")?;
    Ok((user, outcome))
}

/// The field mtad adds to a message whose sender's domain asks, by its
/// DMARC policy `p=quarantine`, that mail failing it be quarantined: lda
/// files such a message in the Spam folder whatever the filter says (mtad
/// removes the field from mail that comes from outside, so only the site
/// sets it).
pub const QUARANTINE_FIELD: &str = "X-Mailkit-Quarantine";

/// lda's work for several messages (sender, input) to one recipient:
/// find them, become them (when root; for the whole process: call it
/// only in a process of its own, single-threaded), read each message,
/// deliver them all ([`deliver_all`]). lda's binary does it for one
/// message; mtad's delivery helper in a child forked for each batch.
/// `Err` when the recipient cannot be found or become (every message
/// fails so); otherwise each message's own result.
pub fn all_as_recipient(
    config: &Config,
    user: Option<&str>,
    folder: Option<&str>,
    messages: &mut [(&str, &mut dyn Read)],
) -> Result<(User, Vec<Result<Outcome, Failure>>), Failure> {
    let failure = |code: i32, message: String| Failure { code, message };
    let user = crate::users::find_recipient(config, user).map_err(|e| failure(e.exit_code(), e.to_string()))?;
    let spool = crate::users::become_recipient(config, &user).map_err(|e| failure(e.exit_code(), e.to_string()))?;
    let mut read: Vec<Result<Vec<u8>, Failure>> = Vec::with_capacity(messages.len());
    for (_, input) in messages.iter_mut() {
        // most mail fits: one or two reads instead of a dozen doubling ones
        let mut message = Vec::with_capacity(64 << 10);
        read.push(match input.read_to_end(&mut message) {
            Ok(_) => Ok(message),
            Err(e) => Err(failure(
                bsfilter::error::exit::TEMPFAIL,
                format!("cannot read the message: {e}"),
            )),
        });
    }
    let requests: Vec<Request<'_>> = messages
        .iter()
        .zip(&read)
        .filter_map(|((sender, _), message)| {
            let (message, from_line_sender) = without_from_line(message.as_ref().ok()?);
            Some(Request {
                user: &user,
                sender: if sender.is_empty() { from_line_sender } else { sender },
                folder,
                message,
                spool: spool.as_ref(),
            })
        })
        .collect();
    let mut delivered = deliver_all(config, &requests).into_iter();
    let results = read
        .iter()
        .map(|message| match message {
            Err(e) => Err(e.clone()),
            Ok(_) => delivered
                .next()
                .expect("one result per request")
                .map_err(|e| failure(e.exit_code(), format!("{}: {e}", user.name))),
        })
        .collect();
    Ok((user, results))
}

/// The message without the mbox `From ` line it may start with, and that
/// line's sender (empty without one). procmail and Postfix's local, run
/// from a `.forward`, hand a command the message after such a line; lda
/// writes its own, and kept the other inside as `>From …` (the header
/// then began with a line no reader takes for a field).
fn without_from_line(message: &[u8]) -> (&[u8], &str) {
    let end = message
        .iter()
        .position(|&b| b == b'\n')
        .map_or(message.len(), |i| i + 1);
    let line = &message[..end];
    if !mbox::is_from_line(line) {
        return (message, "");
    }
    let sender = mbox::envelope_sender(line)
        .filter(|s| *s != "MAILER-DAEMON")
        .unwrap_or("");
    (&message[end..], sender)
}

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
    Filter(String),
    /// The message would take the user past their quota (the user
    /// table's `quota_rule`): refused (exit 77, as Dovecot's `lda -e`), or
    /// with `quota_full_tempfail` put off (75).
    OverQuota { detail: String, tempfail: bool },
}

impl DeliveryError {
    /// The same error again (for each of the messages it stopped).
    fn duplicate(&self) -> DeliveryError {
        match self {
            DeliveryError::BadFolder(s) => DeliveryError::BadFolder(s.clone()),
            DeliveryError::Locked(p) => DeliveryError::Locked(p.clone()),
            DeliveryError::Io(p, e) => DeliveryError::Io(p.clone(), std::io::Error::new(e.kind(), e.to_string())),
            DeliveryError::Refused(p, why) => DeliveryError::Refused(p.clone(), why),
            DeliveryError::Filter(s) => DeliveryError::Filter(s.clone()),
            DeliveryError::OverQuota { detail, tempfail } => DeliveryError::OverQuota {
                detail: detail.clone(),
                tempfail: *tempfail,
            },
        }
    }

    /// The sysexits code: a bad folder name is the caller's mistake (64);
    /// a full mailbox is refused (77) unless configured otherwise;
    /// everything else may work next time (75, the MTA retries).
    pub fn exit_code(&self) -> i32 {
        match self {
            DeliveryError::BadFolder(_) => bsfilter::error::exit::USAGE,
            DeliveryError::OverQuota { tempfail: false, .. } => bsfilter::error::exit::NOPERM,
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
            DeliveryError::OverQuota { detail, .. } => write!(f, "mailbox full: {detail}"),
        }
    }
}

/// Delivers one message: [`deliver_all`] with one request.
pub fn deliver(config: &Config, request: &Request<'_>) -> Result<Outcome, DeliveryError> {
    deliver_all(config, std::slice::from_ref(request))
        .pop()
        .expect("one result per request")
}

/// Delivers several messages, each as [`deliver`] would, with one result
/// for each in order — but each user's filter is opened once and scores
/// them together, and each mailbox is locked once and synced once for all
/// of its messages: delivering to one mailbox is bounded by its lock and
/// its sync (0.7 ms here), so mail arriving faster than that is appended
/// a batch at a time (mtad's delivery helper sends what has queued up).
pub fn deliver_all(config: &Config, requests: &[Request<'_>]) -> Vec<Result<Outcome, DeliveryError>> {
    let mut results: Vec<Option<Result<Outcome, DeliveryError>>> = requests.iter().map(|_| None).collect();
    for i in 0..requests.len() {
        if results[i].is_some() {
            continue;
        }
        let same: Vec<usize> = (i..requests.len())
            .filter(|&j| results[j].is_none() && requests[j].user.name == requests[i].user.name)
            .collect();
        let group: Vec<Request<'_>> = same.iter().map(|&j| requests[j]).collect();
        for (j, result) in same.into_iter().zip(deliver_for_user(config, &group)) {
            results[j] = Some(result);
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every request answered"))
        .collect()
}

/// A message made ready for its mailbox: scored, marked, its folder
/// chosen.
struct Prepared {
    mbox: MboxPath,
    from_line: String,
    message: Vec<u8>,
    verdict: Option<Verdict>,
    filter_error: Option<String>,
}

/// The verdicts of a user's messages (None: not filtered), why filtering
/// failed if it did, and the filter with what it analyzed (for training
/// and snapshots).
type Scored = (
    Vec<Option<Verdict>>,
    Option<String>,
    Option<(Filter, Vec<bsfilter::Analyzed>, bool)>,
);

fn score(config: &Config, requests: &[Request<'_>]) -> Scored {
    if !config.filter.enabled {
        return (vec![None; requests.len()], None, None);
    }
    let scored = crate::filter::for_user(config, requests[0].user).and_then(|filter| {
        let analyzed: Vec<bsfilter::Analyzed> = requests
            .iter()
            .map(|r| filter.analyze(r.message, (!r.sender.is_empty()).then_some(r.sender)))
            .collect();
        let classifier = filter.classifier(analyzed.len())?;
        let verdicts = classifier.classify(&analyzed.iter().collect::<Vec<_>>())?;
        let read_databases = classifier.read_databases();
        drop(classifier);
        Ok((verdicts, (filter, analyzed, read_databases)))
    });
    match scored {
        Ok((verdicts, filtered)) => (verdicts.into_iter().map(Some).collect(), None, Some(filtered)),
        Err(e) => (vec![None; requests.len()], Some(e.to_string()), None),
    }
}

/// Takes out of `prepared` the messages that would take `user` past their
/// quota, in order (a batch fills the mailbox up to its limit, then the
/// rest are refused), with their results. What the files hold is read
/// once ([`Layout::usage`]).
fn refuse_over_quota(
    config: &Config,
    user: &User,
    layout: &Layout,
    prepared: &mut Vec<(usize, Prepared)>,
    results: &mut [Option<Result<Outcome, DeliveryError>>],
) {
    let quota = user.quota;
    if prepared.is_empty() || (quota.storage.is_none() && quota.messages.is_none()) {
        return;
    }
    let (mut bytes, mut messages) = layout.usage(quota.messages.is_some());
    prepared.retain(|(i, p)| {
        // what the append adds to the file: the From line, the message,
        // the blank line after it
        let size = (p.from_line.len() + p.message.len() + 3) as u64;
        let detail = match (quota.storage, quota.messages) {
            (Some(limit), _) if bytes + size > limit => {
                format!(
                    "{} KB used of {} KB, and the message is {} KB",
                    bytes / 1024,
                    limit / 1024,
                    size.div_ceil(1024)
                )
            }
            (_, Some(limit)) if messages + 1 > limit => format!("{messages} messages, the quota's limit"),
            _ => {
                bytes += size;
                messages += 1;
                return true;
            }
        };
        results[*i] = Some(Err(DeliveryError::OverQuota {
            detail,
            tempfail: config.quota_full_tempfail,
        }));
        false
    });
}

/// One user's messages (`requests` all for the same user).
fn deliver_for_user(config: &Config, requests: &[Request<'_>]) -> Vec<Result<Outcome, DeliveryError>> {
    let settings = &config.filter;
    let (verdicts, filter_error, filtered) = score(config, requests);
    let layout = Layout::of(requests[0].user, config);
    let mut results: Vec<Option<Result<Outcome, DeliveryError>>> = requests.iter().map(|_| None).collect();
    let mut prepared: Vec<(usize, Prepared)> = Vec::new();
    for (i, (request, verdict)) in requests.iter().zip(verdicts).enumerate() {
        let folder = match request.folder.map(folders::from_utf8).transpose() {
            Ok(folder) => folder,
            Err(folders::BadName(why)) => {
                let name = request.folder.unwrap_or("");
                results[i] = Some(Err(DeliveryError::BadFolder(format!("{name:?}: {why}"))));
                continue;
            }
        };
        if let Some(e) = &filter_error
            && settings.tempfail_on_error
        {
            results[i] = Some(Err(DeliveryError::Filter(e.clone())));
            continue;
        }
        if let (Some(v), Some(limit)) = (verdict, settings.discard_above)
            && v.is_spam
            && v.probability >= limit
        {
            results[i] = Some(Ok(Outcome::Discarded {
                probability: v.probability,
            }));
            continue;
        }
        let quarantined = bsfilter::headers::has_field(request.message, QUARANTINE_FIELD);
        let mbox = match (verdict, folder.as_deref()) {
            (Some(v), _) if v.is_spam => layout.path(&config.spam_folder),
            _ if quarantined => layout.path(&config.spam_folder),
            (_, Some(folder)) => layout.path(folder),
            _ => layout.path("INBOX"),
        };
        prepared.push((
            i,
            Prepared {
                mbox,
                from_line: mbox::from_line(request.sender, SystemTime::now()),
                message: mark(
                    &settings.header_prefix,
                    request.message,
                    verdict,
                    filter_error.as_deref(),
                ),
                verdict,
                filter_error: filter_error.clone(),
            },
        ));
    }
    refuse_over_quota(config, requests[0].user, &layout, &mut prepared, &mut results);
    let options = LockOptions {
        timeouts: LockTimeouts {
            wait: config.lock_timeout,
            stale_after: config.dotlock_stale,
        },
        spool: requests[0].spool,
        create: true,
    };
    // each mailbox once, its messages in their order
    let mut delivered: Vec<usize> = Vec::new();
    let mut left: Vec<usize> = (0..prepared.len()).collect();
    while let Some(&k) = left.first() {
        let mbox = &prepared[k].1.mbox;
        let (these, rest): (Vec<usize>, Vec<usize>) = left.iter().partition(|&&j| prepared[j].1.mbox == *mbox);
        left = rest;
        let items: Vec<(&str, &[u8])> = these
            .iter()
            .map(|&j| (prepared[j].1.from_line.as_str(), prepared[j].1.message.as_slice()))
            .collect();
        for (&j, appended) in these.iter().zip(append_all(mbox, &items, options)) {
            let (i, p) = &prepared[j];
            results[*i] = Some(appended.map(|()| {
                delivered.push(*i);
                Outcome::Delivered {
                    mbox: p.mbox.full(),
                    verdict: p.verdict,
                    filter_error: p.filter_error.clone(),
                }
            }));
        }
    }
    if let Some((filter, analyzed, read_databases)) = &filtered {
        let user = &requests[0].user.name;
        if settings.auto_train {
            let lessons: Vec<(&bsfilter::Analyzed, Verdict)> = prepared
                .iter()
                .filter(|(i, _)| delivered.contains(i))
                .filter_map(|(i, p)| p.verdict.map(|v| (&analyzed[*i], v)))
                .collect();
            // The mail is delivered; a training failure only costs a lesson.
            if let Err(e) = filter
                .open_user_db()
                .and_then(|mut db| filter.train_verdicts(&mut db, &lessons))
            {
                eprintln!("lda: {user}: auto-training failed: {e}");
            }
        } else if *read_databases {
            // The next delivery classifies from the snapshot instead of
            // opening SQLite (auto-training would remove it at once). The
            // mail is delivered; without a snapshot the next one is only
            // slower.
            if let Err(e) = filter.write_snapshots() {
                eprintln!("lda: {user}: writing the token snapshot failed: {e}");
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every message answered"))
        .collect()
}

/// The message with our verdict headers. Verdict headers from outside are
/// removed whatever happens, so a sender cannot forge one.
fn mark(prefix: &str, message: &[u8], verdict: Option<Verdict>, filter_error: Option<&str>) -> Vec<u8> {
    let flag_field = format!("X-{prefix}-Flag");
    let probability_field = format!("X-{prefix}-Probability");
    let error_field = format!("X-{prefix}-Filter-Error");
    let (probability, not_filtered);
    let added: Vec<(&str, &str)> = match (verdict, filter_error) {
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
    headers::set_fields(message, &[&flag_field, &probability_field, &error_field], &added)
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Appends one message to the mbox at `mbox` under the mailbox locks:
/// everything is written and synced, or the file is cut back to its old
/// length. Missing directories (mode 0700) and the mbox (0600) are made.
pub fn append(mbox: &MboxPath, from_line: &str, message: &[u8], options: LockOptions<'_>) -> Result<(), DeliveryError> {
    append_all(mbox, &[(from_line, message)], options)
        .pop()
        .expect("one result per message")
}

/// Appends messages (From line, message) to the mbox at `mbox`, as
/// [`append`] would one by one, under one lock and with one sync: all of
/// them at once, and if that fails, cut back and one at a time, so that
/// one message that cannot be written (over a quota) fails alone.
pub fn append_all(
    mbox: &MboxPath,
    messages: &[(&str, &[u8])],
    options: LockOptions<'_>,
) -> Vec<Result<(), DeliveryError>> {
    let path = mbox.full();
    let io = |e: std::io::Error| DeliveryError::Io(path.clone(), e);
    let each = |e: &DeliveryError| messages.iter().map(|_| Err(e.duplicate())).collect::<Vec<_>>();
    let mut locked = match LockedMbox::lock(mbox, options) {
        Ok(locked) => locked,
        Err(e) => {
            return each(&match e {
                LockError::Timeout(p) => DeliveryError::Locked(p),
                LockError::Io(p, e) => DeliveryError::Io(p, e),
                LockError::Refused(p, why) => DeliveryError::Refused(p, why),
            });
        }
    };
    let mut end = match mailbox_end(&mut locked) {
        Ok(end) => end,
        Err(e) => return each(&io(e)),
    };
    let encode = |(from_line, message): &(&str, &[u8]), data: &mut Vec<u8>| mbox::encode(from_line, message, data);
    // all at once
    let mut data = end.newline.to_vec();
    for m in messages {
        encode(m, &mut data);
    }
    match write_synced(&mut locked, end.len, &data) {
        Ok(()) => return messages.iter().map(|_| Ok(())).collect(),
        Err(Written::CutBack(e)) if messages.len() == 1 => return vec![Err(io(e))],
        Err(Written::CutBack(_)) => {}
        Err(Written::NotCutBack(e)) => {
            // The dotlock stays with the recovery record, so the next
            // locker cuts the mbox back.
            std::mem::forget(locked);
            return each(&io(e));
        }
    }
    // one at a time
    let mut results = Vec::with_capacity(messages.len());
    for m in messages {
        let mut data = end.newline.to_vec();
        encode(m, &mut data);
        match write_synced(&mut locked, end.len, &data) {
            Ok(()) => {
                end = MailboxEnd {
                    len: end.len + data.len() as u64,
                    newline: &[],
                };
                results.push(Ok(()));
            }
            Err(Written::CutBack(e)) => results.push(Err(io(e))),
            Err(Written::NotCutBack(e)) => {
                std::mem::forget(locked);
                let e = io(e);
                results.extend(messages[results.len()..].iter().map(|_| Err(e.duplicate())));
                return results;
            }
        }
    }
    results
}

/// Where the mailbox ends, and what must come first to end its last line.
struct MailboxEnd {
    len: u64,
    newline: &'static [u8],
}

fn mailbox_end(locked: &mut LockedMbox) -> std::io::Result<MailboxEnd> {
    let len = locked.file().metadata()?.len();
    let mut newline: &'static [u8] = &[];
    if len > 0 {
        // a file that does not end a line (written by something else)
        // gets its line ended, or our From line would not start one
        let mut last = [0u8];
        let file = locked.file();
        file.seek(SeekFrom::Start(len - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            newline = b"\n";
        }
    }
    Ok(MailboxEnd { len, newline })
}

enum Written {
    /// Not written; the mailbox is as it was.
    CutBack(std::io::Error),
    /// Not written, and cutting back failed too.
    NotCutBack(std::io::Error),
}

/// Writes `data` at `at` (the mailbox's end) and syncs it, announced in
/// the dotlock first; on failure cuts the file back to `at`.
fn write_synced(locked: &mut LockedMbox, at: u64, data: &[u8]) -> Result<(), Written> {
    locked
        .announce_append(at, &data[..data.len().min(80)])
        .map_err(Written::CutBack)?;
    let written = (|| {
        let file = locked.file();
        file.seek(SeekFrom::Start(at))?;
        file.write_all(data)?;
        file.sync_data()
    })();
    let Err(e) = written else {
        return Ok(());
    };
    let file = locked.file();
    match file.set_len(at).and_then(|()| file.sync_data()) {
        Ok(()) => Err(Written::CutBack(e)),
        Err(r) => Err(Written::NotCutBack(std::io::Error::other(format!(
            "{e}; rolling back failed too: {r}"
        )))),
    }
}
