//! The CPU one spliced connection costs the cluster's dataplanes: every
//! frame of a whole connection through the pipelines of a 3-member cluster
//! (`deploy/examples/replay.toml`, splice, handoff on), on one core, in the
//! benchmark thread's CPU time. What a proxy's process CPU per connection is
//! compared with in `perf/run` (perf/README.md), without the lab's
//! descheduling and AF_PACKET system calls.
//!
//! A connection (one `GET /whoami`, one response, closed by the client):
//! every client frame reaches all three members (the broadcast segment: the
//! two bystanders look at each and drop it); srv1 is the inspector (SYN
//! cookie, request read, dispatch).
//! - `local`: dispatch names srv1: the connection is replayed into srv1's
//!   kernel (SYN, the kernel's SYN-ACK taken, ACK + request), then spliced;
//! - `handoff`: dispatch names srv2: srv1 offers it (a sealed UDP datagram),
//!   srv2 replays it into its kernel and accepts, srv1 keeps a tombstone,
//!   srv2 splices.
//!
//! The frames (client, kernel, handoff datagrams) are recorded once from a
//! run of identical pipelines and replayed into fresh ones: the pipelines
//! are deterministic (same secrets, keys, clock), so the replay takes the
//! same path, which the setup checks by counters. 1 000 connections at a
//! time are copied into frames outside the measured time; every 16 384
//! connections the pipelines are rebuilt (their flow tables fill with
//! tombstones), also outside it. Throughput is in connections.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shoal_config::{Dispatch, DispatchPolicy, DispatchRule, Mode};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::PortId;
use shoal_dataplane::pipeline::{Pipeline, Tables, KERNEL, WIRE};
use shoal_dataplane::traffic::{client_endpoint, tcp_frame, tcp_header, Endpoint};
use shoal_perf::ThreadCpuTime;
use shoal_select::ClientKey;
use shoal_wire::time::Instant;
use shoal_wire::{EthernetAddress, EthernetFrame, Ipv4Packet, TcpFlags, TcpPacket};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const REQUEST: &[u8] = b"GET /whoami HTTP/1.1\r\nHost: 198.18.0.100\r\nUser-Agent: bench\r\n\r\n";
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nsrv1\n";
/// Connections per set of pipelines (then rebuilt).
const PER_SET: usize = 16_384;
/// Connections copied into frames per measured chunk.
const CHUNK: usize = 1_000;

/// Member `member` (1-based index into srv1..srv3) of a splice cluster whose
/// dispatch sends every request to `to`.
fn member(index: u16, to: &str) -> Pipeline {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).expect("example config loads");
    cfg.cluster.local_member = format!("srv{index}");
    cfg.services[0].mode = Mode::Splice;
    cfg.services[0].syn_proxy = None;
    cfg.services[0].dispatch = Some(Dispatch {
        policy: DispatchPolicy::Rules,
        rules: vec![DispatchRule {
            host: None,
            prefix: "/".into(),
            member: to.into(),
        }],
        ..Dispatch::default()
    });
    let tables = Arc::new(Tables::from_config(&cfg, 1).expect("tables"));
    let mut p = Pipeline::new(
        tables,
        4 * PER_SET,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    p.set_cookie_secret([index as u8; 32]);
    p.enable_handoff(
        shoal_key::ClusterKey::from_bytes(&[9; 32]).expect("key"),
        u64::from(index),
        1_000_000,
    );
    p
}

fn members(to: &str) -> [Pipeline; 3] {
    [member(1, to), member(2, to), member(3, to)]
}

/// One frame of the script: which member (0-2), on which port.
type Step = (usize, PortId, Vec<u8>);

fn mac(index: u16) -> EthernetAddress {
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0a + index as u8])
}

