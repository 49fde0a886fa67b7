//! Calico's drop-in (issue 15, contract §2, §5, §6.2): a cluster in which some nodes run BIRD
//! 1.6.8 and the others run wren as `bird` and `bird6`, every node on the files confd renders
//! (tests/topology/calico-mixed.clab.yml; each node's bird.cfg, bird_aggr.cfg, bird_ipam.cfg
//! and bird6 twins written by tests/bird/gen.py's templates) and started as calico-node's
//! runit services start BIRD (`bird -R -s … -d -c …`). Checked: the mesh forms over IPv4 and
//! IPv6, the blocks go everywhere, every node's `ip route` and `ip -6 route` are the same up
//! to which node it is, and calico-node's readiness and liveness rules, run through BIRD
//! 1.6.8's `birdc` on every socket, say ready; then confd's reload (files rewritten, SIGHUP):
//! a block added resets nothing, a changed peer resets only itself, and a file that fails to
//! parse leaves the running configuration and says why.
//!
//!     sudo bash tests/peers/install.sh      # once: BIRD 1.6.8 under target/peers
//!     sudo flock /tmp/wren-net.lock cargo test --test calico_mixed
//!
//! Needs root (namespaces, kernel routes) and fails without it. Work files (each node's
//! confd folder, logs, sockets) stay in /tmp/wren-topology/<test>.<pid>/.

#[path = "topology/checks.rs"]
#[allow(dead_code)]
mod checks;
#[path = "topology/clab.rs"]
#[allow(dead_code)]
mod clab;
#[path = "topology/fabric.rs"]
#[allow(dead_code)]
mod fabric;
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use checks::converged;
use clab::{Node, Speaker};
use fabric::Fabric;
use harness::calico;
use harness::lab::Fam;
use harness::proc::{holds_for, wait_until};
use ipnet::IpNet;

const TOPOLOGY: &str = "calico-mixed.clab.yml";
/// How long a reload may take to show (a session reset and back, a route everywhere).
const APPLY: Duration = Duration::from_secs(30);
/// How long sessions are watched after a reload that must not reset them.
const WATCH: Duration = Duration::from_secs(8);

/// The mixed mesh converges: every session Established on both sockets of every node,
/// every kernel holds exactly the `proto bird` routes Calico's BIRD writes, the full
/// routing tables are the same on every node up to its identity, and calico-node's check
/// rules say ready and live everywhere.
#[test]
fn mixed_mesh_identical_tables_and_ready() {
    let fab = Fabric::up("cmix", TOPOLOGY);
    assert_mixed(&fab);
    converged(&fab);
    let r = wait_until("identical routing tables", checks::CONVERGE, || {
        identical_tables(&fab)
    });
    fab.must(r);
    for n in &fab.topo.nodes {
        let r = wait_until(
            &format!("{}: calico-node says ready", n.name),
            APPLY,
            || calico_ready(&fab, &n.name),
        );
        fab.must(r);
    }
    fab.log("every node ready and live by calico-node's rules, through BIRD 1.6.8's birdc");
    fab.must(configured_lines_alike(&fab));
}

/// `show protocols all` for every BGP session of every node, on both sockets: the lines its
/// configuration gives (description, preference, how the filters are written) are the same
/// on BIRD's nodes and wren's, all of them reading confd's files.
fn configured_lines_alike(fab: &Fabric) -> Result<(), String> {
    const CONFIGURED: [&str; 4] = [
        "  Description:",
        "  Preference:",
        "  Input filter:",
        "  Output filter:",
    ];
    let mut seen: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for n in &fab.topo.nodes {
        for (socket, show) in [
            ("bird", Fabric::show as fn(&_, &_, &_) -> _),
            ("bird6", Fabric::show6),
        ] {
            let protocols = show(fab, &n.name, "show protocols")?;
            for row in bgp_rows(&protocols) {
                let all = show(fab, &n.name, &format!("show protocols all {}", row[0]))?;
                let lines: Vec<String> = (all.lines())
                    .map(|l| l.strip_prefix("1006-").unwrap_or(l).to_string())
                    .filter(|l| CONFIGURED.iter().any(|c| l.starts_with(c)))
                    .collect();
                let who = format!("{} ({:?}, {socket}) {}", n.name, n.speaker, row[0]);
                seen.entry(lines).or_default().push(who);
            }
        }
    }
    match seen.keys().next() {
        Some(lines) if seen.len() == 1 && lines.len() == CONFIGURED.len() => Ok(()),
        _ => Err(format!(
            "`show protocols all` differs in the lines the configuration gives: {seen:#?}"
        )),
    }
}

