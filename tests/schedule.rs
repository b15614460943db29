//! Scheduling at the serving member through the pipeline (issue 15, seed
//! 003 §7): srv1 inspects and serves every request (rules), with
//! `scheduling.max_active = 1`, so one request at a time is in its
//! (scripted) kernel. Requests beyond it wait in their class's queue —
//! acknowledged to the client, the kernel's handshake completed with a bare
//! ACK — and go in by the policy when a response completes; what overflows
//! a queue or waits too long gets the class's answer from the dataplane,
//! with an exact RST to the kernel.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use shoal_config::{Dispatch, RefuseAction, RequestClass, Scheduling, SchedulingPolicy};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::{Frame, PortId};
use shoal_dataplane::pipeline::{Pipeline, Verdict, KERNEL, WIRE};
use shoal_dataplane::traffic::{tcp_frame, tcp_header, Endpoint};
use shoal_wire::time::Instant;
use shoal_wire::{EthernetAddress, TcpFlags};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const SRV1_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b]);
const KERNEL_ISN: u32 = 0x7000_0000;

fn class(name: &str, f: impl FnOnce(&mut RequestClass)) -> RequestClass {
    let mut c = RequestClass::catch_all(name);
    f(&mut c);
    c
}

/// `interactive` (/i/, priority 0) and `bulk` (/bulk/, priority 1, a queue
/// of 2, 500 ms of waiting at most, 3 in flight at most); everything else
/// `default` (priority 2).
fn dispatch(policy: SchedulingPolicy) -> Dispatch {
    Dispatch {
        classes: vec![
            class("interactive", |c| {
                c.path_prefix = Some("/i/".into());
                c.priority = 0;
            }),
            class("bulk", |c| {
                c.path_prefix = Some("/bulk/".into());
                c.priority = 1;
                c.max_queue = 2;
                c.max_wait_ms = 500;
                c.max_in_flight = Some(3);
                c.retry_after_s = 9;
            }),
            class("default", |c| {
                c.priority = 2;
                c.on_refuse = RefuseAction::Reset;
            }),
        ],
        scheduling: Some(Scheduling {
            policy,
            max_active: 1,
        }),
        ..shoal_e2e::all_to("srv1")
    }
}

fn member(policy: SchedulingPolicy) -> Pipeline {
    let cfg = shoal_e2e::splice_config("srv1", dispatch(policy));
    cfg.validate().unwrap();
    shoal_e2e::member_pipeline(&cfg)
}

fn service() -> Endpoint {
    Endpoint {
        mac: EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]),
        ip: VIP,
        port: 80,
    }
}

/// The first `n` clients srv1 inspects.
fn clients(p: &Pipeline, n: usize) -> Vec<Endpoint> {
    shoal_e2e::clients_inspected_by(p, 1, 4).take(n).collect()
}

use shoal_e2e::{parse_tcp as parse, TcpSeg as Seg};

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: shop.test\r\n\r\n").into_bytes()
}

/// The scripted kernel of srv1 and the clients: one socket per client port.
struct Bench {
    p: Pipeline,
    clients: Vec<Endpoint>,
    /// Per client port: the kernel socket's next byte to receive, and the
    /// request bytes it got.
    kernel: BTreeMap<u16, (u32, Vec<u8>)>,
    /// Per client port: the cookie ISN (the client's view of the server).
    cookies: BTreeMap<u16, u32>,
    /// Per client port: what reached the client (in order).
    to_client: BTreeMap<u16, Vec<Seg>>,
    /// Client ports whose kernel socket got an exact RST.
    kernel_resets: Vec<u16>,
    now: Instant,
}

impl Bench {
    fn new(policy: SchedulingPolicy, n: usize) -> Bench {
        let p = member(policy);
        let clients = clients(&p, n);
        Bench {
            p,
            clients,
            kernel: BTreeMap::new(),
            cookies: BTreeMap::new(),
            to_client: BTreeMap::new(),
            kernel_resets: Vec::new(),
            now: Instant::from_millis(1_000),
        }
    }

