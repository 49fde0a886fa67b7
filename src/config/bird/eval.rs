//! A small interpreter for BIRD 1.6 filters and functions over one route.
//!
//! Semantics follow BIRD 1.6 `filter/filter.c`: the first `accept` or `reject` ends the whole
//! filter, also from inside a called function; a function that reaches its end (or `return`)
//! continues in its caller; a filter that ends without a verdict rejects; reading an unset
//! BGP community list gives an empty list while any other unset attribute is void, and void
//! in a comparison is a runtime error, which rejects the route; `&&` and `||` short-circuit.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::ast::*;
use super::glob;

/// The route a filter sees, with the attributes Calico's filters read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub net: IpNet,
    pub source: Source,
    /// The interface the route leaves through; `None` for blackholes and unresolved routes
    /// (filters then read `""`).
    pub ifname: Option<String>,
    /// The resolved next hop (`gw`).
    pub gw: Option<IpAddr>,
    /// The address of the neighbour the route came from (`from`).
    pub from: Option<IpAddr>,
    pub preference: u32,
    pub bgp_next_hop: Option<IpAddr>,
    pub bgp_path: Option<Vec<u32>>,
    pub bgp_local_pref: Option<u32>,
    pub bgp_med: Option<u32>,
    pub bgp_origin: Option<u32>,
    pub bgp_community: Option<Vec<(u32, u32)>>,
    pub bgp_large_community: Option<Vec<(u32, u32, u32)>>,
    pub krt_metric: Option<u32>,
    /// Calico's fork: `Some("tunl0")` writes the kernel route through that device, onlink.
    pub krt_tunnel: Option<String>,
}

impl Route {
    /// A route as BIRD 1.6 originates it from `source`, with that source's default
    /// preference (direct 240, static 200, BGP 100, kernel 10) and nothing else set.
    pub fn new(net: IpNet, source: Source) -> Route {
        let preference = match source {
            Source::Device | Source::StaticDevice => 240,
            Source::Static => 200,
            Source::Bgp => 100,
            Source::Inherit => 10,
            _ => 0,
        };
        Route {
            net,
            source,
            ifname: None,
            gw: None,
            from: None,
            preference,
            bgp_next_hop: None,
            bgp_path: None,
            bgp_local_pref: None,
            bgp_med: None,
            bgp_origin: None,
            bgp_community: None,
            bgp_large_community: None,
            krt_metric: None,
            krt_tunnel: None,
        }
    }
}

/// What a filter decided, and the route as it left the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: bool,
    pub route: Route,
    /// A runtime error (the route was rejected because of it), with its position.
    pub error: Option<String>,
    /// What `print` statements printed, in order.
    pub printed: Vec<String>,
}

/// Deepest evaluation nesting (statements, expressions and calls together): BIRD has no
/// limit, but a recursive function in the config must not overflow wren's stack.
const MAX_EVAL_DEPTH: usize = 256;

/// Runs filters of one configuration.
pub struct Evaluator<'c> {
    functions: HashMap<&'c str, &'c Function>,
    filters: HashMap<&'c str, &'c Filter>,
}

/// A runtime value.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Void,
    /// 32 bits, wrapping like BIRD's C `int`, compared unsigned (`uint_cmp`).
    Int(u32),
    Bool(bool),
    Str(String),
    Ip(IpAddr),
    Prefix(IpNet),
    Pair(u32, u32),
    Lc(u32, u32, u32),
    Source(Source),
    Clist(Vec<(u32, u32)>),
    Lclist(Vec<(u32, u32, u32)>),
    Path(Vec<u32>),
    PathMask(Vec<PathItem>),
    Set(Vec<SetValue>),
}

#[derive(Debug, Clone, PartialEq)]
enum SetValue {
    Prefix { net: IpNet, lo: u8, hi: u8 },
    Value(Value),
}

/// How a statement ended.
enum Flow {
    Next,
    Return,
    Verdict(bool),
}

struct Run<'a> {
    /// Current evaluation nesting, bounded by [`MAX_EVAL_DEPTH`].
    level: usize,
    route: Route,
    printed: Vec<String>,
    vars: Vec<HashMap<&'a str, Value>>,
}

type Fail = String;

