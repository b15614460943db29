//! Persistent HTTP/1.1 connections moved request by request (DTCP
//! re-handoff) through three members' pipelines, with three scripted
//! kernels and a scripted client on one simulated broadcast segment: every
//! response must come from the kernel of the member dispatch names for its
//! request, in request order, byte for byte, over one continuous TCP
//! connection (sequence numbers, acknowledgements, timestamps and windows as
//! the client sees them never jump), with pipelining, loss and reordering.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use shoal_config::{Dispatch, DispatchPolicy, DispatchRule, Mode};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::{Frame, PortId};
use shoal_dataplane::pipeline::moves::MoveKind;
use shoal_dataplane::pipeline::{Pipeline, Tables, Verdict, KERNEL, WIRE};
use shoal_dataplane::traffic::{client_endpoint, tcp_frame, tcp_header, Endpoint};
use shoal_select::ClientKey;
use shoal_wire::time::Instant;
use shoal_wire::{
    EthernetAddress, EthernetFrame, Ipv4Packet, TcpFlags, TcpOptionBytes, TcpPacket, TcpRepr,
};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const CLUSTER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]);
const MEMBERS: [&str; 3] = ["srv1", "srv2", "srv3"];

fn member_mac(i: usize) -> EthernetAddress {
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b + i as u8])
}

/// Paths and the member the rules send them to.
const PATHS: [(&str, usize); 3] = [("/one", 0), ("/two", 1), ("/three", 2)];

fn dispatch(per_request: bool, handoff: shoal_config::HandoffMode) -> Dispatch {
    Dispatch {
        policy: DispatchPolicy::Rules,
        handoff,
        rules: PATHS
            .iter()
            .map(|(p, m)| DispatchRule {
                host: None,
                prefix: (*p).into(),
                member: MEMBERS[*m].into(),
            })
            .collect(),
        per_request,
        ..Dispatch::default()
    }
}

fn member(i: usize, d: &Dispatch, handoff: bool) -> Pipeline {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).unwrap();
    MEMBERS[i].clone_into(&mut cfg.cluster.local_member);
    cfg.services[0].mode = Mode::Splice;
    cfg.services[0].dispatch = Some(d.clone());
    let tables = Arc::new(Tables::from_config(&cfg, 1).unwrap());
    let mut p = Pipeline::new(
        tables,
        1024,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    p.set_cookie_secret([i as u8 + 1; 32]);
    if handoff {
        p.enable_handoff(
            shoal_l7::handoff::ClusterKey::from_bytes(&[9; 32]).unwrap(),
            (i as u64 + 1) << 8,
            1_000_000,
        );
    }
    p
}

/// A parsed TCP segment.
#[derive(Debug, Clone)]
struct Seg {
    dst_mac: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    repr: TcpRepr,
    payload: Vec<u8>,
}

fn parse(frame: &[u8]) -> Option<Seg> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != shoal_wire::IpProtocol::Tcp {
        return None;
    }
    assert!(ip.verify_checksum(), "IPv4 checksum");
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(
        tcp.verify_checksum(ip.src_addr(), ip.dst_addr()),
        "TCP checksum"
    );
    Some(Seg {
        dst_mac: eth.dst_addr(),
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        repr: TcpRepr::parse(&tcp).unwrap(),
        payload: tcp.payload().to_vec(),
    })
}

fn seq_lt(a: u32, b: u32) -> bool {
    a.wrapping_sub(b).cast_signed() < 0
}

/// The body a kernel serves for `path`: names the kernel, sized by path.
fn body(kernel: usize, path: &str) -> Vec<u8> {
    let size = match path {
        "/one" => 3_000,
        "/two" => 700,
        _ => 5_200,
    };
    let mut b = format!("served by k{} for {path}\n", kernel + 1).into_bytes();
    b.resize(size, b'.');
    b
}

fn response(kernel: usize, path: &str, head: bool) -> Vec<u8> {
    let b = body(kernel, path);
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len()).into_bytes();
    if !head {
        r.extend(b);
    }
    r
}

/// A member's kernel: one socket for the client's 4-tuple, a minimal TCP
/// that checks what the dataplane gives it (acknowledgements never beyond
/// what it sent, timestamps echo its own clock, the exact RST closes it)
/// and answers each complete request head in order.
struct Kernel {
    index: usize,
    wscale: u8,
    isn_seed: u32,
    clock: u32,
    sock: Option<Sock>,
    /// Every request served: (path, HEAD?).
    served: Vec<String>,
    resets: usize,
}

struct Sock {
    client_port: u16,
    isn: u32,
    /// Every data byte sent, from `isn + 1` on, for retransmissions.
    sent: Vec<u8>,
    last_ack: u32,
    dup_acks: u32,
    snd_nxt: u32,
    rcv_nxt: u32,
    recv: Vec<u8>,
    peer_tsval: u32,
    max_tsecr: u32,
    /// SYN-RECV until the ACK of the SYN-ACK: Linux resets the connection
    /// attempt on any other acknowledgement number.
    established: bool,
}

const KERNEL_MSS: usize = 1000;

