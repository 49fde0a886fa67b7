//! wrenc: wren's client and offline tools.

#![deny(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::time::Duration;
use wren::control::client::{self, Client, render};
use wren::demo::Cluster;
use wren::wire::text::{self, Line};
use wren::wire::{Message, Negotiated};

#[derive(Parser)]
#[command(name = "wrenc", version, about = "wren's client and BGP message tools")]
struct Cli {
    /// The daemon's control socket.
    #[arg(
        short = 's',
        long = "socket",
        default_value = "/run/wren/wren.ctl",
        global = true
    )]
    socket: PathBuf,
    /// Without a command: an interactive session, as `birdc` gives (line editing, history).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Read BGP messages as hex (one per line) and print each as one JSON object.
    Decode(CodecArgs),
    /// Read messages as JSON (one object per line, as `decode` prints them) and print hex.
    Encode(CodecArgs),
    /// Start a small wrend cluster, show it converge, stop it: as root in network
    /// namespaces with kernel routes and pods pinging across, otherwise on loopback.
    Demo {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Loopback addresses and no kernel routes, even as root.
        #[arg(long)]
        loopback: bool,
    },
    /// Print the TOML configuration a BIRD configuration (`bird.cfg` as Calico's confd
    /// renders it) becomes: reading it gives wren the same model.
    Convert {
        /// The BIRD configuration file; `bird6*.cfg` is read as IPv6.
        file: PathBuf,
        /// Read the file as bird6 does (IPv6) whatever its name.
        #[arg(long)]
        ipv6: bool,
    },
    /// Any other words are a command for the daemon, as birdc takes them
    /// (`wrenc show protocols`, `wrenc show route`, `wrenc show datastore`).
    #[command(external_subcommand)]
    Control(Vec<String>),
}

#[derive(Args)]
struct CodecArgs {
    /// Input file (standard input when absent).
    file: Option<PathBuf>,
    /// Families whose prefixes carry add-path identifiers (RFC 7911): ipv4,ipv6.
    #[arg(long, value_name = "FAMILIES")]
    add_path: Option<String>,
    /// AS numbers are 2 octets (a peer without the 4-octet AS capability).
    #[arg(long)]
    as2: bool,
    /// Messages up to 65535 octets (RFC 8654 extended messages).
    #[arg(long)]
    extended_message: bool,
}

impl CodecArgs {
    fn negotiated(&self) -> anyhow::Result<Negotiated> {
        let mut neg = Negotiated {
            four_octet_as: !self.as2,
            extended_message: self.extended_message,
            ..Negotiated::default()
        };
        if let Some(list) = &self.add_path {
            text::set_add_path(list, &mut neg).map_err(anyhow::Error::msg)?;
        }
        Ok(neg)
    }

