//! `mtad [--config FILE] [--check-config]`: the SMTP front door.
//! `mtad queue list|flush|hold ID|release ID|delete ID`: its queue
//! (Postfix's mailq, postqueue -f and postsuper -h/-H/-d).
//! `mtad refused --recipient ADDRESS [--since TIME] [LOG…]`: what was
//! refused for one recipient, and why, from mtad's log.
//!
//! Started as root, mtad reads its TLS key, binds its ports, opens its
//! queue (handing it to `run_as`), starts the delivery helper (the one
//! part that stays root, to run lda) and becomes `run_as`.

use std::path::{Path, PathBuf};

use bsfilter::error::exit::{
    CONFIG as EX_CONFIG, IOERR as EX_IOERR, OSERR as EX_OSERR, TEMPFAIL as EX_TEMPFAIL, USAGE as EX_USAGE,
};
use clap::{Arg, ArgAction, ArgMatches, Command};
use lda::config::ConfigFile;
use mta::config::MtadConfig;
use mta::session::Listener;
use mta::{Context, Parts};

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--delivery-helper") {
        let config = args.get(2).map(PathBuf::from);
        std::process::exit(mta::helper::serve(config));
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    std::process::exit(run(command().get_matches()));
}

fn command() -> Command {
    Command::new("mtad")
        .about("SMTP server: relay control, a durable queue, local delivery through lda and remote delivery")
        .arg(
            Arg::new("config")
                .long("config")
                .value_name("FILE")
                .global(true)
                .help(format!(
                    "configuration file [default: {}]",
                    lda::config::DEFAULT_CONFIG_PATH
                )),
        )
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
        .subcommand(
            Command::new("refused")
                .about("what was refused for one recipient and why, from mtad's log (files, or standard input: journalctl -u mtad -o cat | mtad refused …)")
                .arg(Arg::new("recipient").long("recipient").value_name("ADDRESS").required(true))
                .arg(
                    Arg::new("since")
                        .long("since")
                        .value_name("TIME")
                        .help("only from then: 2026-12-02 or 2026-12-02T09:30 (UTC, as the log)"),
                )
                .arg(Arg::new("log").value_name("LOG").num_args(0..)),
        )
        .subcommand(
            Command::new("dkim")
                .about("DKIM keys for signing the site's mail")
                .subcommand_required(true)
                .subcommand(
                    Command::new("keygen")
                        .about("make a signing key (ed25519, or RSA-2048 with --rsa), write it and print the DNS TXT record to publish")
                        .arg(Arg::new("domain").value_name("DOMAIN").required(true))
                        .arg(Arg::new("selector").value_name("SELECTOR").required(true))
                        .arg(
                            Arg::new("rsa")
                                .long("rsa")
                                .action(ArgAction::SetTrue)
                                .help("an RSA-2048 key (made by openssl) instead of ed25519"),
                        )
                        .arg(
                            Arg::new("out")
                                .long("out")
                                .value_name("FILE")
                                .help("where to write the key [default: DOMAIN.SELECTOR.pem here]; never over a file"),
                        ),
                ),
        )
        .subcommand(
            Command::new("queue")
                .about("the queue of the running mtad")
                .subcommand_required(true)
                .subcommand(Command::new("list").about("every queued message and why it waits (mailq)"))
                .subcommand(Command::new("flush").about("try every deferred message now (postqueue -f)"))
                .subcommand(
                    Command::new("hold")
                        .about("keep a message from delivery (postsuper -h)")
                        .arg(Arg::new("id").required(true)),
                )
                .subcommand(
                    Command::new("release")
                        .about("release a held message (postsuper -H)")
                        .arg(Arg::new("id").required(true)),
                )
                .subcommand(
                    Command::new("delete")
                        .about("delete a message (postsuper -d)")
                        .arg(Arg::new("id").required(true)),
                ),
        )
}

fn fail(code: i32, message: &str) -> i32 {
    eprintln!("mtad: {message}");
    code
}

/// The delivery sections and `[mtad]`, read from the file once.
fn read_config(path: Option<&Path>) -> Result<(lda::config::Config, MtadConfig), String> {
    let file = ConfigFile::load(path).map_err(|e| e.to_string())?;
    let delivery = lda::config::Config::from_file(&file).map_err(|e| e.to_string())?;
    let mtad = MtadConfig::from_file(&file).map_err(|e| e.to_string())?;
    if !mtad.submissions_listen.is_empty() && mtad.tls_cert.is_none() {
        return Err(format!(
            "{}: [mtad] submissions_listen needs tls_cert and tls_key",
            file.path().display()
        ));
    }
    if mtad.tls_cert.is_some() != mtad.tls_key.is_some() {
        return Err(format!(
            "{}: [mtad] tls_cert and tls_key go together",
            file.path().display()
        ));
    }
    Ok((delivery, mtad))
}

