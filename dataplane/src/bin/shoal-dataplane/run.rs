//! `shoal-dataplane run`: bring up the configured backend and poll until told
//! to stop.
//!
//! One worker on the calling thread. (Several workers need the wire NIC's
//! RSS and the kernel side to agree on a flow's worker, or a software
//! hand-over between workers; until that exists, `cores` must list one core
//! and `run` says so.) Every `stats_interval` the counters and flow-table
//! figures are written as JSON to the stats file (atomically: temp + rename),
//! which the lab and operators read until the control process exports them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use serde::Serialize;
use shoal_config::{Backend, Config, PortRole};

use shoal_dataplane::control_link::{Applied, ControlLink};
use shoal_dataplane::counters::Snapshot;
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::portable::{PortableError, PortableIo};
use shoal_dataplane::io::PacketIo;
use shoal_dataplane::overrides;
use shoal_dataplane::pipeline::{MemberEntry, Pipeline, Tables, TablesError};
use shoal_dataplane::worker::Worker;
use shoal_select::claim::Fence;
use shoal_wire::time::Instant;

/// Why `run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config cannot run in this build.
    #[error(transparent)]
    Tables(#[from] TablesError),
    /// `dataplane.ports` lacks a port of a role.
    #[error("dataplane.ports: no port with role = \"{0}\"")]
    MissingPort(&'static str),
    /// More than one worker core.
    #[error(
        "dataplane.cores: {0} cores configured; this build runs one worker per process \
         (list a single core)"
    )]
    OneWorkerOnly(usize),
    /// The memory backend only exists for tests and `replay`.
    #[error(
        "dataplane.backend = \"memory\" cannot run: use `replay`, or the dpdk / portable backend"
    )]
    MemoryBackend,
    /// The DPDK backend was not compiled in.
    #[cfg(not(feature = "dpdk"))]
    #[error(
        "dataplane.backend = \"dpdk\" but this binary was built without DPDK \
         (cargo build --features dpdk, needs libdpdk-dev)"
    )]
    DpdkNotBuilt,
    /// The portable backend could not start.
    #[error(transparent)]
    Portable(#[from] PortableError),
    /// DPDK could not start.
    #[cfg(feature = "dpdk")]
    #[error("DPDK: {0}")]
    Dpdk(#[from] dpdk_bindings::DpdkError),
    /// A setting does not fit (DPDK sizes, key files, ...).
    #[error("{0}")]
    DpdkSetup(String),
    /// The overrides file or the tables built from it were refused.
    #[error("{0}")]
    Membership(String),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Options of `run` outside the config file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where to write the stats JSON (none: not written).
    pub stats_file: Option<PathBuf>,
    /// How often.
    pub stats_interval: Duration,
    /// Sleep this long after an idle stretch of polls (0 = busy-poll always).
    pub idle_sleep: Duration,
    /// The config file, re-read on SIGHUP.
    pub config_path: PathBuf,
    /// Membership overrides (weights, drain, load), read at start and on SIGHUP.
    pub overrides_file: Option<PathBuf>,
    /// Fault injection on wire frames: (drop, reorder) per thousand.
    pub inject: (u32, u32),
}

/// What the stats file holds.
#[derive(Debug, Serialize)]
struct Stats<'a> {
    member: &'a str,
    backend: &'a str,
    uptime_s: f64,
    flows_live: usize,
    flows_capacity: usize,
    flows_by_state: [usize; 4],
    flows_inserted: u64,
    flows_expired: u64,
    flows_evicted: u64,
    #[serde(flatten)]
    counters: Snapshot,
}

/// Flags the signal handlers set: stop (SIGTERM, SIGINT) and reload (SIGHUP).
#[derive(Debug, Clone)]
pub struct Signals {
    /// Set by SIGTERM and SIGINT.
    pub stop: Arc<AtomicBool>,
    /// Set by SIGHUP: re-read the config and the overrides file.
    pub reload: Arc<AtomicBool>,
}

/// Installs the signal handlers.
pub fn signals() -> Result<Signals, RunError> {
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(RunError::Signals)?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .map_err(RunError::Signals)?;
    Ok(Signals { stop, reload })
}

