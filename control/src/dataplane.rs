//! The link to the local dataplane: its command rings (control → workers)
//! and stats segments (workers → control), through `shoal-channel`.
//!
//! File layout, in the directory `control.shm_path`: worker `w`'s command
//! ring and stats segment are at `shoal_channel::command_ring_path(dir, w)`
//! and `shoal_channel::stats_path(dir, w)` (`commands-<w>`, `stats-<w>`);
//! the dataplane creates both when it starts, one pair per
//! `dataplane.cores` entry. Stats segments are reopened every interval, so
//! a restarted dataplane's new files are picked up.
//!
//! This module owns *when* to push: the full [`Command::Membership`] goes to
//! a worker whenever what it last received differs from the current epoch
//! (new epoch number or table, which includes weight and drain changes),
//! whenever the ring belongs to a new dataplane instance (the dataplane
//! restarted) and after this process starts; in between, loads travel as
//! [`Command::Load`]. After them, every push sends [`Command::Lease`]: the
//! lease end [`Membership::lease`] allows (a `CLOCK_MONOTONIC` deadline:
//! the daemon's monotonic clock is that clock) and the newest confirmed
//! epoch; without a lease the last end is repeated (it runs out by
//! itself), and a member that lost the majority revokes it at once. A
//! missing dataplane is logged once per outage, counted, and retried every
//! interval. It knows nothing about sockets or the membership protocol.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use shoal_channel::{
    command_ring_path, stats_path, Command, CommandSender, MemberState, SendError, StatsReader,
    StatsSnapshot,
};

use crate::membership::{Membership, NoLease, Now};
use crate::status::WorkerStatus;

/// Push results, the `result` label of `shoal_control_dataplane_pushes_total`.
pub const PUSH_RESULTS: [&str; 5] = ["error", "full", "ok", "stale", "unavailable"];

/// The member table of a membership command for the current epoch, with
/// each member's last known load.
pub fn member_states(m: &Membership) -> Vec<MemberState> {
    let epoch = m.epoch();
    m.members()
        .iter()
        .map(|info| {
            let row = epoch.table.iter().find(|e| e.id == info.id);
            MemberState {
                id: info.id,
                addr: info.address,
                mac: info.mac,
                weight: row.map_or(info.weight, |e| e.weight),
                alive: row.is_some_and(|e| e.alive),
                draining: row.is_some_and(|e| e.draining),
                load: sanitize(m.load_of(info.id).load),
            }
        })
        .collect()
}

/// The [`Command::Lease`] to send at `now`, given the lease end sent last
/// (`last_until_ms`, updated): a new end when `m` holds a lease, 0 (revoked)
/// when it lost the majority, otherwise the last end again (it runs out by
/// itself); always with the newest confirmed epoch.
pub fn lease_command(m: &Membership, now: Now, last_until_ms: &mut u64) -> Command {
    match m.lease(now) {
        Ok(until) => *last_until_ms = until,
        Err(NoLease::NoQuorum { .. }) => *last_until_ms = 0,
        Err(_) => {}
    }
    let (confirmed_epoch, confirmed_digest) = m.confirmed().unwrap_or((0, 0));
    Command::Lease {
        until_ns: last_until_ms.saturating_mul(1_000_000),
        confirmed_epoch,
        confirmed_digest,
    }
}

fn sanitize(load: f32) -> f32 {
    if load.is_finite() && load >= 0.0 {
        load
    } else {
        0.0
    }
}

#[derive(Default)]
struct Worker {
    ring: Option<CommandSender>,
    /// (ring instance, epoch number, epoch digest) of the last full push.
    pushed: Option<(u64, u64, u64)>,
    /// Loads last sent to this worker, by member id.
    loads: BTreeMap<u16, f32>,
    last: Option<StatsSnapshot>,
    ring_down_logged: bool,
    stats_down_logged: bool,
}

/// What a server's workers run, from their stats segments (index-aligned,
/// `None` where unreadable): the table digest **every** worker has applied
/// (0 while they differ or one is unreadable: a server is on an epoch only
/// when all its workers are, and 0 names no table, so no peer confirms on
/// its account), and the oldest time a worker wrote its stats (`None` if one
/// never did: a stuck worker makes the whole dataplane look down).
pub fn server_applied(reads: &[Option<&StatsSnapshot>]) -> (u64, Option<u64>) {
    let mut digest = None;
    let mut oldest: Option<u64> = None;
    for r in reads {
        let Some(s) = r else {
            return (0, None);
        };
        let d = s.value("applied_digest").unwrap_or(0);
        if *digest.get_or_insert(d) != d {
            digest = Some(0);
        }
        oldest = Some(oldest.map_or(s.written_at_unix_ns, |o| o.min(s.written_at_unix_ns)));
    }
    (digest.unwrap_or(0), oldest)
}

