//! A topology built with network namespaces: one per node (`topo<pid>-<test>-<node>`), one per
//! bridge holding a Linux bridge, a veth per link, a pod namespace per node
//! (`…-<node>-pod`, a veth `cali0`/`eth0` as Calico wires a pod), the `exec` commands run in
//! each node, and the speakers started (a Calico node's `bird` and `bird6` as calico-node's
//! runit services start them, on a copy of confd's files in the work directory, which the
//! tests rewrite as confd does). Dropping it stops exactly the processes it started
//! and deletes its namespaces, also when the test panics; namespaces of runs whose process
//! is gone are removed first.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clab::{Node, Speaker, Topo};
use crate::harness::netns::{
    add_netns, del_netns, ip, netns_exec, remove_stale_namespaces, wire_pod,
};
use crate::harness::peers::{bird16_dir, copy_for_stock_bird, frr_args, frr_bgpd, frr_zebra};
use crate::harness::proc::{
    ProcId, Procs, cli, require_binaries, require_root, system_bin, wait_until, work_dir,
};

/// How long a daemon may take to answer on its control socket after it starts.
const START: Duration = Duration::from_secs(20);

pub struct Fabric {
    pub topo: Topo,
    prefix: String,
    procs: Procs,
    /// Each node's BGP daemons (a Calico node: `bird`, then `bird6`).
    running: RefCell<BTreeMap<String, Vec<ProcId>>>,
    namespaces: Vec<String>,
}

impl Deref for Fabric {
    type Target = Procs;
    fn deref(&self) -> &Procs {
        &self.procs
    }
}

pub fn wrend_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wrend"))
}

pub fn wrenc_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wrenc"))
}

fn binaries(s: Speaker) -> Vec<PathBuf> {
    match s {
        Speaker::Wrend => vec![wrend_bin(), wrenc_bin()],
        Speaker::Bird16 => vec![bird16_dir().join("bird"), bird16_dir().join("birdc")],
        Speaker::Bird2 => vec![system_bin("bird"), system_bin("birdc")],
        Speaker::Frr => vec![frr_zebra(), frr_bgpd(), system_bin("vtysh")],
        Speaker::CalicoBird16 => ["bird", "bird6", "birdc"]
            .map(|b| bird16_dir().join(b))
            .to_vec(),
        Speaker::CalicoWren => vec![wrend_bin(), bird16_dir().join("birdc")],
    }
}

/// The program a Calico node runs as `bird` (`v6`: `bird6`): BIRD 1.6.8's, or a link with
/// that name to wrend in `dir`/bin.
fn calico_daemon(s: Speaker, dir: &Path, v6: bool) -> PathBuf {
    let name = if v6 { "bird6" } else { "bird" };
    match s {
        Speaker::CalicoWren => dir.join("bin").join(name),
        _ => bird16_dir().join(name),
    }
}

impl Fabric {
    /// Builds topology `file` (under tests/topology/) for test `id` and starts every speaker.
    pub fn up(id: &str, file: &str) -> Fabric {
        require_root(
            "the topology tests need root (network namespaces, veth, bridges, BGP on port \
             179): run `sudo cargo test --test topology`, after `sudo bash tests/peers/install.sh`",
        );
        let topo = Topo::load(file).unwrap_or_else(|e| panic!("{e}"));
        let mut need = vec![system_bin("ip"), system_bin("kill"), system_bin("ping")];
        for n in &topo.nodes {
            need.extend(binaries(n.speaker));
        }
        require_binaries(&need);
        remove_stale_namespaces("topo", "topology");
        let dir = work_dir(Path::new("/tmp/wren-topology"), id);
        let prefix = format!("topo{}-{id}", std::process::id());
        let mut namespaces: Vec<String> = Vec::new();
        for b in &topo.bridges {
            namespaces.push(format!("{prefix}-{b}"));
        }
        for n in &topo.nodes {
            namespaces.push(format!("{prefix}-{}", n.name));
            if !n.pods.is_empty() {
                namespaces.push(format!("{prefix}-{}-pod", n.name));
            }
        }
        let fab = Fabric {
            topo,
            prefix,
            procs: Procs::new(id, dir),
            running: RefCell::new(BTreeMap::new()),
            namespaces,
        };
        fab.log(&format!(
            "topology {} from {file}, work directory {}",
            fab.topo.name,
            fab.dir.display()
        ));
        fab.build();
        fab.calico_files();
        for n in &fab.topo.nodes {
            fab.start(&n.name, false);
        }
        fab
    }

