//! What is imported, exported and reflected: Calico's rules (`calico`) and BGP's own
//! propagation rules (`reflect`).

pub mod calico;
pub mod reflect;

use crate::wire::attr::{Community, LargeCommunity};

/// A community as configured: `ASN:VALUE` (RFC 1997) or `A:B:C` (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyCommunity {
    Standard(Community),
    Large(LargeCommunity),
}

pub fn parse_community(s: &str) -> Result<AnyCommunity, String> {
    match s.matches(':').count() {
        1 => s.parse().map(AnyCommunity::Standard),
        2 => s.parse().map(AnyCommunity::Large),
        _ => Err(format!("{s:?} is neither ASN:VALUE nor A:B:C")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities() {
        assert_eq!(
            parse_community("65000:100"),
            Ok(AnyCommunity::Standard(Community(65000 << 16 | 100)))
        );
        assert_eq!(
            parse_community("1:2:3"),
            Ok(AnyCommunity::Large(LargeCommunity([1, 2, 3])))
        );
        assert!(parse_community("x").is_err());
        assert!(parse_community("70000:1").is_err());
    }
}
