//! Per-peer BGPFilter rules and per-peer local AS against a real BIRD 2 peer, in the
//! interop lab's two namespaces (root; run under the shared lock):
//!
//!     sudo flock /tmp/wren-net.lock cargo test --test filters
//!
//! BIRD 2 (AS 64512, iBGP) announces two prefixes; wrend's import rule refuses one, its
//! export rules keep its own block back and send a kernel route Calico's rules would not.
//! A reload changing the filter turns each decision around with the session kept. Then an
//! eBGP session where wrend speaks as a local AS: BIRD accepts the OPEN only with that AS,
//! and the AS_PATH it receives starts with it.

mod harness;

use std::path::PathBuf;

use harness::lab::{ESTABLISH, Fam, Lab, WREN_ASN, WREN_NET4};
use harness::proc::{cli, system_bin, wait_until};
use harness::wrend::{Wren, WrenConf};

/// BIRD 2's prefixes: the first is let in, the second refused until the reload.
const LET_IN: &str = "203.0.113.64/26";
const KEPT_OUT: &str = "203.0.113.128/26";
/// A route in wrend's kernel table, through `wr0`: outside every pool, so Calico's rules
/// would not export it.
const KERNEL: &str = "192.0.2.0/24";

/// A BIRD 2 speaker in the peer namespace, with its own config.
struct Bird {
    ctl: PathBuf,
}

impl Bird {
    fn start(lab: &Lab, local_as: u32, neighbor_as: u32) -> Bird {
        let conf = format!(
            "router id 198.51.100.2;\nlog \"{dir}/bird.out\" all;\n\
             protocol device {{ scan time 10; }}\n\
             protocol static st {{ ipv4; route {LET_IN} blackhole; route {KEPT_OUT} blackhole; }}\n\
             protocol bgp wren {{\n  local 198.51.100.2 as {local_as};\n  \
             neighbor 198.51.100.1 as {neighbor_as};\n  direct;\n  \
             hold time 9; keepalive time 3;\n  \
             connect delay time 1; connect retry time 3; error wait time 1, 5;\n  \
             ipv4 {{ import all; export where source = RTS_STATIC; next hop self; \
             gateway direct; }};\n}}\n",
            dir = lab.dir.display()
        );
        let path = lab.write("bird.conf", &conf);
        let b = Bird {
            ctl: lab.dir.join("bird.ctl"),
        };
        let (c, s) = (path.display().to_string(), b.ctl.display().to_string());
        let p = lab.spawn(
            "bird",
            &lab.ns_peer,
            &system_bin("bird"),
            &["-f", "-c", &c, "-s", &s],
        );
        let r = wait_until("BIRD's CLI answers", ESTABLISH, || {
            if !lab.alive(p) {
                return Ok(Err("BIRD exited".to_string()));
            }
            b.cmd("show status").map(Ok)
        });
        lab.must(r.and_then(|x| x));
        b
    }

    fn cmd(&self, cmd: &str) -> Result<String, String> {
        let ctl = self.ctl.display().to_string();
        let mut args = vec!["-s", ctl.as_str()];
        args.extend(cmd.split_whitespace());
        let out = cli(None, &system_bin("birdc"), &args)?;
        if out.contains("Unable to connect") {
            return Err(out.trim().to_string());
        }
        Ok(out)
    }

    /// BIRD's `show protocols` row for wrend (its state and since when).
    fn row(&self) -> Result<String, String> {
        let out = self.cmd("show protocols")?;
        out.lines()
            .find(|l| l.starts_with("wren "))
            .map(str::to_string)
            .ok_or_else(|| format!("no row for wren: {out}"))
    }

    /// Whether BIRD has `prefix` from wrend.
    fn has_from_wren(&self, prefix: &str) -> Result<bool, String> {
        let out = match self.cmd(&format!("show route {prefix}")) {
            // birdc exits 1 when it has no route for the prefix.
            Err(e) if e.contains("Network not found") => return Ok(false),
            r => r?,
        };
        Ok(out
            .lines()
            .any(|l| l.starts_with(prefix) && l.contains("[wren ")))
    }
}

/// Waits until `check` says `want` for each prefix.
fn wait_for(lab: &Lab, what: &str, check: impl Fn() -> Result<bool, String>) {
    let r = wait_until(what, ESTABLISH, || match check() {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("not yet: {what}")),
        Err(e) => Err(e),
    });
    lab.must(r);
}

fn wren_has(lab: &Lab, w: &Wren, prefix: &str) -> Result<bool, String> {
    Ok(lab.wren_route(w, prefix)?.is_some())
}

fn established(lab: &Lab, w: &Wren, bird: &Bird) {
    wait_for(lab, "both sides Established", || {
        let row = bird.row()?;
        Ok(lab.wren_established(w).is_ok() && row.contains("Established"))
    });
}

