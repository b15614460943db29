//! The `shoal-control` process: sockets, threads, clocks and the main loop
//! around [`Membership`].
//!
//! Threads: one receiver per UDP socket (forwards raw datagrams), one
//! `tiny_http` server each for `/metrics` and the admin API, and the main
//! loop, which alone owns the membership state. Everything reaches the main
//! loop over one channel; it answers admin actions over a reply channel and
//! publishes an immutable [`Status`] snapshot after every change, which the
//! HTTP threads read. No async runtime: a handful of blocking threads for a
//! few datagrams per interval.
//!
//! Every interval the main loop reads the dataplane's stats and the CPU
//! figures (load), runs
//! the cleaner and the epoch computation, announces on every network and
//! brings the dataplane's rings up to date. On SIGTERM/SIGINT it announces
//! that it is leaving (peers remove it at once instead of after the failure
//! timeout) and returns.
//!
//! Files: this one holds the main loop and start-up; `net.rs` the sockets
//! and receiver threads, `http.rs` the admin and metrics listeners,
//! `events.rs` the membership events as log events, `cpu_load.rs` the
//! host's and the application's CPU figures.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use shoal_config::Config;

use crate::admin::{self, Action, Policy};
use crate::dataplane::DataplaneLink;
use crate::load::{LoadTracker, WorkerCounters};
use crate::membership::{Isolation, MemberInfo, Membership, Now, Timing};
use crate::status::{NetworkStatus, Status};
use shoal_key::{AdminToken, ClusterKey, KeyError};

mod bgp;
mod cpu_load;
mod events;
mod http;
mod net;

