//! Membership: who is alive, the numbered epoch all live members adopt,
//! operator settings (weight, drain) and the peers' load.
//!
//! This module owns the state machine of the DPR report's three processes — the
//! *broadcaster* ([`Membership::announce`]), the *receiver*
//! ([`Membership::receive`]) and the *cleaner* (in [`Membership::tick`]) —
//! plus replay protection and epochs. It is pure: time is passed in as
//! [`Now`], datagrams are passed in and out as bytes; sockets, threads and
//! the dataplane live in `daemon.rs`.
//!
//! **Epochs.** The epoch *table* is, for every configured member, (alive,
//! weight, draining); its *digest* is a SHA-256 prefix of the table. Each
//! member computes its table from what it hears directly. When its table
//! changes it takes `number = max(own number, highest number announced by a
//! live peer) + 1`; when the table is unchanged but a live peer announces a
//! higher number it adopts that number. Once the set of running members and
//! the settings stop changing, every live member computes the same table
//! within `failure_timeout_ms + interval_ms` (a silent member is removed by
//! every cleaner by then, a new one is heard by everyone within one
//! interval), nobody bumps any more, and the maximum number reaches every
//! member within one further interval: all live members hold the same
//! (number, table) at most `failure_timeout_ms + 2 x interval_ms` (plus
//! network delay) after the last change. This assumes every live member
//! hears every other (they announce to each other directly); see
//! ARCHITECTURE.md, "Control: membership".
//!
//! **Replay protection.** Each announcement carries (incarnation, sequence,
//! timestamp). Per sender, (incarnation, sequence) must grow strictly; the
//! same pair again is a `duplicate` (the same message over a second
//! network), a smaller one `replayed`; a timestamp more than
//! [`TIMESTAMP_WINDOW_MS`] away from the local clock is
//! `timestamp_out_of_window`. A sender silent for longer than the window
//! plus the failure timeout is forgotten (any message it sent is outside
//! the window by then), so a restart with a clock that went backwards
//! rejoins as well.
//!
//! **Settings** (weight, drain) are last-writer-wins registers carried in
//! every announcement, so a drain made on any member reaches all of them
//! and survives the restart of the drained member. A change's version is
//! `max(previous + 1, wall clock ms) << 16 | member id`: a later change
//! wins even when the control that makes it restarted since the earlier
//! one (and never heard its version).
//!
//! **Leases** fence the dataplane (its half is `shoal_select::claim`).
//! Every announcement lists, for each member the sender hears, the last
//! (incarnation, sequence) it accepted from it: an acknowledgement. This
//! member remembers when it sent each of its own announcements, so an
//! acknowledgement of sequence `s` by peer `p` proves that `p` heard it at
//! or after `sent(s)`, and `p`'s cleaner cannot remove it before
//! `sent(s) + failure_timeout` (on `p`'s clock). The lease ends at
//! `min over live peers p of sent(last acked by p) + failure_timeout -
//! margin` ([`lease_margin_ms`]: two intervals for a stalled dataplane and
//! a late burst, plus `2 x` [`CLOCK_RATE_PPM`] of the timeout for clocks
//! that run at different rates): before any peer that heard it can have
//! removed it. A live peer that has acknowledged nothing yet (just joined)
//! blocks renewal until it does. With [`Isolation::Majority`] (the default)
//! the lease also needs this member to hear a strict majority of the
//! configured members, so of two sides of a partition at most one claims
//! new connections; [`Isolation::ServeAlone`] lets a lone survivor go on
//! serving at the price of overlap in a partition (see ARCHITECTURE.md).
//! A freshly started member holds no lease before it has settled.
//!
//! **Confirmation.** Every announcement also carries the digest of the
//! table the sender's *dataplane* has applied (read from its stats
//! segment). The current epoch is *confirmed* once every live peer's
//! dataplane runs it; the dataplane then forgets older epochs and claims
//! the space this member gained. Until then it claims only keys it owns in
//! every epoch since the last confirmed one (gap, never overlap).
//!
//! **A confirmation holds only within one unbroken lease.** A peer removes
//! this member only after its lease is over, and may then confirm tables
//! without it and forget the one confirmed here. So when a tick finds no
//! lease (found at any tick so far) covering `now`, the confirmation is
//! forgotten, and a new one counts only peers' acknowledgements of
//! announcements sent after that tick (old datagrams read after a
//! `SIGSTOP` confirm nothing, as they renew nothing). The dataplane's half:
//! a renewal that finds its lease lapsed (or a fresh dataplane's first
//! one) claims nothing until the next confirmation
//! (`shoal_select::claim`). A late joiner, a dataplane restarted after its
//! member was removed, a control stopped or cut off past its lease: each
//! waits for a confirmation of a table the others run now.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::message::{decode, Announcement, DecodeError, Heard, LoadFigures, Setting};
use shoal_key::ClusterKey;

/// Largest accepted difference between a sender's timestamp and the local
/// wall clock. Members must keep their clocks this close (NTP).
pub const TIMESTAMP_WINDOW_MS: u64 = 10_000;

