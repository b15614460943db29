//! `shoalctl`: the operator's command-line tool.
//!
//! - `status|members|ring|drain NODE|undrain NODE|weight NODE W|reload
//!   [--admin ADDR] [--token-file F] [--json]`: ask a running shoal-control
//!   through its admin API (`shoal_control::cli_admin`).
//! - `top [--admin ADDR] [--token-file F] [--metrics-port P] [--interval S]
//!   [--once [--width W]]`: the live view of the whole cluster
//!   (`shoal_control::top`).
//! - `check-config FILE [--json]`: load and validate a server config; print a
//!   summary, or every problem with file, line, column and key; exit 1 on error.
//! - `ring-stats --nodes N --algo ring|maglev|rendezvous [--vnodes V]
//!   [--key-hash splitmix64|md5]
//!   [--weights W,...] [--keys K] [--remove I] [--table-size M] [--seed S]
//!   [--json]`: spread synthetic client keys over N synthetic members with the
//!   dataplane's selector; print each member's share, the max/min share
//!   ratio and, with `--remove`, the fraction of keys that move when member I
//!   leaves; exit 1 on a bad argument.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use shoal_config::{Algorithm, KeyHash};
use shoal_control::ring_stats::{ring_stats, Spec};

#[derive(Parser)]
#[command(name = "shoalctl", version, about = "Shoal operator CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Commands for a running shoal-control (status, members, ring, drain,
    /// undrain, weight, reload): see `shoal_control::cli_admin`.
    #[command(flatten)]
    Admin(shoal_control::cli_admin::AdminCommand),
    /// Live view of the whole cluster: members, epoch, lease, packets/s,
    /// new connections/s, drops/s by reason, handoffs, flows (q quits, p
    /// pauses; --once prints one frame).
    Top(shoal_control::top::TopArgs),
    /// Load and validate a config file.
    CheckConfig {
        /// The config (TOML).
        file: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Spread synthetic client keys over synthetic members with a selection
    /// algorithm: shares, max/min ratio, keys moved by removing a member.
    RingStats {
        /// Members (ids 1..N, addresses 198.18.0.11 upward).
        #[arg(long)]
        nodes: u16,
        /// Selection algorithm.
        #[arg(long, value_enum)]
        algo: AlgoArg,
        /// Ring: virtual nodes per member of weight 100 (DTS: >= 31).
        #[arg(long, default_value_t = 64)]
        vnodes: u32,
        /// Ring: how client keys are hashed (the config's `key_hash`).
        #[arg(long, value_enum, default_value_t = KeyHashArg::Splitmix64)]
        key_hash: KeyHashArg,
        /// One weight per member, comma-separated (default 100 each).
        #[arg(long, value_delimiter = ',')]
        weights: Vec<u32>,
        /// Sampled client keys (198.19.0.0/16, ports 1024-65535).
        #[arg(long, default_value_t = 100_000)]
        keys: u32,
        /// Also measure removing member I (1-based).
        #[arg(long, value_name = "I")]
        remove: Option<u16>,
        /// Maglev: table size M, a prime > 100 x N.
        #[arg(long, default_value_t = 65_537)]
        table_size: u32,
        /// Seed of the key sample.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `--key-hash` values: the config's spelling.
#[derive(Clone, Copy, ValueEnum)]
enum KeyHashArg {
    /// `SplitMix64` of the address and port (the config's default).
    Splitmix64,
    /// MD5 of the address and port, as DTS.
    Md5,
}

impl From<KeyHashArg> for KeyHash {
    fn from(a: KeyHashArg) -> KeyHash {
        match a {
            KeyHashArg::Splitmix64 => KeyHash::Splitmix64,
            KeyHashArg::Md5 => KeyHash::Md5,
        }
    }
}

/// `--algo` values: the config's spelling.
#[derive(Clone, Copy, ValueEnum)]
enum AlgoArg {
    /// DTS ring consistent hashing (MD5, virtual nodes).
    Ring,
    /// Maglev lookup table.
    Maglev,
    /// Weighted rendezvous hashing.
    Rendezvous,
}

impl From<AlgoArg> for Algorithm {
    fn from(a: AlgoArg) -> Algorithm {
        match a {
            AlgoArg::Ring => Algorithm::Ring,
            AlgoArg::Maglev => Algorithm::Maglev,
            AlgoArg::Rendezvous => Algorithm::Rendezvous,
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Admin(cmd) => shoal_control::cli_admin::run(&cmd),
        Command::Top(args) => shoal_control::top::run(&args),
        Command::RingStats {
            nodes,
            algo,
            vnodes,
            key_hash,
            weights,
            keys,
            remove,
            table_size,
            seed,
            json,
        } => {
            let spec = Spec {
                algorithm: algo.into(),
                nodes,
                vnodes,
                key_hash: key_hash.into(),
                weights,
                keys,
                remove,
                table_size,
                seed,
            };
            match ring_stats(&spec) {
                Ok(stats) if json => match serde_json::to_string_pretty(&stats) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("shoalctl: {e}");
                        return ExitCode::FAILURE;
                    }
                },
                Ok(stats) => print!("{stats}"),
                Err(e) => {
                    eprintln!("shoalctl ring-stats: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
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
