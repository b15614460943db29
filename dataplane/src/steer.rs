//! Flow steering between the workers of one dataplane: which worker owns a
//! frame, whichever queue it arrived on.
//!
//! Every worker has its own flow table, SYN-cookie state, splice slots and
//! handoff state, so every frame of a connection must be processed by the
//! same worker: the connection's **owner**, a pure function of the
//! connection's 4-tuple ([`owner`]). Each frame kind names the tuple its own
//! way ([`classify`]):
//!
//! | frame | the tuple is |
//! |---|---|
//! | client → VIP from the wire (broadcast, MAC-rewritten by an inspector) | source → destination |
//! | IP-in-IP to this member's address (DPR tunnel) | the inner packet's |
//! | routed mode's GUE to this member's address (UDP 7948) | the inner packet's |
//! | handoff `offer` to this member's address | the offer's client and VIP |
//! | handoff `located` (routed: where a connection is) | its client and VIP |
//! | handoff `accept`/`refuse` | none: the handoff id's lane names the worker that offered ([`shoal_l7::handoff::lane_of`]) |
//! | ICMP error to the VIP | the quoted packet's (a VIP → client packet) |
//! | from the kernel (TAP) with a VIP source | destination → source (the reply direction) |
//! | ICMP error from the kernel about a client packet | the quoted packet's |
//! | IP fragments | client address and port 0 (only the first fragment has ports) |
//! | anything else (ARP, the member's own traffic, malformed frames) | none: the receiving worker handles it |
//!
//! The owner function is the symmetric Toeplitz hash that NICs compute for
//! RSS, with the key [`SYMMETRIC_RSS_KEY`] (0x6d5a repeated), folded through
//! a 128-entry redirection table (`reta[i] = i % workers`) exactly as
//! `rte_softrss` + a default RETA do: a port that can do RSS with that key
//! and table already delivers every client → VIP frame to its owner's queue,
//! and both directions of a connection hash alike (the key is symmetric).
//! The symmetric key makes the hash depend only on the XOR of the tuple's
//! 16-bit words: good enough to spread connections over queues, never used
//! as a flow-table or cluster hash.
//!
//! Where hardware does not steer (vdevs, the TAP, tunnels), the worker that
//! received a frame passes it to its owner over a bounded lock-free SPSC
//! ring (`worker.rs`). Nothing here allocates or touches shared state.

use std::net::Ipv4Addr;

use crate::io::PortId;
use crate::pipeline::{Tables, KERNEL};
use shoal_l7::handoff::message::field as handoff_field;
use shoal_l7::handoff::{lane_of, HandoffId};
use shoal_wire::gue;

/// The 40-byte symmetric RSS key (0x6d5a repeated): hash(a→b) = hash(b→a).
pub const SYMMETRIC_RSS_KEY: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// Entries of the redirection table (as most NICs' default RETA).
pub const RETA_SIZE: usize = 128;

/// Most workers a dataplane runs (a handoff lane is 8 bits).
pub const MAX_WORKERS: usize = 64;

/// A connection's 4-tuple, client side first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Client address.
    pub client: Ipv4Addr,
    /// Client port (0 for fragments and port-less protocols).
    pub client_port: u16,
    /// VIP address.
    pub vip: Ipv4Addr,
    /// VIP port (0 for fragments and port-less protocols).
    pub vip_port: u16,
}

/// Who must process a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steer {
    /// Whichever worker received it (no connection state involved).
    Here,
    /// The owner of this connection.
    Flow(Tuple),
    /// This worker (a handoff answer's lane).
    Worker(usize),
}

