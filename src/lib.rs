//! wren: a BGP speaker for Kubernetes nodes, a drop-in for Calico's BIRD.

pub mod accept;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod fib;
pub mod notify;
pub mod policy;
pub mod prefix_map;
pub mod rib;
pub mod session;
pub mod wire;
