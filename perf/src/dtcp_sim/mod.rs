//! A discrete-event simulation of seed 004 (DTCP, partial hand-off) §4: a
//! front-end placing each request of persistent connections on back-end
//! nodes with the seed's Algorithm 1, and three ways of serving a
//! connection's later requests: re-handoff (DTCP, what Shoal's re-handoff
//! does), first-request-only dispatch, and LARD's back-end forwarding.
//! Run by `perf/src/bin/dtcp-sim.rs`; model, workload and figures in
//! `perf/README.md` ("DTCP simulation (seed 004)").
//!
//! The module owns the model and nothing of Shoal's code: it simulates the
//! policies, it does not run the dataplane.
//!
//! - [`rng`]: the seeded generator;
//! - [`workload`]: the SPECweb99-shaped file set and request stream;
//! - [`cache`]: a node's LRU memory cache;
//! - [`cluster`]: nodes, Algorithm 1, the strategies and the event loop.

pub mod cache;
pub mod cluster;
pub mod rng;
pub mod workload;

pub use cluster::{simulate, Costs, SimConfig, SimResult, Strategy};
pub use workload::WorkloadParams;

#[cfg(test)]
mod tests {
    use super::*;

    fn small(servers: u32) -> SimConfig {
        SimConfig {
            servers,
            requests: 40_000,
            // A small file set so the caches warm up within the short run.
            workload: WorkloadParams {
                directories: 100,
                ..WorkloadParams::default()
            },
            ..SimConfig::default()
        }
    }

    #[test]
    fn same_seed_same_figures_and_other_seed_other_figures() {
        let cfg = small(4);
        for s in Strategy::ALL {
            assert_eq!(simulate(&cfg, s), simulate(&cfg, s), "{s:?}");
        }
        let other = SimConfig {
            seed: 2,
            ..cfg.clone()
        };
        let a = simulate(&cfg, Strategy::ReHandoff);
        let b = simulate(&other, Strategy::ReHandoff);
        assert_ne!(a, b);
    }

    #[test]
    fn one_server_gives_the_same_throughput_whatever_the_strategy() {
        let cfg = small(1);
        let results: Vec<SimResult> = Strategy::ALL.iter().map(|&s| simulate(&cfg, s)).collect();
        let base = results[0].throughput;
        assert!(base > 0.0);
        for r in &results {
            assert!((r.throughput / base - 1.0).abs() < 0.01, "{r:?}");
            assert!(r.moved_ratio.abs() < f64::EPSILON, "{r:?}");
        }
    }

    #[test]
    fn every_request_completes_exactly_once() {
        for servers in [1, 3] {
            let cfg = small(servers);
            for s in Strategy::ALL {
                let r = simulate(&cfg, s);
                assert_eq!((r.issued, r.completed), (40_000, 40_000), "{s:?}");
                assert_eq!((r.completed_twice, r.never_completed), (0, 0), "{s:?}");
            }
        }
    }

    #[test]
    fn only_the_strategies_that_move_requests_move_them() {
        let cfg = small(4);
        let handoff = simulate(&cfg, Strategy::ReHandoff);
        let first = simulate(&cfg, Strategy::FirstRequest);
        let forward = simulate(&cfg, Strategy::BackendForwarding);
        assert!(handoff.moved_ratio > 0.5, "{handoff:?}");
        assert!(forward.moved_ratio > 0.01, "{forward:?}");
        assert!(forward.backend_bytes_per_request > 0.0);
        assert!(first.moved_ratio.abs() < f64::EPSILON);
        assert!(handoff.backend_bytes_per_request.abs() < f64::EPSILON);
        // Following the preferred node even when the connection's node has
        // the file forwards more; staying when it has the file moves less.
        let always = SimConfig {
            forward_when_cached: true,
            ..cfg.clone()
        };
        let always = simulate(&always, Strategy::BackendForwarding);
        assert!(always.moved_ratio > 2.0 * forward.moved_ratio, "{always:?}");
        let sticky = SimConfig {
            sticky: true,
            ..cfg.clone()
        };
        let sticky = simulate(&sticky, Strategy::ReHandoff);
        assert!(sticky.moved_ratio < handoff.moved_ratio, "{sticky:?}");
    }

    #[test]
    fn validate_rejects_a_run_too_short_to_measure() {
        let cfg = SimConfig {
            servers: 15,
            requests: 500,
            ..SimConfig::default()
        };
        assert!(cfg.validate().is_err());
        assert!(small(15).validate().is_ok());
        let zero = SimConfig {
            servers: 0,
            ..SimConfig::default()
        };
        assert!(zero.validate().is_err());
    }
}
