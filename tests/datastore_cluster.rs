//! Calico's datastore read natively over a real etcd (issue 16): wrend nodes in network
//! namespaces whose configuration file holds only `[datastore]`, everything else (router ID,
//! AS, peers, blocks) written into etcd as calicoctl and Calico's IPAM store it.
//!
//!     sudo bash tests/peers/install.sh      # once: etcd-server, BIRD, FRR, …
//!     sudo cargo test --test datastore_cluster
//!
//! They need root and Debian's etcd-server, and fail (never skip) without them. Work files
//! (wrend and etcd logs, configs, state directories, etcd's data) stay in
//! /tmp/wren-datastore/<test>.<pid>/.
//!
//! Resets are counted on the wire: every BGP session is one TCP connection, and one that
//! resets comes back on another, so each node's established connections (`ss`) and `show
//! protocols` `since` times are compared before and after a change. etcd "down" is etcd
//! killed; a test that changes the datastore while wrend cannot see it starts etcd on a port
//! wrend is not given ([`PRIVATE_PORT`]), then back on the one it is.

#[path = "datastore/cluster.rs"]
mod cluster;
mod harness;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use serde_json::json;

use cluster::{
    ASN, Cluster, block, calico_node, node_ip, node_name, pod_ip, second_block, session_name,
};
use harness::etcd::{CLIENT_PORT, Etcd, PRIVATE_PORT};
use harness::netns::{add_netns, del_netns};
use harness::proc::require_root;
use harness::resources::{
    CalicoNode, Writer, affinity_key, block_entries, node_entries, workload_endpoint,
};
use wren::config::datastore::{Resources, decide};

/// Sessions of node k in a full mesh of `nodes`.
fn mesh(nodes: &[u8], k: u8) -> BTreeSet<String> {
    nodes
        .iter()
        .filter(|&&j| j != k)
        .map(|&j| session_name("Mesh", j))
        .collect()
}

/// Sessions of node k with reflectors `rrs` among `nodes` (a `peerSelector` BGPPeer and
/// its reverse: a reflector peers with every other node, a client with the reflectors).
fn reflected(nodes: &[u8], rrs: &[u8], k: u8) -> BTreeSet<String> {
    let with: Vec<u8> = if rrs.contains(&k) {
        nodes.to_vec()
    } else {
        rrs.to_vec()
    };
    with.into_iter()
        .filter(|&j| j != k)
        .map(|j| session_name("Node", j))
        .collect()
}

/// Waits until every running node has every other node's blocks (`blocks(j)`) via that
/// node in its kernel, and the pods ping each other.
fn routes_and_pings(c: &Cluster, blocks: impl Fn(u8) -> Vec<Ipv4Net>) {
    let nodes = c.running();
    for &k in &nodes {
        let want: Vec<(Ipv4Net, u8)> = nodes
            .iter()
            .filter(|&&j| j != k)
            .flat_map(|&j| blocks(j).into_iter().map(move |b| (b, j)))
            .collect();
        c.wait_kernel(k, &want);
    }
    c.log("every node's kernel has every other node's blocks via that node");
    c.pods_ping();
}

/// A cluster of nodes 1..=n, from etcd alone, converged as a full mesh.
fn mesh_cluster(id: &str, n: u8) -> Cluster {
    let c = Cluster::new(id, true);
    for k in 1..=n {
        c.join(&calico_node(k), k);
    }
    let nodes: Vec<u8> = (1..=n).collect();
    c.wait_sessions("mesh from etcd", |k| mesh(&nodes, k));
    routes_and_pings(&c, |j| vec![block(j)]);
    c
}

