//! A lab of two network namespaces joined by a veth, daemons started in them and tracked by
//! pid, and a guard that cleans up even when a test panics.
//!
//! Each test gets a [`Lab`]: namespaces `wi-<pid>-<id>-a` (wrend, 198.51.100.1/24 and
//! 2001:db8::1/64 on `wr0`) and `wi-<pid>-<id>-b` (the peer, .2 and ::2 on `pe0`), and a work
//! directory `/tmp/wren-interop/<id>.<pid>/` with every config and log (kept after the test,
//! removed by the next run once the process `<pid>` is gone). `<pid>` is the test process's,
//! so concurrent `cargo test` runs (two checkouts) do not collide. Every daemon runs as `ip
//! netns exec NS PROGRAM ...` in a process group of its own, so signals (SIGSTOP, SIGKILL)
//! reach all of its processes and nothing else.
//! Dropping the lab stops exactly those processes and deletes the namespaces.

use std::ops::Deref;
use std::path::PathBuf;
use std::time::Duration;

use super::netns::{add_netns, del_netns, ip_lines, remove_stale_namespaces};
use super::proc::{Procs, require_binaries, system_bin, work_dir};

pub const WREN_V4: &str = "198.51.100.1";
pub const PEER_V4: &str = "198.51.100.2";
pub const WREN_V6: &str = "2001:db8::1";
pub const PEER_V6: &str = "2001:db8::2";
/// wrend's AS; the iBGP peers (BIRD, FRR) use it too.
pub const WREN_ASN: u32 = 64512;
/// What wrend originates (a Calico node's blocks) and what every peer originates.
pub const WREN_NET4: &str = "203.0.113.0/26";
pub const WREN_NET6: &str = "2001:db8:1::/122";
pub const PEER_NET4: &str = "203.0.113.64/26";
pub const PEER_NET6: &str = "2001:db8:1::40/122";

/// How long a session may take to come up (connect delays, retries, a daemon starting).
pub const ESTABLISH: Duration = Duration::from_secs(30);
/// How long routes may take to show up once the session is up.
pub const CONVERGE: Duration = Duration::from_secs(20);

/// The transport (and only address family) of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fam {
    V4,
    V6,
}

impl Fam {
    pub fn wren(self) -> &'static str {
        match self {
            Fam::V4 => WREN_V4,
            Fam::V6 => WREN_V6,
        }
    }
    pub fn peer(self) -> &'static str {
        match self {
            Fam::V4 => PEER_V4,
            Fam::V6 => PEER_V6,
        }
    }
    pub fn wren_net(self) -> &'static str {
        match self {
            Fam::V4 => WREN_NET4,
            Fam::V6 => WREN_NET6,
        }
    }
    pub fn peer_net(self) -> &'static str {
        match self {
            Fam::V4 => PEER_NET4,
            Fam::V6 => PEER_NET6,
        }
    }
    /// The address family as the peers' CLIs name it.
    pub fn afi(self) -> &'static str {
        match self {
            Fam::V4 => "ipv4",
            Fam::V6 => "ipv6",
        }
    }
}

/// Fails the test unless it runs as root (namespaces, veths, TCP MD5, daemons on port 179).
pub fn require_root() {
    super::proc::require_root(
        "the interop tests need root (network namespaces, veth, TCP MD5, BGP on port 179): \
         run `sudo cargo test --test interop`, after `sudo bash tests/peers/install.sh`",
    );
}

/// One test's namespaces, directory and processes.
pub struct Lab {
    /// wrend's namespace ("a") and the peer's ("b").
    pub ns_wren: String,
    pub ns_peer: String,
    /// The router between them in a [`Lab::routed`] lab.
    pub ns_router: Option<String>,
    /// The daemons started, the work directory, the progress log.
    procs: Procs,
}

impl Deref for Lab {
    type Target = Procs;
    fn deref(&self) -> &Procs {
        &self.procs
    }
}

