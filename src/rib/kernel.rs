//! What the RIB wants in the kernel, handed to the FIB as data: for each prefix whose best
//! or multipath set changed, the kernel route Calico's kernel filter writes for it (contract
//! §3.7), or `None` to remove it. Changes wait here as marks, coalesced per prefix, until the
//! FIB thread has room for them (`kernel_changes`), so a fast feed never piles up wanted
//! routes in memory.

use ipnet::IpNet;

use crate::policy::calico::KernelKind;
use crate::prefix_map;
use crate::route::{Hop, Interfaces, KernelRoute, Target};
use crate::wire::Family;

use super::Rib;
use crate::attrs::PathSource;

impl Rib {
    /// Marks every prefix for the FIB (next hops resolve differently, a pool's encapsulation
    /// changed), a part of the table at a time as the FIB takes them, so a million routes are
    /// never all marked at once.
    pub fn sweep_fib(&mut self) {
        self.fib_sweep = Some(0);
    }

    /// Tops `fib_dirty` up to `room` prefixes from a sweep under way.
    fn fib_refill(&mut self, room: usize) {
        while let Some(i) = self.fib_sweep
            && self.fib_dirty.len() < room
        {
            self.fib_dirty.extend(self.table.part_keys(i));
            self.fib_sweep = (i + 1 < prefix_map::PARTS).then_some(i + 1);
        }
    }

    /// Whether changes wait for the FIB.
    pub fn fib_pending(&self) -> bool {
        !self.fib_dirty.is_empty() || self.fib_sweep.is_some()
    }

    /// Prefixes marked for the FIB and not yet handed over (the daemon's back-pressure).
    pub fn fib_backlog(&self) -> usize {
        self.fib_dirty.len()
    }

    /// Forgets what waits for the FIB (there is none).
    pub fn fib_forget(&mut self) {
        self.fib_dirty.clear();
        self.fib_sweep = None;
        self.release_work_space();
    }

    /// The kernel lost these prefixes' routes (deleted behind our back, refused): they are
    /// handed over again.
    pub fn fib_again(&mut self, nets: Vec<IpNet>) {
        self.fib_dirty
            .extend(nets.into_iter().map(|n| (Family::unicast_of(&n), n)));
    }

    /// The changes for up to `room` marked prefixes, in address order (the kernel's trie
    /// takes a run of neighbouring prefixes with fewer node resizes than hash order).
    pub fn kernel_changes(&mut self, room: usize) -> Vec<(IpNet, Option<KernelRoute>)> {
        self.fib_refill(room);
        if self.fib_dirty.is_empty() || room == 0 {
            return Vec::new();
        }
        let mut keys: Vec<_> = if self.fib_dirty.len() <= room {
            let all = std::mem::take(&mut self.fib_dirty);
            all.into_iter().collect()
        } else {
            let some: Vec<_> = self.fib_dirty.iter().take(room).copied().collect();
            for k in &some {
                self.fib_dirty.remove(k);
            }
            some
        };
        keys.sort_unstable();
        let none = Interfaces::default();
        let ifs = self.next_hops.interfaces().unwrap_or(&none);
        keys.iter()
            .map(|key| (key.1, self.kernel_route(key, ifs)))
            .collect()
    }

    /// The kernel route for a prefix: its best path and the equal-cost ones, written the way
    /// Calico's export filter says for its pool (contract §3.7).
    fn kernel_route(&self, key: &(Family, IpNet), ifs: &Interfaces) -> Option<KernelRoute> {
        let net = key.1;
        let entry = self.table.get(key)?;
        // A route learned from the kernel is never written back (contract §3.6); one whose
        // next hop resolves nowhere is not written either (BIRD keeps it unreachable).
        let best = (entry.best()).filter(|b| b.source() != PathSource::Kernel && b.reachable())?;
        // Own blocks have no next hop (blackholes); static routes have their gateway.
        let local = best.source() == PathSource::Local && best.attrs.next_hop.is_none();
        let kind = self
            .calico
            .kernel_kind(&net, local, best.attrs.next_hop, |a| ifs.connected(a));
        // Paths from different peers may share a next hop (a client of two reflectors): the
        // kernel route has each next hop once, as BIRD's `merge paths` writes it.
        let hops = |tunnel: bool| -> Vec<Hop> {
            let mut hops: Vec<Hop> = Vec::new();
            for next_hop in entry.multipath().filter_map(|p| p.attrs.next_hop) {
                // `gateway recursive`: a next hop inside a static route (reachableBy) is
                // written as that route's gateway, as the kernel resolves no gateway
                // through a gateway route.
                let gateway = match ifs.connected(next_hop) {
                    true => next_hop,
                    false => self.next_hops.via(next_hop).unwrap_or(next_hop),
                };
                if !hops.iter().any(|h| h.gateway == gateway) {
                    hops.push(Hop {
                        gateway,
                        oif: if tunnel { ifs.tunl0 } else { None },
                        onlink: tunnel,
                    });
                }
            }
            hops
        };
        // Of an ECMP route's next hops, those on a connected subnet are written when there
        // are any (BIRD's direct gateway check). Otherwise the route is left to the kernel's
        // own resolution (multihop peers), which refuses it if it cannot reach them.
        let direct = |mut h: Vec<Hop>| {
            if h.iter().any(|h| ifs.connected(h.gateway)) {
                h.retain(|h| ifs.connected(h.gateway));
            }
            h
        };
        let target = match kind {
            KernelKind::Skip => return None,
            KernelKind::Blackhole => Target::Blackhole,
            // Without a tunl0 device the route goes plain, as BIRD's krt_tunnel does.
            KernelKind::Tunnel if ifs.tunl0.is_some() => Target::Via(hops(true)),
            KernelKind::Tunnel | KernelKind::Plain => Target::Via(direct(hops(false))),
        };
        if matches!(&target, Target::Via(h) if h.is_empty()) {
            return None;
        }
        // Calico 3.32's `calico_kernel_programming` gives BGP routes a metric from their
        // LOCAL_PREF; other routes keep the configured one (none by default).
        let metric = match best.source() {
            PathSource::Peer(_) => self.calico.metric(best.source(), &best.attrs),
            _ => None,
        };
        Some(KernelRoute {
            net,
            metric: metric.or(self.kernel_metric),
            target,
        })
    }
}
