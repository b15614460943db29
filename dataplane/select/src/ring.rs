//! Ring consistent hashing as DTS (DTS §2.3, §3.1, Fig. 8).
//!
//! Every member owns `vnodes x weight / 100` (rounded up) points on a 64-bit
//! ring; point `v` of a member is the first 8 bytes (big-endian) of
//! MD5(member address || v as u32 big-endian). A client key hashes to a
//! point — with [`KeyHash::Md5`] the first 8 bytes of MD5(client address ||
//! client port big-endian), exactly as DTS; with [`KeyHash::Splitmix64`]
//! [`key_hash`] — and belongs to the first member point at or after it,
//! wrapping. Removing a member moves only the keys of its points, to their
//! ring successors. DTS Fig. 8: balance needs at least 31 virtual nodes per
//! member. Balance and disruption depend only on the member points, so they
//! are the same with either key hash.
//!
//! A lookup does not search the points: the ring is cut into `2^b` equal
//! arcs (`b` = log2 of the points rounded up, + 3, between 4 and 18 bits),
//! and a lookup table built with the ring says, per arc, either "every key
//! here belongs to member m" (no point inside the arc: 7 in 8 arcs) or
//! "start at point i" (a short scan over the arc's few points). The answer
//! is the binary search's exactly (`tests::lookup_table_equals_binary_search`).
//! Cost: 4 bytes per arc, 32 per point (192 points: 2 048 arcs, 8 KiB), plus
//! 16 bytes per point.

use super::{key_hash, md5_u64, ClientKey, KeyHash, Member, Selector};

/// Lookup-table entry flag: the low 16 bits are the owner of the whole arc.
const WHOLE_ARC: u32 = 1 << 31;
/// Bounds of the lookup table's size, in bits of the arc number.
const LUT_BITS: core::ops::RangeInclusive<u32> = 4..=18;

/// The DTS ring: sorted (point, member id) pairs and their lookup table.
#[derive(Debug, Clone)]
pub struct Ring {
    /// (point, member id), sorted by point, then id.
    points: Vec<(u64, u16)>,
    /// How client keys become points.
    key_hash: KeyHash,
    /// Per arc of `2^(64 - shift)` points: `WHOLE_ARC | owner`, or the index
    /// of the first point at or after the arc's start. Empty without points.
    lut: Vec<u32>,
    /// A point's arc is `point >> shift`.
    shift: u32,
}

impl Ring {
    /// A DTS ring (client keys hashed with MD5) with `vnodes` virtual nodes
    /// per member of weight 100 (weight 0: no points). The order of
    /// `members` does not matter.
    pub fn new(members: &[Member], vnodes: u32) -> Self {
        Ring::with_key_hash(members, vnodes, KeyHash::Md5)
    }

    /// A ring as [`Ring::new`], hashing client keys with `key_hash`.
    pub fn with_key_hash(members: &[Member], vnodes: u32, key_hash: KeyHash) -> Self {
        let mut points = Vec::new();
        for m in members {
            let n = (u64::from(vnodes) * u64::from(m.weight)).div_ceil(100);
            for v in 0..n {
                let v = u32::try_from(v).unwrap_or(u32::MAX);
                points.push((md5_u64(&[&m.addr.octets(), &v.to_be_bytes()]), m.id));
            }
        }
        // Ties (astronomically rare) break by id so every member agrees.
        points.sort_unstable();
        let (lut, shift) = lookup_table(&points);
        Ring {
            points,
            key_hash,
            lut,
            shift,
        }
    }

    /// The point a client key hashes to.
    #[inline]
    pub fn key_point(&self, key: ClientKey) -> u64 {
        match self.key_hash {
            KeyHash::Md5 => md5_u64(&[&key.addr.octets(), &key.port.to_be_bytes()]),
            KeyHash::Splitmix64 => key_hash(key),
        }
    }

    /// The member owning point `h`: the first member point at or after it,
    /// wrapping (through the lookup table).
    #[inline]
    pub fn owner_of_point(&self, h: u64) -> Option<u16> {
        let entry = *self.lut.get((h >> self.shift) as usize)?;
        if entry & WHOLE_ARC != 0 {
            return Some(entry as u16);
        }
        let mut i = entry as usize;
        while i < self.points.len() && self.points[i].0 < h {
            i += 1;
        }
        Some(self.points[if i == self.points.len() { 0 } else { i }].1)
    }

