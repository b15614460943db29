//! Inspector selection: which member is responsible for a new connection.
//!
//! Every member computes the same pure function of (membership table, client
//! address and port), so exactly one of them answers a SYN. Tables are built
//! off the packet path and swapped in whole; lookups allocate nothing.
//!
//! This module owns the interface ([`Selector`]), the client key and its hash
//! ([`key_hash`]), the member as the table builders see it ([`Member`]) and
//! [`build`], which turns a config's algorithm into a table. The algorithms
//! live in their own files: [`Ring`] (DTS ring consistent hashing: MD5,
//! virtual nodes), [`Maglev`] (Maglev lookup table, NSDI'16 §3.4) and
//! [`Rendezvous`] (weighted highest-random-weight hashing). All three are
//! weighted, never choose a member of weight 0, and answer `None` when no
//! member can take connections. Nothing here reads a clock, does I/O or looks
//! at packets; nothing here is seeded per process, so every member agrees.

#![forbid(unsafe_code)]

use core::net::Ipv4Addr;
use std::sync::Arc;

use shoal_config::Algorithm;
pub use shoal_config::KeyHash;

pub mod claim;
mod maglev;
mod rendezvous;
mod ring;

pub use maglev::{is_prime, next_prime, Maglev};
pub use rendezvous::Rendezvous;
pub use ring::Ring;

/// What selection hashes: the client's address and port (DTS §3, DPR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// Client IPv4 address.
    pub addr: Ipv4Addr,
    /// Client port (0 for protocols without ports, e.g. ICMP).
    pub port: u16,
}

/// A member as rendezvous hashing sees it (it hashes ids, not addresses).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The member's cluster-wide id.
    pub id: u16,
    /// Relative weight; 0 takes no new connections (drained).
    pub weight: u32,
}

/// A member as the table builders see it: id, own address and weight.
///
/// The ring and Maglev place a member by hashing its address (DTS §3.1,
/// Maglev §3.4), so two members with the same id but different addresses
/// get different places; rendezvous hashes the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Cluster-wide id (what [`Selector::select`] answers).
    pub id: u16,
    /// The member's own (non-VIP) address.
    pub addr: Ipv4Addr,
    /// Relative weight: 100 is the default share, 0 takes no new connections.
    pub weight: u32,
}

impl From<Member> for Candidate {
    fn from(m: Member) -> Candidate {
        Candidate {
            id: m.id,
            weight: m.weight,
        }
    }
}

/// Elects one member for a client key. Implementations are immutable tables.
pub trait Selector: Send + Sync + core::fmt::Debug {
    /// The id of the member responsible for `key`, or `None` when no member
    /// can take connections (all drained).
    fn select(&self, key: ClientKey) -> Option<u16>;
}

/// The knobs of the algorithms (`[services.selection]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Ring: virtual nodes per member of weight 100 (DTS Fig. 8: >= 31).
    pub vnodes: u32,
    /// Ring: how client keys are hashed to points (Maglev and rendezvous
    /// always use [`key_hash`]).
    pub key_hash: KeyHash,
    /// Maglev: lookup table size M, a prime > 100 x members (rounded up to
    /// the next prime if it is not one).
    pub maglev_table_size: u32,
}

impl Default for Params {
    /// The config's defaults: 64 vnodes, splitmix64 key hash, M = 65 537.
    fn default() -> Params {
        Params {
            vnodes: 64,
            key_hash: KeyHash::Splitmix64,
            maglev_table_size: 65_537,
        }
    }
}

impl From<&shoal_config::Selection> for Params {
    fn from(s: &shoal_config::Selection) -> Params {
        Params {
            vnodes: s.vnodes,
            key_hash: s.key_hash,
            maglev_table_size: s.maglev_table_size,
        }
    }
}

/// Builds `algorithm`'s table over `members` (in any order: the result does
/// not depend on it). Off the packet path: the ring costs O(vnodes x N log),
/// Maglev O(M x N) in the worst case.
pub fn build(algorithm: Algorithm, members: &[Member], params: &Params) -> Arc<dyn Selector> {
    match algorithm {
        Algorithm::Ring => Arc::new(Ring::with_key_hash(members, params.vnodes, params.key_hash)),
        Algorithm::Maglev => Arc::new(Maglev::new(members, params.maglev_table_size)),
        Algorithm::Rendezvous => Arc::new(Rendezvous::new(
            &members
                .iter()
                .copied()
                .map(Candidate::from)
                .collect::<Vec<_>>(),
        )),
    }
}

/// `SplitMix64` finaliser: a fixed, well-mixed 64-bit hash every member computes
/// identically (unlike a per-process random hasher).
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 64-bit hash of a client key used by Maglev and rendezvous, and by the
/// ring with [`KeyHash::Splitmix64`] (with [`KeyHash::Md5`] the ring hashes
/// keys with MD5, as DTS does).
#[inline]
pub fn key_hash(key: ClientKey) -> u64 {
    mix64((u64::from(u32::from(key.addr)) << 16) | u64::from(key.port))
}

