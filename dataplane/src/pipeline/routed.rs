//! Routed mode (`dataplane.topology = "routed"`, issue 18): routers in
//! front spread a VIP over the members by ECMP, so each client packet
//! reaches one member, the *receiver*, and no member sees the others'
//! packets. There is no inspector election and no "not mine: drop".
//!
//! - The receiver computes the connection's *target* with the service's
//!   consistent selection over the current tables ([`Tables::routed_target`];
//!   every member computes the same) and serves the packet if it is the
//!   target, or sends it in GUE (`shoal_wire::gue`) to the target, whose
//!   kernel answers the client directly. The receiver keeps no flow, so a
//!   connection the router moves to another receiver reaches the same target.
//! - The target keeps a flow for each connection whose SYN it accepted;
//!   a packet of a connection it holds a flow for is served here, whatever
//!   the tables say now.
//! - *Second chance* (as GitHub's GLB Director): the GUE header names the
//!   *alternate*, the target under the previous tables (the last ones whose
//!   membership differed, `Pipeline::previous`). A target with no flow for a
//!   non-SYN packet forwards it once to the alternate, marked so that the
//!   alternate never forwards it again (no loops); a SYN always stays on the
//!   first target. So an established connection survives one membership
//!   change that moves its target; one that moved twice before its next
//!   packet is dropped, counted (`routed_second_chance_dropped`).
//! - GUE is accepted only from a member's address (current or previous
//!   tables), never from another host.
//!
//! This module decides and (re)builds the encapsulation; it owns no state
//! besides what `Pipeline` keeps (the flow table, `previous`). It must not
//! change the segment mode: every entry point is reached only when
//! `Tables::routed`.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use shoal_select::ClientKey;
use shoal_wire::gue::{self, GuePacket, GueRepr};
use shoal_wire::time::Instant;

use shoal_config::Mode;
use shoal_l7::handoff::{Located, Message};

use super::reuse::SynOnFlow;
use super::{FlowAction, FlowEntry, Pipeline, Plan, Tables, Verdict, ETH_LEN, KERNEL, WIRE};
use crate::counters::{Counter, Layer};
use crate::flow::{FlowKey, FlowState, Insert};
use crate::io::Frame;
use crate::wire::{
    icmpv4, Error, EthernetAddress, EthernetFrame, Icmpv4Packet, Icmpv4Repr, IpProtocol,
    Ipv4Packet, Ipv4Repr, TcpPacket, UdpPacket,
};

/// Bytes GUE adds before the client's packet (outer IPv4, UDP, GUE header).
pub(super) const GUE_OVERHEAD: u16 = gue::OVERHEAD as u16;

/// Keys each service is probed with to tell whether new tables select
/// differently (besides the member list itself): a config reload that
/// changes `[selection]` with the same members.
const PROBES: u32 = 64;

/// What the GUE header of a packet that arrived encapsulated said.
#[derive(Debug, Clone, Copy)]
struct Arrived {
    /// The member that sent it (outer source address).
    from: Ipv4Addr,
    /// The alternate target's address, if listed.
    alternate: Option<Ipv4Addr>,
    /// Already forwarded to the alternate: never forward again.
    second_chance: bool,
    /// Bytes of outer IPv4, UDP and GUE header before the inner packet.
    outer_len: usize,
}

/// Whether `new` selects routed targets differently from `old` (members,
/// their effective weights or roles, or a service's selection), so that
/// `old` becomes the previous tables. False outside routed mode (the
/// previous tables are only read there).
pub(super) fn membership_changed(old: &Tables, new: &Tables) -> bool {
    if !new.routed {
        return false;
    }
    let view = |t: &Tables| -> Vec<(u16, Ipv4Addr, u32, bool)> {
        t.members
            .iter()
            .map(|m| (m.id, m.addr, m.effective_weight(), t.serves(m.id)))
            .collect()
    };
    if view(old) != view(new) {
        return true;
    }
    new.services.iter().enumerate().any(|(i, s)| {
        let Some(j) = old.service_index(s.vip, s.port, s.protocol) else {
            return true;
        };
        (0..PROBES).any(|n| {
            let client = ClientKey {
                addr: Ipv4Addr::from(n.wrapping_mul(0x9e37_79b9)),
                port: (n as u16).wrapping_mul(40_503),
            };
            new.routed_target(i, client) != old.routed_target(j, client)
        })
    })
}

