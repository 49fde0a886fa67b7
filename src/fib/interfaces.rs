//! The node's links and addresses as the FIB thread follows them: read once at start (and
//! after lost notifications), then kept up to date from the kernel's link and address
//! notifications (what BIRD's device protocol follows), so nobody re-reads them per route.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::route::Interfaces;

use super::netlink::InterfaceChange;

/// A link: its name, whether it carries traffic, and its connected subnets.
#[derive(Debug, Default)]
struct Link {
    name: String,
    up: bool,
    subnets: Vec<IpNet>,
}

/// Links by index.
#[derive(Debug, Default)]
pub struct Links(BTreeMap<u32, Link>);

impl Links {
    /// Follows one change.
    pub fn apply(&mut self, c: InterfaceChange) {
        match c {
            InterfaceChange::Link { index, name, up } => {
                let l = self.0.entry(index).or_default();
                l.name = name;
                l.up = up;
            }
            InterfaceChange::LinkGone(index) => {
                self.0.remove(&index);
            }
            // An address may be announced before its link (a dump reads links first, but
            // notifications interleave): the link's name and state follow.
            InterfaceChange::Address { index, subnet } => {
                let l = self.0.entry(index).or_default();
                if !l.subnets.contains(&subnet) {
                    l.subnets.push(subnet);
                }
            }
            InterfaceChange::AddressGone { index, subnet } => {
                if let Some(l) = self.0.get_mut(&index) {
                    l.subnets.retain(|s| *s != subnet);
                }
            }
        }
    }

    /// Starts again from a full read.
    pub fn reset(&mut self, all: Vec<InterfaceChange>) {
        self.0.clear();
        for c in all {
            self.apply(c);
        }
    }

    /// What the RIB needs of them: the connected subnets of links that are up, and `tunl0`.
    /// IPv6 link-local subnets are left out: a BGP next hop is never one (RFC 2545 carries the
    /// link-local address beside the global one), and every new pod interface has one.
    pub fn interfaces(&self) -> Interfaces {
        let link_local = |s: &IpNet| matches!(s, IpNet::V6(n) if n.addr().is_unicast_link_local());
        let mut subnets: Vec<(IpNet, String)> = self
            .0
            .values()
            .filter(|l| l.up)
            .flat_map(|l| {
                l.subnets
                    .iter()
                    .filter(|s| !link_local(s))
                    .map(|s| (*s, l.name.clone()))
            })
            .collect();
        subnets.sort();
        Interfaces {
            subnets,
            tunl0: self
                .0
                .iter()
                .find(|(_, l)| l.name == "tunl0")
                .map(|(i, _)| *i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn follows_links_and_addresses() {
        let mut l = Links::default();
        l.reset(vec![
            InterfaceChange::Link {
                index: 1,
                name: "lo".into(),
                up: true,
            },
            InterfaceChange::Address {
                index: 1,
                subnet: net("127.0.0.0/8"),
            },
            InterfaceChange::Address {
                index: 7,
                subnet: net("198.51.100.0/24"),
            },
            InterfaceChange::Address {
                index: 7,
                subnet: net("fe80::/64"),
            },
            InterfaceChange::Link {
                index: 7,
                name: "eth0".into(),
                up: true,
            },
        ]);
        let i = l.interfaces();
        assert_eq!(i.subnets.len(), 2, "{i:?}");
        assert_eq!(i.device("198.51.100.9".parse().unwrap()), Some("eth0"));
        assert!(i.connected("127.0.0.5".parse().unwrap()));
        assert_eq!(i.tunl0, None);
        l.apply(InterfaceChange::Link {
            index: 7,
            name: "eth0".into(),
            up: false,
        });
        assert!(!l.interfaces().connected("198.51.100.9".parse().unwrap()));
        l.apply(InterfaceChange::Link {
            index: 7,
            name: "eth0".into(),
            up: true,
        });
        l.apply(InterfaceChange::AddressGone {
            index: 7,
            subnet: net("198.51.100.0/24"),
        });
        assert!(!l.interfaces().connected("198.51.100.9".parse().unwrap()));
        l.apply(InterfaceChange::Link {
            index: 9,
            name: "tunl0".into(),
            up: true,
        });
        assert_eq!(l.interfaces().tunl0, Some(9));
        l.apply(InterfaceChange::LinkGone(9));
        assert_eq!(l.interfaces().tunl0, None);
    }
}