impl Kernel {
    fn new(index: usize) -> Kernel {
        Kernel {
            index,
            wscale: [7, 9, 5][index],
            isn_seed: [0x1000_0000, 0xFFFF_F000, 0x8000_0000][index],
            clock: [50_000, 9_000_000, 123][index],
            sock: None,
            served: Vec::new(),
            resets: 0,
        }
    }

    fn ep(&self, port: u16) -> Endpoint {
        Endpoint {
            mac: member_mac(self.index),
            ip: VIP,
            port,
        }
    }

    fn segment(&mut self, client: &Endpoint, flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
        self.clock += 1;
        let ep = self.ep(80);
        let s = self.sock.as_mut().unwrap();
        let mut r = tcp_header(80, s.client_port, s.snd_nxt, Some(s.rcv_nxt), flags);
        r.window_len = 512;
        r.timestamps = Some((self.clock, s.peer_tsval));
        let f = tcp_frame(&ep, client, &r, payload, 0);
        s.snd_nxt = s.snd_nxt.wrapping_add(payload.len() as u32);
        s.sent.extend_from_slice(payload);
        f
    }

    /// The data segment at `ack` again (fast retransmit after duplicate ACKs).
    fn retransmit(&mut self, client: &Endpoint, ack: u32) -> Vec<u8> {
        self.clock += 1;
        let ep = self.ep(80);
        let s = self.sock.as_mut().unwrap();
        let from = ack.wrapping_sub(s.isn.wrapping_add(1)) as usize;
        let to = (from + KERNEL_MSS).min(s.sent.len());
        let mut r = tcp_header(80, s.client_port, ack, Some(s.rcv_nxt), TcpFlags::ACK);
        r.window_len = 512;
        r.timestamps = Some((self.clock, s.peer_tsval));
        tcp_frame(&ep, client, &r, &s.sent[from..to], 0)
    }

    /// The kernel's answer to `frame` from the dataplane.
    fn input(&mut self, frame: &[u8], client: &Endpoint) -> Vec<Vec<u8>> {
        let seg = parse(frame).expect("the dataplane gives the kernel TCP");
        assert_eq!(seg.dst_mac, member_mac(self.index), "to the TAP's MAC");
        assert_eq!((seg.src, seg.dst), (client.ip, VIP));
        let r = &seg.repr;
        if r.flags.contains(TcpFlags::RST) {
            let exact = self
                .sock
                .as_ref()
                .is_some_and(|s| r.seq_number == s.rcv_nxt);
            assert!(exact, "k{}: a RST that is not exact", self.index + 1);
            self.sock = None;
            self.resets += 1;
            return Vec::new();
        }
        if r.flags.contains(TcpFlags::SYN) {
            assert!(
                self.sock.is_none(),
                "k{}: SYN on a live socket",
                self.index + 1
            );
            let isn = self.isn_seed.wrapping_add(self.served.len() as u32 * 7919);
            self.sock = Some(Sock {
                client_port: r.src_port,
                isn,
                sent: Vec::new(),
                last_ack: isn.wrapping_add(1),
                dup_acks: 0,
                snd_nxt: isn,
                rcv_nxt: r.seq_number.wrapping_add(1),
                recv: Vec::new(),
                peer_tsval: r.timestamps.unwrap().0,
                max_tsecr: 0,
                established: false,
            });
            self.clock += 1;
            let ep = self.ep(80);
            let s = self.sock.as_mut().unwrap();
            let mut sa = tcp_header(80, r.src_port, isn, Some(s.rcv_nxt), TcpFlags::SYN);
            sa.mss = Some(1460);
            sa.window_scale = Some(self.wscale);
            sa.sack_permitted = true;
            sa.timestamps = Some((self.clock, s.peer_tsval));
            s.snd_nxt = isn.wrapping_add(1);
            return vec![tcp_frame(&ep, client, &sa, &[], 0)];
        }
        let k = self.index + 1;
        let clock = self.clock;
        let Some(s) = self.sock.as_mut() else {
            panic!("k{k}: a segment for a closed socket: {r:?}");
        };
        if let Some(ack) = r.ack_number {
            assert!(
                !seq_lt(s.snd_nxt, ack),
                "k{k}: ack {ack} beyond snd_nxt {}",
                s.snd_nxt
            );
            assert!(
                s.established || ack == s.isn.wrapping_add(1),
                "k{k}: SYN-RECV got ack {ack}, not {} (the kernel would reset)",
                s.isn.wrapping_add(1)
            );
            s.established = true;
        }
        let (tsval, tsecr) = r.timestamps.expect("timestamps negotiated");
        assert!(
            tsecr <= clock && tsecr >= s.max_tsecr.min(tsecr),
            "k{k}: TSecr {tsecr}"
        );
        s.max_tsecr = s.max_tsecr.max(tsecr);
        s.peer_tsval = s.peer_tsval.max(tsval);
        let ack = r.ack_number.unwrap();
        if !seg.payload.is_empty() && seq_lt(s.last_ack, ack) {
            s.last_ack = ack;
            s.dup_acks = 0;
        }
        if seg.payload.is_empty() {
            if ack == s.last_ack && seq_lt(ack, s.snd_nxt) {
                s.dup_acks += 1;
                if s.dup_acks == 2 {
                    return vec![self.retransmit(client, ack)];
                }
            } else {
                s.last_ack = ack;
                s.dup_acks = 0;
            }
            return Vec::new();
        }
        if r.seq_number != s.rcv_nxt {
            // A retransmission or a segment past a hole: a duplicate ACK.
            return vec![self.segment(client, TcpFlags::ACK, &[])];
        }
        s.rcv_nxt = s.rcv_nxt.wrapping_add(seg.payload.len() as u32);
        s.recv.extend_from_slice(&seg.payload);
        let mut out = Vec::new();
        let mut answered = false;
        loop {
            let s = self.sock.as_mut().unwrap();
            let Some(end) = s.recv.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8(s.recv[..end].to_vec()).unwrap();
            let body_len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |n| n.parse().unwrap());
            if s.recv.len() < end + 4 + body_len {
                break;
            }
            s.recv.drain(..end + 4 + body_len);
            let mut words = head.split(' ');
            let method = words.next().unwrap().to_owned();
            let path = words.next().unwrap().to_owned();
            self.served.push(format!("{method} {path}"));
            let resp = response(self.index, &path, method == "HEAD");
            for chunk in resp.chunks(KERNEL_MSS) {
                out.push(self.segment(client, TcpFlags::PSH | TcpFlags::ACK, chunk));
            }
            answered = true;
        }
        if !answered {
            out.push(self.segment(client, TcpFlags::ACK, &[]));
        }
        out
    }
}

