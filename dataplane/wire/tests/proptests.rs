//! Property tests of the wire formats: parse/emit round trips for every repr,
//! RFC 1624 incremental checksum updates against full recomputation, and
//! robustness of every parser against arbitrary and truncated input.

mod common;

use std::net::Ipv4Addr;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use shoal_wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use shoal_wire::checksum;
use shoal_wire::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use shoal_wire::icmpv4::{
    self, Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded,
};
use shoal_wire::ipip;
use shoal_wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use shoal_wire::tcp::{option_kind, TcpFlags, TcpOptionBytes, TcpPacket, TcpRepr};
use shoal_wire::udp::{UdpPacket, UdpRepr};
use shoal_wire::Error;

use common::{walk, walk_ipv4, Walked};

// ---------------------------------------------------------------- strategies

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}

fn addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn ethernet_repr() -> impl Strategy<Value = EthernetRepr> {
    (
        mac(),
        mac(),
        option::of((0u16..4096, option::of(0u16..4096))),
        any::<u16>().prop_filter("not a VLAN TPID", |t| *t != 0x8100 && *t != 0x88A8),
    )
        .prop_map(|(src_addr, dst_addr, tags, ethertype)| EthernetRepr {
            src_addr,
            dst_addr,
            vlan: tags.map(|(outer, _)| outer),
            inner_vlan: tags.and_then(|(_, inner)| inner),
            ethertype: EtherType::from(ethertype),
        })
}

fn ipv4_repr() -> impl Strategy<Value = Ipv4Repr> {
    (
        (addr(), addr(), any::<u8>(), 0usize..200),
        (
            any::<u8>(),
            any::<u16>(),
            any::<bool>(),
            any::<bool>(),
            0u16..0x2000,
            any::<u8>(),
        ),
    )
        .prop_map(
            |(
                (src_addr, dst_addr, protocol, payload_len),
                (ttl, ident, dont_frag, more_frags, frag_units, dscp_ecn),
            )| Ipv4Repr {
                src_addr,
                dst_addr,
                protocol: IpProtocol::from(protocol),
                payload_len,
                ttl,
                ident,
                dont_frag,
                more_frags,
                frag_offset: frag_units << 3,
                dscp_ecn,
            },
        )
}

/// Unknown TCP options: kinds other than 0..=5 and 8, 0 to 6 data bytes.
fn unknown_tcp_options() -> impl Strategy<Value = TcpOptionBytes> {
    let kind = (6u8..=255).prop_filter("not timestamps", |k| *k != option_kind::TIMESTAMPS);
    vec((kind, vec(any::<u8>(), 0..6)), 0..3).prop_map(|options| {
        let mut bytes = TcpOptionBytes::EMPTY;
        for (kind, data) in options {
            let mut option = vec![kind, data.len() as u8 + 2];
            option.extend_from_slice(&data);
            assert!(bytes.extend(&option));
        }
        bytes
    })
}

/// Option space a repr needs when nothing is dropped.
fn natural_options_len(r: &TcpRepr) -> usize {
    let mut len = 0;
    if r.mss.is_some() {
        len += 4;
    }
    if r.timestamps.is_some() {
        len += 12;
    } else if r.sack_permitted {
        len += 4;
    }
    if r.window_scale.is_some() {
        len += 4;
    }
    let blocks = r.sack_ranges.iter().flatten().count();
    if blocks > 0 {
        len += 4 + 8 * blocks;
    }
    (len + r.unknown_options.len()).div_ceil(4) * 4
}

