//! Calico's resources as Calico keeps them in etcd v3: the keys, the JSON values, and the set
//! of them one datastore read (then each watch event) builds up.
//!
//! Shapes come from Calico's sources (projectcalico/calico, master of Aug 2026):
//! - keys: `libcalico-go/lib/backend/model/resource.go` (`/calico/resources/v3/projectcalico.org/
//!   <plural>/<name>` for cluster-wide kinds), `block_affinity.go`
//!   (`/calico/ipam/v2/host/<node>/ipv4|ipv6/block/<cidr, '/' as '-'>`), `block.go`
//!   (`/calico/ipam/v2/assignment/ipv4|ipv6/block/<cidr>`);
//! - values: the v3 API types in `api/pkg/apis/projectcalico/v3` (`bgpconfig.go`, `bgppeer.go`,
//!   `bgpfilter.go`, `ippool.go`), the Node in `libcalico-go/lib/apis/internalapi/node.go`, the IPAM values in
//!   the model files above.
//!
//! Unknown fields are ignored, as Go's `encoding/json` does. A value that does not parse is an
//! error naming its key (and the line and column inside the JSON); the resource is then left
//! as it was, never half applied.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer};

use crate::config::Error;

/// Where Calico's v3 resources live.
pub const RESOURCES: &str = "/calico/resources/v3/projectcalico.org/";
/// Where IPAM block affinities live (`host` affinities only: `virtual` ones belong to no node).
pub const AFFINITIES: &str = "/calico/ipam/v2/host/";
/// Where IPAM blocks live.
pub const BLOCKS: &str = "/calico/ipam/v2/assignment/";

/// `metadata` of a v3 resource: only what decisions read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Metadata {
    pub name: String,
    pub labels: HashMap<String, String>,
}

/// A Calico Node (`internalapi.Node`): its labels (for selectors) and BGP settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Node {
    pub metadata: Metadata,
    pub spec: NodeSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NodeSpec {
    /// Absent on nodes that run no BGP (Calico's confd then knows no address for them).
    pub bgp: Option<NodeBgp>,
}

/// `NodeBGPSpec`. The addresses are CIDRs with the host's address and its subnet
/// (`10.0.0.1/24`): the address is the node IP, the subnet feeds IPIP CrossSubnet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeBgp {
    pub as_number: Option<AsNumber>,
    #[serde(deserialize_with = "optional")]
    pub ipv4_address: Option<Ipv4Net>,
    #[serde(deserialize_with = "optional")]
    pub ipv6_address: Option<Ipv6Net>,
    /// Set on route reflectors (contract §2.5).
    #[serde(rename = "routeReflectorClusterID", deserialize_with = "optional")]
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
}

/// A BGPConfiguration: `default` for the cluster, `node.<name>` for one node.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BgpConfiguration {
    pub metadata: Metadata,
    pub spec: BgpConfigurationSpec,
}

/// `BGPConfigurationSpec` (`bgpconfig.go`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BgpConfigurationSpec {
    pub log_severity_screen: String,
    /// Unset counts as enabled (confd's default `node_mesh` value in `client.go`).
    pub node_to_node_mesh_enabled: Option<bool>,
    pub as_number: Option<AsNumber>,
    #[serde(rename = "serviceLoadBalancerIPs")]
    pub service_load_balancer_ips: Vec<CidrBlock>,
    #[serde(rename = "serviceExternalIPs")]
    pub service_external_ips: Vec<CidrBlock>,
    #[serde(rename = "serviceClusterIPs")]
    pub service_cluster_ips: Vec<CidrBlock>,
    /// `Enabled` (the default) or `Disabled`.
    pub service_load_balancer_aggregation: Option<String>,
    pub communities: Vec<NamedCommunity>,
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
    /// 0 is unset (Go's `omitempty`).
    pub listen_port: u16,
    pub node_mesh_password: Option<Password>,
    pub node_mesh_max_restart_time: Option<Duration>,
    /// `None` or `NodeIP`.
    pub bind_mode: Option<String>,
    pub ignored_interfaces: Vec<String>,
    /// Calico 3.32's route priorities (the kernel metric of ordinary routes), per family.
    #[serde(rename = "ipv4NormalRoutePriority")]
    pub ipv4_normal_route_priority: Option<u32>,
    #[serde(rename = "ipv6NormalRoutePriority")]
    pub ipv6_normal_route_priority: Option<u32>,
}

