//! Plain-data views of a checked configuration's protocols, with BIRD 1.6's defaults filled
//! in (`bgp_proto_start`, `proto_config_new`, `krt_init_config`): what the conversion into
//! wren's own model reads, so it never walks option lists itself.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::ast::*;

/// Every protocol of a configuration, by type, in file order.
#[derive(Debug, Clone)]
pub struct Protocols<'c> {
    pub kernel: Vec<Kernel<'c>>,
    pub device: Vec<Device<'c>>,
    pub direct: Vec<Direct<'c>>,
    pub statics: Vec<Static<'c>>,
    pub bgp: Vec<Bgp<'c>>,
    pub bfd: Vec<Bfd<'c>>,
}

/// A `protocol bfd`: session options per interface pattern (first match decides), for
/// multihop sessions, and configured neighbors.
#[derive(Debug, Clone)]
pub struct Bfd<'c> {
    pub common: Common<'c>,
    pub interfaces: Vec<(&'c [IfacePattern], &'c BfdSession)>,
    pub multihop: Option<&'c BfdSession>,
    pub neighbors: Vec<&'c OptKind>,
}

/// Options every protocol has.
#[derive(Debug, Clone)]
pub struct Common<'c> {
    pub name: &'c str,
    pub pos: &'c Pos,
    pub description: Option<&'c str>,
    pub debug: Option<&'c Debug>,
    /// BIRD 1.6 default: `import all`.
    pub import: FilterRef,
    /// BIRD 1.6 default: `export none`.
    pub export: FilterRef,
}

#[derive(Debug, Clone)]
pub struct Kernel<'c> {
    pub common: Common<'c>,
    pub learn: bool,
    pub persist: bool,
    /// Seconds; BIRD 1.6 default 60.
    pub scan_time: u32,
    pub device_routes: bool,
    /// `merge paths on [limit N]`: ECMP into one kernel route.
    pub merge_paths: Option<Option<u32>>,
    pub table: Option<u32>,
    pub graceful_restart: bool,
}

#[derive(Debug, Clone)]
pub struct Device<'c> {
    pub common: Common<'c>,
    /// Seconds; BIRD 1.6 default 60.
    pub scan_time: u32,
}

#[derive(Debug, Clone)]
pub struct Direct<'c> {
    pub common: Common<'c>,
    /// In order, the first match decides; empty means every interface.
    pub interfaces: Vec<&'c IfacePattern>,
}

#[derive(Debug, Clone)]
pub struct Static<'c> {
    pub common: Common<'c>,
    pub routes: Vec<(IpNet, &'c RouteTarget)>,
}

/// How a BGP protocol treats NEXT_HOP on export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// BIRD's rules: own address to eBGP peers, kept on iBGP re-advertisement.
    Default,
    SelfAddress,
    Keep,
}

/// BIRD 1.6 graceful-restart modes (RFC 4724).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GracefulRestart {
    Off,
    /// Helper only: BIRD 1.6's default.
    Aware,
    On,
}

#[derive(Debug, Clone)]
pub struct Bgp<'c> {
    pub common: Common<'c>,
    pub local_as: u32,
    pub neighbor: IpAddr,
    /// Default 179.
    pub port: u16,
    pub peer_as: u32,
    pub source_address: Option<IpAddr>,
    /// TTL of our packets: 0 means directly connected (eBGP default), iBGP default 64.
    pub multihop: u8,
    pub ttl_security: bool,
    pub gateway: Gateway,
    pub next_hop: NextHop,
    pub add_paths_rx: bool,
    pub add_paths_tx: bool,
    pub graceful_restart: GracefulRestart,
    /// Seconds; default 120.
    pub graceful_restart_time: u32,
    /// Seconds; default 240.
    pub hold_time: u32,
    pub startup_hold_time: u32,
    /// Seconds; `None` means a third of the negotiated hold time.
    pub keepalive_time: Option<u32>,
    /// Seconds; defaults 5 and 120.
    pub connect_delay_time: u32,
    pub connect_retry_time: u32,
    /// Seconds; default 60,300.
    pub error_wait_time: (u32, u32),
    pub error_forget_time: u32,
    pub passive: bool,
    pub password: Option<&'c str>,
    pub rr_client: bool,
    pub rr_cluster_id: Option<Ipv4Addr>,
    /// How often our own AS may appear in a received path: absent means never, `allow
    /// local as` alone means any number of times (BIRD stores -1; here `u32::MAX`).
    pub allow_local_as: Option<u32>,
    pub import_limit: Option<u32>,
    /// `bfd on`: the session follows a BFD session (RFC 5882).
    pub bfd: bool,
}

