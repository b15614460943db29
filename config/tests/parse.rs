//! Errors found while parsing: TOML syntax, unknown keys, wrong types, missing
//! required keys; each names the file, the key, the line and the column. Also
//! what loading does beyond parsing (relative paths, read errors).

use std::io;
use std::path::{Path, PathBuf};

use shoal_config::{load_file, load_str, Config, ConfigError, Location, Mode, Problem};

const MINI: &str = r#"[cluster]
vips = ["198.18.0.100"]
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

[[services]]
name = "web"
vip = "198.18.0.100"
port = 80
mode = "splice"

[services.selection]
vnodes = 8

[services.dispatch]
policy = "rules"

[[services.dispatch.rules]]
prefix = "/api/"
member = "srv2"

[dataplane]
backend = "memory"

[[dataplane.ports]]
name = "wire0"
role = "wire"
device = "w"

[[dataplane.ports]]
name = "kernel0"
role = "kernel"
device = "k"

[dataplane.flow_table]
capacity = 1024

[dataplane.flow_table.timeouts]
syn_ms = 1000

[control]
interval_ms = 100

[[control.networks]]
name = "lab"
bind = "198.18.0.11:7946"
peers = ["198.18.0.12:7946"]
"#;

const FILE: &str = "cfg/test.toml";

fn load(text: &str) -> Result<Config, ConfigError> {
    load_str(text, Path::new(FILE))
}

