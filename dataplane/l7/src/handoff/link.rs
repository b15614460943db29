//! One member's end of the handoff channel: sealing outgoing messages
//! (sequence numbers, timestamps, tags) and opening incoming datagrams
//! (tag, recipient, timestamp window, per-sender replay window).
//!
//! This module owns the anti-replay state ([`ReplayGuard`] per sender) and
//! the channel's counters. It does no I/O and reads no clock: the caller
//! passes its wall clock (unix ms) in, sends what [`Link::seal`] returns to
//! the recipient's own address on [`super::PORT`], and gives what
//! [`Link::open`] returns to the [`super::Inspector`] or
//! [`super::Receiver`].
//!
//! Retransmissions of an offer are new datagrams with new sequence numbers,
//! so they pass the guard; a byte-for-byte replay of a datagram does not.
//! Deciding that two offers are the same handoff is the receiver's job.

use std::collections::BTreeMap;

use super::message::{decode, encode, Envelope, HandoffError, Message};
use super::MemberId;
use shoal_key::ClusterKey;

/// How many sequence numbers below the highest one seen are still accepted
/// (once each) when they arrive out of order.
pub const REPLAY_WINDOW: u64 = 64;
/// Default largest difference between a datagram's timestamp and the
/// receiver's wall clock (10 s).
pub const DEFAULT_MAX_SKEW_MS: u64 = 10_000;

/// Why the replay guard turned a correctly signed datagram away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// This exact sequence number was already accepted.
    #[error("replayed handoff datagram (sequence already seen)")]
    Replayed,
    /// Older than the window, or from an earlier incarnation of the sender.
    #[error("stale handoff datagram (older than the replay window or a previous incarnation)")]
    Stale,
}

/// Highest sequence seen from one sender plus a bitmap of the
/// [`REPLAY_WINDOW`] sequence numbers below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayGuard {
    incarnation: u64,
    highest: u64,
    /// Bit `i` set: `highest - i` was accepted.
    seen: u64,
}

impl ReplayGuard {
    /// A guard that has seen nothing.
    pub fn new() -> ReplayGuard {
        ReplayGuard::default()
    }

    /// Accepts `(incarnation, sequence)` once and records it, or says why
    /// not. A higher incarnation (the sender restarted) starts afresh.
    pub fn check(&mut self, incarnation: u64, sequence: u64) -> Result<(), Rejection> {
        match incarnation.cmp(&self.incarnation) {
            core::cmp::Ordering::Less => Err(Rejection::Stale),
            core::cmp::Ordering::Greater => {
                *self = ReplayGuard {
                    incarnation,
                    highest: sequence,
                    seen: 1,
                };
                Ok(())
            }
            core::cmp::Ordering::Equal if sequence > self.highest => {
                let shift = sequence - self.highest;
                self.seen = if shift >= REPLAY_WINDOW {
                    1
                } else {
                    (self.seen << shift) | 1
                };
                self.highest = sequence;
                Ok(())
            }
            core::cmp::Ordering::Equal => {
                let back = self.highest - sequence;
                if back >= REPLAY_WINDOW {
                    Err(Rejection::Stale)
                } else if self.seen & (1 << back) != 0 {
                    Err(Rejection::Replayed)
                } else {
                    self.seen |= 1 << back;
                    Ok(())
                }
            }
        }
    }

    /// The sender's incarnation and highest sequence accepted so far.
    pub fn highest(&self) -> (u64, u64) {
        (self.incarnation, self.highest)
    }
}

/// Who sent a message: the member and its incarnation (handoff ids are
/// unique per incarnation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// Sender's member id.
    pub member: MemberId,
    /// Sender's incarnation.
    pub incarnation: u64,
}

/// A datagram that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Who sent it.
    pub origin: Origin,
    /// What it says.
    pub message: Message,
}

/// Why [`Link::open`] turned a datagram away. [`label`] gives the metric
/// label.
///
/// [`label`]: OpenError::label
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not a valid signed handoff datagram.
    #[error(transparent)]
    Decode(#[from] HandoffError),
    /// Signed, but addressed to another member.
    #[error("handoff datagram for member {recipient}, not this one (member {local})")]
    NotForUs {
        /// Who it was for.
        recipient: MemberId,
        /// This member.
        local: MemberId,
    },
    /// Its timestamp is too far from this member's clock.
    #[error(
        "handoff datagram from member {sender} is {offset_ms} ms away from this clock \
         (limit {limit_ms} ms): check NTP on both members"
    )]
    ClockSkew {
        /// The sender.
        sender: MemberId,
        /// Sender's timestamp minus this clock.
        offset_ms: i64,
        /// The limit.
        limit_ms: u64,
    },
    /// The replay guard refused it.
    #[error("handoff datagram from member {sender}: {why}")]
    Rejected {
        /// The sender.
        sender: MemberId,
        /// Why.
        why: Rejection,
    },
}

impl OpenError {
    /// The metric label of this outcome.
    pub fn label(&self) -> &'static str {
        match self {
            OpenError::Decode(e) => e.label(),
            OpenError::NotForUs { .. } => "not_for_us",
            OpenError::ClockSkew { .. } => "clock_skew",
            OpenError::Rejected {
                why: Rejection::Replayed,
                ..
            } => "replayed",
            OpenError::Rejected {
                why: Rejection::Stale,
                ..
            } => "stale",
        }
    }
}

