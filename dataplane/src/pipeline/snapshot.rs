//! The flow table across a dataplane restart (an upgrade is a restart).
//!
//! The worker loop writes the flows its kernel or another member serves to a
//! file on the channel's tmpfs (`control.shm_path/flows-<worker>`) every
//! [`SNAPSHOT_INTERVAL_MS`], through a temporary file and a rename, so a
//! reader never sees half a snapshot; a restarted dataplane reads it back
//! before its first burst and re-inserts every flow it validates, so the
//! connections it served survive a restart (or a `kill -9`) shorter than
//! their TCP retransmission patience: the kernel's sockets never went away,
//! the client and the kernel retransmit what the outage dropped.
//!
//! Layout (little-endian), [`HEADER_LEN`] + count x [`RECORD_LEN`] + 8:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `SHOALFL\0` |
//! | 8..12 | layout version, [`LAYOUT_VERSION`] |
//! | 12..16 | record length, [`RECORD_LEN`] |
//! | 16..24 | record count |
//! | 24..32 | written at, `CLOCK_MONOTONIC` ns |
//! | 32..34 | member id the flows belong to |
//! | 34..40 | zero |
//! | records | 0..4 src, 4..8 dst (network order), 8..10 src port, 10..12 dst port, 12 protocol, 13 state, 14 action kind, 15 flags (bit 0 ended), 16..20 client ISN, 20..22 member (redirects), 22..26 splice delta, 26..30 splice TS offset, 30 kernel wscale, 31 client wscale, 32..40 zero |
//! | last 8 | SHA-256 prefix of everything before it |
//!
//! What is kept: `Local`, `Received`, the two redirects, `HandedOff`
//! tombstones and `Spliced` flows that have not ended. Not kept: splice
//! setups in progress (their slots and buffers live outside the flow table:
//! the client retransmits), ended flows (a reused 4-tuple must not meet
//! them). A snapshot that does not validate (magic, version, length,
//! checksum, another member's, older than [`MAX_AGE_MS`]) is refused as a
//! whole, named in the log and counted; the dataplane then starts empty.
//!
//! Cost: one pass over the slab and one write of 40 bytes per kept flow per
//! interval, on the worker thread between bursts (65 536 flows: 2.6 MB).
//!
//! Between snapshots, a **write-ahead journal** (`flows-<worker>.journal`,
//! [`journal_entry`], [`JOURNAL_ENTRY_LEN`] bytes per entry) holds the flows
//! created or changed since the last snapshot: the worker appends them with
//! one write per burst that made any, before that burst is transmitted, and
//! empties the journal after each snapshot. A restart restores the snapshot,
//! then the journal on top. So a `kill -9` loses no flow whose packets went
//! through: a flow created by a burst that was never transmitted is one the
//! client retransmits into.

use core::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use super::reuse::FlowEntry;
use super::FlowAction;
use crate::flow::{FlowKey, FlowState, FlowTable, Insert};
use shoal_l7::splice::SpliceParams;
use shoal_wire::time::Instant;

/// How often the worker writes its snapshot.
pub const SNAPSHOT_INTERVAL_MS: u64 = 200;
/// Snapshots older than this are refused (a dataplane down longer has
/// lost its connections to the kernels' and clients' retransmission
/// patience, and their 4-tuples may be in use again).
pub const MAX_AGE_MS: u64 = 30_000;
/// Layout version of the file.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 40;
/// Bytes per flow.
pub const RECORD_LEN: usize = 40;
const MAGIC: &[u8; 8] = b"SHOALFL\0";
const TRAILER_LEN: usize = 8;

const KIND_LOCAL: u8 = 1;
const KIND_MAC: u8 = 2;
const KIND_IPIP: u8 = 3;
const KIND_RECEIVED: u8 = 4;
const KIND_HANDED_OFF: u8 = 5;
const KIND_SPLICED: u8 = 6;

