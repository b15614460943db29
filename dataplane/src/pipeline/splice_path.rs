//! L7 splicing on the inspector, handover to the local kernel (CARISMA
//! *frequent*, `docs/design.md` "Splicing" steps 1-4 with the processing server being
//! the inspector itself).
//!
//! 1. A SYN the inspector owns is answered with a SYN cookie: no state.
//! 2. The client's ACK proves the cookie: a connection slot with a bounded
//!    request buffer is created; request segments are ACKed by the dataplane.
//! 3. When the request head is complete, the service's dispatch policy names
//!    a member (and why: `dispatch_<reason>` counts it). The connection is replayed into this member's kernel through
//!    the TAP (SYN with the client's options, then the kernel's SYN-ACK is
//!    taken, then ACK + the request bytes).
//! 4. From then on the flow is spliced: sequence, acknowledgement, SACK,
//!    timestamps and window are translated in both directions
//!    (`shoal_l7::splice`), with incremental checksums.
//!
//! Handing over to *another* member (the `handoff` messages) is
//! `handoff_path.rs`; the table of connections in setup, with its age
//! order and handoff-id indexes, is `conns.rs`.

use core::net::Ipv4Addr;

use shoal_config::BadRequestAction;

use super::classes_path::{admit_request, ServiceClasses};
use super::sticky_path::sticky_choice;
use super::{FlowAction, FlowEntry, Pipeline, Plan, Tables, Verdict, KERNEL, WIRE};
use crate::counters::{Counter, Counters};
use crate::flow::{FlowKey, FlowState, Insert};
use crate::traffic::{tcp_frame, Endpoint};
use crate::wire::{EthernetAddress, TcpFlags, TcpOptionBytes, TcpPacket, TcpRepr};
use shoal_config::Mode;
use shoal_l7::answers::error_response;
use shoal_l7::classes::Answer;
use shoal_l7::dispatch::{Choice, Dispatcher, Reason};
use shoal_l7::handoff::{ClusterKey, HandoffId, Origin};
use shoal_l7::http::{buffered_head, RequestHead};
use shoal_l7::reassembly::RequestBuffer;
use shoal_l7::splice::SpliceParams;
use shoal_l7::syncookie::{counter_at, SynOptions};
use shoal_wire::time::Instant;

/// The window scale the inspector advertises to clients (`docs/splice-replay.md` §5: keep it
/// at or below the kernel's, which the lab pins to 7).
pub(super) const ADVERTISED_WSCALE: u8 = 7;

/// Where a spliced connection is before it is spliced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Collecting the request head.
    Buffering,
    /// The SYN went to the kernel; waiting for its SYN-ACK.
    Replaying,
    /// As `Replaying`, after the kernel answered the first replayed SYN
    /// with a socket of an earlier connection on the 4-tuple (reset since:
    /// `reuse`); not retried again.
    ReplayedAgain,
    /// Offered to another member; waiting for its answer.
    HandingOff,
    /// CARISMA rare: the SYN went to this kernel; waiting for its SYN-ACK.
    RareHandshake,
    /// CARISMA rare: this kernel did the handshake; the request is held in
    /// the dataplane until its head is complete.
    RareAwaitHead,
}

/// A connection between the cookie ACK and the kernel's SYN-ACK.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) key: FlowKey,
    pub(super) client_mac: EthernetAddress,
    pub(super) opts: SynOptions,
    pub(super) cookie_isn: u32,
    pub(super) client_isn: u32,
    pub(super) client_tsval: u32,
    pub(super) client_window: u16,
    /// Highest TSval the inspector sent the client.
    pub(super) tsval_sent: u32,
    pub(super) buf: RequestBuffer,
    pub(super) started: Instant,
    pub(super) phase: Phase,
    /// Inspector side: the handoff offering this connection.
    pub(super) handoff: Option<HandoffId>,
    /// Receiver side: who offered it (answered after the kernel's SYN-ACK).
    pub(super) remote: Option<(Origin, HandoffId)>,
    /// The window scale the client was told the server uses (the
    /// inspector's, or for rare mode the first kernel's).
    pub(super) advertised_ws: u8,
    /// A persistent connection moving on at a request boundary (`persist`),
    /// not a first handover.
    pub(super) moving: bool,
    /// The member a moving connection is offered to (0 otherwise).
    pub(super) target: u16,
}

impl Conn {
    /// Keeps a client segment's bytes for the kernel (and its newest
    /// timestamp and window), without answering it.
    fn hold(&mut self, tcp: &TcpPacket<&mut [u8]>) {
        if let Some((tsval, _)) = tcp.timestamps() {
            self.client_tsval = tsval;
        }
        self.client_window = tcp.window_len();
        // The bytes reach the kernel in segments the dataplane builds (with
        // checksums of their own): only intact ones are kept.
        if !tcp.payload().is_empty() && tcp.verify_checksum(self.key.src, self.key.dst) {
            // Beyond the buffer or too many holes: not stored, the client
            // resends once the kernel's ACKs reach it.
            let _ = self.buf.insert(tcp.seq_number(), tcp.payload());
        }
    }
}

