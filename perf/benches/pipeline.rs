//! The pipeline on a realistic mix, per packet, one core.
//!
//! Member srv1 of the example 3-member cluster (`deploy/examples/replay.toml`,
//! ring hashing, `local` mode) with 100 000 established flows of its own.
//! Groups:
//! - `established`: client data segments of flows srv1 holds (the hot path:
//!   parse, one flow lookup, forward to the kernel), cycling over all 100 000
//!   flows so frames and flow entries mostly miss the CPU caches;
//! - `established_hot`: the same over 1024 flows (cache-resident);
//! - `mix`: per 32-packet burst 3 new SYNs (a fresh client port each time, so
//!   the selector runs and a third of them insert), 19 established data,
//!   6 pure ACKs, 4 other (VIP packets of flows another member holds, frames
//!   to another host's MAC).
//!
//! - `established_burst`: `established` through `Pipeline::process_burst`
//!   (the worker's path: parse all, warm the flow table for all, then
//!   decide), 32 consecutive frames of the walk per call;
//! - `mix_walk` and `mix_walk_burst`: the mix laid out as one 100 000-frame
//!   trace of bursts (frame copies, mostly cold), walked frame by frame with
//!   `process` and a burst at a time with `process_burst`.
//!
//! Frames are processed in place, so no per-iteration copying distorts the
//! figure; local mode rewrites the destination MAC of a frame it passes to
//! the kernel (cluster MAC -> srv1's), so each burst first gets the cluster
//! MAC back (`arrive`: 32 six-byte writes, the frames' first line, as a
//! NIC's DMA would have written it). Before this, every pass after the first
//! measured the DPR-redirected path (no flow lookup). Throughput is in packets.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::Frame;
use shoal_dataplane::pipeline::{Pipeline, Tables, Verdict, KERNEL, WIRE};
use shoal_dataplane::traffic::{client_endpoint, tcp_frame, tcp_header, Endpoint};
use shoal_perf::ThreadCpuTime;
use shoal_select::ClientKey;
use shoal_wire::time::Instant;
use shoal_wire::{EthernetAddress, TcpFlags};

const FLOWS: u32 = 100_000;
const BURST: usize = 32;

struct Setup {
    pipeline: Pipeline,
    /// Established data segments of srv1's flows.
    established: Vec<HeapFrame>,
    /// Pure ACKs of srv1's flows.
    acks: Vec<HeapFrame>,
    /// Data segments of flows srv1 does not hold.
    foreign: Vec<HeapFrame>,
    /// SYN templates (source port rewritten per use).
    syns: Vec<HeapFrame>,
    /// A frame for another host's MAC.
    other_host: HeapFrame,
}

