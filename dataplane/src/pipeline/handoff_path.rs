//! Splice handover to another member (`docs/design.md`, "Splicing", step 3): the
//! inspector offers the connection in authenticated UDP datagrams
//! (`shoal_l7::handoff`, port 7947, between members' own addresses); the chosen
//! member replays it into its kernel (the same replay code as a local
//! handover) and accepts; the inspector keeps a tombstone and ignores the
//! client's packets, which the new owner sees on the shared segment. Lost
//! messages are resent; an offer nobody accepts falls back to a local
//! handover.

use core::net::{Ipv4Addr, SocketAddrV4};

use super::splice_path::{Conn, Phase};
use super::{FlowAction, FlowEntry, Pipeline, Plan, Verdict, WIRE};
use crate::counters::Counter;
use crate::flow::{FlowKey, FlowState, Insert};
use crate::traffic::Endpoint;
use crate::wire::{EthernetAddress, IpProtocol};
use shoal_l7::handoff::{
    ClusterKey, FlowSnapshot, HandoffId, Inspector, InspectorConfig, InspectorEvent, Link, Message,
    Negotiated, Origin, Receiver, ReceiverConfig, ReceiverEvent, RefuseReason, Timestamps,
    WindowScale, PORT,
};
use shoal_l7::reassembly::{RequestBuffer, SegmentOutcome};
use shoal_l7::syncookie::SynOptions;
use shoal_wire::time::Instant;

/// The handoff machinery of one worker.
#[derive(Debug)]
pub(super) struct Handoff {
    link: Link,
    inspector: Inspector,
    receiver: Receiver,
    /// Unix time (ms) at the monotonic clock's zero: message timestamps are
    /// compared across hosts.
    wall_offset_ms: u64,
}

impl Handoff {
    fn unix_ms(&self, now: Instant) -> u64 {
        self.wall_offset_ms + now.as_millis()
    }
}

impl Pipeline {
    /// Unix time in milliseconds at `now` (the monotonic clock's offset is
    /// known once handoff is enabled; before, milliseconds since start).
    pub(super) fn unix_ms(&self, now: Instant) -> u64 {
        self.handoff
            .as_ref()
            .map_or(now.as_millis(), |h| h.unix_ms(now))
    }

    /// Enables handing spliced connections to other members: `key` is the
    /// cluster key, `incarnation` distinguishes this process's messages
    /// from a previous run's, `wall_offset_ms` is the Unix time in ms at
    /// `Instant::ZERO`. The low 8 bits of `incarnation` are this worker's
    /// lane (`shoal_l7::handoff::lane`): every worker of a dataplane uses
    /// its own, and its handoff ids carry it too, so an answer reaches the
    /// worker that made the offer (`steer.rs`).
    pub fn enable_handoff(&mut self, key: ClusterKey, incarnation: u64, wall_offset_ms: u64) {
        let lane = shoal_l7::handoff::lane(incarnation);
        self.sticky_key = Some(key.clone());
        self.handoff = Some(Handoff {
            link: Link::new(key, self.tables.own_id, incarnation),
            inspector: Inspector::with_lane(InspectorConfig::default(), lane),
            receiver: Receiver::new(ReceiverConfig::default()),
            wall_offset_ms,
        });
    }

    /// Offers the connection in `slot` to `member`; false if it cannot be
    /// offered (no handoff configured, tables full): the caller serves it.
    pub(super) fn handoff_start(&mut self, slot: u32, member: u16, now: Instant) -> bool {
        let Some(conn) = self.conns.get_mut(slot) else {
            return false;
        };
        let Some(h) = self.handoff.as_mut() else {
            return false;
        };
        let snapshot = FlowSnapshot {
            client: SocketAddrV4::new(conn.key.src, conn.key.src_port),
            vip: SocketAddrV4::new(conn.key.dst, conn.key.dst_port),
            client_isn: conn.client_isn,
            cookie_isn: conn.cookie_isn,
            next_client_seq: conn.buf.ack_point(),
            next_server_seq: conn.cookie_isn.wrapping_add(1),
            client_window: conn.client_window,
            options: Negotiated {
                mss: conn.opts.mss,
                window_scale: conn.opts.window_scale.map(|client| WindowScale {
                    client,
                    inspector: conn.advertised_ws,
                }),
                sack_permitted: conn.opts.sack_permitted,
                timestamps: conn.opts.client_tsval.map(|_| Timestamps {
                    client_tsval: conn.client_tsval,
                    inspector_tsval: conn.tsval_sent,
                }),
            },
        };
        match h
            .inspector
            .start(member, snapshot, conn.buf.contiguous(), now)
        {
            Ok(id) => {
                conn.phase = Phase::HandingOff;
                self.conns.set_handoff(slot, id);
                self.counters.inc(Counter::HandoffOffered);
                // Send the offer now rather than at the end of the burst.
                self.handoff_poll(now);
                true
            }
            Err(_) => false,
        }
    }