impl<'c> Evaluator<'c> {
    pub fn new(config: &'c Config) -> Evaluator<'c> {
        let mut functions = HashMap::new();
        let mut filters = HashMap::new();
        for i in &config.items {
            match &i.kind {
                ItemKind::Function(f) => {
                    functions.insert(f.name.as_str(), f);
                }
                ItemKind::Filter(f) => {
                    filters.insert(f.name.as_str(), f);
                }
                _ => {}
            }
        }
        Evaluator { functions, filters }
    }

    /// Runs an `import`/`export` clause: `all` accepts, `none` rejects, a named or inline
    /// filter runs.
    pub fn run(&self, clause: &FilterRef, route: Route) -> Outcome {
        match clause {
            FilterRef::All => done(true, route, None, Vec::new()),
            FilterRef::None => done(false, route, None, Vec::new()),
            FilterRef::Named(n, _) => match self.filters.get(n.as_str()) {
                Some(f) => self.run_body(&f.body, route),
                None => done(
                    false,
                    route,
                    Some(format!("{n}: no such filter")),
                    Vec::new(),
                ),
            },
            FilterRef::Inline(body) => self.run_body(body, route),
        }
    }

    /// Runs the named filter.
    pub fn run_filter(&self, name: &str, route: Route) -> Outcome {
        self.run(&FilterRef::Named(name.to_string(), dummy_pos()), route)
    }

    /// Runs a filter body on `route`.
    pub fn run_body(&self, body: &[Stmt], route: Route) -> Outcome {
        let mut run = Run {
            level: 0,
            route,
            printed: Vec::new(),
            vars: vec![HashMap::new()],
        };
        let (accepted, error) = match self.stmts(body, &mut run) {
            Ok(Flow::Verdict(v)) => (v, None),
            // BIRD: "Filter did not return accept nor reject. Make up your mind" → reject.
            Ok(Flow::Next | Flow::Return) => (false, None),
            Err(e) => (false, Some(e)),
        };
        done(accepted, run.route, error, run.printed)
    }

    fn stmts<'a>(&'a self, body: &'a [Stmt], run: &mut Run<'a>) -> Result<Flow, Fail> {
        for s in body {
            match self.stmt(s, run)? {
                Flow::Next => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Next)
    }

    fn stmt<'a>(&'a self, s: &'a Stmt, run: &mut Run<'a>) -> Result<Flow, Fail> {
        nested(run, &s.pos, |run| self.stmt_inner(s, run))
    }