/// The client: one connection, its own view of the server's sequence space.
struct Client {
    ep: Endpoint,
    snd_nxt: u32,
    clock: u32,
    /// Next server byte expected, once the SYN-ACK came.
    rcv_nxt: Option<u32>,
    /// Sequence number of the first server byte.
    rcv_base: u32,
    stream: Vec<u8>,
    ooo: BTreeMap<u32, Vec<u8>>,
    max_tsval_seen: u32,
    last_tsval: u32,
    ws: u8,
    /// Every byte sent after the SYN, and the highest acknowledgement.
    sent: Vec<u8>,
    acked: u32,
}

impl Client {
    fn seg(&mut self, flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
        self.clock += 1;
        let mut r = tcp_header(self.ep.port, 80, self.snd_nxt, self.rcv_nxt, flags);
        r.window_len = 2000;
        r.timestamps = Some((self.clock, self.last_tsval));
        if let Some((&l, v)) = self.ooo.iter().next() {
            r.sack_ranges[0] = Some((l, l.wrapping_add(v.len() as u32)));
        }
        let svc = Endpoint {
            mac: CLUSTER_MAC,
            ip: VIP,
            port: 80,
        };
        let f = tcp_frame(&self.ep, &svc, &r, payload, 0);
        self.snd_nxt = self.snd_nxt.wrapping_add(payload.len() as u32);
        f
    }

    fn unacked(&self) -> usize {
        self.snd_nxt.wrapping_sub(self.acked) as usize
    }

    /// Retransmission timeout: the unacknowledged bytes again.
    fn rto(&mut self) -> Option<Vec<u8>> {
        if self.unacked() == 0 {
            return None;
        }
        let bytes = self.sent[self.sent.len() - self.unacked()..].to_vec();
        let next = self.snd_nxt;
        self.snd_nxt = self.acked;
        let f = self.seg(TcpFlags::PSH | TcpFlags::ACK, &bytes);
        self.snd_nxt = next;
        Some(f)
    }

    /// A frame from the segment addressed to the client: check it, take its
    /// bytes; true if it calls for an ACK.
    fn input(&mut self, seg: &Seg) -> bool {
        assert_eq!(seg.src, VIP);
        let r = &seg.repr;
        assert!(
            !r.flags.contains(TcpFlags::RST),
            "the client got a RST: {r:?}"
        );
        let (tsval, _) = r.timestamps.expect("timestamps");
        // PAWS (RFC 7323 §5): a segment at or before the next expected
        // byte must not carry an older TSval than the last such segment
        // (segments past a hole do not update TS.Recent).
        let in_order = self.rcv_nxt.is_none_or(|n| !seq_lt(n, r.seq_number));
        if in_order {
            assert!(
                tsval >= self.max_tsval_seen,
                "PAWS: TSval {tsval} went back from {}",
                self.max_tsval_seen
            );
            self.max_tsval_seen = tsval;
        }
        self.last_tsval = self.last_tsval.max(tsval);
        if r.flags.contains(TcpFlags::SYN) {
            assert!(self.rcv_nxt.is_none(), "one SYN-ACK");
            self.ws = r.window_scale.unwrap();
            self.rcv_nxt = Some(r.seq_number.wrapping_add(1));
            self.rcv_base = r.seq_number.wrapping_add(1);
            return false;
        }
        let Some(nxt) = self.rcv_nxt else {
            panic!("data before the SYN-ACK");
        };
        if let Some(ack) = r.ack_number {
            assert!(
                !seq_lt(self.snd_nxt, ack),
                "ack beyond what the client sent"
            );
            if seq_lt(self.acked, ack) {
                self.acked = ack;
            }
        }
        assert!(r.window_len > 0, "a zero window");
        if seg.payload.is_empty() {
            return false;
        }
        let seq = r.seq_number;
        if seq_lt(nxt, seq) {
            self.ooo.insert(seq, seg.payload.clone());
            return true;
        }
        // Bytes the client has already must be the same bytes.
        let at = seq.wrapping_sub(self.rcv_base) as usize;
        let known = self.stream.len().saturating_sub(at).min(seg.payload.len());
        assert_eq!(
            &self.stream[at..at + known],
            &seg.payload[..known],
            "a retransmission with other bytes"
        );
        let skip = nxt.wrapping_sub(seq) as usize;
        if skip < seg.payload.len() {
            self.stream.extend_from_slice(&seg.payload[skip..]);
        }
        let mut nxt = seq.wrapping_add(seg.payload.len() as u32);
        if seq_lt(nxt, self.rcv_nxt.unwrap()) {
            nxt = self.rcv_nxt.unwrap();
        }
        while let Some((&s, _)) = self.ooo.iter().next() {
            if seq_lt(nxt, s) {
                break;
            }
            let bytes = self.ooo.remove(&s).unwrap();
            let skip = nxt.wrapping_sub(s) as usize;
            if skip < bytes.len() {
                self.stream.extend_from_slice(&bytes[skip..]);
                nxt = s.wrapping_add(bytes.len() as u32);
            }
        }
        self.rcv_nxt = Some(nxt);
        true
    }
}

