//! A counting global allocator for the `*_no_alloc` tests: it delegates to
//! [`System`] and counts, per thread, the calls each thread makes.
//!
//! A process-wide count also sees what other threads allocate inside the
//! measured region (libtest's own threads, other tests running in parallel),
//! so an assertion of "zero allocations" failed spuriously on a loaded
//! machine. A [`Region`] reads the counters of the thread that created it,
//! so only the measured code can move them.
//!
//! Install it in a test binary and measure a region:
//!
//! ```
//! use shoal_alloc_count::{CountingAlloc, Region};
//!
//! #[global_allocator]
//! static GLOBAL: CountingAlloc = CountingAlloc;
//!
//! fn main() {
//!     let table = vec![0u64; 64];
//!     let region = Region::new();
//!     let sum: u64 = table.iter().sum(); // the code under test
//!     assert_eq!(region.change().allocations, 0);
//!     assert_eq!(sum, 0);
//! }
//! ```
//!
//! This crate is dev-only: nothing outside tests depends on it. Its `unsafe`
//! (with `shoal-prefetch`'s one line, the only `unsafe` outside
//! `dpdk-bindings`) is what `GlobalAlloc` requires: the impl forwards every
//! call unchanged to [`System`].

#![allow(unsafe_code)]

use core::cell::Cell;
use core::marker::PhantomData;
use std::alloc::{GlobalAlloc, Layout, System};

/// Calls to the allocator made by one thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// `alloc` and `alloc_zeroed` calls.
    pub allocations: u64,
    /// `dealloc` calls.
    pub deallocations: u64,
    /// `realloc` calls.
    pub reallocations: u64,
}

impl Counts {
    const ZERO: Self = Self {
        allocations: 0,
        deallocations: 0,
        reallocations: 0,
    };
}

thread_local! {
    // `const` initialisation of a type without `Drop`: no lazy initialiser
    // and no destructor to register, so touching it never allocates (which
    // would re-enter the allocator).
    static COUNTS: Cell<Counts> = const { Cell::new(Counts::ZERO) };
}

/// Adds one call to the current thread's counts. `try_with` rather than
/// `with`: a thread may still allocate while its thread-locals are torn down,
/// and such a call must not panic inside the allocator; it goes uncounted.
fn count(bump: impl FnOnce(&mut Counts)) {
    let _ = COUNTS.try_with(|cell| {
        let mut counts = cell.get();
        bump(&mut counts);
        cell.set(counts);
    });
}

/// The current thread's counts since it started.
pub fn thread_counts() -> Counts {
    COUNTS.try_with(Cell::get).unwrap_or_default()
}

/// A global allocator that counts each thread's calls and forwards them to
/// [`System`]. Install it with `#[global_allocator]`.
pub struct CountingAlloc;

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract; the counting beside it touches only a
// thread-local `Cell` and never allocates or frees memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(|c| c.allocations += 1);
        // SAFETY: the caller's guarantees on `layout` are passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(|c| c.allocations += 1);
        // SAFETY: the caller's guarantees on `layout` are passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(|c| c.deallocations += 1);
        // SAFETY: `ptr` came from this allocator, hence from `System`, with
        // this `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(|c| c.reallocations += 1);
        // SAFETY: `ptr` came from this allocator, hence from `System`, with
        // this `layout`; `new_size` meets the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// A measured region of the current thread: the counts at creation, to be
/// compared with the counts at [`Region::change`].
///
/// Not `Send`: the region belongs to the thread that created it, whose
/// counters it reads.
#[derive(Debug)]
pub struct Region {
    start: Counts,
    _thread_bound: PhantomData<*const ()>,
}

impl Region {
    /// Starts measuring the current thread.
    pub fn new() -> Self {
        Self {
            start: thread_counts(),
            _thread_bound: PhantomData,
        }
    }

    /// The calls this thread made since the region started.
    pub fn change(&self) -> Counts {
        let now = thread_counts();
        Counts {
            allocations: now.allocations - self.start.allocations,
            deallocations: now.deallocations - self.start.deallocations,
            reallocations: now.reallocations - self.start.reallocations,
        }
    }
}

impl Default for Region {
    fn default() -> Self {
        Self::new()
    }
}
