//! `mtad queue …` reaching the running mtad: a unix socket in the queue
//! directory (mode 0600, the queue owner's), one request line, the answer
//! until the server closes. What Postfix's postqueue and postsuper do,
//! through the one process that owns the queue, so a tool never races
//! the queue manager.
//!
//! ```text
//! LIST            → one line per message: ID SIZE ARRIVAL SENDER [HELD] then "  <rcpt> why" lines
//! FLUSH           → "ok"
//! HOLD ID / RELEASE ID / DELETE ID → "ok" or "no such message ID"
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::Context;
use crate::delivery::Command;
use crate::queue::is_queue_id;

/// Serves the control socket at `path` until shutdown.
pub async fn serve(path: &Path, ctx: Arc<Context>) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    loop {
        let (stream, _) = tokio::select! {
            _ = ctx.shutdown.triggered() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _ = handle(stream, &ctx).await;
        });
    }
}

async fn handle(stream: UnixStream, ctx: &Context) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut line = String::new();
    tokio::io::BufReader::new(reader.take(1024))
        .read_line(&mut line)
        .await?;
    let mut words = line.split_whitespace();
    let answer = match (words.next().map(str::to_ascii_uppercase).as_deref(), words.next()) {
        (Some("LIST"), None) => {
            let mut out = String::new();
            for m in ctx.manager.list().await {
                let arrival = m.arrival.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let held = if m.held { " HELD" } else { "" };
                out.push_str(&format!("{} {} {} <{}>{held}\n", m.id, m.size, arrival, m.sender));
                for (rcpt, why) in m.waiting {
                    out.push_str(&format!("  <{rcpt}> {why}\n"));
                }
            }
            out
        }
        (Some("FLUSH"), None) => {
            ctx.manager.send(Command::Flush);
            "ok\n".to_owned()
        }
        (Some(verb @ ("HOLD" | "RELEASE" | "DELETE")), Some(id)) if is_queue_id(id) => {
            let id = id.to_owned();
            let ok = match verb {
                "HOLD" => ctx.manager.hold(id.clone()).await,
                "RELEASE" => ctx.manager.release(id.clone()).await,
                _ => ctx.manager.delete(id.clone()).await,
            };
            if ok {
                "ok\n".to_owned()
            } else {
                format!("no such message {id}\n")
            }
        }
        _ => "unknown request\n".to_owned(),
    };
    writer.write_all(answer.as_bytes()).await?;
    writer.shutdown().await
}

/// The tool's side: sends `request`, returns the answer.
pub async fn ask(path: &Path, request: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(path).await?;
    stream.write_all(format!("{request}\n").as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}
