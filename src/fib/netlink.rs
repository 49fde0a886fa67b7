//! Kernel routes over rtnetlink: requests built with `netlink-packet-route`, many per
//! `sendmsg` on one socket, every ACK checked; and the dump of what is installed.

use std::io;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkBuffer,
    NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHop,
    RouteNextHopFlags, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

use crate::model::AddressFamily as IpFamily;
use crate::route::{Alien, AlienKind, Hop, KernelRoute, Target};
use crate::sys;

/// Where routes go: table and protocol number (12, `proto bird`), and the one family served
/// when another process owns the other's routes (`bird` and `bird6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub id: u32,
    pub protocol: u8,
    pub family: Option<IpFamily>,
}

impl Table {
    /// The address families read from the kernel.
    fn families(&self) -> impl Iterator<Item = AddressFamily> + use<> {
        let only = self.family;
        [
            (AddressFamily::Inet, IpFamily::Ipv4),
            (AddressFamily::Inet6, IpFamily::Ipv6),
        ]
        .into_iter()
        .filter(move |(_, f)| only.is_none_or(|o| o == *f))
        .map(|(af, _)| af)
    }

    /// Whether a route message is of a family served.
    fn serves(&self, m: &RouteMessage) -> bool {
        self.families().any(|af| af == m.header.address_family)
    }

    /// Whether a prefix is of a family served.
    pub fn holds(&self, net: &IpNet) -> bool {
        self.family.is_none_or(|f| f.holds(net))
    }
}

/// One request in a batch.
#[derive(Debug, Clone)]
pub enum Request {
    /// RTM_NEWROUTE with NLM_F_REPLACE: added, or changed in place with no gap.
    Replace(KernelRoute),
    /// RTM_DELROUTE naming the prefix, table and protocol only: removes our route whatever
    /// it is (type unspecified matches any).
    Delete(IpNet),
}

impl Request {
    pub fn net(&self) -> IpNet {
        match self {
            Request::Replace(r) => r.net,
            Request::Delete(net) => *net,
        }
    }
}

/// Bytes of requests per `sendmsg`; their ACKs fit the receive buffer many times over.
const BATCH_BYTES: usize = 64 * 1024;

pub struct Netlink {
    sock: Socket,
    /// The port the kernel gave the socket: the `nlmsg_pid` of our requests' notifications.
    port: u32,
    seq: u32,
    buf: Vec<u8>,
}

fn family(net: &IpNet) -> AddressFamily {
    match net {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    }
}

/// The request's header and destination: prefix, table, protocol, scope and type.
fn header(table: Table, net: &IpNet, kind: RouteType) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family(net);
    m.header.destination_prefix_length = net.prefix_len();
    m.header.table = if table.id < 256 {
        table.id as u8
    } else {
        RouteHeader::RT_TABLE_UNSPEC
    };
    m.header.protocol = RouteProtocol::from(table.protocol);
    m.header.scope = RouteScope::Universe;
    m.header.kind = kind;
    m.attributes
        .push(RouteAttribute::Destination(net.network().into()));
    m.attributes.push(RouteAttribute::Table(table.id));
    m
}

