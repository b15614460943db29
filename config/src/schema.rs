//! The configuration schema. Every struct denies unknown fields so a typo is
//! an error naming the key, never a silently ignored setting.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::MacAddr;

/// One server's whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The cluster this server belongs to: VIPs, cluster MAC, members.
    pub cluster: Cluster,
    /// The services answered on the VIPs (`[[services]]`).
    #[serde(default)]
    pub services: Vec<Service>,
    /// Packet I/O and worker settings of `shoal-dataplane`.
    #[serde(default)]
    pub dataplane: Dataplane,
    /// Settings of `shoal-control`.
    #[serde(default)]
    pub control: Control,
}

/// The cluster: what every member shares, plus which member this file is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// A name for logs and metrics labels.
    #[serde(default = "default_cluster_name")]
    pub name: String,
    /// The virtual IPs every member answers as one.
    pub vips: Vec<Ipv4Addr>,
    /// The MAC address ARP answers for the VIPs carry (shared by all members).
    pub mac: MacAddr,
    /// Name of the member this file configures (one of `members[].name`).
    pub local_member: String,
    /// File holding the shared cluster key (HMAC for control and handoff
    /// messages). Relative paths are relative to the config file.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Every member of the cluster, this one included (`[[cluster.members]]`).
    pub members: Vec<Member>,
}

/// One server of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Stable numeric id (1..=65535), the same on every server.
    pub id: u16,
    /// Human name (`srv1`), unique.
    pub name: String,
    /// The member's own (non-VIP) address.
    pub address: Ipv4Addr,
    /// The member's own MAC address on the shared segment.
    pub mac: MacAddr,
    /// Relative share of new connections (0 = drained). Default 100.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// What the member does: inspect and serve (`both`, the default), only
    /// inspect and hand every request over (`front-end`), or only serve
    /// what front ends hand over (`back-end`): CARISMA's *always* handoff
    /// (seed 003 §6). Only for clusters whose services are all `splice`.
    #[serde(default)]
    pub role: MemberRole,
}

/// A member's part in a splice cluster (`cluster.members.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberRole {
    /// Inspects connections and serves requests (every member of a
    /// cluster without roles).
    #[default]
    Both,
    /// Inspects connections, reads their requests and hands every one
    /// over; serves nothing itself.
    FrontEnd,
    /// Serves the requests front ends hand over, answering the client
    /// directly; inspects no connection.
    BackEnd,
}

impl MemberRole {
    /// Whether the member may be chosen as a connection's inspector.
    pub fn inspects(self) -> bool {
        self != MemberRole::BackEnd
    }

    /// Whether the member may be chosen to serve a request.
    pub fn serves(self) -> bool {
        self != MemberRole::FrontEnd
    }
}

/// Transport protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// What the inspector does with a connection it owns (`docs/design.md`, "Modes of a service").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The chosen server's own kernel serves the connection (DTS L4 broadcast).
    Local,
    /// DPR on one LAN: rewrite the destination MAC to the chosen server's MAC.
    DprMac,
    /// DPR across networks: IP-in-IP (RFC 2003) to the chosen server's address.
    DprIpip,
    /// L7: complete the handshake, read the request, splice to the chosen server.
    Splice,
}

/// Whether the choice of server is recomputed per packet or kept per flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// The choice is a pure hash: no per-flow state.
    Stateless,
    /// The choice is made at SYN time and kept in the flow table.
    #[default]
    Stateful,
}

/// A service: VIP, port and protocol, and how its connections are placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Name for logs and metric labels; unique.
    pub name: String,
    /// One of `cluster.vips`.
    pub vip: Ipv4Addr,
    /// Service port.
    pub port: u16,
    /// Transport protocol (default tcp).
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// What the inspector does (default local).
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Stateless or stateful placement (DPR modes).
    #[serde(default)]
    pub state: State,
    /// Inspector selection (`[services.selection]`).
    #[serde(default)]
    pub selection: Selection,
    /// L7 dispatch policy (`[services.dispatch]`), only for `mode = "splice"`.
    /// A splice service written without it is loaded with
    /// [`Dispatch::default()`], so after loading it is `Some` exactly for
    /// splice services.
    #[serde(default)]
    pub dispatch: Option<Dispatch>,
    /// SYN-flood defence of an L4 TCP service (`local`, `dpr-mac`,
    /// `dpr-ipip`): answer SYNs with SYN cookies and replay a connection
    /// into the kernel only once the client's ACK proves its cookie. None =
    /// [`SynProxy::Auto`] for those services; not allowed for `splice` (which
    /// always answers with cookies) or UDP. Read it with
    /// [`Service::syn_proxy`].
    #[serde(default)]
    pub syn_proxy: Option<SynProxy>,
    /// `syn_proxy = "auto"` only: half-open (SYN-state) flows in a worker's
    /// flow table above which that worker proxies the service's new SYNs.
    /// None = [`DEFAULT_SYN_PROXY_HALF_OPEN`]. Read it with
    /// [`Service::syn_proxy_half_open`].
    #[serde(default)]
    pub syn_proxy_half_open: Option<u32>,
}

