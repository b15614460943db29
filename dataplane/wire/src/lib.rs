//! Zero-copy views and parsed representations of the packet formats Shoal
//! handles: Ethernet (with up to two VLAN tags), ARP, IPv4, ICMP, UDP, TCP,
//! IP-in-IP and the routed mode's GUE, plus the Internet checksum (full and
//! RFC 1624 incremental).
//!
//! The style follows smoltcp:
//!
//! - A *view* (`EthernetFrame<T>`, `Ipv4Packet<T>`, `TcpPacket<T>`, ...) wraps a
//!   byte buffer. Getters need `T: AsRef<[u8]>`, setters `T: AsMut<[u8]>`.
//!   `new_unchecked` wraps without looking; `new_checked` validates every length
//!   the getters rely on exactly once, so that afterwards no getter panics.
//!   Field offsets are named constants in each module's `field` module.
//! - A *repr* (`Ipv4Repr`, `TcpRepr`, ...) is owned plain data with
//!   `parse(&view) -> Result<Repr>`, `header_len()`/`buffer_len()` and
//!   `emit(&self, &mut view, ...)`.
//!
//! This crate owns the byte layout of packets and nothing else: it never
//! allocates, never reads a clock, keeps no state and decides nothing about
//! what to do with a packet (that is the dataplane's job). Reprs do not verify
//! checksums when parsing; call the view's `verify_checksum` where it matters.
//! Only `core` is used apart from the `std::error::Error` impl.
//!
//! [`time`] is the one module that is not a packet format: the monotonic
//! [`time::Instant`] every piece of packet logic takes as a parameter (as
//! smoltcp keeps `smoltcp::time` beside its wire formats), so the
//! selection, L7 and dataplane crates share one notion of time without
//! depending on each other.

#![forbid(unsafe_code)]

use core::fmt;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod gue;
pub mod icmpv4;
pub mod ipip;
pub mod ipv4;
pub mod tcp;
pub mod time;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use icmpv4::{
    Icmpv4DstUnreachable, Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded,
};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use tcp::{SeqNumber, TcpFlags, TcpOption, TcpOptionBytes, TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};

/// Why a buffer could not be read as the packet format asked for.
///
/// Every variant is a reason to drop the packet; [`Error::as_str`] gives the
/// name the dataplane uses as its drop-counter label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before a header (or a field the header announces) does.
    Truncated,
    /// The IP version field is not 4.
    BadVersion,
    /// The IPv4 header length (IHL) is below 5 words or beyond the total length.
    BadHeaderLength,
    /// The IPv4 total length is below the header length or beyond the buffer.
    BadTotalLength,
    /// The TCP data offset is below 5 words or beyond the segment.
    BadDataOffset,
    /// A TCP or IPv4 option has length 0 or 1, runs past the header, or a
    /// fixed-length option (MSS, window scale, SACK-permitted, timestamps, SACK)
    /// has the wrong length.
    BadOption,
    /// A checksum does not verify.
    BadChecksum,
    /// Well-formed but not handled: ARP for anything but Ethernet/IPv4, an ICMP
    /// message without a repr, IP-in-IP with a non-IPIP or fragmented outer header.
    Unsupported,
    /// A length field (UDP length, ...) is below its minimum or beyond the buffer.
    BadLength,
}

impl Error {
    /// Snake-case name of the error, stable, used as a drop-counter label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::BadVersion => "bad_version",
            Error::BadHeaderLength => "bad_ihl",
            Error::BadTotalLength => "bad_total_length",
            Error::BadDataOffset => "bad_data_offset",
            Error::BadOption => "bad_option",
            Error::BadChecksum => "bad_checksum",
            Error::Unsupported => "unsupported",
            Error::BadLength => "bad_length",
        }
    }

    /// Every variant, in declaration order (for registering counters up front).
    pub const ALL: [Error; 9] = [
        Error::Truncated,
        Error::BadVersion,
        Error::BadHeaderLength,
        Error::BadTotalLength,
        Error::BadDataOffset,
        Error::BadOption,
        Error::BadChecksum,
        Error::Unsupported,
        Error::BadLength,
    ];
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            Error::Truncated => "packet truncated: the buffer ends inside a header",
            Error::BadVersion => "IP version is not 4",
            Error::BadHeaderLength => {
                "IPv4 header length (IHL) is below 5 words or exceeds the total length"
            }
            Error::BadTotalLength => {
                "IPv4 total length is below the header length or exceeds the frame"
            }
            Error::BadDataOffset => "TCP data offset is below 5 words or exceeds the segment",
            Error::BadOption => {
                "malformed TCP/IPv4 option (length 0 or 1, runs past the header, \
                 or wrong length for a fixed-size option)"
            }
            Error::BadChecksum => "checksum does not verify",
            Error::Unsupported => "well-formed packet of a kind Shoal does not handle",
            Error::BadLength => "length field below its minimum or beyond the buffer",
        };
        f.write_str(msg)
    }
}

impl std::error::Error for Error {}

/// Result of parsing a packet.
pub type Result<T> = core::result::Result<T, Error>;

/// Reads a big-endian `u16` at `at`. Callers guarantee `at + 2 <= buf.len()`.
#[inline]
pub(crate) fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Reads a big-endian `u32` at `at`. Callers guarantee `at + 4 <= buf.len()`.
#[inline]
pub(crate) fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Writes a big-endian `u16` at `at`. Callers guarantee `at + 2 <= buf.len()`.
#[inline]
pub(crate) fn write_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Writes a big-endian `u32` at `at`. Callers guarantee `at + 4 <= buf.len()`.
#[inline]
pub(crate) fn write_u32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_labels_are_snake_case_and_distinct() {
        let labels: std::vec::Vec<&str> = Error::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            labels,
            [
                "truncated",
                "bad_version",
                "bad_ihl",
                "bad_total_length",
                "bad_data_offset",
                "bad_option",
                "bad_checksum",
                "unsupported",
                "bad_length"
            ]
        );
        assert_eq!(Error::BadVersion.to_string(), "IP version is not 4");
    }
}
