//! What the bsfilter tests share: the binary, Debian's original beside it,
//! and the messages both are taught and tested on.

use std::path::Path;
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_bsfilter");

/// Debian's original bsfilter (installed by .ci/run), run beside ours.
pub const ORIGINAL: &str = "/usr/bin/bsfilter";

/// Runs `program` with a home of its own under `home` and `args`.
pub fn run_program(program: &str, home: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .arg("--homedir")
        .arg(home)
        .args(args)
        .env_remove("BSFILTERHOME")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (the original: apt-get install bsfilter ruby-qdbm)"))
}

/// A spam-like message with a unique marker word.
pub fn spam(n: usize) -> String {
    format!(
        "From: Deals {n} <promo{n}@cheap-pills.example>\nTo: victim@example.org\nSubject: Cheap pills offer {n}\n\
         Message-ID: <spam{n}@cheap-pills.example>\n\n\
         Buy cheap pills now! Limited offer, click http://cheap-pills.example/buy?id={n} \
         and get viagra discount. Unsubscribe uniquespam{n}.\n"
    )
}

/// A clean message with a unique marker word.
pub fn ham(n: usize) -> String {
    format!(
        "From: Carol {n} <carol@work.example>\nTo: bob@example.org\nSubject: Project meeting {n}\n\
         Message-ID: <ham{n}@work.example>\n\n\
         Hi Bob, the project review is moved to Thursday. Please bring the quarterly \
         report and the budget figures. Regards, Carol. uniqueham{n}\n"
    )
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