fn tcp_repr() -> impl Strategy<Value = TcpRepr> {
    (
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            option::of(any::<u32>()),
            any::<u8>(),
        ),
        (
            any::<u16>(),
            any::<u16>(),
            option::of(any::<u16>()),
            option::of(0u8..15),
            any::<bool>(),
        ),
        (
            vec((any::<u32>(), any::<u32>()), 0..=4),
            option::of((any::<u32>(), any::<u32>())),
        ),
        unknown_tcp_options(),
    )
        .prop_map(
            |(
                (src_port, dst_port, seq_number, ack_number, flags),
                (window_len, urgent, mss, window_scale, sack_permitted),
                (blocks, timestamps),
                unknown_options,
            )| {
                let mut sack_ranges = [None; 4];
                for (slot, block) in sack_ranges.iter_mut().zip(blocks) {
                    *slot = Some(block);
                }
                let flags = TcpFlags(flags).without(TcpFlags::ACK);
                let flags = if ack_number.is_some() {
                    flags.union(TcpFlags::ACK)
                } else {
                    flags
                };
                let mut repr = TcpRepr {
                    src_port,
                    dst_port,
                    seq_number,
                    ack_number,
                    flags,
                    window_len,
                    urgent,
                    mss,
                    window_scale,
                    sack_permitted,
                    sack_ranges,
                    timestamps,
                    unknown_options,
                };
                // Keep within 40 option bytes, so that emit drops nothing.
                let mut blocks = repr.sack_ranges.iter().flatten().count();
                while natural_options_len(&repr) > 40 && blocks > 0 {
                    blocks -= 1;
                    repr.sack_ranges[blocks] = None;
                }
                if natural_options_len(&repr) > 40 {
                    repr.unknown_options = TcpOptionBytes::EMPTY;
                }
                repr
            },
        )
}

fn icmp_parts() -> impl Strategy<Value = (u8, u8, u16, u16, Vec<u8>)> {
    (
        prop_oneof![Just(0u8), Just(3u8), Just(8u8), Just(11u8)],
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        vec(any::<u8>(), 0..80),
    )
}

fn icmp_repr(parts: &(u8, u8, u16, u16, Vec<u8>)) -> Icmpv4Repr<'_> {
    let (kind, code, a, b, data) = parts;
    match kind {
        0 => Icmpv4Repr::EchoReply {
            ident: *a,
            seq_no: *b,
            data,
        },
        8 => Icmpv4Repr::EchoRequest {
            ident: *a,
            seq_no: *b,
            data,
        },
        3 => Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::from(*code),
            next_hop_mtu: *b,
            invoking: data,
        },
        _ => Icmpv4Repr::TimeExceeded {
            reason: Icmpv4TimeExceeded::from(*code),
            invoking: data,
        },
    }
}

/// Emits an Ethernet + IPv4 + TCP frame and returns its bytes.
fn tcp_frame(eth: &EthernetRepr, ip: &Ipv4Repr, tcp: &TcpRepr, payload: &[u8]) -> Vec<u8> {
    let tcp_len = tcp.buffer_len(payload.len());
    let ip = Ipv4Repr {
        protocol: IpProtocol::Tcp,
        payload_len: tcp_len,
        ..*ip
    };
    let mut buf = vec![0u8; eth.buffer_len(ip.buffer_len())];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet);
    let mut segment = TcpPacket::new_unchecked(packet.payload_mut());
    tcp.emit(&mut segment, ip.src_addr, ip.dst_addr, payload);
    buf
}

// ---------------------------------------------------------------- round trips

