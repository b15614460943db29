//! The membership/load announcement: its wire format, signing and checks.
//!
//! This module owns the bytes on the wire between `shoal-control`
//! processes: a zero-copy [`Packet`] view (field offsets in [`field`],
//! lengths checked once in [`Packet::new_checked`]) and the owned
//! [`Announcement`] with `parse`/`emit`. Every datagram ends with an
//! HMAC-SHA256 tag over everything before it, under the cluster key;
//! [`decode`] checks the tag before reading anything it would act on.
//! Replay protection (incarnation, sequence, timestamp window) is the
//! membership state's job, not this module's.
//!
//! Layout (all integers big-endian, floats as IEEE-754 `f32` bits):
//!
//! ```text
//!  0  magic "SHOL"           4  version (2)   5  kind (1 = announce)
//!  6  flags (bit 0 = leaving)                 8  sender member id
//! 10  heard count L         12  settings count S   14  reserved (0)
//! 16  incarnation u64       24  sequence u64       32  timestamp (unix ms) u64
//! 40  epoch u64             48  epoch digest u64
//! 56  load  60 busy  64 connections  68 redirected  72 handed over (f32 each)
//! 76  reserved (0)
//! 80  applied digest u64 (the epoch table the sender's dataplane runs)
//! 88  L x heard: member u16, incarnation u64, sequence u64 (the last
//!     announcement accepted from that member: the acknowledgement the
//!     member's lease is built on)
//!     S x setting: member u16, flags u16 (bit 0 = draining), weight u32, version u64
//!     HMAC-SHA256 tag, 32 bytes
//! ```

use shoal_key::ClusterKey;

/// Byte offsets of the fixed header.
pub mod field {
    use core::ops::Range;

    /// `b"SHOL"`.
    pub const MAGIC: Range<usize> = 0..4;
    /// Format version.
    pub const VERSION: usize = 4;
    /// Message kind.
    pub const KIND: usize = 5;
    /// Flags.
    pub const FLAGS: Range<usize> = 6..8;
    /// Sender's member id.
    pub const SENDER: Range<usize> = 8..10;
    /// Number of heard entries.
    pub const LIVE_COUNT: Range<usize> = 10..12;
    /// Number of settings entries.
    pub const SETTINGS_COUNT: Range<usize> = 12..14;
    /// Sender's incarnation (changes on every restart, grows).
    pub const INCARNATION: Range<usize> = 16..24;
    /// Sequence number within the incarnation.
    pub const SEQUENCE: Range<usize> = 24..32;
    /// Sender's wall clock, unix milliseconds.
    pub const TIMESTAMP: Range<usize> = 32..40;
    /// Sender's membership epoch.
    pub const EPOCH: Range<usize> = 40..48;
    /// Digest of the sender's epoch table.
    pub const DIGEST: Range<usize> = 48..56;
    /// Composite load (share of capacity).
    pub const LOAD: Range<usize> = 56..60;
    /// Busy fraction of the dataplane's polls.
    pub const BUSY: Range<usize> = 60..64;
    /// Open connections (smoothed).
    pub const CONNECTIONS: Range<usize> = 64..68;
    /// Redirected connections (smoothed).
    pub const REDIRECTED: Range<usize> = 68..72;
    /// Handed-over connections (smoothed).
    pub const HANDED_OVER: Range<usize> = 72..76;
    /// Digest of the epoch table the sender's dataplane has applied.
    pub const APPLIED_DIGEST: Range<usize> = 80..88;
    /// Length of the fixed header; the heard list follows.
    pub const HEADER_LEN: usize = 88;
    /// Bytes per heard entry.
    pub const LIVE_ENTRY: usize = 18;
    /// Bytes per settings entry.
    pub const SETTING_ENTRY: usize = 16;
    /// Length of the HMAC-SHA256 tag at the end.
    pub const TAG_LEN: usize = 32;
}

/// `b"SHOL"`: the first bytes of every announcement.
pub const MAGIC: [u8; 4] = *b"SHOL";
/// The format version this code writes and reads.
pub const VERSION: u8 = 2;
/// The only message kind so far.
pub const KIND_ANNOUNCE: u8 = 1;

