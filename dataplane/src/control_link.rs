//! A worker's end of the control channel (`shoal-channel`): it creates the
//! worker's command ring and stats segment in `control.shm_path`, applies
//! the commands `shoal-control` sends (membership epochs with weights, drain,
//! liveness and load) by swapping in new [`Tables`] between bursts, and
//! publishes the worker's counters for control's exporter and load reports.
//!
//! Polled from the worker loop about once a millisecond (one `pread`), stats
//! written a few times a second (one `pwrite`): never per packet. When
//! control is not running the ring stays empty: the dataplane keeps its
//! last tables for established flows, but its lease (`Command::Lease`, see
//! `claim.rs`) runs out and it claims no new connection until a control
//! renews it; a restarted control resends its full state.
//!
//! Commands are applied in ring order: a membership followed by the lease
//! that confirms it is applied in that order. Consecutive membership, drain,
//! weight and load commands are coalesced into one table build.

use std::path::Path;

use shoal_channel::{
    command_ring_path, stats_path, ChannelError, Command, CommandRing, StatsWriter,
};

use crate::counters::{Counter, Layer};
use crate::flow::FlowState;
use crate::pipeline::{MemberEntry, Pipeline, Tables};
use crate::wire::{self, EthernetAddress};

/// Commands in the ring before control gets `Full`.
const RING_CAPACITY: usize = 64;

/// What applying the pending commands produced, in ring order.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// A new membership to build tables from: epoch, table digest (see
    /// `Command::Membership`), members.
    Members(u64, u64, Vec<MemberEntry>),
    /// A lease renewal: end (`CLOCK_MONOTONIC` ns, 0 = revoked) and the
    /// digest of the newest epoch all live members confirmed (0 = none).
    Lease {
        /// End of the lease, `CLOCK_MONOTONIC` nanoseconds.
        until_ns: u64,
        /// Digest of the newest confirmed epoch.
        confirmed_digest: u64,
    },
    /// Control asked the dataplane to stop.
    Shutdown,
    /// Re-read the config file's service table, if its digest is this one.
    ReloadServices(u64),
    /// Remove the flows of a client (port 0: every port).
    EvictFlows {
        /// The client.
        client: std::net::Ipv4Addr,
        /// Its port, 0 for all.
        port: u16,
    },
    /// Pin a client prefix's new connections to a member (0: unpin).
    PinClients {
        /// The prefix.
        prefix: std::net::Ipv4Addr,
        /// Its length.
        len: u8,
        /// The member.
        member: u16,
        /// For how long, seconds.
        secs: u32,
    },
}

/// Digests of tables changed by a `Drain` or `Weight` command (not part of
/// any epoch control announced): never confirmed, replaced by the next
/// membership.
const LOCAL_CHANGE: u64 = 0xffff_0000_0000_0000;

/// One worker's channel to control (every worker has its own: control
/// sends each command to every worker, and each worker reports the epoch it
/// runs).
#[derive(Debug)]
pub struct ControlLink {
    ring: CommandRing,
    stats: StatsWriter,
    values: Vec<u64>,
    /// The names of the per-request-class values at the end of the
    /// segment, as it was created.
    class_names: Vec<String>,
    worker: usize,
    workers: usize,
    members: Vec<MemberEntry>,
    epoch: u64,
    digest: u64,
    local_changes: u64,
    /// The lease end last received (`CLOCK_MONOTONIC` ns).
    lease_until_ns: u64,
    /// Polls that received frames.
    pub polls_busy: u64,
    /// Polls that received nothing.
    pub polls_idle: u64,
    /// Nanoseconds spent in polls that found packets (the worker's work,
    /// without its idle polling).
    pub busy_ns: u64,
    /// Commands that could not be decoded or applied.
    pub bad_commands: u64,
    /// Digest of control's newest table the pipeline holds (set by the
    /// worker loop once the tables are built and swapped in), published as
    /// `applied_digest`: what the peers wait for before they claim space
    /// this member gave up. A table the overrides file narrows still holds
    /// control's table in its claim set, so it reports control's digest.
    pub applied_digest: u64,
    /// Digest of the service table the worker runs
    /// (`shoal_config::services_digest`), published as `services_digest`.
    pub services_digest: u64,
}

/// Bit `i` set: the `i`-th member by ascending id (at most 64) is alive in
/// control's newest table. A restarted control resumes from it while the
/// lease still runs (`shoal-control`'s `Membership::resume`).
pub fn alive_mask(members: &[MemberEntry]) -> u64 {
    let mut ids: Vec<(u16, bool)> = members.iter().map(|m| (m.id, m.alive)).collect();
    ids.sort_unstable();
    ids.iter()
        .take(64)
        .enumerate()
        .filter(|(_, (_, alive))| *alive)
        .fold(0, |mask, (i, _)| mask | (1 << i))
}

