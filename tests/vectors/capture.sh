#!/usr/bin/env bash
# Regenerates the golden BGP test vectors in tests/vectors/*.hex.
#
#   sudo bash tests/vectors/capture.sh            # all sessions
#   sudo bash tests/vectors/capture.sh bird2-gobgp  # only some (names below)
#
# For each pair of BGP speakers (Debian packages) it creates two network
# namespaces joined by a veth (198.51.100.1/24 + 2001:db8::1/64 on side A,
# .2 / ::2 on side B), runs one speaker in each, captures TCP port 179 with
# tcpdump, lets the session come up and exchange routes, withdraws some
# prefixes, triggers route refresh where noted, waits for KEEPALIVEs, and shuts
# the session down administratively (NOTIFICATION Cease).  bgpvec.py then
# reassembles each direction of the TCP stream and writes one .hex file per
# direction.  Only documentation addresses are used (198.51.100.0/24,
# 203.0.113.0/24, 192.0.2.0/24, 2001:db8::/32); nothing leaves the namespaces.
#
# Needs root, network namespaces, and apt (installs bird2 gobgpd frr openbgpd
# tcpdump if missing; BIRD 1.6.8 is unpacked from the Debian "bird" package
# into target/peers/ because it conflicts with bird2).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PEERS=$ROOT/target/peers
WORKBASE=$ROOT/target/vectors-work
OUT=$HERE
NA=wrenvec-a
NB=wrenvec-b
IFA=wv-a
IFB=wv-b
A4=198.51.100.1
B4=198.51.100.2
A6=2001:db8::1
B6=2001:db8::2
PY=${PYTHON:-python3}
ALL_PAIRS="bird2-gobgp bird2-frr bird16-bird2 openbgpd-bird2 gobgp-frr gobgp-bird16-as2"

