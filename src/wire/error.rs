//! Decode errors: each one names the NOTIFICATION (RFC 4271 §6) or the RFC 7606 action the
//! session must take.

use std::fmt;

use super::notification::{Code, describe};
use super::update::Update;

/// What the session does about a malformed message (RFC 7606 §2, in rising severity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// RFC 7606 §2 "attribute discard": drop the attribute, keep the routes.
    AttributeDiscard,
    /// RFC 7606 §2 "treat-as-withdraw": every prefix in the UPDATE is withdrawn.
    TreatAsWithdraw,
    /// RFC 4271 §6: send the NOTIFICATION and close the session.
    SessionReset,
}

/// A malformed message: the NOTIFICATION that describes it and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub action: Action,
    /// NOTIFICATION error code (RFC 4271 §4.5).
    pub code: u8,
    pub subcode: u8,
    /// The NOTIFICATION data field RFC 4271 §6 asks for (e.g. the offending attribute).
    pub data: Vec<u8>,
    /// What was wrong, for logs and `wrenc decode`.
    pub reason: String,
    /// For RFC 7606 actions, the UPDATE as far as it could be read (malformed attributes left
    /// out); its prefixes are the ones to withdraw or to keep.
    pub update: Option<Box<Update>>,
}

impl Error {
    /// An error that ends the session with NOTIFICATION `code`/`subcode`.
    pub fn reset(
        code: Code,
        subcode: u8,
        data: impl Into<Vec<u8>>,
        reason: impl Into<String>,
    ) -> Self {
        Error {
            action: Action::SessionReset,
            code: code as u8,
            subcode,
            data: data.into(),
            reason: reason.into(),
            update: None,
        }
    }

    /// An UPDATE attribute error handled by `action` (RFC 7606); the code is UPDATE Message Error.
    pub fn attribute(
        action: Action,
        subcode: u8,
        data: impl Into<Vec<u8>>,
        reason: impl Into<String>,
    ) -> Self {
        Error {
            action,
            code: Code::Update as u8,
            subcode,
            data: data.into(),
            reason: reason.into(),
            update: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            Action::SessionReset => "session reset",
            Action::TreatAsWithdraw => "treat-as-withdraw",
            Action::AttributeDiscard => "attribute discard",
        };
        write!(
            f,
            "{} ({}, {action}",
            self.reason,
            describe(self.code, self.subcode)
        )?;
        if !self.data.is_empty() {
            write!(f, ", data {}", hex::encode(&self.data))?;
        }
        write!(f, ")")
    }
}

impl std::error::Error for Error {}

/// A message that cannot be put on the wire as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    #[error("{what} of {len} bytes does not fit its length field")]
    FieldTooLong { what: &'static str, len: usize },
}
