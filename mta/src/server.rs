//! The SMTP listeners: accept through [`daemon::listen`] (connection
//! caps, rate caps, shutdown), then run one [`Session`] per connection:
//! read command lines (each within the command timeout, at most
//! [`MAX_LINE`] bytes), the message after DATA through our strict
//! receiver, BDAT chunks by their size; ask the policy chain; commit to
//! the queue; write replies — pipelined replies go out together, when
//! the client has sent nothing more.
//!
//! Before the greeting, a client outside `mynetworks` may be made to wait
//! `greet_pause` (with Postfix postscreen's `220-` trick): one that talks
//! first is a bot, refused with 554 and closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use daemon::connection::{Connection, Line};
use daemon::limits::{Permit, Refusal};
use tokio::net::{TcpListener, TcpStream};

use crate::Context;
use crate::session::{Listener, Session, Step};

/// Longest command line (RFC 5321 allows 512; Postfix takes 2,048).
pub const MAX_LINE: usize = 2048;
/// Slowest a message may come after DATA, in bytes a second, once a
/// command timeout's worth of time has passed (Postfix's
/// `smtpd_min_data_rate`): a client dripping a byte a second cannot hold
/// a session for days.
pub const MIN_DATA_RATE: u64 = 500;

fn refusal(cap: Refusal) -> &'static [u8] {
    match cap {
        Refusal::Total => b"421 4.3.2 Too many connections; try again later\r\n",
        Refusal::Rate => b"421 4.7.0 Error: too many connections from your address this minute\r\n",
        _ => b"421 4.7.0 Error: too many connections from your address\r\n",
    }
}

/// Serves SMTP (port 25) or submission with STARTTLS (587) on `listener`.
pub async fn run(listener: TcpListener, ctx: Arc<Context>, kind: Listener) {
    serve(listener, ctx, kind, false).await
}

/// Serves submission over implicit TLS (port 465) on `listener`.
pub async fn run_implicit_tls(listener: TcpListener, ctx: Arc<Context>) {
    serve(listener, ctx, Listener::Submission, true).await
}

async fn serve(listener: TcpListener, ctx: Arc<Context>, kind: Listener, implicit_tls: bool) {
    let limits = ctx.limits.clone();
    let shutdown = ctx.shutdown.clone();
    daemon::listen::serve(listener, limits, shutdown, refusal, move |tcp, peer, permit| {
        let ctx = ctx.clone();
        async move { connection(tcp, peer, permit, &ctx, kind, implicit_tls).await }
    })
    .await
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    permit: Permit,
    ctx: &Arc<Context>,
    kind: Listener,
    implicit_tls: bool,
) -> std::io::Result<()> {
    let mut conn = match (&ctx.tls, implicit_tls) {
        (Some(acceptor), true) => Connection::implicit_tls(tcp, acceptor).await?,
        (None, true) => return Ok(()),
        (_, false) => Connection::plain(tcp)?,
    };
    let client_name = ctx.dns.client_name(peer.ip()).await;
    let mut session = Session::new(ctx.clone(), kind, peer.ip(), client_name, implicit_tls, Some(permit));
    if !pregreet_check(&mut conn, &mut session, ctx, peer).await? {
        return Ok(());
    }
    let step = session.connect();
    if drive(&mut conn, &mut session, ctx, step).await? == Flow::Close {
        return Ok(());
    }
    let timeout = ctx.config.command_timeout.0;
    loop {
        if !conn.has_buffered_input() {
            flush(&mut conn, &mut session, ctx).await?;
        }
        let mut line = Vec::new();
        let read = tokio::select! {
            _ = ctx.shutdown.triggered() => {
                session.shutting_down();
                flush(&mut conn, &mut session, ctx).await?;
                return Ok(());
            }
            read = tokio::time::timeout(timeout, read_line(&mut conn, &mut line)) => read,
        };
        let step = match read {
            Err(_) => {
                session.timeout();
                flush(&mut conn, &mut session, ctx).await?;
                return Ok(());
            }
            Ok(read) => match read? {
                Line::Complete => session.handle(&line),
                Line::TooLong => {
                    session.line_too_long();
                    Step::Continue
                }
                Line::Closed => return Ok(()),
            },
        };
        match drive(&mut conn, &mut session, ctx, step).await? {
            Flow::Continue => {}
            Flow::Close => return Ok(()),
            Flow::StartTls => match upgrade(conn, &mut session, ctx).await {
                Some(tls) => conn = tls,
                None => return Ok(()),
            },
        }
    }
}

/// One line; a line over [`MAX_LINE`] is read to its end and dropped.
async fn read_line(conn: &mut Connection, line: &mut Vec<u8>) -> std::io::Result<Line> {
    match conn.read_line(line, MAX_LINE).await? {
        Line::TooLong => loop {
            line.clear();
            match conn.read_line(line, MAX_LINE).await? {
                Line::Complete => return Ok(Line::TooLong),
                Line::Closed => return Ok(Line::Closed),
                Line::TooLong => {}
            }
        },
        other => Ok(other),
    }
}

/// The pregreet test: false when the client spoke before the greeting.
async fn pregreet_check(
    conn: &mut Connection,
    session: &mut Session,
    ctx: &Context,
    peer: SocketAddr,
) -> std::io::Result<bool> {
    let pause = ctx.config.greet_pause.0;
    if pause.is_zero() || ctx.config.in_mynetworks(peer.ip()) || ctx.pregreet_passed(peer.ip()) {
        return Ok(true);
    }
    conn.send(format!("220-{} ESMTP mailkit\r\n", ctx.config.hostname).as_bytes())
        .await?;
    let spoke = tokio::time::timeout(pause, conn.fill()).await.is_ok();
    if spoke {
        session.pregreet();
        flush(conn, session, ctx).await?;
        return Ok(false);
    }
    ctx.pregreet_pass(peer.ip());
    Ok(true)
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
    /// STARTTLS was answered: the owner of the connection upgrades it.
    StartTls,
}

