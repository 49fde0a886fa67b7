//! The Prometheus endpoint: `GET /metrics` answered in the text exposition format (0.0.4)
//! with per-peer session state and counters, RIB and FIB sizes, and convergence — what
//! Calico users run a bird_exporter sidecar for today. HTTP is hyper's; the format is
//! prometheus-client's encoder; the figures come from the daemon over a channel.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::accept::Backoff;
use crate::session::State;

use super::commands::{Context, Convergence, version};

/// A scrape: the daemon answers with the rendered text.
pub type Request = oneshot::Sender<String>;

/// Connections served at once; more are closed as soon as they are accepted.
const MAX_CONNECTIONS: usize = 16;
/// Time a client has to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a whole exchange may take, connection to last byte of the answer.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves scrapes forever, one task per connection, one request per connection.
pub async fn run(listener: TcpListener, daemon: mpsc::Sender<Request>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Backoff::new("metrics endpoint");
    loop {
        let (stream, _) = backoff.accept(|| listener.accept()).await;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // dropped: closed
        };
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(
                    TokioIo::new(stream),
                    service_fn(|req| answer(req, daemon.clone())),
                );
            let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, conn).await;
            drop(slot);
        });
    }
}

async fn answer(
    req: hyper::Request<Incoming>,
    daemon: mpsc::Sender<Request>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let (tx, rx) = oneshot::channel();
            let text = match daemon.send(tx).await {
                Ok(()) => rx.await.ok(),
                Err(_) => None,
            };
            match text {
                Some(text) => (StatusCode::OK, text),
                None => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into()),
            }
        }
        (&Method::GET, _) => (StatusCode::NOT_FOUND, "try /metrics\n".into()),
        _ => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(prometheus_text::CONTENT_TYPE),
    );
    Ok(r)
}

/// Label names and values of one sample.
type Labels = Vec<(&'static str, String)>;

/// One metric family as the exposition format lists it: HELP, TYPE, then samples. A
/// counter's name ends in `_total`, which the encoder adds itself.
#[derive(Debug)]
struct Family {
    name: &'static str,
    kind: MetricType,
    help: &'static str,
    samples: Vec<(Labels, u64)>,
}

impl Family {
    fn new(name: &'static str, kind: MetricType, help: &'static str) -> Family {
        Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        }
    }

    fn one(name: &'static str, kind: MetricType, help: &'static str, v: u64) -> Family {
        Family {
            samples: vec![(Vec::new(), v)],
            ..Family::new(name, kind, help)
        }
    }
}

/// Every family of one scrape, in order, handed to the encoder.
#[derive(Debug)]
struct Scrape(Vec<Family>);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let name = match f.kind {
                MetricType::Counter => f.name.strip_suffix("_total").unwrap_or(f.name),
                _ => f.name,
            };
            let mut m = encoder.encode_descriptor(name, f.help, None, f.kind)?;
            for (labels, v) in &f.samples {
                let mut sample = m.encode_family(labels)?;
                match f.kind {
                    MetricType::Counter => sample.encode_counter::<NoLabelSet, _, u64>(v, None)?,
                    _ => sample.encode_gauge(v)?,
                }
            }
        }
        Ok(())
    }
}