/// The filter tables: `import` refuses `refused` (equal), `export` keeps `held` back (equal)
/// and sends routes through `wr*` interfaces.
fn filters(refused: &str, held: &str) -> String {
    format!(
        "filters = [\"import\", \"export\"]\n\n\
         [[filters]]\nname = \"import\"\n\
         import_v4 = [{{ action = \"reject\", cidr = \"{refused}\", match = \"equal\" }}]\n\n\
         [[filters]]\nname = \"export\"\n\
         export_v4 = [\n  {{ action = \"reject\", cidr = \"{held}\", match = \"equal\" }},\n  \
         {{ action = \"accept\", interface = \"wr*\" }},\n]\n"
    )
}

#[test]
fn import_and_export_rules_and_a_reload_that_keeps_the_session() {
    let lab = Lab::new("flt", &[system_bin("bird"), system_bin("birdc")]);
    harness::netns::ip_lines(&[format!(
        "-n {} route add {KERNEL} dev wr0 proto static",
        lab.ns_wren
    )]);
    let bird = Bird::start(&lab, WREN_ASN, WREN_ASN);
    let mut conf = WrenConf::new(Fam::V4, WREN_ASN);
    conf.extra = filters(KEPT_OUT, WREN_NET4);
    let w = lab.start_wren(conf);
    established(&lab, &w, &bird);

    wait_for(&lab, "wrend has the route no rule refuses", || {
        wren_has(&lab, &w, LET_IN)
    });
    wait_for(
        &lab,
        "BIRD gets the kernel route an accept rule sends",
        || bird.has_from_wren(KERNEL),
    );
    lab.must(match wren_has(&lab, &w, KEPT_OUT) {
        Ok(false) => Ok(()),
        Ok(true) => Err(format!("the import rule let {KEPT_OUT} in")),
        Err(e) => Err(e),
    });
    lab.must(match bird.has_from_wren(WREN_NET4) {
        Ok(false) => Ok(()),
        Ok(true) => Err(format!("the export rule let {WREN_NET4} out")),
        Err(e) => Err(e),
    });
    let row = lab.must(bird.row());

    // The reload: now the other prefix is refused, and nothing of ours is held back.
    let text = std::fs::read_to_string(&w.config).unwrap_or_default();
    let text = text.replace(
        &filters(KEPT_OUT, WREN_NET4),
        &filters(LET_IN, "10.0.0.0/8"),
    );
    lab.write("wren.toml", &text);
    let reply = lab.must(lab.wren_cmd(&w, "configure"));
    assert!(reply.contains("Reconfigured"), "{reply}");
    wait_for(&lab, "wrend has the route refused before", || {
        wren_has(&lab, &w, KEPT_OUT)
    });
    wait_for(&lab, "wrend drops the route the new rule refuses", || {
        wren_has(&lab, &w, LET_IN).map(|x| !x)
    });
    wait_for(&lab, "BIRD gets the block held back before", || {
        bird.has_from_wren(WREN_NET4)
    });
    assert!(lab.must(bird.has_from_wren(KERNEL)), "still sent");
    let after = lab.must(bird.row());
    assert_eq!(after, row, "BIRD's session was reset by the reload");
    lab.must(lab.wren_established(&w));
}

#[test]
fn local_as_opens_the_session_and_leads_the_as_path() {
    let lab = Lab::new("lclas", &[system_bin("bird"), system_bin("birdc")]);
    // BIRD expects its neighbour to be AS 65001; wrend's AS is 64512.
    let bird = Bird::start(&lab, 65000, 65001);
    let mut conf = WrenConf::new(Fam::V4, 65000);
    conf.extra = "local_as = 65001\n".into();
    let w = lab.start_wren(conf);
    established(&lab, &w, &bird);
    let all = lab.must(bird.cmd("show protocols all wren"));
    assert!(
        all.lines()
            .any(|l| l.trim_start().starts_with("Neighbor AS:") && l.ends_with(" 65001")),
        "the OPEN's AS, as BIRD saw it:\n{all}"
    );
    wait_for(&lab, "BIRD gets wrend's block", || {
        bird.has_from_wren(WREN_NET4)
    });
    let route = lab.must(bird.cmd(&format!("show route {WREN_NET4} all")));
    let path = route
        .lines()
        .find_map(|l| l.trim().strip_prefix("BGP.as_path:"))
        .map(str::trim);
    assert_eq!(
        path,
        Some("65001"),
        "the local AS alone leads the path:\n{route}"
    );
    // eBGP from the local AS: BIRD's route comes in with its AS in the path.
    wait_for(&lab, "wrend has BIRD's route", || {
        wren_has(&lab, &w, LET_IN)
    });
    let mine = lab.must(lab.wren_cmd(&w, &format!("show route {LET_IN} all")));
    assert!(mine.contains("BGP.as_path: 65000"), "{mine}");
}

