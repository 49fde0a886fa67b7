//! What an operator or a socket client types: configuration text and control commands.
//! Nothing may panic, whatever the bytes.
//!
//! Input: one selector byte — even: the rest is a configuration file; odd: the rest is
//! control-socket command lines, run against a node holding a few own routes.

#![no_main]

use std::net::Ipv4Addr;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use wren::config::Config;
use wren::control::commands::{Context, execute};
use wren::rib::Rib;

const NODE: &str = r#"
router_id = "198.51.100.1"
asn = 64512
originate = ["198.18.1.0/26", "2001:db8:1::/122"]
services = ["203.0.113.0/24"]
[[pool]]
cidr = "198.18.0.0/16"
[[peer]]
name = "Mesh_198_51_100_2"
address = "198.51.100.2"
asn = 64512
"#;

thread_local! {
    static RIB: Rib = Rib::new(&Config::parse(NODE).expect("the fixed config parses"));
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if selector % 2 == 0 {
        let _ = Config::parse(&text);
        return;
    }
    RIB.with(|rib| {
        let ctx = Context {
            router_id: Ipv4Addr::new(198, 51, 100, 1),
            started: SystemTime::UNIX_EPOCH,
            reconfigured: SystemTime::UNIX_EPOCH,
            peers: &[],
            rib,
            recovery: Some((10, 120)),
            fib: None,
            datastore: None,
            bfd: &[],
            restart_timers: Vec::new(),
        };
        for line in text.lines() {
            let _ = execute(line, &ctx);
        }
    });
});
