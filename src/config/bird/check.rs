//! Symbol resolution as BIRD 1.6's single pass does it: a function, filter or template must
//! be defined before it is used, names share one namespace, calls pass as many arguments as
//! the function declares, and a BGP protocol names its neighbor and AS.

use std::collections::HashMap;
use std::net::IpAddr;

use super::ast::*;
use super::protocols;
use super::{Error, Pos};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sym {
    Function(usize),
    Filter,
    Template(ProtoType),
    Protocol,
}

/// Checks a parsed configuration; the first problem is the error.
pub fn check(config: &Config) -> Result<(), Error> {
    let mut owned: HashMap<String, Sym> = HashMap::new();
    for item in &config.items {
        match &item.kind {
            ItemKind::Function(f) => {
                define(
                    &f.name,
                    Sym::Function(f.params.len()),
                    &item.pos,
                    &mut owned,
                )?;
                stmts(&f.body, &owned)?;
            }
            ItemKind::Filter(f) => {
                // A filter's own name is not callable inside it, so check before defining.
                stmts(&f.body, &owned)?;
                define(&f.name, Sym::Filter, &item.pos, &mut owned)?;
            }
            ItemKind::Template(p) => {
                proto(p, &owned)?;
                define(&p.name, Sym::Template(p.ty), &item.pos, &mut owned)?;
            }
            ItemKind::Protocol(p) => {
                proto(p, &owned)?;
                define(&p.name, Sym::Protocol, &item.pos, &mut owned)?;
            }
            _ => {}
        }
    }
    // bird6 cannot derive a router id from an interface (BIRD 1.6 `config_parse`, which
    // reports it at the main file's start).
    if config.family == Family::V6 && config.router_id().is_none() {
        let pos = Pos {
            file: config.file.clone(),
            line: 1,
            col: 1,
        };
        return Err(Error::new(
            &pos,
            "Router ID must be configured manually on IPv6 routers",
        ));
    }
    for r in config.protocols() {
        if r.proto.ty == ProtoType::Bgp {
            bgp(&r)?;
        }
    }
    Ok(())
}

/// BIRD 1.6 `bgp_check_config`, run on each BGP protocol (not on templates) once its
/// options, template included, are known.
fn bgp(r: &Resolved<'_>) -> Result<(), Error> {
    let fail = |msg: &str| Err(Error::new(r.pos, msg));
    let local = r.last(|o| match o {
        OptKind::LocalAs { asn, .. } => Some(*asn),
        _ => None,
    });
    let neighbor = r.last(|o| match o {
        OptKind::Neighbor { address, asn, .. } => Some((*address, *asn)),
        _ => None,
    });
    let mut neighbors = r
        .options
        .iter()
        .filter(|o| matches!(o.kind, OptKind::Neighbor { .. }));
    if let (Some(_), Some(second)) = (neighbors.next(), neighbors.next()) {
        return Err(Error::new(
            &second.pos,
            "Only one neighbor per BGP instance is allowed",
        ));
    }
    if local.is_none_or(|a| a == 0) {
        return fail("Local AS number must be set");
    }
    if neighbor.is_none_or(|(a, _)| a.is_unspecified()) {
        return fail("Neighbor must be configured");
    }
    if neighbor.is_some_and(|(_, asn)| asn == 0) {
        return fail("Remote AS number must be set");
    }
    let Some(b) = protocols::bgp(r) else {
        return fail("Neighbor must be configured");
    };
    if matches!(b.neighbor, IpAddr::V6(a) if a.is_unicast_link_local()) {
        return fail("Link-local neighbor address requires specified interface");
    }
    if !b.internal() && b.rr_client {
        return fail("Only internal neighbor can be RR client");
    }
    // Direct is only the default without multihop, so here it was asked for.
    if b.multihop > 0 && b.gateway == Gateway::Direct {
        return fail("Multihop BGP cannot use direct gateway mode");
    }
    if b.multihop > 0 && b.bfd && b.source_address.is_none() {
        return fail("Multihop BGP with BFD requires specified source address");
    }
    Ok(())
}

