//! The names the `wrend` executable answers to, by argv[0]: itself, and the programs of
//! calico-node's image (contract §1), installed as links: `bird` and `bird6`, the daemons
//! with BIRD 1.6's flags, each serving one address family from its own configuration and
//! socket; `birdcl`, `birdcl6` and `birdc`, the client (`control::birdcl`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::config::{self, bird::Family};

/// What the executable is, by the name it was started as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    /// wren's own daemon.
    Wrend,
    /// BIRD 1.6's daemon: `bird` (IPv4) or `bird6` (IPv6).
    Bird(Family),
    /// BIRD 1.6's client: `birdcl`, `birdc` (IPv4 socket) or `birdcl6` (IPv6).
    Client(Family),
}

impl Personality {
    /// From argv[0]: its file name decides, wherever the link lives.
    pub fn of(argv0: &OsStr) -> Personality {
        let name = Path::new(argv0)
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or("");
        match name {
            "bird" => Personality::Bird(Family::V4),
            "bird6" => Personality::Bird(Family::V6),
            "birdcl" | "birdc" => Personality::Client(Family::V4),
            "birdcl6" | "birdc6" => Personality::Client(Family::V6),
            _ => Personality::Wrend,
        }
    }
}

/// The program name BIRD 1.6 puts before its messages; `bird6` prints `bird:` too.
pub const BIRD: &str = "bird";

/// BIRD 1.6's default configuration file for a family.
fn default_config(family: Family) -> &'static str {
    match family {
        Family::V4 => "/etc/bird.cfg",
        Family::V6 => "/etc/bird6.cfg",
    }
}

/// BIRD 1.6's default control socket for a family (its client's default too).
pub fn default_socket(family: Family) -> &'static str {
    match family {
        Family::V4 => "/var/run/bird.ctl",
        Family::V6 => "/var/run/bird6.ctl",
    }
}

/// BIRD 1.6's daemon flags, as calico-node's runit service (`bird -R -s SOCK -d -c FILE`)
/// and confd's check (`bird -p -c FILE`) give them.
#[derive(Parser, Debug)]
#[command(disable_version_flag = true)]
pub struct BirdArgs {
    /// Configuration file (BIRD's language).
    #[arg(short = 'c', value_name = "config-file")]
    pub config: Option<PathBuf>,
    /// Control socket.
    #[arg(short = 's', value_name = "control-socket")]
    pub socket: Option<PathBuf>,
    /// Stay in the foreground, logging to standard error (always the case).
    #[arg(short = 'd')]
    pub foreground: bool,
    /// Start in graceful-restart recovery (RFC 4724): routes left in the kernel stay until
    /// every peer's End-of-RIB is in.
    #[arg(short = 'R')]
    pub restarting: bool,
    /// Parse the configuration and exit: 0 when it is valid.
    #[arg(short = 'p')]
    pub parse_only: bool,
}

impl BirdArgs {
    pub fn config_path(&self, family: Family) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(default_config(family)))
    }

    pub fn socket_path(&self, family: Family) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(default_socket(family)))
    }
}

/// BIRD 1.6's client flags: `-s SOCKET` and the words of one command.
#[derive(Parser, Debug)]
#[command(disable_version_flag = true)]
pub struct ClientArgs {
    /// Control socket.
    #[arg(short = 's', value_name = "control-socket")]
    pub socket: Option<PathBuf>,
    /// A command to run; without one, commands are read from the input.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

/// A configuration error as BIRD 1.6 prints it: `bird: FILE:LINE:COL message`, or
/// `bird: message` when it has no place (a file that cannot be opened).
pub fn bird_message(e: &config::Error) -> String {
    match (&e.file, e.at) {
        (Some(file), Some((line, col))) if line > 0 => {
            format!("{BIRD}: {file}:{line}:{col} {}", e.message)
        }
        _ => format!("{BIRD}: {}", e.message),
    }
}

/// `bird -p -c FILE`: parses and checks the file and what it includes as BIRD does, then
/// turns it into the model, so confd's check also refuses what wren could not run.
pub fn check(path: &Path, family: Family) -> Result<(), String> {
    config::bird::load_model(path, family)
        .map(drop)
        .map_err(|e| bird_message(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv0_picks_the_personality() {
        let of = |s: &str| Personality::of(OsStr::new(s));
        assert_eq!(of("/bin/bird"), Personality::Bird(Family::V4));
        assert_eq!(of("bird6"), Personality::Bird(Family::V6));
        assert_eq!(of("/usr/bin/birdcl"), Personality::Client(Family::V4));
        assert_eq!(of("birdc"), Personality::Client(Family::V4));
        assert_eq!(of("birdcl6"), Personality::Client(Family::V6));
        assert_eq!(of("/usr/sbin/wrend"), Personality::Wrend);
        assert_eq!(of("target/debug/deps/wrend-1234"), Personality::Wrend);
        assert_eq!(of(""), Personality::Wrend);
    }

    #[test]
    fn flags_as_calico_gives_them() {
        let a = BirdArgs::try_parse_from([
            "bird",
            "-R",
            "-s",
            "/var/run/calico/bird.ctl",
            "-d",
            "-c",
            "/etc/calico/confd/config/bird.cfg",
        ])
        .unwrap();
        assert!(a.restarting && a.foreground && !a.parse_only);
        assert_eq!(
            a.socket_path(Family::V4),
            Path::new("/var/run/calico/bird.ctl")
        );
        assert_eq!(
            a.config_path(Family::V4),
            Path::new("/etc/calico/confd/config/bird.cfg")
        );
        let a = BirdArgs::try_parse_from(["bird6", "-p", "-c", "x.cfg"]).unwrap();
        assert!(a.parse_only);
        let a = BirdArgs::try_parse_from(["bird6"]).unwrap();
        assert_eq!(a.config_path(Family::V6), Path::new("/etc/bird6.cfg"));
        assert_eq!(a.socket_path(Family::V6), Path::new("/var/run/bird6.ctl"));
        assert!(BirdArgs::try_parse_from(["bird", "-x"]).is_err());
    }

    #[test]
    fn client_words_are_one_command() {
        let a = ClientArgs::try_parse_from(["birdcl", "-s", "/x.ctl", "show", "status"]).unwrap();
        assert_eq!(a.socket.as_deref(), Some(Path::new("/x.ctl")));
        assert_eq!(a.words, ["show", "status"]);
        let a = ClientArgs::try_parse_from(["birdcl"]).unwrap();
        assert!(a.words.is_empty() && a.socket.is_none());
    }

    #[test]
    fn errors_in_birds_shape() {
        let placed = config::Error {
            file: Some("bird.cfg".into()),
            at: Some((2, 24)),
            message: "syntax error".into(),
        };
        assert_eq!(bird_message(&placed), "bird: bird.cfg:2:24 syntax error");
        let unplaced = config::Error {
            file: Some("x.cfg".into()),
            at: Some((0, 0)),
            message: "Unable to open configuration file x.cfg: No such file or directory".into(),
        };
        assert_eq!(
            bird_message(&unplaced),
            "bird: Unable to open configuration file x.cfg: No such file or directory"
        );
    }
}
