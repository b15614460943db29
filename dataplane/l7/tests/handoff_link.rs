//! The handoff link: sequence numbers, the per-sender replay window, the
//! timestamp window, the recipient check, and their counters.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use shoal_l7::handoff::{
    decode, lane, Accept, ClusterKey, HandoffError, HandoffId, Link, LinkCounters, Message,
    OpenError, Origin, Received, Rejection, ReplayGuard,
};

const NOW: u64 = 1_700_000_000_000;

fn key(b: u8) -> ClusterKey {
    ClusterKey::from_bytes(&[b; 32]).unwrap()
}

fn accept(id: u64) -> Message {
    Message::Accept(Accept {
        id: HandoffId(id),
        kernel_isn: 77,
    })
}

#[test]
fn guard_window() {
    let mut g = ReplayGuard::new();
    assert_eq!(g.check(5, 1), Ok(()));
    assert_eq!(g.check(5, 1), Err(Rejection::Replayed));
    assert_eq!(g.check(5, 3), Ok(()));
    // 2 arrives late, inside the window: accepted once.
    assert_eq!(g.check(5, 2), Ok(()));
    assert_eq!(g.check(5, 2), Err(Rejection::Replayed));
    assert_eq!(g.highest(), (5, 3));
    // Jump ahead by 64: 3 is now exactly outside the window.
    assert_eq!(g.check(5, 67), Ok(()));
    assert_eq!(g.check(5, 3), Err(Rejection::Stale));
    assert_eq!(g.check(5, 4), Ok(()));
    assert_eq!(g.check(5, 4), Err(Rejection::Replayed));
    // A far jump clears the bitmap.
    assert_eq!(g.check(5, 1000), Ok(()));
    assert_eq!(g.check(5, 999), Ok(()));
    assert_eq!(g.check(5, 1000), Err(Rejection::Replayed));
    // An earlier incarnation is stale; a later one starts afresh.
    assert_eq!(g.check(4, 2000), Err(Rejection::Stale));
    assert_eq!(g.check(6, 1), Ok(()));
    assert_eq!(g.highest(), (6, 1));
    assert_eq!(g.check(5, 1001), Err(Rejection::Stale));
}

#[test]
fn seal_and_open() {
    let mut a = Link::new(key(1), 1, 100);
    let mut b = Link::new(key(1), 2, 200);
    let d1 = a.seal(2, &accept(1), NOW);
    let d2 = a.seal(2, &accept(2), NOW + 1);
    let env1 = decode(&d1, &key(1)).unwrap().envelope;
    let env2 = decode(&d2, &key(1)).unwrap().envelope;
    assert_eq!(
        (env1.sequence, env1.incarnation, env1.timestamp_ms),
        (1, 100, NOW)
    );
    assert_eq!((env2.sequence, env2.recipient, env2.sender), (2, 2, 1));
    // Out of order is fine, once each.
    let origin = Origin {
        member: 1,
        incarnation: 100,
    };
    assert_eq!(
        b.open(&d2, NOW),
        Ok(Received {
            origin,
            message: accept(2),
        })
    );
    assert_eq!(b.open(&d1, NOW).unwrap().message, accept(1));
    assert_eq!(
        b.open(&d1, NOW),
        Err(OpenError::Rejected {
            sender: 1,
            why: Rejection::Replayed,
        })
    );
    assert_eq!(
        b.counters(),
        &LinkCounters {
            opened: 2,
            replayed: 1,
            ..LinkCounters::default()
        }
    );
    assert_eq!(a.counters().sealed, 2);
}

