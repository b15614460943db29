//! Negative tests of `Config::validate` through `load_str`: each breaks one
//! rule of an otherwise valid config and asserts the exact key path, the
//! reason and where the key is written.

use std::path::Path;

use shoal_config::{load_str, Config, ConfigError, DispatchPolicy, Location, Problem};

/// A valid config with every setting the tests edit written out.
const BASE: &str = r#"
[cluster]
name = "test"
vips = ["198.18.0.100", "198.18.0.101"]
mac = "02:00:c6:12:00:64"
local_member = "srv1"

[[cluster.members]]
id = 1
name = "srv1"
address = "198.18.0.11"
mac = "02:00:c6:12:00:0b"

[[cluster.members]]
id = 2
name = "srv2"
address = "198.18.0.12"
mac = "02:00:c6:12:00:0c"
weight = 100

[[cluster.members]]
id = 3
name = "srv3"
address = "198.18.0.13"
mac = "02:00:c6:12:00:0d"

[[services]]
name = "web"
vip = "198.18.0.100"
port = 80
protocol = "tcp"
mode = "local"

[services.selection]
algorithm = "ring"
vnodes = 64

[[services]]
name = "l7"
vip = "198.18.0.100"
port = 8080
mode = "splice"

[services.dispatch]
policy = "url-hash"
hot_paths = ["/static/"]
max_request_bytes = 16384
request_timeout_ms = 5000

[[services]]
name = "dpr"
vip = "198.18.0.101"
port = 80
mode = "dpr-mac"

[services.selection]
algorithm = "maglev"
maglev_table_size = 65537
max_load = 0.8

[dataplane]
backend = "dpdk"
cores = [1]
burst_size = 32
rx_queue_size = 256
tx_queue_size = 256
mbufs = 4095
hugepages = false
memory_mb = 256

[[dataplane.ports]]
name = "wire0"
role = "wire"
device = "net_af_packet0,iface=eth0"

[[dataplane.ports]]
name = "kernel0"
role = "kernel"
device = "net_tap0,iface=shoal0"

[dataplane.flow_table]
capacity = 65536

[dataplane.flow_table.timeouts]
syn_ms = 5000
established_s = 300
closing_s = 10
tombstone_s = 60

[control]
interval_ms = 200
failure_timeout_ms = 1000
load_smoothing = 0.3
metrics_listen = "127.0.0.1:9464"
admin_listen = "127.0.0.1:9465"

[[control.networks]]
name = "lab"
bind = "198.18.0.11:7946"
peers = ["198.18.0.12:7946", "198.18.0.13:7946"]

[control.load]
app_pid_files = ["/run/nginx.pid", "/run/php-fpm.pid"]
app_cpus = 2
weights = { busy = 1.0, connections = 1.0, host_cpu = 0.5, app = 1.0 }
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    load_str(text, Path::new("cfg/test.toml"))
}

/// BASE with the one occurrence of `from` replaced by `to`.
fn edit(from: &str, to: &str) -> String {
    assert_eq!(
        BASE.matches(from).count(),
        1,
        "'{from}' must occur once in BASE"
    );
    BASE.replacen(from, to, 1)
}

fn problems(text: &str) -> Vec<Problem> {
    match load(text) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected validation problems, got {other:?}"),
    }
}

fn only_problem(text: &str) -> Problem {
    let mut all = problems(text);
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    all.remove(0)
}

/// 1-based line of the first line of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text.find(needle).expect("needle in text");
    text[..at].matches('\n').count() + 1
}

/// Replaces `from` by `to` in BASE and expects exactly one problem, about
/// `key`, whose reason contains `reason`, located on the last line of `to`.
fn check(from: &str, to: &str, key: &str, reason: &str) {
    let text = edit(from, to);
    let problem = only_problem(&text);
    assert_eq!(problem.key, key, "{problem:?}");
    assert!(
        problem.reason.contains(reason),
        "reason of {key}: '{}'",
        problem.reason
    );
    let before = &BASE[..BASE.find(from).expect("from in BASE")];
    let line = before.matches('\n').count() + 1 + to.matches('\n').count();
    assert_eq!(problem.location.map(|l| l.line), Some(line), "{problem:?}");
}

/// Like [`check`] without asserting the line (the key is elsewhere or unwritten).
fn check_key(text: &str, key: &str, reason: &str) {
    let problem = only_problem(text);
    assert_eq!(problem.key, key, "{problem:?}");
    assert!(
        problem.reason.contains(reason),
        "reason of {key}: '{}'",
        problem.reason
    );
}

#[test]
fn base_is_valid() {
    let config = load(BASE).expect("BASE is valid");
    assert_eq!(config.cluster.members.len(), 3);
    assert_eq!(config.services.len(), 3);
}

#[test]
fn validation_errors_are_located_to_the_value() {
    let text = edit("vnodes = 64", "vnodes = 0");
    let err = load(&text).expect_err("vnodes = 0 is invalid");
    let line = line_of(&text, "vnodes = 0");
    assert_eq!(
        err.problems()[0].location,
        Some(Location { line, column: 10 })
    );
    assert_eq!(
        err.to_string(),
        format!("cfg/test.toml:{line}:10: services[0].selection.vnodes: must be between 1 and 4096 (got 0)")
    );
}

#[test]
fn every_problem_is_reported_one_per_line() {
    let text = edit("vnodes = 64", "vnodes = 0").replace("burst_size = 32", "burst_size = 0");
    let err = load(&text).expect_err("two problems");
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["services[0].selection.vnodes", "dataplane.burst_size"]
    );
    let shown = err.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].ends_with("services[0].selection.vnodes: must be between 1 and 4096 (got 0)"));
    let burst_line = line_of(&text, "burst_size = 0");
    assert_eq!(
        lines[1],
        format!("cfg/test.toml:{burst_line}:14: dataplane.burst_size: must be between 1 and 256 (got 0)")
    );
}

#[test]
fn defaulted_keys_have_no_location() {
    // Two more cores need more mbufs than the default pool has; mbufs is not
    // written, so the problem has a key but no line.
    let text = edit("mbufs = 4095\n", "").replace(
        "rx_queue_size = 256\ntx_queue_size = 256",
        "rx_queue_size = 4096\ntx_queue_size = 4096",
    );
    let text = text.replace("cores = [1]", "cores = [1, 2]");
    let problem = only_problem(&text);
    assert_eq!(problem.key, "dataplane.mbufs");
    assert_eq!(problem.location, None);
    assert_eq!(
        problem.reason,
        "must be at least 32832 = (rx_queue_size 4096 + tx_queue_size 4096) x 2 ports x 2 cores \
         + burst_size 32 x 2 cores (got 16383)"
    );
    let err = load(&text).expect_err("invalid");
    assert!(err
        .to_string()
        .starts_with("cfg/test.toml: dataplane.mbufs: must be at least 32832"));
}

// ---- cluster ----

#[test]
fn cluster_name_not_empty() {
    check(
        "name = \"test\"",
        "name = \"\"",
        "cluster.name",
        "must not be empty",
    );
}

#[test]
fn vips_not_empty() {
    // Services on the VIPs are then invalid too: expect those problems as well.
    let text = edit("vips = [\"198.18.0.100\", \"198.18.0.101\"]", "vips = []");
    let all = problems(&text);
    assert_eq!(all[0].key, "cluster.vips");
    assert!(all[0].reason.contains("at least one VIP"));
    assert_eq!(
        all[0].location.map(|l| l.line),
        Some(line_of(&text, "vips = []"))
    );
    let rest: Vec<&str> = all[1..].iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        rest,
        ["services[0].vip", "services[1].vip", "services[2].vip"]
    );
}

