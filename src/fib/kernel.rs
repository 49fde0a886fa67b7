//! The kernel's side of the FIB: what wren holds in the table, and the requests that bring
//! it to what the RIB wants. The RIB is the only copy of the wanted routes: per prefix this
//! keeps a 64-bit digest of the route in the kernel and whether this run wants it, so a
//! million routes cost a few tens of bytes each. Routes a previous run left (same protocol
//! number) are kept untouched while still wanted and removed only once start-up sync is over,
//! so a restart changes nothing in the data plane. On shutdown routes stay (BIRD's `persist`).

use std::hash::{BuildHasher, Hash, Hasher};
use std::io;

use ipnet::IpNet;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, warn};

use crate::prefix_map::PrefixMap;
use crate::wire::Family;

use crate::route::{KernelRoute, KernelStats, Learning, Target};

use super::netlink::{InterfaceChange, KernelEvent, Netlink, Request, Table};

/// `Held`'s top bit: this run wants the route (as opposed to a leftover of a previous run).
const WANTED: u64 = 1 << 63;

/// A route held in the kernel: its digest, and the `WANTED` bit.
type Held = u64;

/// What wren holds in the kernel, by prefix.
#[derive(Default)]
struct Holdings(PrefixMap<Held>);

/// `PrefixMap`'s key for a kernel prefix: the kernel table is unicast.
fn key(net: &IpNet) -> (Family, IpNet) {
    (Family::unicast_of(net), *net)
}

impl Holdings {
    fn get(&self, net: &IpNet) -> Option<Held> {
        self.0.get(&key(net)).copied()
    }

    fn insert(&mut self, net: &IpNet, held: Held) -> Option<Held> {
        self.0.insert(&key(net), held)
    }

    fn remove(&mut self, net: &IpNet) -> Option<Held> {
        self.0.remove(&key(net))
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// Every prefix held, with its state.
    fn iter(&self) -> impl Iterator<Item = (IpNet, Held)> + '_ {
        self.0.iter().map(|((_, net), h)| (net, *h))
    }
}

/// A route's digest, the same for the route as wren asks for it and as the kernel reports
/// it back: the kernel's own additions (the interface it resolved for a plain next hop, its
/// default IPv6 metric) are left out, as `KernelRoute::satisfied_by` leaves them out.
pub fn digest(r: &KernelRoute) -> u64 {
    let mut h = foldhash::fast::FixedState::with_seed(0x77_72_65_6e).build_hasher();
    r.net.hash(&mut h);
    match &r.target {
        Target::Blackhole => 0u8.hash(&mut h),
        Target::Via(hops) => {
            1u8.hash(&mut h);
            for hop in hops {
                hop.gateway.hash(&mut h);
                hop.onlink.hash(&mut h);
                if hop.onlink {
                    hop.oif.hash(&mut h);
                }
            }
        }
    }
    h.finish() & !WANTED
}

pub struct Fib {
    nl: Netlink,
    table: Table,
    held: Holdings,
    /// Start-up sync is over: routes nobody wants may go.
    synced: bool,
    /// Where learned alien routes go; `None`: not learning.
    learner: Option<UnboundedSender<Learning>>,
    /// Where to ask for prefixes whose wanted route must be sent again (a route deleted
    /// behind our back, one that went missing); `None`: nobody to ask.
    again: Option<UnboundedSender<Vec<IpNet>>>,
    pub stats: KernelStats,
}

impl Fib {
    /// Opens netlink and reads the routes a previous run installed.
    pub fn open(table: Table) -> io::Result<Fib> {
        let mut nl = Netlink::open()?;
        let mut held = Holdings::default();
        for r in nl.dump(table)? {
            held.insert(&r.net, digest(&r));
        }
        info!(routes = held.len(), "kernel table read");
        Ok(Fib {
            nl,
            table,
            held,
            synced: false,
            learner: None,
            again: None,
            stats: KernelStats::default(),
        })
    }

    /// The netlink port of our requests (see `Monitor::open`).
    pub fn port(&self) -> u32 {
        self.nl.port()
    }

    /// Every link and interface address now (for `super::interfaces`).
    pub fn interfaces(&mut self) -> io::Result<Vec<InterfaceChange>> {
        self.nl.dump_interfaces()
    }

    /// Learns other protocols' routes from now on: all of them at once now, then each change.
    pub fn learn(&mut self, to: UnboundedSender<Learning>) {
        self.learner = Some(to);
        self.reconcile();
    }

    /// Where to ask for wanted routes again when the kernel lost them.
    pub fn ask_again(&mut self, to: UnboundedSender<Vec<IpNet>>) {
        self.again = Some(to);
    }

    fn tell(&self, l: Learning) {
        if let Some(to) = &self.learner {
            let _ = to.send(l);
        }
    }

    fn want_again(&mut self, nets: Vec<IpNet>) {
        if nets.is_empty() {
            return;
        }
        self.stats.repaired += nets.len() as u64;
        if let Some(to) = &self.again {
            let _ = to.send(nets);
        }
    }

