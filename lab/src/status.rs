//! `lab status [--json]`: what runs where, read from the run directory, the
//! namespaces and `/proc`; never changes anything.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::PathBuf;

use serde::Serialize;

use crate::bird;
use crate::lab::{client_addr, LabState};
use crate::netns::{self, Link};
use crate::options::kebab;
use crate::options::LabTopology;
use crate::process;
use crate::topology::{
    paths, Server, CLIENT_ADDR, CLIENT_MAC, CLIENT_NS, CLUSTER_MAC, HUB_NS, ROUTER_NS, RUN_DIR,
    TAP, VIP,
};
use crate::www::{self, FileInfo};

/// A recorded process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proc {
    /// The recorded PID.
    pub pid: Option<u32>,
    /// Alive, and in the server's namespace.
    pub alive: bool,
    /// Its log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
    /// Its config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
}

impl Proc {
    fn read(server: Server, name: &str) -> Proc {
        let pid = process::read_pid(&server.dir().join(format!("{name}.pid")));
        Proc {
            pid,
            alive: pid.is_some_and(|p| process::ours(p, &server.namespace())),
            log: None,
            config: None,
        }
    }
}

impl fmt::Display for Proc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "{pid} {}", if self.alive { "alive" } else { "DEAD" }),
            None => f.write_str("none"),
        }
    }
}

/// One server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    /// `srvK`.
    pub name: String,
    /// `shoal-srvK`.
    pub namespace: String,
    /// The namespace exists.
    pub namespace_up: bool,
    /// Own address.
    pub address: String,
    /// Own MAC.
    pub mac: String,
    /// nginx master.
    pub nginx: Proc,
    /// The wire port (or, backend none, the server's only interface).
    pub eth0: Option<Link>,
    /// `shoal-dataplane` (not for backend none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<Proc>,
    /// `shoal-control` (not for backend none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<Proc>,
    /// The TAP (not for backend none; null when missing).
    #[serde(rename = "shoal0", skip_serializing_if = "Option::is_none")]
    pub tap: Option<Option<Link>>,
    /// Its BIRD (`--topology routed` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bird: Option<Proc>,
    /// Everything above is as it should be.
    pub healthy: bool,
}

/// A namespace that is not a server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NsStatus {
    /// Its name.
    pub namespace: String,
    /// It exists.
    pub namespace_up: bool,
    /// The address there (client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The MAC there (client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The router of `--topology routed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouterStatus {
    /// `shoal-router` exists.
    pub namespace_up: bool,
    /// Its BIRD.
    pub bird: Proc,
    /// Its BGP sessions, one per server: (name, established).
    pub sessions: Vec<(String, bool)>,
    /// The VIP route's next hops in its kernel (ECMP).
    pub vip_next_hops: Vec<String>,
}

/// The whole lab (`lab status --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// A lab is up (its state is recorded).
    pub up: bool,
    /// The run directory.
    pub run_dir: String,
    /// Servers.
    pub nodes_count: u8,
    /// `dpdk`, `portable`, `none`.
    pub backend: Option<String>,
    /// The service mode.
    pub mode: Option<String>,
    /// The `--config` base, if one was given.
    pub config_template: Option<PathBuf>,
    /// When `up` finished (UTC).
    pub started: Option<String>,
    /// The VIP.
    pub vip: String,
    /// The VIP's MAC.
    pub cluster_mac: String,
    /// The client.
    pub client: NsStatus,
    /// The hub.
    pub hub: NsStatus,
    /// `segment` or `routed`.
    pub topology: Option<String>,
    /// The router (`--topology routed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterStatus>,
    /// The lab namespaces that exist.
    pub namespaces: Vec<String>,
    /// The servers.
    pub nodes: Vec<NodeStatus>,
    /// The documents, by name (`1k`, `1m`, `8m`).
    pub files: BTreeMap<String, FileInfo>,
    /// Every server healthy, client and hub present.
    pub healthy: bool,
}