/// Whether `action` is a splice connection's (handled by the segment's
/// splice path, `routed_splice_hit`).
fn is_splice(action: FlowAction) -> bool {
    matches!(
        action,
        FlowAction::Splicing { .. }
            | FlowAction::Spliced(_)
            | FlowAction::Tracked { .. }
            | FlowAction::HandedOff { .. }
    )
}

/// The segment path's plan for a packet that may have arrived in GUE: one
/// for this kernel loses its outer headers (its outcome is counted).
fn to_kernel(plan: Plan, arrived: Option<Arrived>) -> Plan {
    match (plan, arrived) {
        (Plan::Done(Verdict::Forward(KERNEL)), Some(a)) => Plan::Decap {
            outer_len: a.outer_len,
        },
        (plan, _) => plan,
    }
}

/// What the outer headers of a GUE frame say besides the addresses.
struct Outer {
    ident: u16,
    dont_frag: bool,
    dscp_ecn: u8,
    /// The connection's entropy (UDP source port).
    entropy: u16,
    repr: GueRepr,
}

impl Outer {
    /// The outer fields for the IPv4 packet `inner`.
    fn of(inner: &[u8], ident: u16, repr: GueRepr) -> Outer {
        let ip = Ipv4Packet::new_unchecked(inner);
        let ports = ip
            .payload()
            .get(..4)
            .map_or(0, |p| u32::from_be_bytes([p[0], p[1], p[2], p[3]]));
        let mix = u32::from(ip.src_addr()) ^ u32::from(ip.dst_addr()).rotate_left(16) ^ ports;
        Outer {
            ident,
            dont_frag: ip.dont_frag(),
            dscp_ecn: ip.dscp_ecn(),
            entropy: (mix.wrapping_mul(0x9e37_79b1) >> 18) as u16,
            repr,
        }
    }

    /// Writes the Ethernet (source and destination), outer IPv4, UDP and GUE
    /// headers before the `inner_len` bytes of inner packet at the end of
    /// `bytes` (Ethernet type already IPv4).
    fn emit(
        &self,
        bytes: &mut [u8],
        from: (EthernetAddress, Ipv4Addr),
        to: (EthernetAddress, Ipv4Addr),
        inner_len: usize,
    ) {
        let mut eth = EthernetFrame::new_unchecked(&mut bytes[..]);
        eth.set_dst_addr(to.0);
        eth.set_src_addr(from.0);
        let udp_len = 8 + gue::field::HEADER_LEN + inner_len;
        let outer = Ipv4Repr {
            src_addr: from.1,
            dst_addr: to.1,
            protocol: IpProtocol::Udp,
            payload_len: udp_len,
            ttl: 64,
            ident: self.ident,
            dont_frag: self.dont_frag,
            more_frags: false,
            frag_offset: 0,
            dscp_ecn: self.dscp_ecn,
        };
        let mut ip = Ipv4Packet::new_unchecked(&mut bytes[ETH_LEN..]);
        outer.emit(&mut ip);
        ip.fill_checksum();
        let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
        // Source port: the connection's entropy in the dynamic range
        // (receive-side scaling at the target); checksum 0 (none, RFC 768).
        udp.set_src_port(0xc000 | self.entropy);
        udp.set_dst_port(gue::PORT);
        udp.set_len(udp_len as u16);
        udp.set_checksum(0);
        self.repr
            .emit(&mut GuePacket::new_unchecked(udp.payload_mut()));
    }
}

impl Pipeline {
    /// A VIP packet from a router (IPv4 header and checksum checked).
    pub(super) fn routed_from_wire(
        &mut self,
        ip: &mut Ipv4Packet<&mut [u8]>,
        src_mac: EthernetAddress,
        now: Instant,
    ) -> Plan {
        // Where this member's own answers to clients go (splice).
        self.router_mac = Some(src_mac);
        if ip.is_fragment() {
            return Plan::Done(self.drop(Counter::DropRoutedFragment));
        }
        if let Err(e) = ip.check_options() {
            return Plan::Done(self.malformed(Layer::Ipv4, e));
        }
        let (src, dst, protocol) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
        self.routed_vip(src, dst, protocol, ip.payload_mut(), None, now)
    }

