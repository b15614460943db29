//! ICMPv4 (RFC 792): echo request/reply, destination unreachable (including
//! RFC 1191 "fragmentation needed" with the next-hop MTU) and time exceeded.
//!
//! Error messages quote the offending ("invoking") IPv4 header and the first 8
//! bytes of its payload. The repr keeps those bytes verbatim;
//! [`parse_invoking`] reads them, so the dataplane can find the flow an error
//! refers to (addresses, protocol, ports).

use core::net::Ipv4Addr;

use crate::checksum;
use crate::ipv4::{self, IpProtocol, Ipv4Packet};
use crate::{read_u16, write_u16, Error, Result};

/// The ICMP message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Message {
    /// Echo reply, 0.
    EchoReply,
    /// Destination unreachable, 3.
    DstUnreachable,
    /// Redirect, 5.
    Redirect,
    /// Echo request, 8.
    EchoRequest,
    /// Time exceeded, 11.
    TimeExceeded,
    /// Parameter problem, 12.
    ParamProblem,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for Icmpv4Message {
    fn from(value: u8) -> Self {
        match value {
            0 => Icmpv4Message::EchoReply,
            3 => Icmpv4Message::DstUnreachable,
            5 => Icmpv4Message::Redirect,
            8 => Icmpv4Message::EchoRequest,
            11 => Icmpv4Message::TimeExceeded,
            12 => Icmpv4Message::ParamProblem,
            other => Icmpv4Message::Unknown(other),
        }
    }
}

impl From<Icmpv4Message> for u8 {
    fn from(value: Icmpv4Message) -> Self {
        match value {
            Icmpv4Message::EchoReply => 0,
            Icmpv4Message::DstUnreachable => 3,
            Icmpv4Message::Redirect => 5,
            Icmpv4Message::EchoRequest => 8,
            Icmpv4Message::TimeExceeded => 11,
            Icmpv4Message::ParamProblem => 12,
            Icmpv4Message::Unknown(other) => other,
        }
    }
}

/// The code of a destination-unreachable message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4DstUnreachable {
    /// Network unreachable, 0.
    NetUnreachable,
    /// Host unreachable, 1.
    HostUnreachable,
    /// Protocol unreachable, 2.
    ProtoUnreachable,
    /// Port unreachable, 3.
    PortUnreachable,
    /// Fragmentation needed and DF set, 4 (carries the next-hop MTU).
    FragRequired,
    /// Source route failed, 5.
    SrcRouteFailed,
    /// Destination network unknown, 6.
    DstNetUnknown,
    /// Destination host unknown, 7.
    DstHostUnknown,
    /// Communication administratively prohibited, 13.
    AdminProhibited,
    /// Any other code.
    Unknown(u8),
}

impl From<u8> for Icmpv4DstUnreachable {
    fn from(value: u8) -> Self {
        match value {
            0 => Self::NetUnreachable,
            1 => Self::HostUnreachable,
            2 => Self::ProtoUnreachable,
            3 => Self::PortUnreachable,
            4 => Self::FragRequired,
            5 => Self::SrcRouteFailed,
            6 => Self::DstNetUnknown,
            7 => Self::DstHostUnknown,
            13 => Self::AdminProhibited,
            other => Self::Unknown(other),
        }
    }
}

impl From<Icmpv4DstUnreachable> for u8 {
    fn from(value: Icmpv4DstUnreachable) -> Self {
        match value {
            Icmpv4DstUnreachable::NetUnreachable => 0,
            Icmpv4DstUnreachable::HostUnreachable => 1,
            Icmpv4DstUnreachable::ProtoUnreachable => 2,
            Icmpv4DstUnreachable::PortUnreachable => 3,
            Icmpv4DstUnreachable::FragRequired => 4,
            Icmpv4DstUnreachable::SrcRouteFailed => 5,
            Icmpv4DstUnreachable::DstNetUnknown => 6,
            Icmpv4DstUnreachable::DstHostUnknown => 7,
            Icmpv4DstUnreachable::AdminProhibited => 13,
            Icmpv4DstUnreachable::Unknown(other) => other,
        }
    }
}

/// The code of a time-exceeded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4TimeExceeded {
    /// TTL expired in transit, 0.
    TtlExpired,
    /// Fragment reassembly time exceeded, 1.
    FragReassembly,
    /// Any other code.
    Unknown(u8),
}