/// Builds tables for `epoch` from the config and the overrides file.
fn tables(cfg: &Config, opts: &RunOptions, epoch: u64) -> Result<Tables, String> {
    let members = match &opts.overrides_file {
        Some(path) if path.exists() => {
            let file = overrides::read(path).map_err(|e| e.to_string())?;
            overrides::apply(cfg, &file, path).map_err(|e| e.to_string())?
        }
        _ => return Tables::from_config(cfg, epoch).map_err(|e| e.to_string()),
    };
    Tables::build(cfg, epoch, members).map_err(|e| e.to_string())
}

/// Builds tables from control's membership (epoch `epoch`, table digest
/// `digest`) with the overrides file's overrides on top (an operator's
/// forced drain or load wins). Overridden tables get a digest of their own
/// that no control confirms, so control's table stays in the claim set and
/// a local override can only narrow what this member claims, never make it
/// claim what another member owns (`claim.rs`).
fn tables_from_control(
    cfg: &Config,
    opts: &RunOptions,
    epoch: u64,
    digest: u64,
    mut members: Vec<MemberEntry>,
) -> Result<Tables, String> {
    let mut overridden = false;
    if let Some(path) = opts.overrides_file.as_ref().filter(|p| p.exists()) {
        let file = overrides::read(path).map_err(|e| e.to_string())?;
        let before = members.clone();
        overrides::overlay(cfg, &mut members, &file, path).map_err(|e| e.to_string())?;
        // Loads do not change who owns a key; alive, weight and drain do.
        overridden = before
            .iter()
            .zip(&members)
            .any(|(a, b)| a.effective_weight() != b.effective_weight());
    }
    let mut t = Tables::build(cfg, epoch, members).map_err(|e| e.to_string())?;
    t.digest = if overridden {
        digest ^ LOCAL_OVERRIDE
    } else {
        digest
    };
    Ok(t)
}

/// Marks the digest of tables an overrides file overrides.
const LOCAL_OVERRIDE: u64 = 0x5a5a_0000_0000_0001;

fn device(cfg: &Config, role: PortRole) -> Result<&str, RunError> {
    cfg.dataplane
        .ports
        .iter()
        .find(|p| p.role == role)
        .map(|p| p.device.as_str())
        .ok_or(RunError::MissingPort(match role {
            PortRole::Wire => "wire",
            PortRole::Kernel => "kernel",
        }))
}

fn pipeline(cfg: &Config, opts: &RunOptions) -> Result<Pipeline, RunError> {
    let tables = Arc::new(tables(cfg, opts, 1).map_err(RunError::Membership)?);
    let mut p = Pipeline::new(
        tables,
        cfg.dataplane.flow_table.capacity as usize,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    // SYN cookies need a secret no client can guess, per server and start.
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut secret))
        .map_err(|e| {
            RunError::DpdkSetup(format!(
                "cannot read /dev/urandom for the SYN cookie secret: {e}"
            ))
        })?;
    p.set_cookie_secret(secret);
    // Splice handoff between members needs the cluster key.
    if let Some(path) = &cfg.cluster.key_file {
        let bytes = std::fs::read(path).map_err(|e| {
            RunError::DpdkSetup(format!("cluster.key_file {}: {e}", path.display()))
        })?;
        let key = shoal_l7::handoff::ClusterKey::from_file_contents(&bytes).map_err(|e| {
            RunError::DpdkSetup(format!("cluster.key_file {}: {e}", path.display()))
        })?;
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        // The worker's clock starts at zero when it starts polling, now.
        p.enable_handoff(key, unix_ms, unix_ms);
    }
    Ok(p)
}

/// Runs the dataplane described by `cfg` until `stop` is set.
pub fn run(cfg: &Config, opts: &RunOptions, signals: &Signals) -> Result<(), RunError> {
    if cfg.dataplane.cores.len() > 1 {
        return Err(RunError::OneWorkerOnly(cfg.dataplane.cores.len()));
    }
    match cfg.dataplane.backend {
        Backend::Memory => Err(RunError::MemoryBackend),
        Backend::Portable => {
            let io =
                PortableIo::open(device(cfg, PortRole::Wire)?, device(cfg, PortRole::Kernel)?)?;
            let mut worker = Worker::new(
                io,
                pipeline(cfg, opts)?,
                usize::from(cfg.dataplane.burst_size),
            );
            inject(&mut worker, opts);
            drive(&mut worker, cfg, "portable", opts, signals);
            Ok(())
        }
        Backend::Dpdk => run_dpdk(cfg, opts, signals),
    }
}

