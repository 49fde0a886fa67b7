//! Wiring: peer tasks, listeners, the RIB task and the control socket; signals.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::info;

use crate::config::Config;
use crate::control::{commands, server};
use crate::fib;
use crate::rib::{Outgoing, Rib};
use crate::session::{self, Handle, PeerId, ToPeer, ToRib, listen};
use crate::wire::notification::cease;
use crate::wire::{Notification, RouteRefresh};

/// How the daemon was started.
pub struct Options {
    pub config: Config,
    /// Control socket paths (BIRD's `-s`; Calico's bird.ctl and bird6.ctl may both be given).
    pub control: Vec<PathBuf>,
    /// Started with `-R`: tell peers we restarted (RFC 4724 §3 Restart State).
    pub restarting: bool,
}

/// Runs until SIGTERM or SIGINT, then sends every peer a Cease and returns.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let config = opts.config;
    let started = SystemTime::now();
    let peers = config.peers();
    let (rib_tx, mut rib_rx) = mpsc::channel::<ToRib>(1024);
    let handles: Vec<Handle> = peers
        .iter()
        .enumerate()
        .map(|(id, p)| {
            session::spawn(
                id,
                p.clone(),
                config.asn,
                config.router_id,
                opts.restarting,
                rib_tx.clone(),
            )
        })
        .collect();
    let directory: listen::Directory = Arc::new(RwLock::new(
        peers
            .iter()
            .zip(&handles)
            .map(|(p, h)| (p.address, h.commands.clone()))
            .collect::<HashMap<_, _>>(),
    ));
    let keys: Vec<_> = peers
        .iter()
        .filter_map(|p| p.settings.password.clone().map(|k| (p.address, k)))
        .collect();
    for addr in &config.listen.addresses {
        let at = SocketAddr::new(*addr, config.listen.port);
        let l = listen::open(at, &keys).with_context(|| format!("listening on {at}"))?;
        info!("listening on {at}");
        tokio::spawn(listen::run(l, directory.clone()));
    }
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<server::Request>(64);
    for path in &opts.control {
        let l = server::bind(path).with_context(|| format!("control socket {}", path.display()))?;
        info!("control socket {}", path.display());
        tokio::spawn(server::run(l, ctl_tx.clone()));
    }
    for h in &handles {
        let _ = h.commands.send(ToPeer::Start).await;
    }

    let mut rib = Rib::new(&config);
    let fib = if config.kernel.enabled {
        Some(
            fib::Handle::start(&config.kernel)
                .context("opening the kernel routing table (netlink)")?,
        )
    } else {
        info!("kernel routes disabled: the kernel is not touched");
        None
    };
    let sync_kernel = |rib: &mut Rib| match &fib {
        Some(f) => f.sync(rib),
        None => rib.fib_dirty.clear(),
    };
    sync_kernel(&mut rib);
    // Start-up sync ends on every peer's End-of-RIB, or after this long at most.
    let mut sync_deadline =
        Some(Instant::now() + Duration::from_secs(u64::from(config.kernel.startup_wait)));
    // Graceful restart (RFC 4724 §4.2): when to drop a restarting peer's stale routes.
    let mut stale_deadline: HashMap<PeerId, Instant> = HashMap::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        let next_flush = stale_deadline
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(p, at)| (*p, *at));
        if sync_deadline.is_some() && rib.initial_sync_done() {
            info!("End-of-RIB from every peer: start-up sync over");
            sync_deadline = None;
            if let Some(f) = &fib {
                f.finish_sync();
            }
        }
        tokio::select! {
            Some(m) = rib_rx.recv() => {
                let out = match m {
                    ToRib::Up { peer, session, local } => rib.up(peer, *session, local),
                    ToRib::Down { peer, graceful } => {
                        let restart = rib
                            .peers
                            .get(peer)
                            .and_then(|p| p.session.as_ref())
                            .and_then(|s| s.peer_graceful_restart.as_ref())
                            .map(|g| g.restart_time)
                            .filter(|_| graceful);
                        if let Some(t) = restart {
                            stale_deadline.insert(peer, Instant::now() + Duration::from_secs(u64::from(t)));
                        }
                        rib.down(peer, graceful)
                    }
                    ToRib::Update { peer, update, withdraw_all } => {
                        if let (Some(f), Some(p)) = (update.end_of_rib(), rib.peers.get(peer)) {
                            info!(peer = %p.config.name, family = %f, "End-of-RIB received");
                        }
                        rib.update(peer, &update, withdraw_all)
                    }
                    ToRib::Refresh { peer, request } => {
                        info!(peer, ?request, "route refresh requested");
                        rib.refresh(peer, request)
                    }
                };
                sync_kernel(&mut rib);
                send(&handles, out).await;
            }
            () = sleep_until(sync_deadline), if sync_deadline.is_some() => {
                info!("start-up wait over before every peer's End-of-RIB");
                sync_deadline = None;
                if let Some(f) = &fib {
                    f.finish_sync();
                }
            }
            () = sleep_until(next_flush.map(|(_, at)| at)), if next_flush.is_some() => {
                if let Some((peer, _)) = next_flush {
                    stale_deadline.remove(&peer);
                    info!(peer, "graceful restart time over: dropping stale routes");
                    let out = rib.flush_stale(peer, None);
                    sync_kernel(&mut rib);
                    send(&handles, out).await;
                }
            }
            Some((cmd, reply)) = ctl_rx.recv() => {
                let statuses: Vec<_> = handles
                    .iter()
                    .map(|h| h.status.lock().unwrap_or_else(|p| p.into_inner()).clone())
                    .collect();
                let ctx = commands::Context {
                    router_id: config.router_id,
                    started,
                    reconfigured: started,
                    peers: &statuses,
                    rib: &rib,
                };
                let (lines, effects) = commands::execute(&cmd, &ctx);
                let _ = reply.send(lines);
                for e in effects {
                    apply(e, &mut rib, &handles).await;
                }
                sync_kernel(&mut rib);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    info!("shutting down");
    for h in &handles {
        let n = Notification::shutdown(cease::ADMINISTRATIVE_SHUTDOWN, "wren shutting down");
        let _ = h.commands.send(ToPeer::Stop(n)).await;
    }
    // Let the writers put the Ceases on the wire.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for p in &opts.control {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// Carries out what a control command asked for.
async fn apply(e: commands::Effect, rib: &mut Rib, handles: &[Handle]) {
    use commands::Effect;
    let to = |id: usize, m: ToPeer| async move {
        if let Some(h) = handles.get(id) {
            let _ = h.commands.send(m).await;
        }
    };
    let admin = |subcode, text| ToPeer::Stop(Notification::shutdown(subcode, text));
    match e {
        Effect::Enable(id) => to(id, ToPeer::Start).await,
        Effect::Disable(id) => {
            to(
                id,
                admin(cease::ADMINISTRATIVE_SHUTDOWN, "disabled by operator"),
            )
            .await
        }
        Effect::Restart(id) => {
            to(
                id,
                admin(cease::ADMINISTRATIVE_RESET, "restarted by operator"),
            )
            .await;
            to(id, ToPeer::Start).await;
        }
        Effect::ReloadIn(id) => to(id, ToPeer::RequestRefresh).await,
        Effect::ReloadOut(id) => {
            let families = rib
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
                let out = rib.refresh(id, request);
                send(handles, out).await;
            }
        }
    }
}

/// Queues each group's encoded messages to its members.
async fn send(handles: &[Handle], out: Vec<Outgoing>) {
    for o in out {
        for id in o.peers {
            if let Some(h) = handles.get(id) {
                let _ = h.commands.send(ToPeer::Send(o.bytes.clone())).await;
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