proptest! {
    #[test]
    fn ethernet_round_trip(repr in ethernet_repr(), payload in vec(any::<u8>(), 0..32)) {
        let mut buf = vec![0u8; repr.buffer_len(payload.len())];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        repr.emit(&mut frame);
        frame.payload_mut().copy_from_slice(&payload);
        let frame = EthernetFrame::new_checked(&buf[..]).expect("emitted frame is valid");
        prop_assert_eq!(frame.header_len(), repr.header_len());
        prop_assert_eq!(frame.payload(), &payload[..]);
        let parsed = EthernetRepr::parse(&frame).expect("parses");
        prop_assert_eq!(parsed, repr);
        let mut again = buf.clone();
        parsed.emit(&mut EthernetFrame::new_unchecked(&mut again[..]));
        prop_assert_eq!(again, buf);
    }

    #[test]
    fn arp_round_trip(
        op in any::<u16>(), sha in mac(), spa in addr(), tha in mac(), tpa in addr(),
    ) {
        let repr = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::from(op),
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_hardware_addr: tha,
            target_protocol_addr: tpa,
        };
        let mut buf = [0u8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        let packet = ArpPacket::new_checked(&buf[..]).expect("valid");
        prop_assert_eq!(ArpRepr::parse(&packet), Ok(repr));
        prop_assert_eq!(u16::from(packet.operation()), op);
    }

    #[test]
    fn arp_bytes_round_trip(tail in any::<[u8; 22]>()) {
        let mut buf = [0u8; 28];
        buf[..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
        buf[6..].copy_from_slice(&tail);
        let repr = ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).expect("valid"))
            .expect("Ethernet/IPv4");
        let mut out = [0u8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        prop_assert_eq!(out, buf);
    }

    #[test]
    fn ipv4_repr_round_trip(repr in ipv4_repr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        let packet = Ipv4Packet::new_checked(&buf[..]).expect("valid");
        prop_assert!(packet.verify_checksum());
        prop_assert_eq!(packet.payload().len(), repr.payload_len);
        prop_assert_eq!(Ipv4Repr::parse(&packet), Ok(repr));
    }

    /// Headers built field by field with the view's setters re-emit byte for byte.
    #[test]
    fn ipv4_bytes_round_trip(
        repr in ipv4_repr(), padding in 0usize..8,
    ) {
        let mut buf = vec![0u8; repr.buffer_len() + padding];
        {
            let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
            p.set_version(4);
            p.set_header_len(20);
            p.set_dscp_ecn(repr.dscp_ecn);
            p.set_total_len(repr.buffer_len() as u16);
            p.set_ident(repr.ident);
            p.set_dont_frag(repr.dont_frag);
            p.set_more_frags(repr.more_frags);
            p.set_frag_offset(repr.frag_offset);
            p.set_ttl(repr.ttl);
            p.set_protocol(repr.protocol);
            p.set_src_addr(repr.src_addr);
            p.set_dst_addr(repr.dst_addr);
            p.fill_checksum();
        }
        let packet = Ipv4Packet::new_checked(&buf[..]).expect("valid");
        prop_assert_eq!(packet.is_fragment(), repr.more_frags || repr.frag_offset != 0);
        let parsed = Ipv4Repr::parse(&packet).expect("parses");
        let mut out = [0u8; 20];
        parsed.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
        prop_assert_eq!(&out[..], &buf[..20]);
    }

    #[test]
    fn udp_round_trip(
        src_port in any::<u16>(), dst_port in any::<u16>(), src in addr(), dst in addr(),
        payload in vec(any::<u8>(), 0..64),
    ) {
        let repr = UdpRepr { src_port, dst_port };
        let mut buf = vec![0u8; repr.buffer_len(payload.len())];
        repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), src, dst, &payload);
        let packet = UdpPacket::new_checked(&buf[..]).expect("valid");
        prop_assert_ne!(packet.checksum(), 0);
        prop_assert!(packet.verify_checksum(src, dst));
        prop_assert_eq!(packet.payload(), &payload[..]);
        let parsed = UdpRepr::parse(&packet).expect("parses");
        prop_assert_eq!(parsed, repr);
        let mut again = vec![0u8; buf.len()];
        parsed.emit(&mut UdpPacket::new_unchecked(&mut again[..]), src, dst, packet.payload());
        prop_assert_eq!(again, buf);
    }

    #[test]
    fn tcp_round_trip(
        repr in tcp_repr(), src in addr(), dst in addr(), payload in vec(any::<u8>(), 0..64),
    ) {
        prop_assert_eq!(repr.options_len(), natural_options_len(&repr));
        let mut buf = vec![0u8; repr.buffer_len(payload.len())];
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst, &payload);
        let packet = TcpPacket::new_checked(&buf[..]).expect("valid");
        prop_assert!(packet.verify_checksum(src, dst));
        prop_assert_eq!(packet.payload(), &payload[..]);
        prop_assert_eq!(packet.mss(), repr.mss);
        prop_assert_eq!(packet.timestamps(), repr.timestamps);
        prop_assert_eq!(packet.sack_ranges(), repr.sack_ranges);
        let parsed = TcpRepr::parse(&packet).expect("parses");
        prop_assert_eq!(parsed, repr);
        let mut again = vec![0u8; buf.len()];
        parsed.emit(&mut TcpPacket::new_unchecked(&mut again[..]), src, dst, packet.payload());
        prop_assert_eq!(again, buf);
    }

    #[test]
    fn icmp_round_trip(parts in icmp_parts()) {
        let repr = icmp_repr(&parts);
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        let packet = Icmpv4Packet::new_checked(&buf[..]).expect("valid");
        prop_assert!(packet.verify_checksum());
        let parsed = Icmpv4Repr::parse(&packet).expect("parses");
        prop_assert_eq!(parsed, repr);
        let mut again = vec![0u8; buf.len()];
        parsed.emit(&mut Icmpv4Packet::new_unchecked(&mut again[..]));
        prop_assert_eq!(again, buf);
    }

    #[test]
    fn ipip_round_trip(
        inner in ipv4_repr(), outer_src in addr(), outer_dst in addr(), ident in any::<u16>(),
    ) {
        let inner = Ipv4Repr { more_frags: false, frag_offset: 0, ..inner };
        let mut buf = vec![0u8; ipip::encapsulated_len(inner.buffer_len())];
        inner.emit(&mut Ipv4Packet::new_unchecked(&mut buf[ipip::OUTER_HEADER_LEN..]));
        let outer = {
            let inner_view = Ipv4Packet::new_checked(&buf[ipip::OUTER_HEADER_LEN..]).expect("ok");
            ipip::outer_repr(&inner_view, outer_src, outer_dst, ident)
        };
        prop_assert_eq!(outer.ttl, ipip::DEFAULT_TTL);
        prop_assert_eq!(outer.dscp_ecn, inner.dscp_ecn);
        prop_assert_eq!(outer.dont_frag, inner.dont_frag);
        outer.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        let outer_view = Ipv4Packet::new_checked(&buf[..]).expect("valid outer");
        prop_assert_eq!(Ipv4Repr::parse(&outer_view), Ok(outer));
        let decapsulated = ipip::decapsulate(&outer_view).expect("valid inner");
        prop_assert_eq!(Ipv4Repr::parse(&decapsulated), Ok(inner));
    }
}

