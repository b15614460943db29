//! A new connection on a reused 4-tuple (`docs/design.md`, "Exactly one server
//! per connection"): whatever an earlier connection on the same client address
//! and port left on a member — a local flow, a redirect entry, a connection
//! in splice setup, a spliced flow, an inspector's tombstone — a new SYN
//! from the client is a new connection on every member and in every mode.
//! Busy clients reuse 4-tuples within seconds once the server closed first
//! (the server holds TIME-WAIT, not the client), so this is the normal case
//! under load, not a corner.
//!
//! This module owns that decision ([`FlowEntry::is_own_syn`]), what a
//! member drops when it applies ([`Pipeline::syn_meets_flow`]), and the
//! replayed SYN that finds the kernel still holding the old connection's
//! socket ([`Pipeline::replay_met_old_socket`]). It never sends anything to
//! a client: only this member's own kernel gets a RST, for a socket this
//! member put there.
//!
//! # The rule
//!
//! Every flow entry remembers the client's ISN (the sequence number of the
//! SYN that opened its connection) and whether a FIN or RST was seen on it,
//! in either direction. A pure SYN on a 4-tuple with a live flow is
//!
//! - the connection's own SYN, retransmitted, if it carries that ISN and no
//!   FIN or RST was seen: the flow handles it as any of its packets
//!   (`syn_retransmit`); no state is created;
//! - otherwise the first SYN of a new connection: the old state is dropped
//!   (`tuple_reused`, and by kind below) and the SYN is placed as if the
//!   4-tuple were unknown: the selector names the inspector, which answers
//!   it as the service's mode says; the other members now hold nothing for
//!   the 4-tuple, so they neither swallow the new connection's packets nor
//!   forward them with the old connection's translation.
//!
//! Every member applies the rule to the same client packets with the same
//! ISN (the inspector learns it from the SYN or the cookie ACK, a receiver
//! from the handoff or the redirected SYN), so they agree. The one input
//! they may not share is the server's FIN or RST, which only the member
//! whose kernel sent it sees; it matters only for a SYN with the old ISN,
//! and after the server's FIN or RST that can only be an old duplicate.
//!
//! Two choices, and why:
//!
//! - **Any other ISN is a new connection**, also one inside the sequence
//!   space the old connection used. A TCP sends one ISN per connection, so
//!   another one means the client has dropped the old connection. A
//!   narrower rule ("outside the old window") would be wrong exactly where
//!   the members cannot see enough: an inspector's tombstone sees only the
//!   client's half, never the server's FIN or RST, and would swallow a SYN
//!   that a client sends inside the old space after a server reset (a long
//!   upload outruns the ISN clock), refreshed by every retransmission. It
//!   would buy nothing against forged SYNs either: one outside the window
//!   does the same.
//! - **The old ISN after a FIN or RST is a new connection** too. After the
//!   old connection ended its SYN needs no answer from the old state, so
//!   such a SYN is either an old duplicate (answered as a new connection:
//!   at worst a SYN-ACK the client resets, or the kernel's own TIME-WAIT
//!   rules) or a client that reuses ISNs (a test tool) and would otherwise
//!   be swallowed by a tombstone until it gave up.
//!
//! # What each kind of old state does
//!
//! | old action | who holds it | on a new SYN (besides dropping it) | counter |
//! |---|---|---|---|
//! | `Local` | inspector (`local`, DPR kept here, rare kept) | nothing: the kernel sees the client's own SYN and applies its own TIME-WAIT rules, as without Shoal | `tuple_reused_local` |
//! | `RedirectMac`, `RedirectIpip` | DPR stateful inspector | nothing: the SYN is placed again (by load) | `tuple_reused_redirect` |
//! | `Received` | DPR receiver | nothing: its broadcast copy is placed (another member's SYN), the inspector's redirected copy then creates a new `Received` flow | `tuple_reused_received` |
//! | `Splicing` | splice setup (inspector or receiver) | the setup slot is freed, an offer in flight cancelled, and a kernel socket the setup opened (replayed SYN, or rare mode's handshake) reset exactly (`seq` = client ISN + 1) | `tuple_reused_splicing` |
//! | `Spliced` | the member whose kernel serves it | nothing now; the kernel's old socket (TIME-WAIT) is dealt with when a SYN is replayed into it, below | `tuple_reused_spliced` |
//! | `HandedOff` | the inspector (tombstone) | nothing: it answers the SYN afresh (SYN cookie), as the inspector | `tuple_reused_tombstone` |
//!
//! # The kernel's old socket
//!
//! A splice member replays the client's SYN into its kernel
//! (`docs/splice-replay.md`), and that kernel may still hold a socket of the old
//! connection on the same 4-tuple, most often TIME-WAIT (the server closed
//! first). Linux takes a SYN into TIME-WAIT as a new connection if its
//! sequence number is after the old `rcv_nxt` or its timestamp newer than
//! the last one seen (RFC 6191 style; always so for Linux clients, whose
//! ISN clock and timestamp offset are per 4-tuple), and otherwise answers
//! with an ACK of the old connection (rate-limited to one per 500 ms per
//! socket). An orphaned FIN-WAIT-2 answers an in-window SYN with a RST and
//! drops itself; an established socket answers any SYN with a challenge
//! ACK (RFC 5961); a SYN-RECV socket answers a SYN with another ISN with an
//! ACK (outside its window) or a RST (inside). So when the kernel answers a replayed SYN with an ACK, the
//! dataplane does what the client's own stack does in SYN-SENT (RFC 9293
//! 3.10.7.3): a RST with `seq` = that ACK's acknowledgement number, which
//! is the old socket's `rcv_nxt` exactly and removes it (`docs/splice-replay.md` §4: exact
//! RST in ESTABLISHED, FIN-WAIT, TIME-WAIT; `tcp_rfc1337` = 0) — then it
//! replays the SYN once more. After a RST from the kernel it replays once
//! more too. One retry per connection: a kernel that refuses again (no
//! listener) leaves the connection to the setup timeout as before.
//! `splice_replay_old_socket` counts the retries.

