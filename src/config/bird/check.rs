//! Symbol resolution as BIRD 1.6's single pass does it: a function, filter or template must
//! be defined before it is used, names share one namespace, calls pass as many arguments as
//! the function declares, and a BGP protocol names its neighbor and AS.

use std::collections::HashMap;

use super::ast::*;
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
    for r in config.protocols() {
        if r.proto.ty == ProtoType::Bgp {
            if r.last(|o| matches!(o, OptKind::Neighbor { .. }).then_some(()))
                .is_none()
            {
                return Err(Error::new(r.pos, "Neighbor must be configured"));
            }
            if r.last(|o| matches!(o, OptKind::LocalAs { .. }).then_some(()))
                .is_none()
            {
                return Err(Error::new(r.pos, "Local AS number must be set"));
            }
        }
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