/// A TCP segment the dataplane originates.
pub(super) struct Segment<'a> {
    pub(super) src: (EthernetAddress, Ipv4Addr, u16),
    pub(super) dst: (EthernetAddress, Ipv4Addr, u16),
    pub(super) tcp: TcpRepr,
    pub(super) payload: &'a [u8],
}

pub(super) fn bare_tcp(
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: Option<u32>,
    flags: TcpFlags,
    window: u16,
) -> TcpRepr {
    TcpRepr {
        src_port,
        dst_port,
        seq_number: seq,
        ack_number: ack,
        flags,
        window_len: window,
        urgent: 0,
        mss: None,
        window_scale: None,
        sack_permitted: false,
        sack_ranges: [None; 4],
        timestamps: None,
        unknown_options: TcpOptionBytes::default(),
    }
}

pub(super) fn build(seg: &Segment<'_>) -> Vec<u8> {
    let end = |(mac, ip, port): (EthernetAddress, Ipv4Addr, u16)| Endpoint { mac, ip, port };
    tcp_frame(&end(seg.src), &end(seg.dst), &seg.tcp, seg.payload, 0)
}

/// Where the dataplane's own answer to a client goes, in the client's view
/// of the connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct AnswerTo {
    /// The connection (client to VIP).
    pub key: FlowKey,
    /// The client's (or its router's) Ethernet address.
    pub client_mac: EthernetAddress,
    /// The options the client's SYN asked for.
    pub opts: SynOptions,
    /// The next server sequence number the client expects.
    pub seq: u32,
    /// What the answer acknowledges.
    pub ack: u32,
    /// `TSval` and `TSecr`, when the connection has timestamps.
    pub timestamps: (u32, u32),
}

impl AnswerTo {
    /// The client of a connection in setup (`conn`), acknowledging `ack`.
    fn of_conn(conn: &Conn, ack: u32, now: Instant) -> AnswerTo {
        AnswerTo {
            key: conn.key,
            client_mac: conn.client_mac,
            opts: conn.opts,
            seq: conn.cookie_isn.wrapping_add(1),
            ack,
            timestamps: (
                Pipeline::ts_clock(now).max(conn.tsval_sent),
                conn.client_tsval,
            ),
        }
    }
}

impl Pipeline {
    /// The inspector's TCP timestamp clock (milliseconds).
    fn ts_clock(now: Instant) -> u32 {
        now.as_millis() as u32
    }

