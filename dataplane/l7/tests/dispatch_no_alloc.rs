//! The per-request path of L7 dispatch allocates nothing: reassembling the
//! request from segments, parsing its head and choosing a member under every
//! policy make zero calls to the global allocator once the buffer and the
//! dispatchers exist.
//!
//! The counts are the measuring thread's own (`shoal_alloc_count`): other
//! threads allocating meanwhile (libtest's, other tests') do not move them.

use shoal_alloc_count::{CountingAlloc, Region};
use shoal_config::{Dispatch, DispatchPolicy, DispatchRule};
use shoal_l7::dispatch::Dispatcher;
use shoal_l7::http::{buffered_head, parse_head};
use shoal_l7::reassembly::{RequestBuffer, SegmentOutcome};
use shoal_wire::time::Instant;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const REQUEST: &[u8] = b"GET /static/app.js?v=2 HTTP/1.1\r\n\
    Host: shop.test\r\n\
    Cookie: theme=dark; sid=4f2a9c\r\n\
    Accept: */*\r\n\
    \r\n";

#[test]
fn reassembly_parsing_and_choice_allocate_nothing() {
    let members = [(1, "srv1", 100), (2, "srv2", 100), (3, "srv3", 0)];
    let mut dispatchers: Vec<Dispatcher> = [
        DispatchPolicy::UrlHash,
        DispatchPolicy::LeastLoaded,
        DispatchPolicy::Lard,
        DispatchPolicy::Dtcp,
        DispatchPolicy::Cookie,
        DispatchPolicy::Rules,
    ]
    .into_iter()
    .map(|policy| Dispatch {
        policy,
        hot_paths: if policy == DispatchPolicy::UrlHash {
            vec!["/static/".to_owned()]
        } else {
            Vec::new()
        },
        cookie_name: (policy == DispatchPolicy::Cookie).then(|| "sid".to_owned()),
        rules: if policy == DispatchPolicy::Rules {
            vec![DispatchRule {
                host: Some("shop.test".to_owned()),
                prefix: "/static/".to_owned(),
                member: "srv2".to_owned(),
            }]
        } else {
            Vec::new()
        },
        ..Dispatch::default()
    })
    .map(|cfg| Dispatcher::new(&cfg, &members).expect("valid"))
    .collect();
    let mut buffer = RequestBuffer::new(7, 4096);
    let loads = [(1, 0.5), (2, 0.25), (3, 0.0)];

    let region = Region::new();
    // Three segments out of order, one retransmitted.
    let (a, rest) = REQUEST.split_at(20);
    let (b, c) = rest.split_at(30);
    let outcomes = [
        buffer.insert(7 + 50, c),
        buffer.insert(7, a),
        buffer.insert(7, a),
        buffer.insert(7 + 20, b),
    ];
    let head = buffered_head(&buffer).expect("valid").expect("complete");
    let direct = parse_head(REQUEST).expect("valid").expect("complete");
    let mut chosen = [0u16; 6];
    for round in 0..200u64 {
        for (d, slot) in dispatchers.iter_mut().zip(chosen.iter_mut()) {
            *slot = d.choose(&head, &loads, Instant::from_millis(round)).member;
        }
    }
    let stats = region.change();

    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
    assert_eq!(
        outcomes,
        [
            SegmentOutcome::OutOfOrder,
            SegmentOutcome::Advanced,
            SegmentOutcome::Duplicate,
            SegmentOutcome::Advanced
        ]
    );
    assert_eq!(head, direct);
    assert_eq!(head.path, "/static/app.js");
    assert_eq!(head.cookie("sid"), Some(&b"4f2a9c"[..]));
    // Least-loaded takes srv2 (srv3 has weight 0), dtcp placed the path
    // there and kept it; the rule names srv2.
    assert_eq!(chosen[1], 2);
    assert_eq!(chosen[3], 2);
    assert_eq!(chosen[5], 2);
    assert!(chosen.iter().all(|&m| m == 1 || m == 2), "{chosen:?}");
}
