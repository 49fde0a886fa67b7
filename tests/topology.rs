//! Topology tests: whole wren clusters built from the containerlab files in
//! tests/topology/ (`*.clab.yml`, each node's config beside them) with network namespaces —
//! a namespace per node, a bridge namespace as the L2 fabric, a pod per node — and checked
//! the way a Calico operator would: every session Established and every block in `show
//! route` (control plane), `proto bird` routes in every node's kernel exactly as BIRD writes
//! them (kernel), and pings from each pod to every other pod (data plane).
//!
//!     sudo bash tests/peers/install.sh      # once: BIRD 1.6 and 2, FRR
//!     sudo cargo test --test topology
//!
//! They need root and fail (never skip) without it. Work files (daemon logs, sockets) stay
//! in /tmp/wren-topology/<test>.<pid>/. `containerlab deploy -t tests/topology/mesh.clab.yml`
//! runs the same topology in containers.

#[path = "topology/checks.rs"]
mod checks;
#[path = "topology/clab.rs"]
mod clab;
#[path = "topology/fabric.rs"]
mod fabric;
mod harness;

use std::thread::sleep;
use std::time::Duration;

use checks::{converged, established, kernels_converge, withdrawn_everywhere};
use fabric::Fabric;
use harness::netns::{monitor_deletions, seconds_of_day};
use harness::proc::wait_until;

/// Builds topology `file`, waits for all three checks to pass.
fn converges(id: &str, file: &str) {
    let fab = Fabric::up(id, file);
    converged(&fab);
}

#[test]
fn mesh_5_nodes() {
    converges("mesh", "mesh.clab.yml");
}

#[test]
fn mesh_5_nodes_ipv6() {
    converges("mesh6", "mesh-v6.clab.yml");
}

#[test]
fn mesh_5_nodes_dual_stack() {
    converges("meshd", "mesh-dual.clab.yml");
}

#[test]
fn route_reflector_and_5_clients() {
    converges("rr", "rr.clab.yml");
}

#[test]
fn two_route_reflectors_and_5_clients() {
    converges("rr2", "rr2.clab.yml");
}

#[test]
fn route_reflector_ipv6() {
    converges("rr6", "rr-v6.clab.yml");
}

#[test]
fn two_route_reflectors_dual_stack() {
    converges("rrd", "rr-dual.clab.yml");
}

/// 2 wrend + BIRD 1.6.8 + BIRD 2 in one mesh: BIRD's kernels are held to the same lines.
#[test]
fn migration_mesh_with_bird() {
    converges("migr", "migration.clab.yml");
}

#[test]
fn top_of_rack_ebgp_frr() {
    converges("tor", "tor.clab.yml");
}

/// The faults topology up and converged, and the hold time it configures.
fn faults(id: &str) -> (Fabric, Duration) {
    let fab = Fabric::up(id, "faults.clab.yml");
    converged(&fab);
    let c = fab.node("node1").wren.as_ref().expect("node1 runs wrend");
    let hold = c.peers.first().map_or(240, |p| p.settings.hold_time);
    (fab, Duration::from_secs(hold.into()))
}

/// Sets node3's one link (eth1) `up` or `down`; down, no FIN reaches anyone.
fn node3_link(fab: &Fabric, state: &str) {
    let ns3 = fab.ns("node3");
    fab.must(fab.run_in(&ns3, "ip", &["link", "set", "eth1", state]));
}

/// Withdrawal must come within the hold time; this much more covers polling and `ip route`.
const SLACK: Duration = Duration::from_secs(2);

/// A node dies (its link first, so no FIN reaches anyone, then SIGKILL to wrend): the
/// others withdraw its block within the hold time; it comes back (link up, wrend -R):
/// routes and pings return.
#[test]
fn faults_node_killed_then_back() {
    let (fab, hold) = faults("fkill");
    node3_link(&fab, "down");
    fab.kill("node3");
    withdrawn_within_hold(&fab, "node3 dead", hold);
    kernels_converge(&fab, &["node3"]);
    node3_link(&fab, "up");
    fab.start("node3", true);
    converged(&fab);
}

