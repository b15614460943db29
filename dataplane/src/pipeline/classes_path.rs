//! Request classes at the inspector (issue 15): every request a splice
//! service dispatches is classified ([`shoal_l7::classes`]) and admitted or
//! refused by its class's limits before it is replayed or handed over; a
//! refused request gets its class's answer (a 503 with `Retry-After`, a
//! redirect, or a reset) from this dataplane, and the connection is
//! forgotten here and in the kernel that held it.
//!
//! This module owns the per-service class state of one worker (the
//! classifier, the admission buckets and the per-class counts published in
//! the stats segment as `class/<service>/<class>/<what>`); the splice paths
//! call [`admit_request`] where they dispatch.
//!
//! With `[services.dispatch.scheduling]` it also owns the service's
//! [`Scheduler`] at this member, the serving one: every request released
//! into this kernel is offered to it by the persistent-connection path
//! (`persist.rs`, which follows responses and says when one is complete),
//! and the queue lengths, active requests and waiting times are published
//! beside the admission counts.
//!
//! Applied: classification of every request (the first at the inspector,
//! each one again at the serving member), `max_rate` and `max_load` at the
//! inspector, `max_in_flight`, `max_queue`, `max_wait_ms` and the
//! scheduling policy (with `min_share` and each class's `max_active`) at
//! the serving member, and the refusal answers at both.

use shoal_l7::classes::{
    Admission, Answer, ClassId, Classes, Figures, Refusal, Released, Scheduler,
};
use shoal_l7::http::RequestHead;
use shoal_wire::time::Instant;

use super::{Pipeline, Tables};

/// The class state of one splice service at one worker.
#[derive(Debug)]
pub(super) struct ServiceClasses {
    /// The service's name (stats names).
    service: String,
    /// The classes as the config writes them (to keep the state when they
    /// do not change).
    written: Vec<shoal_config::RequestClass>,
    classes: Classes,
    admission: Admission,
    /// Per class: requests admitted.
    admitted: Vec<u64>,
    /// Per class and [`Refusal::ALL`] reason: requests refused.
    refused: Vec<[u64; Refusal::ALL.len()]>,
    /// The scheduling as the config writes it.
    written_scheduling: Option<shoal_config::Scheduling>,
    /// Scheduling at this member, the serving one (None without
    /// `[services.dispatch.scheduling]`).
    scheduler: Option<Scheduler<Ticket>>,
    /// Per class: requests the scheduler released into this kernel, and
    /// how long they waited ([`WAIT_BUCKETS_MS`]).
    released: Vec<u64>,
    waits: Vec<WaitHistogram>,
}

/// A request waiting in a scheduler: the persistent-connection session that
/// holds it (slot and generation: a slot freed and reused meanwhile does
/// not match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket {
    /// The session's slot.
    pub slot: u32,
    /// The session's generation.
    pub generation: u32,
}

/// Upper bounds (milliseconds) of the waiting-time histogram buckets
/// (`shoal_dataplane_class_wait_seconds`), +Inf implied.
pub(super) const WAIT_BUCKETS_MS: [u64; 10] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000];

/// Waiting times of one class: a count per bucket (not cumulative), the
/// sum in microseconds.
#[derive(Debug, Clone, Default)]
struct WaitHistogram {
    buckets: [u64; WAIT_BUCKETS_MS.len() + 1],
    sum_us: u64,
}

impl WaitHistogram {
    fn record(&mut self, waited: core::time::Duration) {
        let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        let i = WAIT_BUCKETS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(WAIT_BUCKETS_MS.len());
        self.buckets[i] += 1;
        self.sum_us = self
            .sum_us
            .saturating_add(u64::try_from(waited.as_micros()).unwrap_or(u64::MAX));
    }

    /// Cumulative counts, `le` order, then +Inf, then the sum (µs).
    fn values(&self) -> impl Iterator<Item = u64> + '_ {
        self.buckets
            .iter()
            .scan(0u64, |acc, &n| {
                *acc += n;
                Some(*acc)
            })
            .chain(std::iter::once(self.sum_us))
    }
}

/// What the stats segment publishes per class, after `class/<s>/<c>/`:
/// admission counts, then (for a service with scheduling) `released`,
/// `waiting`, `active`, the cumulative waiting-time buckets `wait_le_<ms>`
/// and `wait_le_inf`, and `wait_sum_us`.
fn value_names(scheduled: bool) -> impl Iterator<Item = String> {
    let admission = std::iter::once("admitted".to_owned())
        .chain(Refusal::ALL.iter().map(|r| format!("refused_{}", r.name())));
    let scheduling = ["released", "waiting", "active"]
        .into_iter()
        .map(str::to_owned)
        .chain(WAIT_BUCKETS_MS.iter().map(|ms| format!("wait_le_{ms}")))
        .chain(["wait_le_inf".to_owned(), "wait_sum_us".to_owned()])
        .filter(move |_| scheduled);
    admission.chain(scheduling)
}

