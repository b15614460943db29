//! Shoal's benchmarks. The code lives in `benches/` (run with
//! `cargo bench -p shoal-perf`); this library is empty and exists so the
//! package has a target. Figures and how they were measured: `perf/README.md`.

#![forbid(unsafe_code)]
