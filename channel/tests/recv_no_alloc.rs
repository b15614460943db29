//! After creation, receiving allocates only a membership's member list:
//! empty polls and the other commands make no call to the allocator.
//!
//! The counts are the measuring thread's own (`shoal_alloc_count`): other
//! threads allocating meanwhile (libtest's, other tests') do not move them.

use core::net::Ipv4Addr;

use shoal_alloc_count::{CountingAlloc, Region};
use shoal_channel::{Command, CommandRing, CommandSender, MemberState, StatsWriter};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn receiving_and_writing_stats_do_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let mut ring = CommandRing::create(&path, 16).unwrap();
    let mut sender = CommandSender::open(&path).unwrap();
    let small = [
        Command::Drain {
            member: 1,
            draining: true,
        },
        Command::Weight {
            member: 1,
            weight: 3,
        },
        Command::Load {
            member: 1,
            load: 0.5,
        },
        Command::Shutdown,
    ];
    let member = MemberState {
        id: 1,
        addr: Ipv4Addr::new(198, 18, 0, 1),
        mac: [2, 0, 0, 0, 0, 1],
        weight: 1,
        alive: true,
        draining: false,
        load: 0.0,
    };
    let membership = Command::Membership {
        epoch: 9,
        digest: 9,
        members: vec![member, MemberState { id: 2, ..member }],
    };
    let empty = Command::Membership {
        epoch: 10,
        digest: 10,
        members: Vec::new(),
    };

    // Empty polls.
    let region = Region::new();
    for _ in 0..1000 {
        assert!(ring.try_recv().unwrap().is_none());
    }
    assert_eq!(region.change().allocations, 0);

    // Sending does not allocate either.
    let region = Region::new();
    for command in &small {
        sender.send(command).unwrap();
    }
    sender.send(&empty).unwrap();
    assert_eq!(region.change().allocations, 0);

    let mut received = Vec::with_capacity(8);
    let region = Region::new();
    for _ in 0..=small.len() {
        received.push(ring.try_recv().unwrap().unwrap());
    }
    assert_eq!(region.change().allocations, 0);
    assert_eq!(&received[..small.len()], small);
    assert_eq!(received[small.len()], empty);

    sender.send(&membership).unwrap();
    let region = Region::new();
    let command = ring.try_recv().unwrap().unwrap();
    assert_eq!(region.change().allocations, 1);
    assert_eq!(command, membership);

    // Writing stats does not allocate.
    let stats = dir.path().join("stats");
    let mut writer = StatsWriter::create(&stats, &["a_total", "b_total", "c"]).unwrap();
    let region = Region::new();
    for k in 0..100 {
        writer.write(&[k, k + 1, k + 2]).unwrap();
    }
    assert_eq!(region.change().allocations, 0);
}
