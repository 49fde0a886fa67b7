//! A checked BIRD configuration as wren's model: the settings and protocols map one to one
//! (router id, `listen bgp`, the kernel protocol, every `protocol bgp` as a peer), and what
//! Calico expresses in filters (blocks, services, pools, communities) is found by running the
//! filters ([`super::probe`]) and checked against the model. Every statement takes effect or
//! is refused at its place. Accepted with nothing to carry, because wren does the job without
//! being told: `scan time` (kernel, device: wren follows the kernel's notifications), the
//! `direct` protocol (wren reads connected subnets from the kernel to resolve next hops),
//! and `debug` other than `debug all` (which raises the log level to debug). A BGP protocol's
//! `description` and how its filters were written are kept for `show protocols all`.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::ast::{self, FilterRef, ItemKind, LogTarget, OptKind, Resolved, RouteTarget};
use super::probe::{Clause, PeerClauses, Prober};
use super::protocols::{self, Bgp, GracefulRestart, NextHop};
use super::{Error, Family, Pos};
use super::{bgpfilter, bgpfilter_probe};
use crate::config::{
    AddPaths, AddressFamily, BfdOptions, Config, FilterForm, Item, KernelConfig, Listen, LogLevel,
    NextHopMode, Peer, PeerBfd, PeerDefaults, StaticRoute, validate,
};

/// The AS of a configuration without BGP protocols: no session ever sends it.
const NO_BGP_ASN: u32 = 64512;

/// BIRD 1.6's ECMP limit for `merge paths on` without `limit` (`KRT_DEFAULT_ECMP_LIMIT`).
const MERGE_PATHS_LIMIT: usize = 16;

/// BIRD 1.6's `graceful restart wait` default: how long the kernel protocol waits for the
/// peers' End-of-RIB after a restart before it prunes (contract §6.4).
const GRACEFUL_RESTART_WAIT: u16 = 240;

/// The model of a checked configuration.
pub fn convert(config: &ast::Config) -> Result<Config, Error> {
    let start = Pos {
        file: config.file.clone(),
        line: 1,
        col: 1,
    };
    let (router_id, id_pos) = config
        .items
        .iter()
        .find_map(|i| match i.kind {
            ItemKind::RouterId(id) => Some((id, i.pos.clone())),
            _ => None,
        })
        .ok_or_else(|| {
            Error::new(
                &start,
                "no `router id`: wren does not pick one from an interface; write it",
            )
        })?;
    let (listen, mut log_level) = globals(config)?;
    let typed = protocols::protocols(config)
        .ok_or_else(|| Error::new(&start, "a BGP protocol without neighbor or local AS"))?;
    let resolved: HashMap<&str, Resolved<'_>> = (config.protocols().into_iter())
        .map(|r| (r.proto.name.as_str(), r))
        .collect();
    for r in resolved.values() {
        raise(
            &mut log_level,
            r.last(|o| match o {
                OptKind::Debug(d) => Some(d.clone()),
                _ => None,
            }),
        );
    }
    let (kernel, max_paths, kernel_clause) = match typed.kernel.as_slice() {
        [] => (
            KernelConfig {
                enabled: false,
                learn: false,
                ..KernelConfig::default()
            },
            1,
            None,
        ),
        [k] => kernel(k, resolved.get(k.common.name))?,
        [_, second, ..] => {
            return Err(Error::new(
                second.common.pos,
                "a second kernel protocol: wren writes one routing table",
            ));
        }
    };
    let (statics, vias) = statics(&typed.statics, &resolved)?;
    let asn = node_asn(config, &typed.bgp).unwrap_or(NO_BGP_ASN);
    let sessions = sessions(&typed.bgp, &typed.bfd, &resolved, asn)?;
    let filters = bgpfilter::filters(config)?;
    bgpfilter_probe::check(config, &filters)?;

    let static_routes: Vec<StaticRoute> = vias.iter().map(|(r, _)| *r).collect();
    let prober = Prober::new(config, kernel_clause, sessions.clauses, statics, vias)?;
    let facts = prober.facts()?;
    let model = Config {
        router_id,
        asn,
        listen,
        originate: facts.originate.iter().map(|(n, _)| *n).collect(),
        services: facts.services.iter().map(|(n, _)| *n).collect(),
        pools: facts.pools.iter().map(|(p, _)| p.clone()).collect(),
        communities: facts.communities.iter().map(|(c, _)| c.clone()).collect(),
        // BIRD: a reflector without `rr cluster id` uses its router id (RFC 4456 §7).
        cluster_id: (sessions.cluster_id.map(|(id, _)| id))
            .or(sessions.rr_clients.then_some(router_id)),
        max_paths,
        // `bird` and `bird6` share the node's table, a family each.
        kernel: KernelConfig {
            family: Some(AddressFamily::from(config.family)),
            ..kernel
        },
        log_level,
        metrics: None,
        peers: sessions.peers,
        filters,
        static_routes,
        normal_route_priority: facts.normal_route_priority,
    };
    prober.check(&model, &facts.connected)?;

    // Where each item of the model was written, for the model's own checks.
    let mut places: Vec<(Item, Pos)> = vec![(Item::Setting("router_id"), id_pos)];
    places.extend(
        typed
            .bgp
            .first()
            .map(|b| (Item::Setting("asn"), b.common.pos.clone())),
    );
    places.extend(sessions.places);
    places.extend(indexed(&facts.originate, Item::Originate));
    places.extend(indexed(&facts.services, Item::Service));
    places.extend(indexed(&facts.pools, Item::Pool));
    places.extend(indexed(&facts.communities, |i| Item::Communities(i, None)));
    places.extend(indexed(prober.vias(), Item::StaticRoute));
    validate::check(&model).map_err(|(item, msg)| {
        let general = match item {
            Item::Peer(i, Some(_)) => Item::Peer(i, None),
            Item::Communities(i, Some(_)) => Item::Communities(i, None),
            other => other,
        };
        let at = (places.iter())
            .find(|(i, _)| *i == item || *i == general)
            .map_or(&start, |(_, p)| p);
        Error::new(at, msg)
    })?;
    Ok(model)
}