fn message(table: Table, r: &KernelRoute) -> RouteMessage {
    let kind = match r.target {
        Target::Blackhole => RouteType::BlackHole,
        Target::Via(_) => RouteType::Unicast,
    };
    let mut m = header(table, &r.net, kind);
    if let Some(metric) = r.metric {
        m.attributes.push(RouteAttribute::Priority(metric));
    }
    match &r.target {
        Target::Blackhole => {}
        Target::Via(hops) if hops.len() == 1 => {
            let h = hops[0];
            m.attributes.push(RouteAttribute::Gateway(h.gateway.into()));
            if let Some(oif) = h.oif {
                m.attributes.push(RouteAttribute::Oif(oif));
            }
            if h.onlink {
                m.header.flags |= RouteFlags::Onlink;
            }
        }
        Target::Via(hops) => m.attributes.push(RouteAttribute::MultiPath(
            hops.iter()
                .map(|h| {
                    let mut nh = RouteNextHop::default();
                    nh.interface_index = h.oif.unwrap_or(0);
                    if h.onlink {
                        nh.flags |= RouteNextHopFlags::Onlink;
                    }
                    nh.attributes
                        .push(RouteAttribute::Gateway(h.gateway.into()));
                    nh
                })
                .collect(),
        )),
    }
    m
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Reads a dumped route back; `None` for kinds wren never writes.
fn parse(m: &RouteMessage) -> Option<KernelRoute> {
    let mut dst = None;
    let (mut metric, mut gateway, mut oif, mut multi) = (None, None, None, None);
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = ip(d),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::Gateway(g) => gateway = ip(g),
            RouteAttribute::Oif(o) => oif = Some(*o),
            RouteAttribute::MultiPath(hops) => multi = Some(hops),
            _ => {}
        }
    }
    let len = m.header.destination_prefix_length;
    let dst = dst.unwrap_or(match m.header.address_family {
        AddressFamily::Inet6 => IpAddr::from([0u16; 8]),
        _ => IpAddr::from([0u8; 4]),
    });
    let net = IpNet::new(dst, len).ok()?;
    let target = match (m.header.kind, gateway, multi) {
        (RouteType::BlackHole, _, _) => Target::Blackhole,
        (RouteType::Unicast, Some(gw), None) => Target::Via(vec![Hop {
            gateway: gw,
            oif,
            onlink: m.header.flags.contains(RouteFlags::Onlink),
        }]),
        (RouteType::Unicast, None, Some(hops)) => Target::Via(
            hops.iter()
                .filter_map(|h| {
                    let gw = h.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => ip(g),
                        _ => None,
                    })?;
                    Some(Hop {
                        gateway: gw,
                        oif: (h.interface_index != 0).then_some(h.interface_index),
                        onlink: h.flags.contains(RouteNextHopFlags::Onlink),
                    })
                })
                .collect(),
        ),
        _ => return None,
    };
    Some(KernelRoute {
        net,
        metric,
        target,
    })
}

