//! Every file in deploy/examples loads and validates, and says what its
//! comments promise.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use shoal_config::{
    load_file, Algorithm, Backend, BadRequestAction, Config, DispatchPolicy, HandoffMode,
    LoadChoice, MacAddr, Mode, PortRole, Protocol, State,
};

const EXAMPLES: [&str; 7] = [
    "always.toml",
    "dpr-ipip.toml",
    "lab-srv1.toml",
    "production.toml",
    "replay.toml",
    "routed.toml",
    "splice.toml",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples")
}

fn example(name: &str) -> Config {
    let path = dir().join(name);
    load_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn mac(text: &str) -> MacAddr {
    text.parse().expect("valid MAC")
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("valid socket address")
}

#[test]
fn every_example_is_tested() {
    let mut found: Vec<String> = std::fs::read_dir(dir())
        .expect("deploy/examples exists")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .map(|path| {
            path.file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    found.sort();
    assert_eq!(found, EXAMPLES);
    for name in EXAMPLES {
        example(name);
    }
}

/// The lab cluster (`deploy/lab/README.md`), shared by lab-srv1, splice and replay.
fn assert_lab_cluster(config: &Config) {
    let cluster = &config.cluster;
    assert_eq!(cluster.vips, [Ipv4Addr::new(198, 18, 0, 100)]);
    assert_eq!(cluster.mac, mac("02:00:c6:12:00:64"));
    assert_eq!(cluster.local_member, "srv1");
    let members: Vec<(u16, &str, Ipv4Addr, MacAddr, u32)> = cluster
        .members
        .iter()
        .map(|m| (m.id, m.name.as_str(), m.address, m.mac, m.weight))
        .collect();
    assert_eq!(
        members,
        [
            (
                1,
                "srv1",
                Ipv4Addr::new(198, 18, 0, 11),
                mac("02:00:c6:12:00:0b"),
                100
            ),
            (
                2,
                "srv2",
                Ipv4Addr::new(198, 18, 0, 12),
                mac("02:00:c6:12:00:0c"),
                100
            ),
            (
                3,
                "srv3",
                Ipv4Addr::new(198, 18, 0, 13),
                mac("02:00:c6:12:00:0d"),
                100
            ),
        ]
    );
}

#[test]
fn lab_srv1() {
    let config = example("lab-srv1.toml");
    assert_lab_cluster(&config);
    assert_eq!(config.cluster.key_file, Some(dir().join("lab-cluster.key")));
    assert_eq!(config.services.len(), 1);
    let http = &config.services[0];
    assert_eq!(
        (http.name.as_str(), http.port, http.protocol),
        ("http", 80, Protocol::Tcp)
    );
    assert_eq!((http.mode, http.dispatch.as_ref()), (Mode::Local, None));
    assert_eq!(
        (http.selection.algorithm, http.selection.vnodes),
        (Algorithm::Ring, 64)
    );
    let dp = &config.dataplane;
    assert_eq!(dp.backend, Backend::Dpdk);
    let ports: Vec<(&str, PortRole, &str)> = dp
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.role, p.device.as_str()))
        .collect();
    assert_eq!(
        ports,
        [
            ("wire0", PortRole::Wire, "net_af_packet0,iface=eth0"),
            ("kernel0", PortRole::Kernel, "net_tap0,iface=shoal0"),
        ]
    );
    assert!(!dp.hugepages);
    assert_eq!(dp.memory_mb, 256);
    assert_eq!(dp.cores, [1]);
    assert_eq!(dp.mbufs, 4095);
    assert_eq!(dp.flow_table.capacity, 65_536);
    assert_eq!(dp.eal_args, ["--no-pci", "--file-prefix=shoal-srv1"]);
    let control = &config.control;
    assert_eq!(
        (control.interval_ms, control.failure_timeout_ms),
        (200, 1000)
    );
    assert_eq!(control.shm_path, Path::new("/dev/shm/shoal-srv1"));
    assert_eq!(
        control.networks[0].peers,
        [addr("198.18.0.12:7946"), addr("198.18.0.13:7946")]
    );
}

#[test]
fn production() {
    let config = example("production.toml");
    assert_eq!(config.cluster.members.len(), 4);
    assert_eq!(config.cluster.members[3].weight, 200);
    assert_eq!(
        config.cluster.key_file,
        Some(PathBuf::from("/etc/shoal/cluster.key"))
    );
    let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["http", "https", "api"]);
    assert_eq!(config.services[0].selection.algorithm, Algorithm::Maglev);
    assert_eq!(config.services[0].selection.maglev_table_size, 65_537);
    assert_eq!(
        config.services[2].selection.algorithm,
        Algorithm::Rendezvous
    );
    let dp = &config.dataplane;
    assert!(dp.hugepages);
    assert_eq!(dp.cores, [2, 3, 4, 5]);
    assert_eq!(dp.ports[0].device, "0000:3b:00.0");
    assert_eq!(dp.mbufs, 32_767);
    assert_eq!(dp.flow_table.capacity, 2_097_152);
    let control = &config.control;
    let networks: Vec<(&str, Option<SocketAddr>, usize)> = control
        .networks
        .iter()
        .map(|n| (n.name.as_str(), n.multicast, n.peers.len()))
        .collect();
    assert_eq!(
        networks,
        [
            ("segment", Some(addr("239.192.77.1:7946")), 0),
            ("mgmt", None, 3)
        ]
    );
    assert_eq!(control.metrics_listen, addr("198.19.0.11:9464"));
    assert_eq!(control.admin_listen, addr("127.0.0.1:9465"));
    assert_eq!(
        control.admin_token_file,
        Some(PathBuf::from("/etc/shoal/admin.token"))
    );
}

