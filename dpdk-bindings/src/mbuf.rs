//! Packet buffers (`struct rte_mbuf`): ownership (freed on drop), the packet
//! bytes as slices, and the headroom/tailroom operations (append, prepend,
//! adj, trim). Allocation comes from a [`Mempool`]; bursts live in
//! [`crate::ethdev`] and [`crate::ring`].
//!
//! Only single-segment buffers are produced with the port configuration of
//! [`crate::ethdev`] (no scatter RX, data room 2048 bytes). Should a
//! multi-segment buffer arrive anyway, [`Mbuf::data`] covers its first
//! segment only and [`Mbuf::is_contiguous`] returns `false`.

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::mempool::Mempool;
use crate::sys;

/// One packet buffer, exclusively owned; returned to its pool on drop.
///
/// `'p` is the borrow of the [`Mempool`] (or the port whose pool) it came
/// from, which keeps the pool alive as long as the buffer. The struct is a
/// single pointer (`repr(transparent)`), so a `Vec<Mbuf>` is directly the
/// `struct rte_mbuf **` array DPDK's burst functions read and write.
#[repr(transparent)]
pub struct Mbuf<'p> {
    raw: NonNull<sys::rte_mbuf>,
    _pool: PhantomData<&'p Mempool>,
}

// SAFETY: an Mbuf is the only owner of its rte_mbuf; freeing it from another
// thread is allowed by DPDK (the pool is MP/MC, caches are per lcore).
unsafe impl Send for Mbuf<'_> {}
// SAFETY: &Mbuf only reads the buffer; all mutation needs &mut Mbuf.
unsafe impl Sync for Mbuf<'_> {}

impl<'p> Mbuf<'p> {
    /// Allocates a buffer from `pool` (empty, with the default headroom);
    /// `None` when the pool is exhausted.
    pub fn alloc(pool: &'p Mempool) -> Option<Mbuf<'p>> {
        // SAFETY: the pool is live for 'p; rte_pktmbuf_alloc returns NULL or
        // a freshly reset mbuf that nobody else references.
        let raw = unsafe { sys::shim_rte_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(raw).map(|raw| Mbuf {
            raw,
            _pool: PhantomData,
        })
    }

    /// The packet bytes of the first segment (all of them for a contiguous
    /// buffer).
    pub fn data(&self) -> &[u8] {
        let m = self.raw.as_ptr();
        // SAFETY: self owns a valid mbuf; buf_addr + data_off points at
        // data_len initialised bytes inside the buffer (DPDK invariant,
        // maintained by every function that changes these fields), and the
        // slice borrows self so the buffer cannot be freed or changed meanwhile.
        unsafe {
            let start = (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off));
            std::slice::from_raw_parts(start, usize::from((*m).data_len))
        }
    }

    /// The packet bytes of the first segment, writable in place.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw.as_ptr();
        // SAFETY: as in data(); &mut self gives exclusive access to the
        // buffer (it has one owner, refcount 1).
        unsafe {
            let start = (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off));
            std::slice::from_raw_parts_mut(start, usize::from((*m).data_len))
        }
    }

    /// Length of [`Mbuf::data`] (the first segment's data length).
    pub fn len(&self) -> usize {
        // SAFETY: self owns a valid mbuf; reading a field.
        usize::from(unsafe { (*self.raw.as_ptr()).data_len })
    }

    /// `true` when the buffer holds no packet bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total packet length over all segments (`pkt_len`).
    pub fn pkt_len(&self) -> usize {
        // SAFETY: self owns a valid mbuf; reading a field.
        unsafe { (*self.raw.as_ptr()).pkt_len as usize }
    }

    /// Number of segments (1 for every buffer this crate produces).
    pub fn segments(&self) -> u16 {
        // SAFETY: self owns a valid mbuf; reading a field.
        unsafe { (*self.raw.as_ptr()).nb_segs }
    }

    /// `true` when [`Mbuf::data`] is the whole packet (one segment).
    pub fn is_contiguous(&self) -> bool {
        self.segments() == 1
    }

    /// Free bytes in front of the data (room for [`Mbuf::prepend`]).
    pub fn headroom(&self) -> usize {
        // SAFETY: self owns a valid mbuf; the shim only reads fields.
        usize::from(unsafe { sys::shim_rte_pktmbuf_headroom(self.raw.as_ptr()) })
    }

    /// Free bytes after the data (room for [`Mbuf::append`]).
    pub fn tailroom(&self) -> usize {
        // SAFETY: self owns a valid mbuf; the shim only reads fields.
        usize::from(unsafe { sys::shim_rte_pktmbuf_tailroom(self.raw.as_ptr()) })
    }

    /// Grows the data by `n` bytes at the end and returns them (their content
    /// is whatever the buffer held); `None` if the tailroom is too small.
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: &mut self gives exclusive access to a valid mbuf;
        // rte_pktmbuf_append returns NULL (nothing changed) or a pointer to
        // the n new bytes inside the buffer, which the slice covers while
        // borrowing self mutably.
        unsafe {
            let tail = sys::shim_rte_pktmbuf_append(self.raw.as_ptr(), n16);
            if tail.is_null() {
                return None;
            }
            Some(std::slice::from_raw_parts_mut(tail.cast::<u8>(), n))
        }
    }

    /// Grows the data by `n` bytes at the front (into the headroom) and
    /// returns them; `None` if the headroom is too small.
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: as in append(); rte_pktmbuf_prepend returns NULL (nothing
        // changed) or the new start of data, n bytes of which are the added
        // headroom bytes.
        unsafe {
            let head = sys::shim_rte_pktmbuf_prepend(self.raw.as_ptr(), n16);
            if head.is_null() {
                return None;
            }
            Some(std::slice::from_raw_parts_mut(head.cast::<u8>(), n))
        }
    }

    /// Removes `n` bytes from the front of the data (e.g. to strip an outer
    /// header); `false` (and nothing changed) if the data is shorter.
    pub fn adj(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: &mut self gives exclusive access to a valid mbuf;
        // rte_pktmbuf_adj checks n against data_len and changes nothing on
        // failure.
        !unsafe { sys::shim_rte_pktmbuf_adj(self.raw.as_ptr(), n16) }.is_null()
    }

    /// Removes `n` bytes from the end of the data; `false` (and nothing
    /// changed) if the data is shorter.
    pub fn trim(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: as in adj(); rte_pktmbuf_trim checks n against the last
        // segment's length and changes nothing on failure.
        unsafe { sys::shim_rte_pktmbuf_trim(self.raw.as_ptr(), n16) == 0 }
    }
}

