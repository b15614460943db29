//! The SYN proxy of the L4 TCP services (`services.syn_proxy`, issue 17)
//! through the pipeline: a flood of spoofed SYNs against a small flow
//! table, a legitimate client's handshake and data in both directions with
//! exact numbers, `auto` engaging and letting go, forged cookie ACKs, and a
//! DPR connection handed to its target member. Pipelines are built from
//! `deploy/examples/replay.toml` (the lab cluster seen from one member);
//! time is passed in, nothing waits.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use shoal_config::{Mode, Service, State, SynProxy};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::flow::{FlowState, Timeouts};
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::{Frame, PortId};
use shoal_dataplane::pipeline::{Pipeline, Tables, Verdict, KERNEL, WIRE};
use shoal_dataplane::traffic::{client_endpoint, tcp_frame, tcp_header, Endpoint};
use shoal_select::{mix64, ClientKey};
use shoal_wire::time::Instant;
use shoal_wire::{EthernetAddress, EthernetFrame, Ipv4Packet, TcpFlags, TcpPacket, TcpRepr};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const CLUSTER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]);
const MEMBERS: [&str; 3] = ["srv1", "srv2", "srv3"];

/// Member `k`'s own MAC (the TAP's).
fn mac_of(k: usize) -> EthernetAddress {
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b + k as u8])
}

/// Member `k`'s pipeline with a flow table of `capacity`, its service
/// edited by `edit`, able to hand connections to the others.
fn member(k: usize, capacity: usize, edit: impl FnOnce(&mut Service)) -> Pipeline {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).unwrap();
    MEMBERS[k].clone_into(&mut cfg.cluster.local_member);
    edit(&mut cfg.services[0]);
    cfg.validate().unwrap();
    let tables = Arc::new(Tables::from_config(&cfg, 1).unwrap());
    let mut p = Pipeline::new(
        tables,
        capacity,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    p.set_cookie_secret([k as u8 + 7; 32]);
    p.enable_handoff(
        shoal_l7::handoff::ClusterKey::from_bytes(&[9; 32]).unwrap(),
        1,
        1_000_000,
    );
    p
}

/// srv1 with `syn_proxy` set.
fn srv1(capacity: usize, proxy: Option<SynProxy>, half_open: Option<u32>) -> Pipeline {
    member(0, capacity, |s| {
        s.syn_proxy = proxy;
        s.syn_proxy_half_open = half_open;
    })
}

fn service() -> Endpoint {
    Endpoint {
        mac: CLUSTER_MAC,
        ip: VIP,
        port: 80,
    }
}

/// The service as srv1's kernel sends from it.
fn kernel_side(k: usize) -> Endpoint {
    Endpoint {
        mac: mac_of(k),
        ip: VIP,
        port: 80,
    }
}

/// The inspector of `c` for the service, as `p` sees it.
fn inspector(p: &Pipeline, c: &Endpoint) -> Option<u16> {
    p.tables().services[0].selector.select(ClientKey {
        addr: c.ip,
        port: c.port,
    })
}

/// The first `n` legitimate clients (198.19.0.0/16) of client host `host`
/// that srv1 (member id 1) inspects.
fn clients_of_srv1(p: &Pipeline, host: u32, n: usize) -> Vec<Endpoint> {
    (40_000..60_000)
        .map(|port| client_endpoint(host, port))
        .filter(|c| inspector(p, c) == Some(1))
        .take(n)
        .collect()
}

/// Spoofed SYN number `i` of a flood: a random source in 198.18.0.0/15
/// outside the lab's 198.18.0.0/24, a random port and ISN, sent from the
/// attacker's router MAC.
fn spoofed_syn(i: u64) -> Vec<u8> {
    let r = mix64(i ^ 0x5eed);
    let mut addr = 0xc612_0000 | (r as u32 & 0x0001_ffff);
    if addr & 0xffff_ff00 == 0xc612_0000 {
        // The lab's own 198.18.0.0/24: move to 198.18.1.0/24.
        addr |= 0x100;
    }
    let src = Endpoint {
        mac: EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x01]),
        ip: Ipv4Addr::from(addr),
        port: 1024 + (r >> 32) as u16 % 64_000,
    };
    let mut syn = tcp_header(src.port, 80, (r >> 16) as u32, None, TcpFlags::SYN);
    syn.timestamps = Some(((r >> 8) as u32, 0));
    tcp_frame(&src, &service(), &syn, &[], i as u16)
}

