//! Splice in routed mode (issue 18): the inspector is the connection's
//! routed target; receivers send it the client's packets in GUE; after the
//! handover its tombstone forwards them to the member serving the
//! connection; when the inspector left the membership, the member without
//! a flow floods a copy to every other live member and only the one
//! holding the connection keeps it.
//!
//! An in-process cluster of three `Pipeline`s (`deploy/examples/replay.toml`,
//! its first service switched to `splice` with every request dispatched to
//! srv2, routed). The "router" hands each client frame to the receiver a
//! test chooses; frames members put on the wire go to the member whose
//! address they are for, or are collected as sent to the client; the
//! kernels are played by the test.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::collections::VecDeque;

use proptest::prelude::*;
use std::net::Ipv4Addr;
use std::sync::Arc;

use shoal_config::{Config, Topology};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::flow::{FlowKey, Timeouts};
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::{Frame, PortId};
use shoal_dataplane::pipeline::{FlowAction, Pipeline, Tables, Verdict, KERNEL, WIRE};
use shoal_dataplane::traffic::{client_endpoint, tcp_frame, tcp_header, Endpoint};
use shoal_select::ClientKey;
use shoal_wire::time::Instant;
use shoal_wire::{EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, TcpFlags, TcpPacket};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const MEMBERS: [&str; 3] = ["srv1", "srv2", "srv3"];
const ROUTER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0xfe]);
const REQUEST: &[u8] = b"GET /whoami HTTP/1.1\r\nHost: 198.18.0.100\r\nUser-Agent: test\r\n\r\n";

fn mac_of(k: usize) -> EthernetAddress {
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b + k as u8])
}

fn addr_of(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 11 + k as u8)
}

fn config(member: &str) -> Config {
    let mut cfg = shoal_e2e::splice_config(member, shoal_e2e::all_to("srv2"));
    cfg.dataplane.topology = Topology::Routed;
    cfg.validate().unwrap();
    cfg
}

/// Member `k`'s tables of epoch `epoch`; `alive[j]`: member j is in the
/// membership.
fn tables(k: usize, alive: [bool; 3], epoch: u64) -> Arc<Tables> {
    shoal_e2e::tables_alive(&config(MEMBERS[k]), &alive, epoch)
}