/// Worst rate difference assumed between two members' monotonic clocks
/// (parts per million). Server crystals are within ±100 ppm; ten times
/// that is the margin.
pub const CLOCK_RATE_PPM: u64 = 1_000;

/// How long before the peers' earliest possible removal of this member
/// its lease ends: two announcement intervals (a dataplane descheduled
/// between reading its clock and answering a SYN, a command read a poll
/// late) plus twice the clock-rate error over the failure timeout, plus one
/// millisecond of rounding. `validate()` requires `failure_timeout_ms >=
/// 4 x interval_ms`, which leaves at least two intervals of lease.
pub fn lease_margin_ms(t: Timing) -> u64 {
    2 * t.interval_ms + (2 * CLOCK_RATE_PPM * t.failure_timeout_ms).div_ceil(1_000_000) + 1
}

/// What a member cut off from most of the cluster does with new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Claim only while hearing a strict majority of the configured
    /// members (self included): safe in any partition; a lone survivor of
    /// a three-member cluster stops taking new connections.
    #[default]
    Majority,
    /// Claim whenever every member heard acknowledges: a lone survivor
    /// serves everything, and so would both sides of a partition.
    ServeAlone,
}

/// Why this member holds no lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NoLease {
    /// The local dataplane is gone: this member left the membership.
    Withdrawn,
    /// The local dataplane stopped writing its stats (gone or hung): not
    /// renewed; withdrawn once the last lease is over.
    DataplaneDown,
    /// Still settling after start (listening for the failure timeout).
    Settling,
    /// Hears `live` of `configured` members: not a strict majority.
    NoQuorum {
        /// Members heard, self included.
        live: usize,
        /// Configured members.
        configured: usize,
    },
    /// A live peer has not acknowledged any recent announcement.
    Unacknowledged {
        /// The peer.
        member: u16,
    },
    /// The acknowledgements are too old: the lease would already be over.
    Expired,
}

/// The current time, as two clocks: monotonic for timers, wall for
/// timestamps on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic milliseconds (any origin).
    pub mono_ms: u64,
    /// Unix time in milliseconds.
    pub wall_ms: u64,
}

/// A configured member as membership needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberInfo {
    /// Cluster-wide id.
    pub id: u16,
    /// Name (`srv1`).
    pub name: String,
    /// Own address.
    pub address: Ipv4Addr,
    /// Own MAC.
    pub mac: [u8; 6],
    /// Weight from the config.
    pub weight: u32,
}

/// Timers of the protocol, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Interval between announcements.
    pub interval_ms: u64,
    /// Silence after which a member is removed.
    pub failure_timeout_ms: u64,
}

/// One member's row of an epoch table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TableEntry {
    /// Member id.
    pub id: u16,
    /// Heard within the failure timeout (or this member itself).
    pub alive: bool,
    /// Weight in force.
    pub weight: u32,
    /// Drained: takes no new connections.
    pub draining: bool,
}

/// A numbered membership epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Epoch {
    /// The epoch number (0 = none yet: still settling after start).
    pub number: u64,
    /// Every configured member, ascending id.
    pub table: Vec<TableEntry>,
    /// SHA-256 prefix of the table (equal digests = equal tables).
    pub digest: u64,
}

/// Digest of an epoch table.
pub fn table_digest(table: &[TableEntry]) -> u64 {
    let mut h = Sha256::new();
    for e in table {
        h.update(e.id.to_be_bytes());
        h.update([u8::from(e.alive), u8::from(e.draining)]);
        h.update(e.weight.to_be_bytes());
    }
    let d = h.finalize();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Why a member left the live set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftReason {
    /// Nothing heard for this many milliseconds (the cleaner).
    Silent(u64),
    /// It announced that it is shutting down.
    Leaving,
}

/// Something that happened, for logs (one line each) and the dataplane push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A member was heard and is alive (again).
    Joined {
        /// The member.
        member: u16,
        /// Its incarnation.
        incarnation: u64,
    },
    /// A live member restarted (its incarnation changed without a gap).
    Restarted {
        /// The member.
        member: u16,
        /// Its new incarnation.
        incarnation: u64,
    },
    /// A member was removed from the live set.
    Left {
        /// The member.
        member: u16,
        /// Why.
        reason: LeftReason,
    },
    /// The epoch number changed (and with it possibly the table).
    EpochChanged {
        /// The previous number.
        previous: u64,
        /// The new number.
        epoch: u64,
        /// Whether the table changed (false: a higher number adopted).
        table_changed: bool,
    },
    /// A member's settings changed (operator or a peer's newer register).
    SettingChanged(Setting),
}

