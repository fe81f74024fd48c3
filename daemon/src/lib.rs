//! daemon: what the toolkit's long-running servers (imapd, mtad) share, so
//! that each is written once.
//!
//! - [`listen`]: binding, the accept loop (caps, descriptor exhaustion, shutdown);
//! - [`limits`]: connection caps per server, per address, per user and address;
//! - [`connection`]: one client's stream, plain or TLS, with bounded reads and STARTTLS;
//! - [`deflate`]: COMPRESS=DEFLATE on a connection's stream;
//! - [`tls`]: the rustls server configuration from PEM files;
//! - [`auth`]: passwd-file logins: password schemes, failure limits and delays;
//! - [`privileges`]: bind as root, then become the service user; open-files limit;
//! - [`shutdown`]: SIGTERM to a graceful stop.
//!
//! lda does not link this crate (its start-up is measured per delivery).

pub mod auth;
pub mod connection;
pub mod deflate;
pub mod limits;
pub mod listen;
pub mod privileges;
pub mod shutdown;
pub mod tls;