fn setup() -> Setup {
    let mut cfg = shoal_perf::bench_config();
    cfg.dataplane.flow_table.capacity = 1 << 20;
    let tables = Arc::new(Tables::from_config(&cfg, 1).expect("tables"));
    let mine = |c: &Endpoint| {
        tables.services[0].selector.select(ClientKey {
            addr: c.ip,
            port: c.port,
        }) == Some(1)
    };
    let svc = Endpoint {
        mac: EthernetAddress(cfg.cluster.mac.0),
        ip: Ipv4Addr::new(198, 18, 0, 100),
        port: 80,
    };
    let mut pipeline = Pipeline::new(
        Arc::clone(&tables),
        cfg.dataplane.flow_table.capacity as usize,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    let (mut established, mut acks, mut foreign, mut syns) = (vec![], vec![], vec![], vec![]);
    let payload = [0x41u8; 512];
    let mut i = 0u32;
    while established.len() < FLOWS as usize {
        let c = client_endpoint(i % 60_000, 1024 + (i / 60_000) as u16 * 7 + (i % 13) as u16);
        i += 1;
        let data = tcp_header(c.port, 80, 1001, Some(5001), TcpFlags::PSH);
        if mine(&c) {
            let mut syn = HeapFrame::from_bytes(&tcp_frame(
                &c,
                &svc,
                &tcp_header(c.port, 80, 1000, None, TcpFlags::SYN),
                &[],
                1,
            ));
            let verdict = pipeline.process(WIRE, &mut syn, Instant::ZERO);
            assert_eq!(
                verdict,
                Verdict::Forward(KERNEL),
                "SYN {i} not placed; counters: {:?}",
                pipeline
                    .counters()
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .collect::<Vec<_>>()
            );
            established.push(HeapFrame::from_bytes(&tcp_frame(
                &c, &svc, &data, &payload, 2,
            )));
            let ack = tcp_header(c.port, 80, 1001, Some(9001), TcpFlags::ACK);
            acks.push(HeapFrame::from_bytes(&tcp_frame(&c, &svc, &ack, &[], 3)));
            if syns.len() < 64 {
                syns.push(syn);
            }
        } else if foreign.len() < 4096 {
            foreign.push(HeapFrame::from_bytes(&tcp_frame(
                &c, &svc, &data, &payload, 2,
            )));
        }
    }
    let mut other = tcp_frame(
        &client_endpoint(1, 5000),
        &svc,
        &tcp_header(5000, 80, 1, Some(1), TcpFlags::ACK),
        &[],
        1,
    );
    other[..6].copy_from_slice(&[0x02, 0, 0xc6, 0x12, 0, 0x0c]); // srv2's MAC
    Setup {
        pipeline,
        established,
        acks,
        foreign,
        syns,
        other_host: HeapFrame::from_bytes(&other),
    }
}

/// The cluster MAC, and srv1's own MAC.
const CLUSTER_MAC: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0, 0x64];
const SRV1_MAC: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0, 0x0b];

/// Makes a frame processed in place look as it arrived again: the pipeline
/// sets the destination MAC of frames it passes to the kernel to srv1's
/// own, which a second pass would take for a DPR-redirected frame (another
/// path: no flow lookup); put the cluster MAC back.
fn arrive(f: &mut HeapFrame) {
    let dst = &mut f.bytes_mut()[..6];
    if dst == SRV1_MAC {
        dst.copy_from_slice(&CLUSTER_MAC);
    }
}

/// The `mix` bursts as one trace of frame copies: 3 125 bursts of 32
/// (3 SYN templates, 6 ACKs, 3 foreign data segments, 1 frame for another
/// host, 19 established data segments, in `mix`'s order), walking
/// 59 375 of the established flows.
fn mix_trace(s: &Setup) -> Vec<HeapFrame> {
    let (mut est, mut ack, mut other, mut syn) = (0usize, 0usize, 0usize, 0usize);
    let mut trace = Vec::with_capacity(3_125 * BURST);
    for _ in 0..3_125 {
        for k in 0..BURST {
            trace.push(match k {
                0 | 11 | 22 => {
                    syn = (syn + 1) % s.syns.len();
                    s.syns[syn].clone()
                }
                1..=6 => {
                    ack = (ack + 1) % s.acks.len();
                    s.acks[ack].clone()
                }
                7..=9 => {
                    other = (other + 1) % s.foreign.len();
                    s.foreign[other].clone()
                }
                10 => s.other_host.clone(),
                _ => {
                    est = (est + 1) % s.established.len();
                    s.established[est].clone()
                }
            });
        }
    }
    trace
}

