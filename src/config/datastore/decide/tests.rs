//! Table-driven tests of confd's decisions, from resources written as Calico stores them.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::*;
use crate::config::AnyCommunity;

const V3: &str = "/calico/resources/v3/projectcalico.org";

/// Resources from (key, JSON value) pairs, through the loader.
fn resources(entries: &[(String, Value)]) -> Resources {
    let mut r = Resources::default();
    for (key, value) in entries {
        let bytes = serde_json::to_vec(value).unwrap();
        assert_eq!(r.apply(key, Some(&bytes)), Ok(true), "{key}");
    }
    r
}

fn node(name: &str, ip: &str, bgp: Value, labels: Value) -> (String, Value) {
    let mut spec = json!({"ipv4Address": format!("{ip}/24")});
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), bgp) {
        spec.extend(extra);
    }
    (
        format!("{V3}/nodes/{name}"),
        json!({"kind": "Node", "apiVersion": "projectcalico.org/v3",
               "metadata": {"name": name, "labels": labels}, "spec": {"bgp": spec}}),
    )
}

fn plain(name: &str, ip: &str) -> (String, Value) {
    node(name, ip, json!({}), json!({}))
}

fn config(name: &str, spec: Value) -> (String, Value) {
    (
        format!("{V3}/bgpconfigurations/{name}"),
        json!({"kind": "BGPConfiguration", "metadata": {"name": name}, "spec": spec}),
    )
}

fn bgp_peer(name: &str, spec: Value) -> (String, Value) {
    (
        format!("{V3}/bgppeers/{name}"),
        json!({"kind": "BGPPeer", "metadata": {"name": name}, "spec": spec}),
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// (name, asn, passive, rr_client) of every peer, in order.
fn summary(d: &Decision) -> Vec<(String, u32, bool, bool)> {
    d.config
        .peers
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.asn,
                p.settings.passive,
                p.settings.rr_client,
            )
        })
        .collect()
}

fn peer<'a>(d: &'a Decision, name: &str) -> &'a Peer {
    d.config
        .peers
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no peer {name} in {:?}", summary(d)))
}

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn three_node_mesh() {
    let r = resources(&[
        plain("a", "10.0.0.1"),
        plain("b", "10.0.0.2"),
        plain("c", "10.0.0.3"),
        (
            s("/calico/ipam/v2/host/b/ipv4/block/192.168.1.0-26"),
            json!({"state": "confirmed"}),
        ),
        (
            s("/calico/ipam/v2/host/b/ipv4/block/192.168.1.64-26"),
            json!({"state": "pending"}),
        ),
        (
            s("/calico/ipam/v2/host/b/ipv4/block/192.168.1.128-26"),
            json!({"state": "pendingDeletion"}),
        ),
        (
            s("/calico/ipam/v2/host/b/ipv4/block/192.168.9.9-32"),
            json!({"state": "confirmed"}),
        ),
        (
            s("/calico/ipam/v2/host/a/ipv4/block/192.168.2.0-26"),
            json!({"state": "confirmed"}),
        ),
    ]);
    // (node, expected peers: name, asn, passive, rr_client)
    let table = [
        (
            "a",
            vec![
                (s("Mesh_10_0_0_2"), 64512, true, false),
                (s("Mesh_10_0_0_3"), 64512, true, false),
            ],
        ),
        (
            "b",
            vec![
                (s("Mesh_10_0_0_1"), 64512, false, false),
                (s("Mesh_10_0_0_3"), 64512, true, false),
            ],
        ),
        (
            "c",
            vec![
                (s("Mesh_10_0_0_1"), 64512, false, false),
                (s("Mesh_10_0_0_2"), 64512, false, false),
            ],
        ),
    ];
    for (name, peers) in table {
        let d = decide(name, &r).unwrap();
        assert_eq!(summary(&d), peers, "node {name}");
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        let me = d.config.router_id;
        for p in &d.config.peers {
            assert_eq!(p.port, 179);
            assert_eq!(p.settings.source_address, Some(IpAddr::V4(me)));
            assert_eq!(p.settings.ttl, Some(64));
            assert_eq!(p.settings.password, None);
        }
        assert_eq!(d.config.asn, 64512);
        assert_eq!(d.config.listen.port, 179);
        assert_eq!(d.config.cluster_id, None);
    }
    let b = decide("b", &r).unwrap();
    assert_eq!(b.config.router_id, Ipv4Addr::new(10, 0, 0, 2));
    // Pending affinities and /32 blocks are not this node's blocks.
    assert_eq!(
        b.config.originate,
        ["192.168.1.0/26", "192.168.1.128/26"].map(|n| n.parse::<IpNet>().unwrap())
    );
}

