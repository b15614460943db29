//! `shoalctl`: the operator's command-line tool.
//!
//! - `check-config FILE [--json]`: load and validate a server config; print a
//!   summary, or every problem with file, line, column and key; exit 1 on error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "shoalctl", version, about = "Shoal operator CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load and validate a config file.
    CheckConfig {
        /// The config (TOML).
        file: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::CheckConfig { file, json } => match shoal_config::load_file(&file) {
            Ok(cfg) => {
                let summary = shoal_control::describe(&cfg);
                if json {
                    match serde_json::to_string_pretty(&summary) {
                        Ok(s) => println!("{s}"),
                        Err(e) => {
                            eprintln!("shoalctl: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                } else {
                    println!(
                        "{}: ok: cluster '{}', member {} (id {}), {} members ({} active), services: {}",
                        file.display(),
                        summary.cluster,
                        summary.local_member,
                        summary.local_id,
                        summary.members,
                        summary.active_members,
                        summary.services.join(", ")
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}
