//! An etcd v3 client over etcd's JSON gateway (grpc-gateway, served on every client URL since
//! etcd 3.3 under `/v3/`): `POST /v3/kv/range` for a paged read at one revision, and the
//! streaming `POST /v3/watch`. Keys and values are base64 in both directions; 64-bit numbers
//! are JSON strings (proto3's JSON mapping). HTTP/1.1 is hyper's, TLS is rustls with the
//! `ring` provider, so the build needs neither `protoc` nor a C toolchain for TLS.
//!
//! Bounded: every answer is read up to a size cap, a watch message too, and connecting,
//! reading a page and waiting for a watch's first answer have timeouts. Endpoints are tried in
//! turn, from the one that last answered.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Deserializer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

use crate::config::datastore::{Endpoint, Settings};

/// Longest wait for a TCP connection and TLS handshake to one endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for one range page, or for a watch's first answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Keys per range page: each answer stays small however large the datastore.
const PAGE: u64 = 500;
/// Largest answer read: a page of `PAGE` keys, or one watch message (etcd's values are at
/// most 1.5 MiB by default, and a watch message carries the events of one revision batch).
pub const MAX_MESSAGE: usize = 64 << 20;
/// TCP keepalive on every connection, so a watch on a vanished host ends.
const KEEPALIVE: Duration = Duration::from_secs(10);
/// Longest silence on a watch before it counts as lost: etcd sends a progress notification
/// on an idle watch every 10 minutes by default (`progress_notify`, etcd's
/// `--experimental-watch-progress-notify-interval`), so a hung etcd is noticed.
const WATCH_SILENCE: Duration = Duration::from_secs(11 * 60);

/// What went wrong talking to etcd.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Connect(String),
    #[error("HTTP {0}: {1}")]
    Http(u16, String),
    #[error("etcd: {0}")]
    Etcd(String),
    #[error("undecodable answer: {0}")]
    Decode(String),
    #[error("answer over {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("timed out")]
    Timeout,
    /// The watch's start revision was compacted away (etcd `compact_revision`).
    #[error("revision compacted (now at {0})")]
    Compacted(i64),
    #[error("watch ended")]
    Closed,
    #[error("TLS files: {0}")]
    Tls(String),
}

/// An etcd cluster, by its client URLs.
pub struct Client {
    endpoints: Vec<Endpoint>,
    tls: Option<TlsConnector>,
    /// The endpoint tried first: the last one that answered.
    current: usize,
}

/// A key and its value, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
}

/// One watch event: a value put, or (`value` `None`) the key deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub key: String,
    pub value: Option<Vec<u8>>,
    pub mod_revision: i64,
}

/// A watch message: the events of one or more revisions, up to `revision`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchMessage {
    pub revision: i64,
    pub events: Vec<Event>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Sender = http1::SendRequest<Full<Bytes>>;

impl Client {
    /// A client for the configured endpoints; the TLS files are read now (a CA is needed for
    /// any `https://` endpoint; a certificate and key, together, for client authentication).
    pub fn new(settings: &Settings) -> Result<Client, Error> {
        let endpoints = settings.endpoints.clone();
        if endpoints.is_empty() {
            return Err(Error::Connect("no endpoints".into()));
        }
        let tls = if endpoints.iter().any(|e| e.tls) {
            Some(TlsConnector::from(Arc::new(tls_config(settings)?)))
        } else {
            None
        };
        Ok(Client {
            endpoints,
            tls,
            current: 0,
        })
    }

