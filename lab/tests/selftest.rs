//! The lab itself, without a dataplane (`--backend none`): namespaces, hub,
//! client, nginx, documents, idempotent `up`, and a `down` that leaves
//! nothing. Needs root and network namespaces, so `#[ignore]`d in a plain
//! `cargo test`; `tests/run.sh` runs it with `--ignored` (under the same
//! one-lab-at-a-time rule as `tests/lab.rs`). It refuses to touch a lab
//! that is already up.
//!
//! The dataplane path (shoal0, control, the VIP) is covered by `tests/lab.rs`
//! with the real `shoal-dataplane` on both backends.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::path::Path;
use std::process::Output;
use std::thread::sleep;
use std::time::Duration;

use shoal_lab::netns::lab_namespaces;
use shoal_lab::{Lab, LabBackend, Node, Server, UpOptions};

/// SHA-256 of the lab's documents: the same every run.
const KNOWN: [(&str, &str); 3] = [
    (
        "1k",
        "257a3ec6036d75d0cd4589e15a81f419bab44d63bd2550e92328f4ee12a40adb",
    ),
    (
        "1m",
        "bacc6e8ce24dee77be4d2331f5ad5d4665907c8938a8a70978842f2cd236628c",
    ),
    (
        "8m",
        "70ba6f06b6108102be330a69428f7886db7df28556a1368211ed7db583a288f5",
    ),
];

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_in(node: Node, cmd: &[&str]) -> String {
    stdout(&Lab::command(node, cmd).unwrap().output().unwrap())
}

fn client(cmd: &[&str]) -> String {
    run_in(Node::Client, cmd)
}

