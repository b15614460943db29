//! The worker loop: one per core, owning its I/O queues, its [`Pipeline`]
//! and its buffers. `poll` is one iteration: receive a burst from each port,
//! pass frames another worker owns to it ([`Steering`]), process the rest
//! (one `Pipeline::process_burst` per burst) and what other workers passed
//! here, transmit per destination port, expire
//! some flows. Nothing here allocates after construction.

use crate::counters::Counter;
use crate::io::{Frame, PacketIo, PortId};
use crate::journal::Journal;
use crate::pipeline::{Pipeline, Verdict, KERNEL, WIRE};
use crate::steer;
use shoal_wire::time::Instant;

/// Frames a steering ring holds (per ordered pair of workers): 4 bursts.
/// With `N` workers a dataplane has `N * (N - 1)` rings, each
/// `STEER_RING * 24` bytes of slots (the frame handle and its port):
/// 24 KiB per pair with mbuf handles.
pub const STEER_RING: usize = 1024;

/// A frame in a steering ring, with the port it arrived on.
type Steered<F> = (PortId, F);

/// One worker's ends of the steering rings: a producer toward every other
/// worker and a consumer from every other worker (lock-free SPSC, one per
/// ordered pair), plus the per-pair counts.
#[derive(Debug)]
pub struct Steering<F> {
    index: usize,
    workers: usize,
    to: Vec<Option<rtrb::Producer<Steered<F>>>>,
    from: Vec<rtrb::Consumer<Steered<F>>>,
    /// Frames staged for each worker during the current burst.
    outbox: Vec<Vec<Steered<F>>>,
    /// Frames passed to each worker so far.
    pub sent: Vec<u64>,
    /// Frames dropped because the ring toward each worker was full.
    pub dropped: Vec<u64>,
}

impl<F> Steering<F> {
    /// The steering ends of `workers` workers, index-aligned, every ring
    /// holding `capacity` frames.
    pub fn mesh(workers: usize, capacity: usize) -> Vec<Steering<F>> {
        let mut ends: Vec<Steering<F>> = (0..workers)
            .map(|index| Steering {
                index,
                workers,
                to: (0..workers).map(|_| None).collect(),
                from: Vec::new(),
                outbox: (0..workers).map(|_| Vec::new()).collect(),
                sent: vec![0; workers],
                dropped: vec![0; workers],
            })
            .collect();
        for a in 0..workers {
            for b in 0..workers {
                if a != b {
                    let (p, c) = rtrb::RingBuffer::new(capacity);
                    ends[a].to[b] = Some(p);
                    ends[b].from.push(c);
                }
            }
        }
        ends
    }

