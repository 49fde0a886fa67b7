//! The kernel routing table: what the RIB's best routes become (`proto bird` routes in the
//! main table, as Calico's BIRD writes them), kept in step over rtnetlink by one thread.

pub mod kernel;
pub mod netlink;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::KernelConfig;
use crate::policy::calico::KernelKind;
use crate::rib::Rib;
use crate::rib::table::PathSource;
use crate::wire::Family;

use kernel::{Fib, Interfaces, Learning, Stats};
use netlink::{Hop, KernelEvent, KernelRoute, Monitor, Table, Target};

/// Changes per message to the FIB thread.
const APPLY_SLICE: usize = 8192;

/// Messages of changes that may wait for the FIB thread.
const QUEUED: usize = 2;
/// Prefixes marked for the kernel beyond which the daemon stops taking UPDATEs from the
/// sessions until the FIB thread catches up: the sessions stop reading and TCP holds the
/// peers back, so a fast feed neither piles up marks in memory nor outruns the kernel by
/// more than a few slices (BIRD, one loop, is paced the same way).
pub const BACKLOG: usize = 2 * QUEUED * APPLY_SLICE;

/// Work for the FIB thread.
pub enum Command {
    /// Prefixes whose wanted kernel route changed (`None`: remove it).
    Apply(Vec<(IpNet, Option<KernelRoute>)>),
    /// Start-up sync is over: remove what a previous run left and nobody wants.
    FinishSync,
    /// Notifications from the kernel.
    Kernel(Vec<KernelEvent>),
}

/// The daemon's handle on the FIB thread.
pub struct Handle {
    tx: mpsc::Sender<Command>,
    pub stats: Arc<Mutex<Stats>>,
    /// Commands sent and not yet carried out.
    queued: Arc<AtomicUsize>,
    /// Links or addresses changed: next hops must be resolved again (e.g. `tunl0` came up).
    pub interfaces_changed: Arc<Notify>,
    /// The FIB thread carried out a command: there is room for more changes.
    pub drained: Arc<Notify>,
    /// Other protocols' routes (`learn`), for the daemon to take.
    pub learned: Option<tokio::sync::mpsc::UnboundedReceiver<Learning>>,
    /// Prefixes whose wanted route the kernel lost (deleted behind our back, gone at a
    /// reconcile, refused earlier): the daemon sends them again.
    pub again: Option<tokio::sync::mpsc::UnboundedReceiver<Vec<IpNet>>>,
    config: KernelConfig,
}

impl Handle {
    /// Opens netlink (reading what is installed), subscribes to the kernel's notifications
    /// and starts the thread.
    pub fn start(config: &KernelConfig) -> std::io::Result<Handle> {
        let table = Table {
            id: config.table,
            protocol: config.protocol,
        };
        let mut fib = Fib::open(table)?;
        let mut monitor = Monitor::open(table, fib.port())?;
        // One read of the table answers any number of overruns reported before it starts.
        let overrun = Arc::new(AtomicBool::new(false));
        let overrun_seen = overrun.clone();
        let (to, again) = tokio::sync::mpsc::unbounded_channel();
        fib.ask_again(to);
        let learned = config.learn.then(|| {
            let (to, from) = tokio::sync::mpsc::unbounded_channel();
            fib.learn(to);
            from
        });
        let (tx, rx) = mpsc::channel::<Command>();
        let stats = Arc::new(Mutex::new(fib.stats.clone()));
        let queued = Arc::new(AtomicUsize::new(0));
        let interfaces_changed = Arc::new(Notify::new());
        let drained = Arc::new(Notify::new());
        let (shared, pending, changed) =
            (stats.clone(), queued.clone(), interfaces_changed.clone());
        let room = drained.clone();
        let every = (config.reconcile_interval > 0)
            .then(|| Duration::from_secs(u64::from(config.reconcile_interval)));
        std::thread::Builder::new()
            .name("wren-fib".into())
            .spawn(move || {
                loop {
                    let cmd = match every {
                        Some(t) => match rx.recv_timeout(t) {
                            Ok(c) => Some(c),
                            Err(mpsc::RecvTimeoutError::Timeout) => None,
                            Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        },
                        None => match rx.recv() {
                            Ok(c) => Some(c),
                            Err(_) => return,
                        },
                    };
                    let counted = cmd_counted(&cmd);
                    match cmd {
                        Some(Command::Apply(changes)) => fib.apply(changes),
                        Some(Command::FinishSync) => fib.finish_sync(),
                        Some(Command::Kernel(events)) => {
                            let interfaces = events.contains(&KernelEvent::Interfaces);
                            for e in events {
                                if e == KernelEvent::Overrun {
                                    overrun_seen.store(false, Ordering::Release);
                                }
                                fib.event(e);
                            }
                            if interfaces {
                                changed.notify_one();
                            }
                        }
                        None => fib.reconcile(),
                    }
                    *shared.lock().unwrap_or_else(|p| p.into_inner()) = fib.stats.clone();
                    if counted {
                        pending.fetch_sub(1, Ordering::Release);
                        room.notify_one();
                    }
                }
            })?;
        let events = tx.clone();
        std::thread::Builder::new()
            .name("wren-fib-watch".into())
            .spawn(move || {
                loop {
                    match monitor.next(table) {
                        Ok(mut e) => {
                            e.retain(|e| {
                                *e != KernelEvent::Overrun || !overrun.swap(true, Ordering::AcqRel)
                            });
                            if e.is_empty() {
                                continue;
                            }
                            if events.send(Command::Kernel(e)).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            warn!("kernel notifications stopped: {e}");
                            return;
                        }
                    }
                }
            })?;
        info!("following link, address and route notifications");
        Ok(Handle {
            tx,
            stats,
            queued,
            interfaces_changed,
            drained,
            learned,
            again: Some(again),
            config: config.clone(),
        })
    }

