//! The flow table allocates only in `FlowTable::new`: 100k mixed operations
//! afterwards (inserts with eviction and replacement, lookups, state changes,
//! removals, sweeps) make zero calls to the global allocator.
//!
//! The counts are the measuring thread's own (`shoal_alloc_count`): other
//! threads allocating meanwhile (libtest's, other tests') do not move them.

use core::net::Ipv4Addr;
use core::time::Duration;

use shoal_alloc_count::{CountingAlloc, Region};
use shoal_dataplane::flow::{FlowKey, FlowState, FlowTable, Insert, Timeouts};
use shoal_wire::time::Instant;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// xorshift64*: a deterministic operation mix without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 7/8 of a power of two: the worst case for a hash index sized for exactly
/// the capacity (87.5 % load, long overflow chains). The table's index is
/// fixed and sized for twice the capacity; an index that could grow would
/// fail this test.
const CAPACITY: usize = 1792;
/// More keys than slots: the table stays full and churns (insert, evict,
/// expire, remove).
const KEYS: usize = 3 * CAPACITY;
const OPS: usize = 100_000;

#[test]
fn no_allocation_after_construction() {
    let timeouts = Timeouts {
        syn: Duration::from_secs(2),
        established: Duration::from_secs(90),
        closing: Duration::from_secs(5),
        tombstone: Duration::from_secs(10),
    };
    let mut table: FlowTable<[u64; 2]> = FlowTable::new(CAPACITY, timeouts);
    let keys: Vec<FlowKey> = (0..KEYS)
        .map(|i| {
            let i = i as u32;
            FlowKey::new(
                Ipv4Addr::from(0xC612_0000 | (i >> 8)),
                1024 + (i & 0xff) as u16,
                Ipv4Addr::new(198, 19, 0, 1),
                443,
                6,
            )
        })
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut now = Instant::from_secs(86_400);
    let (mut hits, mut evictions, mut rejected) = (0u64, 0u64, 0u64);

    let region = Region::new();
    for op in 0..OPS {
        let key = &keys[rng.below(KEYS as u64) as usize];
        match rng.below(16) {
            0..=5 => {
                let state = FlowState::ALL[rng.below(4) as usize];
                match table.insert(*key, state, [op as u64, 0], now) {
                    Insert::InsertedAfterEvicting { .. } => evictions += 1,
                    Insert::Rejected => rejected += 1,
                    Insert::Inserted | Insert::Replaced => {}
                }
            }
            6..=10 => {
                if let Some(mut flow) = table.lookup_touch(key, now) {
                    hits += 1;
                    flow.value_mut()[1] += 1;
                    if flow.state() == FlowState::Syn {
                        flow.set_state(FlowState::Established, now);
                    }
                }
            }
            11 => {
                table.set_state(key, FlowState::Closing, now);
            }
            12 => {
                table.remove(key);
            }
            _ => {
                table.expire(now, 64);
            }
        }
        // Mostly packet-rate steps (the table fills and evicts), sometimes a
        // lull of seconds (flows of every state time out).
        let step = if rng.below(10_000) == 0 {
            20_000_000_000
        } else {
            200_000
        };
        now = now + Duration::from_nanos(rng.below(step));
    }
    let change = region.change();

    assert_eq!(change.allocations, 0, "{change:?}");
    assert_eq!(change.reallocations, 0, "{change:?}");
    assert_eq!(change.deallocations, 0, "{change:?}");
    // The mix really exercised every path.
    let stats = table.stats().clone();
    assert!(table.len() <= CAPACITY);
    assert_eq!(rejected, 0);
    eprintln!(
        "hits {hits} evictions {evictions} len {} {:?}",
        table.len(),
        stats
    );
    assert!(hits > 5_000, "{hits}");
    assert!(evictions > 1_000, "{evictions}");
    assert_eq!(stats.evicted_total(), evictions);
    assert!(stats.expired_total() > 1_000, "{stats:?}");
    assert!(stats.replaced > 1_000 && stats.removed > 1_000, "{stats:?}");
    assert_eq!(
        stats.inserts,
        table.len() as u64 + stats.removed + stats.expired_total() + stats.evicted_total()
    );
}
