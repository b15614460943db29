//! The per-packet processor: classify a frame, consult the flow table, apply
//! the flow's action, say where the frame goes.
//!
//! This module owns the decision for every frame and the counters of every
//! outcome. It does no I/O and reads no clock: the worker hands it frames
//! and the time. The order of checks is `docs/design.md`'s ("The data path"):
//!
//! 1. ARP for a VIP: answer with the cluster MAC; ARP for the own address:
//!    the kernel answers.
//! 2. Frames from the kernel: reverse action of their flow, then the wire.
//! 3. VIP packets of a flow in the table: the flow's action — except a SYN
//!    of a new connection on the 4-tuple of an earlier one, which drops the
//!    earlier one's state and goes on to 4 (`reuse`).
//! 4. A TCP SYN to a VIP service: the selector names the inspector; if it is
//!    this server, a flow is created and the service's mode applies,
//!    otherwise the SYN is dropped silently (another server answers).
//! 5. Any other VIP packet with no flow: dropped silently and counted — never
//!    a RST for a flow this server does not own.
//! 6. Traffic for the own address: the kernel.

mod arp;
mod burst;
mod classes_path;
mod conns;
mod handoff_path;
mod kernel;
pub mod moves;
mod persist;
mod pins;
pub use pins::MAX_PINS;
mod reuse;
mod routed;
pub mod snapshot;
mod splice_path;
mod sticky_path;
mod synproxy_path;
mod tables;
mod tunnel;
mod vip;

use core::time::Duration;
use std::sync::Arc;

pub use classes_path::class_stat_names;
pub use reuse::FlowEntry;
use splice_path::{build_dispatchers, SPLICE_SETUP_SLOTS};
pub use tables::{MemberEntry, ServiceEntry, Tables, TablesError};

use crate::counters::{Counter, Counters, Layer};
use crate::flow::{FlowTable, Timeouts};
use crate::io::{Frame, PortId};
use crate::wire::{EtherType, EthernetFrame};
use shoal_l7::dispatch::Dispatcher;
use shoal_l7::splice::SpliceParams;
use shoal_l7::syncookie::CookieKeys;
use shoal_select::claim::{Claim, ClaimSet, Fence};
use shoal_select::ClientKey;
use shoal_wire::time::Instant;

/// Port index of the wire (NIC on the shared segment).
pub const WIRE: PortId = 0;
/// Port index of the exception path toward the local kernel (TAP).
pub const KERNEL: PortId = 1;

/// What happens to a frame after processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (possibly rewritten) frame on this port.
    Forward(PortId),
    /// Free the frame. Its outcome counter names why (every frame bumps
    /// exactly one of [`Counter::OUTCOMES`]); a frame whose outcome was
    /// counted before a later step failed also bumps that step's failure
    /// counter (`decap_failed`).
    Drop,
}

/// How to treat a flow's packets (the main part of its [`FlowEntry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowAction {
    /// This server's kernel serves the flow (`local` mode, a DPR connection
    /// this member kept, or one redirected here).
    Local,
    /// DPR on the LAN: rewrite the destination MAC to this member's own MAC.
    RedirectMac {
        /// Target member id.
        member: u16,
    },
    /// DPR across networks: IP-in-IP (RFC 2003) to this member's own address.
    RedirectIpip {
        /// Target member id.
        member: u16,
    },
    /// A connection another member's inspector redirects here: its packets
    /// arrive by MAC rewrite or tunnel and go to this kernel; the broadcast
    /// copies of the same packets (to the cluster MAC) are ignored.
    Received,
    /// Splice: the handshake is done (cookie), the request is being read or
    /// replayed into the kernel; the connection is in setup slot `slot`.
    Splicing {
        /// Setup slot.
        slot: u32,
        /// Index of the service in the tables.
        service: u16,
    },
    /// Splice: handed over to this kernel; both directions are translated.
    Spliced(SpliceParams),
    /// Splice: handed over to another member (tombstone). On a segment
    /// that member sees the client's packets itself and this member ignores
    /// them; routed, this member forwards them to it in GUE.
    HandedOff {
        /// The member the connection was handed to (0: not known, from a
        /// snapshot of an older version).
        member: u16,
    },
    /// Splice, a persistent connection this kernel serves, followed request
    /// by request (`persist`): the translation and the rest are in session
    /// `slot`.
    Tracked {
        /// Session slot.
        slot: u32,
    },
}

