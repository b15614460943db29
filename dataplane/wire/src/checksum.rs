//! The Internet checksum (RFC 1071): full computation over byte slices, the
//! IPv4 pseudo-header, and RFC 1624 incremental updates for rewritten fields.
//!
//! Vocabulary used throughout:
//!
//! - a *sum* is the 16-bit ones-complement sum of big-endian words (what
//!   [`data`], [`combine`] and [`pseudo_header`] return). It is never
//!   complemented.
//! - a *checksum* is the value stored in a header: the complement of the sum
//!   computed with the checksum field set to zero, i.e. `!combine(&[...])`.
//! - a header *verifies* when the sum over it, checksum field included, is
//!   `0xFFFF` ("negative zero").
//!
//! Corner cases of 0x0000 / 0xFFFF:
//!
//! - With end-around carry, a sum over data that is not all zero is never
//!   `0x0000`; therefore a correctly computed checksum is never `0xFFFF`, but it
//!   can legitimately be `0x0000` (when the sum is `0xFFFF`).
//! - The incremental updates use RFC 1624 equation 3, `HC' = ~(~HC + ~m + m')`,
//!   which, unlike equation 2, yields exactly what a full recomputation yields
//!   (including `0x0000`), for any checksum that was itself computed correctly.
//! - UDP reserves a transmitted checksum of `0x0000` for "no checksum", so a
//!   computed `0x0000` is sent as `0xFFFF` (the same value in ones complement).
//!   When updating a UDP checksum incrementally: leave a field of `0x0000`
//!   alone (the sender did not checksum), otherwise pass the result through
//!   [`udp_encode`]. Feeding `0xFFFF` back into an update is correct.
//! - A field that starts at an odd offset of the checksummed region
//!   contributes its bytes swapped; [`update_bytes`] takes the offset for that
//!   reason (TCP options need not be 16-bit aligned).
//!
//! This module only does arithmetic; it knows nothing of header layouts.

use core::net::Ipv4Addr;

/// Unfolded sum of the big-endian 16-bit words of `data` (an odd trailing
/// byte is padded with zero). Fold it with [`fold`]; adding unfolded sums of
/// pieces that each start at an even offset is the same as summing the whole.
pub fn sum(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        // 2^16 = 1 (mod 0xFFFF): a big-endian u32 counts as the sum of its halves.
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds an unfolded sum to 16 bits with end-around carry. Only an input of 0
/// folds to 0; any other multiple of 0xFFFF folds to 0xFFFF.
pub const fn fold(mut sum: u64) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// 16-bit ones-complement sum of `data` (not complemented).
pub fn data(data: &[u8]) -> u16 {
    fold(sum(data))
}

/// Ones-complement sum of several partial sums (not complemented).
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Sum of the IPv4 pseudo-header for TCP/UDP: source, destination, protocol
/// number (`IpProtocol::Tcp.into()`) and the length of the TCP/UDP header
/// plus payload. Takes the number, not `ipv4::IpProtocol`, so that this
/// module imports no packet format (they all import it).
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.to_bits();
    let d = dst.to_bits();
    fold(
        u64::from(s >> 16)
            + u64::from(s & 0xFFFF)
            + u64::from(d >> 16)
            + u64::from(d & 0xFFFF)
            + u64::from(protocol)
            + u64::from(length),
    )
}

/// Maps a computed UDP checksum of `0x0000` to `0xFFFF` (RFC 768: zero means
/// "no checksum" on the wire). Other values pass through.
pub const fn udp_encode(checksum: u16) -> u16 {
    if checksum == 0 {
        0xFFFF
    } else {
        checksum
    }
}

/// RFC 1624 eqn 3: the checksum after one 16-bit word of the covered data
/// changes from `old` to `new`. `checksum` is the value stored in the header.
pub const fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !fold((!checksum) as u64 + (!old) as u64 + new as u64)
}

/// The checksum after a 16-bit-aligned 32-bit field (sequence number,
/// timestamp, ...) changes from `old` to `new`.
pub const fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    !fold(
        (!checksum) as u64
            + (!(old >> 16) & 0xFFFF) as u64
            + (!old & 0xFFFF) as u64
            + (new >> 16) as u64
            + (new & 0xFFFF) as u64,
    )
}

/// The checksum after an IPv4 address in the covered data (IPv4 header, or the
/// TCP/UDP pseudo-header) changes from `old` to `new`.
pub const fn update_addr(checksum: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update_u32(checksum, old.to_bits(), new.to_bits())
}

/// The checksum after the bytes at `offset` (counted from the start of the
/// checksummed region; only its parity matters) change from `old` to `new`.
/// Handles odd offsets and odd lengths. `old` and `new` must have the same
/// length; extra bytes of the longer one are ignored.
pub fn update_bytes(checksum: u16, offset: usize, old: &[u8], new: &[u8]) -> u16 {
    let n = old.len().min(new.len());
    let old_sum = fold(sum_at(offset, &old[..n]));
    let new_sum = fold(sum_at(offset, &new[..n]));
    update_u16(checksum, old_sum, new_sum)
}

/// Unfolded sum of `bytes` as they contribute to a region in which they start
/// at `offset`.
fn sum_at(offset: usize, bytes: &[u8]) -> u64 {
    if offset & 1 == 0 {
        sum(bytes)
    } else {
        bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if i % 2 == 0 {
                    u64::from(b)
                } else {
                    u64::from(b) << 8
                }
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 §3 example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
        assert_eq!(data(&bytes[..7]), fold(0x0001 + 0xf203 + 0xf4f5 + 0xf600));
    }

    #[test]
    fn fold_corner_cases() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xFFFF), 0xFFFF);
        assert_eq!(fold(0x1FFFE), 0xFFFF);
        assert_eq!(fold(0x10000), 1);
        assert_eq!(combine(&[0xFFFF, 0x0001]), 0x0001);
        assert_eq!(combine(&[]), 0);
    }

    /// RFC 1624 §4 example: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285 gives 0x0000.
    #[test]
    fn rfc1624_example_yields_zero_not_ffff() {
        assert_eq!(update_u16(0xDD2F, 0x5555, 0x3285), 0x0000);
        // And back again.
        assert_eq!(update_u16(0x0000, 0x3285, 0x5555), 0xDD2F);
    }

    #[test]
    fn udp_zero_is_sent_as_ffff() {
        assert_eq!(udp_encode(0), 0xFFFF);
        assert_eq!(udp_encode(0x1234), 0x1234);
    }

    #[test]
    fn update_bytes_matches_recomputation_at_odd_offsets() {
        let mut buf = [0x45u8, 0x00, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde];
        let before = !data(&buf);
        let old = [buf[3], buf[4], buf[5]];
        let new = [0xaa, 0xbb, 0xcc];
        buf[3..6].copy_from_slice(&new);
        assert_eq!(update_bytes(before, 3, &old, &new), !data(&buf));
    }

    #[test]
    fn pseudo_header_matches_byte_layout() {
        let src = Ipv4Addr::new(192, 0, 2, 1);
        let dst = Ipv4Addr::new(198, 51, 100, 7);
        let bytes = [192, 0, 2, 1, 198, 51, 100, 7, 0, 6, 0x05, 0xdc];
        assert_eq!(
            pseudo_header(src, dst, crate::IpProtocol::Tcp.into(), 1500),
            data(&bytes)
        );
        assert_eq!(
            update_addr(0x1234, src, dst),
            update_u32(0x1234, 0xc000_0201, 0xc633_6407)
        );
    }
}
