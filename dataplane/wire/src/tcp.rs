//! TCP segments (RFC 9293) over IPv4: the view with its option TLVs, the
//! in-place option mutators the splice path needs (MSS clamping, timestamp
//! offsetting, SACK-block translation), wrapping sequence-number arithmetic,
//! and the parsed representation.
//!
//! None of the mutators here touch the checksum: updating it is the caller's
//! job, incrementally with [`crate::checksum`] (`update_u16`, `update_u32`, and
//! `update_bytes` for options, which need not be 16-bit aligned: take the
//! offset from [`TcpPacket::option_offset`]) or in full with
//! [`TcpPacket::fill_checksum`].

use core::fmt;
use core::net::Ipv4Addr;
use core::ops::{BitOr, BitOrAssign};

use crate::checksum;
use crate::ipv4::IpProtocol;
use crate::{read_u16, read_u32, write_u16, write_u32, Error, Result};

/// Byte offsets of the TCP header fields.
pub mod field {
    use core::ops::Range;

    /// Source port.
    pub const SRC_PORT: Range<usize> = 0..2;
    /// Destination port.
    pub const DST_PORT: Range<usize> = 2..4;
    /// Sequence number.
    pub const SEQ_NUM: Range<usize> = 4..8;
    /// Acknowledgement number.
    pub const ACK_NUM: Range<usize> = 8..12;
    /// Data offset (high nibble, 32-bit words), reserved bits and NS.
    pub const DATA_OFFSET: usize = 12;
    /// Flags (CWR ECE URG ACK PSH RST SYN FIN).
    pub const FLAGS: usize = 13;
    /// Window.
    pub const WIN_SIZE: Range<usize> = 14..16;
    /// Checksum.
    pub const CHECKSUM: Range<usize> = 16..18;
    /// Urgent pointer.
    pub const URGENT: Range<usize> = 18..20;
    /// Length of a header without options.
    pub const HEADER_LEN: usize = 20;
    /// Longest header (data offset 15).
    pub const MAX_HEADER_LEN: usize = 60;
    /// Most option bytes a header can carry.
    pub const MAX_OPTIONS_LEN: usize = 40;
}

/// TCP option kinds.
pub mod option_kind {
    /// End of option list.
    pub const END: u8 = 0;
    /// No operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size (length 4).
    pub const MSS: u8 = 2;
    /// Window scale (length 3).
    pub const WINDOW_SCALE: u8 = 3;
    /// SACK permitted (length 2).
    pub const SACK_PERMITTED: u8 = 4;
    /// SACK blocks (length 2 + 8n, n = 1..=4).
    pub const SACK: u8 = 5;
    /// Timestamps (length 10).
    pub const TIMESTAMPS: u8 = 8;
}

