//! Named single-producer/single-consumer `rte_ring`s of packet buffers, for
//! handing [`Mbuf`]s from one worker to another without locks or
//! allocation. This module owns the ring; the buffers keep their pool.
//!
//! A [`Ring`] can be used from one thread as is, or [`Ring::split`] into a
//! [`RingProducer`] and a [`RingConsumer`] that move to two threads. Buffers
//! still in the ring when the last handle is dropped are freed.

use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::eal::Eal;
use crate::error::DpdkError;
use crate::mbuf::Mbuf;
use crate::sys;

/// The ring itself, shared by the producer and consumer halves.
#[derive(Debug)]
struct RingInner {
    raw: NonNull<sys::rte_ring>,
    name: String,
    capacity: u32,
    _eal: Eal,
}

// SAFETY: an rte_ring lives in DPDK shared memory and is meant to be used
// from two threads (one producer, one consumer). RingInner itself only
// offers count() (atomic loads); the enqueue/dequeue paths are reachable
// only through &mut of a single Ring, RingProducer or RingConsumer.
unsafe impl Send for RingInner {}
// SAFETY: see Send.
unsafe impl Sync for RingInner {}

impl RingInner {
    fn count(&self) -> usize {
        // SAFETY: the ring is live; rte_ring_count reads its head/tail indices.
        unsafe { sys::shim_rte_ring_count(self.raw.as_ptr()) as usize }
    }

    /// Enqueues a prefix of `mbufs`, removing it from the Vec. The caller is
    /// the only producer.
    fn enqueue_burst(&self, mbufs: &mut Vec<Mbuf<'_>>) -> usize {
        let n = u32::try_from(mbufs.len()).unwrap_or(u32::MAX);
        if n == 0 {
            return 0;
        }
        // SAFETY: the caller is the only producer (single-producer ring);
        // Mbuf is repr(transparent) over NonNull<rte_mbuf>, so the Vec is an
        // array of n valid pointers. The ring stores the first `done` of them
        // and from now on owns those buffers.
        let done = unsafe {
            sys::shim_rte_ring_enqueue_burst(
                self.raw.as_ptr(),
                mbufs.as_ptr().cast::<*mut std::ffi::c_void>(),
                n,
                std::ptr::null_mut(),
            )
        } as usize;
        mbufs.drain(..done).for_each(std::mem::forget);
        done
    }

    /// Dequeues into the spare capacity of `out`. The caller is the only
    /// consumer.
    fn dequeue_burst(&self, out: &mut Vec<Mbuf<'_>>) -> usize {
        let len = out.len();
        let room = u32::try_from(out.capacity() - len).unwrap_or(u32::MAX);
        if room == 0 {
            return 0;
        }
        // SAFETY: the caller is the only consumer (single-consumer ring);
        // the spare capacity holds `room` pointer-sized slots (Mbuf is
        // repr(transparent)). The ring only ever holds owned mbufs enqueued
        // by a Ring<'p>/RingProducer<'p>, so the n written pointers are valid,
        // exclusively owned buffers whose pool lives for 'p.
        unsafe {
            let slots = out.as_mut_ptr().add(len).cast::<*mut std::ffi::c_void>();
            let n = sys::shim_rte_ring_dequeue_burst(
                self.raw.as_ptr(),
                slots,
                room,
                std::ptr::null_mut(),
            ) as usize;
            out.set_len(len + n);
            n
        }
    }
}

impl Drop for RingInner {
    fn drop(&mut self) {
        // Free the buffers still queued. Both halves are gone, so this is
        // the only consumer; their pools outlive every handle ('p).
        let mut slot: [*mut std::ffi::c_void; 32] = [std::ptr::null_mut(); 32];
        loop {
            // SAFETY: only consumer (see above); slot has room for 32.
            let n = unsafe {
                sys::shim_rte_ring_dequeue_burst(
                    self.raw.as_ptr(),
                    slot.as_mut_ptr(),
                    32,
                    std::ptr::null_mut(),
                )
            } as usize;
            if n == 0 {
                break;
            }
            for &m in &slot[..n] {
                // SAFETY: every pointer in the ring is an owned, valid mbuf
                // (see dequeue_burst), freed exactly once here.
                unsafe { sys::shim_rte_pktmbuf_free(m.cast()) }
            }
        }
        // SAFETY: the ring is live, empty, and no handle refers to it.
        unsafe { sys::rte_ring_free(self.raw.as_ptr()) }
    }
}

