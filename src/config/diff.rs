//! Reload as one pure function: from the running model and a new one, the smallest set of
//! changes to apply. A peer is the same peer while its address and port stay; its session is
//! reset only when a setting the session uses changed.

use std::collections::HashMap;

use super::{Config, LogLevel, Peer, PeerDefaults};

/// What a reload changes.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub log_level: Option<LogLevel>,
    /// New peers.
    pub added: Vec<Peer>,
    /// Peers no longer configured (as they were configured).
    pub removed: Vec<Peer>,
    pub changed: Vec<PeerChange>,
    /// Origination, services, pools, communities, cluster id, paths per prefix, static
    /// routes or the route priority changed:
    /// every prefix is decided and exported again.
    pub policy: bool,
    /// Pools, static routes or the route priority changed: every kernel route is worked
    /// out again (encapsulation, gateways resolved through a static route, metrics).
    pub pools: bool,
    /// The named filters changed: peers naming them have their routes filtered again, their
    /// sessions kept.
    pub filters: bool,
}

/// A peer whose settings changed.
#[derive(Debug, PartialEq)]
pub struct PeerChange {
    pub old: Peer,
    pub new: Peer,
    /// The settings that changed, by name.
    pub settings: Vec<&'static str>,
    /// A setting the session was opened with changed: it must be reset, with Cease "Other
    /// Configuration Change" (RFC 4486 §4). Otherwise the new settings apply at once.
    pub reset: bool,
}

/// Settings the RIB applies as routes arrive (a changed filter list re-runs the peer's import
/// and export, as BIRD's reconfiguration does with a changed filter), and BFD (whose session
/// runs beside BGP's and takes new timers with a Poll Sequence, RFC 5880 §6.8.3); every other
/// one is the session's (`local_as` among them: the OPEN carries it). What `show protocols
/// all` prints of the configuration changes no route.
const WITHOUT_RESET: [&str; 7] = [
    "import_limit",
    "import_limit_action",
    "filters",
    "bfd",
    "description",
    "import_filter",
    "export_filter",
];

/// The changes from `running` to `new`, or why they need a restart (the running
/// configuration then stays).
pub fn diff(running: &Config, new: &Config) -> Result<Changes, String> {
    let restart = needs_restart(running, new);
    if !restart.is_empty() {
        return Err(format!(
            "changing {} needs a restart; the running configuration stays",
            restart.join(", ")
        ));
    }
    // Peers by address and port, so a datastore's thousands of peers diff in linear time.
    let key = |p: &Peer| (p.address, p.port);
    let running_peers: HashMap<_, &Peer> = running.peers.iter().map(|p| (key(p), p)).collect();
    let new_peers: HashMap<_, &Peer> = new.peers.iter().map(|p| (key(p), p)).collect();
    let mut c = Changes {
        log_level: (running.log_level != new.log_level).then_some(new.log_level),
        policy: (
            &running.originate,
            &running.services,
            &running.pools,
            &running.communities,
            running.cluster_id,
            running.max_paths,
            &running.static_routes,
            running.normal_route_priority,
        ) != (
            &new.originate,
            &new.services,
            &new.pools,
            &new.communities,
            new.cluster_id,
            new.max_paths,
            &new.static_routes,
            new.normal_route_priority,
        ),
        pools: (
            &running.pools,
            &running.static_routes,
            running.normal_route_priority,
        ) != (&new.pools, &new.static_routes, new.normal_route_priority),
        filters: running.filters != new.filters,
        ..Changes::default()
    };
    for old in &running.peers {
        match new_peers.get(&key(old)).copied() {
            None => c.removed.push(old.clone()),
            Some(p) if p == old => {}
            Some(p) => {
                let settings = changed_settings(old, p);
                c.changed.push(PeerChange {
                    reset: settings.iter().any(|s| !WITHOUT_RESET.contains(s)),
                    old: old.clone(),
                    new: p.clone(),
                    settings,
                });
            }
        }
    }
    c.added = (new.peers.iter())
        .filter(|p| !running_peers.contains_key(&key(p)))
        .cloned()
        .collect();
    Ok(c)
}

