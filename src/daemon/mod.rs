//! The daemon: wiring (this file: listeners, the RIB, the FIB thread, the control socket),
//! the peer registry that adds and removes peers everywhere at once (`peers`), the event loop
//! that feeds the RIB (`event_loop`), configuration reload (`reload`) and control commands
//! (`control`).

mod control;
mod datastore;
mod event_loop;
mod peers;
mod reload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::info;

use crate::config::{Config, LogLevel, Source};
use crate::control::{metrics, server};
use crate::fib;
use crate::notify;
use crate::rib::Rib;
use crate::session::{PeerId, ToPeer, ToRib};
use crate::wire::Notification;
use crate::wire::notification::cease;

pub use datastore::Start as DatastoreStart;

/// Messages from the sessions queued for the RIB task, for all peers together.
const RIB_QUEUE: usize = 256;

/// How the daemon was started.
pub struct Options {
    pub config: Config,
    /// Where the configuration was read from (for SIGHUP and `configure`).
    pub source: Source,
    /// Control socket paths (BIRD's `-s`; Calico's bird.ctl and bird6.ctl may both be given).
    pub control: Vec<PathBuf>,
    /// Started with `-R`: tell peers we restarted (RFC 4724 §3 Restart State).
    pub restarting: bool,
    /// Changes the log level of the running process (the config's `log_level`, or `log
    /// level LEVEL` on the control socket).
    pub set_log_level: Box<dyn Fn(LogLevel) + Send>,
    /// Started in datastore mode: `config` is the datastore's first decision.
    pub datastore: Option<DatastoreStart>,
}

struct Daemon {
    config: Config,
    source: Source,
    restarting: bool,
    started: SystemTime,
    reconfigured: SystemTime,
    /// The peers: their tasks, the listeners, and the only way in and out of the RIB's peers.
    peers: peers::Peers,
    rib: Rib,
    fib: Option<fib::Handle>,
    /// Start-up sync ends on every peer's End-of-RIB, or at this time at the latest.
    sync_deadline: Option<Instant>,
    /// The next flush of received UPDATEs goes no earlier than this (`event_loop::spacing`).
    flush_after: Instant,
    /// Received UPDATEs are applied and wait for a flush held until `flush_after`.
    held: bool,
    set_log_level: Box<dyn Fn(LogLevel) + Send>,
    /// `down` was asked for: stop once the reply is out.
    shutdown: bool,
    /// Start-up sync is over, to be told to the FIB once the RIB's changes are all sent.
    fib_finish: bool,
    /// The datastore side, in datastore mode.
    datastore: Option<datastore::Mode>,
}

