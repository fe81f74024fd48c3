//! The protocol loops: accept (through [`daemon::listen`], with its
//! connection caps), frame commands (lines plus literals, with limits),
//! run IDLE and AUTHENTICATE continuations, and hand complete commands to
//! a [`Session`] or [`Pop3Session`]. TLS, implicit or by STARTTLS / STLS,
//! is one path for both protocols ([`daemon::connection`]).
//!
//! Sessions do file I/O (mbox reads and rewrites under locks); they run
//! inside `block_in_place`, so a slow disk delays only that connection.
//! What a session asks to wait (the delay after a failed login) is waited
//! here, asynchronously, and a long FETCH is written message by message
//! as the client reads it.
//!
//! Memory per connection is bounded: before login a literal may hold
//! [`MAX_LITERAL_BEFORE_LOGIN`] bytes (a password), after it
//! [`MAX_LITERAL`]; every line, IDLE's `DONE` included, [`MAX_LINE`]; a
//! literal's buffer grows as its bytes arrive, never from the size a
//! client announces.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use daemon::connection::{Connection, Line};
use daemon::limits::{Permit, Refusal};
use tokio::net::{TcpListener, TcpStream};

use crate::Context;
use crate::imap::{Session, Step};
use crate::pop3::{Pop3Session, Pop3Step};

/// Longest command line (outside literals).
pub const MAX_LINE: usize = 64 * 1024;
/// Largest literal (an APPENDed message).
pub const MAX_LITERAL: usize = 64 * 1024 * 1024;
/// Largest literal before login (LOGIN's password, AUTHENTICATE's
/// answer), as Dovecot's login process allows only small ones.
pub const MAX_LITERAL_BEFORE_LOGIN: usize = 8 * 1024;
/// POP3 has no literals: RFC 2449 allows 255-byte lines; a little more.
pub const MAX_POP3_LINE: usize = 4096;
/// How often an IDLE session looks for changes.
pub const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often IDLE looks at a file inotify watches (a safety net).
pub const IDLE_WATCHED_POLL: Duration = Duration::from_secs(30);
/// Autologout of a silent client (RFC 3501: at least 30 minutes).
pub const AUTOLOGOUT: Duration = Duration::from_secs(30 * 60);
/// Autologout before login (Dovecot gives 1 minute; a slow client on a
/// bad line gets three).
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Imap,
    Pop3,
}

/// Serves IMAP on `listener` until shutdown.
pub async fn run(listener: TcpListener, ctx: Arc<Context>) {
    serve(listener, ctx, Protocol::Imap, false).await
}

/// Serves IMAP over implicit TLS (port 993) on `listener`.
pub async fn run_imaps(listener: TcpListener, ctx: Arc<Context>) {
    serve(listener, ctx, Protocol::Imap, true).await
}

/// Serves POP3 on `listener` until shutdown.
pub async fn run_pop3(listener: TcpListener, ctx: Arc<Context>) {
    serve(listener, ctx, Protocol::Pop3, false).await
}

/// Serves POP3 over implicit TLS (port 995) on `listener`.
pub async fn run_pop3s(listener: TcpListener, ctx: Arc<Context>) {
    serve(listener, ctx, Protocol::Pop3, true).await
}

fn imap_refusal(cap: Refusal) -> &'static [u8] {
    match cap {
        Refusal::Total => b"* BYE [UNAVAILABLE] Too many connections; try again later.\r\n",
        _ => b"* BYE [UNAVAILABLE] Too many connections from your address; try again later.\r\n",
    }
}

fn pop3_refusal(cap: Refusal) -> &'static [u8] {
    match cap {
        Refusal::Total => b"-ERR [SYS/TEMP] Too many connections; try again later.\r\n",
        _ => b"-ERR [SYS/TEMP] Too many connections from your address; try again later.\r\n",
    }
}

