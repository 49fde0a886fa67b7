//! The test bench: two network namespaces joined by a veth, daemons started in them and
//! tracked by pid, polling with deadlines, and a guard that cleans up even when a test panics.
//!
//! Each test gets a [`Lab`]: namespaces `wi-<pid>-<id>-a` (wrend, 198.51.100.1/24 and
//! 2001:db8::1/64 on `wr0`) and `wi-<pid>-<id>-b` (the peer, .2 and ::2 on `pe0`), and a work
//! directory `/tmp/wren-interop/<id>.<pid>/` with every config and log (kept after the test,
//! removed by the next run once the process `<pid>` is gone). `<pid>` is the test process's,
//! so concurrent `cargo test` runs (two checkouts) do not collide. Every daemon runs as `ip netns exec NS PROGRAM ...` in a process group
//! of its own, so signals (SIGSTOP, SIGKILL) reach all of its processes and nothing else.
//! Dropping the lab stops exactly those processes and deletes the namespaces.

use std::fmt::Write as _;
use std::fs;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub use crate::common::{ProcId, cli, holds_for, system_bin, wait_until};
use crate::common::{
    Procs, clear_stale_dirs, clear_stale_namespace, del_netns, del_netns_if_empty, ip, netns_names,
    pid_gone, require_binaries, run_ok,
};

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
    crate::common::require_root(
        "the interop tests need root (network namespaces, veth, TCP MD5, BGP on port 179): \
         run `sudo cargo test --test interop`, after `sudo bash tests/peers/install.sh`",
    );
}

