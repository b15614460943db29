//! The one clock both processes read as a number: `CLOCK_MONOTONIC`.
//!
//! Control writes the end of the dataplane's lease into the command ring as
//! a `CLOCK_MONOTONIC` time (see `Command::Lease`); the dataplane compares
//! it with the same clock. An absolute deadline (not "valid for 800 ms")
//! is what makes a lease safe when the dataplane is stalled: a command read
//! late is already expired, it never extends a lease by the stall.
//! `std::time::Instant` is this clock on Linux but cannot be turned into a
//! number another process understands.

/// `CLOCK_MONOTONIC` now, nanoseconds since an unspecified origin shared by
/// every process of the host (boot; does not count suspend).
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::monotonic_ns;

    #[test]
    fn never_goes_back_and_counts_a_sleep() {
        let a = monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(a > 0);
        assert!(b >= a + 2_000_000, "{a} -> {b}");
    }
}