/// confd adds a block on a BIRD node and on a wren node, IPv4 then IPv6 (bird_aggr.cfg
/// rewritten, bird.cfg written again unchanged, SIGHUP; the same with the bird6 files and
/// `bird6`): every other node installs the block, and no session anywhere resets.
#[test]
fn reload_block_added_resets_nothing() {
    let fab = Fabric::up("cmixblk", TOPOLOGY);
    converged(&fab);
    for (name, v6) in reloaders(&fab)
        .into_iter()
        .flat_map(|n| [(n.clone(), false), (n, true)])
    {
        let before = sinces(&fab);
        let block = add_block(&fab, &name, v6);
        let r = wait_until(&format!("{block} of {name} everywhere"), APPLY, || {
            block_everywhere(&fab, &name, &block)
        });
        fab.must(r);
        let r = holds_for("no session reset", WATCH, || unchanged(&fab, &before, &[]));
        fab.must(r);
        fab.log(&format!(
            "{name}: {block} added by SIGHUP, every node has it, no reset"
        ));
    }
}

/// confd changes one peer's settings on a BIRD node and on a wren node (SIGHUP): that
/// session alone resets, on both of its ends, and comes back; every other session stays up.
#[test]
fn reload_changed_peer_resets_only_itself() {
    let fab = Fabric::up("cmixpeer", TOPOLOGY);
    converged(&fab);
    for name in reloaders(&fab) {
        let before = sinces(&fab);
        let (peer_node, proto) = change_peer(&fab, &name);
        let back = peer_proto_name(fab.node(&name));
        let reset = [(name.clone(), proto.clone()), (peer_node.clone(), back)];
        let r = wait_until(&format!("{name}: {proto} reset and back"), APPLY, || {
            let now = sinces(&fab);
            for key in &reset {
                if now.get(key) == before.get(key) {
                    return Err(format!("{key:?} not reset yet"));
                }
            }
            checks::established(&fab, &name)
        });
        fab.must(r);
        let r = holds_for("only the changed session reset", WATCH, || {
            unchanged(&fab, &before, &reset)
        });
        fab.must(r);
        fab.log(&format!("{name}: {proto} changed by SIGHUP, reset alone"));
    }
}

/// A bird.cfg that fails to parse, installed and SIGHUPed on a BIRD node and on a wren node:
/// the daemon keeps running its configuration (no session resets), its log says which file
/// and line, and `configure` on the socket says the same.
#[test]
fn reload_parse_error_keeps_running_config() {
    let fab = Fabric::up("cmixbad", TOPOLOGY);
    converged(&fab);
    for name in reloaders(&fab) {
        let before = sinces(&fab);
        let cfg = fab.confd(&name).join("bird.cfg");
        let text = fs::read_to_string(&cfg).unwrap();
        let bad = text.replacen(
            "  scan time 2;\n}\nprotocol direct",
            "  scan tme 2;\n}\nprotocol direct",
            1,
        );
        assert_ne!(bad, text, "the typo's anchor is in {}", cfg.display());
        let line = bad[..bad.find("scan tme").unwrap()].lines().count();
        confd_write(&cfg, &bad);
        let bird = fab.daemons(&name)[0];
        fab.signal(bird, "HUP");
        let says = |out: &str| {
            out.contains(&format!("bird.cfg, line {line}"))
                || out.contains(&format!("bird.cfg:{line}:"))
        };
        let r = wait_until(&format!("{name} logs the parse error"), APPLY, || {
            let log = fs::read_to_string(fab.log_path(bird)).unwrap_or_default();
            if says(&log) {
                Ok(())
            } else {
                Err(format!(
                    "no bird.cfg line {line} in {}",
                    fab.log_path(bird).display()
                ))
            }
        });
        fab.must(r);
        let out = fab.show(&name, "configure").unwrap_or_else(|e| e);
        if !says(&out) {
            fab.fail(&format!("{name}: `configure` does not say why: {out:?}"));
        }
        let r = holds_for("the running configuration kept", WATCH, || {
            if !fab.alive(bird) {
                return Err(format!("{name}'s bird exited"));
            }
            unchanged(&fab, &before, &[])
        });
        fab.must(r);
        // confd puts a good file back; the next SIGHUP applies it and resets nothing.
        confd_write(&cfg, &text);
        fab.signal(bird, "HUP");
        let r = holds_for("the good file back, no reset", WATCH, || {
            unchanged(&fab, &before, &[])
        });
        fab.must(r);
        fab.log(&format!(
            "{name}: broken bird.cfg refused at line {line}, sessions kept"
        ));
    }
}

