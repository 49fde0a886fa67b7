//! The model written back as wren's TOML file (`wrenc convert`): reading the text with
//! [`super::toml`] gives the same model. Settings at their default are left out, so the file
//! shows what a configuration changes; the model's serde names are the file's keys.

use ::toml::{Table, Value};
use serde::Serialize;

use super::{BgpFilter, Config, FilterRule, KernelConfig, Listen, Operation, PeerDefaults};

type Result<T> = std::result::Result<T, ::toml::ser::Error>;

/// The TOML text of a model.
pub fn to_toml(c: &Config) -> Result<String> {
    let mut t = Table::new();
    t.insert("router_id".into(), c.router_id.to_string().into());
    t.insert("asn".into(), i64::from(c.asn).into());
    if let Some(id) = c.cluster_id {
        t.insert("cluster_id".into(), id.to_string().into());
    }
    t.insert("max_paths".into(), int(c.max_paths));
    t.insert("log_level".into(), Value::try_from(c.log_level)?);
    if let Some(p) = c.normal_route_priority {
        t.insert("normal_route_priority".into(), i64::from(p).into());
    }
    if let Some(m) = c.metrics {
        t.insert("metrics".into(), m.to_string().into());
    }
    t.insert("originate".into(), strings(&c.originate));
    t.insert("services".into(), strings(&c.services));
    t.insert(
        "listen".into(),
        changed(&c.listen, &Listen::default())?.into(),
    );
    t.insert(
        "kernel".into(),
        changed(&c.kernel, &KernelConfig::default())?.into(),
    );
    let pools = (c.pools.iter()).map(Value::try_from);
    t.insert("pool".into(), Value::Array(pools.collect::<Result<_>>()?));
    let statics = (c.static_routes.iter()).map(Value::try_from);
    t.insert(
        "static_route".into(),
        Value::Array(statics.collect::<Result<_>>()?),
    );
    let communities = c.communities.iter().map(|pc| {
        let mut t = Table::new();
        t.insert("prefix".into(), pc.prefix.to_string().into());
        t.insert("communities".into(), strings(&pc.communities));
        Value::Table(t)
    });
    t.insert("communities".into(), Value::Array(communities.collect()));
    let filters = c.filters.iter().map(filter);
    t.insert(
        "filters".into(),
        filters.collect::<Result<Vec<_>>>()?.into(),
    );
    let peers = c.peers.iter().map(|p| {
        let mut t = changed(&p.settings, &PeerDefaults::default())?;
        // A peer's own key for the model's `local_asn`.
        if let Some(asn) = t.remove("local_asn") {
            t.insert("local_as".into(), asn);
        }
        t.insert("name".into(), p.name.clone().into());
        t.insert("address".into(), p.address.to_string().into());
        t.insert("asn".into(), i64::from(p.asn).into());
        t.insert("port".into(), i64::from(p.port).into());
        Ok(Value::Table(t))
    });
    t.insert("peer".into(), peers.collect::<Result<Vec<_>>>()?.into());
    // Empty lists and tables say nothing the reader's defaults do not.
    t.retain(|_, v| match v {
        Value::Array(a) => !a.is_empty(),
        Value::Table(t) => !t.is_empty(),
        _ => true,
    });
    ::toml::to_string(&t)
}

fn int(n: usize) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn strings<T: ToString>(xs: &[T]) -> Value {
    Value::Array(xs.iter().map(|x| Value::from(x.to_string())).collect())
}

/// The keys of `value` whose values differ from `default`'s.
fn changed<T: Serialize>(value: &T, default: &T) -> Result<Table> {
    let (Value::Table(mut t), Value::Table(d)) =
        (Value::try_from(value)?, Value::try_from(default)?)
    else {
        return Ok(Table::new());
    };
    t.retain(|k, v| d.get(k) != Some(v));
    Ok(t)
}

fn filter(f: &BgpFilter) -> Result<Value> {
    let mut t = Table::new();
    t.insert("name".into(), f.name.clone().into());
    for (key, rules) in [
        ("import_v4", &f.import_v4),
        ("export_v4", &f.export_v4),
        ("import_v6", &f.import_v6),
        ("export_v6", &f.export_v6),
    ] {
        if !rules.is_empty() {
            let list = rules.iter().map(rule).collect::<Result<Vec<_>>>()?;
            t.insert(key.into(), list.into());
        }
    }
    Ok(Value::Table(t))
}

