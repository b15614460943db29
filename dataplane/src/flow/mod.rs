//! The per-worker flow table: which connections this worker holds state for,
//! what the pipeline decided for each (its *value*: an action, a rewrite, a
//! splice offset), and when each is forgotten.
//!
//! Owns: the table ([`FlowTable`]), its keys ([`FlowKey`]), TCP-ish lifecycle
//! states ([`FlowState`]) and their timeouts ([`Timeouts`]), eviction when
//! full, and the counters an operator graphs ([`FlowStats`],
//! [`FlowTable::count_by_state`]). It does not parse packets or decide state
//! transitions: the pipeline says "this flow is now `Closing`", the table only
//! keeps time.
//!
//! # Properties the worker relies on
//!
//! - **Fixed memory.** Every structure is allocated in [`FlowTable::new`];
//!   nothing on the packet path (lookup, insert, remove, expiry, eviction)
//!   allocates or grows (`dataplane/tests/flow_no_alloc.rs` proves it).
//! - **One hash lookup per packet.** [`FlowTable::lookup_touch`] finds the
//!   flow, checks it is still alive and refreshes its idle timer in one probe;
//!   the returned [`FlowMut`] can change the state or remove the flow without
//!   hashing again.
//! - **Exact timeouts.** A flow is alive while `now < last_seen +
//!   timeout(state)`. Lookups with a time ([`FlowTable::lookup_touch`],
//!   [`FlowTable::insert`], [`FlowTable::set_state`]) treat a flow past its
//!   deadline as gone even if the sweep has not reclaimed it yet, so behaviour
//!   does not depend on how often [`FlowTable::expire`] runs.
//! - **Time is passed in** ([`Instant`]); the table never reads a clock.
//! - **Hash flooding.** Clients choose the keys, so a fixed hash function
//!   would let them precompute 5-tuples that all land in one probe sequence
//!   and turn every lookup into a scan. The index uses `foldhash` (fast on a
//!   16-byte key) with a seed drawn per process (from ASLR addresses and the
//!   clock) and mixed per table, so each worker of each server hashes
//!   differently and nothing can be precomputed. foldhash is not a keyed
//!   PRF: an attacker able to measure lookup timing over many packets might
//!   still learn collisions in one table; the fixed capacity, the short
//!   probe sequences of an index kept at most 50 % full and the eviction
//!   policy bound the damage to that worker.
//!
//! # Expiry: a hashed timer wheel with lazy re-arming
//!
//! Flows are threaded, by slot index, through a timer wheel of 16.8 ms ticks
//! (see the `wheel` module). A packet only writes `last_seen`; it never
//! moves the flow in the wheel. When the flow's bucket comes due, the sweep
//! compares the real deadline with `now`: past it, the flow is removed;
//! otherwise it is re-armed at its real deadline. A state change re-arms at
//! once (the new timeout may be shorter). Each flow is thus visited about once
//! per timeout (or per 68.7 s wheel horizon for longer timeouts), however many
//! packets it carries.
//!
//! [`FlowTable::expire`] is amortised: the worker calls it once per burst with
//! a small budget (e.g. 64 entries examined). *Invariant to keep up:* the
//! budget times the call rate must exceed the rate at which flows come due,
//! which is at most the new-flow rate plus `len / min(timeout, 68.7 s)`
//! re-arms per second. At one call per 32-packet burst and budget 64 that is
//! two examined entries per packet, far above any new-flow rate a worker
//! sees. Falling behind is safe, only slower to free memory: dead flows are
//! already invisible to lookups, and a full table reclaims due flows before
//! it evicts live ones.
//!
//! # Eviction when full (the SYN-flood guard)
//!
//! Inserting a new key into a full table first sweeps a few due flows; if
//! that frees nothing, it evicts one live flow, choosing by state in the order
//! `Tombstone`, `Syn`, `Closing`, `Established` (the first state that has any
//! flow), and within that state the flow nearest to its deadline among the
//! first [`EVICTION_SCAN`] in wheel order. So a SYN flood that fills the table
//! recycles half-open flows among themselves (oldest first) and reaches
//! established connections only once no tombstone, half-open or closing flow
//! is left. The search is bounded (bitmap jumps plus at most
//! [`EVICTION_SCAN`] entries per state), so an insert is O(1). An insert is
//! [`Insert::Rejected`] only when nothing can be evicted, i.e. for a table of
//! capacity 0.

