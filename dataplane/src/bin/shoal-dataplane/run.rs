//! `shoal-dataplane run`: bring up the configured backend and poll until told
//! to stop.
//!
//! One worker per entry of `dataplane.cores`: with DPDK, worker 0 runs on
//! the main lcore (the first core) and worker *i* on lcore `cores[i]`, each
//! with queue *i* of the wire and kernel ports, its own pipeline (flow table,
//! SYN cookies, splice and handoff state), its own control channel
//! (`commands-<i>`, `stats-<i>`) and flow snapshot (`flows-<i>`). Frames
//! reach their connection's owner through the steering rings
//! (`shoal_dataplane::steer`, `worker.rs`). The portable backend runs one
//! worker. A housekeeping thread (sleeping, on the main lcore's CPU) turns
//! SIGHUP into a reload every worker applies, and every `stats_interval`
//! writes the workers' counters and flow-table figures, summed and per
//! worker, as JSON to the stats file (atomically: temp + rename), which the
//! lab and operators read.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, PoisonError};
use std::time::{Duration, Instant as StdInstant};

use serde::Serialize;
use shoal_config::{Backend, Config, PortRole};

use shoal_dataplane::control_link::{Applied, ControlLink};
use shoal_dataplane::counters::{Counter, Counters, Snapshot};
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::portable::{PortableError, PortableIo};
use shoal_dataplane::io::PacketIo;
use shoal_dataplane::overrides;
use shoal_dataplane::pipeline::{MemberEntry, Pipeline, Tables, TablesError};
use shoal_dataplane::steer;
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
    /// The portable backend runs one worker.
    #[error(
        "dataplane.cores: {0} cores configured, but the portable backend runs one worker \
         (list a single core, or use backend = \"dpdk\" for several)"
    )]
    PortableOneWorker(usize),
    /// A core the machine does not have, or too many workers.
    #[error("{key}: {reason}")]
    Cores {
        /// The config key (`dataplane.cores[2]`).
        key: String,
        /// What is wrong.
        reason: String,
    },
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

/// What the stats file holds: the sum over the workers, and each worker.
#[derive(Debug, Serialize)]
struct Stats<'a> {
    member: &'a str,
    backend: &'a str,
    uptime_s: f64,
    #[serde(flatten)]
    flows: FlowFigures,
    #[serde(flatten)]
    counters: Snapshot,
    workers: Vec<WorkerFigures>,
}

/// A flow table's figures (one worker's, or summed), named as the stats
/// file's keys.
#[derive(Debug, Clone, Default, Serialize)]
#[allow(clippy::struct_field_names)]
struct FlowFigures {
    flows_live: usize,
    flows_capacity: usize,
    flows_by_state: [usize; 4],
    flows_inserted: u64,
    flows_expired: u64,
    flows_evicted: u64,
}

impl FlowFigures {
    fn of<V>(flows: &shoal_dataplane::flow::FlowTable<V>) -> FlowFigures {
        FlowFigures {
            flows_live: flows.len(),
            flows_capacity: flows.capacity(),
            flows_by_state: flows.count_by_state(),
            flows_inserted: flows.stats().inserts,
            flows_expired: flows.stats().expired_total(),
            flows_evicted: flows.stats().evicted_total(),
        }
    }

    fn add(&mut self, o: &FlowFigures) {
        self.flows_live += o.flows_live;
        self.flows_capacity += o.flows_capacity;
        for (a, b) in self.flows_by_state.iter_mut().zip(o.flows_by_state) {
            *a += b;
        }
        self.flows_inserted += o.flows_inserted;
        self.flows_expired += o.flows_expired;
        self.flows_evicted += o.flows_evicted;
    }
}

/// One worker's figures in the stats file.
#[derive(Debug, Clone, Serialize)]
struct WorkerFigures {
    worker: usize,
    flows_live: usize,
    /// Connections this worker accepted as inspector.
    syn_accepted: u64,
    wire_rx_packets: u64,
    kernel_rx_packets: u64,
    steered_in_packets: u64,
    steered_out_packets: u64,
    drop_steer_ring_full: u64,
    /// Share of polls that received frames since the worker started.
    busy_fraction: f64,
    /// Time spent in polls that received frames since the worker started,
    /// nanoseconds (its work, without idle polling).
    busy_ns: u64,
}

