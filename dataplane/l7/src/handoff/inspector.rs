//! The inspector's side of a handoff: offers in flight, their retry timers,
//! and tombstones of finished handoffs.
//!
//! This module owns the table of pending handoffs (bounded) and decides
//! when to resend an offer (exponential backoff), when a handoff is done
//! (an accept), and when to give up (a refusal, or no answer after the last
//! retry): the caller then hands the connection to itself or to another
//! member. It sends nothing itself and reads no clock: every call takes
//! `now`, and [`Inspector::poll`] returns what the caller must send or do.
//! Flow-table tombstones (ignoring the client's packets once the flow is
//! elsewhere) are the caller's; the tombstones here only recognise late or
//! duplicate answers.

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};

use super::message::{Accept, FlowSnapshot, HandoffId, Message, Offer, Refuse, RefuseReason};
use super::MemberId;
use shoal_wire::time::Instant;

/// Limits and timers of an [`Inspector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectorConfig {
    /// Most handoffs in flight at once; [`Inspector::start`] refuses more.
    pub capacity: usize,
    /// Most tombstones kept; the oldest is dropped to make room.
    pub tombstone_capacity: usize,
    /// Wait before the first resend; each later wait doubles.
    pub first_retry: Duration,
    /// Resends after the first offer before giving up.
    pub retries: u32,
    /// How long a finished handoff is remembered.
    pub tombstone_ttl: Duration,
    /// Longest request accepted (the service's `max_request_bytes`, at
    /// most [`super::MAX_REQUEST_BYTES`]).
    pub max_request_bytes: usize,
}

impl Default for InspectorConfig {
    /// 1024 in flight, 4096 tombstones for 5 s, resends after 50, 100 and
    /// 200 ms (fallback 750 ms after the offer), 16 KiB requests.
    fn default() -> Self {
        InspectorConfig {
            capacity: 1024,
            tombstone_capacity: 4096,
            first_retry: Duration::from_millis(50),
            retries: 3,
            tombstone_ttl: Duration::from_secs(5),
            max_request_bytes: 16 * 1024,
        }
    }
}

impl InspectorConfig {
    /// Time from the first offer to the fallback when nobody answers:
    /// `first_retry * (2^(retries + 1) - 1)`.
    pub fn give_up_after(&self) -> Duration {
        (0..=self.retries).fold(Duration::ZERO, |sum, k| {
            sum.saturating_add(backoff(self.first_retry, k))
        })
    }
}

fn backoff(first: Duration, resends_done: u32) -> Duration {
    first.saturating_mul(1u32.checked_shl(resends_done).unwrap_or(u32::MAX))
}

/// Why [`Inspector::start`] did not start a handoff; the caller serves
/// the connection itself (or picks another way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// Too many handoffs in flight.
    #[error("{capacity} handoffs already in flight: serving locally")]
    Full {
        /// The limit.
        capacity: usize,
    },
    /// The request is longer than `max_request_bytes`.
    #[error("request of {len} bytes exceeds the {max} byte handoff limit")]
    TooLarge {
        /// Request length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Why a handoff fell back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    /// The receiver said no.
    Refused(RefuseReason),
    /// No answer after the first offer and every resend.
    NoAnswer {
        /// Offers sent (first one included).
        attempts: u32,
    },
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectorEvent {
    /// Seal `message` for member `to` and send it.
    Send {
        /// Recipient.
        to: MemberId,
        /// The message.
        message: Message,
    },
    /// Member `to` owns the flow now: keep a flow tombstone, drop the
    /// buffered request.
    HandedOver {
        /// The handoff.
        id: HandoffId,
        /// The new owner.
        to: MemberId,
        /// Its kernel's ISN.
        kernel_isn: u32,
        /// The connection, as offered.
        snapshot: FlowSnapshot,
    },
    /// Member `to` will not take the flow: hand it to this member or to
    /// another one.
    Fallback {
        /// The handoff.
        id: HandoffId,
        /// The member that did not take it.
        to: MemberId,
        /// Why.
        reason: FallbackReason,
        /// The connection, as offered.
        snapshot: FlowSnapshot,
    },
    /// An accept arrived after the handoff had fallen back or been
    /// cancelled: two members may now hold the flow. Report it; the
    /// caller decides (e.g. tell an operator, count a conflict).
    LateAccept {
        /// The handoff.
        id: HandoffId,
        /// The member that accepted.
        from: MemberId,
        /// Its kernel's ISN.
        kernel_isn: u32,
    },
}

/// What an [`Inspector`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InspectorCounters {
    /// Handoffs started.
    pub started: u64,
    /// Offer datagrams to send (every part of every attempt).
    pub offer_parts_sent: u64,
    /// Resend attempts.
    pub resends: u64,
    /// Handoffs accepted.
    pub handed_over: u64,
    /// Handoffs refused by the receiver.
    pub refused: u64,
    /// Handoffs given up for lack of an answer.
    pub no_answer: u64,
    /// Starts turned away because the table was full.
    pub full: u64,
    /// Starts turned away because the request was too long.
    pub too_large: u64,
    /// Handoffs cancelled by the caller.
    pub cancelled: u64,
    /// Accepts for a handoff already handed over (a resend crossed the
    /// first accept), and refusals for a finished handoff.
    pub duplicate_answers: u64,
    /// Accepts after a fallback or cancel.
    pub late_accepts: u64,
    /// Answers about a handoff this inspector does not know.
    pub unknown_answers: u64,
    /// Answers from a member the handoff was not offered to.
    pub wrong_member: u64,
    /// Offers received (an inspector does not take offers).
    pub unexpected: u64,
    /// Tombstones dropped early to make room.
    pub tombstones_evicted: u64,
}