    /// Forgets the offer `id` in flight: its connection gave way to a new
    /// one on the same 4-tuple (`reuse`). No event follows.
    pub(super) fn handoff_cancel(&mut self, id: HandoffId, now: Instant) {
        if let Some(h) = self.handoff.as_mut() {
            h.inspector.cancel(id, now);
        }
    }

    /// A datagram to this member's handoff port.
    pub(super) fn handoff_datagram(&mut self, payload: &[u8], now: Instant) -> Plan {
        let Some(h) = self.handoff.as_mut() else {
            return Plan::Done(self.drop(Counter::HandoffRejected));
        };
        let unix = h.unix_ms(now);
        match h.link.open(payload, unix) {
            Ok(received) => {
                let mut located = None;
                match &received.message {
                    Message::Offer(_) => {
                        h.receiver
                            .on_message(received.origin, &received.message, now);
                    }
                    Message::Accept(_) | Message::Refuse(_) => {
                        h.inspector
                            .on_message(received.origin.member, &received.message, now);
                    }
                    Message::Located(l) => located = Some((received.origin.member, *l)),
                }
                self.counters.inc(Counter::HandoffDatagram);
                if let Some((member, l)) = located {
                    self.routed_learn(member, &l, now);
                }
                self.handoff_poll(now);
                Plan::Done(Verdict::Drop)
            }
            Err(e) => {
                use shoal_l7::handoff::message::HandoffError;
                use shoal_l7::handoff::{OpenError, Rejection};
                self.counters.inc(match e {
                    OpenError::Decode(HandoffError::BadMac) => Counter::HandoffRejectedBadMac,
                    OpenError::Decode(_) => Counter::HandoffRejectedMalformed,
                    OpenError::NotForUs { .. } => Counter::HandoffRejectedNotForUs,
                    OpenError::ClockSkew { .. } => Counter::HandoffRejectedClockSkew,
                    OpenError::Rejected {
                        why: Rejection::Replayed,
                        ..
                    } => Counter::HandoffRejectedReplayed,
                    OpenError::Rejected {
                        why: Rejection::Stale,
                        ..
                    } => Counter::HandoffRejectedStale,
                });
                Plan::Done(self.drop(Counter::HandoffRejected))
            }
        }
    }

    /// Runs both state machines: sends what they ask for, replays offered
    /// connections, settles handed-over and fallen-back ones.
    pub(super) fn handoff_poll(&mut self, now: Instant) {
        let Some(h) = self.handoff.as_mut() else {
            return;
        };
        let inspector_events: Vec<InspectorEvent> = h.inspector.poll(now).collect();
        let receiver_events: Vec<ReceiverEvent> = h.receiver.poll(now).collect();
        for e in inspector_events {
            match e {
                InspectorEvent::Send { to, message } => self.handoff_send(to, &message, now),
                InspectorEvent::HandedOver { id, to, .. } => {
                    if let Some(slot) = self.conns.by_handoff(id) {
                        if let Some(conn) = self.conns.release(slot) {
                            if conn.moving {
                                self.counters.inc(Counter::RehandoffDone);
                            }
                            if let Some(mut flow) = self.flows.lookup_touch(&conn.key, now) {
                                flow.value_mut().action = FlowAction::HandedOff { member: to };
                                flow.set_state(FlowState::Tombstone, now);
                                self.flows.note_changed(conn.key);
                            }
                        }
                    }
                    self.counters.inc(Counter::HandoffHandedOver);
                }
                InspectorEvent::Fallback { id, .. } => {
                    if let Some(slot) = self.conns.by_handoff(id) {
                        self.counters.inc(Counter::HandoffFallback);
                        if let Some(c) = self.conns.get_mut(slot).filter(|c| c.moving) {
                            let (key, to) = (c.key, c.target);
                            self.counters.inc(Counter::RehandoffFallback);
                            self.log_move(key, super::moves::MoveKind::Fallback { to }, 0, now);
                        }
                        self.replay_syn(slot, now);
                    }
                }
                InspectorEvent::LateAccept { .. } => self.counters.inc(Counter::HandoffLateAccept),
            }
        }
        for e in receiver_events {
            match e {
                ReceiverEvent::Send { to, message } => self.handoff_send(to, &message, now),
                ReceiverEvent::Replay { origin, offer } => {
                    self.handoff_replay(origin, offer.id, &offer.snapshot, &offer.request, now);
                }
                ReceiverEvent::ReplayTimedOut { origin, id } => {
                    if let Some(slot) = self.conns.by_remote(origin, id) {
                        if let Some(conn) = self.conns.release(slot) {
                            self.flows.remove(&conn.key);
                        }
                    }
                }
            }
        }
    }

