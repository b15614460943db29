//! The immutable tables a worker decides with: addresses, services and the
//! inspector selector of one membership epoch. Built off the packet path from
//! a [`Config`] and swapped in whole at a burst boundary.

use core::net::Ipv4Addr;
use std::sync::Arc;

use shoal_config::{
    Config, Dispatch, LoadChoice, MemberRole, Mode, Protocol, State, SynProxy, Topology,
};

use crate::wire::{EthernetAddress, IpProtocol};
use shoal_select::{ClientKey, Member, Params, Selector};

/// A service as the pipeline matches it.
#[derive(Debug, Clone)]
pub struct ServiceEntry {
    /// The service's name (`services.name`: metric labels).
    pub name: String,
    /// Inspector selection for this service's new connections.
    pub selector: Arc<dyn Selector>,
    /// VIP.
    pub vip: Ipv4Addr,
    /// Port.
    pub port: u16,
    /// IP protocol (TCP or UDP).
    pub protocol: IpProtocol,
    /// What the inspector does.
    pub mode: Mode,
    /// DPR: stateless (pure hash per packet) or stateful (choice kept per flow).
    pub state: State,
    /// DPR stateless: the target of a connection, a consistent hash
    /// independent of the inspector's (as DPR's entry point and target are).
    pub target: Arc<dyn Selector>,
    /// DPR stateful: load above which the inspector passes a new connection on.
    pub max_load: Option<f64>,
    /// DPR stateful: how the other member is chosen then.
    pub load_choice: LoadChoice,
    /// Splice: the dispatch settings (policy, limits, bad-request outcome).
    pub dispatch: Option<Dispatch>,
    /// L4 TCP: the SYN proxy in force (`Off` for splice and UDP services).
    pub syn_proxy: SynProxy,
    /// L4 TCP, `syn_proxy = "auto"`: half-open flows per worker above which
    /// new SYNs are proxied.
    pub syn_proxy_half_open: u32,
    /// The service's `[selection]` (the selectors are rebuilt from it for
    /// another membership: [`Tables::without_member`]).
    pub selection: shoal_config::Selection,
}

/// A member as the pipeline sees it in one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberEntry {
    /// Cluster-wide id.
    pub id: u16,
    /// Name (dispatch rules and cookies name members).
    pub name: String,
    /// Own address (IP-in-IP tunnel endpoint).
    pub addr: Ipv4Addr,
    /// Own MAC (MAC-rewrite target).
    pub mac: EthernetAddress,
    /// Configured weight (0 = no new connections).
    pub weight: u32,
    /// Draining: finishes its connections, takes no new ones.
    pub draining: bool,
    /// Alive in this epoch (control's failure detector).
    pub alive: bool,
    /// Current load figure (DPR `max_load` compares against it).
    pub load: f64,
}

impl MemberEntry {
    /// A configured member: alive, undrained, at its configured weight, load 0.
    pub fn from_config(m: &shoal_config::Member) -> MemberEntry {
        MemberEntry {
            id: m.id,
            name: m.name.clone(),
            addr: m.address,
            mac: EthernetAddress(m.mac.0),
            weight: m.weight,
            draining: false,
            alive: true,
            load: 0.0,
        }
    }

    /// The weight selection uses: 0 when draining or dead.
    pub fn effective_weight(&self) -> u32 {
        if self.draining || !self.alive {
            0
        } else {
            self.weight
        }
    }
}

/// Why tables could not be built from a config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TablesError {
    /// `cluster.local_member` names no member (`validate()` normally catches this).
    #[error("cluster.local_member '{0}' is not one of cluster.members")]
    UnknownLocalMember(String),
    /// A service uses a mode this build does not implement yet.
    #[error(
        "services '{service}': {mode} is not implemented in this build \
         (\"local\", \"dpr-mac\", \"dpr-ipip\" and \"splice\" with frequent handoff are)"
    )]
    UnsupportedMode {
        /// Service name.
        service: String,
        /// The mode as written in the config.
        mode: &'static str,
    },
}