impl Bgp<'_> {
    /// iBGP when both ends have the same AS (BIRD 1.6 `bgp_check_config`).
    pub fn internal(&self) -> bool {
        self.local_as == self.peer_as
    }
}

/// The typed protocols of a checked configuration. `None` only for a configuration that
/// [`super::check::check`] would refuse (a BGP protocol without neighbor or AS).
pub fn protocols(config: &Config) -> Option<Protocols<'_>> {
    let mut out = Protocols {
        kernel: Vec::new(),
        device: Vec::new(),
        direct: Vec::new(),
        statics: Vec::new(),
        bgp: Vec::new(),
        bfd: Vec::new(),
    };
    for r in config.protocols() {
        let common = common(&r);
        match r.proto.ty {
            ProtoType::Kernel => out.kernel.push(kernel(&r, common)),
            ProtoType::Device => out.device.push(Device {
                common,
                scan_time: scan_time(&r),
            }),
            ProtoType::Direct => out.direct.push(Direct {
                common,
                interfaces: r
                    .options
                    .iter()
                    .rev()
                    .find_map(|o| match &o.kind {
                        OptKind::Interface(p) => Some(p.iter().collect()),
                        _ => None,
                    })
                    .unwrap_or_default(),
            }),
            ProtoType::Static => out.statics.push(Static {
                common,
                routes: r
                    .options
                    .iter()
                    .filter_map(|o| match &o.kind {
                        OptKind::Route { prefix, target } => Some((*prefix, target)),
                        _ => None,
                    })
                    .collect(),
            }),
            ProtoType::Bgp => out.bgp.push(bgp(&r)?),
            ProtoType::Bfd => out.bfd.push(Bfd {
                common,
                interfaces: (r.options.iter())
                    .filter_map(|o| match &o.kind {
                        OptKind::BfdInterface(p, s) => Some((p.as_slice(), s)),
                        _ => None,
                    })
                    .collect(),
                multihop: r.options.iter().rev().find_map(|o| match &o.kind {
                    OptKind::BfdMultihop(s) => Some(s),
                    _ => None,
                }),
                neighbors: (r.options.iter())
                    .map(|o| &o.kind)
                    .filter(|k| matches!(k, OptKind::BfdNeighbor { .. }))
                    .collect(),
            }),
        }
    }
    Some(out)
}

fn common<'c>(r: &Resolved<'c>) -> Common<'c> {
    Common {
        name: &r.proto.name,
        pos: r.pos,
        description: r.options.iter().rev().find_map(|o| match &o.kind {
            OptKind::Description(d) => Some(d.as_str()),
            _ => None,
        }),
        debug: r.options.iter().rev().find_map(|o| match &o.kind {
            OptKind::Debug(d) => Some(d),
            _ => None,
        }),
        import: r
            .last(|o| match o {
                OptKind::Import(f) => Some(f.clone()),
                _ => None,
            })
            .unwrap_or(FilterRef::All),
        export: r
            .last(|o| match o {
                OptKind::Export(f) => Some(f.clone()),
                _ => None,
            })
            .unwrap_or(FilterRef::None),
    }
}

fn scan_time(r: &Resolved<'_>) -> u32 {
    r.last(|o| match o {
        OptKind::ScanTime(t) => Some(*t),
        _ => None,
    })
    .unwrap_or(60)
}

/// The last `on`/`off` value of a bool option picked by `pick`, default off.
fn flag(r: &Resolved<'_>, pick: impl Fn(&OptKind) -> Option<bool>) -> bool {
    r.last(pick).unwrap_or(false)
}

fn kernel<'c>(r: &Resolved<'c>, common: Common<'c>) -> Kernel<'c> {
    Kernel {
        common,
        learn: flag(r, |o| match o {
            OptKind::Learn(b) => Some(*b),
            _ => None,
        }),
        persist: flag(r, |o| match o {
            OptKind::Persist(b) => Some(*b),
            _ => None,
        }),
        scan_time: scan_time(r),
        device_routes: flag(r, |o| match o {
            OptKind::DeviceRoutes(b) => Some(*b),
            _ => None,
        }),
        merge_paths: r
            .last(|o| match o {
                OptKind::MergePaths { on, limit } => Some(on.then_some(*limit)),
                _ => None,
            })
            .flatten(),
        table: r.last(|o| match o {
            OptKind::KernelTable(t) => Some(*t),
            _ => None,
        }),
        graceful_restart: flag(r, |o| match o {
            OptKind::GracefulRestart(b) => Some(*b),
            _ => None,
        }),
    }
}

