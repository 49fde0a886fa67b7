//! The model written back as wren's TOML file (`wrenc convert`): reading the text with
//! [`super::toml`] gives the same model. Settings at their default are left out, so the file
//! shows what a configuration changes; the model's serde names are the file's keys.

use ::toml::{Table, Value};
use serde::Serialize;

use super::{AnyCommunity, BgpFilter, Config, FilterRule, KernelConfig, Listen, PeerDefaults};

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
    let communities = c.communities.iter().map(|pc| {
        let mut t = Table::new();
        t.insert("prefix".into(), pc.prefix.to_string().into());
        let list = pc.communities.iter().map(|c| match c {
            AnyCommunity::Standard(s) => s.to_string(),
            AnyCommunity::Large(l) => l.to_string(),
        });
        t.insert(
            "communities".into(),
            Value::Array(list.map(Value::from).collect()),
        );
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
    Ok(Value::Table(t))
}
