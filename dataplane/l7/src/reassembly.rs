//! The client's request bytes rebuilt from TCP segments ([`RequestBuffer`]):
//! in-order and out-of-order data, retransmissions, overlaps that must agree,
//! the client's FIN. Transport, not HTTP: what the bytes mean is
//! [`crate::http`]'s job.
//!
//! This module reads no clock, does no I/O and allocates only in
//! [`RequestBuffer::new`], once per connection, `capacity` bytes fixed by
//! `dispatch.max_request_bytes`. Every [`RequestBuffer::insert`] returns a
//! [`SegmentOutcome`]; the pipeline counts each one
//! (`request_segment_{advanced,out_of_order,duplicate,conflict,too_many_holes,too_large}`).

use core::fmt;

/// Out-of-order segments a [`RequestBuffer`] keeps beyond its in-order
/// prefix; each one follows a hole. A segment that would make a fifth hole
/// is refused ([`SegmentOutcome::TooManyHoles`]) and the client retransmits it.
pub const MAX_HOLES: usize = 4;

/// Largest buffer a [`RequestBuffer`] accepts (1 GiB): sequence offsets must
/// stay below 2^31 to be told apart from old data. `dispatch.max_request_bytes`
/// is validated far below this.
pub const MAX_CAPACITY: usize = 1 << 30;

/// What [`RequestBuffer::insert`] (or [`RequestBuffer::fin`]) did with a
/// segment. The caller counts each outcome; only [`SegmentOutcome::Advanced`] moves
/// the [ack point](RequestBuffer::ack_point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentOutcome {
    /// New bytes extended the in-order prefix (possibly closing holes).
    Advanced,
    /// New bytes stored beyond a hole; the ack point did not move (the
    /// client should see a duplicate ACK).
    OutOfOrder,
    /// Nothing new: every byte was already held (a retransmission), lay
    /// before the first request byte, or the payload was empty.
    Duplicate,
    /// The segment overlaps stored bytes with different content, or carries
    /// data past the FIN: nothing was stored.
    Conflict,
    /// The segment would leave more than [`MAX_HOLES`] holes: nothing was
    /// stored (refused; the client retransmits it).
    TooManyHoles,
    /// Some bytes lie at or beyond the capacity and were not stored; the
    /// bytes within it were (subject to the other rules).
    TooLarge,
}

impl SegmentOutcome {
    /// True for outcomes that stored nothing because the segment is bad or
    /// unacceptable ([`Conflict`](SegmentOutcome::Conflict),
    /// [`TooManyHoles`](SegmentOutcome::TooManyHoles)).
    pub fn is_refused(self) -> bool {
        matches!(
            self,
            SegmentOutcome::Conflict | SegmentOutcome::TooManyHoles
        )
    }
}

/// The client's request bytes, collected from TCP segments by sequence
/// number: in-order and out-of-order data (up to [`MAX_HOLES`] holes),
/// retransmissions and overlaps (which must agree with what is stored), and
/// optionally the client's FIN.
///
/// Offsets are taken relative to the first request byte (the client's
/// ISN + 1) with sequence-number wrap-around, so a buffer works across the
/// 2^32 boundary. The storage is allocated once, in [`RequestBuffer::new`].
#[derive(Clone)]
pub struct RequestBuffer {
    /// Sequence number of `data[0]`.
    start: u32,
    /// The storage, `capacity` bytes.
    data: Box<[u8]>,
    /// Length of the in-order prefix.
    contiguous: usize,
    /// Out-of-order ranges `[from, to)` as offsets: sorted, disjoint, not
    /// adjacent, all after `contiguous` (so each follows a hole).
    ranges: [(usize, usize); MAX_HOLES],
    /// Number of valid entries in `ranges`.
    n_ranges: usize,
    /// Offset of the client's FIN (one past its last data byte), if seen.
    fin: Option<usize>,
}

impl fmt::Debug for RequestBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuffer")
            .field("start", &self.start)
            .field("capacity", &self.data.len())
            .field("contiguous", &self.contiguous)
            .field("out_of_order", &&self.ranges[..self.n_ranges])
            .field("fin", &self.fin)
            .finish_non_exhaustive()
    }
}

