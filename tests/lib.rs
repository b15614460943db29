//! End-to-end tests of Shoal. This crate holds no product code: its tests
//! (`replay.rs`, `dpr.rs`, `splice.rs`, `synproxy.rs`, and on the lab
//! `lab.rs` and `top.rs`) drive whole binaries and pipelines with generated
//! traffic and assert exact frames, counters and responses. `run.sh` next
//! to it is the project's test command. The library holds what several of
//! those tests share.

#![forbid(unsafe_code)]

use std::process::Output;

/// The standard output of a command that must have succeeded; panics with
/// both its outputs otherwise (a panic is a failed test).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
