//! The real BGP speakers wrend is tested against, each in the peer namespace of a [`Lab`]:
//! where its programs are, its config, how it starts and restarts, and how its own CLI shows
//! the session, its routes and its message counters.
//!
//! | kind | AS (session) | daemon(s) | CLI |
//! |---|---|---|---|
//! | BIRD 2.0 | 64512 (iBGP) | `bird` | `birdc` |
//! | BIRD 1.6 | 64512 (iBGP, Calico-style: add paths, next hop self, graceful restart) | `bird` (IPv4) / `bird6` (IPv6) from target/peers/bird16 | `birdc` / `birdc6` |
//! | GoBGP 3 | 64513 (eBGP) | `gobgpd`, routes added over gRPC | `gobgp` |
//! | FRR 8 | 64512 (iBGP) | `zebra` + `bgpd` as user frr | `vtysh` |
//! | OpenBGPD 7 | 64515 (eBGP) | `bgpd` (three processes) | `bgpctl` |

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::lab::{CONVERGE, ESTABLISH, Fam, Lab, PEER_NET4, PEER_NET6, PEER_V4, WREN_ASN};
use super::proc::{ProcId, cli, system_bin, wait_until};
use super::wrend::Wren;

/// Where `tests/peers/install.sh` unpacks BIRD 1.6 (`WREN_BIRD16_DIR` overrides).
pub fn bird16_dir() -> PathBuf {
    std::env::var_os("WREN_BIRD16_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/bird16/usr/sbin")
        })
}

/// Copies a folder of BIRD configuration (confd's files) for stock BIRD 1.6.8: each
/// `krt_tunnel = …;` assignment, which only Calico's fork knows, becomes a `print` (an empty
/// statement is not valid in 1.6).
pub fn copy_for_stock_bird(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_for_stock_bird(&p, &dest);
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let text = text
            .lines()
            .map(|l| match l.find("krt_tunnel = ") {
                Some(i) => format!("{}print \"krt_tunnel\";", &l[..i]),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dest, text).unwrap();
    }
}

pub fn frr_zebra() -> PathBuf {
    PathBuf::from("/usr/lib/frr/zebra")
}

pub fn frr_bgpd() -> PathBuf {
    PathBuf::from("/usr/lib/frr/bgpd")
}

pub fn frr_bfdd() -> PathBuf {
    PathBuf::from("/usr/lib/frr/bfdd")
}

/// Arguments for an FRR daemon (zebra or bgpd) with its own zserv socket, vty folder and pid
/// file under `dir` (owned by user frr: FRR refuses to run as root), logging to
/// `dir/<daemon>.out`, and no vty TCP port.
pub fn frr_args(daemon: &str, conf: &Path, dir: &Path) -> Vec<String> {
    chown_frr(dir);
    let d = dir.display();
    [
        "-u".to_string(),
        "frr".into(),
        "-g".into(),
        "frr".into(),
        "-f".into(),
        conf.display().to_string(),
        "-z".into(),
        format!("{d}/zserv.api"),
        "--vty_socket".into(),
        d.to_string(),
        "-i".into(),
        format!("{d}/{daemon}.pid"),
        "-P".into(),
        "0".into(),
        "--log".into(),
        format!("file:{d}/{daemon}.out"),
    ]
    .into()
}

fn chown_frr(dir: &Path) {
    let _ = Command::new(system_bin("chown"))
        .args(["-R", "frr:frr"])
        .arg(dir)
        .status();
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bird2,
    Bird16,
    Gobgp,
    Frr,
    Openbgpd,
}

impl Kind {
    pub fn asn(self) -> u32 {
        match self {
            Kind::Bird2 | Kind::Bird16 | Kind::Frr => WREN_ASN,
            Kind::Gobgp => 64513,
            Kind::Openbgpd => 64515,
        }
    }

    /// Every program the peer needs (the test fails naming the missing ones).
    pub fn binaries(self) -> Vec<PathBuf> {
        let mut v = vec![system_bin("birdc")]; // wrend's CLI
        match self {
            Kind::Bird2 => v.push(system_bin("bird")),
            Kind::Bird16 => {
                let d = bird16_dir();
                v.extend(["bird", "bird6", "birdc", "birdc6"].map(|b| d.join(b)));
            }
            Kind::Gobgp => v.extend([system_bin("gobgpd"), system_bin("gobgp")]),
            Kind::Frr => v.extend([frr_zebra(), frr_bgpd(), system_bin("vtysh")]),
            Kind::Openbgpd => v.extend([system_bin("bgpd"), system_bin("bgpctl")]),
        }
        v
    }
}