    /// GUE to this member's address: from a member only, a header this
    /// version writes, an intact IPv4 packet to a VIP inside; then placed as
    /// a packet this member is the target of (or the alternate of).
    pub(super) fn routed_decap(&mut self, outer: &mut Ipv4Packet<&mut [u8]>, now: Instant) -> Plan {
        let from = outer.src_addr();
        if !self.is_other_member(from) {
            return Plan::Done(self.drop(Counter::DropEncapNotMember));
        }
        if outer.is_fragment() {
            return Plan::Done(self.drop(Counter::DropEncapMalformed));
        }
        let ihl = outer.header_len();
        let mut udp = match UdpPacket::new_checked(outer.payload_mut()) {
            Ok(udp) => udp,
            Err(e) => return Plan::Done(self.malformed(Layer::Udp, e)),
        };
        let Ok(mut gue) = GuePacket::new_checked(udp.payload_mut()) else {
            return Plan::Done(self.drop(Counter::DropEncapMalformed));
        };
        let arrived = Arrived {
            from,
            alternate: gue.alternate(),
            second_chance: gue.second_chance(),
            outer_len: ihl + 8 + gue::field::HEADER_LEN,
        };
        let mut inner = match Ipv4Packet::new_checked(gue.payload_mut()) {
            Ok(inner) => inner,
            Err(e) => return Plan::Done(self.malformed(Layer::Ipv4, e)),
        };
        if !inner.verify_checksum() {
            return Plan::Done(self.malformed(Layer::Ipv4, Error::BadChecksum));
        }
        if inner.is_fragment() || !self.tables.is_vip(inner.dst_addr()) {
            return Plan::Done(self.drop(Counter::DropEncapInner));
        }
        if let Err(e) = inner.check_options() {
            return Plan::Done(self.malformed(Layer::Ipv4, e));
        }
        let (src, dst, protocol) = (inner.src_addr(), inner.dst_addr(), inner.next_header());
        self.routed_vip(src, dst, protocol, inner.payload_mut(), Some(arrived), now)
    }

    /// Whether `addr` is another member's own address in the current or
    /// the previous tables (who may send GUE here).
    fn is_other_member(&self, addr: Ipv4Addr) -> bool {
        let other = |t: &Tables| t.member_by_addr(addr).is_some_and(|m| m.id != t.own_id);
        other(&self.tables) || self.previous.iter().any(|t| other(t))
    }

    /// A VIP packet this member received from a router (`arrived` None) or
    /// in GUE from another member, by protocol.
    fn routed_vip(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        bytes: &mut [u8],
        arrived: Option<Arrived>,
        now: Instant,
    ) -> Plan {
        match protocol {
            IpProtocol::Tcp => self.routed_tcp(src, dst, bytes, arrived, now),
            IpProtocol::Udp => {
                let (sport, dport) = match UdpPacket::new_checked(&bytes[..]) {
                    Ok(udp) => (udp.src_port(), udp.dst_port()),
                    Err(e) => return Plan::Done(self.malformed(Layer::Udp, e)),
                };
                let Some(index) = self.tables.service_index(dst, dport, IpProtocol::Udp) else {
                    return Plan::Done(self.drop(Counter::DropNoService));
                };
                let client = ClientKey {
                    addr: src,
                    port: sport,
                };
                let target = self.tables.routed_target(index, client);
                self.routed_stateless(target, arrived)
            }
            IpProtocol::Icmp => {
                let target = self.routed_icmp_target(src, dst, bytes);
                match target {
                    Ok(target) => self.routed_stateless(target, arrived),
                    Err(plan) => plan,
                }
            }
            _ => Plan::Done(self.drop(Counter::DropVipProtocol)),
        }
    }

