//! The keywords of Calico's BIRD 1.6 build (every `CF_KEYWORDS` of its grammar files). BIRD's
//! scanner turns these into tokens, so a bare one can never name a function, filter, template,
//! protocol or variable; a `'quoted'` name can be anything.

use std::collections::HashSet;
use std::sync::LazyLock;

const KEYWORDS: &str = "\
accept action add address administrative advertise after algorithm all allow always area as \
as4 auth authentication autonomous aware babel babel_metric base bcast bfd bgp \
bgp_aggregator bgp_atomic_aggr bgp_cluster_list bgp_community bgp_ext_community \
bgp_large_community bgp_local_pref bgp_med bgp_next_hop bgp_origin bgp_originator_id \
bgp_path bgpmask bgppath blackhole block bool broadcast buffer bug capabilities case cast \
cease change check class client clist cluster collision commands communities config \
configuration confirm connect connection contains cost cost2 count cryptographic current \
dead debug deconfigured default define defined delay delete description dest deterministic \
dev device direct disable disabled dnssl domain drop dscp dual dump ec eclist ecmp eligible \
else empty enable entries error eval events export extended external false fatal filename \
filter filtered filters first flush for forget from function garbage gateway generate \
generic global graceful gw hello hidden high hit hmac hold hop horizon id idle if ifindex \
ifname ignore igp igp_metric import in infinity info instance int interface interfaces \
interpret interval ip ipv4 iso keep keepalive kernel keyed krt_advmss krt_cwnd \
krt_feature_allfrag krt_feature_ecn krt_hoplimit krt_initcwnd krt_initrwnd krt_lock_advmss \
krt_lock_cwnd krt_lock_hoplimit krt_lock_mtu krt_lock_reordering krt_lock_rto_min \
krt_lock_rtt krt_lock_rttvar krt_lock_sstresh krt_lock_window krt_metric krt_mtu krt_prefsrc \
krt_quickack krt_realm krt_reordering krt_rto_min krt_rtt krt_rttvar krt_scope krt_source \
krt_sstresh krt_tunnel krt_window large last last_nonaggregated latency lc lclist learn len \
length lifetime limit linger link listen lived lladdr local log long low lsa lsadb lsid \
managed mask match max md5 med medium memory merge messages meticulous metric min missing \
mode mrt mrtdump ms mtu mult multicast multihop multipath multiplier name nbma neighbor \
neighbors net netmask networks next no noexport nonbroadcast none normal ns nssa of off old \
older on onlink only opaque ospf ospf_metric1 ospf_metric2 ospf_router_id ospf_tag other out \
packets pair passive password passwords path paths peer period persist pipe plaintext \
pointomultipoint pointopoint poison poll port preexport prefer preference preferred prefix \
prepend primary print printn priority prohibit propagate proto protocol protocols ptmp ptp \
quad quitbird ra ra_lifetime ra_preference radv rdnss reachable real receive recursive \
refresh reject rejected reload remote reset resources restart restrict retrans retransmit \
retry return reverse rfc1583compat rip rip_metric rip_tag ro roa roa_check route router \
routes rr rs rt rx rxcost s scan scope secondary security self sensitive set setkey sha1 \
sha256 sha384 sha512 short show shutdown simple skip soft sorted source split stability \
stale start startup states static stats stderr strict string stub stubnet summary \
suppression syslog table tag template then tick time timeformat timeout timer to trace \
translator transmit transparent trigger true ttl tx type undo unknown unreachable unset \
update us v6only valid version via virtual vrf wait warn warning watchdog weight where wired \
wireless yes zero";

/// The keywords as a set: the parser asks for every name it reads (a 1000-peer `bird.cfg`
/// has tens of thousands), so a scan of the list each time is too slow for a reload.
static SET: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| KEYWORDS.split_ascii_whitespace().collect());

/// Whether `word` is one of BIRD 1.6's keywords.
pub fn is_keyword(word: &str) -> bool {
    SET.contains(word)
}
