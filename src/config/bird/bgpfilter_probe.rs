//! The check that the model's BGPFilter rules decide as the BIRD functions they came from:
//! every function runs on probe routes built from its rules' values (each CIDR, its
//! subnets at the rule's length bounds and around it, the communities, AS path prefixes and
//! priorities the rules name, BGP, static and kernel routes), once per `is_same_as` value
//! when it takes one, and so do the model's rules ([`first_match`], [`apply`]). The first
//! route they treat differently, in decision or in the attributes an accepting rule leaves,
//! is an error at the function.

use std::net::IpAddr;

use ipnet::IpNet;

use super::ast::{self, Expr, ExprKind, FilterRef, ItemKind, Stmt, StmtKind};
use super::bgpfilter::{List, split_name};
use super::eval::{Evaluator, Route};
use super::{Error, Pos};
use crate::attrs::{AttrSet, PathSource};
use crate::config::{AnyCommunity, BgpFilter, FilterRule, PRIORITY_BASE, RuleAction};
use crate::policy::filter::{RouteFacts, apply, first_match};
use crate::wire::attr::{Community, LargeCommunity, Segment, SegmentKind};

/// A MED no probe route carries: set after the function returns, it tells "no rule
/// decided" from a rule's `accept`.
const FELL_THROUGH: u32 = 0x5eed_f11e;

/// What a function or the model did with a route: its decision (`None`: no rule decided)
/// and, when accepted, (LOCAL_PREF, communities, large communities, AS path) after it.
type Verdict = (Option<RuleAction>, Option<Changed>);
type Changed = (Option<u32>, Vec<AnyCommunity>, Vec<AnyCommunity>, Vec<u32>);