    /// The target of an ICMP message to a VIP: an error quoting a
    /// connection goes to that connection's target (its PMTU discovery),
    /// anything else to the owner of the sender's address (the tables'
    /// selector, as on a segment).
    fn routed_icmp_target(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        bytes: &[u8],
    ) -> Result<Option<u16>, Plan> {
        let repr = match Icmpv4Packet::new_checked(bytes).and_then(|p| Icmpv4Repr::parse(&p)) {
            Ok(repr) => repr,
            Err(e) => return Err(Plan::Done(self.malformed(Layer::Icmp, e))),
        };
        let t = &*self.tables;
        match repr {
            Icmpv4Repr::DstUnreachable { invoking, .. }
            | Icmpv4Repr::TimeExceeded { invoking, .. } => {
                let quoted = icmpv4::parse_invoking(invoking).ok().and_then(|q| {
                    let (vport, cport) = q.ports()?;
                    let index = t.service_index(q.src_addr(), vport, q.header.protocol)?;
                    Some((index, q.dst_addr(), cport, q.src_addr()))
                });
                match quoted {
                    Some((index, client, port, vip)) if vip == dst => {
                        Ok(t.routed_target(index, ClientKey { addr: client, port }))
                    }
                    _ => Err(Plan::Done(self.drop(Counter::DropIcmpNoFlow))),
                }
            }
            _ => Ok(t.selector.select(ClientKey { addr: src, port: 0 })),
        }
    }

    /// UDP and ICMP: no connection state; delivered here if it arrived in
    /// GUE (its receiver chose this member) or this member is the target,
    /// otherwise sent to the target.
    fn routed_stateless(&mut self, target: Option<u16>, arrived: Option<Arrived>) -> Plan {
        if arrived.is_some() {
            return self.routed_deliver(arrived);
        }
        match target {
            None => Plan::Done(self.drop(Counter::DropRoutedNoTarget)),
            Some(to) if to == self.tables.own_id => self.routed_deliver(None),
            Some(to) => {
                self.counters.inc(Counter::RoutedForwarded);
                Plan::Gue {
                    to,
                    alternate: None,
                    second_chance: false,
                    strip: 0,
                }
            }
        }
    }

    /// Delivers the packet to this kernel: as it came from the router, or
    /// without its outer headers.
    fn routed_deliver(&mut self, arrived: Option<Arrived>) -> Plan {
        match arrived {
            None => {
                self.counters.inc(Counter::RoutedLocal);
                Plan::Done(Verdict::Forward(KERNEL))
            }
            Some(a) => {
                self.counters.inc(Counter::RoutedDecapsulated);
                Plan::Decap {
                    outer_len: a.outer_len,
                }
            }
        }
    }