    /// The receiving member: take over an offered connection by replaying it
    /// into this kernel.
    fn handoff_replay(
        &mut self,
        origin: Origin,
        id: HandoffId,
        s: &FlowSnapshot,
        request: &[u8],
        now: Instant,
    ) {
        let key = FlowKey::new(
            *s.client.ip(),
            s.client.port(),
            *s.vip.ip(),
            s.vip.port(),
            IpProtocol::Tcp.into(),
        );
        let service = self
            .tables
            .services
            .iter()
            .position(|x| x.vip == key.dst && x.port == key.dst_port);
        let refuse = |p: &mut Pipeline, reason| {
            if let Some(h) = p.handoff.as_mut() {
                let _ = h.receiver.refused(origin, id, reason, now);
            }
        };
        let Some(service) = service else {
            return refuse(self, RefuseReason::UnknownService);
        };
        // A persistent connection's later requests are collected in the
        // same buffer (`persist`): the service's limit, or the offer's size
        // if larger.
        let limit = self.tables.services[service]
            .dispatch
            .as_ref()
            .map_or(16 * 1024, |d| d.max_request_bytes as usize);
        let mut buf = RequestBuffer::new(s.client_isn.wrapping_add(1), request.len().max(limit));
        // The offer's request bytes into a buffer at least their size: in
        // order from the first byte, so nothing can be refused or cut (an
        // empty request stores nothing). Not a client segment: not counted
        // as one.
        let stored = buf.insert(s.client_isn.wrapping_add(1), request);
        debug_assert!(matches!(
            stored,
            SegmentOutcome::Advanced | SegmentOutcome::Duplicate
        ));
        let inspector_mac = self
            .tables
            .member(origin.member)
            .map_or(self.tables.own_mac, |m| m.mac);
        let conn = Conn {
            key,
            client_mac: inspector_mac,
            opts: SynOptions {
                mss: s.options.mss,
                window_scale: s.options.window_scale.map(|w| w.client),
                sack_permitted: s.options.sack_permitted,
                client_tsval: s.options.timestamps.map(|t| t.client_tsval),
            },
            cookie_isn: s.cookie_isn,
            client_isn: s.client_isn,
            client_tsval: s.options.timestamps.map_or(0, |t| t.client_tsval),
            client_window: s.client_window,
            tsval_sent: s.options.timestamps.map_or(0, |t| t.inspector_tsval),
            buf,
            started: now,
            phase: Phase::Replaying,
            handoff: None,
            remote: Some((origin, id)),
            advertised_ws: s.options.window_scale.map_or(0, |w| w.inspector),
            moving: false,
            target: 0,
        };
        let Some(slot) = self.conns.alloc(conn) else {
            return refuse(self, RefuseReason::Busy);
        };
        let action = FlowAction::Splicing {
            slot,
            service: service as u16,
        };
        // State of an earlier connection on the 4-tuple (its new SYN was
        // missed here) gives way, as on the SYN (`reuse`).
        let _ = self.syn_meets_flow(&key, s.client_isn, now);
        let entry = FlowEntry::new(action, s.client_isn);
        if self.flows.insert(key, FlowState::Established, entry, now) == Insert::Rejected {
            self.conns.release(slot);
            return refuse(self, RefuseReason::Busy);
        }
        self.counters.inc(Counter::HandoffReceived);
        self.replay_syn(slot, now);
    }

    /// After the kernel's SYN-ACK of a connection another member offered.
    pub(super) fn handoff_accepted(
        &mut self,
        remote: (Origin, HandoffId),
        kernel_isn: u32,
        now: Instant,
    ) {
        if let Some(h) = self.handoff.as_mut() {
            let _ = h.receiver.accepted(remote.0, remote.1, kernel_isn, now);
        }
        self.handoff_poll(now);
    }

    pub(super) fn handoff_send(&mut self, to: u16, message: &Message, now: Instant) {
        let Some(member) = self.tables.member(to).cloned() else {
            return;
        };
        let Some(h) = self.handoff.as_mut() else {
            return;
        };
        let unix = h.unix_ms(now);
        let payload = h.link.seal(to, message, unix);
        let t = &self.tables;
        let frame = udp_frame(
            (t.own_mac, t.own_addr),
            (member.mac, member.addr),
            PORT,
            &payload,
        );
        self.emitted.push((WIRE, frame));
    }
}

/// An Ethernet/IPv4/UDP frame between two members' own addresses.
fn udp_frame(
    src: (EthernetAddress, Ipv4Addr),
    dst: (EthernetAddress, Ipv4Addr),
    port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let end = |(mac, ip): (EthernetAddress, Ipv4Addr)| Endpoint { mac, ip, port };
    crate::traffic::udp_frame(&end(src), &end(dst), payload, 0)
}
