//! The handoff state machines: inspector retries and fallbacks, receiver
//! reassembly and idempotent answers, bounded tables, exact timing.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use shoal_l7::handoff::{
    Accept, AnswerError, ClusterKey, FallbackReason, FlowSnapshot, HandoffId, Inspector,
    InspectorConfig, InspectorCounters, InspectorEvent, Link, Message, Negotiated, Offer,
    OfferPart, Origin, Receiver, ReceiverConfig, ReceiverCounters, ReceiverEvent, Refuse,
    RefuseReason, StartError, Timestamps, WindowScale, PART_BYTES,
};
use shoal_wire::time::Instant;

const INSPECTOR: u16 = 1;
const RECEIVER: u16 = 2;
const WALL: u64 = 1_700_000_000_000;
const KERNEL_ISN: u32 = 1_114_225_999;

fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

fn snapshot() -> FlowSnapshot {
    FlowSnapshot {
        client: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 49001),
        vip: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 100), 80),
        client_isn: 2_215_611_664,
        cookie_isn: 0x1122_3344,
        next_client_seq: 2_215_611_664 + 1 + 2600,
        next_server_seq: 0x1122_3345,
        client_window: 502,
        options: Negotiated {
            mss: 1460,
            window_scale: Some(WindowScale {
                client: 7,
                inspector: 7,
            }),
            sack_permitted: true,
            timestamps: Some(Timestamps {
                client_tsval: 1000,
                inspector_tsval: 2000,
            }),
        },
    }
}

/// The first part of a 5-byte offer with id `id`.
fn first_part(id: u64) -> OfferPart {
    Offer {
        id: HandoffId(id),
        snapshot: snapshot(),
        request: request(5),
    }
    .parts()
    .next()
    .unwrap()
}

fn request(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8).collect()
}

const ORIGIN: Origin = Origin {
    member: INSPECTOR,
    incarnation: 100,
};

fn key() -> ClusterKey {
    ClusterKey::from_bytes(&[5; 32]).unwrap()
}

/// Offer parts among `events`, in order.
fn sent_parts(events: &[InspectorEvent]) -> Vec<OfferPart> {
    events
        .iter()
        .map(|e| match e {
            InspectorEvent::Send {
                to: RECEIVER,
                message: Message::Offer(p),
            } => p.clone(),
            other => panic!("expected an offer part, got {other:?}"),
        })
        .collect()
}

fn accept_event(id: u64) -> ReceiverEvent {
    ReceiverEvent::Send {
        to: INSPECTOR,
        message: Message::Accept(Accept {
            id: HandoffId(id),
            kernel_isn: KERNEL_ISN,
        }),
    }
}

