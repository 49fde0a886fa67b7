//! What the control socket says about the datastore: `show datastore`, and its line in
//! `show status`.

use super::Line;
use crate::datastore::Report;

/// The code of `show datastore`'s lines (a wren command; BIRD has no such reply).
const CODE: u16 = 1011;

/// `show datastore`: the connection, the state applied, what it computed for this node.
pub fn show(r: Option<&Report>, datetime: fn(std::time::SystemTime) -> String) -> Vec<Line> {
    let Some(r) = r else {
        return vec![Line::new(8003, "No datastore: the configuration is a file")];
    };
    let mut out = vec![
        Line::new(
            CODE,
            format!("Datastore: etcdv3 {}, node {}", r.endpoint, r.node),
        ),
        Line::new(CODE, format!("Connected: {}", connection(r))),
        Line::new(
            CODE,
            format!("Revision: {} (applied {})", r.revision, r.applied_revision),
        ),
    ];
    if let Some(at) = r.applied_at {
        out.push(Line::new(
            CODE,
            format!("Last change applied on {}: {}", datetime(at), r.applied),
        ));
    }
    out.push(Line::new(
        CODE,
        format!("Computed: router id {}, AS {}", r.router_id, r.asn),
    ));
    for (name, address, asn) in &r.peers {
        out.push(Line::new(CODE, format!("  peer {name} {address} AS {asn}")));
    }
    for block in &r.blocks {
        out.push(Line::new(CODE, format!("  block {block}")));
    }
    for w in &r.warnings {
        out.push(Line::new(CODE, format!("Warning: {w}")));
    }
    out.push(Line::new(0, ""));
    out
}

/// The datastore's line of `show status`.
pub fn status_line(r: &Report) -> Line {
    Line::new(
        1011,
        format!(
            "Datastore: {}, revision {}",
            connection(r),
            r.applied_revision
        ),
    )
}

fn connection(r: &Report) -> String {
    let mut s = if r.connected {
        format!("connected to {}", r.endpoint)
    } else {
        format!("not connected to {}", r.endpoint)
    };
    if r.from_saved {
        s += ", running from the saved state";
    }
    if let Some(e) = &r.error {
        s += &format!(" ({e})");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_datastore() {
        assert_eq!(show(None, |_| String::new())[0].code, 8003);
        let r = Report {
            node: "n1".into(),
            endpoint: "http://127.0.0.1:2379".into(),
            from_saved: true,
            error: Some("timed out".into()),
            revision: 9,
            applied_revision: 7,
            router_id: "198.51.100.1".into(),
            asn: 64512,
            peers: vec![("Mesh_198_51_100_2".into(), [198, 51, 100, 2].into(), 64512)],
            blocks: vec!["203.0.113.0/26".parse().unwrap()],
            warnings: vec!["w".into()],
            ..Report::default()
        };
        let text: Vec<String> = show(Some(&r), |_| String::new())
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(
            text,
            [
                "Datastore: etcdv3 http://127.0.0.1:2379, node n1",
                "Connected: not connected to http://127.0.0.1:2379, running from the saved state (timed out)",
                "Revision: 9 (applied 7)",
                "Computed: router id 198.51.100.1, AS 64512",
                "  peer Mesh_198_51_100_2 198.51.100.2 AS 64512",
                "  block 203.0.113.0/26",
                "Warning: w",
                "",
            ]
        );
        assert_eq!(
            status_line(&r).text,
            "Datastore: not connected to http://127.0.0.1:2379, running from the saved state (timed out), revision 7"
        );
    }
}
