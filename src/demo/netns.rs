//! The demo as root: every node is a network namespace on a shared L2 fabric (a bridge in
//! its own namespace), holding a "pod" (a veth into a child namespace, Felix-style: a /32
//! route to `caliN`, the pod's default route via 169.254.1.1). wrend writes real
//! `proto bird` routes into each node's table, and pods ping across nodes.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Node, STOP, block, mesh_config};

/// The fabric's subnet (documentation range, inside namespaces only).
fn node_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 10 + i as u8)
}

/// The pod's address: the second address of its node's block.
fn pod_addr(i: usize) -> Ipv4Addr {
    let b: ipnet::Ipv4Net = block(i).parse().unwrap_or_default();
    Ipv4Addr::from(u32::from(b.network()) + 2)
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Nodes in namespaces; dropping it stops wrend and deletes every namespace it made.
pub struct Lab {
    prefix: String,
    dir: PathBuf,
    spaces: Vec<String>,
    nodes: Vec<Node>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.nodes.clear();
        for ns in self.spaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    fn ns(&mut self, name: &str) -> Result<String, String> {
        let ns = format!("{}-{name}", self.prefix);
        run(&["ip", "netns", "add", &ns])?;
        self.spaces.push(ns.clone());
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Builds the fabric, `n` nodes with a pod each, and starts wrend on every node.
    pub fn start(n: usize, wrend: &Path) -> Result<Lab, String> {
        if !(2..=32).contains(&n) {
            return Err("the namespace demo runs 2 to 32 nodes".into());
        }
        let prefix = format!("wd{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("wren-demo-{prefix}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut lab = Lab {
            prefix,
            dir,
            spaces: Vec::new(),
            nodes: Vec::new(),
        };
        let fabric = lab.ns("fabric")?;
        run(&["ip", "-n", &fabric, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &fabric, "link", "set", "br0", "up"])?;
        for i in 0..n {
            let node = lab.ns(&format!("node{i}"))?;
            let pod = lab.ns(&format!("pod{i}"))?;
            let port = format!("port{i}");
            let cali = format!("cali{i}");
            let (me, pod_ip) = (node_addr(i), pod_addr(i));
            run(&[
                "ip", "link", "add", "eth0", "netns", &node, "type", "veth", "peer", "name", &port,
                "netns", &fabric,
            ])?;
            run(&[
                "ip", "-n", &fabric, "link", "set", &port, "master", "br0", "up",
            ])?;
            run(&[
                "ip",
                "-n",
                &node,
                "addr",
                "add",
                &format!("{me}/24"),
                "dev",
                "eth0",
            ])?;
            run(&["ip", "-n", &node, "link", "set", "eth0", "up"])?;
            run(&[
                "ip",
                "netns",
                "exec",
                &node,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ])?;
            // The pod, as Felix wires it.
            run(&[
                "ip", "link", "add", &cali, "netns", &node, "type", "veth", "peer", "name", "eth0",
                "netns", &pod,
            ])?;
            run(&["ip", "-n", &node, "link", "set", &cali, "up"])?;
            // The pod's gateway. Calico answers it by proxy ARP, which needs a default
            // route on the node; these nodes have none, so the address sits on cali.
            run(&[
                "ip",
                "-n",
                &node,
                "addr",
                "add",
                "169.254.1.1/32",
                "dev",
                &cali,
            ])?;
            run(&[
                "ip",
                "-n",
                &node,
                "route",
                "add",
                &format!("{pod_ip}/32"),
                "dev",
                &cali,
            ])?;
            run(&[
                "ip",
                "-n",
                &pod,
                "addr",
                "add",
                &format!("{pod_ip}/32"),
                "dev",
                "eth0",
            ])?;
            run(&["ip", "-n", &pod, "link", "set", "eth0", "up"])?;
            run(&[
                "ip",
                "-n",
                &pod,
                "route",
                "add",
                "169.254.1.1",
                "dev",
                "eth0",
                "scope",
                "link",
            ])?;
            run(&[
                "ip",
                "-n",
                &pod,
                "route",
                "add",
                "default",
                "via",
                "169.254.1.1",
                "dev",
                "eth0",
            ])?;
            let node_proc = Node::spawn_in(
                Some(&node),
                wrend,
                &lab.dir,
                &format!("node{i}"),
                &config(i, n),
                &[],
            )?;
            lab.nodes.push(node_proc);
        }
        Ok(lab)
    }

    /// Waits until every node's kernel holds every other node's block as a `proto bird`
    /// route; [`STOP`] cuts the wait short (Ctrl-C).
    pub fn wait(&mut self, limit: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let n = self.nodes.len();
        loop {
            for node in &mut self.nodes {
                node.running()?;
            }
            if STOP.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            let routed = (0..n).all(|i| {
                let table = self.kernel(i);
                (0..n)
                    .filter(|j| *j != i)
                    .all(|j| table.contains(&block(j)))
            });
            if routed {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "not converged after {limit:?}; logs in {}",
                    self.dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Node `i`'s `proto bird` routes, as `ip route` prints them.
    pub fn kernel(&self, i: usize) -> String {
        let ns = format!("{}-node{i}", self.prefix);
        run(&["ip", "-n", &ns, "route", "show", "proto", "bird"]).unwrap_or_default()
    }

    /// Pings every other pod from pod 0: a line per pod.
    pub fn ping(&self) -> Vec<Result<String, String>> {
        let from = format!("{}-pod0", self.prefix);
        (1..self.nodes.len())
            .map(|j| {
                let to = pod_addr(j).to_string();
                run(&[
                    "ip", "netns", "exec", &from, "ping", "-c", "1", "-W", "2", &to,
                ])
                .map(|out| {
                    let rtt = out
                        .lines()
                        .find(|l| l.contains("time="))
                        .and_then(|l| l.split("time=").nth(1))
                        .unwrap_or("?");
                    format!("pod0 ({}) -> pod{j} ({to}): reply, time={rtt}", pod_addr(0))
                })
            })
            .collect()
    }

    /// Each node's `show protocols`, `show route` and kernel routes.
    pub fn report(&self) -> String {
        let mut s = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            s.push_str(&format!(
                "\n=== node {i} (namespace {}-node{i}, {}, block {}, pod {}) ===\n",
                self.prefix,
                node_addr(i),
                block(i),
                pod_addr(i)
            ));
            for cmd in ["show protocols", "show route"] {
                s.push_str(&format!("$ birdc {cmd}\n"));
                s.push_str(&node.ask(cmd).unwrap_or_else(|| "(no answer)\n".into()));
            }
            s.push_str("$ ip route show proto bird\n");
            s.push_str(&self.kernel(i));
        }
        s
    }
}

fn config(i: usize, n: usize) -> String {
    let me = node_addr(i);
    mesh_config(
        me,
        &block(i),
        (0..n).map(node_addr),
        &format!(
            "[[pool]]\ncidr = \"198.18.0.0/16\"\nencapsulation = \"none\"\n\n\
             [listen]\naddresses = [\"{me}\"]\n"
        ),
        "",
        "",
    )
}
