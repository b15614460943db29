//! The command encoding: round trips, exact errors for bad input, and no
//! panic on arbitrary bytes.

use core::net::Ipv4Addr;

use proptest::collection::vec;
use proptest::prelude::*;
use shoal_channel::{
    Command, DecodeError, EncodeError, MemberState, COMMAND_LEN, FORMAT_VERSION, MAX_MEMBERS,
};

fn member_strategy(id: u16) -> impl Strategy<Value = MemberState> {
    (
        any::<u32>(),
        any::<[u8; 6]>(),
        any::<u32>(),
        any::<bool>(),
        any::<bool>(),
        0.0_f32..1.0e6,
    )
        .prop_map(
            move |(addr, mac, weight, alive, draining, load)| MemberState {
                id,
                addr: Ipv4Addr::from(addr),
                mac,
                weight,
                alive,
                draining,
                load,
            },
        )
}

fn membership_strategy() -> impl Strategy<Value = Command> {
    (
        any::<u64>(),
        any::<u64>(),
        proptest::sample::subsequence((0..1000_u16).collect::<Vec<_>>(), 0..=MAX_MEMBERS),
    )
        .prop_flat_map(|(epoch, digest, ids)| {
            let members: Vec<_> = ids.into_iter().map(member_strategy).collect();
            members.prop_map(move |members| Command::Membership {
                epoch,
                digest,
                members,
            })
        })
}

fn command_strategy() -> impl Strategy<Value = Command> {
    prop_oneof![
        membership_strategy(),
        (any::<u16>(), any::<bool>())
            .prop_map(|(member, draining)| Command::Drain { member, draining }),
        (any::<u16>(), any::<u32>())
            .prop_map(|(member, weight)| Command::Weight { member, weight }),
        (any::<u16>(), 0.0_f32..=f32::MAX)
            .prop_map(|(member, load)| Command::Load { member, load }),
        Just(Command::Shutdown),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(until_ns, confirmed_epoch, confirmed_digest)| Command::Lease {
                until_ns,
                confirmed_epoch,
                confirmed_digest,
            }
        ),
        any::<u64>().prop_map(|digest| Command::ReloadServices { digest }),
        (any::<u32>(), any::<u16>()).prop_map(|(client, port)| Command::EvictFlows {
            client: std::net::Ipv4Addr::from(client),
            port
        }),
        (any::<u32>(), 0u8..=32, any::<u16>(), any::<u32>()).prop_map(
            |(addr, len, member, secs)| Command::PinClients {
                prefix: std::net::Ipv4Addr::from(addr & shoal_channel::prefix_mask(len)),
                len,
                member,
                secs,
            }
        ),
    ]
}

/// Bytes the command occupies before its zero padding.
fn encoded_len(command: &Command) -> usize {
    match command {
        Command::Membership { members, .. } => 24 + 24 * members.len(),
        Command::Drain { .. }
        | Command::Weight { .. }
        | Command::Load { .. }
        | Command::EvictFlows { .. } => 8,
        Command::Shutdown => 2,
        Command::Lease { .. } => 32,
        Command::ReloadServices { .. } | Command::PinClients { .. } => 16,
    }
}