/// The model's items of one kind with their places.
fn indexed<'a, T>(
    list: &'a [(T, Pos)],
    item: impl Fn(usize) -> Item + 'a,
) -> impl Iterator<Item = (Item, Pos)> + 'a {
    (list.iter().enumerate()).map(move |(i, (_, p))| (item(i), p.clone()))
}

/// Blackholes and routes through a gateway, each with its place.
type Statics = (Vec<(IpNet, Pos)>, Vec<(StaticRoute, Pos)>);

/// The static protocols' routes: blackholes (blocks and service ranges, told apart by the
/// filters), and routes through a gateway (Calico's `reachableBy`).
fn statics(
    list: &[protocols::Static<'_>],
    resolved: &HashMap<&str, Resolved<'_>>,
) -> Result<Statics, Error> {
    let mut out = Vec::new();
    let mut vias = Vec::new();
    for s in list {
        let r = resolved.get(s.common.name);
        if !matches!(s.common.import, FilterRef::All) {
            return Err(Error::new(
                opt_pos(r, s.common.pos, |o| matches!(o, OptKind::Import(_))),
                "a static protocol's import filter: wren originates every static route",
            ));
        }
        for o in r.iter().flat_map(|r| &r.options) {
            match &o.kind {
                OptKind::Route {
                    prefix,
                    target: RouteTarget::Blackhole,
                } => out.push((prefix.trunc(), o.pos.clone())),
                OptKind::Route {
                    prefix,
                    target: RouteTarget::Via(via),
                } => vias.push((
                    StaticRoute {
                        prefix: prefix.trunc(),
                        via: *via,
                    },
                    o.pos.clone(),
                )),
                OptKind::Route { .. } => {
                    return Err(Error::new(
                        &o.pos,
                        "a static `unreachable` or `prohibit` route: wren's model carries \
                         blackholes (blocks and service ranges) and routes via a gateway \
                         (reachableBy)",
                    ));
                }
                _ => {}
            }
        }
    }
    Ok((out, vias))
}

/// The BGP protocols as peers, with the clauses to probe and the places of the peers.
struct Sessions<'c> {
    peers: Vec<Peer>,
    clauses: Vec<PeerClauses<'c>>,
    places: Vec<(Item, Pos)>,
    cluster_id: Option<(std::net::Ipv4Addr, &'c Pos)>,
    /// Some peer is a route reflector client.
    rr_clients: bool,
}

fn sessions<'c>(
    bgp: &[Bgp<'c>],
    bfd: &[protocols::Bfd<'c>],
    resolved: &HashMap<&str, Resolved<'c>>,
    asn: u32,
) -> Result<Sessions<'c>, Error> {
    let mut out = Sessions {
        peers: Vec::new(),
        clauses: Vec::new(),
        places: Vec::new(),
        cluster_id: None,
        rr_clients: false,
    };
    for b in bgp {
        let Some(r) = resolved.get(b.common.name) else {
            continue;
        };
        refuse_uncarried(b, r)?;
        if let Some(id) = b.rr_cluster_id {
            let here = opt_pos(Some(r), r.pos, |o| matches!(o, OptKind::RrClusterId(_)));
            match out.cluster_id {
                Some((other, at)) if other != id => {
                    return Err(Error::new(
                        here,
                        format!("rr cluster id {id}: wren has one cluster id, {other} (at {at})"),
                    ));
                }
                _ => out.cluster_id = Some((id, here)),
            }
        }
        out.rr_clients |= b.rr_client;
        let ibgp = b.peer_as == b.local_as;
        let (import, import_names) = clause(&b.common.import, r, true, ibgp)?;
        let (export, export_names) = clause(&b.common.export, r, false, ibgp)?;
        let mut settings = settings(b, r)?;
        settings.bfd = bfd_options(b, bfd, r)?;
        settings.local_asn = (b.local_as != asn).then_some(b.local_as);
        settings.filters = bgpfilter::merge_names(import_names, export_names);
        out.places
            .push((Item::Peer(out.peers.len(), None), r.pos.clone()));
        out.peers.push(Peer {
            name: b.common.name.to_string(),
            address: b.neighbor,
            port: b.port,
            asn: b.peer_as,
            settings,
        });
        out.clauses.push(PeerClauses {
            name: b.common.name,
            internal: b.internal(),
            import,
            export,
        });
    }
    Ok(out)
}

/// `listen bgp`, `log` and top-level `debug protocols`.
/// `bird` listens on IPv4's wildcard and `bird6` on IPv6's alone, so the two share port 179
/// on one node.
fn globals(config: &ast::Config) -> Result<(Listen, LogLevel), Error> {
    let mut listen = match config.family {
        Family::V4 => Listen {
            addresses: vec![IpAddr::from([0u8; 4])],
            ..Listen::default()
        },
        Family::V6 => Listen {
            v6_only: true,
            ..Listen::default()
        },
    };
    let mut level = LogLevel::Info;
    for item in &config.items {
        match &item.kind {
            ItemKind::Listen { address, port } => {
                if let Some(a) = address {
                    listen.addresses = vec![*a];
                }
                if let Some(p) = port {
                    listen.port = *p;
                }
            }
            ItemKind::Log { target, .. } if *target != LogTarget::Stderr => {
                return Err(Error::new(
                    &item.pos,
                    "log to syslog or a file: wren logs to stderr (svlogd or journald keep it)",
                ));
            }
            ItemKind::DebugProtocols(d) => raise(&mut level, Some(d.clone())),
            _ => {}
        }
    }
    Ok((listen, level))
}

/// `debug all` anywhere makes wren log at debug level; BIRD's `debug { states, … }` is what
/// wren logs at info.
fn raise(level: &mut LogLevel, debug: Option<ast::Debug>) {
    if debug == Some(ast::Debug::All) {
        *level = LogLevel::Debug;
    }
}

/// The kernel protocol: learn, the table, ECMP, the graceful-restart wait and the export
/// filter (probed). wren follows the kernel's notifications, so `scan time` needs nothing.
fn kernel<'c>(
    k: &protocols::Kernel<'c>,
    r: Option<&Resolved<'c>>,
) -> Result<(KernelConfig, usize, Option<Clause<'c>>), Error> {
    if !k.persist {
        return Err(Error::new(
            k.common.pos,
            "a kernel protocol without `persist`: wren always leaves its routes in the kernel \
             when it stops",
        ));
    }
    if k.device_routes {
        return Err(Error::new(
            opt_pos(r, k.common.pos, |o| matches!(o, OptKind::DeviceRoutes(_))),
            "`device routes`: wren writes no device routes",
        ));
    }
    let learn = match k.common.import {
        FilterRef::All => k.learn,
        FilterRef::None => false,
        _ => {
            return Err(Error::new(
                opt_pos(r, k.common.pos, |o| matches!(o, OptKind::Import(_))),
                "a kernel import filter: wren learns every other protocol's route",
            ));
        }
    };
    let export_pos = opt_pos(r, k.common.pos, |o| matches!(o, OptKind::Export(_)));
    let clause = match &k.common.export {
        FilterRef::None => None,
        f => Some(Clause {
            filter: f.clone(),
            pos: export_pos,
        }),
    };
    let kernel = KernelConfig {
        enabled: clause.is_some(),
        table: k.table.unwrap_or(254),
        startup_wait: if k.graceful_restart {
            GRACEFUL_RESTART_WAIT
        } else {
            0
        },
        learn,
        ..KernelConfig::default()
    };
    let max_paths = match k.merge_paths {
        None => 1,
        Some(None) => MERGE_PATHS_LIMIT,
        Some(Some(n)) => n.max(1) as usize,
    };
    Ok((kernel, max_paths, clause))
}

