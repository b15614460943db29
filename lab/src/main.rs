//! `shoal-lab` (also `deploy/lab/lab`): the lab's command line. Every
//! command is a call into the `shoal_lab` library; see `deploy/lab/README.md`.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use shoal_lab::options::LabTopology;
use shoal_lab::options::{parse_handoff, parse_mode, parse_state};
use shoal_lab::{Inject, Lab, LabBackend, Node, Part, Server, UpOptions};

/// A Shoal cluster in network namespaces on this machine: a hub that floods
/// every frame, a client (on the hub, or behind a BGP router with
/// --topology routed), and N servers running shoal-dataplane,
/// shoal-control and nginx behind one VIP (198.18.0.100).
#[derive(Parser)]
#[command(name = "lab", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

const AFTER_HELP: &str = "\
defaults: --nodes 3 --backend dpdk --workers 2 --mode local --state stateful --handoff frequent --topology segment
modes: local | dpr-mac | dpr-ipip (with --state stateless|stateful; stateful DPR has max_load 0.5) | splice
--backend none is for testing the lab itself: no dataplane, own address on eth0.
env: SHOAL_BIN_DIR (default <repo>/target/release; set = never build),
     SHOAL_LAB_INJECT=DROP,REORDER (per-thousand loss/reordering injected by every dataplane),
     SHOAL_LAB_KEEP_ON_FAILURE=1 (leave a failed `up` in place for debugging)";

