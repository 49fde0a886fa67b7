//! The semantic checks, made once on the model whatever its source: each error names the
//! item it is about, and the source turns that into `FILE:LINE:COL`.

use std::collections::HashMap;

use ipnet::IpNet;

use super::{
    BfdOptions, BgpFilter, Config, FilterRule, Item, MatchOperator, Operation, PRIORITIES,
    RuleAction,
};

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
    // A metric BIRD's 32-bit signed filter arithmetic (2147483647 − x) keeps positive.
    if c.normal_route_priority
        .is_some_and(|p| p == 0 || p > 2_147_483_647)
    {
        return Err((
            Item::Setting("normal_route_priority"),
            "normal_route_priority must be 1 to 2147483647".into(),
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
    .chain((c.communities.iter().enumerate()).map(|(i, r)| (Item::Communities(i, None), &r.prefix)))
    .chain((c.static_routes.iter().enumerate()).map(|(i, r)| (Item::StaticRoute(i), &r.prefix)));
    for (item, net) in prefixes {
        host_bits(net).map_err(|e| (item, e))?;
    }
    for (i, r) in c.static_routes.iter().enumerate() {
        if r.via.is_ipv4() != r.prefix.addr().is_ipv4() {
            return Err((
                Item::StaticRoute(i),
                format!(
                    "static route {}: gateway {} of another family",
                    r.prefix, r.via
                ),
            ));
        }
        if r.prefix.contains(&r.via) {
            // The gateway would resolve through the route itself (BIRD: "Invalid gateway").
            return Err((
                Item::StaticRoute(i),
                format!("static route {}: gateway {} inside it", r.prefix, r.via),
            ));
        }
    }
    filters(&c.filters)?;
    peers(c)
}

/// BGPFilter checks (`bgpfilter.go`'s validation): unique names; in each list, a CIDR of the
/// list's family without host bits; a prefix length only with `in`/`not-in`, within the
/// family's range, min <= max.
fn filters(filters: &[BgpFilter]) -> Result<(), (Item, String)> {
    let mut names = HashMap::new();
    for (i, f) in filters.iter().enumerate() {
        if let Some(first) = names.insert(f.name.as_str(), i) {
            return Err((
                Item::Filter(i, None),
                format!(
                    "filter name {} used twice (first by filter {})",
                    f.name,
                    first + 1
                ),
            ));
        }
        filter(i, f)?;
    }
    Ok(())
}

/// The rules of filter `f`, the `i`th of the configuration.
pub fn filter(i: usize, f: &BgpFilter) -> Result<(), (Item, String)> {
    let lists = [
        ("import_v4", &f.import_v4, false),
        ("export_v4", &f.export_v4, false),
        ("import_v6", &f.import_v6, true),
        ("export_v6", &f.export_v6, true),
    ];
    for (list, rules, v6) in lists {
        for (j, r) in rules.iter().enumerate() {
            rule(r, v6).map_err(|(key, e)| {
                (
                    Item::Filter(i, Some((list, j, Some(key)))),
                    format!("filter {}: {list} rule {}: {e}", f.name, j + 1),
                )
            })?;
        }
    }
    Ok(())
}

/// One rule of a list of the family `v6` says; the error names the key it is about.
fn rule(r: &FilterRule, v6: bool) -> Result<(), (&'static str, String)> {
    let family = if v6 { "IPv6" } else { "IPv4" };
    let longest = if v6 { 128 } else { 32 };
    if let Some((_, net)) = &r.cidr {
        if net.addr().is_ipv6() != v6 {
            return Err(("cidr", format!("{net} is not an {family} prefix")));
        }
        host_bits(net).map_err(|e| ("cidr", e))?;
    }
    if r.interface.as_deref().is_some_and(str::is_empty) {
        return Err(("interface", "interface must not be empty".into()));
    }
    operations(r)?;
    let Some((min, max)) = r.prefix_length else {
        return Ok(());
    };
    let key = if min.is_some() {
        "prefix_length_min"
    } else {
        "prefix_length_max"
    };
    match r.cidr {
        Some((MatchOperator::In | MatchOperator::NotIn, _)) => {}
        _ => {
            return Err((
                key,
                "a prefix length needs a cidr with match \"in\" or \"not-in\"".into(),
            ));
        }
    }
    for (key, v) in [("prefix_length_min", min), ("prefix_length_max", max)] {
        if v.is_some_and(|v| v > longest) {
            return Err((key, format!("{key} is at most {longest} for {family}")));
        }
    }
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err((
            "prefix_length_min",
            format!("prefix_length_min {lo} is above prefix_length_max {hi}"),
        ));
    }
    Ok(())
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

/// The priority condition and the operations (Calico's `BGPFilterRuleV4` validation):
/// priorities 1 to 2147483646, operations only on an accepting rule, at most 10 of them, and
/// 1 to 10 AS numbers to prepend.
fn operations(r: &FilterRule) -> Result<(), (&'static str, String)> {
    let priority = |p: u32| {
        if PRIORITIES.contains(&p) {
            Ok(())
        } else {
            Err(format!(
                "priority {p} is outside {}..={}",
                PRIORITIES.start(),
                PRIORITIES.end()
            ))
        }
    };
    if let Some(p) = r.priority {
        priority(p).map_err(|e| ("priority", e))?;
    }
    if r.operations.is_empty() {
        return Ok(());
    }
    let refuse = |e: String| Err(("operations", e));
    if r.action != RuleAction::Accept {
        return refuse("operations need action \"accept\"".into());
    }
    if r.operations.len() > 10 {
        return refuse(format!("{} operations, at most 10", r.operations.len()));
    }
    for o in &r.operations {
        match o {
            Operation::SetPriority(p) => priority(*p).map_err(|e| ("operations", e))?,
            Operation::PrependAsPath(p) if p.is_empty() || p.len() > 10 => {
                return refuse(format!(
                    "prepend_as_path has {} AS numbers, 1 to 10",
                    p.len()
                ));
            }
            _ => {}
        }
    }
    Ok(())
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
        if s.local_asn == Some(0) {
            return Err((
                at("local_as"),
                format!("peer {name}: local_as must not be 0 (RFC 7607)"),
            ));
        }
        if let Some(missing) = s
            .filters
            .iter()
            .find(|n| !c.filters.iter().any(|f| f.name == **n))
        {
            return Err((
                at("filters"),
                format!("peer {name}: no filter named {missing}"),
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
            (
                "[[static_route]]\nprefix = \"10.0.0.1/24\"\nvia = \"10.1.0.1\"\n",
                Item::StaticRoute(0),
            ),
        ] {
            let (got, msg) = error(extra);
            assert_eq!(got, item, "{extra}");
            assert!(msg.contains("host bits"), "{msg}");
        }
    }

    #[test]
    fn refuses_a_route_priority_out_of_range() {
        for p in ["0", "2147483648"] {
            let (item, msg) = error(&format!("normal_route_priority = {p}\n"));
            assert_eq!(item, Item::Setting("normal_route_priority"));
            assert!(msg.contains("1 to 2147483647"), "{msg}");
        }
    }

    #[test]
    fn refuses_a_static_route_gateway_of_another_family_or_inside_it() {
        let route = |prefix: &str, via: &str| {
            format!("[[static_route]]\nprefix = \"{prefix}\"\nvia = \"{via}\"\n")
        };
        for (extra, says) in [
            (route("10.0.0.0/24", "2001:db8::1"), "another family"),
            (route("10.0.0.0/24", "10.0.0.1"), "inside it"),
        ] {
            let (got, msg) = error(&extra);
            assert_eq!(got, Item::StaticRoute(0), "{extra}");
            assert!(msg.contains(says), "{msg}");
        }
        let ok =
            crate::config::toml::model(&format!("{BASE}{}", route("10.9.0.254/32", "10.0.0.1")));
        assert_eq!(check(&ok), Ok(()));
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
            ("local_as = 0\n", "local_as"),
            ("filters = [\"nope\"]\n", "filters"),
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

    #[test]
    fn refuses_bad_filters() {
        let peer = "[[peer]]\naddress = \"198.51.100.2\"\nasn = 64512\n";
        let (_, msg) = error(&format!("{peer}filters = [\"nope\"]\n"));
        assert!(msg.contains("no filter named nope"), "{msg}");
        let f = |rules: &str| format!("[[filters]]\nname = \"f\"\n{rules}\n");
        let (item, msg) = error(&format!("{}{}", f(""), f("")));
        assert_eq!(item, Item::Filter(1, None));
        assert!(msg.contains("used twice"), "{msg}");
        for (rules, list, key, says) in [
            (
                "import_v4 = [{ action = \"accept\", cidr = \"2001:db8::/32\", match = \"in\" }]",
                "import_v4",
                "cidr",
                "not an IPv4 prefix",
            ),
            (
                "export_v6 = [{ action = \"accept\", cidr = \"10.0.0.0/8\", match = \"in\" }]",
                "export_v6",
                "cidr",
                "not an IPv6 prefix",
            ),
            (
                "import_v4 = [{ action = \"accept\", cidr = \"10.0.0.1/8\", match = \"equal\" }]",
                "import_v4",
                "cidr",
                "host bits",
            ),
            (
                "import_v4 = [{ action = \"reject\", cidr = \"10.0.0.0/8\", match = \"equal\", prefix_length_max = 24 }]",
                "import_v4",
                "prefix_length_max",
                "needs a cidr with match",
            ),
            (
                "import_v4 = [{ action = \"reject\", prefix_length_min = 24 }]",
                "import_v4",
                "prefix_length_min",
                "needs a cidr with match",
            ),
            (
                "export_v4 = [{ action = \"reject\", cidr = \"10.0.0.0/8\", match = \"in\", prefix_length_max = 33 }]",
                "export_v4",
                "prefix_length_max",
                "at most 32",
            ),
            (
                "import_v6 = [{ action = \"reject\", cidr = \"2001:db8::/32\", match = \"not-in\", prefix_length_min = 129 }]",
                "import_v6",
                "prefix_length_min",
                "at most 128",
            ),
            (
                "import_v4 = [{ action = \"reject\", cidr = \"10.0.0.0/8\", match = \"in\", prefix_length_min = 24, prefix_length_max = 16 }]",
                "import_v4",
                "prefix_length_min",
                "above prefix_length_max",
            ),
            (
                "import_v4 = [{ action = \"reject\" }, { action = \"reject\", interface = \"\" }]",
                "import_v4",
                "interface",
                "must not be empty",
            ),
            (
                "import_v4 = [{ action = \"accept\", priority = 0 }]",
                "import_v4",
                "priority",
                "outside 1..=2147483646",
            ),
            (
                "export_v4 = [{ action = \"reject\", operations = [{ set_priority = 5 }] }]",
                "export_v4",
                "operations",
                "need action \"accept\"",
            ),
            (
                "export_v6 = [{ action = \"accept\", operations = [{ set_priority = 2147483647 }] }]",
                "export_v6",
                "operations",
                "outside 1..=2147483646",
            ),
            (
                "export_v6 = [{ action = \"accept\", operations = [{ prepend_as_path = [] }] }]",
                "export_v6",
                "operations",
                "1 to 10",
            ),
        ] {
            let (item, msg) = error(&f(rules));
            let j = usize::from(key == "interface");
            assert_eq!(item, Item::Filter(0, Some((list, j, Some(key)))), "{rules}");
            assert!(msg.contains(says), "{rules}: {msg}");
        }
        let good = f(
            "import_v4 = [{ action = \"reject\", cidr = \"10.0.0.0/8\", match = \"in\", prefix_length_min = 16, prefix_length_max = 24 }]\nexport_v6 = [{ action = \"accept\", from_peers = true, interface = \"eth*\" }]",
        );
        let c = crate::config::toml::model(&format!(
            "{BASE}{good}[defaults]\nfilters = [\"f\"]\n{peer}local_as = 65001\n"
        ));
        assert_eq!(check(&c), Ok(()));
        assert_eq!(c.peers[0].settings.filters, ["f"]);
        assert_eq!(c.peers[0].settings.local_asn, Some(65001));
    }
}