/// A segment as read back: header fields and payload (IP and TCP checksums
/// checked on the way).
#[derive(Debug)]
struct Seg {
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    mss: Option<u16>,
    ws: Option<u8>,
    sack: bool,
    ts: Option<(u32, u32)>,
    payload: Vec<u8>,
    dst_mac: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

fn parse(frame: &[u8]) -> Seg {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum(), "IPv4 checksum");
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(
        tcp.verify_checksum(ip.src_addr(), ip.dst_addr()),
        "TCP checksum"
    );
    Seg {
        seq: tcp.seq_number(),
        ack: tcp.ack_number(),
        flags: tcp.flags_byte(),
        window: tcp.window_len(),
        mss: tcp.mss(),
        ws: tcp.window_scale(),
        sack: tcp.sack_permitted(),
        ts: tcp.timestamps(),
        payload: tcp.payload().to_vec(),
        dst_mac: eth.dst_addr(),
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    }
}

/// What one processed frame gave: the verdict, the frame after processing,
/// and the frames the pipeline originated.
type Processed = (Verdict, Vec<u8>, Vec<(PortId, Vec<u8>)>);

fn run(p: &mut Pipeline, port: PortId, frame: &[u8], now: Instant) -> Processed {
    let mut f = HeapFrame::from_bytes(frame);
    let v = p.process(port, &mut f, now);
    let emitted = p.take_emitted().collect();
    (v, f.bytes().to_vec(), emitted)
}

/// A client segment with timestamps `ts`.
fn seg(c: &Endpoint, seq: u32, ack: u32, flags: TcpFlags, ts: (u32, u32)) -> TcpRepr {
    let mut h = tcp_header(c.port, 80, seq, Some(ack), flags);
    h.timestamps = Some(ts);
    h
}

/// Every frame ended in exactly one counted outcome.
fn assert_outcomes(p: &Pipeline) {
    let c = p.counters();
    assert_eq!(
        c.outcomes(),
        c.get(Counter::WireRx) + c.get(Counter::KernelRx)
    );
}

fn half_open(p: &Pipeline) -> usize {
    p.flows().count_by_state()[FlowState::Syn.index()]
}

/// The kernel's SYN-ACK (ISN `isn`, wscale 10, window 65160, clock `tsval`)
/// answering a SYN whose TSval was `echo`.
fn kernel_synack(k: usize, c: &Endpoint, isn: u32, ack: u32, tsval: u32, echo: u32) -> Vec<u8> {
    let mut sa = tcp_header(80, c.port, isn, Some(ack), TcpFlags::SYN);
    sa.window_len = 65_160;
    sa.window_scale = Some(10);
    sa.timestamps = Some((tsval, echo));
    tcp_frame(&kernel_side(k), c, &sa, &[], 0)
}

