//! The commands: `show status`, `show protocols [all] [NAME]`, `show route [count]`, in
//! BIRD 1.6.8's layout (contract §4.3), which Calico's parsers read.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::attrs::{AttrSet, PathSource};
use crate::bfd;
use crate::model::{ImportLimit, PeerDefaults};
use crate::rib::table::Path;
use crate::rib::{Rib, best};
use crate::route::{Interfaces, KernelStats};
use crate::session::{PeerId, State, Status};
use crate::sys;
use crate::wire::attr::{Origin, SegmentKind};
use crate::wire::{Afi, Capability, Family, Safi};

use super::Line;

/// The version the hello and `show status` report. Calico's reporter takes the text after
/// `BIRD ` as the version only when it starts with `v` (its BIRD says `v0.3.3+birdv1.6.8`).
pub fn version() -> String {
    format!("v{}+wren", env!("CARGO_PKG_VERSION"))
}

/// What the commands read.
pub struct Context<'a> {
    pub router_id: Ipv4Addr,
    pub started: SystemTime,
    pub reconfigured: SystemTime,
    /// Indexed by peer id; `None` for a de-configured peer.
    pub peers: &'a [Option<Status>],
    pub rib: &'a Rib,
    /// While a restart (`-R`) waits for peers' End-of-RIB: seconds left and in all.
    pub recovery: Option<(u64, u64)>,
    /// The kernel side; `None` when wren leaves the kernel alone.
    pub fib: Option<FibView>,
    /// The datastore, when the configuration comes from one.
    pub datastore: Option<&'a crate::datastore::Report>,
    /// BFD sessions (read from the BFD thread only for the commands that show them).
    pub bfd: &'a [bfd::Info],
    /// Peers away under graceful restart: the seconds left of their restart timers
    /// (RFC 4724 §4.2).
    pub restart_timers: Vec<(PeerId, u64)>,
}

/// What the commands read of the FIB thread.
pub struct FibView {
    pub stats: KernelStats,
    /// Nothing queued and nothing refused: the kernel holds what the RIB wants.
    pub in_sync: bool,
}

/// Whether the node has what the network has: End-of-RIB (RFC 4724 §2) from every enabled
/// peer and the kernel in step with the RIB — the signal a node needs before taking pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Convergence {
    pub peers: usize,
    pub end_of_rib: usize,
    /// `None` when the kernel is not written.
    pub kernel_in_sync: Option<bool>,
}

impl Convergence {
    pub fn of(ctx: &Context) -> Convergence {
        let enabled = |id: usize| {
            ctx.peers
                .get(id)
                .is_some_and(|p| p.as_ref().is_some_and(|p| p.enabled))
        };
        let live: Vec<_> = ctx.rib.peers().filter(|(id, _)| enabled(*id)).collect();
        Convergence {
            peers: live.len(),
            end_of_rib: live.iter().filter(|(_, p)| p.synced()).count(),
            kernel_in_sync: ctx.fib.as_ref().map(|f| f.in_sync),
        }
    }

    pub fn converged(&self) -> bool {
        self.end_of_rib == self.peers && self.kernel_in_sync != Some(false)
    }
}

/// What a command asks the daemon to do to a peer (by its index in `Context::peers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Enable(usize),
    Disable(usize),
    Restart(usize),
    /// Ask the peer to send its routes again (ROUTE-REFRESH, RFC 2918).
    ReloadIn(usize),
    /// Send the peer our routes again.
    ReloadOut(usize),
}

/// A reply: its lines and, when it goes on, where (the client's task asks for the next chunk
/// once its socket has taken these lines).
#[derive(Debug)]
pub struct Reply {
    pub lines: Vec<Line>,
    pub more: Option<RouteWalk>,
}

impl From<Vec<Line>> for Reply {
    fn from(lines: Vec<Line>) -> Reply {
        Reply { lines, more: None }
    }
}

/// Runs one command line: the reply (or its first chunk), and what the daemon must do.
pub fn execute(cmd: &str, ctx: &Context) -> (Reply, Vec<Effect>) {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let reply = match words.as_slice() {
        ["show", "status"] => show_status(ctx),
        ["show", "protocols", rest @ ..] => show_protocols(ctx, rest),
        ["show", "route", rest @ ..] => return (show_route(ctx, rest), Vec::new()),
        ["show", "memory"] => show_memory(ctx),
        ["show", "datastore"] => super::datastore::show(ctx.datastore, datetime),
        ["show", "bfd", "sessions"] => show_bfd_sessions(ctx),
        ["enable", name] => return act(ctx, name, 11, "enabled", &[Effect::Enable]),
        ["disable", name] => return act(ctx, name, 9, "disabled", &[Effect::Disable]),
        ["restart", name] => return act(ctx, name, 6, "restarted", &[Effect::Restart]),
        ["reload", name] => {
            return act(
                ctx,
                name,
                15,
                "reloading",
                &[Effect::ReloadIn, Effect::ReloadOut],
            );
        }
        ["reload", "in", name] => return act(ctx, name, 15, "reloading", &[Effect::ReloadIn]),
        ["reload", "out", name] => return act(ctx, name, 15, "reloading", &[Effect::ReloadOut]),
        _ => vec![Line::new(9001, "syntax error")],
    };
    (reply.into(), Vec::new())
}

/// `enable|disable|restart|reload NAME` (or `all`): one `P: done` line per protocol.
fn act(
    ctx: &Context,
    name: &str,
    code: u16,
    done: &str,
    effects: &[fn(usize) -> Effect],
) -> (Reply, Vec<Effect>) {
    let ids: Vec<(usize, &str)> = ctx
        .peers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.as_ref().map(|p| (i, p.name.as_str())))
        .filter(|(_, n)| name == "all" || *n == name)
        .collect();
    if ids.is_empty() {
        return (
            vec![Line::new(9002, format!("{name} is not a protocol"))].into(),
            Vec::new(),
        );
    }
    let mut lines: Vec<Line> = ids
        .iter()
        .map(|(_, n)| Line::new(code, format!("{n}: {done}")))
        .collect();
    lines.push(Line::new(0, ""));
    let effects = ids
        .iter()
        .flat_map(|(i, _)| effects.iter().map(move |e| e(*i)))
        .collect();
    (lines.into(), effects)
}

