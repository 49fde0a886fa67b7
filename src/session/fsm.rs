//! The RFC 4271 §8 state machine, without sockets or clocks: `(state, event) → (state,
//! actions)`. The peer task performs the actions and feeds back the events.

use std::net::Ipv4Addr;

use bytes::Bytes;

use crate::wire::notification::{Code, cease, fsm, open as open_err};
use crate::wire::open::{GracefulRestart, OptParam};
use crate::wire::{
    self, Action as WireAction, Capability, Message, Notification, Open, RouteRefresh, Update,
};

use super::caps::{Session, common_families};

/// RFC 4271 §8.2.2 states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

/// Timers the peer task runs for the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// RFC 4271 §10 ConnectRetryTimer; also the initial connect delay.
    ConnectRetry,
    Hold,
    Keepalive,
    /// Wait in Idle after an error before starting again (BIRD's error wait).
    IdleHold,
    /// After this long in Established the error wait falls back to its minimum.
    ErrorForget,
}

/// RFC 4271 §8.1 events, grouped as the peer task sees them.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "carries a wire::Message as decoded"
)]
pub enum Event {
    /// ManualStart / AutomaticStart (events 1, 3).
    Start,
    /// ManualStop (event 2) by the operator: the NOTIFICATION to send, if a session is open,
    /// as a Hard Reset when the peer would otherwise keep our routes (RFC 8538 §3).
    Stop(Notification),
    /// ManualStop because this speaker is shutting down to restart: the NOTIFICATION goes as
    /// it is, so a peer with the N bit keeps our routes (RFC 8538 §4).
    Shutdown(Notification),
    /// A timer ran out (events 9-13).
    Expired(Timer),
    /// A TCP connection is up, dialled or accepted (events 16, 17).
    Connected,
    /// The TCP connection failed or closed (event 18).
    Closed,
    /// A well-formed message (events 19, 24-27).
    Message(Message),
    /// A malformed message (events 21, 22, 28), as the codec described it.
    Malformed(wire::Error),
    /// The connection was swapped for the peer's: after a collision (RFC 4271 §6.8) or a
    /// reconnect of a restarting peer (RFC 4724 §4.2). The OPEN exchange starts again.
    Replaced,
    /// UPDATEs the RIB encoded for this peer (an update group's batch), to go out if
    /// Established.
    Updates(Bytes),
    /// The operator asks for the peer's routes again.
    RequestRefresh,
    /// Our restart is over (RFC 4724 §3): later OPENs no longer carry the Restart State bit.
    RestartComplete,
    /// The forwarding path to the peer failed (its BFD session went Down, RFC 5882 §4.3):
    /// the session goes at once, its routes with it (a dead peer is no graceful restart),
    /// and it stays down until started again.
    PathDown,
}

/// What the peer task must do.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant, reason = "carries a wire::Message to send")]
pub enum Action {
    /// Dial the peer.
    Connect,
    /// Close the TCP connection (after writing what was sent before it).
    Disconnect,
    Send(Message),
    /// Write messages already encoded (UPDATEs from the RIB).
    Write(Bytes),
    Start(Timer, u16),
    Stop(Timer),
    /// Entered Established.
    Up(Box<Session>),
    /// Left Established; `reason` says why. `graceful`: the connection was lost without a
    /// NOTIFICATION, so a peer that can restart gracefully keeps its routes (RFC 4724 §4.2).
    Down {
        reason: String,
        graceful: bool,
    },
    /// An UPDATE for the RIB. With `withdraw_all` every prefix in it is withdrawn
    /// (RFC 7606 treat-as-withdraw).
    Deliver {
        update: Box<Update>,
        withdraw_all: bool,
    },
    /// The peer asked for our routes again (RFC 2918, RFC 7313).
    Refresh(RouteRefresh),
    /// Something went wrong; for the session's "last error".
    Error(String),
}

/// What the machine needs to know about its peer.
#[derive(Debug, Clone)]
pub struct Params {
    pub local_open: Open,
    pub local_asn: u32,
    pub local_id: Ipv4Addr,
    pub peer_asn: u32,
    pub keepalive: Option<u16>,
    pub passive: bool,
    pub connect_delay: u16,
    pub connect_retry: u16,
    pub error_wait: [u16; 2],
}