impl Netlink {
    pub fn open() -> io::Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        let port = sock.bind_auto()?.port_number();
        sock.set_rx_buf_sz(8 * 1024 * 1024)?;
        force_rcvbuf(&sock, 8 * 1024 * 1024);
        Ok(Netlink {
            sock,
            port,
            seq: 0,
            buf: vec![0; 1 << 20],
        })
    }

    pub fn port(&self) -> u32 {
        self.port
    }

    fn emit(&mut self, out: &mut Vec<u8>, msg: RouteNetlinkMessage, flags: u16) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let at = out.len();
        out.resize(at + nl.buffer_len(), 0);
        nl.serialize(&mut out[at..]);
        self.seq
    }

    /// Carries out requests; the result of each, in order (`Err` holds the kernel's error).
    pub fn batch(&mut self, table: Table, reqs: &[Request]) -> Vec<io::Result<()>> {
        let mut results: Vec<io::Result<()>> = Vec::with_capacity(reqs.len());
        let mut start = 0;
        while start < reqs.len() {
            let mut out = Vec::with_capacity(BATCH_BYTES + 1024);
            let first_seq = self.seq.wrapping_add(1);
            let mut end = start;
            let mut last_at = 0;
            while end < reqs.len() && out.len() < BATCH_BYTES {
                let (msg, flags) = match &reqs[end] {
                    Request::Replace(r) => (
                        RouteNetlinkMessage::NewRoute(message(table, r)),
                        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE,
                    ),
                    Request::Delete(net) => (
                        RouteNetlinkMessage::DelRoute(header(table, net, RouteType::Unspec)),
                        NLM_F_REQUEST,
                    ),
                };
                last_at = out.len();
                self.emit(&mut out, msg, flags);
                end += 1;
            }
            // Only the batch's last request asks for an ACK: the kernel handles the batch in
            // order within `send` and reports every failure anyway, with its sequence number.
            // So the receive buffer holds one ACK per batch plus the failures.
            let flags_at = last_at + 6;
            let flags = u16::from_ne_bytes([out[flags_at], out[flags_at + 1]]) | NLM_F_ACK;
            out[flags_at..flags_at + 2].copy_from_slice(&flags.to_ne_bytes());
            let last_seq = self.seq;
            let count = end - start;
            if let Err(e) = self.sock.send(&out, 0) {
                results.extend((0..count).map(|_| Err(io::Error::new(e.kind(), e.to_string()))));
                start = end;
                continue;
            }
            let mut outcome: Vec<io::Result<()>> = (0..count).map(|_| Ok(())).collect();
            'acks: loop {
                let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
                    Ok(n) => n,
                    Err(e) => {
                        // The outcome of this batch is unknown: report it as failed, so the
                        // routes are tried again.
                        for o in &mut outcome {
                            *o = Err(io::Error::new(e.kind(), e.to_string()));
                        }
                        break;
                    }
                };
                for (seq, r) in acks_in(&self.buf[..n]) {
                    if let Some(slot) = outcome.get_mut(seq.wrapping_sub(first_seq) as usize) {
                        *slot = r;
                    }
                    if seq == last_seq {
                        break 'acks;
                    }
                }
            }
            results.extend(outcome);
            start = end;
        }
        results
    }

    /// The routes of `table` with its protocol, of the families it serves.
    pub fn dump(&mut self, table: Table) -> io::Result<Vec<KernelRoute>> {
        Ok(self.dump_all(table)?.0)
    }

    /// The routes of `table`: ours (its protocol), and other protocols' that BIRD's `learn`
    /// would import.
    pub fn dump_all(&mut self, table: Table) -> io::Result<(Vec<KernelRoute>, Vec<Alien>)> {
        let mut routes = Vec::new();
        let mut aliens = Vec::new();
        for af in table.families() {
            let mut req = RouteMessage::default();
            req.header.address_family = af;
            self.each_dumped(RouteNetlinkMessage::GetRoute(req), |m| {
                if let RouteNetlinkMessage::NewRoute(m) = m {
                    routes.extend(ours(&m, table));
                    aliens.extend(alien(&m, table));
                }
            })?;
        }
        Ok((routes, aliens))
    }

    /// Every link and every interface address now, as changes to an empty view.
    pub fn dump_interfaces(&mut self) -> io::Result<Vec<InterfaceChange>> {
        let mut out = Vec::new();
        let each = |m: RouteNetlinkMessage| out.extend(interface_change(m));
        self.each_dumped(RouteNetlinkMessage::GetLink(LinkMessage::default()), each)?;
        let each = |m: RouteNetlinkMessage| out.extend(interface_change(m));
        self.each_dumped(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            each,
        )?;
        Ok(out)
    }

    /// Sends a dump request and hands each message of the answer to `each`.
    fn each_dumped(
        &mut self,
        req: RouteNetlinkMessage,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> io::Result<()> {
        let mut out = Vec::new();
        let seq = self.emit(&mut out, req, NLM_F_REQUEST | NLM_F_DUMP);
        self.sock.send(&out, 0)?;
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let mut at = 0;
            while at < n {
                let Ok(b) = NetlinkBuffer::new_checked(&self.buf[at..n]) else {
                    break;
                };
                let len = b.length() as usize;
                if len == 0 {
                    break;
                }
                let msg =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[at..at + len]);
                at += (len + 3) & !3;
                match msg.map(|m| (m.header.sequence_number, m.payload)) {
                    Ok((s, NetlinkPayload::Done(_))) if s == seq => return Ok(()),
                    Ok((s, NetlinkPayload::Error(e))) if s == seq => {
                        return Err(io::Error::from_raw_os_error(e.code.map_or(0, |c| -c.get())));
                    }
                    Ok((_, NetlinkPayload::InnerMessage(m))) => each(m),
                    _ => {}
                }
            }
        }
    }
}

