//! Every server's dataplane/control config as a typed [`shoal_config::Config`]:
//! the lab's base (or a base file loaded through `shoal_config`), then the
//! per-server keys set in code, validated, serialized and checked to load
//! back to the same value. The lab cannot write a config the loader rejects.
//!
//! The keys the lab sets per server (whatever the base says):
//! `cluster.{vips, mac, local_member, key_file, members}`,
//! every service's `vip`, `mode`, `state` and (splice) `dispatch.handoff`,
//! `dataplane.{backend, cores, eal_args, ports}`,
//! `control.{shm_path, metrics_listen, admin_token_file, networks}`,
//! `control.load.{app_pid_files, app_cpus, weights.host_cpu}` (the
//! server's nginx, one worker, and no host CPU figure: see
//! [`server_config`]).
//! Everything else (timeouts, selection, flow table, ...) comes from the base.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use shoal_config::{
    Algorithm, Backend, BgpSettings, Cluster, Config, ConfigError, Control, Dataplane, Dispatch,
    DispatchPolicy, FlowTable, LoadChoice, Member, MemberRole, Mode, Network, Port, PortRole,
    Protocol, Selection, Service, Topology,
};

use crate::options::{LabBackend, LabTopology, UpOptions};
use crate::topology::{paths, Server, CLUSTER_MAC, TAP, VIP};

/// Why a config could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The `--config` base file does not load (it names file, line and key).
    #[error("--config base: {0}")]
    Base(#[source] ConfigError),
    /// The base has no service to put on the lab's VIP.
    #[error("--config base {}: it has no [[services]]; the lab needs one (it serves http on {VIP}:80)", .0.display())]
    NoService(PathBuf),
    /// The config the lab built breaks a rule of the schema (e.g. a base
    /// setting that does not fit the lab's members).
    #[error("the config of {server} does not validate:\n{problems}")]
    Invalid {
        /// The server.
        server: Server,
        /// Every problem, one per line.
        problems: String,
    },
    /// Serializing or loading back failed, or loaded back differently: a
    /// bug in the schema's serde attributes.
    #[error("the config of {server} does not round-trip through TOML: {reason}")]
    RoundTrip {
        /// The server.
        server: Server,
        /// What went wrong.
        reason: String,
    },
}

/// The lab's base config: everything that is the same on every server.
/// The per-server keys ([module docs](self)) are placeholders here.
pub fn lab_base() -> Config {
    Config {
        cluster: Cluster {
            name: "shoal-lab".to_owned(),
            vips: vec![VIP],
            mac: CLUSTER_MAC,
            local_member: String::new(),
            key_file: None,
            members: Vec::new(),
        },
        services: vec![Service {
            name: "http".to_owned(),
            vip: VIP,
            port: 80,
            protocol: Protocol::Tcp,
            mode: Mode::Local,
            state: shoal_config::State::Stateful,
            selection: Selection {
                algorithm: Algorithm::Ring,
                vnodes: 64,
                // DPR stateful: a member above this load passes new connections on.
                max_load: Some(0.5),
                load_choice: LoadChoice::LeastLoaded,
                ..Selection::default()
            },
            dispatch: None,
            // `auto` with the default threshold (perf/synflood/run.sh
            // passes a base config that says "off" or "on").
            syn_proxy: None,
            syn_proxy_half_open: None,
        }],
        dataplane: Dataplane {
            hugepages: false,
            memory_mb: 256,
            flow_table: FlowTable {
                capacity: 65_536,
                ..FlowTable::default()
            },
            ..Dataplane::default()
        },
        control: Control {
            // Announcements every 100 ms; a member silent for 1 s is removed.
            interval_ms: 100,
            failure_timeout_ms: 1000,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9465)),
            ..Control::default()
        },
    }
}

/// Loads a `--config` base file through `shoal_config` (validated as it is).
pub fn load_base(path: &Path) -> Result<Config, RenderError> {
    let base = shoal_config::load_file(path).map_err(RenderError::Base)?;
    if base.services.is_empty() {
        return Err(RenderError::NoService(path.to_owned()));
    }
    Ok(base)
}

