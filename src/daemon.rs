//! Wiring: peer tasks, listeners, the RIB, the FIB thread and the control socket; signals;
//! configuration reload.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::{Config, LogLevel, Peer as PeerConfig};
use crate::control::{Line, commands, metrics, server};
use crate::fib;
use crate::notify;
use crate::rib::{Outgoing, Rib};
use crate::session::{self, Handle, PeerId, Status, ToPeer, ToRib, listen, socket};
use crate::wire::notification::cease;
use crate::wire::{Family, Notification, RouteRefresh};

/// Messages from the sessions queued for the RIB task, for all peers together.
const RIB_QUEUE: usize = 64;

/// How the daemon was started.
pub struct Options {
    pub config: Config,
    /// Where the configuration was read from (for SIGHUP and `configure`).
    pub config_path: PathBuf,
    /// Control socket paths (BIRD's `-s`; Calico's bird.ctl and bird6.ctl may both be given).
    pub control: Vec<PathBuf>,
    /// Started with `-R`: tell peers we restarted (RFC 4724 §3 Restart State).
    pub restarting: bool,
    /// Changes the log level of the running process (the config's `log_level`, or `log
    /// level LEVEL` on the control socket).
    pub set_log_level: Box<dyn Fn(LogLevel) + Send>,
}

struct Daemon {
    config: Config,
    config_path: PathBuf,
    restarting: bool,
    started: SystemTime,
    reconfigured: SystemTime,
    /// Indexed by peer id; `None` once de-configured.
    handles: Vec<Option<Handle>>,
    directory: listen::Directory,
    listeners: Vec<Arc<TcpListener>>,
    rib_tx: mpsc::Sender<ToRib>,
    rib: Rib,
    fib: Option<fib::Handle>,
    /// Graceful restart (RFC 4724 §4.2): when to drop a restarting peer's stale routes.
    stale_deadline: HashMap<PeerId, Instant>,
    /// Start-up sync ends on every peer's End-of-RIB, or at this time at the latest.
    sync_deadline: Option<Instant>,
    set_log_level: Box<dyn Fn(LogLevel) + Send>,
    /// `down` was asked for: stop once the reply is out.
    shutdown: bool,
    /// Start-up sync is over, to be told to the FIB once the RIB's changes are all sent.
    fib_finish: bool,
}

