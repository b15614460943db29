//! The portable backend: AF_PACKET on the NIC (the wire port) and a Linux
//! TAP interface toward the local kernel (the kernel port), no DPDK. For
//! development machines and the lab without DPDK. Owns the two sockets and
//! their buffers; makes no per-packet decision.
//!
//! **Wire port, [`WireMode::Batched`] (the default):** one `recvmmsg` per
//! receive burst (up to [`BATCH`] frames per call, non-blocking) and
//! one `sendmmsg` per transmit burst, on a raw AF_PACKET socket (`ETH_P_ALL`,
//! bound to the interface, promiscuous). Frames are received into slots
//! allocated once ([`BATCH`] × 64 KiB of address space, resident only
//! as far as frames reach) and copied into [`HeapFrame`]s, which the
//! [`PacketIo`] contract hands out; transmitted frames go out from their own
//! buffers, no copy. **[`WireMode::PerFrame`]:** the backend as it was
//! before batching, kept to measure against (`perf/portable/run.sh`): pnet's
//! channel on the same socket, `poll` + `recvfrom` per received frame and
//! `poll` + `sendto` per sent frame.
//!
//! **Kernel port (TAP), both modes:** one `read` per received frame (until
//! the burst is full or `EAGAIN`) and one `write` per sent frame. A TAP
//! descriptor hands over exactly one frame per `read`/`write` (`readv` and
//! `writev` gather one frame); nothing batches several frames into one
//! syscall without `unsafe` here. What could: `IFF_VNET_HDR` with
//! `TUNSETOFFLOAD` (the kernel then reads and writes 64 KiB GSO super-frames,
//! one syscall per ~44 TCP segments, but the pipeline would have to handle
//! super-frames and the virtio-net header, and the wire socket
//! `PACKET_VNET_HDR`); `io_uring` (one submission for many reads; its Rust
//! API is `unsafe`). `IFF_NAPI` only batches the kernel's own processing of
//! written frames (GRO), not syscalls.
//!
//! **Why not `PACKET_MMAP` (`TPACKET_V3`):** it saves the copy out of the
//! kernel as well, but reading the shared ring means raw pointers into an
//! `mmap`, which this crate does not write (`#![deny(unsafe_code)]`); the
//! crates that wrap it were not fit to depend on (`af_packet`: GPL-3.0 and
//! unmaintained; `netring`: young, one maintainer). `recvmmsg`/`sendmmsg`
//! remove the per-frame syscall, which is most of the cost.
//!
//! **Counters:** [`PortableIo::wire`] and [`PortableIo::kernel`] count the
//! syscalls each port made and the frames they moved, so frames per syscall
//! can be exported; an `EAGAIN` that found nothing counts as a syscall.
//!
//! **Figures** (`perf/portable/run.sh`; `perf/README.md`, "Portable
//! backend"): on a veth, 60-byte frames, bursts of 32, 2 vCPU AMD EPYC
//! shared with builds, per CPU-second: wire rx 0.54 -> 0.90 Mpps (1.65x),
//! wire tx 0.27 -> 0.50 Mpps (1.85x), frames per syscall 0.5 -> 32; the TAP
//! unchanged (0.8 Mpps rx, 0.7 tx, one frame per syscall). What remains is
//! mostly the kernel's per-frame work (an skb, its delivery and copy).
//!
//! `HeapFrame` allocates one buffer per received frame (the trait hands
//! frames out by value). Sent frames could be kept and refilled for the next
//! receive burst (the wire's frames mostly leave on the kernel port and vice
//! versa, within this backend), which needs a refill method on `HeapFrame`.
//!
//! The TAP is created by this process and disappears with it.

mod mmsg;

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender};
use tun_tap::{Iface, Mode};

use super::memory::HeapFrame;
use super::{Frame, PacketIo, PortId};
use crate::pipeline::{KERNEL, WIRE};

pub use mmsg::BATCH;

/// Largest frame read from either side.
const MAX_FRAME: usize = 65_536;

