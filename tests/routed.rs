//! Routed mode (`dataplane.topology = "routed"`, issue 18) through the
//! pipeline: routers in front, each client packet reaches one member (the
//! receiver), which serves it or forwards it in GUE to the connection's
//! target; second chance at the previous target across membership changes.
//!
//! A small in-process cluster: three `Pipeline`s built from
//! `deploy/examples/replay.toml` switched to routed mode. The "router"
//! hands each client frame to the receiver a test chooses (to the
//! receiver's own MAC, from the router's MAC); a frame a member puts on the
//! wire is handed to the member whose address it is for.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use shoal_config::{Config, Mode, State, Topology};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::Frame;
use shoal_dataplane::pipeline::{Pipeline, Tables, Verdict, KERNEL, WIRE};
use shoal_dataplane::traffic::{client_endpoint, tcp_frame, tcp_header, udp_frame, Endpoint};
use shoal_select::ClientKey;
use shoal_wire::gue::{self, GuePacket, GueRepr};
use shoal_wire::time::Instant;
use shoal_wire::{EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, TcpFlags, TcpPacket};
use shoal_wire::{UdpPacket, UdpRepr};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const MEMBERS: [&str; 3] = ["srv1", "srv2", "srv3"];
const ROUTER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0xfe]);

fn mac_of(k: usize) -> EthernetAddress {
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b + k as u8])
}

fn addr_of(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 11 + k as u8)
}

fn config(member: &str, mode: Mode, topology: Topology) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).unwrap();
    member.clone_into(&mut cfg.cluster.local_member);
    cfg.services[0].mode = mode;
    cfg.services[0].state = State::Stateless;
    cfg.dataplane.topology = topology;
    cfg.validate().unwrap();
    cfg
}

/// Member `k`'s tables of epoch `epoch`, with `alive[j]` saying whether
/// member j is in the membership.
fn tables(k: usize, mode: Mode, alive: [bool; 3], epoch: u64) -> Arc<Tables> {
    shoal_e2e::tables_alive(&config(MEMBERS[k], mode, Topology::Routed), &alive, epoch)
}

fn pipeline(k: usize, mode: Mode, alive: [bool; 3]) -> Pipeline {
    let cfg = config(MEMBERS[k], mode, Topology::Routed);
    Pipeline::new(
        tables(k, mode, alive, 1),
        4096,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    )
}

/// Where a frame handed to a receiver ended.
#[derive(Debug)]
struct Delivery {
    /// The member whose kernel got it, if one did.
    kernel: Option<usize>,
    /// Members that processed it (receiver, target, alternate).
    hops: usize,
    /// The frame the kernel got.
    bytes: Vec<u8>,
}

struct Cluster {
    mode: Mode,
    members: [Pipeline; 3],
}

impl Cluster {
    fn new(mode: Mode, alive: [bool; 3]) -> Cluster {
        Cluster {
            mode,
            members: [0, 1, 2].map(|k| pipeline(k, mode, alive)),
        }
    }

    /// A new membership on every member (a new epoch).
    fn set_alive(&mut self, alive: [bool; 3], epoch: u64) {
        for k in 0..3 {
            let t = tables(k, self.mode, alive, epoch);
            self.members[k].set_tables(t);
        }
    }

    /// The router hands `frame` (a client frame to the VIP) to member
    /// `receiver`; frames members send on the wire go to the member whose
    /// address they are for.
    fn route(&mut self, receiver: usize, frame: &[u8]) -> Delivery {
        let mut bytes = frame.to_vec();
        bytes[..6].copy_from_slice(&mac_of(receiver).0);
        bytes[6..12].copy_from_slice(&ROUTER_MAC.0);
        let mut at = receiver;
        let mut hops = 1;
        loop {
            let mut f = HeapFrame::from_bytes(&bytes);
            match self.members[at].process(WIRE, &mut f, Instant::ZERO) {
                Verdict::Forward(KERNEL) => {
                    return Delivery {
                        kernel: Some(at),
                        hops,
                        bytes: f.bytes().to_vec(),
                    }
                }
                Verdict::Forward(WIRE) => {
                    let (to, next) = outer_destination(f.bytes());
                    assert_eq!(to, mac_of(next), "sent to the member's MAC");
                    bytes = f.bytes().to_vec();
                    at = next;
                    hops += 1;
                    assert!(hops <= 3, "a packet visits at most three members");
                }
                Verdict::Forward(port) => panic!("port {port}"),
                Verdict::Drop => {
                    return Delivery {
                        kernel: None,
                        hops,
                        bytes: Vec::new(),
                    }
                }
            }
        }
    }

