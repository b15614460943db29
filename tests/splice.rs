//! L7 splicing through the pipeline, handover to the inspector's own kernel:
//! the cookie handshake, the replay into the kernel, and the exact rewritten
//! headers of the spliced flow in both directions.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use shoal_config::{Dispatch, Mode};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::{Frame, PortId};
use shoal_dataplane::pipeline::{Pipeline, Tables, Verdict, KERNEL, WIRE};
use shoal_dataplane::traffic::{client_endpoint, tcp_frame, tcp_header, Endpoint};
use shoal_select::ClientKey;
use shoal_wire::time::Instant;
use shoal_wire::{EthernetAddress, EthernetFrame, Ipv4Packet, TcpFlags, TcpPacket};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const SRV1_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b]);
const REQUEST: &[u8] = b"GET /whoami HTTP/1.1\r\nHost: 198.18.0.100\r\nUser-Agent: test\r\n\r\n";

fn pipeline() -> Pipeline {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).unwrap();
    cfg.services[0].mode = Mode::Splice;
    cfg.services[0].dispatch = Some(Dispatch::default());
    let tables = Arc::new(Tables::from_config(&cfg, 1).unwrap());
    let mut p = Pipeline::new(
        tables,
        1024,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    p.set_cookie_secret([7; 32]);
    p
}

/// Member `member`'s pipeline for a splice service with `dispatch`, able to
/// hand connections to the others (a shared test cluster key).
fn member_pipeline(member: &str, dispatch: Dispatch) -> Pipeline {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).unwrap();
    member.clone_into(&mut cfg.cluster.local_member);
    cfg.services[0].mode = Mode::Splice;
    cfg.services[0].dispatch = Some(dispatch);
    let tables = Arc::new(Tables::from_config(&cfg, 1).unwrap());
    let mut p = Pipeline::new(
        tables,
        1024,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    p.set_cookie_secret([member.len() as u8 ^ member.as_bytes()[3]; 32]);
    p.enable_handoff(
        shoal_l7::handoff::ClusterKey::from_bytes(&[9; 32]).unwrap(),
        1,
        1_000_000,
    );
    p
}

/// The splice service as clients address it: cluster MAC, VIP, port 80.
fn service() -> Endpoint {
    Endpoint {
        mac: EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]),
        ip: VIP,
        port: 80,
    }
}

/// A client srv1 inspects.
fn client(p: &Pipeline) -> Endpoint {
    (40_000..41_000)
        .map(|port| client_endpoint(4, port))
        .find(|c| {
            p.tables().services[0].selector.select(ClientKey {
                addr: c.ip,
                port: c.port,
            }) == Some(1)
        })
        .unwrap()
}

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
    dst_mac: [u8; 6],
    src: Ipv4Addr,
}

