//! A Calico cluster in network namespaces whose only source of configuration is etcd: a
//! bridge namespace (`ds<pid>-<test>-br`) holding the L2 fabric and etcd at 198.51.100.2, a
//! namespace per node (`…-node<k>`, 198.51.100.(10+k)/24 on `eth0`) with a pod
//! (`…-node<k>-pod`, 198.19.(10+k).2, wired as Calico wires one), and wrend on each node
//! started with a config file that holds only `[datastore]`. Node k's IPAM block is
//! 198.19.(10+k).0/26, in pool 198.19.0.0/16.
//!
//! What the tests read: each node's BGP rows of `wrenc show protocols`, its `proto bird`
//! kernel routes, pod-to-pod pings, and its BGP TCP connections (`ss`): a session that
//! resets comes back on a new connection, so a connection's 4-tuple that stays the same is a
//! session that did not reset. Dropping the cluster stops exactly the processes it started
//! (etcd too) and deletes its namespaces, also when a test panics.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use crate::harness::etcd::{Client, Etcd};
use crate::harness::netns::{add_netns, del_netns, ip_lines, remove_stale_namespaces, wire_pod};
use crate::harness::proc::{
    ProcId, Procs, cli, require_binaries, require_root, system_bin, wait_until, work_dir,
};
use crate::harness::resources::{CalicoNode, Writer};
use crate::harness::wrend::{wren_bin, wrenc_bin};

/// How long sessions may take to come up (Calico's connect delay and retry timers).
pub const ESTABLISH: Duration = Duration::from_secs(30);
/// How long routes may take to reach the kernel once sessions are up.
pub const CONVERGE: Duration = Duration::from_secs(20);
/// etcd's address, on the bridge.
pub const ETCD_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The cluster's AS (Calico's default).
pub const ASN: u32 = 64512;

/// Node k's address.
pub fn node_ip(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 10 + k)
}

/// Node k's name.
pub fn node_name(k: u8) -> String {
    format!("node{k}")
}

/// Node k's IPAM block.
pub fn block(k: u8) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(198, 19, 10 + k, 0), 26).expect("a /26")
}

/// Node k's second block (for tests that move or add affinities).
pub fn second_block(k: u8) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(198, 19, 10 + k, 64), 26).expect("a /26")
}

/// Node k's pod address.
pub fn pod_ip(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 10 + k, 2)
}

/// The Calico Node resource of node k, as calico-node would create it.
pub fn calico_node(k: u8) -> CalicoNode {
    CalicoNode::new(&node_name(k), Ipv4Net::new(node_ip(k), 24).expect("a /24"))
}

/// The name wrend (as Calico's BIRD) gives the session of `kind` (`Mesh`, `Node`, `Global`)
/// to node k.
pub fn session_name(kind: &str, k: u8) -> String {
    format!("{kind}{}", session_suffix(k))
}

/// One BGP row of `show protocols`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub state: String,
    pub since: String,
    pub info: String,
}

impl Row {
    pub fn established(&self) -> bool {
        self.state == "up" && self.info.starts_with("Established")
    }
}

/// Every node's BGP connections (remote address → local and remote socket) and
/// `show protocols` rows at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub connections: BTreeMap<u8, BTreeMap<IpAddr, (SocketAddr, SocketAddr)>>,
    pub rows: BTreeMap<u8, BTreeMap<String, Row>>,
}

pub struct Cluster {
    prefix: String,
    procs: Procs,
    pub etcd: Etcd,
    /// Node number → its wrend, while it runs.
    wrend: RefCell<BTreeMap<u8, ProcId>>,
    namespaces: RefCell<Vec<String>>,
}

impl Deref for Cluster {
    type Target = Procs;
    fn deref(&self) -> &Procs {
        &self.procs
    }
}

