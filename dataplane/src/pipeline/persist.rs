//! Persistent HTTP/1.1 connections: every request to the member dispatch
//! chooses for it (`docs/design.md`, "Splicing", step 6; seed 004, DTCP).
//!
//! A spliced connection of a service with `dispatch.per_request` is
//! *tracked* by the member whose kernel serves it (`FlowAction::Tracked`,
//! a [`Session`] here). The session follows both byte streams:
//!
//! - **Client to kernel**: bytes before `released` belong to requests this
//!   kernel serves and pass through (translated) at no extra cost. Bytes from
//!   `released` on are held in the session's buffer until the request they
//!   start is complete enough to dispatch (its head; its body length from
//!   `Content-Length`). A request dispatched here is *released*: its held
//!   bytes go to the kernel as segments the dataplane builds, and `released`
//!   moves past its body. A request dispatched elsewhere is held (the
//!   dataplane acknowledges it to the client, so the client does not
//!   retransmit) until the connection can move.
//! - **Kernel to client**: the response bytes, in the kernel's order, go
//!   through a [`ResponseFramer`], which knows when the response to every
//!   released request is complete. The kernel's acknowledgement number says
//!   when it has read every released byte.
//!
//! The connection moves when a request is held for another member, every
//! released request has its complete response, the kernel has read every
//! released byte and the client has acknowledged every byte the kernel sent.
//! Then (`Pipeline::persist_move`): an exact RST closes this kernel's socket
//! (`seq` = `released`, the kernel's `rcv_nxt`; nothing goes to the client),
//! and the connection is offered to the target by the same authenticated
//! handoff as a first request, with the client's ISN taken as `released` − 1
//! and the server's as the next server sequence number the client expects
//! − 1 (`docs/splice-replay.md` §6). The held bytes (the next request and
//! any pipelined after it) travel in the offer. The target replays the
//! connection into its kernel, releases the first request (it was
//! dispatched there) and dispatches the following ones itself, one move at
//! a time. If the target refuses or does not answer, the connection is
//! replayed into this member's kernel instead and the request served here.
//!
//! What a session cannot follow ends its tracking for good and the flow
//! stays spliced where it is (`persist_untracked_*` counters): a chunked or
//! `CONNECT` request, a response without length, an upgrade, `Connection:
//! close`, a FIN or RST from either side, a request head larger than the
//! buffer, a gap in the kernel's stream. Held bytes are then given to this
//! kernel: nothing the client sent is lost.
//!
//! **Scheduling** (`[services.dispatch.scheduling]`, seed 003 §7): a
//! service with scheduling is tracked too (with `per_request` off, every
//! request stays here). Each request this kernel would serve is classified
//! and offered to the service's scheduler (`classes_path.rs`) instead of
//! being released at once: it waits in the session's buffer, acknowledged
//! to the client, until the scheduler releases it (a slot under
//! `max_active` and the policy's turn), and its slot is freed when the
//! framer sees its response complete (or the session ends). A request the
//! scheduler refuses (`max_in_flight`, `max_queue`) or that waited
//! `max_wait_ms` gets its class's answer from this dataplane once every
//! earlier response was acknowledged by the client: the kernel's socket is
//! reset exactly, the answer sent from the VIP, the flow forgotten.
//!
//! Sessions are not in flow snapshots: after a restart a tracked flow comes
//! back as an ordinary spliced one (every later request served where the
//! connection is).

use std::collections::VecDeque;

use super::classes_path::{
    admit_request, expire_waiting, finish_request, next_release, offer_request, scheduled, Offer,
    Ticket,
};
use super::moves::{MoveEvent, MoveKind};
use super::splice_path::{
    bare_tcp, build, choose_member, AnswerTo, Conn, DispatchState, Phase, Segment,
};
use super::sticky_path::cookie_to_issue;
use super::{FlowAction, Pipeline, Plan, Verdict, KERNEL, WIRE};
use crate::counters::Counter;
use crate::flow::FlowKey;
use crate::wire::{EthernetAddress, TcpFlags, TcpPacket};
use shoal_l7::classes::{Answer, ClassId};
use shoal_l7::framing::{Expect, ResponseFramer, ResponseState};
use shoal_l7::http::parse_head;
use shoal_l7::reassembly::RequestBuffer;
use shoal_l7::splice::{SpliceParams, Translation};
use shoal_l7::syncookie::SynOptions;
use shoal_wire::checksum;
use shoal_wire::time::Instant;

/// Largest response head a session follows across segments.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Sessions a worker tracks at most; past it new spliced connections are
/// served where their first request went (`persist_untracked_table_full`).
pub(super) const MAX_SESSIONS: usize = 65_536;

/// Sessions checked for a dead flow per call of `persist_sweep`.
const SWEEP_PER_POLL: usize = 8;

/// A request held for another member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    /// The member dispatch chose.
    target: u16,
    /// When it was held.
    since: Instant,
    /// Its length: head and body.
    len: u64,
    /// What its response looks like.
    expect: Expect,
}

/// A request waiting in its service's scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Queued {
    /// Its length: head and body.
    len: u64,
    /// What its response looks like.
    expect: Expect,
}

/// Bytes the dataplane added to the kernel's stream (the sticky
/// `Set-Cookie` line), before the kernel's byte `at`, until the client has
/// acknowledged them (then folded into the translation).
#[derive(Debug, Clone)]
struct Insert {
    at: u32,
    bytes: Vec<u8>,
}

