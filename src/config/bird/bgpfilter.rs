//! Calico's BGPFilter resources as confd 3.32+ renders them: one function per filter,
//! direction and family (`'bgp_<name>_importFilterV4'()`), each a list of
//! `if CONDITIONS then accept|reject;` rules, called at the start of a peer's import and
//! export filters. Here they become the model's [`BgpFilter`] rules, and a peer's calls its
//! list of filter names. A rule whose shape the model cannot carry is refused at its place.

use std::collections::HashMap;

use super::ast::*;
use super::{Error, Pos};
use ipnet::IpNet;

use crate::config::{
    AnyCommunity, BgpFilter, FilterRule, MatchOperator, Operation, PRIORITIES, PRIORITY_BASE,
    PeerType, RuleAction,
};
use crate::wire::attr::{Community, LargeCommunity};

/// Which list of a filter a function fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum List {
    ImportV4,
    ExportV4,
    ImportV6,
    ExportV6,
}

/// The filter name and list of a function named as Calico names BGPFilter functions
/// (`bgp_<name>_importFilterV4`, `…_exportFilterV6`).
pub(super) fn split_name(function: &str) -> Option<(&str, List)> {
    let (name, suffix) = function.strip_prefix("bgp_")?.rsplit_once('_')?;
    let list = match suffix {
        "importFilterV4" => List::ImportV4,
        "exportFilterV4" => List::ExportV4,
        "importFilterV6" => List::ImportV6,
        "exportFilterV6" => List::ExportV6,
        _ => return None,
    };
    (!name.is_empty()).then_some((name, list))
}

/// Every BGPFilter function of the configuration as the model's filters, by name in the
/// order they first appear.
pub fn filters(config: &Config) -> Result<Vec<BgpFilter>, Error> {
    let mut out: Vec<BgpFilter> = Vec::new();
    for item in &config.items {
        let ItemKind::Function(f) = &item.kind else {
            continue;
        };
        let Some((name, list)) = split_name(&f.name) else {
            continue;
        };
        // confd gives a function `(bool is_same_as)` when one of its rules has a peerType
        // (`BGPFilterBIRDFuncs`).
        let guard = match f.params.as_slice() {
            [] => None,
            [p] if p.ty == "bool" => Some(p.name.as_str()),
            _ => {
                return Err(Error::new(
                    &item.pos,
                    format!(
                        "{}: a BGPFilter function takes no argument or one bool (is_same_as)",
                        f.name
                    ),
                ));
            }
        };
        let mut rules = Vec::new();
        for s in &f.body {
            rules.extend(rule(s, guard)?);
        }
        let i = match out.iter().position(|b| b.name == name) {
            Some(i) => i,
            None => {
                out.push(BgpFilter {
                    name: name.to_string(),
                    ..BgpFilter::default()
                });
                out.len() - 1
            }
        };
        let filter = &mut out[i];
        let slot = match list {
            List::ImportV4 => &mut filter.import_v4,
            List::ExportV4 => &mut filter.export_v4,
            List::ImportV6 => &mut filter.import_v6,
            List::ExportV6 => &mut filter.export_v6,
        };
        slot.extend(rules);
    }
    Ok(out)
}

/// A peer's import or export clause without its BGPFilter calls, and the filters it called,
/// in order. The calls must come before anything that can decide (Calico runs them first);
/// a call after that is refused, as the model runs a peer's filters before Calico's rules.
/// A call's `is_same_as` argument (confd: peer AS = node AS) must be what the model
/// decides for the peer, `ibgp` (peer AS = local AS), as rules with a peerType follow it.
pub fn strip(body: &[Stmt], ibgp: bool) -> Result<(Vec<Stmt>, Vec<String>), Error> {
    let mut kept = Vec::new();
    let mut names = Vec::new();
    let mut decided: Option<&Pos> = None;
    for s in body {
        if let StmtKind::Call { name, args } = &s.kind
            && let Some((filter, _)) = split_name(name)
        {
            match args.as_slice() {
                [] => {}
                [
                    Expr {
                        kind: ExprKind::Bool(same),
                        ..
                    },
                ] if *same == ibgp => {}
                _ => {
                    return Err(Error::new(
                        &s.pos,
                        format!(
                            "{name}: the argument is whether the session is iBGP, which is \
                             ({ibgp}) for this peer"
                        ),
                    ));
                }
            }
            if let Some(at) = decided {
                return Err(Error::new(
                    &s.pos,
                    format!(
                        "{name}: a BGPFilter call after the statement at {at}, which may \
                         already decide; wren runs a peer's filters first"
                    ),
                ));
            }
            if !names.iter().any(|n| n == filter) {
                names.push(filter.to_string());
            }
            continue;
        }
        if matches!(
            s.kind,
            StmtKind::Accept | StmtKind::Reject | StmtKind::Call { .. }
        ) {
            decided.get_or_insert(&s.pos);
        }
        kept.push(s.clone());
    }
    Ok((kept, names))
}