/// What a worker publishes for the stats file (once per stats interval,
/// under a mutex: never per packet).
#[derive(Debug, Clone)]
struct Published {
    counters: Counters,
    flows: FlowFigures,
    polls_busy: u64,
    polls_idle: u64,
    busy_ns: u64,
}

/// What the workers and the housekeeping thread share.
struct Shared {
    /// Bumped by the housekeeper on SIGHUP; every worker reloads once per bump.
    reload_gen: AtomicU64,
    /// Each worker's latest figures.
    published: Mutex<Vec<Option<Published>>>,
    /// Every worker has restored its flows (stale snapshots may go).
    restored: Barrier,
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

/// The SYN cookie secret, shared by the workers (each answers and checks
/// the cookies of the connections it owns). With a control directory
/// (`control.shm_path`, a tmpfs) it is kept there (`cookie-secret`, mode
/// 0600) and reused by the next start: a connection that was between its
/// cookie handshake and its handover when the dataplane died resumes from
/// the client's next segment, whose cookie the restarted dataplane still
/// recognises. Without one, a fresh secret per start.
fn cookie_secret(dir: &Path) -> Result<[u8; 32], RunError> {
    let path = dir.join("cookie-secret");
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(secret) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(secret);
        }
        tracing::warn!(
            "{} is not a 32-byte secret: replacing it (connections in their \
             cookie handshake are lost)",
            path.display()
        );
    }
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut secret))
        .map_err(|e| {
            RunError::DpdkSetup(format!(
                "cannot read /dev/urandom for the SYN cookie secret: {e}"
            ))
        })?;
    if dir.is_dir() {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let tmp = dir.join("cookie-secret.tmp");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&secret))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::warn!(
                "cannot keep the SYN cookie secret in {} (a restart loses the \
                 connections in their cookie handshake): {e}",
                path.display()
            );
        }
    }
    Ok(secret)
}

/// Worker `index`'s pipeline.
fn pipeline(
    cfg: &Config,
    opts: &RunOptions,
    index: usize,
    secret: [u8; 32],
) -> Result<Pipeline, RunError> {
    let tables = Arc::new(tables(cfg, opts, 1).map_err(RunError::Membership)?);
    let mut p = Pipeline::new(
        tables,
        cfg.dataplane.flow_table.capacity as usize,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    // SYN cookies need a secret no client can guess, per server and start.
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
        // Each worker is a lane of this start's incarnation.
        let incarnation = unix_ms << 8 | index as u64;
        p.enable_handoff(key, incarnation, unix_ms);
    }
    Ok(p)
}

/// Runs the dataplane described by `cfg` until `stop` is set.
pub fn run(cfg: &Config, opts: &RunOptions, signals: &Signals) -> Result<(), RunError> {
    check_cores(&cfg.dataplane.cores, cfg.dataplane.main_core)?;
    let workers = cfg.dataplane.cores.len();
    match cfg.dataplane.backend {
        Backend::Memory => Err(RunError::MemoryBackend),
        Backend::Portable => {
            if workers > 1 {
                return Err(RunError::PortableOneWorker(workers));
            }
            let io =
                PortableIo::open(device(cfg, PortRole::Wire)?, device(cfg, PortRole::Kernel)?)?;
            let mut worker = Worker::new(
                io,
                pipeline(cfg, opts, 0, cookie_secret(&cfg.control.shm_path)?)?,
                usize::from(cfg.dataplane.burst_size),
            );
            inject(&mut worker, opts);
            let shared = Shared::new(1);
            let start = StdInstant::now();
            std::thread::scope(|s| {
                s.spawn(|| housekeep(cfg, opts, signals, &shared, "portable", start));
                drive(&mut worker, cfg, opts, signals, &shared, 0, 1, start);
            });
            write_stats(cfg, opts, &shared, "portable", start);
            Ok(())
        }
        Backend::Dpdk => run_dpdk(cfg, opts, signals),
    }
}