/// The names of the values in the stats segment of a worker among
/// `workers`, in order: every counter, the flow table by state, poll counts,
/// channel errors, the worker's index and the number of workers, then every
/// malformed cell as `malformed_<layer>_<reason>`, then per other worker `w`
/// the frames passed to it (`steered_to_worker_<w>`) and dropped because
/// its ring was full (`steer_drops_to_worker_<w>`).
pub fn stat_names(workers: usize) -> Vec<String> {
    let mut names: Vec<String> = Counter::ALL.iter().map(|c| c.name().to_owned()).collect();
    for s in [
        "flows_live",
        "flows_syn",
        "flows_established",
        "flows_closing",
        "flows_tombstone",
        // Live flows a full table evicted, by state (counters).
        "flows_evicted_syn",
        "flows_evicted_established",
        "flows_evicted_closing",
        "flows_evicted_tombstone",
    ] {
        names.push(s.to_owned());
    }
    for s in [
        "polls_busy",
        "polls_idle",
        "busy_ns",
        "channel_bad_commands",
        "lease_until_ns",
        "lease_held",
        "epochs_pending",
        "applied_epoch",
        "applied_digest",
        "applied_alive_mask",
        "worker_index",
        "workers",
        "services_digest",
        "pins_live",
    ] {
        names.push(s.to_owned());
    }
    for layer in Layer::ALL {
        for err in wire::Error::ALL {
            names.push(format!("malformed_{}_{}", layer.name(), err.as_str()));
        }
    }
    if workers > 1 {
        for w in 0..workers {
            names.push(format!("steered_to_worker_{w}"));
            names.push(format!("steer_drops_to_worker_{w}"));
        }
    }
    names
}

impl ControlLink {
    /// Creates the ring and the stats segment of worker `worker` of
    /// `workers` under `dir` (created if missing), starting from `tables`'
    /// membership.
    pub fn open(
        dir: &Path,
        worker: usize,
        workers: usize,
        tables: &Tables,
    ) -> Result<ControlLink, ChannelError> {
        std::fs::create_dir_all(dir).map_err(|source| ChannelError::Io {
            path: dir.to_path_buf(),
            action: "create the channel directory",
            source,
        })?;
        let mut names = stat_names(workers);
        let class_names = crate::pipeline::class_stat_names(tables);
        names.extend(class_names.iter().cloned());
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let stats = StatsWriter::create(stats_path(dir, worker), &refs)?;
        let ring = CommandRing::create(command_ring_path(dir, worker), RING_CAPACITY)?;
        Ok(ControlLink {
            ring,
            stats,
            values: vec![0; names.len()],
            worker,
            workers,
            class_names,
            members: tables.members.clone(),
            epoch: tables.epoch,
            digest: tables.digest,
            local_changes: 0,
            lease_until_ns: 0,
            polls_busy: 0,
            polls_idle: 0,
            busy_ns: 0,
            bad_commands: 0,
            applied_digest: tables.digest,
            services_digest: 0,
        })
    }

    /// Applies every pending command; returns what changed, in ring order
    /// (empty when nothing did).
    pub fn apply_commands(&mut self) -> Vec<Applied> {
        let mut out = Vec::new();
        let mut changed = false;
        loop {
            match self.ring.try_recv() {
                Ok(None) => break,
                Ok(Some(Command::Shutdown)) => {
                    self.flush(&mut out, &mut changed);
                    out.push(Applied::Shutdown);
                    return out;
                }
                Ok(Some(Command::Lease {
                    until_ns,
                    confirmed_epoch: _,
                    confirmed_digest,
                })) => {
                    self.flush(&mut out, &mut changed);
                    self.lease_until_ns = until_ns;
                    out.push(Applied::Lease {
                        until_ns,
                        confirmed_digest,
                    });
                }
                Ok(Some(Command::ReloadServices { digest })) => {
                    self.flush(&mut out, &mut changed);
                    out.push(Applied::ReloadServices(digest));
                }
                Ok(Some(Command::EvictFlows { client, port })) => {
                    self.flush(&mut out, &mut changed);
                    out.push(Applied::EvictFlows { client, port });
                }
                Ok(Some(Command::PinClients {
                    prefix,
                    len,
                    member,
                    secs,
                })) => {
                    self.flush(&mut out, &mut changed);
                    out.push(Applied::PinClients {
                        prefix,
                        len,
                        member,
                        secs,
                    });
                }
                Ok(Some(cmd)) => changed |= self.apply(cmd),
                Err(e) => {
                    self.bad_commands += 1;
                    if self.bad_commands == 1 {
                        tracing::warn!("bad command from control (counted): {e}");
                    }
                    break;
                }
            }
        }
        self.flush(&mut out, &mut changed);
        out
    }

    fn flush(&self, out: &mut Vec<Applied>, changed: &mut bool) {
        if std::mem::take(changed) {
            out.push(Applied::Members(
                self.epoch,
                self.digest,
                self.members.clone(),
            ));
        }
    }