/// Why the portable backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum PortableError {
    /// The wire interface does not exist.
    #[error("wire interface '{0}' not found (ip link show)")]
    NoSuchInterface(String),
    /// AF_PACKET could not be opened (needs `CAP_NET_RAW`).
    #[error("cannot open AF_PACKET on '{iface}': {source}")]
    Packet {
        /// Interface.
        iface: String,
        /// The error.
        source: io::Error,
    },
    /// The TAP could not be created (needs `CAP_NET_ADMIN` and `/dev/net/tun`).
    #[error("cannot create TAP interface '{iface}': {source}")]
    Tap {
        /// Interface.
        iface: String,
        /// The error.
        source: io::Error,
    },
}

/// How the wire port moves frames through the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WireMode {
    /// One `recvmmsg` per receive burst, one `sendmmsg` per transmit burst
    /// (at most [`BATCH`] frames per call).
    #[default]
    Batched,
    /// The backend before batching, kept to measure against: `poll` +
    /// `recvfrom` per received frame, `poll` + `sendto` per sent frame.
    PerFrame,
}

/// Options of [`PortableIo::open_with`]; the default is what
/// [`PortableIo::open`] uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortableOptions {
    /// How the wire port moves frames.
    pub wire_mode: WireMode,
    /// Receive buffer of the wire socket in bytes (`SO_RCVBUFFORCE`, or
    /// `SO_RCVBUF` capped by `net.core.rmem_max` without `CAP_NET_ADMIN`).
    /// `None`: the kernel's default (`net.core.rmem_default`, 208 KiB: a few
    /// hundred short frames).
    pub wire_rx_buffer: Option<usize>,
}

/// Syscalls one port made and frames it moved, to read frames per syscall.
/// Every syscall counts, also one that found nothing to receive (`EAGAIN`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortSyscalls {
    /// Syscalls made to receive (`recvmmsg`; `poll` and `recvfrom` in
    /// [`WireMode::PerFrame`]; `read` on the TAP).
    pub rx_syscalls: u64,
    /// Frames received (handed to the caller).
    pub rx_frames: u64,
    /// Syscalls made to transmit (`sendmmsg`; `poll` and `sendto` in
    /// [`WireMode::PerFrame`]; `write` on the TAP).
    pub tx_syscalls: u64,
    /// Frames transmitted.
    pub tx_frames: u64,
}

impl PortSyscalls {
    /// Frames received per receive syscall (0 before the first).
    pub fn rx_frames_per_syscall(&self) -> f64 {
        ratio(self.rx_frames, self.rx_syscalls)
    }

    /// Frames transmitted per transmit syscall (0 before the first).
    pub fn tx_frames_per_syscall(&self) -> f64 {
        ratio(self.tx_frames, self.tx_syscalls)
    }
}

fn ratio(frames: u64, syscalls: u64) -> f64 {
    if syscalls == 0 {
        0.0
    } else {
        frames as f64 / syscalls as f64
    }
}

/// AF_PACKET + TAP ports.
pub struct PortableIo {
    wire_tx: Box<dyn DataLinkSender>,
    wire_rx: Box<dyn DataLinkReceiver>,
    /// The wire socket. Owned (closed) by `wire_tx` and `wire_rx`, which
    /// live as long as `self`; used directly for `recvmmsg`/`sendmmsg`.
    wire_fd: RawFd,
    wire_mode: WireMode,
    /// Receive slots of the batched wire port (`None` in per-frame mode).
    rx_slots: Option<mmsg::RxSlots>,
    tap: Iface,
    buf: Vec<u8>,
    /// Wire port syscalls and frames.
    pub wire: PortSyscalls,
    /// Kernel port (TAP) syscalls and frames.
    pub kernel: PortSyscalls,
    /// Frames the sockets refused (counted by the worker as tx-queue-full).
    pub send_errors: u64,
    /// Receive calls that failed otherwise than with nothing pending (e.g.
    /// the interface went down).
    pub rx_errors: u64,
    /// Wire frames longer than a receive slot (64 KiB), dropped.
    pub rx_truncated: u64,
}

impl core::fmt::Debug for PortableIo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "PortableIo(tap {}, wire {:?})",
            self.tap.name(),
            self.wire_mode
        )
    }
}