/// RFC 4271 §8: suggested hold time while waiting for the peer's OPEN.
const OPEN_HOLD_TIME: u16 = 240;
/// BIRD's "error forget time".
const ERROR_FORGET: u16 = 300;

#[derive(Debug, Clone)]
pub struct Fsm {
    pub params: Params,
    state: State,
    session: Option<Box<Session>>,
    /// The next error wait.
    error_wait: u16,
    /// False after a manual stop: no automatic restart.
    enabled: bool,
    /// Set while going down because the connection was lost (no NOTIFICATION either way).
    transport_lost: bool,
}

/// The connection that stays after a collision (RFC 4271 §6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Existing,
    New,
}

/// Whether a stop is the operator's (a Hard Reset where needed) or a shutdown.
enum EventKind {
    Stop,
    Other,
}

impl Fsm {
    pub fn new(params: Params) -> Fsm {
        Fsm {
            error_wait: params.error_wait[0],
            params,
            state: State::Idle,
            session: None,
            enabled: false,
            transport_lost: false,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn session(&self) -> Option<&Session> {
        self.session.as_deref()
    }

    /// Runs one event and returns what to do.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        let event_kind = if matches!(event, Event::Stop(_)) {
            EventKind::Stop
        } else {
            EventKind::Other
        };
        match event {
            Event::Start => {
                self.enabled = true;
                if self.state == State::Idle {
                    self.start(&mut out);
                }
            }
            Event::Stop(n) | Event::Shutdown(n) => {
                self.enabled = false;
                if self.state != State::Idle {
                    let reason = format!("Shutdown: {n}");
                    let flush = matches!(event_kind, EventKind::Stop)
                        && n.hard_reset_suggested()
                        && self
                            .session
                            .as_ref()
                            .is_some_and(|s| s.notification_restart(&n));
                    if self.connected() {
                        let n = if flush { n.hard_reset() } else { n };
                        out.push(Action::Send(Message::Notification(n)));
                    }
                    self.go_idle(&mut out, reason, false);
                }
            }
            Event::Expired(t) => self.expired(t, &mut out),
            Event::Connected => self.connected_event(&mut out),
            Event::Closed => self.closed(&mut out),
            // RFC 4271 §8.2.2 Idle: other events change nothing (there is no connection).
            Event::Message(_) | Event::Malformed(_) if self.state == State::Idle => {}
            Event::Message(m) => self.message(m, &mut out),
            Event::Malformed(e) => self.malformed(e, &mut out),
            Event::Replaced if self.connected() => self.replaced(&mut out),
            Event::Replaced => {}
            Event::Updates(bytes) => {
                // UPDATEs go out only in Established (RFC 4271 §8.2.2); the RIB sends the
                // whole table again at the next Up.
                if self.state == State::Established {
                    out.push(Action::Write(bytes));
                    self.restart_keepalive(&mut out);
                }
            }
            Event::RequestRefresh => self.request_refresh(&mut out),
            Event::RestartComplete => self.restart_complete(),
            Event::PathDown => {
                self.enabled = false;
                if self.state != State::Idle {
                    self.transport_lost = false;
                    self.go_idle(&mut out, "Error: BFD session down".into(), true);
                }
            }
        }
        out
    }

    /// RFC 4271 §6.8 collision resolution: which connection stays when one arrives from the
    /// peer, with an OPEN naming `remote_id`, while `existing_outgoing` (dialled by us or
    /// not) is in use. In OpenSent and OpenConfirm the connection dialled by the side with
    /// the higher BGP Identifier stays; in Established the existing one, unless the peer can
    /// restart gracefully: then it has restarted and the old session is gone (RFC 4724 §4.2).
    /// Before OpenSent there is nothing to collide with.
    pub fn collision(&self, existing_outgoing: bool, remote_id: Ipv4Addr) -> Keep {
        let take_new = match self.state {
            State::Established => self
                .session
                .as_ref()
                .is_some_and(|s| s.peer_graceful_restart.is_some()),
            State::OpenSent | State::OpenConfirm => {
                !existing_outgoing || u32::from(self.params.local_id) < u32::from(remote_id)
            }
            State::Idle | State::Connect | State::Active => true,
        };
        if take_new { Keep::New } else { Keep::Existing }
    }

    /// Whether a TCP connection belongs to the machine in this state.
    pub fn connected(&self) -> bool {
        matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }

