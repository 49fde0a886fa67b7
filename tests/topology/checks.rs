//! The three checks of a converged topology — control plane, kernel, data plane — and the
//! measurements the fault tests need.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::clab::{Speaker, normalize};
use crate::fabric::Fabric;
use crate::harness::proc::wait_until;

/// How long sessions may take to come up (connect delay, retries, a daemon starting).
pub const ESTABLISH: Duration = Duration::from_secs(40);
/// How long routes may take to reach every kernel once sessions are up.
pub const CONVERGE: Duration = Duration::from_secs(20);

/// Ok when node `name` shows every BGP session Established: wrend and BIRD (`show
/// protocols`: state `up`, info `Established`; a Calico node's `bird` and `bird6` both) and
/// FRR (`show bgp summary`: a prefix count in the State/PfxRcd column).
pub fn established(fab: &Fabric, name: &str) -> Result<usize, String> {
    let node = fab.node(name);
    let mut out = fab.show(name, "show protocols")?;
    if node.speaker.calico() {
        out += &fab.show6(name, "show protocols")?;
    }
    let mut sessions = 0;
    for line in out.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        let up = match node.speaker {
            Speaker::Frr => {
                if t.first()
                    .is_none_or(|a| a.parse::<std::net::IpAddr>().is_err())
                {
                    continue;
                }
                t.get(9).is_some_and(|s| s.parse::<u32>().is_ok())
            }
            _ => {
                if t.get(1) != Some(&"BGP") {
                    continue;
                }
                t.get(3) == Some(&"up") && t.get(5) == Some(&"Established")
            }
        };
        if !up {
            return Err(format!("{name}: session not Established: {line:?}"));
        }
        sessions += 1;
    }
    match node.sessions {
        Some(w) if w != sessions => Err(format!(
            "{name}: {sessions} sessions Established, {w} configured:\n{out}"
        )),
        _ if sessions == 0 => Err(format!("{name}: no BGP sessions in:\n{out}")),
        _ => Ok(sessions),
    }
}

/// Ok when wrend node `name` has exactly one TCP connection to each configured peer, and
/// the peers it waits for (`passive`, Calico's rule: the greater address as a string
/// dials) dialled it: the connection's local port is 179.
pub fn one_connection_per_peer(fab: &Fabric, name: &str) -> Result<(), String> {
    let Some(config) = fab.node(name).wren.as_ref() else {
        return Ok(());
    };
    let out = fab.run_in(&fab.ns(name), "ss", &["-Htn", "state", "established"])?;
    // Rows: Recv-Q Send-Q LOCAL:PORT PEER:PORT (IPv6 addresses in brackets; IPv4 ones
    // accepted on wrend's `::` listener as `::ffff:A.B.C.D`).
    let conns: Vec<(String, String, String)> = out
        .lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let (la, lp) = t.get(2)?.rsplit_once(':')?;
            let (pa, _) = t.get(3)?.rsplit_once(':')?;
            let strip = |a: &str| {
                let a = a.trim_matches(|c| c == '[' || c == ']');
                a.strip_prefix("::ffff:").unwrap_or(a).to_string()
            };
            Some((strip(la), lp.to_string(), strip(pa)))
        })
        .collect();
    for p in &config.peers {
        let peer = p.address.to_string();
        let to_peer: Vec<_> = conns.iter().filter(|c| c.2 == peer).collect();
        if to_peer.len() != 1 {
            return Err(format!(
                "{name}: {} connections with {peer}, expected one:\n{out}",
                to_peer.len()
            ));
        }
        if p.settings.passive && to_peer[0].1 != "179" {
            return Err(format!(
                "{name} is passive toward {peer} but dialled it: {:?}",
                to_peer[0]
            ));
        }
    }
    Ok(())
}