    fn count(&self, c: Counter) -> u64 {
        self.members.iter().map(|p| p.counters().get(c)).sum()
    }

    fn assert_one_outcome_per_frame(&self) {
        shoal_e2e::assert_one_outcome_per_frame(&self.members);
    }
}

/// The Ethernet destination of a frame a member sent and the index of the
/// member its outer IPv4 destination is.
fn outer_destination(frame: &[u8]) -> (EthernetAddress, usize) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let k = (0..3)
        .find(|&k| addr_of(k) == ip.dst_addr())
        .unwrap_or_else(|| panic!("sent to {}, not a member", ip.dst_addr()));
    (eth.dst_addr(), k)
}

fn service() -> Endpoint {
    Endpoint {
        mac: mac_of(0),
        ip: VIP,
        port: 80,
    }
}

fn client(i: u32) -> Endpoint {
    let mut c = client_endpoint(i, 40_000 + (i % 1000) as u16);
    c.mac = ROUTER_MAC;
    c
}

fn key(c: &Endpoint) -> ClientKey {
    ClientKey {
        addr: c.ip,
        port: c.port,
    }
}

fn syn(c: &Endpoint) -> Vec<u8> {
    let h = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
    tcp_frame(c, &service(), &h, &[], 1)
}

fn data(c: &Endpoint, n: u32) -> Vec<u8> {
    let h = tcp_header(c.port, 80, 1001 + n, Some(5001), TcpFlags::PSH);
    tcp_frame(
        c,
        &service(),
        &h,
        format!("request {n}").as_bytes(),
        2 + n as u16,
    )
}

/// The target index of `c` under `p`'s current tables.
fn target(p: &Pipeline, c: &Endpoint) -> usize {
    usize::from(p.tables().routed_target(0, key(c)).unwrap() - 1)
}

/// A client whose connection's target is member `k` (from number `from` up).
fn client_targeting(p: &Pipeline, k: usize, from: u32) -> Endpoint {
    (from..from + 10_000)
        .map(client)
        .find(|c| target(p, c) == k)
        .unwrap()
}

/// The parts of a GUE frame: outer source, destination and DF (IPv4
/// checksum checked), UDP source port, GUE repr, inner packet.
fn parse_gue(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr, bool, u16, GueRepr, Vec<u8>) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum(), "outer IPv4 checksum");
    assert_eq!(ip.next_header(), IpProtocol::Udp);
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    let repr = UdpRepr::parse(&udp).unwrap();
    assert_eq!(repr.dst_port, gue::PORT);
    assert!(repr.src_port >= 0xc000, "entropy in the dynamic range");
    assert_eq!(udp.checksum(), 0, "no outer UDP checksum");
    assert_eq!(usize::from(udp.len()), ip.payload().len());
    let g = GuePacket::new_checked(udp.payload()).unwrap();
    let gue = GueRepr::parse(&g).unwrap();
    (
        ip.src_addr(),
        ip.dst_addr(),
        ip.dont_frag(),
        repr.src_port,
        gue,
        g.payload().to_vec(),
    )
}