    /// Leaving Idle: passive peers wait in Active; active ones wait the connect delay first,
    /// accepting an incoming connection meanwhile.
    fn start(&mut self, out: &mut Vec<Action>) {
        self.state = State::Active;
        out.push(Action::Stop(Timer::IdleHold));
        if !self.params.passive {
            out.push(Action::Start(
                Timer::ConnectRetry,
                self.params.connect_delay.max(1),
            ));
        }
    }

    fn expired(&mut self, t: Timer, out: &mut Vec<Action>) {
        match (t, self.state) {
            (Timer::IdleHold, State::Idle) if self.enabled => self.start(out),
            (Timer::ConnectRetry, State::Connect | State::Active) if !self.params.passive => {
                // RFC 4271 §8.2.2 Connect/Active, event 9: (re)dial and restart the timer.
                if self.state == State::Connect {
                    out.push(Action::Disconnect);
                }
                self.state = State::Connect;
                out.push(Action::Connect);
                out.push(Action::Start(
                    Timer::ConnectRetry,
                    self.params.connect_retry.max(1),
                ));
            }
            (Timer::Hold, State::OpenSent | State::OpenConfirm | State::Established) => {
                let n = Notification::new(Code::HoldTimerExpired, 0, Vec::new());
                out.push(Action::Send(Message::Notification(n)));
                self.go_idle(out, "BGP Error: Hold timer expired".into(), true);
            }
            (Timer::Keepalive, State::OpenConfirm | State::Established) => {
                out.push(Action::Send(Message::Keepalive));
                self.restart_keepalive(out);
            }
            (Timer::ErrorForget, State::Established) => self.error_wait = self.params.error_wait[0],
            _ => {}
        }
    }

    /// Events 16/17: send OPEN and wait for the peer's (RFC 4271 §8.2.2 Connect/Active).
    fn connected_event(&mut self, out: &mut Vec<Action>) {
        match self.state {
            State::Connect | State::Active => {
                out.push(Action::Stop(Timer::ConnectRetry));
                out.push(Action::Send(Message::Open(self.params.local_open.clone())));
                out.push(Action::Start(Timer::Hold, OPEN_HOLD_TIME));
                self.state = State::OpenSent;
            }
            // RFC 4271 §8.2.2 Idle refuses connections.
            State::Idle => out.push(Action::Disconnect),
            // A second connection in these states goes through collision detection (RFC
            // 4271 §6.8, `Fsm::collision`) before it reaches the machine; this one is kept.
            State::OpenSent | State::OpenConfirm | State::Established => {}
        }
    }

    fn replaced(&mut self, out: &mut Vec<Action>) {
        if self.state == State::Established {
            out.push(Action::Down {
                reason: "peer reconnected".into(),
                graceful: true,
            });
        }
        for t in [Timer::ConnectRetry, Timer::Keepalive, Timer::ErrorForget] {
            out.push(Action::Stop(t));
        }
        out.push(Action::Send(Message::Open(self.params.local_open.clone())));
        out.push(Action::Start(Timer::Hold, OPEN_HOLD_TIME));
        self.session = None;
        self.state = State::OpenSent;
    }

    fn closed(&mut self, out: &mut Vec<Action>) {
        match self.state {
            State::Connect => {
                // Event 18 in Connect: wait for the retry timer in Active.
                self.state = State::Active;
            }
            State::OpenSent => {
                // Event 18 in OpenSent: back to Active, retry later (RFC 4271 §8.2.2).
                out.push(Action::Disconnect);
                out.push(Action::Stop(Timer::Hold));
                out.push(Action::Error("Socket: Connection closed".into()));
                self.state = State::Active;
                if !self.params.passive {
                    out.push(Action::Start(
                        Timer::ConnectRetry,
                        self.params.connect_retry.max(1),
                    ));
                }
            }
            State::OpenConfirm | State::Established => {
                self.transport_lost = true;
                self.go_idle(out, "Socket: Connection closed".into(), true);
                self.transport_lost = false;
            }
            State::Idle | State::Active => {}
        }
    }