/// Half-open flows per worker above which `syn_proxy = "auto"` engages,
/// when `syn_proxy_half_open` is not set. Without a flood a worker holds
/// about (new connections per second) x (handshake round-trip time)
/// half-open flows: 1024 covers 10 000 connections/s per worker at 100 ms.
pub const DEFAULT_SYN_PROXY_HALF_OPEN: u32 = 1024;

impl Service {
    /// Whether the service is L4 over TCP (`local`, `dpr-mac`, `dpr-ipip`),
    /// the services the SYN proxy applies to.
    pub fn is_l4_tcp(&self) -> bool {
        self.mode != Mode::Splice && self.protocol == Protocol::Tcp
    }

    /// The SYN proxy setting in force: as written, [`SynProxy::Auto`] for an
    /// L4 TCP service that does not say, [`SynProxy::Off`] for the others.
    pub fn syn_proxy(&self) -> SynProxy {
        if self.is_l4_tcp() {
            self.syn_proxy.unwrap_or_default()
        } else {
            SynProxy::Off
        }
    }

    /// The `auto` threshold in force (half-open flows per worker).
    pub fn syn_proxy_half_open(&self) -> u32 {
        self.syn_proxy_half_open
            .unwrap_or(DEFAULT_SYN_PROXY_HALF_OPEN)
    }
}

/// SYN-flood defence of an L4 TCP service (`services.syn_proxy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SynProxy {
    /// Every SYN the member claims takes the plain path: a half-open flow,
    /// the SYN to the kernel (or the chosen member).
    Off,
    /// Every SYN the member claims is answered with a SYN cookie; only a
    /// valid cookie ACK creates state and replays the connection.
    On,
    /// The plain path until a worker holds more than
    /// `syn_proxy_half_open` half-open flows; then cookies, until the flood
    /// has stopped for a SYN timeout.
    #[default]
    Auto,
}

/// Consistent-hash algorithm electing the inspector of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Ring consistent hashing with virtual nodes (DTS).
    Ring,
    /// Maglev lookup table.
    Maglev,
    /// Rendezvous (highest random weight) hashing.
    #[default]
    Rendezvous,
}

/// How the ring hashes a client key (address and port) to a point on the
/// ring. Part of `[selection]`: every member must use the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyHash {
    /// The first 8 bytes of MD5(address || port), as DTS hashes: for a ring
    /// shared with DTS-compatible members. About 60-80 ns per key.
    Md5,
    /// The `SplitMix64` finaliser of (address << 16 | port), the key hash
    /// Maglev and rendezvous use: a few ns per key. The ring's balance and
    /// disruption do not depend on the key hash (they are properties of the
    /// member points, which MD5 places either way).
    #[default]
    Splitmix64,
}

/// How to pick among servers when load matters (DPR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadChoice {
    /// The least-loaded healthy server (deterministic).
    #[default]
    LeastLoaded,
    /// A server drawn with probability inverse to its load.
    Probabilistic,
}

/// Inspector selection parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Hash algorithm (default rendezvous).
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Virtual nodes per member for `ring` (DTS Fig. 8: at least 31 for balance).
    #[serde(default = "default_vnodes")]
    pub vnodes: u32,
    /// How `ring` hashes client keys (default splitmix64; md5 as DTS).
    #[serde(default)]
    pub key_hash: KeyHash,
    /// Maglev table size; must be a prime larger than 100 x members.
    #[serde(default = "default_maglev_table_size")]
    pub maglev_table_size: u32,
    /// Load above which the hashed server is passed over (DPR `MaxLoad`); none = ignore load.
    #[serde(default)]
    pub max_load: Option<f64>,
    /// Choice when the hashed server is over `max_load`.
    #[serde(default)]
    pub load_choice: LoadChoice,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            algorithm: Algorithm::default(),
            vnodes: default_vnodes(),
            key_hash: KeyHash::default(),
            maglev_table_size: default_maglev_table_size(),
            max_load: None,
            load_choice: LoadChoice::default(),
        }
    }
}