/// A flood of spoofed SYNs, many times the flow table's capacity, with a
/// legitimate client's connection in the middle of it: the flow table
/// keeps only the legitimate connection, the kernel sees no flood SYN, and
/// the client's handshake, its early data and both directions afterwards
/// come out exact (sequence, acknowledgement, timestamps, window) with
/// valid checksums.
#[test]
fn flood_leaves_the_flow_table_and_kernel_alone_while_a_client_connects() {
    const CAPACITY: usize = 512;
    const FLOOD: u64 = 30_000;
    let mut p = srv1(CAPACITY, Some(SynProxy::On), None);
    let c = clients_of_srv1(&p, 4, 1)[0];
    let svc = service();
    let mut to_kernel: Vec<Vec<u8>> = Vec::new();
    let flood = |p: &mut Pipeline, range: std::ops::Range<u64>, now: Instant| {
        let mut kernel = Vec::new();
        for i in range {
            let (v, bytes, out) = run(p, WIRE, &spoofed_syn(i), now);
            if v == Verdict::Forward(KERNEL) {
                kernel.push(bytes);
            }
            // A cookie SYN-ACK goes back to the (spoofed) client; nothing else.
            assert!(out.iter().all(|(port, _)| *port == WIRE));
            assert!(out.len() <= 1);
        }
        kernel
    };
    let t0 = Instant::from_secs(100);

    to_kernel.extend(flood(&mut p, 0..FLOOD / 2, t0));
    assert_eq!(p.flows().len(), 0, "no flood SYN holds a flow");

    // The client's SYN (ISN 1000; MSS 1460, SACK, TS 4242, wscale 7): a
    // cookie SYN-ACK, nothing kept.
    let mut syn = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
    syn.timestamps = Some((4242, 0));
    let (v, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &syn, &[], 1), t0);
    assert_eq!((v, out.len(), out[0].0), (Verdict::Drop, 1, WIRE));
    let sa = parse(&out[0].1);
    assert_eq!((sa.dst_mac, sa.src, sa.dst), (c.mac, VIP, c.ip));
    assert_eq!((sa.flags, sa.ack), (0x12, 1001));
    assert_eq!((sa.mss, sa.ws, sa.sack), (Some(1460), Some(7), true));
    let (tc, echoed) = sa.ts.unwrap();
    assert_eq!(echoed, 4242);
    assert!(tc <= 100_000, "TSval at most the clock (100 s): {tc}");
    let cookie = sa.seq;
    assert_eq!(p.flows().len(), 0);

    to_kernel.extend(flood(&mut p, FLOOD / 2..FLOOD * 3 / 4, t0));

    // Its ACK, 20 ms later: the connection is created and the client's SYN
    // replayed into the kernel at once, with the client's ISN and options
    // and its newest TSval.
    let t1 = t0 + core::time::Duration::from_millis(20);
    let ack = seg(&c, 1001, cookie.wrapping_add(1), TcpFlags::ACK, (4250, tc));
    let (v, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &ack, &[], 2), t1);
    assert_eq!((v, out.len(), out[0].0), (Verdict::Drop, 1, KERNEL));
    let replayed = parse(&out[0].1);
    assert_eq!(replayed.dst_mac, mac_of(0), "to the TAP's MAC");
    assert_eq!((replayed.src, replayed.dst), (c.ip, VIP));
    assert_eq!((replayed.seq, replayed.flags), (1000, 0x02));
    assert_eq!(
        (replayed.mss, replayed.ws, replayed.sack, replayed.ts),
        (Some(1460), Some(7), true, Some((4250, 0)))
    );
    assert_eq!(p.counters().get(Counter::SynproxyAccepted), 1);
    assert_eq!(p.flows().len(), 1);

    // The client speaks before the kernel answered: held, not lost, not
    // acknowledged by the dataplane.
    let early = b"EHLO client.example\r\n";
    let data = seg(&c, 1001, cookie.wrapping_add(1), TcpFlags::PSH, (4260, tc));
    let (v, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &data, early, 3), t1);
    assert_eq!((v, out.len()), (Verdict::Drop, 0));

    to_kernel.extend(flood(&mut p, FLOOD * 3 / 4..FLOOD, t1));

    // The kernel's SYN-ACK is taken; the kernel gets the ACK that completes
    // its handshake, carrying the held bytes.
    let k_isn = 5_000_000u32;
    let tk = 777_000u32;
    let (v, _, out) = run(
        &mut p,
        KERNEL,
        &kernel_synack(0, &c, k_isn, 1001, tk, 4250),
        t1,
    );
    assert_eq!(
        v,
        Verdict::Drop,
        "the kernel's SYN-ACK never reaches the client"
    );
    assert_eq!((out.len(), out[0].0), (1, KERNEL));
    let ack = parse(&out[0].1);
    assert_eq!((ack.seq, ack.ack, ack.flags), (1001, k_isn + 1, 0x18));
    assert_eq!(ack.ts, Some((4260, tk)));
    assert_eq!(ack.payload, early);
    assert_eq!(ack.dst_mac, mac_of(0));

    // Kernel -> client (the server's greeting): seq -= delta, TSval -=
    // offset (the inspector's clock at the cookie ACK: 100 020 ms), window
    // 100 << 10 >> 7.
    let sent_ts = 100_020u32;
    let banner = b"220 mx.example ESMTP\r\n";
    let after_early = 1001 + early.len() as u32;
    let mut greet = tcp_header(80, c.port, k_isn + 1, Some(after_early), TcpFlags::PSH);
    greet.window_len = 100;
    greet.timestamps = Some((tk + 5, 4260));
    let (v, bytes, out) = run(
        &mut p,
        KERNEL,
        &tcp_frame(&kernel_side(0), &c, &greet, banner, 0),
        t1,
    );
    assert_eq!((v, out.len()), (Verdict::Forward(WIRE), 0));
    let to_client = parse(&bytes);
    assert_eq!(
        (to_client.seq, to_client.ack),
        (cookie.wrapping_add(1), after_early)
    );
    assert_eq!(to_client.window, 800);
    assert_eq!(to_client.ts, Some((sent_ts + 5, 4260)));
    assert_eq!(to_client.payload, banner);

    // Client -> kernel: ack += delta, TSecr += offset, seq unchanged.
    let more = b"MAIL FROM:<a@client.example>\r\n";
    let next = seg(
        &c,
        after_early,
        cookie.wrapping_add(1 + banner.len() as u32),
        TcpFlags::PSH,
        (4270, sent_ts + 5),
    );
    let (v, bytes, _) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &next, more, 4), t1);
    assert_eq!(v, Verdict::Forward(KERNEL));
    let to_k = parse(&bytes);
    assert_eq!(to_k.dst_mac, mac_of(0));
    assert_eq!(
        (to_k.seq, to_k.ack),
        (after_early, k_isn + 1 + banner.len() as u32)
    );
    assert_eq!(to_k.ts, Some((4270, tk + 5)));
    assert_eq!(to_k.payload, more);

    // The whole flood: no flow, no frame to the kernel.
    assert!(
        to_kernel.is_empty(),
        "{} flood SYNs reached the kernel",
        to_kernel.len()
    );
    assert_eq!(p.flows().len(), 1, "only the client's connection");
    let counters = p.counters();
    let cookies = counters.get(Counter::SynproxyCookieSent);
    let others = counters.get(Counter::SynOtherInspector);
    assert_eq!(cookies + others, FLOOD + 1);
    assert!(
        cookies > 10 * CAPACITY as u64,
        "srv1 inspects about a third of the flood: {cookies}"
    );
    assert_eq!(counters.get(Counter::SynAccepted), 0);
    assert_eq!(counters.get(Counter::DropFlowTableFull), 0);
    assert_eq!(p.flows().stats().evicted_total(), 0);
    assert_outcomes(&p);
}