/// `{cidr}` of the service range lists; an empty CIDR is skipped, as confd does.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CidrBlock {
    #[serde(deserialize_with = "optional")]
    pub cidr: Option<IpNet>,
}

/// A named community: `value` is `a:b` or `a:b:c`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NamedCommunity {
    pub name: String,
    pub value: String,
}

/// Communities (literal `a:b`, `a:b:c`, or a `NamedCommunity` name) for prefixes in `cidr`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PrefixAdvertisement {
    #[serde(deserialize_with = "optional")]
    pub cidr: Option<IpNet>,
    pub communities: Vec<String>,
}

/// `BGPPassword`: only a reference to a Kubernetes Secret exists.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Password {
    pub secret_key_ref: Option<SecretKeyRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// A BGPPeer (`bgppeer.go`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BgpPeer {
    pub metadata: Metadata,
    pub spec: BgpPeerSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BgpPeerSpec {
    pub node: String,
    pub node_selector: String,
    /// `IP` or `IP:port` (`[v6]:port`); parsed when decisions need it, as confd does.
    #[serde(rename = "peerIP")]
    pub peer_ip: String,
    pub as_number: Option<AsNumber>,
    #[serde(rename = "localASNumber")]
    pub local_as_number: Option<AsNumber>,
    pub peer_selector: String,
    pub keep_original_next_hop: bool,
    /// `Auto`, `Self` or `Keep`; wins over `keepOriginalNextHop` when set.
    pub next_hop_mode: Option<String>,
    pub password: Option<Password>,
    /// `UseNodeIP` (the default when empty) or `None`.
    pub source_address: String,
    pub max_restart_time: Option<Duration>,
    pub keepalive_time: Option<Duration>,
    #[serde(rename = "numAllowedLocalASNumbers")]
    pub num_allowed_local_as_numbers: Option<u32>,
    pub ttl_security: Option<u8>,
    pub reachable_by: String,
    pub filters: Vec<String>,
    pub local_workload_selector: String,
    /// `Auto` (the default) or `Manual`.
    pub reverse_peering: Option<String>,
}

/// A BGPFilter (`bgpfilter.go`): four ordered rule lists.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BgpFilter {
    pub metadata: Metadata,
    pub spec: BgpFilterSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BgpFilterSpec {
    pub export_v4: Vec<BgpFilterRule>,
    pub import_v4: Vec<BgpFilterRule>,
    pub export_v6: Vec<BgpFilterRule>,
    pub import_v6: Vec<BgpFilterRule>,
}

/// `BGPFilterRuleV4`/`V6` (`api/pkg/apis/projectcalico/v3/bgpfilter.go`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BgpFilterRule {
    /// `Accept` or `Reject`.
    pub action: String,
    pub cidr: String,
    /// `Equal`, `NotEqual`, `In` or `NotIn`; set exactly when `cidr` is.
    pub match_operator: String,
    pub prefix_length: Option<PrefixLength>,
    /// `RemotePeers` or empty.
    pub source: String,
    pub interface: String,
    /// `eBGP`, `iBGP` or empty.
    pub peer_type: String,
    pub communities: Option<CommunityMatch>,
    #[serde(rename = "asPathPrefix")]
    pub as_path_prefix: Vec<AsNumber>,
    pub priority: Option<i64>,
    pub operations: Vec<FilterOperation>,
}

