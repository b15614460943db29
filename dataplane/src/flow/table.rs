//! [`FlowTable`]: the hash index, the slab of flows and the bookkeeping that
//! ties them to the timer wheel. See the parent module for the design.

use core::hash::BuildHasher;

use foldhash::fast::RandomState;

use super::index::Index;
use super::wheel::{tick_of, Wheel, NIL};
use super::{Flow, FlowKey, FlowState, FlowStats, Insert, Timeouts};
use shoal_wire::time::Instant;

/// How many flows of one state a full table examines to pick the one to
/// evict (the nearest to its deadline among them).
pub const EVICTION_SCAN: usize = 32;

/// A fixed-capacity flow table. See the [module documentation](super).
///
/// Memory, per flow of capacity: the index (`index.rs`: 64-byte buckets of
/// 8 tags and 4-byte slot numbers, sized for twice the capacity, so at most
/// half full and never resized) is 16 to 32 bytes depending on rounding to
/// a power of two; 12 bytes of wheel links; 4 bytes of free list; and one
/// `Option<Flow<V>>` (40 bytes for a 16-byte value; 48 for the pipeline's
/// 24-byte `FlowEntry`, checked at compile time in `pipeline/reuse.rs`).
/// The default 1 Mi flows take about 80 MiB with the pipeline's entry
/// (72 MiB with a 16-byte value), plus a 64 KiB wheel.
#[derive(Debug)]
pub struct FlowTable<V> {
    /// Key -> slot, comparing keys through `slots`.
    index: Index,
    hasher: RandomState,
    /// The flows; `None` = free.
    slots: Vec<Option<Flow<V>>>,
    /// Free slot numbers (a stack; never grows past the capacity).
    free: Vec<u32>,
    wheel: Wheel,
    timeouts: Timeouts,
    /// `timeouts` in nanoseconds by state index.
    timeout_ns: [u64; 4],
    by_state: [usize; 4],
    stats: FlowStats,
    /// Keys inserted or marked changed since the last
    /// [`FlowTable::take_changes`] (the write-ahead journal's input), when
    /// enabled; at most its capacity, then `changes_overflowed`.
    changes: Vec<FlowKey>,
    track_changes: bool,
    changes_overflowed: bool,
}

impl<V> FlowTable<V> {
    /// An empty table for `capacity` flows, allocating everything it will
    /// ever use.
    ///
    /// # Panics
    ///
    /// If `capacity` does not fit the table's 32-bit slot numbers
    /// (`capacity >= u32::MAX`), or on allocation failure.
    pub fn new(capacity: usize, timeouts: Timeouts) -> Self {
        assert!(
            capacity < NIL as usize,
            "flow table capacity {capacity} exceeds {}",
            NIL - 1
        );
        let mut slots = Vec::with_capacity(capacity);
        slots.resize_with(capacity, || None);
        FlowTable {
            index: Index::with_capacity(capacity),
            hasher: RandomState::default(),
            slots,
            // Popped from the end: slot 0 first.
            free: (0..capacity as u32).rev().collect(),
            wheel: Wheel::new(capacity),
            timeout_ns: timeouts.as_nanos(),
            timeouts,
            by_state: [0; 4],
            stats: FlowStats::default(),
            changes: Vec::new(),
            track_changes: false,
            changes_overflowed: false,
        }
    }

    /// Records the keys of inserted (and [`FlowTable::note_changed`]) flows
    /// from now on, up to `capacity` between two
    /// [`FlowTable::take_changes`] (allocated now).
    pub fn track_changes(&mut self, capacity: usize) {
        self.changes = Vec::with_capacity(capacity);
        self.track_changes = true;
    }

    /// Marks `key`'s flow as changed (its action), for the journal.
    pub fn note_changed(&mut self, key: FlowKey) {
        if self.track_changes {
            if self.changes.len() < self.changes.capacity() {
                self.changes.push(key);
            } else {
                self.changes_overflowed = true;
            }
        }
    }

    /// The keys recorded since the last call, and whether some did not fit
    /// (then only a full snapshot is complete).
    pub fn take_changes(&mut self) -> (std::vec::Drain<'_, FlowKey>, bool) {
        let overflowed = std::mem::take(&mut self.changes_overflowed);
        (self.changes.drain(..), overflowed)
    }