/// The topology mixes the two: BIRD 1.6.8 nodes and wren nodes.
fn assert_mixed(fab: &Fabric) {
    let has = |s: Speaker| fab.topo.nodes.iter().any(|n| n.speaker == s);
    assert!(
        has(Speaker::CalicoBird16) && has(Speaker::CalicoWren),
        "{TOPOLOGY} must mix BIRD 1.6.8 and wren nodes"
    );
}

/// The node that reloads in each pass: the first BIRD node, then the first wren node.
fn reloaders(fab: &Fabric) -> Vec<String> {
    assert_mixed(fab);
    [Speaker::CalicoBird16, Speaker::CalicoWren]
        .iter()
        .filter_map(|s| fab.topo.nodes.iter().find(|n| n.speaker == *s))
        .map(|n| n.name.clone())
        .collect()
}

/// Writes `path` as confd does: a staged file beside it (`.NAME.cfgNNNN`), renamed over it.
fn confd_write(path: &std::path::Path, text: &str) {
    let name = path.file_name().unwrap().to_string_lossy();
    let staged = path.with_file_name(format!(".{name}{}", std::process::id()));
    fs::write(&staged, text).unwrap();
    fs::rename(&staged, path).unwrap();
}

/// confd's output after a new block of one family (`v6`) is affine to node `name`:
/// bird_aggr.cfg (bird6_aggr.cfg) with the block's blackhole and its `calico_aggr` lines,
/// bird.cfg (bird6.cfg) written again unchanged, then SIGHUP to `bird` (`bird6`). Returns the
/// block: the one after the node's block of that family.
fn add_block(fab: &Fabric, name: &str, v6: bool) -> IpNet {
    let old = *fab
        .node(name)
        .blocks
        .iter()
        .find(|b| b.addr().is_ipv6() == v6)
        .unwrap();
    let next = match old {
        IpNet::V4(b) => IpAddr::from(Ipv4Addr::from_bits(b.broadcast().to_bits() + 1)),
        IpNet::V6(b) => IpAddr::from(Ipv6Addr::from_bits(b.broadcast().to_bits() + 1)),
    };
    let block = IpNet::new(next, old.prefix_len()).unwrap();
    let (old_s, block_s) = (old.to_string(), block.to_string());
    let sfx = if v6 { "6" } else { "" };
    let dir = fab.confd(name);
    let aggr = dir.join(format!("bird{sfx}_aggr.cfg"));
    let mut out = String::new();
    // Each statement about the old block (its route, its `calico_aggr` tests) gets a twin.
    for l in fs::read_to_string(&aggr).unwrap().lines() {
        out.push_str(l);
        out.push('\n');
        if l.contains(&old_s) && !l.trim_start().starts_with('#') {
            out.push_str(&l.replace(&old_s, &block_s));
            out.push('\n');
        }
    }
    assert_eq!(
        out.matches(&block_s).count(),
        4,
        "{}:\n{out}",
        aggr.display()
    );
    confd_write(&aggr, &out);
    let main = dir.join(format!("bird{sfx}.cfg"));
    confd_write(&main, &fs::read_to_string(&main).unwrap());
    fab.signal(fab.daemons(name)[usize::from(v6)], "HUP");
    block
}

/// Ok when node `owner`'s kernel has `block` as a blackhole and every other node's routes it
/// via `owner`'s address of that family.
fn block_everywhere(fab: &Fabric, owner: &str, block: &IpNet) -> Result<(), String> {
    let via = fab.node(owner).addr_for(block).unwrap();
    for n in &fab.topo.nodes {
        let routes = fab.kernel_routes(&n.name)?;
        let want = if n.name == owner {
            format!("blackhole {block}")
        } else {
            format!("{block} via {via} dev eth1")
        };
        if !routes.iter().any(|l| clab::normalize(l) == want) {
            return Err(format!("{}: no `{want}` in {routes:?}", n.name));
        }
    }
    Ok(())
}

/// The BGP protocol name node `n` gives its IPv4 session with another node (`Mesh_A_B_C_D`).
fn peer_proto_name(n: &Node) -> String {
    let a = n.addrs.iter().find(|a| a.is_ipv4()).unwrap();
    format!("Mesh_{}", a.to_string().replace('.', "_"))
}

/// confd's output after node `name`'s IPv4 session with the next node changed its settings
/// (a hold time of 90 s): bird.cfg rewritten, SIGHUP. Returns that node and the protocol.
fn change_peer(fab: &Fabric, name: &str) -> (String, String) {
    let i = fab.topo.nodes.iter().position(|n| n.name == name).unwrap();
    let other = &fab.topo.nodes[(i + 1) % fab.topo.nodes.len()];
    let proto = peer_proto_name(other);
    let cfg = fab.confd(name).join("bird.cfg");
    let text = fs::read_to_string(&cfg).unwrap();
    let head = format!("protocol bgp {proto} from bgp_template {{\n");
    let changed = text.replacen(&head, &format!("{head}  hold time 90;\n"), 1);
    assert_ne!(changed, text, "no `{head}` in {}", cfg.display());
    confd_write(&cfg, &changed);
    fab.signal(fab.daemons(name)[0], "HUP");
    (other.name.clone(), proto)
}