const FLAG_LEAVING: u16 = 1;
const SETTING_DRAINING: u16 = 1;

/// The highest epoch number an announcement may carry. Epochs grow by one
/// per membership change, so no cluster gets near it; a peer announcing more
/// (a bug, or a key holder's forgery) would make every member jump past it
/// and overflow the next number (a fuzzing finding).
pub const MAX_EPOCH: u64 = 1 << 48;

/// Why a datagram was not accepted as an announcement. The variants are the
/// `outcome` labels of the received-message counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Too short, wrong magic, unknown version or kind, lengths that do not
    /// add up, or values out of range.
    #[error("malformed announcement ({0})")]
    Malformed(&'static str),
    /// The tag does not match: another cluster key, or tampering.
    #[error("announcement tag does not verify (different cluster key on the sender?)")]
    BadMac,
}

impl DecodeError {
    /// The metric label: `malformed` or `bad_mac`.
    pub fn label(self) -> &'static str {
        match self {
            DecodeError::Malformed(_) => "malformed",
            DecodeError::BadMac => "bad_mac",
        }
    }
}

/// A read-only (or writable) view of an announcement's bytes.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

fn be32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_be_bytes(a)
}

fn be64(b: &[u8], r: core::ops::Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[r]);
    u64::from_be_bytes(a)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking magic, version, kind and that the
    /// length is exactly header + lists + tag; getters then never panic.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, DecodeError> {
        let b = buffer.as_ref();
        if b.len() < field::HEADER_LEN + field::TAG_LEN {
            return Err(DecodeError::Malformed("too short"));
        }
        if b[field::MAGIC] != MAGIC {
            return Err(DecodeError::Malformed("bad magic"));
        }
        if b[field::VERSION] != VERSION {
            return Err(DecodeError::Malformed("unsupported version"));
        }
        if b[field::KIND] != KIND_ANNOUNCE {
            return Err(DecodeError::Malformed("unknown kind"));
        }
        let live = usize::from(be16(b, field::LIVE_COUNT));
        let settings = usize::from(be16(b, field::SETTINGS_COUNT));
        let want = field::HEADER_LEN
            + live * field::LIVE_ENTRY
            + settings * field::SETTING_ENTRY
            + field::TAG_LEN;
        if b.len() != want {
            return Err(DecodeError::Malformed("length does not match the counts"));
        }
        Ok(Packet { buffer })
    }

    /// The bytes the tag covers.
    pub fn signed_part(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..b.len() - field::TAG_LEN]
    }

    /// The tag.
    pub fn tag(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[b.len() - field::TAG_LEN..]
    }

    /// Sender's member id.
    pub fn sender(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SENDER)
    }

    /// Flags word.
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS)
    }

    /// Sender's incarnation.
    pub fn incarnation(&self) -> u64 {
        be64(self.buffer.as_ref(), field::INCARNATION)
    }

    /// Sequence number.
    pub fn sequence(&self) -> u64 {
        be64(self.buffer.as_ref(), field::SEQUENCE)
    }

    /// Sender's clock, unix milliseconds.
    pub fn timestamp_ms(&self) -> u64 {
        be64(self.buffer.as_ref(), field::TIMESTAMP)
    }

    /// Sender's epoch.
    pub fn epoch(&self) -> u64 {
        be64(self.buffer.as_ref(), field::EPOCH)
    }

    /// Digest of the sender's epoch table.
    pub fn digest(&self) -> u64 {
        be64(self.buffer.as_ref(), field::DIGEST)
    }

    fn f32_at(&self, r: core::ops::Range<usize>) -> f32 {
        f32::from_bits(be32(self.buffer.as_ref(), r))
    }

    /// The load figures.
    pub fn load(&self) -> LoadFigures {
        LoadFigures {
            load: self.f32_at(field::LOAD),
            busy: self.f32_at(field::BUSY),
            connections: self.f32_at(field::CONNECTIONS),
            redirected: self.f32_at(field::REDIRECTED),
            handed_over: self.f32_at(field::HANDED_OVER),
        }
    }

    /// Digest of the table the sender's dataplane runs.
    pub fn applied_digest(&self) -> u64 {
        be64(self.buffer.as_ref(), field::APPLIED_DIGEST)
    }

    /// The members the sender hears, with the last announcement it
    /// accepted from each.
    pub fn heard(&self) -> impl Iterator<Item = Heard> + '_ {
        let b = self.buffer.as_ref();
        let n = usize::from(be16(b, field::LIVE_COUNT));
        (0..n).map(move |i| {
            let at = field::HEADER_LEN + i * field::LIVE_ENTRY;
            Heard {
                member: be16(b, at..at + 2),
                incarnation: be64(b, at + 2..at + 10),
                sequence: be64(b, at + 10..at + 18),
            }
        })
    }

    /// The settings entries.
    pub fn settings(&self) -> impl Iterator<Item = Setting> + '_ {
        let b = self.buffer.as_ref();
        let live = usize::from(be16(b, field::LIVE_COUNT));
        let n = usize::from(be16(b, field::SETTINGS_COUNT));
        let base = field::HEADER_LEN + live * field::LIVE_ENTRY;
        (0..n).map(move |i| {
            let at = base + i * field::SETTING_ENTRY;
            Setting {
                member: be16(b, at..at + 2),
                draining: be16(b, at + 2..at + 4) & SETTING_DRAINING != 0,
                weight: be32(b, at + 4..at + 8),
                version: be64(b, at + 8..at + 16),
            }
        })
    }
}

