//! ARP on the wire (step 1 of the life of a packet): a request for a VIP is
//! answered in place with the cluster MAC; ARP for the own address goes to
//! the kernel; the rest is ignored.

use super::{Pipeline, Verdict, KERNEL, WIRE};
use crate::counters::{Counter, Layer};
use crate::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetFrame};

impl Pipeline {
    /// ARP: answer requests for a VIP in place (the request buffer becomes
    /// the reply), hand ARP about the own address to the kernel.
    pub(super) fn arp(&mut self, eth: &mut EthernetFrame<&mut [u8]>) -> Verdict {
        let t = &*self.tables;
        let (cluster_mac, own_mac, own_addr) = (t.cluster_mac, t.own_mac, t.own_addr);
        let repr = match ArpPacket::new_checked(eth.payload_mut()).and_then(|p| ArpRepr::parse(&p))
        {
            Ok(r) => r,
            Err(e) => return self.malformed(Layer::Arp, e),
        };
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } = repr;
        if operation == ArpOperation::Request && self.tables.is_vip(target_protocol_addr) {
            let reply = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: cluster_mac,
                source_protocol_addr: target_protocol_addr,
                target_hardware_addr: source_hardware_addr,
                target_protocol_addr: source_protocol_addr,
            };
            let mut packet = ArpPacket::new_unchecked(eth.payload_mut());
            reply.emit(&mut packet);
            // The Ethernet source is this server's own MAC, never the cluster
            // MAC: a switch must not learn the cluster MAC on one port, or it
            // would stop flooding VIP traffic to every server.
            let requester = eth.src_addr();
            eth.set_dst_addr(requester);
            eth.set_src_addr(own_mac);
            self.counters.inc(Counter::ArpVipReplied);
            return Verdict::Forward(WIRE);
        }
        if target_protocol_addr == own_addr {
            self.counters.inc(Counter::ArpToKernel);
            return Verdict::Forward(KERNEL);
        }
        self.drop(Counter::ArpIgnored)
    }
}
