//! The counter can fail, and sees its own thread only: an allocation on the
//! measuring thread is counted; allocations another thread makes inside the
//! region are not (they are counted on that thread).

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;

use shoal_alloc_count::{CountingAlloc, Counts, Region};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations the other thread makes while the main thread measures.
const OTHER: u64 = 100;

#[test]
fn counts_the_measuring_thread_only() {
    // Spawning allocates on this thread: done before the region starts.
    let barrier = Arc::new(Barrier::new(2));
    let other = {
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            let mut kept = Vec::with_capacity(OTHER as usize);
            barrier.wait();
            let region = Region::new();
            for n in 0..OTHER {
                kept.push(black_box(Box::new(n)));
            }
            let change = region.change();
            barrier.wait();
            change
        })
    };

    // The other thread allocates between the two waits, inside this region.
    let quiet = Region::new();
    barrier.wait();
    barrier.wait();
    let quiet = quiet.change();

    // This thread allocates, grows and frees: each is counted.
    let own = Region::new();
    let mut bytes = black_box(Vec::<u8>::with_capacity(16));
    bytes.reserve_exact(4096);
    drop(black_box(bytes));
    let own = own.change();

    let theirs = other.join().unwrap();
    // The other thread's calls were not counted here ...
    assert_eq!(quiet, Counts::default());
    // ... but on the other thread.
    assert_eq!(
        theirs,
        Counts {
            allocations: OTHER,
            deallocations: 0,
            reallocations: 0,
        }
    );
    // This thread's own calls were.
    assert_eq!(
        own,
        Counts {
            allocations: 1,
            deallocations: 1,
            reallocations: 1,
        }
    );
}
