//! calico-node's and calicoctl's readings of a BIRD control socket, written again from
//! their rules (contract §4.2, §5; projectcalico/calico node/pkg/health/health.go and
//! node/pkg/health/bird/bird.go, calicoctl/commands/node/status.go,
//! node/pkg/status/populators/bird_status.go), so a test can give wren's socket and BIRD's
//! the same questions and compare the verdicts; and a Calico node's speaker under test in a
//! [`Lab`]: wrend, or BIRD 1.6.8 with the same session, side by side.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::lab::{ESTABLISH, Fam, Lab, WREN_ASN, WREN_NET4, WREN_V4};
use super::peers::bird16_dir;
use super::proc::{ProcId, cli, wait_until};
use super::wrend::{Wren, WrenConf};

/// calico-node's read deadline for each line (`birdTimeOut`).
const LINE_DEADLINE: Duration = Duration::from_secs(2);

/// calico-node's `-threshold-time` default.
pub const THRESHOLD: Duration = Duration::from_secs(30);

/// The BGP peer rows Calico counts: `(Global|Node|Mesh)_<ip with _>`.
fn peer_type(name: &str) -> Option<(&'static str, &str)> {
    let (kind, ip) = name.split_once('_')?;
    let t = match kind {
        "Global" => "global",
        "Mesh" => "node-to-node mesh",
        "Node" => "node specific",
        _ => return None,
    };
    (!ip.is_empty()).then_some((t, ip))
}

/// A peer row as `bgpPeer.unmarshalBIRD` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpPeer {
    pub ip: String,
    pub kind: String,
    pub state: String,
    pub since: String,
    pub bgp_state: String,
    pub info: String,
}

/// One row, or `None` when Calico skips it: fewer than 6 fields, not `BGP`, or a name that
/// is not a Calico peer's.
fn unmarshal(line: &str, sep: &str) -> Option<BgpPeer> {
    let c: Vec<&str> = line.split_whitespace().collect();
    if c.len() < 6 || c[1] != "BGP" {
        return None;
    }
    let (kind, ip) = peer_type(c[0])?;
    Some(BgpPeer {
        ip: ip.replace('_', sep),
        kind: kind.to_string(),
        state: c[3].to_string(),
        since: c[4].to_string(),
        bgp_state: c[5].to_string(),
        info: c[6..].join(" "),
    })
}

/// A connection as calico-node opens one: the command written at once (the hello is read
/// with the reply), each line read within [`LINE_DEADLINE`].
fn ask(socket: &Path, cmd: &str) -> Result<impl Iterator<Item = Result<String, String>>, String> {
    let mut s = UnixStream::connect(socket)
        .map_err(|e| format!("error querying BIRD: unable to connect to BIRD socket: {e}"))?;
    s.set_read_timeout(Some(LINE_DEADLINE))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("{cmd}\n").as_bytes())
        .map_err(|e| format!("unable to write to BIRD socket: {e}"))?;
    Ok(BufReader::new(s)
        .lines()
        .map(|l| l.map_err(|e| format!("read: {e}"))))
}

/// `GetPeers`: `show protocols`, rows of Calico's peers; any other line is an error.
pub fn get_peers(socket: &Path, fam: Fam) -> Result<Vec<BgpPeer>, String> {
    let sep = match fam {
        Fam::V4 => ".",
        Fam::V6 => ":",
    };
    let mut peers = Vec::new();
    for line in ask(socket, "show protocols")? {
        let line = line?;
        if line.starts_with("0000") {
            return Ok(peers);
        } else if line.starts_with("0001") {
        } else if let Some(h) = line.strip_prefix("2002") {
            let f: Vec<&str> = h.get(1..).unwrap_or("").split_whitespace().collect();
            if f != ["name", "proto", "table", "state", "since", "info"] {
                return Err("unknown BIRD table output format".into());
            }
        } else if let Some(r) = line.strip_prefix("1002") {
            peers.extend(unmarshal(r.get(1..).unwrap_or(""), sep));
        } else if let Some(r) = line.strip_prefix(' ') {
            peers.extend(unmarshal(r, sep));
        } else {
            return Err(format!("unexpected output line from BIRD: '{line}'"));
        }
    }
    // The scanner ends without error at EOF.
    Ok(peers)
}