fn parse(frame: &[u8]) -> Seg {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
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
        dst_mac: eth.dst_addr().0,
        src: ip.src_addr(),
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

#[test]
fn cookie_handshake_replay_and_both_directions_of_a_spliced_flow() {
    let mut p = pipeline();
    let c = client(&p);
    let svc = service();
    let now = Instant::from_secs(100);

    // 1. SYN -> SYN-ACK with a cookie, no state.
    let mut syn = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
    syn.timestamps = Some((4242, 0));
    let (v, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &syn, &[], 1), now);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, WIRE);
    let synack = parse(&out[0].1);
    assert_eq!(synack.dst_mac, c.mac.0);
    assert_eq!(synack.src, VIP);
    assert_eq!(synack.flags, 0x12);
    assert_eq!(synack.ack, 1001);
    assert_eq!(
        (synack.mss, synack.ws, synack.sack),
        (Some(1460), Some(7), true)
    );
    let (tc, echoed) = synack.ts.unwrap();
    assert_eq!(echoed, 4242);
    assert_eq!(p.flows().len(), 0, "a SYN cookie keeps no state");
    let cookie = synack.seq;

    // A forged ACK is refused.
    let mut forged = tcp_header(
        c.port,
        80,
        1001,
        Some(cookie.wrapping_add(99)),
        TcpFlags::ACK,
    );
    forged.timestamps = Some((4243, tc));
    let (v, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &forged, &[], 2), now);
    assert_eq!((v, out.len()), (Verdict::Drop, 0));
    assert_eq!(p.counters().get(Counter::SpliceCookieRejected), 1);

    // 2. ACK + request -> the SYN replayed into the kernel.
    let req = after_cookie(&c, 1001, cookie, (4250, tc));
    let (v, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &req, REQUEST, 3), now);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, KERNEL);
    let replayed = parse(&out[0].1);
    assert_eq!(replayed.dst_mac, SRV1_MAC.0, "to the TAP's MAC");
    assert_eq!(replayed.src, c.ip);
    assert_eq!((replayed.seq, replayed.flags), (1000, 0x02));
    assert_eq!(
        (replayed.mss, replayed.ws, replayed.sack),
        (Some(1460), Some(7), true)
    );
    assert_eq!(replayed.ts, Some((4250, 0)));

    // 3. The kernel's SYN-ACK (wscale 10, its own ISN and clock) is taken;
    //    the kernel gets ACK + request.
    let k_isn = 5_000_000u32;
    let tk = 777_000u32;
    let kernel_side = Endpoint {
        mac: SRV1_MAC,
        ip: VIP,
        port: 80,
    };
    let mut ksa = tcp_header(80, c.port, k_isn, Some(1001), TcpFlags::SYN);
    ksa.window_len = 65_160;
    ksa.window_scale = Some(10);
    ksa.timestamps = Some((tk, 4250));
    let (v, _, out) = run(
        &mut p,
        KERNEL,
        &tcp_frame(&kernel_side, &c, &ksa, &[], 0),
        now,
    );
    assert_eq!(
        v,
        Verdict::Drop,
        "the kernel's SYN-ACK never reaches the client"
    );
    assert_eq!(out.len(), 1);
    let ack = parse(&out[0].1);
    assert_eq!(out[0].0, KERNEL);
    assert_eq!((ack.seq, ack.ack, ack.flags), (1001, k_isn + 1, 0x18));
    assert_eq!(ack.ts, Some((4250, tk)));
    assert_eq!(ack.payload, REQUEST);
    assert_eq!(p.counters().get(Counter::SpliceSpliced), 1);
    // url-hash (the default policy) chose by the request's directory, once.
    assert_eq!(p.counters().get(Counter::DispatchDirectory), 1);

    // 4. Kernel -> client: seq -= delta, TSval -= offset, window 100 << 10 >> 7.
    let sent_ts = 100_000u32; // the inspector's clock at `now`
    let body = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsrv1\n";
    let mut data = tcp_header(
        80,
        c.port,
        k_isn + 1,
        Some(1001 + REQUEST.len() as u32),
        TcpFlags::PSH,
    );
    data.window_len = 100;
    data.timestamps = Some((tk + 5, 4250));
    let (v, bytes, out) = run(
        &mut p,
        KERNEL,
        &tcp_frame(&kernel_side, &c, &data, body, 0),
        now,
    );
    assert_eq!((v, out.len()), (Verdict::Forward(WIRE), 0));
    let to_client = parse(&bytes);
    assert_eq!(to_client.seq, cookie.wrapping_add(1));
    assert_eq!(to_client.ack, 1001 + REQUEST.len() as u32);
    assert_eq!(to_client.window, 800);
    assert_eq!(to_client.ts, Some((sent_ts + 5, 4250)));
    assert_eq!(to_client.payload, body);

    // 5. Client -> kernel: ack += delta, TSecr += offset.
    let mut cack = tcp_header(
        c.port,
        80,
        1001 + REQUEST.len() as u32,
        Some(cookie.wrapping_add(1 + body.len() as u32)),
        TcpFlags::ACK,
    );
    cack.timestamps = Some((4260, sent_ts + 5));
    // A SACK block (as if a later segment arrived first), in the client's view.
    let sack = (cookie.wrapping_add(1000), cookie.wrapping_add(2000));
    cack.sack_ranges[0] = Some(sack);
    let (v, bytes, _) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &cack, &[], 4), now);
    assert_eq!(v, Verdict::Forward(KERNEL));
    let to_kernel = parse(&bytes);
    assert_eq!(to_kernel.dst_mac, SRV1_MAC.0);
    assert_eq!(to_kernel.seq, 1001 + REQUEST.len() as u32);
    assert_eq!(to_kernel.ack, k_isn + 1 + body.len() as u32);
    assert_eq!(to_kernel.ts, Some((4260, tk + 5)));
    let delta = k_isn.wrapping_sub(cookie);
    let eth = EthernetFrame::new_checked(&bytes[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(
        tcp.sack_ranges()[0],
        Some((sack.0.wrapping_add(delta), sack.1.wrapping_add(delta))),
        "SACK blocks move into the kernel's space"
    );
    assert_eq!(
        p.counters().outcomes(),
        p.counters().get(Counter::WireRx) + p.counters().get(Counter::KernelRx)
    );
}

#[test]
fn garbage_requests_get_the_configured_answer() {
    let mut p = pipeline();
    let c = client(&p);
    let svc = service();
    let now = Instant::from_secs(100);
    let (cookie, tc) = handshake(&mut p, &c, &svc, now);
    let req = after_cookie(&c, 1001, cookie, (2, tc));
    let (_, _, out) = run(
        &mut p,
        WIRE,
        &tcp_frame(&c, &svc, &req, b"\x16\x03\x01\x02\x00garbage\r\n\r\n", 2),
        now,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, WIRE);
    let answer = parse(&out[0].1);
    assert!(
        answer.payload.starts_with(b"HTTP/1.1 400 "),
        "{:?}",
        String::from_utf8_lossy(&answer.payload)
    );
    assert_eq!(answer.flags & 0x01, 0x01, "FIN with the answer");
    assert_eq!(p.counters().get(Counter::SpliceBadRequest), 1);
    assert_eq!(p.flows().len(), 0);
}

/// Handover to another member: srv1 inspects, the dispatch rule names srv2;
/// srv1 offers the connection, srv2 replays it into its kernel and accepts,
/// srv1 keeps a tombstone; the client's packets are then served by srv2.
#[test]
fn handoff_to_another_member_over_the_wire() {
    let dispatch = shoal_e2e::all_to("srv2");
    let (mut srv1, mut srv2) = (
        member_pipeline("srv1", dispatch.clone()),
        member_pipeline("srv2", dispatch),
    );
    let c = client(&srv1);
    let svc = service();
    let srv2_mac = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0c]);
    let now = Instant::from_secs(100);

    // Handshake with srv1 (srv2 sees the same frames and stays out of it).
    let mut syn = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
    syn.timestamps = Some((4242, 0));
    let syn = tcp_frame(&c, &svc, &syn, &[], 1);
    let (_, _, out) = run(&mut srv1, WIRE, &syn, now);
    let (v2, _, out2) = run(&mut srv2, WIRE, &syn, now);
    assert_eq!((v2, out2.len()), (Verdict::Drop, 0));
    let sa = parse(&out[0].1);
    let (tc, _) = sa.ts.unwrap();
    let mut req = tcp_header(
        c.port,
        80,
        1001,
        Some(sa.seq.wrapping_add(1)),
        TcpFlags::PSH,
    );
    req.timestamps = Some((4250, tc));
    let req = tcp_frame(&c, &svc, &req, REQUEST, 2);
    let (_, _, offer) = run(&mut srv1, WIRE, &req, now);
    let (v2, _, _) = run(&mut srv2, WIRE, &req, now);
    assert_eq!(v2, Verdict::Drop, "srv2 has no flow yet");
    // srv1 sent the offer: one UDP datagram to srv2's own address and MAC.
    assert_eq!(offer.len(), 1);
    assert_eq!(offer[0].0, WIRE);
    assert_eq!(offer[0].1[..6], srv2_mac.0);
    assert_eq!(srv1.counters().get(Counter::HandoffOffered), 1);
    assert_eq!(srv1.counters().get(Counter::DispatchRule), 1);

    // srv2 takes the offer and replays the SYN into its kernel.
    let (v, _, replay) = run(&mut srv2, WIRE, &offer[0].1, now);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(srv2.counters().get(Counter::HandoffReceived), 1);
    assert_eq!(replay.len(), 1);
    assert_eq!(replay[0].0, KERNEL);
    let rsyn = parse(&replay[0].1);
    assert_eq!(
        (rsyn.seq, rsyn.flags, rsyn.ts),
        (1000, 0x02, Some((4250, 0)))
    );
    assert_eq!(rsyn.dst_mac, srv2_mac.0);

    // srv2's kernel answers; srv2 sends ACK + request to it and the Accept to srv1.
    let k_isn = 9_000_000u32;
    let kernel_side = Endpoint {
        mac: srv2_mac,
        ip: VIP,
        port: 80,
    };
    let mut ksa = tcp_header(80, c.port, k_isn, Some(1001), TcpFlags::SYN);
    ksa.window_scale = Some(7);
    ksa.timestamps = Some((55_000, 4250));
    let (v, _, out) = run(
        &mut srv2,
        KERNEL,
        &tcp_frame(&kernel_side, &c, &ksa, &[], 0),
        now,
    );
    assert_eq!(v, Verdict::Drop);
    let to_kernel: Vec<_> = out.iter().filter(|(p, _)| *p == KERNEL).collect();
    let accept: Vec<_> = out.iter().filter(|(p, _)| *p == WIRE).collect();
    assert_eq!(to_kernel.len(), 1);
    assert_eq!(parse(&to_kernel[0].1).payload, REQUEST);
    assert_eq!(accept.len(), 1);
    assert_eq!(accept[0].1[..6], SRV1_MAC.0);
    let (v, _, _) = run(&mut srv1, WIRE, &accept[0].1, now);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(srv1.counters().get(Counter::HandoffHandedOver), 1);

    // The client's next ACK: srv1 ignores it (tombstone), srv2 translates it.
    let mut cack = tcp_header(
        c.port,
        80,
        1001 + REQUEST.len() as u32,
        Some(sa.seq.wrapping_add(1)),
        TcpFlags::ACK,
    );
    cack.timestamps = Some((4260, tc));
    let cack = tcp_frame(&c, &svc, &cack, &[], 3);
    let (v1, _, _) = run(&mut srv1, WIRE, &cack, now);
    assert_eq!(v1, Verdict::Drop);
    assert_eq!(srv1.counters().get(Counter::HandoffTombstoneHit), 1);
    let (v2, bytes, _) = run(&mut srv2, WIRE, &cack, now);
    assert_eq!(v2, Verdict::Forward(KERNEL));
    let k = parse(&bytes);
    assert_eq!(k.ack, k_isn + 1);
    assert_eq!(k.dst_mac, srv2_mac.0);
    // The same offer datagram again (a replay): refused and counted.
    let (v, _, out) = run(&mut srv2, WIRE, &offer[0].1, now);
    assert_eq!((v, out.len()), (Verdict::Drop, 0));
    assert_eq!(srv2.counters().get(Counter::HandoffRejected), 1);
    assert_eq!(srv2.counters().get(Counter::HandoffRejectedReplayed), 1);
    assert_eq!(srv2.counters().get(Counter::HandoffReceived), 1);
    // A forged handoff datagram is counted and changes nothing.
    let mut forged = offer[0].1.clone();
    let n = forged.len();
    forged[n - 1] ^= 0xff;
    let (v, _, out) = run(&mut srv2, WIRE, &forged, now);
    assert_eq!((v, out.len()), (Verdict::Drop, 0));
    assert_eq!(srv2.counters().get(Counter::HandoffRejected), 2);
    assert_eq!(srv2.counters().get(Counter::HandoffRejectedBadMac), 1);
    // The offer replayed 20 s later: stale before it is even a replay.
    let later = now + std::time::Duration::from_secs(20);
    let (v, _, out) = run(&mut srv2, WIRE, &offer[0].1, later);
    assert_eq!((v, out.len()), (Verdict::Drop, 0));
    assert_eq!(srv2.counters().get(Counter::HandoffRejectedClockSkew), 1);
    // The offer (meant for srv2) shown to srv3: not for it.
    let mut srv3 = member_pipeline("srv3", Dispatch::default());
    let mut to_srv3 = offer[0].1.clone();
    to_srv3[..6].copy_from_slice(&[0x02, 0x00, 0xc6, 0x12, 0x00, 0x0d]);
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut to_srv3[14..]);
        ip.set_dst_addr(Ipv4Addr::new(198, 18, 0, 13));
        ip.fill_checksum();
    }
    let (v, _, out) = run(&mut srv3, WIRE, &to_srv3, now);
    assert_eq!((v, out.len()), (Verdict::Drop, 0));
    assert_eq!(srv3.counters().get(Counter::HandoffRejectedNotForUs), 1);
    assert_eq!(srv3.counters().get(Counter::HandoffReceived), 0);
}

