//! Target `pipeline`: three members' `Pipeline`s on one simulated broadcast
//! segment, in one mode (local, DPR by MAC or IP-in-IP, stateless or
//! stateful, splice frequent or rare, per request or not), driven by
//! operations the input chooses: clients opening connections, sending
//! requests, acknowledging, closing and resetting (with sequence numbers a
//! small model keeps plausible, or off by an arbitrary amount), the
//! members' kernels answering, arbitrary and mutated frames from either
//! side, replays of anything seen on the segment (handoff datagrams
//! included), ICMP errors, epoch changes and the clock.
//!
//! Invariants checked after every frame:
//! - every frame a member receives ends in exactly one counted outcome;
//! - no flow table holds more flows than its capacity;
//! - every frame a member originates has valid IPv4 and TCP/UDP/ICMP
//!   checksums, and so does every frame it forwards when it received a
//!   valid one (the incremental updates of splice and NAT are right);
//! - at most one member acts on a client's SYN (answers it, delivers it to
//!   its kernel or redirects it): never two.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};

use shoal_config::{Config, Dispatch, DispatchPolicy, HandoffMode, Mode, State};
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::{Frame, PortId};
use shoal_dataplane::pipeline::{MemberEntry, Pipeline, Tables, Verdict, KERNEL, WIRE};
use shoal_dataplane::traffic::{client_endpoint, ipv4_frame, tcp_frame, Endpoint};
use shoal_wire::icmpv4::{Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr};
use shoal_wire::time::Instant;
use shoal_wire::{
    EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, TcpFlags, TcpPacket, TcpRepr,
};

use crate::verify;

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const CLUSTER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]);
const MEMBERS: [&str; 3] = ["srv1", "srv2", "srv3"];
const CLIENTS: usize = 6;
/// Frames kept on the segment for `Deliver` and `Replay`.
const SEGMENT_LIMIT: usize = 256;
/// Operations per input (bounded work per run).
const MAX_OPS: usize = 400;

/// Requests a client can send (cut anywhere by `ClientData`).
const REQUESTS: [&[u8]; 6] = [
    b"GET /a HTTP/1.1\r\nHost: v\r\n\r\n",
    b"GET /b/c?x=1 HTTP/1.1\r\nHost: v\r\nCookie: shoal=srv2\r\n\r\nGET /d HTTP/1.1\r\nHost: v\r\n\r\n",
    b"POST /up HTTP/1.1\r\nHost: v\r\nContent-Length: 5\r\n\r\nhelloGET /e HTTP/1.1\r\nHost: v\r\n\r\n",
    b"POST /c HTTP/1.1\r\nHost: v\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"\x16\x03\x01garbage\r\n\r\n",
];

/// Responses a kernel can send.
const RESPONSES: [&[u8]; 5] = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye",
    b"HTTP/1.0 200 OK\r\n\r\nold",
];

/// One operation of a scenario. The input is read byte by byte
/// ([`Op::decode`]): an operation code, then its fields in order (little
/// endian), so that seeds can be written by hand (`fuzz/seeds/pipeline/`,
/// made by `fuzz/seeds/pipeline.py`).
#[derive(Debug)]
enum Op {
    ClientSyn {
        client: u8,
    },
    ClientData {
        client: u8,
        request: u8,
        upto: u8,
    },
    ClientAck {
        client: u8,
    },
    ClientFin {
        client: u8,
    },
    ClientRst {
        client: u8,
        seq_off: i32,
    },
    /// A segment with arbitrary flags and sequence numbers off the model's.
    ClientOdd {
        client: u8,
        flags: u8,
        seq_off: i32,
        ack_off: i32,
        len: u8,
    },
    KernelSynAck {
        member: u8,
        isn: u32,
    },
    KernelData {
        member: u8,
        response: u8,
    },
    KernelAck {
        member: u8,
    },
    KernelFin {
        member: u8,
    },
    KernelRst {
        member: u8,
    },
    /// A frame the kernel sends for the VIP to a client it has no flow for.
    KernelStray {
        member: u8,
        client: u8,
        flags: u8,
    },
    Raw {
        member: u8,
        kernel: bool,
        bytes: Vec<u8>,
    },
    /// The last frame sent on the segment again with one byte changed.
    Mutate {
        pos: u16,
        value: u8,
    },
    /// A frame seen on the segment before, again (handoff datagrams too).
    Replay {
        index: u8,
    },
    /// An ICMP error about a connection (or about none).
    Icmp {
        client: u8,
        known: bool,
        mtu: u16,
    },
    Deliver,
    Wait {
        ms: u16,
    },
    Epoch {
        alive: [bool; 3],
        draining: [bool; 3],
        load: [u8; 3],
    },
    Confirm,
}

