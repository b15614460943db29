//! The event loop: back-end nodes (a FIFO CPU, a FIFO disk, an LRU cache),
//! the front-end's Algorithm 1, a closed population of clients on
//! persistent connections, and the three ways of serving a connection's
//! later requests.
//!
//! Time is simulated, in integer nanoseconds: the figures depend on the
//! model, the parameters and the seed, never on the machine running it.
//!
//! A request's life on the node that serves it: if its file is cached, one
//! CPU job (connection set-up when charged, then transmit); otherwise first
//! a disk job (seek + transfer, the file then cached if it is 500 KB or
//! less), then the CPU job. Requests for a file whose read is already queued
//! on that node wait for that read instead of queueing their own. A client
//! sends its next request when the previous one completes (no think time).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use super::cache::LruCache;
use super::workload::{Workload, WorkloadParams};

/// How a connection's requests after the first are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// DTCP / Shoal's re-handoff: every request goes to the node Algorithm 1
    /// picks; a node that is not the connection's current one pays
    /// [`Costs::move_ns`] to take the connection over.
    ReHandoff,
    /// The connection stays where its first request was placed; that node
    /// serves every later request, from its disk when not cached.
    FirstRequest,
    /// LARD's back-end forwarding: the connection's node, when it does not
    /// have the file, fetches it from the preferred node if that node has
    /// it; the preferred node pays one transmit, the connection's node two
    /// (receive and send) and caches the file.
    BackendForwarding,
}

impl Strategy {
    /// All three, in the order the tables print them.
    pub const ALL: [Strategy; 3] = [
        Strategy::ReHandoff,
        Strategy::FirstRequest,
        Strategy::BackendForwarding,
    ];

    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::ReHandoff => "re-handoff",
            Strategy::FirstRequest => "first-request",
            Strategy::BackendForwarding => "back-end fwd",
        }
    }
}

/// Service costs of a back-end node (the LARD paper's figures, as the seed
/// quotes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Costs {
    /// CPU for a connection's establishment and teardown: 145 µs.
    pub connection_ns: u64,
    /// CPU a node pays to take over a connection on re-handoff (the replay
    /// into its kernel): by default one establishment, 145 µs.
    pub move_ns: u64,
    /// CPU per started 512 bytes transmitted: 40 µs.
    pub transmit_ns_per_512: u64,
    /// Disk seek per read: 14 ms.
    pub seek_ns: u64,
    /// Disk transfer per byte: 100 ns (10 MB/s, decimal).
    pub disk_ns_per_byte: u64,
    /// Memory cache per node: 150 MiB.
    pub cache_bytes: u64,
    /// Larger files are never cached: 500 KB (512 000 bytes).
    pub max_cached_bytes: u32,
}

impl Default for Costs {
    fn default() -> Self {
        Self {
            connection_ns: 145_000,
            move_ns: 145_000,
            transmit_ns_per_512: 40_000,
            seek_ns: 14_000_000,
            disk_ns_per_byte: 100,
            cache_bytes: 150 << 20,
            max_cached_bytes: 500 * 1024,
        }
    }
}

impl Costs {
    fn transmit(&self, bytes: u32) -> u64 {
        u64::from(bytes.div_ceil(512)) * self.transmit_ns_per_512
    }

    fn disk(&self, bytes: u32) -> u64 {
        self.seek_ns + u64::from(bytes) * self.disk_ns_per_byte
    }
}

/// One simulation run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Back-end nodes.
    pub servers: u32,
    /// Clients per back-end node, each with one connection open at a time.
    pub clients_per_server: u32,
    /// Requests issued in the run (warm-up included).
    pub requests: u64,
    /// Share of completions before the measurement starts (cold caches).
    pub warmup: f64,
    /// Algorithm 1's replication threshold on `req(M) - req(N)`: 100.
    pub threshold: u32,
    /// Re-handoff keeps a request on the connection's node when that node
    /// has the file (cached or being read) instead of asking Algorithm 1,
    /// which may move it to a less loaded holder. Off by default: the seed's
    /// DTCP sends every request to Algorithm 1's choice.
    pub sticky: bool,
    /// Back-end forwarding fetches from the preferred node even when the
    /// connection's node has the file itself (the front-end's preferred id
    /// always followed). Off by default: a node serves what it has.
    pub forward_when_cached: bool,
    /// Node costs.
    pub costs: Costs,
    /// The workload.
    pub workload: WorkloadParams,
    /// Seed of the request stream.
    pub seed: u64,
}