/// L7 dispatch policy of a splice service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DispatchPolicy {
    /// Consistent hashing of the URL path, with hot-path rules (DTS Fig. 9).
    #[default]
    UrlHash,
    /// The least-loaded server.
    LeastLoaded,
    /// Locality-aware request distribution (classic LARD, Pai et al.
    /// ASPLOS'98): one member per target, moved when overloaded
    /// (`load_threshold`).
    Lard,
    /// DTCP's node selection (DTCP §4.3, Algorithm 1): a set of members per
    /// target; the least-loaded holder serves it, and the least-loaded member
    /// overall joins the set when the holder is `replicate_above` busier.
    Dtcp,
    /// A named cookie's value picks the server.
    Cookie,
    /// Static host/prefix rules with a default.
    Rules,
}

/// Where requests under `hot_paths` go (DTS Fig. 9, line B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HotPathMode {
    /// Spread over every member by full path (each file on one member).
    #[default]
    Spread,
    /// Served by the member that inspects the connection (every member
    /// serves the hot set from its own cache, as DTS's line B).
    Local,
}

/// What `policy = "url-hash"` hashes onto the URL ring (DTS Fig. 9, line C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UrlHashKey {
    /// The request's directory (the path up to its last `/`): a
    /// directory's objects share one member's cache.
    #[default]
    Directory,
    /// The request's full path (DTS's line C: the MD5 of the URI), each
    /// object on its own member.
    Uri,
}

/// CARISMA handoff mode of a splice service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HandoffMode {
    /// The dataplane always does the handshake and hands over, even to itself.
    #[default]
    Frequent,
    /// The hashed server's kernel does the handshake; move only when needed.
    Rare,
}

/// What a bad (garbage, oversized or slow) request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadRequestAction {
    /// An HTTP 400 (or 431 for oversized headers) response, then close.
    #[default]
    Respond,
    /// A TCP reset.
    Reset,
    /// Hand the connection to `dispatch.default_member` anyway.
    PassToDefault,
}

/// A static dispatch rule: requests matching host and path prefix go to `member`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchRule {
    /// Host header to match (none = any).
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix to match (default "/").
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Member name that answers matching requests.
    pub member: String,
}

/// L7 dispatch settings (`[services.dispatch]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dispatch {
    /// The policy.
    #[serde(default)]
    pub policy: DispatchPolicy,
    /// CARISMA mode.
    #[serde(default)]
    pub handoff: HandoffMode,
    /// Path prefixes treated as hot: hashed per full path over all members
    /// (DTS Fig. 9), or served where inspected (`hot_path_mode = "local"`).
    #[serde(default)]
    pub hot_paths: Vec<String>,
    /// What hot paths get (DTS Fig. 9, line B): `spread` (default) or `local`.
    #[serde(default)]
    pub hot_path_mode: HotPathMode,
    /// What `url-hash` hashes (DTS Fig. 9, line C): `directory` (default)
    /// or `uri`.
    #[serde(default)]
    pub hash_key: UrlHashKey,
    /// Path prefixes served by the member that inspects the connection,
    /// whatever the policy (DTS Fig. 9, line A: scripts and small images
    /// stay where layer-4 balancing put them, with no handoff). A sticky
    /// cookie still wins; a front end (which serves nothing) uses the
    /// policy instead.
    #[serde(default)]
    pub local_paths: Vec<String>,
    /// Cookie whose value picks the server (`policy = "cookie"`).
    #[serde(default)]
    pub cookie_name: Option<String>,
    /// Load threshold for LARD / least-loaded.
    #[serde(default)]
    pub load_threshold: Option<f64>,
    /// `policy = "dtcp"` only: how much busier (in load, a share of
    /// capacity) a target's least-loaded holder must be than the
    /// least-loaded member overall for that member to get a copy of the
    /// target (DTCP §4.3's "100 requests"); strictly between 0 and 1. None =
    /// 0.4, the gap at which `lard` with its default threshold starts to
    /// move a target (above 0.8 while a member is below 0.4).
    #[serde(default)]
    pub replicate_above: Option<f64>,
    /// Static rules (`policy = "rules"`), first match wins.
    #[serde(default)]
    pub rules: Vec<DispatchRule>,
    /// Member for requests no rule matches, and for `pass-to-default`.
    #[serde(default)]
    pub default_member: Option<String>,
    /// Largest request head buffered before deciding (bytes).
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: u32,
    /// Longest wait for a complete request head (milliseconds).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u32,
    /// What bad requests get.
    #[serde(default)]
    pub on_bad_request: BadRequestAction,
    /// Dispatch every request of a keep-alive connection (DTCP re-handoff,
    /// seed 004): a request that belongs to another member is held, and the
    /// connection moves there once the previous response is complete and
    /// acknowledged. `false`: the first request decides for the whole
    /// connection. The hold is bounded by `max_request_bytes` and
    /// `request_timeout_ms`; past them the request is served where it is.
    #[serde(default = "default_true")]
    pub per_request: bool,
    /// Request classes (`[[services.dispatch.classes]]`), first match wins;
    /// requests no class matches are of class `default`
    /// ([`crate::DEFAULT_CLASS`]).
    #[serde(default)]
    pub classes: Vec<crate::RequestClass>,
    /// Scheduling at the serving member (`[services.dispatch.scheduling]`);
    /// none = requests go to the kernel as they come (admission limits of
    /// the classes still apply).
    #[serde(default)]
    pub scheduling: Option<crate::Scheduling>,
    /// Session stickiness (`[services.dispatch.sticky]`); none = every
    /// request by the policy.
    #[serde(default)]
    pub sticky: Option<crate::Sticky>,
}

