//! Configuration reload (SIGHUP, `configure`) and datastore changes: the new model is read
//! (or decided from the datastore), `config::diff` says what changed, and this applies it.

use std::time::SystemTime;

use tracing::info;

use super::Daemon;
use crate::config::{Config, Contents, diff};
use crate::notify;
use crate::session::ToPeer;
use crate::wire::notification::cease;

impl Daemon {
    /// Reads the configuration file again and applies the difference: unchanged peers keep
    /// their sessions; removed peers get a Cease "Peer De-configured", changed ones a Cease
    /// "Other Configuration Change" and a new session, unless only settings the RIB applies
    /// changed; policy changes are re-exported. A bad file changes nothing.
    pub(super) async fn reload(&mut self) -> Result<(), String> {
        notify::reloading();
        let result = self.apply_config().await;
        notify::notify("READY=1");
        result
    }

    async fn apply_config(&mut self) -> Result<(), String> {
        let contents = self.source.read().map_err(|e| e.to_string())?;
        let new = match (contents, &self.datastore) {
            (Contents::Model(c), None) => c,
            (Contents::Datastore(local), Some(_)) => self.datastore_model(local)?,
            _ => return Err("switching between a datastore and a file needs a restart".into()),
        };
        self.apply_model(new).await.map(drop)
    }

    /// Applies the difference between the running model and `new`; on error nothing changed.
    pub(super) async fn apply_model(&mut self, mut new: Config) -> Result<diff::Changes, String> {
        // `wrend -F` chose whether the kernel is written; the file does not change that.
        new.kernel.enabled = self.config.kernel.enabled;
        let changes = diff::diff(&self.config, &new)?;
        if let Some(level) = changes.log_level {
            (self.set_log_level)(level);
            info!(?level, "log level changed");
        }
        if changes.filters {
            self.rib.set_filters(&new.filters);
        }
        for p in &changes.removed {
            if let Some(id) = self.peers.find(p) {
                self.remove_peer(id, cease::PEER_DECONFIGURED).await;
            }
        }
        for c in &changes.changed {
            let Some(id) = self.peers.find(&c.old) else {
                continue;
            };
            info!(peer = %c.new.name, settings = ?c.settings, reset = c.reset, "peer changed");
            if c.reset {
                self.remove_peer(id, cease::OTHER_CONFIGURATION_CHANGE)
                    .await;
                (self.peers)
                    .add(&mut self.rib, c.new.clone(), self.restarting)
                    .await;
            } else {
                (self.peers)
                    .set_config(&mut self.rib, id, c.new.clone())
                    .await;
            }
        }
        for p in &changes.added {
            // BIRD's `connect delay` lets a node settle after it starts; a peer added to a
            // running node (a node joining the mesh) is dialled at once, so it is up in well
            // under a second rather than after the delay.
            let mut p = p.clone();
            p.settings.connect_delay = 0;
            (self.peers).add(&mut self.rib, p, self.restarting).await;
        }
        let mut out = if changes.policy {
            self.rib.reconfigure(&new)
        } else {
            Vec::new()
        };
        // Peers whose filters changed (their list, or a filter they name) are filtered again
        // with their sessions kept. Refused routes are not kept, so a changed import filter
        // asks the peer for its routes again (ROUTE-REFRESH, RFC 2918); a peer that cannot
        // refresh is reset, as BIRD restarts a protocol whose import filter changed when the
        // peer has no route refresh.
        let ids: Vec<_> = self.rib.peers().map(|(id, _)| id).collect();
        for id in ids {
            let (o, refresh) = self.rib.refilter(id);
            out.extend(o);
            let Some(p) = self.rib.peer(id).filter(|_| refresh) else {
                continue;
            };
            match p.session.as_ref().map(|s| s.route_refresh) {
                Some(true) => self.to_peer(id, ToPeer::RequestRefresh).await,
                Some(false) => {
                    let config = p.config.clone();
                    info!(peer = %config.name, "import filter changed, no route refresh: reset");
                    self.remove_peer(id, cease::OTHER_CONFIGURATION_CHANGE)
                        .await;
                    (self.peers)
                        .add(&mut self.rib, config, self.restarting)
                        .await;
                }
                // No session: its routes come through the new filter when it comes up.
                None => {}
            }
        }
        if changes.pools {
            // A pool's encapsulation may have changed how its routes are written: every
            // kernel route is worked out again (unchanged ones cost no request).
            self.rib.sweep_fib();
        }
        self.config = new;
        self.reconfigured = SystemTime::now();
        self.send(out).await;
        info!(
            added = changes.added.len(),
            removed = changes.removed.len(),
            changed = changes.changed.len(),
            "configuration applied"
        );
        Ok(changes)
    }
}
