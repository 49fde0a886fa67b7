//! Per-peer route filters: Calico's BGPFilter rules as confd renders them into BIRD functions
//! (`confd/pkg/resource/template/template_funcs.go`, `filterStatement`; called from each
//! peer's import and export filter by `buildImportFilter`/`buildExportFilter` in
//! `confd/pkg/backends/calico/bgp_processor.go`, contract §3.2, §3.5).
//!
//! A peer's filters run in the order it lists them and the first rule that matches decides
//! (a BIRD function's `accept`/`reject` ends the whole filter). On import a route no rule
//! decides is accepted; on export it goes on to Calico's own rules.

use ipnet::IpNet;

use crate::attrs::AttrSet;
use crate::model::{
    AnyCommunity, BgpFilter, FilterRule, MatchOperator, Operation, PRIORITY_BASE, PeerType,
};
use crate::wire::Family;
use crate::wire::attr::{Segment, SegmentKind};

/// What a route is matched on.
#[derive(Debug, Clone, Copy)]
pub struct RouteFacts<'a> {
    pub net: &'a IpNet,
    /// Its attributes: the source (a peer is BIRD's `source = RTS_BGP`), the outgoing
    /// interface of a kernel route, communities, AS path, LOCAL_PREF.
    pub attrs: &'a AttrSet,
    /// The session the filter runs for is iBGP (confd's `is_same_as`, `bgp_processor.go`).
    pub ibgp: bool,
    /// On export to an eBGP peer, the AS the session speaks as: BIRD 1.6's protocol puts it
    /// first in the path before the export filter runs (`bgp_import_control`), so an AS
    /// path test sees it there.
    pub lead: Option<u32>,
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

    /// The first rule for `family` that matches the route, if any does.
    pub fn decide(&self, family: Family, route: &RouteFacts) -> Option<&FilterRule> {
        first_match(self.rules(family), route)
    }
}

/// The first of `rules` that matches the route: its action decides, and an accepting rule's
/// operations change the route ([`apply`]).
pub fn first_match<'r>(rules: &'r [FilterRule], route: &RouteFacts) -> Option<&'r FilterRule> {
    rules.iter().find(|r| matches(r, route))
}

/// Whether every condition of `rule` holds for the route (`filterStatement`'s `&&`).
pub fn matches(rule: &FilterRule, route: &RouteFacts) -> bool {
    let a = route.attrs;
    if let Some((op, cidr)) = &rule.cidr
        && !cidr_matches(*op, cidr, rule.prefix_length, route.net)
    {
        return false;
    }
    if rule.from_peers && a.source.peer_id().is_none() {
        return false;
    }
    // `(defined(ifname))&&(ifname ~ "GLOB")`: a route without an interface never matches.
    if let Some(pattern) = &rule.interface
        && !a.device.as_deref().is_some_and(|d| glob(pattern, d))
    {
        return false;
    }
    // `if (is_same_as) then { … }` / `if (!is_same_as) then { … }`.
    if let Some(t) = rule.peer_type
        && (t == PeerType::Ibgp) != route.ibgp
    {
        return false;
    }
    // `(A, B) ~ bgp_community`, `(A, B, C) ~ bgp_large_community` (`filterMatchCommunity`).
    let carries = match rule.community {
        None => true,
        Some(AnyCommunity::Standard(c)) => a.communities.contains(&c),
        Some(AnyCommunity::Large(c)) => a.large_communities.contains(&c),
    };
    if !carries || !path_begins(&a.as_path, route.lead, &rule.as_path_prefix) {
        return false;
    }
    // `defined(bgp_local_pref)&&(bgp_local_pref = 2147483647 - P)` (`filterMatchPriority`).
    rule.priority
        .is_none_or(|p| a.local_pref.is_some() && a.local_pref == PRIORITY_BASE.checked_sub(p))
}

/// `bgp_path ~ [= A B * =]` (`filterMatchASPathPrefix`): the path's first positions are
/// `asns`. As in BIRD's `as_path_match`, an AS_SET is one position that matches any of its
/// members; every other segment is one position per AS number. `lead`, when set, is the
/// first position.
fn path_begins(path: &[Segment], lead: Option<u32>, asns: &[u32]) -> bool {
    let mut want = asns.iter();
    if let Some(first) = lead {
        match want.next() {
            None => return true,
            Some(w) if *w == first => {}
            Some(_) => return false,
        }
    }
    for s in path {
        let set = matches!(s.kind, SegmentKind::Set | SegmentKind::ConfedSet);
        if set {
            match want.next() {
                None => return true,
                Some(w) if s.asns.contains(w) => {}
                Some(_) => return false,
            }
            continue;
        }
        for asn in &s.asns {
            match want.next() {
                None => return true,
                Some(w) if w == asn => {}
                Some(_) => return false,
            }
        }
    }
    want.next().is_none()
}