/// Checks `dataplane.cores` and `dataplane.main_core` against this machine:
/// every core online, at most [`steer::MAX_WORKERS`] workers (duplicates and
/// a main core among the workers' are refused by the config's validation).
fn check_cores(cores: &[u32], main_core: Option<u32>) -> Result<(), RunError> {
    if cores.len() > steer::MAX_WORKERS {
        return Err(RunError::Cores {
            key: "dataplane.cores".to_owned(),
            reason: format!(
                "{} workers configured; at most {} are supported",
                cores.len(),
                steer::MAX_WORKERS
            ),
        });
    }
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").ok();
    let Some(online) = online.as_deref().and_then(parse_cpu_list) else {
        return Ok(()); // cannot tell: EAL checks again
    };
    let keyed = cores
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("dataplane.cores[{i}]"), c))
        .chain(
            main_core
                .as_ref()
                .map(|c| ("dataplane.main_core".to_owned(), c)),
        );
    for (key, c) in keyed {
        if !online.contains(c) {
            return Err(RunError::Cores {
                key,
                reason: format!(
                    "core {c} does not exist or is offline on this machine (online: {})",
                    fmt_cpu_list(&online)
                ),
            });
        }
    }
    Ok(())
}

/// Parses a kernel CPU list (`0-3,8,10-11`).
fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<u32>().ok()?..=b.parse::<u32>().ok()?),
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

fn fmt_cpu_list(cpus: &[u32]) -> String {
    match (cpus.first(), cpus.last()) {
        (Some(a), Some(b)) if cpus.len() == (b - a + 1) as usize => format!("{a}-{b}"),
        _ => cpus
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

impl Shared {
    fn new(workers: usize) -> Shared {
        Shared {
            reload_gen: AtomicU64::new(0),
            published: Mutex::new(vec![None; workers]),
            restored: Barrier::new(workers),
        }
    }
}

/// Sets `stop` when dropped: a worker that ends (by a Shutdown command, an
/// error or a panic) stops the others, so the process exits as a whole and
/// its supervisor restarts it.
struct StopOnExit<'a>(&'a AtomicBool);

impl Drop for StopOnExit<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The housekeeping loop, until `stop`: SIGHUP becomes a reload
/// generation, the stats file is written every interval.
fn housekeep(
    cfg: &Config,
    opts: &RunOptions,
    signals: &Signals,
    shared: &Shared,
    backend: &str,
    start: StdInstant,
) {
    let mut last_stats = start;
    while !signals.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
        if signals.reload.swap(false, Ordering::Relaxed) {
            shared.reload_gen.fetch_add(1, Ordering::Relaxed);
        }
        if opts.stats_file.is_some() && last_stats.elapsed() >= opts.stats_interval {
            last_stats = StdInstant::now();
            write_stats(cfg, opts, shared, backend, start);
        }
    }
}

#[cfg(not(feature = "dpdk"))]
fn run_dpdk(_: &Config, _: &RunOptions, _: &Signals) -> Result<(), RunError> {
    Err(RunError::DpdkNotBuilt)
}

