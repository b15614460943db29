//! IPv4 headers (RFC 791): the view, header checksum, option TLV validation,
//! and the reserved ("evil") fragment bit, which the DPR report proposes to
//! mark redirected packets with. Shoal does not set it: a receiver
//! recognises a redirected packet by its own MAC or by the tunnel.
//!
//! The view's payload ends at the total length, not at the end of the buffer,
//! so Ethernet padding of short frames never reaches TCP/UDP.

use core::fmt;
use core::net::Ipv4Addr;

use crate::checksum;
use crate::{read_u16, write_u16, Error, Result};

/// The protocol field: what the IPv4 payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// ICMP, 1.
    Icmp,
    /// IP-in-IP (RFC 2003), 4.
    IpIp,
    /// TCP, 6.
    Tcp,
    /// UDP, 17.
    Udp,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(value: u8) -> Self {
        match value {
            1 => IpProtocol::Icmp,
            4 => IpProtocol::IpIp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(value: IpProtocol) -> Self {
        match value {
            IpProtocol::Icmp => 1,
            IpProtocol::IpIp => 4,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(other) => other,
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpProtocol::Icmp => f.write_str("icmp"),
            IpProtocol::IpIp => f.write_str("ipip"),
            IpProtocol::Tcp => f.write_str("tcp"),
            IpProtocol::Udp => f.write_str("udp"),
            IpProtocol::Unknown(n) => write!(f, "proto-{n}"),
        }
    }
}

/// Byte offsets of the IPv4 header fields.
pub mod field {
    use core::ops::Range;

    /// Version (high nibble) and IHL (low nibble, in 32-bit words).
    pub const VER_IHL: usize = 0;
    /// DSCP (6 bits) and ECN (2 bits), formerly TOS.
    pub const DSCP_ECN: usize = 1;
    /// Total length of header and payload.
    pub const LENGTH: Range<usize> = 2..4;
    /// Identification.
    pub const IDENT: Range<usize> = 4..6;
    /// Flags (reserved, DF, MF) and fragment offset in 8-byte units.
    pub const FLG_OFF: Range<usize> = 6..8;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol of the payload.
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: Range<usize> = 10..12;
    /// Source address.
    pub const SRC_ADDR: Range<usize> = 12..16;
    /// Destination address.
    pub const DST_ADDR: Range<usize> = 16..20;
    /// Length of a header without options.
    pub const HEADER_LEN: usize = 20;
    /// Longest header (IHL 15).
    pub const MAX_HEADER_LEN: usize = 60;
}

/// The reserved fragment flag bit (RFC 3514's "evil bit"). The DPR report
/// marks redirected packets with it; Shoal parses it but does not set it.
pub const FLAG_RESERVED: u16 = 0x8000;
/// Don't fragment.
pub const FLAG_DONT_FRAG: u16 = 0x4000;
/// More fragments.
pub const FLAG_MORE_FRAGS: u16 = 0x2000;
/// Mask of the fragment offset (in 8-byte units).
pub const FRAG_OFFSET_MASK: u16 = 0x1FFF;

/// Option kind: end of option list.
pub const OPT_END: u8 = 0;
/// Option kind: no operation (padding).
pub const OPT_NOP: u8 = 1;

/// A zero-copy view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking anything; getters may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after validating, in this order: at least 20 bytes
    /// ([`Error::Truncated`]), version 4 ([`Error::BadVersion`]), IHL >= 5 and
    /// header length <= total length ([`Error::BadHeaderLength`]), total length
    /// <= buffer length ([`Error::BadTotalLength`]). Options are not checked
    /// here: see [`Ipv4Packet::check_options`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`Ipv4Packet::new_checked`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = self.header_len();
        let total_len = self.total_len() as usize;
        if header_len < field::HEADER_LEN || header_len > total_len {
            return Err(Error::BadHeaderLength);
        }
        if total_len > len {
            return Err(Error::BadTotalLength);
        }
        Ok(())
    }

    /// Validates the option TLVs: end-of-list stops the walk, no-operation is
    /// one byte, every other option has a length >= 2 that stays inside the
    /// header. Anything else is [`Error::BadOption`]. Needs a checked packet.
    pub fn check_options(&self) -> Result<()> {
        let mut opts = self.options();
        while let Some(&kind) = opts.first() {
            match kind {
                OPT_END => return Ok(()),
                OPT_NOP => opts = &opts[1..],
                _ => {
                    let len = *opts.get(1).ok_or(Error::BadOption)? as usize;
                    if len < 2 || len > opts.len() {
                        return Err(Error::BadOption);
                    }
                    opts = &opts[len..];
                }
            }
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0F) as usize * 4
    }

    /// DSCP and ECN byte (formerly TOS).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length of header and payload.
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    fn flg_off(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start)
    }

    /// The reserved flag bit (see [`FLAG_RESERVED`]).
    pub fn reserved_flag(&self) -> bool {
        self.flg_off() & FLAG_RESERVED != 0
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.flg_off() & FLAG_DONT_FRAG != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.flg_off() & FLAG_MORE_FRAGS != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.flg_off() & FRAG_OFFSET_MASK) << 3
    }

    /// Whether this is a fragment (more fragments follow, or it is not the first).
    pub fn is_fragment(&self) -> bool {
        self.flg_off() & (FLAG_MORE_FRAGS | FRAG_OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Time to live (alias of [`Ipv4Packet::hop_limit`]).
    pub fn ttl(&self) -> u8 {
        self.hop_limit()
    }

    /// Protocol of the payload.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Protocol of the payload (alias of [`Ipv4Packet::next_header`]).
    pub fn protocol(&self) -> IpProtocol {
        self.next_header()
    }

    /// Header checksum.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        addr_at(self.buffer.as_ref(), field::SRC_ADDR.start)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        addr_at(self.buffer.as_ref(), field::DST_ADDR.start)
    }

    /// The option bytes (between the fixed header and the payload).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..self.header_len()]
    }

    /// The whole header, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The payload, up to the total length (trailing padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.header()) == 0xFFFF
    }
}

