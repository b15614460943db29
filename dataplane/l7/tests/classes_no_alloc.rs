//! The per-request path of request classes allocates nothing: classifying a
//! head (regex included, once its cache is warm), admitting it and queueing,
//! releasing, finishing and expiring requests under every scheduling policy
//! make zero calls to the global allocator while queues stay within the
//! capacity they were built with.
//!
//! The counts are the measuring thread's own (`shoal_alloc_count`).

use shoal_alloc_count::{CountingAlloc, Region};
use shoal_config::{Dispatch, RequestClass, Scheduling, SchedulingPolicy};
use shoal_l7::classes::{Admission, ClassId, Classes, Figures, Scheduler};
use shoal_l7::http::parse_head;
use shoal_wire::time::Instant;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const REQUESTS: [&[u8]; 3] = [
    b"GET /api/v2/items?x=1 HTTP/1.1\r\nHost: shop.test\r\n\r\n",
    b"GET /downloads/big.iso HTTP/1.1\r\nHost: shop.test\r\nCookie: sid=1\r\n\r\n",
    b"POST /form HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 0\r\n\r\n",
];

#[test]
fn classify_admit_and_schedule_allocate_nothing() {
    let mut api = RequestClass::catch_all("api");
    api.path_regex = Some(r"^/api/v[0-9]+/".into());
    api.max_rate = Some(1000.0);
    api.weight = 3;
    let mut bulk = RequestClass::catch_all("bulk");
    bulk.path_prefix = Some("/downloads/".into());
    bulk.cookie = Some("sid".into());
    bulk.max_in_flight = Some(1000);
    bulk.max_queue = 32;
    bulk.max_wait_ms = 50;
    let classes = Classes::new(&Dispatch {
        classes: vec![api, bulk],
        ..Dispatch::default()
    })
    .expect("classes");
    let heads: Vec<_> = REQUESTS
        .iter()
        .map(|r| parse_head(r).expect("valid").expect("complete"))
        .collect();
    let mut admission = Admission::new(&classes, Instant::ZERO);
    let mut schedulers: Vec<Scheduler<u64>> = [
        SchedulingPolicy::Fifo,
        SchedulingPolicy::Priority,
        SchedulingPolicy::Fair,
        SchedulingPolicy::WeightedFair,
    ]
    .into_iter()
    .map(|policy| {
        Scheduler::new(
            &classes,
            &Scheduling {
                policy,
                max_active: 2,
            },
        )
    })
    .collect();
    // Warm the regex engine's per-thread cache.
    let _ = classes.classify(&heads[0]);

    let region = Region::new();
    let mut seen = [0u32; 3];
    let (mut released, mut expired, mut refused) = (0u32, 0u32, 0u32);
    for round in 0..2_000u64 {
        let now = Instant::from_millis(round);
        let head = &heads[(round % 3) as usize];
        let class = classes.classify(head);
        seen[class.index()] += 1;
        let figures = Figures {
            member_load: 0.5,
            in_flight: schedulers[0].in_flight(class),
        };
        if admission.admit(class, &figures, now).is_err() {
            refused += 1;
            continue;
        }
        for s in &mut schedulers {
            if s.offer(class, round, now).is_err() {
                refused += 1;
            }
            s.expire(now, |_| expired += 1);
            if round % 2 == 0 {
                if let Some(r) = s.release(now) {
                    released += 1;
                    if round % 4 == 0 {
                        s.finish(r.class);
                    }
                }
            }
            s.finish(ClassId((round % 3) as u8));
        }
    }
    let stats = region.change();

    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
    assert_eq!(seen, [667, 667, 666], "api, bulk, default in turn");
    assert!(
        released > 1_000 && expired > 0,
        "{released} released, {expired} expired"
    );
    assert!(refused > 0, "full queues refused");
}
