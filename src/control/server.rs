//! The socket: hello line, one command per line, replies framed as BIRD frames them
//! (contract §4.1): `DDDD-` opens a run of lines with one code, ` ` continues it, `DDDD ` ends
//! the reply.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::Line;

/// Longest command line BIRD accepts.
const MAX_COMMAND: usize = 4096;

/// A command for the daemon, with where to send its reply.
pub type Request = (String, oneshot::Sender<Vec<Line>>);

/// The hello line's text; it must start with `BIRD` and contain `ready` (contract §4.1).
pub fn hello() -> String {
    format!("BIRD {} ready.", super::commands::version())
}

/// Listens on `path` (replacing a stale socket file) with mode 0660.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

/// Serves clients forever, one task each.
pub async fn run(listener: UnixListener, daemon: mpsc::Sender<Request>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(client(stream, daemon.clone()));
            }
            Err(e) => warn!("control socket accept: {e}"),
        }
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
