//! EAL test (one per process): work launched on worker lcores with
//! `Eal::run_on_lcores`, each lcore owning one queue of a two-queue
//! `net_ring` loopback port (TX queue q comes back on RX queue q).

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use dpdk_bindings::{DpdkError, Eal, EalArgs, EthPort, Mempool, PortConfig};

#[test]
fn each_worker_lcore_runs_on_its_own_queue() {
    let guard = common::PrefixGuard::new("lcores");
    // Three lcores on whatever CPUs there are (this machine may have two):
    // lcore 2 shares CPU 1 with lcore 1.
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let map = format!("0@0,1@{},2@{}", 1 % cpus, 2 % cpus);
    let args = EalArgs::new()
        .extra(["--lcores".to_owned(), map])
        .no_huge(128)
        .no_pci()
        .file_prefix(guard.prefix.clone())
        .vdev("net_ring0")
        .build();
    let eal = Eal::init(&args).expect("EAL init");
    assert_eq!(eal.lcore_count(), 3);
    let pool = Mempool::new("lc_pool", 4095, 32, None).expect("pool");
    let config = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        ..PortConfig::default()
    };
    let mut port = EthPort::configure(EthPort::by_name("net_ring0").expect("port"), config, &pool)
        .expect("configure");
    port.start().expect("start");
    let queues: Vec<Mutex<Option<_>>> = (0..2)
        .map(|q| Mutex::new(Some(port.queue(q).expect("queue"))))
        .collect();
    let lcore_seen: Vec<AtomicU64> = (0..2).map(|_| AtomicU64::new(u64::MAX)).collect();
    let received: Vec<AtomicUsize> = (0..2).map(|_| AtomicUsize::new(0)).collect();
    let main_ran = eal
        .run_on_lcores(
            &[1, 2],
            |i| {
                lcore_seen[i].store(
                    u64::from(dpdk_bindings::lcore_id().expect("an EAL lcore")),
                    Ordering::Release,
                );
                let mut q = queues[i].lock().expect("lock").take().expect("queue");
                // 10 + i frames whose first byte names the queue.
                let mut tx: Vec<_> = (0..10 + i)
                    .map(|_| {
                        let mut m = pool.alloc().expect("mbuf");
                        m.append(64).expect("room").fill(i as u8);
                        m
                    })
                    .collect();
                assert_eq!(q.tx_burst(&mut tx), 10 + i);
                let mut rx = Vec::with_capacity(32);
                assert_eq!(q.rx_burst(&mut rx), 10 + i);
                assert!(rx.iter().all(|m| m.data()[0] == i as u8));
                received[i].store(rx.len(), Ordering::Release);
            },
            dpdk_bindings::lcore_id,
        )
        .expect("run");
    assert_eq!(main_ran, Some(0), "main closure on the main lcore");
    assert_eq!(lcore_seen[0].load(Ordering::Acquire), 1);
    assert_eq!(lcore_seen[1].load(Ordering::Acquire), 2);
    assert_eq!(received[0].load(Ordering::Acquire), 10);
    assert_eq!(received[1].load(Ordering::Acquire), 11);

    // The main lcore and lcores outside -l are refused, naming the lcore.
    let err = eal.run_on_lcores(&[0], |_| {}, || ()).expect_err("main");
    assert!(
        err.to_string().contains("lcore 0 is the main lcore"),
        "{err}"
    );
    let err = eal.run_on_lcores(&[5], |_| {}, || ()).expect_err("absent");
    assert!(err.to_string().contains("not enabled"), "{err}");
    // A panic on a worker lcore is an error, not an abort.
    let err = eal
        .run_on_lcores(&[1], |_| panic!("boom (expected by the test)"), || ())
        .expect_err("panic");
    assert_eq!(err, DpdkError::LcorePanicked { lcore: 1 });
    drop(queues);
    drop(port);
}
