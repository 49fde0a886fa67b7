#!/usr/bin/env python3
"""Writes the topology files: tests/topology/<name>.clab.yml and each node's config in
tests/topology/<name>/. The files are committed; run this after changing it:

    python3 tests/topology/generate.py

Conventions (the test runner tests/topology.rs relies only on the files, not on this script):
node with last octet N has 198.51.100.N/24 and 2001:db8::N/64 on eth1 (the fabric), the IPAM
blocks 198.19.N.0/26 (pool 198.19.0.0/16, no encapsulation: pods ping over it),
198.18.N.0/26 (pool 198.18.0.0/16, IP-in-IP: routes via tunl0, a veth) and
2001:db8:100:N::/122 (pool 2001:db8:100::/48), and a pod at .2 / ::2 of its first block.
"""
import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
AS = 64512


def v4(n):
    return f"198.51.100.{n}"


def v6(n):
    return f"2001:db8::{n}"


def flat(addr):
    return "".join(c if c.isalnum() else "_" for c in addr)


def passive(peer, me):
    """Calico's rule: wait for a peer whose address is greater as a string."""
    return peer > me


def wrend_toml(n, fams, peers, *, asn=AS, cluster=None, kind="Mesh", pools=("none", "ipip"),
               hold=None, bfd=None, comment=""):
    """peers: list of (last octet, asn, rr_client)."""
    blocks = []
    if "4" in fams:
        blocks.append(f"198.19.{n}.0/26")
        if "ipip" in pools:
            blocks.append(f"198.18.{n}.0/26")
    if "6" in fams:
        blocks.append(f"2001:db8:100:{n}::/122")
    out = [f"# {comment}" if comment else "", f'router_id = "{v4(n)}"', f"asn = {asn}"]
    if cluster:
        out.append(f'cluster_id = "{cluster}"')
    out.append("originate = [" + ", ".join(f'"{b}"' for b in blocks) + "]")
    out.append("")
    if "4" in fams:
        out += ["[[pool]]", 'cidr = "198.19.0.0/16"', 'encapsulation = "none"', ""]
        if "ipip" in pools:
            out += ["[[pool]]", 'cidr = "198.18.0.0/16"', 'encapsulation = "ipip"', ""]
    if "6" in fams:
        out += ["[[pool]]", 'cidr = "2001:db8:100::/48"', ""]
    out += ["# Short timers so the test converges fast (Calico: 2, 5, [5, 30]).", "[defaults]",
            "connect_delay = 1", "connect_retry = 2", "error_wait = [1, 5]"]
    if hold:
        out += [f"hold_time = {hold}", f"keepalive = {max(1, hold // 3)}",
                "restart_time = 30"]
    if bfd:
        out += ["bfd = true", "", "[bfd]", f"min_tx = {bfd[0]}", f"min_rx = {bfd[0]}",
                f"multiplier = {bfd[1]}"]
    out.append("")
    for fam in ("4", "6"):
        if fam not in fams:
            continue
        me = v4(n) if fam == "4" else v6(n)
        for (p, pasn, client) in peers:
            addr = v4(p) if fam == "4" else v6(p)
            out += ["[[peer]]", f'name = "{kind}_{flat(addr)}"', f'address = "{addr}"',
                    f"asn = {pasn}", f'source_address = "{me}"']
            if pasn == asn and passive(addr, me):
                out.append("passive = true")
            if client:
                out.append("rr_client = true")
            out.append("")
    return "\n".join(out).lstrip("\n")


def exec_lines(n, fams, ipip):
    ex = []
    if "4" in fams:
        ex.append(f"ip addr add {v4(n)}/24 dev eth1")
    if "6" in fams:
        ex.append(f"ip -6 addr add {v6(n)}/64 dev eth1 nodad")
    if ipip:
        # No ipip module here: a veth named tunl0 takes the IP-in-IP routes.
        ex += ["ip link add tunl0 type veth peer name tunl0-peer", "ip link set tunl0 up",
               "ip link set tunl0-peer up"]
    return ex


def pods(n, fams):
    p = []
    if "4" in fams:
        p.append(f"198.19.{n}.2")
    if "6" in fams:
        p.append(f"2001:db8:100:{n}::2")
    return " ".join(p)