/// How the peer is configured.
#[derive(Clone, Debug)]
pub struct PeerOpts {
    pub fam: Fam,
    /// The peer waits for wrend to connect.
    pub passive: bool,
    pub password: Option<String>,
    pub graceful_restart: bool,
    pub hold_time: u16,
    /// In wrend's AS (GoBGP only; the others' AS is fixed).
    pub ibgp: bool,
    /// BIRD 1.6 with the parts of Calico's `bgp_template` that `show protocols all` shows
    /// (description, inline import and export filters).
    pub calico: bool,
    /// BFD on the session (BIRD 2's `protocol bfd`, FRR's bfdd).
    pub bfd: Option<PeerBfd>,
    /// BIRD 2's `protocol bfd` also has sessions of its own (`neighbor`) with these
    /// addresses, single-hop or multihop (`true`).
    pub bfd_neighbors: Vec<(&'static str, bool)>,
}

/// The peer's BFD session with wrend.
#[derive(Clone, Debug)]
pub struct PeerBfd {
    /// Min TX and min RX interval alike.
    pub interval_ms: u32,
    pub multiplier: u8,
    /// RFC 5883 (the BGP session becomes multihop too).
    pub multihop: bool,
    /// BIRD's authentication type (`keyed md5`, `meticulous keyed sha1`, ...) and password
    /// (key ID 1).
    pub auth: Option<(&'static str, String)>,
}

impl PeerOpts {
    pub fn new(fam: Fam) -> PeerOpts {
        PeerOpts {
            fam,
            passive: false,
            password: None,
            graceful_restart: true,
            hold_time: 9,
            ibgp: false,
            calico: false,
            bfd: None,
            bfd_neighbors: Vec::new(),
        }
    }
    fn keepalive(&self) -> u16 {
        (self.hold_time / 3).max(1)
    }
}

/// A route as the peer's CLI shows it.
#[derive(Debug, Clone)]
pub struct PeerRoute {
    pub next_hop: String,
    /// Kept from a session that went down (graceful restart).
    pub stale: bool,
    pub raw: String,
}

/// A running peer.
pub struct Peer {
    pub kind: Kind,
    pub opts: PeerOpts,
    /// The BGP daemon: stopping or killing it stops the session.
    pub main: ProcId,
    /// FRR's zebra.
    pub zebra: Option<ProcId>,
    /// FRR's bfdd.
    pub bfdd: Option<ProcId>,
    /// Control socket (BIRD, OpenBGPD) or vty directory (FRR).
    ctl: PathBuf,
    config: PathBuf,
}

impl Peer {
    /// Writes the config and starts the daemon(s) in the peer namespace; returns when its CLI
    /// answers and (GoBGP) its route has been added.
    pub fn start(lab: &Lab, kind: Kind, opts: PeerOpts) -> Peer {
        let (config, ctl) = match kind {
            Kind::Bird2 => (
                lab.write("bird.conf", &bird2_conf(lab, &opts)),
                lab.dir.join("bird.ctl"),
            ),
            Kind::Bird16 => (
                lab.write("bird16.conf", &bird16_conf(lab, &opts)),
                lab.dir.join("bird16.ctl"),
            ),
            Kind::Gobgp => (
                lab.write("gobgpd.toml", &gobgp_conf(&opts)),
                lab.dir.clone(),
            ),
            Kind::Frr => {
                let d = lab.dir.join("frr");
                lab.write("frr/zebra.conf", "hostname peer\n");
                (lab.write("frr/bgpd.conf", &frr_conf(lab, &opts)), d)
            }
            Kind::Openbgpd => {
                let c = lab.write("openbgpd.conf", &openbgpd_conf(lab, &opts));
                // bgpd refuses a config others can read
                let _ = std::fs::set_permissions(
                    &c,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                );
                (c, lab.dir.join("openbgpd.sock"))
            }
        };
        let mut p = Peer {
            kind,
            opts,
            main: 0,
            zebra: None,
            bfdd: None,
            ctl,
            config,
        };
        if kind == Kind::Frr {
            p.start_zebra(lab);
            if let Some(b) = &p.opts.bfd {
                p.start_bfdd(lab, b.clone());
            }
        }
        p.run(lab, false);
        p
    }

    fn start_zebra(&mut self, lab: &Lab) {
        let conf = self.ctl.join("zebra.conf");
        let zebra = lab.spawn(
            "zebra",
            &lab.ns_peer,
            &frr_zebra(),
            &frr_args("zebra", &conf, &self.ctl),
        );
        self.zebra = Some(zebra);
        let api = self.ctl.join("zserv.api");
        let r = wait_until("zebra's zserv socket", ESTABLISH, || {
            if api.exists() {
                Ok(())
            } else {
                Err(format!("{} missing", api.display()))
            }
        });
        lab.must(r);
    }