/// A member's load as it reports it (smoothed; see `load.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct LoadFigures {
    /// Composite load, a share of capacity (what `max_load` is compared with).
    pub load: f32,
    /// Fraction of dataplane polls that found packets, 0..=1.
    pub busy: f32,
    /// Open connections (live flows).
    pub connections: f32,
    /// Connections redirected to another member.
    pub redirected: f32,
    /// Connections handed over (L7 splice).
    pub handed_over: f32,
}

impl LoadFigures {
    fn is_valid(&self) -> bool {
        [
            self.load,
            self.busy,
            self.connections,
            self.redirected,
            self.handed_over,
        ]
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0)
    }
}

/// One member's operator settings, as a last-writer-wins register: the
/// entry with the highest `version` wins everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    /// The member the setting is about.
    pub member: u16,
    /// Its weight (relative share of new connections).
    pub weight: u32,
    /// Whether it is drained (takes no new connections).
    pub draining: bool,
    /// `(max(previous + 1, wall clock ms) << 16) | id of the member that made
    /// the change`; 0 = the config.
    pub version: u64,
}

/// A member the sender hears and the last announcement it accepted from
/// it: for that member, an acknowledgement (see `membership.rs`, leases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Heard {
    /// The member.
    pub member: u16,
    /// Its incarnation in that announcement.
    pub incarnation: u64,
    /// Its sequence number.
    pub sequence: u64,
}

/// An announcement, parsed (what one member tells the others every interval).
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    /// Sender's member id.
    pub sender: u16,
    /// The sender is shutting down: remove it now.
    pub leaving: bool,
    /// Sender's incarnation (its start time, unix ms; grows across restarts).
    pub incarnation: u64,
    /// Sequence number within the incarnation, from 1.
    pub sequence: u64,
    /// Sender's wall clock when sent, unix ms.
    pub timestamp_ms: u64,
    /// Sender's membership epoch.
    pub epoch: u64,
    /// Digest of the sender's epoch table.
    pub digest: u64,
    /// Digest of the table the sender's dataplane has applied (0: none).
    pub applied_digest: u64,
    /// Sender's load.
    pub load: LoadFigures,
    /// Members the sender currently hears (itself included), ascending,
    /// each with the last announcement accepted from it.
    pub heard: Vec<Heard>,
    /// The sender's view of every member's settings.
    pub settings: Vec<Setting>,
}

