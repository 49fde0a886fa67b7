//! The socket: hello line, one command per line, replies framed as BIRD frames them
//! (contract §4.1): `DDDD-` opens a run of lines with one code, ` ` continues it, `DDDD ` ends
//! the reply.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::Line;
use crate::accept::Backoff;

/// Longest command line BIRD accepts.
const MAX_COMMAND: usize = 4096;

/// A command for the daemon, with where to send its reply.
pub type Request = (String, oneshot::Sender<Vec<Line>>);

/// The hello line's text; it must start with `BIRD` and contain `ready` (contract §4.1).
pub fn hello() -> String {
    format!("BIRD {} ready.", super::commands::version())
}

/// Clients served at once; more get BIRD's "too many clients" line and are closed.
const MAX_CLIENTS: usize = 64;

/// A control socket this process bound: the path and the identity (device, inode) of the
/// socket file it made there. Dropped, it removes the file if it is still that one, never
/// one another process made since.
pub struct Owned {
    path: PathBuf,
    id: (u64, u64),
}

impl Drop for Owned {
    fn drop(&mut self) {
        if file_id(&self.path).is_some_and(|id| id == self.id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Listens on `path` with mode 0660. A socket file that answers belongs to a running daemon:
/// refuse, as BIRD does; one that does not (left by a daemon that died) is replaced.
pub fn bind(path: &Path) -> std::io::Result<(UnixListener, Owned)> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("another instance is running on {}", path.display()),
        ));
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    let id = file_id(path).ok_or_else(|| std::io::Error::other("socket file vanished"))?;
    let owned = Owned {
        path: path.to_path_buf(),
        id,
    };
    Ok((l, owned))
}

/// Serves clients forever, one task each, at most [`MAX_CLIENTS`] at once. Out of file
/// descriptors, a spare one is given up to take an operator's connection.
pub async fn run(listener: UnixListener, daemon: mpsc::Sender<Request>) {
    let clients = Arc::new(Semaphore::new(MAX_CLIENTS));
    let mut backoff = Backoff::with_spare("control socket");
    loop {
        let (stream, _) = backoff.accept(|| listener.accept()).await;
        let Ok(permit) = clients.clone().try_acquire_owned() else {
            // The client is not waited for: the line goes out if the socket has room.
            let _ = stream.try_write(b"8014 Too many clients\n");
            continue;
        };
        let daemon = daemon.clone();
        tokio::spawn(async move {
            client(stream, daemon).await;
            drop(permit);
        });
    }
}

async fn client(stream: UnixStream, daemon: mpsc::Sender<Request>) {
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut framer = Framer::default();
    let mut out = framer.frame(&[Line::new(1, hello())]);
    if w.write_all(out.as_bytes()).await.is_err() {
        return;
    }
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let mut limited = tokio::io::AsyncReadExt::take(&mut reader, MAX_COMMAND as u64 + 1);
        match limited.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let reply = if buf.len() > MAX_COMMAND && !buf.ends_with(b"\n") {
            if skip_line(&mut reader).await.is_err() {
                return;
            }
            vec![Line::new(9000, "Command too long")]
        } else {
            let cmd = String::from_utf8_lossy(&buf).trim().to_string();
            if cmd.is_empty() {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            if daemon.send((cmd, tx)).await.is_err() {
                return;
            }
            rx.await
                .unwrap_or_else(|_| vec![Line::new(8000, "Shutdown in progress")])
        };
        out = framer.frame(&reply);
        if w.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Discards input up to and including the next newline, without keeping it.
async fn skip_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<()> {
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(());
        }
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            r.consume(i + 1);
            return Ok(());
        }
        let n = buf.len();
        r.consume(n);
    }
}

/// Tracks the last code written on a connection, for BIRD's continuation lines.
#[derive(Default)]
pub struct Framer {
    last: Option<u16>,
}

impl Framer {
    /// Frames a reply; its last line gets `DDDD `.
    pub fn frame(&mut self, lines: &[Line]) -> String {
        let mut s = String::new();
        for (i, l) in lines.iter().enumerate() {
            let text = truncate(&l.text, 500);
            if i + 1 == lines.len() {
                s.push_str(&format!("{:04} {text}\n", l.code));
                self.last = None;
            } else if self.last == Some(l.code) {
                s.push_str(&format!(" {text}\n"));
            } else {
                s.push_str(&format!("{:04}-{text}\n", l.code));
                self.last = Some(l.code);
            }
        }
        s
    }
}

/// Reply lines are at most 512 bytes; cut long text at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_matches_bird() {
        let mut f = Framer::default();
        let lines = vec![
            Line::new(2002, "name     proto    table    state  since       info"),
            Line::new(1002, "a"),
            Line::new(1002, "b"),
            Line::new(0, ""),
        ];
        assert_eq!(
            f.frame(&lines),
            "2002-name     proto    table    state  since       info\n1002-a\n b\n0000 \n"
        );
        assert_eq!(
            f.frame(&[Line::new(9001, "syntax error")]),
            "9001 syntax error\n"
        );
    }
}
