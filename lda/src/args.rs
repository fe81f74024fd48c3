//! lda's command line: `lda [-d USER] [-f SENDER] [-m FOLDER] [-c FILE] [-v]`.
//!
//! Written by hand rather than with clap, which the toolkit's other
//! programs use: lda starts once per delivered message, and building
//! clap's command model on every start cost a delivery ~35 µs of CPU and
//! five page faults — 3 % of its time (BENCHMARKS.md). The syntax is the
//! usual getopt one: `-dUSER` or `-d USER`, `--config FILE` or
//! `--config=FILE`, `--` ends the options; lda takes no operands.

use std::ffi::OsString;

/// One line, for errors.
pub const SYNOPSIS: &str =
    "usage: lda [-d USER] [-f SENDER] [-m FOLDER] [-c FILE] [-v] < MESSAGE (lda --help for more)";

/// `--help`.
pub const USAGE: &str = "\
Local delivery agent: filter the message on stdin and append it to the user's mbox

Usage: lda [OPTIONS] < MESSAGE

Options:
  -d <USER>            Recipient (default: the user running lda)
  -f <SENDER>          Envelope sender for the From line
  -m <FOLDER>          Folder for clean mail instead of INBOX
  -c, --config <FILE>  Configuration file
  -v, --verbose        Say where the message went
  -h, --help           Print help
  -V, --version        Print version
";

/// What the command line asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub user: Option<String>,
    pub sender: Option<String>,
    pub folder: Option<String>,
    pub config: Option<String>,
    pub verbose: bool,
}

/// The outcome of reading the command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Deliver(Args),
    Help,
    Version,
}

/// What is wrong with the command line, naming the offending argument
/// (for a usage message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Reads the arguments after the program name.
pub fn parse(arguments: impl IntoIterator<Item = OsString>) -> Result<Parsed, UsageError> {
    read(arguments).map_err(UsageError)
}