#[cfg(feature = "dpdk")]
fn run_dpdk(cfg: &Config, opts: &RunOptions, signals: &Signals) -> Result<(), RunError> {
    use dpdk_bindings::{Eal, EalArgs, EthPort, Mempool, PortConfig};
    use shoal_dataplane::io::dpdk::DpdkIo;
    use shoal_dataplane::worker::{Steering, STEER_RING};

    let dp = &cfg.dataplane;
    let workers = dp.cores.len();
    let wire_dev = device(cfg, PortRole::Wire)?;
    let kernel_dev = device(cfg, PortRole::Kernel)?;
    let is_vdev = |d: &str| d.starts_with("net_");
    // The main lcore: `main_core` (housekeeping only) or worker 0's core.
    let main = dp.main_core.unwrap_or(dp.cores[0]);
    let lcores: Vec<u32> = dp
        .main_core
        .into_iter()
        .chain(dp.cores.iter().copied())
        .collect();
    let mut args = EalArgs::new().lcores(&lcores);
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
    // The main lcore is named (EAL would pick the lowest).
    let mut extra = Vec::new();
    if !dp.eal_args.iter().any(|a| a.starts_with("--main-lcore")) {
        extra = vec!["--main-lcore".to_owned(), main.to_string()];
    }
    extra.extend(dp.eal_args.iter().cloned());
    let args = args.extra(extra).build();
    let eal = Eal::init(&args)?;

    let per_port =
        u32::from(dp.rx_queue_size) + u32::from(dp.tx_queue_size) + 2 * u32::from(dp.burst_size);
    let need = 2 * per_port * workers as u32;
    if dp.mbufs < need {
        return Err(RunError::DpdkSetup(format!(
            "dataplane.mbufs = {} is too small for {workers} worker(s) on two ports with {} rx + \
             {} tx descriptors and bursts of {}: need at least {need}",
            dp.mbufs, dp.rx_queue_size, dp.tx_queue_size, dp.burst_size,
        )));
    }
    let pool = Mempool::new("shoal_pkts", dp.mbufs, 256.min(dp.mbufs / 8), None)?;
    let name = |d: &str| d.split(',').next().unwrap_or(d).to_owned();
    let queues = u16::try_from(workers).unwrap_or(u16::MAX);
    let port_cfg = PortConfig {
        rx_queues: queues,
        tx_queues: queues,
        rx_desc: dp.rx_queue_size,
        tx_desc: dp.tx_queue_size,
        // Hardware that can hash spreads connections as `steer::owner` does.
        rss: workers > 1,
    };
    let configure = |dev: &str| -> Result<EthPort<'_>, RunError> {
        EthPort::configure(EthPort::by_name(&name(dev))?, port_cfg, &pool).map_err(|e| match e {
            dpdk_bindings::DpdkError::InvalidArgument { reason, .. } if workers > 1 => {
                RunError::Cores {
                    key: "dataplane.cores".to_owned(),
                    reason: format!(
                        "{workers} workers need {workers} queue pairs on port '{dev}': {reason}{}",
                        if dev.starts_with("net_af_packet") {
                            format!(" (add qpairs={workers} to its device string)")
                        } else {
                            String::new()
                        }
                    ),
                }
            }
            e => RunError::Dpdk(e),
        })
    };
    let mut wire = configure(wire_dev)?;
    let mut kernel = configure(kernel_dev)?;
    wire.start()?;
    kernel.start()?;
    wire.promiscuous(true)?;
    kernel.promiscuous(true)?;
    if workers > 1 {
        // A NIC that hashes with the symmetric key and this table delivers
        // every client frame to its owner's queue (`steer::owner`).
        let rss = if wire.rss_enabled() {
            match wire.set_reta(|i| steer::reta(workers)[i % steer::RETA_SIZE]) {
                Ok(n) => format!("on, {n}-entry table programmed as the software owner function"),
                Err(e) => format!("on, table not programmable ({e})"),
            }
        } else {
            "not offered".to_owned()
        };
        tracing::info!(
            "{workers} workers on cores {:?}; RSS on the wire port: {rss} (frames on another \
             worker's queue are steered in software)",
            dp.cores,
        );
    }
    let secret = cookie_secret(&cfg.control.shm_path)?;
    let mut slots = Vec::with_capacity(workers);
    for (i, steering) in Steering::mesh(workers, STEER_RING).into_iter().enumerate() {
        let q = u16::try_from(i).unwrap_or(u16::MAX);
        let io = DpdkIo::new(wire.queue(q)?, kernel.queue(q)?, &pool);
        let mut w = Worker::new(
            io,
            pipeline(cfg, opts, i, secret)?,
            usize::from(dp.burst_size),
        );
        w.steer(steering);
        inject(&mut w, opts);
        slots.push(Mutex::new(Some(w)));
    }
    let shared = Shared::new(workers);
    let start = StdInstant::now();
    let run_worker = |i: usize| {
        let taken = slots[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut w) = taken {
            drive(&mut w, cfg, opts, signals, &shared, i, workers, start);
        }
    };
    let ran = if dp.main_core.is_some() {
        // Every worker on its own lcore; the main lcore only housekeeps.
        eal.run_on_lcores(&dp.cores, run_worker, || {
            housekeep(cfg, opts, signals, &shared, "dpdk", start);
        })
    } else {
        eal.run_on_lcores(
            &dp.cores[1..],
            |i| run_worker(i + 1),
            || {
                std::thread::scope(|s| {
                    s.spawn(|| housekeep(cfg, opts, signals, &shared, "dpdk", start));
                    run_worker(0);
                });
            },
        )
    };
    write_stats(cfg, opts, &shared, "dpdk", start);
    drop(slots);
    ran.map_err(RunError::Dpdk)
}

