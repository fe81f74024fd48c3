//! The `bsfilter` command line, compatible with the original bsfilter's.
//!
//! Filtering mode (no command): exit 0 when a message is spam, 1 when all
//! are clean; with `--pipe`, exit 0 and the message goes to stdout with
//! the requested headers. Maintenance mode (a command): exit 0. Errors exit
//! with a sysexits code (64 usage, 65 data, 74 I/O, 75 try again, 78
//! configuration), never 0 or 1.

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Arg, ArgAction, ArgMatches, Command};

use bsfilter::error::{Error, Result};
use bsfilter::filter::{Analyzed, Filter, FilterConfig, Verdict};
use bsfilter::morphology::JapaneseTokenizer;
use bsfilter::score::Method;
use bsfilter::store::{Action, Class, Counts, Outcome, Store};
use bsfilter::tokenize::{DEFAULT_MARK_IN_TOKEN, DEFAULT_MAX_LINE, DEFAULT_REFER_HEADERS, HeaderSelection};
use bsfilter::{export, headers, mbox};

/// Messages analysed and handled together: bounds memory, and one write
/// transaction per chunk keeps other processes' waits short.
const CHUNK: usize = 256;

/// Original options this bsfilter refuses, with the reason (an option
/// named, or one beginning with the name and `-`). On the command line
/// they are refused; in a configuration file, where the original too
/// ignores them unless their mode runs, they are skipped with a warning.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("imap", "use imapd, which trains from the folders users move mail into"),
    ("pop", "filter at delivery with lda instead of a POP proxy"),
    ("ssl", "it is for the IMAP and POP modes, which this bsfilter has not"),
    ("pid-file", "it is for the POP proxy, which this bsfilter has not"),
    ("tasktray", "there is no tray icon"),
    ("show-new-token", "use --show-tokens"),
    ("ignore-after-last-atag", "HTML text is taken whole"),
];

/// Why the original option `name` is refused, if it is.
fn unsupported(name: &str) -> Option<&'static str> {
    UNSUPPORTED
        .iter()
        .find(|(n, _)| name == *n || name.strip_prefix(n).is_some_and(|rest| rest.starts_with('-')))
        .map(|(_, why)| *why)
}

/// The original's Japanese tokenizers we have not, and the nearest we
/// have: `block` (runs of one script) splits less finely than bigrams,
/// but bigrams are what it approximates; `mecab` is morphological, as
/// lindera (with the same IPADIC) is.
const TOKENIZER_STAND_INS: &[(&str, &str)] = &[("block", "bigram"), ("mecab", "lindera")];

/// The revision line the original prints for `--revision` and inserts
/// for `--insert-revision`.
fn revision() -> String {
    format!("bsfilter release {} (rust)", env!("CARGO_PKG_VERSION"))
}

