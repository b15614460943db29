//! Property tests of request reassembly: however a request is cut into
//! segments (two different cuts at once, as a retransmitting client may
//! re-segment), delivered in any order and with any duplicates, the buffer
//! ends up with exactly the request's bytes (up to its capacity), never
//! reports a conflict, and never exposes a byte that is not the request's.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use shoal_l7::reassembly::{RequestBuffer, SegmentOutcome};

/// Cuts `len` bytes at the given points: (offset, length) of each segment.
fn segments(len: usize, cuts: &[Index]) -> Vec<(usize, usize)> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(len)).collect();
    at.push(0);
    at.push(len);
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| (w[0], w[1] - w[0])).collect()
}

/// A request, its segments (two cuts), a delivery order with duplicates, the
/// client's next sequence number and the buffer capacity.
type Scenario = (Vec<u8>, Vec<(usize, usize)>, Vec<usize>, u32, usize);

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        vec(any::<u8>(), 1..400),
        vec(any::<Index>(), 0..10),
        vec(any::<Index>(), 0..10),
        any::<u32>(),
        16usize..500,
    )
        .prop_flat_map(|(request, cuts_a, cuts_b, isn, capacity)| {
            let mut segs = segments(request.len(), &cuts_a);
            segs.extend(segments(request.len(), &cuts_b));
            let n = segs.len();
            vec(0..n, 0..2 * n).prop_flat_map(move |dups| {
                let mut order: Vec<usize> = (0..n).collect();
                order.extend(dups);
                (
                    Just(request.clone()),
                    Just(segs.clone()),
                    Just(order).prop_shuffle(),
                    Just(isn),
                    Just(capacity),
                )
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_order_and_duplication_gives_the_request(
        (request, segs, order, isn, capacity) in scenario()
    ) {
        let mut buf = RequestBuffer::new(isn, capacity);
        let expected = &request[..request.len().min(capacity)];
        // A client retransmits what was refused: deliver the same sequence
        // again until everything is in (each pass delivers the in-order
        // segment at least, which is never refused).
        for _pass in 0..=order.len() {
            for &i in &order {
                let (off, len) = segs[i];
                let outcome = buf.insert(isn.wrapping_add(off as u32), &request[off..off + len]);
                prop_assert_ne!(outcome, SegmentOutcome::Conflict);
                let have = buf.contiguous();
                prop_assert_eq!(have, &expected[..have.len()]);
                prop_assert_eq!(buf.ack_point(), isn.wrapping_add(have.len() as u32));
                prop_assert!(buf.holes() <= shoal_l7::reassembly::MAX_HOLES);
            }
            if buf.contiguous().len() == expected.len() {
                break;
            }
        }
        prop_assert_eq!(buf.contiguous(), expected);
        prop_assert_eq!(buf.is_full(), request.len() >= capacity);
    }

    #[test]
    fn corrupt_overlaps_never_change_stored_bytes(
        (request, segs, order, isn, capacity) in scenario(),
        flip in any::<Index>(),
    ) {
        let mut buf = RequestBuffer::new(isn, capacity);
        let expected = &request[..request.len().min(capacity)];
        for &i in &order {
            let (off, len) = segs[i];
            buf.insert(isn.wrapping_add(off as u32), &request[off..off + len]);
            // The same segment with one byte changed: refused if it overlaps
            // a held byte it contradicts, and never visible in the prefix.
            let mut bad = request[off..off + len].to_vec();
            let at = flip.index(len);
            bad[at] ^= 0x5a;
            let seq = isn.wrapping_add(off as u32);
            let outcome = buf.insert(seq, &bad);
            let have = buf.contiguous();
            if off + at < have.len() && outcome != SegmentOutcome::Conflict {
                prop_assert!(false, "corrupt byte at {} accepted ({outcome:?})", off + at);
            }
            prop_assert_eq!(have, &expected[..have.len()]);
        }
    }
}