#[test]
fn receiver_forwards_to_the_target_in_gue_with_the_inner_packet_intact() {
    let mut cluster = Cluster::new(Mode::Local, [true; 3]);
    let c = client_targeting(&cluster.members[0], 1, 0);
    // The SYN to srv1: forwarded to srv2, MSS clamped to mtu - 80.
    let mut f = HeapFrame::from_bytes(&syn(&c));
    f.bytes_mut()[..6].copy_from_slice(&mac_of(0).0);
    assert_eq!(
        cluster.members[0].process(WIRE, &mut f, Instant::ZERO),
        Verdict::Forward(WIRE)
    );
    let sent = f.bytes().to_vec();
    let eth = EthernetFrame::new_checked(&sent[..]).unwrap();
    assert_eq!((eth.dst_addr(), eth.src_addr()), (mac_of(1), mac_of(0)));
    let (src, dst, df, sport, g, inner) = parse_gue(&sent);
    assert_eq!((src, dst, df), (addr_of(0), addr_of(1), true));
    assert_eq!(
        g,
        GueRepr {
            alternate: None,
            second_chance: false
        }
    );
    assert_eq!(sent.len(), syn(&c).len() + gue::OVERHEAD);
    let ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
    assert!(ip.verify_checksum());
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(tcp.verify_checksum(c.ip, VIP));
    assert_eq!(tcp.mss(), Some(1500 - 80));
    let c1 = cluster.members[0].counters();
    assert_eq!(c1.get(Counter::RoutedForwarded), 1);
    assert_eq!(c1.get(Counter::MssClamped), 1);
    assert_eq!(
        cluster.members[0].flows().len(),
        0,
        "the receiver keeps no flow"
    );

    // srv2 decapsulates: its kernel gets exactly the inner packet.
    let mut g2 = HeapFrame::from_bytes(&sent);
    assert_eq!(
        cluster.members[1].process(WIRE, &mut g2, Instant::ZERO),
        Verdict::Forward(KERNEL)
    );
    assert_eq!(&g2.bytes()[..6], &mac_of(1).0);
    assert_eq!(&g2.bytes()[14..], &inner[..]);
    let c2 = cluster.members[1].counters();
    assert_eq!(c2.get(Counter::RoutedDecapsulated), 1);
    assert_eq!(c2.get(Counter::RoutedSynAccepted), 1);
    assert_eq!(cluster.members[1].flows().len(), 1);

    // A data segment: the inner packet is the client's, byte for byte, and
    // the same connection gets the same UDP source port.
    let d = data(&c, 0);
    let mut f = HeapFrame::from_bytes(&d);
    f.bytes_mut()[..6].copy_from_slice(&mac_of(0).0);
    cluster.members[0].process(WIRE, &mut f, Instant::ZERO);
    let (_, _, _, sport2, _, inner) = parse_gue(f.bytes());
    assert_eq!(inner, d[14..]);
    assert_eq!(sport2, sport);
    let delivered = cluster.route(0, &d);
    assert_eq!(delivered.kernel, Some(1));
    assert_eq!(delivered.bytes[14..], d[14..]);
    cluster.assert_one_outcome_per_frame();
}

#[test]
fn the_target_serves_what_it_receives_from_the_router_itself() {
    let mut cluster = Cluster::new(Mode::Local, [true; 3]);
    let c = client_targeting(&cluster.members[0], 2, 0);
    let d = cluster.route(2, &syn(&c));
    assert_eq!((d.kernel, d.hops), (Some(2), 1));
    let mss = {
        let ip = Ipv4Packet::new_checked(&d.bytes[14..]).unwrap();
        TcpPacket::new_checked(ip.payload()).unwrap().mss()
    };
    assert_eq!(mss, Some(1420), "clamped: the router may move it later");
    let d = cluster.route(2, &data(&c, 0));
    assert_eq!((d.kernel, d.hops), (Some(2), 1));
    assert_eq!(d.bytes[14..], data(&c, 0)[14..]);
    assert_eq!(cluster.members[2].counters().get(Counter::RoutedLocal), 2);
}

#[test]
fn a_connection_the_router_moves_to_another_receiver_reaches_the_same_target() {
    for mode in [Mode::Local, Mode::DprIpip] {
        let mut cluster = Cluster::new(mode, [true; 3]);
        for i in 0..60 {
            let c = client(i);
            let t = target(&cluster.members[0], &c);
            let first = cluster.route(i as usize % 3, &syn(&c));
            assert_eq!(first.kernel, Some(t), "{mode:?}");
            for n in 0..3 {
                let d = cluster.route((i as usize + n + 1) % 3, &data(&c, n as u32));
                assert_eq!(d.kernel, Some(t), "{mode:?}");
                assert!(d.hops <= 2);
            }
        }
        // Only targets hold flows: one per connection.
        let flows: usize = cluster.members.iter().map(|p| p.flows().len()).sum();
        assert_eq!(flows, 60, "{mode:?}");
        assert_eq!(cluster.count(Counter::RoutedSecondChance), 0);
        cluster.assert_one_outcome_per_frame();
    }
}