fn show_status(ctx: &Context) -> Vec<Line> {
    let now = SystemTime::now();
    let mut out = vec![
        Line::new(1000, format!("BIRD {}", version())),
        Line::new(1011, format!("Router ID is {}", ctx.router_id)),
        Line::new(1011, format!("Current server time is {}", datetime(now))),
        Line::new(1011, format!("Last reboot on {}", datetime(ctx.started))),
        Line::new(
            1011,
            format!("Last reconfiguration on {}", datetime(ctx.reconfigured)),
        ),
    ];
    // A continuation of the 1011 block, which calico-node's bird-ready skips like the
    // uptime lines.
    let c = Convergence::of(ctx);
    let kernel = match c.kernel_in_sync {
        Some(true) => ", kernel in sync",
        Some(false) => ", kernel not in sync",
        None => ", kernel not written",
    };
    out.push(Line::new(
        1011,
        format!(
            "Converged: {} (End-of-RIB from {} of {} peers{kernel})",
            if c.converged() { "yes" } else { "no" },
            c.end_of_rib,
            c.peers
        ),
    ));
    if let Some(r) = ctx.datastore {
        out.push(super::datastore::status_line(r));
    }
    // calico-node's bird-ready reads a 0024 line as "graceful restart in progress".
    if let Some((left, total)) = ctx.recovery {
        let waiting = ctx.rib.peers().filter(|(_, p)| !p.synced()).count();
        out.push(Line::new(24, "Graceful restart recovery in progress"));
        out.push(Line::new(
            24,
            format!("  Waiting for {waiting} protocols to recover"),
        ));
        out.push(Line::new(24, format!("  Wait timer is {left}/{total}")));
    }
    out.push(Line::new(13, "Daemon is up and running"));
    out
}

fn show_protocols(ctx: &Context, args: &[&str]) -> Vec<Line> {
    let (all, name) = match args {
        [] => (false, None),
        ["all"] => (true, None),
        ["all", n] => (true, Some(*n)),
        [n] => (false, Some(*n)),
        _ => return vec![Line::new(9001, "syntax error")],
    };
    // A peer's index in `peers` is its id in the RIB.
    let selected: Vec<(usize, &Status)> = ctx
        .peers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
        .filter(|(_, p)| name.is_none_or(|n| p.name == n))
        .collect();
    let locals: Vec<String> = local_protocols(ctx)
        .into_iter()
        .filter(|(n, _, _)| name.is_none_or(|want| want == *n))
        .map(|(n, proto, state)| row(n, proto, state, ctx.started, ""))
        .collect();
    if let Some(n) = name
        && selected.is_empty()
        && locals.is_empty()
    {
        return vec![Line::new(9002, format!("{n} is not a protocol"))];
    }
    let mut out = vec![Line::new(
        2002,
        "name     proto    table    state  since       info",
    )];
    out.extend(locals.into_iter().map(|r| Line::new(1002, r)));
    for (id, p) in selected {
        out.push(Line::new(1002, protocol_row(p, ctx.recovery.is_some())));
        if all {
            let routes = Routes {
                imported: ctx.rib.received(id),
                exported: ctx.rib.advertised(id),
                preferred: ctx.rib.preferred(id),
            };
            let peer = ctx.rib.peer(id);
            let local = Local {
                ibgp: peer.is_some_and(|x| !x.ebgp(ctx.rib.speaker.asn)),
                multihop: peer.is_some_and(|x| x.config.multihop(ctx.rib.speaker.asn)),
                rr_client: peer.is_some_and(|x| x.config.settings.rr_client),
                source: peer.and_then(|x| x.local).map(|a| a.ip().to_canonical()),
                settings: peer.map(|x| &x.config.settings),
                // BIRD 1.6's `gr_active`: stale routes kept, until End-of-RIB.
                restarting: peer.is_some_and(|x| x.stale_time().is_some()),
                restart_timer: (ctx.restart_timers.iter())
                    .find(|(p, _)| *p == id)
                    .map(|(_, left)| *left),
            };
            out.extend(
                protocol_details(p, &routes, &local, ctx.rib.import_limit(id))
                    .into_iter()
                    .map(|t| Line::new(1006, t)),
            );
        }
    }
    out.push(Line::new(0, ""));
    out
}

/// BIRD 2's `show bfd sessions` (`bfd_show_sessions`), under the name BIRD gives an
/// unnamed `protocol bfd`: Since in BIRD 2's default protocol time format, and no Timeout
/// (0.000) while no packet from the peer counts, before the first and after a timeout
/// (BIRD's remote multiplier is 0 then). wren runs BFD for the peers that have it on, each
/// with its session: without a session there is no BFD protocol, which BIRD answers with
/// `proto_iterate_named`'s parse error.
fn show_bfd_sessions(ctx: &Context) -> Vec<Line> {
    if ctx.bfd.is_empty() {
        return vec![Line::new(9001, "There is no BFD protocol running")];
    }
    let mut out = vec![
        Line::new(1020, "bfd1:"),
        Line::new(
            1020,
            format!(
                "{:<25} {:<10} {:<10} {:<12}  {:>8} {:>8}",
                "IP address", "Interface", "State", "Since", "Interval", "Timeout"
            ),
        ),
    ];
    for s in ctx.bfd {
        out.push(Line::new(
            1020,
            format!(
                "{:<25} {:<10} {:<10} {:<12}  {:>7.3}  {:>7.3}",
                s.peer.to_string(),
                s.interface.as_deref().unwrap_or("---"),
                s.state.name(),
                since_ms(s.since),
                s.interval.as_secs_f64(),
                match s.remote_disc {
                    0 => 0.0,
                    _ => s.timeout.as_secs_f64(),
                }
            ),
        ));
    }
    out.push(Line::new(0, ""));
    out
}

