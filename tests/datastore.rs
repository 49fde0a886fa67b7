//! wrend with Calico's datastore as its only input: a real etcd (Debian's etcd-server) on
//! 127.0.0.1 with a temporary data directory, Calico's resources written at Calico's keys
//! with the real `etcdctl`, and a real wrend whose file holds only `[datastore]` (and the
//! node-local `[kernel]` and `metrics`). It reads its node's configuration from etcd, follows
//! a change through the watch, and starts from its saved state while etcd is down.
//! Run under the shared lock: `flock /tmp/wren-net.lock cargo test --test datastore`.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::loopback::{Wrend, wait_for};

const RESOURCES: &str = "/calico/resources/v3/projectcalico.org";

/// One etcd member on 127.0.0.1, killed and its data removed when dropped.
struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client: u16,
    peer: u16,
    /// Serves `https://` and asks for a client certificate (files in `dir`).
    tls: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Etcd {
    fn start(tls: bool) -> Etcd {
        let (client, peer) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("wren-etcd-{}-{client}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("etcd dir");
        let mut e = Etcd {
            child: None,
            dir,
            client,
            peer,
            tls,
        };
        if tls {
            certificates(&e.dir);
        }
        e.run();
        e
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Starts (or starts again) the member on its data directory.
    fn run(&mut self) {
        let url = |p| format!("http://127.0.0.1:{p}");
        let log = std::fs::File::create(self.dir.join("etcd.log")).expect("etcd log");
        let mut cmd = Command::new("etcd");
        if self.tls {
            cmd.arg(format!("--cert-file={}", self.file("server.pem")))
                .arg(format!("--key-file={}", self.file("server.key")))
                .arg(format!("--trusted-ca-file={}", self.file("ca.pem")))
                .arg("--client-cert-auth");
        }
        let child = cmd
            .arg("--name=wren")
            .arg(format!("--data-dir={}", self.dir.join("data").display()))
            .arg(format!("--listen-client-urls={}", self.endpoint()))
            .arg(format!("--advertise-client-urls={}", self.endpoint()))
            .arg(format!("--listen-peer-urls={}", url(self.peer)))
            .arg(format!("--initial-advertise-peer-urls={}", url(self.peer)))
            .arg(format!("--initial-cluster=wren={}", url(self.peer)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd (apt-get install etcd-server)");
        self.child = Some(child);
        wait_for(|| self.ctl(&["get", "/"]).is_ok(), "etcd answering");
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client)
    }

    fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("etcdctl");
        if self.tls {
            cmd.arg(format!("--cacert={}", self.file("ca.pem")))
                .arg(format!("--cert={}", self.file("client.pem")))
                .arg(format!("--key={}", self.file("client.key")));
        }
        let out = cmd
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .arg("--dial-timeout=1s")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", key, value])
            .unwrap_or_else(|e| panic!("etcdctl put {key}: {e}"));
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
fn certificates(dir: &Path) {
    let run = |args: &str| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args.split_whitespace())
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    run(&format!(
        "req -x509 {key} -keyout ca.key -out ca.pem -days 2 -subj /CN=wren-test-ca"
    ));
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for who in ["server", "client"] {
        run(&format!(
            "req {key} -keyout {who}.key -out {who}.csr -subj /CN={who}"
        ));
        run(&format!(
            "x509 -req -in {who}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out {who}.pem -extfile {who}.ext"
        ));
    }
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
    let mut etcd = Etcd::start(false);
    let state = etcd.dir.join("state");
    let metrics = free_port();
    let first_port = std::cell::Cell::new(0);
    let file = |port: u16| {
        first_port.set(port);
        etcd.put(
            &format!("{RESOURCES}/bgpconfigurations/default"),
            &bgp_configuration(port),
        );
        etcd.put(&format!("{RESOURCES}/nodes/n1"), &node("n1", "127.0.0.1"));
        etcd.put(&format!("{RESOURCES}/nodes/n2"), &node("n2", "127.0.0.12"));
        etcd.put(
            &affinity("n1", "10.65.0.0/26"),
            r#"{"state":"confirmed","deleted":false}"#,
        );
        etcd.put(
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
    etcd.put(&format!("{RESOURCES}/nodes/n3"), &node("n3", "127.0.0.13"));
    etcd.ctl(&["del", &affinity("n1", "10.65.0.0/26")]).unwrap();
    etcd.put(&affinity("n1", "10.65.1.0/26"), r#"{"state":"confirmed"}"#);
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
    etcd.run();
    etcd.ctl(&["del", &format!("{RESOURCES}/nodes/n2")])
        .unwrap();
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
    let etcd = Etcd::start(true);
    let file = |port: u16| {
        etcd.put(
            &format!("{RESOURCES}/bgpconfigurations/default"),
            &bgp_configuration(port),
        );
        etcd.put(&format!("{RESOURCES}/nodes/n1"), &node("n1", "127.0.0.1"));
        format!(
            "[datastore]\nkind = \"etcdv3\"\nendpoints = [\"{}\"]\nnode = \"n1\"\nstate_dir = \"{}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n[kernel]\nenabled = false\n",
            etcd.endpoint(),
            etcd.file("state"),
            etcd.file("ca.pem"),
            etcd.file("client.pem"),
            etcd.file("client.key"),
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
    etcd.put(&format!("{RESOURCES}/nodes/n2"), &node("n2", "127.0.0.12"));
    eventually("a node written over TLS", || {
        contains(&w.control("show protocols"), &["Mesh_127_0_0_12"])
    });
    // A new router ID needs a restart: the old one keeps running, and the rest applies.
    etcd.put(&format!("{RESOURCES}/nodes/n1"), &node("n1", "127.0.0.2"));
    etcd.put(&format!("{RESOURCES}/nodes/n3"), &node("n3", "127.0.0.13"));
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
    let etcd = Etcd::start(false);
    let nodes = format!("{RESOURCES}/nodes/");
    etcd.put(&format!("{nodes}n1"), &node("n1", "127.0.0.1"));
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
    etcd.put(&format!("{nodes}n2"), &node("n2", "127.0.0.12"));
    let (kvs, read_at) = runtime
        .block_on(client.range(&nodes, &end, at))
        .expect("range at a revision");
    assert_eq!(kvs.len(), 1, "n2 came after revision {at}");
    assert_eq!(read_at, at, "the revision read at");
}
