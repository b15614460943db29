//! Ring consistent hashing exactly as DTS (DTS §2.3, §3.1, Fig. 8).
//!
//! Every member owns `vnodes x weight / 100` (rounded up) points on a 64-bit
//! ring; point `v` of a member is the first 8 bytes (big-endian) of
//! MD5(member address || v as u32 big-endian). A client key hashes to
//! MD5(client address || client port big-endian) and belongs to the first
//! point at or after it, wrapping. Removing a member moves only the keys of
//! its points, to their ring successors. DTS Fig. 8: balance needs at least
//! 31 virtual nodes per member.

use super::{md5_u64, ClientKey, Member, Selector};

/// The DTS ring: sorted (point, member id) pairs.
#[derive(Debug, Clone)]
pub struct Ring {
    /// (point, member id), sorted by point, then id.
    points: Vec<(u64, u16)>,
}

impl Ring {
    /// A ring with `vnodes` virtual nodes per member of weight 100 (weight
    /// 0: no points). The order of `members` does not matter.
    pub fn new(members: &[Member], vnodes: u32) -> Self {
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
        Ring { points }
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
    fn select(&self, key: ClientKey) -> Option<u16> {
        if self.points.is_empty() {
            return None;
        }
        let h = md5_u64(&[&key.addr.octets(), &key.port.to_be_bytes()]);
        let i = self.points.partition_point(|&(p, _)| p < h);
        Some(self.points[if i == self.points.len() { 0 } else { i }].1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{self, key, members, moved, shares};
    use super::*;

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
