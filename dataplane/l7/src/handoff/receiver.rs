//! The chosen server's side of a handoff: collecting offer parts, handing
//! a complete offer to the caller for the replay into its kernel, and
//! answering — once per handoff, the same answer to every duplicate.
//!
//! This module owns the table of incoming handoffs, keyed by (sender,
//! sender's incarnation, handoff id) and bounded: when it is full a new
//! offer is refused as `Busy` at once so the inspector falls back without
//! waiting. It does not replay anything itself (that is the splice code's
//! job, through the TAP) and reads no clock: every call takes `now`, and
//! [`Receiver::poll`] returns what the caller must send or do.
//!
//! Life of an entry: `Collecting` (parts arriving, any order) ->
//! `Replaying` (complete; [`ReceiverEvent::Replay`] given to the caller) ->
//! `Answered` (the caller called [`Receiver::accepted`] or
//! [`Receiver::refused`]; the answer is resent for duplicates at most once
//! per `reanswer_interval`) -> expired after `linger`. An entry still
//! collecting after `assembly_timeout` is dropped silently (the inspector
//! falls back on its own); one still replaying after `replay_timeout` is
//! refused as `HandshakeFailed`.

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};

use super::link::Origin;
use super::message::{
    part_count, Accept, FlowSnapshot, HandoffId, Message, Offer, OfferPart, Refuse, RefuseReason,
    PART_BYTES,
};
use shoal_wire::time::Instant;

/// Limits and timers of a [`Receiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Most handoffs in the table (collecting, replaying or answered).
    pub capacity: usize,
    /// Longest request accepted (the config's `max_request_bytes`); longer
    /// offers are refused as `TooLarge`.
    pub max_request_bytes: usize,
    /// Longest wait for the missing parts of an offer.
    pub assembly_timeout: Duration,
    /// Longest wait for the caller's [`Receiver::accepted`] /
    /// [`Receiver::refused`] after a [`ReceiverEvent::Replay`].
    pub replay_timeout: Duration,
    /// How long an answer is remembered for duplicates; keep it above the
    /// inspectors' `give_up_after()`.
    pub linger: Duration,
    /// Least time between two resends of the same answer.
    pub reanswer_interval: Duration,
}

impl Default for ReceiverConfig {
    /// 65 536 entries, 16 KiB requests, 1 s to assemble, 1 s to replay,
    /// answers remembered 2 s (the inspector gives up 750 ms after an offer)
    /// and resent at most every 10 ms. Persistent connections move for
    /// most requests when their requests belong to different members: a
    /// worker may take thousands of handoffs a second, each remembered for
    /// `linger`.
    fn default() -> Self {
        ReceiverConfig {
            capacity: 65_536,
            max_request_bytes: 16 * 1024,
            assembly_timeout: Duration::from_secs(1),
            replay_timeout: Duration::from_secs(1),
            linger: Duration::from_secs(2),
            reanswer_interval: Duration::from_millis(10),
        }
    }
}

/// How long an answer is kept at least, even when the table is full: more
/// than the inspector's wait before it gives up on an offer (750 ms).
pub const SAFE_TO_FORGET: Duration = Duration::from_secs(1);

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// Seal `message` for member `to` and send it.
    Send {
        /// Recipient (the inspector).
        to: super::MemberId,
        /// The message.
        message: Message,
    },
    /// A complete offer: replay the handshake into the kernel, then call
    /// [`Receiver::accepted`] (or [`Receiver::refused`], e.g. unknown
    /// service or draining). Given once per handoff.
    Replay {
        /// Who offered it.
        origin: Origin,
        /// The offer, request reassembled.
        offer: Offer,
    },
    /// The caller did not answer a [`ReceiverEvent::Replay`] within
    /// `replay_timeout`; the handoff was refused as `HandshakeFailed`.
    /// Tear down whatever half-built state the replay left.
    ReplayTimedOut {
        /// Who offered it.
        origin: Origin,
        /// The handoff.
        id: HandoffId,
    },
}

