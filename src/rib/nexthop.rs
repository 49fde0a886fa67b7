//! Next-hop reachability for the decision process (RFC 4271 §9.1.2.1): a BGP next hop is
//! reachable when it is on a connected subnet of a link that is up (BIRD's `gateway direct`)
//! or inside another protocol's unicast route learned from the kernel (`gateway recursive`,
//! which Calico's `bgp_template` sets, resolving through the `direct` and `kernel`
//! protocols' routes; contract §2). The connected subnets come from the FIB thread, which
//! follows the kernel's link and address notifications.

use std::net::IpAddr;

use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::StaticRoute;
use crate::route::Interfaces;

/// What next hops resolve against, and what each one in use resolved to.
#[derive(Debug, Default)]
pub struct NextHops {
    /// The node's interfaces as the FIB thread last reported them. `None` while the kernel
    /// is not followed (`[kernel] enabled = false`: the loopback demo and tests): every next
    /// hop is then taken as reachable, as no interface or kernel route can say otherwise.
    interfaces: Option<Interfaces>,
    /// Learned kernel routes that carry traffic (unicast), for recursive resolution.
    learned: FxHashSet<IpNet>,
    /// Static routes through a gateway (Calico's `reachableBy`): a next hop inside one
    /// resolves to its gateway, as BIRD's `gateway recursive` does through the static
    /// protocol's route.
    statics: Vec<StaticRoute>,
    /// Next hops resolved so far and whether they are reachable.
    known: FxHashMap<IpAddr, bool>,
}

impl NextHops {
    /// Whether `a` is reachable, resolved once and remembered until what it resolves
    /// against changes.
    pub fn reachable(&mut self, a: IpAddr) -> bool {
        if let Some(r) = self.known.get(&a) {
            return *r;
        }
        let r = self.resolve(a);
        self.known.insert(a, r);
        r
    }

