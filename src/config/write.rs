//! The model written back as wren's TOML file (`wrenc convert`): reading the text with
//! [`super::toml`] gives the same model. Settings at their default are left out, so the file
//! shows what a configuration changes.

use ::toml::{Table, Value};

use super::{
    AddPaths, BgpFilter, Config, Encapsulation, FilterRule, KernelConfig, Listen, LogLevel,
    MatchOperator, NextHopMode, PeerDefaults, RuleAction,
};

/// The TOML text of a model.
pub fn to_toml(c: &Config) -> Result<String, ::toml::ser::Error> {
    let mut t = Table::new();
    t.insert("router_id".into(), c.router_id.to_string().into());
    t.insert("asn".into(), i64::from(c.asn).into());
    if let Some(id) = c.cluster_id {
        t.insert("cluster_id".into(), id.to_string().into());
    }
    t.insert("max_paths".into(), int(c.max_paths));
    if c.log_level != LogLevel::default() {
        t.insert("log_level".into(), log_level(c.log_level).into());
    }
    if let Some(m) = c.metrics {
        t.insert("metrics".into(), m.to_string().into());
    }
    t.insert("originate".into(), strings(&c.originate));
    if !c.services.is_empty() {
        t.insert("services".into(), strings(&c.services));
    }
    if c.listen != Listen::default() {
        let mut l = Table::new();
        l.insert("addresses".into(), strings(&c.listen.addresses));
        l.insert("port".into(), i64::from(c.listen.port).into());
        t.insert("listen".into(), l.into());
    }
    t.insert("kernel".into(), kernel(&c.kernel).into());
    let pools = c.pools.iter().map(|p| {
        let mut t = Table::new();
        t.insert("cidr".into(), p.cidr.to_string().into());
        if p.encapsulation != Encapsulation::None {
            t.insert(
                "encapsulation".into(),
                encapsulation(p.encapsulation).into(),
            );
        }
        if !p.bgp_export {
            t.insert("bgp_export".into(), false.into());
        }
        t
    });
    tables(&mut t, "pool", pools);
    let communities = c.communities.iter().map(|pc| {
        let mut t = Table::new();
        t.insert("prefix".into(), pc.prefix.to_string().into());
        let list = pc.communities.iter().map(|c| match c {
            super::AnyCommunity::Standard(s) => s.to_string(),
            super::AnyCommunity::Large(l) => l.to_string(),
        });
        t.insert(
            "communities".into(),
            Value::Array(list.map(Value::from).collect()),
        );
        t
    });
    tables(&mut t, "communities", communities);
    tables(&mut t, "filters", c.filters.iter().map(filter));
    let peers = c.peers.iter().map(|p| {
        let mut t = Table::new();
        t.insert("name".into(), p.name.clone().into());
        t.insert("address".into(), p.address.to_string().into());
        t.insert("asn".into(), i64::from(p.asn).into());
        if p.port != 179 {
            t.insert("port".into(), i64::from(p.port).into());
        }
        settings(&mut t, &p.settings);
        t
    });
    tables(&mut t, "peer", peers);
    ::toml::to_string(&t)
}

fn int(n: usize) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn strings<T: ToString>(xs: &[T]) -> Value {
    Value::Array(xs.iter().map(|x| Value::from(x.to_string())).collect())
}

/// `[[name]]` tables, left out when there are none.
fn tables(t: &mut Table, name: &str, items: impl Iterator<Item = Table>) {
    let list: Vec<Value> = items.map(Value::Table).collect();
    if !list.is_empty() {
        t.insert(name.into(), Value::Array(list));
    }
}

fn kernel(k: &KernelConfig) -> Table {
    let d = KernelConfig::default();
    let mut t = Table::new();
    t.insert("enabled".into(), k.enabled.into());
    t.insert("learn".into(), k.learn.into());
    t.insert("startup_wait".into(), i64::from(k.startup_wait).into());
    if k.table != d.table {
        t.insert("table".into(), i64::from(k.table).into());
    }
    if k.protocol != d.protocol {
        t.insert("protocol".into(), i64::from(k.protocol).into());
    }
    if let Some(m) = k.metric {
        t.insert("metric".into(), i64::from(m).into());
    }
    if k.reconcile_interval != d.reconcile_interval {
        t.insert(
            "reconcile_interval".into(),
            i64::from(k.reconcile_interval).into(),
        );
    }
    t
}

