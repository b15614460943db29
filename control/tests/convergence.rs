//! Epoch convergence of several in-process members exchanging real signed
//! datagrams over loopback UDP (127.0.0.1, one port each), driven by a
//! simulated clock: every step of one interval, each running member
//! announces to the others, each reads exactly the datagrams sent to it,
//! then each runs its cleaner/epoch tick. No sleeps, no wall-clock timing.
//!
//! Property checked (membership.rs, "Epochs"): after a change (start, a
//! member stopping, a member restarting, a drain), all live members hold
//! the same (epoch number, table digest) within `failure_timeout_ms +
//! 2 x interval_ms`, and the table is the expected one.

// Test helpers outside #[test] functions: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod fixture;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use fixture::{at, infos};
use shoal_control::membership::{Membership, TableEntry, Timing};
use shoal_key::ClusterKey;

const INTERVAL: u64 = 200;
const TIMEOUT: u64 = 1000;
const BOUND: u64 = TIMEOUT + 2 * INTERVAL;

struct Node {
    m: Membership,
    sock: UdpSocket,
    addr: SocketAddr,
}

struct Sim {
    n: u16,
    nodes: Vec<Option<Node>>,
    t: u64,
}

impl Sim {
    fn new(n: u16) -> Sim {
        let mut sim = Sim {
            n,
            nodes: (0..n).map(|_| None).collect(),
            t: 0,
        };
        for id in 1..=n {
            sim.start(id, 1000 + u64::from(id));
        }
        sim
    }

    fn start(&mut self, id: u16, incarnation: u64) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let addr = sock.local_addr().unwrap();
        let timing = Timing {
            interval_ms: INTERVAL,
            failure_timeout_ms: TIMEOUT,
        };
        let key = ClusterKey::from_bytes(&[0x5a; 32]).unwrap();
        let m = Membership::new(id, infos(self.n), timing, key, incarnation, at(self.t));
        self.nodes[usize::from(id - 1)] = Some(Node { m, sock, addr });
    }

    fn stop(&mut self, id: u16) {
        self.nodes[usize::from(id - 1)] = None;
    }

    fn node(&mut self, id: u16) -> &mut Membership {
        &mut self.nodes[usize::from(id - 1)].as_mut().unwrap().m
    }

    /// One interval: announce, deliver, tick; then advance the clock.
    fn step(&mut self) {
        let now = at(self.t);
        let addrs: Vec<Option<SocketAddr>> = self
            .nodes
            .iter()
            .map(|n| n.as_ref().map(|n| n.addr))
            .collect();
        let mut expected = vec![0usize; self.nodes.len()];
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let Some(node) = node else { continue };
            let datagram = node.m.announce_signed(now);
            for (j, addr) in addrs.iter().enumerate() {
                if let (true, Some(addr)) = (i != j, addr) {
                    node.sock.send_to(&datagram, addr).unwrap();
                    expected[j] += 1;
                }
            }
        }
        let mut buf = [0u8; 2048];
        for (j, node) in self.nodes.iter_mut().enumerate() {
            let Some(node) = node else { continue };
            for _ in 0..expected[j] {
                let (len, _) = node.sock.recv_from(&mut buf).unwrap();
                node.m.receive(&buf[..len], now).unwrap();
            }
        }
        for node in self.nodes.iter_mut().flatten() {
            node.m.tick(now);
        }
        self.t += INTERVAL;
    }

    /// Whether every running member holds the same (number, digest) and the
    /// table says exactly `alive` are alive (and `draining` are drained).
    fn agreed(&self, alive: &[u16], draining: &[u16]) -> bool {
        let want: Vec<TableEntry> = (1..=self.n)
            .map(|id| TableEntry {
                id,
                alive: alive.contains(&id),
                weight: 100,
                draining: draining.contains(&id),
            })
            .collect();
        let epochs: Vec<_> = self.nodes.iter().flatten().map(|n| n.m.epoch()).collect();
        epochs.iter().all(|e| {
            e.number > 0
                && e.number == epochs[0].number
                && e.digest == epochs[0].digest
                && e.table == want
        })
    }

    /// Steps until agreement; returns the simulated time it took.
    fn converge(&mut self, alive: &[u16], draining: &[u16]) -> u64 {
        let start = self.t;
        for _ in 0..50 {
            if self.agreed(alive, draining) {
                // The last tick ran one interval before the clock now.
                let took = (self.t - start).saturating_sub(INTERVAL);
                // Stable: one more interval changes nothing.
                let before: Vec<_> = self
                    .nodes
                    .iter()
                    .flatten()
                    .map(|n| n.m.epoch().clone())
                    .collect();
                self.step();
                let after: Vec<_> = self
                    .nodes
                    .iter()
                    .flatten()
                    .map(|n| n.m.epoch().clone())
                    .collect();
                assert_eq!(before, after, "agreement was not stable");
                assert!(self.nodes.iter().flatten().all(|n| n.m.converged()));
                println!("agreed on alive {alive:?} draining {draining:?} after {took} ms");
                return took;
            }
            self.step();
        }
        panic!("no agreement on alive {alive:?} within 50 intervals");
    }
}

#[test]
fn members_converge_on_start_failure_restart_and_drain() {
    let mut sim = Sim::new(4);
    // Start: everyone settles after the failure timeout, then agrees.
    let took = sim.converge(&[1, 2, 3, 4], &[]);
    assert!(took <= BOUND, "start took {took} ms");
    let e_start = sim.node(1).epoch().number;

    // Member 3 stops (crash: no leaving message).
    sim.stop(3);
    let took = sim.converge(&[1, 2, 4], &[]);
    assert!(took <= BOUND, "failure took {took} ms");
    let e_fail = sim.node(1).epoch().number;
    assert!(e_fail > e_start);

    // Member 3 restarts with a new incarnation: rejoins cleanly.
    sim.start(3, 9_000);
    let took = sim.converge(&[1, 2, 3, 4], &[]);
    assert!(took <= BOUND, "restart took {took} ms");
    assert!(sim.node(3).epoch().number > e_fail);

    // A drain made on member 1 about member 4 reaches everyone.
    sim.node(1).set_setting(4, None, Some(true)).unwrap();
    let took = sim.converge(&[1, 2, 3, 4], &[4]);
    assert!(took <= 2 * INTERVAL, "drain took {took} ms");

    // Member 2 shuts down gracefully: removed without waiting for the timeout.
    let now = at(sim.t);
    let leave = sim.node(2).leave_signed(now);
    for id in [1, 3, 4] {
        sim.node(id).receive(&leave, now).unwrap();
    }
    sim.stop(2);
    let took = sim.converge(&[1, 3, 4], &[4]);
    assert!(took <= 2 * INTERVAL, "leave took {took} ms");
}

#[test]
fn a_lone_member_settles_at_once() {
    let mut sim = Sim::new(1);
    let took = sim.converge(&[1], &[]);
    assert_eq!(took, 0);
    assert_eq!(sim.node(1).epoch().number, 1);
}
