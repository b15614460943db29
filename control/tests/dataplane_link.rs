//! The push rules of `DataplaneLink` against real `shoal-channel` files in
//! a temporary directory standing in for `control.shm_path`: nothing is
//! sent before the dataplane exists (counted `unavailable`), the full
//! membership goes out once, then only changed loads, every push ends with
//! the lease (its end and the confirmed epoch), and a recreated ring
//! (dataplane restart) gets the full membership again.

// Test helpers outside #[test] functions: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use shoal_channel::{
    command_ring_path, stats_path, Command, CommandRing, MemberState, StatsWriter,
};
use shoal_control::dataplane::DataplaneLink;
use shoal_control::membership::{MemberInfo, Membership, Now, Timing};
use shoal_control::message::LoadFigures;
use shoal_key::ClusterKey;

fn now() -> Now {
    Now {
        mono_ms: 0,
        wall_ms: 1_700_000_000_000,
    }
}

fn lone_member() -> Membership {
    let info = MemberInfo {
        id: 7,
        name: "srv7".into(),
        address: Ipv4Addr::new(198, 18, 0, 17),
        mac: [2, 0, 0, 0, 0, 7],
        weight: 100,
    };
    let timing = Timing {
        interval_ms: 200,
        failure_timeout_ms: 1000,
    };
    let key = ClusterKey::from_bytes(&[1; 32]).unwrap();
    let mut m = Membership::new(7, vec![info], timing, key, 1, now());
    m.tick(now());
    // Its dataplane runs the epoch (read from the stats segment): confirmed.
    m.set_applied_digest(m.epoch().digest);
    m.tick(now());
    m
}

fn drain(ring: &mut CommandRing) -> Vec<Command> {
    let mut out = Vec::new();
    while let Some(c) = ring.try_recv().unwrap() {
        out.push(c);
    }
    out
}

/// The lease a lone member (no peers to wait for) sends at `now()`: the
/// failure timeout minus the margin, its only epoch confirmed.
fn lease(m: &Membership) -> Command {
    let margin = shoal_control::membership::lease_margin_ms(m.timing());
    assert_eq!(margin, 2 * 200 + 2 + 1);
    Command::Lease {
        until_ns: (1000 - margin) * 1_000_000,
        confirmed_epoch: 1,
        confirmed_digest: m.epoch().digest,
    }
}

fn state(load: f32) -> MemberState {
    MemberState {
        id: 7,
        addr: Ipv4Addr::new(198, 18, 0, 17),
        mac: [2, 0, 0, 0, 0, 7],
        weight: 100,
        alive: true,
        draining: false,
        load,
    }
}

#[test]
fn full_state_once_then_loads_and_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = lone_member();
    assert_eq!(m.epoch().number, 1);
    let mut link = DataplaneLink::new(dir.path(), 1);

    // No dataplane yet.
    link.push(&m, now());
    assert_eq!(link.pushes()["unavailable"], 1);
    assert_eq!(link.read_stats(), vec![None]);

    let mut ring = CommandRing::create(command_ring_path(dir.path(), 0), 16).unwrap();
    link.push(&m, now());
    assert_eq!(
        drain(&mut ring),
        vec![
            Command::Membership {
                epoch: 1,
                digest: m.epoch().digest,
                members: vec![state(0.0)]
            },
            lease(&m)
        ]
    );
    assert_eq!(link.lease_until_ms(), 1000 - 403);
    // Nothing changed: only the lease renewal.
    link.push(&m, now());
    assert_eq!(drain(&mut ring), vec![lease(&m)]);
    // A new load travels alone.
    m.set_local_load(LoadFigures {
        load: 0.5,
        ..LoadFigures::default()
    });
    link.push(&m, now());
    assert_eq!(
        drain(&mut ring),
        vec![
            Command::Load {
                member: 7,
                load: 0.5
            },
            lease(&m)
        ]
    );
    // The dataplane restarts: a new ring at the same path.
    let mut ring2 = CommandRing::create(command_ring_path(dir.path(), 0), 16).unwrap();
    link.push(&m, now());
    assert_eq!(
        drain(&mut ring2),
        vec![
            Command::Membership {
                epoch: 1,
                digest: m.epoch().digest,
                members: vec![state(0.5)]
            },
            lease(&m)
        ]
    );
    assert_eq!(link.pushes()["stale"], 1);
    assert_eq!(link.pushes()["ok"], 4);
    assert_eq!(link.status(0)[0].pushed_epoch, Some(1));

    // Stats are read from the worker's segment.
    let mut w =
        StatsWriter::create(stats_path(dir.path(), 0), &["flows_live", "polls_busy"]).unwrap();
    w.write_at(&[3, 4], 1_000).unwrap();
    let reads = link.read_stats();
    let snap = reads[0].unwrap();
    assert_eq!(
        snap.names,
        vec!["flows_live".to_owned(), "polls_busy".to_owned()]
    );
    assert_eq!(snap.values, vec![3, 4]);
    let st = link.status(2_000);
    assert_eq!(st[0].stats_age_seconds, Some(1e-6));
    assert!(st[0].ring_open && st[0].stats_open);
}

