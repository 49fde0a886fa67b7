//! The socket: hello line, one command per line, replies framed as BIRD frames them
//! (contract §4.1): `DDDD-` opens a run of lines with one code, ` ` continues it, `DDDD ` ends
//! the reply.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, warn};

use super::Line;
use super::commands::{Reply, RouteWalk};
use crate::accept::Backoff;

/// Longest command line BIRD accepts.
const MAX_COMMAND: usize = 4096;

/// A client whose socket takes nothing of its reply for this long is dropped, with what is
/// left of the reply.
const STALLED: Duration = Duration::from_secs(30);

/// What a client asks the daemon.
#[derive(Debug)]
pub enum Ask {
    /// A command line.
    Command(String),
    /// The next chunk of a reply that goes on, once the client has taken the last one.
    More(RouteWalk),
}

/// A question for the daemon, with where to send its reply.
pub type Request = (Ask, oneshot::Sender<Reply>);

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

/// Serves the control sockets on a thread of their own, for as long as the process runs: a
/// client's line is read and its reply written at once however busy the sessions keep the
/// runtime's workers (a route reflector's flood to thousands of clients), since Calico's
/// probes give each line 2 seconds (contract §4.1, projectcalico/calico#2992). Only the
/// daemon's answer is waited for.
pub fn serve(listeners: Vec<UnixListener>, daemon: mpsc::Sender<Request>) -> std::io::Result<()> {
    let listeners = (listeners.into_iter())
        .map(UnixListener::into_std)
        .collect::<std::io::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("wren-control".into())
        .spawn(move || {
            runtime.block_on(async move {
                for l in listeners {
                    match UnixListener::from_std(l) {
                        Ok(l) => drop(tokio::spawn(run(l, daemon.clone()))),
                        Err(e) => warn!("control socket not served: {e}"),
                    }
                }
                std::future::pending::<()>().await;
            });
        })?;
    Ok(())
}

/// Serves clients forever, one task each, at most [`MAX_CLIENTS`] at once. Out of file
/// descriptors, a spare one is given up to take an operator's connection.
async fn run(listener: UnixListener, daemon: mpsc::Sender<Request>) {
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

/// One client: a command at a time, each reply written a chunk at a time. The next chunk is
/// asked for only once the socket has taken the last, so a client holds at most one chunk
/// besides what its socket buffers, and the daemon answers others between chunks.
async fn client(stream: UnixStream, daemon: mpsc::Sender<Request>) {
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut framer = Framer::default();
    let hello = framer.frame(&[Line::new(1, hello())], true);
    if !send(&mut w, &hello).await {
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
        let mut reply: Reply = if buf.len() > MAX_COMMAND && !buf.ends_with(b"\n") {
            // As BIRD: the line is dropped unread and the session goes on.
            if skip_line(&mut reader).await.is_err() {
                return;
            }
            vec![Line::new(9000, "Command too long")].into()
        } else {
            let cmd = String::from_utf8_lossy(&buf).trim().to_string();
            if cmd.is_empty() {
                continue;
            }
            match ask(&daemon, Ask::Command(cmd)).await {
                Some(r) => r,
                None => return,
            }
        };
        loop {
            let Reply { lines, more } = reply;
            let text = framer.frame(&lines, more.is_none());
            drop(lines);
            if !send(&mut w, &text).await {
                return;
            }
            match more {
                None => break,
                Some(walk) => match ask(&daemon, Ask::More(walk)).await {
                    Some(r) => reply = r,
                    None => return,
                },
            }
        }
    }
}

/// Asks the daemon; `None` when it has gone.
async fn ask(daemon: &mpsc::Sender<Request>, what: Ask) -> Option<Reply> {
    let (tx, rx) = oneshot::channel();
    daemon.send((what, tx)).await.ok()?;
    Some(
        rx.await
            .unwrap_or_else(|_| vec![Line::new(8000, "Shutdown in progress")].into()),
    )
}

/// Writes all of `text`; false when the client has gone or took nothing for `STALLED`.
async fn send(w: &mut OwnedWriteHalf, text: &str) -> bool {
    let mut left = text.as_bytes();
    while !left.is_empty() {
        match tokio::time::timeout(STALLED, w.write(left)).await {
            Ok(Ok(n)) if n > 0 => left = &left[n..],
            Ok(_) => return false,
            Err(_) => {
                debug!("control client took nothing for {STALLED:?}: dropped");
                return false;
            }
        }
    }
    true
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
    /// Frames reply lines; when `end`, the last gets `DDDD ` and ends the reply, otherwise
    /// the reply goes on in the next call.
    pub fn frame(&mut self, lines: &[Line], end: bool) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(lines.iter().map(|l| l.text.len() + 6).sum());
        for (i, l) in lines.iter().enumerate() {
            let text = truncate(&l.text, 500);
            // Writing to a String cannot fail.
            let _ = if end && i + 1 == lines.len() {
                self.last = None;
                writeln!(s, "{:04} {text}", l.code)
            } else if self.last == Some(l.code) {
                writeln!(s, " {text}")
            } else {
                self.last = Some(l.code);
                writeln!(s, "{:04}-{text}", l.code)
            };
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

    /// The socket answers while every worker of the daemon's runtime is busy: its clients
    /// are served on a thread of their own.
    #[test]
    fn served_while_the_runtime_is_busy() {
        let dir = std::env::temp_dir().join(format!("wren-ctl-busy-{}", std::process::id()));
        let path = dir.join("bird.ctl");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let _owned = runtime.block_on(async {
            let (l, owned) = bind(&path).unwrap();
            serve(vec![l], tx).unwrap();
            // The one worker is taken for two seconds.
            tokio::spawn(async { std::thread::sleep(Duration::from_secs(2)) });
            owned
        });
        let started = std::time::Instant::now();
        let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut hello = [0u8; 64];
        let n = std::io::Read::read(&mut c, &mut hello).unwrap();
        assert!(hello[..n].starts_with(b"0001 BIRD"), "{:?}", &hello[..n]);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        drop(runtime);
        let _ = std::fs::remove_dir_all(&dir);
    }

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
            f.frame(&lines, true),
            "2002-name     proto    table    state  since       info\n1002-a\n b\n0000 \n"
        );
        assert_eq!(
            f.frame(&[Line::new(9001, "syntax error")], true),
            "9001 syntax error\n"
        );
        // The same reply in chunks frames as it does whole.
        let chunked: String = [&lines[..2], &lines[2..3], &[], &lines[3..]]
            .iter()
            .enumerate()
            .map(|(i, part)| f.frame(part, i == 3))
            .collect();
        assert_eq!(chunked, f.frame(&lines, true));
    }
}
