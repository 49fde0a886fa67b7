//! The `[datastore]` table: where Calico's datastore is and which node this is. A file with
//! this table needs nothing else; router ID, AS, addresses and peers come from the datastore.
//! Beside it the file may hold what no Calico resource carries: `metrics` and `[kernel]`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use crate::config::{Config, KernelConfig};

/// A configuration file in datastore mode.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Local {
    pub datastore: Settings,
    #[serde(default)]
    pub kernel: KernelConfig,
    pub metrics: Option<SocketAddr>,
}

impl Local {
    /// A model decided from the datastore with this file's node-local settings.
    pub fn overlay(&self, mut decided: Config) -> Config {
        decided.kernel = self.kernel.clone();
        decided.metrics = self.metrics;
        decided
    }
}

/// The datastore and this node's name in it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub kind: Kind,
    /// Client URLs, tried in turn (Calico's `ETCD_ENDPOINTS`).
    pub endpoints: Vec<Endpoint>,
    /// CA certificates for `https://` endpoints (`ETCD_CA_CERT_FILE`).
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (`ETCD_CERT_FILE`, `ETCD_KEY_FILE`).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// This node's name in the datastore (Calico's `NODENAME`); the host name when unset.
    pub node: Option<String>,
    /// Where the last applied datastore state is kept, for a start while etcd is down.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/wren")
}

impl Settings {
    /// This node's name: `node`, or the host name as Calico takes it (`os.Hostname()`).
    pub fn node_name(&self) -> Result<String, String> {
        if let Some(n) = &self.node {
            return Ok(n.clone());
        }
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_err(|e| format!("no node name set and no host name: {e}"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err("no node name set and the host name is empty".into());
        }
        Ok(name.to_string())
    }

    /// The file the last applied state is kept in.
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("datastore.json")
    }
}

/// The datastore's kind; etcd v3 is the one wren reads (Calico's `DATASTORE_TYPE=etcdv3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Kind {
    #[serde(rename = "etcdv3")]
    EtcdV3,
}

/// One client URL: `http://HOST:PORT` or `https://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses a client URL as Calico's `ETCD_ENDPOINTS` carries them (port 2379 when none).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "{url:?}: an endpoint is http://HOST:PORT or https://HOST:PORT"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: no ']' after an IPv6 address"))?;
            (host, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("{url:?}: bad port {p:?}"))?,
            None => 2379,
        };
        if host.is_empty() || host.contains('/') {
            return Err(format!("{url:?}: no host"));
        }
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
        })
    }

    /// `HOST:PORT`, as HTTP's Host header writes it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority())
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Endpoint::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse;
        assert_eq!(
            e("http://127.0.0.1:2379"),
            Ok(Endpoint {
                tls: false,
                host: "127.0.0.1".into(),
                port: 2379
            })
        );
        assert_eq!(
            e("https://etcd.example:4001/"),
            Ok(Endpoint {
                tls: true,
                host: "etcd.example".into(),
                port: 4001
            })
        );
        let v6 = e("http://[::1]:2380").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 2380));
        assert_eq!(v6.to_string(), "http://[::1]:2380");
        assert_eq!(e("http://etcd").map(|e| e.port), Ok(2379));
        for bad in [
            "etcd:2379",
            "ftp://x",
            "http://:1",
            "http://x:y",
            "http://[::1",
        ] {
            assert!(e(bad).is_err(), "{bad}");
        }
    }
}
