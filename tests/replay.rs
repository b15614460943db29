//! `replay` end to end: generated captures in, exact frames and counters out.
//!
//! These tests run the real pipeline and worker over the in-memory backend,
//! reading and writing real pcap files, with the example config
//! `deploy/examples/replay.toml` (three members, VIP 198.18.0.100:80, ring
//! hashing, `local` mode).

#![allow(clippy::unwrap_used)] // test helpers: a panic is a failed test

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use shoal_config::Config;
use shoal_dataplane::counters::{Counter, Layer};
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::Frame;
use shoal_dataplane::pipeline::{Pipeline, Tables, Verdict, KERNEL, WIRE};
use shoal_dataplane::replay::{replay, PortFrames, ReplayFiles, Summary};
use shoal_dataplane::traffic::{
    arp_request, client_endpoint, client_trace, read_pcap, tcp_frame, tcp_header, write_pcap,
    Endpoint, TraceSpec,
};
use shoal_select::ClientKey;
use shoal_wire::time::Instant;
use shoal_wire::{self as wire, EthernetAddress, TcpFlags};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const CLUSTER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn config(member: &str) -> Config {
    let mut cfg = shoal_config::load_file(&repo().join("deploy/examples/replay.toml")).unwrap();
    member.clone_into(&mut cfg.cluster.local_member);
    cfg
}

fn service() -> Endpoint {
    Endpoint {
        mac: CLUSTER_MAC,
        ip: VIP,
        port: 80,
    }
}

fn own_mac(member: &str) -> EthernetAddress {
    let cfg = config(member);
    let m = cfg
        .cluster
        .members
        .iter()
        .find(|m| m.name == member)
        .unwrap();
    EthernetAddress(m.mac.0)
}

struct Run {
    summary: Summary,
    wire_out: Vec<(Duration, Vec<u8>)>,
    kernel_out: Vec<(Duration, Vec<u8>)>,
}

