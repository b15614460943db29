//! Flow steering between workers (`steer.rs`, `worker.rs`):
//!
//! * every kind of frame of one connection — the client's from the wire,
//!   MAC-rewritten or tunnelled by another member, the kernel's replies,
//!   handoff offers and answers, ICMP errors quoting it — maps to the same
//!   owner worker, for random connections and worker counts;
//! * N workers steering frames to each other over their rings produce
//!   exactly the frames and counters of one worker (order aside), whichever
//!   queue each frame arrives on.

#![allow(clippy::unwrap_used)] // test helpers: a panic is a failed test

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use shoal_dataplane::counters::Counter;
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::memory::MemoryIo;
use shoal_dataplane::io::Frame;
use shoal_dataplane::pipeline::{Pipeline, Tables, KERNEL, WIRE};
use shoal_dataplane::steer::{self, Tuple};
use shoal_dataplane::traffic::{client_trace, tcp_frame, tcp_header, Endpoint, TraceSpec};
use shoal_dataplane::worker::{Steering, Worker};
use shoal_l7::handoff::{
    encode, Accept, ClusterKey, Envelope, FlowSnapshot, HandoffId, Inspector, InspectorConfig,
    Located, Message, Negotiated, Offer,
};
use shoal_wire::time::Instant;
use shoal_wire::{EthernetAddress, TcpFlags};

fn tables() -> Tables {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).unwrap();
    "srv1".clone_into(&mut cfg.cluster.local_member);
    Tables::from_config(&cfg, 1).unwrap()
}

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

fn eth(dst: EthernetAddress, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.0.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99, 0x08, 0x00]);
    f.extend_from_slice(payload);
    f
}

/// An IPv4 header + payload (checksums are not steering's business).
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let len = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

