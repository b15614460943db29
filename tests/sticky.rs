//! Session stickiness at dispatch through an inspector's pipeline (issue
//! 15): srv1 inspects and its rules send every request to srv1, so a
//! request that leaves (an offer to srv2 or srv3) went there by its sticky
//! cookie or its URL session id. A signed cookie is honoured while its
//! member lives, drained or not; a forged or stale one is counted and the
//! rules decide. (The cookie's insertion into responses is tested with the
//! persistent-connection harness, tests/persist.rs.) Also the other
//! decisions taken before the policy: DTS Fig. 9's lines A (`local_paths`)
//! and B (`hot_path_mode = "local"`).
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::net::Ipv4Addr;
use std::sync::Arc;

use shoal_config::{Dispatch, DispatchPolicy, Sticky};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::io::PortId;
use shoal_dataplane::pipeline::{Pipeline, Tables, KERNEL, WIRE};
use shoal_dataplane::traffic::Endpoint;
use shoal_l7::handoff::ClusterKey;
use shoal_wire::time::Instant;
use shoal_wire::EthernetAddress;

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

fn member_mac(i: usize) -> [u8; 6] {
    [0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b + i as u8]
}

fn dispatch(sticky: Sticky) -> Dispatch {
    Dispatch {
        sticky: Some(sticky),
        ..shoal_e2e::all_to("srv1")
    }
}

fn config(sticky: Sticky) -> shoal_config::Config {
    let cfg = shoal_e2e::splice_config("srv1", dispatch(sticky));
    cfg.validate().unwrap();
    cfg
}

fn service() -> Endpoint {
    Endpoint {
        mac: EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x64]),
        ip: VIP,
        port: 80,
    }
}

/// Clients srv1 inspects, from address `n` (one address per request: no
/// 4-tuple is used twice, whatever the tables).
fn clients(p: &Pipeline, n: usize) -> impl Iterator<Item = Endpoint> + '_ {
    shoal_e2e::clients_inspected_by(p, 1, 100 + n as u32)
}

/// Where the request with `cookie` (if any) for `path` from the `n`-th
/// client went: 0, 1, 2 for srv1..srv3.
fn goes_to(p: &mut Pipeline, n: usize, path: &str, cookie: Option<&str>) -> usize {
    let c = clients(p, n).next().unwrap();
    let cookie = cookie.map_or(String::new(), |v| {
        format!("Cookie: a=1; shoal_member={v}\r\n")
    });
    let req = format!("GET {path} HTTP/1.1\r\nHost: shop.test\r\n{cookie}\r\n");
    let now = Instant::from_secs(100);
    let (_, _, out) = shoal_e2e::cookie_request(p, &c, &service(), Some(1460), req.as_bytes(), now);
    let out: Vec<(PortId, Vec<u8>)> = out;
    if out.iter().any(|(port, _)| *port == KERNEL) {
        return 0;
    }
    let offer = out.iter().find(|(port, _)| *port == WIRE).unwrap();
    (1..3)
        .find(|&i| offer.1[..6] == member_mac(i))
        .unwrap_or_else(|| panic!("an offer to {:?}", &offer.1[..6]))
}

/// `tables` applied and settled (applied again: the cluster agrees on it,
/// so every key srv1 inspects in it is srv1's to claim).
fn settle(p: &mut Pipeline, tables: Tables) {
    let tables = Arc::new(tables);
    p.set_tables(Arc::clone(&tables));
    p.set_tables(tables);
}

fn token(member: &str) -> String {
    shoal_l7::sticky::token(&ClusterKey::from_bytes(&[9; 32]).unwrap(), "http", member)
}

#[test]
fn a_signed_cookie_sends_the_request_to_its_member_even_drained() {
    let cfg = config(Sticky::default());
    let mut p = shoal_e2e::member_pipeline(&cfg);
    assert_eq!(goes_to(&mut p, 0, "/a", None), 0, "the rules");
    assert_eq!(goes_to(&mut p, 1, "/a", Some(&token("srv2"))), 1);
    assert_eq!(goes_to(&mut p, 2, "/b", Some(&token("srv3"))), 2);
    assert_eq!(p.counters().get(Counter::DispatchStickyCookie), 2);
    // srv2 drained (weight 0): its sessions still go there; new ones not.
    let mut members = p.tables().members.clone();
    members[1].draining = true;
    members[1].weight = 0;
    settle(&mut p, Tables::build(&cfg, 2, members).unwrap());
    assert_eq!(goes_to(&mut p, 3, "/a", Some(&token("srv2"))), 1);
    assert_eq!(goes_to(&mut p, 4, "/a", None), 0);
    // srv3 dead: its cookie is stale, counted; the rules decide.
    let mut members = p.tables().members.clone();
    members[2].alive = false;
    settle(&mut p, Tables::build(&cfg, 3, members).unwrap());
    assert_eq!(goes_to(&mut p, 5, "/a", Some(&token("srv3"))), 0);
    assert_eq!(p.counters().get(Counter::StickyStale), 1);
    assert_eq!(p.counters().get(Counter::StickyForged), 0);
}

