//! Ethernet II frames, with up to two stacked VLAN tags (802.1Q, and 802.1ad
//! `QinQ`: an 0x88A8 or 0x8100 outer tag followed by an 0x8100 inner tag).
//!
//! The frame view always reports the *innermost* ethertype (the one that names
//! the payload) and a payload that starts after the tags. The frame check
//! sequence is not part of the buffer (NICs strip it), and trailing padding of
//! short frames is part of the payload: the IPv4 view trims it.

use core::fmt;

use crate::{read_u16, write_u16, Error, Result};

/// A 48-bit Ethernet (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// The address from its six bytes. Panics if `data` is not 6 bytes long.
    pub fn from_bytes(data: &[u8]) -> EthernetAddress {
        let mut bytes = [0; 6];
        bytes.copy_from_slice(data);
        EthernetAddress(bytes)
    }

    /// The six bytes of the address.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the group bit is set (broadcast included).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether the group bit is clear.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Whether the locally-administered bit is set.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// The ethertype field: what follows the (tag or) header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// IPv4, 0x0800.
    Ipv4,
    /// ARP, 0x0806.
    Arp,
    /// IPv6, 0x86DD.
    Ipv6,
    /// 802.1Q VLAN tag, 0x8100.
    Vlan,
    /// 802.1ad service tag (`QinQ` outer tag), 0x88A8.
    QinQ,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86DD => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            0x88A8 => EtherType::QinQ,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86DD,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88A8,
            EtherType::Unknown(other) => other,
        }
    }
}

/// Byte offsets of the Ethernet header fields.
pub mod field {
    use core::ops::Range;

    /// Destination address.
    pub const DESTINATION: Range<usize> = 0..6;
    /// Source address.
    pub const SOURCE: Range<usize> = 6..12;
    /// Ethertype, or the TPID of the outer VLAN tag.
    pub const ETHERTYPE: Range<usize> = 12..14;
    /// Tag control information of the outer VLAN tag.
    pub const OUTER_TCI: Range<usize> = 14..16;
    /// Ethertype after one tag, or the TPID of the inner tag.
    pub const OUTER_NEXT: Range<usize> = 16..18;
    /// Tag control information of the inner VLAN tag.
    pub const INNER_TCI: Range<usize> = 18..20;
    /// Ethertype after two tags.
    pub const INNER_NEXT: Range<usize> = 20..22;
    /// Length of an untagged header.
    pub const HEADER_LEN: usize = 14;
    /// Length of one VLAN tag.
    pub const TAG_LEN: usize = 4;
}

/// Mask of the VLAN identifier inside a tag control information field.
pub const VLAN_ID_MASK: u16 = 0x0FFF;

/// A zero-copy view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking anything; getters may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after checking that it holds the header and every VLAN
    /// tag the header announces.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer is long enough for the header and its tags.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if len < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Number of VLAN tags (0, 1 or 2) before the payload ethertype. Reads only
    /// the TPIDs that fit in the buffer.
    pub fn tag_count(&self) -> usize {
        let b = self.buffer.as_ref();
        let outer = read_u16(b, field::ETHERTYPE.start);
        if outer != 0x8100 && outer != 0x88A8 {
            return 0;
        }
        if b.len() < field::OUTER_NEXT.end {
            return 1;
        }
        if read_u16(b, field::OUTER_NEXT.start) == 0x8100 {
            2
        } else {
            1
        }
    }

    /// Header length including the tags: 14, 18 or 22.
    pub fn header_len(&self) -> usize {
        field::HEADER_LEN + field::TAG_LEN * self.tag_count()
    }

    /// Destination address.
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// Source address.
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    /// The ethertype of the payload (after any VLAN tags).
    pub fn ethertype(&self) -> EtherType {
        let at = self.header_len() - 2;
        EtherType::from(read_u16(self.buffer.as_ref(), at))
    }

    /// The tag control information of the outer and inner VLAN tags.
    pub fn vlan_tcis(&self) -> [Option<u16>; 2] {
        let b = self.buffer.as_ref();
        match self.tag_count() {
            0 => [None, None],
            1 => [Some(read_u16(b, field::OUTER_TCI.start)), None],
            _ => [
                Some(read_u16(b, field::OUTER_TCI.start)),
                Some(read_u16(b, field::INNER_TCI.start)),
            ],
        }
    }

    /// The 12-bit VLAN identifiers of the outer and inner tags.
    pub fn vlan_ids(&self) -> [Option<u16>; 2] {
        self.vlan_tcis().map(|t| t.map(|t| t & VLAN_ID_MASK))
    }

    /// The payload: everything after the header and tags (padding included).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<'a> EthernetFrame<&'a [u8]> {
    /// The payload with the lifetime of the underlying buffer.
    pub fn into_payload(self) -> &'a [u8] {
        let at = self.header_len();
        &self.buffer[at..]
    }
}

