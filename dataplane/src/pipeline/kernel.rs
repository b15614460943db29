//! Frames from the local kernel (TAP), step 2 of the life of a packet: ARP
//! naming a VIP is suppressed, spliced flows are translated back, a RST for
//! a flow this member does not hold is suppressed, everything else goes to
//! the wire.

use shoal_wire::time::Instant;

use super::{FlowAction, Pipeline, Verdict, WIRE};
use crate::counters::Counter;
use crate::flow::FlowKey;
use crate::wire::{
    ArpPacket, ArpRepr, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, TcpPacket,
};
use shoal_l7::splice::Translation;

impl Pipeline {
    pub(super) fn on_kernel(&mut self, bytes: &mut [u8], now: Instant) -> Verdict {
        let Ok(mut eth) = EthernetFrame::new_checked(bytes) else {
            return self.drop(Counter::DropKernelMalformed);
        };
        if eth.ethertype() == EtherType::Arp {
            let Ok(repr) =
                ArpPacket::new_checked(eth.payload_mut()).and_then(|p| ArpRepr::parse(&p))
            else {
                return self.drop(Counter::DropKernelMalformed);
            };
            let ArpRepr::EthernetIpv4 {
                source_protocol_addr,
                ..
            } = repr;
            if self.tables.is_vip(source_protocol_addr) {
                // Only the dataplane speaks ARP for the VIP (with the cluster
                // MAC); a kernel ARP from the VIP would teach clients this
                // server's own MAC for it.
                return self.drop(Counter::KernelArpVipSuppressed);
            }
        } else if eth.ethertype() == EtherType::Ipv4 {
            // Where the kernel sends its replies to the client (its
            // neighbour entry for the client or its router).
            let kernel_to = eth.dst_addr();
            let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else {
                return self.drop(Counter::DropKernelMalformed);
            };
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            if self.tables.routed && self.tables.is_vip(src) {
                // Routed: the kernel sends its clients' replies to a router
                // too; the dataplane's own answers go the same way.
                self.router_mac = Some(kernel_to);
            }
            if ip.next_header() == IpProtocol::Tcp && !ip.is_fragment() && self.tables.is_vip(src) {
                let Ok(mut tcp) = TcpPacket::new_checked(ip.payload_mut()) else {
                    return self.drop(Counter::DropKernelMalformed);
                };
                // Flows are keyed in the client -> VIP direction.
                let key = FlowKey::new(
                    dst,
                    tcp.dst_port(),
                    src,
                    tcp.src_port(),
                    IpProtocol::Tcp.into(),
                );
                match self.track(&key, tcp.flags(), false, now) {
                    Some(FlowAction::Splicing { slot, .. }) if self.conns.is_rare(slot) => {
                        return self.rare_kernel(slot, &tcp);
                    }
                    Some(FlowAction::Splicing { slot, .. }) => {
                        if tcp.syn() && tcp.ack() {
                            self.counters.inc(Counter::SpliceKernelSynAck);
                            return self.splice_kernel_synack(slot, kernel_to, &tcp, now);
                        }
                        self.replay_met_old_socket(&key, slot, &tcp, now);
                        return self.drop(Counter::SpliceKernelEarly);
                    }
                    Some(FlowAction::Spliced(params)) => {
                        Translation::new(params).to_client(&mut tcp);
                    }
                    Some(FlowAction::Tracked { slot }) => {
                        return self.persist_kernel(slot, &mut tcp, now);
                    }
                    Some(FlowAction::HandedOff { .. }) => {
                        // The connection moved; this kernel's socket is gone.
                        return self.drop(Counter::KernelRstSuppressed);
                    }
                    None if tcp.rst() => {
                        // The kernel only sees flows this server accepted; a RST for
                        // anything else must not reach a client another server serves.
                        return self.drop(Counter::KernelRstSuppressed);
                    }
                    None if !self.stateless_service(src, tcp.src_port()) => {
                        // Not a connection this member holds (its flow expired
                        // or was evicted, or the frame is forged): another
                        // member may serve that 4-tuple now. Only stateless
                        // DPR serves connections without flows.
                        return self.drop(Counter::KernelVipNoFlow);
                    }
                    Some(_) | None => {}
                }
            }
        }
        self.counters.inc(Counter::KernelToWire);
        Verdict::Forward(WIRE)
    }

    /// Whether the TCP service at `vip`:`port` is stateless DPR (whose
    /// connections need no flow here).
    fn stateless_service(&self, vip: core::net::Ipv4Addr, port: u16) -> bool {
        self.tables
            .service(vip, port, IpProtocol::Tcp)
            .is_some_and(|s| {
                matches!(
                    s.mode,
                    shoal_config::Mode::DprMac | shoal_config::Mode::DprIpip
                ) && s.state == shoal_config::State::Stateless
            })
    }
}