fn tls_acceptor(mtad: &MtadConfig) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
    match (&mtad.tls_cert, &mtad.tls_key) {
        (Some(cert), Some(key)) => daemon::tls::acceptor(cert, key).map(Some).map_err(|e| e.to_string()),
        _ => Ok(None),
    }
}

fn run(matches: ArgMatches) -> i32 {
    if matches.get_flag("man-page") {
        return match clap_mangen::Man::new(command())
            .section("8")
            .render(&mut std::io::stdout().lock())
        {
            Ok(()) => 0,
            Err(e) => fail(EX_OSERR, &format!("writing the manual page: {e}")),
        };
    }
    if let Some(("refused", sub)) = matches.subcommand() {
        return refused(sub);
    }
    if let Some(("dkim", dkim)) = matches.subcommand()
        && let Some(("keygen", sub)) = dkim.subcommand()
    {
        let domain = sub.get_one::<String>("domain").expect("required");
        let selector = sub.get_one::<String>("selector").expect("required");
        let out = sub
            .get_one::<String>("out")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("{domain}.{selector}.pem")));
        return match mta::policy::dkim::keygen(domain, selector, sub.get_flag("rsa"), &out) {
            Ok(record) => {
                println!("{record}");
                0
            }
            Err(e) => fail(EX_IOERR, &e),
        };
    }
    let config_path = matches.get_one::<String>("config").map(PathBuf::from);
    let (delivery, mut mtad) = match read_config(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(EX_CONFIG, &e),
    };
    if let Some(("queue", sub)) = matches.subcommand() {
        return queue_tool(&mtad, sub);
    }
    let tls = match tls_acceptor(&mtad) {
        Ok(tls) => tls,
        Err(e) => return fail(EX_CONFIG, &e),
    };
    if matches.get_flag("check-config") {
        // the filter chain's tables and signatures are read as at start
        let chain =
            mta::dns::Dns::new(mtad.resolver).and_then(|dns| mta::policy::Chain::from_config(&mtad, &delivery, &dns));
        if let Err(e) = chain {
            return fail(EX_CONFIG, &e);
        }
        println!("ok");
        return 0;
    }
    let open_files = daemon::privileges::raise_open_files_limit().unwrap_or(1024);
    let caps = mtad.limits().within_open_files(open_files);
    if caps.total < mtad.max_connections.get() {
        tracing::warn!(
            "max_connections lowered to {}: the open files limit is {open_files}",
            caps.total
        );
        mtad.max_connections = std::num::NonZeroUsize::new(caps.total).unwrap_or(std::num::NonZeroUsize::MIN);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(EX_OSERR, &format!("starting the runtime: {e}")),
    };
    runtime.block_on(serve(delivery, mtad, config_path, tls))
}

async fn serve(
    delivery: lda::config::Config,
    mtad: MtadConfig,
    config_path: Option<PathBuf>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> i32 {
    let mut listeners = Vec::new();
    for (addresses, kind) in [
        (&mtad.listen, Some(Listener::Smtp)),
        (&mtad.submission_listen, Some(Listener::Submission)),
        (&mtad.submissions_listen, None),
    ] {
        match daemon::listen::bind_all(addresses).await {
            Ok(bound) => listeners.extend(bound.into_iter().map(|l| (l, kind))),
            Err(e) => return fail(EX_OSERR, &e),
        }
    }
    let queue = match mta::queue::Queue::open(&mtad.queue_dir) {
        Ok(q) => q,
        Err(e) => return fail(EX_TEMPFAIL, &format!("{}: {e}", mtad.queue_dir.display())),
    };
    if let (Some(user), true) = (&mtad.run_as, daemon::privileges::is_root())
        && let Err(e) = give_queue_to(&mtad.queue_dir, user)
    {
        return fail(EX_CONFIG, &e);
    }
    // the helper keeps the rights mtad had at start (root: any recipient)
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let local = match mta::helper::Helper::start(&exe, config_path.as_deref()) {
        Ok(h) => h,
        Err(e) => return fail(EX_OSERR, &format!("starting the delivery helper: {e}")),
    };
    if let Err(e) = daemon::privileges::drop_to(mtad.run_as.as_deref(), false) {
        return fail(EX_CONFIG, &format!("[mtad] {e}"));
    }
    // SIGHUP: the TLS certificate and key are read again (after the
    // privilege drop: run_as must be able to read them for that)
    if let Err(e) = daemon::tls::reload_on_hangup().await {
        return fail(EX_OSERR, &format!("cannot watch for SIGHUP: {e}"));
    }
    let (trigger, shutdown) = daemon::shutdown::channel();
    let parts = Parts {
        config: mtad,
        delivery,
        queue,
        tls,
        shutdown,
        local,
    };
    let (ctx, commands) = match Context::new(parts) {
        Ok(c) => c,
        Err(e) => return fail(EX_CONFIG, &e),
    };
    tokio::spawn(mta::delivery::run(ctx.clone(), commands));
    let control = ctx.queue.control_path();
    {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = mta::control::serve(&control, ctx).await {
                tracing::error!("control socket: {e}");
            }
        });
    }
    let mut servers = tokio::task::JoinSet::new();
    for (listener, kind) in listeners {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(
                "{} on {addr}",
                kind.map_or("submissions (TLS)".to_owned(), |k| format!("{k:?}"))
            );
        }
        let ctx = ctx.clone();
        match kind {
            Some(kind) => servers.spawn(mta::server::run(listener, ctx, kind)),
            None => servers.spawn(mta::server::run_implicit_tls(listener, ctx)),
        };
    }
    tracing::info!("ready");
    match trigger.on_signals().await {
        Ok(signal) => tracing::info!("{signal}: shutting down"),
        Err(e) => return fail(EX_OSERR, &format!("cannot watch for signals: {e}")),
    }
    servers.join_all().await;
    if tokio::time::timeout(daemon::shutdown::GRACE, ctx.limits.drained())
        .await
        .is_err()
    {
        tracing::warn!("{} sessions still open: closing them", ctx.limits.active());
    }
    // deliveries under way are finished (one cut off would be made again
    // after the restart); nothing new is started
    if tokio::time::timeout(daemon::shutdown::GRACE, ctx.manager.stop())
        .await
        .is_err()
    {
        tracing::warn!("deliveries still under way: they are tried again at the next start");
    }
    0
}