impl Status {
    /// Reads the lab's state as it is now.
    pub fn read() -> Status {
        let state = LabState::read().ok();
        let namespaces = netns::lab_namespaces();
        let has = |ns: &str| namespaces.iter().any(|n| n == ns);
        let (nodes_count, with_dataplane) = state.as_ref().map_or((0, false), |s| {
            (
                s.options.nodes,
                s.options.backend != crate::LabBackend::None,
            )
        });
        let routed = state
            .as_ref()
            .is_some_and(|s| s.options.topology == LabTopology::Routed);
        let nodes: Vec<NodeStatus> = Server::all(nodes_count)
            .map(|server| {
                let ns = server.namespace();
                let present = has(&ns);
                let mut node = NodeStatus {
                    name: server.name(),
                    namespace: ns.clone(),
                    namespace_up: present,
                    address: server.addr().to_string(),
                    mac: server.mac().to_string(),
                    nginx: Proc::read(server, "nginx"),
                    eth0: present.then(|| netns::link(&ns, "eth0")).flatten(),
                    dataplane: None,
                    control: None,
                    tap: None,
                    bird: None,
                    healthy: false,
                };
                if routed {
                    node.bird = Some(Proc::read(server, "bird"));
                }
                if with_dataplane {
                    let mut dp = Proc::read(server, "dataplane");
                    dp.log = Some(server.dir().join("dataplane.log"));
                    dp.config = Some(server.dir().join("dataplane.toml"));
                    let mut control = Proc::read(server, "control");
                    control.log = Some(server.dir().join("control.log"));
                    node.dataplane = Some(dp);
                    node.control = Some(control);
                    node.tap = Some(present.then(|| netns::link(&ns, TAP)).flatten());
                }
                node.healthy = present
                    && node.nginx.alive
                    && node.dataplane.as_ref().is_none_or(|d| d.alive)
                    && node
                        .tap
                        .as_ref()
                        .is_none_or(|t| t.as_ref().is_some_and(|l| l.lower_up))
                    && node.bird.as_ref().is_none_or(|b| b.alive);
                node
            })
            .collect();
        let up = state.is_some();
        let router = routed.then(|| {
            let pid = process::read_pid(&paths::router_dir().join("bird.pid"));
            RouterStatus {
                namespace_up: has(ROUTER_NS),
                bird: Proc {
                    pid,
                    alive: pid.is_some_and(|p| process::ours(p, ROUTER_NS)),
                    log: Some(paths::router_dir().join("bird.log")),
                    config: Some(paths::router_dir().join("bird.conf")),
                },
                sessions: bird::router_sessions(),
                vip_next_hops: bird::vip_next_hops()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            }
        });
        let healthy = up
            && nodes.iter().all(|n| n.healthy)
            && has(CLIENT_NS)
            && has(HUB_NS)
            && router
                .as_ref()
                .is_none_or(|r| r.namespace_up && r.bird.alive);
        Status {
            up,
            run_dir: RUN_DIR.to_owned(),
            nodes_count,
            backend: state.as_ref().map(|s| s.options.backend.to_string()),
            mode: state.as_ref().map(|s| kebab(&s.options.mode)),
            config_template: state.as_ref().and_then(|s| s.options.config.clone()),
            started: state.as_ref().map(|s| s.started.clone()),
            vip: VIP.to_string(),
            cluster_mac: CLUSTER_MAC.to_string(),
            client: NsStatus {
                namespace: CLIENT_NS.to_owned(),
                namespace_up: has(CLIENT_NS),
                address: Some(
                    state
                        .as_ref()
                        .map_or(CLIENT_ADDR, |s| client_addr(&s.options))
                        .to_string(),
                ),
                mac: Some(CLIENT_MAC.to_string()),
            },
            hub: NsStatus {
                namespace: HUB_NS.to_owned(),
                namespace_up: has(HUB_NS),
                address: None,
                mac: None,
            },
            topology: state.as_ref().map(|s| s.options.topology.to_string()),
            router,
            namespaces,
            nodes,
            files: www::file_infos().into_iter().collect(),
            healthy,
        }
    }

    /// The human-readable report of `lab status`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if !self.up {
            out.push_str("lab: down");
            if !self.namespaces.is_empty() {
                let _ = write!(
                    out,
                    " (but namespaces exist: {}; run 'lab down')",
                    self.namespaces.join(" ")
                );
            }
            out.push('\n');
            return out;
        }
        let or = |o: &Option<String>| o.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "lab: {}  nodes={} backend={} mode={} vip={} run={}",
            if self.healthy {
                "healthy"
            } else {
                "NOT HEALTHY"
            },
            self.nodes_count,
            or(&self.backend),
            or(&self.mode),
            self.vip,
            self.run_dir
        );
        let up = |b: bool| if b { "up" } else { "MISSING" };
        let _ = writeln!(
            out,
            "client: {} {}   hub: {}   topology: {}",
            up(self.client.namespace_up),
            self.client.address.as_deref().unwrap_or("?"),
            up(self.hub.namespace_up),
            or(&self.topology)
        );
        if let Some(r) = &self.router {
            let sessions: Vec<String> = r
                .sessions
                .iter()
                .map(|(name, est)| format!("{name} {}", if *est { "Established" } else { "DOWN" }))
                .collect();
            let _ = writeln!(
                out,
                "router: ns={} bird={}  bgp: {}  {VIP} via {}",
                up(r.namespace_up),
                r.bird,
                if sessions.is_empty() {
                    "no sessions".to_owned()
                } else {
                    sessions.join(", ")
                },
                if r.vip_next_hops.is_empty() {
                    "NOTHING (withdrawn everywhere)".to_owned()
                } else {
                    r.vip_next_hops.join(" ")
                }
            );
        }
        for n in &self.nodes {
            let mut parts = vec![
                format!("{:6}", n.name),
                format!("ns={}", up(n.namespace_up)),
                format!("addr={}", n.address),
                format!("nginx={}", n.nginx),
            ];
            if let (Some(dp), Some(tap)) = (&n.dataplane, &n.tap) {
                parts.push(format!("dataplane={dp}"));
                if let Some(b) = &n.bird {
                    parts.push(format!("bird={b}"));
                }
                parts.push(match tap {
                    Some(l) => format!(
                        "{TAP}={}{}",
                        l.state.as_deref().unwrap_or("?"),
                        if l.lower_up { "/LOWER_UP" } else { "" }
                    ),
                    None => format!("{TAP}=MISSING"),
                });
            } else {
                parts.push(format!(
                    "eth0={}",
                    n.eth0
                        .as_ref()
                        .map_or("MISSING", |l| l.state.as_deref().unwrap_or("?"))
                ));
            }
            let _ = writeln!(out, "{}", parts.join("  "));
        }
        for (name, f) in &self.files {
            let _ = writeln!(
                out,
                "file /files/{name}: {} bytes sha256 {}",
                f.size, f.sha256
            );
        }
        out
    }
}