    /// Applies RIB changes in order: `None` means the prefix is no longer wanted. What is
    /// held is updated as each request is queued, so a prefix changed twice in one batch
    /// gets its requests in order; failures are rolled back. Prefixes of a family the table
    /// does not serve are another process's and left alone.
    pub fn apply(&mut self, changes: Vec<(IpNet, Option<KernelRoute>)>) {
        let mut reqs = Vec::new();
        let mut before = Vec::new();
        for (net, want) in changes {
            if !self.table.holds(&net) {
                continue;
            }
            let have = self.held.get(&net);
            match want {
                Some(r) => {
                    let d = digest(&r);
                    if have.is_some_and(|h| h & !WANTED == d) {
                        self.held.insert(&net, d | WANTED);
                    } else {
                        self.held.insert(&net, d | WANTED);
                        before.push(have);
                        reqs.push(Request::Replace(r));
                    }
                }
                None => {
                    self.stats.refused.remove(&net);
                    // Before start-up sync a leftover route stays until the RIB decides.
                    if let Some(h) = have.filter(|h| h & WANTED != 0 || self.synced) {
                        self.held.remove(&net);
                        before.push(Some(h));
                        reqs.push(Request::Delete(net));
                    }
                }
            }
        }
        self.run(reqs, before);
    }

    /// Follows a kernel notification. A route of ours deleted by someone else (`ip route
    /// del`, or the kernel flushing a device's IPv6 routes) is asked for again when still
    /// wanted. Lost notifications re-read the table; link and address changes are the
    /// thread's (`super::interfaces`), which then calls `reconcile`.
    pub fn event(&mut self, e: KernelEvent) {
        match e {
            KernelEvent::Deleted(r) => {
                // Our own deletes already left `held`: only a route we still hold counts.
                let Some(h) = self.held.get(&r.net).filter(|h| h & !WANTED == digest(&r)) else {
                    return;
                };
                self.held.remove(&r.net);
                if h & WANTED != 0 {
                    info!(prefix = %r.net, "route deleted behind our back: putting it back");
                    self.want_again(vec![r.net]);
                }
            }
            KernelEvent::Learned(a) => self.tell(Learning::Learned(a)),
            KernelEvent::Forgotten(net) => self.tell(Learning::Forgotten(net)),
            // The thread's: it reads the table again once for a whole batch.
            KernelEvent::Interface(_) | KernelEvent::Overrun => {}
        }
        self.stats.installed = self.held.len();
    }

    /// Reads the table again and closes every gap: wanted routes that are missing or changed
    /// (and those refused before) are asked for again; after start-up sync, routes of ours
    /// nobody wants go. Other protocols' routes are learned afresh. Run when links or
    /// addresses change (the kernel flushes a device's IPv4 routes without telling) and
    /// every `reconcile_interval`.
    pub fn reconcile(&mut self) {
        let (dumped, aliens) = match self.nl.dump_all(self.table) {
            Ok(d) => d,
            Err(e) => {
                warn!("reading the kernel table: {e}");
                return;
            }
        };
        self.tell(Learning::All(aliens));
        let mut now = Holdings::default();
        for r in &dumped {
            now.insert(&r.net, digest(r));
        }
        let mut again: Vec<IpNet> = self.stats.refused.keys().copied().collect();
        for (net, h) in self.held.iter() {
            match now.get(&net) {
                Some(d) if d == h & !WANTED => {
                    now.insert(&net, h);
                }
                _ if h & WANTED != 0 => again.push(net),
                _ => {}
            }
        }
        self.held = now;
        let stale: Vec<IpNet> = if self.synced {
            self.held
                .iter()
                .filter(|(_, h)| h & WANTED == 0)
                .map(|(net, _)| net)
                .collect()
        } else {
            Vec::new()
        };
        if !again.is_empty() || !stale.is_empty() {
            info!(
                again = again.len(),
                stale = stale.len(),
                "kernel table reconciled"
            );
        }
        self.want_again(again);
        self.remove(stale);
    }

    /// Start-up sync is over (every peer's End-of-RIB, or the wait ran out): routes left
    /// from a previous run that nothing wants now are removed.
    pub fn finish_sync(&mut self) {
        if self.synced {
            return;
        }
        self.synced = true;
        let stale: Vec<IpNet> = self
            .held
            .iter()
            .filter(|(_, h)| h & WANTED == 0)
            .map(|(net, _)| net)
            .collect();
        info!(stale = stale.len(), "start-up sync done");
        self.remove(stale);
    }

    fn remove(&mut self, nets: Vec<IpNet>) {
        let before = nets.iter().map(|n| self.held.remove(n)).collect();
        self.run(nets.into_iter().map(Request::Delete).collect(), before);
    }

    /// Sends the requests; `before[i]` is what was held for request `i`'s prefix before it,
    /// put back when the kernel refuses.
    fn run(&mut self, reqs: Vec<Request>, before: Vec<Option<Held>>) {
        if reqs.is_empty() {
            return;
        }
        let results = self.nl.batch(self.table, &reqs);
        debug!(requests = reqs.len(), "kernel table changed");
        self.stats.requests += reqs.len() as u64;
        for ((req, res), was) in reqs.into_iter().zip(results).zip(before) {
            let net = req.net();
            match (req, res) {
                (Request::Replace(_), Ok(())) => {
                    self.stats.refused.remove(&net);
                }
                (Request::Delete(_), Ok(())) => {}
                // Already gone: the goal is met.
                (Request::Delete(_), Err(e)) if e.raw_os_error() == Some(libc::ESRCH) => {}
                (req, Err(e)) => {
                    self.stats.errors += 1;
                    match was {
                        Some(h) => self.held.insert(&net, h),
                        None => self.held.remove(&net),
                    };
                    let what = if matches!(req, Request::Replace(_)) {
                        self.stats.refused.insert(net, e.to_string());
                        "install"
                    } else {
                        "remove"
                    };
                    warn!(prefix = %net, "kernel refused to {what} the route: {e}");
                }
            }
        }
        self.stats.installed = self.held.len();
    }
}