/// The harness on its own: Calico's resources as the writer stores them read back by
/// wren's reader (so a shape either side gets wrong shows), and etcd keeping its data and
/// its compaction across a restart on another port.
#[test]
fn harness_etcd_and_calico_writer() {
    let mut r = Resources::default();
    let nodes: Vec<CalicoNode> = (1..=3).map(calico_node).collect();
    let mut kvs = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        kvs.extend(node_entries(n, &[block(i as u8 + 1)]));
    }
    kvs.push((
        harness::resources::resource_key("bgpconfigurations", "default"),
        harness::resources::bgp_configuration(true, ASN)
            .to_string()
            .into_bytes(),
    ));
    for (k, v) in &kvs {
        assert_eq!(r.apply(k, Some(v)), Ok(true), "{k}");
    }
    let d = decide("node1", &r).unwrap_or_else(|e| panic!("decide: {e}"));
    let peers: BTreeSet<String> = d.config.peers.iter().map(|p| p.name.clone()).collect();
    assert_eq!(peers, mesh(&[1, 2, 3], 1));
    assert_eq!(d.config.originate, vec![IpNet::V4(block(1))]);
    assert_eq!(d.config.router_id, node_ip(1));

    require_root("the etcd harness test runs etcd in a network namespace: run it as root");
    let ns = format!("dsh{}", std::process::id());
    del_netns(&ns);
    add_netns(&ns, &[]);
    let guard = NsGuard(ns.clone());
    let dir = harness::proc::work_dir(std::path::Path::new("/tmp/wren-datastore"), "harness");
    let mut etcd = Etcd::start(&ns, IpAddr::from([127, 0, 0, 1]), &dir);
    let client = etcd.client();
    let first = client.revision().expect("revision");
    let rev = client.put_all(&kvs).expect("put_all");
    assert!(rev > first, "{rev} after {first}");
    assert_eq!(client.count("/calico/resources/v3/").unwrap(), 4);
    assert_eq!(client.count("/calico/ipam/v2/host/").unwrap(), 3);
    let w = Writer(&client);
    w.delete_node("node3", &[block(3)]).expect("delete");
    assert_eq!(client.count("/calico/ipam/v2/").unwrap(), 4);
    let rev = w
        .put(&affinity_key("node1", second_block(1)), &json!({}))
        .expect("put");
    client.compact(rev).expect("compact");
    etcd.restart_on(PRIVATE_PORT);
    let client = etcd.client();
    assert_eq!(client.revision().unwrap(), rev);
    assert_eq!(client.count("/calico/ipam/v2/host/node1/").unwrap(), 2);
    // Compacted: the history before `rev` is gone, so compacting to it again is refused.
    let e = client
        .compact(rev - 1)
        .expect_err("history before the compaction is gone");
    assert!(e.contains("compacted"), "{e}");
    etcd.restart_on(CLIENT_PORT);
    assert_eq!(etcd.client().revision().unwrap(), rev);
    drop(etcd);
    drop(guard);
}

struct NsGuard(String);

impl Drop for NsGuard {
    fn drop(&mut self) {
        del_netns(&self.0);
    }
}

/// A 5-node mesh forms from etcd alone, with the blocks of the IPAM affinities; a 6th node
/// written to etcd is peered by the 5 (each shows its session, passive as Calico's rule says,
/// timed) and no existing session resets; a node deleted leaves every other node's sessions.
#[test]
fn mesh_from_etcd_node_joins_and_leaves() {
    let c = mesh_cluster("mesh", 5);
    let shown = c.must(c.show(1, "show datastore"));
    for want in [
        format!("block {}", block(1)),
        format!("peer {} {}", session_name("Mesh", 2), node_ip(2)),
        format!("router id {}", node_ip(1)),
    ] {
        if !shown.contains(&want) {
            c.fail(&format!("node1's `show datastore` lacks {want:?}: {shown}"));
        }
    }
    let before = c.snapshot();

    c.add_host(6);
    let etcd = c.client();
    c.must(Writer(&etcd).node(&calico_node(6), &[block(6)]));
    let want = session_name("Mesh", 6);
    let took = c.time_until(
        "the 5 nodes configure node6's session",
        Duration::from_secs(10),
        || {
            for k in 1..=5 {
                if !c.rows(k)?.contains_key(&want) {
                    return Err(format!("node{k} has no {want}"));
                }
            }
            Ok(())
        },
    );
    c.log(&format!(
        "node6 written: all 5 nodes have {want} after {} ms (target 1 s)",
        took.as_millis()
    ));
    c.start(6);
    let six: Vec<u8> = (1..=6).collect();
    c.wait_sessions("node6 joined", |k| mesh(&six, k));
    routes_and_pings(&c, |j| vec![block(j)]);
    c.no_resets("node6 joined", &before, &[6]);

    let before = c.snapshot();
    c.must(Writer(&etcd).delete_node(&node_name(5), &[block(5)]));
    let rest = [1, 2, 3, 4, 6];
    for k in rest {
        let r = harness::proc::wait_until(
            &format!("node{k} drops node5's session"),
            cluster::CONVERGE,
            || c.sessions_are(k, &mesh(&rest, k)),
        );
        c.must(r);
    }
    c.kill(5);
    routes_and_pings(&c, |j| vec![block(j)]);
    c.no_resets("node5 deleted", &before, &[5]);
}

