//! `lda -d USER [-f SENDER] [-m FOLDER] [--config FILE] < MESSAGE`
//!
//! Exit status (sysexits): 0 delivered (or discarded as configured), 64
//! usage, 67 unknown user, 75 temporary failure (the MTA retries: lock
//! timeout, I/O error, filter failure with `on_error = "tempfail"`), 77 not
//! allowed to deliver to that user, 78 configuration error.

#![no_main]
use std::io::Read;

use lda::args::{self, Parsed};
use lda::config::Config;
use lda::deliver::{self, Outcome, Request};
use lda::users::{self, User};

const EX_USAGE: i32 = 64;
const EX_NOUSER: i32 = 67;
const EX_TEMPFAIL: i32 = 75;
const EX_NOPERM: i32 = 77;
const EX_CONFIG: i32 = 78;

// lda runs once per delivered message, so its start-up is part of every
// delivery. Rust's own `main` wrapper asks glibc for the main thread's
// stack bounds (glibc reads and parses /proc/self/maps to answer) to guard
// against stack overflow; lda recurses nowhere deep, and skipping that
// saves ~0.1 ms of the ~1.8 ms a delivery takes (bench/lda-vs-peers.sh).
// Arguments and the environment still reach std, which glibc hands them at
// load time.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: std::ffi::c_int, _argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    std::process::exit(run());
}

fn run() -> i32 {
    // Writing past `ulimit -f` must fail the write (and be rolled back),
    // not kill us mid-message.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let args = match args::parse(std::env::args_os().skip(1)) {
        Ok(Parsed::Deliver(args)) => args,
        Ok(Parsed::Help) => {
            print!("{}", args::USAGE);
            return 0;
        }
        Ok(Parsed::Version) => {
            println!("lda {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Err(e) => {
            eprintln!("lda: {e}\n{}", args::SYNOPSIS);
            return EX_USAGE;
        }
    };
    let config = match Config::load(args.config.as_deref().map(std::path::Path::new)) {
        Ok(c) => c,
        Err(e) => return fail(EX_CONFIG, &e.to_string()),
    };
    let user = match find_user(&config, args.user.as_deref()) {
        Ok(u) => u,
        Err((code, why)) => return fail(code, &why),
    };
    let spool = match become_user(&config, &user) {
        Ok(spool) => spool,
        Err((code, why)) => return fail(code, &why),
    };
    // most mail fits: one or two reads instead of a dozen doubling ones
    let mut message = Vec::with_capacity(64 << 10);
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut message) {
        return fail(EX_TEMPFAIL, &format!("cannot read the message: {e}"));
    }
    let request = Request {
        user: &user,
        sender: args.sender.as_deref().unwrap_or(""),
        folder: args.folder.as_deref(),
        message: &message,
        spool: spool.as_ref(),
    };
    match deliver::deliver(&config, &request) {
        Ok(outcome) => {
            if let Outcome::Delivered {
                filter_error: Some(e), ..
            } = &outcome
            {
                eprintln!("lda: {}: delivered unfiltered: {e}", user.name);
            }
            if args.verbose {
                match outcome {
                    Outcome::Delivered { mbox, verdict, .. } => {
                        let p = verdict.map_or("unfiltered".to_owned(), |v| format!("{:.6}", v.probability));
                        eprintln!("lda: {}: delivered to {} ({p})", user.name, mbox.display());
                    }
                    Outcome::Discarded { probability } => {
                        eprintln!("lda: {}: discarded as spam ({probability:.6})", user.name);
                    }
                }
            }
            0
        }
        Err(e) => fail(e.exit_code(), &format!("{}: {e}", user.name)),
    }
}

fn fail(code: i32, message: &str) -> i32 {
    eprintln!("lda: {message}");
    code
}

/// The recipient: `-d USER` from the user table (then the system users),
/// or the user running lda.
fn find_user(config: &Config, name: Option<&str>) -> Result<User, (i32, String)> {
    let table = match &config.passwd_file {
        Some(path) => users::read_passwd_file(path).map_err(|e| (EX_CONFIG, e.to_string()))?,
        None => Vec::new(),
    };
    let user = match name {
        Some(name) => table
            .into_iter()
            .find(|u| u.name == name)
            .or_else(|| config.system_users.then(|| users::system_user_by_name(name)).flatten())
            .ok_or((EX_NOUSER, format!("{name}: no such user")))?,
        None => {
            // SAFETY: getuid cannot fail.
            let uid = unsafe { libc::getuid() };
            table
                .into_iter()
                .find(|u| u.uid == Some(uid))
                .or_else(|| users::system_user_by_uid(uid))
                .ok_or((EX_NOUSER, format!("uid {uid}: no such user")))?
        }
    };
    if user.home.as_os_str().is_empty() {
        return Err((EX_CONFIG, format!("{}: no home directory in the user table", user.name)));
    }
    Ok(user)
}

/// Run as root (by an MTA), switch to the recipient; run as a user, deliver
/// only to that user (or to virtual users without a uid of their own).
/// Returns the spool's group, held back for the INBOX's spool, when the
/// INBOX is in a directory that is not the recipient's own.
fn become_user(config: &Config, user: &User) -> Result<Option<users::SpoolGroup>, (i32, String)> {
    // SAFETY: these queries cannot fail.
    let (euid, uid) = unsafe { (libc::geteuid(), libc::getuid()) };
    if euid != 0 {
        return match user.uid {
            Some(u) if u != uid => Err((
                EX_NOPERM,
                format!("uid {uid} may not deliver to {} (uid {u})", user.name),
            )),
            _ => Ok(None),
        };
    }
    let Some(target) = user.uid else {
        return Err((
            EX_CONFIG,
            format!("{}: no uid in the user table; lda will not deliver as root", user.name),
        ));
    };
    if target == 0 {
        return Ok(None);
    }
    let location = user.mail_location(&config.inbox, &config.folders);
    let spool_group = location
        .inbox
        .parent()
        .filter(|dir| users::needs_mail_group(dir, target))
        .and_then(|_| users::group_id("mail"));
    let spool = match users::switch_to(target, user.gid.unwrap_or(target), spool_group) {
        Ok(spool) => spool,
        Err(e) => return Err((EX_TEMPFAIL, format!("cannot switch to uid {target}: {e}"))),
    };
    // So that `~` and the filter's home resolve for the recipient.
    // SAFETY: single-threaded at this point.
    unsafe { std::env::set_var("HOME", &user.home) };
    Ok(spool)
}
