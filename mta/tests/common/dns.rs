//! An authoritative DNS server the tests start (hickory-server), on a UDP
//! and a TCP port of 127.0.0.1 the kernel picked.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_server::Server;
use hickory_server::proto::rr::LowerName;
use hickory_server::proto::serialize::txt::Parser;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

/// An authoritative DNS server, until dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    /// Serves `zone` (master-file text with its `$ORIGIN`).
    pub fn start(zone: &str) -> DnsServer {
        DnsServer::serving(&[zone])
    }

    /// Serves each of `zones`.
    pub fn serving(zones: &[&str]) -> DnsServer {
        let mut catalog = Catalog::new();
        for zone in zones {
            let (origin, records) = Parser::new((*zone).to_owned(), None, None)
                .parse()
                .expect("the test's zone parses");
            let authority = InMemoryZoneHandler::<hickory_server::net::runtime::TokioRuntimeProvider>::new(
                origin.clone(),
                records,
                ZoneType::Primary,
                AxfrPolicy::Deny,
            )
            .unwrap();
            catalog.upsert(LowerName::new(&origin), vec![Arc::new(authority)]);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // the TCP port first, then UDP on the same number (a resolver
        // asks one address over both)
        let (tcp, udp) = runtime.block_on(async {
            loop {
                let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = tcp.local_addr().unwrap().port();
                if let Ok(udp) = tokio::net::UdpSocket::bind(("127.0.0.1", port)).await {
                    return (tcp, udp);
                }
            }
        });
        let addr = udp.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let mut server = Server::new(catalog);
                server.register_socket(udp);
                server.register_listener(tcp, std::time::Duration::from_secs(5), 64 << 10);
                let _ = stopped.await;
                let _ = server.shutdown_gracefully().await;
            })
        });
        DnsServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
