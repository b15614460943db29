//! The DPDK backend: DPDK ports (PCI devices or vdevs such as
//! `net_af_packet`, `net_tap`, `net_ring`) with mbufs processed in place.
//! One rx/tx queue pair per port per worker (queue *i* for worker *i*);
//! nothing allocated per packet.

use dpdk_bindings::{Mbuf, Mempool, PortQueue};

use super::{Frame, PacketIo, PortId};
use crate::pipeline::WIRE;

impl Frame for Mbuf<'_> {
    fn bytes(&self) -> &[u8] {
        self.data()
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self.data_mut()
    }

    fn prepend(&mut self, n: usize) -> bool {
        Mbuf::prepend(self, n).is_some()
    }

    fn adj(&mut self, n: usize) -> bool {
        Mbuf::adj(self, n)
    }

    fn truncate(&mut self, len: usize) -> bool {
        let cur = Mbuf::len(self);
        len <= cur && self.trim(cur - len)
    }

    fn len(&self) -> usize {
        Mbuf::len(self)
    }
}

/// One worker's queues: queue *i* of the wire port and of the kernel port
/// (the worker's index), and the pool for frames it originates.
pub struct DpdkIo<'a, 'p> {
    wire: PortQueue<'a, 'p>,
    kernel: PortQueue<'a, 'p>,
    pool: &'p Mempool,
}

impl core::fmt::Debug for DpdkIo<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "DpdkIo(wire {} queue {}, kernel {} queue {})",
            self.wire.port_id(),
            self.wire.index(),
            self.kernel.port_id(),
            self.kernel.index()
        )
    }
}

impl<'a, 'p> DpdkIo<'a, 'p> {
    /// A worker's queues of ports already configured and started; `pool`
    /// for frames the pipeline originates.
    pub fn new(wire: PortQueue<'a, 'p>, kernel: PortQueue<'a, 'p>, pool: &'p Mempool) -> Self {
        DpdkIo { wire, kernel, pool }
    }
}

impl<'p> PacketIo for DpdkIo<'_, 'p> {
    type Frame = Mbuf<'p>;

    fn rx_burst(&mut self, port: PortId, out: &mut Vec<Mbuf<'p>>, max: usize) -> usize {
        // The bindings fill the vector's spare capacity: the worker's rx
        // vector is created with capacity = burst, so that is `max`.
        debug_assert!(out.capacity() - out.len() <= max.max(1) * 2);
        if port == WIRE {
            self.wire.rx_burst(out)
        } else {
            self.kernel.rx_burst(out)
        }
    }

    fn frame_from(&mut self, bytes: &[u8]) -> Option<Mbuf<'p>> {
        let mut m = self.pool.alloc()?;
        m.append(bytes.len())?.copy_from_slice(bytes);
        Some(m)
    }

    fn tx_burst(&mut self, port: PortId, frames: &mut Vec<Mbuf<'p>>) -> usize {
        if port == WIRE {
            self.wire.tx_burst(frames)
        } else {
            self.kernel.tx_burst(frames)
        }
    }
}