proptest! {
    #[test]
    fn round_trip(command in command_strategy()) {
        let bytes = command.to_bytes().unwrap();
        prop_assert_eq!(bytes[0], FORMAT_VERSION);
        let len = encoded_len(&command);
        prop_assert!(bytes[len..].iter().all(|&byte| byte == 0));
        prop_assert_eq!(Command::decode(&bytes), Ok(command.clone()));
        // The command's own bytes suffice; fewer are `Truncated`.
        prop_assert_eq!(Command::decode(&bytes[..len]), Ok(command.clone()));
        for cut in 0..len {
            let result = Command::decode(&bytes[..cut]);
            prop_assert!(
                matches!(result, Err(DecodeError::Truncated { available, .. }) if available == cut),
                "cut at {}: {:?}", cut, result
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..=COMMAND_LEN)) {
        let _ = Command::decode(&bytes);
    }

    /// Bytes with a valid version and kind get past the first checks; when
    /// they decode, the encoding is exactly those bytes (decoding is
    /// injective: no field is ignored).
    #[test]
    fn structured_garbage_decodes_only_to_its_own_encoding(
        kind in 1_u8..=7,
        count in 0_u8..=70,
        body in vec(prop_oneof![3 => Just(0_u8), 1 => any::<u8>()], COMMAND_LEN - 4),
    ) {
        let mut bytes = vec![FORMAT_VERSION, kind, count, 0];
        bytes.extend(body);
        if let Ok(command) = Command::decode(&bytes) {
            let encoded = command.to_bytes().unwrap();
            prop_assert_eq!(encoded.as_slice(), bytes.as_slice());
        }
    }
}

fn member(id: u16) -> MemberState {
    MemberState {
        id,
        addr: Ipv4Addr::new(198, 18, 0, 10),
        mac: [2, 0, 0, 0, 0, 1],
        weight: 1,
        alive: true,
        draining: false,
        load: 0.5,
    }
}

#[test]
fn bad_version_and_unknown_kind() {
    let mut bytes = Command::Shutdown.to_bytes().unwrap();
    bytes[0] = 1;
    assert_eq!(
        Command::decode(&bytes),
        Err(DecodeError::UnsupportedVersion { found: 1 })
    );
    bytes[0] = 0;
    assert_eq!(
        Command::decode(&bytes),
        Err(DecodeError::UnsupportedVersion { found: 0 })
    );
    bytes[0] = FORMAT_VERSION;
    for kind in [0, 10, 255] {
        bytes[1] = kind;
        assert_eq!(
            Command::decode(&bytes),
            Err(DecodeError::UnknownKind { kind })
        );
    }
    assert_eq!(
        Command::decode(&[]),
        Err(DecodeError::Truncated {
            needed: 2,
            available: 0
        })
    );
    assert_eq!(
        Command::decode(&[0; COMMAND_LEN]),
        Err(DecodeError::UnsupportedVersion { found: 0 })
    );
}

#[test]
fn too_many_members() {
    let members: Vec<_> = (0..=MAX_MEMBERS as u16).map(member).collect();
    let command = Command::Membership {
        epoch: 1,
        digest: 0,
        members,
    };
    assert_eq!(
        command.to_bytes(),
        Err(EncodeError::TooManyMembers { count: 65 })
    );
    let full = Command::Membership {
        epoch: 1,
        digest: 0,
        members: (0..MAX_MEMBERS as u16).map(member).collect(),
    };
    let mut bytes = full.to_bytes().unwrap();
    assert_eq!(Command::decode(&bytes), Ok(full));
    bytes[2] = 65;
    assert_eq!(
        Command::decode(&bytes),
        Err(DecodeError::TooManyMembers { count: 65 })
    );
}

#[test]
fn duplicate_member_ids() {
    let command = Command::Membership {
        epoch: 3,
        digest: 0,
        members: vec![member(4), member(5), member(4)],
    };
    assert_eq!(
        command.to_bytes(),
        Err(EncodeError::DuplicateMember { id: 4 })
    );
    let mut bytes = Command::Membership {
        epoch: 3,
        digest: 0,
        members: vec![member(4), member(5)],
    }
    .to_bytes()
    .unwrap();
    bytes[24 + 24] = 4;
    assert_eq!(
        Command::decode(&bytes),
        Err(DecodeError::DuplicateMember { id: 4 })
    );
}

#[test]
fn invalid_loads() {
    for load in [f32::NAN, f32::INFINITY, -1.0] {
        assert_eq!(
            Command::Load { member: 9, load }
                .to_bytes()
                .map_err(|error| error.to_string()),
            Err(format!(
                "member 9 has load {load}: loads are finite and >= 0"
            ))
        );
    }
    let mut bytes = Command::Load {
        member: 9,
        load: 1.0,
    }
    .to_bytes()
    .unwrap();
    bytes[4..8].copy_from_slice(&f32::NAN.to_bits().to_le_bytes());
    assert_eq!(
        Command::decode(&bytes),
        Err(DecodeError::InvalidLoad {
            member: 9,
            bits: f32::NAN.to_bits()
        })
    );
}

#[test]
fn invalid_flags_and_padding() {
    let mut drain = Command::Drain {
        member: 1,
        draining: false,
    }
    .to_bytes()
    .unwrap();
    drain[4] = 2;
    assert_eq!(
        Command::decode(&drain),
        Err(DecodeError::InvalidFlag {
            offset: 4,
            value: 2
        })
    );
    drain[4] = 1;
    drain[COMMAND_LEN - 1] = 7;
    assert_eq!(
        Command::decode(&drain),
        Err(DecodeError::NonZero {
            offset: COMMAND_LEN - 1,
            value: 7
        })
    );

    let mut membership = Command::Membership {
        epoch: 1,
        digest: 0,
        members: vec![member(1)],
    }
    .to_bytes()
    .unwrap();
    membership[24 + 2] = 0b100;
    assert_eq!(
        Command::decode(&membership),
        Err(DecodeError::InvalidFlag {
            offset: 26,
            value: 0b100
        })
    );
    membership[24 + 2] = 0b11;
    membership[24 + 3] = 1;
    assert_eq!(
        Command::decode(&membership),
        Err(DecodeError::NonZero {
            offset: 27,
            value: 1
        })
    );
}

#[test]
fn encode_needs_exactly_command_len_bytes() {
    let mut short = [0; 16];
    assert_eq!(
        Command::Shutdown.encode(&mut short),
        Err(EncodeError::BufferLength {
            expected: COMMAND_LEN,
            found: 16
        })
    );
}

#[test]
fn a_pin_is_a_prefix_or_refused() {
    use shoal_channel::EncodeError;
    use std::net::Ipv4Addr;
    let pin = |prefix: [u8; 4], len| Command::PinClients {
        prefix: Ipv4Addr::from(prefix),
        len,
        member: 2,
        secs: 600,
    };
    let good = pin([198, 19, 4, 0], 22).to_bytes().expect("a /22");
    assert_eq!(Command::decode(&good), Ok(pin([198, 19, 4, 0], 22)));
    assert_eq!(
        pin([198, 19, 4, 1], 22).to_bytes(),
        Err(EncodeError::BadPrefix {
            prefix: Ipv4Addr::new(198, 19, 4, 1),
            len: 22
        })
    );
    assert!(pin([0, 0, 0, 0], 0).to_bytes().is_ok());
    assert!(pin([198, 19, 4, 1], 32).to_bytes().is_ok());
    // On the wire: a length past 32, host bits set: refused by name.
    let mut bad = good;
    bad[8] = 33;
    assert!(matches!(
        Command::decode(&bad),
        Err(DecodeError::BadPrefix { len: 33, .. })
    ));
    let mut bad = good;
    bad[7] = 1;
    assert!(matches!(
        Command::decode(&bad),
        Err(DecodeError::BadPrefix { len: 22, .. })
    ));
}
