//! SIGTERM: imapd stops listening, tells every session goodbye in its
//! protocol (IMAP `* BYE`, POP3 `-ERR`), waits for them and exits 0.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use common::Client;

#[test]
fn sigterm_ends_sessions_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        dir.path().join("passwd"),
        format!("alice:{{PLAIN}}secret::::{}::\n", home.display()),
    )
    .unwrap();
    let pop3_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (server, port) = common::spawn_imapd(dir.path(), &format!("pop3_listen = [\"127.0.0.1:{pop3_port}\"]\n"));
    let mut server = common::KillOnDrop(server);
    let mut idle = Client::connect(port);
    idle.run("LOGIN alice secret");
    idle.run("SELECT INBOX");
    idle.send("IDLE");
    let mut waiting = Client::connect(port);
    waiting.run("LOGIN alice secret");
    let pop3 = TcpStream::connect(("127.0.0.1", pop3_port)).unwrap();
    let mut pop3_reader = BufReader::new(pop3.try_clone().unwrap());
    let mut greeting = String::new();
    pop3_reader.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("+OK"));

    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(server.0.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let status = server.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a clean exit");
    let rest = |reader: &mut dyn BufRead| {
        let mut all = String::new();
        let _ = reader.read_to_string(&mut all);
        all
    };
    assert!(rest(idle.reader()).contains("* BYE Server shutting down."));
    assert!(rest(waiting.reader()).contains("* BYE Server shutting down."));
    assert!(rest(&mut pop3_reader).contains("-ERR Server shutting down."));
    let _ = (&pop3).write_all(b"QUIT\r\n");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "no longer listening");
}