/// `GRInProgress`: `show status` has a `0024` line.
pub fn gr_in_progress(socket: &Path) -> Result<bool, String> {
    for line in ask(socket, "show status")? {
        let line = line?;
        if line.starts_with("0013") {
            return Ok(false);
        } else if line.starts_with("0024") {
            return Ok(true);
        } else if ["0001", "1000", "1011", " "]
            .iter()
            .any(|p| line.starts_with(p))
        {
        } else {
            return Err(format!("unexpected output line from BIRD: '{line}'"));
        }
    }
    Ok(false)
}

/// `checkBIRDReady`: `Ok` is ready; `Err` carries calico-node's reason. `nodename` is
/// `/var/lib/calico/nodename`, whose mtime is calico-node's start.
pub fn bird_ready(
    socket: &Path,
    fam: Fam,
    nodename: &Path,
    threshold: Duration,
) -> Result<(), String> {
    let mtime = std::fs::metadata(nodename)
        .and_then(|m| m.modified())
        .map_err(|e| format!("failed to stat() nodename file: {e}"))?;
    let peers = get_peers(socket, fam)?;
    let down: Vec<&str> = peers
        .iter()
        .filter(|p| p.bgp_state != "Established")
        .map(|p| p.ip.as_str())
        .collect();
    let established = peers.len() - down.len();
    let young = SystemTime::now()
        .duration_since(mtime)
        .is_ok_and(|age| age < threshold)
        || SystemTime::now() < mtime;
    if peers.is_empty() {
        Ok(())
    } else if young {
        if !down.is_empty() {
            return Err(format!("BGP not established with {}", down.join(",")));
        }
        if gr_in_progress(socket)? {
            return Err("graceful restart in progress".into());
        }
        Ok(())
    } else if established > 0 {
        Ok(())
    } else {
        Err(format!("BGP not established with {}", down.join(",")))
    }
}

/// `-bird-live`'s socket half: `birdcl -s SOCKET show status` exits 0 and its output
/// starts with `BIRD`.
pub fn bird_live(birdcl: &Path, socket: &Path) -> Result<(), String> {
    let s = socket.display().to_string();
    let out = cli(None, birdcl, &["-s", s.as_str(), "show", "status"])?;
    if out.starts_with("BIRD") {
        Ok(())
    } else {
        Err(format!("bad response from bird: {out}"))
    }
}

/// What the CalicoNodeStatus reporter reads from `show status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub ready: bool,
    pub version: String,
    pub router_id: String,
    pub last_boot: String,
    pub last_reconfig: String,
}

/// `scanBIRDStatus`: stops at `0013`, or (with a warning) at a line of another kind.
pub fn reporter_status(socket: &Path) -> Result<Status, String> {
    let mut st = Status::default();
    for line in ask(socket, "show status")? {
        let line = line?;
        let text = if line.starts_with("0013") {
            break;
        } else if ["0001", "1000", "1011"].iter().any(|p| line.starts_with(p)) {
            line.get(5..).unwrap_or("").to_string()
        } else if let Some(t) = line.strip_prefix(' ') {
            t.to_string()
        } else {
            break;
        };
        if text.contains("BIRD") && text.contains("ready") {
            st.ready = true;
        } else if text.starts_with("BIRD v") {
            st.version = text["BIRD ".len()..].to_string();
        } else if let Some(v) = text.strip_prefix("Router ID is ") {
            st.router_id = v.to_string();
        } else if let Some(v) = text.strip_prefix("Last reboot on ") {
            st.last_boot = v.to_string();
        } else if let Some(v) = text.strip_prefix("Last reconfiguration on ") {
            st.last_reconfig = v.to_string();
        }
    }
    Ok(st)
}

// ------------------------------------------------------------------ the node under test

/// The BGP speaker of the Calico node under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaker {
    Wren,
    Bird16,
}