async fn serve(listener: TcpListener, ctx: Arc<Context>, protocol: Protocol, implicit_tls: bool) {
    let refusal = match protocol {
        Protocol::Imap => imap_refusal,
        Protocol::Pop3 => pop3_refusal,
    };
    let limits = ctx.limits.clone();
    let shutdown = ctx.shutdown.clone();
    daemon::listen::serve(listener, limits, shutdown, refusal, move |tcp, peer, permit| {
        let ctx = ctx.clone();
        async move { connection(tcp, peer, permit, &ctx, protocol, implicit_tls).await }
    })
    .await
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    permit: Permit,
    ctx: &Arc<Context>,
    protocol: Protocol,
    implicit_tls: bool,
) -> std::io::Result<()> {
    let conn = match (&ctx.tls, implicit_tls) {
        (Some(acceptor), true) => Connection::implicit_tls(tcp, acceptor).await?,
        (None, true) => return Ok(()),
        (_, false) => Connection::plain(tcp)?,
    };
    match protocol {
        Protocol::Imap => {
            imap(
                conn,
                Session::new(ctx.clone(), peer.ip(), implicit_tls, Some(permit)),
                ctx,
            )
            .await
        }
        Protocol::Pop3 => {
            pop3(
                conn,
                Pop3Session::new(ctx.clone(), peer.ip(), implicit_tls, Some(permit)),
                ctx,
            )
            .await
        }
    }
}

/// After STARTTLS / STLS was answered: the TLS connection, or `None`
/// (logged) when the client pipelined data or the handshake failed.
async fn start_tls(conn: Connection, ctx: &Context) -> Option<Connection> {
    let acceptor = ctx.tls.as_ref()?;
    let peer = conn.peer();
    match conn.start_tls(acceptor).await {
        Ok(tls) => Some(tls),
        Err(e) => {
            tracing::info!(client = %peer, "STARTTLS: {e}");
            None
        }
    }
}

