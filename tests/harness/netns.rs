//! Network namespaces: creating them, running `ip` in them, deleting them (ours only, quietly,
//! also when a test panics), and removing what runs that are gone left behind. Every name a
//! test or bench makes carries its process id, so two runs on one machine never touch each
//! other's namespaces.

use std::fs::{self, File};
use std::net::IpAddr;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use super::proc::{pid_gone, run_ok, system_bin};

/// Runs `ip ARGS`; its stderr becomes the error.
pub fn try_ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(system_bin("ip"))
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs the `ip` commands `text` (one a line) in namespace `ns` with `ip -batch`, from the
/// file `path` it writes first (kept, for the record).
pub fn ip_batch(ns: &str, text: &str, path: &Path) -> anyhow::Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    try_ip(&["-n", ns, "-batch", &path.display().to_string()])
}

/// Runs `ip ARGS`, which must succeed (test setup).
pub fn ip(args: &[&str]) {
    if let Err(e) = try_ip(args) {
        panic!("{e:#}");
    }
}

/// Runs `ip` once per line of `lines` (the arguments separated by white space); each must
/// succeed.
pub fn ip_lines<S: AsRef<str>>(lines: &[S]) {
    for l in lines {
        ip(&l.as_ref().split_whitespace().collect::<Vec<_>>());
    }
}

/// Runs `args` in namespace `ns`; it must succeed (test setup).
pub fn netns_exec(ns: &str, args: &[&str]) {
    run_ok(
        Command::new(system_bin("ip"))
            .args(["netns", "exec", ns])
            .args(args),
    );
}

/// Creates namespace `ns` of this run (see [`clear_stale_namespace`]) with the sysctls
/// `sysctls` (`name=value`) and `lo` up.
pub fn add_netns(ns: &str, sysctls: &[&str]) {
    clear_stale_namespace(ns);
    ip(&["netns", "add", ns]);
    for s in sysctls {
        netns_exec(ns, &["sysctl", "-qw", s]);
    }
    ip(&["-n", ns, "link", "set", "lo", "up"]);
}

/// Runs `f` on a thread inside network namespace `ns`: setns(2) changes only the calling
/// thread's namespace, and the sockets `f` makes stay in `ns` wherever they are used (so a
/// test in the root namespace can talk to, or hold sessions from, addresses in `ns`).
pub fn in_netns<T: Send>(
    ns: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send,
) -> std::io::Result<T> {
    let path = Path::new("/run/netns").join(ns);
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(&path)?;
            // SAFETY: setns on this thread only, with a namespace file descriptor we opened.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(std::io::Error::other(
                "the thread in the namespace panicked",
            ))
        })
    })
}

/// Wires a pod in namespace `pod` to its node in `node` as Calico does: a veth `cali0` on the
/// node (no address but the pod's gateway 169.254.1.1/32 and fe80::1), `eth0` in the pod with
/// the pod's addresses `addrs`, a default route to that gateway, and a host route to each pod
/// address on the node.
pub fn wire_pod(node: &str, pod: &str, addrs: &[IpAddr]) {
    ip_lines(&[
        format!("link add name cali0 netns {node} type veth peer name eth0 netns {pod}"),
        format!("-n {node} addr add 169.254.1.1/32 dev cali0"),
        format!("-n {node} addr add fe80::1/64 dev cali0 nodad"),
        format!("-n {node} link set cali0 up"),
        format!("-n {pod} link set eth0 up"),
    ]);
    for a in addrs {
        if a.is_ipv6() {
            ip_lines(&[
                format!("-n {pod} addr add {a}/128 dev eth0 nodad"),
                format!("-n {pod} -6 route add default via fe80::1 dev eth0"),
                format!("-n {node} route add {a}/128 dev cali0"),
            ]);
        } else {
            ip_lines(&[
                format!("-n {pod} addr add {a}/32 dev eth0"),
                format!("-n {pod} route add 169.254.1.1 dev eth0 scope link"),
                format!("-n {pod} route add default via 169.254.1.1 dev eth0"),
                format!("-n {node} route add {a}/32 dev cali0"),
            ]);
        }
    }
}

/// Deletes namespace `ns` if it exists (no "Cannot remove namespace file" when it does not).
pub fn del_netns(ns: &str) {
    if Path::new("/run/netns").join(ns).exists() {
        let _ = Command::new(system_bin("ip"))
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
    }
}

