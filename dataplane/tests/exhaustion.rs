//! Exhaustion (issue 17): when something a worker needs is full or gone —
//! the flow table, the splice setup slots, a steering ring, a transmit
//! queue, the buffer pool — it degrades into counted refusals or evictions,
//! never a crash or a stall, and the connections it already holds go on.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::path::Path;
use std::sync::Arc;

use shoal_config::{Config, Dispatch, Mode};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::flow::{FlowState, Timeouts};
use shoal_dataplane::io::memory::{HeapFrame, MemoryIo};
use shoal_dataplane::pipeline::{Pipeline, Tables, Verdict, KERNEL, WIRE};
use shoal_dataplane::traffic::{client_endpoint, tcp_frame, tcp_header, Endpoint};
use shoal_dataplane::worker::{Steering, Worker};
use shoal_select::ClientKey;
use shoal_wire::time::Instant;
use shoal_wire::{EthernetAddress, EthernetFrame, Ipv4Packet, TcpFlags, TcpPacket};

fn config(mode: Mode) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).unwrap();
    cfg.services[0].mode = mode;
    if mode == Mode::Splice {
        cfg.services[0].dispatch = Some(Dispatch::default());
    }
    cfg
}

/// srv1's pipeline for `mode` with a flow table of `capacity`.
fn pipeline(mode: Mode, capacity: usize) -> Pipeline {
    let cfg = config(mode);
    let tables = Arc::new(Tables::from_config(&cfg, 1).unwrap());
    Pipeline::new(
        tables,
        capacity,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    )
}

fn service() -> Endpoint {
    Endpoint {
        mac: EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]),
        ip: "198.18.0.100".parse().unwrap(),
        port: 80,
    }
}

/// The first `n` clients (from number `from` on) srv1 inspects.
fn own_clients(p: &Pipeline, from: u32, n: usize) -> Vec<Endpoint> {
    (from..)
        .map(|i| client_endpoint(i, 40_000 + (i % 20_000) as u16))
        .filter(|c| {
            p.tables().services[0].selector.select(ClientKey {
                addr: c.ip,
                port: c.port,
            }) == Some(1)
        })
        .take(n)
        .collect()
}

fn segment(c: &Endpoint, seq: u32, ack: Option<u32>, flags: TcpFlags, body: &[u8]) -> Vec<u8> {
    tcp_frame(
        c,
        &service(),
        &tcp_header(c.port, 80, seq, ack, flags),
        body,
        1,
    )
}

fn run(p: &mut Pipeline, frame: &[u8], now: Instant) -> Verdict {
    p.process(WIRE, &mut HeapFrame::from_bytes(frame), now)
}

