//! Per-peer route filters: Calico's BGPFilter rules as confd renders them into BIRD functions
//! (`confd/pkg/resource/template/template_funcs.go`, `filterStatement`; called from each
//! peer's import and export filter by `buildImportFilter`/`buildExportFilter` in
//! `confd/pkg/backends/calico/bgp_processor.go`, contract §3.2, §3.5).
//!
//! A peer's filters run in the order it lists them and the first rule that matches decides
//! (a BIRD function's `accept`/`reject` ends the whole filter). On import a route no rule
//! decides is accepted; on export it goes on to Calico's own rules.

use ipnet::IpNet;

use crate::config::{BgpFilter, FilterRule, MatchOperator, RuleAction};
use crate::wire::Family;

/// What a route is matched on.
#[derive(Debug, Clone, Copy)]
pub struct RouteFacts<'a> {
    pub net: &'a IpNet,
    /// Learned from a BGP peer (BIRD's `source = RTS_BGP`).
    pub from_peer: bool,
    /// The route's outgoing interface, when it has one (kernel-learned routes).
    pub device: Option<&'a str>,
}

/// One peer's rules, its filters' lists concatenated in the order the peer names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PeerRules {
    pub import: Direction,
    pub export: Direction,
}

/// The rules of one direction, per family.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Direction {
    pub v4: Vec<FilterRule>,
    pub v6: Vec<FilterRule>,
}

impl PeerRules {
    /// The rules of the filters `names` (names no filter has are skipped, as confd skips a
    /// BGPFilter it cannot read; the sources' checks refuse them before this).
    pub fn of(names: &[String], filters: &[BgpFilter]) -> PeerRules {
        let mut r = PeerRules::default();
        for f in names
            .iter()
            .filter_map(|n| filters.iter().find(|f| f.name == *n))
        {
            r.import.v4.extend_from_slice(&f.import_v4);
            r.import.v6.extend_from_slice(&f.import_v6);
            r.export.v4.extend_from_slice(&f.export_v4);
            r.export.v6.extend_from_slice(&f.export_v6);
        }
        r
    }
}

impl Direction {
    /// The rules for `family`.
    pub fn rules(&self, family: Family) -> &[FilterRule] {
        if family == Family::IPV4_UNICAST {
            &self.v4
        } else if family == Family::IPV6_UNICAST {
            &self.v6
        } else {
            &[]
        }
    }

    /// The action of the first rule for `family` that matches the route, if any does.
    pub fn decide(&self, family: Family, route: &RouteFacts) -> Option<RuleAction> {
        first_match(self.rules(family), route)
    }
}

/// The action of the first of `rules` that matches the route.
pub fn first_match(rules: &[FilterRule], route: &RouteFacts) -> Option<RuleAction> {
    rules.iter().find(|r| matches(r, route)).map(|r| r.action)
}

/// Whether every condition of `rule` holds for the route (`filterStatement`'s `&&`).
pub fn matches(rule: &FilterRule, route: &RouteFacts) -> bool {
    if let Some((op, cidr)) = &rule.cidr
        && !cidr_matches(*op, cidr, rule.prefix_length, route.net)
    {
        return false;
    }
    if rule.from_peers && !route.from_peer {
        return false;
    }
    // `(defined(ifname))&&(ifname ~ "GLOB")`: a route without an interface never matches.
    if let Some(pattern) = &rule.interface
        && !route.device.is_some_and(|d| glob(pattern, d))
    {
        return false;
    }
    true
}

