//! The socket side: accepts connections, frames commands (lines plus
//! literals, with size limits), runs IDLE and AUTHENTICATE continuations,
//! and hands complete commands to a [`Session`].
//!
//! Sessions do file I/O (mbox reads and rewrites under locks); they run
//! inside `block_in_place`, so a slow disk delays only that connection.
//!
//! TLS (rustls): implicit on the `imaps`/`pop3s` listeners, or by
//! STARTTLS / STLS on the plain ones. The upgrade refuses a client that
//! sent anything after the STARTTLS command (plaintext injection).

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::Context;
use crate::imap::{Session, Step};
use crate::pop3::{Pop3Session, Pop3Step};

/// Longest command line (outside literals).
pub const MAX_LINE: usize = 64 * 1024;
/// Largest literal (an APPENDed message).
pub const MAX_LITERAL: usize = 64 * 1024 * 1024;
/// How often an IDLE session looks for changes.
pub const IDLE_POLL: Duration = Duration::from_millis(500);
/// Autologout of a silent client (RFC 3501: at least 30 minutes).
pub const AUTOLOGOUT: Duration = Duration::from_secs(30 * 60);

/// Serves IMAP on `listener` until it fails.
pub async fn run(listener: TcpListener, ctx: Arc<Context>) -> std::io::Result<()> {
    accept(listener, ctx, |s, c, x| serve(s, c, x, false)).await
}

/// Serves IMAP over implicit TLS (port 993) on `listener`.
pub async fn run_imaps(listener: TcpListener, ctx: Arc<Context>) -> std::io::Result<()> {
    accept(listener, ctx, |s, c, x| serve(s, c, x, true)).await
}

/// Serves POP3 on `listener` until it fails.
pub async fn run_pop3(listener: TcpListener, ctx: Arc<Context>) -> std::io::Result<()> {
    accept(listener, ctx, |s, c, x| serve_pop3(s, c, x, false)).await
}

/// Serves POP3 over implicit TLS (port 995) on `listener`.
pub async fn run_pop3s(listener: TcpListener, ctx: Arc<Context>) -> std::io::Result<()> {
    accept(listener, ctx, |s, c, x| serve_pop3(s, c, x, true)).await
}

/// How a connection's plaintext phase ended.
enum Ended<S> {
    Closed,
    /// STARTTLS / STLS accepted: continue over TLS on this stream.
    StartTls(S),
}

/// The TLS handshake on `stream`, or None (logged) when it fails.
async fn handshake(ctx: &Context, stream: TcpStream) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let acceptor = ctx.tls.as_ref()?;
    match acceptor.accept(stream).await {
        Ok(tls) => Some(tls),
        Err(e) => {
            tracing::debug!("TLS handshake failed: {e}");
            None
        }
    }
}

async fn accept<F, S>(listener: TcpListener, ctx: Arc<Context>, serve: F) -> std::io::Result<()>
where
    F: Fn(TcpStream, IpAddr, Arc<Context>) -> S + Copy + Send + 'static,
    S: Future<Output = std::io::Result<()>> + Send + 'static,
{
    loop {
        let (socket, peer) = listener.accept().await?;
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(socket, peer.ip(), ctx).await {
                tracing::debug!(client = %peer, "connection ended: {e}");
            }
        });
    }
}

/// POP3 has no literals: a command is a line (RFC 2449 allows 255 bytes;
/// longer lines are refused, then the connection closes).
async fn serve_pop3(socket: TcpStream, client: IpAddr, ctx: Arc<Context>, implicit_tls: bool) -> std::io::Result<()> {
    let _ = socket.set_nodelay(true);
    let mut session = Pop3Session::new(ctx.clone(), client, implicit_tls);
    session.greeting();
    if implicit_tls {
        let Some(tls) = handshake(&ctx, socket).await else {
            return Ok(());
        };
        return pop3_lines(tls, &mut session).await.map(|_| ());
    }
    if let Ended::StartTls(socket) = pop3_lines(socket, &mut session).await?
        && let Some(tls) = handshake(&ctx, socket).await
    {
        session.tls_started();
        pop3_lines(tls, &mut session).await?;
    }
    Ok(())
}