def clab(name, comment, nodes, links):
    """nodes: list of dicts name, speaker, image, binds, exec, pods."""
    y = [f"# {line}" if line else "#" for line in comment.strip().splitlines()]
    y += [f"name: wren-{name}", "", "topology:", "  nodes:", "    br:",
          "      kind: bridge  # the L2 fabric: containerlab needs a host bridge named br"]
    for nd in nodes:
        y += [f"    {nd['name']}:", "      kind: linux", f"      image: {nd['image']}"]
        if nd.get("cmd"):
            y.append(f"      cmd: {nd['cmd']}")
        y.append("      labels:")
        y.append(f"        wren.speaker: {nd['speaker']}")
        if nd.get("pods"):
            y.append(f'        wren.pods: "{nd["pods"]}"')
        y.append("      binds:")
        for b in nd["binds"]:
            y.append(f"        - {b}")
        y.append("      exec:")
        for e in nd["exec"]:
            y.append(f"        - {e}")
    y += ["", "  links:"]
    for (a, b) in links:
        y.append(f'    - endpoints: ["{a}", "{b}"]')
    with open(os.path.join(HERE, f"{name}.clab.yml"), "w") as f:
        f.write("\n".join(y) + "\n")


WREN_IMAGE = "wren:latest  # calico-node with /bin/bird replaced by wrend"
WREN_CMD = "wrend -c /etc/wren/wren.toml -s /var/run/calico/bird.ctl"


def write(name, node, text):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, node), "w") as f:
        f.write(text)


def wren_node(topo, nname, n, fams, toml, pools=("none", "ipip")):
    write(topo, f"{nname}.toml", toml)
    ipip = "4" in fams and "ipip" in pools
    return dict(name=nname, speaker="wrend", image=WREN_IMAGE, cmd=WREN_CMD,
                binds=[f"{topo}/{nname}.toml:/etc/wren/wren.toml"],
                exec=exec_lines(n, fams, ipip), pods=pods(n, fams))


def links_for(nodes):
    # The bridge side is a host interface under containerlab: named after the node, unique.
    return [(f"{nd['name']}:eth1", f"br:br-{nd['name']}") for nd in nodes]


def mesh(name, fams, comment, count=5, hold=None, pools=("none", "ipip"), bfd=None):
    octets = [10 + i for i in range(1, count + 1)]
    nodes = []
    for i, n in enumerate(octets):
        peers = [(p, AS, False) for p in octets if p != n]
        toml = wrend_toml(n, fams, peers, hold=hold, pools=pools, bfd=bfd,
                          comment=f"node{i + 1} of the {name} topology (node-to-node mesh).")
        nodes.append(wren_node(name, f"node{i + 1}", n, fams, toml, pools))
    clab(name, comment, nodes, links_for(nodes))


def rr(name, fams, rrs, comment, count=5):
    cluster = "244.0.0.1"
    octets = [10 + i for i in range(1, count + 1)]
    rr_octets = [1 + i for i in range(1, rrs + 1)]
    nodes = []
    for k, r in enumerate(rr_octets):
        peers = [(p, AS, True) for p in octets] + [(o, AS, False) for o in rr_octets if o != r]
        toml = wrend_toml(r, fams, peers, cluster=cluster, kind="Node",
                          comment=f"rr{k + 1}: a route reflector (routeReflectorClusterID {cluster}); "
                                  "its clients get rr_client, the other reflector is plain iBGP.")
        nodes.append(wren_node(name, f"rr{k + 1}", r, fams, toml))
    for i, n in enumerate(octets):
        peers = [(r, AS, False) for r in rr_octets]
        toml = wrend_toml(n, fams, peers, kind="Node",
                          comment=f"node{i + 1}: mesh off, peers only with the reflectors.")
        nodes.append(wren_node(name, f"node{i + 1}", n, fams, toml))
    clab(name, comment, nodes, links_for(nodes))


BIRD_KERNEL = """protocol kernel {
  persist; scan time 2; learn; merge paths on; graceful restart;
  import none;
  export filter { if source = RTS_STATIC || source = RTS_BGP then accept; reject; };
}
protocol device { scan time 2; }
"""


def bird_conf(n, peers, bird2):
    me = v4(n)
    ch_open, ch_close = ("  ipv4 {\n  ", "  };\n") if bird2 else ("", "")
    s = [f"# node with BIRD {'2' if bird2 else '1.6.8'} in the migration mesh (Calico-style).",
         f"router id {me};", "log stderr all;", ""]
    k = BIRD_KERNEL
    if bird2:
        # BIRD 2 writes metric 32 unless told; Calico's BIRD 1.6 writes none.
        k = k.replace("graceful restart;\n", "graceful restart; metric 0;\n")
        k = k.replace("  import none;\n  export filter", "  ipv4 { import none; export filter")
        k = k.replace("reject; };\n}", "reject; }; };\n}")
    s.append(k)
    s.append(f"protocol static {{ {'ipv4; ' if bird2 else ''}route 198.19.{n}.0/26 blackhole; }}\n")
    s.append("template bgp mesh {")
    s.append(f"  local {me} as {AS};")
    s.append("  direct; graceful restart on;")
    s.append("  connect delay time 1; connect retry time 2; error wait time 1, 5;")
    body = ("import all;\n  export filter { if net ~ 198.19.0.0/16 then accept; reject; };\n"
            "  add paths on; gateway direct;")
    s.append(ch_open + "  " + body.replace("\n", "\n  " if bird2 else "\n"))
    if ch_close:
        s.append(ch_close.rstrip("\n"))
    s.append("}\n")
    for p in peers:
        addr = v4(p)
        extra = " passive on;" if passive(addr, me) else ""
        s.append(f"protocol bgp Mesh_{flat(addr)} from mesh {{ neighbor {addr} as {AS};{extra} }}")
    return "\n".join(s) + "\n"