fn pipeline(k: usize, alive: [bool; 3]) -> Pipeline {
    let cfg = config(MEMBERS[k]);
    let mut p = Pipeline::new(
        tables(k, alive, 1),
        4096,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    p.set_cookie_secret([k as u8 + 1; 32]);
    p.enable_handoff(
        shoal_l7::handoff::ClusterKey::from_bytes(&[9; 32]).unwrap(),
        1,
        1_000_000,
    );
    p
}

/// Everything one client frame caused across the cluster.
#[derive(Debug, Default)]
struct Outcome {
    /// (member, frame) each kernel got, in order.
    kernels: Vec<(usize, Vec<u8>)>,
    /// (member, frame) sent to the client (through the router).
    to_client: Vec<(usize, Vec<u8>)>,
    /// Frames members processed (the receiver counts).
    hops: usize,
}

struct Cluster {
    members: [Pipeline; 3],
    /// Members whose dataplane runs (frames to the others are lost).
    running: [bool; 3],
    now: Instant,
}

impl Cluster {
    fn new(alive: [bool; 3]) -> Cluster {
        Cluster {
            members: [0, 1, 2].map(|k| pipeline(k, alive)),
            running: [true; 3],
            now: Instant::from_secs(100),
        }
    }

    /// A new membership on members `on` (a new epoch).
    fn set_alive(&mut self, alive: [bool; 3], epoch: u64, on: &[usize]) {
        for &k in on {
            let t = tables(k, alive, epoch);
            self.members[k].set_tables(t);
        }
    }

    /// Processes `frame` at member `at` from port `port`, then every frame
    /// it or the members it reaches send to a member, until none is left.
    fn deliver(&mut self, at: usize, port: PortId, frame: Vec<u8>) -> Outcome {
        let mut out = Outcome::default();
        let mut queue = VecDeque::from([(at, port, frame)]);
        while let Some((k, port, bytes)) = queue.pop_front() {
            if !self.running[k] {
                continue;
            }
            out.hops += 1;
            assert!(out.hops <= 12, "a frame causes a bounded number of hops");
            let mut f = HeapFrame::from_bytes(&bytes);
            let verdict = self.members[k].process(port, &mut f, self.now);
            let mut sent: Vec<(PortId, Vec<u8>)> = self.members[k].take_emitted().collect();
            match verdict {
                Verdict::Forward(p) => sent.insert(0, (p, f.bytes().to_vec())),
                Verdict::Drop => {}
            }
            for (p, frame) in sent {
                if p == KERNEL {
                    out.kernels.push((k, frame));
                    continue;
                }
                let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                if let Some(j) = (0..3).find(|&j| addr_of(j) == ip.dst_addr()) {
                    assert_eq!(eth.dst_addr(), mac_of(j), "to the member's MAC");
                    queue.push_back((j, WIRE, frame.clone()));
                } else {
                    assert_eq!(eth.dst_addr(), ROUTER_MAC, "to the client via the router");
                    assert_eq!(ip.src_addr(), VIP);
                    out.to_client.push((k, frame.clone()));
                }
            }
        }
        out
    }

    /// The router hands the client frame `frame` to member `receiver`.
    fn route(&mut self, receiver: usize, frame: &[u8]) -> Outcome {
        let mut bytes = frame.to_vec();
        bytes[..6].copy_from_slice(&mac_of(receiver).0);
        bytes[6..12].copy_from_slice(&ROUTER_MAC.0);
        self.deliver(receiver, WIRE, bytes)
    }

    fn count(&self, k: usize, c: Counter) -> u64 {
        self.members[k].counters().get(c)
    }

    fn assert_one_outcome_per_frame(&self) {
        shoal_e2e::assert_one_outcome_per_frame(&self.members);
    }
}

fn service() -> Endpoint {
    Endpoint {
        mac: mac_of(0),
        ip: VIP,
        port: 80,
    }
}

fn key(c: &Endpoint) -> ClientKey {
    ClientKey {
        addr: c.ip,
        port: c.port,
    }
}

/// Clients whose inspector is member `first` under membership `before`
/// and member `then` under `after`.
fn clients_moving(
    (before, first): ([bool; 3], usize),
    (after, then): ([bool; 3], usize),
) -> impl Iterator<Item = Endpoint> {
    let (t1, t2) = (tables(0, before, 1), tables(0, after, 2));
    let target =
        move |t: &Tables, c: &Endpoint| t.routed_target(0, key(c)).map(|m| usize::from(m - 1));
    (0..20_000)
        .map(|i| {
            let mut c = client_endpoint(i, 40_000 + (i % 1000) as u16);
            c.mac = ROUTER_MAC;
            c
        })
        .filter(move |c| target(&t1, c) == Some(first) && target(&t2, c) == Some(then))
}

/// The router sends member `k` a VIP frame (to a port no service has):
/// `k` learns the router's MAC.
fn teach_router(cl: &mut Cluster, k: usize) {
    let c = client_endpoint(60_000, 40_000);
    let svc = Endpoint {
        port: 81,
        ..service()
    };
    let syn = tcp_frame(
        &c,
        &svc,
        &tcp_header(c.port, 81, 1, None, TcpFlags::SYN),
        &[],
        1,
    );
    let out = cl.route(k, &syn);
    assert!(out.kernels.is_empty() && out.to_client.is_empty());
}

/// The TCP fields of a frame: (seq, ack, flags, payload).
fn tcp_of(frame: &[u8]) -> (u32, u32, u8, Vec<u8>) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.next_header(), IpProtocol::Tcp);
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()));
    (
        tcp.seq_number(),
        tcp.ack_number(),
        tcp.flags_byte(),
        tcp.payload().to_vec(),
    )
}

