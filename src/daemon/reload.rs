//! Configuration reload (SIGHUP, `configure`): the new model is read, `config::diff` says
//! what changed, and this applies it.

use std::time::SystemTime;

use tracing::info;

use super::Daemon;
use crate::config::{Config, diff};
use crate::notify;
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
        let mut new = Config::load(&self.config_path).map_err(|e| e.to_string())?;
        // `wrend -F` chose whether the kernel is written; the file does not change that.
        new.kernel.enabled = self.config.kernel.enabled;
        let changes = diff::diff(&self.config, &new)?;
        if let Some(level) = changes.log_level {
            (self.set_log_level)(level);
            info!(?level, "log level changed");
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
            (self.peers)
                .add(&mut self.rib, p.clone(), self.restarting)
                .await;
        }
        let out = if changes.policy {
            self.rib.reconfigure(&new)
        } else {
            Vec::new()
        };
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
            "configuration reloaded"
        );
        Ok(())
    }
}