    /// [`Ring::owner_of_point`] by binary search over the points (the
    /// definition the lookup table must equal).
    pub fn owner_of_point_searched(&self, h: u64) -> Option<u16> {
        if self.points.is_empty() {
            return None;
        }
        let i = self.points.partition_point(|&(p, _)| p < h);
        Some(self.points[if i == self.points.len() { 0 } else { i }].1)
    }

    /// Number of points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True if no member has points.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The exact fraction of the hash space each member owns (the arcs
    /// ending at its points), by member id ascending: the share a uniform
    /// key stream converges to, without sampling noise.
    pub fn owned_fractions(&self) -> Vec<(u16, f64)> {
        let mut owned: Vec<(u16, u128)> = Vec::new();
        let mut prev = self.points.last().map_or(0, |&(p, _)| p);
        for &(p, id) in &self.points {
            // The arc (prev, p] belongs to p; the first point's arc wraps.
            let arc = u128::from(p.wrapping_sub(prev));
            let arc = if self.points.len() == 1 {
                1u128 << 64
            } else {
                arc
            };
            match owned.iter_mut().find(|(i, _)| *i == id) {
                Some((_, total)) => *total += arc,
                None => owned.push((id, arc)),
            }
            prev = p;
        }
        owned.sort_unstable_by_key(|&(id, _)| id);
        let space = (1u128 << 64) as f64;
        owned
            .into_iter()
            .map(|(id, arc)| (id, arc as f64 / space))
            .collect()
    }
}

impl Selector for Ring {
    #[inline]
    fn select(&self, key: ClientKey) -> Option<u16> {
        if self.points.is_empty() {
            return None;
        }
        self.owner_of_point(self.key_point(key))
    }
}

