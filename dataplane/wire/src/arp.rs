//! ARP (RFC 826). The view reads any hardware/protocol combination; the repr
//! handles only Ethernet/IPv4, the one Shoal answers (for the VIP and its own
//! addresses).

use core::net::Ipv4Addr;

use crate::ethernet::EthernetAddress;
use crate::{read_u16, write_u16, Error, Result};

/// The ARP operation field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// Request, 1.
    Request,
    /// Reply, 2.
    Reply,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(value: u16) -> Self {
        match value {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(value: ArpOperation) -> Self {
        match value {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

/// Byte offsets of the fixed ARP fields; the addresses follow at offsets that
/// depend on the hardware and protocol lengths.
pub mod field {
    use core::ops::Range;

    /// Hardware type (1 = Ethernet).
    pub const HTYPE: Range<usize> = 0..2;
    /// Protocol type (0x0800 = IPv4).
    pub const PTYPE: Range<usize> = 2..4;
    /// Hardware address length.
    pub const HLEN: usize = 4;
    /// Protocol address length.
    pub const PLEN: usize = 5;
    /// Operation.
    pub const OPER: Range<usize> = 6..8;
    /// Start of the sender hardware address.
    pub const SHA_START: usize = 8;
    /// Length of the fixed part.
    pub const FIXED_LEN: usize = 8;
}

/// Hardware type of Ethernet.
pub const HARDWARE_ETHERNET: u16 = 1;
/// Protocol type of IPv4.
pub const PROTOCOL_IPV4: u16 = 0x0800;

/// A zero-copy view of an ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without checking anything; getters may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after checking that it holds the fixed part and the four
    /// addresses whose lengths it announces.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the whole packet.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::FIXED_LEN || len < self.packet_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the packet as its address lengths announce it.
    pub fn packet_len(&self) -> usize {
        field::FIXED_LEN + 2 * (self.hardware_len() as usize + self.protocol_len() as usize)
    }

    /// Hardware type.
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE.start)
    }

    /// Protocol type.
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE.start)
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(read_u16(self.buffer.as_ref(), field::OPER.start))
    }

    fn sha_range(&self) -> core::ops::Range<usize> {
        let start = field::SHA_START;
        start..start + self.hardware_len() as usize
    }

    fn spa_range(&self) -> core::ops::Range<usize> {
        let start = self.sha_range().end;
        start..start + self.protocol_len() as usize
    }

    fn tha_range(&self) -> core::ops::Range<usize> {
        let start = self.spa_range().end;
        start..start + self.hardware_len() as usize
    }

    fn tpa_range(&self) -> core::ops::Range<usize> {
        let start = self.tha_range().end;
        start..start + self.protocol_len() as usize
    }

    /// Sender hardware address bytes.
    pub fn source_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.sha_range()]
    }

    /// Sender protocol address bytes.
    pub fn source_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.spa_range()]
    }

    /// Target hardware address bytes.
    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.tha_range()]
    }

    /// Target protocol address bytes.
    pub fn target_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.tpa_range()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE.start, value);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::PTYPE.start, value);
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, value: ArpOperation) {
        write_u16(self.buffer.as_mut(), field::OPER.start, value.into());
    }

    /// Sets the sender hardware address (length must match `hardware_len`).
    pub fn set_source_hardware_addr(&mut self, value: &[u8]) {
        let r = self.sha_range();
        self.buffer.as_mut()[r].copy_from_slice(value);
    }

    /// Sets the sender protocol address (length must match `protocol_len`).
    pub fn set_source_protocol_addr(&mut self, value: &[u8]) {
        let r = self.spa_range();
        self.buffer.as_mut()[r].copy_from_slice(value);
    }

    /// Sets the target hardware address (length must match `hardware_len`).
    pub fn set_target_hardware_addr(&mut self, value: &[u8]) {
        let r = self.tha_range();
        self.buffer.as_mut()[r].copy_from_slice(value);
    }

    /// Sets the target protocol address (length must match `protocol_len`).
    pub fn set_target_protocol_addr(&mut self, value: &[u8]) {
        let r = self.tpa_range();
        self.buffer.as_mut()[r].copy_from_slice(value);
    }
}