    /// Number of flows held (live, or dead but not reclaimed yet).
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether the table holds no flow.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fixed capacity.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The timeouts the table was built with.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Cumulative counters.
    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Flows held per state, indexed by [`FlowState::index`] (gauges; kept
    /// up to date on every change, O(1)). Sums to [`FlowTable::len`].
    pub fn count_by_state(&self) -> [usize; 4] {
        self.by_state
    }

    /// The flow of `key`, without touching it or checking its deadline (for
    /// inspection; the packet path uses [`FlowTable::lookup_touch`]).
    pub fn get(&self, key: &FlowKey) -> Option<&Flow<V>> {
        let idx = self.find(self.hasher.hash_one(key), key)?;
        self.slots[idx as usize].as_ref()
    }

    /// Mutable access to the flow of `key`, without touching it or checking
    /// its deadline.
    pub fn get_mut(&mut self, key: &FlowKey) -> Option<FlowMut<'_, V>> {
        let idx = self.find(self.hasher.hash_one(key), key)?;
        Some(FlowMut { table: self, idx })
    }

    /// The packet path: finds the flow of `key` and, if it is alive at `now`,
    /// refreshes its idle timer (`last_seen = now`) and returns it. A flow
    /// found past its deadline is removed (counted as expired) and `None`
    /// returned. One hash lookup.
    pub fn lookup_touch(&mut self, key: &FlowKey, now: Instant) -> Option<FlowMut<'_, V>> {
        let hash = self.hasher.hash_one(key);
        let idx = self.find(hash, key)?;
        if !self.alive_at(idx, now) {
            self.expire_slot(idx);
            return None;
        }
        if let Some(flow) = &mut self.slots[idx as usize] {
            flow.last_seen = flow.last_seen.max(now);
        }
        Some(FlowMut { table: self, idx })
    }

    /// What lookups of a burst's keys will read, prefetched in two stages
    /// so that the misses of different keys overlap: first every key's
    /// index bucket (hashing all of them), then, once those lines are
    /// (mostly) in, every key's likeliest flow slot. Changes nothing, not
    /// even timers. `hashes` is scratch space (cleared; no allocation once
    /// it has held a burst).
    #[inline]
    pub fn warm_burst(&self, keys: impl Iterator<Item = FlowKey>, hashes: &mut Vec<u64>) {
        hashes.clear();
        for key in keys {
            let hash = self.hasher.hash_one(key);
            shoal_prefetch::read(self.index.bucket_ref(hash));
            hashes.push(hash);
        }
        for &hash in hashes.iter() {
            if let Some(slot) = self.index.candidate(hash) {
                shoal_prefetch::read(&self.slots[slot as usize]);
            }
        }
    }

    /// [`FlowTable::lookup_touch`] without the result: whether `key` is alive
    /// (and now refreshed).
    pub fn touch(&mut self, key: &FlowKey, now: Instant) -> bool {
        self.lookup_touch(key, now).is_some()
    }

    /// Adds the flow `key` in `state` with `value`, last seen `now`.
    ///
    /// A live flow with the same key is replaced (state, value and timer); a
    /// dead one is expired first. When the table is full, due flows are
    /// reclaimed first, then one live flow is evicted (see the module
    /// documentation for the order).
    pub fn insert(&mut self, key: FlowKey, state: FlowState, value: V, now: Instant) -> Insert {
        let hash = self.hasher.hash_one(key);
        if let Some(idx) = self.find(hash, &key) {
            if self.alive_at(idx, now) {
                if let Some(flow) = &mut self.slots[idx as usize] {
                    flow.value = value;
                }
                self.change_state(idx, state, now);
                self.stats.replaced += 1;
                self.note_changed(key);
                return Insert::Replaced;
            }
            self.expire_slot(idx);
        }
        let mut outcome = Insert::Inserted;
        if self.free.is_empty() {
            self.expire(now, EVICTION_SCAN);
        }
        if self.free.is_empty() {
            let Some(victim) = self.eviction_victim() else {
                self.stats.rejected_full += 1;
                return Insert::Rejected;
            };
            if self.alive_at(victim, now) {
                let flow = self.remove_slot(victim);
                self.stats.evicted[flow.state.index()] += 1;
                outcome = Insert::InsertedAfterEvicting { evicted: flow.key };
            } else {
                self.expire_slot(victim);
            }
        }
        if self.is_empty() {
            // Nothing armed: start the wheel's window at the present, not at
            // the epoch (the clock may be days past it).
            self.wheel.restart_at(tick_of(now.as_nanos()));
        }
        let Some(idx) = self.free.pop() else {
            // Unreachable: eviction freed a slot.
            self.stats.rejected_full += 1;
            return Insert::Rejected;
        };
        self.slots[idx as usize] = Some(Flow {
            key,
            state,
            last_seen: now,
            value,
        });
        // Holds `capacity` entries: cannot be full while a slot was free.
        let indexed = self.index.insert(hash, idx);
        debug_assert!(indexed, "flow table: index full with a free slot");
        self.wheel.arm(idx, state.index(), self.deadline_ns(idx));
        self.by_state[state.index()] += 1;
        self.stats.inserts += 1;
        self.note_changed(key);
        outcome
    }

    /// Moves the flow of `key` to `state` and refreshes its timer (the
    /// change is caused by a packet seen `now`); the new state's timeout
    /// runs from `now`. Returns `false` if there is no live flow for `key`
    /// (a dead one is expired).
    pub fn set_state(&mut self, key: &FlowKey, state: FlowState, now: Instant) -> bool {
        match self.lookup_touch(key, now) {
            Some(mut flow) => {
                flow.set_state(state, now);
                true
            }
            None => false,
        }
    }

    /// Removes the flow of `key` (live or not yet reclaimed) and returns its
    /// value.
    pub fn remove(&mut self, key: &FlowKey) -> Option<V> {
        let idx = self.find(self.hasher.hash_one(key), key)?;
        self.stats.removed += 1;
        Some(self.remove_slot(idx).value)
    }

    /// Reclaims flows whose deadline is at or before `now`, examining at most
    /// `budget` flows (re-armed ones count). Returns how many it removed.
    /// Call it once per burst with a small budget; see the module
    /// documentation for the keep-up invariant. With `usize::MAX` it
    /// reclaims every dead flow.
    pub fn expire(&mut self, now: Instant, budget: usize) -> usize {
        let now_ns = now.as_nanos();
        let cur = tick_of(now_ns);
        if cur < self.wheel.floor() {
            // Nothing armed before a later tick: nothing is due (the common
            // case, once per burst: no bitmap read).
            self.wheel.advance_to(cur);
            return 0;
        }
        let mut examined = 0;
        let mut expired = 0;
        while examined < budget {
            let Some(tick) = self.wheel.first_occupied(None, self.wheel.next_tick()) else {
                self.wheel.advance_to(cur);
                // Nothing armed at all: the next arm lowers the floor.
                self.wheel.raise_floor(u64::MAX);
                break;
            };
            if tick > cur {
                self.wheel.advance_to(cur);
                self.wheel.raise_floor(tick);
                break;
            }
            self.wheel.advance_to(tick);
            if tick == cur && now_ns < self.wheel.hold_until() {
                break;
            }
            // Sweep the buckets of `tick` in every list.
            let mut kept_min = u64::MAX;
            let mut complete = true;
            'lists: for list in 0..FlowState::ALL.len() {
                let mut idx = self.wheel.head(list, tick);
                while idx != NIL {
                    if examined == budget {
                        complete = false;
                        break 'lists;
                    }
                    examined += 1;
                    let next = self.wheel.next(idx);
                    let deadline = self.deadline_ns(idx);
                    if deadline <= now_ns {
                        self.expire_slot(idx);
                        expired += 1;
                    } else if tick_of(deadline) > tick {
                        // Touched since armed (or parked past the horizon).
                        self.wheel.rearm(idx, list, deadline);
                    } else {
                        // Due later within the current tick.
                        kept_min = kept_min.min(deadline);
                    }
                    idx = next;
                }
            }
            if !complete {
                break;
            }
            if tick < cur {
                self.wheel.advance_to(tick + 1);
            } else {
                self.wheel.set_hold_until(kept_min);
                break;
            }
        }
        expired
    }

    /// The flows held, in slot order (for the admin API; O(capacity)).
    pub fn iter(&self) -> Iter<'_, V> {
        Iter {
            slots: self.slots.iter(),
        }
    }

    fn find(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        let slots = &self.slots;
        self.index.find(hash, |i| {
            slots[i as usize].as_ref().is_some_and(|f| f.key == *key)
        })
    }

    /// `last_seen + timeout(state)` of slot `idx`, in nanoseconds.
    fn deadline_ns(&self, idx: u32) -> u64 {
        self.slots[idx as usize].as_ref().map_or(0, |f| {
            f.last_seen
                .as_nanos()
                .saturating_add(self.timeout_ns[f.state.index()])
        })
    }

    fn alive_at(&self, idx: u32, now: Instant) -> bool {
        now.as_nanos() < self.deadline_ns(idx)
    }

    /// Touches slot `idx` and moves it to `state`, re-arming its timer if the
    /// state changed (the new timeout may be shorter than the armed one).
    fn change_state(&mut self, idx: u32, state: FlowState, now: Instant) {
        let Some(flow) = &mut self.slots[idx as usize] else {
            return;
        };
        flow.last_seen = flow.last_seen.max(now);
        let old = flow.state;
        if old == state {
            return;
        }
        flow.state = state;
        self.by_state[old.index()] -= 1;
        self.by_state[state.index()] += 1;
        let deadline = self.deadline_ns(idx);
        self.wheel.disarm(idx);
        self.wheel.arm(idx, state.index(), deadline);
    }

    /// Removes slot `idx` from the index, the wheel and the counts, and frees
    /// it. The slot must be occupied.
    fn remove_slot(&mut self, idx: u32) -> Flow<V> {
        let flow = self.slots[idx as usize]
            .take()
            .expect("flow table: removing a free slot");
        let hash = self.hasher.hash_one(flow.key);
        let indexed = self.index.remove(hash, idx);
        debug_assert!(indexed, "flow table: slot {idx} missing from the index");
        self.wheel.disarm(idx);
        self.by_state[flow.state.index()] -= 1;
        self.free.push(idx);
        flow
    }

    /// Removes slot `idx` because it timed out, counting it.
    fn expire_slot(&mut self, idx: u32) {
        let flow = self.remove_slot(idx);
        self.stats.expired[flow.state.index()] += 1;
    }

    /// The flow to evict from a full table: in [`FlowState::EVICTION_ORDER`],
    /// the first state with any flow; within it, the earliest deadline among
    /// the first [`EVICTION_SCAN`] flows in wheel order.
    fn eviction_victim(&self) -> Option<u32> {
        for state in FlowState::EVICTION_ORDER {
            let list = state.index();
            if self.by_state[list] == 0 {
                continue;
            }
            let mut best: Option<(u64, u32)> = None;
            let mut seen = 0;
            let mut from = self.wheel.next_tick();
            'buckets: while let Some(tick) = self.wheel.first_occupied(Some(list), from) {
                let mut idx = self.wheel.head(list, tick);
                while idx != NIL {
                    let deadline = self.deadline_ns(idx);
                    match best {
                        Some((d, _)) if d <= deadline => {}
                        _ => best = Some((deadline, idx)),
                    }
                    seen += 1;
                    if seen == EVICTION_SCAN {
                        break 'buckets;
                    }
                    idx = self.wheel.next(idx);
                }
                from = tick + 1;
            }
            if let Some((_, idx)) = best {
                return Some(idx);
            }
        }
        None
    }
}

