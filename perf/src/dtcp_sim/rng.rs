//! The simulation's random numbers: SplitMix64 (Steele, Lea, Flood 2014),
//! seeded explicitly. Written here rather than taken from `rand` so that a
//! seed gives the same workload on every platform and every version of the
//! workspace's dependencies: the figures in `perf/README.md` stay
//! reproducible by the command next to them.

/// A SplitMix64 generator: 64 bits of state, one multiply-xorshift chain per
/// draw; statistically sound and plenty for a workload generator.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)` (53 random bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A geometric count `>= 1` with the given mean (`mean >= 1`): the
    /// number of trials up to and including the first success of
    /// probability `1 / mean`.
    pub fn geometric(&mut self, mean: f64) -> u32 {
        if mean <= 1.0 {
            return 1;
        }
        let p = 1.0 / mean;
        // Inverse transform; 1 - u is in (0, 1], so the log is finite.
        let u = 1.0 - self.next_f64();
        let k = (u.ln() / (1.0 - p).ln()).floor() + 1.0;
        k.min(f64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_known_first_value() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        // Reference value of SplitMix64 seeded with 0 (the published C code).
        assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn geometric_has_the_requested_mean() {
        let mut r = SplitMix64::new(1);
        let n = 200_000;
        let sum: u64 = (0..n).map(|_| u64::from(r.geometric(10.0))).sum();
        let mean = sum as f64 / f64::from(n);
        assert!((mean - 10.0).abs() < 0.1, "mean {mean}");
        assert_eq!(r.geometric(1.0), 1);
    }
}
