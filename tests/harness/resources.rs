//! Calico's resources written into etcd the way calicoctl (libcalico-go's etcdv3 backend)
//! stores them: JSON values at Calico's keys. Written here from Calico's sources, not from
//! wren's reader, so a wrong key or field on either side shows:
//! - `/calico/resources/v3/projectcalico.org/<plural>/<name>` for the cluster-wide kinds
//!   (`libcalico-go/lib/backend/model/resource.go`), the value the v3 resource with `kind`,
//!   `apiVersion`, `metadata` and `spec` (`api/pkg/apis/projectcalico/v3`, `node.go`);
//! - block affinities at `/calico/ipam/v2/host/<node>/ipv4/block/<cidr, '/' as '-'>`
//!   (`block_affinity.go`: `{"state":"confirmed","deleted":false}`), blocks at
//!   `/calico/ipam/v2/assignment/ipv4/block/<cidr>` (`block.go`, `AllocationBlock`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{Value, json};

use super::etcd::Client;

const RESOURCES: &str = "/calico/resources/v3/projectcalico.org";

/// The key of a cluster-wide v3 resource.
pub fn resource_key(plural: &str, name: &str) -> String {
    format!("{RESOURCES}/{plural}/{name}")
}

/// The key of a block's affinity to `node`.
pub fn affinity_key(node: &str, block: Ipv4Net) -> String {
    format!("/calico/ipam/v2/host/{node}/ipv4/block/{}", dashed(block))
}

/// The key of a block.
pub fn block_key(block: Ipv4Net) -> String {
    format!("/calico/ipam/v2/assignment/ipv4/block/{}", dashed(block))
}

fn dashed(block: Ipv4Net) -> String {
    format!("{}-{}", block.network(), block.prefix_len())
}

/// A v3 resource as calicoctl writes it.
fn resource(kind: &str, name: &str, labels: &BTreeMap<String, String>, spec: Value) -> Value {
    json!({
        "kind": kind,
        "apiVersion": "projectcalico.org/v3",
        "metadata": {
            "name": name,
            "uid": format!("{:08x}-0000-4000-8000-000000000000", fnv(name)),
            "creationTimestamp": "2026-12-06T00:00:00Z",
            "labels": labels,
        },
        "spec": spec,
    })
}

/// A stable stand-in for a UID.
fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A Calico Node's BGP side.
#[derive(Clone, Debug)]
pub struct CalicoNode {
    pub name: String,
    /// `spec.bgp.ipv4Address`: the node's address with its subnet.
    pub ipv4: Ipv4Net,
    pub asn: Option<u32>,
    pub rr_cluster_id: Option<Ipv4Addr>,
    pub labels: BTreeMap<String, String>,
}