/// Replays `wire` (and `kernel`, frames the local kernel sent) as `member`.
fn run(member: &str, wire: &[(Duration, Vec<u8>)], kernel: &[(Duration, Vec<u8>)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let files = ReplayFiles {
        wire_in: dir.path().join("in.pcap"),
        kernel_in: (!kernel.is_empty()).then(|| dir.path().join("kin.pcap")),
        wire_out: dir.path().join("out.pcap"),
        kernel_out: Some(dir.path().join("kout.pcap")),
    };
    write_pcap(&files.wire_in, wire).unwrap();
    if let Some(k) = &files.kernel_in {
        write_pcap(k, kernel).unwrap();
    }
    let summary = replay(&config(member), &files).unwrap();
    let run = Run {
        wire_out: read_pcap(&files.wire_out).unwrap(),
        kernel_out: read_pcap(files.kernel_out.as_ref().unwrap()).unwrap(),
        summary,
    };
    // Every frame reached exactly one final outcome.
    let c = &run.summary.counters.counters;
    let outcomes: u64 = Counter::OUTCOMES.iter().map(|o| c[o.name()]).sum();
    assert_eq!(
        outcomes,
        c["wire_rx_packets"] + c["kernel_rx_packets"],
        "{:#?}",
        run.summary
    );
    run
}

fn counter(s: &Summary, c: Counter) -> u64 {
    s.counters.counters[c.name()]
}

fn at(ms: u64) -> Duration {
    Duration::from_millis(1000 + ms)
}

/// The member `member`'s inspector decision for a client port.
fn inspector_of(client: &Endpoint) -> String {
    let cfg = config("srv1");
    let tables = Tables::from_config(&cfg, 1).unwrap();
    let id = tables.services[0]
        .selector
        .select(ClientKey {
            addr: client.ip,
            port: client.port,
        })
        .unwrap();
    cfg.cluster
        .members
        .iter()
        .find(|m| m.id == id)
        .unwrap()
        .name
        .clone()
}

/// A client port whose inspector is `member`.
fn client_owned_by(member: &str) -> Endpoint {
    (40_000..41_000)
        .map(|p| client_endpoint(7, p))
        .find(|c| inspector_of(c) == member)
        .unwrap()
}

#[test]
fn arp_request_for_the_vip_is_answered_with_the_cluster_mac() {
    let client = client_endpoint(0, 0);
    let r = run("srv2", &[(at(0), arp_request(&client, VIP))], &[]);
    #[rustfmt::skip]
    let expected: [u8; 42] = [
        0x02, 0x00, 0xc6, 0x13, 0x00, 0x01, // dst: the requester
        0x02, 0x00, 0xc6, 0x12, 0x00, 0x0c, // src: srv2's own MAC, never the cluster MAC
        0x08, 0x06,                         // ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // Ethernet/IPv4, reply
        0x02, 0x00, 0xc6, 0x12, 0x00, 0x64, 198, 18, 0, 100, // sender: cluster MAC, VIP
        0x02, 0x00, 0xc6, 0x13, 0x00, 0x01, 198, 19, 0, 1,   // target: the requester
    ];
    assert_eq!(r.wire_out.len(), 1);
    assert_eq!(r.wire_out[0].1, expected);
    assert_eq!(r.wire_out[0].0, at(0));
    assert!(r.kernel_out.is_empty());
    assert_eq!(counter(&r.summary, Counter::ArpVipReplied), 1);
    assert_eq!(counter(&r.summary, Counter::WireTxBytes), 42);

    // ARP for another host is ignored; ARP for the own address goes to the kernel.
    let other = arp_request(&client, Ipv4Addr::new(198, 18, 0, 99));
    let own = arp_request(&client, Ipv4Addr::new(198, 18, 0, 12));
    let r = run("srv2", &[(at(0), other), (at(1), own.clone())], &[]);
    assert!(r.wire_out.is_empty());
    assert_eq!(r.kernel_out.len(), 1);
    assert_eq!(r.kernel_out[0].1, own);
    assert_eq!(counter(&r.summary, Counter::ArpIgnored), 1);
    assert_eq!(counter(&r.summary, Counter::ArpToKernel), 1);
}

#[test]
fn every_connection_is_accepted_by_exactly_one_member() {
    let spec = TraceSpec::new(service(), 30, 300);
    let trace = client_trace(&spec);
    let tcp_frames: Vec<&Vec<u8>> = trace.iter().skip(30).map(|(_, f)| f).collect();
    assert_eq!(tcp_frames.len(), 7 * 300);

    let mut delivered: Vec<Vec<u8>> = Vec::new();
    let mut accepted_total = 0;
    for member in ["srv1", "srv2", "srv3"] {
        let r = run(member, &trace, &[]);
        let s = &r.summary;
        let accepted = counter(s, Counter::SynAccepted);
        accepted_total += accepted;
        // Ring hashing with 64 vnodes: each member gets a fair share (>= 20 %).
        assert!(accepted >= 60, "{member} accepted only {accepted}");
        assert_eq!(accepted + counter(s, Counter::SynOtherInspector), 300);
        // Its own connections: SYN accepted, 6 more frames each hit its flow.
        assert_eq!(counter(s, Counter::FlowHit), 6 * accepted);
        // Everybody else's: dropped silently, never answered.
        assert_eq!(counter(s, Counter::VipNoFlow), 6 * (300 - accepted));
        assert_eq!(counter(s, Counter::KernelTx), 7 * accepted);
        assert_eq!(r.kernel_out.len() as u64, 7 * accepted);
        // The only frames it puts on the wire are its 30 ARP replies.
        assert_eq!(counter(s, Counter::ArpVipReplied), 30);
        assert_eq!(r.wire_out.len(), 30);
        assert!(r
            .wire_out
            .iter()
            .all(|(_, f)| f[6..12] == own_mac(member).0));
        // All its flows saw a FIN: closing, none expired yet.
        assert_eq!(s.flows.closing as u64, accepted);
        assert_eq!(s.flows.live as u64, accepted);
        assert_eq!(s.flows.expired, 0);
        assert_eq!(counter(s, Counter::DropMalformed), 0);
        delivered.extend(r.kernel_out.into_iter().map(|(_, f)| f));
    }
    assert_eq!(accepted_total, 300);
    // The kernels together received every TCP frame exactly once, unchanged
    // but for the destination MAC: the cluster MAC becomes the receiving
    // member's own (its TAP's) MAC.
    let mut want: Vec<Vec<u8>> = tcp_frames.into_iter().cloned().collect();
    for f in &mut delivered {
        assert!([1u8, 2, 3]
            .iter()
            .any(|k| f[..6] == [0x02, 0x00, 0xc6, 0x12, 0x00, 0x0a + k]));
        f[..6].copy_from_slice(&CLUSTER_MAC.0);
    }
    want.sort();
    delivered.sort();
    assert_eq!(delivered, want);
}

#[test]
fn half_open_flows_expire_after_the_syn_timeout() {
    let client = client_owned_by("srv3");
    let syn = tcp_frame(
        &client,
        &service(),
        &tcp_header(client.port, 80, 100, None, TcpFlags::SYN),
        &[],
        1,
    );
    let ack = tcp_frame(
        &client,
        &service(),
        &tcp_header(client.port, 80, 101, Some(9), TcpFlags::ACK),
        &[],
        2,
    );
    // The example config's SYN timeout is the default, 5 s.
    let r = run(
        "srv3",
        &[(at(0), syn.clone()), (at(4_999), ack.clone())],
        &[],
    );
    assert_eq!(counter(&r.summary, Counter::FlowHit), 1);
    assert_eq!(r.summary.flows.established, 1);
    assert_eq!(r.kernel_out.len(), 2);
    let mut expected_syn = syn.clone();
    expected_syn[..6].copy_from_slice(&own_mac("srv3").0);
    assert_eq!(r.kernel_out[0].1, expected_syn);

    let r = run("srv3", &[(at(0), syn), (at(5_001), ack)], &[]);
    assert_eq!(counter(&r.summary, Counter::FlowHit), 0);
    assert_eq!(counter(&r.summary, Counter::VipNoFlow), 1);
    assert_eq!(r.summary.flows.expired, 1);
    assert_eq!(r.summary.flows.live, 0);
    assert_eq!(r.kernel_out.len(), 1);
}

#[test]
fn kernel_frames_go_to_the_wire_except_foreign_rsts_and_vip_arp() {
    let client = client_owned_by("srv1");
    let server = Endpoint {
        mac: own_mac("srv1"),
        ip: VIP,
        port: 80,
    };
    let syn = tcp_frame(
        &client,
        &service(),
        &tcp_header(client.port, 80, 100, None, TcpFlags::SYN),
        &[],
        1,
    );
    let mut synack_repr = tcp_header(80, client.port, 5000, Some(101), TcpFlags::SYN);
    synack_repr.window_len = 65_160;
    let synack = tcp_frame(&server, &client, &synack_repr, &[], 0);
    // A RST from the kernel for a flow this member never accepted.
    let stranger = client_endpoint(9, 50_000);
    let rst = tcp_frame(
        &server,
        &stranger,
        &tcp_header(80, 50_000, 1, None, TcpFlags::RST),
        &[],
        0,
    );
    // The kernel asking for a client's MAC from the VIP must not leak;
    // from the own address it must.
    let arp_from_vip = arp_request(
        &Endpoint {
            mac: own_mac("srv1"),
            ip: VIP,
            port: 0,
        },
        client.ip,
    );
    let own = Endpoint {
        mac: own_mac("srv1"),
        ip: Ipv4Addr::new(198, 18, 0, 11),
        port: 0,
    };
    let arp_from_own = arp_request(&own, client.ip);

    let r = run(
        "srv1",
        &[(at(0), syn)],
        &[
            (at(1), synack.clone()),
            (at(2), rst),
            (at(3), arp_from_vip),
            (at(4), arp_from_own.clone()),
        ],
    );
    assert_eq!(
        r.wire_out
            .iter()
            .map(|(_, f)| f.clone())
            .collect::<Vec<_>>(),
        vec![synack, arp_from_own]
    );
    assert_eq!(counter(&r.summary, Counter::KernelToWire), 2);
    assert_eq!(counter(&r.summary, Counter::KernelRstSuppressed), 1);
    assert_eq!(counter(&r.summary, Counter::KernelArpVipSuppressed), 1);
    assert_eq!(r.summary.frames_in.kernel, 4);
}

/// A valid SYN to the VIP from a client srv1 inspects.
fn valid_syn() -> Vec<u8> {
    let client = client_owned_by("srv1");
    tcp_frame(
        &client,
        &service(),
        &tcp_header(client.port, 80, 100, None, TcpFlags::SYN),
        &[],
        1,
    )
}

#[test]
fn truncations_at_every_byte_are_counted_drops() {
    let syn = valid_syn();
    assert_eq!(syn.len(), 74);
    let frames: Vec<_> = (0..syn.len())
        .map(|n| (at(n as u64), syn[..n].to_vec()))
        .collect();
    let r = run("srv1", &frames, &[]);
    let m = &r.summary.counters.malformed;
    // < 14 bytes: no Ethernet header; 14..34: no full IPv4 header; 34..74:
    // the IPv4 total length (60) runs past the frame.
    assert_eq!(m["ethernet"]["truncated"], 14);
    assert_eq!(m["ipv4"]["truncated"], 20);
    assert_eq!(m["ipv4"]["bad_total_length"], 40);
    assert_eq!(counter(&r.summary, Counter::DropMalformed), 74);
    assert!(r.wire_out.is_empty() && r.kernel_out.is_empty());
    assert_eq!(r.summary.flows.live, 0);
}

/// Sets the IPv4 header checksum right after a header edit.
fn fix_ip_checksum(frame: &mut [u8]) {
    let mut ip = wire::Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.fill_checksum();
}

#[test]
fn corrupt_headers_are_counted_by_layer_and_reason() {
    let syn = valid_syn();
    let mut cases: Vec<(Vec<u8>, &str, &str)> = Vec::new();
    let mut f = syn.clone();
    f[14] = 0x43; // IHL 3
    cases.push((f, "ipv4", "bad_ihl"));
    let mut f = syn.clone();
    f[14] = 0x65; // version 6
    cases.push((f, "ipv4", "bad_version"));
    let mut f = syn.clone();
    f[24] ^= 0xff; // header checksum
    cases.push((f, "ipv4", "bad_checksum"));
    let mut f = syn.clone();
    f[34 + 12] = 0x40; // data offset 4
    cases.push((f, "tcp", "bad_data_offset"));
    let mut f = syn.clone();
    f[34 + 12] = 0xf0; // data offset 15: 60 bytes, segment has 40
    cases.push((f, "tcp", "bad_data_offset"));
    let mut f = syn.clone();
    f[34 + 21] = 0; // MSS option length 0
    cases.push((f, "tcp", "bad_option"));
    let mut f = syn.clone();
    f[34 + 21] = 3; // MSS option length 3
    cases.push((f, "tcp", "bad_option"));
    let mut f = syn.clone();
    f[34 + 38] = 30; // window scale option length runs past the header
    cases.push((f, "tcp", "bad_option"));
    let mut f = syn.clone();
    f[16] = 0; // total length 21 < ... keeps IHL 5: TCP segment of 1 byte
    f[17] = 21;
    fix_ip_checksum(&mut f);
    cases.push((f, "tcp", "truncated"));
    for (i, (frame, layer, reason)) in cases.into_iter().enumerate() {
        let r = run("srv1", &[(at(0), frame)], &[]);
        let m = &r.summary.counters.malformed;
        assert_eq!(
            m.get(layer).and_then(|l| l.get(reason)),
            Some(&1),
            "case {i}: {m:?}"
        );
        assert_eq!(counter(&r.summary, Counter::DropMalformed), 1, "case {i}");
        assert!(r.kernel_out.is_empty(), "case {i}");
    }
}

/// The wire crate's malformed-frame corpus (`dataplane/wire/corpus/`) through
/// the pipeline of a cluster whose VIP and MAC are the corpus's
/// (198.18.10.1:80, 02:00:00:00:00:02): each frame's exact outcome.
#[test]
fn the_checked_in_corpus_ends_in_counted_drops() {
    let mut cfg = config("srv1");
    cfg.cluster.vips = vec![Ipv4Addr::new(198, 18, 10, 1)];
    cfg.cluster.mac = "02:00:00:00:00:02".parse().unwrap();
    cfg.services[0].vip = Ipv4Addr::new(198, 18, 10, 1);
    let malformed = |layer: &'static str, reason: &'static str| (layer, reason);
    let expected: &[(&str, (&str, &str))] = &[
        ("runt", malformed("ethernet", "truncated")),
        ("vlan_tag_truncated", malformed("ethernet", "truncated")),
        ("qinq_tag_truncated", malformed("ethernet", "truncated")),
        ("ipv4_truncated", malformed("ipv4", "truncated")),
        ("garbage", malformed("ipv4", "bad_version")),
        ("ipv4_ihl_3", malformed("ipv4", "bad_ihl")),
        ("ipv4_ihl_beyond_total", malformed("ipv4", "bad_ihl")),
        (
            "ipv4_total_len_beyond_frame",
            malformed("ipv4", "bad_total_length"),
        ),
        ("ipv4_option_len_0", malformed("ipv4", "bad_option")),
        ("ipv4_bad_checksum", malformed("ipv4", "bad_checksum")),
        ("tcp_data_offset_4", malformed("tcp", "bad_data_offset")),
        (
            "tcp_data_offset_beyond_segment",
            malformed("tcp", "bad_data_offset"),
        ),
        ("tcp_option_len_0", malformed("tcp", "bad_option")),
        ("tcp_option_overrun", malformed("tcp", "bad_option")),
        ("tcp_mss_len_3", malformed("tcp", "bad_option")),
        ("tcp_bad_checksum", malformed("tcp", "bad_checksum")),
        ("udp_len_7", malformed("udp", "bad_length")),
        ("udp_len_beyond_datagram", malformed("udp", "bad_length")),
        ("arp_hlen_8", malformed("arp", "unsupported")),
        ("arp_truncated", malformed("arp", "truncated")),
        ("icmp_truncated", malformed("icmp", "truncated")),
        ("icmp_redirect", malformed("icmp", "unsupported")),
        // The outer header goes to a tunnel endpoint that is not this member;
        // decapsulation (and the inner header's check) belongs to dpr-ipip.
        ("ipip_inner_bad_version", ("counter", "drop_not_for_us")),
    ];
    let dir = repo().join("dataplane/wire/corpus");
    let on_disk = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "bin")
        })
        .count();
    assert_eq!(
        on_disk,
        expected.len() + 1,
        "corpus files and this table differ"
    );
    for (name, (layer, reason)) in expected {
        let frame = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
        let dirs = tempfile::tempdir().unwrap();
        let files = ReplayFiles {
            wire_in: dirs.path().join("in.pcap"),
            kernel_in: None,
            wire_out: dirs.path().join("out.pcap"),
            kernel_out: Some(dirs.path().join("k.pcap")),
        };
        write_pcap(&files.wire_in, &[(at(0), frame)]).unwrap();
        let s = replay(&cfg, &files).unwrap();
        if *layer == "counter" {
            assert_eq!(s.counters.counters[reason], 1, "{name}: {:?}", s.counters);
        } else {
            assert_eq!(
                s.counters.malformed.get(layer).and_then(|l| l.get(reason)),
                Some(&1),
                "{name}: {:?}",
                s.counters.malformed
            );
            assert_eq!(s.counters.counters["drop_malformed"], 1, "{name}");
        }
        assert_eq!(s.frames_out, PortFrames::default(), "{name} was forwarded");
    }
    // The control frame is a valid SYN: exactly one member of three takes it.
    let syn = std::fs::read(dir.join("valid_linux_syn.bin")).unwrap();
    let mut taken = 0;
    for member in ["srv1", "srv2", "srv3"] {
        let mut c = cfg.clone();
        member.clone_into(&mut c.cluster.local_member);
        let tables = Arc::new(Tables::from_config(&c, 1).unwrap());
        let mut p = Pipeline::new(
            tables,
            16,
            Timeouts::from_config(&c.dataplane.flow_table.timeouts),
        );
        let mut f = HeapFrame::from_bytes(&syn);
        if p.process(WIRE, &mut f, Instant::ZERO) == Verdict::Forward(KERNEL) {
            taken += 1;
        }
        assert_eq!(p.counters().get(Counter::DropMalformed), 0);
    }
    assert_eq!(taken, 1);
}