    fn message(&mut self, m: Message, out: &mut Vec<Action>) {
        match (self.state, m) {
            (_, Message::Notification(n)) => {
                // RFC 8538 §4: with the N bit negotiated, the peer's routes are kept stale as
                // when the connection is lost.
                self.transport_lost = self.state == State::Established
                    && self
                        .session
                        .as_ref()
                        .is_some_and(|s| s.notification_restart(&n));
                self.go_idle(out, format!("Received: {n}"), true);
                self.transport_lost = false;
            }
            (State::OpenSent, Message::Open(o)) => match self.check_open(&o) {
                Ok(()) => {
                    let session =
                        Session::new(self.params.local_open.clone(), o, self.params.keepalive);
                    out.push(Action::Send(Message::Keepalive));
                    self.restart_hold(&session, out);
                    if session.keepalive > 0 {
                        out.push(Action::Start(Timer::Keepalive, session.keepalive));
                    }
                    self.session = Some(Box::new(session));
                    self.state = State::OpenConfirm;
                }
                Err(n) => {
                    let reason = format!("BGP Error: {n}");
                    out.push(Action::Send(Message::Notification(n)));
                    self.go_idle(out, reason, true);
                }
            },
            (State::OpenConfirm, Message::Keepalive) => {
                // RFC 4271 §8.2.2 OpenConfirm, event 26.
                let Some(s) = self.session.clone() else {
                    return self.fsm_error(out);
                };
                self.restart_hold(&s, out);
                out.push(Action::Start(Timer::ErrorForget, ERROR_FORGET));
                out.push(Action::Up(s));
                self.state = State::Established;
            }
            (State::Established, Message::Keepalive) => self.restart_hold_current(out),
            (State::Established, Message::Update(u)) => {
                self.restart_hold_current(out);
                out.push(Action::Deliver {
                    update: Box::new(u),
                    withdraw_all: false,
                });
            }
            (State::Established, Message::RouteRefresh(r)) => {
                self.restart_hold_current(out);
                out.push(Action::Refresh(r));
            }
            _ => self.fsm_error(out),
        }
    }

    fn malformed(&mut self, e: wire::Error, out: &mut Vec<Action>) {
        match (self.state, e.action, e.update) {
            (
                State::Established,
                WireAction::TreatAsWithdraw | WireAction::AttributeDiscard,
                Some(update),
            ) => {
                self.restart_hold_current(out);
                out.push(Action::Error(format!(
                    "Error: malformed UPDATE: {}",
                    e.reason
                )));
                out.push(Action::Deliver {
                    update,
                    withdraw_all: e.action == WireAction::TreatAsWithdraw,
                });
            }
            _ => {
                let n = Notification {
                    code: e.code,
                    subcode: e.subcode,
                    data: e.data,
                };
                let reason = format!("BGP Error: {n} ({})", e.reason);
                if self.connected() {
                    out.push(Action::Send(Message::Notification(n)));
                }
                self.go_idle(out, reason, true);
            }
        }
    }

    /// RFC 4271 §6.6: a message the state does not expect.
    fn fsm_error(&mut self, out: &mut Vec<Action>) {
        let subcode = match self.state {
            State::OpenSent => fsm::UNEXPECTED_IN_OPEN_SENT,
            State::OpenConfirm => fsm::UNEXPECTED_IN_OPEN_CONFIRM,
            State::Established => fsm::UNEXPECTED_IN_ESTABLISHED,
            _ => 0,
        };
        let n = Notification::new(Code::Fsm, subcode, Vec::new());
        let reason = format!("BGP Error: {n}");
        if self.connected() {
            out.push(Action::Send(Message::Notification(n)));
        }
        self.go_idle(out, reason, true);
    }

    /// RFC 4271 §8.2.2 Established: each KEEPALIVE or UPDATE sent restarts the
    /// KeepaliveTimer, unless the negotiated hold time is zero.
    fn restart_keepalive(&self, out: &mut Vec<Action>) {
        if let Some(s) = &self.session
            && s.keepalive > 0
        {
            out.push(Action::Start(Timer::Keepalive, s.keepalive));
        }
    }

    /// RFC 2918 §4: a ROUTE-REFRESH for every negotiated family, only when Established and
    /// the peer announced the capability.
    fn request_refresh(&self, out: &mut Vec<Action>) {
        let Some(s) = self.session.as_ref().filter(|s| s.route_refresh) else {
            return;
        };
        if self.state != State::Established {
            return;
        }
        for f in &s.families {
            out.push(Action::Send(Message::RouteRefresh(RouteRefresh {
                afi: f.afi,
                subtype: RouteRefresh::REQUEST,
                safi: f.safi,
            })));
        }
    }

