//! Inspection shares as Shoal's own selectors give them: build the table of
//! `shoal-select` for N members, hash a deterministic set of client keys
//! through [`Selector::select`] and count each member's keys.
//!
//! Members are those of `deploy/examples/replay.toml` extended: ids 1..=N,
//! addresses 198.18.0.11 upward, weight 100 (the ring and Maglev place a
//! member by hashing its address, so the addresses matter). Client keys:
//! key `k` is client address 10.0.0.0 + `k mod clients`, port
//! 1024 + `k / clients` (interleaved, so any prefix of the keys spreads over
//! every client).

use core::net::Ipv4Addr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shoal_config::{Algorithm, KeyHash};
use shoal_select::{build, ClientKey, Member, Params, Ring, Selector};

/// Which of Shoal's selectors spreads inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectorKind {
    /// The DTS ring exactly as the seed: MD5 points, MD5 client keys,
    /// `vnodes` virtual nodes per member (63 in the seed's §4.2).
    DtsRing,
    /// The ring with the config's defaults: 64 vnodes, splitmix64 keys.
    Ring,
    /// The configured default of `[services.selection]` (rendezvous).
    Default,
    /// Maglev with the config's default table size (65 537).
    Maglev,
}

impl SelectorKind {
    /// Every selector, in the order the tables print them.
    pub const ALL: [SelectorKind; 4] = [
        SelectorKind::DtsRing,
        SelectorKind::Ring,
        SelectorKind::Default,
        SelectorKind::Maglev,
    ];

    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            SelectorKind::DtsRing => "dts-ring",
            SelectorKind::Ring => "ring",
            SelectorKind::Default => "default",
            SelectorKind::Maglev => "maglev",
        }
    }

    /// The selector from its flag spelling.
    pub fn parse(s: &str) -> Option<SelectorKind> {
        SelectorKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// What it is, for table headers (`vnodes`: the DTS ring's).
    pub fn describe(self, vnodes: u32) -> String {
        let p = Params::default();
        match self {
            SelectorKind::DtsRing => format!("DTS ring, {vnodes} vnodes, MD5"),
            SelectorKind::Ring => format!("ring, {} vnodes, splitmix64", p.vnodes),
            SelectorKind::Default => {
                format!("{:?} (config default)", Algorithm::default()).to_lowercase()
            }
            SelectorKind::Maglev => format!("maglev, M = {}", p.maglev_table_size),
        }
    }

    /// Its table over `members`.
    pub fn build(self, members: &[Member], vnodes: u32) -> Arc<dyn Selector> {
        let p = Params::default();
        match self {
            SelectorKind::DtsRing => Arc::new(Ring::with_key_hash(members, vnodes, KeyHash::Md5)),
            SelectorKind::Ring => build(Algorithm::Ring, members, &p),
            SelectorKind::Default => build(Algorithm::default(), members, &p),
            SelectorKind::Maglev => build(Algorithm::Maglev, members, &p),
        }
    }
}

/// `n` members: ids 1..=n, addresses 198.18.0.11 upward, weight 100.
pub fn members(n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| Member {
            id: i as u16 + 1,
            addr: Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 11)) + i as u32),
            weight: 100,
        })
        .collect()
}

/// The client keys: `keys` of them over `clients` addresses (see the
/// module documentation). `clients` must be at least 1 and
/// `keys / clients` at most 64 512 (the ports above 1023).
pub fn client_keys(keys: u32, clients: u32) -> Vec<ClientKey> {
    let clients = clients.max(1);
    (0..keys)
        .map(|k| ClientKey {
            addr: Ipv4Addr::from(0x0a00_0000 + k % clients),
            port: (1024 + k / clients) as u16,
        })
        .collect()
}

/// Each member's share of `keys` under `selector` for `n` members (index
/// `id - 1`), and the largest number of keys one member got.
pub fn shares(selector: &dyn Selector, n: usize, keys: &[ClientKey]) -> (Vec<f64>, u32) {
    let mut count = vec![0u32; n];
    for &k in keys {
        if let Some(id) = selector.select(k) {
            if let Some(c) = count.get_mut(usize::from(id).wrapping_sub(1)) {
                *c += 1;
            }
        }
    }
    let total = keys.len().max(1) as f64;
    let max = count.iter().copied().max().unwrap_or(0);
    (count.iter().map(|&c| f64::from(c) / total).collect(), max)
}

/// `kind`'s shares over `n` members (1..=n) for `keys`.
pub fn selector_shares(kind: SelectorKind, n: usize, vnodes: u32, keys: &[ClientKey]) -> Vec<f64> {
    let sel = kind.build(&members(n), vnodes);
    shares(sel.as_ref(), n, keys).0
}