#[derive(Debug)]
struct Pending {
    to: MemberId,
    offer: Offer,
    attempts: u32,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    HandedOver,
    FellBack,
    Cancelled,
}

#[derive(Debug, Clone, Copy)]
struct Tombstone {
    to: MemberId,
    outcome: Outcome,
    expires: Instant,
}

/// The lane (the inspector's worker) a handoff id was made by.
pub fn lane_of(id: HandoffId) -> u8 {
    (id.0 & 0xff) as u8
}

/// The inspector's handoffs in flight and recently finished.
#[derive(Debug)]
pub struct Inspector {
    config: InspectorConfig,
    next_id: u64,
    lane: u8,
    pending: BTreeMap<HandoffId, Pending>,
    tombstones: BTreeMap<HandoffId, Tombstone>,
    /// Retry deadlines and tombstone expiries; an id is in at most one of
    /// the two tables.
    timers: BTreeSet<(Instant, HandoffId)>,
    events: Vec<InspectorEvent>,
    counters: InspectorCounters,
}

impl Inspector {
    /// An empty table. Handoff ids start at 1 (they only need to be unique
    /// per incarnation: the receiver keys them by sender and incarnation).
    pub fn new(config: InspectorConfig) -> Inspector {
        Inspector::with_lane(config, 0)
    }

    /// An empty table whose handoff ids carry `lane` in their low 8 bits
    /// (`counter << 8 | lane`): a member with several workers gives each its
    /// lane, and the accept or refusal echoing an id is steered back to the
    /// worker that made the offer ([`lane_of`]).
    pub fn with_lane(config: InspectorConfig, lane: u8) -> Inspector {
        Inspector {
            config,
            next_id: 1,
            lane,
            pending: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            timers: BTreeSet::new(),
            events: Vec::new(),
            counters: InspectorCounters::default(),
        }
    }

    /// Offers the connection `snapshot` with its buffered `request` to
    /// member `to`: queues every offer part for sending and arms the retry
    /// timer. The request is copied (the caller keeps its buffer until
    /// [`InspectorEvent::HandedOver`] or [`InspectorEvent::Fallback`]).
    pub fn start(
        &mut self,
        to: MemberId,
        snapshot: FlowSnapshot,
        request: &[u8],
        now: Instant,
    ) -> Result<HandoffId, StartError> {
        let max = self.config.max_request_bytes.min(super::MAX_REQUEST_BYTES);
        if request.len() > max {
            self.counters.too_large += 1;
            return Err(StartError::TooLarge {
                len: request.len(),
                max,
            });
        }
        if self.pending.len() >= self.config.capacity {
            self.counters.full += 1;
            return Err(StartError::Full {
                capacity: self.config.capacity,
            });
        }
        let id = HandoffId(self.next_id << 8 | u64::from(self.lane));
        self.next_id += 1;
        let pending = Pending {
            to,
            offer: Offer {
                id,
                snapshot,
                request: request.to_vec(),
            },
            attempts: 0,
            deadline: now,
        };
        self.counters.started += 1;
        self.pending.insert(id, pending);
        self.send_attempt(id, now);
        Ok(id)
    }