#[test]
fn happy_path_through_the_links_with_parts_out_of_order() {
    let (mut li, mut lr) = (
        Link::new(key(), INSPECTOR, 100),
        Link::new(key(), RECEIVER, 200),
    );
    let mut insp = Inspector::new(InspectorConfig::default());
    let mut recv = Receiver::new(ReceiverConfig::default());
    let req = request(2600);

    let id = insp.start(RECEIVER, snapshot(), &req, ms(1000)).unwrap();
    assert_eq!(id, HandoffId(1 << 8));
    let events: Vec<_> = insp.poll(ms(1000)).collect();
    let parts = sent_parts(&events);
    assert_eq!(parts.len(), 3);
    let datagrams: Vec<Vec<u8>> = parts
        .iter()
        .map(|p| li.seal(RECEIVER, &Message::Offer(p.clone()), WALL))
        .collect();

    // Parts arrive 2, 0, 1.
    for (n, i) in [2usize, 0, 1].into_iter().enumerate() {
        let got = lr.open(&datagrams[i], WALL + 1).unwrap();
        assert_eq!(got.origin, ORIGIN);
        recv.on_message(got.origin, &got.message, ms(1001));
        let out: Vec<_> = recv.poll(ms(1001)).collect();
        if n < 2 {
            assert_eq!(out, vec![]);
        } else {
            assert_eq!(
                out,
                vec![ReceiverEvent::Replay {
                    origin: ORIGIN,
                    offer: Offer {
                        id,
                        snapshot: snapshot(),
                        request: req.clone(),
                    },
                }]
            );
        }
    }

    // The replay into the kernel succeeded.
    recv.accepted(ORIGIN, id, KERNEL_ISN, ms(1002)).unwrap();
    let out: Vec<_> = recv.poll(ms(1002)).collect();
    assert_eq!(out, vec![accept_event(1 << 8)]);
    let ReceiverEvent::Send { message, .. } = &out[0] else {
        unreachable!()
    };
    let d = lr.seal(INSPECTOR, message, WALL + 2);
    let got = li.open(&d, WALL + 2).unwrap();
    insp.on_message(got.origin.member, &got.message, ms(1003));
    assert_eq!(
        insp.poll(ms(1003)).collect::<Vec<_>>(),
        vec![InspectorEvent::HandedOver {
            id,
            to: RECEIVER,
            kernel_isn: KERNEL_ISN,
            snapshot: snapshot(),
        }]
    );
    assert_eq!((insp.pending_len(), insp.tombstone_len()), (0, 1));
    assert_eq!(
        insp.counters(),
        &InspectorCounters {
            started: 1,
            offer_parts_sent: 3,
            handed_over: 1,
            ..InspectorCounters::default()
        }
    );
    assert_eq!(
        recv.counters(),
        &ReceiverCounters {
            parts: 3,
            replays: 1,
            accepted: 1,
            ..ReceiverCounters::default()
        }
    );
    // No timer fires before the tombstone and the answer expire.
    assert_eq!(insp.next_deadline(), Some(ms(1003 + 5000)));
    assert_eq!(recv.next_deadline(), Some(ms(1002 + 2000)));
    assert_eq!(insp.poll(ms(6002)).count(), 0);
    assert_eq!(insp.tombstone_len(), 1);
    assert_eq!(insp.poll(ms(6003)).count(), 0);
    assert_eq!(insp.tombstone_len(), 0);
    assert_eq!(recv.poll(ms(6002)).count(), 0);
    assert!(recv.is_empty());
    assert_eq!((insp.next_deadline(), recv.next_deadline()), (None, None));
}

#[test]
fn duplicate_offer_gets_the_same_accept_and_one_flow() {
    let mut recv = Receiver::new(ReceiverConfig::default());
    let offer = Offer {
        id: HandoffId(7),
        snapshot: snapshot(),
        request: request(100),
    };
    let part = offer.parts().next().unwrap();
    recv.on_offer(ORIGIN, &part, ms(0));
    // The same offer again while replaying: nothing new.
    recv.on_offer(ORIGIN, &part, ms(1));
    let out: Vec<_> = recv.poll(ms(1)).collect();
    assert_eq!(
        out,
        vec![ReceiverEvent::Replay {
            origin: ORIGIN,
            offer: offer.clone(),
        }]
    );
    recv.accepted(ORIGIN, HandoffId(7), KERNEL_ISN, ms(2))
        .unwrap();
    assert_eq!(recv.poll(ms(2)).collect::<Vec<_>>(), vec![accept_event(7)]);
    // A resent offer 50 ms later: the same accept, no second replay.
    recv.on_offer(ORIGIN, &part, ms(52));
    assert_eq!(recv.poll(ms(52)).collect::<Vec<_>>(), vec![accept_event(7)]);
    // Within 10 ms of that answer: counted, not answered again.
    recv.on_offer(ORIGIN, &part, ms(61));
    assert_eq!(recv.poll(ms(61)).count(), 0);
    recv.on_offer(ORIGIN, &part, ms(62));
    assert_eq!(recv.poll(ms(62)).collect::<Vec<_>>(), vec![accept_event(7)]);
    assert_eq!(
        recv.accepted(ORIGIN, HandoffId(7), 1, ms(63)),
        Err(AnswerError::AlreadyAnswered {
            member: INSPECTOR,
            id: HandoffId(7),
        })
    );
    assert_eq!(recv.len(), 1);
    assert_eq!(
        recv.counters(),
        &ReceiverCounters {
            parts: 5,
            replays: 1,
            accepted: 1,
            duplicate_parts: 2,
            reanswered: 2,
            ..ReceiverCounters::default()
        }
    );
    // The same id from a restarted inspector is another handoff.
    let reborn = Origin {
        member: INSPECTOR,
        incarnation: 101,
    };
    recv.on_offer(reborn, &part, ms(70));
    assert_eq!(
        recv.poll(ms(70)).collect::<Vec<_>>(),
        vec![ReceiverEvent::Replay {
            origin: reborn,
            offer,
        }]
    );
    assert_eq!(recv.len(), 2);
}