/// What the byte-level pass decided; the steps that grow or shrink the
/// frame happen after it, in [`Pipeline::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Decided: forward or drop as is (Ethernet destination already set).
    Done(Verdict),
    /// Rewrite the destination MAC to member `to`'s own and send on the wire.
    RewriteMac { to: u16 },
    /// Tunnel the IPv4 packet to member `to` (IP-in-IP) on the wire.
    Encap { to: u16 },
    /// This member is the tunnel's end: strip `outer_len` bytes of outer
    /// IPv4 header and deliver the inner packet to the kernel.
    Decap { outer_len: usize },
    /// Routed mode: strip `strip` bytes of outer headers (0: the packet
    /// came from a router), then send the IPv4 packet in GUE to member `to`
    /// naming `alternate` (`routed.rs`).
    Gue {
        to: u16,
        alternate: Option<u16>,
        second_chance: bool,
        strip: usize,
    },
    /// Routed splice: strip `strip` bytes of outer headers, then send a
    /// copy of the IPv4 packet in GUE to every other live member except
    /// `except` (it had no flow) and drop the frame (`routed.rs`, flood).
    Flood { strip: usize, except: Option<u16> },
}

/// Whether member `own` is the inspector of `client` for service `index`
/// in a table (the question `ClaimSet` asks of every epoch it keeps).
fn owns(own: u16, index: usize, client: ClientKey) -> impl Fn(&Arc<Tables>) -> bool {
    move |t: &Arc<Tables>| {
        t.services
            .get(index)
            .is_some_and(|s| s.selector.select(client) == Some(own))
    }
}

/// What later fragments of a datagram get: what the first one got.
type FragAction = Option<FlowAction>;

/// How long a datagram's fragments are followed after its last fragment.
const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Datagrams followed at once per worker.
const FRAGMENT_CAPACITY: usize = 4096;

/// One worker's processor: tables of the current epoch, the flow table and
/// the counters.
#[derive(Debug)]
pub struct Pipeline {
    tables: Arc<Tables>,
    /// Routed mode: the last [`HISTORY`] tables before the current ones
    /// whose membership differed, newest first (`routed.rs`: the alternate
    /// target of the second chance is the newest target there that differs
    /// from the current one); empty until the membership first changes.
    previous: Vec<Arc<Tables>>,
    /// Routed mode: the Ethernet source of the last VIP frame a router
    /// sent here (or where this kernel sends VIP replies): where frames this
    /// member answers a client with go (`routed.rs`, splice).
    router_mac: Option<crate::wire::EthernetAddress>,
    /// The epochs new connections are claimed with, and the lease.
    claims: ClaimSet<Arc<Tables>>,
    flows: FlowTable<FlowEntry>,
    /// Scratch of [`Pipeline::process_burst`]: the burst's flow-key hashes.
    burst_hashes: Vec<u64>,
    /// Operators' placement overrides (`pins.rs`).
    pins: pins::Pins,
    /// First-fragment decisions keyed (src, dst, IP id as src port, proto).
    fragments: FlowTable<FragAction>,
    counters: Counters,
    /// IP identification of the outer headers and ICMP errors this worker sends.
    ident: u16,
    /// Splice: the SYN cookie keys (per server).
    cookies: CookieKeys,
    /// Splice: connections between the cookie ACK and the kernel's SYN-ACK.
    conns: conns::Conns,
    /// Splice: a dispatcher per service (None for other modes); per worker
    /// because LARD keeps state.
    dispatchers: Vec<Option<Dispatcher>>,
    /// Splice: request classes per service (None without classes).
    classes: Vec<Option<classes_path::ServiceClasses>>,
    /// Services whose scheduler a reload replaced or removed: what waited
    /// in it is offered again at the next `expire`.
    requeue: Vec<usize>,
    /// Splice: answers to new connections with no setup slot free (tokens
    /// of a bucket refilled at [`BUSY_ANSWERS_PER_SEC`], and when).
    busy_answers: (u32, Instant),
    /// Routed splice: the flood bucket (`routed.rs`), refilled at
    /// [`FLOODS_PER_SEC`].
    floods: (u32, Instant),
    /// Splice: persistent connections followed request by request.
    sessions: persist::Sessions,
    /// SYN proxy of the L4 services: one state per service of `tables`.
    synproxy: Vec<synproxy_path::ProxyState>,
    /// Splice: the owner history of recent persistent connections.
    moves: moves::MoveLog,
    /// Splice: handoff to other members (None until `enable_handoff`).
    handoff: Option<handoff_path::Handoff>,
    /// Splice: the cluster key that signs sticky cookies (the handoff's;
    /// None until `enable_handoff`).
    sticky_key: Option<shoal_l7::handoff::ClusterKey>,
    /// Frames the pipeline originates while processing (handshake replies,
    /// replayed segments), with their port; the worker sends them after the
    /// burst. Only the connection-setup paths use it.
    emitted: Vec<(PortId, Vec<u8>)>,
    /// Scratch for `take_journal` (allocated by `enable_journal`).
    journal_keys: Vec<crate::flow::FlowKey>,
}