/// Runs every BGPFilter function of `config` and the model's rules on the probe routes.
pub fn check(config: &ast::Config, filters: &[BgpFilter]) -> Result<(), Error> {
    let eval = Evaluator::new(config);
    for item in &config.items {
        let ItemKind::Function(f) = &item.kind else {
            continue;
        };
        let Some((name, list)) = split_name(&f.name) else {
            continue;
        };
        let Some(filter) = filters.iter().find(|x| x.name == name) else {
            continue;
        };
        let (rules, v6, export) = match list {
            List::ImportV4 => (&filter.import_v4, false, false),
            List::ExportV4 => (&filter.export_v4, false, true),
            List::ImportV6 => (&filter.import_v6, true, false),
            List::ExportV6 => (&filter.export_v6, true, true),
        };
        let sides: &[bool] = if f.params.is_empty() {
            &[false]
        } else {
            &[true, false]
        };
        for route in probes(rules, v6, export) {
            for &ibgp in sides {
                let call = call(&f.name, !f.params.is_empty(), ibgp, &item.pos);
                let bird = bird_verdict(&eval.run(&call, route.clone()));
                let wren = model_verdict(rules, &route, ibgp);
                if bird != wren {
                    return Err(Error::new(
                        &item.pos,
                        format!(
                            "{}: on {} ({}) the function gives {bird:?}, wren's rules \
                             {wren:?}: the function does something the model cannot carry",
                            f.name,
                            describe(&route),
                            if ibgp { "iBGP" } else { "eBGP" },
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `{ 'F'([IBGP]); bgp_med = FELL_THROUGH; accept; }`.
fn call(name: &str, takes: bool, ibgp: bool, pos: &Pos) -> FilterRef {
    let expr = |kind| Expr {
        pos: pos.clone(),
        kind,
    };
    let stmt = |kind| Stmt {
        pos: pos.clone(),
        kind,
    };
    FilterRef::Inline(vec![
        stmt(StmtKind::Call {
            name: name.to_string(),
            args: takes
                .then(|| expr(ExprKind::Bool(ibgp)))
                .into_iter()
                .collect(),
        }),
        stmt(StmtKind::Assign {
            attr: ast::Attr::BgpMed,
            value: expr(ExprKind::Int(FELL_THROUGH)),
        }),
        stmt(StmtKind::Accept),
    ])
}

fn bird_verdict(o: &super::eval::Outcome) -> Verdict {
    let r = &o.route;
    if !o.accepted {
        return (Some(RuleAction::Reject), None);
    }
    if r.bgp_med == Some(FELL_THROUGH) {
        return (None, None);
    }
    let standard = (r.bgp_community.iter().flatten())
        .map(|(a, b)| AnyCommunity::Standard(Community(a << 16 | b)))
        .collect();
    let large = (r.bgp_large_community.iter().flatten())
        .map(|(a, b, c)| AnyCommunity::Large(LargeCommunity([*a, *b, *c])))
        .collect();
    let path = r.bgp_path.clone().unwrap_or_default();
    (
        Some(RuleAction::Accept),
        Some(sorted((r.bgp_local_pref, standard, large, path))),
    )
}

fn model_verdict(rules: &[FilterRule], route: &Route, ibgp: bool) -> Verdict {
    let mut a = attrs(route);
    let facts = RouteFacts {
        net: &route.net,
        attrs: &a,
        ibgp,
        lead: None,
    };
    let Some(rule) = first_match(rules, &facts) else {
        return (None, None);
    };
    if rule.action == RuleAction::Reject {
        return (Some(RuleAction::Reject), None);
    }
    apply(&rule.operations, &mut a);
    let standard = a.communities.iter().map(|c| AnyCommunity::Standard(*c));
    let large = a.large_communities.iter().map(|c| AnyCommunity::Large(*c));
    let path = a
        .as_path
        .iter()
        .flat_map(|s| s.asns.iter().copied())
        .collect();
    (
        Some(RuleAction::Accept),
        Some(sorted((
            a.local_pref,
            standard.collect(),
            large.collect(),
            path,
        ))),
    )
}

/// Communities compared as sets (BIRD keeps a clist sorted; wren in the order added).
fn sorted((lp, mut c, mut l, path): Changed) -> Changed {
    let key = |x: &AnyCommunity| x.to_string();
    c.sort_by_key(key);
    l.sort_by_key(key);
    (lp, c, l, path)
}

/// The model's view of a probe route: a peer's route, the node's static route, or a kernel
/// route through its interface.
fn attrs(r: &Route) -> AttrSet {
    let mut a = AttrSet::local();
    a.source = match r.source {
        ast::Source::Bgp => PathSource::Peer(0),
        ast::Source::Inherit => PathSource::Kernel,
        _ => PathSource::Local,
    };
    if r.source == ast::Source::Inherit {
        a.device = r.ifname.clone();
    }
    a.local_pref = r.bgp_local_pref;
    a.communities = (r.bgp_community.iter().flatten())
        .map(|(x, y)| Community(x << 16 | y))
        .collect();
    a.large_communities = (r.bgp_large_community.iter().flatten())
        .map(|(x, y, z)| LargeCommunity([*x, *y, *z]))
        .collect();
    if let Some(p) = r.bgp_path.as_ref().filter(|p| !p.is_empty()) {
        a.as_path = vec![Segment {
            kind: SegmentKind::Sequence,
            asns: p.clone(),
        }];
    }
    a
}

/// The probe routes for `rules`: BGP routes, and on export the node's static and kernel
/// routes too. Those carry an empty AS path and community lists, as BIRD's BGP protocol
/// gives a route it did not learn before its export filter runs (`bgp_create_attrs`, the
/// iBGP form).
fn probes(rules: &[FilterRule], v6: bool, export: bool) -> Vec<Route> {
    let max = if v6 { 128 } else { 32 };
    let outside: IpNet = if v6 {
        "2001:db8:ffff::/48"
    } else {
        "198.51.100.0/24"
    }
    .parse()
    .unwrap_or_default();
    let mut nets = vec![outside];
    for r in rules {
        if let Some((_, cidr)) = r.cidr {
            let (lo, hi) = r.prefix_length.unwrap_or((None, None));
            let len = cidr.prefix_len();
            for l in [
                Some(len),
                len.checked_add(1),
                len.checked_sub(1),
                lo,
                hi,
                lo.and_then(|l| l.checked_sub(1)),
                hi.and_then(|h| h.checked_add(1)),
                Some(max),
            ]
            .into_iter()
            .flatten()
            .filter(|l| *l <= max)
            {
                if let Ok(n) = IpNet::new(cidr.addr(), l) {
                    nets.push(n.trunc());
                }
            }
        }
    }
    nets.sort();
    nets.dedup();
    let mut out = Vec::new();
    for net in nets {
        out.extend(bases(net, rules));
        if !export {
            continue;
        }
        let local = |source| {
            let mut r = Route::new(net, source);
            r.bgp_path = Some(Vec::new());
            r.bgp_community = Some(Vec::new());
            r.bgp_large_community = Some(Vec::new());
            r
        };
        out.push(local(ast::Source::Static));
        let mut devices = vec!["eth0".to_string()];
        devices.extend(
            rules
                .iter()
                .filter_map(|r| r.interface.as_ref().map(|g| g.replace(['*', '?'], "x"))),
        );
        for d in devices {
            let mut k = local(ast::Source::Inherit);
            k.ifname = Some(d);
            out.push(k);
        }
    }
    out
}

/// BGP routes for `net`: a plain one, and one for each community, AS path prefix (the
/// prefix and more; one AS short) and priority the rules name.
fn bases(net: IpNet, rules: &[FilterRule]) -> Vec<Route> {
    let hop: IpAddr = if net.addr().is_ipv6() {
        "2001:db8:fffe::1"
            .parse()
            .unwrap_or(IpAddr::from([0u8; 16]))
    } else {
        IpAddr::from([203, 0, 113, 1])
    };
    let mut plain = Route::new(net, ast::Source::Bgp);
    plain.from = Some(hop);
    plain.gw = Some(hop);
    plain.bgp_next_hop = Some(hop);
    plain.bgp_local_pref = Some(100);
    plain.bgp_path = Some(vec![64999]);
    plain.bgp_origin = Some(0);
    plain.bgp_community = Some(Vec::new());
    plain.bgp_large_community = Some(Vec::new());
    let mut out = vec![plain.clone()];
    for r in rules {
        match r.community {
            Some(AnyCommunity::Standard(c)) => {
                let mut x = plain.clone();
                x.bgp_community = Some(vec![(c.0 >> 16, c.0 & 0xffff)]);
                out.push(x);
            }
            Some(AnyCommunity::Large(LargeCommunity(c))) => {
                let mut x = plain.clone();
                x.bgp_large_community = Some(vec![(c[0], c[1], c[2])]);
                out.push(x);
            }
            None => {}
        }
        if !r.as_path_prefix.is_empty() {
            let mut longer = plain.clone();
            longer.bgp_path = Some([&r.as_path_prefix[..], &[64999]].concat());
            out.push(longer);
            let mut short = plain.clone();
            short.bgp_path = Some(r.as_path_prefix[1..].to_vec());
            out.push(short);
        }
        if let Some(lp) = r.priority.and_then(|p| PRIORITY_BASE.checked_sub(p)) {
            let mut x = plain.clone();
            x.bgp_local_pref = Some(lp);
            out.push(x);
        }
    }
    out
}

fn describe(r: &Route) -> String {
    match r.source {
        ast::Source::Bgp => format!(
            "a BGP route for {} (path {:?}, LOCAL_PREF {:?}, communities {:?} {:?})",
            r.net, r.bgp_path, r.bgp_local_pref, r.bgp_community, r.bgp_large_community
        ),
        ast::Source::Inherit => format!(
            "a kernel route for {} dev {}",
            r.net,
            r.ifname.as_deref().unwrap_or("")
        ),
        _ => format!("the static route {}", r.net),
    }
}

#[cfg(test)]
mod tests {
    use super::super::bgpfilter::filters;
    use super::super::{check as syntax, parse};
    use super::*;
    use crate::config::{Operation, PeerType};

    const TEXT: &str = "function 'bgp_t_importFilterV4'(bool is_same_as) {\n\
         if ((bgp_path ~ [= 65000 * =])) then { bgp_local_pref = 2147483547; accept; }\n\
         if (is_same_as) then { if (((65000, 100) ~ bgp_community)) then { reject; } }\n\
         if ((net ~ [ 10.0.0.0/8{16,24}, 172.16.0.0/12+ ])) then { accept; }\n\
         }\n\
         function 'bgp_t_exportFilterV4'() {\n\
         if ((defined(bgp_local_pref)&&(bgp_local_pref = 2147483547))) then { \
         bgp_community.add((65001, 200)); bgp_large_community.add((65001, 2, 3)); \
         bgp_path.prepend(65002); bgp_path.prepend(65001); accept; }\n\
         }\n";

    fn config() -> ast::Config {
        let c = parse::parse_str("t.cfg", TEXT, ast::Family::V4).unwrap();
        syntax::check(&c).unwrap();
        c
    }

    #[test]
    fn the_converted_rules_agree_with_the_functions() {
        let c = config();
        assert_eq!(check(&c, &filters(&c).unwrap()), Ok(()));
    }

    /// Each change to the converted rules is a route decided otherwise: the check would
    /// catch a converter that misread the function.
    #[test]
    fn rules_that_decide_otherwise_are_refused_at_the_function() {
        let c = config();
        let good = filters(&c).unwrap();
        let edits: [fn(&mut BgpFilter); 6] = [
            |f| f.import_v4[0].as_path_prefix = vec![65001],
            |f| f.import_v4[0].operations = vec![Operation::SetPriority(101)],
            |f| f.import_v4[1].peer_type = Some(PeerType::Ebgp),
            |f| f.import_v4[2].prefix_length = Some((Some(16), Some(25))),
            |f| f.export_v4[0].operations[2] = Operation::PrependAsPath(vec![65002, 65001]),
            |f| f.export_v4[0].priority = Some(99),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut bad = good.clone();
            edit(&mut bad[0]);
            let e = check(&c, &bad).unwrap_err();
            let line = if i < 4 { 1 } else { 6 };
            assert_eq!((e.pos.line, e.pos.col), (line, 1), "edit {i}: {e}");
            assert!(e.msg.contains("cannot carry"), "{e}");
        }
    }
}
