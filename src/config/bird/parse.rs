//! The grammar: tokens from [`super::lex`] into the [`ast`](super::ast), with `include`
//! spliced in place. Follows BIRD 1.6's `config.Y`/`filter/config.Y` for the subset Calico
//! renders; anything else is an error at the token where it starts.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;

use super::ast::*;
use super::glob;
use super::keywords::is_keyword;
use super::lex::{Tok, Token, lex};
use super::{Error, Pos};
use crate::config::BfdAuth;

/// BIRD 1.6 refuses to nest includes deeper than this (`MAX_INCLUDE_DEPTH`).
const MAX_INCLUDE_DEPTH: usize = 8;

/// Deepest nesting of blocks, parentheses and operator chains accepted, so a hostile file
/// cannot overflow the stack when it is parsed, checked, evaluated or dropped.
const MAX_NESTING: usize = 64;

/// Parses `path` and everything it includes, for `bird` (IPv4) or `bird6` (IPv6). Syntax
/// only: symbols are resolved by [`super::check`].
pub fn parse_file(path: &Path, family: Family) -> Result<Config, Error> {
    let file: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
    let text = std::fs::read_to_string(path).map_err(|e| {
        let pos = Pos {
            file: file.clone(),
            line: 0,
            col: 0,
        };
        let msg = format!(
            "Unable to open configuration file {file}: {}",
            crate::sys::os_message(&e)
        );
        Error::new(&pos, msg)
    })?;
    parse_root(file, path, &text, family)
}

/// Parses configuration text as if it were the file `name` (tests, `-p` on stdin).
pub fn parse_str(name: &str, text: &str, family: Family) -> Result<Config, Error> {
    parse_root(Arc::from(name), Path::new(name), text, family)
}

fn parse_root(file: Arc<str>, path: &Path, text: &str, family: Family) -> Result<Config, Error> {
    let mut ctx = Ctx {
        family,
        names: HashMap::new(),
        items: Vec::new(),
    };
    parse_text(file.clone(), path, text, 0, &mut ctx)?;
    Ok(Config {
        file,
        family,
        items: ctx.items,
    })
}

/// What every file of one configuration shares.
struct Ctx {
    family: Family,
    /// BIRD numbers unnamed protocols per type across all files (`kernel1`, …).
    names: HashMap<&'static str, u32>,
    items: Vec<Item>,
}

fn parse_text(
    file: Arc<str>,
    path: &Path,
    text: &str,
    depth: usize,
    ctx: &mut Ctx,
) -> Result<(), Error> {
    let mut p = Parser {
        toks: lex(&file, text)?,
        i: 0,
        ctx,
        params: Vec::new(),
        nesting: 0,
    };
    while !p.at_eof() {
        let pos = p.pos();
        if p.eat_kw("include") {
            let (name, npos) = p.string()?;
            p.expect(";")?;
            let base = path.parent().filter(|b| !b.as_os_str().is_empty());
            let base = base.unwrap_or(Path::new("."));
            include(&pos, &npos, base, &name, depth, p.ctx)?;
        } else {
            let item = p.item()?;
            p.ctx.items.push(item);
        }
    }
    Ok(())
}

/// `include "name"`: relative to the including file's directory; a pattern may match
/// nothing, a plain name must exist (BIRD 1.6 `cf_include`).
fn include(
    pos: &Pos,
    npos: &Pos,
    base: &Path,
    name: &str,
    depth: usize,
    ctx: &mut Ctx,
) -> Result<(), Error> {
    if depth + 1 >= MAX_INCLUDE_DEPTH {
        return Err(Error::new(npos, "Max include depth reached"));
    }
    let full = base.join(name);
    let files = if glob::is_pattern(name) {
        expand(&full)
    } else {
        vec![full]
    };
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| {
            let msg = format!(
                "Unable to open included file {}: {}",
                f.display(),
                crate::sys::os_message(&e)
            );
            Error::new(pos, msg)
        })?;
        let file: Arc<str> = Arc::from(f.to_string_lossy().as_ref());
        parse_text(file, &f, &text, depth + 1, ctx)?;
    }
    Ok(())
}

/// The files a pattern matches: wildcards in the last component only, sorted like glob(3).
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let Some(pat) = pattern
        .file_name()
        .map(|p| p.to_string_lossy().into_owned())
    else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    // glob(3) hides dot files unless the pattern asks for them.
                    (pat.starts_with('.') || !n.starts_with('.')) && glob::matches(&pat, &n)
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

struct Parser<'c> {
    toks: Vec<Token>,
    i: usize,
    ctx: &'c mut Ctx,
    /// Parameters of the function being parsed: the only variables Calico's files use.
    params: Vec<String>,
    nesting: usize,
}

type R<T> = Result<T, Error>;

