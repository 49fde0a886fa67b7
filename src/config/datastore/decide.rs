//! What confd decides for one node, as a pure function from (this node's name, Calico's
//! resources) to the configuration model.
//!
//! The rules are Calico's, read from `confd/pkg/backends/calico/client.go` (`updatePeersV1`,
//! `nodeAsBGPPeers`, `setPeerConfigFieldsFromV3Resource`, the BGPConfiguration handlers,
//! `updateCache`) and `bgp_processor.go` (`populateNodeConfig`, `processMeshPeers`,
//! `buildPeerFromData`, `processCommunityRules`, `processIPPool`), and from the contract's §2
//! and §3.1. What the model cannot say yet is left out with a warning naming the resource,
//! never approximated:
//! - passwords: Calico keeps them only in Kubernetes Secrets (`secretKeyRef`), which etcd mode
//!   cannot read. The peer is configured without TCP MD5 and a warning says so: a session
//!   that fails MD5 on the far side shows as down with the warning beside it, where refusing
//!   the whole node's configuration would take every other session down with it. wren reads
//!   no Secret API, as confd in etcd mode has no Kubernetes client either.
//! - `localWorkloadSelector` peers;
//!
//! Calico version shape: this path produces what current confd (3.32 and master) renders,
//! the metric ↔ LOCAL_PREF coupling included (`normal_route_priority`: the default
//! BGPConfiguration's `ipv4NormalRoutePriority`, 1024 when unset, `getNormalRoutePriority`
//! in `bgp_processor.go`), whatever the resources hold: confd writes it for every node of
//! the release. A ≤ 3.31 node differs only in what it writes: no kernel metric, LOCAL_PREF
//! 100 (a 3.32 node's 2^31 − 1 − 1024 only ranks its routes above such a node's).
//! - BGPFilter rules using what the model has no place for (`peerType`, `communities`,
//!   `asPathPrefix`, `priority`, `operations`): the whole filter is left out (dropping one
//!   rule would change what the others decide), and peers naming it run without it, as
//!   confd skips a filter it cannot read (`buildImportFilter`).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::resources::{
    AsNumber, BgpConfigurationSpec, BgpFilter as FilterResource, BgpFilterRule, BgpPeer, Password,
    Resources,
};
use super::selector::Selector;
use crate::config::{
    AnyCommunity, BgpFilter, Config, Encapsulation, FilterForm, FilterRule, KernelConfig, Listen,
    LogLevel, MatchOperator, NextHopMode, Operation, Peer, PeerDefaults, PeerType, Pool,
    PrefixCommunities, RuleAction, StaticRoute, peer_name, validate,
};

/// The AS when neither the Node nor the default BGPConfiguration sets one (confd's default
/// `/calico/bgp/v1/global/as_num`, `client.go`).
pub const DEFAULT_ASN: u32 = 64512;
/// Calico's `NormalRoutePriority` when the BGPConfiguration sets none.
const NORMAL_ROUTE_PRIORITY: u32 = 1024;
/// BGP's port, when no `listenPort` is set.
const BGP_PORT: u16 = 179;
/// Equal-cost paths installed per prefix: BIRD's limit with Calico's `merge paths on`.
const MAX_PATHS: usize = 16;
/// Multihop TTL of every Calico session without `ttlSecurity` (`ttl security off; multihop;`,
/// contract §2.4, §2.6).
const MULTIHOP_TTL: u8 = 64;
/// The node label that keeps a node from advertising service ranges (`client.go`
/// `ExcludeServiceAdvertisement`).
const EXCLUDE_SERVICES: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// `bgp_template`'s description of every peer (contract §2.4).
const DESCRIPTION: &str = "Connection to BGP peer";
/// The largest graceful restart time (RFC 4724 §3: 12 bits).
const MAX_RESTART_TIME: u64 = 4095;

/// A peer's settings before its own, as confd renders every peer (3.32+): from
/// `bgp_template`, and inline import and export filters, which `show protocols all` shows.
fn template() -> PeerDefaults {
    PeerDefaults {
        description: Some(DESCRIPTION.to_string()),
        import_filter: FilterForm::Inline,
        export_filter: FilterForm::Inline,
        ..PeerDefaults::default()
    }
}

/// The model computed for one node, and what could not be carried into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub config: Config,
    /// One line per resource field left out, naming the resource.
    pub warnings: Vec<String>,
}