/// Request segments out of order, retransmitted and conflicting: each is
/// counted by its reassembly outcome, and the request is replayed into the
/// kernel only once its head is complete and in order.
#[test]
fn request_segments_are_counted_by_reassembly_outcome() {
    let mut p = pipeline();
    let c = client(&p);
    let svc = service();
    let now = Instant::from_secs(100);
    let (cookie, tc) = handshake(&mut p, &c, &svc, now);
    let seg = |seq: u32| after_cookie(&c, seq, cookie, (2, tc));
    let (first, rest) = REQUEST.split_at(10);
    let after = 1001 + 10;
    let count = |p: &Pipeline| {
        [
            Counter::RequestSegmentAdvanced,
            Counter::RequestSegmentOutOfOrder,
            Counter::RequestSegmentDuplicate,
            Counter::RequestSegmentConflict,
        ]
        .map(|k| p.counters().get(k))
    };

    // The handshake's ACK alone opens the setup slot.
    let mut ack = seg(1001);
    ack.flags = TcpFlags::ACK;
    run(&mut p, WIRE, &tcp_frame(&c, &svc, &ack, &[], 2), now);
    assert_eq!(p.counters().get(Counter::SpliceHandshake), 1);
    assert_eq!(
        count(&p),
        [0, 0, 0, 0],
        "an empty ACK is no request segment"
    );
    // The tail first: stored beyond the hole, the client gets a duplicate ACK.
    let (_, _, out) = run(
        &mut p,
        WIRE,
        &tcp_frame(&c, &svc, &seg(after), rest, 2),
        now,
    );
    assert!(
        out.iter().all(|(port, _)| *port == WIRE),
        "nothing to the kernel yet"
    );
    assert_eq!(count(&p), [0, 1, 0, 0]);
    // The tail again: nothing new.
    run(
        &mut p,
        WIRE,
        &tcp_frame(&c, &svc, &seg(after), rest, 3),
        now,
    );
    assert_eq!(count(&p), [0, 1, 1, 0]);
    // The tail with other bytes: refused whole.
    let other = vec![b'x'; rest.len()];
    run(
        &mut p,
        WIRE,
        &tcp_frame(&c, &svc, &seg(after), &other, 4),
        now,
    );
    assert_eq!(count(&p), [0, 1, 1, 1]);
    // The head's start closes the hole: the head is complete, the SYN is
    // replayed into the kernel.
    let (_, _, out) = run(
        &mut p,
        WIRE,
        &tcp_frame(&c, &svc, &seg(1001), first, 5),
        now,
    );
    assert_eq!(count(&p), [1, 1, 1, 1]);
    let to_kernel: Vec<_> = out.iter().filter(|(port, _)| *port == KERNEL).collect();
    assert_eq!(to_kernel.len(), 1);
    let replayed = parse(&to_kernel[0].1);
    assert_eq!((replayed.seq, replayed.flags), (1000, 0x02));
}

/// A client segment (PSH, sequence `seq`) that acknowledges the cookie ISN
/// `cookie`, with timestamps `ts` (TSval, TSecr).
fn after_cookie(c: &Endpoint, seq: u32, cookie: u32, ts: (u32, u32)) -> shoal_wire::TcpRepr {
    let mut h = tcp_header(c.port, 80, seq, Some(cookie.wrapping_add(1)), TcpFlags::PSH);
    h.timestamps = Some(ts);
    h
}

