//! Shoal's L7 side: everything between a client's SYN on a `splice` service
//! and the connection running spliced on the member that serves it. Pure
//! packet logic: time ([`shoal_wire::time::Instant`]) and bytes are passed
//! in; nothing here reads a clock, does I/O or knows about flow tables,
//! ports or workers (that is `shoal-dataplane`, which calls these pieces from
//! its pipeline).
//!
//! - [`syncookie`]: SYN cookies (the inspector keeps no state before the
//!   client proves its address).
//! - [`reassembly`]: the client's request bytes rebuilt from TCP segments.
//! - [`http`]: the HTTP/1.x request head; [`answers`]: the canned error
//!   responses the dataplane sends itself.
//! - [`framing`]: HTTP/1.1 message boundaries on a spliced connection
//!   (when each response the kernel sends is complete; where a chunked
//!   body ends).
//! - [`classes`]: request classes, admission control and the scheduling
//!   of waiting requests at the serving member (CARISMA).
//! - [`dispatch`]: which member serves a request (URL hashing with hot
//!   paths, least-loaded, LARD, DTCP's server sets, cookie stickiness,
//!   rules).
//! - [`sticky`]: session stickiness (the signed cookie naming a member,
//!   session ids in URLs, the `Set-Cookie` line).
//! - [`splice`]: the per-flow translation of sequence numbers, SACK blocks,
//!   timestamps and windows once a connection is replayed into a kernel.
//! - [`handoff`]: the authenticated handoff protocol between members and
//!   its two state machines (inspector, receiver).
//!
//! The papers behind each piece are named in `docs/references.md`.

#![forbid(unsafe_code)]

pub mod answers;
pub mod classes;
pub mod dispatch;
pub mod framing;
pub mod handoff;
pub mod http;
pub mod reassembly;
pub mod splice;
pub mod sticky;
pub mod syncookie;