    /// FRR's bfdd beside zebra, its one peer wrend (its own control socket in the lab).
    fn start_bfdd(&mut self, lab: &Lab, b: PeerBfd) {
        let conf = lab.write(
            "frr/bfdd.conf",
            &format!(
                "bfd\n {}\n  receive-interval {}\n  \
                 transmit-interval {}\n  detect-multiplier {}\n  no shutdown\n !\n!\n",
                self.bfdd_peer(),
                b.interval_ms,
                b.interval_ms,
                b.multiplier
            ),
        );
        let mut args = frr_args("bfdd", &conf, &self.ctl);
        args.extend([
            "--bfdctl".into(),
            format!("{}/bfdd.sock", self.ctl.display()),
        ]);
        self.bfdd = Some(lab.spawn("bfdd", &lab.ns_peer, &frr_bfdd(), &args));
    }

    /// bfdd's `peer` line for wrend.
    fn bfdd_peer(&self) -> String {
        let fam = self.opts.fam;
        let multihop = self.opts.bfd.as_ref().is_some_and(|b| b.multihop);
        format!(
            "peer {}{} local-address {}",
            fam.wren(),
            if multihop { " multihop" } else { "" },
            fam.peer()
        )
    }

    /// FRR: `shutdown` on bfdd's peer wrend (the session goes AdminDown and tells wrend so,
    /// RFC 5880 §6.8.16), or `no shutdown` to bring it back.
    pub fn bfd_shutdown(&self, shut: bool) -> Result<String, String> {
        let peer = self.bfdd_peer();
        let what = if shut { "shutdown" } else { "no shutdown" };
        self.vtysh(&["configure terminal", "bfd", &peer, what])
    }

    /// The peer's view of its BFD session with wrend.
    pub fn bfd_text(&self) -> Result<String, String> {
        match self.kind {
            Kind::Frr => self.vtysh(&["show bfd peers"]),
            _ => self.birdc("show bfd sessions"),
        }
    }

    /// Ok when the peer shows its BFD session with wrend Up.
    pub fn bfd_up(&self) -> Result<(), String> {
        let s = self.bfd_text()?;
        let wren = self.opts.fam.wren();
        let up = match self.kind {
            Kind::Frr => s
                .split("peer ")
                .any(|b| b.starts_with(wren) && b.contains("Status: up")),
            _ => s.lines().any(|l| {
                let t: Vec<&str> = l.split_whitespace().collect();
                t.first() == Some(&wren) && t.get(2) == Some(&"Up")
            }),
        };
        match up {
            true => Ok(()),
            false => Err(format!("{:?}'s BFD session is not Up: {s}", self.kind)),
        }
    }

    /// Starts (or restarts, after a kill) the BGP daemon; `restarting` uses the daemon's
    /// graceful-restart start mode where it has one (BIRD `-R`, gobgpd `-r`).
    fn run(&mut self, lab: &Lab, restarting: bool) {
        let conf = self.config.display().to_string();
        let ctl = self.ctl.display().to_string();
        let ns = lab.ns_peer.clone();
        self.main = match self.kind {
            Kind::Bird2 => {
                let mut args = vec!["-f", "-c", &conf, "-s", &ctl];
                if restarting {
                    args.push("-R");
                }
                lab.spawn("bird", &ns, &system_bin("bird"), &args)
            }
            Kind::Bird16 => {
                let mut args = vec!["-f", "-c", &conf, "-s", &ctl];
                if restarting {
                    args.push("-R");
                }
                let (name, bin) = match self.opts.fam {
                    Fam::V4 => ("bird16", "bird"),
                    Fam::V6 => ("bird6", "bird6"),
                };
                lab.spawn(name, &ns, &bird16_dir().join(bin), &args)
            }
            Kind::Gobgp => {
                let mut args = vec![
                    "-f",
                    &conf,
                    "--api-hosts",
                    "127.0.0.1:50051",
                    "--pprof-disable",
                    "-p",
                ];
                if restarting {
                    args.push("-r");
                }
                lab.spawn("gobgpd", &ns, &system_bin("gobgpd"), &args)
            }
            Kind::Frr => lab.spawn(
                "bgpd",
                &ns,
                &frr_bgpd(),
                &frr_args("bgpd", &self.config, &self.ctl),
            ),
            Kind::Openbgpd => {
                // its privilege-separated children chroot to the _openbgpd user's home
                let _ = std::fs::create_dir_all("/run/openbgpd");
                lab.spawn("openbgpd", &ns, &system_bin("bgpd"), &["-d", "-f", &conf])
            }
        };
        let main = self.main;
        let r = wait_until("the peer's CLI answers", ESTABLISH, || {
            if !lab.alive(main) {
                return Ok(Err("the peer daemon exited".to_string()));
            }
            self.status_text(lab).map(Ok)
        });
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) | Err(e) => lab.fail(&format!("starting {:?}: {e}", self.kind)),
        }
        if self.kind == Kind::Gobgp {
            let fam = self.opts.fam;
            let (afi, net, nh) = (fam.afi(), fam.peer_net(), fam.peer());
            let r = self.gobgp(
                lab,
                &["global", "rib", "add", "-a", afi, net, "nexthop", nh],
            );
            lab.must(r.map(|_| ()));
        }
    }

