//! Configuration: the model the daemon runs (`model`), the sources that produce it (`toml`
//! today), the semantic checks made once on the model (`validate`) and the difference
//! between a running and a new model that a reload applies (`diff`). `bird` reads BIRD 1.6's
//! configuration language as Calico's confd renders it (parse, checks, filter interpreter);
//! turning it into the model is the next step of the Calico drop-in. `datastore` reads
//! Calico's resources as stored in etcd and makes confd's decisions for one node, producing
//! the model; a TOML file with a `[datastore]` table (`Source::Datastore`) says where they
//! are, and `crate::datastore` reads and follows them.

pub mod bird;
pub mod datastore;
pub mod diff;
mod model;
pub mod toml;
pub mod validate;

use std::path::Path;

pub use model::*;

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

/// What a configuration file holds: the whole model, or where to read it from (a file with
/// a `[datastore]` table).
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Model(Config),
    Datastore(datastore::Local),
}

impl Source {
    /// Reads and checks a TOML configuration file of either kind.
    pub fn load(path: &Path) -> Result<Source, Error> {
        toml::load_source(path)
    }
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
