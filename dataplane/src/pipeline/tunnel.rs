//! Both ends of a DPR redirect: the IP-in-IP encapsulation toward the chosen
//! member (RFC 2003; DF packets too big for the tunnel answered with ICMP
//! fragmentation-needed), and on the receiving member the tunnel's end and
//! the MAC-rewritten frames (`redirected_in`): delivered to this kernel,
//! never redirected again; their broadcast copies ignored.

use core::net::Ipv4Addr;
use std::sync::Arc;

use shoal_wire::time::Instant;

use super::reuse::SynOnFlow;
use super::{FlowAction, FlowEntry, Pipeline, Plan, Verdict, ETH_LEN, WIRE};
use crate::counters::{Counter, Layer};
use crate::flow::{FlowKey, FlowState};
use crate::io::Frame;
use crate::wire::{
    ipip, Error, EthernetFrame, Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, IpProtocol,
    Ipv4Packet, Ipv4Repr, TcpPacket,
};

impl Pipeline {
    /// IP-in-IP addressed to this member: check that another member sent it,
    /// validate the inner packet (a VIP packet an inspector redirected
    /// here), track its flow, deliver it.
    pub(super) fn tunnel_end(&mut self, outer: &mut Ipv4Packet<&mut [u8]>, now: Instant) -> Plan {
        let outer_len = outer.header_len();
        // Only another member tunnels VIP packets here (seed 000 §3.5): any
        // other host could otherwise reach this kernel past selection.
        let from = outer.src_addr();
        let t = &*self.tables;
        if !t.members.iter().any(|m| m.addr == from && m.id != t.own_id) {
            return Plan::Done(self.drop(Counter::DropIpipNotMember));
        }
        if outer.is_fragment() {
            return Plan::Done(self.drop(Counter::DropIpipInner));
        }
        let mut inner = match Ipv4Packet::new_checked(outer.payload_mut()) {
            Ok(inner) => inner,
            Err(e) => return Plan::Done(self.malformed(Layer::Ipv4, e)),
        };
        if !inner.verify_checksum() {
            return Plan::Done(self.malformed(Layer::Ipv4, Error::BadChecksum));
        }
        let (src, dst) = (inner.src_addr(), inner.dst_addr());
        if !self.tables.is_vip(dst) {
            return Plan::Done(self.drop(Counter::DropIpipInner));
        }
        if inner.next_header() == IpProtocol::Tcp && inner.frag_offset() == 0 {
            match TcpPacket::new_checked(inner.payload_mut()) {
                Ok(tcp) => self.redirected_in(src, dst, &tcp, now),
                Err(e) => return Plan::Done(self.malformed(Layer::Tcp, e)),
            }
        }
        self.counters.inc(Counter::IpipDecapsulated);
        Plan::Decap { outer_len }
    }

    /// A TCP packet another member redirected here: keep a `Received` flow
    /// so the kernel's replies and resets for it are recognised as ours and
    /// the broadcast copies of its packets are not delivered twice.
    pub(super) fn redirected_in<T: AsRef<[u8]>>(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        tcp: &TcpPacket<T>,
        now: Instant,
    ) {
        let key = FlowKey::new(
            src,
            tcp.src_port(),
            dst,
            tcp.dst_port(),
            IpProtocol::Tcp.into(),
        );
        let seq = tcp.seq_number();
        if tcp.syn()
            && !tcp.ack()
            && !tcp.rst()
            && !tcp.fin()
            && self.syn_meets_flow(&key, seq, now) == SynOnFlow::OwnSyn
        {
            // Counted here, not on the broadcast copy, which may come first
            // or second.
            self.counters.inc(Counter::SynRetransmit);
        }
        if self.track(&key, tcp.flags(), true, now).is_none() {
            let (state, isn) = if tcp.syn() {
                (FlowState::Syn, seq)
            } else {
                (FlowState::Established, seq.wrapping_sub(1))
            };
            let entry = FlowEntry::new(FlowAction::Received, isn);
            let _ = self.flows.insert(key, state, entry, now);
        }
    }