/// Answers a worker sends per second (and at most at once) to new splice
/// connections that find no setup slot free; beyond it they are dropped,
/// counted (`splice_conn_table_full`), and the client retransmits.
const BUSY_ANSWERS_PER_SEC: u32 = 1000;
/// Routed mode: earlier memberships a worker keeps for second chances (a
/// connection's target may have moved several times in quick succession,
/// as when a member restarts).
const HISTORY: usize = 4;
/// Routed splice: packets a worker floods to every member at most per
/// second (each costs one copy per member; over it they are dropped,
/// counted `routed_second_chance_dropped`).
const FLOODS_PER_SEC: u32 = 2000;

/// Takes one token from `bucket` (tokens left, last refill), refilled at
/// `per_sec` up to `per_sec`; false when none is left at `now`.
fn take_token(bucket: &mut (u32, Instant), per_sec: u32, now: Instant) -> bool {
    let (tokens, last) = *bucket;
    let elapsed_ms = now.saturating_since(last).as_millis();
    let refill = u32::try_from(elapsed_ms * u128::from(per_sec) / 1000).unwrap_or(u32::MAX);
    let tokens = tokens.saturating_add(refill).min(per_sec);
    // The clock moves on only when a token was added, so that frequent
    // calls under a millisecond apart still refill.
    let last = if refill > 0 { now } else { last };
    if tokens == 0 {
        *bucket = (0, last);
        return false;
    }
    *bucket = (tokens - 1, last);
    true
}

/// Flows one burst may create or change before the journal falls back to
/// a full snapshot (far more than two bursts of frames can touch).
const JOURNAL_BATCH: usize = 4096;

