//! The immutable tables a worker decides with: addresses, services and the
//! inspector selector of one membership epoch. Built off the packet path from
//! a [`Config`] and swapped in whole at a burst boundary.

use core::net::Ipv4Addr;
use std::sync::Arc;

use shoal_config::{Algorithm, Config, Member, Mode, Protocol};

use crate::select::{Candidate, Rendezvous, Ring, RingMember, Selector};
use crate::wire::{EthernetAddress, IpProtocol};

/// A service as the pipeline matches it.
#[derive(Debug, Clone)]
pub struct ServiceEntry {
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
}

/// Why tables could not be built from a config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TablesError {
    /// `cluster.local_member` names no member (`validate()` normally catches this).
    #[error("cluster.local_member '{0}' is not one of cluster.members")]
    UnknownLocalMember(String),
    /// A service uses a mode this build does not implement yet.
    #[error(
        "services '{service}': mode {mode} is not implemented in this build (only \"local\" is)"
    )]
    UnsupportedMode {
        /// Service name.
        service: String,
        /// The mode as written in the config.
        mode: &'static str,
    },
    /// A service uses a selection algorithm this build does not implement yet.
    #[error(
        "services '{service}': selection.algorithm {algorithm} is not implemented in this build \
         (\"ring\" and \"rendezvous\" are)"
    )]
    UnsupportedAlgorithm {
        /// Service name.
        service: String,
        /// The algorithm as written in the config.
        algorithm: &'static str,
    },
}

/// Everything a worker needs to classify and place packets, for one epoch.
#[derive(Debug)]
pub struct Tables {
    /// Membership epoch these tables belong to.
    pub epoch: u64,
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
}

impl Tables {
    /// Builds epoch `epoch`'s tables from a validated config.
    pub fn from_config(cfg: &Config, epoch: u64) -> Result<Tables, TablesError> {
        let me = cfg
            .cluster
            .members
            .iter()
            .find(|m| m.name == cfg.cluster.local_member)
            .ok_or_else(|| TablesError::UnknownLocalMember(cfg.cluster.local_member.clone()))?;
        let mut services = Vec::with_capacity(cfg.services.len());
        for s in &cfg.services {
            if s.mode != Mode::Local {
                return Err(TablesError::UnsupportedMode {
                    service: s.name.clone(),
                    mode: mode_name(s.mode),
                });
            }
            if s.selection.algorithm == Algorithm::Maglev {
                return Err(TablesError::UnsupportedAlgorithm {
                    service: s.name.clone(),
                    algorithm: "maglev",
                });
            }
            services.push(ServiceEntry {
                selector: build_selector(&s.selection, &cfg.cluster.members),
                vip: s.vip,
                port: s.port,
                protocol: match s.protocol {
                    Protocol::Tcp => IpProtocol::Tcp,
                    Protocol::Udp => IpProtocol::Udp,
                },
                mode: s.mode,
            });
        }
        // ICMP to a VIP has no service; it follows the first service's
        // selector so a ping is answered by exactly one member.
        let selector = match services.first() {
            Some(first) => Arc::clone(&first.selector),
            None => build_selector(&shoal_config::Selection::default(), &cfg.cluster.members),
        };
        Ok(Tables {
            epoch,
            vips: cfg.cluster.vips.clone(),
            cluster_mac: EthernetAddress(cfg.cluster.mac.0),
            own_id: me.id,
            own_addr: me.address,
            own_mac: EthernetAddress(me.mac.0),
            services,
            selector,
        })
    }

    /// True if `addr` is one of the VIPs.
    #[inline]
    pub fn is_vip(&self, addr: Ipv4Addr) -> bool {
        self.vips.contains(&addr)
    }

    /// The service at (vip, port, protocol), if configured.
    #[inline]
    pub fn service(&self, vip: Ipv4Addr, port: u16, protocol: IpProtocol) -> Option<&ServiceEntry> {
        self.services
            .iter()
            .find(|s| s.port == port && s.vip == vip && s.protocol == protocol)
    }
}

/// The selector a service's `[selection]` asks for, over `members`.
fn build_selector(selection: &shoal_config::Selection, members: &[Member]) -> Arc<dyn Selector> {
    match selection.algorithm {
        Algorithm::Ring => Arc::new(Ring::new(
            &members
                .iter()
                .map(|m| RingMember {
                    id: m.id,
                    addr: m.address,
                    weight: m.weight,
                })
                .collect::<Vec<_>>(),
            selection.vnodes,
        )),
        // Maglev is refused by from_config until it exists.
        Algorithm::Rendezvous | Algorithm::Maglev => Arc::new(Rendezvous::new(
            &members
                .iter()
                .map(|m| Candidate {
                    id: m.id,
                    weight: m.weight,
                })
                .collect::<Vec<_>>(),
        )),
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Local => "local",
        Mode::DprMac => "dpr-mac",
        Mode::DprIpip => "dpr-ipip",
        Mode::Splice => "splice",
    }
}