/// A TCP sequence (or acknowledgement) number with modulo-2^32 comparison
/// (RFC 1982 serial-number arithmetic): `a < b` when `b - a`, as an `i32`, is
/// positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// `self + n` modulo 2^32.
    #[must_use]
    pub const fn wrapping_add(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }

    /// `self - n` modulo 2^32.
    #[must_use]
    pub const fn wrapping_sub(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(n))
    }

    /// `self + delta` modulo 2^32 (delta may be negative), e.g. applying a
    /// splice offset between a cookie ISN and a kernel ISN.
    #[must_use]
    pub const fn offset(self, delta: i32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add_signed(delta))
    }

    /// The signed distance `self - other`, exact while the two are less than
    /// 2^31 apart.
    #[allow(clippy::cast_possible_wrap)] // the wrap is the serial-number arithmetic
    pub const fn distance(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// Whether `self` comes before `other`.
    pub const fn lt(self, other: SeqNumber) -> bool {
        self.distance(other) < 0
    }

    /// Whether `self` comes before or is `other`.
    pub const fn le(self, other: SeqNumber) -> bool {
        self.distance(other) <= 0
    }

    /// Whether `self` comes after `other`.
    pub const fn gt(self, other: SeqNumber) -> bool {
        self.distance(other) > 0
    }

    /// Whether `self` comes after or is `other`.
    pub const fn ge(self, other: SeqNumber) -> bool {
        self.distance(other) >= 0
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The eight TCP control bits as a bitset (the flags byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No flags.
    pub const EMPTY: TcpFlags = TcpFlags(0);
    /// FIN: no more data from the sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN: synchronise sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST: reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH: push.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK: the acknowledgement number is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// URG: the urgent pointer is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECE: ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// CWR: congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// The flags byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Both sets of flags.
    #[must_use]
    pub const fn union(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | other.0)
    }

    /// `self` without the flags of `other`.
    #[must_use]
    pub const fn without(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & !other.0)
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;

    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        self.union(rhs)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        *self = self.union(rhs);
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpOption<'a> {
    /// End of option list (kind 0); what follows is padding.
    EndOfList,
    /// No operation (kind 1), used for alignment.
    NoOperation,
    /// Maximum segment size (kind 2).
    MaxSegmentSize(u16),
    /// Window scale shift count (kind 3).
    WindowScale(u8),
    /// SACK permitted (kind 4).
    SackPermitted,
    /// Up to four SACK blocks `(left edge, right edge)` (kind 5).
    SackRange([Option<(u32, u32)>; 4]),
    /// Timestamps (kind 8).
    Timestamps {
        /// Timestamp value of the sender.
        tsval: u32,
        /// Timestamp echo reply.
        tsecr: u32,
    },
    /// Any other kind, with the bytes after its length byte.
    Unknown {
        /// Option kind.
        kind: u8,
        /// Option data (without kind and length).
        data: &'a [u8],
    },
}

impl<'a> TcpOption<'a> {
    /// Parses the option at the start of `buffer` (which must not be empty),
    /// returning the bytes after it and the option. Length 0 or 1, a length
    /// running past `buffer`, or the wrong length for a fixed-size option is
    /// [`Error::BadOption`].
    pub fn parse(buffer: &'a [u8]) -> Result<(&'a [u8], TcpOption<'a>)> {
        let (&kind, after_kind) = buffer.split_first().ok_or(Error::Truncated)?;
        match kind {
            option_kind::END => return Ok((after_kind, TcpOption::EndOfList)),
            option_kind::NOP => return Ok((after_kind, TcpOption::NoOperation)),
            _ => {}
        }
        let len = *after_kind.first().ok_or(Error::BadOption)? as usize;
        if len < 2 || len > buffer.len() {
            return Err(Error::BadOption);
        }
        let data = &buffer[2..len];
        let rest = &buffer[len..];
        let option = match (kind, len) {
            (option_kind::MSS, 4) => TcpOption::MaxSegmentSize(read_u16(data, 0)),
            (option_kind::WINDOW_SCALE, 3) => TcpOption::WindowScale(data[0]),
            (option_kind::SACK_PERMITTED, 2) => TcpOption::SackPermitted,
            (option_kind::TIMESTAMPS, 10) => TcpOption::Timestamps {
                tsval: read_u32(data, 0),
                tsecr: read_u32(data, 4),
            },
            (option_kind::SACK, 10 | 18 | 26 | 34) => TcpOption::SackRange(sack_blocks(data)),
            (
                option_kind::MSS
                | option_kind::WINDOW_SCALE
                | option_kind::SACK_PERMITTED
                | option_kind::TIMESTAMPS
                | option_kind::SACK,
                _,
            ) => return Err(Error::BadOption),
            _ => TcpOption::Unknown { kind, data },
        };
        Ok((rest, option))
    }

    /// Number of bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::SackRange(blocks) => 2 + 8 * blocks.iter().flatten().count(),
            TcpOption::Timestamps { .. } => 10,
            TcpOption::Unknown { data, .. } => 2 + data.len(),
        }
    }

    /// Writes the option at the start of `buffer` and returns the bytes after
    /// it. `buffer` must be at least `buffer_len()` long; SACK blocks that are
    /// `None` are skipped.
    pub fn emit<'b>(&self, buffer: &'b mut [u8]) -> &'b mut [u8] {
        let len = self.buffer_len();
        let (out, rest) = buffer.split_at_mut(len);
        match *self {
            TcpOption::EndOfList => out[0] = option_kind::END,
            TcpOption::NoOperation => out[0] = option_kind::NOP,
            TcpOption::MaxSegmentSize(mss) => {
                out[..2].copy_from_slice(&[option_kind::MSS, 4]);
                write_u16(out, 2, mss);
            }
            TcpOption::WindowScale(shift) => {
                out.copy_from_slice(&[option_kind::WINDOW_SCALE, 3, shift]);
            }
            TcpOption::SackPermitted => out.copy_from_slice(&[option_kind::SACK_PERMITTED, 2]),
            TcpOption::SackRange(blocks) => {
                out[..2].copy_from_slice(&[option_kind::SACK, len as u8]);
                for (i, (left, right)) in blocks.iter().flatten().enumerate() {
                    write_u32(out, 2 + 8 * i, *left);
                    write_u32(out, 6 + 8 * i, *right);
                }
            }
            TcpOption::Timestamps { tsval, tsecr } => {
                out[..2].copy_from_slice(&[option_kind::TIMESTAMPS, 10]);
                write_u32(out, 2, tsval);
                write_u32(out, 6, tsecr);
            }
            TcpOption::Unknown { kind, data } => {
                out[0] = kind;
                out[1] = len as u8;
                out[2..].copy_from_slice(data);
            }
        }
        rest
    }
}

/// SACK blocks from the data of a SACK option (a multiple of 8 bytes, at most 32).
fn sack_blocks(data: &[u8]) -> [Option<(u32, u32)>; 4] {
    let mut blocks = [None; 4];
    for (slot, chunk) in blocks.iter_mut().zip(data.chunks_exact(8)) {
        *slot = Some((read_u32(chunk, 0), read_u32(chunk, 4)));
    }
    blocks
}