impl Drop for Mbuf<'_> {
    fn drop(&mut self) {
        // SAFETY: self is the only owner of a valid mbuf, freed exactly once
        // (the burst functions mem::forget the Mbufs whose ownership they hand
        // to DPDK); the pool is alive for 'p.
        unsafe { sys::shim_rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("pkt_len", &self.pkt_len())
            .field("segments", &self.segments())
            .field("headroom", &self.headroom())
            .finish_non_exhaustive()
    }
}

/// Allocation from a pool, here beside the buffer it makes (the pool
/// itself knows nothing of [`Mbuf`]).
impl Mempool {
    /// Allocates one buffer; `None` when the pool is exhausted.
    pub fn alloc(&self) -> Option<Mbuf<'_>> {
        Mbuf::alloc(self)
    }

    /// Appends `n` freshly allocated buffers to `out`, all or nothing:
    /// returns `false` (and leaves `out` unchanged) when the pool has fewer
    /// than `n` free. Allocates (Vec growth) only if `out` lacks capacity.
    pub fn alloc_bulk<'p>(&'p self, out: &mut Vec<Mbuf<'p>>, n: usize) -> bool {
        let Ok(count) = u32::try_from(n) else {
            return false;
        };
        out.reserve(n);
        let len = out.len();
        // SAFETY: out has room for n more elements (reserve); Mbuf is
        // repr(transparent) over NonNull<rte_mbuf>, so the spare slots can
        // take rte_mbuf pointers. rte_pktmbuf_alloc_bulk either writes n valid
        // exclusively owned mbufs (return 0) or nothing; only then is the
        // length extended over them.
        unsafe {
            let slots = out.as_mut_ptr().add(len).cast::<*mut sys::rte_mbuf>();
            if sys::shim_rte_pktmbuf_alloc_bulk(self.as_ptr(), slots, count) != 0 {
                return false;
            }
            out.set_len(len + n);
        }
        true
    }
}