/// wrend on node3 is SIGKILLed and restarted with -R (calico-node's restart path): `ip
/// monitor route` on every node records no deletion, and a ping from node1's pod to
/// node3's pod running through it loses nothing.
#[test]
fn faults_graceful_restart_no_deletions_no_loss() {
    let fab = Fabric::up("fgr", "faults.clab.yml");
    converged(&fab);
    let monitors: Vec<_> = fab
        .topo
        .nodes
        .iter()
        .map(|n| {
            let ns = fab.ns(&n.name);
            let p = fab.spawn_in(
                &format!("monitor-{}", n.name),
                &ns,
                "ip",
                &["monitor", "route"],
            );
            (n.name.clone(), p)
        })
        .collect();
    // A probe route added and deleted on each node shows its monitor records deletions.
    for (name, p) in &monitors {
        let ns = fab.ns(name);
        let r = wait_until(
            &format!("{name}'s monitor records a deletion"),
            Duration::from_secs(10),
            || {
                let _ = fab.run_in(&ns, "ip", &["route", "add", PROBE, "dev", "eth1"]);
                let _ = fab.run_in(&ns, "ip", &["route", "del", PROBE, "dev", "eth1"]);
                let text = std::fs::read_to_string(fab.log_path(*p)).unwrap_or_default();
                if text.contains(&format!("Deleted {PROBE}")) {
                    Ok(())
                } else {
                    Err(format!("monitor log: {text:?}"))
                }
            },
        );
        fab.must(r);
    }
    let target = fab.node("node3").pods[0].to_string();
    let ping = fab.spawn_in(
        "ping",
        &fab.pod_ns("node1"),
        "ping",
        &["-i", "0.2", "-W", "1", &target],
    );
    sleep(Duration::from_secs(2));
    fab.kill("node3");
    sleep(Duration::from_secs(1));
    fab.start("node3", true);
    for n in &fab.topo.nodes {
        let r = wait_until(
            &format!("{}: sessions back", n.name),
            checks::ESTABLISH,
            || established(&fab, &n.name),
        );
        fab.must(r);
    }
    kernels_converge(&fab, &[]);
    // Past the End-of-RIB and the restarted node's kernel sync.
    sleep(Duration::from_secs(5));
    kernels_converge(&fab, &[]);
    fab.signal(ping, "INT");
    let r = wait_until("ping exits", Duration::from_secs(5), || {
        if fab.alive(ping) {
            Err("running".to_string())
        } else {
            Ok(())
        }
    });
    fab.must(r);
    let out = std::fs::read_to_string(fab.log_path(ping)).unwrap_or_default();
    let (sent, got) =
        ping_counts(&out).unwrap_or_else(|| fab.fail(&format!("no ping summary in {out:?}")));
    fab.log(&format!(
        "ping through the restart: {sent} sent, {got} answered"
    ));
    if sent < 10 || sent != got {
        fab.fail(&format!(
            "ping through the restart lost packets: {sent} sent, {got} answered"
        ));
    }
    for (name, p) in monitors {
        let text = std::fs::read_to_string(fab.log_path(p)).unwrap_or_default();
        let deleted: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("Deleted") && !l.contains(PROBE))
            .collect();
        fab.log(&format!(
            "{name}: `ip monitor route` saw {} events, {} deletions",
            text.lines().count(),
            deleted.len()
        ));
        if !deleted.is_empty() {
            fab.fail(&format!(
                "{name}'s kernel deleted routes during the restart: {deleted:?}"
            ));
        }
    }
}

/// The route the graceful-restart test adds and deletes to see `ip monitor` work.
const PROBE: &str = "203.0.113.1";

/// `N packets transmitted, M received` from ping's summary.
fn ping_counts(out: &str) -> Option<(u32, u32)> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    Some((*nums.first()?, *nums.get(1)?))
}

/// node3's link goes down: the others withdraw its block within the hold time; it comes
/// back up: sessions, routes and pings return.
#[test]
fn faults_link_cut_then_restored() {
    let (fab, hold) = faults("flink");
    node3_link(&fab, "down");
    withdrawn_within_hold(&fab, "link cut", hold);
    kernels_converge(&fab, &["node3"]);
    node3_link(&fab, "up");
    converged(&fab);
}

