//! DPR modes (the DPR paper, Bestavros et al.) and fragments through the pipeline: exact rewrites.
//!
//! A small in-process cluster: three `Pipeline`s built from
//! `deploy/examples/replay.toml` with the service switched to `dpr-mac` or
//! `dpr-ipip`, stateless or stateful. Every client frame is offered to every
//! member (the hub); frames a member puts back on the wire are offered to
//! every member again, as the hub would.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use shoal_config::{Config, LoadChoice, Mode, State};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::Frame;
use shoal_dataplane::pipeline::{MemberEntry, Pipeline, Tables, Verdict, KERNEL, WIRE};
use shoal_dataplane::traffic::{
    client_endpoint, client_trace, tcp_frame, tcp_header, Endpoint, TraceSpec,
};
use shoal_wire::time::Instant;
use shoal_wire::{
    EthernetAddress, EthernetFrame, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, TcpFlags,
    TcpPacket,
};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const CLUSTER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]);
const MEMBERS: [&str; 3] = ["srv1", "srv2", "srv3"];

fn mac_of(k: usize) -> [u8; 6] {
    [0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b + k as u8]
}

fn config(member: &str, mode: Mode, state: State) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).unwrap();
    member.clone_into(&mut cfg.cluster.local_member);
    cfg.services[0].mode = mode;
    cfg.services[0].state = state;
    cfg
}

/// Member `k`'s pipeline; `loads` sets each member's load figure.
fn pipeline(
    k: usize,
    mode: Mode,
    state: State,
    loads: [f64; 3],
    max_load: Option<f64>,
) -> Pipeline {
    let cfg = config(MEMBERS[k], mode, state);
    Pipeline::new(
        tables(k, mode, state, loads, max_load),
        4096,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    )
}

/// Member `k`'s tables (see [`pipeline`]).
fn tables(
    k: usize,
    mode: Mode,
    state: State,
    loads: [f64; 3],
    max_load: Option<f64>,
) -> Arc<Tables> {
    let mut cfg = config(MEMBERS[k], mode, state);
    cfg.services[0].selection.max_load = max_load;
    cfg.services[0].selection.load_choice = LoadChoice::LeastLoaded;
    let members = cfg
        .cluster
        .members
        .iter()
        .zip(loads)
        .map(|(m, load)| MemberEntry {
            load,
            ..MemberEntry::from_config(m)
        })
        .collect();
    Arc::new(Tables::build(&cfg, 1, members).unwrap())
}

fn service() -> Endpoint {
    Endpoint {
        mac: CLUSTER_MAC,
        ip: VIP,
        port: 80,
    }
}

/// Offers `frame` to every member; wire output is offered again (once).
/// Returns what each member's kernel received.
fn hub(cluster: &mut [Pipeline; 3], frame: &[u8], kernels: &mut [Vec<Vec<u8>>; 3]) -> usize {
    let mut on_wire = 0;
    for k in 0..3 {
        let mut f = HeapFrame::from_bytes(frame);
        match cluster[k].process(WIRE, &mut f, Instant::ZERO) {
            Verdict::Forward(KERNEL) => kernels[k].push(f.bytes().to_vec()),
            Verdict::Forward(WIRE) => {
                on_wire += 1;
                let redirected = f.bytes().to_vec();
                for j in 0..3 {
                    let mut g = HeapFrame::from_bytes(&redirected);
                    if cluster[j].process(WIRE, &mut g, Instant::ZERO) == Verdict::Forward(KERNEL) {
                        kernels[j].push(g.bytes().to_vec());
                    }
                }
            }
            _ => {}
        }
    }
    on_wire
}

fn tcp_frames(n: u32) -> Vec<Vec<u8>> {
    client_trace(&TraceSpec::new(service(), 10, n))
        .into_iter()
        .skip(10)
        .map(|(_, f)| f)
        .collect()
}