fn pipeline(member: &str) -> Pipeline {
    let cfg = config(member);
    let tables = Arc::new(Tables::from_config(&cfg, 1).unwrap());
    Pipeline::new(
        tables,
        1024,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes from either side never panic, and each frame ends in
    /// exactly one counted outcome.
    #[test]
    fn arbitrary_frames_end_in_one_outcome(
        frames in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..200)), 1..20)
    ) {
        let mut p = pipeline("srv1");
        for (i, (from_kernel, bytes)) in frames.iter().enumerate() {
            let mut f = HeapFrame::from_bytes(bytes);
            let port = if *from_kernel { KERNEL } else { WIRE };
            let _ = p.process(port, &mut f, Instant::from_millis(i as u64));
            prop_assert_eq!(p.counters().outcomes(), i as u64 + 1);
        }
    }

    /// A valid SYN with any one byte changed never panics and still ends in
    /// exactly one outcome; unchanged fields stay unchanged on the way to the kernel.
    #[test]
    fn mutated_syns_end_in_one_outcome(pos in 0usize..74, value in any::<u8>()) {
        let mut bytes = valid_syn();
        bytes[pos] = value;
        let mut p = pipeline("srv1");
        let mut f = HeapFrame::from_bytes(&bytes);
        let verdict = p.process(WIRE, &mut f, Instant::ZERO);
        prop_assert_eq!(p.counters().outcomes(), 1);
        if verdict == Verdict::Forward(KERNEL) {
            // Only the destination MAC changes (cluster MAC -> own MAC).
            prop_assert_eq!(&f.bytes()[6..], &bytes[6..]);
        }
        prop_assert_eq!(p.counters().get_malformed(Layer::Tcp, wire::Error::Truncated) <= 1, true);
    }
}
