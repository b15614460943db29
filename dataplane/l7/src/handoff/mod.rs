//! The L7 handover between members (`docs/design.md`, "Splicing", step 3): the
//! authenticated handoff message and the two state machines around it.
//!
//! An inspector that has buffered a client's request and chosen another
//! member sends it an *offer* (client and VIP endpoints, client ISN, cookie
//! ISN, negotiated options, next sequence numbers, the request bytes) in
//! UDP datagrams between the members' own addresses on [`PORT`]. The
//! receiver replays the handshake into its kernel (see
//! `docs/splice-replay.md`) and answers *accept* (with its
//! kernel's ISN: it owns the flow now) or *refuse* (with a reason). The
//! inspector resends unanswered offers with exponential backoff and falls
//! back (serves the connection itself or picks another member) on a
//! refusal or after its last resend.
//!
//! - [`message`]: the wire format, [`encode`] and [`decode`] (HMAC-SHA256
//!   under the cluster key, as `shoal-control` does it).
//! - the cluster key is `shoal-key`'s [`ClusterKey`], the one `shoal-control`
//!   signs its announcements with.
//! - [`link`]: sealing and opening datagrams: sequence numbers, timestamp
//!   window, per-sender [`ReplayGuard`], recipient check, counters.
//! - [`inspector`]: offers in flight, retry timers, fallbacks, tombstones.
//! - [`receiver`]: part reassembly, idempotent answers.
//!
//! Everything here is pure: no socket, no clock. Monotonic time
//! ([`shoal_wire::time::Instant`]) drives the timers; the sender's wall clock
//! (unix ms, passed in) stamps datagrams for the timestamp window. The
//! caller moves datagrams between [`Link`] and the sockets and events
//! between the state machines and the splice code.

pub mod inspector;
pub mod link;
pub mod message;
pub mod receiver;

pub use inspector::{
    lane_of, FallbackReason, Inspector, InspectorConfig, InspectorCounters, InspectorEvent,
    StartError,
};
pub use link::{lane, Link, LinkCounters, OpenError, Origin, Received, Rejection, ReplayGuard};
pub use message::{
    decode, encode, part_count, Accept, Datagram, Envelope, FlowSnapshot, HandoffError, HandoffId,
    Located, Message, Negotiated, Offer, OfferPart, Refuse, RefuseReason, Timestamps, WindowScale,
    MAX_REQUEST_BYTES, PART_BYTES,
};
pub use receiver::{AnswerError, Receiver, ReceiverConfig, ReceiverCounters, ReceiverEvent};
pub use shoal_key::{ClusterKey, KeyTooShort};

/// A member's numeric id (1..=65535, the config's `members[].id`).
pub type MemberId = u16;

/// The default UDP port of handoff datagrams between members' own
/// addresses (the dataplane takes them before its kernel does).
pub const PORT: u16 = 7947;
