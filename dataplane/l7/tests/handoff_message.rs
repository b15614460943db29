//! The handoff datagram: exact bytes, round trips, and refusal of every
//! malformed, truncated, corrupted or foreign-key datagram.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::net::{Ipv4Addr, SocketAddrV4};

use proptest::prelude::*;
use shoal_l7::handoff::message::{field, MAX_DATAGRAM_LEN};
use shoal_l7::handoff::{
    decode, encode, part_count, Accept, ClusterKey, Datagram, Envelope, FlowSnapshot, HandoffError,
    HandoffId, Located, Message, Negotiated, Offer, OfferPart, Refuse, RefuseReason, Timestamps,
    WindowScale, PART_BYTES,
};

fn key(b: u8) -> ClusterKey {
    ClusterKey::from_bytes(&[b; 32]).unwrap()
}

fn envelope() -> Envelope {
    Envelope {
        sender: 1,
        recipient: 2,
        incarnation: 0x0102_0304_0506_0708,
        sequence: 9,
        timestamp_ms: 1_700_000_000_000,
    }
}

/// The connection of `docs/splice-replay.md` §6.
fn snapshot() -> FlowSnapshot {
    FlowSnapshot {
        client: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 49001),
        vip: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 100), 80),
        client_isn: 2_215_611_664,
        cookie_isn: 0x1122_3344,
        next_client_seq: 2_215_611_723,
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
                client_tsval: 0xa1b2_c3d4,
                inspector_tsval: 0x0000_1000,
            }),
        },
    }
}

fn request(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn accept_exact_bytes() {
    let k = key(7);
    let msg = Message::Accept(Accept {
        id: HandoffId(0x0a0b),
        kernel_isn: 1_114_225_999,
    });
    let b = encode(&envelope(), &msg, &k);
    let mut want = Vec::new();
    want.extend_from_slice(b"SHHO");
    want.extend_from_slice(&[1, 2, 0, 8, 0, 1, 0, 2, 0, 0, 0, 0]);
    want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    want.extend_from_slice(&9u64.to_be_bytes());
    want.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
    want.extend_from_slice(&0x0a0bu64.to_be_bytes());
    want.extend_from_slice(&1_114_225_999u32.to_be_bytes());
    want.extend_from_slice(&[0; 4]);
    assert_eq!(&b[..56], &want[..]);
    assert_eq!(b.len(), 56 + 32);
    assert_eq!(&b[56..], &k.sign(&want)[..]);
    assert_eq!(
        decode(&b, &k).unwrap(),
        Datagram {
            envelope: envelope(),
            message: msg,
        }
    );
}

#[test]
fn refuse_round_trip_and_codes() {
    let k = key(7);
    for (reason, code) in [
        (RefuseReason::UnknownService, 1),
        (RefuseReason::Busy, 2),
        (RefuseReason::Replayed, 3),
        (RefuseReason::TooLarge, 4),
        (RefuseReason::HandshakeFailed, 5),
        (RefuseReason::Draining, 6),
        (RefuseReason::Other(200), 200),
    ] {
        let msg = Message::Refuse(Refuse {
            id: HandoffId(3),
            reason,
        });
        let b = encode(&envelope(), &msg, &k);
        assert_eq!(b.len(), 48 + 4 + 32);
        assert_eq!(b[5], 3);
        assert_eq!(&b[48..52], &[code, 0, 0, 0]);
        assert_eq!(decode(&b, &k).unwrap().message, msg);
    }
}

#[test]
fn offer_exact_body_and_round_trip() {
    let k = key(7);
    let offer = Offer {
        id: HandoffId(42),
        snapshot: snapshot(),
        request: b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    };
    let parts: Vec<OfferPart> = offer.parts().collect();
    assert_eq!(parts.len(), 1);
    let b = encode(&envelope(), &Message::Offer(parts[0].clone()), &k);
    let body = &b[48..b.len() - 32];
    let mut want = vec![198, 18, 0, 2, 0xbf, 0x69, 198, 18, 0, 100, 0, 80];
    want.extend_from_slice(&2_215_611_664u32.to_be_bytes());
    want.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]);
    want.extend_from_slice(&2_215_611_723u32.to_be_bytes());
    want.extend_from_slice(&[0x11, 0x22, 0x33, 0x45]);
    want.extend_from_slice(&[0x05, 0xb4, 0x01, 0xf6]); // MSS 1460, window 502
    want.extend_from_slice(&[0b111, 7, 7, 0]);
    want.extend_from_slice(&[0xa1, 0xb2, 0xc3, 0xd4, 0, 0, 0x10, 0]);
    want.extend_from_slice(&(offer.request.len() as u32).to_be_bytes());
    want.extend_from_slice(&[0, 0, 0, 1]);
    want.extend_from_slice(&offer.request);
    assert_eq!(body, &want[..]);
    assert_eq!(&b[6..8], &(want.len() as u16).to_be_bytes());
    let d = decode(&b, &k).unwrap();
    assert_eq!(d.message, Message::Offer(parts[0].clone()));
    assert_eq!(d.message.id(), HandoffId(42));
}