/// The settings that changed and only a restart applies.
fn needs_restart(running: &Config, new: &Config) -> Vec<&'static str> {
    [
        ("asn", running.asn != new.asn),
        ("router_id", running.router_id != new.router_id),
        ("listen", running.listen != new.listen),
        ("metrics", running.metrics != new.metrics),
        ("kernel", running.kernel != new.kernel),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// Keeps the running values of the settings only a restart applies in `new`, so the rest of
/// it can apply; the names of those that differed. For a source that changes under a running
/// daemon (the datastore), where refusing the whole change would leave every other part
/// of it out too.
pub fn keep_running(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let kept = needs_restart(running, new);
    new.asn = running.asn;
    new.router_id = running.router_id;
    new.listen = running.listen.clone();
    new.metrics = running.metrics;
    new.kernel = running.kernel.clone();
    kept
}

/// The names of the settings that differ between two configurations of one peer.
fn changed_settings(a: &Peer, b: &Peer) -> Vec<&'static str> {
    let (x, y): (&PeerDefaults, &PeerDefaults) = (&a.settings, &b.settings);
    let mut out = Vec::new();
    let mut note = |name, differs: bool| {
        if differs {
            out.push(name);
        }
    };
    note("name", a.name != b.name);
    note("asn", a.asn != b.asn);
    note("hold_time", x.hold_time != y.hold_time);
    note("keepalive", x.keepalive != y.keepalive);
    note("connect_delay", x.connect_delay != y.connect_delay);
    note("connect_retry", x.connect_retry != y.connect_retry);
    note("error_wait", x.error_wait != y.error_wait);
    note("passive", x.passive != y.passive);
    note("password", x.password != y.password);
    note("source_address", x.source_address != y.source_address);
    note("ttl", x.ttl != y.ttl);
    note("ttl_security", x.ttl_security != y.ttl_security);
    note("graceful_restart", x.graceful_restart != y.graceful_restart);
    note("restart_time", x.restart_time != y.restart_time);
    note("add_paths", x.add_paths != y.add_paths);
    note("add_paths_send", x.add_paths_send != y.add_paths_send);
    note("rr_client", x.rr_client != y.rr_client);
    note("next_hop", x.next_hop != y.next_hop);
    note("allow_local_as", x.allow_local_as != y.allow_local_as);
    note("import_limit", x.import_limit != y.import_limit);
    note(
        "import_limit_action",
        x.import_limit_action != y.import_limit_action,
    );
    note("local_as", x.local_asn != y.local_asn);
    note("filters", x.filters != y.filters);
    note("bfd", x.bfd != y.bfd);
    note("description", x.description != y.description);
    note("import_filter", x.import_filter != y.import_filter);
    note("export_filter", x.export_filter != y.export_filter);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_needs_a_restart() {
        let running = Config::parse(&format!(
            "{HEAD}[[peer]]\naddress = \"198.51.100.2\"\nasn = 64512\n"
        ))
        .unwrap();
        let mut new = Config::parse("router_id = \"198.51.100.9\"\nasn = 64999\n[[peer]]\naddress = \"198.51.100.3\"\nasn = 64512\n").unwrap();
        assert_eq!(keep_running(&running, &mut new), vec!["asn", "router_id"]);
        assert_eq!((new.asn, new.router_id), (running.asn, running.router_id));
        let c = diff(&running, &new).unwrap();
        assert_eq!((c.added.len(), c.removed.len()), (1, 1));
        assert!(keep_running(&running, &mut new).is_empty());
    }

    const HEAD: &str = "router_id = \"198.51.100.1\"\nasn = 64512\n";

    fn model(extra: &str) -> Config {
        Config::parse(&format!("{HEAD}{extra}")).expect("valid")
    }

    fn peer(last: u8, extra: &str) -> String {
        format!("[[peer]]\naddress = \"198.51.100.{last}\"\nasn = 64512\n{extra}")
    }

    /// What changed, in short: (added, removed, changed with its settings and reset).
    type Summary = (
        Vec<String>,
        Vec<String>,
        Vec<(String, Vec<&'static str>, bool)>,
    );

    fn summary(c: &Changes) -> Summary {
        let names = |v: &[Peer]| v.iter().map(|p| p.name.clone()).collect();
        (
            names(&c.added),
            names(&c.removed),
            (c.changed.iter())
                .map(|p| (p.new.name.clone(), p.settings.clone(), p.reset))
                .collect(),
        )
    }

    #[test]
    fn peers_as_a_table() {
        let two = format!("{}{}", peer(2, ""), peer(3, ""));
        let n = |s: &str| s.to_string();
        let cases: Vec<(&str, String, String, Summary)> = vec![
            (
                "nothing",
                two.clone(),
                two.clone(),
                (vec![], vec![], vec![]),
            ),
            (
                "one added",
                peer(2, ""),
                two.clone(),
                (vec![n("Node_198_51_100_3")], vec![], vec![]),
            ),
            (
                "one removed",
                two.clone(),
                peer(3, ""),
                (vec![], vec![n("Node_198_51_100_2")], vec![]),
            ),
            (
                "hold time: reset",
                two.clone(),
                format!("{}{}", peer(2, "hold_time = 90\n"), peer(3, "")),
                (
                    vec![],
                    vec![],
                    vec![(n("Node_198_51_100_2"), vec!["hold_time"], true)],
                ),
            ),
            (
                "a default that every peer inherits",
                two.clone(),
                format!("[defaults]\npassword = \"k\"\n{two}"),
                (
                    vec![],
                    vec![],
                    vec![
                        (n("Node_198_51_100_2"), vec!["password"], true),
                        (n("Node_198_51_100_3"), vec!["password"], true),
                    ],
                ),
            ),
            (
                "import limit: no reset",
                two.clone(),
                format!(
                    "{}{}",
                    peer(2, "import_limit = 10\nimport_limit_action = \"warn\"\n"),
                    peer(3, "")
                ),
                (
                    vec![],
                    vec![],
                    vec![(
                        n("Node_198_51_100_2"),
                        vec!["import_limit", "import_limit_action"],
                        false,
                    )],
                ),
            ),
            (
                "import limit and AS: reset",
                peer(2, ""),
                "[[peer]]\naddress = \"198.51.100.2\"\nasn = 64513\nimport_limit = 5\n".into(),
                (
                    vec![],
                    vec![],
                    vec![(n("Node_198_51_100_2"), vec!["asn", "import_limit"], true)],
                ),
            ),
            (
                "BFD on: no reset",
                peer(2, ""),
                peer(2, "bfd = true\n"),
                (
                    vec![],
                    vec![],
                    vec![(n("Node_198_51_100_2"), vec!["bfd"], false)],
                ),
            ),
            (
                "[bfd] timers: no reset",
                format!("[bfd]\nmin_tx = 300\n{}", peer(2, "bfd = true\n")),
                format!("[bfd]\nmin_tx = 100\n{}", peer(2, "bfd = true\n")),
                (
                    vec![],
                    vec![],
                    vec![(n("Node_198_51_100_2"), vec!["bfd"], false)],
                ),
            ),
            (
                "[bfd] timers of a peer without BFD: nothing",
                format!("[bfd]\nmin_tx = 300\n{}", peer(2, "")),
                format!("[bfd]\nmin_tx = 100\n{}", peer(2, "")),
                (vec![], vec![], vec![]),
            ),
            (
                "another port is another peer",
                peer(2, ""),
                peer(2, "port = 1179\n"),
                (
                    vec![n("Node_198_51_100_2")],
                    vec![n("Node_198_51_100_2")],
                    vec![],
                ),
            ),
            (
                "a peer's filter list: no reset",
                format!("{F}{}", peer(2, "")),
                format!("{F}{}", peer(2, "filters = [\"f\"]\n")),
                (
                    vec![],
                    vec![],
                    vec![(n("Node_198_51_100_2"), vec!["filters"], false)],
                ),
            ),
            (
                "local AS: reset",
                peer(2, ""),
                peer(2, "local_as = 65001\n"),
                (
                    vec![],
                    vec![],
                    vec![(n("Node_198_51_100_2"), vec!["local_as"], true)],
                ),
            ),
            (
                "renamed: reset",
                peer(2, ""),
                peer(2, "name = \"Mesh\"\n"),
                (vec![], vec![], vec![(n("Mesh"), vec!["name"], true)]),
            ),
        ];
        for (what, old, new, want) in cases {
            let c = diff(&model(&old), &model(&new)).expect(what);
            assert_eq!(summary(&c), want, "{what}");
            assert!(!c.policy && !c.pools && !c.filters, "{what}");
            assert!(c.log_level.is_none(), "{what}");
        }
    }

    /// A filter's rules changing touches no peer's settings: the peers naming it are
    /// filtered again, their sessions kept.
    #[test]
    fn filter_definitions() {
        let with = |rules: &str| {
            model(&format!(
                "[[filters]]\nname = \"f\"\n{rules}\n{}",
                peer(2, "filters = [\"f\"]\n")
            ))
        };
        let old = with("");
        let new = with("import_v4 = [{ action = \"reject\" }]");
        let c = diff(&old, &new).unwrap();
        assert!(c.filters && !c.policy);
        assert!(c.changed.is_empty() && c.added.is_empty() && c.removed.is_empty());
        assert!(!diff(&old, &old).unwrap().filters);
    }

    const F: &str = "[[filters]]\nname = \"f\"\n";

    #[test]
    fn policy_and_log_level() {
        let cases = [
            ("", "", false, false, None),
            ("", "originate = [\"203.0.113.0/26\"]\n", true, false, None),
            ("", "services = [\"10.96.0.0/12\"]\n", true, false, None),
            ("", "cluster_id = \"1.2.3.4\"\n", true, false, None),
            ("", "max_paths = 4\n", true, false, None),
            ("", "[[pool]]\ncidr = \"10.0.0.0/16\"\n", true, true, None),
            // Calico 3.32's coupling: metrics and LOCAL_PREFs change; no session reset.
            ("", "normal_route_priority = 1024\n", true, true, None),
            // reachableBy: a kernel route, and gateways resolved through it; no session reset.
            (
                "",
                "[[static_route]]\nprefix = \"10.192.0.254/32\"\nvia = \"10.192.0.1\"\n",
                true,
                true,
                None,
            ),
            (
                "",
                "[[communities]]\nprefix = \"10.0.0.0/8\"\ncommunities = [\"1:1\"]\n",
                true,
                false,
                None,
            ),
            (
                "",
                "log_level = \"debug\"\n",
                false,
                false,
                Some(LogLevel::Debug),
            ),
        ];
        for (old, new, policy, pools, level) in cases {
            let c = diff(&model(old), &model(new)).expect(new);
            assert_eq!(
                (c.policy, c.pools, c.log_level),
                (policy, pools, level),
                "{new}"
            );
            assert!(c.added.is_empty() && c.removed.is_empty() && c.changed.is_empty());
        }
    }

    #[test]
    fn refuses_what_needs_a_restart() {
        let cases = [
            ("asn = 64513\n", "asn"),
            ("router_id = \"198.51.100.9\"\n", "router_id"),
            ("[listen]\nport = 1179\n", "listen"),
            ("metrics = \"127.0.0.1:9900\"\n", "metrics"),
            ("[kernel]\ntable = 100\n", "kernel"),
        ];
        for (new, what) in cases {
            let text = if new.starts_with("asn") || new.starts_with("router_id") {
                let other = if new.starts_with("asn") {
                    "router_id = \"198.51.100.1\"\n"
                } else {
                    "asn = 64512\n"
                };
                format!("{other}{new}")
            } else {
                format!("{HEAD}{new}")
            };
            let e = diff(&model(""), &Config::parse(&text).expect("valid")).unwrap_err();
            assert_eq!(
                e,
                format!("changing {what} needs a restart; the running configuration stays")
            );
        }
    }
}