use super::splice_path::Phase;
use super::{FlowAction, Pipeline};
use crate::counters::Counter;
use crate::flow::{FlowKey, FlowState};
use crate::wire::TcpPacket;
use shoal_wire::time::Instant;

/// What the flow table keeps per flow: the action, and what tells the
/// connection's own SYN from a new connection's (see the module
/// documentation). 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEntry {
    /// How to treat the flow's packets.
    pub action: FlowAction,
    /// The client's ISN: the sequence number of the SYN that opened the
    /// connection. For a flow first seen after its SYN (a redirected
    /// connection picked up mid-stream), one before the first sequence
    /// number seen.
    pub client_isn: u32,
    /// A FIN or RST was seen on the flow, in either direction.
    pub ended: bool,
    /// The flow is closing only because of a RST from the client's side,
    /// which may be blind (RFC 5961: a forged RST out of window, which the
    /// kernel answers with a challenge ACK and ignores): a later segment
    /// from the client without FIN or RST shows the connection lives, and
    /// the flow is established again instead of expiring under it.
    pub client_reset: bool,
}

impl FlowEntry {
    /// A flow with `action` for the connection whose SYN carried `client_isn`.
    pub const fn new(action: FlowAction, client_isn: u32) -> Self {
        FlowEntry {
            action,
            client_isn,
            ended: false,
            client_reset: false,
        }
    }

    /// Whether a pure SYN with sequence number `seq` is this connection's
    /// own SYN, retransmitted; if not, it opens a new connection.
    pub const fn is_own_syn(&self, seq: u32) -> bool {
        !self.ended && seq == self.client_isn
    }
}

// The flow table's memory statement (`flow/table.rs`) counts on these.
const _: () = assert!(core::mem::size_of::<FlowEntry>() == 24);
const _: () = assert!(core::mem::size_of::<Option<crate::flow::Flow<FlowEntry>>>() == 48);