/// `BGPFilterCommunityMatch`: exactly one `aa:nn` or `aa:nn:mm` value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CommunityMatch {
    pub values: Vec<String>,
}

/// `BGPFilterOperation`: exactly one field set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FilterOperation {
    pub add_community: Option<AddCommunity>,
    #[serde(rename = "prependASPath")]
    pub prepend_as_path: Option<PrependAsPath>,
    pub set_priority: Option<SetPriority>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AddCommunity {
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PrependAsPath {
    pub prefix: Vec<AsNumber>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SetPriority {
    pub value: Option<i64>,
}

/// `BGPFilterPrefixLengthV4`/`V6` (int32 in Calico).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PrefixLength {
    pub min: Option<i32>,
    pub max: Option<i32>,
}

/// An IPPool (`ippool.go`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IpPool {
    #[serde(default)]
    pub metadata: Metadata,
    pub spec: IpPoolSpec,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpPoolSpec {
    pub cidr: IpNet,
    /// `Never` (or empty), `Always`, `CrossSubnet`.
    #[serde(default, rename = "vxlanMode")]
    pub vxlan_mode: String,
    #[serde(default, rename = "ipipMode")]
    pub ipip_mode: String,
    #[serde(default, rename = "disableBGPExport")]
    pub disable_bgp_export: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub block_size: u8,
}

/// A block affinity value (`model.BlockAffinity`); an empty value is `{}` (Calico's
/// `parseValue`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BlockAffinity {
    /// `confirmed`, `pending`, `pendingDeletion`, or empty in old data.
    pub state: String,
    pub deleted: bool,
}

impl BlockAffinity {
    /// Whether the block counts as this node's. confd drops `pending` affinities ("we shouldn't
    /// act upon them unless they are confirmed", `confd/pkg/backends/calico/client.go`
    /// `updateCache`); a `deleted` one is being released, so wren drops it too.
    pub fn held(&self) -> bool {
        self.state != "pending" && !self.deleted
    }
}

/// An IPAM block (`model.AllocationBlock`): its CIDR and the node it is affine to
/// (`host:<node>`), when any.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Block {
    pub cidr: IpNet,
    #[serde(default)]
    pub affinity: Option<String>,
    #[serde(default)]
    pub deleted: bool,
}

/// An AS number as Calico's `numorstring.ASNumber` reads it: a JSON number, or a string that
/// is either decimal or the dotted `high.low` form (RFC 5396 asdot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsNumber(pub u32);

impl FromStr for AsNumber {
    type Err = String;

