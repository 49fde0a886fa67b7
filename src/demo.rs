//! The README's first command: a cluster of wrend nodes in a full iBGP mesh. Unprivileged,
//! over loopback addresses (127.0.0.10, .11, …) with the kernel untouched; as root, in
//! network namespaces with real kernel routes and pods pinging across ([`netns`]). Each node
//! announces one /26 block as a Calico node would; the demo waits until every node has
//! learned every block, prints what each node sees, and stops the nodes.

pub mod netns;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::control::client::{Client, render};

/// Set on Ctrl-C: the demo stops waiting, and dropping its cluster cleans up.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// An unprivileged port, since port 179 needs root.
const PORT: u16 = 1179;
const ASN: u32 = 64512;

/// One wrend process with its files in a directory; dropping it stops the process.
pub struct Node {
    pub name: String,
    pub socket: PathBuf,
    child: Child,
}

impl Node {
    /// Starts `wrend` with configuration `config`, its socket and log in `dir`.
    pub fn spawn(wrend: &Path, dir: &Path, name: &str, config: &str) -> Result<Node, String> {
        Node::spawn_in(None, wrend, dir, name, config, &[])
    }

    /// As [`Node::spawn`], inside network namespace `netns` when given, with extra flags.
    pub fn spawn_in(
        netns: Option<&str>,
        wrend: &Path,
        dir: &Path,
        name: &str,
        config: &str,
        flags: &[&str],
    ) -> Result<Node, String> {
        let conf = dir.join(format!("{name}.toml"));
        std::fs::write(&conf, config).map_err(|e| format!("{}: {e}", conf.display()))?;
        let log =
            std::fs::File::create(dir.join(format!("{name}.log"))).map_err(|e| e.to_string())?;
        let socket = dir.join(format!("{name}.ctl"));
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(wrend);
                c
            }
            None => Command::new(wrend),
        };
        let child = cmd
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(&socket)
            .args(flags)
            .stderr(log)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", wrend.display()))?;
        Ok(Node {
            name: name.to_string(),
            socket,
            child,
        })
    }

    /// A control command's reply as birdcl prints it; `None` when the node does not answer.
    pub fn ask(&self, cmd: &str) -> Option<String> {
        let mut c = Client::connect(&self.socket).ok()?;
        c.command(cmd).ok().map(|r| render(&r))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited: {status}", self.name)),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Node {
    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Stops the process as an operator would (SIGTERM: a Cease to every peer, kernel routes
    /// kept), and kills it if it has not gone within two seconds.
    pub fn stop(&mut self) {
        if crate::sys::terminate(self.child.id()).is_ok() {
            let end = Instant::now() + Duration::from_secs(2);
            while Instant::now() < end {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The demo's nodes; dropping it stops them and removes their files.
pub struct Cluster {
    dir: PathBuf,
    nodes: Vec<(Ipv4Addr, String, Node)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + i as u8)
}

/// Node i's pod block: a /26 per node, as Calico's IPAM hands out.
fn block(i: usize) -> String {
    format!("198.18.{}.{}/26", i / 4, (i % 4) * 64)
}

/// Calico's mesh rule (contract §2.4): be passive toward a peer whose address is greater as
/// a string, so exactly one side dials.
fn passive(me: Ipv4Addr, peer: Ipv4Addr) -> bool {
    peer.to_string() > me.to_string()
}

/// A mesh node's configuration: `me` announcing `block` and peering with every address in
/// `peers` under Calico's passive rule. `sections` adds tables (listen, kernel, pools);
/// `defaults` and `peer` add lines to `[defaults]` and to every `[[peer]]`.
fn mesh_config(
    me: Ipv4Addr,
    block: &str,
    peers: impl Iterator<Item = Ipv4Addr>,
    sections: &str,
    defaults: &str,
    peer: &str,
) -> String {
    let mut c = format!(
        "router_id = \"{me}\"\nasn = {ASN}\noriginate = [\"{block}\"]\n\n{sections}\n\
         [defaults]\nhold_time = 9\nconnect_delay = 1\nconnect_retry = 2\n{defaults}"
    );
    for p in peers.filter(|p| *p != me) {
        let name = format!("Mesh_{}", p.to_string().replace('.', "_"));
        c.push_str(&format!(
            "\n[[peer]]\nname = \"{name}\"\naddress = \"{p}\"\nasn = {ASN}\n{peer}passive = {}\n",
            passive(me, p)
        ));
    }
    c
}

fn config(i: usize, n: usize) -> String {
    let me = addr(i);
    mesh_config(
        me,
        &block(i),
        (0..n).map(addr),
        &format!("[kernel]\nenabled = false\n\n[listen]\naddresses = [\"{me}\"]\nport = {PORT}\n"),
        &format!("source_address = \"{me}\"\n"),
        &format!("port = {PORT}\n"),
    )
}

impl Cluster {
    /// Starts `n` nodes using the wrend binary at `wrend`.
    pub fn start(n: usize, wrend: &Path) -> Result<Cluster, String> {
        if !(2..=64).contains(&n) {
            return Err("the demo runs 2 to 64 nodes".into());
        }
        let dir = std::env::temp_dir().join(format!("wren-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut cluster = Cluster {
            dir,
            nodes: Vec::new(),
        };
        for i in 0..n {
            let node = Node::spawn(wrend, &cluster.dir, &format!("node{i}"), &config(i, n))?;
            cluster.nodes.push((addr(i), block(i), node));
        }
        Ok(cluster)
    }

    fn ask(&self, i: usize, cmd: &str) -> Option<String> {
        self.nodes.get(i).and_then(|(_, _, n)| n.ask(cmd))
    }

    /// Whether every node has every peer Established and every block in its table.
    fn converged(&self) -> bool {
        (0..self.nodes.len()).all(|i| {
            let Some(protocols) = self.ask(i, "show protocols") else {
                return false;
            };
            let Some(routes) = self.ask(i, "show route") else {
                return false;
            };
            let up = protocols
                .lines()
                .filter(|l| l.contains("Established"))
                .count();
            up == self.nodes.len() - 1
                && self
                    .nodes
                    .iter()
                    .all(|(_, block, _)| routes.contains(block))
        })
    }

    /// Waits for convergence; returns how long it took.
    pub fn wait(&mut self, limit: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        while !self.converged() {
            if STOP.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            for (_, _, n) in &mut self.nodes {
                n.running()?;
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "not converged after {limit:?}; logs in {}",
                    self.dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(start.elapsed())
    }

    /// Each node's `show protocols` and `show route`, as birdcl prints them.
    pub fn report(&self) -> String {
        let mut s = String::new();
        for (i, (addr, block, _)) in self.nodes.iter().enumerate() {
            s.push_str(&format!("\n=== node {i} ({addr}, block {block}) ===\n"));
            for cmd in ["show protocols", "show route"] {
                s.push_str(&format!("$ birdc {cmd}\n"));
                s.push_str(&self.ask(i, cmd).unwrap_or_else(|| "(no answer)\n".into()));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_rule_gives_one_dialler() {
        for (a, b) in [(addr(0), addr(1)), (addr(2), addr(0))] {
            assert_ne!(passive(a, b), passive(b, a));
        }
        assert!(config(0, 3).contains("Mesh_127_0_0_11"));
    }
}
