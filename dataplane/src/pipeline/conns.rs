//! The fixed-capacity table of connections being set up (splice, the SYN
//! proxy, a receiver's replay): the slots, and the two ways the hot path
//! finds one without looking at every slot.
//!
//! - **By age** (`by_age`): `(started, slot, generation)` in allocation
//!   order, which is the order of `started` (a worker's clock only goes
//!   forward), so the setup timeout looks at the oldest entries only. A
//!   released slot's entry stays until it reaches the front or a compaction
//!   drops it; its generation no longer matches. Before, the timeout scanned
//!   all 4 096 slots (≈ 1 MiB of `Option<Conn>`) on every poll while any
//!   connection was in setup, which under load took more than half of a
//!   worker's time (perf/README.md, "Where the splice path's time went").
//! - **By handoff id** (`by_handoff`, the inspector's offer) and **by
//!   origin and id** (`by_remote`, the receiver's side): the handoff
//!   answers name a connection by id, one lookup instead of a scan.
//!
//! Memory: the slots (`Option<Conn>`, ≈ 250 bytes each, the request buffer
//! boxed apart), 4 bytes of generation per slot, 16 bytes per `by_age`
//! entry for at most twice the slots, and the two maps sized for every slot
//! at creation, so no operation allocates while the table is not full.
//! Owns only bookkeeping: what a connection *is* stays in `splice_path.rs`.

use std::collections::{HashMap, VecDeque};

use shoal_l7::handoff::{HandoffId, Origin};
use shoal_wire::time::Instant;

use super::splice_path::{Conn, Phase};

/// Fixed-capacity table of connections being set up.
#[derive(Debug)]
pub(super) struct Conns {
    slots: Vec<Option<Conn>>,
    free: Vec<u32>,
    /// Bumped by every allocation of the slot: tells a `by_age` entry of
    /// the slot's current connection from one of a released connection.
    generations: Vec<u32>,
    /// `(started, slot, generation)` in allocation order (module docs).
    by_age: VecDeque<(Instant, u32, u32)>,
    by_handoff: HashMap<HandoffId, u32>,
    by_remote: HashMap<(Origin, HandoffId), u32>,
}

impl Conns {
    pub(super) fn new(capacity: usize) -> Conns {
        Conns {
            slots: (0..capacity).map(|_| None).collect(),
            free: (0..capacity as u32).rev().collect(),
            generations: vec![0; capacity],
            by_age: VecDeque::with_capacity(2 * capacity + 1),
            by_handoff: HashMap::with_capacity(capacity),
            by_remote: HashMap::with_capacity(capacity),
        }
    }

    pub(super) fn alloc(&mut self, conn: Conn) -> Option<u32> {
        let slot = self.free.pop()?;
        let i = slot as usize;
        self.generations[i] = self.generations[i].wrapping_add(1);
        if let Some(handoff) = conn.handoff {
            self.by_handoff.insert(handoff, slot);
        }
        if let Some(remote) = conn.remote {
            self.by_remote.insert(remote, slot);
        }
        if self.by_age.len() == self.by_age.capacity() {
            self.compact();
        }
        self.by_age
            .push_back((conn.started, slot, self.generations[i]));
        self.slots[i] = Some(conn);
        Some(slot)
    }

    pub(super) fn release(&mut self, slot: u32) -> Option<Conn> {
        let conn = self.slots.get_mut(slot as usize)?.take()?;
        if let Some(handoff) = conn.handoff {
            if self.by_handoff.get(&handoff) == Some(&slot) {
                self.by_handoff.remove(&handoff);
            }
        }
        if let Some(remote) = conn.remote {
            if self.by_remote.get(&remote) == Some(&slot) {
                self.by_remote.remove(&remote);
            }
        }
        self.free.push(slot);
        // Entries of released connections at the front go now; the others
        // when they reach it.
        self.drop_dead_front();
        Some(conn)
    }