#[test]
fn vips_are_host_addresses() {
    for (bad, why) in [
        ("0.0.0.0", "0.0.0.0 is not a host address"),
        ("224.0.0.5", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("127.0.0.1", "loopback"),
    ] {
        let text = edit("\"198.18.0.101\"]", &format!("\"{bad}\"]"))
            .replace("vip = \"198.18.0.101\"", &format!("vip = \"{bad}\""));
        check_key(&text, "cluster.vips[1]", why);
    }
}

#[test]
fn vips_unique() {
    let text = edit("\"198.18.0.101\"]", "\"198.18.0.100\"]").replace(
        "vip = \"198.18.0.101\"\nport = 80",
        "vip = \"198.18.0.100\"\nport = 81",
    );
    check_key(
        &text,
        "cluster.vips[1]",
        "VIP 198.18.0.100 is already used by cluster.vips[0]",
    );
}

#[test]
fn cluster_mac_unicast_and_not_zero() {
    check(
        "mac = \"02:00:c6:12:00:64\"",
        "mac = \"03:00:c6:12:00:64\"",
        "cluster.mac",
        "multicast MAC",
    );
    check(
        "mac = \"02:00:c6:12:00:64\"",
        "mac = \"00:00:00:00:00:00\"",
        "cluster.mac",
        "must not be 00:00:00:00:00:00",
    );
}

#[test]
fn members_not_empty() {
    let start = BASE.find("[[cluster.members]]").expect("members");
    let end = BASE.find("[[services]]").expect("services");
    let text = format!("{}cluster.members = []\n{}", &BASE[..start], &BASE[end..])
        .replace("name = \"test\"", "name = \"test\"\nmembers = []");
    let text = text.replace("cluster.members = []\n", "");
    let all = problems(&text);
    let keys: Vec<&str> = all.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["cluster.members", "cluster.local_member"]);
    assert!(all[0].reason.contains("at least one [[cluster.members]]"));
    assert_eq!(
        all[1].reason,
        "'srv1' is not the name of any [[cluster.members]] (members: none)"
    );
}

#[test]
fn member_ids_nonzero_and_unique() {
    check(
        "id = 2",
        "id = 0",
        "cluster.members[1].id",
        "between 1 and 65535 (got 0)",
    );
    check(
        "id = 3",
        "id = 1",
        "cluster.members[2].id",
        "member id 1 is already used by cluster.members[0].id",
    );
}

#[test]
fn member_names_nonempty_and_unique() {
    check(
        "name = \"srv2\"",
        "name = \" \"",
        "cluster.members[1].name",
        "must not be empty",
    );
    check(
        "name = \"srv3\"",
        "name = \"srv2\"",
        "cluster.members[2].name",
        "member name srv2 is already used by cluster.members[1].name",
    );
}

#[test]
fn member_addresses_unique_and_not_vips() {
    check(
        "address = \"198.18.0.13\"",
        "address = \"198.18.0.12\"",
        "cluster.members[2].address",
        "address 198.18.0.12 is already used by cluster.members[1].address",
    );
    check(
        "address = \"198.18.0.13\"",
        "address = \"198.18.0.101\"",
        "cluster.members[2].address",
        "198.18.0.101 is one of cluster.vips",
    );
    check(
        "address = \"198.18.0.13\"",
        "address = \"0.0.0.0\"",
        "cluster.members[2].address",
        "not a host address",
    );
}

#[test]
fn member_macs_unique_unicast_and_not_the_cluster_mac() {
    check(
        "mac = \"02:00:c6:12:00:0d\"",
        "mac = \"02:00:c6:12:00:0c\"",
        "cluster.members[2].mac",
        "MAC 02:00:c6:12:00:0c is already used by cluster.members[1].mac",
    );
    check(
        "mac = \"02:00:c6:12:00:0d\"",
        "mac = \"01:00:5e:00:00:01\"",
        "cluster.members[2].mac",
        "multicast MAC",
    );
    check(
        "mac = \"02:00:c6:12:00:0d\"",
        "mac = \"00:00:00:00:00:00\"",
        "cluster.members[2].mac",
        "must not be 00:00:00:00:00:00",
    );
    check(
        "mac = \"02:00:c6:12:00:0d\"",
        "mac = \"02:00:c6:12:00:64\"",
        "cluster.members[2].mac",
        "is cluster.mac",
    );
}

#[test]
fn local_member_names_a_member() {
    check(
        "local_member = \"srv1\"",
        "local_member = \"srv9\"",
        "cluster.local_member",
        "'srv9' is not the name of any [[cluster.members]] (members: srv1, srv2, srv3)",
    );
}

#[test]
fn some_member_has_weight() {
    let text = edit("weight = 100", "weight = 0").replace(
        "mac = \"02:00:c6:12:00:0b\"",
        "mac = \"02:00:c6:12:00:0b\"\nweight = 0",
    );
    let text = text.replace(
        "mac = \"02:00:c6:12:00:0d\"",
        "mac = \"02:00:c6:12:00:0d\"\nweight = 0",
    );
    let problem = only_problem(&text);
    assert_eq!(problem.key, "cluster.members");
    assert!(problem.reason.contains("every member has weight = 0"));
    assert_eq!(
        problem.location.map(|l| l.line),
        Some(line_of(&text, "[[cluster.members]]"))
    );
    // One drained member is fine.
    load(&edit("weight = 100", "weight = 0")).expect("one member drained");
}

// ---- services ----

#[test]
fn service_names_nonempty_and_unique() {
    check(
        "name = \"l7\"",
        "name = \"web\"",
        "services[1].name",
        "service name 'web' is already used by services[0].name",
    );
    check(
        "name = \"l7\"",
        "name = \"\"",
        "services[1].name",
        "must not be empty",
    );
}

#[test]
fn service_vip_is_a_cluster_vip() {
    check(
        "vip = \"198.18.0.101\"",
        "vip = \"198.18.0.102\"",
        "services[2].vip",
        "198.18.0.102 is not one of cluster.vips",
    );
}

#[test]
fn service_port_nonzero() {
    check(
        "port = 8080",
        "port = 0",
        "services[1].port",
        "between 1 and 65535 (got 0)",
    );
}

#[test]
fn service_vip_port_protocol_unique() {
    check(
        "port = 8080",
        "port = 80",
        "services[1].port",
        "VIP, port and protocol 198.18.0.100:80/tcp is already used by services[0].port",
    );
    // The same port over UDP is another service.
    load(&edit("protocol = \"tcp\"", "protocol = \"udp\"").replace("port = 8080", "port = 80"))
        .expect("tcp and udp on one port");
}

#[test]
fn splice_needs_tcp() {
    check(
        "mode = \"splice\"",
        "mode = \"splice\"\nprotocol = \"udp\"",
        "services[1].protocol",
        "mode = \"splice\" reads HTTP over TCP and needs protocol = \"tcp\" (got udp)",
    );
}

#[test]
fn splice_is_stateful() {
    let text = edit(
        "mode = \"splice\"",
        "mode = \"splice\"\nstate = \"stateless\"",
    );
    let problem = only_problem(&text);
    assert_eq!(problem.key, "services[1].state");
    assert!(problem
        .reason
        .contains("stateless\" applies only to dpr-mac and dpr-ipip"));
    assert_eq!(
        problem.location.map(|l| l.line),
        Some(line_of(&text, "state = \"stateless\""))
    );
}

#[test]
fn dispatch_only_with_splice() {
    let text = edit("mode = \"splice\"", "mode = \"dpr-mac\"");
    let problem = only_problem(&text);
    assert_eq!(problem.key, "services[1].dispatch");
    assert!(problem.reason.contains("applies only to mode = \"splice\""));
    assert_eq!(
        problem.location.map(|l| l.line),
        Some(line_of(&text, "[services.dispatch]"))
    );
}