/// Ok when wrend node `name`'s `show route` has every other node's block, via a next hop.
pub fn shows_routes(fab: &Fabric, name: &str) -> Result<(), String> {
    let node = fab.node(name);
    if node.speaker != Speaker::Wrend {
        return Ok(());
    }
    let out = fab.show(name, "show route")?;
    let have: BTreeSet<&str> = out
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("via"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for other in fab.topo.nodes.iter().filter(|o| o.name != name) {
        for b in &other.blocks {
            if node.has_family(b.addr().is_ipv4()) && !have.contains(b.to_string().as_str()) {
                return Err(format!(
                    "{name}: `show route` lacks {b} of {}:\n{out}",
                    other.name
                ));
            }
        }
    }
    Ok(())
}

/// Ok when node `name`'s `proto bird` kernel routes are exactly `want` (see
/// [`crate::clab::Topo::expected_kernel`]).
pub fn kernel_is(fab: &Fabric, name: &str, want: &BTreeSet<String>) -> Result<(), String> {
    let have: BTreeSet<String> = fab
        .kernel_routes(name)?
        .iter()
        .map(|l| normalize(l))
        .collect();
    if &have == want {
        return Ok(());
    }
    let missing: Vec<&String> = want.difference(&have).collect();
    let extra: Vec<&String> = have.difference(want).collect();
    Err(format!(
        "{name}: kernel `proto bird` routes differ: missing {missing:?}, unexpected {extra:?}"
    ))
}

/// Nodes whose kernel the checks compare: those running wrend or BIRD.
fn kernel_nodes(fab: &Fabric) -> Vec<String> {
    fab.topo
        .nodes
        .iter()
        .filter(|n| n.speaker != Speaker::Frr)
        .map(|n| n.name.clone())
        .collect()
}

/// Every pod pings every other pod of the same family.
pub fn pods_reach_each_other(fab: &Fabric, skip: &[&str]) -> Result<usize, String> {
    let mut pings = 0;
    let nodes: Vec<_> = fab
        .topo
        .nodes
        .iter()
        .filter(|n| !skip.contains(&n.name.as_str()))
        .collect();
    for from in &nodes {
        for to in &nodes {
            if from.name == to.name {
                continue;
            }
            for a in &to.pods {
                if from.pods.iter().any(|p| p.is_ipv4() == a.is_ipv4()) {
                    fab.ping(&from.name, *a)?;
                    pings += 1;
                }
            }
        }
    }
    Ok(pings)
}

/// Waits until every session is up, every wrend shows every block, every kernel holds
/// exactly the routes BIRD would write, and every pod reaches every other pod.
pub fn converged(fab: &Fabric) {
    let t = Instant::now();
    for n in &fab.topo.nodes {
        let r = wait_until(
            &format!("{}: all sessions Established", n.name),
            ESTABLISH,
            || established(fab, &n.name),
        );
        fab.must(r);
    }
    for n in &fab.topo.nodes {
        // A collision's losing connection (RFC 4271 §6.8) may linger a moment.
        let r = wait_until(
            &format!("{}: one connection per peer", n.name),
            Duration::from_secs(10),
            || one_connection_per_peer(fab, &n.name),
        );
        fab.must(r);
    }
    fab.log(&format!(
        "control plane: every session Established, one TCP connection each, dialled as \
         Calico's passive rule says ({:.1} s)",
        t.elapsed().as_secs_f64()
    ));
    for n in &fab.topo.nodes {
        let r = wait_until(&format!("{}: show route", n.name), CONVERGE, || {
            shows_routes(fab, &n.name)
        });
        fab.must(r);
    }
    kernels_converge(fab, &[]);
    let first = &fab.topo.nodes[0].name;
    fab.log(&format!(
        "kernel: every node's `proto bird` routes as BIRD writes them ({:.1} s); {first}:\n  {}",
        t.elapsed().as_secs_f64(),
        fab.kernel_routes(first).unwrap_or_default().join("\n  ")
    ));
    let r = wait_until("pods reach each other", CONVERGE, || {
        pods_reach_each_other(fab, &[])
    });
    let pings = fab.must(r);
    fab.log(&format!(
        "data plane: {pings} pod-to-pod pings answered ({:.1} s)",
        t.elapsed().as_secs_f64()
    ));
}

/// Waits until every kernel-checked node except the `gone` ones holds the expected routes
/// with the blocks of the `gone` nodes absent.
pub fn kernels_converge(fab: &Fabric, gone: &[&str]) {
    for name in kernel_nodes(fab) {
        if gone.contains(&name.as_str()) {
            continue;
        }
        let node = fab.node(&name);
        let want = fab.topo.expected_kernel(node, gone);
        let r = wait_until(&format!("{name}: kernel routes"), CONVERGE, || {
            kernel_is(fab, &name, &want)
        });
        fab.must(r);
    }
}

/// Waits until no node but `gone` has a route to `gone`'s blocks in its kernel; returns how
/// long that took.
pub fn withdrawn_everywhere(fab: &Fabric, gone: &str, within: Duration) -> Duration {
    let t = Instant::now();
    let blocks: Vec<String> = fab
        .node(gone)
        .blocks
        .iter()
        .map(|b| b.to_string())
        .collect();
    for name in kernel_nodes(fab) {
        if name == gone {
            continue;
        }
        let r = wait_until(&format!("{name} withdraws {gone}'s blocks"), within, || {
            let routes = fab.kernel_routes(&name)?;
            match routes.iter().find(|l| {
                blocks
                    .iter()
                    .any(|b| l.split_whitespace().next() == Some(b))
            }) {
                Some(l) => Err(format!("{name} still has {l:?}")),
                None => Ok(()),
            }
        });
        fab.must(r);
    }
    t.elapsed()
}