impl Pipeline {
    /// A processor over `tables` with a flow table of `capacity` flows.
    pub fn new(tables: Arc<Tables>, capacity: usize, timeouts: Timeouts) -> Self {
        let t = FRAGMENT_TIMEOUT;
        let fragment_timeouts = Timeouts {
            syn: t,
            established: t,
            closing: t,
            tombstone: t,
        };
        // A placeholder key derived from the member's address; `run` sets a
        // random one with `set_cookie_secret`.
        let mut secret = [0u8; 32];
        secret[..4].copy_from_slice(&tables.own_addr.octets());
        let dispatchers = build_dispatchers(&tables, Vec::new());
        let classes = classes_path::build_classes(&tables, Vec::new(), &mut Vec::new());
        Pipeline {
            classes,
            requeue: Vec::new(),
            busy_answers: (BUSY_ANSWERS_PER_SEC, Instant::ZERO),
            floods: (FLOODS_PER_SEC, Instant::ZERO),
            cookies: CookieKeys::new(secret),
            handoff: None,
            sticky_key: None,
            conns: conns::Conns::new(SPLICE_SETUP_SLOTS),
            sessions: persist::Sessions::default(),
            synproxy: vec![synproxy_path::ProxyState::default(); tables.services.len()],
            moves: moves::MoveLog::default(),
            dispatchers,
            claims: ClaimSet::new(Arc::clone(&tables), tables.digest, Fence::Unfenced),
            tables,
            previous: Vec::new(),
            router_mac: None,
            flows: FlowTable::new(capacity, timeouts),
            burst_hashes: Vec::new(),
            pins: pins::Pins::default(),
            fragments: FlowTable::new(FRAGMENT_CAPACITY, fragment_timeouts),
            counters: Counters::default(),
            ident: 0,
            emitted: Vec::new(),
            journal_keys: Vec::new(),
        }
    }

    /// Switches to new tables (a new epoch). Existing flows keep their action;
    /// only new connections see the new tables, and while the new epoch is
    /// not confirmed (its digest differs from the previous tables') only
    /// keys this member owns in both (`claim.rs`). Call between bursts.
    pub fn set_tables(&mut self, tables: Arc<Tables>) {
        let previous = std::mem::take(&mut self.dispatchers);
        self.dispatchers = build_dispatchers(&tables, previous);
        let previous = std::mem::take(&mut self.classes);
        self.classes = classes_path::build_classes(&tables, previous, &mut self.requeue);
        self.synproxy = synproxy_path::carry_over(&self.tables, &tables, &self.synproxy);
        self.claims.apply(Arc::clone(&tables), tables.digest);
        if routed::membership_changed(&self.tables, &tables) {
            self.previous.insert(0, Arc::clone(&self.tables));
            self.previous.truncate(HISTORY);
        }
        self.tables = tables;
    }

    /// [`Pipeline::set_tables`] for the first membership a member gets from
    /// control after it starts. In routed mode, when `tables` count this
    /// member alive, the previous tables become `tables` without it: what
    /// the other members decided with while it was away (their previous
    /// tables once they see it back). So a packet of a connection begun in
    /// its absence that a router hands to it directly gets its second
    /// chance at the member serving it, as through any other receiver.
    /// When `tables` do not count it yet, this is `set_tables`: the later
    /// change that does makes them the previous tables.
    ///
    /// A guess where the cluster never saw it away (a restart faster than
    /// failure detection): connections begun under older tables whose
    /// packets reach it directly then find no alternate (counted
    /// `routed_second_chance_dropped`).
    pub fn set_tables_joining(&mut self, tables: Arc<Tables>) {
        let counted = tables.member(tables.own_id).is_some_and(|m| m.alive);
        let without =
            (tables.routed && counted).then(|| Arc::new(tables.without_member(tables.own_id)));
        self.set_tables(tables);
        if let Some(without) = without {
            // What this member had before its restart means nothing now.
            self.previous = vec![without];
        }
    }

    /// Routed mode: the newest tables before the current ones whose
    /// membership differed, if any.
    pub fn previous_tables(&self) -> Option<&Tables> {
        self.previous.first().map(|t| &**t)
    }

    /// Fences new connections behind a lease from control (`Fence::Leased`),
    /// or not (`Fence::Unfenced`: no control process).
    pub fn set_fence(&mut self, fence: Fence) {
        self.claims.set_fence(fence);
    }

    /// A lease renewal from control (`None` revokes it) and the newest
    /// epoch digest every live member confirmed, read at `now` (a renewal
    /// after the lease lapsed waits for a confirmation: `claim.rs`).
    pub fn renew_lease(
        &mut self,
        until: Option<Instant>,
        confirmed_digest: Option<u64>,
        now: Instant,
    ) {
        self.claims.renew(until, now);
        if let Some(d) = confirmed_digest {
            self.claims.confirm(d);
        }
    }