impl Default for Dispatch {
    /// What a splice service without `[services.dispatch]` gets: URL hashing,
    /// frequent handoff, 16 KiB / 5 s request limits, 400 for bad requests.
    fn default() -> Self {
        Dispatch {
            policy: DispatchPolicy::default(),
            handoff: HandoffMode::default(),
            hot_paths: Vec::new(),
            hot_path_mode: HotPathMode::default(),
            hash_key: UrlHashKey::default(),
            local_paths: Vec::new(),
            cookie_name: None,
            load_threshold: None,
            replicate_above: None,
            rules: Vec::new(),
            default_member: None,
            max_request_bytes: default_max_request_bytes(),
            request_timeout_ms: default_request_timeout_ms(),
            on_bad_request: BadRequestAction::default(),
            per_request: true,
            classes: Vec::new(),
            scheduling: None,
            sticky: None,
        }
    }
}

/// Packet I/O backend of the dataplane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// DPDK poll-mode drivers (PCI devices or vdevs).
    #[default]
    Dpdk,
    /// `AF_PACKET` on the NIC plus a Linux TAP, no DPDK (development machines).
    Portable,
    /// In-memory queues (tests and `replay`).
    Memory,
}

/// Role of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortRole {
    /// The NIC on the shared segment where clients and peers are.
    Wire,
    /// The exception path toward the local kernel (TAP).
    Kernel,
}

/// One port of the dataplane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Name for logs and metrics (`wire0`, `kernel0`).
    pub name: String,
    /// What the port is for.
    pub role: PortRole,
    /// The device: a PCI address (`0000:3b:00.0`), a DPDK vdev string
    /// (`net_af_packet0,iface=eth0`, `net_tap0,iface=shoal0`) or, for the
    /// portable backend, an interface name.
    pub device: String,
}

/// TCP-state timeouts of the flow table, in seconds (SYN in milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowTimeouts {
    /// Half-open flows (SYN seen, no ACK yet), milliseconds.
    #[serde(default = "default_syn_ms")]
    pub syn_ms: u64,
    /// Established flows without traffic, seconds.
    #[serde(default = "default_established_s")]
    pub established_s: u64,
    /// Flows after FIN or RST, seconds.
    #[serde(default = "default_closing_s")]
    pub closing_s: u64,
    /// Tombstones (flows handed to another server), seconds.
    #[serde(default = "default_tombstone_s")]
    pub tombstone_s: u64,
}

impl Default for FlowTimeouts {
    fn default() -> Self {
        FlowTimeouts {
            syn_ms: default_syn_ms(),
            established_s: default_established_s(),
            closing_s: default_closing_s(),
            tombstone_s: default_tombstone_s(),
        }
    }
}