/// The reload's answer to a changed import rule, per peer (loopback, raw peers): one that
/// announced route refresh is sent ROUTE-REFRESH and keeps its session; one that did not is
/// reset with Cease "Other Configuration Change" (refused routes are not kept, so there is
/// no other way to get them back, as BIRD restarts such a protocol).
#[test]
fn a_changed_import_rule_refreshes_or_resets() {
    use std::net::Ipv4Addr;

    use harness::bgp::{self, Raw};
    use harness::loopback::Wrend;
    use wren::wire::notification::{Code, cease};
    use wren::wire::{Capability, Message};

    let (refresh, plain) = (Ipv4Addr::new(127, 0, 0, 51), Ipv4Addr::new(127, 0, 0, 52));
    let config = |port: u16, refused: &str| {
        let mut c = format!(
            "router_id = \"127.0.0.1\"\nasn = {WREN_ASN}\n\
             [kernel]\nenabled = false\n[listen]\naddresses = [\"127.0.0.1\"]\nport = {port}\n\
             [defaults]\npassive = true\nhold_time = 30\nfilters = [\"in\"]\n"
        );
        for a in [refresh, plain] {
            c.push_str(&format!("[[peer]]\naddress = \"{a}\"\nasn = {WREN_ASN}\n"));
        }
        c.push_str(&format!(
            "[[filters]]\nname = \"in\"\n\
             import_v4 = [{{ action = \"reject\", cidr = \"{refused}\", match = \"equal\" }}]\n"
        ));
        c
    };
    let wrend = Wrend::start("filters", |port| config(port, KEPT_OUT));
    let up = |from: Ipv4Addr, caps: &[Capability]| {
        let mut r = Raw::connect(from, wrend.port);
        r.send_msg(&Message::Open(bgp::open(WREN_ASN, from, 30, caps)));
        assert!(matches!(r.recv(), Some(Message::Open(_))), "wrend's OPEN");
        assert!(matches!(r.recv(), Some(Message::Keepalive)));
        r.send_msg(&Message::Keepalive);
        r
    };
    let mut a = up(refresh, &[Capability::RouteRefresh]);
    let mut b = up(plain, &[]);
    harness::loopback::wait_for(
        || {
            wrend
                .control("show protocols")
                .matches("Established")
                .count()
                == 2
        },
        "both sessions Established",
    );

    std::fs::write(wrend.dir.join("wren.toml"), config(wrend.port, LET_IN)).expect("config");
    let reply = wrend.control("configure");
    assert!(reply.contains("Reconfigured"), "{reply}");
    let asked = std::iter::from_fn(|| a.recv())
        .find_map(|m| match m {
            Message::RouteRefresh(r) => Some(r),
            Message::Notification(n) => panic!("the refresh-capable peer was reset: {n:?}"),
            _ => None,
        })
        .expect("a ROUTE-REFRESH");
    assert_eq!(
        (asked.afi, asked.safi),
        (wren::wire::Afi::IPV4, wren::wire::Safi::UNICAST)
    );
    let n = b.notification().expect("a NOTIFICATION");
    assert_eq!(
        (n.code, n.subcode),
        (Code::Cease as u8, cease::OTHER_CONFIGURATION_CHANGE)
    );
}

/// Operations against BIRD 2 over eBGP: wrend's export rule prepends two AS numbers before
/// its own (as BIRD 1.6 does: its protocol adds the local AS before the export filter) and adds a community and a large community to its block; its import rule
/// matches BIRD's AS path and sets the priority (LOCAL_PREF 2147483647 - 100) and a
/// community on what BIRD sends.
#[test]
fn operations_change_the_routes_both_ways() {
    let lab = Lab::new("fltops", &[system_bin("bird"), system_bin("birdc")]);
    let bird = Bird::start(&lab, 65000, WREN_ASN);
    let mut conf = WrenConf::new(Fam::V4, 65000);
    conf.extra = format!(
        "filters = [\"ops\"]\n\n\
         [[filters]]\nname = \"ops\"\n\
         import_v4 = [{{ action = \"accept\", as_path_prefix = [65000], operations = \
         [{{ set_priority = 100 }}, {{ add_community = \"65000:7\" }}] }}]\n\
         export_v4 = [{{ action = \"accept\", peer_type = \"ebgp\", cidr = \"{WREN_NET4}\", \
         match = \"equal\", operations = [{{ prepend_as_path = [65010, 65011] }}, \
         {{ add_community = \"64512:7\" }}, {{ add_community = \"64512:2:3\" }}] }}]\n"
    );
    let w = lab.start_wren(conf);
    established(&lab, &w, &bird);
    wait_for(&lab, "BIRD gets wrend's block", || {
        bird.has_from_wren(WREN_NET4)
    });
    let route = lab.must(bird.cmd(&format!("show route {WREN_NET4} all")));
    let attr = |name: &str| {
        route
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    assert_eq!(
        attr("BGP.as_path:").as_deref(),
        Some("65010 65011 64512"),
        "{route}"
    );
    assert_eq!(
        attr("BGP.community:").as_deref(),
        Some("(64512,7)"),
        "{route}"
    );
    assert_eq!(
        attr("BGP.large_community:").as_deref(),
        Some("(64512, 2, 3)"),
        "{route}"
    );
    wait_for(&lab, "wrend has BIRD's route", || {
        wren_has(&lab, &w, LET_IN)
    });
    let mine = lab.must(lab.wren_cmd(&w, &format!("show route {LET_IN} all")));
    assert!(mine.contains("BGP.local_pref: 2147483547"), "{mine}");
    assert!(mine.contains("BGP.community: (65000,7)"), "{mine}");
}
