//! The routed mode's encapsulation: GUE (Generic UDP Encapsulation,
//! draft-ietf-intarea-gue, variant 0) with a private-data field of Shoal's
//! own carrying the connection's *alternate* target, as GitHub's GLB
//! Director carries its second-chance hops.
//!
//! A member that receives a VIP packet from a router (the *receiver*) and
//! is not the connection's target sends it to the target inside
//! IPv4 / UDP ([`PORT`]) / this header / the client's IPv4 packet. The
//! target that holds no flow for a non-SYN packet forwards it once to the
//! alternate (the target under the previous membership), with
//! [`GueRepr::second_chance`] set so that the alternate never forwards it
//! again.
//!
//! Layout (12 bytes, network order):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |0 0|C| Hlen=2  |  Proto = 4    |          Flags = 0            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Private data type = 0x5348   | Next hop idx  |  Hop count    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               Hop 0: the alternate target's IPv4              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 inner IPv4 packet (the client's)              |
//! ```
//!
//! Version 0, C = 0 (a data message), Hlen = 2 words of optional fields
//! (our private data), Proto = 4 (IPv4 inside), no GUE flags. The private
//! data type 0x5348 ("SH") marks Shoal's hop list: `hop count` is 0 (no
//! alternate: hop 0 is 0.0.0.0) or 1; `next hop idx` is 0 on the way to the
//! target and 1 once the packet was forwarded to hop 0 (the second chance
//! taken). Anything else is refused: a packet of a kind this version does
//! not know is never half understood.
//!
//! The outer UDP checksum is 0 (allowed over IPv4, RFC 768; GUE §5.6.1):
//! the inner IPv4 header and TCP/UDP checksums still protect the packet.
//! The outer UDP source port carries entropy from the connection (so
//! receive-side scaling on the target spreads connections over queues);
//! the caller chooses it.

use core::net::Ipv4Addr;

use crate::{read_u16, read_u32, write_u16, write_u32, Error, Result};

/// UDP destination port of the routed encapsulation (every member listens
/// on its own address; [`crate::udp`] carries it).
pub const PORT: u16 = 7948;

/// The private data type marking Shoal's hop list ("SH").
pub const PRIVATE_TYPE: u16 = 0x5348;

/// The GUE protocol number of the inner packet (IPv4, IANA 4).
pub const PROTO_IPV4: u8 = 4;

/// Byte offsets of the header's fields.
pub mod field {
    use core::ops::Range;

    /// Version (2 bits, 0), C (1 bit, 0) and Hlen (5 bits, 2).
    pub const VER_C_HLEN: usize = 0;
    /// Protocol of the inner packet (4: IPv4).
    pub const PROTO: usize = 1;
    /// GUE flags (none supported: 0).
    pub const FLAGS: Range<usize> = 2..4;
    /// Private data type ([`super::PRIVATE_TYPE`]).
    pub const PRIVATE_TYPE: Range<usize> = 4..6;
    /// Index of the next hop: 0 toward the target, 1 at the alternate.
    pub const NEXT_HOP: usize = 6;
    /// Hops listed: 0 or 1.
    pub const HOP_COUNT: usize = 7;
    /// Hop 0: the alternate target's address (0.0.0.0 when none).
    pub const HOP0: Range<usize> = 8..12;
    /// Header length; the inner packet starts here.
    pub const HEADER_LEN: usize = 12;
}

/// The first byte of every header this module accepts: version 0, C = 0,
/// Hlen = 2 (the 8 bytes of private data).
const VER_C_HLEN: u8 = ((field::HEADER_LEN - 4) / 4) as u8;

/// Bytes the routed encapsulation adds before the client's IPv4 packet:
/// outer IPv4 (20, no options), UDP (8) and this header (12).
pub const OVERHEAD: usize = 20 + 8 + field::HEADER_LEN;