/// `show memory` in BIRD's layout. "Routing tables" is what the RIB's table holds (its
/// allocated slots and the path lists of prefixes with several paths), "Route attributes"
/// what the interned attribute sets hold; both shrink as routes go. "Total" is the heap
/// in use (the allocator's count of bytes handed out and not freed: not RSS, which also
/// counts code, stacks and free pages not yet returned), and "Protocols" the rest of it:
/// sessions and their buffers, queued UPDATEs, the FIB's record of the kernel, the RIB's
/// work space.
fn show_memory(ctx: &Context) -> Vec<Line> {
    let (tables, attributes) = ctx.rib.memory();
    let total = sys::heap_in_use().unwrap_or(0).max(tables + attributes);
    let rows = [
        ("Routing tables:", tables),
        ("Route attributes:", attributes),
        ("Protocols:", total - tables - attributes),
        ("Total:", total),
    ];
    let mut out = vec![Line::new(1018, "BIRD memory usage")];
    out.extend(
        rows.iter()
            .map(|(what, bytes)| Line::new(1018, format!("{what:<17} {}", size(*bytes)))),
    );
    out.push(Line::new(0, ""));
    out
}

/// BIRD's `print_size`: the value in B, kB, MB or GB, whichever keeps it under 10000,
/// rounded to the nearest unit.
fn size(mut v: usize) -> String {
    let mut unit = 0;
    while v >= 10_000 && unit < 3 {
        v = (v + 512) / 1024;
        unit += 1;
    }
    format!("{v:>4} {}", ["B", "kB", "MB", "GB"][unit])
}

/// The protocols besides the peers that Calico's BIRD runs, as `(name, proto, state)` in
/// its `bird.cfg`'s order (contract §2.1: `bird_aggr.cfg`'s static first, then kernel and
/// device): `static1` when the node originates routes, `kernel1` when wren writes the
/// kernel (`wait`, as BIRD's kernel protocol with `graceful restart`, until a `-R` start's
/// recovery ends), and `device1`.
fn local_protocols(ctx: &Context) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut v = Vec::new();
    if ctx.rib.originates() {
        v.push(("static1", "Static", "up"));
    }
    if ctx.fib.is_some() {
        let state = if ctx.recovery.is_some() { "wait" } else { "up" };
        v.push(("kernel1", "Kernel", state));
    }
    v.push(("device1", "Device", "up"));
    v
}

/// `%-8s %-8s %-8s %-5s  %-10s  %s`: name, proto, table, state, since, info.
fn row(name: &str, proto: &str, state: &str, at: SystemTime, info: &str) -> String {
    format!(
        "{name:<8} {proto:<8} {:<8} {state:<5}  {:<10}  {info}",
        "master",
        since(at)
    )
}

/// A BGP peer's row (see [`row`]). The state is
/// BIRD 1.6's `proto_state_name`: `down` when disabled, `start` until Established, then
/// `wait` while a `-R` start's recovery holds back every graceful-restart protocol's export
/// (until every End-of-RIB is in or the wait timer fires), and `up`.
fn protocol_row(p: &Status, recovering: bool) -> String {
    let state = match p.state {
        _ if !p.enabled => "down",
        State::Established if recovering => "wait",
        State::Established => "up",
        _ => "start",
    };
    row(&p.name, "BGP", state, p.since, &bgp_info(p))
}

/// The BGP state word padded to 14 columns, then the last error with BIRD's class prefix.
fn bgp_info(p: &Status) -> String {
    if !p.enabled {
        // A disabled protocol shows only its error, if any (contract §4.3).
        return p.last_error.clone().unwrap_or_default();
    }
    let word = match p.state {
        State::Idle => "Idle",
        State::Connect => "Connect",
        State::Active => "Active",
        State::OpenSent => "OpenSent",
        State::OpenConfirm => "OpenConfirm",
        State::Established => "Established",
    };
    let err = match (&p.last_error, p.state) {
        (Some(e), s) if s != State::Established => e.clone(),
        _ => String::new(),
    };
    format!("{word:<14}{err}")
}

/// A protocol's route counts as BIRD's `Routes:` line gives them: paths taken in, paths
/// sent, and prefixes whose best route is this protocol's.
struct Routes {
    imported: usize,
    exported: usize,
    preferred: usize,
}

/// Our side of a session, for BIRD's `Session:` and `Source address:` lines, and the
/// peer's configuration as the lines before them show it.
struct Local<'a> {
    ibgp: bool,
    /// BIRD's `multihop` (iBGP by default, unless `direct`): `model::Peer::multihop`.
    multihop: bool,
    rr_client: bool,
    source: Option<IpAddr>,
    settings: Option<&'a PeerDefaults>,
    /// The peer restarts gracefully: its routes are kept, stale (RFC 4724 §4.2).
    restarting: bool,
    /// Seconds left of its restart timer while it is away.
    restart_timer: Option<u64>,
}