// ---------------------------------------------------------------- incremental checksums

/// One field rewrite of an IPv4 header.
#[derive(Debug, Clone)]
enum Ipv4Rewrite {
    Src(Ipv4Addr),
    Dst(Ipv4Addr),
    Ttl(u8),
    Ident(u16),
    DscpEcn(u8),
    TotalLen(u16),
    ReservedFlag(bool),
}

fn ipv4_rewrite() -> impl Strategy<Value = Ipv4Rewrite> {
    prop_oneof![
        addr().prop_map(Ipv4Rewrite::Src),
        addr().prop_map(Ipv4Rewrite::Dst),
        any::<u8>().prop_map(Ipv4Rewrite::Ttl),
        any::<u16>().prop_map(Ipv4Rewrite::Ident),
        any::<u8>().prop_map(Ipv4Rewrite::DscpEcn),
        (20u16..=220).prop_map(Ipv4Rewrite::TotalLen),
        any::<bool>().prop_map(Ipv4Rewrite::ReservedFlag),
    ]
}

fn word(header: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([header[at], header[at + 1]])
}

/// One field rewrite of a TCP segment (or of its pseudo-header).
#[derive(Debug, Clone)]
enum TcpRewrite {
    Src(Ipv4Addr),
    Dst(Ipv4Addr),
    SrcPort(u16),
    DstPort(u16),
    Seq(u32),
    Ack(u32),
    Window(u16),
    Timestamps(u32, u32),
    SackDelta(u32),
    Mss(u16),
}