/// Deletes namespace `ns` when nothing runs in it (a leftover of a killed run).
pub fn del_netns_if_empty(ns: &str) {
    if netns_pids(ns).is_empty() {
        del_netns(ns);
    }
}

/// Every network namespace name under /run/netns.
pub fn netns_names() -> Vec<String> {
    fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The processes running in namespace `ns`.
pub fn netns_pids(ns: &str) -> Vec<u32> {
    Command::new(system_bin("ip"))
        .args(["netns", "pids", ns])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A namespace of this very run that exists already: removed when empty; fails when in use.
pub fn clear_stale_namespace(ns: &str) {
    if !Path::new("/run/netns").join(ns).exists() {
        return;
    }
    let pids = netns_pids(ns);
    assert!(
        pids.is_empty(),
        "network namespace {ns} exists with processes {pids:?} in it: is another run of this \
         test going on? (if not, stop them and run `ip netns del {ns}`)"
    );
    ip(&["netns", "del", ns]);
}

/// Removes the empty namespaces named `PREFIX…` that runs which are gone left behind: the
/// first all-digit `-`-separated field after the prefix is the run's pid. `who` names the
/// test or bench in the message.
pub fn remove_stale_namespaces(prefix: &str, who: &str) {
    for name in netns_names() {
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('-').find(|f| f.parse::<u32>().is_ok()))
        else {
            continue;
        };
        if pid_gone(pid) && netns_pids(&name).is_empty() {
            eprintln!("{who}: removing stale namespace {name}");
            del_netns(&name);
        }
    }
}

/// Namespaces deleted on drop.
pub struct Namespaces(pub Vec<String>);

impl Namespaces {
    /// Creates each namespace (deleting a leftover of the same name first), with `lo` up.
    pub fn create(names: &[String]) -> anyhow::Result<Namespaces> {
        let g = Namespaces(names.to_vec());
        for n in names {
            del_netns(n);
            try_ip(&["netns", "add", n])?;
            try_ip(&["-n", n, "link", "set", "lo", "up"])?;
        }
        Ok(g)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            del_netns(n);
        }
    }
}

/// A receiver's namespace and its peers' (`{prefix}r-PID`, `{prefix}p-PID`), joined by a
/// veth: `vr` in the receiver's, `vp` in the peers', both down; deleted on drop.
pub struct RecvPeers {
    pub recv: String,
    pub peers: String,
    _guard: Namespaces,
}

impl RecvPeers {
    /// The two namespaces and the veth, each end given its own extra arguments (`address MAC`).
    pub fn create(prefix: &str, recv_args: &[&str], peers_args: &[&str]) -> anyhow::Result<Self> {
        let id = std::process::id();
        let (recv, peers) = (format!("{prefix}r-{id}"), format!("{prefix}p-{id}"));
        let g = RecvPeers {
            _guard: Namespaces::create(&[recv.clone(), peers.clone()])?,
            recv,
            peers,
        };
        let veth = [
            &["link", "add", "vr", "netns", &g.recv][..],
            recv_args,
            &["type", "veth", "peer", "name", "vp", "netns", &g.peers],
            peers_args,
        ];
        try_ip(&veth.concat())?;
        Ok(g)
    }
}

/// When `ip -ts monitor route` (run with `TZ=UTC`) saw each route of `prefixes` deleted, in
/// seconds since midnight UTC, in the order logged.
pub fn monitor_deletions(log: &str, prefixes: &[String]) -> Vec<f64> {
    log.lines()
        .filter_map(|l| {
            let (stamp, event) = l.strip_prefix('[')?.split_once("] ")?;
            let net = event.strip_prefix("Deleted ")?.split_whitespace().next()?;
            prefixes.iter().any(|p| p == net).then_some(())?;
            let (_, time) = stamp.split_once('T')?;
            let mut hms = time.split(':').map(|x| x.parse::<f64>().ok());
            Some(hms.next()?? * 3600.0 + hms.next()?? * 60.0 + hms.next()??)
        })
        .collect()
}

/// `t` in seconds since midnight UTC, to compare with [`monitor_deletions`].
pub fn seconds_of_day(t: std::time::SystemTime) -> f64 {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    secs % 86_400.0
}