/// The per-worker flow table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowTable {
    /// Flows per worker, fixed at start (no growth on the packet path).
    #[serde(default = "default_flow_capacity")]
    pub capacity: u32,
    /// Per-state timeouts.
    #[serde(default)]
    pub timeouts: FlowTimeouts,
}

impl Default for FlowTable {
    fn default() -> Self {
        FlowTable {
            capacity: default_flow_capacity(),
            timeouts: FlowTimeouts::default(),
        }
    }
}

/// Dataplane settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataplane {
    /// I/O backend.
    #[serde(default)]
    pub backend: Backend,
    /// Ports: exactly one `wire` and one `kernel` port (optional for the
    /// `memory` backend, where they only name the in-memory queues).
    #[serde(default)]
    pub ports: Vec<Port>,
    /// CPU cores (DPDK lcores) that run workers, one worker per core.
    #[serde(default = "default_cores")]
    pub cores: Vec<u32>,
    /// `dpdk` backend: the core of EAL's main lcore, which then forwards
    /// nothing (it runs the housekeeping: signals, the stats file) and must
    /// not be one of `cores`. None (default): worker 0 runs on the main
    /// lcore, `cores[0]`, and the housekeeping thread shares that core.
    #[serde(default)]
    pub main_core: Option<u32>,
    /// Packets per rx/tx burst (1..=256).
    #[serde(default = "default_burst_size")]
    pub burst_size: u16,
    /// Descriptors per rx queue (power of two).
    #[serde(default = "default_queue_size")]
    pub rx_queue_size: u16,
    /// Descriptors per tx queue (power of two).
    #[serde(default = "default_queue_size")]
    pub tx_queue_size: u16,
    /// IP MTU of the segment (bytes). IP-in-IP redirection clamps the MSS of
    /// SYNs to `mtu - 60` and answers bigger DF packets with ICMP
    /// fragmentation-needed.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Mbufs in the packet pool; must cover every queue plus bursts in flight.
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    /// Use hugepages (production). Off = `--no-huge` (lab and tests).
    #[serde(default = "default_true")]
    pub hugepages: bool,
    /// Memory for EAL in megabytes when `hugepages = false`.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    /// Extra EAL arguments, appended verbatim (`dpdk` backend only).
    #[serde(default)]
    pub eal_args: Vec<String>,
    /// Flow table settings.
    #[serde(default)]
    pub flow_table: FlowTable,
    /// How client packets reach the members: every member sees every packet
    /// on one broadcast segment (`segment`, the default), or routers spread
    /// them by ECMP and each packet reaches one member (`routed`). The same
    /// on every member.
    #[serde(default, skip_serializing_if = "Topology::is_segment")]
    pub topology: Topology,
}

/// How client packets reach the cluster (`dataplane.topology`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// One broadcast segment (a hub or a flooding VLAN): every member sees
    /// every client packet and the inspector of each connection acts.
    #[default]
    Segment,
    /// Routers in front (BGP/ECMP): a packet reaches one member, the
    /// *receiver*, which serves it or forwards it (GUE) to the
    /// connection's target; the target answers the client directly.
    Routed,
}

impl Topology {
    /// Whether this is the default, [`Topology::Segment`].
    pub fn is_segment(&self) -> bool {
        *self == Topology::Segment
    }
}

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            backend: Backend::default(),
            ports: Vec::new(),
            cores: default_cores(),
            main_core: None,
            burst_size: default_burst_size(),
            mtu: default_mtu(),
            rx_queue_size: default_queue_size(),
            tx_queue_size: default_queue_size(),
            mbufs: default_mbufs(),
            hugepages: true,
            memory_mb: default_memory_mb(),
            eal_args: Vec::new(),
            flow_table: FlowTable::default(),
            topology: Topology::Segment,
        }
    }
}

/// A network the control process exchanges membership and load on (the DPR
/// report's configuration names several).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Name for logs.
    pub name: String,
    /// Local address and port to bind.
    pub bind: SocketAddr,
    /// Multicast group and port to send to; none = unicast to `peers`. A
    /// network needs a group, peers, or both.
    #[serde(default)]
    pub multicast: Option<SocketAddr>,
    /// Unicast peers, where multicast is unavailable.
    #[serde(default)]
    pub peers: Vec<SocketAddr>,
}

/// What a member cut off from the majority does (`control.isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Claim new connections only while hearing a strict majority of the
    /// configured members.
    #[default]
    Majority,
    /// Claim new connections whenever every member heard acknowledges this
    /// one, even alone.
    ServeAlone,
}

