//! Shoal's dataplane core: the per-frame decision ([`pipeline`]), the
//! per-worker flow table ([`flow`]), the counters, the worker loop and the
//! I/O backends, and the dataplane's end of the control channel.
//!
//! Packet logic never reads the clock or does I/O: time
//! ([`shoal_wire::time::Instant`]) and packets are passed in, so every
//! behaviour is unit-testable without DPDK. Who owns a connection is
//! `shoal-select`'s answer; the L7 pieces (reassembly, HTTP, dispatch, SYN
//! cookies, splice translation, handoff) are `shoal-l7`'s; this crate wires
//! them into the path of a frame. The process itself (`run`, `replay`,
//! `gen-trace` subcommands) is the binary in `src/bin/shoal-dataplane/`.
//!
//! Start reading at [`pipeline`] (what happens to one frame), then
//! [`worker`] (the loop around it) and [`io`] (where frames come from).

#![forbid(unsafe_code)]

pub use shoal_wire as wire;

pub mod control_link;
pub mod counters;
pub mod flow;
pub mod io;
pub mod journal;
pub mod overrides;
pub mod pipeline;
pub mod replay;
pub mod steer;
pub mod traffic;
pub mod worker;