/// Why a snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Shorter than its header and trailer, or not the length its count says.
    #[error("snapshot is {found} bytes, {expected} expected")]
    Length {
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// Not a flow snapshot.
    #[error("not a flow snapshot (bad magic)")]
    Magic,
    /// Written by a build with another layout.
    #[error("snapshot layout {found} (record {record} bytes); this build reads layout {LAYOUT_VERSION} ({RECORD_LEN} bytes)")]
    Version {
        /// Layout version found.
        found: u32,
        /// Record length found.
        record: u32,
    },
    /// The checksum does not match.
    #[error("snapshot checksum does not match (torn or corrupted)")]
    Checksum,
    /// Another member's flows.
    #[error("snapshot of member {found}, this is member {expected}")]
    Member {
        /// This member.
        expected: u16,
        /// The snapshot's.
        found: u16,
    },
    /// Too old to hold live connections.
    #[error("snapshot is {age_ms} ms old (at most {MAX_AGE_MS} ms are restored)")]
    Stale {
        /// Its age.
        age_ms: u64,
    },
    /// A record with a value no build writes.
    #[error("record {index}: {why}")]
    Record {
        /// Record index.
        index: usize,
        /// What is wrong.
        why: &'static str,
    },
}

/// The snapshot of `flows` of member `member`, written at `mono_ns`, with
/// each action recorded as `resolve` maps it.
pub fn encode(
    flows: &FlowTable<FlowEntry>,
    member: u16,
    mono_ns: u64,
    resolve: impl Fn(FlowAction) -> FlowAction,
) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    let mut count = 0u64;
    for f in flows {
        let value = FlowEntry {
            action: resolve(f.value.action),
            ..f.value
        };
        if let Some(r) = encode_record(f.key(), f.state(), &value) {
            out.extend_from_slice(&r);
            count += 1;
        }
    }
    out[0..8].copy_from_slice(MAGIC);
    out[8..12].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&(RECORD_LEN as u32).to_le_bytes());
    out[16..24].copy_from_slice(&count.to_le_bytes());
    out[24..32].copy_from_slice(&mono_ns.to_le_bytes());
    out[32..34].copy_from_slice(&member.to_le_bytes());
    let sum = checksum(&out);
    out.extend_from_slice(&sum);
    out
}

/// The record of one flow, or `None` for what is not kept (splice setups,
/// ended and closing flows).
fn encode_record(k: FlowKey, state: FlowState, v: &FlowEntry) -> Option<[u8; RECORD_LEN]> {
    let (kind, target, params) = match v.action {
        FlowAction::Local => (KIND_LOCAL, 0, None),
        FlowAction::RedirectMac { member } => (KIND_MAC, member, None),
        FlowAction::RedirectIpip { member } => (KIND_IPIP, member, None),
        FlowAction::Received => (KIND_RECEIVED, 0, None),
        FlowAction::HandedOff { member } => (KIND_HANDED_OFF, member, None),
        FlowAction::Spliced(p) => (KIND_SPLICED, 0, Some(p)),
        // A tracked flow is recorded by the pipeline as the splice it is
        // (`encode`'s `resolve`); without its session it is not kept.
        FlowAction::Splicing { .. } | FlowAction::Tracked { .. } => return None,
    };
    if v.ended || state == FlowState::Closing {
        return None;
    }
    let mut r = [0u8; RECORD_LEN];
    r[0..4].copy_from_slice(&k.src.octets());
    r[4..8].copy_from_slice(&k.dst.octets());
    r[8..10].copy_from_slice(&k.src_port.to_le_bytes());
    r[10..12].copy_from_slice(&k.dst_port.to_le_bytes());
    r[12] = k.proto;
    r[13] = state as u8;
    r[14] = kind;
    r[16..20].copy_from_slice(&v.client_isn.to_le_bytes());
    r[20..22].copy_from_slice(&target.to_le_bytes());
    if let Some(p) = params {
        r[22..26].copy_from_slice(&p.delta.to_le_bytes());
        r[26..30].copy_from_slice(&p.ts_offset.to_le_bytes());
        r[30] = p.kernel_wscale;
        r[31] = p.client_wscale_advertised;
    }
    Some(r)
}