    /// Starts the daemon again after [`Peer::kill`] (in graceful-restart mode when it has one).
    pub fn restart(&mut self, lab: &Lab) {
        assert!(!lab.alive(self.main), "the peer is still running");
        self.run(lab, true);
    }

    /// SIGKILL to the BGP daemon (its whole process group).
    pub fn kill(&self, lab: &Lab) {
        lab.kill(self.main);
    }

    /// SIGSTOP to the BGP daemon (and FRR's bfdd: the whole peer freezes).
    pub fn stop(&self, lab: &Lab) {
        lab.signal(self.main, "STOP");
        if let Some(b) = self.bfdd {
            lab.signal(b, "STOP");
        }
    }

    pub fn cont(&self, lab: &Lab) {
        if let Some(b) = self.bfdd {
            lab.signal(b, "CONT");
        }
        lab.signal(self.main, "CONT");
    }

    // -------------------------------------------------------------- CLIs

    fn birdc(&self, cmd: &str) -> Result<String, String> {
        let bin = match (self.kind, self.opts.fam) {
            (Kind::Bird16, Fam::V4) => bird16_dir().join("birdc"),
            (Kind::Bird16, Fam::V6) => bird16_dir().join("birdc6"),
            _ => system_bin("birdc"),
        };
        let ctl = self.ctl.display().to_string();
        let mut args = vec!["-s", ctl.as_str()];
        args.extend(cmd.split_whitespace());
        let out = cli(None, &bin, &args)?;
        if out.contains("Unable to connect") {
            return Err(out.trim().to_string());
        }
        Ok(out)
    }

    fn gobgp(&self, lab: &Lab, args: &[&str]) -> Result<String, String> {
        let mut a = vec!["-u", "127.0.0.1", "-p", "50051"];
        a.extend_from_slice(args);
        cli(Some(&lab.ns_peer), &system_bin("gobgp"), &a)
    }

    fn vtysh(&self, cmds: &[&str]) -> Result<String, String> {
        let d = self.ctl.display().to_string();
        let mut a = vec!["--vty_socket", d.as_str()];
        for c in cmds {
            a.push("-c");
            a.push(c);
        }
        cli(None, &system_bin("vtysh"), &a)
    }

    fn bgpctl(&self, args: &[&str]) -> Result<String, String> {
        let s = self.ctl.display().to_string();
        let mut a = vec!["-s", s.as_str()];
        a.extend_from_slice(args);
        cli(None, &system_bin("bgpctl"), &a)
    }

    /// BIRD 1.6's `birdc` (IPv4) against another control socket (wrend's).
    pub fn bird16_birdc(ctl: &std::path::Path, cmd: &str) -> Result<String, String> {
        let ctl = ctl.display().to_string();
        let mut args = vec!["-s", ctl.as_str()];
        args.extend(cmd.split_whitespace());
        cli(None, &bird16_dir().join("birdc"), &args)
    }

    /// The peer's own view of its session with wrend.
    pub fn status_text(&self, lab: &Lab) -> Result<String, String> {
        let wren = self.opts.fam.wren();
        match self.kind {
            Kind::Bird2 | Kind::Bird16 => self.birdc("show protocols all wren"),
            Kind::Gobgp => self.gobgp(lab, &["neighbor", wren]),
            Kind::Frr => self.vtysh(&[&format!("show bgp neighbors {wren}")]),
            Kind::Openbgpd => self.bgpctl(&["show", "neighbor", wren]),
        }
    }