/// A zero-copy view of a routed-mode GUE header and the packet after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GuePacket<T> {
    /// Wraps `buffer` without checking anything; getters may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        GuePacket { buffer }
    }

    /// Wraps `buffer` after [`GuePacket::check`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// The buffer holds the 12-byte header ([`Error::Truncated`]); version,
    /// C, Hlen, protocol, flags and private type are the ones this module
    /// writes ([`Error::Unsupported`]: another GUE use, or a later version);
    /// the hop count is 0 or 1 and the next hop index at most the hop count,
    /// a listed hop is not 0.0.0.0 and an absent one is ([`Error::BadLength`]).
    pub fn check(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_C_HLEN] != VER_C_HLEN
            || b[field::PROTO] != PROTO_IPV4
            || read_u16(b, field::FLAGS.start) != 0
            || read_u16(b, field::PRIVATE_TYPE.start) != PRIVATE_TYPE
        {
            return Err(Error::Unsupported);
        }
        let (next, count) = (b[field::NEXT_HOP], b[field::HOP_COUNT]);
        let hop_set = read_u32(b, field::HOP0.start) != 0;
        if count > 1 || next > count || hop_set != (count == 1) {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    /// The alternate target, if the header lists one.
    pub fn alternate(&self) -> Option<Ipv4Addr> {
        let b = self.buffer.as_ref();
        (b[field::HOP_COUNT] == 1).then(|| Ipv4Addr::from(read_u32(b, field::HOP0.start)))
    }

    /// Whether the packet was already forwarded to its alternate (next hop
    /// index 1): the member that gets it must not forward it again.
    pub fn second_chance(&self) -> bool {
        self.buffer.as_ref()[field::NEXT_HOP] == 1
    }

    /// The encapsulated packet (everything after the header).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..]
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GuePacket<T> {
    /// Marks the packet as forwarded to its alternate (next hop index 1).
    pub fn set_second_chance(&mut self) {
        self.buffer.as_mut()[field::NEXT_HOP] = 1;
    }

    /// The encapsulated packet, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::HEADER_LEN..]
    }
}

/// A parsed routed-mode GUE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GueRepr {
    /// The target under the previous membership, when it differs from the
    /// target this packet is sent to.
    pub alternate: Option<Ipv4Addr>,
    /// Already forwarded to the alternate (never forward again).
    pub second_chance: bool,
}

impl GueRepr {
    /// Parses a checked header. A second chance without an alternate
    /// cannot be written ([`GuePacket::check`] refuses it).
    pub fn parse<T: AsRef<[u8]>>(packet: &GuePacket<T>) -> Result<GueRepr> {
        packet.check()?;
        Ok(GueRepr {
            alternate: packet.alternate(),
            second_chance: packet.second_chance(),
        })
    }

    /// Header length (12).
    pub const fn header_len(&self) -> usize {
        field::HEADER_LEN
    }

