//! Selection allocates only when a table is built: 40k lookups over a ring
//! (with each key hash), a Maglev table and a rendezvous table make zero
//! calls to the global allocator.
//!
//! The counts are the measuring thread's own (`shoal_alloc_count`): other
//! threads allocating meanwhile (libtest's, other tests') do not move them.

use core::net::Ipv4Addr;

use shoal_alloc_count::{CountingAlloc, Region};
use shoal_config::Algorithm;
use shoal_select::{build, ClientKey, KeyHash, Member, Params};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn lookups_allocate_nothing() {
    let members: Vec<Member> = (1..=5u16)
        .map(|id| Member {
            id,
            addr: Ipv4Addr::new(198, 18, 0, 10 + id as u8),
            weight: 100 * u32::from(id % 3),
        })
        .collect();
    let params = Params {
        vnodes: 64,
        key_hash: KeyHash::Splitmix64,
        maglev_table_size: 65_537,
    };
    let md5 = Params {
        key_hash: KeyHash::Md5,
        ..params
    };
    let mut selectors = [Algorithm::Ring, Algorithm::Maglev, Algorithm::Rendezvous]
        .map(|a| build(a, &members, &params))
        .to_vec();
    selectors.push(build(Algorithm::Ring, &members, &md5));

    let region = Region::new();
    let mut owners = [0u32; 6];
    for s in &selectors {
        for i in 0..10_000u32 {
            let key = ClientKey {
                addr: Ipv4Addr::from(0xc613_0000 | (i & 0xffff)),
                port: 1024 + (i % 60_000) as u16,
            };
            owners[usize::from(s.select(key).unwrap_or(0))] += 1;
        }
    }
    let stats = region.change();

    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
    // Every key found an owner; member 3 (weight 0) none.
    assert_eq!(owners.iter().sum::<u32>(), 40_000);
    assert_eq!(owners[0], 0);
    assert_eq!(owners[3], 0);
}