mod index;
mod table;
mod wheel;

#[cfg(test)]
mod tests;

use core::fmt;
use core::hash::{Hash, Hasher};
use core::net::Ipv4Addr;
use core::time::Duration;

pub use table::{FlowMut, FlowTable, Iter, EVICTION_SCAN};

use shoal_wire::time::Instant;

/// The 5-tuple that names a flow, as seen in one direction.
///
/// 14 bytes, `Copy`. Hashing packs it into one 128-bit word (see the `Hash`
/// impl), so a lookup hashes once, not field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port (0 for protocols without ports).
    pub src_port: u16,
    /// Destination port (0 for protocols without ports).
    pub dst_port: u16,
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub proto: u8,
}

impl FlowKey {
    /// A key from its five fields.
    pub const fn new(
        src: Ipv4Addr,
        src_port: u16,
        dst: Ipv4Addr,
        dst_port: u16,
        proto: u8,
    ) -> Self {
        FlowKey {
            src,
            dst,
            src_port,
            dst_port,
            proto,
        }
    }

    /// The key of the same flow in the other direction (addresses and ports
    /// swapped, same protocol).
    #[must_use]
    pub const fn reversed(self) -> Self {
        FlowKey {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
        }
    }

    /// The five fields packed injectively into 104 bits.
    const fn packed(self) -> u128 {
        let src = u32::from_be_bytes(self.src.octets()) as u128;
        let dst = u32::from_be_bytes(self.dst.octets()) as u128;
        (src << 72)
            | (dst << 40)
            | ((self.src_port as u128) << 24)
            | ((self.dst_port as u128) << 8)
            | self.proto as u128
    }
}

/// Consistent with the derived `Eq`: `packed` is injective.
impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(self.packed());
    }
}

impl fmt::Display for FlowKey {
    /// `proto src:port -> dst:port`, e.g. `6 192.0.2.1:40000 -> 198.18.0.1:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{} -> {}:{}",
            self.proto, self.src, self.src_port, self.dst, self.dst_port
        )
    }
}

/// Where a flow is in its life; each state has its own idle timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum FlowState {
    /// Half-open: a SYN was seen, the handshake is not complete.
    Syn = 0,
    /// The handshake completed; data may flow.
    Established = 1,
    /// A FIN or RST was seen; waiting for stragglers.
    Closing = 2,
    /// The flow was handed to another server; kept so its packets are
    /// recognised and ignored.
    Tombstone = 3,
}

impl FlowState {
    /// Every state, in index order (`state as usize`), e.g. to label the
    /// entries of [`FlowTable::count_by_state`].
    pub const ALL: [FlowState; 4] = [
        FlowState::Syn,
        FlowState::Established,
        FlowState::Closing,
        FlowState::Tombstone,
    ];

    /// The order in which a full table evicts: tombstones first, established
    /// connections last.
    pub const EVICTION_ORDER: [FlowState; 4] = [
        FlowState::Tombstone,
        FlowState::Syn,
        FlowState::Closing,
        FlowState::Established,
    ];

    /// Index of the state in per-state arrays (`[_; 4]`).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            FlowState::Syn => "syn",
            FlowState::Established => "established",
            FlowState::Closing => "closing",
            FlowState::Tombstone => "tombstone",
        }
    }
}