#[test]
fn a_membership_change_keeps_established_connections_by_second_chance() {
    // srv3 is out; connections are established on srv1 and srv2.
    let mut cluster = Cluster::new(Mode::Local, [true, true, false]);
    let clients: Vec<Endpoint> = (0..90).map(client).collect();
    let mut holder = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let d = cluster.route(i % 3, &syn(c));
        assert!(matches!(d.kernel, Some(0 | 1)));
        holder.push(d.kernel.unwrap());
    }
    // srv3 joins: some connections' target is now srv3.
    cluster.set_alive([true; 3], 2);
    let moved: Vec<usize> = (0..clients.len())
        .filter(|&i| target(&cluster.members[0], &clients[i]) == 2)
        .collect();
    assert!(moved.len() > 10, "{}", moved.len());
    for (i, c) in clients.iter().enumerate() {
        for n in 0..3 {
            let d = cluster.route((i + n) % 3, &data(c, n as u32));
            assert_eq!(d.kernel, Some(holder[i]), "client {i}");
        }
    }
    // Receivers other than the holder send the moved connections to srv3,
    // which gives each its second chance at the holder; the holder as
    // receiver serves its own flow directly.
    let second = cluster.members[2]
        .counters()
        .get(Counter::RoutedSecondChance);
    let via_others: usize = moved
        .iter()
        .map(|&i| (0..3).filter(|n| (i + n) % 3 != holder[i]).count())
        .sum();
    assert_eq!(second, via_others as u64);
    assert!(second > 0);
    assert_eq!(cluster.members[2].flows().len(), 0);
    assert_eq!(cluster.count(Counter::RoutedSecondChanceDropped), 0);

    // A new connection whose target is srv3 goes to srv3, from any receiver.
    let fresh = client_targeting(&cluster.members[0], 2, 1000);
    let d = cluster.route(0, &syn(&fresh));
    assert_eq!(d.kernel, Some(2));
    let d = cluster.route(1, &data(&fresh, 0));
    assert_eq!((d.kernel, d.hops), (Some(2), 2));

    // A second change that moves a connection again before its next packet:
    // its holder is neither the target nor the alternate: dropped, counted,
    // never delivered elsewhere.
    cluster.set_alive([true, false, true], 3);
    let before = cluster.count(Counter::RoutedSecondChanceDropped);
    let mut lost = 0;
    for (i, c) in clients.iter().enumerate() {
        let d = cluster.route((i + 1) % 3, &data(c, 9));
        match d.kernel {
            Some(k) => assert_eq!(k, holder[i]),
            None => lost += 1,
        }
    }
    assert_eq!(
        cluster.count(Counter::RoutedSecondChanceDropped) - before,
        lost
    );
    cluster.assert_one_outcome_per_frame();
}

