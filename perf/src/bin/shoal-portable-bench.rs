//! The portable backend before and after batching, in one run: frames per
//! syscall and Mpps of the wire port (AF_PACKET on a veth) per-frame
//! (`WireMode::PerFrame`, the backend as it was) and batched
//! (`recvmmsg`/`sendmmsg`), and of the kernel port (TAP, one syscall per
//! frame in both modes).
//!
//! Columns: frames and syscalls over all rounds; Mpps over all rounds (wall
//! clock); the median round's Mpps on the wall clock and per CPU-second of
//! the bench thread (`cpu-med`: frames over the thread's user + system
//! time, what one core would do alone; softirq work the kernel charges
//! elsewhere is not in it).
//!
//! Rounds alternate the two modes (per-frame, batched, per-frame, ...) so
//! both share the cores with the same neighbours; each figure is given over
//! all rounds and as the median round.
//!
//! Run by `perf/portable/run.sh` inside a network namespace of its own that
//! holds a veth pair; usage: `shoal-portable-bench WIRE PEER TAP FRAMES
//! ROUNDS [FRAME_LEN]`. Each measurement isolates one side of the backend:
//!
//! - rx: a generator (a batched `PortableIo` on the other end, or on the
//!   TAP's kernel side) first queues `FRAMES` frames in the measured
//!   socket (a 512 MiB receive buffer) or TAP (`txqueuelen` raised); then
//!   the measured backend drains them with `rx_burst` of 32, timed, the
//!   frames dropped as they arrive. The generator does not run meanwhile.
//! - tx: the measured backend sends `FRAMES` frames prepared beforehand
//!   with `tx_burst` of 32, timed; the receiving interface's `rx_packets`
//!   says how many arrived.
//!
//! Frames carry a local experimental ethertype (0x88b5) to another host's
//! MAC, so the kernel drops them at once: the figures are the backend's
//! cost and the kernel's delivery, not a protocol stack's.
#![forbid(unsafe_code)]

use std::process::{Command, ExitCode};
use std::thread::sleep;
use std::time::{Duration, Instant};

use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::portable::{PortSyscalls, PortableIo, PortableOptions, WireMode};
use shoal_dataplane::io::PacketIo;
use shoal_dataplane::pipeline::{KERNEL, WIRE};

/// Frames per `rx_burst`/`tx_burst`: the dataplane's default burst size.
const BURST: usize = 32;
/// Receive buffer of the measured wire socket: room for every queued frame.
const RX_BUFFER: usize = 512 << 20;
/// No single phase may take longer than this.
const PHASE_LIMIT: Duration = Duration::from_secs(30);

struct Args {
    wire: String,
    peer: String,
    tap: String,
    frames: usize,
    rounds: usize,
    frame_len: usize,
}

fn parse_args() -> Result<Args, String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 5 {
        return Err("usage: shoal-portable-bench WIRE PEER TAP FRAMES ROUNDS [FRAME_LEN]".into());
    }
    let num = |s: &str, what: &str| s.parse::<usize>().map_err(|e| format!("{what} '{s}': {e}"));
    let frame_len = match a.get(5) {
        Some(s) => num(s, "FRAME_LEN")?,
        None => 60,
    };
    if !(60..=1514).contains(&frame_len) {
        return Err(format!("FRAME_LEN {frame_len}: 60 to 1514"));
    }
    Ok(Args {
        wire: a[0].clone(),
        peer: a[1].clone(),
        tap: a[2].clone(),
        frames: num(&a[3], "FRAMES")?.max(BURST),
        rounds: num(&a[4], "ROUNDS")?.max(1),
        frame_len,
    })
}

/// One measured side and direction, summed over the rounds.
#[derive(Default)]
struct Figure {
    frames: u64,
    expected: u64,
    syscalls: u64,
    secs: f64,
    round_mpps: Vec<f64>,
    /// Per round: frames over the bench thread's CPU time (user + system).
    round_mpps_cpu: Vec<f64>,
}

impl Figure {
    fn add(&mut self, frames: u64, expected: u64, syscalls: u64, t: Took) {
        self.frames += frames;
        self.expected += expected;
        self.syscalls += syscalls;
        self.secs += t.wall;
        self.round_mpps.push(frames as f64 / t.wall / 1e6);
        self.round_mpps_cpu.push(frames as f64 / t.cpu / 1e6);
    }

    /// Mpps over all rounds (frames over time).
    fn mpps(&self) -> f64 {
        self.frames as f64 / self.secs / 1e6
    }

