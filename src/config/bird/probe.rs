//! What Calico's filters do, found by running them (contract §3): which static blackholes
//! are the node's blocks and which are service ranges, the pools with their encapsulation and
//! BGP export, and the communities added on export; then the check that wren's model decides
//! as the filters do on every probe route, so a filter the model cannot carry is refused at
//! its place instead of being silently replaced by wren's own rules.
//!
//! The probe routes are built from every prefix written in the configuration: each prefix,
//! subnets at its start and end (a /26 or /122 block, single addresses), as BGP routes with
//! next hops inside each prefix and outside all of them, as kernel routes through a workload
//! and Felix's tunnel devices, and the static routes themselves.
//!
//! IP-in-IP CrossSubnet: the kernel filter names the node's subnet (`bgp_next_hop ~ SUBNET`,
//! as confd writes it); the model decides by the subnets the kernel reports as connected,
//! the same thing, so the check takes the next hops the filter treats as on the subnet as
//! the connected ones.
//!
//! Calico 3.32's metric ↔ LOCAL_PREF coupling (the model's `normal_route_priority`) is
//! found from the LOCAL_PREF the export prelude gives a static route (or the metric the
//! kernel filter gives a BGP route without LOCAL_PREF), then checked with probes of several
//! LOCAL_PREFs and kernel metrics around the priority: the metric the kernel filter writes,
//! the LOCAL_PREF each iBGP peer is sent, the preference the import filter gives, and the
//! learned routes inside a block that `calico_aggr` lets out. Static routes through a
//! gateway (reachableBy) go through the kernel and export filters as static routes.
//!
//! Not probed, because the model keeps it in the engine rather than the filters: kernel
//! routes through `tunl0` (the engine's iBGP rule for Felix-owned IP-in-IP is master's, newer
//! than the 3.31/3.32 filters).

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::ast::{self, Expr, ExprKind, FilterRef, ItemKind, OptKind, SetItem, Stmt, StmtKind};
use super::eval::{Evaluator, Outcome, Route};
use super::{Error, Pos};
use crate::attrs::{AttrSet, PathSource};
use crate::config::{AnyCommunity, Config, Encapsulation, Pool, PrefixCommunities, StaticRoute};
use crate::policy::calico::{Calico, KernelKind, PRIORITY_MAX, exports_device};
use crate::wire::attr::{Community, LargeCommunity};

/// Devices of the kernel routes probed: a workload, Felix's VXLAN and WireGuard devices,
/// an eBPF-local one, and the uplink.
const KERNEL_DEVICES: [&str; 5] = [
    "cali1a2b3c4d5e6",
    "vxlan.calico",
    "wireguard.cali",
    "bpfin.cali",
    "eth0",
];

/// Addresses tried, in order, as a next hop outside every prefix of the configuration.
const OUTSIDE: [&str; 6] = [
    "198.51.100.77",
    "203.0.113.77",
    "192.0.2.77",
    "2001:db8:ffff::77",
    "2001:db8:fffe::77",
    "2001:db8:fffd::77",
];

/// A filter clause to run, and where it was written.
pub struct Clause<'c> {
    pub filter: FilterRef,
    pub pos: &'c Pos,
}

/// A peer's import and export clauses without its BGPFilter calls.
pub struct PeerClauses<'c> {
    pub name: &'c str,
    /// Same AS at both ends (BIRD's `internal`, Calico's `calico_export_to_bgp_peers(true)`).
    pub internal: bool,
    pub import: Clause<'c>,
    pub export: Clause<'c>,
}

/// The node's routing facts derived from the filters, each with where it was written.
#[derive(Debug, Default)]
pub struct Facts {
    pub originate: Vec<(IpNet, Pos)>,
    pub services: Vec<(IpNet, Pos)>,
    pub pools: Vec<(Pool, Pos)>,
    pub communities: Vec<(PrefixCommunities, Pos)>,
    /// Next hops the kernel filter treats as on a connected subnet (IP-in-IP CrossSubnet).
    pub connected: HashSet<IpAddr>,
    /// Calico 3.32's route priority, coupling metric and LOCAL_PREF: the metric the kernel
    /// filter gives a BGP route without LOCAL_PREF, or 2^31 − 1 − the LOCAL_PREF the export
    /// filters give the node's routes (the check then holds every filter to the whole of
    /// it).
    pub normal_route_priority: Option<u32>,
}

