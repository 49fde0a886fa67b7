//! Calico's export rules (contract §3.2) and how routes inside a pool reach the kernel
//! (contract §3.7): own blocks are announced and nothing more specific inside them is;
//! service ranges are announced; learned routes are passed on only inside pools whose BGP
//! export is on.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::attrs::{AttrSet, PathSource};
use crate::model::{AnyCommunity, Config, Encapsulation, Pool, StaticRoute};

/// The node's Calico settings, as the RIB and FIB apply them.
#[derive(Debug, Clone, Default)]
pub struct Calico {
    /// Own IPAM blocks.
    pub blocks: Vec<IpNet>,
    pub services: Vec<IpNet>,
    pub pools: Vec<Pool>,
    pub communities: Vec<(IpNet, Vec<AnyCommunity>)>,
    /// Routes through a gateway (`reachableBy`).
    pub static_routes: Vec<StaticRoute>,
    /// Calico 3.32's route priority, coupling metric and LOCAL_PREF
    /// (`normal_route_priority`).
    pub normal_route_priority: Option<u32>,
}

/// 2^31 − 1: Calico 3.32 writes LOCAL_PREF and the kernel metric as this minus each other.
pub const PRIORITY_MAX: u32 = 2_147_483_647;
/// BIRD's `default bgp_local_pref`, which a BGP route without LOCAL_PREF gets (eBGP).
const DEFAULT_LOCAL_PREF: u32 = 100;

/// How a route is written to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelKind {
    /// Own block: `blackhole PREFIX proto bird`.
    Blackhole,
    /// `via NEXT_HOP dev tunl0 onlink`.
    Tunnel,
    /// `via NEXT_HOP` on the connected interface.
    Plain,
    /// Not written (service ranges; VXLAN pools, which Felix programs).
    Skip,
}

/// Steps 2 and 3 of `calico_export_to_bgp_peers` (contract §3.2), for routes learned from the
/// kernel with their device: Felix's tunnel devices (`*.cali`, `*.calico`, `tunl0`) are not
/// announced over iBGP, and eBPF-local routes (`bpf*.cali`) nowhere.
pub fn exports_device(device: Option<&str>, ibgp: bool) -> bool {
    let Some(d) = device else {
        return true;
    };
    let tunnel = d.ends_with(".cali") || d.ends_with(".calico") || d == "tunl0";
    let bpf = d.starts_with("bpf") && d.ends_with(".cali");
    !(bpf || (ibgp && tunnel))
}

/// Whether `outer` holds `inner`: the same family, no longer, the same leading bits. It is
/// ipnet's `contains` for two prefixes without its comparisons of generic addresses: the
/// rules above ask it for every prefix a flush exports.
fn covers(outer: &IpNet, inner: &IpNet) -> bool {
    match (outer, inner) {
        (IpNet::V4(o), IpNet::V4(i)) => {
            o.prefix_len() <= i.prefix_len()
                && u32::from(i.addr()) & u32::from(o.netmask()) == u32::from(o.network())
        }
        (IpNet::V6(o), IpNet::V6(i)) => {
            o.prefix_len() <= i.prefix_len()
                && u128::from(i.addr()) & u128::from(o.netmask()) == u128::from(o.network())
        }
        _ => false,
    }
}

impl Calico {
    pub fn from_config(c: &Config) -> Calico {
        Calico {
            blocks: c.originate.clone(),
            services: c.services.clone(),
            pools: c.pools.clone(),
            communities: (c.communities.iter())
                .map(|pc| (pc.prefix, pc.communities.clone()))
                .collect(),
            static_routes: c.static_routes.clone(),
            normal_route_priority: c.normal_route_priority,
        }
    }

    /// A route's `krt_metric` after Calico 3.32's per-peer export prelude
    /// (`buildExportFilter`): a BGP route's is 2^31 − 1 − LOCAL_PREF; a learned kernel
    /// route keeps its own (`krt_metric`), the normal priority
    /// when it has none; the node's own routes have none, so the normal priority. `None`
    /// when the coupling is off.
    pub fn metric(&self, src: PathSource, a: &AttrSet) -> Option<u32> {
        let normal = self.normal_route_priority?;
        Some(match src {
            PathSource::Peer(_) => {
                PRIORITY_MAX.saturating_sub(a.local_pref.unwrap_or(DEFAULT_LOCAL_PREF))
            }
            PathSource::Kernel => a.krt_metric.unwrap_or(normal),
            PathSource::Local => normal,
        })
    }

