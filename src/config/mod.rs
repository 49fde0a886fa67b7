//! wrend's TOML configuration. Defaults follow what Calico's generated BIRD config sets
//! (contract §2.7): hold 240 s, connect delay 2 s, connect retry 5 s, error wait 5..30 s,
//! graceful restart on with 120 s, add-path rx+tx.

pub mod bird;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// BGP identifier (RFC 4271 §4.2).
    pub router_id: Ipv4Addr,
    /// Local AS number.
    pub asn: u32,
    #[serde(default)]
    pub listen: Listen,
    /// Prefixes this node originates (its IPAM blocks: IPv4 /26, IPv6 /122 in Calico):
    /// announced, installed as blackholes, and nothing more specific inside them is exported.
    #[serde(default)]
    pub originate: Vec<IpNet>,
    /// Service ranges (cluster, external, load-balancer IPs): announced, never installed.
    #[serde(default)]
    pub services: Vec<IpNet>,
    /// IP pools: which learned routes are exported and how they reach the kernel.
    #[serde(default, rename = "pool")]
    pub pools: Vec<Pool>,
    /// Communities added to exported prefixes inside a range (Calico's prefixAdvertisements).
    #[serde(default, rename = "communities")]
    pub communities: Vec<PrefixCommunities>,
    /// Route reflector cluster ID (RFC 4456): set on a reflector, whose `rr_client` peers get
    /// reflected routes.
    pub cluster_id: Option<Ipv4Addr>,
    /// Most equal-cost paths installed for one prefix (BIRD's `merge paths`).
    #[serde(default = "default_max_paths")]
    pub max_paths: usize,
    #[serde(default)]
    pub kernel: KernelConfig,
    /// Least severe log messages written (stderr, for journald); a reload changes it.
    #[serde(default)]
    pub log_level: LogLevel,
    /// Address of the Prometheus text endpoint (`GET /metrics`); off when absent.
    pub metrics: Option<std::net::SocketAddr>,
    /// Defaults every peer inherits unless it sets its own.
    #[serde(default)]
    pub defaults: PeerDefaults,
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerConfig>,
}

fn default_max_paths() -> usize {
    16
}

/// Log verbosity, most to least severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
        }
    }
}

/// An IP pool (Calico IPPool).
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixCommunities {
    pub prefix: IpNet,
    /// `ASN:VALUE` standard or `A:B:C` large communities.
    pub communities: Vec<String>,
}

/// Where wrend accepts BGP connections.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// Addresses to listen on; empty means no listener (every peer dials out).
    pub addresses: Vec<IpAddr>,
    pub port: u16,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            addresses: vec![IpAddr::from([0u16; 8])],
            port: 179,
        }
    }
}

/// Session settings shared by peers (the `[defaults]` table and each `[[peer]]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// IP TTL for the session's packets; 1 for directly connected eBGP, 64 for multihop.
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
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
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddPaths {
    Off,
    Rx,
    Tx,
    Both,
}

/// One `[[peer]]`: its address and AS, a name, and any settings that differ from
/// `[defaults]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Protocol name as BIRD would show it (e.g. `Mesh_198_51_100_2`); derived when unset.
    pub name: Option<String>,
    pub address: IpAddr,
    pub asn: u32,
    /// TCP port the peer listens on.
    #[serde(default = "bgp_port")]
    pub port: u16,
    pub hold_time: Option<u16>,
    pub keepalive: Option<u16>,
    pub connect_delay: Option<u16>,
    pub connect_retry: Option<u16>,
    pub error_wait: Option<[u16; 2]>,
    pub passive: Option<bool>,
    pub password: Option<String>,
    pub source_address: Option<IpAddr>,
    pub ttl: Option<u8>,
    pub ttl_security: Option<u8>,
    pub graceful_restart: Option<bool>,
    pub restart_time: Option<u16>,
    pub add_paths: Option<AddPaths>,
    pub add_paths_send: Option<usize>,
    pub rr_client: Option<bool>,
    pub next_hop: Option<NextHopMode>,
    pub allow_local_as: Option<usize>,
}

fn bgp_port() -> u16 {
    179
}

/// A peer's settings with the defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub asn: u32,
    pub settings: PeerDefaults,
}