log() { echo "[capture $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ setup

install_deps() {
    local need=()
    command -v bird >/dev/null || need+=(bird2)
    command -v gobgpd >/dev/null || need+=(gobgpd)
    [ -x /usr/lib/frr/bgpd ] || need+=(frr)
    command -v bgpctl >/dev/null || need+=(openbgpd)
    command -v tcpdump >/dev/null || need+=(tcpdump)
    command -v ip >/dev/null || need+=(iproute2)
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    if [ ! -x "$PEERS/bird16/usr/sbin/bird6" ]; then
        log "fetching BIRD 1.6 (Debian package bird) into $PEERS"
        mkdir -p "$PEERS"
        (cd "$PEERS" && rm -f bird_*.deb && apt-get download bird >/dev/null 2>&1 \
            && dpkg -x bird_*.deb bird16) || die "cannot download/unpack Debian package bird"
    fi
}

B16=$PEERS/bird16/usr/sbin
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
versions() {
    V_BIRD2="BIRD $(bird --version 2>&1 | awk '{print $3}') (Debian bird2 $(pkgver bird2))"
    local v16
    v16=$(ls "$PEERS"/bird_*.deb 2>/dev/null | head -1 | sed 's/.*bird_\([^_]*\)_.*/\1/')
    V_BIRD16="BIRD $("$B16/bird" --version 2>&1 | awk '{print $3}') (Debian bird $v16, bird binary)"
    V_BIRD6="BIRD $("$B16/bird6" --version 2>&1 | awk '{print $3}') (Debian bird $v16, bird6 binary)"
    V_GOBGP="GoBGP $(gobgpd --version 2>&1 | awk '{print $3}') (Debian gobgpd $(pkgver gobgpd))"
    V_FRR="FRRouting bgpd $(/usr/lib/frr/bgpd --version 2>&1 | awk 'NR==1{print $3}') (Debian frr $(pkgver frr))"
    V_OBGPD="OpenBGPD $(pkgver openbgpd | sed 's/-.*//') (Debian openbgpd $(pkgver openbgpd))"
}

# ------------------------------------------------------------------ processes

PIDS=()
bg() { # bg NAME NS CMD... : start a daemon in namespace NS, log to $W/NAME.out
    local name=$1 ns=$2; shift 2
    ip netns exec "$ns" "$@" >"$W/$name.out" 2>&1 &
    PIDS+=($!)
    log "started $name (pid $!) in $ns"
}

stop_all() {
    set +e
    local pid ns i
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for i in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
    PIDS=()
    # anything still running inside our own namespaces (e.g. openbgpd's
    # privilege-separated children) was started by us: stop it by pid
    for ns in $NA $NB; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    done
    for ns in $NA $NB; do ip netns del "$ns" 2>/dev/null; done
    set -e
}

wait_for() { # wait_for DESC SECONDS CMD...
    local desc=$1 t=$2 i; shift 2
    for ((i = 0; i < t * 2; i++)); do
        if "$@" >/dev/null 2>&1; then log "$desc: ok"; return 0; fi
        sleep 0.5
    done
    die "timeout waiting for: $desc"
}

setup_link() {
    stop_all
    ip netns add $NA
    ip netns add $NB
    local ns
    for ns in $NA $NB; do
        ip netns exec $ns sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 \
            net.ipv6.conf.default.router_solicitations=0 net.ipv6.conf.all.forwarding=0 >/dev/null
        ip -n $ns link set lo up
    done
    ip link add $IFA netns $NA type veth peer name $IFB netns $NB
    ip -n $NA addr add $A4/24 dev $IFA
    ip -n $NB addr add $B4/24 dev $IFB
    ip -n $NA addr add $A6/64 dev $IFA nodad
    ip -n $NB addr add $B6/64 dev $IFB nodad
    ip -n $NA link set $IFA up
    ip -n $NB link set $IFB up
    sleep 1
}

start_capture() {
    bg tcpdump $NA tcpdump -i $IFA -s 0 -U -n -Z root -w "$W/capture.pcap" 'tcp port 179'
    TCPDUMP_PID=$!
    sleep 1
}

stop_capture() {
    sleep 1
    kill -INT "$TCPDUMP_PID" 2>/dev/null || true
    wait "$TCPDUMP_PID" 2>/dev/null || true
}

# extract NAME_A DESC_A NAME_B DESC_B TRANSPORT(4|6) VARIANT SESSION-TEXT
extract() {
    local ipa=$A4 ipb=$B4
    [ "$5" = 6 ] && ipa=$A6 && ipb=$B6
    "$PY" "$HERE/bgpvec.py" extract --pcap "$W/capture.pcap" --outdir "$W/out" \
        --a-ip $ipa --a-name "$1" --a-desc "$2" --b-ip $ipb --b-name "$3" --b-desc "$4" \
        --variant "$6" --session "$7"
}

# ------------------------------------------------------------------ prefixes
# Calico-like blocks: IPv4 /26, IPv6 /122.  Side A and side B announce
# different blocks; the *_W ones get withdrawn mid-session.
prefixes() { # prefixes A|B
    if [ "$1" = A ]; then
        P4_1=203.0.113.0/26;   P4_2=203.0.113.64/26;  P4_W=192.0.2.0/26
        P6_1=2001:db8:1::/122; P6_2=2001:db8:1::40/122; P6_W=2001:db8:1::80/122
    else
        P4_1=203.0.113.128/26;   P4_2=203.0.113.192/26;    P4_W=192.0.2.64/26
        P6_1=2001:db8:1:1::/122; P6_2=2001:db8:1:1::40/122; P6_W=2001:db8:1:1::80/122
    fi
}

# ------------------------------------------------------------------ BIRD
# bird_filter NAME ASN ASN16 EXTRA COND1 COND2 : export filter setting attributes
bird_filter() {
    cat <<EOF
filter $1 {
    if source != RTS_STATIC then reject;
    bgp_community.add(($3, 100));
    if $5 then {
        bgp_med = 50;
        bgp_community.add(($3, 101));
        bgp_large_community.add(($2, 1, 1));
        bgp_ext_community.add((rt, $3, 100));
    }
    if $6 then {
        bgp_community.add((65535, 65281));
        bgp_large_community.add(($2, 2, 2));
        bgp_large_community.add(($2, 2, 3));
        bgp_origin = ORIGIN_INCOMPLETE;
    }
    if proto = "alt4" || proto = "alt6" then {
        bgp_med = 70;
        bgp_community.add(($3, 999));
    }
    $4
    accept;
}
EOF
}

# bird2_base SIDE ROUTERID ASN ASN16 EXTRA ALTPATHS(0|1)
bird2_base() {
    prefixes "$1"
    cat <<EOF
router id $2;
log "$W/bird2-$1.log" all;
protocol device { scan time 10; }
protocol static st4 { ipv4; route $P4_1 blackhole; route $P4_2 blackhole; }
protocol static st4w { ipv4; route $P4_W blackhole; }
protocol static st6 { ipv6; route $P6_1 blackhole; route $P6_2 blackhole; }
protocol static st6w { ipv6; route $P6_W blackhole; }
EOF
    if [ "$6" = 1 ]; then
        # a second path for the first block of each family (sent only with add-path)
        echo "protocol static alt4 { ipv4; route $P4_1 blackhole; }"
        echo "protocol static alt6 { ipv6; route $P6_1 blackhole; }"
    fi
    bird_filter wren_out "$3" "$4" "$5" "net = $P4_1 || net = $P6_1" "net = $P4_2 || net = $P6_2"
}

birdc2() { ip netns exec "$1" birdc -s "$W/$2.ctl" "${@:3}"; }
bird_est() { ip netns exec "$1" "$2" -s "$W/$3.ctl" show protocols "$4" | grep -q Established; }

# ------------------------------------------------------------------ GoBGP
# gobgp_neighbor ADDR PEERAS LOCALADDR PASSIVE(true|false) ADDPATH(0|1) FAMILIES...
gobgp_neighbor() {
    local addr=$1 peeras=$2 laddr=$3 passive=$4 ap=$5 f; shift 5
    cat <<EOF

[[neighbors]]
  [neighbors.config]
    neighbor-address = "$addr"
    peer-as = $peeras
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
    connect-retry = 5
  [neighbors.transport.config]
    passive-mode = $passive
    local-address = "$laddr"
EOF
    for f in "$@"; do
        cat <<EOF
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "$f"
EOF
        if [ "$ap" = 1 ]; then
            cat <<EOF
    [neighbors.afi-safis.add-paths.config]
      receive = true
      send-max = 4
EOF
        fi
    done
}
gobgp() { local ns=$1; shift; ip netns exec "$ns" gobgp -u 127.0.0.1 -p 50051 "$@"; }
gobgp_est() { gobgp "$1" neighbor "$2" | grep -qi 'BGP state = established'; }
gobgp_api() { gobgp "$1" global >/dev/null; }

# gobgp_routes NS SIDE ASN NH4 NH6 ADDPATH(0|1)
gobgp_routes() {
    local ns=$1 asn=$3 nh4=$4 nh6=$5 c=$3
    [ "$asn" -gt 65535 ] && c=64999 # communities have a 2-octet AS part
    prefixes "$2"
    gobgp "$ns" global rib add -a ipv4 "$P4_1" origin igp nexthop "$nh4" med 40 \
        community "$c:100,$c:101" large-community "$asn:1:1,$asn:1:2" aspath "$asn" \
        aggregator "$asn:$nh4"
    [ "$6" = 1 ] && gobgp "$ns" global rib add -a ipv4 "$P4_1" identifier 2 origin igp nexthop "$nh4" med 80
    gobgp "$ns" global rib add -a ipv4 "$P4_2" origin incomplete nexthop "$nh4" rt "$asn:100" \
        community "no-export"
    gobgp "$ns" global rib add -a ipv4 "$P4_W" origin egp nexthop "$nh4" local-pref 250
    gobgp "$ns" global rib add -a ipv6 "$P6_1" origin igp nexthop "$nh6" med 40 \
        community "$c:600" large-community "$asn:6:1" aspath "$asn,$asn"
    [ "$6" = 1 ] && gobgp "$ns" global rib add -a ipv6 "$P6_1" identifier 2 nexthop "$nh6" med 80
    gobgp "$ns" global rib add -a ipv6 "$P6_2" origin incomplete nexthop "$nh6" rt "$asn:600"
    gobgp "$ns" global rib add -a ipv6 "$P6_W" nexthop "$nh6"
    true
}

# ------------------------------------------------------------------ FRR
# frr_start NS NAME ; config in $W/NAME/bgpd.conf
frr_start() {
    local ns=$1 d=$W/$2
    printf 'hostname %s\n' "$2" >"$d/zebra.conf"
    chown -R frr:frr "$d"
    bg "$2-zebra" "$ns" /usr/lib/frr/zebra -u frr -g frr -f "$d/zebra.conf" -z "$d/zserv.api" \
        --vty_socket "$d" -i "$d/zebra.pid" -P 0 --log "file:$d/zebra.log"
    wait_for "zebra socket" 30 test -S "$d/zserv.api"
    bg "$2-bgpd" "$ns" /usr/lib/frr/bgpd -u frr -g frr -f "$d/bgpd.conf" -z "$d/zserv.api" \
        --vty_socket "$d" -i "$d/bgpd.pid" -P 0 --log "file:$d/bgpd.log"
    wait_for "bgpd vty" 30 test -S "$d/bgpd.vty"
}
vtysh() { local ns=$1 d=$W/$2; shift 2; ip netns exec "$ns" /usr/bin/vtysh --vty_socket "$d" "$@"; }
frr_est() { vtysh "$1" "$2" -c "show bgp neighbors $3" | grep -q 'BGP state = Established'; }

# frr_conf SIDE ASN ROUTERID NEIGHBOR-LINES AF4-LINES AF6-LINES
frr_conf() {
    prefixes "$1"
    cat <<EOF
frr defaults traditional
log file $W/frr-$1/bgpd.log
!
route-map WREN_NET1 permit 10
 set community $2:100 $2:101
 set large-community $2:1:1
 set extcommunity rt $2:100
 set metric 20
 set local-preference 300
!
route-map WREN_NET2 permit 10
 set community no-export $2:200
 set large-community $2:2:2 $2:2:3
 set as-path prepend $2 $2
 set origin incomplete
!
router bgp $2
 bgp router-id $3
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 bgp graceful-restart
$4
 !
 address-family ipv4 unicast
  network $P4_1 route-map WREN_NET1
  network $P4_2 route-map WREN_NET2
  network $P4_W
$5
 exit-address-family
 !
 address-family ipv6 unicast
  network $P6_1 route-map WREN_NET1
  network $P6_2 route-map WREN_NET2
  network $P6_W
$6
 exit-address-family
!
EOF
}

# ------------------------------------------------------------------ pairs

# 1. bird2 (A, AS 64512) <-> GoBGP (B, AS 64513): eBGP over IPv4 carrying
#    IPv4 and IPv6 unicast, add-path send+receive both ways for both families.
pair_bird2-gobgp() {
    mkdir -p "$W"
    { bird2_base A $A4 64512 64512 "bgp_path.prepend(64512);" 1
      cat <<EOF
protocol bgp gobgp {
    local $A4 as 64512;
    neighbor $B4 as 64513;
    hold time 9; keepalive time 3; connect delay time 1; connect retry time 5;
    ipv4 { import all; export filter wren_out; add paths on; };
    ipv6 { import all; export filter wren_out; add paths on; next hop address $A6; };
}
EOF
    } >"$W/bird2.conf"
    { cat <<EOF
[global.config]
  as = 64513
  router-id = "$B4"
  local-address-list = ["$B4", "$B6"]
EOF
      gobgp_neighbor $A4 64512 $B4 true 1 ipv4-unicast ipv6-unicast
    } >"$W/gobgp.toml"

    setup_link
    start_capture
    bg gobgpd $NB gobgpd -f "$W/gobgp.toml" --api-hosts 127.0.0.1:50051
    wait_for "gobgp api" 30 gobgp_api $NB
    gobgp_routes $NB B 64513 $B4 $B6 1
    bg bird2 $NA bird -f -c "$W/bird2.conf" -s "$W/bird2.ctl" -P "$W/bird2.pid"
    wait_for "bird2-gobgp established" 60 bird_est $NA birdc bird2 gobgp
    sleep 5
    log "withdrawing"
    birdc2 $NA bird2 disable st4w
    birdc2 $NA bird2 disable alt6
    prefixes B
    gobgp $NB global rib del -a ipv4 "$P4_1" identifier 2
    gobgp $NB global rib del -a ipv6 "$P6_W"
    sleep 10
    log "shutting down session from bird2"
    birdc2 $NA bird2 disable gobgp '"wren test vectors: done"'
    sleep 2
    stop_capture
    extract bird2 "$V_BIRD2" gobgp "$V_GOBGP" 4 "" \
        "eBGP over IPv4, bird2 AS 64512 <-> GoBGP AS 64513, IPv4+IPv6 unicast, add-path send/receive configured on both sides"
}

# 2. bird2 (A, AS 64512) <-> FRR (B, AS 64512): iBGP over IPv4 carrying IPv4
#    and IPv6 unicast, graceful restart, route refresh from both sides.
pair_bird2-frr() {
    mkdir -p "$W/frr-B"
    { bird2_base A $A4 64512 64512 "bgp_local_pref = 200;" 0
      cat <<EOF
protocol bgp frr {
    local $A4 as 64512;
    neighbor $B4 as 64512;
    passive on;
    hold time 9; keepalive time 3; connect retry time 5;
    graceful restart on;
    ipv4 { import all; export filter wren_out; next hop self; };
    ipv6 { import all; export filter wren_out; next hop self; next hop address $A6; };
}
EOF
    } >"$W/bird2.conf"
    frr_conf B 64512 $B4 " neighbor $A4 remote-as 64512
 neighbor $A4 timers 3 9
 neighbor $A4 timers connect 5" "  neighbor $A4 activate" "  neighbor $A4 activate" >"$W/frr-B/bgpd.conf"

    setup_link
    start_capture
    bg bird2 $NA bird -f -c "$W/bird2.conf" -s "$W/bird2.ctl" -P "$W/bird2.pid"
    frr_start $NB frr-B
    wait_for "bird2-frr established" 60 bird_est $NA birdc bird2 frr
    sleep 5
    log "route refresh from bird2"
    birdc2 $NA bird2 reload in frr
    sleep 3
    log "withdrawing"
    birdc2 $NA bird2 disable st6w
    prefixes B
    vtysh $NB frr-B -c 'configure terminal' -c 'router bgp 64512' -c 'address-family ipv4 unicast' \
        -c "no network $P4_W"
    sleep 3
    log "route refresh from frr"
    vtysh $NB frr-B -c 'clear bgp * soft in'
    sleep 8
    log "shutting down session from frr"
    vtysh $NB frr-B -c 'configure terminal' -c 'router bgp 64512' \
        -c "neighbor $A4 shutdown message wren test vectors: done"
    sleep 2
    stop_capture
    extract bird2 "$V_BIRD2" frr "$V_FRR" 4 "" \
        "iBGP over IPv4, bird2 AS 64512 <-> FRR AS 64512, IPv4+IPv6 unicast, graceful restart, route refresh both ways"
}

# 3. BIRD 1.6 (A, bird for IPv4 + bird6 for IPv6, Calico-style config) <->
#    bird2 (B): iBGP AS 64512, one session over IPv4 and one over IPv6.
bird16_conf() { # bird16_conf 4|6
    local fam=$1 nb src net1 net2 rts
    prefixes A
    if [ "$fam" = 4 ]; then
        nb=$B4; src=$A4; net1="net = $P4_1"; net2="net = $P4_2"
        rts="protocol static st4 { route $P4_1 blackhole; route $P4_2 blackhole; }
protocol static st4w { route $P4_W blackhole; }"
    else
        nb=$B6; src=$A6; net1="net = $P6_1"; net2="net = $P6_2"
        rts="protocol static st6 { route $P6_1 blackhole; route $P6_2 blackhole; }
protocol static st6w { route $P6_W blackhole; }"
    fi
    cat <<EOF
# Calico-style BIRD 1.x configuration (node-to-node mesh peer)
router id $A4;
log "$W/bird16-$fam.log" all;
protocol device { scan time 10; }
$rts
EOF
    bird_filter calico_export_to_bgp_peers 64512 64512 "bgp_local_pref = 200;" "$net1" "$net2" |
        sed 's/if source != RTS_STATIC then reject;/# export all (decorating our own blocks)/'
    cat <<EOF
template bgp bgp_template {
  debug { states };
  description "Connection to BGP peer";
  local as 64512;
  multihop;
  gateway recursive;
  import all;
  export filter calico_export_to_bgp_peers;
  add paths on;
  graceful restart;
  connect delay time 2;
  connect retry time 5;
  error wait time 5,30;
}
protocol bgp Mesh_peer from bgp_template {
  neighbor $nb as 64512;
  source address $src;
  next hop self;
  hold time 9;
  keepalive time 3;
}
EOF
}

pair_bird16-bird2() {
    mkdir -p "$W"
    bird16_conf 4 >"$W/bird16.conf"
    bird16_conf 6 >"$W/bird6.conf"
    { bird2_base B $B4 64512 64512 "bgp_local_pref = 200;" 0
      cat <<EOF
template bgp mesh {
    local as 64512;
    passive on;
    hold time 9; keepalive time 3;
    graceful restart on;
}
protocol bgp b16v4 from mesh {
    neighbor $A4 as 64512; source address $B4;
    ipv4 { import all; export filter wren_out; next hop self; add paths on; };
}
protocol bgp b16v6 from mesh {
    neighbor $A6 as 64512; source address $B6;
    ipv6 { import all; export filter wren_out; next hop self; add paths on; };
}
EOF
    } >"$W/bird2.conf"

    setup_link
    start_capture
    bg bird2 $NB bird -f -c "$W/bird2.conf" -s "$W/bird2.ctl" -P "$W/bird2.pid"
    sleep 1
    bg bird16 $NA "$B16/bird" -f -c "$W/bird16.conf" -s "$W/bird16.ctl" -P "$W/bird16.pid"
    bg bird6 $NA "$B16/bird6" -f -c "$W/bird6.conf" -s "$W/bird6.ctl" -P "$W/bird6.pid"
    wait_for "bird16 v4 established" 60 bird_est $NA "$B16/birdc" bird16 Mesh_peer
    wait_for "bird6 v6 established" 60 bird_est $NA "$B16/birdc6" bird6 Mesh_peer
    sleep 5
    log "route refresh from bird 1.6"
    ip netns exec $NA "$B16/birdc" -s "$W/bird16.ctl" reload in Mesh_peer
    ip netns exec $NA "$B16/birdc6" -s "$W/bird6.ctl" reload in Mesh_peer
    sleep 2
    log "withdrawing"
    ip netns exec $NA "$B16/birdc" -s "$W/bird16.ctl" disable st4w
    ip netns exec $NA "$B16/birdc6" -s "$W/bird6.ctl" disable st6w
    birdc2 $NB bird2 disable st4w
    birdc2 $NB bird2 disable st6w
    sleep 10
    log "shutting down sessions from bird 1.6"
    ip netns exec $NA "$B16/birdc" -s "$W/bird16.ctl" disable Mesh_peer
    ip netns exec $NA "$B16/birdc6" -s "$W/bird6.ctl" disable Mesh_peer
    sleep 2
    stop_capture
    extract bird16 "$V_BIRD16" bird2 "$V_BIRD2" 4 v4 \
        "iBGP over IPv4, BIRD 1.6 (Calico-style config) <-> bird2, AS 64512, IPv4 unicast"
    extract bird16 "$V_BIRD6" bird2 "$V_BIRD2" 6 v6 \
        "iBGP over IPv6, BIRD 1.6 bird6 (Calico-style config) <-> bird2, AS 64512, IPv6 unicast"
}

# 4. OpenBGPD (A, AS 64515) <-> bird2 (B, AS 64512): eBGP, one session over
#    IPv4 (IPv4 unicast, add-path both ways) and one over IPv6 (IPv6 unicast).
#    (OpenBGPD 7.7 on Linux announced IPv6 routes over an IPv4 session with
#    next hop ::1, so IPv6 gets its own session.)
pair_openbgpd-bird2() {
    mkdir -p "$W"
    prefixes A
    cat >"$W/bgpd.conf" <<EOF
AS 64515
router-id $A4
fib-update no
socket "$W/openbgpd.sock"
listen on $A4
listen on $A6
network $P4_1 set { community 64515:100 large-community 64515:1:1 ext-community rt 64515:100 med 30 }
network $P4_2 set { community 64515:200 community 64515:201 prepend-self 2 origin incomplete }
network $P6_1 set { community 64515:600 large-community 64515:6:1 ext-community rt 64515:600 med 30 }
network $P6_2 set { prepend-self 1 large-community 64515:6:2 }
neighbor $B4 {
    remote-as 64512
    descr "bird2-v4"
    holdtime 9
    local-address $A4
    announce IPv4 unicast
    announce add-path recv yes
    announce add-path send all
}
neighbor $B6 {
    remote-as 64512
    descr "bird2-v6"
    holdtime 9
    local-address $A6
    announce IPv4 none
    announce IPv6 unicast
}
allow from any
allow to any
EOF
    chmod 600 "$W/bgpd.conf"
    { bird2_base B $B4 64512 64512 "bgp_path.prepend(64512);" 1
      cat <<EOF
protocol bgp obgpd4 {
    local $B4 as 64512;
    neighbor $A4 as 64515;
    passive on;
    hold time 9; keepalive time 3;
    ipv4 { import all; export filter wren_out; add paths on; };
}
protocol bgp obgpd6 {
    local $B6 as 64512;
    neighbor $A6 as 64515;
    passive on;
    hold time 9; keepalive time 3;
    ipv6 { import all; export filter wren_out; };
}
EOF
    } >"$W/bird2.conf"

    setup_link
    mkdir -p /run/openbgpd
    start_capture
    bg bird2 $NB bird -f -c "$W/bird2.conf" -s "$W/bird2.ctl" -P "$W/bird2.pid"
    sleep 1
    bg openbgpd $NA bgpd -d -f "$W/bgpd.conf"
    wait_for "openbgpd-bird2 v4 established" 60 bird_est $NB birdc bird2 obgpd4
    wait_for "openbgpd-bird2 v6 established" 60 bird_est $NB birdc bird2 obgpd6
    local B="ip netns exec $NA bgpctl -s $W/openbgpd.sock"
    prefixes A
    $B network add $P4_W community 64515:300 med 99
    $B network add $P6_W community 64515:301
    sleep 5
    log "route refresh from openbgpd"
    $B neighbor $B4 refresh
    $B neighbor $B6 refresh
    sleep 2
    log "withdrawing"
    $B network delete $P4_W
    $B network delete $P6_W
    birdc2 $NB bird2 disable st6w
    birdc2 $NB bird2 disable alt4
    sleep 10
    log "shutting down sessions from openbgpd"
    $B neighbor $B4 down "wren test vectors: done"
    $B neighbor $B6 down
    sleep 2
    stop_capture
    extract openbgpd "$V_OBGPD" bird2 "$V_BIRD2" 4 v4 \
        "eBGP over IPv4, OpenBGPD AS 64515 <-> bird2 AS 64512, IPv4 unicast, add-path send/receive configured on both sides"
    extract openbgpd "$V_OBGPD" bird2 "$V_BIRD2" 6 v6 \
        "eBGP over IPv6, OpenBGPD AS 64515 <-> bird2 AS 64512, IPv6 unicast"
}

# 5. GoBGP (A, AS 64513) <-> FRR (B, AS 64514): eBGP, one session over IPv4
#    (IPv4 unicast) and one over IPv6 (IPv6 unicast, link-local next hops).
pair_gobgp-frr() {
    mkdir -p "$W/frr-B"
    { cat <<EOF
[global.config]
  as = 64513
  router-id = "$A4"
  local-address-list = ["$A4", "$A6"]
EOF
      gobgp_neighbor $B4 64514 $A4 false 0 ipv4-unicast
      gobgp_neighbor $B6 64514 $A6 false 0 ipv6-unicast
    } >"$W/gobgp.toml"
    frr_conf B 64514 $B4 " neighbor $A4 remote-as 64513
 neighbor $A4 timers 3 9
 neighbor $A4 passive
 neighbor $A6 remote-as 64513
 neighbor $A6 timers 3 9
 neighbor $A6 passive" "  neighbor $A4 activate" "  neighbor $A6 activate" >"$W/frr-B/bgpd.conf"

    setup_link
    start_capture
    frr_start $NB frr-B
    bg gobgpd $NA gobgpd -f "$W/gobgp.toml" --api-hosts 127.0.0.1:50051
    wait_for "gobgp api" 30 gobgp_api $NA
    gobgp_routes $NA A 64513 $A4 $A6 0
    wait_for "gobgp-frr v4 established" 60 gobgp_est $NA $B4
    wait_for "gobgp-frr v6 established" 60 gobgp_est $NA $B6
    sleep 5
    log "route refresh from frr"
    vtysh $NB frr-B -c 'clear bgp * soft in'
    sleep 2
    log "withdrawing"
    prefixes A
    gobgp $NA global rib del -a ipv4 "$P4_W"
    gobgp $NA global rib del -a ipv6 "$P6_W"
    prefixes B
    vtysh $NB frr-B -c 'configure terminal' -c 'router bgp 64514' -c 'address-family ipv6 unicast' \
        -c "no network $P6_W"
    sleep 10
    log "shutting down sessions from gobgp"
    gobgp $NA neighbor $B4 disable --reason "wren test vectors: done"
    gobgp $NA neighbor $B6 disable
    sleep 2
    stop_capture
    extract gobgp "$V_GOBGP" frr "$V_FRR" 4 v4 \
        "eBGP over IPv4, GoBGP AS 64513 <-> FRR AS 64514, IPv4 unicast"
    extract gobgp "$V_GOBGP" frr "$V_FRR" 6 v6 \
        "eBGP over IPv6 (link addresses), GoBGP AS 64513 <-> FRR AS 64514, IPv6 unicast"
}

# 6. GoBGP (A, 4-octet AS 4200000001) <-> BIRD 1.6 (B, AS 64512, "enable as4
#    off"; bird for IPv4, bird6 for IPv6): 2-octet AS_PATH encoding with
#    AS_TRANS and AS4_PATH / AS4_AGGREGATOR.  (bird2 with "enable as4 off"
#    rejects a peer whose AS4 capability carries a 4-octet AS, so BIRD 1.6 is
#    the 2-octet side here.)
bird16_as2_conf() { # bird16_as2_conf 4|6
    local fam=$1 nb src net1 net2 rts
    prefixes B
    if [ "$fam" = 4 ]; then
        nb=$A4; src=$B4; net1="net = $P4_1"; net2="net = $P4_2"
        rts="protocol static st4 { route $P4_1 blackhole; route $P4_2 blackhole; }
protocol static st4w { route $P4_W blackhole; }"
    else
        nb=$A6; src=$B6; net1="net = $P6_1"; net2="net = $P6_2"
        rts="protocol static st6 { route $P6_1 blackhole; route $P6_2 blackhole; }
protocol static st6w { route $P6_W blackhole; }"
    fi
    cat <<EOF
router id $B4;
log "$W/bird16-$fam.log" all;
protocol device { scan time 10; }
$rts
EOF
    bird_filter wren_out 64512 64512 "bgp_path.prepend(4200000099); bgp_path.prepend(64512);" "$net1" "$net2"
    cat <<EOF
protocol bgp gobgp {
  local as 64512;
  neighbor $nb as 23456;  # AS_TRANS: with "enable as4 off" the peer's 4-octet AS is not seen
  source address $src;
  enable as4 off;
  passive on;
  hold time 9;
  keepalive time 3;
  import all;
  export filter wren_out;
}
EOF
}

pair_gobgp-bird16-as2() {
    mkdir -p "$W"
    { cat <<EOF
[global.config]
  as = 4200000001
  router-id = "$A4"
  local-address-list = ["$A4", "$A6"]
EOF
      gobgp_neighbor $B4 64512 $B4 false 0 ipv4-unicast
      gobgp_neighbor $B6 64512 $B6 false 0 ipv6-unicast
    } | sed "s/local-address = \"$B4\"/local-address = \"$A4\"/; s/local-address = \"$B6\"/local-address = \"$A6\"/" >"$W/gobgp.toml"
    bird16_as2_conf 4 >"$W/bird16.conf"
    bird16_as2_conf 6 >"$W/bird6.conf"

    setup_link
    start_capture
    bg bird16 $NB "$B16/bird" -f -c "$W/bird16.conf" -s "$W/bird16.ctl" -P "$W/bird16.pid"
    bg bird6 $NB "$B16/bird6" -f -c "$W/bird6.conf" -s "$W/bird6.ctl" -P "$W/bird6.pid"
    bg gobgpd $NA gobgpd -f "$W/gobgp.toml" --api-hosts 127.0.0.1:50051
    wait_for "gobgp api" 30 gobgp_api $NA
    gobgp_routes $NA A 4200000001 $A4 $A6 0
    wait_for "gobgp-bird16 v4 (as2) established" 60 bird_est $NB "$B16/birdc" bird16 gobgp
    wait_for "gobgp-bird6 v6 (as2) established" 60 bird_est $NB "$B16/birdc6" bird6 gobgp
    sleep 5
    log "withdrawing"
    prefixes A
    gobgp $NA global rib del -a ipv4 "$P4_W"
    ip netns exec $NB "$B16/birdc6" -s "$W/bird6.ctl" disable st6w
    sleep 10
    log "shutting down sessions from bird 1.6"
    ip netns exec $NB "$B16/birdc" -s "$W/bird16.ctl" disable gobgp
    ip netns exec $NB "$B16/birdc6" -s "$W/bird6.ctl" disable gobgp
    sleep 2
    stop_capture
    extract gobgp "$V_GOBGP" bird16 "$V_BIRD16" 4 as2-v4 \
        "eBGP over IPv4, GoBGP AS 4200000001 <-> BIRD 1.6 AS 64512 with 'enable as4 off', IPv4 unicast"
    extract gobgp "$V_GOBGP" bird16 "$V_BIRD6" 6 as2-v6 \
        "eBGP over IPv6, GoBGP AS 4200000001 <-> BIRD 1.6 bird6 AS 64512 with 'enable as4 off', IPv6 unicast"
}

# ------------------------------------------------------------------ main

run_one() { # run in a child process: own trap, own cleanup
    local pair=$1
    W=$WORKBASE/$pair
    rm -rf "$W"
    mkdir -p "$W/out"
    trap stop_all EXIT
    trap 'exit 1' INT TERM
    versions
    log "=== $pair ==="
    "pair_$pair"
    stop_all
    local f
    for f in "$W"/out/*.hex; do cp "$f" "$OUT/"; done
    "$PY" "$HERE/bgpvec.py" check "$W"/out/*.hex
}

main() {
    [ "$(id -u)" = 0 ] || die "run as root"
    if [ "${1:-}" = --one ]; then
        run_one "$2"
        return
    fi
    local pairs=${*:-$ALL_PAIRS} p failed=()
    install_deps
    for p in $pairs; do
        declare -F "pair_$p" >/dev/null || die "unknown pair $p (known: $ALL_PAIRS)"
    done
    for p in $pairs; do
        bash "${BASH_SOURCE[0]}" --one "$p" || { failed+=("$p"); log "pair $p FAILED (logs in $WORKBASE/$p)"; }
    done
    ls "$OUT"/*.hex >/dev/null 2>&1 && { "$PY" "$HERE/bgpvec.py" check "$OUT"/*.hex || true; }
    if [ ${#failed[@]} -gt 0 ]; then
        log "failed pairs: ${failed[*]}"
        exit 1
    fi
}

main "$@"
