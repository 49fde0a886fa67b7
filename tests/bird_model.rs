//! BIRD's language as wren's model (issue 15): every configuration of the corpus in
//! tests/bird/ either becomes a model or is refused at the `FILE:LINE:COL` of the statement
//! the model cannot carry; the model holds what matters in each scenario (peers, AS, blocks,
//! services, pools, communities, filters, session settings); the TOML `wrenc convert`
//! prints reads back to the same model; a filter changed into something the model cannot
//! carry is refused at its place.
//!
//!     cargo test --test bird_model          # no root, no namespaces, no lock
//!
//! BIRD 1.6.8 (tests/peers/install.sh) checks the hand-written extra scenario, as
//! tests/bird_config.rs does for the generated ones.

mod harness;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::peers::bird16_dir;
use ipnet::IpNet;
use wren::config::bird::{Family, family_of};
use wren::config::{
    AnyCommunity, Config, Encapsulation, Error, FilterRule, MatchOperator, NextHopMode, Peer,
    RuleAction, Source, StaticRoute, diff::diff, toml, write,
};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bird")
}

/// The main file of a scenario directory (`bird.cfg`, or `bird6.cfg` for IPv6).
fn main_file(dir: &Path) -> PathBuf {
    let v4 = dir.join("bird.cfg");
    if v4.exists() {
        v4
    } else {
        dir.join("bird6.cfg")
    }
}

fn convert(file: &Path) -> Result<Config, Error> {
    Source::Bird(file.to_path_buf(), family_of(file)).load()
}

