//! `lda -d USER [-f SENDER] [-m FOLDER] [--config FILE] < MESSAGE`
//!
//! Exit status (sysexits): 0 delivered (or discarded as configured), 64
//! usage, 67 unknown user, 75 temporary failure (the MTA retries: lock
//! timeout, I/O error, filter failure with `on_error = "tempfail"`), 77 not
//! allowed to deliver to that user, 78 configuration error.

#![no_main]

// the per-message programs' own `log`/`exp` (link/libm_symbols.rs)
#[path = "../../link/libm_symbols.rs"]
mod libm_symbols;

use bsfilter::error::exit::{CONFIG as EX_CONFIG, USAGE as EX_USAGE};
use lda::args::{self, Parsed};
use lda::config::Config;
use lda::deliver::{self, Outcome};

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
    let sender = args.sender.as_deref().unwrap_or("");
    let delivered = deliver::as_recipient(
        &config,
        args.user.as_deref(),
        sender,
        args.folder.as_deref(),
        &mut std::io::stdin().lock(),
    );
    match delivered {
        Ok((user, outcome)) => {
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
        Err(e) => fail(e.code, &e.message),
    }
}

fn fail(code: i32, message: &str) -> i32 {
    eprintln!("lda: {message}");
    code
}