/// Runs until SIGTERM or SIGINT, then sends every peer a Cease and returns.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let config = opts.config;
    // Decoded messages waiting for the RIB. A full-table UPDATE holds about 15 KB of
    // prefixes: a short queue keeps the sessions' lead (and its memory) small, and the peers
    // stop reading meanwhile (TCP back-pressure).
    let (rib_tx, mut rib_rx) = mpsc::channel::<ToRib>(RIB_QUEUE);
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
        rib: Rib::new(&Config {
            peers: Vec::new(),
            ..config.clone()
        }),
        sync_deadline: Some(
            Instant::now() + Duration::from_secs(u64::from(config.kernel.startup_wait)),
        ),
        config_path: opts.config_path,
        restarting: opts.restarting,
        started: SystemTime::now(),
        reconfigured: SystemTime::now(),
        handles: Vec::new(),
        directory: Arc::new(RwLock::new(HashMap::new())),
        listeners: Vec::new(),
        rib_tx,
        fib,
        stale_deadline: HashMap::new(),
        set_log_level: opts.set_log_level,
        shutdown: false,
        fib_finish: false,
        config,
    };
    (d.set_log_level)(d.config.log_level);
    for addr in d.config.listen.addresses.clone() {
        let at = SocketAddr::new(addr, d.config.listen.port);
        let l = Arc::new(listen::open(at, &[]).with_context(|| format!("listening on {at}"))?);
        info!("listening on {at}");
        tokio::spawn(listen::run(l.clone(), d.directory.clone()));
        d.listeners.push(l);
    }
    for p in d.config.peers() {
        d.add_peer(p).await;
    }
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<server::Request>(64);
    for path in &opts.control {
        let l = server::bind(path).with_context(|| format!("control socket {}", path.display()))?;
        info!("control socket {}", path.display());
        tokio::spawn(server::run(l, ctl_tx.clone()));
    }
    let (metrics_tx, mut metrics_rx) = mpsc::channel::<metrics::Request>(16);
    if let Some(at) = d.config.metrics {
        let l = TcpListener::bind(at)
            .await
            .with_context(|| format!("metrics endpoint {at}"))?;
        info!("metrics at http://{at}/metrics");
        tokio::spawn(metrics::run(l, metrics_tx.clone()));
    }
    d.sync_kernel();
    notify::notify("READY=1");
    let mut watchdog = notify::watchdog_interval().map(tokio::time::interval);

    let interfaces_changed = d.fib.as_ref().map(|f| f.interfaces_changed.clone());
    let fib_drained = d.fib.as_ref().map(|f| f.drained.clone());
    let mut learned = d.fib.as_mut().and_then(|f| f.learned.take());
    let mut again = d.fib.as_mut().and_then(|f| f.again.take());
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        let next_flush = d
            .stale_deadline
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(p, at)| (*p, *at));
        if d.sync_deadline.is_some() && d.rib.initial_sync_done() {
            info!("End-of-RIB from every peer: start-up sync over");
            d.finish_sync();
        }
        tokio::select! {
            Some(m) = rib_rx.recv(), if d.rib.fib_dirty.len() < fib::BACKLOG => {
                d.handle_peer_event(m).await
            }
            () = sleep_until(d.sync_deadline), if d.sync_deadline.is_some() => {
                info!("start-up wait over before every peer's End-of-RIB");
                d.finish_sync();
            }
            () = sleep_until(next_flush.map(|(_, at)| at)), if next_flush.is_some() => {
                if let Some((peer, _)) = next_flush {
                    d.stale_deadline.remove(&peer);
                    info!(peer, "graceful restart time over: dropping stale routes");
                    let out = d.rib.flush_stale(peer, None);
                    d.send(out).await;
                }
            }
            Some((cmd, reply)) = ctl_rx.recv() => {
                let lines = d.command(&cmd).await;
                let _ = reply.send(lines);
                if d.shutdown {
                    break;
                }
            }
            Some(reply) = metrics_rx.recv() => {
                let statuses = d.statuses();
                let _ = reply.send(metrics::render(&d.context(&statuses)));
            }
            _ = hup.recv() => {
                if let Err(e) = d.reload().await {
                    warn!("configuration not reloaded: {e}");
                }
            }
            Some(nets) = recv(&mut again), if again.is_some() => {
                d.rib.fib_dirty.extend(nets.into_iter().map(|n| (Family::unicast_of(&n), n)));
                d.sync_kernel();
            }
            Some(l) = recv(&mut learned), if learned.is_some() => {
                let out = d.rib.learn(l);
                d.send(out).await;
            }
            () = notified(&fib_drained), if fib_drained.is_some() => d.sync_kernel(),
            () = notified(&interfaces_changed), if interfaces_changed.is_some() => {
                // Next hops resolve differently now (a device went down, `tunl0` appeared):
                // every route is worked out again.
                d.rib.sweep_fib();
                d.sync_kernel();
            }
            _ = tick(&mut watchdog), if watchdog.is_some() => notify::notify("WATCHDOG=1"),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    drop(metrics_tx);
    info!("shutting down");
    notify::notify("STOPPING=1");
    for h in d.handles.iter().flatten() {
        let n = Notification::shutdown(cease::ADMINISTRATIVE_SHUTDOWN, "wren shutting down");
        let _ = h.commands.send(ToPeer::Shutdown(n)).await;
    }
    // Let the writers put the Ceases on the wire. Kernel routes stay (BIRD's `persist`).
    tokio::time::sleep(Duration::from_millis(300)).await;
    for p in &opts.control {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

impl Daemon {
    async fn handle_peer_event(&mut self, m: ToRib) {
        let out = match m {
            ToRib::Up {
                peer,
                session,
                local,
            } => self.rib.up(peer, *session, local),
            ToRib::Down { peer, graceful } => {
                let restart = self
                    .rib
                    .peers
                    .get(peer)
                    .and_then(|p| p.session.as_ref())
                    .and_then(|s| s.peer_graceful_restart.as_ref())
                    .map(|g| g.restart_time)
                    .filter(|_| graceful);
                if let Some(t) = restart {
                    self.stale_deadline
                        .insert(peer, Instant::now() + Duration::from_secs(u64::from(t)));
                }
                self.rib.down(peer, graceful)
            }
            ToRib::Update {
                peer,
                update,
                withdraw_all,
            } => {
                if let (Some(f), Some(p)) = (update.end_of_rib(), self.rib.peers.get(peer)) {
                    info!(peer = %p.config.name, family = %f, "End-of-RIB received");
                }
                self.rib.update(peer, &update, withdraw_all)
            }
            ToRib::Refresh { peer, request } => {
                info!(peer, ?request, "route refresh requested");
                self.rib.refresh(peer, request)
            }
        };
        self.send(out).await;
    }

    /// Start-up is over: stale kernel routes go, and a restarting speaker stops saying so.
    fn finish_sync(&mut self) {
        self.sync_deadline = None;
        self.fib_finish = true;
        self.sync_kernel();
        self.restarting = false;
        for h in self.handles.iter().flatten() {
            let _ = h.commands.try_send(ToPeer::RestartComplete);
        }
    }

    fn sync_kernel(&mut self) {
        match &self.fib {
            Some(f) => {
                f.sync(&mut self.rib);
                // Leftover routes go only once every wanted route has been handed over.
                if self.fib_finish && !self.rib.fib_pending() {
                    self.fib_finish = false;
                    f.finish_sync();
                }
            }
            None => self.rib.fib_forget(),
        }
    }

    /// Queues each group's encoded messages to its members, and the kernel its changes.
    async fn send(&mut self, out: Vec<Outgoing>) {
        self.sync_kernel();
        for o in out {
            for id in o.peers {
                if let Some(Some(h)) = self.handles.get(id) {
                    let _ = h.commands.send(ToPeer::Send(o.bytes.clone())).await;
                }
            }
        }
    }

    async fn to_peer(&self, id: PeerId, m: ToPeer) {
        if let Some(Some(h)) = self.handles.get(id) {
            let _ = h.commands.send(m).await;
        }
    }

    /// Starts a peer task and its RIB state; its MD5 key goes on every listener.
    async fn add_peer(&mut self, p: PeerConfig) {
        let id = self.rib.add_peer(p.clone());
        if let Some(key) = &p.settings.password {
            for l in &self.listeners {
                let v6 = l.local_addr().is_ok_and(|a| a.is_ipv6());
                if let Err(e) = socket::set_md5(l.as_ref(), v6, p.address, Some(key)) {
                    warn!(peer = %p.name, "MD5 key on the listener: {e}");
                }
            }
        }
        let h = session::spawn(
            id,
            p.clone(),
            self.config.asn,
            self.config.router_id,
            self.restarting,
            self.rib_tx.clone(),
        );
        if let Ok(mut dir) = self.directory.write() {
            dir.insert(p.address, h.commands.clone());
        }
        let _ = h.commands.send(ToPeer::Start).await;
        self.handles.push(Some(h));
    }

    /// Stops a peer with Cease "peer de-configured" (RFC 8203) and drops its routes.
    async fn remove_peer(&mut self, id: PeerId) {
        let Some(Some(h)) = self.handles.get_mut(id).map(Option::take) else {
            return;
        };
        let n = Notification::shutdown(cease::PEER_DECONFIGURED, "peer de-configured");
        let _ = h.commands.send(ToPeer::Stop(n)).await;
        let address = h.status.lock().map(|s| s.address).ok();
        if let (Some(a), Ok(mut dir)) = (address, self.directory.write()) {
            dir.remove(&a);
        }
        let had_key = self
            .rib
            .peers
            .get(id)
            .is_some_and(|p| p.config.settings.password.is_some());
        if let (true, Some(a)) = (had_key, address) {
            for l in &self.listeners {
                let v6 = l.local_addr().is_ok_and(|x| x.is_ipv6());
                let _ = socket::set_md5(l.as_ref(), v6, a, None);
            }
        }
        let out = self.rib.remove_peer(id);
        self.send(out).await;
    }

    /// Reads the configuration file again and applies the difference: unchanged peers keep
    /// their sessions; removed peers get a Cease; new or changed ones start; policy changes
    /// are re-exported. A bad file changes nothing.
    async fn reload(&mut self) -> Result<(), String> {
        notify::reloading();
        let result = self.apply_config().await;
        notify::notify("READY=1");
        result
    }

    async fn apply_config(&mut self) -> Result<(), String> {
        let new = Config::load(&self.config_path)?;
        if (new.asn, new.router_id, &new.listen, new.metrics)
            != (
                self.config.asn,
                self.config.router_id,
                &self.config.listen,
                self.config.metrics,
            )
        {
            return Err("changing asn, router_id, listen or metrics needs a restart".into());
        }
        if new.log_level != self.config.log_level {
            (self.set_log_level)(new.log_level);
            info!(level = ?new.log_level, "log level changed");
        }
        let wanted = new.peers();
        let current: Vec<(PeerId, PeerConfig)> = self
            .rib
            .peers
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.removed)
            .map(|(id, p)| (id, p.config.clone()))
            .collect();
        let (mut kept, mut gone) = (0, 0);
        for (id, p) in &current {
            if wanted.contains(p) {
                kept += 1;
            } else {
                gone += 1;
                self.remove_peer(*id).await;
            }
        }
        let mut added = 0;
        for p in wanted {
            if !current.iter().any(|(_, c)| *c == p) {
                added += 1;
                self.add_peer(p).await;
            }
        }
        let out = self.rib.reconfigure(&new);
        // A pool's encapsulation may have changed how its routes are written: every kernel
        // route is worked out again (unchanged ones cost no request).
        if new.pools != self.config.pools {
            self.rib.sweep_fib();
        }
        self.config = new;
        self.reconfigured = SystemTime::now();
        self.send(out).await;
        info!(kept, removed = gone, added, "configuration reloaded");
        Ok(())
    }

    /// A control socket command: its reply, after carrying out what it asked for.
    async fn command(&mut self, cmd: &str) -> Vec<Line> {
        match cmd.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["configure"] | ["configure", "soft"] => {
                let mut lines = vec![Line::new(
                    2,
                    format!("Reading configuration from {}", self.config_path.display()),
                )];
                match self.reload().await {
                    Ok(()) => lines.push(Line::new(3, "Reconfigured")),
                    Err(e) => lines.push(Line::new(8002, e)),
                }
                return lines;
            }
            ["down"] => {
                info!("shutdown requested on the control socket");
                self.shutdown = true;
                return vec![Line::new(7, "Shutdown requested")];
            }
            ["log", "level", level] => {
                return match LogLevel::parse(level) {
                    Some(l) => {
                        (self.set_log_level)(l);
                        info!(level = ?l, "log level changed on the control socket");
                        vec![Line::new(3, format!("Log level {level}"))]
                    }
                    None => vec![Line::new(
                        9001,
                        "syntax error: log level error|warn|info|debug|trace",
                    )],
                };
            }
            ["configure", "check"] => {
                let mut lines = vec![Line::new(
                    2,
                    format!("Reading configuration from {}", self.config_path.display()),
                )];
                match Config::load(&self.config_path) {
                    Ok(_) => lines.push(Line::new(20, "Configuration OK")),
                    Err(e) => lines.push(Line::new(8002, e)),
                }
                return lines;
            }
            _ => {}
        }
        let statuses = self.statuses();
        let (lines, effects) = commands::execute(cmd, &self.context(&statuses));
        for e in effects {
            self.apply(e).await;
        }
        self.sync_kernel();
        lines
    }

    /// Every peer's status now, indexed by peer id.
    fn statuses(&self) -> Vec<Option<Status>> {
        self.handles
            .iter()
            .map(|h| {
                h.as_ref()
                    .map(|h| h.status.lock().unwrap_or_else(|e| e.into_inner()).clone())
            })
            .collect()
    }

    /// What the control commands and the metrics read.
    fn context<'a>(&'a self, statuses: &'a [Option<Status>]) -> commands::Context<'a> {
        commands::Context {
            router_id: self.config.router_id,
            started: self.started,
            reconfigured: self.reconfigured,
            peers: statuses,
            rib: &self.rib,
            recovery: self.sync_deadline.filter(|_| self.restarting).map(|at| {
                let left = at.saturating_duration_since(Instant::now()).as_secs();
                (left, u64::from(self.config.kernel.startup_wait))
            }),
            fib: self.fib.as_ref().map(|f| {
                let in_sync = f.in_sync() && !self.rib.fib_pending();
                let stats = f.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
                commands::FibView { stats, in_sync }
            }),
        }
    }

    /// Carries out what a control command asked for.
    async fn apply(&mut self, e: commands::Effect) {
        use commands::Effect;
        let admin = |subcode, text| ToPeer::Stop(Notification::shutdown(subcode, text));
        match e {
            Effect::Enable(id) => self.to_peer(id, ToPeer::Start).await,
            Effect::Disable(id) => {
                self.to_peer(
                    id,
                    admin(cease::ADMINISTRATIVE_SHUTDOWN, "disabled by operator"),
                )
                .await
            }
            Effect::Restart(id) => {
                self.to_peer(
                    id,
                    admin(cease::ADMINISTRATIVE_RESET, "restarted by operator"),
                )
                .await;
                self.to_peer(id, ToPeer::Start).await;
            }
            Effect::ReloadIn(id) => self.to_peer(id, ToPeer::RequestRefresh).await,
            Effect::ReloadOut(id) => {
                let families = self
                    .rib
                    .peers
                    .get(id)
                    .and_then(|p| p.session.as_ref())
                    .map(|s| s.families.clone());
                for f in families.unwrap_or_default() {
                    let request = RouteRefresh {
                        afi: f.afi,
                        subtype: RouteRefresh::REQUEST,
                        safi: f.safi,
                    };
                    let out = self.rib.refresh(id, request);
                    self.send(out).await;
                }
            }
        }
    }
}

async fn tick(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn recv<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn notified(n: &Option<Arc<tokio::sync::Notify>>) {
    match n {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
