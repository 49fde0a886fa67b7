//! A client of the control socket, as `birdcl` is: send one command, read the reply; and
//! the terminal session `wrenc` and `birdcl` give (line editing, history).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One reply line with its code (the code of the run it continues, for ` ` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyLine {
    pub code: u16,
    pub text: String,
}

/// A connection to the control socket, past the hello.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    pub hello: String,
}

impl Client {
    pub fn connect(path: &Path) -> io::Result<Client> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let writer = s.try_clone()?;
        let mut c = Client {
            reader: BufReader::new(s),
            writer,
            hello: String::new(),
        };
        let hello = c.read_reply()?;
        c.hello = hello
            .into_iter()
            .map(|l| l.text)
            .collect::<Vec<_>>()
            .join("\n");
        Ok(c)
    }

    /// Sends a command and returns its reply lines, the final one included.
    pub fn command(&mut self, cmd: &str) -> io::Result<Vec<ReplyLine>> {
        self.writer.write_all(format!("{cmd}\n").as_bytes())?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> io::Result<Vec<ReplyLine>> {
        let mut out = Vec::new();
        let mut code = 0;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "control socket closed",
                ));
            }
            let line = line.trim_end_matches('\n');
            let b = line.as_bytes();
            if let Some(text) = line.strip_prefix(' ') {
                out.push(ReplyLine {
                    code,
                    text: text.to_string(),
                });
                continue;
            }
            let parsed = line.get(..4).and_then(|c| c.parse::<u16>().ok());
            match (parsed, b.get(4)) {
                (Some(c), Some(b'-')) => {
                    code = c;
                    out.push(ReplyLine {
                        code,
                        text: line[5..].to_string(),
                    });
                }
                (Some(c), Some(b' ') | None) => {
                    out.push(ReplyLine {
                        code: c,
                        text: line.get(5..).unwrap_or("").to_string(),
                    });
                    return Ok(out);
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("not a reply line: {line:?}"),
                    ));
                }
            }
        }
    }
}

/// Prints a reply as `birdcl` does: code-0 lines are left out, codes are stripped.
pub fn render(lines: &[ReplyLine]) -> String {
    let mut s = String::new();
    for l in lines.iter().filter(|l| l.code != 0) {
        s.push_str(&l.text);
        s.push('\n');
    }
    s
}

/// `birdc`'s interactive mode on a terminal, past the hello: a prompt; each line, as
/// `prepare` turns it into a command (`None`: nothing to send), goes to the daemon and its
/// reply is printed. Line editing, and history kept in `history` when given; `quit`, `exit`
/// or end of input leave.
pub fn interactive(
    client: &mut Client,
    prompt: &str,
    history: Option<PathBuf>,
    prepare: impl Fn(&str) -> Option<String>,
) -> io::Result<()> {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new().map_err(io::Error::other)?;
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    loop {
        let line = match editor.readline(prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(io::Error::other(e)),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        let Some(cmd) = prepare(line) else {
            continue;
        };
        if cmd == "quit" || cmd == "exit" {
            break;
        }
        let reply = client.command(&cmd)?;
        print!("{}", render(&reply));
        io::stdout().flush()?;
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}
