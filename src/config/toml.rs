//! The TOML source: wrend's configuration file, as serde structs shaped like the file, turned
//! into the model. Where each item was written is worked out only when there is an error to
//! place.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use ::toml::Spanned;
use ::toml::de::{DeTable, DeValue};
use ipnet::IpNet;
use serde::Deserialize;

use super::datastore::Local;
use super::{
    AddPaths, AnyCommunity, BfdOptions, BgpFilter, Config, Contents, Error, FilterForm, FilterRule,
    Item, KernelConfig, LimitAction, Listen, LogLevel, MatchOperator, NextHopMode, Operation, Peer,
    PeerBfd, PeerDefaults, PeerType, Pool, PrefixCommunities, RuleAction, StaticRoute,
    default_name, validate,
};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    router_id: Ipv4Addr,
    asn: u32,
    #[serde(default)]
    listen: Listen,
    #[serde(default)]
    originate: Vec<IpNet>,
    #[serde(default)]
    services: Vec<IpNet>,
    #[serde(default, rename = "pool")]
    pools: Vec<Pool>,
    #[serde(default, rename = "static_route")]
    static_routes: Vec<StaticRoute>,
    normal_route_priority: Option<u32>,
    #[serde(default)]
    communities: Vec<Communities>,
    cluster_id: Option<Ipv4Addr>,
    #[serde(default = "default_max_paths")]
    max_paths: usize,
    #[serde(default)]
    kernel: KernelConfig,
    #[serde(default)]
    log_level: LogLevel,
    metrics: Option<SocketAddr>,
    /// Settings every peer inherits unless it sets its own.
    #[serde(default)]
    defaults: PeerDefaults,
    /// BFD settings of every peer with `bfd` on, unless it sets its own.
    #[serde(default)]
    bfd: BfdOptions,
    #[serde(default, rename = "peer")]
    peers: Vec<PeerConfig>,
    /// Named route filters (Calico's BGPFilter) that peers list in `filters`.
    #[serde(default)]
    filters: Vec<FilterConfig>,
}

/// A `[[filters]]` table: a name and four rule lists, each rule an inline table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterConfig {
    name: String,
    #[serde(default)]
    import_v4: Vec<RuleConfig>,
    #[serde(default)]
    export_v4: Vec<RuleConfig>,
    #[serde(default)]
    import_v6: Vec<RuleConfig>,
    #[serde(default)]
    export_v6: Vec<RuleConfig>,
}

/// One filter rule: `{ action = "reject", cidr = "10.0.0.0/8", match = "in",
/// prefix_length_min = 16, prefix_length_max = 24, from_peers = true, interface = "eth*" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    action: RuleAction,
    cidr: Option<IpNet>,
    #[serde(rename = "match")]
    operator: Option<MatchOperator>,
    prefix_length_min: Option<u8>,
    prefix_length_max: Option<u8>,
    #[serde(default)]
    from_peers: bool,
    interface: Option<String>,
    peer_type: Option<PeerType>,
    community: Option<AnyCommunity>,
    #[serde(default)]
    as_path_prefix: Vec<u32>,
    priority: Option<u32>,
    #[serde(default)]
    operations: Vec<OperationConfig>,
}

/// One operation: exactly one of `{ add_community = "65000:100" }`,
/// `{ prepend_as_path = [65000, 65001] }`, `{ set_priority = 100 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationConfig {
    add_community: Option<AnyCommunity>,
    prepend_as_path: Option<Vec<u32>>,
    set_priority: Option<u32>,
}

impl OperationConfig {
    fn into_model(self) -> Option<Operation> {
        match (self.add_community, self.prepend_as_path, self.set_priority) {
            (Some(c), None, None) => Some(Operation::AddCommunity(c)),
            (None, Some(p), None) => Some(Operation::PrependAsPath(p)),
            (None, None, Some(p)) => Some(Operation::SetPriority(p)),
            _ => None,
        }
    }
}

