//! Control socket commands that act on the daemon (`configure`, `down`, `log level`,
//! `enable`/`disable`/`restart`/`reload`), and the view the read-only commands and the
//! metrics get.

use tokio::time::Instant;
use tracing::info;

use super::Daemon;
use crate::bfd;
use crate::config::LogLevel;
use crate::control::Line;
use crate::control::commands::{self, Reply};
use crate::control::server::Ask;
use crate::session::{Status, ToPeer};
use crate::wire::Notification;
use crate::wire::RouteRefresh;
use crate::wire::notification::cease;

impl Daemon {
    /// What a control client asked: a command, or the next chunk of a long reply.
    pub(super) async fn ask(&mut self, ask: Ask) -> Reply {
        match ask {
            Ask::Command(cmd) => self.command(&cmd).await,
            Ask::More(walk) => {
                let statuses = self.peers.statuses();
                commands::resume(walk, &self.context(&statuses, &[]))
            }
        }
    }

    /// A control socket command: its reply, after carrying out what it asked for.
    async fn command(&mut self, cmd: &str) -> Reply {
        match cmd.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["configure"] | ["configure", "soft"] => {
                let mut lines = vec![Line::new(
                    2,
                    format!(
                        "Reading configuration from {}",
                        self.source.path().display()
                    ),
                )];
                match self.reload().await {
                    Ok(()) => lines.push(Line::new(3, "Reconfigured")),
                    Err(e) => lines.push(Line::new(8002, e.to_string())),
                }
                return lines.into();
            }
            ["down"] => {
                info!("shutdown requested on the control socket");
                self.shutdown = true;
                return vec![Line::new(7, "Shutdown requested")].into();
            }
            ["log", "level", level] => {
                let lines = match LogLevel::parse(level) {
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
                return lines.into();
            }
            ["configure", "check"] => {
                let mut lines = vec![Line::new(
                    2,
                    format!(
                        "Reading configuration from {}",
                        self.source.path().display()
                    ),
                )];
                match self.source.read() {
                    Ok(_) => lines.push(Line::new(20, "Configuration OK")),
                    Err(e) => lines.push(Line::new(8002, e.to_string())),
                }
                return lines.into();
            }
            _ => {}
        }
        let statuses = self.peers.statuses();
        // Only the commands that show BFD ask its thread.
        let bfd = match cmd.contains("bfd") {
            true => self.peers.bfd_sessions().await,
            false => Vec::new(),
        };
        let (reply, effects) = commands::execute(cmd, &self.context(&statuses, &bfd));
        for e in effects {
            self.apply(e).await;
        }
        self.sync_kernel();
        reply
    }

    /// What the control commands and the metrics read.
    pub(super) fn context<'a>(
        &'a self,
        statuses: &'a [Option<Status>],
        bfd: &'a [bfd::Info],
    ) -> commands::Context<'a> {
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
                commands::FibView {
                    stats: f.stats(),
                    in_sync,
                }
            }),
            datastore: self.datastore.as_ref().map(|m| m.report()),
            bfd,
            // A peer that is back waits for End-of-RIB: its timer is no restart timer.
            restart_timers: (self.peers.stale_deadlines())
                .filter(|(id, _)| self.rib.peer(*id).is_some_and(|p| p.session.is_none()))
                .map(|(id, at)| (id, at.saturating_duration_since(Instant::now()).as_secs()))
                .collect(),
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
                    .peer(id)
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
