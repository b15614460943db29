//! Synthetic client traffic: frame builders and a deterministic generator of
//! client-side captures (many clients opening connections to a VIP service).
//!
//! Used by `shoal-dataplane gen-trace` (the demo and operators trying a
//! config), by the replay tests and by the pipeline benchmark. Frames are
//! built with the `wire` reprs, so checksums and lengths are exact.

use core::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags, TcpOptionBytes, TcpPacket, TcpRepr, UdpPacket,
    UdpRepr,
};
use shoal_select::mix64;

/// One end of a conversation at layer 2 to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// MAC address.
    pub mac: EthernetAddress,
    /// IPv4 address.
    pub ip: Ipv4Addr,
    /// Port (ignored for ARP/ICMP).
    pub port: u16,
}

/// A TCP header as Linux clients send it: window 64240, and on SYNs the
/// options MSS 1460, SACK-permitted, timestamps, window scale 7.
pub fn tcp_header(
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: Option<u32>,
    flags: TcpFlags,
) -> TcpRepr {
    let syn = flags.contains(TcpFlags::SYN);
    TcpRepr {
        src_port,
        dst_port,
        seq_number: seq,
        ack_number: ack,
        flags: if ack.is_some() {
            flags | TcpFlags::ACK
        } else {
            flags
        },
        window_len: if syn { 64_240 } else { 502 },
        urgent: 0,
        mss: syn.then_some(1460),
        window_scale: syn.then_some(7),
        sack_permitted: syn,
        sack_ranges: [None; 4],
        timestamps: Some((seq.rotate_left(7), ack.unwrap_or(0))),
        unknown_options: TcpOptionBytes::default(),
    }
}

fn ip_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
    payload_len: usize,
    ident: u16,
) -> Ipv4Repr {
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len,
        ttl: 64,
        ident,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    }
}

/// Ethernet + IPv4 frame around an L4 payload of `l4_len` bytes written by
/// `emit_l4` (the IPv4 checksum filled in after).
pub fn ipv4_frame(
    src: &Endpoint,
    dst: &Endpoint,
    protocol: IpProtocol,
    l4_len: usize,
    ident: u16,
    emit_l4: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let eth = EthernetRepr {
        src_addr: src.mac,
        dst_addr: dst.mac,
        vlan: None,
        inner_vlan: None,
        ethertype: EtherType::Ipv4,
    };
    let ip = ip_header(src.ip, dst.ip, protocol, l4_len, ident);
    let mut buf = vec![0u8; eth.buffer_len(20 + l4_len)];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet);
    emit_l4(packet.payload_mut());
    packet.fill_checksum();
    buf
}

/// A complete TCP frame from `src` to `dst`.
pub fn tcp_frame(
    src: &Endpoint,
    dst: &Endpoint,
    tcp: &TcpRepr,
    payload: &[u8],
    ident: u16,
) -> Vec<u8> {
    let l4_len = tcp.buffer_len(payload.len());
    ipv4_frame(src, dst, IpProtocol::Tcp, l4_len, ident, |l4| {
        let mut seg = TcpPacket::new_unchecked(l4);
        tcp.emit(&mut seg, src.ip, dst.ip, payload);
    })
}

/// A complete UDP frame from `src` to `dst`.
pub fn udp_frame(src: &Endpoint, dst: &Endpoint, payload: &[u8], ident: u16) -> Vec<u8> {
    let udp = UdpRepr {
        src_port: src.port,
        dst_port: dst.port,
    };
    ipv4_frame(src, dst, IpProtocol::Udp, 8 + payload.len(), ident, |l4| {
        let mut dgram = UdpPacket::new_unchecked(l4);
        udp.emit(&mut dgram, src.ip, dst.ip, payload);
    })
}

/// A broadcast ARP request from `src` asking for `target`.
pub fn arp_request(src: &Endpoint, target: Ipv4Addr) -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: src.mac,
        source_protocol_addr: src.ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let eth = EthernetRepr {
        src_addr: src.mac,
        dst_addr: EthernetAddress::BROADCAST,
        vlan: None,
        inner_vlan: None,
        ethertype: EtherType::Arp,
    };
    let mut buf = vec![0u8; eth.buffer_len(arp.buffer_len())];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    buf
}

/// What [`client_trace`] generates.
#[derive(Debug, Clone)]
pub struct TraceSpec {
    /// The service: cluster MAC, VIP and port.
    pub service: Endpoint,
    /// Distinct client hosts (addresses 198.19.0.1 upward).
    pub clients: u32,
    /// Connections in total, spread over the clients.
    pub connections: u32,
    /// Seed of the deterministic choices (ports, ISNs).
    pub seed: u64,
    /// Time between consecutive frames.
    pub gap: Duration,
    /// 0: each connection is a short exchange ending with FIN (a replay
    /// re-creates every flow: connection churn). N > 0: each connection is
    /// opened (SYN, ACK) and then sends N pure ACKs, round-robin over the
    /// connections, and never closes: a looped replay is established
    /// traffic only (its SYNs come again once per pass, as retransmissions
    /// of the flows' own SYNs, which keep the flows).
    pub established_rounds: u32,
}

