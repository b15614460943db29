//! Request classes through the pipeline (issue 15): each request of a
//! splice service is classified and admitted or refused by its class, and a
//! refused one gets the class's answer from the dataplane itself (a 503
//! busy page with `Retry-After` in MSS-sized segments, a redirect, or a
//! reset), in frequent and rare handoff modes; and in rare mode a bad
//! request gets `on_bad_request` (it used to go to the local kernel).
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::net::Ipv4Addr;
use std::sync::Arc;

use shoal_config::{
    BadRequestAction, Dispatch, DispatchPolicy, DispatchRule, HandoffMode, RefuseAction,
    RequestClass,
};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::{Frame, PortId};
use shoal_dataplane::pipeline::{Pipeline, Tables, Verdict, KERNEL, WIRE};
use shoal_dataplane::traffic::{tcp_frame, tcp_header, Endpoint};
use shoal_wire::time::Instant;
use shoal_wire::{EthernetAddress, TcpFlags};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const SRV1_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b]);
const SRV2_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0c]);

fn class(name: &str, f: impl FnOnce(&mut RequestClass)) -> RequestClass {
    let mut c = RequestClass::catch_all(name);
    f(&mut c);
    c
}

/// The classes of these tests: `bulk` (/downloads/, 2 a second, a long
/// busy page), `moved` (/old/, 1 a second, a 307 redirect), `rude`
/// (/rude/, 1 a second, a reset), `hot` (refused while the serving member's
/// load is 0.5 or more); everything else is `default`, unlimited.
fn classes() -> Vec<RequestClass> {
    vec![
        class("bulk", |c| {
            c.path_prefix = Some("/downloads/".into());
            c.max_rate = Some(2.0);
            c.retry_after_s = 7;
            c.busy_body = Some(format!("<p>{}</p>\n", "busy ".repeat(600)));
        }),
        class("moved", |c| {
            c.path_prefix = Some("/old/".into());
            c.max_rate = Some(1.0);
            c.on_refuse = RefuseAction::Redirect;
            c.redirect_to = Some("https://other.example/".into());
            c.redirect_status = 307;
        }),
        class("rude", |c| {
            c.path_prefix = Some("/rude/".into());
            c.max_rate = Some(1.0);
            c.on_refuse = RefuseAction::Reset;
        }),
        class("hot", |c| {
            c.path_prefix = Some("/hot/".into());
            c.max_load = Some(0.5);
        }),
    ]
}

/// The replay example's config as member `member`'s, its service a splice
/// service with `dispatch` (validated).
fn config(member: &str, dispatch: Dispatch) -> shoal_config::Config {
    let cfg = shoal_e2e::splice_config(member, dispatch);
    cfg.validate().unwrap();
    cfg
}

/// Member `member`'s pipeline for a splice service with `dispatch`, able to
/// hand connections over (a shared test cluster key).
fn member(member: &str, dispatch: Dispatch) -> Pipeline {
    shoal_e2e::member_pipeline(&config(member, dispatch))
}

/// Every request served by srv1 (rules), with the classes.
fn frequent() -> Pipeline {
    member("srv1", frequent_dispatch())
}

fn frequent_dispatch() -> Dispatch {
    Dispatch {
        classes: classes(),
        ..shoal_e2e::all_to("srv1")
    }
}

fn service() -> Endpoint {
    Endpoint {
        mac: EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]),
        ip: VIP,
        port: 80,
    }
}

/// The `n`-th client srv1 inspects.
fn client(p: &Pipeline, n: usize) -> Endpoint {
    shoal_e2e::clients_inspected_by(p, 1, 4).nth(n).unwrap()
}

/// The first eight clients srv1 inspects.
fn clients(p: &Pipeline) -> Vec<Endpoint> {
    (0..8).map(|n| client(p, n)).collect()
}

const FIN: u8 = 0x01;
const RST: u8 = 0x04;

use shoal_e2e::{parse_tcp as parse, TcpSeg as Seg};

fn run(
    p: &mut Pipeline,
    port: PortId,
    frame: &[u8],
    now: Instant,
) -> (Verdict, Vec<(PortId, Vec<u8>)>) {
    let mut f = HeapFrame::from_bytes(frame);
    let v = p.process(port, &mut f, now);
    let _ = f.bytes();
    (v, p.take_emitted().collect())
}

/// A cookie handshake of `c` and its request `path` in the
/// handshake-completing segment; what the pipeline sent back, and the
/// cookie ISN.
fn request(
    p: &mut Pipeline,
    c: &Endpoint,
    path: &str,
    now: Instant,
) -> (Vec<(PortId, Vec<u8>)>, u32) {
    let body = request_text(path);
    let (v, cookie, out) =
        shoal_e2e::cookie_request(p, c, &service(), Some(1000), body.as_bytes(), now);
    assert_eq!(v, Verdict::Drop);
    (out, cookie)
}

