//! What the daemon runs: the configuration model every source (`crate::config`: the TOML file,
//! BIRD's language as confd renders it, a Calico datastore) produces. Values are typed and
//! peers resolved (their defaults applied); where an item was written is kept by its source,
//! not here. The sessions, the RIB, policy and the FIB read it; none of them reads a source.
//!
//! Defaults follow what Calico's generated BIRD config sets (contract §2.7): hold 240 s,
//! connect delay 2 s, connect retry 5 s, error wait 5..30 s, graceful restart on with 120 s,
//! add-path rx+tx.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::wire::attr::{Community, LargeCommunity};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// BGP identifier (RFC 4271 §4.2).
    pub router_id: Ipv4Addr,
    /// Local AS number.
    pub asn: u32,
    pub listen: Listen,
    /// Prefixes this node originates (its IPAM blocks: IPv4 /26, IPv6 /122 in Calico):
    /// announced, installed as blackholes, and nothing more specific inside them is exported.
    pub originate: Vec<IpNet>,
    /// Service ranges (cluster, external, load-balancer IPs): announced, never installed.
    pub services: Vec<IpNet>,
    /// IP pools: which learned routes are exported and how they reach the kernel.
    pub pools: Vec<Pool>,
    /// Communities added to exported prefixes inside a range (Calico's prefixAdvertisements).
    pub communities: Vec<PrefixCommunities>,
    /// Route reflector cluster ID (RFC 4456): set on a reflector, whose `rr_client` peers get
    /// reflected routes.
    pub cluster_id: Option<Ipv4Addr>,
    /// Most equal-cost paths installed for one prefix (BIRD's `merge paths`).
    pub max_paths: usize,
    pub kernel: KernelConfig,
    /// Least severe log messages written (stderr, for journald); a reload changes it.
    pub log_level: LogLevel,
    /// Address of the Prometheus text endpoint (`GET /metrics`); off when absent.
    pub metrics: Option<SocketAddr>,
    /// Every peer, its defaults applied.
    pub peers: Vec<Peer>,
    /// Named route filters (Calico's BGPFilter resources) that peers refer to by name.
    pub filters: Vec<BgpFilter>,
    /// Routes through a gateway written to the kernel (Calico's BGPPeer `reachableBy`).
    pub static_routes: Vec<StaticRoute>,
    /// Calico 3.32's route priority (BGPConfiguration `ipv4NormalRoutePriority` /
    /// `ipv6NormalRoutePriority`, 1024 by default; KubeVirt live migration): set, the kernel
    /// metric and LOCAL_PREF are coupled. A BGP route is written with metric
    /// 2147483647 − LOCAL_PREF (this priority without one); the node's own and learned
    /// routes go to iBGP peers with LOCAL_PREF 2147483647 − their metric (this priority when
    /// they have none); a learned route inside an own block with a metric below it is
    /// announced too. From confd 3.32 (`bgp_processor.go`: `buildExportFilter`'s prelude,
    /// `buildImportFilter`, `SetMetricForBGPRoutes` in `calico_kernel_programming`;
    /// `bird_aggr.cfg.template`'s `krt_metric < NormalRoutePriority`; contract §2.9, §3.2,
    /// §3.5, §3.7). Unset: Calico ≤ 3.31, whose routes carry no metric and LOCAL_PREF 100.
    pub normal_route_priority: Option<u32>,
}

/// A route to `prefix` through the gateway `via`: Calico's BGPPeer `reachableBy`, which confd
/// renders as `route PEER/32 via GW;` in the static protocol of `bird_aggr.cfg` (contract
/// §2.6, §3.1). BIRD writes it to the kernel (`proto bird`, through
/// `calico_kernel_programming` like any other route) and resolves the BGP next hops inside
/// it through the gateway (`gateway recursive`); it is exported only as Calico's rules say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticRoute {
    pub prefix: IpNet,
    pub via: IpAddr,
}

