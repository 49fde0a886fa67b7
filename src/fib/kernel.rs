//! The kernel as desired state: what the RIB wants installed, what is installed, and the
//! requests that close the gap. Routes a previous run left (same protocol number) are kept
//! untouched while still wanted and removed only once start-up sync is over, so a restart
//! changes nothing in the data plane. On shutdown routes stay (BIRD's `persist`).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::IpAddr;

use ipnet::IpNet;
use rustc_hash::FxHashSet;
use tracing::{info, warn};

use super::netlink::{Alien, KernelEvent, KernelRoute, Netlink, Request, Table};

/// Other protocols' routes, for the RIB (BIRD's `learn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Learning {
    /// Every alien route in the table now (at start and after each full read).
    All(Vec<Alien>),
    Learned(Alien),
    Forgotten(IpNet),
}

/// What the daemon reads of the FIB: for `show route`, `show status` and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub installed: usize,
    pub requests: u64,
    pub errors: u64,
    /// Prefixes whose wanted route the kernel refused, with its reason; retried whenever
    /// links or addresses change and at every reconcile.
    pub refused: BTreeMap<IpNet, String>,
    /// Drift repaired: routes of ours someone else deleted or changed, put back.
    pub repaired: u64,
}

pub struct Fib {
    nl: Netlink,
    table: Table,
    desired: HashMap<IpNet, KernelRoute>,
    installed: HashMap<IpNet, KernelRoute>,
    /// Start-up sync is over: routes nobody wants may go.
    synced: bool,
    /// Where learned alien routes go; `None`: not learning.
    learner: Option<tokio::sync::mpsc::UnboundedSender<Learning>>,
    pub stats: Stats,
}

impl Fib {
    /// Opens netlink and reads the routes a previous run installed.
    pub fn open(table: Table) -> io::Result<Fib> {
        let mut nl = Netlink::open()?;
        let installed: HashMap<IpNet, KernelRoute> =
            nl.dump(table)?.into_iter().map(|r| (r.net, r)).collect();
        info!(routes = installed.len(), "kernel table read");
        Ok(Fib {
            nl,
            table,
            desired: HashMap::new(),
            installed,
            synced: false,
            learner: None,
            stats: Stats::default(),
        })
    }

    /// Learns other protocols' routes from now on: all of them at once now, then each change.
    pub fn learn(&mut self, to: tokio::sync::mpsc::UnboundedSender<Learning>) {
        self.learner = Some(to);
        self.reconcile();
    }

    fn tell(&self, l: Learning) {
        if let Some(to) = &self.learner {
            let _ = to.send(l);
        }
    }

    /// Applies RIB changes: `None` means the prefix is no longer wanted. When a prefix
    /// changes more than once in `changes`, its last change counts.
    pub fn apply(&mut self, changes: Vec<(IpNet, Option<KernelRoute>)>) {
        let mut reqs = Vec::new();
        let mut seen = FxHashSet::default();
        seen.reserve(changes.len());
        let mut last: Vec<_> = changes
            .into_iter()
            .rev()
            .filter(|(net, _)| seen.insert(*net))
            .collect();
        last.reverse();
        for (net, want) in last {
            match want {
                Some(r) => {
                    if !self
                        .installed
                        .get(&net)
                        .is_some_and(|have| r.satisfied_by(have))
                    {
                        reqs.push(Request::Replace(r.clone()));
                    }
                    self.desired.insert(net, r);
                }
                None => {
                    let was = self.desired.remove(&net);
                    self.stats.refused.remove(&net);
                    // Before start-up sync a leftover route stays until the RIB decides.
                    if let Some(have) = self
                        .installed
                        .get(&net)
                        .filter(|_| was.is_some() || self.synced)
                    {
                        reqs.push(Request::Delete(have.clone()));
                    }
                }
            }
        }
        self.run(reqs);
    }

    /// Follows a kernel notification. A route of ours deleted by someone else (`ip route
    /// del`, or the kernel flushing a device's IPv6 routes) is put back when still wanted.
    /// Link and address changes re-read the table.
    pub fn event(&mut self, e: KernelEvent) {
        match e {
            KernelEvent::Deleted(r) => {
                // Our own deletes already left `installed`: only a route we still hold
                // counts as drift.
                let ours = self
                    .installed
                    .get(&r.net)
                    .is_some_and(|have| have.satisfied_by(&r) || r.satisfied_by(have));
                if !ours {
                    return;
                }
                self.installed.remove(&r.net);
                if let Some(want) = self.desired.get(&r.net).cloned() {
                    info!(prefix = %r.net, "route deleted behind our back: putting it back");
                    self.stats.repaired += 1;
                    self.run(vec![Request::Replace(want)]);
                }
            }
            KernelEvent::Learned(a) => self.tell(Learning::Learned(a)),
            KernelEvent::Forgotten(net) => self.tell(Learning::Forgotten(net)),
            KernelEvent::Interfaces => self.reconcile(),
        }
        self.stats.installed = self.installed.len();
    }

