//! A throughput model of seed 002 (DTS) §4.2, *scalability*: a cluster of
//! 1 to 16 servers with a **single request inspector** (one node inspects
//! every connection and hands it over round-robin to all nodes, itself
//! included) against **multiple request inspectors** (consistent hashing
//! spreads inspection over every node; the seed: 63 virtual nodes per node).
//! The seed's figure: with 8 nodes, multiple inspectors give about 3.4
//! times the single inspector's connection rate, and the single inspector
//! does not scale. Run by `perf/src/bin/dts-sim.rs`; figures in
//! `perf/README.md` ("DTS scaling (seed 002 §4.2)").
//!
//! Analytic, not a discrete-event simulation: every node is one CPU of
//! capacity 1 s/s, a connection costs fixed CPU on its inspector, on the
//! member serving it and on every other member (which sees its client's
//! packets on the broadcast segment), and the cluster's throughput is the
//! connection rate at which its most loaded node reaches capacity
//! ([`model`]). Four configurations: L4 and L7 (splice), each with a single
//! inspector or multiple inspectors. Placement (who serves) is round-robin,
//! as in the seed; `--l4-placement local` makes the L4 inspector serve its
//! own connections instead (Shoal's `local` mode). Inspection shares are
//! **not** assumed equal: they are counted by hashing 200 000 client keys
//! (1 000 addresses) through `shoal-select`'s own tables ([`shares`]): the
//! DTS ring (MD5 points and keys, 63 vnodes per member, as the seed), the
//! ring with the config's defaults (64 vnodes, splitmix64 keys), the
//! configured default algorithm (rendezvous) and Maglev (M = 65 537).
//!
//! **What to compare with the seed is the shape**, not the rates: the
//! absolute connections per second follow from the inputs below (a web
//! server's CPU per connection, the splice path's), measured on a 2-vCPU
//! shared VM; the seed measured an echo server on 2010 hardware. The
//! ratios (N servers over one, multiple over single), which node is the
//! bottleneck (the single inspector; with multiple inspectors the member
//! with the largest share) and the inspection-to-serving cost quotient that
//! reproduces 3.4x are what carry over.
//!
//! Default inputs (nanoseconds of CPU per connection; each has a flag and
//! can come from `--costs FILE.json`):
//!
//! - `app_ns` = 150 000: nginx's CPU per connection in `perf/README.md`,
//!   "Splice handover cost vs nginx reverse proxy", 2026-12-04 concurrency
//!   sweep, column "nginx CPU ms/conn": 0.18 / 0.17 / 0.15 / 0.14 at 1 / 16
//!   / 128 / 512 connections; 0.15 (128) taken. That nginx is a reverse
//!   proxy (one accepted and one opened connection per request): for a
//!   server answering one small request it is on the high side; the
//!   keep-alive section's serving nginx, 43-65 µs per request without a
//!   connection set-up, is a lower bound.
//! - `per_packet_ns` = 75: `perf/README.md`, "2026-12-04 evening, quiet
//!   machine", `established_burst` (cold walk over 100 000 flows, burst
//!   path) 75 ns/packet; cache-resident 40, stateless DPR 55-68.
//! - `packets` = 10 per connection through the serving member's dataplane
//!   (handshake, one request and response, close; the SYN flood section
//!   counts about 13 frames per connection reaching a kernel). At 75 ns
//!   they are 0.5 % of `app_ns`: doubling them moves no figure by 1 %.
//! - `l4_inspect_ns` = `packets × per_packet_ns` = 750 unless given.
//! - `l7_inspect_ns` = `l7_receive_ns` = 400 000: the same sweep's "Shoal
//!   busy ms/conn", 0.80 at 128 connections (0.77-0.92 over the sweep): the
//!   busy time of all three dataplanes per spliced connection (inspector's
//!   cookie handshake, request read, dispatch and offer; receiver's replay
//!   into its kernel and translated flow; the third member's drops), split
//!   evenly between inspector and receiver because nothing measures them
//!   apart. No criterion bench covers the splice path (`benches/`: flow,
//!   pipeline, modes, steering). Busy time is wall time of polls on two
//!   shared vCPUs, an overestimate the README itself warns of; this is the
//!   weakest input, and the report prints the `l7_inspect_ns` that would
//!   give the seed's 3.4x.
//! - `bystander_ns` = 300: a member that neither inspects nor serves a
//!   connection sees its client's packets (about half of `packets`) and
//!   lets them go: 5 × 60 ns, stateless DPR's per-packet figure (parse,
//!   flow miss, selector lookups; the same README section) as an upper
//!   bound, no bench measures the drop alone.
//!
//! - [`model`]: costs, per-node loads, saturation;
//! - [`shares`]: inspection shares from Shoal's selectors;
//! - [`report`]: a run over 1..=N servers, Markdown and JSON;
//! - [`cli`]: the flags and the `--costs` file.

