//! The session state machine against RFC 4271 §8.2.2, as a table of every (state, event)
//! pair it models, and as a property over random event sequences.
//!
//! Where wren departs from the RFC's text it does so as BIRD does, and the row says so:
//! an active peer waits its connect delay in Active (not Connect) before dialling; a failed
//! dial waits for the ConnectRetryTimer in Active; the RFC's ConnectRetryCounter and
//! DampPeerOscillations are BIRD's error wait, doubled after each error up to its maximum and
//! back to its minimum after `ERROR_FORGET` in Established. A timer the machine did not start
//! cannot expire (the peer task runs only the timers it was told to), so an expiry in a state
//! where that timer does not run is ignored rather than treated as the RFC's "other event".

use std::collections::HashSet;
use std::net::Ipv4Addr;

use bytes::Bytes;
use proptest::prelude::*;
use wren::config::PeerDefaults;
use wren::session::caps::local_open;
use wren::session::fsm::{Action, Event, Fsm, Keep, Params, State, Timer, cease};
use wren::wire::notification::{Code, cease as cease_sub, fsm as fsm_sub};
use wren::wire::open::{GracefulRestart, OptParam};
use wren::wire::{self, Afi, Capability, Message, Notification, Open, RouteRefresh, Safi, Update};

const ME: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// Connect delay, connect retry, error wait and the hold time the peer offers.
const DELAY: u16 = 2;
const RETRY: u16 = 5;
const WAIT: [u16; 2] = [5, 30];
const HOLD: u16 = 9;
/// RFC 4271 §8.2.2: "a large value", suggested 4 minutes, while waiting for the OPEN.
const OPEN_HOLD: u16 = 240;
/// BIRD's error forget time.
const FORGET: u16 = 300;

fn params(passive: bool, restarting: bool) -> Params {
    Params {
        local_open: local_open(64512, ME, &PeerDefaults::default(), restarting),
        local_asn: 64512,
        local_id: ME,
        peer_asn: 64512,
        keepalive: None,
        passive,
        connect_delay: DELAY,
        connect_retry: RETRY,
        error_wait: WAIT,
    }
}

fn peer_open(hold: u16) -> Open {
    let d = PeerDefaults {
        hold_time: hold,
        ..PeerDefaults::default()
    };
    local_open(64512, PEER, &d, false)
}

/// The events of the table, one of each kind the machine takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum E {
    Start,
    Stop,
    Shutdown,
    RetryExpires,
    HoldExpires,
    KeepaliveExpires,
    IdleHoldExpires,
    ForgetExpires,
    Connected,
    Closed,
    Open,
    BadOpen,
    Keepalive,
    Update,
    Refresh,
    Notification,
    Malformed,
    Withdraw,
    Replaced,
    Updates,
    RequestRefresh,
    RestartComplete,
}

const EVENTS: [E; 22] = [
    E::Start,
    E::Stop,
    E::Shutdown,
    E::RetryExpires,
    E::HoldExpires,
    E::KeepaliveExpires,
    E::IdleHoldExpires,
    E::ForgetExpires,
    E::Connected,
    E::Closed,
    E::Open,
    E::BadOpen,
    E::Keepalive,
    E::Update,
    E::Refresh,
    E::Notification,
    E::Malformed,
    E::Withdraw,
    E::Replaced,
    E::Updates,
    E::RequestRefresh,
    E::RestartComplete,
];

const STATES: [State; 6] = [
    State::Idle,
    State::Connect,
    State::Active,
    State::OpenSent,
    State::OpenConfirm,
    State::Established,
];

fn stop_cease() -> Notification {
    cease(cease_sub::ADMINISTRATIVE_SHUTDOWN, "off")
}

fn shutdown_cease() -> Notification {
    cease(cease_sub::ADMINISTRATIVE_SHUTDOWN, "restarting")
}

fn peer_notification() -> Notification {
    Notification::new(Code::Cease, cease_sub::ADMINISTRATIVE_RESET, Vec::new())
}

fn reset_error() -> wire::Error {
    wire::Error::reset(Code::Update, 1, vec![], "bad list")
}

fn withdraw_error() -> wire::Error {
    let mut e = wire::Error::attribute(wire::Action::TreatAsWithdraw, 6, vec![], "bad origin");
    e.update = Some(Box::default());
    e
}

