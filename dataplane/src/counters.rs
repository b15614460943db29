//! Per-worker counters: one for every outcome and every drop reason.
//!
//! Counters are plain `u64`s owned by one worker (no atomics on the packet
//! path). Each has a stable `snake_case` name used in `replay`'s JSON summary
//! and, through the stats segment, in Prometheus labels. Malformed input is
//! counted per layer and per parse error in a small matrix.

use serde::Serialize;

use shoal_l7::dispatch::Reason;
use shoal_l7::reassembly::SegmentOutcome;

use crate::wire;

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $variant:ident => $name:literal, )*) => {
        /// Every outcome the pipeline counts.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum Counter {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Counter {
            /// Every counter, in declaration order.
            pub const ALL: &'static [Counter] = &[$(Counter::$variant,)*];
            /// Number of counters.
            pub const COUNT: usize = Counter::ALL.len();

            /// The counter's stable `snake_case` name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => $name,)*
                }
            }
        }
    };
}

counters! {
    /// Frames received on the wire port.
    WireRx => "wire_rx_packets",
    /// Bytes received on the wire port.
    WireRxBytes => "wire_rx_bytes",
    /// Frames received from the local kernel (TAP).
    KernelRx => "kernel_rx_packets",
    /// Bytes received from the local kernel.
    KernelRxBytes => "kernel_rx_bytes",
    /// Frames transmitted on the wire port.
    WireTx => "wire_tx_packets",
    /// Bytes transmitted on the wire port.
    WireTxBytes => "wire_tx_bytes",
    /// Frames delivered to the local kernel.
    KernelTx => "kernel_tx_packets",
    /// Bytes delivered to the local kernel.
    KernelTxBytes => "kernel_tx_bytes",
    /// Frames dropped because a transmit queue was full.
    DropTxFull => "drop_tx_queue_full",
    /// Wire frames dropped by fault injection (`run --inject-*`), before the pipeline.
    InjectedDrop => "injected_drop",
    /// Wire frames delayed behind later ones by fault injection.
    InjectedReorder => "injected_reorder",
    /// Frames the pipeline originated but no buffer was free for. Not an outcome.
    DropNoBuffer => "drop_no_buffer",
    /// Frames this worker received and passed to the worker that owns their
    /// connection (flow steering, `steer.rs`); counted again by the owner.
    SteeredOut => "steered_out_packets",
    /// Frames another worker received and passed to this one, their owner.
    SteeredIn => "steered_in_packets",
    /// Frames dropped before the pipeline because the steering ring toward
    /// their owner was full.
    DropSteerFull => "drop_steer_ring_full",
    /// Flows removed by an operator (`shoalctl flows evict`). Not an outcome.
    FlowsEvictedByOperator => "flows_evicted_by_operator",
    /// New connections placed by an operator's pin (`shoalctl flows pin`):
    /// L4 at the SYN, splice at dispatch. Not an outcome.
    PlacedPinned => "placed_pinned",
    /// New connections of a pinned client to a stateless DPR service, placed
    /// by the hash as usual (a pin needs a flow). Not an outcome.
    PinIgnoredStateless => "pin_ignored_stateless",
    /// New connections of a pinned client placed as usual because the pinned
    /// member is not in the membership or serves nothing. Not an outcome.
    PinTargetGone => "pin_target_gone",
    /// Pins refused: the worker holds its maximum of live pins. Not an outcome.
    PinRejectedFull => "pin_rejected_full",

    /// ARP requests for a VIP answered with the cluster MAC.
    ArpVipReplied => "arp_vip_replied",
    /// ARP frames for this server's own address passed to the kernel.
    ArpToKernel => "arp_to_kernel",
    /// ARP frames about other hosts, ignored.
    ArpIgnored => "arp_ignored",

    /// Frames addressed to another host's MAC (normal on a hub).
    DropOtherHost => "drop_other_host",
    /// Ethertypes the dataplane does not handle (IPv6, LLDP, ...).
    DropUnsupportedEthertype => "drop_unsupported_ethertype",
    /// Frames with more VLAN tags or a VLAN the config does not know.
    DropVlan => "drop_vlan",
    /// IPv4 packets for neither a VIP nor this server's address.
    DropNotForUs => "drop_not_for_us",
    /// Malformed frames (details in the per-layer matrix).
    DropMalformed => "drop_malformed",

    /// IPv4 traffic to this server's own address, passed to the kernel.
    OwnToKernel => "own_to_kernel",

    /// SYNs for a VIP service this server is inspector of: flow created.
    SynAccepted => "syn_accepted",
    /// SYNs another server is inspector of (dropped silently).
    SynOtherInspector => "syn_other_inspector",
    /// SYNs this server is the inspector of but may not claim: its lease
    /// from control lapsed (control down, hung or cut off from the
    /// majority). Another member takes the share once its failure detector
    /// removes this one; established flows go on.
    ClaimsRefusedLease => "claims_refused_lease",
    /// SYNs this server is the inspector of in the newest epoch but not in
    /// every epoch still waiting for all members' confirmation: the gap a
    /// membership change leaves instead of an overlap.
    ClaimsRefusedPending => "claims_refused_pending",
    /// Retransmitted SYNs of a flow already in the table.
    SynRetransmit => "syn_retransmit",
    /// Flows a client RST had moved to closing that the client kept using
    /// (a blind, out-of-window RST the kernel ignored, RFC 5961): kept
    /// established. Not an outcome.
    BlindResetSurvived => "blind_reset_survived",
    /// SYNs of a new connection on the 4-tuple of a flow held here (another
    /// ISN than the flow's, or any SYN after its FIN or RST): the old state
    /// is dropped and the SYN placed as a new connection; the sum of the
    /// `tuple_reused_*` kinds. Not an outcome.
    TupleReused => "tuple_reused",
    /// Tuple reuse that dropped a flow this kernel serves (`local` mode, DPR
    /// kept here, CARISMA rare kept). Not an outcome.
    TupleReusedLocal => "tuple_reused_local",
    /// Tuple reuse that dropped a DPR stateful inspector's redirect entry
    /// (the SYN is placed again, by load). Not an outcome.
    TupleReusedRedirect => "tuple_reused_redirect",
    /// Tuple reuse that dropped a flow another member's inspector redirected
    /// here (DPR receiver). Not an outcome.
    TupleReusedReceived => "tuple_reused_received",
    /// Tuple reuse that abandoned a connection in splice setup (its slot
    /// freed, its offer cancelled, a kernel socket it opened reset). Not an
    /// outcome.
    TupleReusedSplicing => "tuple_reused_splicing",
    /// Tuple reuse that dropped a spliced flow (this kernel served it). Not
    /// an outcome.
    TupleReusedSpliced => "tuple_reused_spliced",
    /// Tuple reuse that dropped an inspector's handoff tombstone (the SYN
    /// is answered afresh). Not an outcome.
    TupleReusedTombstone => "tuple_reused_tombstone",
    /// SYNs this server owns but could not track (flow table full, nothing evictable).
    DropFlowTableFull => "drop_flow_table_full",
    /// VIP packets that matched a flow in the table and were forwarded.
    FlowHit => "flow_hit",
    /// Non-SYN VIP TCP packets that match no flow here (another server owns them).
    VipNoFlow => "vip_no_flow",
    /// VIP packets to a port/protocol with no configured service.
    DropNoService => "drop_no_service",
    /// VIP UDP or ICMP packets this server is the owner of, passed to the kernel.
    VipStatelessLocal => "vip_stateless_local",
    /// VIP UDP or ICMP packets another server owns (dropped silently).
    VipStatelessOther => "vip_stateless_other",
    /// Later fragments of a datagram whose first fragment was dropped.
    DropFragment => "drop_fragment",
    /// VIP packets of a protocol the services do not cover.
    DropVipProtocol => "drop_vip_protocol",
    /// ICMP errors to a VIP (unreachable, time exceeded) that quote a
    /// connection held here: delivered where its packets go (its kernel,
    /// its DPR target; a spliced flow's quoted sequence number translated).
    IcmpErrorToFlow => "icmp_error_to_flow",
    /// ICMP errors to a VIP that quote no connection this member holds
    /// (another member's, a forged or stale quote, a quote of another
    /// address or too short to name one).
    DropIcmpNoFlow => "drop_icmp_no_flow",

    /// DPR stateless: VIP packets the inspector placed by the target hash.
    DprStateless => "dpr_stateless",
    /// Frames redirected here by another member (MAC rewrite) and delivered.
    DprReceived => "dpr_received",
    /// Broadcast copies of packets an inspector redirects here (ignored).
    RedirectCopyIgnored => "redirect_copy_ignored",
    /// IP-in-IP packets addressed to this member, decapsulated and delivered.
    IpipDecapsulated => "ipip_decapsulated",
    /// IP-in-IP packets counted as decapsulated whose buffer could not drop
    /// the outer header (dropped; a backend bug if ever seen). Not an outcome.
    DecapFailed => "decap_failed",
    /// IP-in-IP packets whose inner packet is not for a VIP (or fragmented outer).
    DropIpipInner => "drop_ipip_inner",
    /// Later fragments that followed their first fragment's decision.
    FragmentFollowed => "fragment_followed",
    /// Later fragments of a datagram never seen (or expired): dropped.
    DropFragmentOrphan => "drop_fragment_orphan",
    /// Frames sent to another member (MAC rewrite or IP-in-IP). Not an outcome.
    DprRedirected => "dpr_redirected",
    /// New connections passed to another member because this one was over
    /// `max_load`. Not an outcome.
    DprOverloadChoice => "dpr_overload_choice",
    /// SYNs whose MSS was lowered for IP-in-IP. Not an outcome.
    MssClamped => "mss_clamped",
    /// ICMP fragmentation-needed sent for DF packets too big to tunnel. Not an outcome.
    IcmpFragNeededSent => "icmp_frag_needed_sent",
    /// Non-DF packets too big to tunnel (no outer fragmentation). Not an outcome.
    DropTooBig => "drop_too_big",
    /// Redirects to a member no longer in the tables. Not an outcome.
    DropRedirectTargetGone => "drop_redirect_target_gone",
    /// Frames without headroom for an outer header. Not an outcome.
    DropNoHeadroom => "drop_no_headroom",

    /// Splice: SYNs answered with a SYN cookie (no state kept).
    SpliceCookieSent => "splice_cookie_sent",
    /// Splice: ACKs that did not carry a valid cookie of this server.
    SpliceCookieRejected => "splice_cookie_rejected",
    /// Splice: valid cookie ACKs with no setup slot free.
    SpliceConnTableFull => "splice_conn_table_full",
    /// Splice: cookie handshakes completed (a connection in setup).
    SpliceHandshake => "splice_handshake",
    /// Splice: client segments consumed while the request is read or replayed.
    SpliceBuffered => "splice_buffered",
    /// Splice: kernel SYN-ACKs of replayed connections (taken, not forwarded).
    SpliceKernelSynAck => "splice_kernel_synack",
    /// Splice: other kernel segments before the handshake completed.
    SpliceKernelEarly => "splice_kernel_early",
    /// Splice: connections replayed into this kernel. Not an outcome.
    SpliceReplayed => "splice_replayed",
    /// Splice: connections spliced (translation set up). Not an outcome.
    SpliceSpliced => "splice_spliced",
    /// Splice: bad requests (garbage, oversized) given their outcome. Not an outcome.
    SpliceBadRequest => "splice_bad_request",
    /// Splice: connections whose request did not arrive in time. Not an outcome.
    SpliceTimeout => "splice_timeout",
    /// Splice: requests their class refused (`[[services.dispatch.classes]]`),
    /// answered with the class's answer; per class and reason in
    /// `class/<service>/<class>/refused_<reason>`. Not an outcome.
    SpliceRefused => "splice_refused",
    /// Splice: new connections with no setup slot free answered with the
    /// service's busy answer (at most 1000 a second per worker; beyond, the
    /// segment is dropped as `splice_conn_table_full`).
    SpliceBusyAnswered => "splice_busy_answered",
    /// Splice, a front end (member roles): requests no back end took
    /// (handoff refused or unanswered, no back end up), answered with the
    /// service's busy answer instead of being served here. Not an outcome.
    SpliceFrontEndRefused => "splice_front_end_refused",
    /// Splice: the kernel answered a replayed SYN with an ACK or RST of an
    /// earlier connection's socket on the same 4-tuple (TIME-WAIT, mostly);
    /// that socket was reset (exact RST) and the SYN replayed once more.
    /// Not an outcome.
    SpliceReplayOldSocket => "splice_replay_old_socket",
    /// Splice: dispatch named another member but no handoff is possible (no
    /// cluster key, or the handoff table is full): served here. Not an outcome.
    SpliceRemoteNotWired => "splice_remote_not_wired",
    /// Splice: request segments that extended the in-order request bytes. Not an outcome.
    RequestSegmentAdvanced => "request_segment_advanced",
    /// Splice: request segments stored beyond a hole (the client sees a
    /// duplicate ACK). Not an outcome.
    RequestSegmentOutOfOrder => "request_segment_out_of_order",
    /// Splice: request segments with nothing new (retransmissions). Not an outcome.
    RequestSegmentDuplicate => "request_segment_duplicate",
    /// Splice: request segments that disagree with bytes already held, or
    /// carry data past the FIN (nothing stored). Not an outcome.
    RequestSegmentConflict => "request_segment_conflict",
    /// Splice: request segments refused because they would leave too many
    /// holes (the client resends). Not an outcome.
    RequestSegmentTooManyHoles => "request_segment_too_many_holes",
    /// Splice: request segments with bytes beyond the request buffer
    /// (`dispatch.max_request_bytes`; those bytes are not stored). Not an outcome.
    RequestSegmentTooLarge => "request_segment_too_large",

    /// SYN proxy (L4 TCP services, `syn_proxy`): SYNs this member claims
    /// answered with a SYN cookie instead of a flow (no state kept).
    SynproxyCookieSent => "synproxy_cookie_sent",
    /// SYN proxy: ACKs with a valid cookie of this member: the connection is
    /// created and replayed into this kernel (or handed to its DPR target).
    SynproxyAccepted => "synproxy_accepted",
    /// SYN proxy: ACKs without a flow, to a service this member inspects
    /// while it has cookies outstanding, that carry no valid cookie
    /// (forged, or too old); dropped. Stateless DPR places them by the
    /// target hash instead (a connection set up on the plain path has no
    /// flow on the inspector), counted as `dpr_stateless`.
    SynproxyCookieRejected => "synproxy_cookie_rejected",
    /// SYN proxy, `auto`: a worker started proxying a service's SYNs (its
    /// half-open flows passed `syn_proxy_half_open`). Not an outcome.
    SynproxyEngaged => "synproxy_engaged",
    /// SYN proxy, `auto`: a worker went back to the plain path (a whole SYN
    /// timeout with half-open flows and unanswered cookies at most half the
    /// threshold). `synproxy_engaged - synproxy_disengaged` = services
    /// proxying now. Not an outcome.
    SynproxyDisengaged => "synproxy_disengaged",
    /// SYN proxy, DPR: a proxied connection whose target is another member
    /// served by this member's kernel instead, because no handoff is
    /// possible (no cluster key, or the handoff table is full). Not an outcome.
    SynproxyKeptHere => "synproxy_kept_here",
    /// SYN proxy: proxied connections whose kernel did not answer the
    /// replayed SYN in time (no listener); the client got a RST. Not an outcome.
    SynproxyTimeout => "synproxy_timeout",

    /// Dispatch (url-hash): the request's directory on the URL ring. Not an outcome.
    DispatchDirectory => "dispatch_directory",
    /// Dispatch (url-hash): the full path of a hot prefix on the ring. Not an outcome.
    DispatchHotPath => "dispatch_hot_path",
    /// Dispatch (least-loaded): the least-loaded member. Not an outcome.
    DispatchLeastLoaded => "dispatch_least_loaded",
    /// Dispatch (least-loaded): the path's ring member, below
    /// `load_threshold`. Not an outcome.
    DispatchBelowThreshold => "dispatch_below_threshold",
    /// Dispatch (lard): the target stayed with its member. Not an outcome.
    DispatchLardKept => "dispatch_lard_kept",
    /// Dispatch (lard): a new or forgotten target placed. Not an outcome.
    DispatchLardAssigned => "dispatch_lard_assigned",
    /// Dispatch (lard): the target moved off an overloaded member. Not an outcome.
    DispatchLardMoved => "dispatch_lard_moved",
    /// Dispatch (dtcp): the least-loaded member of the target's server set.
    /// Not an outcome.
    DispatchDtcpHolder => "dispatch_dtcp_holder",
    /// Dispatch (dtcp): a target without a server set placed on the
    /// least-loaded member. Not an outcome.
    DispatchDtcpPlaced => "dispatch_dtcp_placed",
    /// Dispatch (dtcp): the least-loaded member joined the target's server
    /// set (replication). Not an outcome.
    DispatchDtcpReplicated => "dispatch_dtcp_replicated",
    /// Dispatch (cookie): the cookie's value named a member. Not an outcome.
    DispatchCookieNamed => "dispatch_cookie_named",
    /// Dispatch (cookie): the cookie's value on the URL ring. Not an outcome.
    DispatchCookieHashed => "dispatch_cookie_hashed",
    /// Dispatch (cookie): no such cookie, url-hash. Not an outcome.
    DispatchNoCookie => "dispatch_no_cookie",
    /// Dispatch (rules): a rule matched (any rule). Not an outcome.
    DispatchRule => "dispatch_rule",
    /// Dispatch (rules): no rule matched, `default_member`. Not an outcome.
    DispatchDefaultMember => "dispatch_default_member",
    /// Dispatch (rules): no rule and no usable default, url-hash. Not an outcome.
    DispatchNoRule => "dispatch_no_rule",
    /// L7 dispatch: the request's signed sticky cookie named its member. Not an outcome.
    DispatchStickyCookie => "dispatch_sticky_cookie",
    /// L7 dispatch: the session id in the URL, on the URL ring. Not an outcome.
    DispatchSessionId => "dispatch_session_id",
    /// L7 dispatch: an operator's pin of the client's prefix named the member. Not an outcome.
    DispatchPinned => "dispatch_pinned",
    /// L7 dispatch (url-hash, `hash_key = "uri"`): the full path on the ring. Not an outcome.
    DispatchUri => "dispatch_uri",
    /// L7 dispatch: a `local_paths` request served where inspected. Not an outcome.
    DispatchLocalPath => "dispatch_local_path",
    /// L7 dispatch (url-hash, `hot_path_mode = "local"`): a hot path served
    /// where inspected. Not an outcome.
    DispatchHotPathLocal => "dispatch_hot_path_local",
    /// A sticky cookie that the cluster did not sign (forged, corrupted,
    /// another service's): the request went by the policy. Not an outcome.
    StickyForged => "sticky_forged",
    /// A signed sticky cookie naming a member that is gone (dead or
    /// removed): the request went by the policy. Not an outcome.
    StickyStale => "sticky_stale",
    /// Responses the serving dataplane added the sticky `Set-Cookie` to. Not an outcome.
    StickyIssued => "sticky_issued",
    /// First responses that should have carried the sticky cookie but whose
    /// status line was not whole in the kernel's first segment (or was 1xx). Not an outcome.
    StickyNotIssued => "sticky_not_issued",
    /// A kernel segment holding bytes on both sides of the sticky cookie's
    /// place, sent to the client rebuilt with the cookie (the original
    /// freed).
    StickyRebuilt => "sticky_rebuilt",

    /// CARISMA rare: requests that stayed with this kernel. Not an outcome.
    RareKept => "rare_kept",
    /// CARISMA rare: connections moved to another member after this
    /// kernel's handshake. Not an outcome.
    RareMoved => "rare_moved",
    /// Handoff datagrams accepted (authenticated, fresh).
    HandoffDatagram => "handoff_datagram",
    /// Handoff datagrams refused (bad MAC, replayed, garbage, handoff off).
    HandoffRejected => "handoff_rejected",
    /// Refused handoff datagrams by reason (each also counted
    /// `handoff_rejected`; not outcomes): the tag does not verify (another
    /// key, tampering, a forger) ...
    HandoffRejectedBadMac => "handoff_rejected_bad_mac",
    /// ... signed but not a well-formed message ...
    HandoffRejectedMalformed => "handoff_rejected_malformed",
    /// ... for another member ...
    HandoffRejectedNotForUs => "handoff_rejected_not_for_us",
    /// ... stamped too far from this clock (stale, or NTP is off) ...
    HandoffRejectedClockSkew => "handoff_rejected_clock_skew",
    /// ... a copy of one already accepted ...
    HandoffRejectedReplayed => "handoff_rejected_replayed",
    /// ... or older than the replay window or the sender's incarnation.
    HandoffRejectedStale => "handoff_rejected_stale",
    /// Client packets of connections handed to another member (ignored).
    HandoffTombstoneHit => "handoff_tombstone_hit",
    /// Connections offered to another member. Not an outcome.
    HandoffOffered => "handoff_offered",
    /// Connections another member accepted. Not an outcome.
    HandoffHandedOver => "handoff_handed_over",
    /// Offers nobody accepted: served here instead. Not an outcome.
    HandoffFallback => "handoff_fallback",
    /// Accepts of an offer no longer in flight: after a fallback (two owners
    /// possible), or after the offer gave way to a newer handoff of the same
    /// connection (a keep-alive connection moving back here before the
    /// accept of its move away arrived: `tuple_reused_splicing`, harmless).
    /// Not an outcome.
    HandoffLateAccept => "handoff_late_accept",
    /// Connections offered by another member and replayed here. Not an outcome.
    HandoffReceived => "handoff_received",

    /// Persistent connections: client segments whose bytes the dataplane
    /// holds (a request not yet dispatched, or dispatched elsewhere).
    PersistHeld => "persist_held",
    /// Persistent connections: client ACKs and old data not forwarded while
    /// a kernel takes over the connection (between its SYN-ACK and its first
    /// segment after it).
    PersistKernelNotUp => "persist_kernel_not_up",
    /// Persistent connections: segments of a tracked flow whose session is
    /// gone (a bug if ever non-zero).
    PersistSessionLost => "persist_session_lost",
    /// Persistent connections followed request by request (sessions
    /// started). Not an outcome.
    PersistConnections => "persist_connections",
    /// Requests dispatched on followed connections (the first included).
    /// Not an outcome.
    PersistRequests => "persist_requests",
    /// Of those, requests served by the kernel the connection is on. Not an outcome.
    PersistRequestsHere => "persist_requests_here",
    /// Of those, requests held for another member. Not an outcome.
    PersistRequestsHeld => "persist_requests_held",
    /// Acknowledgements the dataplane sent the client for held bytes. Not an outcome.
    PersistHeldAcked => "persist_held_acked",
    /// Bytes held (and carried in the offer) when a connection moved. Not an outcome.
    PersistHeldBytes => "persist_held_bytes",
    /// Milliseconds requests were held before their connection moved (sum). Not an outcome.
    PersistHoldMs => "persist_hold_ms",
    /// Sessions freed after their flow ended. Not an outcome.
    PersistSessionsFreed => "persist_sessions_freed",
    /// Connections ended by a request their scheduler refused
    /// (`max_in_flight`, `max_queue`, `max_wait_ms`), answered with its
    /// class's answer (counted per class too). Not an outcome.
    PersistRefused => "persist_refused",
    /// Connections no longer followed: a response or request without
    /// length (chunked request, close-delimited response, upgrade, too many
    /// pipelined). Not an outcome.
    PersistUntrackedUnframed => "persist_untracked_unframed",
    /// Connections no longer followed: the client's FIN or RST. Not an outcome.
    PersistUntrackedClosing => "persist_untracked_closing",
    /// Connections no longer followed: the kernel's FIN or RST (keep-alive
    /// timeout, `Connection: close`). Not an outcome.
    PersistUntrackedKernelClosing => "persist_untracked_kernel_closing",
    /// Connections no longer followed: a request head the buffer cannot
    /// hold or parse (the kernel answers it). Not an outcome.
    PersistUntrackedBadRequest => "persist_untracked_bad_request",
    /// Connections no longer followed: a gap in the kernel's byte stream. Not an outcome.
    PersistUntrackedGap => "persist_untracked_gap",
    /// Connections not followed because the session table is full. Not an outcome.
    PersistUntrackedTableFull => "persist_untracked_table_full",
    /// Re-handoffs started: the held request's connection offered to its
    /// member (this kernel's socket reset). Not an outcome.
    RehandoffStarted => "rehandoff_started",
    /// Re-handoffs the target accepted. Not an outcome.
    RehandoffDone => "rehandoff_done",
    /// Re-handoffs refused or unanswered: the request served here. Not an outcome.
    RehandoffFallback => "rehandoff_fallback",
    /// Held requests served here because the connection could not move
    /// within `dispatch.request_timeout_ms`. Not an outcome.
    RehandoffHoldTimeout => "rehandoff_hold_timeout",

    /// IP-in-IP to this member whose outer source is not another member's
    /// address (forged or foreign tunnels; dropped).
    DropIpipNotMember => "drop_ipip_not_member",
    /// VIP frames to this member's own MAC (a DPR MAC-rewrite redirect) from
    /// a MAC that is not another member's (dropped: they would bypass
    /// selection).
    DropRedirectNotMember => "drop_redirect_not_member",

    /// Routed mode (`dataplane.topology = "routed"`, `pipeline/routed.rs`):
    /// VIP packets from a router that this member's kernel serves (it is
    /// the connection's target, or holds its flow).
    RoutedLocal => "routed_local",
    /// Routed: VIP packets from a router forwarded in GUE to the
    /// connection's target (another member).
    RoutedForwarded => "routed_forwarded",
    /// Routed: GUE packets from another member delivered to this kernel
    /// (this member is the target, holds the flow, or is the alternate
    /// that holds it).
    RoutedDecapsulated => "routed_decapsulated",
    /// Routed: non-SYN packets of a connection the target holds no flow
    /// for, forwarded once to the alternate (the target under the
    /// previous membership): the second chance.
    RoutedSecondChance => "routed_second_chance",
    /// Routed: non-SYN packets with no flow here and nowhere left to go
    /// (no alternate, an alternate that is no member, or the second chance
    /// already taken): dropped.
    RoutedSecondChanceDropped => "routed_second_chance_dropped",
    /// Routed: VIP packets for which no member takes connections (every
    /// weight 0): dropped.
    DropRoutedNoTarget => "drop_routed_no_target",
    /// Routed: IPv4 fragments to a VIP (a router may hash each fragment to
    /// another receiver; not followed): dropped.
    DropRoutedFragment => "drop_routed_fragment",
    /// Routed: GUE to this member whose outer source is not a member's
    /// address in the current or previous tables (forged or foreign):
    /// dropped.
    DropEncapNotMember => "drop_encap_not_member",
    /// Routed: GUE whose header is refused (truncated, another GUE use or
    /// version, inconsistent hops) or whose outer packet is a fragment:
    /// dropped.
    DropEncapMalformed => "drop_encap_malformed",
    /// Routed: GUE whose inner packet is not for a VIP service (or is a
    /// fragment): dropped.
    DropEncapInner => "drop_encap_inner",
    /// Routed splice: client packets of a connection this member inspected
    /// and handed to another member, forwarded to that member in GUE (the
    /// inspector's tombstone; the processing member holds the translation).
    RoutedTombstoneForwarded => "routed_tombstone_forwarded",
    /// Routed splice: non-SYN packets no member is known to hold (their
    /// inspector left the membership): sent in GUE to every other live
    /// member, of which only the one holding the connection keeps it.
    RoutedFlooded => "routed_flooded",
    /// Routed splice: flooded copies that reached a member without the
    /// connection (expected: all but one copy of each flooded packet).
    RoutedFloodMiss => "routed_flood_miss",
    /// Routed splice: packets this member would answer itself (cookie
    /// SYN-ACK, ACKs of the request) before it learned the router's MAC
    /// from a VIP frame of the router: dropped (the client retransmits).
    DropRoutedNoRouterMac => "drop_routed_no_router_mac",
    /// Routed splice: flood copies of a connection this member holds,
    /// answered with a `located` message to the member that flooded.
    RoutedLocatedSent => "routed_located_sent",
    /// Routed splice: `located` messages that taught this member where a
    /// connection it flooded is (a tombstone forwarding there from now on).
    RoutedLocatedLearned => "routed_located_learned",
    /// Routed: SYNs this member accepted as the connection's target (a flow
    /// created: its later packets find this member). Not an outcome.
    RoutedSynAccepted => "routed_syn_accepted",

    /// Frames from the kernel forwarded to the wire.
    KernelToWire => "kernel_to_wire",
    /// Kernel RSTs for VIP flows this server does not hold (suppressed).
    KernelRstSuppressed => "kernel_rst_suppressed",
    /// Other kernel TCP frames from a VIP that belong to no flow here, for
    /// a service that keeps flows (all but stateless DPR): dropped, since
    /// another member may serve that 4-tuple now.
    KernelVipNoFlow => "kernel_vip_no_flow",
    /// Kernel ARP frames naming a VIP as sender (would teach clients this
    /// server's MAC for the VIP; dropped).
    KernelArpVipSuppressed => "kernel_arp_vip_suppressed",
    /// Kernel frames that could not be parsed (dropped).
    DropKernelMalformed => "drop_kernel_malformed",
}