    /// A TCP segment to a VIP in routed mode. A flow here: served here. No
    /// flow, at the receiver: to the target unless it is this member. At
    /// the target: a SYN is accepted (flow created, lease permitting);
    /// anything else gets its second chance at the alternate, once.
    fn routed_tcp(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        bytes: &mut [u8],
        arrived: Option<Arrived>,
        now: Instant,
    ) -> Plan {
        let mut tcp = match TcpPacket::new_checked(bytes) {
            Ok(tcp) => tcp,
            Err(e) => return Plan::Done(self.malformed(Layer::Tcp, e)),
        };
        let (sport, dport) = (tcp.src_port(), tcp.dst_port());
        let key = FlowKey::new(src, sport, dst, dport, IpProtocol::Tcp.into());
        let client = ClientKey {
            addr: src,
            port: sport,
        };
        let pure_syn = tcp.syn() && !tcp.ack() && !tcp.rst() && !tcp.fin();
        // A SYN of a new connection on the 4-tuple of an earlier one drops
        // the earlier one's state and is placed afresh (`reuse`).
        let own_syn =
            pure_syn && self.syn_meets_flow(&key, tcp.seq_number(), now) == SynOnFlow::OwnSyn;
        let mss = self.tables.mtu.saturating_sub(GUE_OVERHEAD + 40);
        if let Some(action) = self.track(&key, tcp.flags(), true, now) {
            if is_splice(action) {
                return self.routed_splice_hit(
                    key,
                    action,
                    (own_syn, pure_syn),
                    &mut tcp,
                    arrived,
                    now,
                );
            }
            if own_syn {
                self.counters.inc(Counter::SynRetransmit);
            }
            if pure_syn && tcp.clamp_mss(mss) {
                self.counters.inc(Counter::MssClamped);
            }
            self.tell_where(key, arrived, self.tables.own_id, now);
            return self.routed_deliver(arrived);
        }
        let Some(index) = self.tables.service_index(dst, dport, IpProtocol::Tcp) else {
            return Plan::Done(self.drop(Counter::DropNoService));
        };
        let own = self.tables.own_id;
        if arrived.is_none() {
            let Some(target) = self.tables.routed_target(index, client) else {
                return Plan::Done(self.drop(Counter::DropRoutedNoTarget));
            };
            if target != own {
                // Every packet may be encapsulated (the router may move the
                // connection to another receiver): the SYN's MSS leaves room.
                if pure_syn && tcp.clamp_mss(mss) {
                    self.counters.inc(Counter::MssClamped);
                }
                let alternate = self.previous_target(dst, dport, client);
                self.counters.inc(Counter::RoutedForwarded);
                return Plan::Gue {
                    to: target,
                    alternate: alternate.filter(|&a| a != target),
                    second_chance: false,
                    strip: 0,
                };
            }
        }
        if self.tables.services[index].mode == Mode::Splice {
            let plain_ack = tcp.ack() && !tcp.syn() && !tcp.rst();
            return self.routed_splice_miss(key, index, (pure_syn, plain_ack), &tcp, arrived, now);
        }
        if pure_syn {
            return self.routed_syn(key, &mut tcp, mss, arrived, now);
        }
        // Not a SYN and no flow: the connection began under other tables.
        let (alternate, strip) = match arrived {
            Some(a) if a.second_chance => (None, 0),
            Some(a) => (
                a.alternate.and_then(|addr| self.member_id_by_addr(addr)),
                a.outer_len,
            ),
            None => (self.previous_target(dst, dport, client), 0),
        };
        match alternate.filter(|&a| a != own) {
            Some(to) => self.second_chance(to, strip),
            None => Plan::Done(self.drop(Counter::RoutedSecondChanceDropped)),
        }
    }

    /// A packet of a splice connection this member holds a flow for (it
    /// inspects it, serves it, or handed it on): the segment path's
    /// handling (cookie handshake, request, translation, persistent
    /// session), with the client's frames answered through the router; a
    /// handed-off connection's packets go on to the member serving it.
    fn routed_splice_hit(
        &mut self,
        key: FlowKey,
        action: FlowAction,
        (own_syn, pure_syn): (bool, bool),
        tcp: &mut TcpPacket<&mut [u8]>,
        arrived: Option<Arrived>,
        now: Instant,
    ) -> Plan {
        let plan = match action {
            FlowAction::HandedOff { member } => {
                if member == 0 || member == self.tables.own_id {
                    return Plan::Done(self.drop(Counter::HandoffTombstoneHit));
                }
                self.tell_where(key, arrived, member, now);
                // Sent to its holder, with no alternate: a holder that lost
                // it drops it (never forwards it on).
                self.counters.inc(Counter::RoutedTombstoneForwarded);
                return Plan::Gue {
                    to: member,
                    alternate: None,
                    second_chance: false,
                    strip: arrived.map_or(0, |a| a.outer_len),
                };
            }
            FlowAction::Tracked { slot } => {
                let Some(mac) = self.router_mac else {
                    return Plan::Done(self.drop(Counter::DropRoutedNoRouterMac));
                };
                if own_syn {
                    self.counters.inc(Counter::SynRetransmit);
                }
                self.persist_client(slot, mac, tcp, now)
            }
            _ => self.tcp_flow_hit(action, own_syn, pure_syn, tcp, now),
        };
        self.tell_where(key, arrived, self.tables.own_id, now);
        to_kernel(plan, arrived)
    }

    /// A packet that reached this member as a second chance or a flood copy
    /// was sent by a member that did not know where its connection is:
    /// tell it (`located`: member `holder` holds it), so that it forwards
    /// the connection's later packets there itself (`routed_learn`) and
    /// its tables' history no longer matters.
    fn tell_where(&mut self, key: FlowKey, arrived: Option<Arrived>, holder: u16, now: Instant) {
        let Some(a) = arrived.filter(|a| a.second_chance) else {
            return;
        };
        let Some(to) = self.member_id_by_addr(a.from).filter(|&to| to != holder) else {
            return;
        };
        let located = Located {
            client: SocketAddrV4::new(key.src, key.src_port),
            vip: SocketAddrV4::new(key.dst, key.dst_port),
            member: holder,
        };
        self.handoff_send(to, &Message::Located(located), now);
        self.counters.inc(Counter::RoutedLocatedSent);
    }

