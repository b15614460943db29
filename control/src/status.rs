//! The published state of a running `shoal-control`: one immutable
//! [`Status`] snapshot, rebuilt by the main loop after every change and read
//! by the admin API (`/status`, `/members`, `/ring`) and the exporter
//! (`/metrics`). This module owns the snapshot's shape (it is the JSON of
//! `/status`) and nothing else.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::bgp::BgpStatus;
use crate::load::LocalLoad;
use crate::membership::{Membership, NoLease, Now, TableEntry};
use crate::message::LoadFigures;

/// One member as `/members` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberStatus {
    /// Id.
    pub id: u16,
    /// Name.
    pub name: String,
    /// Own address.
    pub address: Ipv4Addr,
    /// This is the member answering.
    pub local: bool,
    /// Alive in the current view.
    pub alive: bool,
    /// Weight in force.
    pub weight: u32,
    /// Drained.
    pub draining: bool,
    /// Its load as last reported.
    pub load: LoadFigures,
    /// Its incarnation (0 = never heard).
    pub incarnation: u64,
    /// Milliseconds since its last accepted announcement (none = never, or local).
    pub last_heard_ms_ago: Option<u64>,
    /// The epoch it announced.
    pub epoch: u64,
}

/// One network's send figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkStatus {
    /// Network name.
    pub name: String,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams the socket refused.
    pub send_errors: u64,
}

/// One dataplane worker as control sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct WorkerStatus {
    /// Worker index.
    pub worker: usize,
    /// Its command ring is open.
    pub ring_open: bool,
    /// The ring's dataplane instance.
    pub ring_instance: Option<u64>,
    /// The epoch last pushed to it in full.
    pub pushed_epoch: Option<u64>,
    /// Its stats segment is readable.
    pub stats_open: bool,
    /// Seconds since the segment was written (none when unreadable).
    pub stats_age_seconds: Option<f64>,
    /// The epoch the worker runs (none when unreadable).
    pub applied_epoch: Option<u64>,
    /// Flows in its table.
    pub flows_live: Option<u64>,
    /// Of those, connections not closing yet (SYN and established flows):
    /// what `shoalctl drain --wait` waits for.
    pub flows_open: Option<u64>,
    /// Frames it processed from the wire and from the kernel.
    pub rx_packets: Option<u64>,
    /// Frames it passed to other workers / received from them (flow
    /// steering) and dropped because a ring was full.
    pub steered: Option<[u64; 3]>,
    /// Share of its polls that found frames since it started.
    pub busy_fraction: Option<f64>,
    /// Counter names from the segment.
    #[serde(skip)]
    pub names: Vec<String>,
    /// Counter values, index-aligned with `names`.
    #[serde(skip)]
    pub values: Vec<u64>,
}

/// This member's lease (what fences its dataplane's new connections).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct LeaseStatus {
    /// Control may renew the lease now (settled, majority, every live peer
    /// acknowledged a recent announcement).
    pub held: bool,
    /// Milliseconds left of the lease last sent to the dataplane (0: over).
    pub remaining_ms: u64,
    /// Why it is not held (none when held).
    pub refused: Option<NoLease>,
}

/// Everything the admin API and the exporter show.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Status {
    /// Cluster name.
    pub cluster: String,
    /// Local member name.
    pub member: String,
    /// Local member id.
    pub id: u16,
    /// Local incarnation.
    pub incarnation: u64,
    /// Start-up settling is over.
    pub settled: bool,
    /// Every live peer announced our (epoch, digest).
    pub converged: bool,
    /// Every live peer's dataplane runs our epoch's table: the dataplane
    /// claims the space it gained (before: only what it owns in every
    /// epoch since the last confirmed one).
    pub epoch_confirmed: bool,
    /// The newest confirmed epoch number (0: none yet).
    pub confirmed_epoch: u64,
    /// Digest of the table the local dataplane runs, hex.
    pub applied_digest: String,
    /// The lease.
    pub lease: LeaseStatus,
    /// Epoch number.
    pub epoch: u64,
    /// Epoch digest, hex.
    pub epoch_digest: String,
    /// Epoch changes since start.
    pub epoch_changes: u64,
    /// The epoch table.
    pub table: Vec<TableEntry>,
    /// Every configured member.
    pub members: Vec<MemberStatus>,
    /// Own load figures.
    pub load: LoadFigures,
    /// What the own load is made of beyond the announced figures.
    pub load_detail: LoadDetail,
    /// Received announcements by outcome.
    pub messages_received: BTreeMap<String, u64>,
    /// Sent announcements per network.
    pub networks: Vec<NetworkStatus>,
    /// Dataplane pushes by result (`ok`, `full`, `stale`, `unavailable`, `error`).
    pub dataplane_pushes: BTreeMap<String, u64>,
    /// The dataplane's workers.
    pub workers: Vec<WorkerStatus>,
    /// Flows one worker's table holds (`dataplane.flow_table.capacity`).
    pub flow_table_capacity: u64,
    /// Operators' pins in force on this member (`shoalctl flows pin`).
    pub pins: Vec<PinStatus>,
    /// The BGP announcer (`[control.bgp]`; none without it).
    pub bgp: Option<BgpStatus>,
}