/// Where a frame goes next.
enum Hop {
    /// On the shared segment: every member and the client see it.
    Wire(Vec<u8>),
    /// From member i's dataplane to its kernel.
    ToKernel(usize, Vec<u8>),
    /// From kernel i to its dataplane.
    FromKernel(usize, Vec<u8>),
}

struct Cluster {
    members: Vec<Pipeline>,
    kernels: Vec<Kernel>,
    client: Client,
    now: Instant,
    queue: VecDeque<Hop>,
    /// Drops the n-th client-bound data segment (0-based), once.
    lose_to_client: Option<usize>,
    to_client_data: usize,
    /// Swaps the next two client-bound data segments after the n-th.
    reorder_to_client: Option<usize>,
    held_back: Option<Seg>,
    /// Drops the n-th client data segment (0-based), once.
    lose_from_client: Option<usize>,
    from_client_data: usize,
    /// Replays the request before the last one right after every kernel
    /// SYN-ACK (see `process`).
    stale_after_synack: bool,
    stale_sent: usize,
    previous_request: Option<Vec<u8>>,
    last_request: Option<Vec<u8>>,
}

impl Cluster {
    fn new(d: &Dispatch) -> Cluster {
        Cluster::with_handoff(d, [true; 3])
    }

    /// A cluster whose members have handoff enabled as `handoff` says.
    fn with_handoff(d: &Dispatch, handoff: [bool; 3]) -> Cluster {
        let members: Vec<Pipeline> = (0..3).map(|i| member(i, d, handoff[i])).collect();
        // A client whose connections srv1 inspects.
        let ep = (40_000..41_000)
            .map(|port| client_endpoint(7, port))
            .find(|c| {
                members[0].tables().services[0].selector.select(ClientKey {
                    addr: c.ip,
                    port: c.port,
                }) == Some(1)
            })
            .unwrap();
        Cluster {
            members,
            kernels: (0..3).map(Kernel::new).collect(),
            client: Client {
                ep,
                snd_nxt: 0xFFFF_FF00,
                clock: 7_000,
                rcv_nxt: None,
                rcv_base: 0,
                stream: Vec::new(),
                ooo: BTreeMap::new(),
                max_tsval_seen: 0,
                last_tsval: 0,
                ws: 0,
                sent: Vec::new(),
                acked: 0xFFFF_FF01,
            },
            now: Instant::from_secs(100),
            queue: VecDeque::new(),
            lose_to_client: None,
            to_client_data: 0,
            reorder_to_client: None,
            held_back: None,
            lose_from_client: None,
            from_client_data: 0,
            stale_after_synack: false,
            stale_sent: 0,
            previous_request: None,
            last_request: None,
        }
    }

    fn send(&mut self, frame: Vec<u8>) {
        self.queue.push_back(Hop::Wire(frame));
        self.settle();
    }

    fn process(&mut self, i: usize, port: PortId, frame: &[u8]) {
        let synack = port == KERNEL
            && parse(frame).is_some_and(|s| {
                s.repr.flags.contains(TcpFlags::SYN) && s.repr.flags.contains(TcpFlags::ACK)
            });
        let mut f = HeapFrame::from_bytes(frame);
        let v = self.members[i].process(port, &mut f, self.now);
        let out: Vec<(PortId, Vec<u8>)> = self.members[i].take_emitted().collect();
        match v {
            Verdict::Forward(KERNEL) => self.queue.push_back(Hop::ToKernel(i, f.bytes().to_vec())),
            Verdict::Forward(_) => self.queue.push_back(Hop::Wire(f.bytes().to_vec())),
            Verdict::Drop => {}
        }
        for (port, bytes) in out {
            if port == KERNEL {
                self.queue.push_back(Hop::ToKernel(i, bytes));
            } else {
                self.queue.push_back(Hop::Wire(bytes));
            }
        }
        if synack && self.stale_after_synack {
            if let Some(old) = self.previous_request.clone() {
                // In the same burst as the kernel's SYN-ACK: a client
                // retransmission of a request an earlier kernel served. A
                // forwarded frame leaves before the burst's originated
                // ones (the ACK that completes this kernel's handshake).
                let mut f = HeapFrame::from_bytes(&old);
                let v = self.members[i].process(WIRE, &mut f, self.now);
                if v == Verdict::Forward(KERNEL) {
                    self.queue.push_front(Hop::ToKernel(i, f.bytes().to_vec()));
                }
                self.stale_sent += 1;
            }
        }
    }

