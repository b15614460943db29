//! `Config::validate`: every rule a parsed config must also satisfy.
//!
//! This module owns the one validation pass and [`Problem`]. It checks what
//! the types cannot say (ranges, uniqueness, cross-references between
//! sections, combinations of modes) and reports every broken rule with the key
//! path it is about. It does no I/O: files named by the config are not opened
//! here, and locations in the text are added by the loader.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::{
    Algorithm, Backend, Cluster, Config, Control, Dataplane, Dispatch, DispatchPolicy, HandoffMode,
    KeyHash, Location, MemberRole, Mode, PortRole, Protocol, Service, State, SynProxy, Topology,
};

/// Highest `selection.vnodes`.
const MAX_VNODES: u32 = 4096;
/// Highest `selection.maglev_table_size` (2^24).
const MAX_MAGLEV_TABLE_SIZE: u32 = 1 << 24;
/// Highest `dataplane.burst_size`.
const MAX_BURST_SIZE: u16 = 256;
/// Smallest rx/tx queue size.
const MIN_QUEUE_SIZE: u16 = 64;
/// Largest rx/tx queue size.
const MAX_QUEUE_SIZE: u16 = 16_384;
/// Highest `dataplane.flow_table.capacity` (2^26).
const MAX_FLOW_CAPACITY: u32 = 1 << 26;
/// Smallest `dispatch.max_request_bytes`.
const MIN_REQUEST_BYTES: u32 = 512;
/// Largest `dispatch.max_request_bytes` (1 MiB).
const MAX_REQUEST_BYTES: u32 = 1 << 20;
/// Smallest `dispatch.request_timeout_ms`.
const MIN_REQUEST_TIMEOUT_MS: u32 = 100;
/// Smallest `control.interval_ms`.
const MIN_INTERVAL_MS: u64 = 10;
/// Ports a worker polls: the wire port and the kernel port.
const PORTS_PER_WORKER: u64 = 2;

/// One broken rule: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path of the offending setting, e.g. `services[1].selection.vnodes`
    /// or `dataplane.cores[2]` (arrays by 0-based index). Empty only for TOML
    /// syntax errors that are not inside any key.
    pub key: String,
    /// Where the key is written in the file; `None` when it is not written
    /// (a default) or the problem did not come from a file.
    pub location: Option<Location>,
    /// What is wrong, in words an operator can act on.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.key, self.reason)
        }
    }
}

/// Collects problems in the order rules are checked.
#[derive(Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    pub(crate) fn add(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            location: None,
            reason: reason.into(),
        });
    }

    /// Reports every element after the first one equal to an earlier one.
    pub(crate) fn duplicates<T: Eq + Hash, D: fmt::Display>(
        &mut self,
        items: impl IntoIterator<Item = (String, T, D)>,
        what: &str,
    ) {
        let mut seen: HashMap<T, String> = HashMap::new();
        for (key, value, shown) in items {
            if let Some(first) = seen.get(&value) {
                self.add(key, format!("{what} {shown} is already used by {first}"));
            } else {
                seen.insert(value, key);
            }
        }
    }
}

impl Config {
    /// Checks every rule the schema's types cannot express; on failure returns
    /// every problem found, each naming its key (locations are `None`).
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut p = Problems::default();
        check_cluster(&self.cluster, &mut p);
        check_services(self, &mut p);
        check_dataplane(&self.dataplane, &mut p);
        check_control(&self.control, self.cluster.members.len(), &mut p);
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(p.0)
        }
    }
}

/// Why an address cannot be a VIP or a member address, if it cannot.
fn bad_host_address(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("0.0.0.0 is not a host address")
    } else if ip.is_multicast() {
        Some("a multicast address is not a host address")
    } else if ip.is_broadcast() {
        Some("the broadcast address is not a host address")
    } else if ip.is_loopback() {
        Some("a loopback address is not reachable from other hosts")
    } else {
        None
    }
}