#[test]
fn passive_rule_compares_addresses_as_strings() {
    // (mine, peer, passive): the string order, not the numeric one (contract §2.4, §8.6).
    let table = [
        ("10.0.0.9", "10.0.0.10", false),
        ("10.0.0.10", "10.0.0.9", true),
        ("10.0.0.1", "10.0.0.2", true),
        ("10.0.0.2", "10.0.0.1", false),
        ("9.0.0.1", "10.0.0.1", false),
        ("10.0.0.1", "9.0.0.1", true),
        ("fd00::9", "fd00::10", false),
        ("fd00::10", "fd00::9", true),
    ];
    for (mine, other, expect) in table {
        assert_eq!(passive(ip(other), ip(mine)), expect, "{mine} -> {other}");
    }
    // Through the whole decision: one session between .9 and .10, dialled by .9.
    let r = resources(&[plain("n9", "10.0.0.9"), plain("n10", "10.0.0.10")]);
    let on9 = decide("n9", &r).unwrap();
    let on10 = decide("n10", &r).unwrap();
    assert!(!peer(&on9, "Mesh_10_0_0_10").settings.passive);
    assert!(peer(&on10, "Mesh_10_0_0_9").settings.passive);
}

#[test]
fn mesh_settings_and_dual_stack() {
    let r = resources(&[
        node(
            "a",
            "10.0.0.1",
            json!({"ipv6Address": "fd00::1/64"}),
            json!({}),
        ),
        node(
            "b",
            "10.0.0.2",
            json!({"ipv6Address": "fd00::2/64"}),
            json!({}),
        ),
        // No IPv6 here: no IPv6 session with it.
        plain("c", "10.0.0.3"),
        // A node without BGP is no peer.
        (
            format!("{V3}/nodes/d"),
            json!({"metadata": {"name": "d"}, "spec": {}}),
        ),
        config(
            "default",
            json!({"nodeMeshMaxRestartTime": "90s", "listenPort": 1790,
                   "nodeMeshPassword": {"secretKeyRef": {"name": "bgp", "key": "mesh"}}}),
        ),
        config("node.b", json!({"listenPort": 1791})),
    ]);
    let a = decide("a", &r).unwrap();
    // Calico 3.32's coupling at its default priority (no BGPConfiguration).
    assert_eq!(a.config.normal_route_priority, Some(1024));
    assert_eq!(
        summary(&a),
        [
            (s("Mesh_10_0_0_2"), 64512, true, false),
            (s("Mesh_fd00__2"), 64512, true, false),
            (s("Mesh_10_0_0_3"), 64512, true, false),
        ]
    );
    let v6 = peer(&a, "Mesh_fd00__2");
    assert_eq!(v6.settings.source_address, Some(ip("fd00::1")));
    // Each node is dialled at its own listen port; mesh restart time applied.
    assert_eq!(v6.port, 1791);
    assert_eq!(peer(&a, "Mesh_10_0_0_3").port, 1790);
    assert_eq!(v6.settings.restart_time, 90);
    assert_eq!(a.config.listen.port, 1790);
    assert_eq!(decide("b", &r).unwrap().config.listen.port, 1791);
    // The mesh password lives in a Secret: no MD5, and a warning.
    assert_eq!(v6.settings.password, None);
    assert!(a.warnings.iter().any(|w| w.contains("nodeMeshPassword")));
    assert!(decide("d", &r).is_err());
}

#[test]
fn node_as_overrides_the_global_as() {
    let base = [
        plain("a", "10.0.0.1"),
        node("b", "10.0.0.2", json!({"asNumber": 65010}), json!({})),
    ];
    // (global asNumber, a's AS, b's AS)
    let table = [(None, 64512, 65010), (Some(json!("65000")), 65000, 65010)];
    for (global, a_as, b_as) in table {
        let mut entries = base.to_vec();
        if let Some(asn) = global {
            entries.push(config("default", json!({"asNumber": asn})));
        }
        let r = resources(&entries);
        let a = decide("a", &r).unwrap();
        let b = decide("b", &r).unwrap();
        assert_eq!(a.config.asn, a_as);
        assert_eq!(b.config.asn, b_as);
        // Mesh peers use the peer's own AS.
        assert_eq!(peer(&a, "Mesh_10_0_0_2").asn, b_as);
        assert_eq!(peer(&b, "Mesh_10_0_0_1").asn, a_as);
    }
}

