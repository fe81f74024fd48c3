//! COMPRESS=DEFLATE (RFC 4978): raw deflate (RFC 1951) in both directions
//! over a connection's stream. What we send is sync-flushed at every
//! flush, so the client can decode each response whole the moment it
//! arrives; what the client sends is handed on as soon as any of it
//! decodes (it waits for our answer to the command it has sent).
//!
//! Written over flate2's streaming `Compress` / `Decompress` rather than a
//! generic adapter crate: those two rules are the whole of the layer, and
//! they are a few calls into flate2's state. flate2 runs on zlib-rs (pure
//! Rust, zlib-ng's design): compressing is nearly all a compressed bulk
//! FETCH costs (93 % of it, perf), and a FETCH 1:* of 54 MB took 3.0 s
//! with it against 3.5–3.9 s with miniz_oxide (Dovecot's zlib: 2.8–3.4 s,
//! `bench/imap-compress.py`). Decoded bytes go straight
//! into the reader's buffer, so a small input that inflates hugely (a
//! "deflate bomb") is bounded by the line and literal limits that apply
//! to what the reader asks for, like plain input.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Compressed bytes read from the stream at a time, and compressed bytes
/// held before a write waits for the stream to take them.
const CHUNK: usize = 16 * 1024;

/// A stream with deflate on both directions.
pub struct Deflate<S> {
    inner: S,
    inflate: Decompress,
    deflate: Compress,
    /// Compressed bytes received: `input[start..end]` are not yet inflated.
    input: Box<[u8]>,
    start: usize,
    end: usize,
    /// The client ended its deflate stream (a final block): nothing more
    /// is read.
    ended: bool,
    /// Compressed bytes to send: `output[sent..]` are not yet written.
    output: Vec<u8>,
    sent: usize,
    /// Written since the last sync flush.
    unflushed: bool,
}

impl<S> Deflate<S> {
    /// Deflate over `inner`; `received` are bytes already read from it
    /// after the command that began compression (the start of the
    /// client's compressed stream).
    pub fn new(inner: S, received: &[u8]) -> Deflate<S> {
        let mut input = vec![0; CHUNK.max(received.len())].into_boxed_slice();
        input[..received.len()].copy_from_slice(received);
        Deflate {
            inner,
            inflate: Decompress::new(false),
            // zlib's (and Dovecot's) default level
            deflate: Compress::new(Compression::new(6), false),
            input,
            start: 0,
            end: received.len(),
            ended: false,
            output: Vec::with_capacity(CHUNK),
            sent: 0,
            unflushed: false,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<S: AsyncRead + Unpin> AsyncRead for Deflate<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ended || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // Inflate even with no input left: the inflater keeps decoded
            // bytes that did not fit the last `buf` and hands them out
            // only when asked, so going to the socket first would wait on
            // a client that is waiting on us (a large APPEND literal hung
            // so).
            let (read, written) = (this.inflate.total_in(), this.inflate.total_out());
            let status = this
                .inflate
                .decompress(
                    &this.input[this.start..this.end],
                    buf.initialize_unfilled(),
                    FlushDecompress::None,
                )
                .map_err(corrupt)?;
            let consumed = (this.inflate.total_in() - read) as usize;
            let produced = (this.inflate.total_out() - written) as usize;
            this.start += consumed;
            buf.advance(produced);
            this.ended = status == Status::StreamEnd;
            if produced > 0 || this.ended {
                return Poll::Ready(Ok(()));
            }
            if consumed > 0 {
                continue;
            }
            // what is left (if anything) is the start of a block too
            // short to decode
            // room for more input after what is left
            this.input.copy_within(this.start..this.end, 0);
            this.end -= this.start;
            this.start = 0;
            if this.end == this.input.len() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "deflate stream does not decode",
                )));
            }
            let mut room = ReadBuf::new(&mut this.input[this.end..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut room))?;
            let n = room.filled().len();
            if n == 0 {
                // the connection closed
                return Poll::Ready(Ok(()));
            }
            this.end += n;
        }
    }
}

impl<S: AsyncWrite + Unpin> Deflate<S> {
    /// Writes what is compressed and not yet sent.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.output.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.output[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.output.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Compresses `input` into `output`; with `FlushCompress::Sync`, until
    /// all of it can be decoded.
    fn compress(&mut self, input: &[u8], flush: FlushCompress) -> io::Result<()> {
        let mut taken = 0;
        loop {
            self.output.reserve(CHUNK);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&input[taken..], &mut self.output, flush)
                .map_err(corrupt)?;
            taken += (self.deflate.total_in() - before) as usize;
            // room left over means the compressor has nothing more to give
            if taken == input.len() && self.output.len() < self.output.capacity() {
                return Ok(());
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deflate<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.output.len() - this.sent >= CHUNK {
            ready!(this.poll_send(cx))?;
        }
        this.compress(buf, FlushCompress::None)?;
        this.unflushed = true;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.unflushed {
            this.compress(&[], FlushCompress::Sync)?;
            this.unflushed = false;
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn each_flush_decodes_whole_and_a_read_hands_on_what_decoded() {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let mut ours = Deflate::new(ours, b"");
        let (mut their_read, mut their_write) = tokio::io::split(theirs);

        ours.write_all(b"* OK first\r\n").await.unwrap();
        ours.flush().await.unwrap();
        let mut got = vec![0; 4096];
        let n = their_read.read(&mut got).await.unwrap();
        // a sync flush: what was sent decodes before the stream's end
        let mut text = Vec::new();
        let mut dec = flate2::read::DeflateDecoder::new(&got[..n]);
        let _ = dec.read_to_end(&mut text);
        assert_eq!(text, b"* OK first\r\n");

        // the client's first command, sync-flushed, is read without
        // waiting for more (the client waits for our answer)
        let mut client = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        client.write_all(b"a1 NOOP\r\n").unwrap();
        client.flush().unwrap();
        let first = std::mem::take(client.get_mut());
        their_write.write_all(&first).await.unwrap();
        let mut line = vec![0; 64];
        let n = tokio::time::timeout(Duration::from_secs(30), ours.read(&mut line))
            .await
            .expect("a read waited for more than one command")
            .unwrap();
        assert_eq!(&line[..n], b"a1 NOOP\r\n");

        client.write_all(b"a2 LOGOUT\r\n").unwrap();
        let rest = client.finish().unwrap();
        their_write.write_all(&rest).await.unwrap();
        drop(their_write);
        let mut all = Vec::new();
        ours.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"a2 LOGOUT\r\n");
    }

    #[tokio::test]
    async fn decoded_bytes_held_back_by_a_small_read_come_out_without_more_input() {
        // one command with a long literal, sync-flushed; the client then
        // waits for our answer, so nothing more arrives
        let command: Vec<u8> = (0..20000)
            .flat_map(|i| format!("line {i:05} of a literal\r\n").into_bytes())
            .collect();
        let mut client = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        client.write_all(&command).unwrap();
        client.flush().unwrap();
        let sent = std::mem::take(client.get_mut());
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let mut ours = Deflate::new(ours, b"");
        theirs.write_all(&sent).await.unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0; 100];
        while got.len() < command.len() {
            let n = tokio::time::timeout(Duration::from_secs(30), ours.read(&mut buf))
                .await
                .expect("a read waited on the socket with decoded bytes held")
                .unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, command);
    }

    #[tokio::test]
    async fn bytes_that_are_not_deflate_are_an_error() {
        let mut ours = Deflate::new(tokio::io::empty(), b"a1 NOOP\r\n\xff\xff\xff\xff");
        let mut buf = vec![0; 64];
        let err = ours.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
