//! `shoal-dataplane`: the dataplane process.
//!
//! Subcommands:
//! - `replay --config FILE --in IN.pcap --out OUT.pcap [--kernel-in K.pcap] [--kernel-out K.pcap]`:
//!   run a capture through the real pipeline and print a JSON summary of
//!   every counter.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shoal_dataplane::replay::{replay, ReplayFiles};

#[derive(Parser)]
#[command(name = "shoal-dataplane", version, about = "Shoal dataplane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a capture through the pipeline (in-memory ports, clock from the
    /// capture's timestamps); write what the dataplane transmits; print a
    /// JSON summary of all counters on stdout.
    Replay {
        /// Server config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Capture received on the wire port (pcap, Ethernet).
        #[arg(long = "in")]
        input: PathBuf,
        /// Where to write the frames transmitted on the wire port.
        #[arg(long)]
        out: PathBuf,
        /// Capture of frames sent by the local kernel (received on the kernel port).
        #[arg(long)]
        kernel_in: Option<PathBuf>,
        /// Where to write the frames delivered to the local kernel.
        #[arg(long)]
        kernel_out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal-dataplane: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Replay { config, input, out, kernel_in, kernel_out } => {
            let cfg = shoal_config::load_file(&config)?;
            let files = ReplayFiles { wire_in: input, kernel_in, wire_out: out, kernel_out };
            let summary = replay(&cfg, &files)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
    }
}