/// Every PID in the lab's namespaces plus the recorded ones.
fn lab_pids() -> Vec<u32> {
    let mut pids: Vec<u32> = lab_namespaces()
        .iter()
        .flat_map(|ns| shoal_lab::process::pids_in(ns))
        .collect();
    for s in Server::all(3) {
        for name in ["nginx", "dataplane", "control"] {
            pids.extend(shoal_lab::process::read_pid(
                &s.dir().join(format!("{name}.pid")),
            ));
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn assert_clean(pids: &[u32]) {
    assert!(
        lab_namespaces().is_empty(),
        "namespaces left: {:?}",
        lab_namespaces()
    );
    assert!(!Path::new("/run/shoal-lab").exists(), "/run/shoal-lab left");
    let prefixes: Vec<String> = std::fs::read_dir("/var/run/dpdk")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| n.starts_with("shoal-lab-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(prefixes.is_empty(), "DPDK prefixes left: {prefixes:?}");
    // PID 1 may reap a stopped process late: alive() ignores zombies.
    let mut left = Vec::new();
    for _ in 0..20 {
        left = pids
            .iter()
            .copied()
            .filter(|&p| shoal_lab::process::alive(p))
            .collect();
        if left.is_empty() {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    assert!(left.is_empty(), "processes left: {left:?}");
}

#[test]
#[ignore = "needs root and network namespaces: run by tests/run.sh"]
fn lab_without_dataplane_serves_floods_and_leaves_nothing() {
    assert!(
        lab_namespaces().is_empty() && !Path::new("/run/shoal-lab").exists(),
        "a lab is already up ({:?}); not touching it: 'lab down' first",
        lab_namespaces()
    );
    let opts = UpOptions {
        backend: LabBackend::None,
        ..UpOptions::default()
    };
    let lab = Lab::up(&opts).unwrap();
    let result = std::panic::catch_unwind(|| checks(&lab, &opts));
    let pids = lab_pids();
    Lab::down().unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(!pids.is_empty());
    assert_clean(&pids);
}

fn checks(lab: &Lab, opts: &UpOptions) {
    let status = Lab::status().unwrap();
    assert!(status.healthy, "{}", status.text());
    assert_eq!(status.nodes.len(), 3);
    for (name, sum) in KNOWN {
        assert_eq!(status.files[name].sha256, sum, "/files/{name}");
    }

    // Each server on its own address: whoami body and header, the 8m file.
    for s in Server::all(3) {
        let addr = s.addr();
        let head = client(&[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-D",
            "-",
            &format!("http://{addr}/whoami"),
        ]);
        assert!(head.starts_with("HTTP/1.1 200 "), "{s}: {head}");
        assert!(
            head.contains(&format!("X-Served-By: {s}\r\n")),
            "{s}: {head}"
        );
        let body = client(&[
            "curl",
            "-sS",
            "--max-time",
            "5",
            &format!("http://{addr}/whoami"),
        ]);
        assert_eq!(body, format!("{s}\n"));
        let sum = client(&[
            "sh",
            "-c",
            &format!("curl -sS --max-time 20 http://{addr}/files/8m | sha256sum"),
        ]);
        assert_eq!(sum.split_whitespace().next(), Some(KNOWN[2].1), "{s}");
        assert_eq!(
            client(&[
                "curl",
                "-s",
                "--max-time",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{addr}/nothing")
            ]),
            "404"
        );
    }

    // The hub floods: srv2 sees the client's frames to srv1's MAC.
    let srv2 = Node::Server(Server::new(2).unwrap());
    let capture = Lab::command(
        srv2,
        &[
            "timeout",
            "5",
            "tcpdump",
            "-l",
            "-nn",
            "-e",
            "-i",
            "eth0",
            "-c",
            "1",
            "ether dst 02:00:c6:12:00:0b and tcp",
        ],
    )
    .unwrap()
    .stderr(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    sleep(Duration::from_secs(1));
    let _ = Lab::command(
        Node::Client,
        &[
            "curl",
            "-s",
            "--max-time",
            "3",
            "-o",
            "/dev/null",
            "http://198.18.0.11/whoami",
        ],
    )
    .unwrap()
    .output();
    let seen = String::from_utf8_lossy(&capture.wait_with_output().unwrap().stdout).into_owned();
    assert!(
        seen.contains("> 02:00:c6:12:00:0b"),
        "srv2 saw no frame for srv1's MAC: '{seen}'"
    );

    // No IPv6 anywhere; the client's MAC and offloads.
    for node in ["hub", "client", "srv1", "srv2", "srv3"] {
        assert_eq!(
            run_in(node.parse().unwrap(), &["ip", "-6", "-o", "addr"]),
            "",
            "{node}"
        );
    }
    assert_eq!(
        run_in(
            "srv3".parse().unwrap(),
            &["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"]
        ),
        "1\n"
    );
    assert_eq!(
        client(&["cat", "/sys/class/net/eth0/address"]),
        "02:00:c6:12:00:02\n"
    );
    assert!(client(&["ethtool", "-k", "eth0"])
        .lines()
        .any(|l| l == "tx-checksumming: off"));

    // Idempotent, and refuses other parameters.
    let nginx = |s: &shoal_lab::Status| s.nodes.iter().map(|n| n.nginx.pid).collect::<Vec<_>>();
    let before = nginx(&Lab::status().unwrap());
    Lab::up(opts).unwrap();
    assert_eq!(
        nginx(&Lab::status().unwrap()),
        before,
        "a second 'up' restarted nginx"
    );
    let other = UpOptions {
        nodes: 2,
        ..opts.clone()
    };
    let err = Lab::up(&other).unwrap_err().to_string();
    assert!(err.contains("other parameters"), "{err}");
    assert_eq!(lab.state().options, *opts);

    // dataplane-config renders per node.
    let cfg = Lab::render_config(&UpOptions::default(), Server::new(2).unwrap()).unwrap();
    assert!(
        cfg.lines().any(|l| l == r#"local_member = "srv2""#),
        "{cfg}"
    );
    assert!(
        cfg.lines()
            .any(|l| l == r#"eal_args = ["--no-pci", "--file-prefix", "shoal-lab-srv2"]"#),
        "{cfg}"
    );
    assert!(
        cfg.lines()
            .any(|l| l == r#"device = "net_tap0,iface=shoal0,mac=02:00:c6:12:00:0c""#),
        "{cfg}"
    );
    assert_eq!(cfg.matches("[[cluster.members]]").count(), 3);
}
