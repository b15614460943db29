//! A throughput model of seed 002 (DTS) §4.2: a single request inspector
//! against multiple inspectors spread by Shoal's own selectors, L4 and L7
//! splice, on 1..=16 servers, as a Markdown table (or JSON with `--json`:
//! an object with `inputs`, `rows`, `selectors` and `seed`).
//!
//! `cargo run --release -p shoal-perf --bin dts-sim -- [--json] [--servers N]
//! [--costs FILE.json] [--app-ns NS] [--per-packet-ns NS] [--packets P]
//! [--l4-inspect-ns NS] [--l7-inspect-ns NS] [--l7-receive-ns NS]
//! [--bystander-ns NS] [--keys K] [--clients C] [--vnodes V]
//! [--selector dts-ring|ring|default|maglev] [--l4-placement local|round-robin]`
//!
//! Pure arithmetic over measured inputs: the same arguments give the same
//! output on any machine. The model, its default inputs and where each
//! comes from: `shoal_perf::dts_sim`; the figures: `perf/README.md`, "DTS
//! scaling (seed 002 §4.2)".
#![forbid(unsafe_code)]

use std::process::ExitCode;

use shoal_perf::dts_sim::cli::{parse, Command, USAGE};
use shoal_perf::dts_sim::report::run;

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Run { inputs, json }) => {
            let report = run(&inputs);
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.markdown());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dts-sim: {e}");
            ExitCode::from(2)
        }
    }
}