/// The probes of one configuration and the filters they run through.
pub struct Prober<'c> {
    eval: Evaluator<'c>,
    kernel: Option<Clause<'c>>,
    peers: Vec<PeerClauses<'c>>,
    /// Every prefix written in a filter or function, with its first place.
    literals: Vec<(IpNet, Pos)>,
    /// Static blackhole routes, with their places.
    statics: Vec<(IpNet, Pos)>,
    /// Static routes through a gateway (reachableBy), with their places.
    vias: Vec<(StaticRoute, Pos)>,
    nets: Vec<IpNet>,
    next_hops: Vec<IpAddr>,
    outside: IpAddr,
}

/// What the kernel filter does with a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kernel {
    Reject,
    Tunnel,
    /// Accepted with `krt_tunnel = ""`.
    Plain,
    /// Accepted, `krt_tunnel` untouched.
    Untouched,
}

impl<'c> Prober<'c> {
    pub fn new(
        config: &'c ast::Config,
        kernel: Option<Clause<'c>>,
        peers: Vec<PeerClauses<'c>>,
        statics: Vec<(IpNet, Pos)>,
        vias: Vec<(StaticRoute, Pos)>,
    ) -> Result<Prober<'c>, Error> {
        let v6 = config.family == ast::Family::V6;
        let found = prefix_literals(config);
        let mut seen = HashSet::new();
        let literals: Vec<(IpNet, Pos)> = (found.all.into_iter())
            .filter(|(n, _)| n.addr().is_ipv6() == v6 && seen.insert(*n))
            .collect();
        let all: Vec<IpNet> = (literals.iter().chain(&statics)).map(|(n, _)| *n).collect();
        // The documentation address inside the fewest prefixes (none, unless a filter names
        // a default route).
        let outside = (OUTSIDE.iter())
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .filter(|a| a.is_ipv6() == v6)
            .min_by_key(|a| all.iter().filter(|n| n.contains(a)).count())
            .ok_or_else(|| Error::new(&start(config), "no address to probe the filters with"))?;
        let max = if v6 { 128 } else { 32 };
        let default = IpNet::new(
            if v6 {
                [0u16; 8].into()
            } else {
                [0u8; 4].into()
            },
            0,
        )
        .map_err(|e| Error::new(&start(config), e.to_string()))?;
        let outside_net = IpNet::new(outside, if v6 { 64 } else { 24 })
            .map(|n| n.trunc())
            .map_err(|e| Error::new(&start(config), e.to_string()))?;
        let mut seen = HashSet::new();
        let nets: Vec<IpNet> = [default, outside_net]
            .into_iter()
            .chain(
                all.iter()
                    .flat_map(|n| std::iter::once(*n).chain(children(*n, max))),
            )
            .filter(|n| seen.insert(*n))
            .collect();
        // A next hop inside each prefix a next hop is compared with (the node's subnet for
        // IP-in-IP CrossSubnet), and one outside them all.
        let mut seen = HashSet::new();
        let next_hops: Vec<IpAddr> = (found.next_hop.iter())
            .filter(|n| n.addr().is_ipv6() == v6)
            .filter_map(|n| nth(n, u128::from(n.prefix_len() < max)))
            .chain([outside])
            .filter(|a| seen.insert(*a))
            .collect();
        Ok(Prober {
            eval: Evaluator::new(config),
            kernel,
            peers,
            literals,
            statics,
            vias,
            nets,
            next_hops,
            outside,
        })
    }

    /// The static routes through a gateway, with their places.
    pub fn vias(&self) -> &[(StaticRoute, Pos)] {
        &self.vias
    }

    /// Blocks and services, pools and communities, as the filters treat them.
    pub fn facts(&self) -> Result<Facts, Error> {
        let mut facts = Facts::default();
        for (net, pos) in &self.statics {
            if self.is_service(*net) {
                facts.services.push((*net, pos.clone()));
            } else {
                facts.originate.push((*net, pos.clone()));
            }
        }
        // Widest first: a prefix inside a pool is part of it (Calico's pools do not overlap),
        // and where the filters treat it otherwise the check says so.
        let mut order: Vec<usize> = (0..self.literals.len()).collect();
        order.sort_by_key(|&i| self.literals[i].0.prefix_len());
        let mut pools: Vec<(usize, Pool)> = Vec::new();
        for i in order {
            let (net, pos) = &self.literals[i];
            if self.statics.iter().any(|(s, _)| s == net)
                || pools.iter().any(|(_, p)| p.cidr.contains(net))
            {
                continue;
            }
            if let Some(pool) = self.pool(*net, pos, &mut facts.connected)? {
                pools.push((i, pool));
            }
        }
        pools.sort_by_key(|(i, _)| *i);
        facts.pools = (pools.into_iter())
            .map(|(i, p)| (p, self.literals[i].1.clone()))
            .collect();
        facts.communities = self.communities();
        facts.normal_route_priority = self.priority();
        Ok(facts)
    }

    /// The route priority the filters couple the kernel metric and LOCAL_PREF with (Calico
    /// 3.32): 2^31 − 1 − the LOCAL_PREF a peer's export filter sets on a static route, or
    /// the metric the kernel filter sets on a BGP route without LOCAL_PREF.
    fn priority(&self) -> Option<u32> {
        let net = *self.nets.first()?;
        let export = (self.peers.iter()).find_map(|p| {
            let r = Route::new(net, ast::Source::Static);
            let lp = self.eval.run(&p.export.filter, r).route.bgp_local_pref?;
            Some(PRIORITY_MAX.saturating_sub(lp))
        });
        let mut route = bgp_route(net, self.outside);
        route.bgp_local_pref = None;
        export.or_else(|| {
            (self.kernel.iter()).find_map(|k| {
                let o = self.eval.run(&k.filter, route.clone());
                o.route.krt_metric.filter(|_| o.accepted)
            })
        })
    }

    /// A service range is a static blackhole whose inside is exported too (a block
    /// aggregates: nothing inside it is, contract §3.2); a single address has no inside and
    /// is a service when exported itself (Calico originates no /32 blocks). Without peers,
    /// one the kernel filter keeps out of the kernel (Calico's `/rejectcidrs`).
    fn is_service(&self, net: IpNet) -> bool {
        let max = if net.addr().is_ipv6() { 128 } else { 32 };
        if let Some(p) = self.peers.first() {
            let inside = children(net, max).last().unwrap_or(net);
            let r = kernel_route(inside, KERNEL_DEVICES[0]);
            return self.eval.run(&p.export.filter, r).accepted;
        }
        self.kernel.as_ref().is_some_and(|k| {
            let r = Route::new(net, ast::Source::Static);
            !self.eval.run(&k.filter, r).accepted
        })
    }

    /// `net` as a pool, when the kernel filter or the peers' export filters single out the
    /// routes inside it.
    fn pool(
        &self,
        net: IpNet,
        pos: &Pos,
        connected: &mut HashSet<IpAddr>,
    ) -> Result<Option<Pool>, Error> {
        let max = if net.addr().is_ipv6() { 128 } else { 32 };
        let others: Vec<IpNet> = (self.literals.iter().chain(&self.statics))
            .map(|(n, _)| *n)
            .filter(|n| *n != net && net.contains(n))
            .collect();
        // A single address (Calico's /32 block, which it aggregates without originating)
        // is probed as itself.
        let inside = if net.prefix_len() == max {
            Some(net).filter(|_| others.is_empty())
        } else {
            children(net, max).find(|c| !others.iter().any(|o| o.contains(c) || c.contains(o)))
        };
        let Some(inside) = inside else {
            return Ok(None);
        };
        let seen: Vec<(IpAddr, Kernel)> = match &self.kernel {
            Some(k) => (self.next_hops.iter())
                .map(|nh| {
                    (
                        *nh,
                        kernel_verdict(&self.eval.run(&k.filter, bgp_route(inside, *nh))),
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        let exported = (self.peers.iter()).any(|p| {
            (self
                .eval
                .run(&p.export.filter, bgp_route(inside, self.outside)))
            .accepted
        });
        let kinds: HashSet<Kernel> = seen.iter().map(|(_, k)| *k).collect();
        if !exported && kinds.iter().all(|k| *k == Kernel::Untouched) {
            return Ok(None);
        }
        let has = |k| kinds.contains(&k);
        let encapsulation = if kinds.is_empty() || !has(Kernel::Reject) && !has(Kernel::Tunnel) {
            Encapsulation::None
        } else if kinds.len() == 1 && has(Kernel::Reject) {
            Encapsulation::Vxlan
        } else if kinds.len() == 1 {
            Encapsulation::Ipip
        } else if !has(Kernel::Reject) && !has(Kernel::Untouched) {
            connected.extend(
                seen.iter()
                    .filter(|(_, k)| *k == Kernel::Plain)
                    .map(|(a, _)| *a),
            );
            Encapsulation::IpipCrossSubnet
        } else {
            return Err(Error::new(
                pos,
                format!(
                    "the kernel filter treats routes inside {net} by next hop in a way no \
                     pool encapsulation of wren's model carries"
                ),
            ));
        };
        Ok(Some(Pool {
            cidr: net,
            encapsulation,
            bgp_export: exported || self.peers.is_empty(),
        }))
    }

    /// The communities the export filters add, as ranges: each prefix written in the
    /// configuration with what its routes get beyond what wider ranges already give.
    fn communities(&self) -> Vec<(PrefixCommunities, Pos)> {
        let Some(peer) = self.peers.first() else {
            return Vec::new();
        };
        let mut ranges: Vec<(IpNet, Pos)> = self.literals.clone();
        ranges.sort_by_key(|(n, _)| n.prefix_len());
        let mut out: Vec<(PrefixCommunities, Pos)> = Vec::new();
        for (net, pos) in ranges {
            let o = self
                .eval
                .run(&peer.export.filter, bgp_route(net, self.outside));
            let wider: Vec<AnyCommunity> = (out.iter())
                .filter(|(r, _)| r.prefix.contains(&net))
                .flat_map(|(r, _)| r.communities.iter().copied())
                .collect();
            let own: Vec<AnyCommunity> = added(&o.route)
                .into_iter()
                .filter(|c| !wider.contains(c))
                .collect();
            if !own.is_empty() {
                out.push((
                    PrefixCommunities {
                        prefix: net,
                        communities: own,
                    },
                    pos,
                ));
            }
        }
        out
    }

    /// Runs every probe through the filters and through the model's rules: the first route
    /// they decide differently is an error at the filter's place.
    pub fn check(&self, model: &Config, connected: &HashSet<IpAddr>) -> Result<(), Error> {
        let calico = Calico::from_config(model);
        if let Some(k) = &self.kernel {
            self.check_kernel(k, &calico, connected)?;
        }
        // Peers with the same clauses and kind decide alike: each shape is probed once.
        let mut done: HashSet<(bool, String, String)> = HashSet::new();
        for p in &self.peers {
            let key = (p.internal, shape(&p.import.filter), shape(&p.export.filter));
            if done.insert(key) {
                self.check_peer(p, &calico)?;
            }
        }
        Ok(())
    }

    fn check_kernel(
        &self,
        k: &Clause<'_>,
        calico: &Calico,
        connected: &HashSet<IpAddr>,
    ) -> Result<(), Error> {
        let differ = |route: &Route, bird: Kernel, wren: KernelKind| {
            Error::new(
                k.pos,
                format!(
                    "the kernel export filter {} {}, wren's model would {}: the filter does \
                     something the model cannot carry",
                    match bird {
                        Kernel::Reject => "keeps out",
                        Kernel::Tunnel => "writes through tunl0",
                        Kernel::Plain | Kernel::Untouched => "writes",
                    },
                    describe(route),
                    match wren {
                        KernelKind::Skip => "keep it out",
                        KernelKind::Tunnel => "write it through tunl0",
                        KernelKind::Plain => "write it",
                        KernelKind::Blackhole => "write a blackhole",
                    }
                ),
            )
        };
        for (net, _) in &self.statics {
            let r = Route::new(*net, ast::Source::Static);
            let bird = kernel_verdict(&self.eval.run(&k.filter, r.clone()));
            let wren = calico.kernel_kind(net, calico.blocks.contains(net), None, |_| false);
            let same = match bird {
                Kernel::Reject => wren == KernelKind::Skip,
                _ => wren == KernelKind::Blackhole,
            };
            if !same {
                return Err(differ(&r, bird, wren));
            }
        }
        // A static route through a gateway is written as any other route (contract §3.7).
        for (v, _) in &self.vias {
            let mut r = Route::new(v.prefix, ast::Source::Static);
            r.gw = Some(v.via);
            let bird = kernel_verdict(&self.eval.run(&k.filter, r.clone()));
            let wren = calico.kernel_kind(&v.prefix, false, Some(v.via), |_| true);
            if !agrees(bird, wren) {
                return Err(differ(&r, bird, wren));
            }
        }
        // The metric of a BGP route, by LOCAL_PREF (Calico 3.32's `calico_kernel_programming`):
        // BIRD's default, one at the bound, one elevated.
        for net in &self.nets {
            for lp in local_prefs(calico) {
                let mut r = bgp_route(*net, self.outside);
                r.bgp_local_pref = Some(lp);
                let o = self.eval.run(&k.filter, r.clone());
                let mut a = AttrSet::local();
                a.local_pref = Some(lp);
                let wren = calico.metric(PathSource::Peer(0), &a);
                if o.accepted && o.route.krt_metric != wren {
                    return Err(Error::new(
                        k.pos,
                        format!(
                            "the kernel export filter writes {} with {}, wren's model would \
                             write it with {}: the filter does something the model cannot \
                             carry",
                            describe(&r),
                            metric(o.route.krt_metric),
                            metric(wren),
                        ),
                    ));
                }
            }
        }
        for net in &self.nets {
            for nh in &self.next_hops {
                let r = bgp_route(*net, *nh);
                let bird = kernel_verdict(&self.eval.run(&k.filter, r.clone()));
                let wren = calico.kernel_kind(net, false, Some(*nh), |a| connected.contains(&a));
                if !agrees(bird, wren) {
                    return Err(differ(&r, bird, wren));
                }
            }
        }
        Ok(())
    }

    fn check_peer(&self, p: &PeerClauses<'_>, calico: &Calico) -> Result<(), Error> {
        let lps = local_prefs(calico);
        for (net, lp) in (self.nets.iter()).flat_map(|n| lps.iter().map(move |lp| (n, *lp))) {
            let mut r = bgp_route(*net, self.outside);
            r.bgp_local_pref = Some(lp);
            let o = self.eval.run(&p.import.filter, r.clone());
            // Calico 3.32: an elevated route gets preference 200. wren's decision needs no
            // preference for it: it beats learned kernel routes (10) as any BGP route does,
            // and Calico announces no own block's prefix from another node.
            let preference = match calico.elevated_import(lp) {
                true => ELEVATED_PREFERENCE,
                false => r.preference,
            };
            if o.accepted && o.route.preference != preference {
                return Err(Error::new(
                    p.import.pos,
                    format!(
                        "the import filter of {} gives {} with LOCAL_PREF {lp} preference {}, \
                         wren's model would give it {preference}: the filter does something \
                         the model cannot carry",
                        p.name,
                        describe(&r),
                        o.route.preference
                    ),
                ));
            }
            if !o.accepted {
                return Err(Error::new(
                    p.import.pos,
                    format!(
                        "the import filter of {} rejects {}: wren accepts every route from a \
                         peer that its BGPFilter rules do not reject",
                        p.name,
                        describe(&r)
                    ),
                ));
            }
        }
        let mut routes: Vec<Route> = (self.statics.iter())
            .map(|(n, _)| Route::new(*n, ast::Source::Static))
            .collect();
        routes.extend(self.vias.iter().map(|(v, _)| {
            let mut r = Route::new(v.prefix, ast::Source::Static);
            r.gw = Some(v.via);
            r
        }));
        for net in &self.nets {
            for lp in local_prefs(calico) {
                let mut r = bgp_route(*net, self.outside);
                r.bgp_local_pref = Some(lp);
                routes.push(r);
            }
            routes.extend(KERNEL_DEVICES.iter().map(|d| kernel_route(*net, d)));
            // Felix's workload route with a metric: ordinary, and elevated (KubeVirt).
            for m in kernel_metrics(calico) {
                let mut r = kernel_route(*net, KERNEL_DEVICES[0]);
                r.krt_metric = Some(m);
                routes.push(r);
            }
        }
        for r in routes {
            let o = self.eval.run(&p.export.filter, r.clone());
            let device = (r.source == ast::Source::Inherit)
                .then_some(r.ifname.as_deref())
                .flatten();
            let (src, attrs) = path_of(&r);
            let wren = (calico.exports(&r.net) || calico.elevated(&r.net, src, &attrs))
                && exports_device(device, p.internal);
            // The LOCAL_PREF an iBGP peer gets (BIRD's default 100 where none is set).
            let lp = |x: Option<u32>| x.unwrap_or(DEFAULT_LOCAL_PREF);
            let want_lp = (calico.local_pref(src, &attrs)).unwrap_or(lp(r.bgp_local_pref));
            if p.internal && o.accepted && wren && lp(o.route.bgp_local_pref) != want_lp {
                return Err(Error::new(
                    p.export.pos,
                    format!(
                        "the export filter of {} announces {} with LOCAL_PREF {}, wren's model \
                         would announce it with {want_lp}: the filter does something the \
                         model cannot carry",
                        p.name,
                        describe(&r),
                        lp(o.route.bgp_local_pref),
                    ),
                ));
            }
            let want: Vec<AnyCommunity> = (calico.communities.iter())
                .filter(|(range, _)| range.contains(&r.net))
                .flat_map(|(_, list)| list.iter().copied())
                .collect();
            let got = added(&o.route);
            let same = |a: &[AnyCommunity], b: &[AnyCommunity]| a.iter().all(|c| b.contains(c));
            let same_communities = !wren || same(&got, &want) && same(&want, &got);
            if o.accepted != wren || !same_communities {
                return Err(Error::new(
                    p.export.pos,
                    format!(
                        "the export filter of {} {}, wren's model would {}: the filter does \
                         something the model cannot carry",
                        p.name,
                        announces(
                            o.accepted,
                            &got,
                            &format!("announces {}", describe(&r)),
                            &format!("keeps back {}", describe(&r)),
                        ),
                        announces(wren, &want, "announce it", "keep it back"),
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// LOCAL_PREFs probed: BIRD's default, 2^31 − 1 − 1024 (a 3.32 node's ordinary route at
/// Calico's default priority), 2^31 − 1 − 100 (an elevated one), and both sides of the
/// model's own priority's bound.
fn local_prefs(calico: &Calico) -> Vec<u32> {
    let around = (calico.normal_route_priority.iter())
        .map(|n| PRIORITY_MAX.saturating_sub(*n))
        .flat_map(|lp| [lp, lp.saturating_add(1)]);
    [
        DEFAULT_LOCAL_PREF,
        PRIORITY_MAX - CALICO_PRIORITY,
        PRIORITY_MAX - 100,
    ]
    .into_iter()
    .chain(around)
    .collect()
}

/// Kernel metrics probed on learned routes: an elevated one, Calico's default priority,
/// and both sides of the model's own priority.
fn kernel_metrics(calico: &Calico) -> Vec<u32> {
    let around = (calico.normal_route_priority.iter()).flat_map(|n| [*n, n.saturating_sub(1)]);
    [100, CALICO_PRIORITY].into_iter().chain(around).collect()
}

/// Calico's default `NormalRoutePriority`.
const CALICO_PRIORITY: u32 = 1024;

/// The preference Calico's import filter gives an elevated route (`birdOverridePreference`).
const ELEVATED_PREFERENCE: u32 = 200;

/// BIRD's `default bgp_local_pref`.
const DEFAULT_LOCAL_PREF: u32 = 100;

/// A probe route as the RIB holds it: its source and the attributes Calico's metric
/// rules read.
fn path_of(r: &Route) -> (PathSource, AttrSet) {
    let mut a = AttrSet::local();
    let src = match r.source {
        ast::Source::Bgp => {
            a.local_pref = r.bgp_local_pref;
            PathSource::Peer(0)
        }
        ast::Source::Inherit => {
            a.krt_metric = r.krt_metric;
            PathSource::Kernel
        }
        _ => PathSource::Local,
    };
    (src, a)
}

fn metric(m: Option<u32>) -> String {
    m.map_or_else(|| "no metric".into(), |m| format!("metric {m}"))
}

/// What an export decision did: `yes` (with the communities added, if any) or `no`.
fn announces(accepted: bool, communities: &[AnyCommunity], yes: &str, no: &str) -> String {
    if !accepted {
        return no.to_string();
    }
    let list: Vec<String> = communities.iter().map(|c| c.to_string()).collect();
    match list.is_empty() {
        true => yes.to_string(),
        false => format!("{yes} with communities {}", list.join(", ")),
    }
}

/// The main file's first position, for errors about the whole configuration.
fn start(config: &ast::Config) -> Pos {
    Pos {
        file: config.file.clone(),
        line: 1,
        col: 1,
    }
}

/// A BGP route for `net` from a peer at `nh`, as a peer's UPDATE gives it.
fn bgp_route(net: IpNet, nh: IpAddr) -> Route {
    let mut r = Route::new(net, ast::Source::Bgp);
    r.from = Some(nh);
    r.gw = Some(nh);
    r.bgp_next_hop = Some(nh);
    r.ifname = Some("eth0".into());
    r.bgp_local_pref = Some(100);
    r.bgp_path = Some(vec![65000]);
    r.bgp_origin = Some(0);
    r
}

/// A route learned from the kernel (Felix's) through `device`.
fn kernel_route(net: IpNet, device: &str) -> Route {
    let mut r = Route::new(net, ast::Source::Inherit);
    r.ifname = Some(device.into());
    r
}

fn describe(r: &Route) -> String {
    match (r.source, &r.ifname, r.bgp_next_hop) {
        (ast::Source::Bgp, _, Some(nh)) => format!("a BGP route for {} via {nh}", r.net),
        (ast::Source::Inherit, Some(d), _) => format!("a kernel route for {} dev {d}", r.net),
        _ => format!("the static route {}", r.net),
    }
}

/// Whether the kernel filter's verdict on a route through a gateway is what wren writes.
fn agrees(bird: Kernel, wren: KernelKind) -> bool {
    match bird {
        Kernel::Reject => wren == KernelKind::Skip,
        Kernel::Tunnel => wren == KernelKind::Tunnel,
        Kernel::Plain | Kernel::Untouched => wren == KernelKind::Plain,
    }
}

fn kernel_verdict(o: &Outcome) -> Kernel {
    match (o.accepted, o.route.krt_tunnel.as_deref()) {
        (false, _) => Kernel::Reject,
        (true, None) => Kernel::Untouched,
        (true, Some("")) => Kernel::Plain,
        (true, Some(_)) => Kernel::Tunnel,
    }
}

/// The communities on a route as it left a filter.
fn added(r: &Route) -> Vec<AnyCommunity> {
    let standard = (r.bgp_community.iter().flatten())
        .map(|(a, b)| AnyCommunity::Standard(Community(a << 16 | b)));
    let large = (r.bgp_large_community.iter().flatten())
        .map(|(a, b, c)| AnyCommunity::Large(LargeCommunity([*a, *b, *c])));
    standard.chain(large).collect()
}

/// The `n`th address of a prefix.
fn nth(net: &IpNet, n: u128) -> Option<IpAddr> {
    match net.network() {
        IpAddr::V4(a) => u32::try_from(n)
            .ok()
            .and_then(|n| u32::from(a).checked_add(n))
            .map(|x| IpAddr::V4(x.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(n).map(|x| IpAddr::V6(x.into())),
    }
}

/// Probe subnets of `net`: the last and first subnet half a bit longer, of block length
/// (/26, /122) and single addresses (the last but one, never the network address).
fn children(net: IpNet, max: u8) -> impl Iterator<Item = IpNet> {
    let block = if max == 32 { 26 } else { 122 };
    let len = net.prefix_len();
    let size = |bits: u8| 1u128.checked_shl(u32::from(bits)).unwrap_or(0);
    let mut out = Vec::new();
    for t in [len + 1, block, max] {
        if t <= len || t > max {
            continue;
        }
        // Wrapping: a /0 spans 2^128, which is 0 in u128.
        let last = size(max - len).wrapping_sub(size(max - t));
        let offsets = if t == max {
            vec![last.saturating_sub(1), 1]
        } else {
            vec![last, 0]
        };
        for off in offsets {
            if let Some(p) = nth(&net, off).and_then(|a| IpNet::new(a, t).ok())
                && !out.contains(&p)
            {
                out.push(p);
            }
        }
    }
    out.into_iter()
}

/// A filter's text without positions: peers whose clauses read the same decide alike.
fn shape(f: &FilterRef) -> String {
    let text = format!("{f:?}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("Pos {") {
        out.push_str(&rest[..i]);
        rest = rest[i..].find('}').map_or("", |j| &rest[i + j + 1..]);
    }
    out.push_str(rest);
    out
}

/// The prefixes written in a configuration's filters.
#[derive(Default)]
struct Literals {
    /// Every prefix, with its place.
    all: Vec<(IpNet, Pos)>,
    /// Those a next hop is compared with (`bgp_next_hop ~ SUBNET`).
    next_hop: Vec<IpNet>,
}

/// Every prefix written in a filter, function or inline clause.
fn prefix_literals(config: &ast::Config) -> Literals {
    let mut out = Literals::default();
    for item in &config.items {
        match &item.kind {
            ItemKind::Function(f) => stmts(&f.body, &mut out),
            ItemKind::Filter(f) => stmts(&f.body, &mut out),
            ItemKind::Protocol(p) | ItemKind::Template(p) => {
                for o in &p.options {
                    if let OptKind::Import(FilterRef::Inline(b))
                    | OptKind::Export(FilterRef::Inline(b)) = &o.kind
                    {
                        stmts(b, &mut out);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn stmts(body: &[Stmt], out: &mut Literals) {
    for s in body {
        match &s.kind {
            StmtKind::If { cond, then, els } => {
                expr(cond, out);
                stmts(std::slice::from_ref(then), out);
                if let Some(e) = els {
                    stmts(std::slice::from_ref(e), out);
                }
            }
            StmtKind::Block(b) => stmts(b, out),
            StmtKind::Return(Some(e)) => expr(e, out),
            StmtKind::Print(es) | StmtKind::Call { args: es, .. } => {
                es.iter().for_each(|e| expr(e, out))
            }
            StmtKind::Assign { value: e, .. } | StmtKind::Method { arg: e, .. } => expr(e, out),
            StmtKind::Case { subject, arms } => {
                expr(subject, out);
                for a in arms {
                    a.values.iter().for_each(|e| expr(e, out));
                    stmts(&a.body, out);
                }
            }
            StmtKind::Accept | StmtKind::Reject | StmtKind::Return(None) => {}
        }
    }
}

fn expr(e: &Expr, out: &mut Literals) {
    match &e.kind {
        ExprKind::Prefix(p) => out.all.push((p.trunc(), e.pos.clone())),
        ExprKind::Set(items) => {
            for i in items {
                match i {
                    SetItem::Prefix { net, .. } => out.all.push((net.trunc(), e.pos.clone())),
                    SetItem::Value(v) => expr(v, out),
                }
            }
        }
        ExprKind::Tuple(xs) | ExprKind::Call { args: xs, .. } => {
            xs.iter().for_each(|x| expr(x, out))
        }
        ExprKind::Defined(x) | ExprKind::Not(x) => expr(x, out),
        ExprKind::Binary { lhs, rhs, .. } => {
            let before = out.all.len();
            expr(lhs, out);
            expr(rhs, out);
            if let ExprKind::Attr(ast::Attr::BgpNextHop) = lhs.kind {
                let found: Vec<IpNet> = out.all[before..].iter().map(|(n, _)| *n).collect();
                out.next_hop.extend(found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn probe_subnets_lie_inside_and_at_both_ends() {
        let got: Vec<IpNet> = children(net("192.168.0.0/16"), 32).collect();
        assert_eq!(
            got,
            [
                "192.168.128.0/17",
                "192.168.0.0/17",
                "192.168.255.192/26",
                "192.168.0.0/26"
            ]
            .iter()
            .map(|s| net(s))
            .chain([net("192.168.255.254/32"), net("192.168.0.1/32")])
            .collect::<Vec<_>>()
        );
        // A /0 spans the whole space without overflowing; a host route has no subnets.
        assert!(children(net("::/0"), 128).all(|c| c.prefix_len() > 0));
        assert!(children(net("0.0.0.0/0"), 32).any(|c| c == net("255.255.255.254/32")));
        assert_eq!(children(net("10.0.0.1/32"), 32).count(), 0);
        assert_eq!(
            children(net("10.0.0.0/31"), 32).collect::<Vec<_>>(),
            vec![net("10.0.0.0/32"), net("10.0.0.1/32")]
        );
    }

    #[test]
    fn clauses_that_read_the_same_have_one_shape() {
        let parse = |text: &str| {
            super::super::parse::parse_str("t.cfg", text, ast::Family::V4)
                .unwrap()
                .filter("f")
                .map(|f| FilterRef::Inline(f.body.clone()))
                .unwrap()
        };
        let a = parse("filter f { if net ~ 10.0.0.0/8 then accept; reject; }");
        let b = parse("\n\n  filter f {\n if net ~ 10.0.0.0/8\n then accept; reject; }");
        let c = parse("filter f { if net ~ 10.0.0.0/9 then accept; reject; }");
        assert_eq!(shape(&a), shape(&b));
        assert_ne!(shape(&a), shape(&c));
        assert!(!shape(&a).contains("col:"), "{}", shape(&a));
    }
}