/// Completes a cookie handshake with `p`; returns (cookie ISN, inspector TSval).
fn handshake(p: &mut Pipeline, c: &Endpoint, svc: &Endpoint, now: Instant) -> (u32, u32) {
    let mut syn = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
    syn.timestamps = Some((1, 0));
    let (_, _, out) = run(p, WIRE, &tcp_frame(c, svc, &syn, &[], 1), now);
    let sa = parse(&out[0].1);
    (sa.seq, sa.ts.unwrap().0)
}

#[test]
fn oversized_and_slow_requests_get_431_and_408() {
    let svc = service();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).unwrap();
    cfg.services[0].mode = Mode::Splice;
    cfg.services[0].dispatch = Some(Dispatch {
        max_request_bytes: 512,
        request_timeout_ms: 1000,
        ..Dispatch::default()
    });
    let tables = Arc::new(Tables::from_config(&cfg, 1).unwrap());
    let mut p = Pipeline::new(
        tables,
        1024,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    let c = client(&p);
    let now = Instant::from_secs(100);

    // Oversized: 600 bytes of headers and no end of head in a 512-byte buffer.
    let (cookie, tc) = handshake(&mut p, &c, &svc, now);
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    head.resize(600, b'a');
    let seg = after_cookie(&c, 1001, cookie, (2, tc));
    let (_, _, out) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &seg, &head, 2), now);
    let answer = parse(&out.last().unwrap().1);
    assert!(
        answer.payload.starts_with(b"HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&answer.payload)
    );
    assert_eq!(p.flows().len(), 0);

    // Slow: half a head, then nothing; at the request timeout, 408 and close.
    let c2 = Endpoint {
        port: c.port + 1,
        ..c
    };
    let c2 = (c2.port..c2.port + 500)
        .map(|port| Endpoint { port, ..c2 })
        .find(|e| {
            p.tables().services[0].selector.select(ClientKey {
                addr: e.ip,
                port: e.port,
            }) == Some(1)
        })
        .unwrap();
    let (cookie, tc) = handshake(&mut p, &c2, &svc, now);
    let seg = after_cookie(&c2, 1001, cookie, (2, tc));
    let (_, _, out) = run(
        &mut p,
        WIRE,
        &tcp_frame(&c2, &svc, &seg, b"GET / HTTP/1.1\r\nHo", 3),
        now,
    );
    assert_eq!(
        parse(&out[0].1).ack,
        1001 + 18,
        "partial head ACKed by the dataplane"
    );
    p.expire(now + std::time::Duration::from_millis(999), 64);
    assert_eq!(p.take_emitted().count(), 0);
    p.expire(now + std::time::Duration::from_millis(1001), 64);
    let out: Vec<_> = p.take_emitted().collect();
    assert_eq!(out.len(), 1);
    assert!(parse(&out[0].1).payload.starts_with(b"HTTP/1.1 408 "));
    assert_eq!(p.counters().get(Counter::SpliceTimeout), 1);
    assert_eq!(p.flows().len(), 0);
}

/// srv1 and srv2 in CARISMA rare mode with rules: `/here` is served by
/// srv1, everything else by srv2.
fn rare_members() -> (Pipeline, Pipeline) {
    use shoal_config::{DispatchPolicy, DispatchRule, HandoffMode};
    let dispatch = Dispatch {
        policy: DispatchPolicy::Rules,
        handoff: HandoffMode::Rare,
        rules: vec![
            DispatchRule {
                host: None,
                prefix: "/here".into(),
                member: "srv1".into(),
            },
            DispatchRule {
                host: None,
                prefix: "/".into(),
                member: "srv2".into(),
            },
        ],
        ..Dispatch::default()
    };
    (
        member_pipeline("srv1", dispatch.clone()),
        member_pipeline("srv2", dispatch),
    )
}