fn tcp_bytes(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = sport.to_be_bytes().to_vec();
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn udp_bytes(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// An ICMP destination unreachable quoting `quoted` (its header + 8 bytes).
fn icmp_error(quoted: &[u8]) -> Vec<u8> {
    let mut i = vec![3, 3, 0, 0, 0, 0, 0, 0];
    i.extend_from_slice(&quoted[..28]);
    i
}

fn snapshot(t: &Tuple) -> FlowSnapshot {
    FlowSnapshot {
        client: SocketAddrV4::new(t.client, t.client_port),
        vip: SocketAddrV4::new(t.vip, t.vip_port),
        client_isn: 1,
        cookie_isn: 2,
        next_client_seq: 3,
        next_server_seq: 4,
        client_window: 500,
        options: Negotiated {
            mss: 1460,
            window_scale: None,
            sack_permitted: false,
            timestamps: None,
        },
    }
}

/// The handoff datagram `message` from member 2 to this member, in a frame.
fn handoff_frame(tables: &Tables, message: &Message) -> Vec<u8> {
    let envelope = Envelope {
        sender: 2,
        recipient: tables.own_id,
        incarnation: 7 << 8,
        sequence: 1,
        timestamp_ms: 1,
    };
    let key = ClusterKey::from_bytes(&[3; 32]).unwrap();
    let datagram = encode(&envelope, message, &key);
    let udp = udp_bytes(shoal_l7::handoff::PORT, shoal_l7::handoff::PORT, &datagram);
    eth(
        tables.own_mac,
        &ipv4(Ipv4Addr::new(198, 18, 0, 12), tables.own_addr, 17, &udp),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_frame_of_a_connection_has_one_owner(
        client in any::<u32>(),
        client_port in 1u16..,
        workers in 2usize..=8,
        lane in 0u8..8,
    ) {
        let t = tables();
        let client = Ipv4Addr::from(client);
        prop_assume!(client != t.own_addr && !t.is_vip(client));
        let tuple = Tuple { client, client_port, vip: VIP, vip_port: 80 };
        let owner = steer::owner(&tuple, workers);
        let forward = ipv4(client, VIP, 6, &tcp_bytes(client_port, 80));
        let reply = ipv4(VIP, client, 6, &tcp_bytes(80, client_port));
        let own_mac = t.own_mac;
        let frames: Vec<(&str, usize, Vec<u8>)> = vec![
            ("client to the VIP", WIRE, eth(t.cluster_mac, &forward)),
            ("MAC-rewritten by an inspector", WIRE, eth(own_mac, &forward)),
            ("IP-in-IP from an inspector", WIRE, eth(own_mac,
                &ipv4(Ipv4Addr::new(198, 18, 0, 13), t.own_addr, 4, &forward))),
            ("kernel reply", KERNEL, eth(EthernetAddress([2, 0, 0, 0, 0, 1]), &reply)),
            ("ICMP error about a reply", WIRE, eth(t.cluster_mac,
                &ipv4(Ipv4Addr::new(198, 18, 1, 1), VIP, 1, &icmp_error(&reply)))),
            ("kernel's ICMP error about a client packet", KERNEL, eth(own_mac,
                &ipv4(VIP, client, 1, &icmp_error(&forward)))),
            ("UDP to the VIP", WIRE, eth(t.cluster_mac,
                &ipv4(client, VIP, 17, &udp_bytes(client_port, 80, b"x")))),
        ];
        for (what, port, f) in &frames {
            prop_assert_eq!(steer::target(*port, f, &t, workers), Some(owner), "{}", what);
        }
        // A handoff offer for the connection goes to its owner; the answer
        // to an offer goes back to the worker (lane) that made it.
        let offer = Offer { id: HandoffId(9 << 8), snapshot: snapshot(&tuple), request: b"GET / HTTP/1.1\r\n\r\n".to_vec() };
        for part in offer.parts() {
            let f = handoff_frame(&t, &Message::Offer(part));
            prop_assert_eq!(steer::target(WIRE, &f, &t, workers), Some(owner), "offer");
        }
        // Routed: the answer to a flooded packet goes to the connection's owner.
        let located = Located {
            client: std::net::SocketAddrV4::new(client, client_port),
            vip: std::net::SocketAddrV4::new(VIP, 80),
            member: 3,
        };
        let f = handoff_frame(&t, &Message::Located(located));
        prop_assert_eq!(steer::target(WIRE, &f, &t, workers), Some(owner), "located");
        let mut inspector = Inspector::with_lane(InspectorConfig::default(), lane);
        let id = inspector.start(2, snapshot(&tuple), b"GET /", Instant::ZERO).unwrap();
        let accept = handoff_frame(&t, &Message::Accept(Accept { id, kernel_isn: 5 }));
        prop_assert_eq!(steer::target(WIRE, &accept, &t, workers), Some(usize::from(lane) % workers));
        // Fragments: by client address alone, both directions alike.
        let mut frag = forward.clone();
        frag[6] = 0x20; // more fragments
        let frag_owner = steer::owner(&Tuple { client, client_port: 0, vip: VIP, vip_port: 0 }, workers);
        prop_assert_eq!(steer::target(WIRE, &eth(t.cluster_mac, &frag), &t, workers), Some(frag_owner));
        // Not a connection: whoever received it.
        let own = eth(own_mac, &ipv4(client, t.own_addr, 6, &tcp_bytes(client_port, 22)));
        prop_assert_eq!(steer::target(WIRE, &own, &t, workers), None);
        prop_assert_eq!(steer::target(WIRE, &[0u8; 10], &t, workers), None);
    }
}

/// Routed mode's GUE (`dataplane.topology = "routed"`): a packet another
/// member forwards to this one goes to the owner of the inner packet's
/// connection; on a segment the same datagram is this member's own traffic.
#[test]
fn gue_is_steered_by_its_inner_packet_in_routed_mode_only() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).unwrap();
    "srv1".clone_into(&mut cfg.cluster.local_member);
    cfg.dataplane.topology = shoal_config::Topology::Routed;
    let routed = Tables::from_config(&cfg, 1).unwrap();
    let segment = tables();
    let client = Ipv4Addr::new(198, 19, 7, 9);
    for (client_port, workers) in [(40_001u16, 4usize), (51_234, 3), (61_000, 8)] {
        let forward = ipv4(client, VIP, 6, &tcp_bytes(client_port, 80));
        let mut gue = vec![0x02, 4, 0, 0, 0x53, 0x48, 0, 0, 0, 0, 0, 0];
        gue.extend_from_slice(&forward);
        let frame = eth(
            routed.own_mac,
            &ipv4(
                Ipv4Addr::new(198, 18, 0, 12),
                routed.own_addr,
                17,
                &udp_bytes(0xc001, shoal_wire::gue::PORT, &gue),
            ),
        );
        let tuple = Tuple {
            client,
            client_port,
            vip: VIP,
            vip_port: 80,
        };
        assert_eq!(
            steer::target(WIRE, &frame, &routed, workers),
            Some(steer::owner(&tuple, workers))
        );
        assert_eq!(steer::target(WIRE, &frame, &segment, workers), None);
    }
}

/// What left on each port (sorted), the summed counters without the
/// steering ones, and how many frames were steered.
type Outcome = ([Vec<Vec<u8>>; 2], BTreeMap<&'static str, u64>, u64);

/// Runs `frames` (port, bytes) through `workers` workers, each frame
/// arriving on the queue of worker `queue(i)`, one frame at a time (every
/// worker polled until nothing moves, so the order per connection is the
/// input's). Returns what left on each port, sorted, and the summed
/// counters without the steering ones.
fn run_workers(
    frames: &[(usize, Vec<u8>)],
    workers: usize,
    queue: impl Fn(usize) -> usize,
) -> Outcome {
    let t = Arc::new(tables());
    let mut ws: Vec<Worker<MemoryIo>> = Steering::mesh(workers, 64)
        .into_iter()
        .map(|s| {
            let p = Pipeline::new(Arc::clone(&t), 4096, Timeouts::default());
            let mut w = Worker::new(MemoryIo::new(2), p, 32);
            w.steer(s);
            w
        })
        .collect();
    let mut out: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    for (i, (port, bytes)) in frames.iter().enumerate() {
        let now = Instant::from_millis(i as u64);
        ws[queue(i) % workers].io_mut().inject(*port, bytes);
        loop {
            let moved: usize = ws.iter_mut().map(|w| w.poll(now)).sum();
            if moved == 0 {
                break;
            }
        }
        for w in &mut ws {
            for p in [WIRE, KERNEL] {
                out[p].extend(w.io_mut().take_tx(p).iter().map(|f| f.bytes().to_vec()));
            }
        }
    }
    let mut counters = BTreeMap::new();
    let mut steered = 0;
    for w in &ws {
        let c = w.pipeline().counters();
        steered += c.get(Counter::SteeredIn);
        assert_eq!(c.get(Counter::DropSteerFull), 0);
        for &k in Counter::ALL {
            if ![Counter::SteeredIn, Counter::SteeredOut].contains(&k) {
                *counters.entry(k.name()).or_insert(0) += c.get(k);
            }
        }
    }
    for o in &mut out {
        o.sort();
    }
    (out, counters, steered)
}

#[test]
fn four_workers_give_the_frames_and_counters_of_one() {
    let t = tables();
    let service = Endpoint {
        mac: t.cluster_mac,
        ip: VIP,
        port: 80,
    };
    let trace = client_trace(&TraceSpec::new(service, 20, 300));
    let mut frames: Vec<(usize, Vec<u8>)> = Vec::new();
    for (_, f) in &trace {
        frames.push((WIRE, f.clone()));
        // The local kernel answers every client TCP segment (ACK).
        if f.len() > 34 && f[12..14] == [0x08, 0x00] && f[23] == 6 {
            let client = Endpoint {
                mac: EthernetAddress(f[6..12].try_into().unwrap()),
                ip: Ipv4Addr::new(f[26], f[27], f[28], f[29]),
                port: u16::from_be_bytes([f[34], f[35]]),
            };
            let tcp = tcp_header(80, client.port, 1000, Some(1), TcpFlags::ACK);
            let vip = Endpoint {
                mac: t.own_mac,
                ip: VIP,
                port: 80,
            };
            frames.push((KERNEL, tcp_frame(&vip, &client, &tcp, &[], 1)));
        }
    }
    let (one_out, one_counters, _) = run_workers(&frames, 1, |_| 0);
    // Frames arrive on "random" queues (not the owner's): most are steered.
    let (four_out, four_counters, steered) = run_workers(&frames, 4, |i| i * 7 + i / 3);
    assert!(one_counters["syn_accepted"] > 50, "{one_counters:?}");
    assert!(one_counters["flow_hit"] > 300, "{one_counters:?}");
    assert_eq!(four_counters, one_counters);
    assert_eq!(four_out[WIRE], one_out[WIRE]);
    assert_eq!(four_out[KERNEL], one_out[KERNEL]);
    assert!(
        steered as usize > frames.len() / 2,
        "{steered} of {} steered",
        frames.len()
    );
}