/// A spoofed SYN flood far beyond the flow table: the table never holds
/// more than its capacity, evicts half-open flows (never an established
/// one while a half-open one is left), and every established connection
/// still reaches the kernel afterwards.
#[test]
fn a_full_flow_table_evicts_half_open_flows_and_keeps_established_ones() {
    let capacity = 16;
    // The flow table's own defence (eviction order); the SYN proxy, which
    // keeps a flood out of the table altogether, is tests/synproxy.rs's.
    let mut cfg = config(Mode::Local);
    cfg.services[0].syn_proxy = Some(shoal_config::SynProxy::Off);
    let mut p = Pipeline::new(
        Arc::new(Tables::from_config(&cfg, 1).unwrap()),
        capacity,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    let t = Instant::from_secs(1);
    let established = own_clients(&p, 0, 8);
    for c in &established {
        assert_eq!(
            run(&mut p, &segment(c, 1, None, TcpFlags::SYN, &[]), t),
            Verdict::Forward(KERNEL)
        );
        assert_eq!(
            run(&mut p, &segment(c, 2, Some(1), TcpFlags::ACK, &[]), t),
            Verdict::Forward(KERNEL)
        );
    }
    for c in own_clients(&p, 1_000, 2_000) {
        assert_eq!(
            run(&mut p, &segment(&c, 9, None, TcpFlags::SYN, &[]), t),
            Verdict::Forward(KERNEL)
        );
        assert!(p.flows().len() <= capacity);
    }
    let [syn, est, _, _] = p.flows().count_by_state();
    assert_eq!((syn, est), (capacity - 8, 8));
    let stats = p.flows().stats();
    assert_eq!(stats.evicted[FlowState::Established as usize], 0);
    assert!(stats.evicted[FlowState::Syn as usize] >= 2_000 - (capacity as u64 - 8));
    let hits = p.counters().get(Counter::FlowHit);
    for c in &established {
        let v = run(
            &mut p,
            &segment(c, 2, Some(1), TcpFlags::PSH, b"GET / HTTP/1.1\r\n\r\n"),
            t,
        );
        assert_eq!(
            v,
            Verdict::Forward(KERNEL),
            "an established connection lost to the flood"
        );
    }
    assert_eq!(p.counters().get(Counter::FlowHit), hits + 8);
    assert_eq!(p.counters().get(Counter::DropFlowTableFull), 0);
}

/// The cookie SYN-ACK srv1 answered `c` with: (cookie ISN, its TSval).
fn cookie_of(p: &mut Pipeline) -> (u32, Option<u32>) {
    let (_, frame) = p.take_emitted().next_back().unwrap();
    let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(tcp.syn() && tcp.ack());
    (tcp.seq_number(), tcp.timestamps().map(|t| t.0))
}

/// Completes the cookie handshake of `c` (no request yet): the setup slot
/// is taken until the request arrives or `request_timeout_ms` passes.
fn handshake(p: &mut Pipeline, c: &Endpoint, now: Instant) -> Verdict {
    run(p, &segment(c, 1, None, TcpFlags::SYN, &[]), now);
    let (cookie, tsval) = cookie_of(p);
    let mut ack = tcp_header(c.port, 80, 2, Some(cookie.wrapping_add(1)), TcpFlags::ACK);
    ack.timestamps = tsval.map(|v| (7, v));
    run(p, &tcp_frame(c, &service(), &ack, &[], 2), now)
}

/// Splice: with every setup slot taken by handshakes whose request has not
/// come, the next one is refused and counted (the client's ACK is dropped;
/// it retransmits), nothing else breaks, and once the stalled handshakes
/// time out new connections are taken again.
#[test]
fn full_splice_setup_slots_refuse_new_handshakes_counted_until_they_free() {
    let mut p = pipeline(Mode::Splice, 16_384);
    p.set_cookie_secret([3; 32]);
    let t = Instant::from_secs(1);
    let clients = own_clients(&p, 0, 4_200);
    let mut taken = 0;
    for c in &clients {
        handshake(&mut p, c, t);
        if p.counters().get(Counter::SpliceConnTableFull) > 0 {
            break;
        }
        taken += 1;
    }
    assert_eq!(taken, 4_096, "the setup slots");
    assert_eq!(p.counters().get(Counter::SpliceConnTableFull), 1);
    assert_eq!(p.counters().get(Counter::SpliceHandshake), 4_096);
    // Past the request timeout the stalled ones are given up and the slots
    // free: the refused client's retransmitted ACK is taken.
    let later = t + std::time::Duration::from_secs(90);
    p.expire(later, 100_000);
    handshake(&mut p, &clients[taken], later);
    assert_eq!(p.counters().get(Counter::SpliceHandshake), 4_097);
    assert_eq!(p.counters().get(Counter::SpliceConnTableFull), 1);
}

/// Splice (issue 15): with every setup slot taken, a client whose
/// handshake-completing segment carries its request gets the service's
/// busy answer (503, `Retry-After`, FIN, acknowledging the request) instead
/// of silence, at most 1000 a second per worker; a pure ACK, and requests
/// beyond that rate, are dropped counted, and the client retransmits.
#[test]
fn full_splice_setup_slots_answer_requests_busy_at_a_bounded_rate() {
    let mut p = pipeline(Mode::Splice, 16_384);
    p.set_cookie_secret([5; 32]);
    let t = Instant::from_secs(1);
    let clients = own_clients(&p, 0, 4_096 + 1_100);
    for c in &clients[..4_096] {
        handshake(&mut p, c, t);
    }
    assert_eq!(p.counters().get(Counter::SpliceHandshake), 4_096);
    let request = b"GET /files/1k HTTP/1.1\r\nHost: x\r\n\r\n";
    let complete = |p: &mut Pipeline, c: &Endpoint, body: &[u8], now: Instant| {
        run(p, &segment(c, 1, None, TcpFlags::SYN, &[]), now);
        let (cookie, tsval) = cookie_of(p);
        let mut ack = tcp_header(c.port, 80, 2, Some(cookie.wrapping_add(1)), TcpFlags::ACK);
        ack.timestamps = tsval.map(|v| (7, v));
        let v = run(p, &tcp_frame(c, &service(), &ack, body, 2), now);
        (v, cookie)
    };
    // A pure ACK: dropped, counted; nothing sent.
    let (v, _) = complete(&mut p, &clients[4_096], &[], t);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(p.counters().get(Counter::SpliceConnTableFull), 1);
    assert_eq!(p.take_emitted().count(), 0);
    // With the request: the answer.
    let (v, cookie) = complete(&mut p, &clients[4_097], request, t);
    assert_eq!(v, Verdict::Drop);
    let out: Vec<_> = p.take_emitted().collect();
    assert_eq!(out.len(), 1);
    let (port, frame) = &out[0];
    assert_eq!(*port, WIRE);
    let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()));
    assert_eq!(ip.dst_addr(), clients[4_097].ip);
    assert_eq!(tcp.seq_number(), cookie.wrapping_add(1));
    assert_eq!(
        tcp.ack_number(),
        2 + request.len() as u32,
        "the request acknowledged"
    );
    assert!(tcp.fin() && tcp.ack() && !tcp.rst());
    let body = String::from_utf8_lossy(tcp.payload());
    assert!(
        body.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{body}"
    );
    assert!(body.contains("\r\nRetry-After: 1\r\n"), "{body}");
    assert_eq!(p.counters().get(Counter::SpliceBusyAnswered), 1);
    assert_eq!(
        p.flows().len(),
        4_096,
        "the answered connection holds nothing"
    );
    // 1000 answers a second: 999 more now, then drops; a second later, more.
    let mut answered = 1;
    for c in &clients[4_098..4_098 + 1_001] {
        complete(&mut p, c, request, t);
        answered += p.take_emitted().count();
    }
    assert_eq!(answered, 1_000);
    assert_eq!(p.counters().get(Counter::SpliceBusyAnswered), 1_000);
    assert_eq!(p.counters().get(Counter::SpliceConnTableFull), 1 + 2);
    complete(
        &mut p,
        &clients[4_098 + 1_001],
        request,
        t + std::time::Duration::from_secs(1),
    );
    assert_eq!(p.take_emitted().count(), 1);
    assert_eq!(p.counters().get(Counter::SpliceBusyAnswered), 1_001);
}