    /// Routes what the pipeline sent: kernel frames to the scripted
    /// kernel (a SYN is answered at once), wire frames to their client.
    fn route(&mut self, out: Vec<(PortId, Vec<u8>)>) {
        for (port, frame) in out {
            let s = parse(&frame);
            if port == WIRE {
                self.to_client.entry(s.dst_port).or_default().push(s);
                continue;
            }
            assert_eq!(port, KERNEL);
            let client = s.src_port;
            if s.flags & SYN != 0 {
                assert!(!self.kernel.contains_key(&client), "SYN on a live socket");
                self.kernel
                    .insert(client, (s.seq.wrapping_add(1), Vec::new()));
                let c = self.client(client);
                let mut sa = tcp_header(
                    80,
                    client,
                    KERNEL_ISN,
                    Some(s.seq.wrapping_add(1)),
                    TcpFlags::SYN,
                );
                sa.mss = Some(1460);
                sa.timestamps = Some((77, 1));
                let kernel_ep = Endpoint {
                    mac: SRV1_MAC,
                    ip: VIP,
                    port: 80,
                };
                let f = tcp_frame(&kernel_ep, &c, &sa, &[], 0);
                let out = self.process(KERNEL, &f);
                self.route(out);
                continue;
            }
            let sock = self
                .kernel
                .get_mut(&client)
                .expect("a segment for a live socket");
            if s.flags & RST != 0 {
                assert_eq!(s.seq, sock.0, "an exact RST");
                self.kernel.remove(&client);
                self.kernel_resets.push(client);
                continue;
            }
            // The tests' kernels send nothing but complete responses on
            // connections that end there.
            assert_eq!(s.ack, KERNEL_ISN.wrapping_add(1));
            if !s.payload.is_empty() {
                assert_eq!(s.seq, sock.0, "in order");
                sock.0 = sock.0.wrapping_add(s.payload.len() as u32);
                sock.1.extend_from_slice(&s.payload);
            }
        }
    }

    fn client(&self, port: u16) -> Endpoint {
        *self.clients.iter().find(|c| c.port == port).unwrap()
    }

    /// `frame` through the pipeline from `port`: what it sent, and the
    /// frame itself if forwarded.
    fn process(&mut self, port: PortId, frame: &[u8]) -> Vec<(PortId, Vec<u8>)> {
        let mut f = HeapFrame::from_bytes(frame);
        let verdict = self.p.process(port, &mut f, self.now);
        let mut out: Vec<_> = self.p.take_emitted().collect();
        if let Verdict::Forward(to) = verdict {
            out.push((to, f.bytes().to_vec()));
        }
        out
    }

    /// Client `i` connects and sends `path`.
    fn request(&mut self, i: usize, path: &str) {
        let c = self.clients[i];
        let (_, cookie, out) = shoal_e2e::cookie_request(
            &mut self.p,
            &c,
            &service(),
            Some(1460),
            &get(path),
            self.now,
        );
        self.cookies.insert(c.port, cookie);
        self.route(out);
    }

    /// What client `i`'s kernel socket got (None: no socket).
    fn in_kernel(&self, i: usize) -> Option<String> {
        let port = self.clients[i].port;
        self.kernel
            .get(&port)
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
    }

    /// The kernel answers client `i`'s request: a complete response.
    fn respond(&mut self, i: usize) {
        let c = self.clients[i];
        let (rcv_nxt, _) = self.kernel[&c.port].clone();
        let body = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let mut r = tcp_header(
            80,
            c.port,
            KERNEL_ISN.wrapping_add(1),
            Some(rcv_nxt),
            TcpFlags::PSH,
        );
        r.timestamps = Some((78, 2));
        let kernel_ep = Endpoint {
            mac: SRV1_MAC,
            ip: VIP,
            port: 80,
        };
        let f = tcp_frame(&kernel_ep, &c, &r, body, 0);
        let out = self.process(KERNEL, &f);
        self.route(out);
    }

    /// Bytes of the answer client `i` got from the dataplane, checked: in
    /// order from the cookie's ISN + 1, acknowledging its whole request, a
    /// FIN on the last segment (bare acknowledgements of its waiting
    /// request left out).
    fn answer(&self, i: usize, request_len: u32) -> String {
        let c = self.clients[i];
        let cookie = self.cookies[&c.port];
        let segs: Vec<Seg> = self
            .to_client
            .get(&c.port)
            .into_iter()
            .flatten()
            .filter(|s| !s.payload.is_empty() || s.flags & (FIN | RST) != 0)
            .cloned()
            .collect();
        let mut body = Vec::new();
        for (n, s) in segs.iter().enumerate() {
            assert_eq!(s.dst_mac, c.mac, "to the client's address");
            assert_eq!(
                s.seq,
                cookie.wrapping_add(1).wrapping_add(body.len() as u32)
            );
            assert_eq!(s.ack, 1001 + request_len);
            assert_eq!(
                s.flags & FIN != 0,
                n + 1 == segs.len(),
                "FIN on the last only"
            );
            body.extend_from_slice(&s.payload);
        }
        String::from_utf8(body).unwrap()
    }