/// A member that restarts and rejoins: connections begun while it was away
/// (held by srv1 and srv2) whose target is now srv3 and whose packets the
/// router hands to srv3 itself get their second chance at their holder, as
/// through any other receiver. srv3 starts (tables from its config, every
/// member alive) and gets its first membership from control
/// (`set_tables_joining`): its previous tables are that membership without
/// itself, what the others decided with while it was away. With plain
/// `set_tables` (previous = its config tables, which match the membership)
/// it had no alternate and dropped them.
#[test]
fn a_rejoining_member_gives_second_chances_to_connections_begun_without_it() {
    let mut cluster = Cluster::new(Mode::Local, [true, true, false]);
    let clients: Vec<Endpoint> = (0..90).map(client).collect();
    let mut holder = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let d = cluster.route(i % 2, &syn(c));
        holder.push(d.kernel.unwrap());
    }
    // srv3 starts afresh and joins.
    for k in 0..2 {
        cluster.members[k].set_tables(tables(k, Mode::Local, [true; 3], 2));
    }
    let mut fresh = pipeline(2, Mode::Local, [true; 3]);
    fresh.set_tables_joining(tables(2, Mode::Local, [true; 3], 2));
    cluster.members[2] = fresh;
    let moved: Vec<usize> = (0..clients.len())
        .filter(|&i| target(&cluster.members[0], &clients[i]) == 2)
        .collect();
    assert!(moved.len() > 10, "{}", moved.len());
    for &i in &moved {
        let d = cluster.route(2, &data(&clients[i], 0));
        assert_eq!((d.kernel, d.hops), (Some(holder[i]), 2), "client {i}");
    }
    let c = cluster.members[2].counters();
    assert_eq!(c.get(Counter::RoutedSecondChance), moved.len() as u64);
    assert_eq!(c.get(Counter::RoutedSecondChanceDropped), 0);
    assert_eq!(cluster.members[2].flows().len(), 0);
    // Its own new connections stay on it.
    let new = client_targeting(&cluster.members[0], 2, 1000);
    assert_eq!(cluster.route(2, &syn(&new)).kernel, Some(2));
    assert_eq!(cluster.route(0, &data(&new, 0)).kernel, Some(2));

    // The plain `set_tables` (what the dataplane did before) drops them.
    let mut plain = pipeline(2, Mode::Local, [true; 3]);
    plain.set_tables(tables(2, Mode::Local, [true; 3], 2));
    cluster.members[2] = plain;
    let d = cluster.route(2, &data(&clients[moved[0]], 1));
    assert_eq!(d.kernel, None);
    assert_eq!(
        cluster.members[2]
            .counters()
            .get(Counter::RoutedSecondChanceDropped),
        1
    );
    cluster.assert_one_outcome_per_frame();
}

/// A GUE frame from srv1 to srv2 carrying `c`'s SYN (srv2 its target).
fn gue_syn_to_srv2(cluster: &mut Cluster, c: &Endpoint) -> Vec<u8> {
    let mut f = HeapFrame::from_bytes(&syn(c));
    f.bytes_mut()[..6].copy_from_slice(&mac_of(0).0);
    assert_eq!(
        cluster.members[0].process(WIRE, &mut f, Instant::ZERO),
        Verdict::Forward(WIRE)
    );
    f.bytes().to_vec()
}

#[test]
fn gue_from_a_host_that_is_no_member_is_dropped_and_counted() {
    let mut cluster = Cluster::new(Mode::Local, [true; 3]);
    let c = client_targeting(&cluster.members[0], 1, 0);
    let genuine = gue_syn_to_srv2(&mut cluster, &c);
    // From a host that is no member, and from srv2's own address.
    for forged_src in [Ipv4Addr::new(198, 18, 0, 66), addr_of(1)] {
        let mut forged = genuine.clone();
        let mut outer = Ipv4Packet::new_checked(&mut forged[14..]).unwrap();
        outer.set_src_addr(forged_src);
        outer.fill_checksum();
        let mut g = HeapFrame::from_bytes(&forged);
        assert_eq!(
            cluster.members[1].process(WIRE, &mut g, Instant::ZERO),
            Verdict::Drop
        );
    }
    let c2 = cluster.members[1].counters();
    assert_eq!(c2.get(Counter::DropEncapNotMember), 2);
    assert_eq!(c2.get(Counter::RoutedDecapsulated), 0);
    assert_eq!(cluster.members[1].flows().len(), 0);
    let mut g = HeapFrame::from_bytes(&genuine);
    assert_eq!(
        cluster.members[1].process(WIRE, &mut g, Instant::ZERO),
        Verdict::Forward(KERNEL)
    );
    cluster.assert_one_outcome_per_frame();
}

