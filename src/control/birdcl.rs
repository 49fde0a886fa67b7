//! BIRD 1.6's light client, `birdcl`, as calico-node's probes and operators run it (contract
//! §4.5): the words of a command are expanded with the client's own copy of the command
//! grammar (`sh pro` is sent as `show protocols`, a command it does not know is never
//! sent), the reply is printed without its codes, and the exit status is 0 whatever the
//! reply said; only a socket that cannot be opened gives 1. Without words it reads commands
//! from its input, with BIRD's `bird> ` prompt.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use super::client::{Client, render};

/// The commands BIRD 1.6's client knows, as its help lists them (without their arguments).
/// Words that follow a command and are not keywords are its arguments, passed as typed.
const COMMANDS: &[&str] = &[
    "add roa",
    "configure",
    "configure check",
    "configure confirm",
    "configure soft",
    "configure timeout",
    "configure undo",
    "debug",
    "delete roa",
    "disable",
    "down",
    "dump attributes",
    "dump events",
    "dump interfaces",
    "dump neighbors",
    "dump protocols",
    "dump resources",
    "dump routes",
    "dump sockets",
    "echo",
    "enable",
    "eval",
    "exit",
    "flush roa",
    "help",
    "mrtdump",
    "quit",
    "reload",
    "reload in",
    "reload out",
    "restart",
    "restrict",
    "show bfd sessions",
    "show interfaces",
    "show interfaces summary",
    "show memory",
    "show ospf",
    "show ospf interface",
    "show ospf lsadb",
    "show ospf neighbors",
    "show ospf state",
    "show ospf topology",
    "show protocols",
    "show protocols all",
    "show rip interfaces",
    "show rip neighbors",
    "show roa",
    "show route",
    "show static",
    "show status",
    "show symbols",
];

/// What the client makes of a typed line.
#[derive(Debug, PartialEq, Eq)]
pub enum Expanded {
    /// The command to send, keywords written out.
    Command(String),
    /// A word is the start of more than one keyword: the client lists the candidates, each
    /// with the keywords before it.
    Ambiguous(Vec<String>),
    /// The keywords do not end on a command.
    Unknown,
}

/// Expands a typed line as BIRD's client does: each word that is a keyword at its place in
/// the grammar, or the start of exactly one, is written out in full; the first word that is
/// neither ends the walk, and it and what follows are the command's arguments. An exact
/// match wins over longer keywords it starts.
pub fn expand(line: &str) -> Expanded {
    let mut prefix: Vec<&'static str> = Vec::new();
    let mut rest = line;
    loop {
        let trimmed = rest.trim_start();
        let Some(word) = trimmed.split_whitespace().next() else {
            break;
        };
        let next: Vec<&'static str> = children(&prefix);
        let chosen = match next.iter().find(|k| **k == word) {
            Some(k) => *k,
            None => {
                let starts: Vec<&'static str> =
                    next.into_iter().filter(|k| k.starts_with(word)).collect();
                match starts.as_slice() {
                    [one] => *one,
                    [] => break,
                    _ => {
                        let before: String = prefix.iter().map(|p| format!("{p} ")).collect();
                        return Expanded::Ambiguous(
                            starts.iter().map(|k| format!("{before}{k}")).collect(),
                        );
                    }
                }
            }
        };
        prefix.push(chosen);
        rest = &trimmed[word.len()..];
    }
    let command = prefix.join(" ");
    if COMMANDS.contains(&command.as_str()) {
        Expanded::Command(format!("{command}{rest}"))
    } else {
        Expanded::Unknown
    }
}

/// The keywords that may follow `prefix`, in the grammar's order, each once.
fn children(prefix: &[&str]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for c in COMMANDS {
        let mut words = c.split(' ');
        if prefix.iter().all(|p| words.next() == Some(p))
            && let Some(w) = words.next()
            && !out.contains(&w)
        {
            out.push(w);
        }
    }
    out
}