/// A Calico BGPFilter (`projectcalico.org/v3` `BGPFilterSpec`): four rule lists, one per
/// direction and family. A peer's filters run in the order the peer lists them; in a list the
/// first rule that matches a route decides; a route no rule decides goes on to Calico's own
/// rules (export: `calico_export_to_bgp_peers`; import: accepted), as confd renders them
/// (contract §3.2, §3.5).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BgpFilter {
    pub name: String,
    pub import_v4: Vec<FilterRule>,
    pub export_v4: Vec<FilterRule>,
    pub import_v6: Vec<FilterRule>,
    pub export_v6: Vec<FilterRule>,
}

/// One BGPFilter rule (`BGPFilterRuleV4`/`V6`): every condition set must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FilterRule {
    pub action: RuleAction,
    /// The prefix the route is compared with, and how.
    pub cidr: Option<(MatchOperator, IpNet)>,
    /// Bounds on the route's prefix length (only with `In`/`NotIn`), both inclusive.
    pub prefix_length: Option<(Option<u8>, Option<u8>)>,
    /// `RemotePeers`: only routes learned from BGP peers.
    pub from_peers: bool,
    /// Only routes through an interface whose name matches this glob (`*` wildcard).
    pub interface: Option<String>,
    /// `peerType`: only on sessions of this kind.
    pub peer_type: Option<PeerType>,
    /// `communities.values` (exactly one): only routes that carry this community.
    pub community: Option<AnyCommunity>,
    /// `asPathPrefix`: only routes whose AS path begins with these AS numbers.
    pub as_path_prefix: Vec<u32>,
    /// `priority`: only routes of this priority (LOCAL_PREF 2147483647 − priority).
    pub priority: Option<u32>,
    /// `operations`, in order, on a route the rule accepts.
    pub operations: Vec<Operation>,
}

impl FilterRule {
    /// A rule with no condition and no operation.
    pub fn any(action: RuleAction) -> FilterRule {
        FilterRule {
            action,
            cidr: None,
            prefix_length: None,
            from_peers: false,
            interface: None,
            peer_type: None,
            community: None,
            as_path_prefix: Vec::new(),
            priority: None,
            operations: Vec::new(),
        }
    }
}

/// `BGPFilterPeerType`: the kind of session a rule applies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerType {
    Ebgp,
    Ibgp,
}

/// One `BGPFilterOperation`: a change to a route an accepting rule lets through.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `addCommunity`: a standard (RFC 1997) or large (RFC 8092) community.
    AddCommunity(AnyCommunity),
    /// `prependASPath`: these AS numbers, in this order, before the path.
    PrependAsPath(Vec<u32>),
    /// `setPriority`: LOCAL_PREF becomes 2147483647 − priority.
    SetPriority(u32),
}

/// Calico's priority ↔ LOCAL_PREF mapping (`BirdIntMaxValue` in confd's
/// `template_funcs.go`): `bgp_local_pref = 2147483647 - priority`.
pub const PRIORITY_BASE: u32 = 2_147_483_647;

/// The priorities Calico accepts (`BGPFilterRuleV4.Priority`: 1 to 2147483646).
pub const PRIORITIES: std::ops::RangeInclusive<u32> = 1..=2_147_483_646;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Accept,
    Reject,
}

/// How a rule's CIDR is compared (`BGPFilterMatchOperator`): `Equal` the same prefix, `In`
/// the prefix or one inside it, and their negations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchOperator {
    Equal,
    NotEqual,
    In,
    NotIn,
}

/// One item of the model, for a source to say where it was written (`FILE:LINE:COL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// A top-level setting, by its name (`router_id`, `asn`, `cluster_id`, `max_paths`).
    Setting(&'static str),
    Originate(usize),
    Service(usize),
    Pool(usize),
    /// A `[[static_route]]`.
    StaticRoute(usize),
    /// A `[[communities]]` range, or one community in it.
    Communities(usize, Option<usize>),
    /// A peer, or one of its settings by name.
    Peer(usize, Option<&'static str>),
    /// A `[[filters]]` table, or one rule of one of its lists (`import_v4`, …) by index, or
    /// one key of that rule.
    Filter(usize, Option<(&'static str, usize, Option<&'static str>)>),
}

/// Log verbosity, most to least severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }
}

