//! `imapd [--config FILE] [--listen ADDR:PORT]… [--pop3-listen ADDR:PORT]…`:
//! serves IMAP4rev1 (and POP3) over the users' mbox folders.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Arg, ArgAction, Command};
use imapd::Context;
use imapd::config::ImapdConfig;

const EX_CONFIG: i32 = 78;
const EX_OSERR: i32 = 71;

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

fn run() -> i32 {
    let matches = command().get_matches();
    let config_path = matches.get_one::<String>("config").map(PathBuf::from);
    let config = match lda::config::Config::load(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(EX_CONFIG, &e.to_string()),
    };
    let text = config_path
        .as_deref()
        .or(Some(std::path::Path::new(lda::config::DEFAULT_CONFIG_PATH)))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let mut imapd = match ImapdConfig::parse(&text) {
        Ok(c) => c,
        Err(e) => return fail(EX_CONFIG, &e),
    };
    for (flag, target) in [("listen", &mut imapd.listen), ("pop3-listen", &mut imapd.pop3_listen)] {
        if let Some(listen) = matches.get_many::<String>(flag) {
            let parsed: Result<Vec<_>, _> = listen.map(|s| s.parse()).collect();
            match parsed {
                Ok(l) => *target = l,
                Err(_) => return fail(64, &format!("--{flag}: expected ADDR:PORT, e.g. 127.0.0.1:1143")),
            }
        }
    }
    let Some(passwd_file) = config.passwd_file.clone() else {
        return fail(
            EX_CONFIG,
            "imapd needs a user table: set [users] passwd_file in the configuration (Dovecot passwd-file format)",
        );
    };
    let ctx = match Context::new(config, imapd.clone(), passwd_file) {
        Ok(ctx) => Arc::new(ctx),
        Err(e) => return fail(EX_CONFIG, &e),
    };
    let wants_tls = !imapd.imaps_listen.is_empty() || !imapd.pop3s_listen.is_empty();
    if wants_tls && ctx.tls.is_none() {
        return fail(
            EX_CONFIG,
            "imaps_listen / pop3s_listen need tls_cert and tls_key in [imapd]",
        );
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
            for addr in addresses {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => bound.push((l, service, *addr)),
                    Err(e) => return fail(EX_OSERR, &format!("cannot listen on {addr}: {e}")),
                }
            }
        }
        if let Err(e) = drop_privileges(imapd.run_as.as_deref()) {
            return fail(EX_CONFIG, &e);
        }
        let mut servers = Vec::new();
        for (listener, service, addr) in bound {
            tracing::info!("{service:?} on {addr}");
            let ctx = ctx.clone();
            servers.push(match service {
                Service::Imap => tokio::spawn(imapd::server::run(listener, ctx)),
                Service::Imaps => tokio::spawn(imapd::server::run_imaps(listener, ctx)),
                Service::Pop3 => tokio::spawn(imapd::server::run_pop3(listener, ctx)),
                Service::Pop3s => tokio::spawn(imapd::server::run_pop3s(listener, ctx)),
            });
        }
        for server in servers {
            if let Ok(Err(e)) = server.await {
                return fail(EX_OSERR, &format!("accepting connections: {e}"));
            }
        }
        0
    })
}

/// Becomes `run_as` (a system user) when started as root. Running as root
/// without it is allowed but warned about: mail files would be root's.
fn drop_privileges(run_as: Option<&str>) -> Result<(), String> {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    match run_as {
        None if root => {
            tracing::warn!("running as root: set [imapd] run_as to the user that owns the mail");
            Ok(())
        }
        None => Ok(()),
        Some(_) if !root => Err("[imapd] run_as needs imapd to be started as root".into()),
        Some(name) => {
            let user =
                lda::users::system_user_by_name(name).ok_or(format!("[imapd] run_as = {name:?}: no such user"))?;
            let uid = user.uid.ok_or(format!("{name}: no uid"))?;
            lda::users::switch_to(uid, user.gid.unwrap_or(uid), true)
                .map_err(|e| format!("cannot switch to {name}: {e}"))?;
            tracing::info!("running as {name} (uid {uid})");
            Ok(())
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Service {
    Imap,
    Imaps,
    Pop3,
    Pop3s,
}

fn fail(code: i32, message: &str) -> i32 {
    eprintln!("imapd: {message}");
    code
}