fn command() -> Command {
    let flag = |name: &'static str, help: &'static str| Arg::new(name).long(name).action(ArgAction::SetTrue).help(help);
    let value = |name: &'static str, placeholder: &'static str, help: &'static str| {
        Arg::new(name)
            .long(name)
            .value_name(placeholder)
            .action(ArgAction::Set)
            .allow_negative_numbers(true)
            .help(help)
    };
    Command::new("bsfilter")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Bayesian spam filter, compatible with the original bsfilter")
        .long_about(
            "Bayesian spam filter, compatible with the original bsfilter.\n\n\
             With a command (--add-spam, --export-clean, ...) bsfilter is in maintenance mode and exits 0. \
             Without one it filters: exit status 0 when a message is spam, 1 when every message is clean \
             (with --pipe: always 0). Errors exit with 64 (usage), 65 (bad data), 74 (I/O or database), \
             75 (database busy: try again) or 78 (configuration), never 0 or 1.",
        )
        .args_override_self(true)
        // the original's parser (Ruby's getopts) takes any unambiguous
        // beginning of an option: --add-sp, --show-db, --insert-prob
        .infer_long_args(true)
        .arg(flag("revision", "Print the revision line and quit"))
        .arg(flag("add-clean", "Learn the messages as clean").short('c'))
        .arg(flag("add-spam", "Learn the messages as spam").short('s'))
        .arg(flag("sub-clean", "Unlearn messages learned as clean").short('C'))
        .arg(flag("sub-spam", "Unlearn messages learned as spam").short('S'))
        .arg(
            flag(
                "update",
                "Write the token snapshot (as the original rebuilds its probability table): a memory-mapped \
             copy of the counts that lets a fresh process classify without opening the database. Training \
             removes it; the next classification that can write it does so too",
            )
            .short('u'),
        )
        .arg(flag("auto-update", "Filter, then learn each message as its verdict").short('a'))
        .arg(flag(
            "export-clean",
            "Write the clean counts in the original's text format to FILE or stdout",
        ))
        .arg(flag(
            "export-spam",
            "Write the spam counts in the original's text format to FILE or stdout",
        ))
        .arg(flag(
            "export-probability",
            "Write each token's spam probability (for debugging)",
        ))
        .arg(flag("import-clean", "Add clean counts from export files (or stdin)"))
        .arg(flag("import-spam", "Add spam counts from export files (or stdin)"))
        .arg(flag(
            "show-db-status",
            "Print numbers of tokens and messages in the databases and quit",
        ))
        .arg(flag(
            "show-tokens",
            "Print the tokens each message yields, sorted, one per line, and quit",
        ))
        .arg(value(
            "homedir",
            "DIR",
            "bsfilter home (default: $BSFILTERHOME, else ~/.bsfilter)",
        ))
        .arg(value(
            "config-file",
            "FILE",
            "Configuration file (default: bsfilter.conf in the home directory)",
        ))
        .arg(value(
            "system-db",
            "PATH",
            "System-wide token database (a file, or a bsfilter home holding one), layered under the user's",
        ))
        .arg(value(
            "auth-results-id",
            "ID",
            "Tokens of the Authentication-Results field of this authserv-id (mtad's hostname), as lda's auth_results_id",
        ))
        .arg(value(
            "db-timeout",
            "SECONDS",
            "How long to wait for a database locked by another process (default 30)",
        ))
        .arg(value("method", "g|r|rf", "Graham, Robinson or Robinson-Fisher (default rf)").short('m'))
        .arg(value(
            "spam-cutoff",
            "NUMBER",
            "Spam cutoff (default 0.9 for g, 0.582 for r, 0.95 for rf)",
        ))
        .arg(value(
            "max-line",
            "NUMBER",
            "Read only the first NUMBER body lines (default 500; 0 = all)",
        ))
        .arg(value(
            "mark-in-token",
            "CHARS",
            "Characters allowed in a word besides letters and digits (default \"|!*'\")",
        ))
        .arg(value(
            "refer-header",
            "HEADER,...",
            "Header fields to read (default: the original's list)",
        ))
        .arg(flag("refer-all-header", "Read every header field"))
        .arg(flag("ignore-header", "Read no header field").short('H'))
        .arg(flag("ignore-body", "Ignore the body except URLs and addresses").short('B'))
        .arg(flag(
            "ignore-plain-text-part",
            "Skip plain text parts when the message has an HTML part",
        ))
        .arg(
            value(
                "jtokenizer",
                "bigram|lindera",
                "Japanese tokenizer: bigram (default; the original's, plus hiragana) or lindera \
                 (morphological, IPADIC; $BSFILTER_IPADIC names an installed dictionary)",
            )
            .short('j'),
        )
        .arg(flag("mbox", "Inputs are mbox files holding many messages"))
        .arg(flag(
            "pipe",
            "Write each message to stdout (with the headers asked for)",
        ))
        .arg(flag("insert-flag", "Insert X-Spam-Flag: Yes|No"))
        .arg(flag("insert-probability", "Insert X-Spam-Probability: NUMBER"))
        .arg(flag("insert-revision", "Insert X-Spam-Revision: bsfilter release ..."))
        .arg(value(
            "header-prefix",
            "STRING",
            "Insert X-STRING-... headers instead of X-Spam-...",
        ))
        .arg(flag(
            "mark-spam-subject",
            "Put \"[SPAM] \" in front of the Subject of spam",
        ))
        .arg(value(
            "spam-subject-prefix",
            "STRING",
            "The prefix for --mark-spam-subject",
        ))
        .arg(flag("list-clean", "Print the file names of clean messages"))
        .arg(flag("list-spam", "Print the file names of spam"))
        .arg(flag("show-process", "Print a summary line per message"))
        .arg(flag("quiet", "Print nothing but errors").short('q'))
        .arg(flag("verbose", "Say what training did with each message").short('v'))
        .arg(flag("debug", "Same as --verbose").short('d'))
        .arg(
            value(
                "db",
                "TYPE",
                "Accepted for compatibility: the database is always SQLite",
            )
            .hide(true),
        )
        .arg(
            value(
                "max-mail",
                "N",
                "Accepted for compatibility; the database is not reduced",
            )
            .hide(true),
        )
        .arg(
            value(
                "min-mail",
                "N",
                "Accepted for compatibility; the database is not reduced",
            )
            .hide(true),
        )
        .arg(
            flag(
                "disable-degeneration",
                "Accepted for compatibility; no degeneration is done",
            )
            .short('D')
            .hide(true),
        )
        .arg(
            flag(
                "disable-utf-8",
                "Accepted for compatibility; every charset is always decoded",
            )
            .hide(true),
        )
        .arg(
            Arg::new("files")
                .value_name("FILE")
                .num_args(0..)
                .action(ArgAction::Append)
                .help("Messages (default: stdin)"),
        )
}

/// Everything the command line (and configuration file) asked for.
struct Options {
    matches: ArgMatches,
    filter: FilterConfig,
    files: Vec<String>,
}

