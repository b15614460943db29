//! The portable backend on real sockets: known frames through a veth pair
//! and a TAP in a network namespace of the test's own (`pbench-t…`, deleted
//! when the test ends), checking the bytes and the syscalls each burst took.
//!
//! Needs root (network namespaces, AF_PACKET, `/dev/net/tun`) and `ip`, so
//! `#[ignore]`d in a plain `cargo test`; `tests/run.sh` runs it as root with
//! `--ignored`, where it never skips: a missing tool or permission fails it.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::portable::{PortSyscalls, PortableIo, PortableOptions, WireMode};
use shoal_dataplane::io::{Frame, PacketIo};
use shoal_dataplane::pipeline::{KERNEL, WIRE};

/// Runs a command, failing the test with its output if it fails.
fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (iproute2 installed? root?): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with a veth pair `pbt0` ↔ `pbt1` (up, no addresses,
/// IPv6 off so the kernel sends nothing of its own), deleted by name on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "pbench-t{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        let n = ns.name.as_str();
        run(
            "ip",
            &[
                "netns",
                "exec",
                n,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
        run(
            "ip",
            &[
                "-n", n, "link", "add", "pbt0", "type", "veth", "peer", "name", "pbt1",
            ],
        );
        ns.up("pbt0");
        ns.up("pbt1");
        ns
    }

    fn up(&self, iface: &str) {
        run("ip", &["-n", &self.name, "link", "set", iface, "up"]);
    }

    /// Moves the calling thread (the test's) into the namespace: sockets
    /// and TAPs it opens from now on are created there.
    fn enter(&self) {
        let f = File::open(format!("/run/netns/{}", self.name)).unwrap();
        setns(f, CloneFlags::CLONE_NEWNET).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `n` distinct frames (local experimental ethertype 0x88b5, to another
/// host's MAC, so the kernel ignores them), each of a different length.
fn frames(n: usize, tag: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5];
            f.extend((0..46 + i).map(|j| (j as u8) ^ (i as u8) ^ tag));
            f
        })
        .collect()
}

fn heap(frames: &[Vec<u8>]) -> Vec<HeapFrame> {
    frames.iter().map(|f| HeapFrame::from_bytes(f)).collect()
}

fn bytes(frames: &[HeapFrame]) -> Vec<Vec<u8>> {
    frames.iter().map(|f| f.bytes().to_vec()).collect()
}

/// Lets the kernel finish delivering what was just sent (veth and TAP
/// deliver within the sending syscall; this covers a deferred softirq).
fn settle() {
    sleep(Duration::from_millis(100));
}

fn open(wire: &str, tap: &str, wire_mode: WireMode) -> PortableIo {
    let opts = PortableOptions {
        wire_mode,
        ..PortableOptions::default()
    };
    PortableIo::open_with(wire, tap, opts).unwrap()
}

/// Sends `sent` from `from`'s `port` and checks `to` receives exactly those
/// bytes in one `rx_burst` of 64.
fn send_and_receive(
    from: &mut PortableIo,
    from_port: usize,
    to: &mut PortableIo,
    to_port: usize,
    sent: &[Vec<u8>],
) {
    let mut out = heap(sent);
    assert_eq!(from.tx_burst(from_port, &mut out), sent.len());
    assert!(out.is_empty());
    settle();
    let mut got = Vec::new();
    assert_eq!(to.rx_burst(to_port, &mut got, 64), sent.len());
    assert_eq!(bytes(&got), sent);
}

#[test]
#[ignore = "needs root and network namespaces: run by tests/run.sh"]
fn batched_wire_moves_64_frames_in_one_syscall_each_way_and_the_tap_one_per_frame() {
    let ns = Netns::new();
    ns.enter();
    let mut a = open("pbt0", "pbtap0", WireMode::Batched);
    let mut b = open("pbt1", "pbtap1", WireMode::Batched);

    // b → a over the veth: one sendmmsg, one recvmmsg, then one EAGAIN.
    let sent = frames(64, 1);
    send_and_receive(&mut b, WIRE, &mut a, WIRE, &sent);
    let mut none = Vec::new();
    assert_eq!(a.rx_burst(WIRE, &mut none, 64), 0);
    assert_eq!(
        b.wire,
        PortSyscalls {
            tx_syscalls: 1,
            tx_frames: 64,
            ..PortSyscalls::default()
        }
    );
    assert_eq!(
        a.wire,
        PortSyscalls {
            rx_syscalls: 2,
            rx_frames: 64,
            ..PortSyscalls::default()
        }
    );

    // a → b: 100 frames take two sendmmsg (64 + 36); b receives them in
    // bursts of 64 and 36 (two recvmmsg).
    let sent = frames(100, 2);
    let mut out = heap(&sent);
    assert_eq!(a.tx_burst(WIRE, &mut out), 100);
    settle();
    let mut got = Vec::new();
    assert_eq!(b.rx_burst(WIRE, &mut got, 64), 64);
    assert_eq!(b.rx_burst(WIRE, &mut got, 64), 36);
    assert_eq!(bytes(&got), sent);
    assert_eq!((a.wire.tx_syscalls, a.wire.tx_frames), (2, 100));
    assert_eq!((b.wire.rx_syscalls, b.wire.rx_frames), (2, 100));
    assert_eq!((a.send_errors, a.rx_errors, a.rx_truncated), (0, 0, 0));

    // The kernel port: a writes 8 frames into its TAP (one write each); an
    // AF_PACKET reader on the TAP sees what the kernel received.
    ns.up("pbtap0");
    let mut tap_side = open("pbtap0", "pbtap2", WireMode::Batched);
    let sent = frames(8, 3);
    send_and_receive(&mut a, KERNEL, &mut tap_side, WIRE, &sent);
    assert_eq!((a.kernel.tx_syscalls, a.kernel.tx_frames), (8, 8));

    // And the other way: the kernel transmits 8 frames on the TAP; a reads
    // them one `read` each, plus the `read` that finds the TAP empty.
    let sent = frames(8, 4);
    send_and_receive(&mut tap_side, WIRE, &mut a, KERNEL, &sent);
    assert_eq!((a.kernel.rx_syscalls, a.kernel.rx_frames), (9, 8));
    assert_eq!(a.send_errors, 0);
}

#[test]
#[ignore = "needs root and network namespaces: run by tests/run.sh"]
fn per_frame_wire_takes_two_syscalls_per_frame() {
    let ns = Netns::new();
    ns.enter();
    let mut a = open("pbt0", "pbtap0", WireMode::PerFrame);
    let mut b = open("pbt1", "pbtap1", WireMode::Batched);
    assert_eq!(a.wire_mode(), WireMode::PerFrame);

    // 64 frames: poll + recvfrom each, the burst full at 64 (no empty poll).
    let sent = frames(64, 5);
    send_and_receive(&mut b, WIRE, &mut a, WIRE, &sent);
    assert_eq!((a.wire.rx_syscalls, a.wire.rx_frames), (128, 64));
    let mut none = Vec::new();
    assert_eq!(a.rx_burst(WIRE, &mut none, 64), 0);
    assert_eq!(a.wire.rx_syscalls, 129);

    // 64 frames out: poll + sendto each.
    let sent = frames(64, 6);
    send_and_receive(&mut a, WIRE, &mut b, WIRE, &sent);
    assert_eq!((a.wire.tx_syscalls, a.wire.tx_frames), (128, 64));
    assert_eq!((b.wire.rx_syscalls, b.wire.rx_frames), (1, 64));
}