    /// The flow snapshot a restarted dataplane restores (`snapshot.rs`),
    /// written at `mono_ns` (`CLOCK_MONOTONIC`).
    pub fn flow_snapshot(&self, mono_ns: u64) -> Vec<u8> {
        snapshot::encode(&self.flows, self.tables.own_id, mono_ns, |a| {
            self.resolve_action(a)
        })
    }

    /// Records the flows each burst creates or changes, for
    /// [`Pipeline::take_journal`] (the worker's write-ahead journal).
    pub fn enable_journal(&mut self) {
        self.flows.track_changes(JOURNAL_BATCH);
        self.journal_keys = Vec::with_capacity(JOURNAL_BATCH);
    }

    /// Appends to `out` the journal entries (`snapshot::journal_entry`) of
    /// the flows created or changed since the last call, written at
    /// `mono_ns`; false when some changes did not fit the batch (then the
    /// caller writes a full snapshot instead).
    pub fn take_journal(&mut self, mono_ns: u64, out: &mut Vec<u8>) -> bool {
        let (keys, overflowed) = self.flows.take_changes();
        self.journal_keys.clear();
        self.journal_keys.extend(keys);
        for key in &self.journal_keys {
            if let Some(f) = self.flows.get(key) {
                let value = FlowEntry {
                    action: self.resolve_action(f.value.action),
                    ..f.value
                };
                if let Some(e) =
                    snapshot::journal_entry(*key, f.state(), &value, self.tables.own_id, mono_ns)
                {
                    out.extend_from_slice(&e);
                }
            }
        }
        !overflowed
    }

    /// Restores a journal written by an earlier run (after its snapshot),
    /// keeping the flows `keep` accepts; returns (restored, refused entries).
    pub fn restore_journal_where(
        &mut self,
        bytes: &[u8],
        now_mono_ns: u64,
        now: Instant,
        keep: impl Fn(&crate::flow::FlowKey) -> bool,
    ) -> (usize, usize) {
        let (mut flows, refused) = snapshot::decode_journal(bytes, self.tables.own_id, now_mono_ns);
        flows.retain(|(key, _, _)| keep(key));
        (snapshot::restore(&mut self.flows, flows, now), refused)
    }

    /// Restores a snapshot taken by an earlier run of this member's
    /// dataplane; returns the flows restored, or why none were.
    pub fn restore_flows(
        &mut self,
        bytes: &[u8],
        now_mono_ns: u64,
        now: Instant,
    ) -> Result<usize, snapshot::SnapshotError> {
        self.restore_flows_where(bytes, now_mono_ns, now, |_| true)
    }

    /// As [`Pipeline::restore_flows`], keeping only the flows `keep`
    /// accepts (a worker restores the flows it owns, from every worker's
    /// snapshot of the previous run, whatever their number was).
    pub fn restore_flows_where(
        &mut self,
        bytes: &[u8],
        now_mono_ns: u64,
        now: Instant,
        keep: impl Fn(&crate::flow::FlowKey) -> bool,
    ) -> Result<usize, snapshot::SnapshotError> {
        let mut flows = snapshot::decode(bytes, self.tables.own_id, now_mono_ns)?;
        flows.retain(|(key, _, _)| keep(key));
        Ok(snapshot::restore(&mut self.flows, flows, now))
    }

    /// Removes every flow of client `client` (only port `port`, unless it
    /// is 0) and returns how many; counted as `flows_evicted_by_operator`.
    /// An operator's tool (`shoalctl flows evict`), run between bursts: it
    /// walks the whole table.
    pub fn evict_client(&mut self, client: std::net::Ipv4Addr, port: u16) -> usize {
        let keys: Vec<crate::flow::FlowKey> = self
            .flows
            .iter()
            .map(crate::flow::Flow::key)
            .filter(|k| {
                (k.src == client && (port == 0 || k.src_port == port))
                    || (k.dst == client && (port == 0 || k.dst_port == port))
            })
            .collect();
        for k in &keys {
            self.flows.remove(k);
        }
        self.counters
            .add(Counter::FlowsEvictedByOperator, keys.len() as u64);
        keys.len()
    }

