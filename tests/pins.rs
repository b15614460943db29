//! Operator pins (`shoalctl flows pin`, issue 13) through an inspector's
//! pipeline: srv1 of the replay example inspects the clients used here; a
//! pin of a client's prefix places its new connections on the pinned member
//! (MAC rewrite for `local` and stateful `dpr-mac`, a handoff for `splice`),
//! connections keep their placement after the pin ends, stateless DPR and a
//! pinned member outside the membership are placed as usual, counted.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use shoal_config::{Mode, State, SynProxy};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::io::PortId;
use shoal_dataplane::pipeline::{Pipeline, Tables, Verdict, KERNEL, WIRE};
use shoal_dataplane::traffic::{tcp_frame, tcp_header, Endpoint};
use shoal_wire::time::Instant;
use shoal_wire::{EthernetAddress, TcpFlags};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

fn member_mac(i: usize) -> EthernetAddress {
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b + i as u8])
}

fn service() -> Endpoint {
    Endpoint {
        mac: EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]),
        ip: VIP,
        port: 80,
    }
}

fn l4_pipeline(mode: Mode, state: State) -> Pipeline {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).unwrap();
    cfg.services[0].mode = mode;
    cfg.services[0].state = state;
    cfg.services[0].syn_proxy = Some(SynProxy::Off);
    let tables = Tables::from_config(&cfg, 1).unwrap();
    Pipeline::new(
        Arc::new(tables),
        1024,
        shoal_dataplane::flow::Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    )
}

fn at(s: u64) -> Instant {
    Instant::from_secs(s)
}

/// A client of host `host` that srv1 inspects (the `i`-th such port).
fn client(p: &Pipeline, host: u32, i: usize) -> Endpoint {
    shoal_e2e::clients_inspected_by(p, 1, host).nth(i).unwrap()
}

/// The verdict on `c`'s segment with `flags` and where a frame for the
/// wire goes (the member whose MAC it now carries).
fn send(p: &mut Pipeline, c: &Endpoint, flags: TcpFlags, now: Instant) -> (Verdict, Option<usize>) {
    let ack = (flags != TcpFlags::SYN).then_some(5001);
    let seq = if flags == TcpFlags::SYN { 1000 } else { 1001 };
    let frame = tcp_frame(
        c,
        &service(),
        &tcp_header(c.port, 80, seq, ack, flags),
        &[],
        1,
    );
    let mut frame = HeapFrame::from_bytes(&frame);
    let v = p.process(WIRE, &mut frame, now);
    let to = (v == Verdict::Forward(WIRE)).then(|| {
        let bytes = shoal_dataplane::io::Frame::bytes(&frame);
        (0..3)
            .find(|&i| bytes[..6] == member_mac(i).0)
            .unwrap_or_else(|| panic!("a frame for {:?}", &bytes[..6]))
    });
    (v, to)
}

#[test]
fn a_pinned_prefix_goes_to_its_member_and_keeps_it_after_the_pin() {
    for (mode, state) in [
        (Mode::Local, State::Stateless),
        (Mode::DprMac, State::Stateful),
    ] {
        let mut p = l4_pipeline(mode, state);
        let pinned = client(&p, 100, 0);
        let other = client(&p, 200, 0);
        // 198.19.0.101/32 (client host 100) to srv3 for 60 s.
        assert_eq!(pinned.ip, Ipv4Addr::new(198, 19, 0, 101));
        assert!(p.pin_clients(pinned.ip, 32, 3, 60, at(100)));
        assert_eq!(p.pins_live(at(100)), 1);
        assert_eq!(
            send(&mut p, &pinned, TcpFlags::SYN, at(101)).1,
            Some(2),
            "{mode:?}"
        );
        assert_eq!(send(&mut p, &pinned, TcpFlags::ACK, at(101)).1, Some(2));
        assert_eq!(p.counters().get(Counter::PlacedPinned), 1);
        // Not pinned: placed as the mode places it (local: srv1's kernel).
        let (v, _) = send(&mut p, &other, TcpFlags::SYN, at(101));
        if mode == Mode::Local {
            assert_eq!(v, Verdict::Forward(KERNEL));
        }
        // The pin ends: the connection it placed stays on srv3; a new one
        // from the same client is placed as usual.
        assert_eq!(p.pins_live(at(161)), 0);
        assert_eq!(send(&mut p, &pinned, TcpFlags::ACK, at(161)).1, Some(2));
        let again = client(&p, 100, 1);
        let (v, _) = send(&mut p, &again, TcpFlags::SYN, at(161));
        if mode == Mode::Local {
            assert_eq!(v, Verdict::Forward(KERNEL));
        }
        assert_eq!(p.counters().get(Counter::PlacedPinned), 1);
    }
}