def migration():
    name = "migration"
    octets = [11, 12, 13, 14]
    nodes = []
    for i, n in enumerate(octets[:2]):
        peers = [(p, AS, False) for p in octets if p != n]
        toml = wrend_toml(n, "4", peers, pools=("none",),
                          comment=f"node{i + 1}: already on wrend, mesh with two BIRD nodes.")
        nodes.append(wren_node(name, f"node{i + 1}", n, "4", toml, ("none",)))
    for (nname, n, bird2, speaker, image) in [
        ("node3", 13, False, "bird1.6", "calico/node:v3.31.7  # BIRD v0.3.3+birdv1.6.8"),
        ("node4", 14, True, "bird2", "bird2:latest  # BIRD 2.0.12"),
    ]:
        write(name, f"{nname}.conf", bird_conf(n, [p for p in octets if p != n], bird2))
        nodes.append(dict(name=nname, speaker=speaker, image=image,
                          cmd="bird -d -c /etc/bird/bird.conf -s /var/run/calico/bird.ctl",
                          binds=[f"{name}/{nname}.conf:/etc/bird/bird.conf"],
                          exec=exec_lines(n, "4", False), pods=pods(n, "4")))
    clab(name, """A cluster in the middle of replacing BIRD: a node-to-node mesh of 2 wrend nodes,
one BIRD 1.6.8 node (Calico's BIRD) and one BIRD 2 node; everyone reaches everyone.
The pool has no encapsulation (stock BIRD has no krt_tunnel), so all four nodes write
`via NODE dev eth1 proto bird` routes and a blackhole for their own block.""", nodes,
         links_for(nodes))


def tor():
    name = "tor"
    octets = [11, 12, 13]
    tor_as = 65000
    nodes = []
    frr = ["frr defaults traditional", "hostname tor", "log stdout", "!",
           f"router bgp {tor_as}", f" bgp router-id {v4(1)}", " no bgp ebgp-requires-policy",
           " no bgp default ipv4-unicast", " bgp graceful-restart"]
    for n in octets:
        frr += [f" neighbor {v4(n)} remote-as {65000 + n}", f" neighbor {v4(n)} timers connect 2"]
    frr += [" !", " address-family ipv4 unicast"]
    for n in octets:
        frr.append(f"  neighbor {v4(n)} activate")
    frr += [" exit-address-family", "!", ""]
    write(name, "frr.conf", "\n".join(frr))
    # For the FRR container image: which daemons to run (the test runs zebra and bgpd).
    write(name, "daemons", "zebra=yes\nbgpd=yes\nvtysh_enable=yes\n")
    nodes.append(dict(name="tor", speaker="frr", image="quay.io/frrouting/frr:8.4.0",
                      binds=["tor/frr.conf:/etc/frr/frr.conf", "tor/daemons:/etc/frr/daemons"],
                      exec=[f"ip addr add {v4(1)}/24 dev eth1", "sysctl -w net.ipv4.ip_forward=1"]))
    for i, n in enumerate(octets):
        toml = wrend_toml(n, "4", [(1, tor_as, False)], asn=65000 + n, kind="Global",
                          comment=f"node{i + 1} in AS {65000 + n}: eBGP to the top-of-rack router "
                                  f"(AS {tor_as}), which reflects the blocks.")
        nodes.append(wren_node(name, f"node{i + 1}", n, "4", toml))
    clab(name, """Top of rack: each node (its own AS) peers over eBGP with an FRR router (AS 65000)
that passes every node's blocks on to the others; mesh off. On a shared subnet FRR keeps the
originating node as next hop (third-party next hop, RFC 4271 5.1.3), so pods talk directly.""",
         nodes, links_for(nodes))