/// Why a received datagram changed nothing. [`Reject::label`] is the
/// `outcome` label of `shoal_control_messages_received_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// Framing or tag failure.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The sender id is not in the config.
    #[error("announcement from member id {0}, which is not in cluster.members")]
    UnknownMember(u16),
    /// Our own announcement (multicast loop).
    #[error("own announcement")]
    Own,
    /// The sender's clock is too far from ours, or the message is old.
    #[error("timestamp {skew_ms} ms away from the local clock (window {TIMESTAMP_WINDOW_MS} ms; check NTP)")]
    TimestampOutOfWindow {
        /// Signed difference, sender minus local.
        skew_ms: i64,
    },
    /// (incarnation, sequence) not above the last accepted one.
    #[error("replayed announcement (incarnation {incarnation}, sequence {sequence})")]
    Replayed {
        /// Incarnation in the message.
        incarnation: u64,
        /// Sequence in the message.
        sequence: u64,
    },
    /// Exactly the last accepted (incarnation, sequence): the same message
    /// over another network.
    #[error("duplicate announcement")]
    Duplicate,
}

impl Reject {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Reject::Decode(d) => d.label(),
            Reject::UnknownMember(_) => "unknown_member",
            Reject::Own => "own",
            Reject::TimestampOutOfWindow { .. } => "timestamp_out_of_window",
            Reject::Replayed { .. } => "replayed",
            Reject::Duplicate => "duplicate",
        }
    }
}

/// Every `outcome` label of received messages, in output order.
pub const OUTCOMES: [&str; 8] = [
    "accepted",
    "bad_mac",
    "duplicate",
    "malformed",
    "own",
    "replayed",
    "timestamp_out_of_window",
    "unknown_member",
];

/// What this member knows about a peer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peer {
    /// Currently in the live set.
    pub alive: bool,
    /// Incarnation of the last accepted message (0 = forgotten / never).
    pub incarnation: u64,
    /// Sequence of the last accepted message.
    pub sequence: u64,
    /// Monotonic time of the last accepted message.
    #[serde(skip)]
    pub last_heard_mono_ms: u64,
    /// Its load as it reported it.
    pub load: LoadFigures,
    /// Its epoch number.
    pub epoch: u64,
    /// Its epoch digest.
    pub digest: u64,
    /// The members it hears.
    pub live: Vec<u16>,
    /// Digest of the table its dataplane runs.
    pub applied_digest: u64,
    /// Monotonic time at which this member sent the newest of its own
    /// announcements (this incarnation) the peer acknowledged.
    #[serde(skip)]
    pub acked_sent_mono_ms: Option<u64>,
    /// The sequence of this member's (this incarnation's) announcement its
    /// last accepted announcement acknowledged (0: none).
    #[serde(skip)]
    pub acked_seq: u64,
}

impl Peer {
    /// A peer nothing has been accepted from yet.
    fn unheard(now: Now) -> Peer {
        Peer {
            alive: false,
            incarnation: 0,
            sequence: 0,
            last_heard_mono_ms: now.mono_ms,
            load: LoadFigures::default(),
            epoch: 0,
            digest: 0,
            live: Vec::new(),
            applied_digest: 0,
            acked_sent_mono_ms: None,
            acked_seq: 0,
        }
    }
}

/// The membership state of one member.
#[derive(Debug)]
pub struct Membership {
    local: u16,
    members: Vec<MemberInfo>,
    timing: Timing,
    key: ClusterKey,
    incarnation: u64,
    sequence: u64,
    started_mono_ms: u64,
    settled: bool,
    peers: BTreeMap<u16, Peer>,
    settings: BTreeMap<u16, Setting>,
    local_load: LoadFigures,
    epoch: Epoch,
    epoch_changes: u64,
    received: BTreeMap<&'static str, u64>,
    events: Vec<Event>,
    isolation: Isolation,
    /// (sequence, monotonic ms) of recent own announcements, oldest first.
    sent: VecDeque<(u64, u64)>,
    /// Digest of the table the local dataplane runs (from its stats).
    applied_digest: u64,
    /// The newest epoch (number, digest) every live peer's dataplane runs.
    confirmed: Option<(u64, u64)>,
    /// First own sequence number a peer's acknowledgement must reach for
    /// its "applied" to confirm: announced with the current applied digest,
    /// and since the lease was last unbroken.
    confirm_since_seq: u64,
    /// The latest lease end [`Membership::tick`] found (monotonic ms; 0 =
    /// none): while `now` is below it no peer can have removed this member.
    lease_until_ms: u64,
    /// The local dataplane is gone: announce `leaving` and take no share
    /// until it is back.
    withdrawn: bool,
    /// The local dataplane writes its stats: the lease may be renewed.
    dataplane_up: bool,
    /// Latest wall clock seen (start, ticks, receptions), unix ms: the
    /// floor of new settings versions.
    wall_ms: u64,
}

