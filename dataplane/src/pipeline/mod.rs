//! The per-packet processor: classify a frame, consult the flow table, apply
//! the flow's action, say where the frame goes.
//!
//! This module owns the decision for every frame and the counters of every
//! outcome. It does no I/O and reads no clock: the worker hands it frames
//! and the time. The order of checks is the design's ("The data path"):
//!
//! 1. ARP for a VIP: answer with the cluster MAC; ARP for the own address:
//!    the kernel answers.
//! 2. Frames from the kernel: reverse action of their flow, then the wire.
//! 3. VIP packets of a flow in the table: the flow's action.
//! 4. A TCP SYN to a VIP service: the selector names the inspector; if it is
//!    this server, a flow is created and the service's mode applies,
//!    otherwise the SYN is dropped silently (another server answers).
//! 5. Any other VIP packet with no flow: dropped silently and counted — never
//!    a RST for a flow this server does not own.
//! 6. Traffic for the own address: the kernel.

mod tables;

use core::net::Ipv4Addr;
use std::sync::Arc;

pub use tables::{ServiceEntry, Tables, TablesError};

use crate::counters::{Counter, Counters, Layer};
use crate::flow::{FlowKey, FlowState, FlowTable, Insert, Timeouts};
use crate::io::{Frame, PortId};
use crate::select::ClientKey;
use crate::time::Instant;
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, Icmpv4Packet, Icmpv4Repr,
    IpProtocol, Ipv4Packet, TcpFlags, TcpPacket, UdpPacket,
};

/// Port index of the wire (NIC on the shared segment).
pub const WIRE: PortId = 0;
/// Port index of the exception path toward the local kernel (TAP).
pub const KERNEL: PortId = 1;

/// What happens to a frame after processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (possibly rewritten) frame on this port.
    Forward(PortId),
    /// Free the frame (the reason is already counted).
    Drop,
}

/// What the flow table remembers per flow: how to treat its packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowAction {
    /// This server's kernel serves the flow (`local` mode).
    Local,
}

/// One worker's processor: tables of the current epoch, the flow table and
/// the counters.
#[derive(Debug)]
pub struct Pipeline {
    tables: Arc<Tables>,
    flows: FlowTable<FlowAction>,
    counters: Counters,
}

impl Pipeline {
    /// A processor over `tables` with a flow table of `capacity` flows.
    pub fn new(tables: Arc<Tables>, capacity: usize, timeouts: Timeouts) -> Self {
        Pipeline {
            tables,
            flows: FlowTable::new(capacity, timeouts),
            counters: Counters::default(),
        }
    }

    /// Switches to new tables (a new epoch). Existing flows keep their action;
    /// only new connections see the new tables. Call between bursts.
    pub fn set_tables(&mut self, tables: Arc<Tables>) {
        self.tables = tables;
    }

    /// The tables in use.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Mutable counters (the worker counts transmit outcomes).
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// This worker's flow table.
    pub fn flows(&self) -> &FlowTable<FlowAction> {
        &self.flows
    }

    /// Expires up to `budget` flows whose timeout passed; call once per burst.
    pub fn expire(&mut self, now: Instant, budget: usize) {
        // Counted in the flow table's own stats (expired by state).
        self.flows.expire(now, budget);
    }

    /// Decides what happens to `frame`, received on port `from`, rewriting it
    /// in place where the decision needs it.
    pub fn process<F: Frame>(&mut self, from: PortId, frame: &mut F, now: Instant) -> Verdict {
        let len = frame.len() as u64;
        if from == KERNEL {
            self.counters.inc(Counter::KernelRx);
            self.counters.add(Counter::KernelRxBytes, len);
            self.on_kernel(frame.bytes_mut(), now)
        } else {
            self.counters.inc(Counter::WireRx);
            self.counters.add(Counter::WireRxBytes, len);
            self.on_wire(frame.bytes_mut(), now)
        }
    }