/// The 32-bit window of the key starting at bit `8 * byte` (the key repeats
/// every 2 bytes, so only the parity of `byte` matters), for each bit of a
/// byte: `TABLE[parity][value]` is the XOR of the windows of `value`'s set
/// bits.
const TOEPLITZ: [[u32; 256]; 2] = {
    let mut t = [[0u32; 256]; 2];
    let mut parity = 0;
    while parity < 2 {
        let mut value = 0;
        while value < 256 {
            let mut acc = 0u32;
            let mut bit = 0;
            while bit < 8 {
                if value & (0x80 >> bit) != 0 {
                    // The window starts at key bit 8 * parity + bit.
                    let start = 8 * parity + bit;
                    let b0 = start / 8;
                    let shift = start % 8;
                    let word = (SYMMETRIC_RSS_KEY[b0] as u64) << 32
                        | (SYMMETRIC_RSS_KEY[b0 + 1] as u64) << 24
                        | (SYMMETRIC_RSS_KEY[b0 + 2] as u64) << 16
                        | (SYMMETRIC_RSS_KEY[b0 + 3] as u64) << 8
                        | SYMMETRIC_RSS_KEY[b0 + 4] as u64;
                    acc ^= ((word << shift) >> 8) as u32;
                }
                bit += 1;
            }
            t[parity][value] = acc;
            value += 1;
        }
        parity += 1;
    }
    t
};

/// The Toeplitz hash of `tuple` under [`SYMMETRIC_RSS_KEY`], over the bytes a
/// NIC hashes for TCP/UDP over IPv4 (source address, destination address,
/// source port, destination port, network order) with the client as the
/// source: what `rte_softrss` returns for that tuple and key.
pub fn rss_hash(tuple: &Tuple) -> u32 {
    let mut input = [0u8; 12];
    input[..4].copy_from_slice(&tuple.client.octets());
    input[4..8].copy_from_slice(&tuple.vip.octets());
    input[8..10].copy_from_slice(&tuple.client_port.to_be_bytes());
    input[10..].copy_from_slice(&tuple.vip_port.to_be_bytes());
    input
        .iter()
        .enumerate()
        .fold(0, |h, (i, &b)| h ^ TOEPLITZ[i % 2][usize::from(b)])
}

/// The worker that owns `tuple` among `workers` workers.
pub fn owner(tuple: &Tuple, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    // reta[i] = i % workers, indexed by the hash's low bits.
    (rss_hash(tuple) as usize % RETA_SIZE) % workers
}

/// The worker among `workers` that owns the flow `key` (either direction:
/// the hash is symmetric).
pub fn flow_owner(key: &crate::flow::FlowKey, workers: usize) -> usize {
    owner(
        &Tuple {
            client: key.src,
            client_port: key.src_port,
            vip: key.dst,
            vip_port: key.dst_port,
        },
        workers,
    )
}

/// The redirection table [`owner`] uses, for programming a NIC.
pub fn reta(workers: usize) -> [u16; RETA_SIZE] {
    let mut t = [0u16; RETA_SIZE];
    for (i, e) in t.iter_mut().enumerate() {
        *e = (i % workers.max(1)) as u16;
    }
    t
}

/// The worker that must process `frame`, received on `port`, of `workers`.
pub fn target(port: PortId, frame: &[u8], tables: &Tables, workers: usize) -> Option<usize> {
    match classify(port, frame, tables) {
        Steer::Here => None,
        Steer::Flow(t) => Some(owner(&t, workers)),
        Steer::Worker(w) => Some(w % workers.max(1)),
    }
}