impl Membership {
    /// A member `local` of `members` (any order), started at `now`;
    /// `incarnation` must grow across restarts (the start time in unix ms).
    pub fn new(
        local: u16,
        members: Vec<MemberInfo>,
        timing: Timing,
        key: ClusterKey,
        incarnation: u64,
        now: Now,
    ) -> Membership {
        let mut members = members;
        members.sort_by_key(|m| m.id);
        let settings = members
            .iter()
            .map(|m| {
                (
                    m.id,
                    Setting {
                        member: m.id,
                        weight: m.weight,
                        draining: false,
                        version: 0,
                    },
                )
            })
            .collect();
        Membership {
            local,
            members,
            timing,
            key,
            incarnation,
            sequence: 0,
            started_mono_ms: now.mono_ms,
            settled: false,
            peers: BTreeMap::new(),
            settings,
            local_load: LoadFigures::default(),
            epoch: Epoch {
                number: 0,
                table: Vec::new(),
                digest: 0,
            },
            epoch_changes: 0,
            received: OUTCOMES.iter().map(|&o| (o, 0)).collect(),
            events: Vec::new(),
            isolation: Isolation::default(),
            sent: VecDeque::new(),
            applied_digest: 0,
            confirmed: None,
            confirm_since_seq: 0,
            lease_until_ms: 0,
            withdrawn: false,
            dataplane_up: true,
            wall_ms: now.wall_ms,
        }
    }

    /// Whether the local dataplane is alive (writing its stats): no lease
    /// renewal while it is not (default: alive).
    pub fn set_dataplane_up(&mut self, up: bool) {
        self.dataplane_up = up;
    }

    /// Withdraws this member from the membership (its dataplane stopped:
    /// every announcement says `leaving`, so the peers take its share at
    /// once, and its own table has it dead) or brings it back. The daemon
    /// withdraws only once the last lease it gave the dataplane is over, so
    /// a dataplane that was merely stalled cannot wake up and claim what
    /// the peers now claim.
    pub fn set_withdrawn(&mut self, withdrawn: bool) {
        self.withdrawn = withdrawn;
    }

    /// Whether this member is withdrawn (its dataplane is gone).
    pub fn withdrawn(&self) -> bool {
        self.withdrawn
    }

    /// A restarted control resuming while its dataplane still holds a lease
    /// from the previous incarnation: `alive` (the members alive in the
    /// dataplane's newest table) are taken as heard now, and settling is
    /// over at once, so the epoch and the lease continue without the
    /// failure-timeout pause and a short restart goes unnoticed.
    ///
    /// Safe because the old lease proves no peer removed this member yet,
    /// every table pushed only adds to the dataplane's claim set (which
    /// claims the intersection), confirmation still waits for every live
    /// peer's dataplane, and the lease is renewed only on acknowledgements
    /// of this incarnation's own announcements. A member taken as alive
    /// that is in fact gone is removed by the cleaner one failure timeout
    /// later, as if it had died now.
    pub fn resume(&mut self, alive: &[u16], now: Now) {
        for &id in alive {
            if id == self.local || !self.members.iter().any(|m| m.id == id) {
                continue;
            }
            let peer = self.peers.entry(id).or_insert_with(|| Peer::unheard(now));
            peer.alive = true;
            peer.last_heard_mono_ms = now.mono_ms;
        }
        self.settled = true;
    }

    /// Sets what a member cut off from the majority does (default
    /// [`Isolation::Majority`]).
    pub fn set_isolation(&mut self, isolation: Isolation) {
        self.isolation = isolation;
    }

    /// The isolation policy.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Records the digest of the table the local dataplane has applied
    /// (announced to the peers for confirmation).
    pub fn set_applied_digest(&mut self, digest: u64) {
        if digest != self.applied_digest {
            // Only announcements from now on say so: a peer's confirmation
            // counts once it acknowledges one of them.
            self.confirm_since_seq = self.sequence + 1;
        }
        self.applied_digest = digest;
    }

    /// The digest of the table the local dataplane runs, as last recorded.
    pub fn applied_digest(&self) -> u64 {
        self.applied_digest
    }

    /// The newest epoch (number, digest) every live peer's dataplane runs,
    /// updated by [`Membership::tick`].
    pub fn confirmed(&self) -> Option<(u64, u64)> {
        self.confirmed
    }

    /// Whether the current epoch is confirmed.
    pub fn epoch_confirmed(&self) -> bool {
        self.confirmed == Some((self.epoch.number, self.epoch.digest))
    }

    /// The end of this member's lease (monotonic ms), or why it holds none
    /// at `now` (see the module documentation).
    pub fn lease(&self, now: Now) -> Result<u64, NoLease> {
        if self.withdrawn {
            return Err(NoLease::Withdrawn);
        }
        if !self.dataplane_up {
            return Err(NoLease::DataplaneDown);
        }
        if !self.settled {
            return Err(NoLease::Settling);
        }
        let live = self.live().len();
        let configured = self.members.len();
        if self.isolation == Isolation::Majority && live * 2 <= configured {
            return Err(NoLease::NoQuorum { live, configured });
        }
        let span = self
            .timing
            .failure_timeout_ms
            .saturating_sub(lease_margin_ms(self.timing));
        let mut earliest = now.mono_ms;
        for (&id, p) in self.peers.iter().filter(|(_, p)| p.alive) {
            match p.acked_sent_mono_ms {
                Some(t) => earliest = earliest.min(t),
                None => return Err(NoLease::Unacknowledged { member: id }),
            }
        }
        let until = earliest.saturating_add(span);
        if until <= now.mono_ms {
            return Err(NoLease::Expired);
        }
        Ok(until)
    }

