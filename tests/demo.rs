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