pub mod cli;
pub mod model;
pub mod report;
pub mod shares;

pub use model::{Costs, L4Placement, Layer};
pub use report::{run, Inputs, Report};
pub use shares::SelectorKind;

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact: values set from the same literals
mod tests {
    use super::cli::{parse, Command};
    use super::model::{l7_inspect_for_ratio, node_loads, rates, saturation, single_shares};
    use super::shares::{client_keys, members, shares};
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    fn equal(n: usize) -> Vec<f64> {
        vec![1.0 / n as f64; n]
    }

    #[test]
    fn l7_single_inspector_saturates_at_its_own_capacity() {
        let c = Costs::default();
        // The inspector's load: all of the inspection, 1/N of the serving
        // (550 750 ns: app, receive, 10 packets), nothing as a bystander.
        let ceiling = 1e9 / c.l7_inspect_ns;
        let mut prev = 0.0;
        let mut prev_gain = f64::INFINITY;
        for n in 1..=16 {
            let loads = node_loads(&c, Layer::L7, &single_shares(n), None);
            let (rate, bottleneck) = saturation(&loads);
            assert_eq!(bottleneck, 0, "{n}: the inspector is the bottleneck");
            assert!(
                close(rate, 1e9 / (400_000.0 + 550_750.0 / n as f64)),
                "{n}: {rate}"
            );
            assert!(rate < ceiling);
            let gain = rate - prev;
            assert!(gain < prev_gain, "{n}: each server adds less than the last");
            (prev, prev_gain) = (rate, gain);
        }
        let r8 = rates(&c, &equal(8), L4Placement::RoundRobin).l7_single;
        let r16 = rates(&c, &equal(16), L4Placement::RoundRobin).l7_single;
        assert!(
            (r8 - 2132.9).abs() < 0.1 && (r16 - 2301.9).abs() < 0.1,
            "{r8} {r16}"
        );
        assert!(r16 / r8 < 1.08, "flat: {r8} -> {r16}");
        // Multiple inspectors with equal shares keep scaling (N x, up to
        // the bystanders' 300 ns per connection per other member).
        let m8 = rates(&c, &equal(8), L4Placement::RoundRobin).l7_multiple;
        let m16 = rates(&c, &equal(16), L4Placement::RoundRobin).l7_multiple;
        assert!(m16 / m8 > 1.99, "{m8} {m16}");
    }