impl Cluster {
    /// The fabric and etcd, with the cluster's `default` BGPConfiguration (`mesh` on or off)
    /// and its pool written; no node yet.
    pub fn new(id: &str, mesh: bool) -> Cluster {
        require_root(
            "the datastore tests need root (network namespaces, veth, bridges, BGP on port \
             179): run `sudo cargo test --test datastore_cluster`, after `sudo bash tests/peers/install.sh`",
        );
        require_binaries(&[
            system_bin("ip"),
            system_bin("kill"),
            system_bin("ping"),
            system_bin("ss"),
            crate::harness::etcd::etcd_bin(),
            wren_bin(),
            wrenc_bin(),
        ]);
        remove_stale_namespaces("ds", "datastore");
        let dir = work_dir(Path::new("/tmp/wren-datastore"), id);
        let prefix = format!("ds{}-{id}", std::process::id());
        let br = format!("{prefix}-br");
        add_netns(&br, &[]);
        let namespaces = RefCell::new(vec![br.clone()]);
        ip_lines(&[
            format!("-n {br} link add name br type bridge"),
            format!("-n {br} addr add {ETCD_IP}/24 dev br"),
            format!("-n {br} link set dev br up"),
        ]);
        let etcd = Etcd::start(&br, IpAddr::V4(ETCD_IP), &dir);
        let c = Cluster {
            prefix,
            procs: Procs::new(id, dir),
            etcd,
            wrend: RefCell::new(BTreeMap::new()),
            namespaces,
        };
        c.log(&format!(
            "work directory {}; etcd at {}",
            c.dir.display(),
            c.etcd.endpoint()
        ));
        let etcd = c.client();
        let w = Writer(&etcd);
        c.must(w.bgp_configuration(mesh, ASN));
        c.must(w.ip_pool(
            "default-ipv4-ippool",
            "198.19.0.0/16".parse().expect("a CIDR"),
        ));
        c
    }

    /// A client of etcd as it runs now.
    pub fn client(&self) -> Client {
        self.etcd.client()
    }

    pub fn ns(&self, k: u8) -> String {
        format!("{}-{}", self.prefix, node_name(k))
    }

    fn pod_ns(&self, k: u8) -> String {
        format!("{}-pod", self.ns(k))
    }

    /// Node k's namespace on the bridge and its pod; no wrend yet.
    pub fn add_host(&self, k: u8) {
        let (ns, pod, br) = (self.ns(k), self.pod_ns(k), format!("{}-br", self.prefix));
        for n in [&ns, &pod] {
            add_netns(
                n,
                &[
                    "net.ipv4.ip_forward=1",
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                ],
            );
            self.namespaces.borrow_mut().push(n.clone());
        }
        ip_lines(&[
            format!("link add name eth0 netns {ns} type veth peer name br-node{k} netns {br}"),
            format!("-n {br} link set dev br-node{k} master br"),
            format!("-n {br} link set dev br-node{k} up"),
            format!("-n {ns} addr add {}/24 dev eth0", node_ip(k)),
            format!("-n {ns} link set dev eth0 up"),
        ]);
        wire_pod(&ns, &pod, &[IpAddr::V4(pod_ip(k))]);
    }

    /// Node k's config: `[datastore]` and nothing else.
    pub fn config(&self, k: u8) -> String {
        format!(
            "# node{k}: everything comes from etcd.\n[datastore]\nkind = \"etcdv3\"\n\
             endpoints = [\"{}\"]\nnode = \"{}\"\nstate_dir = \"{}\"\n",
            self.etcd.endpoint(),
            node_name(k),
            self.dir.join(format!("state-node{k}")).display()
        )
    }

    fn ctl(&self, k: u8) -> PathBuf {
        self.dir.join(format!("node{k}.ctl"))
    }