impl<'a> Ipv4Packet<&'a [u8]> {
    /// The payload with the lifetime of the underlying buffer.
    pub fn into_payload(self) -> &'a [u8] {
        let range = self.header_len()..self.total_len() as usize;
        &self.buffer[range]
    }
}

impl<'a> Ipv4Packet<&'a mut [u8]> {
    /// The mutable payload with the lifetime of the underlying buffer.
    pub fn into_payload_mut(self) -> &'a mut [u8] {
        let range = self.header_len()..self.total_len() as usize;
        &mut self.buffer[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version.
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0F) | (value << 4);
    }

    /// Sets the header length in bytes (rounded down to a multiple of 4).
    pub fn set_header_len(&mut self, value: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xF0) | ((value / 4) as u8 & 0x0F);
    }

    /// Sets the DSCP/ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT.start, value);
    }

    fn set_flag(&mut self, flag: u16, value: bool) {
        let raw = self.flg_off();
        let raw = if value { raw | flag } else { raw & !flag };
        write_u16(self.buffer.as_mut(), field::FLG_OFF.start, raw);
    }

    /// Sets or clears the reserved flag (Shoal's redirected-packet marker).
    pub fn set_reserved_flag(&mut self, value: bool) {
        self.set_flag(FLAG_RESERVED, value);
    }

    /// Sets or clears don't-fragment.
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flag(FLAG_DONT_FRAG, value);
    }

    /// Sets or clears more-fragments.
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flag(FLAG_MORE_FRAGS, value);
    }

    /// Sets the fragment offset in bytes (must be a multiple of 8).
    pub fn set_frag_offset(&mut self, value: u16) {
        let raw = (self.flg_off() & !FRAG_OFFSET_MASK) | ((value >> 3) & FRAG_OFFSET_MASK);
        write_u16(self.buffer.as_mut(), field::FLG_OFF.start, raw);
    }

    /// Sets the time to live.
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the time to live (alias of [`Ipv4Packet::set_hop_limit`]).
    pub fn set_ttl(&mut self, value: u8) {
        self.set_hop_limit(value);
    }

    /// Sets the protocol.
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into();
    }

    /// Sets the protocol (alias of [`Ipv4Packet::set_next_header`]).
    pub fn set_protocol(&mut self, value: IpProtocol) {
        self.set_next_header(value);
    }

    /// Sets the checksum field as is.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// The mutable option bytes.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::HEADER_LEN..end]
    }

    /// The mutable payload, up to the total length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..self.total_len() as usize;
        &mut self.buffer.as_mut()[range]
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.header());
        self.set_checksum(!sum);
    }
}

