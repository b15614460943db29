//! Bindings to the system DPDK (22.11, found with pkg-config) and a thin safe
//! wrapper over the parts Shoal's dataplane uses: the EAL ([`eal`]), pktmbuf
//! pools ([`mempool`]), packet buffers ([`mbuf`]), Ethernet ports
//! ([`ethdev`]) and single-producer/single-consumer rings ([`ring`]).
//!
//! This is the only crate of the workspace that contains `unsafe` code. The
//! raw bindings (bindgen output plus a small C shim for DPDK's `static inline`
//! functions, see `csrc/`) stay private in `sys`; the public API has no raw
//! pointers. Every `unsafe` block carries a `// SAFETY:` comment.
//!
//! # Lifetimes
//!
//! DPDK objects must not outlive what they point into, so the wrapper encodes
//! the order of destruction:
//!
//! - [`Eal`] is a cloneable handle; [`Mempool`] and [`Ring`] hold a clone, and
//!   `rte_eal_cleanup` runs when the last handle is dropped.
//! - [`Mbuf<'p>`](Mbuf), [`EthPort<'p>`](EthPort) and [`Ring<'p>`](Ring) borrow
//!   the [`Mempool`] their buffers come from, so the borrow checker proves the
//!   pool outlives every buffer, port queue and ring that may hold its mbufs.
//!   A pool that still has buffers out when it is dropped (only possible when
//!   an `Mbuf`/`EthPort` was leaked with `mem::forget`) is leaked instead of
//!   freed, and EAL cleanup is then skipped (see [`eal::leaked_pools`]).
//!
//! # Packet path
//!
//! A worker loop needs no allocation per packet:
//! [`PortQueue::rx_burst`] fills the spare capacity of a reused `Vec<Mbuf>`,
//! [`Mbuf::data_mut`] gives the frame as a byte slice to rewrite in place, and
//! [`PortQueue::tx_burst`] moves the sent buffers out of a reused `Vec`
//! (unsent ones stay for a retry or a drop).
#![allow(unsafe_code)] // The one crate that talks to C; every block has a SAFETY comment.

mod sys;

pub mod eal;
pub mod error;
pub mod ethdev;
pub mod mbuf;
pub mod mempool;
pub mod ring;

pub use eal::{lcore_id, socket_id, tsc_cycles, tsc_hz, Eal, EalArgs};
pub use error::DpdkError;
pub use ethdev::{EthPort, LinkStatus, PortConfig, PortQueue, PortStats};
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use ring::{Ring, RingConsumer, RingProducer};
