//! The typed syntax tree of BIRD 1.6's configuration language, as far as Calico's confd renders
//! it (contract §2.10). Every statement and expression keeps where it was written, so a later
//! check or the conversion into wren's model can point at the exact spot.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::IpNet;

/// A place in a configuration file: 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// The address family a configuration is for: BIRD 1.6 is two programs, `bird` (IPv4) and
/// `bird6` (IPv6), and each accepts only its own family's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// A whole configuration: the main file with every include spliced in, in file order.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main file.
    pub file: Arc<str>,
    pub family: Family,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub pos: Pos,
    pub kind: ItemKind,
}

#[derive(Debug, Clone)]
pub enum ItemKind {
    RouterId(Ipv4Addr),
    /// `listen bgp [address A] [port N]`.
    Listen {
        address: Option<IpAddr>,
        port: Option<u16>,
    },
    /// `log TARGET all|{classes}`: kept for completeness, wren logs to stderr.
    Log {
        target: LogTarget,
        classes: Vec<String>,
    },
    /// `debug protocols …` at top level.
    DebugProtocols(Debug),
    Function(Function),
    Filter(Filter),
    Template(Proto),
    Protocol(Proto),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    Syslog(Option<String>),
    File(String),
}

/// `function NAME(TYPE ARG, …) { … }`.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub params: Vec<Param>,
    pub body: Vec<Stmt>,
}

#[derive(Debug, Clone)]
pub struct Param {
    pub pos: Pos,
    pub ty: String,
    pub name: String,
}

/// `filter NAME { … }`.
#[derive(Debug, Clone)]
pub struct Filter {
    pub name: String,
    pub body: Vec<Stmt>,
}

/// The protocol types Calico uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoType {
    Kernel,
    Device,
    Direct,
    Static,
    Bgp,
    Bfd,
}

impl ProtoType {
    pub fn keyword(self) -> &'static str {
        match self {
            ProtoType::Kernel => "kernel",
            ProtoType::Device => "device",
            ProtoType::Direct => "direct",
            ProtoType::Static => "static",
            ProtoType::Bgp => "bgp",
            ProtoType::Bfd => "bfd",
        }
    }
}

/// A `protocol` or `template` block. For a protocol without a name, the parser assigns BIRD's
/// automatic one (`kernel1`, `static1`, …) and sets `auto_named`.
#[derive(Debug, Clone)]
pub struct Proto {
    pub ty: ProtoType,
    pub name: String,
    pub auto_named: bool,
    pub from: Option<(String, Pos)>,
    pub options: Vec<Opt>,
}

#[derive(Debug, Clone)]
pub struct Opt {
    pub pos: Pos,
    pub kind: OptKind,
}

/// Which side of a `debug` statement: `all`, `off`, or a list of classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Debug {
    All,
    Off,
    Classes(Vec<String>),
}

/// An `import`/`export` clause.
#[derive(Debug, Clone)]
pub enum FilterRef {
    All,
    None,
    Named(String, Pos),
    Inline(Vec<Stmt>),
}