impl SimConfig {
    /// Checks the run can measure something: at least one node, client and
    /// request, and a warm-up that ends before the last request is issued.
    pub fn validate(&self) -> Result<(), String> {
        if self.servers == 0 || self.clients_per_server == 0 {
            return Err("servers and clients per server must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.warmup) {
            return Err(format!("warm-up {} must be in [0, 1)", self.warmup));
        }
        let clients = u64::from(self.servers) * u64::from(self.clients_per_server);
        let warm = (self.requests as f64 * self.warmup) as u64;
        if self.requests < 2 * clients || warm + clients >= self.requests {
            return Err(format!(
                "{} requests are too few for {clients} clients and a {:.0} % warm-up: \
                 raise --requests",
                self.requests,
                self.warmup * 100.0
            ));
        }
        if self.workload.directories == 0 || self.workload.alpha < 0.0 {
            return Err("directories must be at least 1 and alpha non-negative".into());
        }
        if !(0.0..=1.0).contains(&self.workload.related) {
            return Err(format!(
                "related {} must be in [0, 1]",
                self.workload.related
            ));
        }
        Ok(())
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            servers: 1,
            clients_per_server: 32,
            requests: 2_000_000,
            warmup: 0.5,
            threshold: 100,
            sticky: false,
            forward_when_cached: false,
            costs: Costs::default(),
            workload: WorkloadParams::default(),
            seed: 1,
        }
    }
}

/// What one run measured; rates over the measurement window (after the
/// warm-up, until the last request is issued), counts over the whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimResult {
    /// Requests completed per simulated second in the window.
    pub throughput: f64,
    /// Share of the window's requests whose file was in the memory of the
    /// node that read it for them (no disk read, no wait for one).
    pub hit_ratio: f64,
    /// Share of the window's requests that moved their connection
    /// (re-handoff) or were fetched from another node (forwarding).
    pub moved_ratio: f64,
    /// Back-end network bytes per request in the window (forwarding only).
    pub backend_bytes_per_request: f64,
    /// Mean CPU busy share of the nodes in the window.
    pub cpu_utilisation: f64,
    /// Mean disk busy share of the nodes in the window.
    pub disk_utilisation: f64,
    /// Requests issued.
    pub issued: u64,
    /// Completions (all requests, the warm-up's and the drain's included).
    pub completed: u64,
    /// Requests completed more than once (must be 0).
    pub completed_twice: u64,
    /// Requests never completed (must be 0).
    pub never_completed: u64,
    /// Simulated seconds of the measurement window.
    pub window_s: f64,
}

#[derive(Debug, Clone, Copy)]
struct Request {
    id: u64,
    client: u32,
    file: u32,
    /// Set-up CPU the serving node charges (establishment or move).
    setup_ns: u64,
}

/// A CPU job.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// Send the file to the client.
    Serve(Request),
    /// Back-end forwarding, on the preferred node: send the file to `origin`.
    Remote { req: Request, origin: u32 },
    /// Back-end forwarding, on the connection's node: receive and send.
    Origin(Request),
}