/// How routes reach the kernel.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelConfig {
    /// False: nothing is written (for unprivileged runs and the demo).
    pub enabled: bool,
    /// Routing table (254 is main).
    pub table: u32,
    /// Protocol number on our routes (12 is `proto bird`).
    pub protocol: u8,
    /// Route metric; none by default, as Calico's BIRD.
    pub metric: Option<u32>,
    /// Longest wait for every peer's End-of-RIB before routes left by a previous run go.
    pub startup_wait: u16,
    /// Seconds between full reads of the kernel table that repair drift (0: never). Between
    /// them wren follows the kernel's notifications, as no periodic scan is needed.
    pub reconcile_interval: u32,
    /// Learn other protocols' routes in the table (BIRD's `learn`, as Calico configures it):
    /// Felix's workload routes, so /32s borrowed from other nodes' blocks are advertised.
    pub learn: bool,
    /// Only this family's routes are read, learned and written; `None`: both. Calico runs
    /// `bird` (IPv4) and `bird6` (IPv6) side by side on one node, each owning its family's
    /// `proto bird` routes (contract §2.8), so neither may prune the other's.
    pub family: Option<AddressFamily>,
}

/// An IP address family (`family = "ipv4"` in `[kernel]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    Ipv4,
    Ipv6,
}

impl AddressFamily {
    /// Whether `net` is of this family.
    pub fn holds(self, net: &IpNet) -> bool {
        matches!(
            (self, net),
            (AddressFamily::Ipv4, IpNet::V4(_)) | (AddressFamily::Ipv6, IpNet::V6(_))
        )
    }
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            enabled: true,
            table: 254,
            protocol: 12,
            metric: None,
            startup_wait: 120,
            reconcile_interval: 3600,
            learn: true,
            family: None,
        }
    }
}

/// An IP pool (Calico IPPool).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub cidr: IpNet,
    #[serde(default)]
    pub encapsulation: Encapsulation,
    /// Whether routes inside the pool are exported to peers (`disableBGPExport` negated).
    #[serde(default = "yes")]
    pub bgp_export: bool,
}

fn yes() -> bool {
    true
}

/// How routes inside a pool reach the kernel (contract §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encapsulation {
    /// Plain `via NEXT_HOP`.
    #[default]
    None,
    /// `via NEXT_HOP dev tunl0 onlink`.
    Ipip,
    /// IP-in-IP only when the next hop is not on a connected subnet.
    IpipCrossSubnet,
    /// Felix programs these routes: wren leaves them out of the kernel.
    Vxlan,
    VxlanCrossSubnet,
}

/// Communities for exported prefixes inside `prefix`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixCommunities {
    pub prefix: IpNet,
    pub communities: Vec<AnyCommunity>,
}

/// A community as configured: `ASN:VALUE` (RFC 1997) or `A:B:C` (RFC 8092).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
pub enum AnyCommunity {
    Standard(Community),
    Large(LargeCommunity),
}

impl std::fmt::Display for AnyCommunity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnyCommunity::Standard(c) => c.fmt(f),
            AnyCommunity::Large(c) => c.fmt(f),
        }
    }
}

impl std::str::FromStr for AnyCommunity {
    type Err = String;

    fn from_str(s: &str) -> Result<AnyCommunity, String> {
        match s.matches(':').count() {
            1 => s.parse().map(AnyCommunity::Standard),
            2 => s.parse().map(AnyCommunity::Large),
            _ => Err(format!("{s:?} is neither ASN:VALUE nor A:B:C")),
        }
    }
}

/// Where wrend accepts BGP connections.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// Addresses to listen on; empty means no listener (every peer dials out).
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    /// IPv6 addresses take IPv6 connections only (`IPV6_V6ONLY`), so that another process can
    /// take IPv4 on the same port: `bird6` beside `bird`, as BIRD 1.6's two daemons do.
    /// Otherwise an IPv6 wildcard takes both families.
    pub v6_only: bool,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            addresses: vec![IpAddr::from([0u16; 8])],
            port: 179,
            v6_only: false,
        }
    }
}

