//! EAL test (one per process): a `net_null` vdev swallows every TX packet
//! and makes up 64-byte RX packets from the port's pool; plus pool
//! exhaustion and recovery.

mod common;

use dpdk_bindings::{Eal, EthPort, Mbuf, Mempool, PortConfig};

/// Bursts sent through the null port.
const BURSTS: u64 = 1000;
/// Packets per burst.
const BURST: usize = 32;

#[test]
fn net_null_counts_and_pool_exhaustion() {
    let guard = common::PrefixGuard::new("null");
    let eal = Eal::init(&guard.eal_args(&["net_null0"])).expect("EAL init");
    assert_eq!(EthPort::by_name("net_null0"), Ok(0));

    // TX buffers come from a big pool; the port's RX queue allocates from a
    // small pool without per-lcore cache, so exhaustion is exact.
    let pool = Mempool::new("null_tx", 4095, 32, None).expect("pool");
    let small = Mempool::new("null_rx", 63, 0, None).expect("small pool");
    let config = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 512,
        tx_desc: 512,
        rss: true,
    };
    let mut port = EthPort::configure(0, config, &small).expect("configure net_null0");
    // net_null advertises RSS hash functions (and a 40-byte key): the
    // symmetric key is accepted.
    assert!(port.rss_enabled());
    port.start().expect("start");
    assert!(port.link().expect("link").up);

    let mut tx: Vec<Mbuf<'_>> = Vec::with_capacity(BURST);
    for _ in 0..BURSTS {
        assert!(pool.alloc_bulk(&mut tx, BURST));
        for m in &mut tx {
            m.append(60).expect("tailroom").fill(0xab);
        }
        assert_eq!(port.tx_burst(0, &mut tx), BURST);
        assert!(tx.is_empty());
    }
    assert_eq!(pool.in_use(), 0, "net_null frees what it sends");
    let sent = BURSTS * BURST as u64;
    drop(tx);

    // RX: 32 made-up 64-byte packets per burst, from the small pool.
    // The burst size is the Vec's spare capacity.
    let mut held: Vec<Mbuf<'_>> = Vec::with_capacity(BURST);
    assert_eq!(port.rx_burst(0, &mut held), 32);
    assert!(held.iter().all(|m| m.len() == 64 && m.is_contiguous()));
    assert_eq!((small.available(), small.in_use()), (31, 32));
    // 31 left: net_null allocates a whole burst or nothing.
    let mut more: Vec<Mbuf<'_>> = Vec::with_capacity(BURST);
    assert_eq!(port.rx_burst(0, &mut more), 0);
    while held.len() < 63 {
        held.push(small.alloc().expect("mbuf"));
    }
    assert!(small.alloc().is_none(), "pool exhausted");
    assert_eq!((small.available(), small.in_use()), (0, 63));
    let mut bulk = Vec::new();
    assert!(!small.alloc_bulk(&mut bulk, 5));
    assert!(bulk.is_empty(), "all or nothing");
    held.truncate(53);
    assert_eq!((small.available(), small.in_use()), (10, 53));
    for _ in 0..10 {
        held.push(small.alloc().expect("recovered"));
    }
    assert!(small.alloc().is_none());
    held.clear();
    assert_eq!((small.available(), small.in_use()), (63, 0));
    assert!(small.alloc_bulk(&mut bulk, 63));
    assert_eq!(bulk.len(), 63);
    assert!(bulk.iter().all(|m| m.is_empty() && m.headroom() == 128));
    drop(bulk);
    assert_eq!(port.rx_burst(0, &mut more), 32, "RX recovers after frees");
    drop((held, more));

    let stats = port.stats().expect("stats");
    assert_eq!(
        (stats.opackets, stats.ipackets, stats.oerrors, stats.ierrors),
        (sent, 64, 0, 0)
    );
    port.stop().expect("stop");
    drop(port);
    assert_eq!((pool.in_use(), small.in_use()), (0, 0));

    drop(small);
    drop(pool);
    assert_eq!(dpdk_bindings::eal::leaked_pools(), 0);
    drop(eal);
    drop(guard);
}