/// The class state of every service of `tables` that writes classes
/// (`None` for the others); a service whose classes did not change keeps
/// its state (rate buckets, counts, its scheduler) from `previous`. The
/// services whose previous state was dropped (a reload changed or removed
/// their classes or scheduling) are added to `replaced`: what waited in
/// their old scheduler must be offered again (`persist.rs`).
pub(super) fn build_classes(
    tables: &Tables,
    previous: Vec<Option<ServiceClasses>>,
    replaced: &mut Vec<usize>,
) -> Vec<Option<ServiceClasses>> {
    let mut previous = previous.into_iter();
    tables
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let old = previous.next().flatten();
            let kept = old.as_ref().is_some_and(|o| {
                s.dispatch.as_ref().is_some_and(|d| {
                    o.written == d.classes
                        && o.written_scheduling == d.scheduling
                        && o.service == s.name
                })
            });
            if old.is_some() && !kept {
                replaced.push(i);
            }
            let dispatch = s.dispatch.as_ref()?;
            if dispatch.classes.is_empty() && dispatch.scheduling.is_none() {
                return None;
            }
            if let Some(old) = old.filter(|_| kept) {
                return Some(old);
            }
            // Validation refuses what `Classes::new` refuses; a config that
            // skipped it gets no classes rather than a panic.
            let classes = Classes::new(dispatch).ok()?;
            let n = classes.len();
            let scheduler = dispatch
                .scheduling
                .as_ref()
                .map(|sched| Scheduler::new(&classes, sched));
            Some(ServiceClasses {
                service: s.name.clone(),
                written: dispatch.classes.clone(),
                admission: Admission::new(&classes, Instant::ZERO),
                classes,
                scheduler,
                written_scheduling: dispatch.scheduling.clone(),
                admitted: vec![0; n],
                refused: vec![[0; Refusal::ALL.len()]; n],
                released: vec![0; n],
                waits: vec![WaitHistogram::default(); n],
            })
        })
        .collect()
}

/// The names of the per-class values a worker over `tables` publishes
/// (`class/<service>/<class>/<what>`), for the services that write classes:
/// the written classes in order, then `default` when not written (the
/// order of [`Classes::new`]).
pub fn class_stat_names(tables: &Tables) -> Vec<String> {
    let mut names = Vec::new();
    for s in &tables.services {
        let Some(d) = s
            .dispatch
            .as_ref()
            .filter(|d| !d.classes.is_empty() || d.scheduling.is_some())
        else {
            continue;
        };
        let scheduled = d.scheduling.is_some();
        let written = d.classes.iter().map(|c| c.name.as_str());
        let default = (!d
            .classes
            .iter()
            .any(|c| c.name == shoal_config::DEFAULT_CLASS))
        .then_some(shoal_config::DEFAULT_CLASS);
        for class in written.chain(default) {
            for what in value_names(scheduled) {
                names.push(format!("class/{}/{class}/{what}", s.name));
            }
        }
    }
    names
}

/// Classifies `head` (a request of service `service` that `member` would
/// serve) and asks its class's admission, counted per class; the refusal's
/// answer when it may not be admitted. A free function over the fields it
/// needs: the caller holds the request head borrowed from a setup slot.
pub(super) fn admit_request(
    classes: &mut [Option<ServiceClasses>],
    tables: &Tables,
    service: usize,
    head: &RequestHead<'_>,
    member: u16,
    now: Instant,
) -> Result<(), Answer> {
    let Some(Some(sc)) = classes.get_mut(service) else {
        return Ok(());
    };
    let class = sc.classes.classify(head);
    let figures = Figures {
        member_load: tables
            .members
            .iter()
            .find(|m| m.id == member)
            .map_or(0.0, |m| m.load),
        in_flight: 0,
    };
    match sc.admission.admit(class, &figures, now) {
        Ok(()) => {
            sc.admitted[class.index()] += 1;
            Ok(())
        }
        Err(why) => Err(sc.refuse(class, why)),
    }
}

impl ServiceClasses {
    /// Counts a refusal of a request of `class` for `why`; its answer.
    fn refuse(&mut self, class: ClassId, why: Refusal) -> Answer {
        let reason = Refusal::ALL.iter().position(|&r| r == why).unwrap_or(0);
        self.refused[class.index()][reason] += 1;
        self.classes.get(class).answer.clone()
    }
}

/// What the serving member does with a request it would release into its
/// kernel.
#[derive(Debug)]
pub(super) enum Offer {
    /// The service has no scheduling: release it now, unscheduled.
    Unscheduled,
    /// Queued; [`next_release`] gives it back when it may go.
    Queued,
    /// Refused (`max_in_flight`, `max_queue`): answer the client with this.
    Refused(Answer),
}