/// One flow back from its record, or what is wrong with it.
fn decode_record(r: &[u8]) -> Result<Restored, &'static str> {
    let state = match r[13] {
        0 => FlowState::Syn,
        1 => FlowState::Established,
        3 => FlowState::Tombstone,
        _ => return Err("state"),
    };
    let target = u16_at(r, 20);
    let action = match r[14] {
        KIND_LOCAL => FlowAction::Local,
        KIND_MAC => FlowAction::RedirectMac { member: target },
        KIND_IPIP => FlowAction::RedirectIpip { member: target },
        KIND_RECEIVED => FlowAction::Received,
        KIND_HANDED_OFF => FlowAction::HandedOff { member: target },
        KIND_SPLICED => FlowAction::Spliced(SpliceParams {
            delta: u32_at(r, 22),
            ts_offset: u32_at(r, 26),
            kernel_wscale: r[30],
            client_wscale_advertised: r[31],
        }),
        _ => return Err("action kind"),
    };
    if r[15] != 0 || r[32..RECORD_LEN].iter().any(|&b| b != 0) {
        return Err("reserved bytes not zero");
    }
    let key = FlowKey {
        src: Ipv4Addr::new(r[0], r[1], r[2], r[3]),
        dst: Ipv4Addr::new(r[4], r[5], r[6], r[7]),
        src_port: u16_at(r, 8),
        dst_port: u16_at(r, 10),
        proto: r[12],
    };
    Ok((key, state, FlowEntry::new(action, u32_at(r, 16))))
}

/// Bytes of a journal entry: 0..8 written at (`CLOCK_MONOTONIC` ns),
/// 8..10 member id, 10..16 zero, 16..56 a flow record, 56..64 a check word
/// (a 64-bit mix of the 7 words before it).
pub const JOURNAL_ENTRY_LEN: usize = 64;

/// The write-ahead journal entry of one flow (`None` for what snapshots do
/// not keep either). The worker appends the entries of the flows a burst
/// created or changed, in one write, *before* it transmits the burst: a
/// dataplane killed at any point has either journaled a flow or not yet
/// let its first packet through (the client retransmits it).
pub fn journal_entry(
    k: FlowKey,
    state: FlowState,
    v: &FlowEntry,
    member: u16,
    mono_ns: u64,
) -> Option<[u8; JOURNAL_ENTRY_LEN]> {
    let r = encode_record(k, state, v)?;
    let mut e = [0u8; JOURNAL_ENTRY_LEN];
    e[0..8].copy_from_slice(&mono_ns.to_le_bytes());
    e[8..10].copy_from_slice(&member.to_le_bytes());
    e[16..56].copy_from_slice(&r);
    let check = entry_check(&e);
    e[56..64].copy_from_slice(&check.to_le_bytes());
    Some(e)
}