/// One interface pattern of `interface …`; `-"x"` excludes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfacePattern {
    pub exclude: bool,
    pub glob: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    Blackhole,
    Unreachable,
    Prohibit,
    Via(IpAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gateway {
    Direct,
    Recursive,
}

/// Protocol options. Options that are `on`/`off` carry the bool (BIRD's bare form means on).
#[derive(Debug, Clone)]
pub enum OptKind {
    Debug(Debug),
    Description(String),
    Import(FilterRef),
    Export(FilterRef),
    // kernel
    Learn(bool),
    Persist(bool),
    ScanTime(u32),
    DeviceRoutes(bool),
    MergePaths {
        on: bool,
        limit: Option<u32>,
    },
    KernelTable(u32),
    // kernel and bgp
    GracefulRestart(bool),
    /// bgp `graceful restart aware`: helper only (BIRD 1.6's default).
    GracefulRestartAware,
    // direct
    Interface(Vec<IfacePattern>),
    // static
    Route {
        prefix: IpNet,
        target: RouteTarget,
    },
    // bgp
    LocalAs {
        address: Option<IpAddr>,
        asn: u32,
    },
    Neighbor {
        address: IpAddr,
        port: Option<u16>,
        asn: u32,
    },
    /// `multihop [N]`; bare means 64.
    Multihop(Option<u8>),
    /// `direct`: the neighbor is directly connected (no multihop).
    Direct,
    TtlSecurity(bool),
    Gateway(Gateway),
    NextHopSelf,
    NextHopKeep,
    AddPaths {
        rx: bool,
        tx: bool,
    },
    GracefulRestartTime(u32),
    ConnectDelayTime(u32),
    ConnectRetryTime(u32),
    ErrorWaitTime(u32, u32),
    ErrorForgetTime(u32),
    HoldTime(u32),
    StartupHoldTime(u32),
    KeepaliveTime(u32),
    SourceAddress(IpAddr),
    Passive(bool),
    Password(String),
    RrClient,
    RrClusterId(Ipv4Addr),
    AllowLocalAs(Option<u32>),
    ImportLimit(u32),
    /// bgp `bfd on|off` (RFC 5882).
    Bfd(bool),
    // bfd
    /// `interface PATTERNS { SESSION };`
    BfdInterface(Vec<IfacePattern>, BfdSession),
    /// `multihop { SESSION };`
    BfdMultihop(BfdSession),
    /// `neighbor IP [local IP] [dev "IF"] [multihop on|off];`
    BfdNeighbor {
        address: IpAddr,
        local: Option<IpAddr>,
        dev: Option<String>,
        multihop: bool,
    },
}

/// BFD session options of a `protocol bfd` block (BIRD's `bfd_iface_opt`); intervals in
/// microseconds. Unset ones keep BIRD's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BfdSession {
    pub min_rx: Option<u32>,
    pub min_tx: Option<u32>,
    pub idle_tx: Option<u32>,
    pub multiplier: Option<u8>,
    pub passive: Option<bool>,
    /// `authentication none` is `Some(None)`.
    pub auth: Option<Option<crate::config::BfdAuth>>,
    /// `password "KEY" [{ id N; }]`, in order.
    pub passwords: Vec<(String, Option<u8>)>,
}

/// Filter statements.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub pos: Pos,
    pub kind: StmtKind,
}

#[derive(Debug, Clone)]
pub enum StmtKind {
    If {
        cond: Expr,
        then: Box<Stmt>,
        els: Option<Box<Stmt>>,
    },
    /// `{ … }` after `then` or `else`.
    Block(Vec<Stmt>),
    Accept,
    Reject,
    Return(Option<Expr>),
    Print(Vec<Expr>),
    /// A function called as a statement.
    Call {
        name: String,
        args: Vec<Expr>,
    },
    Assign {
        attr: Attr,
        value: Expr,
    },
    /// `attr.add(x)`, `attr.delete(x)`, `bgp_path.prepend(n)`.
    Method {
        attr: Attr,
        method: Method,
        arg: Expr,
    },
    Case {
        subject: Expr,
        arms: Vec<CaseArm>,
    },
}

