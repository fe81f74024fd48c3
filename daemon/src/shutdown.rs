//! Graceful shutdown: SIGTERM (or SIGINT) stops the listeners; sessions
//! see [`Shutdown::triggered`] between commands, say goodbye in their
//! protocol's words and close; the server waits for them up to a bound
//! ([`ConnectionLimits::drained`](crate::limits::ConnectionLimits::drained))
//! and exits 0.

use std::time::Duration;

use tokio::sync::watch;

/// How long a server waits for its sessions after a shutdown signal.
pub const GRACE: Duration = Duration::from_secs(10);

/// Starts a shutdown.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// Tells whether, and waits until, a shutdown has started. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new trigger and the signal it sets.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Triggers on SIGTERM or SIGINT; returns the signal's name.
    pub async fn on_signals(&self) -> std::io::Result<&'static str> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        self.trigger();
        Ok(name)
    }
}

impl Shutdown {
    /// A signal that never fires (tests, tools).
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx); // keep the channel open: `triggered` waits forever
        Shutdown(rx)
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once a shutdown has started.
    pub async fn triggered(&self) {
        let mut rx = self.0.clone();
        // an error means the trigger is gone: no shutdown can come
        if rx.wait_for(|&on| on).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn triggered_once_set() {
        let (trigger, shutdown) = channel();
        assert!(!shutdown.is_triggered());
        let waiter = tokio::spawn({
            let s = shutdown.clone();
            async move { s.triggered().await }
        });
        trigger.trigger();
        waiter.await.unwrap();
        assert!(shutdown.is_triggered());
        assert!(
            tokio::time::timeout(Duration::from_millis(10), Shutdown::never().triggered())
                .await
                .is_err()
        );
    }
}