    fn stmt_inner<'a>(&'a self, s: &'a Stmt, run: &mut Run<'a>) -> Result<Flow, Fail> {
        let at = |m: String| format!("{}: {m}", s.pos);
        match &s.kind {
            StmtKind::If { cond, then, els } => match self.expr(cond, run)? {
                Value::Bool(true) => self.stmt(then, run),
                Value::Bool(false) => match els {
                    Some(e) => self.stmt(e, run),
                    None => Ok(Flow::Next),
                },
                v => Err(at(format!("If requires bool expression, got {v:?}"))),
            },
            StmtKind::Block(b) => self.stmts(b, run),
            StmtKind::Accept => Ok(Flow::Verdict(true)),
            StmtKind::Reject => Ok(Flow::Verdict(false)),
            StmtKind::Return(e) => {
                if let Some(e) = e {
                    self.expr(e, run)?;
                }
                Ok(Flow::Return)
            }
            StmtKind::Print(es) => {
                let mut line = Vec::new();
                for e in es {
                    line.push(show(&self.expr(e, run)?));
                }
                run.printed.push(line.join(" "));
                Ok(Flow::Next)
            }
            StmtKind::Call { name, args } => self.call(name, args, &s.pos, run).map(|f| match f {
                Flow::Verdict(v) => Flow::Verdict(v),
                _ => Flow::Next,
            }),
            StmtKind::Assign { attr, value } => {
                let v = self.expr(value, run)?;
                assign(&mut run.route, *attr, v).map_err(at)?;
                Ok(Flow::Next)
            }
            StmtKind::Method { attr, method, arg } => {
                let v = self.expr(arg, run)?;
                apply_method(&mut run.route, *attr, *method, v).map_err(at)?;
                Ok(Flow::Next)
            }
            StmtKind::Case { subject, arms } => {
                let v = self.expr(subject, run)?;
                for arm in arms {
                    let mut hit = arm.values.is_empty();
                    for want in &arm.values {
                        if self.expr(want, run)? == v {
                            hit = true;
                        }
                    }
                    if hit {
                        return self.stmts(&arm.body, run);
                    }
                }
                Ok(Flow::Next)
            }
        }
    }

    /// Calls a function; its `accept`/`reject` ends the whole filter, its end or `return`
    /// comes back here.
    fn call<'a>(
        &'a self,
        name: &str,
        args: &'a [Expr],
        pos: &Pos,
        run: &mut Run<'a>,
    ) -> Result<Flow, Fail> {
        let f = self
            .functions
            .get(name)
            .ok_or_else(|| format!("{pos}: {name}: no such function"))?;
        if f.params.len() != args.len() {
            return Err(format!("{pos}: {name}: bad call"));
        }
        let mut frame = HashMap::new();
        for (p, a) in f.params.iter().zip(args) {
            frame.insert(p.name.as_str(), self.expr(a, run)?);
        }
        run.vars.push(frame);
        let r = self.stmts(&f.body, run);
        run.vars.pop();
        r
    }

    fn expr<'a>(&'a self, e: &'a Expr, run: &mut Run<'a>) -> Result<Value, Fail> {
        nested(run, &e.pos, |run| self.expr_inner(e, run))
    }

    fn expr_inner<'a>(&'a self, e: &'a Expr, run: &mut Run<'a>) -> Result<Value, Fail> {
        let at = |m: String| format!("{}: {m}", e.pos);
        Ok(match &e.kind {
            ExprKind::Int(n) => Value::Int(*n),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::Str(s) => Value::Str(s.clone()),
            ExprKind::Ip(a) => Value::Ip(*a),
            ExprKind::Prefix(p) => Value::Prefix(*p),
            ExprKind::Source(s) => Value::Source(*s),
            ExprKind::Tuple(xs) => {
                let mut n = Vec::new();
                for x in xs {
                    match self.expr(x, run)? {
                        Value::Int(i) => n.push(i),
                        v => return Err(at(format!("Pair members must be integers, got {v:?}"))),
                    }
                }
                match n[..] {
                    // A standard community has two 16-bit halves (BIRD `FI_PAIR_CONSTRUCT`).
                    [a, b] if a > 0xFFFF || b > 0xFFFF => {
                        return Err(at(
                            "Can't operate with value out of bounds in pair constructor".into(),
                        ));
                    }
                    [a, b] => Value::Pair(a, b),
                    [a, b, c] => Value::Lc(a, b, c),
                    _ => return Err(at("Tuples have two or three members".into())),
                }
            }
            ExprKind::Set(items) => {
                let mut out = Vec::new();
                for i in items {
                    out.push(match i {
                        SetItem::Prefix { net, lo, hi } => SetValue::Prefix {
                            net: *net,
                            lo: *lo,
                            hi: *hi,
                        },
                        SetItem::Value(v) => SetValue::Value(self.expr(v, run)?),
                    });
                }
                Value::Set(out)
            }
            ExprKind::PathMask(m) => Value::PathMask(m.clone()),
            ExprKind::Attr(a) => read(&run.route, *a),
            ExprKind::Var(name) => run
                .vars
                .last()
                .and_then(|f| f.get(name.as_str()))
                .cloned()
                .ok_or_else(|| at(format!("{name}: variable not set")))?,
            ExprKind::Call { name, args } => {
                // BIRD 1.6 functions used as values: Calico never does; the call's verdict
                // cannot propagate from inside an expression.
                match self.call(name, args, &e.pos, run)? {
                    Flow::Verdict(_) => {
                        return Err(at(format!("{name}: accept/reject inside an expression")));
                    }
                    _ => Value::Void,
                }
            }
            ExprKind::Defined(x) => Value::Bool(self.expr(x, run)? != Value::Void),
            ExprKind::Not(x) => match self.expr(x, run)? {
                Value::Bool(b) => Value::Bool(!b),
                v => return Err(at(format!("! requires bool, got {v:?}"))),
            },
            ExprKind::Binary { op, lhs, rhs } => {
                let l = self.expr(lhs, run)?;
                if let (BinOp::And | BinOp::Or, Value::Bool(b)) = (op, &l) {
                    // Short circuit, as BIRD's `&&`/`||`.
                    if (*op == BinOp::And) != *b {
                        return Ok(Value::Bool(*b));
                    }
                }
                let r = self.expr(rhs, run)?;
                binary(*op, l, r).map_err(at)?
            }
        })
    }
}