/// A Calico node's speaker in the lab's wrend namespace, peering with 198.51.100.2 as the
/// mesh peer `Mesh_198_51_100_2`, hold time 240 (BIRD's default, as Calico leaves it).
pub struct Node {
    pub speaker: Speaker,
    pub ctl: PathBuf,
    pub proc: ProcId,
    wren: Option<Wren>,
    config: PathBuf,
}

/// The peer's protocol name on the node.
pub const MESH_PEER: &str = "Mesh_198_51_100_2";

impl Node {
    pub fn start(lab: &Lab, speaker: Speaker) -> Node {
        match speaker {
            Speaker::Wren => {
                let mut conf = WrenConf::new(Fam::V4, WREN_ASN);
                conf.hold_time = 240;
                conf.one_family = true;
                let w = lab.start_wren(conf);
                Node {
                    speaker,
                    ctl: w.ctl.clone(),
                    proc: w.proc,
                    config: w.config.clone(),
                    wren: Some(w),
                }
            }
            Speaker::Bird16 => {
                let config = lab.write("node16.conf", &node16_conf());
                let mut n = Node {
                    speaker,
                    ctl: lab.dir.join("node16.ctl"),
                    proc: 0,
                    wren: None,
                    config,
                };
                n.run(lab, false);
                n
            }
        }
    }

    fn run(&mut self, lab: &Lab, restarting: bool) {
        if let Some(w) = &mut self.wren {
            lab.restart_wren(w, restarting);
            self.proc = w.proc;
            return;
        }
        let (conf, ctl) = (
            self.config.display().to_string(),
            self.ctl.display().to_string(),
        );
        let mut args = vec!["-f", "-c", conf.as_str(), "-s", ctl.as_str()];
        if restarting {
            args.push("-R");
        }
        self.proc = lab.spawn("node16", &lab.ns_wren, &bird16_dir().join("bird"), &args);
        let ctl = self.ctl.clone();
        let r = wait_until("BIRD's control socket answers", ESTABLISH, || {
            reporter_status(&ctl).and_then(|s| {
                if s.ready {
                    Ok(())
                } else {
                    Err("no hello".into())
                }
            })
        });
        lab.must(r);
    }

    /// SIGKILL, as a pod restart gives it, then a start with `-R` as runit's service runs it.
    pub fn kill_and_restart(&mut self, lab: &Lab) {
        lab.kill(self.proc);
        self.run(lab, true);
    }

    pub fn stop(&self, lab: &Lab) {
        lab.kill(self.proc);
    }

    /// One command on the socket, the reply's lines as they came (hello first).
    pub fn raw(&self, cmd: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for line in ask(&self.ctl, cmd)? {
            let line = line?;
            let last = line.len() >= 5
                && line.as_bytes()[4] == b' '
                && line[..4].bytes().all(|b| b.is_ascii_digit())
                && !line.starts_with("0001");
            out.push(line);
            if last {
                return Ok(out);
            }
        }
        Err(format!("`{cmd}`: the reply ended early: {out:?}"))
    }
}

/// BIRD 1.6.8 as a Calico node toward the same peer: Calico's static, kernel, device and
/// direct protocols in `bird.cfg`'s order, and its BGP template's settings.
fn node16_conf() -> String {
    format!(
        "router id {WREN_V4};\n\
         protocol static {{ route {WREN_NET4} blackhole; }}\n\
         protocol kernel {{ learn; persist; scan time 2; import all; export all; \
         graceful restart; merge paths on; }}\n\
         protocol device {{ scan time 2; }}\n\
         protocol direct {{ interface -\"cali*\", \"*\"; }}\n\
         protocol bgp {MESH_PEER} {{\n  description \"Connection to BGP peer\";\n  \
         local {WREN_V4} as {WREN_ASN};\n  neighbor 198.51.100.2 as {WREN_ASN};\n  \
         source address {WREN_V4};\n  gateway recursive;\n  add paths on;\n  \
         graceful restart;\n  connect delay time 1;\n  connect retry time 3;\n  \
         error wait time 1,5;\n  import all;\n  export where source = RTS_STATIC;\n}}\n"
    )
}