/// One BGP protocol's options; `None` without `local as` or `neighbor`.
pub fn bgp<'c>(r: &Resolved<'c>) -> Option<Bgp<'c>> {
    let local_as = r.last(|o| match o {
        OptKind::LocalAs { asn, .. } => Some(*asn),
        _ => None,
    })?;
    let (neighbor, port, peer_as) = r.last(|o| match o {
        OptKind::Neighbor { address, port, asn } => Some((*address, *port, *asn)),
        _ => None,
    })?;
    let internal = local_as == peer_as;
    let multihop = r
        .last(|o| match o {
            OptKind::Multihop(n) => Some(n.unwrap_or(64)),
            OptKind::Direct => Some(0),
            _ => None,
        })
        .unwrap_or(if internal { 64 } else { 0 });
    let time = |pick: fn(&OptKind) -> Option<u32>, default: u32| r.last(pick).unwrap_or(default);
    let add_paths = r
        .last(|o| match o {
            OptKind::AddPaths { rx, tx } => Some((*rx, *tx)),
            _ => None,
        })
        .unwrap_or((false, false));
    Some(Bgp {
        common: common(r),
        local_as,
        neighbor,
        port: port.unwrap_or(179),
        peer_as,
        // `source address` and `local IP as` both set it; the later statement wins.
        source_address: r.last(|o| match o {
            OptKind::SourceAddress(a) => Some(*a),
            OptKind::LocalAs {
                address: Some(a), ..
            } => Some(*a),
            _ => None,
        }),
        multihop,
        ttl_security: flag(r, |o| match o {
            OptKind::TtlSecurity(b) => Some(*b),
            _ => None,
        }),
        gateway: r
            .last(|o| match o {
                OptKind::Gateway(g) => Some(*g),
                _ => None,
            })
            .unwrap_or(if multihop > 0 {
                Gateway::Recursive
            } else {
                Gateway::Direct
            }),
        next_hop: r
            .last(|o| match o {
                OptKind::NextHopSelf => Some(NextHop::SelfAddress),
                OptKind::NextHopKeep => Some(NextHop::Keep),
                _ => None,
            })
            .unwrap_or(NextHop::Default),
        add_paths_rx: add_paths.0,
        add_paths_tx: add_paths.1,
        graceful_restart: r
            .last(|o| match o {
                OptKind::GracefulRestart(true) => Some(GracefulRestart::On),
                OptKind::GracefulRestart(false) => Some(GracefulRestart::Off),
                OptKind::GracefulRestartAware => Some(GracefulRestart::Aware),
                _ => None,
            })
            .unwrap_or(GracefulRestart::Aware),
        graceful_restart_time: time(
            |o| match o {
                OptKind::GracefulRestartTime(t) => Some(*t),
                _ => None,
            },
            120,
        ),
        hold_time: time(
            |o| match o {
                OptKind::HoldTime(t) => Some(*t),
                _ => None,
            },
            240,
        ),
        startup_hold_time: time(
            |o| match o {
                OptKind::StartupHoldTime(t) => Some(*t),
                _ => None,
            },
            240,
        ),
        keepalive_time: r.last(|o| match o {
            OptKind::KeepaliveTime(t) => Some(*t),
            _ => None,
        }),
        connect_delay_time: time(
            |o| match o {
                OptKind::ConnectDelayTime(t) => Some(*t),
                _ => None,
            },
            5,
        ),
        connect_retry_time: time(
            |o| match o {
                OptKind::ConnectRetryTime(t) => Some(*t),
                _ => None,
            },
            120,
        ),
        error_wait_time: r
            .last(|o| match o {
                OptKind::ErrorWaitTime(a, b) => Some((*a, *b)),
                _ => None,
            })
            .unwrap_or((60, 300)),
        error_forget_time: time(
            |o| match o {
                OptKind::ErrorForgetTime(t) => Some(*t),
                _ => None,
            },
            300,
        ),
        passive: flag(r, |o| match o {
            OptKind::Passive(b) => Some(*b),
            _ => None,
        }),
        password: r.options.iter().rev().find_map(|o| match &o.kind {
            OptKind::Password(p) => Some(p.as_str()),
            _ => None,
        }),
        rr_client: r
            .last(|o| matches!(o, OptKind::RrClient).then_some(()))
            .is_some(),
        rr_cluster_id: r.last(|o| match o {
            OptKind::RrClusterId(id) => Some(*id),
            _ => None,
        }),
        allow_local_as: r
            .last(|o| match o {
                OptKind::AllowLocalAs(n) => Some(Some(n.unwrap_or(u32::MAX))),
                _ => None,
            })
            .flatten(),
        import_limit: r.last(|o| match o {
            OptKind::ImportLimit(n) => Some(*n),
            _ => None,
        }),
        bfd: flag(r, |o| match o {
            OptKind::Bfd(b) => Some(*b),
            _ => None,
        }),
    })
}