/// The node's AS: the `local as` of a BGP template (Calico's `bgp_template` carries the
/// node's AS, a peer's own `local as` overrides it), else the AS most peers speak as (the
/// first on a tie). A peer added with its own `local as` never changes it.
fn node_asn(config: &ast::Config, bgp: &[Bgp<'_>]) -> Option<u32> {
    let template = config.items.iter().find_map(|i| match &i.kind {
        ItemKind::Template(t) if t.ty == ast::ProtoType::Bgp => {
            t.options.iter().rev().find_map(|o| match o.kind {
                OptKind::LocalAs { asn, .. } => Some(asn),
                _ => None,
            })
        }
        _ => None,
    });
    let mut count: HashMap<u32, usize> = HashMap::new();
    for b in bgp {
        *count.entry(b.local_as).or_default() += 1;
    }
    let most = |a: &&Bgp<'_>| count.get(&a.local_as).copied().unwrap_or(0);
    let first_most = bgp.iter().rev().max_by_key(most).map(|b| b.local_as);
    template.or(first_most)
}

/// BIRD options the model has no counterpart for, refused where written.
fn refuse_uncarried(b: &Bgp<'_>, r: &Resolved<'_>) -> Result<(), Error> {
    for o in &r.options {
        let why = match &o.kind {
            OptKind::StartupHoldTime(_) => "`startup hold time`: wren proposes one hold time",
            OptKind::ErrorForgetTime(_) => {
                "`error forget time`: wren's error wait resets when a session is up"
            }
            _ => continue,
        };
        return Err(Error::new(&o.pos, why));
    }
    if b.graceful_restart == GracefulRestart::Aware {
        return Err(Error::new(
            opt_pos(Some(r), r.pos, |o| {
                matches!(o, OptKind::GracefulRestartAware)
            }),
            "graceful restart `aware` (BIRD's default without `graceful restart`): wren either \
             restarts gracefully or not; write `graceful restart on` or `off`",
        ));
    }
    Ok(())
}

/// A peer's session settings.
fn settings(b: &Bgp<'_>, r: &Resolved<'_>) -> Result<PeerDefaults, Error> {
    let secs = |v: u32, pick: fn(&OptKind) -> bool| {
        u16::try_from(v).map_err(|_| {
            Error::new(
                opt_pos(Some(r), r.pos, pick),
                format!("{v} seconds: wren's timers go up to 65535"),
            )
        })
    };
    let ttl_security = b.ttl_security.then_some(b.multihop.max(1));
    // No TTL set means the engine's: 1 for eBGP, the system's 64 for iBGP.
    let ttl = match (ttl_security, b.multihop, b.internal()) {
        (Some(_), _, _) => None,
        (None, 0, false) => None,
        (None, 0, true) => Some(1),
        (None, n, _) => Some(n),
    };
    let defaults = PeerDefaults::default();
    Ok(PeerDefaults {
        hold_time: secs(b.hold_time, |o| matches!(o, OptKind::HoldTime(_)))?,
        keepalive: b
            .keepalive_time
            .map(|k| secs(k, |o| matches!(o, OptKind::KeepaliveTime(_))))
            .transpose()?,
        connect_delay: secs(b.connect_delay_time, |o| {
            matches!(o, OptKind::ConnectDelayTime(_))
        })?,
        connect_retry: secs(b.connect_retry_time, |o| {
            matches!(o, OptKind::ConnectRetryTime(_))
        })?,
        error_wait: [
            secs(b.error_wait_time.0, |o| {
                matches!(o, OptKind::ErrorWaitTime(..))
            })?,
            secs(b.error_wait_time.1, |o| {
                matches!(o, OptKind::ErrorWaitTime(..))
            })?,
        ],
        passive: b.passive,
        password: b.password.map(str::to_string),
        source_address: b.source_address,
        ttl,
        ttl_security,
        graceful_restart: b.graceful_restart == GracefulRestart::On,
        restart_time: secs(b.graceful_restart_time, |o| {
            matches!(o, OptKind::GracefulRestartTime(_))
        })?,
        add_paths: match (b.add_paths_rx, b.add_paths_tx) {
            (false, false) => AddPaths::Off,
            (true, false) => AddPaths::Rx,
            (false, true) => AddPaths::Tx,
            (true, true) => AddPaths::Both,
        },
        rr_client: b.rr_client,
        next_hop: match b.next_hop {
            NextHop::Default => NextHopMode::Auto,
            NextHop::SelfAddress => NextHopMode::Myself,
            NextHop::Keep => NextHopMode::Keep,
        },
        allow_local_as: b.allow_local_as.map_or(0, |n| n as usize),
        import_limit: b.import_limit,
        description: b.common.description.map(str::to_string),
        import_filter: filter_form(&b.common.import),
        export_filter: filter_form(&b.common.export),
        ..defaults
    })
}

/// How a clause was written, for `show protocols all`.
fn filter_form(f: &FilterRef) -> FilterForm {
    match f {
        FilterRef::All => FilterForm::All,
        FilterRef::None => FilterForm::None,
        FilterRef::Named(name, _) => FilterForm::Named(name.clone()),
        FilterRef::Inline(_) => FilterForm::Inline,
    }
}

/// `bfd on` in a BGP protocol: the session's BFD options from `protocol bfd` (RFC 5882), its
/// `multihop` block for a multihop session (RFC 5883), its interface block otherwise. wren
/// keeps one set of single-hop options, so the interface block must be `interface "*"`; what
/// the model has no place for (a second BFD protocol, `neighbor`, `passive`, `idle tx
/// interval`, more than one password) is refused where written.
fn bfd_options(
    b: &Bgp<'_>,
    protocols: &[protocols::Bfd<'_>],
    r: &Resolved<'_>,
) -> Result<PeerBfd, Error> {
    if !b.bfd {
        return Ok(PeerBfd(None));
    }
    let at = opt_pos(Some(r), r.pos, |o| matches!(o, OptKind::Bfd(_)));
    let p = match protocols {
        [p] => p,
        [] => return Err(Error::new(at, "`bfd on` needs a `protocol bfd`")),
        [_, second, ..] => {
            return Err(Error::new(
                second.common.pos,
                "a second bfd protocol: wren runs one set of BFD sessions",
            ));
        }
    };
    if !p.neighbors.is_empty() {
        return Err(Error::new(
            p.common.pos,
            "`neighbor` in protocol bfd: wren's BFD sessions are the BGP sessions with `bfd on`",
        ));
    }
    let multihop = b.multihop > 0;
    let session = if multihop {
        p.multihop
    } else {
        match p.interfaces.as_slice() {
            [] => None,
            [(patterns, s)] if patterns.iter().any(|i| !i.exclude && i.glob == "*") => Some(*s),
            _ => {
                return Err(Error::new(
                    p.common.pos,
                    "BFD options by interface: wren keeps one set for single-hop sessions; \
                     write one `interface \"*\"` block",
                ));
            }
        }
    };
    let mut options = BfdOptions {
        multihop: Some(multihop),
        ..BfdOptions::default()
    };
    let Some(s) = session else {
        return Ok(PeerBfd(Some(options)));
    };
    if s.passive.is_some() || s.idle_tx.is_some() || s.passwords.len() > 1 {
        return Err(Error::new(
            p.common.pos,
            "BFD `passive`, `idle tx interval` or more than one password: wren's BFD sessions \
             are active, with one key",
        ));
    }
    // BIRD's intervals are in microseconds; the model's in milliseconds (rounded up).
    let ms = |us: u32| us.div_ceil(1000);
    options.min_rx = s.min_rx.map(ms);
    options.min_tx = s.min_tx.map(ms);
    options.multiplier = s.multiplier;
    options.auth = s.auth.flatten();
    if let Some((key, id)) = s.passwords.first() {
        options.password = Some(key.clone());
        options.key_id = *id;
    }
    Ok(PeerBfd(Some(options)))
}

/// A peer's import or export clause without its BGPFilter calls (a named filter is read
/// through), and the filters it calls.
fn clause<'c>(
    f: &FilterRef,
    r: &Resolved<'c>,
    import: bool,
    ibgp: bool,
) -> Result<(Clause<'c>, Vec<String>), Error> {
    let pos = opt_pos(Some(r), r.pos, |o| {
        if import {
            matches!(o, OptKind::Import(_))
        } else {
            matches!(o, OptKind::Export(_))
        }
    });
    let (filter, names) = match f {
        FilterRef::Inline(body) => {
            let (kept, names) = bgpfilter::strip(body, ibgp)?;
            (FilterRef::Inline(kept), names)
        }
        other => (other.clone(), Vec::new()),
    };
    Ok((Clause { filter, pos }, names))
}

/// Where the last option `pick` accepts was written, or the protocol's place.
fn opt_pos<'c>(
    r: Option<&Resolved<'c>>,
    fallback: &'c Pos,
    pick: impl Fn(&OptKind) -> bool,
) -> &'c Pos {
    r.and_then(|r| r.options.iter().rev().find(|o| pick(&o.kind)))
        .map_or(fallback, |o| &o.pos)
}

