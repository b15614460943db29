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
//! 3. VIP packets of a flow in the table: the flow's action — except a SYN
//!    of a new connection on the 4-tuple of an earlier one, which drops the
//!    earlier one's state and goes on to 4 (`reuse`).
//! 4. A TCP SYN to a VIP service: the selector names the inspector; if it is
//!    this server, a flow is created and the service's mode applies,
//!    otherwise the SYN is dropped silently (another server answers).
//! 5. Any other VIP packet with no flow: dropped silently and counted — never
//!    a RST for a flow this server does not own.
//! 6. Traffic for the own address: the kernel.

mod handoff_path;
mod reuse;
pub mod snapshot;
mod splice_path;
mod tables;

use core::net::Ipv4Addr;
use core::time::Duration;
use std::sync::Arc;

use shoal_config::{LoadChoice, Mode, State};

pub use reuse::FlowEntry;
pub use tables::{MemberEntry, ServiceEntry, Tables, TablesError};

use crate::counters::{Counter, Counters, Layer};
use crate::flow::{FlowKey, FlowState, FlowTable, Insert, Timeouts};
use crate::io::{Frame, PortId};
use crate::wire::tcp::option_kind;
use crate::wire::{
    checksum, ipip, ArpOperation, ArpPacket, ArpRepr, Error, EtherType, EthernetAddress,
    EthernetFrame, Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet,
    Ipv4Repr, TcpFlags, TcpPacket, UdpPacket,
};
use shoal_l7::dispatch::Dispatcher;
use shoal_l7::splice::{SpliceParams, Translation};
use shoal_l7::syncookie::CookieKeys;
use shoal_select::claim::{Claim, ClaimSet, Fence};
use shoal_select::{key_hash, ClientKey};
use shoal_wire::time::Instant;

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

/// How to treat a flow's packets (the main part of its [`FlowEntry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowAction {
    /// This server's kernel serves the flow (`local` mode, a DPR connection
    /// this member kept, or one redirected here).
    Local,
    /// DPR on the LAN: rewrite the destination MAC to this member's own MAC.
    RedirectMac {
        /// Target member id.
        member: u16,
    },
    /// DPR across networks: IP-in-IP (RFC 2003) to this member's own address.
    RedirectIpip {
        /// Target member id.
        member: u16,
    },
    /// A connection another member's inspector redirects here: its packets
    /// arrive by MAC rewrite or tunnel and go to this kernel; the broadcast
    /// copies of the same packets (to the cluster MAC) are ignored.
    Received,
    /// Splice: the handshake is done (cookie), the request is being read or
    /// replayed into the kernel; the connection is in setup slot `slot`.
    Splicing {
        /// Setup slot.
        slot: u32,
        /// Index of the service in the tables.
        service: u16,
    },
    /// Splice: handed over to this kernel; both directions are translated.
    Spliced(SpliceParams),
    /// Splice: handed over to another member, which sees the client's
    /// packets itself: this member ignores them (tombstone).
    HandedOff,
}

/// What the byte-level pass decided; the steps that grow or shrink the
/// frame happen after it, in [`Pipeline::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Decided: forward or drop as is (Ethernet destination already set).
    Done(Verdict),
    /// Rewrite the destination MAC to member `to`'s own and send on the wire.
    RewriteMac { to: u16 },
    /// Tunnel the IPv4 packet to member `to` (IP-in-IP) on the wire.
    Encap { to: u16 },
    /// This member is the tunnel's end: strip `outer_len` bytes of outer
    /// IPv4 header and deliver the inner packet to the kernel.
    Decap { outer_len: usize },
}

/// Whether member `own` is the inspector of `client` for service `index`
/// in a table (the question `ClaimSet` asks of every epoch it keeps).
fn owns(own: u16, index: usize, client: ClientKey) -> impl Fn(&Arc<Tables>) -> bool {
    move |t: &Arc<Tables>| {
        t.services
            .get(index)
            .is_some_and(|s| s.selector.select(client) == Some(own))
    }
}

/// What later fragments of a datagram get: what the first one got.
type FragAction = Option<FlowAction>;

/// How long a datagram's fragments are followed after its last fragment.
const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Datagrams followed at once per worker.
const FRAGMENT_CAPACITY: usize = 4096;