fn tcp_rewrite() -> impl Strategy<Value = TcpRewrite> {
    prop_oneof![
        addr().prop_map(TcpRewrite::Src),
        addr().prop_map(TcpRewrite::Dst),
        any::<u16>().prop_map(TcpRewrite::SrcPort),
        any::<u16>().prop_map(TcpRewrite::DstPort),
        any::<u32>().prop_map(TcpRewrite::Seq),
        any::<u32>().prop_map(TcpRewrite::Ack),
        any::<u16>().prop_map(TcpRewrite::Window),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| TcpRewrite::Timestamps(a, b)),
        any::<u32>().prop_map(TcpRewrite::SackDelta),
        any::<u16>().prop_map(TcpRewrite::Mss),
    ]
}

/// A segment whose options are `nops` NOPs (shifting alignment, possibly to
/// odd offsets), MSS, timestamps and a SACK option with `blocks`, then
/// end-of-list padding.
fn odd_segment(
    nops: usize,
    mss: u16,
    ts: (u32, u32),
    blocks: &[(u32, u32)],
    fields: (u16, u16, u32, u32, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut options = vec![1u8; nops];
    options.extend_from_slice(&[2, 4]);
    options.extend_from_slice(&mss.to_be_bytes());
    options.extend_from_slice(&[8, 10]);
    options.extend_from_slice(&ts.0.to_be_bytes());
    options.extend_from_slice(&ts.1.to_be_bytes());
    if !blocks.is_empty() {
        options.extend_from_slice(&[5, 2 + 8 * blocks.len() as u8]);
        for (l, r) in blocks {
            options.extend_from_slice(&l.to_be_bytes());
            options.extend_from_slice(&r.to_be_bytes());
        }
    }
    options.resize(options.len().div_ceil(4) * 4, 0);
    let header_len = 20 + options.len();
    let mut buf = vec![0u8; header_len + payload.len()];
    let mut p = TcpPacket::new_unchecked(&mut buf[..]);
    p.set_header_len(header_len);
    p.set_src_port(fields.0);
    p.set_dst_port(fields.1);
    p.set_seq_number(fields.2);
    p.set_ack_number(fields.3);
    p.set_window_len(fields.4);
    p.set_flags(TcpFlags::ACK | TcpFlags::PSH);
    p.options_mut().copy_from_slice(&options);
    p.payload_mut().copy_from_slice(payload);
    buf
}

/// Applies `rewrite` to `buf` (a checksummed segment from `src` to `dst`),
/// updating the checksum incrementally, and returns the new addresses.
fn rewrite_tcp(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    rewrite: &TcpRewrite,
) -> (Ipv4Addr, Ipv4Addr) {
    let mut p = TcpPacket::new_checked(&mut buf[..]).expect("valid");
    let c = p.checksum();
    let (mut src, mut dst) = (src, dst);
    match *rewrite {
        TcpRewrite::Src(a) => {
            p.set_checksum(checksum::update_addr(c, src, a));
            src = a;
        }
        TcpRewrite::Dst(a) => {
            p.set_checksum(checksum::update_addr(c, dst, a));
            dst = a;
        }
        TcpRewrite::SrcPort(v) => {
            p.set_checksum(checksum::update_u16(c, p.src_port(), v));
            p.set_src_port(v);
        }
        TcpRewrite::DstPort(v) => {
            p.set_checksum(checksum::update_u16(c, p.dst_port(), v));
            p.set_dst_port(v);
        }
        TcpRewrite::Seq(v) => {
            p.set_checksum(checksum::update_u32(c, p.seq_number(), v));
            p.set_seq_number(v);
        }
        TcpRewrite::Ack(v) => {
            p.set_checksum(checksum::update_u32(c, p.ack_number(), v));
            p.set_ack_number(v);
        }
        TcpRewrite::Window(v) => {
            p.set_checksum(checksum::update_u16(c, p.window_len(), v));
            p.set_window_len(v);
        }
        TcpRewrite::Timestamps(tsval, tsecr) => {
            let at = p.option_offset(option_kind::TIMESTAMPS).expect("present") + 2;
            let old = option_bytes(&p, at, 8);
            assert!(p.set_timestamps(tsval, tsecr));
            let new = option_bytes(&p, at, 8);
            p.set_checksum(checksum::update_bytes(c, at, &old, &new));
        }
        TcpRewrite::SackDelta(delta) => {
            let Some(at) = p.option_offset(option_kind::SACK) else {
                return (src, dst);
            };
            let len = option_bytes(&p, at + 1, 1)[0] as usize;
            let old = option_bytes(&p, at + 2, len - 2);
            let n = p.rewrite_sack_ranges(|l, r| (l.wrapping_add(delta), r.wrapping_add(delta)));
            assert_eq!(n, (len - 2) / 8);
            let new = option_bytes(&p, at + 2, len - 2);
            p.set_checksum(checksum::update_bytes(c, at + 2, &old, &new));
        }
        TcpRewrite::Mss(v) => {
            let at = p.option_offset(option_kind::MSS).expect("present") + 2;
            let old = option_bytes(&p, at, 2);
            assert!(p.set_mss(v));
            let new = option_bytes(&p, at, 2);
            p.set_checksum(checksum::update_bytes(c, at, &old, &new));
        }
    }
    (src, dst)
}

/// Copies `len` option bytes at header offset `at` (>= 20) out of a segment.
fn option_bytes(p: &TcpPacket<&mut [u8]>, at: usize, len: usize) -> Vec<u8> {
    p.options()[at - 20..at - 20 + len].to_vec()
}

proptest! {
    #[test]
    fn ipv4_incremental_matches_full(repr in ipv4_repr(), rewrite in ipv4_rewrite()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        let c = p.checksum();
        let new_checksum = match rewrite {
            Ipv4Rewrite::Src(a) => {
                let c = checksum::update_addr(c, p.src_addr(), a);
                p.set_src_addr(a);
                c
            }
            Ipv4Rewrite::Dst(a) => {
                let c = checksum::update_addr(c, p.dst_addr(), a);
                p.set_dst_addr(a);
                c
            }
            Ipv4Rewrite::Ttl(ttl) => {
                let old = word(p.header(), 8);
                p.set_ttl(ttl);
                checksum::update_u16(c, old, word(p.header(), 8))
            }
            Ipv4Rewrite::Ident(ident) => {
                let c = checksum::update_u16(c, p.ident(), ident);
                p.set_ident(ident);
                c
            }
            Ipv4Rewrite::DscpEcn(v) => {
                let old = word(p.header(), 0);
                p.set_dscp_ecn(v);
                checksum::update_u16(c, old, word(p.header(), 0))
            }
            Ipv4Rewrite::TotalLen(v) => {
                let c = checksum::update_u16(c, p.total_len(), v);
                p.set_total_len(v);
                c
            }
            Ipv4Rewrite::ReservedFlag(v) => {
                let old = word(p.header(), 6);
                p.set_reserved_flag(v);
                checksum::update_u16(c, old, word(p.header(), 6))
            }
        };
        p.set_checksum(new_checksum);
        prop_assert!(p.verify_checksum());
        p.fill_checksum();
        prop_assert_eq!(p.checksum(), new_checksum);
    }

    #[test]
    fn tcp_incremental_matches_full(
        repr in tcp_repr(), src in addr(), dst in addr(), payload in vec(any::<u8>(), 0..40),
        rewrite in tcp_rewrite(),
    ) {
        // Linux-layout options from the repr (timestamps/MSS may be absent:
        // then those rewrites fall back to header fields).
        let mut buf = vec![0u8; repr.buffer_len(payload.len())];
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst, &payload);
        let rewrite = match rewrite {
            TcpRewrite::Timestamps(..) if repr.timestamps.is_none() => TcpRewrite::Seq(7),
            TcpRewrite::Mss(..) if repr.mss.is_none() => TcpRewrite::Ack(7),
            other => other,
        };
        let (src, dst) = rewrite_tcp(&mut buf, src, dst, &rewrite);
        let mut p = TcpPacket::new_checked(&mut buf[..]).expect("valid");
        let incremental = p.checksum();
        prop_assert!(p.verify_checksum(src, dst));
        p.fill_checksum(src, dst);
        prop_assert_eq!(p.checksum(), incremental);
    }

    /// Options at odd offsets: the option rewrites must swap bytes correctly.
    #[test]
    fn tcp_incremental_matches_full_at_odd_offsets(
        nops in 0usize..4, mss in any::<u16>(), ts in any::<(u32, u32)>(),
        blocks in vec(any::<(u32, u32)>(), 0..=2),
        fields in any::<(u16, u16, u32, u32, u16)>(),
        src in addr(), dst in addr(), payload in vec(any::<u8>(), 0..9),
        rewrite in tcp_rewrite(),
    ) {
        let mut buf = odd_segment(nops, mss, ts, &blocks, fields, &payload);
        TcpPacket::new_checked(&mut buf[..]).expect("valid").fill_checksum(src, dst);
        let (src, dst) = rewrite_tcp(&mut buf, src, dst, &rewrite);
        let mut p = TcpPacket::new_checked(&mut buf[..]).expect("valid");
        let incremental = p.checksum();
        prop_assert!(p.verify_checksum(src, dst));
        p.fill_checksum(src, dst);
        prop_assert_eq!(p.checksum(), incremental);
    }

    #[test]
    fn udp_incremental_matches_full(
        src_port in any::<u16>(), dst_port in any::<u16>(), src in addr(), dst in addr(),
        payload in vec(any::<u8>(), 0..40), new_port in any::<u16>(), new_addr in addr(),
        which in 0u8..3,
    ) {
        let repr = UdpRepr { src_port, dst_port };
        let mut buf = vec![0u8; repr.buffer_len(payload.len())];
        repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), src, dst, &payload);
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        let c = p.checksum();
        let (mut s, mut d) = (src, dst);
        let updated = match which {
            0 => {
                let u = checksum::update_u16(c, p.dst_port(), new_port);
                p.set_dst_port(new_port);
                u
            }
            1 => {
                s = new_addr;
                checksum::update_addr(c, src, new_addr)
            }
            _ => {
                d = new_addr;
                checksum::update_addr(c, dst, new_addr)
            }
        };
        p.set_checksum(checksum::udp_encode(updated));
        prop_assert!(p.verify_checksum(s, d));
        let incremental = p.checksum();
        p.fill_checksum(s, d);
        prop_assert_eq!(p.checksum(), incremental);
    }
}

