//! Route reflection with real wrend processes over loopback (no privileges): clients learn
//! each other's blocks through a reflector, with ORIGINATOR_ID and CLUSTER_LIST set; two
//! reflectors in one cluster drop each other's reflections of the same route.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use wren::demo::Node;

mod harness;

const PORT: u16 = 1179;

type Topology = harness::wrend::Nodes;

/// A node: router ID and listen address `addr`, its block, and its peers (address, whether
/// it is our route-reflector client).
fn config(
    addr: Ipv4Addr,
    block: &str,
    cluster: Option<&str>,
    peers: &[(Ipv4Addr, bool)],
) -> String {
    let mut c = format!(
        "router_id = \"{addr}\"\nasn = 64512\noriginate = [\"{block}\"]\n{}\n\
         [kernel]\nenabled = false\n[listen]\naddresses = [\"{addr}\"]\nport = {PORT}\n\
         [defaults]\nhold_time = 9\nconnect_delay = 1\nconnect_retry = 2\nsource_address = \"{addr}\"\n\
         [[pool]]\ncidr = \"198.18.0.0/16\"\n",
        cluster.map_or(String::new(), |c| format!("cluster_id = \"{c}\""))
    );
    for (p, client) in peers {
        let passive = p.to_string() > addr.to_string();
        c.push_str(&format!(
            "[[peer]]\nname = \"P_{}\"\naddress = \"{p}\"\nasn = 64512\nport = {PORT}\npassive = {passive}\nrr_client = {client}\n",
            p.to_string().replace('.', "_")
        ));
    }
    c
}

impl Topology {
    fn start(name: &str, nodes: &[(&str, String)]) -> Topology {
        let dir = std::env::temp_dir().join(format!("wren-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let wrend = Path::new(env!("CARGO_BIN_EXE_wrend"));
        let nodes = nodes
            .iter()
            .map(|(n, cfg)| Node::spawn(wrend, &dir, n, cfg).expect("start wrend"))
            .collect();
        Topology { dir, nodes }
    }

    fn ask(&self, i: usize, cmd: &str) -> String {
        self.nodes[i].ask(cmd).unwrap_or_default()
    }

    /// Waits until node `i`'s `show route all` satisfies `ok`.
    fn wait(&mut self, i: usize, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            for n in &mut self.nodes {
                n.running().expect("node running");
            }
            let routes = self.ask(i, "show route all");
            if ok(&routes) {
                return routes;
            }
            assert!(
                Instant::now() < end,
                "{what}: not within 20 s; node {i} shows:\n{routes}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// The `show route all` lines for a prefix: its rows (a second path's row has a blank prefix
/// column) and their attribute lines, up to the next prefix.
fn route_block(routes: &str, prefix: &str) -> String {
    let mut lines = routes.lines().skip_while(|l| !l.starts_with(prefix));
    let mut out: Vec<&str> = lines.next().into_iter().collect();
    out.extend(lines.take_while(|l| !l.starts_with(|c: char| c.is_ascii_digit())));
    out.join("\n")
}

#[test]
fn clients_learn_each_other_through_a_reflector() {
    let (rr, a, b) = (ip(40), ip(41), ip(42));
    let mut t = Topology::start(
        "rr1",
        &[
            (
                "rr",
                config(
                    rr,
                    "198.18.40.0/26",
                    Some("244.0.0.1"),
                    &[(a, true), (b, true)],
                ),
            ),
            ("a", config(a, "198.18.41.0/26", None, &[(rr, false)])),
            ("b", config(b, "198.18.42.0/26", None, &[(rr, false)])),
        ],
    );
    let routes = t.wait(2, "client b learns client a's block", |r| {
        r.contains("198.18.41.0/26")
    });
    let block = route_block(&routes, "198.18.41.0/26");
    assert!(
        block.contains("via 127.0.0.41"),
        "next hop kept through the reflector:\n{block}"
    );
    assert!(block.contains("BGP.originator_id: 127.0.0.41"), "{block}");
    assert!(block.contains("BGP.cluster_list: 244.0.0.1"), "{block}");
    t.wait(1, "client a learns client b's block", |r| {
        r.contains("198.18.42.0/26")
    });
    t.wait(1, "client a learns the reflector's own block", |r| {
        r.contains("198.18.40.0/26")
    });
    // A's own block comes back reflected with ORIGINATOR_ID = A: dropped, so A holds only
    // its own blackhole for it.
    let a_routes = t.ask(1, "show route 198.18.41.0/26");
    assert_eq!(a_routes.lines().count(), 1, "{a_routes}");
    assert!(a_routes.contains("blackhole"), "{a_routes}");
}

#[test]
fn two_reflectors_in_one_cluster_suppress_loops() {
    let (rr1, rr2, a, b) = (ip(50), ip(51), ip(52), ip(53));
    let cluster = Some("244.0.0.1");
    let mut t = Topology::start(
        "rr2",
        &[
            (
                "rr1",
                config(
                    rr1,
                    "198.18.50.0/26",
                    cluster,
                    &[(rr2, false), (a, true), (b, true)],
                ),
            ),
            (
                "rr2",
                config(
                    rr2,
                    "198.18.51.0/26",
                    cluster,
                    &[(rr1, false), (a, true), (b, true)],
                ),
            ),
            (
                "a",
                config(a, "198.18.52.0/26", None, &[(rr1, false), (rr2, false)]),
            ),
            (
                "b",
                config(b, "198.18.53.0/26", None, &[(rr1, false), (rr2, false)]),
            ),
        ],
    );
    // B hears A's block from both reflectors.
    let routes = t.wait(3, "client b has two paths to a's block", |r| {
        route_block(r, "198.18.52.0/26")
            .matches("BGP.originator_id: 127.0.0.52")
            .count()
            == 2
    });
    assert!(routes.contains("198.18.53.0/26"));
    // Each reflector holds A's block from A only: the copy the other reflector would send
    // carries their shared cluster ID and is dropped.
    for rr in [0, 1] {
        let r = t.ask(rr, "show route 198.18.52.0/26 all");
        assert_eq!(r.matches("Type: BGP").count(), 1, "reflector {rr}:\n{r}");
        assert!(
            !r.contains("cluster_list"),
            "reflector {rr} keeps the direct path:\n{r}"
        );
    }
}