/// Everything a worker needs to classify and place packets, for one epoch.
#[derive(Debug)]
pub struct Tables {
    /// Membership epoch these tables belong to.
    pub epoch: u64,
    /// Digest of the epoch's table as control computed it (equal digests:
    /// equal inspector selection); 0 for tables built from the config alone.
    pub digest: u64,
    /// The cluster's VIPs.
    pub vips: Vec<Ipv4Addr>,
    /// MAC answered in ARP replies for the VIPs.
    pub cluster_mac: EthernetAddress,
    /// This member's id.
    pub own_id: u16,
    /// This member's own address.
    pub own_addr: Ipv4Addr,
    /// This member's own MAC (also the kernel TAP's MAC).
    pub own_mac: EthernetAddress,
    /// Services on the VIPs.
    pub services: Vec<ServiceEntry>,
    /// Selection for VIP traffic outside any service (ICMP).
    pub selector: Arc<dyn Selector>,
    /// Every member of the epoch (alive or not), ordered by id.
    pub members: Vec<MemberEntry>,
    /// Members with a role other than `both` (`cluster.members.role`:
    /// front ends inspect and never serve, back ends serve and never
    /// inspect); empty in a cluster without roles.
    pub roles: Vec<(u16, MemberRole)>,
    /// IP MTU of the segment.
    pub mtu: u16,
    /// `dataplane.topology = "routed"`: packets come from routers, one
    /// member each (`routed.rs`), not broadcast to every member.
    pub routed: bool,
}

impl Tables {
    /// Builds epoch `epoch`'s tables from a validated config, with every
    /// member alive, undrained, at its configured weight and load 0.
    pub fn from_config(cfg: &Config, epoch: u64) -> Result<Tables, TablesError> {
        let members = cfg
            .cluster
            .members
            .iter()
            .map(MemberEntry::from_config)
            .collect();
        Tables::build(cfg, epoch, members)
    }

    /// Builds tables from a validated config and the membership of an epoch
    /// (weights, drain, liveness and load as control last reported them).
    pub fn build(
        cfg: &Config,
        epoch: u64,
        mut members: Vec<MemberEntry>,
    ) -> Result<Tables, TablesError> {
        members.sort_by_key(|m| m.id);
        let routed = cfg.dataplane.topology == Topology::Routed;
        let me = cfg
            .cluster
            .members
            .iter()
            .find(|m| m.name == cfg.cluster.local_member)
            .ok_or_else(|| TablesError::UnknownLocalMember(cfg.cluster.local_member.clone()))?;
        let roles: Vec<(u16, MemberRole)> = cfg
            .cluster
            .members
            .iter()
            .filter(|m| m.role != MemberRole::Both)
            .map(|m| (m.id, m.role))
            .collect();
        let inspecting = inspecting(&members, &roles);
        let mut services = Vec::with_capacity(cfg.services.len());
        for s in &cfg.services {
            services.push(ServiceEntry {
                name: s.name.clone(),
                selector: build_selector(&s.selection, &inspecting),
                target: Arc::new(Salted(build_selector(&s.selection, &members))),
                selection: s.selection.clone(),
                state: s.state,
                max_load: s.selection.max_load,
                load_choice: s.selection.load_choice,
                dispatch: s.dispatch.clone(),
                // Routed mode has no SYN proxy (validation refuses one
                // written; the default `auto` does not apply).
                syn_proxy: if routed { SynProxy::Off } else { s.syn_proxy() },
                syn_proxy_half_open: s.syn_proxy_half_open(),
                vip: s.vip,
                port: s.port,
                protocol: match s.protocol {
                    Protocol::Tcp => IpProtocol::Tcp,
                    Protocol::Udp => IpProtocol::Udp,
                },
                mode: s.mode,
            });
        }
        let selector = icmp_selector(&services, &inspecting);
        Ok(Tables {
            epoch,
            digest: 0,
            vips: cfg.cluster.vips.clone(),
            cluster_mac: EthernetAddress(cfg.cluster.mac.0),
            own_id: me.id,
            own_addr: me.address,
            own_mac: EthernetAddress(me.mac.0),
            services,
            selector,
            members,
            roles,
            mtu: cfg.dataplane.mtu,
            routed,
        })
    }

    /// These tables with member `id` out of the membership (not alive), the
    /// selectors rebuilt: what the other members decided with while it was
    /// away. Routed mode gives a member that joins these as its previous
    /// tables (`Pipeline::set_tables_joining`).
    #[must_use]
    pub fn without_member(&self, id: u16) -> Tables {
        let members: Vec<MemberEntry> = self
            .members
            .iter()
            .map(|m| MemberEntry {
                alive: m.alive && m.id != id,
                ..m.clone()
            })
            .collect();
        let inspecting = inspecting(&members, &self.roles);
        let services = self
            .services
            .iter()
            .map(|s| ServiceEntry {
                selector: build_selector(&s.selection, &inspecting),
                target: Arc::new(Salted(build_selector(&s.selection, &members))),
                ..s.clone()
            })
            .collect::<Vec<_>>();
        let selector = icmp_selector(&services, &inspecting);
        Tables {
            epoch: self.epoch,
            digest: self.digest,
            vips: self.vips.clone(),
            cluster_mac: self.cluster_mac,
            own_id: self.own_id,
            own_addr: self.own_addr,
            own_mac: self.own_mac,
            services,
            selector,
            members,
            roles: self.roles.clone(),
            mtu: self.mtu,
            routed: self.routed,
        }
    }