impl RequestBuffer {
    /// A buffer whose first byte has sequence number `isn_next` (the
    /// client's ISN + 1) and which holds at most `capacity` bytes (clamped
    /// to [`MAX_CAPACITY`]). Allocates `capacity` bytes.
    pub fn new(isn_next: u32, capacity: usize) -> RequestBuffer {
        RequestBuffer {
            start: isn_next,
            data: vec![0u8; capacity.min(MAX_CAPACITY)].into_boxed_slice(),
            contiguous: 0,
            ranges: [(0, 0); MAX_HOLES],
            n_ranges: 0,
            fin: None,
        }
    }

    /// Most bytes the buffer holds.
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// Sequence number of the first buffered byte.
    pub fn start_seq(&self) -> u32 {
        self.start
    }

    /// The in-order prefix of the request: every byte from the first up to
    /// the first hole.
    pub fn contiguous(&self) -> &[u8] {
        &self.data[..self.contiguous]
    }

    /// True when the in-order prefix fills the whole capacity.
    pub fn is_full(&self) -> bool {
        self.contiguous == self.data.len()
    }

    /// Holes currently open (out-of-order ranges kept), at most [`MAX_HOLES`].
    pub fn holes(&self) -> usize {
        self.n_ranges
    }

    /// The next sequence number expected from the client, what the
    /// inspector acknowledges: one past the in-order prefix, plus one for
    /// the FIN once every byte before it has arrived.
    pub fn ack_point(&self) -> u32 {
        let fin = u32::from(self.fin_received());
        self.start
            .wrapping_add(self.contiguous as u32)
            .wrapping_add(fin)
    }

    /// True once the client's FIN has arrived and every byte before it too.
    pub fn fin_received(&self) -> bool {
        self.fin == Some(self.contiguous)
    }

    /// Stores the payload of a segment with sequence number `seq`.
    ///
    /// Bytes before the first request byte are ignored; bytes already held
    /// must match (else [`SegmentOutcome::Conflict`], nothing stored); bytes at or
    /// beyond the capacity are dropped ([`SegmentOutcome::TooLarge`], the rest is
    /// stored); a segment that would leave more than [`MAX_HOLES`] holes is
    /// refused. Never allocates.
    pub fn insert(&mut self, seq: u32, payload: &[u8]) -> SegmentOutcome {
        let Some((off, payload)) = self.clip_front(seq, payload) else {
            return SegmentOutcome::Duplicate;
        };
        let end = off + payload.len();
        if self.fin.is_some_and(|fin| end > fin) {
            return SegmentOutcome::Conflict;
        }
        let cap = self.data.len();
        if off >= cap {
            return SegmentOutcome::TooLarge;
        }
        let truncated = end > cap;
        let end = end.min(cap);
        let payload = &payload[..end - off];
        if !self.agrees(off, payload) {
            return SegmentOutcome::Conflict;
        }

        let outcome = if off <= self.contiguous {
            if end > self.contiguous {
                let from = self.contiguous;
                self.data[from..end].copy_from_slice(&payload[from - off..]);
                self.contiguous = end;
                self.absorb_ranges();
                SegmentOutcome::Advanced
            } else {
                SegmentOutcome::Duplicate
            }
        } else {
            match self.merged_ranges(off, end) {
                None => return SegmentOutcome::TooManyHoles,
                Some((ranges, n)) => {
                    let covered = self.ranges[..self.n_ranges]
                        .iter()
                        .any(|&(a, b)| a <= off && end <= b);
                    self.data[off..end].copy_from_slice(payload);
                    self.ranges = ranges;
                    self.n_ranges = n;
                    if covered {
                        SegmentOutcome::Duplicate
                    } else {
                        SegmentOutcome::OutOfOrder
                    }
                }
            }
        };
        if truncated {
            SegmentOutcome::TooLarge
        } else {
            outcome
        }
    }

