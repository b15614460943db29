//! Packet I/O: the [`PacketIo`] trait every backend implements and the
//! [`Frame`] trait every packet buffer implements.
//!
//! The pipeline only sees frames as byte slices it may grow at the front
//! (encapsulation) or shrink (decapsulation); it never knows whether the
//! bytes live in a DPDK mbuf, an AF_PACKET ring slot or a `Vec`. Backends own
//! queues and buffers and must not make per-packet decisions.

#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod memory;
pub mod portable;

/// Index of a port in the worker's port list (see [`PortRole`](shoal_config::PortRole)).
pub type PortId = usize;

/// A packet buffer: contiguous frame bytes with headroom in front.
pub trait Frame {
    /// The frame's bytes, starting at the Ethernet header.
    fn bytes(&self) -> &[u8];
    /// The frame's bytes, mutable.
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Grows the frame by `n` bytes at the front (into the headroom).
    /// Returns false, changing nothing, when the headroom is too small.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front. False, changing nothing, if `n` exceeds the length.
    fn adj(&mut self, n: usize) -> bool;
    /// Shortens the frame to `len` bytes. False, changing nothing, if `len` exceeds the length.
    fn truncate(&mut self, len: usize) -> bool;
    /// Frame length in bytes.
    fn len(&self) -> usize {
        self.bytes().len()
    }
    /// True if the frame holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A packet I/O backend: bursts of frames in and out of numbered ports.
///
/// One instance belongs to one worker (one core); nothing here is shared.
pub trait PacketIo {
    /// The backend's frame type.
    type Frame: Frame;

    /// Receives up to `max` frames from `port`, appending them to `out`.
    /// Returns how many were received. Must not block.
    fn rx_burst(&mut self, port: PortId, out: &mut Vec<Self::Frame>, max: usize) -> usize;

    /// A new frame holding a copy of `bytes` (for frames the pipeline
    /// originates: handshake replies, replayed segments). `None` when the
    /// backend is out of buffers; the caller counts it.
    fn frame_from(&mut self, bytes: &[u8]) -> Option<Self::Frame>;

    /// Transmits frames from the front of `frames` on `port`. Sent frames are
    /// removed from the vector; frames the port could not take stay in it,
    /// in order, for the caller to retry or drop. Returns how many were sent.
    fn tx_burst(&mut self, port: PortId, frames: &mut Vec<Self::Frame>) -> usize;
}