/// Renders every metric from the daemon's state.
pub fn render(ctx: &Context) -> String {
    use MetricType::{Counter, Gauge};
    let peers: Vec<(usize, &crate::session::Status)> = ctx
        .peers
        .iter()
        .enumerate()
        .filter_map(|(id, p)| p.as_ref().map(|p| (id, p)))
        .collect();
    let labels = |p: &crate::session::Status| -> Labels {
        vec![
            ("peer", p.name.clone()),
            ("address", p.address.to_string()),
            ("asn", p.asn.to_string()),
        ]
    };
    let per_peer = |name, kind, help, get: &dyn Fn(usize, &crate::session::Status) -> u64| {
        let mut f = Family::new(name, kind, help);
        f.samples = peers
            .iter()
            .map(|(id, p)| (labels(p), get(*id, p)))
            .collect();
        f
    };
    let c = Convergence::of(ctx);
    let now = SystemTime::now();
    let mut info = Family::new("wren_info", Gauge, "Version and router ID.");
    info.samples.push((
        vec![
            ("version", version().to_string()),
            ("router_id", ctx.router_id.to_string()),
        ],
        1,
    ));
    let mut families = vec![
        info,
        Family::one(
            "wren_converged",
            Gauge,
            "1 when every enabled peer sent End-of-RIB and the kernel holds what the RIB wants.",
            u64::from(c.converged()),
        ),
        Family::one(
            "wren_peers_end_of_rib",
            Gauge,
            "Enabled peers whose End-of-RIB arrived for every family.",
            c.end_of_rib as u64,
        ),
        Family::one("wren_peers", Gauge, "Enabled peers.", c.peers as u64),
        per_peer(
            "wren_peer_state",
            Gauge,
            "BGP FSM state (RFC 4271 §8.2.2): 1 Idle, 2 Connect, 3 Active, 4 OpenSent, 5 OpenConfirm, 6 Established.",
            &|_, p| state_number(p.state),
        ),
        per_peer(
            "wren_peer_up",
            Gauge,
            "1 when the session is Established.",
            &|_, p| u64::from(p.state == State::Established),
        ),
        per_peer(
            "wren_peer_messages_received_total",
            Counter,
            "BGP messages received.",
            &|_, p| p.messages_in,
        ),
        per_peer(
            "wren_peer_messages_sent_total",
            Counter,
            "BGP messages sent.",
            &|_, p| p.messages_out,
        ),
        per_peer(
            "wren_peer_updates_received_total",
            Counter,
            "UPDATE messages received.",
            &|_, p| p.updates_in,
        ),
        per_peer(
            "wren_peer_updates_sent_total",
            Counter,
            "UPDATE messages sent.",
            &|_, p| p.updates_out,
        ),
        per_peer(
            "wren_peer_prefixes_received_total",
            Counter,
            "Prefixes announced by the peer, repeats included.",
            &|_, p| p.prefixes_in,
        ),
        per_peer("wren_peer_enabled", Gauge, "0 after `disable`.", &|_, p| {
            u64::from(p.enabled)
        }),
        per_peer(
            "wren_peer_uptime_seconds",
            Gauge,
            "Seconds in the current state.",
            &|_, p| now.duration_since(p.since).unwrap_or_default().as_secs(),
        ),
        per_peer(
            "wren_peer_prefixes_accepted",
            Gauge,
            "Paths from the peer held in the RIB (its Adj-RIB-In after import rules).",
            &|id, _| ctx.rib.received(id) as u64,
        ),
        per_peer(
            "wren_peer_prefixes_advertised",
            Gauge,
            "Prefixes advertised to the peer.",
            &|id, _| ctx.rib.advertised(id) as u64,
        ),
        Family::one(
            "wren_rib_prefixes",
            Gauge,
            "Prefixes in the RIB.",
            ctx.rib.table.len() as u64,
        ),
        Family::one(
            "wren_rib_paths",
            Gauge,
            "Paths in the RIB.",
            ctx.rib.table.values().map(|e| e.paths().len() as u64).sum(),
        ),
        Family::one(
            "wren_update_groups",
            Gauge,
            "Update groups (peers sharing one outbound policy).",
            ctx.rib.group_count() as u64,
        ),
    ];
    if let Some(d) = ctx.datastore {
        let seconds = |t: SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        families.extend([
            Family::one(
                "wren_datastore_connected",
                Gauge,
                "1 while the datastore (etcd) answers.",
                u64::from(d.connected),
            ),
            Family::one(
                "wren_datastore_from_saved",
                Gauge,
                "1 while running from the state saved before, etcd not read since start.",
                u64::from(d.from_saved),
            ),
            Family::one(
                "wren_datastore_revision",
                Gauge,
                "etcd revision of the datastore state applied.",
                u64::try_from(d.applied_revision).unwrap_or(0),
            ),
            Family::one(
                "wren_datastore_last_apply_timestamp_seconds",
                Gauge,
                "When a datastore change was last applied (Unix time).",
                d.applied_at.map_or(0, seconds),
            ),
        ]);
    }
    if let Some(fib) = &ctx.fib {
        let s = &fib.stats;
        families.extend([
            Family::one(
                "wren_fib_routes",
                Gauge,
                "Routes wren holds in the kernel table.",
                s.installed as u64,
            ),
            Family::one(
                "wren_fib_requests_total",
                Counter,
                "Netlink route requests sent.",
                s.requests,
            ),
            Family::one(
                "wren_fib_errors_total",
                Counter,
                "Route requests the kernel refused.",
                s.errors,
            ),
            Family::one(
                "wren_fib_refused_routes",
                Gauge,
                "Wanted routes the kernel refuses now (retried on link and address changes).",
                s.refused.len() as u64,
            ),
            Family::one(
                "wren_fib_repaired_total",
                Counter,
                "Routes of ours deleted by someone else and put back.",
                s.repaired,
            ),
            Family::one(
                "wren_fib_in_sync",
                Gauge,
                "1 when the kernel holds what the RIB wants.",
                u64::from(fib.in_sync),
            ),
        ]);
    }
    families.extend(bfd_families(ctx.bfd));
    encode(families)
}