impl Op {
    /// The next operation, `None` at the end of the input.
    fn decode(u: &mut Unstructured<'_>) -> Option<Op> {
        if u.is_empty() {
            return None;
        }
        let code = u8::arbitrary(u).ok()?;
        let mut b = || u8::arbitrary(u).unwrap_or(0);
        Some(match code % 20 {
            0 => Op::ClientSyn { client: b() },
            1 => Op::ClientData {
                client: b(),
                request: b(),
                upto: b(),
            },
            2 => Op::ClientAck { client: b() },
            3 => Op::ClientFin { client: b() },
            4 => Op::ClientRst {
                client: b(),
                seq_off: i32::from_le_bytes([b(), b(), b(), b()]),
            },
            5 => Op::ClientOdd {
                client: b(),
                flags: b(),
                seq_off: i32::from_le_bytes([b(), b(), b(), b()]),
                ack_off: i32::from_le_bytes([b(), b(), b(), b()]),
                len: b(),
            },
            6 => Op::KernelSynAck {
                member: b(),
                isn: u32::from_le_bytes([b(), b(), b(), b()]),
            },
            7 => Op::KernelData {
                member: b(),
                response: b(),
            },
            8 => Op::KernelAck { member: b() },
            9 => Op::KernelFin { member: b() },
            10 => Op::KernelRst { member: b() },
            11 => Op::KernelStray {
                member: b(),
                client: b(),
                flags: b(),
            },
            12 => {
                let (member, kernel, len) = (b(), b() & 1 == 1, b());
                let bytes = u.bytes(usize::from(len).min(u.len())).ok()?.to_vec();
                Op::Raw {
                    member,
                    kernel,
                    bytes,
                }
            }
            13 => Op::Mutate {
                pos: u16::from_le_bytes([b(), b()]),
                value: b(),
            },
            14 => Op::Replay { index: b() },
            15 => Op::Icmp {
                client: b(),
                known: b() & 1 == 1,
                mtu: u16::from_le_bytes([b(), b()]),
            },
            16 => Op::Deliver,
            17 => Op::Wait {
                ms: u16::from_le_bytes([b(), b()]),
            },
            18 => Op::Epoch {
                alive: [b() & 1 == 1, b() & 1 == 1, b() & 1 == 1],
                draining: [b() & 1 == 1, b() & 1 == 1, b() & 1 == 1],
                load: [b(), b(), b()],
            },
            _ => Op::Confirm,
        })
    }
}

/// A client's view of its connection.
#[derive(Debug, Default, Clone, Copy)]
struct Client {
    open: bool,
    snd_nxt: u32,
    rcv_nxt: u32,
    sent_request: usize,
    request: usize,
    /// The newest TSval the client received (echoed in its TSecr).
    ts_recent: u32,
}

/// A kernel's view of one connection.
#[derive(Debug, Default, Clone, Copy)]
struct KernelConn {
    rcv_nxt: u32,
    snd_nxt: u32,
    answered: bool,
    /// The newest TSval the kernel received (echoed in its TSecr).
    ts_recent: u32,
}

/// A frame on the segment and who sent it (`None`: a client or a stranger).
#[derive(Debug, Clone)]
struct OnWire {
    from: Option<usize>,
    bytes: Vec<u8>,
    valid: bool,
}

struct Cluster {
    members: Vec<Pipeline>,
    configs: Vec<Config>,
    capacity: usize,
    now: Instant,
    clients: [Client; CLIENTS],
    kernels: Vec<BTreeMap<(Ipv4Addr, u16), KernelConn>>,
    newest: Vec<Option<(Ipv4Addr, u16)>>,
    queue: VecDeque<OnWire>,
    seen: Vec<OnWire>,
    isn: u32,
    epoch: u64,
    /// Print every operation and verdict (`SHOAL_FUZZ_TRACE=1`).
    trace: bool,
}