fn check_cluster(cluster: &Cluster, p: &mut Problems) {
    if cluster.name.trim().is_empty() {
        p.add(
            "cluster.name",
            "must not be empty (it labels logs and metrics)",
        );
    }
    if cluster.vips.is_empty() {
        p.add(
            "cluster.vips",
            "at least one VIP is needed (e.g. vips = [\"198.18.0.100\"])",
        );
    }
    for (i, vip) in cluster.vips.iter().enumerate() {
        if let Some(why) = bad_host_address(*vip) {
            p.add(
                format!("cluster.vips[{i}]"),
                format!("{vip} cannot be a VIP: {why}"),
            );
        }
    }
    p.duplicates(
        cluster
            .vips
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("cluster.vips[{i}]"), *v, *v)),
        "VIP",
    );
    if cluster.mac.is_zero() {
        p.add("cluster.mac", "must not be 00:00:00:00:00:00");
    } else if cluster.mac.is_multicast() {
        p.add(
            "cluster.mac",
            format!(
                "{} is a multicast MAC (lowest bit of the first byte set); use a unicast, \
                 locally administered address like 02:00:c6:12:00:64",
                cluster.mac
            ),
        );
    }

    let members = &cluster.members;
    if members.is_empty() {
        p.add(
            "cluster.members",
            "at least one [[cluster.members]] is needed",
        );
    }
    for (i, m) in members.iter().enumerate() {
        let key = |field: &str| format!("cluster.members[{i}].{field}");
        if m.id == 0 {
            p.add(key("id"), "must be between 1 and 65535 (got 0)");
        }
        if m.name.trim().is_empty() {
            p.add(key("name"), "must not be empty");
        }
        if let Some(why) = bad_host_address(m.address) {
            p.add(
                key("address"),
                format!("{} cannot be a member address: {why}", m.address),
            );
        }
        if cluster.vips.contains(&m.address) {
            p.add(
                key("address"),
                format!(
                    "{} is one of cluster.vips; a member needs its own address besides the VIPs",
                    m.address
                ),
            );
        }
        if m.mac.is_zero() {
            p.add(key("mac"), "must not be 00:00:00:00:00:00");
        } else if m.mac.is_multicast() {
            p.add(
                key("mac"),
                format!("{} is a multicast MAC; a member MAC is unicast", m.mac),
            );
        } else if m.mac == cluster.mac {
            p.add(
                key("mac"),
                format!(
                    "{} is cluster.mac; a member needs its own MAC besides it",
                    m.mac
                ),
            );
        }
    }
    let key = |i: usize, field: &str| format!("cluster.members[{i}].{field}");
    let indexed = || members.iter().enumerate();
    p.duplicates(
        indexed().map(|(i, m)| (key(i, "id"), m.id, m.id)),
        "member id",
    );
    p.duplicates(
        indexed().map(|(i, m)| (key(i, "name"), &m.name, &m.name)),
        "member name",
    );
    p.duplicates(
        indexed().map(|(i, m)| (key(i, "address"), m.address, m.address)),
        "address",
    );
    p.duplicates(indexed().map(|(i, m)| (key(i, "mac"), m.mac, m.mac)), "MAC");
    if !members.is_empty() && members.iter().all(|m| m.weight == 0) {
        p.add(
            "cluster.members",
            "every member has weight = 0, so no server would take new connections; \
             give at least one member a weight above 0",
        );
    }
    if !members.iter().any(|m| m.name == cluster.local_member) {
        p.add(
            "cluster.local_member",
            format!(
                "'{}' is not the name of any [[cluster.members]] (members: {})",
                cluster.local_member,
                member_names(cluster)
            ),
        );
    }
}