/// `auto` (the default): the plain path below the threshold, cookies above
/// it; a connection set up on the plain path goes on untouched; a new
/// client completes through the proxy; after a quiet SYN timeout the plain
/// path is back.
#[test]
fn auto_proxies_only_above_the_threshold_and_lets_go_after_the_flood() {
    let mut p = srv1(1024, None, Some(8));
    assert_eq!(
        p.tables().services[0].syn_proxy,
        SynProxy::Auto,
        "the default"
    );
    let [ca, cb, cd] = clients_of_srv1(&p, 5, 3)[..] else {
        panic!("three clients of srv1")
    };
    let svc = service();
    let t0 = Instant::from_secs(100);

    // Client A on the plain path: its SYN goes to the kernel as it came.
    let syn_a = tcp_frame(
        &ca,
        &svc,
        &tcp_header(ca.port, 80, 7000, None, TcpFlags::SYN),
        &[],
        1,
    );
    let (v, bytes, out) = run(&mut p, WIRE, &syn_a, t0);
    assert_eq!((v, out.len()), (Verdict::Forward(KERNEL), 0));
    assert_eq!(bytes[6..], syn_a[6..], "only the destination MAC changes");
    assert_eq!(p.counters().get(Counter::SynAccepted), 1);
    let ack_a = tcp_frame(
        &ca,
        &svc,
        &tcp_header(ca.port, 80, 7001, Some(90_001), TcpFlags::ACK),
        &[],
        2,
    );
    assert_eq!(run(&mut p, WIRE, &ack_a, t0).0, Verdict::Forward(KERNEL));
    assert_eq!(half_open(&p), 0, "A is established");

    // The flood: the first 9 spoofed SYNs srv1 inspects take the plain path
    // (flows in state Syn); the 10th finds 9 > 8 half-open and engages.
    let mut plain = 0;
    let mut n = 0;
    while p.counters().get(Counter::SynproxyEngaged) == 0 {
        let (v, _, out) = run(&mut p, WIRE, &spoofed_syn(n), t0);
        if v == Verdict::Forward(KERNEL) {
            plain += 1;
            assert!(out.is_empty());
        }
        n += 1;
    }
    assert_eq!(plain, 9);
    assert_eq!(half_open(&p), 9);
    for j in n..n + 5000 {
        let (v, _, _) = run(&mut p, WIRE, &spoofed_syn(j), t0);
        assert_eq!(v, Verdict::Drop, "engaged: no SYN reaches the kernel");
    }
    assert_eq!(p.flows().len(), 10, "A and the 9 half-open flows, no more");
    assert_eq!(p.counters().get(Counter::SynAccepted), 10);
    assert_eq!(p.counters().get(Counter::SynproxyEngaged), 1);

    // A keeps working on the plain path: its data goes to the kernel as is.
    let t1 = t0 + core::time::Duration::from_secs(1);
    let data_a = tcp_frame(
        &ca,
        &svc,
        &tcp_header(ca.port, 80, 7001, Some(90_001), TcpFlags::PSH),
        b"hi",
        3,
    );
    let (v, bytes, out) = run(&mut p, WIRE, &data_a, t1);
    assert_eq!((v, out.len()), (Verdict::Forward(KERNEL), 0));
    assert_eq!(bytes[6..], data_a[6..]);
    let reply = tcp_frame(
        &kernel_side(0),
        &ca,
        &tcp_header(80, ca.port, 90_001, Some(7003), TcpFlags::PSH),
        b"ok",
        0,
    );
    let (v, bytes, _) = run(&mut p, KERNEL, &reply, t1);
    assert_eq!((v, bytes), (Verdict::Forward(WIRE), reply.clone()));

    // Client B during the flood: a cookie, then the replay.
    let mut syn_b = tcp_header(cb.port, 80, 3000, None, TcpFlags::SYN);
    syn_b.timestamps = Some((11, 0));
    let (v, _, out) = run(&mut p, WIRE, &tcp_frame(&cb, &svc, &syn_b, &[], 4), t1);
    assert_eq!((v, out.len(), out[0].0), (Verdict::Drop, 1, WIRE));
    let sa = parse(&out[0].1);
    let ack_b = seg(
        &cb,
        3001,
        sa.seq.wrapping_add(1),
        TcpFlags::ACK,
        (12, sa.ts.unwrap().0),
    );
    let (_, _, out) = run(&mut p, WIRE, &tcp_frame(&cb, &svc, &ack_b, &[], 5), t1);
    assert_eq!((out.len(), out[0].0), (1, KERNEL));
    assert_eq!((parse(&out[0].1).seq, parse(&out[0].1).flags), (3000, 0x02));
    let (v, _, out) = run(&mut p, KERNEL, &kernel_synack(0, &cb, 44, 3001, 55, 12), t1);
    assert_eq!((v, out.len()), (Verdict::Drop, 1));
    assert_eq!(
        (
            parse(&out[0].1).seq,
            parse(&out[0].1).ack,
            parse(&out[0].1).flags
        ),
        (3001, 45, 0x10)
    );

    // 6 s later the flood's half-open flows have expired, but the window
    // that just ended saw the flood's cookies: still engaged (the SYN of a
    // new client gets a cookie and starts a new window).
    let t2 = t0 + core::time::Duration::from_secs(6);
    p.expire(t2, 100_000);
    assert_eq!(half_open(&p), 0);
    let syn_d1 = tcp_frame(
        &cd,
        &svc,
        &tcp_header(cd.port, 80, 500, None, TcpFlags::SYN),
        &[],
        6,
    );
    let (v, _, out) = run(&mut p, WIRE, &syn_d1, t2);
    assert_eq!((v, out.len()), (Verdict::Drop, 1), "still proxied");
    assert_eq!(p.counters().get(Counter::SynproxyDisengaged), 0);

    // A quiet SYN timeout later: back to the plain path.
    let t3 = t2 + core::time::Duration::from_secs(6);
    let syn_d2 = tcp_frame(
        &cd,
        &svc,
        &tcp_header(cd.port, 80, 900, None, TcpFlags::SYN),
        &[],
        7,
    );
    let (v, _, out) = run(&mut p, WIRE, &syn_d2, t3);
    assert_eq!((v, out.len()), (Verdict::Forward(KERNEL), 0));
    assert_eq!(p.counters().get(Counter::SynproxyDisengaged), 1);
    assert_eq!(p.counters().get(Counter::SynAccepted), 11);
    assert_outcomes(&p);
}