    /// Places the new connections of clients in `prefix`/`len` on member
    /// `member` for `secs` seconds from `now` (`member = 0`: removes that
    /// prefix's pin); see `pins.rs`. `false` (counted `pin_rejected_full`)
    /// when the worker holds [`pins::MAX_PINS`] live pins already.
    pub fn pin_clients(
        &mut self,
        prefix: std::net::Ipv4Addr,
        len: u8,
        member: u16,
        secs: u32,
        now: Instant,
    ) -> bool {
        let set = self.pins.set(prefix, len, member, secs, now);
        if !set {
            self.counters.inc(Counter::PinRejectedFull);
        }
        set
    }

    /// Live operator pins at `now`.
    pub fn pins_live(&self, now: Instant) -> usize {
        self.pins.live(now)
    }

    /// The member an operator's pin places a new connection of `client` on,
    /// if one does and that member is in the membership and serves
    /// (counted `pin_target_gone` otherwise).
    fn pinned(&mut self, client: std::net::Ipv4Addr, now: Instant) -> Option<u16> {
        let pinned = self.pins.target(client, now);
        pins::usable(&self.tables, &mut self.counters, pinned)
    }

    /// The epochs and the fence new connections are claimed with.
    pub fn claims(&self) -> &ClaimSet<Arc<Tables>> {
        &self.claims
    }

    /// Whether this member claims a new connection from `client` to service
    /// `index` at `now`; `Err` names the outcome counter of a SYN it does
    /// not claim (another inspector, lease lapsed, epoch pending).
    fn claim(&self, index: usize, client: ClientKey, now: Instant) -> Result<(), Counter> {
        match self
            .claims
            .claims(now, owns(self.tables.own_id, index, client))
        {
            Claim::Yes => Ok(()),
            Claim::NotOwner => Err(Counter::SynOtherInspector),
            Claim::LeaseLapsed => Err(Counter::ClaimsRefusedLease),
            Claim::Pending => Err(Counter::ClaimsRefusedPending),
        }
    }

    /// Whether this member owns `client`'s key for service `index` in the
    /// current or a pending epoch.
    fn owned_in_any(&self, index: usize, client: ClientKey) -> bool {
        self.claims
            .owned_in_any(owns(self.tables.own_id, index, client))
    }

    /// Sets the SYN cookie secret (random per server; `run` reads it from
    /// the OS).
    pub fn set_cookie_secret(&mut self, secret: [u8; 32]) {
        self.cookies = CookieKeys::new(secret);
    }