    fn input(&self) -> anyhow::Result<(String, Box<dyn BufRead>)> {
        Ok(match &self.file {
            Some(p) => (
                p.display().to_string(),
                Box::new(BufReader::new(
                    std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
                )),
            ),
            None => ("<stdin>".to_string(), Box::new(std::io::stdin().lock())),
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        None => interactive(&cli.socket),
        Some(Command::Decode(a)) => run(a, Codec::Decode),
        Some(Command::Encode(a)) => run(a, Codec::Encode),
        Some(Command::Demo { nodes, loopback }) => demo(*nodes, *loopback),
        Some(Command::Convert { file, ipv6 }) => convert(file, *ipv6),
        Some(Command::Control(words)) => control(&cli.socket, &words.join(" ")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("wrenc: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `wrenc convert`: the model of a BIRD configuration, printed as TOML; a configuration
/// error is printed as `FILE:LINE:COL: message` and fails.
fn convert(file: &std::path::Path, ipv6: bool) -> anyhow::Result<bool> {
    use wren::config::bird;
    let family = if ipv6 {
        bird::Family::V6
    } else {
        bird::family_of(file)
    };
    match bird::load_model(file, family) {
        Ok(model) => {
            let text = wren::config::write::to_toml(&model)?;
            print!(
                "# wren's configuration, converted from {}\n{text}",
                file.display()
            );
            Ok(true)
        }
        Err(e) => {
            eprintln!("wrenc: {e}");
            Ok(false)
        }
    }
}

/// Sends one command to the daemon and prints the reply as birdcl does.
fn control(socket: &std::path::Path, cmd: &str) -> anyhow::Result<bool> {
    let mut c =
        Client::connect(socket).with_context(|| format!("connecting to {}", socket.display()))?;
    let reply = c.command(cmd)?;
    print!("{}", render(&reply));
    // Runtime (8xxx) and parse (9xxx) errors are failures.
    Ok(reply.last().is_some_and(|l| l.code < 8000))
}

/// `birdc`'s interactive mode: the hello, then a prompt (history in ~/.wrenc_history).
fn interactive(socket: &std::path::Path) -> anyhow::Result<bool> {
    let mut c =
        Client::connect(socket).with_context(|| format!("connecting to {}", socket.display()))?;
    println!("{}", c.hello);
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".wrenc_history"));
    client::interactive(&mut c, "wrenc> ", history, |l| Some(l.to_string()))?;
    Ok(true)
}

fn demo(nodes: usize, loopback: bool) -> anyhow::Result<bool> {
    use std::sync::atomic::Ordering;
    let wrend = std::env::current_exe()?.with_file_name("wrend");
    ctrlc::set_handler(|| wren::demo::STOP.store(true, Ordering::Relaxed))?;
    let result = demo_mode(nodes, loopback, &wrend);
    // Ctrl-C reaches the nodes and the commands the demo runs as well, whose failures
    // would otherwise be the message.
    if wren::demo::STOP.load(Ordering::Relaxed) {
        anyhow::bail!("interrupted");
    }
    result
}

fn demo_mode(nodes: usize, loopback: bool, wrend: &std::path::Path) -> anyhow::Result<bool> {
    let root = wren::sys::is_root();
    if root && !loopback {
        if wren::demo::netns::have_ip() {
            return demo_in_namespaces(nodes, wrend);
        }
        println!(
            "(`ip` not found: the namespace demo needs iproute2 (apt-get install iproute2); \
             running on loopback instead)"
        );
    }
    println!("wren demo: starting {nodes} wrend nodes in an iBGP full mesh on 127.0.0.10..");
    if !root {
        println!(
            "(not root: loopback only, kernel untouched; run as root for namespaces, kernel routes and pings)"
        );
    }
    let mut cluster = Cluster::start(nodes, wrend).map_err(anyhow::Error::msg)?;
    let took = cluster
        .wait(Duration::from_secs(30))
        .map_err(anyhow::Error::msg)?;
    println!(
        "converged in {:.2} s: every node Established with every other and holding every block",
        took.as_secs_f64()
    );
    print!("{}", cluster.report());
    println!("\nstopping the nodes");
    Ok(true)
}

fn demo_in_namespaces(nodes: usize, wrend: &std::path::Path) -> anyhow::Result<bool> {
    println!(
        "wren demo: {nodes} nodes as network namespaces on a bridge (198.51.100.10..), \
         each with a pod; wrend writes proto bird routes"
    );
    let mut lab = wren::demo::netns::Lab::start(nodes, wrend).map_err(anyhow::Error::msg)?;
    let took = lab
        .wait(Duration::from_secs(30))
        .map_err(anyhow::Error::msg)?;
    println!(
        "converged in {:.2} s: every node's kernel routes every other node's block",
        took.as_secs_f64()
    );
    print!("{}", lab.report());
    println!();
    let mut ok = true;
    for p in lab.ping() {
        match p {
            Ok(line) => println!("{line}"),
            Err(e) => {
                ok = false;
                println!("ping failed: {e}");
            }
        }
    }
    println!("\nstopping the nodes and deleting the namespaces");
    Ok(ok)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Codec {
    /// Hex to JSON.
    Decode,
    /// JSON to hex.
    Encode,
}

impl Codec {
    /// Converts one message line; `Err` is the message for standard error.
    fn convert(self, line: &str, neg: &Negotiated) -> Result<String, String> {
        match self {
            Codec::Decode => {
                let (_, msg) = text::decode_hex(line, neg).map_err(|e| e.to_string())?;
                serde_json::to_string(&msg).map_err(|e| e.to_string())
            }
            Codec::Encode => {
                let msg: Message =
                    serde_json::from_str(line).map_err(|e| format!("bad JSON: {e}"))?;
                msg.to_bytes(neg)
                    .map(hex::encode)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// A `#!` directive line (`#! as2`, `#! add-path=ipv4`) as `decode` prints it, so that its
/// output is JSON throughout and `wrenc encode` still reads the session's options back.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Directive {
    directive: String,
}

/// Converts every line. `decode` prints JSON only: a message per line, directives as
/// [`Directive`] objects, comments dropped. `encode` turns those objects back into `#!`
/// lines and passes comments through, so `wrenc decode | wrenc encode` gives back the
/// input's messages and directives. Returns whether every line converted.
fn run(args: &CodecArgs, codec: Codec) -> anyhow::Result<bool> {
    let decoding = codec == Codec::Decode;
    let mut neg = args.negotiated()?;
    let (name, input) = args.input()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut ok = true;
    for (n, line) in input.lines().enumerate() {
        let mut line = line.with_context(|| format!("reading {name}"))?;
        if !decoding && let Ok(d) = serde_json::from_str::<Directive>(&line) {
            line = format!("#! {}", d.directive);
        }
        let converted = match text::classify(&line, &mut neg) {
            Ok(Line::Comment) if decoding => continue,
            Ok(Line::Directive) if decoding => {
                let words = line.trim().trim_start_matches("#!").trim();
                Ok(serde_json::to_string(&Directive {
                    directive: words.to_string(),
                })?)
            }
            Ok(Line::Comment | Line::Directive) => Ok(line.clone()),
            Ok(Line::Message(m)) => codec.convert(m, &neg),
            Err(e) => Err(e),
        };
        match converted {
            Ok(s) => writeln!(out, "{s}")?,
            Err(e) => {
                ok = false;
                out.flush()?;
                eprintln!("{name}:{}: {e}", n + 1);
            }
        }
    }
    out.flush()?;
    Ok(ok)
}