/// Computes this node's configuration. An error means there is no configuration to run:
/// the node is missing, has no BGP address, or the result fails the model's checks.
pub fn decide(node: &str, r: &Resources) -> Result<Decision, String> {
    let cluster = Cluster::new(r);
    let me = cluster
        .nodes
        .get(node)
        .ok_or_else(|| format!("node {node}: no Node resource with spec.bgp in the datastore"))?;
    let router_id = me.v4.ok_or_else(|| {
        format!(
            "node {node}: no spec.bgp.ipv4Address, so no router id (CALICO_ROUTER_ID is not read)"
        )
    })?;
    let mine = cluster.node_config(node);
    let mut warnings = Vec::new();
    let filters = filters(r, &mut warnings);
    let mut d = Decider {
        cluster: &cluster,
        me,
        asn: cluster.asn(me),
        warnings,
        peers: Vec::new(),
        static_routes: Vec::new(),
        filters: &filters,
    };
    d.mesh();
    d.explicit(r);

    let global = cluster.global;
    // Node value first, then the global one (`getNodeOrGlobalValue`).
    let listen_port = mine
        .map(|c| c.listen_port)
        .filter(|&p| p != 0)
        .or(cluster.port)
        .unwrap_or(BGP_PORT);
    let bind_node_ip = global.and_then(|g| g.bind_mode.as_deref()) == Some("NodeIP");
    let listen = Listen {
        v6_only: false,
        addresses: if bind_node_ip {
            me.addresses().collect()
        } else {
            Listen::default().addresses
        },
        port: listen_port,
    };
    let severity = mine
        .map(|c| c.log_severity_screen.as_str())
        .filter(|s| !s.is_empty())
        .or(global.map(|g| g.log_severity_screen.as_str()));
    let communities = mine
        .filter(|c| !c.prefix_advertisements.is_empty())
        .or(global)
        .map(|c| d.communities(c))
        .unwrap_or_default();
    let priority = |p: fn(&BgpConfigurationSpec) -> Option<u32>| {
        global.and_then(p).unwrap_or(NORMAL_ROUTE_PRIORITY)
    };
    let normal_route_priority = priority(|g| g.ipv4_normal_route_priority);
    if priority(|g| g.ipv6_normal_route_priority) != normal_route_priority {
        d.warn(format!(
            "BGPConfiguration default: ipv6NormalRoutePriority differs from IPv4's; wren \
             applies {normal_route_priority} to both families"
        ));
    }
    let config = Config {
        router_id,
        asn: d.asn,
        listen,
        originate: originate(node, r),
        services: d.services(),
        pools: pools(r),
        communities,
        cluster_id: me.rr,
        max_paths: MAX_PATHS,
        kernel: KernelConfig::default(),
        log_level: log_level(severity.unwrap_or("")),
        metrics: None,
        peers: d.peers,
        filters: filters.clone(),
        static_routes: d.static_routes,
        normal_route_priority: Some(normal_route_priority),
    };
    validate::check(&config).map_err(|(_, message)| format!("node {node}: {message}"))?;
    Ok(Decision {
        config,
        warnings: d.warnings,
    })
}

/// What confd knows of one node that runs BGP (its `/calico/bgp/v1/host/<node>/…` keys).
struct NodeInfo<'a> {
    name: &'a str,
    labels: &'a HashMap<String, String>,
    v4: Option<Ipv4Addr>,
    v6: Option<IpAddr>,
    asn: Option<u32>,
    rr: Option<Ipv4Addr>,
    /// `listenPort` of its `node.<name>` BGPConfiguration.
    port: Option<u16>,
}

impl NodeInfo<'_> {
    fn addresses(&self) -> impl Iterator<Item = IpAddr> {
        self.v4.map(IpAddr::V4).into_iter().chain(self.v6)
    }

    /// Its address in the family of `other`.
    fn address_like(&self, other: IpAddr) -> Option<IpAddr> {
        match other {
            IpAddr::V4(_) => self.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.v6,
        }
    }
}

/// The cluster-wide view every node's decisions share.
struct Cluster<'a> {
    /// The `default` BGPConfiguration.
    global: Option<&'a BgpConfigurationSpec>,
    configs: &'a BTreeMap<String, super::resources::BgpConfiguration>,
    /// The global AS (`asNumber` of `default`, else 64512).
    asn: u32,
    /// The global `listenPort`, when set.
    port: Option<u16>,
    nodes: BTreeMap<&'a str, NodeInfo<'a>>,
}