/// Worker `index`'s poll loop: poll, apply control's commands, back off
/// when idle, publish stats and the flow snapshot, until `stop`.
#[allow(clippy::too_many_arguments)]
fn drive<Io: PacketIo>(
    worker: &mut Worker<Io>,
    cfg: &Config,
    opts: &RunOptions,
    signals: &Signals,
    shared: &Shared,
    index: usize,
    workers: usize,
    start: StdInstant,
) {
    let _stop_others = StopOnExit(&signals.stop);
    let mut epoch = 1;
    // The pipeline's clock is `start.elapsed()`; control's lease deadlines
    // are CLOCK_MONOTONIC. Sampled after `start`, so a converted deadline
    // is never later than the true one (the lease ends early, never late).
    let mono_origin = shoal_channel::monotonic_ns();
    let mut last_stats = start;
    let mut last_control = start;
    let mut reload_seen = 0;
    // The config this worker runs (services change at run time).
    let mut current = cfg.clone();
    // A reload to do: Some(None) = the whole file (SIGHUP), Some(Some(d)) =
    // the service table of digest d (control's `shoalctl reload`).
    let mut reload: Option<Option<u64>> = None;
    let mut control_members: Option<(u64, Vec<MemberEntry>)> = None;
    let mut last_logged: (u64, Vec<u16>) = (0, Vec::new());
    let dir = &cfg.control.shm_path;
    let mut link = match ControlLink::open(dir, index, workers, worker.pipeline().tables()) {
        Ok(link) => {
            // With a control channel, new connections wait for control's
            // lease: a dataplane whose control is down, hung or cut off
            // never answers a SYN another member may answer too.
            worker
                .pipeline_mut()
                .set_fence(Fence::Leased { until: None });
            if index == 0 {
                tracing::info!(
                    "control channel in {}; new connections wait for control's lease",
                    dir.display()
                );
            }
            Some(link)
        }
        Err(e) => {
            tracing::info!(
                "worker {index}: no control channel ({e}); running on the config alone, \
                 UNFENCED: run one dataplane per cluster this way, or fix the channel"
            );
            None
        }
    };
    if let Some(l) = link.as_mut() {
        l.services_digest = shoal_config::services_digest(&cfg.services);
    }
    restore_snapshots(worker, dir, index, workers, start);
    // Every worker has read every snapshot: worker 0 removes those of
    // workers this run does not have (a run with fewer workers).
    shared.restored.wait();
    if index == 0 {
        for w in workers..steer::MAX_WORKERS {
            let _ = std::fs::remove_file(dir.join(format!("flows-{w}")));
            let _ = std::fs::remove_file(dir.join(format!("flows-{w}.journal")));
            let _ = std::fs::remove_file(dir.join(format!("moves-{w}")));
        }
    }
    let snapshot_path = dir.join(format!("flows-{index}"));
    let moves_path = shoal_channel::moves::move_log_path(dir, index);
    let mut moves_written = 0u64;
    let mut last_snapshot = start;
    let mut snapshot_failed = false;
    if link.is_some() {
        // What was restored is on file before the old journal goes; from
        // now on every burst journals its new flows before transmitting.
        write_snapshot(&snapshot_path, worker.pipeline(), &mut snapshot_failed);
        let journal_path = dir.join(format!("flows-{index}.journal"));
        match shoal_dataplane::journal::Journal::create(&journal_path) {
            Ok(j) => worker.journal_to(j),
            Err(e) => tracing::warn!(
                "worker {index}: cannot open the flow journal {} (a restart loses the flows \
                 of the last {} ms): {e}",
                journal_path.display(),
                SNAPSHOT_INTERVAL.as_millis()
            ),
        }
    }
    let mut idle_polls: u32 = 0;
    // The clock read after the last poll, while nothing slow (a snapshot, a
    // command, a reload, an idle sleep, publishing) has happened since: the
    // next poll's time. One clock read per busy iteration instead of four
    // (the vDSO reads were 11 % of a lab dataplane's samples, perf/README).
    let mut fresh: Option<StdInstant> = None;
    if index == 0 {
        tracing::info!(
            "member {} running, {workers} worker(s); stop with SIGTERM",
            cfg.cluster.local_member
        );
    }
    while !signals.stop.load(Ordering::Relaxed) {
        let gen = shared.reload_gen.load(Ordering::Relaxed);
        if gen != reload_seen {
            reload_seen = gen;
            reload.get_or_insert(None);
        }
        if let Some(services_digest) = reload.take() {
            fresh = None;
            // Built off the packet path, swapped in whole between bursts;
            // refused as a whole when anything is wrong.
            let reloaded = reload_config(&current, opts, services_digest).and_then(|new_cfg| {
                let t = match &control_members {
                    // Control's membership stays the base; the file overlays it.
                    Some((digest, members)) => {
                        tables_from_control(&new_cfg, opts, epoch, *digest, members.clone())
                    }
                    None => tables(&new_cfg, opts, epoch + 1),
                }?;
                Ok((new_cfg, t))
            });
            match reloaded {
                Ok((new_cfg, t)) => {
                    // Control's digest (marked when the file overrides it):
                    // a reload starts no epoch of its own.
                    epoch = t.epoch;
                    if index == 0 {
                        log_epoch(&t, &mut last_logged);
                        tracing::info!(
                            "{} reloaded from {} ({} service(s))",
                            if services_digest.is_some() {
                                "service table"
                            } else {
                                "config"
                            },
                            opts.config_path.display(),
                            new_cfg.services.len()
                        );
                    }
                    worker.pipeline_mut().set_tables(Arc::new(t));
                    current = new_cfg;
                    if let Some(link) = link.as_mut() {
                        link.services_digest = shoal_config::services_digest(&current.services);
                    }
                }
                Err(e) => {
                    if let Some(link) = link.as_mut() {
                        link.bad_commands += u64::from(services_digest.is_some());
                    }
                    tracing::warn!("worker {index}: reload refused, epoch {epoch} and the running config stay: {e}");
                }
            }
        }
        let polled_at = fresh.take().unwrap_or_else(StdInstant::now);
        let elapsed = polled_at.saturating_duration_since(start);
        let now = Instant::from_nanos(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        let received = worker.poll(now);
        let t = StdInstant::now();
        fresh = Some(t);
        if let Some(link) = link.as_mut() {
            if received == 0 {
                link.polls_idle += 1;
            } else {
                link.polls_busy += 1;
                let spent = t.saturating_duration_since(polled_at);
                link.busy_ns += u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
            }
            if t - last_control >= CONTROL_POLL {
                last_control = t;
                fresh = None;
                for applied in link.apply_commands() {
                    match applied {
                        Applied::Shutdown => signals.stop.store(true, Ordering::Relaxed),
                        Applied::ReloadServices(digest) => reload = Some(Some(digest)),
                        Applied::EvictFlows { client, port } => {
                            let n = worker.pipeline_mut().evict_client(client, port);
                            tracing::info!(
                                "worker {index}: evicted {n} flow(s) of client {client}{} (operator)",
                                if port == 0 { String::new() } else { format!(":{port}") }
                            );
                        }
                        Applied::PinClients {
                            prefix,
                            len,
                            member,
                            secs,
                        } => {
                            let set = worker
                                .pipeline_mut()
                                .pin_clients(prefix, len, member, secs, now);
                            if index == 0 || !set {
                                tracing::info!(
                                    "worker {index}: {} (operator)",
                                    match (member, set) {
                                        (0, _) => format!("pin of {prefix}/{len} removed"),
                                        (_, true) => format!(
                                            "new connections of {prefix}/{len} pinned to member {member} for {secs} s"
                                        ),
                                        (_, false) => format!(
                                            "pin of {prefix}/{len} refused: {} live pins already",
                                            shoal_dataplane::pipeline::MAX_PINS
                                        ),
                                    }
                                );
                            }
                        }
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
                            let joining = control_members.is_none();
                            control_members = Some((digest, members.clone()));
                            match tables_from_control(&current, opts, e, digest, members) {
                                Ok(t) => {
                                    epoch = e;
                                    if t.digest != digest && index == 0 {
                                        tracing::info!(
                                            "the overrides file changes who takes new \
                                             connections (drain, weight or liveness) while control runs: \
                                             this member claims only what both allow; use shoalctl"
                                        );
                                    }
                                    if index == 0 {
                                        log_epoch(&t, &mut last_logged);
                                    }
                                    // The first membership since this start:
                                    // this member (re)joins the cluster.
                                    if joining {
                                        worker.pipeline_mut().set_tables_joining(Arc::new(t));
                                    } else {
                                        worker.pipeline_mut().set_tables(Arc::new(t));
                                    }
                                    link.applied_digest = digest;
                                }
                                Err(err) => {
                                    tracing::warn!(
                                        "worker {index}: membership from control refused: {err}"
                                    );
                                }
                            }
                        }
                    }
                }
                let (sent, dropped) = worker
                    .steering()
                    .map_or((&[][..], &[][..]), |s| (&s.sent[..], &s.dropped[..]));
                link.write_stats(worker.pipeline(), (sent, dropped), now);
            }
        }
        if link.is_some() {
            let urgent = worker.journal_mut().is_some_and(|j| j.needs_snapshot);
            if urgent || t - last_snapshot >= SNAPSHOT_INTERVAL {
                last_snapshot = t;
                fresh = None;
                write_snapshot(&snapshot_path, worker.pipeline(), &mut snapshot_failed);
                let log = worker.pipeline().move_log();
                if log.generation() != moves_written {
                    // The owner history `shoalctl flows show` reads; best effort.
                    moves_written = log.generation();
                    let tmp = moves_path.with_extension("tmp");
                    let _ = std::fs::write(&tmp, log.text())
                        .and_then(|()| std::fs::rename(&tmp, &moves_path));
                }
                if !snapshot_failed {
                    // Every journaled flow is in the snapshot now.
                    if let Some(j) = worker.journal_mut() {
                        j.reset();
                    }
                }
            }
        }
        if received == 0 {
            idle_polls = idle_polls.saturating_add(1);
            if idle_polls > 256 && !opts.idle_sleep.is_zero() {
                std::thread::sleep(opts.idle_sleep);
                fresh = None;
            }
        } else {
            idle_polls = 0;
        }
        if opts.stats_file.is_some() && t - last_stats >= opts.stats_interval / 2 {
            last_stats = t;
            publish(worker, link.as_ref(), shared, index);
            fresh = None;
        }
    }
    publish(worker, link.as_ref(), shared, index);
    if index == 0 {
        tracing::info!("stopped");
    }
}

