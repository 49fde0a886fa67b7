//! The demo as root: every node is a network namespace on a shared L2 fabric (a bridge in
//! its own namespace), holding a "pod" (a veth into a child namespace, Felix-style: a /32
//! route to `caliN`, the pod's default route via 169.254.1.1). wrend writes real
//! `proto bird` routes into each node's table, and pods ping across nodes: the demo sends
//! the ICMP echo itself from inside the pod's namespace, so it needs `ip` (iproute2) and
//! nothing else.

use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::{Node, STOP, block, mesh_config};
use crate::sys;

/// Whether `ip` (iproute2), which builds the namespaces, is installed.
pub fn have_ip() -> bool {
    Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

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
    // Ctrl-C reaches the command too, which then fails with nothing to say.
    if STOP.load(Ordering::Relaxed) {
        return Err("interrupted".into());
    }
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
            in_netns(&node, || {
                std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                    .map_err(|e| format!("net.ipv4.ip_forward in {node}: {e}"))
            })?;
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
            if STOP.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            for node in &mut self.nodes {
                node.running()?;
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

    /// Pings every other pod from pod 0 (one ICMP echo each, sent from pod 0's namespace):
    /// a line per pod.
    pub fn ping(&self) -> Vec<Result<String, String>> {
        let from = format!("{}-pod0", self.prefix);
        (1..self.nodes.len())
            .map(|j| {
                let to = pod_addr(j);
                let seq = j as u16;
                in_netns(&from, || echo(to, seq, Duration::from_secs(2))).map(|rtt| {
                    format!(
                        "pod0 ({}) -> pod{j} ({to}): reply, time={:.3} ms",
                        pod_addr(0),
                        rtt.as_secs_f64() * 1000.0
                    )
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

/// Runs `f` on a thread of its own inside namespace `ns` (`ip netns` keeps a handle to it in
/// /run/netns); the rest of the process stays where it is.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> Result<T, String> + Send) -> Result<T, String> {
    let path = Path::new("/run/netns").join(ns);
    let handle = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            sys::enter_netns(&handle).map_err(|e| format!("entering {ns}: {e}"))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(format!("the thread in {ns} panicked")))
    })
}

/// Sends one ICMP echo request (RFC 792) to `to` over a raw socket and waits up to `limit`
/// for its reply; returns the round-trip time.
fn echo(to: Ipv4Addr, seq: u16, limit: Duration) -> Result<Duration, String> {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
        .map_err(|e| format!("ICMP socket: {e}"))?;
    let id = (std::process::id() & 0xffff) as u16;
    let mut request = [0u8; 16];
    request[0] = 8; // echo request, code 0
    request[4..6].copy_from_slice(&id.to_be_bytes());
    request[6..8].copy_from_slice(&seq.to_be_bytes());
    request[8..].copy_from_slice(b"wrendemo");
    let sum = checksum(&request);
    request[2..4].copy_from_slice(&sum.to_be_bytes());
    let start = Instant::now();
    sock.send_to(&request, &SocketAddrV4::new(to, 0).into())
        .map_err(|e| format!("sending to {to}: {e}"))?;
    let mut buf = [0u8; 1500];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() || STOP.load(Ordering::Relaxed) {
            return Err(format!("no reply from {to} within {} s", limit.as_secs()));
        }
        sock.set_read_timeout(Some(left.min(Duration::from_millis(200))))
            .map_err(|e| e.to_string())?;
        // A raw socket hands over the IP header too: skip it, then look for our reply.
        let n = match (&sock).read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(format!("reading from {to}: {e}")),
        };
        let packet = &buf[..n];
        let ihl = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
        let (Some(src), Some(icmp)) = (packet.get(12..16), packet.get(ihl..ihl + 8)) else {
            continue;
        };
        if src == to.octets()
            && icmp[0] == 0
            && icmp[4..6] == id.to_be_bytes()
            && icmp[6..8] == seq.to_be_bytes()
        {
            return Ok(start.elapsed());
        }
    }
}

/// The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of
/// the 16-bit words.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        // A packet carrying its checksum sums to zero.
        let mut p = [8, 0, 0, 0, 0x12, 0x34, 0, 1, b'w', b'r', b'e', b'n', b'!'];
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&p), 0);
    }
}