    /// RFC 4724 §3: the Restart State bit says the sender has restarted; once the restart
    /// is over, OPENs go without it.
    fn restart_complete(&mut self) {
        for p in &mut self.params.local_open.params {
            if let OptParam::Capabilities { capabilities } = p {
                for c in capabilities {
                    if let Capability::GracefulRestart(g) = c {
                        g.flags &= !GracefulRestart::RESTART_STATE;
                    }
                }
            }
        }
    }

    fn restart_hold(&self, s: &Session, out: &mut Vec<Action>) {
        if s.hold_time > 0 {
            out.push(Action::Start(Timer::Hold, s.hold_time));
        } else {
            out.push(Action::Stop(Timer::Hold));
        }
    }

    fn restart_hold_current(&self, out: &mut Vec<Action>) {
        if let Some(s) = &self.session {
            self.restart_hold(s, out);
        }
    }

    /// Back to Idle: close, stop timers, and (after an error) wait before starting again,
    /// doubling the wait each time up to its maximum.
    fn go_idle(&mut self, out: &mut Vec<Action>, reason: String, error: bool) {
        out.push(Action::Disconnect);
        for t in [
            Timer::ConnectRetry,
            Timer::Hold,
            Timer::Keepalive,
            Timer::ErrorForget,
        ] {
            out.push(Action::Stop(t));
        }
        let graceful = self.state == State::Established && std::mem::take(&mut self.transport_lost);
        if self.state == State::Established {
            out.push(Action::Down {
                reason: reason.clone(),
                graceful,
            });
        }
        if error {
            out.push(Action::Error(reason));
        }
        self.state = State::Idle;
        let session = self.session.take();
        if self.enabled {
            // A peer restarting under graceful restart reconnects at once and is let in
            // (RFC 4724 §4.2): no error wait, and no longer wait next time. It leaves Idle
            // at once, since Idle refuses its new connection, which may already be here.
            let restarting = graceful
                && session
                    .as_ref()
                    .is_some_and(|s| s.peer_graceful_restart.is_some());
            if restarting {
                self.start(out);
            } else {
                out.push(Action::Start(Timer::IdleHold, self.error_wait));
            }
            if error && !restarting {
                self.error_wait =
                    (self.error_wait.saturating_mul(2)).min(self.params.error_wait[1]);
            }
        }
    }

    /// RFC 4271 §6.2 OPEN checks, RFC 6286 for the identifier, RFC 5492 §5 for capabilities.
    fn check_open(&self, o: &Open) -> Result<(), Notification> {
        let err = |sub, data: Vec<u8>| Err(Notification::new(Code::Open, sub, data));
        if o.version != 4 {
            // The data is the highest version we support.
            return err(open_err::UNSUPPORTED_VERSION, vec![0, 4]);
        }
        if o.asn() != self.params.peer_asn {
            return err(open_err::BAD_PEER_AS, o.my_as.to_be_bytes().to_vec());
        }
        let internal = self.params.peer_asn == self.params.local_asn;
        if o.bgp_id.is_unspecified() || (internal && o.bgp_id == self.params.local_id) {
            return err(open_err::BAD_BGP_IDENTIFIER, o.bgp_id.octets().to_vec());
        }
        if o.hold_time == 1 || o.hold_time == 2 {
            return err(open_err::UNACCEPTABLE_HOLD_TIME, Vec::new());
        }
        if let Some(wire::open::OptParam::Other { param_type, .. }) = o
            .params
            .iter()
            .find(|p| matches!(p, wire::open::OptParam::Other { .. }))
        {
            return err(open_err::UNSUPPORTED_OPTIONAL_PARAMETER, vec![*param_type]);
        }
        if common_families(&self.params.local_open, o).is_empty() {
            // RFC 5492 §5: the data lists the capabilities we need (our multiprotocol ones).
            let mut data = Vec::new();
            for f in self.params.local_open.families() {
                data.extend_from_slice(&[1, 4]);
                data.extend_from_slice(&f.afi.0.to_be_bytes());
                data.extend_from_slice(&[0, f.safi.0]);
            }
            return err(open_err::UNSUPPORTED_CAPABILITY, data);
        }
        Ok(())
    }
}