#[cfg(not(feature = "dpdk"))]
fn run_dpdk(_: &Config, _: &RunOptions, _: &Signals) -> Result<(), RunError> {
    Err(RunError::DpdkNotBuilt)
}

#[cfg(feature = "dpdk")]
fn run_dpdk(cfg: &Config, opts: &RunOptions, signals: &Signals) -> Result<(), RunError> {
    use dpdk_bindings::{Eal, EalArgs, EthPort, Mempool, PortConfig};

    let dp = &cfg.dataplane;
    let wire_dev = device(cfg, PortRole::Wire)?;
    let kernel_dev = device(cfg, PortRole::Kernel)?;
    let is_vdev = |d: &str| d.starts_with("net_");
    let mut args = EalArgs::new().lcores(&dp.cores);
    if !dp.hugepages {
        args = args.no_huge(dp.memory_mb);
    }
    // Only vdevs: never let EAL probe (and take) the machine's PCI NICs.
    if is_vdev(wire_dev) && is_vdev(kernel_dev) && !dp.eal_args.iter().any(|a| a == "--no-pci") {
        args = args.no_pci();
    }
    for d in [wire_dev, kernel_dev] {
        if is_vdev(d) {
            args = args.vdev(d);
        }
    }
    let args = args.extra(dp.eal_args.iter().cloned()).build();
    let _eal = Eal::init(&args)?;

    let per_port =
        u32::from(dp.rx_queue_size) + u32::from(dp.tx_queue_size) + 2 * u32::from(dp.burst_size);
    if dp.mbufs < 2 * per_port {
        return Err(RunError::DpdkSetup(format!(
            "dataplane.mbufs = {} is too small for two ports with {} rx + {} tx descriptors and \
             bursts of {}: need at least {}",
            dp.mbufs,
            dp.rx_queue_size,
            dp.tx_queue_size,
            dp.burst_size,
            2 * per_port
        )));
    }
    let pool = Mempool::new("shoal_pkts", dp.mbufs, 256.min(dp.mbufs / 8), None)?;
    let name = |d: &str| d.split(',').next().unwrap_or(d).to_owned();
    let port_cfg = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: dp.rx_queue_size,
        tx_desc: dp.tx_queue_size,
        rss: false,
    };
    let mut wire = EthPort::configure(EthPort::by_name(&name(wire_dev))?, port_cfg, &pool)?;
    let mut kernel = EthPort::configure(EthPort::by_name(&name(kernel_dev))?, port_cfg, &pool)?;
    wire.start()?;
    kernel.start()?;
    wire.promiscuous(true)?;
    kernel.promiscuous(true)?;
    let io = shoal_dataplane::io::dpdk::DpdkIo::new(wire, kernel, &pool);
    let mut worker = Worker::new(io, pipeline(cfg, opts)?, usize::from(dp.burst_size));
    inject(&mut worker, opts);
    drive(&mut worker, cfg, "dpdk", opts, signals);
    Ok(())
}