/// Control-process settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Interval between membership/load announcements, milliseconds.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// A member silent this long is removed, milliseconds (the DPR report's cleaner).
    #[serde(default = "default_failure_timeout_ms")]
    pub failure_timeout_ms: u64,
    /// Smoothing factor of load reports (exponential moving average, 0..1].
    #[serde(default = "default_load_smoothing")]
    pub load_smoothing: f64,
    /// What a member that hears no majority of the configured members does
    /// with new connections: `majority` (default: stops claiming them, safe
    /// in any partition) or `serve-alone` (a lone survivor serves
    /// everything; both sides of a partition would too).
    #[serde(default)]
    pub isolation: Isolation,
    /// Networks to announce on.
    #[serde(default)]
    pub networks: Vec<Network>,
    /// Prometheus exporter address.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: SocketAddr,
    /// Admin API address (keep on localhost).
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// File holding the admin token mutating admin calls need. Relative
    /// paths are relative to the config file.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// Directory (on tmpfs) of the control <-> dataplane channel: one command
    /// ring and one stats segment per worker (`commands-<w>`, `stats-<w>`). Relative paths are
    /// relative to the config file.
    #[serde(default = "default_shm_path")]
    pub shm_path: PathBuf,
    /// What this member's load figure counts besides the dataplane
    /// (`[control.load]`): the host's CPU and the application's share.
    #[serde(default)]
    pub load: LoadSettings,
    /// Announcing the VIPs by BGP through the member's BIRD 2
    /// (`[control.bgp]`, routed mode); none = control announces nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpSettings>,
}

/// `[control.bgp]`: control enables the BIRD protocol that exports the VIP
/// routes (`protocol static shoal_vips`, exported only to the BGP peers)
/// while this member should receive VIP traffic, and disables it otherwise,
/// through `birdc`. See deploy/CONFIG.md and deploy/examples/routed/.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpSettings {
    /// Whether control drives the announcement (false: the section is
    /// kept but control leaves BIRD alone).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The `birdc` program (absolute path).
    #[serde(default = "default_birdc")]
    pub birdc: PathBuf,
    /// BIRD's control socket (`birdc -s`).
    #[serde(default = "default_bird_socket")]
    pub socket: PathBuf,
    /// The BIRD protocol holding the VIP routes, enabled to announce and
    /// disabled to withdraw.
    #[serde(default = "default_bird_protocol")]
    pub protocol: String,
    /// The local application's health check: an HTTP GET of this URL
    /// (`http://IPV4[:PORT]/PATH`) must answer 2xx or 3xx within
    /// `health_timeout_ms`.
    #[serde(default = "default_health_url")]
    pub health_url: String,
    /// Between two health checks, milliseconds.
    #[serde(default = "default_health_interval_ms")]
    pub health_interval_ms: u64,
    /// How long one health check may take, milliseconds.
    #[serde(default = "default_health_timeout_ms")]
    pub health_timeout_ms: u64,
    /// Consecutive failed health checks that withdraw the VIP (one success
    /// announces it again).
    #[serde(default = "default_health_failures")]
    pub health_failures: u32,
    /// How long the lease may be lapsed before the VIP is withdrawn,
    /// milliseconds: a lease lapses briefly whenever a peer dies (until the
    /// cleaner removes it, one failure timeout), which must not withdraw
    /// every survivor. At least `control.failure_timeout_ms`.
    #[serde(default = "default_lease_lapse_ms")]
    pub lease_lapse_ms: u64,
    /// On SIGTERM control withdraws first and stays in the membership this
    /// long before it leaves, milliseconds: the routers move the VIP away
    /// while this member still serves what reaches it.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
}