    /// Queues every part of the offer and arms the next timer.
    fn send_attempt(&mut self, id: HandoffId, now: Instant) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        for part in p.offer.parts() {
            self.events.push(InspectorEvent::Send {
                to: p.to,
                message: Message::Offer(part),
            });
            self.counters.offer_parts_sent += 1;
        }
        self.timers.remove(&(p.deadline, id));
        p.deadline = now + backoff(self.config.first_retry, p.attempts);
        p.attempts += 1;
        self.timers.insert((p.deadline, id));
    }

    /// An accept from member `from` (already checked by the link).
    pub fn on_accept(&mut self, from: MemberId, accept: &Accept, now: Instant) {
        let id = accept.id;
        if let Some(p) = self.pending.get(&id) {
            if p.to != from {
                self.counters.wrong_member += 1;
                return;
            }
            let to = p.to;
            let snapshot = p.offer.snapshot;
            self.finish(id, Outcome::HandedOver, now);
            self.counters.handed_over += 1;
            self.events.push(InspectorEvent::HandedOver {
                id,
                to,
                kernel_isn: accept.kernel_isn,
                snapshot,
            });
        } else if let Some(t) = self.tombstones.get(&id) {
            if t.to != from {
                self.counters.wrong_member += 1;
            } else if t.outcome == Outcome::HandedOver {
                self.counters.duplicate_answers += 1;
            } else {
                self.counters.late_accepts += 1;
                self.events.push(InspectorEvent::LateAccept {
                    id,
                    from,
                    kernel_isn: accept.kernel_isn,
                });
            }
        } else {
            self.counters.unknown_answers += 1;
        }
    }

    /// A refusal from member `from` (already checked by the link).
    pub fn on_refuse(&mut self, from: MemberId, refuse: &Refuse, now: Instant) {
        let id = refuse.id;
        if let Some(p) = self.pending.get(&id) {
            if p.to != from {
                self.counters.wrong_member += 1;
                return;
            }
            let to = p.to;
            let snapshot = p.offer.snapshot;
            self.finish(id, Outcome::FellBack, now);
            self.counters.refused += 1;
            self.events.push(InspectorEvent::Fallback {
                id,
                to,
                reason: FallbackReason::Refused(refuse.reason),
                snapshot,
            });
        } else if let Some(t) = self.tombstones.get(&id) {
            if t.to == from {
                self.counters.duplicate_answers += 1;
            } else {
                self.counters.wrong_member += 1;
            }
        } else {
            self.counters.unknown_answers += 1;
        }
    }

    /// Any message from member `from`: accepts and refusals go to
    /// [`Inspector::on_accept`] / [`Inspector::on_refuse`]; offers are not
    /// for the inspector and are counted.
    pub fn on_message(&mut self, from: MemberId, message: &Message, now: Instant) {
        match message {
            Message::Accept(a) => self.on_accept(from, a, now),
            Message::Refuse(r) => self.on_refuse(from, r, now),
            Message::Offer(_) | Message::Located(_) => self.counters.unexpected += 1,
        }
    }

    /// Forgets a handoff in flight (the client reset the connection); no
    /// event follows. Returns whether it was in flight. A later accept is
    /// reported as [`InspectorEvent::LateAccept`].
    pub fn cancel(&mut self, id: HandoffId, now: Instant) -> bool {
        if self.pending.contains_key(&id) {
            self.finish(id, Outcome::Cancelled, now);
            self.counters.cancelled += 1;
            true
        } else {
            false
        }
    }

    /// Moves a pending handoff to the tombstones.
    fn finish(&mut self, id: HandoffId, outcome: Outcome, now: Instant) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        self.timers.remove(&(p.deadline, id));
        if self.config.tombstone_capacity == 0 {
            return;
        }
        if self.tombstones.len() >= self.config.tombstone_capacity {
            if let Some((old, t)) = self.tombstones.pop_first() {
                self.timers.remove(&(t.expires, old));
                self.counters.tombstones_evicted += 1;
            }
        }
        let expires = now + self.config.tombstone_ttl;
        self.tombstones.insert(
            id,
            Tombstone {
                to: p.to,
                outcome,
                expires,
            },
        );
        self.timers.insert((expires, id));
    }

    /// Runs the timers due at `now` (resends, fallbacks, tombstone expiry)
    /// and returns everything the caller must do, in order. Call it after
    /// every other call and whenever [`Inspector::next_deadline`] passes.
    pub fn poll(&mut self, now: Instant) -> impl Iterator<Item = InspectorEvent> + '_ {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(t) = self.tombstones.get(&id) {
                if t.expires == at {
                    self.tombstones.remove(&id);
                }
                continue;
            }
            let Some(p) = self.pending.get(&id) else {
                continue;
            };
            if p.attempts <= self.config.retries {
                self.counters.resends += 1;
                // The timer fired at `at`; later waits count from there so
                // the schedule does not drift with the poll rate.
                self.send_attempt(id, at);
            } else {
                let (to, attempts, snapshot) = (p.to, p.attempts, p.offer.snapshot);
                self.finish(id, Outcome::FellBack, at);
                self.counters.no_answer += 1;
                self.events.push(InspectorEvent::Fallback {
                    id,
                    to,
                    reason: FallbackReason::NoAnswer { attempts },
                    snapshot,
                });
            }
        }
        self.events.drain(..)
    }

    /// The earliest timer, if any: when [`Inspector::poll`] next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// Handoffs in flight.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Tombstones kept.
    pub fn tombstone_len(&self) -> usize {
        self.tombstones.len()
    }

    /// What this inspector counted.
    pub fn counters(&self) -> &InspectorCounters {
        &self.counters
    }
}