/// Runs `f` one level deeper, refusing past [`MAX_EVAL_DEPTH`].
fn nested<'a, T>(
    run: &mut Run<'a>,
    pos: &Pos,
    f: impl FnOnce(&mut Run<'a>) -> Result<T, Fail>,
) -> Result<T, Fail> {
    if run.level >= MAX_EVAL_DEPTH {
        return Err(format!("{pos}: Filter nested too deep"));
    }
    run.level += 1;
    let r = f(run);
    run.level -= 1;
    r
}

fn done(accepted: bool, route: Route, error: Option<String>, printed: Vec<String>) -> Outcome {
    Outcome {
        accepted,
        route,
        error,
        printed,
    }
}

fn dummy_pos() -> Pos {
    Pos {
        file: std::sync::Arc::from("<call>"),
        line: 0,
        col: 0,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        Value::Str(s) => s.clone(),
        Value::Ip(a) => a.to_string(),
        Value::Prefix(p) => p.to_string(),
        Value::Pair(a, b) => format!("({a},{b})"),
        Value::Lc(a, b, c) => format!("({a}, {b}, {c})"),
        other => format!("{other:?}"),
    }
}

fn opt_int(v: Option<u32>) -> Value {
    v.map_or(Value::Void, Value::Int)
}

/// Reads an attribute. Route fields are always defined (no interface reads as `""`, no
/// gateway as the zero address); unset community lists read as empty lists, other unset
/// BGP and kernel attributes as void (BIRD 1.6 `f_run`).
fn read(r: &Route, a: Attr) -> Value {
    let zero = || match r.net {
        IpNet::V4(_) => IpAddr::from([0u8; 4]),
        IpNet::V6(_) => IpAddr::from([0u8; 16]),
    };
    match a {
        Attr::Net => Value::Prefix(r.net),
        Attr::Source => Value::Source(r.source),
        Attr::Ifname => Value::Str(r.ifname.clone().unwrap_or_default()),
        Attr::Gw => Value::Ip(r.gw.unwrap_or_else(zero)),
        Attr::From => Value::Ip(r.from.unwrap_or_else(zero)),
        Attr::Preference => Value::Int(r.preference),
        Attr::BgpNextHop => r.bgp_next_hop.map_or(Value::Void, Value::Ip),
        Attr::BgpPath => r.bgp_path.clone().map_or(Value::Void, Value::Path),
        Attr::BgpLocalPref => opt_int(r.bgp_local_pref),
        Attr::BgpMed => opt_int(r.bgp_med),
        Attr::BgpOrigin => opt_int(r.bgp_origin),
        Attr::BgpCommunity => Value::Clist(r.bgp_community.clone().unwrap_or_default()),
        Attr::BgpLargeCommunity => Value::Lclist(r.bgp_large_community.clone().unwrap_or_default()),
        Attr::KrtMetric => opt_int(r.krt_metric),
        Attr::KrtTunnel => r.krt_tunnel.clone().map_or(Value::Void, Value::Str),
    }
}

/// Writes an attribute.
fn assign(r: &mut Route, a: Attr, v: Value) -> Result<(), String> {
    match (a, v) {
        (Attr::Preference, Value::Int(i)) => {
            if i > 0xFFFF {
                return Err("Setting preference value out of bounds".into());
            }
            r.preference = i;
        }
        (Attr::BgpLocalPref, Value::Int(i)) => r.bgp_local_pref = Some(i),
        (Attr::BgpMed, Value::Int(i)) => r.bgp_med = Some(i),
        (Attr::BgpOrigin, Value::Int(i)) => r.bgp_origin = Some(i),
        (Attr::KrtMetric, Value::Int(i)) => r.krt_metric = Some(i),
        (Attr::KrtTunnel, Value::Str(s)) => r.krt_tunnel = Some(s),
        (Attr::BgpNextHop, Value::Ip(ip)) => r.bgp_next_hop = Some(ip),
        (Attr::Gw, Value::Ip(ip)) => r.gw = Some(ip),
        (Attr::From, Value::Ip(ip)) => r.from = Some(ip),
        (Attr::BgpPath, Value::Path(p)) => r.bgp_path = Some(p),
        (Attr::BgpCommunity, Value::Clist(c)) => r.bgp_community = Some(c),
        (Attr::BgpLargeCommunity, Value::Lclist(c)) => r.bgp_large_community = Some(c),
        (Attr::Net | Attr::Source | Attr::Ifname, _) => {
            return Err("attribute is read-only".into());
        }
        (a, v) => return Err(format!("Attribute {a:?} cannot hold {v:?}")),
    }
    Ok(())
}