    /// A segment without a flow to a `splice` service at its target (the
    /// inspector): a SYN gets a cookie, an ACK carrying this member's
    /// cookie opens the setup, as on a segment; anything else belongs to a
    /// connection placed under other tables (`routed_splice_orphan`).
    /// `flags` is (pure SYN, ACK without SYN or RST).
    fn routed_splice_miss(
        &mut self,
        key: FlowKey,
        index: usize,
        (pure_syn, plain_ack): (bool, bool),
        tcp: &TcpPacket<&mut [u8]>,
        arrived: Option<Arrived>,
        now: Instant,
    ) -> Plan {
        let client = ClientKey {
            addr: key.src,
            port: key.src_port,
        };
        if pure_syn {
            let Some(mac) = self.router_mac else {
                return Plan::Done(self.drop(Counter::DropRoutedNoRouterMac));
            };
            let plan = self.tcp_splice_miss(mac, key, client, index, (true, false), tcp, now);
            return to_kernel(plan, arrived);
        }
        // Only this member's cookie key verifies a cookie, whatever the
        // tables said when it was sent (the ACK may come as a second chance).
        if let (true, Some(mac)) = (plain_ack, self.router_mac) {
            if let Some(conn) = self.cookie_conn(mac, key, index, tcp, now) {
                return self.splice_accept(conn, index, tcp, now);
            }
        }
        self.routed_splice_orphan(key, client, arrived, now)
    }

    /// A non-SYN segment of a splice connection this member holds no flow
    /// for. Its serving member is not a hash of the client (the request
    /// chose it), and only the inspector's tombstone knows it:
    /// - a flood copy (below) that finds no flow here: dropped, counted;
    /// - the alternate (the inspector under the previous tables) is a live
    ///   member: second chance there, as for `local` (its tombstone
    ///   forwards it on);
    /// - the alternate left the membership, or this member is the
    ///   alternate and holds nothing: the inspector's knowledge is gone, so
    ///   a copy goes to every other live member (GUE, second chance, the
    ///   sender named as alternate: the mark of a flood copy); the one
    ///   serving the connection keeps it. Bounded per worker
    ///   ([`super::FLOODS_PER_SEC`]);
    /// - no alternate: dropped, counted.
    fn routed_splice_orphan(
        &mut self,
        key: FlowKey,
        client: ClientKey,
        arrived: Option<Arrived>,
        now: Instant,
    ) -> Plan {
        let own = self.tables.own_id;
        let strip = arrived.map_or(0, |a| a.outer_len);
        let sender = arrived.and_then(|a| self.member_id_by_addr(a.from));
        let alternate = match arrived {
            Some(a) if a.second_chance && a.alternate == Some(a.from) => {
                return Plan::Done(self.drop(Counter::RoutedFloodMiss));
            }
            Some(a) if a.second_chance => None,
            Some(a) => a.alternate.and_then(|addr| self.member_id_by_addr(addr)),
            None => self.previous_target(key.dst, key.dst_port, client),
        };
        let second_chance_taken = arrived.is_some_and(|a| a.second_chance);
        let live = |t: &Tables, id: u16| t.member(id).is_some_and(|m| m.alive);
        match alternate.filter(|&a| a != own) {
            Some(to) if live(&self.tables, to) => self.second_chance(to, strip),
            Some(_) => self.routed_flood(strip, sender, now),
            None if second_chance_taken => self.routed_flood(strip, sender, now),
            None => Plan::Done(self.drop(Counter::RoutedSecondChanceDropped)),
        }
    }