#[test]
fn lost_accept_is_recovered_by_a_resend() {
    let mut insp = Inspector::new(InspectorConfig::default());
    let mut recv = Receiver::new(ReceiverConfig::default());
    let id = insp
        .start(RECEIVER, snapshot(), &request(10), ms(1000))
        .unwrap();
    let first = sent_parts(&insp.poll(ms(1000)).collect::<Vec<_>>());
    recv.on_offer(ORIGIN, &first[0], ms(1000));
    assert_eq!(recv.poll(ms(1000)).count(), 1); // the replay
    recv.accepted(ORIGIN, id, KERNEL_ISN, ms(1001)).unwrap();
    // This accept is lost.
    assert_eq!(
        recv.poll(ms(1001)).collect::<Vec<_>>(),
        vec![accept_event(1 << 8)]
    );

    assert_eq!(insp.poll(ms(1049)).count(), 0);
    let resent = sent_parts(&insp.poll(ms(1050)).collect::<Vec<_>>());
    assert_eq!(resent, first);
    recv.on_offer(ORIGIN, &resent[0], ms(1051));
    let answer = recv.poll(ms(1051)).collect::<Vec<_>>();
    assert_eq!(answer, vec![accept_event(1 << 8)]);
    let ReceiverEvent::Send {
        message: Message::Accept(a),
        ..
    } = &answer[0]
    else {
        unreachable!()
    };
    insp.on_accept(RECEIVER, a, ms(1052));
    assert_eq!(
        insp.poll(ms(1052)).collect::<Vec<_>>(),
        vec![InspectorEvent::HandedOver {
            id,
            to: RECEIVER,
            kernel_isn: KERNEL_ISN,
            snapshot: snapshot(),
        }]
    );
    // The first accept turns up after all: a duplicate, nothing to do.
    insp.on_accept(RECEIVER, a, ms(1060));
    assert_eq!(insp.poll(ms(2000)).count(), 0);
    assert_eq!(insp.counters().resends, 1);
    assert_eq!(insp.counters().duplicate_answers, 1);
    assert_eq!(recv.counters().replays, 1);
    assert_eq!(recv.counters().reanswered, 1);
}