impl PortableIo {
    /// Opens AF_PACKET on `wire` (promiscuous, batched) and creates the TAP `tap`.
    pub fn open(wire: &str, tap: &str) -> Result<Self, PortableError> {
        Self::open_with(wire, tap, PortableOptions::default())
    }

    /// [`PortableIo::open`] with options (the per-frame wire port of the
    /// benchmark, a larger receive buffer).
    pub fn open_with(wire: &str, tap: &str, opts: PortableOptions) -> Result<Self, PortableError> {
        let packet_err = |source: io::Error| PortableError::Packet {
            iface: wire.to_owned(),
            source,
        };
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == wire)
            .ok_or_else(|| PortableError::NoSuchInterface(wire.to_owned()))?;
        // Our socket, handed to pnet, which binds it to the interface, makes
        // it promiscuous and non-blocking, and owns it from here on (closes
        // it on error too).
        let wire_fd = mmsg::open_socket(opts.wire_rx_buffer).map_err(|e| packet_err(e.into()))?;
        let config = pnet_datalink::Config {
            read_buffer_size: MAX_FRAME,
            write_buffer_size: MAX_FRAME,
            read_timeout: Some(Duration::ZERO),
            promiscuous: true,
            socket_fd: Some(wire_fd),
            ..pnet_datalink::Config::default()
        };
        let (wire_tx, wire_rx) = match pnet_datalink::channel(&iface, config) {
            Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
            Ok(_) => return Err(packet_err(io::Error::other("not an Ethernet channel"))),
            Err(source) => return Err(packet_err(source)),
        };
        let tap_err = |source: io::Error| PortableError::Tap {
            iface: tap.to_owned(),
            source,
        };
        let tap_iface = Iface::without_packet_info(tap, Mode::Tap).map_err(tap_err)?;
        tap_iface.set_non_blocking().map_err(tap_err)?;
        Ok(PortableIo {
            wire_tx,
            wire_rx,
            wire_fd,
            wire_mode: opts.wire_mode,
            rx_slots: (opts.wire_mode == WireMode::Batched).then(mmsg::RxSlots::new),
            tap: tap_iface,
            buf: vec![0; MAX_FRAME],
            wire: PortSyscalls::default(),
            kernel: PortSyscalls::default(),
            send_errors: 0,
            rx_errors: 0,
            rx_truncated: 0,
        })
    }

    /// How the wire port moves frames.
    pub fn wire_mode(&self) -> WireMode {
        self.wire_mode
    }

    /// Batched wire receive: `recvmmsg` until `max` frames or a call that
    /// did not fill its slots (nothing more pending).
    fn wire_rx_batched(&mut self, out: &mut Vec<HeapFrame>, max: usize) -> usize {
        let Some(slots) = self.rx_slots.as_mut() else {
            return 0;
        };
        let mut n = 0;
        while n < max {
            let want = (max - n).min(BATCH);
            self.wire.rx_syscalls += 1;
            let filled = match slots.recv(self.wire_fd, want) {
                Ok(filled) => filled,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(_) => {
                    self.rx_errors += 1;
                    break;
                }
            };
            for i in 0..filled {
                match slots.frame(i) {
                    Some(bytes) => {
                        out.push(HeapFrame::from_bytes(bytes));
                        n += 1;
                    }
                    None => self.rx_truncated += 1,
                }
            }
            if filled < want {
                break;
            }
        }
        self.wire.rx_frames += n as u64;
        n
    }

    /// Per-frame wire receive (pnet: `poll` then `recvfrom`, 2 syscalls a
    /// frame, 1 for the `poll` that finds nothing).
    fn wire_rx_per_frame(&mut self, out: &mut Vec<HeapFrame>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            match self.wire_rx.next() {
                Ok(bytes) => {
                    out.push(HeapFrame::from_bytes(bytes));
                    self.wire.rx_syscalls += 2;
                    n += 1;
                }
                Err(e) => {
                    // Timed out: the poll found nothing pending.
                    if e.kind() == io::ErrorKind::TimedOut {
                        self.wire.rx_syscalls += 1;
                    } else {
                        self.wire.rx_syscalls += 2;
                        self.rx_errors += 1;
                    }
                    break;
                }
            }
        }
        self.wire.rx_frames += n as u64;
        n
    }

    /// TAP receive: one `read` per frame until `max` or `EAGAIN`.
    fn tap_rx(&mut self, out: &mut Vec<HeapFrame>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            self.kernel.rx_syscalls += 1;
            match self.tap.recv(&mut self.buf) {
                Ok(len) => out.push(HeapFrame::from_bytes(&self.buf[..len])),
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        self.rx_errors += 1;
                    }
                    break;
                }
            }
            n += 1;
        }
        self.kernel.rx_frames += n as u64;
        n
    }

    /// Batched wire transmit: `sendmmsg` of up to [`BATCH`] frames per call
    /// until all are sent or the kernel takes fewer than offered.
    fn wire_tx_batched(&mut self, frames: &[HeapFrame]) -> usize {
        let mut sent = 0;
        while sent < frames.len() {
            let offered = (frames.len() - sent).min(BATCH);
            self.wire.tx_syscalls += 1;
            let Ok(n) = mmsg::send(self.wire_fd, &frames[sent..]) else {
                self.send_errors += 1;
                break;
            };
            sent += n;
            if n < offered {
                self.send_errors += 1;
                break;
            }
        }
        sent
    }

    /// Per-frame wire transmit (pnet: `poll` then `sendto` per frame).
    fn wire_tx_per_frame(&mut self, frames: &[HeapFrame]) -> usize {
        let mut sent = 0;
        for f in frames {
            self.wire.tx_syscalls += 2;
            if !matches!(self.wire_tx.send_to(f.bytes(), None), Some(Ok(()))) {
                self.send_errors += 1;
                break;
            }
            sent += 1;
        }
        sent
    }

    /// TAP transmit: one `write` per frame.
    fn tap_tx(&mut self, frames: &[HeapFrame]) -> usize {
        let mut sent = 0;
        for f in frames {
            self.kernel.tx_syscalls += 1;
            if self.tap.send(f.bytes()).is_err() {
                self.send_errors += 1;
                break;
            }
            sent += 1;
        }
        sent
    }
}