/// Why [`Receiver::accepted`] or [`Receiver::refused`] did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// No such handoff (never offered, or expired).
    #[error("no handoff {id:?} from member {member} in the table (expired?)")]
    Unknown {
        /// The sender.
        member: super::MemberId,
        /// The handoff.
        id: HandoffId,
    },
    /// The handoff was already answered (the first answer stands).
    #[error("handoff {id:?} from member {member} was already answered")]
    AlreadyAnswered {
        /// The sender.
        member: super::MemberId,
        /// The handoff.
        id: HandoffId,
    },
    /// Accepting needs a complete offer ([`ReceiverEvent::Replay`] given).
    #[error("handoff {id:?} from member {member} is still collecting parts")]
    NotReplaying {
        /// The sender.
        member: super::MemberId,
        /// The handoff.
        id: HandoffId,
    },
}

/// What a [`Receiver`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReceiverCounters {
    /// Offer parts received (all of them).
    pub parts: u64,
    /// Complete offers given to the caller.
    pub replays: u64,
    /// Accepts sent (first answers).
    pub accepted: u64,
    /// Refusals sent (first answers), `Busy` included.
    pub refused: u64,
    /// Offers refused because the table was full.
    pub full: u64,
    /// Answers forgotten early to make room (older than [`SAFE_TO_FORGET`]).
    pub forgotten: u64,
    /// Offers refused because the request was too long.
    pub too_large: u64,
    /// Parts already held, or arriving while replaying.
    pub duplicate_parts: u64,
    /// Parts whose snapshot or length differ from the first part's.
    pub conflicting_parts: u64,
    /// Answers resent for duplicate offers.
    pub reanswered: u64,
    /// Offers dropped incomplete after `assembly_timeout`.
    pub assembly_timeouts: u64,
    /// Replays not answered within `replay_timeout`.
    pub replay_timeouts: u64,
    /// Non-offer messages received (a receiver takes only offers).
    pub unexpected: u64,
    /// Hand-built parts whose count, index or size disagree with the
    /// request length (never from the link: decode refuses those).
    pub malformed_parts: u64,
}

type Key = (Origin, HandoffId);

#[derive(Debug)]
enum State {
    Collecting {
        snapshot: FlowSnapshot,
        request_len: u32,
        have: Vec<bool>,
        missing: usize,
        request: Vec<u8>,
    },
    Replaying,
    Answered {
        answer: Message,
        last_sent: Instant,
    },
}

#[derive(Debug)]
struct Incoming {
    state: State,
    deadline: Instant,
}

/// The receiver's incoming handoffs.
#[derive(Debug)]
pub struct Receiver {
    config: ReceiverConfig,
    entries: BTreeMap<Key, Incoming>,
    timers: BTreeSet<(Instant, Key)>,
    events: Vec<ReceiverEvent>,
    counters: ReceiverCounters,
}

impl Receiver {
    /// An empty table.
    pub fn new(config: ReceiverConfig) -> Receiver {
        Receiver {
            config,
            entries: BTreeMap::new(),
            timers: BTreeSet::new(),
            events: Vec::new(),
            counters: ReceiverCounters::default(),
        }
    }

    /// Any message from `origin`: offer parts go to
    /// [`Receiver::on_offer`]; accepts and refusals are not for the
    /// receiver and are counted.
    pub fn on_message(&mut self, origin: Origin, message: &Message, now: Instant) {
        match message {
            Message::Offer(part) => self.on_offer(origin, part, now),
            Message::Accept(_) | Message::Refuse(_) | Message::Located(_) => {
                self.counters.unexpected += 1;
            }
        }
    }

