//! The Calico datastore source: Calico's resources as stored in etcd (`resources`), its
//! label selectors (`selector`), and the decisions confd makes for one node, turning those
//! resources into the configuration model (`decide`). The etcd v3 reader that fills
//! `Resources` (a range read, then a watch) and the daemon's wiring come next.

pub mod decide;
pub mod resources;
pub mod selector;

pub use decide::{Decision, decide};
pub use resources::Resources;