enum Frame {
    Command(Vec<u8>),
    /// A line or literal over the limits: answered, then the connection
    /// closes (the rest of the stream can't be framed reliably).
    TooBig(&'static str),
    Eof,
}

/// Writes the session's responses, waiting first if it asked to, and
/// then the rest of a long response as the client takes it.
async fn flush(conn: &mut Connection, session: &mut Session) -> std::io::Result<()> {
    if let Some(pause) = session.take_pause() {
        tokio::time::sleep(pause).await;
    }
    loop {
        let out = std::mem::take(&mut session.out);
        if !out.is_empty() {
            conn.send(&out).await?;
        }
        if !session.has_more_output() {
            return Ok(());
        }
        tokio::task::block_in_place(|| session.continue_output());
    }
}

async fn imap(mut conn: Connection, mut session: Session, ctx: &Context) -> std::io::Result<()> {
    session.greeting();
    flush(&mut conn, &mut session).await?;
    loop {
        let timeout = if session.is_authenticated() {
            AUTOLOGOUT
        } else {
            LOGIN_TIMEOUT
        };
        let limit = if session.is_authenticated() {
            MAX_LITERAL
        } else {
            MAX_LITERAL_BEFORE_LOGIN
        };
        let frame = tokio::select! {
            _ = ctx.shutdown.triggered() => {
                conn.send(b"* BYE Server shutting down.\r\n").await?;
                return Ok(());
            }
            frame = tokio::time::timeout(timeout, read_command(&mut conn, limit)) => frame,
        };
        let command = match frame {
            Ok(frame) => match frame? {
                Frame::Command(c) => c,
                Frame::TooBig(what) => {
                    conn.send(format!("* BYE {what}\r\n").as_bytes()).await?;
                    return Ok(());
                }
                Frame::Eof => return Ok(()),
            },
            Err(_) => {
                conn.send(b"* BYE Autologout; idle for too long.\r\n").await?;
                return Ok(());
            }
        };
        let step = tokio::task::block_in_place(|| session.handle(&command));
        flush(&mut conn, &mut session).await?;
        match step {
            Step::Continue => {}
            Step::Close => return Ok(()),
            Step::Compress => conn = conn.compress(),
            Step::StartTls => match start_tls(conn, ctx).await {
                Some(tls) => {
                    conn = tls;
                    session.tls_started();
                }
                None => return Ok(()),
            },
            Step::AuthenticateContinue => {
                conn.send(b"+ \r\n").await?;
                let mut line = Vec::new();
                match tokio::time::timeout(LOGIN_TIMEOUT, conn.read_line(&mut line, MAX_LINE)).await {
                    Ok(Ok(Line::Complete)) => {}
                    Ok(Ok(Line::TooLong)) => {
                        conn.send(b"* BYE Line too long.\r\n").await?;
                        return Ok(());
                    }
                    Ok(Ok(Line::Closed)) | Err(_) => return Ok(()),
                    Ok(Err(e)) => return Err(e),
                }
                tokio::task::block_in_place(|| session.authenticate_response(&line));
                flush(&mut conn, &mut session).await?;
            }
            Step::Idle => {
                if !idle(&mut conn, &mut session, ctx).await? {
                    return Ok(());
                }
            }
        }
    }
}

/// IDLE until `DONE`: changes are reported as they happen (inotify, see
/// [`crate::watch`]), with a look every [`IDLE_POLL`] where the file
/// cannot be watched and every [`IDLE_WATCHED_POLL`] where it can (a
/// change inotify cannot see: a file system over the network). False when
/// the connection is to close.
async fn idle(conn: &mut Connection, session: &mut Session, ctx: &Context) -> std::io::Result<bool> {
    conn.send(b"+ idling\r\n").await?;
    let mut changes = session.selected_file().and_then(|file| ctx.watcher.watch(&file));
    // what changed between the last look and the watch's start is told
    // by no event: one look now (a delivery in that gap waited for the
    // 30 s safety poll, and a test caught it)
    tokio::task::block_in_place(|| session.idle_poll());
    flush(conn, session).await?;
    let poll = if changes.is_some() {
        IDLE_WATCHED_POLL
    } else {
        IDLE_POLL
    };
    let changed = async |changes: &mut Option<crate::watch::Changes>| match changes {
        Some(c) => c.changed().await,
        None => std::future::pending().await,
    };
    let mut line = Vec::new();
    let started = tokio::time::Instant::now();
    loop {
        let read = tokio::select! {
            _ = ctx.shutdown.triggered() => {
                conn.send(b"* BYE Server shutting down.\r\n").await?;
                return Ok(false);
            }
            () = changed(&mut changes) => Err(()),
            read = tokio::time::timeout(poll, conn.read_line(&mut line, MAX_LINE)) => read.map_err(|_| ()),
        };
        match read {
            Ok(Ok(Line::Complete)) => break,
            Ok(Ok(Line::TooLong)) => {
                conn.send(b"* BYE Line too long.\r\n").await?;
                return Ok(false);
            }
            Ok(Ok(Line::Closed)) => return Ok(false),
            Ok(Err(e)) => return Err(e),
            Err(()) => {
                if started.elapsed() >= AUTOLOGOUT {
                    conn.send(b"* BYE Autologout.\r\n").await?;
                    return Ok(false);
                }
                tokio::task::block_in_place(|| session.idle_poll());
                flush(conn, session).await?;
            }
        }
    }
    let step = tokio::task::block_in_place(|| session.idle_done(&line));
    flush(conn, session).await?;
    Ok(step != Step::Close)
}

/// Reads a whole command: a line, and for each literal announced at its
/// end (`{N}` or `{N+}`), the continuation request, N bytes and the rest.
/// Literals over `literal_limit` are refused (a synchronizing one without
/// reading it: the client must not send it).
async fn read_command(conn: &mut Connection, literal_limit: usize) -> std::io::Result<Frame> {
    let mut command = Vec::new();
    loop {
        let start = command.len();
        match conn.read_line(&mut command, start + MAX_LINE).await? {
            Line::Complete => {}
            Line::TooLong => return Ok(Frame::TooBig("Command line too long.")),
            Line::Closed => return Ok(Frame::Eof),
        }
        let Some((length, sync)) = literal_announced(&command[start..]) else {
            return Ok(Frame::Command(command));
        };
        if length > literal_limit || command.len() + length > literal_limit + MAX_LINE {
            if sync {
                let tag = command.split(|&b| b == b' ').next().unwrap_or(b"*");
                let tag = String::from_utf8_lossy(tag);
                conn.send(format!("{tag} NO [TOOBIG] Literal larger than {literal_limit} bytes.\r\n").as_bytes())
                    .await?;
                command.clear();
                continue;
            }
            return Ok(Frame::TooBig("Literal too large."));
        }
        if sync {
            conn.send(b"+ Ready for literal data\r\n").await?;
        }
        conn.read_exact_appending(&mut command, length).await?;
    }
}

/// `{123}\r\n` or `{123+}\r\n` at the end of a line: (length, synchronizing).
fn literal_announced(line: &[u8]) -> Option<(usize, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let inner = &line[open + 1..];
    let (digits, sync) = match inner.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inner, true),
    };
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((std::str::from_utf8(digits).ok()?.parse().ok()?, sync))
}