    /// One offer part from `origin` (already checked by the link).
    pub fn on_offer(&mut self, origin: Origin, part: &OfferPart, now: Instant) {
        self.counters.parts += 1;
        if !part_is_consistent(part) {
            self.counters.malformed_parts += 1;
            return;
        }
        let key = (origin, part.id);
        let Some(entry) = self.entries.get_mut(&key) else {
            self.open(key, part, now);
            return;
        };
        let complete = match &mut entry.state {
            State::Collecting {
                snapshot,
                request_len,
                have,
                missing,
                request,
            } => {
                if *snapshot != part.snapshot || *request_len != part.request_len {
                    self.counters.conflicting_parts += 1;
                    return;
                }
                let i = usize::from(part.index);
                if have[i] {
                    self.counters.duplicate_parts += 1;
                    return;
                }
                have[i] = true;
                *missing -= 1;
                let start = i * PART_BYTES;
                request[start..start + part.part.len()].copy_from_slice(&part.part);
                (*missing == 0).then(|| Offer {
                    id: part.id,
                    snapshot: *snapshot,
                    request: core::mem::take(request),
                })
            }
            State::Replaying => {
                self.counters.duplicate_parts += 1;
                None
            }
            State::Answered { answer, last_sent } => {
                if now >= *last_sent + self.config.reanswer_interval {
                    *last_sent = now;
                    self.counters.reanswered += 1;
                    self.events.push(ReceiverEvent::Send {
                        to: origin.member,
                        message: answer.clone(),
                    });
                } else {
                    self.counters.duplicate_parts += 1;
                }
                None
            }
        };
        if let Some(offer) = complete {
            self.replay(key, offer, now);
        }
    }

    /// Makes room for one entry when the table is full: forgets the oldest
    /// answer given at least [`SAFE_TO_FORGET`] ago (its inspector has had
    /// it, or given up, by then; only duplicates of long-answered offers
    /// would miss it). False when every entry is younger or in progress.
    fn forget_oldest_answer(&mut self, now: Instant) -> bool {
        let linger = self.config.linger;
        let victim = self.timers.iter().find_map(|&(deadline, key)| {
            let entry = self.entries.get(&key)?;
            let answered_at = deadline.as_nanos().saturating_sub(linger.as_nanos() as u64);
            let old =
                now.as_nanos().saturating_sub(answered_at) >= SAFE_TO_FORGET.as_nanos() as u64;
            (matches!(entry.state, State::Answered { .. }) && entry.deadline == deadline && old)
                .then_some((deadline, key))
        });
        match victim {
            Some((deadline, key)) => {
                self.timers.remove(&(deadline, key));
                self.entries.remove(&key);
                self.counters.forgotten += 1;
                true
            }
            None => false,
        }
    }

    /// The first part of a handoff not in the table.
    fn open(&mut self, key: Key, part: &OfferPart, now: Instant) {
        if self.entries.len() >= self.config.capacity && !self.forget_oldest_answer(now) {
            // No room to remember the answer: refuse now, again for each
            // duplicate (the inspector falls back on the first one).
            self.counters.full += 1;
            self.counters.refused += 1;
            self.events.push(ReceiverEvent::Send {
                to: key.0.member,
                message: refuse(key.1, RefuseReason::Busy),
            });
            return;
        }
        let len = part.request_len as usize;
        if len > self.config.max_request_bytes {
            self.counters.too_large += 1;
            self.answer(key, refuse(key.1, RefuseReason::TooLarge), now);
            return;
        }
        let count = usize::from(part.count);
        let mut have = vec![false; count];
        let mut request = vec![0; len];
        let i = usize::from(part.index);
        have[i] = true;
        let start = i * PART_BYTES;
        request[start..start + part.part.len()].copy_from_slice(&part.part);
        if count == 1 {
            let offer = Offer {
                id: part.id,
                snapshot: part.snapshot,
                request,
            };
            self.replay(key, offer, now);
            return;
        }
        let deadline = now + self.config.assembly_timeout;
        self.set(
            key,
            State::Collecting {
                snapshot: part.snapshot,
                request_len: part.request_len,
                have,
                missing: count - 1,
                request,
            },
            deadline,
        );
    }

    /// Puts (or moves) `key` in the replaying state and tells the caller.
    fn replay(&mut self, key: Key, offer: Offer, now: Instant) {
        self.set(key, State::Replaying, now + self.config.replay_timeout);
        self.counters.replays += 1;
        self.events.push(ReceiverEvent::Replay {
            origin: key.0,
            offer,
        });
    }

    /// Records the first answer for `key`, sends it, and keeps it for
    /// `linger`.
    fn answer(&mut self, key: Key, answer: Message, now: Instant) {
        match &answer {
            Message::Accept(_) => self.counters.accepted += 1,
            _ => self.counters.refused += 1,
        }
        self.events.push(ReceiverEvent::Send {
            to: key.0.member,
            message: answer.clone(),
        });
        self.set(
            key,
            State::Answered {
                answer,
                last_sent: now,
            },
            now + self.config.linger,
        );
    }

