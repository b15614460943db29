//! Target `snapshot`: the flow snapshot and the write-ahead journal a
//! restarted dataplane reads back (`shoal_dataplane::pipeline::snapshot`).
//!
//! Arbitrary bytes as a snapshot or a journal never panic, and a journal
//! accounts for every entry (restored or refused). Flows built from the
//! input are journaled, one entry corrupted at random, and read back: every
//! untouched entry comes back exactly, the corrupted one is refused or
//! (if the corruption hit nothing the check covers) comes back as written.

use std::net::Ipv4Addr;

use arbitrary::{Arbitrary, Unstructured};

use shoal_dataplane::flow::{FlowKey, FlowState};
use shoal_dataplane::pipeline::snapshot::{
    decode, decode_journal, journal_entry, JOURNAL_ENTRY_LEN, MAX_AGE_MS,
};
use shoal_dataplane::pipeline::{FlowAction, FlowEntry};
use shoal_l7::splice::SpliceParams;

/// Member the journal belongs to.
const MEMBER: u16 = 1;
/// Monotonic time of the restart (ns).
const NOW_NS: u64 = 100_000_000_000;

#[derive(Debug, Arbitrary)]
struct Flow {
    src: u32,
    src_port: u16,
    dst_port: u16,
    state: u8,
    action: u8,
    member: u16,
    params: (u32, u32, u8, u8),
    isn: u32,
    ended: bool,
    age_ms: u16,
}

impl Flow {
    fn parts(&self) -> (FlowKey, FlowState, FlowEntry) {
        let key = FlowKey::new(
            Ipv4Addr::from(self.src),
            self.src_port,
            Ipv4Addr::new(198, 18, 0, 100),
            self.dst_port,
            6,
        );
        let state = match self.state % 4 {
            0 => FlowState::Syn,
            1 => FlowState::Established,
            2 => FlowState::Closing,
            _ => FlowState::Tombstone,
        };
        let action = match self.action % 6 {
            0 => FlowAction::Local,
            1 => FlowAction::RedirectMac {
                member: self.member,
            },
            2 => FlowAction::RedirectIpip {
                member: self.member,
            },
            3 => FlowAction::Received,
            4 => FlowAction::HandedOff {
                member: self.member,
            },
            _ => FlowAction::Spliced(SpliceParams {
                delta: self.params.0,
                ts_offset: self.params.1,
                kernel_wscale: self.params.2 % 15,
                client_wscale_advertised: self.params.3 % 15,
            }),
        };
        let mut entry = FlowEntry::new(action, self.isn);
        entry.ended = self.ended;
        (key, state, entry)
    }
}

/// The target.
pub fn run(data: &[u8]) {
    let _ = decode(data, MEMBER, NOW_NS);
    let (restored, refused) = decode_journal(data, MEMBER, NOW_NS);
    let entries = data.len().div_ceil(JOURNAL_ENTRY_LEN);
    assert_eq!(
        restored.len() + refused,
        entries,
        "every entry is accounted for"
    );

    let mut u = Unstructured::new(data);
    let Ok(flows) = Vec::<Flow>::arbitrary(&mut u) else {
        return;
    };
    let flip: Option<(u8, u8)> = u.arbitrary().unwrap_or(None);
    let mut journal = Vec::new();
    let mut written = Vec::new();
    for f in flows.iter().take(64) {
        let (k, s, e) = f.parts();
        let at = NOW_NS - u64::from(f.age_ms) * 1_000_000;
        if let Some(entry) = journal_entry(k, s, &e, MEMBER, at) {
            journal.extend_from_slice(&entry);
            written.push(((k, s, e), f.age_ms));
        }
    }
    let corrupted = flip.filter(|_| !journal.is_empty()).map(|(at, bit)| {
        let at = usize::from(at) % journal.len();
        journal[at] ^= 1 << (bit % 8);
        at / JOURNAL_ENTRY_LEN
    });
    let (restored, refused) = decode_journal(&journal, MEMBER, NOW_NS);
    assert_eq!(restored.len() + refused, written.len());
    let mut restored = restored.into_iter();
    for (i, (w, age_ms)) in written.iter().enumerate() {
        // Entries older than the journal's limit are refused, others come back.
        if Some(i) == corrupted || u64::from(*age_ms) > MAX_AGE_MS {
            continue;
        }
        assert!(
            restored.any(|r| r == *w),
            "entry {i} did not come back as written"
        );
    }
}
