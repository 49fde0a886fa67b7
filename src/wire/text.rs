//! The text form of captured messages: one message per line as hex, `#` comment lines, and
//! `#!` directive lines that say how the following messages were negotiated
//! (`#! add-path=ipv4,ipv6`, `#! as2`, `#! extended-message`). Used by `wrenc decode` /
//! `wrenc encode` and by the golden vectors in tests/vectors/.

use super::{Error, Message, Negotiated};

/// One input line, classified.
pub enum Line<'a> {
    /// Blank or a `#` comment: passed through unchanged.
    Comment,
    /// A `#!` directive, already applied to the options.
    Directive,
    /// Anything else: a message in hex (or JSON, for `wrenc encode`).
    Message(&'a str),
}

/// Classifies `line`, applying a directive to `neg`.
pub fn classify<'a>(line: &'a str, neg: &mut Negotiated) -> Result<Line<'a>, String> {
    let t = line.trim();
    if let Some(d) = t.strip_prefix("#!") {
        for word in d.split_whitespace() {
            apply_option(word, neg)?;
        }
        return Ok(Line::Directive);
    }
    if t.is_empty() || t.starts_with('#') {
        return Ok(Line::Comment);
    }
    Ok(Line::Message(t))
}

/// Applies one option word: `as2`, `as4`, `extended-message`, `add-path=FAMILIES` where
/// FAMILIES is a comma list of `ipv4`, `ipv6` (or `none`).
pub fn apply_option(word: &str, neg: &mut Negotiated) -> Result<(), String> {
    match word {
        "as2" => neg.four_octet_as = false,
        "as4" => neg.four_octet_as = true,
        "extended-message" => neg.extended_message = true,
        _ => {
            let Some(list) = word.strip_prefix("add-path=") else {
                return Err(format!("unknown directive {word:?}"));
            };
            set_add_path(list, neg)?;
        }
    }
    Ok(())
}

/// Sets add-path receive for the families in a comma list (`ipv4,ipv6`, or `none`).
pub fn set_add_path(list: &str, neg: &mut Negotiated) -> Result<(), String> {
    neg.add_path_ipv4 = false;
    neg.add_path_ipv6 = false;
    for f in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match f {
            "ipv4" => neg.add_path_ipv4 = true,
            "ipv6" => neg.add_path_ipv6 = true,
            "none" => {}
            _ => return Err(format!("unknown add-path family {f:?} (ipv4, ipv6)")),
        }
    }
    Ok(())
}

/// Why a line could not be read.
#[derive(Debug)]
pub enum LineError {
    /// Not hex at all.
    Hex(String),
    /// Hex, but not a well-formed message.
    Wire(Error),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::Hex(e) => write!(f, "not hex: {e}"),
            LineError::Wire(e) => write!(f, "{e}"),
        }
    }
}

/// Decodes one hex line into a message.
pub fn decode_hex(hex_text: &str, neg: &Negotiated) -> Result<(Vec<u8>, Message), LineError> {
    let compact: String = hex_text.split_whitespace().collect();
    let bytes = hex::decode(&compact).map_err(|e| LineError::Hex(e.to_string()))?;
    let msg = super::decode(&bytes, neg).map_err(LineError::Wire)?;
    Ok((bytes, msg))
}
