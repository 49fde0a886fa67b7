//! Kernel routes as the RIB and the FIB speak of them. The RIB decides what it wants in the
//! kernel (`KernelRoute`) and hands it over; the FIB thread hands back other protocols' routes
//! (`Learning`), what the node's interfaces are (`Interfaces`) and its figures
//! (`KernelStats`). Neither side imports the other: this module is all they share.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// A route as wren writes it to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    pub net: IpNet,
    pub metric: Option<u32>,
    pub target: Target,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `blackhole PREFIX` (own blocks).
    Blackhole,
    /// One next hop, or several (ECMP, `RTA_MULTIPATH`).
    Via(Vec<Hop>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    pub gateway: IpAddr,
    /// Output interface; `None` lets the kernel resolve it from the connected subnet.
    pub oif: Option<u32>,
    /// `onlink`: the gateway is reachable on `oif` without a connected subnet (IP-in-IP).
    pub onlink: bool,
}

impl KernelRoute {
    /// Whether `installed` (as dumped from the kernel) already is this route: the kernel
    /// fills in what wren left to it (the resolved interface, IPv6's default metric).
    pub fn satisfied_by(&self, installed: &KernelRoute) -> bool {
        if self.net != installed.net || self.metric.is_some_and(|m| Some(m) != installed.metric) {
            return false;
        }
        match (&self.target, &installed.target) {
            (Target::Blackhole, Target::Blackhole) => true,
            (Target::Via(want), Target::Via(have)) => {
                want.len() == have.len()
                    && want.iter().zip(have).all(|(w, h)| {
                        w.gateway == h.gateway
                            && w.onlink == h.onlink
                            && w.oif.is_none_or(|o| Some(o) == h.oif)
                    })
            }
            _ => false,
        }
    }
}

/// A route another protocol put in the table — Felix's workload routes (`dev caliX`, proto
/// 80), static, boot, DHCP — learned as BIRD's kernel protocol `learn` does (contract §3.6)
/// and never written back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alien {
    pub net: IpNet,
    pub kind: AlienKind,
    pub gateway: Option<IpAddr>,
    /// The output interface's name (`dev IF`), for Calico's export rules on device names.
    pub device: Option<String>,
    pub metric: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlienKind {
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
}

/// Other protocols' routes, for the RIB (BIRD's `learn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Learning {
    /// Every alien route in the table now (at start and after each full read).
    All(Vec<Alien>),
    Learned(Alien),
    Forgotten(IpNet),
}

/// The node's interfaces as the FIB thread follows them (links and addresses), for resolving
/// how a next hop is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interfaces {
    /// Connected subnets (address and prefix length of each interface address) of links
    /// that are up, with the interface's name, in order.
    pub subnets: Vec<(IpNet, String)>,
    /// The index of `tunl0` (Calico's IP-in-IP device) when it exists.
    pub tunl0: Option<u32>,
}

impl Interfaces {
    /// Whether `a` is on a directly connected subnet (BIRD's `gateway direct` check).
    pub fn connected(&self, a: IpAddr) -> bool {
        self.device(a).is_some()
    }

    /// The interface whose connected subnet holds `a` (the longest match): BIRD's `on IFACE`.
    pub fn device(&self, a: IpAddr) -> Option<&str> {
        self.subnets
            .iter()
            .filter(|(n, _)| n.contains(&a) && n.prefix_len() < n.max_prefix_len())
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(_, name)| name.as_str())
    }
}

/// What the daemon reads of the FIB: for `show route`, `show status` and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub installed: usize,
    pub requests: u64,
    pub errors: u64,
    /// Prefixes whose wanted route the kernel refused, with its reason; retried whenever
    /// links or addresses change and at every reconcile.
    pub refused: BTreeMap<IpNet, String>,
    /// Drift repaired: routes of ours someone else deleted or changed, put back.
    pub repaired: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_filled_fields_do_not_count_as_differences() {
        let want = KernelRoute {
            net: "198.18.0.64/26".parse().unwrap(),
            metric: None,
            target: Target::Via(vec![Hop {
                gateway: "198.51.100.2".parse().unwrap(),
                oif: None,
                onlink: false,
            }]),
        };
        let mut have = want.clone();
        have.metric = Some(1024);
        if let Target::Via(h) = &mut have.target {
            h[0].oif = Some(4);
        }
        assert!(want.satisfied_by(&have));
        if let Target::Via(h) = &mut have.target {
            h[0].gateway = "198.51.100.3".parse().unwrap();
        }
        assert!(!want.satisfied_by(&have));
    }
}