/// The lookup table over sorted `points` and its shift (see the module
/// documentation); empty without points.
fn lookup_table(points: &[(u64, u16)]) -> (Vec<u32>, u32) {
    if points.is_empty() {
        // No table: every lookup misses (`None`). A shift of 64 would
        // overflow (`h >> 64` panics in debug builds).
        return (Vec::new(), 63);
    }
    let bits =
        (usize::BITS - points.len().leading_zeros() + 3).clamp(*LUT_BITS.start(), *LUT_BITS.end());
    let shift = 64 - bits;
    let arcs = 1usize << bits;
    let mut lut = Vec::with_capacity(arcs);
    // `first`: index of the first point at or after the arc's start.
    let mut first = 0usize;
    for arc in 0..arcs as u64 {
        let start = arc << shift;
        while first < points.len() && points[first].0 < start {
            first += 1;
        }
        // Points inside the arc: a scan from `first` decides; none: the
        // arc's keys all belong to the next point (wrapping).
        let inside = first < points.len() && points[first].0 >> shift == arc;
        lut.push(if inside {
            first as u32
        } else {
            WHOLE_ARC | u32::from(points[if first == points.len() { 0 } else { first }].1)
        });
    }
    (lut, shift)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{self, key, members, moved, shares};
    use super::*;
    use core::net::Ipv4Addr;
    use proptest::prelude::*;

    /// Today's definition of a DTS lookup: MD5 of the key, binary search.
    fn dts_select(r: &Ring, k: ClientKey) -> Option<u16> {
        r.owner_of_point_searched(md5_u64(&[&k.addr.octets(), &k.port.to_be_bytes()]))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// For random memberships (1-40 members, random addresses and
        /// weights including 0, 1-300 vnodes) the lookup table answers as
        /// the binary search for random points and random client keys,
        /// with both key hashes; with MD5 that is DTS's answer.
        #[test]
        fn lookup_table_equals_binary_search(
            ms in proptest::collection::vec((any::<u32>(), 0u32..400), 1..40),
            vnodes in 1u32..300,
            points in proptest::collection::vec(any::<u64>(), 64),
            keys in proptest::collection::vec((any::<u32>(), any::<u16>()), 64),
        ) {
            let members: Vec<Member> = ms
                .iter()
                .enumerate()
                .map(|(i, &(addr, weight))| Member {
                    id: i as u16 + 1,
                    addr: Ipv4Addr::from(addr),
                    weight,
                })
                .collect();
            let md5 = Ring::new(&members, vnodes);
            let fast = Ring::with_key_hash(&members, vnodes, KeyHash::Splitmix64);
            prop_assert_eq!(&md5.points, &fast.points);
            // Every member point, its neighbours and the ends of the space.
            let edges = md5
                .points
                .iter()
                .flat_map(|&(p, _)| [p.wrapping_sub(1), p, p.wrapping_add(1)])
                .chain([0, u64::MAX]);
            for h in points.iter().copied().chain(edges) {
                prop_assert_eq!(md5.owner_of_point(h), md5.owner_of_point_searched(h), "point {:#x}", h);
            }
            for &(addr, port) in &keys {
                let k = ClientKey { addr: Ipv4Addr::from(addr), port };
                prop_assert_eq!(md5.select(k), dts_select(&md5, k));
                prop_assert_eq!(fast.select(k), fast.owner_of_point_searched(key_hash(k)));
            }
        }
    }

    #[test]
    fn lookup_table_size_follows_the_points() {
        // 192 points: 2^(8 + 3) arcs; 1 point: the 2^4 minimum; 0: none.
        let r = Ring::new(&members(&[100, 100, 100]), 64);
        assert_eq!((r.lut.len(), r.shift), (2048, 53));
        let one = Ring::new(&members(&[100]), 1);
        assert_eq!(one.lut.len(), 16);
        assert!(one.lut.iter().all(|&e| e == WHOLE_ARC | 1 || e == 0));
        assert!(Ring::new(&members(&[0]), 64).lut.is_empty());
        // A ring without points owns nothing, at every point (found by the
        // proptest: one member of weight 0, one vnode).
        let none = Ring::new(&members(&[0]), 1);
        for h in [0, 1, 1 << 63, u64::MAX] {
            assert_eq!(none.owner_of_point(h), None);
        }
        // Most arcs hold no point: one table read answers.
        let whole = r.lut.iter().filter(|&&e| e & WHOLE_ARC != 0).count();
        assert!(whole > 2048 - 192, "{whole} whole arcs");
    }

    #[test]
    fn key_hash_changes_owners_not_shares() {
        // Same points, so the same exact owned fractions; the key's point
        // differs, so some owners differ.
        let m = members(&[100, 100, 100]);
        let md5 = Ring::new(&m, 64);
        let fast = Ring::with_key_hash(&m, 64, KeyHash::Splitmix64);
        assert_eq!(md5.owned_fractions(), fast.owned_fractions());
        assert_eq!(testutil::golden_owners(&fast), [1, 3, 1, 1, 1, 1]);
        let differ = (0..2_000)
            .filter(|&i| md5.select(key(i)) != fast.select(key(i)))
            .count();
        assert!(differ > 500, "{differ}");
        // Sampled shares near the exact fractions (40 000 keys: within 2 points).
        let share = shares(&fast, 3, 40_000);
        for ((_, exact), got) in fast.owned_fractions().iter().zip(&share) {
            assert!(
                (f64::from(*got) / 40_000.0 - exact).abs() < 0.02,
                "{share:?}"
            );
        }
    }

    #[test]
    fn ring_is_md5_of_address_and_vnode() {
        // One member, one vnode: every key maps to it; the point is MD5(addr || 0u32).
        let r = Ring::new(&members(&[100]), 1);
        assert_eq!(r.select(key(5)), Some(1));
        let expected = md5_u64(&[&[198, 18, 0, 11], &[0, 0, 0, 0]]);
        assert_eq!(r.points, vec![(expected, 1)]);
        assert_eq!(r.owned_fractions(), vec![(1, 1.0)]);
        assert!(Ring::new(&members(&[0]), 64).is_empty());
        assert_eq!(Ring::new(&[], 64).select(key(1)), None);
        assert_eq!(Ring::new(&members(&[0, 0]), 64).select(key(1)), None);
    }

    #[test]
    fn same_answer_regardless_of_member_order() {
        let mut m = members(&[100, 50, 100, 200]);
        let a = Ring::new(&m, 31);
        m.reverse();
        let b = Ring::new(&m, 31);
        m.swap(0, 2);
        let c = Ring::new(&m, 31);
        assert_eq!(a.points, b.points);
        for i in 0..5_000 {
            assert_eq!(a.select(key(i)), b.select(key(i)));
            assert_eq!(a.select(key(i)), c.select(key(i)));
        }
    }

    #[test]
    fn weight_scales_the_vnodes() {
        let r = Ring::new(&members(&[100, 50, 200, 0, 1]), 64);
        // 64 + 32 + 128 + 0 + ceil(0.64) = 225 points.
        assert_eq!(r.len(), 225);
        let mut per = [0usize; 5];
        for &(_, id) in &r.points {
            per[usize::from(id - 1)] += 1;
        }
        assert_eq!(per, [64, 32, 128, 0, 1]);
    }

    #[test]
    fn spreads_by_weight() {
        // Weights 1:1:2 with 512 vnodes per weight-100 member: the exact arc
        // shares are within 2 points of 25/25/50 %, and so are 40k keys.
        let m = members(&[100, 100, 200]);
        let r = Ring::new(&m, 512);
        let want = [0.25, 0.25, 0.5];
        for ((_, got), want) in r.owned_fractions().iter().zip(want) {
            assert!((got - want).abs() < 0.02, "{:?}", r.owned_fractions());
        }
        let n = 40_000;
        let share = shares(&r, 3, n);
        for (got, want) in share.iter().zip(want) {
            let frac = f64::from(*got) / f64::from(n);
            assert!((frac - want).abs() < 0.02, "share {share:?}");
        }
        assert_eq!(share.iter().sum::<u32>(), n);
    }

    #[test]
    fn removal_moves_only_the_removed_members_keys() {
        let all = Ring::new(&members(&[100, 100, 100]), 64);
        assert_eq!(all.len(), 192);
        // Weight 0 and absence are the same table.
        let drained = Ring::new(&members(&[100, 0, 100]), 64);
        let mut m = members(&[100, 100, 100]);
        m.remove(1);
        let removed = Ring::new(&m, 64);
        assert_eq!(drained.points, removed.points);
        let (n_moved, wrongly) = moved(&all, &removed, 2, 10_000);
        assert_eq!(wrongly, 0);
        // Exactly member 2's keys moved: about a third.
        assert_eq!(n_moved, shares(&all, 3, 10_000)[1]);
        assert!((2_500..4_200).contains(&n_moved), "moved {n_moved}");
    }

    #[test]
    fn golden_owners() {
        // A fixed 3-member config: a change to the point or key hash, the
        // vnode encoding or the successor rule changes these owners.
        let r = Ring::new(&members(&[100, 100, 100]), 64);
        assert_eq!(testutil::golden_owners(&r), [2, 1, 3, 2, 2, 2]);
        assert_eq!(r.points[0], (0x0237_d27c_38d0_a384, 1));
    }

    /// max/min of the exact owned fractions of 8 equal members at `vnodes`.
    fn balance(vnodes: u32) -> f64 {
        let r = Ring::new(&members(&[100; 8]), vnodes);
        let f = r.owned_fractions();
        assert_eq!(f.len(), 8);
        let max = f.iter().map(|&(_, x)| x).fold(0.0, f64::max);
        let min = f.iter().map(|&(_, x)| x).fold(1.0, f64::min);
        max / min
    }

    #[test]
    fn dts_fig8_balance_needs_about_31_vnodes() {
        // DTS Fig. 8 (8 members): the load spread narrows as virtual nodes
        // are added and is acceptable from about 31 per member. Exact owned
        // fractions of members at 198.18.0.11..18 (no sampling noise):
        // max/min = 10.6 at 1 vnode, 5.0 at 4, 2.08 at 16, 1.71 at 31,
        // 1.61 at 32, 1.48 at 64, 1.39 at 128, 1.13 at 256.
        let vnodes = [1, 2, 4, 8, 16, 31, 32, 64, 128, 256];
        let ratio: Vec<f64> = vnodes.iter().map(|&v| balance(v)).collect();
        for (w, v) in ratio.windows(2).zip(vnodes.windows(2)) {
            assert!(
                w[1] < w[0],
                "not narrower from {} to {} vnodes: {ratio:?}",
                v[0],
                v[1]
            );
        }
        let at = |v: u32| ratio[vnodes.iter().position(|&x| x == v).unwrap()];
        // One point per member: the largest share is ten times the smallest.
        assert!(at(1) > 10.0, "{ratio:?}");
        assert!(at(4) > 4.0, "{ratio:?}");
        // Below 2 only from 31 vnodes on; below 1.5 from 64.
        assert!(at(16) > 2.0, "{ratio:?}");
        assert!(at(31) < 2.0 && at(32) < 2.0, "{ratio:?}");
        assert!(at(32) > 1.5 && at(64) < 1.5, "{ratio:?}");
        assert!(at(256) < 1.2, "{ratio:?}");
    }
}
