//! The semantic checks, made once on the model whatever its source: each error names the
//! item it is about, and the source turns that into `FILE:LINE:COL`.

use std::collections::HashMap;

use ipnet::IpNet;

use super::{BfdOptions, Config, Item};

/// At most this many `[[communities]]` ranges (a prefix's ranges are a 64-bit mask).
const MAX_COMMUNITY_RANGES: usize = 64;

/// The longest TCP MD5 key the kernel takes (`TCP_MD5SIG_MAXKEYLEN`).
const MAX_PASSWORD: usize = 80;

/// The first problem found, with the item it is about.
pub fn check(c: &Config) -> Result<(), (Item, String)> {
    if c.router_id.is_unspecified() {
        // RFC 4271 §4.2 / RFC 6286 §2.1: the BGP Identifier is non-zero.
        return Err((
            Item::Setting("router_id"),
            "router_id must not be 0.0.0.0".into(),
        ));
    }
    if c.asn == 0 {
        // RFC 7607: AS 0 is reserved and never used in an OPEN.
        return Err((Item::Setting("asn"), "asn must not be 0 (RFC 7607)".into()));
    }
    if c.max_paths == 0 {
        return Err((
            Item::Setting("max_paths"),
            "max_paths must be at least 1".into(),
        ));
    }
    if c.communities.len() > MAX_COMMUNITY_RANGES {
        return Err((
            Item::Communities(MAX_COMMUNITY_RANGES, None),
            format!("at most {MAX_COMMUNITY_RANGES} [[communities]] ranges"),
        ));
    }
    let prefixes = (c
        .originate
        .iter()
        .enumerate()
        .map(|(i, n)| (Item::Originate(i), n)))
    .chain(
        c.services
            .iter()
            .enumerate()
            .map(|(i, n)| (Item::Service(i), n)),
    )
    .chain(
        c.pools
            .iter()
            .enumerate()
            .map(|(i, p)| (Item::Pool(i), &p.cidr)),
    )
    .chain(
        (c.communities.iter().enumerate()).map(|(i, r)| (Item::Communities(i, None), &r.prefix)),
    );
    for (item, net) in prefixes {
        host_bits(net).map_err(|e| (item, e))?;
    }
    peers(c)
}

/// Longest BFD interval taken, in milliseconds (the wire carries microseconds in 32 bits).
const MAX_BFD_INTERVAL: u32 = 60_000;

/// BFD timers within what the wire carries (RFC 5880 §4.1: Detect Mult is non-zero), and a
/// key that fits its type (§4.2–§4.4).
fn bfd(b: &BfdOptions) -> Result<(), String> {
    for (name, ms) in [("min_tx", b.min_tx()), ("min_rx", b.min_rx())] {
        if !(1..=MAX_BFD_INTERVAL).contains(&ms) {
            return Err(format!("{name} must be 1 to {MAX_BFD_INTERVAL} ms"));
        }
    }
    if b.multiplier() == 0 {
        return Err("multiplier must be at least 1".into());
    }
    match (b.auth, &b.password) {
        (None, _) => Ok(()),
        (Some(a), Some(pw)) if (1..=a.max_key()).contains(&pw.len()) => Ok(()),
        (Some(a), _) => Err(format!(
            "{a:?} needs a password of 1 to {} bytes",
            a.max_key()
        )),
    }
}

/// A prefix with bits set after its length is refused rather than truncated: it is most
/// likely a typo for another prefix.
fn host_bits(net: &IpNet) -> Result<(), String> {
    if net.trunc() == *net {
        Ok(())
    } else {
        Err(format!(
            "{net} has host bits set (the prefix is {})",
            net.trunc()
        ))
    }
}

