//! Configuration: the sources that produce the model the daemon runs (`crate::model`, re-exported
//! here), the semantic checks made once on the model (`validate`) and the difference between a
//! running and a new model that a reload applies (`diff`). Three sources, one model: `toml`
//! (wren's file), `bird` (BIRD 1.6's configuration language as Calico's confd renders it:
//! parse, checks, filter interpreter, conversion) and `datastore`; `write` prints a model as
//! the TOML file (`wrenc convert`). `datastore` reads
//! Calico's resources as stored in etcd and makes confd's decisions for one node, producing
//! the model; a TOML file with a `[datastore]` table (`Contents::Datastore`) says where they
//! are, and `crate::datastore` reads and follows them.

pub mod bird;
pub mod datastore;
pub mod diff;
pub mod toml;
pub mod validate;
pub mod write;

use std::path::{Path, PathBuf};

pub use crate::model::*;

/// Where the running configuration comes from, so that a reload (SIGHUP, `configure`) reads
/// the same source again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// wren's TOML file.
    Toml(PathBuf),
    /// BIRD 1.6's language, as confd renders `bird.cfg` (IPv4) or `bird6.cfg` (IPv6).
    Bird(PathBuf, bird::Family),
}

impl Source {
    /// The file read.
    pub fn path(&self) -> &Path {
        match self {
            Source::Toml(p) | Source::Bird(p, _) => p,
        }
    }

    /// Reads, parses and checks the source: the model, or (TOML only) where the datastore is.
    pub fn read(&self) -> Result<Contents, Error> {
        match self {
            Source::Toml(p) => toml::load_source(p),
            Source::Bird(p, family) => bird::load_model(p, *family).map(Contents::Model),
        }
    }

    /// The model the source holds; a TOML file that names a datastore instead is an error.
    pub fn load(&self) -> Result<Config, Error> {
        match self.read()? {
            Contents::Model(c) => Ok(c),
            Contents::Datastore(_) => Err(Error {
                file: Some(self.path().display().to_string()),
                at: None,
                message: "holds a [datastore] table, not a model".into(),
            }),
        }
    }
}

impl From<bird::Family> for AddressFamily {
    fn from(f: bird::Family) -> AddressFamily {
        match f {
            bird::Family::V4 => AddressFamily::Ipv4,
            bird::Family::V6 => AddressFamily::Ipv6,
        }
    }
}

/// A configuration error, where it was found: `FILE:LINE:COL: message` — the one format of
/// every error, from parsing or from the semantic checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The file, when the text came from one.
    pub file: Option<String>,
    /// Line and column (both from 1), when the source knows them.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        if let Some((line, col)) = self.at {
            write!(f, "{line}:{col}:")?;
        }
        if self.file.is_some() || self.at.is_some() {
            f.write_str(" ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// What a configuration source holds: the whole model, or where to read it from (a TOML
/// file with a `[datastore]` table).
#[derive(Debug, Clone, PartialEq)]
pub enum Contents {
    Model(Config),
    Datastore(datastore::Local),
}

impl Config {
    /// Reads and checks a TOML configuration file.
    pub fn load(path: &Path) -> Result<Config, Error> {
        toml::load(path)
    }

    /// Parses and checks TOML configuration text (errors carry line and column, no file).
    pub fn parse(text: &str) -> Result<Config, Error> {
        toml::parse(None, text)
    }
}
