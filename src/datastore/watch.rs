//! The datastore task: one watch over Calico's keys from the revision after the last read;
//! each message's events applied to the resources and this node's configuration decided
//! again; a new decision published (the channel holds only the newest, so a busy daemon
//! skips states, never queues them). On compaction or a lost watch it reads every key again,
//! and the decision from that read is the difference to apply. It never blocks the daemon:
//! a dead etcd only leaves the last published state in place.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch as channel;
use tracing::{info, warn};

use super::etcd::{self, Client, Event, prefix_end};
use super::{PREFIXES, State, Status, View, resources_of, wanted};
use crate::config::datastore::{Resources, decide, resources};

/// Changed keys named in a state (the count covers the rest).
const NAMED_CHANGES: usize = 8;
/// First and longest wait before connecting again.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(10));

/// The watched range: from the affinities up to the end of Calico's v3 resources. Between
/// them sit only Calico's other v3 resources, which `wanted` drops; IPAM blocks and handles
/// (`assignment/`, `handle/`) sort before `host/` and stay out.
fn watch_range() -> (&'static str, String) {
    (resources::AFFINITIES, prefix_end(resources::RESOURCES))
}

/// Every key wren reads, at one revision: the keys of `PREFIXES`, the first range read at
/// the newest revision and the others at the same one.
pub async fn read(client: &mut Client) -> Result<(BTreeMap<String, String>, i64), etcd::Error> {
    let mut kvs = BTreeMap::new();
    let mut revision = 0;
    for prefix in PREFIXES {
        let (page, at) = client.range(prefix, &prefix_end(prefix), revision).await?;
        revision = at;
        for kv in page {
            kvs.insert(kv.key, String::from_utf8_lossy(&kv.value).into_owned());
        }
    }
    Ok((kvs, revision))
}

/// Starts the task from a first state (read from etcd, or saved when `first.saved`).
pub fn spawn(
    client: Client,
    node: String,
    resources: Resources,
    first: State,
    status: Status,
) -> channel::Receiver<View> {
    let reread = first.saved;
    let (tx, rx) = channel::channel(View {
        status,
        state: Arc::new(first.clone()),
    });
    let task = Task {
        client,
        node,
        resources,
        state: first,
        changed: Vec::new(),
        changed_count: 0,
        tx,
    };
    tokio::spawn(task.run(reread));
    rx
}

struct Task {
    client: Client,
    node: String,
    resources: Resources,
    /// The newest state, with the keys as the watch left them.
    state: State,
    /// Keys changed since the last published state.
    changed: Vec<String>,
    changed_count: usize,
    tx: channel::Sender<View>,
}

impl Task {
    async fn run(mut self, mut reread: bool) {
        let mut backoff = BACKOFF.0;
        loop {
            if self.tx.is_closed() {
                return;
            }
            if reread {
                match read(&mut self.client).await {
                    Ok((kvs, revision)) => self.replace(kvs, revision),
                    Err(e) => {
                        self.down(&e);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF.1);
                        continue;
                    }
                }
            }
            let (start, end) = watch_range();
            let mut watch = match self
                .client
                .watch(start, &end, self.state.revision + 1)
                .await
            {
                Ok(w) => w,
                Err(e) => {
                    // Compacted, or etcd gone: read again once it answers (a restored etcd
                    // may even be behind the revision held).
                    self.down(&e);
                    reread = true;
                    if !matches!(e, etcd::Error::Compacted(_)) {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF.1);
                    }
                    continue;
                }
            };
            backoff = BACKOFF.0;
            self.up(self.state.revision);
            info!(endpoint = %self.client.endpoint(), revision = self.state.revision, "datastore watch running");
            loop {
                match watch.next().await {
                    Ok(m) => self.events(m.events, m.revision),
                    Err(e) => {
                        if let etcd::Error::Compacted(at) = e {
                            info!(at, "datastore watch compacted: reading again");
                        } else {
                            self.down(&e);
                        }
                        reread = true;
                        break;
                    }
                }
            }
        }
    }

    fn up(&self, revision: i64) {
        let endpoint = self.client.endpoint().to_string();
        self.tx.send_modify(|v| {
            v.status = Status {
                endpoint,
                connected: true,
                revision: revision.max(v.status.revision),
                error: None,
            };
        });
    }

    fn down(&self, e: &etcd::Error) {
        let endpoint = self.client.endpoint().to_string();
        let first = self.tx.borrow().status.connected;
        if first {
            warn!("datastore {endpoint}: {e}");
        }
        self.tx.send_modify(|v| {
            v.status.endpoint = endpoint;
            v.status.connected = false;
            v.status.error = Some(e.to_string());
        });
    }

    /// A full read: its keys replace the held ones.
    fn replace(&mut self, kvs: BTreeMap<String, String>, revision: i64) {
        let old = std::mem::take(&mut self.state.kvs);
        for (k, v) in &kvs {
            if old.get(k) != Some(v) {
                self.note(k);
            }
        }
        for k in old.keys().filter(|k| !kvs.contains_key(*k)) {
            self.note(k);
        }
        let (resources, malformed) = resources_of(&kvs);
        self.resources = resources;
        self.state.kvs = kvs;
        self.state.malformed = malformed;
        let was_saved = std::mem::replace(&mut self.state.saved, false);
        self.up(revision);
        self.decide(revision, was_saved);
    }

    /// One watch message's events.
    fn events(&mut self, events: Vec<Event>, revision: i64) {
        for e in events.into_iter().filter(|e| wanted(&e.key)) {
            self.note(&e.key);
            let value = e.value.map(|v| String::from_utf8_lossy(&v).into_owned());
            let result = self
                .resources
                .apply(&e.key, value.as_deref().map(str::as_bytes));
            self.state
                .malformed
                .retain(|m| !m.starts_with(&format!("{}:", e.key)));
            match (result, value) {
                (Ok(_), Some(v)) => drop(self.state.kvs.insert(e.key, v)),
                (Ok(_), None) => drop(self.state.kvs.remove(&e.key)),
                (Err(err), _) => {
                    // As a full read would leave it: out of the resources, and named.
                    warn!("datastore: {err}");
                    let _ = self.resources.apply(&e.key, None);
                    self.state.kvs.remove(&e.key);
                    self.state.malformed.push(err.to_string());
                }
            }
        }
        self.up(revision);
        self.decide(revision, false);
    }

    fn note(&mut self, key: &str) {
        if self.changed.len() < NAMED_CHANGES {
            self.changed.push(key.to_string());
        }
        self.changed_count += 1;
    }

    /// Decides again; a decision that differs from the last one is published (and any
    /// decision when `publish`: the first read after running from the saved state).
    fn decide(&mut self, revision: i64, publish: bool) {
        self.state.revision = revision;
        let decision = decide(&self.node, &self.resources);
        if decision == self.state.decision && !publish {
            return;
        }
        self.state.decision = decision;
        self.state.generation += 1;
        self.state.changed = std::mem::take(&mut self.changed);
        self.state.changed_count = std::mem::take(&mut self.changed_count);
        let state = Arc::new(self.state.clone());
        self.tx.send_modify(|v| v.state = state);
    }
}