/// Adds a symbol; BIRD has one namespace for functions, filters, templates and protocols.
fn define(name: &str, sym: Sym, pos: &Pos, syms: &mut HashMap<String, Sym>) -> Result<(), Error> {
    if syms.contains_key(name) {
        return Err(Error::new(pos, format!("{name}: symbol already defined")));
    }
    syms.insert(name.to_string(), sym);
    Ok(())
}

fn proto(p: &Proto, syms: &HashMap<String, Sym>) -> Result<(), Error> {
    if let Some((t, pos)) = &p.from {
        match syms.get(t.as_str()) {
            Some(Sym::Template(ty)) if *ty == p.ty => {}
            Some(Sym::Template(_)) => {
                return Err(Error::new(
                    pos,
                    "Inherited template has different protocol type",
                ));
            }
            _ => return Err(Error::new(pos, format!("{t}: no such template"))),
        }
    }
    for o in &p.options {
        if let OptKind::Import(f) | OptKind::Export(f) = &o.kind {
            match f {
                FilterRef::Named(n, pos) => {
                    if syms.get(n.as_str()) != Some(&Sym::Filter) {
                        return Err(Error::new(pos, format!("{n}: no such filter")));
                    }
                }
                FilterRef::Inline(body) => stmts(body, syms)?,
                FilterRef::All | FilterRef::None => {}
            }
        }
    }
    Ok(())
}

fn stmts(body: &[Stmt], syms: &HashMap<String, Sym>) -> Result<(), Error> {
    body.iter().try_for_each(|s| stmt(s, syms))
}

fn stmt(s: &Stmt, syms: &HashMap<String, Sym>) -> Result<(), Error> {
    match &s.kind {
        StmtKind::If { cond, then, els } => {
            expr(cond, syms)?;
            stmt(then, syms)?;
            els.as_deref().map_or(Ok(()), |e| stmt(e, syms))
        }
        StmtKind::Block(b) => stmts(b, syms),
        StmtKind::Accept | StmtKind::Reject | StmtKind::Return(None) => Ok(()),
        StmtKind::Return(Some(e)) => expr(e, syms),
        StmtKind::Print(es) => es.iter().try_for_each(|e| expr(e, syms)),
        StmtKind::Call { name, args } => call(name, args, &s.pos, syms),
        StmtKind::Assign { value, .. } => expr(value, syms),
        StmtKind::Method { arg, .. } => expr(arg, syms),
        StmtKind::Case { subject, arms } => {
            expr(subject, syms)?;
            arms.iter().try_for_each(|a| {
                a.values.iter().try_for_each(|v| expr(v, syms))?;
                stmts(&a.body, syms)
            })
        }
    }
}

fn call(name: &str, args: &[Expr], pos: &Pos, syms: &HashMap<String, Sym>) -> Result<(), Error> {
    match syms.get(name) {
        Some(Sym::Function(n)) if *n == args.len() => {}
        Some(Sym::Function(n)) => {
            return Err(Error::new(
                pos,
                format!("{name}: takes {n} argument(s), {} given", args.len()),
            ));
        }
        Some(_) => return Err(Error::new(pos, format!("{name}: not a function"))),
        None => return Err(Error::new(pos, format!("{name}: no such function"))),
    }
    args.iter().try_for_each(|a| expr(a, syms))
}

fn expr(e: &Expr, syms: &HashMap<String, Sym>) -> Result<(), Error> {
    match &e.kind {
        ExprKind::Call { name, args } => call(name, args, &e.pos, syms),
        ExprKind::Tuple(xs) => xs.iter().try_for_each(|x| expr(x, syms)),
        ExprKind::Set(items) => items.iter().try_for_each(|i| match i {
            SetItem::Value(v) => expr(v, syms),
            SetItem::Prefix { .. } => Ok(()),
        }),
        ExprKind::Defined(x) | ExprKind::Not(x) => expr(x, syms),
        ExprKind::Binary { lhs, rhs, .. } => {
            expr(lhs, syms)?;
            expr(rhs, syms)
        }
        _ => Ok(()),
    }
}