    /// Every payload byte client `i` got.
    fn received(&self, i: usize) -> String {
        let port = self.clients[i].port;
        let bytes: Vec<u8> = self.to_client[&port]
            .iter()
            .flat_map(|s| s.payload.clone())
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    fn class_value(&self, name: &str) -> u64 {
        let mut v = None;
        self.p.for_each_class_value(|n, x| {
            if n == name {
                v = Some(x);
            }
        });
        v.unwrap_or_else(|| panic!("no {name}"))
    }
}

#[test]
fn strict_priority_releases_one_request_at_a_time_interactive_first() {
    let mut b = Bench::new(SchedulingPolicy::Priority, 3);
    b.request(0, "/bulk/a");
    assert_eq!(
        b.in_kernel(0).unwrap(),
        String::from_utf8(get("/bulk/a")).unwrap()
    );
    // Two more wait: their kernel sockets are open (a bare ACK completed
    // the handshake) and got no byte.
    b.request(1, "/bulk/b");
    b.request(2, "/i/c");
    assert_eq!(b.in_kernel(1).as_deref(), Some(""));
    assert_eq!(b.in_kernel(2).as_deref(), Some(""));
    assert_eq!(b.class_value("class/http/bulk/waiting"), 1);
    assert_eq!(b.class_value("class/http/interactive/waiting"), 1);
    assert_eq!(b.class_value("class/http/bulk/active"), 1);
    // Nothing reached the waiting clients but an acknowledgement of their
    // whole request (they do not retransmit it).
    for (i, path) in [(1, "/bulk/b"), (2, "/i/c")] {
        let c = b.clients[i];
        let segs = &b.to_client[&c.port];
        assert!(segs
            .iter()
            .all(|s| s.payload.is_empty() && s.flags & (FIN | RST) == 0));
        assert!(segs.iter().any(|s| s.ack == 1001 + get(path).len() as u32));
        assert_eq!(b.answer(i, get(path).len() as u32), "");
    }
    // The bulk response completes: the interactive request goes next,
    // though it arrived after the waiting bulk one.
    b.respond(0);
    assert_eq!(
        b.in_kernel(2).unwrap(),
        String::from_utf8(get("/i/c")).unwrap()
    );
    assert_eq!(b.in_kernel(1).as_deref(), Some(""));
    assert_eq!(b.class_value("class/http/interactive/active"), 1);
    assert_eq!(b.class_value("class/http/bulk/active"), 0);
    b.respond(2);
    assert_eq!(
        b.in_kernel(1).unwrap(),
        String::from_utf8(get("/bulk/b")).unwrap()
    );
    b.respond(1);
    assert_eq!(b.class_value("class/http/bulk/released"), 2);
    assert_eq!(b.class_value("class/http/interactive/released"), 1);
    assert_eq!(b.class_value("class/http/bulk/active"), 0);
    assert_eq!(b.class_value("class/http/bulk/waiting"), 0);
    // Every release waited 0 ms on this clock: all in the first bucket.
    assert_eq!(b.class_value("class/http/bulk/wait_le_1"), 2);
    assert_eq!(b.class_value("class/http/bulk/wait_le_inf"), 2);
    // Each client got its response, translated, nothing else refused.
    for i in 0..3 {
        let got = b.received(i);
        assert!(
            got.starts_with("HTTP/1.1 200 OK\r\n") && got.ends_with("\r\n\r\nok"),
            "{got}"
        );
    }
    assert_eq!(b.p.counters().get(Counter::PersistRefused), 0);
    assert!(b.kernel_resets.is_empty());
}

#[test]
fn fifo_releases_in_arrival_order() {
    let mut b = Bench::new(SchedulingPolicy::Fifo, 3);
    b.request(0, "/bulk/a");
    b.request(1, "/bulk/b");
    b.request(2, "/i/c");
    b.respond(0);
    assert_eq!(
        b.in_kernel(1).unwrap(),
        String::from_utf8(get("/bulk/b")).unwrap()
    );
    assert_eq!(b.in_kernel(2).as_deref(), Some(""));
    b.respond(1);
    assert_eq!(
        b.in_kernel(2).unwrap(),
        String::from_utf8(get("/i/c")).unwrap()
    );
}

#[test]
fn a_full_queue_gets_the_busy_answer_and_the_kernel_an_exact_rst() {
    let mut b = Bench::new(SchedulingPolicy::Priority, 4);
    b.request(0, "/i/a"); // active
    b.request(1, "/bulk/b"); // waits
    b.request(2, "/bulk/c"); // waits: the bulk queue is full (2)
    b.request(3, "/bulk/d"); // refused
    let answer = b.answer(3, get("/bulk/d").len() as u32);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("\r\nRetry-After: 9\r\n"), "{answer}");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    assert_eq!(b.kernel_resets, vec![b.clients[3].port]);
    assert_eq!(b.class_value("class/http/bulk/refused_queue_full"), 1);
    assert_eq!(b.p.counters().get(Counter::PersistRefused), 1);
    // The waiting ones are served in turn, untouched.
    b.respond(0);
    assert!(b.in_kernel(1).unwrap().starts_with("GET /bulk/b "));
    b.respond(1);
    assert!(b.in_kernel(2).unwrap().starts_with("GET /bulk/c "));
    assert!(b.received(1).ends_with("\r\n\r\nok"));
}

