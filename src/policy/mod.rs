//! What is imported, exported and reflected: Calico's rules (`calico`) and BGP's own
//! propagation rules (`reflect`).

pub mod calico;
pub mod reflect;