impl Lab {
    /// Creates the namespaces and the veth between them. `id` must be unique per test.
    pub fn new(id: &str, binaries: &[PathBuf]) -> Lab {
        let lab = Lab::namespaces(id, binaries, false);
        let (a, b) = (&lab.ns_wren, &lab.ns_peer);
        ip_lines(&[
            format!("link add wr0 netns {a} type veth peer name pe0 netns {b}"),
            format!("-n {a} addr add 198.51.100.1/24 dev wr0"),
            format!("-n {b} addr add 198.51.100.2/24 dev pe0"),
            format!("-n {a} addr add 2001:db8::1/64 dev wr0 nodad"),
            format!("-n {b} addr add 2001:db8::2/64 dev pe0 nodad"),
            format!("-n {a} link set wr0 up"),
            format!("-n {b} link set pe0 up"),
        ]);
        lab
    }

    /// The same two ends (IPv4 only) one hop apart: a router namespace `wi-<pid>-<id>-r`
    /// between them, each end on a point-to-point link to it (198.51.100.254 toward wrend,
    /// .253 toward the peer) with its routes through it, so a packet from one end reaches
    /// the other with its TTL one lower.
    pub fn routed(id: &str, binaries: &[PathBuf]) -> Lab {
        let lab = Lab::namespaces(id, binaries, true);
        let (a, b) = (&lab.ns_wren, &lab.ns_peer);
        let r = lab.ns_router.as_deref().unwrap_or_default();
        ip_lines(&[
            format!("link add wr0 netns {a} type veth peer name ra0 netns {r}"),
            format!("link add pe0 netns {b} type veth peer name rb0 netns {r}"),
            format!("-n {a} addr add 198.51.100.1 peer 198.51.100.254/32 dev wr0"),
            format!("-n {r} addr add 198.51.100.254 peer 198.51.100.1/32 dev ra0"),
            format!("-n {r} addr add 198.51.100.253 peer 198.51.100.2/32 dev rb0"),
            format!("-n {b} addr add 198.51.100.2 peer 198.51.100.253/32 dev pe0"),
            format!("-n {a} link set wr0 up"),
            format!("-n {b} link set pe0 up"),
            format!("-n {r} link set ra0 up"),
            format!("-n {r} link set rb0 up"),
            format!("-n {a} route add default via 198.51.100.254"),
            format!("-n {b} route add default via 198.51.100.253"),
        ]);
        lab
    }

    /// The namespaces (and the router's, forwarding) and the work directory, not yet wired.
    fn namespaces(id: &str, binaries: &[PathBuf], routed: bool) -> Lab {
        require_root();
        let mut need = vec![system_bin("ip"), system_bin("kill")];
        need.extend_from_slice(binaries);
        require_binaries(&need);
        let base = std::env::var_os("WREN_INTEROP_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp/wren-interop"));
        // The test process's pid keeps concurrent runs (two checkouts, two users) apart.
        let run = std::process::id();
        remove_stale_namespaces("wi-", "interop");
        let dir = work_dir(&base, id);
        let lab = Lab {
            ns_wren: format!("wi-{run}-{id}-a"),
            ns_peer: format!("wi-{run}-{id}-b"),
            ns_router: routed.then(|| format!("wi-{run}-{id}-r")),
            procs: Procs::new(id, dir),
        };
        lab.log(&format!("work directory {}", lab.dir.display()));
        for ns in [&lab.ns_wren, &lab.ns_peer] {
            add_netns(
                ns,
                &[
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                    "net.ipv6.conf.all.forwarding=0",
                ],
            );
        }
        if let Some(r) = &lab.ns_router {
            add_netns(r, &["net.ipv4.ip_forward=1"]);
        }
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut namespaces = vec![self.ns_wren.clone(), self.ns_peer.clone()];
        namespaces.extend(self.ns_router.clone());
        self.procs.stop_all(&namespaces);
        for ns in &namespaces {
            del_netns(ns);
        }
    }
}
