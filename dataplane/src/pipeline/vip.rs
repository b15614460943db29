//! IPv4 from the wire (steps 3-6 of the life of a packet): the own address
//! to the kernel, fragments following their first fragment, tunnels to
//! `tunnel.rs`, and traffic to a VIP: TCP through the flow table (hit: the
//! flow's action; SYN miss: the selector names the inspector, the service's
//! mode places the connection; anything else: dropped silently), UDP and
//! ICMP to the client key's owner. Also the DPR load choice and the TCP
//! state tracking the flow timeouts need.

use core::net::Ipv4Addr;
use std::sync::Arc;

use shoal_config::{LoadChoice, Mode, State};
use shoal_select::{key_hash, ClientKey};
use shoal_wire::time::Instant;

use super::reuse::SynOnFlow;
use super::tunnel::IPIP_OVERHEAD;
use super::{
    FlowAction, FlowEntry, MemberEntry, Pipeline, Plan, ServiceEntry, Tables, Verdict, KERNEL,
};
use crate::counters::{Counter, Layer};
use crate::flow::{FlowKey, FlowState, Insert};
use crate::wire::{
    icmpv4, Error, EthernetAddress, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, TcpFlags,
    TcpPacket, UdpPacket,
};
use shoal_l7::splice::Translation;