/// The Cease a deconfigured or administratively stopped peer gets (RFC 8203).
pub fn cease(subcode: u8, message: &str) -> Notification {
    Notification::shutdown(subcode, message)
}

/// Cease / Connection Collision Resolution (RFC 4271 §6.8, RFC 4486).
pub fn collision() -> Notification {
    Notification::new(
        Code::Cease,
        cease::CONNECTION_COLLISION_RESOLUTION,
        Vec::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PeerDefaults;
    use crate::session::caps::local_open;

    const ME: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

    fn params(passive: bool) -> Params {
        Params {
            local_open: local_open(64512, ME, &PeerDefaults::default(), false),
            local_asn: 64512,
            local_id: ME,
            peer_asn: 64512,
            keepalive: None,
            passive,
            connect_delay: 2,
            connect_retry: 5,
            error_wait: [5, 30],
        }
    }

    fn peer_open(hold: u16) -> Open {
        let d = PeerDefaults {
            hold_time: hold,
            ..PeerDefaults::default()
        };
        local_open(64512, PEER, &d, false)
    }

    fn sends(actions: &[Action]) -> Vec<&Message> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    fn established(passive: bool) -> Fsm {
        let mut f = Fsm::new(params(passive));
        f.handle(Event::Start);
        f.handle(Event::Connected);
        f.handle(Event::Message(Message::Open(peer_open(9))));
        let a = f.handle(Event::Message(Message::Keepalive));
        assert!(a.iter().any(|a| matches!(a, Action::Up(_))));
        assert_eq!(f.state(), State::Established);
        f
    }

    #[test]
    fn active_peer_dials_after_connect_delay() {
        let mut f = Fsm::new(params(false));
        assert_eq!(
            f.handle(Event::Start),
            vec![
                Action::Stop(Timer::IdleHold),
                Action::Start(Timer::ConnectRetry, 2)
            ]
        );
        assert_eq!(f.state(), State::Active);
        let a = f.handle(Event::Expired(Timer::ConnectRetry));
        assert_eq!(
            a,
            vec![Action::Connect, Action::Start(Timer::ConnectRetry, 5)]
        );
        assert_eq!(f.state(), State::Connect);
        // Dial failed: Active, then the retry timer dials again.
        f.handle(Event::Closed);
        assert_eq!(f.state(), State::Active);
        let a = f.handle(Event::Expired(Timer::ConnectRetry));
        assert!(a.contains(&Action::Connect));
    }

    #[test]
    fn passive_peer_never_dials() {
        let mut f = Fsm::new(params(true));
        assert_eq!(f.handle(Event::Start), vec![Action::Stop(Timer::IdleHold)]);
        assert!(f.handle(Event::Expired(Timer::ConnectRetry)).is_empty());
        let a = f.handle(Event::Connected);
        assert!(matches!(sends(&a)[..], [Message::Open(_)]));
        assert!(a.contains(&Action::Start(Timer::Hold, 240)));
        assert_eq!(f.state(), State::OpenSent);
    }

    #[test]
    fn open_exchange_negotiates_timers() {
        let mut f = Fsm::new(params(true));
        f.handle(Event::Start);
        f.handle(Event::Connected);
        let a = f.handle(Event::Message(Message::Open(peer_open(9))));
        assert_eq!(sends(&a), vec![&Message::Keepalive]);
        assert!(a.contains(&Action::Start(Timer::Hold, 9)));
        assert!(a.contains(&Action::Start(Timer::Keepalive, 3)));
        assert_eq!(f.state(), State::OpenConfirm);
        let a = f.handle(Event::Expired(Timer::Keepalive));
        assert_eq!(
            a,
            vec![
                Action::Send(Message::Keepalive),
                Action::Start(Timer::Keepalive, 3)
            ]
        );
    }

    #[test]
    fn open_errors() {
        type Change = Box<dyn Fn(&mut Open)>;
        let cases: Vec<(Change, u8)> = vec![
            (Box::new(|o| o.version = 3), open_err::UNSUPPORTED_VERSION),
            (
                Box::new(|o| {
                    o.params.clear();
                    o.my_as = 65000;
                }),
                open_err::BAD_PEER_AS,
            ),
            (
                Box::new(|o| o.bgp_id = Ipv4Addr::UNSPECIFIED),
                open_err::BAD_BGP_IDENTIFIER,
            ),
            (Box::new(|o| o.bgp_id = ME), open_err::BAD_BGP_IDENTIFIER),
            (
                Box::new(|o| o.hold_time = 2),
                open_err::UNACCEPTABLE_HOLD_TIME,
            ),
            (
                Box::new(|o| {
                    o.params.push(wire::open::OptParam::Other {
                        param_type: 1,
                        data: vec![],
                    })
                }),
                open_err::UNSUPPORTED_OPTIONAL_PARAMETER,
            ),
            (
                Box::new(|o| {
                    o.params = vec![wire::open::OptParam::Capabilities {
                        capabilities: vec![
                            wire::Capability::Multiprotocol {
                                afi: wire::Afi(25),
                                safi: wire::Safi(65),
                            },
                            wire::Capability::FourOctetAs { asn: 64512 },
                        ],
                    }]
                }),
                open_err::UNSUPPORTED_CAPABILITY,
            ),
        ];
        for (change, subcode) in cases {
            let mut f = Fsm::new(params(true));
            f.handle(Event::Start);
            f.handle(Event::Connected);
            let mut o = peer_open(9);
            change(&mut o);
            let a = f.handle(Event::Message(Message::Open(o)));
            match sends(&a)[..] {
                [Message::Notification(n)] => assert_eq!((n.code, n.subcode), (2, subcode)),
                ref other => panic!("expected a NOTIFICATION, got {other:?}"),
            }
            assert_eq!(f.state(), State::Idle);
            assert!(a.contains(&Action::Disconnect));
            assert!(a.contains(&Action::Start(Timer::IdleHold, 5)));
        }
    }

    /// RFC 5882 §4.3: BFD Down takes the session down at once, not as a graceful restart
    /// even when the peer could restart gracefully, and it stays down until started again.
    #[test]
    fn path_down_ends_the_session_for_good() {
        let mut f = established(false);
        assert!(
            f.session()
                .is_some_and(|s| s.peer_graceful_restart.is_some())
        );
        let a = f.handle(Event::PathDown);
        assert!(a.contains(&Action::Disconnect));
        assert!(a.iter().any(|a| matches!(
            a,
            Action::Down {
                graceful: false,
                ..
            }
        )));
        assert!(!a.iter().any(|a| matches!(a, Action::Start(..))));
        assert!(sends(&a).is_empty(), "the path is gone: no NOTIFICATION");
        assert_eq!(f.state(), State::Idle);
        assert!(f.handle(Event::Expired(Timer::IdleHold)).is_empty());
        f.handle(Event::Start);
        assert_eq!(f.state(), State::Active);
        // Before a session, it only keeps the machine from starting.
        let mut f = Fsm::new(params(false));
        assert!(f.handle(Event::PathDown).is_empty());
    }

    #[test]
    fn established_traffic_and_hold_expiry() {
        let mut f = established(false);
        let a = f.handle(Event::Message(Message::Update(Update::default())));
        assert!(a.contains(&Action::Start(Timer::Hold, 9)));
        assert!(matches!(
            a.last(),
            Some(Action::Deliver {
                withdraw_all: false,
                ..
            })
        ));
        let a = f.handle(Event::Expired(Timer::Hold));
        match sends(&a)[..] {
            [Message::Notification(n)] => assert_eq!(n.code, 4),
            ref other => panic!("{other:?}"),
        }
        assert!(a.iter().any(|a| matches!(
            a,
            Action::Down {
                graceful: false,
                ..
            }
        )));
        assert_eq!(f.state(), State::Idle);
        // With the N bit on both sides a Cease other than Hard Reset is graceful too
        // (RFC 8538 §4); a Hard Reset is not.
        let mut f = established(false);
        let a = f.handle(Event::Message(Message::Notification(cease(
            cease::ADMINISTRATIVE_SHUTDOWN,
            "restarting",
        ))));
        assert!(
            a.iter()
                .any(|a| matches!(a, Action::Down { graceful: true, .. }))
        );
        let mut f = established(false);
        let hard = cease(cease::ADMINISTRATIVE_SHUTDOWN, "off").hard_reset();
        let a = f.handle(Event::Message(Message::Notification(hard)));
        assert!(a.iter().any(|a| matches!(
            a,
            Action::Down {
                graceful: false,
                ..
            }
        )));
        // A lost connection (no NOTIFICATION) is the graceful-restart case.
        let mut f = established(false);
        let a = f.handle(Event::Closed);
        assert!(
            a.iter()
                .any(|a| matches!(a, Action::Down { graceful: true, .. }))
        );
        // The peer negotiated graceful restart: it is let back in at once (RFC 4724 §4.2),
        // its new connection taken however soon it comes.
        assert_eq!(f.state(), State::Active, "{a:?}");
        let a = f.handle(Event::Connected);
        assert!(matches!(sends(&a)[..], [Message::Open(_)]), "{a:?}");
        assert_eq!(f.state(), State::OpenSent);
    }

    #[test]
    fn error_wait_doubles_and_caps() {
        let mut f = Fsm::new(params(true));
        f.handle(Event::Start);
        let mut waits = Vec::new();
        for _ in 0..5 {
            f.handle(Event::Connected);
            let a = f.handle(Event::Message(Message::Keepalive)); // unexpected in OpenSent
            waits.extend(a.iter().filter_map(|a| match a {
                Action::Start(Timer::IdleHold, s) => Some(*s),
                _ => None,
            }));
            f.handle(Event::Expired(Timer::IdleHold));
        }
        assert_eq!(waits, vec![5, 10, 20, 30, 30]);
    }

    #[test]
    fn unexpected_messages_are_fsm_errors() {
        let mut f = established(true);
        let a = f.handle(Event::Message(Message::Open(peer_open(9))));
        match sends(&a)[..] {
            [Message::Notification(n)] => assert_eq!((n.code, n.subcode), (5, 3)),
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn treat_as_withdraw_keeps_the_session() {
        let mut f = established(true);
        let mut e = wire::Error::attribute(WireAction::TreatAsWithdraw, 6, vec![], "bad origin");
        e.update = Some(Box::default());
        let a = f.handle(Event::Malformed(e));
        assert!(a.iter().any(|a| matches!(
            a,
            Action::Deliver {
                withdraw_all: true,
                ..
            }
        )));
        assert_eq!(f.state(), State::Established);
        let reset = wire::Error::reset(Code::Update, 1, vec![], "bad list");
        let a = f.handle(Event::Malformed(reset));
        assert!(
            matches!(sends(&a)[..], [Message::Notification(n)] if n.code == 3 && n.subcode == 1)
        );
        assert_eq!(f.state(), State::Idle);
    }

    #[test]
    fn manual_stop_sends_cease_and_stays_idle() {
        // Shutting down to restart: the Cease goes as it is; the peer keeps our routes.
        let mut f = established(false);
        let a = f.handle(Event::Shutdown(cease(
            cease::ADMINISTRATIVE_SHUTDOWN,
            "maintenance",
        )));
        assert!(
            matches!(sends(&a)[..], [Message::Notification(n)] if n.shutdown_message() == Some("maintenance"))
        );
        // The operator's stop, with the N bit on both sides: a Hard Reset wrapping the Cease
        // (RFC 8538 §3), so the peer flushes our routes.
        let mut f = established(false);
        let a = f.handle(Event::Stop(cease(cease::ADMINISTRATIVE_SHUTDOWN, "off")));
        assert!(
            matches!(sends(&a)[..], [Message::Notification(n)]
                if n.subcode == cease::HARD_RESET && n.data.first() == Some(&cease::ADMINISTRATIVE_SHUTDOWN)),
            "{a:?}"
        );
        assert!(
            !a.iter()
                .any(|a| matches!(a, Action::Start(Timer::IdleHold, _)))
        );
        assert!(f.handle(Event::Expired(Timer::IdleHold)).is_empty());
        assert_eq!(f.state(), State::Idle);
    }

    #[test]
    fn replaced_connection_restarts_the_open_exchange() {
        let mut f = established(true);
        let a = f.handle(Event::Replaced);
        assert!(a.iter().any(|a| matches!(a, Action::Down { .. })));
        assert!(matches!(sends(&a)[..], [Message::Open(_)]));
        assert_eq!(f.state(), State::OpenSent);
        f.handle(Event::Message(Message::Open(peer_open(9))));
        assert_eq!(f.state(), State::OpenConfirm);
    }

    #[test]
    fn idle_refuses_connections() {
        let mut f = Fsm::new(params(true));
        assert_eq!(f.handle(Event::Connected), vec![Action::Disconnect]);
    }
}