fn peers(c: &Config) -> Result<(), (Item, String)> {
    let mut names = HashMap::new();
    let mut addresses = HashMap::new();
    for (i, p) in c.peers.iter().enumerate() {
        let s = &p.settings;
        let at = |field| Item::Peer(i, Some(field));
        let name = &p.name;
        if p.asn == 0 {
            return Err((
                at("asn"),
                format!("peer {name}: asn must not be 0 (RFC 7607)"),
            ));
        }
        if s.hold_time != 0 && s.hold_time < 3 {
            return Err((
                at("hold_time"),
                format!("peer {name}: hold_time must be 0 or at least 3 (RFC 4271 §4.2)"),
            ));
        }
        if s.error_wait[0] == 0 || s.error_wait[0] > s.error_wait[1] {
            return Err((
                at("error_wait"),
                format!("peer {name}: error_wait must be [min, max] with 0 < min <= max"),
            ));
        }
        if s.password
            .as_ref()
            .is_some_and(|pw| pw.len() > MAX_PASSWORD)
        {
            return Err((
                at("password"),
                format!(
                    "peer {name}: password longer than {MAX_PASSWORD} bytes (TCP_MD5SIG limit)"
                ),
            ));
        }
        if s.rr_client && c.cluster_id.is_none() {
            return Err((
                at("rr_client"),
                format!("peer {name}: rr_client needs cluster_id"),
            ));
        }
        if s.add_paths_send == 0 {
            return Err((
                at("add_paths_send"),
                format!("peer {name}: add_paths_send must be at least 1"),
            ));
        }
        if s.import_limit == Some(0) {
            return Err((
                at("import_limit"),
                format!("peer {name}: import_limit must be at least 1"),
            ));
        }
        if let Some(b) = &s.bfd.0 {
            bfd(b).map_err(|e| (at("bfd"), format!("peer {name}: bfd: {e}")))?;
        }
        if let Some(first) = addresses.insert((p.address, p.port), i) {
            // Two sessions to one neighbour would collide with each other for ever.
            return Err((
                at("address"),
                format!(
                    "peer {name}: neighbour {} port {} is already peer {}",
                    p.address, p.port, c.peers[first].name
                ),
            ));
        }
        if let Some(first) = names.insert(name.clone(), i) {
            return Err((
                at("name"),
                format!("peer name {name} used twice (first by peer {})", first + 1),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "router_id = \"198.51.100.1\"\nasn = 64512\n";

    fn error(extra: &str) -> (Item, String) {
        let c = crate::config::toml::model(&format!("{BASE}{extra}"));
        check(&c).expect_err("refused")
    }

    #[test]
    fn a_good_config_passes() {
        let c = crate::config::toml::model(&format!(
            "{BASE}originate = [\"203.0.113.0/26\"]\n[[peer]]\naddress = \"198.51.100.2\"\nasn = 64512\n"
        ));
        assert_eq!(check(&c), Ok(()));
    }

    #[test]
    fn refuses_router_id_zero_and_asn_zero() {
        let c = crate::config::toml::model("router_id = \"0.0.0.0\"\nasn = 1\n");
        assert_eq!(check(&c).map_err(|e| e.0), Err(Item::Setting("router_id")));
        let c = crate::config::toml::model("router_id = \"192.0.2.1\"\nasn = 0\n");
        assert_eq!(check(&c).map_err(|e| e.0), Err(Item::Setting("asn")));
        let (item, msg) = error("[[peer]]\naddress = \"198.51.100.2\"\nasn = 0\n");
        assert_eq!(item, Item::Peer(0, Some("asn")));
        assert!(msg.contains("asn must not be 0"), "{msg}");
    }

    #[test]
    fn refuses_host_bits_anywhere_a_prefix_is_configured() {
        for (extra, item) in [
            (
                "originate = [\"10.0.0.0/24\", \"10.0.1.1/24\"]\n",
                Item::Originate(1),
            ),
            ("services = [\"2001:db8::1/64\"]\n", Item::Service(0)),
            ("[[pool]]\ncidr = \"10.0.0.1/16\"\n", Item::Pool(0)),
            (
                "[[communities]]\nprefix = \"10.0.0.1/24\"\ncommunities = [\"1:1\"]\n",
                Item::Communities(0, None),
            ),
        ] {
            let (got, msg) = error(extra);
            assert_eq!(got, item, "{extra}");
            assert!(msg.contains("host bits"), "{msg}");
        }
    }

    #[test]
    fn refuses_a_duplicate_neighbour() {
        let peer = "[[peer]]\naddress = \"198.51.100.2\"\nasn = 64512\n";
        let (item, msg) = error(&format!("{peer}{peer}name = \"other\"\n"));
        assert_eq!(item, Item::Peer(1, Some("address")));
        assert!(msg.contains("already peer Node_198_51_100_2"), "{msg}");
        // Another port is another neighbour.
        let c =
            crate::config::toml::model(&format!("{BASE}{peer}{peer}name = \"b\"\nport = 1179\n"));
        assert_eq!(check(&c), Ok(()));
    }

    #[test]
    fn refuses_bad_peer_settings() {
        let peer = "[[peer]]\naddress = \"198.51.100.2\"\nasn = 64512\n";
        for (extra, field) in [
            ("hold_time = 2\n", "hold_time"),
            ("error_wait = [3, 2]\n", "error_wait"),
            (&format!("password = \"{}\"\n", "x".repeat(81)), "password"),
            ("rr_client = true\n", "rr_client"),
            ("add_paths_send = 0\n", "add_paths_send"),
            ("import_limit = 0\n", "import_limit"),
        ] {
            assert_eq!(
                error(&format!("{peer}{extra}")).0,
                Item::Peer(0, Some(field)),
                "{extra}"
            );
        }
        let other = "[[peer]]\naddress = \"198.51.100.3\"\nasn = 64512\n";
        let (item, _) = error(&format!("{peer}name = \"x\"\n{other}name = \"x\"\n"));
        assert_eq!(item, Item::Peer(1, Some("name")));
    }
}