impl TraceSpec {
    /// A spec for `connections` connections from `clients` clients to `service`.
    pub fn new(service: Endpoint, clients: u32, connections: u32) -> Self {
        TraceSpec {
            service,
            clients: clients.max(1),
            connections,
            seed: 1,
            gap: Duration::from_micros(10),
            established_rounds: 0,
        }
    }
}

/// The address and MAC of client number `i` (0-based): 198.19.0.0/16,
/// MAC 02:00:c6:13:hi:lo.
pub fn client_endpoint(i: u32, port: u16) -> Endpoint {
    let n = i % 65_534 + 1;
    let [_, _, hi, lo] = n.to_be_bytes();
    Endpoint {
        mac: EthernetAddress([0x02, 0x00, 0xc6, 0x13, hi, lo]),
        ip: Ipv4Addr::new(198, 19, hi, lo),
        port,
    }
}

/// The client side of `spec.connections` short HTTP-like connections, as a
/// capture on the shared segment would show it: each client first ARPs for
/// the VIP; each connection is SYN, ACK, request (PSH+ACK), two ACKs of
/// response data, FIN+ACK, final ACK. Connections interleave round-robin so
/// many are open at once. Timestamps start at 1 s and advance by `gap`.
pub fn client_trace(spec: &TraceSpec) -> Vec<(Duration, Vec<u8>)> {
    const STEPS: u32 = 7;
    if spec.established_rounds > 0 {
        return established_trace(spec);
    }
    let mut out = Vec::new();
    let mut t = Duration::from_secs(1);
    let mut ident: u16 = 1;
    let request = format!(
        "GET /whoami HTTP/1.1\r\nHost: {}\r\nUser-Agent: shoal-gen\r\n\r\n",
        spec.service.ip
    );
    let clients = spec.clients.min(spec.connections.max(1));
    for c in 0..clients {
        out.push((t, arp_request(&client_endpoint(c, 0), spec.service.ip)));
        t += spec.gap;
    }
    // Interleave: open a window of connections, step each through its exchange.
    let window = 64u32;
    let mut first = 0;
    while first < spec.connections {
        let last = (first + window).min(spec.connections);
        for step in 0..STEPS {
            for conn in first..last {
                let (client, isn, srv_isn) = connection(spec, conn, clients);
                let port = client.port;
                let svc = &spec.service;
                let req_len = request.len() as u32;
                let (repr, payload): (TcpRepr, &[u8]) = match step {
                    0 => (tcp_header(port, svc.port, isn, None, TcpFlags::SYN), &[]),
                    1 => (
                        tcp_header(port, svc.port, isn + 1, Some(srv_isn + 1), TcpFlags::ACK),
                        &[],
                    ),
                    2 => (
                        tcp_header(port, svc.port, isn + 1, Some(srv_isn + 1), TcpFlags::PSH),
                        request.as_bytes(),
                    ),
                    3 => (
                        tcp_header(
                            port,
                            svc.port,
                            isn + 1 + req_len,
                            Some(srv_isn + 1 + 1448),
                            TcpFlags::ACK,
                        ),
                        &[],
                    ),
                    4 => (
                        tcp_header(
                            port,
                            svc.port,
                            isn + 1 + req_len,
                            Some(srv_isn + 1 + 2000),
                            TcpFlags::ACK,
                        ),
                        &[],
                    ),
                    5 => (
                        tcp_header(
                            port,
                            svc.port,
                            isn + 1 + req_len,
                            Some(srv_isn + 2001),
                            TcpFlags::FIN,
                        ),
                        &[],
                    ),
                    _ => (
                        tcp_header(
                            port,
                            svc.port,
                            isn + 2 + req_len,
                            Some(srv_isn + 2002),
                            TcpFlags::ACK,
                        ),
                        &[],
                    ),
                };
                out.push((t, tcp_frame(&client, svc, &repr, payload, ident)));
                ident = ident.wrapping_add(1);
                t += spec.gap;
            }
        }
        first = last;
    }
    out
}

/// The client, port and initial sequence numbers (client, server) of
/// connection `conn` of `spec`.
fn connection(spec: &TraceSpec, conn: u32, clients: u32) -> (Endpoint, u32, u32) {
    let h = mix64(spec.seed ^ u64::from(conn));
    let port = 10_000 + (h % 50_000) as u16;
    (
        client_endpoint(conn % clients, port),
        (h >> 16) as u32,
        (h >> 32) as u32 ^ 0x5555_5555,
    )
}