/// The target.
pub fn run(data: &[u8]) {
    let [mode, capacity, ..] = *data else {
        return;
    };
    let mut u = Unstructured::new(&data[2..]);
    let mut c = Cluster::new(mode, 8 + usize::from(capacity % 64));
    for _ in 0..MAX_OPS {
        let Some(op) = Op::decode(&mut u) else { break };
        if c.trace {
            eprintln!("{op:?}");
        }
        c.apply(op);
    }
}

fn config(member: &str, mode: u8) -> Config {
    // Loaded once per process: a run builds three members.
    static BASE: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    let mut cfg = BASE
        .get_or_init(|| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
            shoal_config::load_file(&path).expect("the example config loads")
        })
        .clone();
    member.clone_into(&mut cfg.cluster.local_member);
    let s = &mut cfg.services[0];
    let (m, state) = match mode % 8 {
        0 => (Mode::Local, State::Stateful),
        1 => (Mode::DprMac, State::Stateless),
        2 => (Mode::DprMac, State::Stateful),
        3 => (Mode::DprIpip, State::Stateless),
        4 => (Mode::DprIpip, State::Stateful),
        _ => (Mode::Splice, State::Stateful),
    };
    s.mode = m;
    s.state = state;
    if m == Mode::Splice {
        let mut d = Dispatch {
            policy: DispatchPolicy::UrlHash,
            ..Dispatch::default()
        };
        match mode % 8 {
            6 => d.handoff = HandoffMode::Rare,
            7 => d.per_request = false,
            _ => {}
        }
        if mode & 0x80 != 0 {
            d.policy = DispatchPolicy::Cookie;
            d.cookie_name = Some("shoal".to_owned());
        }
        s.dispatch = Some(d);
    }
    cfg
}

impl Cluster {
    fn new(mode: u8, capacity: usize) -> Cluster {
        let configs: Vec<Config> = MEMBERS.iter().map(|m| config(m, mode)).collect();
        let key = shoal_l7::handoff::ClusterKey::from_bytes(&[9; 32]).expect("valid key");
        let members = configs
            .iter()
            .enumerate()
            .map(|(k, cfg)| {
                let tables = Arc::new(Tables::from_config(cfg, 1).expect("tables"));
                let mut p = Pipeline::new(
                    tables,
                    capacity,
                    Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
                );
                p.set_cookie_secret([k as u8 + 1; 32]);
                p.enable_handoff(key.clone(), 1 + k as u64 * 256, 1_800_000_000_000);
                p
            })
            .collect();
        Cluster {
            members,
            configs,
            capacity,
            now: Instant::from_secs(100),
            clients: [Client::default(); CLIENTS],
            kernels: vec![BTreeMap::new(); 3],
            newest: vec![None; 3],
            queue: VecDeque::new(),
            seen: Vec::new(),
            isn: 0x1000_0000,
            epoch: 1,
            trace: std::env::var_os("SHOAL_FUZZ_TRACE").is_some(),
        }
    }

    fn client(i: u8) -> (usize, Endpoint) {
        let i = usize::from(i) % CLIENTS;
        (i, client_endpoint(i as u32, 40_000 + i as u16))
    }