impl Counter {
    /// The counter of a request segment's reassembly outcome.
    pub const fn request_segment(outcome: SegmentOutcome) -> Counter {
        match outcome {
            SegmentOutcome::Advanced => Counter::RequestSegmentAdvanced,
            SegmentOutcome::OutOfOrder => Counter::RequestSegmentOutOfOrder,
            SegmentOutcome::Duplicate => Counter::RequestSegmentDuplicate,
            SegmentOutcome::Conflict => Counter::RequestSegmentConflict,
            SegmentOutcome::TooManyHoles => Counter::RequestSegmentTooManyHoles,
            SegmentOutcome::TooLarge => Counter::RequestSegmentTooLarge,
        }
    }

    /// The counter of a dispatch decision's reason (`dispatch_` and the
    /// reason's [`Reason::name`]).
    pub const fn dispatch(reason: Reason) -> Counter {
        match reason {
            Reason::Directory => Counter::DispatchDirectory,
            Reason::HotPath => Counter::DispatchHotPath,
            Reason::LeastLoaded => Counter::DispatchLeastLoaded,
            Reason::BelowThreshold => Counter::DispatchBelowThreshold,
            Reason::LardKept => Counter::DispatchLardKept,
            Reason::LardAssigned => Counter::DispatchLardAssigned,
            Reason::LardMoved => Counter::DispatchLardMoved,
            Reason::DtcpHolder => Counter::DispatchDtcpHolder,
            Reason::DtcpPlaced => Counter::DispatchDtcpPlaced,
            Reason::DtcpReplicated => Counter::DispatchDtcpReplicated,
            Reason::CookieNamed => Counter::DispatchCookieNamed,
            Reason::CookieHashed => Counter::DispatchCookieHashed,
            Reason::NoCookie => Counter::DispatchNoCookie,
            Reason::Rule(_) => Counter::DispatchRule,
            Reason::DefaultMember => Counter::DispatchDefaultMember,
            Reason::NoRule => Counter::DispatchNoRule,
            Reason::StickyCookie => Counter::DispatchStickyCookie,
            Reason::SessionId => Counter::DispatchSessionId,
            Reason::Pinned => Counter::DispatchPinned,
            Reason::Uri => Counter::DispatchUri,
            Reason::LocalPath => Counter::DispatchLocalPath,
            Reason::HotPathLocal => Counter::DispatchHotPathLocal,
        }
    }