/// CARISMA rare: the inspector's kernel does the handshake; a request that
/// belongs here stays (its held bytes go to this kernel), one that belongs
/// elsewhere moves: an exact RST drops this kernel's socket and the
/// connection is handed over, the new kernel's sequence space translated
/// onto the first kernel's.
#[test]
fn rare_mode_keeps_or_moves_after_the_kernels_handshake() {
    let (mut srv1, mut srv2) = rare_members();
    let svc = service();
    let srv2_mac = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0c]);
    let k1_side = Endpoint {
        mac: SRV1_MAC,
        ip: VIP,
        port: 80,
    };
    let now = Instant::from_secs(100);
    let c = client(&srv1);
    let k1 = 7_000_000u32;

    // The handshake goes through srv1's kernel untouched.
    let mut syn = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
    syn.timestamps = Some((4242, 0));
    let (v, _, _) = run(&mut srv1, WIRE, &tcp_frame(&c, &svc, &syn, &[], 1), now);
    assert_eq!(v, Verdict::Forward(KERNEL));
    let mut sa = tcp_header(80, c.port, k1, Some(1001), TcpFlags::SYN);
    sa.window_scale = Some(7);
    sa.timestamps = Some((60_000, 4242));
    let sa_frame = tcp_frame(&k1_side, &c, &sa, &[], 0);
    let (v, bytes, _) = run(&mut srv1, KERNEL, &sa_frame, now);
    assert_eq!((v, bytes), (Verdict::Forward(WIRE), sa_frame));
    let mut ack = tcp_header(c.port, 80, 1001, Some(k1 + 1), TcpFlags::ACK);
    ack.timestamps = Some((4243, 60_000));
    let (v, _, _) = run(&mut srv1, WIRE, &tcp_frame(&c, &svc, &ack, &[], 2), now);
    assert_eq!(v, Verdict::Forward(KERNEL));

    // The request belongs to srv2: RST into srv1's kernel, offer to srv2.
    let request = b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut req = tcp_header(c.port, 80, 1001, Some(k1 + 1), TcpFlags::PSH);
    req.timestamps = Some((4244, 60_000));
    let req = tcp_frame(&c, &svc, &req, request, 3);
    let (v, _, out) = run(&mut srv1, WIRE, &req, now);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(srv1.counters().get(Counter::RareMoved), 1);
    let rst = out.iter().find(|(p, _)| *p == KERNEL).unwrap();
    let rst = parse(&rst.1);
    assert_eq!(
        (rst.seq, rst.flags, rst.ack),
        (1001, 0x04, 0),
        "exact RST: seq = rcv_nxt, no ACK"
    );
    let offer = out.iter().find(|(p, _)| *p == WIRE).unwrap();
    assert_eq!(offer.1[..6], srv2_mac.0);

    // srv2 replays it; its kernel picks K2; srv2 accepts.
    let (_, _, replay) = run(&mut srv2, WIRE, &offer.1, now);
    let rsyn = parse(&replay[0].1);
    assert_eq!((rsyn.seq, rsyn.ts), (1000, Some((4244, 0))));
    let k2 = 8_000_000u32;
    let k2_side = Endpoint {
        mac: srv2_mac,
        ip: VIP,
        port: 80,
    };
    let mut sa2 = tcp_header(80, c.port, k2, Some(1001), TcpFlags::SYN);
    sa2.window_scale = Some(7);
    sa2.timestamps = Some((90_000, 4244));
    let (_, _, out) = run(
        &mut srv2,
        KERNEL,
        &tcp_frame(&k2_side, &c, &sa2, &[], 0),
        now,
    );
    let accept = out.iter().find(|(p, _)| *p == WIRE).unwrap();
    run(&mut srv1, WIRE, &accept.1, now);
    assert_eq!(srv1.counters().get(Counter::HandoffHandedOver), 1);

    // srv2's kernel answers; the client sees srv1's kernel's sequence space.
    let mut data = tcp_header(
        80,
        c.port,
        k2 + 1,
        Some(1001 + request.len() as u32),
        TcpFlags::PSH,
    );
    data.timestamps = Some((90_010, 4244));
    let (v, bytes, _) = run(
        &mut srv2,
        KERNEL,
        &tcp_frame(&k2_side, &c, &data, b"hello", 0),
        now,
    );
    assert_eq!(v, Verdict::Forward(WIRE));
    let seg = parse(&bytes);
    assert_eq!(seg.seq, k1 + 1);
    assert_eq!(
        seg.ts,
        Some((60_010, 4244)),
        "TSval continues srv1's kernel clock"
    );

    // A request for /here stays with srv1's kernel.
    let c2 = (c.port + 1..c.port + 500)
        .map(|port| Endpoint { port, ..c })
        .find(|e| {
            srv1.tables().services[0].selector.select(ClientKey {
                addr: e.ip,
                port: e.port,
            }) == Some(1)
        })
        .unwrap();
    let mut syn = tcp_header(c2.port, 80, 5000, None, TcpFlags::SYN);
    syn.timestamps = Some((1, 0));
    run(&mut srv1, WIRE, &tcp_frame(&c2, &svc, &syn, &[], 1), now);
    let mut sa = tcp_header(80, c2.port, k1, Some(5001), TcpFlags::SYN);
    sa.timestamps = Some((61_000, 1));
    run(
        &mut srv1,
        KERNEL,
        &tcp_frame(&k1_side, &c2, &sa, &[], 0),
        now,
    );
    let here = b"GET /here HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut req = tcp_header(c2.port, 80, 5001, Some(k1 + 1), TcpFlags::PSH);
    req.timestamps = Some((2, 61_000));
    let (v, _, out) = run(&mut srv1, WIRE, &tcp_frame(&c2, &svc, &req, here, 2), now);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(out.len(), 1);
    let to_kernel = parse(&out[0].1);
    assert_eq!(
        (to_kernel.seq, to_kernel.ack, to_kernel.payload.as_slice()),
        (5001, k1 + 1, &here[..])
    );
    assert_eq!(srv1.counters().get(Counter::RareKept), 1);
    // Later segments go straight to the kernel.
    let mut next = tcp_header(
        c2.port,
        80,
        5001 + here.len() as u32,
        Some(k1 + 1),
        TcpFlags::ACK,
    );
    next.timestamps = Some((3, 61_000));
    let (v, _, _) = run(&mut srv1, WIRE, &tcp_frame(&c2, &svc, &next, &[], 3), now);
    assert_eq!(v, Verdict::Forward(KERNEL));
}

/// The flow key of client `c`'s connection to the service.
fn key_of(c: &Endpoint) -> shoal_dataplane::flow::FlowKey {
    shoal_dataplane::flow::FlowKey::new(c.ip, c.port, VIP, 80, 6)
}

/// srv1 and srv2 of a cluster whose dispatch sends every request to srv2.
fn to_srv2() -> (Pipeline, Pipeline) {
    let dispatch = shoal_e2e::all_to("srv2");
    (
        member_pipeline("srv1", dispatch.clone()),
        member_pipeline("srv2", dispatch),
    )
}

/// Client `c` opens a connection with ISN `isn` (TSval `ts` from then on)
/// and sends REQUEST; srv1 inspects and offers it to srv2, which replays
/// it into its kernel. Returns the cookie ISN, srv1's TSval and the frames
/// srv2 sent its kernel (the replayed SYN).
fn offered_to_srv2(
    srv1: &mut Pipeline,
    srv2: &mut Pipeline,
    c: &Endpoint,
    isn: u32,
    ts: u32,
    now: Instant,
) -> (u32, u32, Vec<(PortId, Vec<u8>)>) {
    let svc = service();
    let mut syn = tcp_header(c.port, 80, isn, None, TcpFlags::SYN);
    syn.timestamps = Some((ts, 0));
    let syn = tcp_frame(c, &svc, &syn, &[], 1);
    let (_, _, out) = run(srv1, WIRE, &syn, now);
    assert_eq!(run(srv2, WIRE, &syn, now).0, Verdict::Drop);
    let sa = parse(&out[0].1);
    assert_eq!((sa.flags, sa.ack), (0x12, isn.wrapping_add(1)));
    let (tc, _) = sa.ts.unwrap();
    let mut req = tcp_header(
        c.port,
        80,
        isn.wrapping_add(1),
        Some(sa.seq.wrapping_add(1)),
        TcpFlags::PSH,
    );
    req.timestamps = Some((ts + 1, tc));
    let req = tcp_frame(c, &svc, &req, REQUEST, 2);
    let (_, _, offer) = run(srv1, WIRE, &req, now);
    assert_eq!(run(srv2, WIRE, &req, now).0, Verdict::Drop);
    assert_eq!(offer.len(), 1);
    let (v, _, replay) = run(srv2, WIRE, &offer[0].1, now);
    assert_eq!(v, Verdict::Drop);
    (sa.seq, tc, replay)
}

/// srv2's kernel answers the replayed SYN of `c`'s connection (client ISN
/// `isn`) with its SYN-ACK (ISN `k_isn`); srv2 accepts, srv1 takes the accept.
fn srv2_kernel_accepts(
    srv1: &mut Pipeline,
    srv2: &mut Pipeline,
    c: &Endpoint,
    isn: u32,
    k_isn: u32,
    now: Instant,
) {
    let kernel_side = Endpoint {
        mac: SRV2_MAC,
        ip: VIP,
        port: 80,
    };
    let mut ksa = tcp_header(80, c.port, k_isn, Some(isn.wrapping_add(1)), TcpFlags::SYN);
    ksa.window_scale = Some(7);
    let (v, _, out) = run(srv2, KERNEL, &tcp_frame(&kernel_side, c, &ksa, &[], 0), now);
    assert_eq!(v, Verdict::Drop);
    let accept = out.iter().find(|(p, _)| *p == WIRE).unwrap();
    let handed = srv1.counters().get(Counter::HandoffHandedOver);
    run(srv1, WIRE, &accept.1, now);
    assert_eq!(srv1.counters().get(Counter::HandoffHandedOver), handed + 1);
}