#[test]
fn splice_without_dispatch_gets_the_default() {
    let start = BASE.find("[services.dispatch]").expect("dispatch");
    let end = BASE
        .find("request_timeout_ms = 5000\n")
        .expect("end of dispatch")
        + 26;
    let text = format!("{}{}", &BASE[..start], &BASE[end..]);
    let config = load(&text).expect("splice without dispatch is valid");
    assert_eq!(
        config.services[1].dispatch,
        Some(shoal_config::Dispatch::default())
    );
    assert_eq!(config.services[0].dispatch, None);
}

#[test]
fn vnodes_in_range() {
    check(
        "vnodes = 64",
        "vnodes = 0",
        "services[0].selection.vnodes",
        "between 1 and 4096 (got 0)",
    );
    check(
        "vnodes = 64",
        "vnodes = 4097",
        "services[0].selection.vnodes",
        "(got 4097)",
    );
    load(&edit("vnodes = 64", "vnodes = 4096")).expect("4096 vnodes");
}

#[test]
fn key_hash_md5_only_with_the_ring() {
    check(
        "maglev_table_size = 65537",
        "maglev_table_size = 65537\nkey_hash = \"md5\"",
        "services[2].selection.key_hash",
        "\"md5\" applies only to algorithm = \"ring\"",
    );
    let ring_md5 =
        load(&edit("vnodes = 64", "vnodes = 64\nkey_hash = \"md5\"")).expect("md5 with the ring");
    assert_eq!(
        ring_md5.services[0].selection.key_hash,
        shoal_config::KeyHash::Md5
    );
    let fast = load(&edit(
        "maglev_table_size = 65537",
        "maglev_table_size = 65537\nkey_hash = \"splitmix64\"",
    ))
    .expect("splitmix64 with maglev");
    assert_eq!(
        fast.services[2].selection.key_hash,
        shoal_config::KeyHash::Splitmix64
    );
    // Unset: splitmix64.
    assert_eq!(
        load(BASE).expect("base").services[0].selection.key_hash,
        shoal_config::KeyHash::Splitmix64
    );
}

#[test]
fn maglev_table_size_prime_and_large_enough() {
    let key = "services[2].selection.maglev_table_size";
    check(
        "maglev_table_size = 65537",
        "maglev_table_size = 65536",
        key,
        "must be a prime number (got 65536)",
    );
    check(
        "maglev_table_size = 65537",
        "maglev_table_size = 293",
        key,
        "must be larger than 100 x members = 300 (got 293)",
    );
    check(
        "maglev_table_size = 65537",
        "maglev_table_size = 16777259",
        key,
        "must be at most 16777216 (got 16777259)",
    );
    load(&edit(
        "maglev_table_size = 65537",
        "maglev_table_size = 307",
    ))
    .expect("prime > 300");
    // Only checked for maglev.
    let text = edit("algorithm = \"maglev\"", "algorithm = \"rendezvous\"")
        .replace("maglev_table_size = 65537", "maglev_table_size = 10");
    load(&text).expect("table size ignored by rendezvous");
}

#[test]
fn max_load_positive_and_finite() {
    let key = "services[2].selection.max_load";
    check(
        "max_load = 0.8",
        "max_load = 0.0",
        key,
        "finite number above 0 (got 0)",
    );
    check("max_load = 0.8", "max_load = -1.5", key, "(got -1.5)");
    check("max_load = 0.8", "max_load = nan", key, "(got NaN)");
    check("max_load = 0.8", "max_load = inf", key, "(got inf)");
}

// ---- dispatch ----

const D: &str = "services[1].dispatch";

#[test]
fn cookie_policy_needs_a_cookie_name() {
    let text = edit(
        "policy = \"url-hash\"\nhot_paths = [\"/static/\"]",
        "policy = \"cookie\"",
    );
    check_key(
        &text,
        &format!("{D}.cookie_name"),
        "policy = \"cookie\" needs cookie_name",
    );
    let text = edit(
        "policy = \"url-hash\"\nhot_paths = [\"/static/\"]",
        "policy = \"cookie\"\ncookie_name = \"a b\"",
    );
    check_key(
        &text,
        &format!("{D}.cookie_name"),
        "'a b' is not a valid cookie name",
    );
    let text = edit(
        "policy = \"url-hash\"",
        "policy = \"url-hash\"\ncookie_name = \"SID\"",
    );
    check_key(
        &text,
        &format!("{D}.cookie_name"),
        "used only with policy = \"cookie\"",
    );
}

#[test]
fn rules_policy_needs_rules_or_default() {
    let text = edit(
        "policy = \"url-hash\"\nhot_paths = [\"/static/\"]",
        "policy = \"rules\"",
    );
    check_key(
        &text,
        &format!("{D}.rules"),
        "needs at least one [[services.dispatch.rules]] or a default_member",
    );
    let text = edit(
        "policy = \"url-hash\"\nhot_paths = [\"/static/\"]",
        "policy = \"rules\"\ndefault_member = \"srv2\"",
    );
    load(&text).expect("rules policy with only a default");
}

fn with_rules(rules: &str) -> String {
    edit(
        "policy = \"url-hash\"\nhot_paths = [\"/static/\"]",
        "policy = \"rules\"",
    )
    .replace(
        "request_timeout_ms = 5000\n",
        &format!("request_timeout_ms = 5000\n{rules}"),
    )
}

#[test]
fn rules_name_members_and_prefixes() {
    let ok = "[[services.dispatch.rules]]\nhost = \"a.example\"\nprefix = \"/api/\"\nmember = \"srv2\"\n";
    load(&with_rules(ok)).expect("valid rule");
    let text = with_rules(&format!(
        "{ok}[[services.dispatch.rules]]\nmember = \"srv7\"\n"
    ));
    let problem = only_problem(&text);
    assert_eq!(problem.key, format!("{D}.rules[1].member"));
    assert!(problem
        .reason
        .contains("'srv7' is not the name of any [[cluster.members]]"));
    assert_eq!(
        problem.location.map(|l| l.line),
        Some(line_of(&text, "member = \"srv7\""))
    );
    let text = with_rules("[[services.dispatch.rules]]\nprefix = \"api\"\nmember = \"srv2\"\n");
    check_key(
        &text,
        &format!("{D}.rules[0].prefix"),
        "must start with '/' (got 'api')",
    );
    let text = with_rules("[[services.dispatch.rules]]\nhost = \"\"\nmember = \"srv2\"\n");
    check_key(&text, &format!("{D}.rules[0].host"), "is not a host name");
    // Rules with another policy would be ignored: rejected.
    let text = BASE.replace(
        "request_timeout_ms = 5000\n",
        &format!("request_timeout_ms = 5000\n{ok}"),
    );
    check_key(
        &text,
        &format!("{D}.rules"),
        "used only with policy = \"rules\"",
    );
}

#[test]
fn default_member_exists_and_pass_to_default_needs_it() {
    check(
        "request_timeout_ms = 5000",
        "request_timeout_ms = 5000\ndefault_member = \"nope\"",
        &format!("{D}.default_member"),
        "'nope' is not the name of any [[cluster.members]]",
    );
    let text = edit(
        "request_timeout_ms = 5000",
        "request_timeout_ms = 5000\non_bad_request = \"pass-to-default\"",
    );
    check_key(
        &text,
        &format!("{D}.on_bad_request"),
        "\"pass-to-default\" needs dispatch.default_member",
    );
}