    /// The counters that name the one final outcome of a received frame:
    /// every frame the pipeline processes bumps exactly one of these, so
    /// their sum equals `wire_rx_packets + kernel_rx_packets`.
    pub const OUTCOMES: &'static [Counter] = &[
        Counter::ArpVipReplied,
        Counter::ArpToKernel,
        Counter::ArpIgnored,
        Counter::DropOtherHost,
        Counter::DropUnsupportedEthertype,
        Counter::DropVlan,
        Counter::DropNotForUs,
        Counter::DropMalformed,
        Counter::OwnToKernel,
        Counter::SynAccepted,
        Counter::SynOtherInspector,
        Counter::ClaimsRefusedLease,
        Counter::ClaimsRefusedPending,
        Counter::DropFlowTableFull,
        Counter::FlowHit,
        Counter::VipNoFlow,
        Counter::IcmpErrorToFlow,
        Counter::DropIcmpNoFlow,
        Counter::DropNoService,
        Counter::VipStatelessLocal,
        Counter::VipStatelessOther,
        Counter::DropFragment,
        Counter::DropVipProtocol,
        Counter::DprStateless,
        Counter::DprReceived,
        Counter::RedirectCopyIgnored,
        Counter::IpipDecapsulated,
        Counter::DropIpipInner,
        Counter::FragmentFollowed,
        Counter::DropFragmentOrphan,
        Counter::SpliceCookieSent,
        Counter::SpliceCookieRejected,
        Counter::SpliceConnTableFull,
        Counter::SpliceBusyAnswered,
        Counter::SpliceHandshake,
        Counter::SpliceBuffered,
        Counter::SpliceKernelSynAck,
        Counter::SpliceKernelEarly,
        Counter::SynproxyCookieSent,
        Counter::SynproxyAccepted,
        Counter::SynproxyCookieRejected,
        Counter::HandoffDatagram,
        Counter::HandoffRejected,
        Counter::HandoffTombstoneHit,
        Counter::DropIpipNotMember,
        Counter::DropRedirectNotMember,
        Counter::RoutedLocal,
        Counter::RoutedForwarded,
        Counter::RoutedDecapsulated,
        Counter::RoutedSecondChance,
        Counter::RoutedSecondChanceDropped,
        Counter::DropRoutedNoTarget,
        Counter::DropRoutedFragment,
        Counter::DropEncapNotMember,
        Counter::DropEncapMalformed,
        Counter::DropEncapInner,
        Counter::RoutedTombstoneForwarded,
        Counter::RoutedFlooded,
        Counter::RoutedFloodMiss,
        Counter::DropRoutedNoRouterMac,
        Counter::PersistHeld,
        Counter::PersistKernelNotUp,
        Counter::PersistSessionLost,
        Counter::KernelToWire,
        Counter::StickyRebuilt,
        Counter::KernelRstSuppressed,
        Counter::KernelVipNoFlow,
        Counter::KernelArpVipSuppressed,
        Counter::DropKernelMalformed,
    ];
}