/// Session settings of a peer (and, in the TOML file, the `[defaults]` table).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerDefaults {
    /// Proposed hold time in seconds (0, or at least 3; RFC 4271 §4.2).
    pub hold_time: u16,
    /// Keepalive interval; a third of the negotiated hold time when unset.
    pub keepalive: Option<u16>,
    /// Wait before the first connection attempt (BIRD's `connect delay time`).
    pub connect_delay: u16,
    /// ConnectRetry timer (RFC 4271 §10; BIRD's `connect retry time`).
    pub connect_retry: u16,
    /// Idle time after an error, doubling from the first value up to the second (BIRD's
    /// `error wait time`).
    pub error_wait: [u16; 2],
    /// Wait for the peer to connect; never dial.
    pub passive: bool,
    /// TCP MD5 signature key (RFC 2385).
    pub password: Option<String>,
    /// Local address the session uses (and binds to when dialling).
    pub source_address: Option<IpAddr>,
    /// IP TTL for the session's packets; when unset 1 for eBGP and the system's 64 for iBGP
    /// (BIRD's defaults). 1 makes the session directly connected (BIRD's `direct`), above 1
    /// multihop, which is also what BFD follows.
    pub ttl: Option<u8>,
    /// GTSM (RFC 5082): send TTL 255 and require at least 255 - hops on receipt.
    pub ttl_security: Option<u8>,
    /// Graceful restart (RFC 4724) and its restart time.
    pub graceful_restart: bool,
    pub restart_time: u16,
    /// Add-path (RFC 7911): "off", "rx", "tx" or "both".
    pub add_paths: AddPaths,
    /// Most paths per prefix sent when add-path send is negotiated.
    pub add_paths_send: usize,
    /// A route reflector client (RFC 4456); needs `cluster_id`.
    pub rr_client: bool,
    /// NEXT_HOP toward this peer: "auto" (self for eBGP, keep for iBGP), "self" or "keep".
    pub next_hop: NextHopMode,
    /// Occurrences of our AS accepted in a received AS_PATH (Calico's numAllowedLocalASNumbers).
    pub allow_local_as: usize,
    /// Most routes accepted from the peer (BIRD's `import limit`); none when unset.
    pub import_limit: Option<u32>,
    /// What happens when the import limit is exceeded (BIRD's `action`; `disable` as BIRD's
    /// default).
    pub import_limit_action: LimitAction,
    /// The AS this session speaks as when it is not the node's (BIRD's `local as N`;
    /// Calico's BGPPeer `localASNumber`); `local_as` in the TOML file.
    #[serde(rename = "local_as")]
    pub local_asn: Option<u32>,
    /// Names of the `filters` applied to this peer's routes, in order (BGPPeer `filters`).
    pub filters: Vec<String>,
    /// BFD for this peer (RFC 5882): `true`, or a table of settings over the `[bfd]` ones.
    pub bfd: PeerBfd,
    /// BIRD's `description`, which `show protocols all` prints.
    pub description: Option<String>,
    /// How its import and export filters were written, which `show protocols all` prints
    /// ([`FilterForm`]); what they do is in the settings above.
    pub import_filter: FilterForm,
    pub export_filter: FilterForm,
}

/// How a BIRD protocol's import or export clause was written: `all`, `none`, `filter NAME`
/// or `filter { … }` (`"all"`, `"none"`, `{ named = "NAME" }`, `"inline"` in the TOML file).
/// It displays as BIRD 1.6's `filter_name` prints it in `show protocols all`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterForm {
    All,
    None,
    Named(String),
    Inline,
}

impl std::fmt::Display for FilterForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterForm::All => f.write_str("ACCEPT"),
            FilterForm::None => f.write_str("REJECT"),
            FilterForm::Named(name) => f.write_str(name),
            FilterForm::Inline => f.write_str("(unnamed)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NextHopMode {
    Auto,
    #[serde(rename = "self")]
    Myself,
    Keep,
}

impl Default for PeerDefaults {
    fn default() -> Self {
        PeerDefaults {
            hold_time: 240,
            keepalive: None,
            connect_delay: 2,
            connect_retry: 5,
            error_wait: [5, 30],
            passive: false,
            password: None,
            source_address: None,
            ttl: None,
            ttl_security: None,
            graceful_restart: true,
            restart_time: 120,
            add_paths: AddPaths::Both,
            add_paths_send: 1,
            rr_client: false,
            next_hop: NextHopMode::Auto,
            allow_local_as: 0,
            import_limit: None,
            import_limit_action: LimitAction::Disable,
            local_asn: None,
            filters: Vec::new(),
            bfd: PeerBfd::default(),
            description: None,
            // wren's own rules: it takes every route in, and sends what Calico's export
            // function would (an inline filter in Calico's templates).
            import_filter: FilterForm::All,
            export_filter: FilterForm::Inline,
        }
    }
}

