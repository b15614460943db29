//! Shared by the integration tests: walks a frame down its layers
//! (Ethernet -> ARP | IPv4 -> TCP | UDP | ICMP | IP-in-IP -> ...), the way the
//! dataplane's classifier does, verifying every checksum on the way.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

use shoal_wire::arp::{ArpPacket, ArpRepr};
use shoal_wire::ethernet::{EtherType, EthernetFrame, EthernetRepr};
use shoal_wire::icmpv4::{Icmpv4Packet, Icmpv4Repr};
use shoal_wire::ipip;
use shoal_wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use shoal_wire::tcp::{TcpPacket, TcpRepr};
use shoal_wire::udp::{UdpPacket, UdpRepr};
use shoal_wire::Error;

/// What walking a frame down its layers found.
#[derive(Debug, PartialEq)]
pub enum Walked {
    Arp(ArpRepr),
    Tcp(TcpRepr, usize),
    Udp(UdpRepr, usize),
    Icmp,
    Other,
}

/// Parses a frame layer by layer, verifying every checksum.
pub fn walk(frame: &[u8]) -> Result<Walked, Error> {
    let frame = EthernetFrame::new_checked(frame)?;
    EthernetRepr::parse(&frame)?;
    match frame.ethertype() {
        EtherType::Arp => Ok(Walked::Arp(ArpRepr::parse(&ArpPacket::new_checked(
            frame.into_payload(),
        )?)?)),
        EtherType::Ipv4 => walk_ipv4(frame.into_payload()),
        _ => Ok(Walked::Other),
    }
}

/// Parses an IPv4 packet and what it carries, verifying every checksum.
pub fn walk_ipv4(bytes: &[u8]) -> Result<Walked, Error> {
    let packet = Ipv4Packet::new_checked(bytes)?;
    let ip = Ipv4Repr::parse(&packet)?;
    if !packet.verify_checksum() {
        return Err(Error::BadChecksum);
    }
    match ip.protocol {
        IpProtocol::Tcp => {
            let segment = TcpPacket::new_checked(packet.payload())?;
            let repr = TcpRepr::parse(&segment)?;
            if !segment.verify_checksum(ip.src_addr, ip.dst_addr) {
                return Err(Error::BadChecksum);
            }
            Ok(Walked::Tcp(repr, segment.payload().len()))
        }
        IpProtocol::Udp => {
            let datagram = UdpPacket::new_checked(packet.payload())?;
            let repr = UdpRepr::parse(&datagram)?;
            if !datagram.verify_checksum(ip.src_addr, ip.dst_addr) {
                return Err(Error::BadChecksum);
            }
            Ok(Walked::Udp(repr, datagram.payload().len()))
        }
        IpProtocol::Icmp => {
            let message = Icmpv4Packet::new_checked(packet.into_payload())?;
            Icmpv4Repr::parse(&message)?;
            if !message.verify_checksum() {
                return Err(Error::BadChecksum);
            }
            Ok(Walked::Icmp)
        }
        IpProtocol::IpIp => walk_ipv4(ipip::decapsulate(&packet)?.into_inner()),
        IpProtocol::Unknown(_) => Ok(Walked::Other),
    }
}
