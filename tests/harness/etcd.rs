//! A real etcd for the datastore tests and benches: Debian's `etcd-server` (3.4) started in a
//! network namespace the test made, or on the test's own loopback ([`Etcd::loopback`]), over
//! plain HTTP or TLS with client certificates, on a data directory of the run, stopped and
//! started again at will (on the same data: revisions and compactions survive), and a small
//! client for its JSON gateway (grpc-gateway's `/v3/kv/…`, etcd's
//! `api/etcdserverpb/rpc.proto`) that writes, deletes and compacts. In a namespace the client
//! connects from a thread that entered it ([`in_netns`]), so the test process itself stays in
//! the root namespace.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::loopback::free_port;
use super::netns::in_netns;
use super::proc::{ProcId, Procs, require_binaries, system_bin, wait_until};

/// The client port wrend is given.
pub const CLIENT_PORT: u16 = 2379;
/// A port wrend is not given: etcd listens there while a test changes the datastore behind
/// wrend's back (wrend sees etcd down the whole time).
pub const PRIVATE_PORT: u16 = 23790;
/// etcd's peer port (a one-member cluster, on the namespace's loopback).
const PEER_PORT: u16 = 2380;
/// With TLS, the plain-HTTP port on the loopback the test's own client writes through.
const GATEWAY_PORT: u16 = 2381;
/// How long etcd may take to answer after it starts.
const START: Duration = Duration::from_secs(20);
/// Connect and I/O limit of one gateway request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Operations per transaction when writing many keys (the server is started allowing this
/// many; etcd's default is 128).
pub const TXN_OPS: usize = 1000;

pub fn etcd_bin() -> PathBuf {
    system_bin("etcd")
}

/// The files a client of a TLS etcd is given (Calico's `ETCD_CA_CERT_FILE`,
/// `ETCD_CERT_FILE`, `ETCD_KEY_FILE`).
pub struct ClientTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// An etcd server, one member, in namespace `ns` (or the test's own) at `ip`. Dropping it
/// stops exactly its process; its data directory stays with the test's logs.
pub struct Etcd {
    pub ns: Option<String>,
    pub ip: IpAddr,
    pub data: PathBuf,
    /// The port wrend is given.
    pub client_port: u16,
    peer_port: u16,
    /// With TLS (`https://`, client certificates required): the port of a plain-HTTP
    /// listener on the loopback for the test's own client, the certificates' directory.
    tls: Option<(u16, PathBuf)>,
    procs: Procs,
    /// The running process and its client port.
    running: Option<(ProcId, u16)>,
}

impl Etcd {
    /// Starts etcd in `ns`, listening for clients on `ip`:[`CLIENT_PORT`], its data in
    /// `dir/etcd-data` and its log in `dir/etcd.log`; returns once it answers.
    pub fn start(ns: &str, ip: IpAddr, dir: &Path) -> Etcd {
        let ports = (CLIENT_PORT, PEER_PORT, GATEWAY_PORT);
        Etcd::new(Some(ns), ip, ports, dir, false)
    }

    /// Starts etcd in the test's own namespace on 127.0.0.1, on ports free now (tests of one
    /// binary run side by side), over TLS with `tls`: a CA, a server certificate for
    /// 127.0.0.1 and a client certificate made in `dir` ([`Etcd::client_tls`]).
    pub fn loopback(dir: &Path, tls: bool) -> Etcd {
        let ports = (free_port(), free_port(), free_port());
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Etcd::new(None, ip, ports, dir, tls)
    }

    fn new(ns: Option<&str>, ip: IpAddr, ports: (u16, u16, u16), dir: &Path, tls: bool) -> Etcd {
        require_binaries(&[etcd_bin()]);
        let (client_port, peer_port, gateway) = ports;
        let mut etcd = Etcd {
            ns: ns.map(str::to_string),
            ip,
            data: dir.join("etcd-data"),
            client_port,
            peer_port,
            tls: tls.then(|| {
                let certs = dir.join("tls");
                certificates(&certs);
                (gateway, certs)
            }),
            procs: Procs::new("etcd", dir.to_path_buf()),
            running: None,
        };
        etcd.run_on(client_port);
        etcd
    }