const SRV2_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0c]);

/// Issue 11, the other half: after a connection handed over to srv2 closed
/// (srv2's server first, so the client holds no TIME-WAIT but srv2's kernel
/// does), the client reuses the 4-tuple with a new ISN. srv1's tombstone
/// gives way and srv1 answers the SYN with a new cookie; srv2 drops its
/// spliced flow; the new connection is handed over again, and srv2's
/// kernel, which still holds the old socket and answers the replayed SYN
/// with an ACK of it, gets an exact RST for it and the SYN again. The old
/// connection's own SYN, retransmitted before, changed nothing. Nothing is
/// ever sent to the client but the new cookie.
#[test]
fn a_reused_tuple_after_a_handoff_is_a_new_connection_on_every_member() {
    let (mut srv1, mut srv2) = to_srv2();
    let c = client(&srv1);
    let svc = service();
    let key = key_of(&c);
    let now = Instant::from_secs(100);
    let (k1, k2) = (9_000_000u32, 4_000_000u32);
    let (cookie, tc, replay) = offered_to_srv2(&mut srv1, &mut srv2, &c, 1000, 4242, now);
    assert_eq!(parse(&replay[0].1).seq, 1000);
    srv2_kernel_accepts(&mut srv1, &mut srv2, &c, 1000, k1, now);

    // The first SYN again (a late retransmission): the tombstone ignores it,
    // srv2's kernel gets it translated; counted, no new state, no reply.
    let mut syn = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
    syn.timestamps = Some((4242, 0));
    let syn = tcp_frame(&c, &svc, &syn, &[], 3);
    let (v1, _, out1) = run(&mut srv1, WIRE, &syn, now);
    let (v2, _, out2) = run(&mut srv2, WIRE, &syn, now);
    assert_eq!(
        (v1, out1.len(), v2, out2.len()),
        (Verdict::Drop, 0, Verdict::Forward(KERNEL), 0)
    );
    for p in [&srv1, &srv2] {
        assert_eq!(p.counters().get(Counter::SynRetransmit), 1);
        assert_eq!(p.counters().get(Counter::TupleReused), 0);
        assert_eq!(p.flows().len(), 1);
    }
    assert_eq!(srv1.counters().get(Counter::HandoffTombstoneHit), 1);

    // The response with the server's FIN, the client's FIN, the last ACK:
    // srv2's kernel is in TIME-WAIT (rcv_nxt = the client's FIN + 1).
    let kernel_side = Endpoint {
        mac: SRV2_MAC,
        ip: VIP,
        port: 80,
    };
    let body = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let after_req = 1001 + REQUEST.len() as u32;
    let fin = tcp_header(
        80,
        c.port,
        k1 + 1,
        Some(after_req),
        TcpFlags::PSH | TcpFlags::FIN,
    );
    let (v, _, _) = run(
        &mut srv2,
        KERNEL,
        &tcp_frame(&kernel_side, &c, &fin, body, 0),
        now,
    );
    assert_eq!(v, Verdict::Forward(WIRE));
    let server_fin_end = cookie.wrapping_add(2 + body.len() as u32);
    let mut cfin = tcp_header(c.port, 80, after_req, Some(server_fin_end), TcpFlags::FIN);
    cfin.timestamps = Some((4300, tc));
    let cfin = tcp_frame(&c, &svc, &cfin, &[], 4);
    assert_eq!(run(&mut srv1, WIRE, &cfin, now).0, Verdict::Drop);
    assert_eq!(run(&mut srv2, WIRE, &cfin, now).0, Verdict::Forward(KERNEL));
    let last = tcp_header(
        80,
        c.port,
        k1 + 2 + body.len() as u32,
        Some(after_req + 1),
        TcpFlags::ACK,
    );
    let (v, _, _) = run(
        &mut srv2,
        KERNEL,
        &tcp_frame(&kernel_side, &c, &last, &[], 0),
        now,
    );
    assert_eq!(v, Verdict::Forward(WIRE));

    // One second later (well within tombstone_s) the client reuses the
    // 4-tuple: srv1 answers with a new cookie, srv2 drops its flow.
    let later = now + std::time::Duration::from_secs(1);
    let mut syn2 = tcp_header(c.port, 80, 50_000, None, TcpFlags::SYN);
    syn2.timestamps = Some((5242, 0));
    let syn2 = tcp_frame(&c, &svc, &syn2, &[], 5);
    let (v1, _, out1) = run(&mut srv1, WIRE, &syn2, later);
    assert_eq!(v1, Verdict::Drop);
    assert_eq!(out1.len(), 1);
    let sa = parse(&out1[0].1);
    assert_eq!(
        (out1[0].0, sa.flags, sa.ack, sa.dst_mac),
        (WIRE, 0x12, 50_001, c.mac.0)
    );
    assert_eq!(srv1.counters().get(Counter::SpliceCookieSent), 2);
    assert_eq!(srv1.counters().get(Counter::TupleReusedTombstone), 1);
    let (v2, _, out2) = run(&mut srv2, WIRE, &syn2, later);
    assert_eq!((v2, out2.len()), (Verdict::Drop, 0));
    assert_eq!(srv2.counters().get(Counter::TupleReusedSpliced), 1);
    for p in [&srv1, &srv2] {
        assert_eq!(p.counters().get(Counter::TupleReused), 1);
        assert_eq!(
            p.counters().get(Counter::SynRetransmit),
            1,
            "not a retransmission"
        );
        assert_eq!(p.flows().len(), 0);
    }

    // The new connection is offered to srv2 again (its SYN, seen twice by
    // now, finds no state on either member).
    let (_, _, replay) = offered_to_srv2(&mut srv1, &mut srv2, &c, 50_000, 5242, later);
    assert_eq!(srv1.counters().get(Counter::HandoffOffered), 2);
    assert_eq!(replay.len(), 1);
    assert_eq!(
        (parse(&replay[0].1).seq, parse(&replay[0].1).flags),
        (50_000, 0x02)
    );
    assert_eq!(srv2.counters().get(Counter::SpliceReplayed), 2);

    // srv2's kernel answers from TIME-WAIT with an ACK of the old connection
    // (its snd_nxt, rcv_nxt): never to the client; an exact RST kills the
    // old socket and the SYN goes in again, once.
    let tw_ack = tcp_header(
        80,
        c.port,
        k1 + 2 + body.len() as u32,
        Some(after_req + 1),
        TcpFlags::ACK,
    );
    let tw_ack = tcp_frame(&kernel_side, &c, &tw_ack, &[], 0);
    let (v, _, out) = run(&mut srv2, KERNEL, &tw_ack, later);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|(p, _)| *p == KERNEL));
    let (rst, again) = (parse(&out[0].1), parse(&out[1].1));
    assert_eq!(
        (rst.seq, rst.ack, rst.flags, rst.window),
        (after_req + 1, 0, 0x04, 0)
    );
    assert_eq!(rst.dst_mac, SRV2_MAC.0);
    assert_eq!(
        (again.seq, again.flags, again.ts),
        (50_000, 0x02, Some((5243, 0)))
    );
    assert_eq!(srv2.counters().get(Counter::SpliceReplayOldSocket), 1);
    assert_eq!(
        srv2.counters().get(Counter::SpliceReplayed),
        2,
        "one connection"
    );
    // Only once: a second old-socket answer is just dropped.
    let (v, _, out) = run(&mut srv2, KERNEL, &tw_ack, later);
    assert_eq!((v, out.len()), (Verdict::Drop, 0));
    assert_eq!(srv2.counters().get(Counter::SpliceReplayOldSocket), 1);

    // The kernel now takes it: spliced on srv2, tombstone (new ISN) on srv1.
    srv2_kernel_accepts(&mut srv1, &mut srv2, &c, 50_000, k2, later);
    assert_eq!(srv2.counters().get(Counter::SpliceSpliced), 2);
    let tomb = srv1.flows().get(&key).unwrap();
    assert_eq!(
        tomb.value.action,
        shoal_dataplane::pipeline::FlowAction::HandedOff { member: 2 }
    );
    assert_eq!((tomb.value.client_isn, tomb.value.ended), (50_000, false));
    let spliced = srv2.flows().get(&key).unwrap();
    assert_eq!(
        (spliced.value.client_isn, spliced.value.ended),
        (50_000, false)
    );
    assert_eq!(srv2.counters().get(Counter::KernelRstSuppressed), 0);
    for p in [&srv1, &srv2] {
        assert_eq!(
            p.counters().outcomes(),
            p.counters().get(Counter::WireRx) + p.counters().get(Counter::KernelRx)
        );
    }
}

