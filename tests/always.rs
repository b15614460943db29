//! CARISMA *always* handoff (issue 15, seed 003 §6): with member roles, the
//! front ends inspect every connection and hand every request over, the
//! back ends serve and inspect nothing.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use shoal_config::{Dispatch, DispatchPolicy, MemberRole};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::pipeline::{Pipeline, Verdict, KERNEL, WIRE};
use shoal_dataplane::traffic::{client_endpoint, tcp_frame, tcp_header, Endpoint};
use shoal_select::ClientKey;
use shoal_wire::time::Instant;
use shoal_wire::{EthernetAddress, EthernetFrame, TcpFlags};

/// The replay example as `member`'s config: srv1 a front end, srv2 and
/// srv3 back ends, one splice service spreading every path.
fn member(member: &str) -> Pipeline {
    let mut cfg = shoal_e2e::splice_config(
        member,
        Dispatch {
            policy: DispatchPolicy::UrlHash,
            hot_paths: vec!["/".into()],
            ..Dispatch::default()
        },
    );
    for m in &mut cfg.cluster.members {
        m.role = if m.name == "srv1" {
            MemberRole::FrontEnd
        } else {
            MemberRole::BackEnd
        };
    }
    shoal_e2e::member_pipeline(&cfg)
}

fn service() -> Endpoint {
    Endpoint {
        mac: EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]),
        ip: "198.18.0.100".parse().unwrap(),
        port: 80,
    }
}

const SRV2_MAC: [u8; 6] = [0x02, 0x00, 0xc6, 0x12, 0x00, 0x0c];
const SRV3_MAC: [u8; 6] = [0x02, 0x00, 0xc6, 0x12, 0x00, 0x0d];

#[test]
fn the_front_end_inspects_every_connection_and_hands_every_request_over() {
    let mut fe = member("srv1");
    for port in 40_000..41_000 {
        let c = client_endpoint(4, port);
        assert_eq!(
            fe.tables().services[0].selector.select(ClientKey {
                addr: c.ip,
                port: c.port
            }),
            Some(1),
            "only the front end inspects"
        );
    }
    assert!(!fe.tables().serves(1) && fe.tables().serves(2) && fe.tables().serves(3));
    let now = Instant::from_secs(100);
    let mut to = [0u32; 2];
    for n in 0..60u16 {
        let c = client_endpoint(5, 40_000 + n);
        let offer = offered(&mut fe, &c, &format!("/files/{n}"), now);
        match offer[..6].try_into().unwrap() {
            SRV2_MAC => to[0] += 1,
            SRV3_MAC => to[1] += 1,
            other => panic!("offered to {other:02x?}"),
        }
    }
    assert!(
        to[0] > 10 && to[1] > 10,
        "both back ends get requests: {to:?}"
    );
    assert_eq!(fe.counters().get(Counter::SpliceReplayed), 0);
}

/// Handshake and request for `path` of client `c` with the front end: the
/// offer it sends (asserting that nothing went to its kernel).
fn offered(fe: &mut Pipeline, c: &Endpoint, path: &str, now: Instant) -> Vec<u8> {
    let body = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let (_, _, out) = shoal_e2e::cookie_request(fe, c, &service(), None, body.as_bytes(), now);
    assert!(
        out.iter().all(|(p, _)| *p != KERNEL),
        "nothing to the front end's kernel"
    );
    out.into_iter().find(|(p, _)| *p == WIRE).unwrap().1
}

/// A front end whose offer no back end answers does not serve the request
/// itself (the fallback of a cluster without roles): the client gets the
/// service's busy answer.
#[test]
fn a_request_no_back_end_takes_gets_the_busy_answer_not_the_front_ends_kernel() {
    let mut fe = member("srv1");
    let c = client_endpoint(7, 40_123);
    let now = Instant::from_secs(100);
    offered(&mut fe, &c, "/files/1k", now);
    let mut answers = Vec::new();
    for step in 1..=120u64 {
        fe.expire(now + std::time::Duration::from_millis(250 * step), 4096);
        for (port, frame) in fe.take_emitted() {
            assert_ne!(port, KERNEL, "nothing to the front end's kernel");
            let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
            let ip = shoal_wire::Ipv4Packet::new_checked(eth.payload()).unwrap();
            if ip.dst_addr() == c.ip {
                let tcp = shoal_wire::TcpPacket::new_checked(ip.payload()).unwrap();
                answers.push(tcp.payload().to_vec());
            }
        }
    }
    assert_eq!(fe.counters().get(Counter::HandoffFallback), 1);
    assert_eq!(fe.counters().get(Counter::SpliceFrontEndRefused), 1);
    assert_eq!(fe.counters().get(Counter::SpliceReplayed), 0);
    assert_eq!(answers.len(), 1, "one answer to the client");
    assert!(
        answers[0].starts_with(b"HTTP/1.1 503 "),
        "{:?}",
        String::from_utf8_lossy(&answers[0])
    );
    assert_eq!(fe.flows().len(), 0);
}

#[test]
fn a_back_end_inspects_nothing() {
    let mut be = member("srv2");
    let now = Instant::from_secs(100);
    for n in 0..50u16 {
        let c = client_endpoint(6, 40_000 + n);
        let syn = tcp_header(c.port, 80, 1000, None, TcpFlags::SYN);
        let v = be.process(
            WIRE,
            &mut HeapFrame::from_bytes(&tcp_frame(&c, &service(), &syn, &[], 1)),
            now,
        );
        assert_eq!(v, Verdict::Drop);
        assert_eq!(be.take_emitted().count(), 0, "no SYN-ACK from a back end");
    }
    assert_eq!(be.counters().get(Counter::SynOtherInspector), 50);
}