/// DTS Fig. 9 keys (issue 15): `local_paths` as `hot_paths` (each starts
/// with `/`, none twice), `hot_path_mode` needs hot paths, `hash_key` needs
/// url-hash.
#[test]
fn fig9_local_paths_hot_path_mode_and_hash_key() {
    const AT: &str = "hot_paths = [\"/static/\"]";
    let with = |extra: &str| edit(AT, &format!("{AT}\n{extra}"));
    let cfg = load(&with(
        "local_paths = [\"/cgi/\", \"/img/small/\"]\nhot_path_mode = \"local\"\nhash_key = \"uri\"",
    ))
    .unwrap();
    let d = cfg
        .services
        .iter()
        .find_map(|s| s.dispatch.as_ref())
        .unwrap();
    assert_eq!(d.local_paths, ["/cgi/", "/img/small/"]);
    assert_eq!(d.hot_path_mode, shoal_config::HotPathMode::Local);
    assert_eq!(d.hash_key, shoal_config::UrlHashKey::Uri);
    check_key(
        &with("local_paths = [\"/cgi/\", \"cgi\"]"),
        &format!("{D}.local_paths[1]"),
        "must start with '/' (got 'cgi')",
    );
    check_key(
        &with("local_paths = [\"/cgi/\", \"/cgi/\"]"),
        &format!("{D}.local_paths[1]"),
        "local path",
    );
    check_key(
        &edit(AT, "hot_path_mode = \"local\""),
        &format!("{D}.hot_path_mode"),
        "there are none",
    );
    let text = edit(AT, "hash_key = \"uri\"")
        .replace("policy = \"url-hash\"", "policy = \"least-loaded\"");
    check_key(
        &text,
        &format!("{D}.hash_key"),
        "used only with policy = \"url-hash\"",
    );
}

#[test]
fn hot_paths_start_with_slash_and_need_url_hash() {
    check(
        "hot_paths = [\"/static/\"]",
        "hot_paths = [\"/static/\", \"img/\"]",
        &format!("{D}.hot_paths[1]"),
        "must start with '/' (got 'img/')",
    );
    let text = edit(
        "hot_paths = [\"/static/\"]",
        "hot_paths = [\"/static/\", \"/static/\"]",
    );
    let problem = only_problem(&text);
    assert_eq!(problem.key, format!("{D}.hot_paths[1]"));
    assert_eq!(problem.location.map(|l| l.column), Some(26));
    let text = edit("policy = \"url-hash\"", "policy = \"least-loaded\"");
    check_key(
        &text,
        &format!("{D}.hot_paths"),
        "used only with policy = \"url-hash\"",
    );
}

#[test]
fn load_threshold_positive_and_for_load_policies() {
    let text = edit(
        "policy = \"url-hash\"\nhot_paths = [\"/static/\"]",
        "policy = \"lard\"\nload_threshold = 0.0",
    );
    check_key(
        &text,
        &format!("{D}.load_threshold"),
        "finite number above 0 (got 0)",
    );
    let text = edit(
        "policy = \"url-hash\"",
        "policy = \"url-hash\"\nload_threshold = 0.5",
    );
    check_key(
        &text,
        &format!("{D}.load_threshold"),
        "only with policy = \"lard\" or \"least-loaded\"",
    );
}

#[test]
fn replicate_above_is_a_gap_in_0_1_and_only_for_dtcp() {
    let key = format!("{D}.replicate_above");
    let dtcp = |value: &str| {
        edit(
            "policy = \"url-hash\"\nhot_paths = [\"/static/\"]",
            &format!("policy = \"dtcp\"\nreplicate_above = {value}"),
        )
    };
    // DTCP's own "100 requests" is the likely mistake.
    check_key(
        &dtcp("100"),
        &key,
        "must be a load difference strictly between 0 and 1 (got 100)",
    );
    check_key(&dtcp("0.0"), &key, "strictly between 0 and 1 (got 0)");
    check_key(&dtcp("1.0"), &key, "strictly between 0 and 1 (got 1)");
    check_key(&dtcp("nan"), &key, "strictly between 0 and 1 (got NaN)");
    let config = load(&dtcp("0.25")).expect("valid dtcp");
    let dispatch = config.services[1].dispatch.as_ref().expect("splice");
    assert_eq!(dispatch.policy, DispatchPolicy::Dtcp);
    assert_eq!(dispatch.replicate_above, Some(0.25));
    load(&dtcp("0.25").replace("replicate_above = 0.25", "")).expect("default gap");

    let text = edit(
        "policy = \"url-hash\"",
        "policy = \"url-hash\"\nreplicate_above = 0.5",
    );
    check_key(&text, &key, "is used only with policy = \"dtcp\"");
    let text = edit(
        "policy = \"url-hash\"\nhot_paths = [\"/static/\"]",
        "policy = \"lard\"\nreplicate_above = 0.5",
    );
    check_key(&text, &key, "is used only with policy = \"dtcp\"");
    // lard's threshold is not dtcp's.
    let text = edit(
        "policy = \"url-hash\"\nhot_paths = [\"/static/\"]",
        "policy = \"dtcp\"\nload_threshold = 0.5",
    );
    check_key(
        &text,
        &format!("{D}.load_threshold"),
        "only with policy = \"lard\" or \"least-loaded\"",
    );
}

#[test]
fn max_request_bytes_in_range() {
    let key = format!("{D}.max_request_bytes");
    check(
        "max_request_bytes = 16384",
        "max_request_bytes = 511",
        &key,
        "between 512 and 1048576 (got 511)",
    );
    check(
        "max_request_bytes = 16384",
        "max_request_bytes = 1048577",
        &key,
        "(got 1048577)",
    );
    load(&edit(
        "max_request_bytes = 16384",
        "max_request_bytes = 1048576",
    ))
    .expect("1 MiB");
}

#[test]
fn request_timeout_at_least_100ms() {
    check(
        "request_timeout_ms = 5000",
        "request_timeout_ms = 99",
        &format!("{D}.request_timeout_ms"),
        "at least 100 (got 99)",
    );
}

// ---- dataplane ----

#[test]
fn burst_size_in_range() {
    check(
        "burst_size = 32",
        "burst_size = 0",
        "dataplane.burst_size",
        "between 1 and 256 (got 0)",
    );
    check(
        "burst_size = 32",
        "burst_size = 257",
        "dataplane.burst_size",
        "(got 257)",
    );
    let text = edit("rx_queue_size = 256", "rx_queue_size = 64")
        .replace("burst_size = 32", "burst_size = 128");
    check_key(
        &text,
        "dataplane.burst_size",
        "must not exceed rx_queue_size = 64 (got 128)",
    );
}

#[test]
fn queue_sizes_power_of_two_in_range() {
    let why = "power of two between 64 and 16384";
    check(
        "rx_queue_size = 256",
        "rx_queue_size = 1000",
        "dataplane.rx_queue_size",
        why,
    );
    check(
        "tx_queue_size = 256",
        "tx_queue_size = 32",
        "dataplane.tx_queue_size",
        "(got 32)",
    );
    let text = edit("tx_queue_size = 256", "tx_queue_size = 32768")
        .replace("mbufs = 4095", "mbufs = 131071");
    check_key(&text, "dataplane.tx_queue_size", "(got 32768)");
}

#[test]
fn mbufs_cover_queues_and_bursts() {
    check(
        "mbufs = 4095",
        "mbufs = 1055",
        "dataplane.mbufs",
        "must be at least 1056 = (rx_queue_size 256 + tx_queue_size 256) x 2 ports x 1 cores \
         + burst_size 32 x 1 cores (got 1055)",
    );
    load(&edit("mbufs = 4095", "mbufs = 1056")).expect("exactly the minimum");
}

