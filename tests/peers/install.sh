#!/usr/bin/env bash
# Installs the real BGP speakers that tests/interop.rs runs against wrend:
#
#   sudo bash tests/peers/install.sh
#
#   - BIRD 2 (Debian bird2), GoBGP (gobgpd), FRRouting (frr), OpenBGPD (openbgpd),
#     iproute2 (network namespaces, veth), procps (kill), iputils-ping (the topology
#     tests' pod-to-pod pings), jq (`wrenc decode | jq`) and etcd (etcd-server: the
#     datastore tests' etcd), from apt;
#   - BIRD 1.6 (Debian bird: `bird` for IPv4 and `bird6` for IPv6), unpacked into
#     target/peers/bird16 with `apt-get download` + `dpkg -x`, because the package
#     conflicts with bird2.
#
# Idempotent: what is already there is left alone. Needs root and Debian's apt. Services
# that the packages would start (bird, frr, bgpd, etcd) are kept from starting while
# installing (policy-rc.d), and any that were started anyway are stopped, so nothing binds
# TCP port 179 (or etcd's 2379) in the root namespace; the tests run their own daemons
# inside network namespaces.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PEERS=$ROOT/target/peers
B16=$PEERS/bird16

log() { echo "[peers/install] $*"; }
die() { echo "[peers/install] ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages)"
command -v apt-get >/dev/null || die "needs apt-get (a Debian machine)"
START=$(date +%s)

# ------------------------------------------------------------------ apt packages
# package name -> a file it installs that the tests use
declare -A PROBE=(
    [bird2]=/usr/sbin/bird
    [gobgpd]=/usr/bin/gobgpd
    [frr]=/usr/lib/frr/bgpd
    [openbgpd]=/usr/sbin/bgpctl
    [iproute2]=/usr/sbin/ip
    [procps]=/usr/bin/pkill
    [iputils-ping]=/usr/bin/ping
    [jq]=/usr/bin/jq
    [etcd-server]=/usr/bin/etcd
)
need=()
for p in bird2 gobgpd frr openbgpd iproute2 procps iputils-ping jq etcd-server; do
    # a package counts as installed when dpkg says so and its binary is there
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        && [ -e "${PROBE[$p]}" ]; then
        log "$p: already installed ($(dpkg-query -W -f='${Version}' "$p"))"
    else
        need+=("$p")
    fi
done

POLICY=/usr/sbin/policy-rc.d
OUR_POLICY=0
cleanup() {
    if [ "$OUR_POLICY" = 1 ]; then
        rm -f "$POLICY"
    fi
}
trap cleanup EXIT

if [ ${#need[@]} -gt 0 ]; then
    if [ ! -e "$POLICY" ]; then
        # invoke-rc.d asks this script whether it may start services: 101 = no
        printf '#!/bin/sh\nexit 101\n' >"$POLICY"
        chmod 755 "$POLICY"
        OUR_POLICY=1
    fi
    log "apt-get update"
    apt-get update -qq
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${need[@]}" >/dev/null
    for p in "${need[@]}"; do
        [ -e "${PROBE[$p]}" ] || die "$p installed but ${PROBE[$p]} is missing"
        log "$p: installed ($(dpkg-query -W -f='${Version}' "$p"))"
    done
fi

# The packages' own services must not hold port 179 (or etcd's 2379) in the root namespace.
if [ -d /run/systemd/system ]; then
    for svc in bird frr openbgpd gobgpd etcd; do
        if systemctl is-active --quiet "$svc" 2>/dev/null; then
            log "stopping and disabling the system service $svc"
            systemctl stop "$svc" || true
            systemctl disable "$svc" >/dev/null 2>&1 || true
        fi
    done
fi

# OpenBGPD's privilege-separated processes chroot into its user's home.
mkdir -p /run/openbgpd

# ------------------------------------------------------------------ BIRD 1.6
if [ -x "$B16/usr/sbin/bird" ] && [ -x "$B16/usr/sbin/bird6" ] \
    && [ -x "$B16/usr/sbin/birdc" ] && [ -x "$B16/usr/sbin/birdc6" ]; then
    log "BIRD 1.6: already in $B16 ($("$B16/usr/sbin/bird" --version 2>&1 | head -1))"
else
    log "BIRD 1.6: fetching the Debian package bird into $PEERS"
    mkdir -p "$PEERS"
    work=$(mktemp -d "$PEERS/dl.XXXXXX")
    if ! (cd "$work" && apt-get download bird >/dev/null 2>&1); then
        # the package lists may be missing or stale on a machine that skipped the step above
        apt-get update -qq
        (cd "$work" && apt-get download bird >/dev/null) || die "apt-get download bird failed"
    fi
    deb=$(ls "$work"/bird_*.deb | head -1)
    rm -rf "$B16"
    dpkg -x "$deb" "$B16"
    rm -f "$PEERS"/bird_*.deb
    mv "$deb" "$PEERS/"
    rm -rf "$work"
    for b in bird bird6 birdc birdc6; do
        [ -x "$B16/usr/sbin/$b" ] || die "$B16/usr/sbin/$b missing after unpacking $deb"
    done
    log "BIRD 1.6: unpacked $(basename "$deb") into $B16 ($("$B16/usr/sbin/bird" --version 2>&1 | head -1))"
fi
# bird 1.6's shared libraries must all resolve next to bird2's
if ldd "$B16/usr/sbin/bird" 2>/dev/null | grep -q 'not found'; then
    die "BIRD 1.6 needs libraries that are not installed: $(ldd "$B16/usr/sbin/bird" | grep 'not found')"
fi

log "versions: $(bird --version 2>&1 | head -1); $("$B16/usr/sbin/bird" --version 2>&1 | head -1);" \
    "$(gobgpd --version 2>&1 | head -1); $(/usr/lib/frr/bgpd --version 2>&1 | head -1);" \
    "openbgpd $(dpkg-query -W -f='${Version}' openbgpd)"
log "done in $(($(date +%s) - START)) s"