    /// A SYN for a splice service this member inspects: answer with a SYN
    /// cookie (a new frame), keep no state, free the SYN.
    pub(super) fn splice_syn(
        &mut self,
        client_mac: EthernetAddress,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Plan {
        self.answer_with_cookie(client_mac, src, dst, tcp, now);
        self.counters.inc(Counter::SpliceCookieSent);
        Plan::Done(Verdict::Drop)
    }

    /// Answers the SYN `tcp` from `src` to `dst` with a SYN-ACK whose ISN
    /// is a SYN cookie (a new frame to the wire; the splice path and the
    /// L4 SYN proxy). Keeps no state; the caller counts it.
    pub(super) fn answer_with_cookie(
        &mut self,
        client_mac: EthernetAddress,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) {
        let opts = SynOptions::from_syn(tcp).cookie_view();
        let client = (src, tcp.src_port());
        let server = (dst, tcp.dst_port());
        let (cookie, ts_val) = self.cookies.encode(
            client,
            server,
            tcp.seq_number(),
            &opts,
            counter_at(now),
            Self::ts_clock(now),
        );
        let mut reply = bare_tcp(
            tcp.dst_port(),
            tcp.src_port(),
            cookie,
            Some(tcp.seq_number().wrapping_add(1)),
            TcpFlags::SYN | TcpFlags::ACK,
            0xFFFF,
        );
        // Routed, the client's segments may reach this member in GUE.
        let room = if self.tables.routed {
            super::routed::GUE_OVERHEAD + 40
        } else {
            40
        };
        reply.mss = Some(opts.mss.min(self.tables.mtu.saturating_sub(room)));
        reply.sack_permitted = opts.sack_permitted;
        reply.window_scale = opts.window_scale.map(|_| ADVERTISED_WSCALE);
        reply.timestamps = ts_val.zip(opts.client_tsval);
        let t = &self.tables;
        let frame = build(&Segment {
            src: (t.own_mac, dst, tcp.dst_port()),
            dst: (client_mac, src, tcp.src_port()),
            tcp: reply,
            payload: &[],
        });
        self.emitted.push((WIRE, frame));
    }

    /// A segment without a flow that may complete a cookie handshake.
    pub(super) fn splice_ack(
        &mut self,
        client_mac: EthernetAddress,
        key: FlowKey,
        service: usize,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Plan {
        let Some(conn) = self.cookie_conn(client_mac, key, service, tcp, now) else {
            return Plan::Done(self.drop(Counter::SpliceCookieRejected));
        };
        self.splice_accept(conn, service, tcp, now)
    }

    /// The ACK `tcp` completed the cookie handshake of `conn`: a setup
    /// slot (or a busy answer), and the ACK's request bytes buffered.
    pub(super) fn splice_accept(
        &mut self,
        conn: Conn,
        service: usize,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Plan {
        if !self.conns.has_free() {
            return Plan::Done(self.busy_answer(&conn, service, tcp, now));
        }
        let slot = match self.open_setup(conn, service, now) {
            Ok(slot) => slot,
            Err(c) => return Plan::Done(self.drop(c)),
        };
        self.counters.inc(Counter::SpliceHandshake);
        self.splice_segment(slot, service, tcp, now);
        Plan::Done(Verdict::Drop)
    }

    /// The connection the ACK `tcp` (on `key`, to service `service`)
    /// completes, if it carries a valid SYN cookie of this member (of any
    /// epoch: only this member's cookie key verifies it), in phase
    /// `Buffering`; `None` otherwise. Creates nothing.
    pub(super) fn cookie_conn(
        &self,
        client_mac: EthernetAddress,
        key: FlowKey,
        service: usize,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Option<Conn> {
        let client_isn = tcp.seq_number().wrapping_sub(1);
        let opts = self.cookies.decode(
            (key.src, key.src_port),
            (key.dst, key.dst_port),
            client_isn,
            tcp.ack_number(),
            tcp.timestamps(),
            counter_at(now),
        )?;
        let limit = self.tables.services[service]
            .dispatch
            .as_ref()
            .map_or(16 * 1024, |d| d.max_request_bytes as usize);
        Some(Conn {
            key,
            client_mac,
            opts,
            cookie_isn: tcp.ack_number().wrapping_sub(1),
            client_isn,
            client_tsval: tcp.timestamps().map_or(0, |t| t.0),
            client_window: tcp.window_len(),
            tsval_sent: Self::ts_clock(now),
            buf: RequestBuffer::new(tcp.seq_number(), limit),
            started: now,
            phase: Phase::Buffering,
            handoff: None,
            remote: None,
            advertised_ws: ADVERTISED_WSCALE,
            moving: false,
            target: 0,
        })
    }

    /// Puts `conn` (of service `service`), whose handshake with the client
    /// is complete, in a setup slot with an `Established` flow
    /// `Splicing`; `Err` names the outcome when either table is full.
    pub(super) fn open_setup(
        &mut self,
        conn: Conn,
        service: usize,
        now: Instant,
    ) -> Result<u32, Counter> {
        let (key, client_isn) = (conn.key, conn.client_isn);
        let slot = self.conns.alloc(conn).ok_or(Counter::SpliceConnTableFull)?;
        let action = FlowAction::Splicing {
            slot,
            service: service as u16,
        };
        if self.flows.insert(
            key,
            FlowState::Established,
            FlowEntry::new(action, client_isn),
            now,
        ) == Insert::Rejected
        {
            self.conns.release(slot);
            return Err(Counter::DropFlowTableFull);
        }
        Ok(slot)
    }

    /// A client segment of a connection being set up: buffer, ACK, and hand
    /// over once the request head is complete. The segment itself is consumed.
    pub(super) fn splice_segment(
        &mut self,
        slot: u32,
        service: usize,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.phase != Phase::Buffering {
            let l4 = self
                .tables
                .services
                .get(service)
                .is_some_and(|s| s.mode != Mode::Splice);
            if l4 && matches!(conn.phase, Phase::Replaying | Phase::ReplayedAgain) {
                // A SYN-proxied L4 connection: the client may send before
                // the kernel's SYN-ACK; its bytes go to the kernel with the
                // ACK that completes the kernel's handshake.
                conn.hold(tcp);
            }
            // Otherwise the kernel's ACKs will cover it once spliced; the
            // client resends.
            return;
        }
        if let Some((tsval, _)) = tcp.timestamps() {
            conn.client_tsval = tsval;
        }
        conn.client_window = tcp.window_len();
        let payload = tcp.payload();
        if !payload.is_empty() {
            let outcome = conn.buf.insert(tcp.seq_number(), payload);
            self.counters.inc(Counter::request_segment(outcome));
        }
        let head = buffered_head(&conn.buf);
        match head {
            Ok(Some(head)) => {
                let admitted = dispatch_and_admit(
                    DispatchState {
                        tables: &self.tables,
                        dispatchers: &mut self.dispatchers,
                        sticky_key: self.sticky_key.as_ref(),
                        counters: &mut self.counters,
                        pinned: self.pins.target(conn.key.src, now),
                    },
                    &mut self.classes,
                    service,
                    &head,
                    now,
                );
                let chosen = match admitted {
                    Ok(chosen) => chosen,
                    Err(answer) => {
                        self.close_with(slot, &answer, now);
                        return;
                    }
                };
                match chosen {
                    Some(m) if m != self.tables.own_id => {
                        if !self.handoff_start(slot, m, now) {
                            // No handoff configured (no cluster key) or its
                            // tables are full: serve it here.
                            self.counters.inc(Counter::SpliceRemoteNotWired);
                            self.replay_syn(slot, now);
                        }
                    }
                    _ => self.replay_syn(slot, now),
                }
            }
            Ok(None) => {
                if !payload.is_empty() {
                    self.ack_client(slot, now);
                }
            }
            Err(e) => {
                self.counters.inc(Counter::SpliceBadRequest);
                match self.bad_request(service, e.status()) {
                    BadRequest::To(m) if m != self.tables.own_id => {
                        if !self.handoff_start(slot, m, now) {
                            self.counters.inc(Counter::SpliceRemoteNotWired);
                            self.replay_syn(slot, now);
                        }
                    }
                    BadRequest::To(_) => self.replay_syn(slot, now),
                    BadRequest::Answer(status) => self.answer_and_close(slot, status, now),
                }
            }
        }
    }

    /// What a bad request of service `service` (whose error answer is
    /// `status`) gets: its `on_bad_request`, `pass-to-default` naming the
    /// default member while it is alive with weight (this member otherwise).
    fn bad_request(&self, service: usize, status: u16) -> BadRequest {
        let dispatch = self.tables.services[service].dispatch.as_ref();
        match dispatch.map_or(BadRequestAction::Respond, |d| d.on_bad_request) {
            BadRequestAction::Respond => BadRequest::Answer(Some(status)),
            BadRequestAction::Reset => BadRequest::Answer(None),
            BadRequestAction::PassToDefault => BadRequest::To(
                dispatch
                    .and_then(|d| d.default_member.as_deref())
                    .and_then(|name| self.tables.members.iter().find(|m| m.name == name))
                    .filter(|m| m.alive && m.effective_weight() > 0)
                    .map_or(self.tables.own_id, |m| m.id),
            ),
        }
    }

    /// An ACK (with SACK-less, timestamped) of everything buffered, to the client.
    fn ack_client(&mut self, slot: u32, now: Instant) {
        let own_mac = self.tables.own_mac;
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let tsval = Self::ts_clock(now).max(conn.tsval_sent);
        conn.tsval_sent = tsval;
        let mut ack = bare_tcp(
            conn.key.dst_port,
            conn.key.src_port,
            conn.cookie_isn.wrapping_add(1),
            Some(conn.buf.ack_point()),
            TcpFlags::ACK,
            0xFFFF,
        );
        ack.timestamps = conn.opts.timestamps().then_some((tsval, conn.client_tsval));
        let frame = build(&Segment {
            src: (own_mac, conn.key.dst, conn.key.dst_port),
            dst: (conn.client_mac, conn.key.src, conn.key.src_port),
            tcp: ack,
            payload: &[],
        });
        self.emitted.push((WIRE, frame));
    }

    /// Bad request: the configured answer (an HTTP error and FIN, or a RST),
    /// then the connection is forgotten.
    pub(super) fn answer_and_close(&mut self, slot: u32, status: Option<u16>, now: Instant) {
        let answer = match status {
            Some(status) => Answer::Respond(error_response(status).to_vec()),
            None => Answer::Reset,
        };
        self.close_with(slot, &answer, now);
    }

    /// Sends `answer` to the client of the connection in `slot` (a
    /// response in segments of at most its MSS, the last with FIN; or a
    /// RST), acknowledging what it sent, then forgets the connection.
    pub(super) fn close_with(&mut self, slot: u32, answer: &Answer, now: Instant) {
        let Some(conn) = self.conns.release(slot) else {
            return;
        };
        self.flows.remove(&conn.key);
        let to = AnswerTo::of_conn(&conn, conn.buf.ack_point(), now);
        self.send_answer(&to, answer);
    }

    /// `answer` to the client `to`: a response in segments of at most the
    /// client's MSS, the last with FIN, or a RST.
    pub(super) fn send_answer(&mut self, to: &AnswerTo, answer: &Answer) {
        match answer {
            Answer::Reset => self.send_to_client(to, 0xFFFF, &[], |_| TcpFlags::RST),
            Answer::Respond(body) => self.send_to_client(to, 0xFFFF, body, |last| {
                if last {
                    TcpFlags::PSH | TcpFlags::FIN
                } else {
                    TcpFlags::EMPTY
                }
            }),
        }
    }

    /// `bytes` to the client `to` from the VIP, in segments of at most the
    /// client's MSS (one segment if empty) advertising `window`, each with
    /// the flags `flags(last)` (the acknowledgement always).
    pub(super) fn send_to_client(
        &mut self,
        to: &AnswerTo,
        window: u16,
        bytes: &[u8],
        flags: impl Fn(bool) -> TcpFlags,
    ) {
        let own_mac = self.tables.own_mac;
        let mss = usize::from(to.opts.mss).clamp(64, 1460);
        let mut offset = 0;
        loop {
            let end = (offset + mss).min(bytes.len());
            let mut seg = bare_tcp(
                to.key.dst_port,
                to.key.src_port,
                to.seq.wrapping_add(offset as u32),
                Some(to.ack),
                flags(end == bytes.len()),
                window,
            );
            seg.timestamps = to.opts.timestamps().then_some(to.timestamps);
            let frame = build(&Segment {
                src: (own_mac, to.key.dst, to.key.dst_port),
                dst: (to.client_mac, to.key.src, to.key.src_port),
                tcp: seg,
                payload: &bytes[offset..end],
            });
            self.emitted.push((WIRE, frame));
            offset = end;
            if offset >= bytes.len() {
                break;
            }
        }
    }

    /// A cookie ACK that finds no setup slot free: a segment carrying the
    /// request gets the service's busy answer (its default class's) and
    /// the connection ends there, at most [`super::BUSY_ANSWERS_PER_SEC`]
    /// a second; a pure ACK, or one beyond that rate, is dropped (counted)
    /// and the client retransmits.
    fn busy_answer(
        &mut self,
        conn: &Conn,
        service: usize,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Verdict {
        let payload = tcp.payload().len();
        if payload == 0 || !self.take_busy_token(now) {
            return self.drop(Counter::SpliceConnTableFull);
        }
        let answer = self.default_answer(service);
        let ack = tcp.seq_number().wrapping_add(payload as u32);
        let to = AnswerTo::of_conn(conn, ack, now);
        self.send_answer(&to, &answer);
        self.drop(Counter::SpliceBusyAnswered)
    }

    /// One token of the busy-answer bucket, if any is left at `now`.
    fn take_busy_token(&mut self, now: Instant) -> bool {
        super::take_token(&mut self.busy_answers, super::BUSY_ANSWERS_PER_SEC, now)
    }

    /// Step 3: the client's SYN, replayed into this member's kernel.
    pub(super) fn replay_syn(&mut self, slot: u32, now: Instant) {
        if !self.tables.serves(self.tables.own_id) {
            // A front end (member roles) serves nothing: a request no back
            // end could take (the handoff was refused or went unanswered,
            // or no back end is up) gets the service's busy answer.
            let service = self.conns.get_mut(slot).and_then(|c| {
                self.tables
                    .service_index(c.key.dst, c.key.dst_port, crate::wire::IpProtocol::Tcp)
            });
            let answer = service.map_or(Answer::Reset, |s| self.default_answer(s));
            self.counters.inc(Counter::SpliceFrontEndRefused);
            self.close_with(slot, &answer, now);
            return;
        }
        if self.emit_replayed_syn(slot, now) {
            self.counters.inc(Counter::SpliceReplayed);
        }
    }

    /// The replayed SYN of the connection in `slot` to this kernel (phase
    /// `Replaying`); false if the slot is empty.
    pub(super) fn emit_replayed_syn(&mut self, slot: u32, now: Instant) -> bool {
        let own_mac = self.tables.own_mac;
        let Some(conn) = self.conns.get_mut(slot) else {
            return false;
        };
        conn.phase = Phase::Replaying;
        conn.started = now;
        let mut syn = bare_tcp(
            conn.key.src_port,
            conn.key.dst_port,
            conn.client_isn,
            None,
            TcpFlags::SYN,
            64_240,
        );
        syn.mss = Some(conn.opts.mss);
        syn.sack_permitted = conn.opts.sack_permitted;
        syn.window_scale = conn.opts.window_scale;
        syn.timestamps = conn.opts.timestamps().then_some((conn.client_tsval, 0));
        let frame = build(&Segment {
            src: (conn.client_mac, conn.key.src, conn.key.src_port),
            dst: (own_mac, conn.key.dst, conn.key.dst_port),
            tcp: syn,
            payload: &[],
        });
        self.emitted.push((KERNEL, frame));
        true
    }

    /// The kernel's SYN-ACK of a replayed connection: derive the translation,
    /// finish the kernel's handshake with ACK + request, splice the flow.
    pub(super) fn splice_kernel_synack(
        &mut self,
        slot: u32,
        kernel_to: EthernetAddress,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Verdict {
        let Some(conn) = self.conns.release(slot) else {
            return self.drop(Counter::DropKernelMalformed);
        };
        let kernel_isn = tcp.seq_number();
        let kernel_tsval = tcp.timestamps().map_or(0, |t| t.0);
        let params = SpliceParams {
            delta: SpliceParams::seq_delta(kernel_isn, conn.cookie_isn),
            ts_offset: SpliceParams::ts_offset(kernel_tsval, conn.tsval_sent),
            kernel_wscale: tcp.window_scale().unwrap_or(0),
            client_wscale_advertised: if conn.opts.window_scale.is_some() {
                conn.advertised_ws
            } else {
                0
            },
        };
        let key = conn.key;
        let remote = conn.remote;
        let action =
            self.spliced_action(conn, params, kernel_isn, kernel_tsval, Some(kernel_to), now);
        if let Some(mut flow) = self.flows.lookup_touch(&key, now) {
            flow.value_mut().action = action;
            self.flows.note_changed(key);
        }
        self.counters.inc(Counter::SpliceSpliced);
        if let Some(remote) = remote {
            self.handoff_accepted(remote, kernel_isn, now);
        }
        Verdict::Drop
    }

    /// The action of a connection this kernel just took (its SYN-ACK:
    /// `kernel_isn`, `kernel_tsval`, sent to Ethernet address `kernel_to`,
    /// where the kernel's replies to the client go): tracked request by
    /// request when its service says so (`persist`), else spliced with
    /// every buffered byte given to the kernel now.
    fn spliced_action(
        &mut self,
        conn: Conn,
        params: SpliceParams,
        kernel_isn: u32,
        kernel_tsval: u32,
        kernel_to: Option<EthernetAddress>,
        now: Instant,
    ) -> FlowAction {
        let service = self.tables.service_index(
            conn.key.dst,
            conn.key.dst_port,
            crate::wire::IpProtocol::Tcp,
        );
        if let Some(service) = service {
            if self.tracked(service) && self.persist_trackable(&conn) {
                return self.persist_begin(conn, service, params, kernel_isn, kernel_to, now);
            }
        }
        self.emit_request_to_kernel(&conn, kernel_isn, kernel_tsval);
        FlowAction::Spliced(params)
    }

    /// CARISMA rare: a SYN this member inspects goes to its own kernel; the
    /// connection is watched until its request head is complete.
    pub(super) fn rare_syn(
        &mut self,
        client_mac: EthernetAddress,
        key: FlowKey,
        service: usize,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Plan {
        let limit = self.tables.services[service]
            .dispatch
            .as_ref()
            .map_or(16 * 1024, |d| d.max_request_bytes as usize);
        let opts = SynOptions::from_syn(tcp);
        let conn = Conn {
            key,
            client_mac,
            client_tsval: opts.client_tsval.unwrap_or(0),
            opts,
            cookie_isn: 0,
            client_isn: tcp.seq_number(),
            client_window: tcp.window_len(),
            tsval_sent: 0,
            buf: RequestBuffer::new(tcp.seq_number().wrapping_add(1), limit),
            started: now,
            phase: Phase::RareHandshake,
            handoff: None,
            remote: None,
            advertised_ws: 0,
            moving: false,
            target: 0,
        };
        let Some(slot) = self.conns.alloc(conn) else {
            return Plan::Done(self.drop(Counter::SpliceConnTableFull));
        };
        let action = FlowAction::Splicing {
            slot,
            service: service as u16,
        };
        let entry = FlowEntry::new(action, tcp.seq_number());
        if self.flows.insert(key, FlowState::Syn, entry, now) == Insert::Rejected {
            self.conns.release(slot);
            return Plan::Done(self.drop(Counter::DropFlowTableFull));
        }
        self.counters.inc(Counter::SynAccepted);
        Plan::Done(Verdict::Forward(KERNEL))
    }

    /// CARISMA rare, a kernel frame of a watched connection: its SYN-ACK
    /// tells what the client knows of the server (ISN, clock, window scale);
    /// everything goes to the client unchanged.
    pub(super) fn rare_kernel(&mut self, slot: u32, tcp: &TcpPacket<&mut [u8]>) -> Verdict {
        if let Some(conn) = self.conns.get_mut(slot) {
            if conn.phase == Phase::RareHandshake && tcp.syn() && tcp.ack() {
                conn.cookie_isn = tcp.seq_number();
                conn.tsval_sent = tcp.timestamps().map_or(0, |t| t.0);
                conn.advertised_ws = tcp.window_scale().unwrap_or(0);
                conn.phase = Phase::RareAwaitHead;
            }
        }
        self.counters.inc(Counter::KernelToWire);
        Verdict::Forward(WIRE)
    }

    /// CARISMA rare, a client segment of a watched connection. `None` when
    /// the dataplane consumed it.
    pub(super) fn rare_segment(
        &mut self,
        slot: u32,
        service: usize,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Option<Plan> {
        let conn = self.conns.get_mut(slot)?;
        if conn.phase == Phase::RareHandshake || tcp.payload().is_empty() {
            // The handshake (and pure ACKs) belong to the kernel.
            return (conn.phase != Phase::HandingOff)
                .then_some(Plan::Done(Verdict::Forward(KERNEL)));
        }
        if conn.phase != Phase::RareAwaitHead {
            return None;
        }
        if let Some((tsval, _)) = tcp.timestamps() {
            conn.client_tsval = tsval;
        }
        conn.client_window = tcp.window_len();
        let outcome = conn.buf.insert(tcp.seq_number(), tcp.payload());
        self.counters.inc(Counter::request_segment(outcome));
        let head = buffered_head(&conn.buf);
        let chosen = match head {
            Ok(Some(head)) => {
                let admitted = dispatch_and_admit(
                    DispatchState {
                        tables: &self.tables,
                        dispatchers: &mut self.dispatchers,
                        sticky_key: self.sticky_key.as_ref(),
                        counters: &mut self.counters,
                        pinned: self.pins.target(conn.key.src, now),
                    },
                    &mut self.classes,
                    service,
                    &head,
                    now,
                );
                match admitted {
                    Ok(chosen) => chosen,
                    Err(answer) => {
                        // Refused: this kernel's socket goes (an exact RST,
                        // it has seen no data), the client gets the answer.
                        self.rare_reset_kernel(slot);
                        self.close_with(slot, &answer, now);
                        return None;
                    }
                }
            }
            // Incomplete: hold it (not ACKed: the client sends the rest).
            Ok(None) => return None,
            Err(e) => {
                self.counters.inc(Counter::SpliceBadRequest);
                match self.bad_request(service, e.status()) {
                    BadRequest::To(m) => Some(m),
                    BadRequest::Answer(status) => {
                        self.rare_reset_kernel(slot);
                        self.answer_and_close(slot, status, now);
                        return None;
                    }
                }
            }
        };
        match chosen {
            Some(m) if m != self.tables.own_id => {
                // The request belongs elsewhere: drop this kernel's socket
                // (an exact RST, it has seen no data) and hand over.
                self.rare_reset_kernel(slot);
                if !self.handoff_start(slot, m, now) {
                    self.counters.inc(Counter::SpliceRemoteNotWired);
                    self.replay_syn(slot, now);
                }
                self.counters.inc(Counter::RareMoved);
                None
            }
            _ => {
                // It stays: the held bytes go to this kernel, the flow is
                // local (translated by identity when tracked).
                let conn = self.conns.release(slot)?;
                let key = conn.key;
                let (isn, tsval) = (conn.cookie_isn, conn.tsval_sent);
                let ws = if conn.opts.window_scale.is_some() {
                    conn.advertised_ws
                } else {
                    0
                };
                let identity = SpliceParams {
                    delta: 0,
                    ts_offset: 0,
                    kernel_wscale: ws,
                    client_wscale_advertised: ws,
                };
                let action = if self.tracked(service) {
                    self.spliced_action(conn, identity, isn, tsval, None, now)
                } else {
                    self.emit_request_to_kernel(&conn, isn, tsval);
                    FlowAction::Local
                };
                if let Some(mut flow) = self.flows.lookup_touch(&key, now) {
                    flow.value_mut().action = action;
                    self.flows.note_changed(key);
                }
                self.counters.inc(Counter::RareKept);
                None
            }
        }
    }

    /// An exact RST into this kernel for a watched connection (`docs/splice-replay.md` §4:
    /// seq = the kernel's `rcv_nxt`, no ACK): it has seen no data.
    fn rare_reset_kernel(&mut self, slot: u32) {
        if let Some(isn) = self.conns.get_mut(slot).map(|c| c.client_isn) {
            self.reset_kernel(slot, isn.wrapping_add(1));
        }
    }

    /// A RST into this kernel on the 4-tuple of the connection in `slot`,
    /// with sequence number `seq`, no ACK, no options. It removes the
    /// kernel's socket for the 4-tuple when `seq` is that socket's
    /// `rcv_nxt` (`docs/splice-replay.md` §4: ESTABLISHED, FIN-WAIT, SYN-RECV, TIME-WAIT).
    pub(super) fn reset_kernel(&mut self, slot: u32, seq: u32) {
        let own_mac = self.tables.own_mac;
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let rst = bare_tcp(
            conn.key.src_port,
            conn.key.dst_port,
            seq,
            None,
            TcpFlags::RST,
            0,
        );
        let frame = build(&Segment {
            src: (conn.client_mac, conn.key.src, conn.key.src_port),
            dst: (own_mac, conn.key.dst, conn.key.dst_port),
            tcp: rst,
            payload: &[],
        });
        self.emitted.push((KERNEL, frame));
    }

    /// The held request bytes to this kernel, acknowledging its SYN-ACK
    /// (`kernel_isn`, `kernel_tsval`), in segments of at most the MSS.
    fn emit_request_to_kernel(&mut self, conn: &Conn, kernel_isn: u32, kernel_tsval: u32) {
        let own_mac = self.tables.own_mac;
        let mss = usize::from(conn.opts.mss).clamp(64, 1460);
        let request = conn.buf.contiguous();
        let mut offset = 0usize;
        loop {
            let end = (offset + mss).min(request.len());
            let mut seg = bare_tcp(
                conn.key.src_port,
                conn.key.dst_port,
                conn.client_isn.wrapping_add(1).wrapping_add(offset as u32),
                Some(kernel_isn.wrapping_add(1)),
                if end > offset {
                    TcpFlags::PSH | TcpFlags::ACK
                } else {
                    TcpFlags::ACK
                },
                conn.client_window,
            );
            seg.timestamps = conn
                .opts
                .timestamps()
                .then_some((conn.client_tsval, kernel_tsval));
            let frame = build(&Segment {
                src: (conn.client_mac, conn.key.src, conn.key.src_port),
                dst: (own_mac, conn.key.dst, conn.key.dst_port),
                tcp: seg,
                payload: &request[offset..end],
            });
            self.emitted.push((KERNEL, frame));
            offset = end;
            if offset >= request.len() {
                break;
            }
        }
    }

    /// Gives up on connections stuck in setup past the request timeout.
    pub(super) fn splice_expire(&mut self, now: Instant) {
        // Called every poll: without connections in setup, no scan of the
        // 4 096 slots (which cost more than the burst itself).
        if self.conns.is_empty() {
            return;
        }
        let timeout = core::time::Duration::from_millis(
            self.tables
                .services
                .iter()
                .filter_map(|s| s.dispatch.as_ref().map(|d| u64::from(d.request_timeout_ms)))
                .max()
                .unwrap_or(5_000),
        );
        let Some(deadline) = now
            .as_nanos()
            .checked_sub(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX))
        else {
            return;
        };
        let stale: Vec<u32> = self
            .conns
            .older_than(Instant::from_nanos(deadline))
            .take(16)
            .collect();
        for slot in stale {
            let l4 = self.conns.get_mut(slot).is_some_and(|c| {
                self.tables
                    .service(c.key.dst, c.key.dst_port, crate::wire::IpProtocol::Tcp)
                    .is_some_and(|s| s.mode != Mode::Splice)
            });
            if l4 {
                // A SYN-proxied connection: no HTTP to answer.
                self.synproxy_timeout(slot, now);
            } else {
                self.counters.inc(Counter::SpliceTimeout);
                self.answer_and_close(slot, Some(408), now);
            }
        }
    }
}

/// What a bad request gets ([`Pipeline::bad_request`]).
enum BadRequest {
    /// Served by this member (handed over unless it is this one).
    To(u16),
    /// Answered (an HTTP error status, or a RST for `None`) and forgotten.
    Answer(Option<u16>),
}

/// Connections a worker can have between cookie ACK and kernel SYN-ACK.
pub(super) const SPLICE_SETUP_SLOTS: usize = 4096;

/// What choosing a member reads and updates, borrowed from the pipeline's
/// fields (the request head is borrowed from a setup slot or a session, so
/// dispatch cannot be a method).
pub(super) struct DispatchState<'a> {
    /// The tables of the epoch.
    pub tables: &'a Tables,
    /// The dispatcher of each service.
    pub dispatchers: &'a mut [Option<Dispatcher>],
    /// The key that signs sticky cookies.
    pub sticky_key: Option<&'a ClusterKey>,
    /// Where the reason is counted.
    pub counters: &'a mut Counters,
    /// The member an operator's pin names for the client (`pins.rs`),
    /// before checking it is in the membership.
    pub pinned: Option<u16>,
}

/// The member service `service` sends `head` to (`None` without a
/// dispatcher): an operator's pin's, else its sticky cookie's or URL
/// session's, else its dispatch policy's; the reason counted.
pub(super) fn choose_member(
    d: &mut DispatchState<'_>,
    service: usize,
    head: &RequestHead<'_>,
    now: Instant,
) -> Option<u16> {
    let dispatcher = d.dispatchers.get_mut(service)?.as_mut()?;
    if let Some(member) = super::pins::usable(d.tables, d.counters, d.pinned) {
        d.counters.inc(Counter::PlacedPinned);
        d.counters.inc(Counter::dispatch(Reason::Pinned));
        return Some(member);
    }
    let sticky = sticky_choice(
        d.tables,
        dispatcher,
        d.sticky_key,
        service,
        head,
        d.counters,
    );
    let choice = if let Some(choice) = sticky {
        choice
    } else if let Some(reason) = served_where_inspected(d.tables, dispatcher, service, head) {
        Choice {
            member: d.tables.own_id,
            reason,
        }
    } else {
        let loads: Vec<(u16, f64)> = d.tables.members.iter().map(|m| (m.id, m.load)).collect();
        dispatcher.choose(head, &loads, now)
    };
    d.counters.inc(Counter::dispatch(choice.reason));
    Some(choice.member)
}

/// DTS Fig. 9 lines A and B: why `head` stays with this (inspecting)
/// member, if it does: under `local_paths`, or a hot path with
/// `hot_path_mode = "local"`; never on a member that serves nothing.
fn served_where_inspected(
    tables: &Tables,
    dispatcher: &Dispatcher,
    service: usize,
    head: &RequestHead<'_>,
) -> Option<Reason> {
    let d = tables.services.get(service)?.dispatch.as_ref()?;
    if !tables.serves(tables.own_id) {
        return None;
    }
    if d.local_paths
        .iter()
        .any(|p| head.path.starts_with(p.as_str()))
    {
        return Some(Reason::LocalPath);
    }
    let hot_local = d.policy == shoal_config::DispatchPolicy::UrlHash
        && d.hot_path_mode == shoal_config::HotPathMode::Local
        && dispatcher.is_hot(head.path);
    hot_local.then_some(Reason::HotPathLocal)
}

/// The member the dispatcher of service `service` chooses for the first
/// request `head` of a connection, once its class admits it (`Err`: the
/// answer of the class that refused it, counted `splice_refused`).
fn dispatch_and_admit(
    mut d: DispatchState<'_>,
    classes: &mut [Option<ServiceClasses>],
    service: usize,
    head: &RequestHead<'_>,
    now: Instant,
) -> Result<Option<u16>, Answer> {
    let chosen = choose_member(&mut d, service, head, now);
    let (tables, counters) = (d.tables, d.counters);
    let member = chosen.unwrap_or(tables.own_id);
    match admit_request(classes, tables, service, head, member, now) {
        Ok(()) => Ok(chosen),
        Err(answer) => {
            counters.inc(Counter::SpliceRefused);
            Err(answer)
        }
    }
}

/// A dispatcher for every splice service of `tables` (lard placements and
/// dtcp server sets of `previous` carried over).
pub(super) fn build_dispatchers(
    tables: &Tables,
    previous: Vec<Option<Dispatcher>>,
) -> Vec<Option<Dispatcher>> {
    // Front ends (member roles) serve nothing: never a dispatch choice.
    let members: Vec<(u16, &str, u32)> = tables
        .members
        .iter()
        .map(|m| {
            let weight = if tables.serves(m.id) {
                m.effective_weight()
            } else {
                0
            };
            (m.id, m.name.as_str(), weight)
        })
        .collect();
    let mut previous = previous.into_iter();
    tables
        .services
        .iter()
        .map(|s| {
            let old = previous.next().flatten();
            let config = s.dispatch.as_ref().filter(|_| s.mode == Mode::Splice)?;
            let mut d = Dispatcher::new(config, &members).ok()?;
            if let Some(old) = old {
                d.inherit(old);
            }
            Some(d)
        })
        .collect()
}