impl<'a> Cluster<'a> {
    fn new(r: &'a Resources) -> Cluster<'a> {
        let global = r.bgp_configurations.get("default").map(|c| &c.spec);
        let mut cluster = Cluster {
            global,
            configs: &r.bgp_configurations,
            asn: global
                .and_then(|g| g.as_number)
                .map_or(DEFAULT_ASN, |a| a.0),
            port: global.map(|g| g.listen_port).filter(|&p| p != 0),
            nodes: BTreeMap::new(),
        };
        for (name, node) in &r.nodes {
            let Some(bgp) = &node.spec.bgp else { continue };
            let info = NodeInfo {
                name,
                labels: &node.metadata.labels,
                v4: bgp.ipv4_address.map(|n| n.addr()),
                v6: bgp.ipv6_address.map(|n| IpAddr::V6(n.addr())),
                asn: bgp.as_number.map(|a| a.0),
                rr: bgp.route_reflector_cluster_id,
                port: cluster
                    .node_config(name)
                    .map(|c| c.listen_port)
                    .filter(|&p| p != 0),
            };
            cluster.nodes.insert(name, info);
        }
        cluster
    }

    /// The `node.<name>` BGPConfiguration.
    fn node_config(&self, name: &str) -> Option<&'a BgpConfigurationSpec> {
        self.configs.get(&format!("node.{name}")).map(|c| &c.spec)
    }

    fn asn(&self, n: &NodeInfo) -> u32 {
        n.asn.unwrap_or(self.asn)
    }

    /// The port a node listens on, when set (else BGP's own).
    fn port(&self, n: &NodeInfo) -> Option<u16> {
        n.port.or(self.port)
    }

    fn matching(&self, selector: &Selector) -> impl Iterator<Item = &NodeInfo<'a>> {
        self.nodes
            .values()
            .filter(move |n| selector.matches(n.labels))
    }
}

/// A peering as confd's `backends.BGPPeer` carries it, before it becomes a model peer.
#[derive(Debug, Clone)]
struct Candidate<'a> {
    /// The BGPPeer it comes from, for warnings.
    from: &'a BgpPeer,
    ip: IpAddr,
    /// 0: unset (BGP's port, and no `_port_N` in the name).
    port: u16,
    asn: u32,
    local_asn: Option<u32>,
    /// `None` when the peer is `sourceAddress: None`.
    use_node_ip: bool,
    /// Whether the peer IP is a Calico node's (auto-passive applies to Global peers).
    calico_node: bool,
    /// Only for `peerIP` peers; `nodeAsBGPPeers` does not copy it.
    allow_local_as: u32,
    /// The peer node's route reflector cluster ID, for `peerSelector` peerings.
    rr: Option<Ipv4Addr>,
}

/// Where an explicit peering applies (`GlobalBGPPeerKey` / `NodeBGPPeerKey` for this node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Global,
    Node,
}

struct Decider<'a, 'c> {
    cluster: &'c Cluster<'a>,
    me: &'c NodeInfo<'a>,
    /// This node's AS.
    asn: u32,
    warnings: Vec<String>,
    peers: Vec<Peer>,
    /// `reachableBy` routes (`route PEER/32 via GW`, contract §2.6).
    static_routes: Vec<StaticRoute>,
    /// The BGPFilters the model carries.
    filters: &'c [BgpFilter],
}

/// Every BGPFilter as the model's filter, by name; one the model cannot carry is left out
/// with a warning.
fn filters(r: &Resources, warnings: &mut Vec<String>) -> Vec<BgpFilter> {
    let mut out = Vec::new();
    for (name, f) in &r.bgp_filters {
        match filter(name, f).and_then(|m| {
            validate::filter(out.len(), &m)
                .map(|()| m)
                .map_err(|(_, e)| e)
        }) {
            Ok(m) => out.push(m),
            Err(e) => warnings.push(format!("BGPFilter {name}: {e}; left out")),
        }
    }
    out
}

/// A BGPFilter resource as the model's filter.
fn filter(name: &str, f: &FilterResource) -> Result<BgpFilter, String> {
    let list = |what: &str, rules: &[BgpFilterRule]| {
        (rules.iter().enumerate())
            .map(|(j, r)| rule(r).map_err(|e| format!("{what} rule {}: {e}", j + 1)))
            .collect::<Result<Vec<_>, _>>()
    };
    let s = &f.spec;
    Ok(BgpFilter {
        name: name.to_string(),
        import_v4: list("importV4", &s.import_v4)?,
        export_v4: list("exportV4", &s.export_v4)?,
        import_v6: list("importV6", &s.import_v6)?,
        export_v6: list("exportV6", &s.export_v6)?,
    })
}

