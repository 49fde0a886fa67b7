//! A containerlab topology file (`tests/topology/*.clab.yml`) as the runner reads it, and
//! what follows from it and from each node's own config: addresses, blocks, pods, and the
//! kernel routes each node must end up with.
//!
//! Read from the containerlab schema: `name`, `topology.nodes.<name>.{kind, binds, exec,
//! labels}` and `topology.links[].endpoints`. Two labels are the runner's own (containerlab
//! keeps labels as metadata): `wren.speaker` (`wrend`, `bird1.6`, `bird2` or `frr`: which
//! daemon the node runs, with its config from the node's first bind; `calico-bird1.6` or
//! `calico-wren`: BIRD 1.6.8 or wren as `bird` and `bird6` on the folder of confd's files the
//! first bind mounts) and `wren.pods` (the
//! addresses of the node's test pod; Calico would create pods, containerlab does not).
//! A node's addresses are the `ip addr add` lines of its `exec`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use wren::config::{Config, Encapsulation};

#[derive(Deserialize)]
struct File {
    name: String,
    topology: Topology,
}

#[derive(Deserialize)]
struct Topology {
    nodes: BTreeMap<String, RawNode>,
    #[serde(default)]
    links: Vec<RawLink>,
}

#[derive(Deserialize)]
struct RawNode {
    kind: String,
    #[serde(default)]
    binds: Vec<String>,
    #[serde(default)]
    exec: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawLink {
    endpoints: [String; 2],
}

/// Which daemon a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaker {
    Wrend,
    Bird16,
    Bird2,
    Frr,
    /// A Calico node's `bird` and `bird6`: BIRD 1.6.8 on confd's files.
    CalicoBird16,
    /// The same, with wren answering to `bird` and `bird6` on the same files.
    CalicoWren,
}

impl Speaker {
    /// Whether the node runs `bird` and `bird6` on a folder of confd's files.
    pub fn calico(self) -> bool {
        matches!(self, Speaker::CalicoBird16 | Speaker::CalicoWren)
    }
}

/// One end of a link: node and interface.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub node: String,
    pub iface: String,
}

/// A node (`kind: linux`) of the topology.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub speaker: Speaker,
    /// The host side of the first bind: the daemon's config file (Calico nodes: the folder
    /// of confd's files).
    pub config: PathBuf,
    /// `exec` commands, split into words.
    pub exec: Vec<Vec<String>>,
    /// Its fabric addresses (from `ip addr add` in `exec`).
    pub addrs: Vec<IpAddr>,
    /// The pod's addresses (label `wren.pods`).
    pub pods: Vec<IpAddr>,
    /// The IPAM blocks it originates.
    pub blocks: Vec<IpNet>,
    /// wrend's parsed config.
    pub wren: Option<Config>,
    /// How many BGP sessions its config has, when the runner knows (wrend, Calico nodes).
    pub sessions: Option<usize>,
}

impl Node {
    /// The node's fabric address of `block`'s family.
    pub fn addr_for(&self, block: &IpNet) -> Option<IpAddr> {
        self.addrs
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == block.addr().is_ipv4())
    }

    pub fn has_family(&self, v4: bool) -> bool {
        self.addrs.iter().any(|a| a.is_ipv4() == v4)
    }

    /// How the node writes routes inside `block`: wrend from its pools; BIRD configs here
    /// have plain pools only.
    fn encapsulation(&self, block: &IpNet) -> Encapsulation {
        self.wren
            .as_ref()
            .and_then(|c| c.pools.iter().find(|p| p.cidr.contains(block)))
            .map_or(Encapsulation::None, |p| p.encapsulation)
    }
}

/// A parsed topology file.
pub struct Topo {
    pub name: String,
    /// Nodes that run a speaker, in name order.
    pub nodes: Vec<Node>,
    /// `kind: bridge` nodes: the L2 fabric.
    pub bridges: Vec<String>,
    pub links: Vec<[Endpoint; 2]>,
}

