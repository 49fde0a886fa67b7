#!/usr/bin/env python3
"""Helper for tests/vectors/capture.sh (python3 standard library only).

  bgpvec.py extract --pcap FILE --outdir DIR --a-ip IP --a-name NAME --a-desc TEXT
                    --b-ip IP --b-name NAME --b-desc TEXT [--variant V] [--session TEXT]
      Reads a pcap (tcpdump -w), reassembles both directions of the BGP TCP
      connection between the two addresses (by sequence number, so
      retransmissions and reordering are handled), splits each direction into
      BGP messages and writes DIR/<a>-to-<b>[-V].hex and DIR/<b>-to-<a>[-V].hex.
      The directive lines (#! add-path=..., #! as2) are derived from the two
      captured OPEN messages.

  bgpvec.py check FILE...
      Validates vector files (marker, lengths, OPEN first) and prints message
      counts per type and the directives.
"""

import argparse
import datetime
import struct
import sys

MARKER = b"\xff" * 16
TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}
FAMILIES = {(1, 1): "ipv4", (2, 1): "ipv6", (1, 2): "ipv4-multicast", (2, 2): "ipv6-multicast"}


def fam_name(afi, safi):
    return FAMILIES.get((afi, safi), "%d/%d" % (afi, safi))


# ---------------------------------------------------------------- pcap reading