    /// The endpoint wrend is given.
    pub fn endpoint(&self) -> String {
        self.url(self.client_port)
    }

    fn url(&self, port: u16) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", SocketAddr::new(self.ip, port))
    }

    /// The files wrend needs to read a TLS etcd.
    pub fn client_tls(&self) -> Option<ClientTls> {
        self.tls.as_ref().map(|(_, dir)| ClientTls {
            ca: dir.join("ca.pem"),
            cert: dir.join("client.pem"),
            key: dir.join("client.key"),
        })
    }

    /// Starts etcd (stopped) on its data directory with clients on `port`; returns once it
    /// answers there.
    pub fn run_on(&mut self, port: u16) {
        assert!(self.running.is_none(), "etcd is already running");
        let client = self.url(port);
        let mut listen = client.clone();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let data = self.data.display().to_string();
        let mut args: Vec<String> = Vec::new();
        if let Some((gateway, dir)) = &self.tls {
            listen.push_str(&format!(",http://127.0.0.1:{gateway}"));
            let file = |name: &str| dir.join(name).display().to_string();
            args.extend([
                format!("--cert-file={}", file("server.pem")),
                format!("--key-file={}", file("server.key")),
                format!("--trusted-ca-file={}", file("ca.pem")),
                "--client-cert-auth".to_string(),
            ]);
        }
        args.extend([
            "--name=wren-test".to_string(),
            format!("--data-dir={data}"),
            format!("--listen-client-urls={listen}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=wren-test={peer}"),
            format!("--max-txn-ops={TXN_OPS}"),
            "--max-request-bytes=10485760".to_string(),
        ]);
        let p = (self.procs).spawn_at("etcd", self.ns.as_deref(), &etcd_bin(), &args);
        self.running = Some((p, port));
        let r = wait_until(&format!("etcd answers at {client}"), START, || {
            if !self.procs.alive(p) {
                return Ok(Err("etcd exited".to_string()));
            }
            self.client().revision().map(Ok)
        });
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) | Err(e) => self.procs.fail(&format!("starting etcd: {e}")),
        }
    }

    /// SIGKILLs etcd (the abrupt end: wrend's connections are closed by the kernel). What
    /// was written stays: etcd syncs its log before it acknowledges a write.
    pub fn stop(&mut self) {
        if let Some((p, _)) = self.running.take() {
            self.procs.kill(p);
        }
    }

    /// Stops etcd and starts it again on `port`.
    pub fn restart_on(&mut self, port: u16) {
        self.stop();
        self.run_on(port);
    }

    pub fn running(&self) -> bool {
        self.running.is_some()
    }

    /// A client to the running etcd (with TLS, through its plain-HTTP loopback listener).
    pub fn client(&self) -> Client {
        let (_, port) = self.running.expect("etcd is not running");
        let addr = match &self.tls {
            Some((gateway, _)) => SocketAddr::from((Ipv4Addr::LOCALHOST, *gateway)),
            None => SocketAddr::new(self.ip, port),
        };
        Client {
            ns: self.ns.clone(),
            addr,
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.procs.stop_all(&[]);
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate in `dir`, made with
/// openssl.
fn certificates(dir: &Path) {
    std::fs::create_dir_all(dir).expect("certificates' directory");
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

/// A client of etcd's JSON gateway, one connection per request.
#[derive(Clone, Debug)]
pub struct Client {
    /// The namespace it connects from (the test's own with `None`).
    pub ns: Option<String>,
    pub addr: SocketAddr,
}

impl Client {
    /// Puts one key; returns the revision it made.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<i64, String> {
        let r = self.post(
            "/v3/kv/put",
            &json!({"key": base64(key.as_bytes()), "value": base64(value)}),
        )?;
        revision(&r)
    }

    /// Puts every key, [`TXN_OPS`] to a transaction; returns the last revision.
    pub fn put_all(&self, kvs: &[(String, Vec<u8>)]) -> Result<i64, String> {
        let mut rev = self.revision()?;
        for chunk in kvs.chunks(TXN_OPS) {
            let ops: Vec<Value> = chunk
                .iter()
                .map(|(k, v)| {
                    json!({"requestPut": {"key": base64(k.as_bytes()), "value": base64(v)}})
                })
                .collect();
            rev = revision(&self.post("/v3/kv/txn", &json!({"success": ops}))?)?;
        }
        Ok(rev)
    }

    /// Deletes one key; returns the revision (a new one when the key existed).
    pub fn delete(&self, key: &str) -> Result<i64, String> {
        revision(&self.post(
            "/v3/kv/deleterange",
            &json!({"key": base64(key.as_bytes())}),
        )?)
    }

    /// The store's current revision.
    pub fn revision(&self) -> Result<i64, String> {
        let r = self.post(
            "/v3/kv/range",
            &json!({"key": base64(b"/"), "count_only": true}),
        )?;
        revision(&r)
    }

    /// How many keys start with `prefix`.
    pub fn count(&self, prefix: &str) -> Result<u64, String> {
        let r = self.post(
            "/v3/kv/range",
            &json!({"key": base64(prefix.as_bytes()),
                    "range_end": base64(&prefix_end(prefix.as_bytes())),
                    "count_only": true}),
        )?;
        // int64 fields are JSON strings in grpc-gateway's output; absent when 0.
        match &r["count"] {
            Value::Null => Ok(0),
            v => v
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("range: no count in {r}")),
        }
    }

    /// Compacts the history up to `rev` (physically, waiting for it): a watch from before
    /// `rev` is then cancelled with `compact_revision`.
    pub fn compact(&self, rev: i64) -> Result<(), String> {
        self.post(
            "/v3/kv/compaction",
            &json!({"revision": rev, "physical": true}),
        )
        .map(drop)
    }

    /// POSTs `body` to `path` and returns the JSON answer; an HTTP error status is an error
    /// with etcd's message.
    fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let what = format!("etcd {} {path}", self.addr);
        let body = body.to_string();
        let connect = || TcpStream::connect_timeout(&self.addr, REQUEST_TIMEOUT);
        let mut s = match &self.ns {
            Some(ns) => in_netns(ns, connect),
            None => connect(),
        }
        .map_err(|e| format!("{what}: {e}"))?;
        let _ = s.set_read_timeout(Some(REQUEST_TIMEOUT));
        let _ = s.set_write_timeout(Some(REQUEST_TIMEOUT));
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        s.write_all(head.as_bytes())
            .and_then(|()| s.write_all(body.as_bytes()))
            .map_err(|e| format!("{what}: {e}"))?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer)
            .map_err(|e| format!("{what}: {e}"))?;
        let (status, text) = http_body(&answer).map_err(|e| format!("{what}: {e}"))?;
        let v: Value = serde_json::from_slice(&text)
            .map_err(|e| format!("{what}: {e}: {}", String::from_utf8_lossy(&text)))?;
        if status != 200 {
            return Err(format!("{what}: HTTP {status}: {v}"));
        }
        Ok(v)
    }
}

/// `header.revision` of a gateway answer.
fn revision(r: &Value) -> Result<i64, String> {
    r["header"]["revision"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no header.revision in {r}"))
}

/// The range end that covers every key starting with `prefix` (etcd's `GetPrefixRangeEnd`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The status and body of an HTTP/1.1 answer read to its end (plain or chunked).
fn http_body(answer: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the HTTP header")?;
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let mut body = &answer[split + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size = String::from_utf8_lossy(&body[..eol]);
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size:?}"))?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        let chunk = body.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

/// Standard base64 with padding (RFC 4648 §4): how the gateway carries `bytes` fields.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