    fn deliver_to_client(&mut self, seg: Seg) {
        if !seg.payload.is_empty() {
            let n = self.to_client_data;
            self.to_client_data += 1;
            if self.lose_to_client == Some(n) {
                return;
            }
            if self.reorder_to_client == Some(n) {
                self.held_back = Some(seg);
                return;
            }
        }
        let ack = self.client.input(&seg);
        if let Some(late) = self.held_back.take() {
            self.client.input(&late);
        }
        if ack {
            let f = self.client.seg(TcpFlags::ACK, &[]);
            self.queue.push_back(Hop::Wire(f));
        }
    }

    fn drain(&mut self) {
        let mut steps = 0;
        while let Some(hop) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "the cluster does not settle");
            match hop {
                Hop::Wire(frame) => {
                    let dst = EthernetFrame::new_checked(&frame[..]).unwrap().dst_addr();
                    let seg = parse(&frame);
                    let from_client = seg.as_ref().is_some_and(|s| s.src == self.client.ep.ip);
                    if let Some(s) = seg.as_ref().filter(|s| s.dst == self.client.ep.ip) {
                        assert_eq!(s.dst_mac, self.client.ep.mac, "to the client's MAC: {s:?}");
                    }
                    if dst == self.client.ep.mac {
                        if let Some(seg) = parse(&frame) {
                            self.deliver_to_client(seg);
                        }
                        continue;
                    }
                    for i in 0..self.members.len() {
                        if from_client || dst == member_mac(i) || dst == CLUSTER_MAC {
                            self.process(i, WIRE, &frame);
                        }
                    }
                }
                Hop::ToKernel(i, frame) => {
                    let client = self.client.ep;
                    for out in self.kernels[i].input(&frame, &client) {
                        self.queue.push_back(Hop::FromKernel(i, out));
                    }
                }
                Hop::FromKernel(i, frame) => self.process(i, KERNEL, &frame),
            }
        }
        self.now = Instant::from_nanos(self.now.as_nanos() + 1_000_000);
        for m in &mut self.members {
            m.expire(self.now, 64);
        }
        let emitted: Vec<(usize, PortId, Vec<u8>)> = (0..self.members.len())
            .flat_map(|i| {
                self.members[i]
                    .take_emitted()
                    .map(move |(p, f)| (i, p, f))
                    .collect::<Vec<_>>()
            })
            .collect();
        if !emitted.is_empty() {
            for (i, p, f) in emitted {
                self.queue.push_back(if p == KERNEL {
                    Hop::ToKernel(i, f)
                } else {
                    Hop::Wire(f)
                });
            }
            self.drain();
        }
    }

    /// Runs until nothing moves, with retransmission timeouts for what
    /// was lost (the client's bytes, the kernels' bytes).
    fn settle(&mut self) {
        for _ in 0..6 {
            self.drain();
            let mut lost = Vec::new();
            if let Some(f) = self.client.rto() {
                lost.push(Hop::Wire(f));
            }
            let client = self.client.ep;
            for (i, k) in self.kernels.iter_mut().enumerate() {
                let pending = k.sock.as_ref().is_some_and(|s| s.last_ack != s.snd_nxt);
                if pending {
                    let ack = k.sock.as_ref().unwrap().last_ack;
                    lost.push(Hop::FromKernel(i, k.retransmit(&client, ack)));
                }
            }
            if lost.is_empty() {
                return;
            }
            self.queue.extend(lost);
        }
        panic!("still losing after six timeouts");
    }

    fn connect(&mut self) {
        let syn = {
            let c = &mut self.client;
            c.clock += 1;
            let mut r = tcp_header(c.ep.port, 80, c.snd_nxt, None, TcpFlags::SYN);
            r.mss = Some(1460);
            r.window_scale = Some(7);
            r.sack_permitted = true;
            r.timestamps = Some((c.clock, 0));
            r.unknown_options = TcpOptionBytes::EMPTY;
            let svc = Endpoint {
                mac: CLUSTER_MAC,
                ip: VIP,
                port: 80,
            };
            let f = tcp_frame(&c.ep, &svc, &r, &[], 0);
            c.snd_nxt = c.snd_nxt.wrapping_add(1);
            f
        };
        self.send(syn);
    }

    fn request(&mut self, payload: &[u8]) {
        self.client.sent.extend_from_slice(payload);
        let f = self.client.seg(TcpFlags::PSH | TcpFlags::ACK, payload);
        self.previous_request = self.last_request.replace(f.clone());
        let n = self.from_client_data;
        self.from_client_data += 1;
        if self.lose_from_client == Some(n) {
            self.settle();
            return;
        }
        self.send(f);
    }

    /// Lets `ms` milliseconds pass, in steps of 10 ms (timers run).
    fn wait(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.now = Instant::from_nanos(self.now.as_nanos() + 10_000_000);
            self.settle();
        }
    }

    fn counter(&self, c: Counter) -> u64 {
        self.members.iter().map(|m| m.counters().get(c)).sum()
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 198.18.0.100\r\n\r\n").into_bytes()
}