fn member_names(cluster: &Cluster) -> String {
    let names: Vec<&str> = cluster.members.iter().map(|m| m.name.as_str()).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn check_services(config: &Config, p: &mut Problems) {
    let cluster = &config.cluster;
    for (i, service) in config.services.iter().enumerate() {
        check_service(cluster, service, &format!("services[{i}]"), p);
    }
    check_roles(config, p);
    if config.dataplane.topology == Topology::Routed {
        for (i, service) in config.services.iter().enumerate() {
            check_routed(service, &format!("services[{i}]"), p);
        }
    }
    p.duplicates(
        config.services.iter().enumerate().map(|(i, s)| {
            (
                format!("services[{i}].name"),
                &s.name,
                format!("'{}'", s.name),
            )
        }),
        "service name",
    );
    p.duplicates(
        config.services.iter().enumerate().map(|(i, s)| {
            let shown = format!("{}:{}/{}", s.vip, s.port, crate::name_of(&s.protocol));
            (
                format!("services[{i}].port"),
                (s.vip, s.port, s.protocol),
                shown,
            )
        }),
        "VIP, port and protocol",
    );
}

/// Member roles (CARISMA *always* handoff): only in clusters whose
/// services all splice, with frequent handoff and a cluster key, at least
/// one member inspecting and one serving, and no dispatch rule or default
/// member naming a front end.
fn check_roles(config: &Config, p: &mut Problems) {
    let cluster = &config.cluster;
    let members = &cluster.members;
    let Some(first) = members.iter().position(|m| m.role != MemberRole::Both) else {
        return;
    };
    let role_key = format!("cluster.members[{first}].role");
    if !members.iter().any(|m| m.role.inspects()) {
        p.add(
            role_key.clone(),
            "no member inspects (every one is a back-end): make at least one a front-end or both",
        );
    }
    if !members.iter().any(|m| m.role.serves() && m.weight > 0) {
        p.add(
            role_key.clone(),
            "no member serves (every one is a front-end, or the others have weight 0)",
        );
    }
    if cluster.key_file.is_none() {
        p.add(
            "cluster.key_file",
            "member roles hand every request from a front end to a back end: the cluster key \
             signs the handoffs; set key_file",
        );
    }
    let front_end = |name: &str| {
        members
            .iter()
            .any(|m| m.name == name && m.role == MemberRole::FrontEnd)
    };
    for (i, s) in config.services.iter().enumerate() {
        if s.mode != Mode::Splice {
            p.add(
                format!("services[{i}].mode"),
                format!(
                    "{role_key} is set: with front ends and back ends every service must be \
                     mode = \"splice\" (a front end serves nothing itself, a back end inspects \
                     nothing; got {})",
                    crate::name_of(&s.mode)
                ),
            );
            continue;
        }
        let Some(d) = &s.dispatch else { continue };
        if d.handoff == crate::HandoffMode::Rare {
            p.add(
                format!("services[{i}].dispatch.handoff"),
                "\"rare\" lets the inspector's own kernel take the handshake; a front end serves \
                 nothing: use \"frequent\" with member roles",
            );
        }
        for (j, rule) in d.rules.iter().enumerate() {
            if front_end(&rule.member) {
                p.add(
                    format!("services[{i}].dispatch.rules[{j}].member"),
                    format!("'{}' is a front-end, which serves nothing", rule.member),
                );
            }
        }
        if let Some(name) = d.default_member.as_deref().filter(|n| front_end(n)) {
            p.add(
                format!("services[{i}].dispatch.default_member"),
                format!("'{name}' is a front-end, which serves nothing"),
            );
        }
    }
}

fn check_service(cluster: &Cluster, s: &Service, key: &str, p: &mut Problems) {
    if s.name.trim().is_empty() {
        p.add(
            format!("{key}.name"),
            "must not be empty (it labels logs and metrics)",
        );
    }
    if !cluster.vips.contains(&s.vip) {
        p.add(
            format!("{key}.vip"),
            format!("{} is not one of cluster.vips", s.vip),
        );
    }
    if s.port == 0 {
        p.add(format!("{key}.port"), "must be between 1 and 65535 (got 0)");
    }
    if s.mode == Mode::Splice {
        if s.protocol != Protocol::Tcp {
            p.add(
                format!("{key}.protocol"),
                format!(
                    "mode = \"splice\" reads HTTP over TCP and needs protocol = \"tcp\" (got {})",
                    crate::name_of(&s.protocol)
                ),
            );
        }
        if s.state == State::Stateless {
            p.add(
                format!("{key}.state"),
                "mode = \"splice\" keeps every spliced connection in the flow table; \
                 state = \"stateless\" applies only to dpr-mac and dpr-ipip",
            );
        }
    }
    check_syn_proxy(s, key, p);
    match (&s.dispatch, s.mode) {
        (Some(dispatch), Mode::Splice) => {
            check_dispatch(cluster, dispatch, &format!("{key}.dispatch"), p);
        }
        (Some(_), _) => p.add(
            format!("{key}.dispatch"),
            "[services.dispatch] applies only to mode = \"splice\"; remove it or change the mode",
        ),
        (None, _) => {}
    }

    let sel = &s.selection;
    let sel_key = format!("{key}.selection");
    if !(1..=MAX_VNODES).contains(&sel.vnodes) {
        p.add(
            format!("{sel_key}.vnodes"),
            format!("must be between 1 and {MAX_VNODES} (got {})", sel.vnodes),
        );
    }
    if sel.key_hash == KeyHash::Md5 && sel.algorithm != Algorithm::Ring {
        p.add(
            format!("{sel_key}.key_hash"),
            "\"md5\" applies only to algorithm = \"ring\" (maglev and rendezvous always hash \
             keys with splitmix64); remove key_hash or set algorithm = \"ring\"",
        );
    }
    if sel.algorithm == Algorithm::Maglev {
        let size = sel.maglev_table_size;
        let floor = 100 * cluster.members.len() as u64;
        if !is_prime(size) {
            p.add(
                format!("{sel_key}.maglev_table_size"),
                format!("must be a prime number (got {size}); e.g. 65537 or 655373"),
            );
        } else if u64::from(size) <= floor {
            p.add(
                format!("{sel_key}.maglev_table_size"),
                format!(
                    "must be larger than 100 x members = {floor} (got {size}) for an even spread"
                ),
            );
        } else if size > MAX_MAGLEV_TABLE_SIZE {
            p.add(
                format!("{sel_key}.maglev_table_size"),
                format!("must be at most {MAX_MAGLEV_TABLE_SIZE} (got {size})"),
            );
        }
    }
    if let Some(max_load) = sel.max_load {
        if !(max_load.is_finite() && max_load > 0.0) {
            p.add(
                format!("{sel_key}.max_load"),
                format!("must be a finite number above 0 (got {max_load})"),
            );
        }
    }
}

/// A service under `dataplane.topology = "routed"`: a packet reaches one
/// member (the receiver), which forwards it by a consistent hash every
/// member computes alike, with no flow: `local`, stateless `dpr-ipip` and
/// `splice` (the inspector is the target) with frequent handoff only, and
/// no SYN proxy (the cookie ACK may reach another receiver).
fn check_routed(s: &Service, key: &str, p: &mut Problems) {
    match (s.mode, s.state) {
        (Mode::Local, _) | (Mode::DprIpip, State::Stateless) => {}
        (Mode::Splice, _) => {
            if s.dispatch
                .as_ref()
                .is_some_and(|d| d.handoff == HandoffMode::Rare)
            {
                p.add(
                    format!("{key}.dispatch.handoff"),
                    "handoff = \"rare\" is not available with dataplane.topology = \"routed\" \
                     (the hashed server's kernel answers the SYN, and its later packets may \
                     reach another receiver): use handoff = \"frequent\"",
                );
            }
        }
        (Mode::DprIpip, State::Stateful) => p.add(
            format!("{key}.state"),
            "with dataplane.topology = \"routed\" every receiver computes the target by a \
             consistent hash and keeps no flow (a connection the router moves to another \
             receiver must reach the same target): set state = \"stateless\"",
        ),
        (Mode::DprMac, _) => p.add(
            format!("{key}.mode"),
            "mode = \"dpr-mac\" rewrites MAC addresses on one broadcast segment; with \
             dataplane.topology = \"routed\" packets reach one member through a router: use \
             mode = \"local\" or mode = \"dpr-ipip\" with state = \"stateless\"",
        ),
    }
    if s.syn_proxy.is_some_and(|sp| sp != SynProxy::Off) {
        p.add(
            format!("{key}.syn_proxy"),
            "the SYN proxy is not available with dataplane.topology = \"routed\" (the \
             cookie ACK may reach another receiver than the SYN); remove it or set \
             syn_proxy = \"off\"",
        );
    }
}

/// `syn_proxy` and its threshold: only for L4 TCP services, the threshold
/// only with `auto`.
fn check_syn_proxy(s: &Service, key: &str, p: &mut Problems) {
    let why_not = if s.mode == Mode::Splice {
        Some(
            "mode = \"splice\" always answers SYNs with SYN cookies itself; the SYN proxy \
             applies only to mode = \"local\", \"dpr-mac\" and \"dpr-ipip\". Remove it",
        )
    } else if s.protocol == Protocol::Udp {
        Some(
            "protocol = \"udp\" has no handshake to proxy; the SYN proxy applies only to TCP \
             services. Remove it",
        )
    } else {
        None
    };
    if let Some(why) = why_not {
        if s.syn_proxy.is_some() {
            p.add(format!("{key}.syn_proxy"), why);
        }
        if s.syn_proxy_half_open.is_some() {
            p.add(format!("{key}.syn_proxy_half_open"), why);
        }
        return;
    }
    if let Some(threshold) = s.syn_proxy_half_open {
        if s.syn_proxy() != SynProxy::Auto {
            p.add(
                format!("{key}.syn_proxy_half_open"),
                format!(
                    "is used only with syn_proxy = \"auto\" (syn_proxy is \"{}\"); remove it \
                     or set syn_proxy = \"auto\"",
                    crate::name_of(&s.syn_proxy())
                ),
            );
        } else if threshold == 0 {
            p.add(
                format!("{key}.syn_proxy_half_open"),
                "must be at least 1 (got 0); to proxy every SYN set syn_proxy = \"on\"",
            );
        }
    }
}

/// A list of path prefixes at `key`: each starts with `/`, none twice.
fn check_path_prefixes(paths: &[String], key: &str, what: &str, p: &mut Problems) {
    for (i, path) in paths.iter().enumerate() {
        if !path.starts_with('/') {
            p.add(
                format!("{key}[{i}]"),
                format!("must start with '/' (got '{path}')"),
            );
        }
    }
    p.duplicates(
        paths
            .iter()
            .enumerate()
            .map(|(i, h)| (format!("{key}[{i}]"), h, h)),
        what,
    );
}

fn check_dispatch(cluster: &Cluster, d: &Dispatch, key: &str, p: &mut Problems) {
    crate::classes::check_classes(&d.classes, d.scheduling.as_ref(), key, p);
    if let Some(sticky) = &d.sticky {
        crate::sticky::check_sticky(sticky, key, p);
    }
    let is_member = |name: &str| cluster.members.iter().any(|m| m.name == name);
    let policy = d.policy;

    match (&d.cookie_name, policy) {
        (None, DispatchPolicy::Cookie) => p.add(
            format!("{key}.cookie_name"),
            "policy = \"cookie\" needs cookie_name (the cookie whose value picks the server)",
        ),
        (Some(name), DispatchPolicy::Cookie) => {
            let bad =
                |c: char| c.is_whitespace() || c.is_control() || "()<>@,;:\\\"/[]?={}".contains(c);
            if name.is_empty() || name.chars().any(bad) {
                p.add(
                    format!("{key}.cookie_name"),
                    format!("'{name}' is not a valid cookie name (a non-empty HTTP token)"),
                );
            }
        }
        (Some(_), _) => p.add(
            format!("{key}.cookie_name"),
            "is used only with policy = \"cookie\"; remove it or change the policy",
        ),
        (None, _) => {}
    }

    if policy == DispatchPolicy::Rules {
        if d.rules.is_empty() && d.default_member.is_none() {
            p.add(
                format!("{key}.rules"),
                "policy = \"rules\" needs at least one [[services.dispatch.rules]] or a \
                 default_member",
            );
        }
    } else if !d.rules.is_empty() {
        p.add(
            format!("{key}.rules"),
            "are used only with policy = \"rules\"; remove them or change the policy",
        );
    }
    for (i, rule) in d.rules.iter().enumerate() {
        let rule_key = format!("{key}.rules[{i}]");
        if !rule.prefix.starts_with('/') {
            p.add(
                format!("{rule_key}.prefix"),
                format!("must start with '/' (got '{}')", rule.prefix),
            );
        }
        if let Some(host) = &rule.host {
            if host.is_empty() || host.chars().any(char::is_whitespace) {
                p.add(
                    format!("{rule_key}.host"),
                    format!("'{host}' is not a host name; leave host out to match any host"),
                );
            }
        }
        if !is_member(&rule.member) {
            p.add(
                format!("{rule_key}.member"),
                format!(
                    "'{}' is not the name of any [[cluster.members]] (members: {})",
                    rule.member,
                    member_names(cluster)
                ),
            );
        }
    }
    match &d.default_member {
        Some(name) if !is_member(name) => p.add(
            format!("{key}.default_member"),
            format!(
                "'{name}' is not the name of any [[cluster.members]] (members: {})",
                member_names(cluster)
            ),
        ),
        None if d.on_bad_request == crate::BadRequestAction::PassToDefault => p.add(
            format!("{key}.on_bad_request"),
            "\"pass-to-default\" needs dispatch.default_member",
        ),
        _ => {}
    }

    if !d.hot_paths.is_empty() && policy != DispatchPolicy::UrlHash {
        p.add(
            format!("{key}.hot_paths"),
            "are used only with policy = \"url-hash\"; remove them or change the policy",
        );
    }
    check_path_prefixes(&d.hot_paths, &format!("{key}.hot_paths"), "hot path", p);
    if d.hot_path_mode != crate::HotPathMode::Spread && d.hot_paths.is_empty() {
        p.add(
            format!("{key}.hot_path_mode"),
            "says where hot_paths go, and there are none; add hot_paths or remove it",
        );
    }
    if d.hash_key != crate::UrlHashKey::Directory && policy != DispatchPolicy::UrlHash {
        p.add(
            format!("{key}.hash_key"),
            "is used only with policy = \"url-hash\"; remove it or change the policy",
        );
    }
    check_path_prefixes(
        &d.local_paths,
        &format!("{key}.local_paths"),
        "local path",
        p,
    );

    if let Some(threshold) = d.load_threshold {
        if !matches!(policy, DispatchPolicy::Lard | DispatchPolicy::LeastLoaded) {
            p.add(
                format!("{key}.load_threshold"),
                "is used only with policy = \"lard\" or \"least-loaded\"",
            );
        } else if !(threshold.is_finite() && threshold > 0.0) {
            p.add(
                format!("{key}.load_threshold"),
                format!("must be a finite number above 0 (got {threshold})"),
            );
        }
    }
    if let Some(gap) = d.replicate_above {
        if policy != DispatchPolicy::Dtcp {
            p.add(
                format!("{key}.replicate_above"),
                "is used only with policy = \"dtcp\"; remove it or change the policy",
            );
        } else if !(gap > 0.0 && gap < 1.0) {
            p.add(
                format!("{key}.replicate_above"),
                format!(
                    "must be a load difference strictly between 0 and 1 (got {gap}): loads are \
                     shares of a member's capacity, so DTCP's \"100 requests\" has no direct \
                     equivalent; e.g. 0.4"
                ),
            );
        }
    }
    if !(MIN_REQUEST_BYTES..=MAX_REQUEST_BYTES).contains(&d.max_request_bytes) {
        p.add(
            format!("{key}.max_request_bytes"),
            format!(
                "must be between {MIN_REQUEST_BYTES} and {MAX_REQUEST_BYTES} (got {})",
                d.max_request_bytes
            ),
        );
    }
    if d.request_timeout_ms < MIN_REQUEST_TIMEOUT_MS {
        p.add(
            format!("{key}.request_timeout_ms"),
            format!(
                "must be at least {MIN_REQUEST_TIMEOUT_MS} (got {})",
                d.request_timeout_ms
            ),
        );
    }
}

fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let n = u64::from(n);
    let mut divisor = 2;
    while divisor * divisor <= n {
        if n % divisor == 0 {
            return false;
        }
        divisor += 1;
    }
    true
}