#[test]
fn mesh_off_two_reflectors_and_peer_selector_peers() {
    let rr = json!({"routeReflectorClusterID": "244.0.0.1"});
    let rr_label = json!({"route-reflector": "true"});
    let r = resources(&[
        node("rr1", "10.0.1.1", rr.clone(), rr_label.clone()),
        node("rr2", "10.0.1.2", rr, rr_label),
        plain("c1", "10.0.0.1"),
        plain("c2", "10.0.0.2"),
        config("default", json!({"nodeToNodeMeshEnabled": false})),
        bgp_peer(
            "peer-with-rrs",
            json!({"nodeSelector": "all()", "peerSelector": "route-reflector == 'true'"}),
        ),
    ]);
    // (node, peers, cluster id)
    let table = [
        (
            "c1",
            vec![
                (s("Node_10_0_1_1"), 64512, false, false),
                (s("Node_10_0_1_2"), 64512, false, false),
            ],
            None,
        ),
        (
            "rr1",
            vec![
                (s("Node_10_0_0_1"), 64512, false, true),
                (s("Node_10_0_0_2"), 64512, false, true),
                // The same cluster: plain iBGP, no rr client.
                (s("Node_10_0_1_2"), 64512, false, false),
            ],
            Some(Ipv4Addr::new(244, 0, 0, 1)),
        ),
        (
            "rr2",
            vec![
                (s("Node_10_0_0_1"), 64512, false, true),
                (s("Node_10_0_0_2"), 64512, false, true),
                (s("Node_10_0_1_1"), 64512, false, false),
            ],
            Some(Ipv4Addr::new(244, 0, 0, 1)),
        ),
    ];
    for (name, peers, cluster_id) in table {
        let d = decide(name, &r).unwrap();
        assert_eq!(summary(&d), peers, "node {name}");
        assert_eq!(d.config.cluster_id, cluster_id, "node {name}");
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }
    // With the mesh on, reflectors still get no mesh and nobody meshes with them.
    let mut entries = vec![
        node(
            "rr1",
            "10.0.1.1",
            json!({"routeReflectorClusterID": "244.0.0.1"}),
            json!({}),
        ),
        plain("c1", "10.0.0.1"),
        plain("c2", "10.0.0.2"),
    ];
    let r = resources(&entries);
    assert!(decide("rr1", &r).unwrap().config.peers.is_empty());
    assert_eq!(
        summary(&decide("c1", &r).unwrap()),
        [(s("Mesh_10_0_0_2"), 64512, true, false)]
    );
    // Manual reverse peering: the reflector does not peer back on its own.
    entries.push(bgp_peer(
        "to-rr",
        json!({"nodeSelector": "!has(x)", "peerIP": "10.0.1.1", "reversePeering": "Manual"}),
    ));
    let r = resources(&entries);
    assert!(decide("rr1", &r).unwrap().config.peers.is_empty());
}

