//! The in-memory backend: per-port queues of heap frames. Used by tests and
//! by `shoal-dataplane replay`; behaves like a port that never drops unless a
//! transmit limit is set.

use std::collections::VecDeque;

use super::{Frame, PacketIo, PortId};

/// Headroom kept in front of every heap frame (room for an outer IPv4 header
/// plus a VLAN tag, like a DPDK mbuf's 128-byte headroom).
pub const HEADROOM: usize = 128;

/// A frame in a `Vec` with headroom.
#[derive(Clone, PartialEq, Eq)]
pub struct HeapFrame {
    buf: Vec<u8>,
    start: usize,
}

impl HeapFrame {
    /// A frame holding a copy of `bytes`, with [`HEADROOM`] bytes of headroom.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut buf = vec![0; HEADROOM + bytes.len()];
        buf[HEADROOM..].copy_from_slice(bytes);
        HeapFrame {
            buf,
            start: HEADROOM,
        }
    }
}

impl core::fmt::Debug for HeapFrame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "HeapFrame({} bytes)", self.len())
    }
}

impl Frame for HeapFrame {
    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }

    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }

    fn adj(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.start += n;
        true
    }

    fn truncate(&mut self, len: usize) -> bool {
        if len > self.len() {
            return false;
        }
        self.buf.truncate(self.start + len);
        true
    }
}

/// In-memory ports: frames pushed with [`MemoryIo::inject`] are received;
/// transmitted frames are collected and taken with [`MemoryIo::take_tx`].
#[derive(Debug)]
pub struct MemoryIo {
    rx: Vec<VecDeque<HeapFrame>>,
    tx: Vec<Vec<HeapFrame>>,
    tx_limit: Option<usize>,
    /// Buffers left for frames the pipeline originates (`None`: unlimited).
    buffers: Option<usize>,
}

impl MemoryIo {
    /// `ports` empty ports.
    pub fn new(ports: usize) -> Self {
        MemoryIo {
            rx: (0..ports).map(|_| VecDeque::new()).collect(),
            tx: (0..ports).map(|_| Vec::new()).collect(),
            tx_limit: None,
            buffers: None,
        }
    }

    /// Caps how many frames [`PacketIo::frame_from`] may still build (simulates
    /// an empty mempool once used up). `None` = unlimited.
    pub fn set_buffer_limit(&mut self, limit: Option<usize>) {
        self.buffers = limit;
    }

    /// Caps how many frames one `tx_burst` call accepts (simulates a full
    /// transmit queue). `None` = unlimited.
    pub fn set_tx_limit(&mut self, limit: Option<usize>) {
        self.tx_limit = limit;
    }

    /// Queues a frame to be received on `port`.
    pub fn inject(&mut self, port: PortId, bytes: &[u8]) {
        self.rx[port].push_back(HeapFrame::from_bytes(bytes));
    }

    /// Frames still waiting to be received on `port`.
    pub fn pending_rx(&self, port: PortId) -> usize {
        self.rx[port].len()
    }

    /// Takes every frame transmitted on `port` so far, oldest first.
    pub fn take_tx(&mut self, port: PortId) -> Vec<HeapFrame> {
        std::mem::take(&mut self.tx[port])
    }
}

impl PacketIo for MemoryIo {
    type Frame = HeapFrame;

    fn rx_burst(&mut self, port: PortId, out: &mut Vec<HeapFrame>, max: usize) -> usize {
        let queue = &mut self.rx[port];
        let n = max.min(queue.len());
        out.extend(queue.drain(..n));
        n
    }

    fn frame_from(&mut self, bytes: &[u8]) -> Option<HeapFrame> {
        if let Some(left) = self.buffers.as_mut() {
            *left = left.checked_sub(1)?;
        }
        Some(HeapFrame::from_bytes(bytes))
    }

    fn tx_burst(&mut self, port: PortId, frames: &mut Vec<HeapFrame>) -> usize {
        let n = self.tx_limit.map_or(frames.len(), |l| l.min(frames.len()));
        self.tx[port].extend(frames.drain(..n));
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_frame_headroom_and_trim() {
        let mut f = HeapFrame::from_bytes(&[1, 2, 3, 4]);
        assert!(f.prepend(2));
        f.bytes_mut()[..2].copy_from_slice(&[9, 8]);
        assert_eq!(f.bytes(), &[9, 8, 1, 2, 3, 4]);
        assert!(!f.prepend(HEADROOM));
        assert!(f.adj(3));
        assert_eq!(f.bytes(), &[2, 3, 4]);
        assert!(f.truncate(1));
        assert_eq!(f.bytes(), &[2]);
        assert!(!f.truncate(2));
        assert!(!f.adj(2));
        assert_eq!(f.bytes(), &[2]);
    }

    #[test]
    fn memory_io_bursts_and_tx_limit() {
        let mut io = MemoryIo::new(2);
        for i in 0..5u8 {
            io.inject(0, &[i]);
        }
        let mut got = Vec::new();
        assert_eq!(io.rx_burst(0, &mut got, 3), 3);
        assert_eq!(io.pending_rx(0), 2);
        assert_eq!(
            got.iter().map(|f| f.bytes()[0]).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        io.set_tx_limit(Some(2));
        assert_eq!(io.tx_burst(1, &mut got), 2);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].bytes(), &[2]);
        let sent = io.take_tx(1);
        assert_eq!(
            sent.iter().map(|f| f.bytes()[0]).collect::<Vec<_>>(),
            [0, 1]
        );
        assert!(io.take_tx(1).is_empty());
    }
}