/// [`client_trace`] with `established_rounds > 0`: ARPs, every connection's
/// SYN and ACK, then `established_rounds` rounds of one pure ACK per
/// connection (each acknowledging 1448 more bytes of response): minimum-size
/// frames of established flows, as a DSR member mostly sees from clients.
fn established_trace(spec: &TraceSpec) -> Vec<(Duration, Vec<u8>)> {
    let mut out = Vec::new();
    let mut t = Duration::from_secs(1);
    let mut ident: u16 = 1;
    let clients = spec.clients.min(spec.connections.max(1));
    for c in 0..clients {
        out.push((t, arp_request(&client_endpoint(c, 0), spec.service.ip)));
        t += spec.gap;
    }
    let svc = &spec.service;
    let mut push = |out: &mut Vec<_>, client: &Endpoint, repr: TcpRepr| {
        out.push((t, tcp_frame(client, svc, &repr, &[], ident)));
        ident = ident.wrapping_add(1);
        t += spec.gap;
    };
    for conn in 0..spec.connections {
        let (client, isn, _) = connection(spec, conn, clients);
        let syn = tcp_header(client.port, svc.port, isn, None, TcpFlags::SYN);
        push(&mut out, &client, syn);
    }
    for round in 0..=spec.established_rounds {
        for conn in 0..spec.connections {
            let (client, isn, srv_isn) = connection(spec, conn, clients);
            let acked = srv_isn
                .wrapping_add(1)
                .wrapping_add(round.wrapping_mul(1448));
            let ack = tcp_header(client.port, svc.port, isn + 1, Some(acked), TcpFlags::ACK);
            push(&mut out, &client, ack);
        }
    }
    out
}

/// Writes frames to a pcap file (Ethernet, microsecond timestamps).
pub fn write_pcap(path: &std::path::Path, frames: &[(Duration, Vec<u8>)]) -> std::io::Result<()> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let header = PcapHeader {
        datalink: pcap_file::DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(file, header).map_err(std::io::Error::other)?;
    for (ts, data) in frames {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        w.write_packet(&PcapPacket::new(*ts, len, data))
            .map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// Reads every frame of a pcap file.
pub fn read_pcap(path: &std::path::Path) -> std::io::Result<Vec<(Duration, Vec<u8>)>> {
    use pcap_file::pcap::PcapReader;
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut r = PcapReader::new(file).map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.map_err(std::io::Error::other)?;
        out.push((p.timestamp, p.data.into_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Endpoint {
        Endpoint {
            mac: EthernetAddress([0x02, 0, 0xc6, 0x12, 0, 0x64]),
            ip: Ipv4Addr::new(198, 18, 0, 100),
            port: 80,
        }
    }

    #[test]
    fn built_frames_parse_with_valid_checksums() {
        let client = client_endpoint(0, 40_000);
        let f = tcp_frame(
            &client,
            &service(),
            &tcp_header(40_000, 80, 7, None, TcpFlags::SYN),
            &[],
            9,
        );
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src_addr(), Ipv4Addr::new(198, 19, 0, 1));
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert!(tcp.syn() && !tcp.ack());
        assert_eq!(
            (tcp.mss(), tcp.window_scale(), tcp.sack_permitted()),
            (Some(1460), Some(7), true)
        );
        assert_eq!(f.len(), 14 + 20 + 40);
    }

    #[test]
    fn established_trace_opens_once_then_only_acks() {
        let mut spec = TraceSpec::new(service(), 10, 100);
        spec.established_rounds = 5;
        let a = client_trace(&spec);
        // 10 ARPs, 100 SYNs, then the handshake ACK + 5 ACKs per connection.
        assert_eq!(a.len(), 10 + 100 + 6 * 100);
        let flags: Vec<(bool, bool, bool, usize, u32)> = a[10..]
            .iter()
            .map(|(_, f)| {
                let eth = EthernetFrame::new_checked(&f[..]).unwrap();
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
                assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()));
                let ack = tcp.ack_number();
                (tcp.syn(), tcp.ack(), tcp.fin(), tcp.payload().len(), ack)
            })
            .collect();
        assert!(flags[..100].iter().all(|f| f.0 && !f.1));
        assert!(flags[100..].iter().all(|f| !f.0 && f.1 && !f.2 && f.3 == 0));
        // Each round acknowledges 1448 more bytes of the same connection.
        assert_eq!(flags[200].4.wrapping_sub(flags[100].4), 1448);
        assert_eq!(flags[700 - 1].4.wrapping_sub(flags[199].4), 5 * 1448);
    }

    #[test]
    fn trace_is_deterministic_and_complete() {
        let spec = TraceSpec::new(service(), 10, 100);
        let a = client_trace(&spec);
        assert_eq!(a, client_trace(&spec));
        // 10 ARP requests + 7 frames per connection.
        assert_eq!(a.len(), 10 + 7 * 100);
        let syns = a
            .iter()
            .filter(|(_, f)| {
                let eth = EthernetFrame::new_checked(&f[..]).unwrap();
                eth.ethertype() == EtherType::Ipv4 && {
                    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
                    tcp.syn()
                }
            })
            .count();
        assert_eq!(syns, 100);
        assert!(a.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