/// The command rings and stats segments of every worker.
pub struct DataplaneLink {
    dir: PathBuf,
    workers: Vec<Worker>,
    pushes: BTreeMap<&'static str, u64>,
    /// The lease end last sent (monotonic ms; 0 = none or revoked).
    lease_until_ms: u64,
    /// Operators' pins in force, sent again to a restarted dataplane.
    pins: Vec<Pin>,
}

/// A pin as control remembers it (`shoalctl flows pin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pin {
    prefix: std::net::Ipv4Addr,
    len: u8,
    member: u16,
    /// Monotonic ms.
    until_ms: u64,
}

impl Pin {
    /// The command that installs the rest of this pin at `now_ms` (`None`
    /// once it has ended).
    fn command(&self, now_ms: u64) -> Option<Command> {
        let left = self.until_ms.checked_sub(now_ms).filter(|&l| l > 0)?;
        Some(Command::PinClients {
            prefix: self.prefix,
            len: self.len,
            member: self.member,
            secs: u32::try_from(left.div_ceil(1000)).unwrap_or(u32::MAX),
        })
    }
}

impl std::fmt::Debug for DataplaneLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataplaneLink")
            .field("dir", &self.dir)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl DataplaneLink {
    /// A link to `workers` workers whose files are in `dir`. Nothing is
    /// opened yet.
    pub fn new(dir: &Path, workers: usize) -> DataplaneLink {
        DataplaneLink {
            dir: dir.to_owned(),
            workers: (0..workers).map(|_| Worker::default()).collect(),
            pushes: PUSH_RESULTS.iter().map(|&r| (r, 0)).collect(),
            lease_until_ms: 0,
            pins: Vec::new(),
        }
    }

    /// The pins in force at `now_ms` (monotonic), for `/status`.
    pub fn pins(&self, now_ms: u64) -> Vec<crate::status::PinStatus> {
        self.pins
            .iter()
            .filter(|p| p.until_ms > now_ms)
            .map(|p| crate::status::PinStatus {
                prefix: format!("{}/{}", p.prefix, p.len),
                member: p.member,
                seconds_left: (p.until_ms - now_ms).div_ceil(1000),
            })
            .collect()
    }

    /// Pins `prefix`/`len` to `member` for `secs` seconds from `now` on
    /// every worker (`member = 0`: unpins), and remembers it so that a
    /// dataplane that restarts before it ends gets it again with the rest
    /// of its time. Returns what [`DataplaneLink::broadcast`] returns.
    pub fn pin(
        &mut self,
        prefix: std::net::Ipv4Addr,
        len: u8,
        member: u16,
        secs: u32,
        now: Now,
    ) -> (usize, Vec<String>) {
        self.pins
            .retain(|p| p.until_ms > now.mono_ms && (p.prefix, p.len) != (prefix, len));
        if member != 0 {
            self.pins.push(Pin {
                prefix,
                len,
                member,
                until_ms: now.mono_ms.saturating_add(u64::from(secs) * 1000),
            });
        }
        self.broadcast(&Command::PinClients {
            prefix,
            len,
            member,
            secs,
        })
    }

    /// Push counts by result.
    pub fn pushes(&self) -> &BTreeMap<&'static str, u64> {
        &self.pushes
    }

    /// Reads every worker's stats segment (opening it when needed); the
    /// result is index-aligned with the workers, `None` where unreadable.
    pub fn read_stats(&mut self) -> Vec<Option<&StatsSnapshot>> {
        for (w, worker) in self.workers.iter_mut().enumerate() {
            let path = stats_path(&self.dir, w);
            match StatsReader::open(&path).and_then(|mut r| r.read()) {
                Ok(snap) => {
                    if worker.stats_down_logged {
                        tracing::info!("worker {w}: stats segment {} is back", path.display());
                    }
                    worker.stats_down_logged = false;
                    worker.last = Some(snap);
                }
                Err(e) => {
                    if !worker.stats_down_logged {
                        tracing::warn!(
                            "worker {w}: cannot read stats ({e}); is shoal-dataplane running? \
                             retrying every interval"
                        );
                        worker.stats_down_logged = true;
                    }
                    worker.last = None;
                }
            }
        }
        self.workers.iter().map(|w| w.last.as_ref()).collect()
    }

    /// Takes over the lease end a previous control sent (a restart that
    /// resumes): repeated until this incarnation may renew it.
    pub fn resume_lease(&mut self, until_ms: u64) {
        self.lease_until_ms = until_ms;
    }

    /// The lease end last sent to the workers (monotonic ms, 0 = none).
    pub fn lease_until_ms(&self) -> u64 {
        self.lease_until_ms
    }

    /// Brings every worker up to date with `m`'s epoch, loads and lease.
    /// Does nothing before the first epoch (start-up settling): the
    /// dataplane keeps whatever it had (its lease runs out by itself).
    pub fn push(&mut self, m: &Membership, now: Now) {
        let epoch = m.epoch();
        if epoch.number == 0 {
            return;
        }
        let states = member_states(m);
        let full = Command::Membership {
            epoch: epoch.number,
            digest: epoch.digest,
            members: states.clone(),
        };
        let lease = lease_command(m, now, &mut self.lease_until_ms);
        self.pins.retain(|p| p.until_ms > now.mono_ms);
        let pins: Vec<Command> = self
            .pins
            .iter()
            .filter_map(|p| p.command(now.mono_ms))
            .collect();
        for w in 0..self.workers.len() {
            self.push_worker(
                w,
                &full,
                (epoch.number, epoch.digest),
                &states,
                &lease,
                &pins,
            );
        }
    }

    fn count(&mut self, result: &'static str) {
        *self.pushes.entry(result).or_insert(0) += 1;
    }

    fn push_worker(
        &mut self,
        w: usize,
        full: &Command,
        (number, digest): (u64, u64),
        states: &[MemberState],
        lease: &Command,
        pins: &[Command],
    ) {
        // Up to two rounds: a stale ring is reopened and the full state resent at once.
        for _ in 0..2 {
            if !self.open_ring(w) {
                self.count("unavailable");
                return;
            }
            let worker = &mut self.workers[w];
            let Some(ring) = worker.ring.as_mut() else {
                return;
            };
            let instance = ring.attached_instance();
            // One `stat` per interval notices a restarted dataplane even when
            // there is nothing to send.
            let result = if ring.is_stale().unwrap_or(true) {
                Err(SendError::Stale)
            } else if worker.pushed == Some((instance, number, digest)) {
                send_loads(ring, &mut worker.loads, states).and_then(|()| ring.send(lease))
            } else {
                // A dataplane instance not pushed to before (started or
                // restarted since) also gets the pins in force.
                let new_instance = worker.pushed.map(|p| p.0) != Some(instance);
                match ring.send(full) {
                    Ok(()) => {
                        worker.pushed = Some((instance, number, digest));
                        worker.loads = states.iter().map(|s| (s.id, s.load)).collect();
                        ring.send(lease).and_then(|()| {
                            let again = if new_instance { pins } else { &[] };
                            again.iter().try_for_each(|p| ring.send(p))
                        })
                    }
                    Err(e) => Err(e),
                }
            };
            match result {
                Ok(()) => {
                    self.count("ok");
                    return;
                }
                Err(SendError::Full) => {
                    // Retried next interval; the full push stays pending.
                    self.count("full");
                    return;
                }
                Err(SendError::Stale) => {
                    tracing::warn!(
                        "worker {w}: the dataplane restarted (ring instance {instance} is stale); \
                         reopening and resending the membership"
                    );
                    self.count("stale");
                    let worker = &mut self.workers[w];
                    worker.ring = None;
                    worker.pushed = None;
                }
                Err(e) => {
                    tracing::warn!("worker {w}: command ring error ({e}); reopening");
                    self.count("error");
                    let worker = &mut self.workers[w];
                    worker.ring = None;
                    worker.pushed = None;
                    return;
                }
            }
        }
    }

    fn open_ring(&mut self, w: usize) -> bool {
        let worker = &mut self.workers[w];
        if worker.ring.is_some() {
            return true;
        }
        let path = command_ring_path(&self.dir, w);
        match CommandSender::open(&path) {
            Ok(ring) => {
                tracing::info!(
                    "worker {w}: command ring {} open (dataplane instance {})",
                    path.display(),
                    ring.attached_instance()
                );
                worker.ring = Some(ring);
                worker.ring_down_logged = false;
                worker.pushed = None;
                true
            }
            Err(e) => {
                if !worker.ring_down_logged {
                    tracing::warn!(
                        "worker {w}: cannot open the command ring ({e}); is shoal-dataplane \
                         running? retrying every interval"
                    );
                    worker.ring_down_logged = true;
                }
                false
            }
        }
    }

    /// Sends `command` once to every worker (an operator's action: a
    /// service reload, a flow eviction); returns how many workers took it
    /// and, for the others, why not.
    pub fn broadcast(&mut self, command: &Command) -> (usize, Vec<String>) {
        let mut sent = 0;
        let mut errors = Vec::new();
        for w in 0..self.workers.len() {
            if !self.open_ring(w) {
                errors.push(format!(
                    "worker {w}: command ring not open (is shoal-dataplane running?)"
                ));
                continue;
            }
            let Some(ring) = self.workers[w].ring.as_mut() else {
                continue;
            };
            match ring.send(command) {
                Ok(()) => sent += 1,
                Err(e) => errors.push(format!("worker {w}: {e}")),
            }
        }
        (sent, errors)
    }

    /// Per-worker status for `/status` and `/metrics`; `now_unix_ns` dates
    /// the stats segments.
    pub fn status(&self, now_unix_ns: u64) -> Vec<WorkerStatus> {
        self.workers
            .iter()
            .enumerate()
            .map(|(w, worker)| WorkerStatus {
                worker: w,
                ring_open: worker.ring.is_some(),
                ring_instance: worker.ring.as_ref().map(CommandSender::attached_instance),
                pushed_epoch: worker.pushed.map(|(_, e, _)| e),
                stats_open: worker.last.is_some(),
                stats_age_seconds: worker
                    .last
                    .as_ref()
                    .map(|s| now_unix_ns.saturating_sub(s.written_at_unix_ns) as f64 / 1e9),
                applied_epoch: worker.last.as_ref().and_then(|s| s.value("applied_epoch")),
                flows_live: worker.last.as_ref().and_then(|s| s.value("flows_live")),
                flows_open: worker
                    .last
                    .as_ref()
                    .and_then(|s| Some(s.value("flows_syn")? + s.value("flows_established")?)),
                rx_packets: worker.last.as_ref().map(|s| {
                    s.value("wire_rx_packets").unwrap_or(0)
                        + s.value("kernel_rx_packets").unwrap_or(0)
                }),
                steered: worker.last.as_ref().map(|s| {
                    [
                        s.value("steered_out_packets").unwrap_or(0),
                        s.value("steered_in_packets").unwrap_or(0),
                        s.value("drop_steer_ring_full").unwrap_or(0),
                    ]
                }),
                busy_fraction: worker.last.as_ref().map(|s| {
                    let busy = s.value("polls_busy").unwrap_or(0) as f64;
                    let idle = s.value("polls_idle").unwrap_or(0) as f64;
                    busy / (busy + idle).max(1.0)
                }),
                names: worker
                    .last
                    .as_ref()
                    .map(|s| s.names.clone())
                    .unwrap_or_default(),
                values: worker
                    .last
                    .as_ref()
                    .map(|s| s.values.clone())
                    .unwrap_or_default(),
            })
            .collect()
    }
}