/// The MSS option of a SYN-ACK frame.
fn mss_of(frame: &[u8]) -> Option<u16> {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    TcpPacket::new_checked(ip.payload()).unwrap().mss()
}

const ISN: u32 = 1000;
const KERNEL_ISN: u32 = 9_000_000;

/// What the client learned from the SYN-ACK: the cookie ISN and the
/// timestamp it echoes.
#[derive(Debug, Clone, Copy)]
struct Opened {
    cookie: u32,
    echo: u32,
}

/// A client segment after the handshake: `seq_off` bytes into its stream,
/// acknowledging `ack_off` bytes of the server's.
fn segment(
    c: &Endpoint,
    o: Opened,
    (seq_off, ack_off): (u32, u32),
    flags: TcpFlags,
    payload: &[u8],
) -> Vec<u8> {
    let ack = o.cookie.wrapping_add(1 + ack_off);
    let mut h = tcp_header(c.port, 80, ISN + 1 + seq_off, Some(ack), flags);
    h.timestamps = Some((5000 + seq_off, o.echo));
    tcp_frame(c, &service(), &h, payload, 2)
}

/// The timestamps of a frame.
fn ts_of(frame: &[u8]) -> Option<(u32, u32)> {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    TcpPacket::new_checked(ip.payload()).unwrap().timestamps()
}

/// Opens `c`'s connection through receivers chosen by the test and hands it
/// to srv2: the SYN reaches the inspector `inspector` through `syn_via`, the
/// request through `request_via`; srv2's kernel answers the replayed SYN.
/// Returns what the client learned from the SYN-ACK.
fn open_to_srv2(
    cl: &mut Cluster,
    c: &Endpoint,
    inspector: usize,
    (syn_via, request_via): (usize, usize),
) -> Opened {
    let syn = tcp_frame(
        c,
        &service(),
        &tcp_header(c.port, 80, ISN, None, TcpFlags::SYN),
        &[],
        1,
    );
    let out = cl.route(syn_via, &syn);
    assert_eq!(out.to_client.len(), 1, "one SYN-ACK: {out:?}");
    assert_eq!(out.to_client[0].0, inspector, "the inspector answers");
    assert!(out.kernels.is_empty());
    let (cookie, ack, flags, _) = tcp_of(&out.to_client[0].1);
    assert_eq!((ack, flags), (ISN + 1, 0x12));
    let o = Opened {
        cookie,
        echo: ts_of(&out.to_client[0].1).unwrap().0,
    };
    // Routed: the client's segments may come in GUE, the MSS leaves room.
    assert!(mss_of(&out.to_client[0].1).unwrap() <= 1500 - 40 - 40);

    // The request (ACK of the cookie) through another receiver: the
    // inspector buffers it, offers it to srv2, srv2 replays the SYN.
    let req = segment(c, o, (0, 0), TcpFlags::PSH, REQUEST);
    let out = cl.route(request_via, &req);
    assert_eq!(out.kernels.len(), 1, "the replayed SYN: {out:?}");
    assert_eq!(out.kernels[0].0, 1, "into srv2's kernel");
    let (seq, _, flags, _) = tcp_of(&out.kernels[0].1);
    assert_eq!((seq, flags), (ISN, 0x02));

    // srv2's kernel answers (to the router: it routes the VIP's replies
    // there); srv2 sends it the request and the accept to the inspector.
    let kernel_side = Endpoint {
        mac: mac_of(1),
        ip: VIP,
        port: 80,
    };
    let mut client_side = *c;
    client_side.mac = ROUTER_MAC;
    let ksa = tcp_header(80, c.port, KERNEL_ISN, Some(ISN + 1), TcpFlags::SYN);
    let out = cl.deliver(
        1,
        KERNEL,
        tcp_frame(&kernel_side, &client_side, &ksa, &[], 0),
    );
    assert_eq!(out.kernels.len(), 1, "{out:?}");
    assert_eq!(tcp_of(&out.kernels[0].1).3, REQUEST);
    assert!(out.to_client.is_empty());
    assert_eq!(cl.count(inspector, Counter::HandoffHandedOver), 1);
    let key = FlowKey::new(c.ip, c.port, VIP, 80, 6);
    assert_eq!(
        cl.members[inspector]
            .flows()
            .get(&key)
            .unwrap()
            .value
            .action,
        FlowAction::HandedOff { member: 2 }
    );
    o
}