/// One rule, read as `filterStatement` renders it (`template_funcs.go`): `cidr` with
/// `matchOperator`, `prefixLength` only beside a CIDR (ignored without one, as Calico
/// documents), `source: RemotePeers`, `interface`, `peerType`, one community, an AS path
/// prefix, a priority, and the operations of an accepting rule (the model's checks hold
/// the ranges Calico's validation does).
fn rule(r: &BgpFilterRule) -> Result<FilterRule, String> {
    let action = match r.action.as_str() {
        "Accept" => RuleAction::Accept,
        "Reject" => RuleAction::Reject,
        other => return Err(format!("unknown action {other:?}")),
    };
    let operator = match r.match_operator.as_str() {
        "" => None,
        "Equal" => Some(MatchOperator::Equal),
        "NotEqual" => Some(MatchOperator::NotEqual),
        "In" => Some(MatchOperator::In),
        "NotIn" => Some(MatchOperator::NotIn),
        other => return Err(format!("unknown matchOperator {other:?}")),
    };
    let cidr = match (r.cidr.as_str(), operator) {
        ("", None) => None,
        (text, Some(op)) if !text.is_empty() => {
            let net: IpNet = text.parse().map_err(|_| format!("bad cidr {text:?}"))?;
            Some((op, net))
        }
        _ => return Err("cidr and matchOperator must both be set or both be empty".into()),
    };
    let bound = |v: Option<i32>| {
        v.map(|n| u8::try_from(n).map_err(|_| format!("prefix length {n} out of range")))
            .transpose()
    };
    let prefix_length = match r.prefix_length.filter(|_| cidr.is_some()) {
        Some(p) if p.min.is_some() || p.max.is_some() => Some((bound(p.min)?, bound(p.max)?)),
        _ => None,
    };
    let from_peers = match r.source.as_str() {
        "" => false,
        "RemotePeers" => true,
        other => return Err(format!("unknown source {other:?}")),
    };
    let peer_type = match r.peer_type.as_str() {
        "" => None,
        "eBGP" => Some(PeerType::Ebgp),
        "iBGP" => Some(PeerType::Ibgp),
        other => return Err(format!("unknown peerType {other:?}")),
    };
    let carried = match r.communities.as_ref().map(|c| c.values.as_slice()) {
        None => None,
        Some([one]) => Some(community(one)?),
        Some(other) => {
            return Err(format!(
                "communities has {} values, Calico allows exactly one",
                other.len()
            ));
        }
    };
    let operations = r
        .operations
        .iter()
        .map(
            |o| match (&o.add_community, &o.prepend_as_path, &o.set_priority) {
                (Some(c), None, None) => community(&c.value).map(Operation::AddCommunity),
                (None, Some(p), None) => Ok(Operation::PrependAsPath(asns(&p.prefix))),
                (None, None, Some(p)) => p
                    .value
                    .ok_or_else(|| "setPriority without a value".to_string())
                    .and_then(priority)
                    .map(Operation::SetPriority),
                _ => Err(
                    "an operation sets exactly one of addCommunity, prependASPath, \
                      setPriority"
                        .into(),
                ),
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FilterRule {
        action,
        cidr,
        prefix_length,
        from_peers,
        interface: (!r.interface.is_empty()).then(|| r.interface.clone()),
        peer_type,
        community: carried,
        as_path_prefix: asns(&r.as_path_prefix),
        priority: r.priority.map(priority).transpose()?,
        operations,
    })
}

/// `BGPCommunityValue`: `aa:nn` or `aa:nn:mm`.
fn community(text: &str) -> Result<AnyCommunity, String> {
    text.parse()
        .map_err(|e| format!("bad community {text:?}: {e}"))
}

/// A priority (`int` in Calico), range-checked by the model's checks.
fn priority(p: i64) -> Result<u32, String> {
    u32::try_from(p).map_err(|_| format!("priority {p} out of range"))
}

/// `numorstring.ASNumber` values.
fn asns(list: &[AsNumber]) -> Vec<u32> {
    list.iter().map(|a| a.0).collect()
}

impl<'a> Decider<'a, '_> {
    fn warn(&mut self, what: String) {
        self.warnings.push(what);
    }

    /// The node-to-node mesh (`processMeshPeers`): one peer per other non-reflector node of
    /// each family this node has, none at all on a reflector or with the mesh off.
    fn mesh(&mut self) {
        let global = self.cluster.global;
        let enabled = global
            .and_then(|g| g.node_to_node_mesh_enabled)
            .unwrap_or(true);
        if !enabled || self.me.rr.is_some() {
            return;
        }
        if global
            .and_then(|g| g.node_mesh_password.as_ref())
            .is_some_and(secret)
        {
            self.warn(
                "BGPConfiguration default: nodeMeshPassword is a Kubernetes Secret, which etcd \
                 mode cannot read; mesh sessions run without TCP MD5"
                    .into(),
            );
        }
        let restart = global.and_then(|g| g.node_mesh_max_restart_time);
        for other in self.cluster.nodes.values() {
            if other.rr.is_some() {
                continue;
            }
            for ip in other.addresses() {
                let Some(mine) = self.me.address_like(ip) else {
                    continue;
                };
                if ip == mine {
                    continue;
                }
                let mut settings = PeerDefaults {
                    source_address: Some(mine),
                    ttl: Some(MULTIHOP_TTL),
                    passive: passive(ip, mine),
                    ..template()
                };
                if let Some(r) = restart {
                    settings.restart_time = restart_time(r.seconds);
                }
                self.peers.push(Peer {
                    name: peer_name("Mesh", ip),
                    address: ip,
                    port: self.cluster.port(other).unwrap_or(BGP_PORT),
                    asn: self.cluster.asn(other),
                    settings,
                });
            }
        }
    }

    /// BGPPeers (`updatePeersV1` for this node, then `buildPeerFromData`): global peerings
    /// first, then node-scoped ones, then automatic reverse peerings; the first peering to a
    /// key (scope, IP, port) wins, and a node-scoped one gives way to a global one. Calico walks
    /// BGPPeers in Go's map order; wren walks them by name, so the outcome is stable.
    fn explicit(&mut self, r: &'a Resources) {
        let mut chosen: BTreeMap<(Scope, IpAddr, u16), Candidate<'a>> = BTreeMap::new();
        let mut emit = |scope: Scope, c: Candidate<'a>| {
            if scope == Scope::Node && chosen.contains_key(&(Scope::Global, c.ip, c.port)) {
                return;
            }
            chosen.entry((scope, c.ip, c.port)).or_insert(c);
        };
        for global_pass in [true, false] {
            for (name, p) in &r.bgp_peers {
                let s = &p.spec;
                let is_global = s.node_selector.is_empty() && s.node.is_empty();
                if is_global != global_pass {
                    continue;
                }
                if !is_global && !self.selects_me(name, &s.node, &s.node_selector) {
                    continue;
                }
                let scope = if is_global {
                    Scope::Global
                } else {
                    Scope::Node
                };
                for c in self.forward(name, p) {
                    emit(scope, c);
                }
            }
        }
        for (name, p) in &r.bgp_peers {
            for c in self.reverse(name, p) {
                emit(Scope::Node, c);
            }
        }
        for ((scope, _, _), c) in chosen {
            self.build(scope, c);
        }
    }

    /// Whether `node` / `nodeSelector` picks this node.
    fn selects_me(&mut self, from: &str, node: &str, selector: &str) -> bool {
        if !selector.is_empty() {
            return match Selector::parse(selector) {
                Ok(s) => s.matches(self.me.labels),
                Err(e) => {
                    self.warn(format!("BGPPeer {from}: nodeSelector: {e}"));
                    false
                }
            };
        }
        node == self.me.name
    }

    fn selector(&mut self, from: &str, field: &str, text: &str) -> Option<Selector> {
        Selector::parse(text)
            .map_err(|e| self.warn(format!("BGPPeer {from}: {field}: {e}")))
            .ok()
    }

    /// The peerings a BGPPeer asks of the nodes it applies to.
    fn forward(&mut self, name: &str, p: &'a BgpPeer) -> Vec<Candidate<'a>> {
        let s = &p.spec;
        if !s.local_workload_selector.is_empty() {
            self.warn(format!(
                "BGPPeer {name}: localWorkloadSelector peers are not supported; left out"
            ));
            return Vec::new();
        }
        if !s.peer_selector.is_empty() {
            let Some(sel) = self.selector(name, "peerSelector", &s.peer_selector) else {
                return Vec::new();
            };
            return self
                .cluster
                .matching(&sel)
                .flat_map(|n| self.node_as_peer(p, n, true, true))
                .collect();
        }
        let Some((ip, mut port)) = ip_port(&s.peer_ip) else {
            self.warn(format!(
                "BGPPeer {name}: peerIP {:?} is not an IP or IP:port; left out",
                s.peer_ip
            ));
            return Vec::new();
        };
        let asn = s.as_number.map_or(0, |a| a.0);
        if port == 0 {
            // A Calico node is dialled at its own listen port.
            if let Some(n) = self.nodes_at(ip, asn, 0).next() {
                port = self.cluster.port(n).unwrap_or(0);
            }
        }
        let calico_node = self
            .cluster
            .nodes
            .values()
            .any(|n| n.addresses().any(|a| a == ip));
        vec![Candidate {
            from: p,
            ip,
            port,
            asn,
            local_asn: s.local_as_number.map(|a| a.0),
            use_node_ip: s.source_address != "None",
            calico_node,
            allow_local_as: s.num_allowed_local_as_numbers.unwrap_or(0),
            rr: None,
        }]
    }

    /// The automatic reverse of a BGPPeer, when this node is one it points at: this node peers
    /// back with each node the BGPPeer applies to.
    fn reverse(&mut self, name: &str, p: &'a BgpPeer) -> Vec<Candidate<'a>> {
        let s = &p.spec;
        if s.reverse_peering.as_deref() == Some("Manual") || !s.local_workload_selector.is_empty() {
            return Vec::new();
        }
        let (targets_me, v4, v6) = if !s.peer_selector.is_empty() {
            let Ok(sel) = Selector::parse(&s.peer_selector) else {
                return Vec::new();
            };
            (sel.matches(self.me.labels), true, true)
        } else {
            let Some((ip, port)) = ip_port(&s.peer_ip) else {
                return Vec::new();
            };
            let asn = s.as_number.map_or(0, |a| a.0);
            let me = self.me.name;
            let targets_me = self.nodes_at(ip, asn, port).any(|n| n.name == me);
            (targets_me, ip.is_ipv4(), ip.is_ipv6())
        };
        if !targets_me {
            return Vec::new();
        }
        let sel = if !s.node_selector.is_empty() {
            self.selector(name, "nodeSelector", &s.node_selector)
        } else if !s.node.is_empty() {
            None
        } else {
            Some(Selector::All)
        };
        let cluster = self.cluster;
        let nodes: Vec<&NodeInfo> = match &sel {
            Some(sel) => cluster.matching(sel).collect(),
            None => cluster.nodes.get(s.node.as_str()).into_iter().collect(),
        };
        nodes
            .into_iter()
            .flat_map(|n| self.node_as_peer(p, n, v4, v6))
            .collect()
    }

    /// Calico nodes with this IP and AS (AS 0: the global AS) and, when `port` is set, that
    /// listen port (`nodesWithIPPortAndAS`).
    fn nodes_at(&self, ip: IpAddr, asn: u32, port: u16) -> impl Iterator<Item = &NodeInfo<'a>> {
        let cluster = self.cluster;
        let asn = if asn == 0 { cluster.asn } else { asn };
        cluster.nodes.values().filter(move |n| {
            n.addresses().any(|a| a == ip)
                && cluster.asn(n) == asn
                && (port == 0 || cluster.port(n).is_none_or(|p| p == port))
        })
    }

    /// A node as the peer of a BGPPeer (`nodeAsBGPPeers`): its address of each family asked
    /// for, its AS, listen port and cluster ID.
    fn node_as_peer(&self, p: &'a BgpPeer, n: &NodeInfo, v4: bool, v6: bool) -> Vec<Candidate<'a>> {
        let families = [(v4, n.v4.map(IpAddr::V4)), (v6, n.v6)];
        families
            .into_iter()
            .filter_map(|(wanted, ip)| ip.filter(|_| wanted))
            .map(|ip| Candidate {
                from: p,
                ip,
                port: self.cluster.port(n).unwrap_or(0),
                asn: self.cluster.asn(n),
                local_asn: None,
                use_node_ip: p.spec.source_address != "None",
                calico_node: false,
                allow_local_as: 0,
                rr: n.rr,
            })
            .collect()
    }

    /// A chosen peering as a model peer (`buildPeerFromData`).
    fn build(&mut self, scope: Scope, c: Candidate<'a>) {
        let from = &c.from.metadata.name;
        let s = &c.from.spec;
        let Some(mine) = self.me.address_like(c.ip) else {
            self.warn(format!(
                "BGPPeer {from}: peer {} needs an address of its family on this node; left out",
                c.ip
            ));
            return;
        };
        if c.ip == mine {
            return;
        }
        if c.asn == 0 {
            self.warn(format!("BGPPeer {from}: no asNumber; left out"));
            return;
        }
        // `local as N` when set (`buildPeerFromData`): the session's AS, against which
        // iBGP/eBGP is decided.
        let local_asn = c.local_asn.unwrap_or(self.asn);
        // Filters in the peer's order; one that is missing or left out is skipped, as confd
        // skips a BGPFilter it cannot read.
        let mut filters = Vec::new();
        for name in &s.filters {
            if self.filters.iter().any(|f| f.name == *name) {
                filters.push(name.clone());
            } else {
                self.warn(format!(
                    "BGPPeer {from}: BGPFilter {name} is not applied (not in the datastore, or \
                     left out) (peer {})",
                    c.ip
                ));
            }
        }
        if s.password.as_ref().is_some_and(secret) {
            self.warn(format!(
                "BGPPeer {from}: password is not applied in etcd mode (peer {})",
                c.ip
            ));
        }
        let (kind, auto_passive) = match scope {
            Scope::Global => ("Global", c.calico_node),
            Scope::Node => ("Node", false),
        };
        let mut name = peer_name(kind, c.ip);
        if c.port != 0 {
            name = format!("{name}_port_{}", c.port);
        }
        let ebgp = c.asn != local_asn;
        let next_hop = match s.next_hop_mode.as_deref() {
            Some("Self") => NextHopMode::Myself,
            Some("Keep") => NextHopMode::Keep,
            Some(_) => NextHopMode::Auto,
            // The legacy field counts for eBGP only.
            None if s.keep_original_next_hop && ebgp => NextHopMode::Keep,
            None => NextHopMode::Auto,
        };
        let mut settings = PeerDefaults {
            source_address: c.use_node_ip.then_some(mine),
            passive: auto_passive && passive(c.ip, mine),
            next_hop,
            allow_local_as: c.allow_local_as as usize,
            // Reflect to iBGP peers outside this reflector's cluster (contract §2.5).
            rr_client: !ebgp && self.me.rr.is_some() && c.rr != self.me.rr,
            local_asn: (local_asn != self.asn).then_some(local_asn),
            filters,
            ..template()
        };
        match s.ttl_security.filter(|&n| n > 0) {
            Some(hops) => settings.ttl_security = Some(hops),
            None => settings.ttl = Some(MULTIHOP_TTL),
        }
        if let Some(t) = s.max_restart_time {
            settings.restart_time = restart_time(t.seconds);
        }
        if let Some(t) = s.keepalive_time {
            settings.keepalive = Some(u16::try_from(t.seconds).unwrap_or(u16::MAX));
        }
        let (address, port) = (c.ip, if c.port == 0 { BGP_PORT } else { c.port });
        if let Some(other) = self
            .peers
            .iter()
            .find(|p| p.address == address && p.port == port)
        {
            let other = other.name.clone();
            self.warn(format!(
                "BGPPeer {from}: {name} would be a second session to {address} port {port} \
                 beside {other}; left out"
            ));
            return;
        }
        // `reachableBy`: the session's path pinned to a gateway, a static route to the peer
        // (confd's `bird_aggr.cfg.template`: `route PEER/32 via GW;`).
        if !s.reachable_by.is_empty() {
            match s.reachable_by.parse::<IpAddr>() {
                Ok(via) if via.is_ipv4() == address.is_ipv4() => {
                    let route = StaticRoute {
                        prefix: IpNet::from(address),
                        via,
                    };
                    if !self.static_routes.contains(&route) {
                        self.static_routes.push(route);
                    }
                }
                _ => self.warn(format!(
                    "BGPPeer {from}: reachableBy {} is not an address of the peer's family; \
                     left out (peer {})",
                    s.reachable_by, c.ip
                )),
            }
        }
        self.peers.push(Peer {
            name,
            address,
            port,
            asn: c.asn,
            settings,
        });
    }

    /// Service ranges this node advertises (`updateGlobalRoutes`): every cluster IP range;
    /// external and load-balancer ranges that are not single addresses (single ones are
    /// per-service routes); load-balancer ranges only while `serviceLoadBalancerAggregation`
    /// is not `Disabled`; nothing on a node labelled to be excluded.
    fn services(&self) -> Vec<IpNet> {
        let Some(g) = self.cluster.global else {
            return Vec::new();
        };
        if self.me.labels.get(EXCLUDE_SERVICES).map(String::as_str) == Some("true") {
            return Vec::new();
        }
        let range = |n: &IpNet| n.prefix_len() < n.max_prefix_len();
        let aggregate = g.service_load_balancer_aggregation.as_deref() != Some("Disabled");
        let cidrs = |list: &[super::resources::CidrBlock]| -> Vec<IpNet> {
            list.iter().filter_map(|b| b.cidr).collect()
        };
        let mut out = cidrs(&g.service_cluster_ips);
        out.extend(cidrs(&g.service_external_ips).into_iter().filter(range));
        if aggregate {
            out.extend(
                cidrs(&g.service_load_balancer_ips)
                    .into_iter()
                    .filter(range),
            );
        }
        let mut seen = Vec::new();
        out.retain(|n| {
            let first = !seen.contains(n);
            seen.push(*n);
            first
        });
        out
    }

    /// `prefixAdvertisements` of one BGPConfiguration, names resolved through that resource's
    /// `communities` (`getPrefixAdvertisementsKVPair`, `processCommunityRules`).
    fn communities(&mut self, c: &BgpConfigurationSpec) -> Vec<PrefixCommunities> {
        let mut out = Vec::new();
        for adv in &c.prefix_advertisements {
            let Some(prefix) = adv.cidr else { continue };
            let mut communities: Vec<AnyCommunity> = Vec::new();
            for item in &adv.communities {
                let text = match item.parse::<AnyCommunity>() {
                    Ok(_) => item.as_str(),
                    Err(_) => match c.communities.iter().find(|n| &n.name == item) {
                        Some(named) => named.value.as_str(),
                        None => {
                            self.warn(format!(
                                "prefixAdvertisements {prefix}: {item:?} is neither a community \
                                 nor a defined name; left out"
                            ));
                            continue;
                        }
                    },
                };
                match text.parse::<AnyCommunity>() {
                    Ok(x) if !communities.contains(&x) => communities.push(x),
                    Ok(_) => {}
                    Err(e) => self.warn(format!("prefixAdvertisements {prefix}: {e}; left out")),
                }
            }
            if !communities.is_empty() {
                out.push(PrefixCommunities {
                    prefix,
                    communities,
                });
            }
        }
        out
    }
}

/// Calico's passive rule (contract §2.4): wait for a peer whose address is greater **as a
/// string** (Go's `peerIP > currentNodeIP`), so exactly one side dials.
fn passive(peer: IpAddr, mine: IpAddr) -> bool {
    peer.to_string() > mine.to_string()
}

fn restart_time(seconds: u64) -> u16 {
    // In range: MAX_RESTART_TIME fits a u16.
    seconds.min(MAX_RESTART_TIME) as u16
}

fn secret(p: &Password) -> bool {
    p.secret_key_ref.is_some()
}

/// `IP`, `IP:port` or `[IPv6]:port` (confd's `parseIPPort`); port 0 when none.
fn ip_port(text: &str) -> Option<(IpAddr, u16)> {
    if let Ok(ip) = text.parse() {
        return Some((ip, 0));
    }
    let sa: std::net::SocketAddr = text.parse().ok()?;
    Some((sa.ip(), sa.port()))
}

/// This node's blocks (contract §3.1): its held affinities, without /32 and /128 blocks.
fn originate(node: &str, r: &Resources) -> Vec<IpNet> {
    r.affinities
        .get(node)
        .into_iter()
        .flatten()
        .filter(|(net, a)| a.held() && net.prefix_len() < net.max_prefix_len())
        .map(|(net, _)| *net)
        .collect()
}

/// IPPools (`processIPPool`): VXLAN wins over IP-in-IP, as `poolUsesVXLAN` is asked first.
fn pools(r: &Resources) -> Vec<Pool> {
    r.ip_pools
        .values()
        .map(|p| {
            let s = &p.spec;
            let encapsulation = match (s.vxlan_mode.as_str(), s.ipip_mode.as_str()) {
                ("Always", _) => Encapsulation::Vxlan,
                ("CrossSubnet", _) => Encapsulation::VxlanCrossSubnet,
                (_, "Always") => Encapsulation::Ipip,
                (_, "CrossSubnet") => Encapsulation::IpipCrossSubnet,
                _ => Encapsulation::None,
            };
            Pool {
                cidr: s.cidr,
                encapsulation,
                bgp_export: !s.disable_bgp_export,
            }
        })
        .collect()
}

/// `logSeverityScreen` (Logrus level names) as wren's log level.
fn log_level(severity: &str) -> LogLevel {
    match severity.to_ascii_lowercase().as_str() {
        "debug" | "trace" => LogLevel::Debug,
        "warning" | "warn" => LogLevel::Warn,
        "error" | "fatal" | "panic" | "none" => LogLevel::Error,
        _ => LogLevel::Info,
    }
}

#[cfg(test)]
mod tests;