impl Config {
    /// Reads and checks a configuration file; errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| position(text, &e))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        for c in &self.communities {
            for text in &c.communities {
                crate::policy::parse_community(text)
                    .map_err(|e| format!("communities for {}: {e}", c.prefix))?;
            }
        }
        if self.communities.len() > 64 {
            return Err("at most 64 [[communities]] ranges".into());
        }
        if self.max_paths == 0 {
            return Err("max_paths must be at least 1".into());
        }
        let mut names = std::collections::HashSet::new();
        for p in self.peers() {
            let s = &p.settings;
            if s.hold_time != 0 && s.hold_time < 3 {
                return Err(format!(
                    "peer {}: hold_time must be 0 or at least 3",
                    p.name
                ));
            }
            if s.error_wait[0] == 0 || s.error_wait[0] > s.error_wait[1] {
                return Err(format!(
                    "peer {}: error_wait must be [min, max] with 0 < min <= max",
                    p.name
                ));
            }
            if s.password.as_ref().is_some_and(|pw| pw.len() > 80) {
                return Err(format!(
                    "peer {}: password longer than 80 bytes (TCP_MD5SIG limit)",
                    p.name
                ));
            }
            if s.rr_client && self.cluster_id.is_none() {
                return Err(format!("peer {}: rr_client needs cluster_id", p.name));
            }
            if s.add_paths_send == 0 {
                return Err(format!(
                    "peer {}: add_paths_send must be at least 1",
                    p.name
                ));
            }
            if !names.insert(p.name.clone()) {
                return Err(format!("peer name {} used twice", p.name));
            }
        }
        Ok(())
    }

    /// Every peer with defaults applied.
    pub fn peers(&self) -> Vec<Peer> {
        self.peers.iter().map(|p| self.resolve(p)).collect()
    }

    fn resolve(&self, p: &PeerConfig) -> Peer {
        let d = &self.defaults;
        let name = p.name.clone().unwrap_or_else(|| default_name(p.address));
        Peer {
            name,
            address: p.address,
            port: p.port,
            asn: p.asn,
            settings: PeerDefaults {
                hold_time: p.hold_time.unwrap_or(d.hold_time),
                keepalive: p.keepalive.or(d.keepalive),
                connect_delay: p.connect_delay.unwrap_or(d.connect_delay),
                connect_retry: p.connect_retry.unwrap_or(d.connect_retry),
                error_wait: p.error_wait.unwrap_or(d.error_wait),
                passive: p.passive.unwrap_or(d.passive),
                password: p.password.clone().or_else(|| d.password.clone()),
                source_address: p.source_address.or(d.source_address),
                ttl: p.ttl.or(d.ttl),
                ttl_security: p.ttl_security.or(d.ttl_security),
                graceful_restart: p.graceful_restart.unwrap_or(d.graceful_restart),
                restart_time: p.restart_time.unwrap_or(d.restart_time),
                add_paths: p.add_paths.unwrap_or(d.add_paths),
                add_paths_send: p.add_paths_send.unwrap_or(d.add_paths_send),
                rr_client: p.rr_client.unwrap_or(d.rr_client),
                next_hop: p.next_hop.unwrap_or(d.next_hop),
                allow_local_as: p.allow_local_as.unwrap_or(d.allow_local_as),
            },
        }
    }
}

/// Calico's naming for a peer without an explicit name: `Node_` and the address with its
/// separators turned into underscores (contract §2.3).
fn default_name(address: IpAddr) -> String {
    let flat: String = address
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("Node_{flat}")
}

/// A TOML error as `line L, column C: message`, with the closest valid key for an unknown one.
fn position(text: &str, e: &toml::de::Error) -> String {
    let message = format!("{}{}", e.message().trim_end(), suggestion(e.message()));
    let Some(span) = e.span() else {
        return message;
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.chars().count()
        - before
            .rfind('\n')
            .map_or(0, |i| before[..=i].chars().count())
        + 1;
    format!("line {line}, column {column}: {message}")
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": "; did you mean `a`?".
fn suggestion(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return String::new();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return String::new();
    };
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|k| (strsim::jaro_winkler(unknown, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or_else(String::new, |(_, k)| format!("; did you mean `{k}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESH: &str = r#"
router_id = "198.51.100.1"
asn = 64512
originate = ["203.0.113.0/26", "2001:db8:1::/122"]

[defaults]
password = "s3cret"

[[peer]]
address = "198.51.100.2"
asn = 64512
passive = true

[[peer]]
name = "Global_tor"
address = "2001:db8::1"
asn = 64513
hold_time = 9
"#;

    #[test]
    fn parses_with_defaults() {
        let c = Config::parse(MESH).unwrap();
        let peers = c.peers();
        assert_eq!(peers[0].name, "Node_198_51_100_2");
        assert!(peers[0].settings.passive);
        assert_eq!(peers[0].settings.hold_time, 240);
        assert_eq!(peers[0].settings.password.as_deref(), Some("s3cret"));
        assert_eq!(peers[1].name, "Global_tor");
        assert_eq!(peers[1].settings.hold_time, 9);
        assert_eq!(peers[1].settings.connect_retry, 5);
        assert_eq!(c.listen.port, 179);
    }

    #[test]
    fn every_example_in_config_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "toml") {
                Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 6, "{n} examples");
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = Config::parse("router_id = \"198.51.100.1\"\nasn = 1\nholdtime = 3\n").unwrap_err();
        assert!(e.starts_with("line 3, column 1:"), "{e}");
        assert!(e.contains("holdtime"), "{e}");
        let e = Config::parse(
            "router_id = \"198.51.100.1\"\nasn = 1\n[[peer]]\naddress = \"198.51.100.2\"\nasn = 1\nhold_tim = 9\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("line 6, column 1:") && e.ends_with("did you mean `hold_time`?"),
            "{e}"
        );
        let e = Config::parse("router_id = \"x\"\nasn = 1\n").unwrap_err();
        assert!(e.starts_with("line 1, column 13:"), "{e}");
        let e = Config::parse(
            "router_id = \"198.51.100.1\"\nasn = 1\n[[peer]]\naddress = \"198.51.100.2\"\nasn = 1\nhold_time = 2\n",
        )
        .unwrap_err();
        assert!(e.contains("hold_time"), "{e}");
    }
}
