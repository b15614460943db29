//! Targets `http_request` (request-head parser and segment reassembly) and
//! `response_framing` (the kernel's response stream, `ResponseFramer`,
//! `ChunkedDecoder`).
//!
//! Invariants beyond "no panic": the parser is a function of the bytes it
//! is given (the head it finds is found again in its own bytes, and not in
//! a proper prefix of them); the reassembly buffer delivers exactly the
//! stream the segments were cut from, whatever their order, overlaps and
//! duplicates, and the head read from it is the head of that stream; the
//! response framer and the chunked decoder reach the same result however
//! the stream is cut into feeds.

use arbitrary::{Arbitrary, Unstructured};

use shoal_l7::framing::{ChunkedDecoder, Expect, ResponseFramer, ResponseState, MAX_PENDING};
use shoal_l7::http::{buffered_head, parse_head, HttpError};
use shoal_l7::reassembly::{RequestBuffer, SegmentOutcome};

/// Target `http_request`.
pub fn request(data: &[u8]) {
    head(data);
    let mut u = Unstructured::new(data);
    let _ = reassembly(&mut u);
}

/// The parser alone, on the whole input.
fn head(data: &[u8]) {
    match parse_head(data) {
        Ok(Some(h)) => {
            assert!(h.head_len <= data.len());
            assert!(h.head_len > 0);
            let own = &data[..h.head_len];
            assert!(own.ends_with(b"\n"), "a head ends with its empty line");
            // The head is found again in exactly its own bytes ...
            assert_eq!(parse_head(own), Ok(Some(h)));
            // ... and not in fewer: one byte less is not a complete head.
            assert!(!matches!(parse_head(&own[..own.len() - 1]), Ok(Some(_))));
            let _ = (h.headers().count(), h.header("host"), h.cookie("id"));
            assert!(!h.path.is_empty());
        }
        Ok(None) => {
            // Incomplete: no prefix is complete either.
            for cut in [data.len() / 2, data.len().saturating_sub(1)] {
                assert!(!matches!(parse_head(&data[..cut]), Ok(Some(_))));
            }
        }
        Err(e) => {
            let status = e.status();
            assert!((400..600).contains(&status), "{e:?} -> {status}");
        }
    }
}

/// A stream cut into segments sent in any order, with duplicates and
/// overlaps, some corrupted: what the buffer holds is always a prefix of
/// the stream, and once every byte arrived (and nothing was refused) all of
/// it within the capacity.
fn reassembly(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let isn: u32 = u.arbitrary()?;
    let capacity = usize::from(u.int_in_range(1u16..=4096)?);
    let stream_len = u.int_in_range(0..=600usize)?;
    let stream = u.bytes(stream_len.min(u.len()))?.to_vec();
    let mut buf = RequestBuffer::new(isn, capacity);
    let mut covered = vec![false; stream.len()];
    let mut corrupted = false;
    let segments = u.int_in_range(0..=40u8)?;
    for _ in 0..segments {
        let start = u.int_in_range(0..=stream.len())?;
        let len = u.int_in_range(0..=stream.len() - start)?;
        let mut payload = stream[start..start + len].to_vec();
        if !payload.is_empty() && u.ratio(1, 16)? {
            let at = u.choose_index(payload.len())?;
            payload[at] ^= 0x20;
            corrupted = true;
        }
        let seq = isn.wrapping_add(start as u32);
        let outcome = buf.insert(seq, &payload);
        if !outcome.is_refused() && !corrupted {
            covered[start..start + len]
                .iter_mut()
                .for_each(|c| *c = true);
        }
        let held = buf.contiguous();
        assert!(held.len() <= capacity);
        if !corrupted {
            assert_eq!(held, &stream[..held.len()], "held bytes are the stream's");
        }
        assert_eq!(
            buf.ack_point(),
            isn.wrapping_add(held.len() as u32),
            "{outcome:?}"
        );
        if outcome == SegmentOutcome::Advanced {
            assert!(!held.is_empty());
        }
    }
    if !corrupted {
        let prefix = covered.iter().take_while(|c| **c).count().min(capacity);
        assert_eq!(
            buf.contiguous().len(),
            prefix,
            "the buffer holds exactly the in-order bytes that arrived"
        );
        // What the splice path reads from the buffer is the stream's head.
        match (buffered_head(&buf), parse_head(buf.contiguous())) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(HttpError::HeadersTooLarge), Ok(None)) => assert!(buf.is_full()),
            (Err(a), Err(b)) => assert_eq!(a, b),
            (a, b) => panic!("buffered_head {a:?} but parse_head {b:?}"),
        }
    }
    // A FIN anywhere never breaks the buffer.
    let fin_at = u.int_in_range(0..=stream.len())?;
    let _ = buf.fin(isn.wrapping_add(fin_at as u32));
    let _ = buffered_head(&buf);
    let consume = u.int_in_range(0..=buf.contiguous().len())?;
    let before = buf.contiguous()[consume..].to_vec();
    buf.consume(consume);
    assert_eq!(buf.contiguous(), &before[..]);
    Ok(())
}

