//! The `shoal-dataplane` binary: `gen-trace` and `replay` as an operator runs
//! them, including the errors they print.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shoal-dataplane"))
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples")
        .join(name)
}

#[test]
fn gen_trace_then_replay_prints_the_counters_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.pcap");
    let out = bin()
        .args(["gen-trace", "--config"])
        .arg(example("replay.toml"))
        .arg("--out")
        .arg(&trace)
        .args(["--connections", "50", "--clients", "5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrote 355 frames"));

    let mut accepted = 0;
    for member in ["srv1", "srv2", "srv3"] {
        let wire_out = dir.path().join(format!("{member}.pcap"));
        let out = bin()
            .args(["replay", "--config"])
            .arg(example("replay.toml"))
            .args(["--member", member, "--in"])
            .arg(&trace)
            .arg("--out")
            .arg(&wire_out)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["frames_in"]["wire"], 355);
        assert_eq!(v["counters"]["arp_vip_replied"], 5);
        assert_eq!(v["frames_out"]["wire"], 5);
        assert_eq!(v["counters"]["drop_malformed"], 0);
        let n = v["counters"]["syn_accepted"].as_u64().unwrap();
        assert_eq!(v["frames_out"]["kernel"].as_u64().unwrap(), 7 * n);
        assert_eq!(v["flows"]["closing"].as_u64().unwrap(), n);
        accepted += n;
        // The output capture holds exactly the 5 ARP replies.
        assert_eq!(
            std::fs::metadata(&wire_out).unwrap().len(),
            24 + 5 * (16 + 42)
        );
    }
    assert_eq!(accepted, 50);
}

#[test]
fn errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    // Not a pcap.
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"definitely not a capture").unwrap();
    let out = bin()
        .args(["replay", "--config"])
        .arg(example("replay.toml"))
        .arg("--in")
        .arg(&junk)
        .arg("--out")
        .arg(dir.path().join("o.pcap"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.pcap") && err.contains("pcap"), "{err}");

    // A config with a typo'd key.
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(example("replay.toml")).unwrap();
    std::fs::write(&bad, text.replace("[dataplane]", "[dataplane]\nburst = 32")).unwrap();
    let out = bin()
        .args(["replay", "--config"])
        .arg(&bad)
        .args(["--in", "x", "--out", "y"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("burst"), "{err}");

    // An unknown member.
    let out = bin()
        .args(["replay", "--config"])
        .arg(example("replay.toml"))
        .args(["--member", "srv9", "--in", "x", "--out", "y"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("srv9"));
}
