//! wrend with Calico's datastore as its only input: a real etcd (Debian's etcd-server) on
//! 127.0.0.1 (the harness's [`Etcd::loopback`], plain or TLS), Calico's resources written at
//! Calico's keys through etcd's own JSON gateway, and a real wrend whose file holds only
//! `[datastore]` (and the node-local `[kernel]` and `metrics`). It reads its node's
//! configuration from etcd, follows a change through the watch, and starts from its saved
//! state while etcd is down.
//! Run under the shared lock: `flock /tmp/wren-net.lock cargo test --test datastore`.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::etcd::Etcd;
use harness::loopback::{Wrend, free_port};
use harness::proc::work_dir;

const RESOURCES: &str = "/calico/resources/v3/projectcalico.org";

/// A directory of this test's run (etcd's data and log, wrend's saved state), kept after it
/// and cleared by the next run.
fn run_dir(id: &str) -> PathBuf {
    work_dir(&std::env::temp_dir().join("wren-datastore"), id)
}

fn put(etcd: &Etcd, key: &str, value: &str) {
    let r = etcd.client().put(key, value.as_bytes());
    r.unwrap_or_else(|e| panic!("put {key}: {e}"));
}

/// Node `name` at `ip`, as calicoctl stores it.
fn put_node(etcd: &Etcd, name: &str, ip: &str) {
    put(etcd, &format!("{RESOURCES}/nodes/{name}"), &node(name, ip));
}

fn delete(etcd: &Etcd, key: &str) {
    let r = etcd.client().delete(key);
    r.unwrap_or_else(|e| panic!("delete {key}: {e}"));
}

/// A Calico Node as calicoctl stores it.
fn node(name: &str, ip: &str) -> String {
    format!(
        r#"{{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{{"name":"{name}","uid":"u-{name}","creationTimestamp":"2026-12-06T00:00:00Z"}},"spec":{{"bgp":{{"ipv4Address":"{ip}/8"}},"orchRefs":[{{"nodeName":"{name}","orchestrator":"k8s"}}]}},"status":{{}}}}"#
    )
}

fn bgp_configuration(port: u16) -> String {
    format!(
        r#"{{"kind":"BGPConfiguration","apiVersion":"projectcalico.org/v3","metadata":{{"name":"default"}},"spec":{{"logSeverityScreen":"Info","nodeToNodeMeshEnabled":true,"asNumber":64512,"listenPort":{port}}}}}"#
    )
}

fn affinity(node: &str, block: &str) -> String {
    format!(
        "/calico/ipam/v2/host/{node}/ipv4/block/{}",
        block.replace('/', "-")
    )
}

