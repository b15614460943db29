//! The flow table's index: hash -> slot number, built for bursts.
//!
//! A bucketized open-addressing table in the manner of DPDK's `rte_hash`:
//! one 64-byte cache line per bucket holding 8 entries, each a 16-bit tag
//! (high bits of the hash, never 0; 0 = empty way) and a 32-bit slot number
//! of the flow slab. A key's home bucket is chosen by the low bits of its
//! hash; a full bucket overflows into the next one (linear probing by
//! bucket), and every bucket counts the entries that probed past it
//! (`passed`), so a lookup stops at the first bucket nobody passed and a
//! removal leaves no tombstone (the counts along its path go down again, as
//! F14 does it).
//!
//! Why not `hashbrown`: a lookup there is three dependent loads (control
//! bytes, the 4-byte slot number in a separate array, the flow), and its
//! layout is private, so a burst cannot start the loads of 32 lookups
//! before doing any of them. Here a lookup is two (the bucket line, then the
//! flow), and [`Index::bucket_ref`] / [`Index::candidate`] give the burst
//! stages the addresses to prefetch (`FlowTable::warm_burst`).
//!
//! Sizing: buckets for twice the table's capacity in entries, rounded up to
//! a power of two: at most 50 % of the ways are used, so overflow is rare
//! and probes almost always end in the home bucket. The index never grows.

/// Entries per bucket.
const WAYS: usize = 8;

/// One cache line: 8 tags, 8 slot numbers, the passed count.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Bucket {
    tags: [u16; WAYS],
    slots: [u32; WAYS],
    /// Entries stored beyond this bucket whose probe started at or before
    /// it (so a lookup must go on past it).
    passed: u32,
}

const EMPTY: Bucket = Bucket {
    tags: [0; WAYS],
    slots: [0; WAYS],
    passed: 0,
};

/// The tag of `hash`: its top 16 bits, with 0 (the empty way) mapped to 1.
#[inline]
fn tag(hash: u64) -> u16 {
    ((hash >> 48) as u16).max(1)
}

/// Hash -> slot number, fixed capacity. Keys are not stored: the caller's
/// `eq` compares the flow in a slot with the key looked up.
#[derive(Debug)]
pub(super) struct Index {
    buckets: Box<[Bucket]>,
    mask: usize,
    len: usize,
}

impl Index {
    /// An index for up to `entries` entries, allocated now.
    pub(super) fn with_capacity(entries: usize) -> Self {
        let buckets = (entries.saturating_mul(2) / WAYS)
            .max(1)
            .next_power_of_two();
        Index {
            buckets: vec![EMPTY; buckets].into_boxed_slice(),
            mask: buckets - 1,
            len: 0,
        }
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    /// The slot whose entry has `hash`'s tag and for which `eq` holds.
    #[inline]
    pub(super) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let t = tag(hash);
        let mut b = self.home(hash);
        for _ in 0..self.buckets.len() {
            let bucket = &self.buckets[b];
            for w in 0..WAYS {
                if bucket.tags[w] == t && eq(bucket.slots[w]) {
                    return Some(bucket.slots[w]);
                }
            }
            if bucket.passed == 0 {
                return None;
            }
            b = (b + 1) & self.mask;
        }
        None
    }

    /// Adds `slot` under `hash`. The caller guarantees no entry for the
    /// same flow exists and that fewer than `entries` (of
    /// [`Index::with_capacity`]) are held; returns `false`, changing
    /// nothing, if the index is full anyway.
    pub(super) fn insert(&mut self, hash: u64, slot: u32) -> bool {
        if self.len >= self.buckets.len() * WAYS {
            return false;
        }
        let t = tag(hash);
        let home = self.home(hash);
        let mut b = home;
        loop {
            let bucket = &mut self.buckets[b];
            if let Some(w) = bucket.tags.iter().position(|&x| x == 0) {
                bucket.tags[w] = t;
                bucket.slots[w] = slot;
                break;
            }
            b = (b + 1) & self.mask;
        }
        // Every bucket from home up to (not including) the one used is
        // passed by this entry.
        let mut p = home;
        while p != b {
            self.buckets[p].passed += 1;
            p = (p + 1) & self.mask;
        }
        self.len += 1;
        true
    }