/// One response stream of the fuzz input: what the requests expect, the
/// bytes, and where the feeds cut them.
#[derive(Debug, Arbitrary)]
struct Responses<'a> {
    expects: Vec<u8>,
    max_head: u16,
    cuts: Vec<u16>,
    stream: &'a [u8],
}

/// Target `response_framing`.
pub fn framing(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(r) = Responses::arbitrary(&mut u) else {
        return;
    };
    let max_head = usize::from(r.max_head % 8192) + 1;
    let expects: Vec<Expect> = r
        .expects
        .iter()
        .take(MAX_PENDING + 2)
        .map(|e| match e % 3 {
            0 => Expect::Normal,
            1 => Expect::Head,
            _ => Expect::Connect,
        })
        .collect();
    let whole = feed_framer(max_head, &expects, r.stream, &[]);
    let cut = feed_framer(max_head, &expects, r.stream, &r.cuts);
    assert_eq!(whole, cut, "the framing depends on how the stream is cut");
    let (completed, pending, _) = whole;
    let accepted = expects.len().min(MAX_PENDING) as u64;
    assert!(completed <= accepted);
    assert!(pending as u64 <= accepted);

    let whole = feed_chunked(r.stream, &[]);
    let cut = feed_chunked(r.stream, &r.cuts);
    assert_eq!(
        whole, cut,
        "chunked decoding depends on how the body is cut"
    );
    if let Some(Ok(end)) = whole {
        assert!(end <= r.stream.len());
    }
}

/// Feeds `stream` to a new framer in pieces cut at `cuts` (offsets, taken
/// modulo the length): (completed, pending, state).
fn feed_framer(
    max_head: usize,
    expects: &[Expect],
    stream: &[u8],
    cuts: &[u16],
) -> (u64, usize, ResponseState) {
    let mut f = ResponseFramer::new(max_head);
    let accepted: usize = expects.iter().map(|e| usize::from(f.expect(*e))).sum();
    assert_eq!(accepted, expects.len().min(MAX_PENDING));
    let mut done = 0u64;
    for piece in pieces(stream, cuts) {
        let before = f.completed();
        let n = f.feed(piece) as u64;
        assert_eq!(f.completed(), before + n);
        done += n;
    }
    assert_eq!(f.completed(), done);
    (f.completed(), f.pending(), f.state())
}

/// The end of a chunked body in `stream` fed in pieces: `None` while more
/// is needed, `Some(Ok(offset past the end))`, or `Some(Err(()))` when
/// malformed.
fn feed_chunked(stream: &[u8], cuts: &[u16]) -> Option<Result<usize, ()>> {
    let mut d = ChunkedDecoder::new();
    let mut offset = 0;
    for piece in pieces(stream, cuts) {
        match d.feed(piece) {
            Ok(Some(n)) => {
                assert!(n <= piece.len());
                assert!(d.is_done());
                return Some(Ok(offset + n));
            }
            Ok(None) => offset += piece.len(),
            Err(_) => return Some(Err(())),
        }
    }
    None
}

/// `stream` cut at the sorted, deduplicated offsets `cuts` (modulo its length).
fn pieces<'a>(stream: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    if stream.is_empty() {
        return vec![stream];
    }
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| usize::from(*c) % stream.len())
        .collect();
    at.push(0);
    at.push(stream.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &stream[w[0]..w[1]]).collect()
}