/// The poll loop: poll, back off when idle, write stats, until `stop`.
fn drive<Io: PacketIo>(
    worker: &mut Worker<Io>,
    cfg: &Config,
    backend: &str,
    opts: &RunOptions,
    signals: &Signals,
) {
    let mut epoch = 1;
    let start = StdInstant::now();
    // The pipeline's clock is `start.elapsed()`; control's lease deadlines
    // are CLOCK_MONOTONIC. Sampled after `start`, so a converted deadline
    // is never later than the true one (the lease ends early, never late).
    let mono_origin = shoal_channel::monotonic_ns();
    let mut last_stats = start;
    let mut last_control = start;
    let mut control_members: Option<(u64, Vec<MemberEntry>)> = None;
    let mut last_logged: (u64, Vec<u16>) = (0, Vec::new());
    let mut link = match ControlLink::open(&cfg.control.shm_path, worker.pipeline().tables()) {
        Ok(link) => {
            // With a control channel, new connections wait for control's
            // lease: a dataplane whose control is down, hung or cut off
            // never answers a SYN another member may answer too.
            worker
                .pipeline_mut()
                .set_fence(Fence::Leased { until: None });
            tracing::info!(
                "control channel in {}; new connections wait for control's lease",
                cfg.control.shm_path.display()
            );
            Some(link)
        }
        Err(e) => {
            tracing::info!(
                "no control channel ({e}); running on the config alone, \
                 UNFENCED: run one dataplane per cluster this way, or fix the channel"
            );
            None
        }
    };
    // The flows of this member's previous run (a restart, an upgrade):
    // restored before the first burst, so its connections go on.
    let snapshot_path = cfg.control.shm_path.join("flows-0");
    if let Ok(bytes) = std::fs::read(&snapshot_path) {
        let now =
            Instant::from_nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        match worker
            .pipeline_mut()
            .restore_flows(&bytes, shoal_channel::monotonic_ns(), now)
        {
            Ok(n) => tracing::info!(
                "restored {n} flow(s) of the previous run from {}",
                snapshot_path.display()
            ),
            Err(e) => tracing::warn!(
                "flow snapshot {} refused, starting with an empty flow table: {e}",
                snapshot_path.display()
            ),
        }
    }
    let mut last_snapshot = start;
    let mut snapshot_failed = false;
    let mut idle_polls: u32 = 0;
    tracing::info!(
        "member {} running ({backend} backend); stop with SIGTERM",
        cfg.cluster.local_member
    );
    while !signals.stop.load(Ordering::Relaxed) {
        if signals.reload.swap(false, Ordering::Relaxed) {
            // Built off the packet path, swapped in whole between bursts;
            // refused as a whole when anything is wrong.
            let reloaded = shoal_config::load_file(&opts.config_path)
                .map_err(|e| e.to_string())
                .and_then(|new_cfg| match &control_members {
                    // Control's membership stays the base; the file overlays it.
                    Some((digest, members)) => {
                        tables_from_control(&new_cfg, opts, epoch, *digest, members.clone())
                    }
                    None => tables(&new_cfg, opts, epoch + 1),
                });
            match reloaded {
                Ok(t) => {
                    // Control's digest (marked when the file overrides it):
                    // a reload starts no epoch of its own. Selection
                    // settings must be the same on every member.
                    epoch = t.epoch;
                    log_epoch(&t, &mut last_logged);
                    worker.pipeline_mut().set_tables(Arc::new(t));
                }
                Err(e) => tracing::warn!("reload refused, epoch {epoch} stays: {e}"),
            }
        }
        let elapsed = start.elapsed();
        let now = Instant::from_nanos(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        let received = worker.poll(now);
        if let Some(link) = link.as_mut() {
            if received == 0 {
                link.polls_idle += 1;
            } else {
                link.polls_busy += 1;
            }
            let t = StdInstant::now();
            if t - last_control >= CONTROL_POLL {
                last_control = t;
                for applied in link.apply_commands() {
                    match applied {
                        Applied::Shutdown => signals.stop.store(true, Ordering::Relaxed),
                        Applied::Lease {
                            until_ns,
                            confirmed_digest,
                        } => {
                            let until = (until_ns != 0)
                                .then(|| Instant::from_nanos(until_ns.saturating_sub(mono_origin)));
                            let confirmed = (confirmed_digest != 0).then_some(confirmed_digest);
                            // Read the clock again: whether the lease had
                            // lapsed is judged at the renewal itself.
                            let now = Instant::from_nanos(
                                u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
                            );
                            worker.pipeline_mut().renew_lease(until, confirmed, now);
                        }
                        Applied::Members(e, digest, members) => {
                            control_members = Some((digest, members.clone()));
                            match tables_from_control(cfg, opts, e, digest, members) {
                                Ok(t) => {
                                    epoch = e;
                                    if t.digest != digest {
                                        tracing::info!(
                                            "the overrides file changes who takes new \
                                             connections (drain, weight or liveness) while control runs: \
                                             this member claims only what both allow; use shoalctl"
                                        );
                                    }
                                    log_epoch(&t, &mut last_logged);
                                    worker.pipeline_mut().set_tables(Arc::new(t));
                                    link.applied_digest = digest;
                                }
                                Err(err) => {
                                    tracing::warn!("membership from control refused: {err}");
                                }
                            }
                        }
                    }
                }
                link.write_stats(worker.pipeline(), now);
            }
        }
        if link.is_some() {
            let t = StdInstant::now();
            if t - last_snapshot >= SNAPSHOT_INTERVAL {
                last_snapshot = t;
                write_snapshot(&snapshot_path, worker.pipeline(), &mut snapshot_failed);
            }
        }
        if received == 0 {
            idle_polls = idle_polls.saturating_add(1);
            if idle_polls > 256 && !opts.idle_sleep.is_zero() {
                std::thread::sleep(opts.idle_sleep);
            }
        } else {
            idle_polls = 0;
        }
        if let Some(path) = &opts.stats_file {
            let t = StdInstant::now();
            if t - last_stats >= opts.stats_interval {
                last_stats = t;
                write_stats(path, worker, cfg, backend, start);
            }
        }
    }
    if let Some(path) = &opts.stats_file {
        write_stats(path, worker, cfg, backend, start);
    }
    tracing::info!("stopped");
}

fn inject<Io: PacketIo>(worker: &mut Worker<Io>, opts: &RunOptions) {
    let (drop, reorder) = opts.inject;
    if drop > 0 || reorder > 0 {
        tracing::info!(
            "FAULT INJECTION on: dropping {drop}‰ and reordering {reorder}‰ of wire frames"
        );
        worker.inject_faults(shoal_dataplane::worker::Faults::new(drop, reorder));
    }
}

/// How often the worker writes its flow snapshot.
const SNAPSHOT_INTERVAL: Duration =
    Duration::from_millis(shoal_dataplane::pipeline::snapshot::SNAPSHOT_INTERVAL_MS);

/// Writes the flow snapshot through a temporary file and a rename (a
/// reader sees the old snapshot or the new one, never half of one).
/// A failure is logged once until a write succeeds again.
fn write_snapshot(path: &Path, pipeline: &Pipeline, failed: &mut bool) {
    let bytes = pipeline.flow_snapshot(shoal_channel::monotonic_ns());
    let tmp = path.with_extension("tmp");
    match std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => *failed = false,
        Err(e) if !*failed => {
            *failed = true;
            tracing::warn!(
                "cannot write the flow snapshot {} (a restart will lose \
                 the connections): {e}",
                path.display()
            );
        }
        Err(_) => {}
    }
}