impl PeerDefaults {
    /// The import limit with its action, if one is set.
    pub fn import_limit(&self) -> Option<ImportLimit> {
        self.import_limit.map(|max| ImportLimit {
            max,
            action: self.import_limit_action,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddPaths {
    Off,
    Rx,
    Tx,
    Both,
}

/// BIRD's `import limit N action A`: at most `max` routes accepted from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimit {
    pub max: u32,
    pub action: LimitAction,
}

/// What exceeding an import limit does (BIRD's limit actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitAction {
    /// Log once; keep accepting.
    Warn,
    /// Drop routes beyond the limit until the count falls.
    Block,
    /// Cease "Maximum Number of Prefixes Reached" (RFC 4486 §4), then connect again.
    Restart,
    /// The same Cease, then stay down until `enable`.
    Disable,
}

impl LimitAction {
    /// The word BIRD shows in `show protocols all`.
    pub fn name(self) -> &'static str {
        match self {
            LimitAction::Warn => "warn",
            LimitAction::Block => "block",
            LimitAction::Restart => "restart",
            LimitAction::Disable => "disable",
        }
    }
}

/// A peer's BFD (RFC 5882): off, or on with these settings. Written `bfd = true`,
/// `bfd = false` or `bfd = { min_tx = 50, ... }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "BfdSwitch")]
pub struct PeerBfd(pub Option<BfdOptions>);

#[derive(Deserialize)]
#[serde(untagged)]
enum BfdSwitch {
    Flag(bool),
    Table(BfdOptions),
}

impl Serialize for PeerBfd {
    /// Written back the way it reads: `false`, `true` for BIRD's defaults, or the table.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            None => s.serialize_bool(false),
            Some(o) if *o == BfdOptions::default() => s.serialize_bool(true),
            Some(o) => o.serialize(s),
        }
    }
}

impl From<BfdSwitch> for PeerBfd {
    fn from(s: BfdSwitch) -> PeerBfd {
        PeerBfd(match s {
            BfdSwitch::Flag(on) => on.then(BfdOptions::default),
            BfdSwitch::Table(t) => Some(t),
        })
    }
}

/// BFD settings (RFC 5880): the `[bfd]` table, and a peer's own over it. What neither sets
/// is BIRD's default (`min rx interval 10 ms`, `min tx interval 100 ms`, `multiplier 5`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BfdOptions {
    /// Desired Min TX Interval while Up, in milliseconds.
    pub min_tx: Option<u32>,
    /// Required Min RX Interval, in milliseconds.
    pub min_rx: Option<u32>,
    /// Detect Mult.
    pub multiplier: Option<u8>,
    /// Multihop BFD over UDP 4784 (RFC 5883) rather than single-hop (RFC 5881); when
    /// unset, the session's own hop mode as BIRD decides it ([`Peer::multihop`]: iBGP, or
    /// `ttl`/`ttl_security` over 1), so `ttl = 1` makes an iBGP peer's BFD single-hop.
    pub multihop: Option<bool>,
    /// Authentication (RFC 5880 §6.7); needs `password`.
    pub auth: Option<BfdAuth>,
    pub password: Option<String>,
    /// Auth Key ID (1 when unset).
    pub key_id: Option<u8>,
}

impl BfdOptions {
    /// These settings where set, `under`'s otherwise.
    pub fn over(&self, under: &BfdOptions) -> BfdOptions {
        BfdOptions {
            min_tx: self.min_tx.or(under.min_tx),
            min_rx: self.min_rx.or(under.min_rx),
            multiplier: self.multiplier.or(under.multiplier),
            multihop: self.multihop.or(under.multihop),
            auth: self.auth.or(under.auth),
            password: self.password.clone().or_else(|| under.password.clone()),
            key_id: self.key_id.or(under.key_id),
        }
    }

    pub fn min_tx(&self) -> u32 {
        self.min_tx.unwrap_or(100)
    }