#[test]
fn wrong_key_wrong_recipient_and_clock_skew() {
    let mut from1 = Link::new(key(1), 1, 100);
    let mut to2 = Link::new(key(1), 2, 200);
    let mut to3 = Link::new(key(1), 3, 300);
    let mut stranger = Link::new(key(9), 1, 100);

    let forged = stranger.seal(2, &accept(1), NOW);
    let err = to2.open(&forged, NOW).unwrap_err();
    assert_eq!(err, OpenError::Decode(HandoffError::BadMac));
    assert_eq!(err.label(), "bad_mac");

    // A datagram for member 2 replayed to member 3.
    let for_b = from1.seal(2, &accept(1), NOW);
    assert_eq!(
        to3.open(&for_b, NOW),
        Err(OpenError::NotForUs {
            recipient: 2,
            local: 3,
        })
    );

    // 10 s either way is fine, 10.001 s is not; the guard does not move.
    let skewed = from1.seal(2, &accept(2), NOW - 10_001);
    let err = to2.open(&skewed, NOW).unwrap_err();
    assert_eq!(
        err,
        OpenError::ClockSkew {
            sender: 1,
            offset_ms: -10_001,
            limit_ms: 10_000,
        }
    );
    assert_eq!(err.label(), "clock_skew");
    let future = from1.seal(2, &accept(3), NOW + 10_000);
    assert!(to2.open(&future, NOW).is_ok());
    let late_but_ok = from1.seal(2, &accept(4), NOW - 10_000);
    assert!(to2.open(&late_but_ok, NOW).is_ok());
    // The skewed datagram's sequence (2) was never recorded: fine later.
    assert!(to2.open(&skewed, NOW - 10_001).is_ok());
    assert!(to2.open(&for_b, NOW).is_ok());

    let mut junk = for_b.clone();
    junk.truncate(10);
    assert_eq!(junk.len(), 10);
    assert_eq!(to2.open(&junk, NOW).unwrap_err().label(), "truncated");
    assert_eq!(
        to2.counters(),
        &LinkCounters {
            opened: 4,
            malformed: 1,
            bad_mac: 1,
            clock_skew: 1,
            ..LinkCounters::default()
        }
    );
    assert_eq!(to3.counters().not_for_us, 1);

    let mut tight = Link::new(key(1), 2, 200).with_max_skew_ms(5);
    let late = from1.seal(2, &accept(5), NOW + 6);
    assert_eq!(tight.open(&late, NOW).unwrap_err().label(), "clock_skew");
}

#[test]
fn sender_restart_is_a_new_incarnation() {
    let mut b = Link::new(key(1), 2, 200);
    let mut a_old = Link::new(key(1), 1, 100 << 8);
    let old1 = a_old.seal(2, &accept(1), NOW);
    let old2 = a_old.seal(2, &accept(2), NOW);
    assert!(b.open(&old1, NOW).is_ok());
    // Member 1 restarts: sequences start at 1 again, incarnation is higher
    // (same lane: start time << 8 | worker).
    let mut a_new = Link::new(key(1), 1, 101 << 8);
    let new1 = a_new.seal(2, &accept(1), NOW);
    assert_eq!(
        b.open(&new1, NOW).unwrap().origin,
        Origin {
            member: 1,
            incarnation: 101 << 8,
        }
    );
    // Anything from the old incarnation is now stale.
    let e = b.open(&old2, NOW).unwrap_err();
    assert_eq!(
        e,
        OpenError::Rejected {
            sender: 1,
            why: Rejection::Stale,
        }
    );
    assert_eq!(e.label(), "stale");
    assert_eq!(b.counters().stale, 1);
}

#[test]
fn workers_of_one_member_are_lanes_with_their_own_replay_guards() {
    let mut b = Link::new(key(1), 2, 200 << 8);
    // Member 1 runs two workers: same start time, lanes 0 and 1, each with
    // its own sequence numbers (both start at 1).
    let mut w0 = Link::new(key(1), 1, 100 << 8);
    let mut w1 = Link::new(key(1), 1, 100 << 8 | 1);
    let a = w0.seal(2, &accept(1), NOW);
    let b1 = w1.seal(2, &accept(2), NOW);
    let a2 = w0.seal(2, &accept(3), NOW);
    let b2 = w1.seal(2, &accept(4), NOW);
    for d in [&a, &b1, &a2, &b2] {
        assert!(b.open(d, NOW).is_ok(), "interleaved lanes are not replays");
    }
    assert_eq!(lane(100 << 8 | 1), 1);
    // A replay within a lane is still caught.
    let e = b.open(&b1, NOW).unwrap_err();
    assert_eq!(
        e,
        OpenError::Rejected {
            sender: 1,
            why: Rejection::Replayed,
        }
    );
    assert_eq!(b.counters().opened, 4);
}
