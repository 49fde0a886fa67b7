//! The README's demo: a 4-node mesh of real wrend processes over loopback converges, each
//! node learning every other node's block.

use std::path::Path;
use std::time::Duration;

use wren::demo::Cluster;

#[test]
fn four_node_loopback_mesh_converges() {
    let mut c = Cluster::start(4, Path::new(env!("CARGO_BIN_EXE_wrend"))).expect("start nodes");
    let took = c.wait(Duration::from_secs(30)).expect("converge");
    let report = c.report();
    assert_eq!(report.matches("Established").count(), 4 * 3, "{report}");
    for block in [
        "198.18.0.0/26",
        "198.18.0.64/26",
        "198.18.0.128/26",
        "198.18.0.192/26",
    ] {
        let rows = report.lines().filter(|l| l.starts_with(block)).count();
        assert_eq!(rows, 4, "{block} in every node's table:\n{report}");
    }
    assert!(took < Duration::from_secs(30));
}

/// The README's first command as root: nodes in network namespaces write `proto bird`
/// routes, pods ping across nodes, and every namespace is gone afterwards.
#[test]
fn root_demo_routes_and_pings_in_namespaces() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the namespace demo needs root (run `sudo bash tests/run.sh`)"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wrenc"))
        .args(["demo", "--nodes", "3"])
        .output()
        .expect("run wrenc demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("converged in"), "{text}");
    assert_eq!(text.matches(": reply, time=").count(), 2, "{text}");
    for route in [
        "blackhole 198.18.0.0/26",
        "198.18.0.64/26 via 198.51.100.11 dev eth0",
        "198.18.0.128/26 via 198.51.100.12 dev eth0",
    ] {
        assert!(
            text.lines().any(|l| l.trim_end() == route),
            "{route}:\n{text}"
        );
    }
    let prefix = text
        .split("namespace ")
        .nth(1)
        .and_then(|s| s.split("-node0").next())
        .expect("namespace name in the report");
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(!left.contains(prefix), "namespaces left behind:\n{left}");
}

/// Ctrl-C while the root demo builds its namespaces and waits: the terminal's SIGINT reaches
/// wrenc, its `ip` commands and the nodes alike. wrenc says "interrupted" (not the failure of
/// a command the signal killed) and leaves no namespace behind.
#[test]
fn ctrl_c_during_the_demo_says_interrupted() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the namespace demo needs root"
    );
    for delay in [Duration::from_millis(150), Duration::from_millis(1200)] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wrenc"))
            .args(["demo", "--nodes", "3"])
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run wrenc demo");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("first line");
        assert!(first.starts_with("wren demo:"), "{first}");
        std::thread::sleep(delay);
        let pgid = child.id() as i32;
        // SAFETY: signalling the process group of our own child, as a terminal's Ctrl-C does.
        assert_eq!(unsafe { libc::kill(-pgid, libc::SIGINT) }, 0);
        let out = child.wait_with_output().expect("wait for wrenc");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "after {delay:?}: {err}");
        assert_eq!(err.trim(), "wrenc: interrupted", "after {delay:?}");
        let left = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns list");
        let left = String::from_utf8_lossy(&left.stdout);
        assert!(
            !left.contains(&format!("wd{pgid}-")),
            "namespaces left behind after {delay:?}:\n{left}"
        );
    }
}
