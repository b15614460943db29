//! Unit tests of the flow table, driven by a made-up clock, and a model test
//! against a plain `HashMap` with linear scans.

// `Duration::from_mins` needs Rust 1.91; the workspace's MSRV is 1.80.
#![allow(clippy::duration_suboptimal_units)]

use core::net::Ipv4Addr;
use core::time::Duration;
use std::collections::HashMap;

use proptest::prelude::*;

use super::wheel::tick_of;
use super::*;
use shoal_wire::time::Instant;

const NS: Duration = Duration::from_nanos(1);
/// An arbitrary, tick-unaligned start (the clock is not zero at boot).
const T0: Instant = Instant::from_nanos(1_000_000_000_123);

/// `t - d` (the crate's `Instant` only adds).
fn minus(t: Instant, d: Duration) -> Instant {
    Instant::from_nanos(t.as_nanos() - d.as_nanos() as u64)
}

fn key(n: u16) -> FlowKey {
    FlowKey::new(
        Ipv4Addr::new(192, 0, 2, 1),
        40_000 + n,
        Ipv4Addr::new(198, 18, 0, 1),
        80,
        6,
    )
}

fn timeouts() -> Timeouts {
    Timeouts {
        syn: Duration::from_secs(5),
        established: Duration::from_secs(300),
        closing: Duration::from_secs(10),
        tombstone: Duration::from_secs(60),
    }
}

fn table(capacity: usize) -> FlowTable<u32> {
    FlowTable::new(capacity, timeouts())
}