#[test]
fn dpr_ipip() {
    let config = example("dpr-ipip.toml");
    let http = &config.services[0];
    assert_eq!((http.mode, http.state), (Mode::DprIpip, State::Stateful));
    assert_eq!(http.selection.algorithm, Algorithm::Maglev);
    assert_eq!(http.selection.max_load, Some(0.8));
    assert_eq!(http.selection.load_choice, LoadChoice::Probabilistic);
    let dns = &config.services[1];
    assert_eq!(
        (dns.protocol, dns.mode, dns.state),
        (Protocol::Udp, Mode::DprIpip, State::Stateless)
    );
    assert_eq!(config.dataplane.backend, Backend::Portable);
    assert_eq!(config.dataplane.ports[0].device, "eth0");
}

#[test]
fn splice() {
    let config = example("splice.toml");
    assert_lab_cluster(&config);
    let www = &config.services[0];
    assert_eq!(www.mode, Mode::Splice);
    let dispatch = www.dispatch.as_ref().expect("www dispatch");
    assert_eq!(
        (dispatch.policy, dispatch.handoff),
        (DispatchPolicy::UrlHash, HandoffMode::Frequent)
    );
    assert_eq!(dispatch.hot_paths, ["/static/", "/images/"]);
    assert_eq!(
        (dispatch.max_request_bytes, dispatch.request_timeout_ms),
        (16_384, 5_000)
    );
    let app = &config.services[1];
    assert_eq!((app.mode, app.port), (Mode::Splice, 8080));
    let dispatch = app.dispatch.as_ref().expect("app dispatch");
    assert_eq!(dispatch.policy, DispatchPolicy::Cookie);
    assert_eq!(dispatch.cookie_name.as_deref(), Some("SHOALID"));
    assert_eq!(dispatch.default_member.as_deref(), Some("srv3"));
    assert_eq!(dispatch.on_bad_request, BadRequestAction::PassToDefault);
}

#[test]
fn replay() {
    let config = example("replay.toml");
    assert_lab_cluster(&config);
    assert_eq!(config.dataplane.backend, Backend::Memory);
    assert_eq!(config.dataplane.cores, [0]);
    assert_eq!(config.services[0].mode, Mode::Local);
    assert_eq!(config.services[0].port, 80);
    assert_eq!(config.dataplane.flow_table.capacity, 4096);
}

#[test]
fn error_shown_in_config_md() {
    let path = dir().join("lab-srv1.toml");
    let text = std::fs::read_to_string(&path).expect("readable");
    let text = text.replacen("vnodes = 64", "vnodes = 0", 1);
    let err = shoal_config::load_str(&text, Path::new("deploy/examples/lab-srv1.toml"))
        .expect_err("vnodes = 0");
    assert_eq!(
        err.to_string(),
        "deploy/examples/lab-srv1.toml:64:10: services[0].selection.vnodes: \
         must be between 1 and 4096 (got 0)"
    );
}

/// One front end, three back ends, with classes, scheduling and stickiness.
#[test]
fn always_example_has_one_front_end_three_back_ends_and_carisma() {
    use shoal_config::{MemberRole, SchedulingPolicy};
    let c = example("always.toml");
    let roles: Vec<(&str, MemberRole)> = c
        .cluster
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("fe1", MemberRole::FrontEnd),
            ("be1", MemberRole::BackEnd),
            ("be2", MemberRole::BackEnd),
            ("be3", MemberRole::BackEnd),
        ]
    );
    let d = c.services[0].dispatch.as_ref().unwrap();
    assert_eq!(c.services[0].mode, Mode::Splice);
    assert_eq!(d.handoff, HandoffMode::Frequent);
    let names: Vec<&str> = d.classes.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["checkout", "catalog", "downloads"]);
    let s = d.scheduling.as_ref().unwrap();
    assert_eq!((s.policy, s.max_active), (SchedulingPolicy::Priority, 64));
    let st = d.sticky.as_ref().unwrap();
    assert_eq!(
        (st.cookie.as_str(), st.insert, st.max_age_s),
        ("shop_be", true, 1800)
    );
}

/// routed.toml: routed topology, a local service, and [control.bgp] as its
/// comments say (the member's own address for the health check, 3 failures,
/// 2 s of shutdown grace); its bird.conf holds the VIP in a disabled
/// `shoal_vips` exported to the top-of-rack routers only.
#[test]
fn routed_example_announces_by_bgp() {
    let config = example("routed.toml");
    assert_eq!(config.dataplane.topology, shoal_config::Topology::Routed);
    assert_eq!(config.services[0].mode, Mode::Local);
    let bgp = config.control.bgp.expect("[control.bgp]");
    assert!(bgp.enabled);
    assert_eq!(bgp.protocol, "shoal_vips");
    assert_eq!(bgp.health_url, "http://198.18.31.11:80/healthz");
    assert_eq!((bgp.health_failures, bgp.shutdown_grace_ms), (3, 2000));
    assert_eq!(
        config.cluster.members[0].address,
        Ipv4Addr::new(198, 18, 31, 11)
    );
    let bird = std::fs::read_to_string(dir().join("routed/bird.conf")).expect("bird.conf");
    assert!(bird.contains("protocol static shoal_vips {"));
    assert!(bird.contains("disabled yes;"));
    assert!(bird.contains("route 198.18.30.100/32 blackhole;"));
    assert!(bird.contains("export where proto = \"shoal_vips\";"));
    assert!(bird.contains("router id 198.18.31.11;"));
}