impl Options {
    fn flag(&self, name: &str) -> bool {
        self.matches.get_flag(name)
    }
    fn value(&self, name: &str) -> Option<&str> {
        self.matches.get_one::<String>(name).map(String::as_str)
    }
    fn header_prefix(&self) -> &str {
        self.value("header-prefix").unwrap_or("Spam")
    }
    fn training_actions(&self) -> Vec<Action> {
        let mut actions = Vec::new();
        for (name, action) in [
            ("sub-clean", Action::Sub(Class::Clean)),
            ("sub-spam", Action::Sub(Class::Spam)),
            ("add-clean", Action::Add(Class::Clean)),
            ("add-spam", Action::Add(Class::Spam)),
        ] {
            if self.flag(name) {
                actions.push(action);
            }
        }
        actions
    }
}

/// Runs bsfilter with `args` (program name first); returns the exit code.
pub fn run(args: Vec<OsString>) -> i32 {
    match parse(args).and_then(|options| match options {
        Parsed::Exit(code) => Ok(code),
        Parsed::Run(options) => execute(&options),
    }) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bsfilter: {e}");
            e.exit_code()
        }
    }
}

enum Parsed {
    Run(Box<Options>),
    Exit(i32),
}

fn parse(args: Vec<OsString>) -> Result<Parsed> {
    for arg in args.iter().skip(1) {
        let Some(name) = arg.to_str().and_then(|a| a.strip_prefix("--")) else {
            continue;
        };
        let name = name.split('=').next().unwrap_or(name);
        if let Some(why) = unsupported(name) {
            return Err(Error::Usage(format!(
                "--{name} is not supported by this bsfilter: {why}"
            )));
        }
    }
    let first = match command().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => return clap_error(e),
    };
    let homedir = home_directory(first.get_one::<String>("homedir").map(String::as_str))?;
    if first.get_flag("revision") {
        println!("{}", revision());
        return Ok(Parsed::Exit(0));
    }
    let config_path = match first.get_one::<String>("config-file") {
        Some(path) => Some(PathBuf::from(path)),
        None => Some(homedir.join("bsfilter.conf")).filter(|p| p.is_file()),
    };
    let config_lines = match &config_path {
        Some(path) => read_config_file(path)?,
        None => Vec::new(),
    };
    let args0 = args[0].clone();
    let matches = if config_lines.is_empty() {
        first
    } else {
        // Configuration first, so the command line overrides it.
        let mut merged = vec![args[0].clone()];
        merged.extend(config_lines.iter().flat_map(|l| l.args.iter().map(OsString::from)));
        merged.extend(args.into_iter().skip(1));
        match command().try_get_matches_from(&merged) {
            Ok(m) => m,
            Err(e) => {
                return match misconfigured(config_path.as_deref(), &config_lines, &merged[0]) {
                    Some(e) => Err(e),
                    None => clap_error(e),
                };
            }
        }
    };
    // the configuration may name the home directory
    let homedir = home_directory(matches.get_one::<String>("homedir").map(String::as_str))?;
    let filter = match filter_config(&matches, homedir) {
        Ok(f) => f,
        Err(e) => return Err(misconfigured(config_path.as_deref(), &config_lines, &args0).unwrap_or(e)),
    };
    let files = matches
        .get_many::<String>("files")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    let options = Options { matches, filter, files };
    if options.flag("add-spam") && options.flag("add-clean") {
        return Err(Error::Usage(
            "--add-spam and --add-clean cannot be given together".into(),
        ));
    }
    if options.flag("import-spam") && options.flag("import-clean") {
        return Err(Error::Usage(
            "--import-spam and --import-clean cannot be given together".into(),
        ));
    }
    Ok(Parsed::Run(Box::new(options)))
}

/// The first line of the configuration file that is wrong on its own,
/// as an error naming the file and the line (so that a mistake there is
/// not reported as the command line's).
fn misconfigured(path: Option<&Path>, lines: &[ConfigLine], program: &OsString) -> Option<Error> {
    let path = path?;
    lines.iter().find_map(|line| {
        let alone = std::iter::once(program.clone()).chain(line.args.iter().map(OsString::from));
        let message = match command().try_get_matches_from(alone) {
            Err(e) => {
                let text = e.to_string();
                text.lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
                    .to_owned()
            }
            Ok(m) => match filter_config(&m, PathBuf::new()) {
                Err(Error::Usage(message)) => message,
                _ => return None,
            },
        };
        Some(Error::Config {
            path: path.to_owned(),
            line: line.number,
            message,
        })
    })
}

fn clap_error(e: clap::Error) -> Result<Parsed> {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            Ok(Parsed::Exit(0))
        }
        _ => {
            let _ = e.print();
            Ok(Parsed::Exit(bsfilter::error::exit::USAGE))
        }
    }
}

