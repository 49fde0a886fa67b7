//! The daemon's event loop: sessions' messages into the RIB, the RIB's UPDATEs out to the
//! sessions and its changes to the FIB thread; timers, signals, control and metrics requests.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::Signal;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::Daemon;
use crate::config::LimitAction;
use crate::control::{metrics, server};
use crate::fib;
use crate::notify;
use crate::rib::Outgoing;
use crate::route::{Interfaces, Learning};
use crate::session::{PeerId, ToPeer, ToRib};

/// Most messages from the sessions the RIB takes before it sends what they changed.
const RIB_BATCH: usize = 256;

/// Most prefixes of UPDATEs the RIB takes before it sends what they changed: enough that
/// the UPDATEs out are packed full (each flush ends with one part-filled), few enough that
/// the first go out while the sessions are still reading the rest, and that the prefixes a
/// flush decides are still in the cache from their import. 14,336 is 7/8 of 16,384: the
/// most a hash map of 16,384 slots holds (hashbrown's load), so the RIB's map of a batch's
/// changed prefixes does not double to 32,768 slots (1.9 MB, every page of it faulted in)
/// for the last few.
const RIB_ROUTES: usize = 14_336;

/// How long the next flush of received UPDATEs waits after one, per message hand-off that
/// flush made (see [`spacing`]).
const SPACING_PER_HAND_OFF: Duration = Duration::from_micros(60);

/// The longest a flush waits for the one before.
const MAX_SPACING: Duration = Duration::from_millis(250);

/// How long after a flush that handed its messages to `hand_offs` sessions the next one
/// goes. Each hand-off costs a socket write and a wake-up on both ends whatever it carries,
/// so a flush to a route reflector's thousands of clients is kept from following the last
/// one at once: what arrives meanwhile is applied and goes in the next, and each client
/// gets fewer, fuller writes. A flush to a few peers waits microseconds; one after a quiet
/// spell does not wait at all. RFC 4271 §9.2.1.1 leaves such pacing to the speaker (its
/// MinRouteAdvertisementIntervalTimer is per peer and far longer).
fn spacing(hand_offs: usize) -> Duration {
    let n = u32::try_from(hand_offs).unwrap_or(u32::MAX);
    SPACING_PER_HAND_OFF.saturating_mul(n).min(MAX_SPACING)
}

/// What the event loop waits on, besides the daemon's own timers.
pub(super) struct Inputs {
    pub rib_rx: mpsc::Receiver<ToRib>,
    pub ctl_rx: mpsc::Receiver<server::Request>,
    pub metrics_rx: mpsc::Receiver<metrics::Request>,
    pub watchdog: Option<tokio::time::Interval>,
    pub interfaces: Option<watch::Receiver<Interfaces>>,
    pub fib_drained: Option<Arc<tokio::sync::Notify>>,
    pub learned: Option<mpsc::UnboundedReceiver<Learning>>,
    pub again: Option<mpsc::UnboundedReceiver<Vec<ipnet::IpNet>>>,
    pub term: Signal,
    pub int: Signal,
    pub hup: Signal,
    /// The datastore's watch task, in datastore mode.
    pub datastore: Option<watch::Receiver<crate::datastore::View>>,
}

impl Daemon {
    /// Runs until SIGTERM, SIGINT or `down`.
    pub(super) async fn event_loop(&mut self, mut inputs: Inputs) {
        loop {
            let next_flush = self.peers.next_stale();
            if self.sync_deadline.is_some() && self.rib.initial_sync_done() {
                info!("End-of-RIB from every peer: start-up sync over");
                self.finish_sync();
            }
            tokio::select! {
                Some(m) = inputs.rib_rx.recv(), if self.rib.fib_backlog() < fib::BACKLOG => {
                    self.handle_peer_events(m, &mut inputs.rib_rx).await
                }
                () = sleep_until(Some(self.flush_after)), if self.held => self.send_changes().await,
                () = sleep_until(self.sync_deadline), if self.sync_deadline.is_some() => {
                    info!("start-up wait over before every peer's End-of-RIB");
                    self.finish_sync();
                }
                () = sleep_until(next_flush.map(|(_, at)| at)), if next_flush.is_some() => {
                    if let Some((peer, _)) = next_flush {
                        self.peers.stale_until(peer, None);
                        // End-of-RIB may have taken every stale route already.
                        if let Some(p) = self.rib.peer(peer).filter(|p| p.stale_time().is_some()) {
                            let why = match p.session {
                                Some(_) => "no End-of-RIB within the stale-path time",
                                None => "graceful restart time over",
                            };
                            info!(peer, "{why}: dropping stale routes");
                            let out = self.rib.flush_stale(peer, None);
                            self.send(out).await;
                        }
                    }
                }
                Some((ask, reply)) = inputs.ctl_rx.recv() => {
                    let _ = reply.send(self.ask(ask).await);
                    if self.shutdown {
                        break;
                    }
                }
                Some(reply) = inputs.metrics_rx.recv() => {
                    let statuses = self.peers.statuses();
                    let bfd = self.peers.bfd_sessions().await;
                    let _ = reply.send(metrics::render(&self.context(&statuses, &bfd)));
                }
                _ = inputs.hup.recv() => {
                    if let Err(e) = self.reload().await {
                        warn!("configuration not reloaded: {e}");
                    }
                }
                Some(nets) = recv(&mut inputs.again), if inputs.again.is_some() => {
                    self.rib.fib_again(nets);
                    self.sync_kernel();
                }
                Some(l) = recv(&mut inputs.learned), if inputs.learned.is_some() => {
                    let out = self.rib.learn(l);
                    self.send(out).await;
                }
                () = notified(&inputs.fib_drained), if inputs.fib_drained.is_some() => self.sync_kernel(),
                Some(ifs) = changed(&mut inputs.interfaces), if inputs.interfaces.is_some() => {
                    // Next hops resolve differently now (a device went down, `tunl0` appeared).
                    let out = self.rib.set_interfaces(ifs);
                    self.send(out).await;
                }
                view = changed(&mut inputs.datastore), if inputs.datastore.is_some() => match view {
                    Some(view) => self.datastore_changed(view).await,
                    None => inputs.datastore = None,
                },
                _ = tick(&mut inputs.watchdog), if inputs.watchdog.is_some() => notify::notify("WATCHDOG=1"),
                _ = inputs.term.recv() => break,
                _ = inputs.int.recv() => break,
            }
        }
    }