    /// The LOCAL_PREF the prelude gives a route of this node's (own or learned from the
    /// kernel) on export: 2^31 − 1 − its metric, so node priority travels to iBGP peers.
    /// A BGP route keeps its own. `None` when the coupling is off or the route is a peer's.
    pub fn local_pref(&self, src: PathSource, a: &AttrSet) -> Option<u32> {
        match src {
            PathSource::Peer(_) => None,
            _ => self.metric(src, a).map(|m| PRIORITY_MAX.saturating_sub(m)),
        }
    }

    /// Whether a route from a peer is elevated: LOCAL_PREF above 2^31 − 1 − the normal
    /// priority, which Calico's import filter gives preference 200 (`buildImportFilter`).
    pub fn elevated_import(&self, local_pref: u32) -> bool {
        (self.normal_route_priority).is_some_and(|n| local_pref > PRIORITY_MAX.saturating_sub(n))
    }

    /// `calico_aggr`'s 3.32 escape (`net ~ BLOCK && krt_metric < PRIORITY` → accept): a route
    /// inside an own block with an elevated metric (a KubeVirt VM live-migrated here) is
    /// announced, unless its pool's BGP export is off (step 1 comes first, contract §3.2).
    pub fn elevated(&self, net: &IpNet, src: PathSource, a: &AttrSet) -> bool {
        (self.metric(src, a)).is_some_and(|m| self.normal_route_priority.is_some_and(|n| m < n))
            && self.pool_of(net).is_none_or(|p| p.bgp_export)
            && self.blocks.iter().any(|b| covers(b, net) && b != net)
    }

    /// Prefixes this node originates: its blocks and the service ranges.
    pub fn originated(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.blocks.iter().chain(&self.services).copied()
    }

    fn pool_of(&self, net: &IpNet) -> Option<&Pool> {
        self.pools.iter().find(|p| covers(&p.cidr, net))
    }

    /// `calico_export_to_bgp_peers` (contract §3.2) for the prefix, first match wins.
    pub fn exports(&self, net: &IpNet) -> bool {
        let pool = self.pool_of(net);
        if pool.is_some_and(|p| !p.bgp_export) {
            return false;
        }
        // Aggregation: a block is announced, anything more specific inside it is not.
        if let Some(b) = self.blocks.iter().find(|b| covers(b, net)) {
            return b == net;
        }
        pool.is_some() || self.services.iter().any(|s| covers(s, net))
    }