/// Re-reads the config file for a reload: the whole file (SIGHUP,
/// `services_digest` None) or only its service table, which must be the one
/// control checked (digest `d`). Either way a service change must keep
/// every connection's inspector (`shoal_config::services_reloadable`).
fn reload_config(
    current: &Config,
    opts: &RunOptions,
    services_digest: Option<u64>,
) -> Result<Config, String> {
    let new = shoal_config::load_file(&opts.config_path).map_err(|e| e.to_string())?;
    shoal_config::services_reloadable(&current.services, &new.services)
        .map_err(|errs| errs.join("; "))?;
    match services_digest {
        None => Ok(new),
        Some(d) => {
            let found = shoal_config::services_digest(&new.services);
            if found != d {
                return Err(format!(
                    "the service table in {} (digest {found:#018x}) is not the one control \
                     checked ({d:#018x}): was the file edited in between, or do the two \
                     processes read different files? run `shoalctl reload` again",
                    opts.config_path.display()
                ));
            }
            let mut next = current.clone();
            next.services = new.services;
            Ok(next)
        }
    }
}

/// Restores this worker's share (the flows it owns among `workers`) of
/// every worker's snapshot of the previous run, whatever number of workers
/// it had.
fn restore_snapshots<Io: PacketIo>(
    worker: &mut Worker<Io>,
    dir: &Path,
    index: usize,
    workers: usize,
    start: StdInstant,
) {
    let mut restored = 0;
    for w in 0..steer::MAX_WORKERS {
        let path = dir.join(format!("flows-{w}"));
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let now =
            Instant::from_nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        match worker.pipeline_mut().restore_flows_where(
            &bytes,
            shoal_channel::monotonic_ns(),
            now,
            |key| steer::flow_owner(key, workers) == index,
        ) {
            Ok(n) => restored += n,
            Err(e) => tracing::warn!(
                "worker {index}: flow snapshot {} refused: {e}",
                path.display()
            ),
        }
    }
    // Then the journals: flows created or changed after those snapshots.
    let mut refused = 0;
    for w in 0..steer::MAX_WORKERS {
        let Ok(bytes) = std::fs::read(dir.join(format!("flows-{w}.journal"))) else {
            continue;
        };
        let now =
            Instant::from_nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        let (n, bad) = worker.pipeline_mut().restore_journal_where(
            &bytes,
            shoal_channel::monotonic_ns(),
            now,
            |key| steer::flow_owner(key, workers) == index,
        );
        restored += n;
        refused += bad;
    }
    if refused > 0 {
        tracing::warn!("worker {index}: {refused} flow journal entries refused (torn, stale or another member's)");
    }
    if restored > 0 {
        tracing::info!("worker {index}: restored {restored} flow(s) of the previous run");
    }
}