#[test]
fn cores_nonempty_and_unique() {
    check(
        "cores = [1]",
        "cores = []",
        "dataplane.cores",
        "at least one core",
    );
    check(
        "cores = [1]",
        "cores = [1, 2, 1]",
        "dataplane.cores[2]",
        "core 1 is already used by dataplane.cores[0]",
    );
}

#[test]
fn main_core_is_not_a_worker_core_and_only_for_dpdk() {
    check(
        "cores = [1]",
        "cores = [1, 2]\nmain_core = 2",
        "dataplane.main_core",
        "core 2 also runs worker 1 (dataplane.cores[1])",
    );
    let cfg = load(&edit("cores = [1]", "cores = [1, 2]\nmain_core = 0")).expect("main core 0");
    assert_eq!(cfg.dataplane.main_core, Some(0));
    let portable = edit("cores = [1]", "cores = [1]\nmain_core = 0").replacen(
        "backend = \"dpdk\"",
        "backend = \"portable\"",
        1,
    );
    let err = load(&portable).unwrap_err().to_string();
    assert!(
        err.contains("dataplane.main_core: only the dpdk backend has a main lcore"),
        "{err}"
    );
}

#[test]
fn ports_one_wire_one_kernel() {
    let why = "exactly one port with role = \"wire\" and one with role = \"kernel\"";
    let text = edit("role = \"kernel\"", "role = \"wire\"");
    check_key(
        &text,
        "dataplane.ports",
        &format!("{why} (found 2 wire, 0 kernel)"),
    );
    let start = BASE.find("[[dataplane.ports]]").expect("ports");
    let end = BASE.find("[dataplane.flow_table]").expect("flow table");
    let no_ports = format!("{}{}", &BASE[..start], &BASE[end..]);
    check_key(
        &no_ports,
        "dataplane.ports",
        "backend \"dpdk\" needs exactly one port",
    );
    // The memory backend needs no ports.
    load(&no_ports.replace("backend = \"dpdk\"", "backend = \"memory\""))
        .expect("memory, no ports");
}

#[test]
fn port_names_and_devices() {
    check(
        "name = \"kernel0\"",
        "name = \"wire0\"",
        "dataplane.ports[1].name",
        "port name wire0 is already used by dataplane.ports[0].name",
    );
    check(
        "name = \"kernel0\"",
        "name = \"\"",
        "dataplane.ports[1].name",
        "must not be empty",
    );
    check(
        "device = \"net_tap0,iface=shoal0\"",
        "device = \"\"",
        "dataplane.ports[1].device",
        "must not be empty",
    );
    check(
        "device = \"net_tap0,iface=shoal0\"",
        "device = \"net_af_packet0,iface=eth0\"",
        "dataplane.ports[1].device",
        "device net_af_packet0,iface=eth0 is already used by dataplane.ports[0].device",
    );
    let text = edit("backend = \"dpdk\"", "backend = \"portable\"")
        .replace("net_tap0,iface=shoal0", "shoal0");
    check_key(
        &text,
        "dataplane.ports[0].device",
        "backend \"portable\" takes a Linux interface name",
    );
    load(&text.replace("net_af_packet0,iface=eth0", "eth0")).expect("portable with interfaces");
}

#[test]
fn eal_args_only_for_dpdk() {
    let text = edit(
        "backend = \"dpdk\"",
        "backend = \"memory\"\neal_args = [\"--no-pci\"]",
    );
    check_key(
        &text,
        "dataplane.eal_args",
        "apply only to backend = \"dpdk\" (backend is \"memory\")",
    );
}

#[test]
fn memory_mb_without_hugepages() {
    check(
        "memory_mb = 256",
        "memory_mb = 0",
        "dataplane.memory_mb",
        "above 0 when hugepages = false",
    );
    load(
        &edit("hugepages = false", "hugepages = true").replace("memory_mb = 256", "memory_mb = 0"),
    )
    .expect("memory_mb unused with hugepages");
}

#[test]
fn flow_capacity_in_range() {
    let key = "dataplane.flow_table.capacity";
    check(
        "capacity = 65536",
        "capacity = 0",
        key,
        "between 1 and 67108864 (got 0)",
    );
    check(
        "capacity = 65536",
        "capacity = 67108865",
        key,
        "(got 67108865)",
    );
}

#[test]
fn flow_timeouts_nonzero_and_syn_shorter() {
    let t = "dataplane.flow_table.timeouts";
    check(
        "closing_s = 10",
        "closing_s = 0",
        &format!("{t}.closing_s"),
        "must be above 0",
    );
    check(
        "tombstone_s = 60",
        "tombstone_s = 0",
        &format!("{t}.tombstone_s"),
        "must be above 0",
    );
    check(
        "syn_ms = 5000",
        "syn_ms = 0",
        &format!("{t}.syn_ms"),
        "must be above 0",
    );
    check(
        "established_s = 300",
        "established_s = 0",
        &format!("{t}.established_s"),
        "must be above 0",
    );
    check(
        "syn_ms = 5000",
        "syn_ms = 300000",
        &format!("{t}.syn_ms"),
        "must be shorter than established_s (300 s = 300000 ms), got 300000 ms",
    );
}

// ---- control ----

#[test]
fn interval_and_failure_timeout() {
    check(
        "interval_ms = 200",
        "interval_ms = 9",
        "control.interval_ms",
        "at least 10 (got 9)",
    );
    check(
        "failure_timeout_ms = 1000",
        "failure_timeout_ms = 799",
        "control.failure_timeout_ms",
        "at least 4 x interval_ms = 800 (got 799)",
    );
}

#[test]
fn load_smoothing_in_range() {
    let why = "above 0 and at most 1";
    check(
        "load_smoothing = 0.3",
        "load_smoothing = 0.0",
        "control.load_smoothing",
        why,
    );
    check(
        "load_smoothing = 0.3",
        "load_smoothing = 1.5",
        "control.load_smoothing",
        "(got 1.5)",
    );
    load(&edit("load_smoothing = 0.3", "load_smoothing = 1.0")).expect("1 is allowed");
}

#[test]
fn load_weights_in_range_and_not_all_zero() {
    check(
        "host_cpu = 0.5",
        "host_cpu = 1.5",
        "control.load.weights.host_cpu",
        "must be between 0 and 1 (got 1.5)",
    );
    check(
        "app = 1.0 }",
        "app = -0.1 }",
        "control.load.weights.app",
        "must be between 0 and 1 (got -0.1)",
    );
    check_key(
        &edit(
            "weights = { busy = 1.0, connections = 1.0, host_cpu = 0.5, app = 1.0 }",
            "weights = { busy = 0.0, connections = 0, host_cpu = 0.0, app = 0.0 }",
        ),
        "control.load.weights",
        "every weight is 0",
    );
    // Leaving weights out gives 1 each; one of them 0 is fine.
    let cfg = load(&edit(
        "weights = { busy = 1.0, connections = 1.0, host_cpu = 0.5, app = 1.0 }",
        "weights = { host_cpu = 0 }",
    ))
    .expect("weights default to 1");
    assert_eq!(
        cfg.control.load.weights,
        shoal_config::LoadWeights {
            host_cpu: 0.0,
            ..shoal_config::LoadWeights::default()
        }
    );
}