fn refresh() -> RouteRefresh {
    RouteRefresh {
        afi: Afi::IPV4,
        subtype: RouteRefresh::REQUEST,
        safi: Safi::UNICAST,
    }
}

fn updates() -> Bytes {
    Bytes::from_static(b"encoded UPDATEs")
}

fn event(e: E) -> Event {
    match e {
        E::Start => Event::Start,
        E::Stop => Event::Stop(stop_cease()),
        E::Shutdown => Event::Shutdown(shutdown_cease()),
        E::RetryExpires => Event::Expired(Timer::ConnectRetry),
        E::HoldExpires => Event::Expired(Timer::Hold),
        E::KeepaliveExpires => Event::Expired(Timer::Keepalive),
        E::IdleHoldExpires => Event::Expired(Timer::IdleHold),
        E::ForgetExpires => Event::Expired(Timer::ErrorForget),
        E::Connected => Event::Connected,
        E::Closed => Event::Closed,
        E::Open => Event::Message(Message::Open(peer_open(HOLD))),
        E::BadOpen => Event::Message(Message::Open(peer_open(2))),
        E::Keepalive => Event::Message(Message::Keepalive),
        E::Update => Event::Message(Message::Update(Update::default())),
        E::Refresh => Event::Message(Message::RouteRefresh(refresh())),
        E::Notification => Event::Message(Message::Notification(peer_notification())),
        E::Malformed => Event::Malformed(reset_error()),
        E::Withdraw => Event::Malformed(withdraw_error()),
        E::Replaced => Event::Replaced,
        E::Updates => Event::Updates(updates()),
        E::RequestRefresh => Event::RequestRefresh,
        E::RestartComplete => Event::RestartComplete,
    }
}

/// An active peer's machine in `state`, reached the ordinary way: Start (Active), the
/// connect delay (Connect), the TCP connection (OpenSent), the peer's OPEN (OpenConfirm),
/// its KEEPALIVE (Established). Idle is a machine never started.
fn at(state: State) -> Fsm {
    let mut f = Fsm::new(params(false, false));
    let path = [
        (E::Start, State::Active),
        (E::RetryExpires, State::Connect),
        (E::Connected, State::OpenSent),
        (E::Open, State::OpenConfirm),
        (E::Keepalive, State::Established),
    ];
    for (e, next) in path {
        if f.state() == state {
            break;
        }
        f.handle(event(e));
        assert_eq!(f.state(), next);
    }
    assert_eq!(f.state(), state);
    f
}

/// The timers every way into Idle stops.
const SESSION_TIMERS: [Timer; 4] = [
    Timer::ConnectRetry,
    Timer::Hold,
    Timer::Keepalive,
    Timer::ErrorForget,
];

/// Going to Idle (RFC 4271 §8.2.2, every state's error and stop rows): the NOTIFICATION
/// first if one is due, then drop the connection and stop the timers; `down` (with its
/// `graceful` flag) when leaving Established; the reason as the last error after an error;
/// and the wait before starting again while the peer stays enabled.
fn to_idle(
    send: Option<Notification>,
    reason: &str,
    down: Option<bool>,
    error: bool,
    wait: Option<u16>,
) -> Vec<Action> {
    let mut a: Vec<Action> = send
        .map(|n| Action::Send(Message::Notification(n)))
        .into_iter()
        .collect();
    a.push(Action::Disconnect);
    a.extend(SESSION_TIMERS.map(Action::Stop));
    if let Some(graceful) = down {
        a.push(Action::Down {
            reason: reason.into(),
            graceful,
        });
    }
    if error {
        a.push(Action::Error(reason.into()));
    }
    if let Some(w) = wait {
        a.push(Action::Start(Timer::IdleHold, w));
    }
    a
}

/// RFC 4271 §6.6 / RFC 6608: a message the state does not expect.
fn fsm_error(state: State) -> Vec<Action> {
    let (subcode, connected) = match state {
        State::OpenSent => (fsm_sub::UNEXPECTED_IN_OPEN_SENT, true),
        State::OpenConfirm => (fsm_sub::UNEXPECTED_IN_OPEN_CONFIRM, true),
        State::Established => (fsm_sub::UNEXPECTED_IN_ESTABLISHED, true),
        _ => (0, false),
    };
    let n = Notification::new(Code::Fsm, subcode, Vec::new());
    let reason = format!("BGP Error: {n}");
    let down = (state == State::Established).then_some(false);
    to_idle(connected.then_some(n), &reason, down, true, Some(WAIT[0]))
}

