//! The accept loop out of descriptors: `accept` fails with EMFILE, the
//! loop pauses and goes on, and takes the waiting clients once
//! descriptors are free. (Its own test binary: it lowers this process's
//! open-files limit, which no other test may share.)

use std::time::Duration;

use daemon::limits::{Caps, ConnectionLimits, Refusal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn refusal(_: Refusal) -> &'static [u8] {
    b"refused\r\n"
}

/// Descriptors open in this process now.
fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_survives_running_out_of_descriptors() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let limits = ConnectionLimits::new(Caps {
        total: 10_000,
        per_address: 10_000,
        per_user_address: 10,
        rate_per_minute: 0,
    });
    let (trigger, shutdown) = daemon::shutdown::channel();
    let served = tokio::spawn(daemon::listen::serve(
        listener,
        limits.clone(),
        shutdown,
        refusal,
        |mut stream, _, permit| async move {
            let _ = stream.write_all(b"hello\r\n").await;
            // hold the connection (and its descriptor) until the client goes
            let mut buf = [0u8; 1];
            let _ = stream.read(&mut buf).await;
            drop(permit);
            Ok(())
        },
    ));
    // the client sockets exist before the limit is lowered: connecting
    // them needs no descriptor more
    let sockets: Vec<_> = (0..40).map(|_| tokio::net::TcpSocket::new_v4().unwrap()).collect();
    let original = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let lowered = rustix::process::Rlimit {
        current: Some(open_descriptors() + 10),
        ..original
    };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, lowered).unwrap();
    let mut clients = Vec::new();
    for socket in sockets {
        clients.push(socket.connect(address).await.unwrap());
    }
    // some are greeted, the others wait in the backlog while accept fails
    let mut waiting = Vec::new();
    for client in clients {
        let mut client = client;
        let mut buf = [0u8; 7];
        match tokio::time::timeout(Duration::from_millis(50), client.read_exact(&mut buf)).await {
            Ok(read) => {
                read.unwrap();
                drop(client); // frees the server's descriptor too, later
            }
            Err(_) => waiting.push(client),
        }
    }
    assert!(
        !waiting.is_empty() && waiting.len() < 40,
        "{} of 40 waiting",
        waiting.len()
    );
    assert!(!served.is_finished(), "the accept loop goes on");
    // descriptors free again: the rest are taken
    rustix::process::setrlimit(rustix::process::Resource::Nofile, original).unwrap();
    for client in &mut waiting {
        let mut buf = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut buf))
            .await
            .expect("greeted once descriptors are free")
            .unwrap();
        assert_eq!(&buf, b"hello\r\n");
    }
    trigger.trigger();
    served.await.unwrap();
}
