//! Kernel routes in network namespaces the test makes (needs root): three wrend nodes write
//! `proto bird` routes exactly as Calico's BIRD would — own blocks as blackholes, IP-in-IP
//! pool routes via tunl0 onlink, plain routes, ECMP, IPv6 — and a node killed with SIGKILL
//! and restarted under graceful restart changes nothing in any kernel table.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wren::demo::Node;

/// Namespaces and processes of one test; removed however the test ends.
struct Lab {
    prefix: String,
    spaces: Vec<String>,
    dir: PathBuf,
    nodes: Vec<Node>,
    monitors: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.nodes.clear();
        for m in &mut self.monitors {
            let _ = m.kill();
            let _ = m.wait();
        }
        for ns in &self.spaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the kernel tests need root (run `sudo bash tests/run.sh`)"
    );
}

impl Lab {
    fn new(prefix: &str) -> Lab {
        require_root();
        let dir = std::env::temp_dir().join(format!("wren-{prefix}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Lab {
            prefix: prefix.to_string(),
            spaces: Vec::new(),
            dir,
            nodes: Vec::new(),
            monitors: Vec::new(),
        }
    }

    /// Namespace `name` of this test, unique to this run (the pid is in its name, so that two
    /// runs on one machine keep apart). One left by a killed run whose pid came round again
    /// is deleted first, quietly.
    fn ns(&mut self, name: &str) -> String {
        let ns = format!("{}-{}-{name}", self.prefix, std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &ns]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        self.spaces.push(ns.clone());
        ns
    }

    /// A veth between two namespaces, with IPv4 and IPv6 addresses on each end.
    fn link(&self, a: &str, b: &str, dev_a: &str, dev_b: &str, addrs: [&str; 4]) {
        ip(&[
            "link", "add", dev_a, "netns", a, "type", "veth", "peer", "name", dev_b, "netns", b,
        ]);
        for (ns, dev, v4, v6) in [
            (a, dev_a, addrs[0], addrs[1]),
            (b, dev_b, addrs[2], addrs[3]),
        ] {
            ip(&["-n", ns, "addr", "add", v4, "dev", dev]);
            ip(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
    }

    /// Namespaces `a` and `b` on one veth (198.51.100.1 and .2, 2001:db8::1 and ::2).
    fn pair(&mut self) -> (String, String) {
        let (a, b) = (self.ns("a"), self.ns("b"));
        let p = self.prefix.clone();
        self.link(
            &a,
            &b,
            &format!("{p}ab"),
            &format!("{p}ba"),
            [
                "198.51.100.1/24",
                "2001:db8::1/64",
                "198.51.100.2/24",
                "2001:db8::2/64",
            ],
        );
        (a, b)
    }

    /// Namespace `c` on a veth to `a` (203.0.113.3 and 203.0.113.1, 2001:db8:2::3 and ::1).
    fn third(&mut self, a: &str) -> String {
        let c = self.ns("c");
        let p = self.prefix.clone();
        self.link(
            a,
            &c,
            &format!("{p}ac"),
            &format!("{p}ca"),
            [
                "203.0.113.1/24",
                "2001:db8:2::1/64",
                "203.0.113.3/24",
                "2001:db8:2::3/64",
            ],
        );
        c
    }

    fn start(&mut self, ns: &str, name: &str, config: &str, flags: &[&str]) -> usize {
        let wrend = Path::new(env!("CARGO_BIN_EXE_wrend"));
        let node =
            Node::spawn_in(Some(ns), wrend, &self.dir, name, config, flags).expect("start wrend");
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// `ip monitor route` in a namespace, recorded to a file.
    fn monitor(&mut self, ns: &str) -> PathBuf {
        let file = self.dir.join(format!("monitor-{ns}.txt"));
        let out = std::fs::File::create(&file).expect("monitor file");
        let child = Command::new("ip")
            .args(["-n", ns, "monitor", "route"])
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("ip monitor");
        self.monitors.push(child);
        file
    }
}

fn routes(ns: &str, v6: bool) -> String {
    let mut args = vec!["-n", ns];
    if v6 {
        args.push("-6");
    }
    args.extend(["route", "show", "proto", "bird"]);
    let out = Command::new("ip").args(&args).output().expect("ip route");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Waits until the namespace's `proto bird` routes contain every line in `want`.
fn wait_routes(ns: &str, v6: bool, want: &[&str]) -> String {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let r = routes(ns, v6);
        let norm: Vec<String> = r
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if want.iter().all(|w| norm.iter().any(|l| l.starts_with(w))) {
            return r;
        }
        assert!(Instant::now() < end, "{ns}: expected {want:?} in:\n{r}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Node `me` (router ID `id`) with its blocks and peers (address, AS).
fn config(id: &str, blocks: &[&str], peers: &[(&str, u32)]) -> String {
    let list = |v: &[&str]| {
        v.iter()
            .map(|b| format!("\"{b}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut c = format!(
        "router_id = \"{id}\"\nasn = 64512\noriginate = [{}]\n\
         [[pool]]\ncidr = \"198.18.0.0/16\"\nencapsulation = \"ipip\"\n\
         [[pool]]\ncidr = \"198.19.0.0/16\"\n\
         [[pool]]\ncidr = \"2001:db8:1::/48\"\n\
         [defaults]\nconnect_delay = 1\nhold_time = 9\n",
        list(blocks)
    );
    for (addr, asn) in peers {
        c.push_str(&format!("[[peer]]\naddress = \"{addr}\"\nasn = {asn}\n"));
    }
    c
}

/// Calico's `tunl0` in `ns`, up: the contract's is an ipip device, which this kernel lacks; a
/// veth of that name gets the same route requests.
fn tunl0(ns: &str) {
    ip(&[
        "-n",
        ns,
        "link",
        "add",
        "tunl0",
        "type",
        "veth",
        "peer",
        "name",
        "tunl0-peer",
    ]);
    ip(&["-n", ns, "link", "set", "tunl0", "up"]);
}

/// A (198.51.100.1) between B (198.51.100.2, with a tunl0 device) and C (203.0.113.3).
/// B and C both announce the anycast block 198.19.9.0/26: A installs it with two next hops.
fn three_nodes(lab: &mut Lab) -> (String, String, String) {
    let (a, b) = lab.pair();
    let c = lab.third(&a);
    tunl0(&b);
    lab.start(
        &a,
        "a",
        &config(
            "198.51.100.1",
            &["198.18.1.0/26", "2001:db8:1::/122"],
            &[
                ("198.51.100.2", 64512),
                ("2001:db8::2", 64512),
                ("203.0.113.3", 64512),
            ],
        ),
        &[],
    );
    lab.start(
        &b,
        "b",
        &config(
            "198.51.100.2",
            &["198.18.2.0/26", "198.19.9.0/26", "2001:db8:1::40/122"],
            &[("198.51.100.1", 64512), ("2001:db8::1", 64512)],
        ),
        &[],
    );
    lab.start(
        &c,
        "c",
        &config(
            "203.0.113.3",
            &["198.18.3.0/26", "198.19.9.0/26"],
            &[("203.0.113.1", 64512)],
        ),
        &[],
    );
    (a, b, c)
}

#[test]
fn routes_as_calico_bird_writes_them() {
    let mut lab = Lab::new("wk1");
    let (a, b, _c) = three_nodes(&mut lab);
    let pa = format!("{}ab", lab.prefix);
    wait_routes(
        &a,
        false,
        &[
            "blackhole 198.18.1.0/26",
            &format!("198.18.2.0/26 via 198.51.100.2 dev {pa}"),
            &format!("198.18.3.0/26 via 203.0.113.3 dev {}ac", lab.prefix),
        ],
    );
    // ECMP: the anycast block from both neighbours, as one multipath route.
    let r = wait_routes(&a, false, &["198.19.9.0/26"]);
    let block: String = r
        .lines()
        .skip_while(|l| !l.starts_with("198.19.9.0/26"))
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        block.contains("nexthop via 198.51.100.2") && block.contains("nexthop via 203.0.113.3"),
        "{r}"
    );
    // B has tunl0: routes in the IP-in-IP pool go through it, onlink.
    wait_routes(
        &b,
        false,
        &[
            "198.18.1.0/26 via 198.51.100.1 dev tunl0 onlink",
            "blackhole 198.18.2.0/26",
        ],
    );
    // IPv6: blackhole for our block, plain route for B's.
    wait_routes(
        &a,
        true,
        &[
            "blackhole 2001:db8:1::/122",
            &format!("2001:db8:1::40/122 via 2001:db8::2 dev {pa}"),
        ],
    );
    // B disables its sessions (Cease): A withdraws B's routes, and the ECMP route narrows.
    assert!(
        lab.nodes[1]
            .ask("disable all")
            .is_some_and(|r| r.contains("disabled"))
    );
    wait_until(&a, "the withdrawal", |r| {
        !r.contains("198.18.2.0/26") && r.contains("198.19.9.0/26 via 203.0.113.3")
    });
}

#[test]
fn crash_under_graceful_restart_changes_nothing() {
    restart_changes_nothing("wk2", false);
}

/// SIGTERM sends a Cease; with RFC 8538's N bit the peers keep the routes as for a crash.
#[test]
fn sigterm_under_graceful_restart_changes_nothing() {
    restart_changes_nothing("wk8", true);
}

/// B stops (SIGKILL, or SIGTERM when `term`) and starts again with `-R`: no route is deleted
/// from A's kernel or B's.
fn restart_changes_nothing(name: &str, term: bool) {
    let mut lab = Lab::new(name);
    let (a, b, _c) = three_nodes(&mut lab);
    wait_routes(
        &a,
        false,
        &["198.18.2.0/26", "198.18.3.0/26", "198.19.9.0/26"],
    );
    wait_routes(&b, false, &["198.18.1.0/26", "blackhole 198.18.2.0/26"]);
    let mon_a = lab.monitor(&a);
    let mon_b = lab.monitor(&b);
    std::thread::sleep(Duration::from_millis(300));
    // B crashes or is stopped, then comes back as a restarting speaker.
    if term {
        lab.nodes[1].stop();
    } else {
        lab.nodes[1].kill();
    }
    let b_config = std::fs::read_to_string(lab.dir.join("b.toml")).expect("b config");
    // A route the previous run left that nobody wants any more: it goes once start-up sync
    // is over, and is the only deletion allowed.
    ip(&[
        "-n",
        &b,
        "route",
        "add",
        "198.18.99.0/26",
        "via",
        "198.51.100.1",
        "proto",
        "bird",
    ]);
    std::thread::sleep(Duration::from_secs(1));
    let b2 = lab.start(&b, "b2", &b_config, &["-R"]);
    let end = Instant::now() + Duration::from_secs(30);
    let both_up = |n: &Node| {
        n.ask("show protocols")
            .is_some_and(|r| r.matches("Established").count() == 2)
    };
    while !both_up(&lab.nodes[b2]) {
        assert!(Instant::now() < end, "B did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let changes_a = std::fs::read_to_string(&mon_a).unwrap_or_default();
    let changes_b = std::fs::read_to_string(&mon_b).unwrap_or_default();
    assert!(
        !changes_a.contains("Deleted"),
        "A's kernel lost routes during B's restart:\n{changes_a}"
    );
    assert!(
        !changes_b
            .lines()
            .any(|l| l.starts_with("Deleted") && !l.contains("198.18.99.0/26")),
        "B's kernel lost routes across its restart:\n{changes_b}"
    );
    wait_until(&b, "the stale route gone", |r| !r.contains("198.18.99.0"));
    wait_routes(
        &b,
        false,
        &[
            "198.18.1.0/26 via 198.51.100.1 dev tunl0 onlink",
            "blackhole 198.18.2.0/26",
        ],
    );
}

/// The batch path reports each refused request by itself, and the others still happen.
#[test]
fn refused_requests_are_attributed() {
    use std::os::fd::AsRawFd;
    use wren::fib::netlink::{Netlink, Request, Table};
    use wren::route::{Hop, KernelRoute, Target};
    let mut lab = Lab::new("wk3");
    let (ns, _) = lab.pair();
    let via = |net: &str, gw: &str| {
        Request::Replace(KernelRoute {
            net: net.parse().unwrap(),
            metric: None,
            target: Target::Via(vec![Hop {
                gateway: gw.parse().unwrap(),
                oif: None,
                onlink: false,
            }]),
        })
    };
    let reqs = vec![
        via("198.18.1.0/26", "198.51.100.2"),
        via("198.18.2.0/26", "203.0.113.9"), // not on a connected subnet
        via("198.18.3.0/26", "198.51.100.2"),
    ];
    let nsfile = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
    let results = std::thread::spawn(move || {
        // SAFETY: moves only this new thread into the namespace.
        assert_eq!(
            unsafe { libc::setns(nsfile.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let mut nl = Netlink::open().expect("netlink");
        nl.batch(
            Table {
                id: 254,
                protocol: 12,
                family: None,
            },
            &reqs,
        )
    })
    .join()
    .expect("thread");
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(results[1].is_err(), "{results:?}");
    let r = routes(&ns, false);
    assert!(
        r.contains("198.18.1.0/26") && r.contains("198.18.3.0/26") && !r.contains("198.18.2.0/26"),
        "{r}"
    );
}

/// Calico runs `bird` and `bird6` side by side on one node, each owning one family's `proto
/// bird` routes: a FIB restricted to IPv4 neither reads, writes nor prunes IPv6 routes, and
/// one restricted to IPv6 leaves IPv4 alone, so each one's start-up sync keeps the other's.
#[test]
fn a_family_each_keeps_the_other_familys_routes() {
    use std::os::fd::AsRawFd;
    use wren::config::AddressFamily;
    use wren::fib::kernel::Fib;
    use wren::fib::netlink::Table;
    use wren::route::{KernelRoute, Target};

    let mut lab = Lab::new("wk10");
    let (ns, _) = lab.pair();
    let table = |family| Table {
        id: 254,
        protocol: 12,
        family: Some(family),
    };
    let blackhole = |net: &str| KernelRoute {
        net: net.parse().unwrap(),
        metric: None,
        target: Target::Blackhole,
    };
    let nsfile = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
    std::thread::spawn(move || {
        // SAFETY: moves only this new thread into the namespace.
        assert_eq!(
            unsafe { libc::setns(nsfile.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let v4 = blackhole("198.18.1.0/26");
        let v6 = blackhole("2001:db8:1::/122");
        let mut bird6 = Fib::open(table(AddressFamily::Ipv6)).expect("open the FIB");
        bird6.apply(vec![(v6.net, Some(v6.clone())), (v4.net, Some(v4.clone()))]);
        bird6.finish_sync();
        // bird starts after bird6: its sync must not take bird6's route.
        let mut bird = Fib::open(table(AddressFamily::Ipv4)).expect("open the FIB");
        bird.apply(vec![(v4.net, Some(v4.clone()))]);
        bird.finish_sync();
        bird.reconcile();
        // And a restarted bird6 sees only its own.
        let mut bird6 = Fib::open(table(AddressFamily::Ipv6)).expect("open the FIB");
        bird6.apply(vec![(v6.net, Some(v6))]);
        bird6.finish_sync();
        bird6.reconcile();
    })
    .join()
    .expect("thread");
    let (v4, v6) = (routes(&ns, false), routes(&ns, true));
    assert_eq!(v4.trim(), "blackhole 198.18.1.0/26", "{v4}");
    assert!(v6.starts_with("blackhole 2001:db8:1::/122"), "{v6}");
    assert_eq!(v6.lines().count(), 1, "{v6}");
}

/// Event-driven FIB: a route deleted behind wren's back comes back; a link going down takes
/// its next hop out (the ECMP route narrows, the route through it goes) and coming up puts
/// them back; a `tunl0` created after start moves IP-in-IP pool routes onto it.
#[test]
fn links_addresses_and_drift_are_followed() {
    let mut lab = Lab::new("wk4");
    let (a, _b, _c) = three_nodes(&mut lab);
    let p = lab.prefix.clone();
    wait_routes(
        &a,
        false,
        &[
            &format!("198.18.2.0/26 via 198.51.100.2 dev {p}ab"),
            &format!("198.18.3.0/26 via 203.0.113.3 dev {p}ac"),
        ],
    );
    let both_hops =
        |r: &str| r.contains("nexthop via 198.51.100.2") && r.contains("nexthop via 203.0.113.3");
    wait_until(&a, "the ECMP route", both_hops);

    // Drift: somebody deletes one of our routes.
    ip(&["-n", &a, "route", "del", "198.18.3.0/26", "proto", "bird"]);
    wait_routes(
        &a,
        false,
        &[&format!("198.18.3.0/26 via 203.0.113.3 dev {p}ac")],
    );

    // The link to C goes down: the route through it goes, the ECMP route keeps B only.
    ip(&["-n", &a, "link", "set", &format!("{p}ac"), "down"]);
    wait_until(&a, "C's hop gone", |r| {
        !r.contains("198.18.3.0/26") && r.contains("198.19.9.0/26 via 198.51.100.2")
    });
    // And comes back.
    ip(&["-n", &a, "link", "set", &format!("{p}ac"), "up"]);
    wait_routes(
        &a,
        false,
        &[&format!("198.18.3.0/26 via 203.0.113.3 dev {p}ac")],
    );
    wait_until(&a, "the ECMP route again", both_hops);

    // tunl0 appears after start: IP-in-IP pool routes move onto it, without a restart.
    tunl0(&a);
    wait_routes(
        &a,
        false,
        &["198.18.2.0/26 via 198.51.100.2 dev tunl0 onlink"],
    );
}

/// Waits until the namespace's IPv4 `proto bird` routes satisfy `ok`.
fn wait_until(ns: &str, what: &str, ok: impl Fn(&str) -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let r = routes(ns, false);
        if ok(&r) {
            return;
        }
        assert!(Instant::now() < end, "{ns}: {what} not seen in:\n{r}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Random churn (proptest): any sequence of wanted-route changes, in batches of any size,
/// leaves the kernel table exactly as the last wanted state — blackholes, single and
/// multipath routes, IPv4 and IPv6, replaced in place and withdrawn.
#[test]
fn random_churn_leaves_the_kernel_equal_to_the_rib() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as RunnerConfig, TestRunner};
    use std::collections::HashMap;
    use std::os::fd::AsRawFd;
    use wren::fib::kernel::Fib;
    use wren::fib::netlink::{Netlink, Table};
    use wren::route::{Hop, KernelRoute, Target};

    let mut lab = Lab::new("wk5");
    let (ns, _) = lab.pair();
    const TABLE: Table = Table {
        id: 254,
        protocol: 12,
        family: None,
    };
    let nsfile = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
    let outcome = std::thread::spawn(move || {
        // SAFETY: moves only this new thread into the namespace.
        assert_eq!(
            unsafe { libc::setns(nsfile.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        // 24 prefixes (16 IPv4, 8 IPv6); a change is (prefix, kind): 0 withdraw,
        // 1 blackhole, 2/3 via one neighbour address, 4 multipath over both.
        let route = |i: usize, kind: u8| -> Option<KernelRoute> {
            let (net, gws): (ipnet::IpNet, [&str; 2]) = if i < 16 {
                (
                    format!("198.18.{i}.0/26").parse().unwrap(),
                    ["198.51.100.2", "198.51.100.3"],
                )
            } else {
                (
                    format!("2001:db8:1:{i}::/122").parse().unwrap(),
                    ["2001:db8::2", "2001:db8::3"],
                )
            };
            let hop = |g: &str| Hop {
                gateway: g.parse().unwrap(),
                oif: None,
                onlink: false,
            };
            let target = match kind {
                0 => return None,
                1 => Target::Blackhole,
                2 => Target::Via(vec![hop(gws[0])]),
                3 => Target::Via(vec![hop(gws[1])]),
                _ => Target::Via(vec![hop(gws[0]), hop(gws[1])]),
            };
            Some(KernelRoute {
                net,
                metric: None,
                target,
            })
        };
        let mut runner = TestRunner::new(RunnerConfig {
            cases: 256,
            ..RunnerConfig::default()
        });
        let ops = proptest::collection::vec(((0usize..24, 0u8..5), 1usize..8), 1..120);
        runner.run(&ops, |ops| {
            let mut fib = Fib::open(TABLE).expect("open the FIB");
            // Start-up sync over at once: whatever an earlier case left goes.
            fib.finish_sync();
            let mut model: HashMap<ipnet::IpNet, KernelRoute> = HashMap::new();
            let mut batch = Vec::new();
            for ((i, kind), cut) in ops {
                let want = route(i, kind);
                let net = route(i, 1).map(|r| r.net).expect("a prefix");
                match &want {
                    Some(r) => model.insert(net, r.clone()),
                    None => model.remove(&net),
                };
                batch.push((net, want));
                if batch.len() >= cut {
                    fib.apply(std::mem::take(&mut batch));
                }
            }
            fib.apply(batch);
            let have = Netlink::open().expect("netlink").dump(TABLE).expect("dump");
            prop_assert_eq!(have.len(), model.len(), "{:?}", have);
            for r in &have {
                let want = model.get(&r.net);
                prop_assert!(
                    want.is_some_and(|w| w.satisfied_by(r)),
                    "{:?} vs {:?}",
                    r,
                    want
                );
            }
            prop_assert_eq!(fib.stats.errors, 0);
            Ok(())
        })
    })
    .join()
    .expect("thread");
    if let Err(e) = outcome {
        panic!("{e:?}");
    }
}

/// BIRD's `learn` (contract §3.2, §3.6): routes other protocols put in the table are learned.
/// A Felix workload /32 borrowed from another node's block is announced; one inside the
/// node's own block is not (aggregation), nor is a tunnel-device route over iBGP; learned
/// routes are never written back, and a deleted one is withdrawn.
#[test]
fn alien_routes_are_learned_and_exported_as_calico_does() {
    let mut lab = Lab::new("wk6");
    let (a, b, _c) = three_nodes(&mut lab);
    let p = lab.prefix.clone();
    wait_routes(&a, false, &["198.18.2.0/26"]);
    ip(&[
        "-n", &b, "link", "add", "cali1", "type", "veth", "peer", "name", "cali1p",
    ]);
    ip(&["-n", &b, "link", "set", "cali1", "up"]);
    // Felix's routes (protocol 80): a pod with an IP borrowed from A's block, a pod in B's
    // own block, and a tunnel route.
    for (net, dev) in [
        ("198.18.1.7/32", "cali1"),
        ("198.18.2.5/32", "cali1"),
        ("198.19.5.0/26", "tunl0"),
    ] {
        ip(&["-n", &b, "route", "add", net, "dev", dev, "proto", "80"]);
    }
    wait_routes(
        &a,
        false,
        &[&format!("198.18.1.7 via 198.51.100.2 dev {p}ab")],
    );
    let shown = lab.nodes[1].ask("show route").expect("B answers");
    assert!(
        shown.contains("198.18.1.7/32      dev cali1 [kernel1 "),
        "{shown}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let at_a = routes(&a, false);
    assert!(!at_a.contains("198.18.2.5"), "inside B's block:\n{at_a}");
    assert!(!at_a.contains("198.19.5.0"), "a tunnel route:\n{at_a}");
    // Never written back: B's table has only Felix's route for it.
    let at_b = routes(&b, false);
    assert!(!at_b.contains("198.18.1.7"), "{at_b}");
    // Felix removes the pod: A withdraws the /32.
    ip(&[
        "-n",
        &b,
        "route",
        "del",
        "198.18.1.7/32",
        "dev",
        "cali1",
        "proto",
        "80",
    ]);
    wait_until(&a, "the /32 withdrawn", |r| !r.contains("198.18.1.7"));
}

/// A reload that changes a pool's encapsulation rewrites its kernel routes in place.
#[test]
fn reload_rewrites_routes_when_encapsulation_changes() {
    let mut lab = Lab::new("wk7");
    let (_a, b, _c) = three_nodes(&mut lab);
    let p = lab.prefix.clone();
    wait_routes(
        &b,
        false,
        &["198.18.1.0/26 via 198.51.100.1 dev tunl0 onlink"],
    );
    let file = lab.dir.join("b.toml");
    let text = std::fs::read_to_string(&file).expect("b's config");
    let plain = text.replace("encapsulation = \"ipip\"", "encapsulation = \"none\"");
    assert_ne!(text, plain);
    std::fs::write(&file, plain).expect("write b's config");
    let reply = lab.nodes[1].ask("configure").expect("B answers");
    assert!(reply.contains("Reconfigured"), "{reply}");
    wait_routes(
        &b,
        false,
        &[&format!("198.18.1.0/26 via 198.51.100.1 dev {p}ba")],
    );
}

/// RFC 4271 §9.1.2.1: A hears the anycast block 198.19.9.0/26 from C over iBGP (the shorter
/// AS path: the better route) and from B over eBGP. When A's link to C goes down, C's next
/// hop no longer resolves while the session still stands (a long hold time): A chooses B's
/// path and installs it, rather than keeping C's unreachable one. When the link is back, C's
/// path takes over again.
#[test]
fn unreachable_next_hop_gives_way_to_a_reachable_path() {
    let mut lab = Lab::new("wk9");
    let (a, b) = lab.pair();
    let c = lab.third(&a);
    let p = lab.prefix.clone();
    let long_hold = |c: String| c.replace("hold_time = 9", "hold_time = 240");
    let a_conf = config(
        "198.51.100.1",
        &[],
        &[("198.51.100.2", 65002), ("203.0.113.3", 64512)],
    );
    lab.start(&a, "a", &long_hold(a_conf), &[]);
    let b_conf = config(
        "198.51.100.2",
        &["198.19.9.0/26"],
        &[("198.51.100.1", 64512)],
    );
    let b_conf = b_conf.replace("asn = 64512\noriginate", "asn = 65002\noriginate");
    lab.start(&b, "b", &b_conf, &[]);
    let c_conf = config("203.0.113.3", &["198.19.9.0/26"], &[("203.0.113.1", 64512)]);
    lab.start(&c, "c", &long_hold(c_conf), &[]);
    let via_c = format!("198.19.9.0/26 via 203.0.113.3 dev {p}ac");
    let via_b = format!("198.19.9.0/26 via 198.51.100.2 dev {p}ab");
    wait_routes(&a, false, &[&via_c]);
    // B's path is there, and loses on its longer AS path.
    let end = Instant::now() + Duration::from_secs(30);
    while !lab.nodes[0]
        .ask("show route 198.19.9.0/26")
        .is_some_and(|r| r.contains("via 198.51.100.2"))
    {
        assert!(Instant::now() < end, "B's path never reached A");
        std::thread::sleep(Duration::from_millis(100));
    }
    ip(&["-n", &a, "link", "set", &format!("{p}ac"), "down"]);
    wait_routes(&a, false, &[&via_b]);
    let shown = lab.nodes[0].ask("show protocols").expect("A answers");
    assert!(
        shown.lines().filter(|l| l.contains("Established")).count() == 2,
        "both sessions still up:\n{shown}"
    );
    ip(&["-n", &a, "link", "set", &format!("{p}ac"), "up"]);
    wait_routes(&a, false, &[&via_c]);
}

/// Calico 3.32's route priority and a `reachableBy` ToR, as BIRD writes them: A reaches B's
/// address 198.19.255.254 (on B's loopback) only through its static route `via
/// 198.51.100.2`, which it writes to the kernel; B's routes come with that address as next
/// hop and are written through the gateway (`gateway recursive`). With
/// `normal_route_priority = 1024` on A and B: B's block comes with LOCAL_PREF
/// 2147483647 − 1024 and is written with metric 1024; Felix's route inside B's block with
/// metric 512 is announced (the `calico_aggr` escape) with LOCAL_PREF 2147483647 − 512 and
/// written with metric 512; C runs as a ≤ 3.31 node (LOCAL_PREF 100), so its block is
/// written with metric 2147483547. Own blackholes and the static route carry no metric.
#[test]
fn route_priority_metrics_and_reachable_by_route() {
    let mut lab = Lab::new("wk10");
    let (a, b) = lab.pair();
    let c = lab.third(&a);
    let p = lab.prefix.clone();
    let tor = "198.19.255.254";
    ip(&["-n", &b, "addr", "add", &format!("{tor}/32"), "dev", "lo"]);
    let head = |id: &str, block: &str, extra: &str| {
        format!(
            "router_id = \"{id}\"\nasn = 64512\noriginate = [\"{block}\"]\n{extra}\
             [[pool]]\ncidr = \"198.18.0.0/16\"\n\
             [defaults]\nconnect_delay = 1\nhold_time = 9\n"
        )
    };
    let peer =
        |addr: &str, more: &str| format!("[[peer]]\naddress = \"{addr}\"\nasn = 64512\n{more}");
    let a_config = format!(
        "{}{}{}",
        head(
            "198.51.100.1",
            "198.18.1.0/26",
            &format!(
                "normal_route_priority = 1024\n\
                 [[static_route]]\nprefix = \"{tor}/32\"\nvia = \"198.51.100.2\"\n"
            ),
        ),
        peer(tor, ""),
        peer("203.0.113.3", ""),
    );
    lab.start(&a, "a", &a_config, &[]);
    let b_config = format!(
        "{}{}",
        head(
            "198.51.100.2",
            "198.18.2.0/26",
            "normal_route_priority = 1024\n"
        ),
        peer("198.51.100.1", &format!("source_address = \"{tor}\"\n")),
    );
    lab.start(&b, "b", &b_config, &[]);
    lab.start(
        &c,
        "c",
        &format!(
            "{}{}",
            head("203.0.113.3", "198.18.3.0/26", ""),
            peer("203.0.113.1", "")
        ),
        &[],
    );
    ip(&[
        "-n", &b, "link", "add", "cali1", "type", "veth", "peer", "name", "cali1p",
    ]);
    ip(&["-n", &b, "link", "set", "cali1", "up"]);
    ip(&[
        "-n",
        &b,
        "route",
        "add",
        "198.18.2.5/32",
        "dev",
        "cali1",
        "proto",
        "80",
        "metric",
        "512",
    ]);
    let r = wait_routes(
        &a,
        false,
        &[
            &format!("{tor} via 198.51.100.2 dev {p}ab"),
            &format!("198.18.2.0/26 via 198.51.100.2 dev {p}ab metric 1024"),
            &format!("198.18.2.5 via 198.51.100.2 dev {p}ab metric 512"),
            &format!("198.18.3.0/26 via 203.0.113.3 dev {p}ac metric 2147483547"),
            "blackhole 198.18.1.0/26",
        ],
    );
    for line in r.lines() {
        let own = line.starts_with("blackhole") || line.starts_with(tor);
        assert!(!own || !line.contains("metric"), "{r}");
    }
    // A's block goes to B with LOCAL_PREF 2147483647 − 1024: B writes it with metric 1024.
    wait_routes(
        &b,
        false,
        &[
            "198.18.1.0/26 via 198.51.100.1 dev ",
            "blackhole 198.18.2.0/26",
        ],
    );
    let at_b = routes(&b, false);
    assert!(
        (at_b.lines()).any(|l| l.starts_with("198.18.1.0/26") && l.contains("metric 1024")),
        "{at_b}"
    );
}