    /// Writes the header into the first 12 bytes of `packet`. A
    /// `second_chance` without an `alternate`, or an alternate of 0.0.0.0,
    /// is written as no alternate and no second chance.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut GuePacket<T>) {
        let b = packet.buffer.as_mut();
        let hop = self.alternate.filter(|a| !a.is_unspecified());
        b[field::VER_C_HLEN] = VER_C_HLEN;
        b[field::PROTO] = PROTO_IPV4;
        write_u16(b, field::FLAGS.start, 0);
        write_u16(b, field::PRIVATE_TYPE.start, PRIVATE_TYPE);
        b[field::NEXT_HOP] = u8::from(hop.is_some() && self.second_chance);
        b[field::HOP_COUNT] = u8::from(hop.is_some());
        write_u32(
            b,
            field::HOP0.start,
            hop.map_or(0, |a| u32::from_be_bytes(a.octets())),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header toward a target with alternate 198.18.1.3, then 4 bytes of
    /// (pretend) inner packet.
    const HEADER: [u8; 16] = [
        0x02, 0x04, 0x00, 0x00, 0x53, 0x48, 0x00, 0x01, 198, 18, 1, 3, 0x45, 0, 0, 20,
    ];

    #[test]
    fn parses_and_emits_the_documented_bytes() {
        let p = GuePacket::new_checked(&HEADER[..]).expect("valid");
        let repr = GueRepr::parse(&p).expect("valid");
        assert_eq!(
            repr,
            GueRepr {
                alternate: Some(Ipv4Addr::new(198, 18, 1, 3)),
                second_chance: false
            }
        );
        assert_eq!(p.payload(), &HEADER[12..]);
        let mut out = [0u8; 12];
        repr.emit(&mut GuePacket::new_unchecked(&mut out[..]));
        assert_eq!(out[..], HEADER[..12]);

        let mut buf = HEADER;
        GuePacket::new_unchecked(&mut buf[..]).set_second_chance();
        assert_eq!(buf[6], 1);
        assert!(GuePacket::new_checked(&buf[..])
            .expect("valid")
            .second_chance());
    }

    #[test]
    fn refuses_other_gue_uses_and_inconsistent_hops() {
        let bad = |at: usize, value: u8| {
            let mut buf = HEADER;
            buf[at] = value;
            GuePacket::new_checked(&buf[..]).err()
        };
        assert_eq!(bad(0, 0x42), Some(Error::Unsupported)); // version 1
        assert_eq!(bad(0, 0x22), Some(Error::Unsupported)); // C = 1
        assert_eq!(bad(0, 0x03), Some(Error::Unsupported)); // Hlen 3
        assert_eq!(bad(1, 41), Some(Error::Unsupported)); // IPv6 inside
        assert_eq!(bad(3, 0x80), Some(Error::Unsupported)); // a GUE flag
        assert_eq!(bad(4, 0), Some(Error::Unsupported)); // GLB's private type
        assert_eq!(bad(7, 2), Some(Error::BadLength)); // two hops
        assert_eq!(bad(6, 2), Some(Error::BadLength)); // next hop past the list
        assert_eq!(bad(7, 0), Some(Error::BadLength)); // a hop but count 0
        let mut none = HEADER;
        none[8..12].fill(0);
        assert_eq!(
            GuePacket::new_checked(&none[..]).err(),
            Some(Error::BadLength)
        );
        none[7] = 0;
        let p = GuePacket::new_checked(&none[..]).expect("no alternate");
        assert_eq!(p.alternate(), None);
        none[6] = 1;
        assert_eq!(
            GuePacket::new_checked(&none[..]).err(),
            Some(Error::BadLength)
        );
    }

    #[test]
    fn emit_writes_a_second_chance_without_alternate_as_neither() {
        let mut out = [0xffu8; 12];
        let repr = GueRepr {
            alternate: Some(Ipv4Addr::UNSPECIFIED),
            second_chance: true,
        };
        repr.emit(&mut GuePacket::new_unchecked(&mut out[..]));
        let back = GueRepr::parse(&GuePacket::new_checked(&out[..]).expect("valid"));
        assert_eq!(
            back,
            Ok(GueRepr {
                alternate: None,
                second_chance: false
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn round_trip(alt in proptest::option::of(1u32..), second in proptest::bool::ANY,
                      tail in proptest::collection::vec(proptest::num::u8::ANY, 0..32)) {
            let repr = GueRepr {
                alternate: alt.map(Ipv4Addr::from),
                second_chance: second && alt.is_some(),
            };
            let mut buf = vec![0u8; repr.header_len() + tail.len()];
            buf[12..].copy_from_slice(&tail);
            repr.emit(&mut GuePacket::new_unchecked(&mut buf[..]));
            let p = GuePacket::new_checked(&buf[..]).expect("emitted is valid");
            proptest::prop_assert_eq!(GueRepr::parse(&p), Ok(repr));
            proptest::prop_assert_eq!(p.payload(), &tail[..]);
        }

        #[test]
        fn truncations_are_refused_and_any_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..24),
            cut in 0usize..12,
        ) {
            let mut buf = HEADER;
            GueRepr { alternate: None, second_chance: false }
                .emit(&mut GuePacket::new_unchecked(&mut buf[..]));
            proptest::prop_assert_eq!(GuePacket::new_checked(&buf[..cut]).err(), Some(Error::Truncated));
            if let Ok(p) = GuePacket::new_checked(&bytes[..]) {
                let repr = GueRepr::parse(&p).expect("checked parses");
                let mut again = [0u8; 12];
                repr.emit(&mut GuePacket::new_unchecked(&mut again[..]));
                proptest::prop_assert_eq!(&again[..], &bytes[..12]);
                let _ = (p.alternate(), p.second_chance(), p.payload());
            }
        }
    }
}