fn apply_method(r: &mut Route, a: Attr, m: Method, v: Value) -> Result<(), String> {
    match (a, m, v) {
        (Attr::BgpCommunity, Method::Add, Value::Pair(x, y)) => {
            let list = r.bgp_community.get_or_insert_with(Vec::new);
            if !list.contains(&(x, y)) {
                list.push((x, y));
            }
        }
        (Attr::BgpCommunity, Method::Delete, Value::Pair(x, y)) => {
            if let Some(list) = &mut r.bgp_community {
                list.retain(|c| *c != (x, y));
            }
        }
        (Attr::BgpLargeCommunity, Method::Add, Value::Lc(x, y, z)) => {
            let list = r.bgp_large_community.get_or_insert_with(Vec::new);
            if !list.contains(&(x, y, z)) {
                list.push((x, y, z));
            }
        }
        (Attr::BgpLargeCommunity, Method::Delete, Value::Lc(x, y, z)) => {
            if let Some(list) = &mut r.bgp_large_community {
                list.retain(|c| *c != (x, y, z));
            }
        }
        // Unlike the community lists, an unset AS path is void, not empty (`FI_PATH_PREPEND`).
        (Attr::BgpPath, Method::Prepend, Value::Int(asn)) => match &mut r.bgp_path {
            Some(path) => path.insert(0, asn),
            None => return Err("Can't prepend to non-path".into()),
        },
        (a, m, v) => return Err(format!("Can't apply {m:?} to {a:?} with {v:?}")),
    }
    Ok(())
}

/// BIRD 1.6 `val_compare`: void sorts before everything ("hack for else"), integers and
/// bools compare unsigned, other mixed types are an error.
fn compare(l: &Value, r: &Value) -> Result<Ordering, String> {
    use Value::*;
    Ok(match (l, r) {
        (Void, Void) => Ordering::Equal,
        (Void, _) => Ordering::Less,
        (_, Void) => Ordering::Greater,
        (Int(a), Int(b)) => a.cmp(b),
        (Bool(a), Bool(b)) => a.cmp(b),
        (Pair(a, b), Pair(c, d)) => (a, b).cmp(&(c, d)),
        (Lc(a, b, c), Lc(d, e, f)) => (a, b, c).cmp(&(d, e, f)),
        (Ip(a), Ip(b)) => a.cmp(b),
        (Str(a), Str(b)) => a.cmp(b),
        (Prefix(a), Prefix(b)) => (a.network(), a.prefix_len()).cmp(&(b.network(), b.prefix_len())),
        (Source(a), Source(b)) if a == b => Ordering::Equal,
        _ => {
            return Err(format!(
                "Can't compare values of incompatible types {l:?} and {r:?}"
            ));
        }
    })
}

fn binary(op: BinOp, l: Value, r: Value) -> Result<Value, String> {
    use Value::*;
    Ok(match op {
        BinOp::And | BinOp::Or => match (l, r) {
            (Bool(_), Bool(b)) => Bool(b),
            _ => return Err("Can't do boolean operation on non-booleans".into()),
        },
        // `val_same`: values that cannot be compared are simply not the same.
        BinOp::Eq | BinOp::Ne => {
            let same = match compare(&l, &r) {
                Ok(o) => o == Ordering::Equal,
                Err(_) => l == r,
            };
            Bool(same == (op == BinOp::Eq))
        }
        // BIRD parses `a > b` as `b < a` and `a >= b` as `b <= a`.
        BinOp::Lt => Bool(compare(&l, &r)? == Ordering::Less),
        BinOp::Gt => Bool(compare(&r, &l)? == Ordering::Less),
        BinOp::Le => Bool(compare(&l, &r)? != Ordering::Greater),
        BinOp::Ge => Bool(compare(&r, &l)? != Ordering::Greater),
        BinOp::Match => Bool(matches(&l, &r)?),
        BinOp::NotMatch => Bool(!matches(&l, &r)?),
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => match (l, r) {
            (Int(a), Int(b)) => Int(match op {
                BinOp::Add => a.wrapping_add(b),
                BinOp::Sub => a.wrapping_sub(b),
                BinOp::Mul => a.wrapping_mul(b),
                _ if b == 0 => return Err("Mother told me not to divide by 0".into()),
                // C's signed division on the 32 bits.
                _ => (a as i32).wrapping_div(b as i32) as u32,
            }),
            (l, r) => {
                return Err(format!(
                    "Integers expected for {}, got {l:?} and {r:?}",
                    op.symbol()
                ));
            }
        },
    })
}