/// The detail lines of `show protocols all` for a BGP peer, as BIRD 1.6's `proto_cmd_show`
/// and `bgp_show_proto_info` print them: the description only when one is set, the
/// preference (wren has no `preference` option: BGP's default), the filters as written.
fn protocol_details(
    p: &Status,
    r: &Routes,
    local: &Local,
    limit: Option<(ImportLimit, bool)>,
) -> Vec<String> {
    let mut d = Vec::new();
    let defaults = PeerDefaults::default();
    let settings = local.settings.unwrap_or(&defaults);
    if let Some(text) = &settings.description {
        d.push(format!("  Description:    {text}"));
    }
    d.extend([
        format!("  Preference:     {}", best::BGP),
        format!("  Input filter:   {}", settings.import_filter),
        format!("  Output filter:  {}", settings.export_filter),
    ]);
    // BIRD 1.6's `proto_show_limit`, between the filters and the route counts.
    if let Some((l, hit)) = limit {
        let hit = if hit { " [HIT]" } else { "" };
        d.push(format!("  {:<16}{}{hit}", "Import limit:", l.max));
        d.push(format!("    Action:       {}", l.action.name()));
    }
    d.extend([
        format!(
            "  Routes:         {} imported, {} exported, {} preferred",
            r.imported, r.exported, r.preferred
        ),
        format!("  BGP state:          {}", bgp_info(p).trim_end()),
        format!("    Neighbor address: {}", p.address),
        format!("    Neighbor AS:      {}", p.asn),
    ]);
    // BIRD 1.6's `bgp_show_proto_info`: the restart timer shows only while the session is
    // down (`PS_START`).
    if local.restarting {
        d.push("    Neighbor graceful restart active".to_string());
    }
    if let Some(left) = local.restart_timer.filter(|_| p.session.is_none()) {
        d.push(format!("    Restart timer:    {left}/-"));
    }
    if let Some(s) = &p.session {
        d.push(format!("    Neighbor ID:      {}", s.remote.bgp_id));
        let mut caps = Vec::new();
        if s.route_refresh {
            caps.push("refresh");
        }
        if s.enhanced_route_refresh {
            caps.push("enhanced-refresh");
        }
        // BIRD: able when the capability lists a family whose state it keeps, else aware.
        if let Some(g) = &s.peer_graceful_restart {
            caps.push(if g.families.is_empty() {
                "restart-aware"
            } else {
                "restart-able"
            });
        }
        // Long-lived graceful restart (RFC 9494), likewise.
        if let Some(families) = s.remote.capabilities().find_map(|c| match c {
            Capability::LongLivedGracefulRestart { families } => Some(families),
            _ => None,
        }) {
            caps.push(if families.is_empty() {
                "llgr-aware"
            } else {
                "llgr-able"
            });
        }
        if s.rx.four_octet_as {
            caps.push("AS4");
        }
        if s.rx.add_path_ipv4 || s.rx.add_path_ipv6 {
            caps.push("add-path-rx");
        }
        if s.tx.add_path_ipv4 || s.tx.add_path_ipv6 {
            caps.push("add-path-tx");
        }
        d.push(format!("    Neighbor caps:    {}", caps.join(" ")));
        let mut session = vec![if local.ibgp { "internal" } else { "external" }];
        for (on, word) in [
            (local.multihop, "multihop"),
            (local.rr_client, "route-reflector"),
            (s.rx.four_octet_as, "AS4"),
            (s.rx.add_path_ipv4 || s.rx.add_path_ipv6, "add-path-rx"),
            (s.tx.add_path_ipv4 || s.tx.add_path_ipv6, "add-path-tx"),
        ] {
            if on {
                session.push(word);
            }
        }
        d.push(format!("    Session:          {}", session.join(" ")));
        if let Some(a) = local.source {
            d.push(format!("    Source address:   {a}"));
        }
        d.push(format!("    Hold timer:       {}", s.hold_time));
        d.push(format!("    Keepalive timer:  {}", s.keepalive));
    }
    if let Some(e) = &p.last_error {
        d.push(format!("    Last error:       {e}"));
    }
    d.push(String::new());
    d
}

/// Prefixes one pass over the table picks for `show route` (the pass reads every key once),
/// kept in the walk until shown: at 1M routes, 250 passes of a few milliseconds each.
const SCAN: usize = 4096;
/// Lines one chunk of `show route` holds at most (plus one prefix's): the daemon's work
/// between two chunks, and about 48 KiB of text held for a client that does not read.
const CHUNK_LINES: usize = 512;

/// `show route [all] [protocol NAME]` over the whole table, shown a chunk at a time in prefix
/// order as the client takes it (as BIRD's `rt_show_cont` walks its table with an iterator):
/// the walk holds which prefixes come next, never rows, so a client that does not read costs
/// one chunk. Routes that change during the walk are shown as they are when their chunk is
/// made.
#[derive(Debug)]
pub struct RouteWalk {
    all: bool,
    protocol: Option<String>,
    /// Prefixes the last pass picked and not yet shown, in order.
    next: VecDeque<(Family, IpNet)>,
    /// The last prefix picked: the next pass starts after it.
    after: Option<(Family, IpNet)>,
    /// The last pass reached the end of the table.
    passed_end: bool,
}

/// The next chunk of a walk: at most one pass over the table and `CHUNK_LINES` lines.
pub fn resume(mut walk: RouteWalk, ctx: &Context) -> Reply {
    let rows = Rows::new(ctx);
    let mut lines = Vec::new();
    let mut passed = false;
    while lines.len() < CHUNK_LINES {
        let Some(key) = walk.next.pop_front() else {
            if walk.passed_end || passed {
                break;
            }
            let keys = ctx.rib.table.first_after(walk.after.as_ref(), SCAN);
            walk.passed_end = keys.len() < SCAN;
            walk.after = keys.last().copied().or(walk.after);
            walk.next = keys.into();
            passed = true;
            continue;
        };
        rows.of(&key, walk.all, walk.protocol.as_deref(), &mut lines);
    }
    if walk.next.is_empty() && walk.passed_end {
        lines.push(Line::new(0, ""));
        return lines.into();
    }
    Reply {
        lines,
        more: Some(walk),
    }
}

/// `show route [all] [count] [for ADDR] [PREFIX] [protocol NAME]`.
fn show_route(ctx: &Context, args: &[&str]) -> Reply {
    let syntax = || vec![Line::new(9001, "syntax error")].into();
    let (mut all, mut count) = (false, false);
    let mut exact: Option<IpNet> = None;
    let mut lookup: Option<IpAddr> = None;
    let mut protocol: Option<&str> = None;
    let mut words = args.iter();
    while let Some(w) = words.next() {
        match (*w, words.as_slice().first()) {
            ("all", _) => all = true,
            ("count", _) => count = true,
            ("for", Some(x)) => {
                words.next();
                match x
                    .parse::<IpAddr>()
                    .ok()
                    .or_else(|| x.parse::<IpNet>().ok().map(|n| n.addr()))
                {
                    Some(a) => lookup = Some(a),
                    None => return syntax(),
                }
            }
            ("protocol", Some(name)) => {
                words.next();
                protocol = Some(name);
            }
            (other, _) => match other.parse::<IpNet>() {
                Ok(n) => exact = Some(n),
                Err(_) => return syntax(),
            },
        }
    }
    // `for ADDR`: the longest prefix holding the address (one lookup per length).
    let longest = lookup.and_then(|a| ctx.rib.table.longest_match(a));
    if lookup.is_some() && longest.is_none() {
        return vec![Line::new(8001, "Network not in table")].into();
    }
    // One prefix is looked up directly; the whole table is counted in one pass without
    // formatting a row, or shown a chunk at a time.
    let keys: Vec<(Family, IpNet)> = match (exact, longest) {
        (Some(net), _) => {
            let afi = match net {
                IpNet::V4(_) => Afi::IPV4,
                IpNet::V6(_) => Afi::IPV6,
            };
            [Safi::UNICAST, Safi::MULTICAST]
                .into_iter()
                .map(|safi| (Family { afi, safi }, net.trunc()))
                .filter(|k| ctx.rib.table.contains_key(k))
                .collect()
        }
        (None, Some(key)) => vec![key],
        (None, None) if count => {
            // BIRD's counters: routes shown, of the routes and networks walked.
            let (mut shown, mut routes, mut networks) = (0, 0, 0);
            for e in ctx.rib.table.values() {
                let paths = e.paths();
                shown += paths
                    .iter()
                    .filter(|p| protocol.is_none_or(|want| protocol_of(ctx, p).0 == want))
                    .count();
                routes += paths.len();
                networks += 1;
            }
            return vec![route_count(shown, routes, networks)].into();
        }
        (None, None) => {
            let walk = RouteWalk {
                all,
                protocol: protocol.map(str::to_string),
                next: VecDeque::new(),
                after: None,
                passed_end: false,
            };
            return resume(walk, ctx);
        }
    };
    let rows = Rows::new(ctx);
    let mut out = Vec::new();
    let mut routes = 0;
    for key in &keys {
        routes += rows.of(key, all, protocol, &mut out);
    }
    if routes == 0 {
        return vec![Line::new(8001, "Network not in table")].into();
    }
    if count {
        // BIRD 1.6 counts only whole-table walks: a prefix's count is an empty reply.
        return vec![Line::new(0, "")].into();
    }
    out.push(Line::new(0, ""));
    out.into()
}

