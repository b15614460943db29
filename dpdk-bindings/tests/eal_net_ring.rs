//! EAL test (one per process): a `net_ring` vdev is a loopback port, so
//! frames sent on TX queue 0 come back on RX queue 0 unchanged.

mod common;

use dpdk_bindings::{DpdkError, Eal, EthPort, Mbuf, Mempool, PortConfig, PortStats};

/// Capacity of the ring behind a `net_ring` queue (DPDK creates it with 1024
/// slots, one of which stays empty).
const NET_RING_DEPTH: usize = 1023;

#[test]
fn net_ring_loopback_round_trip() {
    let guard = common::PrefixGuard::new("ring-loop");
    let eal = Eal::init(&guard.eal_args(&["net_ring0"])).expect("EAL init");
    assert_eq!(
        Eal::init(&guard.eal_args(&[])).map(|_| ()),
        Err(DpdkError::AlreadyInitialised)
    );
    assert_eq!(eal.lcore_count(), 1);
    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(dpdk_bindings::lcore_id(), Some(0));
    assert_eq!(dpdk_bindings::socket_id(), Some(0));

    assert_eq!(EthPort::count_avail(), 1);
    assert_eq!(EthPort::by_name("net_ring0"), Ok(0));
    let missing = EthPort::by_name("net_ring7").expect_err("no such vdev");
    assert_eq!(missing.code(), Some(-19));
    assert_eq!(
        missing.to_string(),
        "rte_eth_dev_get_port_by_name(\"net_ring7\"): No such device (-19)"
    );

    let pool = Mempool::new("loop_pool", 2047, 32, None).expect("pool");
    assert_eq!(
        (pool.name(), pool.capacity(), pool.in_use()),
        ("loop_pool", 2047, 0)
    );
    let config = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 256,
        tx_desc: 256,
        rss: true,
    };
    let mut port = EthPort::configure(0, config, &pool).expect("configure net_ring0");
    // net_ring advertises no RSS hash functions, so RSS stays off.
    assert!(!port.rss_enabled());
    assert_eq!(
        EthPort::configure(0, config, &pool).map(|_| ()),
        Err(DpdkError::PortInUse { port: 0 })
    );
    assert_eq!(
        EthPort::configure(5, config, &pool)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err(Some(-19))
    );
    port.start().expect("start");
    assert_eq!(
        port.link().expect("link"),
        dpdk_bindings::LinkStatus {
            up: true,
            speed_mbps: 10_000
        }
    );
    assert_eq!(port.mac_addr().expect("mac"), [0; 6]);
    port.promiscuous(true).expect("promiscuous");

    // 32 frames of distinct lengths and payloads.
    let frames: Vec<Vec<u8>> = (0..32u8)
        .map(|i| common::frame(i, 60 + usize::from(i)))
        .collect();
    let mut tx: Vec<Mbuf<'_>> = Vec::with_capacity(32);
    for f in &frames {
        let mut m = pool.alloc().expect("mbuf");
        m.append(f.len()).expect("tailroom").copy_from_slice(f);
        tx.push(m);
    }
    assert_eq!(pool.in_use(), 32);
    assert_eq!(port.tx_burst(0, &mut tx), 32);
    assert!(tx.is_empty());

    let mut rx: Vec<Mbuf<'_>> = Vec::with_capacity(64);
    assert_eq!(port.rx_burst(0, &mut rx), 32);
    assert_eq!(port.rx_burst(0, &mut rx), 0, "nothing more queued");
    let received: Vec<&[u8]> = rx.iter().map(Mbuf::data).collect();
    let expected: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    assert_eq!(received, expected);
    assert!(rx
        .iter()
        .all(|m| m.is_contiguous() && m.pkt_len() == m.len()));
    // Non-existent queue indices are refused without touching the PMD.
    assert_eq!(port.rx_burst(1, &mut rx), 0);
    assert_eq!(port.tx_burst(1, &mut rx), 0);
    assert_eq!(rx.len(), 32);

    // Rewrite in place and send the same buffers again (no allocation).
    for m in &mut rx {
        m.data_mut()[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    }
    assert_eq!(port.tx_burst(0, &mut rx), 32);
    let mut back = Vec::with_capacity(32);
    assert_eq!(port.rx_burst(0, &mut back), 32);
    for (m, f) in back.iter().zip(&frames) {
        assert_eq!(&m.data()[..6], &[0x02, 0, 0, 0, 0, 0x01]);
        assert_eq!(&m.data()[6..], &f[6..]);
    }
    // A full Vec has no spare capacity: nothing is received.
    let mut full = Vec::new();
    assert_eq!(port.rx_burst(0, &mut full), 0);
    drop((back, rx, full, tx));
    assert_eq!(pool.in_use(), 0);

    // net_ring counts packets only (no bytes).
    assert_eq!(
        port.stats().expect("stats"),
        PortStats {
            ipackets: 64,
            opackets: 64,
            ..PortStats::default()
        }
    );
    let xstats = port.xstats().expect("xstats");
    assert!(
        xstats.contains(&("rx_good_packets".to_owned(), 64)),
        "{xstats:?}"
    );
    assert!(
        xstats.contains(&("tx_good_packets".to_owned(), 64)),
        "{xstats:?}"
    );
    assert!(
        xstats.contains(&("rx_q0_packets".to_owned(), 64)),
        "{xstats:?}"
    );
    port.reset_stats().expect("reset");
    assert_eq!(port.stats().expect("stats"), PortStats::default());

    // More than the ring holds: the unsent rest stays in the Vec, in order.
    let mut many: Vec<Mbuf<'_>> = Vec::with_capacity(1100);
    for i in 0..1100u32 {
        let mut m = pool.alloc().expect("mbuf");
        m.append(4)
            .expect("tailroom")
            .copy_from_slice(&i.to_be_bytes());
        many.push(m);
    }
    assert_eq!(port.tx_burst(0, &mut many), NET_RING_DEPTH);
    assert_eq!(many.len(), 1100 - NET_RING_DEPTH);
    assert_eq!(many[0].data(), &1023u32.to_be_bytes());
    drop(many);

    // Worker-style access through a claimed queue.
    {
        let mut q = port.queue(0).expect("claim queue 0");
        assert_eq!((q.index(), q.port_id()), (0, 0));
        assert_eq!(
            port.queue(0).map(|_| ()),
            Err(DpdkError::QueueInUse { port: 0, queue: 0 })
        );
        assert!(matches!(
            port.queue(1),
            Err(DpdkError::InvalidArgument { .. })
        ));
        let mut out = Vec::with_capacity(NET_RING_DEPTH);
        assert_eq!(q.rx_burst(&mut out), NET_RING_DEPTH);
        for (i, m) in out.iter().enumerate() {
            assert_eq!(m.data(), &(i as u32).to_be_bytes());
        }
        out.truncate(8);
        assert_eq!(q.tx_burst(&mut out), 8);
        assert_eq!(q.rx_burst(&mut out), 8);
        assert_eq!(out[7].data(), &7u32.to_be_bytes());
    }
    assert!(port.queue(0).is_ok(), "released on drop");
    assert_eq!(pool.in_use(), 0);
    assert_eq!(
        port.stats().expect("stats"),
        PortStats {
            ipackets: u64::try_from(NET_RING_DEPTH).expect("fits") + 8,
            opackets: u64::try_from(NET_RING_DEPTH).expect("fits") + 8,
            ..PortStats::default()
        }
    );

    port.stop().expect("stop");
    drop(port);
    drop(pool);
    assert_eq!(dpdk_bindings::eal::leaked_pools(), 0);
    drop(eal);
    drop(guard);
}