    fn resolve(&self, a: IpAddr) -> bool {
        let Some(ifs) = &self.interfaces else {
            return true;
        };
        if ifs.connected(a) || self.via(a).is_some() {
            return true;
        }
        let max = match a {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        !self.learned.is_empty()
            && (0..=max)
                .any(|len| IpNet::new(a, len).is_ok_and(|n| self.learned.contains(&n.trunc())))
    }

    /// The gateway a next hop outside every connected subnet resolves to: that of the
    /// most specific static route holding it whose own gateway is connected.
    pub fn via(&self, a: IpAddr) -> Option<IpAddr> {
        let ifs = self.interfaces.as_ref()?;
        (self.statics.iter())
            .filter(|r| r.prefix.contains(&a) && ifs.connected(r.via))
            .max_by_key(|r| r.prefix.prefix_len())
            .map(|r| r.via)
    }

    /// The static routes through a gateway. Returns the next hops whose reachability
    /// changed.
    pub fn set_statics(&mut self, statics: &[StaticRoute]) -> FxHashSet<IpAddr> {
        if self.statics == statics {
            return FxHashSet::default();
        }
        self.statics = statics.to_vec();
        self.recheck(|_| true)
    }

    /// The interfaces the FIB thread reports (the first report starts resolution). Returns
    /// the next hops whose reachability changed.
    pub fn set_interfaces(&mut self, ifs: Interfaces) -> FxHashSet<IpAddr> {
        self.interfaces = Some(ifs);
        self.recheck(|_| true)
    }

    /// The node's interfaces, when followed.
    pub fn interfaces(&self) -> Option<&Interfaces> {
        self.interfaces.as_ref()
    }

    /// A learned route came (`unicast`: it carries traffic) or went (`None`). Returns the
    /// next hops whose reachability changed: only those inside `net` can have.
    pub fn set_learned(&mut self, net: IpNet, unicast: Option<bool>) -> FxHashSet<IpAddr> {
        let changed = match unicast {
            Some(true) => self.learned.insert(net),
            Some(false) | None => self.learned.remove(&net),
        };
        if !changed {
            return FxHashSet::default();
        }
        self.recheck(|a| net.contains(&a))
    }

    /// Forgets next hops no route uses any more (`in_use` says which are), so that a peer
    /// cycling through next hops cannot grow the map beyond what the table holds.
    pub fn retain(&mut self, in_use: impl Fn(&IpAddr) -> bool) {
        self.known.retain(|a, _| in_use(a));
        self.known.shrink_to_fit();
    }

    /// How many next hops are remembered.
    pub fn remembered(&self) -> usize {
        self.known.len()
    }

    /// Resolves the remembered next hops that `which` selects again; those that changed.
    fn recheck(&mut self, which: impl Fn(IpAddr) -> bool) -> FxHashSet<IpAddr> {
        let mut flipped = FxHashSet::default();
        let now: Vec<(IpAddr, bool)> = self
            .known
            .iter()
            .filter(|(a, _)| which(**a))
            .map(|(a, was)| (*a, *was, self.resolve(*a)))
            .filter(|(_, was, is)| was != is)
            .map(|(a, _, is)| (a, is))
            .collect();
        for (a, is) in now {
            self.known.insert(a, is);
            flipped.insert(a);
        }
        flipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn direct_then_recursive() {
        let mut n = NextHops::default();
        // Not following the kernel: everything is reachable.
        assert!(n.reachable(ip("203.0.113.9")));
        let ifs = Interfaces {
            subnets: vec![(net("198.51.100.0/24"), "eth0".into())],
            tunl0: None,
        };
        assert_eq!(
            n.set_interfaces(ifs),
            [ip("203.0.113.9")].into_iter().collect()
        );
        assert!(!n.reachable(ip("203.0.113.9")));
        assert!(n.reachable(ip("198.51.100.7")));
        // A learned route elsewhere changes nothing; one holding the next hop makes it
        // reachable, and its going makes it unreachable again.
        assert!(n.set_learned(net("192.0.2.0/24"), Some(true)).is_empty());
        assert_eq!(
            n.set_learned(net("203.0.113.0/24"), Some(true)),
            [ip("203.0.113.9")].into_iter().collect()
        );
        assert!(n.reachable(ip("203.0.113.9")));
        assert_eq!(n.set_learned(net("203.0.113.0/24"), None).len(), 1);
        assert!(!n.reachable(ip("203.0.113.9")));
        // A blackhole does not carry traffic.
        assert!(n.set_learned(net("0.0.0.0/0"), Some(false)).is_empty());
        assert!(!n.reachable(ip("203.0.113.9")));
        n.retain(|a| *a == ip("198.51.100.7"));
        assert_eq!(n.remembered(), 1);
    }

    #[test]
    fn through_a_static_route_to_its_gateway() {
        let mut n = NextHops::default();
        n.set_interfaces(Interfaces {
            subnets: vec![(net("198.51.100.0/24"), "eth0".into())],
            tunl0: None,
        });
        let tor = ip("203.0.113.254");
        assert!(!n.reachable(tor));
        assert_eq!(n.via(tor), None);
        // reachableBy: `route 203.0.113.254/32 via 198.51.100.1`.
        let statics = [StaticRoute {
            prefix: net("203.0.113.254/32"),
            via: ip("198.51.100.1"),
        }];
        assert_eq!(n.set_statics(&statics), [tor].into_iter().collect());
        assert!(n.reachable(tor));
        assert_eq!(n.via(tor), Some(ip("198.51.100.1")));
        assert!(n.set_statics(&statics).is_empty());
        // A gateway that is not connected resolves nothing.
        let far = [StaticRoute {
            prefix: net("203.0.113.254/32"),
            via: ip("192.0.2.1"),
        }];
        assert_eq!(n.set_statics(&far).len(), 1);
        assert!(!n.reachable(tor));
        assert_eq!(n.via(tor), None);
    }
}