    fn service() -> Endpoint {
        Endpoint {
            mac: CLUSTER_MAC,
            ip: VIP,
            port: 80,
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::ClientSyn { client } => {
                let (i, ep) = Self::client(client);
                self.isn = self.isn.wrapping_add(0x0100_0000);
                let isn = self.isn;
                self.clients[i] = Client {
                    open: true,
                    snd_nxt: isn.wrapping_add(1),
                    rcv_nxt: 0,
                    sent_request: 0,
                    request: i % REQUESTS.len(),
                    ts_recent: 0,
                };
                let repr = stamped(tcp(ep.port, 80, isn, None, TcpFlags::SYN), self.now, 0);
                let frame = tcp_frame(&ep, &Self::service(), &repr, &[], 1);
                let actors = self.client_sends(&frame, true);
                assert!(actors <= 1, "{actors} members acted on one SYN");
            }
            Op::ClientData {
                client,
                request,
                upto,
            } => {
                let (i, ep) = Self::client(client);
                let c = &mut self.clients[i];
                if !c.open {
                    return;
                }
                if c.sent_request == 0 {
                    c.request = usize::from(request) % REQUESTS.len();
                }
                let all = REQUESTS[c.request];
                let from = c.sent_request.min(all.len());
                let to = (from + 1 + usize::from(upto)).min(all.len());
                let payload = &all[from..to];
                let (seq, ack, ts) = (c.snd_nxt, c.rcv_nxt, c.ts_recent);
                c.snd_nxt = seq.wrapping_add(payload.len() as u32);
                c.sent_request = if to == all.len() { 0 } else { to };
                let repr = stamped(
                    tcp(ep.port, 80, seq, Some(ack), TcpFlags::PSH),
                    self.now,
                    ts,
                );
                let frame = tcp_frame(&ep, &Self::service(), &repr, payload, 2);
                self.client_sends(&frame, true);
            }
            Op::ClientAck { client } => self.client_flags(client, TcpFlags::ACK, 0),
            Op::ClientFin { client } => self.client_flags(client, TcpFlags::FIN, 1),
            Op::ClientRst { client, seq_off } => {
                let (i, ep) = Self::client(client);
                let c = self.clients[i];
                let repr = tcp(
                    ep.port,
                    80,
                    c.snd_nxt.wrapping_add(seq_off as u32),
                    None,
                    TcpFlags::RST,
                );
                let frame = tcp_frame(&ep, &Self::service(), &repr, &[], 3);
                self.client_sends(&frame, true);
            }
            Op::ClientOdd {
                client,
                flags,
                seq_off,
                ack_off,
                len,
            } => {
                let (i, ep) = Self::client(client);
                let c = self.clients[i];
                let flags = TcpFlags(flags);
                let ack = flags
                    .contains(TcpFlags::ACK)
                    .then(|| c.rcv_nxt.wrapping_add(ack_off as u32));
                let mut repr = tcp(
                    ep.port,
                    80,
                    c.snd_nxt.wrapping_add(seq_off as u32),
                    ack,
                    flags,
                );
                repr.flags = flags;
                let payload = vec![b'x'; usize::from(len)];
                let frame = tcp_frame(&ep, &Self::service(), &repr, &payload, 4);
                self.client_sends(&frame, true);
            }
            Op::KernelSynAck { member, isn } => {
                let m = usize::from(member) % 3;
                let Some(key) = self.newest[m] else { return };
                let Some(k) = self.kernels[m].get_mut(&key) else {
                    return;
                };
                if k.answered {
                    return;
                }
                k.answered = true;
                k.snd_nxt = isn.wrapping_add(1);
                let repr = stamped(
                    tcp(80, key.1, isn, Some(k.rcv_nxt), TcpFlags::SYN),
                    self.now,
                    k.ts_recent,
                );
                self.kernel_sends(m, key, &repr, &[]);
            }
            Op::KernelData { member, response } => {
                let payload = RESPONSES[usize::from(response) % RESPONSES.len()];
                self.kernel_segment(member, TcpFlags::PSH, payload);
            }
            Op::KernelAck { member } => self.kernel_segment(member, TcpFlags::EMPTY, &[]),
            Op::KernelFin { member } => self.kernel_segment(member, TcpFlags::FIN, &[]),
            Op::KernelRst { member } => self.kernel_segment(member, TcpFlags::RST, &[]),
            Op::KernelStray {
                member,
                client,
                flags,
            } => {
                let m = usize::from(member) % 3;
                let (_, ep) = Self::client(client);
                let flags = TcpFlags(flags);
                let mut repr = tcp(80, ep.port.wrapping_add(1000), 77, Some(88), flags);
                repr.flags = flags;
                self.kernel_sends(m, (ep.ip, ep.port.wrapping_add(1000)), &repr, &[]);
            }
            Op::Raw {
                member,
                kernel,
                bytes,
            } => {
                let m = usize::from(member) % 3;
                let port = if kernel { KERNEL } else { WIRE };
                self.process(m, port, &bytes, false);
            }
            Op::Mutate { pos, value } => {
                let Some(last) = self.seen.last().cloned() else {
                    return;
                };
                let mut bytes = last.bytes;
                if bytes.is_empty() {
                    return;
                }
                let at = usize::from(pos) % bytes.len();
                bytes[at] = value;
                self.broadcast(None, &bytes, false);
            }
            Op::Replay { index } => {
                if self.seen.is_empty() {
                    return;
                }
                let w = self.seen[usize::from(index) % self.seen.len()].clone();
                self.broadcast(w.from, &w.bytes, w.valid);
            }
            Op::Icmp { client, known, mtu } => {
                let (_, ep) = Self::client(client);
                let port = if known { ep.port } else { ep.port ^ 0x5555 };
                let frame = icmp_error(&ep, port, mtu);
                self.broadcast(None, &frame, true);
            }
            Op::Deliver => {
                // What is queued now; what that sends waits for the next.
                for _ in 0..self.queue.len() {
                    let Some(w) = self.queue.pop_front() else {
                        break;
                    };
                    self.broadcast(w.from, &w.bytes, w.valid);
                }
            }
            Op::Wait { ms } => {
                self.now = self.now + std::time::Duration::from_millis(u64::from(ms));
                for m in 0..3 {
                    self.members[m].expire(self.now, 256);
                    self.drain_emitted(m);
                    self.check(m);
                }
            }
            Op::Epoch {
                alive,
                draining,
                load,
            } => {
                self.epoch += 1;
                for m in 0..3 {
                    let cfg = &self.configs[m];
                    let entries: Vec<MemberEntry> = cfg
                        .cluster
                        .members
                        .iter()
                        .enumerate()
                        .map(|(i, e)| MemberEntry {
                            alive: alive[i],
                            draining: draining[i],
                            load: f64::from(load[i]) / 255.0,
                            ..MemberEntry::from_config(e)
                        })
                        .collect();
                    if let Ok(mut t) = Tables::build(cfg, self.epoch, entries) {
                        t.digest = self.epoch;
                        self.members[m].set_tables(Arc::new(t));
                    }
                }
            }
            Op::Confirm => {
                for m in 0..3 {
                    let until = self.now + std::time::Duration::from_secs(5);
                    self.members[m].renew_lease(Some(until), Some(self.epoch), self.now);
                }
            }
        }
    }

