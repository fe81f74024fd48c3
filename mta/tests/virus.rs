//! Virus scanning against a real clamd (Debian's clamav-daemon, installed
//! by .ci/run), started offline by the test on a signature database it
//! writes itself (freshclam cannot download here): EICAR by its MD5 hash
//! (`local.hdb`) and a marker string by a body signature (`local.ndb`).
//! Then the built-in scanner on the same messages, and a scanner that is
//! not there.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Site;
use common::tables::{data, rcpt};

const EICAR: &str = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// What the test's body signature finds.
const MARKER: &str = "mailkit-test-virus";

struct Clamd {
    dir: tempfile::TempDir,
    child: Child,
}

impl Clamd {
    fn start() -> Clamd {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let db = dir.path().join("db");
        std::fs::create_dir(&db).unwrap();
        std::fs::write(
            db.join("local.hdb"),
            "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n",
        )
        .unwrap();
        let hex: String = MARKER.bytes().map(|b| format!("{b:02x}")).collect();
        std::fs::write(db.join("local.ndb"), format!("Mailkit.Test.Marker:0:*:{hex}\n")).unwrap();
        let config = dir.path().join("clamd.conf");
        std::fs::write(
            &config,
            format!(
                "Foreground yes\nDatabaseDirectory {}\nLocalSocket {}\nLogFile {}\nStreamMaxLength 1M\n",
                db.display(),
                dir.path().join("clamd.sock").display(),
                dir.path().join("clamd.log").display()
            ),
        )
        .unwrap();
        let child = Command::new("clamd")
            .arg(format!("--config-file={}", config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clamd (apt-get install clamav-daemon)");
        let clamd = Clamd { dir, child };
        let start = Instant::now();
        // ready when its socket takes a PING
        while !clamd.pong() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "clamd did not start: {}",
                clamd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        clamd
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("clamd.sock")
    }

    fn pong(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(self.socket()) else {
            return false;
        };
        let mut answer = String::new();
        s.write_all(b"zPING\0").is_ok() && s.read_to_string(&mut answer).is_ok() && answer.starts_with("PONG")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("clamd.log")).unwrap_or_default()
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64(bytes: &[u8]) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import base64,sys; sys.stdout.write(base64.encodebytes(sys.stdin.buffer.read()).decode())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap().replace('\n', "\r\n")
}

/// A zip archive holding `name` with `content` (Python's zipfile).
fn zip(name: &str, content: &str) -> Vec<u8> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import io,sys,zipfile\nb=io.BytesIO()\nz=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED)\n\
             z.writestr(sys.argv[1], sys.argv[2])\nz.close()\nsys.stdout.buffer.write(b.getvalue())",
            name,
            content,
        ])
        .output()
        .unwrap();
    out.stdout
}

/// A message with a text part and an attachment (base64).
fn with_attachment(subject: &str, attachment: &[u8]) -> String {
    format!(
        "Subject: {subject}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n\
         --xx\r\nContent-Type: text/plain\r\n\r\nthe letter itself\r\n\
         --xx\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         {}--xx--\r\n",
        base64(attachment)
    )
}

fn send(site: &Site, message: &str) -> String {
    let (reply, mut c) = rcpt(
        ("127.0.0.1", site.port),
        "127.0.0.9",
        "client.example.org",
        "a@example.org",
        "alice@example.jp",
    );
    assert!(reply.starts_with("250"), "{reply}");
    data(&mut c, message)
}

fn start(scanner: &str, extra: &str) -> Site {
    Site::start(&format!("virus_scanner = \"{scanner}\"\n{extra}"))
}

#[test]
fn clamd_finds_viruses_in_every_part() {
    let clamd = Clamd::start();
    let scanner = format!("clamd:{}", clamd.socket().display());
    let site = start(&scanner, "");
    let reply = send(&site, &with_attachment("eicar", EICAR.as_bytes()));
    assert_eq!(
        reply,
        "554 5.7.0 message content rejected: virus Eicar-Test-Signature.UNOFFICIAL found"
    );
    // inside a zip archive: clamd opens it
    let reply = send(&site, &with_attachment("zipped", &zip("eicar.com", EICAR)));
    assert!(reply.starts_with("554 5.7.0") && reply.contains("Eicar"), "{reply}");
    // a quoted-printable part of an attached message
    let nested = "Subject: outer\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: text/plain\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\nsee mailkit-test-=\r\nvirus here\r\n"
        .to_owned();
    let reply = send(&site, &nested);
    assert_eq!(
        reply,
        "554 5.7.0 message content rejected: virus Mailkit.Test.Marker.UNOFFICIAL found"
    );
    assert!(send(&site, &with_attachment("clean", b"just data")).starts_with("250"));
    site.wait_for_log("cause=\"virus\"");
    drop(site);

    // strip: the infected part becomes a notice, the rest is delivered
    let site = start(&scanner, "virus_action = \"strip\"\n");
    assert!(send(&site, &with_attachment("stripped", EICAR.as_bytes())).starts_with("250"));
    let delivered = String::from_utf8(site.wait_for_messages("alice", 1).remove(0)).unwrap();
    assert!(delivered.contains("the letter itself"), "{delivered}");
    assert!(
        delivered.contains("held the virus Eicar-Test-Signature.UNOFFICIAL and was removed by mx.example.jp"),
        "{delivered}"
    );
    assert!(!delivered.contains(&base64(EICAR.as_bytes())[..20]), "{delivered}");
    assert!(
        delivered.contains("X-Virus-Removed: Eicar-Test-Signature.UNOFFICIAL"),
        "{delivered}"
    );
    // a message that is one infected part is refused whole
    let bare = format!(
        "Subject: bare\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        base64(EICAR.as_bytes())
    );
    assert!(send(&site, &bare).starts_with("554 5.7.0"));
}

#[test]
fn the_builtin_scanner_and_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let hdb = dir.path().join("local.hdb");
    // md5 of the attachment "bad attachment\n"
    let digest = Command::new("md5sum")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"bad attachment\n")?;
            c.wait_with_output()
        });
    let digest = String::from_utf8(digest.unwrap().stdout).unwrap();
    std::fs::write(
        &hdb,
        format!("{}:15:Site.Bad.Attachment\n", digest.split_whitespace().next().unwrap()),
    )
    .unwrap();
    let site = start(
        "builtin",
        &format!("virus_signatures = [\"{}\"]\nvirus_action = \"hold\"\n", hdb.display()),
    );
    for message in [
        with_attachment("eicar", EICAR.as_bytes()),
        with_attachment("hash", b"bad attachment\n"),
    ] {
        assert!(send(&site, &message).starts_with("250"));
    }
    let (_, listed) = site.queue_tool(&["list"]);
    assert_eq!(listed.lines().filter(|l| l.ends_with(" HELD")).count(), 2, "{listed}");
    drop(site);

    // the scanner is not there: try later, or (as chosen) let it through
    let gone = Path::new("/nonexistent/clamd.sock").display().to_string();
    let site = start(&format!("clamd:{gone}"), "");
    assert_eq!(
        send(&site, &with_attachment("eicar", EICAR.as_bytes())),
        "451 4.7.0 Temporary failure: the virus scanner is unavailable"
    );
    drop(site);
    let site = start(&format!("clamd:{gone}"), "virus_scanner_failure = \"accept\"\n");
    assert!(send(&site, &with_attachment("eicar", EICAR.as_bytes())).starts_with("250"));
}