    /// Which of the first 64 community ranges hold `net`, as a bit mask: prefixes with the
    /// same mask get the same communities.
    pub fn community_mask(&self, net: &IpNet) -> u64 {
        self.communities
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, (range, _))| covers(range, net))
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// Adds the communities configured for ranges holding `net` (Calico's prefixAdvertisements).
    pub fn add_communities(&self, net: &IpNet, attrs: &mut AttrSet) {
        for (range, list) in &self.communities {
            if !covers(range, net) {
                continue;
            }
            for c in list {
                match c {
                    AnyCommunity::Standard(s) if !attrs.communities.contains(s) => {
                        attrs.communities.push(*s)
                    }
                    AnyCommunity::Large(l) if !attrs.large_communities.contains(l) => {
                        attrs.large_communities.push(*l)
                    }
                    _ => {}
                }
            }
        }
    }

    /// `calico_kernel_programming` (contract §3.7): how a best route for `net` is written.
    /// `connected` says whether the next hop is on a directly connected subnet.
    pub fn kernel_kind(
        &self,
        net: &IpNet,
        local: bool,
        next_hop: Option<IpAddr>,
        connected: impl Fn(IpAddr) -> bool,
    ) -> KernelKind {
        if self.services.iter().any(|s| covers(s, net)) {
            return KernelKind::Skip;
        }
        let encapsulation = self.pool_of(net).map(|p| p.encapsulation);
        // Felix programs VXLAN pools, the blackholes of its own blocks included (`proto 80`,
        // contract §3.7, §3.8): the kernel filter rejects the whole pool.
        if let Some(Encapsulation::Vxlan | Encapsulation::VxlanCrossSubnet) = encapsulation {
            return KernelKind::Skip;
        }
        if local {
            return KernelKind::Blackhole;
        }
        match encapsulation {
            Some(Encapsulation::Ipip) => KernelKind::Tunnel,
            Some(Encapsulation::IpipCrossSubnet) if !next_hop.is_some_and(connected) => {
                KernelKind::Tunnel
            }
            _ => KernelKind::Plain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `covers` is ipnet's `contains` for prefixes, in either family and across them.
        #[test]
        fn covers_is_contains(
            a in any::<u128>(), b in any::<u128>(), la in 0u8..=128, lb in 0u8..=128,
            same_bits in 0u8..=128, v4a in any::<bool>(), v4b in any::<bool>(),
        ) {
            // `b` shares its first `same_bits` bits with `a`, so that nesting is common.
            let keep = u128::MAX.checked_shl(u32::from(128 - same_bits)).unwrap_or(0);
            let b = (a & keep) | (b & !keep);
            let make = |v4: bool, x: u128, l: u8| -> IpNet {
                match v4 {
                    true => ipnet::Ipv4Net::new(((x >> 96) as u32).into(), l.min(32))
                        .unwrap()
                        .into(),
                    false => ipnet::Ipv6Net::new(x.into(), l).unwrap().into(),
                }
            };
            let (outer, inner) = (make(v4a, a, la), make(v4b, b, lb));
            prop_assert_eq!(covers(&outer, &inner), outer.contains(&inner));
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn calico() -> Calico {
        let pool = |cidr: &str, encapsulation, bgp_export| Pool {
            cidr: net(cidr),
            encapsulation,
            bgp_export,
        };
        Calico {
            blocks: vec![net("198.18.10.0/26")],
            services: vec![net("203.0.113.0/24")],
            pools: vec![
                pool("198.18.0.0/16", Encapsulation::IpipCrossSubnet, true),
                pool("198.19.0.0/16", Encapsulation::None, false),
                pool("2001:db8:1::/48", Encapsulation::Vxlan, true),
            ],
            communities: vec![(net("198.18.0.0/16"), vec!["65000:1".parse().unwrap()])],
            static_routes: Vec::new(),
            normal_route_priority: None,
        }
    }

    #[test]
    fn learned_device_rules() {
        assert!(exports_device(None, true));
        assert!(exports_device(Some("cali12ab"), true));
        for tunnel in ["tunl0", "vxlan.calico", "wireguard.cali"] {
            assert!(!exports_device(Some(tunnel), true), "{tunnel}");
            assert!(exports_device(Some(tunnel), false), "{tunnel} over eBGP");
        }
        assert!(!exports_device(Some("bpfin.cali"), false));
    }

    #[test]
    fn export_rules_in_order() {
        let c = calico();
        let cases = [
            ("198.18.10.0/26", true, "own block"),
            ("198.18.10.5/32", false, "inside own block: aggregated"),
            (
                "198.18.20.64/26",
                true,
                "another node's block in an exported pool",
            ),
            ("198.18.20.7/32", true, "borrowed address in a pool"),
            ("198.19.1.0/26", false, "pool with BGP export off"),
            ("203.0.113.0/24", true, "service range"),
            ("203.0.113.10/32", true, "inside a service range"),
            ("192.0.2.0/24", false, "outside every pool"),
            ("0.0.0.0/0", false, "default route"),
        ];
        for (n, want, why) in cases {
            assert_eq!(c.exports(&net(n)), want, "{n}: {why}");
        }
    }

    #[test]
    fn kernel_kinds() {
        let c = calico();
        let nh: IpAddr = "198.51.100.2".parse().unwrap();
        let on_link = |_| true;
        let off_link = |_| false;
        assert_eq!(
            c.kernel_kind(&net("198.18.10.0/26"), true, None, on_link),
            KernelKind::Blackhole
        );
        assert_eq!(
            c.kernel_kind(&net("198.18.20.0/26"), false, Some(nh), on_link),
            KernelKind::Plain
        );
        assert_eq!(
            c.kernel_kind(&net("198.18.20.0/26"), false, Some(nh), off_link),
            KernelKind::Tunnel
        );
        assert_eq!(
            c.kernel_kind(&net("203.0.113.0/24"), true, None, on_link),
            KernelKind::Skip
        );
        assert_eq!(
            c.kernel_kind(&net("2001:db8:1::40/122"), false, Some(nh), on_link),
            KernelKind::Skip
        );
        // An own block in a VXLAN pool: Felix writes its blackhole.
        assert_eq!(
            c.kernel_kind(&net("2001:db8:1::/122"), true, None, on_link),
            KernelKind::Skip
        );
        assert_eq!(
            c.kernel_kind(&net("192.0.2.0/24"), false, Some(nh), off_link),
            KernelKind::Plain
        );
    }

    /// Calico 3.32's prelude, kernel filter and `calico_aggr` escape, and ≤ 3.31 without.
    #[test]
    fn metric_and_local_pref_coupling() {
        let mut c = calico();
        let lp = |v: Option<u32>| {
            let mut a = AttrSet::local();
            a.local_pref = v;
            a
        };
        let metric = |v: Option<u32>| {
            let mut a = AttrSet::local();
            a.krt_metric = v;
            a
        };
        let bgp = PathSource::Peer(0);
        assert_eq!(c.metric(bgp, &lp(Some(2_147_482_623))), None, "off");
        assert_eq!(c.local_pref(PathSource::Local, &AttrSet::local()), None);
        assert!(!c.elevated(&net("198.18.10.5/32"), PathSource::Kernel, &metric(Some(1))));
        c.normal_route_priority = Some(1024);
        // Kernel metric of a BGP route: 2^31 − 1 − LOCAL_PREF (BIRD's default 100 without).
        assert_eq!(c.metric(bgp, &lp(Some(2_147_482_623))), Some(1024));
        assert_eq!(c.metric(bgp, &lp(None)), Some(2_147_483_547));
        assert_eq!(c.metric(bgp, &lp(Some(u32::MAX))), Some(0));
        // LOCAL_PREF of the node's routes: 2^31 − 1 − metric (1024 without); a peer's keeps
        // its own.
        assert_eq!(
            c.local_pref(PathSource::Local, &AttrSet::local()),
            Some(2_147_482_623)
        );
        assert_eq!(
            c.local_pref(PathSource::Kernel, &metric(Some(100))),
            Some(2_147_483_547)
        );
        assert_eq!(c.local_pref(bgp, &lp(Some(5))), None);
        // `net ~ BLOCK && krt_metric < 1024`: inside an own block only, not the block.
        let kernel = PathSource::Kernel;
        assert!(c.elevated(&net("198.18.10.5/32"), kernel, &metric(Some(1023))));
        assert!(!c.elevated(&net("198.18.10.5/32"), kernel, &metric(Some(1024))));
        assert!(!c.elevated(&net("198.18.10.5/32"), kernel, &metric(None)));
        assert!(!c.elevated(&net("198.18.10.0/26"), kernel, &metric(Some(1))));
        assert!(!c.elevated(&net("198.18.20.5/32"), kernel, &metric(Some(1))));
        assert!(c.elevated(&net("198.18.10.5/32"), bgp, &lp(Some(2_147_483_547))));
    }

    #[test]
    fn communities_added_once() {
        let c = calico();
        let mut a = AttrSet::local();
        c.add_communities(&net("198.18.10.0/26"), &mut a);
        c.add_communities(&net("198.18.10.0/26"), &mut a);
        assert_eq!(a.communities.len(), 1);
        let mut b = AttrSet::local();
        c.add_communities(&net("192.0.2.0/24"), &mut b);
        assert!(b.communities.is_empty());
    }
}