    /// Ok when the peer's CLI shows the session with wrend Established.
    pub fn established(&self, lab: &Lab) -> Result<(), String> {
        let s = self.status_text(lab)?;
        let ok = match self.kind {
            Kind::Bird2 | Kind::Bird16 => s
                .lines()
                .any(|l| l.starts_with("wren ") && l.contains(" up ") && l.contains("Established")),
            Kind::Gobgp | Kind::Frr | Kind::Openbgpd => {
                s.to_ascii_lowercase().contains("bgp state = established")
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{:?} does not show the session Established: {}",
                self.kind,
                first_lines(&s, 6)
            ))
        }
    }

    /// The peer's route for `prefix` (learned from wrend), if it has one.
    pub fn route(&self, lab: &Lab, prefix: &str) -> Result<Option<PeerRoute>, String> {
        let afi = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        match self.kind {
            Kind::Bird2 | Kind::Bird16 => {
                // BIRD 2: "PREFIX unicast [wren 11:15:00] * (100) [i]", "\tvia NH on pe0",
                // then "\tBGP.next_hop: NH" among the attributes; BIRD 1.6: "PREFIX via NH
                // on pe0 [wren 11:15:00] * (100) [i]", then the attributes. Neither marks the
                // routes it keeps for a restarting neighbor in `show route` (2.0.12 and 1.6.8
                // print "(100)" all along), so stale means: the route is there while the
                // protocol says "Neighbor graceful restart active" (a "(100s)" mark would
                // count too).
                let out = self.birdc(&format!("show route {prefix} all"))?;
                let Some(block) = bird_route_block(&out, prefix) else {
                    return Ok(None);
                };
                if !block.contains("[wren ") {
                    return Ok(None);
                }
                let nh = block
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("BGP.next_hop:"))
                    .and_then(|s| s.split_whitespace().next())
                    .unwrap_or("")
                    .to_string();
                let first = block.lines().next().unwrap_or("");
                let marked = first.split_whitespace().any(|t| {
                    t.strip_prefix('(').is_some_and(|r| {
                        r.starts_with(|c: char| c.is_ascii_digit()) && r.contains('s')
                    })
                });
                let proto = self.birdc("show protocols all wren")?;
                Ok(Some(PeerRoute {
                    next_hop: nh,
                    stale: marked || proto.contains("Neighbor graceful restart active"),
                    raw: block,
                }))
            }
            Kind::Gobgp => {
                // "S*>203.0.113.0/26  198.51.100.1  64512  00:00:23  [{Origin: i}]"
                let out = self.gobgp(lab, &["global", "rib", "-a", afi])?;
                for line in out.lines() {
                    let Some(at) = line.find(prefix) else {
                        continue;
                    };
                    let rest: Vec<&str> = line[at..].split_whitespace().collect();
                    if rest.first() != Some(&prefix) {
                        continue;
                    }
                    return Ok(Some(PeerRoute {
                        next_hop: rest.get(1).unwrap_or(&"").to_string(),
                        stale: line[..at].contains('S'),
                        raw: line.to_string(),
                    }));
                }
                Ok(None)
            }
            Kind::Frr => {
                // "  Local, (stale)" / "    2001:db8::1 from 2001:db8::1 (198.51.100.1)"
                let out = self.vtysh(&[&format!("show bgp {afi} unicast {prefix}")])?;
                if !out.contains("BGP routing table entry for") {
                    return Ok(None);
                }
                let nh = out
                    .lines()
                    .find(|l| l.contains(" from "))
                    .and_then(|l| l.split_whitespace().next())
                    .unwrap_or("")
                    .to_string();
                Ok(Some(PeerRoute {
                    next_hop: nh,
                    stale: out.contains("(stale)"),
                    raw: out,
                }))
            }
            Kind::Openbgpd => {
                // "S*>     N 203.0.113.0/26       198.51.100.1      100     0 64512 i"
                let out = self.bgpctl(&["show", "rib"])?;
                for line in out.lines() {
                    let t: Vec<&str> = line.split_whitespace().collect();
                    let Some(i) = t.iter().position(|x| *x == prefix) else {
                        continue;
                    };
                    return Ok(Some(PeerRoute {
                        next_hop: t.get(i + 1).unwrap_or(&"").to_string(),
                        stale: t.first().is_some_and(|f| f.contains('S')),
                        raw: line.to_string(),
                    }));
                }
                Ok(None)
            }
        }
    }

    /// Ok when the peer has wrend's prefix for the session's family with next hop wrend's
    /// address; `stale` as for [`Lab::wren_has_peer_route`].
    pub fn has_wren_route(&self, lab: &Lab, stale: Option<bool>) -> Result<PeerRoute, String> {
        let prefix = self.opts.fam.wren_net();
        let want_nh = self.opts.fam.wren();
        let r = self
            .route(lab, prefix)?
            .ok_or_else(|| format!("{:?} has no route for {prefix}", self.kind))?;
        if r.next_hop != want_nh {
            return Err(format!(
                "{:?}'s route for {prefix} has next hop {:?}, expected {want_nh}: {}",
                self.kind, r.next_hop, r.raw
            ));
        }
        match stale {
            Some(s) if s != r.stale => Err(format!(
                "{:?}'s route for {prefix} is {}: {}",
                self.kind,
                if r.stale { "stale" } else { "not stale" },
                r.raw.trim()
            )),
            _ => Ok(r),
        }
    }

    /// The routes the peer holds from wrend (its Adj-RIB-In), as its CLI lists them (GoBGP
    /// only: the others show what they accepted, not what they were sent).
    pub fn adj_in(&self, lab: &Lab) -> Result<String, String> {
        let fam = self.opts.fam;
        match self.kind {
            Kind::Gobgp => self.gobgp(lab, &["neighbor", fam.wren(), "adj-in", "-a", fam.afi()]),
            k => Err(format!("no Adj-RIB-In listing for {k:?}")),
        }
    }

    /// How many UPDATE messages the peer has received on the session (BIRD: import
    /// updates received, which counts every announced route).
    pub fn updates_received(&self, lab: &Lab) -> Result<u64, String> {
        let s = self.status_text(lab)?;
        let find = |label: &str, col: usize| -> Result<u64, String> {
            s.lines()
                .find(|l| l.trim_start().starts_with(label))
                .and_then(|l| {
                    l.trim_start()[label.len()..]
                        .split_whitespace()
                        .nth(col)
                        .and_then(|x| x.parse().ok())
                })
                .ok_or_else(|| format!("no {label:?} counter in: {s}"))
        };
        match self.kind {
            // "Import updates:   received rejected filtered ignored accepted"
            Kind::Bird2 | Kind::Bird16 => find("Import updates:", 0),
            // "Updates:   sent rcvd"
            Kind::Gobgp | Kind::Frr => find("Updates:", 1),
            // Message statistics: "Updates   sent received" (the first "Updates" line)
            Kind::Openbgpd => find("Updates", 1),
        }
    }

    /// Makes the peer send wrend a ROUTE-REFRESH.
    pub fn request_refresh(&self) -> Result<(), String> {
        let wren = self.opts.fam.wren();
        let afi = self.opts.fam.afi();
        match self.kind {
            Kind::Bird2 | Kind::Bird16 => self.birdc("reload in wren").map(drop),
            Kind::Frr => self
                .vtysh(&[&format!("clear bgp {afi} unicast {wren} soft in")])
                .map(drop),
            Kind::Openbgpd => self.bgpctl(&["neighbor", wren, "refresh"]).map(drop),
            Kind::Gobgp => Err("gobgp cannot send a ROUTE-REFRESH from its CLI".into()),
        }
    }

    /// BIRD 2 only: drops and re-opens the session from the peer's side (`restart wren`).
    pub fn reset_session(&self) -> Result<(), String> {
        assert_eq!(self.kind, Kind::Bird2, "reset_session is for BIRD 2");
        self.birdc("restart wren").map(drop)
    }

    /// BIRD 2 only: whether wrend's last OPEN had the graceful restart Restart State bit
    /// (BIRD lists "Restart recovery" under the neighbor's Graceful restart capability).
    pub fn saw_restart_state(&self) -> Result<bool, String> {
        assert_eq!(self.kind, Kind::Bird2, "saw_restart_state is for BIRD 2");
        let s = self.birdc("show protocols all wren")?;
        let caps: String = s
            .lines()
            .skip_while(|l| !l.contains("Neighbor capabilities"))
            .take_while(|l| !l.contains("Session:"))
            .collect::<Vec<_>>()
            .join("\n");
        if caps.is_empty() {
            return Err(format!("no neighbor capabilities in: {s}"));
        }
        Ok(caps.contains("Restart recovery"))
    }

    /// The peer's log(s), for failure messages.
    pub fn describe(&self, lab: &Lab) -> String {
        let mut s = String::new();
        match self.status_text(lab) {
            Ok(t) => {
                let _ = write!(s, "{:?} session:\n{}", self.kind, first_lines(&t, 12));
            }
            Err(e) => {
                let _ = write!(s, "{:?} session: {e}", self.kind);
            }
        }
        s
    }
}