/// A malformed message that resets the session (RFC 4271 §6.1-§6.3, RFC 7606 §2).
fn malformed(state: State, e: wire::Error) -> Vec<Action> {
    let n = Notification {
        code: e.code,
        subcode: e.subcode,
        data: e.data.clone(),
    };
    let reason = format!("BGP Error: {n} ({})", e.reason);
    let connected = matches!(
        state,
        State::OpenSent | State::OpenConfirm | State::Established
    );
    let down = (state == State::Established).then_some(false);
    to_idle(connected.then_some(n), &reason, down, true, Some(WAIT[0]))
}

/// The NOTIFICATION the peer sent (RFC 4271 §8.2.2 event 25; RFC 8538 §4: with the N bit
/// on both sides, anything but a Hard Reset leaves its routes kept, and a peer that
/// restarts gracefully is let back in at once, `let_back`).
fn received(f: &Fsm) -> (State, Vec<Action>) {
    let reason = format!("Received: {}", peer_notification());
    if f.state() == State::Established {
        let_back(f, to_idle(None, &reason, Some(true), true, None))
    } else {
        (
            State::Idle,
            to_idle(None, &reason, None, true, Some(WAIT[0])),
        )
    }
}

/// After going to Idle with `a`: a peer that can restart gracefully is let back in at once
/// (RFC 4724 §4.2), an automatic start (§8.2.2 event 3) straight to Active, since Idle
/// would refuse the connection of a peer already back.
fn let_back(f: &Fsm, mut a: Vec<Action>) -> (State, Vec<Action>) {
    a.push(Action::Stop(Timer::IdleHold));
    if !f.params.passive {
        a.push(Action::Start(Timer::ConnectRetry, DELAY));
    }
    (State::Active, a)
}

/// The operator's stop and the shutdown: a Cease if connected (RFC 4271 §8.2.2 ManualStop,
/// RFC 8203); after the OPEN exchange the operator's is a Hard Reset (RFC 8538 §3).
fn stopped(state: State, n: Notification, operator: bool) -> Vec<Action> {
    let reason = format!("Shutdown: {n}");
    let send = match state {
        State::OpenSent => Some(n),
        State::OpenConfirm | State::Established if operator => Some(n.hard_reset()),
        State::OpenConfirm | State::Established => Some(n),
        _ => None,
    };
    let down = (state == State::Established).then_some(false);
    to_idle(send, &reason, down, false, None)
}

/// OPEN sent on a new connection, with a hold time long enough for the peer's OPEN.
fn send_open(f: &Fsm) -> Vec<Action> {
    vec![
        Action::Send(Message::Open(f.params.local_open.clone())),
        Action::Start(Timer::Hold, OPEN_HOLD),
    ]
}