/// Polls `f` until it holds or 10 s pass; the last reply is in the panic.
fn eventually(what: &str, mut f: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match f() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn contains(reply: &str, needles: &[&str]) -> Result<(), String> {
    match needles.iter().find(|n| !reply.contains(**n)) {
        None => Ok(()),
        Some(n) => Err(format!("no {n:?} in:\n{reply}")),
    }
}

fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn datastore_file(etcd: &Etcd, state: &Path, metrics: u16) -> String {
    format!(
        "metrics = \"127.0.0.1:{metrics}\"\n[datastore]\nkind = \"etcdv3\"\nendpoints = [\"http://127.0.0.1:1\", \"{}\"]\nnode = \"n1\"\nstate_dir = \"{}\"\n[kernel]\nenabled = false\n",
        etcd.endpoint(),
        state.display()
    )
}

/// The node's router ID, AS, mesh peers and blocks come from etcd (through a dead first
/// endpoint); a node written later and a changed affinity arrive through the watch and apply
/// without resetting the session already there; with etcd stopped, a restarted wrend runs
/// the saved state and says so; etcd back, it reads again and follows.
#[test]
fn reads_follows_and_survives_etcd() {
    let dir = run_dir("reads");
    let mut etcd = Etcd::loopback(&dir, false);
    let state = dir.join("state");
    let metrics = free_port();
    let first_port = std::cell::Cell::new(0);
    let file = |port: u16| {
        first_port.set(port);
        put(
            &etcd,
            &format!("{RESOURCES}/bgpconfigurations/default"),
            &bgp_configuration(port),
        );
        put_node(&etcd, "n1", "127.0.0.1");
        put_node(&etcd, "n2", "127.0.0.12");
        put(
            &etcd,
            &affinity("n1", "10.65.0.0/26"),
            r#"{"state":"confirmed","deleted":false}"#,
        );
        put(
            &etcd,
            &affinity("n2", "10.65.0.64/26"),
            r#"{"state":"confirmed","deleted":false}"#,
        );
        datastore_file(&etcd, &state, metrics)
    };
    let w = Wrend::start("datastore", file);
    let ds = w.control("show datastore");
    contains(
        &ds,
        &[
            "Computed: router id 127.0.0.1, AS 64512",
            "peer Mesh_127_0_0_12 127.0.0.12 AS 64512",
            "block 10.65.0.0/26",
            &format!("connected to {}", etcd.endpoint()),
        ],
    )
    .unwrap();
    assert!(!ds.contains("10.65.0.64/26"), "{ds}");
    contains(&w.control("show protocols"), &["Mesh_127_0_0_12"]).unwrap();
    let wrenc = Command::new(env!("CARGO_BIN_EXE_wrenc"))
        .arg("-s")
        .arg(w.dir.join("ctl"))
        .args(["show", "datastore"])
        .output()
        .expect("wrenc");
    contains(
        &String::from_utf8_lossy(&wrenc.stdout),
        &["block 10.65.0.0/26"],
    )
    .unwrap();
    let text = scrape(metrics);
    contains(
        &text,
        &["wren_datastore_connected 1", "wren_datastore_revision "],
    )
    .unwrap();

    // A node joins and this node's block moves: both through the watch.
    put_node(&etcd, "n3", "127.0.0.13");
    delete(&etcd, &affinity("n1", "10.65.0.0/26"));
    put(
        &etcd,
        &affinity("n1", "10.65.1.0/26"),
        r#"{"state":"confirmed"}"#,
    );
    eventually("the watch's changes applied", || {
        let ds = w.control("show datastore");
        contains(&ds, &["peer Mesh_127_0_0_13", "block 10.65.1.0/26"])?;
        if ds.contains("block 10.65.0.0/26") {
            return Err(format!("old block still announced:\n{ds}"));
        }
        contains(
            &w.control("show protocols"),
            &["Mesh_127_0_0_12", "Mesh_127_0_0_13"],
        )
    });
    contains(&w.control("show route"), &["10.65.1.0/26"]).unwrap();
    contains(&w.control("show datastore"), &["Last change applied on"]).unwrap();

    // etcd down: the running daemon keeps everything and says so.
    etcd.stop();
    eventually("the lost connection noticed", || {
        contains(&w.control("show status"), &["Datastore: not connected"])
    });
    contains(
        &w.control("show protocols"),
        &["Mesh_127_0_0_12", "Mesh_127_0_0_13"],
    )
    .unwrap();
    contains(&scrape(metrics), &["wren_datastore_connected 0"]).unwrap();

    // A wrend started while etcd is down runs the saved state, once the last change is
    // on disk (written off the event loop, after it applied).
    eventually("the applied state saved", || {
        let saved =
            std::fs::read_to_string(state.join("datastore.json")).map_err(|e| e.to_string())?;
        contains(&saved, &["\"format\":1", "nodes/n3", "10.65.1.0-26"])
    });
    drop(w);
    let w = Wrend::start_on(
        "datastore-saved",
        first_port.get(),
        datastore_file(&etcd, &state, metrics),
    );
    let status = w.control("show status");
    contains(
        &status,
        &["Datastore: not connected", "running from the saved state"],
    )
    .unwrap();
    contains(
        &w.control("show datastore"),
        &["peer Mesh_127_0_0_13", "block 10.65.1.0/26"],
    )
    .unwrap();
    contains(&scrape(metrics), &["wren_datastore_from_saved 1"]).unwrap();

    // etcd back with a change: read again, applied.
    etcd.run_on(etcd.client_port);
    delete(&etcd, &format!("{RESOURCES}/nodes/n2"));
    eventually("etcd back and read again", || {
        let ds = w.control("show datastore");
        contains(&ds, &["Connected: connected to"])?;
        if ds.contains("Mesh_127_0_0_12") {
            return Err(format!("deleted node still a peer:\n{ds}"));
        }
        Ok(())
    });
    let protocols = w.control("show protocols");
    assert!(!protocols.contains("Mesh_127_0_0_12"), "{protocols}");
}

/// An `https://` etcd that asks for a client certificate: read with the CA, certificate and
/// key files Calico's `ETCD_CA_CERT_FILE`, `ETCD_CERT_FILE` and `ETCD_KEY_FILE` name, and
/// followed through the watch over TLS.
#[test]
fn reads_over_tls_with_a_client_certificate() {
    let dir = run_dir("tls");
    let etcd = Etcd::loopback(&dir, true);
    let Some(tls) = etcd.client_tls() else {
        panic!("etcd without TLS");
    };
    let file = |port: u16| {
        put(
            &etcd,
            &format!("{RESOURCES}/bgpconfigurations/default"),
            &bgp_configuration(port),
        );
        put_node(&etcd, "n1", "127.0.0.1");
        format!(
            "[datastore]\nkind = \"etcdv3\"\nendpoints = [\"{}\"]\nnode = \"n1\"\nstate_dir = \"{}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n[kernel]\nenabled = false\n",
            etcd.endpoint(),
            dir.join("state").display(),
            tls.ca.display(),
            tls.cert.display(),
            tls.key.display(),
        )
    };
    let w = Wrend::start("datastore-tls", file);
    contains(
        &w.control("show datastore"),
        &[
            "Connected: connected to https://127.0.0.1:",
            "router id 127.0.0.1",
        ],
    )
    .unwrap();
    put_node(&etcd, "n2", "127.0.0.12");
    eventually("a node written over TLS", || {
        contains(&w.control("show protocols"), &["Mesh_127_0_0_12"])
    });
    // A new router ID needs a restart: the old one keeps running, and the rest applies.
    put_node(&etcd, "n1", "127.0.0.2");
    put_node(&etcd, "n3", "127.0.0.13");
    eventually("the router ID kept, the new peer added", || {
        contains(
            &w.control("show datastore"),
            &[
                "router_id kept until a restart",
                "router id 127.0.0.1",
                "Mesh_127_0_0_13",
            ],
        )
    });
    // `configure` in datastore mode reads the file again and applies the newest state.
    contains(&w.control("configure check"), &["Configuration OK"]).unwrap();
    contains(&w.control("configure"), &["needs a restart"]).unwrap();
    contains(&w.control("show protocols"), &["Mesh_127_0_0_12"]).unwrap();
}

/// A read is one snapshot and says at which revision: etcd answers a range at an older
/// revision with its newest in the header, so a read that took the header's would start its
/// watch after a change it never saw (a node deleted while wrend read again stayed a peer).
#[test]
fn a_range_at_a_revision_reports_that_revision() {
    let etcd = Etcd::loopback(&run_dir("revision"), false);
    let nodes = format!("{RESOURCES}/nodes/");
    put(&etcd, &format!("{nodes}n1"), &node("n1", "127.0.0.1"));
    let settings: wren::config::datastore::Settings = toml::from_str(&format!(
        "kind = \"etcdv3\"\nendpoints = [\"{}\"]\n",
        etcd.endpoint()
    ))
    .expect("settings");
    let mut client = wren::datastore::etcd::Client::new(&settings).expect("client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let end = wren::datastore::etcd::prefix_end(&nodes);
    let (_, at) = runtime
        .block_on(client.range(&nodes, &end, 0))
        .expect("range");
    put(&etcd, &format!("{nodes}n2"), &node("n2", "127.0.0.12"));
    let (kvs, read_at) = runtime
        .block_on(client.range(&nodes, &end, at))
        .expect("range at a revision");
    assert_eq!(kvs.len(), 1, "n2 came after revision {at}");
    assert_eq!(read_at, at, "the revision read at");
}