    /// True if a connection can be added.
    pub(super) fn has_free(&self) -> bool {
        !self.free.is_empty()
    }

    /// True if no connection is being set up (every slot free).
    pub(super) fn is_empty(&self) -> bool {
        self.free.len() == self.slots.len()
    }

    pub(super) fn get_mut(&mut self, slot: u32) -> Option<&mut Conn> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// Records that the connection in `slot` is offered as handoff `id`.
    pub(super) fn set_handoff(&mut self, slot: u32, id: HandoffId) {
        if let Some(conn) = self.get_mut(slot) {
            conn.handoff = Some(id);
            self.by_handoff.insert(id, slot);
        }
    }

    /// The slot of the connection offered as handoff `id` (inspector side).
    pub(super) fn by_handoff(&self, id: HandoffId) -> Option<u32> {
        let slot = *self.by_handoff.get(&id)?;
        self.slot_matches(slot, |c| c.handoff == Some(id))
    }

    /// The slot of the connection `origin` offered as handoff `id`
    /// (receiver side).
    pub(super) fn by_remote(&self, origin: Origin, id: HandoffId) -> Option<u32> {
        let slot = *self.by_remote.get(&(origin, id))?;
        self.slot_matches(slot, |c| c.remote == Some((origin, id)))
    }

    fn slot_matches(&self, slot: u32, f: impl Fn(&Conn) -> bool) -> Option<u32> {
        self.slots
            .get(slot as usize)?
            .as_ref()
            .is_some_and(f)
            .then_some(slot)
    }

    /// Whether the connection in `slot` is watched in CARISMA rare mode
    /// (its handshake belongs to this kernel).
    pub(super) fn is_rare(&self, slot: u32) -> bool {
        self.slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .is_some_and(|c| matches!(c.phase, Phase::RareHandshake | Phase::RareAwaitHead))
    }