fn read(arguments: impl IntoIterator<Item = OsString>) -> Result<Parsed, String> {
    let mut args = Args::default();
    let mut rest = arguments.into_iter();
    while let Some(argument) = rest.next() {
        let argument = argument
            .into_string()
            .map_err(|a| format!("argument {a:?} is not UTF-8"))?;
        let (option, attached) = match argument.as_str() {
            "--" => match rest.next() {
                Some(operand) => return Err(format!("unexpected operand {operand:?}")),
                None => break,
            },
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            "-v" | "--verbose" => {
                args.verbose = true;
                continue;
            }
            long if long.starts_with("--") => match long.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (long.to_owned(), None),
            },
            short if short.starts_with('-') && short.len() > 1 => {
                let name_end = 1 + short[1..].chars().next().map_or(0, char::len_utf8);
                let value = &short[name_end..];
                (
                    short[..name_end].to_owned(),
                    (!value.is_empty()).then(|| value.to_owned()),
                )
            }
            operand => return Err(format!("unexpected operand {operand:?}")),
        };
        let slot = match option.as_str() {
            "-d" => &mut args.user,
            "-f" => &mut args.sender,
            "-m" => &mut args.folder,
            "-c" | "--config" => &mut args.config,
            _ => return Err(format!("unknown option {argument:?}")),
        };
        let value = match attached {
            Some(value) => value,
            None => rest
                .next()
                .ok_or_else(|| format!("{option} needs a value"))?
                .into_string()
                .map_err(|a| format!("{option} {a:?}: not UTF-8"))?,
        };
        if slot.replace(value).is_some() {
            return Err(format!("{option} given twice"));
        }
    }
    Ok(Parsed::Deliver(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Parsed, String> {
        parse(args.iter().map(OsString::from)).map_err(|e| e.0)
    }

    fn deliver(args: &[&str]) -> Args {
        match parse_strs(args) {
            Ok(Parsed::Deliver(a)) => a,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn separate_and_attached_values() {
        let want = Args {
            user: Some("alice".into()),
            sender: Some("bob@example.com".into()),
            folder: Some("lists/rust".into()),
            config: Some("/etc/mailkit.toml".into()),
            verbose: true,
        };
        assert_eq!(
            deliver(&[
                "-d",
                "alice",
                "-f",
                "bob@example.com",
                "-m",
                "lists/rust",
                "--config",
                "/etc/mailkit.toml",
                "-v"
            ]),
            want
        );
        assert_eq!(
            deliver(&[
                "-dalice",
                "-fbob@example.com",
                "-mlists/rust",
                "--config=/etc/mailkit.toml",
                "--verbose"
            ]),
            want
        );
        assert_eq!(
            deliver(&["-c", "/etc/mailkit.toml"]).config.as_deref(),
            Some("/etc/mailkit.toml")
        );
        // an empty sender (bounces: MAIL FROM:<>) is a value
        assert_eq!(deliver(&["-f", ""]).sender.as_deref(), Some(""));
        // a value may look like an option
        assert_eq!(
            deliver(&["-f", "-odd@example.com"]).sender.as_deref(),
            Some("-odd@example.com")
        );
        assert_eq!(deliver(&[]), Args::default());
        assert_eq!(deliver(&["--"]), Args::default());
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse_strs(&["-h"]), Ok(Parsed::Help));
        assert_eq!(parse_strs(&["-d", "alice", "--help"]), Ok(Parsed::Help));
        assert_eq!(parse_strs(&["-V"]), Ok(Parsed::Version));
        assert_eq!(parse_strs(&["--version"]), Ok(Parsed::Version));
    }

    #[test]
    fn bad_command_lines_are_errors() {
        for bad in [
            &["--bogus"][..],
            &["-x", "y"],
            &["-d"],
            &["--config"],
            &["-d", "alice", "-d", "bob"],
            &["alice"],
            &["--", "alice"],
            &["-"],
            &["--config-file", "x"],
            &["-é"],
        ] {
            let e = parse_strs(bad).expect_err(&format!("{bad:?}"));
            assert!(!e.is_empty());
        }
    }

    #[test]
    fn non_utf8_is_an_error() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'-', b'd', 0xff]);
        assert!(parse([odd]).is_err());
        let odd = OsString::from_vec(vec![0xff]);
        assert!(parse([OsString::from("-d"), odd]).is_err());
    }

    proptest::proptest! {
        /// Random command lines: an answer, never a panic.
        #[test]
        fn random_command_lines_never_panic(
            args in proptest::collection::vec("(-|--)?[a-zA-Z=é-]{0,8}", 0..8),
        ) {
            let _ = parse_strs(&args.iter().map(String::as_str).collect::<Vec<_>>());
        }

        /// Whatever values an MTA passes come back as given, in either
        /// spelling.
        #[test]
        fn values_round_trip(
            user in proptest::option::of("[^\\x00]{0,20}"),
            sender in proptest::option::of("[^\\x00]{0,30}"),
            folder in proptest::option::of("[^\\x00]{0,20}"),
            config in proptest::option::of("[^\\x00]{0,20}"),
            verbose in proptest::prelude::any::<bool>(),
            attached in proptest::prelude::any::<bool>(),
        ) {
            let want = Args { user, sender, folder, config, verbose };
            let mut argv: Vec<String> = Vec::new();
            for (option, value) in [("-d", &want.user), ("-f", &want.sender), ("-m", &want.folder), ("--config", &want.config)] {
                if let Some(value) = value {
                    // an attached value must not be empty, or it is no value
                    if attached && !value.is_empty() {
                        argv.push(if option.starts_with("--") { format!("{option}={value}") } else { format!("{option}{value}") });
                    } else {
                        argv.push(option.to_owned());
                        argv.push(value.clone());
                    }
                }
            }
            if want.verbose {
                argv.push("-v".to_owned());
            }
            let got = parse_strs(&argv.iter().map(String::as_str).collect::<Vec<_>>());
            proptest::prop_assert_eq!(got, Ok(Parsed::Deliver(want)));
        }
    }
}