/// A link or an interface address that appeared, changed or went, as the kernel tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceChange {
    /// A link and whether it carries traffic (`IFF_UP` and `IFF_RUNNING`, the flags BIRD's
    /// device protocol follows).
    Link {
        index: u32,
        name: String,
        up: bool,
    },
    LinkGone(u32),
    /// An address of link `index` with its prefix length: a connected subnet.
    Address {
        index: u32,
        subnet: IpNet,
    },
    AddressGone {
        index: u32,
        subnet: IpNet,
    },
}

/// A link or address message read as a change; `None` for anything else.
fn interface_change(m: RouteNetlinkMessage) -> Option<InterfaceChange> {
    let link = |l: &LinkMessage| {
        let name = l.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        let up = l.header.flags.contains(LinkFlags::Up | LinkFlags::Running);
        (l.header.index, name.unwrap_or_default(), up)
    };
    // IFA_LOCAL is the interface's own address (on point-to-point links IFA_ADDRESS is the
    // remote's), as getifaddrs reads it.
    let subnet = |a: &AddressMessage| {
        let local = a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let address = a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        let net = IpNet::new(local.or(address)?, a.header.prefix_len).ok()?;
        Some((a.header.index, net.trunc()))
    };
    match m {
        RouteNetlinkMessage::NewLink(l) => {
            let (index, name, up) = link(&l);
            Some(InterfaceChange::Link { index, name, up })
        }
        RouteNetlinkMessage::DelLink(l) => Some(InterfaceChange::LinkGone(l.header.index)),
        RouteNetlinkMessage::NewAddress(a) => {
            subnet(&a).map(|(index, subnet)| InterfaceChange::Address { index, subnet })
        }
        RouteNetlinkMessage::DelAddress(a) => {
            subnet(&a).map(|(index, subnet)| InterfaceChange::AddressGone { index, subnet })
        }
        _ => None,
    }
}

fn table_of(m: &RouteMessage) -> u32 {
    let in_table = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Table(t) => Some(*t),
        _ => None,
    });
    in_table.unwrap_or(u32::from(m.header.table))
}

/// A receive buffer past `net.core.rmem_max` when we may (CAP_NET_ADMIN), for large dumps
/// and bursts of notifications; without the capability the capped size stays.
fn force_rcvbuf(sock: &Socket, bytes: libc::c_int) {
    let _ = sys::setsockopt_int(sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes);
}

/// A classic BPF socket filter that drops the echoes of our own requests (their `nlmsg_pid`
/// is `own_port`, the requesting socket's, as the kernel notifies changes) and RTM_NEWROUTE
/// messages of `protocol` from anyone: neither carries anything the FIB needs, and
/// installing or withdrawing a million routes must not flood the socket.
fn drop_own_echoes(sock: &Socket, protocol: u8, own_port: u32) -> io::Result<()> {
    const RTM_NEWROUTE: u16 = 24;
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let (ld_w, ld_h, ld_b, jeq, ret) = (
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        libc::BPF_LD | libc::BPF_H | libc::BPF_ABS,
        libc::BPF_LD | libc::BPF_B | libc::BPF_ABS,
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        libc::BPF_RET | libc::BPF_K,
    );
    // Loads are big-endian; the header's fields are host order (little-endian on the
    // targets served).
    let kind = u32::from(u16::from_be_bytes(RTM_NEWROUTE.to_ne_bytes()));
    let port = u32::from_be_bytes(own_port.to_ne_bytes());
    let prog = [
        op(ld_w, 0, 0, 12),                 // nlmsg_pid
        op(jeq, 4, 0, port),                // our own request's echo: drop
        op(ld_h, 0, 0, 4),                  // nlmsg_type
        op(jeq, 0, 3, kind),                // not RTM_NEWROUTE: keep
        op(ld_b, 0, 0, 21),                 // rtm_protocol (rtmsg after the 16-byte header)
        op(jeq, 0, 1, u32::from(protocol)), // another protocol: keep
        op(ret, 0, 0, 0),                   // drop
        op(ret, 0, 0, u32::MAX),            // keep
    ];
    sys::attach_filter(sock, &prog)
}