    /// Slots whose connection started before `deadline`, oldest first; looks
    /// only at the entries older than `deadline` (and stale ones among them).
    pub(super) fn older_than(&self, deadline: Instant) -> impl Iterator<Item = u32> + '_ {
        self.by_age
            .iter()
            .take_while(move |&&(started, _, _)| started < deadline)
            .filter(|&&(_, slot, generation)| self.live(slot, generation))
            .map(|&(_, slot, _)| slot)
    }

    /// Whether a `by_age` entry is the slot's current connection.
    fn live(&self, slot: u32, generation: u32) -> bool {
        let i = slot as usize;
        self.generations[i] == generation && self.slots[i].is_some()
    }

    fn drop_dead_front(&mut self) {
        while let Some(&(_, slot, generation)) = self.by_age.front() {
            if self.live(slot, generation) {
                break;
            }
            self.by_age.pop_front();
        }
    }

    /// Drops every stale entry: at most one entry per slot is live, so
    /// this leaves at least half the queue free.
    fn compact(&mut self) {
        let (generations, slots) = (&self.generations, &self.slots);
        self.by_age.retain(|&(_, slot, generation)| {
            generations[slot as usize] == generation && slots[slot as usize].is_some()
        });
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use proptest::prelude::*;
    use shoal_l7::reassembly::RequestBuffer;
    use shoal_l7::syncookie::SynOptions;

    use super::*;
    use crate::flow::FlowKey;
    use crate::wire::EthernetAddress;

    fn conn(port: u16, started_ms: u64) -> Conn {
        Conn {
            key: FlowKey {
                src: Ipv4Addr::new(198, 18, 0, 2),
                dst: Ipv4Addr::new(198, 18, 0, 100),
                src_port: port,
                dst_port: 80,
                proto: 6,
            },
            client_mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
            opts: SynOptions {
                mss: 1460,
                window_scale: None,
                sack_permitted: false,
                client_tsval: None,
            },
            cookie_isn: 1,
            client_isn: 2,
            client_tsval: 0,
            client_window: 1000,
            tsval_sent: 0,
            buf: RequestBuffer::new(3, 64),
            started: Instant::from_millis(started_ms),
            phase: Phase::Buffering,
            handoff: None,
            remote: None,
            advertised_ws: 7,
            moving: false,
            target: 0,
        }
    }

    fn origin(member: u16) -> Origin {
        Origin {
            member,
            incarnation: 9,
        }
    }

    #[test]
    fn handoff_ids_find_their_slot_until_released() {
        let mut t = Conns::new(4);
        let a = t.alloc(conn(1, 0)).unwrap();
        let mut c = conn(2, 0);
        c.remote = Some((origin(3), HandoffId(77)));
        let b = t.alloc(c).unwrap();
        t.set_handoff(a, HandoffId(5));
        assert_eq!(t.by_handoff(HandoffId(5)), Some(a));
        assert_eq!(t.by_handoff(HandoffId(6)), None);
        assert_eq!(t.by_remote(origin(3), HandoffId(77)), Some(b));
        assert_eq!(t.by_remote(origin(2), HandoffId(77)), None);
        assert_eq!(t.release(a).unwrap().handoff, Some(HandoffId(5)));
        assert_eq!(t.by_handoff(HandoffId(5)), None);
        // The slot's next connection is not found by the old id.
        let a2 = t.alloc(conn(3, 1)).unwrap();
        assert_eq!(a2, a);
        assert_eq!(t.by_handoff(HandoffId(5)), None);
        t.release(b);
        assert_eq!(t.by_remote(origin(3), HandoffId(77)), None);
    }

    #[test]
    fn the_queue_stays_bounded_under_churn() {
        let mut t = Conns::new(8);
        let cap = t.by_age.capacity();
        let mut held = Vec::new();
        for i in 0..10_000u64 {
            let slot = t.alloc(conn(i as u16, i)).unwrap();
            // One connection in three stays a while, the others go at once.
            if i % 3 == 0 {
                held.push(slot);
                if held.len() > 4 {
                    t.release(held.remove(0));
                }
            } else {
                t.release(slot);
            }
            assert!(t.by_age.len() <= cap, "queue grew to {}", t.by_age.len());
        }
        assert_eq!(t.by_age.capacity(), cap, "the queue reallocated");
        let live: Vec<u32> = t.older_than(Instant::from_millis(u64::MAX / 2)).collect();
        assert_eq!(live.len(), held.len());
    }

    proptest! {
        /// `older_than` is the scan of every slot it replaces: the same
        /// slots, oldest first, over any sequence of allocations (at a
        /// clock that only goes forward) and releases.
        #[test]
        fn older_than_equals_a_scan(ops in prop::collection::vec((any::<bool>(), 0u64..3, 0usize..16), 1..400),
                                    probe in 0u64..1200) {
            let mut t = Conns::new(16);
            let mut now = 0u64;
            for (alloc, step, pick) in ops {
                now += step;
                if alloc {
                    let _ = t.alloc(conn(now as u16, now));
                } else {
                    let _ = t.release(pick as u32);
                }
                let deadline = Instant::from_millis(now.min(probe));
                let mut scan: Vec<(Instant, u32)> = t
                    .slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| c.as_ref().filter(|c| c.started < deadline).map(|c| (c.started, i as u32)))
                    .collect();
                scan.sort();
                let got: Vec<u32> = t.older_than(deadline).collect();
                let mut sorted_got: Vec<u32> = got.clone();
                sorted_got.sort_unstable();
                let mut want: Vec<u32> = scan.iter().map(|&(_, s)| s).collect();
                want.sort_unstable();
                prop_assert_eq!(sorted_got, want);
                // Oldest first.
                let ages: Vec<Instant> = got.iter().map(|&s| t.slots[s as usize].as_ref().unwrap().started).collect();
                prop_assert!(ages.windows(2).all(|w| w[0] <= w[1]));
            }
        }
    }
}