async fn pop3_lines<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    session: &mut Pop3Session,
) -> std::io::Result<Ended<S>> {
    const MAX_POP3_LINE: usize = 4096;
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(reader);
    loop {
        send(&mut writer, &session.out).await?;
        session.out.clear();
        let mut line = Vec::new();
        let read = tokio::time::timeout(
            AUTOLOGOUT,
            (&mut reader)
                .take(MAX_POP3_LINE as u64 + 1)
                .read_until(b'\n', &mut line),
        )
        .await;
        match read {
            Err(_) => {
                send(&mut writer, b"-ERR Autologout; idle for too long.\r\n").await?;
                return Ok(Ended::Closed);
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(0)) => return Ok(Ended::Closed),
            Ok(Ok(_)) if !line.ends_with(b"\n") => {
                send(&mut writer, b"-ERR Line too long.\r\n").await?;
                return Ok(Ended::Closed);
            }
            Ok(Ok(_)) => {}
        }
        let mut step = tokio::task::block_in_place(|| session.handle(&line));
        if step == Pop3Step::AuthContinue {
            send(&mut writer, b"+ \r\n").await?;
            let mut answer = Vec::new();
            if (&mut reader)
                .take(MAX_POP3_LINE as u64)
                .read_until(b'\n', &mut answer)
                .await?
                == 0
            {
                return Ok(Ended::Closed);
            }
            step = tokio::task::block_in_place(|| session.auth_response(&answer));
        }
        match step {
            Pop3Step::Close => {
                send(&mut writer, &session.out).await?;
                return Ok(Ended::Closed);
            }
            Pop3Step::StartTls => {
                send(&mut writer, &session.out).await?;
                session.out.clear();
                if !reader.buffer().is_empty() {
                    return Ok(Ended::Closed); // data pipelined after STLS
                }
                return Ok(Ended::StartTls(reader.into_inner().unsplit(writer)));
            }
            _ => {}
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

async fn serve(socket: TcpStream, client: IpAddr, ctx: Arc<Context>, implicit_tls: bool) -> std::io::Result<()> {
    let _ = socket.set_nodelay(true);
    let mut session = Session::new(ctx.clone(), client, implicit_tls);
    session.greeting();
    if implicit_tls {
        let Some(tls) = handshake(&ctx, socket).await else {
            return Ok(());
        };
        return commands(tls, &mut session).await.map(|_| ());
    }
    if let Ended::StartTls(socket) = commands(socket, &mut session).await?
        && let Some(tls) = handshake(&ctx, socket).await
    {
        session.tls_started();
        commands(tls, &mut session).await?;
    }
    Ok(())
}

/// Reads and answers commands until the connection ends (or STARTTLS).
async fn commands<S: AsyncRead + AsyncWrite + Unpin>(stream: S, session: &mut Session) -> std::io::Result<Ended<S>> {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(reader);
    flush(session, &mut writer).await?;
    loop {
        let frame = match tokio::time::timeout(AUTOLOGOUT, read_command(&mut reader, &mut writer)).await {
            Ok(frame) => frame?,
            Err(_) => {
                send(&mut writer, b"* BYE Autologout; idle for too long.\r\n").await?;
                return Ok(Ended::Closed);
            }
        };
        let command = match frame {
            Frame::Command(c) => c,
            Frame::TooBig(what) => {
                send(&mut writer, format!("* BYE {what}\r\n").as_bytes()).await?;
                return Ok(Ended::Closed);
            }
            Frame::Eof => return Ok(Ended::Closed),
        };
        let step = tokio::task::block_in_place(|| session.handle(&command));
        flush(session, &mut writer).await?;
        match step {
            Step::Continue => {}
            Step::Close => return Ok(Ended::Closed),
            Step::StartTls => {
                if !reader.buffer().is_empty() {
                    return Ok(Ended::Closed); // data pipelined after STARTTLS
                }
                return Ok(Ended::StartTls(reader.into_inner().unsplit(writer)));
            }
            Step::AuthenticateContinue => {
                send(&mut writer, b"+ \r\n").await?;
                let mut line = Vec::new();
                if read_line(&mut reader, &mut line).await? == 0 {
                    return Ok(Ended::Closed);
                }
                tokio::task::block_in_place(|| session.authenticate_response(&line));
                flush(session, &mut writer).await?;
            }
            Step::Idle => {
                send(&mut writer, b"+ idling\r\n").await?;
                let mut line = Vec::new();
                let mut idle_for = Duration::ZERO;
                loop {
                    match tokio::time::timeout(IDLE_POLL, reader.read_until(b'\n', &mut line)).await {
                        Ok(Ok(0)) => return Ok(Ended::Closed),
                        Ok(Ok(_)) if line.ends_with(b"\n") => break,
                        Ok(Ok(_)) if line.len() > MAX_LINE => {
                            send(&mut writer, b"* BYE Line too long.\r\n").await?;
                            return Ok(Ended::Closed);
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(e),
                        Err(_) => {
                            idle_for += IDLE_POLL;
                            if idle_for >= AUTOLOGOUT {
                                send(&mut writer, b"* BYE Autologout.\r\n").await?;
                                return Ok(Ended::Closed);
                            }
                            tokio::task::block_in_place(|| session.idle_poll());
                            flush(session, &mut writer).await?;
                        }
                    }
                }
                let step = tokio::task::block_in_place(|| session.idle_done(&line));
                flush(session, &mut writer).await?;
                if step == Step::Close {
                    return Ok(Ended::Closed);
                }
            }
        }
    }
}

async fn flush<W: AsyncWrite + Unpin>(session: &mut Session, writer: &mut W) -> std::io::Result<()> {
    if !session.out.is_empty() {
        send(writer, &session.out).await?;
        session.out.clear();
    }
    Ok(())
}

/// Writes and flushes (TLS streams buffer until flushed).
async fn send<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

/// Reads one line (up to [`MAX_LINE`] + 1 bytes) into `line`.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut limited = (&mut *reader).take(MAX_LINE as u64 + 1);
    limited.read_until(b'\n', line).await
}

/// Reads a whole command: a line, and for each literal announced at its
/// end (`{N}` or `{N+}`), the continuation request, N bytes and the rest.
async fn read_command<R: AsyncBufRead + Unpin, W: AsyncWrite + Unpin>(
    reader: &mut R,
    writer: &mut W,
) -> std::io::Result<Frame> {
    let mut command = Vec::new();
    loop {
        let start = command.len();
        if read_line(reader, &mut command).await? == 0 {
            return Ok(Frame::Eof);
        }
        if !command.ends_with(b"\n") {
            if command.len() - start > MAX_LINE {
                return Ok(Frame::TooBig("Command line too long."));
            }
            return Ok(Frame::Eof); // the client closed mid-line
        }
        let Some((length, sync)) = literal_announced(&command[start..]) else {
            return Ok(Frame::Command(command));
        };
        if length > MAX_LITERAL || command.len() + length > MAX_LITERAL + MAX_LINE {
            if sync {
                // refuse without reading the data: the client must not send it
                let tag = command.split(|&b| b == b' ').next().unwrap_or(b"*");
                let tag = String::from_utf8_lossy(tag);
                send(
                    writer,
                    format!("{tag} NO [TOOBIG] Literal larger than {MAX_LITERAL} bytes.\r\n").as_bytes(),
                )
                .await?;
                command.clear();
                continue;
            }
            return Ok(Frame::TooBig("Literal too large."));
        }
        if sync {
            send(writer, b"+ Ready for literal data\r\n").await?;
        }
        let at = command.len();
        command.resize(at + length, 0);
        reader.read_exact(&mut command[at..]).await?;
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