    fn per_syscall(&self) -> f64 {
        self.frames as f64 / self.syscalls.max(1) as f64
    }

    /// The median round's Mpps (robust to a round that shared its core).
    fn median_mpps(&self) -> f64 {
        median(&self.round_mpps)
    }

    /// The median round's Mpps per CPU-second of the bench thread: what one
    /// core would do alone, less sensitive to what shares the cores.
    fn median_mpps_cpu(&self) -> f64 {
        median(&self.round_mpps_cpu)
    }
}

fn median(v: &[f64]) -> f64 {
    let mut m = v.to_vec();
    m.sort_by(f64::total_cmp);
    m.get(m.len() / 2).copied().unwrap_or(0.0)
}

/// Wall-clock and this thread's CPU seconds of a measured loop.
#[derive(Clone, Copy)]
struct Took {
    wall: f64,
    cpu: f64,
}

/// Times `f` on the wall clock and on this thread's CPU clock.
fn timed<T>(f: impl FnOnce() -> Result<T, String>) -> Result<(T, Took), String> {
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
    };
    let (wall0, cpu0) = (Instant::now(), cpu());
    let out = f()?;
    let took = Took {
        wall: wall0.elapsed().as_secs_f64(),
        cpu: (cpu() - cpu0).max(1e-9),
    };
    Ok((out, took))
}

fn frames(n: usize, len: usize) -> Vec<HeapFrame> {
    (0..n)
        .map(|i| {
            let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5];
            f.extend((0..len - 14).map(|j| (i ^ j) as u8));
            HeapFrame::from_bytes(&f)
        })
        .collect()
}

/// Sends all of `frames` on `port`, retrying what the port refused.
fn send_all(io: &mut PortableIo, port: usize, bursts: Vec<Vec<HeapFrame>>) -> Result<(), String> {
    let start = Instant::now();
    for mut burst in bursts {
        while !burst.is_empty() {
            if io.tx_burst(port, &mut burst) == 0 {
                if start.elapsed() > PHASE_LIMIT {
                    return Err("generator: the port refuses frames".into());
                }
                sleep(Duration::from_micros(50));
            }
        }
    }
    Ok(())
}

/// Drains `port` until a burst comes back empty; returns the frames.
fn drain(io: &mut PortableIo, port: usize) -> Result<u64, String> {
    let mut out = Vec::with_capacity(BURST);
    let mut n = 0u64;
    let start = Instant::now();
    loop {
        let got = io.rx_burst(port, &mut out, BURST);
        out.clear();
        if got == 0 {
            break;
        }
        n += got as u64;
        if start.elapsed() > PHASE_LIMIT {
            return Err("rx drain did not end".into());
        }
    }
    Ok(n)
}

/// `FRAMES` frames in bursts, prepared before the measured transmit.
fn bursts(args: &Args) -> Vec<Vec<HeapFrame>> {
    let mut all = frames(args.frames, args.frame_len).into_iter();
    std::iter::from_fn(|| {
        let burst: Vec<HeapFrame> = all.by_ref().take(BURST).collect();
        (!burst.is_empty()).then_some(burst)
    })
    .collect()
}

/// Transmits the prepared bursts.
fn transmit(
    io: &mut PortableIo,
    port: usize,
    mut bursts: Vec<Vec<HeapFrame>>,
) -> Result<(), String> {
    let start = Instant::now();
    for burst in &mut bursts {
        while !burst.is_empty() {
            if io.tx_burst(port, burst) == 0 {
                if start.elapsed() > PHASE_LIMIT {
                    return Err("tx: the port refuses frames".into());
                }
                std::hint::spin_loop();
            }
        }
    }
    Ok(())
}