    /// This member's id.
    pub fn local(&self) -> u16 {
        self.local
    }

    /// This member's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The configured members, ascending id.
    pub fn members(&self) -> &[MemberInfo] {
        &self.members
    }

    /// The timers.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Replaces the timers (config reload).
    pub fn set_timing(&mut self, timing: Timing) {
        self.timing = timing;
    }

    /// The current epoch.
    pub fn epoch(&self) -> &Epoch {
        &self.epoch
    }

    /// Epoch changes since start.
    pub fn epoch_changes(&self) -> u64 {
        self.epoch_changes
    }

    /// Whether the start-up settling period is over (epochs are computed).
    pub fn settled(&self) -> bool {
        self.settled
    }

    /// The peers heard so far.
    pub fn peers(&self) -> &BTreeMap<u16, Peer> {
        &self.peers
    }

    /// Every member's settings.
    pub fn settings(&self) -> &BTreeMap<u16, Setting> {
        &self.settings
    }

    /// Received-message counts by outcome label.
    pub fn received(&self) -> &BTreeMap<&'static str, u64> {
        &self.received
    }

    /// This member's own load figures.
    pub fn local_load(&self) -> LoadFigures {
        self.local_load
    }

    /// Sets this member's load figures (announced from the next message).
    pub fn set_local_load(&mut self, load: LoadFigures) {
        self.local_load = load;
    }

    /// A member's last known load (own figures for the local member).
    pub fn load_of(&self, id: u16) -> LoadFigures {
        if id == self.local {
            self.local_load
        } else {
            self.peers.get(&id).map(|p| p.load).unwrap_or_default()
        }
    }

    /// Whether every live peer announced exactly our (epoch, digest).
    pub fn converged(&self) -> bool {
        self.settled
            && self
                .peers
                .values()
                .filter(|p| p.alive)
                .all(|p| p.epoch == self.epoch.number && p.digest == self.epoch.digest)
    }

    /// Takes the events since the last call, oldest first.
    pub fn drain_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The member ids currently alive (this one included), ascending.
    pub fn live(&self) -> Vec<u16> {
        self.members
            .iter()
            .map(|m| m.id)
            .filter(|&id| id == self.local || self.peers.get(&id).is_some_and(|p| p.alive))
            .collect()
    }

    /// The next announcement (advances the sequence number).
    pub fn announce(&mut self, now: Now) -> Announcement {
        self.make_announcement(now, false)
    }

    /// The signed datagram of the next announcement.
    pub fn announce_signed(&mut self, now: Now) -> Vec<u8> {
        let a = self.announce(now);
        a.emit_signed(&self.key)
    }

    /// The signed "leaving" announcement sent on shutdown.
    pub fn leave_signed(&mut self, now: Now) -> Vec<u8> {
        let a = self.make_announcement(now, true);
        a.emit_signed(&self.key)
    }

    fn make_announcement(&mut self, now: Now, leaving: bool) -> Announcement {
        self.sequence += 1;
        self.sent.push_back((self.sequence, now.mono_ms));
        // Acknowledgements older than the failure timeout give no lease:
        // keep a timeout's worth of sends (at least 16).
        let keep = (self.timing.failure_timeout_ms / self.timing.interval_ms.max(1)) as usize * 2;
        while self.sent.len() > keep.max(16) {
            self.sent.pop_front();
        }
        let mut heard = vec![Heard {
            member: self.local,
            incarnation: self.incarnation,
            sequence: self.sequence,
        }];
        heard.extend(
            self.peers
                .iter()
                .filter(|(_, p)| p.alive)
                .map(|(&member, p)| Heard {
                    member,
                    incarnation: p.incarnation,
                    sequence: p.sequence,
                }),
        );
        heard.sort_by_key(|h| h.member);
        Announcement {
            sender: self.local,
            leaving: leaving || self.withdrawn,
            incarnation: self.incarnation,
            sequence: self.sequence,
            timestamp_ms: now.wall_ms,
            epoch: self.epoch.number,
            digest: self.epoch.digest,
            applied_digest: self.applied_digest,
            load: self.local_load,
            heard,
            settings: self.settings.values().copied().collect(),
        }
    }

    /// The receiver: checks and applies one datagram. Rejected datagrams
    /// change nothing but their outcome counter.
    pub fn receive(&mut self, datagram: &[u8], now: Now) -> Result<u16, Reject> {
        self.wall_ms = self.wall_ms.max(now.wall_ms);
        let result = self.check(datagram, now);
        match &result {
            Ok(a) => {
                *self.received.entry("accepted").or_insert(0) += 1;
                let sender = a.sender;
                self.apply(a, now);
                Ok(sender)
            }
            Err(r) => {
                *self.received.entry(r.label()).or_insert(0) += 1;
                Err(*r)
            }
        }
    }

    fn check(&self, datagram: &[u8], now: Now) -> Result<Announcement, Reject> {
        let a = decode(datagram, &self.key)?;
        if a.sender == self.local {
            return Err(Reject::Own);
        }
        if !self.members.iter().any(|m| m.id == a.sender) {
            return Err(Reject::UnknownMember(a.sender));
        }
        let skew = a.timestamp_ms as i128 - now.wall_ms as i128;
        if skew.unsigned_abs() > u128::from(TIMESTAMP_WINDOW_MS) {
            return Err(Reject::TimestampOutOfWindow {
                skew_ms: skew.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            });
        }
        if let Some(p) = self.peers.get(&a.sender) {
            let got = (a.incarnation, a.sequence);
            let last = (p.incarnation, p.sequence);
            if got == last {
                return Err(Reject::Duplicate);
            }
            if got < last {
                return Err(Reject::Replayed {
                    incarnation: a.incarnation,
                    sequence: a.sequence,
                });
            }
        }
        Ok(a)
    }

    fn apply(&mut self, a: &Announcement, now: Now) {
        let peer = self
            .peers
            .entry(a.sender)
            .or_insert_with(|| Peer::unheard(now));
        let restarted = peer.alive && peer.incarnation != 0 && peer.incarnation != a.incarnation;
        let was_alive = peer.alive;
        peer.incarnation = a.incarnation;
        peer.sequence = a.sequence;
        peer.last_heard_mono_ms = now.mono_ms;
        peer.load = a.load;
        peer.epoch = a.epoch;
        peer.digest = a.digest;
        peer.applied_digest = a.applied_digest;
        peer.live = a.heard.iter().map(|h| h.member).collect();
        let local = self.local;
        let incarnation = self.incarnation;
        let ack = a
            .heard
            .iter()
            .find(|h| h.member == local && h.incarnation == incarnation)
            .map(|h| h.sequence);
        peer.acked_seq = ack.unwrap_or(0);
        let acked = ack
            .and_then(|seq| self.sent.iter().find(|(s, _)| *s == seq))
            .map(|&(_, at)| at);
        if let Some(at) = acked {
            peer.acked_sent_mono_ms = Some(peer.acked_sent_mono_ms.map_or(at, |t| t.max(at)));
        }
        if a.leaving {
            peer.alive = false;
            peer.acked_sent_mono_ms = None;
            if was_alive {
                self.events.push(Event::Left {
                    member: a.sender,
                    reason: LeftReason::Leaving,
                });
            }
        } else if !was_alive {
            peer.alive = true;
            self.events.push(Event::Joined {
                member: a.sender,
                incarnation: a.incarnation,
            });
        } else if restarted {
            self.events.push(Event::Restarted {
                member: a.sender,
                incarnation: a.incarnation,
            });
        }
        for s in &a.settings {
            if let Some(mine) = self.settings.get_mut(&s.member) {
                if s.version > mine.version {
                    *mine = *s;
                    self.events.push(Event::SettingChanged(*s));
                }
            }
        }
    }

    /// Operator change of a member's weight and/or drain flag; it wins over
    /// every earlier change and spreads with the next announcements.
    /// `None` when `member` is not configured.
    pub fn set_setting(
        &mut self,
        member: u16,
        weight: Option<u32>,
        draining: Option<bool>,
    ) -> Option<Setting> {
        let local = self.local;
        let s = self.settings.get_mut(&member)?;
        let next = Setting {
            member,
            weight: weight.unwrap_or(s.weight),
            draining: draining.unwrap_or(s.draining),
            // A hybrid clock: above every version seen, and at least the
            // wall clock, so a later change wins even when this control
            // restarted (and forgot the versions) since the earlier one.
            version: (((s.version >> 16) + 1).max(self.wall_ms) << 16) | u64::from(local),
        };
        *s = next;
        self.events.push(Event::SettingChanged(next));
        Some(next)
    }

    /// The cleaner and the epoch computation; call once per interval.
    pub fn tick(&mut self, now: Now) {
        self.wall_ms = self.wall_ms.max(now.wall_ms);
        let others = self.members.iter().any(|m| m.id != self.local);
        if !self.settled
            && (!others
                || now.mono_ms.saturating_sub(self.started_mono_ms)
                    >= self.timing.failure_timeout_ms)
        {
            self.settled = true;
        }
        // A peer's datagram passes the clock window from one window before
        // its timestamp to one window after, and a peer's clock may be up to
        // a window ahead: only twice the window after its last datagram can
        // no copy of one pass any more (a fuzzing finding: with one window,
        // a copy of an announcement stamped ahead brought a peer back).
        let forget_after = 2 * TIMESTAMP_WINDOW_MS + self.timing.failure_timeout_ms;
        for (&id, peer) in &mut self.peers {
            let silent = now.mono_ms.saturating_sub(peer.last_heard_mono_ms);
            if peer.alive && silent >= self.timing.failure_timeout_ms {
                peer.alive = false;
                peer.acked_sent_mono_ms = None;
                self.events.push(Event::Left {
                    member: id,
                    reason: LeftReason::Silent(silent),
                });
            }
            if !peer.alive && silent > forget_after {
                peer.incarnation = 0;
                peer.sequence = 0;
            }
        }
        if !self.settled {
            return;
        }
        let table = self.table();
        let heard = self
            .peers
            .values()
            .filter(|p| p.alive)
            .map(|p| p.epoch)
            .max()
            .unwrap_or(0);
        let previous = self.epoch.number;
        if table != self.epoch.table {
            self.epoch.number = previous.max(heard).saturating_add(1);
            self.epoch.digest = table_digest(&table);
            self.epoch.table = table;
            self.epoch_changes += 1;
            self.events.push(Event::EpochChanged {
                previous,
                epoch: self.epoch.number,
                table_changed: true,
            });
        } else if heard > previous {
            self.epoch.number = heard;
            self.epoch_changes += 1;
            self.events.push(Event::EpochChanged {
                previous,
                epoch: heard,
                table_changed: false,
            });
        }
        // A confirmation holds only within one unbroken lease. Once no
        // lease found so far covers `now`, a peer may have removed this
        // member and confirmed tables it never applied (forgetting the one
        // confirmed here), and announcements read now may predate that (a
        // SIGSTOP's socket buffer): forget the confirmation, and count only
        // acknowledgements of announcements sent from now on.
        if now.mono_ms >= self.lease_until_ms {
            self.confirmed = None;
            self.confirm_since_seq = self.sequence + 1;
        }
        if let Ok(until) = self.lease(now) {
            self.lease_until_ms = self.lease_until_ms.max(until);
        }
        // Confirmed: this dataplane and every live peer's run the table,
        // each peer saying so in an announcement that acknowledges one of
        // ours sent after our dataplane applied it (and since our lease was
        // last unbroken). Both sides then know the other holds the table; a
        // stale "applied" from before a peer moved on (members can pass
        // through tables in different orders while settings spread)
        // confirms nothing.
        let digest = self.epoch.digest;
        let since = self.confirm_since_seq;
        if self.applied_digest == digest
            && self
                .peers
                .values()
                .filter(|p| p.alive)
                .all(|p| p.applied_digest == digest && p.acked_seq >= since)
        {
            self.confirmed = Some((self.epoch.number, digest));
        }
    }

    /// The table this member would propose now.
    pub fn table(&self) -> Vec<TableEntry> {
        self.members
            .iter()
            .map(|m| {
                let s = self.settings.get(&m.id);
                TableEntry {
                    id: m.id,
                    alive: if m.id == self.local {
                        !self.withdrawn
                    } else {
                        self.peers.get(&m.id).is_some_and(|p| p.alive)
                    },
                    weight: s.map_or(m.weight, |s| s.weight),
                    draining: s.is_some_and(|s| s.draining),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn infos(n: u16) -> Vec<MemberInfo> {
        (1..=n)
            .map(|id| MemberInfo {
                id,
                name: format!("srv{id}"),
                address: Ipv4Addr::new(198, 18, 0, 10 + id as u8),
                mac: [2, 0, 0, 0, 0, id as u8],
                weight: 100,
            })
            .collect()
    }

    const T: Timing = Timing {
        interval_ms: 200,
        failure_timeout_ms: 1000,
    };

    fn key() -> ClusterKey {
        ClusterKey::from_bytes(&[9; 32]).unwrap()
    }

    fn at(ms: u64) -> Now {
        Now {
            mono_ms: ms,
            wall_ms: 1_700_000_000_000 + ms,
        }
    }

    fn node(id: u16, inc: u64) -> Membership {
        Membership::new(id, infos(3), T, key(), inc, at(0))
    }

    #[test]
    fn accepts_then_rejects_replays_duplicates_and_old_timestamps() {
        let mut a = node(1, 100);
        let mut b = node(2, 200);
        let m1 = b.announce_signed(at(0));
        let m2 = b.announce_signed(at(10));
        assert_eq!(a.receive(&m2, at(10)), Ok(2));
        assert_eq!(a.receive(&m2, at(11)), Err(Reject::Duplicate));
        assert_eq!(
            a.receive(&m1, at(12)),
            Err(Reject::Replayed {
                incarnation: 200,
                sequence: 1
            })
        );
        // Own messages and unknown members.
        let own = a.announce_signed(at(20));
        assert_eq!(a.receive(&own, at(20)), Err(Reject::Own));
        let mut stranger = Membership::new(9, infos(9), T, key(), 1, at(0));
        assert_eq!(
            a.receive(&stranger.announce_signed(at(20)), at(20)),
            Err(Reject::UnknownMember(9))
        );
        // Wrong key.
        let mut other = Membership::new(
            3,
            infos(3),
            T,
            ClusterKey::from_bytes(&[8; 32]).unwrap(),
            1,
            at(0),
        );
        assert_eq!(
            a.receive(&other.announce_signed(at(20)), at(20)),
            Err(Reject::Decode(DecodeError::BadMac))
        );
        // A fresh message stamped 11 s in the past.
        let mut c = node(3, 300);
        let old = c.announce_signed(at(0));
        assert_eq!(
            a.receive(&old, at(11_001)),
            Err(Reject::TimestampOutOfWindow { skew_ms: -11_001 })
        );
        assert_eq!(
            a.receive(b"junk", at(30)),
            Err(Reject::Decode(DecodeError::Malformed("too short")))
        );
        let counts: Vec<_> = a.received().iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(
            counts,
            vec![
                ("accepted", 1),
                ("bad_mac", 1),
                ("duplicate", 1),
                ("malformed", 1),
                ("own", 1),
                ("replayed", 1),
                ("timestamp_out_of_window", 1),
                ("unknown_member", 1),
            ]
        );
        // Rejected messages changed nothing: only member 2 is known.
        assert_eq!(a.peers().keys().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(a.peers()[&2].sequence, 2);
    }

    #[test]
    fn cleaner_removes_after_the_failure_timeout_exactly() {
        let mut a = node(1, 100);
        let mut b = node(2, 200);
        a.receive(&b.announce_signed(at(0)), at(0)).unwrap();
        assert_eq!(
            a.drain_events(),
            vec![Event::Joined {
                member: 2,
                incarnation: 200
            }]
        );
        a.tick(at(999));
        assert_eq!(a.live(), vec![1, 2]);
        // Settled at 999? No: settling ends at failure_timeout (1000).
        assert!(!a.settled());
        a.tick(at(1000));
        assert!(a.settled());
        assert_eq!(a.live(), vec![1]);
        let ev = a.drain_events();
        assert_eq!(
            ev,
            vec![
                Event::Left {
                    member: 2,
                    reason: LeftReason::Silent(1000)
                },
                Event::EpochChanged {
                    previous: 0,
                    epoch: 1,
                    table_changed: true
                }
            ]
        );
        // Heard again (restart: new incarnation, sequence from 1): rejoins.
        let mut b2 = node(2, 5_000);
        a.receive(&b2.announce_signed(at(1500)), at(1500)).unwrap();
        a.tick(at(1600));
        assert_eq!(a.live(), vec![1, 2]);
        assert_eq!(
            a.drain_events(),
            vec![
                Event::Joined {
                    member: 2,
                    incarnation: 5_000
                },
                Event::EpochChanged {
                    previous: 1,
                    epoch: 2,
                    table_changed: true
                }
            ]
        );
    }

    #[test]
    fn leaving_removes_at_once_and_old_incarnations_are_forgotten_later() {
        let mut a = node(1, 100);
        let mut b = node(2, 900);
        a.receive(&b.announce_signed(at(0)), at(0)).unwrap();
        a.receive(&b.leave_signed(at(100)), at(100)).unwrap();
        assert_eq!(a.live(), vec![1]);
        // A restart whose clock went backwards (lower incarnation) is
        // replayed until the window plus timeout has passed...
        let mut b_back = node(2, 500);
        let early = b_back.announce_signed(at(5_000));
        assert_eq!(
            a.receive(&early, at(5_000)),
            Err(Reject::Replayed {
                incarnation: 500,
                sequence: 1
            })
        );
        a.tick(at(21_101));
        let later = b_back.announce_signed(at(21_101));
        assert_eq!(a.receive(&later, at(21_101)), Ok(2));
    }

    /// Fuzzing finding (`fuzz/regressions/membership/`): a peer whose clock
    /// is ahead (within the window) stamps announcements that stay inside
    /// the window longer than one window after they were sent; a copy sent
    /// after the receiver forgot the silent peer must still be refused.
    #[test]
    fn a_copy_of_an_announcement_stamped_ahead_cannot_bring_a_peer_back() {
        let mut a = node(1, 100);
        let mut b = node(2, 900);
        let ahead = Now {
            mono_ms: at(0).mono_ms,
            wall_ms: at(0).wall_ms + TIMESTAMP_WINDOW_MS - 500,
        };
        let copy = b.announce_signed(ahead);
        assert_eq!(a.receive(&copy, at(0)), Ok(2));
        // b goes silent; a removes it, and much later gets the copy again
        // (still inside the window: stamped ahead).
        a.tick(at(12_000));
        assert_eq!(a.live(), vec![1]);
        assert!(a.receive(&copy, at(12_000)).is_err());
        assert_eq!(a.live(), vec![1]);
    }

    #[test]
    fn settings_spread_by_version() {
        let mut a = node(1, 100);
        let mut b = node(2, 200);
        let s = a.set_setting(3, None, Some(true)).unwrap();
        let t0 = at(0).wall_ms;
        assert_eq!(s.version, (t0 << 16) | 1);
        b.receive(&a.announce_signed(at(0)), at(0)).unwrap();
        assert_eq!(b.settings()[&3], s);
        // b then changes member 3's weight: version 2, wins on a.
        let s2 = b.set_setting(3, Some(50), None).unwrap();
        assert_eq!(
            s2,
            Setting {
                member: 3,
                weight: 50,
                draining: true,
                version: ((t0 + 1) << 16) | 2
            }
        );
        a.receive(&b.announce_signed(at(10)), at(10)).unwrap();
        assert_eq!(a.settings()[&3], s2);
        assert!(a.set_setting(7, Some(1), None).is_none());
    }
}