    /// Grows the frame by an outer IPv4 header toward member `to` (RFC 2003),
    /// or answers the client with ICMP fragmentation-needed when the result
    /// would exceed the MTU and the packet may not be fragmented.
    pub(super) fn encapsulate<F: Frame>(&mut self, frame: &mut F, to: u16) -> Verdict {
        let t = Arc::clone(&self.tables);
        let Some(member) = t.member(to) else {
            self.counters.inc(Counter::DropRedirectTargetGone);
            return Verdict::Drop;
        };
        let (inner_len, dont_frag) = {
            let ip = Ipv4Packet::new_unchecked(&frame.bytes()[ETH_LEN..]);
            (usize::from(ip.total_len()), ip.dont_frag())
        };
        if inner_len + usize::from(IPIP_OVERHEAD) > usize::from(t.mtu) {
            if dont_frag {
                return self.frag_needed(frame, IPIP_OVERHEAD);
            }
            self.counters.inc(Counter::DropTooBig);
            return Verdict::Drop;
        }
        self.ident = self.ident.wrapping_add(1);
        let outer = {
            let ip = Ipv4Packet::new_unchecked(&frame.bytes()[ETH_LEN..]);
            ipip::outer_repr(&ip, t.own_addr, member.addr, self.ident)
        };
        // Drop Ethernet padding, then make room in the headroom.
        if !frame.truncate(ETH_LEN + inner_len) || !frame.prepend(usize::from(IPIP_OVERHEAD)) {
            self.counters.inc(Counter::DropNoHeadroom);
            return Verdict::Drop;
        }
        let over = usize::from(IPIP_OVERHEAD);
        let bytes = frame.bytes_mut();
        bytes.copy_within(over..over + ETH_LEN, 0);
        let mut eth = EthernetFrame::new_unchecked(&mut bytes[..]);
        eth.set_dst_addr(member.mac);
        eth.set_src_addr(t.own_mac);
        let mut ip = Ipv4Packet::new_unchecked(&mut bytes[ETH_LEN..]);
        outer.emit(&mut ip);
        ip.fill_checksum();
        self.counters.inc(Counter::DprRedirected);
        Verdict::Forward(WIRE)
    }

    /// Turns the frame, in place, into ICMP fragmentation-needed (RFC 792,
    /// RFC 1191) toward its sender, quoting its IP header and 8 bytes; the
    /// next-hop MTU is the MTU less the encapsulation's `overhead`.
    pub(super) fn frag_needed<F: Frame>(&mut self, frame: &mut F, overhead: u16) -> Verdict {
        let t = Arc::clone(&self.tables);
        let mut quote = [0u8; 68];
        let (client_mac, client, quote_len) = {
            let bytes = frame.bytes();
            let eth = EthernetFrame::new_unchecked(bytes);
            let ip = Ipv4Packet::new_unchecked(&bytes[ETH_LEN..]);
            let n = (ip.header_len() + 8).min(usize::from(ip.total_len()));
            quote[..n].copy_from_slice(&bytes[ETH_LEN..ETH_LEN + n]);
            (eth.src_addr(), ip.src_addr(), n)
        };
        let icmp = Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::FragRequired,
            next_hop_mtu: t.mtu - overhead,
            invoking: &quote[..quote_len],
        };
        self.ident = self.ident.wrapping_add(1);
        let ip = Ipv4Repr {
            src_addr: t.own_addr,
            dst_addr: client,
            protocol: IpProtocol::Icmp,
            payload_len: icmp.buffer_len(),
            ttl: 64,
            ident: self.ident,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            dscp_ecn: 0,
        };
        if !frame.truncate(ETH_LEN + 20 + icmp.buffer_len()) {
            return Verdict::Drop;
        }
        let bytes = frame.bytes_mut();
        let mut eth = EthernetFrame::new_unchecked(&mut bytes[..]);
        eth.set_dst_addr(client_mac);
        eth.set_src_addr(t.own_mac);
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[ETH_LEN..]);
        ip.emit(&mut packet);
        packet.fill_checksum();
        icmp.emit(&mut Icmpv4Packet::new_unchecked(packet.payload_mut()));
        self.counters.inc(Counter::IcmpFragNeededSent);
        Verdict::Forward(WIRE)
    }
}

/// Bytes IP-in-IP adds (an outer IPv4 header without options).
pub(super) const IPIP_OVERHEAD: u16 = 20;