/// Linux's rule for interface names (`dev_valid_name`).
fn is_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

fn check_dataplane(d: &Dataplane, p: &mut Problems) {
    let wire = d
        .ports
        .iter()
        .filter(|port| port.role == PortRole::Wire)
        .count();
    let kernel = d.ports.len() - wire;
    let ports_required = d.backend != Backend::Memory || !d.ports.is_empty();
    if ports_required && (wire != 1 || kernel != 1) {
        p.add(
            "dataplane.ports",
            format!(
                "backend \"{}\" needs exactly one port with role = \"wire\" and one with \
                 role = \"kernel\" (found {wire} wire, {kernel} kernel)",
                crate::name_of(&d.backend)
            ),
        );
    }
    for (i, port) in d.ports.iter().enumerate() {
        if port.name.trim().is_empty() {
            p.add(format!("dataplane.ports[{i}].name"), "must not be empty");
        }
        if port.device.trim().is_empty() {
            p.add(format!("dataplane.ports[{i}].device"), "must not be empty");
        } else if d.backend == Backend::Portable && !is_interface_name(&port.device) {
            p.add(
                format!("dataplane.ports[{i}].device"),
                format!(
                    "backend \"portable\" takes a Linux interface name (1 to 15 characters, \
                     no '/', ':' or spaces), got '{}'",
                    port.device
                ),
            );
        }
    }
    let key = |i: usize, field: &str| format!("dataplane.ports[{i}].{field}");
    let indexed = || d.ports.iter().enumerate();
    p.duplicates(
        indexed().map(|(i, port)| (key(i, "name"), &port.name, &port.name)),
        "port name",
    );
    p.duplicates(
        indexed().map(|(i, port)| (key(i, "device"), &port.device, &port.device)),
        "device",
    );

    if d.cores.is_empty() {
        p.add(
            "dataplane.cores",
            "at least one core is needed (one worker runs per core)",
        );
    }
    p.duplicates(
        d.cores
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("dataplane.cores[{i}]"), *c, *c)),
        "core",
    );
    if let Some(main) = d.main_core {
        if d.backend != Backend::Dpdk {
            p.add(
                "dataplane.main_core",
                "only the dpdk backend has a main lcore (remove the key)",
            );
        } else if let Some(i) = d.cores.iter().position(|&c| c == main) {
            p.add(
                "dataplane.main_core",
                format!(
                    "core {main} also runs worker {i} (dataplane.cores[{i}]): the main core \
                     forwards nothing, choose another one or remove the key"
                ),
            );
        }
    }
    if !(576..=9216).contains(&d.mtu) {
        p.add(
            "dataplane.mtu",
            format!("must be between 576 and 9216 bytes (got {})", d.mtu),
        );
    }
    let burst_ok = (1..=MAX_BURST_SIZE).contains(&d.burst_size);
    if !burst_ok {
        p.add(
            "dataplane.burst_size",
            format!(
                "must be between 1 and {MAX_BURST_SIZE} (got {})",
                d.burst_size
            ),
        );
    }
    let mut queues_ok = true;
    for (name, size) in [
        ("rx_queue_size", d.rx_queue_size),
        ("tx_queue_size", d.tx_queue_size),
    ] {
        if !size.is_power_of_two() || !(MIN_QUEUE_SIZE..=MAX_QUEUE_SIZE).contains(&size) {
            queues_ok = false;
            p.add(
                format!("dataplane.{name}"),
                format!(
                    "must be a power of two between {MIN_QUEUE_SIZE} and {MAX_QUEUE_SIZE} \
                     (got {size})"
                ),
            );
        }
    }
    if burst_ok && queues_ok && d.burst_size > d.rx_queue_size {
        p.add(
            "dataplane.burst_size",
            format!(
                "must not exceed rx_queue_size = {} (got {})",
                d.rx_queue_size, d.burst_size
            ),
        );
    }
    let cores = d.cores.len() as u64;
    let minimum =
        (u64::from(d.rx_queue_size) + u64::from(d.tx_queue_size)) * PORTS_PER_WORKER * cores
            + u64::from(d.burst_size) * cores;
    if u64::from(d.mbufs) < minimum {
        p.add(
            "dataplane.mbufs",
            format!(
                "must be at least {minimum} = (rx_queue_size {} + tx_queue_size {}) x \
                 {PORTS_PER_WORKER} ports x {cores} cores + burst_size {} x {cores} cores \
                 (got {})",
                d.rx_queue_size, d.tx_queue_size, d.burst_size, d.mbufs
            ),
        );
    }
    if !d.hugepages && d.memory_mb == 0 {
        p.add(
            "dataplane.memory_mb",
            "must be above 0 when hugepages = false",
        );
    }
    if d.backend != Backend::Dpdk && !d.eal_args.is_empty() {
        p.add(
            "dataplane.eal_args",
            format!(
                "are passed to DPDK and apply only to backend = \"dpdk\" (backend is \"{}\")",
                crate::name_of(&d.backend)
            ),
        );
    }

    let flows = &d.flow_table;
    if !(1..=MAX_FLOW_CAPACITY).contains(&flows.capacity) {
        p.add(
            "dataplane.flow_table.capacity",
            format!(
                "must be between 1 and {MAX_FLOW_CAPACITY} (got {})",
                flows.capacity
            ),
        );
    }
    let t = &flows.timeouts;
    let key = "dataplane.flow_table.timeouts";
    for (name, value) in [
        ("syn_ms", t.syn_ms),
        ("established_s", t.established_s),
        ("closing_s", t.closing_s),
        ("tombstone_s", t.tombstone_s),
    ] {
        if value == 0 {
            p.add(format!("{key}.{name}"), "must be above 0");
        }
    }
    if t.established_s != 0 && t.syn_ms >= t.established_s.saturating_mul(1000) {
        p.add(
            format!("{key}.syn_ms"),
            format!(
                "must be shorter than established_s ({} s = {} ms), got {} ms",
                t.established_s,
                t.established_s.saturating_mul(1000),
                t.syn_ms
            ),
        );
    }
}