/// ACKs that carry no valid cookie are dropped and counted, and create
/// nothing; without cookies outstanding an ACK without a flow is the usual
/// `vip_no_flow`.
#[test]
fn forged_cookie_acks_are_dropped_and_counted() {
    let mut p = srv1(1024, Some(SynProxy::On), None);
    let c = clients_of_srv1(&p, 6, 1)[0];
    let svc = service();
    let now = Instant::from_secs(100);

    // No cookie sent yet: an ACK from nowhere is another member's.
    let stray = seg(&c, 501, 12_345, TcpFlags::ACK, (1, 1));
    let (v, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &stray, &[], 1), now);
    assert_eq!((v, out.len()), (Verdict::Drop, 0));
    assert_eq!(p.counters().get(Counter::VipNoFlow), 1);

    let mut syn = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
    syn.timestamps = Some((4242, 0));
    let (_, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &syn, &[], 2), now);
    let sa = parse(&out[0].1);
    let (cookie, tc) = (sa.seq, sa.ts.unwrap().0);

    // Wrong acknowledgement number, wrong echoed TSval (the options the
    // cookie carries), wrong sequence number (the client ISN it covers).
    let forged = [
        seg(&c, 1001, cookie.wrapping_add(2), TcpFlags::ACK, (4250, tc)),
        seg(
            &c,
            1001,
            cookie.wrapping_add(1),
            TcpFlags::ACK,
            (4250, tc ^ 0x3f),
        ),
        seg(&c, 1501, cookie.wrapping_add(1), TcpFlags::ACK, (4250, tc)),
    ];
    for (i, f) in forged.iter().enumerate() {
        let (v, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, f, b"x", 3), now);
        assert_eq!((v, out.len()), (Verdict::Drop, 0), "forged ACK {i}");
        assert_eq!(
            p.counters().get(Counter::SynproxyCookieRejected),
            i as u64 + 1
        );
    }
    assert_eq!(p.flows().len(), 0);
    assert_eq!(p.counters().get(Counter::SynproxyAccepted), 0);

    // Past the cookie's life (two periods of 60 s) even the right one is
    // only another member's ACK.
    let late = Instant::from_secs(100 + 121);
    let ack = seg(&c, 1001, cookie.wrapping_add(1), TcpFlags::ACK, (4250, tc));
    let (v, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &ack, &[], 4), late);
    assert_eq!((v, out.len()), (Verdict::Drop, 0));
    assert_eq!(p.counters().get(Counter::VipNoFlow), 2);
    // The right one in time is taken.
    let (_, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &ack, &[], 5), now);
    assert_eq!((out.len(), out[0].0), (1, KERNEL));
    assert_eq!(p.counters().get(Counter::SynproxyAccepted), 1);
    assert_outcomes(&p);
}