fn parse_problem(text: &str) -> Problem {
    match load(text) {
        Err(ConfigError::Parse { file, problem }) => {
            assert_eq!(file, Path::new(FILE));
            problem
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// MINI with `insert` added as a new line after the line `after` (which must
/// occur once), and the 1-based number of the inserted line.
fn insert_after(after: &str, insert: &str) -> (String, usize) {
    assert_eq!(
        MINI.matches(after).count(),
        1,
        "'{after}' must occur once in MINI"
    );
    let at = MINI.find(after).expect("anchor") + after.len();
    let line = MINI[..at].matches('\n').count() + 2;
    (format!("{}\n{insert}{}", &MINI[..at], &MINI[at..]), line)
}

#[test]
fn mini_is_valid() {
    let config = load(MINI).expect("MINI is valid");
    assert_eq!(config.services[0].mode, Mode::Splice);
    assert_eq!(config.services[0].selection.vnodes, 8);
}

#[test]
fn unknown_keys_are_rejected_everywhere_with_key_line_and_column() {
    let cases = [
        ("local_member = \"srv1\"", "cluster.bogus"),
        ("name = \"srv2\"", "cluster.members[1].bogus"),
        ("port = 80", "services[0].bogus"),
        ("vnodes = 8", "services[0].selection.bogus"),
        ("policy = \"rules\"", "services[0].dispatch.bogus"),
        ("prefix = \"/api/\"", "services[0].dispatch.rules[0].bogus"),
        ("backend = \"memory\"", "dataplane.bogus"),
        ("device = \"k\"", "dataplane.ports[1].bogus"),
        ("capacity = 1024", "dataplane.flow_table.bogus"),
        ("syn_ms = 1000", "dataplane.flow_table.timeouts.bogus"),
        ("interval_ms = 100", "control.bogus"),
        ("bind = \"198.18.0.11:7946\"", "control.networks[0].bogus"),
    ];
    for (after, key) in cases {
        let (text, line) = insert_after(after, "bogus = 1");
        let problem = parse_problem(&text);
        assert_eq!(problem.key, key);
        assert_eq!(
            problem.location,
            Some(Location { line, column: 1 }),
            "{key}"
        );
        assert!(
            problem.reason.starts_with("unknown key `bogus`, expected "),
            "{problem:?}"
        );
        let shown = load(&text).expect_err("unknown key").to_string();
        assert!(
            shown.starts_with(&format!("{FILE}:{line}:1: {key}: unknown key `bogus`")),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), 1, "{shown}");
    }
}

#[test]
fn unknown_top_level_key_and_section() {
    let text = format!("colour = \"blue\"\n{MINI}");
    let shown = load(&text).expect_err("unknown key").to_string();
    assert_eq!(
        shown,
        "cfg/test.toml:1:1: colour: unknown key `colour`, expected one of `cluster`, \
         `services`, `dataplane`, `control`"
    );
    let text = format!("{MINI}\n[metrics]\nlisten = \"127.0.0.1:1\"\n");
    let problem = parse_problem(&text);
    assert_eq!(problem.key, "metrics");
    assert_eq!(problem.location.map(|l| l.column), Some(2));
}

#[test]
fn unknown_key_in_an_inline_table() {
    let text = MINI.replace(
        "[services.selection]\nvnodes = 8\n",
        "selection = { vnodes = 8, vnode = 9 }\n",
    );
    let problem = parse_problem(&text);
    assert_eq!(problem.key, "services[0].selection.vnode");
    let line = text
        .lines()
        .position(|l| l.starts_with("selection ="))
        .expect("line")
        + 1;
    assert_eq!(problem.location, Some(Location { line, column: 27 }));
    assert!(problem.reason.starts_with("unknown key `vnode`"));
}

#[test]
fn syntax_error_shows_file_line_and_column() {
    let text = MINI.replace("port = 80", "port = 80 80");
    let err = load(&text).expect_err("syntax error");
    let line = text
        .lines()
        .position(|l| l == "port = 80 80")
        .expect("line")
        + 1;
    assert_eq!(
        err.problems()[0].location,
        Some(Location { line, column: 11 })
    );
    let shown = err.to_string();
    assert_eq!(
        shown,
        format!("{FILE}:{line}:11: invalid TOML: expected newline, `#`")
    );
    assert_eq!(shown.lines().count(), 1, "{shown}");
}

#[test]
fn missing_cluster_section_says_so() {
    let text = &MINI[MINI.find("[[services]]").expect("services")..];
    let problem = parse_problem(text);
    assert_eq!(problem.key, "cluster");
    assert_eq!(problem.location, None);
    let shown = load(text).expect_err("no cluster").to_string();
    assert!(
        shown.starts_with("cfg/test.toml: cluster: the [cluster] section is missing"),
        "{shown}"
    );
    assert!(load("")
        .expect_err("empty")
        .to_string()
        .contains("[cluster] section is missing"));
}

#[test]
fn missing_required_key_names_it_and_its_table() {
    let text = MINI.replace("address = \"198.18.0.12\"\n", "");
    let problem = parse_problem(&text);
    assert_eq!(problem.key, "cluster.members[1].address");
    assert_eq!(problem.reason, "required key `address` is missing");
    let line = MINI[..MINI.find("id = 2").expect("member 2")]
        .matches('\n')
        .count();
    assert_eq!(problem.location, Some(Location { line, column: 1 }));
}

#[test]
fn wrong_types_and_values_name_the_key() {
    let cases = [
        (
            "port = 80",
            "port = \"80\"",
            "services[0].port",
            "invalid type: string \"80\", expected u16",
        ),
        (
            "port = 80",
            "port = 70000",
            "services[0].port",
            "expected u16",
        ),
        (
            "mode = \"splice\"",
            "mode = \"fast\"",
            "services[0].mode",
            "unknown variant `fast`",
        ),
        (
            "mac = \"02:00:c6:12:00:0c\"",
            "mac = \"02:00:c6:12:00\"",
            "cluster.members[1].mac",
            "'02:00:c6:12:00' is not a MAC address",
        ),
        (
            "vips = [\"198.18.0.100\"]",
            "vips = [\"198.18.0\"]",
            "cluster.vips[0]",
            "invalid IPv4 address",
        ),
        (
            "role = \"kernel\"",
            "role = \"tap\"",
            "dataplane.ports[1].role",
            "unknown variant `tap`",
        ),
        (
            "interval_ms = 100",
            "interval_ms = -1",
            "control.interval_ms",
            "invalid value",
        ),
    ];
    for (from, to, key, reason) in cases {
        let text = MINI.replacen(from, to, 1);
        let problem = parse_problem(&text);
        assert_eq!(problem.key, key, "{problem:?}");
        assert!(problem.reason.contains(reason), "{problem:?}");
        let line = text.lines().position(|l| l == to).expect("line") + 1;
        assert_eq!(problem.location.map(|l| l.line), Some(line), "{problem:?}");
    }
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let text = MINI
        .replace("local_member = \"srv1\"", "local_member = \"srv1\"\nkey_file = \"keys/cluster.key\"")
        .replace(
            "interval_ms = 100",
            "interval_ms = 100\nadmin_token_file = \"/etc/shoal/admin.token\"\nshm_path = \"shm/shoal\"",
        );
    let config = load_str(&text, Path::new("/etc/shoal/lab/srv1.toml")).expect("valid");
    assert_eq!(
        config.cluster.key_file,
        Some(PathBuf::from("/etc/shoal/lab/keys/cluster.key"))
    );
    assert_eq!(
        config.control.admin_token_file,
        Some(PathBuf::from("/etc/shoal/admin.token"))
    );
    assert_eq!(
        config.control.shm_path,
        PathBuf::from("/etc/shoal/lab/shm/shoal")
    );
    // A bare file name: paths stay relative to the working directory.
    let config = load_str(&text, Path::new("srv1.toml")).expect("valid");
    assert_eq!(
        config.cluster.key_file,
        Some(PathBuf::from("keys/cluster.key"))
    );
    // Absolute defaults are untouched.
    let config = load(MINI).expect("valid");
    assert_eq!(config.control.shm_path, PathBuf::from("/dev/shm/shoal"));
    assert_eq!(config.cluster.key_file, None);
}

#[test]
fn unreadable_file_is_an_io_error_naming_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/no-such-config.toml");
    let err = load_file(&path).expect_err("missing file");
    match &err {
        ConfigError::Io { path: p, source } => {
            assert_eq!(p, &path);
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(err.to_string().starts_with(&format!(
        "{}: cannot read the config file: ",
        path.display()
    )));
    assert!(err.problems().is_empty());
    assert_eq!(err.file(), path);
}