fn check_control(c: &Control, members: usize, p: &mut Problems) {
    if c.interval_ms < MIN_INTERVAL_MS {
        p.add(
            "control.interval_ms",
            format!("must be at least {MIN_INTERVAL_MS} (got {})", c.interval_ms),
        );
    }
    if c.failure_timeout_ms < c.interval_ms.saturating_mul(4) {
        p.add(
            "control.failure_timeout_ms",
            format!(
                "must be at least 4 x interval_ms = {} (got {}): the dataplane's lease ends \
                 2 intervals before the peers' failure timeout and must still outlast one \
                 lost announcement",
                c.interval_ms.saturating_mul(4),
                c.failure_timeout_ms
            ),
        );
    }
    if !(c.load_smoothing > 0.0 && c.load_smoothing <= 1.0) {
        p.add(
            "control.load_smoothing",
            format!("must be above 0 and at most 1 (got {})", c.load_smoothing),
        );
    }
    check_load(&c.load, p);
    if let Some(bgp) = &c.bgp {
        check_bgp(bgp, c.failure_timeout_ms, p);
    }
    if c.networks.is_empty() && members > 1 {
        p.add(
            "control.networks",
            format!(
                "a cluster of {members} members needs at least one [[control.networks]] to \
                 exchange membership and load on"
            ),
        );
    }
    for (i, net) in c.networks.iter().enumerate() {
        let key = format!("control.networks[{i}]");
        if net.name.trim().is_empty() {
            p.add(format!("{key}.name"), "must not be empty");
        }
        match net.multicast {
            None if net.peers.is_empty() => p.add(
                key.clone(),
                "needs a multicast group or at least one unicast peer (set multicast or peers)",
            ),
            Some(group) if !group.ip().is_multicast() => p.add(
                format!("{key}.multicast"),
                format!(
                    "{} is not a multicast address (IPv4: 224.0.0.0/4)",
                    group.ip()
                ),
            ),
            Some(group) if group.port() == 0 => {
                p.add(format!("{key}.multicast"), "port must not be 0");
            }
            _ => {}
        }
        for (j, peer) in net.peers.iter().enumerate() {
            if peer.ip().is_unspecified() || peer.ip().is_multicast() || peer.port() == 0 {
                p.add(
                    format!("{key}.peers[{j}]"),
                    format!("{peer} is not a unicast address and port"),
                );
            }
        }
    }
    p.duplicates(
        c.networks.iter().enumerate().map(|(i, n)| {
            (
                format!("control.networks[{i}].name"),
                &n.name,
                format!("'{}'", n.name),
            )
        }),
        "network name",
    );
    if listeners_clash(c.metrics_listen, c.admin_listen) {
        p.add(
            "control.admin_listen",
            format!(
                "{} clashes with metrics_listen = {}; give the admin API its own port",
                c.admin_listen, c.metrics_listen
            ),
        );
    }
    if c.shm_path.as_os_str().is_empty() {
        p.add("control.shm_path", "must not be empty");
    }
}

