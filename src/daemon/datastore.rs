//! The daemon in datastore mode: each new state the watch task publishes is applied as a
//! reload is (`Daemon::apply`: only the difference), then saved in the state directory; what
//! `show datastore`, `show status` and the metrics say about the datastore is kept here.
//! The settings only a restart changes (router ID, AS, listen) keep their running values,
//! with a warning. etcd going away publishes no state, so it changes nothing.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tracing::{info, warn};

use super::Daemon;
use crate::config::datastore::Local;
use crate::config::{Config, diff};
use crate::datastore::{Report, State, View, state};

/// How the daemon was started in datastore mode.
pub struct Start {
    pub local: Local,
    /// This node's name in the datastore.
    pub node: String,
    /// The watch task's channel; its current value is what the daemon starts with.
    pub feed: watch::Receiver<View>,
}

/// The daemon's datastore side.
pub(super) struct Mode {
    local: Local,
    view: View,
    /// The generation of the state applied last.
    applied: u64,
    report: Report,
    /// Saves each applied state.
    writer: watch::Sender<Option<Arc<State>>>,
    /// Why the newest state was not applied.
    refused: Option<String>,
}

impl Mode {
    /// The mode for a daemon started from `view`'s state, which it runs already.
    pub(super) fn new(local: Local, node: String, view: View, running: &Config) -> Mode {
        let writer = state::writer(local.datastore.state_file(), node.clone());
        let mut m = Mode {
            local,
            applied: view.state.generation,
            report: Report {
                node,
                applied_at: Some(SystemTime::now()),
                applied: format!("start: {} keys", view.state.kvs.len()),
                ..Report::default()
            },
            view: view.clone(),
            writer,
            refused: None,
        };
        m.computed(&view.state, running);
        m.status();
        if !view.state.saved {
            m.writer.send_replace(Some(view.state));
        }
        m
    }

    pub(super) fn report(&self) -> &Report {
        &self.report
    }

    /// The connection's status as the newest view says, and why a state was refused.
    fn status(&mut self) {
        let (r, view) = (&mut self.report, &self.view);
        r.endpoint = view.status.endpoint.clone();
        r.connected = view.status.connected;
        r.revision = view.status.revision;
        r.from_saved = view.state.saved;
        r.error = view.status.error.clone().or_else(|| self.refused.clone());
    }

    /// What was decided for this node, as it now runs.
    fn computed(&mut self, state: &State, running: &Config) {
        let r = &mut self.report;
        r.applied_revision = state.revision;
        r.warnings = state.malformed.clone();
        if let Ok(d) = &state.decision {
            r.warnings.extend(d.warnings.iter().cloned());
        }
        r.router_id = running.router_id.to_string();
        r.asn = running.asn;
        r.peers = (running.peers.iter())
            .map(|p| (p.name.clone(), p.address, p.asn))
            .collect();
        r.blocks = running.originate.clone();
    }
}

impl Daemon {
    /// The model of the newest datastore state with `local`'s node-local settings (a reload
    /// in datastore mode: the `[datastore]` table itself only changes with a restart).
    pub(super) fn datastore_model(&mut self, local: Local) -> Result<Config, String> {
        let Some(m) = &mut self.datastore else {
            return Err("not in datastore mode".into());
        };
        if local.datastore != m.local.datastore {
            return Err("changing [datastore] needs a restart".into());
        }
        m.local = local;
        let decision = m.view.state.decision.as_ref().map_err(String::clone)?;
        Ok(m.local.overlay(decision.config.clone()))
    }

    /// The watch task published: the connection's status, and maybe a new state to apply.
    pub(super) async fn datastore_changed(&mut self, view: View) {
        let Some(m) = &mut self.datastore else {
            return;
        };
        m.view = view.clone();
        m.status();
        let state = view.state;
        if state.generation == m.applied {
            return;
        }
        m.applied = state.generation;
        let decided = match &state.decision {
            Ok(d) => d,
            Err(e) => {
                warn!(
                    "datastore revision {}: {e}; the running configuration stays",
                    state.revision
                );
                m.refused = Some(e.clone());
                m.status();
                return;
            }
        };
        let mut new = m.local.overlay(decided.config.clone());
        let kept = diff::keep_running(&self.config, &mut new);
        if !kept.is_empty() {
            warn!(
                "datastore changed {}: only a restart applies that; running the old value until then",
                kept.join(", ")
            );
        }
        let what = changed_keys(&state);
        match self.apply_model(new).await {
            Ok(c) => {
                let Some(m) = &mut self.datastore else {
                    return;
                };
                info!(
                    revision = state.revision,
                    "datastore change applied: {what}"
                );
                m.refused = None;
                m.status();
                m.report.applied_at = Some(SystemTime::now());
                m.report.applied = format!(
                    "{what}: {} peers added, {} removed, {} changed{}",
                    c.added.len(),
                    c.removed.len(),
                    c.changed.len(),
                    if c.policy {
                        ", announcements changed"
                    } else {
                        ""
                    }
                );
                if !kept.is_empty() {
                    m.report.applied += &format!(" ({} kept until a restart)", kept.join(", "));
                }
                m.computed(&state, &self.config);
                m.writer.send_replace(Some(state));
            }
            Err(e) => {
                warn!("datastore revision {} not applied: {e}", state.revision);
                if let Some(m) = &mut self.datastore {
                    m.refused = Some(e);
                    m.status();
                }
            }
        }
    }
}

/// The keys a state changed, for the log and `show datastore`.
fn changed_keys(state: &State) -> String {
    let mut s = state.changed.join(", ");
    let more = state.changed_count.saturating_sub(state.changed.len());
    if more > 0 {
        s += &format!(" and {more} more");
    }
    if s.is_empty() {
        s = "read again".into();
    }
    s
}