/// Sends `Load` for every member whose load differs from what the worker has.
fn send_loads(
    ring: &mut CommandSender,
    sent: &mut BTreeMap<u16, f32>,
    states: &[MemberState],
) -> Result<(), SendError> {
    for s in states {
        if sent.get(&s.id) != Some(&s.load) {
            ring.send(&Command::Load {
                member: s.id,
                load: s.load,
            })?;
            sent.insert(s.id, s.load);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(digest: u64, written: u64) -> StatsSnapshot {
        StatsSnapshot {
            instance: 1,
            names: vec!["applied_digest".to_owned()],
            values: vec![digest],
            written_at_unix_ns: written,
        }
    }

    #[test]
    fn a_server_is_on_a_table_only_when_every_worker_is() {
        let (a, b, c) = (snap(7, 100), snap(7, 90), snap(8, 95));
        assert_eq!(server_applied(&[Some(&a)]), (7, Some(100)));
        assert_eq!(server_applied(&[Some(&a), Some(&b)]), (7, Some(90)));
        // One worker still on the old table: no table yet.
        assert_eq!(server_applied(&[Some(&a), Some(&c)]), (0, Some(95)));
        assert_eq!(
            server_applied(&[Some(&c), Some(&a), Some(&b)]),
            (0, Some(90))
        );
        // A worker that cannot be read: neither a table nor a write time.
        assert_eq!(server_applied(&[Some(&a), None]), (0, None));
        assert_eq!(server_applied(&[]), (0, None));
    }
}
