//! The names tests reached as `common::…` before the shared harness (tests/harness/) took
//! them over; kept so that `mod common;` keeps working.

#[path = "../harness/mod.rs"]
mod harness;

pub use harness::netns::{
    clear_stale_namespace, del_netns, del_netns_if_empty, ip, netns_names, netns_pids,
};
pub use harness::peers::{bird16_dir, frr_args, frr_bgpd, frr_zebra};
pub use harness::proc::{
    ProcId, Procs, clear_stale_dirs, cli, holds_for, pid_gone, require_binaries, require_root,
    run_ok, signal_group, system_bin, tail_file, wait_until,
};
