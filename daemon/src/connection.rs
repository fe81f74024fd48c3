//! One client connection, plain or TLS, with bounded reads: a line is
//! read up to a limit (the part beyond is never buffered), a literal or
//! a chunk grows only as its bytes arrive, and STARTTLS refuses a client
//! that sent anything after the command (the plaintext-injection attack,
//! CVE-2011-0411 in Postfix's day).
//!
//! The protocol loops of imapd (IMAP, POP3) and mtad (SMTP, LMTP) read
//! and write through this, so the TLS upgrade and the limits are written
//! once.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::deflate::Deflate;

/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A TCP stream, before or after TLS, and compressed or not.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Deflate(Box<Deflate<Stream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Deflate(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Deflate(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Deflate(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Deflate(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What reading a line gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, its newline included, was appended.
    Complete,
    /// More than the limit arrived without a newline; what was read
    /// (up to the limit and one byte) is in the buffer.
    TooLong,
    /// The client closed the connection (a partial line may be in the
    /// buffer).
    Closed,
}

/// Why STARTTLS did not give a TLS connection.
#[derive(Debug)]
pub enum StartTlsError {
    /// The client sent data after the STARTTLS command, before the
    /// handshake: it would be taken as sent over TLS. The connection is
    /// closed.
    Pipelined,
    Handshake(io::Error),
}

impl std::fmt::Display for StartTlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartTlsError::Pipelined => write!(f, "data pipelined after STARTTLS"),
            StartTlsError::Handshake(e) => write!(f, "TLS handshake failed: {e}"),
        }
    }
}

/// A client connection.
pub struct Connection {
    io: BufReader<Stream>,
    peer: SocketAddr,
    local: SocketAddr,
}

impl Connection {
    /// A plaintext connection.
    pub fn plain(tcp: TcpStream) -> io::Result<Connection> {
        let peer = tcp.peer_addr()?;
        let local = tcp.local_addr()?;
        let _ = tcp.set_nodelay(true);
        Ok(Connection {
            io: BufReader::new(Stream::Plain(tcp)),
            peer,
            local,
        })
    }

    /// A connection with implicit TLS (ports 993, 995, 465).
    pub async fn implicit_tls(tcp: TcpStream, acceptor: &TlsAcceptor) -> io::Result<Connection> {
        let peer = tcp.peer_addr()?;
        let local = tcp.local_addr()?;
        let _ = tcp.set_nodelay(true);
        let tls = handshake(acceptor, tcp).await?;
        Ok(Connection {
            io: BufReader::new(Stream::Tls(Box::new(tls))),
            peer,
            local,
        })
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn is_tls(&self) -> bool {
        fn tls(stream: &Stream) -> bool {
            match stream {
                Stream::Plain(_) => false,
                Stream::Tls(_) => true,
                Stream::Deflate(d) => tls(d.get_ref()),
            }
        }
        tls(self.io.get_ref())
    }

    /// Deflate from here on, both ways (IMAP COMPRESS, after its OK was
    /// sent). Bytes the client sent after the command are the start of
    /// its compressed stream.
    pub fn compress(self) -> Connection {
        let received = self.io.buffer().to_vec();
        Connection {
            io: BufReader::new(Stream::Deflate(Box::new(Deflate::new(self.io.into_inner(), &received)))),
            peer: self.peer,
            local: self.local,
        }
    }

    /// Whether the client has sent bytes not yet read.
    pub fn has_buffered_input(&self) -> bool {
        !self.io.buffer().is_empty()
    }

    /// Writes `bytes` and flushes them (TLS buffers until flushed).
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.io.get_mut();
        stream.write_all(bytes).await?;
        stream.flush().await
    }

    /// Appends one line to `line`, reading at most `max` bytes of it
    /// (counting what `line` already holds: a line read in pieces, as
    /// across an IDLE's polls, stays bounded). Cancel-safe: bytes read
    /// before a cancellation are in `line`.
    pub async fn read_line(&mut self, line: &mut Vec<u8>, max: usize) -> io::Result<Line> {
        let room = (max + 1).saturating_sub(line.len()) as u64;
        (&mut self.io).take(room).read_until(b'\n', line).await?;
        Ok(if line.ends_with(b"\n") {
            Line::Complete
        } else if line.len() > max {
            Line::TooLong
        } else {
            // `take` still had room: the stream ended
            Line::Closed
        })
    }

    /// Appends exactly `n` bytes to `buf`, growing it as they arrive (a
    /// client announcing a large literal and sending nothing costs
    /// nothing).
    pub async fn read_exact_appending(&mut self, buf: &mut Vec<u8>, n: usize) -> io::Result<()> {
        let read = (&mut self.io).take(n as u64).read_to_end(buf).await?;
        if read < n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// The bytes received and not yet taken, waiting for more when there
    /// are none; empty when the client closed. Take them with
    /// [`Connection::consume`] (a receiver that knows where its data ends
    /// leaves the rest, the client's next command, in place).
    pub async fn fill(&mut self) -> io::Result<&[u8]> {
        self.io.fill_buf().await
    }

    /// Marks `n` bytes of what [`Connection::fill`] gave as taken.
    pub fn consume(&mut self, n: usize) {
        std::pin::Pin::new(&mut self.io).consume(n);
    }

    /// Reads and throws away `n` bytes (a refused literal or chunk).
    pub async fn discard(&mut self, n: u64) -> io::Result<()> {
        let copied = tokio::io::copy(&mut (&mut self.io).take(n), &mut tokio::io::sink()).await?;
        if copied < n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// The TLS handshake after a STARTTLS (or STLS) that was answered.
    pub async fn start_tls(self, acceptor: &TlsAcceptor) -> Result<Connection, StartTlsError> {
        if self.has_buffered_input() {
            return Err(StartTlsError::Pipelined);
        }
        let Stream::Plain(tcp) = self.io.into_inner() else {
            return Err(StartTlsError::Handshake(io::Error::other(
                "TLS is already active, or compression",
            )));
        };
        let tls = handshake(acceptor, tcp).await.map_err(StartTlsError::Handshake)?;
        Ok(Connection {
            io: BufReader::new(Stream::Tls(Box::new(tls))),
            peer: self.peer,
            local: self.local,
        })
    }
}

async fn handshake(acceptor: &TlsAcceptor, tcp: TcpStream) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair() -> (Connection, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Connection::plain(server).unwrap(), client)
    }

    #[tokio::test]
    async fn lines_are_bounded_even_when_read_in_pieces() {
        let (mut conn, mut client) = pair().await;
        client.write_all(b"a1 NOOP\r\nxxxxxxxxxxxxxxxxxxxx").await.unwrap();
        let mut line = Vec::new();
        assert_eq!(conn.read_line(&mut line, 16).await.unwrap(), Line::Complete);
        assert_eq!(line, b"a1 NOOP\r\n");
        line.clear();
        assert_eq!(conn.read_line(&mut line, 16).await.unwrap(), Line::TooLong);
        assert_eq!(line.len(), 17);
        // a piece read earlier counts against the same limit
        let mut line = b"0123456789".to_vec();
        client.write_all(b"xxxxxxxxxx").await.unwrap();
        assert_eq!(conn.read_line(&mut line, 16).await.unwrap(), Line::TooLong);
        assert!(line.len() <= 17);
        drop(client);
        let mut line = Vec::new();
        let end = conn.read_line(&mut line, 16).await.unwrap();
        assert!(matches!(end, Line::Closed | Line::TooLong), "{end:?}");
    }

    #[tokio::test]
    async fn a_compressed_line_is_bounded_as_it_inflates() {
        use std::io::Write;
        let (conn, mut client) = pair().await;
        let mut conn = conn.compress();
        // 64 MB of one byte deflates to ~64 KB: a "bomb"
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(b"a1 NOOP\r\n").unwrap();
        enc.write_all(&vec![b'x'; 64 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "{}", bomb.len());
        let sender = tokio::spawn(async move {
            let _ = client.write_all(&bomb).await;
            client
        });
        let mut line = Vec::new();
        assert_eq!(conn.read_line(&mut line, 1024).await.unwrap(), Line::Complete);
        assert_eq!(line, b"a1 NOOP\r\n");
        line.clear();
        assert_eq!(conn.read_line(&mut line, 1024).await.unwrap(), Line::TooLong);
        assert!(line.capacity() < 64 << 10, "{}", line.capacity());
        drop(conn);
        drop(sender.await.unwrap());
    }

    #[tokio::test]
    async fn literals_grow_as_bytes_arrive() {
        let (mut conn, mut client) = pair().await;
        client.write_all(b"12345").await.unwrap();
        drop(client);
        let mut buf = Vec::new();
        let err = conn.read_exact_appending(&mut buf, 64 << 20).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(buf, b"12345");
        assert!(buf.capacity() < 1 << 20, "nothing reserved for the announced size");
    }
}