impl PacketIo for PortableIo {
    type Frame = HeapFrame;

    fn rx_burst(&mut self, port: PortId, out: &mut Vec<HeapFrame>, max: usize) -> usize {
        match (port == WIRE, self.wire_mode) {
            (true, WireMode::Batched) => self.wire_rx_batched(out, max),
            (true, WireMode::PerFrame) => self.wire_rx_per_frame(out, max),
            (false, _) => self.tap_rx(out, max),
        }
    }

    fn frame_from(&mut self, bytes: &[u8]) -> Option<HeapFrame> {
        Some(HeapFrame::from_bytes(bytes))
    }

    fn tx_burst(&mut self, port: PortId, frames: &mut Vec<HeapFrame>) -> usize {
        let sent = match (port == KERNEL, self.wire_mode) {
            (true, _) => self.tap_tx(frames),
            (false, WireMode::Batched) => self.wire_tx_batched(frames),
            (false, WireMode::PerFrame) => self.wire_tx_per_frame(frames),
        };
        let counters = if port == KERNEL {
            &mut self.kernel
        } else {
            &mut self.wire
        };
        counters.tx_frames += sent as u64;
        frames.drain(..sent);
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_per_syscall_is_frames_over_syscalls() {
        let c = PortSyscalls {
            rx_syscalls: 3,
            rx_frames: 96,
            tx_syscalls: 0,
            tx_frames: 0,
        };
        assert!((c.rx_frames_per_syscall() - 32.0).abs() < f64::EPSILON);
        assert!(c.tx_frames_per_syscall().abs() < f64::EPSILON);
    }

    #[test]
    fn portable_io_can_move_to_its_worker_thread() {
        fn send<T: Send>() -> usize {
            core::mem::size_of::<T>()
        }
        assert!(send::<PortableIo>() > 0);
    }
}