#[test]
fn dpr_mac_every_frame_reaches_exactly_one_kernel_with_only_the_mac_changed() {
    for state in [State::Stateless, State::Stateful] {
        let mut cluster = [0, 1, 2].map(|k| pipeline(k, Mode::DprMac, state, [0.0; 3], None));
        let mut kernels: [Vec<Vec<u8>>; 3] = Default::default();
        let frames = tcp_frames(150);
        let mut redirected = 0;
        for f in &frames {
            redirected += hub(&mut cluster, f, &mut kernels);
        }
        let mut got: Vec<Vec<u8>> = Vec::new();
        for (k, frames) in kernels.iter().enumerate() {
            for f in frames {
                // Delivered with the receiving member's own MAC, else unchanged.
                assert_eq!(f[..6], mac_of(k), "{state:?}");
                // Source: the client's MAC, or (redirected) the inspector's.
                let src: [u8; 6] = f[6..12].try_into().unwrap();
                assert!(src == client_src_mac(f) || (0..3).any(|j| j != k && src == mac_of(j)));
                let mut orig = f.clone();
                orig[..6].copy_from_slice(&CLUSTER_MAC.0);
                orig[6..12].copy_from_slice(&client_src_mac(f));
                got.push(orig);
            }
        }
        let mut want = frames.clone();
        want.sort();
        got.sort();
        assert_eq!(
            got.len(),
            want.len(),
            "{state:?}: each frame delivered exactly once"
        );
        assert!(
            got == want,
            "{state:?}: delivered frames differ from the client's"
        );
        if state == State::Stateless {
            // The target hash is independent of the inspector's: about 2/3 redirected.
            assert!(
                redirected > frames.len() / 2,
                "{redirected} of {}",
                frames.len()
            );
            // Each frame placed once by its inspector: by the target hash, or
            // (when the inspector is the target) by the flow it kept.
            let placed: u64 = cluster
                .iter()
                .map(|p| {
                    p.counters().get(Counter::DprStateless) + p.counters().get(Counter::FlowHit)
                })
                .sum();
            assert_eq!(placed, frames.len() as u64);
        } else {
            // No member is loaded: stateful keeps every connection with its inspector.
            assert_eq!(redirected, 0);
            let a: u64 = cluster
                .iter()
                .map(|p| p.counters().get(Counter::SynAccepted))
                .sum();
            assert_eq!(a, 150);
        }
    }
}

/// The client MAC the trace uses for the frame's client address.
fn client_src_mac(f: &[u8]) -> [u8; 6] {
    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
    let [_, _, hi, lo] = ip.src_addr().octets();
    [0x02, 0x00, 0xc6, 0x13, hi, lo]
}

/// A client whose inspector (ring hash of the example config) is `k`.
fn client_of(k: usize) -> Endpoint {
    let p = pipeline(k, Mode::DprIpip, State::Stateful, [0.0; 3], None);
    (40_000..41_000)
        .map(|port| client_endpoint(3, port))
        .find(|c| {
            p.tables().services[0]
                .selector
                .select(shoal_select::ClientKey {
                    addr: c.ip,
                    port: c.port,
                })
                == Some(k as u16 + 1)
        })
        .unwrap()
}

/// srv1 of a `dpr-ipip` stateful cluster over `max_load` 0.5 (srv3 the
/// least loaded) takes a client's SYN and tunnels it: the loads, srv1, the
/// client, the SYN and the frame srv1 sent on the wire.
fn srv1_tunnels_a_syn() -> ([f64; 3], Pipeline, Endpoint, Vec<u8>, HeapFrame) {
    let loads = [0.9, 0.3, 0.1];
    let mut srv1 = pipeline(0, Mode::DprIpip, State::Stateful, loads, Some(0.5));
    let client = client_of(0);
    let syn = tcp_frame(
        &client,
        &service(),
        &tcp_header(client.port, 80, 1000, None, TcpFlags::SYN),
        &[],
        7,
    );
    let mut f = HeapFrame::from_bytes(&syn);
    assert_eq!(
        srv1.process(WIRE, &mut f, Instant::ZERO),
        Verdict::Forward(WIRE)
    );
    (loads, srv1, client, syn, f)
}