/// The next state and the actions RFC 4271 §8.2.2 (and the RFCs cited) give `e` in the
/// state `f` is in. Pairs not listed change nothing and do nothing.
fn expected(f: &Fsm, e: E) -> Option<(State, Vec<Action>)> {
    use State::*;
    let hold_expired = || {
        let n = Notification::new(Code::HoldTimerExpired, 0, Vec::new());
        let down = (f.state() == Established).then_some(false);
        to_idle(
            Some(n),
            "BGP Error: Hold timer expired",
            down,
            true,
            Some(WAIT[0]),
        )
    };
    let rows = match (f.state(), e) {
        // §8.2.2 Idle: ManualStart/AutomaticStart (events 1, 3-5) leave Idle; a
        // connection is refused; every other event changes nothing. wren waits the connect
        // delay in Active, accepting the peer's connection meanwhile (BIRD's start delay).
        (Idle, E::Start) => (
            Active,
            vec![
                Action::Stop(Timer::IdleHold),
                Action::Start(Timer::ConnectRetry, DELAY),
            ],
        ),
        (Idle, E::Connected) => (Idle, vec![Action::Disconnect]),

        // §8.2.2 Connect and Active: ManualStop (event 2) drops everything and goes Idle.
        (Connect | Active, E::Stop) => (Idle, stopped(f.state(), stop_cease(), true)),
        (Connect | Active, E::Shutdown) => (Idle, stopped(f.state(), shutdown_cease(), false)),
        // Event 9, ConnectRetryTimer_Expires: drop any connection attempt, dial again,
        // restart the timer, go to (or stay in) Connect.
        (Connect, E::RetryExpires) => (
            Connect,
            vec![
                Action::Disconnect,
                Action::Connect,
                Action::Start(Timer::ConnectRetry, RETRY),
            ],
        ),
        (Active, E::RetryExpires) => (
            Connect,
            vec![Action::Connect, Action::Start(Timer::ConnectRetry, RETRY)],
        ),
        // Events 16/17: stop the ConnectRetryTimer, send OPEN, hold timer 4 minutes,
        // OpenSent.
        (Connect | Active, E::Connected) => {
            let mut a = vec![Action::Stop(Timer::ConnectRetry)];
            a.extend(send_open(f));
            (OpenSent, a)
        }
        // Event 18 in Connect: the dial failed; wait for the ConnectRetryTimer (still
        // running) in Active, as BIRD does, rather than in Idle.
        (Connect, E::Closed) => (Active, vec![]),
        // "Any other event" (19, 21-28): Idle, with the error wait. No connection, so no
        // NOTIFICATION.
        (Connect | Active, E::Open | E::BadOpen | E::Keepalive | E::Update | E::Refresh) => {
            (Idle, fsm_error(f.state()))
        }
        (Connect | Active, E::Notification) => received(f),
        (Connect | Active, E::Malformed) => (Idle, malformed(f.state(), reset_error())),
        (Connect | Active, E::Withdraw) => (Idle, malformed(f.state(), withdraw_error())),

        // §8.2.2 OpenSent, OpenConfirm, Established: ManualStop sends the Cease and goes
        // Idle.
        (OpenSent | OpenConfirm | Established, E::Stop) => {
            (Idle, stopped(f.state(), stop_cease(), true))
        }
        (OpenSent | OpenConfirm | Established, E::Shutdown) => {
            (Idle, stopped(f.state(), shutdown_cease(), false))
        }
        // Event 10, HoldTimer_Expires: NOTIFICATION Hold Timer Expired, Idle.
        (OpenSent | OpenConfirm | Established, E::HoldExpires) => (Idle, hold_expired()),
        // Event 18 in OpenSent: close, restart the ConnectRetryTimer, Active.
        (OpenSent, E::Closed) => (
            Active,
            vec![
                Action::Disconnect,
                Action::Stop(Timer::Hold),
                Action::Error("Socket: Connection closed".into()),
                Action::Start(Timer::ConnectRetry, RETRY),
            ],
        ),
        // Event 19 in OpenSent: KEEPALIVE, the negotiated hold time, the KeepaliveTimer at a
        // third of it, OpenConfirm.
        (OpenSent, E::Open) => (
            OpenConfirm,
            vec![
                Action::Send(Message::Keepalive),
                Action::Start(Timer::Hold, HOLD),
                Action::Start(Timer::Keepalive, HOLD / 3),
            ],
        ),
        // Event 22, BGPOpenMsgErr (§6.2: hold time 2 is unacceptable).
        (OpenSent, E::BadOpen) => {
            let n = Notification::new(Code::Open, 6, Vec::new());
            let reason = format!("BGP Error: {n}");
            (Idle, to_idle(Some(n), &reason, None, true, Some(WAIT[0])))
        }
        // Events 21-28 the state does not expect: FSM Error NOTIFICATION (RFC 6608 subcode
        // by state), Idle.
        (OpenSent, E::Keepalive | E::Update | E::Refresh)
        | (OpenConfirm, E::Open | E::BadOpen | E::Update | E::Refresh)
        | (Established, E::Open | E::BadOpen) => (Idle, fsm_error(f.state())),
        // Events 24/25: the peer's NOTIFICATION, Idle.
        (OpenSent | OpenConfirm | Established, E::Notification) => received(f),
        // Events 21/22/28: NOTIFICATION the codec chose, Idle (RFC 7606 §2: in Established a
        // treat-as-withdraw error keeps the session, below).
        (OpenSent | OpenConfirm | Established, E::Malformed) => {
            (Idle, malformed(f.state(), reset_error()))
        }
        (OpenSent | OpenConfirm, E::Withdraw) => (Idle, malformed(f.state(), withdraw_error())),
        // §6.8 collision or RFC 4724 §4.2 reconnect: the peer's connection replaced ours and
        // the OPEN exchange starts again on it.
        (OpenSent | OpenConfirm | Established, E::Replaced) => {
            let mut a = Vec::new();
            if f.state() == Established {
                a.push(Action::Down {
                    reason: "peer reconnected".into(),
                    graceful: true,
                });
            }
            a.extend([Timer::ConnectRetry, Timer::Keepalive, Timer::ErrorForget].map(Action::Stop));
            a.extend(send_open(f));
            (OpenSent, a)
        }

        // §8.2.2 OpenConfirm and Established, event 11: KEEPALIVE, restart the timer.
        (OpenConfirm | Established, E::KeepaliveExpires) => (
            f.state(),
            vec![
                Action::Send(Message::Keepalive),
                Action::Start(Timer::Keepalive, HOLD / 3),
            ],
        ),
        // OpenConfirm, event 18: Idle.
        (OpenConfirm, E::Closed) => (
            Idle,
            to_idle(None, "Socket: Connection closed", None, true, Some(WAIT[0])),
        ),
        // OpenConfirm, event 26 KeepAliveMsg: restart the hold timer, Established.
        (OpenConfirm, E::Keepalive) => {
            let s = f.session().expect("a session in OpenConfirm").clone();
            (
                Established,
                vec![
                    Action::Start(Timer::Hold, HOLD),
                    Action::Start(Timer::ErrorForget, FORGET),
                    Action::Up(Box::new(s)),
                ],
            )
        }

        // §8.2.2 Established, event 18: down without a NOTIFICATION, the case graceful
        // restart keeps routes for (RFC 4724 §4.2); the peer can restart, so no wait.
        (Established, E::Closed) => let_back(
            f,
            to_idle(None, "Socket: Connection closed", Some(true), true, None),
        ),
        // Events 26-28: each message restarts the hold timer; UPDATEs go to the RIB,
        // ROUTE-REFRESH asks for ours (RFC 2918 §4).
        (Established, E::Keepalive) => (Established, vec![Action::Start(Timer::Hold, HOLD)]),
        (Established, E::Update) => (
            Established,
            vec![
                Action::Start(Timer::Hold, HOLD),
                Action::Deliver {
                    update: Box::default(),
                    withdraw_all: false,
                },
            ],
        ),
        (Established, E::Refresh) => (
            Established,
            vec![Action::Start(Timer::Hold, HOLD), Action::Refresh(refresh())],
        ),
        // RFC 7606 §2 treat-as-withdraw: the session stays.
        (Established, E::Withdraw) => (
            Established,
            vec![
                Action::Start(Timer::Hold, HOLD),
                Action::Error("Error: malformed UPDATE: bad origin".into()),
                Action::Deliver {
                    update: Box::default(),
                    withdraw_all: true,
                },
            ],
        ),
        // Sending an UPDATE restarts the KeepaliveTimer (§8.2.2 Established).
        (Established, E::Updates) => (
            Established,
            vec![
                Action::Write(updates()),
                Action::Start(Timer::Keepalive, HOLD / 3),
            ],
        ),
        // RFC 2918 §4: ROUTE-REFRESH for every negotiated family.
        (Established, E::RequestRefresh) => (
            Established,
            [Afi::IPV4, Afi::IPV6]
                .map(|afi| {
                    Action::Send(Message::RouteRefresh(RouteRefresh {
                        afi,
                        subtype: RouteRefresh::REQUEST,
                        safi: Safi::UNICAST,
                    }))
                })
                .to_vec(),
        ),
        _ => return None,
    };
    Some(rows)
}

