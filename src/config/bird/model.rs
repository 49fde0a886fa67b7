//! A checked BIRD configuration as wren's model: the settings and protocols map one to one
//! (router id, `listen bgp`, the kernel protocol, every `protocol bgp` as a peer), and what
//! Calico expresses in filters (blocks, services, pools, communities) is found by running the
//! filters ([`super::probe`]) and checked against the model. Every statement takes effect or
//! is refused at its place; the few that need nothing from wren are named where they are
//! accepted.

use ipnet::IpNet;

use super::ast::{self, FilterRef, ItemKind, LogTarget, OptKind, Resolved, RouteTarget};
use super::bgpfilter;
use super::probe::{Clause, PeerClauses, Prober};
use super::protocols::{self, Bgp, GracefulRestart, NextHop};
use super::{Error, Pos};
use crate::config::{
    AddPaths, Config, Item, KernelConfig, Listen, LogLevel, NextHopMode, Peer, PeerDefaults,
    validate,
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
    let mut places: Vec<(Item, Pos)> = Vec::new();
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
    places.push((Item::Setting("router_id"), id_pos));
    let (listen, log_level) = globals(config)?;
    let typed = protocols::protocols(config)
        .ok_or_else(|| Error::new(&start, "a BGP protocol without neighbor or local AS"))?;
    let resolved: Vec<Resolved<'_>> = config.protocols();
    let find = |name: &str| resolved.iter().find(|r| r.proto.name == name);

    let mut log_level = log_level;
    for r in &resolved {
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
        [k] => kernel(k, find(k.common.name))?,
        [_, second, ..] => {
            return Err(Error::new(
                second.common.pos,
                "a second kernel protocol: wren writes one routing table",
            ));
        }
    };

    let mut statics: Vec<(IpNet, Pos)> = Vec::new();
    for s in &typed.statics {
        let r = find(s.common.name);
        if !matches!(s.common.import, FilterRef::All) {
            return Err(Error::new(
                opt_pos(r, s.common.pos, |o| matches!(o, OptKind::Import(_))),
                "a static protocol's import filter: wren originates every static route",
            ));
        }
        for o in r.map(|r| r.options.clone()).unwrap_or_default() {
            if let OptKind::Route { prefix, target } = &o.kind {
                if *target != RouteTarget::Blackhole {
                    return Err(Error::new(
                        &o.pos,
                        "a static route other than `blackhole` (Calico's reachableBy `via`): \
                         wren's model carries only blackholes (blocks and service ranges)",
                    ));
                }
                statics.push((prefix.trunc(), o.pos.clone()));
            }
        }
    }

    let filters = bgpfilter::filters(config)?;
    let asn = most_common_local_as(&typed.bgp).unwrap_or(NO_BGP_ASN);
    if let Some(b) = typed.bgp.first() {
        places.push((Item::Setting("asn"), b.common.pos.clone()));
    }
    let mut peers = Vec::new();
    let mut clauses = Vec::new();
    let mut cluster_id: Option<(std::net::Ipv4Addr, &Pos)> = None;
    let mut any_rr_client = false;
    for b in &typed.bgp {
        let Some(r) = find(b.common.name) else {
            continue;
        };
        refuse_uncarried(b, r)?;
        if let Some(id) = b.rr_cluster_id {
            let here = opt_pos(Some(r), r.pos, |o| matches!(o, OptKind::RrClusterId(_)));
            match cluster_id {
                Some((other, at)) if other != id => {
                    return Err(Error::new(
                        here,
                        format!("rr cluster id {id}: wren has one cluster id, {other} (at {at})"),
                    ));
                }
                _ => cluster_id = Some((id, here)),
            }
        }
        any_rr_client |= b.rr_client;
        let (import, import_names) = clause(&b.common.import, r, true)?;
        let (export, export_names) = clause(&b.common.export, r, false)?;
        let mut settings = settings(b, r)?;
        settings.local_asn = (b.local_as != asn).then_some(b.local_as);
        settings.filters = bgpfilter::merge_names(import_names, export_names);
        for name in &settings.filters {
            if !filters.iter().any(|f| &f.name == name) {
                return Err(Error::new(
                    r.pos,
                    format!("no BGPFilter functions for {name}"),
                ));
            }
        }
        places.push((Item::Peer(peers.len(), None), r.pos.clone()));
        peers.push(Peer {
            name: b.common.name.to_string(),
            address: b.neighbor,
            port: b.port,
            asn: b.peer_as,
            settings,
        });
        clauses.push(PeerClauses {
            name: b.common.name,
            internal: b.internal(),
            import,
            export,
        });
    }

    let prober = Prober::new(config, kernel_clause, clauses, statics)?;
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
        cluster_id: cluster_id
            .map(|(id, _)| id)
            .or(any_rr_client.then_some(router_id)),
        max_paths,
        kernel,
        log_level,
        metrics: None,
        peers,
        filters,
    };
    prober.check(&model, &facts.connected)?;
    places.extend(
        facts
            .originate
            .iter()
            .enumerate()
            .map(|(i, (_, p))| (Item::Originate(i), p.clone())),
    );
    places.extend(
        facts
            .services
            .iter()
            .enumerate()
            .map(|(i, (_, p))| (Item::Service(i), p.clone())),
    );
    places.extend(
        facts
            .pools
            .iter()
            .enumerate()
            .map(|(i, (_, p))| (Item::Pool(i), p.clone())),
    );
    places.extend(
        (facts.communities.iter().enumerate())
            .map(|(i, (_, p))| (Item::Communities(i, None), p.clone())),
    );
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

/// `listen bgp`, `log` and top-level `debug protocols`.
fn globals(config: &ast::Config) -> Result<(Listen, LogLevel), Error> {
    let mut listen = Listen::default();
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

/// The AS most peers speak as (the first on a tie): the node's AS.
fn most_common_local_as(bgp: &[Bgp<'_>]) -> Option<u32> {
    let count = |asn: u32| bgp.iter().filter(|b| b.local_as == asn).count();
    let mut best: Option<u32> = None;
    for b in bgp {
        if best.is_none_or(|a| count(b.local_as) > count(a)) {
            best = Some(b.local_as);
        }
    }
    best
}

/// BIRD options the model has no counterpart for, refused where written.
fn refuse_uncarried(b: &Bgp<'_>, r: &Resolved<'_>) -> Result<(), Error> {
    for o in &r.options {
        let why = match &o.kind {
            OptKind::StartupHoldTime(_) => "`startup hold time`: wren proposes one hold time",
            OptKind::ErrorForgetTime(_) => {
                "`error forget time`: wren's error wait resets when a session is up"
            }
            OptKind::Gateway(ast::Gateway::Direct) if b.multihop > 0 => {
                "`gateway direct` on a multihop session: wren resolves next hops recursively"
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
        ..defaults
    })
}

/// A peer's import or export clause without its BGPFilter calls (a named filter is read
/// through), and the filters it calls.
fn clause<'c>(
    f: &FilterRef,
    r: &Resolved<'c>,
    import: bool,
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
            let (kept, names) = bgpfilter::strip(body)?;
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