/// Waits until both sides show the session Established (wrend first, then the peer).
pub fn wait_established(lab: &Lab, w: &Wren, p: &Peer) {
    let r = wait_until("wrend shows the session Established", ESTABLISH, || {
        lab.wren_established(w)
    });
    if let Err(e) = r {
        lab.fail(&format!("{e}\n{}", p.describe(lab)));
    }
    let r = wait_until(
        "the peer's CLI shows the session Established",
        Duration::from_secs(10),
        || p.established(lab),
    );
    lab.must(r);
}

/// Waits until each side has the other's prefix, fresh, with the right next hop.
pub fn wait_routes(lab: &Lab, w: &Wren, p: &Peer) {
    let fam = p.opts.fam;
    let r = wait_until(
        &format!("wrend has {} from the peer", fam.peer_net()),
        CONVERGE,
        || lab.wren_has_peer_route(w, fam.peer_net(), Some(false)),
    );
    lab.must(r);
    let r = wait_until(
        &format!(
            "the peer has {} with next hop {}",
            fam.wren_net(),
            fam.wren()
        ),
        CONVERGE,
        || p.has_wren_route(lab, Some(false)),
    );
    if let Err(e) = r {
        let updates = p
            .updates_received(lab)
            .map_or_else(|e| e, |n| n.to_string());
        let wren = lab
            .wren_cmd(w, &format!("show protocols all {}", w.name))
            .unwrap_or_else(|e| e);
        let sockets = cli(Some(&lab.ns_wren), &system_bin("ss"), &["-tn"]).unwrap_or_else(|e| e);
        lab.fail(&format!(
            "{e}\n(the session is Established; UPDATEs {:?} counted from wrend: {updates})\n\
             wrend:\n{wren}\nwrend's TCP connections (ss -tn):\n{sockets}\n{}",
            p.kind,
            p.describe(lab)
        ));
    }
}