#[test]
fn dpr_ipip_stateful_overload_tunnels_to_the_least_loaded_member_exactly() {
    let (loads, mut srv1, client, syn, f) = srv1_tunnels_a_syn();
    let mut srv3 = pipeline(2, Mode::DprIpip, State::Stateful, loads, Some(0.5));
    assert_eq!(srv1.counters().get(Counter::DprOverloadChoice), 1);
    assert_eq!(srv1.counters().get(Counter::MssClamped), 1);
    let out = f.bytes().to_vec();
    assert_eq!(out.len(), syn.len() + 20);
    // Ethernet: to srv3's MAC from srv1's.
    assert_eq!(out[..6], mac_of(2));
    assert_eq!(out[6..12], mac_of(0));
    assert_eq!(out[12..14], [0x08, 0x00]);
    // Outer IPv4 (RFC 2003): version/IHL, TOS copied, length, id 1, DF copied,
    // TTL 64, protocol 4, srv1 -> srv3; checksum valid.
    let outer = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(out[14..16], [0x45, 0x00]);
    assert_eq!(outer.total_len(), 80);
    assert_eq!(
        (outer.ident(), outer.dont_frag(), outer.ttl()),
        (1, true, 64)
    );
    assert_eq!(outer.next_header(), IpProtocol::IpIp);
    assert_eq!(
        (outer.src_addr(), outer.dst_addr()),
        (Ipv4Addr::new(198, 18, 0, 11), Ipv4Addr::new(198, 18, 0, 13))
    );
    assert!(outer.verify_checksum());
    // Inner: the client's SYN, MSS clamped 1460 -> 1440 with a valid checksum.
    let inner = Ipv4Packet::new_checked(outer.payload()).unwrap();
    assert_eq!(inner.payload().len(), 40);
    let tcp = TcpPacket::new_checked(inner.payload()).unwrap();
    assert_eq!(tcp.mss(), Some(1440));
    assert!(tcp.verify_checksum(inner.src_addr(), inner.dst_addr()));
    let mut expected_inner = syn[14..].to_vec();
    expected_inner[20 + 22..20 + 24].copy_from_slice(&1440u16.to_be_bytes());
    expected_inner[20 + 16..20 + 18].copy_from_slice(&out[34 + 20 + 16..34 + 20 + 18]);
    assert_eq!(&out[34..], &expected_inner[..]);

    // srv3 decapsulates and hands the inner frame to its kernel.
    let mut g = HeapFrame::from_bytes(&out);
    assert_eq!(
        srv3.process(WIRE, &mut g, Instant::ZERO),
        Verdict::Forward(KERNEL)
    );
    assert_eq!(srv3.counters().get(Counter::IpipDecapsulated), 1);
    assert_eq!(g.bytes()[..6], mac_of(2));
    assert_eq!(&g.bytes()[14..], &out[34..]);
    assert_eq!(srv3.flows().len(), 1);

    // The client's next packets follow the flow to srv3, not re-chosen.
    let ack = tcp_frame(
        &client,
        &service(),
        &tcp_header(client.port, 80, 1001, Some(5), TcpFlags::ACK),
        &[],
        8,
    );
    let mut h = HeapFrame::from_bytes(&ack);
    assert_eq!(
        srv1.process(WIRE, &mut h, Instant::ZERO),
        Verdict::Forward(WIRE)
    );
    assert_eq!(
        Ipv4Packet::new_checked(&h.bytes()[14..])
            .unwrap()
            .dst_addr(),
        Ipv4Addr::new(198, 18, 0, 13)
    );
    assert_eq!(srv1.counters().get(Counter::FlowHit), 1);

    // A full-size DF segment does not fit the tunnel: ICMP frag-needed back.
    let big = tcp_frame(
        &client,
        &service(),
        &tcp_header(client.port, 80, 1001, Some(5), TcpFlags::PSH),
        &[0x55; 1448],
        9,
    );
    assert_eq!(big.len(), 14 + 1500);
    let mut b = HeapFrame::from_bytes(&big);
    assert_eq!(
        srv1.process(WIRE, &mut b, Instant::ZERO),
        Verdict::Forward(WIRE)
    );
    assert_eq!(srv1.counters().get(Counter::IcmpFragNeededSent), 1);
    let icmp_frame = b.bytes();
    assert_eq!(icmp_frame[..6], client.mac.0);
    let ip = Ipv4Packet::new_checked(&icmp_frame[14..]).unwrap();
    assert_eq!(
        (ip.src_addr(), ip.dst_addr()),
        (Ipv4Addr::new(198, 18, 0, 11), client.ip)
    );
    assert!(ip.verify_checksum());
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    match Icmpv4Repr::parse(&icmp).unwrap() {
        Icmpv4Repr::DstUnreachable {
            next_hop_mtu,
            invoking,
            ..
        } => {
            assert_eq!(next_hop_mtu, 1480);
            assert_eq!(invoking, &big[14..14 + 28]);
        }
        other => panic!("not frag-needed: {other:?}"),
    }
}

#[test]
fn fragments_follow_their_first_fragment() {
    let client = client_of(1);
    let full = tcp_frame(
        &client,
        &service(),
        &tcp_header(client.port, 80, 1, Some(1), TcpFlags::PSH),
        &[0x61; 64],
        0x4242,
    );
    // First fragment: IP header + TCP header (32 bytes) + 24 payload bytes, MF.
    let mut first = full[..14 + 20 + 32 + 24].to_vec();
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut first[14..]);
        ip.set_total_len(20 + 56);
        ip.set_dont_frag(false);
        ip.set_more_frags(true);
        ip.fill_checksum();
    }
    // Second: the remaining 40 payload bytes at offset 56.
    let mut second = full[..14 + 20].to_vec();
    second.extend_from_slice(&full[14 + 20 + 56..]);
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut second[14..]);
        ip.set_total_len(20 + 40);
        ip.set_dont_frag(false);
        ip.set_frag_offset(56);
        ip.fill_checksum();
    }
    // A fragment of a datagram never seen.
    let mut orphan = second.clone();
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut orphan[14..]);
        ip.set_ident(0x9999);
        ip.fill_checksum();
    }
    // srv2 owns the flow (an established flow, as if its SYN came earlier).
    let mut cluster = [0, 1, 2].map(|k| pipeline(k, Mode::Local, State::Stateful, [0.0; 3], None));
    let syn = tcp_frame(
        &client,
        &service(),
        &tcp_header(client.port, 80, 0, None, TcpFlags::SYN),
        &[],
        1,
    );
    let mut kernels: [Vec<Vec<u8>>; 3] = Default::default();
    for f in [&syn, &first, &second, &orphan] {
        hub(&mut cluster, f, &mut kernels);
    }
    assert_eq!(kernels[0].len() + kernels[2].len(), 0);
    assert_eq!(
        kernels[1].len(),
        3,
        "SYN and both fragments reach srv2's kernel"
    );
    assert_eq!(&kernels[1][2][12..], &second[12..]);
    assert_eq!(cluster[1].counters().get(Counter::FragmentFollowed), 1);
    assert_eq!(cluster[1].counters().get(Counter::DropFragmentOrphan), 1);
    for k in [0, 2] {
        assert_eq!(
            cluster[k].counters().get(Counter::DropFragment),
            1,
            "srv{}",
            k + 1
        );
        assert_eq!(cluster[k].counters().get(Counter::DropFragmentOrphan), 1);
    }
    let _ = EthernetFrame::new_checked(&first[..]).unwrap();
}

