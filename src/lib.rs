//! wren: a BGP speaker for Kubernetes nodes, a drop-in for Calico's BIRD.
//!
//! # The map: from TCP bytes to a kernel route
//!
//! A handful of tokio tasks and three threads, joined by channels; the RIB has one owner, the
//! daemon's event loop, so nothing in it is locked.
//!
//! ```text
//!   TCP :179 ─► session::listen (task per socket) ─ accepted connection, by peer address ─┐
//!                                                                                         ▼
//!   peer task (session::peer, one per peer; a writer task beside it)                       │
//!     bytes ─► wire (decode) ─► session::fsm (pure) ─► actions: reply, timers, …           │
//!        │ ToRib: Up, Update, Down, Refresh            ▲ ToPeer: Start, Stop, Send(encoded │
//!        │ (one bounded queue for all peers:           │ UPDATEs), RequestRefresh,         │
//!        │  a slow RIB stops the reading, TCP          │ Incoming(connection) ◄────────────┘
//!        ▼  holds the peer back)                        │
//!   daemon event loop (daemon::event_loop, one task) ───┘
//!     rib: import policy (policy) ─► decision process (rib::best, RFC 4271 §9.1)
//!          ─► export policy ─► update groups (rib::adj_out: each UPDATE encoded once for
//!             all members) ─► ToPeer::Send to each member
//!        │ kernel changes, as data (prefix ─► wanted route or none), in slices; the loop
//!        │ stops taking ToRib while the FIB is a backlog behind
//!        ▼
//!   FIB thread "wren-fib" (fib): batched rtnetlink requests (fib::netlink) ─► kernel table
//!        ▲ link, address and route notifications: thread "wren-fib-watch"
//!        └─► back to the loop: routes to send again (deleted behind our back), other
//!            protocols' routes (`learn`), interfaces changed (next hops to resolve again)
//!
//!   BFD thread "wren-bfd" (bfd: UDP 3784/4784, every session's timers) ─ state per
//!   session (watch) ─► its peer task: Down ends the session at once (RFC 5882)
//!
//!   control socket (control::server, task per client) ─ command + reply channel ─► loop
//!     (daemon::control acts: configure, enable, disable, down; control::commands renders)
//!   metrics endpoint (control::metrics) ─ request + reply channel ─► loop
//!   SIGHUP / `configure`: config (read and checked) ─► daemon::reload (running vs new)
//!   etcd ─ range read, one watch (datastore::etcd) ─► datastore::watch task: Calico's
//!     resources, this node's model decided (config::datastore) ─ newest state only (a
//!     tokio watch channel) ─► loop: daemon::datastore ─► daemon::reload's apply (running
//!     vs new) ─► the saved state (datastore::state, written off the loop)
//! ```
//!
//! Modules: [`wire`] the codec; [`session`] the state machine, peer tasks, listener and
//! socket options; [`bfd`] failure detection for the sessions; [`accept`] how every accept loop backs off; [`rib`] and [`policy`] the
//! table, decision and Calico's rules; [`attrs`] the interned attribute sets both read;
//! [`prefix_map`] the prefix-keyed map both the RIB and the FIB use; [`route`] what the RIB
//! hands the FIB and the FIB reports back (kernel routes, learned routes, interfaces,
//! figures), and nothing more; [`fib`] the kernel table; [`control`] the CLI protocol and
//! metrics; [`config`] the configuration model, its TOML source, checks and reload diff;
//! [`datastore`] the etcd client and the task that follows Calico's datastore;
//! [`daemon`] the wiring and the event loop; [`notify`] systemd; [`demo`] the README's demo;
//! [`sys`] every call into the C library (the only `unsafe` in the crate).

#![deny(unsafe_code)]

pub mod accept;
pub mod attrs;
pub mod bfd;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datastore;
pub mod demo;
pub mod fib;
pub mod model;
pub mod notify;
pub mod personality;
pub mod policy;
pub mod prefix_map;
pub mod rib;
pub mod route;
pub mod session;
#[allow(unsafe_code)]
pub mod sys;
pub mod wire;