    /// Whether member `id` may serve requests (its role is not
    /// `front-end`).
    pub fn serves(&self, id: u16) -> bool {
        self.roles
            .iter()
            .find(|&&(r, _)| r == id)
            .is_none_or(|&(_, role)| role.serves())
    }

    /// Routed mode: the member that serves `client`'s connection to service
    /// `index` under these tables, the same on every member: `local` by the
    /// service's inspector selection, stateless `dpr-ipip` by its target
    /// hash. `None` when no member takes connections.
    #[inline]
    pub fn routed_target(&self, index: usize, client: ClientKey) -> Option<u16> {
        let s = self.services.get(index)?;
        match s.mode {
            Mode::DprIpip | Mode::DprMac => s.target.select(client),
            Mode::Local | Mode::Splice => s.selector.select(client),
        }
    }

    /// The member whose own address is `addr`.
    #[inline]
    pub fn member_by_addr(&self, addr: Ipv4Addr) -> Option<&MemberEntry> {
        self.members.iter().find(|m| m.addr == addr)
    }

    /// True if `addr` is one of the VIPs.
    #[inline]
    pub fn is_vip(&self, addr: Ipv4Addr) -> bool {
        self.vips.contains(&addr)
    }

    /// The member with id `id`.
    #[inline]
    pub fn member(&self, id: u16) -> Option<&MemberEntry> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The index in `services` of the service at (vip, port, protocol).
    #[inline]
    pub fn service_index(&self, vip: Ipv4Addr, port: u16, protocol: IpProtocol) -> Option<usize> {
        self.services
            .iter()
            .position(|s| s.port == port && s.vip == vip && s.protocol == protocol)
    }

    /// The service at (vip, port, protocol), if configured.
    #[inline]
    pub fn service(&self, vip: Ipv4Addr, port: u16, protocol: IpProtocol) -> Option<&ServiceEntry> {
        self.services
            .iter()
            .find(|s| s.port == port && s.vip == vip && s.protocol == protocol)
    }
}

/// `members` as inspector selection sees them: a member whose role does
/// not inspect (`back-end`) has weight 0 there.
fn inspecting(members: &[MemberEntry], roles: &[(u16, MemberRole)]) -> Vec<MemberEntry> {
    members
        .iter()
        .map(|m| {
            let role = roles
                .iter()
                .find(|&&(r, _)| r == m.id)
                .map_or(MemberRole::Both, |&(_, role)| role);
            MemberEntry {
                weight: if role.inspects() { m.weight } else { 0 },
                ..m.clone()
            }
        })
        .collect()
}

/// The selector for VIP traffic outside any service: ICMP to a VIP follows
/// the first service's inspector selection, so a ping is answered by
/// exactly one member.
fn icmp_selector(services: &[ServiceEntry], inspecting: &[MemberEntry]) -> Arc<dyn Selector> {
    match services.first() {
        Some(first) => Arc::clone(&first.selector),
        None => build_selector(&shoal_config::Selection::default(), inspecting),
    }
}

/// The selector a service's `[selection]` asks for, over `members` (the
/// same builder control's `/ring` and `shoalctl ring-stats` use).
fn build_selector(
    selection: &shoal_config::Selection,
    members: &[MemberEntry],
) -> Arc<dyn Selector> {
    let members: Vec<Member> = members
        .iter()
        .map(|m| Member {
            id: m.id,
            addr: m.addr,
            weight: m.effective_weight(),
        })
        .collect();
    shoal_select::build(selection.algorithm, &members, &Params::from(selection))
}

/// A selector asked with a transformed key: an independent consistent hash
/// over the same members (the stateless DPR target, unrelated to who is the
/// inspector of the connection).
#[derive(Debug)]
struct Salted(Arc<dyn Selector>);

impl Selector for Salted {
    fn select(&self, key: ClientKey) -> Option<u16> {
        let salted = u32::from(key.addr) ^ 0x5bd1_e995;
        self.0.select(ClientKey {
            addr: Ipv4Addr::from(salted),
            port: key.port.rotate_left(7),
        })
    }
}