/// Operators' pins reach the running dataplane once, and a restarted one
/// again with the rest of their time after the membership and the lease; an
/// unpinned prefix is not sent again.
#[test]
fn pins_are_sent_again_to_a_restarted_dataplane() {
    let dir = tempfile::tempdir().unwrap();
    let m = lone_member();
    let mut link = DataplaneLink::new(dir.path(), 1);
    let mut ring = CommandRing::create(command_ring_path(dir.path(), 0), 16).unwrap();
    link.push(&m, now());
    drain(&mut ring);
    let pin = |a, len, member, secs| Command::PinClients {
        prefix: Ipv4Addr::new(198, 19, a, 0),
        len,
        member,
        secs,
    };
    assert_eq!(
        link.pin(Ipv4Addr::new(198, 19, 4, 0), 24, 2, 60, now()),
        (1, vec![])
    );
    assert_eq!(
        link.pin(Ipv4Addr::new(198, 19, 5, 0), 24, 3, 30, now()),
        (1, vec![])
    );
    assert_eq!(link.pin(Ipv4Addr::new(198, 19, 5, 0), 24, 0, 0, now()).0, 1);
    assert_eq!(
        drain(&mut ring),
        vec![pin(4, 24, 2, 60), pin(5, 24, 3, 30), pin(5, 24, 0, 0)]
    );
    // Not again to the same dataplane.
    link.push(&m, now());
    assert_eq!(drain(&mut ring), vec![lease(&m)]);
    // A restarted one gets the pin still in force.
    let mut ring2 = CommandRing::create(command_ring_path(dir.path(), 0), 16).unwrap();
    link.push(&m, now());
    let got = drain(&mut ring2);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(matches!(got[0], Command::Membership { .. }));
    assert_eq!(got[1..], [lease(&m), pin(4, 24, 2, 60)]);
    // What `/status` lists: the one in force, its time left.
    let listed = link.pins(now().mono_ms + 10_500);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].prefix.as_str(),
            listed[0].member,
            listed[0].seconds_left
        ),
        ("198.19.4.0/24", 2, 50)
    );
    assert!(link.pins(now().mono_ms + 60_000).is_empty());
}

/// Issue 17: a worker's stats segment that cannot be read (garbage written
/// over it, truncated, removed) makes that worker unreadable — never a
/// panic or a stall — so the server counts as on no epoch (digest 0) and
/// not written recently: its lease is not renewed on a stuck worker's
/// account. A segment rewritten by a restarted worker is read again.
#[test]
fn an_unreadable_stats_segment_makes_the_worker_unreadable_not_control_crash() {
    use shoal_control::dataplane::server_applied;
    let dir = tempfile::tempdir().unwrap();
    let mut link = DataplaneLink::new(dir.path(), 2);
    let names = ["applied_digest", "flows_live"];
    let mut writers: Vec<StatsWriter> = (0..2)
        .map(|w| StatsWriter::create(stats_path(dir.path(), w), &names).unwrap())
        .collect();
    for w in &mut writers {
        w.write_at(&[42, 1], 1_000).unwrap();
    }
    let reads = link.read_stats();
    assert!(reads.iter().all(Option::is_some));
    assert_eq!(server_applied(&reads), (42, Some(1_000)));

    let path = stats_path(dir.path(), 1);
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    for damage in [vec![0xA5; len], vec![0; 10], Vec::new()] {
        std::fs::write(&path, &damage).unwrap();
        let reads = link.read_stats();
        assert!(
            reads[0].is_some() && reads[1].is_none(),
            "{} bytes",
            damage.len()
        );
        assert_eq!(server_applied(&reads), (0, None));
    }
    std::fs::remove_file(&path).unwrap();
    assert!(link.read_stats()[1].is_none());

    let mut again = StatsWriter::create(&path, &names).unwrap();
    again.write_at(&[42, 0], 2_000).unwrap();
    assert_eq!(server_applied(&link.read_stats()), (42, Some(1_000)));
}