/// A peer's settings that differ from `[defaults]` (which the file leaves at wren's).
fn settings(t: &mut Table, s: &PeerDefaults) {
    let d = PeerDefaults::default();
    let mut put = |key: &str, differs: bool, v: Value| {
        if differs {
            t.insert(key.into(), v);
        }
    };
    put(
        "hold_time",
        s.hold_time != d.hold_time,
        i64::from(s.hold_time).into(),
    );
    if let Some(k) = s.keepalive {
        put("keepalive", true, i64::from(k).into());
    }
    put(
        "connect_delay",
        s.connect_delay != d.connect_delay,
        i64::from(s.connect_delay).into(),
    );
    put(
        "connect_retry",
        s.connect_retry != d.connect_retry,
        i64::from(s.connect_retry).into(),
    );
    put(
        "error_wait",
        s.error_wait != d.error_wait,
        Value::Array(s.error_wait.iter().map(|w| i64::from(*w).into()).collect()),
    );
    put("passive", s.passive, true.into());
    if let Some(p) = &s.password {
        put("password", true, p.clone().into());
    }
    if let Some(a) = s.source_address {
        put("source_address", true, a.to_string().into());
    }
    if let Some(n) = s.ttl {
        put("ttl", true, i64::from(n).into());
    }
    if let Some(n) = s.ttl_security {
        put("ttl_security", true, i64::from(n).into());
    }
    put(
        "graceful_restart",
        s.graceful_restart != d.graceful_restart,
        s.graceful_restart.into(),
    );
    put(
        "restart_time",
        s.restart_time != d.restart_time,
        i64::from(s.restart_time).into(),
    );
    put(
        "add_paths",
        s.add_paths != d.add_paths,
        add_paths(s.add_paths).into(),
    );
    put(
        "add_paths_send",
        s.add_paths_send != d.add_paths_send,
        int(s.add_paths_send),
    );
    put("rr_client", s.rr_client, true.into());
    put(
        "next_hop",
        s.next_hop != d.next_hop,
        next_hop(s.next_hop).into(),
    );
    put(
        "allow_local_as",
        s.allow_local_as != d.allow_local_as,
        int(s.allow_local_as),
    );
    if let Some(n) = s.import_limit {
        put("import_limit", true, i64::from(n).into());
    }
    put(
        "import_limit_action",
        s.import_limit_action != d.import_limit_action,
        s.import_limit_action.name().into(),
    );
    if let Some(asn) = s.local_asn {
        put("local_as", true, i64::from(asn).into());
    }
    put("filters", !s.filters.is_empty(), strings(&s.filters));
}

fn filter(f: &BgpFilter) -> Table {
    let mut t = Table::new();
    t.insert("name".into(), f.name.clone().into());
    for (key, rules) in [
        ("import_v4", &f.import_v4),
        ("export_v4", &f.export_v4),
        ("import_v6", &f.import_v6),
        ("export_v6", &f.export_v6),
    ] {
        if !rules.is_empty() {
            t.insert(
                key.into(),
                Value::Array(rules.iter().map(|r| rule(r).into()).collect()),
            );
        }
    }
    t
}

fn rule(r: &FilterRule) -> Table {
    let mut t = Table::new();
    let action = match r.action {
        RuleAction::Accept => "accept",
        RuleAction::Reject => "reject",
    };
    t.insert("action".into(), action.into());
    if let Some((op, cidr)) = r.cidr {
        t.insert("cidr".into(), cidr.to_string().into());
        let op = match op {
            MatchOperator::Equal => "equal",
            MatchOperator::NotEqual => "not-equal",
            MatchOperator::In => "in",
            MatchOperator::NotIn => "not-in",
        };
        t.insert("match".into(), op.into());
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
    t
}

fn log_level(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

fn encapsulation(e: Encapsulation) -> &'static str {
    match e {
        Encapsulation::None => "none",
        Encapsulation::Ipip => "ipip",
        Encapsulation::IpipCrossSubnet => "ipip-cross-subnet",
        Encapsulation::Vxlan => "vxlan",
        Encapsulation::VxlanCrossSubnet => "vxlan-cross-subnet",
    }
}

fn add_paths(a: AddPaths) -> &'static str {
    match a {
        AddPaths::Off => "off",
        AddPaths::Rx => "rx",
        AddPaths::Tx => "tx",
        AddPaths::Both => "both",
    }
}

fn next_hop(n: NextHopMode) -> &'static str {
    match n {
        NextHopMode::Auto => "auto",
        NextHopMode::Myself => "self",
        NextHopMode::Keep => "keep",
    }
}