fn rx_packets(iface: &str) -> Result<u64, String> {
    let path = format!("/sys/class/net/{iface}/statistics/rx_packets");
    std::fs::read_to_string(&path)
        .map_err(|e| format!("{path}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{path}: {e}"))
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn open(wire: &str, tap: &str, wire_mode: WireMode) -> Result<PortableIo, String> {
    let opts = PortableOptions {
        wire_mode,
        wire_rx_buffer: Some(RX_BUFFER),
    };
    PortableIo::open_with(wire, tap, opts).map_err(|e| e.to_string())
}

/// One round of the four figures of one mode (wire rx, wire tx, TAP rx,
/// TAP tx), added to `figs`.
fn measure(mode: WireMode, args: &Args, figs: &mut [Figure; 4]) -> Result<(), String> {
    let mut io = open(&args.wire, &args.tap, mode)?;
    ip(&[
        "link",
        "set",
        &args.tap,
        "up",
        "txqueuelen",
        &(args.frames + 1024).to_string(),
    ])?;
    let settle = || sleep(Duration::from_millis(50));
    let total = |c: PortSyscalls| (c.rx_syscalls, c.tx_syscalls);

    // Wire rx: the generator on the peer fills the socket, then we drain.
    {
        let mut gen = open(&args.peer, "pbgen0", WireMode::Batched)?;
        send_all(&mut gen, WIRE, bursts(args))?;
        settle();
        let before = total(io.wire).0;
        let (n, took) = timed(|| drain(&mut io, WIRE))?;
        figs[0].add(n, args.frames as u64, total(io.wire).0 - before, took);
    }
    // Wire tx: nothing listens on the peer; its counter says what arrived.
    {
        let prepared = bursts(args);
        let before = (rx_packets(&args.peer)?, total(io.wire).1);
        let ((), took) = timed(|| transmit(&mut io, WIRE, prepared))?;
        settle();
        let arrived = rx_packets(&args.peer)? - before.0;
        let syscalls = total(io.wire).1 - before.1;
        figs[1].add(arrived, args.frames as u64, syscalls, took);
    }
    // TAP rx: the kernel transmits on the TAP (a packet socket on it), we read.
    {
        let mut gen = open(&args.tap, "pbgen1", WireMode::Batched)?;
        send_all(&mut gen, WIRE, bursts(args))?;
        settle();
        let before = total(io.kernel).0;
        let (n, took) = timed(|| drain(&mut io, KERNEL))?;
        figs[2].add(n, args.frames as u64, total(io.kernel).0 - before, took);
    }
    // TAP tx: we write into the kernel; the TAP's rx_packets counts them.
    {
        let prepared = bursts(args);
        let before = (rx_packets(&args.tap)?, total(io.kernel).1);
        let ((), took) = timed(|| transmit(&mut io, KERNEL, prepared))?;
        settle();
        let arrived = rx_packets(&args.tap)? - before.0;
        let syscalls = total(io.kernel).1 - before.1;
        figs[3].add(arrived, args.frames as u64, syscalls, took);
    }
    if io.rx_errors + io.rx_truncated > 0 {
        return Err(format!(
            "{mode:?}: {} receive errors, {} truncated frames",
            io.rx_errors, io.rx_truncated
        ));
    }
    Ok(())
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    println!(
        "{} frames of {} bytes x {} rounds per figure, bursts of {BURST}",
        args.frames, args.frame_len, args.rounds
    );
    // Rounds alternate the modes, so both see the same neighbours on the cores.
    let mut before: [Figure; 4] = Default::default();
    let mut after: [Figure; 4] = Default::default();
    for _ in 0..args.rounds {
        measure(WireMode::PerFrame, &args, &mut before)?;
        measure(WireMode::Batched, &args, &mut after)?;
    }
    let names = ["wire rx", "wire tx", "TAP rx", "TAP tx"];
    println!(
        "{:<8} {:<10} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8}  {:<20}",
        "port",
        "mode",
        "frames",
        "syscalls",
        "frames/sc",
        "Mpps",
        "median",
        "cpu-med",
        "Mpps per round (wall)"
    );
    for (i, name) in names.iter().enumerate() {
        for (mode, f) in [("per-frame", &before[i]), ("batched", &after[i])] {
            let rounds: Vec<String> = f.round_mpps.iter().map(|m| format!("{m:.2}")).collect();
            println!(
                "{name:<8} {mode:<10} {:>9} {:>9} {:>9.2} {:>7.3} {:>7.3} {:>8.3}  {}",
                f.frames,
                f.syscalls,
                f.per_syscall(),
                f.mpps(),
                f.median_mpps(),
                f.median_mpps_cpu(),
                rounds.join(" ")
            );
            if f.frames != f.expected {
                return Err(format!(
                    "{name} {mode}: {} of {} frames arrived",
                    f.frames, f.expected
                ));
            }
        }
    }
    for (i, name) in names.iter().enumerate() {
        println!(
            "{name}: batched / per-frame = {:.2}x Mpps (medians {:.2}x, per CPU-second {:.2}x), {:.1} -> {:.1} frames per syscall",
            after[i].mpps() / before[i].mpps(),
            after[i].median_mpps() / before[i].median_mpps(),
            after[i].median_mpps_cpu() / before[i].median_mpps_cpu(),
            before[i].per_syscall(),
            after[i].per_syscall()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal-portable-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