#[test]
fn load_pid_files_absolute_and_app_cpus_at_least_one() {
    let text = edit(
        r#"app_pid_files = ["/run/nginx.pid", "/run/php-fpm.pid"]"#,
        r#"app_pid_files = ["/run/nginx.pid", "run/php-fpm.pid"]"#,
    );
    let problem = only_problem(&text);
    assert_eq!(problem.key, "control.load.app_pid_files[1]");
    assert_eq!(
        problem.reason,
        "must be an absolute path (got \"run/php-fpm.pid\"), e.g. \"/run/nginx.pid\""
    );
    let line = line_of(&text, "app_pid_files");
    assert_eq!(problem.location, Some(Location { line, column: 36 }));
    assert_eq!(
        load(&text).unwrap_err().to_string(),
        format!(
            "cfg/test.toml:{line}:36: control.load.app_pid_files[1]: must be an absolute path \
             (got \"run/php-fpm.pid\"), e.g. \"/run/nginx.pid\""
        )
    );
    check(
        r#"app_pid_files = ["/run/nginx.pid", "/run/php-fpm.pid"]"#,
        r#"app_pid_files = ["/run/nginx.pid", "/run/nginx.pid"]"#,
        "control.load.app_pid_files[1]",
        "pid file \"/run/nginx.pid\" is already used by control.load.app_pid_files[0]",
    );
    check(
        "app_cpus = 2",
        "app_cpus = 0",
        "control.load.app_cpus",
        "must be at least 1",
    );
    // Without [control.load]: no pid files, CPUs from the host, weights 1.
    let at = BASE.find("[control.load]").expect("control.load");
    let cfg = load(&BASE[..at]).expect("control.load is optional");
    assert_eq!(cfg.control.load, shoal_config::LoadSettings::default());
    assert!(cfg.control.load.app_pid_files.is_empty());
    assert_eq!(cfg.control.load.app_cpus, None);
    assert_eq!(
        cfg.control.load.weights,
        shoal_config::LoadWeights::default()
    );
}

#[test]
fn networks_needed_for_several_members() {
    let at = BASE.find("[[control.networks]]").expect("networks");
    check_key(
        &BASE[..at],
        "control.networks",
        "a cluster of 3 members needs at least one [[control.networks]]",
    );
}

#[test]
fn network_has_multicast_or_peers() {
    let text = edit("peers = [\"198.18.0.12:7946\", \"198.18.0.13:7946\"]\n", "");
    let problem = only_problem(&text);
    assert_eq!(problem.key, "control.networks[0]");
    assert!(problem
        .reason
        .contains("needs a multicast group or at least one unicast peer"));
    assert_eq!(
        problem.location.map(|l| l.line),
        Some(line_of(&text, "[[control.networks]]"))
    );
    let text = edit(
        "peers = [\"198.18.0.12:7946\", \"198.18.0.13:7946\"]",
        "multicast = \"198.18.0.255:7946\"",
    );
    check_key(
        &text,
        "control.networks[0].multicast",
        "198.18.0.255 is not a multicast address",
    );
    load(&edit(
        "peers = [\"198.18.0.12:7946\", \"198.18.0.13:7946\"]",
        "multicast = \"239.192.0.1:7946\"",
    ))
    .expect("multicast network");
    check(
        "peers = [\"198.18.0.12:7946\", \"198.18.0.13:7946\"]",
        "peers = [\"198.18.0.12:7946\", \"0.0.0.0:7946\"]",
        "control.networks[0].peers[1]",
        "0.0.0.0:7946 is not a unicast address and port",
    );
}

#[test]
fn network_names_unique() {
    let second = "\n[[control.networks]]\nname = \"lab\"\nbind = \"198.19.0.11:7946\"\nmulticast = \"239.192.0.1:7946\"\n";
    let text = format!("{BASE}{second}");
    let problem = only_problem(&text);
    assert_eq!(problem.key, "control.networks[1].name");
    assert_eq!(
        problem.reason,
        "network name 'lab' is already used by control.networks[0].name"
    );
    assert_eq!(
        problem.location.map(|l| l.line),
        Some(text.lines().count() - 2)
    );
}

#[test]
fn metrics_and_admin_listen_differ() {
    check(
        "admin_listen = \"127.0.0.1:9465\"",
        "admin_listen = \"127.0.0.1:9464\"",
        "control.admin_listen",
        "127.0.0.1:9464 clashes with metrics_listen = 127.0.0.1:9464",
    );
    check(
        "admin_listen = \"127.0.0.1:9465\"",
        "admin_listen = \"0.0.0.0:9464\"",
        "control.admin_listen",
        "clashes with metrics_listen",
    );
}

#[test]
fn syn_proxy_defaults_to_auto_for_l4_tcp_services_only() {
    use shoal_config::{SynProxy, DEFAULT_SYN_PROXY_HALF_OPEN};
    let config = load(BASE).expect("BASE is valid");
    let modes: Vec<SynProxy> = config
        .services
        .iter()
        .map(shoal_config::Service::syn_proxy)
        .collect();
    // local, splice, dpr-mac
    assert_eq!(modes, [SynProxy::Auto, SynProxy::Off, SynProxy::Auto]);
    assert_eq!(
        config.services[0].syn_proxy_half_open(),
        DEFAULT_SYN_PROXY_HALF_OPEN
    );
    let text = edit(
        "mode = \"local\"",
        "mode = \"local\"\nsyn_proxy = \"auto\"\nsyn_proxy_half_open = 64",
    )
    .replace(
        "mode = \"dpr-mac\"",
        "mode = \"dpr-mac\"\nsyn_proxy = \"on\"",
    );
    let config = load(&text).expect("written out");
    assert_eq!(config.services[0].syn_proxy_half_open(), 64);
    assert_eq!(config.services[2].syn_proxy(), SynProxy::On);
    let off = load(&edit(
        "mode = \"local\"",
        "mode = \"local\"\nsyn_proxy = \"off\"",
    ))
    .expect("off");
    assert_eq!(off.services[0].syn_proxy(), SynProxy::Off);
}

#[test]
fn syn_proxy_only_for_l4_tcp_services() {
    check(
        "mode = \"splice\"",
        "mode = \"splice\"\nsyn_proxy = \"on\"",
        "services[1].syn_proxy",
        "mode = \"splice\" always answers SYNs with SYN cookies itself; the SYN proxy \
         applies only to mode = \"local\", \"dpr-mac\" and \"dpr-ipip\". Remove it",
    );
    check(
        "mode = \"splice\"",
        "mode = \"splice\"\nsyn_proxy_half_open = 100",
        "services[1].syn_proxy_half_open",
        "mode = \"splice\" always answers SYNs with SYN cookies itself",
    );
    check(
        "mode = \"dpr-mac\"",
        "mode = \"dpr-mac\"\nprotocol = \"udp\"\nsyn_proxy = \"off\"",
        "services[2].syn_proxy",
        "protocol = \"udp\" has no handshake to proxy; the SYN proxy applies only to TCP \
         services. Remove it",
    );
}

#[test]
fn syn_proxy_half_open_only_with_auto_and_above_0() {
    check(
        "mode = \"local\"",
        "mode = \"local\"\nsyn_proxy = \"on\"\nsyn_proxy_half_open = 100",
        "services[0].syn_proxy_half_open",
        "is used only with syn_proxy = \"auto\" (syn_proxy is \"on\"); remove it or set \
         syn_proxy = \"auto\"",
    );
    check(
        "mode = \"local\"",
        "mode = \"local\"\nsyn_proxy_half_open = 0",
        "services[0].syn_proxy_half_open",
        "must be at least 1 (got 0); to proxy every SYN set syn_proxy = \"on\"",
    );
}

#[test]
fn syn_proxy_value_is_checked_when_parsed() {
    let text = edit(
        "mode = \"local\"",
        "mode = \"local\"\nsyn_proxy = \"always\"",
    );
    match load(&text) {
        Err(ConfigError::Parse { problem, .. }) => {
            assert_eq!(problem.key, "services[0].syn_proxy", "{problem:?}");
            assert!(
                problem.reason.contains("`off`, `on`, `auto`"),
                "{}",
                problem.reason
            );
            assert_eq!(
                problem.location.map(|l| l.line),
                Some(line_of(&text, "syn_proxy = \"always\""))
            );
        }
        other => panic!("expected a parse problem, got {other:?}"),
    }
}