fn request_text(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: shop.test\r\n\r\n")
}

fn req_len(path: &str) -> u32 {
    request_text(path).len() as u32
}

fn served_here(out: &[(PortId, Vec<u8>)]) -> bool {
    out.len() == 1 && out[0].0 == KERNEL && parse(&out[0].1).flags & 0x02 != 0
}

/// The response bytes of an answer: consecutive segments from the
/// cookie's ISN + 1, each acknowledging the whole request, the last (only
/// the last) with FIN.
fn answer_bytes(out: &[(PortId, Vec<u8>)], c: &Endpoint, cookie: u32, request_len: u32) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (port, frame)) in out.iter().enumerate() {
        assert_eq!(*port, WIRE);
        let s = parse(frame);
        assert_eq!(s.dst, c.ip);
        assert_eq!(
            s.seq,
            cookie.wrapping_add(1).wrapping_add(body.len() as u32)
        );
        assert_eq!(s.ack, 1001 + request_len, "the request acknowledged");
        assert!(s.payload.len() <= 1000, "at most the client's MSS");
        assert_eq!(
            s.flags & FIN != 0,
            i == out.len() - 1,
            "FIN on the last segment only"
        );
        body.extend_from_slice(&s.payload);
    }
    body
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response
        .split("\r\n\r\n")
        .next()?
        .lines()
        .find_map(|l| {
            l.split_once(": ")
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        })
        .map(|(_, v)| v)
}

#[test]
fn a_class_over_its_rate_gets_a_busy_page_in_segments_with_retry_after() {
    let mut p = frequent();
    let cl = clients(&p);
    let now = Instant::from_secs(100);
    let path = "/downloads/big.iso";
    let request_len = req_len(path);
    for c in &cl[..2] {
        let (out, _) = request(&mut p, c, path, now);
        assert!(
            served_here(&out),
            "admitted: the SYN replayed into the kernel: {:?} {:?}",
            out.iter().map(|(p, f)| (*p, parse(f))).collect::<Vec<_>>(),
            p.counters().get(Counter::SpliceRefused)
        );
    }
    let c = cl[2];
    let (out, cookie) = request(&mut p, &c, path, now);
    assert!(
        out.len() >= 4,
        "a 3 KB page in 1000-byte segments: {}",
        out.len()
    );
    let response = String::from_utf8(answer_bytes(&out, &c, cookie, request_len)).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{response}"
    );
    assert_eq!(header(&response, "retry-after"), Some("7"));
    assert_eq!(header(&response, "content-type"), Some("text/html"));
    assert_eq!(header(&response, "connection"), Some("close"));
    let body = response.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(
        header(&response, "content-length"),
        Some(body.len().to_string().as_str())
    );
    assert!(body.starts_with("<p>busy busy"));
    assert_eq!(p.counters().get(Counter::SpliceRefused), 1);
    let (admitted, refused) = p.class_counts(0, "bulk").unwrap();
    assert_eq!(admitted, 2);
    assert!(refused.contains(&("rate", 1)), "{refused:?}");
    assert_eq!(p.flows().len(), 2, "the refused connection holds nothing");
    // Other classes go on; half a second later the bucket has one more.
    let (out, _) = request(&mut p, &cl[3], "/index.html", now);
    assert!(served_here(&out));
    assert_eq!(p.class_counts(0, "default").unwrap().0, 1);
    let later = now + std::time::Duration::from_millis(500);
    let (out, _) = request(&mut p, &cl[4], path, later);
    assert!(served_here(&out));
    let (out, _) = request(&mut p, &cl[5], path, later);
    assert!(!served_here(&out));
    assert_eq!(p.class_counts(0, "bulk").unwrap().0, 3);
}

#[test]
fn redirect_and_reset_answers() {
    let mut p = frequent();
    let cl = clients(&p);
    let now = Instant::from_secs(100);
    let (out, _) = request(&mut p, &cl[0], "/old/page", now);
    assert!(served_here(&out));
    let c = cl[1];
    let (out, cookie) = request(&mut p, &c, "/old/page", now);
    let response = String::from_utf8(answer_bytes(&out, &c, cookie, req_len("/old/page"))).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 307 Temporary Redirect\r\n"),
        "{response}"
    );
    assert_eq!(
        header(&response, "location"),
        Some("https://other.example/")
    );
    assert_eq!(header(&response, "content-length"), Some("0"));

    let (out, _) = request(&mut p, &cl[2], "/rude/x", now);
    assert!(served_here(&out));
    let (out, cookie) = request(&mut p, &cl[3], "/rude/x", now);
    assert_eq!(out.len(), 1);
    let rst = parse(&out[0].1);
    assert_eq!(rst.flags & RST, RST);
    assert_eq!(rst.seq, cookie.wrapping_add(1));
    assert!(rst.payload.is_empty());
    assert_eq!(p.counters().get(Counter::SpliceRefused), 2);
    assert_eq!(p.class_counts(0, "moved").unwrap().1[0], ("rate", 1));
    assert_eq!(p.class_counts(0, "rude").unwrap().1[0], ("rate", 1));
    assert_eq!(p.flows().len(), 2);
}