/// Holds `Mbuf<'p>`s and is invariant in `'p`: a half must not be coerced
/// to a shorter pool lifetime than the other half.
type Invariant<'p> = PhantomData<fn(Mbuf<'p>) -> Mbuf<'p>>;

/// A named SP/SC ring of buffers from pools that live for `'p`.
#[derive(Debug)]
pub struct Ring<'p> {
    inner: Arc<RingInner>,
    _mbufs: Invariant<'p>,
}

impl<'p> Ring<'p> {
    /// Creates a ring holding up to `capacity` buffers (any count, not only
    /// powers of two) on NUMA `socket` (`None`: any socket). `name` must be
    /// unique and shorter than 29 bytes.
    pub fn new(name: &str, capacity: u32, socket: Option<u32>) -> Result<Ring<'p>, DpdkError> {
        let call = || format!("rte_ring_create(\"{name}\", {capacity})");
        let eal = Eal::current("Ring::new")?;
        let c_name = CString::new(name).map_err(|_| DpdkError::InvalidArgument {
            call: call(),
            reason: "the ring name contains a NUL byte".to_owned(),
        })?;
        let socket = socket
            .and_then(|s| i32::try_from(s).ok())
            .unwrap_or(sys::SOCKET_ID_ANY);
        let flags = sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ | sys::RING_F_EXACT_SZ;
        // SAFETY: the EAL is alive (eal); c_name is a valid C string DPDK
        // copies; DPDK validates the count and returns NULL with rte_errno
        // on error.
        let raw = unsafe { sys::rte_ring_create(c_name.as_ptr(), capacity, socket, flags) };
        let raw = NonNull::new(raw).ok_or_else(|| DpdkError::from_rte_errno(call()))?;
        Ok(Ring {
            inner: Arc::new(RingInner {
                raw,
                name: name.to_owned(),
                capacity,
                _eal: eal,
            }),
            _mbufs: PhantomData,
        })
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// How many buffers the ring can hold.
    pub fn capacity(&self) -> usize {
        self.inner.capacity as usize
    }

    /// Buffers currently queued.
    pub fn count(&self) -> usize {
        self.inner.count()
    }

    /// Enqueues as many of `mbufs` as fit, in order; the enqueued ones (a
    /// prefix) are removed from the Vec, the rest stay. Returns how many
    /// were enqueued.
    pub fn enqueue_burst<'m: 'p>(&mut self, mbufs: &mut Vec<Mbuf<'m>>) -> usize {
        self.inner.enqueue_burst(mbufs)
    }

    /// Dequeues up to the spare capacity of `out`, appending in FIFO order.
    /// Returns how many were dequeued.
    pub fn dequeue_burst(&mut self, out: &mut Vec<Mbuf<'p>>) -> usize {
        self.inner.dequeue_burst(out)
    }

    /// Splits into the producer and consumer halves (e.g. for two workers).
    pub fn split(self) -> (RingProducer<'p>, RingConsumer<'p>) {
        (
            RingProducer {
                inner: Arc::clone(&self.inner),
                _mbufs: PhantomData,
            },
            RingConsumer {
                inner: self.inner,
                _mbufs: PhantomData,
            },
        )
    }
}

/// The enqueue side of a split [`Ring`].
#[derive(Debug)]
pub struct RingProducer<'p> {
    inner: Arc<RingInner>,
    _mbufs: Invariant<'p>,
}

impl<'p> RingProducer<'p> {
    /// As [`Ring::enqueue_burst`].
    pub fn enqueue_burst<'m: 'p>(&mut self, mbufs: &mut Vec<Mbuf<'m>>) -> usize {
        self.inner.enqueue_burst(mbufs)
    }

    /// Buffers currently queued.
    pub fn count(&self) -> usize {
        self.inner.count()
    }
}

/// The dequeue side of a split [`Ring`].
#[derive(Debug)]
pub struct RingConsumer<'p> {
    inner: Arc<RingInner>,
    _mbufs: Invariant<'p>,
}

impl<'p> RingConsumer<'p> {
    /// As [`Ring::dequeue_burst`].
    pub fn dequeue_burst(&mut self, out: &mut Vec<Mbuf<'p>>) -> usize {
        self.inner.dequeue_burst(out)
    }

    /// Buffers currently queued.
    pub fn count(&self) -> usize {
        self.inner.count()
    }
}