fn bench(crit: &mut Criterion<ThreadCpuTime>) {
    let mut s = setup();
    let now = Instant::from_secs(1);
    let mut g = crit.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));

    let mut next = 0usize;
    g.bench_function("established", |b| {
        b.iter(|| {
            let len = s.established.len();
            for i in 0..BURST {
                arrive(&mut s.established[(next + i) % len]);
            }
            for _ in 0..BURST {
                let f = &mut s.established[next];
                next = (next + 1) % len;
                black_box(s.pipeline.process(WIRE, f, now));
            }
        });
    });

    // The same a burst at a time (`Pipeline::process_burst`: the worker's
    // path), 32 consecutive frames of the walk per call.
    let mut next_burst = 0usize;
    let mut verdicts = Vec::with_capacity(BURST);
    g.bench_function("established_burst", |b| {
        b.iter(|| {
            let len = s.established.len();
            let at = next_burst;
            next_burst = (next_burst + BURST) % (len - len % BURST);
            s.established[at..at + BURST].iter_mut().for_each(arrive);
            s.pipeline
                .process_burst(WIRE, &mut s.established[at..at + BURST], now, &mut verdicts);
            black_box(&verdicts);
        });
    });

    // The same, cycling over 1024 flows: frames and flow entries stay in
    // cache, as a burst fresh from the NIC (DDIO) hitting busy flows would.
    let mut hot = 0usize;
    g.bench_function("established_hot", |b| {
        b.iter(|| {
            for i in 0..BURST {
                arrive(&mut s.established[(hot + i) % 1024]);
            }
            for _ in 0..BURST {
                let f = &mut s.established[hot];
                hot = (hot + 1) % 1024;
                black_box(s.pipeline.process(WIRE, f, now));
            }
        });
    });

    // The mix laid out as a trace of bursts in one vector (copies of the
    // frames, as a NIC's ring holds them), walked frame by frame and a burst
    // at a time over the same memory: the two differ only in the call.
    let mut trace = mix_trace(&s);
    let bursts = trace.len() / BURST;
    let mut at = 0usize;
    let mut syn_port = 0u16;
    // A new client port for each SYN of burst `at` (they are at 0, 11, 22).
    let mut fresh_syns = |burst: &mut [HeapFrame]| {
        burst.iter_mut().for_each(arrive);
        for k in [0, 11, 22] {
            syn_port = syn_port.wrapping_add(1);
            burst[k].bytes_mut()[34..36].copy_from_slice(&(syn_port | 0x8000).to_be_bytes());
        }
    };
    g.bench_function("mix_walk", |b| {
        b.iter(|| {
            let burst = &mut trace[at * BURST..(at + 1) * BURST];
            at = (at + 1) % bursts;
            fresh_syns(burst);
            for f in burst {
                black_box(s.pipeline.process(WIRE, f, now));
            }
        });
    });
    g.bench_function("mix_walk_burst", |b| {
        b.iter(|| {
            let burst = &mut trace[at * BURST..(at + 1) * BURST];
            at = (at + 1) % bursts;
            fresh_syns(burst);
            s.pipeline.process_burst(WIRE, burst, now, &mut verdicts);
            black_box(&verdicts);
        });
    });

    let (mut port, mut est, mut ack, mut other) = (0x4000u16, 0usize, 0usize, 0usize);
    g.bench_function("mix", |b| {
        b.iter_batched_ref(
            || (),
            |()| {
                for k in 0..BURST {
                    let f: &mut HeapFrame = match k {
                        0 | 11 | 22 => {
                            port = port.wrapping_add(1);
                            let i = usize::from(port) % s.syns.len();
                            let syn = &mut s.syns[i];
                            // A new client port: a new connection.
                            syn.bytes_mut()[34..36].copy_from_slice(&(port | 0x8000).to_be_bytes());
                            syn
                        }
                        1..=6 => {
                            ack = (ack + 1) % s.acks.len();
                            &mut s.acks[ack]
                        }
                        7..=9 => {
                            other = (other + 1) % s.foreign.len();
                            &mut s.foreign[other]
                        }
                        10 => &mut s.other_host,
                        _ => {
                            est = (est + 1) % s.established.len();
                            &mut s.established[est]
                        }
                    };
                    arrive(f);
                    black_box(s.pipeline.process(WIRE, f, now));
                }
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
    let counters = s.pipeline.counters();
    eprintln!(
        "pipeline counters after the run: flow_hit {}, syn_accepted {}, syn_other_inspector {}, vip_no_flow {}, drop_other_host {}, flows live {}",
        counters.get(shoal_dataplane::counters::Counter::FlowHit),
        counters.get(shoal_dataplane::counters::Counter::SynAccepted),
        counters.get(shoal_dataplane::counters::Counter::SynOtherInspector),
        counters.get(shoal_dataplane::counters::Counter::VipNoFlow),
        counters.get(shoal_dataplane::counters::Counter::DropOtherHost),
        s.pipeline.flows().len(),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench
}
criterion_main!(benches);