/// The client's ACK after its request: the kernel of srv2 gets it, in the
/// sequence space of that kernel, through `hops` members; nobody else does.
fn assert_reaches_srv2(cl: &mut Cluster, c: &Endpoint, o: Opened, via: usize, hops: usize) {
    let ack = segment(c, o, (REQUEST.len() as u32, 0), TcpFlags::ACK, &[]);
    let out = cl.route(via, &ack);
    assert_eq!(out.kernels.len(), 1, "through srv{}: {out:?}", via + 1);
    assert_eq!(out.kernels[0].0, 1, "srv2's kernel");
    assert!(out.to_client.is_empty());
    let (seq, ack, flags, _) = tcp_of(&out.kernels[0].1);
    assert_eq!(seq, ISN + 1 + REQUEST.len() as u32);
    assert_eq!(ack, KERNEL_ISN + 1, "translated into the kernel's space");
    assert_eq!(flags, 0x10);
    assert_eq!(
        EthernetFrame::new_checked(&out.kernels[0].1[..])
            .unwrap()
            .dst_addr(),
        mac_of(1)
    );
    assert_eq!(out.hops, hops, "through srv{}", via + 1);
}

#[test]
fn a_spliced_connection_reaches_its_member_through_any_receiver() {
    let mut cl = Cluster::new([true; 3]);
    let c = clients_moving(([true; 3], 0), ([true; 3], 0))
        .next()
        .unwrap();
    // srv1 has seen no frame of the router yet: it cannot answer a SYN
    // that came in GUE (it does not know where the client is), counted.
    let syn = tcp_frame(
        &c,
        &service(),
        &tcp_header(c.port, 80, ISN, None, TcpFlags::SYN),
        &[],
        1,
    );
    let out = cl.route(2, &syn);
    assert!(
        out.to_client.is_empty() && out.kernels.is_empty(),
        "{out:?}"
    );
    assert_eq!(cl.count(0, Counter::DropRoutedNoRouterMac), 1);
    // The retransmitted SYN comes straight from the router: learned.
    let out = cl.route(0, &syn);
    assert_eq!(out.to_client.len(), 1);
    // Then, with the SYN through srv3 and the request through srv2:
    let o = open_to_srv2(&mut cl, &c, 0, (2, 1));
    assert_eq!(cl.count(0, Counter::SpliceCookieSent), 2);

    // Every receiver brings the client's next packets to srv2's kernel:
    // srv2 holds the flow; srv1 is the inspector (its tombstone forwards);
    // srv3 is neither (to srv1, which forwards).
    assert_reaches_srv2(&mut cl, &c, o, 1, 1);
    assert_reaches_srv2(&mut cl, &c, o, 0, 2);
    assert_reaches_srv2(&mut cl, &c, o, 2, 3);
    assert_eq!(cl.count(0, Counter::RoutedTombstoneForwarded), 2);
    assert_eq!(cl.count(0, Counter::HandoffTombstoneHit), 0);
    assert_eq!(
        cl.count(1, Counter::RoutedDecapsulated),
        0,
        "counted as flow hits"
    );
    cl.assert_one_outcome_per_frame();
}

