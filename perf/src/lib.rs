//! Shoal's benchmarks. The code lives in `benches/` (run with
//! `cargo bench -p shoal-perf`); this library holds what they share: the
//! [`ThreadCpuTime`] measurement, and the model behind the `dtcp-sim`
//! binary ([`dtcp_sim`]). Figures and how they were measured:
//! `perf/README.md`.

#![forbid(unsafe_code)]

pub mod dtcp_sim;
pub mod dts_sim;

/// The benches' cluster: `deploy/examples/replay.toml` (3 members, ring
/// selection, `local` mode), seen from srv1, with the SYN proxy off: a
/// bench opens its thousands of flows at one instant and never completes
/// their handshakes, which `syn_proxy = "auto"` rightly takes for a flood
/// (it engages past 1 024 half-open flows and answers cookies instead).
///
/// # Panics
///
/// If the example config does not load (a broken checkout).
pub fn bench_config() -> shoal_config::Config {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).expect("example config loads");
    for s in &mut cfg.services {
        s.syn_proxy = Some(shoal_config::SynProxy::Off);
    }
    cfg
}

use core::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;
use rustix::time::{clock_gettime, ClockId};

/// A criterion measurement of the benchmark thread's CPU time
/// (`CLOCK_THREAD_CPUTIME_ID`) instead of wall-clock time: time the thread
/// spends descheduled, while other processes use its core, is not counted.
/// On a machine whose cores are shared (builds, the lab) this removes most
/// of the noise of wall-clock figures; what remains of the sharing is the
/// caches the other processes evict. Reading the clock is a system call
/// (~0.3 µs), amortised over criterion's iteration batches.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadCpuTime;

fn thread_cpu_now() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }

    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuTimeFormatter
    }
}

/// Formats nanoseconds of CPU time as criterion formats wall time.
struct CpuTimeFormatter;

impl CpuTimeFormatter {
    fn unit(typical: f64) -> (f64, &'static str) {
        match typical {
            t if t < 1e3 => (1.0, "ns"),
            t if t < 1e6 => (1e-3, "µs"),
            t if t < 1e9 => (1e-6, "ms"),
            _ => (1e-9, "s"),
        }
    }
}

impl ValueFormatter for CpuTimeFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = Self::unit(typical);
        for v in values {
            *v *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (n, unit) = match *throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (n as f64, "B/s"),
            Throughput::Elements(n) => (n as f64, "elem/s"),
        };
        // Per second of CPU time, in millions when large.
        let per_s = n * 1e9 / typical.max(f64::MIN_POSITIVE);
        let (factor, prefix) = if per_s >= 1e6 { (1e-6, "M") } else { (1.0, "") };
        for v in values {
            *v = n * 1e9 / v.max(f64::MIN_POSITIVE) * factor;
        }
        if prefix == "M" {
            if unit == "B/s" {
                "MB/s"
            } else {
                "Melem/s"
            }
        } else {
            unit
        }
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::float_cmp)] // exact: small integers and halves
    fn cpu_time_advances_with_work_and_formats_like_wall_time() {
        let m = ThreadCpuTime;
        let start = m.start();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = core::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let spent = m.end(start);
        assert!(spent > Duration::ZERO, "{spent:?} for {x}");
        assert_eq!(m.to_f64(&Duration::from_micros(2)), 2_000.0);
        let mut v = [1_500.0, 2_500.0];
        assert_eq!(m.formatter().scale_values(2_000.0, &mut v), "µs");
        assert_eq!(v, [1.5, 2.5]);
        let mut t = [1_000.0];
        let unit = m
            .formatter()
            .scale_throughputs(1_000.0, &Throughput::Elements(32), &mut t);
        assert_eq!((unit, t[0]), ("Melem/s", 32.0));
    }
}