#[test]
fn options_not_negotiated_are_zero_on_the_wire() {
    let k = key(7);
    let mut s = snapshot();
    s.options = Negotiated {
        mss: 536,
        window_scale: None,
        sack_permitted: false,
        timestamps: None,
    };
    let offer = Offer {
        id: HandoffId(1),
        snapshot: s,
        request: Vec::new(),
    };
    let part = offer.parts().next().unwrap();
    assert_eq!((part.index, part.count, part.request_len), (0, 1, 0));
    let b = encode(&envelope(), &Message::Offer(part.clone()), &k);
    assert_eq!(&b[48 + 32..48 + 44], &[0; 12]);
    assert_eq!(decode(&b, &k).unwrap().message, Message::Offer(part));
}

#[test]
fn large_request_splits_into_numbered_parts() {
    let req = request(2 * PART_BYTES + 17);
    let offer = Offer {
        id: HandoffId(5),
        snapshot: snapshot(),
        request: req.clone(),
    };
    let parts: Vec<OfferPart> = offer.parts().collect();
    assert_eq!(part_count(req.len()), 3);
    assert_eq!(
        parts
            .iter()
            .map(|p| (p.index, p.count, p.part.len()))
            .collect::<Vec<_>>(),
        vec![(0, 3, 1200), (1, 3, 1200), (2, 3, 17)]
    );
    let joined: Vec<u8> = parts.iter().flat_map(|p| p.part.clone()).collect();
    assert_eq!(joined, req);
    let k = key(7);
    for p in &parts {
        let b = encode(&envelope(), &Message::Offer(p.clone()), &k);
        assert!(b.len() <= MAX_DATAGRAM_LEN);
        assert_eq!(decode(&b, &k).unwrap().message, Message::Offer(p.clone()));
    }
    assert_eq!(part_count(0), 1);
    assert_eq!(part_count(1200), 1);
    assert_eq!(part_count(1201), 2);
}

#[test]
fn wrong_key_is_bad_mac() {
    let msg = Message::Accept(Accept {
        id: HandoffId(1),
        kernel_isn: 5,
    });
    let b = encode(&envelope(), &msg, &key(7));
    assert_eq!(decode(&b, &key(8)), Err(HandoffError::BadMac));
    assert_eq!(HandoffError::BadMac.label(), "bad_mac");
}

/// Re-signs `b` after an edit, so the check after the tag is reached.
fn resign(mut b: Vec<u8>, k: &ClusterKey) -> Vec<u8> {
    let n = b.len() - 32;
    let tag = k.sign(&b[..n]);
    b[n..].copy_from_slice(&tag);
    b
}

