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
        let mut any = false;
        for e in events.into_iter().filter(|e| wanted(&e.key)) {
            any = true;
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
        // Other resources in the watched range (workload endpoints, policies) change
        // nothing decided.
        if any {
            self.decide(revision, false);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::datastore::Settings;

    const NODES: &str = "/calico/resources/v3/projectcalico.org/nodes/";

    fn node(ip: &str) -> String {
        format!(r#"{{"kind":"Node","spec":{{"bgp":{{"ipv4Address":"{ip}/24"}}}}}}"#)
    }

    fn put(key: &str, value: &str) -> Event {
        Event {
            key: key.into(),
            value: Some(value.as_bytes().to_vec()),
            mod_revision: 0,
        }
    }

    /// A task on a state of two nodes (its client never connects here).
    fn task() -> (Task, channel::Receiver<View>) {
        let settings: Settings =
            ::toml::from_str("kind = \"etcdv3\"\nendpoints = [\"http://127.0.0.1:1\"]\n").unwrap();
        let kvs = BTreeMap::from([
            (format!("{NODES}a"), node("198.51.100.1")),
            (format!("{NODES}b"), node("198.51.100.2")),
        ]);
        let (resources, malformed) = resources_of(&kvs);
        let first = State {
            generation: 1,
            revision: 5,
            decision: decide("a", &resources),
            kvs,
            malformed,
            changed: Vec::new(),
            changed_count: 0,
            saved: false,
        };
        assert!(first.decision.is_ok());
        let (tx, rx) = channel::channel(View {
            status: Status {
                endpoint: String::new(),
                connected: true,
                revision: 5,
                error: None,
            },
            state: Arc::new(first.clone()),
        });
        let task = Task {
            client: Client::new(&settings).unwrap(),
            node: "a".into(),
            resources,
            state: first,
            changed: Vec::new(),
            changed_count: 0,
            tx,
        };
        (task, rx)
    }

    fn peers(rx: &channel::Receiver<View>) -> Vec<String> {
        let v = rx.borrow();
        let d = v.state.decision.as_ref().unwrap();
        d.config.peers.iter().map(|p| p.name.clone()).collect()
    }

    /// A new decision is published once per change that alters it; events outside the
    /// keys read, or that decide the same, publish nothing new.
    #[test]
    fn publishes_only_changed_decisions() {
        let (mut t, rx) = task();
        assert_eq!(peers(&rx), ["Mesh_198_51_100_2"]);
        let other = "/calico/resources/v3/projectcalico.org/workloadendpoints/ns/pod";
        t.events(vec![put(other, "{}")], 6);
        assert_eq!(
            (rx.borrow().state.generation, rx.borrow().status.revision),
            (1, 6)
        );
        t.events(vec![put(&format!("{NODES}c"), &node("198.51.100.3"))], 7);
        let s = rx.borrow().state.clone();
        assert_eq!((s.generation, s.revision), (2, 7));
        assert_eq!(s.changed, [format!("{NODES}c")]);
        assert_eq!(peers(&rx), ["Mesh_198_51_100_2", "Mesh_198_51_100_3"]);
        // The same value again: nothing decided differently.
        t.events(vec![put(&format!("{NODES}c"), &node("198.51.100.3"))], 8);
        assert_eq!(rx.borrow().state.generation, 2);
        // A deletion.
        let del = Event {
            key: format!("{NODES}b"),
            value: None,
            mod_revision: 9,
        };
        t.events(vec![del], 9);
        assert_eq!(peers(&rx), ["Mesh_198_51_100_3"]);
        assert!(!rx.borrow().state.kvs.contains_key(&format!("{NODES}b")));
    }

    /// A value that cannot be read leaves its resource out, is named, and is forgotten
    /// once a good value replaces it; a full read says which keys changed.
    #[test]
    fn malformed_values_and_full_reads() {
        let (mut t, rx) = task();
        t.events(vec![put(&format!("{NODES}b"), "{\"spec\": 7}")], 6);
        let s = rx.borrow().state.clone();
        assert_eq!(s.malformed.len(), 1, "{s:?}");
        assert!(s.malformed[0].starts_with(&format!("{NODES}b:")), "{s:?}");
        assert!(peers(&rx).is_empty());
        t.events(vec![put(&format!("{NODES}b"), &node("198.51.100.2"))], 7);
        assert!(rx.borrow().state.malformed.is_empty());
        assert_eq!(peers(&rx), ["Mesh_198_51_100_2"]);

        let mut kvs = t.state.kvs.clone();
        kvs.remove(&format!("{NODES}b"));
        kvs.insert(format!("{NODES}d"), node("198.51.100.4"));
        t.replace(kvs, 20);
        let s = rx.borrow().state.clone();
        assert_eq!(s.revision, 20);
        assert_eq!(s.changed, [format!("{NODES}d"), format!("{NODES}b")]);
        assert_eq!(peers(&rx), ["Mesh_198_51_100_4"]);
    }
}