use bgp::BgpHandle;
use cpu_load::CpuLoad;
use events::log_event;
use http::{http_server, locked, spawn_admin, spawn_metrics, Shared};
use net::{is_loopback, open_networks, spawn_receiver, Network};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config file is invalid.
    #[error(transparent)]
    Config(#[from] shoal_config::ConfigError),
    /// A secret file is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A multi-member cluster without `cluster.key_file`.
    #[error(
        "cluster.key_file is not set: a cluster of {0} members (or any control network) needs \
         a shared key to authenticate membership messages; create one with \
         `head -c 32 /dev/urandom > cluster.key`, copy it to every member and set key_file"
    )]
    NoKey(usize),
    /// Admin API on a non-loopback address without a token.
    #[error(
        "control.admin_listen = {0} is not a loopback address and control.admin_token_file is \
         not set: anyone on the network could drain members; set a token file or listen on \
         127.0.0.1"
    )]
    OpenAdmin(SocketAddr),
    /// `cluster.local_member` names no member (validation should catch it).
    #[error("cluster.local_member '{0}' is not in cluster.members")]
    NoLocalMember(String),
    /// A socket could not be set up.
    #[error("control.networks '{network}': cannot {what} {addr}: {source}")]
    Socket {
        /// Network name.
        network: String,
        /// What failed (`bind`, `join multicast group`).
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP listener could not bind.
    #[error("cannot listen on {addr} for the {what}: {reason}")]
    Http {
        /// `metrics exporter` or `admin API`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Monotonic and wall clocks of the running process.
#[derive(Debug, Clone, Copy)]
struct Clock;

impl Clock {
    /// `mono_ms` is `CLOCK_MONOTONIC` itself (not `origin`-relative): the
    /// lease end sent to the dataplane is on this clock.
    #[allow(clippy::unused_self)] // a value, so tests could pass another clock
    fn now(self) -> Now {
        Now {
            mono_ms: shoal_channel::monotonic_ns() / 1_000_000,
            wall_ms: unix_ns() / 1_000_000,
        }
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

enum Input {
    Datagram(Vec<u8>),
    Admin(Action, Sender<Result<Value, (u16, Vec<String>)>>),
}

/// The configured members as membership sees them.
pub fn member_infos(cfg: &Config) -> Vec<MemberInfo> {
    cfg.cluster
        .members
        .iter()
        .map(|m| MemberInfo {
            id: m.id,
            name: m.name.clone(),
            address: m.address,
            mac: m.mac.0,
            weight: m.weight,
        })
        .collect()
}

/// The cluster key the config asks for: required with more than one member
/// or any network; a single isolated member runs with a throwaway key.
pub fn cluster_key(cfg: &Config) -> Result<ClusterKey, StartError> {
    match &cfg.cluster.key_file {
        Some(path) => Ok(ClusterKey::load(path)?),
        None if cfg.cluster.members.len() > 1 || !cfg.control.networks.is_empty() => {
            Err(StartError::NoKey(cfg.cluster.members.len()))
        }
        None => Ok(ClusterKey::from_bytes(&unix_ns().to_be_bytes().repeat(4))
            .unwrap_or_else(|_| unreachable!("32 bytes"))),
    }
}

/// Everything the main loop owns.
struct Daemon {
    config_path: PathBuf,
    config: Arc<Config>,
    membership: Membership,
    load: LoadTracker,
    cpu: CpuLoad,
    link: DataplaneLink,
    networks: Vec<Network>,
    clock: Clock,
    shared: Arc<Shared>,
    /// The BGP announcer (`[control.bgp]`), none without it.
    bgp: Option<BgpHandle>,
}

impl Daemon {
    fn announce(&mut self, datagram: &[u8]) {
        for net in &mut self.networks {
            net.send_all(datagram);
        }
    }

    fn interval(&mut self) {
        let reads = self.link.read_stats();
        // The server runs a table only when every worker does (what the
        // peers wait for before claiming gains); it is up only while every
        // worker writes.
        let (applied, written_at) = crate::dataplane::server_applied(&reads);
        let counters: Vec<Option<WorkerCounters<'_>>> = reads
            .iter()
            .map(|r| {
                r.map(|s| WorkerCounters {
                    instance: s.instance,
                    names: &s.names,
                    values: &s.values,
                })
            })
            .collect();
        self.load
            .update_cpu(self.cpu.sample(shoal_channel::monotonic_ns()));
        let figures = self.load.update(&counters);
        self.membership.set_local_load(figures);
        self.membership.set_applied_digest(applied);
        let now = self.clock.now();
        self.watch_dataplane(written_at, now);
        self.membership.tick(now);
        let datagram = self.membership.announce_signed(now);
        self.announce(&datagram);
        self.link.push(&self.membership, now);
        self.update_bgp(now);
    }

    /// Hands the BGP announcer this member's state: in the membership, not
    /// drained, and how long the dataplane's lease has been over.
    fn update_bgp(&self, now: Now) {
        let Some(bgp) = &self.bgp else { return };
        let local = self.membership.local();
        let until = self.link.lease_until_ms();
        bgp.update(crate::bgp::MemberState {
            live: !self.membership.withdrawn(),
            draining: self
                .membership
                .settings()
                .get(&local)
                .is_some_and(|s| s.draining),
            lease_lapsed_ms: (until <= now.mono_ms).then(|| now.mono_ms - until),
            shutdown: false,
        });
    }

    /// A dataplane that stopped writing stats (gone, or hung) for two
    /// intervals gets no more lease renewals; once the last lease it was
    /// given is over this member withdraws from the membership, so the peers
    /// take its share right away instead of never (its control keeps
    /// announcing). It rejoins when the stats move again.
    fn watch_dataplane(&mut self, written_at_unix_ns: Option<u64>, now: Now) {
        let stale_after_ns = 2 * self.membership.timing().interval_ms.max(1) * 1_000_000;
        let up = written_at_unix_ns
            .is_some_and(|w| (now.wall_ms * 1_000_000).saturating_sub(w) < stale_after_ns);
        self.membership.set_dataplane_up(up);
        let withdrawn = self.membership.withdrawn();
        if up && withdrawn {
            self.membership.set_withdrawn(false);
            tracing::info!("the dataplane is back: rejoining the membership");
        } else if !up && !withdrawn && self.link.lease_until_ms() <= now.mono_ms {
            self.membership.set_withdrawn(true);
            tracing::warn!(
                "the dataplane stopped (no stats for two intervals) and its lease is over: \
                 leaving the membership until it is back, the others take its share",
            );
        }
    }

    fn act(&mut self, action: Action) -> Result<Value, (u16, Vec<String>)> {
        match action {
            Action::Set {
                member,
                weight,
                draining,
            } => {
                let s = self
                    .membership
                    .set_setting(member, weight, draining)
                    .ok_or((404, vec![format!("no member with id {member}")]))?;
                // Apply locally at once (new epoch, push) and tell the peers.
                let now = self.clock.now();
                self.membership.tick(now);
                let datagram = self.membership.announce_signed(now);
                self.announce(&datagram);
                self.link.push(&self.membership, now);
                Ok(json!({
                    "member": member,
                    "weight": s.weight,
                    "draining": s.draining,
                    "epoch": self.membership.epoch().number,
                }))
            }
            Action::Reload => self.reload(),
            Action::PinClients {
                prefix,
                len,
                member,
                secs,
            } => self.pin_clients(prefix, len, member, secs),
            Action::EvictFlows { client, port } => {
                let (workers, errors) = self
                    .link
                    .broadcast(&shoal_channel::Command::EvictFlows { client, port });
                if workers == 0 {
                    return Err((503, errors));
                }
                tracing::info!(
                    "evicting the flows of {client}{} on {workers} worker(s)",
                    if port == 0 {
                        String::new()
                    } else {
                        format!(":{port}")
                    }
                );
                Ok(json!({
                    "client": client.to_string(),
                    "port": port,
                    "workers_told": workers,
                    "errors": errors,
                }))
            }
        }
    }

    fn pin_clients(
        &mut self,
        prefix: std::net::Ipv4Addr,
        len: u8,
        member: u16,
        secs: u32,
    ) -> Result<Value, (u16, Vec<String>)> {
        let now = self.clock.now();
        let (workers, errors) = self.link.pin(prefix, len, member, secs, now);
        if workers == 0 {
            return Err((503, errors));
        }
        if member == 0 {
            tracing::info!("unpinning {prefix}/{len} on {workers} worker(s)");
        } else {
            tracing::info!(
                "pinning new connections of {prefix}/{len} to member {member} for {secs} s on \
                 {workers} worker(s)"
            );
        }
        Ok(json!({
            "prefix": format!("{prefix}/{len}"),
            "member": member,
            "seconds": secs,
            "workers_told": workers,
            "errors": errors,
        }))
    }

    fn reload(&mut self) -> Result<Value, (u16, Vec<String>)> {
        let new = shoal_config::load_file(&self.config_path).map_err(|e| {
            let lines = e.to_string().lines().map(str::to_owned).collect();
            (422, lines)
        })?;
        let plan = admin::plan_reload(&self.config, &new).map_err(|errs| (409, errs))?;
        // Re-read the token before applying anything: all or nothing.
        let token = match &new.control.admin_token_file {
            Some(p) => Some(AdminToken::load(p).map_err(|e| (422, vec![e.to_string()]))?),
            None => None,
        };
        self.membership.set_timing(plan.timing);
        self.load.set_alpha(plan.load_smoothing);
        if let Some(load) = &plan.load {
            self.load.set_weights(load.weights);
            self.cpu = CpuLoad::new(&new);
        }
        for &(id, w) in &plan.weights {
            self.membership.set_setting(id, Some(w), None);
        }
        if let Ok(mut p) = self.shared.policy.lock() {
            p.token = token;
        }
        self.config = Arc::new(new);
        if let Ok(mut c) = self.shared.config.lock() {
            *c = Arc::clone(&self.config);
        }
        // The dataplane re-reads its own file and applies the table if it
        // is the one checked here (same digest), each worker at a burst
        // boundary.
        let services = plan.services.map(|digest| {
            let (workers, errors) = self
                .link
                .broadcast(&shoal_channel::Command::ReloadServices { digest });
            for e in &errors {
                tracing::warn!("service reload not delivered: {e}");
            }
            json!({
                "digest": format!("{digest:#018x}"),
                "workers_told": workers,
                "errors": errors,
                "services": self.config.services.len(),
            })
        });
        tracing::info!(
            "config reloaded from {}: {} weight change(s){}",
            self.config_path.display(),
            plan.weights.len(),
            if services.is_some() {
                ", new service table sent to the dataplane"
            } else {
                ""
            }
        );
        Ok(json!({
            "reloaded": self.config_path.display().to_string(),
            "services_changed": services,
            "weights_changed": plan.weights.iter().map(|(id, w)| json!({"member": id, "weight": w})).collect::<Vec<_>>(),
            "interval_ms": plan.timing.interval_ms,
            "failure_timeout_ms": plan.timing.failure_timeout_ms,
            "load_smoothing": plan.load_smoothing,
            "load_changed": plan.load.is_some(),
        }))
    }

    fn publish(&mut self) {
        for e in self.membership.drain_events() {
            log_event(&self.membership, &e);
        }
        let now = self.clock.now();
        let mut s = Status::from_membership(
            &self.membership,
            &self.config.cluster.name,
            now,
            self.link.lease_until_ms(),
        );
        s.networks = self
            .networks
            .iter()
            .map(|n| NetworkStatus {
                name: n.name.clone(),
                sent: n.sent,
                send_errors: n.errors,
            })
            .collect();
        s.dataplane_pushes = self
            .link
            .pushes()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        s.workers = self.link.status(unix_ns());
        s.flow_table_capacity = u64::from(self.config.dataplane.flow_table.capacity);
        s.pins = self.link.pins(now.mono_ms);
        s.load_detail = self.cpu.detail(self.load.local());
        s.bgp = self.bgp.as_ref().map(BgpHandle::status);
        if let Ok(mut slot) = self.shared.status.lock() {
            *slot = Arc::new(s);
        }
    }
}

/// Runs `shoal-control` with the config at `config_path` until `stop` is set.
pub fn run(config_path: &Path, stop: &Arc<AtomicBool>) -> Result<(), StartError> {
    let config = shoal_config::load_file(config_path)?;
    let local = config
        .cluster
        .members
        .iter()
        .find(|m| m.name == config.cluster.local_member)
        .ok_or_else(|| StartError::NoLocalMember(config.cluster.local_member.clone()))?
        .id;
    let key = cluster_key(&config)?;
    let token = match &config.control.admin_token_file {
        Some(p) => Some(AdminToken::load(p)?),
        None => None,
    };
    let admin_addr = config.control.admin_listen;
    if token.is_none() && !is_loopback(admin_addr) {
        return Err(StartError::OpenAdmin(admin_addr));
    }
    let (networks, receivers) = open_networks(&config)?;
    let metrics_server = http_server("metrics exporter", config.control.metrics_listen)?;
    let admin_server = http_server("admin API", admin_addr)?;

    let clock = Clock;
    let now = clock.now();
    let timing = Timing {
        interval_ms: config.control.interval_ms,
        failure_timeout_ms: config.control.failure_timeout_ms,
    };
    let mut membership =
        Membership::new(local, member_infos(&config), timing, key, now.wall_ms, now);
    membership.set_isolation(match config.control.isolation {
        shoal_config::Isolation::Majority => Isolation::Majority,
        shoal_config::Isolation::ServeAlone => Isolation::ServeAlone,
    });
    let workers = config.dataplane.cores.len();
    let capacity = u64::from(config.dataplane.flow_table.capacity) * workers as u64;
    let shared = Arc::new(Shared {
        status: Mutex::new(Arc::new(Status::default())),
        config: Mutex::new(Arc::new(config.clone())),
        policy: Mutex::new(Policy {
            token,
            guard_reads: !is_loopback(admin_addr),
        }),
    });
    let (tx, rx) = mpsc::channel();
    for sock in receivers {
        spawn_receiver(sock, tx.clone(), Arc::clone(stop));
    }
    spawn_metrics(Arc::clone(&metrics_server), Arc::clone(&shared));
    spawn_admin(Arc::clone(&admin_server), Arc::clone(&shared), tx.clone());
    drop(tx);

    tracing::info!(
        "member {} (id {local}) of cluster '{}' starting: incarnation {}, {} network(s), \
         metrics on {}, admin on {}{}, dataplane files in {}",
        config.cluster.local_member,
        config.cluster.name,
        membership.incarnation(),
        networks.len(),
        config.control.metrics_listen,
        admin_addr,
        if locked(&shared.policy).token.is_some() {
            " (token required for changes)"
        } else {
            " (no token file: changes open to local users)"
        },
        config.control.shm_path.display()
    );
    let mut link = DataplaneLink::new(&config.control.shm_path, workers);
    resume_from_dataplane(&mut membership, &mut link, now);
    let mut load = LoadTracker::new(config.control.load_smoothing, workers, capacity);
    load.set_weights(config.control.load.weights);
    let mut d = Daemon {
        config_path: config_path.to_owned(),
        link,
        load,
        cpu: CpuLoad::new(&config),
        config: Arc::new(config),
        membership,
        networks,
        clock,
        shared,
        bgp: None,
    };
    d.bgp = BgpHandle::start(d.config.control.bgp.as_ref());
    main_loop(&mut d, &rx, stop);
    if let Some(mut bgp) = d.bgp.take() {
        // Withdraw first, then stay a member (serving what still arrives)
        // while the routers move the VIP away.
        let grace = bgp.shutdown();
        let end = d.clock.now().mono_ms + grace.as_millis() as u64;
        while d.clock.now().mono_ms < end {
            d.interval();
            d.publish();
            thread::sleep(Duration::from_millis(
                d.membership.timing().interval_ms.max(1),
            ));
        }
    }
    let datagram = d.membership.leave_signed(d.clock.now());
    d.announce(&datagram);
    tracing::info!("signal received: announced leaving to the peers; exiting");
    metrics_server.unblock();
    admin_server.unblock();
    Ok(())
}

/// A restart while the dataplane still holds the previous control's lease:
/// resume from the dataplane's table instead of settling for a failure
/// timeout, so clients and peers do not notice (`Membership::resume`).
fn resume_from_dataplane(m: &mut Membership, link: &mut DataplaneLink, now: Now) {
    let reads = link.read_stats();
    let Some(snap) = reads.first().copied().flatten() else {
        return;
    };
    let (Some(1), Some(until_ns), Some(mask)) = (
        snap.value("lease_held"),
        snap.value("lease_until_ns"),
        snap.value("applied_alive_mask"),
    ) else {
        return;
    };
    let until_ms = until_ns / 1_000_000;
    if until_ms <= now.mono_ms {
        return;
    }
    let alive: Vec<u16> = m
        .members()
        .iter()
        .enumerate()
        .filter(|&(i, _)| i < 64 && mask & (1 << i) != 0)
        .map(|(_, info)| info.id)
        .collect();
    m.resume(&alive, now);
    link.resume_lease(until_ms);
    tracing::info!(
        "resuming from the running dataplane: its lease runs {} ms more; members alive in its table: {alive:?}",
        until_ms - now.mono_ms
    );
}

fn main_loop(d: &mut Daemon, rx: &Receiver<Input>, stop: &AtomicBool) {
    let mut next = d.clock.now().mono_ms;
    while !stop.load(Ordering::Relaxed) {
        let now = d.clock.now();
        if now.mono_ms >= next {
            d.interval();
            let interval = d.membership.timing().interval_ms.max(1);
            next += interval;
            if next <= now.mono_ms {
                next = now.mono_ms + interval;
            }
            d.publish();
            continue;
        }
        // Wake at the next interval, or within 100 ms to notice a signal.
        let wait = (next - now.mono_ms).min(100);
        match rx.recv_timeout(Duration::from_millis(wait)) {
            Ok(Input::Datagram(bytes)) => {
                let now = d.clock.now();
                let _ = d.membership.receive(&bytes, now);
                d.publish();
            }
            Ok(Input::Admin(action, reply)) => {
                let result = d.act(action);
                d.publish();
                let _ = reply.send(result);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(wait)),
        }
    }
}

/// The loopback address `shoalctl` uses when none is given.
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9465);