    /// Starts wrend on node k; returns once its control socket answers.
    pub fn start(&self, k: u8) {
        let conf = self.write(&format!("node{k}.toml"), &self.config(k));
        let ctl = self.ctl(k);
        let args = [
            "-c".to_string(),
            conf.display().to_string(),
            "-s".to_string(),
            ctl.display().to_string(),
        ];
        let p = self.spawn(&node_name(k), &self.ns(k), &wren_bin(), &args);
        self.wrend.borrow_mut().insert(k, p);
        let r = wait_until(&format!("node{k}: control socket"), ESTABLISH, || {
            if !self.alive(p) {
                return Ok(Err(format!("node{k}'s wrend exited")));
            }
            self.show(k, "show status").map(Ok)
        });
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) | Err(e) => self.fail(&format!("starting node{k}: {e}")),
        }
    }

    /// SIGKILLs node k's wrend.
    pub fn kill(&self, k: u8) {
        if let Some(p) = self.wrend.borrow_mut().remove(&k) {
            self.procs.kill(p);
        }
    }

    /// Node k's wrend in the process table.
    pub fn wrend_proc(&self, k: u8) -> ProcId {
        self.wrend.borrow()[&k]
    }

    /// Sends `sig` (a name: STOP, CONT) to node k's wrend.
    pub fn signal(&self, k: u8, sig: &str) {
        if let Some(&p) = self.wrend.borrow().get(&k) {
            self.procs.signal(p, sig);
        }
    }

    /// Writes node k's Node resource and its block, adds its host and starts its wrend.
    pub fn join(&self, node: &CalicoNode, k: u8) {
        let etcd = self.client();
        self.must(Writer(&etcd).node(node, &[block(k)]));
        self.add_host(k);
        self.start(k);
    }

    /// The nodes whose wrend runs.
    pub fn running(&self) -> Vec<u8> {
        self.wrend.borrow().keys().copied().collect()
    }

    /// A command on node k's control socket, through wrenc.
    pub fn show(&self, k: u8, cmd: &str) -> Result<String, String> {
        let ctl = self.ctl(k).display().to_string();
        let mut args = vec!["-s", ctl.as_str()];
        args.extend(cmd.split_whitespace());
        cli(None, &wrenc_bin(), &args)
    }

    /// Node k's BGP rows of `show protocols`, by name.
    pub fn rows(&self, k: u8) -> Result<BTreeMap<String, Row>, String> {
        let out = self.show(k, "show protocols")?;
        let mut rows = BTreeMap::new();
        for line in out.lines() {
            let t: Vec<&str> = line.split_whitespace().collect();
            if t.len() < 5 || t[1] != "BGP" {
                continue;
            }
            rows.insert(
                t[0].to_string(),
                Row {
                    state: t[3].to_string(),
                    since: t[4].to_string(),
                    info: t[5..].join(" "),
                },
            );
        }
        Ok(rows)
    }

    /// Ok when node k's BGP rows are exactly `want`, every one Established.
    pub fn sessions_are(&self, k: u8, want: &BTreeSet<String>) -> Result<(), String> {
        let rows = self.rows(k)?;
        let have: BTreeSet<String> = rows.keys().cloned().collect();
        if &have != want {
            return Err(format!("node{k}: sessions {have:?}, expected {want:?}"));
        }
        match rows.iter().find(|(_, r)| !r.established()) {
            Some((name, r)) => Err(format!("node{k}: {name} is {r:?}")),
            None => Ok(()),
        }
    }

    /// Waits until every node's sessions are `want(k)`, all Established, with one TCP
    /// connection each.
    pub fn wait_sessions(&self, what: &str, want: impl Fn(u8) -> BTreeSet<String>) {
        for k in self.running() {
            let w = want(k);
            let r = wait_until(&format!("{what}: node{k}'s sessions"), ESTABLISH, || {
                self.sessions_are(k, &w)
            });
            self.must(r);
        }
        for k in self.running() {
            let n = want(k).len();
            let r = wait_until(
                &format!("{what}: node{k}: one connection per session"),
                Duration::from_secs(10),
                || {
                    let c = self.connections(k)?;
                    if c.len() == n {
                        Ok(())
                    } else {
                        Err(format!("node{k}: {} connections for {n} sessions", c.len()))
                    }
                },
            );
            self.must(r);
        }
    }

    /// Node k's established BGP connections by remote address; an error when a peer has
    /// two (a collision not yet resolved).
    pub fn connections(&self, k: u8) -> Result<BTreeMap<IpAddr, (SocketAddr, SocketAddr)>, String> {
        let out = cli(
            Some(&self.ns(k)),
            &system_bin("ss"),
            &["-tnH", "state", "established"],
        )?;
        let mut map = BTreeMap::new();
        for line in out.lines() {
            // `Recv-Q Send-Q Local Peer …` (no State column under a state filter).
            let mut socks = line
                .split_whitespace()
                .filter_map(|w| w.parse::<SocketAddr>().ok());
            let (Some(l), Some(r)) = (socks.next(), socks.next()) else {
                continue;
            };
            if l.port() != 179 && r.port() != 179 {
                continue;
            }
            // A listener on `[::]` shows IPv4 peers as `::ffff:a.b.c.d`.
            if map.insert(r.ip().to_canonical(), (l, r)).is_some() {
                return Err(format!("node{k}: two connections with {}", r.ip()));
            }
        }
        Ok(map)
    }

    /// Every running node's connections and rows, once there is one connection per peer.
    pub fn snapshot(&self) -> Snapshot {
        let r = wait_until(
            "a snapshot of every session",
            Duration::from_secs(10),
            || {
                let mut s = Snapshot::default();
                for k in self.running() {
                    s.connections.insert(k, self.connections(k)?);
                    s.rows.insert(k, self.rows(k)?);
                }
                Ok(s)
            },
        );
        self.must(r)
    }

    /// The sessions of `before` that reset since (their connection replaced or gone, or
    /// their row's `since` changed), leaving out those with nodes in `changed` (their resets
    /// may be necessary) and nodes not running now.
    pub fn resets_since(&self, before: &Snapshot, changed: &[u8]) -> Vec<String> {
        let now = self.snapshot();
        let ips: BTreeSet<IpAddr> = changed.iter().map(|&k| IpAddr::V4(node_ip(k))).collect();
        let mut resets = Vec::new();
        for (k, conns) in &before.connections {
            if changed.contains(k) || !now.connections.contains_key(k) {
                continue;
            }
            for (peer, c) in conns {
                if ips.contains(peer) {
                    continue;
                }
                let after = now.connections[k].get(peer);
                if after != Some(c) {
                    resets.push(format!(
                        "node{k}: connection with {peer} was {c:?}, now {after:?}"
                    ));
                }
            }
            for (name, row) in &before.rows[k] {
                if changed.iter().any(|&j| name.ends_with(&session_suffix(j))) {
                    continue;
                }
                let after = now.rows[k].get(name);
                if after.map(|r| &r.since) != Some(&row.since) {
                    resets.push(format!("node{k}: {name} was {row:?}, now {after:?}"));
                }
            }
        }
        resets
    }

    /// Fails the test when a session of `before` other than those with `changed` nodes reset.
    pub fn no_resets(&self, what: &str, before: &Snapshot, changed: &[u8]) {
        let resets = self.resets_since(before, changed);
        if !resets.is_empty() {
            self.fail(&format!("{what}: sessions reset: {resets:#?}"));
        }
        let n: usize = before
            .connections
            .iter()
            .filter(|(k, _)| !changed.contains(k))
            .map(|(_, c)| c.len())
            .sum();
        self.log(&format!("{what}: 0 resets ({n} connections kept)"));
    }

    /// Node k's `proto bird` IPv4 routes that go via a node: (prefix, next hop).
    pub fn kernel_via(&self, k: u8) -> Result<BTreeSet<(String, String)>, String> {
        let out = cli(
            Some(&self.ns(k)),
            &system_bin("ip"),
            &["-4", "-o", "route", "show", "proto", "bird"],
        )?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let t: Vec<&str> = l.split_whitespace().collect();
                let via = t.iter().position(|w| *w == "via")?;
                // `ip route` prints a host route without its `/32`.
                let prefix = if t[0].contains('/') {
                    t[0].to_string()
                } else {
                    format!("{}/32", t[0])
                };
                Some((prefix, t.get(via + 1)?.to_string()))
            })
            .collect())
    }

    /// Waits until node k's kernel routes via nodes are exactly `want` (block → node).
    pub fn wait_kernel(&self, k: u8, want: &[(Ipv4Net, u8)]) {
        let want: BTreeSet<(String, String)> = want
            .iter()
            .map(|(b, j)| (b.to_string(), node_ip(*j).to_string()))
            .collect();
        let r = wait_until(&format!("node{k}: kernel routes"), CONVERGE, || {
            let have = self.kernel_via(k)?;
            if have == want {
                Ok(())
            } else {
                Err(format!("node{k}: {have:?}, expected {want:?}"))
            }
        });
        self.must(r);
    }

    /// Waits until every running node's pod answers a ping from every other one's.
    pub fn pods_ping(&self) {
        let nodes = self.running();
        let r = wait_until("pods ping each other", CONVERGE, || {
            let mut pings = 0;
            for &a in &nodes {
                for &b in nodes.iter().filter(|&&b| b != a) {
                    let to = pod_ip(b).to_string();
                    cli(
                        Some(&self.pod_ns(a)),
                        &system_bin("ping"),
                        &["-c", "1", "-W", "1", &to],
                    )
                    .map_err(|e| format!("node{a}'s pod to node{b}'s: {e}"))?;
                    pings += 1;
                }
            }
            Ok(pings)
        });
        let pings = self.must(r);
        self.log(&format!("{pings} pod-to-pod pings answered"));
    }

    /// Polls (every 10 ms) until `probe` holds; how long that took.
    pub fn time_until(
        &self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut() -> Result<(), String>,
    ) -> Duration {
        let t = Instant::now();
        loop {
            match probe() {
                Ok(()) => return t.elapsed(),
                Err(e) if t.elapsed() > limit => self.fail(&format!("{what}: {e}")),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// The end of a session name that points at node k (`…_198_51_100_1k`).
fn session_suffix(k: u8) -> String {
    format!("_{}", node_ip(k).to_string().replace('.', "_"))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let namespaces = self.namespaces.borrow().clone();
        self.etcd.stop();
        self.procs.stop_all(&namespaces);
        for ns in namespaces.iter().rev() {
            del_netns(ns);
        }
    }
}