/// Splice to the inspector's own kernel: a connection abandoned while its
/// SYN is replayed (the kernel's SYN-ACK not in yet) gives way to a new SYN
/// on its 4-tuple — its setup slot freed and the kernel's half-open socket
/// reset exactly (seq = client ISN + 1) — and a spliced connection that
/// closed (server first) gives way too, even to a SYN with its own old ISN.
#[test]
fn a_reused_tuple_after_a_local_splice_or_during_setup_is_a_new_connection() {
    let mut p = pipeline();
    let c = client(&p);
    let svc = service();
    let now = Instant::from_secs(100);
    let kernel_side = Endpoint {
        mac: SRV1_MAC,
        ip: VIP,
        port: 80,
    };
    let syn = |isn: u32| {
        let mut s = tcp_header(c.port, 80, isn, None, TcpFlags::SYN);
        s.timestamps = Some((isn / 10, 0));
        tcp_frame(&c, &svc, &s, &[], 1)
    };
    let request = |p: &mut Pipeline, isn: u32, cookie: u32, tc: u32| {
        let req = after_cookie(&c, isn + 1, cookie, (isn / 10 + 1, tc));
        run(p, WIRE, &tcp_frame(&c, &svc, &req, REQUEST, 2), now)
    };
    let cookie_of = |out: &[(PortId, Vec<u8>)]| {
        let sa = parse(&out.last().unwrap().1);
        assert_eq!(sa.flags, 0x12);
        (sa.seq, sa.ts.unwrap().0, sa.ack)
    };

    // Connection A (ISN 1000): cookie, request, SYN replayed into the kernel.
    let (_, _, out) = run(&mut p, WIRE, &syn(1000), now);
    let (cookie, tc, _) = cookie_of(&out);
    let (_, _, out) = request(&mut p, 1000, cookie, tc);
    assert_eq!(
        (out.len(), out[0].0, parse(&out[0].1).seq),
        (1, KERNEL, 1000)
    );

    // The client gives up on A and reuses the 4-tuple (ISN 2000).
    let (v, _, out) = run(&mut p, WIRE, &syn(2000), now);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(out.len(), 2);
    let rst = parse(&out[0].1);
    assert_eq!(
        (out[0].0, rst.seq, rst.ack, rst.flags),
        (KERNEL, 1001, 0, 0x04)
    );
    assert_eq!(rst.dst_mac, SRV1_MAC.0);
    let (cookie, tc, ack) = cookie_of(&out);
    assert_eq!((out[1].0, ack), (WIRE, 2001));
    assert_eq!(p.counters().get(Counter::TupleReusedSplicing), 1);
    assert_eq!(p.flows().len(), 0);

    // Connection B (ISN 2000) is spliced here; its own SYN again reaches
    // the kernel (translated) and changes nothing.
    let (_, _, out) = request(&mut p, 2000, cookie, tc);
    assert_eq!(parse(&out[0].1).seq, 2000);
    let k = 6_000_000u32;
    let mut ksa = tcp_header(80, c.port, k, Some(2001), TcpFlags::SYN);
    ksa.window_scale = Some(7);
    let (v, _, _) = run(
        &mut p,
        KERNEL,
        &tcp_frame(&kernel_side, &c, &ksa, &[], 0),
        now,
    );
    assert_eq!(v, Verdict::Drop);
    assert_eq!(p.counters().get(Counter::SpliceSpliced), 1);
    let (v, bytes, out) = run(&mut p, WIRE, &syn(2000), now);
    assert_eq!((v, out.len()), (Verdict::Forward(KERNEL), 0));
    assert_eq!(parse(&bytes).seq, 2000);
    assert_eq!(p.counters().get(Counter::SynRetransmit), 1);
    assert_eq!(p.flows().len(), 1);

    // B closes, the server first.
    let after_req = 2001 + REQUEST.len() as u32;
    let fin = tcp_header(80, c.port, k + 1, Some(after_req), TcpFlags::FIN);
    let (v, _, _) = run(
        &mut p,
        KERNEL,
        &tcp_frame(&kernel_side, &c, &fin, &[], 0),
        now,
    );
    assert_eq!(v, Verdict::Forward(WIRE));
    let cfin = tcp_header(
        c.port,
        80,
        after_req,
        Some(cookie.wrapping_add(2)),
        TcpFlags::FIN,
    );
    let (v, _, _) = run(&mut p, WIRE, &tcp_frame(&c, &svc, &cfin, &[], 3), now);
    assert_eq!(v, Verdict::Forward(KERNEL));

    // A SYN with B's own ISN after B's FINs: a new connection (a new
    // cookie), not a retransmission for the old flow.
    let (v, _, out) = run(&mut p, WIRE, &syn(2000), now);
    assert_eq!((v, out.len(), out[0].0), (Verdict::Drop, 1, WIRE));
    let (_, _, ack) = cookie_of(&out);
    assert_eq!(ack, 2001);
    assert_eq!(p.counters().get(Counter::TupleReusedSpliced), 1);
    assert_eq!(p.counters().get(Counter::TupleReused), 2);
    assert_eq!(p.counters().get(Counter::SynRetransmit), 1);
    assert_eq!(p.flows().len(), 0);
    assert_eq!(
        p.counters().outcomes(),
        p.counters().get(Counter::WireRx) + p.counters().get(Counter::KernelRx)
    );
}

