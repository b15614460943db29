//! The cost of flow steering between workers (`steer.rs`, `worker.rs`), per
//! packet, one thread driving both workers in turn.
//!
//! Member srv1 of the example cluster (`deploy/examples/replay.toml`, local
//! mode) with 1024 established flows, two workers meshed by their steering
//! rings, bursts of 32 client data segments of established flows:
//! - `one_worker`: a single worker, no steering at all (the baseline);
//! - `own_queue`: two workers, every frame arrives on its owner's queue
//!   (what RSS programmed as `steer::owner` gives): classification only;
//! - `other_queue`: two workers, every frame arrives on the other worker's
//!   queue (a vdev or the TAP): classification, ring push, the owner's pop,
//!   then the same processing.
//!
//! The difference to `one_worker` is what steering costs per packet. The
//! frames are copied into the in-memory port outside the timed region; the
//! time is the thread's CPU time (one clock read per burst, in every
//! variant).

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::memory::MemoryIo;
use shoal_dataplane::pipeline::{Pipeline, Tables, WIRE};
use shoal_dataplane::steer::{self, Tuple};
use shoal_dataplane::traffic::{client_endpoint, tcp_frame, tcp_header, Endpoint};
use shoal_dataplane::worker::{Steering, Worker};
use shoal_perf::ThreadCpuTime;
use shoal_select::ClientKey;
use shoal_wire::time::Instant;
use shoal_wire::TcpFlags;

const FLOWS: u32 = 1024;
const BURST: usize = 32;

fn tables() -> Arc<Tables> {
    let cfg = shoal_perf::bench_config();
    Arc::new(Tables::from_config(&cfg, 1).expect("tables"))
}

fn workers(n: usize, t: &Arc<Tables>) -> Vec<Worker<MemoryIo>> {
    Steering::mesh(n, 1024)
        .into_iter()
        .map(|s| {
            let p = Pipeline::new(Arc::clone(t), 65_536, Timeouts::default());
            let mut w = Worker::new(MemoryIo::new(2), p, BURST);
            w.steer(s);
            w
        })
        .collect()
}

/// srv1's flows: (owner among two workers, SYN, data segment).
fn flows(t: &Tables) -> Vec<(usize, Vec<u8>, Vec<u8>)> {
    let vip = Endpoint {
        mac: t.cluster_mac,
        ip: t.vips[0],
        port: 80,
    };
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < FLOWS as usize {
        let c = client_endpoint(i, 20_000 + (i % 40_000) as u16);
        i += 1;
        let key = ClientKey {
            addr: c.ip,
            port: c.port,
        };
        if t.services[0].selector.select(key) != Some(t.own_id) {
            continue;
        }
        let owner = steer::owner(
            &Tuple {
                client: c.ip,
                client_port: c.port,
                vip: vip.ip,
                vip_port: 80,
            },
            2,
        );
        let syn = tcp_frame(
            &c,
            &vip,
            &tcp_header(c.port, 80, 1, None, TcpFlags::SYN),
            &[],
            1,
        );
        let data = tcp_frame(
            &c,
            &vip,
            &tcp_header(c.port, 80, 2, Some(1), TcpFlags::ACK | TcpFlags::PSH),
            &[b'x'; 64],
            2,
        );
        out.push((owner, syn, data));
    }
    out
}

/// Times `iters` bursts: `inject` queues a burst (untimed), then every
/// worker is polled until nothing moves (timed, the thread's CPU time:
/// `shoal_perf::ThreadCpuTime`, so other processes on shared cores add
/// nothing but evicted caches).
fn timed(
    ws: &mut [Worker<MemoryIo>],
    iters: u64,
    mut inject: impl FnMut(&mut [Worker<MemoryIo>], u64),
) -> Duration {
    let mut total = Duration::ZERO;
    for i in 0..iters {
        inject(ws, i);
        let t = ThreadCpuTime.start();
        loop {
            let moved: usize = ws
                .iter_mut()
                .map(|w| w.poll(Instant::from_millis(10)))
                .sum();
            if moved == 0 {
                break;
            }
        }
        total += ThreadCpuTime.end(t);
        for w in ws.iter_mut() {
            let _ = w.io_mut().take_tx(WIRE);
            let _ = w.io_mut().take_tx(1);
        }
    }
    total
}

fn bench(c: &mut Criterion<ThreadCpuTime>) {
    let t = tables();
    let flows = flows(&t);
    let data: [Vec<&Vec<u8>>; 2] = [0, 1].map(|w| {
        flows
            .iter()
            .filter(|(o, _, _)| *o == w)
            .map(|(_, _, d)| d)
            .collect()
    });
    let mut g = c.benchmark_group("steering");
    g.throughput(Throughput::Elements(BURST as u64));
    for (name, n) in [("one_worker", 1usize), ("own_queue", 2), ("other_queue", 2)] {
        let mut ws = workers(n, &t);
        // Establish every flow (SYNs through worker 0, steered as needed).
        for (_, syn, _) in &flows {
            ws[0].io_mut().inject(WIRE, syn);
        }
        timed(&mut ws, 1, |_, _| {});
        assert_eq!(
            ws.iter().map(|w| w.pipeline().flows().len()).sum::<usize>(),
            flows.len()
        );
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(&mut ws, iters, |ws, i| {
                    // Frames of worker 0's flows: on queue 0 (own) or 1 (other).
                    let queue = usize::from(name == "other_queue");
                    let frames = &data[0];
                    for k in 0..BURST {
                        let f = frames[(i as usize * BURST + k) % frames.len()];
                        ws[queue.min(ws.len() - 1)].io_mut().inject(WIRE, f);
                    }
                })
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
