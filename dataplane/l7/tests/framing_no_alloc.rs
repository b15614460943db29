//! Following response boundaries allocates nothing after
//! `ResponseFramer::new`: 10k pipelined responses (Content-Length, chunked
//! with extensions and trailers, HEAD, 204, interim 100) fed in uneven
//! pieces, heads split across feeds included, make zero calls to the global
//! allocator; so does a chunked request body through `ChunkedDecoder`.
//!
//! The counts are the measuring thread's own (`shoal_alloc_count`): other
//! threads allocating meanwhile (libtest's, other tests') do not move them.

use shoal_alloc_count::{CountingAlloc, Region};
use shoal_l7::framing::{ChunkedDecoder, Expect, ResponseFramer, ResponseState};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Four responses: to a GET (Content-Length), a GET (100 then chunked), a
/// HEAD and a DELETE (204).
const ROUND: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 100 Continue\r\n\r\n\
HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n\
HTTP/1.1 204 No Content\r\n\r\n";

const EXPECTS: [Expect; 4] = [Expect::Normal, Expect::Normal, Expect::Head, Expect::Normal];

#[test]
fn framing_allocates_nothing() {
    let mut f = ResponseFramer::new(8192);
    let body = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";

    let region = Region::new();
    let mut completed = 0;
    let mut ended = 0;
    for i in 0..2_500usize {
        for e in EXPECTS {
            assert!(f.expect(e));
        }
        // Uneven pieces: heads and chunk lines split at varying places.
        let cut = 1 + i % (ROUND.len() - 1);
        completed += f.feed(&ROUND[..cut]);
        completed += f.feed(&ROUND[cut..]);
        let mut d = ChunkedDecoder::new();
        let cut = i % body.len();
        if d.feed(&body[..cut]) == Ok(None) && d.feed(&body[cut..]) == Ok(Some(body.len() - cut)) {
            ended += 1;
        }
    }
    let stats = region.change();

    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
    assert_eq!(completed, 10_000);
    assert_eq!(ended, 2_500);
    assert_eq!(f.completed(), 10_000);
    assert_eq!(f.state(), ResponseState::Idle);
}