    #[test]
    fn equal_shares_give_exactly_n_times_for_l4() {
        let c = Costs {
            bystander_ns: 0.0,
            ..Costs::default()
        };
        let one = rates(&c, &[1.0], L4Placement::Local).l4_multiple;
        assert!(close(one, 1e9 / (150_000.0 + 750.0)), "{one}");
        for n in 1..=16 {
            let local = rates(&c, &equal(n), L4Placement::Local).l4_multiple;
            assert!(close(local, n as f64 * one), "{n}: {local}");
        }
        // Round-robin placement is exact too when forwarded packets cost
        // nothing; with them (75 ns x 10 per forwarded connection) 1 % less.
        let free = Costs {
            per_packet_ns: 0.0,
            l4_inspect_ns: 0.0,
            ..c
        };
        let one_free = rates(&free, &[1.0], L4Placement::RoundRobin).l4_multiple;
        for n in 1..=16 {
            let rr = rates(&free, &equal(n), L4Placement::RoundRobin).l4_multiple;
            assert!(close(rr, n as f64 * one_free), "{n}: {rr}");
            let rr = rates(&c, &equal(n), L4Placement::RoundRobin).l4_multiple;
            assert!(rr <= n as f64 * one * (1.0 + 1e-12) && rr > 0.99 * n as f64 * one);
        }
        // Bystanders cost every member a little per connection of the
        // others: 16 servers give 15.5x, not 16x.
        let d = Costs::default();
        let one = rates(&d, &[1.0], L4Placement::Local).l4_multiple;
        let x16 = rates(&d, &equal(16), L4Placement::Local).l4_multiple / one;
        let expect = 150_750.0 / ((150_750.0 + 15.0 * 300.0) / 16.0);
        assert!(close(x16, expect) && (15.5..15.6).contains(&x16), "{x16}");
    }

    #[test]
    fn shares_sum_to_one_and_the_dts_ring_is_within_its_bound() {
        let keys = client_keys(200_000, 1_000);
        for kind in SelectorKind::ALL {
            for n in [1, 3, 8] {
                let sel = kind.build(&members(n), 63);
                let (s, _) = shares(sel.as_ref(), n, &keys);
                assert_eq!(s.len(), n);
                assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{kind:?} {n}");
                assert!(s.iter().all(|&x| x > 0.0), "{kind:?} {n}: {s:?}");
            }
        }
        // 63 vnodes x 8 members, MD5 as DTS: the most loaded member gets
        // 30 355 of the 200 000 keys (0.1518, 1.21x its fair 1/8), where
        // its exact arc of the ring is 0.1514; rendezvous stays within
        // 1.3 % of fair on the same keys.
        let sel = SelectorKind::DtsRing.build(&members(8), 63);
        let (s, max) = shares(sel.as_ref(), 8, &keys);
        assert_eq!(max, 30_355);
        let exact = shoal_select::Ring::new(&members(8), 63)
            .owned_fractions()
            .iter()
            .map(|&(_, f)| f)
            .fold(0.0, f64::max);
        let top = s.iter().copied().fold(0.0, f64::max);
        assert!((top - exact).abs() < 0.001, "{top} vs exact {exact}");
        assert!(top > 0.125 && top < 1.25 / 8.0, "{top}");
        let sel = SelectorKind::Default.build(&members(8), 63);
        let (_, max) = shares(sel.as_ref(), 8, &keys);
        assert_eq!(max, 25_310);
    }

    #[test]
    fn the_seed_ratio_with_equal_shares_needs_inspection_at_0_52_of_serving() {
        // Equal shares, no bystanders: (8 i + w) / (i + w) = 3.4, i = 2.4 w / 4.6.
        let c = Costs {
            bystander_ns: 0.0,
            ..Costs::default()
        };
        let i = l7_inspect_for_ratio(&c, &equal(8), L4Placement::RoundRobin, 3.4).unwrap();
        assert!((i / c.l7_serve_ns() - 2.4 / 4.6).abs() < 1e-9, "{i}");
        // No cost reaches more than 1 / max share.
        assert!(l7_inspect_for_ratio(&c, &equal(8), L4Placement::RoundRobin, 8.5).is_none());
    }

    fn small() -> Inputs {
        Inputs {
            max_servers: 4,
            keys: 2_000,
            clients: 10,
            ..Inputs::default()
        }
    }