/// The responses, in order, to requests for `paths` each served by the
/// member the rules name.
fn expected(paths: &[&str]) -> Vec<u8> {
    paths
        .iter()
        .flat_map(|p| {
            let m = PATHS.iter().find(|(q, _)| q == p).unwrap().1;
            response(m, p, false)
        })
        .collect()
}

/// The "served by" lines of a response stream, for readable failures.
fn served(stream: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stream)
        .split("served by ")
        .skip(1)
        .map(|s| s.split('\n').next().unwrap_or("").to_owned())
        .collect()
}

fn dump(c: &Cluster) {
    for (i, m) in c.members.iter().enumerate() {
        let nz: Vec<String> = m
            .counters()
            .iter()
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| format!("{}={v}", k.name()))
            .collect();
        eprintln!("srv{}: {}", i + 1, nz.join(" "));
    }
}

#[test]
fn keep_alive_requests_each_go_to_their_member() {
    let mut c = Cluster::new(&dispatch(true, shoal_config::HandoffMode::Frequent));
    c.connect();
    let paths = [
        "/one", "/two", "/two", "/three", "/one", "/three", "/two", "/one",
    ];
    let batches: Vec<&[&str]> = paths.iter().map(core::slice::from_ref).collect();
    check(&mut c, &batches);
    // Six moves (every change of member), each closing a kernel socket.
    assert_eq!(c.counter(Counter::RehandoffStarted), 6);
    assert_eq!(c.counter(Counter::RehandoffDone), 6);
    assert_eq!(c.counter(Counter::RehandoffFallback), 0);
    assert_eq!(c.kernels.iter().map(|k| k.resets).sum::<usize>(), 6);
    assert_eq!(c.counter(Counter::PersistRequests), 8 + 6);
    // The owner history (`shoalctl flows show`): each member's arrivals,
    // in time order, give the chain of owners, each naming the previous.
    let mut arrivals: Vec<(u64, u16, u16)> = Vec::new();
    let mut departures = 0;
    for (i, m) in c.members.iter().enumerate() {
        for e in m.move_log().events() {
            assert_eq!(e.client.port(), c.client.ep.port);
            match e.kind {
                MoveKind::Arrived { from } => arrivals.push((e.unix_ms, i as u16 + 1, from)),
                MoveKind::Left { .. } => departures += 1,
                other => panic!("{other:?}"),
            }
        }
    }
    arrivals.sort_unstable();
    let chain: Vec<u16> = arrivals.iter().map(|a| a.1).collect();
    assert_eq!(chain, [1, 2, 3, 1, 3, 2, 1]);
    let from: Vec<u16> = arrivals.iter().map(|a| a.2).collect();
    assert_eq!(from, [1, 1, 2, 3, 1, 3, 2]);
    assert_eq!(departures, 6);
}

/// Runs `batches` of requests (each batch in one client segment) and checks
/// that the client got exactly the responses in order, each from the
/// kernel of the member the rules name, and that each kernel served
/// exactly its requests.
fn check(c: &mut Cluster, batches: &[&[&str]]) {
    check_with(c, batches, expected);
}

/// [`check`] against the stream `expect` gives for the paths.
fn check_with(c: &mut Cluster, batches: &[&[&str]], expect: fn(&[&str]) -> Vec<u8>) {
    for batch in batches {
        let bytes: Vec<u8> = batch.iter().flat_map(|p| get(p)).collect();
        c.request(&bytes);
    }
    let paths: Vec<&str> = batches.iter().flat_map(|b| b.iter().copied()).collect();
    if served(&c.client.stream) != served(&expect(&paths)) {
        dump(c);
    }
    assert_eq!(served(&c.client.stream), served(&expect(&paths)));
    if c.client.stream != expect(&paths) {
        dump(c);
        panic!(
            "exact bytes: got\n{}\nwanted\n{}",
            String::from_utf8_lossy(&c.client.stream),
            String::from_utf8_lossy(&expect(&paths))
        );
    }
    for (k, kernel) in c.kernels.iter().enumerate() {
        let mine: Vec<String> = paths
            .iter()
            .filter(|p| PATHS.iter().any(|(q, m)| q == *p && *m == k))
            .map(|p| format!("GET {p}"))
            .collect();
        assert_eq!(kernel.served, mine, "k{}", k + 1);
    }
    assert_eq!(c.counter(Counter::PersistSessionLost), 0);
    assert_eq!(c.counter(Counter::RehandoffFallback), 0);
}