fn home_directory(option: Option<&str>) -> Result<PathBuf> {
    if let Some(dir) = option {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("BSFILTERHOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".bsfilter")),
        None => Err(Error::Usage(
            "no home directory: set --homedir, BSFILTERHOME or HOME".into(),
        )),
    }
}

/// One line of a configuration file, as options.
#[derive(Debug, PartialEq, Eq)]
struct ConfigLine {
    number: usize,
    args: Vec<String>,
}

/// The original's `bsfilter.conf`: one `option value` per line (`#`
/// comments), each becoming `--option value` in front of the command line.
/// Options of the modes this bsfilter has not (IMAP, POP, …) are skipped
/// with a warning naming the file and line, as the original ignores
/// them unless their mode runs; the original's `block` and `mecab`
/// tokenizers become their nearest stand-ins, said likewise.
fn read_config_file(path: &Path) -> Result<Vec<ConfigLine>> {
    let text = std::fs::read(path).map_err(|e| Error::Config {
        path: path.to_owned(),
        line: 0,
        message: e.to_string(),
    })?;
    let mut lines = Vec::new();
    for (i, line) in String::from_utf8_lossy(&text).lines().enumerate() {
        let number = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(2, char::is_whitespace);
        let option = parts.next().unwrap_or_default().trim_start_matches('-');
        let mut value = parts.next().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let at = format!("{}:{number}", path.display());
        if let Some(why) = unsupported(option) {
            eprintln!("bsfilter: {at}: `{option}` ignored: {why}");
            continue;
        }
        if option == "jtokenizer"
            && let Some((theirs, ours)) = TOKENIZER_STAND_INS
                .iter()
                .find(|(theirs, _)| value.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(theirs)))
        {
            eprintln!("bsfilter: {at}: jtokenizer {theirs} is not here: using {ours}, the nearest");
            value = Some((*ours).to_owned());
        }
        let mut args = vec![format!("--{option}")];
        args.extend(value);
        lines.push(ConfigLine { number, args });
    }
    Ok(lines)
}

fn filter_config(m: &ArgMatches, homedir: PathBuf) -> Result<FilterConfig> {
    let mut config = FilterConfig::new(homedir);
    let get = |name: &str| m.get_one::<String>(name).map(String::as_str);
    if let Some(method) = get("method") {
        config.method =
            Method::parse(method).ok_or_else(|| Error::Usage(format!("--method {method}: expected g, r or rf")))?;
    }
    config.spam_cutoff = match get("spam-cutoff") {
        // any number, as the original: below 0 everything is spam, from
        // 1 up nothing is (a probability is never above 1)
        Some(v) => parse_number::<f64>("spam-cutoff", v).and_then(|c| {
            if c.is_finite() {
                Ok(c)
            } else {
                Err(Error::Usage(format!("--spam-cutoff {v}: expected a number")))
            }
        })?,
        None => config.method.default_cutoff(),
    };
    config.system_db = get("system-db").map(PathBuf::from);
    config.tokenizer.auth_results_id = get("auth-results-id").map(str::to_owned);
    if let Some(v) = get("db-timeout") {
        let secs = parse_number::<f64>("db-timeout", v)?;
        if !(0.0..=86400.0).contains(&secs) {
            return Err(Error::Usage(format!("--db-timeout {v}: expected 0 to 86400 seconds")));
        }
        config.busy_timeout = Duration::from_secs_f64(secs);
    }
    let t = &mut config.tokenizer;
    t.max_line = get("max-line")
        .map(|v| parse_number("max-line", v))
        .transpose()?
        .unwrap_or(DEFAULT_MAX_LINE);
    t.mark_in_token = get("mark-in-token").unwrap_or(DEFAULT_MARK_IN_TOKEN).to_owned();
    if t.mark_in_token.chars().any(|c| c.is_whitespace() || c == ':') {
        return Err(Error::Usage(
            "--mark-in-token: white space and ':' cannot be part of a token".into(),
        ));
    }
    t.headers = if m.get_flag("ignore-header") {
        HeaderSelection::Listed(Vec::new())
    } else if m.get_flag("refer-all-header") {
        HeaderSelection::All
    } else if let Some(list) = get("refer-header") {
        HeaderSelection::Listed(
            list.split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        )
    } else {
        HeaderSelection::Listed(DEFAULT_REFER_HEADERS.iter().map(|s| s.to_string()).collect())
    };
    t.verdict_header_prefix = format!("x-{}-", get("header-prefix").unwrap_or("Spam").to_ascii_lowercase());
    t.ignore_body = m.get_flag("ignore-body");
    t.ignore_plain_text_part = m.get_flag("ignore-plain-text-part");
    if let Some(j) = get("jtokenizer")
        && JapaneseTokenizer::parse(j).is_none()
    {
        let nearest = TOKENIZER_STAND_INS
            .iter()
            .find(|(theirs, _)| j.eq_ignore_ascii_case(theirs))
            .map_or(String::new(), |(theirs, ours)| {
                format!(" (for the original's {theirs}, {ours} is the nearest)")
            });
        return Err(Error::Usage(format!(
            "--jtokenizer {j}: expected bigram or lindera{nearest}"
        )));
    }
    Ok(config)
}

