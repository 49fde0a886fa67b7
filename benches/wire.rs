//! Codec throughput: `cargo bench --bench wire`.
//!
//! Two streams, each built once with the codec and checked to re-encode byte for byte:
//!
//! * `calico`: 10,000 small iBGP UPDATEs as Calico's BIRD sends them — one IPv4 /26 each,
//!   ORIGIN IGP, empty AS_PATH, NEXT_HOP, LOCAL_PREF 100.
//! * `full_table`: eBGP UPDATEs as a full-table feed packs them — ORIGIN, an AS_PATH of 6 to 10
//!   4-octet AS numbers, NEXT_HOP, MED, several COMMUNITIES and a LARGE_COMMUNITY, and as many
//!   /24s as fit in 4096 bytes.
//!
//! `decode` is the receive loop (`frame` then `decode` over the whole buffer); `encode` writes
//! every message into one reused buffer; `memcpy` copies the same bytes, as the floor.

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wren::wire::attr::{Community, LargeCommunity, Origin, Segment, SegmentKind};
use wren::wire::{
    Attr, MAX_LEN, Message, Negotiated, PathAttribute, Prefix, Update, decode, frame,
};

const CALICO_MSGS: usize = 10_000;
const FULL_TABLE_MSGS: usize = 250;

/// One test stream: the messages and their encoding, back to back.
struct Stream {
    msgs: Vec<Message>,
    wire: Vec<u8>,
    /// NLRI entries across all messages.
    prefixes: usize,
}

impl Stream {
    fn new(msgs: Vec<Message>, neg: &Negotiated) -> Stream {
        let mut wire = BytesMut::new();
        for m in &msgs {
            m.encode(neg, &mut wire).expect("bench message encodes");
        }
        let prefixes = msgs
            .iter()
            .map(|m| match m {
                Message::Update(u) => u.nlri.len(),
                _ => 0,
            })
            .sum();
        let s = Stream {
            msgs,
            wire: wire.to_vec(),
            prefixes,
        };
        // The benchmark is only meaningful if the loop reads back exactly what was written.
        let mut back = Vec::new();
        let mut rest = &s.wire[..];
        while let Some(n) = frame(rest, neg).unwrap() {
            back.push(decode(&rest[..n], neg).expect("bench message decodes"));
            rest = &rest[n..];
        }
        assert!(rest.is_empty());
        assert_eq!(back, s.msgs);
        s
    }
}

fn attr(a: Attr) -> PathAttribute {
    PathAttribute::new(a)
}

fn v4(a: u32, len: u8) -> Prefix {
    Prefix::new(ipnet::Ipv4Net::new(a.into(), len).unwrap().into())
}

/// Distinct /26s from 10.0.0.0/8, each node (next hop) owning a block of them.
fn calico(neg: &Negotiated) -> Stream {
    let msgs = (0..CALICO_MSGS as u32)
        .map(|i| {
            let node = i / 16;
            Message::Update(Update {
                attributes: vec![
                    attr(Attr::Origin {
                        origin: Origin::Igp,
                    }),
                    attr(Attr::AsPath { segments: vec![] }),
                    attr(Attr::NextHop {
                        next_hop: (0xc0a8_0000 + node).into(),
                    }),
                    attr(Attr::LocalPref { local_pref: 100 }),
                ]
                .into(),
                nlri: [v4(0x0a00_0000 + (i << 6), 26)].into(),
                ..Update::default()
            })
        })
        .collect();
    Stream::new(msgs, neg)
}

/// eBGP UPDATEs packed with /24s up to the 4096-byte limit.
fn full_table(neg: &Negotiated) -> Stream {
    let mut next = 0u32;
    let msgs = (0..FULL_TABLE_MSGS as u32)
        .map(|i| {
            let path_len = 6 + i % 5;
            let mut u = Update {
                attributes: vec![
                    attr(Attr::Origin {
                        origin: Origin::Igp,
                    }),
                    attr(Attr::AsPath {
                        segments: vec![Segment {
                            kind: SegmentKind::Sequence,
                            asns: (0..path_len).map(|k| 4_200_000_000 + i * 13 + k).collect(),
                        }],
                    }),
                    attr(Attr::NextHop {
                        next_hop: (0xc633_6401 + i % 4).into(),
                    }),
                    attr(Attr::MultiExitDisc { med: i * 10 }),
                    attr(Attr::Communities {
                        communities: (0..4)
                            .map(|k| Community((64_512 << 16) | (i % 100 + k)))
                            .collect(),
                    }),
                    attr(Attr::LargeCommunities {
                        communities: vec![LargeCommunity([4_200_000_000 + i, 1, i])],
                    }),
                ]
                .into(),
                ..Update::default()
            };
            let fixed = Message::Update(u.clone()).to_bytes(neg).unwrap().len();
            let room = (MAX_LEN - fixed) / 4; // a /24 takes 1 + 3 octets
            u.nlri = (0..room)
                .map(|_| {
                    next += 1;
                    v4(0x0100_0000 + (next << 8), 24)
                })
                .collect();
            Message::Update(u)
        })
        .collect();
    Stream::new(msgs, neg)
}

/// The receive loop: frame, decode, drop. Returns the message count.
fn decode_all(wire: &[u8], neg: &Negotiated) -> usize {
    let mut rest = wire;
    let mut n = 0;
    while let Ok(Some(len)) = frame(rest, neg) {
        match decode(&rest[..len], neg) {
            Ok(m) => {
                black_box(m);
            }
            Err(e) => panic!("{e}"),
        }
        rest = &rest[len..];
        n += 1;
    }
    n
}

fn encode_all(msgs: &[Message], neg: &Negotiated, buf: &mut BytesMut) {
    buf.clear();
    for m in msgs {
        m.encode(neg, buf).unwrap();
    }
}

fn bench_stream(c: &mut Criterion, name: &str, s: &Stream, neg: &Negotiated) {
    let mut out = BytesMut::with_capacity(s.wire.len());
    let mut copy = vec![0u8; s.wire.len()];

    let mut g = c.benchmark_group(format!("{name}/msgs"));
    g.throughput(Throughput::Elements(s.msgs.len() as u64));
    g.bench_function("decode", |b| b.iter(|| decode_all(black_box(&s.wire), neg)));
    g.bench_function("encode", |b| {
        b.iter(|| encode_all(black_box(&s.msgs), neg, &mut out))
    });
    g.finish();

    let mut g = c.benchmark_group(format!("{name}/prefixes"));
    g.throughput(Throughput::Elements(s.prefixes as u64));
    g.bench_function("decode", |b| b.iter(|| decode_all(black_box(&s.wire), neg)));
    g.finish();

    let mut g = c.benchmark_group(format!("{name}/bytes"));
    g.throughput(Throughput::Bytes(s.wire.len() as u64));
    g.bench_function("decode", |b| b.iter(|| decode_all(black_box(&s.wire), neg)));
    g.bench_function("encode", |b| {
        b.iter(|| encode_all(black_box(&s.msgs), neg, &mut out))
    });
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            copy.copy_from_slice(black_box(&s.wire));
            black_box(&mut copy);
        })
    });
    g.finish();
}

fn wire(c: &mut Criterion) {
    let neg = Negotiated::default();
    let s = calico(&neg);
    bench_stream(c, "calico", &s, &neg);
    let s = full_table(&neg);
    bench_stream(c, "full_table", &s, &neg);
}

criterion_group! {
    name = benches;
    // Short runs: the whole file takes about a minute. Pass `--measurement-time 10` for
    // steadier figures.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = wire
}
criterion_main!(benches);
