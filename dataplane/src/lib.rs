//! Shoal's dataplane: pure packet logic over byte slices, the worker loop and
//! the I/O backends.
//!
//! Packet logic never reads the clock or does I/O: time ([`time::Instant`]) and
//! packets are passed in, so every behaviour is unit-testable without DPDK.
//! Start reading at [`pipeline`] (what happens to one frame), then
//! [`worker`] (the loop around it) and [`io`] (where frames come from).

pub use shoal_wire as wire;

pub mod claim;
pub mod control_link;
pub mod counters;
pub mod dispatch;
pub mod flow;
pub mod handoff;
pub mod http;
pub mod io;
pub mod membership;
pub mod pipeline;
pub mod replay;
pub mod run;
pub mod select;
pub mod splice;
pub mod syncookie;
pub mod time;
pub mod traffic;
pub mod worker;