/// Whether `inner` lies inside `outer` (`net ~ P`: P itself included).
fn prefix_within(inner: &IpNet, outer: &IpNet) -> bool {
    outer.contains(inner)
}

/// BIRD 1.6 prefix pattern `net{lo,hi}`: `p` matches when its length is in lo..=hi and the
/// first min(len(net), len(p)) bits of both agree.
fn pattern_matches(p: &IpNet, net: &IpNet, lo: u8, hi: u8) -> bool {
    let len = p.prefix_len();
    let m = len.min(net.prefix_len());
    let head = |n: &IpNet| IpNet::new(n.network(), m).map(|x| x.trunc()).ok();
    (lo..=hi).contains(&len) && head(p).is_some() && head(p) == head(net)
}

/// BIRD's `~`: containment, glob, membership, path mask.
fn matches(l: &Value, r: &Value) -> Result<bool, String> {
    use Value::*;
    Ok(match (l, r) {
        (Prefix(a), Prefix(b)) => prefix_within(a, b),
        (Ip(a), Prefix(b)) => b.contains(a),
        (Str(s), Str(p)) => glob::matches(p, s),
        (Pair(a, b), Clist(c)) => c.contains(&(*a, *b)),
        (Lc(a, b, c), Lclist(l)) => l.contains(&(*a, *b, *c)),
        (Path(p), PathMask(m)) => path_matches(p, m),
        (x, Set(items)) => items.iter().any(|i| match (i, x) {
            (SetValue::Prefix { net, lo, hi }, Prefix(p)) => pattern_matches(p, net, *lo, *hi),
            (SetValue::Value(v), x) => v == x,
            _ => false,
        }),
        _ => return Err(format!("~ applied on unknown type pair {l:?} and {r:?}")),
    })
}

