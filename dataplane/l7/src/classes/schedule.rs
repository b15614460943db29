//! Scheduling at the serving member (seed 003 §7): per-class bounded queues
//! of requests waiting for the kernel, a cap on the requests active in it
//! (`scheduling.max_active`, and each class's own `max_active`), and the
//! policy that picks which waiting request goes next.
//!
//! - **fifo**: the request that arrived first, whatever its class.
//! - **priority**: the head of the waiting class with the lowest `priority`
//!   (arrival order among equal priorities). A class is never served while
//!   a class of lower `priority` number has a request it could release.
//! - **fair** and **weighted-fair**: start-time fair queueing (Goyal et al.,
//!   SIGCOMM '96) with every request costing `1 / weight` of its class
//!   (weight 1 for `fair`): a request's start tag is the later of the
//!   virtual time at its arrival and the finish tag of its class's previous
//!   request; the lowest start tag goes next and sets the virtual time. Over
//!   any stretch in which classes stay backlogged each gets releases in
//!   proportion to its weight, and a class that was idle does not bank
//!   credit for it.
//!
//! A class with `min_share` overrides the policy while it has a request
//! waiting and has had less than that share of recent releases (a decaying
//! count over about the last 256 releases): the class furthest below its
//! minimum goes first.
//!
//! A class that reached its own `max_active` is skipped until one of its
//! requests finishes. Queues are bounded (`max_queue`: an offer beyond it is
//! refused with [`Refusal::QueueFull`]) and so is waiting
//! ([`Scheduler::expire`] hands back what waited `max_wait_ms`, refused with
//! [`Refusal::WaitedTooLong`]). Every offered request ends exactly once:
//! refused at the offer, released, or expired.

use core::time::Duration;
use std::collections::VecDeque;

use shoal_config::{Scheduling, SchedulingPolicy};
use shoal_wire::time::Instant;

use super::{ClassId, Classes, Refusal};

/// Virtual cost of one request of weight 1 (SFQ tags are integers: a
/// request of weight w costs `COST / w`, exact for every weight up to 1000
/// that divides it and within 1/720720 otherwise).
const COST: u64 = 720_720 * 1000;

/// Decay of the served counts behind `min_share`: each release keeps
/// `1 - 1/DECAY` of them (a memory of about `DECAY` releases).
const DECAY: u64 = 256;

/// Fixed-point unit of the served counts.
const UNIT: u64 = 1 << 16;

/// Waiting requests a queue holds without growing: its whole `max_queue`
/// up to this many (about 40 bytes each with a 16-byte item: 40 KiB a
/// class); a longer queue grows, once, only if that many ever wait.
const PREALLOCATED: usize = 1024;

/// A request released into the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released<T> {
    /// Its class.
    pub class: ClassId,
    /// What the caller offered.
    pub item: T,
    /// How long it waited.
    pub waited: Duration,
}

#[derive(Debug, Clone)]
struct Waiting<T> {
    item: T,
    since: Instant,
    seq: u64,
    start: u64,
}

#[derive(Debug, Clone)]
struct Queue<T> {
    waiting: VecDeque<Waiting<T>>,
    bound: usize,
    max_wait: Duration,
    max_active: u32,
    active: u32,
    priority: u8,
    cost: u64,
    last_finish: u64,
    /// `min_share` (0 = none).
    min_share: f64,
    served: u64,
}

/// The scheduler of one service at one member.
#[derive(Debug, Clone)]
pub struct Scheduler<T> {
    policy: SchedulingPolicy,
    max_active: u32,
    active: u32,
    queues: Vec<Queue<T>>,
    seq: u64,
    vtime: u64,
    served_total: u64,
}

impl<T> Scheduler<T> {
    /// An empty scheduler for `classes` under `scheduling`.
    pub fn new(classes: &Classes, scheduling: &Scheduling) -> Scheduler<T> {
        let weighted = scheduling.policy == SchedulingPolicy::WeightedFair;
        Scheduler {
            policy: scheduling.policy,
            max_active: scheduling.max_active,
            active: 0,
            queues: classes
                .iter()
                .map(|(_, c)| {
                    let c = &c.config;
                    let bound = c.max_queue as usize;
                    Queue {
                        waiting: VecDeque::with_capacity(bound.min(PREALLOCATED)),
                        bound,
                        max_wait: Duration::from_millis(u64::from(c.max_wait_ms)),
                        max_active: c.max_active.unwrap_or(u32::MAX),
                        active: 0,
                        priority: c.priority,
                        cost: if weighted {
                            COST / u64::from(c.weight.max(1))
                        } else {
                            COST
                        },
                        last_finish: 0,
                        min_share: c.min_share.unwrap_or(0.0),
                        served: 0,
                    }
                })
                .collect(),
            seq: 0,
            vtime: 0,
            served_total: 0,
        }
    }