    /// The tables in use.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Mutable counters (the worker counts transmit outcomes).
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// Takes the frames originated since the last call (port, bytes).
    pub fn take_emitted(&mut self) -> std::vec::Drain<'_, (PortId, Vec<u8>)> {
        self.emitted.drain(..)
    }

    /// The owner history of recent persistent connections (`moves`).
    pub fn move_log(&self) -> &moves::MoveLog {
        &self.moves
    }

    /// This worker's flow table.
    pub fn flows(&self) -> &FlowTable<FlowEntry> {
        &self.flows
    }

    /// Expires up to `budget` flows whose timeout passed; call once per burst.
    pub fn expire(&mut self, now: Instant, budget: usize) {
        // Counted in the flow table's own stats (expired by state).
        self.flows.expire(now, budget);
        self.fragments.expire(now, budget);
        self.splice_expire(now);
        self.persist_expire(now);
        self.handoff_poll(now);
    }

    /// Decides what happens to `frame`, received on port `from`, rewriting it
    /// in place where the decision needs it.
    /// A burst goes faster through [`Pipeline::process_burst`], with the
    /// same results.
    pub fn process<F: Frame>(&mut self, from: PortId, frame: &mut F, now: Instant) -> Verdict {
        self.count_rx(from, 1, frame.len() as u64);
        self.decide(from, frame, now)
    }

    /// Counts `frames` frames of `bytes` bytes received on port `from`.
    #[inline]
    fn count_rx(&mut self, from: PortId, frames: u64, bytes: u64) {
        let (packets, octets) = if from == KERNEL {
            (Counter::KernelRx, Counter::KernelRxBytes)
        } else {
            (Counter::WireRx, Counter::WireRxBytes)
        };
        self.counters.add(packets, frames);
        self.counters.add(octets, bytes);
    }

    /// [`Pipeline::process`] without counting the frame as received.
    #[inline]
    fn decide<F: Frame>(&mut self, from: PortId, frame: &mut F, now: Instant) -> Verdict {
        if from == KERNEL {
            self.on_kernel(frame.bytes_mut(), now)
        } else {
            match self.on_wire(frame.bytes_mut(), now) {
                Plan::Done(verdict) => verdict,
                Plan::Encap { to } => self.encapsulate(frame, to),
                Plan::Decap { outer_len } => {
                    let bytes = frame.bytes_mut();
                    bytes.copy_within(0..ETH_LEN, outer_len);
                    if frame.adj(outer_len) {
                        Verdict::Forward(KERNEL)
                    } else {
                        // Counted `ipip_decapsulated` already; the buffer
                        // could not be shortened (a backend bug).
                        self.counters.inc(Counter::DecapFailed);
                        Verdict::Drop
                    }
                }
                Plan::Gue {
                    to,
                    alternate,
                    second_chance,
                    strip,
                } => self.gue_encapsulate(frame, to, alternate, second_chance, strip),
                Plan::Flood { strip, except } => self.gue_flood(frame.bytes(), strip, except),
                // Handled inside on_wire, which has the Ethernet header.
                Plan::RewriteMac { .. } => Verdict::Drop,
            }
        }
    }

    fn on_wire(&mut self, bytes: &mut [u8], now: Instant) -> Plan {
        let mut eth = match EthernetFrame::new_checked(bytes) {
            Ok(eth) => eth,
            Err(e) => return Plan::Done(self.malformed(Layer::Ethernet, e)),
        };
        let t = &*self.tables;
        let dst = eth.dst_addr();
        if dst != t.cluster_mac && dst != t.own_mac && !dst.is_multicast() {
            return Plan::Done(self.drop(Counter::DropOtherHost));
        }
        if eth.vlan_ids()[0].is_some() {
            return Plan::Done(self.drop(Counter::DropVlan));
        }
        match eth.ethertype() {
            EtherType::Arp => Plan::Done(self.arp(&mut eth)),
            EtherType::Ipv4 => {
                let to_me = dst == t.own_mac;
                let src_mac = eth.src_addr();
                let plan = self.ipv4_from_wire(eth.payload_mut(), src_mac, to_me, now);
                let t = &*self.tables;
                match plan {
                    // The kernel's TAP has this member's own MAC and silently
                    // drops frames for any other unicast MAC (the cluster MAC).
                    Plan::Done(Verdict::Forward(KERNEL)) | Plan::Decap { .. } => {
                        eth.set_dst_addr(t.own_mac);
                        plan
                    }
                    Plan::RewriteMac { to } => match t.member(to) {
                        Some(m) => {
                            eth.set_dst_addr(m.mac);
                            eth.set_src_addr(t.own_mac);
                            self.counters.inc(Counter::DprRedirected);
                            Plan::Done(Verdict::Forward(WIRE))
                        }
                        None => Plan::Done(self.drop(Counter::DropRedirectTargetGone)),
                    },
                    _ => plan,
                }
            }
            _ => Plan::Done(self.drop(Counter::DropUnsupportedEthertype)),
        }
    }

    #[inline]
    fn drop(&mut self, c: Counter) -> Verdict {
        self.counters.inc(c);
        Verdict::Drop
    }

    #[inline]
    fn malformed(&mut self, layer: Layer, e: crate::wire::Error) -> Verdict {
        self.counters.malformed(layer, e);
        Verdict::Drop
    }
}

/// Bytes of an untagged Ethernet header.
const ETH_LEN: usize = 14;