fn parse_number<T: std::str::FromStr>(option: &str, value: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::Usage(format!("--{option} {value}: not a number")))
}

/// Where messages (as opposed to piped mail and listed names) are printed.
enum MessageOut {
    Stdout,
    Stderr,
    Nowhere,
}

impl MessageOut {
    fn line(&self, text: std::fmt::Arguments<'_>) -> Result<()> {
        match self {
            MessageOut::Stdout => writeln!(std::io::stdout().lock(), "{text}").map_err(Error::Output),
            // stderr failing (closed) is no reason to fail the run
            MessageOut::Stderr => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
                Ok(())
            }
            MessageOut::Nowhere => Ok(()),
        }
    }
}

fn execute(options: &Options) -> Result<i32> {
    let japanese = options
        .value("jtokenizer")
        .and_then(JapaneseTokenizer::parse)
        .unwrap_or_default();
    let filter = Filter::with_segmenter(options.filter.clone(), japanese.segmenter()?);
    let exporting = options.flag("export-clean") || options.flag("export-spam") || options.flag("export-probability");
    let out = if options.flag("quiet") {
        MessageOut::Nowhere
    } else if (exporting && options.files.first().is_none_or(|f| f == "-"))
        || options.flag("list-clean")
        || options.flag("list-spam")
        || options.flag("pipe")
    {
        MessageOut::Stderr
    } else {
        MessageOut::Stdout
    };

    if options.flag("show-db-status") {
        show_db_status(&filter, &out)?;
        return Ok(0);
    }
    if options.flag("show-tokens") {
        let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
        let status = for_each_chunk(options, &filter, false, |items| {
            for item in items {
                // sorted, for people reading and diffing them
                let mut tokens: Vec<&str> = item.analyzed.tokens.iter().collect();
                tokens.sort_unstable();
                for t in tokens {
                    writeln!(stdout, "{t}").map_err(Error::Output)?;
                }
            }
            Ok(())
        });
        stdout.flush().map_err(Error::Output)?;
        return status.map(|()| 0);
    }
    let mut maintenance = false;
    if options.flag("import-clean") || options.flag("import-spam") {
        maintenance = true;
        import(options, &filter)?;
    } else if !options.training_actions().is_empty() {
        maintenance = true;
        train(options, &filter, &out)?;
    }
    if exporting {
        maintenance = true;
        export_db(options, &filter)?;
    }
    if options.flag("update") {
        maintenance = true;
        filter.write_snapshots()?;
    }
    if maintenance {
        return Ok(0);
    }
    classify(options, &filter, &out)
}

/// One message read from the inputs and analysed.
struct Item {
    /// File name as given (`-` for stdin).
    name: String,
    from_stdin: bool,
    /// Position within the file (1 for a single message).
    index: usize,
    from_line: Vec<u8>,
    content: Vec<u8>,
    analyzed: Analyzed,
}

/// A message read from the inputs, not yet analysed.
struct Raw {
    name: String,
    from_stdin: bool,
    index: usize,
    from_line: Vec<u8>,
    content: Vec<u8>,
}

