//! Target `membership`: control's announcements (`shoal_control::message`)
//! and the membership state machine that applies them
//! (`shoal_control::membership::Membership`), seen from member 1 of three.
//!
//! Datagrams come raw, signed over arbitrary bytes (a member with the key
//! but a bug), as well-formed announcements with arbitrary fields (any
//! sender id, clocks, sequence numbers, loads including NaN and
//! infinities, heard lists and settings), or as copies of earlier ones;
//! the clock moves on between them. Invariants: every datagram gets one
//! counted outcome; what is accepted comes from a configured other member,
//! within the clock window, and with an (incarnation, sequence) above the
//! last accepted from that sender; the live set and the epoch table only
//! name configured members, and the local member is always live; what
//! decodes re-encodes to a datagram that decodes and re-encodes the same.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use arbitrary::{Arbitrary, Unstructured};

use shoal_control::membership::{MemberInfo, Membership, Now, Timing, TIMESTAMP_WINDOW_MS};
use shoal_control::message::{decode, Announcement, Heard, LoadFigures, Setting};
use shoal_key::ClusterKey;

/// Wall clock at the start (unix ms).
const START_MS: u64 = 1_800_000_000_000;

#[derive(Debug, Arbitrary)]
enum Arrival<'a> {
    Raw(&'a [u8]),
    Signed(&'a [u8]),
    Announce(Fields),
    Replay(u8),
    Tick(u16),
}

/// The fields of a well-formed announcement.
#[derive(Debug, Arbitrary)]
struct Fields {
    sender: u8,
    leaving: bool,
    incarnation: u8,
    sequence: u16,
    /// Offset of its timestamp from the receiver's clock (ms).
    skew_ms: i32,
    epoch: u64,
    digest: u64,
    applied_digest: u64,
    load: [f32; 5],
    heard: Vec<(u8, u8, u16)>,
    settings: Vec<(u8, u32, bool, u16)>,
}

impl Fields {
    fn announcement(&self, now: Now) -> Announcement {
        Announcement {
            sender: u16::from(self.sender % 5),
            leaving: self.leaving,
            incarnation: u64::from(self.incarnation),
            sequence: u64::from(self.sequence),
            timestamp_ms: now.wall_ms.saturating_add_signed(i64::from(self.skew_ms)),
            epoch: self.epoch,
            digest: self.digest,
            applied_digest: self.applied_digest,
            load: LoadFigures {
                load: self.load[0],
                busy: self.load[1],
                connections: self.load[2],
                redirected: self.load[3],
                handed_over: self.load[4],
            },
            heard: self
                .heard
                .iter()
                .take(8)
                .map(|&(m, i, s)| Heard {
                    member: u16::from(m % 5),
                    incarnation: u64::from(i),
                    sequence: u64::from(s),
                })
                .collect(),
            settings: self
                .settings
                .iter()
                .take(8)
                .map(|&(m, w, d, v)| Setting {
                    member: u16::from(m % 5),
                    weight: w,
                    draining: d,
                    version: u64::from(v),
                })
                .collect(),
        }
    }
}

fn members() -> Vec<MemberInfo> {
    (1..=3u8)
        .map(|i| MemberInfo {
            id: u16::from(i),
            name: format!("srv{i}"),
            address: Ipv4Addr::new(198, 18, 0, 10 + i),
            mac: [2, 0, 0xc6, 0x12, 0, 10 + i],
            weight: 100,
        })
        .collect()
}

/// The target.
pub fn run(data: &[u8]) {
    let key = ClusterKey::from_bytes(&[0x33; 32]).expect("valid key");
    round_trip(data, &key);
    let mut signed = data.to_vec();
    signed.extend_from_slice(&key.sign(data));
    round_trip(&signed, &key);

    let timing = Timing {
        interval_ms: 100,
        failure_timeout_ms: 1000,
    };
    let mut now = Now {
        mono_ms: 1_000,
        wall_ms: START_MS,
    };
    let mut m = Membership::new(1, members(), timing, key.clone(), START_MS, now);
    let mut u = Unstructured::new(data);
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut last: BTreeMap<u16, ((u64, u64), u64)> = BTreeMap::new();
    let mut replayed = std::collections::HashSet::new();
    let mut received = 0u64;
    while let Some(arrival) = (!u.is_empty())
        .then(|| Arrival::arbitrary(&mut u).ok())
        .flatten()
    {
        let datagram = match arrival {
            Arrival::Raw(b) => b.to_vec(),
            Arrival::Signed(b) => {
                let mut d = b.to_vec();
                d.extend_from_slice(&key.sign(b));
                d
            }
            Arrival::Announce(f) => f.announcement(now).emit_signed(&key),
            Arrival::Replay(i) if !sent.is_empty() => sent[usize::from(i) % sent.len()].clone(),
            Arrival::Replay(_) => continue,
            Arrival::Tick(ms) => {
                now.mono_ms += u64::from(ms);
                now.wall_ms += u64::from(ms);
                m.tick(now);
                check_state(&m, now);
                continue;
            }
        };
        received += 1;
        if let Ok(sender) = m.receive(&datagram, now) {
            let a = decode(&datagram, &key).expect("accepted datagrams decode");
            assert_eq!(a.sender, sender);
            assert!((2..=3).contains(&sender), "accepted from member {sender}");
            assert!(a.timestamp_ms.abs_diff(now.wall_ms) <= 60_000);
            // Above the last one accepted from that sender, while the
            // receiver remembers it (it forgets a sender silent for longer
            // than the failure timeout plus twice the clock window, when no
            // copy of its old datagrams can pass the window any more).
            let stamp = (a.incarnation, a.sequence);
            if let Some(&(prev, at)) = last.get(&sender) {
                let forgotten =
                    now.mono_ms - at > 2 * TIMESTAMP_WINDOW_MS + timing.failure_timeout_ms;
                assert!(
                    stamp > prev || forgotten,
                    "accepted {stamp:?} after {prev:?} from {sender}"
                );
            }
            last.insert(sender, (stamp, now.mono_ms));
            assert!(
                replayed.insert(datagram.clone()),
                "the same datagram accepted twice"
            );
        }
        let counted: u64 = m.received().values().sum();
        assert_eq!(counted, received, "one counted outcome per datagram");
        check_state(&m, now);
        let _ = m.announce_signed(now);
        sent.push(datagram);
    }
}

fn check_state(m: &Membership, now: Now) {
    let live = m.live();
    assert!(live.contains(&1), "the local member is always live");
    assert!(live.iter().all(|id| (1..=3).contains(id)), "{live:?}");
    assert!(m.epoch().table.iter().all(|e| (1..=3).contains(&e.id)));
    for id in 1..=3 {
        let _ = m.load_of(id);
    }
    let _ = m.lease(now);
}

/// What decodes re-encodes to a datagram that decodes, and re-encoding
/// that gives the same bytes (compared as bytes: loads may be NaN).
fn round_trip(datagram: &[u8], key: &ClusterKey) {
    if let Ok(a) = decode(datagram, key) {
        let once = a.emit_signed(key);
        let b = decode(&once, key).expect("a re-encoded announcement decodes");
        assert_eq!(b.emit_signed(key), once);
    }
}