/// A route message of `table` with its protocol, read back; `None` for anything else.
fn ours(m: &RouteMessage, table: Table) -> Option<KernelRoute> {
    (table_of(m) == table.id && u8::from(m.header.protocol) == table.protocol && table.serves(m))
        .then(|| parse(m))
        .flatten()
}

/// Whether BIRD's `learn` imports this route: our table, another protocol than ours and than
/// `kernel` (the kernel's own subnet routes), a routing type (not redirect, local, broadcast
/// or unspec), TOS 0, and a destination that is neither host- nor link-scope.
fn alien(m: &RouteMessage, table: Table) -> Option<Alien> {
    let protocol = u8::from(m.header.protocol);
    if table_of(m) != table.id
        || !table.serves(m)
        || protocol == table.protocol
        || matches!(
            m.header.protocol,
            RouteProtocol::Kernel | RouteProtocol::IcmpRedirect | RouteProtocol::Unspec
        )
        || m.header.tos != 0
    {
        return None;
    }
    let kind = match m.header.kind {
        RouteType::Unicast => AlienKind::Unicast,
        RouteType::BlackHole => AlienKind::Blackhole,
        RouteType::Unreachable => AlienKind::Unreachable,
        RouteType::Prohibit => AlienKind::Prohibit,
        _ => return None,
    };
    let (mut dst, mut gateway, mut oif, mut metric) = (None, None, None, None);
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = ip(d),
            RouteAttribute::Gateway(g) => gateway = ip(g),
            RouteAttribute::Oif(o) => oif = Some(*o),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::MultiPath(hops) => {
                if let Some(h) = hops.first() {
                    oif = (h.interface_index != 0).then_some(h.interface_index);
                    gateway = h.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => ip(g),
                        _ => None,
                    });
                }
            }
            _ => {}
        }
    }
    let dst = dst.unwrap_or(match m.header.address_family {
        AddressFamily::Inet6 => IpAddr::from([0u16; 8]),
        _ => IpAddr::from([0u8; 4]),
    });
    let host_or_link = match dst {
        IpAddr::V4(a) => a.is_loopback() || a.is_link_local() || a.is_multicast(),
        IpAddr::V6(a) => a.is_loopback() || a.is_unicast_link_local() || a.is_multicast(),
    };
    if host_or_link {
        return None;
    }
    Some(Alien {
        net: IpNet::new(dst, m.header.destination_prefix_length).ok()?,
        kind,
        gateway,
        device: oif.and_then(sys::if_name),
        metric,
    })
}

/// What the kernel announced on the monitor socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// A route of ours (table and protocol) was deleted, by us or anyone.
    Deleted(KernelRoute),
    /// Another protocol's route appeared or changed.
    Learned(Alien),
    /// Another protocol's route for this prefix went.
    Forgotten(IpNet),
    /// A link or an address changed: how next hops are reached may have changed.
    Interface(InterfaceChange),
    /// Notifications were lost (ENOBUFS): the table must be read again.
    Overrun,
}

/// Multicast groups: links, IPv4/IPv6 addresses and routes (`RTMGRP_*`).
const MONITOR_GROUPS: u32 = 0x1 | 0x10 | 0x40 | 0x100 | 0x400;

/// A netlink socket subscribed to link, address and route notifications (what BIRD's
/// device and kernel protocols follow), so the FIB reacts to events instead of scanning.
pub struct Monitor {
    sock: Socket,
    buf: Vec<u8>,
}