#[test]
fn key_reversal_hashing_and_display() {
    let k = key(1);
    let r = k.reversed();
    assert_eq!(r.src, Ipv4Addr::new(198, 18, 0, 1));
    assert_eq!(r.dst, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!((r.src_port, r.dst_port, r.proto), (80, 40_001, 6));
    assert_eq!(r.reversed(), k);
    assert_eq!(k.to_string(), "6 192.0.2.1:40001 -> 198.18.0.1:80");
    assert_eq!(core::mem::size_of::<FlowKey>(), 14);
    // A free slot costs nothing extra: `None` uses the state's niche.
    assert_eq!(core::mem::size_of::<Option<Flow<[u64; 2]>>>(), 40);
    // Packing is injective across fields: a port moved into the protocol's
    // bits or an address swapped must not collide.
    let packed = (0xC000_0201_u128 << 72) | (0xC612_0001 << 40) | (40_001 << 24) | (80 << 8) | 6;
    assert_eq!(k.packed(), packed);
    assert_ne!(k.packed(), r.packed());
    let mut t = table(4);
    assert_eq!(t.insert(k, FlowState::Syn, 1, T0), Insert::Inserted);
    assert!(t.get(&r).is_none());
    assert_eq!(t.get(&k).map(|f| f.value), Some(1));
}

#[test]
fn timeouts_from_config() {
    let config = shoal_config::FlowTimeouts {
        syn_ms: 1500,
        established_s: 120,
        closing_s: 7,
        tombstone_s: 30,
    };
    let t = Timeouts::from_config(&config);
    assert_eq!(t.syn, Duration::from_millis(1500));
    assert_eq!(t.established, Duration::from_secs(120));
    assert_eq!(t.closing, Duration::from_secs(7));
    assert_eq!(t.tombstone, Duration::from_secs(30));
    assert_eq!(Timeouts::default(), timeouts());
    assert_eq!(t.get(FlowState::Closing), Duration::from_secs(7));
}

#[test]
fn each_state_expires_exactly_at_its_deadline_in_the_sweep() {
    for state in FlowState::ALL {
        let mut t = table(8);
        assert_eq!(t.insert(key(1), state, 7, T0), Insert::Inserted);
        let deadline = T0 + timeouts().get(state);
        assert_eq!(t.expire(minus(deadline, NS), usize::MAX), 0);
        assert_eq!(
            t.get(&key(1)).map(|f| (f.state(), f.value)),
            Some((state, 7)),
            "{state}"
        );
        assert_eq!(t.expire(deadline, usize::MAX), 1, "{state}");
        assert!(t.get(&key(1)).is_none());
        let mut expired = [0; 4];
        expired[state.index()] = 1;
        assert_eq!(t.stats().expired, expired);
        assert_eq!(t.count_by_state(), [0; 4]);
        assert_eq!(t.len(), 0);
    }
}

#[test]
fn each_state_is_dead_to_lookups_exactly_at_its_deadline() {
    for state in FlowState::ALL {
        let mut t = table(8);
        assert_eq!(t.insert(key(1), state, 7, T0), Insert::Inserted);
        let deadline = T0 + timeouts().get(state);
        let before = minus(deadline, NS);
        // `get` does not touch: probing just before keeps the deadline.
        assert!(t.get(&key(1)).is_some());
        let mut t2 = table(8);
        assert_eq!(t2.insert(key(1), state, 7, T0), Insert::Inserted);
        assert_eq!(t2.lookup_touch(&key(1), before).map(|f| f.value), Some(7));
        // Without the sweep: the lookup itself finds the flow dead.
        assert!(t.lookup_touch(&key(1), deadline).is_none(), "{state}");
        assert!(t.get(&key(1)).is_none());
        assert_eq!(t.stats().expired[state.index()], 1);
        assert_eq!(t.len(), 0);
    }
}

#[test]
fn touch_extends_life() {
    let mut t = table(8);
    assert_eq!(
        t.insert(key(1), FlowState::Established, 1, T0),
        Insert::Inserted
    );
    let touched = T0 + Duration::from_secs(200);
    assert!(t.touch(&key(1), touched));
    assert_eq!(t.get(&key(1)).map(Flow::last_seen), Some(touched));
    // The original deadline passes: the sweep re-arms instead of expiring.
    assert_eq!(t.expire(T0 + Duration::from_secs(300), usize::MAX), 0);
    let deadline = touched + Duration::from_secs(300);
    assert_eq!(t.expire(minus(deadline, NS), usize::MAX), 0);
    assert_eq!(t.len(), 1);
    assert_eq!(t.expire(deadline, usize::MAX), 1);
    assert_eq!(t.stats().expired, [0, 1, 0, 0]);
    // A touch of an unknown key does nothing.
    assert!(!t.touch(&key(2), deadline));
}

#[test]
fn an_earlier_touch_never_moves_last_seen_back() {
    let mut t = table(8);
    assert_eq!(t.insert(key(1), FlowState::Syn, 1, T0), Insert::Inserted);
    let later = T0 + Duration::from_secs(2);
    assert!(t.touch(&key(1), later));
    assert!(t.touch(&key(1), T0));
    assert_eq!(t.get(&key(1)).map(Flow::last_seen), Some(later));
    assert!(t.set_state(&key(1), FlowState::Established, T0));
    assert_eq!(
        t.insert(key(1), FlowState::Closing, 2, T0),
        Insert::Replaced
    );
    assert_eq!(t.get(&key(1)).map(Flow::last_seen), Some(later));
}

#[test]
fn state_change_changes_the_timeout() {
    let mut t = table(8);
    assert_eq!(
        t.insert(key(1), FlowState::Established, 1, T0),
        Insert::Inserted
    );
    assert_eq!(t.insert(key(2), FlowState::Syn, 2, T0), Insert::Inserted);
    let fin = T0 + Duration::from_secs(1);
    // Shorter: Established (300 s) -> Closing (10 s from the change).
    assert!(t.set_state(&key(1), FlowState::Closing, fin));
    // Longer: Syn (5 s) -> Established (300 s from the change).
    assert!(t.set_state(&key(2), FlowState::Established, fin));
    assert_eq!(t.count_by_state(), [0, 1, 1, 0]);
    let closing_deadline = fin + Duration::from_secs(10);
    assert_eq!(t.expire(minus(closing_deadline, NS), usize::MAX), 0);
    assert_eq!(t.expire(closing_deadline, usize::MAX), 1);
    assert!(t.get(&key(1)).is_none());
    let est_deadline = fin + Duration::from_secs(300);
    assert_eq!(t.expire(minus(est_deadline, NS), usize::MAX), 0);
    assert_eq!(t.expire(est_deadline, usize::MAX), 1);
    assert_eq!(t.stats().expired, [0, 1, 1, 0]);
    // Unknown or dead keys: no change.
    assert!(!t.set_state(&key(1), FlowState::Established, est_deadline));
}

#[test]
fn handle_changes_state_value_and_removes_without_rehashing() {
    let mut t = table(8);
    assert_eq!(t.insert(key(1), FlowState::Syn, 10, T0), Insert::Inserted);
    let ack = T0 + Duration::from_millis(30);
    {
        let mut flow = t.lookup_touch(&key(1), ack).expect("live flow");
        assert_eq!(
            (flow.key(), flow.state(), flow.value, flow.last_seen()),
            (key(1), FlowState::Syn, 10, ack)
        );
        *flow.value_mut() += 1;
        flow.set_state(FlowState::Established, ack);
        assert_eq!(flow.state(), FlowState::Established);
    }
    assert_eq!(t.count_by_state(), [0, 1, 0, 0]);
    *t.get_mut(&key(1)).expect("live flow").into_value_mut() += 1;
    assert_eq!(t.get(&key(1)).map(|f| f.value), Some(12));
    let value = t.lookup_touch(&key(1), ack).expect("live flow").remove();
    assert_eq!(value, 12);
    assert_eq!(t.len(), 0);
    assert_eq!(t.stats().removed, 1);
    // The removed flow's timer is gone too.
    assert_eq!(t.expire(ack + Duration::from_secs(1000), usize::MAX), 0);
}

#[test]
fn stats_and_gauges() {
    let mut t = table(8);
    assert_eq!(t.insert(key(1), FlowState::Syn, 1, T0), Insert::Inserted);
    assert_eq!(t.insert(key(2), FlowState::Syn, 2, T0), Insert::Inserted);
    assert_eq!(
        t.insert(key(3), FlowState::Tombstone, 3, T0),
        Insert::Inserted
    );
    assert_eq!(
        t.insert(key(2), FlowState::Established, 20, T0),
        Insert::Replaced
    );
    assert_eq!(
        t.get(&key(2)).map(|f| (f.state(), f.value)),
        Some((FlowState::Established, 20))
    );
    assert_eq!(t.count_by_state(), [1, 1, 0, 1]);
    assert_eq!(t.remove(&key(3)), Some(3));
    assert_eq!(t.remove(&key(3)), None);
    // key(1) (Syn, 5 s) is dead at T0 + 5 s: re-inserting expires it first.
    let later = T0 + Duration::from_secs(5);
    assert_eq!(
        t.insert(key(1), FlowState::Syn, 100, later),
        Insert::Inserted
    );
    assert_eq!(
        *t.stats(),
        FlowStats {
            inserts: 4,
            replaced: 1,
            expired: [1, 0, 0, 0],
            evicted: [0; 4],
            rejected_full: 0,
            removed: 1,
        }
    );
    assert_eq!(t.count_by_state(), [1, 1, 0, 0]);
    assert_eq!(t.len(), 2);
    let mut held: Vec<_> = t.iter().map(|f| (f.key(), f.value)).collect();
    held.sort_unstable();
    assert_eq!(held, vec![(key(1), 100), (key(2), 20)]);
}

#[test]
fn eviction_prefers_tombstone_then_syn_then_closing_then_established() {
    let mut t = table(4);
    // Established is the oldest (nearest its deadline in absolute terms? no:
    // 300 s) and Tombstone the newest: the order is by state, not age.
    assert_eq!(
        t.insert(key(1), FlowState::Established, 1, T0),
        Insert::Inserted
    );
    assert_eq!(
        t.insert(key(2), FlowState::Closing, 2, T0),
        Insert::Inserted
    );
    assert_eq!(t.insert(key(3), FlowState::Syn, 3, T0), Insert::Inserted);
    assert_eq!(
        t.insert(key(4), FlowState::Tombstone, 4, T0),
        Insert::Inserted
    );
    let now = T0 + Duration::from_secs(1);
    let mut evicted = Vec::new();
    for n in 10..14 {
        match t.insert(key(n), FlowState::Established, u32::from(n), now) {
            Insert::InsertedAfterEvicting { evicted: k } => evicted.push(k),
            other => panic!("expected an eviction, got {other:?}"),
        }
        assert_eq!(t.len(), 4);
    }
    assert_eq!(evicted, vec![key(4), key(3), key(2), key(1)]);
    assert_eq!(t.stats().evicted, [1, 1, 1, 1]);
    assert_eq!(t.count_by_state(), [0, 4, 0, 0]);
    // Now all Established: the next victim is the one nearest its deadline.
    assert!(t.touch(&key(10), now + Duration::from_secs(3)));
    assert!(t.touch(&key(12), now + Duration::from_secs(3)));
    assert!(t.touch(&key(13), now + Duration::from_secs(3)));
    assert_eq!(
        t.insert(key(20), FlowState::Syn, 20, now + Duration::from_secs(4)),
        Insert::InsertedAfterEvicting { evicted: key(11) }
    );
}

#[test]
fn eviction_within_a_state_takes_the_nearest_deadline() {
    let mut t = table(3);
    for n in 0..3u16 {
        let at = T0 + Duration::from_millis(100 * u64::from(n));
        assert_eq!(
            t.insert(key(n), FlowState::Syn, u32::from(n), at),
            Insert::Inserted
        );
    }
    // key(0) is refreshed: key(1) becomes the nearest to its deadline.
    assert!(t.touch(&key(0), T0 + Duration::from_millis(300)));
    let now = T0 + Duration::from_millis(400);
    assert_eq!(
        t.insert(key(9), FlowState::Syn, 9, now),
        Insert::InsertedAfterEvicting { evicted: key(1) }
    );
    assert_eq!(t.stats().evicted, [1, 0, 0, 0]);
}

#[test]
fn a_full_table_reclaims_dead_flows_before_evicting() {
    let mut t = table(2);
    assert_eq!(t.insert(key(1), FlowState::Syn, 1, T0), Insert::Inserted);
    assert_eq!(
        t.insert(key(2), FlowState::Established, 2, T0),
        Insert::Inserted
    );
    // key(1) is dead (Syn, 5 s) though never swept: no live flow is evicted.
    let now = T0 + Duration::from_secs(6);
    assert_eq!(t.insert(key(3), FlowState::Syn, 3, now), Insert::Inserted);
    assert_eq!(t.stats().evicted, [0; 4]);
    assert_eq!(t.stats().expired, [1, 0, 0, 0]);
    assert!(t.get(&key(2)).is_some());
}

#[test]
fn capacity_zero_rejects() {
    let mut t = table(0);
    assert_eq!(t.insert(key(1), FlowState::Syn, 1, T0), Insert::Rejected);
    assert_eq!(t.stats().rejected_full, 1);
    assert_eq!((t.len(), t.capacity()), (0, 0));
    assert_eq!(t.expire(T0, usize::MAX), 0);
}

#[test]
fn capacity_is_never_exceeded_under_a_syn_flood() {
    let mut t = table(64);
    for n in 0..16 {
        assert_eq!(
            t.insert(key(n), FlowState::Established, 0, T0),
            Insert::Inserted
        );
    }
    for n in 100..1100u16 {
        let now = T0 + Duration::from_millis(u64::from(n));
        let outcome = t.insert(key(n), FlowState::Syn, u32::from(n), now);
        assert!(matches!(
            outcome,
            Insert::Inserted | Insert::InsertedAfterEvicting { .. }
        ));
        assert!(t.len() <= 64);
        assert_eq!(t.count_by_state().iter().sum::<usize>(), t.len());
    }
    // The flood recycled half-open flows only; established ones survived.
    assert_eq!(t.count_by_state(), [48, 16, 0, 0]);
    assert_eq!(t.stats().evicted, [1000 - 48, 0, 0, 0]);
    for n in 0..16 {
        assert!(t.get(&key(n)).is_some());
    }
    // The survivors are the 48 newest SYNs.
    for n in 1052..1100 {
        assert!(t.get(&key(n)).is_some(), "{n}");
    }
}

#[test]
fn the_sweep_respects_its_budget() {
    let mut t = table(256);
    for n in 0..100 {
        assert_eq!(t.insert(key(n), FlowState::Syn, 0, T0), Insert::Inserted);
    }
    let later = T0 + Duration::from_secs(6);
    let mut rounds = Vec::new();
    loop {
        let n = t.expire(later, 30);
        rounds.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(rounds, vec![30, 30, 30, 10, 0]);
    assert_eq!(t.len(), 0);
    assert_eq!(t.expire(later, 0), 0);
}

#[test]
fn long_timeouts_and_long_gaps() {
    // Established (300 s) outlives the wheel's 68.7 s window: parked and
    // re-armed several times, it still expires exactly on time.
    let mut t = table(8);
    assert_eq!(
        t.insert(key(1), FlowState::Established, 1, T0),
        Insert::Inserted
    );
    for s in [60, 100, 150, 200, 250, 299] {
        assert_eq!(t.expire(T0 + Duration::from_secs(s), usize::MAX), 0, "{s}");
    }
    let deadline = T0 + Duration::from_secs(300);
    assert_eq!(t.expire(minus(deadline, NS), usize::MAX), 0);
    assert_eq!(t.expire(deadline, usize::MAX), 1);
    // A gap of ten days between sweeps, with flows of every state.
    for (n, state) in FlowState::ALL.into_iter().enumerate() {
        let n = n as u16;
        assert_eq!(t.insert(key(n), state, 0, deadline), Insert::Inserted);
    }
    assert_eq!(
        t.expire(deadline + Duration::from_secs(864_000), usize::MAX),
        4
    );
    assert_eq!(t.stats().expired, [1, 2, 1, 1]);
}

#[test]
fn deadlines_inside_the_current_tick() {
    // Two flows due within the same 16.8 ms tick: the sweep at the first
    // deadline must take exactly the first, and a later sweep in the same
    // tick the second.
    let base = Instant::from_nanos((tick_of(T0.as_nanos()) + 10) << 24);
    let syn = Duration::from_secs(5);
    let t1 = base;
    let t2 = base + Duration::from_millis(3);
    let (d1, d2) = (t1 + syn, t2 + syn);
    assert_eq!(tick_of(d1.as_nanos()), tick_of(d2.as_nanos()));
    let mut t = table(8);
    assert_eq!(t.insert(key(1), FlowState::Syn, 1, t1), Insert::Inserted);
    assert_eq!(t.insert(key(2), FlowState::Syn, 2, t2), Insert::Inserted);
    assert_eq!(t.expire(minus(d1, NS), usize::MAX), 0);
    assert_eq!(t.expire(d1, usize::MAX), 1);
    assert!(t.get(&key(1)).is_none());
    assert_eq!(t.expire(d1 + Duration::from_millis(1), usize::MAX), 0);
    // A flow inserted now with a deadline in the current tick is still seen.
    let mut short = timeouts();
    short.closing = Duration::from_millis(1);
    let mut t3 = FlowTable::new(8, short);
    assert_eq!(t3.insert(key(5), FlowState::Syn, 0, t1), Insert::Inserted);
    assert_eq!(
        t3.expire(minus(d1, Duration::from_millis(2)), usize::MAX),
        0
    );
    let now = minus(d1, Duration::from_millis(2));
    assert_eq!(
        t3.insert(key(6), FlowState::Closing, 0, now),
        Insert::Inserted
    );
    assert_eq!(t3.expire(now + Duration::from_millis(1), usize::MAX), 1);
    assert!(t3.get(&key(6)).is_none());
    assert_eq!(t.expire(minus(d2, NS), usize::MAX), 0);
    assert_eq!(t.expire(d2, usize::MAX), 1);
    assert_eq!(t.len(), 0);
}

// ---- model test -------------------------------------------------------------

/// Short timeouts so random time steps cross them often; `scale` 1 makes
/// expiry dominate, larger scales keep the table full and make eviction
/// dominate.
fn model_timeouts(scale: u32) -> Timeouts {
    Timeouts {
        syn: Duration::from_millis(300) * scale,
        established: Duration::from_secs(3) * scale,
        closing: Duration::from_millis(700) * scale,
        tombstone: Duration::from_secs(2) * scale,
    }
}

const MODEL_CAPACITY: usize = 12;
const MODEL_KEYS: u16 = 20;

#[derive(Debug, Clone)]
enum Op {
    Insert(u16, FlowState, u32),
    Lookup(u16),
    Get(u16),
    SetState(u16, FlowState),
    Remove(u16),
    /// `None`: unbounded.
    Expire(Option<usize>),
    Advance(u64),
    /// Jump to the deadline of a flow, plus -1, 0 or 1 ns (if held and later).
    AdvanceToDeadline(u16, i8),
}

fn state() -> impl Strategy<Value = FlowState> {
    prop::sample::select(FlowState::ALL.to_vec())
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..MODEL_KEYS;
    prop_oneof![
        4 => (k.clone(), state(), any::<u32>()).prop_map(|(k, s, v)| Op::Insert(k, s, v)),
        3 => k.clone().prop_map(Op::Lookup),
        1 => k.clone().prop_map(Op::Get),
        2 => (k.clone(), state()).prop_map(|(k, s)| Op::SetState(k, s)),
        1 => k.prop_map(Op::Remove),
        1 => prop::option::of(0..6usize).prop_map(Op::Expire),
        2 => (0..20_000_000u64).prop_map(Op::Advance),
        2 => (0..400_000_000u64).prop_map(Op::Advance),
        1 => (0..5_000_000_000u64).prop_map(Op::Advance),
        2 => (0..MODEL_KEYS, -1..=1i8).prop_map(|(k, d)| Op::AdvanceToDeadline(k, d)),
    ]
}

/// The reference: what the table holds (live, or dead and possibly not yet
/// reclaimed), as `key -> (state, value, last_seen)`.
struct Model {
    flows: HashMap<FlowKey, (FlowState, u32, Instant)>,
    timeouts: Timeouts,
}

impl Model {
    fn deadline(&self, entry: &(FlowState, u32, Instant)) -> Instant {
        entry.2 + self.timeouts.get(entry.0)
    }

    fn live(&self, k: &FlowKey, now: Instant) -> Option<(FlowState, u32, Instant)> {
        self.flows
            .get(k)
            .filter(|e| now < self.deadline(e))
            .copied()
    }

    /// Eviction preference, written out independently of the code under test.
    fn rank(state: FlowState) -> usize {
        match state {
            FlowState::Tombstone => 0,
            FlowState::Syn => 1,
            FlowState::Closing => 2,
            FlowState::Established => 3,
        }
    }
}

/// Drops from the model the dead flows the table has reclaimed, then checks
/// that both hold exactly the same flows.
fn sync_and_compare(table: &FlowTable<u32>, model: &mut Model, now: Instant) {
    let timeouts = model.timeouts;
    model
        .flows
        .retain(|k, e| now < e.2 + timeouts.get(e.0) || table.get(k).is_some());
    for n in 0..MODEL_KEYS {
        let k = key(n);
        let held = table.get(&k).map(|f| (f.state(), f.value, f.last_seen()));
        assert_eq!(held, model.flows.get(&k).copied(), "flow {n}");
    }
    assert_eq!(table.len(), model.flows.len());
    let mut counts = [0; 4];
    for e in model.flows.values() {
        counts[e.0.index()] += 1;
    }
    assert_eq!(table.count_by_state(), counts);
    let s = table.stats();
    assert_eq!(
        s.inserts,
        table.len() as u64 + s.removed + s.expired_total() + s.evicted_total()
    );
}

fn run_model(ops: &[Op], scale: u32) {
    let mut table = FlowTable::new(MODEL_CAPACITY, model_timeouts(scale));
    let mut model = Model {
        flows: HashMap::new(),
        timeouts: model_timeouts(scale),
    };
    let mut now = T0;
    for op in ops {
        match *op {
            Op::Insert(n, state, value) => {
                let k = key(n);
                let before = model.flows.clone();
                let outcome = table.insert(k, state, value, now);
                match outcome {
                    Insert::Replaced => {
                        let old = model.live(&k, now).expect("replaced a live flow");
                        model.flows.insert(k, (state, value, old.2.max(now)));
                    }
                    Insert::Inserted => {
                        assert!(model.live(&k, now).is_none());
                        model.flows.insert(k, (state, value, now));
                    }
                    Insert::InsertedAfterEvicting { evicted } => {
                        assert!(model.live(&k, now).is_none());
                        let victim = model.live(&evicted, now).expect("evicted a live flow");
                        // Every dead flow was reclaimed first (the table is
                        // small enough for one sweep to find them all); no
                        // flow of a more evictable state, and none of the same
                        // state nearer its deadline, was left.
                        for (other, e) in &before {
                            assert!(now < model.deadline(e), "evicted while {other} was dead");
                            if *other == evicted {
                                continue;
                            }
                            assert!(Model::rank(e.0) >= Model::rank(victim.0));
                            if e.0 == victim.0 {
                                assert!(model.deadline(e) >= model.deadline(&victim));
                            }
                        }
                        assert_eq!(before.len(), MODEL_CAPACITY);
                        model.flows.remove(&evicted);
                        model.flows.insert(k, (state, value, now));
                    }
                    Insert::Rejected => panic!("rejected with capacity {MODEL_CAPACITY}"),
                }
            }
            Op::Lookup(n) => {
                let k = key(n);
                let got = table.lookup_touch(&k, now).map(|f| (f.state(), f.value));
                let want = model.live(&k, now);
                assert_eq!(got, want.map(|e| (e.0, e.1)));
                match want {
                    Some(e) => {
                        model.flows.insert(k, (e.0, e.1, e.2.max(now)));
                    }
                    None => {
                        model.flows.remove(&k);
                    }
                }
            }
            Op::Get(n) => {
                let k = key(n);
                let got = table.get(&k).map(|f| (f.state(), f.value, f.last_seen()));
                if model.live(&k, now).is_some() || !model.flows.contains_key(&k) {
                    assert_eq!(got, model.flows.get(&k).copied());
                }
            }
            Op::SetState(n, state) => {
                let k = key(n);
                let want = model.live(&k, now);
                assert_eq!(table.set_state(&k, state, now), want.is_some());
                match want {
                    Some(e) => {
                        model.flows.insert(k, (state, e.1, e.2.max(now)));
                    }
                    None => {
                        model.flows.remove(&k);
                    }
                }
            }
            Op::Remove(n) => {
                let k = key(n);
                let got = table.remove(&k);
                assert_eq!(got, model.flows.remove(&k).map(|e| e.1));
            }
            Op::Expire(budget) => {
                let dead = model
                    .flows
                    .values()
                    .filter(|e| now >= model.deadline(e))
                    .count();
                let n = table.expire(now, budget.unwrap_or(usize::MAX));
                if budget.is_none() {
                    assert_eq!(n, dead);
                    let timeouts = model.timeouts;
                    model.flows.retain(|_, e| now < e.2 + timeouts.get(e.0));
                } else {
                    assert!(n <= dead);
                }
            }
            Op::Advance(nanos) => now = now + Duration::from_nanos(nanos),
            Op::AdvanceToDeadline(n, delta) => {
                if let Some(e) = model.flows.get(&key(n)) {
                    let target = model
                        .deadline(e)
                        .as_nanos()
                        .saturating_add_signed(delta.into());
                    now = now.max(Instant::from_nanos(target));
                }
            }
        }
        sync_and_compare(&table, &mut model, now);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn behaves_like_the_reference_model(
        ops in prop::collection::vec(op(), 1..300),
        scale in prop::sample::select(vec![1u32, 30]),
    ) {
        run_model(&ops, scale);
    }
}