impl Parser<'_> {
    // ---- token helpers ----

    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.i + n).min(self.toks.len() - 1)].tok
    }

    fn pos(&self) -> Pos {
        self.toks[self.i.min(self.toks.len() - 1)].pos.clone()
    }

    fn at_eof(&self) -> bool {
        matches!(self.peek(), Tok::Eof)
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.i.min(self.toks.len() - 1)].clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn err<T>(&self, msg: impl Into<String>) -> R<T> {
        Err(Error::new(&self.pos(), msg))
    }

    /// "syntax error" with what was found, at the current token.
    fn unexpected<T>(&self, wanted: &str) -> R<T> {
        let found = match self.peek() {
            Tok::Sym(s) => format!("`{s}`"),
            Tok::Quoted(s) => format!("'{s}'"),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Num(n) => n.to_string(),
            Tok::Ip4(a) => a.to_string(),
            Tok::Ip6(a) => a.to_string(),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Eof => "end of file".to_string(),
        };
        self.err(format!(
            "syntax error, unexpected {found}, expecting {wanted}"
        ))
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::Punct(q) if *q == p)
    }

    /// Consumes the current token when `yes`.
    fn eat_if(&mut self, yes: bool) -> bool {
        if yes {
            self.bump();
        }
        yes
    }

    fn eat(&mut self, p: &str) -> bool {
        self.eat_if(self.is_punct(p))
    }

    fn expect(&mut self, p: &str) -> R<()> {
        self.eat(p)
            .then_some(())
            .map_or_else(|| self.unexpected(&format!("`{p}`")), Ok)
    }

    fn is_kw(&self, k: &str) -> bool {
        matches!(self.peek(), Tok::Sym(s) if s == k)
    }

    fn eat_kw(&mut self, k: &str) -> bool {
        self.eat_if(self.is_kw(k))
    }

    fn expect_kw(&mut self, k: &str) -> R<()> {
        self.eat_kw(k)
            .then_some(())
            .map_or_else(|| self.unexpected(&format!("`{k}`")), Ok)
    }

    /// The current token's value if `pick` takes it (consuming it), else a syntax error
    /// naming what was `wanted`.
    fn take<T>(&mut self, wanted: &str, pick: impl FnOnce(&Tok) -> Option<T>) -> R<T> {
        match pick(self.peek()) {
            Some(v) => {
                self.bump();
                Ok(v)
            }
            None => self.unexpected(wanted),
        }
    }

    /// A bare symbol: a keyword or an option word.
    fn symbol(&mut self) -> R<(String, Pos)> {
        let pos = self.pos();
        let s = self.take("a name", |t| match t {
            Tok::Sym(s) => Some(s.clone()),
            _ => None,
        })?;
        Ok((s, pos))
    }

    /// A name being defined or referred to (function, filter, template, protocol, parameter):
    /// a bare symbol that is not a keyword, or a quoted one.
    fn name(&mut self) -> R<(String, Pos)> {
        let pos = self.pos();
        if let Tok::Sym(s) = self.peek()
            && is_keyword(s)
        {
            return self.err(format!(
                "syntax error, `{s}` is a keyword and cannot be a name (quote it: '{s}')"
            ));
        }
        let s = self.take("a name", |t| match t {
            Tok::Sym(s) | Tok::Quoted(s) => Some(s.clone()),
            _ => None,
        })?;
        Ok((s, pos))
    }

    fn string(&mut self) -> R<(String, Pos)> {
        let pos = self.pos();
        let s = self.take("a string", |t| match t {
            Tok::Str(s) => Some(s.clone()),
            _ => None,
        })?;
        Ok((s, pos))
    }

    fn number(&mut self) -> R<u64> {
        self.take("a number", |t| match t {
            Tok::Num(n) => Some(*n),
            _ => None,
        })
    }

    fn u32(&mut self) -> R<u32> {
        let pos = self.pos();
        let n = self.number()?;
        u32::try_from(n).map_err(|_| Error::new(&pos, format!("Number out of range: {n}")))
    }

    fn u16(&mut self, what: &str) -> R<u16> {
        let pos = self.pos();
        let n = self.number()?;
        u16::try_from(n).map_err(|_| Error::new(&pos, format!("Invalid {what}: {n}")))
    }

    /// An address of the configuration's family: BIRD 1.6 is built for one family, and the
    /// other one's addresses are a syntax error there.
    fn ip(&mut self) -> R<IpAddr> {
        let ip = match (self.peek().clone(), self.ctx.family) {
            (Tok::Ip4(a), Family::V4) => IpAddr::V4(a),
            (Tok::Ip6(a), Family::V6) => IpAddr::V6(a),
            (Tok::Ip4(_), Family::V6) => return self.err("IPv4 address in an IPv6 configuration"),
            (Tok::Ip6(_), Family::V4) => return self.err("IPv6 address in an IPv4 configuration"),
            _ => return self.unexpected("an IP address"),
        };
        self.bump();
        Ok(ip)
    }

    fn ip4(&mut self) -> R<Ipv4Addr> {
        self.take("an IPv4 address", |t| match t {
            Tok::Ip4(a) => Some(*a),
            _ => None,
        })
    }

    /// `IP/LEN`, refusing a length past the family's width and host bits (BIRD: "Invalid
    /// network prefix").
    fn prefix(&mut self) -> R<IpNet> {
        let pos = self.pos();
        let ip = self.ip()?;
        self.expect("/")?;
        let len = self.number()?;
        let text = format!("{ip}/{len}");
        let net = u8::try_from(len)
            .ok()
            .and_then(|l| IpNet::new(ip, l).ok())
            .ok_or_else(|| Error::new(&pos, format!("Invalid network prefix: {text}.")))?;
        if net.network() != ip {
            return Err(Error::new(&pos, format!("Invalid prefix: {text}.")));
        }
        Ok(net)
    }

    /// BIRD's optional bool: `on`/`off`/`yes`/`no`/`true`/`false`, a number (non-zero is
    /// yes), or nothing, which means yes.
    fn opt_bool(&mut self) -> R<bool> {
        let v = match self.peek() {
            Tok::Sym(s) => match s.as_str() {
                "on" | "yes" | "true" => Some(true),
                "off" | "no" | "false" => Some(false),
                _ => None,
            },
            Tok::Num(n) => Some(*n != 0),
            _ => None,
        };
        if v.is_some() {
            self.bump();
        }
        Ok(v.unwrap_or(true))
    }

    fn enter(&mut self) -> R<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return self.err("Nesting too deep");
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    // ---- top level ----

    fn item(&mut self) -> R<Item> {
        let pos = self.pos();
        let kind = match self.peek().clone() {
            Tok::Sym(s) => match s.as_str() {
                "router" => {
                    self.bump();
                    self.expect_kw("id")?;
                    let id = self.ip4()?;
                    self.expect(";")?;
                    ItemKind::RouterId(id)
                }
                "listen" => self.listen()?,
                "log" => self.log()?,
                "debug" => {
                    self.bump();
                    self.expect_kw("protocols")?;
                    let d = self.debug_value()?;
                    self.expect(";")?;
                    ItemKind::DebugProtocols(d)
                }
                "function" => self.function()?,
                "filter" => {
                    self.bump();
                    let (name, _) = self.name()?;
                    let body = self.block_body()?;
                    ItemKind::Filter(Filter { name, body })
                }
                "template" => {
                    self.bump();
                    ItemKind::Template(self.proto(true)?)
                }
                "protocol" => {
                    self.bump();
                    ItemKind::Protocol(self.proto(false)?)
                }
                _ => return self.unexpected("a top-level statement"),
            },
            _ => return self.unexpected("a top-level statement"),
        };
        Ok(Item { pos, kind })
    }

    fn listen(&mut self) -> R<ItemKind> {
        self.bump();
        self.expect_kw("bgp")?;
        let (mut address, mut port) = (None, None);
        loop {
            if self.eat_kw("address") {
                address = Some(self.ip()?);
            } else if self.eat_kw("port") {
                port = Some(self.u16("port")?);
            } else {
                break;
            }
        }
        self.expect(";")?;
        Ok(ItemKind::Listen { address, port })
    }

    fn log(&mut self) -> R<ItemKind> {
        self.bump();
        let target = if self.eat_kw("stderr") {
            LogTarget::Stderr
        } else if self.eat_kw("syslog") {
            let name = if self.eat_kw("name") {
                Some(self.string()?.0)
            } else {
                None
            };
            LogTarget::Syslog(name)
        } else if let Tok::Str(_) = self.peek() {
            LogTarget::File(self.string()?.0)
        } else {
            return self.unexpected("`stderr`, `syslog` or a file name");
        };
        let classes = if self.eat_kw("all") {
            vec!["all".to_string()]
        } else {
            self.name_list()?
        };
        self.expect(";")?;
        Ok(ItemKind::Log { target, classes })
    }

    /// `{ a, b, c }`.
    fn name_list(&mut self) -> R<Vec<String>> {
        self.expect("{")?;
        let mut out = vec![self.symbol()?.0];
        while self.eat(",") {
            out.push(self.symbol()?.0);
        }
        self.expect("}")?;
        Ok(out)
    }

    fn debug_value(&mut self) -> R<Debug> {
        if self.eat_kw("all") {
            Ok(Debug::All)
        } else if self.eat_kw("off") {
            Ok(Debug::Off)
        } else if self.is_punct("{") {
            const CLASSES: [&str; 6] = [
                "states",
                "routes",
                "filters",
                "interfaces",
                "events",
                "packets",
            ];
            let pos = self.pos();
            let list = self.name_list()?;
            if let Some(bad) = list.iter().find(|c| !CLASSES.contains(&c.as_str())) {
                return Err(Error::new(&pos, format!("Unknown debug class `{bad}`")));
            }
            Ok(Debug::Classes(list))
        } else {
            self.unexpected("`all`, `off` or `{`")
        }
    }

    fn function(&mut self) -> R<ItemKind> {
        self.bump();
        let (name, _) = self.name()?;
        self.expect("(")?;
        let mut params = Vec::new();
        if !self.is_punct(")") {
            loop {
                let pos = self.pos();
                let (ty, _) = self.symbol()?;
                const TYPES: [&str; 9] = [
                    "bool", "int", "ip", "prefix", "pair", "quad", "string", "ec", "lc",
                ];
                if !TYPES.contains(&ty.as_str()) {
                    return Err(Error::new(&pos, format!("Unknown type `{ty}`")));
                }
                let (pname, _) = self.name()?;
                params.push(Param {
                    pos,
                    ty,
                    name: pname,
                });
                if !self.eat(";") {
                    break;
                }
            }
        }
        self.expect(")")?;
        if !self.is_punct("{") {
            return self.err("Local variable declarations are not supported");
        }
        self.params = params.iter().map(|p| p.name.clone()).collect();
        let body = self.block_body();
        self.params.clear();
        Ok(ItemKind::Function(Function {
            name,
            params,
            body: body?,
        }))
    }

    // ---- protocols ----

    fn proto(&mut self, template: bool) -> R<Proto> {
        let pos = self.pos();
        let (kw, _) = self.symbol()?;
        let ty = match kw.as_str() {
            "kernel" => ProtoType::Kernel,
            "device" => ProtoType::Device,
            "direct" => ProtoType::Direct,
            "static" => ProtoType::Static,
            "bgp" => ProtoType::Bgp,
            "bfd" => ProtoType::Bfd,
            other => {
                return Err(Error::new(
                    &pos,
                    format!("Unsupported protocol type `{other}`"),
                ));
            }
        };
        let name = match self.peek() {
            Tok::Sym(s) if s == "from" => None,
            Tok::Sym(_) | Tok::Quoted(_) => Some(self.name()?.0),
            _ if template => return self.unexpected("a template name"),
            _ => None,
        };
        let from = if self.eat_kw("from") {
            Some(self.name()?)
        } else {
            None
        };
        let (name, auto_named) = match name {
            Some(n) => (n, false),
            None => {
                let n = self.ctx.names.entry(ty.keyword()).or_insert(0);
                *n += 1;
                (format!("{}{}", ty.keyword(), n), true)
            }
        };
        self.expect("{")?;
        let mut options = Vec::new();
        while !self.eat("}") {
            if self.eat(";") {
                continue;
            }
            let pos = self.pos();
            let kind = self.option(ty)?;
            self.expect(";")?;
            options.push(Opt { pos, kind });
        }
        Ok(Proto {
            ty,
            name,
            auto_named,
            from,
            options,
        })
    }

    /// One protocol option, without its `;`.
    fn option(&mut self, ty: ProtoType) -> R<OptKind> {
        use ProtoType::*;
        let pos = self.pos();
        let Tok::Sym(word) = self.peek().clone() else {
            return self.unexpected("a protocol option");
        };
        self.bump();
        let kind =
            match (word.as_str(), ty) {
                ("debug", _) => OptKind::Debug(self.debug_value()?),
                ("description", _) => OptKind::Description(self.string()?.0),
                ("import", _) if self.eat_kw("limit") => OptKind::ImportLimit(self.u32()?),
                ("import", _) => OptKind::Import(self.filter_ref()?),
                ("export", _) => OptKind::Export(self.filter_ref()?),
                ("learn", Kernel) => OptKind::Learn(self.opt_bool()?),
                ("persist", Kernel) => OptKind::Persist(self.opt_bool()?),
                ("scan", Kernel | Device) => {
                    self.expect_kw("time")?;
                    OptKind::ScanTime(self.u32()?)
                }
                ("device", Kernel) => {
                    self.expect_kw("routes")?;
                    OptKind::DeviceRoutes(self.opt_bool()?)
                }
                ("merge", Kernel) => {
                    self.expect_kw("paths")?;
                    let on = self.opt_bool()?;
                    let limit = if self.eat_kw("limit") {
                        Some(self.u32()?)
                    } else {
                        None
                    };
                    OptKind::MergePaths { on, limit }
                }
                ("kernel", Kernel) => {
                    self.expect_kw("table")?;
                    OptKind::KernelTable(self.u32()?)
                }
                ("graceful", Kernel) => {
                    self.expect_kw("restart")?;
                    OptKind::GracefulRestart(self.opt_bool()?)
                }
                ("graceful", Bgp) => {
                    self.expect_kw("restart")?;
                    if self.eat_kw("time") {
                        OptKind::GracefulRestartTime(self.u32()?)
                    } else {
                        OptKind::GracefulRestart(self.opt_bool()?)
                    }
                }
                ("interface", Direct) => OptKind::Interface(self.iface_patterns()?),
                ("route", Static) => {
                    let prefix = self.prefix()?;
                    let target = if self.eat_kw("blackhole") {
                        RouteTarget::Blackhole
                    } else if self.eat_kw("unreachable") {
                        RouteTarget::Unreachable
                    } else if self.eat_kw("prohibit") {
                        RouteTarget::Prohibit
                    } else if self.eat_kw("via") {
                        RouteTarget::Via(self.ip()?)
                    } else {
                        return self.unexpected("`blackhole`, `unreachable`, `prohibit` or `via`");
                    };
                    OptKind::Route { prefix, target }
                }
                ("local", Bgp) => {
                    let address = match self.peek() {
                        Tok::Ip4(_) | Tok::Ip6(_) => Some(self.ip()?),
                        _ => None,
                    };
                    self.expect_kw("as")?;
                    OptKind::LocalAs {
                        address,
                        asn: self.u32()?,
                    }
                }
                ("neighbor", Bgp) => {
                    let address = self.ip()?;
                    let port = if self.eat_kw("port") {
                        Some(self.u16("port")?)
                    } else {
                        None
                    };
                    self.expect_kw("as")?;
                    OptKind::Neighbor {
                        address,
                        port,
                        asn: self.u32()?,
                    }
                }
                ("multihop", Bgp) => {
                    let hops =
                        match self.peek() {
                            Tok::Num(_) => {
                                let p = self.pos();
                                let n = self.number()?;
                                Some(u8::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                                    Error::new(&p, "Multihop must be in range 1-255")
                                })?)
                            }
                            _ => None,
                        };
                    OptKind::Multihop(hops)
                }
                ("direct", Bgp) => OptKind::Direct,
                ("ttl", Bgp) => {
                    self.expect_kw("security")?;
                    OptKind::TtlSecurity(self.opt_bool()?)
                }
                ("gateway", Bgp) => {
                    if self.eat_kw("direct") {
                        OptKind::Gateway(Gateway::Direct)
                    } else if self.eat_kw("recursive") {
                        OptKind::Gateway(Gateway::Recursive)
                    } else {
                        return self.unexpected("`direct` or `recursive`");
                    }
                }
                ("next", Bgp) => {
                    self.expect_kw("hop")?;
                    if self.eat_kw("self") {
                        OptKind::NextHopSelf
                    } else if self.eat_kw("keep") {
                        OptKind::NextHopKeep
                    } else {
                        return self.unexpected("`self` or `keep`");
                    }
                }
                ("add", Bgp) => {
                    self.expect_kw("paths")?;
                    if self.eat_kw("rx") {
                        OptKind::AddPaths {
                            rx: true,
                            tx: false,
                        }
                    } else if self.eat_kw("tx") {
                        OptKind::AddPaths {
                            rx: false,
                            tx: true,
                        }
                    } else {
                        let on = self.opt_bool()?;
                        OptKind::AddPaths { rx: on, tx: on }
                    }
                }
                ("connect", Bgp) => {
                    if self.eat_kw("delay") {
                        self.expect_kw("time")?;
                        OptKind::ConnectDelayTime(self.u32()?)
                    } else {
                        self.expect_kw("retry")?;
                        self.expect_kw("time")?;
                        OptKind::ConnectRetryTime(self.u32()?)
                    }
                }
                ("error", Bgp) => {
                    if self.eat_kw("forget") {
                        self.expect_kw("time")?;
                        OptKind::ErrorForgetTime(self.u32()?)
                    } else {
                        self.expect_kw("wait")?;
                        self.expect_kw("time")?;
                        let lo = self.u32()?;
                        self.expect(",")?;
                        OptKind::ErrorWaitTime(lo, self.u32()?)
                    }
                }
                ("hold", Bgp) => {
                    self.expect_kw("time")?;
                    OptKind::HoldTime(self.u32()?)
                }
                ("startup", Bgp) => {
                    self.expect_kw("hold")?;
                    self.expect_kw("time")?;
                    OptKind::StartupHoldTime(self.u32()?)
                }
                ("keepalive", Bgp) => {
                    self.expect_kw("time")?;
                    OptKind::KeepaliveTime(self.u32()?)
                }
                ("source", Bgp) => {
                    self.expect_kw("address")?;
                    OptKind::SourceAddress(self.ip()?)
                }
                ("passive", Bgp) => OptKind::Passive(self.opt_bool()?),
                ("password", Bgp) => OptKind::Password(self.string()?.0),
                ("rr", Bgp) => {
                    if self.eat_kw("client") {
                        OptKind::RrClient
                    } else {
                        self.expect_kw("cluster")?;
                        self.expect_kw("id")?;
                        match self.peek().clone() {
                            Tok::Num(n) => {
                                self.bump();
                                let n = u32::try_from(n)
                                    .map_err(|_| Error::new(&pos, "Cluster ID out of range"))?;
                                OptKind::RrClusterId(Ipv4Addr::from(n))
                            }
                            _ => OptKind::RrClusterId(self.ip4()?),
                        }
                    }
                }
                ("bfd", Bgp) => OptKind::Bfd(self.opt_bool()?),
                ("interface", Bfd) => {
                    let patterns = self.iface_patterns()?;
                    OptKind::BfdInterface(patterns, self.bfd_session()?)
                }
                ("multihop", Bfd) => OptKind::BfdMultihop(self.bfd_session()?),
                ("neighbor", Bfd) => {
                    let address = self.ip()?;
                    let (mut local, mut dev, mut multihop) = (None, None, false);
                    loop {
                        if self.eat_kw("local") {
                            local = Some(self.ip()?);
                        } else if self.eat_kw("dev") {
                            dev = Some(self.string()?.0);
                        } else if self.eat_kw("multihop") {
                            multihop = self.opt_bool()?;
                        } else {
                            break;
                        }
                    }
                    OptKind::BfdNeighbor {
                        address,
                        local,
                        dev,
                        multihop,
                    }
                }
                ("allow", Bgp) => {
                    self.expect_kw("local")?;
                    self.expect_kw("as")?;
                    let n = match self.peek() {
                        Tok::Num(_) => Some(self.u32()?),
                        _ => None,
                    };
                    OptKind::AllowLocalAs(n)
                }
                _ => {
                    return Err(Error::new(
                        &pos,
                        format!("Unknown option `{word}` in a {} protocol", ty.keyword()),
                    ));
                }
            };
        Ok(kind)
    }

    fn filter_ref(&mut self) -> R<FilterRef> {
        if self.eat_kw("all") {
            return Ok(FilterRef::All);
        }
        if self.eat_kw("none") {
            return Ok(FilterRef::None);
        }
        if self.is_kw("where") {
            return self.err("`where` filters are not supported");
        }
        self.expect_kw("filter")?;
        if self.is_punct("{") {
            return Ok(FilterRef::Inline(self.block_body()?));
        }
        let (name, pos) = self.name()?;
        Ok(FilterRef::Named(name, pos))
    }

    /// `{ OPTION; ... }` of a BFD interface or multihop block (BIRD's `bfd_iface_opt`).
    fn bfd_session(&mut self) -> R<BfdSession> {
        let mut s = BfdSession::default();
        if !self.eat("{") {
            return Ok(s);
        }
        while !self.eat("}") {
            if self.eat(";") {
                continue;
            }
            let Tok::Sym(word) = self.peek().clone() else {
                return self.unexpected("a BFD option");
            };
            self.bump();
            match word.as_str() {
                "interval" => {
                    let t = self.interval_us()?;
                    (s.min_rx, s.min_tx) = (Some(t), Some(t));
                }
                "min" if self.eat_kw("rx") => {
                    self.expect_kw("interval")?;
                    s.min_rx = Some(self.interval_us()?);
                }
                "min" => {
                    self.expect_kw("tx")?;
                    self.expect_kw("interval")?;
                    s.min_tx = Some(self.interval_us()?);
                }
                "idle" => {
                    self.expect_kw("tx")?;
                    self.expect_kw("interval")?;
                    s.idle_tx = Some(self.interval_us()?);
                }
                "multiplier" => {
                    let pos = self.pos();
                    let n = self.number()?;
                    s.multiplier =
                        Some(u8::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                            Error::new(&pos, "Multiplier must be in range 1-255")
                        })?);
                }
                "passive" => s.passive = Some(self.opt_bool()?),
                "authentication" => s.auth = Some(self.bfd_auth()?),
                "password" => {
                    let (key, _) = self.string()?;
                    let mut id = None;
                    if self.eat("{") {
                        while !self.eat("}") {
                            if self.eat(";") {
                                continue;
                            }
                            self.expect_kw("id")?;
                            let pos = self.pos();
                            let n = self.number()?;
                            id = Some(u8::try_from(n).map_err(|_| {
                                Error::new(&pos, "Password ID must be in range 0-255")
                            })?);
                        }
                    }
                    s.passwords.push((key, id));
                }
                other => {
                    return Err(Error::new(
                        &self.pos(),
                        format!("Unknown BFD option `{other}`"),
                    ));
                }
            }
            self.expect(";")?;
        }
        Ok(s)
    }

    /// `none`, `simple`, `[meticulous] keyed md5|sha1` (RFC 5880 §6.7).
    fn bfd_auth(&mut self) -> R<Option<BfdAuth>> {
        if self.eat_kw("none") {
            return Ok(None);
        }
        if self.eat_kw("simple") {
            return Ok(Some(BfdAuth::Simple));
        }
        let meticulous = self.eat_kw("meticulous");
        self.expect_kw("keyed")?;
        Ok(Some(match (meticulous, self.eat_kw("md5")) {
            (false, true) => BfdAuth::KeyedMd5,
            (true, true) => BfdAuth::MeticulousKeyedMd5,
            (m, false) => {
                self.expect_kw("sha1")?;
                match m {
                    false => BfdAuth::KeyedSha1,
                    true => BfdAuth::MeticulousKeyedSha1,
                }
            }
        }))
    }

    /// BIRD's `expr_us`: a number and its unit, `s`, `ms` or `us`, in microseconds.
    fn interval_us(&mut self) -> R<u32> {
        let pos = self.pos();
        let n = self.number()?;
        let unit = match self.peek() {
            Tok::Sym(u) if u == "s" => 1_000_000,
            Tok::Sym(u) if u == "ms" => 1_000,
            Tok::Sym(u) if u == "us" => 1,
            _ => return self.unexpected("`s`, `ms` or `us`"),
        };
        self.bump();
        n.checked_mul(unit)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| Error::new(&pos, format!("Number out of range: {n}")))
    }

    fn iface_patterns(&mut self) -> R<Vec<IfacePattern>> {
        let mut out = Vec::new();
        loop {
            let exclude = self.eat("-");
            let (glob, _) = self.string()?;
            out.push(IfacePattern { exclude, glob });
            if !self.eat(",") {
                return Ok(out);
            }
        }
    }

    // ---- statements ----

    /// `{ stmt* }`.
    fn block_body(&mut self) -> R<Vec<Stmt>> {
        self.expect("{")?;
        self.enter()?;
        let mut out = Vec::new();
        while !self.eat("}") {
            if self.eat(";") {
                continue;
            }
            out.push(self.stmt()?);
        }
        self.leave();
        Ok(out)
    }

    /// What follows `then` or `else`: one statement or a `{ … }` block (BIRD 1.6 `block`;
    /// a block is not a statement of its own).
    fn then_part(&mut self) -> R<Stmt> {
        let pos = self.pos();
        if self.is_punct("{") {
            return Ok(Stmt {
                pos,
                kind: StmtKind::Block(self.block_body()?),
            });
        }
        self.stmt()
    }

    fn stmt(&mut self) -> R<Stmt> {
        let pos = self.pos();
        let word = match self.peek().clone() {
            Tok::Sym(w) => w,
            // A quoted name can only be called here (Calico's BGPFilter functions).
            Tok::Quoted(name) => {
                self.bump();
                let args = self.args()?;
                self.expect(";")?;
                return Ok(Stmt {
                    pos,
                    kind: StmtKind::Call { name, args },
                });
            }
            _ => return self.unexpected("a statement"),
        };
        let kind = match word.as_str() {
            "if" => {
                self.bump();
                let cond = self.expr()?;
                self.expect_kw("then")?;
                self.enter()?;
                let then = Box::new(self.then_part()?);
                let els = if self.eat_kw("else") {
                    Some(Box::new(self.then_part()?))
                } else {
                    None
                };
                self.leave();
                StmtKind::If { cond, then, els }
            }
            "accept" | "reject" => {
                self.bump();
                // BIRD allows a message after the verdict; it is only printed.
                if !self.is_punct(";") {
                    self.expr()?;
                }
                self.expect(";")?;
                if word == "accept" {
                    StmtKind::Accept
                } else {
                    StmtKind::Reject
                }
            }
            "return" => {
                self.bump();
                let e = if self.is_punct(";") {
                    None
                } else {
                    Some(self.expr()?)
                };
                self.expect(";")?;
                StmtKind::Return(e)
            }
            "print" | "printn" => {
                self.bump();
                let mut args = vec![self.expr()?];
                while self.eat(",") {
                    args.push(self.expr()?);
                }
                self.expect(";")?;
                StmtKind::Print(args)
            }
            "case" => self.case()?,
            _ => {
                self.bump();
                if self.is_punct("(") {
                    let args = self.args()?;
                    self.expect(";")?;
                    StmtKind::Call { name: word, args }
                } else if self.eat("=") {
                    let attr = self.attr(&word, &pos)?;
                    let value = self.expr()?;
                    self.expect(";")?;
                    StmtKind::Assign { attr, value }
                } else if self.eat(".") {
                    let attr = self.attr(&word, &pos)?;
                    let mpos = self.pos();
                    let (m, _) = self.symbol()?;
                    let method = match m.as_str() {
                        "add" => Method::Add,
                        "delete" => Method::Delete,
                        "prepend" => Method::Prepend,
                        _ => return Err(Error::new(&mpos, format!("Unknown method `{m}`"))),
                    };
                    self.expect("(")?;
                    let arg = self.expr()?;
                    self.expect(")")?;
                    self.expect(";")?;
                    if let Some(msg) = method_mismatch(attr, method) {
                        return Err(Error::new(&mpos, msg));
                    }
                    StmtKind::Method { attr, method, arg }
                } else {
                    return self.unexpected("`(`, `=` or `.`");
                }
            }
        };
        Ok(Stmt { pos, kind })
    }

    /// An attribute named in an assignment or method call.
    fn attr(&self, name: &str, pos: &Pos) -> R<Attr> {
        if self.params.iter().any(|p| p == name) {
            return Err(Error::new(
                pos,
                "Assigning to function arguments is not supported",
            ));
        }
        let attr = Attr::from_name(name)
            .ok_or_else(|| Error::new(pos, format!("{name}: unknown attribute")))?;
        if !attr.writable() {
            return Err(Error::new(pos, format!("{name}: attribute is read-only")));
        }
        Ok(attr)
    }

    fn case(&mut self) -> R<StmtKind> {
        self.bump();
        let subject = self.expr()?;
        self.expect("{")?;
        self.enter()?;
        let mut arms: Vec<CaseArm> = Vec::new();
        while !self.eat("}") {
            let values = if self.eat_kw("else") {
                Vec::new()
            } else {
                let mut v = vec![self.primary()?];
                while self.eat(",") {
                    v.push(self.primary()?);
                }
                v
            };
            self.expect(":")?;
            let mut body = Vec::new();
            while !self.is_punct("}") && !self.arm_starts() {
                if self.eat(";") {
                    continue;
                }
                body.push(self.stmt()?);
            }
            arms.push(CaseArm { values, body });
        }
        self.leave();
        Ok(StmtKind::Case { subject, arms })
    }

    /// Whether the tokens ahead begin a new `case` arm (`value [, value]* :` or `else :`).
    fn arm_starts(&self) -> bool {
        let mut n = 0;
        loop {
            match (self.peek_at(n), self.peek_at(n + 1)) {
                (Tok::Sym(s), Tok::Punct(":")) if s == "else" => return true,
                (
                    Tok::Num(_) | Tok::Sym(_) | Tok::Ip4(_) | Tok::Ip6(_) | Tok::Str(_),
                    Tok::Punct(":"),
                ) => {
                    return true;
                }
                (Tok::Num(_) | Tok::Sym(_) | Tok::Str(_), Tok::Punct(",")) => n += 2,
                _ => return false,
            }
        }
    }

    fn args(&mut self) -> R<Vec<Expr>> {
        self.expect("(")?;
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                args.push(self.expr()?);
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        Ok(args)
    }

    // ---- expressions (BIRD 1.6 precedence: `&&`/`||` lowest and equal, then comparisons,
    //      then `+ -`, then `* /`, then `!`) ----

    fn expr(&mut self) -> R<Expr> {
        self.enter()?;
        let r = self.logic();
        self.leave();
        r
    }

    fn logic(&mut self) -> R<Expr> {
        self.chain(Self::comparison, &[("&&", BinOp::And), ("||", BinOp::Or)])
    }

    /// A left-associative run `next (op next)*` of one precedence level. Each operator
    /// deepens the tree by one, so it counts toward the nesting limit.
    fn chain(&mut self, next: fn(&mut Self) -> R<Expr>, ops: &[(&str, BinOp)]) -> R<Expr> {
        let mut lhs = next(self)?;
        let mut depth = 0;
        let result = loop {
            let Some(&(_, op)) = ops.iter().find(|(p, _)| self.is_punct(p)) else {
                break Ok(lhs);
            };
            self.bump();
            if let Err(e) = self.enter() {
                break Err(e);
            }
            depth += 1;
            match next(self) {
                Ok(rhs) => lhs = binary(op, lhs, rhs),
                Err(e) => break Err(e),
            }
        };
        self.nesting -= depth;
        result
    }

    fn comparison(&mut self) -> R<Expr> {
        let lhs = self.sum()?;
        let op = match self.peek() {
            Tok::Punct("=") => BinOp::Eq,
            Tok::Punct("!=") => BinOp::Ne,
            Tok::Punct("<") => BinOp::Lt,
            Tok::Punct(">") => BinOp::Gt,
            Tok::Punct("<=") => BinOp::Le,
            Tok::Punct(">=") => BinOp::Ge,
            Tok::Punct("~") => BinOp::Match,
            Tok::Punct("!~") => BinOp::NotMatch,
            _ => return Ok(lhs),
        };
        self.bump();
        let rhs = self.sum()?;
        Ok(binary(op, lhs, rhs))
    }

    fn sum(&mut self) -> R<Expr> {
        self.chain(Self::product, &[("+", BinOp::Add), ("-", BinOp::Sub)])
    }

    fn product(&mut self) -> R<Expr> {
        self.chain(Self::unary, &[("*", BinOp::Mul), ("/", BinOp::Div)])
    }

    fn unary(&mut self) -> R<Expr> {
        let pos = self.pos();
        if self.eat("!") {
            self.enter()?;
            let e = self.unary();
            self.leave();
            return Ok(Expr {
                pos,
                kind: ExprKind::Not(Box::new(e?)),
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> R<Expr> {
        let pos = self.pos();
        let kind = match self.peek().clone() {
            Tok::Num(n) => {
                self.bump();
                ExprKind::Int(
                    u32::try_from(n).map_err(|_| Error::new(&pos, "Number out of range"))?,
                )
            }
            Tok::Str(s) => {
                self.bump();
                ExprKind::Str(s)
            }
            Tok::Ip4(_) | Tok::Ip6(_) => {
                if matches!(self.peek_at(1), Tok::Punct("/")) {
                    ExprKind::Prefix(self.prefix()?)
                } else {
                    ExprKind::Ip(self.ip()?)
                }
            }
            Tok::Punct("(") => {
                self.bump();
                self.enter()?;
                let first = self.expr()?;
                let kind = if self.eat(",") {
                    let mut items = vec![first];
                    loop {
                        items.push(self.expr()?);
                        if !self.eat(",") {
                            break;
                        }
                    }
                    if items.len() > 3 {
                        return Err(Error::new(&pos, "Tuples have two or three members"));
                    }
                    // A constant community half must fit 16 bits (BIRD checks it here).
                    if items.len() == 2 {
                        for item in &items {
                            if let ExprKind::Int(n) = item.kind
                                && n > 0xFFFF
                            {
                                let msg = format!("Value {n} out of range (0-65535)");
                                return Err(Error::new(&item.pos, msg));
                            }
                        }
                    }
                    ExprKind::Tuple(items)
                } else {
                    first.kind
                };
                self.expect(")")?;
                self.leave();
                kind
            }
            Tok::Punct("[") => self.set()?,
            Tok::Quoted(s) => {
                self.bump();
                if self.is_punct("(") {
                    ExprKind::Call {
                        name: s,
                        args: self.args()?,
                    }
                } else if self.params.contains(&s) {
                    ExprKind::Var(s)
                } else {
                    return Err(Error::new(&pos, format!("{s}: unknown variable")));
                }
            }
            Tok::Sym(s) => {
                self.bump();
                match s.as_str() {
                    "true" => ExprKind::Bool(true),
                    "false" => ExprKind::Bool(false),
                    "defined" => {
                        self.expect("(")?;
                        let e = self.expr()?;
                        self.expect(")")?;
                        ExprKind::Defined(Box::new(e))
                    }
                    _ if self.is_punct("(") => ExprKind::Call {
                        name: s,
                        args: self.args()?,
                    },
                    _ if self.params.contains(&s) => ExprKind::Var(s),
                    _ => {
                        if let Some(src) = Source::from_name(&s) {
                            ExprKind::Source(src)
                        } else if let Some(a) = Attr::from_name(&s) {
                            ExprKind::Attr(a)
                        } else {
                            return Err(Error::new(
                                &pos,
                                format!("{s}: unknown attribute or variable"),
                            ));
                        }
                    }
                }
            }
            _ => return self.unexpected("an expression"),
        };
        Ok(Expr { pos, kind })
    }

    /// `[ … ]`: a path mask `[= … =]` or a set.
    fn set(&mut self) -> R<ExprKind> {
        self.bump();
        if self.eat("=") {
            let mut items = Vec::new();
            loop {
                match self.peek().clone() {
                    Tok::Punct("=") if matches!(self.peek_at(1), Tok::Punct("]")) => {
                        self.bump();
                        self.bump();
                        return Ok(ExprKind::PathMask(items));
                    }
                    Tok::Punct("*") => {
                        self.bump();
                        items.push(PathItem::AnySeq);
                    }
                    Tok::Punct("?") => {
                        self.bump();
                        items.push(PathItem::AnyOne);
                    }
                    Tok::Num(_) => items.push(PathItem::Asn(self.u32()?)),
                    _ => return self.unexpected("an AS number, `*`, `?` or `=]`"),
                }
            }
        }
        // BIRD 1.6 has no empty set (`set_items` and `fprefix_set` take one item or more).
        if self.is_punct("]") {
            return self.unexpected("a set item");
        }
        let mut items = Vec::new();
        self.enter()?;
        loop {
            let is_prefix = matches!(self.peek(), Tok::Ip4(_) | Tok::Ip6(_))
                && matches!(self.peek_at(1), Tok::Punct("/"));
            if is_prefix {
                let net = self.prefix()?;
                let len = net.prefix_len();
                let (lo, hi) = if self.eat("+") {
                    (len, net.max_prefix_len())
                } else if self.eat("-") {
                    (0, len)
                } else if self.is_punct("{") {
                    let pos = self.pos();
                    self.bump();
                    let lo = self.number()?;
                    self.expect(",")?;
                    let hi = self.number()?;
                    self.expect("}")?;
                    let max = u64::from(net.max_prefix_len());
                    if lo > hi || hi > max {
                        return Err(Error::new(&pos, "Invalid prefix pattern range"));
                    }
                    (lo as u8, hi as u8)
                } else {
                    (len, len)
                };
                items.push(SetItem::Prefix { net, lo, hi });
            } else {
                items.push(SetItem::Value(self.primary()?));
            }
            if self.eat("]") {
                break;
            }
            self.expect(",")?;
        }
        self.leave();
        Ok(ExprKind::Set(items))
    }
}

/// A binary expression sits where its left operand starts.
fn binary(op: BinOp, lhs: Expr, rhs: Expr) -> Expr {
    Expr {
        pos: lhs.pos.clone(),
        kind: ExprKind::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        },
    }
}

/// Methods exist only on the list attributes: `add`/`delete` on community lists, `prepend`
/// on the AS path.
fn method_mismatch(attr: Attr, method: Method) -> Option<&'static str> {
    let ok = match method {
        Method::Add | Method::Delete => {
            matches!(attr, Attr::BgpCommunity | Attr::BgpLargeCommunity)
        }
        Method::Prepend => attr == Attr::BgpPath,
    };
    (!ok).then_some("This method does not apply to this attribute")
}

#[cfg(test)]
mod tests {
    use super::super::check::check;
    use super::*;

    fn parse(text: &str) -> Result<Config, Error> {
        parse_str("t.cfg", text, Family::V4)
    }

    /// The error of `text` (parse or check), as `LINE:COL: message`.
    fn error(text: &str) -> String {
        let e = parse(text)
            .and_then(|c| check(&c).map(|_| c))
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"));
        format!("{}:{}: {}", e.pos.line, e.pos.col, e.msg)
    }

    const BGP: &str = "template bgp t { local as 64512; }\n";

    #[test]
    fn templates_auto_names_and_quoted_symbols() {
        let c = parse(&format!(
            "{BGP}protocol bgp 'Mesh_x-y' from t {{ neighbor 10.0.0.2 as 64512; passive on; }}\n\
             protocol kernel {{ learn; }}\nprotocol kernel {{ persist; }}\nprotocol device {{ }}"
        ))
        .unwrap();
        check(&c).unwrap();
        let protos = c.protocols();
        let names: Vec<&str> = protos.iter().map(|p| p.proto.name.as_str()).collect();
        assert_eq!(names, ["Mesh_x-y", "kernel1", "kernel2", "device1"]);
        // The template's options come first, the protocol's own after.
        let kinds: Vec<String> = protos[0]
            .options
            .iter()
            .map(|o| format!("{:?}", o.kind))
            .collect();
        assert_eq!(kinds[0], "LocalAs { address: None, asn: 64512 }");
        assert_eq!(kinds[2], "Passive(true)");
        assert_eq!(
            (protos[0].options[2].pos.line, protos[0].options[2].pos.col),
            (2, 62)
        );
    }

    /// `protocol bfd` and `bfd on` parse to typed views; a multihop BGP session with BFD
    /// needs its source address (BIRD 1.6 `bgp_check_config`); bad units and multipliers
    /// are refused.
    #[test]
    fn bfd_protocol_and_bgp_option() {
        use super::super::protocols::protocols;
        let text = "protocol bfd {\n\
             interface \"eth*\", -\"lo\" { min rx interval 100 ms; min tx interval 1 s; \
             multiplier 3; authentication meticulous keyed sha1; password \"k\" { id 2; }; };\n\
             multihop { interval 300 ms; authentication none; };\n\
             neighbor 10.0.0.9 local 10.0.0.1 multihop on;\n}\n\
             protocol bgp b { local as 64512; neighbor 10.0.0.2 as 64512; \
             source address 10.0.0.1; bfd on; }\n";
        let c = parse(text).unwrap();
        check(&c).unwrap();
        let p = protocols(&c).unwrap();
        assert!(p.bgp[0].bfd);
        let bfd = &p.bfd[0];
        assert_eq!(bfd.common.name, "bfd1");
        let (patterns, s) = bfd.interfaces[0];
        assert_eq!(patterns.len(), 2);
        assert_eq!(
            (s.min_rx, s.min_tx, s.multiplier),
            (Some(100_000), Some(1_000_000), Some(3))
        );
        assert_eq!(s.auth, Some(Some(BfdAuth::MeticulousKeyedSha1)));
        assert_eq!(s.passwords, [("k".to_string(), Some(2))]);
        let m = bfd.multihop.unwrap();
        assert_eq!(
            (m.min_rx, m.min_tx, m.auth),
            (Some(300_000), Some(300_000), Some(None))
        );
        assert!(matches!(
            bfd.neighbors[0],
            OptKind::BfdNeighbor {
                multihop: true,
                local: Some(_),
                ..
            }
        ));
        assert_eq!(
            error("protocol bgp b { local as 64512; neighbor 10.0.0.2 as 64512; bfd on; }"),
            "1:1: Multihop BGP with BFD requires specified source address"
        );
        assert!(error("protocol bfd { interface \"*\" { interval 100; }; }").contains("`ms`"));
        assert!(error("protocol bfd { multihop { multiplier 0; }; }").contains("Multiplier"));
    }

    #[test]
    fn statements_and_expressions_keep_positions() {
        let c = parse("filter f {\n  if net ~ 10.0.0.0/8 then\n    accept;\n}").unwrap();
        let ItemKind::Filter(f) = &c.items[0].kind else {
            panic!()
        };
        let StmtKind::If { cond, then, .. } = &f.body[0].kind else {
            panic!()
        };
        assert_eq!((f.body[0].pos.line, f.body[0].pos.col), (2, 3));
        assert_eq!((cond.pos.line, cond.pos.col), (2, 6));
        let ExprKind::Binary { rhs, .. } = &cond.kind else {
            panic!()
        };
        assert_eq!((rhs.pos.line, rhs.pos.col), (2, 12));
        assert_eq!((then.pos.line, then.pos.col), (3, 5));
    }

    #[test]
    fn syntax_errors_point_at_the_token() {
        assert_eq!(
            error("protocol device {\n  scan tme 2;\n}"),
            "2:8: syntax error, unexpected `tme`, expecting `time`"
        );
        assert_eq!(
            error("protocol device { frobnicate; }"),
            "1:19: Unknown option `frobnicate` in a device protocol"
        );
        assert_eq!(
            error("protocol ospf { }"),
            "1:10: Unsupported protocol type `ospf`"
        );
        assert_eq!(
            error("filter f { if net ~ 10.0.0.0/33 then accept; }"),
            "1:21: Invalid network prefix: 10.0.0.0/33."
        );
        assert_eq!(
            error("filter f { if net ~ 10.0.0.1/8 then accept; }"),
            "1:21: Invalid prefix: 10.0.0.1/8."
        );
        assert_eq!(
            error("filter f { if defined(bgp_nexthop) then accept; }"),
            "1:23: bgp_nexthop: unknown attribute or variable"
        );
        assert_eq!(
            error("filter f { net = 10.0.0.0/8; }"),
            "1:12: net: attribute is read-only"
        );
        assert_eq!(
            error("filter f { bgp_path.add(1); }"),
            "1:21: This method does not apply to this attribute"
        );
        assert_eq!(
            error("function local() { }"),
            "1:10: syntax error, `local` is a keyword and cannot be a name (quote it: 'local')"
        );
        assert_eq!(
            error("protocol kernel { import where net ~ 10.0.0.0/8; }"),
            "1:26: `where` filters are not supported"
        );
        assert_eq!(error("listen bgp port 70000;"), "1:17: Invalid port: 70000");
        assert_eq!(
            error("router id fd00::1;"),
            "1:11: syntax error, unexpected fd00::1, expecting an IPv4 address"
        );
        assert_eq!(
            error("protocol static { route fd00::/64 blackhole; }"),
            "1:25: IPv6 address in an IPv4 configuration"
        );
        assert_eq!(
            error("filter f { bgp_community.add((65536, 1)); }"),
            "1:31: Value 65536 out of range (0-65535)"
        );
        assert_eq!(
            error("filter f { if net ~ [ ] then accept; }"),
            "1:23: syntax error, unexpected `]`, expecting a set item"
        );
        assert_eq!(
            error("filter f { accept;"),
            "1:19: syntax error, unexpected end of file, expecting a statement"
        );
        assert!(
            parse_str(
                "t",
                "protocol static { route 10.0.0.0/8 blackhole; }",
                Family::V6
            )
            .is_err()
        );
    }

    #[test]
    fn semantic_errors_point_at_the_use() {
        assert_eq!(
            error("protocol kernel {\n  export filter nope;\n}"),
            "2:17: nope: no such filter"
        );
        assert_eq!(
            error("filter f { g(); accept; }"),
            "1:12: g: no such function"
        );
        // BIRD resolves symbols in one pass: a function must come before its caller.
        assert_eq!(
            error("filter f { g(); }\nfunction g() { }"),
            "1:12: g: no such function"
        );
        assert_eq!(
            error("function g(bool b) { }\nfilter f { g(true, false); }"),
            "2:12: g: takes 1 argument(s), 2 given"
        );
        assert_eq!(
            error("filter g { accept; }\nfilter f { g(); }"),
            "2:12: g: not a function"
        );
        assert_eq!(
            error(&format!(
                "{BGP}protocol bgp p from t {{ neighbor 10.0.0.1 as 1; }}\nprotocol bgp p from t {{ neighbor 10.0.0.2 as 1; }}"
            )),
            "3:1: p: symbol already defined"
        );
        assert_eq!(
            error("protocol bgp p from t { }"),
            "1:21: t: no such template"
        );
        assert_eq!(
            error("template kernel k { }\nprotocol bgp p from k { }"),
            "2:21: Inherited template has different protocol type"
        );
        assert_eq!(
            error(&format!("{BGP}protocol bgp p from t {{ }}")),
            "2:1: Neighbor must be configured"
        );
        assert_eq!(
            error("protocol bgp p { neighbor 10.0.0.1 as 1; }"),
            "1:1: Local AS number must be set"
        );
        assert_eq!(
            error(&format!(
                "{BGP}protocol bgp p from t {{ neighbor 10.0.0.1 as 1; rr client; }}"
            )),
            "2:1: Only internal neighbor can be RR client"
        );
        assert_eq!(
            error(&format!(
                "{BGP}protocol bgp p from t {{ neighbor 10.0.0.1 as 64512; gateway direct; }}"
            )),
            "2:1: Multihop BGP cannot use direct gateway mode"
        );
        let v6 = parse_str("t6", "protocol device { }", Family::V6).unwrap();
        assert_eq!(
            check(&v6).unwrap_err().to_string(),
            "t6:1:1: Router ID must be configured manually on IPv6 routers"
        );
    }

    #[test]
    fn hostile_nesting_is_refused_not_a_stack_overflow() {
        for text in [
            format!("filter f {{ if {}true then accept; }}", "(".repeat(100_000)),
            format!("filter f {{ if {}true then accept; }}", "!".repeat(100_000)),
            format!("filter f {{ krt_metric = 1{}; }}", " + 1".repeat(100_000)),
            format!("filter f {{ {} accept; }}", "if true then ".repeat(100_000)),
            format!(
                "filter f {{ if net ~ {}10.0.0.0/8 then accept; }}",
                "[ ".repeat(100_000)
            ),
        ] {
            assert!(
                error(&text).ends_with("Nesting too deep"),
                "{}",
                &text[..40]
            );
        }
    }

    #[test]
    fn includes_nest_to_a_limit() {
        let dir = std::env::temp_dir().join(format!("wren-birdparse.{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("loop.cfg"), "include \"loop.cfg\";\n").unwrap();
        let e = parse_file(&dir.join("loop.cfg"), Family::V4).unwrap_err();
        assert_eq!(e.msg, "Max include depth reached");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