#[test]
fn a_class_with_max_load_is_refused_while_its_member_is_loaded() {
    let mut p = frequent();
    let cl = clients(&p);
    let now = Instant::from_secs(100);
    let (out, _) = request(&mut p, &cl[0], "/hot/a", now);
    assert!(served_here(&out), "srv1's load is 0 in a fresh table");
    let mut members = p.tables().members.clone();
    for m in &mut members {
        m.load = 0.75;
    }
    let cfg = config("srv1", frequent_dispatch());
    let tables = Tables::build(&cfg, 2, members).unwrap();
    p.set_tables(Arc::new(tables));
    let c = cl[1];
    let (out, cookie) = request(&mut p, &c, "/hot/a", now);
    let response = String::from_utf8(answer_bytes(&out, &c, cookie, req_len("/hot/a"))).unwrap();
    assert!(response.starts_with("HTTP/1.1 503 "), "{response}");
    assert_eq!(header(&response, "retry-after"), Some("1"));
    assert_eq!(p.class_counts(0, "hot").unwrap().1[1], ("load", 1));
    // The same load does not limit the default class.
    let (out, _) = request(&mut p, &cl[2], "/cold", now);
    assert!(served_here(&out));
}

/// srv1 in rare mode with `dispatch` (rules sending everything to srv1).
fn rare(on_bad_request: BadRequestAction) -> Pipeline {
    member(
        "srv1",
        Dispatch {
            policy: DispatchPolicy::Rules,
            handoff: HandoffMode::Rare,
            rules: vec![DispatchRule {
                host: None,
                prefix: "/".into(),
                member: "srv1".into(),
            }],
            default_member: Some("srv2".into()),
            on_bad_request,
            classes: classes(),
            ..Dispatch::default()
        },
    )
}

/// Rare mode: srv1's kernel does the handshake with `c` (its ISN `k1`),
/// then the client sends `payload`; what srv1 sent.
fn rare_request(
    p: &mut Pipeline,
    c: &Endpoint,
    payload: &[u8],
    now: Instant,
) -> (Verdict, Vec<(PortId, Vec<u8>)>) {
    let svc = service();
    let k1_side = Endpoint {
        mac: SRV1_MAC,
        ip: VIP,
        port: 80,
    };
    let k1 = 7_000_000u32;
    let mut syn = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
    syn.timestamps = Some((4242, 0));
    let (v, _) = run(p, WIRE, &tcp_frame(c, &svc, &syn, &[], 1), now);
    assert_eq!(v, Verdict::Forward(KERNEL));
    let mut sa = tcp_header(80, c.port, k1, Some(1001), TcpFlags::SYN);
    sa.timestamps = Some((60_000, 4242));
    let (v, _) = run(p, KERNEL, &tcp_frame(&k1_side, c, &sa, &[], 0), now);
    assert_eq!(v, Verdict::Forward(WIRE));
    let mut req = tcp_header(c.port, 80, 1001, Some(k1 + 1), TcpFlags::PSH);
    req.timestamps = Some((4243, 60_000));
    run(p, WIRE, &tcp_frame(c, &svc, &req, payload, 3), now)
}

/// The exact RST into srv1's kernel (seq = its `rcv_nxt`, no ACK) among
/// `out`, and the frames to the wire.
fn kernel_reset_and_wire(out: &[(PortId, Vec<u8>)]) -> Vec<Seg> {
    let rst: Vec<_> = out.iter().filter(|(p, _)| *p == KERNEL).collect();
    assert_eq!(rst.len(), 1, "{out:?}");
    let rst = parse(&rst[0].1);
    assert_eq!((rst.seq, rst.flags, rst.ack), (1001, RST, 0));
    out.iter()
        .filter(|(p, _)| *p == WIRE)
        .map(|(_, f)| parse(f))
        .collect()
}