/// The address family of a BIRD file: `bird6*.cfg` is IPv6, as Calico names them.
pub fn family_of(path: &std::path::Path) -> ast::Family {
    let v6 = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.trim_start_matches('.').starts_with("bird6"));
    if v6 { ast::Family::V6 } else { ast::Family::V4 }
}

#[cfg(test)]
mod tests {
    use super::super::{check, parse};
    use super::*;

    const BASE: &str = "router id 10.0.0.1;\n\
        protocol kernel { learn; persist; export all; graceful restart; }\n\
        template bgp t { local as 65000; graceful restart; }\n";

    fn convert_text(text: &str) -> Result<Config, String> {
        let c = parse::parse_str("t.cfg", text, ast::Family::V4).map_err(|e| e.to_string())?;
        check::check(&c).map_err(|e| e.to_string())?;
        convert(&c).map_err(|e| e.to_string())
    }

    #[test]
    fn statements_without_a_counterpart_are_refused_where_written() {
        for (extra, at) in [
            ("log syslog all;", "t.cfg:4:1:"),
            ("protocol kernel k2 { persist; }", "t.cfg:4:1:"),
            (
                "protocol static { route 10.1.0.0/16 unreachable; }",
                "t.cfg:4:19:",
            ),
            (
                "protocol bgp a { local as 1; neighbor 10.0.0.2 as 2; }",
                "t.cfg:4:1:",
            ),
            (
                "protocol bgp a from t { neighbor 10.0.0.2 as 2; startup hold time 5; }",
                "t.cfg:4:49:",
            ),
            (
                "protocol bgp a from t { neighbor 10.0.0.2 as 65000; rr client; rr cluster id 1.1.1.1; }\n\
                 protocol bgp b from t { neighbor 10.0.0.3 as 65000; rr client; rr cluster id 2.2.2.2; }",
                "t.cfg:5:64:",
            ),
            // The model's own checks, placed at the protocol.
            (
                "protocol bgp a from t { neighbor 10.0.0.2 as 2; }\n\
                 protocol bgp b from t { neighbor 10.0.0.2 as 2; }",
                "t.cfg:5:1: peer b: neighbour 10.0.0.2 port 179 is already peer a",
            ),
            (
                "protocol bgp a from t { neighbor 10.0.0.2 as 2; password \"0123456789012345678901234567890123456789012345678901234567890123456789012345678901\"; }",
                "t.cfg:4:1: peer a: password longer than 80 bytes",
            ),
            (
                "protocol bgp a from t { neighbor 10.0.0.2 as 2; hold time 70000; }",
                "t.cfg:4:49:",
            ),
        ] {
            let e = convert_text(&format!("{BASE}{extra}\n")).unwrap_err();
            assert!(e.starts_with(at), "{extra}: {e}");
        }
        let e = convert_text("protocol kernel { learn; }").unwrap_err();
        assert!(e.starts_with("t.cfg:1:1: no `router id`"), "{e}");
        let e = convert_text("router id 10.0.0.1; protocol kernel { learn; }").unwrap_err();
        assert!(e.contains("without `persist`"), "{e}");
    }

