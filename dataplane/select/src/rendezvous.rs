//! Weighted rendezvous (highest random weight) hashing.
//!
//! Each member scores `weight / -ln(u)`, with `u` uniform in (0, 1] from
//! hash(member id, key hash); the best score wins (the logarithmic method,
//! which gives member `i` the share `w_i / sum w`). A key's owner depends only
//! on the scores of the members present, so removing a member moves only that
//! member's keys. Lookups cost O(N) hash evaluations and allocate nothing.

use super::{key_hash, mix64, Candidate, ClientKey, Selector};

/// The members of a weighted rendezvous table, sorted by id.
#[derive(Debug, Clone)]
pub struct Rendezvous {
    members: Vec<Candidate>,
}

impl Rendezvous {
    /// A table over `members` (members with weight 0 are never chosen; the
    /// order does not matter).
    pub fn new(members: &[Candidate]) -> Self {
        let mut members: Vec<Candidate> =
            members.iter().copied().filter(|m| m.weight > 0).collect();
        members.sort_by_key(|m| m.id);
        Rendezvous { members }
    }
}

impl Selector for Rendezvous {
    fn select(&self, key: ClientKey) -> Option<u16> {
        let kh = key_hash(key);
        let mut best: Option<(f64, u16)> = None;
        for m in &self.members {
            let h = mix64(kh ^ mix64(u64::from(m.id).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            // 53 random bits -> u in (0, 1]; -ln(u) >= 0.
            let u = ((h >> 11) + 1) as f64 / (1u64 << 53) as f64;
            let score = f64::from(m.weight) / -u.ln().min(-f64::MIN_POSITIVE);
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, m.id));
            }
        }
        best.map(|(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{self, key, moved, shares};
    use super::*;

    fn members(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Candidate {
                id: i as u16 + 1,
                weight: w,
            })
            .collect()
    }

    #[test]
    fn same_answer_regardless_of_member_order() {
        let mut m = members(&[100, 100, 100, 50]);
        let a = Rendezvous::new(&m);
        m.reverse();
        let b = Rendezvous::new(&m);
        m.swap(0, 3);
        let c = Rendezvous::new(&m);
        for i in 0..10_000 {
            assert_eq!(a.select(key(i)), b.select(key(i)));
            assert_eq!(a.select(key(i)), c.select(key(i)));
        }
    }

    #[test]
    fn spreads_by_weight() {
        let r = Rendezvous::new(&members(&[100, 100, 200]));
        let n = 40_000;
        let share = shares(&r, 3, n);
        // Expected 25 % / 25 % / 50 %, within 2 percentage points.
        for (got, want) in share.iter().zip([0.25, 0.25, 0.5]) {
            let frac = f64::from(*got) / f64::from(n);
            assert!((frac - want).abs() < 0.02, "share {share:?}");
        }
    }

    #[test]
    fn removing_a_member_moves_only_its_keys() {
        let all = Rendezvous::new(&members(&[100, 100, 100]));
        let mut m = members(&[100, 100, 100]);
        m[1].weight = 0; // drained: same as removed for new connections
        let drained = Rendezvous::new(&m);
        m.remove(1);
        let removed = Rendezvous::new(&m);
        for (without, what) in [(&drained, "drained"), (&removed, "removed")] {
            let (n_moved, wrongly) = moved(&all, without, 2, 10_000);
            assert_eq!(wrongly, 0, "{what}");
            assert_eq!(n_moved, shares(&all, 3, 10_000)[1], "{what}");
        }
    }

    #[test]
    fn all_drained_selects_nobody() {
        assert_eq!(Rendezvous::new(&members(&[0, 0])).select(key(1)), None);
        assert_eq!(Rendezvous::new(&[]).select(key(1)), None);
    }

    #[test]
    fn golden_owners() {
        // A fixed 3-member config: a change to the key hash or the scoring
        // changes these owners.
        let r = Rendezvous::new(&members(&[100, 100, 100]));
        assert_eq!(testutil::golden_owners(&r), [1, 3, 2, 2, 2, 2]);
    }
}