#[test]
fn malformed_gue_is_counted_and_never_panics() {
    let mut cluster = Cluster::new(Mode::Local, [true; 3]);
    let c = client_targeting(&cluster.members[0], 1, 0);
    let genuine = gue_syn_to_srv2(&mut cluster, &c);
    let gue_at = 14 + 20 + 8;
    let p = &mut cluster.members[1];
    let mut expect = |bytes: &[u8], counter: Counter| {
        let before = p.counters().get(counter);
        let mut g = HeapFrame::from_bytes(bytes);
        assert_eq!(p.process(WIRE, &mut g, Instant::ZERO), Verdict::Drop);
        assert_eq!(p.counters().get(counter), before + 1, "{counter:?}");
    };
    // A GUE header of another version, and two hops listed.
    let mut v1 = genuine.clone();
    v1[gue_at] = 0x42;
    expect(&v1, Counter::DropEncapMalformed);
    let mut hops = genuine.clone();
    hops[gue_at + 7] = 2;
    expect(&hops, Counter::DropEncapMalformed);
    // The inner packet's checksum broken; the inner packet not for a VIP.
    let mut bad_sum = genuine.clone();
    bad_sum[gue_at + 12 + 10] ^= 0xff;
    expect(&bad_sum, Counter::DropMalformed);
    let mut other = genuine.clone();
    {
        let mut inner = Ipv4Packet::new_checked(&mut other[gue_at + 12..]).unwrap();
        inner.set_dst_addr(Ipv4Addr::new(198, 18, 0, 99));
        inner.fill_checksum();
    }
    expect(&other, Counter::DropEncapInner);
    // Every truncation, with the outer lengths kept consistent: dropped.
    for cut in 0..genuine.len() {
        let mut t = genuine[..cut].to_vec();
        if t.len() >= 14 + 20 {
            let total = (t.len() - 14) as u16;
            t[16..18].copy_from_slice(&total.to_be_bytes());
            let mut ip = Ipv4Packet::new_unchecked(&mut t[14..]);
            ip.fill_checksum();
            if t.len() >= 14 + 28 {
                let udp_len = (t.len() - 14 - 20) as u16;
                t[38..40].copy_from_slice(&udp_len.to_be_bytes());
            }
        }
        let mut g = HeapFrame::from_bytes(&t);
        let verdict = p.process(WIRE, &mut g, Instant::ZERO);
        if (14 + 20..gue_at).contains(&cut) {
            // No whole UDP header: not recognisably GUE, this member's own
            // traffic (its kernel drops it).
            assert_eq!(verdict, Verdict::Forward(KERNEL), "cut at {cut}");
        } else {
            assert_eq!(verdict, Verdict::Drop, "cut at {cut}");
        }
    }
    // Arbitrary bytes after a valid UDP header to port 7948.
    for seed in 0u8..64 {
        let mut junk = genuine.clone();
        for (i, b) in junk[gue_at..].iter_mut().enumerate() {
            *b = b.wrapping_mul(seed).wrapping_add(i as u8 ^ seed);
        }
        let mut g = HeapFrame::from_bytes(&junk);
        let _ = p.process(WIRE, &mut g, Instant::ZERO);
    }
    assert_eq!(p.flows().len(), 0);
    cluster.assert_one_outcome_per_frame();
}