impl Work {
    fn request(&self) -> &Request {
        match self {
            Work::Serve(r) | Work::Origin(r) | Work::Remote { req: r, .. } => r,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct DiskJob {
    file: u32,
    /// For a file too large to cache: the one request this read is for.
    /// Cacheable reads serve the waiters in `Node::pending` instead.
    uncached: Option<Work>,
}

#[derive(Debug)]
struct Node {
    cpu: VecDeque<(Work, u64)>,
    disk: VecDeque<DiskJob>,
    cache: LruCache,
    /// Cacheable files being read, with the requests waiting for them.
    pending: HashMap<u32, Vec<Work>>,
}

impl Node {
    /// The seed's processing load: messages at the CPU.
    fn processing_load(&self) -> usize {
        self.cpu.len()
    }

    /// The seed's disk load: messages at the disk.
    fn disk_load(&self) -> usize {
        self.disk.len()
    }

    /// In the front-end's server set for `file`: cached, or being read.
    fn holds(&self, file: u32) -> bool {
        self.cache.contains(file) || self.pending.contains_key(&file)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    CpuDone(u32),
    DiskDone(u32),
}

#[derive(Debug, Default)]
struct Client {
    /// The open connection's remaining requests, next last.
    remaining: Vec<u32>,
    /// Node holding the connection; `None` before its first request.
    node: Option<u32>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    completed: u64,
    hits: u64,
    moved: u64,
    backend_bytes: u64,
    cpu_busy_ns: u64,
    disk_busy_ns: u64,
}

struct Sim<'a> {
    cfg: &'a SimConfig,
    strategy: Strategy,
    workload: Workload,
    sizes: Vec<u32>,
    nodes: Vec<Node>,
    clients: Vec<Client>,
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    now: u64,
    /// Start of Algorithm 1's scans, advanced per decision, so that ties
    /// are not all broken towards node 0.
    rotate: u32,
    issued: u64,
    completed: u64,
    completions: Vec<u8>,
    measuring: bool,
    window_start: u64,
    window_end: Option<u64>,
    window: Window,
    scratch: Vec<u32>,
}

impl Sim<'_> {
    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, event)));
    }

    /// Algorithm 1: the least processing load among the nodes in the file's
    /// server set (M); the least disk load of all (N, ties to the least
    /// processing load); N when no node holds the file or when
    /// `req(M) - req(N) > threshold` and N does not hold it, else M.
    fn preferred(&mut self, file: u32) -> u32 {
        let n = self.nodes.len() as u32;
        self.rotate = (self.rotate + 1) % n;
        let order = (0..n).map(|i| (self.rotate + i) % n);
        let m = order
            .clone()
            .filter(|&i| self.nodes[i as usize].holds(file))
            .min_by_key(|&i| self.nodes[i as usize].processing_load());
        let least_disk = order
            .min_by_key(|&i| {
                let node = &self.nodes[i as usize];
                (node.disk_load(), node.processing_load())
            })
            .unwrap_or(0);
        match m {
            None => least_disk,
            Some(m) => {
                let req_m = self.nodes[m as usize].processing_load();
                let req_n = self.nodes[least_disk as usize].processing_load();
                if req_m > req_n + self.cfg.threshold as usize
                    && !self.nodes[least_disk as usize].holds(file)
                {
                    least_disk
                } else {
                    m
                }
            }
        }
    }

    fn cpu_ns(&self, work: &Work) -> u64 {
        let req = work.request();
        let tx = self.cfg.costs.transmit(self.sizes[req.file as usize]);
        match work {
            Work::Serve(_) => req.setup_ns + tx,
            Work::Remote { .. } => tx,
            Work::Origin(_) => req.setup_ns + 2 * tx,
        }
    }

    fn push_cpu(&mut self, node: u32, work: Work) {
        let ns = self.cpu_ns(&work);
        let q = &mut self.nodes[node as usize].cpu;
        q.push_back((work, ns));
        if q.len() == 1 {
            self.start_cpu(node);
        }
    }

    fn start_cpu(&mut self, node: u32) {
        if let Some(&(_, ns)) = self.nodes[node as usize].cpu.front() {
            if self.measuring {
                self.window.cpu_busy_ns += ns;
            }
            self.schedule(self.now + ns, Event::CpuDone(node));
        }
    }

    fn push_disk(&mut self, node: u32, job: DiskJob) {
        let q = &mut self.nodes[node as usize].disk;
        q.push_back(job);
        if q.len() == 1 {
            self.start_disk(node);
        }
    }

    fn start_disk(&mut self, node: u32) {
        if let Some(job) = self.nodes[node as usize].disk.front() {
            let ns = self.cfg.costs.disk(self.sizes[job.file as usize]);
            if self.measuring {
                self.window.disk_busy_ns += ns;
            }
            self.schedule(self.now + ns, Event::DiskDone(node));
        }
    }

    /// `work` reaches the node whose memory or disk provides its file.
    fn serve_at(&mut self, node: u32, work: Work) {
        let file = work.request().file;
        let size = self.sizes[file as usize];
        let n = &mut self.nodes[node as usize];
        if n.cache.contains(file) {
            n.cache.touch(file);
            if self.measuring {
                self.window.hits += 1;
            }
            self.push_cpu(node, work);
        } else if let Some(waiters) = n.pending.get_mut(&file) {
            waiters.push(work);
        } else if size > self.cfg.costs.max_cached_bytes {
            let job = DiskJob {
                file,
                uncached: Some(work),
            };
            self.push_disk(node, job);
        } else {
            n.pending.insert(file, vec![work]);
            let job = DiskJob {
                file,
                uncached: None,
            };
            self.push_disk(node, job);
        }
    }

    /// The client's next request, opening a new connection when its current
    /// one is done; nothing once every request has been issued.
    fn issue(&mut self, client: u32) {
        if self.issued == self.cfg.requests {
            return;
        }
        if self.clients[client as usize].remaining.is_empty() {
            let mut files = std::mem::take(&mut self.scratch);
            self.workload.next_connection(&mut files);
            files.reverse();
            let c = &mut self.clients[client as usize];
            self.scratch = std::mem::replace(&mut c.remaining, files);
            c.node = None;
        }
        let c = &mut self.clients[client as usize];
        let Some(file) = c.remaining.pop() else {
            return;
        };
        let current = c.node;
        let mut req = Request {
            id: self.issued,
            client,
            file,
            setup_ns: 0,
        };
        self.issued += 1;
        if self.issued == self.cfg.requests {
            self.window_end = Some(self.now);
            self.measuring = false;
        }
        let Some(origin) = current else {
            let p = self.preferred(file);
            self.clients[client as usize].node = Some(p);
            req.setup_ns = self.cfg.costs.connection_ns;
            self.serve_at(p, Work::Serve(req));
            return;
        };
        match self.strategy {
            Strategy::FirstRequest => self.serve_at(origin, Work::Serve(req)),
            Strategy::ReHandoff => {
                let stay = self.cfg.sticky && self.nodes[origin as usize].holds(file);
                let p = if stay { origin } else { self.preferred(file) };
                if p != origin {
                    req.setup_ns = self.cfg.costs.move_ns;
                    self.clients[client as usize].node = Some(p);
                    if self.measuring {
                        self.window.moved += 1;
                    }
                }
                self.serve_at(p, Work::Serve(req));
            }
            Strategy::BackendForwarding => {
                let p = self.preferred(file);
                // The connection's node (which decides, per the seed) asks
                // the preferred node only when that node has (or is reading)
                // the file and it has not: from its own memory it costs one
                // transmit instead of three, and its own disk serves as well
                // as another node's.
                let here = !self.cfg.forward_when_cached && self.nodes[origin as usize].holds(file);
                if p != origin && !here && self.nodes[p as usize].holds(file) {
                    if self.measuring {
                        self.window.moved += 1;
                        self.window.backend_bytes += u64::from(self.sizes[file as usize]);
                    }
                    self.serve_at(p, Work::Remote { req, origin });
                } else {
                    self.serve_at(origin, Work::Serve(req));
                }
            }
        }
    }

    fn complete(&mut self, req: Request) {
        self.completed += 1;
        let done = &mut self.completions[req.id as usize];
        *done = done.saturating_add(1);
        if self.measuring {
            self.window.completed += 1;
        }
        let warm = (self.cfg.requests as f64 * self.cfg.warmup) as u64;
        if self.completed == warm.max(1) && self.window_end.is_none() {
            self.measuring = true;
            self.window_start = self.now;
            self.window = Window::default();
        }
        self.issue(req.client);
    }

    fn cpu_done(&mut self, node: u32) {
        let Some((work, _)) = self.nodes[node as usize].cpu.pop_front() else {
            return;
        };
        self.start_cpu(node);
        match work {
            Work::Serve(req) | Work::Origin(req) => self.complete(req),
            Work::Remote { req, origin } => {
                if self.sizes[req.file as usize] <= self.cfg.costs.max_cached_bytes {
                    self.nodes[origin as usize]
                        .cache
                        .insert(req.file, &self.sizes);
                }
                self.push_cpu(origin, Work::Origin(req));
            }
        }
    }

    fn disk_done(&mut self, node: u32) {
        let Some(job) = self.nodes[node as usize].disk.pop_front() else {
            return;
        };
        self.start_disk(node);
        if let Some(work) = job.uncached {
            self.push_cpu(node, work);
            return;
        }
        let n = &mut self.nodes[node as usize];
        n.cache.insert(job.file, &self.sizes);
        for work in n.pending.remove(&job.file).unwrap_or_default() {
            self.push_cpu(node, work);
        }
    }

    fn run(mut self) -> SimResult {
        for c in 0..self.clients.len() as u32 {
            self.issue(c);
        }
        while let Some(Reverse((at, _, event))) = self.events.pop() {
            self.now = at;
            match event {
                Event::CpuDone(n) => self.cpu_done(n),
                Event::DiskDone(n) => self.disk_done(n),
            }
        }
        let end = self.window_end.unwrap_or(self.now);
        let span_ns = end.saturating_sub(self.window_start).max(1);
        let w = self.window;
        let per_req = |x: u64| x as f64 / (w.completed.max(1)) as f64;
        let node_ns = span_ns as f64 * f64::from(self.cfg.servers);
        let (mut completed_twice, mut never_completed) = (0, 0);
        for &c in &self.completions {
            completed_twice += u64::from(c > 1);
            never_completed += u64::from(c == 0);
        }
        SimResult {
            throughput: w.completed as f64 / (span_ns as f64 * 1e-9),
            hit_ratio: per_req(w.hits),
            moved_ratio: per_req(w.moved),
            backend_bytes_per_request: per_req(w.backend_bytes),
            cpu_utilisation: w.cpu_busy_ns as f64 / node_ns,
            disk_utilisation: w.disk_busy_ns as f64 / node_ns,
            issued: self.issued,
            completed: self.completed,
            completed_twice,
            never_completed,
            window_s: span_ns as f64 * 1e-9,
        }
    }
}

/// Runs `strategy` on the workload of `cfg` (checked by
/// [`SimConfig::validate`]); the same `cfg` gives the same connections, in
/// the same order, to every strategy.
pub fn simulate(cfg: &SimConfig, strategy: Strategy) -> SimResult {
    let workload = Workload::new(cfg.workload, cfg.seed);
    let sizes = workload.sizes().to_vec();
    let servers = cfg.servers.max(1);
    let nodes = (0..servers)
        .map(|_| Node {
            cpu: VecDeque::new(),
            disk: VecDeque::new(),
            cache: LruCache::new(cfg.costs.cache_bytes, sizes.len()),
            pending: HashMap::new(),
        })
        .collect();
    let clients = (0..servers * cfg.clients_per_server.max(1))
        .map(|_| Client::default())
        .collect();
    Sim {
        cfg,
        strategy,
        workload,
        nodes,
        clients,
        events: BinaryHeap::new(),
        seq: 0,
        now: 0,
        rotate: 0,
        issued: 0,
        completed: 0,
        completions: vec![0; cfg.requests as usize],
        measuring: false,
        window_start: 0,
        window_end: None,
        window: Window::default(),
        scratch: Vec::new(),
        sizes,
    }
    .run()
}