const ETH_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const PROTO_ICMP: u8 = 1;
const PROTO_IPIP: u8 = 4;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Which worker a frame belongs to (see the module table). Never fails:
/// frames it cannot read are [`Steer::Here`] (the pipeline counts them).
pub fn classify(port: PortId, frame: &[u8], tables: &Tables) -> Steer {
    if frame.len() < ETH_LEN || be16(frame, 12) != Some(ETHERTYPE_IPV4) {
        return Steer::Here;
    }
    let Some(ip) = Ip::parse(&frame[ETH_LEN..]) else {
        return Steer::Here;
    };
    if port == KERNEL {
        if !tables.is_vip(ip.src) {
            return Steer::Here;
        }
        if ip.proto == PROTO_ICMP && !ip.fragment {
            // An error about a client packet quotes client -> VIP.
            if let Some(q) = icmp_quote(ip.payload) {
                return Steer::Flow(q.forward());
            }
        }
        return Steer::Flow(ip.forward().reversed());
    }
    if ip.dst == tables.own_addr {
        return match ip.proto {
            PROTO_IPIP if !ip.fragment => match Ip::parse(ip.payload) {
                Some(inner) if tables.is_vip(inner.dst) => Steer::Flow(inner.forward()),
                _ => Steer::Here,
            },
            PROTO_UDP
                if !ip.fragment && tables.routed && be16(ip.payload, 2) == Some(gue::PORT) =>
            {
                // Routed mode's GUE: the inner packet's connection.
                match ip
                    .payload
                    .get(8 + gue::field::HEADER_LEN..)
                    .and_then(Ip::parse)
                {
                    Some(inner) if tables.is_vip(inner.dst) => Steer::Flow(inner.forward()),
                    _ => Steer::Here,
                }
            }
            PROTO_UDP if !ip.fragment => handoff(ip.payload),
            _ => Steer::Here,
        };
    }
    if !tables.is_vip(ip.dst) {
        return Steer::Here;
    }
    if ip.proto == PROTO_ICMP && !ip.fragment {
        // An error about a VIP -> client packet quotes it.
        if let Some(q) = icmp_quote(ip.payload) {
            return Steer::Flow(q.forward().reversed());
        }
    }
    Steer::Flow(ip.forward())
}

/// A handoff datagram's owner: an offer's connection, an answer's lane.
fn handoff(udp: &[u8]) -> Steer {
    if be16(udp, 2) != Some(shoal_l7::handoff::PORT) {
        return Steer::Here;
    }
    let Some(msg) = udp.get(8..) else {
        return Steer::Here;
    };
    let body = handoff_field::HEADER_LEN;
    // Where the client and VIP (address, port) are in an offer's or a
    // located's body.
    let at = match msg.get(handoff_field::KIND) {
        Some(1) => [
            handoff_field::offer::CLIENT_ADDR.start,
            handoff_field::offer::CLIENT_PORT.start,
            handoff_field::offer::VIP_ADDR.start,
            handoff_field::offer::VIP_PORT.start,
        ],
        Some(4) => {
            let (c, v) = (
                handoff_field::located::CLIENT.start,
                handoff_field::located::VIP.start,
            );
            [c, c + 4, v, v + 4]
        }
        _ => [0; 4],
    };
    match msg.get(handoff_field::KIND) {
        Some(1 | 4) => {
            match (
                addr(msg, body + at[0]),
                be16(msg, body + at[1]),
                addr(msg, body + at[2]),
                be16(msg, body + at[3]),
            ) {
                (Some(client), Some(client_port), Some(vip), Some(vip_port)) => {
                    Steer::Flow(Tuple {
                        client,
                        client_port,
                        vip,
                        vip_port,
                    })
                }
                _ => Steer::Here,
            }
        }
        Some(2 | 3) => match msg
            .get(handoff_field::HANDOFF_ID)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
        {
            Some(id) => Steer::Worker(usize::from(lane_of(HandoffId(u64::from_be_bytes(id))))),
            None => Steer::Here,
        },
        _ => Steer::Here,
    }
}

/// The packet an ICMP error (unreachable, time exceeded, parameter
/// problem) quotes: its IPv4 header and first 8 bytes.
fn icmp_quote(icmp: &[u8]) -> Option<Ip<'_>> {
    match icmp.first()? {
        3 | 11 | 12 => Ip::parse(icmp.get(8..)?),
        _ => None,
    }
}

/// The fields of an IPv4 header steering needs.
#[derive(Debug, Clone, Copy)]
struct Ip<'a> {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    fragment: bool,
    /// Source and destination ports (TCP, UDP, first fragments only).
    ports: Option<(u16, u16)>,
    payload: &'a [u8],
}