impl Announcement {
    /// Parses a checked packet (tag not verified here: see [`decode`]).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Announcement, DecodeError> {
        let load = p.load();
        if !load.is_valid() {
            return Err(DecodeError::Malformed(
                "load figure not a finite non-negative number",
            ));
        }
        if p.sender() == 0 {
            return Err(DecodeError::Malformed("sender id 0"));
        }
        if p.epoch() > MAX_EPOCH {
            return Err(DecodeError::Malformed("epoch number out of range"));
        }
        Ok(Announcement {
            sender: p.sender(),
            leaving: p.flags() & FLAG_LEAVING != 0,
            incarnation: p.incarnation(),
            sequence: p.sequence(),
            timestamp_ms: p.timestamp_ms(),
            epoch: p.epoch(),
            digest: p.digest(),
            applied_digest: p.applied_digest(),
            load,
            heard: p.heard().collect(),
            settings: p.settings().collect(),
        })
    }

    /// Length of the datagram [`Announcement::emit_signed`] writes.
    pub fn buffer_len(&self) -> usize {
        field::HEADER_LEN
            + self.heard.len() * field::LIVE_ENTRY
            + self.settings.len() * field::SETTING_ENTRY
            + field::TAG_LEN
    }

    /// The signed datagram. Lists longer than 65 535 entries are cut (a
    /// cluster has at most 65 535 member ids).
    pub fn emit_signed(&self, key: &ClusterKey) -> Vec<u8> {
        let live = &self.heard[..self.heard.len().min(usize::from(u16::MAX))];
        let settings = &self.settings[..self.settings.len().min(usize::from(u16::MAX))];
        let mut b = Vec::with_capacity(self.buffer_len());
        b.extend_from_slice(&MAGIC);
        b.push(VERSION);
        b.push(KIND_ANNOUNCE);
        b.extend_from_slice(&(if self.leaving { FLAG_LEAVING } else { 0 }).to_be_bytes());
        b.extend_from_slice(&self.sender.to_be_bytes());
        b.extend_from_slice(&(live.len() as u16).to_be_bytes());
        b.extend_from_slice(&(settings.len() as u16).to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        for v in [
            self.incarnation,
            self.sequence,
            self.timestamp_ms,
            self.epoch,
            self.digest,
        ] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        let l = &self.load;
        for v in [l.load, l.busy, l.connections, l.redirected, l.handed_over] {
            b.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&self.applied_digest.to_be_bytes());
        for h in live {
            b.extend_from_slice(&h.member.to_be_bytes());
            b.extend_from_slice(&h.incarnation.to_be_bytes());
            b.extend_from_slice(&h.sequence.to_be_bytes());
        }
        for s in settings {
            b.extend_from_slice(&s.member.to_be_bytes());
            b.extend_from_slice(&(if s.draining { SETTING_DRAINING } else { 0 }).to_be_bytes());
            b.extend_from_slice(&s.weight.to_be_bytes());
            b.extend_from_slice(&s.version.to_be_bytes());
        }
        let tag = key.sign(&b);
        b.extend_from_slice(&tag);
        b
    }
}

