//! The worker loop: one per core, owning its I/O queues, its [`Pipeline`]
//! and its buffers. `poll` is one iteration: receive a burst from each port,
//! process every frame, transmit per destination port, expire some flows.
//! Nothing here allocates after construction.

use crate::counters::Counter;
use crate::io::{Frame, PacketIo, PortId};
use crate::pipeline::{Pipeline, Verdict, KERNEL, WIRE};
use shoal_wire::time::Instant;

/// Flows examined for expiry per poll (bounded work per burst).
pub const EXPIRE_BUDGET: usize = 64;

/// Ports a worker serves, in polling order.
const PORTS: [PortId; 2] = [WIRE, KERNEL];

/// One worker: an I/O backend instance and a pipeline.
#[derive(Debug)]
pub struct Worker<Io: PacketIo> {
    io: Io,
    pipeline: Pipeline,
    burst: usize,
    rx: Vec<Io::Frame>,
    tx: [Vec<Io::Frame>; 2],
    faults: Option<Faults<Io::Frame>>,
}

/// Fault injection on frames received from the wire (tests and the lab,
/// where the kernel has no netem): drop or delay (reorder) a share of them.
#[derive(Debug)]
pub struct Faults<F> {
    /// Frames dropped per thousand.
    pub drop_permille: u32,
    /// Frames held back behind the next ones per thousand.
    pub reorder_permille: u32,
    rng: u64,
    held: Option<F>,
}

impl<F> Faults<F> {
    /// Drops `drop_permille` and reorders `reorder_permille` of wire frames
    /// (a fixed-seed generator: runs repeat).
    pub fn new(drop_permille: u32, reorder_permille: u32) -> Self {
        Faults {
            drop_permille,
            reorder_permille,
            rng: 0x9e37_79b9_7f4a_7c15,
            held: None,
        }
    }

    fn roll(&mut self) -> u32 {
        self.rng = shoal_select::mix64(self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15));
        (self.rng % 1000) as u32
    }
}

impl<Io: PacketIo> Worker<Io> {
    /// A worker moving bursts of up to `burst` frames.
    pub fn new(io: Io, pipeline: Pipeline, burst: usize) -> Self {
        let burst = burst.max(1);
        Worker {
            io,
            pipeline,
            burst,
            rx: Vec::with_capacity(burst),
            // Every frame of both rx bursts may go to one port, plus frames the
            // pipeline originates on connection setup.
            tx: [Vec::with_capacity(4 * burst), Vec::with_capacity(4 * burst)],
            faults: None,
        }
    }

    /// Injects faults on wire frames from now on.
    pub fn inject_faults(&mut self, faults: Faults<Io::Frame>) {
        self.faults = Some(faults);
    }

    /// One iteration at time `now`. Returns the number of frames received.
    pub fn poll(&mut self, now: Instant) -> usize {
        let mut received = 0;
        for port in PORTS {
            received += self.io.rx_burst(port, &mut self.rx, self.burst);
            let mut release = None;
            if port == WIRE {
                if let Some(f) = self.faults.as_mut() {
                    // A frame held back last time goes after this burst.
                    release = f.held.take();
                }
            }
            for mut frame in self.rx.drain(..).chain(release) {
                if port == WIRE {
                    if let Some(f) = self.faults.as_mut() {
                        let r = f.roll();
                        if r < f.drop_permille {
                            self.pipeline.counters_mut().inc(Counter::InjectedDrop);
                            continue;
                        }
                        if r < f.drop_permille + f.reorder_permille && f.held.is_none() {
                            self.pipeline.counters_mut().inc(Counter::InjectedReorder);
                            f.held = Some(frame);
                            continue;
                        }
                    }
                }
                match self.pipeline.process(port, &mut frame, now) {
                    Verdict::Forward(out) => self.tx[out].push(frame),
                    Verdict::Drop => {}
                }
            }
        }
        let mut no_buffer = 0;
        for (port, bytes) in self.pipeline.take_emitted() {
            match self.io.frame_from(&bytes) {
                Some(frame) => self.tx[port].push(frame),
                None => no_buffer += 1,
            }
        }
        self.pipeline
            .counters_mut()
            .add(Counter::DropNoBuffer, no_buffer);
        for port in PORTS {
            self.flush(port);
        }
        self.pipeline.expire(now, EXPIRE_BUDGET);
        received
    }

    fn flush(&mut self, port: PortId) {
        let queue = &mut self.tx[port];
        if queue.is_empty() {
            return;
        }
        let offered: usize = queue.iter().map(Frame::len).sum();
        let count = queue.len();
        let sent = self.io.tx_burst(port, queue);
        let unsent_bytes: usize = queue.iter().map(Frame::len).sum();
        let (pkts, bytes) = if port == WIRE {
            (Counter::WireTx, Counter::WireTxBytes)
        } else {
            (Counter::KernelTx, Counter::KernelTxBytes)
        };
        let counters = self.pipeline.counters_mut();
        counters.add(pkts, sent as u64);
        counters.add(bytes, (offered - unsent_bytes) as u64);
        counters.add(Counter::DropTxFull, (count - sent) as u64);
        queue.clear();
    }

    /// The worker's pipeline (counters, flows, tables).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Mutable pipeline (to swap tables between polls).
    pub fn pipeline_mut(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }

    /// The I/O backend (tests inject and collect frames through it).
    pub fn io_mut(&mut self) -> &mut Io {
        &mut self.io
    }
}