/// Every BGP session's `since` on every socket of every node, keyed by (node, protocol).
fn sinces(fab: &Fabric) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for n in &fab.topo.nodes {
        for text in [
            fab.show(&n.name, "show protocols"),
            fab.show6(&n.name, "show protocols"),
        ] {
            let text = fab.must(text);
            for row in bgp_rows(&text) {
                out.insert((n.name.clone(), row[0].to_string()), row[4].to_string());
            }
        }
    }
    out
}

/// Ok when every session but the `except` ones is Established with the `since` of `before`.
fn unchanged(
    fab: &Fabric,
    before: &BTreeMap<(String, String), String>,
    except: &[(String, String)],
) -> Result<(), String> {
    let now = sinces(fab);
    for (key, since) in before {
        if except.contains(key) {
            continue;
        }
        if now.get(key) != Some(since) {
            return Err(format!(
                "{key:?} reset: since {since} before, {:?} now",
                now.get(key)
            ));
        }
    }
    for n in &fab.topo.nodes {
        checks::established(fab, &n.name)?;
    }
    Ok(())
}

/// The rows of `show protocols` (as birdc prints it) that are BGP sessions, split in words:
/// name, proto, table, state, since, info….
fn bgp_rows(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.get(1) == Some(&"BGP"))
        .collect()
}

/// calico-node's checks (contract §5, `harness::calico`) against node `name`'s `bird.ctl`
/// and `bird6.ctl`, as right after calico-node's start (the strict rule: every peer
/// Established and no graceful restart pending): `-bird-ready` on the socket, `-bird-live`
/// through BIRD 1.6.8's birdc.
fn calico_ready(fab: &Fabric, name: &str) -> Result<(), String> {
    let nodename = fab.dir.join("nodename");
    fs::write(&nodename, name).map_err(|e| e.to_string())?;
    let birdc = harness::peers::bird16_dir().join("birdc");
    for (socket, fam) in [(fab.ctl(name), Fam::V4), (fab.ctl6(name), Fam::V6)] {
        calico::bird_ready(&socket, fam, &nodename, calico::THRESHOLD)
            .map_err(|e| format!("{name}: bird-ready ({fam:?}): {e}"))?;
        calico::bird_live(&birdc, &socket).map_err(|e| format!("{name}: bird-live: {e}"))?;
    }
    Ok(())
}

/// A node's full `ip route` and `ip -6 route` (every protocol), one route a line.
fn table(fab: &Fabric, name: &str) -> Result<BTreeSet<String>, String> {
    let ns = fab.ns(name);
    let mut out = BTreeSet::new();
    for fam in ["-4", "-6"] {
        let text = fab.run_in(&ns, "ip", &["-o", fam, "route", "show"])?;
        out.extend(text.lines().map(|l| {
            l.replace('\\', " ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        }));
    }
    Ok(out)
}

/// What makes node `n` itself in a routing table: its addresses and its blocks.
fn identity(n: &Node) -> Vec<String> {
    let mut v: Vec<String> = n.addrs.iter().map(|a| a.to_string()).collect();
    v.extend(n.blocks.iter().map(|b| b.to_string()));
    v
}

/// Ok when every node's table, with its identity and the first node's swapped word for word,
/// is the first node's table: the same routes, route by route, up to which node it is.
fn identical_tables(fab: &Fabric) -> Result<(), String> {
    let first = &fab.topo.nodes[0];
    let reference = table(fab, &first.name)?;
    for n in &fab.topo.nodes[1..] {
        let mut swap = BTreeMap::new();
        for (a, b) in identity(n).into_iter().zip(identity(first)) {
            swap.insert(a.clone(), b.clone());
            swap.insert(b, a);
        }
        let mine: BTreeSet<String> = table(fab, &n.name)?
            .iter()
            .map(|l| {
                l.split(' ')
                    .map(|w| swap.get(w).map_or(w, String::as_str))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if mine != reference {
            let missing: Vec<_> = reference.difference(&mine).collect();
            let extra: Vec<_> = mine.difference(&reference).collect();
            return Err(format!(
                "{} ({:?}) and {} ({:?}) differ beyond their identity: {} lacks {missing:?}, \
                 has more {extra:?}",
                n.name, n.speaker, first.name, first.speaker, n.name
            ));
        }
    }
    Ok(())
}