/// One tracked connection on the member whose kernel serves it.
#[derive(Debug)]
pub(super) struct Session {
    /// The sticky `Set-Cookie` line the first response gets (its request
    /// had no valid cookie naming this member), until that response starts.
    issue_cookie: Option<Vec<u8>>,
    /// The line, inserted, until the client acknowledges it.
    insert: Option<Insert>,
    /// Tracking ended while an insertion was unacknowledged: the session
    /// only translates (with the insertion) until the client has it, then
    /// the flow becomes a plain splice.
    detached: bool,
    key: FlowKey,
    service: u16,
    /// Tells this session from a later one in the same slot (scheduler
    /// tickets name both).
    generation: u32,
    /// Later requests are dispatched again (`per_request`); else every
    /// request stays here.
    redispatch: bool,
    /// The first request in `hold`, waiting for the scheduler.
    queued: Option<Queued>,
    /// The class of every request released to this kernel whose response
    /// is not complete yet, oldest first (None: released unscheduled).
    in_kernel: VecDeque<Option<ClassId>>,
    /// A request was refused: this answer goes to the client (and the
    /// connection ends) once every earlier response was acknowledged.
    refusing: Option<Answer>,
    client_mac: EthernetAddress,
    /// `client_mac` is the client's (or its router's): taken from a client
    /// frame. A member that got the connection by handoff knows only the
    /// inspector's until the client's next frame; it sends the client
    /// nothing before.
    client_mac_known: bool,
    opts: SynOptions,
    params: SpliceParams,
    /// Client sequence number up to which bytes belong to this kernel.
    released: u32,
    /// Client bytes from `released` on.
    hold: RequestBuffer,
    /// The first request in `hold` was dispatched here already (by the
    /// inspector, or the member that moved the connection here).
    first_ours: bool,
    held: Option<Held>,
    /// The client's newest `TSval` and window.
    client_tsval: u32,
    client_window: u16,
    /// The client's acknowledgement, in the kernel's sequence space.
    client_acked: u32,
    /// The last acknowledgement the kernel was given (to tell a new one).
    acked_to_kernel: u32,
    /// The highest acknowledgement the dataplane sent the client for held bytes.
    acked_held: u32,
    framer: ResponseFramer,
    /// Kernel sequence number of the next in-order response byte.
    kernel_next: u32,
    /// One past the highest kernel sequence number sent.
    kernel_end: u32,
    /// The kernel's acknowledgement (client sequence space).
    kernel_ack: u32,
    /// The kernel's last window field (its scale).
    kernel_window: u16,
    /// Highest `TSval` the client has seen (its view).
    tsval_to_client: u32,
    /// Requests released to this kernel.
    requests_here: u32,
    /// The kernel has sent a segment since the replay's SYN-ACK (it took
    /// the dataplane's ACK and first request): until then only client
    /// segments acknowledging exactly its SYN-ACK (`kernel_isn1`) are
    /// forwarded. An old one overtaking that ACK (a client retransmission
    /// of a request an earlier kernel served) would find the socket in
    /// SYN-RECV, which resets on any other acknowledgement number.
    kernel_up: bool,
    /// The kernel's ISN + 1.
    kernel_isn1: u32,
}

impl Session {
    /// The translation of the connection now.
    fn translation(&self) -> Translation {
        let t = Translation::new(self.params);
        match &self.insert {
            Some(i) => t.with_insertion(i.at, i.bytes.len() as u32),
            None => t,
        }
    }

    /// Every response released so far is complete, the kernel has read
    /// every released byte and the client has acknowledged every byte the
    /// kernel sent: the connection can leave this kernel now.
    fn settled(&self) -> bool {
        self.framer.state() == ResponseState::Idle
            && self.kernel_ack == self.released
            && seq_le(self.kernel_end, self.client_acked)
    }

    /// The session waits for the connection to leave this member: to move
    /// (a request held for another) or to end with a refusal.
    fn leaving(&self) -> bool {
        self.held.is_some() || self.refusing.is_some()
    }
}

/// The sessions of one worker: a slab with a free list.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    slots: Vec<Option<Session>>,
    /// Generation of the next session.
    generation: u32,
    /// A scheduler is releasing (`persist_schedule` is not re-entered).
    scheduling: bool,
    /// Scratch for the requests that waited too long.
    expired: Vec<(Ticket, Answer)>,
    free: Vec<u32>,
    live: usize,
    /// Slots holding a request for another member (checked for the hold
    /// timeout).
    holding: Vec<u32>,
    /// Next slot `persist_sweep` looks at.
    cursor: usize,
}

impl Sessions {
    /// Stores `s` (check [`Sessions::is_full`] first: past
    /// [`MAX_SESSIONS`] the slab still grows).
    fn alloc(&mut self, mut s: Session) -> u32 {
        self.live += 1;
        s.generation = self.generation;
        self.generation = self.generation.wrapping_add(1);
        if let Some(slot) = self.free.pop() {
            self.slots[slot as usize] = Some(s);
            return slot;
        }
        self.slots.push(Some(s));
        self.slots.len() as u32 - 1
    }

    fn release(&mut self, slot: u32) -> Option<Session> {
        let s = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.live -= 1;
        self.holding.retain(|&h| h != slot);
        Some(s)
    }

    fn is_full(&self) -> bool {
        self.free.is_empty() && self.slots.len() >= MAX_SESSIONS
    }

    fn get_mut(&mut self, slot: u32) -> Option<&mut Session> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// The translation of the tracked flow in `slot`.
    pub(super) fn params(&self, slot: u32) -> Option<SpliceParams> {
        self.slots.get(slot as usize)?.as_ref().map(|s| s.params)
    }

    /// Tracked connections.
    pub(super) fn len(&self) -> usize {
        self.live
    }
}

/// The scheduler slots of the requests `s` has in the kernel are free (the
/// session ends or stops following its responses).
fn finish_in_kernel(classes: &mut [Option<super::classes_path::ServiceClasses>], s: &mut Session) {
    let service = usize::from(s.service);
    for class in s.in_kernel.drain(..).flatten() {
        finish_request(classes, service, class);
    }
}

/// The action of a flow no longer tracked: spliced, or local when the
/// translation is the identity (CARISMA rare, kept by the kernel that did
/// the handshake).
fn untracked(params: SpliceParams) -> FlowAction {
    let identity = params.delta == 0
        && params.ts_offset == 0
        && params.kernel_wscale == params.client_wscale_advertised;
    if identity {
        FlowAction::Local
    } else {
        FlowAction::Spliced(params)
    }
}

/// `a < b` in sequence space.
const fn seq_lt(a: u32, b: u32) -> bool {
    a.wrapping_sub(b).cast_signed() < 0
}

/// `a <= b` in sequence space.
const fn seq_le(a: u32, b: u32) -> bool {
    !seq_lt(b, a)
}

/// Why a session stops following its connection.
#[derive(Debug, Clone, Copy)]
enum Untrack {
    Unframed,
    Closing,
    KernelClosing,
    BadRequest,
    Gap,
}

