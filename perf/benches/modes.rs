//! Per-mode cost of the pipeline on established flows, one core.
//!
//! Member srv1 of the example 3-member cluster holds 1024 established flows
//! it inspects, in each mode:
//! - `local`: forwarded to its own kernel (destination MAC rewritten);
//! - `dpr-mac`: stateful, srv1 over `max_load`, every flow placed on srv3
//!   (least loaded): destination MAC rewritten, sent on the wire;
//! - `dpr-ipip`: the same with IP-in-IP: 20-byte outer header prepended,
//!   outer checksum computed;
//! - `dpr-stateless-mac`: no flow on the inspector, the inspector and target
//!   ring lookups per packet (splitmix64 key hash, the default);
//!   `dpr-stateless-mac-md5` the same with `key_hash = "md5"` (DTS).
//!
//! Each mode also as `<mode>_burst`: the same bursts through
//! `Pipeline::process_burst`.
//!
//! Each iteration processes a fresh copy of a 32-frame burst; criterion's
//! batched setup makes the copies outside the measured time.
// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shoal_config::{KeyHash, LoadChoice, Mode, State};
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::Frame;
use shoal_dataplane::pipeline::{MemberEntry, Pipeline, Tables, Verdict, WIRE};
use shoal_dataplane::traffic::{client_endpoint, tcp_frame, tcp_header, Endpoint};
use shoal_perf::ThreadCpuTime;
use shoal_select::ClientKey;
use shoal_wire::time::Instant;
use shoal_wire::{EthernetAddress, TcpFlags};

const BURST: usize = 32;
const FLOWS: usize = 1024;

fn setup(mode: Mode, state: State, key_hash: KeyHash) -> (Pipeline, Vec<HeapFrame>) {
    let mut cfg = shoal_perf::bench_config();
    cfg.services[0].selection.key_hash = key_hash;
    cfg.services[0].mode = mode;
    cfg.services[0].state = state;
    cfg.services[0].selection.max_load = Some(0.5);
    cfg.services[0].selection.load_choice = LoadChoice::LeastLoaded;
    let loads = [0.9, 0.4, 0.1];
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
    let tables = Arc::new(Tables::build(&cfg, 1, members).expect("tables"));
    let svc = Endpoint {
        mac: EthernetAddress(cfg.cluster.mac.0),
        ip: Ipv4Addr::new(198, 18, 0, 100),
        port: 80,
    };
    let mut p = Pipeline::new(
        Arc::clone(&tables),
        1 << 16,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    let mut frames = Vec::new();
    let mut i = 0u32;
    while frames.len() < FLOWS {
        let c = client_endpoint(i % 1000, 2000 + (i / 1000) as u16);
        i += 1;
        let key = ClientKey {
            addr: c.ip,
            port: c.port,
        };
        if tables.services[0].selector.select(key) != Some(1) {
            continue;
        }
        let syn = tcp_frame(
            &c,
            &svc,
            &tcp_header(c.port, 80, 1000, None, TcpFlags::SYN),
            &[],
            1,
        );
        let mut f = HeapFrame::from_bytes(&syn);
        let _ = p.process(WIRE, &mut f, Instant::ZERO);
        let data = tcp_header(c.port, 80, 1001, Some(5001), TcpFlags::PSH);
        frames.push(HeapFrame::from_bytes(&tcp_frame(
            &c,
            &svc,
            &data,
            &[0x41; 512],
            2,
        )));
    }
    (p, frames)
}

fn bench(crit: &mut Criterion<ThreadCpuTime>) {
    let mut g = crit.benchmark_group("modes");
    g.throughput(Throughput::Elements(BURST as u64));
    let fast = KeyHash::Splitmix64;
    for (name, mode, state, key_hash) in [
        ("local", Mode::Local, State::Stateful, fast),
        ("dpr-mac", Mode::DprMac, State::Stateful, fast),
        ("dpr-ipip", Mode::DprIpip, State::Stateful, fast),
        ("dpr-stateless-mac", Mode::DprMac, State::Stateless, fast),
        (
            "dpr-stateless-mac-md5",
            Mode::DprMac,
            State::Stateless,
            KeyHash::Md5,
        ),
    ] {
        let (mut p, frames) = setup(mode, state, key_hash);
        let mut at = 0usize;
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    at = (at + BURST) % FLOWS;
                    frames[at..at + BURST].to_vec()
                },
                |mut burst| {
                    for f in &mut burst {
                        black_box(p.process(WIRE, f, Instant::ZERO));
                    }
                    burst
                },
                BatchSize::SmallInput,
            );
        });
        let mut verdicts = Vec::with_capacity(BURST);
        g.bench_function(format!("{name}_burst"), |b| {
            b.iter_batched(
                || {
                    at = (at + BURST) % FLOWS;
                    frames[at..at + BURST].to_vec()
                },
                |mut burst| {
                    p.process_burst(WIRE, &mut burst, Instant::ZERO, &mut verdicts);
                    black_box(&verdicts);
                    burst
                },
                BatchSize::SmallInput,
            );
        });
        // Where the frames went, so the figure is not of the wrong path.
        let mut f = frames[0].clone();
        let v = p.process(WIRE, &mut f, Instant::ZERO);
        eprintln!("{name}: verdict {v:?}, frame {} bytes", f.len());
        assert!(matches!(v, Verdict::Forward(_)));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench
}
criterion_main!(benches);
