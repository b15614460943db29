//! The hashed timer wheel behind flow expiry.
//!
//! Owns the intrusive lists that thread the flow slab (by slot index, never by
//! pointer) through the wheel's buckets, and nothing else: it does not know
//! keys, values or timeouts. The table decides what a due entry means.
//!
//! Time is cut into ticks of `2^TICK_SHIFT` ns (about 16.8 ms). The wheel has
//! [`SLOTS`] buckets per list, one list per [`FlowState`](super::FlowState), and
//! covers the window of ticks `[next_tick, next_tick + SLOTS)` (about 68.7 s):
//! every armed entry sits in the bucket of one tick of that window, and a
//! bucket holds entries of exactly one tick. An entry whose deadline lies past
//! the window is parked in the window's last tick and re-armed when that tick
//! comes due (so any timeout length works). Deadlines are in nanoseconds.
//!
//! A bitmap of non-empty buckets per list lets the sweep and the eviction
//! search jump over empty ticks (64 per word read), so a long gap between
//! sweeps costs nothing per idle tick.

use core::cmp::{max, min};

/// "No entry": the end of a list, or an unarmed entry.
pub(super) const NIL: u32 = u32::MAX;
/// One list per flow state.
pub(super) const LISTS: usize = 4;
/// Buckets per list (a power of two).
pub(super) const SLOTS: usize = 4096;
/// log2 of the tick length in nanoseconds: 2^24 ns = 16.777216 ms.
const TICK_SHIFT: u32 = 24;
const WORDS: usize = SLOTS / 64;
const SLOTS_U64: u64 = SLOTS as u64;

/// The tick that contains the instant `nanos`.
pub(super) const fn tick_of(nanos: u64) -> u64 {
    nanos >> TICK_SHIFT
}

/// Where an entry is linked: its neighbours and its bucket.
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    /// Index into `heads` (`list * SLOTS + slot`), `NIL` when unarmed.
    bucket: u32,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
    bucket: NIL,
};

/// The wheel: per-entry links, bucket heads and occupancy bitmaps, all
/// allocated once in [`Wheel::new`].
#[derive(Debug)]
pub(super) struct Wheel {
    links: Box<[Link]>,
    /// `LISTS * SLOTS` list heads.
    heads: Box<[u32]>,
    /// `LISTS * WORDS` bitmaps: bit set = bucket non-empty.
    occupied: Box<[u64]>,
    /// The first tick not yet fully swept: the start of the window.
    next_tick: u64,
    /// A lower bound on the deadlines in the buckets of `next_tick`: the sweep
    /// skips the current tick's buckets while `now` is below it.
    hold_until: u64,
    /// A lower bound on the occupied ticks (no bucket of a tick before it is
    /// occupied): lowered by every [`Wheel::arm`], raised by the sweep when
    /// its bitmap search finds the first occupied tick in the future, so a
    /// sweep with nothing due returns without reading the bitmaps again.
    floor: u64,
}

impl Wheel {
    /// A wheel for entries `0..capacity`, all unarmed.
    pub(super) fn new(capacity: usize) -> Self {
        Wheel {
            links: vec![UNLINKED; capacity].into_boxed_slice(),
            heads: vec![NIL; LISTS * SLOTS].into_boxed_slice(),
            occupied: vec![0; LISTS * WORDS].into_boxed_slice(),
            next_tick: 0,
            hold_until: 0,
            floor: 0,
        }
    }

    /// See the field.
    pub(super) fn floor(&self) -> u64 {
        self.floor
    }

    /// Records that no bucket of a tick before `tick` is occupied (the
    /// caller just searched the bitmaps up to it).
    pub(super) fn raise_floor(&mut self, tick: u64) {
        self.floor = max(self.floor, tick);
    }

    /// The first tick not yet fully swept.
    pub(super) fn next_tick(&self) -> u64 {
        self.next_tick
    }

    /// See the field.
    pub(super) fn hold_until(&self) -> u64 {
        self.hold_until
    }