/// How often the worker looks at the command ring and publishes its stats.
const CONTROL_POLL: Duration = Duration::from_millis(2);

/// Logs an applied epoch when it differs from the last one logged (control
/// resends its state with every load report).
fn log_epoch(t: &Tables, last: &mut (u64, Vec<u16>)) {
    let out: Vec<u16> = t
        .members
        .iter()
        .filter(|m| m.effective_weight() == 0)
        .map(|m| m.id)
        .collect();
    if (t.epoch, &out) != (last.0, &last.1) {
        tracing::info!(
            "epoch {} applied (members taking no new connections: {out:?})",
            t.epoch
        );
        *last = (t.epoch, out);
    }
}

fn write_stats<Io: PacketIo>(
    path: &Path,
    worker: &Worker<Io>,
    cfg: &Config,
    backend: &str,
    start: StdInstant,
) {
    let p = worker.pipeline();
    let flows = p.flows();
    let stats = Stats {
        member: &cfg.cluster.local_member,
        backend,
        uptime_s: start.elapsed().as_secs_f64(),
        flows_live: flows.len(),
        flows_capacity: flows.capacity(),
        flows_by_state: flows.count_by_state(),
        flows_inserted: flows.stats().inserts,
        flows_expired: flows.stats().expired_total(),
        flows_evicted: flows.stats().evicted_total(),
        counters: p.counters().snapshot(),
    };
    let tmp = path.with_extension("tmp");
    let written = serde_json::to_vec_pretty(&stats)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(&tmp, json))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        tracing::warn!("cannot write stats to {}: {e}", path.display());
    }
}