    /// The namespace of node (or bridge) `name`.
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    pub fn pod_ns(&self, node: &str) -> String {
        format!("{}-{node}-pod", self.prefix)
    }

    pub fn node(&self, name: &str) -> &Node {
        self.topo
            .node(name)
            .unwrap_or_else(|| panic!("no node {name} in {}", self.topo.name))
    }

    fn build(&self) {
        for ns in &self.namespaces {
            add_netns(
                ns,
                &[
                    "net.ipv4.ip_forward=1",
                    "net.ipv6.conf.all.forwarding=1",
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                ],
            );
        }
        for b in &self.topo.bridges {
            let ns = self.ns(b);
            ip(&["-n", &ns, "link", "add", "name", b, "type", "bridge"]);
            ip(&["-n", &ns, "link", "set", "dev", b, "up"]);
        }
        for [a, b] in &self.topo.links {
            let (na, nb) = (self.ns(&a.node), self.ns(&b.node));
            ip(&[
                "link", "add", "name", &a.iface, "netns", &na, "type", "veth", "peer", "name",
                &b.iface, "netns", &nb,
            ]);
            for (e, ns) in [(a, &na), (b, &nb)] {
                if self.topo.bridges.contains(&e.node) {
                    ip(&["-n", ns, "link", "set", "dev", &e.iface, "master", &e.node]);
                }
                ip(&["-n", ns, "link", "set", "dev", &e.iface, "up"]);
            }
        }
        for n in &self.topo.nodes {
            let ns = self.ns(&n.name);
            for w in &n.exec {
                let args: Vec<&str> = w.iter().map(String::as_str).collect();
                netns_exec(&ns, &args);
            }
            if !n.pods.is_empty() {
                self.pod(n);
            }
        }
    }

    /// For the Calico nodes: the copy of confd's files each runs on (`<dir>/<node>/confd`; BIRD
    /// gets it without `krt_tunnel`, which stock 1.6.8 lacks), and the links named `bird` and
    /// `bird6` to wrend (`<dir>/bin`).
    fn calico_files(&self) {
        for n in self.topo.nodes.iter().filter(|n| n.speaker.calico()) {
            let to = self.confd(&n.name);
            match n.speaker {
                Speaker::CalicoBird16 => copy_for_stock_bird(&n.config, &to),
                _ => {
                    fs::create_dir_all(&to).unwrap();
                    for e in fs::read_dir(&n.config).unwrap().flatten() {
                        fs::copy(e.path(), to.join(e.file_name())).unwrap();
                    }
                }
            }
            if n.speaker == Speaker::CalicoWren && !self.dir.join("bin").exists() {
                fs::create_dir_all(self.dir.join("bin")).unwrap();
                for name in ["bird", "bird6"] {
                    std::os::unix::fs::symlink(wrend_bin(), self.dir.join("bin").join(name))
                        .unwrap();
                }
            }
        }
    }

    /// The folder of confd's files Calico node `name` runs on: rewrite them and SIGHUP, as
    /// confd does.
    pub fn confd(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("confd")
    }

    /// Wires node `n`'s pod as Calico does ([`wire_pod`]).
    fn pod(&self, n: &Node) {
        wire_pod(&self.ns(&n.name), &self.pod_ns(&n.name), &n.pods);
    }