#[test]
fn named_errors() {
    let k = key(7);
    let offer = Offer {
        id: HandoffId(5),
        snapshot: snapshot(),
        request: request(1300),
    };
    let parts: Vec<OfferPart> = offer.parts().collect();
    let good = encode(&envelope(), &Message::Offer(parts[1].clone()), &k);
    let accept = encode(
        &envelope(),
        &Message::Accept(Accept {
            id: HandoffId(1),
            kernel_isn: 1,
        }),
        &k,
    );
    let edit = |b: &[u8], at: usize, v: u8| {
        let mut b = b.to_vec();
        b[at] = v;
        resign(b, &k)
    };
    let off = field::HEADER_LEN;
    let cases: Vec<(Vec<u8>, HandoffError)> = vec![
        (
            Vec::new(),
            HandoffError::Truncated {
                len: 0,
                expected: 80,
            },
        ),
        (
            good[..100].to_vec(),
            HandoffError::Truncated {
                len: 100,
                expected: good.len(),
            },
        ),
        (edit(&good, 0, b'X'), HandoffError::BadMagic),
        (edit(&good, 4, 2), HandoffError::UnsupportedVersion(2)),
        (edit(&good, 5, 9), HandoffError::UnknownKind(9)),
        (
            {
                let mut b = good.clone();
                b.push(0);
                b
            },
            HandoffError::Length("bytes after the tag"),
        ),
        (edit(&good, 9, 0), HandoffError::Malformed("member id 0")),
        (
            edit(&good, 13, 1),
            HandoffError::Malformed("reserved header bytes not zero"),
        ),
        (
            {
                let mut b = good.clone();
                b[24..32].copy_from_slice(&[0; 8]);
                resign(b, &k)
            },
            HandoffError::Malformed("sequence 0"),
        ),
        (
            edit(&good, off + 51, 3),
            HandoffError::Length("part count does not match the request length"),
        ),
        (
            // Part 1 of 2 relabelled as part 0: wrong size for index 0.
            edit(&good, off + 49, 0),
            HandoffError::Length("part size does not match its index and the request length"),
        ),
        (
            {
                let mut b = good.clone();
                b[off + 28..off + 30].copy_from_slice(&[0, 0]);
                resign(b, &k)
            },
            HandoffError::Malformed("MSS 0"),
        ),
        (
            edit(&good, off + 32, 0x0f),
            HandoffError::Malformed("unknown option flags"),
        ),
        (
            edit(&good, off + 33, 15),
            HandoffError::Malformed("window scale above 14"),
        ),
        (
            edit(&good, off + 32, 0b101),
            HandoffError::Malformed("window scale given but not negotiated"),
        ),
        (
            edit(&good, off + 32, 0b011),
            HandoffError::Malformed("TSvals given but timestamps not negotiated"),
        ),
        (
            edit(&good, off + 35, 1),
            HandoffError::Malformed("reserved offer byte not zero"),
        ),
        (
            {
                let mut b = good.clone();
                b[off + 4..off + 6].copy_from_slice(&[0, 0]);
                resign(b, &k)
            },
            HandoffError::Malformed("port 0"),
        ),
        (
            edit(&accept, off + 7, 1),
            HandoffError::Malformed("reserved accept bytes not zero"),
        ),
        (
            // An accept relabelled as a refuse: its body is 8 bytes, not 4.
            edit(&accept, 5, 3),
            HandoffError::Length("refuse body is not 4 bytes"),
        ),
    ];
    for (i, (b, want)) in cases.into_iter().enumerate() {
        assert_eq!(decode(&b, &k), Err(want), "case {i}");
    }
    // A refuse with reason 0.
    let mut r = encode(
        &envelope(),
        &Message::Refuse(Refuse {
            id: HandoffId(1),
            reason: RefuseReason::Busy,
        }),
        &k,
    );
    r[48] = 0;
    assert_eq!(
        decode(&resign(r, &k), &k),
        Err(HandoffError::Malformed("refuse reason 0"))
    );
    // A request above 1 MiB.
    let mut big = good.clone();
    big[off + 44..off + 48].copy_from_slice(&((1u32 << 20) + 1).to_be_bytes());
    assert_eq!(
        decode(&resign(big, &k), &k),
        Err(HandoffError::Malformed("request longer than 1 MiB"))
    );
    assert_eq!(
        HandoffError::Truncated {
            len: 0,
            expected: 80
        }
        .label(),
        "truncated"
    );
    assert!(HandoffError::UnsupportedVersion(2)
        .to_string()
        .contains("same Shoal release"));
}

fn arb_snapshot() -> impl Strategy<Value = FlowSnapshot> {
    (
        (any::<[u8; 4]>(), 1u16.., any::<[u8; 4]>(), 1u16..),
        any::<[u32; 4]>(),
        (1u16.., any::<u16>(), any::<bool>()),
        proptest::option::of((0u8..=14, 0u8..=14)),
        proptest::option::of(any::<(u32, u32)>()),
    )
        .prop_map(
            |((ca, cp, va, vp), isns, (mss, win, sack), ws, ts)| FlowSnapshot {
                client: SocketAddrV4::new(Ipv4Addr::from(ca), cp),
                vip: SocketAddrV4::new(Ipv4Addr::from(va), vp),
                client_isn: isns[0],
                cookie_isn: isns[1],
                next_client_seq: isns[2],
                next_server_seq: isns[3],
                client_window: win,
                options: Negotiated {
                    mss,
                    window_scale: ws.map(|(client, inspector)| WindowScale { client, inspector }),
                    sack_permitted: sack,
                    timestamps: ts.map(|(client_tsval, inspector_tsval)| Timestamps {
                        client_tsval,
                        inspector_tsval,
                    }),
                },
            },
        )
}

