//! The kernel routing table: what the RIB's best routes become (`proto bird` routes in the
//! main table, as Calico's BIRD writes them), kept in step over rtnetlink by one thread.

pub mod kernel;
pub mod netlink;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use tracing::warn;

use crate::config::KernelConfig;
use crate::policy::calico::KernelKind;
use crate::rib::Rib;
use crate::rib::table::PathSource;
use crate::wire::Family;

use kernel::{Fib, Interfaces, Stats, if_index};
use netlink::{Hop, KernelRoute, Table, Target};

/// Work for the FIB thread.
pub enum Command {
    /// Prefixes whose wanted kernel route changed (`None`: remove it).
    Apply(Vec<(IpNet, Option<KernelRoute>)>),
    /// Start-up sync is over: remove what a previous run left and nobody wants.
    FinishSync,
}

/// The daemon's handle on the FIB thread.
pub struct Handle {
    tx: mpsc::Sender<Command>,
    pub stats: Arc<Mutex<Stats>>,
    config: KernelConfig,
}

impl Handle {
    /// Opens netlink (reading what is installed) and starts the thread.
    pub fn start(config: &KernelConfig) -> std::io::Result<Handle> {
        let table = Table {
            id: config.table,
            protocol: config.protocol,
        };
        let mut fib = Fib::open(table)?;
        let (tx, rx) = mpsc::channel::<Command>();
        let stats = Arc::new(Mutex::new(fib.stats));
        let shared = stats.clone();
        std::thread::Builder::new()
            .name("wren-fib".into())
            .spawn(move || {
                while let Ok(cmd) = rx.recv() {
                    match cmd {
                        Command::Apply(changes) => fib.apply(changes),
                        Command::FinishSync => fib.finish_sync(),
                    }
                    *shared.lock().unwrap_or_else(|p| p.into_inner()) = fib.stats;
                }
            })?;
        Ok(Handle {
            tx,
            stats,
            config: config.clone(),
        })
    }

    /// Sends the kernel the routes for every prefix whose best paths changed.
    pub fn sync(&self, rib: &mut Rib) {
        let dirty = std::mem::take(&mut rib.fib_dirty);
        if dirty.is_empty() {
            return;
        }
        let ifs = Interfaces::read();
        let tunl0 = if_index("tunl0");
        let changes = dirty
            .iter()
            .map(|key| (key.1, desired(rib, key, &ifs, tunl0, self.config.metric)))
            .collect();
        if self.tx.send(Command::Apply(changes)).is_err() {
            warn!("the FIB thread has stopped");
        }
    }

    pub fn finish_sync(&self) {
        let _ = self.tx.send(Command::FinishSync);
    }
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
    let best = entry.best()?;
    let local = best.source == PathSource::Local;
    let kind = rib
        .calico
        .kernel_kind(&net, local, best.attrs.next_hop, |a| ifs.connected(a));
    let hops = |tunnel: bool| -> Vec<Hop> {
        entry
            .multipath()
            .filter_map(|p| p.attrs.next_hop)
            .map(|gateway| Hop {
                gateway,
                oif: if tunnel { tunl0 } else { None },
                onlink: tunnel,
            })
            .collect()
    };
    let target = match kind {
        KernelKind::Skip => return None,
        KernelKind::Blackhole => Target::Blackhole,
        // Without a tunl0 device the route goes plain, as BIRD's krt_tunnel does.
        KernelKind::Tunnel if tunl0.is_some() => Target::Via(hops(true)),
        KernelKind::Tunnel | KernelKind::Plain => Target::Via(hops(false)),
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
