//! Maglev lookup-table hashing (Eisenbud et al., NSDI'16, §3.4), weighted.
//!
//! Each member has a permutation of the M slots derived from MD5 over its
//! own address: `offset = h1 % M`, `skip = h2 % (M - 1) + 1`, slot `j` of the
//! permutation is `(offset + j x skip) % M` (a full permutation because M is
//! prime), where h1 and h2 are the first and last 8 bytes of the digest,
//! big-endian. The table is filled in rounds; in each round every member whose
//! turn it is takes the next slot of its permutation that is still free.
//!
//! Weights: a member of weight `w` takes a turn in round `t` (from 1) when
//! `t x w >= target`, where `target` starts at `max_w` (the largest weight)
//! and grows by `max_w` with every turn taken. After `t` rounds it has had
//! `floor(t x w / max_w)` turns, so the heaviest members fill a slot every
//! round and the others in proportion: each member ends with
//! `M x w / sum w` slots, to within one or two. Members take their turns in
//! ascending id order, so the table does not depend on the order they are
//! given in; nothing is seeded, so every member builds the same table.
//!
//! A key belongs to `table[key_hash % M]`: one hash and one table read, no
//! allocation. Removing a member keeps most slots where they were
//! (each surviving member's permutation is unchanged); a little more than
//! the removed member's share moves.

use super::{key_hash, md5, ClientKey, Member, Selector};

/// A Maglev lookup table: member ids, one per slot.
#[derive(Debug, Clone)]
pub struct Maglev {
    /// Member id per slot; empty when no member has weight.
    table: Vec<u16>,
    /// M (prime), also when the table is empty.
    size: u32,
}

/// One member's state while the table is populated.
struct Builder {
    id: u16,
    weight: u128,
    /// Its turn comes when `round x weight >= target`.
    target: u128,
    /// The next slot of its permutation to try.
    next: u64,
    skip: u64,
}

impl Maglev {
    /// The table of size `table_size` over `members` (weight 0: no slots;
    /// order does not matter). `table_size` should be a prime larger than
    /// 100 x members (the config enforces it); a size that is not prime is
    /// rounded up to the next prime (see [`Maglev::table_size`]). Costs
    /// O(M x N) in the worst case: build it off the packet path.
    pub fn new(members: &[Member], table_size: u32) -> Self {
        let size = next_prime(table_size);
        let m = u64::from(size);
        let mut active: Vec<&Member> = members.iter().filter(|m| m.weight > 0).collect();
        active.sort_by_key(|m| m.id);
        let Some(max_w) = active.iter().map(|m| u128::from(m.weight)).max() else {
            return Maglev {
                table: Vec::new(),
                size,
            };
        };
        let mut builders: Vec<Builder> = active
            .iter()
            .map(|mem| {
                let d = md5(&[&mem.addr.octets()]);
                let h1 = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
                let h2 = u64::from_be_bytes([d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]]);
                Builder {
                    id: mem.id,
                    weight: u128::from(mem.weight),
                    target: max_w,
                    next: h1 % m,
                    skip: h2 % (m - 1) + 1,
                }
            })
            .collect();
        let mut slots: Vec<Option<u16>> = vec![None; size as usize];
        let mut filled = 0u64;
        let mut round = 0u128;
        // The heaviest member fills a slot every round: at most M rounds.
        while filled < m {
            round += 1;
            for b in &mut builders {
                if round * b.weight < b.target {
                    continue;
                }
                b.target += max_w;
                // A free slot exists (filled < m) and the permutation visits
                // every slot, so this ends.
                let mut c = b.next;
                while slots[c as usize].is_some() {
                    c = (c + b.skip) % m;
                }
                slots[c as usize] = Some(b.id);
                b.next = (c + b.skip) % m;
                filled += 1;
                if filled == m {
                    break;
                }
            }
        }
        Maglev {
            table: slots.into_iter().map(Option::unwrap_or_default).collect(),
            size,
        }
    }

    /// M: the table size actually used (the requested size, or the next
    /// prime above it).
    pub fn table_size(&self) -> u32 {
        self.size
    }

    /// Slots held by each member with weight, by id ascending.
    pub fn slots_per_member(&self) -> Vec<(u16, usize)> {
        let mut counts: Vec<(u16, usize)> = Vec::new();
        for &id in &self.table {
            match counts.binary_search_by_key(&id, |&(i, _)| i) {
                Ok(i) => counts[i].1 += 1,
                Err(i) => counts.insert(i, (id, 1)),
            }
        }
        counts
    }
}