/// Mesh off, two reflectors sharing a cluster ID, and a `peerSelector` BGPPeer: clients
/// peer with the reflectors only. A client joins: only its sessions are new. A client
/// becomes a third reflector: only its sessions reset.
#[test]
fn reflectors_and_peer_selectors() {
    let c = Cluster::new("rr", false);
    let reflector = |k: u8| {
        let mut n = calico_node(k).label("route-reflector", "true");
        n.rr_cluster_id = Some([244, 0, 0, 1].into());
        n
    };
    let etcd = c.client();
    c.must(Writer(&etcd).bgp_peer(
        "peer-with-route-reflectors",
        json!({"nodeSelector": "all()", "peerSelector": "route-reflector == 'true'"}),
    ));
    for k in 1..=5 {
        let node = if k <= 2 { reflector(k) } else { calico_node(k) };
        c.join(&node, k);
    }
    let five: Vec<u8> = (1..=5).collect();
    c.wait_sessions("two reflectors", |k| reflected(&five, &[1, 2], k));
    routes_and_pings(&c, |j| vec![block(j)]);

    let before = c.snapshot();
    c.join(&calico_node(6), 6);
    let six: Vec<u8> = (1..=6).collect();
    c.wait_sessions("client node6 joined", |k| reflected(&six, &[1, 2], k));
    routes_and_pings(&c, |j| vec![block(j)]);
    c.no_resets("client node6 joined", &before, &[6]);

    let before = c.snapshot();
    c.must(Writer(&etcd).node(&reflector(5), &[block(5)]));
    c.wait_sessions("node5 a reflector", |k| reflected(&six, &[1, 2, 5], k));
    routes_and_pings(&c, |j| vec![block(j)]);
    c.no_resets("node5 became a reflector", &before, &[5]);
}

/// etcd stopped: sessions and routes stay; a wrend restarted while etcd is down comes up
/// from its persisted model with the same sessions and routes; etcd back with changes made
/// meanwhile (a node added, a block affinity added): they apply, and nothing else resets.
#[test]
fn etcd_down_then_back_with_changes() {
    let mut c = mesh_cluster("down", 5);
    let before = c.snapshot();
    c.etcd.stop();
    c.log("etcd stopped");
    std::thread::sleep(Duration::from_secs(5));
    c.no_resets("etcd down for 5 s", &before, &[]);
    routes_and_pings(&c, |j| vec![block(j)]);
    let status = c.must(c.show(1, "show status"));
    if !status.contains("Datastore: not connected") {
        c.fail(&format!("node1's `show status` with etcd down: {status}"));
    }

    c.kill(3);
    c.start(3);
    let five: Vec<u8> = (1..=5).collect();
    c.wait_sessions("node3 restarted with etcd down", |k| mesh(&five, k));
    routes_and_pings(&c, |j| vec![block(j)]);
    c.no_resets("node3 restarted with etcd down", &before, &[3]);
    let status = c.must(c.show(3, "show status"));
    if !status.contains("running from the saved state") {
        c.fail(&format!(
            "node3's `show status` after a start with etcd down: {status}"
        ));
    }

    let before = c.snapshot();
    c.etcd.run_on(PRIVATE_PORT);
    let etcd = c.client();
    c.must(Writer(&etcd).node(&calico_node(6), &[block(6)]));
    c.must(Writer(&etcd).put_all(&block_entries(&node_name(4), second_block(4))));
    c.etcd.restart_on(CLIENT_PORT);
    c.log("etcd back with node6 and a second block for node4");
    c.add_host(6);
    c.start(6);
    let six: Vec<u8> = (1..=6).collect();
    c.wait_sessions("etcd back", |k| mesh(&six, k));
    routes_and_pings(&c, |j| {
        if j == 4 {
            vec![block(4), second_block(4)]
        } else {
            vec![block(j)]
        }
    });
    c.no_resets("etcd back with changes", &before, &[6]);
    for k in 1..=5 {
        let status = c.must(c.show(k, "show status"));
        if !status.contains("Datastore: connected") {
            c.fail(&format!("node{k}'s `show status` with etcd back: {status}"));
        }
    }
}

/// Changes made and compacted while wrend could not watch: its watch, from a revision
/// that no longer exists, is cancelled; wrend reads the datastore again and applies only
/// the difference, with 0 session resets: node2 gains a block, node5 loses its block's
/// affinity (its pod's address is then one it holds outside its blocks, which Calico's BIRD
/// exports as a /32 from the kernel route to the pod: so does wren).
#[test]
fn compaction_cancels_the_watch_then_reread() {
    let mut c = mesh_cluster("compact", 5);
    let before = c.snapshot();
    c.etcd.restart_on(PRIVATE_PORT);
    let etcd = c.client();
    let w = Writer(&etcd);
    c.must(w.put_all(&block_entries(&node_name(2), second_block(2))));
    c.must(etcd.delete(&affinity_key(&node_name(5), block(5))));
    // Churn that comes and goes: revisions the watch never saw.
    for i in 0..20 {
        let name = format!("churn-{i}");
        let spec = json!({"peerIP": "203.0.113.1", "asNumber": 65000, "node": "nobody"});
        c.must(w.bgp_peer(&name, spec));
        c.must(etcd.delete(&harness::resources::resource_key("bgppeers", &name)));
    }
    let rev = c.must(etcd.revision());
    c.must(etcd.compact(rev));
    c.log(&format!("compacted etcd at revision {rev}"));
    c.etcd.restart_on(CLIENT_PORT);
    routes_and_pings(&c, |j| match j {
        2 => vec![block(2), second_block(2)],
        5 => vec![Ipv4Net::from(pod_ip(5))],
        j => vec![block(j)],
    });
    c.no_resets("watch compacted, datastore re-read", &before, &[]);
    for k in 1..=5 {
        let r = harness::proc::wait_until(
            &format!("node{k} has read past the compaction"),
            cluster::CONVERGE,
            || {
                let seen = revision_seen(&c, k)?;
                if seen >= rev {
                    Ok(())
                } else {
                    Err(format!("node{k} has seen revision {seen}"))
                }
            },
        );
        c.must(r);
    }
}