/// Frames for another worker when the steering ring toward it is full are
/// dropped and counted, the receiving worker does not wait, and what the
/// ring held is processed by its owner when it polls.
#[test]
fn a_full_steering_ring_drops_counted_and_never_stalls() {
    let cfg = config(Mode::Local);
    let t = Arc::new(Tables::from_config(&cfg, 1).unwrap());
    let mut ws: Vec<Worker<MemoryIo>> = Steering::mesh(2, 4)
        .into_iter()
        .map(|s| {
            let p = Pipeline::new(Arc::clone(&t), 4096, Timeouts::default());
            let mut w = Worker::new(MemoryIo::new(2), p, 64);
            w.steer(s);
            w
        })
        .collect();
    // 40 SYNs of connections worker 1 owns, all arriving on worker 0.
    let frames: Vec<Vec<u8>> = own_clients(ws[0].pipeline(), 0, 2_000)
        .iter()
        .map(|c| segment(c, 1, None, TcpFlags::SYN, &[]))
        .filter(|f| shoal_dataplane::steer::target(WIRE, f, &t, 2) == Some(1))
        .take(40)
        .collect();
    assert_eq!(frames.len(), 40);
    for f in &frames {
        ws[0].io_mut().inject(WIRE, f);
    }
    let now = Instant::from_secs(1);
    ws[0].poll(now);
    let c0 = ws[0].pipeline().counters();
    let (out, dropped) = (c0.get(Counter::SteeredOut), c0.get(Counter::DropSteerFull));
    assert_eq!(out + dropped, 40);
    assert!(dropped > 0 && out > 0, "steered {out}, dropped {dropped}");
    ws[1].poll(now);
    let kernel = ws[1].io_mut().take_tx(KERNEL).len() as u64;
    assert_eq!(kernel, out, "what the ring held reaches the owner's kernel");
    assert_eq!(ws[1].pipeline().counters().get(Counter::SteeredIn), out);
}

/// A transmit queue that takes nothing and an empty buffer pool: the
/// frames are dropped and counted (`drop_tx_queue_full`, `drop_no_buffer`),
/// the worker goes on.
#[test]
fn a_full_transmit_queue_and_an_empty_buffer_pool_are_counted() {
    let mut p = pipeline(Mode::Splice, 4096);
    p.set_cookie_secret([5; 32]);
    let clients = own_clients(&p, 0, 8);
    let mut w = Worker::new(MemoryIo::new(2), p, 64);
    // No buffer for the cookie SYN-ACKs the pipeline originates.
    w.io_mut().set_buffer_limit(Some(0));
    for c in &clients[..4] {
        w.io_mut()
            .inject(WIRE, &segment(c, 1, None, TcpFlags::SYN, &[]));
    }
    w.poll(Instant::from_secs(1));
    assert_eq!(w.pipeline().counters().get(Counter::DropNoBuffer), 4);
    assert!(w.io_mut().take_tx(WIRE).is_empty());
    // Buffers again, but a transmit queue that takes nothing.
    w.io_mut().set_buffer_limit(None);
    w.io_mut().set_tx_limit(Some(0));
    for c in &clients[4..] {
        w.io_mut()
            .inject(WIRE, &segment(c, 1, None, TcpFlags::SYN, &[]));
    }
    w.poll(Instant::from_secs(2));
    assert_eq!(w.pipeline().counters().get(Counter::DropTxFull), 4);
    // And with room again, the next SYN is answered.
    w.io_mut().set_tx_limit(None);
    w.io_mut()
        .inject(WIRE, &segment(&clients[0], 1, None, TcpFlags::SYN, &[]));
    w.poll(Instant::from_secs(3));
    assert_eq!(w.io_mut().take_tx(WIRE).len(), 1);
}