/// The protocol layer a malformed frame failed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Ethernet header (and VLAN tags).
    Ethernet,
    /// ARP.
    Arp,
    /// IPv4 header.
    Ipv4,
    /// TCP header and options.
    Tcp,
    /// UDP header.
    Udp,
    /// ICMPv4.
    Icmp,
}

impl Layer {
    /// Every layer, in order.
    pub const ALL: [Layer; 6] = [
        Layer::Ethernet,
        Layer::Arp,
        Layer::Ipv4,
        Layer::Tcp,
        Layer::Udp,
        Layer::Icmp,
    ];

    /// The layer's name as a label.
    pub const fn name(self) -> &'static str {
        match self {
            Layer::Ethernet => "ethernet",
            Layer::Arp => "arp",
            Layer::Ipv4 => "ipv4",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Icmp => "icmp",
        }
    }
}

/// Distinct parse-error kinds tracked per layer.
const REASONS: usize = wire::Error::ALL.len();

/// One worker's counters.
#[derive(Debug, Clone)]
pub struct Counters {
    values: [u64; Counter::COUNT],
    malformed: [[u64; REASONS]; Layer::ALL.len()],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            values: [0; Counter::COUNT],
            malformed: [[0; REASONS]; Layer::ALL.len()],
        }
    }
}