/// BIRD 1.6's `show route count`: `SHOWN of ROUTES routes for NETWORKS networks`, the routes
/// and networks of the table walked, whether shown or not.
fn route_count(shown: usize, routes: usize, networks: usize) -> Line {
    Line::new(
        14,
        format!("{shown} of {routes} routes for {networks} networks"),
    )
}

/// The protocol a path is from, as BIRD names it, and its peer's status for a BGP path.
fn protocol_of<'a>(ctx: &'a Context, path: &Path) -> (&'a str, Option<&'a Status>) {
    let peer = path
        .source()
        .peer_id()
        .and_then(|id| ctx.peers.get(id))
        .and_then(Option::as_ref);
    let name = match (path.source(), peer) {
        (PathSource::Kernel, _) => "kernel1",
        (_, Some(p)) => p.name.as_str(),
        _ => "static1",
    };
    (name, peer)
}

/// What route rows read, worked out once a reply or chunk: the interfaces next hops are on,
/// and each protocol's time (one clock reading for all its rows).
struct Rows<'c, 'a> {
    ctx: &'c Context<'a>,
    ifs: Option<&'c Interfaces>,
    /// Each peer's `since`, by id.
    peers_since: Vec<String>,
    /// The kernel and static protocols': the daemon's start.
    started: String,
}

impl<'c, 'a> Rows<'c, 'a> {
    fn new(ctx: &'c Context<'a>) -> Rows<'c, 'a> {
        Rows {
            ctx,
            ifs: ctx.rib.interfaces(),
            peers_since: ctx
                .peers
                .iter()
                .map(|p| p.as_ref().map(|p| since(p.since)).unwrap_or_default())
                .collect(),
            started: since(ctx.started),
        }
    }

    /// The rows of a prefix's paths from `protocol` (every protocol when `None`), with their
    /// attributes when `all`: the number of paths shown.
    fn of(
        &self,
        key: &(Family, IpNet),
        all: bool,
        protocol: Option<&str>,
        out: &mut Vec<Line>,
    ) -> usize {
        let ctx = self.ctx;
        let Some(entry) = ctx.rib.table.get(key) else {
            return 0;
        };
        let net = key.1;
        let refused = ctx
            .fib
            .as_ref()
            .is_some_and(|f| f.stats.refused.contains_key(&net));
        let mut shown = 0;
        for (rank, path) in entry.paths().iter().enumerate() {
            let (name, peer) = protocol_of(ctx, path);
            if protocol.is_some_and(|p| p != name) {
                continue;
            }
            let prefix = if shown == 0 {
                net.to_string()
            } else {
                String::new()
            };
            // BIRD marks the route in the kernel `*`, or `!` when the kernel refused it.
            let primary = match (rank, refused) {
                (0, true) => " !",
                (0, false) => " *",
                _ => "",
            };
            let started = &self.started;
            let row = match (path.source(), peer) {
                (PathSource::Kernel, _) => format!(
                    "{prefix:<18} {} [kernel1 {started}]{primary} (10)",
                    kernel_via(&path.attrs),
                ),
                (_, Some(peer)) => {
                    let since = path
                        .source()
                        .peer_id()
                        .and_then(|id| self.peers_since.get(id))
                        .map_or("", String::as_str);
                    route_row(peer, since, &prefix, path, primary, self.ifs)
                }
                _ => format!("{prefix:<18} blackhole [static1 {started}]{primary} (200)"),
            };
            out.push(Line::new(1007, row));
            if all {
                out.extend(route_details(path));
            }
            shown += 1;
        }
        shown
    }
}

/// `show route all` attribute lines, as BIRD 1.6 prints them.
fn route_details(path: &Path) -> Vec<Line> {
    match path.source() {
        PathSource::Local => return vec![Line::new(1008, "\tType: static unicast univ")],
        PathSource::Kernel => {
            let mut d = vec![Line::new(1008, "\tType: inherit unicast univ")];
            if let Some(m) = path.attrs.krt_metric {
                d.push(Line::new(1012, format!("\tKernel.metric: {m}")));
            }
            return d;
        }
        PathSource::Peer(_) => {}
    }
    let a = &path.attrs;
    let origin = match a.origin {
        Origin::Igp => "IGP",
        Origin::Egp => "EGP",
        Origin::Incomplete => "Incomplete",
    };
    let mut d = vec![
        format!("\tBGP.origin: {origin}"),
        format!("\tBGP.as_path: {}", as_path_text(a)),
        format!(
            "\tBGP.next_hop: {}",
            a.next_hop.map_or_else(String::new, |n| n.to_string())
        ),
    ];
    if let Some(m) = a.med {
        d.push(format!("\tBGP.med: {m}"));
    }
    if let Some(lp) = a.local_pref {
        d.push(format!("\tBGP.local_pref: {lp}"));
    }
    if let Some(o) = a.originator_id {
        d.push(format!("\tBGP.originator_id: {o}"));
    }
    if !a.cluster_list.is_empty() {
        let ids: Vec<String> = a.cluster_list.iter().map(|c| c.to_string()).collect();
        d.push(format!("\tBGP.cluster_list: {}", ids.join(" ")));
    }
    if !a.communities.is_empty() {
        let cs: Vec<String> = a
            .communities
            .iter()
            .map(|c| format!("({})", c.to_string().replace(':', ",")))
            .collect();
        d.push(format!("\tBGP.community: {}", cs.join(" ")));
    }
    if !a.large_communities.is_empty() {
        let cs: Vec<String> = a
            .large_communities
            .iter()
            .map(|c| format!("({})", c.to_string().replace(':', ", ")))
            .collect();
        d.push(format!("\tBGP.large_community: {}", cs.join(" ")));
    }
    let mut out = vec![Line::new(1008, "\tType: BGP unicast univ")];
    out.extend(d.into_iter().map(|t| Line::new(1012, t)));
    out
}