impl Topo {
    /// Reads `tests/topology/<file>`; bind paths are relative to that folder, as containerlab
    /// resolves them.
    pub fn load(file: &str) -> Result<Topo, String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/topology");
        let path = dir.join(file);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let f: File =
            serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut topo = Topo {
            name: f.name,
            nodes: Vec::new(),
            bridges: Vec::new(),
            links: Vec::new(),
        };
        for (name, raw) in f.topology.nodes {
            match raw.kind.as_str() {
                "bridge" => topo.bridges.push(name),
                "linux" => topo.nodes.push(
                    node(&dir, &name, &raw).map_err(|e| format!("{file}: node {name}: {e}"))?,
                ),
                other => return Err(format!("{file}: node {name}: kind {other} not supported")),
            }
        }
        for l in f.topology.links {
            let [a, b] = l.endpoints.map(|e| endpoint(&e));
            let (a, b) = (a?, b?);
            for e in [&a, &b] {
                if !topo.bridges.contains(&e.node) && topo.node(&e.node).is_none() {
                    return Err(format!("{file}: link to unknown node {}", e.node));
                }
            }
            topo.links.push([a, b]);
        }
        Ok(topo)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The `proto bird` routes `observer`'s kernel must hold, as [`normalize`] writes them:
    /// a blackhole for each own block and, for each block of another node with an address in
    /// the same family, `via` that node (`dev eth1`, or `dev tunl0 onlink` in an IP-in-IP
    /// pool) — the lines Calico's BIRD writes (contract §3.8) — leaving out the blocks of the
    /// nodes `gone`.
    pub fn expected_kernel(&self, observer: &Node, gone: &[&str]) -> BTreeSet<String> {
        let mut want = BTreeSet::new();
        for b in &observer.blocks {
            want.insert(format!("blackhole {b}"));
        }
        for other in &self.nodes {
            if other.name == observer.name || gone.contains(&other.name.as_str()) {
                continue;
            }
            for b in &other.blocks {
                let (Some(nh), true) = (other.addr_for(b), observer.has_family(b.addr().is_ipv4()))
                else {
                    continue;
                };
                want.insert(match observer.encapsulation(b) {
                    Encapsulation::Ipip => format!("{b} via {nh} dev tunl0 onlink"),
                    _ => format!("{b} via {nh} dev eth1"),
                });
            }
        }
        want
    }
}

/// An `ip route` line without what the kernel adds on its own (`proto bird`, IPv6's default
/// `metric 1024` and `pref medium`, `dev lo` on IPv6 blackholes), words single-spaced.
pub fn normalize(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let pair = (words[i], words.get(i + 1).copied().unwrap_or(""));
        let skip = matches!(
            pair,
            ("proto", "bird") | ("metric", "1024") | ("pref", "medium")
        ) || (pair == ("dev", "lo") && words.first() == Some(&"blackhole"));
        if skip {
            i += 2;
        } else {
            out.push(words[i]);
            i += 1;
        }
    }
    out.join(" ")
}

fn endpoint(s: &str) -> Result<Endpoint, String> {
    let (node, iface) = s
        .split_once(':')
        .ok_or_else(|| format!("endpoint {s:?} is not NODE:IFACE"))?;
    if iface.is_empty() || iface.len() > 15 {
        return Err(format!("endpoint {s:?}: bad interface name"));
    }
    Ok(Endpoint {
        node: node.to_string(),
        iface: iface.to_string(),
    })
}