#[test]
fn dead_receiver_falls_back_after_the_last_retry_with_exact_timing() {
    let config = InspectorConfig::default();
    assert_eq!(config.give_up_after(), Duration::from_millis(750));
    let mut insp = Inspector::new(config);
    let id = insp
        .start(RECEIVER, snapshot(), &request(1300), ms(1000))
        .unwrap();
    assert_eq!(
        sent_parts(&insp.poll(ms(1000)).collect::<Vec<_>>()).len(),
        2
    );
    // Resends at +50, +150 (50 + 100), +350 (+ 200); fallback at +750.
    let mut resend_times = Vec::new();
    let mut fallback = None;
    for t in 1000..=2000 {
        if let Some(d) = insp.next_deadline() {
            assert!(d >= ms(t));
        }
        for e in insp.poll(ms(t)).collect::<Vec<_>>() {
            match e {
                InspectorEvent::Send { .. } => resend_times.push(t),
                InspectorEvent::Fallback { .. } => fallback = Some((t, e)),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(resend_times, vec![1050, 1050, 1150, 1150, 1350, 1350]);
    assert_eq!(
        fallback,
        Some((
            1750,
            InspectorEvent::Fallback {
                id,
                to: RECEIVER,
                reason: FallbackReason::NoAnswer { attempts: 4 },
                snapshot: snapshot(),
            }
        ))
    );
    assert_eq!(insp.pending_len(), 0);
    // The receiver comes back and accepts late: reported, once.
    insp.on_accept(RECEIVER, &Accept { id, kernel_isn: 9 }, ms(2001));
    assert_eq!(
        insp.poll(ms(2001)).collect::<Vec<_>>(),
        vec![InspectorEvent::LateAccept {
            id,
            from: RECEIVER,
            kernel_isn: 9,
        }]
    );
    assert_eq!(
        insp.counters(),
        &InspectorCounters {
            started: 1,
            offer_parts_sent: 8,
            resends: 3,
            no_answer: 1,
            late_accepts: 1,
            ..InspectorCounters::default()
        }
    );
}

#[test]
fn a_late_poll_keeps_the_schedule() {
    let mut insp = Inspector::new(InspectorConfig {
        retries: 1,
        ..InspectorConfig::default()
    });
    let id = insp.start(RECEIVER, snapshot(), b"GET /", ms(0)).unwrap();
    assert_eq!(insp.poll(ms(0)).count(), 1);
    // Nobody polled until 200 ms: the resend (due at 50) and the fallback
    // (due at 150) both come out, in order.
    let out: Vec<_> = insp.poll(ms(200)).collect();
    assert_eq!(out.len(), 2);
    assert!(matches!(out[0], InspectorEvent::Send { to: RECEIVER, .. }));
    assert_eq!(
        out[1],
        InspectorEvent::Fallback {
            id,
            to: RECEIVER,
            reason: FallbackReason::NoAnswer { attempts: 2 },
            snapshot: snapshot(),
        }
    );
}

#[test]
fn refusal_falls_back_at_once() {
    let mut insp = Inspector::new(InspectorConfig::default());
    let mut recv = Receiver::new(ReceiverConfig::default());
    let id = insp
        .start(RECEIVER, snapshot(), &request(10), ms(0))
        .unwrap();
    let parts = sent_parts(&insp.poll(ms(0)).collect::<Vec<_>>());
    recv.on_offer(ORIGIN, &parts[0], ms(1));
    assert_eq!(recv.poll(ms(1)).count(), 1);
    // No service on that VIP here.
    recv.refused(ORIGIN, id, RefuseReason::UnknownService, ms(2))
        .unwrap();
    let refusal = Refuse {
        id,
        reason: RefuseReason::UnknownService,
    };
    assert_eq!(
        recv.poll(ms(2)).collect::<Vec<_>>(),
        vec![ReceiverEvent::Send {
            to: INSPECTOR,
            message: Message::Refuse(refusal),
        }]
    );
    insp.on_refuse(RECEIVER, &refusal, ms(3));
    assert_eq!(
        insp.poll(ms(3)).collect::<Vec<_>>(),
        vec![InspectorEvent::Fallback {
            id,
            to: RECEIVER,
            reason: FallbackReason::Refused(RefuseReason::UnknownService),
            snapshot: snapshot(),
        }]
    );
    // No resend ever follows; a repeated refusal is a duplicate.
    insp.on_refuse(RECEIVER, &refusal, ms(4));
    assert_eq!(insp.poll(ms(1000)).count(), 0);
    assert_eq!(insp.counters().refused, 1);
    assert_eq!(insp.counters().duplicate_answers, 1);
    assert_eq!(insp.counters().resends, 0);
}

#[test]
fn answers_from_the_wrong_member_or_for_unknown_ids_are_ignored() {
    let mut insp = Inspector::new(InspectorConfig::default());
    let id = insp.start(RECEIVER, snapshot(), b"x", ms(0)).unwrap();
    assert_eq!(insp.poll(ms(0)).count(), 1);
    let accept = Accept { id, kernel_isn: 1 };
    insp.on_accept(3, &accept, ms(1));
    insp.on_refuse(
        3,
        &Refuse {
            id,
            reason: RefuseReason::Busy,
        },
        ms(1),
    );
    insp.on_accept(
        RECEIVER,
        &Accept {
            id: HandoffId(99),
            kernel_isn: 1,
        },
        ms(1),
    );
    let offer = Offer {
        id: HandoffId(1),
        snapshot: snapshot(),
        request: Vec::new(),
    };
    insp.on_message(
        RECEIVER,
        &Message::Offer(offer.parts().next().unwrap()),
        ms(1),
    );
    assert_eq!(insp.poll(ms(1)).count(), 0);
    assert_eq!(insp.pending_len(), 1);
    let c = insp.counters();
    assert_eq!((c.wrong_member, c.unknown_answers, c.unexpected), (2, 1, 1));
    // Cancelled (client reset), then accepted anyway: reported.
    assert!(insp.cancel(id, ms(2)));
    assert!(!insp.cancel(id, ms(2)));
    insp.on_accept(RECEIVER, &accept, ms(3));
    assert_eq!(
        insp.poll(ms(3)).collect::<Vec<_>>(),
        vec![InspectorEvent::LateAccept {
            id,
            from: RECEIVER,
            kernel_isn: 1,
        }]
    );
    assert_eq!(insp.counters().cancelled, 1);
}

#[test]
fn inspector_tables_are_bounded() {
    let mut insp = Inspector::new(InspectorConfig {
        capacity: 2,
        tombstone_capacity: 1,
        max_request_bytes: 1000,
        ..InspectorConfig::default()
    });
    let a = insp.start(RECEIVER, snapshot(), b"a", ms(0)).unwrap();
    let b = insp.start(RECEIVER, snapshot(), b"b", ms(0)).unwrap();
    assert_eq!(
        insp.start(RECEIVER, snapshot(), b"c", ms(0)),
        Err(StartError::Full { capacity: 2 })
    );
    assert_eq!(
        insp.start(RECEIVER, snapshot(), &request(1001), ms(0)),
        Err(StartError::TooLarge {
            len: 1001,
            max: 1000,
        })
    );
    assert_eq!(insp.poll(ms(0)).count(), 2);
    for id in [a, b] {
        insp.on_accept(RECEIVER, &Accept { id, kernel_isn: 5 }, ms(1));
    }
    assert_eq!(insp.poll(ms(1)).count(), 2);
    // One tombstone kept: a's was evicted, so its duplicate is unknown.
    assert_eq!(insp.tombstone_len(), 1);
    insp.on_accept(
        RECEIVER,
        &Accept {
            id: a,
            kernel_isn: 5,
        },
        ms(2),
    );
    insp.on_accept(
        RECEIVER,
        &Accept {
            id: b,
            kernel_isn: 5,
        },
        ms(2),
    );
    let c = insp.counters();
    assert_eq!(
        (
            c.full,
            c.too_large,
            c.tombstones_evicted,
            c.unknown_answers,
            c.duplicate_answers
        ),
        (1, 1, 1, 1, 1)
    );
    // Room again: the next id follows on.
    assert_eq!(
        insp.start(RECEIVER, snapshot(), b"d", ms(3)),
        Ok(HandoffId(3 << 8))
    );
}

#[test]
fn receiver_table_is_bounded_and_refuses_busy() {
    let mut recv = Receiver::new(ReceiverConfig {
        capacity: 1,
        ..ReceiverConfig::default()
    });
    let part = first_part;
    recv.on_offer(ORIGIN, &part(1), ms(0));
    recv.on_offer(ORIGIN, &part(2), ms(0));
    let out: Vec<_> = recv.poll(ms(0)).collect();
    assert_eq!(out.len(), 2);
    assert!(matches!(out[0], ReceiverEvent::Replay { .. }));
    assert_eq!(
        out[1],
        ReceiverEvent::Send {
            to: INSPECTOR,
            message: Message::Refuse(Refuse {
                id: HandoffId(2),
                reason: RefuseReason::Busy,
            }),
        }
    );
    assert_eq!(recv.len(), 1);
    assert_eq!((recv.counters().full, recv.counters().refused), (1, 1));
}

/// A full table makes room by forgetting answers given at least
/// `SAFE_TO_FORGET` ago (never younger ones, never handoffs in progress),
/// so a busy receiver keeps taking offers instead of refusing them.
#[test]
fn a_full_receiver_forgets_old_answers_only() {
    use shoal_l7::handoff::receiver::SAFE_TO_FORGET;
    let mut recv = Receiver::new(ReceiverConfig {
        capacity: 2,
        ..ReceiverConfig::default()
    });
    let part = first_part;
    // Two offers answered at 0 and 100 ms.
    recv.on_offer(ORIGIN, &part(1), ms(0));
    let _ = recv.poll(ms(0)).count();
    recv.accepted(ORIGIN, HandoffId(1), KERNEL_ISN, ms(0))
        .unwrap();
    recv.on_offer(ORIGIN, &part(2), ms(100));
    let _ = recv.poll(ms(100)).count();
    recv.accepted(ORIGIN, HandoffId(2), KERNEL_ISN, ms(100))
        .unwrap();
    let _ = recv.poll(ms(100)).count();
    // Full, both answers younger than SAFE_TO_FORGET: refused.
    let young = SAFE_TO_FORGET.as_millis() as u64 - 1;
    recv.on_offer(ORIGIN, &part(3), ms(young));
    let out: Vec<_> = recv.poll(ms(young)).collect();
    assert!(
        matches!(&out[..], [ReceiverEvent::Send { message: Message::Refuse(r), .. }] if r.reason == RefuseReason::Busy),
        "{out:?}"
    );
    // Once the first answer is old enough, it makes room for the next offer.
    let old = SAFE_TO_FORGET.as_millis() as u64;
    recv.on_offer(ORIGIN, &part(4), ms(old));
    let out: Vec<_> = recv.poll(ms(old)).collect();
    assert!(
        matches!(&out[..], [ReceiverEvent::Replay { .. }]),
        "{out:?}"
    );
    assert_eq!(recv.len(), 2);
    assert_eq!(recv.counters().forgotten, 1);
    // The younger answer is still there: a duplicate of offer 2 is answered
    // again, not replayed.
    recv.on_offer(ORIGIN, &part(2), ms(old + 20));
    assert_eq!(
        recv.poll(ms(old + 20)).collect::<Vec<_>>(),
        vec![accept_event(2)]
    );
}

#[test]
fn receiver_refuses_requests_above_its_limit() {
    let mut recv = Receiver::new(ReceiverConfig {
        max_request_bytes: 1000,
        ..ReceiverConfig::default()
    });
    let offer = Offer {
        id: HandoffId(4),
        snapshot: snapshot(),
        request: request(1300),
    };
    let parts: Vec<_> = offer.parts().collect();
    let too_large = ReceiverEvent::Send {
        to: INSPECTOR,
        message: Message::Refuse(Refuse {
            id: HandoffId(4),
            reason: RefuseReason::TooLarge,
        }),
    };
    recv.on_offer(ORIGIN, &parts[0], ms(0));
    recv.on_offer(ORIGIN, &parts[1], ms(0));
    assert_eq!(
        recv.poll(ms(0)).collect::<Vec<_>>(),
        vec![too_large.clone()]
    );
    recv.on_offer(ORIGIN, &parts[1], ms(10));
    assert_eq!(recv.poll(ms(10)).collect::<Vec<_>>(), vec![too_large]);
    let c = recv.counters();
    assert_eq!(
        (c.too_large, c.refused, c.reanswered, c.replays),
        (1, 1, 1, 0)
    );
}

#[test]
fn receiver_timeouts() {
    let mut recv = Receiver::new(ReceiverConfig::default());
    let offer = |id| Offer {
        id: HandoffId(id),
        snapshot: snapshot(),
        request: request(PART_BYTES + 1),
    };
    // Handoff 1 never gets its second part.
    let o1 = offer(1);
    recv.on_offer(ORIGIN, &o1.parts().next().unwrap(), ms(0));
    // Handoff 2 is complete but the caller never answers.
    let o2 = offer(2);
    for p in o2.parts() {
        recv.on_offer(ORIGIN, &p, ms(10));
    }
    assert_eq!(recv.poll(ms(10)).count(), 1);
    assert_eq!(
        recv.accepted(ORIGIN, HandoffId(1), 1, ms(11)),
        Err(AnswerError::NotReplaying {
            member: INSPECTOR,
            id: HandoffId(1),
        })
    );
    assert_eq!(recv.poll(ms(999)).count(), 0);
    assert_eq!(recv.len(), 2);
    assert_eq!(recv.poll(ms(1000)).count(), 0);
    assert_eq!(recv.len(), 1);
    assert_eq!(recv.counters().assembly_timeouts, 1);
    assert_eq!(
        recv.poll(ms(1010)).collect::<Vec<_>>(),
        vec![
            ReceiverEvent::ReplayTimedOut {
                origin: ORIGIN,
                id: HandoffId(2),
            },
            ReceiverEvent::Send {
                to: INSPECTOR,
                message: Message::Refuse(Refuse {
                    id: HandoffId(2),
                    reason: RefuseReason::HandshakeFailed,
                }),
            },
        ]
    );
    assert_eq!(recv.counters().replay_timeouts, 1);
    assert_eq!(
        recv.accepted(ORIGIN, HandoffId(1), 1, ms(1011)),
        Err(AnswerError::Unknown {
            member: INSPECTOR,
            id: HandoffId(1),
        })
    );
    // The refusal lingers 2 s for duplicates, then goes.
    assert_eq!(recv.poll(ms(3009)).count(), 0);
    assert_eq!(recv.len(), 1);
    assert_eq!(recv.poll(ms(3010)).count(), 0);
    assert!(recv.is_empty());
}

#[test]
fn receiver_drops_conflicting_and_inconsistent_parts() {
    let mut recv = Receiver::new(ReceiverConfig::default());
    let offer = Offer {
        id: HandoffId(1),
        snapshot: snapshot(),
        request: request(PART_BYTES + 1),
    };
    let parts: Vec<_> = offer.parts().collect();
    recv.on_offer(ORIGIN, &parts[0], ms(0));
    recv.on_offer(ORIGIN, &parts[0], ms(0));
    let mut other = parts[1].clone();
    other.snapshot.client_isn ^= 1;
    recv.on_offer(ORIGIN, &other, ms(0));
    let mut bad = parts[1].clone();
    bad.part.push(0);
    recv.on_offer(ORIGIN, &bad, ms(0));
    bad.index = 7;
    recv.on_offer(ORIGIN, &bad, ms(0));
    assert_eq!(recv.poll(ms(0)).count(), 0);
    recv.on_message(
        ORIGIN,
        &Message::Accept(Accept {
            id: HandoffId(1),
            kernel_isn: 0,
        }),
        ms(0),
    );
    recv.on_offer(ORIGIN, &parts[1], ms(1));
    assert_eq!(
        recv.poll(ms(1)).collect::<Vec<_>>(),
        vec![ReceiverEvent::Replay {
            origin: ORIGIN,
            offer,
        }]
    );
    assert_eq!(
        recv.counters(),
        &ReceiverCounters {
            parts: 6,
            replays: 1,
            duplicate_parts: 1,
            conflicting_parts: 1,
            malformed_parts: 2,
            unexpected: 1,
            ..ReceiverCounters::default()
        }
    );
}