    fn from_str(s: &str) -> Result<AsNumber, String> {
        let bad = || format!("invalid AS number {s:?}");
        if let Ok(n) = s.parse() {
            return Ok(AsNumber(n));
        }
        let (high, low) = s.split_once('.').ok_or_else(bad)?;
        let high: u16 = high.parse().map_err(|_| bad())?;
        let low: u16 = low.parse().map_err(|_| bad())?;
        Ok(AsNumber(u32::from(high) << 16 | u32::from(low)))
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AsNumber, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(AsNumber(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A Kubernetes `metav1.Duration`: Go's `time.Duration` text (`90s`, `2m0s`, `1h30m`,
/// `1.5s`, `500ms`), kept in whole seconds, rounded as confd's `math.Round(d.Seconds())`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration {
    pub seconds: u64,
}

impl FromStr for Duration {
    type Err = String;

    /// Go's `time.ParseDuration`: an optional sign, then number+unit pairs; `0` alone is
    /// allowed. A negative duration is refused: no Calico timer can be negative.
    fn from_str(s: &str) -> Result<Duration, String> {
        let bad = || format!("invalid duration {s:?}");
        let rest = s.strip_prefix('+').unwrap_or(s);
        if rest == "0" {
            return Ok(Duration { seconds: 0 });
        }
        if rest.is_empty() || rest.starts_with('-') {
            return Err(bad());
        }
        let mut total = 0f64;
        let mut rest = rest;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale = match &rest[..unit] {
                "ns" => 1e-9,
                "us" | "µs" | "μs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad()),
            };
            total += value * scale;
            rest = &rest[unit..];
        }
        if !total.is_finite() || total > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Duration {
            // Rounded half away from zero, as Go's math.Round; in range, checked above.
            seconds: total.round() as u64,
        })
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A string field that Go leaves empty when unset: `""` (or `null`) is `None`, anything else
/// must parse.
fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// Every Calico resource wren reads, as one datastore read and the watch events after it
/// leave them. Keyed by name (BTreeMaps, so decisions walk them in a stable order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub nodes: BTreeMap<String, Node>,
    pub bgp_configurations: BTreeMap<String, BgpConfiguration>,
    pub bgp_peers: BTreeMap<String, BgpPeer>,
    pub bgp_filters: BTreeMap<String, BgpFilter>,
    pub ip_pools: BTreeMap<String, IpPool>,
    /// Block affinities by node, then block.
    pub affinities: BTreeMap<String, BTreeMap<IpNet, BlockAffinity>>,
    pub blocks: BTreeMap<IpNet, Block>,
}

/// What a key names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Node(String),
    BgpConfiguration(String),
    BgpPeer(String),
    BgpFilter(String),
    IpPool(String),
    Affinity(String, IpNet),
    Block(IpNet),
}

impl Key {
    /// Parses a datastore key; `Ok(None)` for keys wren does not read (other kinds,
    /// namespaced resources, `virtual` affinities).
    fn parse(key: &str) -> Result<Option<Key>, String> {
        if let Some(rest) = key.strip_prefix(RESOURCES) {
            let Some((plural, name)) = rest.split_once('/') else {
                return Ok(None);
            };
            if name.is_empty() || name.contains('/') {
                return Ok(None);
            }
            let name = name.to_string();
            return Ok(match plural {
                "nodes" => Some(Key::Node(name)),
                "bgpconfigurations" => Some(Key::BgpConfiguration(name)),
                "bgppeers" => Some(Key::BgpPeer(name)),
                "bgpfilters" => Some(Key::BgpFilter(name)),
                "ippools" => Some(Key::IpPool(name)),
                _ => None,
            });
        }
        if let Some(rest) = key.strip_prefix(AFFINITIES) {
            let parts: Vec<&str> = rest.split('/').collect();
            let [host, family, "block", cidr] = parts[..] else {
                return Ok(None);
            };
            return Ok(Some(Key::Affinity(
                host.to_string(),
                block_cidr(family, cidr)?,
            )));
        }
        if let Some(rest) = key.strip_prefix(BLOCKS) {
            let parts: Vec<&str> = rest.split('/').collect();
            let [family, "block", cidr] = parts[..] else {
                return Ok(None);
            };
            return Ok(Some(Key::Block(block_cidr(family, cidr)?)));
        }
        Ok(None)
    }
}

/// The CIDR at the end of an IPAM key: `10.0.0.0-26` (its `/` written as `-`), masked as
/// Calico's `KeyFromDefaultPath` does, in the family the key says.
fn block_cidr(family: &str, text: &str) -> Result<IpNet, String> {
    let net: IpNet = text
        .replacen('-', "/", 1)
        .parse()
        .map_err(|_| format!("{text:?} is not a CIDR with '-' for '/'"))?;
    let v4 = matches!(net.addr(), IpAddr::V4(_));
    match (family, v4) {
        ("ipv4", true) | ("ipv6", false) => Ok(net.trunc()),
        ("ipv4" | "ipv6", _) => Err(format!("{net} is not an {family} block")),
        _ => Err(format!("unknown address family {family:?}")),
    }
}

impl Resources {
    /// Applies one datastore entry: a value put at `key`, or (`None`) the key deleted. Returns
    /// whether the key is one wren reads. On error nothing changes and the error names the key.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) -> Result<bool, Error> {
        let parsed = Key::parse(key).map_err(|message| Error {
            file: Some(key.to_string()),
            at: None,
            message,
        })?;
        let Some(parsed) = parsed else {
            return Ok(false);
        };
        let Some(value) = value else {
            self.remove(parsed);
            return Ok(true);
        };
        match parsed {
            Key::Node(name) => {
                self.nodes.insert(name, json(key, value)?);
            }
            Key::BgpConfiguration(name) => {
                self.bgp_configurations.insert(name, json(key, value)?);
            }
            Key::BgpPeer(name) => {
                self.bgp_peers.insert(name, json(key, value)?);
            }
            Key::BgpFilter(name) => {
                self.bgp_filters.insert(name, json(key, value)?);
            }
            Key::IpPool(name) => {
                self.ip_pools.insert(name, json(key, value)?);
            }
            Key::Affinity(host, cidr) => {
                let value = if value.is_empty() { b"{}" } else { value };
                let affinity = json(key, value)?;
                self.affinities
                    .entry(host)
                    .or_default()
                    .insert(cidr, affinity);
            }
            Key::Block(cidr) => {
                self.blocks.insert(cidr, json(key, value)?);
            }
        }
        Ok(true)
    }

