//! Names and addresses of the lab: namespaces, interfaces, addresses and
//! MACs of the hub, the client and every server, and the run directory.
//!
//! This module owns the numbering plan (everything in 198.18.0.0/15) and
//! nothing else: no I/O, no processes.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use shoal_config::MacAddr;

/// The run directory: configs, logs, PID files, documents, keys.
pub const RUN_DIR: &str = "/run/shoal-lab";
/// The lock `up`, `down`, `kill` and `start` hold (outside the run directory,
/// which `down` removes), so two of them never interleave.
pub const LOCK_FILE: &str = "/run/shoal-lab.lock";
/// DPDK runtime directories live under here (`shoal-lab-srvK`).
pub const DPDK_RUN_DIR: &str = "/var/run/dpdk";
/// The hub namespace (bridge `br0`, learning off: it floods every frame).
pub const HUB_NS: &str = "shoal-hub";
/// The client namespace.
pub const CLIENT_NS: &str = "shoal-client";
/// The router namespace (`--topology routed`): BIRD 2 with ECMP between
/// the hub (`eth0`, [`ROUTER_ADDR`]) and the client's link (`eth1`,
/// [`ROUTER_CLIENT_SIDE`]).
pub const ROUTER_NS: &str = "shoal-router";
/// The router's address on the hub (the servers' BGP peer and gateway).
pub const ROUTER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The router's address on the client's link.
pub const ROUTER_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The client's address behind the router (`--topology routed`).
pub const ROUTED_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// The client's network behind the router.
pub const CLIENT_NET: &str = "198.18.1.0/24";
/// The router's AS number.
pub const ROUTER_ASN: u32 = 65000;
/// The servers' AS number (one for all: the router merges equal paths).
pub const SERVER_ASN: u32 = 65001;
/// The kernel-side TAP the dataplane creates in every server.
pub const TAP: &str = "shoal0";
/// The service VIP.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// The MAC of the VIP (ARP answers carry it).
pub const CLUSTER_MAC: MacAddr = MacAddr([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]);
/// The client's address on the segment.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The client's MAC.
pub const CLIENT_MAC: MacAddr = MacAddr([0x02, 0x00, 0xc6, 0x12, 0x00, 0x02]);
/// UDP port of control's membership announcements.
pub const CONTROL_PORT: u16 = 7946;
/// Most servers: own addresses .11-.99 stay below the VIP (.100).
pub const MAX_NODES: u8 = 89;

/// A namespace of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    /// The hub (`shoal-hub`).
    Hub,
    /// The client (`shoal-client`).
    Client,
    /// The router (`shoal-router`, `--topology routed`).
    Router,
    /// Server K (`shoal-srvK`), K from 1.
    Server(Server),
}

impl Node {
    /// The namespace name (`shoal-srv2`).
    pub fn namespace(self) -> String {
        match self {
            Node::Hub => HUB_NS.to_owned(),
            Node::Client => CLIENT_NS.to_owned(),
            Node::Router => ROUTER_NS.to_owned(),
            Node::Server(s) => s.namespace(),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Hub => f.write_str("hub"),
            Node::Client => f.write_str("client"),
            Node::Router => f.write_str("router"),
            Node::Server(s) => s.fmt(f),
        }
    }
}

impl FromStr for Node {
    type Err = String;

    /// `hub`, `client` or `srvK`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hub" => Ok(Node::Hub),
            "client" => Ok(Node::Client),
            "router" => Ok(Node::Router),
            _ => s
                .parse()
                .map(Node::Server)
                .map_err(|_| format!("NODE must be srvK, client, hub or router (got '{s}')")),
        }
    }
}

/// Server K of the lab (`srvK`, K in 1..=89).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Server(u8);

impl Server {
    /// Server `k`, if `k` is in 1..=[`MAX_NODES`].
    pub fn new(k: u8) -> Option<Server> {
        (1..=MAX_NODES).contains(&k).then_some(Server(k))
    }

    /// The first `n` servers, srv1..srvN.
    pub fn all(n: u8) -> impl Iterator<Item = Server> {
        (1..=n.min(MAX_NODES)).map(Server)
    }

    /// K (also the member id).
    pub fn index(self) -> u8 {
        self.0
    }

    /// `srvK`: the member name, the directory in the run directory.
    pub fn name(self) -> String {
        format!("srv{}", self.0)
    }

    /// `shoal-srvK`.
    pub fn namespace(self) -> String {
        format!("shoal-srv{}", self.0)
    }

