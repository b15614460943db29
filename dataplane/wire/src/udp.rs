//! UDP datagrams (RFC 768) over IPv4, with the pseudo-header checksum.
//!
//! A transmitted checksum of 0 means "none" and always verifies; a computed
//! checksum of 0 is transmitted as 0xFFFF.

use core::net::Ipv4Addr;

use crate::checksum;
use crate::ipv4::IpProtocol;
use crate::{read_u16, write_u16, Error, Result};

/// Byte offsets of the UDP header fields.
pub mod field {
    use core::ops::Range;

    /// Source port.
    pub const SRC_PORT: Range<usize> = 0..2;
    /// Destination port.
    pub const DST_PORT: Range<usize> = 2..4;
    /// Length of header and payload.
    pub const LENGTH: Range<usize> = 4..6;
    /// Checksum (0 = none).
    pub const CHECKSUM: Range<usize> = 6..8;
    /// Header length.
    pub const HEADER_LEN: usize = 8;
}

/// A zero-copy view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without checking anything; getters may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header
    /// ([`Error::Truncated`]) and that the length field is between 8 and the
    /// buffer length ([`Error::BadLength`]).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`UdpPacket::new_checked`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = self.len() as usize;
        if field_len < field::HEADER_LEN || field_len > len {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Length field (header plus payload).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Checksum field (0 = none).
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..self.len() as usize]
    }

    /// Whether the checksum verifies with the IPv4 pseudo-header. A checksum
    /// of 0 (none) verifies.
    pub fn verify_checksum(&self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let datagram = &self.buffer.as_ref()[..self.len() as usize];
        checksum::combine(&[
            checksum::pseudo_header(src_addr, dst_addr, IpProtocol::Udp.into(), self.len()),
            checksum::data(datagram),
        ]) == 0xFFFF
    }
}

impl<'a> UdpPacket<&'a [u8]> {
    /// The payload with the lifetime of the underlying buffer.
    pub fn into_payload(self) -> &'a [u8] {
        let end = self.len() as usize;
        &self.buffer[field::HEADER_LEN..end]
    }
}

impl<'a> UdpPacket<&'a mut [u8]> {
    /// The mutable payload with the lifetime of the underlying buffer.
    pub fn into_payload_mut(self) -> &'a mut [u8] {
        let end = self.len() as usize;
        &mut self.buffer[field::HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, value);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    /// Sets the checksum field as is.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// The mutable payload, up to the length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.len() as usize;
        &mut self.buffer.as_mut()[field::HEADER_LEN..end]
    }

    /// Computes and stores the checksum over the first `len()` bytes with the
    /// IPv4 pseudo-header; a computed 0 is stored as 0xFFFF.
    pub fn fill_checksum(&mut self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let sum = checksum::combine(&[
            checksum::pseudo_header(src_addr, dst_addr, IpProtocol::Udp.into(), len),
            checksum::data(&self.buffer.as_ref()[..len as usize]),
        ]);
        self.set_checksum(checksum::udp_encode(!sum));
    }
}

/// A parsed UDP header (the payload stays in the view).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses a datagram's header after checking its lengths. The checksum is
    /// not verified (see [`UdpPacket::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &UdpPacket<T>) -> Result<UdpRepr> {
        packet.check_len()?;
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// Header length (8).
    pub const fn header_len(&self) -> usize {
        field::HEADER_LEN
    }

    /// Length of a datagram with `payload_len` bytes of payload.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        field::HEADER_LEN + payload_len
    }

    /// Writes the header for a payload of `payload_len` bytes that is already
    /// in place (or written later), with a zero checksum.
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        payload_len: usize,
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(self.buffer_len(payload_len) as u16);
        packet.set_checksum(0);
    }

    /// Writes header and `payload` and fills the checksum. The buffer must be
    /// at least `buffer_len(payload.len())` long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        src_addr: Ipv4Addr,
        dst_addr: Ipv4Addr,
        payload: &[u8],
    ) {
        self.emit_header(packet, payload.len());
        packet.payload_mut().copy_from_slice(payload);
        packet.fill_checksum(src_addr, dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 100);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);

    /// A DNS query for "example.com" A (id 0x1a2b, RD) from port 54321 to 53,
    /// checksum computed independently of this crate.
    const DNS_QUERY: [u8; 37] = [
        0xd4, 0x31, 0x00, 0x35, 0x00, 0x25, 0xbd, 0xee, 0x1a, 0x2b, 0x01, 0x00, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x07, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0x03, b'c',
        b'o', b'm', 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    #[test]
    fn dns_query_fields_checksum_and_reemit() {
        let packet = UdpPacket::new_checked(&DNS_QUERY[..]).expect("valid");
        assert_eq!(packet.src_port(), 54321);
        assert_eq!(packet.dst_port(), 53);
        assert_eq!(packet.len(), 37);
        assert_eq!(packet.payload().len(), 29);
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(SRC, Ipv4Addr::new(192, 168, 1, 2)));
        let repr = UdpRepr::parse(&packet).expect("parses");
        let mut out = [0u8; 37];
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut out[..]),
            SRC,
            DST,
            packet.payload(),
        );
        assert_eq!(out, DNS_QUERY);
    }

    #[test]
    fn length_field_is_validated() {
        let mut buf = DNS_QUERY;
        buf[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&buf[..]).err(),
            Some(Error::BadLength)
        );
        buf[5] = 38;
        assert_eq!(
            UdpPacket::new_checked(&buf[..]).err(),
            Some(Error::BadLength)
        );
        assert_eq!(
            UdpPacket::new_checked(&buf[..7]).err(),
            Some(Error::Truncated)
        );
        // A shorter length field trims the payload.
        buf[5] = 9;
        let packet = UdpPacket::new_checked(&buf[..]).expect("valid");
        assert_eq!(packet.payload(), &[0x1a]);
    }

    #[test]
    fn zero_checksum_means_none_and_computed_zero_is_ffff() {
        let mut buf = DNS_QUERY;
        buf[6] = 0;
        buf[7] = 0;
        let packet = UdpPacket::new_checked(&buf[..]).expect("valid");
        assert!(packet.verify_checksum(SRC, Ipv4Addr::UNSPECIFIED));
        // Choose a payload word that makes the computed checksum zero.
        let mut zero = [0u8; 10];
        let repr = UdpRepr {
            src_port: 1,
            dst_port: 2,
        };
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut zero[..]),
            SRC,
            DST,
            &[0, 0],
        );
        let natural = u16::from_be_bytes([zero[6], zero[7]]);
        // Adding `natural` to the payload word drives the sum to 0xFFFF.
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut zero[..]),
            SRC,
            DST,
            &natural.to_be_bytes(),
        );
        assert_eq!(&zero[6..8], &[0xff, 0xff]);
        assert!(UdpPacket::new_unchecked(&zero[..]).verify_checksum(SRC, DST));
    }
}