/// A proxied connection whose kernel never answers the replayed SYN (no
/// listener): after the setup timeout the kernel gets an exact RST for the
/// half-open socket it may hold, the client a RST in its window, and the
/// connection is forgotten.
#[test]
fn unanswered_replay_resets_both_sides_after_the_setup_timeout() {
    let mut p = srv1(1024, Some(SynProxy::On), None);
    let c = clients_of_srv1(&p, 8, 1)[0];
    let svc = service();
    let now = Instant::from_secs(100);
    let mut syn = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
    syn.timestamps = Some((4242, 0));
    let (_, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &syn, &[], 1), now);
    let sa = parse(&out[0].1);
    let (cookie, tc) = (sa.seq, sa.ts.unwrap().0);
    let ack = seg(&c, 1001, cookie.wrapping_add(1), TcpFlags::ACK, (4250, tc));
    let (_, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &ack, &[], 2), now);
    assert_eq!((out.len(), out[0].0), (1, KERNEL));
    assert_eq!(p.flows().len(), 1);

    p.expire(now + core::time::Duration::from_millis(4_900), 64);
    assert_eq!(p.take_emitted().count(), 0, "not yet");
    p.expire(now + core::time::Duration::from_millis(5_100), 64);
    let out: Vec<_> = p.take_emitted().collect();
    assert_eq!(out.len(), 2);
    let (kernel, client): (Vec<_>, Vec<_>) = out.iter().partition(|(port, _)| *port == KERNEL);
    let k = parse(&kernel[0].1);
    assert_eq!((k.seq, k.flags, k.src), (1001, 0x04, c.ip));
    let cl = parse(&client[0].1);
    assert_eq!(
        (cl.seq, cl.ack, cl.flags),
        (cookie.wrapping_add(1), 1001, 0x14)
    );
    assert_eq!(cl.dst_mac, c.mac);
    assert_eq!(p.counters().get(Counter::SynproxyTimeout), 1);
    assert_eq!(p.counters().get(Counter::SpliceTimeout), 0);
    assert_eq!(p.flows().len(), 0);
}

