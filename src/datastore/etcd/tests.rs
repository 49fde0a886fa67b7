//! The gateway's JSON as etcd 3.4.23 (Debian's etcd-server) writes it, captured with curl.

use super::*;

#[test]
fn decodes_a_range_page() {
    let page = br#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"3","raft_term":"2"},"kvs":[{"key":"L2NhbGljby9pcGFtL3YyL2hvc3QvYS9pcHY0L2Jsb2NrLzEwLjAuMC4wLTI2","create_revision":"3","mod_revision":"3","version":"1"},{"key":"L2NhbGljby9yZXNvdXJjZXMvdjMvcHJvamVjdGNhbGljby5vcmcvbm9kZXMvYQ==","create_revision":"2","mod_revision":"2","version":"1","value":"eyJ4IjoxfQ=="}],"more":true,"count":"2"}"#;
    let p = decode_range(page).unwrap();
    assert_eq!(p.revision, 3);
    assert!(p.more);
    assert_eq!(
        p.kvs,
        vec![
            Kv {
                key: "/calico/ipam/v2/host/a/ipv4/block/10.0.0.0-26".into(),
                // An empty value is left out of the JSON.
                value: Vec::new(),
            },
            Kv {
                key: "/calico/resources/v3/projectcalico.org/nodes/a".into(),
                value: br#"{"x":1}"#.to_vec(),
            },
        ]
    );
    // No key in the range: no `kvs`, no `count`.
    let empty = br#"{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"2"}}"#;
    let p = decode_range(empty).unwrap();
    assert!(p.kvs.is_empty() && !p.more && p.revision == 3);
}

#[test]
fn refuses_what_is_not_a_range_page() {
    for bad in [
        &b"not json"[..],
        br#"{"kvs":[{"key":"!!notbase64"}]}"#,
        br#"{"header":{"revision":"x"}}"#,
        br#"{"kvs":{}}"#,
    ] {
        assert!(
            matches!(decode_range(bad), Err(Error::Decode(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn decodes_watch_messages() {
    let created = br#"{"result":{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"2"},"created":true}}"#;
    let r = decode_watch(created).unwrap();
    assert!(r.created && !r.canceled && r.events.is_empty());

    // A put has no `type` (PUT is proto3's default); a delete has no value.
    let events = br#"{"result":{"header":{"cluster_id":"1","member_id":"2","revision":"4","raft_term":"2"},"events":[{"kv":{"key":"L2NhbGljby9yZXNvdXJjZXMvdjMvcHJvamVjdGNhbGljby5vcmcvbm9kZXMvYQ==","create_revision":"2","mod_revision":"2","version":"1","value":"eyJ4IjoxfQ=="}},{"type":"DELETE","kv":{"key":"L2NhbGljby9yZXNvdXJjZXMvdjMvcHJvamVjdGNhbGljby5vcmcvbm9kZXMvYQ==","mod_revision":"4"}}]}}"#;
    let r = decode_watch(events).unwrap();
    assert_eq!(r.header.revision, 4);
    let events: Vec<Event> = r.events.into_iter().map(Event::from).collect();
    let key = "/calico/resources/v3/projectcalico.org/nodes/a".to_string();
    assert_eq!(
        events,
        vec![
            Event {
                key: key.clone(),
                value: Some(br#"{"x":1}"#.to_vec()),
                mod_revision: 2
            },
            Event {
                key,
                value: None,
                mod_revision: 4
            },
        ]
    );
}

#[test]
fn a_compaction_cancels_the_watch() {
    // The header of a cancelled watch carries no revision.
    let line = br#"{"result":{"header":{"cluster_id":"1","member_id":"2","raft_term":"2"},"canceled":true,"compact_revision":"4"}}"#;
    let r = decode_watch(line).unwrap();
    assert!(r.canceled);
    assert_eq!(r.error(), Error::Compacted(4));
    let other = br#"{"result":{"canceled":true,"cancel_reason":"permission denied"}}"#;
    let r = decode_watch(other).unwrap();
    assert_eq!(
        r.error(),
        Error::Etcd("watch cancelled: permission denied".into())
    );
}

#[test]
fn stream_errors_are_errors() {
    let line = br#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#;
    assert_eq!(
        decode_watch(line).unwrap_err(),
        Error::Etcd("etcdserver: no leader".into())
    );
    assert!(matches!(decode_watch(b"{}"), Err(Error::Decode(_))));
    assert!(matches!(decode_watch(b"[1,"), Err(Error::Decode(_))));
}

#[test]
fn prefix_ends() {
    assert_eq!(prefix_end("/calico/"), "/calico0");
    assert_eq!(prefix_end("a"), "b");
}

#[test]
fn tls_files_are_checked() {
    let mut s: Settings =
        ::toml::from_str("kind = \"etcdv3\"\nendpoints = [\"https://127.0.0.1:2379\"]\n").unwrap();
    assert!(matches!(tls_config(&s), Err(Error::Tls(_))));
    s.ca_file = Some("/nonexistent/ca.pem".into());
    let e = tls_config(&s).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
}