    /// `first` and what else the sessions have queued, up to [`RIB_BATCH`] messages or
    /// [`RIB_ROUTES`] prefixes: UPDATEs are applied and what they changed is sent once for
    /// all of them, so an update group's members get one message for many peers' routes (a
    /// reflector's clients each get every other client's).
    async fn handle_peer_events(&mut self, first: ToRib, rx: &mut mpsc::Receiver<ToRib>) {
        let (mut m, mut taken, mut routes, mut pending) = (first, 1, 0, false);
        loop {
            // A route refresh sends what came before it first (the RIB does), so the order of
            // everything a peer sees is what it was; a session coming up waits for the flush.
            if let Some(n) = self.handle_peer_event(m).await {
                pending = true;
                routes += n;
            }
            if taken == RIB_BATCH || routes >= RIB_ROUTES || self.rib.fib_backlog() >= fib::BACKLOG
            {
                break;
            }
            match rx.try_recv() {
                Ok(next) => (m, taken) = (next, taken + 1),
                Err(_) => break,
            }
        }
        if pending {
            self.held = true;
            if Instant::now() >= self.flush_after {
                self.send_changes().await;
            }
        }
    }

    /// Flushes the received UPDATEs' changes, and spaces the next flush after this one.
    async fn send_changes(&mut self) {
        let out = self.rib.flush_changes();
        let hand_offs = out.iter().map(|o| o.peers.len()).sum();
        self.held = false;
        self.flush_after = Instant::now() + spacing(hand_offs);
        self.send(out).await;
        self.act_on_exceeded().await;
    }

    /// Applies one message from a session; for an UPDATE or a session up, whose changes
    /// wait for `send_changes`, how many prefixes it carried.
    async fn handle_peer_event(&mut self, m: ToRib) -> Option<usize> {
        let out = match m {
            ToRib::Up {
                peer,
                session,
                local,
                number,
            } => {
                // The session joins its group, and is sent the table, with the batch's flush.
                self.peers.session_up(peer, number);
                let out = self.rib.up(peer, *session, local);
                self.peers.stale_timer(&self.rib, peer);
                self.send(out).await;
                return Some(0);
            }
            ToRib::Down { peer, graceful } => {
                let out = self.rib.down(peer, graceful);
                self.peers.stale_timer(&self.rib, peer);
                out
            }
            ToRib::Update {
                peer,
                update,
                withdraw_all,
            } => {
                if let (Some(f), Some(p)) = (update.end_of_rib(), self.rib.peer(peer)) {
                    info!(peer = %p.config.name, family = %f, "End-of-RIB received");
                }
                return Some(self.rib.receive(peer, &update, withdraw_all));
            }
            ToRib::Refresh { peer, request } => {
                info!(peer, ?request, "route refresh requested");
                self.rib.refresh(peer, request)
            }
        };
        self.send(out).await;
        self.act_on_exceeded().await;
        None
    }

    async fn act_on_exceeded(&mut self) {
        for e in self.rib.take_exceeded() {
            // BIRD's `restart` and `disable` import limit actions: the session ends with Cease
            // "Maximum Number of Prefixes Reached"; `restart` starts it again, `disable`
            // leaves it down until `enable`.
            self.to_peer(e.peer, ToPeer::Stop(e.notification())).await;
            if e.limit.action == LimitAction::Restart {
                self.to_peer(e.peer, ToPeer::Start).await;
            }
        }
    }

    /// Start-up is over: stale kernel routes go, and a restarting speaker stops saying so.
    pub(super) fn finish_sync(&mut self) {
        self.sync_deadline = None;
        self.fib_finish = true;
        self.sync_kernel();
        self.restarting = false;
        for peer in self.peers.commands() {
            let _ = peer.try_send(ToPeer::RestartComplete);
        }
    }

    pub(super) fn sync_kernel(&mut self) {
        match &self.fib {
            Some(f) => {
                f.apply(self.rib.kernel_changes(f.room()));
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
    pub(super) async fn send(&mut self, out: Vec<Outgoing>) {
        self.sync_kernel();
        for o in out {
            for id in o.peers {
                self.peers.send_updates(id, o.bytes.clone()).await;
            }
        }
    }

    pub(super) async fn to_peer(&self, id: PeerId, m: ToPeer) {
        self.peers.send(id, m).await;
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

/// The next value of a watched one; `None` once its sender is gone.
async fn changed<T: Clone>(rx: &mut Option<watch::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => None,
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_are_spaced_by_their_fan_out_up_to_a_bound() {
        assert_eq!(spacing(0), Duration::ZERO);
        assert_eq!(spacing(2), Duration::from_micros(120));
        assert_eq!(spacing(3000), Duration::from_millis(180));
        assert_eq!(spacing(5000), MAX_SPACING);
        assert_eq!(spacing(usize::MAX), MAX_SPACING);
    }
}