    /// Queues a request of `class` that arrived at `now`; refused (and
    /// given back) when the class's queue is full or the class is unknown.
    pub fn offer(&mut self, class: ClassId, item: T, now: Instant) -> Result<(), (T, Refusal)> {
        let Some(q) = self.queues.get_mut(class.index()) else {
            return Err((item, Refusal::QueueFull));
        };
        if q.waiting.len() >= q.bound {
            return Err((item, Refusal::QueueFull));
        }
        let start = self.vtime.max(q.last_finish);
        q.last_finish = start.saturating_add(q.cost);
        q.waiting.push_back(Waiting {
            item,
            since: now,
            seq: self.seq,
            start,
        });
        self.seq += 1;
        Ok(())
    }

    /// The next request to go into the kernel, if a slot is free and some
    /// class may release one. The caller calls [`Scheduler::expire`] first
    /// so that nothing that waited too long is released.
    pub fn release(&mut self, now: Instant) -> Option<Released<T>> {
        if self.active >= self.max_active {
            return None;
        }
        let pick = self.below_min_share().or_else(|| self.by_policy())?;
        let q = &mut self.queues[pick];
        let w = q.waiting.pop_front()?;
        q.active += 1;
        self.active += 1;
        if matches!(
            self.policy,
            SchedulingPolicy::Fair | SchedulingPolicy::WeightedFair
        ) {
            self.vtime = self.vtime.max(w.start);
        }
        self.served_total = self.served_total - self.served_total / DECAY + UNIT;
        for (i, q) in self.queues.iter_mut().enumerate() {
            q.served = q.served - q.served / DECAY + if i == pick { UNIT } else { 0 };
        }
        Some(Released {
            class: ClassId(pick as u8),
            item: w.item,
            waited: now.saturating_since(w.since),
        })
    }

    /// A released request of `class` is complete (its response sent, or
    /// the connection gone): its slot is free.
    pub fn finish(&mut self, class: ClassId) {
        if let Some(q) = self.queues.get_mut(class.index()) {
            if q.active > 0 {
                q.active -= 1;
                self.active = self.active.saturating_sub(1);
            }
        }
    }

    /// Hands every request that has waited its class's `max_wait` (or more)
    /// at `now` to `refused`, oldest first within each class.
    pub fn expire(&mut self, now: Instant, mut refused: impl FnMut(Released<T>)) {
        for (i, q) in self.queues.iter_mut().enumerate() {
            while q
                .waiting
                .front()
                .is_some_and(|w| now.saturating_since(w.since) >= q.max_wait)
            {
                if let Some(w) = q.waiting.pop_front() {
                    refused(Released {
                        class: ClassId(i as u8),
                        item: w.item,
                        waited: now.saturating_since(w.since),
                    });
                }
            }
        }
    }

    /// Requests of `class` waiting.
    pub fn waiting(&self, class: ClassId) -> usize {
        self.queues
            .get(class.index())
            .map_or(0, |q| q.waiting.len())
    }

    /// Requests of `class` released and not finished.
    pub fn active(&self, class: ClassId) -> u32 {
        self.queues.get(class.index()).map_or(0, |q| q.active)
    }

    /// Requests of every class released and not finished.
    pub fn active_total(&self) -> u32 {
        self.active
    }

    /// Requests of `class` active or waiting (what admission's
    /// `max_in_flight` is compared with).
    pub fn in_flight(&self, class: ClassId) -> u32 {
        self.active(class) + self.waiting(class) as u32
    }

    fn eligible(q: &Queue<T>) -> bool {
        !q.waiting.is_empty() && q.active < q.max_active
    }

    /// The eligible class furthest below its `min_share`, if any is below.
    fn below_min_share(&self) -> Option<usize> {
        let total = self.served_total as f64;
        self.queues
            .iter()
            .enumerate()
            .filter(|(_, q)| q.min_share > 0.0 && Self::eligible(q))
            .map(|(i, q)| (i, q.min_share * total - q.served as f64))
            .filter(|&(_, deficit)| deficit > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i)
    }