/// MD5 over the concatenation of `parts` (what DTS hashes with).
pub(crate) fn md5(parts: &[&[u8]]) -> [u8; 16] {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The first 8 bytes of MD5 over `parts`, big-endian: a point on the ring
/// (also the URL hash of `shoal-l7`'s dispatch, DTS-style).
pub fn md5_u64(parts: &[&[u8]]) -> u64 {
    let d = md5(parts);
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Shared fixtures of the algorithm tests.

    use super::{ClientKey, Member, Selector};
    use core::net::Ipv4Addr;

    /// Client key number `i`: addresses from 198.18.0.0 upward, ports spread.
    pub fn key(i: u32) -> ClientKey {
        ClientKey {
            addr: Ipv4Addr::from(0xc612_0000 + (i >> 8)),
            port: (i & 0xffff) as u16,
        }
    }

    /// Members with ids 1.. and addresses 198.18.0.11.. and these weights.
    pub fn members(weights: &[u32]) -> Vec<Member> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Member {
                id: i as u16 + 1,
                addr: Ipv4Addr::new(198, 18, 0, 11 + i as u8),
                weight: w,
            })
            .collect()
    }

    /// Keys per member id (index id - 1) over keys 0..n.
    pub fn shares(s: &dyn Selector, members: usize, n: u32) -> Vec<u32> {
        let mut share = vec![0u32; members];
        for i in 0..n {
            share[usize::from(s.select(key(i)).unwrap() - 1)] += 1;
        }
        share
    }

    /// Fixed client keys of the golden-value tests.
    pub const GOLDEN_KEYS: [([u8; 4], u16); 6] = [
        ([198, 19, 0, 1], 40_000),
        ([198, 19, 0, 2], 40_001),
        ([198, 19, 7, 9], 1_024),
        ([203, 0, 113, 5], 55_555),
        ([10, 1, 2, 3], 0),
        ([192, 0, 2, 77], 65_535),
    ];

    /// The owners `s` names for [`GOLDEN_KEYS`].
    pub fn golden_owners(s: &dyn Selector) -> Vec<u16> {
        GOLDEN_KEYS
            .iter()
            .map(|&(a, port)| {
                s.select(ClientKey {
                    addr: Ipv4Addr::from(a),
                    port,
                })
                .unwrap()
            })
            .collect()
    }

    /// Keys among 0..n whose owner differs between `a` and `b`: (moved in
    /// total, moved although their owner in `a` was not `removed`).
    pub fn moved(a: &dyn Selector, b: &dyn Selector, removed: u16, n: u32) -> (u32, u32) {
        let (mut moved, mut wrongly) = (0, 0);
        for i in 0..n {
            let (before, after) = (a.select(key(i)), b.select(key(i)));
            if before != after {
                moved += 1;
                if before != Some(removed) {
                    wrongly += 1;
                }
            }
        }
        (moved, wrongly)
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{key, members};
    use super::*;

    #[test]
    fn build_dispatches_on_the_algorithm() {
        let m = members(&[100, 100, 100]);
        let p = Params {
            vnodes: 31,
            key_hash: KeyHash::Md5,
            maglev_table_size: 307,
        };
        let ring = Ring::new(&m, 31);
        let maglev = Maglev::new(&m, 307);
        let hrw = Rendezvous::new(&m.iter().copied().map(Candidate::from).collect::<Vec<_>>());
        let built = [
            build(Algorithm::Ring, &m, &p),
            build(Algorithm::Maglev, &m, &p),
            build(Algorithm::Rendezvous, &m, &p),
        ];
        let direct: [&dyn Selector; 3] = [&ring, &maglev, &hrw];
        for (b, d) in built.iter().zip(direct) {
            for i in 0..2_000 {
                assert_eq!(b.select(key(i)), d.select(key(i)));
            }
        }
        // The three algorithms really are different functions.
        let differ = |a: &dyn Selector, b: &dyn Selector| {
            (0..2_000)
                .filter(|&i| a.select(key(i)) != b.select(key(i)))
                .count()
        };
        assert!(differ(&ring, &maglev) > 500);
        assert!(differ(&maglev, &hrw) > 500);
    }

    #[test]
    fn every_algorithm_answers_none_without_members() {
        let p = Params::default();
        for algo in [Algorithm::Ring, Algorithm::Maglev, Algorithm::Rendezvous] {
            assert_eq!(build(algo, &[], &p).select(key(1)), None, "{algo:?}");
            assert_eq!(
                build(algo, &members(&[0, 0]), &p).select(key(1)),
                None,
                "{algo:?}"
            );
        }
    }

    #[test]
    fn params_follow_the_config() {
        let sel = shoal_config::Selection::default();
        assert_eq!(Params::from(&sel), Params::default());
    }

    #[test]
    fn key_hash_is_fixed() {
        // Maglev and rendezvous depend on it: a change moves every key.
        let k = ClientKey {
            addr: Ipv4Addr::new(198, 19, 0, 1),
            port: 40_000,
        };
        assert_eq!(key_hash(k), mix64(0xc613_0001_9c40));
        assert_eq!(mix64(0), 0);
        assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
    }
}