impl Pipeline {
    pub(super) fn ipv4_from_wire(
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
                let routed = t.routed;
                let mut gue = false;
                if let Ok(udp) = UdpPacket::new_checked(ip.payload_mut()) {
                    if udp.dst_port() == shoal_l7::handoff::PORT {
                        return self.handoff_datagram(udp.payload(), now);
                    }
                    gue = routed && udp.dst_port() == shoal_wire::gue::PORT;
                }
                if gue {
                    return self.routed_decap(&mut ip, now);
                }
            }
            self.counters.inc(Counter::OwnToKernel);
            return Plan::Done(Verdict::Forward(KERNEL));
        }
        if !t.is_vip(dst) {
            return Plan::Done(self.drop(Counter::DropNotForUs));
        }
        if t.routed {
            // From a router, to this member's own MAC: `routed.rs`.
            return self.routed_from_wire(&mut ip, src_mac, now);
        }
        if let Err(e) = ip.check_options() {
            return Plan::Done(self.malformed(Layer::Ipv4, e));
        }
        let protocol = ip.next_header();
        if to_me {
            // Redirected here by an inspector (DPR MAC rewrite), fragments
            // included: this member's kernel serves it, whatever the hash says.
            // Only from another member: a host sending VIP traffic to this
            // member's own MAC would bypass selection.
            if !t
                .members
                .iter()
                .any(|m| m.mac == src_mac && m.id != t.own_id)
            {
                return Plan::Done(self.drop(Counter::DropRedirectNotMember));
            }
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
            IpProtocol::Icmp => self.icmp_from_wire(src, dst, ip.payload_mut()),
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

    /// The plan for a packet of a flow placed with `action`. For a SYN
    /// tunnelled with IP-in-IP the MSS is clamped so that client segments
    /// plus the outer header fit the MTU.
    pub(super) fn place(
        &mut self,
        action: FlowAction,
        syn: Option<&mut TcpPacket<&mut [u8]>>,
    ) -> Plan {
        match action {
            FlowAction::Local | FlowAction::Received => Plan::Done(Verdict::Forward(KERNEL)),
            // Handled before placement (tcp_from_wire).
            FlowAction::Splicing { .. }
            | FlowAction::Spliced(_)
            | FlowAction::HandedOff { .. }
            | FlowAction::Tracked { .. } => Plan::Done(Verdict::Drop),
            FlowAction::RedirectMac { member } => Plan::RewriteMac { to: member },
            FlowAction::RedirectIpip { member } => {
                if let Some(tcp) = syn {
                    let max = self.tables.mtu.saturating_sub(IPIP_OVERHEAD + 40);
                    if tcp.clamp_mss(max) {
                        self.counters.inc(Counter::MssClamped);
                    }
                }
                Plan::Encap { to: member }
            }
        }
    }

    /// ICMP to a VIP. Only messages with a repr (echo, unreachable, time
    /// exceeded) reach a kernel; redirects and the like are dropped. Echo
    /// goes to the owner of the sender's address. An error quotes a packet
    /// the VIP sent, so a connection: it goes where that connection's
    /// packets go (PMTU discovery of the member that serves it), with a
    /// spliced flow's quoted sequence number in the kernel's space; one
    /// that quotes no connection held here is dropped, counted.
    fn icmp_from_wire(&mut self, src: Ipv4Addr, dst: Ipv4Addr, bytes: &mut [u8]) -> Plan {
        let quote = match Icmpv4Packet::new_checked(&bytes[..]).and_then(|p| Icmpv4Repr::parse(&p))
        {
            Err(e) => return Plan::Done(self.malformed(Layer::Icmp, e)),
            Ok(
                Icmpv4Repr::DstUnreachable { invoking, .. }
                | Icmpv4Repr::TimeExceeded { invoking, .. },
            ) => icmpv4::parse_invoking(invoking).ok().and_then(|q| {
                let (vport, cport) = q.ports()?;
                let ihl = usize::from(invoking[0] & 0x0f) * 4;
                Some((
                    q.src_addr(),
                    q.dst_addr(),
                    q.header.protocol,
                    vport,
                    cport,
                    ihl,
                ))
            }),
            Ok(_) => return Plan::Done(self.stateless_to_owner(src, dst, 0, 0, false)),
        };
        let Some((vip, client, protocol, vport, cport, ihl)) = quote.filter(|q| q.0 == dst) else {
            return Plan::Done(self.drop(Counter::DropIcmpNoFlow));
        };
        if protocol == IpProtocol::Udp {
            return Plan::Done(self.stateless_to_owner(client, vip, cport, vport, true));
        }
        let key = FlowKey::new(client, cport, vip, vport, protocol.into());
        let action = self
            .flows
            .get(&key)
            .map(|f| self.resolve_action(f.value.action));
        let client = ClientKey {
            addr: client,
            port: cport,
        };
        match action {
            Some(
                a @ (FlowAction::Local
                | FlowAction::RedirectMac { .. }
                | FlowAction::RedirectIpip { .. }),
            ) => {
                self.counters.inc(Counter::IcmpErrorToFlow);
                self.place(a, None)
            }
            Some(FlowAction::Spliced(params)) => {
                // The quoted sequence number is the one the client saw.
                let at = icmpv4::field::HEADER_LEN + ihl + 4;
                let Some(seq) = bytes.get_mut(at..at + 4) else {
                    return Plan::Done(self.drop(Counter::DropIcmpNoFlow));
                };
                let client_view = u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]);
                seq.copy_from_slice(&client_view.wrapping_add(params.delta).to_be_bytes());
                Icmpv4Packet::new_unchecked(&mut bytes[..]).fill_checksum();
                self.counters.inc(Counter::IcmpErrorToFlow);
                Plan::Done(Verdict::Forward(KERNEL))
            }
            // Received: the inspector redirects it here; handed off or in
            // setup: another member, or no kernel yet.
            Some(_) => Plan::Done(self.drop(Counter::DropIcmpNoFlow)),
            None => {
                // Stateless DPR keeps no flow: the owner redirects it as it
                // would the connection's packets.
                let t = &*self.tables;
                let stateless = t.service(vip, vport, protocol).filter(|s| {
                    s.mode != Mode::Local && s.mode != Mode::Splice && s.state == State::Stateless
                });
                match stateless {
                    Some(s) if s.selector.select(client) == Some(t.own_id) => {
                        let action = redirect(s.mode, s.target.select(client), t.own_id);
                        self.counters.inc(Counter::IcmpErrorToFlow);
                        self.place(action, None)
                    }
                    _ => Plan::Done(self.drop(Counter::DropIcmpNoFlow)),
                }
            }
        }
    }

    /// UDP and ICMP to a VIP: no connection state; the client key's owner
    /// takes the packet (ICMP hashes on the client address alone).
    pub(super) fn stateless_to_owner(
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

    pub(super) fn tcp_from_wire(
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
        let own_syn =
            pure_syn && self.syn_meets_flow(&key, tcp.seq_number(), now) == SynOnFlow::OwnSyn;
        if let Some(action) = self.track(&key, tcp.flags(), true, now) {
            if let FlowAction::Tracked { slot } = action {
                if own_syn {
                    self.counters.inc(Counter::SynRetransmit);
                }
                return self.persist_client(slot, src_mac, &mut tcp, now);
            }
            return self.tcp_flow_hit(action, own_syn, pure_syn, &mut tcp, now);
        }
        let Some(index) = self
            .tables
            .service_index(dst, tcp.dst_port(), IpProtocol::Tcp)
        else {
            return Plan::Done(self.drop(Counter::DropNoService));
        };
        let mode = self.tables.services[index].mode;
        if mode == Mode::Splice {
            let flags = (pure_syn, ack && !syn && !rst);
            return self.tcp_splice_miss(src_mac, key, client, index, flags, &tcp, now);
        }
        if !pure_syn {
            let plain_ack = ack && !syn && !rst;
            return self.tcp_l4_no_flow(src_mac, key, client, index, plain_ack, &tcp, now);
        }
        // Only a SYN pays for holding the tables across the flow insert.
        let tables = Arc::clone(&self.tables);
        self.tcp_l4_miss(&tables, src_mac, index, key, client, &mut tcp, now)
    }

    /// A segment other than a SYN without a flow, to an L4 service (`local`,
    /// `dpr-*`): an ACK may complete a SYN-proxy cookie handshake
    /// (`synproxy_path.rs`; checked only while this worker has cookies of the
    /// service outstanding); stateless DPR places every packet by a pure hash of the
    /// client, so it needs no flow (DPR, stateless); anything else belongs
    /// to another member. Established traffic: no lease or epoch check (only
    /// new connections are claimed). Two selector lookups (the precomputed
    /// per-epoch tables of `shoal-select`) and no flow-table write.
    #[allow(clippy::too_many_arguments)]
    fn tcp_l4_no_flow(
        &mut self,
        src_mac: EthernetAddress,
        key: FlowKey,
        client: ClientKey,
        index: usize,
        plain_ack: bool,
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Plan {
        let service = &self.tables.services[index];
        let stateless_dpr = service.mode != Mode::Local && service.state == State::Stateless;
        if plain_ack && self.cookies_outstanding(index, now) && self.owned_in_any(index, client) {
            if let Some(plan) = self.synproxy_ack(src_mac, key, index, tcp, now) {
                return plan;
            }
            if !stateless_dpr {
                return Plan::Done(self.drop(Counter::SynproxyCookieRejected));
            }
        }
        let t = &*self.tables;
        let service = &t.services[index];
        if !stateless_dpr || service.selector.select(client) != Some(t.own_id) {
            return Plan::Done(self.drop(Counter::VipNoFlow));
        }
        let action = redirect(service.mode, service.target.select(client), t.own_id);
        self.counters.inc(Counter::DprStateless);
        self.place(action, None)
    }

    /// A segment of a flow in the table: its action (`track` moved its
    /// state along).
    #[inline]
    pub(super) fn tcp_flow_hit(
        &mut self,
        action: FlowAction,
        own_syn: bool,
        pure_syn: bool,
        tcp: &mut TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Plan {
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
                    if let Some(plan) = self.rare_segment(slot, usize::from(service), tcp, now) {
                        self.counters.inc(Counter::FlowHit);
                        return plan;
                    }
                } else {
                    self.splice_segment(slot, usize::from(service), tcp, now);
                }
                return Plan::Done(self.drop(Counter::SpliceBuffered));
            }
            FlowAction::HandedOff { .. } => {
                return Plan::Done(self.drop(Counter::HandoffTombstoneHit));
            }
            FlowAction::Spliced(params) => {
                self.counters.inc(Counter::FlowHit);
                Translation::new(params).to_kernel(tcp);
                return Plan::Done(Verdict::Forward(KERNEL));
            }
            // Taken before (`tcp_from_wire`), with the client's MAC.
            FlowAction::Tracked { .. } => {
                return Plan::Done(self.drop(Counter::PersistSessionLost))
            }
            _ => {}
        }
        self.counters.inc(Counter::FlowHit);
        self.place(action, pure_syn.then_some(tcp))
    }

    /// A segment without a flow to a `splice` service: a SYN this member
    /// claims gets a cookie (frequent) or goes to its kernel (rare); an ACK
    /// may complete a cookie handshake; the rest belongs to another member.
    /// `flags` is (pure SYN, ACK without SYN or RST).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tcp_splice_miss(
        &mut self,
        src_mac: EthernetAddress,
        key: FlowKey,
        client: ClientKey,
        index: usize,
        (pure_syn, plain_ack): (bool, bool),
        tcp: &TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Plan {
        let (src, dst) = (key.src, key.dst);
        if pure_syn {
            if let Err(c) = self.claim(index, client, now) {
                return Plan::Done(self.drop(c));
            }
            if !tcp.verify_checksum(src, dst) {
                return Plan::Done(self.malformed(Layer::Tcp, Error::BadChecksum));
            }
            let rare = self.tables.services[index]
                .dispatch
                .as_ref()
                .is_some_and(|d| d.handoff == shoal_config::HandoffMode::Rare);
            if rare {
                self.rare_syn(src_mac, key, index, tcp, now)
            } else {
                self.splice_syn(src_mac, src, dst, tcp, now)
            }
        } else if plain_ack && self.owned_in_any(index, client) {
            // The cookie may come from an epoch since replaced: only this
            // member's cookie key verifies it, whatever the epoch.
            self.splice_ack(src_mac, key, index, tcp, now)
        } else {
            Plan::Done(self.drop(Counter::VipNoFlow))
        }
    }

    /// A SYN without a flow to an L4 service (`local`, `dpr-*`): if this
    /// member claims it, it is answered with a SYN cookie while the
    /// service's SYN proxy is on (`synproxy_path.rs`), else placed and
    /// (unless stateless and redirected) given a flow; otherwise it belongs
    /// to another member.
    #[allow(clippy::too_many_arguments)]
    fn tcp_l4_miss(
        &mut self,
        t: &Tables,
        src_mac: EthernetAddress,
        index: usize,
        key: FlowKey,
        client: ClientKey,
        tcp: &mut TcpPacket<&mut [u8]>,
        now: Instant,
    ) -> Plan {
        let service = &t.services[index];
        let stateless_dpr = service.mode != Mode::Local && service.state == State::Stateless;
        // A SYN creates state: make sure it is intact (established traffic is
        // left to the NIC's and the kernel's checksum checks).
        if !tcp.verify_checksum(key.src, key.dst) {
            return Plan::Done(self.malformed(Layer::Tcp, Error::BadChecksum));
        }
        if let Err(c) = self.claim(index, client, now) {
            return Plan::Done(self.drop(c));
        }
        if self.syn_proxy_now(index, now) {
            return self.synproxy_syn(src_mac, key, index, tcp, now);
        }
        let action = self.l4_placement(t, index, client, now);
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
        self.place(action, Some(tcp))
    }

    /// Where a new connection of L4 service `index` from `client` goes (the
    /// plain path's SYN and the SYN proxy's cookie ACK): an operator's pin
    /// (not for stateless DPR, counted), else `local`: here; stateless DPR:
    /// the target hash; stateful DPR: the load choice.
    pub(super) fn l4_placement(
        &mut self,
        t: &Tables,
        index: usize,
        client: ClientKey,
        now: Instant,
    ) -> FlowAction {
        let service = &t.services[index];
        let pinned = self.pinned(client.addr, now);
        if pinned.is_some() && service.mode != Mode::Local && service.state == State::Stateless {
            self.counters.inc(Counter::PinIgnoredStateless);
        }
        match (service.mode, service.state, pinned) {
            (_, State::Stateful, Some(member)) | (Mode::Local, _, Some(member)) => {
                self.counters.inc(Counter::PlacedPinned);
                // A pinned `local` connection moves like `dpr-mac`'s.
                let mode = if service.mode == Mode::Local {
                    Mode::DprMac
                } else {
                    service.mode
                };
                redirect(mode, Some(member), t.own_id)
            }
            (Mode::Local, _, None) => FlowAction::Local,
            (_, State::Stateless, _) => {
                redirect(service.mode, service.target.select(client), t.own_id)
            }
            (_, State::Stateful, None) => {
                let target = choose_by_load(t, service, client);
                if target != t.own_id {
                    self.counters.inc(Counter::DprOverloadChoice);
                }
                redirect(service.mode, Some(target), t.own_id)
            }
        }
    }

    /// Looks the flow up (refreshing it), moves it along the TCP states
    /// timeouts care about, and returns its action; `None` if no live flow.
    #[inline]
    pub(super) fn track(
        &mut self,
        key: &FlowKey,
        flags: TcpFlags,
        from_client: bool,
        now: Instant,
    ) -> Option<FlowAction> {
        let mut flow = self.flows.lookup_touch(key, now)?;
        let state = flow.state();
        let (fin, rst) = (flags.contains(TcpFlags::FIN), flags.contains(TcpFlags::RST));
        if state == FlowState::Closing && flow.value.client_reset && from_client && !fin && !rst {
            // The client goes on after "its" RST: the RST was blind (RFC
            // 5961), the kernel ignored it. Keep the flow.
            let v = flow.value_mut();
            v.client_reset = false;
            v.ended = false;
            flow.set_state(FlowState::Established, now);
            self.counters.inc(Counter::BlindResetSurvived);
            return Some(flow.value.action);
        }
        let next = next_state(state, flags, from_client);
        if next != state {
            flow.set_state(next, now);
        }
        if fin || rst {
            let v = flow.value_mut();
            // Closing because of the client's RST alone (not a FIN, not
            // the kernel's RST): may be blind.
            v.client_reset = rst && from_client && (!v.ended || v.client_reset);
            v.ended = true;
        }
        Some(flow.value.action)
    }
}

/// The action for a connection whose chosen member is `target`.
pub(super) fn redirect(mode: Mode, target: Option<u16>, own: u16) -> FlowAction {
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
pub(super) fn choose_by_load(t: &Tables, service: &ServiceEntry, client: ClientKey) -> u16 {
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

/// TCP state tracking as far as timeouts need it: any FIN or RST closes, the
/// client's first ACK after the SYN establishes.
pub(super) fn next_state(state: FlowState, flags: TcpFlags, from_client: bool) -> FlowState {
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