fn addr_at(buf: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(buf[at], buf[at + 1], buf[at + 2], buf[at + 3])
}

/// A parsed IPv4 header.
///
/// Options are not represented: `parse` validates and skips them, `emit`
/// always writes a 20-byte header. Nor is the reserved flag: it is a marker
/// set and read on the view ([`Ipv4Packet::set_reserved_flag`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Payload length (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// More-fragments flag.
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// DSCP and ECN byte.
    pub dscp_ecn: u8,
}

impl Ipv4Repr {
    /// Parses a packet's header, validating its lengths and option TLVs. The
    /// checksum is not verified (see [`Ipv4Packet::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        packet.check_len()?;
        packet.check_options()?;
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.total_len() as usize - packet.header_len(),
            ttl: packet.ttl(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            dscp_ecn: packet.dscp_ecn(),
        })
    }

    /// Length of the header `emit` writes (always 20).
    pub const fn header_len(&self) -> usize {
        field::HEADER_LEN
    }

    /// Length of the whole packet: header plus payload.
    pub const fn buffer_len(&self) -> usize {
        field::HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header (reserved flag clear) with a filled checksum.
    /// The total length is `20 + payload_len`, which must fit in 16 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        let b = packet.buffer.as_mut();
        b[field::VER_IHL] = 0x45;
        b[field::DSCP_ECN] = self.dscp_ecn;
        write_u16(b, field::LENGTH.start, self.buffer_len() as u16);
        write_u16(b, field::IDENT.start, self.ident);
        let mut flg_off = (self.frag_offset >> 3) & FRAG_OFFSET_MASK;
        if self.dont_frag {
            flg_off |= FLAG_DONT_FRAG;
        }
        if self.more_frags {
            flg_off |= FLAG_MORE_FRAGS;
        }
        write_u16(b, field::FLG_OFF.start, flg_off);
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol.into();
        b[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        b[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IPv4 header of an ICMP echo request from 192.168.1.100 to 8.8.8.8
    /// as Linux `ping` sends it (total length 84, DF, TTL 64); header checksum
    /// 0xb51e computed independently of this crate.
    const PING_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x54, 0xb3, 0x6e, 0x40, 0x00, 0x40, 0x01, 0xb5, 0x1e, 0xc0, 0xa8, 0x01,
        0x64, 0x08, 0x08, 0x08, 0x08,
    ];

    /// A header with a Router Alert option (RFC 2113: 94 04 00 00), as IGMP version 2
    /// reports carry it, followed by an 8-byte IGMP payload and 4 bytes of
    /// Ethernet padding.
    const WITH_OPTIONS: [u8; 36] = [
        0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x01, 0x02, 0x41, 0x10, 0xc0, 0xa8, 0x01,
        0x64, 0xe0, 0x00, 0x00, 0xfb, 0x94, 0x04, 0x00, 0x00, 0x16, 0x00, 0x09, 0x04, 0xe0, 0x00,
        0x00, 0xfb, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn real_header_fields_and_checksum() {
        let mut buf = [0u8; 84];
        buf[..20].copy_from_slice(&PING_HEADER);
        let packet = Ipv4Packet::new_checked(&buf[..]).expect("valid");
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.total_len(), 84);
        assert_eq!(packet.ident(), 0xb36e);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert!(!packet.is_fragment());
        assert!(!packet.reserved_flag());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), IpProtocol::Icmp);
        assert_eq!(packet.checksum(), 0xb51e);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(8, 8, 8, 8));
        assert!(packet.verify_checksum());
        assert_eq!(packet.payload().len(), 64);

        let repr = Ipv4Repr::parse(&packet).expect("parses");
        assert_eq!(repr.payload_len, 64);
        let mut out = [0u8; 20];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, PING_HEADER);
    }

    #[test]
    fn options_and_padding() {
        let packet = Ipv4Packet::new_checked(&WITH_OPTIONS[..]).expect("valid");
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert!(packet.verify_checksum());
        assert_eq!(packet.check_options(), Ok(()));
        // Payload stops at total length 32: the 4 padding bytes are excluded.
        assert_eq!(
            packet.payload(),
            &[0x16, 0x00, 0x09, 0x04, 0xe0, 0x00, 0x00, 0xfb]
        );
        assert_eq!(packet.dscp_ecn(), 0xc0);
        let repr = Ipv4Repr::parse(&packet).expect("parses");
        assert_eq!(repr.payload_len, 8);
        assert_eq!(repr.protocol, IpProtocol::Unknown(2));
    }

    #[test]
    fn bad_options_are_rejected() {
        for (opts, expected) in [
            ([0x94, 0x00, 0x00, 0x00], Err(Error::BadOption)), // length 0
            ([0x94, 0x01, 0x00, 0x00], Err(Error::BadOption)), // length 1
            ([0x94, 0x05, 0x00, 0x00], Err(Error::BadOption)), // overruns header
            ([0x01, 0x01, 0x01, 0x94], Err(Error::BadOption)), // no room for length
            ([0x01, 0x00, 0xff, 0xff], Ok(())),                // EOL ends the walk
        ] {
            let mut buf = WITH_OPTIONS;
            buf[20..24].copy_from_slice(&opts);
            let packet = Ipv4Packet::new_checked(&buf[..]).expect("lengths are fine");
            assert_eq!(packet.check_options(), expected, "options {opts:02x?}");
            assert_eq!(Ipv4Repr::parse(&packet).err(), expected.err());
        }
    }

    #[test]
    fn length_checks() {
        let mut buf = [0u8; 84];
        buf[..20].copy_from_slice(&PING_HEADER);
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..19]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..83]).err(),
            Some(Error::BadTotalLength)
        );
        let mut v6 = buf;
        v6[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&v6[..]).err(),
            Some(Error::BadVersion)
        );
        let mut ihl3 = buf;
        ihl3[0] = 0x43;
        assert_eq!(
            Ipv4Packet::new_checked(&ihl3[..]).err(),
            Some(Error::BadHeaderLength)
        );
        let mut short_total = buf;
        short_total[..20].copy_from_slice(&PING_HEADER);
        short_total[3] = 19;
        assert_eq!(
            Ipv4Packet::new_checked(&short_total[..]).err(),
            Some(Error::BadHeaderLength)
        );
    }

    #[test]
    fn setters_and_flags() {
        let mut buf = [0u8; 84];
        buf[..20].copy_from_slice(&PING_HEADER);
        let mut packet = Ipv4Packet::new_unchecked(&mut buf[..]);
        packet.set_reserved_flag(true);
        packet.set_more_frags(true);
        packet.set_frag_offset(1480);
        assert!(packet.reserved_flag());
        assert!(packet.dont_frag());
        assert!(packet.is_fragment());
        assert_eq!(packet.frag_offset(), 1480);
        assert_eq!(&packet.header()[6..8], &[0xe0, 0xb9]);
        packet.set_dont_frag(false);
        packet.set_more_frags(false);
        packet.set_reserved_flag(false);
        assert_eq!(&packet.header()[6..8], &[0x00, 0xb9]);
        assert!(packet.is_fragment());
        packet.set_frag_offset(0);
        assert!(!packet.is_fragment());
        packet.set_ttl(1);
        packet.set_src_addr(Ipv4Addr::new(198, 18, 0, 1));
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        assert_eq!(packet.ttl(), 1);
    }
}