impl Selector for Maglev {
    fn select(&self, key: ClientKey) -> Option<u16> {
        let len = self.table.len() as u64;
        if len == 0 {
            return None;
        }
        self.table.get((key_hash(key) % len) as usize).copied()
    }
}

/// True if `n` is prime (trial division; for table sizes, off the packet path).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let n = u64::from(n);
    let mut d = 2u64;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

/// The smallest prime `>= n` (2 for `n <= 2`; the largest `u32` prime,
/// 4 294 967 291, when none is representable).
pub fn next_prime(n: u32) -> u32 {
    let mut p = n.max(2);
    loop {
        if is_prime(p) {
            return p;
        }
        match p.checked_add(1) {
            Some(q) => p = q,
            None => return 4_294_967_291,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{self, key, members, moved, shares};
    use super::*;

    #[test]
    fn primes() {
        let p: Vec<u32> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(p, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert_eq!(next_prime(0), 2);
        assert_eq!(next_prime(65_536), 65_537);
        assert_eq!(next_prime(65_537), 65_537);
        assert_eq!(next_prime(u32::MAX), 4_294_967_291);
        assert_eq!(Maglev::new(&members(&[100]), 300).table_size(), 307);
    }

    #[test]
    fn permutation_follows_the_paper() {
        // offset and skip from MD5 of the address; the permutation visits
        // every slot; round 1 gives each member the first slot of its own.
        let perm = |addr: [u8; 4], m: u64| {
            let d = md5(&[&addr]);
            let h1 = u64::from_be_bytes(d[..8].try_into().unwrap());
            let h2 = u64::from_be_bytes(d[8..].try_into().unwrap());
            (h1 % m, h2 % (m - 1) + 1)
        };
        let (off1, skip1) = perm([198, 18, 0, 11], 13);
        let (off2, _) = perm([198, 18, 0, 12], 13);
        let mut seen: Vec<u64> = (0..13).map(|j| (off1 + j * skip1) % 13).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..13).collect::<Vec<_>>());
        let t = Maglev::new(&members(&[100, 100]), 13);
        assert_eq!(t.table[off1 as usize], 1);
        if off2 != off1 {
            assert_eq!(t.table[off2 as usize], 2);
        }
        assert_eq!(t.slots_per_member(), vec![(1, 7), (2, 6)]);
        // One member fills the whole table.
        assert_eq!(Maglev::new(&members(&[100]), 13).table, vec![1; 13]);
    }

    #[test]
    fn same_answer_regardless_of_member_order() {
        let mut m = members(&[100, 50, 100, 200]);
        let a = Maglev::new(&m, 65_537);
        m.reverse();
        let b = Maglev::new(&m, 65_537);
        m.swap(0, 2);
        let c = Maglev::new(&m, 65_537);
        assert_eq!(a.table, b.table);
        assert_eq!(a.table, c.table);
    }

    #[test]
    fn equal_members_hold_m_over_n_slots() {
        // Equal weights: one slot per member per round, so every member holds
        // floor(M/N) or ceil(M/N) slots: far inside "a few % of M/N".
        for n in [3usize, 5, 8] {
            let t = Maglev::new(&members(&vec![100; n]), 65_537);
            let per = t.slots_per_member();
            assert_eq!(per.len(), n);
            let lo = 65_537 / n;
            for &(_, c) in &per {
                assert!(c == lo || c == lo + 1, "n {n}: {per:?}");
            }
            assert_eq!(per.iter().map(|&(_, c)| c).sum::<usize>(), 65_537);
        }
    }

    #[test]
    fn weights_set_the_slot_counts() {
        // 1:1:2 and a drained member: 16 384 / 16 384 / 32 768 (+1 somewhere).
        let t = Maglev::new(&members(&[100, 100, 200, 0]), 65_537);
        let per = t.slots_per_member();
        assert_eq!(per.iter().map(|&(id, _)| id).collect::<Vec<_>>(), [1, 2, 3]);
        for (&(_, got), want) in per.iter().zip([16_384.25, 16_384.25, 32_768.5]) {
            assert!((got as f64 - want).abs() <= 2.0, "{per:?}");
        }
        // Uneven weights: each within 0.1 % of M x w / sum w.
        let w = [30, 100, 70, 45];
        let t = Maglev::new(&members(&w), 65_537);
        let sum: u32 = w.iter().sum();
        for (&(_, got), &w) in t.slots_per_member().iter().zip(&w) {
            let want = 65_537.0 * f64::from(w) / f64::from(sum);
            assert!((got as f64 - want).abs() / want < 0.001, "{got} vs {want}");
        }
        // Keys follow the slots: 25/25/50 % within 2 points.
        let t = Maglev::new(&members(&[100, 100, 200]), 65_537);
        let n = 40_000;
        let share = shares(&t, 3, n);
        for (got, want) in share.iter().zip([0.25, 0.25, 0.5]) {
            assert!(
                (f64::from(*got) / f64::from(n) - want).abs() < 0.02,
                "{share:?}"
            );
        }
    }

    #[test]
    fn removal_moves_about_the_removed_share() {
        for n in [3usize, 5, 8] {
            let all = Maglev::new(&members(&vec![100; n]), 65_537);
            for removed in 1..=n as u16 {
                let mut m = members(&vec![100; n]);
                m.retain(|m| m.id != removed);
                let without = Maglev::new(&m, 65_537);
                // Draining (weight 0) builds the same table as removing.
                let mut d = members(&vec![100; n]);
                d[usize::from(removed - 1)].weight = 0;
                assert_eq!(Maglev::new(&d, 65_537).table, without.table);
                // Slots: all of the removed member's move, few others do.
                let slots_moved = all
                    .table
                    .iter()
                    .zip(&without.table)
                    .filter(|(a, b)| a != b)
                    .count();
                let frac = slots_moved as f64 / 65_537.0;
                let share = 1.0 / n as f64;
                assert!(frac >= share - 0.001, "n {n} -{removed}: {frac}");
                assert!(frac < share + 0.05, "n {n} -{removed}: {frac}");
                // Keys: the same picture.
                let (k, _) = moved(&all, &without, removed, 20_000);
                let kf = f64::from(k) / 20_000.0;
                assert!(kf < share + 0.05, "n {n} -{removed}: keys {kf}");
                assert!(without.table.iter().all(|&id| id != removed));
            }
        }
    }

    #[test]
    fn empty_and_drained_tables_select_nobody() {
        let t = Maglev::new(&[], 65_537);
        assert_eq!(t.select(key(1)), None);
        assert_eq!(t.table_size(), 65_537);
        assert_eq!(Maglev::new(&members(&[0, 0]), 251).select(key(1)), None);
        assert!(Maglev::new(&members(&[0, 0]), 251)
            .slots_per_member()
            .is_empty());
    }

    #[test]
    fn lookup_is_table_at_key_hash_mod_m() {
        let t = Maglev::new(&members(&[100, 100, 100]), 65_537);
        for i in 0..1_000 {
            let k = key(i);
            let slot = (key_hash(k) % 65_537) as usize;
            assert_eq!(t.select(k), Some(t.table[slot]));
        }
    }

    #[test]
    fn golden_owners() {
        // A fixed 3-member config: a change to MD5 of the address, the
        // offset/skip derivation, the fill order or the key hash changes these.
        let t = Maglev::new(&members(&[100, 100, 100]), 65_537);
        assert_eq!(testutil::golden_owners(&t), [2, 1, 3, 1, 2, 2]);
        assert_eq!(t.table[..12], [1, 1, 1, 1, 3, 1, 1, 1, 3, 3, 1, 1]);
    }
}