/// Issue 11, local and DPR modes: a client reuses its 4-tuple for a new
/// connection soon after the old one closed (the server closed first, so the
/// client holds no TIME-WAIT). The old connection's own SYN, retransmitted,
/// changes nothing; a SYN with another ISN is a new connection: every member
/// that held state for the 4-tuple drops it (counted by kind) and the
/// inspector places the SYN afresh — in stateful DPR by the loads of the
/// moment. The old ISN again after the new connection's RST is a new
/// connection too (the decision in `pipeline/reuse.rs`), and so is another
/// ISN on a connection that saw no FIN or RST.
#[test]
fn a_new_syn_on_a_reused_tuple_is_a_new_connection_in_local_and_dpr_modes() {
    use shoal_dataplane::flow::FlowKey;
    use shoal_dataplane::pipeline::{FlowAction, FlowEntry};
    let cases = [
        (Mode::Local, State::Stateful),
        (Mode::DprMac, State::Stateless),
        (Mode::DprMac, State::Stateful),
        (Mode::DprIpip, State::Stateless),
        (Mode::DprIpip, State::Stateful),
    ];
    // srv1 inspects the client; in stateful DPR it is over max_load, so the
    // least-loaded member takes the connection: srv3, and srv2 once the
    // loads change.
    let (before, after) = ([0.9, 0.3, 0.1], [0.9, 0.1, 0.3]);
    for (mode, state) in cases {
        let case = format!("{mode:?} {state:?}");
        let mut cluster = [0, 1, 2].map(|k| pipeline(k, mode, state, before, Some(0.5)));
        let mut kernels: [Vec<Vec<u8>>; 3] = Default::default();
        let client = client_of(0);
        let key = FlowKey::new(client.ip, client.port, VIP, 80, 6);
        let entry = |p: &Pipeline| p.flows().get(&key).map(|f| f.value);
        let seg = |seq: u32, ack: Option<u32>, flags: TcpFlags| {
            let tcp = tcp_header(client.port, 80, seq, ack, flags);
            tcp_frame(&client, &service(), &tcp, &[], 1)
        };
        let count = |cluster: &[Pipeline; 3], c: Counter| -> Vec<u64> {
            cluster.iter().map(|p| p.counters().get(c)).collect()
        };
        let kind = |action: FlowAction| match action {
            FlowAction::Local => Counter::TupleReusedLocal,
            FlowAction::RedirectMac { .. } | FlowAction::RedirectIpip { .. } => {
                Counter::TupleReusedRedirect
            }
            FlowAction::Received => Counter::TupleReusedReceived,
            other => panic!("{case}: unexpected action {other:?}"),
        };

        // Connection 1 (ISN 1000) is placed on one kernel; only its holders keep state.
        hub(&mut cluster, &seg(1000, None, TcpFlags::SYN), &mut kernels);
        let serving = (0..3).find(|&k| kernels[k].len() == 1).unwrap();
        assert_eq!(kernels.iter().map(Vec::len).sum::<usize>(), 1, "{case}");
        let holders: Vec<usize> = (0..3).filter(|&k| entry(&cluster[k]).is_some()).collect();
        match (mode, state) {
            (Mode::Local, _) => assert_eq!((serving, &holders[..]), (0, &[0][..]), "{case}"),
            (_, State::Stateful) => assert_eq!((serving, &holders[..]), (2, &[0, 2][..])),
            // Stateless: only the target keeps a flow (Received, or Local on srv1).
            _ => assert_eq!(holders, [serving], "{case}"),
        }
        let old: Vec<FlowEntry> = holders
            .iter()
            .map(|&k| entry(&cluster[k]).unwrap())
            .collect();
        assert!(
            old.iter().all(|e| e.client_isn == 1000 && !e.ended),
            "{case}"
        );

        // Its SYN retransmitted: the same kernel again, counted, no new state.
        hub(&mut cluster, &seg(1000, None, TcpFlags::SYN), &mut kernels);
        assert_eq!(kernels[serving].len(), 2, "{case}");
        assert_eq!(kernels.iter().map(Vec::len).sum::<usize>(), 2, "{case}");
        let retransmits = count(&cluster, Counter::SynRetransmit);
        for k in 0..3 {
            assert_eq!(retransmits[k], u64::from(holders.contains(&k)), "{case}");
            assert_eq!(cluster[k].flows().len(), usize::from(holders.contains(&k)));
        }
        assert_eq!(count(&cluster, Counter::TupleReused), [0, 0, 0], "{case}");

        // It completes and closes, the server first.
        hub(
            &mut cluster,
            &seg(1001, Some(5001), TcpFlags::ACK),
            &mut kernels,
        );
        let from_kernel = Endpoint {
            mac: EthernetAddress(mac_of(serving)),
            ..service()
        };
        let fin = tcp_header(80, client.port, 5001, Some(1001), TcpFlags::FIN);
        let mut f = HeapFrame::from_bytes(&tcp_frame(&from_kernel, &client, &fin, &[], 0));
        assert_eq!(
            cluster[serving].process(KERNEL, &mut f, Instant::ZERO),
            Verdict::Forward(WIRE)
        );
        hub(
            &mut cluster,
            &seg(1001, Some(5002), TcpFlags::FIN),
            &mut kernels,
        );
        assert!(
            holders.iter().all(|&k| entry(&cluster[k]).unwrap().ended),
            "{case}"
        );

        // The loads change (stateful DPR now prefers srv2), and the client
        // reuses the 4-tuple at once with another ISN.
        for (k, p) in cluster.iter_mut().enumerate() {
            p.set_tables(tables(k, mode, state, after, Some(0.5)));
        }
        let before_syn: Vec<usize> = kernels.iter().map(Vec::len).collect();
        hub(
            &mut cluster,
            &seg(7_000_000, None, TcpFlags::SYN),
            &mut kernels,
        );
        let got: Vec<usize> = (0..3)
            .filter(|&k| kernels[k].len() > before_syn[k])
            .collect();
        let new_serving = match (mode, state) {
            (Mode::Local, _) => 0,
            (_, State::Stateful) => 1,
            _ => serving,
        };
        assert_eq!(got, [new_serving], "{case}: one kernel gets the new SYN");
        let syn_in = TcpPacket::new_checked(&kernels[new_serving].last().unwrap()[14 + 20..])
            .unwrap()
            .seq_number();
        assert_eq!(syn_in, 7_000_000, "{case}");
        // Every member that held the old connection dropped it, by kind.
        let reused = count(&cluster, Counter::TupleReused);
        for (k, e) in holders.iter().zip(&old) {
            assert_eq!(reused[*k], 1, "{case}: srv{}", k + 1);
            assert_eq!(cluster[*k].counters().get(kind(e.action)), 1, "{case}");
        }
        assert_eq!(reused.iter().sum::<u64>(), holders.len() as u64, "{case}");
        // The new connection's holders: the inspector (if it keeps state)
        // and the new target, with the new ISN.
        let new_holders: Vec<usize> = (0..3).filter(|&k| entry(&cluster[k]).is_some()).collect();
        match (mode, state) {
            (Mode::Local, _) => assert_eq!(new_holders, [0], "{case}"),
            (_, State::Stateful) => {
                assert_eq!(new_holders, [0, 1], "{case}: srv3's old entry is gone");
                assert_eq!(
                    cluster[0].counters().get(Counter::DprOverloadChoice),
                    2,
                    "placed again by load"
                );
            }
            _ => assert_eq!(new_holders, holders, "{case}"),
        }
        for &k in &new_holders {
            let e = entry(&cluster[k]).unwrap();
            assert_eq!((e.client_isn, e.ended), (7_000_000, false), "{case}");
        }

        // The new connection ends with the client's RST; its successor
        // carries the first connection's ISN again: a new connection too.
        hub(
            &mut cluster,
            &seg(7_000_001, None, TcpFlags::RST),
            &mut kernels,
        );
        hub(&mut cluster, &seg(1000, None, TcpFlags::SYN), &mut kernels);
        let reused_again = count(&cluster, Counter::TupleReused);
        for &k in &new_holders {
            assert_eq!(reused_again[k] - reused[k], 1, "{case}: srv{}", k + 1);
            assert_eq!(entry(&cluster[k]).unwrap().client_isn, 1000, "{case}");
        }
        // That one the client drops silently (no FIN, no RST reaches the
        // segment) and reuses the 4-tuple with yet another ISN: new again.
        hub(
            &mut cluster,
            &seg(1001, Some(5001), TcpFlags::ACK),
            &mut kernels,
        );
        hub(
            &mut cluster,
            &seg(9_000_000, None, TcpFlags::SYN),
            &mut kernels,
        );
        let reused_third = count(&cluster, Counter::TupleReused);
        for &k in &new_holders {
            assert_eq!(reused_third[k] - reused_again[k], 1, "{case}: srv{}", k + 1);
            let e = entry(&cluster[k]).unwrap();
            assert_eq!((e.client_isn, e.ended), (9_000_000, false), "{case}");
        }
        for p in &cluster {
            assert_eq!(
                p.counters().outcomes(),
                p.counters().get(Counter::WireRx) + p.counters().get(Counter::KernelRx),
                "{case}: one outcome per frame"
            );
        }
    }
}