impl<'a> EthernetFrame<&'a mut [u8]> {
    /// The mutable payload with the lifetime of the underlying buffer.
    pub fn into_payload_mut(self) -> &'a mut [u8] {
        let at = self.header_len();
        &mut self.buffer[at..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the payload ethertype (after the existing tags). Setting a VLAN
    /// TPID here turns the payload into a tag; use [`EthernetRepr::emit`] to lay
    /// out tags instead.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        let at = self.header_len() - 2;
        write_u16(self.buffer.as_mut(), at, ethertype.into());
    }

    /// Sets the VLAN identifier of tag `index` (0 = outer, 1 = inner), keeping
    /// its priority bits. Returns whether the tag exists.
    pub fn set_vlan_id(&mut self, index: usize, id: u16) -> bool {
        if index >= self.tag_count() {
            return false;
        }
        let at = if index == 0 {
            field::OUTER_TCI.start
        } else {
            field::INNER_TCI.start
        };
        let b = self.buffer.as_mut();
        let tci = (read_u16(b, at) & !VLAN_ID_MASK) | (id & VLAN_ID_MASK);
        write_u16(b, at, tci);
        true
    }

    /// The mutable payload after the header and tags.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

/// The parsed Ethernet header.
///
/// Only VLAN identifiers are kept: priority and drop-eligible bits are not,
/// and `emit` writes them as zero. `emit` writes a single tag with TPID 0x8100,
/// and two tags as 0x88A8 (outer) + 0x8100 (inner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source address.
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// Outer (or only) VLAN identifier.
    pub vlan: Option<u16>,
    /// Inner VLAN identifier of a `QinQ` frame; ignored by `emit` when `vlan` is `None`.
    pub inner_vlan: Option<u16>,
    /// Payload ethertype.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Parses the header of a checked frame.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        let [vlan, inner_vlan] = frame.vlan_ids();
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            vlan,
            inner_vlan,
            ethertype: frame.ethertype(),
        })
    }

    /// Header length `emit` writes: 14, 18 or 22.
    pub fn header_len(&self) -> usize {
        match (self.vlan, self.inner_vlan) {
            (None, _) => field::HEADER_LEN,
            (Some(_), None) => field::HEADER_LEN + field::TAG_LEN,
            (Some(_), Some(_)) => field::HEADER_LEN + 2 * field::TAG_LEN,
        }
    }

    /// Length of a frame with `payload_len` bytes of payload.
    pub fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    /// Writes the header (and tags) into `frame`, whose buffer must be at least
    /// `header_len()` bytes long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        let b = frame.buffer.as_mut();
        b[field::DESTINATION].copy_from_slice(&self.dst_addr.0);
        b[field::SOURCE].copy_from_slice(&self.src_addr.0);
        let ethertype = u16::from(self.ethertype);
        match (self.vlan, self.inner_vlan) {
            (None, _) => write_u16(b, field::ETHERTYPE.start, ethertype),
            (Some(outer), None) => {
                write_u16(b, field::ETHERTYPE.start, 0x8100);
                write_u16(b, field::OUTER_TCI.start, outer & VLAN_ID_MASK);
                write_u16(b, field::OUTER_NEXT.start, ethertype);
            }
            (Some(outer), Some(inner)) => {
                write_u16(b, field::ETHERTYPE.start, 0x88A8);
                write_u16(b, field::OUTER_TCI.start, outer & VLAN_ID_MASK);
                write_u16(b, field::OUTER_NEXT.start, 0x8100);
                write_u16(b, field::INNER_TCI.start, inner & VLAN_ID_MASK);
                write_u16(b, field::INNER_NEXT.start, ethertype);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `QinQ` frame: S-tag 0x88A8 VLAN 100 (PCP 3), C-tag 0x8100 VLAN 200,
    /// carrying the start of an IPv4 header.
    const QINQ: [u8; 26] = [
        0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x88, 0xa8, 0x60,
        0x64, 0x81, 0x00, 0x00, 0xc8, 0x08, 0x00, 0x45, 0x00, 0x00, 0x54,
    ];

    #[test]
    fn qinq_frame_reports_both_tags_and_inner_ethertype() {
        let frame = EthernetFrame::new_checked(&QINQ[..]).expect("valid QinQ frame");
        assert_eq!(frame.header_len(), 22);
        assert_eq!(frame.tag_count(), 2);
        assert_eq!(frame.vlan_ids(), [Some(100), Some(200)]);
        assert_eq!(frame.vlan_tcis(), [Some(0x6064), Some(0x00c8)]);
        assert_eq!(frame.ethertype(), EtherType::Ipv4);
        assert_eq!(frame.payload(), &[0x45, 0x00, 0x00, 0x54]);
        assert_eq!(frame.dst_addr().to_string(), "00:1b:21:3c:4d:5e");
        assert_eq!(
            frame.src_addr(),
            EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        );
        let repr = EthernetRepr::parse(&frame).expect("parses");
        assert_eq!(repr.vlan, Some(100));
        assert_eq!(repr.inner_vlan, Some(200));
        let mut out = [0u8; 22];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        // Priority bits are not kept: 0x6064 becomes 0x0064.
        let mut expected = [0u8; 22];
        expected.copy_from_slice(&QINQ[..22]);
        expected[14] = 0x00;
        assert_eq!(out, expected);
    }

    #[test]
    fn truncated_tags_are_rejected() {
        assert_eq!(
            EthernetFrame::new_checked(&QINQ[..13]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            EthernetFrame::new_checked(&QINQ[..17]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            EthernetFrame::new_checked(&QINQ[..21]).err(),
            Some(Error::Truncated)
        );
        assert!(EthernetFrame::new_checked(&QINQ[..22]).is_ok());
    }

    #[test]
    fn single_tag_and_setters() {
        let mut buf = [0u8; 20];
        let repr = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress::BROADCAST,
            vlan: Some(42),
            inner_vlan: None,
            ethertype: EtherType::Arp,
        };
        assert_eq!(repr.buffer_len(2), 20);
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        repr.emit(&mut frame);
        assert_eq!(frame.header_len(), 18);
        assert!(frame.set_vlan_id(0, 43));
        assert!(!frame.set_vlan_id(1, 7));
        frame.set_ethertype(EtherType::Ipv4);
        frame.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(
            buf,
            [
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0x00, 0x2b, 0x08,
                0x00, 0xaa, 0xbb
            ]
        );
    }

    #[test]
    fn address_classes() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(EthernetAddress([0x01, 0x00, 0x5e, 0, 0, 1]).is_multicast());
        assert!(EthernetAddress([0x02, 0, 0, 0, 0, 1]).is_unicast());
        assert!(EthernetAddress([0x02, 0, 0, 0, 0, 1]).is_local());
        assert_eq!(u16::from(EtherType::from(0x1234)), 0x1234);
        assert_eq!(EtherType::from(0x88A8), EtherType::QinQ);
    }
}