// ---------------------------------------------------------------- robustness

proptest! {
    /// Arbitrary bytes: every checked view and repr either rejects them or
    /// yields values consistent with the buffer.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..128)) {
        if let Ok(frame) = EthernetFrame::new_checked(&bytes[..]) {
            let repr = EthernetRepr::parse(&frame).expect("checked frame parses");
            prop_assert_eq!(frame.payload().len(), bytes.len() - repr.header_len());
        }
        if let Ok(packet) = ArpPacket::new_checked(&bytes[..]) {
            prop_assert!(packet.packet_len() <= bytes.len());
            let _ = packet.target_protocol_addr();
            let _ = ArpRepr::parse(&packet);
        }
        if let Ok(packet) = Ipv4Packet::new_checked(&bytes[..]) {
            prop_assert_eq!(packet.version(), 4);
            prop_assert_eq!(
                packet.payload().len() + packet.header_len(),
                packet.total_len() as usize
            );
            match Ipv4Repr::parse(&packet) {
                Ok(repr) => prop_assert_eq!(repr.payload_len, packet.payload().len()),
                Err(e) => prop_assert_eq!(e, Error::BadOption),
            }
            let _ = ipip::decapsulate(&packet);
            let _ = packet.verify_checksum();
        }
        if let Ok(packet) = TcpPacket::new_checked(&bytes[..]) {
            prop_assert_eq!(packet.payload().len() + packet.header_len(), bytes.len());
            let repr = TcpRepr::parse(&packet).expect("checked segment parses");
            prop_assert!(repr.unknown_options.len() <= packet.options().len());
            prop_assert_eq!(packet.mss(), repr.mss);
            let _ = packet.sack_ranges();
        }
        if let Ok(packet) = UdpPacket::new_checked(&bytes[..]) {
            prop_assert_eq!(packet.payload().len() + 8, packet.len() as usize);
            prop_assert!(UdpRepr::parse(&packet).is_ok());
        }
        if let Ok(packet) = Icmpv4Packet::new_checked(&bytes[..]) {
            if let Ok(repr) = Icmpv4Repr::parse(&packet) {
                prop_assert_eq!(repr.buffer_len(), bytes.len());
            }
            let _ = icmpv4::parse_invoking(packet.data());
        }
        let _ = walk(&bytes);
    }

    /// Arbitrary bytes behind a valid Ethernet + IPv4 header reach the inner parsers.
    #[test]
    fn arbitrary_transport_bytes_never_panic(
        protocol in prop_oneof![Just(1u8), Just(4u8), Just(6u8), Just(17u8)],
        body in vec(any::<u8>(), 0..80),
    ) {
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::new(198, 18, 0, 1),
            dst_addr: Ipv4Addr::new(198, 18, 0, 2),
            protocol: IpProtocol::from(protocol),
            payload_len: body.len(),
            ttl: 64,
            ident: 1,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            dscp_ecn: 0,
        };
        let mut buf = vec![0u8; ip.buffer_len()];
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        buf[20..].copy_from_slice(&body);
        let result = walk_ipv4(&buf);
        if let Ok(Walked::Tcp(_, payload_len)) = &result {
            prop_assert!(*payload_len <= body.len() - 20);
        }
        if let Ok(Walked::Udp(_, payload_len)) = &result {
            prop_assert!(*payload_len <= body.len() - 8);
        }
    }

    /// Every truncation of a valid frame is rejected, at the layer it cuts.
    #[test]
    fn truncations_are_errors(
        eth in ethernet_repr(), ip in ipv4_repr(), tcp in tcp_repr(),
        payload in vec(any::<u8>(), 0..16),
    ) {
        let eth = EthernetRepr { ethertype: EtherType::Ipv4, ..eth };
        let ip = Ipv4Repr { more_frags: false, frag_offset: 0, ..ip };
        let frame = tcp_frame(&eth, &ip, &tcp, &payload);
        let walked = walk(&frame).expect("the whole frame is valid");
        prop_assert_eq!(walked, Walked::Tcp(tcp, payload.len()));
        let eth_len = eth.header_len();
        for len in 0..frame.len() {
            let cut = &frame[..len];
            let err = walk(cut).expect_err("a truncated frame is rejected");
            let expected = if len < eth_len || len < eth_len + 20 {
                Error::Truncated
            } else {
                Error::BadTotalLength
            };
            prop_assert_eq!(err, expected, "cut at {}", len);
        }
        // The IPv4 payload on its own: the TCP view rejects cuts inside the header.
        let segment = &frame[eth_len + 20..];
        for len in 0..tcp.header_len() {
            let err = TcpPacket::new_checked(&segment[..len]).expect_err("cut header");
            let expected = if len < 20 { Error::Truncated } else { Error::BadDataOffset };
            prop_assert_eq!(err, expected);
        }
    }

    #[test]
    fn udp_icmp_arp_truncations_are_errors(
        payload in vec(any::<u8>(), 0..32), parts in icmp_parts(),
    ) {
        let udp = UdpRepr { src_port: 53, dst_port: 5353 };
        let mut buf = vec![0u8; udp.buffer_len(payload.len())];
        let (src, dst) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        udp.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), src, dst, &payload);
        for len in 0..buf.len() {
            let expected = if len < 8 { Error::Truncated } else { Error::BadLength };
            prop_assert_eq!(UdpPacket::new_checked(&buf[..len]).err(), Some(expected));
        }
        let icmp = icmp_repr(&parts);
        let mut buf = vec![0u8; icmp.buffer_len()];
        icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        for len in 0..8 {
            prop_assert_eq!(Icmpv4Packet::new_checked(&buf[..len]).err(), Some(Error::Truncated));
        }
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: src,
            target_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            target_protocol_addr: dst,
        };
        let mut buf = [0u8; 28];
        arp.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        for len in 0..28 {
            prop_assert_eq!(ArpPacket::new_checked(&buf[..len]).err(), Some(Error::Truncated));
        }
    }
}