#[test]
fn every_state_and_event_as_rfc_4271_8_2_2_says() {
    let mut rows = 0;
    for state in STATES {
        for e in EVENTS {
            let mut f = at(state);
            let (next, actions) = expected(&f, e).unwrap_or((state, Vec::new()));
            let got = f.handle(event(e));
            assert_eq!(got, actions, "{state:?} × {e:?}: actions");
            assert_eq!(f.state(), next, "{state:?} × {e:?}: next state");
            rows += 1;
        }
    }
    assert_eq!(rows, 6 * 22);
}

/// Idle after an error, the peer still enabled: the IdleHoldTimer (event 13) starts it
/// again; after a stop it does not (§8.2.2 Idle: no automatic start after ManualStop).
#[test]
fn idle_hold_restarts_only_an_enabled_peer() {
    let mut f = at(State::OpenSent);
    f.handle(event(E::HoldExpires));
    assert_eq!(
        f.handle(Event::Expired(Timer::IdleHold)),
        vec![
            Action::Stop(Timer::IdleHold),
            Action::Start(Timer::ConnectRetry, DELAY)
        ]
    );
    assert_eq!(f.state(), State::Active);
    f.handle(event(E::Stop));
    assert!(f.handle(Event::Expired(Timer::IdleHold)).is_empty());
    assert_eq!(f.state(), State::Idle);
}

