//! A topology built with network namespaces: one per node (`topo<pid>-<test>-<node>`), one per
//! bridge holding a Linux bridge, a veth per link, a pod namespace per node
//! (`…-<node>-pod`, a veth `cali0`/`eth0` as Calico wires a pod), the `exec` commands run in
//! each node, and the speakers started. Dropping it stops exactly the processes it started
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
use crate::harness::peers::{bird16_dir, frr_args, frr_bgpd, frr_zebra};
use crate::harness::proc::{
    ProcId, Procs, cli, require_binaries, require_root, system_bin, wait_until, work_dir,
};

/// How long a daemon may take to answer on its control socket after it starts.
const START: Duration = Duration::from_secs(20);

pub struct Fabric {
    pub topo: Topo,
    prefix: String,
    procs: Procs,
    /// Each node's BGP daemon.
    running: RefCell<BTreeMap<String, ProcId>>,
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

    /// Wires node `n`'s pod as Calico does ([`wire_pod`]).
    fn pod(&self, n: &Node) {
        wire_pod(&self.ns(&n.name), &self.pod_ns(&n.name), &n.pods);
    }

    fn ctl(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.ctl"))
    }

    /// Starts node `name`'s speaker (`restarting`: in graceful-restart mode, `-R`); returns
    /// once its control socket answers.
    pub fn start(&self, name: &str, restarting: bool) {
        let n = self.node(name).clone();
        let ns = self.ns(name);
        let ctl = self.ctl(name).display().to_string();
        let conf = n.config.display().to_string();
        let mut args: Vec<String> = vec!["-c".into(), conf, "-s".into(), ctl];
        if restarting {
            args.push("-R".into());
        }
        let main = match n.speaker {
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
        self.running.borrow_mut().insert(name.to_string(), main);
        let r = wait_until(&format!("{name}'s CLI answers"), START, || {
            if !self.alive(main) {
                return Ok(Err(format!("{name}'s daemon exited")));
            }
            self.show(name, "show protocols").map(Ok)
        });
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) | Err(e) => self.fail(&format!("starting {name}: {e}")),
        }
    }

    /// SIGKILL to node `name`'s BGP daemon (zebra, for FRR, stays).
    pub fn kill(&self, name: &str) {
        let p = self.running.borrow()[name];
        self.procs.kill(p);
    }

    /// Sends `sig` (`STOP`, `CONT`) to node `name`'s speaker.
    pub fn signal_node(&self, name: &str, sig: &str) {
        let p = self.running.borrow()[name];
        self.procs.signal(p, sig);
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

    /// A `show …` command on node `name`'s speaker: wrenc for wrend, birdc for BIRD, vtysh
    /// for FRR (where `show protocols` becomes `show bgp summary`).
    pub fn show(&self, name: &str, cmd: &str) -> Result<String, String> {
        let n = self.node(name);
        let ctl = self.ctl(name).display().to_string();
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let mut args = vec!["-s", ctl.as_str()];
        args.extend(&words);
        let out = match n.speaker {
            Speaker::Wrend => cli(None, &wrenc_bin(), &args)?,
            Speaker::Bird2 => cli(None, &system_bin("birdc"), &args)?,
            Speaker::Bird16 => cli(None, &bird16_dir().join("birdc"), &args)?,
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
