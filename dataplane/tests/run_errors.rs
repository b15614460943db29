//! `shoal-dataplane run` refuses worker settings it cannot honour, naming
//! the key: a core the machine does not have, the same core twice, several
//! workers on the portable backend, a main core that is a worker's or that
//! the machine does not have.

#![allow(clippy::unwrap_used)] // test helpers: a panic is a failed test

use std::path::PathBuf;
use std::process::Command;

/// The stderr of `shoal-dataplane run` on `config` (a path from the
/// workspace root) with its `cores = [1]` line replaced by `cores_line`;
/// the run must fail.
fn run_failing(config: &str, cores_line: &str) -> String {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(config);
    let text = std::fs::read_to_string(example).unwrap();
    assert!(text.contains("cores = [1]"), "{config}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cores.toml");
    std::fs::write(&cfg, text.replace("cores = [1]", cores_line)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shoal-dataplane"))
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{cores_line} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run_with_cores(cores: &str) -> String {
    run_failing("deploy/examples/dpr-ipip.toml", &format!("cores = {cores}"))
}

#[test]
fn worker_cores_are_checked_and_named() {
    let err = run_with_cores("[0, 4000]");
    assert!(
        err.contains("dataplane.cores[1]: core 4000 does not exist or is offline"),
        "{err}"
    );
    let err = run_with_cores("[0, 0]");
    assert!(err.contains("dataplane.cores[1]"), "{err}");
    // Two cores this machine has (0 and the last online one).
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let last: u32 = online
        .trim()
        .rsplit([',', '-'])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(last > 0, "this test needs two CPUs (online: {online})");
    let err = run_with_cores(&format!("[0, {last}]"));
    assert!(
        err.contains("the portable backend runs one worker"),
        "{err}"
    );
}

#[test]
fn the_main_core_is_checked_and_named() {
    let run = |line: &str| run_failing("perf/dpdk/bench.toml", line);
    let err = run("cores = [0]\nmain_core = 4000");
    assert!(
        err.contains("dataplane.main_core: core 4000 does not exist or is offline"),
        "{err}"
    );
    let err = run("cores = [0]\nmain_core = 0");
    assert!(err.contains("dataplane.main_core"), "{err}");
    assert!(err.contains("also runs worker 0"), "{err}");
}