/// One worker's processor: tables of the current epoch, the flow table and
/// the counters.
#[derive(Debug)]
pub struct Pipeline {
    tables: Arc<Tables>,
    /// The epochs new connections are claimed with, and the lease.
    claims: ClaimSet<Arc<Tables>>,
    flows: FlowTable<FlowEntry>,
    /// First-fragment decisions keyed (src, dst, IP id as src port, proto).
    fragments: FlowTable<FragAction>,
    counters: Counters,
    /// IP identification of the outer headers and ICMP errors this worker sends.
    ident: u16,
    /// Splice: the SYN cookie keys (per server).
    cookies: CookieKeys,
    /// Splice: connections between the cookie ACK and the kernel's SYN-ACK.
    conns: splice_path::Conns,
    /// Splice: a dispatcher per service (None for other modes); per worker
    /// because LARD keeps state.
    dispatchers: Vec<Option<Dispatcher>>,
    /// Splice: handoff to other members (None until `enable_handoff`).
    handoff: Option<handoff_path::Handoff>,
    /// Frames the pipeline originates while processing (handshake replies,
    /// replayed segments), with their port; the worker sends them after the
    /// burst. Only the connection-setup paths use it.
    emitted: Vec<(PortId, Vec<u8>)>,
}

impl Pipeline {
    /// A processor over `tables` with a flow table of `capacity` flows.
    pub fn new(tables: Arc<Tables>, capacity: usize, timeouts: Timeouts) -> Self {
        let t = FRAGMENT_TIMEOUT;
        let fragment_timeouts = Timeouts {
            syn: t,
            established: t,
            closing: t,
            tombstone: t,
        };
        // A placeholder key derived from the member's address; `run` sets a
        // random one with `set_cookie_secret`.
        let mut secret = [0u8; 32];
        secret[..4].copy_from_slice(&tables.own_addr.octets());
        let dispatchers = build_dispatchers(&tables, Vec::new());
        Pipeline {
            cookies: CookieKeys::new(secret),
            handoff: None,
            conns: splice_path::Conns::new(SPLICE_SETUP_SLOTS),
            dispatchers,
            claims: ClaimSet::new(Arc::clone(&tables), tables.digest, Fence::Unfenced),
            tables,
            flows: FlowTable::new(capacity, timeouts),
            fragments: FlowTable::new(FRAGMENT_CAPACITY, fragment_timeouts),
            counters: Counters::default(),
            ident: 0,
            emitted: Vec::new(),
        }
    }

    /// Switches to new tables (a new epoch). Existing flows keep their action;
    /// only new connections see the new tables, and while the new epoch is
    /// not confirmed (its digest differs from the previous tables') only
    /// keys this member owns in both (`claim.rs`). Call between bursts.
    pub fn set_tables(&mut self, tables: Arc<Tables>) {
        let previous = std::mem::take(&mut self.dispatchers);
        self.dispatchers = build_dispatchers(&tables, previous);
        self.claims.apply(Arc::clone(&tables), tables.digest);
        self.tables = tables;
    }

    /// Fences new connections behind a lease from control (`Fence::Leased`),
    /// or not (`Fence::Unfenced`: no control process).
    pub fn set_fence(&mut self, fence: Fence) {
        self.claims.set_fence(fence);
    }

    /// A lease renewal from control (`None` revokes it) and the newest
    /// epoch digest every live member confirmed.
    pub fn renew_lease(&mut self, until: Option<Instant>, confirmed_digest: Option<u64>) {
        self.claims.renew(until);
        if let Some(d) = confirmed_digest {
            self.claims.confirm(d);
        }
    }

    /// The flow snapshot a restarted dataplane restores (`snapshot.rs`),
    /// written at `mono_ns` (`CLOCK_MONOTONIC`).
    pub fn flow_snapshot(&self, mono_ns: u64) -> Vec<u8> {
        snapshot::encode(&self.flows, self.tables.own_id, mono_ns)
    }

    /// Restores a snapshot taken by an earlier run of this member's
    /// dataplane; returns the flows restored, or why none were.
    pub fn restore_flows(
        &mut self,
        bytes: &[u8],
        now_mono_ns: u64,
        now: Instant,
    ) -> Result<usize, snapshot::SnapshotError> {
        let flows = snapshot::decode(bytes, self.tables.own_id, now_mono_ns)?;
        Ok(snapshot::restore(&mut self.flows, flows, now))
    }

