//! Packet-buffer pools (`rte_pktmbuf_pool_create`): creation, occupancy and
//! freeing. Buffers themselves, and their allocation from a pool
//! (`Mempool::alloc`, `Mempool::alloc_bulk`), live in [`crate::mbuf`]; this
//! module only owns the pool.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use crate::eal::{Eal, LEAKED_POOLS};
use crate::error::DpdkError;
use crate::sys;

/// Data room of each buffer: DPDK's default (2048 bytes + 128 headroom),
/// enough for a 1518-byte frame in one segment.
pub const MBUF_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// Headroom reserved in front of the packet data in a fresh buffer.
pub const MBUF_HEADROOM: u16 = sys::RTE_PKTMBUF_HEADROOM as u16;

/// A named pool of packet buffers (`struct rte_mempool` made by
/// `rte_pktmbuf_pool_create`), freed on drop.
///
/// Buffers ([`crate::mbuf::Mbuf`]), ports and rings borrow the pool, so it outlives them.
/// Allocation is thread-safe (the default ring-based pool is multi-producer,
/// multi-consumer); EAL lcores use a per-lcore cache of `cache` buffers.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
    name: String,
    size: u32,
    _eal: Eal,
}

// SAFETY: an rte_mempool is a shared-memory object meant to be used from any
// thread; all operations the wrapper exposes (alloc, free, counts) are
// thread-safe in DPDK (MP/MC ring, per-lcore caches indexed by the calling
// thread's own lcore id).
unsafe impl Send for Mempool {}
// SAFETY: see Send; &Mempool only allows thread-safe operations.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pktmbuf pool of `n_mbufs` buffers (each with
    /// [`MBUF_DATA_ROOM`] bytes) and a per-lcore cache of `cache` buffers, on
    /// NUMA `socket` (`None`: any socket).
    ///
    /// DPDK limits: `name` shorter than 26 bytes and unique in the process,
    /// `cache <= 512` and `cache <= n_mbufs / 1.5`; `n_mbufs` works best as a
    /// power of two minus one.
    pub fn new(
        name: &str,
        n_mbufs: u32,
        cache: u32,
        socket: Option<u32>,
    ) -> Result<Mempool, DpdkError> {
        let call = || format!("rte_pktmbuf_pool_create(\"{name}\", n={n_mbufs}, cache={cache})");
        let eal = Eal::current("Mempool::new")?;
        let c_name = CString::new(name).map_err(|_| DpdkError::InvalidArgument {
            call: call(),
            reason: "the pool name contains a NUL byte".to_owned(),
        })?;
        let socket = socket
            .and_then(|s| i32::try_from(s).ok())
            .unwrap_or(sys::SOCKET_ID_ANY);
        // SAFETY: the EAL is alive (eal handle); c_name is a valid C string
        // that DPDK copies; the other arguments are plain integers that DPDK
        // validates (returning NULL and setting rte_errno on error).
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(c_name.as_ptr(), n_mbufs, cache, 0, MBUF_DATA_ROOM, socket)
        };
        let raw = NonNull::new(raw).ok_or_else(|| DpdkError::from_rte_errno(call()))?;
        Ok(Mempool {
            raw,
            name: name.to_owned(),
            size: n_mbufs,
            _eal: eal,
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of buffers the pool was created with.
    pub fn capacity(&self) -> u32 {
        self.size
    }

    /// Buffers currently free in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: self.raw is a live pool; the count only reads it.
        unsafe { sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Buffers currently allocated from the pool (held by the application,
    /// by port queues or by rings).
    pub fn in_use(&self) -> u32 {
        // SAFETY: self.raw is a live pool; the count only reads it.
        unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// The raw pool, for FFI calls inside the crate.
    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // Every Mbuf, EthPort and Ring borrows the pool, so none is alive
        // here; buffers still counted as in use were leaked (mem::forget) or
        // sit in a leaked port's queues. Freeing the pool under them would
        // leave dangling pointers, so leak it (and skip EAL cleanup) instead.
        if self.in_use() != 0 {
            LEAKED_POOLS.fetch_add(1, Ordering::AcqRel);
            return;
        }
        // SAFETY: the pool is live, no buffer of it is outstanding (checked
        // above; nothing can allocate concurrently because allocation needs
        // a borrow of self), and it is freed exactly once.
        unsafe { sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