    fn apply(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Membership {
                epoch,
                digest,
                members,
            } => {
                self.epoch = epoch;
                self.digest = digest;
                for m in &mut self.members {
                    // Configured members control does not list are not alive.
                    m.alive = false;
                }
                for s in members {
                    match self.members.iter_mut().find(|m| m.id == s.id) {
                        Some(m) => {
                            m.addr = s.addr;
                            m.mac = EthernetAddress(s.mac);
                            m.weight = s.weight;
                            m.alive = s.alive;
                            m.draining = s.draining;
                            m.load = f64::from(s.load);
                        }
                        None => self.bad_commands += 1,
                    }
                }
                true
            }
            Command::Drain { member, draining } => {
                self.update(member, |m| m.draining = draining) && self.local_change()
            }
            Command::Weight { member, weight } => {
                self.update(member, |m| m.weight = weight) && self.local_change()
            }
            Command::Load { member, load } => self.update(member, |m| m.load = f64::from(load)),
            Command::Shutdown
            | Command::Lease { .. }
            | Command::ReloadServices { .. }
            | Command::EvictFlows { .. }
            | Command::PinClients { .. } => false,
        }
    }

    /// A drain or weight change outside an epoch: a digest no confirmation
    /// will name, so the tables before it stay pending.
    fn local_change(&mut self) -> bool {
        self.local_changes += 1;
        self.digest = LOCAL_CHANGE | self.local_changes;
        true
    }

    /// The epoch and digest of the last membership applied.
    pub fn applied(&self) -> (u64, u64) {
        (self.epoch, self.digest)
    }

    fn update(&mut self, id: u16, f: impl FnOnce(&mut MemberEntry)) -> bool {
        if let Some(m) = self.members.iter_mut().find(|m| m.id == id) {
            f(m);
            true
        } else {
            self.bad_commands += 1;
            false
        }
    }

    /// Publishes the pipeline's counters and the steering counts per
    /// destination worker (`sent`, `dropped`, empty with one worker) in one
    /// positioned write; `now` is the pipeline's clock (for `lease_held`).
    pub fn write_stats(
        &mut self,
        pipeline: &Pipeline,
        steered: (&[u64], &[u64]),
        now: shoal_wire::time::Instant,
    ) {
        let c = pipeline.counters();
        let flows = pipeline.flows();
        let by_state = flows.count_by_state();
        let mut i = 0;
        for &counter in Counter::ALL {
            self.values[i] = c.get(counter);
            i += 1;
        }
        let gauges = [
            flows.len() as u64,
            by_state[FlowState::Syn as usize] as u64,
            by_state[FlowState::Established as usize] as u64,
            by_state[FlowState::Closing as usize] as u64,
            by_state[FlowState::Tombstone as usize] as u64,
            flows.stats().evicted[FlowState::Syn as usize],
            flows.stats().evicted[FlowState::Established as usize],
            flows.stats().evicted[FlowState::Closing as usize],
            flows.stats().evicted[FlowState::Tombstone as usize],
            self.polls_busy,
            self.polls_idle,
            self.busy_ns,
            self.bad_commands,
            self.lease_until_ns,
            u64::from(pipeline.claims().lease_held(now)),
            pipeline.claims().pending() as u64 + u64::from(pipeline.claims().overflowed()),
            pipeline.tables().epoch,
            self.applied_digest,
            alive_mask(&self.members),
            self.worker as u64,
            self.workers as u64,
            self.services_digest,
            pipeline.pins_live(now) as u64,
        ];
        for g in gauges {
            self.values[i] = g;
            i += 1;
        }
        for layer in Layer::ALL {
            for err in wire::Error::ALL {
                self.values[i] = c.get_malformed(layer, err);
                i += 1;
            }
        }
        if self.workers > 1 {
            let (sent, dropped) = steered;
            for w in 0..self.workers {
                self.values[i] = sent.get(w).copied().unwrap_or(0);
                self.values[i + 1] = dropped.get(w).copied().unwrap_or(0);
                i += 2;
            }
        }
        // Per request class (`class/<service>/<class>/<what>`): by name, so
        // that classes a reload added, removed or reordered never take
        // another's place (classes added after the start are published
        // from the next restart, when the segment is created with them).
        let first = i;
        for slot in &mut self.values[first..first + self.class_names.len()] {
            *slot = 0;
        }
        let (names, values) = (&self.class_names, &mut self.values);
        pipeline.for_each_class_value(|name, v| {
            if let Some(k) = names.iter().position(|n| n == name) {
                values[first + k] = v;
            }
        });
        if let Err(e) = self.stats.write(&self.values) {
            self.bad_commands += 1;
            if self.bad_commands == 1 {
                tracing::warn!("cannot write stats segment: {e}");
            }
        }
    }
}
