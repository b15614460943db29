//! EAL test (one per process): SP/SC rings of mbufs keep order and bytes,
//! partial enqueues leave the rest with the caller, the halves work across
//! threads, and buffers left in a ring return to the pool when it is
//! dropped. Also the in-place mbuf operations (append, prepend, adj, trim).

mod common;

use dpdk_bindings::{Eal, Mbuf, Mempool, Ring};

#[test]
fn ring_of_mbufs_and_mbuf_ops() {
    let guard = common::PrefixGuard::new("ring");
    let eal = Eal::init(&guard.eal_args(&[])).expect("EAL init");
    let pool = Mempool::new("ring_pool", 1023, 0, None).expect("pool");

    mbuf_ops(&pool);

    let mut ring: Ring<'_> = Ring::new("handoff0", 64, None).expect("ring");
    assert_eq!(
        (ring.name(), ring.capacity(), ring.count()),
        ("handoff0", 64, 0)
    );
    assert_eq!(
        Ring::new("handoff0", 64, None)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err(Some(-17)),
        "duplicate name: EEXIST"
    );

    // 100 buffers into a 64-slot ring: 64 go in, 36 stay with the caller.
    let mut batch: Vec<Mbuf<'_>> = (0..100u8).map(|i| filled(&pool, i)).collect();
    assert_eq!(ring.enqueue_burst(&mut batch), 64);
    assert_eq!(ring.count(), 64);
    assert_eq!(batch.len(), 36);
    assert_eq!(batch[0].data(), common::frame(64, 128).as_slice());

    let mut out = Vec::with_capacity(16);
    assert_eq!(
        ring.dequeue_burst(&mut out),
        16,
        "bounded by spare capacity"
    );
    assert_eq!(ring.count(), 48);
    for (i, m) in out.iter().enumerate() {
        assert_eq!(m.data(), common::frame(i as u8, 64 + i).as_slice());
    }
    out.clear();
    assert_eq!(ring.enqueue_burst(&mut batch), 16);
    assert_eq!(batch.len(), 20);
    out.reserve(64);
    assert_eq!(ring.dequeue_burst(&mut out), 64);
    for (i, m) in out.iter().enumerate() {
        let seq = i + 16;
        assert_eq!(m.data(), common::frame(seq as u8, 64 + seq).as_slice());
    }
    assert_eq!(ring.dequeue_burst(&mut out), 0, "empty");
    drop((out, batch));
    assert_eq!(pool.in_use(), 0);

    // Producer and consumer halves on two threads.
    let (mut producer, mut consumer) = ring.split();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut next = 0u8;
            while next < 200 {
                let mut burst: Vec<Mbuf<'_>> = Vec::with_capacity(8);
                for _ in 0..8 {
                    burst.push(filled(&pool, next));
                    next += 1;
                }
                while !burst.is_empty() {
                    producer.enqueue_burst(&mut burst);
                    std::thread::yield_now();
                }
            }
        });
        let mut seen = 0usize;
        let mut got = Vec::with_capacity(32);
        while seen < 200 {
            got.clear();
            if consumer.dequeue_burst(&mut got) == 0 {
                std::thread::yield_now();
            }
            for m in &got {
                assert_eq!(m.data(), common::frame(seen as u8, 64 + seen).as_slice());
                seen += 1;
            }
        }
    });
    assert_eq!(consumer.count(), 0);
    assert_eq!(pool.in_use(), 0);

    // Buffers still queued when the ring goes away are freed with it.
    let mut batch: Vec<Mbuf<'_>> = (0..10u8).map(|i| filled(&pool, i)).collect();
    assert_eq!(producer.enqueue_burst(&mut batch), 10);
    assert_eq!((producer.count(), pool.in_use()), (10, 10));
    drop((producer, consumer, batch));
    assert_eq!(pool.in_use(), 0);

    drop(pool);
    assert_eq!(dpdk_bindings::eal::leaked_pools(), 0);
    drop(eal);
    drop(guard);
}

/// A buffer holding `common::frame(seq, 64 + seq)`.
fn filled(pool: &Mempool, seq: u8) -> Mbuf<'_> {
    let f = common::frame(seq, 64 + usize::from(seq));
    let mut m = pool.alloc().expect("mbuf");
    m.append(f.len()).expect("tailroom").copy_from_slice(&f);
    m
}

/// append / prepend / adj / trim and the room they leave.
fn mbuf_ops(pool: &Mempool) {
    let mut m = pool.alloc().expect("mbuf");
    assert_eq!((m.len(), m.headroom(), m.tailroom()), (0, 128, 2048));
    assert!(m.is_empty() && m.is_contiguous());
    m.append(4).expect("tailroom").copy_from_slice(b"data");
    m.prepend(3).expect("headroom").copy_from_slice(b"hdr");
    assert_eq!(m.data(), b"hdrdata");
    assert_eq!(
        (m.len(), m.pkt_len(), m.headroom(), m.tailroom()),
        (7, 7, 125, 2044)
    );
    assert!(m.append(2045).is_none(), "no tailroom");
    assert!(m.prepend(126).is_none(), "no headroom");
    assert!(m.append(70_000).is_none(), "more than a u16");
    assert_eq!(m.data(), b"hdrdata", "failed calls change nothing");
    assert!(m.adj(3));
    assert_eq!(m.data(), b"data");
    assert!(m.trim(2));
    assert_eq!(m.data(), b"da");
    assert!(!m.adj(3) && !m.trim(3), "longer than the data");
    m.data_mut().copy_from_slice(b"ok");
    assert_eq!(
        (m.data(), m.headroom(), m.tailroom()),
        (&b"ok"[..], 128, 2046)
    );
    assert_eq!(
        format!("{m:?}"),
        "Mbuf { len: 2, pkt_len: 2, segments: 1, headroom: 128, .. }"
    );
    assert_eq!(pool.in_use(), 1);
    drop(m);
    assert_eq!(pool.in_use(), 0);
}