impl Untrack {
    fn counter(self) -> Counter {
        match self {
            Untrack::Unframed => Counter::PersistUntrackedUnframed,
            Untrack::Closing => Counter::PersistUntrackedClosing,
            Untrack::KernelClosing => Counter::PersistUntrackedKernelClosing,
            Untrack::BadRequest => Counter::PersistUntrackedBadRequest,
            Untrack::Gap => Counter::PersistUntrackedGap,
        }
    }
}

impl Pipeline {
    /// Whether service `service` dispatches every request of a connection.
    pub(super) fn per_request(&self, service: usize) -> bool {
        self.tables
            .services
            .get(service)
            .and_then(|s| s.dispatch.as_ref())
            .is_some_and(|d| d.per_request)
    }

    /// Whether connections of service `service` are followed request by
    /// request here: it dispatches every request, schedules them, or
    /// inserts sticky cookies.
    pub(super) fn tracked(&self, service: usize) -> bool {
        let inserts_cookie = self
            .tables
            .services
            .get(service)
            .and_then(|s| s.dispatch.as_ref()?.sticky.as_ref())
            .is_some_and(|st| st.insert);
        self.per_request(service) || scheduled(&self.classes, service) || inserts_cookie
    }

    /// Whether the connection of `conn`, which this kernel is taking, can
    /// be followed request by request: its first request has a head and no
    /// chunked body, and a session is free (else counted).
    pub(super) fn persist_trackable(&mut self, conn: &Conn) -> bool {
        let framed = matches!(parse_head(conn.buf.contiguous()), Ok(Some(h)) if !h.chunked);
        if framed && self.sessions.is_full() {
            self.counters.inc(Counter::PersistUntrackedTableFull);
            return false;
        }
        framed
    }

    /// The kernel of this member just took the connection of `conn` (its
    /// SYN-ACK: `kernel_isn`, sent to `kernel_to`; translation `params`),
    /// which [`Pipeline::persist_trackable`] accepted: start following it,
    /// release (or queue) its first request and return the flow's action.
    pub(super) fn persist_begin(
        &mut self,
        conn: Conn,
        service: usize,
        params: SpliceParams,
        kernel_isn: u32,
        kernel_to: Option<EthernetAddress>,
        now: Instant,
    ) -> FlowAction {
        let released = conn.client_isn.wrapping_add(1);
        // A connection that came by handoff: the client's address is where
        // the kernel sent its SYN-ACK (its neighbour entry for the client).
        let (client_mac, client_mac_known) = match (conn.remote, kernel_to) {
            (None, _) => (conn.client_mac, true),
            (Some(_), Some(mac)) => (mac, true),
            (Some(_), None) => (conn.client_mac, false),
        };
        let session = Session {
            key: conn.key,
            service: service as u16,
            generation: 0,
            issue_cookie: None,
            insert: None,
            detached: false,
            redispatch: self.per_request(service),
            queued: None,
            in_kernel: VecDeque::new(),
            refusing: None,
            client_mac,
            client_mac_known,
            opts: conn.opts,
            params,
            released,
            hold: conn.buf,
            first_ours: true,
            held: None,
            client_tsval: conn.client_tsval,
            client_window: conn.client_window,
            client_acked: kernel_isn.wrapping_add(1),
            acked_to_kernel: kernel_isn.wrapping_add(1),
            acked_held: released,
            framer: ResponseFramer::new(MAX_RESPONSE_HEAD),
            kernel_next: kernel_isn.wrapping_add(1),
            kernel_end: kernel_isn.wrapping_add(1),
            kernel_ack: released,
            kernel_window: 0,
            tsval_to_client: conn.tsval_sent,
            requests_here: 0,
            kernel_isn1: kernel_isn.wrapping_add(1),
            // CARISMA rare kept: the kernel did the handshake long ago.
            kernel_up: conn.phase == Phase::RareAwaitHead,
        };
        let from = conn
            .remote
            .map_or(self.tables.own_id, |(origin, _)| origin.member);
        let key = conn.key;
        let slot = self.sessions.alloc(session);
        self.counters.inc(Counter::PersistConnections);
        self.log_move(key, MoveKind::Arrived { from }, 0, now);
        self.persist_advance(slot, now);
        FlowAction::Tracked { slot }
    }