/// Offers the request `head` of service `service`, held by the session
/// `ticket`, to the service's scheduler at `now`.
pub(super) fn offer_request(
    classes: &mut [Option<ServiceClasses>],
    service: usize,
    head: &RequestHead<'_>,
    ticket: Ticket,
    now: Instant,
) -> Offer {
    let Some(Some(sc)) = classes.get_mut(service) else {
        return Offer::Unscheduled;
    };
    let class = sc.classes.classify(head);
    let Some(scheduler) = sc.scheduler.as_mut() else {
        return Offer::Unscheduled;
    };
    let limit = sc.classes.get(class).config.max_in_flight;
    if limit.is_some_and(|max| scheduler.in_flight(class) >= max) {
        return Offer::Refused(sc.refuse(class, Refusal::InFlight));
    }
    match scheduler.offer(class, ticket, now) {
        Ok(()) => Offer::Queued,
        Err((_, why)) => Offer::Refused(sc.refuse(class, why)),
    }
}

/// The next request service `service`'s scheduler releases at `now`, if
/// a slot is free (counted, its waiting time recorded).
pub(super) fn next_release(
    classes: &mut [Option<ServiceClasses>],
    service: usize,
    now: Instant,
) -> Option<Released<Ticket>> {
    let sc = classes.get_mut(service)?.as_mut()?;
    let r = sc.scheduler.as_mut()?.release(now)?;
    sc.released[r.class.index()] += 1;
    sc.waits[r.class.index()].record(r.waited);
    Some(r)
}

/// A released request of `class` of service `service` is complete (its
/// response sent, or its connection gone): its slot is free.
pub(super) fn finish_request(
    classes: &mut [Option<ServiceClasses>],
    service: usize,
    class: ClassId,
) {
    if let Some(Some(sc)) = classes.get_mut(service) {
        if let Some(s) = sc.scheduler.as_mut() {
            s.finish(class);
        }
    }
}

/// Every request that waited too long at `now`, with the answer it gets
/// (counted as `waited_too_long`), across services.
pub(super) fn expire_waiting(
    classes: &mut [Option<ServiceClasses>],
    now: Instant,
    out: &mut Vec<(Ticket, Answer)>,
) {
    for sc in classes.iter_mut().flatten() {
        let Some(scheduler) = sc.scheduler.as_mut() else {
            continue;
        };
        let mut expired = Vec::new();
        scheduler.expire(now, |r| expired.push(r));
        for r in expired {
            sc.waits[r.class.index()].record(r.waited);
            let answer = sc.refuse(r.class, Refusal::WaitedTooLong);
            out.push((r.item, answer));
        }
    }
}

/// Whether service `service` schedules its requests at the serving member.
pub(super) fn scheduled(classes: &[Option<ServiceClasses>], service: usize) -> bool {
    classes
        .get(service)
        .and_then(Option::as_ref)
        .is_some_and(|sc| sc.scheduler.is_some())
}

impl Pipeline {
    /// The answer a refused new connection of service `service` gets: its
    /// default class's (a plain 503 for a service without classes).
    pub(super) fn default_answer(&self, service: usize) -> Answer {
        match self.classes.get(service) {
            Some(Some(sc)) => sc.classes.get(sc.classes.default_class()).answer.clone(),
            _ => Answer::Respond(shoal_l7::answers::error_response(503).to_vec()),
        }
    }

    /// Every per-class value with its name (`class/<service>/<class>/<what>`,
    /// as [`class_stat_names`] lists them).
    pub fn for_each_class_value(&self, mut f: impl FnMut(&str, u64)) {
        let mut name = String::new();
        for sc in self.classes.iter().flatten() {
            let scheduled = sc.scheduler.as_ref();
            for (id, c) in sc.classes.iter() {
                let i = id.index();
                let admission =
                    std::iter::once(sc.admitted[i]).chain(sc.refused[i].iter().copied());
                let scheduling = scheduled.into_iter().flat_map(|sched| {
                    [
                        sc.released[i],
                        sched.waiting(id) as u64,
                        u64::from(sched.active(id)),
                    ]
                    .into_iter()
                    .chain(sc.waits[i].values())
                });
                for (what, v) in value_names(scheduled.is_some()).zip(admission.chain(scheduling)) {
                    name.clear();
                    name.push_str("class/");
                    name.push_str(&sc.service);
                    name.push('/');
                    name.push_str(&c.config.name);
                    name.push('/');
                    name.push_str(&what);
                    f(&name, v);
                }
            }
        }
    }

    /// Requests of `class` (by name) of service `service` admitted and
    /// refused by reason, for tests and `replay`.
    pub fn class_counts(
        &self,
        service: usize,
        class: &str,
    ) -> Option<(u64, Vec<(&'static str, u64)>)> {
        let sc = self.classes.get(service)?.as_ref()?;
        let ClassId(i) = sc.classes.by_name(class)?;
        let i = usize::from(i);
        Some((
            sc.admitted[i],
            Refusal::ALL
                .iter()
                .zip(sc.refused[i])
                .map(|(r, n)| (r.name(), n))
                .collect(),
        ))
    }
}