#[test]
fn a_tor_global_peer() {
    let r = resources(&[
        plain("a", "10.0.0.1"),
        plain("b", "10.0.0.2"),
        config(
            "default",
            json!({"nodeToNodeMeshEnabled": false, "asNumber": 64512,
                   "ipv4NormalRoutePriority": 2000}),
        ),
        bgp_peer(
            "tor",
            json!({"peerIP": "198.51.100.254", "asNumber": 65001, "keepOriginalNextHop": true,
                   "numAllowedLocalASNumbers": 2, "ttlSecurity": 1, "maxRestartTime": "5m",
                   "keepaliveTime": "10s",
                   "password": {"secretKeyRef": {"name": "bgp", "key": "tor"}}}),
        ),
        bgp_peer(
            "tor-port",
            json!({"peerIP": "198.51.100.253:1790", "asNumber": "65001",
                   "nextHopMode": "Self", "sourceAddress": "None",
                   "reachableBy": "10.0.0.254"}),
        ),
        bgp_peer(
            "tor-bad-gateway",
            json!({"peerIP": "198.51.100.252", "asNumber": 65001,
                   "reachableBy": "2001:db8::1"}),
        ),
    ]);
    let a = decide("a", &r).unwrap();
    assert_eq!(
        summary(&a),
        [
            (s("Global_198_51_100_252"), 65001, false, false),
            (s("Global_198_51_100_253_port_1790"), 65001, false, false),
            (s("Global_198_51_100_254"), 65001, false, false),
        ]
    );
    // Current confd's route priority, from the BGPConfiguration; IPv6's (1024) differs.
    assert_eq!(a.config.normal_route_priority, Some(2000));
    assert!(
        (a.warnings.iter()).any(|w| w.contains("ipv6NormalRoutePriority")),
        "{:?}",
        a.warnings
    );
    // reachableBy: `route PEER/32 via GW` (contract §2.6); one of another family is left out.
    assert_eq!(
        a.config.static_routes,
        vec![crate::config::StaticRoute {
            prefix: "198.51.100.253/32".parse().unwrap(),
            via: ip("10.0.0.254"),
        }]
    );
    assert!(
        (a.warnings.iter()).any(|w| w.contains("tor-bad-gateway") && w.contains("reachableBy")),
        "{:?}",
        a.warnings
    );
    let tor = peer(&a, "Global_198_51_100_254");
    let expect = PeerDefaults {
        source_address: Some(ip("10.0.0.1")),
        next_hop: NextHopMode::Keep,
        allow_local_as: 2,
        ttl_security: Some(1),
        restart_time: 300,
        keepalive: Some(10),
        // `show protocols all` as for BIRD on confd's file.
        description: Some("Connection to BGP peer".into()),
        import_filter: FilterForm::Inline,
        export_filter: FilterForm::Inline,
        ..PeerDefaults::default()
    };
    assert_eq!(tor.settings, expect);
    assert_eq!(tor.port, 179);
    let other = peer(&a, "Global_198_51_100_253_port_1790");
    assert_eq!(other.port, 1790);
    assert_eq!(other.settings.source_address, None);
    assert_eq!(other.settings.next_hop, NextHopMode::Myself);
    assert_eq!(other.settings.ttl, Some(64));
    assert!(
        a.warnings
            .iter()
            .any(|w| w.contains("tor") && w.contains("password")),
        "{:?}",
        a.warnings
    );
    // The same peers on every node.
    let b = decide("b", &r).unwrap();
    assert_eq!(summary(&b), summary(&a));
}

#[test]
fn global_peers_that_are_calico_nodes_are_auto_passive() {
    let r = resources(&[
        plain("a", "10.0.0.1"),
        plain("b", "10.0.0.2"),
        config(
            "default",
            json!({"nodeToNodeMeshEnabled": false, "listenPort": 1790}),
        ),
        bgp_peer("to-b", json!({"peerIP": "10.0.0.2", "asNumber": 64512})),
    ]);
    // a: the forward peering, at b's listen port, passive because "10.0.0.2" > "10.0.0.1".
    let a = decide("a", &r).unwrap();
    assert_eq!(
        summary(&a),
        [(s("Global_10_0_0_2_port_1790"), 64512, true, false)]
    );
    assert_eq!(peer(&a, "Global_10_0_0_2_port_1790").port, 1790);
    // b: skips itself in the global peering and peers back with every node (the reverse
    // peering of a global BGPPeer); node-scoped peers are never auto-passive.
    let b = decide("b", &r).unwrap();
    assert_eq!(
        summary(&b),
        [(s("Node_10_0_0_1_port_1790"), 64512, false, false)]
    );
}