impl From<u8> for Icmpv4TimeExceeded {
    fn from(value: u8) -> Self {
        match value {
            0 => Self::TtlExpired,
            1 => Self::FragReassembly,
            other => Self::Unknown(other),
        }
    }
}

impl From<Icmpv4TimeExceeded> for u8 {
    fn from(value: Icmpv4TimeExceeded) -> Self {
        match value {
            Icmpv4TimeExceeded::TtlExpired => 0,
            Icmpv4TimeExceeded::FragReassembly => 1,
            Icmpv4TimeExceeded::Unknown(other) => other,
        }
    }
}

/// Byte offsets of the ICMP header fields.
pub mod field {
    use core::ops::Range;

    /// Message type.
    pub const TYPE: usize = 0;
    /// Code.
    pub const CODE: usize = 1;
    /// Checksum over the whole message.
    pub const CHECKSUM: Range<usize> = 2..4;
    /// Echo identifier.
    pub const ECHO_IDENT: Range<usize> = 4..6;
    /// Echo sequence number.
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    /// Unused half of a destination-unreachable rest-of-header.
    pub const UNREACH_UNUSED: Range<usize> = 4..6;
    /// Next-hop MTU of "fragmentation needed" (RFC 1191).
    pub const UNREACH_MTU: Range<usize> = 6..8;
    /// Header length (type, code, checksum, rest of header).
    pub const HEADER_LEN: usize = 8;
}

/// How many payload bytes of the invoking packet an error message quotes
/// (RFC 792; RFC 1812 allows more, [`parse_invoking`] reads any length).
pub const INVOKING_PAYLOAD_LEN: usize = 8;

/// A zero-copy view of an ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps `buffer` without checking anything; getters may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    pub fn msg_type(&self) -> Icmpv4Message {
        Icmpv4Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// Code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Echo identifier (echo messages).
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// Echo sequence number (echo messages).
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }

    /// Next-hop MTU (destination unreachable, fragmentation needed).
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::UNREACH_MTU.start)
    }

    /// Everything after the 8-byte header: echo data, or the invoking packet.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..]
    }

    /// Whether the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xFFFF
    }
}

impl<'a> Icmpv4Packet<&'a [u8]> {
    /// The data after the header, with the lifetime of the underlying buffer.
    pub fn into_data(self) -> &'a [u8] {
        &self.buffer[field::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: Icmpv4Message) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    /// Sets the code.
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field as is.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT.start, value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO.start, value);
    }

    /// Sets the next-hop MTU (and zeroes the unused half before it).
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        let b = self.buffer.as_mut();
        write_u16(b, field::UNREACH_UNUSED.start, 0);
        write_u16(b, field::UNREACH_MTU.start, value);
    }

    /// The mutable data after the header.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::HEADER_LEN..]
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(!sum);
    }
}