    /// Records that every entry left in the current tick's buckets has a
    /// deadline at or after `deadline` (the sweep just looked at all of them).
    pub(super) fn set_hold_until(&mut self, deadline: u64) {
        self.hold_until = deadline;
    }

    /// Moves the window start forward to `tick` (never backward). Only valid
    /// when no entry is armed before `tick`.
    pub(super) fn advance_to(&mut self, tick: u64) {
        if tick > self.next_tick {
            self.next_tick = tick;
            self.hold_until = 0;
        }
    }

    /// Restarts the window at `tick`, in either direction. Only valid when no
    /// entry is armed (the table is empty).
    pub(super) fn restart_at(&mut self, tick: u64) {
        debug_assert!(
            self.occupied.iter().all(|&w| w == 0),
            "restart of a non-empty wheel"
        );
        self.next_tick = tick;
        self.hold_until = 0;
        self.floor = 0;
    }

    /// Links entry `idx` into `list`, in the bucket of the tick of `deadline`
    /// clamped into the window. The entry must be unarmed.
    pub(super) fn arm(&mut self, idx: u32, list: usize, deadline: u64) {
        debug_assert_eq!(self.links[idx as usize].bucket, NIL, "entry armed twice");
        let tick = tick_of(deadline).clamp(self.next_tick, self.next_tick + SLOTS_U64 - 1);
        if tick == self.next_tick {
            self.hold_until = min(self.hold_until, deadline);
        }
        self.floor = min(self.floor, tick);
        let slot = (tick % SLOTS_U64) as usize;
        let bucket = list * SLOTS + slot;
        let head = self.heads[bucket];
        if head != NIL {
            self.links[head as usize].prev = idx;
        }
        self.links[idx as usize] = Link {
            prev: NIL,
            next: head,
            bucket: bucket as u32,
        };
        self.heads[bucket] = idx;
        self.occupied[list * WORDS + slot / 64] |= 1 << (slot % 64);
    }

    /// Unlinks entry `idx` (a no-op if it is not armed).
    pub(super) fn disarm(&mut self, idx: u32) {
        let Link { prev, next, bucket } = self.links[idx as usize];
        if bucket == NIL {
            return;
        }
        if prev == NIL {
            self.heads[bucket as usize] = next;
            if next == NIL {
                let (list, slot) = (bucket as usize / SLOTS, bucket as usize % SLOTS);
                self.occupied[list * WORDS + slot / 64] &= !(1 << (slot % 64));
            }
        } else {
            self.links[prev as usize].next = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        }
        self.links[idx as usize] = UNLINKED;
    }

    /// Moves an armed entry to the bucket of `deadline` in `list`.
    pub(super) fn rearm(&mut self, idx: u32, list: usize, deadline: u64) {
        self.disarm(idx);
        self.arm(idx, list, deadline);
    }

    /// The tick whose bucket holds entry `idx`, `None` if it is unarmed.
    #[cfg(test)]
    pub(super) fn armed_tick(&self, idx: u32) -> Option<u64> {
        let bucket = self.links[idx as usize].bucket;
        (bucket != NIL).then(|| {
            let slot = u64::from(bucket) % SLOTS_U64;
            self.next_tick + (slot + SLOTS_U64 - self.next_tick % SLOTS_U64) % SLOTS_U64
        })
    }

    /// The first entry of `list` in the bucket of `tick` (`NIL` if empty).
    pub(super) fn head(&self, list: usize, tick: u64) -> u32 {
        self.heads[list * SLOTS + (tick % SLOTS_U64) as usize]
    }

    /// The entry after `idx` in its bucket (`NIL` at the end).
    pub(super) fn next(&self, idx: u32) -> u32 {
        self.links[idx as usize].next
    }