#[test]
fn unpinning_and_pinning_to_oneself_or_a_gone_member() {
    let mut p = l4_pipeline(Mode::Local, State::Stateless);
    let c = |p: &Pipeline, i| client(p, 100, i);
    let prefix = Ipv4Addr::new(198, 19, 0, 0);
    assert!(p.pin_clients(prefix, 16, 2, 60, at(100)));
    assert!(p.pin_clients(prefix, 16, 0, 0, at(100)), "unpin");
    let first = c(&p, 0);
    assert_eq!(
        send(&mut p, &first, TcpFlags::SYN, at(101)).0,
        Verdict::Forward(KERNEL)
    );
    // Pinned to srv1 itself: its own kernel.
    assert!(p.pin_clients(prefix, 16, 1, 60, at(100)));
    let second = c(&p, 1);
    assert_eq!(
        send(&mut p, &second, TcpFlags::SYN, at(101)).0,
        Verdict::Forward(KERNEL)
    );
    assert_eq!(p.counters().get(Counter::PlacedPinned), 1);
    // A member that is not in the membership: placed as usual, counted.
    assert!(p.pin_clients(prefix, 16, 9, 60, at(100)));
    let third = c(&p, 2);
    assert_eq!(
        send(&mut p, &third, TcpFlags::SYN, at(101)).0,
        Verdict::Forward(KERNEL)
    );
    assert_eq!(p.counters().get(Counter::PinTargetGone), 1);
    assert_eq!(p.counters().get(Counter::PlacedPinned), 1);
}

#[test]
fn stateless_dpr_ignores_pins() {
    let mut pinned = l4_pipeline(Mode::DprMac, State::Stateless);
    let mut plain = l4_pipeline(Mode::DprMac, State::Stateless);
    assert!(pinned.pin_clients(Ipv4Addr::new(198, 19, 0, 0), 16, 3, 60, at(100)));
    for i in 0..20 {
        let c = client(&plain, 100, i);
        assert_eq!(
            send(&mut pinned, &c, TcpFlags::SYN, at(101)),
            send(&mut plain, &c, TcpFlags::SYN, at(101))
        );
    }
    assert_eq!(pinned.counters().get(Counter::PinIgnoredStateless), 20);
    assert_eq!(pinned.counters().get(Counter::PlacedPinned), 0);
}

#[test]
fn a_pin_comes_before_the_splice_policy() {
    // The rules send everything to srv1; the pin sends host 100 to srv2.
    let cfg = shoal_e2e::splice_config("srv1", shoal_e2e::all_to("srv1"));
    let mut p = shoal_e2e::member_pipeline(&cfg);
    let tables = Arc::new(Tables::from_config(&cfg, 1).unwrap());
    p.set_tables(Arc::clone(&tables));
    p.set_tables(tables);
    let now = at(100);
    assert!(p.pin_clients(Ipv4Addr::new(198, 19, 0, 101), 32, 2, 60, now));
    let req = b"GET /a HTTP/1.1\r\nHost: shop.test\r\n\r\n";
    for (host, to_srv2) in [(100, true), (200, false)] {
        let c = client(&p, host, 0);
        let (_, _, out) = shoal_e2e::cookie_request(&mut p, &c, &service(), Some(1460), req, now);
        let out: Vec<(PortId, Vec<u8>)> = out;
        let offered = out
            .iter()
            .any(|(port, f)| *port == WIRE && f[..6] == member_mac(1).0);
        assert_eq!(offered, to_srv2, "client host {host}");
        assert_eq!(out.iter().any(|(port, _)| *port == KERNEL), !to_srv2);
    }
    assert_eq!(p.counters().get(Counter::DispatchPinned), 1);
    assert_eq!(p.counters().get(Counter::PlacedPinned), 1);
}