def read_pcap(path):
    """Yields (src_ip, sport, dst_ip, dport, seq, flags, payload) for each TCP segment."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise SystemExit("%s: not a pcap file (pcapng is not supported; use tcpdump -w)" % path)
    linktype = struct.unpack(end + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _orig = struct.unpack(end + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        seg = parse_packet(pkt, linktype)
        if seg is not None:
            yield seg


def parse_packet(pkt, linktype):
    if linktype == 1:  # Ethernet
        etype = struct.unpack("!H", pkt[12:14])[0]
        p = 14
        while etype in (0x8100, 0x88A8):
            etype = struct.unpack("!H", pkt[p + 2:p + 4])[0]
            p += 4
    elif linktype == 113:  # Linux cooked
        etype = struct.unpack("!H", pkt[14:16])[0]
        p = 16
    elif linktype == 276:  # Linux cooked v2
        etype = struct.unpack("!H", pkt[0:2])[0]
        p = 20
    elif linktype in (12, 101):  # raw IP
        etype = 0x0800 if pkt[0] >> 4 == 4 else 0x86DD
        p = 0
    else:
        raise SystemExit("unsupported pcap link type %d" % linktype)
    if etype == 0x0800:
        ihl = (pkt[p] & 0x0F) * 4
        total = struct.unpack("!H", pkt[p + 2:p + 4])[0]
        if pkt[p + 9] != 6:
            return None
        frag = struct.unpack("!H", pkt[p + 6:p + 8])[0]
        if frag & 0x3FFF:
            raise SystemExit("IPv4 fragments in capture are not supported")
        src = ".".join(str(b) for b in pkt[p + 12:p + 16])
        dst = ".".join(str(b) for b in pkt[p + 16:p + 20])
        tcp = pkt[p + ihl:p + total]
    elif etype == 0x86DD:
        nh = pkt[p + 6]
        plen = struct.unpack("!H", pkt[p + 4:p + 6])[0]
        src = ip6str(pkt[p + 8:p + 24])
        dst = ip6str(pkt[p + 24:p + 40])
        q = p + 40
        end = q + plen
        while nh in (0, 43, 60):  # hop-by-hop, routing, destination options
            nh, hlen = pkt[q], (pkt[q + 1] + 1) * 8
            q += hlen
        if nh != 6:
            return None
        tcp = pkt[q:end]
    else:
        return None
    sport, dport, seq = struct.unpack("!HHI", tcp[0:8])
    doff = (tcp[12] >> 4) * 4
    flags = tcp[13]
    return (src, sport, dst, dport, seq, flags, bytes(tcp[doff:]))


def ip6str(b):
    import ipaddress
    return str(ipaddress.IPv6Address(bytes(b)))


def norm_ip(s):
    import ipaddress
    return str(ipaddress.ip_address(s))


def reassemble(segs):
    """segs: list of (seq, flags, payload). Returns the byte stream in order."""
    SYN, FIN = 0x02, 0x01
    isn = None
    for seq, flags, _ in segs:
        if flags & SYN:
            isn = seq
            break
    datasegs = [(seq, pl) for seq, flags, pl in segs if pl]
    if isn is None:  # no SYN seen: start at the lowest sequence number
        if not datasegs:
            return b"", []
        base = datasegs[0][0]
        isn = base - 1
        for seq, _ in datasegs:
            if ((seq - base) & 0xFFFFFFFF) > 0x7FFFFFFF:
                base = seq
                isn = base - 1
    warnings = []
    rel = sorted((((seq - isn - 1) & 0xFFFFFFFF), pl) for seq, pl in datasegs)
    buf = bytearray()
    for off, pl in rel:
        if off > len(buf):
            warnings.append("gap in TCP stream at offset %d (missing %d bytes); stream cut there"
                            % (len(buf), off - len(buf)))
            break
        if off + len(pl) > len(buf):
            buf.extend(pl[len(buf) - off:])
    return bytes(buf), warnings


def split_messages(stream):
    msgs, p, warnings = [], 0, []
    while p < len(stream):
        if len(stream) - p < 19:
            warnings.append("%d trailing bytes (incomplete header)" % (len(stream) - p))
            break
        if stream[p:p + 16] != MARKER:
            warnings.append("bad marker at stream offset %d; rest of stream dropped" % p)
            break
        ln = struct.unpack("!H", stream[p + 16:p + 18])[0]
        if ln < 19:
            warnings.append("bad length %d at offset %d" % (ln, p))
            break
        if p + ln > len(stream):
            warnings.append("incomplete last message (%d of %d bytes)" % (len(stream) - p, ln))
            break
        msgs.append(stream[p:p + ln])
        p += ln
    return msgs, warnings


# ---------------------------------------------------------------- OPEN parsing

def open_caps(msg):
    """Returns dict with asn, hold, id, caps (list of (code, value bytes))."""
    assert msg[18] == 1
    body = msg[19:]
    ver, asn, hold = body[0], struct.unpack("!H", body[1:3])[0], struct.unpack("!H", body[3:5])[0]
    bgpid = ".".join(str(x) for x in body[5:9])
    optlen = body[9]
    p = 10
    ext = False
    if optlen == 255 and len(body) > 10 and body[10] == 255:  # RFC 9072 extended optional parameters
        ext = True
        optlen = struct.unpack("!H", body[11:13])[0]
        p = 13
    end = p + optlen
    caps = []
    while p < end:
        ptype = body[p]
        if ext:
            plen = struct.unpack("!H", body[p + 1:p + 3])[0]
            p += 3
        else:
            plen = body[p + 1]
            p += 2
        pval = body[p:p + plen]
        p += plen
        if ptype != 2:
            continue
        q = 0
        while q < len(pval):
            code, clen = pval[q], pval[q + 1]
            caps.append((code, bytes(pval[q + 2:q + 2 + clen])))
            q += 2 + clen
    return {"version": ver, "asn": asn, "hold": hold, "id": bgpid, "caps": caps}


def cap_summary(o):
    names = {1: "mp", 2: "route-refresh", 5: "ext-nexthop", 6: "ext-message", 9: "bgp-role",
             64: "graceful-restart", 65: "as4", 69: "add-path", 70: "enhanced-route-refresh",
             71: "llgr", 73: "fqdn", 128: "route-refresh(old)"}
    out = []
    for code, val in o["caps"]:
        n = names.get(code, "cap%d" % code)
        if code == 1:
            afi, safi = struct.unpack("!HxB", val)
            n += "(%s)" % fam_name(afi, safi)
        elif code == 65:
            n += "(%d)" % struct.unpack("!I", val)[0]
        elif code == 69:
            parts = []
            for i in range(0, len(val) - 3, 4):
                afi, safi, mode = struct.unpack("!HBB", val[i:i + 4])
                parts.append("%s:%s" % (fam_name(afi, safi), {1: "rx", 2: "tx", 3: "rx+tx"}.get(mode, mode)))
            n += "(%s)" % ",".join(parts)
        out.append(n)
    return " ".join(out)


def addpath_modes(o):
    modes = {}
    for code, val in o["caps"]:
        if code == 69:
            for i in range(0, len(val) - 3, 4):
                afi, safi, mode = struct.unpack("!HBB", val[i:i + 4])
                modes[(afi, safi)] = modes.get((afi, safi), 0) | mode
    return modes


def has_cap(o, code):
    return any(c == code for c, _ in o["caps"])


def has_as4(o):
    return has_cap(o, 65)


def directives(sender_open, receiver_open):
    d = []
    tx, rx = addpath_modes(sender_open), addpath_modes(receiver_open)
    fams = [f for f in sorted(tx) if tx[f] & 2 and rx.get(f, 0) & 1]
    if fams:
        d.append("#! add-path=" + ",".join(fam_name(*f) for f in fams))
    if not (has_as4(sender_open) and has_as4(receiver_open)):
        d.append("#! as2")
    if has_cap(sender_open, 6) and has_cap(receiver_open, 6):
        d.append("#! extended-message")
    return d


# ---------------------------------------------------------------- extract

def cmd_extract(a):
    ipa, ipb = norm_ip(a.a_ip), norm_ip(a.b_ip)
    flows = {}
    for src, sport, dst, dport, seq, flags, pl in read_pcap(a.pcap):
        if {src, dst} != {ipa, ipb} or 179 not in (sport, dport):
            continue
        flows.setdefault((src, sport, dst, dport), []).append((seq, flags, pl))
    # group into connections
    conns = {}
    for (src, sport, dst, dport), segs in flows.items():
        key = tuple(sorted([(src, sport), (dst, dport)]))
        conns.setdefault(key, {})[(src, sport)] = segs
    candidates = []
    for key, dirs in conns.items():
        result = {}
        warns = []
        for (src, sport), segs in dirs.items():
            stream, w1 = reassemble(segs)
            msgs, w2 = split_messages(stream)
            result[src] = msgs
            warns += ["%s:%d: %s" % (src, sport, w) for w in w1 + w2]
        ma, mb = result.get(ipa, []), result.get(ipb, [])
        ok = bool(ma) and bool(mb) and ma[0][18] == 1 and mb[0][18] == 1
        candidates.append((ok, len(ma) + len(mb), key, ma, mb, warns))
    if not candidates:
        raise SystemExit("no BGP connection between %s and %s in %s" % (ipa, ipb, a.pcap))
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    ok, _, key, ma, mb, warns = candidates[0]
    if not ok:
        raise SystemExit("no connection between %s and %s with an OPEN from both sides" % (ipa, ipb))
    for c in candidates[1:]:
        print("note: ignoring other connection %s (%d messages)" % (c[2], c[1]), file=sys.stderr)
    for w in warns:
        print("warning: " + w, file=sys.stderr)
    oa, ob = open_caps(ma[0]), open_caps(mb[0])
    today = datetime.date.today().isoformat()
    suffix = "-" + a.variant if a.variant else ""
    for (sname, sdesc, sip, so, smsgs), (rname, rdesc, rip, ro) in (
            ((a.a_name, a.a_desc, ipa, oa, ma), (a.b_name, a.b_desc, ipb, ob)),
            ((a.b_name, a.b_desc, ipb, ob, mb), (a.a_name, a.a_desc, ipa, oa))):
        path = "%s/%s-to-%s%s.hex" % (a.outdir, sname, rname, suffix)
        counts = {}
        for m in smsgs:
            counts[m[18]] = counts.get(m[18], 0) + 1
        lines = [
            "# BGP messages sent by %s (%s) to %s (%s), in order, one per line." % (sdesc, sip, rdesc, rip),
            "# Session: %s" % a.session,
            "# Sender OPEN:   AS %d, hold %d, id %s, caps: %s" % (so["asn"], so["hold"], so["id"], cap_summary(so)),
            "# Receiver OPEN: AS %d, hold %d, id %s, caps: %s" % (ro["asn"], ro["hold"], ro["id"], cap_summary(ro)),
            "# Captured %s by tests/vectors/capture.sh (tcpdump on a veth between two network" % today,
            "# namespaces; TCP payload reassembled and split by tests/vectors/bgpvec.py)." ,
            "# Messages: " + ", ".join("%s %d" % (TYPES.get(t, str(t)), n) for t, n in sorted(counts.items())),
        ]
        lines += directives(so, ro)
        lines += [m.hex() for m in smsgs]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        print("wrote %s: %d messages %s" % (path, len(smsgs), " ".join(directives(so, ro))))


# ---------------------------------------------------------------- check

def cmd_check(a):
    bad = 0
    for path in a.files:
        counts, dirs, n, err = {}, [], 0, []
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if line.startswith("#!"):
                    dirs.append(line[2:].strip())
                    continue
                if line.startswith("#") or not line:
                    continue
                try:
                    m = bytes.fromhex(line)
                except ValueError:
                    err.append("line %d: not hex" % lineno)
                    continue
                if line != line.lower() or not line.startswith("f" * 32):
                    err.append("line %d: not lowercase / no marker" % lineno)
                if len(m) < 19 or struct.unpack("!H", m[16:18])[0] != len(m):
                    err.append("line %d: length field mismatch" % lineno)
                    continue
                if n == 0 and m[18] != 1:
                    err.append("line %d: first message is not OPEN" % lineno)
                counts[m[18]] = counts.get(m[18], 0) + 1
                n += 1
        if 2 not in counts:
            err.append("no UPDATE")
        bad += bool(err)
        print("%-40s %4d msgs  %s  [%s]%s" % (
            path.rsplit("/", 1)[-1], n,
            " ".join("%s=%d" % (TYPES.get(t, str(t)), c) for t, c in sorted(counts.items())),
            "; ".join(dirs), ("  ERRORS: " + "; ".join(err)) if err else ""))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract")
    e.add_argument("--pcap", required=True)
    e.add_argument("--outdir", required=True)
    for side in ("a", "b"):
        e.add_argument("--%s-ip" % side, required=True)
        e.add_argument("--%s-name" % side, required=True)
        e.add_argument("--%s-desc" % side, required=True)
    e.add_argument("--variant", default="")
    e.add_argument("--session", default="")
    c = sub.add_parser("check")
    c.add_argument("files", nargs="+")
    a = ap.parse_args()
    if a.cmd == "extract":
        cmd_extract(a)
    else:
        sys.exit(cmd_check(a))


if __name__ == "__main__":
    main()