    /// The first tick at or after `from` (and inside the window) whose bucket
    /// is non-empty in `list`, or in any list when `list` is `None`.
    pub(super) fn first_occupied(&self, list: Option<usize>, from: u64) -> Option<u64> {
        let end = self.next_tick + SLOTS_U64;
        let mut tick = max(from, self.next_tick);
        while tick < end {
            let slot = (tick % SLOTS_U64) as usize;
            let (word, bit) = (slot / 64, slot % 64);
            let bits = match list {
                Some(l) => self.occupied[l * WORDS + word],
                None => (0..LISTS).fold(0, |acc, l| acc | self.occupied[l * WORDS + word]),
            } >> bit;
            if bits != 0 {
                let found = tick + u64::from(bits.trailing_zeros());
                // Bits past the window's end belong to ticks before `from`.
                return (found < end).then_some(found);
            }
            tick += (64 - bit) as u64;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: u64 = 1 << TICK_SHIFT;

    fn entries(wheel: &Wheel, list: usize, tick: u64) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i = wheel.head(list, tick);
        while i != NIL {
            out.push(i);
            i = wheel.next(i);
        }
        out
    }

    #[test]
    fn arm_disarm_keeps_lists_and_bitmap_consistent() {
        let mut wheel = Wheel::new(8);
        wheel.arm(0, 1, 5 * TICK);
        wheel.arm(1, 1, 5 * TICK + 7);
        wheel.arm(2, 1, 9 * TICK);
        wheel.arm(3, 2, 5 * TICK);
        assert_eq!(entries(&wheel, 1, 5), vec![1, 0]);
        assert_eq!(entries(&wheel, 2, 5), vec![3]);
        assert_eq!(wheel.first_occupied(Some(1), 0), Some(5));
        assert_eq!(wheel.first_occupied(Some(1), 6), Some(9));
        assert_eq!(wheel.first_occupied(Some(0), 0), None);
        assert_eq!(wheel.armed_tick(2), Some(9));

        wheel.disarm(1);
        assert_eq!(entries(&wheel, 1, 5), vec![0]);
        wheel.disarm(0);
        assert_eq!(entries(&wheel, 1, 5), Vec::<u32>::new());
        assert_eq!(wheel.first_occupied(Some(1), 0), Some(9));
        assert_eq!(wheel.first_occupied(None, 0), Some(5));
        wheel.disarm(0); // already unarmed: no-op
        assert_eq!(wheel.armed_tick(0), None);
    }

    #[test]
    fn deadlines_are_clamped_into_the_window() {
        let mut wheel = Wheel::new(4);
        wheel.restart_at(100);
        wheel.arm(0, 0, 3 * TICK); // in the past: the window's first tick
        wheel.arm(1, 0, 1_000_000 * TICK); // past the horizon: its last tick
        assert_eq!(wheel.armed_tick(0), Some(100));
        assert_eq!(wheel.armed_tick(1), Some(100 + SLOTS_U64 - 1));
        assert_eq!(wheel.hold_until(), 0);
        assert_eq!(wheel.first_occupied(None, 101), Some(100 + SLOTS_U64 - 1));
        wheel.disarm(0);
        wheel.advance_to(150);
        assert_eq!(wheel.armed_tick(1), Some(100 + SLOTS_U64 - 1));
        // The window wrapped: slots below 150 % SLOTS now mean later ticks.
        wheel.arm(2, 3, (150 + SLOTS_U64 - 10) * TICK);
        assert_eq!(wheel.armed_tick(2), Some(150 + SLOTS_U64 - 10));
        assert_eq!(
            wheel.first_occupied(Some(3), 150),
            Some(150 + SLOTS_U64 - 10)
        );
        assert_eq!(wheel.first_occupied(None, 150), Some(100 + SLOTS_U64 - 1));
    }

    #[test]
    fn first_occupied_does_not_wrap_past_the_window() {
        let mut wheel = Wheel::new(2);
        wheel.restart_at(10);
        wheel.arm(0, 0, 12 * TICK);
        // Searching from a later tick must not report the earlier tick 12
        // (its slot is "behind" the search start within the same word).
        assert_eq!(wheel.first_occupied(None, 13), None);
        assert_eq!(wheel.first_occupied(None, 10), Some(12));
    }
}
