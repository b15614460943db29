//! What `up` needs before it makes anything: the tools on `PATH` (installed
//! with `apt-get` when missing) and the Shoal release binaries (built when
//! missing or stale, unless `SHOAL_BIN_DIR` names them).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::options::LabBackend;
use crate::www;
use crate::{log, LabError};

/// Tools `up` needs, with the Debian package that has each.
const TOOLS: [(&str, &str); 10] = [
    ("ip", "iproute2"),
    ("bridge", "iproute2"),
    ("nginx", "nginx-light"),
    ("curl", "curl"),
    ("ethtool", "ethtool"),
    ("tcpdump", "tcpdump"),
    ("wrk", "wrk"),
    ("openssl", "openssl"),
    // --topology routed: the router's and the servers' BGP speaker.
    ("bird", "bird2"),
    ("birdc", "bird2"),
];

/// The repository this lab was built from.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `$SHOAL_BIN_DIR`, else `<repo>/target/release`.
pub(crate) fn bin_dir() -> PathBuf {
    std::env::var_os("SHOAL_BIN_DIR").map_or_else(|| repo().join("target/release"), PathBuf::from)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The tools `up` needs; missing ones installed with `apt-get`.
pub(crate) fn ensure_tools() -> Result<(), LabError> {
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(t, _)| !on_path(t))
        .map(|(_, p)| *p)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    log(&format!(
        "installing missing packages: {}",
        missing.join(" ")
    ));
    if !on_path("apt-get") {
        return Err(LabError::State(format!(
            "missing {} and no apt-get to install them",
            missing.join(" ")
        )));
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if install()
        || (Command::new("apt-get")
            .args(["update", "-q"])
            .status()
            .is_ok_and(|s| s.success())
            && install())
    {
        Ok(())
    } else {
        Err(LabError::State(format!(
            "apt-get install {} failed",
            missing.join(" ")
        )))
    }
}

/// Newest modification time among the sources the Shoal binaries are built from.
fn newest_source(dir: &Path, newest: &mut SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if entry.file_name() != "target" {
                newest_source(&path, newest);
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["rs", "toml", "lock", "c", "h"].contains(&e))
        {
            if let Ok(m) = meta.modified() {
                *newest = (*newest).max(m);
            }
        }
    }
}

/// The dataplane and control binaries exist. With `SHOAL_BIN_DIR` set they
/// must be there; otherwise they are (re)built in `<repo>/target` when
/// missing, older than the sources, or built with other features than the
/// backend needs (stamp `.shoal-lab-features`).
pub(crate) fn ensure_binaries(bin_dir: &Path, backend: LabBackend) -> Result<(), LabError> {
    let dataplane = bin_dir.join("shoal-dataplane");
    let control = bin_dir.join("shoal-control");
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if std::env::var_os("SHOAL_BIN_DIR").is_some() {
        for bin in [&dataplane, &control] {
            if !executable(bin) {
                return Err(LabError::State(format!(
                    "SHOAL_BIN_DIR={} has no executable {}",
                    bin_dir.display(),
                    bin.file_name().and_then(|n| n.to_str()).unwrap_or_default()
                )));
            }
        }
        return Ok(());
    }
    let features = if backend == LabBackend::Dpdk {
        "dpdk"
    } else {
        ""
    };
    let stamp = bin_dir.join(".shoal-lab-features");
    let repo = repo();
    let built = std::fs::metadata(&dataplane)
        .and_then(|m| m.modified())
        .ok();
    let mut newest = UNIX_EPOCH;
    for f in ["Cargo.toml", "Cargo.lock"] {
        if let Ok(m) = std::fs::metadata(repo.join(f)).and_then(|m| m.modified()) {
            newest = newest.max(m);
        }
    }
    for d in ["config", "dataplane", "dpdk-bindings", "control", "channel"] {
        newest_source(&repo.join(d), &mut newest);
    }
    let fresh = executable(&control)
        && built.is_some_and(|b| b >= newest)
        && std::fs::read_to_string(&stamp).unwrap_or_default().trim() == features;
    if fresh {
        return Ok(());
    }
    log(&format!(
        "building shoal-dataplane (release{}); this can take minutes",
        if features.is_empty() {
            String::new()
        } else {
            format!(", features {features}")
        }
    ));
    let jobs = std::env::var("CARGO_BUILD_JOBS").unwrap_or_else(|_| "2".to_owned());
    let cargo = |args: &[&str]| {
        Command::new("cargo")
            .args(args)
            .current_dir(&repo)
            .env("CARGO_BUILD_JOBS", &jobs)
            .env("CARGO_TARGET_DIR", repo.join("target"))
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut dp_args = vec!["build", "--release", "-p", "shoal-dataplane"];
    if !features.is_empty() {
        dp_args.extend(["--features", features]);
    }
    if !(cargo(&dp_args) && cargo(&["build", "--release", "-p", "shoal-control"])) {
        return Err(LabError::State(
            "cargo build --release -p shoal-dataplane -p shoal-control failed (is cargo on PATH?)"
                .to_owned(),
        ));
    }
    if !executable(&dataplane) {
        return Err(LabError::State(format!(
            "cargo build finished but {} does not exist",
            dataplane.display()
        )));
    }
    www::write_mode(&stamp, format!("{features}\n").as_bytes(), 0o644)
}
