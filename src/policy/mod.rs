//! What is imported, exported and reflected: Calico's rules (`calico`), per-peer BGPFilter
//! rules (`filter`) and BGP's own propagation rules (`reflect`).

pub mod calico;
pub mod filter;
pub mod reflect;
