//! The control socket: BIRD's CLI protocol on a Unix socket, so `birdc`, `birdcl`, calico-node
//! and calicoctl work against wren.

pub mod birdcl;
pub mod client;
pub mod commands;
pub mod datastore;
pub mod metrics;
pub mod server;

/// One reply line: a BIRD reply code and its text (RFC-less; BIRD's doc/reply_codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub code: u16,
    pub text: String,
}

impl Line {
    pub fn new(code: u16, text: impl Into<String>) -> Line {
        Line {
            code,
            text: text.into(),
        }
    }
}