    /// The endpoint tried first.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoints[self.current % self.endpoints.len()]
    }

    /// A connection to the first endpoint that takes one, from the current one on.
    async fn connect(&mut self) -> Result<Sender, Error> {
        let mut last = Error::Connect("no endpoints".into());
        for _ in 0..self.endpoints.len() {
            let ep = self.endpoint().clone();
            match self.connect_to(&ep).await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    last = Error::Connect(format!("{ep}: {e}"));
                    self.current = (self.current + 1) % self.endpoints.len();
                }
            }
        }
        Err(last)
    }

    async fn connect_to(&self, ep: &Endpoint) -> Result<Sender, Error> {
        let tcp = timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((ep.host.as_str(), ep.port)),
        )
        .await
        .map_err(|_| Error::Timeout)?
        .map_err(|e| Error::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE)
            .with_interval(KEEPALIVE);
        let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        let io: Box<dyn Io> = match (&self.tls, ep.tls) {
            (Some(tls), true) => {
                let name = ServerName::try_from(ep.host.clone())
                    .map_err(|e| Error::Connect(format!("server name {}: {e}", ep.host)))?;
                let stream = timeout(CONNECT_TIMEOUT, tls.connect(name, tcp))
                    .await
                    .map_err(|_| Error::Timeout)?
                    .map_err(|e| Error::Connect(format!("TLS: {e}")))?;
                Box::new(stream)
            }
            _ => Box::new(tcp),
        };
        let (sender, conn) = timeout(CONNECT_TIMEOUT, http1::handshake(TokioIo::new(io)))
            .await
            .map_err(|_| Error::Timeout)?
            .map_err(|e| Error::Connect(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Every key in `[start, end)` at one revision (the newest with 0), read in pages over
    /// one connection: the keys and that revision. On failure the next endpoint is tried
    /// next time.
    pub async fn range(
        &mut self,
        start: &str,
        end: &str,
        revision: i64,
    ) -> Result<(Vec<Kv>, i64), Error> {
        let mut sender = self.connect().await?;
        let result = range_pages(&mut sender, &self.endpoint().clone(), start, end, revision).await;
        if result.is_err() {
            self.current = (self.current + 1) % self.endpoints.len();
        }
        result
    }

    /// Starts a watch of `[start, end)` from `revision`: returns once etcd says it is
    /// created.
    pub async fn watch(&mut self, start: &str, end: &str, revision: i64) -> Result<Watch, Error> {
        let mut sender = self.connect().await?;
        let ep = self.endpoint().clone();
        let body = serde_json::json!({"create_request": {
            "key": B64.encode(start),
            "range_end": B64.encode(end),
            "start_revision": revision.to_string(),
            "progress_notify": true,
        }});
        let started = async {
            let response = send(&mut sender, &ep, "/v3/watch", body.to_string()).await?;
            let mut w = Watch {
                body: response,
                buf: BytesMut::new(),
                _sender: sender,
            };
            // The first message says the watch is created, or why not.
            let first = w.message().await?;
            match first {
                WatchResult {
                    created: true,
                    canceled: false,
                    ..
                } => Ok(w),
                other => Err(other.error()),
            }
        };
        let result = timeout(REQUEST_TIMEOUT, started)
            .await
            .unwrap_or(Err(Error::Timeout));
        if result.is_err() {
            self.current = (self.current + 1) % self.endpoints.len();
        }
        result
    }
}

/// The rustls configuration for `https://` endpoints: the CA's certificates as roots, and the
/// client certificate and key when both are given.
fn tls_config(files: &Settings) -> Result<rustls::ClientConfig, Error> {
    let err = |what: &str, path: &Path, e: &dyn fmt::Display| {
        Error::Tls(format!("{what} {}: {e}", path.display()))
    };
    // rustls deprecates `ring` for lacking post-quantum key exchange; its alternative,
    // aws-lc, needs cmake to build, and etcd 3.4 (Go 1.19's TLS) offers no such group.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let ca = (files.ca_file.as_deref())
        .ok_or_else(|| Error::Tls("an https:// endpoint needs ca_file".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| err("CA", ca, &e))?;
    for cert in certs {
        let cert = cert.map_err(|e| err("CA", ca, &e))?;
        roots.add(cert).map_err(|e| err("CA", ca, &e))?;
    }
    if roots.is_empty() {
        return Err(err("CA", ca, &"no certificate"));
    }
    let builder = builder.with_root_certificates(roots);
    match (files.cert_file.as_deref(), files.key_file.as_deref()) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| err("certificate", cert, &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err("certificate", cert, &e))?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err("key", key, &e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| err("certificate and key", cert, &e))
        }
        _ => Err(Error::Tls("cert_file and key_file go together".into())),
    }
}