/// Each BFD session's state and flaps (RFC 5880), by peer address and hop mode.
fn bfd_families(sessions: &[crate::bfd::Info]) -> [Family; 3] {
    use MetricType::{Counter, Gauge};
    let per_session = |name, kind, help, get: &dyn Fn(&crate::bfd::Info) -> u64| {
        let mut f = Family::new(name, kind, help);
        f.samples = (sessions.iter())
            .map(|s| {
                let hops = if s.multihop { "multi" } else { "single" };
                let labels = vec![("address", s.peer.to_string()), ("hop", hops.to_string())];
                (labels, get(s))
            })
            .collect();
        f
    };
    [
        per_session(
            "wren_bfd_session_state",
            Gauge,
            "BFD state (RFC 5880 §4.1): 0 AdminDown, 1 Down, 2 Init, 3 Up.",
            &|s| s.state as u64,
        ),
        per_session(
            "wren_bfd_session_up",
            Gauge,
            "1 when the BFD session is Up.",
            &|s| u64::from(s.state == crate::bfd::State::Up),
        ),
        per_session(
            "wren_bfd_session_flaps_total",
            Counter,
            "Times the BFD session left Up.",
            &|s| s.flaps,
        ),
    ]
}

/// The families in the text exposition format (0.0.4).
fn encode(families: Vec<Family>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(families)));
    let mut out = String::with_capacity(4096);
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &registry);
    out
}

fn state_number(s: State) -> u64 {
    match s {
        State::Idle => 1,
        State::Connect => 2,
        State::Active => 3,
        State::OpenSent => 4,
        State::OpenConfirm => 5,
        State::Established => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text is what the hand-written encoder produced: HELP and TYPE under the full name
    /// (a counter's `_total` included), labels in order, values escaped.
    #[test]
    fn exposition_format_unchanged() {
        let mut peer = Family::new(
            "wren_peer_updates_received_total",
            MetricType::Counter,
            "UPDATE messages received.",
        );
        peer.samples.push((
            vec![("peer", "a\"b\\c".into()), ("address", "192.0.2.1".into())],
            7,
        ));
        let out = encode(vec![
            Family::one("wren_peers", MetricType::Gauge, "Enabled peers.", 2),
            peer,
        ]);
        assert_eq!(
            out,
            "# HELP wren_peers Enabled peers.\n# TYPE wren_peers gauge\nwren_peers 2\n\
             # HELP wren_peer_updates_received_total UPDATE messages received.\n\
             # TYPE wren_peer_updates_received_total counter\n\
             wren_peer_updates_received_total{peer=\"a\\\"b\\\\c\",address=\"192.0.2.1\"} 7\n"
        );
    }

    #[test]
    fn bfd_state_and_flaps() {
        let s = crate::bfd::Info {
            peer: "198.51.100.2".parse().unwrap(),
            multihop: false,
            interface: None,
            state: crate::bfd::State::Up,
            remote_state: crate::bfd::State::Up,
            diag: crate::bfd::Diag::NONE,
            since: SystemTime::now(),
            interval: std::time::Duration::from_millis(100),
            timeout: std::time::Duration::from_millis(300),
            local_disc: 1,
            remote_disc: 2,
            flaps: 4,
        };
        let out = encode(bfd_families(&[s]).into());
        let labels = "{address=\"198.51.100.2\",hop=\"single\"}";
        for line in [
            format!("wren_bfd_session_state{labels} 3"),
            format!("wren_bfd_session_up{labels} 1"),
            format!("wren_bfd_session_flaps_total{labels} 4"),
        ] {
            assert!(out.lines().any(|l| l == line), "{line} not in {out}");
        }
    }
}