/// A rule as the `[[filters]]` tables write it: `cidr` with `match`, the prefix length as
/// two bounds.
fn rule(r: &FilterRule) -> Result<Value> {
    let mut t = Table::new();
    t.insert("action".into(), Value::try_from(r.action)?);
    if let Some((op, cidr)) = r.cidr {
        t.insert("cidr".into(), cidr.to_string().into());
        t.insert("match".into(), Value::try_from(op)?);
    }
    if let Some((lo, hi)) = r.prefix_length {
        if let Some(lo) = lo {
            t.insert("prefix_length_min".into(), i64::from(lo).into());
        }
        if let Some(hi) = hi {
            t.insert("prefix_length_max".into(), i64::from(hi).into());
        }
    }
    if r.from_peers {
        t.insert("from_peers".into(), true.into());
    }
    if let Some(i) = &r.interface {
        t.insert("interface".into(), i.clone().into());
    }
    if let Some(p) = r.peer_type {
        t.insert("peer_type".into(), Value::try_from(p)?);
    }
    if let Some(c) = r.community {
        t.insert("community".into(), c.to_string().into());
    }
    if !r.as_path_prefix.is_empty() {
        t.insert("as_path_prefix".into(), asns(&r.as_path_prefix));
    }
    if let Some(p) = r.priority {
        t.insert("priority".into(), i64::from(p).into());
    }
    if !r.operations.is_empty() {
        let ops = r.operations.iter().map(operation).collect::<Vec<_>>();
        t.insert("operations".into(), ops.into());
    }
    Ok(Value::Table(t))
}

/// An operation as a one-key table (`OperationConfig` in the reader).
fn operation(o: &Operation) -> Value {
    let (key, value) = match o {
        Operation::AddCommunity(c) => ("add_community", c.to_string().into()),
        Operation::PrependAsPath(p) => ("prepend_as_path", asns(p)),
        Operation::SetPriority(p) => ("set_priority", i64::from(*p).into()),
    };
    Value::Table(Table::from_iter([(key.to_string(), value)]))
}