/// What a pure SYN found in the flow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SynOnFlow {
    /// No live flow for the 4-tuple.
    NoFlow,
    /// The flow's own SYN (a retransmission): the flow stays.
    OwnSyn,
    /// The flow held an earlier connection; it was dropped.
    Reused,
}

impl Pipeline {
    /// A pure SYN with sequence number `seq` on `key`: when a live flow
    /// holds an earlier connection, drops it and what belongs to it (see the
    /// module documentation) so the SYN is placed afresh.
    pub(super) fn syn_meets_flow(&mut self, key: &FlowKey, seq: u32, now: Instant) -> SynOnFlow {
        let Some(flow) = self.flows.lookup_touch(key, now) else {
            return SynOnFlow::NoFlow;
        };
        if flow.value.is_own_syn(seq) {
            return SynOnFlow::OwnSyn;
        }
        let old = flow.remove().action;
        let kind = match old {
            FlowAction::Local => Counter::TupleReusedLocal,
            FlowAction::RedirectMac { .. } | FlowAction::RedirectIpip { .. } => {
                Counter::TupleReusedRedirect
            }
            FlowAction::Received => Counter::TupleReusedReceived,
            FlowAction::Splicing { slot, .. } => {
                self.abandon_setup(slot, now);
                Counter::TupleReusedSplicing
            }
            FlowAction::Spliced(_) | FlowAction::Tracked { .. } => Counter::TupleReusedSpliced,
            FlowAction::HandedOff { .. } => Counter::TupleReusedTombstone,
        };
        self.counters.inc(Counter::TupleReused);
        self.counters.inc(kind);
        SynOnFlow::Reused
    }

    /// A connection in splice setup gives way to a new one on its 4-tuple:
    /// its offer in flight is cancelled, a kernel socket the setup opened is
    /// reset exactly (the kernel has seen the SYN and at most the handshake's
    /// ACK: `rcv_nxt` = client ISN + 1), and the slot is freed.
    fn abandon_setup(&mut self, slot: u32, now: Instant) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let (phase, handoff, isn) = (conn.phase, conn.handoff, conn.client_isn);
        if let (Some(id), Phase::HandingOff) = (handoff, phase) {
            self.handoff_cancel(id, now);
        }
        if matches!(
            phase,
            Phase::Replaying | Phase::ReplayedAgain | Phase::RareHandshake | Phase::RareAwaitHead
        ) {
            self.reset_kernel(slot, isn.wrapping_add(1));
        }
        self.conns.release(slot);
    }

    /// A kernel segment for a connection in splice setup that is not its
    /// SYN-ACK. If it answers the replayed SYN (an ACK or a RST while
    /// replaying), the kernel still holds a socket of an earlier connection
    /// on the 4-tuple: reset it (after an ACK: `seq` = its acknowledgement
    /// number) and replay the SYN once more (see the module documentation).
    /// The caller drops the segment either way.
    pub(super) fn replay_met_old_socket(
        &mut self,
        key: &FlowKey,
        slot: u32,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) {
        let replaying = self
            .conns
            .get_mut(slot)
            .is_some_and(|c| c.phase == Phase::Replaying);
        if !replaying || tcp.syn() || !(tcp.ack() || tcp.rst()) {
            return;
        }
        if !tcp.rst() {
            self.reset_kernel(slot, tcp.ack_number());
        }
        // The kernel's RST moved the flow to closing; the new connection is
        // still being set up.
        if let Some(mut flow) = self.flows.lookup_touch(key, now) {
            flow.value_mut().ended = false;
            flow.set_state(FlowState::Established, now);
        }
        self.counters.inc(Counter::SpliceReplayOldSocket);
        if self.emit_replayed_syn(slot, now) {
            if let Some(conn) = self.conns.get_mut(slot) {
                conn.phase = Phase::ReplayedAgain;
            }
        }
    }
}