async fn range_pages(
    sender: &mut Sender,
    ep: &Endpoint,
    start: &str,
    end: &str,
    mut revision: i64,
) -> Result<(Vec<Kv>, i64), Error> {
    let mut out = Vec::new();
    let mut from = start.as_bytes().to_vec();
    loop {
        let body = serde_json::json!({
            "key": B64.encode(&from),
            "range_end": B64.encode(end),
            "limit": PAGE.to_string(),
            "revision": revision.to_string(),
        });
        let page = async {
            let response = send(sender, ep, "/v3/kv/range", body.to_string()).await?;
            let bytes = read_all(response).await?;
            decode_range(&bytes)
        };
        let page = timeout(REQUEST_TIMEOUT, page)
            .await
            .map_err(|_| Error::Timeout)??;
        // A range's header carries the store's revision when it was answered, not the one
        // read at: the snapshot's is the first page's, or the one asked for.
        if revision == 0 {
            revision = page.revision;
        }
        let more = page.more;
        let Some(last) = page.kvs.last() else {
            return Ok((out, revision));
        };
        // The next page starts just after the last key: the key with a zero byte added.
        from = last.key.as_bytes().to_vec();
        from.push(0);
        out.extend(page.kvs);
        if !more {
            return Ok((out, revision));
        }
    }
}

/// One POST with a JSON body; an answer other than 200 is an error with its text.
async fn send(
    sender: &mut Sender,
    ep: &Endpoint,
    path: &str,
    body: String,
) -> Result<hyper::Response<Incoming>, Error> {
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, ep.authority())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Error::Connect(e.to_string()))?;
    // One request at a time on the connection: wait until the previous answer is read, or
    // hyper cancels this one.
    sender
        .ready()
        .await
        .map_err(|e| Error::Connect(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| Error::Connect(e.to_string()))?;
    let status = response.status().as_u16();
    if status != 200 {
        let text = read_all(response).await.unwrap_or_default();
        let message = serde_json::from_slice::<GatewayError>(&text)
            .map(|e| e.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&text[..text.len().min(200)]).into());
        return Err(Error::Http(status, message));
    }
    Ok(response)
}

/// A whole answer, up to `MAX_MESSAGE` bytes.
async fn read_all(response: hyper::Response<Incoming>) -> Result<Bytes, Error> {
    let mut body = response.into_body();
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Connect(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_MESSAGE {
                return Err(Error::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// A running watch: one JSON message a line.
pub struct Watch {
    body: hyper::Response<Incoming>,
    buf: BytesMut,
    /// Keeps the connection's request side open.
    _sender: Sender,
}

impl Watch {
    /// The next message with events (progress notifications are skipped). An error ends the
    /// watch: `Compacted` when etcd cancelled it for a compacted revision.
    pub async fn next(&mut self) -> Result<WatchMessage, Error> {
        loop {
            let m = timeout(WATCH_SILENCE, self.message())
                .await
                .map_err(|_| Error::Timeout)??;
            if m.canceled {
                return Err(m.error());
            }
            if m.events.is_empty() {
                continue;
            }
            return Ok(WatchMessage {
                revision: m.header.revision,
                events: m.events.into_iter().map(Event::from).collect(),
            });
        }
    }

    /// The next line of the stream, decoded.
    async fn message(&mut self) -> Result<WatchResult, Error> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(end + 1);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return decode_watch(&line);
            }
            if self.buf.len() > MAX_MESSAGE {
                return Err(Error::TooLarge);
            }
            let Some(frame) = self.body.body_mut().frame().await else {
                // The stream ended: a last message without its newline, or nothing.
                if self.buf.iter().all(u8::is_ascii_whitespace) {
                    return Err(Error::Closed);
                }
                let line = std::mem::take(&mut self.buf);
                return decode_watch(&line);
            };
            let frame = frame.map_err(|e| Error::Connect(e.to_string()))?;
            if let Ok(mut data) = frame.into_data() {
                while data.has_remaining() {
                    let chunk = data.chunk();
                    self.buf.extend_from_slice(chunk);
                    let n = chunk.len();
                    data.advance(n);
                }
            }
        }
    }
}

/// The gateway's JSON for an error answer.
#[derive(Debug, Deserialize)]
struct GatewayError {
    #[serde(default)]
    message: String,
}

#[derive(Debug, Default, Deserialize)]
struct Header {
    #[serde(default, deserialize_with = "int64")]
    revision: i64,
}

#[derive(Debug, Deserialize)]
struct RangeResponse {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    kvs: Vec<KeyValue>,
    #[serde(default)]
    more: bool,
}

#[derive(Debug, Deserialize)]
struct KeyValue {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default, deserialize_with = "int64")]
    mod_revision: i64,
}

