//! wren: a BGP speaker for Kubernetes nodes, a drop-in for Calico's BIRD.

pub mod wire;