#[test]
fn node_scoped_peers_and_what_is_left_out() {
    let r = resources(&[
        node("a", "10.0.0.1", json!({}), json!({"rack": "r1"})),
        node("b", "10.0.0.2", json!({}), json!({"rack": "r2"})),
        config("default", json!({"nodeToNodeMeshEnabled": false})),
        bgp_peer(
            "rack1-tor",
            json!({"nodeSelector": "rack == 'r1'", "peerIP": "198.51.100.1", "asNumber": 65001}),
        ),
        bgp_peer(
            "b-only",
            json!({"node": "b", "peerIP": "198.51.100.2", "asNumber": 65002}),
        ),
        // A node-scoped peering to an address a global one already covers gives way.
        bgp_peer(
            "everyone",
            json!({"peerIP": "198.51.100.2", "asNumber": 65002, "maxRestartTime": "1s"}),
        ),
        bgp_peer(
            "local-as",
            json!({"peerIP": "198.51.100.3", "asNumber": 65003, "localASNumber": 65100}),
        ),
        bgp_peer(
            "filtered",
            json!({"peerIP": "198.51.100.4", "asNumber": 65004, "filters": ["f"]}),
        ),
        bgp_peer(
            "v6-tor",
            json!({"peerIP": "2001:db8::1", "asNumber": 65005}),
        ),
        bgp_peer("bad-ip", json!({"peerIP": "not-an-ip", "asNumber": 1})),
        bgp_peer(
            "bad-selector",
            json!({"nodeSelector": "rack ==", "peerIP": "198.51.100.9", "asNumber": 1}),
        ),
        bgp_peer("no-as", json!({"peerIP": "198.51.100.8"})),
        bgp_peer(
            "workloads",
            json!({"localWorkloadSelector": "all()", "asNumber": 1}),
        ),
    ]);
    // (node, peers, warnings that must appear)
    let table = [
        (
            "a",
            vec![
                (s("Global_198_51_100_2"), 65002, false, false),
                (s("Global_198_51_100_3"), 65003, false, false),
                (s("Global_198_51_100_4"), 65004, false, false),
                (s("Node_198_51_100_1"), 65001, false, false),
            ],
            vec![
                "filtered: BGPFilter f is not applied",
                "v6-tor",
                "bad-ip",
                "bad-selector",
                "no-as",
                "workloads",
            ],
        ),
        (
            "b",
            vec![
                (s("Global_198_51_100_2"), 65002, false, false),
                (s("Global_198_51_100_3"), 65003, false, false),
                (s("Global_198_51_100_4"), 65004, false, false),
            ],
            vec![],
        ),
    ];
    for (name, peers, warned) in table {
        let d = decide(name, &r).unwrap();
        assert_eq!(summary(&d), peers, "node {name}");
        for w in warned {
            assert!(
                d.warnings.iter().any(|x| x.contains(w)),
                "node {name}: no warning about {w}: {:?}",
                d.warnings
            );
        }
        assert_eq!(peer(&d, "Global_198_51_100_2").settings.restart_time, 1);
        let local = &peer(&d, "Global_198_51_100_3").settings;
        assert_eq!(local.local_asn, Some(65100));
        assert!(peer(&d, "Global_198_51_100_4").settings.filters.is_empty());
        assert!(!d.warnings.iter().any(|w| w.contains("local-as")), "{name}");
    }
}

fn bgp_filter(name: &str, spec: Value) -> (String, Value) {
    (
        format!("{V3}/bgpfilters/{name}"),
        json!({"kind": "BGPFilter", "apiVersion": "projectcalico.org/v3",
               "metadata": {"name": name}, "spec": spec}),
    )
}