#[test]
fn forged_and_plain_cookies_fall_back_to_the_policy() {
    let mut p = shoal_e2e::member_pipeline(&config(Sticky::default()));
    let forged = token("srv2").replacen("srv2", "srv3", 1);
    assert_eq!(goes_to(&mut p, 0, "/a", Some(&forged)), 0);
    assert_eq!(
        goes_to(&mut p, 1, "/a", Some("srv2")),
        0,
        "plain names: not with insert"
    );
    let other_key =
        shoal_l7::sticky::token(&ClusterKey::from_bytes(&[8; 32]).unwrap(), "http", "srv2");
    assert_eq!(goes_to(&mut p, 2, "/a", Some(&other_key)), 0);
    assert_eq!(p.counters().get(Counter::StickyForged), 3);
    assert_eq!(p.counters().get(Counter::DispatchStickyCookie), 0);
    // Without insertion, the application's plain member names count.
    let mut p = shoal_e2e::member_pipeline(&config(Sticky {
        insert: false,
        ..Sticky::default()
    }));
    assert_eq!(goes_to(&mut p, 0, "/a", Some("srv3")), 2);
    assert_eq!(goes_to(&mut p, 1, "/a", Some("srv9")), 0);
    assert_eq!(p.counters().get(Counter::StickyForged), 1);
}

#[test]
fn url_session_ids_stick_to_their_place_on_the_ring() {
    let mut p = shoal_e2e::member_pipeline(&config(Sticky {
        url_param: Some("jsessionid".into()),
        query_key: Some("sid".into()),
        ..Sticky::default()
    }));
    let mut places = [0usize; 3];
    for s in 0..30 {
        let a = goes_to(&mut p, 3 * s, &format!("/cart;jsessionid=S{s}"), None);
        let b = goes_to(&mut p, 3 * s + 1, &format!("/pay?x=1&sid=S{s}"), None);
        let c = goes_to(&mut p, 3 * s + 2, &format!("/x;jsessionid=S{s}/y"), None);
        assert_eq!((a, b), (a, c), "session S{s} in three URLs");
        assert_eq!(a, b, "session S{s}");
        places[a] += 1;
    }
    assert!(
        places.iter().all(|&n| n > 0),
        "30 sessions over 3 members: {places:?}"
    );
    assert_eq!(p.counters().get(Counter::DispatchSessionId), 90);
}

#[test]
fn local_paths_and_local_hot_paths_stay_with_the_inspector() {
    let d = Dispatch {
        policy: DispatchPolicy::UrlHash,
        hot_paths: vec!["/hot/".into()],
        hot_path_mode: shoal_config::HotPathMode::Local,
        local_paths: vec!["/cgi/".into(), "/img/small/".into()],
        sticky: Some(Sticky::default()),
        ..Dispatch::default()
    };
    let cfg = shoal_e2e::splice_config("srv1", d);
    cfg.validate().unwrap();
    let mut p = shoal_e2e::member_pipeline(&cfg);
    let mut n = 0;
    let mut go = |p: &mut Pipeline, path: &str, cookie: Option<&str>| {
        n += 1;
        goes_to(p, n, path, cookie)
    };
    for i in 0..20 {
        assert_eq!(go(&mut p, &format!("/cgi/run{i}"), None), 0, "line A");
        assert_eq!(
            go(&mut p, &format!("/img/small/{i}.png"), None),
            0,
            "line A"
        );
        assert_eq!(go(&mut p, &format!("/hot/file{i}"), None), 0, "line B");
    }
    assert_eq!(p.counters().get(Counter::DispatchLocalPath), 40);
    assert_eq!(p.counters().get(Counter::DispatchHotPathLocal), 20);
    // Everything else by directory: all three members get some.
    let mut places = [0usize; 3];
    for i in 0..60 {
        places[go(&mut p, &format!("/d{i}/x"), None)] += 1;
    }
    assert!(places.iter().all(|&k| k > 0), "{places:?}");
    // A sticky cookie wins over line A.
    assert_eq!(go(&mut p, "/cgi/run", Some(&token("srv3"))), 2);
}
