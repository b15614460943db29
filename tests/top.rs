//! `shoalctl top` in a real terminal: the lab with three servers, a bounded
//! load from the client, `shoalctl top` on srv1 inside a detached tmux
//! session, and the pane's text checked: every member listed, live, on a
//! confirmed epoch with its lease, and non-zero packet and connection
//! rates.
//!
//! Needs root, network namespaces, tmux and release binaries, so it is
//! `#[ignore]`d in a plain `cargo test`; `tests/run.sh` runs it after the
//! lab tests with `SHOAL_BIN_DIR` pointing at the release build. Only one
//! lab can be up on a machine (fixed namespace names).
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use shoal_e2e::ok;

const MEMBERS: [&str; 3] = ["srv1", "srv2", "srv3"];

/// The member table's header in rate mode (`control/src/top/draw.rs`).
const HEADER: &str = "MEMBER  ID ADDRESS         STATE    WEIGHT  LOAD EPOCH     LEASE       \
                      WIRE RX/s WIRE TX/s KERN RX/s KERN TX/s    SYN/s   DROPS/s   FLOWS";

/// `args` run in `node`'s namespace (the lab's `exec`).
fn in_lab(node: &str, args: &[&str]) -> Command {
    let node: shoal_lab::Node = node.parse().unwrap();
    shoal_lab::Lab::command(node, args).unwrap()
}

fn shoalctl() -> String {
    let dir = std::env::var_os("SHOAL_BIN_DIR").expect("SHOAL_BIN_DIR (tests/run.sh sets it)");
    PathBuf::from(dir)
        .join("shoalctl")
        .to_str()
        .unwrap()
        .to_owned()
}

/// A lab with three servers on DPDK; `down` when dropped, whatever happened.
struct Lab;

impl Lab {
    fn up() -> Lab {
        // A lab left by an earlier failed run.
        let _ = shoal_lab::Lab::down();
        // Constructed before the check, so a half-made lab goes down too.
        let lab = Lab;
        shoal_lab::Lab::up(&shoal_lab::UpOptions::default())
            .unwrap_or_else(|e| panic!("lab up: {e}"));
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let down = shoal_lab::Lab::down();
        if !std::thread::panicking() {
            down.unwrap_or_else(|e| panic!("lab down: {e}"));
        }
    }
}

/// A detached tmux session, killed by name when dropped.
struct Tmux(String);