/// A parsed ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpRepr {
    /// ARP for IPv4 over Ethernet, the only kind Shoal handles.
    EthernetIpv4 {
        /// Request, reply or other.
        operation: ArpOperation,
        /// Sender MAC.
        source_hardware_addr: EthernetAddress,
        /// Sender IPv4 address.
        source_protocol_addr: Ipv4Addr,
        /// Target MAC (zero in requests).
        target_hardware_addr: EthernetAddress,
        /// Target IPv4 address.
        target_protocol_addr: Ipv4Addr,
    },
}

impl ArpRepr {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const ETHERNET_IPV4_LEN: usize = 28;

    /// Parses a packet; anything but Ethernet/IPv4 is [`Error::Unsupported`].
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr> {
        packet.check_len()?;
        if packet.hardware_type() != HARDWARE_ETHERNET
            || packet.protocol_type() != PROTOCOL_IPV4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(ArpRepr::EthernetIpv4 {
            operation: packet.operation(),
            source_hardware_addr: EthernetAddress::from_bytes(packet.source_hardware_addr()),
            source_protocol_addr: ipv4_from(packet.source_protocol_addr()),
            target_hardware_addr: EthernetAddress::from_bytes(packet.target_hardware_addr()),
            target_protocol_addr: ipv4_from(packet.target_protocol_addr()),
        })
    }

    /// Length `emit` writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            ArpRepr::EthernetIpv4 { .. } => Self::ETHERNET_IPV4_LEN,
        }
    }

    /// Writes the packet; the buffer must be at least `buffer_len()` long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        match *self {
            ArpRepr::EthernetIpv4 {
                operation,
                source_hardware_addr,
                source_protocol_addr,
                target_hardware_addr,
                target_protocol_addr,
            } => {
                packet.set_hardware_type(HARDWARE_ETHERNET);
                packet.set_protocol_type(PROTOCOL_IPV4);
                packet.set_hardware_len(6);
                packet.set_protocol_len(4);
                packet.set_operation(operation);
                packet.set_source_hardware_addr(&source_hardware_addr.0);
                packet.set_source_protocol_addr(&source_protocol_addr.octets());
                packet.set_target_hardware_addr(&target_hardware_addr.0);
                packet.set_target_protocol_addr(&target_protocol_addr.octets());
            }
        }
    }
}

/// An IPv4 address from 4 bytes (callers checked the length).
fn ipv4_from(bytes: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real ARP request (who-has 192.168.1.1 tell 192.168.1.100), the ARP
    /// part of a broadcast frame captured on a home LAN.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x3c, 0x97, 0x0e, 0x4a, 0x1b, 0x2c, 0xc0,
        0xa8, 0x01, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x01,
    ];

    #[test]
    fn parses_and_reemits_a_request() {
        let packet = ArpPacket::new_checked(&REQUEST[..]).expect("valid");
        let repr = ArpRepr::parse(&packet).expect("Ethernet/IPv4");
        assert_eq!(
            repr,
            ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr: EthernetAddress([0x3c, 0x97, 0x0e, 0x4a, 0x1b, 0x2c]),
                source_protocol_addr: Ipv4Addr::new(192, 168, 1, 100),
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: Ipv4Addr::new(192, 168, 1, 1),
            }
        );
        let mut out = [0u8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, REQUEST);
    }

    #[test]
    fn length_and_kind_checks() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..7]).err(),
            Some(Error::Truncated)
        );
        let mut long_hw = [0u8; 32];
        long_hw[..8].copy_from_slice(&[0x00, 0x01, 0x08, 0x00, 0x08, 0x04, 0x00, 0x01]);
        let packet = ArpPacket::new_checked(&long_hw[..])
            .expect("hlen 8 fits in 8 + 2 * (8 + 4) = 32 bytes");
        assert_eq!(ArpRepr::parse(&packet), Err(Error::Unsupported));
        assert_eq!(
            ArpPacket::new_checked(&long_hw[..31]).err(),
            Some(Error::Truncated)
        );
    }
}