    /// A `located` message from member `from` (the handoff link checked
    /// its signature): member `l.member` holds the connection this member
    /// sent a packet of as a second chance or a flood. Unless a flow is here
    /// already, a tombstone forwards the connection's packets there from
    /// now on (it lasts while they come: `flow_table.timeouts.tombstone_s`
    /// after the last).
    pub(super) fn routed_learn(&mut self, from: u16, l: &Located, now: Instant) {
        let member = l.member;
        let known = self.any_member(member).is_some();
        if !self.tables.routed
            || from == self.tables.own_id
            || member == self.tables.own_id
            || !known
        {
            return;
        }
        let key = FlowKey::new(
            *l.client.ip(),
            l.client.port(),
            *l.vip.ip(),
            l.vip.port(),
            IpProtocol::Tcp.into(),
        );
        if self.flows.get(&key).is_some()
            || self
                .tables
                .service_index(key.dst, key.dst_port, IpProtocol::Tcp)
                .is_none()
        {
            return;
        }
        let entry = FlowEntry::new(FlowAction::HandedOff { member }, 0);
        if self.flows.insert(key, FlowState::Tombstone, entry, now) != Insert::Rejected {
            self.counters.inc(Counter::RoutedLocatedLearned);
        }
    }

    /// The second chance at member `to`, after stripping `strip` bytes of
    /// outer headers: marked so that `to` never forwards it on.
    fn second_chance(&mut self, to: u16, strip: usize) -> Plan {
        self.counters.inc(Counter::RoutedSecondChance);
        Plan::Gue {
            to,
            alternate: Some(to),
            second_chance: true,
            strip,
        }
    }

    /// Plans a flood (`routed_splice_orphan`) if the worker's bucket allows.
    fn routed_flood(&mut self, strip: usize, except: Option<u16>, now: Instant) -> Plan {
        if !super::take_token(&mut self.floods, super::FLOODS_PER_SEC, now) {
            return Plan::Done(self.drop(Counter::RoutedSecondChanceDropped));
        }
        self.counters.inc(Counter::RoutedFlooded);
        Plan::Flood { strip, except }
    }

    /// A SYN this member is the target of: intact, lease held, a flow
    /// created (its later packets find this member), MSS clamped, delivered.
    fn routed_syn(
        &mut self,
        key: FlowKey,
        tcp: &mut TcpPacket<&mut [u8]>,
        mss: u16,
        arrived: Option<Arrived>,
        now: Instant,
    ) -> Plan {
        // A SYN creates state: make sure it is intact.
        if !tcp.verify_checksum(key.src, key.dst) {
            return Plan::Done(self.malformed(Layer::Tcp, Error::BadChecksum));
        }
        if !self.claims.lease_held(now) {
            return Plan::Done(self.drop(Counter::ClaimsRefusedLease));
        }
        let entry = FlowEntry::new(FlowAction::Local, tcp.seq_number());
        if self.flows.insert(key, FlowState::Syn, entry, now) == Insert::Rejected {
            return Plan::Done(self.drop(Counter::DropFlowTableFull));
        }
        self.counters.inc(Counter::RoutedSynAccepted);
        if tcp.clamp_mss(mss) {
            self.counters.inc(Counter::MssClamped);
        }
        self.routed_deliver(arrived)
    }

    /// The alternate of `client`'s connection to (`vip`, `port`): its
    /// target under the newest earlier tables where that differs from its
    /// target now, if any.
    fn previous_target(&self, vip: Ipv4Addr, port: u16, client: ClientKey) -> Option<u16> {
        let target = |t: &Tables| {
            let index = t.service_index(vip, port, IpProtocol::Tcp)?;
            t.routed_target(index, client)
        };
        let now = target(&self.tables);
        self.previous
            .iter()
            .filter_map(|t| target(t))
            .find(|&p| Some(p) != now)
    }

    /// The member with id `id` (current, then earlier tables).
    fn any_member(&self, id: u16) -> Option<&super::MemberEntry> {
        self.tables
            .member(id)
            .or_else(|| self.previous.iter().find_map(|t| t.member(id)))
    }

    /// The id of the member whose address is `addr` (current, then earlier
    /// tables).
    fn member_id_by_addr(&self, addr: Ipv4Addr) -> Option<u16> {
        self.tables
            .member_by_addr(addr)
            .or_else(|| self.previous.iter().find_map(|t| t.member_by_addr(addr)))
            .map(|m| m.id)
    }

