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
//! Applied today: classification of each connection's first request,
//! `max_rate` and `max_load`, and the refusal answers. Not yet: scheduling
//! at the serving member, `max_in_flight`, `min_share`, and classes of the
//! later requests of a persistent connection.

use shoal_l7::classes::{Admission, Answer, ClassId, Classes, Figures, Refusal};
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
}

/// What the stats segment publishes per class, after `class/<s>/<c>/`.
fn value_names() -> impl Iterator<Item = String> {
    std::iter::once("admitted".to_owned())
        .chain(Refusal::ALL.iter().map(|r| format!("refused_{}", r.name())))
}

/// The class state of every service of `tables` that writes classes
/// (`None` for the others); a service whose classes did not change keeps
/// its state (rate buckets, counts) from `previous`.
pub(super) fn build_classes(
    tables: &Tables,
    previous: Vec<Option<ServiceClasses>>,
) -> Vec<Option<ServiceClasses>> {
    let mut previous = previous.into_iter();
    tables
        .services
        .iter()
        .map(|s| {
            let old = previous.next().flatten();
            let dispatch = s.dispatch.as_ref()?;
            if dispatch.classes.is_empty() {
                return None;
            }
            if let Some(old) = old.filter(|o| o.written == dispatch.classes && o.service == s.name)
            {
                return Some(old);
            }
            // Validation refuses what `Classes::new` refuses; a config that
            // skipped it gets no classes rather than a panic.
            let classes = Classes::new(dispatch).ok()?;
            let n = classes.len();
            Some(ServiceClasses {
                service: s.name.clone(),
                written: dispatch.classes.clone(),
                admission: Admission::new(&classes, Instant::ZERO),
                classes,
                admitted: vec![0; n],
                refused: vec![[0; Refusal::ALL.len()]; n],
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
        let Some(d) = s.dispatch.as_ref().filter(|d| !d.classes.is_empty()) else {
            continue;
        };
        let written = d.classes.iter().map(|c| c.name.as_str());
        let default = (!d
            .classes
            .iter()
            .any(|c| c.name == shoal_config::DEFAULT_CLASS))
        .then_some(shoal_config::DEFAULT_CLASS);
        for class in written.chain(default) {
            for what in value_names() {
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
        Err(why) => {
            let reason = Refusal::ALL.iter().position(|&r| r == why).unwrap_or(0);
            sc.refused[class.index()][reason] += 1;
            Err(sc.classes.get(class).answer.clone())
        }
    }
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
            for (id, c) in sc.classes.iter() {
                let i = id.index();
                let values = std::iter::once(sc.admitted[i]).chain(sc.refused[i].iter().copied());
                for (what, v) in value_names().zip(values) {
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