    pub fn min_rx(&self) -> u32 {
        self.min_rx.unwrap_or(10)
    }

    pub fn multiplier(&self) -> u8 {
        self.multiplier.unwrap_or(5)
    }
}

/// BFD authentication types (RFC 5880 §6.7), as BIRD names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BfdAuth {
    Simple,
    KeyedMd5,
    MeticulousKeyedMd5,
    KeyedSha1,
    MeticulousKeyedSha1,
}

impl BfdAuth {
    /// The longest key the type takes (§4.2–§4.4).
    pub fn max_key(self) -> usize {
        match self {
            BfdAuth::KeyedSha1 | BfdAuth::MeticulousKeyedSha1 => 20,
            _ => 16,
        }
    }
}

/// A peer with its settings resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// Protocol name as BIRD would show it (e.g. `Mesh_198_51_100_2`).
    pub name: String,
    pub address: IpAddr,
    /// TCP port the peer listens on.
    pub port: u16,
    pub asn: u32,
    pub settings: PeerDefaults,
}

impl Peer {
    /// iBGP: the peer is in the AS its session speaks as (its `local_as`, or the node's).
    pub fn internal(&self, node_asn: u32) -> bool {
        self.asn == self.settings.local_asn.unwrap_or(node_asn)
    }

    /// Whether the session is multihop as BIRD decides it (`bgp_postconfig`: `multihop N`
    /// or `direct`, iBGP multihop by default): TTL security or a TTL over 1 says multihop,
    /// a TTL of 1 says directly connected, and neither leaves it to the session type. BFD
    /// follows it (RFC 5883 over UDP 4784, else RFC 5881 over 3784) unless `bfd.multihop`
    /// says otherwise, and `show protocols all` shows it.
    pub fn multihop(&self, node_asn: u32) -> bool {
        match (self.settings.ttl_security, self.settings.ttl) {
            (Some(hops), _) => hops > 1,
            (None, Some(ttl)) => ttl > 1,
            (None, None) => self.internal(node_asn),
        }
    }
}

/// Calico's naming for a peer without an explicit name: `Node_` and the address with its
/// separators turned into underscores (contract §2.3).
pub fn default_name(address: IpAddr) -> String {
    peer_name("Node", address)
}

/// Calico's protocol name for a peer: `KIND_` (`Mesh`, `Global`, `Node`) and the address with
/// its separators turned into underscores (contract §2.3).
pub fn peer_name(kind: &str, address: IpAddr) -> String {
    let flat: String = address
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{kind}_{flat}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities() {
        assert_eq!(
            "65000:100".parse(),
            Ok(AnyCommunity::Standard(Community(65000 << 16 | 100)))
        );
        assert_eq!(
            "1:2:3".parse(),
            Ok(AnyCommunity::Large(LargeCommunity([1, 2, 3])))
        );
        assert!("x".parse::<AnyCommunity>().is_err());
        assert!("70000:1".parse::<AnyCommunity>().is_err());
    }

    /// BIRD's rule (`bgp_postconfig`): iBGP multihop unless `direct`, eBGP direct unless
    /// `multihop`; TTL security over more than one hop is multihop.
    #[test]
    fn multihop_as_bird_decides_it() {
        let peer = |asn, ttl, ttl_security, local_asn| Peer {
            name: "p".into(),
            address: IpAddr::from([198, 51, 100, 2]),
            port: 179,
            asn,
            settings: PeerDefaults {
                ttl,
                ttl_security,
                local_asn,
                ..PeerDefaults::default()
            },
        };
        let cases = [
            (peer(64512, None, None, None), true),
            (peer(64512, Some(1), None, None), false),
            (peer(64512, Some(64), None, None), true),
            (peer(65001, None, None, None), false),
            (peer(65001, Some(2), None, None), true),
            (peer(65001, None, None, Some(65001)), true),
            (peer(65001, None, Some(1), None), false),
            (peer(65001, None, Some(3), None), true),
            (peer(64512, Some(1), Some(64), None), true),
        ];
        for (p, multihop) in cases {
            assert_eq!(p.multihop(64512), multihop, "{:?}", p.settings);
        }
    }
}