/// The block `show route PREFIX all` prints for the prefix (its line and the indented ones
/// after it), BIRD 1.6 or 2.
fn bird_route_block(out: &str, prefix: &str) -> Option<String> {
    let mut lines = out.lines().skip_while(|l| !l.starts_with(prefix));
    let first = lines.next()?;
    let mut block = first.to_string();
    for l in lines {
        if !l.starts_with(char::is_whitespace) {
            break;
        }
        block.push('\n');
        block.push_str(l);
    }
    Some(block)
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join("\n")
}

// ------------------------------------------------------------------ configs

fn bird2_conf(lab: &Lab, o: &PeerOpts) -> String {
    let fam = o.fam;
    let (channel, net) = match fam {
        Fam::V4 => ("ipv4", PEER_NET_V4_STATIC),
        Fam::V6 => ("ipv6", PEER_NET_V6_STATIC),
    };
    let multihop = o.bfd.as_ref().is_some_and(|b| b.multihop);
    let mut bgp = format!(
        "  local {} as {WREN_ASN};\n  neighbor {} as {WREN_ASN};\n  {};\n\
         hold time {}; keepalive time {};\n\
         connect delay time 1; connect retry time 3; error wait time 1, 5;\n\
         graceful restart {};\n",
        fam.peer(),
        fam.wren(),
        if multihop { "multihop" } else { "direct" },
        o.hold_time,
        o.keepalive(),
        if o.graceful_restart { "on" } else { "off" },
    );
    if o.passive {
        bgp.push_str("  passive on;\n");
    }
    if let Some(pw) = &o.password {
        let _ = writeln!(bgp, "  password \"{pw}\";");
    }
    let mut bfd = String::new();
    if let Some(b) = &o.bfd {
        bgp.push_str("  bfd on;\n");
        let mut opts = format!(
            "min rx interval {0} ms; min tx interval {0} ms; multiplier {1};",
            b.interval_ms, b.multiplier
        );
        if let Some((kind, pw)) = &b.auth {
            let _ = write!(
                opts,
                " authentication {kind}; password \"{pw}\" {{ id 1; }};"
            );
        }
        let neighbors: String = (o.bfd_neighbors.iter())
            .map(|(a, multihop)| {
                let on = if *multihop { "on" } else { "off" };
                format!("  neighbor {a} local {} multihop {on};\n", fam.peer())
            })
            .collect();
        bfd = format!(
            "protocol bfd {{\n  interface \"*\" {{ {opts} }};\n  multihop {{ {opts} }};\n\
             {neighbors}}}\n"
        );
    }
    // Multihop BGP resolves its next hops through the connected routes.
    let (gateway, direct) = match multihop {
        true => (
            "recursive",
            "protocol direct { ipv4; ipv6; interface \"*\"; }\n",
        ),
        false => ("direct", ""),
    };
    format!(
        "router id {PEER_ID};\nlog \"{}/bird.out\" all;\n\
         protocol device {{ scan time 10; }}\n{direct}{bfd}\
         protocol static st {{ {channel}; route {net} blackhole; }}\n\
         protocol bgp wren {{\n{bgp}  {channel} {{ import all; export where source = RTS_STATIC; \
         next hop self; gateway {gateway}; }};\n}}\n",
        lab.dir.display(),
    )
}

/// A Calico-style BIRD 1.6 session (bird for IPv4, bird6 for IPv6): add paths, next hop
/// self, graceful restart, error wait and connect times as calico-node sets them.
fn bird16_conf(lab: &Lab, o: &PeerOpts) -> String {
    let fam = o.fam;
    let net = match fam {
        Fam::V4 => PEER_NET_V4_STATIC,
        Fam::V6 => PEER_NET_V6_STATIC,
    };
    // Calico's template: multihop (its iBGP default), recursive next hops (resolved through
    // `protocol direct`), a description, inline filters.
    let (session, direct) = if o.calico {
        (
            "  description \"Connection to BGP peer\";\n  multihop;\n  gateway recursive;\n\
             import filter { accept; };\n\
             export filter { if source = RTS_STATIC then accept; reject; };\n",
            "protocol direct { interface \"*\"; }\n",
        )
    } else {
        (
            "  direct;\n  gateway direct;\n  import all;\n  export where source = RTS_STATIC;\n",
            "",
        )
    };
    let mut bgp = format!(
        "  local {} as {WREN_ASN};\n  neighbor {} as {WREN_ASN};\n\
         source address {};\n{session}\
         next hop self;\n  add paths on;\n\
         hold time {}; keepalive time {};\n\
         connect delay time 1; connect retry time 3; error wait time 1, 5;\n",
        fam.peer(),
        fam.wren(),
        fam.peer(),
        o.hold_time,
        o.keepalive(),
    );
    if o.graceful_restart {
        bgp.push_str("  graceful restart on;\n");
    } else {
        bgp.push_str("  graceful restart off;\n");
    }
    if o.passive {
        bgp.push_str("  passive on;\n");
    }
    if let Some(pw) = &o.password {
        let _ = writeln!(bgp, "  password \"{pw}\";");
    }
    format!(
        "router id {PEER_ID};\nlog \"{}/bird16.out\" all;\n\
         protocol device {{ scan time 10; }}\n{direct}\
         protocol static st {{ route {net} blackhole; }}\n\
         protocol bgp wren {{\n{bgp}}}\n",
        lab.dir.display()
    )
}

