//! The Prometheus endpoint: `GET /metrics` answered in the text exposition format (0.0.4)
//! with per-peer session state and counters, RIB and FIB sizes, and convergence — what
//! Calico users run a bird_exporter sidecar for today.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::session::State;

use super::commands::{Context, Convergence, version};

/// A scrape: the daemon answers with the rendered text.
pub type Request = oneshot::Sender<String>;

/// Longest request head read; a scrape's is a few hundred bytes.
const MAX_HEAD: usize = 8192;

/// Serves scrapes forever, one task each.
pub async fn run(listener: TcpListener, daemon: mpsc::Sender<Request>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, daemon.clone()));
            }
            Err(e) => warn!("metrics accept: {e}"),
        }
    }
}

async fn serve(mut stream: TcpStream, daemon: mpsc::Sender<Request>) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    if !tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or(false)
    {
        return;
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|b| *b == b' ');
    let (method, path) = (words.next(), words.next());
    let (status, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => {
            let (tx, rx) = oneshot::channel();
            if daemon.send(tx).await.is_err() {
                return;
            }
            match rx.await {
                Ok(text) => ("200 OK", text),
                Err(_) => ("503 Service Unavailable", "shutting down\n".to_string()),
            }
        }
        (Some(b"GET"), _) => ("404 Not Found", "try /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", String::new()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
}

/// A metric family: its HELP and TYPE lines, then samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{name}{labels} {value}");
    }
}

/// Label values escaped as the exposition format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders every metric from the daemon's state.
pub fn render(ctx: &Context) -> String {
    let mut out = String::with_capacity(4096);
    let peers: Vec<(usize, String, &crate::session::Status)> = ctx
        .peers
        .iter()
        .enumerate()
        .filter_map(|(id, p)| p.as_ref().map(|p| (id, p)))
        .map(|(id, p)| {
            let labels = format!(
                "{{peer=\"{}\",address=\"{}\",asn=\"{}\"}}",
                escape(&p.name),
                p.address,
                p.asn
            );
            (id, labels, p)
        })
        .collect();
    let prefixes = ctx.rib.table.len();
    let paths: usize = ctx.rib.table.values().map(|e| e.paths().len()).sum();

    Family::new(&mut out, "wren_info", "gauge", "Version and router ID.").sample(
        "wren_info",
        &format!(
            "{{version=\"{}\",router_id=\"{}\"}}",
            version(),
            ctx.router_id
        ),
        1,
    );
    let c = Convergence::of(ctx);
    Family::new(
        &mut out,
        "wren_converged",
        "gauge",
        "1 when every enabled peer sent End-of-RIB and the kernel holds what the RIB wants.",
    )
    .sample("wren_converged", "", u8::from(c.converged()));
    Family::new(
        &mut out,
        "wren_peers_end_of_rib",
        "gauge",
        "Enabled peers whose End-of-RIB arrived for every family.",
    )
    .sample("wren_peers_end_of_rib", "", c.end_of_rib);
    Family::new(&mut out, "wren_peers", "gauge", "Enabled peers.").sample(
        "wren_peers",
        "",
        c.peers,
    );

    let now = SystemTime::now();
    type Getter = fn(&crate::session::Status) -> u64;
    let per_peer: [(&str, &str, &str, Getter); 8] = [
        (
            "wren_peer_state",
            "gauge",
            "BGP FSM state (RFC 4271 §8.2.2): 1 Idle, 2 Connect, 3 Active, 4 OpenSent, 5 OpenConfirm, 6 Established.",
            |p| state_number(p.state),
        ),
        (
            "wren_peer_up",
            "gauge",
            "1 when the session is Established.",
            |p| u64::from(p.state == State::Established),
        ),
        (
            "wren_peer_messages_received_total",
            "counter",
            "BGP messages received.",
            |p| p.messages_in,
        ),
        (
            "wren_peer_messages_sent_total",
            "counter",
            "BGP messages sent.",
            |p| p.messages_out,
        ),
        (
            "wren_peer_updates_received_total",
            "counter",
            "UPDATE messages received.",
            |p| p.updates_in,
        ),
        (
            "wren_peer_updates_sent_total",
            "counter",
            "UPDATE messages sent.",
            |p| p.updates_out,
        ),
        (
            "wren_peer_prefixes_received_total",
            "counter",
            "Prefixes announced by the peer, repeats included.",
            |p| p.prefixes_in,
        ),
        ("wren_peer_enabled", "gauge", "0 after `disable`.", |p| {
            u64::from(p.enabled)
        }),
    ];
    for (name, kind, help, get) in per_peer {
        let mut f = Family::new(&mut out, name, kind, help);
        for (_, labels, p) in &peers {
            f.sample(name, labels, get(p));
        }
    }
    let mut f = Family::new(
        &mut out,
        "wren_peer_uptime_seconds",
        "gauge",
        "Seconds in the current state.",
    );
    for (_, labels, p) in &peers {
        let secs = now.duration_since(p.since).unwrap_or_default().as_secs();
        f.sample("wren_peer_uptime_seconds", labels, secs);
    }
    let mut f = Family::new(
        &mut out,
        "wren_peer_prefixes_accepted",
        "gauge",
        "Paths from the peer held in the RIB (its Adj-RIB-In after import rules).",
    );
    for (id, labels, _) in &peers {
        f.sample("wren_peer_prefixes_accepted", labels, ctx.rib.received(*id));
    }
    let mut f = Family::new(
        &mut out,
        "wren_peer_prefixes_advertised",
        "gauge",
        "Prefixes advertised to the peer.",
    );
    for (id, labels, _) in &peers {
        f.sample(
            "wren_peer_prefixes_advertised",
            labels,
            ctx.rib.advertised(*id),
        );
    }

    Family::new(
        &mut out,
        "wren_rib_prefixes",
        "gauge",
        "Prefixes in the RIB.",
    )
    .sample("wren_rib_prefixes", "", prefixes);
    Family::new(&mut out, "wren_rib_paths", "gauge", "Paths in the RIB.").sample(
        "wren_rib_paths",
        "",
        paths,
    );
    Family::new(
        &mut out,
        "wren_update_groups",
        "gauge",
        "Update groups (peers sharing one outbound policy).",
    )
    .sample("wren_update_groups", "", ctx.rib.group_count());
    if let Some(fib) = &ctx.fib {
        let s = &fib.stats;
        let kernel: [(&str, &str, &str, u64); 5] = [
            (
                "wren_fib_routes",
                "gauge",
                "Routes wren holds in the kernel table.",
                s.installed as u64,
            ),
            (
                "wren_fib_requests_total",
                "counter",
                "Netlink route requests sent.",
                s.requests,
            ),
            (
                "wren_fib_errors_total",
                "counter",
                "Route requests the kernel refused.",
                s.errors,
            ),
            (
                "wren_fib_refused_routes",
                "gauge",
                "Wanted routes the kernel refuses now (retried on link and address changes).",
                s.refused.len() as u64,
            ),
            (
                "wren_fib_repaired_total",
                "counter",
                "Routes of ours deleted by someone else and put back.",
                s.repaired,
            ),
        ];
        for (name, kind, help, v) in kernel {
            Family::new(&mut out, name, kind, help).sample(name, "", v);
        }
        Family::new(
            &mut out,
            "wren_fib_in_sync",
            "gauge",
            "1 when the kernel holds what the RIB wants.",
        )
        .sample("wren_fib_in_sync", "", u8::from(fib.in_sync));
    }
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