#[test]
fn a_new_inspector_sends_a_handed_off_connection_on_by_second_chance_and_learns_where_it_is() {
    // srv3 joins while the connection is open: the target of the client's
    // packets moves from srv1 to srv3, which has no flow and sends them to
    // srv1 (the alternate), whose tombstone sends them to srv2 and tells
    // srv3 (`located`): srv3 sends the next ones to srv2 itself, and still
    // does when the membership changes again (its previous tables no
    // longer name srv1).
    let mut cl = Cluster::new([true, true, false]);
    let c = clients_moving(([true, true, false], 0), ([true; 3], 2))
        .next()
        .unwrap();
    teach_router(&mut cl, 0);
    let o = open_to_srv2(&mut cl, &c, 0, (1, 0));
    cl.set_alive([true; 3], 2, &[0, 1, 2]);
    teach_router(&mut cl, 2);
    let before = cl.count(2, Counter::RoutedSecondChance);
    // srv3, srv1, srv2, and the `located` back to srv3.
    assert_reaches_srv2(&mut cl, &c, o, 2, 4);
    assert_eq!(cl.count(2, Counter::RoutedSecondChance), before + 1);
    assert_eq!(cl.count(0, Counter::RoutedLocatedSent), 1);
    assert_eq!(cl.count(2, Counter::RoutedLocatedLearned), 1);
    assert_reaches_srv2(&mut cl, &c, o, 2, 2);
    assert_eq!(cl.count(2, Counter::RoutedSecondChance), before + 1);
    assert_eq!(cl.count(2, Counter::RoutedTombstoneForwarded), 1);
    assert_reaches_srv2(&mut cl, &c, o, 0, 2);
    assert_eq!(cl.count(0, Counter::RoutedTombstoneForwarded), 2);
    assert_eq!(
        cl.count(0, Counter::RoutedLocatedSent),
        1,
        "srv1 told srv3 once"
    );
    // srv1 leaves: srv3's previous tables are those with srv1, which target
    // srv3 too; the learned tombstone still knows.
    cl.set_alive([false, true, true], 3, &[1, 2]);
    assert_reaches_srv2(&mut cl, &c, o, 2, 2);
    assert_eq!(cl.count(2, Counter::RoutedSecondChanceDropped), 0);
    cl.assert_one_outcome_per_frame();
}

#[test]
fn when_the_inspector_leaves_its_connections_are_found_by_flooding() {
    let mut cl = Cluster::new([true; 3]);
    // Inspected by srv1; with srv1 gone, by srv3.
    let mut moving = clients_moving(([true; 3], 0), ([false, true, true], 2));
    let (c, stray) = (moving.next().unwrap(), moving.next().unwrap());
    teach_router(&mut cl, 0);
    let o = open_to_srv2(&mut cl, &c, 0, (0, 2));
    // srv1 dies: srv2 and srv3 take a membership without it.
    cl.set_alive([false, true, true], 2, &[1, 2]);
    teach_router(&mut cl, 2);
    // Through srv3 (the new target): no flow, the alternate (srv1) is gone:
    // a copy to srv2, which holds it and tells srv3 so (`located`: the
    // third frame).
    assert_reaches_srv2(&mut cl, &c, o, 2, 3);
    assert_eq!(cl.count(2, Counter::RoutedFlooded), 1);
    assert_eq!(cl.count(1, Counter::RoutedFloodMiss), 0);
    assert_eq!(cl.count(1, Counter::RoutedLocatedSent), 1);
    assert_eq!(cl.count(2, Counter::RoutedLocatedLearned), 1);
    // From then on srv3 sends the connection's packets to srv2 alone.
    assert_reaches_srv2(&mut cl, &c, o, 2, 2);
    assert_eq!(cl.count(2, Counter::RoutedFlooded), 1);
    assert_eq!(cl.count(2, Counter::RoutedTombstoneForwarded), 1);
    // Through srv2: its own flow.
    assert_reaches_srv2(&mut cl, &c, o, 1, 1);
    // A forged `located` (not signed with the cluster key) teaches nothing.
    let forged = shoal_l7::handoff::encode(
        &shoal_l7::handoff::Envelope {
            sender: 2,
            recipient: 3,
            incarnation: 1,
            sequence: 99,
            timestamp_ms: 1_100_000,
        },
        &shoal_l7::handoff::Message::Located(shoal_l7::handoff::Located {
            client: std::net::SocketAddrV4::new(stray.ip, stray.port),
            vip: std::net::SocketAddrV4::new(VIP, 80),
            member: 2,
        }),
        &shoal_l7::handoff::ClusterKey::from_bytes(&[8; 32]).unwrap(),
    );
    let frame = shoal_dataplane::traffic::udp_frame(
        &Endpoint {
            mac: mac_of(1),
            ip: addr_of(1),
            port: shoal_l7::handoff::PORT,
        },
        &Endpoint {
            mac: mac_of(2),
            ip: addr_of(2),
            port: shoal_l7::handoff::PORT,
        },
        &forged,
        1,
    );
    let out = cl.deliver(2, WIRE, frame);
    assert!(out.kernels.is_empty() && out.to_client.is_empty());
    assert_eq!(cl.count(2, Counter::HandoffRejectedBadMac), 1);
    assert_eq!(cl.count(2, Counter::RoutedLocatedLearned), 1);

    // A packet of a connection nobody holds (another client of srv1's):
    // flooded, missed at srv2, never reaches a kernel.
    let o = Opened {
        cookie: 77,
        echo: 0,
    };
    let out = cl.route(2, &segment(&stray, o, (0, 0), TcpFlags::ACK, &[]));
    assert!(
        out.kernels.is_empty() && out.to_client.is_empty(),
        "{out:?}"
    );
    assert_eq!(cl.count(2, Counter::RoutedFlooded), 2);
    assert_eq!(cl.count(1, Counter::RoutedFloodMiss), 1);
    cl.assert_one_outcome_per_frame();
}