/// One test's namespaces, directory and processes.
pub struct Lab {
    /// wrend's namespace ("a") and the peer's ("b").
    pub ns_wren: String,
    pub ns_peer: String,
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
        require_root();
        let mut need = vec![system_bin("ip"), system_bin("kill")];
        need.extend_from_slice(binaries);
        require_binaries(&need);
        let base = std::env::var_os("WREN_INTEROP_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp/wren-interop"));
        // The test process's pid keeps concurrent runs (two checkouts, two users) apart.
        let run = std::process::id();
        clear_stale_dirs(&base, id);
        clear_stale_namespaces(id);
        let dir = base.join(format!("{id}.{run}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        // Daemons that drop privileges (FRR) must reach their files.
        for d in [&base, &dir] {
            let _ = fs::set_permissions(d, fs::Permissions::from_mode(0o755));
        }
        let lab = Lab {
            ns_wren: format!("wi-{run}-{id}-a"),
            ns_peer: format!("wi-{run}-{id}-b"),
            procs: Procs::new(id, dir),
        };
        lab.log(&format!("work directory {}", lab.dir.display()));
        for ns in [&lab.ns_wren, &lab.ns_peer] {
            clear_stale_namespace(ns);
            ip(&["netns", "add", ns]);
            let sysctl = [
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.all.forwarding=0",
            ];
            for s in sysctl {
                run_ok(
                    Command::new(system_bin("ip"))
                        .args(["netns", "exec", ns])
                        .args(["sysctl", "-qw", s]),
                );
            }
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let (a, b) = (&lab.ns_wren, &lab.ns_peer);
        for cmd in [
            format!("link add wr0 netns {a} type veth peer name pe0 netns {b}"),
            format!("-n {a} addr add 198.51.100.1/24 dev wr0"),
            format!("-n {b} addr add 198.51.100.2/24 dev pe0"),
            format!("-n {a} addr add 2001:db8::1/64 dev wr0 nodad"),
            format!("-n {b} addr add 2001:db8::2/64 dev pe0 nodad"),
            format!("-n {a} link set wr0 up"),
            format!("-n {b} link set pe0 up"),
        ] {
            ip(&cmd.split_whitespace().collect::<Vec<_>>());
        }
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let namespaces = [self.ns_wren.clone(), self.ns_peer.clone()];
        self.procs.stop_all(&namespaces);
        for ns in &namespaces {
            del_netns(ns);
        }
    }
}

/// Removes the empty namespaces `wi-<pid>-<id>-a|b` that runs of test `id` that are gone
/// left behind.
fn clear_stale_namespaces(id: &str) {
    for name in netns_names() {
        let Some(rest) = name.strip_prefix("wi-") else {
            continue;
        };
        let Some((pid, test)) = rest.split_once('-') else {
            continue;
        };
        let ours = test
            .strip_suffix("-a")
            .or_else(|| test.strip_suffix("-b"))
            .is_some_and(|t| t == id);
        if ours && pid_gone(pid) {
            del_netns_if_empty(&name);
        }
    }
}

// ------------------------------------------------------------------ wrend

/// How wrend is configured toward its one peer.
#[derive(Clone, Debug)]
pub struct WrenConf {
    pub fam: Fam,
    pub peer_asn: u32,
    pub passive: bool,
    pub password: Option<String>,
    pub hold_time: u16,
    pub graceful_restart: bool,
    /// wrend exports the peer's routes (their /24 is a Calico pool), and an iBGP peer is its
    /// route-reflector client.
    pub reflect: bool,
}

impl WrenConf {
    pub fn new(fam: Fam, peer_asn: u32) -> WrenConf {
        WrenConf {
            fam,
            peer_asn,
            passive: false,
            password: None,
            hold_time: 9,
            graceful_restart: true,
            reflect: false,
        }
    }

    /// The protocol name wrend shows for the peer (Calico's mesh naming).
    pub fn peer_name(&self) -> String {
        let flat: String = self
            .fam
            .peer()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("Mesh_{flat}")
    }

    pub fn toml(&self) -> String {
        let mut peer = format!(
            "[[peer]]\nname = \"{}\"\naddress = \"{}\"\nasn = {}\nsource_address = \"{}\"\n\
             passive = {}\ngraceful_restart = {}\n",
            self.peer_name(),
            self.fam.peer(),
            self.peer_asn,
            self.fam.wren(),
            self.passive,
            self.graceful_restart,
        );
        if let Some(pw) = &self.password {
            let _ = writeln!(peer, "password = \"{pw}\"");
        }
        let mut reflect = String::new();
        if self.reflect {
            let _ = writeln!(peer, "rr_client = {}", self.peer_asn == WREN_ASN);
            let pool = match self.fam {
                Fam::V4 => "203.0.113.0/24",
                Fam::V6 => "2001:db8:1::/64",
            };
            reflect = format!("cluster_id = \"{WREN_V4}\"\n[[pool]]\ncidr = \"{pool}\"\n\n");
        }
        format!(
            "router_id = \"{WREN_V4}\"\nasn = {WREN_ASN}\n\
             originate = [\"{WREN_NET4}\", \"{WREN_NET6}\"]\n{reflect}\n\
             [listen]\naddresses = [\"::\"]\nport = 179\n\n\
             [defaults]\nhold_time = {}\nconnect_delay = 1\nconnect_retry = 3\n\
             error_wait = [1, 5]\nrestart_time = 120\n\n{peer}",
            self.hold_time
        )
    }
}

/// A running (or killed) wrend.
pub struct Wren {
    pub conf: WrenConf,
    pub config: PathBuf,
    pub ctl: PathBuf,
    pub proc: ProcId,
    pub name: String,
}

/// One row of wrend's `show protocols`.
#[derive(Debug, Clone)]
pub struct ProtoRow {
    /// `up` or `start`.
    pub state: String,
    /// The BGP state word (`Established`, `Active`, ...) and any error after it.
    pub info: String,
    pub raw: String,
}

impl ProtoRow {
    pub fn established(&self) -> bool {
        self.state == "up" && self.info.starts_with("Established")
    }
}

/// One route row of wrend's `show route`.
#[derive(Debug, Clone)]
pub struct WrenRoute {
    pub via: String,
    pub proto: String,
    pub stale: bool,
    pub raw: String,
}

pub fn wren_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wrend"))
}

/// BIRD 2's client, which speaks to wrend's control socket too.
pub fn birdc_bin() -> PathBuf {
    system_bin("birdc")
}

impl Lab {
    /// Writes wrend's config and starts it; returns once its control socket answers.
    pub fn start_wren(&self, conf: WrenConf) -> Wren {
        let config = self.write("wren.toml", &conf.toml());
        let mut w = Wren {
            name: conf.peer_name(),
            conf,
            config,
            ctl: self.dir.join("wren.ctl"),
            proc: 0,
        };
        self.run_wren(&mut w, false);
        w
    }

    /// Starts wrend again (after it was killed), with `-R` when `restarting`.
    pub fn restart_wren(&self, w: &mut Wren, restarting: bool) {
        assert!(!self.alive(w.proc), "wrend is still running");
        self.run_wren(w, restarting);
    }

