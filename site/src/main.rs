//! `mailkit`: the site's own commands. `mailkit up` runs the whole site
//! on this machine; `mailkit report` reads the logs of mtad and imapd and
//! prints the site's figures.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command};
use site::report::{charts, figures::Figures, html, read, tally::Scope, text, time};

fn main() {
    std::process::exit(run(command().get_matches()));
}

fn command() -> Command {
    Command::new("mailkit")
        .about("the mail site's own commands")
        .subcommand_required(true)
        .subcommand(
            Command::new("man")
                .about("write the manual pages of mailkit and its subcommands into DIR (roff, section 1)")
                .arg(Arg::new("dir").value_name("DIR").required(true)),
        )
        .subcommand(
            Command::new("up")
                .about(
                    "run the whole site on this machine: mtad and imapd under a supervisor, on loopback, with a demo \
                     user; the data directory is made on the first start (configuration, certificate, tokens trained \
                     on the sample messages) and reused after; Ctrl-C stops it",
                )
                .arg(
                    Arg::new("data")
                        .long("data")
                        .value_name("DIR")
                        .default_value("mailkit-site")
                        .help("the site's data directory"),
                )
                .arg(
                    Arg::new("port-base")
                        .long("port-base")
                        .value_name("N")
                        .value_parser(clap::value_parser!(u16).range(0..=64_000))
                        .default_value("2000")
                        .help("on the first start: ports at N plus the well-known ones (2025 SMTP, 2587 submission, 2143 IMAP, 2993 IMAPS, 2110 POP3…); 0: any free ports"),
                )
                .arg(
                    Arg::new("foreground")
                        .long("foreground")
                        .action(ArgAction::SetTrue)
                        .help("also write every daemon's log to the terminal, as syslog does (NAME[PID]: line)"),
                ),
        )
        .subcommand(
            Command::new("report")
                .about(
                    "the site's figures from the logs of mtad and imapd: mail received and refused per day by cause, \
                     weekday averages, viruses, one user's mail and its spam, IMAP/POP3 logins inside and outside, \
                     sizes; as text, CSV or JSON, SVG charts and one HTML page",
                )
                .arg(
                    Arg::new("log")
                        .value_name("LOG")
                        .num_args(0..)
                        .help("log files (plain or gzip'ed, any order) or directories of them; none or - reads standard input"),
                )
                .arg(Arg::new("since").long("since").value_name("DATE").help("first day counted: 2026-12-01"))
                .arg(Arg::new("until").long("until").value_name("DATE").help("last day counted (inclusive)"))
                .arg(
                    Arg::new("user")
                        .long("user")
                        .value_name("NAME")
                        .help("the user of the per-user figure: their mail per day and the part the filter called spam"),
                )
                .arg(
                    Arg::new("inside")
                        .long("inside")
                        .value_name("CIDR")
                        .value_delimiter(',')
                        .action(ArgAction::Append)
                        .help("the site's own networks, for logins from inside and outside (repeat, or separate with commas) [default: mtad's mynetworks]"),
                )
                .arg(
                    Arg::new("utc-offset")
                        .long("utc-offset")
                        .value_name("±HH:MM")
                        .allow_hyphen_values(true)
                        .help("where the site's days begin, e.g. +09:00 [default: this machine's offset now]"),
                )
                .arg(
                    Arg::new("format")
                        .long("format")
                        .value_name("FORMAT")
                        .value_parser(["text", "csv", "json"])
                        .default_value("text")
                        .help("what is printed"),
                )
                .arg(
                    Arg::new("charts")
                        .long("charts")
                        .value_name("DIR")
                        .help("also write each chart as DIR/NAME.svg"),
                )
                .arg(
                    Arg::new("html")
                        .long("html")
                        .value_name("FILE")
                        .help("also write one self-contained HTML page of the charts and tables"),
                )
                .arg(
                    Arg::new("config")
                        .long("config")
                        .value_name("FILE")
                        .help(format!(
                            "the site's configuration, for mtad's mynetworks [default: {}]",
                            lda::config::DEFAULT_CONFIG_PATH
                        )),
                ),
        )
}