/// Runs `frame` through member `m` of `ps`, recording it; returns what the
/// pipeline emitted.
fn step(
    ps: &mut [Pipeline; 3],
    script: &mut Vec<Step>,
    m: usize,
    port: PortId,
    frame: Vec<u8>,
    now: Instant,
) -> Vec<(PortId, Vec<u8>)> {
    let mut f = HeapFrame::from_bytes(&frame);
    ps[m].process(port, &mut f, now);
    script.push((m, port, frame));
    ps[m].take_emitted().collect()
}

/// A client frame: to every member.
fn broadcast(
    ps: &mut [Pipeline; 3],
    script: &mut Vec<Step>,
    frame: &[u8],
    now: Instant,
) -> Vec<(PortId, Vec<u8>)> {
    let mut out = Vec::new();
    for m in 0..3 {
        out.extend(step(ps, script, m, WIRE, frame.to_vec(), now));
    }
    out
}

fn seq_of(frame: &[u8]) -> (u32, u32) {
    let eth = EthernetFrame::new_checked(frame).expect("ethernet");
    let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
    let tcp = TcpPacket::new_checked(ip.payload()).expect("tcp");
    (tcp.seq_number(), tcp.timestamps().map_or(0, |t| t.0))
}

/// The frames of `n` connections of clients srv1 inspects, served by
/// `server` (0 = srv1: local; 1 = srv2: handed over).
fn record(n: usize, server: usize, now: Instant) -> Vec<Vec<Step>> {
    let to = format!("srv{}", server + 1);
    let mut ps = members(&to);
    let svc = Endpoint {
        mac: EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]),
        ip: VIP,
        port: 80,
    };
    let kernel = Endpoint {
        mac: mac(server as u16 + 1),
        ip: VIP,
        port: 80,
    };
    let tables = ps[0].tables();
    let clients: Vec<Endpoint> = (0..u32::MAX)
        .map(|i| client_endpoint(1 + i / 20_000, 20_000 + (i % 20_000) as u16))
        .filter(|c| {
            tables.services[0].selector.select(ClientKey {
                addr: c.ip,
                port: c.port,
            }) == Some(1)
        })
        .take(n)
        .collect();
    let mut all = Vec::with_capacity(n);
    for c in clients {
        let mut s = Vec::new();
        let mut syn = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
        syn.timestamps = Some((4242, 0));
        let out = broadcast(&mut ps, &mut s, &tcp_frame(&c, &svc, &syn, &[], 1), now);
        let (cookie, tc) = seq_of(&out[0].1);
        let mut req = tcp_header(
            c.port,
            80,
            1001,
            Some(cookie.wrapping_add(1)),
            TcpFlags::PSH,
        );
        req.timestamps = Some((4250, tc));
        let mut out = broadcast(&mut ps, &mut s, &tcp_frame(&c, &svc, &req, REQUEST, 2), now);
        if server != 0 {
            // The offer, to srv2.
            let offer = out.pop().expect("an offer").1;
            out = step(&mut ps, &mut s, server, WIRE, offer, now);
        }
        // The replayed SYN reached the kernel; its SYN-ACK.
        let k_isn = 7_000_000u32;
        let mut ksa = tcp_header(80, c.port, k_isn, Some(1001), TcpFlags::SYN);
        ksa.window_scale = Some(7);
        ksa.timestamps = Some((55_000, 4250));
        drop(out);
        let out = step(
            &mut ps,
            &mut s,
            server,
            KERNEL,
            tcp_frame(&kernel, &c, &ksa, &[], 0),
            now,
        );
        if server != 0 {
            let accept = out
                .into_iter()
                .find(|(p, _)| *p == WIRE)
                .expect("an accept")
                .1;
            step(&mut ps, &mut s, 0, WIRE, accept, now);
        }
        let req_end = 1001 + REQUEST.len() as u32;
        let mut data = tcp_header(80, c.port, k_isn + 1, Some(req_end), TcpFlags::PSH);
        data.timestamps = Some((55_001, 4250));
        step(
            &mut ps,
            &mut s,
            server,
            KERNEL,
            tcp_frame(&kernel, &c, &data, RESPONSE, 0),
            now,
        );
        let resp_end = cookie.wrapping_add(1 + RESPONSE.len() as u32);
        let mut ack = tcp_header(c.port, 80, req_end, Some(resp_end), TcpFlags::ACK);
        ack.timestamps = Some((4260, tc));
        broadcast(&mut ps, &mut s, &tcp_frame(&c, &svc, &ack, &[], 3), now);
        let mut fin = tcp_header(
            c.port,
            80,
            req_end,
            Some(resp_end),
            TcpFlags::FIN | TcpFlags::ACK,
        );
        fin.timestamps = Some((4261, tc));
        broadcast(&mut ps, &mut s, &tcp_frame(&c, &svc, &fin, &[], 4), now);
        let kresp_end = k_isn + 1 + RESPONSE.len() as u32;
        let mut kfin = tcp_header(
            80,
            c.port,
            kresp_end,
            Some(req_end + 1),
            TcpFlags::FIN | TcpFlags::ACK,
        );
        kfin.timestamps = Some((55_002, 4261));
        step(
            &mut ps,
            &mut s,
            server,
            KERNEL,
            tcp_frame(&kernel, &c, &kfin, &[], 0),
            now,
        );
        let mut last = tcp_header(c.port, 80, req_end + 1, Some(resp_end + 1), TcpFlags::ACK);
        last.timestamps = Some((4262, tc));
        broadcast(&mut ps, &mut s, &tcp_frame(&c, &svc, &last, &[], 5), now);
        all.push(s);
    }
    // The recording took the intended path for every connection.
    let spliced = ps[server].counters().get(Counter::SpliceSpliced);
    assert_eq!(
        spliced,
        n as u64,
        "every connection spliced on srv{}",
        server + 1
    );
    if server != 0 {
        assert_eq!(ps[0].counters().get(Counter::HandoffHandedOver), n as u64);
    }
    all
}