impl FilterConfig {
    /// The model's filter; `i` is its index, for errors.
    fn into_model(self, i: usize) -> Result<BgpFilter, (Item, String)> {
        let name = self.name;
        let list = |key: &'static str, rules: Vec<RuleConfig>| {
            (rules.into_iter().enumerate())
                .map(|(j, r)| r.into_model(&name, key, (i, j)))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(BgpFilter {
            import_v4: list("import_v4", self.import_v4)?,
            export_v4: list("export_v4", self.export_v4)?,
            import_v6: list("import_v6", self.import_v6)?,
            export_v6: list("export_v6", self.export_v6)?,
            name,
        })
    }
}

impl RuleConfig {
    /// Calico's rule shape: `cidr` and `match` come together (its CEL validation on
    /// `BGPFilterRuleV4`), and a prefix length needs them.
    fn into_model(
        self,
        filter: &str,
        list: &'static str,
        (i, j): (usize, usize),
    ) -> Result<FilterRule, (Item, String)> {
        let at = |key| Item::Filter(i, Some((list, j, key)));
        let cidr = match (self.cidr, self.operator) {
            (Some(c), Some(op)) => Some((op, c)),
            (None, None) => None,
            (Some(_), None) => {
                return Err((
                    at(Some("cidr")),
                    format!("filter {filter}: {list} rule {}: cidr needs match", j + 1),
                ));
            }
            (None, Some(_)) => {
                return Err((
                    at(Some("match")),
                    format!("filter {filter}: {list} rule {}: match needs cidr", j + 1),
                ));
            }
        };
        let prefix_length = (self.prefix_length_min.is_some() || self.prefix_length_max.is_some())
            .then_some((self.prefix_length_min, self.prefix_length_max));
        let operations = (self.operations.into_iter().enumerate())
            .map(|(k, o)| {
                o.into_model().ok_or_else(|| {
                    (
                        at(Some("operations")),
                        format!(
                            "filter {filter}: {list} rule {} operation {}: exactly one of \
                             add_community, prepend_as_path, set_priority",
                            j + 1,
                            k + 1
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FilterRule {
            action: self.action,
            cidr,
            prefix_length,
            from_peers: self.from_peers,
            interface: self.interface,
            peer_type: self.peer_type,
            community: self.community,
            as_path_prefix: self.as_path_prefix,
            priority: self.priority,
            operations,
        })
    }
}

fn default_max_paths() -> usize {
    16
}

/// A `[[communities]]` range: `ASN:VALUE` standard or `A:B:C` large communities.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Communities {
    prefix: IpNet,
    communities: Vec<String>,
}

/// One `[[peer]]`: its address and AS, a name, and any settings that differ from
/// `[defaults]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerConfig {
    /// Protocol name as BIRD would show it; derived from the address when unset.
    name: Option<String>,
    address: IpAddr,
    asn: u32,
    #[serde(default = "bgp_port")]
    port: u16,
    hold_time: Option<u16>,
    keepalive: Option<u16>,
    connect_delay: Option<u16>,
    connect_retry: Option<u16>,
    error_wait: Option<[u16; 2]>,
    passive: Option<bool>,
    password: Option<String>,
    source_address: Option<IpAddr>,
    ttl: Option<u8>,
    ttl_security: Option<u8>,
    graceful_restart: Option<bool>,
    restart_time: Option<u16>,
    add_paths: Option<AddPaths>,
    add_paths_send: Option<usize>,
    rr_client: Option<bool>,
    next_hop: Option<NextHopMode>,
    allow_local_as: Option<usize>,
    import_limit: Option<u32>,
    import_limit_action: Option<LimitAction>,
    /// The AS this session speaks as, when not the node's.
    local_as: Option<u32>,
    /// Names of `[[filters]]` for this peer, in order.
    filters: Option<Vec<String>>,
    bfd: Option<PeerBfd>,
    description: Option<String>,
    import_filter: Option<FilterForm>,
    export_filter: Option<FilterForm>,
}

fn bgp_port() -> u16 {
    179
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, Error> {
    let (file, text) = read(path)?;
    parse(file.as_deref(), &text)
}

/// Reads and checks a configuration file that holds the model or a `[datastore]` table.
pub fn load_source(path: &Path) -> Result<Contents, Error> {
    let (file, text) = read(path)?;
    parse_source(file.as_deref(), &text)
}

fn read(path: &Path) -> Result<(Option<String>, String), Error> {
    let file = Some(path.display().to_string());
    let text = std::fs::read_to_string(path).map_err(|e| Error {
        file: file.clone(),
        at: None,
        message: e.to_string(),
    })?;
    Ok((file, text))
}

/// Parses and checks configuration text; `file` names it in errors.
pub fn parse(file: Option<&str>, text: &str) -> Result<Config, Error> {
    let f: File = deserialize(file, text)?;
    let config = f.into_model().and_then(|c| validate::check(&c).map(|()| c));
    config.map_err(|(item, message)| Error {
        file: file.map(str::to_string),
        at: Positions::of(text).find(item),
        message,
    })
}

/// Parses configuration text of either kind: a file with a `[datastore]` table takes only
/// the settings no datastore resource carries beside it (`metrics`, `[kernel]`).
pub fn parse_source(file: Option<&str>, text: &str) -> Result<Contents, Error> {
    let datastore =
        ::toml::from_str::<::toml::Table>(text).is_ok_and(|t| t.contains_key("datastore"));
    if !datastore {
        return parse(file, text).map(Contents::Model);
    }
    let local: Local = deserialize(file, text)?;
    if local.datastore.endpoints.is_empty() {
        return Err(Error {
            file: file.map(str::to_string),
            at: Positions::of(text).at.get("datastore.endpoints").copied(),
            message: "datastore: endpoints is empty".into(),
        });
    }
    Ok(Contents::Datastore(local))
}

/// The file as `T`; errors at their line and column, with a suggestion for a misspelt key.
fn deserialize<T: serde::de::DeserializeOwned>(file: Option<&str>, text: &str) -> Result<T, Error> {
    ::toml::from_str(text).map_err(|e| Error {
        file: file.map(str::to_string),
        at: e.span().map(|s| line_col(text, s.start)),
        message: format!("{}{}", e.message().trim_end(), suggestion(e.message())),
    })
}

impl File {
    fn into_model(self) -> Result<Config, (Item, String)> {
        let communities = (self.communities.into_iter().enumerate())
            .map(|(i, r)| {
                let list = (r.communities.iter().enumerate())
                    .map(|(j, text)| {
                        text.parse().map_err(|e| {
                            (
                                Item::Communities(i, Some(j)),
                                format!("communities for {}: {e}", r.prefix),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Ok(PrefixCommunities {
                    prefix: r.prefix,
                    communities: list,
                })
            })
            .collect::<Result<_, _>>()?;
        let peers = self
            .peers
            .iter()
            .map(|p| resolve(&self.defaults, &self.bfd, p))
            .collect();
        let filters = (self.filters.into_iter().enumerate())
            .map(|(i, f)| f.into_model(i))
            .collect::<Result<_, _>>()?;
        Ok(Config {
            router_id: self.router_id,
            asn: self.asn,
            listen: self.listen,
            originate: self.originate,
            services: self.services,
            pools: self.pools,
            communities,
            cluster_id: self.cluster_id,
            max_paths: self.max_paths,
            kernel: self.kernel,
            log_level: self.log_level,
            metrics: self.metrics,
            peers,
            filters,
            static_routes: self.static_routes,
            normal_route_priority: self.normal_route_priority,
        })
    }
}

/// A peer's settings: its own where it sets them, `[defaults]` otherwise (and for BFD,
/// `[bfd]` under both).
fn resolve(d: &PeerDefaults, bfd: &BfdOptions, p: &PeerConfig) -> Peer {
    let dflt = d.bfd.0.clone();
    let on = match p.bfd.as_ref().map(|b| b.0.as_ref()) {
        None => dflt,
        Some(None) => None,
        Some(Some(own)) => Some(own.over(&dflt.unwrap_or_default())),
    };
    Peer {
        name: p.name.clone().unwrap_or_else(|| default_name(p.address)),
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
            import_limit: p.import_limit.or(d.import_limit),
            import_limit_action: p.import_limit_action.unwrap_or(d.import_limit_action),
            local_asn: p.local_as.or(d.local_asn),
            filters: p.filters.clone().unwrap_or_else(|| d.filters.clone()),
            bfd: PeerBfd(on.map(|o| o.over(bfd))),
            description: p.description.clone().or_else(|| d.description.clone()),
            import_filter: p.import_filter.clone().unwrap_or(d.import_filter.clone()),
            export_filter: p.export_filter.clone().unwrap_or(d.export_filter.clone()),
        },
    }
}

/// Where each key and array element of the file starts, by dotted path (`peer.1.hold_time`,
/// `originate.0`).
struct Positions {
    at: HashMap<String, (usize, usize)>,
}

impl Positions {
    fn of(text: &str) -> Positions {
        let mut p = Positions { at: HashMap::new() };
        if let Ok(root) = DeTable::parse(text) {
            p.table(text, "", root.get_ref());
        }
        p
    }

    fn table(&mut self, text: &str, prefix: &str, t: &DeTable) {
        for (key, value) in t.iter() {
            let path = format!("{prefix}{}", key.get_ref());
            self.at
                .insert(path.clone(), line_col(text, key.span().start));
            self.value(text, &path, value);
        }
    }

    fn value(&mut self, text: &str, path: &str, v: &Spanned<DeValue>) {
        match v.get_ref() {
            DeValue::Table(t) => self.table(text, &format!("{path}."), t),
            DeValue::Array(a) => {
                for (i, e) in a.iter().enumerate() {
                    let path = format!("{path}.{i}");
                    self.at.insert(path.clone(), line_col(text, e.span().start));
                    self.value(text, &path, e);
                }
            }
            _ => {}
        }
    }

    /// Where `item` was written: the nearest key the file has for it (a peer's setting it
    /// inherits is placed at `[defaults]`).
    fn find(&self, item: Item) -> Option<(usize, usize)> {
        let candidates = match item {
            Item::Setting(name) => vec![name.to_string()],
            Item::Originate(i) => vec![format!("originate.{i}")],
            Item::Service(i) => vec![format!("services.{i}")],
            Item::Pool(i) => vec![format!("pool.{i}.cidr"), format!("pool.{i}")],
            Item::StaticRoute(i) => vec![
                format!("static_route.{i}.prefix"),
                format!("static_route.{i}"),
            ],
            Item::Communities(i, Some(j)) => vec![format!("communities.{i}.communities.{j}")],
            Item::Communities(i, None) => {
                vec![
                    format!("communities.{i}.prefix"),
                    format!("communities.{i}"),
                ]
            }
            Item::Peer(i, field) => {
                let mut c: Vec<String> = field
                    .map(|f| vec![format!("peer.{i}.{f}"), format!("defaults.{f}")])
                    .unwrap_or_default();
                c.extend([format!("peer.{i}.address"), format!("peer.{i}")]);
                c
            }
            Item::Filter(i, rule) => {
                let mut c = Vec::new();
                if let Some((list, j, key)) = rule {
                    c.extend(key.map(|k| format!("filters.{i}.{list}.{j}.{k}")));
                    c.push(format!("filters.{i}.{list}.{j}"));
                }
                c.extend([format!("filters.{i}.name"), format!("filters.{i}")]);
                c
            }
        };
        candidates.iter().find_map(|k| self.at.get(k).copied())
    }
}

/// Line and column (from 1, in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
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

/// The model of a file that parses, unchecked (for the checks' own tests).
#[cfg(test)]
pub(super) fn model(text: &str) -> Config {
    let f: File = ::toml::from_str(text).expect("parses");
    f.into_model().expect("converts")
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
import_limit = 1000
import_limit_action = "block"
"#;

    /// A file with only `[datastore]` is a whole configuration; beside it only what no
    /// resource carries, and mistakes are placed at their line and column.
    #[test]
    fn datastore_files() {
        let ds = "[datastore]\nkind = \"etcdv3\"\nendpoints = [\"http://127.0.0.1:2379\"]\n";
        let Ok(Contents::Datastore(local)) = parse_source(None, ds) else {
            panic!("not a datastore file");
        };
        let s = &local.datastore;
        assert_eq!(s.endpoints[0].to_string(), "http://127.0.0.1:2379");
        assert_eq!(s.state_dir, std::path::Path::new("/var/lib/wren"));
        assert_eq!((s.node.as_deref(), local.metrics), (None, None));
        assert!(local.kernel.enabled);
        let full = format!(
            "metrics = \"127.0.0.1:9324\"\n{ds}node = \"n1\"\nca_file = \"/ca.pem\"\nstate_dir = \"/tmp/w\"\n[kernel]\nenabled = false\n"
        );
        let Ok(Contents::Datastore(local)) = parse_source(None, &full) else {
            panic!("not a datastore file");
        };
        assert_eq!(local.datastore.node.as_deref(), Some("n1"));
        assert!(!local.kernel.enabled && local.metrics.is_some());
        let at = |text: &str| parse_source(Some("d.toml"), text).unwrap_err().to_string();
        let e = at(&format!("router_id = \"198.51.100.1\"\n{ds}"));
        assert!(
            e.starts_with("d.toml:1:1: unknown field `router_id`"),
            "{e}"
        );
        let e = at("[datastore]\nkind = \"kubernetes\"\nendpoints = []\n");
        assert!(
            e.starts_with("d.toml:2:8: unknown variant `kubernetes`"),
            "{e}"
        );
        let e = at("[datastore]\nkind = \"etcdv3\"\nendpoints = [\"etcd:2379\"]\n");
        assert!(
            e.starts_with("d.toml:3:13: ") && e.contains("http://HOST:PORT"),
            "{e}"
        );
        let e = at("[datastore]\nkind = \"etcdv3\"\nendpoints = []\n");
        assert_eq!(e, "d.toml:3:1: datastore: endpoints is empty");
        let e = at(&format!("{ds}nodename = \"x\"\n"));
        assert!(
            e.starts_with("d.toml:4:1: ") && e.ends_with("did you mean `node`?"),
            "{e}"
        );
        // A model file is still one.
        assert!(matches!(parse_source(None, MESH), Ok(Contents::Model(_))));
    }

    #[test]
    fn parses_with_defaults() {
        let c = Config::parse(MESH).unwrap();
        let peers = &c.peers;
        assert_eq!(peers[0].name, "Node_198_51_100_2");
        assert!(peers[0].settings.passive);
        assert_eq!(peers[0].settings.hold_time, 240);
        assert_eq!(peers[0].settings.password.as_deref(), Some("s3cret"));
        assert_eq!(peers[0].settings.import_limit(), None);
        assert_eq!(peers[1].name, "Global_tor");
        assert_eq!(peers[1].settings.hold_time, 9);
        assert_eq!(peers[1].settings.connect_retry, 5);
        assert_eq!(
            peers[1].settings.import_limit(),
            Some(super::super::ImportLimit {
                max: 1000,
                action: LimitAction::Block
            })
        );
        assert_eq!(c.listen.port, 179);
    }

    /// A peer's own BFD settings over `[defaults]`'s over `[bfd]`'s, then BIRD's defaults;
    /// `bfd = false` turns a default on off.
    #[test]
    fn bfd_settings_resolve() {
        let c = Config::parse(
            r#"
router_id = "198.51.100.1"
asn = 64512
[defaults]
bfd = { multiplier = 3 }
[bfd]
min_tx = 300
min_rx = 300
auth = "keyed-sha1"
password = "k"
[[peer]]
address = "198.51.100.12"
asn = 64512
[[peer]]
address = "198.51.100.13"
asn = 64512
bfd = { min_tx = 50, multihop = true }
[[peer]]
address = "198.51.100.14"
asn = 64512
bfd = false
"#,
        )
        .unwrap();
        let b = |i: usize| c.peers[i].settings.bfd.0.clone();
        let first = b(0).unwrap();
        assert_eq!(
            (first.min_tx(), first.min_rx(), first.multiplier()),
            (300, 300, 3)
        );
        assert_eq!(first.auth, Some(super::super::BfdAuth::KeyedSha1));
        let second = b(1).unwrap();
        assert_eq!((second.min_tx(), second.multiplier()), (50, 3));
        assert_eq!(second.multihop, Some(true));
        assert_eq!(b(2), None);
        let plain = Config::parse(
            "router_id = \"198.51.100.1\"\nasn = 1\n[[peer]]\naddress = \"198.51.100.2\"\nasn = 1\nbfd = true\n",
        )
        .unwrap();
        let bird = plain.peers[0].settings.bfd.0.clone().unwrap();
        assert_eq!(
            (bird.min_tx(), bird.min_rx(), bird.multiplier()),
            (100, 10, 5)
        );
        let e = Config::parse(
            "router_id = \"198.51.100.1\"\nasn = 1\n[[peer]]\naddress = \"198.51.100.2\"\nasn = 1\nbfd = { multiplier = 0 }\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("6:1: "), "{e}");
        assert!(e.message.contains("multiplier"), "{e}");
    }

    #[test]
    fn every_example_in_config_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "toml") {
                super::super::Source::Toml(path.clone())
                    .read()
                    .unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 6, "{n} examples");
    }

    #[test]
    fn parse_errors_name_line_and_column() {
        let e = Config::parse("router_id = \"198.51.100.1\"\nasn = 1\nholdtime = 3\n").unwrap_err();
        assert!(e.to_string().starts_with("3:1: "), "{e}");
        assert!(e.message.contains("holdtime"), "{e}");
        let e = Config::parse(
            "router_id = \"198.51.100.1\"\nasn = 1\n[[peer]]\naddress = \"198.51.100.2\"\nasn = 1\nhold_tim = 9\n",
        )
        .unwrap_err();
        assert_eq!(e.at, Some((6, 1)));
        assert!(e.message.ends_with("did you mean `hold_time`?"), "{e}");
        let e = Config::parse("router_id = \"x\"\nasn = 1\n").unwrap_err();
        assert_eq!(e.at, Some((1, 13)), "{e}");
        let e = parse(Some("a.toml"), "router_id = \"x\"\nasn = 1\n").unwrap_err();
        assert!(e.to_string().starts_with("a.toml:1:13: "), "{e}");
    }

    /// Errors found after parsing are placed at the key they are about, or at `[defaults]`
    /// when the peer inherits the setting, in the same format as parse errors.
    #[test]
    fn semantic_errors_name_line_and_column() {
        let at = |text: &str| parse(Some("w.toml"), text).unwrap_err().to_string();
        let head = "router_id = \"198.51.100.1\"\nasn = 1\n";
        let peer = "[[peer]]\naddress = \"198.51.100.2\"\nasn = 1\n";
        let e = at(&format!("{head}{peer}hold_time = 2\n"));
        assert!(
            e.starts_with("w.toml:6:1: peer Node_198_51_100_2: hold_time"),
            "{e}"
        );
        let e = at(&format!("{head}[defaults]\nhold_time = 2\n{peer}"));
        assert!(e.starts_with("w.toml:4:1: "), "{e}");
        let other = "[[peer]]\naddress = \"198.51.100.3\"\nasn = 1\n";
        let e = at(&format!("{head}{peer}name = \"a\"\n{other}name = \"a\"\n"));
        assert!(e.starts_with("w.toml:10:1: peer name a used twice"), "{e}");
        let e = at(&format!("{head}{peer}{peer}"));
        assert!(
            e.starts_with("w.toml:7:1: ") && e.contains("already peer"),
            "{e}"
        );
        let e = at(&format!("{head}{peer}password = \"{}\"\n", "p".repeat(81)));
        assert!(
            e.starts_with("w.toml:6:1: ") && e.contains("password"),
            "{e}"
        );
        let e = at(&format!("{head}{peer}rr_client = true\n"));
        assert!(
            e.starts_with("w.toml:6:1: ") && e.contains("cluster_id"),
            "{e}"
        );
        let e = at("router_id = \"0.0.0.0\"\nasn = 1\n");
        assert!(e.starts_with("w.toml:1:1: router_id"), "{e}");
        let e = at(&format!(
            "{head}originate = [\"10.0.0.0/8\", \"10.0.0.1/24\"]\n"
        ));
        assert!(
            e.starts_with("w.toml:3:28: 10.0.0.1/24 has host bits"),
            "{e}"
        );
        let e = at(&format!(
            "{head}[[communities]]\nprefix = \"10.0.0.0/8\"\ncommunities = [\"1:1\", \"x\"]\n"
        ));
        assert!(
            e.starts_with("w.toml:5:23: communities for 10.0.0.0/8"),
            "{e}"
        );
    }

    /// Filters and per-peer filter lists and local AS, and their errors placed at the key.
    #[test]
    fn filters_parse_and_errors_name_line_and_column() {
        let text = r#"router_id = "198.51.100.1"
asn = 64512

[defaults]
filters = ["edge"]

[[filters]]
name = "edge"
import_v4 = [
  { action = "reject", cidr = "10.0.0.0/8", match = "in", prefix_length_min = 16, prefix_length_max = 24 },
  { action = "accept", from_peers = true },
]
export_v6 = [{ action = "accept", interface = "cali*" }]

[[peer]]
address = "198.51.100.2"
asn = 65000
local_as = 65001

[[peer]]
address = "198.51.100.3"
asn = 64512
filters = []
"#;
        let c = Config::parse(text).unwrap();
        assert_eq!(c.filters.len(), 1);
        let f = &c.filters[0];
        assert_eq!(f.name, "edge");
        assert_eq!(
            f.import_v4[0],
            super::super::FilterRule {
                action: RuleAction::Reject,
                cidr: Some((MatchOperator::In, "10.0.0.0/8".parse().unwrap())),
                prefix_length: Some((Some(16), Some(24))),
                from_peers: false,
                interface: None,
                ..super::super::FilterRule::any(RuleAction::Accept)
            }
        );
        assert!(f.import_v4[1].from_peers && f.import_v4[1].cidr.is_none());
        assert_eq!(f.export_v6[0].interface.as_deref(), Some("cali*"));
        assert!(f.export_v4.is_empty() && f.import_v6.is_empty());
        assert_eq!(c.peers[0].settings.filters, ["edge"], "from [defaults]");
        assert_eq!(c.peers[0].settings.local_asn, Some(65001));
        assert!(c.peers[1].settings.filters.is_empty(), "its own list wins");
        assert_eq!(c.peers[1].settings.local_asn, None);

        let at = |t: &str| parse(Some("f.toml"), t).unwrap_err().to_string();
        let head = "router_id = \"198.51.100.1\"\nasn = 1\n";
        let peer = "[[peer]]\naddress = \"198.51.100.2\"\nasn = 1\n";
        let e = at(&format!("{head}{peer}filters = [\"x\"]\n"));
        assert!(
            e.starts_with("f.toml:6:1: peer Node_198_51_100_2: no filter named x"),
            "{e}"
        );
        let e = at(&format!(
            "{head}[[filters]]\nname = \"a\"\nexport_v4 = [\n  {{ action = \"accept\" }},\n  {{ action = \"reject\", cidr = \"2001:db8::/32\", match = \"in\" }},\n]\n"
        ));
        assert!(
            e.starts_with("f.toml:7:24: filter a: export_v4 rule 2: 2001:db8::/32 is not an IPv4"),
            "{e}"
        );
        let e = at(&format!(
            "{head}[[filters]]\nname = \"a\"\nimport_v4 = [{{ action = \"reject\", cidr = \"10.0.0.0/8\" }}]\n"
        ));
        assert!(
            e.starts_with("f.toml:5:35: filter a: import_v4 rule 1: cidr needs match"),
            "{e}"
        );
        let e = at(&format!(
            "{head}[[filters]]\nname = \"a\"\n[[filters]]\nname = \"a\"\n"
        ));
        assert!(e.starts_with("f.toml:6:1: filter name a used twice"), "{e}");
        let e = at(&format!(
            "{head}[[filters]]\nname = \"a\"\nimport_v4 = [{{ action = \"drop\" }}]\n"
        ));
        assert!(e.starts_with("f.toml:5:25: "), "{e}");
        let e = at(&format!(
            "{head}[[filters]]\nname = \"a\"\nimport_v4 = [{{ action = \"accept\", ifname = \"x\" }}]\n"
        ));
        assert!(e.starts_with("f.toml:5:") && e.contains("interface"), "{e}");
        let e = at(&format!(
            "{head}[[filters]]\nname = \"a\"\nimport_v6 = [{{ action = \"accept\", operations = [{{ set_priority = 5, prepend_as_path = [1] }}] }}]\n"
        ));
        assert!(
            e.starts_with("f.toml:5:") && e.contains("operation 1: exactly one of"),
            "{e}"
        );
        let e = at(&format!(
            "{head}[[filters]]\nname = \"a\"\nimport_v4 = [{{ action = \"accept\", community = \"65536:1\" }}]\n"
        ));
        assert!(e.starts_with("f.toml:5:"), "{e}");
    }
}