/// Member changes along `paths`: the moves a connection makes.
fn moves(paths: &[&str]) -> u64 {
    let owner = |p: &str| PATHS.iter().find(|(q, _)| *q == p).unwrap().1;
    paths
        .windows(2)
        .filter(|w| owner(w[0]) != owner(w[1]))
        .count() as u64
}

#[test]
fn pipelined_bursts_of_five_are_served_in_order_one_move_at_a_time() {
    let mut c = Cluster::new(&dispatch(true, shoal_config::HandoffMode::Frequent));
    c.connect();
    let batches: [&[&str]; 4] = [
        &["/one"],
        &["/one", "/two", "/two", "/three", "/one"],
        &["/three", "/three", "/one", "/two", "/one"],
        &["/two", "/two", "/two", "/two", "/two"],
    ];
    check(&mut c, &batches);
    let paths: Vec<&str> = batches.iter().flat_map(|b| b.iter().copied()).collect();
    assert_eq!(c.counter(Counter::RehandoffDone), moves(&paths));
    assert_eq!(
        c.kernels.iter().map(|k| k.resets as u64).sum::<u64>(),
        moves(&paths)
    );
    // Requests held for another member were acknowledged by the dataplane.
    assert!(c.counter(Counter::PersistHeldAcked) > 0);
}

#[test]
fn losses_and_reordering_both_ways_lose_and_duplicate_nothing() {
    for (lose_to, reorder, lose_from) in [
        (Some(1), None, None),
        (Some(4), Some(7), None),
        (None, Some(2), Some(2)),
        (Some(9), Some(3), Some(4)),
        (Some(12), None, Some(1)),
    ] {
        let mut c = Cluster::new(&dispatch(true, shoal_config::HandoffMode::Frequent));
        c.lose_to_client = lose_to;
        c.reorder_to_client = reorder;
        c.lose_from_client = lose_from;
        c.connect();
        let batches: [&[&str]; 6] = [
            &["/three"],
            &["/one"],
            &["/two", "/three"],
            &["/three"],
            &["/one", "/one", "/two"],
            &["/three"],
        ];
        check(&mut c, &batches);
    }
}

#[test]
fn rare_mode_connections_move_request_by_request_too() {
    let mut c = Cluster::new(&dispatch(true, shoal_config::HandoffMode::Rare));
    c.connect();
    let batches: [&[&str]; 5] = [
        &["/one"],
        &["/two"],
        &["/one", "/three"],
        &["/three"],
        &["/two"],
    ];
    check(&mut c, &batches);
    assert_eq!(c.counter(Counter::RareKept), 1);
    assert_eq!(c.counter(Counter::RehandoffDone), 4);
}

#[test]
fn rare_mode_first_request_elsewhere_then_back() {
    let mut c = Cluster::new(&dispatch(true, shoal_config::HandoffMode::Rare));
    c.connect();
    check(&mut c, &[&["/two"], &["/one"], &["/one"]]);
    assert_eq!(c.counter(Counter::RareMoved), 1);
    assert_eq!(c.counter(Counter::RehandoffDone), 1);
}

#[test]
fn per_request_off_keeps_every_request_on_the_first_member() {
    let mut c = Cluster::new(&dispatch(false, shoal_config::HandoffMode::Frequent));
    c.connect();
    for p in ["/two", "/one", "/three", "/one"] {
        c.request(&get(p));
    }
    assert_eq!(
        served(&c.client.stream),
        ["k2 for /two", "k2 for /one", "k2 for /three", "k2 for /one"]
    );
    assert_eq!(c.counter(Counter::PersistConnections), 0);
    assert_eq!(c.counter(Counter::RehandoffStarted), 0);
}

fn request_with(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: 198.18.0.100\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[test]
fn head_and_bodies_keep_the_boundaries() {
    let mut c = Cluster::new(&dispatch(true, shoal_config::HandoffMode::Frequent));
    c.connect();
    c.request(&get("/one"));
    // A HEAD (a response head with Content-Length but no body), then a
    // POST whose 3000-byte body spans segments, then a GET elsewhere.
    c.request(&request_with("HEAD", "/two", b""));
    let body = vec![b'x'; 3000];
    let post = request_with("POST", "/two", &body);
    c.request(&post[..1200]);
    c.request(&post[1200..]);
    c.request(&get("/three"));
    let mut want = response(0, "/one", false);
    want.extend(response(1, "/two", true));
    want.extend(response(1, "/two", false));
    want.extend(response(2, "/three", false));
    assert!(c.client.stream == want, "exact bytes");
    assert_eq!(c.kernels[1].served, ["HEAD /two", "POST /two"]);
    assert_eq!(c.kernels[2].served, ["GET /three"]);
    assert_eq!(c.counter(Counter::RehandoffDone), 2);
}

#[test]
fn a_target_that_does_not_answer_leaves_the_request_where_it_is() {
    // srv2 takes no handoffs: offers to it go unanswered.
    let mut c = Cluster::with_handoff(
        &dispatch(true, shoal_config::HandoffMode::Frequent),
        [true, false, true],
    );
    c.connect();
    c.request(&get("/one"));
    c.request(&get("/two"));
    c.wait(1_000);
    c.request(&get("/three"));
    assert_eq!(
        served(&c.client.stream),
        ["k1 for /one", "k1 for /two", "k3 for /three"]
    );
    assert_eq!(c.counter(Counter::RehandoffFallback), 1);
    assert_eq!(c.counter(Counter::RehandoffDone), 1);
    // The fallback replayed the connection into srv1's kernel again.
    assert_eq!(c.kernels[0].resets, 2);
}

#[test]
fn forty_requests_wander_over_the_cluster() {
    let mut c = Cluster::new(&dispatch(true, shoal_config::HandoffMode::Frequent));
    c.connect();
    let mut x = 0x9E37_79B9u32;
    let mut batches: Vec<Vec<&str>> = Vec::new();
    for _ in 0..20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = 1 + (x % 3) as usize;
        batches.push(
            (0..n)
                .map(|i| PATHS[(x as usize >> (4 * i)) % 3].0)
                .collect(),
        );
    }
    let refs: Vec<&[&str]> = batches.iter().map(Vec::as_slice).collect();
    check(&mut c, &refs);
    let paths: Vec<&str> = refs.iter().flat_map(|b| b.iter().copied()).collect();
    assert_eq!(c.counter(Counter::RehandoffDone), moves(&paths));
}