/// Two TCP listeners cannot both bind: same port, and same or wildcard address.
fn listeners_clash(a: SocketAddr, b: SocketAddr) -> bool {
    let wildcard = |ip: IpAddr| ip.is_unspecified();
    a.port() == b.port() && (a.ip() == b.ip() || wildcard(a.ip()) || wildcard(b.ip()))
}

/// `[control.bgp]`: absolute program and socket paths, a BIRD protocol
/// name, an `http://IPV4[:PORT]/PATH` health URL, a timeout shorter than
/// the interval, at least one failure, a lease lapse of at least the
/// failure timeout.
fn check_bgp(b: &crate::BgpSettings, failure_timeout_ms: u64, p: &mut Problems) {
    for (name, path) in [("birdc", &b.birdc), ("socket", &b.socket)] {
        if !path.is_absolute() {
            p.add(
                format!("control.bgp.{name}"),
                format!("must be an absolute path (got \"{}\")", path.display()),
            );
        }
    }
    let name_ok = !b.protocol.is_empty()
        && b.protocol
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && b.protocol
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_');
    if !name_ok {
        p.add(
            "control.bgp.protocol",
            format!(
                "must be a BIRD protocol name (a letter, then letters, digits or '_'), got \"{}\"",
                b.protocol
            ),
        );
    }
    if let Err(e) = crate::HealthUrl::parse(&b.health_url) {
        p.add("control.bgp.health_url", e);
    }
    if b.health_interval_ms < 50 {
        p.add(
            "control.bgp.health_interval_ms",
            format!("must be at least 50 (got {})", b.health_interval_ms),
        );
    }
    if b.health_timeout_ms == 0 || b.health_timeout_ms > b.health_interval_ms {
        p.add(
            "control.bgp.health_timeout_ms",
            format!(
                "must be above 0 and at most health_interval_ms = {} (got {})",
                b.health_interval_ms, b.health_timeout_ms
            ),
        );
    }
    if b.health_failures == 0 {
        p.add(
            "control.bgp.health_failures",
            "must be at least 1 (consecutive failed checks that withdraw the VIP)",
        );
    }
    if b.lease_lapse_ms < failure_timeout_ms {
        p.add(
            "control.bgp.lease_lapse_ms",
            format!(
                "must be at least control.failure_timeout_ms = {failure_timeout_ms} (got {}): \
                 every survivor's lease lapses for up to one failure timeout when a peer dies, \
                 which must not withdraw them all",
                b.lease_lapse_ms
            ),
        );
    }
}

