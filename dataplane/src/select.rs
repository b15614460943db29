//! Inspector selection: which member is responsible for a new connection.
//!
//! Every member computes the same pure function of (membership table, client
//! address and port), so exactly one of them answers a SYN. Tables are built
//! off the packet path and swapped in whole; lookups allocate nothing.
//!
//! This module owns the interface ([`Selector`]) and the hashing of client
//! keys. Implemented: ring consistent hashing exactly as DTS (MD5, virtual
//! nodes) and weighted rendezvous hashing. Maglev slots in behind the same
//! trait.

use core::net::Ipv4Addr;

/// What selection hashes: the client's address and port (DTS §3, DPR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// Client IPv4 address.
    pub addr: Ipv4Addr,
    /// Client port (0 for protocols without ports, e.g. ICMP).
    pub port: u16,
}

/// A member as selection sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The member's cluster-wide id.
    pub id: u16,
    /// Relative weight; 0 takes no new connections (drained).
    pub weight: u32,
}

/// Elects one member for a client key. Implementations are immutable tables.
pub trait Selector: Send + Sync + core::fmt::Debug {
    /// The id of the member responsible for `key`, or `None` when no member
    /// can take connections (all drained).
    fn select(&self, key: ClientKey) -> Option<u16>;
}

/// `SplitMix64` finaliser: a fixed, well-mixed 64-bit hash every member computes
/// identically (unlike a per-process random hasher).
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 64-bit hash of a client key shared by all selection algorithms.
#[inline]
pub fn key_hash(key: ClientKey) -> u64 {
    mix64((u64::from(u32::from(key.addr)) << 16) | u64::from(key.port))
}

/// Weighted rendezvous (highest random weight) hashing: each member scores
/// `weight / -ln(u)` with `u` uniform from hash(member, key); the best score
/// wins. Removing a member moves only that member's keys.
#[derive(Debug, Clone)]
pub struct Rendezvous {
    members: Vec<Candidate>,
}

impl Rendezvous {
    /// A table over `members` (members with weight 0 are never chosen).
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

/// Ring consistent hashing as in DTS (seed 002, §3.2): every member owns
/// `vnodes x weight / 100` points on a 64-bit ring, point = MD5(member address
/// || vnode index); a key hashes to MD5(client address || client port) and
/// belongs to the first point at or after it (wrapping). Removing a member
/// moves only the keys of its points, to their ring successors.
#[derive(Debug, Clone)]
pub struct Ring {
    /// (point, member id), sorted by point.
    points: Vec<(u64, u16)>,
}

/// A member of a [`Ring`]: its id, its address (what DTS hashes) and weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RingMember {
    /// Cluster-wide id.
    pub id: u16,
    /// Own address; hashed to place the member's virtual nodes.
    pub addr: Ipv4Addr,
    /// Relative weight (100 = `vnodes` points; 0 = no points).
    pub weight: u32,
}

fn md5_u64(parts: &[&[u8]]) -> u64 {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    let d = h.finalize();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

impl Ring {
    /// A ring with `vnodes` virtual nodes per member of weight 100.
    pub fn new(members: &[RingMember], vnodes: u32) -> Self {
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
    use super::*;

    fn key(i: u32) -> ClientKey {
        ClientKey {
            addr: Ipv4Addr::from(0xc612_0000 + (i >> 8)),
            port: (i & 0xffff) as u16,
        }
    }

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
        let mut m = members(&[100, 100, 100]);
        let a = Rendezvous::new(&m);
        m.reverse();
        let b = Rendezvous::new(&m);
        for i in 0..10_000 {
            assert_eq!(a.select(key(i)), b.select(key(i)));
        }
    }

    #[test]
    fn spreads_by_weight() {
        let r = Rendezvous::new(&members(&[100, 100, 200]));
        let mut share = [0u32; 3];
        let n = 40_000;
        for i in 0..n {
            share[usize::from(r.select(key(i)).unwrap() - 1)] += 1;
        }
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
        let without = Rendezvous::new(&m);
        for i in 0..10_000 {
            let before = all.select(key(i)).unwrap();
            let after = without.select(key(i)).unwrap();
            if before == 2 {
                assert_ne!(after, 2);
            } else {
                assert_eq!(before, after, "key {i} moved without reason");
            }
        }
    }

    fn ring_members(weights: &[u32]) -> Vec<RingMember> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| RingMember {
                id: i as u16 + 1,
                addr: Ipv4Addr::new(198, 18, 0, 11 + i as u8),
                weight: w,
            })
            .collect()
    }

    #[test]
    fn ring_removal_moves_only_the_removed_members_keys() {
        let all = Ring::new(&ring_members(&[100, 100, 100]), 64);
        assert_eq!(all.len(), 192);
        let without = Ring::new(&ring_members(&[100, 0, 100]), 64);
        let mut moved = 0;
        for i in 0..10_000 {
            let (b, a) = (all.select(key(i)).unwrap(), without.select(key(i)).unwrap());
            if b == 2 {
                assert_ne!(a, 2);
                moved += 1;
            } else {
                assert_eq!(b, a);
            }
        }
        // Member 2 held about a third of the keys.
        assert!((2_500..4_200).contains(&moved), "moved {moved}");
    }

    #[test]
    fn ring_is_md5_of_address_and_vnode() {
        // One member, one vnode: every key maps to it; the point is MD5(addr || 0u32).
        let r = Ring::new(&ring_members(&[100]), 1);
        assert_eq!(r.select(key(5)), Some(1));
        let expected = md5_u64(&[&[198, 18, 0, 11], &[0, 0, 0, 0]]);
        assert_eq!(r.points, vec![(expected, 1)]);
        assert!(Ring::new(&ring_members(&[0]), 64).is_empty());
        assert_eq!(Ring::new(&[], 64).select(key(1)), None);
    }

    #[test]
    fn all_drained_selects_nobody() {
        assert_eq!(Rendezvous::new(&members(&[0, 0])).select(key(1)), None);
        assert_eq!(Rendezvous::new(&[]).select(key(1)), None);
    }
}
