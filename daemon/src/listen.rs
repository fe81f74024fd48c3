//! The accept loop every listener runs: admit a connection under the caps
//! ([`crate::limits`]) or answer it with the protocol's refusal, survive
//! running out of descriptors, stop at shutdown.
//!
//! `accept` fails for reasons that pass: the process or the system is
//! out of descriptors (EMFILE, ENFILE) or memory (ENOBUFS, ENOMEM), or the
//! client went away before we took it (ECONNABORTED). None of them may end
//! the listener — an imapd whose `?` on `accept` ended at the 1,024th idle
//! client dropped every session with it. The loop logs (at most once a
//! second), waits a moment for descriptors to come free, and goes on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::limits::{ConnectionLimits, Permit, Refusal};
use crate::shutdown::Shutdown;

/// The pause after an accept failed for want of descriptors or memory.
const EXHAUSTED_PAUSE: Duration = Duration::from_millis(100);

/// Binds every address of `addresses`; the error names the one that failed.
pub async fn bind_all(addresses: &[SocketAddr]) -> Result<Vec<TcpListener>, String> {
    let mut bound = Vec::new();
    for addr in addresses {
        match TcpListener::bind(addr).await {
            Ok(l) => bound.push(l),
            Err(e) => return Err(format!("cannot listen on {addr}: {e}")),
        }
    }
    Ok(bound)
}

/// Accepts on `listener` until `shutdown`: each admitted connection runs
/// `handle` in a task of its own, holding its [`Permit`]; one over a cap
/// gets `refusal(cap)` written (best effort, briefly) and is closed.
pub async fn serve<H, F>(
    listener: TcpListener,
    limits: Arc<ConnectionLimits>,
    shutdown: Shutdown,
    refusal: fn(Refusal) -> &'static [u8],
    handle: H,
) where
    H: Fn(TcpStream, SocketAddr, Permit) -> F,
    F: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.triggered() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                let exhausted = matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                );
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!("accept: {e}{}", if exhausted { "; pausing" } else { "" });
                    last_warning = Some(Instant::now());
                }
                if exhausted {
                    tokio::time::sleep(EXHAUSTED_PAUSE).await;
                }
                continue;
            }
        };
        match limits.admit(peer.ip()) {
            Ok(permit) => {
                let session = handle(stream, peer, permit);
                tokio::spawn(async move {
                    if let Err(e) = session.await {
                        tracing::debug!(client = %peer, "connection ended: {e}");
                    }
                });
            }
            Err(cap) => {
                tracing::info!(client = %peer, "refused: {cap:?} connection limit reached");
                tokio::spawn(async move {
                    let mut stream = stream;
                    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(refusal(cap))).await;
                });
            }
        }
    }
}