/// A passive peer never dials (§8.2.2 Idle, ManualStart_with_PassiveTcpEstablishment) and
/// after a closed OpenSent connection waits in Active without a ConnectRetryTimer.
#[test]
fn passive_peer_waits_in_active() {
    let mut f = Fsm::new(params(true, false));
    assert_eq!(f.handle(Event::Start), vec![Action::Stop(Timer::IdleHold)]);
    assert!(f.handle(Event::Expired(Timer::ConnectRetry)).is_empty());
    assert_eq!(f.state(), State::Active);
    f.handle(Event::Connected);
    let a = f.handle(Event::Closed);
    assert!(!a.iter().any(|a| matches!(a, Action::Start(..))), "{a:?}");
    assert_eq!(f.state(), State::Active);
}

/// Hold time 0 (RFC 4271 §4.2): no hold timer, no KEEPALIVEs, and sending UPDATEs starts
/// no KeepaliveTimer.
#[test]
fn hold_time_zero_runs_no_timers() {
    let mut f = at(State::OpenSent);
    let a = f.handle(Event::Message(Message::Open(peer_open(0))));
    assert_eq!(
        a,
        vec![Action::Send(Message::Keepalive), Action::Stop(Timer::Hold)]
    );
    f.handle(Event::Message(Message::Keepalive));
    assert_eq!(f.state(), State::Established);
    assert_eq!(
        f.handle(Event::Updates(updates())),
        vec![Action::Write(updates())]
    );
}

/// RFC 4271 §6.8: in OpenSent and OpenConfirm the connection dialled by the higher BGP
/// Identifier stays; in Established the existing one, unless the peer restarts gracefully
/// (RFC 4724 §4.2); before OpenSent there is nothing to keep.
#[test]
fn collision_resolution() {
    let higher = Ipv4Addr::new(198, 51, 100, 9);
    let lower = Ipv4Addr::new(198, 51, 100, 0);
    for state in [State::OpenSent, State::OpenConfirm] {
        let f = at(state);
        assert_eq!(f.collision(true, higher), Keep::New, "{state:?}");
        assert_eq!(f.collision(true, lower), Keep::Existing, "{state:?}");
        // Ours was the peer's too: the newer one (it has given up on the old).
        assert_eq!(f.collision(false, lower), Keep::New, "{state:?}");
    }
    for state in [State::Idle, State::Connect, State::Active] {
        assert_eq!(at(state).collision(true, lower), Keep::New, "{state:?}");
    }
    // The peer announced graceful restart: its new connection means it restarted.
    assert_eq!(at(State::Established).collision(true, lower), Keep::New);
    let mut f = Fsm::new(params(false, false));
    f.handle(Event::Start);
    f.handle(Event::Connected);
    let mut o = peer_open(HOLD);
    o.params = vec![OptParam::Capabilities {
        capabilities: vec![Capability::FourOctetAs { asn: 64512 }],
    }];
    f.handle(Event::Message(Message::Open(o)));
    f.handle(Event::Message(Message::Keepalive));
    assert_eq!(f.state(), State::Established);
    assert_eq!(f.collision(true, higher), Keep::Existing);
}

fn restart_flags(o: &Open) -> Option<u8> {
    o.capabilities().find_map(|c| match c {
        Capability::GracefulRestart(g) => Some(g.flags),
        _ => None,
    })
}

/// RFC 4724 §3: OPENs carry the Restart State bit while we restart, with our restart time,
/// and not once the restart is over.
#[test]
fn restart_state_bit_until_the_restart_is_over() {
    let mut f = Fsm::new(params(true, true));
    f.handle(Event::Start);
    let sent_open = |a: Vec<Action>| {
        a.into_iter().find_map(|a| match a {
            Action::Send(Message::Open(o)) => Some(o),
            _ => None,
        })
    };
    let o = sent_open(f.handle(Event::Connected)).expect("OPEN");
    let flags = restart_flags(&o).expect("graceful restart capability");
    assert_ne!(flags & GracefulRestart::RESTART_STATE, 0);
    assert!(o.capabilities().any(|c| matches!(c,
        Capability::GracefulRestart(g) if g.restart_time == PeerDefaults::default().restart_time)));
    assert!(f.handle(Event::RestartComplete).is_empty());
    let o = sent_open(f.handle(Event::Replaced)).expect("OPEN");
    assert_eq!(
        restart_flags(&o),
        Some(GracefulRestart::NOTIFICATION),
        "R clear, N kept"
    );
}