#[test]
fn rare_mode_bad_requests_get_on_bad_request() {
    let garbage = b"\x16\x03\x01\x02\x00garbage\r\n\r\n";
    let now = Instant::from_secs(100);

    // respond: the kernel's socket reset, the client a 400 from the kernel's ISN.
    let mut p = rare(BadRequestAction::Respond);
    let cl = clients(&p);
    let (v, out) = rare_request(&mut p, &cl[0], garbage, now);
    assert_eq!(v, Verdict::Drop, "not given to the kernel");
    let wire = kernel_reset_and_wire(&out);
    assert_eq!(wire.len(), 1);
    assert!(wire[0].payload.starts_with(b"HTTP/1.1 400 "));
    assert_eq!(
        (wire[0].seq, wire[0].ack),
        (7_000_001, 1001 + garbage.len() as u32)
    );
    assert_eq!(wire[0].flags & FIN, FIN);
    assert_eq!(p.counters().get(Counter::SpliceBadRequest), 1);
    assert_eq!(p.flows().len(), 0);

    // reset: both sides reset.
    let mut p = rare(BadRequestAction::Reset);
    let cl = clients(&p);
    let (_, out) = rare_request(&mut p, &cl[0], garbage, now);
    let wire = kernel_reset_and_wire(&out);
    assert_eq!(wire.len(), 1);
    assert_eq!(wire[0].flags & RST, RST);
    assert_eq!(p.flows().len(), 0);

    // pass-to-default: handed over to srv2, the default member.
    let mut p = rare(BadRequestAction::PassToDefault);
    let cl = clients(&p);
    let (_, out) = rare_request(&mut p, &cl[0], garbage, now);
    let offer = out.iter().find(|(port, _)| *port == WIRE).unwrap();
    assert_eq!(offer.1[..6], SRV2_MAC.0, "the offer goes to srv2");
    assert_eq!(p.counters().get(Counter::RareMoved), 1);
}

#[test]
fn rare_mode_refusals_reset_the_kernel_and_answer_the_client() {
    let mut p = rare(BadRequestAction::Respond);
    let cl = clients(&p);
    let now = Instant::from_secs(100);
    let request = b"GET /old/x HTTP/1.1\r\nHost: a\r\n\r\n";
    let (_, out) = rare_request(&mut p, &cl[0], request, now);
    assert_eq!(out.len(), 1, "admitted: the request to the kernel");
    assert_eq!(out[0].0, KERNEL);
    assert_eq!(parse(&out[0].1).payload, request);
    let (v, out) = rare_request(&mut p, &cl[1], request, now);
    assert_eq!(v, Verdict::Drop);
    let wire = kernel_reset_and_wire(&out);
    assert_eq!(wire.len(), 1);
    let response = String::from_utf8(wire[0].payload.clone()).unwrap();
    assert!(response.starts_with("HTTP/1.1 307 "), "{response}");
    assert_eq!(wire[0].seq, 7_000_001, "in the kernel's sequence space");
    assert_eq!(p.counters().get(Counter::SpliceRefused), 1);
    assert_eq!(p.flows().len(), 1);
}

/// The per-class counts reach the stats segment by name
/// (`class/<service>/<class>/<what>`, what control exports as
/// `shoal_dataplane_class_*_total`), and keep their names when a reload
/// reorders the classes.
#[test]
fn class_counts_are_published_by_name_across_a_reorder() {
    use shoal_channel::{stats_path, StatsReader};
    use shoal_dataplane::control_link::ControlLink;
    let mut p = frequent();
    let cl = clients(&p);
    let now = Instant::from_secs(100);
    for c in &cl[..3] {
        request(&mut p, c, "/downloads/x", now);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut link = ControlLink::open(dir.path(), 0, 1, p.tables()).unwrap();
    let service = p.tables().services[0].name.clone();
    let read = |link: &mut ControlLink, p: &Pipeline| {
        link.write_stats(p, (&[], &[]), now);
        StatsReader::open(stats_path(dir.path(), 0))
            .unwrap()
            .read()
            .unwrap()
    };
    let snap = read(&mut link, &p);
    let v = |snap: &shoal_channel::StatsSnapshot, name: &str| {
        snap.value(&format!("class/{service}/{name}")).unwrap()
    };
    assert_eq!(v(&snap, "bulk/admitted"), 2);
    assert_eq!(v(&snap, "bulk/refused_rate"), 1);
    assert_eq!(v(&snap, "moved/admitted"), 0);
    assert_eq!(v(&snap, "default/admitted"), 0);
    // A reload puts `bulk` last: its counts start again (new classes, new
    // state) under its own name, never under another class's.
    let mut d = frequent_dispatch();
    d.classes.rotate_left(1);
    let cfg = config("srv1", d);
    p.set_tables(Arc::new(
        Tables::build(&cfg, 2, p.tables().members.clone()).unwrap(),
    ));
    request(&mut p, &cl[3], "/old/y", now);
    let snap = read(&mut link, &p);
    assert_eq!(v(&snap, "bulk/admitted"), 0);
    assert_eq!(v(&snap, "moved/admitted"), 1);
}