/// Iterator over the options of a segment; see [`TcpPacket::options_iter`].
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    /// Iterates over the options in `bytes` (an options area).
    pub fn new(bytes: &'a [u8]) -> Self {
        TcpOptions { rest: bytes }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>>;

    /// Yields options up to and including end-of-list; yields an error once and
    /// then stops.
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match TcpOption::parse(self.rest) {
            Ok((rest, option)) => {
                self.rest = if option == TcpOption::EndOfList {
                    &[]
                } else {
                    rest
                };
                Some(Ok(option))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Walks the options area `opts` (which starts at header offset 20) and
/// returns `(offset of the kind byte from the header start, option length)` of
/// the first option of `kind`. Stops at end-of-list or at a malformed option.
fn find_option(opts: &[u8], kind: u8) -> Option<(usize, usize)> {
    let mut at = 0;
    while at < opts.len() {
        let k = opts[at];
        match k {
            option_kind::END => return None,
            option_kind::NOP => at += 1,
            _ => {
                let len = *opts.get(at + 1)? as usize;
                if len < 2 || at + len > opts.len() {
                    return None;
                }
                if k == kind {
                    return Some((field::HEADER_LEN + at, len));
                }
                at += len;
            }
        }
    }
    None
}

/// A zero-copy view of a TCP segment. The buffer is the whole segment (the
/// IPv4 payload), so the payload runs to the end of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` without checking anything; getters may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after checking: at least 20 bytes ([`Error::Truncated`]),
    /// data offset >= 5 and within the buffer ([`Error::BadDataOffset`]), and
    /// every option well-formed ([`Error::BadOption`], see [`TcpOption::parse`]).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`TcpPacket::new_checked`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < field::HEADER_LEN || header_len > len {
            return Err(Error::BadDataOffset);
        }
        // The layouts nearly every segment of an established connection
        // has (no options; NOP, NOP, timestamps: Linux, BSD): well-formed
        // by construction, no walk needed.
        let b = self.buffer.as_ref();
        if header_len == field::HEADER_LEN
            || (header_len == field::HEADER_LEN + 12
                && b[field::HEADER_LEN..field::HEADER_LEN + 4] == [1, 1, 8, 10])
        {
            return Ok(());
        }
        for option in self.options_iter() {
            option?;
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    /// Acknowledgement number (meaningful when ACK is set).
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[field::DATA_OFFSET] >> 4) as usize * 4
    }

    /// The raw flags byte.
    pub fn flags_byte(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The flags as a bitset.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.flags_byte())
    }

    /// FIN flag.
    pub fn fin(&self) -> bool {
        self.flags().contains(TcpFlags::FIN)
    }

    /// SYN flag.
    pub fn syn(&self) -> bool {
        self.flags().contains(TcpFlags::SYN)
    }

    /// RST flag.
    pub fn rst(&self) -> bool {
        self.flags().contains(TcpFlags::RST)
    }

    /// PSH flag.
    pub fn psh(&self) -> bool {
        self.flags().contains(TcpFlags::PSH)
    }

    /// ACK flag.
    pub fn ack(&self) -> bool {
        self.flags().contains(TcpFlags::ACK)
    }

    /// URG flag.
    pub fn urg(&self) -> bool {
        self.flags().contains(TcpFlags::URG)
    }

    /// ECE flag.
    pub fn ece(&self) -> bool {
        self.flags().contains(TcpFlags::ECE)
    }

    /// CWR flag.
    pub fn cwr(&self) -> bool {
        self.flags().contains(TcpFlags::CWR)
    }

    /// Window (unscaled).
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// The raw option bytes (padding included).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..self.header_len()]
    }

    /// The options, in order, up to end-of-list.
    pub fn options_iter(&self) -> TcpOptions<'_> {
        TcpOptions::new(self.options())
    }

    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Sequence space the segment occupies: payload length, plus one for SYN
    /// and one for FIN.
    pub fn segment_len(&self) -> usize {
        self.payload().len() + usize::from(self.syn()) + usize::from(self.fin())
    }

    /// Offset from the header start of the kind byte of the first option of
    /// `kind`, for incremental checksum updates of in-place option rewrites.
    pub fn option_offset(&self, kind: u8) -> Option<usize> {
        find_option(self.options(), kind).map(|(at, _)| at)
    }

    fn option_data(&self, kind: u8, len: usize) -> Option<&[u8]> {
        let (at, found_len) = find_option(self.options(), kind)?;
        (found_len == len).then(|| &self.buffer.as_ref()[at + 2..at + len])
    }

    /// The MSS option, if present and well-formed.
    pub fn mss(&self) -> Option<u16> {
        self.option_data(option_kind::MSS, 4)
            .map(|d| read_u16(d, 0))
    }

    /// The window-scale shift count, if present and well-formed.
    pub fn window_scale(&self) -> Option<u8> {
        self.option_data(option_kind::WINDOW_SCALE, 3).map(|d| d[0])
    }

    /// Whether the SACK-permitted option is present.
    pub fn sack_permitted(&self) -> bool {
        self.option_data(option_kind::SACK_PERMITTED, 2).is_some()
    }

    /// The timestamps `(tsval, tsecr)`, if present and well-formed.
    pub fn timestamps(&self) -> Option<(u32, u32)> {
        self.option_data(option_kind::TIMESTAMPS, 10)
            .map(|d| (read_u32(d, 0), read_u32(d, 4)))
    }

    /// The SACK blocks, if a well-formed SACK option is present.
    pub fn sack_ranges(&self) -> [Option<(u32, u32)>; 4] {
        match find_option(self.options(), option_kind::SACK) {
            Some((at, len @ (10 | 18 | 26 | 34))) => {
                sack_blocks(&self.buffer.as_ref()[at + 2..at + len])
            }
            _ => [None; 4],
        }
    }

    /// The sum of the IPv4 pseudo-header and the whole segment; 0xFFFF when
    /// the checksum is right.
    fn sum_with_pseudo_header(&self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) -> u16 {
        let segment = self.buffer.as_ref();
        checksum::combine(&[
            checksum::pseudo_header(
                src_addr,
                dst_addr,
                IpProtocol::Tcp.into(),
                segment.len() as u16,
            ),
            checksum::data(segment),
        ])
    }

    /// Whether the checksum verifies with the IPv4 pseudo-header.
    pub fn verify_checksum(&self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) -> bool {
        self.sum_with_pseudo_header(src_addr, dst_addr) == 0xFFFF
    }
}