    fn on_wire(&mut self, bytes: &mut [u8], now: Instant) -> Verdict {
        let mut eth = match EthernetFrame::new_checked(bytes) {
            Ok(eth) => eth,
            Err(e) => return self.malformed(Layer::Ethernet, e),
        };
        let t = &*self.tables;
        let dst = eth.dst_addr();
        if dst != t.cluster_mac && dst != t.own_mac && !dst.is_multicast() {
            return self.drop(Counter::DropOtherHost);
        }
        if eth.vlan_ids()[0].is_some() {
            return self.drop(Counter::DropVlan);
        }
        match eth.ethertype() {
            EtherType::Arp => self.arp(&mut eth),
            EtherType::Ipv4 => {
                let verdict = self.ipv4_from_wire(eth.payload_mut(), now);
                // The kernel's TAP has this member's own MAC and silently
                // drops frames for any other unicast MAC (the cluster MAC).
                if verdict == Verdict::Forward(KERNEL) && dst == self.tables.cluster_mac {
                    eth.set_dst_addr(self.tables.own_mac);
                }
                verdict
            }
            _ => self.drop(Counter::DropUnsupportedEthertype),
        }
    }

    /// ARP: answer requests for a VIP in place (the request buffer becomes
    /// the reply), hand ARP about the own address to the kernel.
    fn arp(&mut self, eth: &mut EthernetFrame<&mut [u8]>) -> Verdict {
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

    fn ipv4_from_wire(&mut self, bytes: &mut [u8], now: Instant) -> Verdict {
        let mut ip = match Ipv4Packet::new_checked(bytes) {
            Ok(ip) => ip,
            Err(e) => return self.malformed(Layer::Ipv4, e),
        };
        if !ip.verify_checksum() {
            return self.malformed(Layer::Ipv4, crate::wire::Error::BadChecksum);
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let t = &*self.tables;
        if dst == t.own_addr {
            self.counters.inc(Counter::OwnToKernel);
            return Verdict::Forward(KERNEL);
        }
        if !t.is_vip(dst) {
            return self.drop(Counter::DropNotForUs);
        }
        if let Err(e) = ip.check_options() {
            return self.malformed(Layer::Ipv4, e);
        }
        if ip.is_fragment() {
            return self.drop(Counter::DropFragment);
        }
        match ip.next_header() {
            IpProtocol::Tcp => self.tcp_from_wire(src, dst, ip.payload_mut(), now),
            IpProtocol::Udp => match UdpPacket::new_checked(ip.payload_mut()) {
                Ok(udp) => self.stateless_to_owner(src, dst, udp.src_port(), udp.dst_port(), true),
                Err(e) => self.malformed(Layer::Udp, e),
            },
            IpProtocol::Icmp => {
                // Only messages with a repr (echo, unreachable, time
                // exceeded) reach a kernel; redirects and the like are dropped.
                match Icmpv4Packet::new_checked(&ip.payload_mut()[..])
                    .and_then(|p| Icmpv4Repr::parse(&p).map(|_| ()))
                {
                    Ok(()) => self.stateless_to_owner(src, dst, 0, 0, false),
                    Err(e) => self.malformed(Layer::Icmp, e),
                }
            }
            _ => self.drop(Counter::DropVipProtocol),
        }
    }

    /// UDP and ICMP to a VIP: no connection state; the client key's owner
    /// takes the packet (ICMP hashes on the client address alone).
    fn stateless_to_owner(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        src_port: u16,
        dst_port: u16,
        is_udp: bool,
    ) -> Verdict {
        let t = &*self.tables;
        let selector = if is_udp {
            match t.service(dst, dst_port, IpProtocol::Udp) {
                Some(service) => &service.selector,
                None => return self.drop(Counter::DropNoService),
            }
        } else {
            &t.selector
        };
        if selector.select(ClientKey {
            addr: src,
            port: src_port,
        }) == Some(t.own_id)
        {
            self.counters.inc(Counter::VipStatelessLocal);
            Verdict::Forward(KERNEL)
        } else {
            self.drop(Counter::VipStatelessOther)
        }
    }

    fn tcp_from_wire(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        bytes: &mut [u8],
        now: Instant,
    ) -> Verdict {
        let tcp = match TcpPacket::new_checked(bytes) {
            Ok(tcp) => tcp,
            Err(e) => return self.malformed(Layer::Tcp, e),
        };
        let key = FlowKey::new(
            src,
            tcp.src_port(),
            dst,
            tcp.dst_port(),
            IpProtocol::Tcp.into(),
        );
        let (syn, ack, fin, rst) = (tcp.syn(), tcp.ack(), tcp.fin(), tcp.rst());
        if let Some(action) = self.track(&key, tcp.flags(), true, now) {
            if syn && !ack {
                self.counters.inc(Counter::SynRetransmit);
            }
            self.counters.inc(Counter::FlowHit);
            return match action {
                FlowAction::Local => Verdict::Forward(KERNEL),
            };
        }
        let t = &*self.tables;
        let Some(service) = t.service(dst, tcp.dst_port(), IpProtocol::Tcp) else {
            return self.drop(Counter::DropNoService);
        };
        if !(syn && !ack && !rst && !fin) {
            return self.drop(Counter::VipNoFlow);
        }
        // A SYN creates state: make sure it is intact (established traffic is
        // left to the NIC's and the kernel's checksum checks).
        if !tcp.verify_checksum(src, dst) {
            return self.malformed(Layer::Tcp, crate::wire::Error::BadChecksum);
        }
        if service.selector.select(ClientKey {
            addr: src,
            port: tcp.src_port(),
        }) != Some(t.own_id)
        {
            return self.drop(Counter::SynOtherInspector);
        }
        let action = match service.mode {
            shoal_config::Mode::Local => FlowAction::Local,
            // Tables::from_config refuses every other mode in this build.
            _ => return self.drop(Counter::DropNoService),
        };
        if self.flows.insert(key, FlowState::Syn, action, now) == Insert::Rejected {
            return self.drop(Counter::DropFlowTableFull);
        }
        self.counters.inc(Counter::SynAccepted);
        Verdict::Forward(KERNEL)
    }

    fn on_kernel(&mut self, bytes: &mut [u8], now: Instant) -> Verdict {
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
            let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else {
                return self.drop(Counter::DropKernelMalformed);
            };
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            if ip.next_header() == IpProtocol::Tcp && !ip.is_fragment() && self.tables.is_vip(src) {
                let Ok(tcp) = TcpPacket::new_checked(ip.payload_mut()) else {
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
                if self.track(&key, tcp.flags(), false, now).is_some() {
                } else if tcp.rst() {
                    // The kernel only sees flows this server accepted; a RST for
                    // anything else must not reach a client another server serves.
                    return self.drop(Counter::KernelRstSuppressed);
                }
            }
        }
        self.counters.inc(Counter::KernelToWire);
        Verdict::Forward(WIRE)
    }

    /// Looks the flow up (refreshing it), moves it along the TCP states
    /// timeouts care about, and returns its action; `None` if no live flow.
    #[inline]
    fn track(
        &mut self,
        key: &FlowKey,
        flags: TcpFlags,
        from_client: bool,
        now: Instant,
    ) -> Option<FlowAction> {
        let mut flow = self.flows.lookup_touch(key, now)?;
        let state = flow.state();
        let next = next_state(state, flags, from_client);
        if next != state {
            flow.set_state(next, now);
        }
        Some(flow.value)
    }

    #[inline]
    fn drop(&mut self, c: Counter) -> Verdict {
        self.counters.inc(c);
        Verdict::Drop
    }

    #[inline]
    fn malformed(&mut self, layer: Layer, e: crate::wire::Error) -> Verdict {
        self.counters.malformed(layer, e);
        Verdict::Drop
    }
}

/// TCP state tracking as far as timeouts need it: any FIN or RST closes, the
/// client's first ACK after the SYN establishes.
fn next_state(state: FlowState, flags: TcpFlags, from_client: bool) -> FlowState {
    let has = |f| flags.contains(f);
    if has(TcpFlags::FIN) || has(TcpFlags::RST) {
        return match state {
            FlowState::Tombstone => FlowState::Tombstone,
            _ => FlowState::Closing,
        };
    }
    if state == FlowState::Syn && from_client && has(TcpFlags::ACK) && !has(TcpFlags::SYN) {
        return FlowState::Established;
    }
    state
}