fn gobgp_conf(o: &PeerOpts) -> String {
    let fam = o.fam;
    let afi_safi = match fam {
        Fam::V4 => "ipv4-unicast",
        Fam::V6 => "ipv6-unicast",
    };
    let mut s = format!(
        "[global.config]\n  as = {}\n  router-id = \"{PEER_ID}\"\n  port = 179\n\
         local-address-list = [\"{}\"]\n\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {WREN_ASN}\n",
        if o.ibgp { WREN_ASN } else { Kind::Gobgp.asn() },
        fam.peer(),
        fam.wren(),
    );
    if let Some(pw) = &o.password {
        let _ = writeln!(s, "    auth-password = \"{pw}\"");
    }
    let _ = write!(
        s,
        "  [neighbors.timers.config]\n    hold-time = {}\n    keepalive-interval = {}\n\
         connect-retry = 3\n\
         [neighbors.transport.config]\n    passive-mode = {}\n    local-address = \"{}\"\n",
        o.hold_time,
        o.keepalive(),
        o.passive,
        fam.peer(),
    );
    if o.graceful_restart {
        s.push_str(
            "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = 120\n",
        );
    }
    let _ = write!(
        s,
        "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{afi_safi}\"\n"
    );
    if o.graceful_restart {
        s.push_str("    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n");
    }
    s
}

fn frr_conf(lab: &Lab, o: &PeerOpts) -> String {
    let fam = o.fam;
    let w = fam.wren();
    let (af, net) = match fam {
        Fam::V4 => ("ipv4", PEER_NET_V4_STATIC),
        Fam::V6 => ("ipv6", PEER_NET_V6_STATIC),
    };
    let mut n = format!(
        " neighbor {w} remote-as {WREN_ASN}\n neighbor {w} timers {} {}\n\
         neighbor {w} timers connect 3\n neighbor {w} update-source {}\n",
        o.keepalive(),
        o.hold_time,
        fam.peer()
    );
    if o.passive {
        let _ = writeln!(n, " neighbor {w} passive");
    }
    if let Some(pw) = &o.password {
        let _ = writeln!(n, " neighbor {w} password {pw}");
    }
    if o.bfd.is_some() {
        let _ = writeln!(n, " neighbor {w} bfd");
    }
    format!(
        "frr defaults traditional\nhostname peer\nlog file {}/frr/bgpd.log\n!\n\
         router bgp {WREN_ASN}\n bgp router-id {PEER_ID}\n no bgp ebgp-requires-policy\n\
         no bgp network import-check\n no bgp default ipv4-unicast\n {}\n{n} !\n\
         address-family {af} unicast\n  network {net}\n  neighbor {w} activate\n\
         exit-address-family\n!\n",
        lab.dir.display(),
        if o.graceful_restart {
            "bgp graceful-restart"
        } else {
            "bgp graceful-restart-disable"
        },
    )
}

fn openbgpd_conf(lab: &Lab, o: &PeerOpts) -> String {
    let fam = o.fam;
    let (announce, net) = match fam {
        Fam::V4 => ("announce IPv4 unicast", PEER_NET_V4_STATIC),
        Fam::V6 => (
            "announce IPv4 none\n    announce IPv6 unicast",
            PEER_NET_V6_STATIC,
        ),
    };
    let mut n = format!(
        "    remote-as {WREN_ASN}\n    descr \"wren\"\n    holdtime {}\n    holdtime min 3\n\
         local-address {}\n    {announce}\n    announce restart {}\n",
        o.hold_time,
        fam.peer(),
        if o.graceful_restart { "yes" } else { "no" },
    );
    if o.passive {
        n.push_str("    passive\n");
    }
    if let Some(pw) = &o.password {
        let _ = writeln!(n, "    tcp md5sig password {pw}");
    }
    format!(
        "AS {}\nrouter-id {PEER_ID}\nfib-update no\nsocket \"{}/openbgpd.sock\"\n\
         listen on {}\nnetwork {net}\nneighbor {} {{\n{n}}}\nallow from any\nallow to any\n",
        Kind::Openbgpd.asn(),
        lab.dir.display(),
        fam.peer(),
        fam.wren(),
    )
}

const PEER_ID: &str = PEER_V4;
const PEER_NET_V4_STATIC: &str = PEER_NET4;
const PEER_NET_V6_STATIC: &str = PEER_NET6;