    /// Node `node`'s control socket (a Calico node's `bird.ctl`).
    pub fn ctl(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.ctl"))
    }

    /// A Calico node's `bird6.ctl`.
    pub fn ctl6(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}-6.ctl"))
    }

    /// Starts node `name`'s speaker (`restarting`: in graceful-restart mode, `-R`; a Calico
    /// node always is, as calico-node starts BIRD); returns once its control socket answers.
    pub fn start(&self, name: &str, restarting: bool) {
        let n = self.node(name).clone();
        let ns = self.ns(name);
        let ctl = self.ctl(name).display().to_string();
        let conf = n.config.display().to_string();
        let mut args: Vec<String> = vec!["-c".into(), conf, "-s".into(), ctl];
        if restarting {
            args.push("-R".into());
        }
        let mut daemons = Vec::new();
        let main = match n.speaker {
            Speaker::CalicoBird16 | Speaker::CalicoWren => {
                let confd = self.confd(name);
                for (label, v6) in [(name.to_string(), false), (format!("{name}-bird6"), true)] {
                    let (ctl, cfg) = match v6 {
                        false => (self.ctl(name), confd.join("bird.cfg")),
                        true => (self.ctl6(name), confd.join("bird6.cfg")),
                    };
                    let args = [
                        "-R".into(),
                        "-s".into(),
                        ctl.into_os_string(),
                        "-d".into(),
                        "-c".into(),
                        cfg.into_os_string(),
                    ];
                    let prog = calico_daemon(n.speaker, &self.dir, v6);
                    daemons.push(self.spawn(&label, &ns, &prog, &args));
                }
                daemons[0]
            }
            Speaker::Wrend => self.spawn(name, &ns, &wrend_bin(), &args),
            Speaker::Bird2 => {
                args.insert(0, "-f".into());
                self.spawn(name, &ns, &system_bin("bird"), &args)
            }
            Speaker::Bird16 => {
                args.insert(0, "-f".into());
                self.spawn(name, &ns, &bird16_dir().join("bird"), &args)
            }
            Speaker::Frr => {
                // FRR runs as user frr: its files live in a folder of its own.
                let d = self.dir.join(name);
                let zconf = self.write(&format!("{name}/zebra.conf"), "hostname zebra\n");
                let text = fs::read_to_string(&n.config)
                    .unwrap_or_else(|e| panic!("{}: {e}", n.config.display()));
                let bconf = self.write(&format!("{name}/frr.conf"), &text);
                self.spawn(
                    &format!("{name}-zebra"),
                    &ns,
                    &frr_zebra(),
                    &frr_args("zebra", &zconf, &d),
                );
                let api = d.join("zserv.api");
                let r = wait_until("zebra's zserv socket", START, || {
                    api.exists()
                        .then_some(())
                        .ok_or_else(|| format!("{} missing", api.display()))
                });
                self.must(r);
                self.spawn(name, &ns, &frr_bgpd(), &frr_args("bgpd", &bconf, &d))
            }
        };
        if daemons.is_empty() {
            daemons.push(main);
        }
        self.running
            .borrow_mut()
            .insert(name.to_string(), daemons.clone());
        let r = wait_until(&format!("{name}'s CLI answers"), START, || {
            if let Some(gone) = daemons.iter().find(|p| !self.alive(**p)) {
                return Ok(Err(format!(
                    "{name}'s daemon exited: see {}",
                    self.log_path(*gone).display()
                )));
            }
            self.show(name, "show protocols")?;
            if n.speaker.calico() {
                self.show6(name, "show protocols")?;
            }
            Ok(Ok(()))
        });
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) | Err(e) => self.fail(&format!("starting {name}: {e}")),
        }
    }

    /// SIGKILL to node `name`'s BGP daemons (zebra, for FRR, stays).
    pub fn kill(&self, name: &str) {
        for p in self.daemons(name) {
            self.procs.kill(p);
        }
    }

    /// Node `name`'s BGP daemons (a Calico node: `bird`, then `bird6`).
    pub fn daemons(&self, name: &str) -> Vec<ProcId> {
        self.running.borrow()[name].clone()
    }

    /// Sends `sig` (`STOP`, `CONT`) to node `name`'s BGP daemons.
    pub fn signal_node(&self, name: &str, sig: &str) {
        for p in self.daemons(name) {
            self.procs.signal(p, sig);
        }
    }

    /// Starts `program args` in node `name`'s namespace as a tracked process (e.g. `ip
    /// monitor`, `ping`), logging to `<dir>/<label>.log`.
    pub fn spawn_in(&self, label: &str, ns: &str, program: &str, args: &[&str]) -> ProcId {
        self.spawn(label, ns, &system_bin(program), args)
    }

    /// Runs a command in namespace `ns` and returns its output.
    pub fn run_in(&self, ns: &str, program: &str, args: &[&str]) -> Result<String, String> {
        cli(Some(ns), &system_bin(program), args)
    }

    /// A command on node `name`'s speaker: wrenc for wrend, birdc for BIRD (BIRD 1.6.8's for
    /// a Calico node, on `bird.ctl`, as calico-node's probes use it), vtysh for FRR (where
    /// `show protocols` becomes `show bgp summary`).
    pub fn show(&self, name: &str, cmd: &str) -> Result<String, String> {
        self.ask(name, &self.ctl(name), cmd)
    }

    /// A command on Calico node `name`'s `bird6.ctl`, with BIRD 1.6.8's birdc.
    pub fn show6(&self, name: &str, cmd: &str) -> Result<String, String> {
        self.ask(name, &self.ctl6(name), cmd)
    }

    fn ask(&self, name: &str, ctl: &Path, cmd: &str) -> Result<String, String> {
        let n = self.node(name);
        let ctl = ctl.display().to_string();
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let mut args = vec!["-s", ctl.as_str()];
        args.extend(&words);
        let out = match n.speaker {
            Speaker::Wrend => cli(None, &wrenc_bin(), &args)?,
            Speaker::Bird2 => cli(None, &system_bin("birdc"), &args)?,
            Speaker::Bird16 | Speaker::CalicoBird16 | Speaker::CalicoWren => {
                cli(None, &bird16_dir().join("birdc"), &args)?
            }
            Speaker::Frr => {
                let d = self.dir.join(name).display().to_string();
                let c = if cmd == "show protocols" {
                    "show bgp summary"
                } else {
                    cmd
                };
                cli(None, &system_bin("vtysh"), &["--vty_socket", &d, "-c", c])?
            }
        };
        if out.contains("Unable to connect") {
            return Err(out.trim().to_string());
        }
        Ok(out)
    }

    /// The `proto bird` routes in node `name`'s kernel, IPv4 then IPv6, one line each (a
    /// multipath route's next hops on its line).
    pub fn kernel_routes(&self, name: &str) -> Result<Vec<String>, String> {
        let ns = self.ns(name);
        let mut v = Vec::new();
        for fam in ["-4", "-6"] {
            let out = self.run_in(&ns, "ip", &["-o", fam, "route", "show", "proto", "bird"])?;
            v.extend(out.lines().map(|l| l.replace('\\', " ")));
        }
        Ok(v)
    }

    /// Whether a pod address answers a ping from `from`'s pod.
    pub fn ping(&self, from: &str, to: IpAddr) -> Result<(), String> {
        let to = to.to_string();
        self.run_in(&self.pod_ns(from), "ping", &["-c", "1", "-W", "1", &to])
            .map(drop)
            .map_err(|e| format!("ping from {from}'s pod to {to}: {e}"))
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        let namespaces = self.namespaces.clone();
        self.procs.stop_all(&namespaces);
        for ns in &namespaces {
            del_netns(ns);
        }
    }
}