/// Reads the inputs (the files, or stdin), splits mboxes, analyses the
/// messages a chunk at a time on all cores and hands each chunk to `handle`.
/// Reading and analysis run in their own thread, so the next chunk is
/// being analysed while `handle` classifies or learns this one.
/// An unreadable input is reported and skipped, and the run ends with an
/// error once the rest has been handled.
fn for_each_chunk(
    options: &Options,
    filter: &Filter,
    show_progress: bool,
    mut handle: impl FnMut(&[Item]) -> Result<()>,
) -> Result<()> {
    let inputs: Vec<String> = if options.files.is_empty() {
        vec!["-".into()]
    } else {
        options.files.clone()
    };
    let split_mbox = options.flag("mbox");
    let mut progress = Progress::new(
        show_progress && inputs.len() > 1 && !options.flag("quiet"),
        inputs.len(),
    );
    let (sender, receiver) = std::sync::mpsc::sync_channel::<(Vec<Item>, usize)>(1);
    std::thread::scope(|scope| {
        let inputs = &inputs;
        // `move`: the sender must drop when the producer ends, or the
        // receiving loop below never does.
        let producer = scope.spawn(move || {
            let mut skipped = 0;
            let mut pending: Vec<Raw> = Vec::with_capacity(CHUNK);
            // false when the consumer has stopped (it failed): stop too
            let send = |pending: &mut Vec<Raw>, files_done: usize| -> bool {
                let items = analyze_all(filter, std::mem::take(pending));
                sender.send((items, files_done)).is_ok()
            };
            for (n, name) in inputs.iter().enumerate() {
                let from_stdin = name == "-";
                let data = if from_stdin {
                    let mut data = Vec::new();
                    std::io::stdin().lock().read_to_end(&mut data).map(|_| data)
                } else {
                    std::fs::read(name)
                };
                let data = match data {
                    Ok(d) => d,
                    Err(source) => {
                        eprintln!(
                            "bsfilter: {}",
                            Error::Input {
                                path: PathBuf::from(name),
                                source
                            }
                        );
                        skipped += 1;
                        continue;
                    }
                };
                if split_mbox {
                    for (i, m) in mbox::split(&data).into_iter().enumerate() {
                        // written back as read: the line with its newline,
                        // the message with its quoting
                        let from_line = if m.from_line.is_empty() {
                            Vec::new()
                        } else {
                            [m.from_line, b"\n"].concat()
                        };
                        let content = m.raw.to_vec();
                        pending.push(Raw {
                            name: name.clone(),
                            from_stdin,
                            index: i + 1,
                            from_line,
                            content,
                        });
                        if pending.len() >= CHUNK && !send(&mut pending, n) {
                            return skipped;
                        }
                    }
                } else {
                    pending.push(Raw {
                        name: name.clone(),
                        from_stdin,
                        index: 1,
                        from_line: Vec::new(),
                        content: data,
                    });
                }
                if pending.len() >= CHUNK && !send(&mut pending, n + 1) {
                    return skipped;
                }
            }
            if !pending.is_empty() {
                send(&mut pending, inputs.len());
            }
            skipped
        });
        let mut result = Ok(());
        for (items, files_done) in receiver.iter() {
            result = handle(&items);
            if result.is_err() {
                break;
            }
            progress.advance(files_done, items.len());
        }
        drop(receiver);
        let skipped = producer.join().expect("the reader thread does not panic");
        progress.finish();
        result?;
        if skipped > 0 {
            Err(Error::InputsSkipped(skipped))
        } else {
            Ok(())
        }
    })
}

/// Analyses messages on all cores, keeping their order.
fn analyze_all(filter: &Filter, raws: Vec<Raw>) -> Vec<Item> {
    let analyze = |raw: Raw| {
        let sender = mbox::envelope_sender(&raw.from_line);
        let analyzed = filter.analyze(&raw.content, sender);
        Item {
            name: raw.name,
            from_stdin: raw.from_stdin,
            index: raw.index,
            from_line: raw.from_line,
            content: raw.content,
            analyzed,
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    if threads == 1 || raws.len() < 4 {
        return raws.into_iter().map(analyze).collect();
    }
    let per_thread = raws.len().div_ceil(threads);
    let mut parts = Vec::with_capacity(threads);
    let mut rest = raws;
    while rest.len() > per_thread {
        let tail = rest.split_off(per_thread);
        parts.push(rest);
        rest = tail;
    }
    parts.push(rest);
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || part.into_iter().map(analyze).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("analysis does not panic"))
            .collect()
    })
}

/// A progress line on a terminal's stderr while training many files.
struct Progress {
    enabled: bool,
    total_files: usize,
    messages: usize,
    started: Instant,
    last_drawn: Option<Instant>,
}

impl Progress {
    fn new(wanted: bool, total_files: usize) -> Progress {
        Progress {
            enabled: wanted && std::io::stderr().is_terminal(),
            total_files,
            messages: 0,
            started: Instant::now(),
            last_drawn: None,
        }
    }

    fn advance(&mut self, files_done: usize, messages: usize) {
        self.messages += messages;
        if !self.enabled
            || self
                .last_drawn
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last_drawn = Some(Instant::now());
        let width = 30;
        let filled = (files_done * width).checked_div(self.total_files).unwrap_or(width);
        let rate = self.messages as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        eprint!(
            "\r[{}{}] {files_done}/{} files, {} messages, {rate:.0} msg/s ",
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.total_files,
            self.messages
        );
    }

    fn finish(&mut self) {
        if self.enabled && self.last_drawn.is_some() {
            self.last_drawn = None;
            self.advance(self.total_files, 0);
            eprintln!();
        }
    }
}

fn train(options: &Options, filter: &Filter, out: &MessageOut) -> Result<()> {
    let actions = options.training_actions();
    let mut store = filter.open_user_db()?;
    let pipe = options.flag("pipe") && !options.flag("quiet");
    let spam_flag = options.flag("add-spam") || options.flag("sub-clean");
    let command: String = [
        ("add-clean", 'c'),
        ("add-spam", 's'),
        ("sub-clean", 'C'),
        ("sub-spam", 'S'),
    ]
    .iter()
    .filter(|(name, _)| options.flag(name))
    .map(|(_, c)| *c)
    .collect();
    let verbose = options.flag("verbose") || options.flag("debug");
    let mut stdout = std::io::stdout().lock();
    for_each_chunk(options, filter, true, |items| {
        let analyzed: Vec<&Analyzed> = items.iter().map(|i| &i.analyzed).collect();
        for &action in &actions {
            let outcomes = filter.train(&mut store, &analyzed, action)?;
            if verbose {
                for (item, outcome) in items.iter().zip(outcomes) {
                    let class = match action {
                        Action::Add(c) | Action::Sub(c) => c.name(),
                    };
                    let what = match outcome {
                        Outcome::Learned => "learned as",
                        Outcome::Moved => "moved to",
                        Outcome::AlreadyLearned => "already learned as",
                        Outcome::Unlearned => "unlearned from",
                        Outcome::NotLearned => "was not learned as",
                    };
                    out.line(format_args!("{} {} {what} {class}", item.name, item.index))?;
                }
            }
        }
        for item in items {
            if options.flag("show-process") {
                show_process(out, item, "-", &command)?;
            }
            if pipe {
                write_message(&mut stdout, options, item, spam_flag, None)?;
            }
        }
        Ok(())
    })?;
    stdout.flush().map_err(Error::Output)
}