/// Issue 17: redirects are accepted only from members. A tunnel whose
/// outer source is not a member and a MAC-rewritten frame from a MAC that
/// is not a member's are counted and dropped: nothing reaches the kernel
/// and no flow is created. The genuine redirect is still delivered.
#[test]
fn forged_redirects_from_non_members_are_dropped() {
    let (loads, _, _, syn, f) = srv1_tunnels_a_syn();
    let tunnelled = f.bytes().to_vec();

    // The same tunnel from 198.18.0.66 (not a member), checksum fixed.
    let mut forged = tunnelled.clone();
    {
        let mut outer = Ipv4Packet::new_checked(&mut forged[14..]).unwrap();
        outer.set_src_addr(Ipv4Addr::new(198, 18, 0, 66));
        outer.fill_checksum();
    }
    // And from srv3's own address (a member never tunnels to itself).
    let mut own = tunnelled.clone();
    {
        let mut outer = Ipv4Packet::new_checked(&mut own[14..]).unwrap();
        outer.set_src_addr(Ipv4Addr::new(198, 18, 0, 13));
        outer.fill_checksum();
    }
    let mut srv3 = pipeline(2, Mode::DprIpip, State::Stateful, loads, Some(0.5));
    for frame in [&forged, &own] {
        let mut g = HeapFrame::from_bytes(frame);
        assert_eq!(srv3.process(WIRE, &mut g, Instant::ZERO), Verdict::Drop);
    }
    assert_eq!(srv3.counters().get(Counter::DropIpipNotMember), 2);
    assert_eq!(srv3.counters().get(Counter::IpipDecapsulated), 0);
    assert_eq!(srv3.flows().len(), 0);
    let mut g = HeapFrame::from_bytes(&tunnelled);
    assert_eq!(
        srv3.process(WIRE, &mut g, Instant::ZERO),
        Verdict::Forward(KERNEL)
    );
    assert_eq!(srv3.counters().get(Counter::IpipDecapsulated), 1);

    // MAC rewrite: the client's SYN sent straight to srv2's own MAC, from
    // the client's MAC (not a member's): dropped; from srv1's MAC: delivered.
    let mut srv2 = pipeline(1, Mode::DprMac, State::Stateful, [0.0; 3], None);
    let mut direct = syn.clone();
    direct[..6].copy_from_slice(&mac_of(1));
    let mut g = HeapFrame::from_bytes(&direct);
    assert_eq!(srv2.process(WIRE, &mut g, Instant::ZERO), Verdict::Drop);
    assert_eq!(srv2.counters().get(Counter::DropRedirectNotMember), 1);
    assert_eq!(srv2.flows().len(), 0);
    direct[6..12].copy_from_slice(&mac_of(0));
    let mut g = HeapFrame::from_bytes(&direct);
    assert_eq!(
        srv2.process(WIRE, &mut g, Instant::ZERO),
        Verdict::Forward(KERNEL)
    );
    assert_eq!(srv2.counters().get(Counter::DprReceived), 1);
    assert_eq!(srv2.flows().len(), 1);
}

