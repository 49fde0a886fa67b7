//! Configuration reload (SIGHUP, `configure`): the difference between the running and the
//! new configuration, applied.

use std::time::SystemTime;

use tracing::info;

use super::Daemon;
use crate::config::{Config, Peer as PeerConfig};
use crate::notify;
use crate::session::PeerId;

impl Daemon {
    /// Reads the configuration file again and applies the difference: unchanged peers keep
    /// their sessions; removed peers get a Cease; new or changed ones start; policy changes
    /// are re-exported. A bad file changes nothing.
    pub(super) async fn reload(&mut self) -> Result<(), String> {
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
}