/// Makes the queue directory and its parts `user`'s (mtad runs as it).
fn give_queue_to(dir: &Path, user: &str) -> Result<(), String> {
    let u = lda::users::system_user_by_name(user).ok_or(format!("[mtad] run_as = {user:?}: no such user"))?;
    let (uid, gid) = (u.uid.unwrap_or(0), u.gid.unwrap_or(0));
    for path in [
        dir.to_owned(),
        dir.join("incoming"),
        dir.join("active"),
        dir.join("state"),
        dir.join("lock"),
    ] {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn queue_tool(mtad: &MtadConfig, sub: &ArgMatches) -> i32 {
    let (verb, args) = sub.subcommand().expect("required");
    let request = match args.try_get_one::<String>("id").ok().flatten() {
        Some(id) if !mta::queue::is_queue_id(id) => return fail(EX_USAGE, &format!("{id:?} is not a queue id")),
        Some(id) => format!("{} {id}", verb.to_ascii_uppercase()),
        None => verb.to_ascii_uppercase(),
    };
    let path = mtad.queue_dir.join("control");
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(EX_OSERR, &e.to_string()),
    };
    match runtime.block_on(mta::control::ask(&path, &request)) {
        Ok(answer) => {
            print!("{answer}");
            if answer.starts_with("no such") || answer.starts_with("unknown") {
                1
            } else {
                0
            }
        }
        Err(e) => fail(
            EX_TEMPFAIL,
            &format!("{}: {e} (is mtad running with this queue_dir?)", path.display()),
        ),
    }
}

/// `mtad refused`: prints each refusal for the recipient; exit 0, or 1
/// when there was none.
fn refused(sub: &ArgMatches) -> i32 {
    use std::io::BufRead;
    let recipient = sub
        .get_one::<String>("recipient")
        .map(String::as_str)
        .unwrap_or_default();
    let since = sub.get_one::<String>("since").map(String::as_str);
    if let Some(s) = since
        && !mta::refused::valid_since(s)
    {
        return fail(
            EX_USAGE,
            &format!("--since {s:?}: give a date (2026-12-02) or a date and time (2026-12-02T09:30)"),
        );
    }
    let logs: Vec<String> = sub
        .get_many::<String>("log")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    let mut found = 0;
    let mut read = |reader: &mut dyn BufRead, name: &str| -> Result<(), String> {
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    if let Some(r) = mta::refused::parse(&String::from_utf8_lossy(&line), recipient, since) {
                        println!("{r}");
                        found += 1;
                    }
                }
                Err(e) => return Err(format!("{name}: {e}")),
            }
        }
    };
    let result = if logs.is_empty() {
        read(&mut std::io::stdin().lock(), "standard input")
    } else {
        logs.iter().try_for_each(|path| match std::fs::File::open(path) {
            Ok(f) => read(&mut std::io::BufReader::new(f), path),
            Err(e) => Err(format!("{path}: {e}")),
        })
    };
    match result {
        Err(e) => fail(EX_IOERR, &e),
        Ok(()) if found == 0 => 1,
        Ok(()) => 0,
    }
}
