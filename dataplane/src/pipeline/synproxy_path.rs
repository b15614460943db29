//! SYN-flood defence of the L4 TCP services (`local`, `dpr-mac`,
//! `dpr-ipip`; `services.syn_proxy`, issue 17), on the inspector, built from
//! the splice machinery rather than beside it:
//!
//! 1. A SYN this member claims, while the proxy is on for its service
//!    (`on`, or `auto` above the half-open threshold: [`Pipeline::syn_proxy_now`]),
//!    is answered with a SYN cookie (`Pipeline::answer_with_cookie`, the
//!    splice path's SYN-ACK): no flow, no setup slot, nothing to the kernel.
//!    A flood of spoofed SYNs therefore leaves the flow table and the
//!    kernel's backlog alone.
//! 2. An ACK without a flow, to such a service, that this member inspects
//!    in the current or a pending epoch, while this worker has cookies of
//!    that service outstanding, is checked against this member's cookie
//!    keys (`Pipeline::cookie_conn`, any epoch's cookie). Valid: a setup slot
//!    and an `Established` flow `Splicing` (`Pipeline::open_setup`), and the
//!    connection is placed **at once**, without waiting for data (L4
//!    services may be server-speaks-first, SMTP or SSH):
//!    - the connection's member is this one (`local`, or the DPR target is
//!      this member): the client's SYN is replayed into this kernel
//!      (`Pipeline::emit_replayed_syn`); its SYN-ACK sets up the translation
//!      and the flow becomes `Spliced` (`Pipeline::splice_kernel_synack`),
//!      as a splice connection handed to its own inspector;
//!    - the DPR target is another member (stateless: the target hash;
//!      stateful: the load choice): the connection is offered to it by the
//!      authenticated handoff (`Pipeline::handoff_start`), which replays it
//!      into its kernel, answers the client directly and owns the flow; this
//!      member keeps a tombstone, as after a splice handoff. Without a
//!      handoff (no cluster key, table full) it is served here
//!      (`synproxy_kept_here`). The target must see the client's packets
//!      itself (the shared segment every member listens on), as for splice.
//!
//!    Invalid: dropped and counted (`synproxy_cookie_rejected`), except for
//!    stateless DPR, whose connections set up on the plain path never have
//!    a flow on the inspector: those go on to the target hash.
//! 3. Client bytes that arrive before the kernel's SYN-ACK are held in the
//!    connection's buffer (`splice_path.rs`, `Conn::hold`) and given to the
//!    kernel with the ACK that completes its handshake; nothing the client
//!    sends early is lost. (Handed to another member: the bytes on the
//!    cookie ACK travel in the offer, and the target holds what it sees
//!    once it has the offer; a segment that reaches the target before the
//!    offer is resent by the client after its retransmission timeout.) A kernel that never answers (no listener) leaves
//!    the connection to the setup timeout: the client gets a RST
//!    (`synproxy_timeout`).
//!
//! `auto` (the default) proxies a worker's SYNs of a service only while
//! that worker's flow table holds more than `syn_proxy_half_open`
//! half-open (`Syn`) flows (at most half its capacity), so connections set
//! up while there is no flood keep the plain path, and costs one table
//! gauge read per SYN then. Once engaged it stays so until a whole SYN
//! timeout has passed with at most half the threshold in half-open flows
//! *and* in cookies sent but not answered: the half-open flows the plain
//! path would have made.
//!
//! What the proxy costs a connection: the cookie keeps the MSS (rounded to
//! Linux's table) and, only when the client offers timestamps, window
//! scale and SACK (as Linux's own SYN cookies); every segment of the
//! connection is then translated (sequence numbers, timestamps, window) as a
//! spliced one.
//!
//! This module owns the proxy's per-service state and decisions; it does
//! not build packets (the splice path does) and keeps no per-connection
//! state of its own.

use core::time::Duration;
use std::sync::Arc;

use shoal_config::SynProxy;
use shoal_l7::syncookie::{COOKIE_PERIOD, MAX_AGE};
use shoal_select::ClientKey;
use shoal_wire::time::Instant;

use super::splice_path::Phase;
use super::{FlowAction, Pipeline, Plan, Tables};
use crate::counters::Counter;
use crate::flow::{FlowKey, FlowState};
use crate::wire::{EthernetAddress, TcpPacket};

/// How long after a cookie was sent an ACK can still carry it: a cookie is
/// accepted in the period it was issued in and `MAX_AGE` periods after.
const COOKIE_LIFE: Duration = COOKIE_PERIOD.saturating_mul(MAX_AGE + 1);

/// One worker's SYN proxy state for one service (32 bytes; one per
/// service per worker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ProxyState {
    /// `auto`: this worker proxies the service's SYNs now.
    engaged: bool,
    /// `auto`, engaged: when the window `unanswered` counts over began.
    window_start: Instant,
    /// `auto`, engaged: cookies sent in the window, less those answered.
    unanswered: u32,
    /// The last cookie sent for the service: ACKs are checked for a cookie
    /// only within [`COOKIE_LIFE`] after it.
    last_cookie: Option<Instant>,
}

const _: () = assert!(core::mem::size_of::<ProxyState>() == 32);