/// A parsed ICMPv4 message of a kind Shoal handles.
///
/// Error messages keep the quoted invoking packet verbatim in `invoking`; use
/// [`parse_invoking`] to read it. The first half of the rest-of-header of a
/// destination-unreachable message (unused, or an RFC 4884 length) is not
/// kept; `emit` writes it as zero. Time-exceeded's rest-of-header is likewise
/// written as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Repr<'a> {
    /// Echo request (type 8).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Echo reply (type 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Destination unreachable (type 3).
    DstUnreachable {
        /// Code.
        reason: Icmpv4DstUnreachable,
        /// Next-hop MTU (meaningful for [`Icmpv4DstUnreachable::FragRequired`]; 0 otherwise).
        next_hop_mtu: u16,
        /// The invoking IPv4 header and the start of its payload, verbatim.
        invoking: &'a [u8],
    },
    /// Time exceeded (type 11).
    TimeExceeded {
        /// Code.
        reason: Icmpv4TimeExceeded,
        /// The invoking IPv4 header and the start of its payload, verbatim.
        invoking: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses a message. Other message types are [`Error::Unsupported`]. The
    /// checksum is not verified (see [`Icmpv4Packet::verify_checksum`]).
    pub fn parse(packet: &Icmpv4Packet<&'a [u8]>) -> Result<Icmpv4Repr<'a>> {
        packet.check_len()?;
        let buffer: &'a [u8] = packet.buffer;
        let data = &buffer[field::HEADER_LEN..];
        let repr = match packet.msg_type() {
            Icmpv4Message::EchoRequest => Icmpv4Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            },
            Icmpv4Message::EchoReply => Icmpv4Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            },
            Icmpv4Message::DstUnreachable => Icmpv4Repr::DstUnreachable {
                reason: Icmpv4DstUnreachable::from(packet.msg_code()),
                next_hop_mtu: packet.next_hop_mtu(),
                invoking: data,
            },
            Icmpv4Message::TimeExceeded => Icmpv4Repr::TimeExceeded {
                reason: Icmpv4TimeExceeded::from(packet.msg_code()),
                invoking: data,
            },
            _ => return Err(Error::Unsupported),
        };
        Ok(repr)
    }

    /// Length of the message `emit` writes.
    pub fn buffer_len(&self) -> usize {
        let data_len = match self {
            Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => data.len(),
            Icmpv4Repr::DstUnreachable { invoking, .. }
            | Icmpv4Repr::TimeExceeded { invoking, .. } => invoking.len(),
        };
        field::HEADER_LEN + data_len
    }

    /// Writes the message and fills the checksum. The buffer must be exactly
    /// `buffer_len()` long (the checksum covers the whole buffer).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv4Packet<T>) {
        let data = match *self {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                let msg_type = if matches!(self, Icmpv4Repr::EchoRequest { .. }) {
                    Icmpv4Message::EchoRequest
                } else {
                    Icmpv4Message::EchoReply
                };
                packet.set_msg_type(msg_type);
                packet.set_msg_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                data
            }
            Icmpv4Repr::DstUnreachable {
                reason,
                next_hop_mtu,
                invoking,
            } => {
                packet.set_msg_type(Icmpv4Message::DstUnreachable);
                packet.set_msg_code(reason.into());
                packet.set_next_hop_mtu(next_hop_mtu);
                invoking
            }
            Icmpv4Repr::TimeExceeded { reason, invoking } => {
                packet.set_msg_type(Icmpv4Message::TimeExceeded);
                packet.set_msg_code(reason.into());
                packet.set_next_hop_mtu(0);
                invoking
            }
        };
        packet.data_mut()[..data.len()].copy_from_slice(data);
        packet.fill_checksum();
    }
}

/// The invoking packet quoted by an ICMP error, as far as it is quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvokingPacket<'a> {
    /// The quoted IPv4 header (its `payload_len` is the original one, larger
    /// than what is quoted).
    pub header: ipv4::Ipv4Repr,
    /// The quoted start of the payload (usually 8 bytes: TCP/UDP ports, TCP
    /// sequence number).
    pub payload: &'a [u8],
}

impl InvokingPacket<'_> {
    /// Source and destination ports of a quoted TCP or UDP packet, if quoted.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.header.protocol {
            IpProtocol::Tcp | IpProtocol::Udp if self.payload.len() >= 4 => {
                Some((read_u16(self.payload, 0), read_u16(self.payload, 2)))
            }
            _ => None,
        }
    }

    /// Source address of the quoted packet (the flow's sender).
    pub fn src_addr(&self) -> Ipv4Addr {
        self.header.src_addr
    }

    /// Destination address of the quoted packet.
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.header.dst_addr
    }
}