/// CARISMA rare: a request kept by the inspector's kernel leaves a local
/// flow; after the connection closed (server first) a new SYN on its
/// 4-tuple goes to the kernel as a new watched connection. A connection
/// moved to srv2 leaves a tombstone on srv1 and a spliced flow on srv2;
/// a new SYN on its 4-tuple drops both and srv1's kernel gets it.
#[test]
fn rare_mode_reused_tuples_are_new_connections() {
    let (mut srv1, mut srv2) = rare_members();
    let svc = service();
    let k1_side = Endpoint {
        mac: SRV1_MAC,
        ip: VIP,
        port: 80,
    };
    let now = Instant::from_secs(100);
    let k1 = 7_000_000u32;
    let c = client(&srv1);
    let c2 = (c.port + 1..c.port + 500)
        .map(|port| Endpoint { port, ..c })
        .find(|e| {
            srv1.tables().services[0].selector.select(ClientKey {
                addr: e.ip,
                port: e.port,
            }) == Some(1)
        })
        .unwrap();
    let seg = |c: &Endpoint, seq: u32, ack: Option<u32>, flags: TcpFlags, payload: &[u8]| {
        tcp_frame(
            c,
            &svc,
            &tcp_header(c.port, 80, seq, ack, flags),
            payload,
            1,
        )
    };
    // Both go through srv1's kernel's handshake; then a request each.
    let open = |srv1: &mut Pipeline, c: &Endpoint, path: &[u8]| {
        let (v, _, _) = run(srv1, WIRE, &seg(c, 1000, None, TcpFlags::SYN, &[]), now);
        assert_eq!(v, Verdict::Forward(KERNEL));
        let sa = tcp_header(80, c.port, k1, Some(1001), TcpFlags::SYN);
        let (v, _, _) = run(srv1, KERNEL, &tcp_frame(&k1_side, c, &sa, &[], 0), now);
        assert_eq!(v, Verdict::Forward(WIRE));
        let (v, _, _) = run(
            srv1,
            WIRE,
            &seg(c, 1001, Some(k1 + 1), TcpFlags::ACK, &[]),
            now,
        );
        assert_eq!(v, Verdict::Forward(KERNEL));
        run(
            srv1,
            WIRE,
            &seg(c, 1001, Some(k1 + 1), TcpFlags::PSH, path),
            now,
        )
    };
    let here = b"GET /here HTTP/1.1\r\nHost: x\r\n\r\n";
    let (_, _, out) = open(&mut srv1, &c, here);
    assert_eq!(out.len(), 1, "the held request to srv1's kernel");
    assert_eq!(srv1.counters().get(Counter::RareKept), 1);
    let elsewhere = b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n";
    let (_, _, out) = open(&mut srv1, &c2, elsewhere);
    let offer = out.iter().find(|(p, _)| *p == WIRE).unwrap();
    let (_, _, replay) = run(&mut srv2, WIRE, &offer.1, now);
    assert_eq!(parse(&replay[0].1).seq, 1000);
    srv2_kernel_accepts(&mut srv1, &mut srv2, &c2, 1000, 8_000_000, now);
    assert_eq!(srv1.counters().get(Counter::RareMoved), 1);

    // The kept one closes, the server first; the client reuses the 4-tuple.
    let fin = tcp_header(
        80,
        c.port,
        k1 + 1,
        Some(1001 + here.len() as u32),
        TcpFlags::FIN,
    );
    run(
        &mut srv1,
        KERNEL,
        &tcp_frame(&k1_side, &c, &fin, &[], 0),
        now,
    );
    let cfin = seg(
        &c,
        1001 + here.len() as u32,
        Some(k1 + 2),
        TcpFlags::FIN,
        &[],
    );
    assert_eq!(run(&mut srv1, WIRE, &cfin, now).0, Verdict::Forward(KERNEL));
    let accepted = srv1.counters().get(Counter::SynAccepted);
    let (v, _, out) = run(
        &mut srv1,
        WIRE,
        &seg(&c, 30_000, None, TcpFlags::SYN, &[]),
        now,
    );
    assert_eq!((v, out.len()), (Verdict::Forward(KERNEL), 0));
    assert_eq!(srv1.counters().get(Counter::TupleReusedLocal), 1);
    assert_eq!(srv1.counters().get(Counter::SynAccepted), accepted + 1);
    let e = srv1.flows().get(&key_of(&c)).unwrap().value;
    assert_eq!((e.client_isn, e.ended), (30_000, false));

    // The moved one: srv1 holds a tombstone, srv2 a spliced flow; the
    // client's FIN, then a new SYN on the 4-tuple.
    let cfin = seg(
        &c2,
        1001 + elsewhere.len() as u32,
        Some(k1 + 1),
        TcpFlags::FIN,
        &[],
    );
    assert_eq!(run(&mut srv1, WIRE, &cfin, now).0, Verdict::Drop);
    assert_eq!(run(&mut srv2, WIRE, &cfin, now).0, Verdict::Forward(KERNEL));
    let syn = seg(&c2, 40_000, None, TcpFlags::SYN, &[]);
    let (v1, _, out1) = run(&mut srv1, WIRE, &syn, now);
    let (v2, _, out2) = run(&mut srv2, WIRE, &syn, now);
    assert_eq!((v1, out1.len()), (Verdict::Forward(KERNEL), 0));
    assert_eq!((v2, out2.len()), (Verdict::Drop, 0));
    assert_eq!(srv1.counters().get(Counter::TupleReusedTombstone), 1);
    assert_eq!(srv2.counters().get(Counter::TupleReusedSpliced), 1);
    assert_eq!(srv2.counters().get(Counter::SynOtherInspector), 1);
    assert!(srv2.flows().get(&key_of(&c2)).is_none());
    assert_eq!(
        srv1.flows().get(&key_of(&c2)).unwrap().value.client_isn,
        40_000
    );
}