#[test]
fn an_old_retransmission_does_not_reach_a_kernel_taking_over() {
    let mut c = Cluster::new(&dispatch(true, shoal_config::HandoffMode::Frequent));
    c.stale_after_synack = true;
    c.connect();
    check(
        &mut c,
        &[
            &["/one"],
            &["/two"],
            &["/three"],
            &["/one"],
            &["/two"],
            &["/two"],
        ],
    );
    assert_eq!(c.stale_sent, 4, "after each move's SYN-ACK");
    assert_eq!(c.counter(Counter::PersistKernelNotUp), 4);
}

/// The service's dispatch with sticky cookies issued by the serving member.
fn sticky(per_request: bool) -> Dispatch {
    Dispatch {
        sticky: Some(shoal_config::Sticky::default()),
        ..dispatch(per_request, shoal_config::HandoffMode::Frequent)
    }
}

/// [`expected`] with the sticky `Set-Cookie` line after the status line of
/// the first response each member serves on the connection (it arrived
/// there without a cookie naming it: the test client sends none).
fn expected_sticky(paths: &[&str]) -> Vec<u8> {
    let key = shoal_l7::handoff::ClusterKey::from_bytes(&[9; 32]).unwrap();
    let mut owner = None;
    let mut out = Vec::new();
    for p in paths {
        let m = PATHS.iter().find(|(q, _)| q == p).unwrap().1;
        let mut r = response(m, p, false);
        if owner != Some(m) {
            let value = shoal_l7::sticky::token(&key, "http", MEMBERS[m]);
            let line = shoal_l7::sticky::set_cookie_line("shoal_member", &value, 3600);
            let at = "HTTP/1.1 200 OK\r\n".len();
            r.splice(at..at, line);
        }
        owner = Some(m);
        out.extend(r);
    }
    out
}

#[test]
fn the_serving_member_inserts_the_sticky_cookie_into_its_first_response() {
    let mut c = Cluster::new(&sticky(false));
    c.connect();
    // Every request stays with the first member (srv2, `/two`); one cookie.
    for batch in [&["/two"][..], &["/one"], &["/two", "/three"]] {
        let bytes: Vec<u8> = batch.iter().flat_map(|p| get(p)).collect();
        c.request(&bytes);
    }
    let mut want = expected_sticky(&["/two"]);
    for p in ["/one", "/two", "/three"] {
        want.extend(response(1, p, false));
    }
    assert!(
        c.client.stream == want,
        "{}",
        String::from_utf8_lossy(&c.client.stream)
    );
    assert_eq!(
        c.kernels[1].served,
        ["GET /two", "GET /one", "GET /two", "GET /three"]
    );
    assert!(c.kernels[0].served.is_empty() && c.kernels[2].served.is_empty());
    assert_eq!(c.counter(Counter::StickyIssued), 1);
    assert_eq!(c.counter(Counter::StickyNotIssued), 0);
    assert_eq!(c.counter(Counter::StickyRebuilt), 1);
}

#[test]
fn sticky_cookies_survive_moves_losses_and_reordering() {
    for (lose_to, reorder, lose_from) in [
        (None, None, None),
        (Some(0), None, None),
        (Some(1), None, None),
        (None, Some(0), None),
        (Some(4), Some(7), None),
        (None, Some(2), Some(2)),
        (Some(9), Some(3), Some(4)),
    ] {
        let mut c = Cluster::new(&sticky(true));
        c.lose_to_client = lose_to;
        c.reorder_to_client = reorder;
        c.lose_from_client = lose_from;
        c.connect();
        let batches: [&[&str]; 5] = [
            &["/three"],
            &["/one"],
            &["/two", "/three"],
            &["/one", "/one", "/two"],
            &["/three"],
        ];
        check_with(&mut c, &batches, expected_sticky);
        let paths = [
            "/three", "/one", "/two", "/three", "/one", "/one", "/two", "/three",
        ];
        assert_eq!(c.counter(Counter::StickyIssued), moves(&paths) + 1);
    }
}