    /// The epochs and the fence new connections are claimed with.
    pub fn claims(&self) -> &ClaimSet<Arc<Tables>> {
        &self.claims
    }

    /// Whether this member claims a new connection from `client` to service
    /// `index` at `now`; `Err` names the outcome counter of a SYN it does
    /// not claim (another inspector, lease lapsed, epoch pending).
    fn claim(&self, index: usize, client: ClientKey, now: Instant) -> Result<(), Counter> {
        match self
            .claims
            .claims(now, owns(self.tables.own_id, index, client))
        {
            Claim::Yes => Ok(()),
            Claim::NotOwner => Err(Counter::SynOtherInspector),
            Claim::LeaseLapsed => Err(Counter::ClaimsRefusedLease),
            Claim::Pending => Err(Counter::ClaimsRefusedPending),
        }
    }

    /// Whether this member owns `client`'s key for service `index` in the
    /// current or a pending epoch.
    fn owned_in_any(&self, index: usize, client: ClientKey) -> bool {
        self.claims
            .owned_in_any(owns(self.tables.own_id, index, client))
    }

    /// Sets the SYN cookie secret (random per server; `run` reads it from
    /// the OS).
    pub fn set_cookie_secret(&mut self, secret: [u8; 32]) {
        self.cookies = CookieKeys::new(secret);
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

    /// Takes the frames originated since the last call (port, bytes).
    pub fn take_emitted(&mut self) -> std::vec::Drain<'_, (PortId, Vec<u8>)> {
        self.emitted.drain(..)
    }

    /// This worker's flow table.
    pub fn flows(&self) -> &FlowTable<FlowEntry> {
        &self.flows
    }

