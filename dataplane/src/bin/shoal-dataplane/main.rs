//! `shoal-dataplane`: the dataplane process.
//!
//! Subcommands:
//! - `replay --config FILE --in IN.pcap --out OUT.pcap [--kernel-in K.pcap] [--kernel-out K.pcap]`:
//!   run a capture through the real pipeline and print a JSON summary of
//!   every counter.
//! - `run --config FILE [--stats-file F]`: the dataplane itself (DPDK or
//!   portable backend) until SIGTERM.
//! - `gen-trace --config FILE --out OUT.pcap [--connections N] [--clients N]
//!   [--split Q]`: write a synthetic client capture to replay (and, with
//!   `--split`, one capture per queue by owning worker).

#![forbid(unsafe_code)]

mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use shoal_dataplane::replay::{replay, ReplayFiles};
use shoal_dataplane::traffic::{client_trace, write_pcap, Endpoint, TraceSpec};

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
        /// Replay as this member of the config's cluster instead of
        /// `cluster.local_member`.
        #[arg(long)]
        member: Option<String>,
    },
    /// Run the dataplane with the configured backend until SIGTERM/SIGINT.
    Run {
        /// Server config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Write counters and flow-table figures as JSON to this file.
        #[arg(long)]
        stats_file: Option<PathBuf>,
        /// Seconds between stats-file writes.
        #[arg(long, default_value_t = 1.0)]
        stats_interval: f64,
        /// Test only: drop this many wire frames per thousand (no netem here).
        #[arg(long, default_value_t = 0)]
        inject_drop_permille: u32,
        /// Test only: hold this many wire frames per thousand behind later ones.
        #[arg(long, default_value_t = 0)]
        inject_reorder_permille: u32,
        /// Member overrides (JSON: weights, drain, liveness, load), re-read
        /// with the config on SIGHUP (`--membership-file` is the old name).
        #[arg(long, alias = "membership-file")]
        overrides_file: Option<PathBuf>,
        /// Microseconds to sleep after an idle stretch (0 = always busy-poll,
        /// the production setting; the lab shares few cores among servers).
        #[arg(long, default_value_t = 0)]
        idle_sleep_us: u64,
    },
    /// Write a synthetic client capture for the config's first TCP service:
    /// ARP for the VIP, then short HTTP-like connections (client side only).
    GenTrace {
        /// Server config (TOML) naming the VIP, cluster MAC and service.
        #[arg(long)]
        config: PathBuf,
        /// Output capture (pcap).
        #[arg(long)]
        out: PathBuf,
        /// Number of connections.
        #[arg(long, default_value_t = 300)]
        connections: u32,
        /// Number of distinct client hosts.
        #[arg(long, default_value_t = 30)]
        clients: u32,
        /// Seed for ports and sequence numbers.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also write the capture split into this many per-queue captures
        /// (`OUT.q0.pcap`, ...): each frame in the capture of the worker that
        /// owns it among this many (the steering function, as an RSS table
        /// programmed to match it would deliver them). 0: no split.
        #[arg(long, default_value_t = 0)]
        split: usize,
        /// 0: short connections ending with FIN. N > 0: connections that
        /// open and then send N pure ACKs each, never closing (a looped
        /// replay is then established traffic only).
        #[arg(long, default_value_t = 0)]
        established: u32,
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
        Command::Replay {
            config,
            input,
            out,
            kernel_in,
            kernel_out,
            member,
        } => {
            let mut cfg = shoal_config::load_file(&config)?;
            if let Some(member) = member {
                if !cfg.cluster.members.iter().any(|m| m.name == member) {
                    anyhow::bail!("--member {member}: no such member in {}", config.display());
                }
                cfg.cluster.local_member = member;
            }
            let files = ReplayFiles {
                wire_in: input,
                kernel_in,
                wire_out: out,
                kernel_out,
            };
            let summary = replay(&cfg, &files)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
        Command::Run {
            config,
            stats_file,
            stats_interval,
            idle_sleep_us,
            overrides_file,
            inject_drop_permille,
            inject_reorder_permille,
        } => {
            let cfg = shoal_config::load_file(&config)?;
            shoal_log::init();
            let signals = run::signals()?;
            let opts = run::RunOptions {
                stats_file,
                stats_interval: std::time::Duration::from_secs_f64(stats_interval.max(0.05)),
                idle_sleep: std::time::Duration::from_micros(idle_sleep_us),
                config_path: config,
                overrides_file,
                inject: (
                    inject_drop_permille.min(1000),
                    inject_reorder_permille.min(1000),
                ),
            };
            run::run(&cfg, &opts, &signals)?;
            Ok(())
        }
        Command::GenTrace {
            config,
            out,
            connections,
            clients,
            seed,
            split,
            established,
        } => {
            let cfg = shoal_config::load_file(&config)?;
            let Some(svc) = cfg
                .services
                .iter()
                .find(|s| s.protocol == shoal_config::Protocol::Tcp)
            else {
                anyhow::bail!(
                    "{}: no TCP service to generate traffic for",
                    config.display()
                );
            };
            let service = Endpoint {
                mac: shoal_dataplane::wire::EthernetAddress(cfg.cluster.mac.0),
                ip: svc.vip,
                port: svc.port,
            };
            let mut spec = TraceSpec::new(service, clients, connections);
            spec.seed = seed;
            spec.established_rounds = established;
            let frames = client_trace(&spec);
            write_pcap(&out, &frames).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
            if split > 0 {
                let tables = shoal_dataplane::pipeline::Tables::from_config(&cfg, 1)?;
                let mut queues = vec![Vec::new(); split];
                for (at, frame) in &frames {
                    let q = shoal_dataplane::steer::target(
                        shoal_dataplane::pipeline::WIRE,
                        frame,
                        &tables,
                        split,
                    );
                    queues[q.unwrap_or(0)].push((*at, frame.clone()));
                }
                for (q, frames) in queues.iter().enumerate() {
                    let path = PathBuf::from(format!("{}.q{q}.pcap", out.display()));
                    write_pcap(&path, frames)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    eprintln!("queue {q}: {} frames in {}", frames.len(), path.display());
                }
            }
            eprintln!(
                "wrote {} frames ({connections} connections from {} clients to {}:{}) to {}",
                frames.len(),
                clients.min(connections.max(1)),
                svc.vip,
                svc.port,
                out.display()
            );
            Ok(())
        }
    }
}