    fn client_flags(&mut self, client: u8, flags: TcpFlags, consumes: u32) {
        let (i, ep) = Self::client(client);
        let c = &mut self.clients[i];
        if !c.open {
            return;
        }
        let (seq, ack, ts) = (c.snd_nxt, c.rcv_nxt, c.ts_recent);
        c.snd_nxt = seq.wrapping_add(consumes);
        let repr = stamped(tcp(ep.port, 80, seq, Some(ack), flags), self.now, ts);
        let frame = tcp_frame(&ep, &Self::service(), &repr, &[], 5);
        self.client_sends(&frame, true);
    }

    fn kernel_segment(&mut self, member: u8, flags: TcpFlags, payload: &[u8]) {
        let m = usize::from(member) % 3;
        let Some(key) = self.newest[m] else { return };
        let Some(k) = self.kernels[m].get_mut(&key) else {
            return;
        };
        if !k.answered {
            return;
        }
        let seq = k.snd_nxt;
        let consumes = payload.len() as u32 + u32::from(flags.contains(TcpFlags::FIN));
        k.snd_nxt = seq.wrapping_add(consumes);
        let ack = (!flags.contains(TcpFlags::RST)).then_some(k.rcv_nxt);
        let repr = stamped(tcp(80, key.1, seq, ack, flags), self.now, k.ts_recent);
        self.kernel_sends(m, key, &repr, payload);
    }

    /// A frame from member `m`'s kernel to client `key`.
    fn kernel_sends(&mut self, m: usize, key: (Ipv4Addr, u16), repr: &TcpRepr, payload: &[u8]) {
        let own = &self.configs[m].cluster.members[m];
        let src = Endpoint {
            mac: EthernetAddress(own.mac.0),
            ip: VIP,
            port: 80,
        };
        let dst = Endpoint {
            mac: EthernetAddress([0x02, 0x00, 0xc6, 0x13, 0, 1]),
            ip: key.0,
            port: key.1,
        };
        let frame = tcp_frame(&src, &dst, repr, payload, 6);
        self.process(m, KERNEL, &frame, true);
    }

    /// A client frame on the segment: every member sees it. Returns how
    /// many acted on it (answered, sent it to their kernel, redirected it).
    fn client_sends(&mut self, frame: &[u8], valid: bool) -> usize {
        self.record(None, frame, valid);
        (0..3)
            .filter(|&m| self.process(m, WIRE, frame, valid))
            .count()
    }