    /// The server's own address, 198.18.0.(10+K).
    pub fn addr(self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, 10 + self.0)
    }

    /// The server's own MAC (on `shoal0`, and the member's MAC in the config),
    /// 02:00:c6:12:00:(0a+K).
    pub fn mac(self) -> MacAddr {
        MacAddr([0x02, 0x00, 0xc6, 0x12, 0x00, 10 + self.0])
    }

    /// The MAC of the server's `eth0` (the dataplane's wire port), not the
    /// server's: frames to the server's MAC are "other host" frames for the
    /// kernel there, so it sees own-address traffic once, via the TAP.
    pub fn wire_mac(self) -> MacAddr {
        MacAddr([0x02, 0x00, 0xc6, 0x12, 0x01, 10 + self.0])
    }

    /// Control's announcement address.
    pub fn control_addr(self) -> SocketAddr {
        SocketAddr::from((self.addr(), CONTROL_PORT))
    }

    /// The server's directory in the run directory.
    pub fn dir(self) -> PathBuf {
        Path::new(RUN_DIR).join(self.name())
    }

    /// Its DPDK runtime directory (`--file-prefix`).
    pub fn dpdk_prefix(self) -> String {
        format!("shoal-lab-{}", self.name())
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "srv{}", self.0)
    }
}

impl FromStr for Server {
    type Err = String;

    /// `srvK`, K in 1..=89.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix("srv")
            .filter(|k| !k.is_empty() && k.len() <= 3 && k.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|k| k.parse::<u8>().ok())
            .and_then(Server::new)
            .ok_or_else(|| format!("NODE must be srvK with K from 1 to {MAX_NODES} (got '{s}')"))
    }
}

/// Whether `name` is a lab namespace: `shoal-hub`, `shoal-client`,
/// `shoal-router` or `shoal-srv<digits>` (no other `shoal-*` namespace is
/// ever touched).
pub fn is_lab_namespace(name: &str) -> bool {
    name == HUB_NS
        || name == CLIENT_NS
        || name == ROUTER_NS
        || name
            .strip_prefix("shoal-srv")
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

/// Paths in the run directory shared by every server.
pub mod paths {
    use std::path::{Path, PathBuf};

    use super::RUN_DIR;

    /// The cluster key (HMAC of control and handoff messages).
    pub fn cluster_key() -> PathBuf {
        Path::new(RUN_DIR).join("cluster.key")
    }
    /// The admin token of control's admin API.
    pub fn admin_token() -> PathBuf {
        Path::new(RUN_DIR).join("admin.token")
    }
    /// Operator overrides (drain, weight, load) every dataplane re-reads on SIGHUP.
    pub fn membership() -> PathBuf {
        Path::new(RUN_DIR).join("membership.json")
    }
    /// The parameters of the running lab.
    pub fn state() -> PathBuf {
        Path::new(RUN_DIR).join("lab.json")
    }
    /// The router's directory (BIRD's config, socket, log, PID).
    pub fn router_dir() -> PathBuf {
        Path::new(RUN_DIR).join("router")
    }
    /// The document tree nginx serves.
    pub fn www() -> PathBuf {
        Path::new(RUN_DIR).join("www")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_plan() {
        let s = Server::new(2).unwrap();
        assert_eq!(s.addr(), Ipv4Addr::new(198, 18, 0, 12));
        assert_eq!(s.mac().to_string(), "02:00:c6:12:00:0c");
        assert_eq!(s.wire_mac().to_string(), "02:00:c6:12:01:0c");
        assert_eq!(s.namespace(), "shoal-srv2");
        assert_eq!(s.dir(), Path::new("/run/shoal-lab/srv2"));
        assert_eq!(
            Server::new(89).unwrap().addr(),
            Ipv4Addr::new(198, 18, 0, 99)
        );
        assert_eq!(Server::new(0), None);
        assert_eq!(Server::new(90), None);
    }

    #[test]
    fn node_names() {
        assert_eq!("srv7".parse::<Node>(), Ok(Node::Server(Server(7))));
        assert_eq!("client".parse::<Node>(), Ok(Node::Client));
        assert_eq!("hub".parse::<Node>(), Ok(Node::Hub));
        for bad in [
            "srv",
            "srv0",
            "srv90",
            "srv-1",
            "srv1x",
            "server1",
            "shoal-srv1",
        ] {
            assert!(bad.parse::<Node>().is_err(), "{bad}");
        }
        assert!(is_lab_namespace("shoal-srv12"));
        assert!(is_lab_namespace("shoal-hub"));
        assert!(is_lab_namespace("shoal-router"));
        assert_eq!("router".parse::<Node>(), Ok(Node::Router));
        assert!(!is_lab_namespace("shoal-srv"));
        assert!(!is_lab_namespace("shoal-other"));
    }
}