fn asns(list: &[u32]) -> Value {
    list.iter()
        .map(|&a| i64::from(a))
        .collect::<Vec<_>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::super::{
        AddPaths, AddressFamily, BfdAuth, BfdOptions, Encapsulation, FilterForm, LimitAction,
        LogLevel, MatchOperator, NextHopMode, Peer, PeerBfd, PeerType, Pool, PrefixCommunities,
        RuleAction, toml,
    };
    use super::*;
    use crate::config::StaticRoute;

    /// A model with every setting away from its default reads back from its text.
    #[test]
    fn every_setting_reads_back() {
        let net = |s: &str| s.parse().unwrap();
        let ip = |s: &str| s.parse().unwrap();
        let first = PeerDefaults {
            hold_time: 90,
            keepalive: Some(30),
            connect_delay: 1,
            connect_retry: 3,
            error_wait: [1, 2],
            passive: true,
            password: Some("k\"ey".into()),
            source_address: Some(ip("10.0.0.1")),
            ttl: Some(3),
            ttl_security: None,
            graceful_restart: false,
            restart_time: 60,
            add_paths: AddPaths::Rx,
            add_paths_send: 4,
            rr_client: true,
            next_hop: NextHopMode::Keep,
            allow_local_as: 2,
            import_limit: Some(10),
            import_limit_action: LimitAction::Restart,
            local_asn: Some(65001),
            filters: vec!["f".into()],
            bfd: PeerBfd(Some(BfdOptions {
                min_tx: Some(50),
                multiplier: Some(3),
                auth: Some(BfdAuth::MeticulousKeyedSha1),
                password: Some("k".into()),
                ..BfdOptions::default()
            })),
            description: Some("ToR \"1\"".into()),
            import_filter: FilterForm::Named("take".into()),
            export_filter: FilterForm::None,
        };
        let second = PeerDefaults {
            bfd: PeerBfd(Some(BfdOptions::default())),
            import_filter: FilterForm::Inline,
            export_filter: FilterForm::All,
            ttl_security: Some(1),
            add_paths: AddPaths::Off,
            next_hop: NextHopMode::Myself,
            ..PeerDefaults::default()
        };
        let pool = |cidr: &str, encapsulation, bgp_export| Pool {
            cidr: net(cidr),
            encapsulation,
            bgp_export,
        };
        let c = Config {
            router_id: "10.0.0.1".parse().unwrap(),
            asn: 65000,
            listen: Listen {
                addresses: vec![ip("10.0.0.1"), ip("2001:db8::1")],
                port: 1179,
                v6_only: true,
            },
            originate: vec![net("10.1.0.0/26"), net("2001:db8:1::/122")],
            services: vec![net("10.96.0.0/12")],
            pools: vec![
                pool("10.1.0.0/16", Encapsulation::Ipip, true),
                pool("10.2.0.0/16", Encapsulation::IpipCrossSubnet, false),
                pool("10.3.0.0/16", Encapsulation::Vxlan, true),
                pool("10.4.0.0/16", Encapsulation::VxlanCrossSubnet, true),
                pool("10.5.0.0/16", Encapsulation::None, true),
            ],
            communities: vec![PrefixCommunities {
                prefix: net("10.1.0.0/16"),
                communities: vec!["65000:1".parse().unwrap(), "1:2:3".parse().unwrap()],
            }],
            cluster_id: Some("1.1.1.1".parse().unwrap()),
            max_paths: 4,
            kernel: KernelConfig {
                enabled: false,
                table: 100,
                protocol: 99,
                metric: Some(5),
                startup_wait: 7,
                reconcile_interval: 60,
                learn: false,
                family: Some(AddressFamily::Ipv6),
            },
            log_level: LogLevel::Trace,
            metrics: Some("127.0.0.1:9179".parse().unwrap()),
            peers: vec![
                Peer {
                    name: "a".into(),
                    address: ip("10.0.0.2"),
                    port: 1790,
                    asn: 65002,
                    settings: first,
                },
                Peer {
                    name: "b".into(),
                    address: ip("2001:db8::2"),
                    port: 179,
                    asn: 65000,
                    settings: second,
                },
            ],
            normal_route_priority: Some(2000),
            static_routes: vec![
                StaticRoute {
                    prefix: net("203.0.113.254/32"),
                    via: ip("10.0.0.9"),
                },
                StaticRoute {
                    prefix: net("2001:db8:ff::/64"),
                    via: ip("2001:db8::9"),
                },
            ],
            filters: vec![BgpFilter {
                name: "f".into(),
                import_v4: vec![FilterRule {
                    cidr: Some((MatchOperator::In, net("10.0.0.0/8"))),
                    prefix_length: Some((Some(16), None)),
                    from_peers: true,
                    ..FilterRule::any(RuleAction::Accept)
                }],
                export_v4: vec![
                    FilterRule {
                        interface: Some("eth*".into()),
                        ..FilterRule::any(RuleAction::Reject)
                    },
                    FilterRule {
                        peer_type: Some(PeerType::Ebgp),
                        community: Some("65000:1:2".parse().unwrap()),
                        as_path_prefix: vec![65000, 4200000000],
                        priority: Some(100),
                        operations: vec![
                            Operation::AddCommunity("65001:200".parse().unwrap()),
                            Operation::PrependAsPath(vec![65001, 65002]),
                            Operation::SetPriority(1),
                        ],
                        ..FilterRule::any(RuleAction::Accept)
                    },
                ],
                import_v6: vec![FilterRule {
                    cidr: Some((MatchOperator::NotIn, net("2001:db8::/32"))),
                    prefix_length: Some((None, Some(64))),
                    ..FilterRule::any(RuleAction::Reject)
                }],
                export_v6: vec![FilterRule {
                    cidr: Some((MatchOperator::NotEqual, net("2001:db8::/32"))),
                    ..FilterRule::any(RuleAction::Accept)
                }],
            }],
        };
        let text = to_toml(&c).unwrap();
        assert_eq!(toml::parse(None, &text), Ok(c), "{text}");
    }

    /// Settings at their default are left out.
    #[test]
    fn defaults_are_left_out() {
        let c = toml::parse(None, "router_id = \"10.0.0.1\"\nasn = 65000\n").unwrap();
        let text = to_toml(&c).unwrap();
        assert_eq!(
            text,
            "asn = 65000\nlog_level = \"info\"\nmax_paths = 16\nrouter_id = \"10.0.0.1\"\n"
        );
        assert_eq!(toml::parse(None, &text), Ok(c));
    }
}