/// BGPFilters as calicoctl stores them, named by BGPPeers in their order; `localASNumber`
/// makes the session's AS, and iBGP/eBGP is decided against it (`buildPeerFromData`).
#[test]
fn bgp_filters_and_local_as() {
    use crate::config::{FilterRule, MatchOperator, Operation, PeerType, RuleAction};
    let r = resources(&[
        plain("a", "10.0.0.1"),
        config(
            "default",
            json!({"nodeToNodeMeshEnabled": false, "asNumber": 64512}),
        ),
        bgp_filter(
            "edge",
            json!({
                "importV4": [
                    {"action": "Reject", "cidr": "10.0.0.0/8", "matchOperator": "In",
                     "prefixLength": {"min": 16, "max": 24}},
                    {"action": "Accept", "source": "RemotePeers"}
                ],
                "exportV4": [{"action": "Accept", "interface": "cali*"}],
                "exportV6": [{"action": "Reject", "cidr": "2001:db8::/32",
                              "matchOperator": "NotEqual"}]
            }),
        ),
        bgp_filter("second", json!({"importV4": [{"action": "Reject"}]})),
        bgp_filter(
            "priorities",
            json!({"exportV4": [{"action": "Accept", "priority": 512}]}),
        ),
        bgp_filter(
            "rich",
            json!({"importV4": [
                {"action": "Accept", "peerType": "eBGP", "communities": {"values": ["65000:1:2"]},
                 "asPathPrefix": [65000, "65001"], "operations": [
                    {"addCommunity": {"value": "65000:100"}},
                    {"prependASPath": {"prefix": [65100, 65101]}},
                    {"setPriority": {"value": 100}}
                 ]}
            ]}),
        ),
        bgp_filter(
            "two-communities",
            json!({"importV4": [{"action": "Accept",
                                 "communities": {"values": ["1:1", "1:2"]}}]}),
        ),
        bgp_filter(
            "reject-with-operations",
            json!({"importV4": [{"action": "Reject",
                                 "operations": [{"setPriority": {"value": 5}}]}]}),
        ),
        bgp_filter(
            "wrong-family",
            json!({"importV4": [{"action": "Accept", "cidr": "2001:db8::/32",
                                 "matchOperator": "In"}]}),
        ),
        bgp_filter(
            "half",
            json!({"importV4": [{"action": "Accept", "cidr": "10.0.0.0/8"}]}),
        ),
        bgp_peer(
            "tor",
            json!({"peerIP": "198.51.100.1", "asNumber": 65000, "localASNumber": 65001,
                   "filters": ["second", "edge", "priorities", "rich", "two-communities", "absent"]}),
        ),
        bgp_peer(
            "same-as-local",
            json!({"peerIP": "198.51.100.2", "asNumber": 65010, "localASNumber": 65010,
                   "keepOriginalNextHop": true}),
        ),
    ]);
    let d = decide("a", &r).unwrap();
    let names: Vec<&str> = d.config.filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["edge", "priorities", "rich", "second"]);
    assert_eq!(d.config.filters[1].export_v4[0].priority, Some(512));
    assert_eq!(
        d.config.filters[2].import_v4,
        [FilterRule {
            peer_type: Some(PeerType::Ebgp),
            community: Some("65000:1:2".parse().unwrap()),
            as_path_prefix: vec![65000, 65001],
            operations: vec![
                Operation::AddCommunity("65000:100".parse().unwrap()),
                Operation::PrependAsPath(vec![65100, 65101]),
                Operation::SetPriority(100),
            ],
            ..FilterRule::any(RuleAction::Accept)
        }]
    );
    let edge = &d.config.filters[0];
    assert_eq!(
        edge.import_v4,
        [
            FilterRule {
                action: RuleAction::Reject,
                cidr: Some((MatchOperator::In, "10.0.0.0/8".parse().unwrap())),
                prefix_length: Some((Some(16), Some(24))),
                from_peers: false,
                interface: None,
                ..FilterRule::any(RuleAction::Accept)
            },
            FilterRule {
                action: RuleAction::Accept,
                cidr: None,
                prefix_length: None,
                from_peers: true,
                interface: None,
                ..FilterRule::any(RuleAction::Accept)
            }
        ]
    );
    assert_eq!(edge.export_v4[0].interface.as_deref(), Some("cali*"));
    assert_eq!(
        edge.export_v6[0].cidr,
        Some((MatchOperator::NotEqual, "2001:db8::/32".parse().unwrap()))
    );
    let tor = peer(&d, "Global_198_51_100_1");
    assert_eq!(
        tor.settings.filters,
        [s("second"), s("edge"), s("priorities"), s("rich")]
    );
    assert_eq!(tor.settings.local_asn, Some(65001));
    // AS 65010 from local AS 65010: iBGP, so the legacy keepOriginalNextHop (eBGP only)
    // does not apply.
    let same = peer(&d, "Global_198_51_100_2");
    assert_eq!(same.settings.local_asn, Some(65010));
    assert_eq!(same.settings.next_hop, NextHopMode::Auto);
    for w in [
        "BGPFilter two-communities: importV4 rule 1: communities has 2 values",
        "BGPFilter reject-with-operations: filter reject-with-operations: import_v4 rule 1: operations need action",
        "BGPFilter wrong-family: filter wrong-family: import_v4 rule 1: 2001:db8::/32 is not an IPv4",
        "BGPFilter half: importV4 rule 1: cidr and matchOperator",
        "BGPPeer tor: BGPFilter two-communities is not applied",
        "BGPPeer tor: BGPFilter absent is not applied",
    ] {
        assert!(
            d.warnings.iter().any(|x| x.starts_with(w)),
            "no warning {w}: {:?}",
            d.warnings
        );
    }
    assert_eq!(d.warnings.len(), 6, "{:?}", d.warnings);
    // The model it gives passes the model's checks as it is (filters named exist).
    assert_eq!(validate::check(&d.config), Ok(()));
}