fn model(shape: &str, scenario: &str) -> Config {
    let file = main_file(&corpus().join(shape).join(scenario));
    convert(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// `FILE:LINE:COL` of an error, the file relative to `dir`.
fn place(e: &Error, dir: &Path) -> String {
    let file = e.file.as_deref().map(Path::new).unwrap_or(Path::new("?"));
    let rel = file.strip_prefix(dir).unwrap_or(file);
    let (line, col) = e.at.unwrap_or((0, 0));
    format!("{}:{line}:{col}", rel.display())
}

/// A copy of a scenario in a fresh directory, each file passed through `edit`.
fn edited_copy(
    shape: &str,
    scenario: &str,
    tag: &str,
    edit: impl Fn(&str, String) -> String,
) -> PathBuf {
    let from = corpus().join(shape).join(scenario);
    let to = std::env::temp_dir().join(format!(
        "wren-birdmodel.{}.{shape}.{scenario}.{tag}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(&from).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(to.join(&name), edit(&name, text)).unwrap();
    }
    to
}

/// Every scenario of both Calico shapes and the hand-written extras.
fn scenarios() -> Vec<PathBuf> {
    let shapes = ["v3.31", "v3.32", "extra"].map(|s| corpus().join(s));
    let mut out: Vec<PathBuf> = (shapes.iter())
        .flat_map(|s| std::fs::read_dir(s).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    assert!(out.len() >= 29, "corpus incomplete: {out:?}");
    out
}

/// What the model cannot carry, by scenario: where the refusal points.
fn refused_at(dir: &Path) -> Option<&'static str> {
    let name = dir
        .strip_prefix(corpus())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    Some(match name.as_str() {
        // `log syslog …`: wren logs to stderr.
        "extra/all-constructs" => "bird.cfg:4:1",
        // A static protocol with an import filter.
        "extra/semantics" => "bird.cfg:7:3",
        _ => return None,
    })
}

#[test]
fn the_whole_corpus_converts_or_is_refused_at_its_place() {
    for dir in scenarios() {
        let got = convert(&main_file(&dir));
        match (refused_at(&dir), got) {
            (None, Ok(_)) => {}
            (None, Err(e)) => panic!("{}: {e}", dir.display()),
            (Some(at), Ok(_)) => panic!("{}: converts, want a refusal at {at}", dir.display()),
            (Some(at), Err(e)) => assert_eq!(place(&e, &dir), at, "{}: {e}", dir.display()),
        }
    }
}

/// The model written as TOML and read back.
fn round_trip(m: &Config) -> Config {
    let text = write::to_toml(m).unwrap();
    toml::parse(Some("converted.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn the_toml_convert_prints_reads_back_to_the_same_model() {
    let files: Vec<PathBuf> = (scenarios().iter())
        .filter(|d| refused_at(d).is_none())
        .map(|d| main_file(d))
        .collect();
    assert!(files.len() >= 25);
    // tor-ebgp in both shapes (its reachableBy route), mesh3 in 3.32 (the coupling).
    for carries in ["v3.31/tor-ebgp", "v3.32/tor-ebgp", "v3.32/mesh3"] {
        assert!(files.contains(&corpus().join(carries).join("bird.cfg")));
    }
    for f in &files {
        let m = convert(f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(round_trip(&m), m, "{}", f.display());
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn peer<'a>(m: &'a Config, name: &str) -> &'a Peer {
    (m.peers.iter())
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no peer {name} in {:?}", m.peers))
}

#[test]
fn mesh_of_three_in_both_shapes() {
    for shape in ["v3.31", "v3.32"] {
        let m = model(shape, "mesh3");
        assert_eq!(m.router_id.to_string(), "10.192.0.3");
        assert_eq!(m.asn, 64512);
        assert_eq!(m.originate, vec![net("192.168.20.64/26")]);
        assert!(m.services.is_empty());
        assert_eq!(m.pools.len(), 1, "{shape}");
        assert_eq!(m.pools[0].cidr, net("192.168.0.0/16"));
        assert_eq!(m.pools[0].encapsulation, Encapsulation::None);
        assert!(m.pools[0].bgp_export);
        assert_eq!(m.max_paths, 16, "merge paths on");
        assert!(m.kernel.enabled && m.kernel.learn);
        // Calico 3.32's metric ↔ LOCAL_PREF prelude, kernel filter and `calico_aggr` escape.
        let priority = (shape == "v3.32").then_some(1024);
        assert_eq!(m.normal_route_priority, priority, "{shape}");
        assert!(m.static_routes.is_empty());
        assert_eq!(m.kernel.startup_wait, 240, "graceful restart: BIRD's wait");
        assert_eq!(m.peers.len(), 2);
        for (name, address, passive) in [
            ("Mesh_10_192_0_2", "10.192.0.2", false),
            ("Mesh_10_192_0_4", "10.192.0.4", true),
        ] {
            let p = peer(&m, name);
            assert_eq!((p.address, p.port, p.asn), (ip(address), 179, 64512));
            let s = &p.settings;
            assert_eq!(s.passive, passive, "{shape} {name}");
            assert_eq!(s.source_address, Some(ip("10.192.0.3")));
            assert_eq!(s.ttl, Some(64), "iBGP multihop");
            assert_eq!(s.ttl_security, None);
            assert_eq!(s.local_asn, None);
            assert_eq!(
                (s.connect_delay, s.connect_retry, s.error_wait),
                (2, 5, [5, 30])
            );
            assert_eq!((s.hold_time, s.keepalive), (240, None));
            assert!(s.graceful_restart);
            assert_eq!(s.restart_time, 120);
            assert_eq!(s.next_hop, NextHopMode::Auto);
            assert!(s.filters.is_empty());
        }
    }
}

#[test]
fn password_and_graceful_restart_time() {
    for shape in ["v3.31", "v3.32"] {
        let m = model(shape, "mesh-password-gr");
        for p in &m.peers {
            assert_eq!(
                p.settings.password.as_deref(),
                Some("s3cr3t-mesh"),
                "{shape}"
            );
            assert_eq!(p.settings.restart_time, 300, "{shape}");
        }
    }
}

#[test]
fn route_reflector_and_its_client() {
    for shape in ["v3.31", "v3.32"] {
        let m = model(shape, "rr-node");
        assert_eq!(
            m.cluster_id.map(|c| c.to_string()).as_deref(),
            Some("244.0.0.1")
        );
        assert_eq!(m.peers.len(), 3);
        assert!(m.peers.iter().all(|p| p.settings.rr_client), "{shape}");
        let c = model(shape, "rr-client");
        assert_eq!(c.cluster_id, None);
        assert!(c.peers.iter().all(|p| !p.settings.rr_client));
        assert_eq!(c.peers[0].address, ip("10.192.0.9"));
    }
}

#[test]
fn tor_ebgp_ttl_security_next_hop_local_as() {
    for shape in ["v3.31", "v3.32"] {
        let m = model(shape, "tor-ebgp");
        assert_eq!(m.asn, 65001, "the template's local as");
        // reachableBy: `route 10.192.0.254/32 via 10.192.0.1;` in the static protocol.
        assert_eq!(
            m.static_routes,
            vec![StaticRoute {
                prefix: net("10.192.0.254/32"),
                via: ip("10.192.0.1"),
            }],
            "{shape}"
        );
        assert_eq!(m.originate, vec![net("192.168.20.64/26")], "{shape}");
        assert_eq!(m.normal_route_priority, (shape == "v3.32").then_some(1024));
        let g = &peer(&m, "Global_10_192_0_254").settings;
        assert_eq!(
            (g.ttl_security, g.ttl),
            (Some(1), None),
            "ttl security on; multihop 1"
        );
        assert_eq!(g.next_hop, NextHopMode::Keep);
        assert_eq!(g.allow_local_as, 1);
        assert_eq!(g.local_asn, None);
        assert_eq!(g.keepalive, (shape == "v3.32").then_some(10));
        let n = &peer(&m, "Node_10_192_1_254").settings;
        assert_eq!(n.local_asn, Some(65002), "local as 65002 on one peer");
        assert_eq!(n.next_hop, NextHopMode::Myself);
        assert_eq!((n.ttl_security, n.ttl), (None, Some(64)), "eBGP multihop");
        assert_eq!(peer(&m, "Node_10_192_1_254").asn, 65000);
    }
}

#[test]
fn listen_address_and_port() {
    for shape in ["v3.31", "v3.32"] {
        let m = model(shape, "listen-port");
        assert_eq!(m.listen.addresses, vec![ip("10.192.0.3")]);
        assert_eq!(m.listen.port, 1790);
        let p = peer(&m, "Global_10_192_0_254_port_1790");
        assert_eq!(p.port, 1790);
    }
}

#[test]
fn services_are_told_from_blocks_by_the_filters() {
    for shape in ["v3.31", "v3.32"] {
        let m = model(shape, "services");
        assert_eq!(m.originate, vec![net("192.168.20.64/26")], "{shape}");
        assert_eq!(
            m.services,
            vec![
                net("10.96.0.0/12"),
                net("172.30.0.0/24"),
                net("203.0.113.7/32")
            ]
        );
    }
}

#[test]
fn communities_by_range() {
    let c = |s: &str| s.parse::<AnyCommunity>().unwrap();
    for shape in ["v3.31", "v3.32"] {
        let m = model(shape, "communities");
        assert_eq!(m.communities.len(), 2, "{shape}: {:?}", m.communities);
        assert_eq!(m.communities[0].prefix, net("192.168.0.0/16"));
        assert_eq!(m.communities[0].communities, vec![c("65000:7")]);
        assert_eq!(m.communities[1].prefix, net("192.168.20.0/24"));
        assert_eq!(
            m.communities[1].communities,
            vec![c("65000:100"), c("65000:200:300")]
        );
        assert_eq!(m.pools.len(), 1, "a community range is no pool");
    }
}

#[test]
fn pool_with_bgp_export_disabled() {
    for shape in ["v3.31", "v3.32"] {
        let m = model(shape, "disable-export");
        let p = m
            .pools
            .iter()
            .find(|p| p.cidr == net("10.10.0.0/16"))
            .unwrap();
        assert!(!p.bgp_export, "{shape}");
        assert!(m.originate.contains(&net("10.10.0.0/26")));
        let main = m
            .pools
            .iter()
            .find(|p| p.cidr == net("192.168.0.0/16"))
            .unwrap();
        assert!(main.bgp_export);
    }
}

fn encapsulation(m: &Config, cidr: &str) -> Encapsulation {
    let pool = m.pools.iter().find(|p| p.cidr == net(cidr));
    pool.unwrap_or_else(|| panic!("no pool {cidr}"))
        .encapsulation
}

#[test]
fn pools_with_their_encapsulation() {
    for shape in ["v3.31", "v3.32"] {
        let m = model(shape, "ipip");
        let encap = |cidr: &str| encapsulation(&m, cidr);
        assert_eq!(encap("192.168.0.0/16"), Encapsulation::Ipip, "{shape}");
        assert_eq!(encap("172.16.0.0/16"), Encapsulation::IpipCrossSubnet);
        assert_eq!(encap("10.244.0.0/16"), Encapsulation::Vxlan);
        assert_eq!(m.pools.len(), 3, "the node subnet is no pool");
        assert_eq!(
            m.originate,
            vec![net("192.168.20.64/26"), net("172.16.1.0/26")]
        );
    }
}

#[test]
fn ipv6_with_and_without_peers() {
    for shape in ["v3.31", "v3.32"] {
        let m = model(shape, "ipv6-peers");
        assert_eq!(m.originate, vec![net("fd00:10:244:0:1::/122")]);
        assert_eq!(m.services, vec![net("fd00:96::/112")]);
        let encap = |cidr: &str| encapsulation(&m, cidr);
        assert_eq!(encap("fd00:10:244::/64"), Encapsulation::None);
        assert_eq!(encap("fd00:10:245::/64"), Encapsulation::Vxlan);
        assert_eq!(m.peers.len(), 3);
        let g = &peer(&m, "Global_2001_db8__1").settings;
        assert_eq!(g.ttl_security, Some(2));
        let none = model(shape, "ipv6-none");
        assert!(none.peers.is_empty() && none.originate.is_empty());
        assert!(none.kernel.enabled);
    }
}

#[test]
fn bgpfilter_functions_become_filters_and_peer_lists() {
    let m = model("extra", "bgpfilter-rules");
    assert_eq!(
        m.filters
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        vec!["tor-policy", "empty"]
    );
    let tor = &m.filters[0];
    assert_eq!(tor.import_v4.len(), 3);
    assert_eq!(
        tor.import_v4[0],
        FilterRule {
            action: RuleAction::Accept,
            cidr: Some((MatchOperator::In, net("10.0.0.0/8"))),
            prefix_length: Some((Some(16), Some(24))),
            from_peers: false,
            interface: None,
            ..FilterRule::any(RuleAction::Accept)
        }
    );
    assert_eq!(
        tor.import_v4[1].cidr,
        Some((MatchOperator::Equal, net("44.1.2.0/24")))
    );
    assert!(tor.import_v4[1].from_peers);
    assert_eq!(
        tor.import_v4[2].cidr,
        Some((MatchOperator::NotIn, net("44.1.0.0/16")))
    );
    assert_eq!(tor.import_v4[2].action, RuleAction::Reject);
    assert_eq!(tor.export_v4[0].interface.as_deref(), Some("eth*"));
    assert_eq!(
        tor.export_v4[1].cidr.map(|c| c.0),
        Some(MatchOperator::NotEqual)
    );
    assert!(m.filters[1].import_v4.is_empty() && m.filters[1].export_v4.is_empty());
    assert_eq!(
        peer(&m, "Global_10_192_0_254").settings.filters,
        vec!["tor-policy".to_string(), "empty".to_string()]
    );
    assert_eq!(
        peer(&m, "Mesh_10_192_0_2").settings.filters,
        vec!["empty".to_string()]
    );
}

#[test]
fn the_extra_bgpfilter_scenario_passes_bird_1_6_8() {
    let out = Command::new(bird16_dir().join("bird"))
        .args(["-p", "-c"])
        .arg(corpus().join("extra/bgpfilter-rules/bird.cfg"))
        .current_dir("/")
        .output()
        .unwrap_or_else(|e| panic!("BIRD 1.6.8 missing (run tests/peers/install.sh): {e}"));
    // Stock BIRD has no `krt_tunnel`: the file has only `krt_tunnel = ""`, which it refuses
    // at its own place, so the check runs on a copy without it.
    let copy = edited_copy("extra", "bgpfilter-rules", "stock", |_, t| {
        t.replace("krt_tunnel = \"\";", "print \"krt_tunnel\";")
    });
    let stock = Command::new(bird16_dir().join("bird"))
        .args(["-p", "-c"])
        .arg(copy.join("bird.cfg"))
        .current_dir("/")
        .output()
        .unwrap();
    std::fs::remove_dir_all(&copy).unwrap();
    assert!(
        stock.status.success(),
        "{}",
        String::from_utf8_lossy(&stock.stderr)
    );
    assert!(!out.status.success(), "stock BIRD knows no krt_tunnel");
}

#[test]
fn broken_inputs_are_refused_at_their_place() {
    let mut seen = 0;
    for e in std::fs::read_dir(corpus().join("broken")).unwrap() {
        let dir = e.unwrap().path();
        let expect = std::fs::read_to_string(dir.join("expect")).unwrap();
        let err = convert(&dir.join("bird.cfg"))
            .err()
            .unwrap_or_else(|| panic!("{} converts", dir.display()));
        assert_eq!(place(&err, &dir), expect.trim(), "{}: {err}", dir.display());
        seen += 1;
    }
    assert_eq!(seen, 8);
}

#[test]
fn filters_the_model_cannot_carry_are_refused_at_their_place() {
    // (shape, file, line changed, into, refused at, message contains)
    let cases = [
        // Export: routes through eth* held back from every peer, which no model rule says.
        (
            "v3.32",
            "bird_ipam.cfg",
            "  reject_local_routes();\n",
            "  reject_local_routes();\n  if ifname ~ \"eth*\" then reject;\n",
            "bird.cfg:52:3",
            "export filter of Mesh_10_192_0_2",
        ),
        // Export: a prefix inside a pool held back only on the way out.
        (
            "v3.31",
            "bird_ipam.cfg",
            "  calico_aggr();\n",
            "  calico_aggr();\n  if net ~ 192.168.7.0/24 then reject;\n",
            "bird.cfg:45:3",
            "192.168.7.0/24",
        ),
        // Kernel: one part of a pool tunnelled, the rest not.
        (
            "v3.32",
            "bird_ipam.cfg",
            "    krt_tunnel = \"\";\n",
            "    if net ~ 192.168.64.0/18 then krt_tunnel = \"tunl0\"; else krt_tunnel = \"\";\n",
            "bird.cfg:18:3",
            "kernel export filter writes through tunl0",
        ),
        // Import: routes from a peer refused.
        (
            "v3.31",
            "bird.cfg",
            "  import all;        # trust the mesh",
            "  import filter { if net ~ 192.168.0.0/16 then reject; accept; };",
            "bird.cfg:44:3",
            "import filter of Mesh_10_192_0_2 rejects",
        ),
        // The 3.32 prelude without its default metric: `2147483647 - krt_metric` on an
        // unset metric is a runtime error, so BIRD announces none of the node's own routes.
        (
            "v3.32",
            "bird.cfg",
            "      if (!defined(krt_metric)) then { krt_metric = 1024; }\n",
            "",
            "bird.cfg:52:3",
            "keeps back the static route 192.168.20.64/26",
        ),
        // A ≤3.31-shaped peer among 3.32 functions: without the prelude the node's routes
        // go with LOCAL_PREF 100 (and krt_metric is unset, which sorts below 1024, so
        // `net ~ BLOCK && krt_metric < 1024` announces every route inside the block).
        (
            "v3.32",
            "bird.cfg",
            "protocol bgp Mesh_10_192_0_4 from bgp_template {",
            "protocol bgp Mesh_10_192_0_9 from bgp_template {\n  multihop;\n  \
             neighbor 10.192.0.9 as 64512;\n  \
             import filter { if bgp_local_pref > 2147482623 then preference = 200; accept; };\n  \
             export filter { calico_export_to_bgp_peers(true); reject; };\n}\n\
             protocol bgp Mesh_10_192_0_4 from bgp_template {",
            "bird.cfg:67:3",
            "export filter of Mesh_10_192_0_9 announces the static route 192.168.20.64/26 with \
             LOCAL_PREF 100, wren's model would announce it with 2147482623",
        ),
        // The same peer with `import all`: an elevated route keeps preference 100 there,
        // which the 3.32 coupling the other filters show does not carry.
        (
            "v3.32",
            "bird.cfg",
            "protocol bgp Mesh_10_192_0_4 from bgp_template {",
            "protocol bgp Mesh_10_192_0_9 from bgp_template {\n  multihop;\n  \
             neighbor 10.192.0.9 as 64512;\n}\n\
             protocol bgp Mesh_10_192_0_4 from bgp_template {",
            "bird.cfg:63:1",
            "LOCAL_PREF 2147483547 preference 100, wren's model would give it 200",
        ),
        // A 3.32 prelude that gives the node's routes another LOCAL_PREF than the other
        // peer's and the kernel filter's priority.
        (
            "v3.32",
            "bird.cfg",
            "      bgp_local_pref = 2147483647 - krt_metric;\n    }\n    calico_export_to_bgp_peers(true);\n    reject;\n  };  # only workload routes\n  passive on;",
            "      bgp_local_pref = 2147483646 - krt_metric;\n    }\n    calico_export_to_bgp_peers(true);\n    reject;\n  };  # only workload routes\n  passive on;",
            "bird.cfg:73:3",
            "with LOCAL_PREF 2147482622, wren's model would announce it with 2147482623",
        ),
        // A 3.32 kernel filter that writes BGP routes with a fixed metric.
        (
            "v3.32",
            "bird_ipam.cfg",
            "      krt_metric = 2147483647 - bgp_local_pref;\n",
            "      krt_metric = 1024;\n",
            "bird.cfg:18:3",
            "with metric 1024, wren's model would write it with metric 2147483547",
        ),
        // A community only on the node's own static routes: wren's ranges add by prefix.
        (
            "v3.32",
            "bird.cfg",
            "function apply_communities ()\n{\n}",
            "function apply_communities ()\n{\n  if source = RTS_STATIC then bgp_community.add((1, 1));\n}",
            "bird.cfg:53:3",
            "announces the static route 192.168.20.64/26 with communities 1:1, wren's model would announce it:",
        ),
        // A session option without a counterpart.
        (
            "v3.32",
            "bird.cfg",
            "  connect delay time 2;",
            "  connect delay time 2;\n  startup hold time 30;",
            "bird.cfg:38:3",
            "startup hold time",
        ),
    ];
    for (shape, file, from, to, at, says) in cases {
        let (dir, got) = convert_edited(shape, "sabotage", &[(file, from, to)]);
        let err = got.expect_err("the changed filter converts");
        assert_eq!(place(&err, &dir), at, "{to}: {err}");
        assert!(err.message.contains(says), "{to}: {err}");
    }
}

#[test]
fn the_family_follows_calicos_file_names() {
    assert_eq!(
        family_of(Path::new("/etc/calico/confd/config/bird6.cfg")),
        Family::V6
    );
    assert_eq!(
        family_of(Path::new("/etc/calico/confd/config/.bird6.cfg1234")),
        Family::V6
    );
    assert_eq!(
        family_of(Path::new("/etc/calico/confd/config/.bird.cfg1234")),
        Family::V4
    );
    assert_eq!(family_of(Path::new("bird.cfg")), Family::V4);
}

/// mesh3 of `shape` with `edits` (file, text, replacement) applied, converted; the copy's
/// directory (removed again) for the error's place.
fn convert_edited(
    shape: &str,
    tag: &str,
    edits: &[(&str, &str, &str)],
) -> (PathBuf, Result<Config, Error>) {
    let dir = edited_copy(shape, "mesh3", tag, |name, mut text| {
        for (file, from, to) in edits {
            if name == *file {
                assert!(text.contains(from), "{name} has no {from:?}");
                text = text.replacen(from, to, 1);
            }
        }
        text
    });
    let got = convert(&dir.join("bird.cfg"));
    std::fs::remove_dir_all(&dir).unwrap();
    (dir, got)
}

/// mesh3 (3.32) with `edits` applied, as the model.
fn mesh3_edited(tag: &str, edits: &[(&str, &str, &str)]) -> Config {
    convert_edited("v3.32", tag, edits)
        .1
        .unwrap_or_else(|e| panic!("{e}"))
}

/// confd's rewrite and SIGHUP is one diff of the model (contract §6.2): a new block is a
/// policy change that resets no session, a new password resets that peer only, a new peer
/// is added and nothing else moves.
#[test]
fn a_confd_rewrite_is_one_diff_of_the_model() {
    let running = model("v3.32", "mesh3");
    let block = "  if ( net ~ 192.168.20.64/26 ) then { reject; }\n";
    let new = mesh3_edited(
        "block",
        &[
            (
                "bird_aggr.cfg",
                "  route 192.168.20.64/26 blackhole;\n",
                "  route 192.168.20.64/26 blackhole;\n  route 192.168.21.0/26 blackhole;\n",
            ),
            (
                "bird_aggr.cfg",
                block,
                "  if ( net ~ 192.168.20.64/26 ) then { reject; }\n\
                 if ( net = 192.168.21.0/26 ) then { accept; }\n\
                 if ( net ~ 192.168.21.0/26 && krt_metric < 1024 ) then { accept; }\n\
                 if ( net ~ 192.168.21.0/26 ) then { reject; }\n",
            ),
        ],
    );
    assert_eq!(new.originate.len(), 2);
    let c = diff(&running, &new).unwrap();
    assert!(c.policy && !c.pools);
    assert!(c.added.is_empty() && c.removed.is_empty() && c.changed.is_empty());

    let new = mesh3_edited(
        "password",
        &[(
            "bird.cfg",
            "  passive on; # the peer dials\n",
            "  passive on; # the peer dials\n  password \"new\";\n",
        )],
    );
    let c = diff(&running, &new).unwrap();
    assert!(!c.policy && c.added.is_empty());
    assert_eq!(c.changed.len(), 1);
    assert_eq!(c.changed[0].new.name, "Mesh_10_192_0_4");
    assert!(c.changed[0].reset);

    // A copy of the first mesh peer, for another node.
    let text = std::fs::read_to_string(corpus().join("v3.32/mesh3/bird.cfg")).unwrap();
    let first = &text[text.find("protocol bgp Mesh_10_192_0_2").unwrap()
        ..text.find("protocol bgp Mesh_10_192_0_4").unwrap()];
    let mesh = |a: &str| {
        first
            .replace("10.192.0.2", a)
            .replace("Mesh_10_192_0_2", &format!("Mesh_{}", a.replace('.', "_")))
    };
    let added = format!("  passive on; # the peer dials\n}}\n{}", mesh("10.192.0.9"));
    let new = mesh3_edited(
        "peer",
        &[("bird.cfg", "  passive on; # the peer dials\n}\n", &added)],
    );
    let c = diff(&running, &new).unwrap();
    assert_eq!(
        c.added.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        vec!["Mesh_10_192_0_9"]
    );
    assert!(c.changed.is_empty() && c.removed.is_empty() && !c.policy);
}

/// Shapes of Calico's master renderer (projectcalico/calico confd/tests/compiled_templates):
/// a /32 block aggregated but not originated, and pools whose routes Felix programs (the
/// kernel filter rejects the whole pool, own blocks included).
#[test]
fn calico_master_shapes_convert() {
    let m = mesh3_edited(
        "slash32",
        &[(
            "bird_aggr.cfg",
            "  if ( net ~ 192.168.20.64/26 ) then { reject; }\n",
            "  if ( net ~ 192.168.20.64/26 ) then { reject; }\n\
             # Block 10.2.0.1/32 is implicitly confirmed.\n\
             if ( net = 10.2.0.1/32 ) then { accept; }\n\
             if ( net ~ 10.2.0.1/32 && krt_metric < 1024 ) then { accept; }\n\
             if ( net ~ 10.2.0.1/32 ) then { reject; }\n",
        )],
    );
    assert_eq!(m.originate, vec![net("192.168.20.64/26")]);
    let single = m.pools.iter().find(|p| p.cidr == net("10.2.0.1/32"));
    assert!(single.is_some_and(|p| p.bgp_export), "{:?}", m.pools);

    let m = mesh3_edited(
        "felix",
        &[(
            "bird_ipam.cfg",
            "    krt_tunnel = \"\";\n    accept;\n",
            "    reject; # Cluster routes are handled by Felix.\n",
        )],
    );
    assert_eq!(m.originate, vec![net("192.168.20.64/26")], "still a block");
    assert!(m.services.is_empty());
    assert_eq!(encapsulation(&m, "192.168.0.0/16"), Encapsulation::Vxlan);
}

/// `wrenc convert` through the real binary: the TOML it prints is the model; a refusal is
/// `wrenc: FILE:LINE:COL: message` and exit 1; `--ipv6` reads a file of any name as bird6.
#[test]
fn wrenc_convert_prints_the_model_and_refuses_at_its_place() {
    let wrenc = |args: &[&Path]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wrenc"))
            .arg("convert")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let file = corpus().join("v3.31/ipip/bird.cfg");
    let (code, stdout, stderr) = wrenc(&[&file]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("# wren's configuration, converted from "));
    assert_eq!(toml::parse(None, &stdout), Ok(convert(&file).unwrap()));

    let refused = corpus().join("extra/all-constructs");
    let (code, stdout, stderr) = wrenc(&[&refused.join("bird.cfg")]);
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty());
    let want = format!("wrenc: {}:4:1: ", refused.join("bird.cfg").display());
    assert!(stderr.starts_with(&want), "{stderr}");

    let v6 = edited_copy("v3.32", "ipv6-peers", "renamed", |_, t| t);
    std::fs::rename(v6.join("bird6.cfg"), v6.join("main.cfg")).unwrap();
    let (code, stdout, stderr) = wrenc(&[v6.join("main.cfg").as_path(), Path::new("--ipv6")]);
    let (plain, _, _) = wrenc(&[&v6.join("main.cfg")]);
    std::fs::remove_dir_all(&v6).unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("Global_2001_db8__1"));
    assert_eq!(
        plain,
        Some(1),
        "read as IPv4, bird6's addresses are refused"
    );
}

/// A filter that names the default route (so every address lies inside some prefix it
/// writes) is still probed and converts.
#[test]
fn a_filter_naming_the_default_route_still_converts() {
    let m = mesh3_edited(
        "default",
        &[(
            "bird_ipam.cfg",
            "  reject_local_routes();\n",
            "  if net = 0.0.0.0/0 then reject;\n  reject_local_routes();\n",
        )],
    );
    assert_eq!(m.originate, vec![net("192.168.20.64/26")]);
    assert_eq!(m.pools.len(), 1);
}

/// Calico's `ipv4NormalRoutePriority` set to 2000: confd writes 2000 where 1024 was (the
/// prelude's default metric, the kernel filter's, `calico_aggr`'s bound) and
/// 2147483647 − 2000 in the import filter; the model carries 2000. One filter left at
/// 1024 is refused.
#[test]
fn a_configured_route_priority_is_carried_and_checked() {
    let dir = edited_copy("v3.32", "mesh3", "priority", |_, t| {
        t.replace("1024", "2000")
            .replace("2147482623", "2147481647")
    });
    let m = convert(&dir.join("bird.cfg")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.normal_route_priority, Some(2000));
    assert_eq!(round_trip(&m), m);
    let aggr = std::fs::read_to_string(dir.join("bird_aggr.cfg")).unwrap();
    std::fs::write(
        dir.join("bird_aggr.cfg"),
        aggr.replace("krt_metric < 2000", "krt_metric < 1024"),
    )
    .unwrap();
    let e = convert(&dir.join("bird.cfg")).expect_err("calico_aggr at another priority");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        e.message.contains("export filter of Mesh_10_192_0_2"),
        "{e}"
    );
}

/// Conditions confd never renders from a BGPFilter rule (template_funcs.go's
/// `filterStatement`), each written into one rule of the corpus's bgpfilter: the text it
/// replaces, its replacement, and where (v3.32's line:col) the refusal points.
const UNCALICO: [(&str, &str, &str); 4] = [
    // `P-`: prefixes around P, which no cidr/prefixLength says.
    ("{16,24} ]", "{16,24}, 192.0.2.0/24- ]", "44:6"),
    // Two `net` tests in one rule.
    (
        "(net = 44.1.3.0/24)",
        "(net != 44.3.0.0/16) && (net = 44.1.3.0/24)",
        "47:31",
    ),
    // A source other than RemotePeers.
    (
        "44.1.4.0/24)&&((defined(source))&&(source ~ [ RTS_BGP ]))",
        "44.1.4.0/24)&&((defined(source))&&(source ~ [ RTS_BGP, RTS_STATIC ]))",
        "48:49",
    ),
    // The next hop, which no BGPFilter rule tests.
    (
        "(net ~ [ 192.168.0.0/16{26,32} ])",
        "(defined(bgp_next_hop) && (bgp_next_hop ~ 10.192.0.0/16))",
        "57:8",
    ),
];

/// Each condition of [`UNCALICO`], written into a copy of both shapes' bgpfilter, is refused
/// at its own place.
#[test]
fn bgpfilter_conditions_beyond_confd_are_refused_at_their_place() {
    for (shape, shift) in [("v3.32", 0), ("v3.31", 3)] {
        for (n, (from, to, at)) in UNCALICO.iter().enumerate() {
            let dir =
                edited_copy(
                    shape,
                    "bgpfilter",
                    &format!("uncalico{n}"),
                    |file, text| match file {
                        "bird.cfg" => {
                            assert_eq!(text.matches(from).count(), 1, "{shape}: {from}");
                            text.replace(from, to)
                        }
                        _ => text,
                    },
                );
            let e = convert(&dir.join("bird.cfg")).unwrap_err();
            std::fs::remove_dir_all(&dir).unwrap();
            let (line, col) = at.split_once(':').unwrap();
            let line: u32 = line.parse::<u32>().unwrap() - shift;
            assert_eq!(
                place(&e, &dir),
                format!("bird.cfg:{line}:{col}"),
                "{shape} {n}: {e}"
            );
        }
    }
}

/// Both shapes' BGPFilter functions, as confd renders them, convert (prefix lengths, the
/// four cidr operators, source, interface, communities, the AS path, the priority,
/// operations), the BIRD functions and the model's rules decide alike on the probe routes
/// (`bgpfilter_probe`), and the model round-trips through TOML.
#[test]
fn corpus_bgpfilter_rules_convert_and_round_trip() {
    use wren::config::{Operation, RuleAction};
    for shape in ["v3.32", "v3.31"] {
        let m = model(shape, "bgpfilter");
        assert_eq!(round_trip(&m), m, "{shape}");
        let tor = &m.filters[0];
        assert_eq!(tor.name, "tor-in-out");
        let import = &tor.import_v4;
        assert_eq!(import.len(), 9, "{shape}: {import:?}");
        assert_eq!(import[0].cidr, Some((MatchOperator::In, net("10.0.0.0/8"))));
        assert_eq!(import[0].prefix_length, Some((Some(16), Some(24))));
        assert_eq!(import[1].prefix_length, Some((Some(12), Some(32))));
        assert_eq!(
            import[2].cidr,
            Some((MatchOperator::NotIn, net("44.1.0.0/16")))
        );
        assert_eq!(import[2].action, RuleAction::Reject);
        assert_eq!(
            import[3].cidr,
            Some((MatchOperator::Equal, net("44.1.3.0/24")))
        );
        assert_eq!(
            import[4].cidr,
            Some((MatchOperator::NotEqual, net("44.1.4.0/24")))
        );
        assert!(import[4].from_peers);
        assert_eq!(import[5].as_path_prefix, [65000]);
        assert_eq!(import[5].operations, [Operation::SetPriority(100)]);
        assert_eq!(import[6].community, Some("65000:100".parse().unwrap()));
        assert_eq!(import[6].operations, [Operation::SetPriority(256)]);
        assert_eq!(import[7].community, Some("65000:1:2".parse().unwrap()));
        assert_eq!(import[8], FilterRule::any(RuleAction::Reject));
        let export = &tor.export_v4;
        assert_eq!(export.len(), 3, "{shape}: {export:?}");
        assert_eq!(export[0].interface.as_deref(), Some("eth*"));
        assert_eq!(export[1].priority, Some(100));
        assert_eq!(
            export[1].operations,
            [
                Operation::AddCommunity("65001:200".parse().unwrap()),
                Operation::AddCommunity("65001:2:3".parse().unwrap()),
                Operation::PrependAsPath(vec![65001]),
            ]
        );
        assert_eq!(export[2].prefix_length, Some((Some(26), Some(32))));
        assert!(export[2].from_peers);
        assert_eq!(
            peer(&m, "Global_10_192_0_254").settings.filters,
            ["tor-in-out", "empty"]
        );
    }
}