/// `[[services.dispatch.classes]]` and `[services.dispatch.scheduling]`
/// (issue 15): a valid set loads; each broken rule is named by its key.
#[test]
fn request_classes_and_scheduling() {
    const AT: &str = "request_timeout_ms = 5000\n";
    let classes = |body: &str| edit(AT, &format!("{AT}{body}"));
    let valid = classes(
        r#"
[services.dispatch.scheduling]
policy = "weighted-fair"
max_active = 64

[[services.dispatch.classes]]
name = "interactive"
methods = ["GET", "HEAD"]
path_regex = '^/api/v[0-9]+/'
priority = 0
weight = 8
min_share = 0.1

[[services.dispatch.classes]]
name = "bulk"
path_prefix = "/downloads/"
weight = 1
max_in_flight = 200
max_rate = 50.5
on_refuse = "redirect"
redirect_to = "https://mirror.example/"
redirect_status = 307

[[services.dispatch.classes]]
name = "default"
max_queue = 16
busy_body = "<h1>busy</h1>"
retry_after_s = 10
"#,
    );
    let config = load(&valid).expect("valid classes");
    let d = config.services[1].dispatch.as_ref().expect("dispatch");
    assert_eq!(d.classes.len(), 3);
    assert_eq!(
        d.scheduling.as_ref().map(|s| (s.policy, s.max_active)),
        Some((shoal_config::SchedulingPolicy::WeightedFair, 64))
    );
    assert_eq!(d.classes[1].redirect_status, 307);
    assert_eq!(d.classes[2].max_queue, 16);
    assert_eq!(d.classes[0].max_queue, shoal_config::DEFAULT_MAX_QUEUE);

    let one = |body: &str, key: &str, reason: &str| {
        let text = classes(&format!("\n[[services.dispatch.classes]]\n{body}\n"));
        let problem = only_problem(&text);
        assert_eq!(problem.key, format!("{D}.{key}"), "{problem:?}");
        assert!(problem.reason.contains(reason), "{key}: {}", problem.reason);
        let last = body.lines().last().expect("a line");
        assert_eq!(
            problem.location.map(|l| l.line),
            Some(line_of(&text, last)),
            "{problem:?}"
        );
    };
    one(
        "name = \"x\"\npath_regex = \"(\"",
        "classes[0].path_regex",
        "not a regular expression",
    );
    one("name = \"a b\"", "classes[0].name", "not a class name");
    one(
        "name = \"x\"\nmethods = [\"G T\"]",
        "classes[0].methods[0]",
        "not an HTTP method",
    );
    one(
        "name = \"x\"\npath_prefix = \"api\"",
        "classes[0].path_prefix",
        "must start with '/'",
    );
    one(
        "name = \"x\"\nheader = \"a:b\"",
        "classes[0].header",
        "not a valid header name",
    );
    one(
        "name = \"x\"\nweight = 0",
        "classes[0].weight",
        "out of range 1-1000",
    );
    one(
        "name = \"x\"\nmin_share = 1.0",
        "classes[0].min_share",
        "strictly between 0 and 1",
    );
    one(
        "name = \"x\"\nmax_active = 0",
        "classes[0].max_active",
        "at least 1",
    );
    one(
        "name = \"x\"\nmax_queue = 0",
        "classes[0].max_queue",
        "out of range 1-65536",
    );
    one(
        "name = \"x\"\nmax_wait_ms = 0",
        "classes[0].max_wait_ms",
        "out of range",
    );
    one(
        "name = \"x\"\nmax_rate = -1.0",
        "classes[0].max_rate",
        "not a positive number",
    );
    one(
        "name = \"x\"\nmax_load = nan",
        "classes[0].max_load",
        "not a positive load",
    );
    let text = classes("\n[[services.dispatch.classes]]\nname = \"x\"\non_refuse = \"redirect\"\n");
    check_key(
        &text,
        &format!("{D}.classes[0].redirect_to"),
        "needs redirect_to",
    );
    one(
        "name = \"x\"\non_refuse = \"redirect\"\nredirect_to = \"/elsewhere\"",
        "classes[0].redirect_to",
        "not an absolute http:// or https:// URL",
    );
    one(
        "name = \"x\"\nredirect_to = \"http://a/\"",
        "classes[0].redirect_to",
        "only with on_refuse",
    );
    one(
        "name = \"x\"\nredirect_status = 301",
        "classes[0].redirect_status",
        "not 302 or 307",
    );
    let text =
        classes("\n[[services.dispatch.classes]]\nname = \"default\"\npath_prefix = \"/x/\"\n");
    check_key(
        &text,
        &format!("{D}.classes[0]"),
        "takes no match conditions",
    );

    let text = classes(
        "\n[[services.dispatch.classes]]\nname = \"x\"\n\n[[services.dispatch.classes]]\nname = \"x\"\n",
    );
    check_key(
        &text,
        &format!("{D}.classes[1].name"),
        "class name x is already used",
    );
    let text = classes(
        "\n[[services.dispatch.classes]]\nname = \"a\"\nmin_share = 0.6\n\n\
         [[services.dispatch.classes]]\nname = \"b\"\nmin_share = 0.6\n",
    );
    check_key(&text, &format!("{D}.classes"), "add up to 1.2");
    let text = classes("\n[services.dispatch.scheduling]\nmax_active = 0\n");
    check_key(&text, &format!("{D}.scheduling.max_active"), "at least 1");
    let text = classes("\n[services.dispatch.scheduling]\npolicy = \"fifo\"\n");
    assert!(
        load(&text).is_err_and(|e| e.to_string().contains("max_active")),
        "scheduling needs max_active"
    );
}

/// `[services.dispatch.sticky]` (issue 15): defaults, and each bad value an
/// error naming its key.
#[test]
fn sticky_sessions_are_checked() {
    const AT: &str = "request_timeout_ms = 5000\n";
    let classes = |body: &str| edit(AT, &format!("{AT}{body}"));
    let text = classes("\n[services.dispatch.sticky]\n");
    let cfg = load(&text).unwrap();
    let st = cfg
        .services
        .iter()
        .find_map(|s| s.dispatch.as_ref()?.sticky.clone())
        .unwrap();
    assert_eq!(st, shoal_config::Sticky::default());
    assert_eq!(
        (st.cookie.as_str(), st.insert, st.max_age_s),
        ("shoal_member", true, 3600)
    );
    for (body, key, why) in [
        (
            "cookie = \"a b\"",
            "sticky.cookie",
            "not a valid cookie name",
        ),
        ("max_age_s = 0", "sticky.max_age_s", "must be 1 to"),
        ("max_age_s = 99999999", "sticky.max_age_s", "must be 1 to"),
        (
            "url_param = \"\"",
            "sticky.url_param",
            "not a valid parameter name",
        ),
        (
            "query_key = \"a=b\"",
            "sticky.query_key",
            "not a valid parameter name",
        ),
    ] {
        let text = classes(&format!("\n[services.dispatch.sticky]\n{body}\n"));
        check_key(&text, &format!("{D}.{key}"), why);
    }
    let text = classes("\n[services.dispatch.sticky]\ninsrt = true\n");
    assert!(load(&text).is_err_and(|e| e.to_string().contains("insrt")));
}