/// What a [`Link`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkCounters {
    /// Datagrams sealed.
    pub sealed: u64,
    /// Datagrams opened successfully.
    pub opened: u64,
    /// Datagrams that did not decode, tag failures excepted.
    pub malformed: u64,
    /// Datagrams whose tag did not verify.
    pub bad_mac: u64,
    /// Signed datagrams addressed to another member.
    pub not_for_us: u64,
    /// Signed datagrams outside the timestamp window.
    pub clock_skew: u64,
    /// Signed datagrams whose sequence number was already seen.
    pub replayed: u64,
    /// Signed datagrams older than the replay window or incarnation.
    pub stale: u64,
}

/// One member's end of the handoff channel.
#[derive(Debug, Clone)]
pub struct Link {
    key: ClusterKey,
    local: MemberId,
    incarnation: u64,
    next_sequence: u64,
    max_skew_ms: u64,
    /// One guard per sender and sending lane (see [`lane`]).
    guards: BTreeMap<(MemberId, u8), ReplayGuard>,
    counters: LinkCounters,
}

/// The sending *lane* of an incarnation: its low 8 bits. A member whose
/// dataplane runs several workers gives each worker its own incarnation
/// (`start_ms << 8 | worker`), sequence numbers and handoff ids; the
/// receiver keeps one replay guard per (member, lane), so the workers'
/// interleaved sequences never look like replays of each other, and a
/// restarted worker (a higher incarnation in its lane) starts afresh.
pub fn lane(incarnation: u64) -> u8 {
    (incarnation & 0xff) as u8
}

impl Link {
    /// A link for member `local` in its `incarnation` (grows across
    /// restarts: its start time in unix ms is a good choice), with the
    /// default ±[`DEFAULT_MAX_SKEW_MS`] timestamp window.
    pub fn new(key: ClusterKey, local: MemberId, incarnation: u64) -> Link {
        Link {
            key,
            local,
            incarnation,
            next_sequence: 1,
            max_skew_ms: DEFAULT_MAX_SKEW_MS,
            guards: BTreeMap::new(),
            counters: LinkCounters::default(),
        }
    }

    /// The same link with another timestamp window (± `ms`).
    #[must_use]
    pub fn with_max_skew_ms(mut self, ms: u64) -> Link {
        self.max_skew_ms = ms;
        self
    }

    /// This member's id.
    pub fn local(&self) -> MemberId {
        self.local
    }

    /// The signed datagram carrying `message` to member `to`, stamped with
    /// the next sequence number and `now_unix_ms`.
    pub fn seal(&mut self, to: MemberId, message: &Message, now_unix_ms: u64) -> Vec<u8> {
        let envelope = Envelope {
            sender: self.local,
            recipient: to,
            incarnation: self.incarnation,
            sequence: self.next_sequence,
            timestamp_ms: now_unix_ms,
        };
        self.next_sequence += 1;
        self.counters.sealed += 1;
        encode(&envelope, message, &self.key)
    }

    /// Checks a received datagram: tag, recipient, timestamp within the
    /// window of `now_unix_ms`, then the sender's replay guard (only a
    /// datagram that passed everything else moves the guard).
    pub fn open(&mut self, datagram: &[u8], now_unix_ms: u64) -> Result<Received, OpenError> {
        let result = self.check(datagram, now_unix_ms);
        let c = &mut self.counters;
        match &result {
            Ok(_) => c.opened += 1,
            Err(OpenError::Decode(HandoffError::BadMac)) => c.bad_mac += 1,
            Err(OpenError::Decode(_)) => c.malformed += 1,
            Err(OpenError::NotForUs { .. }) => c.not_for_us += 1,
            Err(OpenError::ClockSkew { .. }) => c.clock_skew += 1,
            Err(OpenError::Rejected {
                why: Rejection::Replayed,
                ..
            }) => c.replayed += 1,
            Err(OpenError::Rejected {
                why: Rejection::Stale,
                ..
            }) => c.stale += 1,
        }
        result
    }

    fn check(&mut self, datagram: &[u8], now_unix_ms: u64) -> Result<Received, OpenError> {
        let d = decode(datagram, &self.key)?;
        let e = d.envelope;
        if e.recipient != self.local {
            return Err(OpenError::NotForUs {
                recipient: e.recipient,
                local: self.local,
            });
        }
        let offset = i128::from(e.timestamp_ms) - i128::from(now_unix_ms);
        if offset.unsigned_abs() > u128::from(self.max_skew_ms) {
            return Err(OpenError::ClockSkew {
                sender: e.sender,
                offset_ms: offset.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
                limit_ms: self.max_skew_ms,
            });
        }
        self.guards
            .entry((e.sender, lane(e.incarnation)))
            .or_default()
            .check(e.incarnation, e.sequence)
            .map_err(|why| OpenError::Rejected {
                sender: e.sender,
                why,
            })?;
        Ok(Received {
            origin: Origin {
                member: e.sender,
                incarnation: e.incarnation,
            },
            message: d.message,
        })
    }

    /// What this link counted.
    pub fn counters(&self) -> &LinkCounters {
        &self.counters
    }
}