    /// Records the client's FIN, whose sequence number is `seq` (the
    /// segment's sequence number plus its payload length). Returns
    /// [`SegmentOutcome::Advanced`] when the FIN is in order (the ack point moves
    /// past it), [`SegmentOutcome::OutOfOrder`] when bytes before it are missing,
    /// [`SegmentOutcome::Duplicate`] for a repeated FIN, [`SegmentOutcome::Conflict`] for a
    /// FIN before bytes already received or at another place than a
    /// previous one, and [`SegmentOutcome::TooLarge`] for a FIN beyond the capacity.
    pub fn fin(&mut self, seq: u32) -> SegmentOutcome {
        let off = seq_offset(seq, self.start);
        let Ok(off) = usize::try_from(off) else {
            return SegmentOutcome::Conflict;
        };
        if let Some(fin) = self.fin {
            return if fin == off {
                SegmentOutcome::Duplicate
            } else {
                SegmentOutcome::Conflict
            };
        }
        if off > self.data.len() {
            return SegmentOutcome::TooLarge;
        }
        let highest = self.ranges[..self.n_ranges]
            .last()
            .map_or(self.contiguous, |&(_, to)| to);
        if off < highest {
            return SegmentOutcome::Conflict;
        }
        self.fin = Some(off);
        if off == self.contiguous {
            SegmentOutcome::Advanced
        } else {
            SegmentOutcome::OutOfOrder
        }
    }

    /// Forgets the first `n` in-order bytes (a request handed over on a
    /// persistent connection) so that the buffer collects the next request
    /// from sequence number `start_seq() + n`. `n` is clamped to the in-order
    /// prefix. Out-of-order bytes and the FIN keep their sequence numbers.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.contiguous);
        let high = self.ranges[..self.n_ranges]
            .last()
            .map_or(self.contiguous, |&(_, to)| to);
        self.data.copy_within(n..high, 0);
        self.start = self.start.wrapping_add(n as u32);
        self.contiguous -= n;
        for r in &mut self.ranges[..self.n_ranges] {
            *r = (r.0 - n, r.1 - n);
        }
        self.fin = self.fin.map(|f| f - n);
    }

    /// Empties the buffer and makes it collect bytes from sequence number
    /// `seq` on (a request released whose body is still on its way: the
    /// next request starts past it). Keeps the storage: never allocates.
    pub fn restart(&mut self, seq: u32) {
        self.start = seq;
        self.contiguous = 0;
        self.n_ranges = 0;
        self.fin = None;
    }

    /// The payload's offset and the part of it at or after the first
    /// request byte; `None` when nothing is left.
    fn clip_front<'p>(&self, seq: u32, payload: &'p [u8]) -> Option<(usize, &'p [u8])> {
        let off = i64::from(seq_offset(seq, self.start));
        let skip = usize::try_from(-off).unwrap_or(0);
        let payload = payload.get(skip..).filter(|p| !p.is_empty())?;
        Some((usize::try_from(off).unwrap_or(0), payload))
    }

    /// True if `payload` at `off` matches every byte already stored there.
    fn agrees(&self, off: usize, payload: &[u8]) -> bool {
        let end = off + payload.len();
        let held = core::iter::once((0, self.contiguous))
            .chain(self.ranges[..self.n_ranges].iter().copied());
        held.into_iter().all(|(a, b)| {
            let (from, to) = (a.max(off), b.min(end));
            from >= to || self.data[from..to] == payload[from - off..to - off]
        })
    }

    /// Moves out-of-order ranges the in-order prefix reached into it.
    fn absorb_ranges(&mut self) {
        let mut kept = 0;
        for i in 0..self.n_ranges {
            let (a, b) = self.ranges[i];
            if a <= self.contiguous {
                self.contiguous = self.contiguous.max(b);
            } else {
                self.ranges[kept] = (a, b);
                kept += 1;
            }
        }
        self.n_ranges = kept;
    }

    /// The out-of-order ranges with `[from, to)` (beyond the in-order
    /// prefix) merged in, or `None` if they would exceed [`MAX_HOLES`].
    fn merged_ranges(
        &self,
        from: usize,
        to: usize,
    ) -> Option<([(usize, usize); MAX_HOLES], usize)> {
        let mut out = [(0, 0); MAX_HOLES];
        let mut n = 0;
        let mut new = Some((from, to));
        let mut push = |r: (usize, usize), out: &mut [(usize, usize); MAX_HOLES]| -> bool {
            if n > 0 && r.0 <= out[n - 1].1 {
                out[n - 1].1 = out[n - 1].1.max(r.1);
                return true;
            }
            if n == MAX_HOLES {
                return false;
            }
            out[n] = r;
            n += 1;
            true
        };
        for &r in &self.ranges[..self.n_ranges] {
            if let Some(nr) = new.filter(|nr| nr.0 <= r.0) {
                if !push(nr, &mut out) {
                    return None;
                }
                new = None;
            }
            if !push(r, &mut out) {
                return None;
            }
        }
        if let Some(nr) = new {
            if !push(nr, &mut out) {
                return None;
            }
        }
        Some((out, n))
    }
}

