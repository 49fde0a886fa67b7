//! BIRD 1.6's configuration language, the subset Calico's confd renders (contract §2.10):
//! [`lex`] turns text into positioned tokens (nom), [`parse`] builds the [`ast`] and splices
//! includes, [`check`] resolves symbols the way BIRD's single pass does, [`protocols`] gives
//! each protocol's options as plain data with BIRD's defaults, and [`eval`] runs filters and
//! functions on a route with BIRD 1.6 semantics. [`model`] turns the result into wren's
//! configuration model, with [`bgpfilter`] for Calico's BGPFilter functions and [`probe`]
//! finding (and checking) what Calico's filters do by running them.

pub mod ast;
pub mod bgpfilter;
mod bgpfilter_probe;
pub mod check;
pub mod eval;
pub mod glob;
mod keywords;
mod lex;
mod model;
pub mod parse;
mod probe;
pub mod protocols;

use std::fmt;
use std::path::Path;

pub use ast::{Family, Pos};
pub use model::family_of;

/// A configuration error at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub pos: Pos,
    pub msg: String,
}

impl Error {
    pub fn new(pos: &Pos, msg: impl Into<String>) -> Error {
        Error {
            pos: pos.clone(),
            msg: msg.into(),
        }
    }

    /// The line BIRD 1.6 prints for a configuration error: `bird: FILE:LINE:COL message`.
    pub fn bird_line(&self, program: &str) -> String {
        format!("{program}: {} {}", self.pos, self.msg)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.msg)
    }
}

impl std::error::Error for Error {}

/// Reads `path` with its includes, parses and checks it: what `bird -p -c path` (or
/// `bird6 -p`) does.
pub fn load(path: &Path, family: Family) -> Result<ast::Config, Error> {
    let config = parse::parse_file(path, family)?;
    check::check(&config)?;
    Ok(config)
}

/// Reads a BIRD configuration and turns it into wren's model: what `bird -c path` runs.
pub fn load_model(path: &Path, family: Family) -> Result<super::Config, super::Error> {
    load(path, family)
        .and_then(|config| model::convert(&config))
        .map_err(Error::into_config_error)
}

impl Error {
    /// The same error in the one format of every configuration error.
    pub fn into_config_error(self) -> super::Error {
        super::Error {
            file: Some(self.pos.file.to_string()),
            at: Some((self.pos.line as usize, self.pos.col as usize)),
            message: self.msg,
        }
    }
}
