//! The portable backend: AF_PACKET on the NIC (the wire port) and a Linux
//! TAP interface toward the local kernel (the kernel port), no DPDK. For
//! development machines and the lab without DPDK.
//!
//! Both sides are non-blocking sockets read one frame per syscall (pnet's
//! AF_PACKET channel, `tun-tap`'s TAP); frames are copied into heap frames.
//! This is simple and slow (well under 1 Mpps); production runs the DPDK
//! backend. The TAP is created by this process and disappears with it.

use std::io;
use std::time::Duration;

use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender};
use tun_tap::{Iface, Mode};

use super::memory::HeapFrame;
use super::{Frame, PacketIo, PortId};
use crate::pipeline::{KERNEL, WIRE};

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

/// AF_PACKET + TAP ports.
pub struct PortableIo {
    wire_tx: Box<dyn DataLinkSender>,
    wire_rx: Box<dyn DataLinkReceiver>,
    tap: Iface,
    buf: Vec<u8>,
    /// Frames the sockets refused (counted by the worker as tx-queue-full).
    pub send_errors: u64,
}

impl core::fmt::Debug for PortableIo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PortableIo(tap {})", self.tap.name())
    }
}

impl PortableIo {
    /// Opens AF_PACKET on `wire` (promiscuous) and creates the TAP `tap`.
    pub fn open(wire: &str, tap: &str) -> Result<Self, PortableError> {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == wire)
            .ok_or_else(|| PortableError::NoSuchInterface(wire.to_owned()))?;
        let config = pnet_datalink::Config {
            read_buffer_size: MAX_FRAME,
            write_buffer_size: MAX_FRAME,
            read_timeout: Some(Duration::ZERO),
            promiscuous: true,
            ..pnet_datalink::Config::default()
        };
        let (wire_tx, wire_rx) = match pnet_datalink::channel(&iface, config) {
            Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
            Ok(_) => {
                return Err(PortableError::Packet {
                    iface: wire.to_owned(),
                    source: io::Error::other("not an Ethernet channel"),
                })
            }
            Err(source) => {
                return Err(PortableError::Packet {
                    iface: wire.to_owned(),
                    source,
                })
            }
        };
        let tap_iface =
            Iface::without_packet_info(tap, Mode::Tap).map_err(|source| PortableError::Tap {
                iface: tap.to_owned(),
                source,
            })?;
        tap_iface
            .set_non_blocking()
            .map_err(|source| PortableError::Tap {
                iface: tap.to_owned(),
                source,
            })?;
        Ok(PortableIo {
            wire_tx,
            wire_rx,
            tap: tap_iface,
            buf: vec![0; MAX_FRAME],
            send_errors: 0,
        })
    }
}

impl PacketIo for PortableIo {
    type Frame = HeapFrame;

    fn rx_burst(&mut self, port: PortId, out: &mut Vec<HeapFrame>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let frame = if port == WIRE {
                match self.wire_rx.next() {
                    Ok(bytes) => HeapFrame::from_bytes(bytes),
                    Err(_) => break, // timed out: nothing pending
                }
            } else {
                match self.tap.recv(&mut self.buf) {
                    Ok(len) => HeapFrame::from_bytes(&self.buf[..len]),
                    Err(_) => break, // WouldBlock
                }
            };
            out.push(frame);
            n += 1;
        }
        n
    }

    fn frame_from(&mut self, bytes: &[u8]) -> Option<HeapFrame> {
        Some(HeapFrame::from_bytes(bytes))
    }

    fn tx_burst(&mut self, port: PortId, frames: &mut Vec<HeapFrame>) -> usize {
        let mut sent = 0;
        for f in frames.iter() {
            let ok = if port == KERNEL {
                self.tap.send(f.bytes()).is_ok()
            } else {
                matches!(self.wire_tx.send_to(f.bytes(), None), Some(Ok(())))
            };
            if !ok {
                self.send_errors += 1;
                break;
            }
            sent += 1;
        }
        frames.drain(..sent);
        sent
    }
}