    /// Sends the IPv4 packet in GUE to member `to`, naming `alternate`
    /// (`second_chance`: already at its second chance), after stripping
    /// `strip` bytes of outer headers it arrived with; a packet that would
    /// exceed the MTU is answered with ICMP fragmentation-needed (DF) or
    /// dropped. The frame's outcome was counted when this was planned.
    pub(super) fn gue_encapsulate<F: Frame>(
        &mut self,
        frame: &mut F,
        to: u16,
        alternate: Option<u16>,
        second_chance: bool,
        strip: usize,
    ) -> Verdict {
        let t = Arc::clone(&self.tables);
        let find = |id: u16| self.any_member(id).map(|m| (m.addr, m.mac));
        let Some((to_addr, to_mac)) = find(to) else {
            self.counters.inc(Counter::DropRedirectTargetGone);
            return Verdict::Drop;
        };
        let alternate = alternate.and_then(find).map(|(addr, _)| addr);
        if strip > 0 {
            frame.bytes_mut().copy_within(0..ETH_LEN, strip);
            if !frame.adj(strip) {
                self.counters.inc(Counter::DecapFailed);
                return Verdict::Drop;
            }
        }
        let inner_len = {
            let ip = Ipv4Packet::new_unchecked(&frame.bytes()[ETH_LEN..]);
            usize::from(ip.total_len())
        };
        let over = usize::from(GUE_OVERHEAD);
        if inner_len + over > usize::from(t.mtu) {
            if Ipv4Packet::new_unchecked(&frame.bytes()[ETH_LEN..]).dont_frag() {
                return self.frag_needed(frame, GUE_OVERHEAD);
            }
            self.counters.inc(Counter::DropTooBig);
            return Verdict::Drop;
        }
        self.ident = self.ident.wrapping_add(1);
        let repr = GueRepr {
            alternate,
            second_chance,
        };
        let head = Outer::of(&frame.bytes()[ETH_LEN..], self.ident, repr);
        // Drop Ethernet padding, then make room in the headroom.
        if !frame.truncate(ETH_LEN + inner_len) || !frame.prepend(over) {
            self.counters.inc(Counter::DropNoHeadroom);
            return Verdict::Drop;
        }
        let bytes = frame.bytes_mut();
        bytes.copy_within(over..over + ETH_LEN, 0);
        head.emit(bytes, (t.own_mac, t.own_addr), (to_mac, to_addr), inner_len);
        Verdict::Forward(WIRE)
    }

    /// Sends a copy of the IPv4 packet in `bytes` (after `strip` bytes of
    /// outer headers) in GUE to every other live member but `except`,
    /// marked as flood copies (second chance, this member as alternate);
    /// the frame itself is dropped (its outcome, `routed_flooded`, counted
    /// when planned). A copy that would exceed the MTU is not sent
    /// (`drop_too_big`).
    pub(super) fn gue_flood(&mut self, bytes: &[u8], strip: usize, except: Option<u16>) -> Verdict {
        let Some(inner) = bytes.get(ETH_LEN + strip..) else {
            return Verdict::Drop;
        };
        let inner_len = usize::from(Ipv4Packet::new_unchecked(inner).total_len()).min(inner.len());
        let inner = &inner[..inner_len];
        let over = usize::from(GUE_OVERHEAD);
        let t = Arc::clone(&self.tables);
        if inner_len + over > usize::from(t.mtu) {
            self.counters.inc(Counter::DropTooBig);
            return Verdict::Drop;
        }
        let repr = GueRepr {
            alternate: Some(t.own_addr),
            second_chance: true,
        };
        let to = t
            .members
            .iter()
            .filter(|m| m.alive && m.id != t.own_id && Some(m.id) != except);
        for m in to {
            self.ident = self.ident.wrapping_add(1);
            let head = Outer::of(inner, self.ident, repr);
            let mut frame = vec![0u8; ETH_LEN + over + inner_len];
            frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            frame[ETH_LEN + over..].copy_from_slice(inner);
            head.emit(
                &mut frame,
                (t.own_mac, t.own_addr),
                (m.mac, m.addr),
                inner_len,
            );
            self.emitted.push((WIRE, frame));
        }
        Verdict::Drop
    }
}