    /// Expires up to `budget` flows whose timeout passed; call once per burst.
    pub fn expire(&mut self, now: Instant, budget: usize) {
        // Counted in the flow table's own stats (expired by state).
        self.flows.expire(now, budget);
        self.fragments.expire(now, budget);
        self.splice_expire(now);
        self.handoff_poll(now);
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
            match self.on_wire(frame.bytes_mut(), now) {
                Plan::Done(verdict) => verdict,
                Plan::Encap { to } => self.encapsulate(frame, to),
                Plan::Decap { outer_len } => {
                    let bytes = frame.bytes_mut();
                    bytes.copy_within(0..ETH_LEN, outer_len);
                    if frame.adj(outer_len) {
                        Verdict::Forward(KERNEL)
                    } else {
                        Verdict::Drop
                    }
                }
                // Handled inside on_wire, which has the Ethernet header.
                Plan::RewriteMac { .. } => Verdict::Drop,
            }
        }
    }

    fn on_wire(&mut self, bytes: &mut [u8], now: Instant) -> Plan {
        let mut eth = match EthernetFrame::new_checked(bytes) {
            Ok(eth) => eth,
            Err(e) => return Plan::Done(self.malformed(Layer::Ethernet, e)),
        };
        let t = &*self.tables;
        let dst = eth.dst_addr();
        if dst != t.cluster_mac && dst != t.own_mac && !dst.is_multicast() {
            return Plan::Done(self.drop(Counter::DropOtherHost));
        }
        if eth.vlan_ids()[0].is_some() {
            return Plan::Done(self.drop(Counter::DropVlan));
        }
        match eth.ethertype() {
            EtherType::Arp => Plan::Done(self.arp(&mut eth)),
            EtherType::Ipv4 => {
                let to_me = dst == t.own_mac;
                let src_mac = eth.src_addr();
                let plan = self.ipv4_from_wire(eth.payload_mut(), src_mac, to_me, now);
                let t = &*self.tables;
                match plan {
                    // The kernel's TAP has this member's own MAC and silently
                    // drops frames for any other unicast MAC (the cluster MAC).
                    Plan::Done(Verdict::Forward(KERNEL)) | Plan::Decap { .. } => {
                        eth.set_dst_addr(t.own_mac);
                        plan
                    }
                    Plan::RewriteMac { to } => match t.member(to) {
                        Some(m) => {
                            eth.set_dst_addr(m.mac);
                            eth.set_src_addr(t.own_mac);
                            self.counters.inc(Counter::DprRedirected);
                            Plan::Done(Verdict::Forward(WIRE))
                        }
                        None => Plan::Done(self.drop(Counter::DropRedirectTargetGone)),
                    },
                    _ => plan,
                }
            }
            _ => Plan::Done(self.drop(Counter::DropUnsupportedEthertype)),
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

    fn ipv4_from_wire(
        &mut self,
        bytes: &mut [u8],
        src_mac: EthernetAddress,
        to_me: bool,
        now: Instant,
    ) -> Plan {
        let mut ip = match Ipv4Packet::new_checked(bytes) {
            Ok(ip) => ip,
            Err(e) => return Plan::Done(self.malformed(Layer::Ipv4, e)),
        };
        if !ip.verify_checksum() {
            return Plan::Done(self.malformed(Layer::Ipv4, Error::BadChecksum));
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let t = &*self.tables;
        if dst == t.own_addr {
            if ip.next_header() == IpProtocol::IpIp {
                return self.tunnel_end(&mut ip, now);
            }
            if ip.next_header() == IpProtocol::Udp && !ip.is_fragment() {
                if let Ok(udp) = UdpPacket::new_checked(ip.payload_mut()) {
                    if udp.dst_port() == shoal_l7::handoff::PORT {
                        return self.handoff_datagram(udp.payload(), now);
                    }
                }
            }
            self.counters.inc(Counter::OwnToKernel);
            return Plan::Done(Verdict::Forward(KERNEL));
        }
        if !t.is_vip(dst) {
            return Plan::Done(self.drop(Counter::DropNotForUs));
        }
        if let Err(e) = ip.check_options() {
            return Plan::Done(self.malformed(Layer::Ipv4, e));
        }
        let protocol = ip.next_header();
        if to_me {
            // Redirected here by an inspector (DPR MAC rewrite), fragments
            // included: this member's kernel serves it, whatever the hash says.
            if protocol == IpProtocol::Tcp && ip.frag_offset() == 0 {
                match TcpPacket::new_checked(ip.payload_mut()) {
                    Ok(tcp) => self.redirected_in(src, dst, &tcp, now),
                    Err(e) => return Plan::Done(self.malformed(Layer::Tcp, e)),
                }
            }
            self.counters.inc(Counter::DprReceived);
            return Plan::Done(Verdict::Forward(KERNEL));
        }
        // Fragments follow their datagram's first fragment (which carries the
        // ports and so the decision), keyed by source, destination and IP id.
        let frag_key = FlowKey::new(src, ip.ident(), dst, 0, protocol.into());
        if ip.frag_offset() > 0 {
            return match self.fragments.lookup_touch(&frag_key, now).map(|f| f.value) {
                Some(Some(action)) => {
                    self.counters.inc(Counter::FragmentFollowed);
                    self.place(action, None)
                }
                Some(None) => Plan::Done(self.drop(Counter::DropFragment)),
                None => Plan::Done(self.drop(Counter::DropFragmentOrphan)),
            };
        }
        let first_fragment = ip.more_frags();
        let plan = match protocol {
            IpProtocol::Tcp => self.tcp_from_wire(src_mac, src, dst, ip.payload_mut(), now),
            IpProtocol::Udp => Plan::Done(match UdpPacket::new_checked(ip.payload_mut()) {
                Ok(udp) => self.stateless_to_owner(src, dst, udp.src_port(), udp.dst_port(), true),
                Err(e) => self.malformed(Layer::Udp, e),
            }),
            IpProtocol::Icmp => {
                // Only messages with a repr (echo, unreachable, time
                // exceeded) reach a kernel; redirects and the like are dropped.
                Plan::Done(
                    match Icmpv4Packet::new_checked(&ip.payload_mut()[..])
                        .and_then(|p| Icmpv4Repr::parse(&p).map(|_| ()))
                    {
                        Ok(()) => self.stateless_to_owner(src, dst, 0, 0, false),
                        Err(e) => self.malformed(Layer::Icmp, e),
                    },
                )
            }
            _ => Plan::Done(self.drop(Counter::DropVipProtocol)),
        };
        if first_fragment {
            let action = match plan {
                Plan::Done(Verdict::Forward(KERNEL)) => Some(FlowAction::Local),
                Plan::RewriteMac { to } => Some(FlowAction::RedirectMac { member: to }),
                Plan::Encap { to } => Some(FlowAction::RedirectIpip { member: to }),
                _ => None,
            };
            // A full fragment table only means later fragments are dropped.
            let _ = self
                .fragments
                .insert(frag_key, FlowState::Established, action, now);
        }
        plan
    }

    /// IP-in-IP addressed to this member: validate the inner packet (a VIP
    /// packet an inspector redirected here), track its flow, deliver it.
    fn tunnel_end(&mut self, outer: &mut Ipv4Packet<&mut [u8]>, now: Instant) -> Plan {
        let outer_len = outer.header_len();
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
    fn redirected_in<T: AsRef<[u8]>>(
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
            && self.syn_meets_flow(&key, seq, now) == reuse::SynOnFlow::OwnSyn
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

    /// The plan for a packet of a flow placed with `action`. For a SYN
    /// tunnelled with IP-in-IP the MSS is clamped so that client segments
    /// plus the outer header fit the MTU.
    fn place(&mut self, action: FlowAction, syn: Option<&mut TcpPacket<&mut [u8]>>) -> Plan {
        match action {
            FlowAction::Local | FlowAction::Received => Plan::Done(Verdict::Forward(KERNEL)),
            // Handled before placement (tcp_from_wire).
            FlowAction::Splicing { .. } | FlowAction::Spliced(_) | FlowAction::HandedOff => {
                Plan::Done(Verdict::Drop)
            }
            FlowAction::RedirectMac { member } => Plan::RewriteMac { to: member },
            FlowAction::RedirectIpip { member } => {
                if let Some(tcp) = syn {
                    let max = self.tables.mtu.saturating_sub(IPIP_OVERHEAD + 40);
                    if clamp_mss(tcp, max) {
                        self.counters.inc(Counter::MssClamped);
                    }
                }
                Plan::Encap { to: member }
            }
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
        src_mac: EthernetAddress,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        bytes: &mut [u8],
        now: Instant,
    ) -> Plan {
        let mut tcp = match TcpPacket::new_checked(bytes) {
            Ok(tcp) => tcp,
            Err(e) => return Plan::Done(self.malformed(Layer::Tcp, e)),
        };
        let key = FlowKey::new(
            src,
            tcp.src_port(),
            dst,
            tcp.dst_port(),
            IpProtocol::Tcp.into(),
        );
        let client = ClientKey {
            addr: src,
            port: tcp.src_port(),
        };
        let (syn, ack, fin, rst) = (tcp.syn(), tcp.ack(), tcp.fin(), tcp.rst());
        let pure_syn = syn && !ack && !rst && !fin;
        // A SYN of a new connection on the 4-tuple of an earlier one drops
        // the earlier one's state and is placed afresh (`reuse`).
        let own_syn = pure_syn
            && self.syn_meets_flow(&key, tcp.seq_number(), now) == reuse::SynOnFlow::OwnSyn;
        if let Some(action) = self.track(&key, tcp.flags(), true, now) {
            if own_syn && action != FlowAction::Received {
                self.counters.inc(Counter::SynRetransmit);
            }
            match action {
                FlowAction::Received => {
                    // The inspector redirects this packet here; this is its
                    // broadcast copy.
                    return Plan::Done(self.drop(Counter::RedirectCopyIgnored));
                }
                FlowAction::Splicing { slot, service } => {
                    if self.conns.is_rare(slot) {
                        if let Some(plan) = self.rare_segment(slot, usize::from(service), &tcp, now)
                        {
                            self.counters.inc(Counter::FlowHit);
                            return plan;
                        }
                    } else {
                        self.splice_segment(slot, usize::from(service), &tcp, now);
                    }
                    return Plan::Done(self.drop(Counter::SpliceBuffered));
                }
                FlowAction::HandedOff => {
                    return Plan::Done(self.drop(Counter::HandoffTombstoneHit));
                }
                FlowAction::Spliced(params) => {
                    self.counters.inc(Counter::FlowHit);
                    Translation::new(params).to_kernel(&mut tcp);
                    return Plan::Done(Verdict::Forward(KERNEL));
                }
                _ => {}
            }
            self.counters.inc(Counter::FlowHit);
            return self.place(action, pure_syn.then_some(&mut tcp));
        }
        let tables = Arc::clone(&self.tables);
        let t = &*tables;
        let Some(index) = t.service_index(dst, tcp.dst_port(), IpProtocol::Tcp) else {
            return Plan::Done(self.drop(Counter::DropNoService));
        };
        let service = &t.services[index];
        if service.mode == Mode::Splice {
            return if pure_syn {
                if let Err(c) = self.claim(index, client, now) {
                    return Plan::Done(self.drop(c));
                }
                if !tcp.verify_checksum(src, dst) {
                    return Plan::Done(self.malformed(Layer::Tcp, Error::BadChecksum));
                }
                let rare = service
                    .dispatch
                    .as_ref()
                    .is_some_and(|d| d.handoff == shoal_config::HandoffMode::Rare);
                if rare {
                    self.rare_syn(src_mac, key, index, &tcp, now)
                } else {
                    self.splice_syn(src_mac, src, dst, &tcp, now)
                }
            } else if ack && !syn && !rst && self.owned_in_any(index, client) {
                // The cookie may come from an epoch since replaced: only this
                // member's cookie key verifies it, whatever the epoch.
                self.splice_ack(src_mac, key, index, &tcp, now)
            } else {
                Plan::Done(self.drop(Counter::VipNoFlow))
            };
        }
        let stateless_dpr = service.mode != Mode::Local && service.state == State::Stateless;
        if stateless_dpr && !pure_syn {
            // Stateless DPR: the inspector places every packet by a pure
            // hash of the client, so it needs no flow (DPR, stateless).
            // Established traffic: no lease or epoch check (only new
            // connections are claimed).
            if service.selector.select(client) != Some(t.own_id) {
                return Plan::Done(self.drop(Counter::VipNoFlow));
            }
            let target = service.target.select(client);
            let action = redirect(service.mode, target, t.own_id);
            self.counters.inc(Counter::DprStateless);
            return self.place(action, None);
        }
        if !pure_syn {
            return Plan::Done(self.drop(Counter::VipNoFlow));
        }
        // A SYN creates state: make sure it is intact (established traffic is
        // left to the NIC's and the kernel's checksum checks).
        if !tcp.verify_checksum(src, dst) {
            return Plan::Done(self.malformed(Layer::Tcp, Error::BadChecksum));
        }
        if let Err(c) = self.claim(index, client, now) {
            return Plan::Done(self.drop(c));
        }
        let action = match (service.mode, service.state) {
            (Mode::Local, _) => FlowAction::Local,
            (_, State::Stateless) => {
                redirect(service.mode, service.target.select(client), t.own_id)
            }
            (_, State::Stateful) => {
                let target = choose_by_load(t, service, client);
                if target != t.own_id {
                    self.counters.inc(Counter::DprOverloadChoice);
                }
                redirect(service.mode, Some(target), t.own_id)
            }
        };
        // The inspector keeps a flow for stateful placement, and for
        // connections its own kernel serves (to know their kernel resets).
        let entry = FlowEntry::new(action, tcp.seq_number());
        if !(stateless_dpr && action != FlowAction::Local)
            && self.flows.insert(key, FlowState::Syn, entry, now) == Insert::Rejected
        {
            return Plan::Done(self.drop(Counter::DropFlowTableFull));
        }
        if stateless_dpr {
            self.counters.inc(Counter::DprStateless);
        } else {
            self.counters.inc(Counter::SynAccepted);
        }
        self.place(action, Some(&mut tcp))
    }

    /// Grows the frame by an outer IPv4 header toward member `to` (RFC 2003),
    /// or answers the client with ICMP fragmentation-needed when the result
    /// would exceed the MTU and the packet may not be fragmented.
    fn encapsulate<F: Frame>(&mut self, frame: &mut F, to: u16) -> Verdict {
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
                return self.frag_needed(frame);
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
    /// RFC 1191) toward its sender, quoting its IP header and 8 bytes.
    fn frag_needed<F: Frame>(&mut self, frame: &mut F) -> Verdict {
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
            next_hop_mtu: t.mtu - IPIP_OVERHEAD,
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
                            return self.splice_kernel_synack(slot, &tcp, now);
                        }
                        self.replay_met_old_socket(&key, slot, &tcp, now);
                        return self.drop(Counter::SpliceKernelEarly);
                    }
                    Some(FlowAction::Spliced(params)) => {
                        Translation::new(params).to_client(&mut tcp);
                    }
                    Some(FlowAction::HandedOff) => {
                        // The connection moved; this kernel's socket is gone.
                        return self.drop(Counter::KernelRstSuppressed);
                    }
                    None if tcp.rst() => {
                        // The kernel only sees flows this server accepted; a RST for
                        // anything else must not reach a client another server serves.
                        return self.drop(Counter::KernelRstSuppressed);
                    }
                    Some(_) | None => {}
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
        if flags.contains(TcpFlags::FIN) || flags.contains(TcpFlags::RST) {
            flow.value_mut().ended = true;
        }
        Some(flow.value.action)
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

/// Connections a worker can have between cookie ACK and kernel SYN-ACK.
const SPLICE_SETUP_SLOTS: usize = 4096;

/// A dispatcher for every splice service of `tables` (LARD placements of
/// `previous` carried over).
fn build_dispatchers(
    tables: &Tables,
    previous: Vec<Option<Dispatcher>>,
) -> Vec<Option<Dispatcher>> {
    let members: Vec<(u16, &str, u32)> = tables
        .members
        .iter()
        .map(|m| (m.id, m.name.as_str(), m.effective_weight()))
        .collect();
    let mut previous = previous.into_iter();
    tables
        .services
        .iter()
        .map(|s| {
            let old = previous.next().flatten();
            let config = s.dispatch.as_ref().filter(|_| s.mode == Mode::Splice)?;
            let mut d = Dispatcher::new(config, &members).ok()?;
            if let Some(old) = old {
                d.inherit(old);
            }
            Some(d)
        })
        .collect()
}

/// Bytes of an untagged Ethernet header.
const ETH_LEN: usize = 14;
/// Bytes IP-in-IP adds (an outer IPv4 header without options).
const IPIP_OVERHEAD: u16 = 20;

/// The action for a connection whose chosen member is `target`.
fn redirect(mode: Mode, target: Option<u16>, own: u16) -> FlowAction {
    match (mode, target) {
        (Mode::DprMac, Some(member)) if member != own => FlowAction::RedirectMac { member },
        (Mode::DprIpip, Some(member)) if member != own => FlowAction::RedirectIpip { member },
        _ => FlowAction::Local,
    }
}

/// DPR stateful choice for a new connection this member inspects: itself
/// unless its load is above `max_load`; then the least-loaded other member,
/// or one drawn with probability inverse to load (the draw is a hash of the
/// client, so replays are deterministic), among members under `max_load`
/// that take connections. Itself again when every other member is over.
fn choose_by_load(t: &Tables, service: &ServiceEntry, client: ClientKey) -> u16 {
    let Some(max_load) = service.max_load else {
        return t.own_id;
    };
    if t.member(t.own_id).is_none_or(|me| me.load <= max_load) {
        return t.own_id;
    }
    let eligible = || {
        t.members
            .iter()
            .filter(move |m| m.id != t.own_id && m.effective_weight() > 0 && m.load < max_load)
    };
    match service.load_choice {
        LoadChoice::LeastLoaded => eligible()
            .min_by(|a, b| a.load.total_cmp(&b.load).then(a.id.cmp(&b.id)))
            .map_or(t.own_id, |m| m.id),
        LoadChoice::Probabilistic => {
            let weight = |m: &MemberEntry| 1.0 / (m.load.max(0.0) + 0.01);
            let total: f64 = eligible().map(weight).sum();
            if total <= 0.0 {
                return t.own_id;
            }
            let mut draw = (key_hash(client) >> 11) as f64 / (1u64 << 53) as f64 * total;
            for m in eligible() {
                draw -= weight(m);
                if draw < 0.0 {
                    return m.id;
                }
            }
            eligible().next_back().map_or(t.own_id, |m| m.id)
        }
    }
}

/// Lowers the MSS option of a SYN to `max` (incremental checksum update);
/// true if it changed.
fn clamp_mss(tcp: &mut TcpPacket<&mut [u8]>, max: u16) -> bool {
    let (Some(old), Some(at)) = (tcp.mss(), tcp.option_offset(option_kind::MSS)) else {
        return false;
    };
    if old <= max {
        return false;
    }
    let csum = checksum::update_bytes(
        tcp.checksum(),
        at + 2,
        &old.to_be_bytes(),
        &max.to_be_bytes(),
    );
    tcp.set_mss(max);
    tcp.set_checksum(csum);
    true
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