fn classify(options: &Options, filter: &Filter, out: &MessageOut) -> Result<i32> {
    let expected = if options.flag("mbox") {
        usize::MAX
    } else {
        options.files.len().max(1)
    };
    let auto_update = options.flag("auto-update");
    // learning as it goes, it must see what it learned: no snapshot
    let classifier = if auto_update {
        filter.live_classifier(expected)?
    } else {
        filter.classifier(expected)?
    };
    let mut store = if auto_update {
        Some(filter.open_user_db()?)
    } else {
        None
    };
    let pipe = options.flag("pipe");
    let quiet = options.flag("quiet");
    let mut any_spam = false;
    let mut stdout = std::io::stdout().lock();
    let result = for_each_chunk(options, filter, false, |items| {
        let analyzed: Vec<&Analyzed> = items.iter().map(|i| &i.analyzed).collect();
        let verdicts = classifier.classify(&analyzed)?;
        for (item, verdict) in items.iter().zip(&verdicts) {
            any_spam |= verdict.is_spam;
            if pipe && !quiet {
                write_message(&mut stdout, options, item, verdict.is_spam, Some(*verdict))?;
            }
            if (verdict.is_spam && options.flag("list-spam")) || (!verdict.is_spam && options.flag("list-clean")) {
                writeln!(stdout, "{}", item.name).map_err(Error::Output)?;
            }
            if !item.from_stdin {
                out.line(format_args!(
                    "combined probability {} {} {:.6}",
                    item.name, item.index, verdict.probability
                ))?;
            }
            if options.flag("show-process") && store.is_none() {
                show_process(out, item, if verdict.is_spam { "spam" } else { "clean" }, "-")?;
            }
        }
        if let Some(store) = store.as_mut() {
            let pairs: Vec<(&Analyzed, Verdict)> = analyzed.iter().copied().zip(verdicts.iter().copied()).collect();
            filter.train_verdicts(store, &pairs)?;
            if options.flag("show-process") {
                for (item, v) in items.iter().zip(&verdicts) {
                    show_process(
                        out,
                        item,
                        if v.is_spam { "spam" } else { "clean" },
                        if v.is_spam { "s" } else { "c" },
                    )?;
                }
            }
        }
        stdout.flush().map_err(Error::Output)
    });
    result?;
    if !auto_update && classifier.read_databases() {
        // The verdicts are out; a missing snapshot only makes the next
        // run slower, so failing to write one is not this run's failure.
        drop(stdout);
        if let Err(e) = filter.write_snapshots() {
            eprintln!("bsfilter: warning: {e}");
        }
    }
    Ok(if pipe || any_spam { 0 } else { 1 })
}

/// Writes a message with the verdict headers asked for (`--pipe`).
fn write_message(
    w: &mut dyn Write,
    options: &Options,
    item: &Item,
    is_spam: bool,
    verdict: Option<Verdict>,
) -> Result<()> {
    let prefix = options.header_prefix();
    let mut message = std::borrow::Cow::Borrowed(&item.content[..]);
    if options.flag("insert-revision") {
        let value = revision();
        message = headers::set_field(&message, &format!("X-{prefix}-Revision"), &value).into();
    }
    if options.flag("insert-flag") {
        message = headers::set_field(
            &message,
            &format!("X-{prefix}-Flag"),
            if is_spam { "Yes" } else { "No" },
        )
        .into();
    }
    if let (true, Some(v)) = (options.flag("insert-probability"), verdict) {
        message = headers::set_field(
            &message,
            &format!("X-{prefix}-Probability"),
            &format!("{:.6}", v.probability),
        )
        .into();
    }
    if options.flag("mark-spam-subject") && is_spam {
        message = headers::prefix_subject(&message, options.value("spam-subject-prefix").unwrap_or("[SPAM] ")).into();
    }
    w.write_all(&item.from_line).map_err(Error::Output)?;
    w.write_all(&message).map_err(Error::Output)?;
    // messages of an mbox stay separated by an empty line
    if options.flag("mbox") && !item.from_line.is_empty() {
        w.write_all(b"\n").map_err(Error::Output)?;
    }
    Ok(())
}