/// The signed distance from sequence number `start` to `seq` (RFC 9293
/// modular comparison: negative means before `start`).
#[allow(clippy::cast_possible_wrap)] // The wrap is the point (`cast_signed` needs Rust 1.87).
fn seq_offset(seq: u32, start: u32) -> i32 {
    seq.wrapping_sub(start) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_segments_advance_the_ack_point() {
        let mut b = RequestBuffer::new(1000, 64);
        assert_eq!(b.ack_point(), 1000);
        assert_eq!(b.insert(1000, b"GET / "), SegmentOutcome::Advanced);
        assert_eq!(b.insert(1006, b"HTTP/1.0\r\n"), SegmentOutcome::Advanced);
        assert_eq!(b.contiguous(), b"GET / HTTP/1.0\r\n");
        assert_eq!(b.ack_point(), 1016);
        assert_eq!(b.holes(), 0);
        assert!(!b.is_full());
    }

    #[test]
    fn out_of_order_bytes_wait_for_the_hole_to_fill() {
        let mut b = RequestBuffer::new(0, 64);
        assert_eq!(b.insert(6, b"ghi"), SegmentOutcome::OutOfOrder);
        assert_eq!(b.insert(12, b"mno"), SegmentOutcome::OutOfOrder);
        assert_eq!(b.holes(), 2);
        assert_eq!(b.contiguous(), b"");
        assert_eq!(b.ack_point(), 0);
        // Fills the first hole: the prefix reaches the end of "ghi".
        assert_eq!(b.insert(0, b"abcdef"), SegmentOutcome::Advanced);
        assert_eq!(b.contiguous(), b"abcdefghi");
        assert_eq!(b.holes(), 1);
        // Bridges the second hole.
        assert_eq!(b.insert(9, b"jkl"), SegmentOutcome::Advanced);
        assert_eq!(b.contiguous(), b"abcdefghijklmno");
        assert_eq!(b.ack_point(), 15);
        assert_eq!(b.holes(), 0);
    }

    #[test]
    fn retransmissions_and_agreeing_overlaps_are_accepted() {
        let mut b = RequestBuffer::new(0, 64);
        assert_eq!(b.insert(0, b"abcd"), SegmentOutcome::Advanced);
        assert_eq!(b.insert(0, b"abcd"), SegmentOutcome::Duplicate);
        assert_eq!(b.insert(2, b"cd"), SegmentOutcome::Duplicate);
        assert_eq!(b.insert(2, b"cdef"), SegmentOutcome::Advanced);
        assert_eq!(b.insert(10, b"kl"), SegmentOutcome::OutOfOrder);
        assert_eq!(b.insert(10, b"kl"), SegmentOutcome::Duplicate);
        assert_eq!(b.insert(9, b"jklm"), SegmentOutcome::OutOfOrder);
        assert_eq!(b.insert(0, b""), SegmentOutcome::Duplicate);
        assert_eq!(b.insert(6, b"ghi"), SegmentOutcome::Advanced);
        assert_eq!(b.contiguous(), b"abcdefghijklm");
    }

    #[test]
    fn disagreeing_overlaps_are_refused_whole() {
        let mut b = RequestBuffer::new(0, 64);
        b.insert(0, b"abcd");
        b.insert(8, b"ijkl");
        assert_eq!(b.insert(2, b"XXef"), SegmentOutcome::Conflict);
        assert_eq!(b.insert(6, b"ghiX"), SegmentOutcome::Conflict);
        assert!(SegmentOutcome::Conflict.is_refused());
        // Nothing of the refused segments was stored.
        assert_eq!(b.contiguous(), b"abcd");
        assert_eq!(b.insert(4, b"efgh"), SegmentOutcome::Advanced);
        assert_eq!(b.contiguous(), b"abcdefghijkl");
    }

    #[test]
    fn a_fifth_hole_is_refused_but_merging_segments_are_not() {
        let mut b = RequestBuffer::new(0, 64);
        for i in 0..4u32 {
            assert_eq!(b.insert(10 * (i + 1), b"xx"), SegmentOutcome::OutOfOrder);
        }
        assert_eq!(b.holes(), MAX_HOLES);
        assert_eq!(b.insert(50, b"xx"), SegmentOutcome::TooManyHoles);
        assert_eq!(b.insert(5, b"x"), SegmentOutcome::TooManyHoles);
        assert!(SegmentOutcome::TooManyHoles.is_refused());
        // Extending or joining kept ranges needs no new hole.
        assert_eq!(b.insert(12, b"xxxxxxxx"), SegmentOutcome::OutOfOrder);
        assert_eq!(b.holes(), 3);
        assert_eq!(b.insert(42, b"yy"), SegmentOutcome::OutOfOrder);
        assert_eq!(b.holes(), 3);
        assert_eq!(b.insert(0, &[b'z'; 10]), SegmentOutcome::Advanced);
        assert_eq!(b.contiguous().len(), 22);
        assert_eq!(b.holes(), 2);
    }

    #[test]
    fn bytes_beyond_the_capacity_are_dropped() {
        let mut b = RequestBuffer::new(500, 8);
        assert_eq!(b.insert(508, b"x"), SegmentOutcome::TooLarge);
        assert_eq!(b.insert(506, b"ghij"), SegmentOutcome::TooLarge);
        assert_eq!(b.holes(), 1);
        assert_eq!(b.insert(500, b"abcdef"), SegmentOutcome::Advanced);
        assert_eq!(b.contiguous(), b"abcdefgh");
        assert!(b.is_full());
        assert_eq!(b.ack_point(), 508);
        assert_eq!(b.insert(504, b"efghij"), SegmentOutcome::TooLarge);
        assert_eq!(b.contiguous(), b"abcdefgh");
    }

    #[test]
    fn bytes_before_the_first_request_byte_are_ignored() {
        let mut b = RequestBuffer::new(100, 16);
        assert_eq!(b.insert(90, b"0123456789"), SegmentOutcome::Duplicate);
        assert_eq!(b.insert(97, b"XYZabc"), SegmentOutcome::Advanced);
        assert_eq!(b.contiguous(), b"abc");
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let mut b = RequestBuffer::new(u32::MAX - 2, 16);
        assert_eq!(b.insert(1, b"efg"), SegmentOutcome::OutOfOrder);
        assert_eq!(b.insert(u32::MAX - 2, b"abcd"), SegmentOutcome::Advanced);
        assert_eq!(b.contiguous(), b"abcdefg");
        assert_eq!(b.ack_point(), 4);
    }

    #[test]
    fn fin_is_acknowledged_once_every_byte_before_it_arrived() {
        let mut b = RequestBuffer::new(0, 32);
        assert_eq!(b.insert(4, b"efgh"), SegmentOutcome::OutOfOrder);
        assert_eq!(
            b.fin(6),
            SegmentOutcome::Conflict,
            "FIN before received bytes"
        );
        assert_eq!(b.fin(40), SegmentOutcome::TooLarge);
        assert_eq!(b.fin(8), SegmentOutcome::OutOfOrder);
        assert!(!b.fin_received());
        assert_eq!(b.fin(8), SegmentOutcome::Duplicate);
        assert_eq!(b.fin(9), SegmentOutcome::Conflict);
        assert_eq!(
            b.insert(6, b"ghZ"),
            SegmentOutcome::Conflict,
            "data past the FIN"
        );
        assert_eq!(b.insert(0, b"abcd"), SegmentOutcome::Advanced);
        assert!(b.fin_received());
        assert_eq!(b.ack_point(), 9);
    }

    #[test]
    fn consume_keeps_the_rest_at_its_sequence_numbers() {
        let mut b = RequestBuffer::new(10, 64);
        b.insert(10, b"GET /a HTTP/1.1\r\n\r\nGET /b");
        assert_eq!(b.insert(48, b"tail"), SegmentOutcome::OutOfOrder);
        b.consume(19);
        assert_eq!(b.start_seq(), 29);
        assert_eq!(b.contiguous(), b"GET /b");
        assert_eq!(b.ack_point(), 35);
        assert_eq!(b.insert(35, b" HTTP/1.1\r\n\r\n"), SegmentOutcome::Advanced);
        assert_eq!(b.insert(48, b"tail"), SegmentOutcome::Duplicate);
        assert_eq!(b.contiguous(), b"GET /b HTTP/1.1\r\n\r\ntail");
        assert_eq!(b.ack_point(), 52);
    }
}