#[test]
fn services_communities_pools_and_listen() {
    let pool = |name: &str, spec: Value| {
        (
            format!("{V3}/ippools/{name}"),
            json!({"metadata": {"name": name}, "spec": spec}),
        )
    };
    let entries = vec![
        plain("a", "10.0.0.1"),
        node(
            "b",
            "10.0.0.2",
            json!({}),
            json!({"node.kubernetes.io/exclude-from-external-load-balancers": "true"}),
        ),
        config(
            "default",
            json!({
                "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}, {"cidr": ""}],
                "serviceExternalIPs": [{"cidr": "203.0.113.0/24"}, {"cidr": "203.0.113.7/32"}],
                "serviceLoadBalancerIPs": [{"cidr": "198.51.100.0/25"}],
                "communities": [{"name": "gold", "value": "65000:100"}],
                "prefixAdvertisements": [
                    {"cidr": "192.168.0.0/16", "communities": ["gold", "1:2:3", "65000:100", "nope"]},
                ],
                "bindMode": "NodeIP",
                "logSeverityScreen": "Warning",
            }),
        ),
        config(
            "node.a",
            json!({"prefixAdvertisements": [{"cidr": "192.168.5.0/24", "communities": ["7:8"]}],
                   "logSeverityScreen": "Debug"}),
        ),
        pool(
            "ipip",
            json!({"cidr": "192.168.0.0/16", "ipipMode": "Always", "vxlanMode": "Never"}),
        ),
        pool(
            "vxlan",
            json!({"cidr": "172.16.0.0/16", "vxlanMode": "CrossSubnet", "ipipMode": "Always"}),
        ),
        pool(
            "plain",
            json!({"cidr": "172.17.0.0/16", "disableBGPExport": true}),
        ),
        pool(
            "cross",
            json!({"cidr": "172.18.0.0/16", "ipipMode": "CrossSubnet"}),
        ),
    ];
    let r = resources(&entries);
    let net = |s: &str| s.parse::<IpNet>().unwrap();
    let a = decide("a", &r).unwrap();
    assert_eq!(
        a.config.services,
        ["10.96.0.0/12", "203.0.113.0/24", "198.51.100.0/25"].map(net)
    );
    // The node's own prefixAdvertisements win over the global ones.
    assert_eq!(
        a.config.communities,
        [PrefixCommunities {
            prefix: net("192.168.5.0/24"),
            communities: vec!["7:8".parse().unwrap()],
        }]
    );
    assert_eq!(a.config.log_level, LogLevel::Debug);
    assert_eq!(a.config.listen.addresses, [ip("10.0.0.1")]);
    assert_eq!(
        a.config
            .pools
            .iter()
            .map(|p| (p.cidr, p.encapsulation, p.bgp_export))
            .collect::<Vec<_>>(),
        [
            (net("172.18.0.0/16"), Encapsulation::IpipCrossSubnet, true),
            (net("192.168.0.0/16"), Encapsulation::Ipip, true),
            (net("172.17.0.0/16"), Encapsulation::None, false),
            (net("172.16.0.0/16"), Encapsulation::VxlanCrossSubnet, true),
        ]
    );
    let b = decide("b", &r).unwrap();
    assert!(b.config.services.is_empty());
    assert_eq!(b.config.log_level, LogLevel::Warn);
    let communities: Vec<AnyCommunity> = ["65000:100", "1:2:3"]
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(
        b.config.communities,
        [PrefixCommunities {
            prefix: net("192.168.0.0/16"),
            communities,
        }]
    );
    assert!(b.warnings.iter().any(|w| w.contains("nope")));

    // Load-balancer ranges only while aggregation is on.
    let mut entries = entries;
    entries.push(config(
        "default",
        json!({"serviceLoadBalancerIPs": [{"cidr": "198.51.100.0/25"}],
               "serviceLoadBalancerAggregation": "Disabled"}),
    ));
    let a = decide("a", &resources(&entries)).unwrap();
    assert!(a.config.services.is_empty());
    assert_eq!(a.config.listen, Listen::default());
}

#[test]
fn no_configuration_without_this_node_or_its_address() {
    let r = resources(&[
        plain("a", "10.0.0.1"),
        (
            format!("{V3}/nodes/v6only"),
            json!({"metadata": {"name": "v6only"},
                   "spec": {"bgp": {"ipv6Address": "fd00::1/64"}}}),
        ),
    ]);
    assert!(decide("missing", &r).unwrap_err().contains("missing"));
    assert!(decide("v6only", &r).unwrap_err().contains("router id"));
}

#[test]
fn a_session_already_made_by_the_mesh_is_not_made_twice() {
    let r = resources(&[
        plain("a", "10.0.0.1"),
        plain("b", "10.0.0.2"),
        bgp_peer(
            "dup",
            json!({"node": "a", "peerIP": "10.0.0.2", "asNumber": 64512}),
        ),
    ]);
    let a = decide("a", &r).unwrap();
    assert_eq!(summary(&a), [(s("Mesh_10_0_0_2"), 64512, true, false)]);
    assert!(a.warnings.iter().any(|w| w.contains("dup")));
}