    fn by_policy(&self) -> Option<usize> {
        let heads = self
            .queues
            .iter()
            .enumerate()
            .filter(|(_, q)| Self::eligible(q))
            .filter_map(|(i, q)| q.waiting.front().map(|w| (i, q, w)));
        match self.policy {
            SchedulingPolicy::Fifo => heads.min_by_key(|(_, _, w)| w.seq),
            SchedulingPolicy::Priority => heads.min_by_key(|(_, q, w)| (q.priority, w.seq)),
            SchedulingPolicy::Fair | SchedulingPolicy::WeightedFair => {
                heads.min_by_key(|(_, _, w)| (w.start, w.seq))
            }
        }
        .map(|(i, _, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use shoal_config::{Dispatch, RequestClass};

    /// Classes named c0, c1, ... with (priority, weight) each, plus default.
    fn classes(spec: &[(u8, u32)], f: impl Fn(usize, &mut RequestClass)) -> Classes {
        Classes::new(&Dispatch {
            classes: spec
                .iter()
                .enumerate()
                .map(|(i, &(priority, weight))| {
                    let mut c = RequestClass::catch_all(&format!("c{i}"));
                    c.path_prefix = Some(format!("/c{i}/"));
                    c.priority = priority;
                    c.weight = weight;
                    c.max_queue = 1000;
                    f(i, &mut c);
                    c
                })
                .collect(),
            ..Dispatch::default()
        })
        .expect("classes")
    }

    fn scheduler(cs: &Classes, policy: SchedulingPolicy, max_active: u32) -> Scheduler<u64> {
        Scheduler::new(cs, &Scheduling { policy, max_active })
    }

    /// A deterministic pseudo-random sequence (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Releases `total` requests with every class kept backlogged and
    /// requests finishing in a pseudo-random order; returns releases per class.
    fn backlogged_shares(s: &mut Scheduler<u64>, classes: usize, total: usize) -> Vec<usize> {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut served = vec![0; classes];
        let mut active: Vec<ClassId> = Vec::new();
        let now = Instant::ZERO;
        let mut id = 0;
        for _ in 0..total {
            for c in 0..classes {
                while s.waiting(ClassId(c as u8)) < 8 {
                    s.offer(ClassId(c as u8), id, now).expect("room");
                    id += 1;
                }
            }
            while s.active_total() >= s.max_active {
                let k = rng.below(active.len() as u64) as usize;
                s.finish(active.swap_remove(k));
            }
            let r = s.release(now).expect("a request waits");
            served[r.class.index()] += 1;
            active.push(r.class);
        }
        served
    }

    #[test]
    fn weighted_fair_shares_follow_the_weights_within_5_percent_over_10000_requests() {
        let weights = [1u32, 3, 6, 10];
        let cs = classes(&weights.map(|w| (0, w)), |_, _| {});
        let mut s = scheduler(&cs, SchedulingPolicy::WeightedFair, 4);
        let served = backlogged_shares(&mut s, weights.len(), 10_000);
        let sum: u32 = weights.iter().sum();
        for (i, &w) in weights.iter().enumerate() {
            let share = served[i] as f64 / 10_000.0;
            let want = f64::from(w) / f64::from(sum);
            assert!(
                (share / want - 1.0).abs() <= 0.05,
                "class {i} weight {w}: share {share:.4}, want {want:.4} ({served:?})"
            );
        }
    }

    #[test]
    fn fair_shares_are_equal_whatever_the_weights() {
        let cs = classes(&[(0, 1), (0, 5), (0, 9)], |_, _| {});
        let mut s = scheduler(&cs, SchedulingPolicy::Fair, 2);
        let served = backlogged_shares(&mut s, 3, 9_000);
        for (i, &n) in served.iter().enumerate() {
            assert!(
                (n as f64 / 3_000.0 - 1.0).abs() <= 0.01,
                "class {i}: {served:?}"
            );
        }
    }

    #[test]
    fn an_idle_class_banks_no_credit_under_fair_queueing() {
        let cs = classes(&[(0, 1), (0, 1)], |_, _| {});
        let mut s = scheduler(&cs, SchedulingPolicy::Fair, 1);
        let now = Instant::ZERO;
        // Class 0 alone for 100 releases.
        for i in 0..100 {
            s.offer(ClassId(0), i, now).expect("room");
            assert_eq!(s.release(now).map(|r| r.class), Some(ClassId(0)));
            s.finish(ClassId(0));
        }
        // Then both backlogged: they alternate; class 1 does not get 100 in a row.
        for i in 0..10 {
            s.offer(ClassId(0), 1000 + i, now).expect("room");
            s.offer(ClassId(1), 2000 + i, now).expect("room");
        }
        let mut order = Vec::new();
        while let Some(r) = s.release(now) {
            order.push(r.class.index());
            s.finish(r.class);
        }
        let ones_in_first_four = order[..4].iter().filter(|&&c| c == 1).count();
        assert_eq!(ones_in_first_four, 2, "{order:?}");
    }

    #[test]
    fn fifo_releases_in_arrival_order_across_classes() {
        let cs = classes(&[(0, 1), (5, 1), (9, 1)], |_, _| {});
        let mut s = scheduler(&cs, SchedulingPolicy::Fifo, 1);
        let mut rng = Rng(7);
        let now = Instant::ZERO;
        for id in 0..300 {
            s.offer(ClassId(rng.below(4) as u8), id, now).expect("room");
        }
        let mut got = Vec::new();
        while let Some(r) = s.release(now) {
            got.push(r.item);
            s.finish(r.class);
        }
        assert_eq!(got, (0..300).collect::<Vec<_>>());
    }

    #[test]
    fn strict_priority_never_serves_low_while_high_waits() {
        // c0 priority 0, c1 and c2 priority 1, c3 priority 2, default
        // priority 0; c1 capped at 2 active, so that a capped class lets a
        // lower one through, as documented.
        let cs = classes(&[(0, 1), (1, 1), (1, 1), (2, 1)], |i, c| {
            if i == 1 {
                c.max_active = Some(2);
            }
        });
        let mut s = scheduler(&cs, SchedulingPolicy::Priority, 3);
        let prio: Vec<u8> = cs.iter().map(|(_, c)| c.config.priority).collect();
        let mut rng = Rng(42);
        let mut active: Vec<ClassId> = Vec::new();
        let mut released = vec![0usize; cs.len()];
        for step in 0..20_000u64 {
            let now = Instant::from_millis(step);
            match rng.below(3) {
                0 | 1 => {
                    let c = ClassId(rng.below(cs.len() as u64) as u8);
                    let _ = s.offer(c, step, now);
                }
                _ if !active.is_empty() => {
                    let k = rng.below(active.len() as u64) as usize;
                    s.finish(active.swap_remove(k));
                }
                _ => {}
            }
            // What could go: classes with a waiting request below their cap.
            let could: Vec<usize> = (0..cs.len())
                .filter(|&i| {
                    let q = &s.queues[i];
                    !q.waiting.is_empty() && q.active < q.max_active
                })
                .collect();
            if let Some(r) = s.release(now) {
                let best = could
                    .iter()
                    .map(|&i| prio[i])
                    .min()
                    .expect("something could go");
                assert_eq!(prio[r.class.index()], best, "step {step}: released {r:?}");
                released[r.class.index()] += 1;
                active.push(r.class);
            }
        }
        assert!(
            released.iter().all(|&n| n > 0),
            "every class ran: {released:?}"
        );
    }

    #[test]
    fn a_minimum_share_overrides_strict_priority() {
        // c0 (priority 0) always backlogged would starve c1 (priority 9);
        // c1's min_share of 0.2 gets it a fifth of the releases.
        let cs = classes(&[(0, 1), (9, 1)], |i, c| {
            if i == 1 {
                c.min_share = Some(0.2);
            }
        });
        let mut s = scheduler(&cs, SchedulingPolicy::Priority, 1);
        let served = backlogged_shares(&mut s, 2, 10_000);
        let share = served[1] as f64 / 10_000.0;
        assert!((share - 0.2).abs() <= 0.01, "{served:?}");
        // Without it c1 gets nothing.
        let cs = classes(&[(0, 1), (9, 1)], |_, _| {});
        let mut s = scheduler(&cs, SchedulingPolicy::Priority, 1);
        assert_eq!(backlogged_shares(&mut s, 2, 1_000), vec![1_000, 0]);
    }

    #[test]
    fn queues_are_bounded_and_waiting_is_bounded() {
        let cs = classes(&[(0, 1)], |_, c| {
            c.max_queue = 3;
            c.max_wait_ms = 100;
        });
        let mut s = scheduler(&cs, SchedulingPolicy::Fifo, 1);
        let c0 = ClassId(0);
        for i in 0..3 {
            s.offer(c0, i, Instant::from_millis(i * 10)).expect("room");
        }
        assert_eq!(
            s.offer(c0, 3, Instant::from_millis(30)),
            Err((3, Refusal::QueueFull))
        );
        assert_eq!(s.waiting(c0), 3);
        let mut expired = Vec::new();
        s.expire(Instant::from_millis(99), |r| {
            expired.push((r.item, r.waited));
        });
        assert!(expired.is_empty());
        s.expire(Instant::from_millis(110), |r| {
            assert_eq!(r.class, c0);
            expired.push((r.item, r.waited));
        });
        assert_eq!(
            expired,
            vec![
                (0, Duration::from_millis(110)),
                (1, Duration::from_millis(100))
            ]
        );
        let r = s.release(Instant::from_millis(115)).expect("one waits");
        assert_eq!((r.item, r.waited), (2, Duration::from_millis(95)));
        assert_eq!(s.release(Instant::from_millis(115)), None, "max_active 1");
        assert_eq!(s.in_flight(c0), 1);
        // An unknown class is refused, not a panic.
        assert_eq!(
            s.offer(ClassId(30), 9, Instant::ZERO),
            Err((9, Refusal::QueueFull))
        );
        s.finish(ClassId(30));
        s.finish(c0);
        s.finish(c0);
        assert_eq!(
            s.active_total(),
            0,
            "finishing more than released frees nothing"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Offer(u8),
        Release,
        Finish(usize),
        Tick(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..5).prop_map(Op::Offer),
            3 => Just(Op::Release),
            2 => any::<usize>().prop_map(Op::Finish),
            1 => (0u16..300).prop_map(Op::Tick),
        ]
    }

    fn policy() -> impl Strategy<Value = SchedulingPolicy> {
        prop_oneof![
            Just(SchedulingPolicy::Fifo),
            Just(SchedulingPolicy::Priority),
            Just(SchedulingPolicy::Fair),
            Just(SchedulingPolicy::WeightedFair),
        ]
    }

    proptest! {
        /// Over any interleaving of offers, releases, completions and time:
        /// no queue above its bound, no more active than the caps, every
        /// offered request ends exactly once (refused, released, expired or
        /// still waiting), and strict priority holds.
        #[test]
        fn every_request_ends_once_within_every_bound(
            policy in policy(),
            max_active in 1u32..5,
            ops in proptest::collection::vec(op(), 1..400),
        ) {
            let cs = classes(&[(0, 1), (3, 4), (1, 2), (3, 1)], |i, c| {
                c.max_queue = 4 + i as u32;
                c.max_wait_ms = 50 + 40 * i as u32;
                c.max_active = (i == 2).then_some(1);
                c.min_share = (i == 3).then_some(0.1);
            });
            let mut s = scheduler(&cs, policy, max_active);
            let mut now = Instant::ZERO;
            let mut next = 0u64;
            let mut ended = std::collections::HashSet::new();
            let mut active: Vec<ClassId> = Vec::new();
            for op in ops {
                match op {
                    Op::Offer(c) => {
                        let class = ClassId(c);
                        if let Err((item, why)) = s.offer(class, next, now) {
                            prop_assert_eq!(item, next);
                            prop_assert_eq!(why, Refusal::QueueFull);
                            prop_assert_eq!(s.waiting(class), cs.get(class).config.max_queue as usize);
                            prop_assert!(ended.insert(next));
                        }
                        next += 1;
                    }
                    Op::Release => {
                        let mut expired = Vec::new();
                        s.expire(now, |r| expired.push(r));
                        for r in expired {
                            prop_assert!(r.waited >= Duration::from_millis(u64::from(cs.get(r.class).config.max_wait_ms)));
                            prop_assert!(ended.insert(r.item));
                        }
                        let could_prio = (0..cs.len())
                            .filter(|&i| {
                                let q = &s.queues[i];
                                !q.waiting.is_empty() && q.active < q.max_active
                            })
                            .map(|i| cs.get(ClassId(i as u8)).config.priority)
                            .min();
                        if let Some(r) = s.release(now) {
                            prop_assert!(ended.insert(r.item));
                            if policy == SchedulingPolicy::Priority && r.class != ClassId(3) {
                                prop_assert_eq!(Some(cs.get(r.class).config.priority), could_prio);
                            }
                            active.push(r.class);
                        }
                    }
                    Op::Finish(k) => {
                        if !active.is_empty() {
                            s.finish(active.swap_remove(k % active.len()));
                        }
                    }
                    Op::Tick(ms) => now = now + Duration::from_millis(u64::from(ms)),
                }
                prop_assert!(s.active_total() <= max_active);
                prop_assert_eq!(s.active_total() as usize, active.len());
                prop_assert!(s.active(ClassId(2)) <= 1);
                let mut waiting = 0;
                for (id, c) in cs.iter() {
                    prop_assert!(s.waiting(id) <= c.config.max_queue as usize);
                    waiting += s.waiting(id);
                }
                prop_assert_eq!(ended.len() + waiting, next as usize);
            }
        }
    }
}