/// Reads the invoking packet an ICMP error quotes. Unlike
/// [`Ipv4Packet::new_checked`], the total length may exceed what is quoted;
/// the header itself (options included) must be complete and well-formed.
pub fn parse_invoking(invoking: &[u8]) -> Result<InvokingPacket<'_>> {
    let packet = Ipv4Packet::new_unchecked(invoking);
    if invoking.len() < ipv4::field::HEADER_LEN {
        return Err(Error::Truncated);
    }
    if packet.version() != 4 {
        return Err(Error::BadVersion);
    }
    let header_len = packet.header_len();
    if header_len < ipv4::field::HEADER_LEN || header_len > packet.total_len() as usize {
        return Err(Error::BadHeaderLength);
    }
    if header_len > invoking.len() {
        return Err(Error::Truncated);
    }
    packet.check_options()?;
    let end = invoking.len().min(packet.total_len() as usize);
    Ok(InvokingPacket {
        header: ipv4::Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.total_len() as usize - header_len,
            ttl: packet.ttl(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            dscp_ecn: packet.dscp_ecn(),
        },
        payload: &invoking[header_len..end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 64-byte ICMP part of `ping -c1 8.8.8.8` from Linux iputils:
    /// ident 0x0b1c, seq 1, 8-byte timestamp then the 0x10..0x37 pattern.
    /// Checksum 0x657f computed independently of this crate.
    fn linux_ping() -> [u8; 64] {
        let mut msg = [0u8; 64];
        msg[..16].copy_from_slice(&[
            0x08, 0x00, 0x65, 0x7f, 0x0b, 0x1c, 0x00, 0x01, 0x5c, 0x3a, 0x7f, 0x65, 0x00, 0x00,
            0x00, 0x00,
        ]);
        for (i, b) in msg[16..].iter_mut().enumerate() {
            *b = 0x10 + i as u8;
        }
        msg
    }

    #[test]
    fn echo_request_parses_and_reemits() {
        let msg = linux_ping();
        let packet = Icmpv4Packet::new_checked(&msg[..]).expect("valid");
        assert_eq!(packet.msg_type(), Icmpv4Message::EchoRequest);
        assert_eq!(packet.checksum(), 0x657f);
        assert!(packet.verify_checksum());
        let repr = Icmpv4Repr::parse(&packet).expect("echo");
        assert_eq!(
            repr,
            Icmpv4Repr::EchoRequest {
                ident: 0x0b1c,
                seq_no: 1,
                data: &msg[8..]
            }
        );
        let mut out = [0u8; 64];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, msg);

        // The reply differs only in the type byte and checksum.
        let Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = repr
        else {
            unreachable!()
        };
        let reply = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        reply.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..4], &[0x00, 0x00, 0x6d, 0x7f]);
        assert!(Icmpv4Packet::new_unchecked(&out[..]).verify_checksum());
    }

    #[test]
    fn frag_needed_quotes_the_tcp_flow() {
        // Router says: MTU 1400 for a 1500-byte DF segment 198.18.0.10:443 -> 198.18.1.5:51234.
        let mut invoking = [0u8; 28];
        invoking[..20].copy_from_slice(&[
            0x45, 0x00, 0x05, 0xdc, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x06, 0x00, 0x00, 198, 18, 0, 10,
            198, 18, 1, 5,
        ]);
        invoking[20..].copy_from_slice(&[0x01, 0xbb, 0xc8, 0x22, 0xde, 0xad, 0xbe, 0xef]);
        let repr = Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::FragRequired,
            next_hop_mtu: 1400,
            invoking: &invoking,
        };
        assert_eq!(repr.buffer_len(), 36);
        let mut buf = [0u8; 36];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..2], &[3, 4]);
        assert_eq!(&buf[4..8], &[0, 0, 0x05, 0x78]);
        let packet = Icmpv4Packet::new_checked(&buf[..]).expect("valid");
        assert!(packet.verify_checksum());
        assert_eq!(Icmpv4Repr::parse(&packet), Ok(repr));

        let quoted = parse_invoking(packet.data()).expect("quoted header");
        assert_eq!(quoted.header.protocol, IpProtocol::Tcp);
        assert_eq!(quoted.header.payload_len, 1480);
        assert!(quoted.header.dont_frag);
        assert_eq!(quoted.src_addr(), Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(quoted.dst_addr(), Ipv4Addr::new(198, 18, 1, 5));
        assert_eq!(quoted.ports(), Some((443, 51234)));
        assert_eq!(quoted.payload.len(), 8);
        assert_eq!(
            parse_invoking(&invoking[..19]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn time_exceeded_and_unsupported() {
        let invoking = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 1, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let repr = Icmpv4Repr::TimeExceeded {
            reason: Icmpv4TimeExceeded::TtlExpired,
            invoking: &invoking,
        };
        let mut buf = [0u8; 28];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..2], &[11, 0]);
        let packet = Icmpv4Packet::new_checked(&buf[..]).expect("valid");
        assert_eq!(Icmpv4Repr::parse(&packet), Ok(repr));
        assert_eq!(parse_invoking(packet.data()).map(|q| q.ports()), Ok(None));

        let redirect = [5u8, 1, 0, 0, 192, 0, 2, 1];
        let packet = Icmpv4Packet::new_checked(&redirect[..]).expect("valid header");
        assert_eq!(Icmpv4Repr::parse(&packet), Err(Error::Unsupported));
        assert_eq!(
            Icmpv4Packet::new_checked(&redirect[..7]).err(),
            Some(Error::Truncated)
        );
    }
}