/// The original's `--show-process` line:
/// `file LANG RESULT COMMAND YYYYmmddHHMMSS MESSAGE-ID FILE` (time in UTC).
fn show_process(out: &MessageOut, item: &Item, result: &str, command: &str) -> Result<()> {
    let message_id = item
        .analyzed
        .message_id
        .as_deref()
        .map_or_else(|| "-".to_owned(), |id| format!("<{id}>"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    out.line(format_args!(
        "file C {result} {command} {} {message_id} {}",
        utc_timestamp(now),
        item.name
    ))
}

/// `YYYYmmddHHMMSS` of a Unix time, in UTC.
fn utc_timestamp(secs: u64) -> String {
    let t = bsfilter::time::UtcTime::from_unix(secs);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

fn show_db_status(filter: &Filter, out: &MessageOut) -> Result<()> {
    let status = |label: &str, path: &Path| -> Result<()> {
        match Store::open_read_only(path, filter.config().busy_timeout)? {
            None => out.line(format_args!(
                "{label} C 0 0 0 0 0 ({} does not exist yet)",
                path.display()
            )),
            Some(store) => store.read(|r| {
                let totals = r.totals()?;
                out.line(format_args!(
                    "{label} C {} {} {} {} {}",
                    r.class_token_count(Class::Clean)?,
                    totals.clean_messages,
                    r.class_token_count(Class::Spam)?,
                    totals.spam_messages,
                    r.token_count()?
                ))
            }),
        }
    };
    status("db", &filter.user_db_path())?;
    if let Some(system) = filter.system_db_path() {
        status("system-db", &system)?;
    }
    Ok(())
}

fn import(options: &Options, filter: &Filter) -> Result<()> {
    let class = if options.flag("import-spam") {
        Class::Spam
    } else {
        Class::Clean
    };
    let mut imported = export::Imported::default();
    let inputs: Vec<String> = if options.files.is_empty() {
        vec!["-".into()]
    } else {
        options.files.clone()
    };
    for name in &inputs {
        if name == "-" {
            export::read(&mut std::io::stdin().lock(), "stdin", &mut imported)?;
        } else {
            let file = std::fs::File::open(name).map_err(|source| Error::Input {
                path: name.into(),
                source,
            })?;
            export::read(&mut std::io::BufReader::new(file), name, &mut imported)?;
        }
    }
    filter
        .open_user_db()?
        .import(class, &imported.tokens, imported.messages)
}

fn export_db(options: &Options, filter: &Filter) -> Result<()> {
    let target = options.files.first().filter(|f| *f != "-");
    let mut writer: Box<dyn Write> = match target {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path).map_err(
            |source| Error::Input {
                path: path.into(),
                source,
            },
        )?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let Some(store) = Store::open_read_only(&filter.user_db_path(), filter.config().busy_timeout)? else {
        return Err(Error::Database {
            path: filter.user_db_path(),
            message: "does not exist: nothing has been learned yet".into(),
        });
    };
    store.read(|r| {
        let totals = r.totals()?;
        for class in [Class::Clean, Class::Spam] {
            if !options.flag(&format!("export-{}", class.name())) {
                continue;
            }
            let mut tokens = Vec::new();
            r.for_each_token(|t, c| {
                if c.get(class) > 0 {
                    tokens.push((t.to_owned(), c.get(class)));
                }
                Ok(())
            })?;
            let messages = match class {
                Class::Spam => totals.spam_messages,
                Class::Clean => totals.clean_messages,
            };
            export::write(&mut writer, tokens.into_iter(), messages).map_err(Error::Output)?;
        }
        if options.flag("export-probability") {
            r.for_each_token(|t, counts: Counts| {
                let evidence = bsfilter::score::Evidence { counts, totals };
                if let Some(p) = filter.scorer().token_probability(Some(evidence), None) {
                    let (category, word) = t.split_once(':').unwrap_or(("body", t));
                    writeln!(writer, "C {category} {word} {p}").map_err(Error::Output)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    })?;
    writer.flush().map_err(Error::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(0), "19700101000000");
        assert_eq!(utc_timestamp(951_782_400), "20000229000000");
        assert_eq!(utc_timestamp(1_798_761_599), "20261231235959");
    }

    #[test]
    fn config_file_lines_become_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bsfilter.conf");
        std::fs::write(
            &path,
            "# comment\n\nmethod r\n  spam-cutoff   0.7  \ninsert-flag\nimap-server mail.example.jp\njtokenizer mecab\n",
        )
        .unwrap();
        let line = |number: usize, args: &[&str]| ConfigLine {
            number,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        assert_eq!(
            read_config_file(&path).unwrap(),
            [
                line(3, &["--method", "r"]),
                line(4, &["--spam-cutoff", "0.7"]),
                line(5, &["--insert-flag"]),
                line(7, &["--jtokenizer", "lindera"]),
            ]
        );
    }
}
