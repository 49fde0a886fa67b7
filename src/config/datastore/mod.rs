//! The Calico datastore source: Calico's resources as stored in etcd (`resources`), its
//! label selectors (`selector`), and the decisions confd makes for one node, turning those
//! resources into the configuration model (`decide`), and the `[datastore]` table that says
//! where the datastore is (`settings`). The etcd client and the watch that fill `Resources`
//! are `crate::datastore`'s.

pub mod decide;
pub mod resources;
pub mod selector;
pub mod settings;

pub use decide::{Decision, decide};
pub use resources::Resources;
pub use settings::{Endpoint, Local, Settings};