    fn run_wren(&self, w: &mut Wren, restarting: bool) {
        let config = w.config.display().to_string();
        let ctl = w.ctl.display().to_string();
        let mut args = vec!["-c", config.as_str(), "-s", ctl.as_str()];
        if restarting {
            args.push("-R");
        }
        w.proc = self.spawn("wrend", &self.ns_wren, &wren_bin(), &args);
        let p = w.proc;
        let r = wait_until("wrend's control socket answers", ESTABLISH, || {
            if !self.alive(p) {
                return Ok(Err("wrend exited".to_string()));
            }
            self.wren_cmd(w, "show status").map(Ok)
        });
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) | Err(e) => self.fail(&format!("starting wrend: {e}")),
        }
    }

    /// Runs a command on wrend's control socket with `birdc`.
    pub fn wren_cmd(&self, w: &Wren, cmd: &str) -> Result<String, String> {
        let ctl = w.ctl.display().to_string();
        let mut args = vec!["-s", ctl.as_str()];
        args.extend(cmd.split_whitespace());
        let out = cli(None, &birdc_bin(), &args)?;
        if out.contains("Unable to connect") {
            return Err(out.trim().to_string());
        }
        Ok(out)
    }

    /// wrend's `show protocols` row for its peer.
    pub fn wren_row(&self, w: &Wren) -> Result<ProtoRow, String> {
        let out = self.wren_cmd(w, "show protocols")?;
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(w.name.as_str()))
            .ok_or_else(|| format!("no row for {} in `show protocols`: {out:?}", w.name))?;
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 6 || t[1] != "BGP" {
            return Err(format!("malformed `show protocols` row {line:?}"));
        }
        Ok(ProtoRow {
            state: t[3].to_string(),
            info: t[5..].join(" "),
            raw: line.to_string(),
        })
    }

    /// Ok when wrend shows the session Established (state `up`).
    pub fn wren_established(&self, w: &Wren) -> Result<(), String> {
        let row = self.wren_row(w)?;
        if row.established() {
            Ok(())
        } else {
            Err(format!("wrend: {:?}", row.raw))
        }
    }

    /// The row of wrend's `show route` for `prefix`, if any.
    pub fn wren_route(&self, w: &Wren, prefix: &str) -> Result<Option<WrenRoute>, String> {
        let out = self.wren_cmd(w, "show route")?;
        for line in out.lines() {
            let t: Vec<&str> = line.split_whitespace().collect();
            if t.first() != Some(&prefix) || t.get(1) != Some(&"via") {
                continue;
            }
            let via = t.get(2).unwrap_or(&"").to_string();
            // BIRD's `via NH on IF [proto time]`: the interface is optional.
            let at = if t.get(3) == Some(&"on") { 5 } else { 3 };
            let proto = t.get(at).unwrap_or(&"").trim_start_matches('[').to_string();
            let stale = t.iter().any(|x| x.starts_with('(') && x.contains("s/"));
            return Ok(Some(WrenRoute {
                via,
                proto,
                stale,
                raw: line.to_string(),
            }));
        }
        Ok(None)
    }

    /// Ok when wrend has the peer's prefix from the peer, via the peer's address, fresh
    /// (`Some(false)`), stale (`Some(true)`) or either (`None`).
    pub fn wren_has_peer_route(
        &self,
        w: &Wren,
        prefix: &str,
        stale: Option<bool>,
    ) -> Result<WrenRoute, String> {
        let r = self
            .wren_route(w, prefix)?
            .ok_or_else(|| format!("{prefix} not in wrend's `show route`"))?;
        let want_via = w.conf.fam.peer();
        if r.via != want_via || r.proto != w.name {
            return Err(format!(
                "wrend's row for {prefix} is {:?}, expected via {want_via} from {}",
                r.raw, w.name
            ));
        }
        match stale {
            Some(s) if s != r.stale => Err(format!(
                "wrend's row for {prefix} is {:?}: expected {}",
                r.raw,
                if s { "stale (100s/0)" } else { "not stale" }
            )),
            _ => Ok(r),
        }
    }

    /// Ok when wrend's `show route` has no route for `prefix`.
    pub fn wren_lacks_route(&self, w: &Wren, prefix: &str) -> Result<(), String> {
        match self.wren_route(w, prefix)? {
            None => Ok(()),
            Some(r) => Err(format!("wrend still has {:?}", r.raw)),
        }
    }
}