    /// Removes the entry of `slot` stored under `hash`; `false` if none.
    pub(super) fn remove(&mut self, hash: u64, slot: u32) -> bool {
        let t = tag(hash);
        let home = self.home(hash);
        let mut b = home;
        let mut found = None;
        for _ in 0..self.buckets.len() {
            let bucket = &self.buckets[b];
            if let Some(w) = (0..WAYS).find(|&w| bucket.tags[w] == t && bucket.slots[w] == slot) {
                found = Some(w);
                break;
            }
            if bucket.passed == 0 {
                return false;
            }
            b = (b + 1) & self.mask;
        }
        let Some(w) = found else {
            return false;
        };
        self.buckets[b].tags[w] = 0;
        let mut p = home;
        while p != b {
            self.buckets[p].passed -= 1;
            p = (p + 1) & self.mask;
        }
        self.len -= 1;
        true
    }

    /// `hash`'s home bucket (to prefetch its line).
    #[inline]
    pub(super) fn bucket_ref(&self, hash: u64) -> &Bucket {
        &self.buckets[self.home(hash)]
    }

    /// The slot of the first entry in `hash`'s home bucket with its tag:
    /// the flow a lookup will most likely compare (the burst's second stage
    /// loads it).
    #[inline]
    pub(super) fn candidate(&self, hash: u64) -> Option<u32> {
        let t = tag(hash);
        let bucket = &self.buckets[self.home(hash)];
        (0..WAYS)
            .find(|&w| bucket.tags[w] == t)
            .map(|w| bucket.slots[w])
    }

    /// Entries held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(core::mem::size_of::<Bucket>(), 64);
        assert_eq!(core::mem::align_of::<Bucket>(), 64);
    }

    #[test]
    fn overflow_chains_are_found_and_unwound() {
        // One bucket's worth of hashes plus more, all with the same home.
        let mut index = Index::with_capacity(64);
        let hashes: Vec<u64> = (0..20u64).map(|i| (i + 1) << 48).collect();
        for (slot, &h) in hashes.iter().enumerate() {
            assert!(index.insert(h, slot as u32));
        }
        for (slot, &h) in hashes.iter().enumerate() {
            assert_eq!(index.find(h, |s| s == slot as u32), Some(slot as u32));
        }
        for (slot, &h) in hashes.iter().enumerate() {
            assert!(index.remove(h, slot as u32));
            assert!(!index.remove(h, slot as u32));
        }
        assert_eq!(index.len(), 0);
        assert!(index
            .buckets
            .iter()
            .all(|b| b.passed == 0 && b.tags == [0; WAYS]));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16),
        Remove(u16),
        Find(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u16..300).prop_map(Op::Insert),
            (0u16..300).prop_map(Op::Remove),
            (0u16..300).prop_map(Op::Find),
        ]
    }

    proptest! {
        /// Against a map: keys are small numbers whose "hashes" collide a
        /// lot (few home buckets, few tags), the worst case for chains.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec(op(), 1..600)) {
            let hash = |k: u16| (u64::from(k % 7) << 48) | u64::from(k % 5);
            let mut index = Index::with_capacity(256);
            let mut model: HashMap<u16, u32> = HashMap::new();
            // The flow in each slot: which key it holds.
            let mut slab: Vec<Option<u16>> = vec![None; 300];
            for op in ops {
                match op {
                    Op::Insert(k) => {
                        if !model.contains_key(&k) && model.len() < 256 {
                            let slot = u32::from(k);
                            prop_assert!(index.insert(hash(k), slot));
                            model.insert(k, slot);
                            slab[usize::from(k)] = Some(k);
                        }
                    }
                    Op::Remove(k) => {
                        let removed = model.remove(&k).is_some();
                        prop_assert_eq!(index.remove(hash(k), u32::from(k)), removed);
                        slab[usize::from(k)] = None;
                    }
                    Op::Find(k) => {
                        let found = index.find(hash(k), |s| slab[s as usize] == Some(k));
                        prop_assert_eq!(found, model.get(&k).copied());
                    }
                }
                prop_assert_eq!(index.len(), model.len());
            }
        }
    }
}