impl fmt::Display for FlowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Idle timeout of each state: a flow is forgotten once it has seen no packet
/// (no touch) for this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Half-open flows.
    pub syn: Duration,
    /// Established flows.
    pub established: Duration,
    /// Flows after FIN or RST.
    pub closing: Duration,
    /// Tombstones.
    pub tombstone: Duration,
}

impl Timeouts {
    /// The timeouts of the `[dataplane.flow_table.timeouts]` configuration.
    pub fn from_config(config: &shoal_config::FlowTimeouts) -> Self {
        Timeouts {
            syn: Duration::from_millis(config.syn_ms),
            established: Duration::from_secs(config.established_s),
            closing: Duration::from_secs(config.closing_s),
            tombstone: Duration::from_secs(config.tombstone_s),
        }
    }

    /// The timeout of `state`.
    pub const fn get(&self, state: FlowState) -> Duration {
        match state {
            FlowState::Syn => self.syn,
            FlowState::Established => self.established,
            FlowState::Closing => self.closing,
            FlowState::Tombstone => self.tombstone,
        }
    }

    /// The four timeouts in nanoseconds, indexed by [`FlowState::index`]
    /// (saturating at `u64::MAX`).
    fn as_nanos(&self) -> [u64; 4] {
        FlowState::ALL.map(|s| u64::try_from(self.get(s).as_nanos()).unwrap_or(u64::MAX))
    }
}

impl Default for Timeouts {
    /// The configuration's defaults.
    fn default() -> Self {
        Timeouts::from_config(&shoal_config::FlowTimeouts::default())
    }
}

/// One flow: its key, state, idle timer and the pipeline's value.
///
/// The state and timer are read-only here: they change only through the table
/// ([`FlowTable::set_state`], [`FlowMut::set_state`], touches), which keeps
/// the per-state counts and the timer wheel in step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow<V> {
    key: FlowKey,
    state: FlowState,
    last_seen: Instant,
    /// What the pipeline stores for this flow.
    pub value: V,
}

impl<V> Flow<V> {
    /// The flow's key (as inserted).
    pub fn key(&self) -> FlowKey {
        self.key
    }

    /// The flow's state.
    pub fn state(&self) -> FlowState {
        self.state
    }

    /// When the flow was last inserted, touched or changed state.
    pub fn last_seen(&self) -> Instant {
        self.last_seen
    }

    /// When the flow dies if not touched again: `last_seen + timeout(state)`.
    pub fn deadline(&self, timeouts: &Timeouts) -> Instant {
        self.last_seen + timeouts.get(self.state)
    }
}

/// What [`FlowTable::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Insert {
    /// The key was new (or its old flow had expired) and was added.
    Inserted,
    /// The key was live; its state, value and timer were replaced.
    Replaced,
    /// The table was full: the live flow `evicted` was dropped to make room.
    InsertedAfterEvicting {
        /// The key of the evicted flow.
        evicted: FlowKey,
    },
    /// The table was full and nothing could be evicted (capacity 0).
    Rejected,
}

/// Cumulative counters of one table (monotonic, for Prometheus counters).
/// Per-state arrays are indexed by [`FlowState::index`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// New flows added (`Inserted` and `InsertedAfterEvicting`).
    pub inserts: u64,
    /// Inserts that replaced a live flow with the same key.
    pub replaced: u64,
    /// Flows that timed out, by the state they died in (reclaimed by the
    /// sweep, found dead by a lookup, or reclaimed to make room).
    pub expired: [u64; 4],
    /// Live flows evicted to make room, by state.
    pub evicted: [u64; 4],
    /// Inserts refused because the table was full.
    pub rejected_full: u64,
    /// Flows removed by the pipeline ([`FlowTable::remove`], [`FlowMut::remove`]).
    pub removed: u64,
}

impl FlowStats {
    /// All expired flows.
    pub fn expired_total(&self) -> u64 {
        self.expired.iter().sum()
    }

    /// All evicted flows.
    pub fn evicted_total(&self) -> u64 {
        self.evicted.iter().sum()
    }
}