/// Issue 17, RFC 5961: a blind RST (forged, far outside the window: the
/// kernel answers it with a challenge ACK and keeps the connection) must
/// not end the member's flow under a connection that goes on. The flow
/// moves to closing on the RST, as for a real one, and back to established
/// when the client keeps sending; past the closing timeout its packets
/// still reach the kernel. A real RST followed by silence still ends the
/// flow after the closing timeout.
#[test]
fn a_blind_reset_does_not_end_a_connection_the_client_keeps_using() {
    use shoal_dataplane::flow::{FlowKey, FlowState};
    for (mode, state) in [
        (Mode::Local, State::Stateful),
        (Mode::DprMac, State::Stateful),
        (Mode::DprIpip, State::Stateful),
    ] {
        let mut cluster = [0, 1, 2].map(|k| pipeline(k, mode, state, [0.0; 3], None));
        let client = client_endpoint(7, 40_007);
        let send = |cluster: &mut [Pipeline; 3], seq: u32, flags: TcpFlags, body: &[u8], at| {
            let ack = (!flags.contains(TcpFlags::SYN)).then_some(1);
            let f = tcp_frame(
                &client,
                &service(),
                &tcp_header(client.port, 80, seq, ack, flags),
                body,
                1,
            );
            cluster
                .iter_mut()
                .map(|p| p.process(WIRE, &mut HeapFrame::from_bytes(&f), at))
                .collect::<Vec<_>>()
        };
        let t0 = Instant::from_secs(10);
        let after = |s: u64| Instant::from_secs(10 + s);
        let placed = send(&mut cluster, 100, TcpFlags::SYN, &[], t0);
        let owner = placed.iter().position(|v| *v != Verdict::Drop).unwrap();
        let verdict = placed[owner];
        assert_eq!(placed.iter().filter(|v| **v != Verdict::Drop).count(), 1);
        assert_eq!(
            send(&mut cluster, 101, TcpFlags::ACK, &[], t0)[owner],
            verdict
        );
        let key = FlowKey::new(client.ip, client.port, VIP, 80, 6);
        let state = |c: &[Pipeline; 3]| {
            c[owner]
                .flows()
                .get(&key)
                .map(shoal_dataplane::flow::Flow::state)
        };

        // The forged RST still reaches the kernel (which judges its sequence
        // number and sends the challenge ACK); the flow moves to closing.
        let blind = send(
            &mut cluster,
            101 + 0x4000_0000,
            TcpFlags::RST,
            &[],
            after(1),
        );
        assert_eq!(blind[owner], verdict, "{mode:?}");
        assert_eq!(state(&cluster), Some(FlowState::Closing), "{mode:?}");
        // The client goes on: established again, counted.
        let more = send(&mut cluster, 101, TcpFlags::PSH, b"more", after(2));
        assert_eq!(more[owner], verdict, "{mode:?}");
        assert_eq!(state(&cluster), Some(FlowState::Established), "{mode:?}");
        assert_eq!(
            cluster[owner].counters().get(Counter::BlindResetSurvived),
            1,
            "{mode:?}"
        );
        // Well past the closing timeout (10 s), the connection still works.
        cluster[owner].expire(after(40), 4096);
        let later = send(&mut cluster, 105, TcpFlags::ACK, &[], after(40));
        assert_eq!(later[owner], verdict, "{mode:?}: flow lost to a blind RST");

        // A real RST and silence: gone after the closing timeout.
        send(&mut cluster, 105, TcpFlags::RST, &[], after(41));
        assert_eq!(state(&cluster), Some(FlowState::Closing));
        cluster[owner].expire(after(53), 4096);
        assert_eq!(state(&cluster), None, "{mode:?}: a real RST ends the flow");
        assert_eq!(
            cluster[owner].counters().get(Counter::BlindResetSurvived),
            1
        );
    }
}