/// The proxy states for `new`'s services: a service that `old` has too (same
/// VIP, port and protocol) keeps its state across the swap (an epoch change
/// must not forget outstanding cookies or an engaged flood defence).
pub(super) fn carry_over(old: &Tables, new: &Tables, states: &[ProxyState]) -> Vec<ProxyState> {
    new.services
        .iter()
        .map(|s| {
            old.service_index(s.vip, s.port, s.protocol)
                .and_then(|i| states.get(i).copied())
                .unwrap_or_default()
        })
        .collect()
}

impl Pipeline {
    /// Whether this worker answers a SYN of service `index` it claims with a
    /// cookie now (`on`; `auto` while engaged, see the module documentation).
    pub(super) fn syn_proxy_now(&mut self, index: usize, now: Instant) -> bool {
        let Some(service) = self.tables.services.get(index) else {
            return false;
        };
        match service.syn_proxy {
            SynProxy::Off => false,
            SynProxy::On => true,
            SynProxy::Auto => {
                let threshold = (service.syn_proxy_half_open as usize)
                    .min(self.flows.capacity() / 2)
                    .max(1);
                let half_open = self.flows.count_by_state()[FlowState::Syn.index()];
                let window = self.flows.timeouts().syn;
                let Some(state) = self.synproxy.get_mut(index) else {
                    return false;
                };
                if !state.engaged {
                    if half_open > threshold {
                        state.engaged = true;
                        state.window_start = now;
                        state.unanswered = 0;
                        self.counters.inc(Counter::SynproxyEngaged);
                    }
                } else if now.saturating_since(state.window_start) >= window {
                    let calm = threshold / 2;
                    if half_open <= calm && state.unanswered as usize <= calm {
                        state.engaged = false;
                        self.counters.inc(Counter::SynproxyDisengaged);
                    } else {
                        state.window_start = now;
                        state.unanswered = 0;
                    }
                }
                state.engaged
            }
        }
    }

    /// A SYN of service `index` this member claims, proxied: a cookie
    /// SYN-ACK, no state.
    pub(super) fn synproxy_syn(
        &mut self,
        client_mac: EthernetAddress,
        key: FlowKey,
        index: usize,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Plan {
        self.answer_with_cookie(client_mac, key.src, key.dst, tcp, now);
        if let Some(state) = self.synproxy.get_mut(index) {
            state.last_cookie = Some(now);
            state.unanswered = state.unanswered.saturating_add(1);
        }
        Plan::Done(self.drop(Counter::SynproxyCookieSent))
    }

    /// Whether this worker sent a cookie for service `index` recently
    /// enough for an ACK to carry a valid one (whatever the service's
    /// setting is now: a reload to `off` still completes the handshakes
    /// already answered).
    pub(super) fn cookies_outstanding(&self, index: usize, now: Instant) -> bool {
        self.synproxy
            .get(index)
            .and_then(|s| s.last_cookie)
            .is_some_and(|sent| now.saturating_since(sent) < COOKIE_LIFE)
    }

    /// An ACK without a flow to L4 service `index` that this member
    /// inspects, with cookies outstanding: `None` if it carries no valid
    /// cookie of this member (the caller decides), else the connection is
    /// created and placed (the ACK itself is consumed).
    pub(super) fn synproxy_ack(
        &mut self,
        client_mac: EthernetAddress,
        key: FlowKey,
        index: usize,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Option<Plan> {
        let mut conn = self.cookie_conn(client_mac, key, index, tcp, now)?;
        // Not read by the dispatcher (there is none): straight to the kernel.
        conn.phase = Phase::Replaying;
        let slot = match self.open_setup(conn, index, now) {
            Ok(slot) => slot,
            Err(c) => return Some(Plan::Done(self.drop(c))),
        };
        if let Some(state) = self.synproxy.get_mut(index) {
            state.unanswered = state.unanswered.saturating_sub(1);
        }
        // Bytes riding on the cookie ACK wait for the kernel like later ones.
        self.splice_segment(slot, index, tcp, now);
        let client = ClientKey {
            addr: key.src,
            port: key.src_port,
        };
        let member = self.synproxy_member(index, client, now);
        let offered = member != self.tables.own_id && {
            let offered = self.handoff_start(slot, member, now);
            if !offered {
                self.counters.inc(Counter::SynproxyKeptHere);
            }
            offered
        };
        if !offered {
            self.emit_replayed_syn(slot, now);
        }
        Some(Plan::Done(self.drop(Counter::SynproxyAccepted)))
    }

    /// The member that serves a proxied connection of service `index` from
    /// `client`: where the plain path would place it (`l4_placement`).
    fn synproxy_member(&mut self, index: usize, client: ClientKey, now: Instant) -> u16 {
        let tables = Arc::clone(&self.tables);
        match self.l4_placement(&tables, index, client, now) {
            FlowAction::RedirectMac { member } | FlowAction::RedirectIpip { member } => member,
            _ => tables.own_id,
        }
    }

    /// A proxied connection in `slot` whose kernel did not answer within
    /// the setup timeout: the kernel's half-open socket (if any) and the
    /// client are reset, the connection forgotten.
    pub(super) fn synproxy_timeout(&mut self, slot: u32, now: Instant) {
        if let Some(conn) = self.conns.get_mut(slot) {
            if matches!(conn.phase, Phase::Replaying | Phase::ReplayedAgain) {
                let isn = conn.client_isn;
                self.reset_kernel(slot, isn.wrapping_add(1));
            }
        }
        self.counters.inc(Counter::SynproxyTimeout);
        self.answer_and_close(slot, None, now);
    }
}