/// `filterMatchCIDR`: `net = P`, `net != P`, `net ~ P`, `net !~ P`; with a prefix length,
/// `net ~ [ P{min,max} ]` where min defaults to (and is at least) P's length and max to (and
/// is at most) the family's longest (`filterMatchPrefixLength`).
fn cidr_matches(
    op: MatchOperator,
    cidr: &IpNet,
    length: Option<(Option<u8>, Option<u8>)>,
    net: &IpNet,
) -> bool {
    let inside = || {
        let (lo, hi) = length.unwrap_or((None, None));
        let lo = lo.map_or(cidr.prefix_len(), |l| l.max(cidr.prefix_len()));
        let hi = hi.map_or(cidr.max_prefix_len(), |h| h.min(cidr.max_prefix_len()));
        cidr.contains(net) && (lo..=hi).contains(&net.prefix_len())
    };
    match op {
        MatchOperator::Equal => net == cidr,
        MatchOperator::NotEqual => net != cidr,
        MatchOperator::In => inside(),
        MatchOperator::NotIn => !inside(),
    }
}

/// BIRD's pattern match (`patmatch`, `filter/filter.c`): `*` any run of characters, `?` any
/// one character, everything else itself.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative with one back-track point: linear in practice, never exponential.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        match p.get(i) {
            Some('*') => {
                star = Some((i, j));
                i += 1;
            }
            Some(&c) if c == '?' || c == n[j] => {
                i += 1;
                j += 1;
            }
            _ => match star {
                Some((si, sj)) => {
                    i = si + 1;
                    j = sj + 1;
                    star = Some((si, sj + 1));
                }
                None => return false,
            },
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn rule(action: RuleAction) -> FilterRule {
        FilterRule {
            action,
            cidr: None,
            prefix_length: None,
            from_peers: false,
            interface: None,
            ..FilterRule::any(RuleAction::Accept)
        }
    }

    fn cidr(action: RuleAction, op: MatchOperator, p: &str) -> FilterRule {
        FilterRule {
            cidr: Some((op, net(p))),
            ..rule(action)
        }
    }

    fn facts<'a>(n: &'a IpNet, from_peer: bool, device: Option<&'a str>) -> RouteFacts<'a> {
        RouteFacts {
            net: n,
            from_peer,
            device,
        }
    }

    #[test]
    fn cidr_operators() {
        use MatchOperator::*;
        let cases = [
            (Equal, "10.0.0.0/8", "10.0.0.0/8", true),
            (Equal, "10.0.0.0/8", "10.1.0.0/16", false),
            (NotEqual, "10.0.0.0/8", "10.1.0.0/16", true),
            (NotEqual, "10.0.0.0/8", "10.0.0.0/8", false),
            (In, "10.0.0.0/8", "10.0.0.0/8", true),
            (In, "10.0.0.0/8", "10.1.2.0/24", true),
            (In, "10.0.0.0/8", "10.0.0.0/7", false),
            (In, "10.0.0.0/8", "11.0.0.0/8", false),
            (NotIn, "10.0.0.0/8", "11.0.0.0/8", true),
            (NotIn, "10.0.0.0/8", "10.9.0.0/16", false),
            (In, "2001:db8::/32", "2001:db8:1::/48", true),
            (In, "2001:db8::/32", "2001:db9::/32", false),
        ];
        for (op, c, n, want) in cases {
            let r = cidr(RuleAction::Accept, op, c);
            let n = net(n);
            assert_eq!(matches(&r, &facts(&n, true, None)), want, "{op:?} {c} {n}");
        }
    }

    #[test]
    fn prefix_length_bounds() {
        let mut r = cidr(RuleAction::Reject, MatchOperator::In, "10.0.0.0/8");
        r.prefix_length = Some((Some(16), Some(24)));
        let m = |r: &FilterRule, n: &str| matches(r, &facts(&net(n), false, None));
        assert!(!m(&r, "10.0.0.0/8"), "shorter than min");
        assert!(m(&r, "10.1.0.0/16"));
        assert!(m(&r, "10.1.2.0/24"));
        assert!(!m(&r, "10.1.2.0/25"), "longer than max");
        assert!(!m(&r, "11.1.0.0/16"), "outside the CIDR");
        // A min below the CIDR's length is raised to it; an unset max is the family's.
        r.prefix_length = Some((Some(4), None));
        assert!(m(&r, "10.0.0.0/8") && m(&r, "10.0.0.1/32") && !m(&r, "10.0.0.0/7"));
        // NotIn is the negation of the whole set.
        r.cidr = Some((MatchOperator::NotIn, net("10.0.0.0/8")));
        r.prefix_length = Some((Some(16), Some(24)));
        assert!(m(&r, "10.0.0.0/8") && m(&r, "10.1.2.0/25") && !m(&r, "10.1.0.0/16"));
    }

    #[test]
    fn source_and_interface() {
        let n = net("198.18.1.0/26");
        let from = FilterRule {
            from_peers: true,
            ..rule(RuleAction::Reject)
        };
        assert!(matches(&from, &facts(&n, true, None)));
        assert!(!matches(&from, &facts(&n, false, Some("cali1"))));
        let ifr = FilterRule {
            interface: Some("cali*".into()),
            ..rule(RuleAction::Accept)
        };
        assert!(matches(&ifr, &facts(&n, false, Some("cali12ab"))));
        assert!(!matches(&ifr, &facts(&n, false, Some("eth0"))));
        assert!(
            !matches(&ifr, &facts(&n, true, None)),
            "no interface, no match"
        );
        let empty = rule(RuleAction::Accept);
        assert!(matches(&empty, &facts(&n, true, None)), "no condition");
    }

    #[test]
    fn first_match_decides_in_the_peers_order() {
        use MatchOperator::*;
        let a = BgpFilter {
            name: "a".into(),
            import_v4: vec![cidr(RuleAction::Reject, Equal, "10.1.0.0/16")],
            ..BgpFilter::default()
        };
        let b = BgpFilter {
            name: "b".into(),
            import_v4: vec![
                cidr(RuleAction::Accept, In, "10.0.0.0/8"),
                rule(RuleAction::Reject),
            ],
            import_v6: vec![rule(RuleAction::Reject)],
            ..BgpFilter::default()
        };
        let filters = [a, b];
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let v4 = Family::IPV4_UNICAST;
        let decide = |r: &PeerRules, n: &str| r.import.decide(v4, &facts(&net(n), true, None));
        let ab = PeerRules::of(&names(&["a", "b"]), &filters);
        assert_eq!(decide(&ab, "10.1.0.0/16"), Some(RuleAction::Reject));
        assert_eq!(decide(&ab, "10.2.0.0/16"), Some(RuleAction::Accept));
        assert_eq!(decide(&ab, "192.0.2.0/24"), Some(RuleAction::Reject));
        let ba = PeerRules::of(&names(&["b", "a"]), &filters);
        assert_eq!(decide(&ba, "10.1.0.0/16"), Some(RuleAction::Accept));
        let only_a = PeerRules::of(&names(&["a", "missing"]), &filters);
        assert_eq!(decide(&only_a, "192.0.2.0/24"), None, "no rule decides");
        let v6 = net("2001:db8::/48");
        assert_eq!(
            ab.import
                .decide(Family::IPV6_UNICAST, &facts(&v6, true, None)),
            Some(RuleAction::Reject)
        );
        assert!(ab.export.rules(v4).is_empty());
    }

    #[test]
    fn globs() {
        for (p, n, want) in [
            ("*", "", true),
            ("*", "eth0", true),
            ("cali*", "cali", true),
            ("cali*", "cal", false),
            ("*.cali", "bpfin.cali", true),
            ("*.cali", "bpfin.calico", false),
            ("eth?", "eth0", true),
            ("eth?", "eth10", false),
            ("e*h*0", "eth10", true),
            ("e*h*1", "eth10", false),
            ("tunl0", "tunl0", true),
            ("**a", "bbba", true),
        ] {
            assert_eq!(glob(p, n), want, "{p} {n}");
        }
    }
}