/// `server`'s config in a lab of `opts.nodes` servers: `base` with the
/// per-server keys set. `cpus` is the number of CPUs (the worker core is
/// K mod cpus). Not yet validated: [`render`] does that.
pub fn server_config(base: &Config, opts: &UpOptions, server: Server, cpus: u32) -> Config {
    let mut cfg = base.clone();
    let servers: Vec<Server> = Server::all(opts.nodes).collect();

    cfg.cluster.vips = vec![VIP];
    cfg.cluster.mac = CLUSTER_MAC;
    cfg.cluster.local_member = server.name();
    cfg.cluster.key_file = Some(paths::cluster_key());
    cfg.cluster.members = servers
        .iter()
        .map(|s| Member {
            id: u16::from(s.index()),
            name: s.name(),
            address: s.addr(),
            mac: s.mac(),
            weight: 100,
            role: match opts.front_ends {
                0 => MemberRole::Both,
                n if s.index() <= n => MemberRole::FrontEnd,
                _ => MemberRole::BackEnd,
            },
        })
        .collect();

    for service in &mut cfg.services {
        service.vip = VIP;
        service.mode = opts.mode;
        service.state = opts.state;
        service.dispatch = if opts.mode == Mode::Splice {
            // Spread every path by its full URL (hot_paths = "/"): the lab's
            // documents all sit under / and /files/.
            let mut dispatch = service.dispatch.clone().unwrap_or_else(|| Dispatch {
                policy: DispatchPolicy::UrlHash,
                hot_paths: vec!["/".to_owned()],
                ..Dispatch::default()
            });
            dispatch.handoff = opts.handoff;
            if opts.first_request_only {
                dispatch.per_request = false;
            }
            Some(dispatch)
        } else {
            None
        };
    }

    let dp = &mut cfg.dataplane;
    // Worker w of server i on CPU (i + w) mod cpus: the servers' first
    // workers spread over the CPUs (each server's cores are distinct while
    // workers <= cpus).
    let cpus = cpus.max(1);
    dp.cores = (0..u32::from(opts.workers.max(1)))
        .map(|w| (u32::from(server.index()) + w) % cpus)
        .collect();
    let (wire, kernel) = match opts.backend {
        LabBackend::Dpdk => {
            dp.backend = Backend::Dpdk;
            // --no-pci: the lab uses vdevs only and never probes the host NIC;
            // a file prefix per server: two dataplanes never share a runtime dir.
            dp.eal_args = vec![
                "--no-pci".to_owned(),
                "--file-prefix".to_owned(),
                server.dpdk_prefix(),
            ];
            (
                // framecnt: a deeper AF_PACKET ring (default 512) rides out
                // bursts while the server shares few cores with the others.
                // qpairs: one queue pair per worker (the kernel's fanout
                // spreads frames over them; workers steer the rest).
                if opts.workers > 1 {
                    format!(
                        "net_af_packet0,iface=eth0,framecnt=4096,qpairs={}",
                        opts.workers
                    )
                } else {
                    "net_af_packet0,iface=eth0,framecnt=4096".to_owned()
                },
                // mac=: net_tap gives the kernel interface the PMD's MAC when
                // it creates it and again when the port starts; make that the
                // server's own MAC.
                format!("net_tap0,iface={TAP},mac={}", server.mac()),
            )
        }
        // `none` runs no dataplane: rendered for reference only.
        LabBackend::Portable | LabBackend::None => {
            dp.backend = Backend::Portable;
            // The schema refuses EAL arguments for other backends.
            dp.eal_args = Vec::new();
            ("eth0".to_owned(), TAP.to_owned())
        }
    };
    dp.ports = vec![
        Port {
            name: "wire0".to_owned(),
            role: PortRole::Wire,
            device: wire,
        },
        Port {
            name: "kernel0".to_owned(),
            role: PortRole::Kernel,
            device: kernel,
        },
    ];

    let control = &mut cfg.control;
    control.shm_path = server.dir().join("shoal.shm");
    control.metrics_listen = SocketAddr::from((server.addr(), 9464));
    control.admin_token_file = Some(paths::admin_token());
    let mut peers: Vec<SocketAddr> = servers
        .iter()
        .filter(|s| **s != server)
        .map(|s| s.control_addr())
        .collect();
    if peers.is_empty() {
        // A single server has no peer; it lists itself so the network stays valid.
        peers.push(server.control_addr());
    }
    control.networks = vec![Network {
        name: "lab".to_owned(),
        bind: server.control_addr(),
        multicast: None,
        peers,
    }];
    // The load counts this server's nginx (its pid file, written by
    // www.rs's config; one worker process, so one CPU) but not the host's
    // CPU: every server's namespace shares the one host, whose CPU says the
    // same for all of them and cannot tell a loaded server from an idle one.
    control.load.app_pid_files = vec![server.dir().join("nginx.pid")];
    control.load.app_cpus = Some(1);
    control.load.weights.host_cpu = 0.0;
    if opts.topology == LabTopology::Routed {
        // A router in front (bird.rs): the VIP reaches each server by ECMP,
        // announced by the server's BIRD while its control enables it.
        control.bgp = Some(BgpSettings {
            socket: crate::bird::socket(&server.dir()),
            health_url: format!("http://{}:80/whoami", server.addr()),
            health_interval_ms: 200,
            health_timeout_ms: 200,
            ..BgpSettings::default()
        });
        cfg.dataplane.topology = Topology::Routed;
    }
    cfg
}