impl Counters {
    /// Adds one to `c`.
    #[inline]
    pub fn inc(&mut self, c: Counter) {
        self.values[c as usize] += 1;
    }

    /// Adds `n` to `c`.
    #[inline]
    pub fn add(&mut self, c: Counter, n: u64) {
        self.values[c as usize] += n;
    }

    /// The value of `c`.
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize]
    }

    /// Counts a malformed frame at `layer` failing with `err` (also bumps
    /// [`Counter::DropMalformed`]).
    #[inline]
    pub fn malformed(&mut self, layer: Layer, err: wire::Error) {
        self.values[Counter::DropMalformed as usize] += 1;
        self.malformed[layer as usize][error_index(err)] += 1;
    }

    /// Malformed frames at `layer` with error `err`.
    pub fn get_malformed(&self, layer: Layer, err: wire::Error) -> u64 {
        self.malformed[layer as usize][error_index(err)]
    }

    /// Sum of the [`Counter::OUTCOMES`]: frames that reached a final outcome.
    pub fn outcomes(&self) -> u64 {
        Counter::OUTCOMES.iter().map(|&c| self.get(c)).sum()
    }

    /// Every counter with its value, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().map(|&c| (c, self.values[c as usize]))
    }

    /// Every non-zero malformed cell as (layer, error, count).
    pub fn iter_malformed(&self) -> impl Iterator<Item = (Layer, wire::Error, u64)> + '_ {
        Layer::ALL.iter().flat_map(move |&layer| {
            wire::Error::ALL.iter().filter_map(move |&err| {
                let n = self.malformed[layer as usize][error_index(err)];
                (n > 0).then_some((layer, err, n))
            })
        })
    }

    /// Adds every value of `other` into `self` (totals across workers).
    pub fn merge(&mut self, other: &Counters) {
        for (a, b) in self.values.iter_mut().zip(other.values.iter()) {
            *a += b;
        }
        for (ra, rb) in self.malformed.iter_mut().zip(other.malformed.iter()) {
            for (a, b) in ra.iter_mut().zip(rb.iter()) {
                *a += b;
            }
        }
    }

    /// A serialisable snapshot: `{counters: {name: n}, malformed: {layer: {reason: n}}}`.
    pub fn snapshot(&self) -> Snapshot {
        let counters = self.iter().map(|(c, n)| (c.name(), n)).collect();
        let mut malformed: std::collections::BTreeMap<&'static str, _> =
            std::collections::BTreeMap::new();
        for (layer, err, n) in self.iter_malformed() {
            malformed
                .entry(layer.name())
                .or_insert_with(std::collections::BTreeMap::new)
                .insert(err.as_str(), n);
        }
        Snapshot {
            counters,
            malformed,
        }
    }
}