/// Merges the filter names of a peer's import and export clauses, import first.
pub fn merge_names(import: Vec<String>, export: Vec<String>) -> Vec<String> {
    let mut out = import;
    for n in export {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// One `if CONDITIONS then [OPERATIONS] accept|reject;` rule, or a bare `accept;`/`reject;`
/// (a rule without conditions); inside `if (is_same_as) then { … }` (`!is_same_as`) an
/// iBGP (eBGP) rule. A `net ~ [ … ]` set of several prefixes is one rule per prefix, in
/// order: the first that matches decides either way.
fn rule(s: &Stmt, guard: Option<&str>) -> Result<Vec<FilterRule>, Error> {
    let refuse = || {
        Error::new(
            &s.pos,
            "a BGPFilter rule wren carries is `if CONDITIONS then { OPERATIONS accept; }` or \
             `… then reject;`",
        )
    };
    let (cond, then) = match &s.kind {
        StmtKind::Accept => return Ok(vec![FilterRule::any(RuleAction::Accept)]),
        StmtKind::Reject => return Ok(vec![FilterRule::any(RuleAction::Reject)]),
        StmtKind::If {
            cond,
            then,
            els: None,
        } => (cond, then),
        _ => return Err(refuse()),
    };
    if let Some(ibgp) = guard.and_then(|g| peer_guard(cond, g)) {
        let inner = match &then.kind {
            StmtKind::Block(b) => match b.as_slice() {
                [one] => one,
                _ => return Err(refuse()),
            },
            _ => then,
        };
        let mut rules = rule(inner, None)?;
        for r in &mut rules {
            r.peer_type = Some(if ibgp { PeerType::Ibgp } else { PeerType::Ebgp });
        }
        return Ok(rules);
    }
    let (action, operations) = body(then)?;
    let mut r = FilterRule {
        operations,
        ..FilterRule::any(action)
    };
    let mut atoms = Vec::new();
    conjuncts(cond, &mut atoms);
    let mut seen: HashMap<&'static str, &Pos> = HashMap::new();
    let mut prefixes = Vec::new();
    for a in atoms {
        let what = condition(a, &mut r, &mut prefixes)?;
        if let Some(first) = seen.insert(what, &a.pos)
            && what != "defined"
        {
            return Err(Error::new(
                &a.pos,
                format!("a second {what} condition in one BGPFilter rule (the first at {first})"),
            ));
        }
    }
    if prefixes.is_empty() {
        return Ok(vec![r]);
    }
    Ok(prefixes
        .into_iter()
        .map(|(net, lo, hi)| FilterRule {
            cidr: Some((MatchOperator::In, net)),
            prefix_length: Some((Some(lo), Some(hi))),
            ..r.clone()
        })
        .collect())
}

/// `is_same_as` (true: iBGP) or `!is_same_as` (false: eBGP), the parameter being `guard`.
fn peer_guard(cond: &Expr, guard: &str) -> Option<bool> {
    match &cond.kind {
        ExprKind::Var(v) if v == guard => Some(true),
        ExprKind::Not(x) if matches!(&x.kind, ExprKind::Var(v) if v == guard) => Some(false),
        _ => None,
    }
}

/// A rule's `then`: `accept;`, `reject;`, or a block of operations ending in one of them
/// (`filterOperationStatements`: operations only before `accept`).
fn body(then: &Stmt) -> Result<(RuleAction, Vec<Operation>), Error> {
    let stmts = match &then.kind {
        StmtKind::Block(b) => b.as_slice(),
        _ => std::slice::from_ref(then),
    };
    let refuse = |at: &Pos| {
        Error::new(
            at,
            "a BGPFilter rule ends in `accept;` or `reject;`, after operations only with accept",
        )
    };
    let Some((last, ops)) = stmts.split_last() else {
        return Err(refuse(&then.pos));
    };
    let action = match last.kind {
        StmtKind::Accept => RuleAction::Accept,
        StmtKind::Reject => RuleAction::Reject,
        _ => return Err(refuse(&last.pos)),
    };
    if action == RuleAction::Reject
        && let Some(op) = ops.first()
    {
        return Err(refuse(&op.pos));
    }
    let mut out: Vec<Operation> = Vec::new();
    for op in ops {
        // confd prepends one AS at a time from the list's end (`bgp_path.prepend(B);
        // bgp_path.prepend(A);` for [A, B]): a run of them is one list.
        match (operation(op)?, out.last_mut()) {
            (Operation::PrependAsPath(asn), Some(Operation::PrependAsPath(list))) => {
                asn.into_iter().for_each(|n| list.insert(0, n));
            }
            (o, _) => out.push(o),
        }
    }
    Ok((action, out))
}

/// One operation statement as confd writes it.
fn operation(s: &Stmt) -> Result<Operation, Error> {
    let refuse = || {
        Error::new(
            &s.pos,
            "a BGPFilter operation wren carries is `bgp_local_pref = N;` (a priority), \
             `bgp_community.add((A, B));`, `bgp_large_community.add((A, B, C));` or \
             `bgp_path.prepend(N);`",
        )
    };
    match &s.kind {
        StmtKind::Assign {
            attr: Attr::BgpLocalPref,
            value,
        } => priority(value).map(Operation::SetPriority),
        StmtKind::Method {
            attr: attr @ (Attr::BgpCommunity | Attr::BgpLargeCommunity),
            method: Method::Add,
            arg,
        } => match community(arg) {
            Some(c @ AnyCommunity::Standard(_)) if *attr == Attr::BgpCommunity => {
                Ok(Operation::AddCommunity(c))
            }
            Some(c @ AnyCommunity::Large(_)) if *attr == Attr::BgpLargeCommunity => {
                Ok(Operation::AddCommunity(c))
            }
            _ => Err(refuse()),
        },
        StmtKind::Method {
            attr: Attr::BgpPath,
            method: Method::Prepend,
            arg: Expr {
                kind: ExprKind::Int(asn),
                ..
            },
        } => Ok(Operation::PrependAsPath(vec![*asn])),
        _ => Err(refuse()),
    }
}

/// `2147483647 - priority` as written (`filterMatchPriority`, the `SetPriority` operation):
/// the priority, when it is one Calico allows.
fn priority(e: &Expr) -> Result<u32, Error> {
    match e.kind {
        ExprKind::Int(lp) => PRIORITY_BASE
            .checked_sub(lp)
            .filter(|p| PRIORITIES.contains(p))
            .ok_or_else(|| {
                Error::new(
                    &e.pos,
                    format!(
                        "bgp_local_pref {lp} is no BGPFilter priority (2147483647 - 1..2147483646)"
                    ),
                )
            }),
        _ => Err(Error::new(
            &e.pos,
            "a BGPFilter priority is a number (2147483647 - the priority)",
        )),
    }
}

/// `(A, B)` (16-bit halves) or `(A, B, C)`.
fn community(e: &Expr) -> Option<AnyCommunity> {
    let ExprKind::Tuple(items) = &e.kind else {
        return None;
    };
    let ints = items
        .iter()
        .map(|x| match x.kind {
            ExprKind::Int(n) => Some(n),
            _ => None,
        })
        .collect::<Option<Vec<u32>>>()?;
    match ints.as_slice() {
        [a, b] if *a <= 0xffff && *b <= 0xffff => {
            Some(AnyCommunity::Standard(Community(a << 16 | b)))
        }
        [a, b, c] => Some(AnyCommunity::Large(LargeCommunity([*a, *b, *c]))),
        _ => None,
    }
}

/// The `&&` operands of a condition, in order.
fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &e.kind {
        ExprKind::Binary {
            op: BinOp::And,
            lhs,
            rhs,
        } => {
            conjuncts(lhs, out);
            conjuncts(rhs, out);
        }
        _ => out.push(e),
    }
}

/// Sets the part of `r` one condition gives; names which part. A `net ~ [ … ]` set of
/// several prefixes leaves them in `prefixes` (net, shortest, longest).
fn condition(
    e: &Expr,
    r: &mut FilterRule,
    prefixes: &mut Vec<(IpNet, u8, u8)>,
) -> Result<&'static str, Error> {
    let refuse = || {
        Error::new(
            &e.pos,
            "a BGPFilter condition wren carries tests `net` (=, !=, ~, !~ one prefix, or ~ [ \
             P, P+, P{min,max}, … ] inside P), `source ~ [ RTS_BGP ]`, `ifname ~ \"glob\"`, \
             `(A, B) ~ bgp_community`, `(A, B, C) ~ bgp_large_community`, \
             `bgp_path ~ [= A B * =]` or `bgp_local_pref = N`",
        )
    };
    let (op, attr, rhs) = match &e.kind {
        // `defined(source)`, `defined(ifname)`: both are always defined in BIRD 1.6;
        // `defined(bgp_local_pref)` goes with the priority test that follows it.
        ExprKind::Defined(x)
            if matches!(
                x.kind,
                ExprKind::Attr(Attr::Source | Attr::Ifname | Attr::BgpLocalPref)
            ) =>
        {
            return Ok("defined");
        }
        // `(A, B) ~ bgp_community`, `(A, B, C) ~ bgp_large_community`.
        ExprKind::Binary {
            op: BinOp::Match,
            lhs,
            rhs,
        } if matches!(lhs.kind, ExprKind::Tuple(_)) => {
            return match (community(lhs), &rhs.kind) {
                (Some(c @ AnyCommunity::Standard(_)), ExprKind::Attr(Attr::BgpCommunity))
                | (Some(c @ AnyCommunity::Large(_)), ExprKind::Attr(Attr::BgpLargeCommunity)) => {
                    r.community = Some(c);
                    Ok("community")
                }
                _ => Err(refuse()),
            };
        }
        ExprKind::Binary { op, lhs, rhs } => match lhs.kind {
            ExprKind::Attr(a) => (*op, a, rhs),
            _ => return Err(refuse()),
        },
        _ => return Err(refuse()),
    };
    match (attr, op, &rhs.kind) {
        (Attr::Net, _, ExprKind::Prefix(p)) => {
            let m = match op {
                BinOp::Eq => MatchOperator::Equal,
                BinOp::Ne => MatchOperator::NotEqual,
                BinOp::Match => MatchOperator::In,
                BinOp::NotMatch => MatchOperator::NotIn,
                _ => return Err(refuse()),
            };
            r.cidr = Some((m, *p));
            Ok("net")
        }
        (Attr::Net, BinOp::Match | BinOp::NotMatch, ExprKind::Set(items)) => {
            // `P{lo,hi}` with lo at least P's length: prefixes inside P (`P+`, and `P` alone,
            // are such). `P-` and `P{lo,hi}` below P's length also match prefixes around P,
            // which no BGPFilter rule can say.
            let inside = items
                .iter()
                .map(|i| match i {
                    SetItem::Prefix { net, lo, hi } if *lo >= net.prefix_len() => {
                        Some((*net, *lo, *hi))
                    }
                    _ => None,
                })
                .collect::<Option<Vec<_>>>();
            match (inside.as_deref(), op) {
                (Some(&[(net, lo, hi)]), _) => {
                    let m = if op == BinOp::Match {
                        MatchOperator::In
                    } else {
                        MatchOperator::NotIn
                    };
                    r.cidr = Some((m, net));
                    r.prefix_length = Some((Some(lo), Some(hi)));
                }
                (Some([_, _, ..]), BinOp::Match) => prefixes.extend(inside.into_iter().flatten()),
                _ => return Err(refuse()),
            }
            Ok("net")
        }
        (Attr::Source, BinOp::Eq, ExprKind::Source(Source::Bgp)) => {
            r.from_peers = true;
            Ok("source")
        }
        (Attr::Source, BinOp::Match, ExprKind::Set(items))
            if matches!(
                items.as_slice(),
                [SetItem::Value(Expr {
                    kind: ExprKind::Source(Source::Bgp),
                    ..
                })]
            ) =>
        {
            r.from_peers = true;
            Ok("source")
        }
        (Attr::Ifname, BinOp::Match, ExprKind::Str(glob)) => {
            r.interface = Some(glob.clone());
            Ok("ifname")
        }
        // `bgp_path ~ [= A B * =]` (`filterMatchASPathPrefix`).
        (Attr::BgpPath, BinOp::Match, ExprKind::PathMask(items)) => match items.split_last() {
            Some((PathItem::AnySeq, asns)) if !asns.is_empty() => {
                r.as_path_prefix = asns
                    .iter()
                    .map(|i| match i {
                        PathItem::Asn(n) => Some(*n),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(refuse)?;
                Ok("bgp_path")
            }
            _ => Err(refuse()),
        },
        (Attr::BgpLocalPref, BinOp::Eq, _) => {
            r.priority = Some(priority(rhs)?);
            Ok("priority")
        }
        _ => Err(refuse()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{check, parse};
    use super::*;

    fn config(text: &str) -> Config {
        let c = parse::parse_str("t.cfg", text, Family::V4).unwrap();
        check::check(&c).unwrap();
        c
    }

    #[test]
    fn calico_rule_shapes_become_rules() {
        let c = config(
            "function 'bgp_tor-1_importFilterV4'() {\n\
             if ((net ~ 10.0.0.0/8)) then { accept; }\n\
             if ((net ~ [ 10.1.0.0/16{20,24} ]) && ((defined(source))&&(source ~ [ RTS_BGP ]))) then { reject; }\n\
             if ((net != 10.2.0.0/16) && ((defined(ifname))&&(ifname ~ \"eth*\"))) then { accept; }\n\
             }\n\
             function 'bgp_tor-1_exportFilterV4'() { if ((net !~ 10.0.0.0/8)) then { reject; } accept; }\n\
             function 'bgp_empty_importFilterV4'() { }\n",
        );
        let f = filters(&c).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, "tor-1");
        let net = |s: &str| s.parse().unwrap();
        assert_eq!(
            f[0].import_v4,
            vec![
                FilterRule {
                    action: RuleAction::Accept,
                    cidr: Some((MatchOperator::In, net("10.0.0.0/8"))),
                    prefix_length: None,
                    from_peers: false,
                    interface: None,
                    ..FilterRule::any(RuleAction::Accept)
                },
                FilterRule {
                    action: RuleAction::Reject,
                    cidr: Some((MatchOperator::In, net("10.1.0.0/16"))),
                    prefix_length: Some((Some(20), Some(24))),
                    from_peers: true,
                    interface: None,
                    ..FilterRule::any(RuleAction::Accept)
                },
                FilterRule {
                    action: RuleAction::Accept,
                    cidr: Some((MatchOperator::NotEqual, net("10.2.0.0/16"))),
                    prefix_length: None,
                    from_peers: false,
                    interface: Some("eth*".into()),
                    ..FilterRule::any(RuleAction::Accept)
                },
            ]
        );
        // A rule without conditions, as Calico renders one: every route.
        assert_eq!(f[0].export_v4.len(), 2);
        assert_eq!(
            f[0].export_v4[1],
            FilterRule {
                action: RuleAction::Accept,
                cidr: None,
                prefix_length: None,
                from_peers: false,
                interface: None,
                ..FilterRule::any(RuleAction::Accept)
            }
        );
        assert_eq!(
            f[1],
            BgpFilter {
                name: "empty".into(),
                ..BgpFilter::default()
            }
        );
    }

    #[test]
    fn rules_the_model_cannot_carry_are_refused_where_written() {
        for (body, at) in [
            (
                "if (bgp_path ~ [= * 65000 =]) then { accept; }",
                "t.cfg:2:4:",
            ),
            (
                "if (net ~ 10.0.0.0/8) then { bgp_local_pref = 2147483647; accept; }",
                "t.cfg:2:47:",
            ),
            (
                "if (net ~ 10.0.0.0/8) then { bgp_community.add((1, 2)); reject; }",
                "t.cfg:2:30:",
            ),
            (
                "if (net ~ 10.0.0.0/8) then { krt_metric = 5; accept; }",
                "t.cfg:2:30:",
            ),
            (
                "if (net ~ [ 192.0.2.0/24- ]) then { accept; }",
                "t.cfg:2:4:",
            ),
            (
                "if (net !~ [ 10.0.0.0/8, 11.0.0.0/8 ]) then { accept; }",
                "t.cfg:2:4:",
            ),
            (
                "if (source ~ [ RTS_BGP, RTS_STATIC ]) then { accept; }",
                "t.cfg:2:4:",
            ),
            (
                "if (bgp_next_hop ~ 10.0.0.0/8) then { accept; }",
                "t.cfg:2:4:",
            ),
            (
                "if ((1, 2, 3) ~ bgp_community) then { accept; }",
                "t.cfg:2:4:",
            ),
            (
                "if (net ~ 10.0.0.0/8) || (net ~ 11.0.0.0/8) then { accept; }",
                "t.cfg:2:4:",
            ),
            (
                "if (net ~ 10.0.0.0/8) && (net ~ 11.0.0.0/8) then { accept; }",
                "t.cfg:2:26:",
            ),
            ("print \"x\";", "t.cfg:2:1:"),
        ] {
            let c = config(&format!("function 'bgp_x_importFilterV4'() {{\n{body}\n}}"));
            let e = filters(&c).unwrap_err().to_string();
            assert!(e.starts_with(at), "{body}: {e}");
        }
    }

    /// The rules confd 3.32+ renders for the newer BGPFilter fields
    /// (`template_funcs.go`: `filterMatchCommunity`, `filterMatchASPathPrefix`,
    /// `filterMatchPriority`, `filterOperationStatements`, the `is_same_as` guard).
    #[test]
    fn calico_conditions_operations_and_peer_types_become_rules() {
        let c = config(
            "function 'bgp_tor_importFilterV4'(bool is_same_as) {\n\
             if ((bgp_path ~ [= 65000 65001 * =])) then { bgp_local_pref = 2147483547; accept; }\n\
             if (is_same_as) then { if (((65000, 100) ~ bgp_community)) then { reject; } }\n\
             if (!is_same_as) then { if (((65000, 1, 2) ~ bgp_large_community)) then { accept; } }\n\
             if ((net ~ [ 10.0.0.0/8{16,24}, 172.16.0.0/12+, 192.0.2.0/24 ])) then { accept; }\n\
             }\n\
             function 'bgp_tor_exportFilterV4'() {\n\
             if ((defined(bgp_local_pref)&&(bgp_local_pref = 2147483547))) then { \
             bgp_community.add((65001, 200)); bgp_large_community.add((65001, 2, 3)); \
             bgp_path.prepend(65002); bgp_path.prepend(65001); bgp_local_pref = 2147483646; accept; }\n\
             }\n",
        );
        let f = filters(&c).unwrap();
        let net = |s: &str| s.parse().unwrap();
        let accept = FilterRule::any(RuleAction::Accept);
        let within = |p: &str, lo, hi| FilterRule {
            cidr: Some((MatchOperator::In, net(p))),
            prefix_length: Some((Some(lo), Some(hi))),
            ..accept.clone()
        };
        assert_eq!(
            f[0].import_v4,
            [
                FilterRule {
                    as_path_prefix: vec![65000, 65001],
                    operations: vec![Operation::SetPriority(100)],
                    ..accept.clone()
                },
                FilterRule {
                    peer_type: Some(PeerType::Ibgp),
                    community: Some("65000:100".parse().unwrap()),
                    ..FilterRule::any(RuleAction::Reject)
                },
                FilterRule {
                    peer_type: Some(PeerType::Ebgp),
                    community: Some("65000:1:2".parse().unwrap()),
                    ..accept.clone()
                },
                within("10.0.0.0/8", 16, 24),
                within("172.16.0.0/12", 12, 32),
                within("192.0.2.0/24", 24, 24),
            ]
        );
        assert_eq!(
            f[0].export_v4,
            [FilterRule {
                priority: Some(100),
                operations: vec![
                    Operation::AddCommunity("65001:200".parse().unwrap()),
                    Operation::AddCommunity("65001:2:3".parse().unwrap()),
                    Operation::PrependAsPath(vec![65001, 65002]),
                    Operation::SetPriority(1),
                ],
                ..accept
            }]
        );
    }

    #[test]
    fn a_calls_is_same_as_must_be_the_peers() {
        let c = config(
            "function 'bgp_a_importFilterV4'(bool is_same_as) { }\n\
             filter f { 'bgp_a_importFilterV4'(true); accept; }\n",
        );
        let body = &c.filter("f").unwrap().body;
        assert_eq!(strip(body, true).unwrap().1, ["a"]);
        let e = strip(body, false).unwrap_err().to_string();
        assert!(e.starts_with("t.cfg:2:12:") && e.contains("iBGP"), "{e}");
    }

    #[test]
    fn calls_are_stripped_and_must_come_first() {
        let c = config(
            "function 'bgp_a_exportFilterV4'() { }\nfunction 'bgp_b_exportFilterV4'() { }\n\
             function g() { }\n\
             filter f { 'bgp_a_exportFilterV4'(); 'bgp_b_exportFilterV4'(); g(); accept; }\n\
             filter h { g(); 'bgp_a_exportFilterV4'(); accept; }\n",
        );
        let (kept, names) = strip(&c.filter("f").unwrap().body, false).unwrap();
        assert_eq!(names, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(kept.len(), 2);
        let e = strip(&c.filter("h").unwrap().body, false).unwrap_err();
        assert_eq!(e.pos.line, 5);
        assert_eq!(
            merge_names(vec!["a".into()], vec!["b".into(), "a".into()]),
            vec!["a".to_string(), "b".to_string()]
        );
    }
}
