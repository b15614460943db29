//! `shoal-control --config FILE`: the control process of one Shoal member.
//!
//! Exchanges membership and load with the other members, detects failures,
//! keeps the local dataplane's rings up to date, serves `/metrics` and the
//! admin API. Logs one line per membership change to standard error. Exits
//! 0 after SIGTERM or SIGINT (having told its peers it is leaving), 1 when
//! it cannot start (the message names the key or file to fix).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;

#[derive(Parser)]
#[command(name = "shoal-control", version, about = "Shoal control process")]
struct Cli {
    /// The member's config file (TOML; see deploy/CONFIG.md).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    shoal_log::init();
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            tracing::error!("cannot install the signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    match shoal_control::daemon::run(&cli.config, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