    /// A client segment of a tracked flow, from Ethernet address `src_mac`.
    pub(super) fn persist_client(
        &mut self,
        slot: u32,
        src_mac: EthernetAddress,
        tcp: &mut TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Plan {
        let Some(s) = self.sessions.get_mut(slot) else {
            return Plan::Done(self.drop(Counter::PersistSessionLost));
        };
        // The client's (or its router's) MAC: where the dataplane's own
        // acknowledgements go (a member that received the connection by
        // handoff knows only the inspector's until now).
        s.client_mac = src_mac;
        s.client_mac_known = true;
        let translation = s.translation();
        if let Some((tsval, _)) = tcp.timestamps() {
            if seq_le(s.client_tsval, tsval) {
                s.client_tsval = tsval;
            }
        }
        s.client_window = tcp.window_len();
        if tcp.ack() {
            let acked = translation.server_seq_to_kernel(tcp.ack_number());
            if seq_lt(s.client_acked, acked) {
                s.client_acked = acked;
            }
            if let Some(ins) = &s.insert {
                // The client has every inserted byte: from now on one
                // offset maps the kernel's stream (bytes before the
                // insertion are acknowledged and never sent again).
                let len = ins.bytes.len() as u32;
                let end = Translation::new(s.params)
                    .server_seq_to_client(ins.at)
                    .wrapping_add(len);
                if seq_le(end, tcp.ack_number()) {
                    s.params.delta = s.params.delta.wrapping_sub(len);
                    s.insert = None;
                }
            }
        }
        if s.detached {
            let done = s.insert.is_none();
            let (key, params) = (s.key, s.params);
            translation.to_kernel(tcp);
            if done {
                self.persist_free(slot);
                if let Some(mut flow) = self.flows.get_mut(&key) {
                    flow.value_mut().action = untracked(params);
                    self.flows.note_changed(key);
                }
            }
            self.counters.inc(Counter::FlowHit);
            return Plan::Done(Verdict::Forward(KERNEL));
        }
        let (released, key, client_mac) = (s.released, s.key, s.client_mac);
        let seq = tcp.seq_number();
        let len = tcp.payload().len() as u32;
        let end = seq.wrapping_add(len);
        let (fin, rst, syn) = (tcp.fin(), tcp.rst(), tcp.syn());
        if syn {
            // The connection's own SYN, retransmitted (`reuse`): as spliced.
            translation.to_kernel(tcp);
            self.counters.inc(Counter::FlowHit);
            return Plan::Done(Verdict::Forward(KERNEL));
        }
        if rst {
            // The client resets: held bytes are dropped with it. With bytes
            // held past `released` its RST would not be exact for the
            // kernel (a challenge ACK, the socket kept): the kernel gets an
            // exact one instead.
            let exact = (!s.hold.contiguous().is_empty()).then_some(released);
            self.persist_stop(slot, Untrack::Closing, false);
            self.counters.inc(Counter::FlowHit);
            if let Some(seq) = exact {
                self.kernel_rst(key, client_mac, seq);
                return Plan::Done(Verdict::Drop);
            }
            translation.to_kernel(tcp);
            return Plan::Done(Verdict::Forward(KERNEL));
        }
        if fin && s.leaving() {
            // A client that sends its request and closes its side
            // (`shutdown`): the request still goes to its member. The FIN
            // is neither stored nor acknowledged: the client resends it to
            // whichever member serves the connection then.
            let cut = if seq_lt(seq, released) {
                released.wrapping_sub(seq) as usize
            } else {
                0
            };
            if cut < tcp.payload().len() {
                let outcome = s
                    .hold
                    .insert(seq.wrapping_add(cut as u32), &tcp.payload()[cut..]);
                self.counters.inc(Counter::request_segment(outcome));
            }
            self.persist_ack_held(slot);
            self.persist_move(slot, now);
            return Plan::Done(self.drop(Counter::PersistHeld));
        }
        if fin {
            // The connection ends: the kernel gets every held byte, then
            // the segment itself.
            self.persist_untrack(slot, Untrack::Closing);
            translation.to_kernel(tcp);
            self.counters.inc(Counter::FlowHit);
            return Plan::Done(Verdict::Forward(KERNEL));
        }
        if len == 0 || seq_le(end, released) {
            // Bytes of requests this kernel serves, or a pure ACK (whose
            // sequence number may be past held bytes: the kernel gets
            // `released`, its `rcv_nxt`).
            if !s.kernel_up {
                // Until the kernel's first segment its socket may be in
                // SYN-RECV, which resets on any acknowledgement but its
                // SYN-ACK's: an old segment (a retransmission from before
                // this kernel) waits; the client sends it again.
                let acks = tcp
                    .ack()
                    .then(|| translation.server_seq_to_kernel(tcp.ack_number()));
                if acks != Some(s.kernel_isn1) {
                    return Plan::Done(self.drop(Counter::PersistKernelNotUp));
                }
            }
            if len == 0 && seq_lt(released, seq) {
                tcp.set_seq_number(released);
                let sum = checksum::update_u32(tcp.checksum(), seq, released);
                tcp.set_checksum(sum);
            }
            translation.to_kernel(tcp);
            s.acked_to_kernel = s.client_acked;
            let holding = s.leaving();
            self.counters.inc(Counter::FlowHit);
            if holding && self.persist_move(slot, now) {
                return Plan::Done(Verdict::Drop);
            }
            return Plan::Done(Verdict::Forward(KERNEL));
        }
        // Some bytes at or past `released`: hold them; the bytes before
        // go to the kernel in a segment of their own.
        let cut = if seq_lt(seq, released) {
            released.wrapping_sub(seq) as usize
        } else {
            0
        };
        let outcome = s
            .hold
            .insert(seq.wrapping_add(cut as u32), &tcp.payload()[cut..]);
        let ack_news = s.acked_to_kernel != s.client_acked;
        self.counters.inc(Counter::request_segment(outcome));
        if cut > 0 || ack_news {
            let head = &tcp.payload()[..cut];
            if let Some(f) = self.client_to_kernel(slot, seq, head) {
                self.emitted.push((KERNEL, f));
            }
        }
        self.persist_advance(slot, now);
        self.persist_ack_held(slot);
        if self.sessions.get_mut(slot).is_some_and(|s| s.leaving()) {
            self.persist_move(slot, now);
        }
        Plan::Done(self.drop(Counter::PersistHeld))
    }

    /// A kernel segment of a tracked flow: follow the response, translate.
    pub(super) fn persist_kernel(
        &mut self,
        slot: u32,
        tcp: &mut TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Verdict {
        let Some(s) = self.sessions.get_mut(slot) else {
            return self.drop(Counter::PersistSessionLost);
        };
        s.kernel_up = true;
        s.kernel_window = tcp.window_len();
        if tcp.ack() {
            s.kernel_ack = tcp.ack_number();
        }
        let seq = tcp.seq_number();
        let payload = tcp.payload();
        let len = payload.len() as u32;
        let end = seq.wrapping_add(len);
        if len > 0 && seq == s.kernel_isn1 && s.insert.is_none() {
            if let Some(line) = s.issue_cookie.take() {
                // The first response starts: the sticky cookie goes after
                // its status line.
                match shoal_l7::sticky::insertion_point(payload) {
                    Some(at) => {
                        s.insert = Some(Insert {
                            at: seq.wrapping_add(at as u32),
                            bytes: line,
                        });
                        self.counters.inc(Counter::StickyIssued);
                    }
                    None => self.counters.inc(Counter::StickyNotIssued),
                }
            }
        }
        let Some(s) = self.sessions.get_mut(slot) else {
            return self.drop(Counter::PersistSessionLost);
        };
        let translation = s.translation();
        // A segment with bytes on both sides of the insertion carries the
        // inserted bytes (again, if the kernel sends it again).
        let spans = s
            .insert
            .as_ref()
            .is_some_and(|i| seq_lt(seq, i.at) && seq_le(i.at, end));
        if s.detached {
            if tcp.rst() {
                self.persist_free(slot);
            }
            if spans {
                self.persist_rebuild(slot, tcp);
                return self.drop(Counter::StickyRebuilt);
            }
            translation.to_client(tcp);
            self.counters.inc(Counter::KernelToWire);
            return Verdict::Forward(WIRE);
        }
        let mut untrack = None;
        let mut completed = 0;
        if len > 0 {
            if seq_le(seq, s.kernel_next) && seq_lt(s.kernel_next, end) {
                let from = s.kernel_next.wrapping_sub(seq) as usize;
                completed = s.framer.feed(&payload[from..]);
                s.kernel_next = end;
            } else if seq_lt(s.kernel_next, seq) {
                untrack = Some(Untrack::Gap);
            }
        }
        let end = end.wrapping_add(u32::from(tcp.fin()));
        if seq_lt(s.kernel_end, end) {
            s.kernel_end = end;
        }
        if tcp.fin() || tcp.rst() {
            untrack = Some(Untrack::KernelClosing);
        } else if matches!(s.framer.state(), ResponseState::Unframed(_)) {
            untrack = Some(Untrack::Unframed);
        }
        let verdict = if spans {
            Verdict::Drop
        } else {
            translation.to_client(tcp);
            Verdict::Forward(WIRE)
        };
        if let Some((tsval, _)) = tcp.timestamps() {
            let tsval = if spans {
                translation.ts_to_client(tsval)
            } else {
                tsval
            };
            if seq_lt(s.tsval_to_client, tsval) {
                s.tsval_to_client = tsval;
            }
        }
        if spans {
            self.persist_rebuild(slot, tcp);
        }
        let Some(s) = self.sessions.get_mut(slot) else {
            return self.drop(Counter::PersistSessionLost);
        };
        let holding = s.leaving();
        if completed > 0 {
            self.persist_completed(slot, completed, now);
        }
        if let Some(why) = untrack {
            self.persist_untrack(slot, why);
        } else {
            self.persist_ack_held(slot);
            if holding {
                self.persist_move(slot, now);
            }
        }
        if verdict == Verdict::Drop {
            return self.drop(Counter::StickyRebuilt);
        }
        self.counters.inc(Counter::KernelToWire);
        verdict
    }

    /// The kernel segment `tcp` (untranslated) of the session in `slot`,
    /// which holds bytes on both sides of the insertion, to the client with
    /// the inserted bytes in place: in segments of at most the client's
    /// MSS, the kernel's flags on the last (FIN) and every one (ACK, PSH).
    fn persist_rebuild(&mut self, slot: u32, tcp: &TcpPacket<&mut [u8]>) {
        let Some(s) = self.sessions.get_mut(slot) else {
            return;
        };
        let Some(ins) = s.insert.as_ref() else {
            return;
        };
        let t = s.translation();
        let seq = tcp.seq_number();
        let payload = tcp.payload();
        let cut = (ins.at.wrapping_sub(seq) as usize).min(payload.len());
        let mut bytes = Vec::with_capacity(payload.len() + ins.bytes.len());
        bytes.extend_from_slice(&payload[..cut]);
        bytes.extend_from_slice(&ins.bytes);
        bytes.extend_from_slice(&payload[cut..]);
        let (window, _) = t.window_to_client(tcp.window_len());
        let to = AnswerTo {
            key: s.key,
            client_mac: s.client_mac,
            opts: s.opts,
            seq: t.server_seq_to_client(seq),
            ack: tcp.ack_number(),
            timestamps: tcp
                .timestamps()
                .map_or((0, 0), |(tsval, tsecr)| (t.ts_to_client(tsval), tsecr)),
        };
        let flags = tcp.flags();
        self.send_to_client(&to, window, &bytes, |last| {
            let keep = TcpFlags::ACK.0 | TcpFlags::PSH.0 | if last { TcpFlags::FIN.0 } else { 0 };
            TcpFlags(flags.0 & keep)
        });
    }

    /// Dispatches the requests complete in the hold buffer, in order:
    /// releases those that stay, holds the first that goes elsewhere.
    fn persist_advance(&mut self, slot: u32, now: Instant) {
        loop {
            let own = self.tables.own_id;
            let Some(s) = self.sessions.get_mut(slot) else {
                return;
            };
            if s.leaving() || s.queued.is_some() {
                return;
            }
            let head = match parse_head(s.hold.contiguous()) {
                Ok(Some(head)) => head,
                Ok(None) => {
                    if s.hold.is_full() {
                        return self.persist_untrack(slot, Untrack::BadRequest);
                    }
                    return;
                }
                Err(_) => return self.persist_untrack(slot, Untrack::BadRequest),
            };
            if head.chunked || head.method.eq_ignore_ascii_case("CONNECT") {
                return self.persist_untrack(slot, Untrack::Unframed);
            }
            let len = head.head_len as u64 + head.content_length.unwrap_or(0);
            let expect = if head.method.eq_ignore_ascii_case("HEAD") {
                Expect::Head
            } else {
                Expect::Normal
            };
            let target = if s.first_ours || !s.redispatch {
                own
            } else {
                choose_member(
                    &mut DispatchState {
                        tables: &self.tables,
                        dispatchers: &mut self.dispatchers,
                        sticky_key: self.sticky_key.as_ref(),
                        counters: &mut self.counters,
                        pinned: self.pins.target(s.key.src, now),
                    },
                    usize::from(s.service),
                    &head,
                    now,
                )
                .unwrap_or(own)
            };
            let later = !s.first_ours;
            s.first_ours = false;
            self.counters.inc(Counter::PersistRequests);
            if later {
                // A later request of the connection: classified and
                // admitted here as the first was at the inspector.
                let service = usize::from(s.service);
                if let Err(answer) =
                    admit_request(&mut self.classes, &self.tables, service, &head, target, now)
                {
                    s.refusing = Some(answer);
                    self.persist_try_refuse(slot);
                    return;
                }
            }
            if target == own {
                self.counters.inc(Counter::PersistRequestsHere);
                if s.requests_here == 0 && s.insert.is_none() {
                    s.issue_cookie = cookie_to_issue(
                        &self.tables,
                        self.sticky_key.as_ref(),
                        usize::from(s.service),
                        &head,
                    );
                }
                let ticket = Ticket {
                    slot,
                    generation: s.generation,
                };
                let service = usize::from(s.service);
                match offer_request(&mut self.classes, service, &head, ticket, now) {
                    Offer::Unscheduled => self.persist_release(slot, len, expect, None),
                    Offer::Queued => {
                        s.queued = Some(Queued { len, expect });
                        let start = s.in_kernel.is_empty() && s.requests_here == 0;
                        let released = s.released;
                        if start {
                            // The kernel's handshake completes now (a bare
                            // ACK): its socket waits in the accept queue
                            // rather than retransmitting its SYN-ACK.
                            if let Some(f) = self.client_to_kernel(slot, released, &[]) {
                                self.emitted.push((KERNEL, f));
                            }
                        }
                        // The client must not retransmit what waits here.
                        self.persist_ack_held(slot);
                        return self.persist_schedule(service, now);
                    }
                    Offer::Refused(answer) => {
                        s.refusing = Some(answer);
                        self.persist_try_refuse(slot);
                        return;
                    }
                }
            } else {
                self.counters.inc(Counter::PersistRequestsHeld);
                let s = self.sessions.get_mut(slot).expect("looked up above");
                s.held = Some(Held {
                    target,
                    since: now,
                    len,
                    expect,
                });
                self.sessions.holding.push(slot);
                return;
            }
        }
    }

    /// Gives the first `len` bytes of the hold buffer (one request, of
    /// scheduling class `class`) to the kernel; its body, if not all here
    /// yet, follows straight through.
    fn persist_release(&mut self, slot: u32, len: u64, expect: Expect, class: Option<ClassId>) {
        let Some(s) = self.sessions.get_mut(slot) else {
            return;
        };
        if !s.framer.expect(expect) {
            if let Some(class) = class {
                finish_request(&mut self.classes, usize::from(s.service), class);
            }
            return self.persist_untrack(slot, Untrack::Unframed);
        }
        s.in_kernel.push_back(class);
        s.requests_here = s.requests_here.saturating_add(1);
        let have = s.hold.contiguous().len();
        let now_len = usize::try_from(len).map_or(have, |l| l.min(have));
        let start = s.released;
        s.released = start.wrapping_add(len as u32);
        let bytes = s.hold.contiguous()[..now_len].to_vec();
        if (now_len as u64) < len {
            let released = s.released;
            s.hold.restart(released);
        } else {
            s.hold.consume(now_len);
        }
        self.persist_emit(slot, start, &bytes);
    }

    /// `bytes` from client sequence number `seq` to the kernel, in segments
    /// of at most the MSS, with the client's newest acknowledgement and
    /// timestamps.
    fn persist_emit(&mut self, slot: u32, seq: u32, bytes: &[u8]) {
        let mss = self
            .sessions
            .get_mut(slot)
            .map_or(1460, |s| usize::from(s.opts.mss).clamp(64, 1460));
        let mut offset = 0;
        while offset < bytes.len() {
            let end = (offset + mss).min(bytes.len());
            let at = seq.wrapping_add(offset as u32);
            if let Some(f) = self.client_to_kernel(slot, at, &bytes[offset..end]) {
                self.emitted.push((KERNEL, f));
            }
            offset = end;
        }
    }

    /// A client segment to this kernel, built by the dataplane: sequence
    /// number `seq`, `payload`, and the client's newest acknowledgement,
    /// window and timestamps (kernel space).
    fn client_to_kernel(&mut self, slot: u32, seq: u32, payload: &[u8]) -> Option<Vec<u8>> {
        let own_mac = self.tables.own_mac;
        let s = self.sessions.get_mut(slot)?;
        let t = s.translation();
        let flags = if payload.is_empty() {
            TcpFlags::ACK
        } else {
            TcpFlags::PSH | TcpFlags::ACK
        };
        let mut seg = bare_tcp(
            s.key.src_port,
            s.key.dst_port,
            seq,
            Some(s.client_acked),
            flags,
            s.client_window,
        );
        seg.timestamps = s
            .opts
            .timestamps()
            .then_some((s.client_tsval, t.ts_to_kernel(s.tsval_to_client)));
        s.acked_to_kernel = s.client_acked;
        Some(build(&Segment {
            src: (s.client_mac, s.key.src, s.key.src_port),
            dst: (own_mac, s.key.dst, s.key.dst_port),
            tcp: seg,
            payload,
        }))
    }

    /// Acknowledges held bytes to the client (from the VIP, in the
    /// client's view of the server), once the kernel has read every
    /// released byte: before that an acknowledgement from the dataplane
    /// could cover released bytes the kernel never got.
    fn persist_ack_held(&mut self, slot: u32) {
        let own_mac = self.tables.own_mac;
        let Some(s) = self.sessions.get_mut(slot) else {
            return;
        };
        let ack = s.hold.ack_point();
        if !s.client_mac_known
            || s.kernel_ack != s.released
            || ack == s.released
            || !seq_lt(s.acked_held, ack)
        {
            return;
        }
        s.acked_held = ack;
        let t = s.translation();
        let (window, _) = t.window_to_client(s.kernel_window);
        let mut seg = bare_tcp(
            s.key.dst_port,
            s.key.src_port,
            t.server_seq_to_client(s.kernel_end),
            Some(ack),
            TcpFlags::ACK,
            window,
        );
        seg.timestamps = s
            .opts
            .timestamps()
            .then_some((s.tsval_to_client, s.client_tsval));
        let frame = build(&Segment {
            src: (own_mac, s.key.dst, s.key.dst_port),
            dst: (s.client_mac, s.key.src, s.key.src_port),
            tcp: seg,
            payload: &[],
        });
        self.emitted.push((WIRE, frame));
        self.counters.inc(Counter::PersistHeldAcked);
    }

    /// Moves the connection to the member its held request belongs to, if
    /// it can move now; true if it did (this kernel's socket is reset).
    fn persist_move(&mut self, slot: u32, now: Instant) -> bool {
        let Some(s) = self.sessions.get_mut(slot) else {
            return false;
        };
        if s.refusing.is_some() {
            return self.persist_try_refuse(slot);
        }
        let Some(held) = s.held else {
            return false;
        };
        if !s.settled() {
            return false;
        }
        // The held bytes acknowledged now, if not yet: the client must not
        // retransmit them to the next kernel as old data.
        self.persist_ack_held(slot);
        if !self.conns.has_free() {
            // No setup slot: it cannot move now; tried again on the next
            // segment, served here at the hold timeout.
            self.counters.inc(Counter::SpliceConnTableFull);
            return false;
        }
        let Some(s) = self.persist_free(slot) else {
            return false;
        };
        let t = s.translation();
        let client_view_next = t.server_seq_to_client(s.kernel_end);
        let requests_here = s.requests_here;
        let held_bytes = s.hold.contiguous().len() as u64;
        let conn = Conn {
            key: s.key,
            client_mac: s.client_mac,
            opts: s.opts,
            cookie_isn: client_view_next.wrapping_sub(1),
            client_isn: s.released.wrapping_sub(1),
            client_tsval: s.client_tsval,
            client_window: s.client_window,
            tsval_sent: s.tsval_to_client,
            buf: s.hold,
            started: now,
            phase: Phase::Buffering,
            handoff: None,
            remote: None,
            advertised_ws: s.params.client_wscale_advertised,
            moving: true,
            target: held.target,
        };
        let Some(conn_slot) = self.conns.alloc(conn) else {
            return false;
        };
        let key = s.key;
        if let Some(mut flow) = self.flows.lookup_touch(&key, now) {
            flow.value_mut().action = FlowAction::Splicing {
                slot: conn_slot,
                service: s.service,
            };
            // The connection continues from the replayed ISN on.
            flow.value_mut().client_isn = s.released.wrapping_sub(1);
            self.flows.note_changed(key);
        }
        self.reset_kernel(conn_slot, s.released);
        self.counters.inc(Counter::RehandoffStarted);
        self.log_move(key, MoveKind::Left { to: held.target }, requests_here, now);
        self.counters.add(Counter::PersistHeldBytes, held_bytes);
        let waited = now.as_millis().saturating_sub(held.since.as_millis());
        self.counters.add(Counter::PersistHoldMs, waited);
        if !self.handoff_start(conn_slot, held.target, now) {
            self.counters.inc(Counter::RehandoffFallback);
            self.log_move(key, MoveKind::Fallback { to: held.target }, 0, now);
            self.replay_syn(conn_slot, now);
        }
        true
    }

    /// Requests held longer than the request timeout are served where the
    /// connection is; sessions whose flow is gone are freed.
    pub(super) fn persist_expire(&mut self, now: Instant) {
        if self.sessions.len() == 0 {
            // Nothing waited in a replaced scheduler.
            self.requeue.clear();
            return;
        }
        while let Some(service) = self.requeue.pop() {
            self.persist_requeue(service, now);
        }
        self.persist_expire_waiting(now);
        let mut i = 0;
        while i < self.sessions.holding.len() {
            let slot = self.sessions.holding[i];
            let timeout_ms = self
                .sessions
                .get_mut(slot)
                .map(|s| usize::from(s.service))
                .and_then(|svc| self.tables.services.get(svc))
                .and_then(|svc| svc.dispatch.as_ref())
                .map_or(5_000, |d| u64::from(d.request_timeout_ms));
            let expired = self.sessions.get_mut(slot).and_then(|s| {
                let held = s.held?;
                (now.as_millis().saturating_sub(held.since.as_millis()) >= timeout_ms)
                    .then_some(held)
            });
            match expired {
                Some(held) => {
                    self.sessions.holding.swap_remove(i);
                    if let Some(s) = self.sessions.get_mut(slot) {
                        s.held = None;
                    }
                    self.counters.inc(Counter::RehandoffHoldTimeout);
                    if let Some(s) = self.sessions.get_mut(slot) {
                        let (key, n) = (s.key, s.requests_here);
                        self.log_move(key, MoveKind::HoldTimeout { to: held.target }, n, now);
                    }
                    self.persist_release(slot, held.len, held.expect, None);
                    self.persist_advance(slot, now);
                }
                None => i += 1,
            }
        }
        self.persist_sweep();
    }

    /// Releases what service `service`'s scheduler lets go at `now`: each
    /// released request goes from its session's buffer to this kernel (a
    /// ticket whose session is gone frees its slot at once).
    fn persist_schedule(&mut self, service: usize, now: Instant) {
        if self.sessions.scheduling {
            // Called from within the loop below (through
            // `persist_advance`): the loop releases it.
            return;
        }
        self.sessions.scheduling = true;
        while let Some(r) = next_release(&mut self.classes, service, now) {
            let Ticket { slot, generation } = r.item;
            let queued = self
                .sessions
                .get_mut(slot)
                .filter(|s| s.generation == generation)
                .and_then(|s| s.queued.take());
            match queued {
                Some(q) => {
                    self.persist_release(slot, q.len, q.expect, Some(r.class));
                    self.persist_advance(slot, now);
                }
                None => finish_request(&mut self.classes, service, r.class),
            }
        }
        self.sessions.scheduling = false;
    }

    /// `n` responses of the session in `slot` completed: their requests'
    /// scheduler slots are free.
    fn persist_completed(&mut self, slot: u32, n: usize, now: Instant) {
        let Some(s) = self.sessions.get_mut(slot) else {
            return;
        };
        let service = usize::from(s.service);
        let mut any = false;
        for _ in 0..n {
            if let Some(Some(class)) = s.in_kernel.pop_front() {
                finish_request(&mut self.classes, service, class);
                any = true;
            }
        }
        if any {
            self.persist_schedule(service, now);
        }
    }

    /// Ends the connection of the session in `slot` with its refusal
    /// answer, if every earlier response is complete and acknowledged by
    /// the client and its address is known: an exact RST to this kernel,
    /// the answer (or a RST) to the client from the VIP, the flow
    /// forgotten. Otherwise tried again on the connection's next segment.
    fn persist_try_refuse(&mut self, slot: u32) -> bool {
        let Some(s) = self.sessions.get_mut(slot) else {
            return false;
        };
        if !(s.settled() && s.client_mac_known) {
            return false;
        }
        let Some(answer) = s.refusing.take() else {
            return false;
        };
        let t = s.translation();
        let to = AnswerTo {
            key: s.key,
            client_mac: s.client_mac,
            opts: s.opts,
            seq: t.server_seq_to_client(s.kernel_end),
            ack: s.hold.ack_point(),
            timestamps: (s.tsval_to_client.wrapping_add(1), s.client_tsval),
        };
        let (key, released) = (s.key, s.released);
        self.persist_free(slot);
        self.flows.remove(&key);
        self.kernel_rst(key, to.client_mac, released);
        self.send_answer(&to, &answer);
        self.counters.inc(Counter::PersistRefused);
        true
    }

    /// Frees the session in `slot`: the scheduler slots of its requests
    /// still in the kernel are free (the next `persist_expire` releases
    /// what waits for them); a request of it still queued is skipped when
    /// its turn comes.
    fn persist_free(&mut self, slot: u32) -> Option<Session> {
        let mut s = self.sessions.release(slot)?;
        finish_in_kernel(&mut self.classes, &mut s);
        Some(s)
    }

    /// The class state of service `service` was rebuilt (a reload): the
    /// requests its sessions had waiting are offered to the new scheduler
    /// (or released, if the service no longer schedules), and requests in
    /// the kernel are no longer counted (the new scheduler never saw them).
    fn persist_requeue(&mut self, service: usize, now: Instant) {
        for slot in 0..self.sessions.slots.len() as u32 {
            let Some(s) = self
                .sessions
                .get_mut(slot)
                .filter(|s| usize::from(s.service) == service)
            else {
                continue;
            };
            for class in &mut s.in_kernel {
                *class = None;
            }
            let Some(q) = s.queued.take() else {
                continue;
            };
            let ticket = Ticket {
                slot,
                generation: s.generation,
            };
            let offer = match parse_head(s.hold.contiguous()) {
                Ok(Some(head)) => offer_request(&mut self.classes, service, &head, ticket, now),
                _ => Offer::Unscheduled,
            };
            match offer {
                Offer::Unscheduled => {
                    self.persist_release(slot, q.len, q.expect, None);
                    self.persist_advance(slot, now);
                }
                Offer::Queued => {
                    if let Some(s) = self.sessions.get_mut(slot) {
                        s.queued = Some(q);
                    }
                }
                Offer::Refused(answer) => {
                    if let Some(s) = self.sessions.get_mut(slot) {
                        s.refusing = Some(answer);
                    }
                    self.persist_try_refuse(slot);
                }
            }
        }
        self.persist_schedule(service, now);
    }

    /// Requests that waited `max_wait_ms` in a scheduler are refused;
    /// then every scheduler releases what it may (slots freed by sessions
    /// that ended).
    fn persist_expire_waiting(&mut self, now: Instant) {
        let mut expired = std::mem::take(&mut self.sessions.expired);
        expire_waiting(&mut self.classes, now, &mut expired);
        for (Ticket { slot, generation }, answer) in expired.drain(..) {
            let Some(s) = self
                .sessions
                .get_mut(slot)
                .filter(|s| s.generation == generation && s.queued.is_some())
            else {
                continue;
            };
            s.queued = None;
            s.refusing = Some(answer);
            self.persist_try_refuse(slot);
        }
        self.sessions.expired = expired;
        for service in 0..self.classes.len() {
            if scheduled(&self.classes, service) {
                self.persist_schedule(service, now);
            }
        }
    }

    /// Frees sessions whose flow ended (expired, evicted, replaced by a new
    /// connection on the 4-tuple): a few per call.
    fn persist_sweep(&mut self) {
        let n = self.sessions.slots.len();
        if n == 0 {
            return;
        }
        for _ in 0..SWEEP_PER_POLL.min(n) {
            let slot = self.sessions.cursor % n;
            self.sessions.cursor = (slot + 1) % n;
            let Some(key) = self.sessions.slots[slot].as_ref().map(|s| s.key) else {
                continue;
            };
            let alive = self
                .flows
                .get(&key)
                .is_some_and(|f| f.value.action == FlowAction::Tracked { slot: slot as u32 });
            if !alive {
                self.persist_free(slot as u32);
                self.counters.inc(Counter::PersistSessionsFreed);
            }
        }
    }

    /// Stops following the connection in `slot`: held bytes go to this
    /// kernel, the flow stays spliced here.
    fn persist_untrack(&mut self, slot: u32, why: Untrack) {
        self.persist_stop(slot, why, true);
    }

    /// Ends the session in `slot`, giving its held bytes to this kernel
    /// first if `flush`; the flow stays spliced here.
    fn persist_stop(&mut self, slot: u32, why: Untrack, flush: bool) {
        let Some(s) = self.sessions.get_mut(slot) else {
            return;
        };
        if s.detached {
            return;
        }
        let bytes = s.hold.contiguous().to_vec();
        let start = s.released;
        let (key, params) = (s.key, s.params);
        if flush && !bytes.is_empty() {
            self.persist_emit(slot, start, &bytes);
        }
        self.counters.inc(why.counter());
        if let Some(s) = self.sessions.get_mut(slot).filter(|s| s.insert.is_some()) {
            // The client has not acknowledged the inserted cookie yet: the
            // session keeps translating with it until then.
            s.detached = true;
            s.held = None;
            s.queued = None;
            s.refusing = None;
            s.hold.consume(s.hold.contiguous().len());
            finish_in_kernel(&mut self.classes, s);
            return;
        }
        self.persist_free(slot);
        if let Some(mut flow) = self.flows.get_mut(&key) {
            flow.value_mut().action = untracked(params);
            self.flows.note_changed(key);
        }
    }

    /// Logs a move of the connection `key` (`moves`).
    pub(super) fn log_move(
        &mut self,
        key: FlowKey,
        kind: MoveKind,
        requests_here: u32,
        now: Instant,
    ) {
        let unix_ms = self.unix_ms(now);
        self.moves.push(MoveEvent {
            unix_ms,
            client: core::net::SocketAddrV4::new(key.src, key.src_port),
            kind,
            requests_here,
        });
    }

    /// An exact RST into this kernel for the connection `key` (`seq` = the
    /// kernel's `rcv_nxt`; no ACK, nothing to the client).
    fn kernel_rst(&mut self, key: FlowKey, client_mac: EthernetAddress, seq: u32) {
        let rst = bare_tcp(key.src_port, key.dst_port, seq, None, TcpFlags::RST, 0);
        let frame = build(&Segment {
            src: (client_mac, key.src, key.src_port),
            dst: (self.tables.own_mac, key.dst, key.dst_port),
            tcp: rst,
            payload: &[],
        });
        self.emitted.push((KERNEL, frame));
    }

    /// The action a flow snapshot records for `action` (a tracked flow is
    /// recorded as the splice it is).
    pub(super) fn resolve_action(&self, action: FlowAction) -> FlowAction {
        match action {
            FlowAction::Tracked { slot } => self.sessions.params(slot).map_or(action, untracked),
            other => other,
        }
    }
}