/// An ICMP fragmentation-needed from a router on the way to `client`,
/// quoting a segment the VIP sent to `client` at `port` with sequence
/// number `seq` (issue 17).
fn frag_needed(client: &Endpoint, port: u16, seq: u32) -> Vec<u8> {
    let vip = Endpoint {
        mac: CLUSTER_MAC,
        ip: VIP,
        port: 80,
    };
    let to = Endpoint { port, ..*client };
    let quoted = tcp_frame(
        &vip,
        &to,
        &tcp_header(80, port, seq, Some(1), TcpFlags::ACK),
        &[0; 8],
        3,
    );
    let icmp = Icmpv4Repr::DstUnreachable {
        reason: shoal_wire::Icmpv4DstUnreachable::FragRequired,
        next_hop_mtu: 1400,
        invoking: &quoted[14..14 + 28],
    };
    let router = Endpoint {
        mac: EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x01]),
        ip: Ipv4Addr::new(198, 18, 0, 1),
        port: 0,
    };
    shoal_dataplane::traffic::ipv4_frame(
        &router,
        &vip,
        IpProtocol::Icmp,
        icmp.buffer_len(),
        9,
        |l4| {
            icmp.emit(&mut Icmpv4Packet::new_unchecked(l4));
        },
    )
}

/// Issue 17: an ICMP error to the VIP goes where the connection it quotes
/// goes — the kernel of the member serving it, or its DPR target through
/// the inspector — not to whichever member the router's address hashes to;
/// one quoting a connection nobody holds is dropped by every member,
/// counted, and reaches no kernel.
#[test]
fn icmp_errors_follow_the_connection_they_quote() {
    for (mode, state) in [
        (Mode::Local, State::Stateful),
        (Mode::DprMac, State::Stateful),
        (Mode::DprMac, State::Stateless),
    ] {
        let mut cluster = [0, 1, 2].map(|k| pipeline(k, mode, state, [0.0; 3], None));
        let mut kernels: [Vec<Vec<u8>>; 3] = Default::default();
        let client = client_endpoint(9, 40_009);
        let syn = tcp_frame(
            &client,
            &service(),
            &tcp_header(client.port, 80, 500, None, TcpFlags::SYN),
            &[],
            1,
        );
        hub(&mut cluster, &syn, &mut kernels);
        let server = (0..3).find(|&k| kernels[k].len() == 1).unwrap();
        let before = kernels.clone();
        hub(
            &mut cluster,
            &frag_needed(&client, client.port, 7),
            &mut kernels,
        );
        for k in 0..3 {
            let got = kernels[k].len() - before[k].len();
            assert_eq!(
                got,
                usize::from(k == server),
                "{mode:?} {state:?}: srv{}",
                k + 1
            );
        }
        let delivered = kernels[server].last().unwrap();
        assert_eq!(
            &delivered[12..],
            &frag_needed(&client, client.port, 7)[12..]
        );
        let to_flow: u64 = cluster
            .iter()
            .map(|p| p.counters().get(Counter::IcmpErrorToFlow))
            .sum();
        assert!(to_flow >= 1, "{mode:?} {state:?}");

        // A quote of a connection that does not exist: no kernel, and every
        // member counts it (stateless DPR: the owner of the quoted client
        // key redirects it, as it would that connection's packets).
        let dropped = |c: &[Pipeline; 3]| -> Vec<u64> {
            c.iter()
                .map(|p| p.counters().get(Counter::DropIcmpNoFlow))
                .collect()
        };
        let before: Vec<usize> = kernels.iter().map(Vec::len).collect();
        let drops = dropped(&cluster);
        hub(&mut cluster, &frag_needed(&client, 1234, 7), &mut kernels);
        if state == State::Stateful {
            assert_eq!(
                kernels.iter().map(Vec::len).collect::<Vec<_>>(),
                before,
                "{mode:?}"
            );
            for (k, (now, then)) in dropped(&cluster).into_iter().zip(drops).enumerate() {
                assert_eq!(now, then + 1, "{mode:?}: srv{}", k + 1);
            }
        }
    }
}