    fn remove(&mut self, key: Key) {
        match key {
            Key::Node(name) => drop(self.nodes.remove(&name)),
            Key::BgpConfiguration(name) => drop(self.bgp_configurations.remove(&name)),
            Key::BgpPeer(name) => drop(self.bgp_peers.remove(&name)),
            Key::BgpFilter(name) => drop(self.bgp_filters.remove(&name)),
            Key::IpPool(name) => drop(self.ip_pools.remove(&name)),
            Key::Affinity(host, cidr) => {
                if let Some(blocks) = self.affinities.get_mut(&host) {
                    blocks.remove(&cidr);
                    if blocks.is_empty() {
                        self.affinities.remove(&host);
                    }
                }
            }
            Key::Block(cidr) => drop(self.blocks.remove(&cidr)),
        }
    }
}

/// Parses a JSON value; the error is placed at `KEY:LINE:COL`.
fn json<T: for<'de> Deserialize<'de>>(key: &str, value: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(value).map_err(|e| Error {
        file: Some(key.to_string()),
        at: (e.line() > 0).then(|| (e.line(), e.column())),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "/calico/resources/v3/projectcalico.org/nodes/node-a";

    #[test]
    fn bgp_filters_come_and_go() {
        let mut r = Resources::default();
        let key = "/calico/resources/v3/projectcalico.org/bgpfilters/edge";
        let value = br#"{"kind":"BGPFilter","metadata":{"name":"edge"},"spec":{"exportV6":[
            {"action":"Reject","cidr":"2001:db8::/32","matchOperator":"In",
             "prefixLength":{"max":64},"futureField":1}]}}"#;
        assert_eq!(r.apply(key, Some(value)), Ok(true));
        let rule = &r.bgp_filters["edge"].spec.export_v6[0];
        assert_eq!(
            (rule.action.as_str(), rule.match_operator.as_str()),
            ("Reject", "In")
        );
        let max = PrefixLength {
            min: None,
            max: Some(64),
        };
        assert_eq!(rule.prefix_length, Some(max));
        let e = r
            .apply(key, Some(br#"{"spec": {"importV4": 3}}"#))
            .unwrap_err();
        assert_eq!(e.file.as_deref(), Some(key));
        assert_eq!(
            r.bgp_filters["edge"].spec.export_v6.len(),
            1,
            "kept as it was"
        );
        assert_eq!(r.apply(key, None), Ok(true));
        assert!(r.bgp_filters.is_empty());
    }

    #[test]
    fn reads_a_node_as_calico_writes_it() {
        let mut r = Resources::default();
        let value = br#"{"kind":"Node","apiVersion":"projectcalico.org/v3",
            "metadata":{"name":"node-a","uid":"x","labels":{"rack":"r1"},
              "creationTimestamp":"2026-01-01T00:00:00Z"},
            "spec":{"bgp":{"ipv4Address":"10.0.0.1/24","asNumber":"1.10",
              "routeReflectorClusterID":"244.0.0.1","newField":1},
              "orchRefs":[{"nodeName":"a","orchestrator":"k8s"}]}}"#;
        assert_eq!(r.apply(NODE, Some(value)), Ok(true));
        let node = &r.nodes["node-a"];
        assert_eq!(node.metadata.labels["rack"], "r1");
        let bgp = node.spec.bgp.as_ref().unwrap();
        assert_eq!(bgp.ipv4_address, Some("10.0.0.1/24".parse().unwrap()));
        assert_eq!(bgp.ipv6_address, None);
        assert_eq!(bgp.as_number, Some(AsNumber(65546)));
        assert_eq!(
            bgp.route_reflector_cluster_id,
            Some(Ipv4Addr::new(244, 0, 0, 1))
        );
        assert_eq!(r.apply(NODE, None), Ok(true));
        assert!(r.nodes.is_empty());
    }

    #[test]
    fn a_malformed_value_names_its_key_and_changes_nothing() {
        let mut r = Resources::default();
        r.apply(NODE, Some(br#"{"metadata":{"name":"node-a"}}"#))
            .unwrap();
        let before = r.clone();
        for bad in [
            &br#"{"spec":{"bgp":{"ipv4Address":"10.0.0.300/24"}}}"#[..],
            br#"{"spec":{"bgp":{"asNumber":"1.2.3"}}}"#,
            br#"{"spec":{"bgp":{"asNumber":-1}}}"#,
            br#"not json"#,
            b"",
        ] {
            let e = r.apply(NODE, Some(bad)).unwrap_err();
            assert!(e.to_string().starts_with(NODE), "{e}");
            assert_eq!(r, before);
        }
        let e = r
            .apply(
                "/calico/ipam/v2/host/node-a/ipv4/block/10.0.0.0-99",
                Some(b"{}"),
            )
            .unwrap_err();
        assert!(e.to_string().contains("10.0.0.0-99"), "{e}");
    }

    #[test]
    fn reads_peers_configurations_and_pools() {
        let mut r = Resources::default();
        let peer = br#"{"metadata":{"name":"tor"},"spec":{"peerIP":"198.51.100.254:1790",
            "asNumber":65000,"nodeSelector":"rack == 'r1'","maxRestartTime":"2m30.4s",
            "keepaliveTime":"10s","ttlSecurity":1,"password":{"secretKeyRef":{"name":"s","key":"k"}}}}"#;
        r.apply(
            "/calico/resources/v3/projectcalico.org/bgppeers/tor",
            Some(peer),
        )
        .unwrap();
        let spec = &r.bgp_peers["tor"].spec;
        assert_eq!(spec.as_number, Some(AsNumber(65000)));
        assert_eq!(spec.max_restart_time, Some(Duration { seconds: 150 }));
        assert_eq!(spec.keepalive_time, Some(Duration { seconds: 10 }));
        assert_eq!(spec.ttl_security, Some(1));
        let config = br#"{"metadata":{"name":"default"},"spec":{"nodeToNodeMeshEnabled":false,
            "asNumber":64513,"serviceClusterIPs":[{"cidr":"10.96.0.0/12"},{}],
            "nodeMeshMaxRestartTime":"1m","listenPort":1790}}"#;
        r.apply(
            "/calico/resources/v3/projectcalico.org/bgpconfigurations/default",
            Some(config),
        )
        .unwrap();
        let spec = &r.bgp_configurations["default"].spec;
        assert_eq!(spec.node_to_node_mesh_enabled, Some(false));
        assert_eq!(spec.service_cluster_ips.len(), 2);
        assert_eq!(spec.service_cluster_ips[1].cidr, None);
        assert_eq!(
            spec.node_mesh_max_restart_time,
            Some(Duration { seconds: 60 })
        );
        let pool = br#"{"metadata":{"name":"p"},"spec":{"cidr":"192.168.0.0/16",
            "ipipMode":"Always","vxlanMode":"Never","disableBGPExport":true,"natOutgoing":true}}"#;
        r.apply(
            "/calico/resources/v3/projectcalico.org/ippools/p",
            Some(pool),
        )
        .unwrap();
        assert!(r.ip_pools["p"].spec.disable_bgp_export);
        // A pool without a CIDR is malformed.
        assert!(
            r.apply(
                "/calico/resources/v3/projectcalico.org/ippools/q",
                Some(br#"{"spec":{}}"#)
            )
            .is_err()
        );
    }

    #[test]
    fn reads_ipam_keys() {
        let mut r = Resources::default();
        let key = "/calico/ipam/v2/host/node-a/ipv4/block/192.168.10.0-26";
        assert_eq!(
            r.apply(key, Some(br#"{"state":"confirmed","deleted":false}"#)),
            Ok(true)
        );
        // Calico treats an empty value as `{}`.
        let key6 = "/calico/ipam/v2/host/node-a/ipv6/block/fd00::-122";
        assert_eq!(r.apply(key6, Some(b"")), Ok(true));
        let blocks = &r.affinities["node-a"];
        assert!(blocks[&"192.168.10.0/26".parse().unwrap()].held());
        assert!(blocks[&"fd00::/122".parse().unwrap()].held());
        r.apply(key, None).unwrap();
        r.apply(key6, None).unwrap();
        assert!(r.affinities.is_empty());
        // The family in the key must match the CIDR.
        assert!(
            r.apply("/calico/ipam/v2/host/a/ipv6/block/10.0.0.0-26", Some(b"{}"))
                .is_err()
        );
        let block = br#"{"cidr":"192.168.10.0/26","affinity":"host:node-a","allocations":[0,null],
            "unallocated":[1],"attributes":[],"sequenceNumber":3,"deleted":false}"#;
        let key = "/calico/ipam/v2/assignment/ipv4/block/192.168.10.0-26";
        assert_eq!(r.apply(key, Some(block)), Ok(true));
        assert_eq!(
            r.blocks[&"192.168.10.0/26".parse().unwrap()]
                .affinity
                .as_deref(),
            Some("host:node-a")
        );
    }

    #[test]
    fn ignores_what_it_does_not_read() {
        let mut r = Resources::default();
        for key in [
            "/calico/resources/v3/projectcalico.org/felixconfigurations/default",
            "/calico/resources/v3/projectcalico.org/networkpolicies/ns/p",
            "/calico/resources/v3/projectcalico.org/nodes",
            "/calico/ipam/v2/virtual/x/ipv4/block/10.0.0.0-26",
            "/calico/ipam/v2/handle/k8s-pod-network.abc",
            "/calico/felix/v2/x",
        ] {
            assert_eq!(r.apply(key, Some(b"garbage")), Ok(false), "{key}");
        }
        assert_eq!(r, Resources::default());
    }

    #[test]
    fn durations_and_as_numbers_as_go_reads_them() {
        for (text, seconds) in [
            ("0", 0),
            ("120s", 120),
            ("2m0s", 120),
            ("1h30m", 5400),
            ("1.5s", 2),
            ("499ms", 0),
            ("500ms", 1),
            ("90000us", 0),
        ] {
            assert_eq!(text.parse(), Ok(Duration { seconds }), "{text}");
        }
        for bad in ["", "s", "10", "-1s", "1d", "1..2s", "1e400h"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
        assert_eq!("64512".parse(), Ok(AsNumber(64512)));
        assert_eq!("0.1".parse(), Ok(AsNumber(1)));
        assert!("65536.1".parse::<AsNumber>().is_err());
        assert!("4294967296".parse::<AsNumber>().is_err());
    }
}