impl CalicoNode {
    pub fn new(name: &str, ipv4: Ipv4Net) -> CalicoNode {
        let mut labels = BTreeMap::new();
        labels.insert("kubernetes.io/hostname".to_string(), name.to_string());
        labels.insert("kubernetes.io/os".to_string(), "linux".to_string());
        CalicoNode {
            name: name.to_string(),
            ipv4,
            asn: None,
            rr_cluster_id: None,
            labels,
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> CalicoNode {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    pub fn json(&self) -> Value {
        let mut bgp = json!({ "ipv4Address": self.ipv4.to_string() });
        if let Some(asn) = self.asn {
            bgp["asNumber"] = json!(asn);
        }
        if let Some(id) = self.rr_cluster_id {
            bgp["routeReflectorClusterID"] = json!(id.to_string());
        }
        resource(
            "Node",
            &self.name,
            &self.labels,
            json!({
                "bgp": bgp,
                "orchRefs": [{"nodeName": self.name, "orchestrator": "k8s"}],
            }),
        )
    }
}

/// The `default` BGPConfiguration.
pub fn bgp_configuration(mesh: bool, asn: u32) -> Value {
    resource(
        "BGPConfiguration",
        "default",
        &BTreeMap::new(),
        json!({
            "logSeverityScreen": "Info",
            "nodeToNodeMeshEnabled": mesh,
            "asNumber": asn,
        }),
    )
}

/// A BGPPeer; `spec` holds its fields (`nodeSelector`, `peerSelector`, `peerIP`, `asNumber`…).
pub fn bgp_peer(name: &str, spec: Value) -> Value {
    resource("BGPPeer", name, &BTreeMap::new(), spec)
}

/// An IPPool without encapsulation, exported over BGP.
pub fn ip_pool(name: &str, cidr: Ipv4Net) -> Value {
    resource(
        "IPPool",
        name,
        &BTreeMap::new(),
        json!({
            "cidr": cidr.to_string(),
            "vxlanMode": "Never",
            "ipipMode": "Never",
            "natOutgoing": true,
            "blockSize": 26,
            "nodeSelector": "all()",
            "allowedUses": ["Workload", "Tunnel"],
        }),
    )
}

/// A WorkloadEndpoint (a pod's interface: the churn of a busy cluster, which wren watches
/// past and drops) carrying `padding` bytes in an annotation.
pub fn workload_endpoint(namespace: &str, name: &str, padding: usize) -> Value {
    let mut v = resource(
        "WorkloadEndpoint",
        name,
        &BTreeMap::new(),
        json!({
            "orchestrator": "k8s",
            "node": "node1",
            "pod": name,
            "endpoint": "eth0",
            "interfaceName": format!("cali{:011x}", fnv(name)),
        }),
    );
    v["metadata"]["namespace"] = json!(namespace);
    v["metadata"]["annotations"] = json!({"padding": "x".repeat(padding)});
    v
}

/// A confirmed affinity.
pub fn affinity() -> Value {
    json!({"state": "confirmed", "deleted": false})
}

/// An allocation block affine to `node`, its first address allocated to a pod.
pub fn block(node: &str, cidr: Ipv4Net) -> Value {
    let size = 1usize << (32 - cidr.prefix_len());
    let mut allocations = vec![Value::Null; size];
    allocations[0] = json!(0);
    json!({
        "cidr": cidr.to_string(),
        "affinity": format!("host:{node}"),
        "strictAffinity": false,
        "allocations": allocations,
        "unallocated": (1..size).collect::<Vec<_>>(),
        "attributes": [{"handle_id": format!("k8s-pod-network.{node}"),
                        "secondary": {"namespace": "default", "node": node}}],
        "sequenceNumber": 1,
        "deleted": false,
    })
}

/// The keys and values of a node's Node resource, and its block with its affinity.
pub fn node_entries(node: &CalicoNode, blocks: &[Ipv4Net]) -> Vec<(String, Vec<u8>)> {
    let mut kvs = vec![(
        resource_key("nodes", &node.name),
        node.json().to_string().into_bytes(),
    )];
    for b in blocks {
        kvs.extend(block_entries(&node.name, *b));
    }
    kvs
}

/// A block affine to `node`: the block and the affinity.
pub fn block_entries(node: &str, b: Ipv4Net) -> Vec<(String, Vec<u8>)> {
    vec![
        (block_key(b), block(node, b).to_string().into_bytes()),
        (affinity_key(node, b), affinity().to_string().into_bytes()),
    ]
}

/// Writes Calico resources through an etcd client, one key (one revision) at a time as
/// calicoctl and calico-ipam do.
pub struct Writer<'a>(pub &'a Client);

impl Writer<'_> {
    pub fn put(&self, key: &str, value: &Value) -> Result<i64, String> {
        self.0.put(key, value.to_string().as_bytes())
    }

    pub fn put_all(&self, kvs: &[(String, Vec<u8>)]) -> Result<i64, String> {
        let mut rev = 0;
        for (k, v) in kvs {
            rev = self.0.put(k, v)?;
        }
        Ok(rev)
    }

    pub fn node(&self, node: &CalicoNode, blocks: &[Ipv4Net]) -> Result<i64, String> {
        self.put_all(&node_entries(node, blocks))
    }

    /// Deletes a Node and its blocks' affinities and blocks (what `calicoctl delete node`
    /// and IPAM's release leave: nothing of it).
    pub fn delete_node(&self, name: &str, blocks: &[Ipv4Net]) -> Result<i64, String> {
        for b in blocks {
            self.0.delete(&affinity_key(name, *b))?;
            self.0.delete(&block_key(*b))?;
        }
        self.0.delete(&resource_key("nodes", name))
    }

    pub fn bgp_configuration(&self, mesh: bool, asn: u32) -> Result<i64, String> {
        self.put(
            &resource_key("bgpconfigurations", "default"),
            &bgp_configuration(mesh, asn),
        )
    }

    pub fn bgp_peer(&self, name: &str, spec: Value) -> Result<i64, String> {
        self.put(&resource_key("bgppeers", name), &bgp_peer(name, spec))
    }

    pub fn ip_pool(&self, name: &str, cidr: Ipv4Net) -> Result<i64, String> {
        self.put(&resource_key("ippools", name), &ip_pool(name, cidr))
    }
}