impl<'a> TcpPacket<&'a [u8]> {
    /// The payload with the lifetime of the underlying buffer.
    pub fn into_payload(self) -> &'a [u8] {
        let at = self.header_len();
        &self.buffer[at..]
    }
}

impl<'a> TcpPacket<&'a mut [u8]> {
    /// The mutable payload with the lifetime of the underlying buffer.
    pub fn into_payload_mut(self) -> &'a mut [u8] {
        let at = self.header_len();
        &mut self.buffer[at..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, value);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM.start, value);
    }

    /// Sets the acknowledgement number.
    pub fn set_ack_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM.start, value);
    }

    /// Sets the header length in bytes (rounded down to a multiple of 4),
    /// keeping the reserved and NS bits.
    pub fn set_header_len(&mut self, value: usize) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFFSET];
        *b = (*b & 0x0F) | (((value / 4) as u8) << 4);
    }

    /// Sets the raw flags byte.
    pub fn set_flags_byte(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets all flags.
    pub fn set_flags(&mut self, value: TcpFlags) {
        self.set_flags_byte(value.bits());
    }

    fn set_flag(&mut self, flag: TcpFlags, value: bool) {
        let flags = self.flags();
        let flags = if value {
            flags.union(flag)
        } else {
            flags.without(flag)
        };
        self.set_flags(flags);
    }

    /// Sets or clears FIN.
    pub fn set_fin(&mut self, value: bool) {
        self.set_flag(TcpFlags::FIN, value);
    }

    /// Sets or clears SYN.
    pub fn set_syn(&mut self, value: bool) {
        self.set_flag(TcpFlags::SYN, value);
    }

    /// Sets or clears RST.
    pub fn set_rst(&mut self, value: bool) {
        self.set_flag(TcpFlags::RST, value);
    }

    /// Sets or clears PSH.
    pub fn set_psh(&mut self, value: bool) {
        self.set_flag(TcpFlags::PSH, value);
    }

    /// Sets or clears ACK.
    pub fn set_ack(&mut self, value: bool) {
        self.set_flag(TcpFlags::ACK, value);
    }

    /// Sets or clears URG.
    pub fn set_urg(&mut self, value: bool) {
        self.set_flag(TcpFlags::URG, value);
    }

    /// Sets or clears ECE.
    pub fn set_ece(&mut self, value: bool) {
        self.set_flag(TcpFlags::ECE, value);
    }

    /// Sets or clears CWR.
    pub fn set_cwr(&mut self, value: bool) {
        self.set_flag(TcpFlags::CWR, value);
    }

    /// Sets the window.
    pub fn set_window_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE.start, value);
    }

    /// Sets the checksum field as is.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT.start, value);
    }

    /// The mutable option bytes.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::HEADER_LEN..end]
    }

    /// The mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }

    /// Calls `f(offset, kind, data)` for every option other than NOP and
    /// end-of-list, where `offset` is the position of `data` (the bytes after
    /// the length byte) from the header start. Stops at end-of-list or at a
    /// malformed option. Does not update the checksum.
    pub fn for_each_option_mut<F: FnMut(usize, u8, &mut [u8])>(&mut self, mut f: F) {
        let end = self.header_len();
        let buf = self.buffer.as_mut();
        let mut at = field::HEADER_LEN;
        while at < end {
            let kind = buf[at];
            match kind {
                option_kind::END => return,
                option_kind::NOP => at += 1,
                _ => {
                    let Some(&len) = buf.get(at + 1) else { return };
                    let len = len as usize;
                    if len < 2 || at + len > end {
                        return;
                    }
                    f(at + 2, kind, &mut buf[at + 2..at + len]);
                    at += len;
                }
            }
        }
    }

    /// Lowers the MSS option to `max_mss` when it is larger, updating the
    /// checksum incrementally (RFC 1624, also at an odd offset); returns
    /// whether it did. The one MSS clamp of the tree: IP-in-IP redirects
    /// clamp a SYN to what fits in the tunnel, the splice replay to what
    /// the path carries.
    pub fn clamp_mss(&mut self, max_mss: u16) -> bool {
        let mut sum = self.checksum();
        let mut clamped = false;
        self.for_each_option_mut(|at, kind, data| {
            if kind == option_kind::MSS && data.len() == 2 {
                let old = u16::from_be_bytes([data[0], data[1]]);
                if old > max_mss {
                    data.copy_from_slice(&max_mss.to_be_bytes());
                    sum = checksum::update_bytes(sum, at, &old.to_be_bytes(), &data[..]);
                    clamped = true;
                }
            }
        });
        if clamped {
            self.set_checksum(sum);
        }
        clamped
    }

    fn option_data_mut(&mut self, kind: u8, len: usize) -> Option<&mut [u8]> {
        let (at, found_len) = find_option(self.options(), kind)?;
        (found_len == len).then(|| &mut self.buffer.as_mut()[at + 2..at + len])
    }

    /// Rewrites the MSS option in place (e.g. MSS clamping); returns whether
    /// the option was found. Does not update the checksum.
    pub fn set_mss(&mut self, mss: u16) -> bool {
        self.option_data_mut(option_kind::MSS, 4)
            .map(|d| write_u16(d, 0, mss))
            .is_some()
    }

    /// Rewrites the window-scale option in place; returns whether it was
    /// found. Does not update the checksum.
    pub fn set_window_scale(&mut self, shift: u8) -> bool {
        self.option_data_mut(option_kind::WINDOW_SCALE, 3)
            .map(|d| d[0] = shift)
            .is_some()
    }

    /// Rewrites the timestamps option in place; returns whether it was found.
    /// Does not update the checksum.
    pub fn set_timestamps(&mut self, tsval: u32, tsecr: u32) -> bool {
        self.option_data_mut(option_kind::TIMESTAMPS, 10)
            .map(|d| {
                write_u32(d, 0, tsval);
                write_u32(d, 4, tsecr);
            })
            .is_some()
    }

    /// Replaces every SACK block `(left, right)` by `f(left, right)` in place
    /// (e.g. translating sequence numbers across a splice); returns how many
    /// blocks were rewritten. Does not update the checksum.
    pub fn rewrite_sack_ranges<F: FnMut(u32, u32) -> (u32, u32)>(&mut self, mut f: F) -> usize {
        let Some((at, len)) = find_option(self.options(), option_kind::SACK) else {
            return 0;
        };
        if !matches!(len, 10 | 18 | 26 | 34) {
            return 0;
        }
        let data = &mut self.buffer.as_mut()[at + 2..at + len];
        let mut count = 0;
        for block in data.chunks_exact_mut(8) {
            let (left, right) = f(read_u32(block, 0), read_u32(block, 4));
            write_u32(block, 0, left);
            write_u32(block, 4, right);
            count += 1;
        }
        count
    }

    /// Computes and stores the checksum over the whole buffer with the IPv4
    /// pseudo-header.
    pub fn fill_checksum(&mut self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) {
        self.set_checksum(0);
        let sum = self.sum_with_pseudo_header(src_addr, dst_addr);
        self.set_checksum(!sum);
    }
}