/// The error wait (the RFC's ConnectRetryCounter with DampPeerOscillations, as BIRD does
/// it) doubles after each error up to its maximum, and after ERROR_FORGET in Established
/// falls back to its minimum.
#[test]
fn error_wait_doubles_and_is_forgotten() {
    let mut f = at(State::Established);
    let mut waits = Vec::new();
    for _ in 0..4 {
        let a = f.handle(event(E::HoldExpires));
        waits.extend(idle_waits(&a));
        f.handle(Event::Expired(Timer::IdleHold));
        f.handle(Event::Expired(Timer::ConnectRetry));
        f.handle(Event::Connected);
        f.handle(event(E::Open));
        f.handle(event(E::Keepalive));
    }
    assert_eq!(waits, vec![5, 10, 20, 30]);
    f.handle(event(E::ForgetExpires));
    assert_eq!(idle_waits(&f.handle(event(E::HoldExpires))), vec![5]);
}

fn idle_waits(a: &[Action]) -> Vec<u16> {
    a.iter()
        .filter_map(|a| match a {
            Action::Start(Timer::IdleHold, w) => Some(*w),
            _ => None,
        })
        .collect()
}

// ---- The property test ----

/// A step of a random sequence: any event, or (`None`) the one that moves the session on
/// from its state, so that sequences reach Established often.
fn any_step() -> impl Strategy<Value = Option<E>> {
    prop_oneof![
        proptest::sample::select(EVENTS.to_vec()).prop_map(Some),
        Just(None),
    ]
}

/// The event that takes the session one state further the ordinary way.
fn onward(state: State, passive: bool) -> E {
    match state {
        State::Idle => E::Start,
        State::Active if !passive => E::RetryExpires,
        State::Connect | State::Active => E::Connected,
        State::OpenSent => E::Open,
        State::OpenConfirm => E::Keepalive,
        State::Established => E::Update,
    }
}

/// The timers that may run in each state once the machine has handled an event.
fn timers_allowed(state: State, t: Timer) -> bool {
    match t {
        // An IdleHold timer left from Idle is harmless: it is ignored outside Idle.
        Timer::IdleHold => true,
        Timer::ConnectRetry => matches!(state, State::Connect | State::Active),
        Timer::Hold => matches!(
            state,
            State::OpenSent | State::OpenConfirm | State::Established
        ),
        Timer::Keepalive => matches!(state, State::OpenConfirm | State::Established),
        Timer::ErrorForget => state == State::Established,
    }
}