    /// Reads the table again and closes every gap: wanted routes missing or different (also
    /// those refused before) are written; after start-up sync, routes of ours nobody wants
    /// go. Other protocols' routes are learned afresh. Run when links or addresses change (the kernel flushes a device's IPv4 routes
    /// without telling) and every `reconcile_interval`.
    pub fn reconcile(&mut self) {
        let (dumped, aliens) = match self.nl.dump_all(self.table) {
            Ok(d) => d,
            Err(e) => {
                warn!("reading the kernel table: {e}");
                return;
            }
        };
        self.installed = dumped.into_iter().map(|r| (r.net, r)).collect();
        self.tell(Learning::All(aliens));
        let mut reqs: Vec<Request> = self
            .desired
            .values()
            .filter(|want| {
                !self
                    .installed
                    .get(&want.net)
                    .is_some_and(|have| want.satisfied_by(have))
            })
            .map(|want| Request::Replace(want.clone()))
            .collect();
        if self.synced {
            reqs.extend(
                self.installed
                    .values()
                    .filter(|have| !self.desired.contains_key(&have.net))
                    .map(|have| Request::Delete(have.clone())),
            );
        }
        if !reqs.is_empty() {
            info!(requests = reqs.len(), "kernel table reconciled");
        }
        self.run(reqs);
    }

    /// Start-up sync is over (every peer's End-of-RIB, or the wait ran out): routes left
    /// from a previous run that nothing wants now are removed.
    pub fn finish_sync(&mut self) {
        if self.synced {
            return;
        }
        self.synced = true;
        let stale: Vec<Request> = self
            .installed
            .iter()
            .filter(|(net, _)| !self.desired.contains_key(net))
            .map(|(_, r)| Request::Delete(r.clone()))
            .collect();
        info!(stale = stale.len(), "start-up sync done");
        self.run(stale);
    }

    fn run(&mut self, reqs: Vec<Request>) {
        if reqs.is_empty() {
            return;
        }
        let results = self.nl.batch(self.table, &reqs);
        self.stats.requests += reqs.len() as u64;
        for (req, res) in reqs.into_iter().zip(results) {
            let net = req.net();
            match (req, res) {
                (Request::Replace(r), Ok(())) => {
                    self.installed.insert(net, r);
                    self.stats.refused.remove(&net);
                }
                (Request::Delete(_), Ok(())) => {
                    self.installed.remove(&net);
                }
                // Already gone: the goal is met.
                (Request::Delete(_), Err(e)) if e.raw_os_error() == Some(libc::ESRCH) => {
                    self.installed.remove(&net);
                }
                (req, Err(e)) => {
                    self.stats.errors += 1;
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
        self.stats.installed = self.installed.len();
    }
}

/// The node's interfaces, for resolving how a next hop is reached.
#[derive(Debug, Clone, Default)]
pub struct Interfaces {
    /// Connected subnets (address and prefix length of each interface address) of links
    /// that are up, with the interface's name.
    subnets: Vec<(IpNet, String)>,
}

impl Interfaces {
    /// Reads the interface addresses now (getifaddrs).
    pub fn read() -> Interfaces {
        let mut subnets = Vec::new();
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills `head` with a list we walk read-only and then free.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            return Interfaces::default();
        }
        let mut cur = head;
        while !cur.is_null() {
            // SAFETY: `cur` is a node of the list getifaddrs returned.
            let ifa = unsafe { &*cur };
            // A next hop on a link that is down or has no carrier is not reachable (BIRD's
            // device protocol tracks the same flags).
            let up = ifa.ifa_flags & (libc::IFF_UP | libc::IFF_RUNNING) as u32
                == (libc::IFF_UP | libc::IFF_RUNNING) as u32;
            if up
                && let (Some(addr), Some(mask)) =
                    (sockaddr_ip(ifa.ifa_addr), sockaddr_ip(ifa.ifa_netmask))
            {
                let len = match mask {
                    IpAddr::V4(m) => u32::from(m).count_ones(),
                    IpAddr::V6(m) => u128::from(m).count_ones(),
                };
                // SAFETY: getifaddrs gives every entry a NUL-terminated name.
                let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
                if let Ok(n) = IpNet::new(addr, len as u8) {
                    subnets.push((n.trunc(), name.to_string_lossy().into_owned()));
                }
            }
            cur = ifa.ifa_next;
        }
        // SAFETY: freeing the list getifaddrs allocated, once.
        unsafe { libc::freeifaddrs(head) };
        Interfaces { subnets }
    }

    /// Whether `a` is on a directly connected subnet.
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

fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: non-null sockaddr from getifaddrs; the family says which struct it is.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let s = &*(sa as *const libc::sockaddr_in);
                Some(IpAddr::from(u32::from_be(s.sin_addr.s_addr).to_be_bytes()))
            }
            libc::AF_INET6 => {
                let s = &*(sa as *const libc::sockaddr_in6);
                Some(IpAddr::from(s.sin6_addr.s6_addr))
            }
            _ => None,
        }
    }
}

/// The index of interface `name`, if it exists (e.g. `tunl0`).
pub fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_connected() {
        let i = Interfaces::read();
        assert!(i.connected("127.0.0.5".parse().unwrap()));
        assert_eq!(i.device("127.0.0.5".parse().unwrap()), Some("lo"));
        assert!(!i.connected("198.18.255.254".parse().unwrap()));
        assert!(if_index("lo").is_some());
        assert!(if_index("no-such-device").is_none());
    }
}