/// After STARTTLS: the TLS connection, or None (logged) when the client
/// pipelined data after the command or the handshake failed.
async fn upgrade(conn: Connection, session: &mut Session, ctx: &Context) -> Option<Connection> {
    let acceptor = ctx.tls.as_ref()?;
    let peer = conn.peer();
    match conn.start_tls(acceptor).await {
        Ok(tls) => {
            session.tls_started();
            Some(tls)
        }
        Err(e) => {
            tracing::info!(client = %peer, "STARTTLS: {e}");
            None
        }
    }
}

/// Writes the session's replies (after its pause, if any), within the
/// command timeout: a client that never reads cannot hold the session.
async fn flush(conn: &mut Connection, session: &mut Session, ctx: &Context) -> std::io::Result<()> {
    if let Some(pause) = session.take_pause() {
        tokio::time::sleep(pause).await;
    }
    let out = std::mem::take(&mut session.out);
    if out.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(ctx.config.command_timeout.0, conn.send(&out)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "client does not read",
        )),
    }
}

/// Carries out what a command's step asks until the session wants the
/// next command (or the connection is to close).
async fn drive(
    conn: &mut Connection,
    session: &mut Session,
    ctx: &Arc<Context>,
    mut step: Step,
) -> std::io::Result<Flow> {
    loop {
        step = match step {
            Step::Continue => return Ok(Flow::Continue),
            Step::Close => {
                flush(conn, session, ctx).await?;
                return Ok(Flow::Close);
            }
            Step::StartTls => {
                flush(conn, session, ctx).await?;
                return Ok(Flow::StartTls);
            }
            Step::AuthContinue => {
                flush(conn, session, ctx).await?;
                let mut line = Vec::new();
                match tokio::time::timeout(ctx.config.command_timeout.0, read_line(conn, &mut line)).await {
                    Ok(Ok(Line::Complete)) => session.auth_response(&line),
                    Ok(Ok(Line::TooLong)) => {
                        session.line_too_long();
                        Step::Continue
                    }
                    Ok(Ok(Line::Closed)) => return Ok(Flow::Close),
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        session.timeout();
                        Step::Close
                    }
                }
            }
            Step::Data(mut receiver) => {
                flush(conn, session, ctx).await?;
                match receive_data(conn, &mut receiver, ctx).await? {
                    DataEnd::Done => session.data_received(receiver.finish()),
                    DataEnd::Refused(e) => session.data_received(Err(e)),
                    DataEnd::Closed => return Ok(Flow::Close),
                    DataEnd::Timeout => {
                        session.timeout();
                        Step::Close
                    }
                }
            }
            Step::Chunk { size, last } => {
                let limit = ctx.config.message_size_limit.get();
                let mut chunk = Vec::new();
                let read = async {
                    if size > limit {
                        conn.discard(size as u64).await
                    } else {
                        conn.read_exact_appending(&mut chunk, size).await
                    }
                };
                match tokio::time::timeout(data_deadline(ctx, size as u64), read).await {
                    Ok(Ok(())) => session.chunk_received(&chunk, last),
                    Ok(Err(_)) => return Ok(Flow::Close),
                    Err(_) => {
                        session.timeout();
                        Step::Close
                    }
                }
            }
            Step::Decide(point, facts) => {
                let decision = ctx.chain.decide(point, &facts).await;
                // the facts share the message: let it go before it is queued
                drop(facts);
                session.decided(decision)
            }
            Step::Commit(submission) => {
                let id = submission.id.clone();
                let result = ctx.accept(*submission).await;
                session.committed(&id, result);
                Step::Continue
            }
        };
    }
}

/// How long a transfer of `bytes` may take: the command timeout, plus the
/// bytes at [`MIN_DATA_RATE`].
fn data_deadline(ctx: &Context, bytes: u64) -> Duration {
    ctx.config.command_timeout.0 + Duration::from_secs(bytes / MIN_DATA_RATE)
}

enum DataEnd {
    Done,
    Refused(crate::smtp::data::DataError),
    Closed,
    Timeout,
}

/// Feeds what the client sends into `receiver` until the end of data,
/// leaving what follows it (pipelined commands) unread. Each read waits
/// at most the command timeout, and the whole message may take no longer
/// than [`data_deadline`] of what has come.
async fn receive_data(
    conn: &mut Connection,
    receiver: &mut crate::smtp::data::DataReceiver,
    ctx: &Context,
) -> std::io::Result<DataEnd> {
    use crate::smtp::data::Feed;
    let started = Instant::now();
    loop {
        let buf = match tokio::time::timeout(ctx.config.command_timeout.0, conn.fill()).await {
            Ok(Ok(buf)) => buf,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(DataEnd::Timeout),
        };
        if buf.is_empty() {
            return Ok(DataEnd::Closed);
        }
        let len = buf.len();
        match receiver.feed(buf) {
            Feed::More => conn.consume(len),
            Feed::Done { consumed } => {
                conn.consume(consumed);
                return Ok(DataEnd::Done);
            }
            Feed::Refused(e) => {
                conn.consume(len);
                return Ok(DataEnd::Refused(e));
            }
        }
        if started.elapsed() > data_deadline(ctx, receiver.received() as u64) {
            return Ok(DataEnd::Timeout);
        }
    }
}