fn as_path_text(a: &AttrSet) -> String {
    let mut parts = Vec::new();
    for s in &a.as_path {
        let asns: Vec<String> = s.asns.iter().map(u32::to_string).collect();
        match s.kind {
            SegmentKind::Sequence => parts.push(asns.join(" ")),
            _ => parts.push(format!("{{{}}}", asns.join(" "))),
        }
    }
    parts.join(" ")
}

/// `%-18s via NH [PROTO SINCE] * (100/0) [ORIGIN-AS ORIGIN]`.
/// A learned kernel route's next hop as BIRD shows it: `via GW on IF`, `dev IF`, or its
/// type when it has neither (a blackhole).
fn kernel_via(a: &AttrSet) -> String {
    match (a.next_hop, &a.device) {
        (Some(gw), Some(dev)) => format!("via {gw} on {dev}"),
        (Some(gw), None) => format!("via {gw}"),
        (None, Some(dev)) => format!("dev {dev}"),
        (None, None) => "blackhole".into(),
    }
}

/// A BGP path's row; `since` is the peer's protocol time.
fn route_row(
    peer: &Status,
    since: &str,
    prefix: &str,
    path: &Path,
    primary: &str,
    ifs: Option<&Interfaces>,
) -> String {
    let a = &path.attrs;
    // BIRD shows the origin AS: the last AS of the path.
    let origin_as = a
        .as_path
        .last()
        .and_then(|s| s.asns.last())
        .map_or_else(String::new, |asn| format!("AS{asn}"));
    let origin = match a.origin {
        Origin::Igp => 'i',
        Origin::Egp => 'e',
        Origin::Incomplete => '?',
    };
    // `via NH on IF` (contract §4.3): the interface of the connected subnet holding the next
    // hop, as BIRD's recursive resolution finds it.
    let via = match a.next_hop {
        None => "unreachable".to_string(),
        Some(n) => match ifs.and_then(|i| i.device(n)) {
            Some(dev) => format!("via {n} on {dev}"),
            None => format!("via {n}"),
        },
    };
    let stale = if path.stale() { "s" } else { "" };
    format!(
        "{prefix:<18} {via} [{} {since}]{primary} (100{stale}/0) [{origin_as}{origin}]",
        peer.name,
    )
}

/// BIRD's protocol time: `HH:MM:SS` when less than 20 hours ago, else `YYYY-MM-DD` (UTC).
fn since(t: SystemTime) -> String {
    let age = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (date, time) = civil(t);
    if age < 20 * 3600 { time } else { date }
}

/// BIRD 2's protocol time (its default `timeformat protocol iso short ms`): `since`'s with
/// milliseconds, `HH:MM:SS.mmm`, when less than 20 hours ago.
fn since_ms(t: SystemTime) -> String {
    let s = since(t);
    match s.contains(':') {
        true => {
            let ms = t
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_millis());
            format!("{s}.{ms:03}")
        }
        false => s,
    }
}

fn datetime(t: SystemTime) -> String {
    let (date, time) = civil(t);
    format!("{date} {time}")
}

