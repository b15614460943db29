//! IP-in-IP encapsulation (RFC 2003), used by the `dpr-ipip` modes to forward
//! a client's packet to the chosen server, which decapsulates it and delivers
//! it to its kernel.
//!
//! This module builds the outer header's repr and validates a received
//! encapsulation; moving bytes (prepending 20 bytes to an mbuf, stripping
//! them) is the dataplane's job. The reserved fragment bit that marks
//! redirected packets lives on [`Ipv4Packet`] (`reserved_flag`).

use core::net::Ipv4Addr;

use crate::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};
use crate::{Error, Result};

/// TTL of the outer header unless the caller chooses another (RFC 2003 §3.1
/// leaves it to the encapsulator: enough to reach the tunnel exit).
pub const DEFAULT_TTL: u8 = 64;

/// Length of the outer header this module builds (no options).
pub const OUTER_HEADER_LEN: usize = ipv4::field::HEADER_LEN;

/// Length of the encapsulated packet for an inner packet of `inner_len` bytes.
pub const fn encapsulated_len(inner_len: usize) -> usize {
    inner_len + OUTER_HEADER_LEN
}

/// The outer header for tunnelling `inner` from `tunnel_src` to `tunnel_dst`,
/// per RFC 2003 §3.1: protocol 4, TTL [`DEFAULT_TTL`], TOS (DSCP/ECN) copied
/// from the inner header, DF copied from the inner header, never a fragment,
/// identification `ident` (fresh per packet, chosen by the caller), payload
/// length = the inner total length. Emit it with [`Ipv4Repr::emit`] into the
/// 20 bytes before the inner packet.
pub fn outer_repr<T: AsRef<[u8]>>(
    inner: &Ipv4Packet<T>,
    tunnel_src: Ipv4Addr,
    tunnel_dst: Ipv4Addr,
    ident: u16,
) -> Ipv4Repr {
    Ipv4Repr {
        src_addr: tunnel_src,
        dst_addr: tunnel_dst,
        protocol: IpProtocol::IpIp,
        payload_len: inner.total_len() as usize,
        ttl: DEFAULT_TTL,
        ident,
        dont_frag: inner.dont_frag(),
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: inner.dscp_ecn(),
    }
}

/// The inner packet of a checked IP-in-IP packet. The outer protocol must be
/// 4 and the outer packet must not be a fragment ([`Error::Unsupported`]: Shoal
/// does not reassemble); the inner header is validated like any other
/// ([`Ipv4Packet::new_checked`]), and its total length must fit in the outer
/// payload.
pub fn decapsulate<'a>(outer: &Ipv4Packet<&'a [u8]>) -> Result<Ipv4Packet<&'a [u8]>> {
    outer.check_len()?;
    if outer.protocol() != IpProtocol::IpIp || outer.is_fragment() {
        return Err(Error::Unsupported);
    }
    Ipv4Packet::new_checked(outer.into_payload())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client SYN (198.18.0.100:40000 -> VIP 198.18.10.1:80, TOS 0x10, DF)
    /// tunnelled by the inspector 198.18.1.1 to server 198.18.1.2. Checksums
    /// computed independently of this crate.
    const IPIP: [u8; 60] = [
        // Outer: 45 10, len 60, ident 0x0001, DF, TTL 64, proto 4.
        0x45, 0x10, 0x00, 0x3c, 0x00, 0x01, 0x40, 0x00, 0x40, 0x04, 0xac, 0x85, 198, 18, 1, 1, 198,
        18, 1, 2, // Inner: 45 10, len 40, ident 0xabcd, DF, TTL 63, TCP.
        0x45, 0x10, 0x00, 0x28, 0xab, 0xcd, 0x40, 0x00, 0x3f, 0x06, 0xf9, 0x68, 198, 18, 0, 100,
        198, 18, 10, 1, // TCP SYN without options.
        0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0xfa,
        0xf0, 0x7d, 0xef, 0x00, 0x00,
    ];

    #[test]
    fn decapsulates_and_rebuilds_the_outer_header() {
        let outer = Ipv4Packet::new_checked(&IPIP[..]).expect("valid outer");
        assert!(outer.verify_checksum());
        let inner = decapsulate(&outer).expect("valid inner");
        assert!(inner.verify_checksum());
        assert_eq!(inner.src_addr(), Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(inner.dst_addr(), Ipv4Addr::new(198, 18, 10, 1));
        assert_eq!(inner.protocol(), IpProtocol::Tcp);
        assert_eq!(inner.payload().len(), 20);

        let repr = outer_repr(
            &inner,
            Ipv4Addr::new(198, 18, 1, 1),
            Ipv4Addr::new(198, 18, 1, 2),
            1,
        );
        assert_eq!(repr.buffer_len(), encapsulated_len(40));
        let mut out = [0u8; 20];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out[..], IPIP[..20]);
    }

    #[test]
    fn rejects_non_ipip_fragments_and_bad_inner() {
        let mut buf = IPIP;
        buf[9] = 6;
        let outer = Ipv4Packet::new_checked(&buf[..]).expect("valid");
        assert_eq!(decapsulate(&outer).err(), Some(Error::Unsupported));

        let mut buf = IPIP;
        buf[6] = 0x20; // MF
        let outer = Ipv4Packet::new_checked(&buf[..]).expect("valid");
        assert_eq!(decapsulate(&outer).err(), Some(Error::Unsupported));

        let mut buf = IPIP;
        buf[20] = 0x44; // inner IHL 4
        let outer = Ipv4Packet::new_checked(&buf[..]).expect("valid");
        assert_eq!(decapsulate(&outer).err(), Some(Error::BadHeaderLength));

        let mut buf = IPIP;
        buf[23] = 41; // inner total length beyond the outer payload
        let outer = Ipv4Packet::new_checked(&buf[..]).expect("valid");
        assert_eq!(decapsulate(&outer).err(), Some(Error::BadTotalLength));
    }
}