/// `cluster.members.role` (issue 15, always handoff): only when every
/// service splices with frequent handoff, with a cluster key, a member that
/// inspects and one that serves, and no rule naming a front end.
#[test]
fn member_roles_need_splice_services_and_a_key() {
    use shoal_config::{DispatchRule, HandoffMode, MemberRole, Mode};
    use MemberRole::{BackEnd, Both, FrontEnd};
    let front = edit(
        "name = \"srv1\"\naddress = \"198.18.0.11\"",
        "name = \"srv1\"\naddress = \"198.18.0.11\"\nrole = \"front-end\"",
    );
    let keys: Vec<String> = problems(&front).into_iter().map(|p| p.key).collect();
    assert_eq!(
        keys,
        ["cluster.key_file", "services[0].mode", "services[2].mode"]
    );

    // Valid: the splice service alone, a key, srv1 front end, srv2 and srv3 back ends.
    let mut cfg = load(BASE).unwrap();
    cfg.services.retain(|s| s.mode == Mode::Splice);
    cfg.cluster.key_file = Some("/etc/shoal/cluster.key".into());
    let roles = |cfg: &mut Config, roles: [MemberRole; 3]| {
        for (m, r) in cfg.cluster.members.iter_mut().zip(roles) {
            m.role = r;
        }
    };
    roles(&mut cfg, [FrontEnd, BackEnd, BackEnd]);
    cfg.validate().unwrap();
    roles(&mut cfg, [FrontEnd, Both, BackEnd]);
    cfg.validate().unwrap();
    let only = |cfg: &Config| {
        let p = cfg.validate().unwrap_err();
        assert_eq!(p.len(), 1, "{p:#?}");
        (p[0].key.clone(), p[0].reason.clone())
    };
    roles(&mut cfg, [BackEnd, BackEnd, BackEnd]);
    let (key, reason) = only(&cfg);
    assert_eq!(key, "cluster.members[0].role");
    assert!(reason.contains("no member inspects"), "{reason}");
    roles(&mut cfg, [FrontEnd, FrontEnd, FrontEnd]);
    let (key, reason) = only(&cfg);
    assert_eq!(key, "cluster.members[0].role");
    assert!(reason.contains("no member serves"), "{reason}");
    roles(&mut cfg, [FrontEnd, BackEnd, BackEnd]);
    let d = cfg.services[0].dispatch.as_mut().unwrap();
    d.handoff = HandoffMode::Rare;
    let (key, reason) = only(&cfg);
    assert_eq!(key, "services[0].dispatch.handoff");
    assert!(reason.contains("use \"frequent\""), "{reason}");
    let d = cfg.services[0].dispatch.as_mut().unwrap();
    d.handoff = HandoffMode::Frequent;
    d.policy = DispatchPolicy::Rules;
    d.hot_paths.clear();
    d.rules = vec![DispatchRule {
        host: None,
        prefix: "/".into(),
        member: "srv1".into(),
    }];
    let (key, reason) = only(&cfg);
    assert_eq!(key, "services[0].dispatch.rules[0].member");
    assert!(reason.contains("is a front-end"), "{reason}");
}

#[test]
fn routed_topology_refuses_dpr_mac_rare_splice_stateful_dpr_and_the_syn_proxy() {
    let text = edit("memory_mb = 256", "memory_mb = 256\ntopology = \"routed\"");
    let found = problems(&text);
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["services[2].mode"], "{found:#?}");
    assert!(
        found[0].reason.contains("dpr-mac") && found[0].reason.contains("routed"),
        "{}",
        found[0].reason
    );

    // Local, splice (frequent handoff) and stateless dpr-ipip: valid.
    let valid = text.replace(
        "mode = \"dpr-mac\"",
        "mode = \"dpr-ipip\"\nstate = \"stateless\"",
    );
    let config = load(&valid).expect("routed local + splice + stateless dpr-ipip is valid");
    assert_eq!(config.dataplane.topology, shoal_config::Topology::Routed);
    let rare = valid.replace(
        "[services.dispatch]\npolicy = \"url-hash\"",
        "[services.dispatch]\nhandoff = \"rare\"\npolicy = \"url-hash\"",
    );
    check_key(&rare, "services[1].dispatch.handoff", "frequent");

    let stateful = valid.replace("state = \"stateless\"\n", "");
    check_key(&stateful, "services[2].state", "state = \"stateless\"");
    let proxied = valid.replace(
        "protocol = \"tcp\"\nmode = \"local\"",
        "protocol = \"tcp\"\nmode = \"local\"\nsyn_proxy = \"on\"",
    );
    check_key(&proxied, "services[0].syn_proxy", "routed");
    let off = valid.replace(
        "protocol = \"tcp\"\nmode = \"local\"",
        "protocol = \"tcp\"\nmode = \"local\"\nsyn_proxy = \"off\"",
    );
    load(&off).expect("syn_proxy = \"off\" is fine routed");
}

#[test]
fn topology_defaults_to_segment_and_is_not_written_back() {
    let config = load(BASE).expect("valid");
    assert_eq!(config.dataplane.topology, shoal_config::Topology::Segment);
    let text = toml::to_string(&config).expect("serialises");
    assert!(!text.contains("topology"), "{text}");
}

/// `[control.bgp]` (routed mode's announcer): each broken key is named.
#[test]
fn control_bgp_keys() {
    const BGP: &str = r#"
[control.bgp]
birdc = "/usr/sbin/birdc"
socket = "/run/bird/bird.ctl"
protocol = "shoal_vips"
health_url = "http://127.0.0.1:80/"
health_interval_ms = 500
health_timeout_ms = 400
health_failures = 3
lease_lapse_ms = 3000
"#;
    let good = format!("{BASE}{BGP}");
    let cfg = load(&good).expect("valid [control.bgp]");
    let bgp = cfg.control.bgp.expect("bgp set");
    assert!(bgp.enabled);
    assert_eq!(bgp.shutdown_grace_ms, 1000);
    assert_eq!(
        load(&format!("{BASE}\n[control.bgp]\n"))
            .unwrap()
            .control
            .bgp,
        Some(shoal_config::BgpSettings::default())
    );
    assert_eq!(load(BASE).unwrap().control.bgp, None);
    for (from, to, key, reason) in [
        (
            "birdc = \"/usr/sbin/birdc\"",
            "birdc = \"birdc\"",
            "control.bgp.birdc",
            "must be an absolute path",
        ),
        (
            "protocol = \"shoal_vips\"",
            "protocol = \"shoal-vips\"",
            "control.bgp.protocol",
            "must be a BIRD protocol name",
        ),
        (
            "health_url = \"http://127.0.0.1:80/\"",
            "health_url = \"http://localhost/\"",
            "control.bgp.health_url",
            "the host must be an IPv4 address",
        ),
        (
            "health_timeout_ms = 400",
            "health_timeout_ms = 600",
            "control.bgp.health_timeout_ms",
            "at most health_interval_ms = 500",
        ),
        (
            "health_failures = 3",
            "health_failures = 0",
            "control.bgp.health_failures",
            "must be at least 1",
        ),
        (
            "lease_lapse_ms = 3000",
            "lease_lapse_ms = 500",
            "control.bgp.lease_lapse_ms",
            "must be at least control.failure_timeout_ms = 1000",
        ),
    ] {
        let text = good.replacen(from, to, 1);
        let problem = only_problem(&text);
        assert_eq!(problem.key, key, "{problem:?}");
        assert!(problem.reason.contains(reason), "{key}: {}", problem.reason);
        assert_eq!(problem.location.map(|l| l.line), Some(line_of(&text, to)));
    }
    let err = load(&format!("{BASE}{BGP}birdctl = \"x\"\n")).unwrap_err();
    assert!(err.to_string().contains("birdctl"), "{err}");
}