fn error_index(err: wire::Error) -> usize {
    wire::Error::ALL.iter().position(|&e| e == err).unwrap_or(0)
}

/// Counters in a form for JSON output.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    /// Every counter by name (zeros included, so the set of keys is stable).
    pub counters: std::collections::BTreeMap<&'static str, u64>,
    /// Malformed frames by layer and reason (non-zero cells only).
    pub malformed:
        std::collections::BTreeMap<&'static str, std::collections::BTreeMap<&'static str, u64>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        assert!(names
            .iter()
            .all(|n| n.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')));
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn every_dispatch_reason_has_its_counter() {
        let reasons = [
            Reason::Directory,
            Reason::HotPath,
            Reason::LeastLoaded,
            Reason::BelowThreshold,
            Reason::LardKept,
            Reason::LardAssigned,
            Reason::LardMoved,
            Reason::DtcpHolder,
            Reason::DtcpPlaced,
            Reason::DtcpReplicated,
            Reason::CookieNamed,
            Reason::CookieHashed,
            Reason::NoCookie,
            Reason::Rule(3),
            Reason::DefaultMember,
            Reason::NoRule,
            Reason::StickyCookie,
            Reason::SessionId,
            Reason::Pinned,
            Reason::Uri,
            Reason::LocalPath,
            Reason::HotPathLocal,
        ];
        for reason in reasons {
            let counter = Counter::dispatch(reason);
            assert_eq!(counter.name(), format!("dispatch_{}", reason.name()));
            assert!(!Counter::OUTCOMES.contains(&counter), "{counter:?}");
        }
        let named: Vec<&str> = Counter::ALL
            .iter()
            .map(|c| c.name())
            .filter(|n| n.starts_with("dispatch_"))
            .collect();
        assert_eq!(named.len(), reasons.len(), "{named:?}");
        assert_eq!(
            Counter::dispatch(Reason::DtcpReplicated).name(),
            "dispatch_dtcp_replicated"
        );
    }

    #[test]
    fn counts_and_merges() {
        let mut a = Counters::default();
        a.inc(Counter::SynAccepted);
        a.add(Counter::WireRxBytes, 60);
        a.malformed(Layer::Tcp, wire::Error::BadDataOffset);
        let mut b = Counters::default();
        b.inc(Counter::SynAccepted);
        b.merge(&a);
        assert_eq!(b.get(Counter::SynAccepted), 2);
        assert_eq!(b.get(Counter::WireRxBytes), 60);
        assert_eq!(b.get(Counter::DropMalformed), 1);
        assert_eq!(b.get_malformed(Layer::Tcp, wire::Error::BadDataOffset), 1);
        let snap = b.snapshot();
        assert_eq!(snap.counters["syn_accepted"], 2);
        assert_eq!(
            snap.malformed["tcp"][wire::Error::BadDataOffset.as_str()],
            1
        );
        assert_eq!(snap.counters.len(), Counter::COUNT);
    }
}