/// DPR whose target is another member: the inspector (srv1) proxies the
/// SYN, and on the cookie ACK offers the connection to the target (srv2)
/// by the authenticated handoff; srv2 replays it into its kernel, which
/// answers the client directly; srv1 keeps a tombstone.
#[test]
fn dpr_connection_is_handed_to_its_target_after_the_cookie() {
    let edit = |s: &mut Service| {
        s.mode = Mode::DprMac;
        s.state = State::Stateless;
        s.syn_proxy = Some(SynProxy::On);
    };
    let mut cluster = [0, 1, 2].map(|k| member(k, 1024, edit));
    let target = |p: &Pipeline, c: &Endpoint| {
        p.tables().services[0].target.select(ClientKey {
            addr: c.ip,
            port: c.port,
        })
    };
    let c = clients_of_srv1(&cluster[0], 7, 100)
        .into_iter()
        .find(|c| target(&cluster[0], c) == Some(2))
        .unwrap();
    let svc = service();
    let now = Instant::from_secs(100);
    // The hub: every member gets every client frame.
    let hub = |cluster: &mut [Pipeline; 3], frame: &[u8]| -> [Processed; 3] {
        [0, 1, 2].map(|k| run(&mut cluster[k], WIRE, frame, now))
    };

    let mut syn = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
    syn.timestamps = Some((4242, 0));
    let [one, two, three] = hub(&mut cluster, &tcp_frame(&c, &svc, &syn, &[], 1));
    assert_eq!(one.2.len(), 1, "srv1 answers with a cookie");
    assert!(two.2.is_empty() && three.2.is_empty());
    assert_eq!((two.0, three.0), (Verdict::Drop, Verdict::Drop));
    let sa = parse(&one.2[0].1);
    let (cookie, tc) = (sa.seq, sa.ts.unwrap().0);

    // The cookie ACK with the client's first bytes: srv1 offers the
    // connection (and those bytes) to srv2; srv2 and srv3 have no flow.
    let ack = seg(&c, 1001, cookie.wrapping_add(1), TcpFlags::PSH, (4250, tc));
    let [one, two, three] = hub(&mut cluster, &tcp_frame(&c, &svc, &ack, b"hello\n", 2));
    assert_eq!(one.2.len(), 1);
    assert_eq!(one.2[0].1[..6], mac_of(1).0, "the offer, to srv2's own MAC");
    assert_eq!(cluster[0].counters().get(Counter::HandoffOffered), 1);
    assert_eq!(cluster[0].counters().get(Counter::SynproxyAccepted), 1);
    assert_eq!((two.0, three.0), (Verdict::Drop, Verdict::Drop));
    assert_eq!(cluster[1].counters().get(Counter::VipNoFlow), 1);

    // srv2 takes the offer: the client's SYN into its kernel.
    let (_, _, replay) = run(&mut cluster[1], WIRE, &one.2[0].1, now);
    assert_eq!((replay.len(), replay[0].0), (1, KERNEL));
    let rsyn = parse(&replay[0].1);
    assert_eq!(
        (rsyn.seq, rsyn.flags, rsyn.ts),
        (1000, 0x02, Some((4250, 0)))
    );
    assert_eq!(rsyn.dst_mac, mac_of(1));

    // srv2's kernel answers: ACK + the held bytes to it, the accept to srv1.
    let k_isn = 9_000_000u32;
    let (v, _, out) = run(
        &mut cluster[1],
        KERNEL,
        &kernel_synack(1, &c, k_isn, 1001, 55_000, 4250),
        now,
    );
    assert_eq!(v, Verdict::Drop);
    let kernel: Vec<_> = out.iter().filter(|(p, _)| *p == KERNEL).collect();
    let accept: Vec<_> = out.iter().filter(|(p, _)| *p == WIRE).collect();
    assert_eq!((kernel.len(), accept.len()), (1, 1));
    let k_ack = parse(&kernel[0].1);
    assert_eq!(
        (k_ack.seq, k_ack.ack, k_ack.payload),
        (1001, k_isn + 1, b"hello\n".to_vec())
    );
    run(&mut cluster[0], WIRE, &accept[0].1, now);
    assert_eq!(cluster[0].counters().get(Counter::HandoffHandedOver), 1);

    // srv2's kernel speaks to the client directly, translated.
    let mut data = tcp_header(80, c.port, k_isn + 1, Some(1007), TcpFlags::PSH);
    data.timestamps = Some((55_010, 4250));
    let (v, bytes, _) = run(
        &mut cluster[1],
        KERNEL,
        &tcp_frame(&kernel_side(1), &c, &data, b"hi\n", 0),
        now,
    );
    assert_eq!(v, Verdict::Forward(WIRE));
    let to_client = parse(&bytes);
    assert_eq!(
        (to_client.seq, to_client.ack),
        (cookie.wrapping_add(1), 1007)
    );
    // The client's next segment: srv1 ignores it (tombstone), srv2 translates.
    let next = seg(
        &c,
        1007,
        cookie.wrapping_add(4),
        TcpFlags::ACK,
        (4260, to_client.ts.unwrap().0),
    );
    let [one, two, three] = hub(&mut cluster, &tcp_frame(&c, &svc, &next, &[], 3));
    assert_eq!((one.0, three.0), (Verdict::Drop, Verdict::Drop));
    assert_eq!(cluster[0].counters().get(Counter::HandoffTombstoneHit), 1);
    assert_eq!(two.0, Verdict::Forward(KERNEL));
    assert_eq!(parse(&two.1).ack, k_isn + 4);
    for p in &cluster {
        assert_outcomes(p);
    }
}