/// The faults-bfd mesh up and converged, with `ip -ts monitor route` on node1 and node2.
fn faults_bfd(id: &str) -> (Fabric, Vec<(String, harness::proc::ProcId)>) {
    let fab = Fabric::up(id, "faults-bfd.clab.yml");
    converged(&fab);
    let monitors = ["node1", "node2"]
        .iter()
        .map(|n| {
            let p = fab.spawn_in(
                &format!("monitor-{n}"),
                &fab.ns(n),
                "env",
                &["TZ=UTC", "ip", "-ts", "monitor", "route"],
            );
            (n.to_string(), p)
        })
        .collect();
    // `ip monitor` subscribes as it starts.
    sleep(Duration::from_millis(500));
    (fab, monitors)
}

/// BFD at 100 ms x 3: 300 ms; the kernels must lose node3's blocks within it and 100 ms more.
const BFD_DETECTION: Duration = Duration::from_millis(300);
const BFD_SLACK: Duration = Duration::from_millis(100);

/// node3's blocks leave node1's and node2's kernels within the BFD detection time plus
/// 100 ms of `failed` (UTC), by the kernels' own timestamps (`ip -ts monitor route`).
fn withdrawn_within_bfd(
    fab: &Fabric,
    monitors: &[(String, harness::proc::ProcId)],
    what: &str,
    failed: std::time::SystemTime,
) {
    withdrawn_everywhere(fab, "node3", Duration::from_secs(10));
    let blocks: Vec<String> = (fab.node("node3").blocks.iter())
        .map(|b| b.to_string())
        .collect();
    let failed = seconds_of_day(failed);
    for (name, p) in monitors {
        let text = std::fs::read_to_string(fab.log_path(*p)).unwrap_or_default();
        let Some(at) = monitor_deletions(&text, &blocks).first().copied() else {
            fab.fail(&format!("{name}: no deletion of {blocks:?} in {text:?}"));
        };
        let took = Duration::from_secs_f64((at - failed).max(0.0));
        fab.log(&format!(
            "{what}: {name}'s kernel lost node3's block {} ms after the failure",
            took.as_millis()
        ));
        if took > BFD_DETECTION + BFD_SLACK {
            fab.fail(&format!(
                "{name}: {} ms, more than the 300 ms detection time + 100 ms",
                took.as_millis()
            ));
        }
    }
}

/// BFD at 100 ms x 3 (hold time 30 s): node3's wrend is frozen with SIGSTOP; the other
/// kernels lose its blocks within the detection time + 100 ms; thawed, its sessions and
/// routes return.
#[test]
fn faults_bfd_node_frozen_then_thawed() {
    let (fab, monitors) = faults_bfd("bfdstop");
    let failed = std::time::SystemTime::now();
    fab.signal_node("node3", "STOP");
    withdrawn_within_bfd(&fab, &monitors, "node3 frozen", failed);
    kernels_converge(&fab, &["node3"]);
    fab.signal_node("node3", "CONT");
    converged(&fab);
}

/// BFD at 100 ms x 3: node3's link goes down; the other kernels lose its blocks within the
/// detection time + 100 ms; back up, sessions, routes and pings return.
#[test]
fn faults_bfd_link_cut_then_restored() {
    let (fab, monitors) = faults_bfd("bfdlink");
    let failed = std::time::SystemTime::now();
    node3_link(&fab, "down");
    withdrawn_within_bfd(&fab, &monitors, "link cut", failed);
    kernels_converge(&fab, &["node3"]);
    node3_link(&fab, "up");
    converged(&fab);
}

/// node3's blocks leave every other node within the hold time (and some slack) after
/// `what` cut it off: the peers' hold timers, RFC 4271 §6.5.
fn withdrawn_within_hold(fab: &Fabric, what: &str, hold: Duration) {
    let took = withdrawn_everywhere(fab, "node3", hold + SLACK * 3);
    fab.log(&format!(
        "{what}: node3's blocks withdrawn everywhere after {:.1} s (hold time {} s)",
        took.as_secs_f64(),
        hold.as_secs()
    ));
    if took > hold + SLACK {
        fab.fail(&format!(
            "withdrawal took {:.1} s, more than the {} s hold time",
            took.as_secs_f64(),
            hold.as_secs()
        ));
    }
}