/// `[= 65000 * =]`: `*` any run of ASes, `?` exactly one.
fn path_matches(path: &[u32], mask: &[PathItem]) -> bool {
    // Dynamic programming over (mask position, path position): linear memory, no recursion.
    let mut row = vec![false; path.len() + 1];
    row[0] = true;
    for item in mask {
        let mut next = vec![false; path.len() + 1];
        for j in 0..=path.len() {
            next[j] = match item {
                PathItem::AnySeq => row[j] || (j > 0 && next[j - 1]),
                PathItem::AnyOne => j > 0 && row[j - 1],
                PathItem::Asn(a) => j > 0 && row[j - 1] && path[j - 1] == *a,
            };
        }
        row = next;
    }
    row[path.len()]
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

    fn route(net: &str, source: Source) -> Route {
        Route::new(net.parse().unwrap(), source)
    }

    /// Runs filter `f` of `text` on `r`.
    fn run(text: &str, r: Route) -> Outcome {
        let c = config(text);
        Evaluator::new(&c).run_filter("f", r)
    }

    #[test]
    fn first_verdict_ends_the_filter() {
        let o = run(
            "filter f { accept; krt_metric = 5; reject; }",
            route("10.0.0.0/8", Source::Static),
        );
        assert!(o.accepted);
        assert_eq!(o.route.krt_metric, None);
        let o = run(
            "filter f { reject; accept; }",
            route("10.0.0.0/8", Source::Static),
        );
        assert!(!o.accepted);
    }

    #[test]
    fn functions_return_into_the_caller_and_their_verdict_ends_the_filter() {
        let text = "function g(bool b) { if b then accept; krt_metric = 7; return 0; krt_metric = 9; }\n\
                    filter f { g(false); if krt_metric = 7 then bgp_med = 1; g(true); reject; }";
        let o = run(text, route("10.0.0.0/8", Source::Static));
        assert!(o.accepted);
        assert_eq!(o.route.krt_metric, Some(7));
        assert_eq!(o.route.bgp_med, Some(1));
    }

    #[test]
    fn a_filter_without_verdict_rejects() {
        let o = run(
            "function g() { } filter f { g(); }",
            route("10.0.0.0/8", Source::Static),
        );
        assert!(!o.accepted);
        assert_eq!(o.error, None);
    }

    #[test]
    fn defined_and_unset_attributes() {
        let text = "filter f { if defined(bgp_local_pref) then reject;\n\
                    if (1, 2) ~ bgp_community then reject;\n\
                    if !defined(krt_metric) && defined(preference) then accept; reject; }";
        assert!(run(text, route("10.0.0.0/8", Source::Static)).accepted);
        let mut r = route("10.0.0.0/8", Source::Bgp);
        r.bgp_local_pref = Some(100);
        assert!(!run(text, r).accepted);
    }

    #[test]
    fn void_sorts_first_and_void_matching_is_a_runtime_error() {
        // BIRD 1.6 `val_compare`: an unset attribute is less than anything.
        let r = || route("10.0.0.0/8", Source::Static);
        let verdict = |test: &str| {
            run(
                &format!("filter f {{ if {test} then accept; reject; }}"),
                r(),
            )
        };
        for (test, want) in [
            ("krt_metric < 1024", true),
            ("krt_metric <= 0", true),
            ("krt_metric > 0", false),
            ("krt_metric >= 0", false),
            ("krt_metric = 1024", false),
            ("krt_metric != 1024", true),
            ("ifname = \"eth0\"", false),
        ] {
            let o = verdict(test);
            assert_eq!((o.accepted, o.error), (want, None), "{test}");
        }
        let o = verdict("bgp_next_hop ~ 10.0.0.0/8");
        assert!(!o.accepted);
        assert!(o.error.unwrap().starts_with("t.cfg:1:15: "));
        // Mixed types that cannot be ordered are an error for `<`, merely unequal for `=`.
        assert!(verdict("net = 5").error.is_none());
        assert!(verdict("net < 5").error.is_some());
    }

    #[test]
    fn integers_are_32_bits_compared_unsigned() {
        let o = run(
            "filter f { bgp_med = 0 - 1; if bgp_med > 4000000000 && 7 / 2 = 3 then accept; reject; }",
            route("10.0.0.0/8", Source::Static),
        );
        assert!(o.accepted, "{o:?}");
        assert_eq!(o.route.bgp_med, Some(u32::MAX));
        let o = run(
            "filter f { bgp_community.add((65535 + 1, 1)); accept; }",
            route("10.0.0.0/8", Source::Static),
        );
        assert!(!o.accepted && o.error.is_some());
    }

    #[test]
    fn and_or_short_circuit_with_equal_precedence() {
        // Guarded read of an unset attribute: no runtime error.
        let o = run(
            "filter f { if defined(krt_metric) && krt_metric < 5 then reject; accept; }",
            route("10.0.0.0/8", Source::Static),
        );
        assert!(o.accepted && o.error.is_none());
        // BIRD 1.6 parses `a || b && c` as `(a || b) && c`.
        let o = run(
            "filter f { if true || false && false then accept; reject; }",
            route("10.0.0.0/8", Source::Static),
        );
        assert!(!o.accepted);
    }

    #[test]
    fn integer_arithmetic_and_assignment() {
        let mut r = route("10.0.0.0/8", Source::Bgp);
        r.bgp_local_pref = Some(100);
        let o = run(
            "filter f { krt_metric = 2147483647 - bgp_local_pref; preference = 2 * 100 / 4 + 150; accept; }",
            r,
        );
        assert_eq!(o.route.krt_metric, Some(2147483547));
        assert_eq!(o.route.preference, 200);
    }

    #[test]
    fn prefix_tests_and_sets() {
        let text = "filter f { if net ~ [ 10.0.0.0/8{16,24}, 172.16.0.0/12+, 192.0.2.0/24- ] then accept; reject; }";
        for (net, want) in [
            ("10.1.2.0/24", true),
            ("10.1.2.0/25", false),
            ("10.0.0.0/8", false),
            ("172.16.4.0/30", true),
            ("192.0.0.0/16", true),
            ("192.0.2.0/24", true),
            ("192.0.2.0/25", false),
            ("193.0.0.0/8", false),
        ] {
            assert_eq!(
                run(text, route(net, Source::Static)).accepted,
                want,
                "{net}"
            );
        }
        let text = "filter f { if net = 10.0.0.0/8 then reject; if net ~ 10.0.0.0/8 then accept; if net !~ 11.0.0.0/8 then reject; if net != 11.0.0.0/8 then accept; reject; }";
        assert!(!run(text, route("10.0.0.0/8", Source::Static)).accepted);
        assert!(run(text, route("10.1.0.0/16", Source::Static)).accepted);
        assert!(!run(text, route("12.0.0.0/8", Source::Static)).accepted);
        assert!(run(text, route("11.1.0.0/16", Source::Static)).accepted);
    }

    #[test]
    fn sources_interfaces_next_hops() {
        let text = "filter f { if source ~ [ RTS_BGP, RTS_STATIC ] && source != RTS_STATIC then accept;\n\
                    if defined(ifname) && ifname ~ \"cali*\" then reject;\n\
                    if bgp_next_hop ~ 10.192.0.0/24 then accept; reject; }";
        assert!(run(text, route("10.0.0.0/8", Source::Bgp)).accepted);
        let mut r = route("10.0.0.0/8", Source::Inherit);
        r.ifname = Some("cali1234".into());
        r.bgp_next_hop = Some("10.192.0.9".parse().unwrap());
        assert!(!run(text, r.clone()).accepted);
        r.ifname = Some("eth0".into());
        assert!(run(text, r).accepted);
    }

    #[test]
    fn communities_and_paths() {
        let text = "filter f { bgp_community.add((65000, 100)); bgp_community.add((65000, 100));\n\
                    bgp_large_community.add((1, 2, 3)); bgp_path.prepend(65001);\n\
                    if (65000, 100) ~ bgp_community && (1, 2, 3) ~ bgp_large_community\n\
                       && bgp_path ~ [= 65001 * =] && bgp_path ~ [= ? 65000 =] then accept; reject; }";
        let mut r = route("10.0.0.0/8", Source::Bgp);
        r.bgp_path = Some(vec![65000]);
        let o = run(text, r);
        assert!(o.accepted, "{o:?}");
        assert_eq!(o.route.bgp_community, Some(vec![(65000, 100)]));
        assert_eq!(o.route.bgp_large_community, Some(vec![(1, 2, 3)]));
        assert_eq!(o.route.bgp_path, Some(vec![65001, 65000]));
        assert!(!path_matches(
            &[1, 2, 3],
            &[PathItem::Asn(1), PathItem::Asn(3)]
        ));
        assert!(path_matches(
            &[1, 2, 3],
            &[PathItem::AnySeq, PathItem::Asn(3)]
        ));
        assert!(path_matches(&[], &[PathItem::AnySeq]));
        // A route without an AS path (not from BGP) cannot be prepended to.
        let o = run(
            "filter f { bgp_path.prepend(1); accept; }",
            route("10.0.0.0/8", Source::Static),
        );
        assert!(!o.accepted && o.error.unwrap().ends_with("Can't prepend to non-path"));
    }

    #[test]
    fn case_and_print() {
        let text = "filter f { case bgp_local_pref { 100, 200: print \"low\", net; accept; else: reject; } }";
        let mut r = route("10.0.0.0/8", Source::Bgp);
        r.bgp_local_pref = Some(200);
        let o = run(text, r.clone());
        assert!(o.accepted);
        assert_eq!(o.printed, vec!["low 10.0.0.0/8".to_string()]);
        r.bgp_local_pref = Some(300);
        assert!(!run(text, r).accepted);
    }

    #[test]
    fn runaway_recursion_is_an_error_not_a_crash() {
        let o = run(
            "function g() { g(); } filter f { g(); accept; }",
            route("10.0.0.0/8", Source::Static),
        );
        assert!(!o.accepted && o.error.is_some());
    }

    #[test]
    fn recursion_through_deep_expressions_is_an_error_not_a_crash() {
        // Each call of g nests 36 expression levels (18 sums of parentheses) before calling g again.
        let deep = format!("{}g(){}", "1 + (".repeat(18), ")".repeat(18));
        let text = format!("function g() {{ print {deep}; }} filter f {{ g(); accept; }}");
        let o = run(&text, route("10.0.0.0/8", Source::Static));
        assert!(!o.accepted);
        assert!(o.error.unwrap().ends_with("Filter nested too deep"));
    }
}