/// `syn_proxy_half_open` above half the flow table is capped there, so
/// `auto` engages before a flood can fill the table.
#[test]
fn auto_threshold_is_capped_at_half_the_flow_table() {
    let mut p = srv1(64, None, None);
    let now = Instant::from_secs(100);
    for i in 0..2000 {
        run(&mut p, WIRE, &spoofed_syn(i), now);
    }
    assert_eq!(p.counters().get(Counter::SynproxyEngaged), 1);
    assert_eq!(
        p.flows().len(),
        33,
        "32 (half of 64) + the one that crossed"
    );
    assert_eq!(p.flows().stats().evicted_total(), 0);
}

/// A frame for the proptest: garbage, a SYN, or an ACK with a random
/// acknowledgement number, from one of a few clients, on either port.
fn frame_strategy() -> impl Strategy<Value = (bool, Vec<u8>)> {
    let garbage = (
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..120),
    );
    let segment = (
        0u32..4,
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(host, seq, ack, is_syn, payload)| {
            let c = client_endpoint(host, 40_000 + host as u16);
            let repr = if is_syn {
                tcp_header(c.port, 80, seq, None, TcpFlags::SYN)
            } else {
                tcp_header(c.port, 80, seq, Some(ack), TcpFlags::ACK)
            };
            let data = vec![b'd'; usize::from(payload % 3)];
            (false, tcp_frame(&c, &service(), &repr, &data, 0))
        });
    prop_oneof![garbage, segment]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// With the proxy on, and with `auto` engaging at 2 half-open flows,
    /// every frame still ends in exactly one counted outcome.
    #[test]
    fn every_frame_ends_in_one_outcome_with_the_proxy(
        frames in proptest::collection::vec(frame_strategy(), 1..40),
        proxy in prop_oneof![Just(Some(SynProxy::On)), Just(None)],
    ) {
        let half_open = if proxy.is_none() { Some(2) } else { None };
        let mut p = srv1(16, proxy, half_open);
        for (i, (from_kernel, bytes)) in frames.iter().enumerate() {
            let mut f = HeapFrame::from_bytes(bytes);
            let port = if *from_kernel { KERNEL } else { WIRE };
            let _ = p.process(port, &mut f, Instant::from_millis(100_000 + i as u64));
            let _ = p.take_emitted().count();
            prop_assert_eq!(p.counters().outcomes(), i as u64 + 1);
        }
    }
}

/// A pin applies to connections the SYN proxy replays too: in `local` mode,
/// where srv1 would serve the connection itself, the cookie ACK of a pinned
/// client is offered to the pinned member (srv3).
#[test]
fn a_pinned_client_is_offered_to_its_member_after_the_cookie() {
    let mut p = member(0, 1024, |s| s.syn_proxy = Some(SynProxy::On));
    let c = clients_of_srv1(&p, 7, 1)[0];
    let now = Instant::from_secs(100);
    assert!(p.pin_clients(c.ip, 32, 3, 60, now));
    let svc = service();
    let mut syn = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
    syn.timestamps = Some((4242, 0));
    let (_, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &syn, &[], 1), now);
    let sa = parse(&out[0].1);
    let ack = seg(
        &c,
        1001,
        sa.seq.wrapping_add(1),
        TcpFlags::ACK,
        (4250, sa.ts.unwrap().0),
    );
    let (_, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &ack, &[], 2), now);
    assert_eq!(out.len(), 1, "one offer");
    assert_eq!(out[0].1[..6], mac_of(2).0, "the offer, to srv3's own MAC");
    assert_eq!(p.counters().get(Counter::PlacedPinned), 1);
    assert_eq!(p.counters().get(Counter::HandoffOffered), 1);
}