    /// Inserts or replaces the entry for `key` with a new state and timer.
    fn set(&mut self, key: Key, state: State, deadline: Instant) {
        if let Some(old) = self.entries.insert(key, Incoming { state, deadline }) {
            self.timers.remove(&(old.deadline, key));
        }
        self.timers.insert((deadline, key));
    }

    /// The replay of handoff `id` from `origin` succeeded: its kernel chose
    /// `kernel_isn`. Sends the accept (and resends it for duplicates).
    pub fn accepted(
        &mut self,
        origin: Origin,
        id: HandoffId,
        kernel_isn: u32,
        now: Instant,
    ) -> Result<(), AnswerError> {
        let key = (origin, id);
        match self.entries.get(&key).map(|e| &e.state) {
            None => Err(AnswerError::Unknown {
                member: origin.member,
                id,
            }),
            Some(State::Collecting { .. }) => Err(AnswerError::NotReplaying {
                member: origin.member,
                id,
            }),
            Some(State::Answered { .. }) => Err(AnswerError::AlreadyAnswered {
                member: origin.member,
                id,
            }),
            Some(State::Replaying) => {
                self.answer(key, Message::Accept(Accept { id, kernel_isn }), now);
                Ok(())
            }
        }
    }

    /// Refuses handoff `id` from `origin` for `reason`, whether its offer
    /// is complete or not (e.g. the first part names an unknown service).
    /// Sends the refusal (and resends it for duplicates).
    pub fn refused(
        &mut self,
        origin: Origin,
        id: HandoffId,
        reason: RefuseReason,
        now: Instant,
    ) -> Result<(), AnswerError> {
        let key = (origin, id);
        match self.entries.get(&key).map(|e| &e.state) {
            None => Err(AnswerError::Unknown {
                member: origin.member,
                id,
            }),
            Some(State::Answered { .. }) => Err(AnswerError::AlreadyAnswered {
                member: origin.member,
                id,
            }),
            Some(State::Collecting { .. } | State::Replaying) => {
                self.answer(key, refuse(id, reason), now);
                Ok(())
            }
        }
    }

    /// Runs the timers due at `now` (assembly and replay timeouts, expiry
    /// of answers) and returns everything the caller must do, in order.
    /// Call it after every other call and whenever
    /// [`Receiver::next_deadline`] passes.
    pub fn poll(&mut self, now: Instant) -> impl Iterator<Item = ReceiverEvent> + '_ {
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(entry) = self.entries.get(&key) else {
                continue;
            };
            if entry.deadline != at {
                continue;
            }
            match entry.state {
                State::Collecting { .. } => {
                    self.counters.assembly_timeouts += 1;
                    self.entries.remove(&key);
                }
                State::Replaying => {
                    self.counters.replay_timeouts += 1;
                    self.events.push(ReceiverEvent::ReplayTimedOut {
                        origin: key.0,
                        id: key.1,
                    });
                    self.answer(key, refuse(key.1, RefuseReason::HandshakeFailed), at);
                }
                State::Answered { .. } => {
                    self.entries.remove(&key);
                }
            }
        }
        self.events.drain(..)
    }

    /// The earliest timer, if any: when [`Receiver::poll`] next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// Handoffs in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What this receiver counted.
    pub fn counters(&self) -> &ReceiverCounters {
        &self.counters
    }
}

/// Whether count, index and size agree with the request length (decode
/// guarantees it for received parts; hand-built parts may not).
fn part_is_consistent(p: &OfferPart) -> bool {
    let len = p.request_len as usize;
    let count = part_count(len);
    let index = usize::from(p.index);
    len <= super::MAX_REQUEST_BYTES
        && usize::from(p.count) == count
        && index < count
        && p.part.len() == (len - index * PART_BYTES).min(PART_BYTES)
}

fn refuse(id: HandoffId, reason: RefuseReason) -> Message {
    Message::Refuse(Refuse { id, reason })
}