/// A step of the model below: a client packet through a receiver, or a new
/// membership (srv2, which serves the connection, stays; srv1, its
/// inspector, and srv3 leave and come back, restarted with their flows as
/// a dataplane restores its snapshot).
#[derive(Debug, Clone)]
enum Op {
    Data(usize),
    Membership([bool; 3]),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..3).prop_map(Op::Data),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(a, c)| Op::Membership([a, true, c])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Exactly one kernel per connection, routed splice: over any sequence
    /// of receivers and membership changes (the inspector and the third
    /// member leaving and returning), a handed-over connection's packets
    /// reach srv2's kernel, once, and no other kernel, and nothing is sent
    /// to the client by the dataplanes. While the inspector is alive or
    /// the packet's target learned where the connection is, none is lost.
    #[test]
    fn only_the_serving_member_ever_gets_a_handed_over_connection(
        ops in proptest::collection::vec(op(), 1..40),
        pick in 0usize..100,
        via in (0usize..3, 0usize..3),
    ) {
        let mut cl = Cluster::new([true; 3]);
        for k in 0..3 {
            teach_router(&mut cl, k);
        }
        let c = clients_moving(([true; 3], 0), ([true; 3], 0)).nth(pick).unwrap();
        let o = open_to_srv2(&mut cl, &c, 0, via);
        let ack = segment(&c, o, (REQUEST.len() as u32, 0), TcpFlags::ACK, &[]);
        let mut epoch = 2;
        let (mut sent, mut delivered) = (0u64, 0u64);
        for op in ops {
            match op {
                Op::Data(r) if cl.running[r] => {
                    let out = cl.route(r, &ack);
                    prop_assert!(out.kernels.iter().all(|(k, _)| *k == 1), "{:?}", out);
                    prop_assert!(out.kernels.len() <= 1, "{:?}", out);
                    prop_assert!(out.to_client.is_empty(), "{:?}", out);
                    sent += 1;
                    delivered += out.kernels.len() as u64;
                }
                Op::Data(_) => {}
                Op::Membership(alive) => {
                    for k in 0..3 {
                        if alive[k] {
                            let t = tables(k, alive, epoch);
                            if cl.running[k] {
                                cl.members[k].set_tables(t);
                            } else {
                                cl.members[k].set_tables_joining(t);
                            }
                        }
                    }
                    cl.running = alive;
                    epoch += 1;
                }
            }
        }
        prop_assert_eq!(sent, delivered);
        cl.assert_one_outcome_per_frame();
    }
}