impl Default for BgpSettings {
    fn default() -> Self {
        BgpSettings {
            enabled: true,
            birdc: default_birdc(),
            socket: default_bird_socket(),
            protocol: default_bird_protocol(),
            health_url: default_health_url(),
            health_interval_ms: default_health_interval_ms(),
            health_timeout_ms: default_health_timeout_ms(),
            health_failures: default_health_failures(),
            lease_lapse_ms: default_lease_lapse_ms(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
        }
    }
}

fn default_birdc() -> PathBuf {
    PathBuf::from("/usr/sbin/birdc")
}
fn default_bird_socket() -> PathBuf {
    PathBuf::from("/run/bird/bird.ctl")
}
fn default_bird_protocol() -> String {
    "shoal_vips".to_owned()
}
fn default_health_url() -> String {
    "http://127.0.0.1:80/".to_owned()
}
fn default_health_interval_ms() -> u64 {
    500
}
fn default_health_timeout_ms() -> u64 {
    400
}
fn default_health_failures() -> u32 {
    3
}
fn default_lease_lapse_ms() -> u64 {
    3_000
}
fn default_shutdown_grace_ms() -> u64 {
    1_000
}

/// `[control.load]`: the figures the composite load is made of and where
/// the application's processes are. The composite (what `max_load` and the
/// L7 policies compare) is
/// `max(busy·weights.busy, connections/capacity·weights.connections,
/// host_cpu·weights.host_cpu, app·weights.app)`, clamped to 0..=1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LoadSettings {
    /// Pid files of the application serving the connections (e.g.
    /// `["/run/nginx.pid"]`), absolute paths: the process in each file and
    /// all its descendants are the application. Empty (default): no
    /// application figure.
    #[serde(default)]
    pub app_pid_files: Vec<PathBuf>,
    /// CPUs the application can use: its CPU time is divided by the
    /// interval times this. None (default): the host's online CPUs that are
    /// not `dataplane.cores`.
    #[serde(default)]
    pub app_cpus: Option<u32>,
    /// How much each figure counts (`[control.load.weights]`).
    #[serde(default)]
    pub weights: LoadWeights,
}

/// `[control.load.weights]`: each figure's factor in the composite load,
/// 0..=1 (0 = ignored).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadWeights {
    /// The dataplane's busy fraction (polls that found packets).
    #[serde(default = "default_weight_one")]
    pub busy: f64,
    /// Open connections as a share of the flow tables' capacity.
    #[serde(default = "default_weight_one")]
    pub connections: f64,
    /// The host's busy CPU share over the CPUs the dataplane does not own.
    #[serde(default = "default_weight_one")]
    pub host_cpu: f64,
    /// The application's CPU share (only with `app_pid_files`).
    #[serde(default = "default_weight_one")]
    pub app: f64,
}

impl Default for LoadWeights {
    fn default() -> Self {
        LoadWeights {
            busy: 1.0,
            connections: 1.0,
            host_cpu: 1.0,
            app: 1.0,
        }
    }
}

impl Default for Control {
    fn default() -> Self {
        Control {
            interval_ms: default_interval_ms(),
            failure_timeout_ms: default_failure_timeout_ms(),
            load_smoothing: default_load_smoothing(),
            isolation: Isolation::default(),
            networks: Vec::new(),
            metrics_listen: default_metrics_listen(),
            admin_listen: default_admin_listen(),
            admin_token_file: None,
            shm_path: default_shm_path(),
            load: LoadSettings::default(),
            bgp: None,
        }
    }
}

fn default_cluster_name() -> String {
    "shoal".to_owned()
}
fn default_weight() -> u32 {
    100
}
fn default_protocol() -> Protocol {
    Protocol::Tcp
}
fn default_mode() -> Mode {
    Mode::Local
}
fn default_vnodes() -> u32 {
    64
}
fn default_maglev_table_size() -> u32 {
    65_537
}
fn default_prefix() -> String {
    "/".to_owned()
}
fn default_max_request_bytes() -> u32 {
    16 * 1024
}
fn default_request_timeout_ms() -> u32 {
    5_000
}
fn default_syn_ms() -> u64 {
    5_000
}
fn default_established_s() -> u64 {
    300
}
fn default_closing_s() -> u64 {
    10
}
fn default_tombstone_s() -> u64 {
    60
}
fn default_flow_capacity() -> u32 {
    1 << 20
}
fn default_cores() -> Vec<u32> {
    vec![1]
}
fn default_burst_size() -> u16 {
    32
}
fn default_mtu() -> u16 {
    1500
}
fn default_queue_size() -> u16 {
    1024
}
fn default_mbufs() -> u32 {
    16_383
}
fn default_true() -> bool {
    true
}
fn default_memory_mb() -> u32 {
    256
}
fn default_interval_ms() -> u64 {
    200
}
fn default_failure_timeout_ms() -> u64 {
    1_000
}
fn default_load_smoothing() -> f64 {
    0.3
}
fn default_weight_one() -> f64 {
    1.0
}
fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9465))
}
fn default_shm_path() -> PathBuf {
    PathBuf::from("/dev/shm/shoal")
}