/// The TOML text of `cfg` for `server`: validated by `shoal_config`, then
/// serialized, then loaded back through `shoal_config::load_str` as the
/// dataplane will load it and compared with `cfg`.
pub fn render(cfg: &Config, server: Server) -> Result<String, RenderError> {
    cfg.validate().map_err(|problems| RenderError::Invalid {
        server,
        problems: problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    })?;
    let body = toml::to_string(cfg).map_err(|e| RenderError::RoundTrip {
        server,
        reason: e.to_string(),
    })?;
    let text = format!(
        "# Generated by shoal-lab (lab/src/render.rs) for {server}; `lab dataplane-config {server}` prints it.\n\n{body}"
    );
    let origin = server.dir().join("dataplane.toml");
    let back = shoal_config::load_str(&text, &origin).map_err(|e| RenderError::RoundTrip {
        server,
        reason: e.to_string(),
    })?;
    if back != *cfg {
        return Err(RenderError::RoundTrip {
            server,
            reason: format!("loaded back as {back:?}, written {cfg:?}"),
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_config::{HandoffMode, State};

    fn opts(backend: LabBackend, mode: Mode, state: State, handoff: HandoffMode) -> UpOptions {
        UpOptions {
            nodes: 3,
            backend,
            mode,
            state,
            handoff,
            workers: crate::options::default_workers(backend),
            ..UpOptions::default()
        }
    }

    /// Renders srv2 of a three-server lab, loads the text back and checks the
    /// per-server values.
    fn check(o: &UpOptions) -> Config {
        let s2 = Server::new(2).unwrap();
        let cfg = server_config(&lab_base(), o, s2, 2);
        let text = render(&cfg, s2).unwrap_or_else(|e| panic!("{o:?}: {e}"));
        let back =
            shoal_config::load_str(&text, Path::new("/run/shoal-lab/srv2/dataplane.toml")).unwrap();
        assert_eq!(back, cfg);
        assert!(text.contains("local_member = \"srv2\""), "{text}");
        assert_eq!(back.cluster.local_member, "srv2");
        assert_eq!(back.cluster.vips, vec![VIP]);
        assert_eq!(back.cluster.mac.to_string(), "02:00:c6:12:00:64");
        let members: Vec<(u16, String, String, String)> = back
            .cluster
            .members
            .iter()
            .map(|m| {
                (
                    m.id,
                    m.name.clone(),
                    m.address.to_string(),
                    m.mac.to_string(),
                )
            })
            .collect();
        assert_eq!(
            members,
            [
                (1, "srv1", "198.18.0.11", "02:00:c6:12:00:0b"),
                (2, "srv2", "198.18.0.12", "02:00:c6:12:00:0c"),
                (3, "srv3", "198.18.0.13", "02:00:c6:12:00:0d"),
            ]
            .map(|(i, n, a, m)| (i, n.to_owned(), a.to_owned(), m.to_owned()))
        );
        assert!(back.cluster.members.iter().all(|m| m.weight == 100));
        assert_eq!(
            back.cluster.key_file.as_deref(),
            Some(Path::new("/run/shoal-lab/cluster.key"))
        );
        let svc = &back.services[0];
        assert_eq!(
            (svc.vip.to_string().as_str(), svc.port),
            ("198.18.0.100", 80)
        );
        assert_eq!((svc.mode, svc.state), (o.mode, o.state));
        assert_eq!(svc.selection.algorithm, Algorithm::Ring);
        assert_eq!(svc.selection.max_load, Some(0.5));
        // dpdk: two workers, srv2's on CPUs 2 mod 2 and 3 mod 2.
        let cores = if o.backend == LabBackend::Dpdk {
            vec![0, 1]
        } else {
            vec![0]
        };
        assert_eq!(back.dataplane.cores, cores);
        assert_eq!(back.dataplane.flow_table.capacity, 65_536);
        assert!(!back.dataplane.hugepages);
        let c = &back.control;
        assert_eq!(c.shm_path, Path::new("/run/shoal-lab/srv2/shoal.shm"));
        assert_eq!(c.metrics_listen.to_string(), "198.18.0.12:9464");
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:9465");
        assert_eq!(
            c.admin_token_file.as_deref(),
            Some(Path::new("/run/shoal-lab/admin.token"))
        );
        assert_eq!(
            c.load.app_pid_files,
            [Path::new("/run/shoal-lab/srv2/nginx.pid")]
        );
        assert_eq!(c.load.app_cpus, Some(1));
        assert_eq!(
            c.load.weights,
            shoal_config::LoadWeights {
                host_cpu: 0.0,
                ..shoal_config::LoadWeights::default()
            }
        );
        assert_eq!(c.networks.len(), 1);
        assert_eq!(c.networks[0].bind.to_string(), "198.18.0.12:7946");
        let peers: Vec<String> = c.networks[0]
            .peers
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(peers, ["198.18.0.11:7946", "198.18.0.13:7946"]);
        back
    }

    #[test]
    fn every_mode_renders_a_valid_config_with_the_servers_values() {
        for (mode, state) in [
            (Mode::Local, State::Stateful),
            (Mode::DprMac, State::Stateless),
            (Mode::DprMac, State::Stateful),
            (Mode::DprIpip, State::Stateless),
            (Mode::DprIpip, State::Stateful),
        ] {
            let cfg = check(&opts(LabBackend::Dpdk, mode, state, HandoffMode::Frequent));
            assert_eq!(cfg.services[0].dispatch, None, "{mode:?}");
        }
        for handoff in [HandoffMode::Frequent, HandoffMode::Rare] {
            let cfg = check(&opts(
                LabBackend::Dpdk,
                Mode::Splice,
                State::Stateful,
                handoff,
            ));
            let d = cfg.services[0].dispatch.as_ref().unwrap();
            assert_eq!(d.policy, DispatchPolicy::UrlHash);
            assert_eq!(d.hot_paths, ["/"]);
            assert_eq!(d.handoff, handoff);
        }
    }

    #[test]
    fn backends_name_their_devices() {
        let o = opts(
            LabBackend::Dpdk,
            Mode::Local,
            State::Stateful,
            HandoffMode::Frequent,
        );
        let cfg = check(&o);
        assert_eq!(cfg.dataplane.backend, Backend::Dpdk);
        assert_eq!(
            cfg.dataplane.eal_args,
            ["--no-pci", "--file-prefix", "shoal-lab-srv2"]
        );
        let devices: Vec<&str> = cfg
            .dataplane
            .ports
            .iter()
            .map(|p| p.device.as_str())
            .collect();
        assert_eq!(
            devices,
            [
                "net_af_packet0,iface=eth0,framecnt=4096,qpairs=2",
                "net_tap0,iface=shoal0,mac=02:00:c6:12:00:0c"
            ]
        );
        let text = render(&cfg, Server::new(2).unwrap()).unwrap();
        assert!(
            text.contains(r#"eal_args = ["--no-pci", "--file-prefix", "shoal-lab-srv2"]"#),
            "{text}"
        );
        assert!(
            text.contains(r#"device = "net_tap0,iface=shoal0,mac=02:00:c6:12:00:0c""#),
            "{text}"
        );
        assert_eq!(text.matches("[[cluster.members]]").count(), 3, "{text}");

        for backend in [LabBackend::Portable, LabBackend::None] {
            let cfg = check(&opts(
                backend,
                Mode::Local,
                State::Stateful,
                HandoffMode::Frequent,
            ));
            assert_eq!(cfg.dataplane.backend, Backend::Portable);
            assert!(cfg.dataplane.eal_args.is_empty());
            let devices: Vec<&str> = cfg
                .dataplane
                .ports
                .iter()
                .map(|p| p.device.as_str())
                .collect();
            assert_eq!(devices, ["eth0", "shoal0"]);
        }
    }

    #[test]
    fn a_single_server_lists_itself_as_peer() {
        let o = UpOptions {
            nodes: 1,
            ..UpOptions::default()
        };
        let s1 = Server::new(1).unwrap();
        let cfg = server_config(&lab_base(), &o, s1, 4);
        render(&cfg, s1).unwrap();
        assert_eq!(cfg.control.networks[0].peers, [s1.control_addr()]);
        assert_eq!(cfg.dataplane.cores, [1, 2]);
        let one = UpOptions { workers: 1, ..o };
        assert_eq!(server_config(&lab_base(), &one, s1, 4).dataplane.cores, [1]);
        let portable = UpOptions {
            backend: LabBackend::Portable,
            ..UpOptions::default()
        };
        assert_eq!(
            portable.check().unwrap_err(),
            "--workers must be 1 with --backend portable and at least 1 with dpdk (got 2)"
        );
    }

    #[test]
    fn a_base_file_keeps_its_settings_and_gets_the_servers_keys() {
        let dir = std::env::temp_dir().join(format!("shoal-lab-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s2 = Server::new(2).unwrap();
        let mut base = server_config(
            &lab_base(),
            &UpOptions::default(),
            Server::new(1).unwrap(),
            2,
        );
        base.dataplane.flow_table.capacity = 4096;
        base.control.failure_timeout_ms = 2000;
        let path = dir.join("base.toml");
        std::fs::write(&path, render(&base, Server::new(1).unwrap()).unwrap()).unwrap();
        let loaded = load_base(&path).unwrap();
        let o = opts(
            LabBackend::Portable,
            Mode::Splice,
            State::Stateful,
            HandoffMode::Rare,
        );
        let cfg = server_config(&loaded, &o, s2, 2);
        render(&cfg, s2).unwrap();
        assert_eq!(cfg.dataplane.flow_table.capacity, 4096);
        assert_eq!(cfg.control.failure_timeout_ms, 2000);
        assert_eq!(cfg.cluster.local_member, "srv2");
        assert_eq!(cfg.dataplane.ports[1].device, "shoal0");
        assert_eq!(
            cfg.services[0].dispatch.as_ref().unwrap().handoff,
            HandoffMode::Rare
        );

        std::fs::write(&path, "[cluster]\nvips = []\n").unwrap();
        let err = load_base(&path).unwrap_err().to_string();
        assert!(err.contains("base.toml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_config_that_breaks_a_rule_is_refused() {
        let s1 = Server::new(1).unwrap();
        let mut cfg = server_config(&lab_base(), &UpOptions::default(), s1, 2);
        cfg.services[0].selection.vnodes = 0;
        let err = render(&cfg, s1).unwrap_err().to_string();
        assert!(err.contains("services[0].selection.vnodes"), "{err}");
    }
}