/// The own load's CPU figures and weights (`/status`'s `load_detail`).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct LoadDetail {
    /// The smoothed figures and weights.
    #[serde(flatten)]
    pub figures: LocalLoad,
    /// CPUs the application's share is taken of (none without pid files).
    pub app_cpus: Option<f64>,
    /// `control.load.app_pid_files`.
    pub app_pid_files: Vec<String>,
    /// Why the host CPU figure is absent or 0 (none when measured).
    pub host_cpu_note: Option<String>,
    /// Why the application figure is absent (none when measured).
    pub app_note: Option<String>,
    /// The last interval's application CPU time, a share of its CPUs
    /// (unsmoothed; the figure is this plus `app_last_wait`).
    pub app_last_cpu: Option<f64>,
    /// The last interval's time the application's threads waited for a
    /// CPU, a share of its CPUs (unsmoothed).
    pub app_last_wait: Option<f64>,
    /// Intervals without an application figure, by reason (`pid_file`,
    /// `process_gone`).
    pub app_unavailable: BTreeMap<String, u64>,
}

/// One pin in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinStatus {
    /// `ADDR/LEN`.
    pub prefix: String,
    /// The member its new connections go to.
    pub member: u16,
    /// Seconds left (rounded up).
    pub seconds_left: u64,
}

impl Status {
    /// Fills the membership part of a snapshot from `m` at `now`;
    /// `lease_until_ms` is the lease end last sent to the dataplane.
    pub fn from_membership(m: &Membership, cluster: &str, now: Now, lease_until_ms: u64) -> Status {
        let now_ms = now.mono_ms;
        let refused = m.lease(now).err();
        let local = m.local();
        let epoch = m.epoch();
        let live = m.live();
        let members = m
            .members()
            .iter()
            .map(|info| {
                let peer = m.peers().get(&info.id);
                let setting = m.settings().get(&info.id);
                MemberStatus {
                    id: info.id,
                    name: info.name.clone(),
                    address: info.address,
                    local: info.id == local,
                    alive: live.contains(&info.id),
                    weight: setting.map_or(info.weight, |s| s.weight),
                    draining: setting.is_some_and(|s| s.draining),
                    load: m.load_of(info.id),
                    incarnation: if info.id == local {
                        m.incarnation()
                    } else {
                        peer.map_or(0, |p| p.incarnation)
                    },
                    last_heard_ms_ago: peer.map(|p| now_ms.saturating_sub(p.last_heard_mono_ms)),
                    epoch: if info.id == local {
                        epoch.number
                    } else {
                        peer.map_or(0, |p| p.epoch)
                    },
                }
            })
            .collect();
        let member = m
            .members()
            .iter()
            .find(|i| i.id == local)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        Status {
            cluster: cluster.to_owned(),
            member,
            id: local,
            incarnation: m.incarnation(),
            settled: m.settled(),
            converged: m.converged(),
            epoch_confirmed: m.epoch_confirmed(),
            confirmed_epoch: m.confirmed().map_or(0, |(n, _)| n),
            applied_digest: format!("{:016x}", m.applied_digest()),
            lease: LeaseStatus {
                held: refused.is_none(),
                remaining_ms: lease_until_ms.saturating_sub(now_ms),
                refused,
            },
            epoch: epoch.number,
            epoch_digest: format!("{:016x}", epoch.digest),
            epoch_changes: m.epoch_changes(),
            table: epoch.table.clone(),
            members,
            load: m.local_load(),
            load_detail: LoadDetail::default(),
            messages_received: m
                .received()
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            networks: Vec::new(),
            dataplane_pushes: BTreeMap::new(),
            workers: Vec::new(),
            flow_table_capacity: 0,
            pins: Vec::new(),
            bgp: None,
        }
    }
}

/// Worker 0 as the tests of the exporter and of `shoalctl top` see it: ring
/// and stats open, epoch 7 pushed, counter `names[i]` at value `i + 1`.
#[cfg(test)]
pub(crate) fn test_worker(names: &[&str]) -> WorkerStatus {
    WorkerStatus {
        worker: 0,
        ring_open: true,
        ring_instance: Some(9),
        pushed_epoch: Some(7),
        stats_open: true,
        stats_age_seconds: Some(0.5),
        applied_epoch: Some(7),
        flows_live: None,
        flows_open: None,
        rx_packets: None,
        steered: None,
        busy_fraction: None,
        names: names.iter().map(|s| (*s).to_owned()).collect(),
        values: (1..=names.len() as u64).collect(),
    }
}