/// Up to 40 option bytes kept verbatim (unknown TCP options, in order).
/// Bytes past `len` are always zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpOptionBytes {
    bytes: [u8; field::MAX_OPTIONS_LEN],
    len: u8,
}

impl TcpOptionBytes {
    /// No bytes.
    pub const EMPTY: TcpOptionBytes = TcpOptionBytes {
        bytes: [0; field::MAX_OPTIONS_LEN],
        len: 0,
    };

    /// A copy of `bytes`, or `None` if they exceed 40 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<TcpOptionBytes> {
        let mut out = Self::EMPTY;
        out.extend(bytes).then_some(out)
    }

    /// Appends `bytes` if they fit in the 40-byte space; returns whether they did.
    pub fn extend(&mut self, bytes: &[u8]) -> bool {
        let start = self.len as usize;
        let Some(dst) = self.bytes.get_mut(start..start + bytes.len()) else {
            return false;
        };
        dst.copy_from_slice(bytes);
        self.len += bytes.len() as u8;
        true
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for TcpOptionBytes {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// A parsed TCP header.
///
/// Options: the known ones (MSS, window scale, SACK-permitted, SACK blocks,
/// timestamps) are parsed into fields, which are the single source of truth
/// for them; every other option is kept byte for byte, in order, in
/// `unknown_options`. NOP and end-of-list padding is not kept. `emit` writes
/// the known options in the order and alignment Linux uses (MSS;
/// SACK-permitted and timestamps, or NOP NOP timestamps; NOP NOP
/// SACK-permitted; NOP window scale; NOP NOP SACK blocks), then the unknown options verbatim, then
/// end-of-list padding to a 4-byte multiple. So a segment Linux sent
/// re-emits byte for byte, and changing a field changes what is emitted.
/// If everything does not fit in 40 bytes, `emit` drops the SACK blocks that
/// do not fit (as Linux does) and then unknown options that do not fit.
///
/// `ack_number` is `Some` exactly when the ACK flag is set; `emit` sets the ACK
/// flag from `ack_number` (whatever `flags` says) and writes 0 as the
/// acknowledgement number when it is `None`. The reserved/NS bits are written
/// as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgement number, when ACK is set.
    pub ack_number: Option<u32>,
    /// All control flags (ACK included, but see the type's documentation).
    pub flags: TcpFlags,
    /// Window (unscaled).
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// MSS option.
    pub mss: Option<u16>,
    /// Window-scale option.
    pub window_scale: Option<u8>,
    /// SACK-permitted option.
    pub sack_permitted: bool,
    /// SACK blocks, in order; `None` entries are skipped by `emit`.
    pub sack_ranges: [Option<(u32, u32)>; 4],
    /// Timestamps option `(tsval, tsecr)`.
    pub timestamps: Option<(u32, u32)>,
    /// Options of other kinds, verbatim (kind, length and data of each).
    pub unknown_options: TcpOptionBytes,
}

impl TcpRepr {
    /// Parses a segment's header after checking its lengths and options. The
    /// checksum is not verified (see [`TcpPacket::verify_checksum`]). If a
    /// known option kind appears twice, the first one wins (as for the view's
    /// getters, e.g. [`TcpPacket::mss`]) and the duplicate is not kept.
    pub fn parse<T: AsRef<[u8]>>(packet: &TcpPacket<T>) -> Result<TcpRepr> {
        packet.check_len()?;
        let mut repr = TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack().then(|| packet.ack_number()),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent: packet.urgent_at(),
            mss: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [None; 4],
            timestamps: None,
            unknown_options: TcpOptionBytes::EMPTY,
        };
        let mut rest = packet.options();
        while !rest.is_empty() {
            let (next, option) = TcpOption::parse(rest)?;
            match option {
                TcpOption::EndOfList => break,
                TcpOption::NoOperation => {}
                TcpOption::MaxSegmentSize(mss) => {
                    repr.mss.get_or_insert(mss);
                }
                TcpOption::WindowScale(shift) => {
                    repr.window_scale.get_or_insert(shift);
                }
                TcpOption::SackPermitted => repr.sack_permitted = true,
                TcpOption::SackRange(blocks) => {
                    if repr.sack_ranges == [None; 4] {
                        repr.sack_ranges = blocks;
                    }
                }
                TcpOption::Timestamps { tsval, tsecr } => {
                    repr.timestamps.get_or_insert((tsval, tsecr));
                }
                TcpOption::Unknown { .. } => {
                    // The option bytes are a sub-slice of at most 40 bytes: they fit.
                    let taken = rest.len() - next.len();
                    repr.unknown_options.extend(&rest[..taken]);
                }
            }
            rest = next;
        }
        Ok(repr)
    }

    /// The options area `emit` writes and its length (a multiple of 4, <= 40).
    fn options_image(&self) -> ([u8; field::MAX_OPTIONS_LEN], usize) {
        let mut buf = [0u8; field::MAX_OPTIONS_LEN];
        let mut at = 0;
        let nop = option_kind::NOP;
        if let Some(mss) = self.mss {
            TcpOption::MaxSegmentSize(mss).emit(&mut buf[at..]);
            at += 4;
        }
        if let Some((tsval, tsecr)) = self.timestamps {
            if self.sack_permitted {
                TcpOption::SackPermitted.emit(&mut buf[at..]);
            } else {
                buf[at..at + 2].copy_from_slice(&[nop, nop]);
            }
            TcpOption::Timestamps { tsval, tsecr }.emit(&mut buf[at + 2..]);
            at += 12;
        } else if self.sack_permitted {
            buf[at..at + 2].copy_from_slice(&[nop, nop]);
            TcpOption::SackPermitted.emit(&mut buf[at + 2..]);
            at += 4;
        }
        if let Some(shift) = self.window_scale {
            buf[at] = nop;
            TcpOption::WindowScale(shift).emit(&mut buf[at + 1..]);
            at += 4;
        }
        let blocks = self.sack_ranges.iter().flatten().count();
        let fit = blocks.min((field::MAX_OPTIONS_LEN - at).saturating_sub(4) / 8);
        if fit > 0 {
            let mut kept = [None; 4];
            for (slot, block) in kept.iter_mut().zip(self.sack_ranges.iter().flatten()) {
                *slot = Some(*block);
            }
            for slot in kept.iter_mut().skip(fit) {
                *slot = None;
            }
            buf[at..at + 2].copy_from_slice(&[nop, nop]);
            TcpOption::SackRange(kept).emit(&mut buf[at + 2..]);
            at += 4 + 8 * fit;
        }
        let mut unknown = self.unknown_options.as_slice();
        while let Ok((next, option)) = TcpOption::parse(unknown) {
            let len = unknown.len() - next.len();
            if at + len <= field::MAX_OPTIONS_LEN {
                buf[at..at + len].copy_from_slice(&unknown[..len]);
                at += len;
            }
            if option == TcpOption::EndOfList {
                break;
            }
            unknown = next;
        }
        // End-of-list padding: `buf` is already zero past `at`.
        (buf, at.div_ceil(4) * 4)
    }

    /// Length of the options area `emit` writes (a multiple of 4).
    pub fn options_len(&self) -> usize {
        self.options_image().1
    }

    /// Header length `emit` writes: 20 plus the options.
    pub fn header_len(&self) -> usize {
        field::HEADER_LEN + self.options_len()
    }

    /// Length of a segment with `payload_len` bytes of payload.
    pub fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    /// Writes the header and options with a zero checksum, for a payload that
    /// is already in place (or written later). The buffer must be at least
    /// `header_len()` long.
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut TcpPacket<T>) {
        let (options, options_len) = self.options_image();
        let mut flags = self.flags.without(TcpFlags::ACK);
        if self.ack_number.is_some() {
            flags |= TcpFlags::ACK;
        }
        let b = packet.buffer.as_mut();
        write_u16(b, field::SRC_PORT.start, self.src_port);
        write_u16(b, field::DST_PORT.start, self.dst_port);
        write_u32(b, field::SEQ_NUM.start, self.seq_number);
        write_u32(b, field::ACK_NUM.start, self.ack_number.unwrap_or(0));
        b[field::DATA_OFFSET] = (((field::HEADER_LEN + options_len) / 4) as u8) << 4;
        b[field::FLAGS] = flags.bits();
        write_u16(b, field::WIN_SIZE.start, self.window_len);
        write_u16(b, field::CHECKSUM.start, 0);
        write_u16(b, field::URGENT.start, self.urgent);
        b[field::HEADER_LEN..field::HEADER_LEN + options_len]
            .copy_from_slice(&options[..options_len]);
    }

    /// Writes header, options and `payload`, and fills the checksum. The
    /// buffer must be exactly `buffer_len(payload.len())` long (the checksum
    /// covers the whole buffer).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src_addr: Ipv4Addr,
        dst_addr: Ipv4Addr,
        payload: &[u8],
    ) {
        self.emit_header(packet);
        packet.payload_mut()[..payload.len()].copy_from_slice(payload);
        packet.fill_checksum(src_addr, dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 100);
    const SERVER: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

    /// A SYN as Linux 6.x sends it (`curl http://93.184.216.34/`): window
    /// 64240, options MSS 1460, SACK-permitted, timestamps, NOP, window scale
    /// 7. Checksum 0x6a1a computed independently of this crate.
    pub(crate) const LINUX_SYN: [u8; 40] = [
        0xc8, 0x22, 0x00, 0x50, 0x7a, 0x3b, 0x9c, 0x01, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0x6a, 0x1a, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x9f, 0x3c,
        0x6d, 0x21, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn linux_syn_fields_options_and_checksum() {
        let packet = TcpPacket::new_checked(&LINUX_SYN[..]).expect("valid SYN");
        assert_eq!(packet.src_port(), 51234);
        assert_eq!(packet.dst_port(), 80);
        assert_eq!(packet.seq_number(), 0x7a3b_9c01);
        assert_eq!(packet.header_len(), 40);
        assert_eq!(packet.flags(), TcpFlags::SYN);
        assert!(packet.syn() && !packet.ack() && !packet.fin());
        assert_eq!(packet.window_len(), 64240);
        assert_eq!(packet.checksum(), 0x6a1a);
        assert!(packet.verify_checksum(CLIENT, SERVER));
        assert!(!packet.verify_checksum(SERVER, SERVER));
        assert_eq!(packet.segment_len(), 1);
        let options: std::vec::Vec<_> = packet.options_iter().collect();
        assert_eq!(
            options,
            [
                Ok(TcpOption::MaxSegmentSize(1460)),
                Ok(TcpOption::SackPermitted),
                Ok(TcpOption::Timestamps {
                    tsval: 0x9f3c_6d21,
                    tsecr: 0
                }),
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::WindowScale(7)),
            ]
        );
        assert_eq!(packet.mss(), Some(1460));
        assert_eq!(packet.window_scale(), Some(7));
        assert!(packet.sack_permitted());
        assert_eq!(packet.timestamps(), Some((0x9f3c_6d21, 0)));
        assert_eq!(packet.option_offset(option_kind::TIMESTAMPS), Some(26));

        let repr = TcpRepr::parse(&packet).expect("parses");
        assert_eq!(repr.ack_number, None);
        assert_eq!(repr.mss, Some(1460));
        assert!(repr.unknown_options.is_empty());
        assert_eq!(repr.header_len(), 40);
        let mut out = [0u8; 40];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut out[..]),
            CLIENT,
            SERVER,
            &[],
        );
        assert_eq!(out, LINUX_SYN);
    }

    #[test]
    fn in_place_option_rewrites_leave_checksum_alone() {
        let mut buf = LINUX_SYN;
        let mut packet = TcpPacket::new_unchecked(&mut buf[..]);
        let before = packet.checksum();
        assert!(packet.set_mss(1400));
        assert!(packet.set_timestamps(1, 2));
        assert!(packet.set_window_scale(9));
        assert_eq!(packet.rewrite_sack_ranges(|l, r| (l, r)), 0);
        assert_eq!(packet.checksum(), before);
        assert_eq!(packet.mss(), Some(1400));
        assert_eq!(packet.timestamps(), Some((1, 2)));
        assert_eq!(packet.window_scale(), Some(9));
        assert!(!packet.verify_checksum(CLIENT, SERVER));
        let mut seen = std::vec::Vec::new();
        packet.for_each_option_mut(|at, kind, data| seen.push((at, kind, data.len())));
        assert_eq!(seen, [(22, 2, 2), (26, 4, 0), (28, 8, 8), (39, 3, 1)]);
    }

    #[test]
    fn unknown_options_are_kept_verbatim() {
        // MSS, then an unknown kind 30 (MPTCP) with 2 data bytes, NOP NOP.
        let mut seg = [0u8; 32];
        seg[..20].copy_from_slice(&LINUX_SYN[..20]);
        seg[12] = 0x80;
        seg[20..32].copy_from_slice(&[2, 4, 5, 0xb4, 30, 4, 0x81, 0x00, 1, 1, 1, 0]);
        let packet = TcpPacket::new_checked(&seg[..]).expect("valid");
        let repr = TcpRepr::parse(&packet).expect("parses");
        assert_eq!(repr.unknown_options.as_slice(), &[30, 4, 0x81, 0x00]);
        let mut out = [0u8; 28];
        repr.emit_header(&mut TcpPacket::new_unchecked(&mut out[..]));
        assert_eq!(&out[20..], &[2, 4, 5, 0xb4, 30, 4, 0x81, 0x00]);
        assert_eq!(out[12], 0x70);
    }

    #[test]
    fn bad_options_and_offsets() {
        let with = |opts: [u8; 4]| {
            let mut seg = [0u8; 24];
            seg[..20].copy_from_slice(&LINUX_SYN[..20]);
            seg[12] = 0x60;
            seg[20..].copy_from_slice(&opts);
            seg
        };
        for opts in [
            [2, 0, 0, 0],
            [2, 1, 0, 0],
            [30, 5, 0, 0],
            [2, 3, 5, 1],
            [1, 1, 1, 8],
        ] {
            let seg = with(opts);
            assert_eq!(
                TcpPacket::new_checked(&seg[..]).err(),
                Some(Error::BadOption),
                "{opts:?}"
            );
        }
        assert!(TcpPacket::new_checked(&with([0, 2, 0, 0])[..]).is_ok());
        let mut seg = with([1, 1, 1, 0]);
        seg[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&seg[..]).err(),
            Some(Error::BadDataOffset)
        );
        seg[12] = 0x70;
        assert_eq!(
            TcpPacket::new_checked(&seg[..]).err(),
            Some(Error::BadDataOffset)
        );
        assert_eq!(
            TcpPacket::new_checked(&seg[..19]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn seq_number_arithmetic_wraps() {
        let a = SeqNumber(0xffff_fff0);
        let b = a.wrapping_add(0x20);
        assert_eq!(b, SeqNumber(0x10));
        assert!(a.lt(b) && a.le(b) && b.gt(a) && b.ge(a) && a.le(a) && !a.lt(a));
        assert_eq!(b.distance(a), 0x20);
        assert_eq!(a.distance(b), -0x20);
        assert_eq!(b.wrapping_sub(0x20), a);
        assert_eq!(b.offset(-0x20), a);
    }

    #[test]
    fn sack_blocks_parse_emit_and_rewrite() {
        // ACK with NOP NOP TS, NOP NOP SACK(2 blocks), as Linux sends it.
        let repr = TcpRepr {
            src_port: 80,
            dst_port: 51234,
            seq_number: 1000,
            ack_number: Some(2000),
            flags: TcpFlags::ACK,
            window_len: 501,
            urgent: 0,
            mss: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [Some((3000, 4000)), Some((5000, 6000)), None, None],
            timestamps: Some((7, 8)),
            unknown_options: TcpOptionBytes::EMPTY,
        };
        assert_eq!(repr.header_len(), 52);
        let mut buf = [0u8; 52];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut buf[..]),
            SERVER,
            CLIENT,
            &[],
        );
        assert_eq!(&buf[20..24], &[1, 1, 8, 10]);
        assert_eq!(&buf[32..36], &[1, 1, 5, 18]);
        let mut packet = TcpPacket::new_checked(&mut buf[..]).expect("valid");
        assert!(packet.verify_checksum(SERVER, CLIENT));
        assert_eq!(TcpRepr::parse(&packet), Ok(repr));
        assert_eq!(packet.rewrite_sack_ranges(|l, r| (l + 1, r + 1)), 2);
        assert_eq!(
            packet.sack_ranges(),
            [Some((3001, 4001)), Some((5001, 6001)), None, None]
        );
    }

    proptest::proptest! {
        /// `check_len`'s shortcut for the common option layouts accepts
        /// exactly what walking every option accepts.
        #[test]
        fn option_shortcut_agrees_with_the_walk(
            words in 0usize..=10,
            opts in proptest::collection::vec(proptest::prelude::any::<u8>(), 40),
            timestamps in proptest::prelude::any::<bool>(),
        ) {
            let mut seg = vec![0u8; 20 + 4 * words];
            seg[12] = u8::try_from(5 + words).unwrap() << 4;
            seg[20..].copy_from_slice(&opts[..4 * words]);
            if timestamps && words == 3 {
                seg[20..24].copy_from_slice(&[1, 1, 8, 10]);
            }
            let packet = TcpPacket::new_unchecked(&seg[..]);
            let walked = packet.options_iter().all(|o| o.is_ok());
            proptest::prop_assert_eq!(packet.check_len().is_ok(), walked);
        }
    }

    #[test]
    fn nop_nop_timestamps_is_accepted_without_a_walk() {
        let mut seg = [0u8; 32];
        seg[12] = 8 << 4;
        seg[20..24].copy_from_slice(&[1, 1, 8, 10]);
        let packet = TcpPacket::new_checked(&seg[..]).expect("timestamps layout");
        assert_eq!(packet.timestamps(), Some((0, 0)));
    }
}