    #[test]
    fn json_round_trip_has_the_rows() {
        let report = run(&small());
        assert_eq!(report, run(&small()), "deterministic");
        let json = report.to_json();
        let back: Report = serde_json::from_str(&json).unwrap();
        // serde_json reads floats back to within an ulp, not always exactly.
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(
            approx_eq(&serde_json::to_value(&back).unwrap(), &v),
            "{json}"
        );
        assert_eq!(back.inputs, report.inputs);
        assert_eq!(back.rows.len(), report.rows.len());
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[3]["servers"], 4);
        assert!(rows[3]["l7_multiple"].as_f64().unwrap() > 0.0);
        assert_eq!(rows[0]["l4_multiple_x"], 1.0);
        assert_eq!(v["inputs"]["costs"]["app_ns"], 150_000.0);
        assert_eq!(v["inputs"]["selector"], "dts-ring");
        assert_eq!(v["selectors"].as_array().unwrap().len(), 4 * 4);
        assert_eq!(v["seed"]["servers"], 8);
        let md = report.markdown();
        assert!(md.contains("| 4 | "), "{md}");
        assert!(md.contains("~3.4x"), "{md}");
    }

    /// Equal JSON documents, numbers within 1e-12 (relative).
    fn approx_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| approx_eq(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| approx_eq(v, w)))
            }
            _ => a == b,
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        for (bad, says) in [
            (&["--app-ns"][..], "--app-ns needs a value"),
            (&["--app-ns", "fast"], "--app-ns: cannot read \"fast\""),
            (&["--l7-inspect-ns", "-5"], "--l7-inspect-ns: must be"),
            (&["--per-packet-ns", "NaN"], "--per-packet-ns: must be"),
            (&["--app-ns", "0"], "app_ns must be > 0"),
            (&["--servers", "17"], "--servers must be 1..=16"),
            (&["--servers", "0"], "--servers must be 1..=16"),
            (&["--keys", "10"], "--keys must be"),
            (&["--clients", "0"], "--clients must be"),
            (&["--vnodes", "0"], "--vnodes must be"),
            (&["--selector", "random"], "--selector: unknown selector"),
            (&["--l4-placement", "dpr"], "--l4-placement: unknown"),
            (&["--frobnicate"], "unknown argument \"--frobnicate\""),
            (
                &["--costs", "/nonexistent/costs.json"],
                "--costs /nonexistent/costs.json",
            ),
        ] {
            let e = parse(args(bad)).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
            if bad[0] != "--costs" {
                assert!(e.contains("usage: dts-sim"), "{bad:?}: {e}");
            }
        }
        assert_eq!(parse(args(&["-h"])), Ok(Command::Help));
    }

    #[test]
    fn costs_file_then_flags() {
        let dir = std::env::temp_dir().join(format!("dts-sim-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("costs.json");
        std::fs::write(
            &good,
            r#"{"app_ns": 90000, "per_packet_ns": 50, "l7_inspect_ns": 1e5}"#,
        )
        .unwrap();
        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"{"app": 90000}"#).unwrap();
        let g = good.to_str().unwrap();
        let Ok(Command::Run { inputs, json }) = parse(args(&["--costs", g, "--app-ns", "80000"]))
        else {
            panic!("good file")
        };
        assert!(!json);
        let c = inputs.costs;
        assert_eq!(
            (c.app_ns, c.per_packet_ns, c.l7_inspect_ns),
            (80_000.0, 50.0, 100_000.0)
        );
        assert_eq!(
            c.l4_inspect_ns, 500.0,
            "packets x per_packet when not given"
        );
        assert_eq!(c.l7_receive_ns, Costs::default().l7_receive_ns);
        let Ok(Command::Run { inputs, json }) = parse(args(&[
            "--json",
            "--l4-inspect-ns",
            "900",
            "--selector",
            "maglev",
        ])) else {
            panic!("flags")
        };
        assert!(json);
        assert_eq!(inputs.costs.l4_inspect_ns, 900.0);
        assert_eq!(inputs.selector, SelectorKind::Maglev);
        let e = parse(args(&["--costs", bad.to_str().unwrap()])).unwrap_err();
        assert!(e.contains("unknown field `app`"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
