//! The one harness of the integration tests and the benches: network namespaces, processes,
//! a raw BGP speaker on wren's own codec, many simulated BFD peers on its BFD state machine,
//! and the BGP daemons (wrend, BIRD 1.6 and 2, FRR, GoBGP, OpenBGPD) with their config
//! writers and CLIs; etcd with Calico's resources in it; for the benches also their start,
//! the report header and the kernel side (the routes they install and the kernel's floor).
//!
//! Tests include it with `mod harness;`, benches with
//! `#[path = "../tests/harness/mod.rs"] mod harness;`. Each binary uses a part of it, so
//! unused items are expected per binary.
#![allow(dead_code)]

pub mod bench;
pub mod bfdsim;
pub mod bgp;
pub mod calico;
pub mod etcd;
pub mod feeder;
pub mod kernel;
pub mod lab;
pub mod loopback;
pub mod netns;
pub mod peers;
pub mod proc;
pub mod resources;
pub mod wrend;