/// A live flow borrowed from its table: read it (it derefs to [`Flow`]),
/// change its value or state, or remove it, all without hashing again.
#[derive(Debug)]
pub struct FlowMut<'a, V> {
    table: &'a mut FlowTable<V>,
    idx: u32,
}

impl<'a, V> FlowMut<'a, V> {
    fn flow_mut(&mut self) -> &mut Flow<V> {
        self.table.slots[self.idx as usize]
            .as_mut()
            .expect("flow table: handle to a free slot")
    }

    /// The flow's value, mutably.
    pub fn value_mut(&mut self) -> &mut V {
        &mut self.flow_mut().value
    }

    /// The flow's value, mutably, for as long as the table is borrowed.
    pub fn into_value_mut(self) -> &'a mut V {
        &mut self.table.slots[self.idx as usize]
            .as_mut()
            .expect("flow table: handle to a free slot")
            .value
    }

    /// Moves the flow to `state` and refreshes its timer, like
    /// [`FlowTable::set_state`].
    pub fn set_state(&mut self, state: FlowState, now: Instant) {
        self.table.change_state(self.idx, state, now);
    }

    /// Removes the flow (counted as removed) and returns its value.
    pub fn remove(self) -> V {
        self.table.stats.removed += 1;
        self.table.remove_slot(self.idx).value
    }
}

impl<V> core::ops::Deref for FlowMut<'_, V> {
    type Target = Flow<V>;

    fn deref(&self) -> &Flow<V> {
        self.table.slots[self.idx as usize]
            .as_ref()
            .expect("flow table: handle to a free slot")
    }
}

impl<'a, V> IntoIterator for &'a FlowTable<V> {
    type Item = &'a Flow<V>;
    type IntoIter = Iter<'a, V>;

    fn into_iter(self) -> Iter<'a, V> {
        self.iter()
    }
}

/// Iterator over the flows of a table, from [`FlowTable::iter`].
#[derive(Debug, Clone)]
pub struct Iter<'a, V> {
    slots: core::slice::Iter<'a, Option<Flow<V>>>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = &'a Flow<V>;

    fn next(&mut self) -> Option<&'a Flow<V>> {
        self.slots.by_ref().find_map(Option::as_ref)
    }
}
