//! Software prefetch, for the dataplane's burst stages
//! (`shoal_dataplane::pipeline::burst`, `FlowTable::warm_burst`).
//!
//! A burst of 32 frames needs, per frame, its header line, its flow-index
//! bucket and its flow slot: three cache misses in a chain, each address
//! known only once the previous line has arrived. Taken frame by frame
//! that is three memory latencies per packet; taken stage by stage (every
//! frame's header, then every bucket, then every slot), the misses of one
//! stage are in flight together. A plain load whose value is thrown away
//! (`core::hint::black_box`) does not do it well: it cannot retire before
//! its line arrives, so the reorder buffer fills after a few frames and the
//! stage stalls. A prefetch instruction retires at once. Measured on the
//! 100 000-flow cold walk (`perf/benches/pipeline.rs`): 160-175 ns per
//! packet with loads, 92 ns with prefetches (perf/README.md).
//!
//! Rust's stable prefetch is `core::arch::x86_64::_mm_prefetch`, which needs
//! `unsafe` outside a `#[target_feature]` function (E0133) even though the
//! instruction cannot fault; `core::intrinsics::prefetch_read_data` and
//! `core::hint::prefetch_read` are unstable. This crate holds that one
//! `unsafe` block so the dataplane crates can keep `#![forbid(unsafe_code)]`.
//! No well-kept crate on crates.io offers it (the `prefetch` crate is
//! unmaintained since 2016).

#![no_std]
#![deny(unsafe_code)]

/// Asks the CPU to bring the cache line holding the first byte of `*r`
/// into every cache level (x86-64 `PREFETCHT0`). A hint: it changes no
/// value, never faults and may be ignored; on other architectures it does
/// nothing.
#[inline]
pub fn read<T: ?Sized>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: PREFETCHT0 has no architectural effect (no register or memory
    // is written, no exception is raised even for an invalid address, and
    // here the address comes from a live reference); `_mm_prefetch` is
    // `unsafe` only because it is a target-feature intrinsic, and SSE is
    // part of the x86-64 baseline every build of this crate targets.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            core::ptr::from_ref::<T>(r).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// [`read`] of the line holding `bytes[at]`, if `at` is inside `bytes`.
#[inline]
pub fn read_at(bytes: &[u8], at: usize) {
    if let Some(b) = bytes.get(at) {
        read(b);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetching_changes_nothing() {
        let v = [1u8, 2, 3];
        super::read(&v);
        super::read_at(&v, 2);
        super::read_at(&v, 3);
        super::read(&v[..0]);
        assert_eq!(v, [1, 2, 3]);
    }
}
