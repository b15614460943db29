//! The dataplane's end of the control channel: commands from a
//! `CommandSender` (as `shoal-control` uses it) become tables; the stats
//! segment carries the pipeline's counters by name.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use shoal_channel::{
    command_ring_path, stats_path, Command, CommandSender, MemberState, StatsReader,
};
use shoal_dataplane::control_link::{stat_names, Applied, ControlLink};
use shoal_dataplane::counters::Counter;
use shoal_dataplane::flow::Timeouts;
use shoal_dataplane::io::memory::HeapFrame;
use shoal_dataplane::pipeline::{Pipeline, Tables, WIRE};
use shoal_dataplane::traffic::{arp_request, client_endpoint};
use shoal_wire::time::Instant;

fn cfg() -> shoal_config::Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    shoal_config::load_file(&path).unwrap()
}

fn member(id: u16, alive: bool, draining: bool, load: f32) -> MemberState {
    MemberState {
        id,
        addr: Ipv4Addr::new(198, 18, 0, 10 + id as u8),
        mac: [0x02, 0x00, 0xc6, 0x12, 0x00, 0x0a + id as u8],
        weight: 100,
        alive,
        draining,
        load,
    }
}

#[test]
fn membership_commands_become_tables_and_stats_are_published() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg();
    let tables = Tables::from_config(&cfg, 1).unwrap();
    let mut link = ControlLink::open(dir.path(), 0, 1, &tables).unwrap();
    assert_eq!(link.apply_commands(), vec![]);

    let mut sender = CommandSender::open(command_ring_path(dir.path(), 0)).unwrap();
    sender
        .send(&Command::Membership {
            epoch: 7,
            digest: 0xd7,
            members: vec![
                member(1, true, false, 0.2),
                member(2, true, true, 0.5),
                member(3, false, false, 0.0),
            ],
        })
        .unwrap();
    sender
        .send(&Command::Load {
            member: 1,
            load: 0.75,
        })
        .unwrap();
    let lease = Command::Lease {
        until_ns: 5_000_000_000,
        confirmed_epoch: 7,
        confirmed_digest: 0xd7,
    };
    sender.send(&lease).unwrap();
    // Membership and load coalesce into one table build, before the lease
    // that confirms it (ring order).
    let applied = link.apply_commands();
    assert_eq!(applied.len(), 2, "{applied:?}");
    let Applied::Members(epoch, digest, members) = applied[0].clone() else {
        panic!("no membership: {applied:?}")
    };
    assert_eq!(
        applied[1],
        Applied::Lease {
            until_ns: 5_000_000_000,
            confirmed_digest: 0xd7
        }
    );
    assert_eq!((epoch, digest), (7, 0xd7));
    assert_eq!(link.applied(), (7, 0xd7));
    let t = Tables::build(&cfg, epoch, members).unwrap();
    assert_eq!(t.epoch, 7);
    let w: Vec<(u16, u32, f64)> = t
        .members
        .iter()
        .map(|m| (m.id, m.effective_weight(), m.load))
        .collect();
    assert_eq!(w, vec![(1, 100, 0.75), (2, 0, 0.5), (3, 0, 0.0)]);
    // Only srv1 takes new connections now.
    for port in 1000..1100 {
        let key = shoal_select::ClientKey {
            addr: Ipv4Addr::new(198, 19, 0, 1),
            port,
        };
        assert_eq!(t.services[0].selector.select(key), Some(1));
    }
    // An unknown member is counted, not applied.
    sender
        .send(&Command::Weight {
            member: 9,
            weight: 5,
        })
        .unwrap();
    assert_eq!(link.apply_commands(), vec![]);
    assert_eq!(link.bad_commands, 1);
    assert_eq!(
        link.applied(),
        (7, 0xd7),
        "a refused command changes no digest"
    );
    // A drain outside an epoch gets a digest no confirmation names.
    sender
        .send(&Command::Drain {
            member: 1,
            draining: true,
        })
        .unwrap();
    let applied = link.apply_commands();
    assert!(
        matches!(&applied[..], [Applied::Members(7, d, _)] if *d != 0xd7),
        "{applied:?}"
    );
    sender.send(&Command::Shutdown).unwrap();
    assert_eq!(link.apply_commands(), vec![Applied::Shutdown]);

    // Stats: the pipeline's counters under their names.
    let mut p = Pipeline::new(
        Arc::new(t),
        64,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    let arp = arp_request(&client_endpoint(0, 0), Ipv4Addr::new(198, 18, 0, 100));
    for _ in 0..3 {
        let mut f = HeapFrame::from_bytes(&arp);
        p.process(WIRE, &mut f, Instant::ZERO);
    }
    link.polls_busy = 3;
    link.write_stats(&p, (&[], &[]), Instant::ZERO);
    let mut reader = StatsReader::open(stats_path(dir.path(), 0)).unwrap();
    let snap = reader.read().unwrap();
    assert_eq!(snap.names, stat_names(1));
    assert_eq!(snap.value("arp_vip_replied"), Some(3));
    assert_eq!(snap.value("wire_rx_packets"), Some(3));
    assert_eq!(snap.value(Counter::SynAccepted.name()), Some(0));
    assert_eq!(snap.value("polls_busy"), Some(3));
    assert_eq!(snap.value("channel_bad_commands"), Some(1));
    assert_eq!(snap.value("malformed_tcp_bad_option"), Some(0));
    // Unfenced pipeline (no lease needed): held; the tables' digest.
    assert_eq!(snap.value("lease_held"), Some(1));
    assert_eq!(snap.value("lease_until_ns"), Some(5_000_000_000));
    assert_eq!(snap.value("applied_digest"), Some(0));
    assert_eq!(snap.value("epochs_pending"), Some(0));
}