fn run(matches: ArgMatches) -> i32 {
    match matches.subcommand() {
        Some(("man", m)) => {
            let dir = PathBuf::from(m.get_one::<String>("dir").expect("required"));
            match std::fs::create_dir_all(&dir).and_then(|()| clap_mangen::generate_to(command(), &dir)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("mailkit man: {}: {e}", dir.display());
                    1
                }
            }
        }
        Some(("up", m)) => {
            let programs = std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
                .unwrap_or_default();
            let options = site::up::Options {
                data: PathBuf::from(m.get_one::<String>("data").expect("defaulted")),
                port_base: *m.get_one::<u16>("port-base").expect("defaulted"),
                foreground: m.get_flag("foreground"),
                programs,
            };
            match site::up::up(options) {
                Ok(()) => 0,
                Err(message) => {
                    eprintln!("mailkit up: {message}");
                    1
                }
            }
        }
        Some(("report", m)) => match report(m) {
            Ok(()) => 0,
            Err(message) => {
                eprintln!("mailkit report: {message}");
                1
            }
        },
        _ => 64,
    }
}

/// mtad's `mynetworks`, as the site's configuration has it.
#[derive(serde::Deserialize, Default)]
struct Networks {
    mynetworks: Option<Vec<String>>,
}

fn inside_networks(m: &ArgMatches) -> Result<Vec<ipnet::IpNet>, String> {
    let given: Vec<String> = match m.get_many::<String>("inside") {
        Some(nets) => nets.cloned().collect(),
        None => {
            let path = m.get_one::<String>("config").map(PathBuf::from);
            let file = lda::config::ConfigFile::load(path.as_deref()).map_err(|e| e.to_string())?;
            let mtad: Networks = file.section("mtad").map_err(|e| e.to_string())?;
            // mtad's own default when the file names none
            mtad.mynetworks
                .unwrap_or_else(|| vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()])
        }
    };
    given
        .iter()
        .map(|n| {
            n.parse::<ipnet::IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{n:?} is not a network: write it as 192.0.2.0/24 or 2001:db8::/32"))
        })
        .collect()
}

fn report(m: &ArgMatches) -> Result<(), String> {
    let day = |name: &str| m.get_one::<String>(name).map(|d| time::parse_date(d)).transpose();
    let scope = Scope {
        utc_offset: match m.get_one::<String>("utc-offset") {
            Some(o) => time::parse_offset(o)?,
            None => time::local_offset(),
        },
        since: day("since")?,
        until: day("until")?,
        user: m.get_one::<String>("user").cloned(),
        inside: inside_networks(m)?,
    };
    if let (Some(s), Some(u)) = (scope.since, scope.until)
        && s > u
    {
        return Err("--since is after --until".to_owned());
    }
    let logs: Vec<PathBuf> = m
        .get_many::<String>("log")
        .map(|l| l.map(PathBuf::from).collect())
        .unwrap_or_default();
    let tally = if logs.is_empty() || logs == [PathBuf::from("-")] {
        let mut tally = site::report::tally::Tally::new(scope);
        read::tally_lines(std::io::stdin().lock(), std::path::Path::new("-"), &mut tally)
            .map_err(|e| format!("standard input: {e}"))?;
        tally
    } else {
        let files = read::expand(&logs).map_err(|e| e.to_string())?;
        read::tally_files(&files, &scope).map_err(|e| e.to_string())?
    };
    let figures = Figures::of(&tally);
    let printed = match m.get_one::<String>("format").map(String::as_str) {
        Some("csv") => text::csv(&figures),
        Some("json") => serde_json::to_string_pretty(&figures).map_err(|e| e.to_string())? + "\n",
        _ => text::text(&figures),
    };
    let wants_charts = m.contains_id("charts") || m.contains_id("html");
    let drawn = if wants_charts {
        charts::charts(&figures)
    } else {
        Vec::new()
    };
    if let Some(dir) = m.get_one::<String>("charts") {
        std::fs::create_dir_all(dir).map_err(|e| format!("{dir}: {e}"))?;
        for chart in &drawn {
            let path = PathBuf::from(dir).join(format!("{}.svg", chart.name));
            std::fs::write(&path, &chart.svg).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    if let Some(file) = m.get_one::<String>("html") {
        std::fs::write(file, html::page(&figures, &drawn)).map_err(|e| format!("{file}: {e}"))?;
    }
    let mut out = std::io::stdout().lock();
    // a pipe closed early (| head) is not an error worth a message
    let _ = out.write_all(printed.as_bytes());
    if figures.lines.not_understood > 0 && std::io::stderr().is_terminal() {
        eprintln!(
            "mailkit report: {} lines not understood (the first shown at the end of the text report)",
            figures.lines.not_understood
        );
    }
    Ok(())
}