fn bench(crit: &mut Criterion<ThreadCpuTime>) {
    let now = Instant::from_secs(100);
    let mut g = crit.benchmark_group("splice_connection");
    g.throughput(Throughput::Elements(1));
    for (name, server) in [("local", 0usize), ("handoff", 1)] {
        let to = format!("srv{}", server + 1);
        let script = record(PER_SET, server, now);
        let frames: usize = script.iter().map(Vec::len).sum();
        eprintln!(
            "{name}: {:.1} frames per connection over 3 members",
            frames as f64 / PER_SET as f64
        );
        // The replay takes the recorded path.
        let mut check = members(&to);
        for conn in &script {
            for (m, port, bytes) in conn {
                let mut f = HeapFrame::from_bytes(bytes);
                check[*m].process(*port, &mut f, now);
                check[*m].take_emitted().for_each(drop);
            }
        }
        assert_eq!(
            check[server].counters().get(Counter::SpliceSpliced),
            PER_SET as u64,
            "the replay splices every connection"
        );
        drop(check);
        let mut ps = members(&to);
        let mut at = 0usize;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let clock = ThreadCpuTime;
                let mut spent = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    if at == PER_SET {
                        ps = members(&to);
                        at = 0;
                    }
                    let n = left.min(CHUNK).min(PER_SET - at);
                    let mut batch: Vec<(usize, PortId, HeapFrame)> = script[at..at + n]
                        .iter()
                        .flatten()
                        .map(|(m, port, bytes)| (*m, *port, HeapFrame::from_bytes(bytes)))
                        .collect();
                    let t0 = criterion::measurement::Measurement::start(&clock);
                    for (m, port, frame) in &mut batch {
                        black_box(ps[*m].process(*port, frame, now));
                        ps[*m].take_emitted().for_each(drop);
                    }
                    spent += criterion::measurement::Measurement::end(&clock, t0);
                    drop(batch);
                    at += n;
                    left -= n;
                }
                spent
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench
}
criterion_main!(benches);