def calico_node_files(n, octets):
    """Node n's confd output (bird*.cfg, bird*_aggr.cfg, bird*_ipam.cfg; the 3.32+ shape) as
    tests/bird/gen.py renders it, for a dual-stack node-to-node mesh of the nodes `octets`."""
    spec = importlib.util.spec_from_file_location("bird_gen", os.path.join(HERE, "..", "bird", "gen.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    others = [p for p in octets if p != n]
    s = {"router_id": v4(n), "ip4": v4(n), "network4": "198.51.100.0/24", "ip6": v6(n), "as": AS,
         "v32": True,
         "blocks4": [f"198.19.{n}.0/26"], "pools4": [dict(cidr="198.19.0.0/16", mode="none")],
         "peers4": gen.mesh_peers(v4(n), [v4(p) for p in others]),
         "blocks6": [f"2001:db8:100:{n}::/122"], "pools6": [dict(cidr="2001:db8:100::/48")],
         "peers6": gen.mesh_peers(v6(n), [v6(p) for p in others])}
    files = {}
    for fam, sfx in (("4", ""), ("6", "6")):
        files[f"bird{sfx}.cfg"] = gen.bird_cfg(s, fam)
        files[f"bird{sfx}_aggr.cfg"] = gen.aggr_cfg(s, fam)
        files[f"bird{sfx}_ipam.cfg"] = gen.ipam_cfg(s, fam)
    return files


CALICO_CMD = "sh -c 'bird -R -s /var/run/calico/bird.ctl -d -c /etc/calico/confd/config/bird.cfg & " \
             "bird6 -R -s /var/run/calico/bird6.ctl -d -c /etc/calico/confd/config/bird6.cfg'"


def calico_mixed():
    name = "calico-mixed"
    octets = [11, 12, 13, 14]
    nodes = []
    for i, n in enumerate(octets):
        nname = f"node{i + 1}"
        for f, text in calico_node_files(n, octets).items():
            write(os.path.join(name, nname), f, text)
        wren = i >= 2
        nodes.append(dict(
            name=nname, speaker="calico-wren" if wren else "calico-bird1.6",
            image=("wren-calico:latest  # calico-node with /bin/bird and /bin/bird6 linked to wrend"
                   if wren else "calico/node:v3.31.7  # BIRD v0.3.3+birdv1.6.8"),
            cmd=CALICO_CMD, binds=[f"{name}/{nname}:/etc/calico/confd/config"],
            exec=exec_lines(n, "46", False)))
    clab(name, """Calico's drop-in: a dual-stack node-to-node mesh in which node1 and node2 run BIRD 1.6.8
and node3 and node4 run wren as `bird` and `bird6`, every node on the files confd renders
(bird.cfg, bird_aggr.cfg, bird_ipam.cfg and the bird6 twins, 3.32+ shape, written by
tests/bird/gen.py's templates) and started as calico-node's runit services start BIRD.
Pool without encapsulation: stock BIRD has no krt_tunnel (the runner hands BIRD copies
without it). Every node's `ip route` and `ip -6 route` must be the same up to which node
it is.""", nodes, links_for(nodes))


mesh("mesh", "4", """Calico's node-to-node mesh: 5 wrend nodes, IPv4. Two pools: 198.19.0.0/16 without
encapsulation (pod pings) and 198.18.0.0/16 IP-in-IP (routes via tunl0 onlink; tunl0 is a veth
here, there is no ipip device). `containerlab deploy -t mesh.clab.yml` runs it in containers.""")
mesh("mesh-v6", "6", """The node-to-node mesh of mesh.clab.yml over IPv6 only: 5 wrend nodes, IPv6 sessions
carrying the /122 blocks of pool 2001:db8:100::/48.""")
mesh("mesh-dual", "46", """The node-to-node mesh of mesh.clab.yml, dual-stack: every pair of nodes has an IPv4
session (IPv4 blocks) and an IPv6 session (IPv6 blocks), in one wrend per node.""")
rr("rr", "4", 1, """Route reflection: one reflector (cluster 244.0.0.1) and 5 clients, IPv4, mesh off.
The reflector keeps each originator's next hop, so it is not in the data path.""")
rr("rr2", "4", 2, """Route reflection with 2 reflectors in cluster 244.0.0.1 (plain iBGP between them)
and 5 clients peering with both, IPv4.""")
rr("rr-v6", "6", 1, """rr.clab.yml over IPv6: one reflector (cluster 244.0.0.1), 5 clients.""")
rr("rr-dual", "46", 2, """rr2.clab.yml dual-stack: 2 reflectors (cluster 244.0.0.1), 5 clients, IPv4 and IPv6
sessions.""")
migration()
calico_mixed()
tor()
mesh("faults", "4", """Fault injection: a 3-node wrend mesh with a 3 s hold time (keepalive 1 s) and a 30 s
graceful-restart time. The test kills a node, restarts wrend under graceful restart, and
cuts a link.""", count=3, hold=3, pools=("none",))
mesh("faults-bfd", "4", """The faults mesh with BFD at 100 ms x 3 on every session and a 30 s hold time: a frozen
node or a cut link must leave every other kernel within the detection time, not the hold time.""",
     count=3, hold=30, pools=("none",), bfd=(100, 3))
