//! `imapd [--config FILE] [--listen ADDR:PORT]… [--pop3-listen ADDR:PORT]…`:
//! serves IMAP4rev1 (and POP3) over the users' mbox folders.

use std::path::PathBuf;
use std::sync::Arc;

use bsfilter::error::exit::{CONFIG as EX_CONFIG, OSERR as EX_OSERR, USAGE as EX_USAGE};
use clap::{Arg, ArgAction, Command};
use imapd::Context;
use imapd::config::ImapdConfig;
use lda::config::ConfigFile;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    std::process::exit(run());
}

fn command() -> Command {
    Command::new("imapd")
        .about("IMAP4rev1 server over mbox folders; trains each user's spam filter from their moves")
        .arg(Arg::new("config").long("config").value_name("FILE").help(format!(
            "configuration file [default: {}]",
            lda::config::DEFAULT_CONFIG_PATH
        )))
        .arg(
            Arg::new("man-page")
                .long("man-page")
                .action(ArgAction::SetTrue)
                .help("print this program's manual page (roff: man -l -, or save it as NAME.8)"),
        )
        .arg(
            Arg::new("check-config")
                .long("check-config")
                .action(ArgAction::SetTrue)
                .help("read the configuration, print \"ok\" or what is wrong (file:line:column), and exit 0 or 78"),
        )
        .arg(
            Arg::new("pop3-listen")
                .long("pop3-listen")
                .value_name("ADDR:PORT")
                .action(ArgAction::Append)
                .help("address to serve POP3 on (repeatable; replaces [imapd] pop3_listen)"),
        )
        .arg(
            Arg::new("listen")
                .long("listen")
                .value_name("ADDR:PORT")
                .action(ArgAction::Append)
                .help("address to listen on (repeatable; replaces [imapd] listen)"),
        )
}

/// The delivery sections and `[imapd]`, read from the file once.
fn read_config(path: Option<&std::path::Path>) -> Result<(lda::config::Config, ImapdConfig), String> {
    let file = ConfigFile::load(path).map_err(|e| e.to_string())?;
    let config = lda::config::Config::from_file(&file).map_err(|e| e.to_string())?;
    let imapd = ImapdConfig::from_file(&file).map_err(|e| e.to_string())?;
    if config.passwd_file.is_none() {
        return Err(format!(
            "{}: imapd needs a user table: set [users] passwd_file (Dovecot passwd-file format)",
            file.path().display()
        ));
    }
    if (!imapd.imaps_listen.is_empty() || !imapd.pop3s_listen.is_empty()) && imapd.tls_cert.is_none() {
        return Err(format!(
            "{}: [imapd] imaps_listen / pop3s_listen need tls_cert and tls_key",
            file.path().display()
        ));
    }
    Ok((config, imapd))
}