/// Puts the worker's figures where the housekeeper writes the stats file
/// from (a mutex taken once per stats interval, never per packet).
fn publish<Io: PacketIo>(
    worker: &Worker<Io>,
    link: Option<&ControlLink>,
    shared: &Shared,
    index: usize,
) {
    let p = worker.pipeline();
    let figures = Published {
        counters: p.counters().clone(),
        flows: FlowFigures::of(p.flows()),
        polls_busy: link.map_or(0, |l| l.polls_busy),
        polls_idle: link.map_or(0, |l| l.polls_idle),
        busy_ns: link.map_or(0, |l| l.busy_ns),
    };
    let mut published = shared
        .published
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(slot) = published.get_mut(index) {
        *slot = Some(figures);
    }
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

/// Writes the stats file: the workers' figures summed, and each worker's.
fn write_stats(cfg: &Config, opts: &RunOptions, shared: &Shared, backend: &str, start: StdInstant) {
    let Some(path) = &opts.stats_file else {
        return;
    };
    let published = shared
        .published
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut total = Counters::default();
    let mut stats = Stats {
        member: &cfg.cluster.local_member,
        backend,
        uptime_s: start.elapsed().as_secs_f64(),
        flows: FlowFigures::default(),
        counters: Counters::default().snapshot(),
        workers: Vec::new(),
    };
    for (w, p) in published.iter().enumerate() {
        let Some(p) = p else { continue };
        total.merge(&p.counters);
        stats.flows.add(&p.flows);
        let polls = (p.polls_busy + p.polls_idle).max(1);
        stats.workers.push(WorkerFigures {
            worker: w,
            flows_live: p.flows.flows_live,
            syn_accepted: p.counters.get(Counter::SynAccepted),
            wire_rx_packets: p.counters.get(Counter::WireRx),
            kernel_rx_packets: p.counters.get(Counter::KernelRx),
            steered_in_packets: p.counters.get(Counter::SteeredIn),
            steered_out_packets: p.counters.get(Counter::SteeredOut),
            drop_steer_ring_full: p.counters.get(Counter::DropSteerFull),
            busy_fraction: p.polls_busy as f64 / polls as f64,
            busy_ns: p.busy_ns,
        });
    }
    stats.counters = total.snapshot();
    let tmp = path.with_extension("tmp");
    let written = serde_json::to_vec_pretty(&stats)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(&tmp, json))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        tracing::warn!("cannot write stats to {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::cookie_secret;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_cookie_secret_outlives_a_restart_in_the_control_directory() {
        let dir = std::env::temp_dir().join(format!("shoal-cookie-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let first = cookie_secret(&dir).unwrap_or_else(|e| panic!("{e}"));
        let again = cookie_secret(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(dir.join("cookie-secret"))
            .map_or(0, |m| m.permissions().mode() & 0o777);
        // A damaged file is replaced, not used.
        std::fs::write(dir.join("cookie-secret"), b"short").unwrap_or_else(|e| panic!("{e}"));
        let replaced = cookie_secret(&dir).unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(first, again);
        assert_eq!(mode, 0o600);
        assert_ne!(replaced, first);
        // Without the directory: a fresh secret each time.
        let none = dir.join("absent");
        let a = cookie_secret(&none).unwrap_or_else(|e| panic!("{e}"));
        let b = cookie_secret(&none).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a, b);
    }
}