/// Local calendar date and time of day, as BIRD prints them (its `since` and `show status`
/// use local time; containers usually run in UTC).
fn civil(t: SystemTime) -> (String, String) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0);
    let Some(tm) = sys::local_time(secs) else {
        return ("1970-01-01".into(), "00:00:00".into());
    };
    (
        format!(
            "{:04}-{:02}-{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday
        ),
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Config, FilterForm};
    use std::time::Duration;

    #[test]
    fn civil_dates_in_local_time() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_510_641); // 2026-11-24 08:57:21 UTC
        let (date, time) = civil(t);
        let tm = sys::local_time(1_795_510_641).expect("a representable time");
        let utc_secs = 8 * 3600 + 57 * 60 + 21;
        let local_secs = i64::from(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
        assert_eq!(
            (local_secs - utc_secs - tm.tm_gmtoff).rem_euclid(86400),
            0,
            "{date} {time}"
        );
        assert_eq!((date.len(), time.len()), (10, 8));
        if tm.tm_gmtoff == 0 {
            assert_eq!((date.as_str(), time.as_str()), ("2026-11-24", "08:57:21"));
        }
    }

    /// What the commands read, for a RIB and peers.
    fn context<'a>(rib: &'a Rib, peers: &'a [Option<Status>]) -> Context<'a> {
        Context {
            router_id: Ipv4Addr::LOCALHOST,
            started: SystemTime::now(),
            reconfigured: SystemTime::now(),
            peers,
            rib,
            recovery: None,
            fib: None,
            datastore: None,
            bfd: &[],
            restart_timers: Vec::new(),
        }
    }

    fn status(state: State, err: Option<&str>) -> Status {
        Status {
            name: "Mesh_198_51_100_2".into(),
            address: "198.51.100.2".parse().unwrap(),
            asn: 64512,
            state,
            since: SystemTime::now(),
            last_error: err.map(str::to_string),
            enabled: true,
            session: None,
            messages_in: 0,
            messages_out: 0,
            updates_in: 0,
            updates_out: 0,
            prefixes_in: 0,
        }
    }

    #[test]
    fn protocol_rows_tokenise_as_calico_expects() {
        let up = protocol_row(&status(State::Established, None), false);
        let t: Vec<&str> = up.split_whitespace().collect();
        assert_eq!(t[..3], ["Mesh_198_51_100_2", "BGP", "master"]);
        assert_eq!(t[3], "up");
        assert_eq!(t[5], "Established");
        assert!(up.ends_with("Established   "), "{up:?}");
        let down = protocol_row(
            &status(State::Active, Some("Socket: Connection refused")),
            false,
        );
        assert!(
            down.ends_with("Active        Socket: Connection refused"),
            "{down:?}"
        );
        assert_eq!(down.split_whitespace().nth(3), Some("start"));
        // During a -R start's recovery an Established peer waits, as in BIRD 1.6.
        let waiting = protocol_row(&status(State::Established, None), true);
        let t: Vec<&str> = waiting.split_whitespace().collect();
        assert_eq!((t[3], t[5]), ("wait", "Established"), "{waiting:?}");
        let connecting = protocol_row(&status(State::Connect, None), true);
        assert_eq!(connecting.split_whitespace().nth(3), Some("start"));
    }

    /// An iBGP peer with `settings`, in no graceful restart.
    fn ibgp_peer(settings: &PeerDefaults) -> Local<'_> {
        Local {
            ibgp: true,
            multihop: true,
            rr_client: false,
            source: None,
            settings: Some(settings),
            restarting: false,
            restart_timer: None,
        }
    }

    /// The lines before the route counts as BIRD 1.6 prints them (`proto_cmd_show`,
    /// `filter_name`): the description only when set, and each filter as it was written.
    #[test]
    fn protocol_details_show_the_configured_filters() {
        let routes = Routes {
            imported: 0,
            exported: 0,
            preferred: 0,
        };
        let named = |n: &str| FilterForm::Named(n.into());
        let cases = [
            // A TOML peer: wren's own rules.
            (
                None,
                FilterForm::All,
                FilterForm::Inline,
                "ACCEPT",
                "(unnamed)",
            ),
            // Calico's templates (3.32: inline filters both ways).
            (
                Some("Connection to BGP peer"),
                FilterForm::Inline,
                FilterForm::Inline,
                "(unnamed)",
                "(unnamed)",
            ),
            (None, FilterForm::None, FilterForm::All, "REJECT", "ACCEPT"),
            (None, named("take"), named("give"), "take", "give"),
        ];
        for (description, import_filter, export_filter, input, output) in cases {
            let settings = PeerDefaults {
                description: description.map(str::to_string),
                import_filter,
                export_filter,
                ..PeerDefaults::default()
            };
            let d = protocol_details(
                &status(State::Active, None),
                &routes,
                &ibgp_peer(&settings),
                None,
            );
            let mut want: Vec<String> = description
                .map(|t| format!("  Description:    {t}"))
                .into_iter()
                .collect();
            want.extend([
                "  Preference:     100".to_string(),
                format!("  Input filter:   {input}"),
                format!("  Output filter:  {output}"),
            ]);
            assert_eq!(d[..want.len()], want[..]);
            assert!(d[want.len()].starts_with("  Routes: "), "{d:?}");
        }
    }

    /// A peer away under graceful restart, as BIRD 1.6's `bgp_show_proto_info` shows it: its
    /// routes kept, and the restart timer's seconds left (`N/-`) while the session is down.
    #[test]
    fn protocol_details_show_a_graceful_restart() {
        let routes = Routes {
            imported: 1,
            exported: 1,
            preferred: 1,
        };
        let settings = PeerDefaults::default();
        let detail = |restarting, restart_timer| {
            let local = Local {
                restarting,
                restart_timer,
                ..ibgp_peer(&settings)
            };
            let d = protocol_details(&status(State::Active, None), &routes, &local, None);
            let at = d.iter().position(|l| l.starts_with("    Neighbor AS:"));
            d[at.unwrap() + 1..].to_vec()
        };
        assert_eq!(
            detail(true, Some(116)),
            [
                "    Neighbor graceful restart active",
                "    Restart timer:    116/-",
                ""
            ]
        );
        assert_eq!(detail(false, None), [""]);
    }

    #[test]
    fn peer_commands_name_their_effects() {
        let rib = Rib::new(&Config::parse("router_id = \"127.0.0.1\"\nasn = 1\n").unwrap());
        let peers = [Some(status(State::Established, None)), None];
        let ctx = context(&rib, &peers);
        let (reply, effects) = execute("disable Mesh_198_51_100_2", &ctx);
        assert_eq!(reply.lines[0], Line::new(9, "Mesh_198_51_100_2: disabled"));
        assert_eq!(effects, vec![Effect::Disable(0)]);
        let (_, effects) = execute("reload all", &ctx);
        assert_eq!(effects, vec![Effect::ReloadIn(0), Effect::ReloadOut(0)]);
        let mut down = status(State::Established, None);
        down.enabled = false;
        let row = protocol_row(&down, false);
        assert_eq!(row.split_whitespace().count(), 5, "{row:?}");
        // BIRD 1.6 shows a disabled protocol `down`.
        assert_eq!(row.split_whitespace().nth(3), Some("down"), "{row:?}");
    }

    #[test]
    fn memory_sizes_as_bird_prints_them() {
        assert_eq!(size(9999), "9999 B");
        assert_eq!(size(10_000), "  10 kB");
        assert_eq!(size(95 * 1024 * 1024), "  95 MB");
        let rib = Rib::new(
            &Config::parse("router_id = \"127.0.0.1\"\nasn = 1\noriginate = [\"198.18.0.0/26\"]\n")
                .unwrap(),
        );
        let ctx = context(&rib, &[]);
        let lines = execute("show memory", &ctx).0.lines;
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts[0], "BIRD memory usage");
        for (i, what) in [
            "Routing tables:",
            "Route attributes:",
            "Protocols:",
            "Total:",
        ]
        .iter()
        .enumerate()
        {
            assert!(texts[i + 1].starts_with(what), "{texts:?}");
        }
        assert_eq!(lines.last().map(|l| l.code), Some(0));
    }

    #[test]
    fn bfd_sessions_in_bird_2_layout() {
        let rib = Rib::new(&Config::parse("router_id = \"127.0.0.1\"\nasn = 1\n").unwrap());
        let up = bfd::Info {
            peer: "198.51.100.2".parse().unwrap(),
            multihop: false,
            interface: Some("eth0".into()),
            state: bfd::State::Up,
            remote_state: bfd::State::Up,
            diag: bfd::Diag::NONE,
            since: UNIX_EPOCH + Duration::from_millis(1_795_510_641_042),
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(300),
            local_disc: 1,
            remote_disc: 2,
            flaps: 0,
        };
        // Never heard from: BIRD has no remote multiplier, so no timeout.
        let silent = bfd::Info {
            peer: "198.51.100.77".parse().unwrap(),
            multihop: true,
            interface: None,
            state: bfd::State::Down,
            since: SystemTime::now(),
            interval: Duration::from_secs(1),
            remote_disc: 0,
            ..up.clone()
        };
        let sessions = [up, silent];
        let ctx = Context {
            bfd: &sessions,
            ..context(&rib, &[])
        };
        let lines = execute("show bfd sessions", &ctx).0.lines;
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts[0], "bfd1:");
        assert_eq!(
            texts[1],
            "IP address                Interface  State      Since         Interval  Timeout"
        );
        assert!(texts[2].starts_with("198.51.100.2              eth0       Up         "));
        assert!(texts[2].ends_with("    0.100    0.300"), "{:?}", texts[2]);
        // Since: the date after 20 hours, else the time with milliseconds (BIRD 2's
        // `iso short ms`, 12 characters).
        assert_eq!(&texts[2][48..60], civil(sessions[0].since).0 + "  ");
        let (_, time) = civil(sessions[1].since);
        let ms = sessions[1]
            .since
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_millis();
        assert_eq!(
            texts[3],
            format!(
                "198.51.100.77             ---        Down       {time}.{ms:03}    1.000    0.000"
            )
        );
        assert_eq!(
            lines.iter().map(|l| l.code).collect::<Vec<_>>(),
            [1020, 1020, 1020, 1020, 0]
        );
    }

    #[test]
    fn bfd_sessions_without_bfd_as_bird_2_answers() {
        let rib = Rib::new(&Config::parse("router_id = \"127.0.0.1\"\nasn = 1\n").unwrap());
        assert_eq!(
            execute("show bfd sessions", &context(&rib, &[])).0.lines,
            [Line::new(9001, "There is no BFD protocol running")]
        );
    }

    #[test]
    fn unknown_commands() {
        let rib = Rib::new(&Config::parse("router_id = \"127.0.0.1\"\nasn = 1\n").unwrap());
        let ctx = Context {
            recovery: Some((236, 240)),
            ..context(&rib, &[])
        };
        assert_eq!(
            execute("bogus command", &ctx).0.lines,
            vec![Line::new(9001, "syntax error")]
        );
        assert_eq!(
            execute("show protocols nosuch", &ctx).0.lines,
            vec![Line::new(9002, "nosuch is not a protocol")]
        );
        let status = execute("show status", &ctx).0.lines;
        assert_eq!(status.last().unwrap().code, 13);
        assert!(
            status
                .iter()
                .any(|l| l.code == 24 && l.text == "  Wait timer is 236/240")
        );
        // calico-node's bird-ready: only 1000, 1011, 0024 and the closing 0013.
        assert!(
            status
                .iter()
                .all(|l| [1000, 1011, 24, 13].contains(&l.code))
        );
        assert!(status.contains(&Line::new(
            1011,
            "Converged: yes (End-of-RIB from 0 of 0 peers, kernel not written)"
        )));
        assert_eq!(execute("disable nosuch", &ctx).0.lines[0].code, 9002);
    }

    #[test]
    fn show_route_goes_in_chunks_in_prefix_order() {
        // More prefixes than one pass picks, given in reverse order.
        let n = SCAN + 904;
        let nets: Vec<String> = (0..n as u32)
            .rev()
            .map(|i| format!("\"{}/30\"", Ipv4Addr::from(0x6440_0000 + (i << 2))))
            .collect();
        let text = format!(
            "router_id = \"127.0.0.1\"\nasn = 1\noriginate = [{}]\n",
            nets.join(",")
        );
        let rib = Rib::new(&Config::parse(&text).unwrap());
        let ctx = context(&rib, &[]);
        // Every chunk of a reply, as the client's task asks for them.
        let whole = |cmd: &str| {
            let mut reply = execute(cmd, &ctx).0;
            let (mut lines, mut chunks) = (Vec::new(), 0);
            loop {
                assert!(reply.lines.len() <= CHUNK_LINES + 1, "{cmd}");
                lines.append(&mut reply.lines);
                chunks += 1;
                match reply.more {
                    Some(walk) => reply = resume(walk, &ctx),
                    None => return (lines, chunks),
                }
            }
        };
        for (cmd, per_route) in [("show route", 1), ("show route all protocol static1", 2)] {
            let (mut lines, chunks) = whole(cmd);
            assert!(
                chunks > n * per_route / CHUNK_LINES,
                "{cmd}: {chunks} chunks"
            );
            assert_eq!(lines.pop(), Some(Line::new(0, "")));
            assert_eq!(lines.len(), n * per_route, "{cmd}");
            let shown: Vec<u32> = lines
                .iter()
                .filter(|l| l.code == 1007)
                .map(|l| {
                    let net: ipnet::Ipv4Net = l.text.split(' ').next().unwrap().parse().unwrap();
                    u32::from(net.network())
                })
                .collect();
            let want: Vec<u32> = (0..n as u32).map(|i| 0x6440_0000 + (i << 2)).collect();
            assert_eq!(shown, want, "{cmd}: every prefix once, in order");
        }
        assert_eq!(
            execute("show route count protocol static1", &ctx).0.lines,
            vec![Line::new(14, format!("{n} of {n} routes for {n} networks"))]
        );
        // As BIRD: what is shown, of every route and network walked.
        assert_eq!(
            execute("show route count protocol nosuch", &ctx).0.lines,
            vec![Line::new(14, format!("0 of {n} routes for {n} networks"))]
        );
        // And only a walk of the whole table is counted.
        assert_eq!(
            execute("show route 100.64.0.0/30 count", &ctx).0.lines,
            vec![Line::new(0, "")]
        );
        assert_eq!(
            whole("show route protocol nosuch").0,
            vec![Line::new(0, "")],
            "a walk that shows nothing still ends"
        );
    }
}
