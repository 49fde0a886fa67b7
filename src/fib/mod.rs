//! The kernel routing table: what the RIB's best routes become (`proto bird` routes in the
//! main table, as Calico's BIRD writes them), kept in step over rtnetlink by one thread.

pub mod interfaces;
pub mod kernel;
pub mod netlink;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use crate::model::KernelConfig;
use crate::route::{Interfaces, KernelRoute, KernelStats, Learning};

use interfaces::Links;
use kernel::Fib;
use netlink::{KernelEvent, Monitor, Table};

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
    stats: Arc<Mutex<KernelStats>>,
    /// Commands sent and not yet carried out.
    queued: Arc<AtomicUsize>,
    /// The node's interfaces, as the thread follows them; changed when links or addresses
    /// change how next hops are reached (e.g. `tunl0` came up), for the daemon to take.
    pub interfaces: Option<watch::Receiver<Interfaces>>,
    /// The FIB thread carried out a command: there is room for more changes.
    pub drained: Arc<Notify>,
    /// Other protocols' routes (`learn`), for the daemon to take.
    pub learned: Option<tokio::sync::mpsc::UnboundedReceiver<Learning>>,
    /// Prefixes whose wanted route the kernel lost (deleted behind our back, gone at a
    /// reconcile, refused earlier): the daemon sends them again.
    pub again: Option<tokio::sync::mpsc::UnboundedReceiver<Vec<IpNet>>>,
}

impl Handle {
    /// Opens netlink (reading what is installed), subscribes to the kernel's notifications
    /// and starts the thread.
    pub fn start(config: &KernelConfig) -> std::io::Result<Handle> {
        let table = Table {
            id: config.table,
            protocol: config.protocol,
            family: config.family,
        };
        let mut fib = Fib::open(table)?;
        let mut monitor = Monitor::open(table, fib.port())?;
        // Read after subscribing, so that no change falls between the two.
        let mut links = Links::default();
        links.reset(fib.interfaces()?);
        let (interfaces_tx, interfaces) = watch::channel(links.interfaces());
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
        let drained = Arc::new(Notify::new());
        let (shared, pending, room) = (stats.clone(), queued.clone(), drained.clone());
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
                            kernel_events(&mut fib, &mut links, events, &overrun_seen);
                            let now = links.interfaces();
                            interfaces_tx.send_if_modified(|was| {
                                let changed = *was != now;
                                *was = now;
                                changed
                            });
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
            interfaces: Some(interfaces),
            drained,
            learned,
            again: Some(again),
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

    /// How many changes the FIB thread has room for: at most `QUEUED` slices wait for it.
    /// The RIB keeps the rest marked (coalescing repeated changes to a prefix) until the
    /// thread asks for more (`Handle::drained`), so a fast feed never piles up wanted routes
    /// in memory.
    pub fn room(&self) -> usize {
        QUEUED.saturating_sub(self.queued.load(Ordering::Acquire)) * APPLY_SLICE
    }

    /// Hands the thread the RIB's changes (at most `room`), a slice per message.
    pub fn apply(&self, mut changes: Vec<(IpNet, Option<KernelRoute>)>) {
        if !changes.is_empty() {
            debug!(changes = changes.len(), "kernel changes to the FIB thread");
        }
        while !changes.is_empty() {
            let rest = changes.split_off(changes.len().min(APPLY_SLICE));
            self.send(Command::Apply(changes));
            changes = rest;
        }
    }

    /// The thread's figures now.
    pub fn stats(&self) -> KernelStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
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

/// Follows the kernel's notifications: route events go to the FIB, link and address changes
/// to the thread's view of the interfaces. After either of those or lost notifications the
/// table is read again, once: the kernel flushes a device's IPv4 routes without telling.
fn kernel_events(
    fib: &mut Fib,
    links: &mut Links,
    events: Vec<KernelEvent>,
    overrun_seen: &AtomicBool,
) {
    let mut reread = false;
    for e in events {
        match e {
            KernelEvent::Interface(c) => {
                links.apply(c);
                reread = true;
            }
            KernelEvent::Overrun => {
                overrun_seen.store(false, Ordering::Release);
                match fib.interfaces() {
                    Ok(all) => links.reset(all),
                    Err(e) => warn!("reading links and addresses: {e}"),
                }
                reread = true;
            }
            e => fib.event(e),
        }
    }
    if reread {
        fib.reconcile();
    }
}