fn node(dir: &Path, name: &str, raw: &RawNode) -> Result<Node, String> {
    let speaker = match raw.labels.get("wren.speaker").map(String::as_str) {
        Some("wrend") => Speaker::Wrend,
        Some("bird1.6") => Speaker::Bird16,
        Some("bird2") => Speaker::Bird2,
        Some("frr") => Speaker::Frr,
        Some("calico-bird1.6") => Speaker::CalicoBird16,
        Some("calico-wren") => Speaker::CalicoWren,
        other => return Err(format!("label wren.speaker is {other:?}")),
    };
    let bind = raw.binds.first().ok_or("no bind (the daemon's config)")?;
    let (host, _) = bind
        .split_once(':')
        .ok_or_else(|| format!("bind {bind:?} is not HOST:CONTAINER"))?;
    let config = dir.join(host);
    let exec: Vec<Vec<String>> = raw
        .exec
        .iter()
        .map(|c| words(c))
        .collect::<Result<_, _>>()?;
    let addrs = exec
        .iter()
        .filter_map(|w| {
            let i = w.iter().position(|x| x == "add")?;
            let is_addr = w.iter().any(|x| x == "addr" || x == "address");
            let net: IpNet = w.get(i + 1)?.parse().ok()?;
            is_addr.then_some(net.addr())
        })
        .collect();
    let pods = match raw.labels.get("wren.pods") {
        Some(s) => s
            .split_whitespace()
            .map(|a| a.parse().map_err(|e| format!("wren.pods {a:?}: {e}")))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let (wren, blocks, sessions) = match speaker {
        Speaker::Wrend => {
            let c =
                Config::parse(&read(&config)?).map_err(|e| format!("{}: {e}", config.display()))?;
            let (blocks, sessions) = (c.originate.clone(), Some(c.peers.len()));
            (Some(c), blocks, sessions)
        }
        Speaker::Bird16 | Speaker::Bird2 => (None, bird_blocks(&read(&config)?), None),
        Speaker::Frr => (None, Vec::new(), None),
        Speaker::CalicoBird16 | Speaker::CalicoWren => {
            let (mut blocks, mut sessions) = (Vec::new(), 0);
            for sfx in ["", "6"] {
                blocks.extend(bird_blocks(&read(
                    &config.join(format!("bird{sfx}_aggr.cfg")),
                )?));
                sessions += read(&config.join(format!("bird{sfx}.cfg")))?
                    .matches("protocol bgp ")
                    .count();
            }
            (None, blocks, Some(sessions))
        }
    };
    Ok(Node {
        name: name.to_string(),
        speaker,
        config,
        exec,
        addrs,
        pods,
        blocks,
        wren,
        sessions,
    })
}

/// The `route PREFIX blackhole` statements of a BIRD config: the node's blocks.
fn bird_blocks(text: &str) -> Vec<IpNet> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ';' || c == '{' || c == '}')
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(3)
        .filter(|w| w[0] == "route" && w[2] == "blackhole")
        .filter_map(|w| w[1].parse().ok())
        .collect()
}

/// Splits a command line into words as a shell would for the simple forms containerlab's
/// `exec` takes: blanks separate, single and double quotes group.
pub fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unbalanced quote in {line:?}"));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_group_quotes() {
        let w = words(r#"sh -c "ip link show tunl0 || true"  'a b'"#).unwrap();
        assert_eq!(w, ["sh", "-c", "ip link show tunl0 || true", "a b"]);
        assert!(words("echo 'open").is_err());
    }

    #[test]
    fn normalize_drops_what_the_kernel_adds() {
        assert_eq!(
            normalize("blackhole 2001:db8:100:11::/122 dev lo proto bird metric 1024 pref medium"),
            "blackhole 2001:db8:100:11::/122"
        );
        assert_eq!(
            normalize("198.18.12.0/26 via 198.51.100.12 dev tunl0 proto bird onlink "),
            "198.18.12.0/26 via 198.51.100.12 dev tunl0 onlink"
        );
        // Another metric is kept: it differs from what Calico's BIRD writes.
        assert_eq!(
            normalize("blackhole 198.19.14.0/26 proto bird metric 32"),
            "blackhole 198.19.14.0/26 metric 32"
        );
    }

    #[test]
    fn every_topology_file_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/topology");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".clab.yml") {
                let t = Topo::load(&name).unwrap();
                assert!(!t.nodes.is_empty() && !t.links.is_empty(), "{name}");
                n += 1;
            }
        }
        assert!(n >= 10, "only {n} topology files");
    }
}
