//! Target `handoff`: the handoff channel's datagrams (`shoal_l7::handoff`)
//! and the link that opens them (tag, recipient, clock window, replay
//! guard).
//!
//! Datagrams come raw (a forger without the key: every one must fail the
//! tag check) or signed with the cluster key over arbitrary bytes (what a
//! member with the key but a bug could send: the parser must refuse or
//! accept it without panicking, and what it accepts must re-encode to a
//! datagram that decodes to the same thing). The link must never accept
//! the same (sender, incarnation, sequence) twice, nor a datagram for
//! another member or outside the clock window.

use std::collections::HashSet;

use arbitrary::{Arbitrary, Unstructured};

use shoal_l7::handoff::message::{decode, encode, HandoffError};
use shoal_l7::handoff::{ClusterKey, Link, OpenError};

/// The key every member of the fuzzed cluster shares.
pub fn key() -> ClusterKey {
    ClusterKey::from_bytes(&[0x5a; 32]).expect("32 bytes is a valid key")
}

/// One datagram arriving at member 2.
#[derive(Debug, Arbitrary)]
enum Arrival<'a> {
    /// Bytes as received, tag and all.
    Raw(&'a [u8]),
    /// Arbitrary bytes with a valid tag appended.
    Signed(&'a [u8]),
    /// A byte-for-byte copy of an earlier datagram.
    Replay(u8),
    /// The clock moves on (ms).
    Wait(u16),
}

/// The wall clock of the receiving member at the start (unix ms).
const START_MS: u64 = 1_800_000_000_000;

/// The target.
pub fn run(data: &[u8]) {
    let key = key();
    // Decoding alone, raw and signed.
    check_decode(data, &key, false);
    let signed = sign(data, &key);
    check_decode(&signed, &key, true);

    let mut u = Unstructured::new(data);
    let mut link = Link::new(key.clone(), 2, 7);
    let mut now = START_MS;
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut accepted = HashSet::new();
    while let Some(arrival) = (!u.is_empty())
        .then(|| Arrival::arbitrary(&mut u).ok())
        .flatten()
    {
        let datagram = match arrival {
            Arrival::Raw(b) => b.to_vec(),
            Arrival::Signed(b) => sign(b, &key),
            Arrival::Replay(i) if !sent.is_empty() => sent[usize::from(i) % sent.len()].clone(),
            Arrival::Replay(_) => continue,
            Arrival::Wait(ms) => {
                now += u64::from(ms);
                continue;
            }
        };
        let result = link.open(&datagram, now);
        if let Ok(received) = &result {
            let d = decode(&datagram, &key).expect("what the link accepts decodes");
            assert_eq!(d.envelope.recipient, 2);
            assert!(
                d.envelope.timestamp_ms.abs_diff(now)
                    <= shoal_l7::handoff::link::DEFAULT_MAX_SKEW_MS
            );
            assert_eq!(received.origin.member, d.envelope.sender);
            assert!(
                accepted.insert((
                    d.envelope.sender,
                    d.envelope.incarnation,
                    d.envelope.sequence
                )),
                "accepted twice: {:?}",
                d.envelope
            );
        }
        if let Err(OpenError::Decode(HandoffError::BadMac)) = result {
            assert!(
                decode(&datagram, &key).is_err(),
                "a bad tag is refused before anything else"
            );
        }
        sent.push(datagram);
    }
    let c = link.counters();
    assert_eq!(
        c.opened + c.bad_mac + c.malformed + c.not_for_us + c.clock_skew + c.replayed + c.stale,
        sent.len() as u64,
        "every datagram has one counted outcome"
    );
}

/// `body` with the cluster key's tag appended.
fn sign(body: &[u8], key: &ClusterKey) -> Vec<u8> {
    let mut d = body.to_vec();
    d.extend_from_slice(&key.sign(body));
    d
}

fn check_decode(datagram: &[u8], key: &ClusterKey, signed: bool) {
    // What decodes re-encodes to the same thing; refusals (a forger's
    // datagram or a bug's) are fine whatever their reason.
    if let Ok(d) = decode(datagram, key) {
        let again = encode(&d.envelope, &d.message, key);
        assert_eq!(
            decode(&again, key),
            Ok(d),
            "re-encoding changes the datagram"
        );
    }
    if !signed {
        // Without the key no tag is right (a 2^-256 event aside): raw input
        // that decodes would mean the tag is not checked.
        if let Ok(d) = decode(datagram, key) {
            assert_eq!(
                &datagram[datagram.len() - 32..],
                &key.sign(&datagram[..datagram.len() - 32])[..],
                "accepted {d:?} without a valid tag"
            );
        }
    }
}
