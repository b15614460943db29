//! Flow table micro-benchmarks at one million flows with random keys:
//! lookup of a present key, lookup of an absent key, and churn (insert a new
//! flow and remove an old one, keeping the table at one million).
//!
//! Run: `cargo bench -p shoal-perf --bench flow`; figures in `perf/README.md`.

use core::net::Ipv4Addr;
use core::time::Duration;
use std::hint::black_box;

use criterion::{Criterion, Throughput};
use shoal_dataplane::flow::{FlowKey, FlowState, FlowTable, Insert, Timeouts};
use shoal_wire::time::Instant;

/// Flows in the table during every benchmark.
const FLOWS: usize = 1_000_000;
/// The table's capacity: the configuration's default, 1 Mi.
const CAPACITY: usize = 1 << 20;
/// Distinct probe keys per benchmark, visited in a random order.
const PROBES: usize = 1 << 20;

/// The per-flow value: 16 bytes, the size of a typical action (rewrite
/// target, sequence offsets).
type Value = [u64; 2];

/// xorshift64*: deterministic random keys without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A random client (any address, ephemeral port) to the VIP on `dst_port`.
    fn key(&mut self, dst_port: u16) -> FlowKey {
        let r = self.next();
        FlowKey::new(
            Ipv4Addr::from((r >> 32) as u32),
            1024 + (r as u16 % 64_512),
            Ipv4Addr::new(198, 18, 0, 1),
            dst_port,
            6,
        )
    }
}

/// A table holding `FLOWS` established flows on port 443, and their keys in
/// insertion order.
fn full_table(rng: &mut Rng, now: Instant) -> (FlowTable<Value>, Vec<FlowKey>) {
    let mut table = FlowTable::new(CAPACITY, Timeouts::default());
    let mut keys = Vec::with_capacity(FLOWS);
    while keys.len() < FLOWS {
        let key = rng.key(443);
        if table.insert(key, FlowState::Established, [keys.len() as u64, 0], now)
            == Insert::Inserted
        {
            keys.push(key);
        }
    }
    (table, keys)
}

fn flow_table(c: &mut Criterion) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let now = Instant::from_secs(86_400);
    let (mut table, mut keys) = full_table(&mut rng, now);
    let hits: Vec<FlowKey> = (0..PROBES)
        .map(|_| keys[(rng.next() % FLOWS as u64) as usize])
        .collect();
    // Port 80: never in the table.
    let misses: Vec<FlowKey> = (0..PROBES).map(|_| rng.key(80)).collect();

    let mut group = c.benchmark_group("flow_table_1M");
    group.throughput(Throughput::Elements(1));

    let mut i = 0;
    group.bench_function("lookup_touch_hit", |b| {
        b.iter(|| {
            let key = &hits[i % PROBES];
            i += 1;
            black_box(table.lookup_touch(key, now).map(|f| f.value[0]))
        });
    });
    assert_eq!(table.len(), FLOWS);

    let mut i = 0;
    group.bench_function("lookup_touch_miss", |b| {
        b.iter(|| {
            let key = &misses[i % PROBES];
            i += 1;
            black_box(table.lookup_touch(key, now).is_some())
        });
    });

    // One iteration = one insert of a new random key + one remove of the
    // oldest key: the table stays at FLOWS.
    let mut i = 0;
    group.bench_function("churn_insert_remove", |b| {
        b.iter(|| {
            let slot = i % FLOWS;
            i += 1;
            black_box(table.remove(&keys[slot]));
            let key = rng.key(443);
            let outcome = table.insert(key, FlowState::Syn, [i as u64, 0], now);
            black_box(outcome == Insert::Inserted);
            keys[slot] = key;
        });
    });
    group.finish();
    assert!(table.len() <= FLOWS);
    assert_eq!(
        table.stats().rejected_full + table.stats().evicted_total(),
        0
    );
    // Keep the sweep honest too: nothing is due an hour before the timeouts.
    assert_eq!(table.expire(now + Duration::from_secs(1), usize::MAX), 0);
}

// What `criterion_group!`/`criterion_main!` expand to, minus the undocumented
// public function they generate.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    flow_table(&mut criterion);
    criterion.final_summary();
}