impl Monitor {
    /// Subscribes; the kernel drops the echoes of the requests of the socket bound to
    /// `own_port` and of `table`'s additions before they are queued (a socket filter).
    pub fn open(table: Table, own_port: u32) -> io::Result<Monitor> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind(&netlink_sys::SocketAddr::new(0, MONITOR_GROUPS))?;
        sock.set_rx_buf_sz(16 * 1024 * 1024)?;
        force_rcvbuf(&sock, 16 * 1024 * 1024);
        drop_own_echoes(&sock, table.protocol, own_port)?;
        Ok(Monitor {
            sock,
            buf: vec![0; 1 << 20],
        })
    }

    /// Blocks for the next notifications: deletions of our routes in `table`, other
    /// protocols' routes coming and going, and any link or address change. Our own additions
    /// are skipped on their header without being parsed.
    pub fn next(&mut self, table: Table) -> io::Result<Vec<KernelEvent>> {
        const RTM_NEWLINK: u16 = 16;
        const RTM_DELADDR: u16 = 21;
        const RTM_NEWROUTE: u16 = 24;
        const RTM_DELROUTE: u16 = 25;
        let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                return Ok(vec![KernelEvent::Overrun]);
            }
            Err(e) => return Err(e),
        };
        let mut events = Vec::new();
        let mut at = 0;
        while at < n {
            let Ok(b) = NetlinkBuffer::new_checked(&self.buf[at..n]) else {
                break;
            };
            let (len, kind) = (b.length() as usize, b.message_type());
            if len == 0 || at + len > n {
                break;
            }
            let msg = &self.buf[at..at + len];
            // struct rtmsg follows the 16-byte header: protocol is its sixth octet.
            let our_protocol = msg.get(21) == Some(&table.protocol);
            if (RTM_NEWLINK..=RTM_DELADDR).contains(&kind) {
                if let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg)
                    && let NetlinkPayload::InnerMessage(inner) = m.payload
                {
                    events.extend(interface_change(inner).map(KernelEvent::Interface));
                }
            } else if (kind == RTM_DELROUTE || (kind == RTM_NEWROUTE && !our_protocol))
                && let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg)
                && let NetlinkPayload::InnerMessage(inner) = m.payload
            {
                match inner {
                    RouteNetlinkMessage::DelRoute(r) if our_protocol => {
                        events.extend(ours(&r, table).map(KernelEvent::Deleted));
                    }
                    RouteNetlinkMessage::DelRoute(r) => {
                        events.extend(alien(&r, table).map(|a| KernelEvent::Forgotten(a.net)));
                    }
                    RouteNetlinkMessage::NewRoute(r) => {
                        events.extend(alien(&r, table).map(KernelEvent::Learned));
                    }
                    _ => {}
                }
            }
            at += (len + 3) & !3;
        }
        Ok(events)
    }
}

/// The ACKs (NLMSG_ERROR) in a receive buffer: sequence number and outcome.
fn acks_in(buf: &[u8]) -> Vec<(u32, io::Result<()>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let Ok(b) = NetlinkBuffer::new_checked(&buf[at..]) else {
            break;
        };
        let len = b.length() as usize;
        if len == 0 || at + len > buf.len() {
            break;
        }
        if let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[at..at + len])
            && let NetlinkPayload::Error(e) = m.payload
        {
            let r = match e.code {
                None => Ok(()),
                Some(c) => Err(io::Error::from_raw_os_error(-c.get())),
            };
            out.push((m.header.sequence_number, r));
        }
        at += (len + 3) & !3;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_the_parser() {
        let t = Table {
            id: 254,
            protocol: 12,
            family: None,
        };
        let routes = [
            KernelRoute {
                net: "198.18.0.0/26".parse().unwrap(),
                metric: None,
                target: Target::Blackhole,
            },
            KernelRoute {
                net: "198.18.0.64/26".parse().unwrap(),
                metric: Some(1024),
                target: Target::Via(vec![Hop {
                    gateway: "198.51.100.2".parse().unwrap(),
                    oif: Some(7),
                    onlink: true,
                }]),
            },
            KernelRoute {
                net: "2001:db8:1::40/122".parse().unwrap(),
                metric: None,
                target: Target::Via(vec![
                    Hop {
                        gateway: "2001:db8::2".parse().unwrap(),
                        oif: Some(3),
                        onlink: false,
                    },
                    Hop {
                        gateway: "2001:db8::3".parse().unwrap(),
                        oif: Some(3),
                        onlink: false,
                    },
                ]),
            },
        ];
        for r in routes {
            let m = message(t, &r);
            assert_eq!(parse(&m).as_ref(), Some(&r));
            assert!(r.satisfied_by(&r));
        }
    }
}