fn arb_datagram() -> impl Strategy<Value = Datagram> {
    let env = (1u16.., 1u16.., any::<u64>(), 1u64.., any::<u64>()).prop_map(
        |(sender, recipient, incarnation, sequence, timestamp_ms)| Envelope {
            sender,
            recipient,
            incarnation,
            sequence,
            timestamp_ms,
        },
    );
    let offer = (
        any::<u64>(),
        arb_snapshot(),
        0usize..4000,
        any::<prop::sample::Index>(),
    )
        .prop_map(|(id, snapshot, len, pick)| {
            let offer = Offer {
                id: HandoffId(id),
                snapshot,
                request: request(len),
            };
            let parts: Vec<OfferPart> = offer.parts().collect();
            Message::Offer(parts[pick.index(parts.len())].clone())
        });
    let accept = (any::<u64>(), any::<u32>()).prop_map(|(id, kernel_isn)| {
        Message::Accept(Accept {
            id: HandoffId(id),
            kernel_isn,
        })
    });
    let refuse = (any::<u64>(), 1u8..).prop_map(|(id, code)| {
        Message::Refuse(Refuse {
            id: HandoffId(id),
            reason: RefuseReason::from_code(code),
        })
    });
    let located = (
        any::<u32>(),
        any::<u16>(),
        any::<u32>(),
        any::<u16>(),
        1u16..,
    )
        .prop_map(|(client, client_port, vip, vip_port, member)| {
            Message::Located(Located {
                client: SocketAddrV4::new(Ipv4Addr::from(client), client_port),
                vip: SocketAddrV4::new(Ipv4Addr::from(vip), vip_port),
                member,
            })
        });
    (env, prop_oneof![offer, accept, refuse, located])
        .prop_map(|(envelope, message)| Datagram { envelope, message })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(d in arb_datagram()) {
        let k = key(3);
        let b = encode(&d.envelope, &d.message, &k);
        prop_assert_eq!(decode(&b, &k), Ok(d.clone()));
        // Canonical: decoding then encoding gives the same bytes.
        prop_assert_eq!(encode(&d.envelope, &d.message, &k), b);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let k = key(3);
        if let Ok(d) = decode(&b, &k) {
            // Only possible with a valid tag; then it is canonical.
            prop_assert_eq!(encode(&d.envelope, &d.message, &k), b);
        }
    }

    #[test]
    fn arbitrary_bytes_with_a_valid_frame_and_tag(
        kind in 1u8..=3,
        body in proptest::collection::vec(any::<u8>(), 0..1400),
        head in any::<[u8; 40]>(),
    ) {
        // Framing and tag right, everything else arbitrary: reaches the
        // body parsers, which must refuse or accept canonically.
        let k = key(3);
        let mut b = b"SHHO".to_vec();
        b.extend_from_slice(&[1, kind]);
        b.extend_from_slice(&(body.len() as u16).to_be_bytes());
        b.extend_from_slice(&head);
        b.extend_from_slice(&body);
        let tag = k.sign(&b);
        b.extend_from_slice(&tag);
        if let Ok(d) = decode(&b, &k) {
            prop_assert_eq!(encode(&d.envelope, &d.message, &k), b);
        }
    }

}

proptest! {
    // Each case decodes every truncation and 3 corruptions of every byte.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_truncation_and_single_byte_corruption_is_refused(d in arb_datagram()) {
        let k = key(3);
        let b = encode(&d.envelope, &d.message, &k);
        for n in 0..b.len() {
            let e = decode(&b[..n], &k);
            prop_assert!(
                matches!(e, Err(HandoffError::Truncated { len, .. }) if len == n),
                "truncation to {} gave {:?}", n, e
            );
        }
        for i in 0..b.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut c = b.clone();
                c[i] ^= flip;
                prop_assert!(decode(&c, &k).is_err(), "byte {} ^ {:#x} accepted", i, flip);
            }
        }
    }
}