#[test]
fn segment_mode_leaves_udp_7948_to_the_kernel() {
    let cfg = config("srv2", Mode::Local, Topology::Segment);
    let mut p = Pipeline::new(
        Arc::new(Tables::from_config(&cfg, 1).unwrap()),
        64,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    let src = Endpoint {
        mac: mac_of(0),
        ip: addr_of(0),
        port: 50_000,
    };
    let dst = Endpoint {
        mac: mac_of(1),
        ip: addr_of(1),
        port: gue::PORT,
    };
    let header = [0x02, 4, 0, 0, 0x53, 0x48, 0, 0, 0, 0, 0, 0];
    let frame = udp_frame(&src, &dst, &header, 1);
    let mut g = HeapFrame::from_bytes(&frame);
    assert_eq!(
        p.process(WIRE, &mut g, Instant::ZERO),
        Verdict::Forward(KERNEL)
    );
    assert_eq!(g.bytes(), &frame[..]);
    assert_eq!(p.counters().get(Counter::OwnToKernel), 1);
    assert_eq!(p.counters().get(Counter::RoutedDecapsulated), 0);
}

#[test]
fn a_packet_too_big_for_gue_gets_fragmentation_needed() {
    let mut cluster = Cluster::new(Mode::Local, [true; 3]);
    let c = client_targeting(&cluster.members[0], 1, 0);
    let h = tcp_header(c.port, 80, 1001, Some(1), TcpFlags::PSH);
    let big = tcp_frame(&c, &service(), &h, &[b'x'; 1500 - 20 - 32 - 20], 3);
    let mut f = HeapFrame::from_bytes(&big);
    f.bytes_mut()[..6].copy_from_slice(&mac_of(0).0);
    assert_eq!(
        cluster.members[0].process(WIRE, &mut f, Instant::ZERO),
        Verdict::Forward(WIRE)
    );
    let eth = EthernetFrame::new_checked(f.bytes()).unwrap();
    assert_eq!(eth.dst_addr(), ROUTER_MAC, "back toward the client");
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!((ip.dst_addr(), ip.next_header()), (c.ip, IpProtocol::Icmp));
    // Next-hop MTU: 1500 less the 40 bytes of GUE (bytes 6..8 of the ICMP).
    assert_eq!(&ip.payload()[6..8], &(1500u16 - 40).to_be_bytes());
    let counters = cluster.members[0].counters();
    assert_eq!(counters.get(Counter::IcmpFragNeededSent), 1);
}

// ------------------------------------------------- exactly one, over interleavings

/// What the client model, the router and the cluster do next.
#[derive(Debug, Clone)]
enum Op {
    /// Connection `conn` sends its SYN through receiver `via` (again only
    /// if the last one reached no kernel).
    Syn { conn: usize, via: usize },
    /// Connection `conn` sends a data segment through receiver `via`.
    Data { conn: usize, via: usize },
    /// A new membership (which members are alive), on every member.
    Members { alive: [bool; 3] },
    /// Member `k` crashes and restarts: its flows (and its kernel's
    /// sockets) are gone; it is out of the membership until a `Members`.
    Crash { k: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..12usize, 0..3usize).prop_map(|(conn, via)| Op::Syn { conn, via }),
        6 => (0..12usize, 0..3usize).prop_map(|(conn, via)| Op::Data { conn, via }),
        2 => proptest::array::uniform3(any::<bool>())
            .prop_filter("someone alive", |a| a.iter().any(|&x| x))
            .prop_map(|alive| Op::Members { alive }),
        1 => (0..3usize).prop_map(|k| Op::Crash { k }),
    ]
}