#[test]
fn a_joining_node_adds_one_session_everywhere_and_resets_none() {
    use crate::config::diff::diff;
    let mut entries: Vec<(String, Value)> = (1..=5)
        .map(|i| plain(&format!("n{i}"), &format!("10.0.0.{i}")))
        .collect();
    entries.push(bgp_peer(
        "tor",
        json!({"peerIP": "198.51.100.1", "asNumber": 65001}),
    ));
    let before = resources(&entries);
    entries.push(plain("n6", "10.0.0.6"));
    let joined = resources(&entries);
    entries.push(bgp_peer(
        "tor",
        json!({"peerIP": "198.51.100.1", "asNumber": 65001, "keepaliveTime": "20s"}),
    ));
    entries.push((
        s("/calico/ipam/v2/host/n1/ipv4/block/192.168.0.0-26"),
        json!({"state": "confirmed"}),
    ));
    let changed = resources(&entries);
    for i in 1..=5 {
        let me = format!("n{i}");
        let old = decide(&me, &before).unwrap().config;
        let new = decide(&me, &joined).unwrap().config;
        let c = diff(&old, &new).unwrap();
        let added: Vec<&str> = c.added.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(added, ["Mesh_10_0_0_6"], "{me}");
        assert!(
            c.removed.is_empty() && c.changed.is_empty() && !c.policy,
            "{me}: {c:?}"
        );
        // A changed BGPPeer resets only its own session; a new block touches no session.
        let next = decide(&me, &changed).unwrap().config;
        let c = diff(&new, &next).unwrap();
        let reset: Vec<&str> = c.changed.iter().map(|p| p.new.name.as_str()).collect();
        assert_eq!(reset, ["Global_198_51_100_1"], "{me}");
        assert!(c.added.is_empty() && c.removed.is_empty(), "{me}: {c:?}");
        assert_eq!(c.policy, i == 1, "{me}");
    }
}

/// A BGPFilter edited in the datastore, or a BGPPeer's filter list, re-filters without a
/// reset; a BGPPeer's localASNumber resets only that peer (`config::diff`).
#[test]
fn filter_edits_reset_nothing_and_local_as_resets_its_peer() {
    use crate::config::diff::diff;
    let rule = |cidr: &str| {
        bgp_filter(
            "edge",
            json!({"importV4": [{"action": "Reject", "cidr": cidr, "matchOperator": "Equal"}]}),
        )
    };
    let tor = |extra: Value| {
        let mut spec = json!({"peerIP": "198.51.100.1", "asNumber": 65001});
        if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
            spec.extend(extra);
        }
        bgp_peer("tor", spec)
    };
    let base = [plain("a", "10.0.0.1"), plain("b", "10.0.0.2")];
    let at = |extra: [(String, Value); 2]| {
        let entries: Vec<_> = base.iter().cloned().chain(extra).collect();
        decide("a", &resources(&entries)).unwrap().config
    };
    let old = at([rule("10.1.0.0/16"), tor(json!({"filters": ["edge"]}))]);
    let edited = at([rule("10.2.0.0/16"), tor(json!({"filters": ["edge"]}))]);
    let c = diff(&old, &edited).unwrap();
    assert!(c.filters && c.changed.is_empty() && !c.policy, "{c:?}");
    let unlisted = at([rule("10.2.0.0/16"), tor(json!({}))]);
    let c = diff(&edited, &unlisted).unwrap();
    let changed: Vec<_> = (c.changed.iter())
        .map(|p| (p.new.name.as_str(), p.settings.clone(), p.reset))
        .collect();
    assert_eq!(changed, [("Global_198_51_100_1", vec!["filters"], false)]);
    let local = at([rule("10.2.0.0/16"), tor(json!({"localASNumber": 65100}))]);
    let c = diff(&unlisted, &local).unwrap();
    let changed: Vec<_> = (c.changed.iter())
        .map(|p| (p.new.name.as_str(), p.settings.clone(), p.reset))
        .collect();
    assert_eq!(changed, [("Global_198_51_100_1", vec!["local_as"], true)]);
    assert!(
        c.added.is_empty() && c.removed.is_empty(),
        "the mesh peer stays"
    );
}