    /// This worker's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many workers share the rings.
    pub fn workers(&self) -> usize {
        self.workers
    }
}

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
    /// The frames of a received burst this worker processes itself, and
    /// their verdicts (`Pipeline::process_burst`).
    batch: Vec<Io::Frame>,
    verdicts: Vec<Verdict>,
    tx: [Vec<Io::Frame>; 2],
    faults: Option<Faults<Io::Frame>>,
    steering: Option<Steering<Io::Frame>>,
    journal: Option<Journal>,
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
            // A burst and a frame held back by fault injection.
            batch: Vec::with_capacity(burst + 1),
            verdicts: Vec::with_capacity(burst + 1),
            // Every frame of both rx bursts and of the steering rings may go
            // to one port, plus frames the pipeline originates on connection
            // setup.
            tx: [Vec::with_capacity(8 * burst), Vec::with_capacity(8 * burst)],
            faults: None,
            steering: None,
            journal: None,
        }
    }

    /// Journals the flows every burst creates or changes into `journal`
    /// before the burst is transmitted (`pipeline/snapshot.rs`).
    pub fn journal_to(&mut self, journal: Journal) {
        self.pipeline.enable_journal();
        self.journal = Some(journal);
    }

    /// The journal (to reset it after a snapshot, read its counts).
    pub fn journal_mut(&mut self) -> Option<&mut Journal> {
        self.journal.as_mut()
    }

    /// Makes this worker one of several: frames another worker owns are
    /// passed to it, frames passed here are processed here.
    pub fn steer(&mut self, mut steering: Steering<Io::Frame>) {
        for out in &mut steering.outbox {
            out.reserve(2 * self.burst);
        }
        self.steering = (steering.workers > 1).then_some(steering);
    }

    /// The steering ends (None with one worker).
    pub fn steering(&self) -> Option<&Steering<Io::Frame>> {
        self.steering.as_ref()
    }

    /// Injects faults on wire frames from now on.
    pub fn inject_faults(&mut self, faults: Faults<Io::Frame>) {
        self.faults = Some(faults);
    }

    /// One iteration at time `now`. Returns the number of frames received
    /// (from the ports and from other workers).
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
            let mut rx = std::mem::take(&mut self.rx);
            for frame in rx.drain(..).chain(release) {
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
                if let Some(s) = self.steering.as_mut() {
                    if let Some(owner) =
                        steer::target(port, frame.bytes(), self.pipeline.tables(), s.workers)
                    {
                        if owner != s.index {
                            s.outbox[owner].push((port, frame));
                            continue;
                        }
                    }
                }
                self.batch.push(frame);
            }
            self.rx = rx;
            self.pipeline
                .process_burst(port, &mut self.batch, now, &mut self.verdicts);
            for (frame, verdict) in self.batch.drain(..).zip(&self.verdicts) {
                if let Verdict::Forward(out) = *verdict {
                    self.tx[out].push(frame);
                }
            }
        }
        if self.steering.is_some() {
            self.pass_steered();
            received += self.process_steered(now);
        }
        // Write-ahead: the flows this burst made are on file before any of
        // its frames leaves (one write, only when there are some).
        if let Some(j) = self.journal.as_mut() {
            if received > 0 {
                let complete = self
                    .pipeline
                    .take_journal(shoal_channel::monotonic_ns(), &mut j.buf);
                j.needs_snapshot |= !complete;
                j.flush();
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

    /// Pushes the frames staged for other workers into their rings, one
    /// ring operation per destination; what does not fit is dropped and
    /// counted.
    fn pass_steered(&mut self) {
        let Some(s) = self.steering.as_mut() else {
            return;
        };
        let counters = self.pipeline.counters_mut();
        for (owner, out) in s.outbox.iter_mut().enumerate() {
            if out.is_empty() {
                continue;
            }
            let Some(ring) = s.to[owner].as_mut() else {
                continue;
            };
            let n = out.len().min(ring.slots());
            let passed = match ring.write_chunk_uninit(n) {
                Ok(chunk) => chunk.fill_from_iter(out.drain(..n)),
                Err(_) => 0,
            };
            let dropped = out.len() as u64;
            out.clear();
            s.sent[owner] += passed as u64;
            s.dropped[owner] += dropped;
            counters.add(Counter::SteeredOut, passed as u64);
            counters.add(Counter::DropSteerFull, dropped);
        }
    }

    /// Processes what other workers passed here (at most a few bursts per
    /// ring per poll, so one busy neighbour cannot starve the ports).
    fn process_steered(&mut self, now: Instant) -> usize {
        let Some(s) = self.steering.as_mut() else {
            return 0;
        };
        let mut total = 0;
        for ring in &mut s.from {
            let n = ring.slots().min(2 * self.burst);
            if n == 0 {
                continue;
            }
            let Ok(chunk) = ring.read_chunk(n) else {
                continue;
            };
            for (port, mut frame) in chunk {
                match self.pipeline.process(port, &mut frame, now) {
                    Verdict::Forward(out) => self.tx[out].push(frame),
                    Verdict::Drop => {}
                }
            }
            total += n;
        }
        self.pipeline
            .counters_mut()
            .add(Counter::SteeredIn, total as u64);
        total
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