/// The next states the table allows for `e` in `state`: its row (or no change), and for
/// the IdleHoldTimer in Idle either (it starts only a peer still enabled).
fn allowed_next(state: State, e: E) -> Vec<State> {
    let mut next = vec![expected(&at(state), e).map_or(state, |(s, _)| s)];
    if (state, e) == (State::Idle, E::IdleHoldExpires) {
        next.push(State::Active);
    }
    next
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_event_sequences_keep_the_invariants(
        passive in any::<bool>(),
        seq in proptest::collection::vec((any_step(), any::<bool>()), 1..80),
    ) {
        let mut f = Fsm::new(params(passive, false));
        // The timers the peer task runs: expiries come only from these, as there.
        let mut running: HashSet<Timer> = HashSet::new();
        for (step, hold_zero) in seq {
            let e = step.unwrap_or_else(|| onward(f.state(), passive));
            // A timer the peer task does not run cannot expire.
            let timer = match event(e) {
                Event::Expired(t) => Some(t),
                _ => None,
            };
            if timer.is_some_and(|t| !running.contains(&t)) {
                continue;
            }
            if let Some(t) = timer {
                running.remove(&t);
            }
            let from = f.state();
            let ev = match e {
                E::Open if hold_zero => Event::Message(Message::Open(peer_open(0))),
                _ => event(e),
            };
            let actions = f.handle(ev);
            let to = f.state();

            // Only the transitions of the table.
            let next = allowed_next(from, e);
            prop_assert!(next.contains(&to), "{from:?} × {e:?} → {to:?}, table: {next:?}");

            // Timers follow the actions, and only the state's timers run.
            for a in &actions {
                match a {
                    Action::Start(t, secs) => {
                        running.insert(*t);
                        match t {
                            Timer::ConnectRetry => prop_assert!(!passive && [DELAY, RETRY].contains(secs)),
                            Timer::IdleHold => prop_assert!(*secs == 0 || (WAIT[0]..=WAIT[1]).contains(secs)),
                            Timer::Hold => prop_assert!([HOLD, OPEN_HOLD].contains(secs)),
                            Timer::Keepalive => prop_assert_eq!(*secs, HOLD / 3),
                            Timer::ErrorForget => prop_assert_eq!(*secs, FORGET),
                        }
                    }
                    Action::Stop(t) => {
                        running.remove(t);
                    }
                    _ => {}
                }
            }
            for t in &running {
                prop_assert!(timers_allowed(to, *t), "{t:?} runs in {to:?} after {from:?} × {e:?}: {actions:?}");
            }
            if to == State::OpenSent {
                prop_assert!(running.contains(&Timer::Hold));
            }
            if matches!(to, State::OpenConfirm | State::Established) {
                let hold = f.session().map(|s| s.hold_time);
                prop_assert_eq!(running.contains(&Timer::Hold), hold != Some(0));
                prop_assert_eq!(running.contains(&Timer::Keepalive), hold != Some(0));
            }

            // Established only from OpenConfirm on the peer's KEEPALIVE; Up and Down mark
            // exactly the entry into and the exit from Established.
            let up = actions.iter().any(|a| matches!(a, Action::Up(_)));
            let down = actions.iter().any(|a| matches!(a, Action::Down { .. }));
            if to == State::Established && from != State::Established {
                prop_assert!(from == State::OpenConfirm && e == E::Keepalive);
            }
            prop_assert_eq!(up, to == State::Established && from != State::Established);
            prop_assert_eq!(down, from == State::Established && to != State::Established);

            // Messages go only on a connection; every error path from a connected state ends in
            // Idle with the NOTIFICATION the RFC gives, sent before the connection is dropped.
            let sent: Vec<&Notification> = actions
                .iter()
                .filter_map(|a| match a {
                    Action::Send(Message::Notification(n)) => Some(n),
                    _ => None,
                })
                .collect();
            let connected = |s: State| matches!(s, State::OpenSent | State::OpenConfirm | State::Established);
            if actions.iter().any(|a| matches!(a, Action::Send(_) | Action::Write(_))) {
                prop_assert!(connected(from) || connected(to), "{from:?} × {e:?}: {actions:?}");
            }
            if to == State::Idle && from != State::Idle {
                prop_assert!(actions.contains(&Action::Disconnect));
                for t in SESSION_TIMERS {
                    prop_assert!(actions.contains(&Action::Stop(t)));
                }
                let code = match e {
                    E::HoldExpires => Some((Code::HoldTimerExpired as u8, 0)),
                    E::BadOpen if from == State::OpenSent => Some((Code::Open as u8, 6)),
                    E::Malformed | E::Withdraw => Some((3, if e == E::Malformed { 1 } else { 6 })),
                    E::Stop | E::Shutdown => Some((Code::Cease as u8, 0)),
                    E::Notification | E::Closed => None,
                    _ => Some((Code::Fsm as u8, match from {
                        State::OpenSent => 1,
                        State::OpenConfirm => 2,
                        _ => 3,
                    })),
                };
                match code {
                    Some((code, subcode)) if connected(from) => {
                        prop_assert_eq!(sent.len(), 1, "{:?} × {:?}: {:?}", from, e, actions);
                        prop_assert_eq!(sent[0].code, code);
                        if code != Code::Cease as u8 {
                            prop_assert_eq!(sent[0].subcode, subcode);
                        }
                        let send = actions.iter().position(|a| matches!(a, Action::Send(_)));
                        let close = actions.iter().position(|a| *a == Action::Disconnect);
                        prop_assert!(send < close);
                    }
                    _ => prop_assert!(sent.is_empty(), "{:?} × {:?}: {:?}", from, e, actions),
                }
            }
        }
    }
}
