//! The supervisor, as Postfix's master: each daemon a process of its own,
//! started again with a growing pause when it dies (1 s, doubling to a
//! minute; back to 1 s once it has run a minute) — but one that dies
//! before the site is first up ends it all, as it would only die again
//! (a port in use, a key it cannot read) — SIGTERM and SIGINT
//! passed on as SIGTERM and waited for, SIGHUP passed on (the daemons
//! read their certificates again). Each daemon's standard error is its
//! log: appended to `LOG_DIR/NAME.log` and, in the foreground, written to
//! ours behind `NAME[PID]: ` as syslog writes it.
//!
//! Signals are taken synchronously (blocked, then `sigtimedwait`) in the
//! one thread that owns the children, so no handler runs at an
//! arbitrary moment and a child is never reaped by anyone else.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One daemon to run.
pub struct Program {
    pub name: &'static str,
    pub path: PathBuf,
    pub args: Vec<String>,
}

/// What the caller hears of the daemons' logs: every line, with the
/// daemon's name (for the ports they listen on, and readiness).
pub type OnLine = Arc<dyn Fn(&'static str, &str) + Send + Sync>;

const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(60);
/// A daemon that ran this long before dying starts again at once.
const RAN_WELL: Duration = Duration::from_secs(60);
/// How long the daemons get to stop before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(25);

enum State {
    /// `drained` hears when the daemon's log has been read to its end.
    Running {
        child: Child,
        since: Instant,
        drained: std::sync::mpsc::Receiver<()>,
    },
    Waiting {
        until: Instant,
    },
}

struct Daemon {
    program: Program,
    state: State,
    pause: Duration,
}

/// The signals the supervisor takes itself.
fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset and sigaddset only write the set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks the supervisor's signals in this thread (and the threads it
/// starts after): call before any thread is started.
pub fn block_signals() {
    let set = signal_set();
    // SAFETY: changes only this thread's mask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// The next of the supervisor's signals, if one comes within `wait`.
fn next_signal(wait: Duration) -> Option<i32> {
    let set = signal_set();
    let timeout = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the set and timeout are valid; the info pointer may be null.
    let s = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
    (s > 0).then_some(s)
}

/// The daemon started, and what hears when its log is read to the end.
fn start(
    program: &Program,
    log_dir: &Path,
    foreground: bool,
    on_line: &OnLine,
) -> std::io::Result<(Child, std::sync::mpsc::Receiver<()>)> {
    let mut command = Command::new(&program.path);
    command
        .args(&program.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            // the terminal's Ctrl-C is the supervisor's to pass on, and
            // the child starts with no signal blocked
            libc::setpgid(0, 0);
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let pid = child.id();
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join(format!("{}.log", program.name)))?;
    let (name, on_line) = (program.name, on_line.clone());
    let (drained, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stderr);
        let mut line = Vec::new();
        while matches!(lines.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let _ = log.write_all(&line);
            if !line.ends_with(b"\n") {
                let _ = log.write_all(b"\n");
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if foreground {
                eprintln!("{name}[{pid}]: {text}");
            }
            on_line(name, text);
            line.clear();
        }
        let _ = drained.send(());
    });
    Ok((child, heard))
}

fn signal_child(child: &Child, signal: i32) {
    // SAFETY: kill with a child's pid; a child already gone is no harm.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
}

/// How supervision ended.
#[derive(Debug)]
pub enum Ended {
    /// SIGTERM or SIGINT: the daemons were stopped.
    Stopped,
    /// A daemon died before `up` said the site was: it would only die
    /// again (a port in use, a file it cannot read), so the others were
    /// stopped too. Its name and how it ended.
    DiedAtStart(&'static str, std::process::ExitStatus),
}

/// Runs `programs` until SIGTERM or SIGINT; then stops them and returns.
/// Until `up` is true, a daemon that dies ends it all instead of being
/// started again. `block_signals` must have been called first.
pub fn supervise(
    programs: Vec<Program>,
    log_dir: &Path,
    foreground: bool,
    on_line: OnLine,
    up: &std::sync::atomic::AtomicBool,
) -> std::io::Result<Ended> {
    let mut daemons = Vec::new();
    for program in programs {
        let (child, drained) = start(&program, log_dir, foreground, &on_line)?;
        tracing::info!(program = program.name, pid = child.id(), "started");
        daemons.push(Daemon {
            program,
            state: State::Running {
                child,
                since: Instant::now(),
                drained,
            },
            pause: FIRST_PAUSE,
        });
    }
    loop {
        let signal = next_signal(Duration::from_millis(250));
        match signal {
            Some(libc::SIGTERM | libc::SIGINT) => {
                let name = if signal == Some(libc::SIGINT) {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                tracing::info!("{name}: stopping the daemons");
                stop(&mut daemons);
                return Ok(Ended::Stopped);
            }
            Some(libc::SIGHUP) => {
                for d in &daemons {
                    if let State::Running { child, .. } = &d.state {
                        signal_child(child, libc::SIGHUP);
                        tracing::info!(program = d.program.name, pid = child.id(), "SIGHUP passed on");
                    }
                }
            }
            _ => {}
        }
        let now = Instant::now();
        for d in &mut daemons {
            match &mut d.state {
                State::Running { child, since, drained } => {
                    let Ok(Some(status)) = child.try_wait() else {
                        continue;
                    };
                    if !up.load(std::sync::atomic::Ordering::SeqCst) {
                        let name = d.program.name;
                        // its last words in its log before anyone reads
                        // them (a process it left may hold the pipe: a bound)
                        let _ = drained.recv_timeout(Duration::from_secs(5));
                        tracing::error!(program = name, status = %status, "died before the site was up");
                        d.state = State::Waiting { until: now };
                        stop(&mut daemons);
                        return Ok(Ended::DiedAtStart(name, status));
                    }
                    let ran = now - *since;
                    d.pause = if ran >= RAN_WELL { FIRST_PAUSE } else { d.pause };
                    tracing::warn!(
                        program = d.program.name,
                        pid = child.id(),
                        status = %status,
                        ran_seconds = ran.as_secs(),
                        "died; starting it again in {} s",
                        d.pause.as_secs()
                    );
                    d.state = State::Waiting { until: now + d.pause };
                    d.pause = (d.pause * 2).min(LONGEST_PAUSE);
                }
                State::Waiting { until } if *until <= now => match start(&d.program, log_dir, foreground, &on_line) {
                    Ok((child, drained)) => {
                        tracing::info!(program = d.program.name, pid = child.id(), "started again");
                        d.state = State::Running {
                            child,
                            since: now,
                            drained,
                        };
                    }
                    Err(e) => {
                        tracing::error!(
                            program = d.program.name,
                            "cannot start: {e}; trying again in {} s",
                            d.pause.as_secs()
                        );
                        d.state = State::Waiting { until: now + d.pause };
                        d.pause = (d.pause * 2).min(LONGEST_PAUSE);
                    }
                },
                State::Waiting { .. } => {}
            }
        }
    }
}

/// SIGTERM to every daemon, then waits; SIGKILL for any left after the
/// grace.
fn stop(daemons: &mut [Daemon]) {
    for d in daemons.iter() {
        if let State::Running { child, .. } = &d.state {
            signal_child(child, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    for d in daemons.iter_mut() {
        let State::Running { child, .. } = &mut d.state else {
            continue;
        };
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    tracing::info!(program = d.program.name, status = %status, "stopped");
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    next_signal(Duration::from_millis(100));
                }
                _ => {
                    tracing::warn!(program = d.program.name, "did not stop in time: killed");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
}