#[derive(Debug, Clone)]
pub struct CaseArm {
    /// Empty for the `else:` arm.
    pub values: Vec<Expr>,
    pub body: Vec<Stmt>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Add,
    Delete,
    Prepend,
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub pos: Pos,
    pub kind: ExprKind,
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    /// BIRD's integers are 32 bits.
    Int(u32),
    Bool(bool),
    Str(String),
    Ip(IpAddr),
    Prefix(IpNet),
    /// `(a, b)` (a community) or `(a, b, c)` (a large community).
    Tuple(Vec<Expr>),
    /// `[ … ]`.
    Set(Vec<SetItem>),
    /// `[= 65000 * =]`.
    PathMask(Vec<PathItem>),
    /// `RTS_BGP` and friends.
    Source(Source),
    Attr(Attr),
    /// A function parameter.
    Var(String),
    Call {
        name: String,
        args: Vec<Expr>,
    },
    Defined(Box<Expr>),
    Not(Box<Expr>),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    And,
    Or,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Match,
    NotMatch,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Eq => "=",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Gt => ">",
            BinOp::Le => "<=",
            BinOp::Ge => ">=",
            BinOp::Match => "~",
            BinOp::NotMatch => "!~",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

/// One element of a `[ … ]` set.
#[derive(Debug, Clone)]
pub enum SetItem {
    /// `P` (exactly P), `P+`, `P-`, `P{lo,hi}`: prefixes inside `net` whose length is in lo..=hi.
    Prefix { net: IpNet, lo: u8, hi: u8 },
    /// A constant: number, source, pair, string.
    Value(Expr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathItem {
    Asn(u32),
    /// `*`: any sequence of ASes.
    AnySeq,
    /// `?`: exactly one AS.
    AnyOne,
}

/// Route sources (BIRD 1.6 `RTS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Dummy,
    Static,
    Inherit,
    Device,
    StaticDevice,
    Redirect,
    Rip,
    Ospf,
    OspfIa,
    OspfExt1,
    OspfExt2,
    Bgp,
    Pipe,
    Babel,
}

impl Source {
    pub fn from_name(s: &str) -> Option<Source> {
        Some(match s {
            "RTS_DUMMY" => Source::Dummy,
            "RTS_STATIC" => Source::Static,
            "RTS_INHERIT" => Source::Inherit,
            "RTS_DEVICE" => Source::Device,
            "RTS_STATIC_DEVICE" => Source::StaticDevice,
            "RTS_REDIRECT" => Source::Redirect,
            "RTS_RIP" => Source::Rip,
            "RTS_OSPF" => Source::Ospf,
            "RTS_OSPF_IA" => Source::OspfIa,
            "RTS_OSPF_EXT1" => Source::OspfExt1,
            "RTS_OSPF_EXT2" => Source::OspfExt2,
            "RTS_BGP" => Source::Bgp,
            "RTS_PIPE" => Source::Pipe,
            "RTS_BABEL" => Source::Babel,
            _ => return None,
        })
    }
}

/// Route attributes a filter may read (and, where [`Attr::writable`], write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    Net,
    Source,
    Ifname,
    Gw,
    From,
    Preference,
    BgpNextHop,
    BgpPath,
    BgpLocalPref,
    BgpMed,
    BgpOrigin,
    BgpCommunity,
    BgpLargeCommunity,
    KrtMetric,
    /// Calico's BIRD fork: the tunnel device a kernel route leaves through.
    KrtTunnel,
}

impl Attr {
    pub fn from_name(s: &str) -> Option<Attr> {
        Some(match s {
            "net" => Attr::Net,
            "source" => Attr::Source,
            "ifname" => Attr::Ifname,
            "gw" => Attr::Gw,
            "from" => Attr::From,
            "preference" => Attr::Preference,
            "bgp_next_hop" => Attr::BgpNextHop,
            "bgp_path" => Attr::BgpPath,
            "bgp_local_pref" => Attr::BgpLocalPref,
            "bgp_med" => Attr::BgpMed,
            "bgp_origin" => Attr::BgpOrigin,
            "bgp_community" => Attr::BgpCommunity,
            "bgp_large_community" => Attr::BgpLargeCommunity,
            "krt_metric" => Attr::KrtMetric,
            "krt_tunnel" => Attr::KrtTunnel,
            _ => return None,
        })
    }

    /// BIRD 1.6 lets filters write these (the rest are read-only route fields).
    pub fn writable(self) -> bool {
        !matches!(self, Attr::Net | Attr::Source | Attr::Ifname)
    }
}

/// A protocol with its template's options in front of its own (later options win), which is
/// how BIRD 1.6 applies `from TEMPLATE`.
#[derive(Debug, Clone)]
pub struct Resolved<'a> {
    pub pos: &'a Pos,
    pub proto: &'a Proto,
    pub options: Vec<&'a Opt>,
}

impl Resolved<'_> {
    /// The last option `pick` accepts: BIRD lets a later statement override an earlier one.
    pub fn last<T>(&self, pick: impl Fn(&OptKind) -> Option<T>) -> Option<T> {
        self.options.iter().rev().find_map(|o| pick(&o.kind))
    }
}

impl Config {
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.items.iter().find_map(|i| match &i.kind {
            ItemKind::Function(f) if f.name == name => Some(f),
            _ => None,
        })
    }

    pub fn filter(&self, name: &str) -> Option<&Filter> {
        self.items.iter().find_map(|i| match &i.kind {
            ItemKind::Filter(f) if f.name == name => Some(f),
            _ => None,
        })
    }

    pub fn template(&self, name: &str) -> Option<&Proto> {
        self.items.iter().find_map(|i| match &i.kind {
            ItemKind::Template(t) if t.name == name => Some(t),
            _ => None,
        })
    }

    pub fn router_id(&self) -> Option<Ipv4Addr> {
        self.items.iter().find_map(|i| match i.kind {
            ItemKind::RouterId(id) => Some(id),
            _ => None,
        })
    }

    /// Every `protocol` in file order, with template options resolved (a template may itself
    /// come `from` another one).
    pub fn protocols(&self) -> Vec<Resolved<'_>> {
        self.items
            .iter()
            .filter_map(|i| match &i.kind {
                ItemKind::Protocol(p) => Some(Resolved {
                    pos: &i.pos,
                    proto: p,
                    options: self.options_of(p, 0),
                }),
                _ => None,
            })
            .collect()
    }

    fn options_of<'a>(&'a self, p: &'a Proto, depth: usize) -> Vec<&'a Opt> {
        let mut out = match (&p.from, depth < 8) {
            (Some((t, _)), true) => self
                .template(t)
                .map(|t| self.options_of(t, depth + 1))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        out.extend(p.options.iter());
        out
    }
}