/// A connection of the client model.
#[derive(Debug, Clone, Default)]
struct Conn {
    /// The member whose kernel accepted its SYN (None: not yet, or the
    /// SYN reached no kernel).
    holder: Option<usize>,
    /// The holder crashed: its socket is gone with it.
    dead: bool,
    /// Members whose kernel got a data segment of it.
    served_by: Vec<usize>,
    /// Data segments sent.
    sent: u32,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The project's invariant, routed: for every connection exactly one
    /// member acts. Over any interleaving of SYNs and data through any
    /// receiver, membership changes and crashes: every SYN reaches at most
    /// one kernel; data reaches only the kernel that accepted the SYN (the
    /// holder), never another, and never after the holder crashed; a packet
    /// visits at most three members; and while the holder lives and is the
    /// target under the current or the previous tables, every data segment
    /// reaches it, except through a receiver restarted since the last
    /// membership change (its previous tables are a guess until the next
    /// one: `Pipeline::set_tables_joining`).
    #[test]
    fn exactly_one_member_serves_each_connection(ops in proptest::collection::vec(op(), 1..80)) {
        let mode = Mode::Local;
        let mut alive = [true; 3];
        let mut prev_alive: Option<[bool; 3]> = None;
        let mut epoch = 1;
        let mut cluster = Cluster::new(mode, alive);
        let mut conns: Vec<Conn> = vec![Conn::default(); 12];
        // Members restarted since the last membership change: their
        // previous tables are a guess (their config's) until the next one.
        let mut guessing = [false; 3];
        for op in ops {
            match op {
                Op::Syn { conn, via } => {
                    if conns[conn].holder.is_some() {
                        continue;
                    }
                    let d = cluster.route(via, &syn(&client(conn as u32)));
                    conns[conn].holder = d.kernel;
                }
                Op::Data { conn, via } => {
                    let Some(holder) = conns[conn].holder else { continue };
                    let ep = client(conn as u32);
                    let p = &cluster.members[0];
                    let now = target(p, &ep);
                    // The cluster's previous membership, from the model
                    // (a restarted member's own previous tables are its
                    // guess, not the oracle).
                    let before = prev_alive
                        .and_then(|a| tables(0, mode, a, 0).routed_target(0, key(&ep)))
                        .map(|id| usize::from(id - 1));
                    conns[conn].sent += 1;
                    let d = cluster.route(via, &data(&ep, conns[conn].sent));
                    let c = &mut conns[conn];
                    if let Some(k) = d.kernel {
                        prop_assert_eq!(k, holder, "data of {} served by another member", conn);
                        prop_assert!(!c.dead, "data of {} served after its holder crashed", conn);
                        if !c.served_by.contains(&k) {
                            c.served_by.push(k);
                        }
                    } else {
                        prop_assert!(
                            c.dead || (holder != now && before != Some(holder)) || guessing[via],
                            "data of {} lost though its holder {} is the target {} or the alternate {:?}",
                            conn, holder, now, before
                        );
                    }
                    prop_assert!(c.served_by.len() <= 1);
                }
                Op::Members { alive: a } => {
                    if a != alive {
                        prev_alive = Some(alive);
                        guessing = [false; 3];
                    }
                    alive = a;
                    epoch += 1;
                    cluster.set_alive(alive, epoch);
                }
                Op::Crash { k } => {
                    let mut a = alive;
                    a[k] = false;
                    if !a.iter().any(|&x| x) {
                        continue;
                    }
                    if a != alive {
                        prev_alive = Some(alive);
                        guessing = [false; 3];
                    }
                    guessing[k] = true;
                    alive = a;
                    epoch += 1;
                    cluster.set_alive(alive, epoch);
                    // The restarted member starts from its config (every
                    // member alive), then gets control's membership as
                    // the dataplane does (`set_tables_joining`: it is
                    // still out of it, so its previous tables are the
                    // config's until the change that counts it).
                    let mut fresh = pipeline(k, mode, [true; 3]);
                    fresh.set_tables_joining(tables(k, mode, alive, epoch));
                    cluster.members[k] = fresh;
                    for c in &mut conns {
                        if c.holder == Some(k) {
                            c.dead = true;
                        }
                    }
                }
            }
        }
        cluster.assert_one_outcome_per_frame();
    }
}

/// Two membership changes in a row before a connection's next packet, the
/// second one not moving it (as when a member restarts: it joins, then its
/// weight or role settles): its target's newest earlier tables name the
/// target itself, the ones before name the holder. The alternate is the
/// newest earlier target that differs from the current one, so the packet
/// still gets its second chance at the holder.
#[test]
fn the_alternate_is_the_newest_earlier_target_that_differs() {
    let mut cluster = Cluster::new(Mode::Local, [true, true, false]);
    let all = tables(0, Mode::Local, [true; 3], 2);
    let without_srv2 = tables(0, Mode::Local, [true, false, true], 3);
    let to = |t: &Tables, c: &Endpoint| t.routed_target(0, key(c));
    let c = (0..20_000)
        .map(client)
        .find(|c| {
            target(&cluster.members[0], c) == 0
                && to(&all, c) == Some(3)
                && to(&without_srv2, c) == Some(3)
        })
        .unwrap();
    assert_eq!(cluster.route(0, &syn(&c)).kernel, Some(0));
    cluster.set_alive([true; 3], 2);
    cluster.set_alive([true, false, true], 3);
    // Straight from the router to srv3 (its second chance at srv1), and to
    // srv1 itself.
    for (n, receiver) in [2, 0].into_iter().enumerate() {
        let d = cluster.route(receiver, &data(&c, n as u32));
        assert_eq!(d.kernel, Some(0), "through srv{}", receiver + 1);
    }
    assert_eq!(
        cluster.members[2]
            .counters()
            .get(Counter::RoutedSecondChance),
        1
    );
    assert_eq!(cluster.count(Counter::RoutedSecondChanceDropped), 0);
    cluster.assert_one_outcome_per_frame();
}