/// `birdcl [-s SOCKET] [WORDS…]`: one command when words are given, else a session on the
/// input (a terminal gets line editing). Output goes to standard output as birdcl prints it.
pub fn run(socket: &Path, words: &[String]) -> ExitCode {
    let mut client = match Client::connect(socket) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "Unable to connect to server control socket ({}): {}",
                socket.display(),
                crate::sys::os_message(&e)
            );
            return ExitCode::FAILURE;
        }
    };
    let mut out = io::stdout().lock();
    let result = (|| -> io::Result<()> {
        writeln!(out, "{}", client.hello)?;
        if !words.is_empty() {
            return one(&mut client, &words.join(" "), &mut out);
        }
        if io::stdin().is_terminal() {
            drop(out);
            return super::client::interactive(&mut client, "bird> ", None, expand_line);
        }
        lines(&mut client, io::stdin().lock(), &mut out)
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", crate::sys::os_message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The line the terminal session sends: expanded, or `None` after telling why not.
fn expand_line(line: &str) -> Option<String> {
    match expand(line) {
        Expanded::Command(c) => Some(c),
        other => {
            let mut out = io::stdout().lock();
            let _ = explain(&other, &mut out);
            None
        }
    }
}

/// What the client prints instead of sending a line it cannot expand.
fn explain(e: &Expanded, out: &mut impl Write) -> io::Result<()> {
    match e {
        Expanded::Command(_) => Ok(()),
        Expanded::Ambiguous(words) => {
            writeln!(out, "Ambiguous command, possible expansions are:")?;
            words.iter().try_for_each(|w| writeln!(out, "{w}"))
        }
        Expanded::Unknown => writeln!(out, "No such command. Press `?' for help."),
    }
}

/// Expands and sends one line, printing the reply, or what the client says instead.
pub fn one(client: &mut Client, line: &str, out: &mut impl Write) -> io::Result<()> {
    match expand(line) {
        Expanded::Command(cmd) => {
            let reply = client.command(&cmd)?;
            write!(out, "{}", render(&reply))?;
        }
        other => explain(&other, out)?,
    }
    out.flush()
}

/// Commands from a non-terminal input, as birdcl reads them: the prompt, the line echoed,
/// its reply; an empty line sends nothing; `quit` or `exit` or the end of input leave (the
/// end after a new line).
fn lines(client: &mut Client, input: impl BufRead, out: &mut impl Write) -> io::Result<()> {
    let mut input = input.lines();
    loop {
        write!(out, "bird> ")?;
        out.flush()?;
        let Some(line) = input.next().transpose()? else {
            writeln!(out)?;
            return out.flush();
        };
        writeln!(out, "{line}")?;
        if line.trim().is_empty() {
            continue;
        }
        match expand(&line) {
            Expanded::Command(c) if c == "quit" || c == "exit" => return out.flush(),
            Expanded::Command(c) if c == "help" => {
                writeln!(out, "Press `?' for context sensitive help.")?;
            }
            _ => one(client, &line, out)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> Expanded {
        Expanded::Command(s.to_string())
    }

    #[test]
    fn abbreviations_expand_as_birdcl_sends_them() {
        assert_eq!(expand("sh pro"), cmd("show protocols"));
        assert_eq!(expand("show protocols"), cmd("show protocols"));
        assert_eq!(expand("sh statu"), cmd("show status"));
        assert_eq!(expand("s p a Mesh_1"), cmd("show protocols all Mesh_1"));
        assert_eq!(
            expand("show route for 10.0.0.1"),
            cmd("show route for 10.0.0.1")
        );
        assert_eq!(
            expand("show protocols Mesh_10_0_0_1"),
            cmd("show protocols Mesh_10_0_0_1")
        );
        assert_eq!(expand("conf"), cmd("configure"));
        assert_eq!(expand("configure check"), cmd("configure check"));
        assert_eq!(expand("dis Mesh_x"), cmd("disable Mesh_x"));
    }

    #[test]
    fn unknown_and_ambiguous_commands_are_not_sent() {
        assert_eq!(expand("bogus"), Expanded::Unknown);
        assert_eq!(expand("show"), Expanded::Unknown);
        assert_eq!(expand(""), Expanded::Unknown);
        let amb = |v: &[&str]| Expanded::Ambiguous(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(expand("sh st"), amb(&["show static", "show status"]));
        assert_eq!(
            expand("show r"),
            amb(&["show rip", "show roa", "show route"])
        );
        assert_eq!(
            expand("d"),
            amb(&["debug", "delete", "disable", "down", "dump"])
        );
    }
}