async fn pop3(mut conn: Connection, mut session: Pop3Session, ctx: &Context) -> std::io::Result<()> {
    session.greeting();
    loop {
        if let Some(pause) = session.take_pause() {
            tokio::time::sleep(pause).await;
        }
        conn.send(&std::mem::take(&mut session.out)).await?;
        let mut line = Vec::new();
        let timeout = if session.is_authenticated() {
            AUTOLOGOUT
        } else {
            LOGIN_TIMEOUT
        };
        let read = tokio::select! {
            _ = ctx.shutdown.triggered() => {
                conn.send(b"-ERR Server shutting down.\r\n").await?;
                return Ok(());
            }
            read = tokio::time::timeout(timeout, conn.read_line(&mut line, MAX_POP3_LINE)) => read,
        };
        match read {
            Err(_) => {
                conn.send(b"-ERR Autologout; idle for too long.\r\n").await?;
                return Ok(());
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Line::Closed)) => return Ok(()),
            Ok(Ok(Line::TooLong)) => {
                conn.send(b"-ERR Line too long.\r\n").await?;
                return Ok(());
            }
            Ok(Ok(Line::Complete)) => {}
        }
        let mut step = tokio::task::block_in_place(|| session.handle(&line));
        if step == Pop3Step::AuthContinue {
            conn.send(&std::mem::take(&mut session.out)).await?;
            conn.send(b"+ \r\n").await?;
            let mut answer = Vec::new();
            if conn.read_line(&mut answer, MAX_POP3_LINE).await? != Line::Complete {
                return Ok(());
            }
            step = tokio::task::block_in_place(|| session.auth_response(&answer));
        }
        match step {
            Pop3Step::Close => {
                if let Some(pause) = session.take_pause() {
                    tokio::time::sleep(pause).await;
                }
                conn.send(&std::mem::take(&mut session.out)).await?;
                return Ok(());
            }
            Pop3Step::StartTls => {
                conn.send(&std::mem::take(&mut session.out)).await?;
                match start_tls(conn, ctx).await {
                    Some(tls) => {
                        conn = tls;
                        session.tls_started();
                    }
                    None => return Ok(()),
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_markers() {
        assert_eq!(literal_announced(b"a APPEND x {12}\r\n"), Some((12, true)));
        assert_eq!(literal_announced(b"a APPEND x {12+}\r\n"), Some((12, false)));
        assert_eq!(literal_announced(b"a NOOP\r\n"), None);
        assert_eq!(literal_announced(b"a x {}\r\n"), None);
        assert_eq!(literal_announced(b"a x {99999999999999}\r\n"), None);
    }
}
