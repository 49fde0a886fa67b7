//! Calico's datastore, read natively: the etcd v3 client (`etcd`), the task that reads
//! Calico's keys once and then follows them with one watch, deciding this node's
//! configuration whenever they change (`watch`), and the last applied state on disk
//! (`state`). The daemon receives each new decision and applies only its difference
//! (`daemon::datastore`); what the resources mean is `config::datastore`'s.

pub mod etcd;
pub mod state;
pub mod watch;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use tokio::sync::watch as channel;
use tracing::{info, warn};

use crate::config::datastore::{Decision, Resources, Settings, decide, resources};

/// Key prefixes read at start and after a lost watch: the resources `config::datastore`
/// reads, and the IPAM block affinities. Blocks (`/calico/ipam/v2/assignment/`) are not
/// read: they change with every pod and no decision reads them (confd announces affinities).
pub const PREFIXES: [&str; 5] = [
    "/calico/resources/v3/projectcalico.org/nodes/",
    "/calico/resources/v3/projectcalico.org/bgpconfigurations/",
    "/calico/resources/v3/projectcalico.org/bgppeers/",
    "/calico/resources/v3/projectcalico.org/ippools/",
    resources::AFFINITIES,
];

/// Whether wren reads `key`.
pub fn wanted(key: &str) -> bool {
    PREFIXES.iter().any(|p| key.starts_with(p))
}

/// How the datastore connection is, as the watch task last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The endpoint in use, or tried last.
    pub endpoint: String,
    pub connected: bool,
    /// The newest revision seen.
    pub revision: i64,
    /// Why the connection is down.
    pub error: Option<String>,
}

/// The datastore's keys at one revision and this node's configuration decided from them.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Counts the states published; the daemon applies each new one once.
    pub generation: u64,
    pub revision: i64,
    pub kvs: BTreeMap<String, String>,
    pub decision: Result<Decision, String>,
    /// Values that could not be read (`KEY:LINE:COL: message`), left out of the decision.
    pub malformed: Vec<String>,
    /// Keys changed since the state before (the first few), and how many.
    pub changed: Vec<String>,
    pub changed_count: usize,
    /// Read from the state directory, not from etcd.
    pub saved: bool,
}

/// What the watch task publishes: the connection and the latest state.
#[derive(Debug, Clone)]
pub struct View {
    pub status: Status,
    pub state: Arc<State>,
}

/// What `show datastore`, `show status` and the metrics read.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub node: String,
    pub endpoint: String,
    pub connected: bool,
    /// Newest revision seen, and the revision of the state applied.
    pub revision: i64,
    pub applied_revision: i64,
    /// Running from the state directory: etcd has not answered since start.
    pub from_saved: bool,
    pub applied_at: Option<SystemTime>,
    /// What the last applied change was.
    pub applied: String,
    /// Why the connection is down, or why the newest state was not applied.
    pub error: Option<String>,
    /// From `decide` and from values that could not be read.
    pub warnings: Vec<String>,
    /// What was computed for this node.
    pub router_id: String,
    pub asn: u32,
    pub peers: Vec<(String, IpAddr, u32)>,
    pub blocks: Vec<IpNet>,
}

/// Longest wait for etcd at start before the saved state is used.
const START_WAIT: Duration = Duration::from_secs(5);
/// Wait between attempts while there is nothing to run.
const RETRY: Duration = Duration::from_secs(2);

/// Connects to the datastore and waits for a first configuration to run: read from etcd, or,
/// when etcd does not answer within `START_WAIT`, the saved state. Without either it keeps
/// trying (a node has nothing to run before its Node resource exists). Returns this node's
/// name and the watch task's channel, its first value holding a decision that is `Ok`.
pub async fn start(settings: &Settings) -> Result<(String, channel::Receiver<View>), String> {
    let node = settings.node_name()?;
    let mut client = etcd::Client::new(settings).map_err(|e| e.to_string())?;
    let path = settings.state_file();
    let mut saved_tried = false;
    loop {
        let read = tokio::time::timeout(START_WAIT, watch::read(&mut client)).await;
        let (kvs, revision, saved) = match read {
            Ok(Ok((kvs, revision))) => (kvs, revision, false),
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                let stored = if saved_tried {
                    None
                } else {
                    saved_tried = true;
                    match state::load(&path, &node) {
                        Ok(s) => s,
                        Err(e) => {
                            warn!("saved datastore state not used: {e}");
                            None
                        }
                    }
                };
                match stored {
                    Some(s) => {
                        warn!(
                            "datastore {} unreachable ({why}): running from the state saved at revision {}",
                            client.endpoint(),
                            s.revision
                        );
                        (s.kvs, s.revision, true)
                    }
                    None => {
                        warn!(
                            "datastore {} unreachable ({why}) and no saved state: waiting",
                            client.endpoint()
                        );
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                }
            }
        };
        let (resources, malformed) = resources_of(&kvs);
        let decision = decide(&node, &resources);
        if let Err(e) = &decision {
            warn!("datastore: {e}: waiting for it to change");
            saved_tried = saved_tried || saved;
            tokio::time::sleep(RETRY).await;
            continue;
        }
        info!(revision, saved, "datastore read for node {node}");
        let status = Status {
            endpoint: client.endpoint().to_string(),
            connected: !saved,
            revision,
            error: None,
        };
        let first = State {
            generation: 1,
            revision,
            changed_count: kvs.len(),
            changed: Vec::new(),
            kvs,
            decision,
            malformed,
            saved,
        };
        let feed = watch::spawn(client, node.clone(), resources, first, status);
        return Ok((node, feed));
    }
}

/// The resources of a set of keys; values that cannot be read are left out and named.
pub fn resources_of(kvs: &BTreeMap<String, String>) -> (Resources, Vec<String>) {
    let mut r = Resources::default();
    let mut malformed = Vec::new();
    for (k, v) in kvs {
        if let Err(e) = r.apply(k, Some(v.as_bytes())) {
            malformed.push(e.to_string());
        }
    }
    (r, malformed)
}