    fn send(&self, cmd: Command) {
        self.queued.fetch_add(1, Ordering::Release);
        if self.tx.send(cmd).is_err() {
            self.queued.fetch_sub(1, Ordering::Release);
            warn!("the FIB thread has stopped");
        }
    }

    /// Whether the kernel holds what the RIB wants: nothing queued, nothing refused.
    pub fn in_sync(&self) -> bool {
        self.queued.load(Ordering::Acquire) == 0
            && self
                .stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .refused
                .is_empty()
    }

    /// Sends the kernel the routes for prefixes whose best paths changed, as far as the
    /// FIB thread has room: at most `QUEUED` slices wait for it. The rest stay marked in the
    /// RIB (coalescing repeated changes to a prefix) until it asks for more
    /// (`Handle::drained`), so a fast feed never piles up wanted routes in memory.
    pub fn sync(&self, rib: &mut Rib) {
        let room = QUEUED.saturating_sub(self.queued.load(Ordering::Acquire)) * APPLY_SLICE;
        rib.fib_refill(room);
        if rib.fib_dirty.is_empty() || room == 0 {
            return;
        }
        let mut keys: Vec<_> = if rib.fib_dirty.len() <= room {
            let all = std::mem::take(&mut rib.fib_dirty);
            all.into_iter().collect()
        } else {
            let some: Vec<_> = rib.fib_dirty.iter().take(room).copied().collect();
            for k in &some {
                rib.fib_dirty.remove(k);
            }
            some
        };
        // In address order: the kernel's trie takes a run of neighbouring prefixes with
        // fewer node resizes than the same prefixes in hash order.
        keys.sort_unstable();
        let ifs = Interfaces::read();
        let tunl0 = crate::sys::if_index("tunl0");
        for slice in keys.chunks(APPLY_SLICE) {
            let changes = slice
                .iter()
                .map(|key| (key.1, desired(rib, key, &ifs, tunl0, self.config.metric)))
                .collect();
            self.send(Command::Apply(changes));
        }
    }

    pub fn finish_sync(&self) {
        self.send(Command::FinishSync);
    }
}

/// Commands the daemon sent (counted in `queued`), as opposed to the kernel's notifications
/// and the thread's own reconcile.
fn cmd_counted(cmd: &Option<Command>) -> bool {
    matches!(cmd, Some(Command::Apply(_) | Command::FinishSync))
}

/// The kernel route for a prefix: its best path and the equal-cost ones, written the way
/// Calico's export filter says for its pool (contract §3.7).
pub fn desired(
    rib: &Rib,
    key: &(Family, IpNet),
    ifs: &Interfaces,
    tunl0: Option<u32>,
    metric: Option<u32>,
) -> Option<KernelRoute> {
    let net = key.1;
    let entry = rib.table.get(key)?;
    // A route learned from the kernel is never written back (contract §3.6).
    let best = entry.best().filter(|b| b.source() != PathSource::Kernel)?;
    let local = best.source() == PathSource::Local;
    let kind = rib
        .calico
        .kernel_kind(&net, local, best.attrs.next_hop, |a| ifs.connected(a));
    // Paths from different peers may share a next hop (a client of two reflectors): the
    // kernel route has each next hop once, as BIRD's `merge paths` writes it.
    let hops = |tunnel: bool| -> Vec<Hop> {
        let mut hops: Vec<Hop> = Vec::new();
        for gateway in entry.multipath().filter_map(|p| p.attrs.next_hop) {
            if !hops.iter().any(|h| h.gateway == gateway) {
                hops.push(Hop {
                    gateway,
                    oif: if tunnel { tunl0 } else { None },
                    onlink: tunnel,
                });
            }
        }
        hops
    };
    // A plain next hop must be on a connected subnet of a link that is up (BIRD's direct
    // gateway check): hops that are not drop out of an ECMP route. When none is, the route is
    // left to the kernel's own resolution (multihop peers), which refuses it if unreachable.
    let reachable = |mut h: Vec<Hop>| {
        if h.iter().any(|h| ifs.connected(h.gateway)) {
            h.retain(|h| ifs.connected(h.gateway));
        }
        h
    };
    let target = match kind {
        KernelKind::Skip => return None,
        KernelKind::Blackhole => Target::Blackhole,
        // Without a tunl0 device the route goes plain, as BIRD's krt_tunnel does.
        KernelKind::Tunnel if tunl0.is_some() => Target::Via(hops(true)),
        KernelKind::Tunnel | KernelKind::Plain => Target::Via(reachable(hops(false))),
    };
    if matches!(&target, Target::Via(h) if h.is_empty()) {
        return None;
    }
    Some(KernelRoute {
        net,
        metric,
        target,
    })
}