fn entry_check(e: &[u8]) -> u64 {
    e[..56].chunks_exact(8).fold(0x4a6f_7572_6e61_6c21, |h, w| {
        shoal_select::mix64(h ^ u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
    })
}

/// The flows of a journal of member `member` at `now_mono_ns`, later
/// entries of a key replacing earlier ones in the table they are restored
/// to; and how many entries were refused (torn, another member's, older
/// than [`MAX_AGE_MS`], invalid). Never fails as a whole: each entry
/// stands alone.
pub fn decode_journal(bytes: &[u8], member: u16, now_mono_ns: u64) -> (Vec<Restored>, usize) {
    let mut out = Vec::new();
    let mut refused = bytes.len() % JOURNAL_ENTRY_LEN;
    refused = usize::from(refused != 0);
    for e in bytes.chunks_exact(JOURNAL_ENTRY_LEN) {
        let written = u64::from_le_bytes(e[0..8].try_into().unwrap_or([0; 8]));
        let ok = u64::from_le_bytes(e[56..64].try_into().unwrap_or([0; 8])) == entry_check(e)
            && u16_at(e, 8) == member
            && e[10..16].iter().all(|&b| b == 0)
            && now_mono_ns.saturating_sub(written) / 1_000_000 <= MAX_AGE_MS;
        match ok.then(|| decode_record(&e[16..56])) {
            Some(Ok(flow)) => out.push(flow),
            _ => refused += 1,
        }
    }
    (out, refused)
}

fn checksum(bytes: &[u8]) -> [u8; TRAILER_LEN] {
    let d = Sha256::digest(bytes);
    let mut s = [0u8; TRAILER_LEN];
    s.copy_from_slice(&d[..TRAILER_LEN]);
    s
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// One restored flow.
pub type Restored = (FlowKey, FlowState, FlowEntry);

/// Checks and decodes a snapshot for member `member` at `now_mono_ns`.
pub fn decode(bytes: &[u8], member: u16, now_mono_ns: u64) -> Result<Vec<Restored>, SnapshotError> {
    let min = HEADER_LEN + TRAILER_LEN;
    if bytes.len() < min {
        return Err(SnapshotError::Length {
            expected: min,
            found: bytes.len(),
        });
    }
    if &bytes[0..8] != MAGIC {
        return Err(SnapshotError::Magic);
    }
    let (version, record) = (u32_at(bytes, 8), u32_at(bytes, 12));
    if version != LAYOUT_VERSION || record as usize != RECORD_LEN {
        return Err(SnapshotError::Version {
            found: version,
            record,
        });
    }
    let count = u64::from_le_bytes(bytes[16..24].try_into().unwrap_or([0; 8]));
    let expected = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(RECORD_LEN))
        .and_then(|n| n.checked_add(min))
        .unwrap_or(usize::MAX);
    if bytes.len() != expected {
        return Err(SnapshotError::Length {
            expected,
            found: bytes.len(),
        });
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    if checksum(body) != trailer {
        return Err(SnapshotError::Checksum);
    }
    let found = u16_at(bytes, 32);
    if found != member {
        return Err(SnapshotError::Member {
            expected: member,
            found,
        });
    }
    let written = u64::from_le_bytes(bytes[24..32].try_into().unwrap_or([0; 8]));
    let age_ms = now_mono_ns.saturating_sub(written) / 1_000_000;
    if age_ms > MAX_AGE_MS {
        return Err(SnapshotError::Stale { age_ms });
    }
    let mut out = Vec::with_capacity(body[HEADER_LEN..].len() / RECORD_LEN);
    for (index, r) in body[HEADER_LEN..].chunks_exact(RECORD_LEN).enumerate() {
        out.push(decode_record(r).map_err(|why| SnapshotError::Record { index, why })?);
    }
    Ok(out)
}

/// Inserts restored flows into `flows` at `now`; returns how many went in
/// (a table smaller than the snapshot keeps what fits).
pub fn restore(flows: &mut FlowTable<FlowEntry>, restored: Vec<Restored>, now: Instant) -> usize {
    restored
        .into_iter()
        .filter(|(k, s, v)| {
            matches!(
                flows.insert(*k, *s, *v, now),
                Insert::Inserted | Insert::Replaced
            )
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Timeouts;
    use core::time::Duration;

    fn table() -> FlowTable<FlowEntry> {
        let t = Duration::from_mins(1);
        let mut flows = FlowTable::new(
            16,
            Timeouts {
                syn: t,
                established: t,
                closing: t,
                tombstone: t,
            },
        );
        let key = |port| FlowKey {
            src: Ipv4Addr::new(198, 18, 1, 2),
            dst: Ipv4Addr::new(198, 18, 0, 100),
            src_port: port,
            dst_port: 80,
            proto: 6,
        };
        let spliced = FlowAction::Spliced(SpliceParams {
            delta: 0xdead_beef,
            ts_offset: 7,
            kernel_wscale: 9,
            client_wscale_advertised: 7,
        });
        let now = Instant::from_secs(1);
        for (port, state, action) in [
            (1000, FlowState::Established, FlowAction::Local),
            (1001, FlowState::Syn, FlowAction::RedirectMac { member: 2 }),
            (
                1002,
                FlowState::Established,
                FlowAction::RedirectIpip { member: 3 },
            ),
            (1003, FlowState::Established, FlowAction::Received),
            (
                1004,
                FlowState::Tombstone,
                FlowAction::HandedOff { member: 2 },
            ),
            (1005, FlowState::Established, spliced),
            // Not kept: closing, and a setup in progress.
            (1006, FlowState::Closing, FlowAction::Local),
            (
                1007,
                FlowState::Established,
                FlowAction::Splicing {
                    slot: 3,
                    service: 0,
                },
            ),
        ] {
            let inserted = flows.insert(
                key(port),
                state,
                FlowEntry::new(action, u32::from(port) * 7),
                now,
            );
            assert_eq!(inserted, Insert::Inserted);
        }
        flows
    }

    #[test]
    fn round_trip_keeps_what_can_go_on() {
        let flows = table();
        let bytes = encode(&flows, 1, 5_000_000_000, |a| a);
        assert_eq!(bytes.len(), HEADER_LEN + 6 * RECORD_LEN + 8);
        let restored = decode(&bytes, 1, 6_000_000_000).unwrap();
        let mut fresh = FlowTable::new(16, *flows.timeouts());
        assert_eq!(restore(&mut fresh, restored, Instant::from_secs(50)), 6);
        for f in &flows {
            let kept = f.state() != FlowState::Closing
                && !matches!(f.value.action, FlowAction::Splicing { .. });
            let got = fresh.get(&f.key());
            assert_eq!(got.is_some(), kept, "{:?}", f.key());
            if let Some(g) = got {
                assert_eq!((g.state(), g.value), (f.state(), f.value));
            }
        }
    }

    #[test]
    fn journal_entries_round_trip_and_stand_alone() {
        let mut flows = table();
        flows.track_changes(64);
        // The table's inserts happened before tracking: note them now.
        let keys: Vec<FlowKey> = flows.iter().map(crate::flow::Flow::key).collect();
        for k in &keys {
            flows.note_changed(*k);
        }
        let (changed, overflowed) = flows.take_changes();
        let changed: Vec<FlowKey> = changed.collect();
        assert!(!overflowed);
        assert_eq!(changed.len(), 8);
        let mut journal = Vec::new();
        for k in &changed {
            let f = flows.get(k).unwrap();
            if let Some(e) = journal_entry(*k, f.state(), &f.value, 1, 5_000_000_000) {
                journal.extend_from_slice(&e);
            }
        }
        assert_eq!(journal.len(), 6 * JOURNAL_ENTRY_LEN);
        // A torn last entry and a flipped byte are refused one by one.
        journal.extend_from_slice(&[7; 10]);
        journal[JOURNAL_ENTRY_LEN + 20] ^= 1;
        let (restored, refused) = decode_journal(&journal, 1, 6_000_000_000);
        assert_eq!((restored.len(), refused), (5, 2));
        let mut fresh = FlowTable::new(16, *flows.timeouts());
        assert_eq!(restore(&mut fresh, restored, Instant::from_secs(50)), 5);
        for (k, _, v) in decode_journal(&journal, 1, 6_000_000_000).0 {
            let f = flows.get(&k).unwrap();
            assert_eq!(v, f.value);
        }
        // Another member's, or older than MAX_AGE_MS: nothing.
        assert_eq!(decode_journal(&journal, 2, 6_000_000_000).0.len(), 0);
        let late = 5_000_000_000 + (MAX_AGE_MS + 1) * 1_000_000;
        assert_eq!(decode_journal(&journal, 1, late).0.len(), 0);
    }

    #[test]
    fn refuses_what_does_not_validate() {
        let bytes = encode(&table(), 1, 5_000_000_000, |a| a);
        let now = 6_000_000_000;
        assert_eq!(
            decode(&bytes, 2, now),
            Err(SnapshotError::Member {
                expected: 2,
                found: 1
            })
        );
        assert_eq!(
            decode(&bytes, 1, 5_000_000_000 + (MAX_AGE_MS + 1) * 1_000_000),
            Err(SnapshotError::Stale {
                age_ms: MAX_AGE_MS + 1
            })
        );
        let mut torn = bytes.clone();
        torn[HEADER_LEN + 3] ^= 1;
        assert_eq!(decode(&torn, 1, now), Err(SnapshotError::Checksum));
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1], 1, now),
            Err(SnapshotError::Length { .. })
        ));
        let mut old = bytes.clone();
        old[8] = 9;
        assert!(matches!(
            decode(&old, 1, now),
            Err(SnapshotError::Version { found: 9, .. })
        ));
        assert_eq!(
            decode(&[0x5a; HEADER_LEN + 8], 1, now),
            Err(SnapshotError::Magic)
        );
        assert!(matches!(
            decode(&[], 1, now),
            Err(SnapshotError::Length { .. })
        ));
    }
}