    /// `bfd on` takes `protocol bfd`'s multihop block for a multihop session and its
    /// `interface "*"` block for a direct one; what the model cannot hold is refused.
    #[test]
    fn bfd_on_takes_the_bfd_protocols_options() {
        let bfd = "protocol bfd {\n\
             interface \"*\" { min rx interval 100 ms; min tx interval 200 ms; multiplier 3; };\n\
             multihop { min rx interval 300 ms; authentication keyed sha1; password \"k\"; };\n\
             }\n";
        let m = convert_text(&format!(
            "{BASE}{bfd}protocol bgp a from t {{ neighbor 10.0.0.2 as 65000; bfd on; \
             source address 10.0.0.1; }}\n\
             protocol bgp b from t {{ neighbor 10.0.0.3 as 7; bfd on; }}\n\
             protocol bgp c from t {{ neighbor 10.0.0.4 as 7; }}\n"
        ))
        .unwrap();
        let a = m.peers[0].settings.bfd.0.clone().unwrap();
        assert_eq!(
            (a.multihop, a.min_rx, a.min_tx),
            (Some(true), Some(300), None)
        );
        assert_eq!(
            (a.auth, a.password.as_deref()),
            (Some(crate::config::BfdAuth::KeyedSha1), Some("k"))
        );
        let b = m.peers[1].settings.bfd.0.clone().unwrap();
        assert_eq!(
            (b.multihop, b.min_rx, b.min_tx, b.multiplier),
            (Some(false), Some(100), Some(200), Some(3))
        );
        assert_eq!(m.peers[2].settings.bfd, PeerBfd(None));
        for (extra, at) in [
            (
                "protocol bgp a from t { neighbor 10.0.0.3 as 7; bfd on; }\n",
                "t.cfg:4:49:",
            ),
            (
                "protocol bfd { interface \"eth*\" { multiplier 3; }; }\n\
                 protocol bgp a from t { neighbor 10.0.0.3 as 7; bfd on; }\n",
                "t.cfg:4:1:",
            ),
            (
                "protocol bfd { neighbor 10.0.0.3; }\n\
                 protocol bgp a from t { neighbor 10.0.0.3 as 7; bfd on; }\n",
                "t.cfg:4:1:",
            ),
        ] {
            let e = convert_text(&format!("{BASE}{extra}")).unwrap_err();
            assert!(e.starts_with(at), "{extra}: {e}");
        }
    }