/// Issue 17: a frame from this member's kernel for the VIP that belongs to
/// no flow here (its flow expired or was evicted, or a local process forged
/// it) is dropped and counted for services that keep flows — another member
/// may serve that 4-tuple now — and passes for stateless DPR, whose
/// connections need no flow. A connection the member holds is unaffected.
#[test]
fn kernel_frames_for_no_flow_are_dropped_unless_the_service_is_stateless() {
    for (mode, state, passes) in [
        (Mode::Local, State::Stateful, false),
        (Mode::DprMac, State::Stateful, false),
        (Mode::DprIpip, State::Stateless, true),
    ] {
        let mut p = pipeline(0, mode, state, [0.0; 3], None);
        let stranger = client_endpoint(11, 40_011);
        let kernel = Endpoint {
            mac: EthernetAddress(mac_of(0)),
            ip: VIP,
            port: 80,
        };
        let data = tcp_frame(
            &kernel,
            &stranger,
            &tcp_header(80, stranger.port, 5, Some(6), TcpFlags::PSH),
            b"HTTP/1.1 200 OK\r\n",
            1,
        );
        let v = p.process(KERNEL, &mut HeapFrame::from_bytes(&data), Instant::ZERO);
        let expected = if passes {
            Verdict::Forward(WIRE)
        } else {
            Verdict::Drop
        };
        assert_eq!(v, expected, "{mode:?} {state:?}");
        assert_eq!(
            p.counters().get(Counter::KernelVipNoFlow),
            u64::from(!passes),
            "{mode:?} {state:?}"
        );
        // A connection srv1 holds: its kernel's replies go out.
        let client = (0..2000)
            .map(|i| client_endpoint(100 + i, 41_000))
            .find(|c| {
                let syn = tcp_frame(
                    c,
                    &service(),
                    &tcp_header(c.port, 80, 1, None, TcpFlags::SYN),
                    &[],
                    1,
                );
                p.process(WIRE, &mut HeapFrame::from_bytes(&syn), Instant::ZERO)
                    == Verdict::Forward(KERNEL)
            })
            .unwrap();
        let synack = tcp_frame(
            &kernel,
            &client,
            &tcp_header(80, client.port, 77, Some(2), TcpFlags::SYN),
            &[],
            2,
        );
        let v = p.process(KERNEL, &mut HeapFrame::from_bytes(&synack), Instant::ZERO);
        assert_eq!(v, Verdict::Forward(WIRE), "{mode:?} {state:?}");
    }
}
