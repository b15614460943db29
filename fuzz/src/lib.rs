//! The bodies of Shoal's fuzz targets, one module each.
//!
//! cargo-fuzz runs them with coverage guidance (`fuzz/libfuzzer`, one
//! `fuzz_target!` per entry of [`TARGETS`], `fuzz/run.sh`); `cargo test`
//! replays the checked-in seeds and every regression input through the
//! same functions (`tests/corpus.rs`), so a finding, once fixed, stays
//! fixed without nightly. Each target asserts invariants, not only the
//! absence of panics; a failed assertion is a finding.
//!
//! `fuzz/README.md` lists the targets, how to run them, the coverage they
//! reached and what they found.

// A failed assertion is how a target reports a finding.
#![allow(clippy::missing_panics_doc)]

pub mod channel;
pub mod config;
pub mod handoff;
pub mod http;
pub mod membership;
pub mod pipeline;
pub mod snapshot;
pub mod wire;

use shoal_wire::{
    EtherType, EthernetFrame, Icmpv4Packet, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

/// A target's body: one input, a panic for a finding.
pub type Body = fn(&[u8]);

/// Every target: its name (the cargo-fuzz binary, the corpus directory)
/// and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("wire", wire::run),
    ("http_request", http::request),
    ("response_framing", http::framing),
    ("handoff", handoff::run),
    ("membership", membership::run),
    ("channel", channel::run),
    ("snapshot", snapshot::run),
    ("config", config::run),
    ("pipeline", pipeline::run),
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Body> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Why [`verify`] refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// A header does not parse.
    Malformed(shoal_wire::Error),
    /// The IPv4 header checksum is wrong.
    Ipv4Checksum,
    /// The TCP, UDP or ICMP checksum is wrong.
    L4Checksum,
}

/// Checks every header and checksum of an Ethernet frame down to TCP, UDP
/// or ICMP, through IP-in-IP: what a receiving kernel or NIC would check.
/// Non-IPv4 frames and fragments after the first are only checked as far
/// as they go.
pub fn verify(frame: &[u8]) -> Result<(), Invalid> {
    let eth = EthernetFrame::new_checked(frame).map_err(Invalid::Malformed)?;
    if eth.ethertype() != EtherType::Ipv4 {
        return Ok(());
    }
    verify_ipv4(eth.payload())
}

fn verify_ipv4(bytes: &[u8]) -> Result<(), Invalid> {
    let ip = Ipv4Packet::new_checked(bytes).map_err(Invalid::Malformed)?;
    if !ip.verify_checksum() {
        return Err(Invalid::Ipv4Checksum);
    }
    if ip.is_fragment() {
        return Ok(());
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let ok = match ip.protocol() {
        IpProtocol::Tcp => TcpPacket::new_checked(ip.payload())
            .map_err(Invalid::Malformed)?
            .verify_checksum(src, dst),
        IpProtocol::Udp => UdpPacket::new_checked(ip.payload())
            .map_err(Invalid::Malformed)?
            .verify_checksum(src, dst),
        IpProtocol::Icmp => Icmpv4Packet::new_checked(ip.payload())
            .map_err(Invalid::Malformed)?
            .verify_checksum(),
        IpProtocol::IpIp => return verify_ipv4(ip.payload()),
        IpProtocol::Unknown(_) => true,
    };
    if ok {
        Ok(())
    } else {
        Err(Invalid::L4Checksum)
    }
}