/// Checks the framing and the tag of `datagram`, then parses it.
pub fn decode(datagram: &[u8], key: &ClusterKey) -> Result<Announcement, DecodeError> {
    let p = Packet::new_checked(datagram)?;
    if !key.verify(p.signed_part(), p.tag()) {
        return Err(DecodeError::BadMac);
    }
    Announcement::parse(&p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::from_bytes(&[b; 32]).unwrap()
    }

    fn sample() -> Announcement {
        Announcement {
            sender: 2,
            leaving: false,
            incarnation: 0x0102_0304_0506_0708,
            sequence: 9,
            timestamp_ms: 1_700_000_000_000,
            epoch: 5,
            digest: 0xdead_beef,
            load: LoadFigures {
                load: 0.5,
                busy: 0.25,
                connections: 12.0,
                redirected: 1.0,
                handed_over: 0.0,
            },
            applied_digest: 0x0bad_cafe,
            heard: vec![
                Heard {
                    member: 1,
                    incarnation: 7,
                    sequence: 3,
                },
                Heard {
                    member: 2,
                    incarnation: 0x0102_0304_0506_0708,
                    sequence: 9,
                },
            ],
            settings: vec![Setting {
                member: 3,
                weight: 50,
                draining: true,
                version: (1 << 16) | 2,
            }],
        }
    }

    #[test]
    fn exact_bytes_and_round_trip() {
        let a = sample();
        let bytes = a.emit_signed(&key(1));
        assert_eq!(bytes.len(), 88 + 2 * 18 + 16 + 32);
        assert_eq!(a.buffer_len(), bytes.len());
        assert_eq!(
            &bytes[..16],
            &[b'S', b'H', b'O', b'L', 2, 1, 0, 0, 0, 2, 0, 2, 0, 1, 0, 0]
        );
        assert_eq!(&bytes[16..24], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[24..32], &9u64.to_be_bytes());
        assert_eq!(&bytes[56..60], &0.5f32.to_bits().to_be_bytes());
        assert_eq!(&bytes[80..88], &0x0bad_cafe_u64.to_be_bytes());
        assert_eq!(
            &bytes[88..106],
            &[0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 3]
        );
        assert_eq!(&bytes[106..108], &[0, 2]);
        assert_eq!(
            &bytes[124..140],
            &[0, 3, 0, 1, 0, 0, 0, 50, 0, 0, 0, 0, 0, 1, 0, 2]
        );
        assert_eq!(&bytes[140..], &key(1).sign(&bytes[..140]));
        assert_eq!(decode(&bytes, &key(1)).unwrap(), a);
        let leaving = Announcement {
            leaving: true,
            ..sample()
        };
        let b2 = leaving.emit_signed(&key(1));
        assert_eq!(&b2[6..8], &[0, 1]);
        assert_eq!(decode(&b2, &key(1)).unwrap(), leaving);
    }

    /// Fuzzing finding (`fuzz/regressions/membership/`): a peer announcing
    /// epoch `u64::MAX` overflowed the next epoch number of every member.
    #[test]
    fn an_epoch_out_of_range_is_malformed() {
        let a = Announcement {
            epoch: MAX_EPOCH + 1,
            ..sample()
        };
        assert_eq!(
            decode(&a.emit_signed(&key(1)), &key(1)),
            Err(DecodeError::Malformed("epoch number out of range"))
        );
        let a = Announcement {
            epoch: MAX_EPOCH,
            ..sample()
        };
        assert_eq!(decode(&a.emit_signed(&key(1)), &key(1)), Ok(a));
    }

    #[test]
    fn wrong_key_and_tampering_fail_the_tag() {
        let bytes = sample().emit_signed(&key(1));
        assert_eq!(decode(&bytes, &key(2)), Err(DecodeError::BadMac));
        let mut t = bytes.clone();
        t[30] ^= 1; // the sequence number
        assert_eq!(decode(&t, &key(1)), Err(DecodeError::BadMac));
        let mut t = bytes.clone();
        let last = t.len() - 1;
        t[last] ^= 0x80;
        assert_eq!(decode(&t, &key(1)), Err(DecodeError::BadMac));
    }

    #[test]
    fn malformed_framing_is_named() {
        let k = key(1);
        let bytes = sample().emit_signed(&k);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (bytes[..50].to_vec(), "too short"),
            (
                bytes[..bytes.len() - 1].to_vec(),
                "length does not match the counts",
            ),
            (
                [&bytes[..], &[0]].concat(),
                "length does not match the counts",
            ),
            (
                {
                    let mut b = bytes.clone();
                    b[0] = b'X';
                    b
                },
                "bad magic",
            ),
            (
                {
                    let mut b = bytes.clone();
                    b[4] = 1;
                    b
                },
                "unsupported version",
            ),
            (
                {
                    let mut b = bytes.clone();
                    b[5] = 9;
                    b
                },
                "unknown kind",
            ),
            (
                {
                    let mut b = bytes.clone();
                    b[11] = 200;
                    b
                },
                "length does not match the counts",
            ),
            (Vec::new(), "too short"),
        ];
        for (b, why) in cases {
            assert_eq!(decode(&b, &k), Err(DecodeError::Malformed(why)));
        }
        // A correctly signed message with a NaN load or sender 0 is malformed.
        let mut nan = sample();
        nan.load.busy = f32::NAN;
        assert_eq!(
            decode(&nan.emit_signed(&k), &k),
            Err(DecodeError::Malformed(
                "load figure not a finite non-negative number"
            ))
        );
        let zero = Announcement {
            sender: 0,
            ..sample()
        };
        assert_eq!(
            decode(&zero.emit_signed(&k), &k),
            Err(DecodeError::Malformed("sender id 0"))
        );
        assert_eq!(DecodeError::BadMac.label(), "bad_mac");
    }
}