fn run() -> i32 {
    let matches = command().get_matches();
    if matches.get_flag("man-page") {
        return print_man_page(command());
    }
    let config_path = matches.get_one::<String>("config").map(PathBuf::from);
    let (config, mut imapd) = match read_config(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(EX_CONFIG, &e),
    };
    if matches.get_flag("check-config") {
        // the TLS files too: a server that would not start is not "ok"
        if let Err(e) = imapd::tls_acceptor(&imapd) {
            return fail(EX_CONFIG, &e);
        }
        println!("ok");
        return 0;
    }
    for (flag, target) in [("listen", &mut imapd.listen), ("pop3-listen", &mut imapd.pop3_listen)] {
        if let Some(listen) = matches.get_many::<String>(flag) {
            let parsed: Result<Vec<_>, _> = listen.map(|s| s.parse()).collect();
            match parsed {
                Ok(l) => *target = l,
                Err(_) => return fail(EX_USAGE, &format!("--{flag}: expected ADDR:PORT, e.g. 127.0.0.1:1143")),
            }
        }
    }
    let passwd_file = config.passwd_file.clone().unwrap_or_default();
    // the key is read while still root: it is usually root's alone
    let tls = match imapd::tls_acceptor(&imapd) {
        Ok(tls) => tls,
        Err(e) => return fail(EX_CONFIG, &e),
    };
    let open_files = daemon::privileges::raise_open_files_limit().unwrap_or_else(|e| {
        tracing::warn!("cannot raise the open files limit: {e}");
        1024
    });
    let caps = imapd.limits().within_open_files(open_files);
    if caps.total < imapd.max_connections.get() {
        tracing::warn!(
            "max_connections lowered from {} to {}: the open files limit is {open_files} (LimitNOFILE= in the systemd unit)",
            imapd.max_connections,
            caps.total
        );
        imapd.max_connections = std::num::NonZeroUsize::new(caps.total).unwrap_or(std::num::NonZeroUsize::MIN);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(EX_OSERR, &format!("starting the runtime: {e}")),
    };
    runtime.block_on(async {
        // bind everything first (ports below 1024 need root), then drop root
        let services = [
            (&imapd.listen, Service::Imap),
            (&imapd.imaps_listen, Service::Imaps),
            (&imapd.pop3_listen, Service::Pop3),
            (&imapd.pop3s_listen, Service::Pop3s),
        ];
        let mut bound = Vec::new();
        for (addresses, service) in services {
            match daemon::listen::bind_all(addresses).await {
                Ok(listeners) => bound.extend(listeners.into_iter().map(|l| (l, service))),
                Err(e) => return fail(EX_OSERR, &e),
            }
        }
        let spool = match daemon::privileges::drop_to(imapd.run_as.as_deref(), true) {
            Ok(spool) => spool,
            Err(e) => return fail(EX_CONFIG, &format!("[imapd] {e}")),
        };
        // SIGHUP: the TLS certificate and key are read again (after the
        // privilege drop: run_as must be able to read them for that)
        if let Err(e) = daemon::tls::reload_on_hangup().await {
            return fail(EX_OSERR, &format!("cannot watch for SIGHUP: {e}"));
        }
        let (trigger, shutdown) = daemon::shutdown::channel();
        let ctx = Arc::new(Context::new(config, imapd.clone(), passwd_file, tls, spool, shutdown));
        let mut servers = tokio::task::JoinSet::new();
        for (listener, service) in bound {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("{service:?} on {addr}");
            }
            let ctx = ctx.clone();
            servers.spawn(match service {
                Service::Imap => imapd::server::run(listener, ctx).boxed(),
                Service::Imaps => imapd::server::run_imaps(listener, ctx).boxed(),
                Service::Pop3 => imapd::server::run_pop3(listener, ctx).boxed(),
                Service::Pop3s => imapd::server::run_pop3s(listener, ctx).boxed(),
            });
        }
        match trigger.on_signals().await {
            Ok(signal) => tracing::info!("{signal}: shutting down"),
            Err(e) => return fail(EX_OSERR, &format!("cannot watch for signals: {e}")),
        }
        servers.join_all().await;
        let active = ctx.limits.active();
        if active > 0 {
            tracing::info!("waiting for {active} sessions to end");
        }
        if tokio::time::timeout(daemon::shutdown::GRACE, ctx.limits.drained())
            .await
            .is_err()
        {
            tracing::warn!(
                "{} sessions still open after {:?}: closing them",
                ctx.limits.active(),
                daemon::shutdown::GRACE
            );
        }
        0
    })
}

/// `Box::pin` for the listeners' futures, so one JoinSet holds them all.
trait Boxed: std::future::Future<Output = ()> + Send + Sized + 'static {
    fn boxed(self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(self)
    }
}

impl<F: std::future::Future<Output = ()> + Send + 'static> Boxed for F {}

#[derive(Debug, Clone, Copy)]
enum Service {
    Imap,
    Imaps,
    Pop3,
    Pop3s,
}

/// The manual page, roff on standard output (clap_mangen).
fn print_man_page(command: Command) -> i32 {
    match clap_mangen::Man::new(command)
        .section("8")
        .render(&mut std::io::stdout().lock())
    {
        Ok(()) => 0,
        Err(e) => fail(EX_OSERR, &format!("writing the manual page: {e}")),
    }
}

fn fail(code: i32, message: &str) -> i32 {
    eprintln!("imapd: {message}");
    code
}