/// An accepting rule's operations, in order (`filterOperationStatements`):
/// `bgp_community.add((A, B))` and `bgp_large_community.add((A, B, C))` (a community
/// already there is not added twice), `bgp_path.prepend(N)` one AS at a time from the last
/// so the path starts with the list as written, `bgp_local_pref = 2147483647 - P`.
pub fn apply(ops: &[Operation], a: &mut AttrSet) {
    for o in ops {
        match o {
            Operation::AddCommunity(AnyCommunity::Standard(c)) => {
                if !a.communities.contains(c) {
                    a.communities.push(*c);
                }
            }
            Operation::AddCommunity(AnyCommunity::Large(c)) => {
                if !a.large_communities.contains(c) {
                    a.large_communities.push(*c);
                }
            }
            Operation::PrependAsPath(asns) => asns.iter().rev().for_each(|&n| a.prepend(n)),
            Operation::SetPriority(p) => {
                if let Some(lp) = PRIORITY_BASE.checked_sub(*p) {
                    a.local_pref = Some(lp);
                }
            }
        }
    }
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
    use crate::attrs::PathSource;
    use crate::model::RuleAction;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn cidr(action: RuleAction, op: MatchOperator, p: &str) -> FilterRule {
        FilterRule {
            cidr: Some((op, net(p))),
            ..FilterRule::any(action)
        }
    }

    /// A route's attributes: learned from a peer or not, with an interface or not.
    fn attrs(from_peer: bool, device: Option<&str>) -> AttrSet {
        let mut a = AttrSet::local();
        if from_peer {
            a.source = PathSource::Peer(1);
        }
        a.device = device.map(str::to_string);
        a
    }

    /// Whether `r` matches `n` with those attributes, on an eBGP session.
    fn check(r: &FilterRule, n: &IpNet, from_peer: bool, device: Option<&str>) -> bool {
        let a = attrs(from_peer, device);
        matches(r, &facts(n, &a, false))
    }

    fn facts<'a>(net: &'a IpNet, attrs: &'a AttrSet, ibgp: bool) -> RouteFacts<'a> {
        RouteFacts {
            net,
            attrs,
            ibgp,
            lead: None,
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
            assert_eq!(check(&r, &n, true, None), want, "{op:?} {c} {n}");
        }
    }

    #[test]
    fn prefix_length_bounds() {
        let mut r = cidr(RuleAction::Reject, MatchOperator::In, "10.0.0.0/8");
        r.prefix_length = Some((Some(16), Some(24)));
        let m = |r: &FilterRule, n: &str| check(r, &net(n), false, None);
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
            ..FilterRule::any(RuleAction::Reject)
        };
        assert!(check(&from, &n, true, None));
        assert!(!check(&from, &n, false, Some("cali1")));
        let ifr = FilterRule {
            interface: Some("cali*".into()),
            ..FilterRule::any(RuleAction::Accept)
        };
        assert!(check(&ifr, &n, false, Some("cali12ab")));
        assert!(!check(&ifr, &n, false, Some("eth0")));
        assert!(!check(&ifr, &n, true, None), "no interface, no match");
        let empty = FilterRule::any(RuleAction::Accept);
        assert!(check(&empty, &n, true, None), "no condition");
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
                FilterRule::any(RuleAction::Reject),
            ],
            import_v6: vec![FilterRule::any(RuleAction::Reject)],
            ..BgpFilter::default()
        };
        let filters = [a, b];
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let v4 = Family::IPV4_UNICAST;
        let a = attrs(true, None);
        let decide = |r: &PeerRules, n: &str| {
            let n = net(n);
            r.import.decide(v4, &facts(&n, &a, false)).map(|r| r.action)
        };
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
                .decide(Family::IPV6_UNICAST, &facts(&v6, &a, false))
                .map(|r| r.action),
            Some(RuleAction::Reject)
        );
        assert!(ab.export.rules(v4).is_empty());
    }

    fn seq(asns: &[u32]) -> Segment {
        Segment {
            kind: SegmentKind::Sequence,
            asns: asns.to_vec(),
        }
    }

    #[test]
    fn peer_type_is_the_sessions_kind() {
        let n = net("198.18.1.0/26");
        let a = attrs(true, None);
        for (t, ibgp, want) in [
            (PeerType::Ibgp, true, true),
            (PeerType::Ibgp, false, false),
            (PeerType::Ebgp, false, true),
            (PeerType::Ebgp, true, false),
        ] {
            let r = FilterRule {
                peer_type: Some(t),
                ..FilterRule::any(RuleAction::Accept)
            };
            assert_eq!(matches(&r, &facts(&n, &a, ibgp)), want, "{t:?} ibgp={ibgp}");
        }
    }

    #[test]
    fn communities_standard_and_large() {
        let n = net("198.18.1.0/26");
        let mut a = attrs(true, None);
        a.communities = vec!["65000:100".parse().unwrap()];
        a.large_communities = vec!["65000:1:2".parse().unwrap()];
        let with = |c: &str| FilterRule {
            community: Some(c.parse().unwrap()),
            ..FilterRule::any(RuleAction::Accept)
        };
        let m = |r: &FilterRule, a: &AttrSet| matches(r, &facts(&n, a, false));
        assert!(m(&with("65000:100"), &a));
        assert!(!m(&with("65000:101"), &a));
        assert!(m(&with("65000:1:2"), &a));
        assert!(!m(&with("65000:1:3"), &a));
        assert!(!m(&with("65000:100"), &attrs(true, None)), "none carried");
    }

    #[test]
    fn as_path_prefix_is_the_paths_start() {
        let n = net("198.18.1.0/26");
        let mut a = attrs(true, None);
        a.as_path = vec![seq(&[65000]), seq(&[65001, 65002])];
        let r = |asns: &[u32]| FilterRule {
            as_path_prefix: asns.to_vec(),
            ..FilterRule::any(RuleAction::Accept)
        };
        let m = |r: &FilterRule, a: &AttrSet| matches(r, &facts(&n, a, false));
        assert!(m(&r(&[65000]), &a));
        assert!(m(&r(&[65000, 65001]), &a), "across segments");
        assert!(m(&r(&[65000, 65001, 65002]), &a), "the whole path");
        assert!(!m(&r(&[65001]), &a), "not at the start");
        assert!(
            !m(&r(&[65000, 65001, 65002, 65003]), &a),
            "longer than the path"
        );
        assert!(!m(&r(&[65000]), &attrs(true, None)), "an empty path");
        // An AS_SET is one position matching any member.
        a.as_path = vec![
            Segment {
                kind: SegmentKind::Set,
                asns: vec![7, 8],
            },
            seq(&[9]),
        ];
        assert!(m(&r(&[8, 9]), &a) && !m(&r(&[7, 8]), &a));
        // On export to eBGP the session's AS comes first.
        a.as_path = vec![seq(&[65000])];
        let lead = |r: &FilterRule| {
            let f = RouteFacts {
                lead: Some(64512),
                ..facts(&n, &a, false)
            };
            matches(r, &f)
        };
        assert!(lead(&r(&[64512])) && lead(&r(&[64512, 65000])));
        assert!(!lead(&r(&[65000])));
    }

    #[test]
    fn priority_is_local_pref_inverted() {
        let n = net("198.18.1.0/26");
        let r = FilterRule {
            priority: Some(100),
            ..FilterRule::any(RuleAction::Accept)
        };
        let mut a = attrs(true, None);
        assert!(!matches(&r, &facts(&n, &a, false)), "no LOCAL_PREF");
        a.local_pref = Some(2_147_483_547);
        assert!(matches(&r, &facts(&n, &a, false)));
        a.local_pref = Some(100);
        assert!(!matches(&r, &facts(&n, &a, false)));
    }

    #[test]
    fn operations_change_the_route_in_order() {
        let mut a = attrs(true, None);
        a.as_path = vec![seq(&[65100])];
        a.communities = vec!["65001:200".parse().unwrap()];
        apply(
            &[
                Operation::AddCommunity("65001:200".parse().unwrap()),
                Operation::AddCommunity("65001:300".parse().unwrap()),
                Operation::AddCommunity("65001:2:3".parse().unwrap()),
                Operation::PrependAsPath(vec![65000, 65001]),
                Operation::SetPriority(100),
                Operation::SetPriority(1),
            ],
            &mut a,
        );
        let c = |s: &str| s.parse().unwrap();
        assert_eq!(a.communities, [c("65001:200"), c("65001:300")], "no twice");
        assert_eq!(a.large_communities, ["65001:2:3".parse().unwrap()]);
        assert_eq!(a.as_path, [seq(&[65000, 65001, 65100])]);
        assert_eq!(a.local_pref, Some(2_147_483_646), "the last one wins");
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