#[test]
fn requests_that_wait_too_long_get_the_busy_answer() {
    let mut b = Bench::new(SchedulingPolicy::Priority, 3);
    b.request(0, "/i/a");
    b.request(1, "/bulk/b");
    b.now = Instant::from_millis(1_499);
    b.p.expire(b.now, 64);
    let out = b.p.take_emitted().collect();
    b.route(out);
    assert_eq!(b.answer(1, get("/bulk/b").len() as u32), "");
    b.request(2, "/bulk/c");
    b.now = Instant::from_millis(1_500);
    b.p.expire(b.now, 64);
    let out = b.p.take_emitted().collect();
    b.route(out);
    let answer = b.answer(1, get("/bulk/b").len() as u32);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert_eq!(b.kernel_resets, vec![b.clients[1].port]);
    assert_eq!(b.class_value("class/http/bulk/refused_waited_too_long"), 1);
    assert_eq!(b.class_value("class/http/bulk/waiting"), 1);
    // The one that came later still waits its turn, and gets it.
    b.respond(0);
    assert!(b.in_kernel(2).unwrap().starts_with("GET /bulk/c "));
    // c waited 0 ms, b 500 ms (refused).
    assert_eq!(b.class_value("class/http/bulk/wait_le_1"), 1);
    assert_eq!(b.class_value("class/http/bulk/wait_le_250"), 1);
    assert_eq!(b.class_value("class/http/bulk/wait_le_500"), 2);
}

#[test]
fn max_in_flight_counts_active_and_waiting_requests() {
    let mut b = Bench::new(SchedulingPolicy::Priority, 5);
    b.request(0, "/bulk/a"); // active
    b.request(1, "/bulk/b"); // waits
    b.request(2, "/bulk/c"); // waits: 3 in flight
    b.request(3, "/bulk/d"); // refused: in flight
    assert_eq!(b.class_value("class/http/bulk/refused_in_flight"), 1);
    assert!(b
        .answer(3, get("/bulk/d").len() as u32)
        .starts_with("HTTP/1.1 503 "));
    b.respond(0);
    assert!(b.in_kernel(1).unwrap().starts_with("GET /bulk/b "));
    assert_eq!(b.kernel_resets, vec![b.clients[3].port]);
}

#[test]
fn a_reload_that_changes_scheduling_hands_what_waits_to_the_new_scheduler() {
    use std::sync::Arc;
    let mut b = Bench::new(SchedulingPolicy::Priority, 4);
    b.request(0, "/bulk/a"); // active
    b.request(1, "/bulk/b"); // waits
    b.request(2, "/i/c"); // waits
    b.request(3, "/x/d"); // waits
    assert_eq!(b.in_kernel(1).as_deref(), Some(""));
    // A reload: max_active 2 and no default-class reset. What waited goes
    // to the new scheduler, which starts with nothing active: two go in,
    // by priority.
    let mut d = dispatch(SchedulingPolicy::Priority);
    d.scheduling = Some(Scheduling {
        policy: SchedulingPolicy::Priority,
        max_active: 2,
    });
    let cfg = shoal_e2e::splice_config("srv1", d);
    cfg.validate().unwrap();
    let members = b.p.tables().members.clone();
    let tables = Arc::new(shoal_dataplane::pipeline::Tables::build(&cfg, 2, members).unwrap());
    b.p.set_tables(Arc::clone(&tables));
    b.p.set_tables(tables);
    b.p.expire(b.now, 64);
    let out = b.p.take_emitted().collect();
    b.route(out);
    assert!(b.in_kernel(2).unwrap().starts_with("GET /i/c "));
    assert!(b.in_kernel(1).unwrap().starts_with("GET /bulk/b "));
    assert_eq!(b.in_kernel(3).as_deref(), Some(""));
    assert_eq!(b.class_value("class/http/default/waiting"), 1);
    // Scheduling removed: what waits goes in at once.
    let mut d = dispatch(SchedulingPolicy::Priority);
    d.scheduling = None;
    let cfg = shoal_e2e::splice_config("srv1", d);
    let members = b.p.tables().members.clone();
    let tables = Arc::new(shoal_dataplane::pipeline::Tables::build(&cfg, 3, members).unwrap());
    b.p.set_tables(Arc::clone(&tables));
    b.p.set_tables(tables);
    b.p.expire(b.now, 64);
    let out = b.p.take_emitted().collect();
    b.route(out);
    assert!(b.in_kernel(3).unwrap().starts_with("GET /x/d "));
    for i in 0..4 {
        b.respond(i);
        assert!(b.received(i).ends_with("\r\n\r\nok"), "{i}");
    }
    assert_eq!(b.p.counters().get(Counter::PersistRefused), 0);
}