    /// Offers a frame seen on the segment to every member but its sender.
    fn broadcast(&mut self, from: Option<usize>, frame: &[u8], valid: bool) {
        self.record(from, frame, valid);
        self.observe_client(frame);
        for m in 0..3 {
            if Some(m) != from {
                self.process(m, WIRE, frame, valid);
            }
        }
    }

    fn record(&mut self, from: Option<usize>, frame: &[u8], valid: bool) {
        if self.seen.len() < SEGMENT_LIMIT {
            self.seen.push(OnWire {
                from,
                bytes: frame.to_vec(),
                valid,
            });
        }
    }

    /// Member `m` processes `frame` from `port`; true if it acted on it as
    /// on a SYN: forwarded it anywhere, or originated a SYN or SYN-ACK.
    fn process(&mut self, m: usize, port: PortId, frame: &[u8], valid: bool) -> bool {
        let mut f = HeapFrame::from_bytes(frame);
        let verdict = self.members[m].process(port, &mut f, self.now);
        let out = f.bytes().to_vec();
        if self.trace {
            eprintln!(
                "  srv{} {} -> {verdict:?} {:?}",
                m + 1,
                if port == KERNEL { "kernel" } else { "wire" },
                tcp_of(frame)
            );
        }
        let mut acted = false;
        if let Verdict::Forward(to) = verdict {
            acted = true;
            if valid {
                if let Err(e) = verify(&out) {
                    panic!("member {m} forwarded a valid frame as an invalid one ({e:?}): {frame:02x?} -> {out:02x?}");
                }
            }
            self.route(m, to, out, valid);
        }
        acted |= self.drain_emitted(m);
        self.check(m);
        acted
    }

    /// Routes the frames member `m` originated; true if a SYN or SYN-ACK
    /// was among them.
    fn drain_emitted(&mut self, m: usize) -> bool {
        let emitted: Vec<(PortId, Vec<u8>)> = self.members[m].take_emitted().collect();
        let any = emitted
            .iter()
            .any(|(_, b)| tcp_of(b).is_some_and(|t| t.flags.contains(TcpFlags::SYN)));
        for (port, bytes) in emitted {
            if let Err(e) = verify(&bytes) {
                panic!("member {m} originated an invalid frame ({e:?}): {bytes:02x?}");
            }
            self.route(m, port, bytes, true);
        }
        any
    }

    fn route(&mut self, m: usize, port: PortId, bytes: Vec<u8>, valid: bool) {
        if port == KERNEL {
            self.observe_kernel(m, &bytes);
        } else if self.queue.len() < SEGMENT_LIMIT {
            self.queue.push_back(OnWire {
                from: Some(m),
                bytes,
                valid,
            });
        }
    }

    /// What a kernel learns from a segment delivered to it.
    fn observe_kernel(&mut self, m: usize, bytes: &[u8]) {
        let Some(t) = tcp_of(bytes) else {
            return;
        };
        let key = (t.src, t.src_port);
        let k = self.kernels[m].entry(key).or_default();
        if t.flags.contains(TcpFlags::SYN) {
            *k = KernelConn {
                rcv_nxt: t.next(),
                ..KernelConn::default()
            };
            self.newest[m] = Some(key);
        } else if after(t.next(), k.rcv_nxt) {
            k.rcv_nxt = t.next();
        }
        if let Some(ts) = t.tsval {
            k.ts_recent = ts;
        }
        if self.kernels[m].len() > 64 {
            self.kernels[m].pop_first();
        }
    }

    /// What a client learns from a segment on the segment addressed to it.
    fn observe_client(&mut self, bytes: &[u8]) {
        let Some(t) = tcp_of(bytes) else {
            return;
        };
        if t.src != VIP {
            return;
        }
        let Some(dst) = dst_of(bytes) else { return };
        for i in 0..CLIENTS {
            let ep = client_endpoint(i as u32, 40_000 + i as u16);
            if ep.ip == dst.0 && ep.port == dst.1 {
                let c = &mut self.clients[i];
                if t.flags.contains(TcpFlags::SYN) || after(t.next(), c.rcv_nxt) {
                    c.rcv_nxt = t.next();
                }
                if let Some(ts) = t.tsval {
                    c.ts_recent = ts;
                }
                if t.flags.contains(TcpFlags::RST) {
                    c.open = false;
                }
            }
        }
    }

