//! Calico's BGPFilter resources as confd 3.32+ renders them: one function per filter,
//! direction and family (`'bgp_<name>_importFilterV4'()`), each a list of
//! `if CONDITIONS then accept|reject;` rules, called at the start of a peer's import and
//! export filters. Here they become the model's [`BgpFilter`] rules, and a peer's calls its
//! list of filter names. A rule whose shape the model cannot carry is refused at its place.

use std::collections::HashMap;

use super::ast::*;
use super::{Error, Pos};
use crate::config::{BgpFilter, FilterRule, MatchOperator, RuleAction};

/// Which list of a filter a function fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    ImportV4,
    ExportV4,
    ImportV6,
    ExportV6,
}

/// The filter name and list of a function named as Calico names BGPFilter functions
/// (`bgp_<name>_importFilterV4`, `…_exportFilterV6`).
fn split_name(function: &str) -> Option<(&str, List)> {
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
        if !f.params.is_empty() {
            return Err(Error::new(
                &item.pos,
                format!("{}: a BGPFilter function takes no arguments", f.name),
            ));
        }
        let rules = f.body.iter().map(rule).collect::<Result<Vec<_>, _>>()?;
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
pub fn strip(body: &[Stmt]) -> Result<(Vec<Stmt>, Vec<String>), Error> {
    let mut kept = Vec::new();
    let mut names = Vec::new();
    let mut decided: Option<&Pos> = None;
    for s in body {
        if let StmtKind::Call { name, .. } = &s.kind
            && let Some((filter, _)) = split_name(name)
        {
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

/// One `if CONDITIONS then accept|reject;` rule, or a bare `accept;`/`reject;` (a rule
/// without conditions).
fn rule(s: &Stmt) -> Result<FilterRule, Error> {
    let refuse = || {
        Error::new(
            &s.pos,
            "a BGPFilter rule wren carries is `if CONDITIONS then accept;` or `… then reject;`",
        )
    };
    let any = |action| FilterRule {
        action,
        cidr: None,
        prefix_length: None,
        from_peers: false,
        interface: None,
        ..FilterRule::any(RuleAction::Accept)
    };
    let (cond, then) = match &s.kind {
        StmtKind::Accept => return Ok(any(RuleAction::Accept)),
        StmtKind::Reject => return Ok(any(RuleAction::Reject)),
        StmtKind::If {
            cond,
            then,
            els: None,
        } => (cond, then),
        _ => return Err(refuse()),
    };
    let action = match &then.kind {
        StmtKind::Accept => RuleAction::Accept,
        StmtKind::Reject => RuleAction::Reject,
        StmtKind::Block(b) => match b.as_slice() {
            [
                Stmt {
                    kind: StmtKind::Accept,
                    ..
                },
            ] => RuleAction::Accept,
            [
                Stmt {
                    kind: StmtKind::Reject,
                    ..
                },
            ] => RuleAction::Reject,
            _ => return Err(refuse()),
        },
        _ => return Err(refuse()),
    };
    let mut r = any(action);
    let mut atoms = Vec::new();
    conjuncts(cond, &mut atoms);
    let mut seen: HashMap<&'static str, &Pos> = HashMap::new();
    for a in atoms {
        let what = condition(a, &mut r)?;
        if let Some(first) = seen.insert(what, &a.pos)
            && what != "defined"
        {
            return Err(Error::new(
                &a.pos,
                format!("a second {what} condition in one BGPFilter rule (the first at {first})"),
            ));
        }
    }
    Ok(r)
}

/// The operands of a chain of `&&`.
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

/// Sets the part of `r` one condition gives; names which part.
fn condition(e: &Expr, r: &mut FilterRule) -> Result<&'static str, Error> {
    let refuse = || {
        Error::new(
            &e.pos,
            "a BGPFilter condition wren carries tests `net` against one prefix (=, !=, ~, !~, \
             or ~ [ P{min,max} ]), `source = RTS_BGP` or `ifname ~ \"glob\"`",
        )
    };
    let (op, attr, rhs) = match &e.kind {
        // `defined(source)`, `defined(ifname)`: both are always defined in BIRD 1.6.
        ExprKind::Defined(x) if matches!(x.kind, ExprKind::Attr(Attr::Source | Attr::Ifname)) => {
            return Ok("defined");
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
        (Attr::Net, BinOp::Match | BinOp::NotMatch, ExprKind::Set(items)) => match items.as_slice()
        {
            [SetItem::Prefix { net, lo, hi }] if *lo >= net.prefix_len() => {
                let m = if op == BinOp::Match {
                    MatchOperator::In
                } else {
                    MatchOperator::NotIn
                };
                r.cidr = Some((m, *net));
                r.prefix_length = Some((Some(*lo), Some(*hi)));
                Ok("net")
            }
            _ => Err(refuse()),
        },
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
                "if (bgp_path ~ [= 65000 * =]) then { accept; }",
                "t.cfg:2:4:",
            ),
            (
                "if (net ~ 10.0.0.0/8) then { bgp_local_pref = 5; accept; }",
                "t.cfg:2:1:",
            ),
            (
                "if (net ~ [ 10.0.0.0/8, 11.0.0.0/8 ]) then { accept; }",
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

    #[test]
    fn calls_are_stripped_and_must_come_first() {
        let c = config(
            "function 'bgp_a_exportFilterV4'() { }\nfunction 'bgp_b_exportFilterV4'() { }\n\
             function g() { }\n\
             filter f { 'bgp_a_exportFilterV4'(); 'bgp_b_exportFilterV4'(); g(); accept; }\n\
             filter h { g(); 'bgp_a_exportFilterV4'(); accept; }\n",
        );
        let (kept, names) = strip(&c.filter("f").unwrap().body).unwrap();
        assert_eq!(names, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(kept.len(), 2);
        let e = strip(&c.filter("h").unwrap().body).unwrap_err();
        assert_eq!(e.pos.line, 5);
        assert_eq!(
            merge_names(vec!["a".into()], vec!["b".into(), "a".into()]),
            vec!["a".to_string(), "b".to_string()]
        );
    }
}
