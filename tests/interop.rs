//! wrend against real BGP speakers: BIRD 2.0, BIRD 1.6 (bird + bird6), GoBGP, FRR and
//! OpenBGPD, each in a network namespace of its own joined to wrend's by a veth.
//!
//!     sudo bash tests/peers/install.sh      # once: the daemons (Debian packages)
//!     sudo cargo test --test interop        # all of them; `bird2::` etc. for one peer
//!
//! They need root and the peer daemons, and fail (never skip) without them. Per peer kind:
//! sessions over IPv4 with either side dialling and over IPv6, routes both ways with the
//! right next hops, TCP MD5, the hold timer, route refresh and graceful restart in both
//! directions. Work files (configs, daemon logs) stay in /tmp/wren-interop/<test>.<pid>/.
//! The scenarios are in tests/interop/, the lab and the peers in the shared tests/harness/.

mod harness;
#[path = "interop/scenarios.rs"]
mod scenarios;

use harness::lab::Fam;
use harness::peers::Kind;
use scenarios::Dial;

/// The tests every peer kind gets; `$id` prefixes the namespace and directory names.
macro_rules! common_tests {
    ($kind:expr, $id:literal) => {
        use super::*;
        const KIND: Kind = $kind;

        #[test]
        fn ipv4_wrend_dials() {
            scenarios::session(concat!($id, "-4w"), KIND, Fam::V4, Dial::Wren);
        }

        #[test]
        fn ipv4_peer_dials() {
            scenarios::session(concat!($id, "-4p"), KIND, Fam::V4, Dial::Peer);
        }

        /// Both sides dial, as in Calico's node mesh: connection collision (RFC 4271 §6.8).
        #[test]
        fn ipv4_both_dial() {
            scenarios::session(concat!($id, "-4b"), KIND, Fam::V4, Dial::Both);
        }

        #[test]
        fn ipv6_session() {
            scenarios::session(concat!($id, "-6"), KIND, Fam::V6, Dial::Wren);
        }

        #[test]
        fn md5_same_password_peer_dials() {
            scenarios::md5_match(concat!($id, "-md5p"), KIND, Dial::Peer);
        }

        #[test]
        fn md5_different_passwords() {
            scenarios::md5_mismatch(concat!($id, "-md5x"), KIND);
        }

        #[test]
        fn hold_timer_expires_when_peer_freezes() {
            scenarios::hold_timer(concat!($id, "-hold"), KIND);
        }

        #[test]
        fn graceful_restart_of_wrend() {
            scenarios::gr_wren_killed(concat!($id, "-grw"), KIND);
        }
    };
}

/// Against a peer scripted on wren's own codec, where the test needs timing no daemon gives.
mod scripted {
    use super::*;

    #[test]
    fn graceful_restart_timer_stops_when_the_peer_is_back() {
        scenarios::gr_receiving_speaker_restart_timer("gr-back");
    }
}

mod bird2 {
    common_tests!(Kind::Bird2, "bird2");

    #[test]
    fn md5_same_password_wrend_dials() {
        scenarios::md5_match("bird2-md5w", KIND, Dial::Wren);
    }

    #[test]
    fn route_refresh() {
        scenarios::route_refresh("bird2-rr", KIND);
    }

    #[test]
    fn graceful_restart_of_peer() {
        scenarios::gr_peer_killed("bird2-grp", KIND);
    }

    #[test]
    fn restart_state_bit_cleared_after_recovery() {
        scenarios::restart_state_cleared_after_recovery("bird2-rbit", KIND);
    }
}

mod bird16 {
    common_tests!(Kind::Bird16, "bird16");

    #[test]
    fn show_protocols_all_matches_bird() {
        scenarios::show_protocols_all_like_bird16("bird16-spa");
    }

    #[test]
    fn md5_same_password_wrend_dials() {
        scenarios::md5_match("bird16-md5w", KIND, Dial::Wren);
    }

    #[test]
    fn route_refresh() {
        scenarios::route_refresh("bird16-rr", KIND);
    }

    #[test]
    fn graceful_restart_of_peer() {
        scenarios::gr_peer_killed("bird16-grp", KIND);
    }
}

mod frr {
    common_tests!(Kind::Frr, "frr");

    #[test]
    fn md5_same_password_wrend_dials() {
        scenarios::md5_match("frr-md5w", KIND, Dial::Wren);
    }

    #[test]
    fn route_refresh() {
        scenarios::route_refresh("frr-rr", KIND);
    }

    #[test]
    fn graceful_restart_of_peer() {
        scenarios::gr_peer_killed("frr-grp", KIND);
    }
}

mod gobgp {
    // No route refresh test: GoBGP's CLI cannot make it send a ROUTE-REFRESH
    // (`softresetin` re-filters its own Adj-RIB-In; its "Route Refresh sent" stays 0).
    common_tests!(Kind::Gobgp, "gobgp");

    #[test]
    fn md5_same_password_wrend_dials() {
        scenarios::md5_match("gobgp-md5w", KIND, Dial::Wren);
    }

    #[test]
    fn graceful_restart_of_peer() {
        scenarios::gr_peer_killed("gobgp-grp", KIND);
    }

    #[test]
    fn own_route_not_sent_back_to_an_ebgp_peer() {
        scenarios::own_route_not_sent_back("gobgp-own", KIND, false);
    }

    #[test]
    fn own_route_not_reflected_back_to_a_client() {
        scenarios::own_route_not_sent_back("gobgp-ownrr", KIND, true);
    }
}

mod openbgpd {
    // No MD5 test with wrend dialling: OpenBGPD 7.7 on Linux does not key its listening
    // socket, so MD5-signed SYNs to it go unanswered (BIRD 2 dialling it fails the same way);
    // it signs the connections it opens itself, which md5_same_password_peer_dials covers.
    common_tests!(Kind::Openbgpd, "obgpd");

    #[test]
    fn route_refresh() {
        scenarios::route_refresh("obgpd-rr", KIND);
    }

    /// OpenBGPD's graceful restart capability has no address families (End-of-RIB only),
    /// so wrend must not keep its routes as stale.
    #[test]
    fn restart_of_peer_without_forwarding_state() {
        scenarios::gr_peer_killed_without_families("obgpd-grp", KIND);
    }
}