    /// The invariants that hold after every step.
    fn check(&self, m: usize) {
        let p = &self.members[m];
        let c = p.counters();
        let rx = c.get(shoal_dataplane::counters::Counter::WireRx)
            + c.get(shoal_dataplane::counters::Counter::KernelRx);
        assert_eq!(
            c.outcomes(),
            rx,
            "member {m}: frames without exactly one outcome"
        );
        assert!(
            p.flows().len() <= self.capacity,
            "member {m}: {} flows in a table of {}",
            p.flows().len(),
            self.capacity
        );
    }
}

/// A TCP header as Linux sends it (options on SYNs).
fn tcp(src_port: u16, dst_port: u16, seq: u32, ack: Option<u32>, flags: TcpFlags) -> TcpRepr {
    shoal_dataplane::traffic::tcp_header(src_port, dst_port, seq, ack, flags)
}

/// `repr` with timestamps: the sender's clock at `now` and the newest
/// TSval it received (`tsecr`), as a real stack echoes them.
fn stamped(mut repr: TcpRepr, now: Instant, tsecr: u32) -> TcpRepr {
    repr.timestamps = Some((now.as_millis() as u32, tsecr));
    repr
}

/// Whether sequence number `a` comes after `b` (RFC 1982 arithmetic).
fn after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// What the models read from a TCP frame.
#[derive(Debug, Clone, Copy)]
struct Seen {
    src: Ipv4Addr,
    src_port: u16,
    seq: u32,
    flags: TcpFlags,
    len: usize,
    tsval: Option<u32>,
}

impl Seen {
    /// The sequence number after this segment.
    fn next(&self) -> u32 {
        self.seq
            .wrapping_add(self.len as u32)
            .wrapping_add(u32::from(self.flags.contains(TcpFlags::SYN)))
            .wrapping_add(u32::from(self.flags.contains(TcpFlags::FIN)))
    }
}

fn tcp_of(bytes: &[u8]) -> Option<Seen> {
    let eth = EthernetFrame::new_checked(bytes).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.protocol() != IpProtocol::Tcp || ip.is_fragment() {
        return None;
    }
    let t = TcpPacket::new_checked(ip.payload()).ok()?;
    Some(Seen {
        src: ip.src_addr(),
        src_port: t.src_port(),
        seq: t.seq_number(),
        flags: t.flags(),
        len: t.payload().len(),
        tsval: t.timestamps().map(|t| t.0),
    })
}

/// (destination address, destination port) of a TCP frame.
fn dst_of(bytes: &[u8]) -> Option<(Ipv4Addr, u16)> {
    let eth = EthernetFrame::new_checked(bytes).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let t = TcpPacket::new_checked(ip.payload()).ok()?;
    Some((ip.dst_addr(), t.dst_port()))
}

/// An ICMP fragmentation-needed from a router on the path, quoting a
/// segment from the VIP to the client `ep` at `port`.
fn icmp_error(ep: &Endpoint, port: u16, mtu: u16) -> Vec<u8> {
    let quoted_src = Endpoint {
        mac: CLUSTER_MAC,
        ip: VIP,
        port: 80,
    };
    let quoted_dst = Endpoint { port, ..*ep };
    let repr = tcp(80, port, 1, Some(1), TcpFlags::ACK);
    let quoted = tcp_frame(&quoted_src, &quoted_dst, &repr, &[0; 8], 7);
    let invoking = &quoted[14..14 + 28];
    let icmp = Icmpv4Repr::DstUnreachable {
        reason: Icmpv4DstUnreachable::FragRequired,
        next_hop_mtu: mtu,
        invoking,
    };
    let router = Endpoint {
        mac: EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x01]),
        ip: Ipv4Addr::new(198, 18, 0, 1),
        port: 0,
    };
    let to = Endpoint {
        mac: CLUSTER_MAC,
        ip: VIP,
        port: 0,
    };
    ipv4_frame(&router, &to, IpProtocol::Icmp, icmp.buffer_len(), 8, |l4| {
        icmp.emit(&mut Icmpv4Packet::new_unchecked(l4));
    })
}