#[derive(Debug, Deserialize)]
struct WatchLine {
    result: Option<WatchResult>,
    error: Option<GatewayError>,
}

#[derive(Debug, Default, Deserialize)]
struct WatchResult {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    canceled: bool,
    #[serde(default, deserialize_with = "int64")]
    compact_revision: i64,
    #[serde(default)]
    cancel_reason: String,
    #[serde(default)]
    events: Vec<RawEvent>,
}

impl WatchResult {
    /// Why a watch that is not (or no longer) running stopped.
    fn error(&self) -> Error {
        if self.compact_revision > 0 {
            Error::Compacted(self.compact_revision)
        } else if self.canceled {
            Error::Etcd(format!("watch cancelled: {}", self.cancel_reason))
        } else {
            Error::Etcd("watch not created".into())
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawEvent {
    /// `PUT` (proto3's default, left out of the JSON) or `DELETE`.
    #[serde(default, rename = "type")]
    kind: String,
    kv: DecodedKv,
}

/// A key-value with its key and value already out of base64.
#[derive(Debug)]
struct DecodedKv {
    key: String,
    value: Vec<u8>,
    mod_revision: i64,
}

impl<'de> Deserialize<'de> for DecodedKv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = KeyValue::deserialize(d)?;
        let key = B64.decode(&raw.key).map_err(serde::de::Error::custom)?;
        let value = B64.decode(&raw.value).map_err(serde::de::Error::custom)?;
        Ok(DecodedKv {
            // Calico's keys are text; a key that is not stays unmatched by any prefix.
            key: String::from_utf8_lossy(&key).into_owned(),
            value,
            mod_revision: raw.mod_revision,
        })
    }
}

impl From<RawEvent> for Event {
    fn from(e: RawEvent) -> Event {
        Event {
            key: e.kv.key,
            value: (e.kind != "DELETE").then_some(e.kv.value),
            mod_revision: e.kv.mod_revision,
        }
    }
}

/// A decoded range page.
struct Page {
    kvs: Vec<Kv>,
    revision: i64,
    more: bool,
}

fn decode_range(bytes: &[u8]) -> Result<Page, Error> {
    let r: RangeResponse =
        serde_json::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    let kvs = (r.kvs.into_iter())
        .map(|kv| {
            let key = B64
                .decode(&kv.key)
                .map_err(|e| Error::Decode(e.to_string()))?;
            let value = B64
                .decode(&kv.value)
                .map_err(|e| Error::Decode(e.to_string()))?;
            Ok(Kv {
                key: String::from_utf8_lossy(&key).into_owned(),
                value,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Page {
        kvs,
        revision: r.header.revision,
        more: r.more,
    })
}

fn decode_watch(line: &[u8]) -> Result<WatchResult, Error> {
    let l: WatchLine = serde_json::from_slice(line).map_err(|e| Error::Decode(e.to_string()))?;
    match (l.result, l.error) {
        (Some(r), _) => Ok(r),
        (None, Some(e)) => Err(Error::Etcd(e.message)),
        (None, None) => Err(Error::Decode("neither result nor error".into())),
    }
}

/// An int64 as proto3's JSON writes it (a string), or as a plain number.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Text(String),
        Number(i64),
    }
    match Int::deserialize(d)? {
        Int::Number(n) => Ok(n),
        Int::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// The end of the range of keys starting with `prefix` (etcd's `WithPrefix`): the prefix
/// with its last byte incremented.
pub fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    "\0".to_string()
}

#[cfg(test)]
mod tests;