impl<'a> Ip<'a> {
    fn parse(b: &'a [u8]) -> Option<Ip<'a>> {
        let first = *b.first()?;
        if first >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(first & 0x0f) * 4;
        if ihl < 20 || b.len() < ihl {
            return None;
        }
        let flags_frag = be16(b, 6)?;
        let more = flags_frag & 0x2000 != 0;
        let offset = flags_frag & 0x1fff;
        let proto = b[9];
        // A quoted header is followed by 8 bytes only: no total length check.
        let payload = &b[ihl..];
        let ports = if offset == 0 && matches!(proto, PROTO_TCP | PROTO_UDP) {
            Some((be16(payload, 0)?, be16(payload, 2)?))
        } else {
            None
        };
        Some(Ip {
            src: addr(b, 12)?,
            dst: addr(b, 16)?,
            proto,
            fragment: more || offset != 0,
            ports: if more || offset != 0 { None } else { ports },
            payload,
        })
    }

    /// The tuple with this packet's source as the client.
    fn forward(&self) -> Tuple {
        let (sp, dp) = self.ports.unwrap_or((0, 0));
        Tuple {
            client: self.src,
            client_port: sp,
            vip: self.dst,
            vip_port: dp,
        }
    }
}

impl Tuple {
    /// The same connection seen from the other end.
    fn reversed(self) -> Tuple {
        Tuple {
            client: self.vip,
            client_port: self.vip_port,
            vip: self.client,
            vip_port: self.client_port,
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn addr(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rte_softrss` as DPDK writes it (`rte_thash.h`), bit by bit over the
    /// tuple's 32-bit words in host order: the reference for the table.
    fn softrss(words: &[u32], key: &[u8]) -> u32 {
        let mut ret = 0u32;
        for (j, &w) in words.iter().enumerate() {
            for i in (0..32).rev() {
                if w & (1 << i) != 0 {
                    let bit = 32 * j + (31 - i);
                    let b = bit / 8;
                    let k = u64::from(key[b]) << 32
                        | u64::from(key[b + 1]) << 24
                        | u64::from(key[b + 2]) << 16
                        | u64::from(key[b + 3]) << 8
                        | u64::from(key[b + 4]);
                    ret ^= ((k << (bit % 8)) >> 8) as u32;
                }
            }
        }
        ret
    }

    fn tuple(seed: u64) -> Tuple {
        let x = shoal_select::mix64(seed);
        Tuple {
            client: Ipv4Addr::from((x >> 32) as u32),
            client_port: (x >> 16) as u16,
            vip: Ipv4Addr::from(0xc612_0064 ^ (x as u32 & 0xff)),
            vip_port: x as u16,
        }
    }

    #[test]
    fn hash_equals_rte_softrss_and_is_symmetric() {
        for seed in 0..2000 {
            let t = tuple(seed);
            // rte_ipv4_tuple in host order: src, dst, (sport << 16 | dport).
            let words = [
                u32::from(t.client),
                u32::from(t.vip),
                u32::from(t.client_port) << 16 | u32::from(t.vip_port),
            ];
            assert_eq!(rss_hash(&t), softrss(&words, &SYMMETRIC_RSS_KEY), "{t:?}");
            assert_eq!(rss_hash(&t), rss_hash(&t.reversed()));
        }
    }

    #[test]
    fn owner_spreads_one_client_over_the_workers() {
        // One client address, many ports (the lab's case): every worker gets
        // a fair share.
        for workers in [2, 3, 4, 8] {
            let mut per = vec![0usize; workers];
            for port in 1024..(1024 + 4096) {
                let t = Tuple {
                    client: Ipv4Addr::new(198, 18, 0, 2),
                    client_port: port,
                    vip: Ipv4Addr::new(198, 18, 0, 100),
                    vip_port: 80,
                };
                per[owner(&t, workers)] += 1;
            }
            let fair = 4096 / workers;
            assert!(
                per.iter().all(|&n| n > fair * 3 / 4 && n < fair * 5 / 4),
                "{workers} workers: {per:?}"
            );
        }
        assert_eq!(reta(3)[..4], [0, 1, 2, 0]);
    }
}