#[derive(Subcommand)]
enum Cmd {
    /// Brings the lab up (idempotent with the same options).
    Up(LabArgs),
    /// Stops everything `up` started and removes the namespaces and /run/shoal-lab.
    Down,
    /// What runs where; --json for scripts.
    Status {
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Runs CMD in namespace shoal-NODE (srvK, client, hub, router).
    Exec {
        /// srvK, client, hub or router.
        node: Node,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Runs CMD in shoal-client.
    Client {
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Prints the dataplane TOML of NODE: the running lab's, or rendered from
    /// the options when any is given or no lab is up.
    DataplaneConfig {
        /// srvK.
        node: Server,
        #[command(flatten)]
        opts: LabArgs,
    },
    /// SIGKILLs NODE's dataplane, control and nginx (or only its control, or only its dataplane).
    Kill(PartArgs),
    /// Starts them again (the server rejoins the cluster).
    Start(PartArgs),
    /// NODE takes no new connections (through shoal-control when one runs, else the membership file).
    Drain {
        /// srvK.
        node: Server,
    },
    /// NODE takes new connections again.
    Undrain {
        /// srvK.
        node: Server,
    },
    /// Sets NODE's weight.
    Weight {
        /// srvK.
        node: Server,
        /// A whole number.
        weight: u32,
    },
    /// Sets NODE's load figure (DPR `max_load`), through the membership file + SIGHUP.
    Load {
        /// srvK.
        node: Server,
        /// A number >= 0.
        load: f64,
    },
}

#[derive(Args)]
struct LabArgs {
    /// Servers, 1 to 89 [default: 3].
    #[arg(long)]
    nodes: Option<u8>,
    /// dpdk, portable or none [default: dpdk].
    #[arg(long)]
    backend: Option<LabBackend>,
    /// local, dpr-mac, dpr-ipip or splice [default: local].
    #[arg(long, value_parser = parse_mode)]
    mode: Option<shoal_config::Mode>,
    /// stateless or stateful [default: stateful].
    #[arg(long, value_parser = parse_state)]
    state: Option<shoal_config::State>,
    /// frequent or rare (splice) [default: frequent].
    #[arg(long, value_parser = parse_handoff)]
    handoff: Option<shoal_config::HandoffMode>,
    /// A base shoal config (validated when loaded); the lab sets the
    /// per-server keys (see deploy/lab/README.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Dataplane workers per server [default: 2 with dpdk, else 1].
    #[arg(long)]
    workers: Option<u8>,
    /// Splice: dispatch only the first request of a keep-alive connection
    /// (today every request is dispatched and connections move).
    #[arg(long)]
    first_request_only: bool,
    /// Splice, always handoff: the first N servers are front ends (inspect,
    /// never serve), the others back ends [default: 0, every server both].
    #[arg(long)]
    front_ends: Option<u8>,
    /// segment (client on the hub) or routed (client behind a BIRD router,
    /// VIP announced by BGP) [default: segment].
    #[arg(long)]
    topology: Option<LabTopology>,
}

impl LabArgs {
    fn given(&self) -> bool {
        self.nodes.is_some()
            || self.backend.is_some()
            || self.mode.is_some()
            || self.state.is_some()
            || self.handoff.is_some()
            || self.config.is_some()
            || self.workers.is_some()
            || self.first_request_only
            || self.front_ends.is_some()
            || self.topology.is_some()
    }

    fn options(&self) -> Result<UpOptions> {
        let d = UpOptions::default();
        let config = match &self.config {
            Some(p) => Some(
                std::fs::canonicalize(p)
                    .with_context(|| format!("--config {}: no such readable file", p.display()))?,
            ),
            None => None,
        };
        let inject = match std::env::var("SHOAL_LAB_INJECT") {
            Ok(v) if !v.is_empty() => Some(v.parse::<Inject>().map_err(anyhow::Error::msg)?),
            _ => None,
        };
        let backend = self.backend.unwrap_or(d.backend);
        Ok(UpOptions {
            nodes: self.nodes.unwrap_or(d.nodes),
            backend,
            workers: self
                .workers
                .unwrap_or_else(|| shoal_lab::options::default_workers(backend)),
            mode: self.mode.unwrap_or(d.mode),
            state: self.state.unwrap_or(d.state),
            handoff: self.handoff.unwrap_or(d.handoff),
            config,
            inject,
            first_request_only: self.first_request_only,
            front_ends: self.front_ends.unwrap_or(0),
            topology: self.topology.unwrap_or_default(),
        })
    }
}

#[derive(Args)]
struct PartArgs {
    /// srvK.
    node: Server,
    /// Only shoal-control.
    #[arg(long, conflicts_with = "dataplane")]
    control: bool,
    /// Only shoal-dataplane.
    #[arg(long)]
    dataplane: bool,
}

impl PartArgs {
    fn part(&self) -> Part {
        match (self.control, self.dataplane) {
            (true, _) => Part::Control,
            (_, true) => Part::Dataplane,
            _ => Part::All,
        }
    }
}

fn exec(node: Node, cmd: &[String]) -> Result<()> {
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let err = Lab::command(node, &args)?.exec();
    bail!("could not run ip netns exec: {err}")
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("lab: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Up(args) => {
            Lab::up(&args.options()?)?;
        }
        Cmd::Down => Lab::down()?,
        Cmd::Status { json } => {
            let status = Lab::status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status.text());
            }
        }
        Cmd::Exec { node, cmd } => exec(node, &cmd)?,
        Cmd::Client { cmd } => exec(Node::Client, &cmd)?,
        Cmd::DataplaneConfig { node, opts } => {
            if !opts.given() {
                match Lab::open() {
                    Ok(lab) => {
                        let path = lab.config_path(node)?;
                        print!(
                            "{}",
                            std::fs::read_to_string(&path)
                                .with_context(|| path.display().to_string())?
                        );
                        return Ok(());
                    }
                    Err(shoal_lab::LabError::NotUp | shoal_lab::LabError::NotRoot) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            print!("{}", Lab::render_config(&opts.options()?, node)?);
        }
        Cmd::Kill(p) => Lab::open()?.kill(p.node, p.part())?,
        Cmd::Start(p) => Lab::open()?.start(p.node, p.part())?,
        Cmd::Drain { node } => Lab::open()?.drain(node)?,
        Cmd::Undrain { node } => Lab::open()?.undrain(node)?,
        Cmd::Weight { node, weight } => Lab::open()?.weight(node, weight)?,
        Cmd::Load { node, load } => Lab::open()?.load(node, load)?,
    }
    Ok(())
}