/// Runs until SIGTERM or SIGINT, then sends every peer a Cease and returns.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let config = opts.config;
    let (mode, feed) = match opts.datastore {
        Some(s) => {
            let view = s.feed.borrow().clone();
            let mode = datastore::Mode::new(s.local, s.node, view, &config);
            (Some(mode), Some(s.feed))
        }
        None => (None, None),
    };
    // First, before touching the kernel: a second daemon started by mistake stops here.
    let (ctl_tx, ctl_rx) = mpsc::channel::<server::Request>(64);
    let (mut sockets, mut listeners) = (Vec::new(), Vec::new());
    for path in &opts.control {
        let (l, owned) =
            server::bind(path).with_context(|| format!("control socket {}", path.display()))?;
        info!("control socket {}", path.display());
        listeners.push(l);
        sockets.push(owned); // removes the socket file when dropped
    }
    server::serve(listeners, ctl_tx.clone()).context("starting the control socket's thread")?;
    // Decoded messages waiting for the RIB. A full-table UPDATE holds about 15 KB of
    // prefixes: a short queue keeps the sessions' lead (and its memory, at most about 4 MB)
    // small, and the peers stop reading meanwhile (TCP back-pressure). The RIB takes what is
    // queued in one batch: at 256 a reflector's 3000 clients converge in half the time of 64
    // (benches/README.md).
    let (rib_tx, rib_rx) = mpsc::channel::<ToRib>(RIB_QUEUE);
    let fib = if config.kernel.enabled {
        Some(
            fib::Handle::start(&config.kernel)
                .context("opening the kernel routing table (netlink)")?,
        )
    } else {
        info!("kernel routes disabled: the kernel is not touched");
        None
    };
    let mut d = Daemon {
        rib: Rib::new(&config),
        peers: peers::Peers::new(config.asn, config.router_id, rib_tx),
        sync_deadline: Some(
            Instant::now() + Duration::from_secs(u64::from(config.kernel.startup_wait)),
        ),
        flush_after: Instant::now(),
        held: false,
        source: opts.source,
        restarting: opts.restarting,
        started: SystemTime::now(),
        reconfigured: SystemTime::now(),
        fib,
        set_log_level: opts.set_log_level,
        shutdown: false,
        fib_finish: false,
        datastore: mode,
        config,
    };
    (d.set_log_level)(d.config.log_level);
    // Next hops resolve against the node's interfaces from the start (with no kernel
    // followed, every next hop counts as reachable).
    if let Some(ifs) = d.fib.as_ref().and_then(|f| f.interfaces.as_ref()) {
        let ifs = ifs.borrow().clone();
        d.rib.set_interfaces(ifs);
    }
    for addr in d.config.listen.addresses.clone() {
        let at = SocketAddr::new(addr, d.config.listen.port);
        (d.peers.listen(at, d.config.listen.v6_only))
            .with_context(|| format!("listening on {at}"))?;
        info!("listening on {at}");
    }
    for p in d.config.peers.clone() {
        d.peers.add(&mut d.rib, p, d.restarting).await;
    }
    let (metrics_tx, metrics_rx) = mpsc::channel::<metrics::Request>(16);
    if let Some(at) = d.config.metrics {
        let l = TcpListener::bind(at)
            .await
            .with_context(|| format!("metrics endpoint {at}"))?;
        info!("metrics at http://{at}/metrics");
        tokio::spawn(metrics::run(l, metrics_tx.clone()));
    }
    d.sync_kernel();
    notify::notify("READY=1");
    let inputs = event_loop::Inputs {
        rib_rx,
        ctl_rx,
        metrics_rx,
        watchdog: notify::watchdog_interval().map(tokio::time::interval),
        interfaces: d.fib.as_mut().and_then(|f| f.interfaces.take()),
        fib_drained: d.fib.as_ref().map(|f| f.drained.clone()),
        learned: d.fib.as_mut().and_then(|f| f.learned.take()),
        again: d.fib.as_mut().and_then(|f| f.again.take()),
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
        hup: signal(SignalKind::hangup())?,
        datastore: feed,
    };
    d.event_loop(inputs).await;
    drop(metrics_tx);
    info!("shutting down");
    notify::notify("STOPPING=1");
    for peer in d.peers.commands() {
        let n = Notification::shutdown(cease::ADMINISTRATIVE_SHUTDOWN, "wren shutting down");
        let _ = peer.send(ToPeer::Shutdown(n)).await;
    }
    // Let the writers put the Ceases on the wire. Kernel routes stay (BIRD's `persist`).
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(sockets);
    Ok(())
}

impl Daemon {
    /// Stops a peer with a Cease (RFC 4486 §4: "Peer De-configured" when it is removed,
    /// "Other Configuration Change" when it starts again with new settings; RFC 8203 text)
    /// and drops its routes.
    pub(super) async fn remove_peer(&mut self, id: PeerId, subcode: u8) {
        let text = if subcode == cease::PEER_DECONFIGURED {
            "peer de-configured"
        } else {
            "configuration changed"
        };
        let n = Notification::shutdown(subcode, text);
        let out = self.peers.remove(&mut self.rib, id, n).await;
        self.send(out).await;
    }
}