/// `[control.load]`: weights in 0..=1 and not all 0, absolute pid files
/// (control runs from any directory; a relative pid file would name another
/// file after a `cd`), `app_cpus` at least 1. Whether `app_cpus` exceeds the
/// host's CPUs is known only where control runs: it checks that at start.
fn check_load(l: &crate::LoadSettings, p: &mut Problems) {
    let w = &l.weights;
    let weights = [
        ("busy", w.busy),
        ("connections", w.connections),
        ("host_cpu", w.host_cpu),
        ("app", w.app),
    ];
    for (name, v) in weights {
        if !(0.0..=1.0).contains(&v) {
            p.add(
                format!("control.load.weights.{name}"),
                format!(
                    "must be between 0 and 1 (got {v}): the figure times its weight is a share \
                     of capacity; 0 ignores the figure"
                ),
            );
        }
    }
    if weights.iter().all(|(_, v)| *v == 0.0) {
        p.add(
            "control.load.weights",
            "every weight is 0, so the load would always be 0; to ignore load, leave the \
             services' max_load unset instead",
        );
    }
    for (i, path) in l.app_pid_files.iter().enumerate() {
        if !path.is_absolute() {
            p.add(
                format!("control.load.app_pid_files[{i}]"),
                format!(
                    "must be an absolute path (got \"{}\"), e.g. \"/run/nginx.pid\"",
                    path.display()
                ),
            );
        }
    }
    p.duplicates(
        l.app_pid_files.iter().enumerate().map(|(i, f)| {
            (
                format!("control.load.app_pid_files[{i}]"),
                f,
                format!("\"{}\"", f.display()),
            )
        }),
        "pid file",
    );
    if l.app_cpus == Some(0) {
        p.add(
            "control.load.app_cpus",
            "must be at least 1 (the CPUs the application can use; leave it out for the CPUs \
             the dataplane does not own)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        let primes: Vec<u32> = (0..30).filter(|n| is_prime(*n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65_537));
        assert!(is_prime(16_777_213));
        assert!(!is_prime(65_535));
        assert!(!is_prime(u32::MAX));
    }

    #[test]
    fn interface_names() {
        assert!(is_interface_name("eth0"));
        assert!(is_interface_name("shoal0"));
        assert!(!is_interface_name(""));
        assert!(!is_interface_name("net_af_packet0,iface=eth0"));
        assert!(!is_interface_name("eth0:1"));
        assert!(!is_interface_name(".."));
    }

    #[test]
    fn listener_clashes() {
        let at = |s: &str| s.parse::<SocketAddr>().expect("socket address");
        assert!(listeners_clash(at("127.0.0.1:9464"), at("127.0.0.1:9464")));
        assert!(listeners_clash(at("0.0.0.0:9464"), at("127.0.0.1:9464")));
        assert!(!listeners_clash(at("127.0.0.1:9464"), at("127.0.0.1:9465")));
        assert!(!listeners_clash(at("10.0.0.1:9464"), at("127.0.0.1:9464")));
    }
}