impl Tmux {
    fn start(name: &str, width: u16, height: u16, command: &str) -> Tmux {
        let out = Command::new("tmux")
            .args(["new-session", "-d", "-s", name, "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .arg(command)
            .output()
            .unwrap();
        let session = Tmux(name.to_owned());
        ok(&out);
        session
    }

    fn capture(&self) -> String {
        ok(&Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .unwrap())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

/// One member row of the table, split into its columns.
#[derive(Debug)]
struct Row {
    id: String,
    address: String,
    state: String,
    weight: String,
    epoch_state: String,
    lease: String,
    wire_rx: f64,
    kernel_tx: f64,
    syn: f64,
}

/// "12.3", "4.5k", "1.20M" as a number.
fn figure(s: &str) -> f64 {
    let (n, scale) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1e3),
        Some('M') => (&s[..s.len() - 1], 1e6),
        Some('G') => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    n.parse::<f64>()
        .unwrap_or_else(|_| panic!("not a figure: {s:?}"))
        * scale
}

/// The row of `member` in a screen's text, if it shows one with figures.
fn row(screen: &str, member: &str) -> Option<Row> {
    let line = screen
        .lines()
        .find(|l| l.split_whitespace().next() == Some(member))?;
    let c: Vec<&str> = line.split_whitespace().collect();
    // name id address state weight load epoch conf|pend held|not NNNms|held
    // wire_rx wire_tx kern_rx kern_tx syn drops flows
    if c.len() != 17 || c[8] != "held" {
        return None;
    }
    Some(Row {
        id: c[1].to_owned(),
        address: c[2].to_owned(),
        state: c[3].to_owned(),
        weight: c[4].to_owned(),
        epoch_state: c[7].to_owned(),
        lease: c[8].to_owned(),
        wire_rx: figure(c[10]),
        kernel_tx: figure(c[13]),
        syn: figure(c[14]),
    })
}

/// Every member live, on a confirmed epoch, holding its lease.
fn settled(screen: &str) -> bool {
    MEMBERS
        .iter()
        .all(|m| row(screen, m).is_some_and(|r| r.state == "live" && r.epoch_state == "conf"))
}

#[test]
#[ignore = "needs root, netns, tmux and release binaries: run by tests/run.sh"]
fn top_shows_every_member_and_live_rates() {
    let ctl = shoalctl();
    let _lab = Lab::up();

    // `--once` until the cluster settled (bounded: 20 tries, 30 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut once = String::new();
    for _ in 0..20 {
        // Right after `up` control may not listen yet (exit status 1).
        let out = in_lab("srv1", &[&ctl, "top", "--once", "--interval", "0.5"])
            .output()
            .unwrap();
        once = String::from_utf8_lossy(&out.stdout).into_owned();
        if settled(&once) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(settled(&once), "the cluster did not settle:\n{once}");
    assert!(
        once.starts_with(
            "shoal top | cluster shoal-lab | via srv1 | every 0.5 s | rates per second over "
        ),
        "{once}"
    );
    assert!(
        once.contains("epoch ") && once.contains(" on 3/3 members, confirmed on 3/3 | "),
        "{once}"
    );

    // The live screen, in a real terminal of 200 x 50.
    let session = Tmux::start(
        &format!("shoal-top-test-{}", std::process::id()),
        200,
        50,
        &format!(
            // On exit, say so and keep the pane for the capture.
            "ip netns exec shoal-srv1 {ctl} top --interval 1; echo shoalctl top exited: $?; sleep 60"
        ),
    );
    // Bounded load: new connections (Connection: close) for 6 s.
    let load = in_lab(
        "client",
        &[
            "wrk",
            "-t1",
            "-c4",
            "-d6s",
            "-H",
            "Connection: close",
            "http://198.18.0.100/whoami",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Three refreshes into the load: rates over a second of it.
    std::thread::sleep(Duration::from_millis(3500));
    let screen = session.capture();
    let wrk = load.wait_with_output().unwrap();
    let wrk_out = ok(&wrk);
    println!("{screen}");

    assert!(
        screen.starts_with(
            "shoal top | cluster shoal-lab | via srv1 | every 1.0 s | rates per second over "
        ),
        "{screen}"
    );
    assert!(screen.contains("[q] quit  [p] pause"), "{screen}");
    assert!(
        screen.lines().any(|l| l == HEADER),
        "no member header {HEADER:?} in:\n{screen}"
    );
    let mut syn_total = 0.0;
    for (k, m) in MEMBERS.iter().enumerate() {
        let r = row(&screen, m).unwrap_or_else(|| panic!("no row for {m}:\n{screen}"));
        assert_eq!(r.id, (k + 1).to_string(), "{r:?}");
        assert_eq!(r.address, format!("198.18.0.{}", 11 + k), "{r:?}");
        assert_eq!(
            (
                r.state.as_str(),
                r.weight.as_str(),
                r.epoch_state.as_str(),
                r.lease.as_str()
            ),
            ("live", "100", "conf", "held"),
            "{r:?}"
        );
        // A hub: every member receives every client frame.
        assert!(r.wire_rx > 0.0, "{m}: no wire rx rate:\n{screen}");
        // Each member serves its share of the new connections.
        assert!(r.kernel_tx > 0.0, "{m}: no kernel tx rate:\n{screen}");
        assert!(r.syn > 0.0, "{m}: no new connections/s:\n{screen}");
        syn_total += r.syn;
        assert!(
            screen.lines().any(|l| l.starts_with(&format!("{m}/0 "))),
            "no worker row for {m}:\n{screen}"
        );
    }
    assert!(syn_total >= 3.0, "{syn_total} new connections/s:\n{screen}");
    assert!(
        screen.contains("\nDROPS/s by reason (top "),
        "no drop reasons:\n{screen}"
    );
    assert!(wrk_out.contains("requests in"), "{wrk_out}");
}
