//! wrend under test: its config (a Calico node's, toward one peer), starting and restarting
//! it in a [`Lab`], and reading its control socket with `birdc` (sessions, routes); and
//! nodes on loopback ([`Nodes`]).

use std::fmt::Write as _;
use std::path::PathBuf;

use wren::demo::Node;

use super::lab::{ESTABLISH, Fam, Lab, WREN_ASN, WREN_NET4, WREN_NET6, WREN_V4};
use super::proc::{ProcId, cli, system_bin, wait_until};

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
    /// TOML written after the peer's table: more of its settings, then other tables.
    pub extra: String,
    /// The peer's `bfd` setting as TOML (`true`, `{ min_tx = 100, ... }`), if any.
    pub bfd: Option<String>,
    /// The peer is directly connected (`ttl = 1`, BIRD's `direct`): its BFD is single-hop.
    /// Otherwise an iBGP peer is multihop, as BIRD's and Calico's iBGP sessions are.
    pub direct: bool,
    /// Only the session's family, as `bird` (IPv4) or `bird6` serves it: its block alone is
    /// originated and the kernel side keeps to that family.
    pub one_family: bool,
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
            extra: String::new(),
            bfd: None,
            direct: false,
            one_family: false,
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
        // Calico's `bgp_template` describes every peer so (`show protocols all` shows it).
        let mut peer = format!(
            "[[peer]]\nname = \"{}\"\naddress = \"{}\"\nasn = {}\nsource_address = \"{}\"\n\
             passive = {}\ngraceful_restart = {}\ndescription = \"Connection to BGP peer\"\n",
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
        if let Some(bfd) = &self.bfd {
            let _ = writeln!(peer, "bfd = {bfd}");
        }
        if self.direct {
            peer.push_str("ttl = 1\n");
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
        let (originate, kernel) = match (self.one_family, self.fam) {
            (false, _) => (format!("\"{WREN_NET4}\", \"{WREN_NET6}\""), ""),
            (true, Fam::V4) => (
                format!("\"{WREN_NET4}\""),
                "[kernel]\nfamily = \"ipv4\"\n\n",
            ),
            (true, Fam::V6) => (
                format!("\"{WREN_NET6}\""),
                "[kernel]\nfamily = \"ipv6\"\n\n",
            ),
        };
        format!(
            "router_id = \"{WREN_V4}\"\nasn = {WREN_ASN}\n\
             originate = [{originate}]\n{reflect}\n{kernel}\
             [listen]\naddresses = [\"::\"]\nport = 179\n\n\
             [defaults]\nhold_time = {}\nconnect_delay = 1\nconnect_retry = 3\n\
             error_wait = [1, 5]\nrestart_time = 120\n\n{peer}{}",
            self.hold_time, self.extra
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

pub fn wrenc_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wrenc"))
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

    /// wrend's `show bfd sessions` row for its peer: (state, interval, timeout).
    pub fn wren_bfd(&self, w: &Wren) -> Result<(String, String, String), String> {
        let out = self.wren_cmd(w, "show bfd sessions")?;
        let peer = w.conf.fam.peer();
        let t: Vec<&str> = (out.lines())
            .find(|l| l.split_whitespace().next() == Some(peer))
            .ok_or_else(|| format!("no BFD session with {peer}: {out:?}"))?
            .split_whitespace()
            .collect();
        match t.as_slice() {
            [_, _, state, _, interval, timeout] => {
                Ok((state.to_string(), interval.to_string(), timeout.to_string()))
            }
            _ => Err(format!("malformed `show bfd sessions` row {t:?}")),
        }
    }

    /// wrend's `proto bird` kernel routes for `prefix`, as `ip route show` lists them.
    pub fn wren_kernel_routes(&self, prefix: &str) -> Result<String, String> {
        let args = ["route", "show", "proto", "bird", prefix];
        cli(Some(&self.ns_wren), &system_bin("ip"), &args)
    }

    /// Ok when wrend's kernel has `prefix` via its peer.
    pub fn wren_kernel_has_peer_route(&self, w: &Wren, prefix: &str) -> Result<(), String> {
        let out = self.wren_kernel_routes(prefix)?;
        match out.contains(&format!("{prefix} via {}", w.conf.fam.peer())) {
            true => Ok(()),
            false => Err(format!("{prefix} not in wrend's kernel: {out:?}")),
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

/// wrend nodes on loopback addresses and their work directory: the nodes are stopped and the
/// directory removed when this is dropped (the directory stays after a failed test: its logs).
pub struct Nodes {
    pub dir: PathBuf,
    pub nodes: Vec<Node>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.nodes.clear();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