/// The newest revision node k has seen, from `show datastore`'s `Revision: N (applied M)`
/// (the applied one moves only when this node's own model changes).
fn revision_seen(c: &Cluster, k: u8) -> Result<i64, String> {
    let shown = c.show(k, "show datastore")?;
    shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("Revision: "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| format!("node{k}: no revision in {shown:?}"))
}

/// A watch etcd cancels for compaction while it runs: node1's wrend is stopped (SIGSTOP)
/// while 400 pods' WorkloadEndpoints of 100 KiB each go by (more than the gateway, the
/// sockets and etcd's per-watcher queue hold, so etcd sets the watcher aside as slow), node2
/// gains a block, and the history is compacted. Once node1 runs again etcd cancels its watch
/// with `compact_revision`; node1 reads the datastore again and applies the difference
/// (node2's new block) with 0 session resets anywhere.
#[test]
fn compaction_cancels_a_running_watch() {
    let c = mesh_cluster("cancel", 3);
    let before = c.snapshot();
    c.signal(1, "STOP");
    let etcd = c.client();
    let w = Writer(&etcd);
    for i in 0..400 {
        let name = format!("pod-{i}");
        let key = harness::resources::resource_key("workloadendpoints", &format!("default/{name}"));
        c.must(w.put(&key, &workload_endpoint("default", &name, 100 << 10)));
    }
    c.must(w.put_all(&block_entries(&node_name(2), second_block(2))));
    let rev = c.must(etcd.revision());
    c.must(etcd.compact(rev));
    c.log(&format!(
        "node1 stopped through 400 changes; compacted at revision {rev}"
    ));
    c.signal(1, "CONT");
    let r = harness::proc::wait_until(
        "node1's watch cancelled for compaction",
        cluster::CONVERGE,
        || {
            if c.log_contains(c.wrend_proc(1), "datastore watch compacted") {
                Ok(())
            } else {
                Err("no `datastore watch compacted` in node1's log".to_string())
            }
        },
    );
    c.must(r);
    routes_and_pings(&c, |j| match j {
        2 => vec![block(2), second_block(2)],
        j => vec![block(j)],
    });
    c.no_resets("a running watch compacted", &before, &[]);
}

/// A large datastore read at start: 5,000 other nodes with their blocks in etcd (many range
/// pages over one connection), then node1 starts. Its first read must succeed while etcd is
/// up — no "unreachable" warning in its log — and its model hold every node.
#[test]
fn large_datastore_read_at_start() {
    let c = Cluster::new("large", true);
    let etcd = c.client();
    let mut kvs = Vec::new();
    for i in 0..5000u32 {
        // 198.18.0.0/15, unrouted in node1's namespace: its dials fail at once.
        let addr = std::net::Ipv4Addr::from_bits(0xc612_0001 + i);
        let node = CalicoNode::new(
            &format!("other-{i:04}"),
            Ipv4Net::new(addr, 24).expect("a /24"),
        );
        let b =
            Ipv4Net::new(std::net::Ipv4Addr::from_bits(0x0a00_0000 + 64 * i), 26).expect("a /26");
        kvs.extend(node_entries(&node, &[b]));
    }
    c.must(etcd.put_all(&kvs));
    c.join(&calico_node(1), 1);
    let rows = c.must(c.rows(1));
    let log = std::fs::read_to_string(c.log_path(c.wrend_proc(1))).unwrap_or_default();
    if let Some(line) = log.lines().find(|l| l.contains("unreachable")) {
        c.fail(&format!(
            "node1's first read of 5,000 nodes failed with etcd up: {line}"
        ));
    }
    if rows.len() != 5000 {
        c.fail(&format!(
            "node1 has {} sessions, expected 5000 mesh peers",
            rows.len()
        ));
    }
}