    #[test]
    fn node_as_per_peer_local_as_and_session_settings() {
        let m = convert_text(&format!(
            "{BASE}protocol bgp a from t {{ neighbor 10.0.0.2 as 65000; }}\n\
             protocol bgp b from t {{ neighbor 10.0.0.3 as 65000; hold time 9; keepalive time 3; }}\n\
             protocol bgp c from t {{ local as 65009; neighbor 10.0.0.4 port 1790 as 7; \
             ttl security on; multihop 2; allow local as; import limit 100; add paths rx; \
             graceful restart time 30; password \"k\"; passive on; }}\n\
             protocol bgp d from t {{ neighbor 10.0.0.5 as 8; graceful restart off; direct; }}\n"
        ))
        .unwrap();
        assert_eq!(m.asn, 65000);
        assert_eq!(m.max_paths, 1, "no merge paths");
        assert_eq!(m.kernel.startup_wait, GRACEFUL_RESTART_WAIT);
        let a = &m.peers[0].settings;
        assert_eq!(
            (a.ttl, a.local_asn, a.connect_delay, a.connect_retry),
            (Some(64), None, 5, 120)
        );
        assert_eq!((a.error_wait, a.add_paths), ([60, 300], AddPaths::Off));
        let b = &m.peers[1].settings;
        assert_eq!((b.hold_time, b.keepalive), (9, Some(3)));
        let c = &m.peers[2];
        assert_eq!(
            (c.port, c.asn, c.settings.local_asn),
            (1790, 7, Some(65009))
        );
        let s = &c.settings;
        assert_eq!((s.ttl_security, s.ttl), (Some(2), None));
        assert_eq!(s.allow_local_as, u32::MAX as usize);
        assert_eq!(
            (s.import_limit, s.add_paths, s.restart_time),
            (Some(100), AddPaths::Rx, 30)
        );
        assert_eq!((s.password.as_deref(), s.passive), (Some("k"), true));
        let d = &m.peers[3].settings;
        assert!(!d.graceful_restart);
        assert_eq!(d.ttl, None, "direct eBGP: the engine's TTL 1");
        // Without a template: the AS most peers speak as, the first on a tie.
        let peer = |name: &str, local: u32, n: u8| {
            format!(
                "protocol bgp {name} {{ local as {local}; neighbor 10.0.0.{n} as 9; graceful restart; }}\n"
            )
        };
        let m = convert_text(&format!(
            "router id 10.0.0.1;\n{}{}{}",
            peer("a", 1, 2),
            peer("b", 2, 3),
            peer("c", 2, 4)
        ))
        .unwrap();
        assert_eq!((m.asn, m.peers[0].settings.local_asn), (2, Some(1)));
        let m = convert_text(&format!(
            "router id 10.0.0.1;\n{}{}",
            peer("a", 3, 2),
            peer("b", 4, 3)
        ))
        .unwrap();
        assert_eq!((m.asn, m.peers[1].settings.local_asn), (3, Some(4)));
    }

    /// `show protocols all` prints the description and each filter as it was written.
    #[test]
    fn description_and_filter_forms_are_kept() {
        let m = convert_text(&format!(
            "{BASE}filter take {{ accept; }}\n\
             protocol bgp a from t {{ neighbor 10.0.0.2 as 65000; description \"ToR\"; \
             import filter take; export none; }}\n\
             protocol bgp b from t {{ neighbor 10.0.0.3 as 65000; import filter {{ accept; }}; }}\n\
             protocol bgp c from t {{ neighbor 10.0.0.4 as 65000; import all; }}\n"
        ))
        .unwrap();
        let shown = |i: usize| {
            let s = &m.peers[i].settings;
            (
                s.description.as_deref(),
                s.import_filter.clone(),
                s.export_filter.clone(),
            )
        };
        assert_eq!(
            shown(0),
            (
                Some("ToR"),
                FilterForm::Named("take".into()),
                FilterForm::None
            )
        );
        assert_eq!(shown(1), (None, FilterForm::Inline, FilterForm::None));
        assert_eq!(shown(2), (None, FilterForm::All, FilterForm::None));
    }
}
