//! Live reload with real wrend processes over loopback: with three peers Established, one
//! peer's settings change and one peer is added; the two untouched sessions never leave
//! Established, and the changed one is told why (Cease "Other Configuration Change"). A
//! broken file changes nothing and says where it is broken.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use wren::demo::Node;

mod harness;

const PORT: u16 = 1179;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

fn node_config(me: Ipv4Addr, peers: &[(Ipv4Addr, u16)]) -> String {
    let mut c = format!(
        "router_id = \"{me}\"\nasn = 64512\noriginate = [\"198.18.{}.0/26\"]\n\
         [kernel]\nenabled = false\n[listen]\naddresses = [\"{me}\"]\nport = {PORT}\n\
         [defaults]\nconnect_delay = 1\nconnect_retry = 1\nerror_wait = [1, 2]\nsource_address = \"{me}\"\n",
        me.octets()[3]
    );
    for (p, hold) in peers {
        c.push_str(&format!(
            "[[peer]]\nname = \"P{}\"\naddress = \"{p}\"\nasn = 64512\nport = {PORT}\nhold_time = {hold}\n",
            p.octets()[3]
        ));
    }
    c
}

type Lab = harness::wrend::Nodes;

/// The `show protocols` row of a peer.
fn row(n: &Node, peer: &str) -> String {
    n.ask(&format!("show protocols {peer}"))
        .and_then(|r| r.lines().nth(1).map(str::to_string))
        .unwrap_or_default()
}

fn wait(what: &str, ok: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < end, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a node's log to hold `needle`.
fn logged(dir: &Path, node: &str, needle: &str) {
    let read = || std::fs::read_to_string(dir.join(format!("{node}.log"))).unwrap_or_default();
    let end = Instant::now() + Duration::from_secs(20);
    while !read().contains(needle) {
        assert!(
            Instant::now() < end,
            "{node}'s log never said {needle:?}:\n{}",
            read()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn reload_keeps_untouched_sessions_up() {
    let dir = std::env::temp_dir().join(format!("wren-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let wrend = Path::new(env!("CARGO_BIN_EXE_wrend"));
    let (a, b, c, d, e) = (ip(60), ip(61), ip(62), ip(63), ip(64));
    let mut lab = Lab {
        dir: dir.clone(),
        nodes: Vec::new(),
    };
    lab.nodes.push(
        Node::spawn(
            wrend,
            &dir,
            "a",
            &node_config(a, &[(b, 240), (c, 240), (d, 240)]),
        )
        .expect("a"),
    );
    for (name, me) in [("b", b), ("c", c), ("d", d), ("e", e)] {
        lab.nodes
            .push(Node::spawn(wrend, &dir, name, &node_config(me, &[(a, 240)])).expect("peer"));
    }
    let a_node = &lab.nodes[0];
    wait("three sessions Established", || {
        a_node
            .ask("show protocols")
            .is_some_and(|r| r.matches("Established").count() == 3)
    });
    // Let the `since` column be distinguishable from a restart.
    std::thread::sleep(Duration::from_millis(1100));
    let before_b = row(a_node, "P61");
    let before_c = row(a_node, "P62");

    // A broken file: nothing changes, and the error says where.
    std::fs::write(
        dir.join("a.toml"),
        "router_id = \"127.0.0.60\"\nasn = 64512\nbogus = 1\n",
    )
    .expect("write");
    let reply = a_node.ask("configure").unwrap_or_default();
    assert!(reply.contains("a.toml:3:1: unknown field"), "{reply}");
    assert_eq!(row(a_node, "P61"), before_b);

    // D's hold time changes, E is added; B and C are untouched.
    std::fs::write(
        dir.join("a.toml"),
        node_config(a, &[(b, 240), (c, 240), (d, 90), (e, 240)]),
    )
    .expect("write");
    let reply = a_node.ask("configure").unwrap_or_default();
    assert!(reply.contains("Reconfigured"), "{reply}");
    wait("D and E Established", || {
        row(a_node, "P63").contains("Established") && row(a_node, "P64").contains("Established")
    });
    // RFC 4486 §4: a peer reset for new settings is told "Other Configuration Change",
    // not "Peer De-configured" (which a remote counts as an error and backs off from).
    let log =
        |name: &str| std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    // Not inside a Hard Reset (RFC 8538 §5): D keeps A's routes while the session returns.
    logged(&dir, "d", "Received: Cease / Other Configuration Change");
    assert!(!log("d").contains("(data 03"), "{}", log("d"));
    for untouched in ["b", "c"] {
        assert!(
            !log(untouched).contains("Received: Cease"),
            "{}",
            log(untouched)
        );
    }
    assert_eq!(row(a_node, "P61"), before_b, "B's session was reset");
    assert_eq!(row(a_node, "P62"), before_c, "C's session was reset");
    let routes = a_node.ask("show route").unwrap_or_default();
    assert!(
        routes.contains("198.18.64.0/26"),
        "E's block learned:\n{routes}"
    );

    // Removing a peer: its session ends and its routes go.
    std::fs::write(
        dir.join("a.toml"),
        node_config(a, &[(b, 240), (c, 240), (e, 240)]),
    )
    .expect("write");
    assert!(
        a_node
            .ask("configure")
            .is_some_and(|r| r.contains("Reconfigured"))
    );
    wait("D's routes gone", || {
        a_node
            .ask("show route")
            .is_some_and(|r| !r.contains("198.18.63.0/26"))
    });
    assert!(
        a_node
            .ask("show protocols")
            .is_some_and(|r| !r.contains("P63"))
    );
    // The end of the peering: a Hard Reset (RFC 8538 §5) whose data starts with the
    // original subcode.
    logged(&dir, "d", "Received: Cease / Hard Reset (data 03");
    assert_eq!(row(a_node, "P61"), before_b);
}
