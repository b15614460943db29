//! From samples to what `shoalctl top` shows: the [`View`] (a view-model of
//! plain numbers and strings) built from the newest [`Sample`] and the one
//! before it.
//!
//! This module owns the arithmetic — rates from successive counter
//! readings, sums per member and cluster-wide, the order of drop reasons,
//! a member's state — and nothing of drawing or I/O, so every figure is
//! tested exactly.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::poll::{MemberInfo, Sample};
use super::scrape::{Scrape, WorkerCounters};

/// Whether figures are totals or rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Figures {
    /// Counter totals since each dataplane started (the first sample: no
    /// earlier one to take a difference from).
    Totals,
    /// Per second, over the time between the two samples.
    Rates {
        /// Time between the samples.
        over: Duration,
    },
}

/// Packet, connection, drop and handoff figures (totals or per second).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Traffic {
    /// Frames received on the wire port.
    pub wire_rx: f64,
    /// Frames sent on the wire port.
    pub wire_tx: f64,
    /// Frames received from the kernel.
    pub kernel_rx: f64,
    /// Frames delivered to the kernel.
    pub kernel_tx: f64,
    /// New connections claimed (SYNs accepted).
    pub syn: f64,
    /// Frames dropped, every reason.
    pub drops: f64,
    /// Connections offered to another member.
    pub offers_sent: f64,
    /// Offers accepted.
    pub offers_accepted: f64,
    /// Offers refused (served here instead).
    pub offers_refused: f64,
}

impl Traffic {
    fn add(&mut self, o: &Traffic) {
        self.wire_rx += o.wire_rx;
        self.wire_tx += o.wire_tx;
        self.kernel_rx += o.kernel_rx;
        self.kernel_tx += o.kernel_tx;
        self.syn += o.syn;
        self.drops += o.drops;
        self.offers_sent += o.offers_sent;
        self.offers_accepted += o.offers_accepted;
        self.offers_refused += o.offers_refused;
    }
}

/// A member's place in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Alive in the seed's view, taking new connections.
    Live,
    /// Alive, drained: keeps its connections, takes no new ones.
    Draining,
    /// Out of the seed's view while its control still answers: it withdrew
    /// (its dataplane is gone) or is shutting down (or cannot be heard).
    Leaving,
    /// Out of the seed's view and not answering.
    Dead,
}

impl State {
    /// The word shown.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Draining => "draining",
            State::Leaving => "leaving",
            State::Dead => "dead",
        }
    }

    /// The state of `m` (as the seed sees it) whose exporter did or did
    /// not answer.
    pub fn of(m: &MemberInfo, answers: bool) -> State {
        match (m.alive, m.draining, answers) {
            (true, false, _) => State::Live,
            (true, true, _) => State::Draining,
            (false, _, true) => State::Leaving,
            (false, _, false) => State::Dead,
        }
    }
}

/// What a member's own exporter said.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberFigures {
    /// Its epoch.
    pub epoch: u64,
    /// Confirmed by every live peer's dataplane.
    pub confirmed: bool,
    /// Its lease is held.
    pub lease_held: bool,
    /// Milliseconds left of its lease.
    pub lease_remaining_ms: u64,
    /// Its workers together.
    pub traffic: Traffic,
    /// Flows live, every worker.
    pub flows: u64,
}

/// One member row.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRow {
    /// Id.
    pub id: u16,
    /// Name.
    pub name: String,
    /// Address.
    pub address: Ipv4Addr,
    /// State.
    pub state: State,
    /// Weight in force.
    pub weight: u32,
    /// Load as a share of capacity.
    pub load: f64,
    /// Its figures, or why its exporter did not answer.
    pub figures: Result<MemberFigures, String>,
}

/// One worker row.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    /// Member name.
    pub member: String,
    /// Worker index.
    pub worker: u32,
    /// Its stats segment is readable.
    pub up: bool,
    /// Its figures.
    pub traffic: Traffic,
    /// Flows live.
    pub flows: u64,
}

/// The newest epoch among the members that answered, and how far it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochSummary {
    /// The highest epoch number announced.
    pub newest: u64,
    /// Members that run it.
    pub on_newest: usize,
    /// Members that run it and have it confirmed.
    pub confirmed: usize,
    /// Members that answered.
    pub answered: usize,
}

/// Everything one screen shows.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Cluster name ("" before the seed first answered).
    pub cluster: String,
    /// The seed member's name.
    pub seed: String,
    /// Why the seed did not answer this time.
    pub seed_error: Option<String>,
    /// Totals or rates.
    pub figures: Figures,
    /// The epoch across the members that answered.
    pub epoch: Option<EpochSummary>,
    /// One row per configured member.
    pub members: Vec<MemberRow>,
    /// One row per worker of the members that answered.
    pub workers: Vec<WorkerRow>,
    /// Drop reasons cluster-wide, non-zero only, largest first.
    pub drops: Vec<(String, f64)>,
    /// The cluster's figures (members that answered).
    pub cluster_traffic: Traffic,
    /// Flows live cluster-wide.
    pub cluster_flows: u64,
}

/// A counter as a figure: its total, or its rate from `prev` over `over`.
/// A counter that went down was reset (its dataplane restarted): what it
/// counted since is all that happened in the interval that is known. A
/// counter not read before (a member or worker that just appeared) shows 0
/// until the next sample.
pub fn rate(prev: Option<u64>, cur: u64, figures: Figures) -> f64 {
    match figures {
        Figures::Totals => cur as f64,
        Figures::Rates { over } => {
            let secs = over.as_secs_f64();
            if secs <= 0.0 {
                return 0.0;
            }
            match prev {
                None => 0.0,
                Some(p) if cur >= p => (cur - p) as f64 / secs,
                Some(_) => cur as f64 / secs,
            }
        }
    }
}

/// One worker's figures.
pub fn worker_traffic(
    prev: Option<&WorkerCounters>,
    cur: &WorkerCounters,
    figures: Figures,
) -> Traffic {
    let r = |f: fn(&WorkerCounters) -> u64| rate(prev.map(f), f(cur), figures);
    Traffic {
        wire_rx: r(|w| w.wire_rx),
        wire_tx: r(|w| w.wire_tx),
        kernel_rx: r(|w| w.kernel_rx),
        kernel_tx: r(|w| w.kernel_tx),
        syn: r(|w| w.syn_accepted),
        drops: drop_rates(prev, cur, figures).values().sum(),
        offers_sent: r(|w| w.offers_sent),
        offers_accepted: r(|w| w.offers_accepted),
        offers_refused: r(|w| w.offers_refused),
    }
}

/// One worker's drops by reason.
pub fn drop_rates(
    prev: Option<&WorkerCounters>,
    cur: &WorkerCounters,
    figures: Figures,
) -> BTreeMap<String, f64> {
    cur.drops
        .iter()
        .map(|(reason, &n)| {
            let before = prev.map(|p| p.drops.get(reason).copied().unwrap_or(0));
            (reason.clone(), rate(before, n, figures))
        })
        .collect()
}

/// Reasons with a non-zero figure, largest first; equal figures by name.
pub fn top_reasons(by_reason: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = by_reason
        .iter()
        .filter(|(_, &r)| r > 0.0)
        .map(|(k, &r)| (k.clone(), r))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

fn previous_scrape(prev: Option<&Sample>, id: u16) -> Option<&Scrape> {
    prev?.scrapes.get(&id)?.as_ref().ok()
}

/// The view of `cur`, with rates against `prev` when there is one.
pub fn build(prev: Option<&Sample>, cur: &Sample) -> View {
    let figures = match prev.and_then(|p| cur.at.checked_sub(p.at)) {
        Some(over) if !over.is_zero() => Figures::Rates { over },
        _ => Figures::Totals,
    };
    let infos = cur.seed.as_ref().map_or(&[][..], |s| &s.members[..]);
    let mut members = Vec::new();
    let mut workers = Vec::new();
    let mut drops: BTreeMap<String, f64> = BTreeMap::new();
    let mut cluster_traffic = Traffic::default();
    let mut cluster_flows = 0;
    let mut epochs = Vec::new();
    for info in infos {
        let scrape = cur
            .scrapes
            .get(&info.id)
            .cloned()
            .unwrap_or_else(|| Err("not polled".to_owned()));
        let figures_of = scrape.map(|s| {
            let before = previous_scrape(prev, info.id);
            let mut traffic = Traffic::default();
            let mut flows = 0;
            for (&ix, w) in &s.workers {
                let pw = before.and_then(|b| b.workers.get(&ix));
                let t = worker_traffic(pw, w, figures);
                for (reason, r) in drop_rates(pw, w, figures) {
                    *drops.entry(reason).or_default() += r;
                }
                traffic.add(&t);
                flows += w.flows_live;
                workers.push(WorkerRow {
                    member: info.name.clone(),
                    worker: ix,
                    up: w.up,
                    traffic: t,
                    flows: w.flows_live,
                });
            }
            cluster_traffic.add(&traffic);
            cluster_flows += flows;
            epochs.push((s.epoch, s.epoch_confirmed));
            MemberFigures {
                epoch: s.epoch,
                confirmed: s.epoch_confirmed,
                lease_held: s.lease_held,
                lease_remaining_ms: s.lease_remaining_ms,
                traffic,
                flows,
            }
        });
        members.push(MemberRow {
            id: info.id,
            name: info.name.clone(),
            address: info.address,
            state: State::of(info, figures_of.is_ok()),
            weight: info.weight,
            load: info.load,
            figures: figures_of,
        });
    }
    let epoch = epochs.iter().map(|&(e, _)| e).max().map(|newest| {
        let on: Vec<bool> = epochs
            .iter()
            .filter(|&&(e, _)| e == newest)
            .map(|&(_, c)| c)
            .collect();
        EpochSummary {
            newest,
            on_newest: on.len(),
            confirmed: on.iter().filter(|&&c| c).count(),
            answered: epochs.len(),
        }
    });
    View {
        cluster: cur
            .seed
            .as_ref()
            .map(|s| s.cluster.clone())
            .unwrap_or_default(),
        seed: cur
            .seed
            .as_ref()
            .map(|s| s.member.clone())
            .unwrap_or_default(),
        seed_error: cur.seed_error.clone(),
        figures,
        epoch,
        members,
        workers,
        drops: top_reasons(&drops),
        cluster_traffic,
        cluster_flows,
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the figures are exact by construction (whole numbers, halves)
pub(crate) mod tests {
    use super::*;
    use crate::top::poll::Seed;

    fn member(id: u16, name: &str, alive: bool, draining: bool) -> MemberInfo {
        MemberInfo {
            id,
            name: name.into(),
            address: Ipv4Addr::new(198, 18, 0, 10 + id as u8),
            local: id == 1,
            alive,
            draining,
            weight: 100,
            load: 0.25,
        }
    }

    fn worker(scale: u64, drops: &[(&str, u64)]) -> WorkerCounters {
        WorkerCounters {
            up: true,
            wire_rx: 100 * scale,
            wire_tx: 50 * scale,
            kernel_rx: 40 * scale,
            kernel_tx: 60 * scale,
            syn_accepted: 10 * scale,
            drops: drops.iter().map(|&(r, n)| (r.to_owned(), n)).collect(),
            offers_sent: 4 * scale,
            offers_accepted: 3 * scale,
            offers_refused: scale,
            flows_live: 7 * scale,
        }
    }

    /// Two samples 2 s apart of a 3-member cluster: srv1 two workers,
    /// srv2 draining, srv3 unreachable.
    pub(crate) fn samples() -> (Sample, Sample) {
        let seed = Seed {
            cluster: "lab".into(),
            member: "srv1".into(),
            members: vec![
                member(1, "srv1", true, false),
                member(2, "srv2", true, true),
                member(3, "srv3", false, false),
            ],
        };
        let scrape = |scale: u64, epoch: u64, other_host: u64| Scrape {
            epoch,
            epoch_confirmed: epoch == 5,
            lease_held: true,
            lease_remaining_ms: 700,
            workers: [
                (
                    0,
                    worker(scale, &[("other_host", other_host), ("malformed", 1)]),
                ),
                (1, worker(scale, &[("not_for_us", scale)])),
            ]
            .into_iter()
            .collect(),
        };
        let one = |at_ms: u64, scale: u64, other_host: u64| Sample {
            at: Duration::from_millis(at_ms),
            seed: Some(seed.clone()),
            seed_error: None,
            scrapes: [
                (1, Ok(scrape(scale, 5, other_host))),
                (2, {
                    let mut s = scrape(scale, 4, other_host);
                    s.workers.remove(&1);
                    Ok(s)
                }),
                (3, Err("connection refused".to_owned())),
            ]
            .into_iter()
            .collect(),
        };
        (one(1000, 1, 20), one(3000, 3, 10))
    }

    #[test]
    fn rates_are_differences_over_the_interval() {
        let two = Figures::Rates {
            over: Duration::from_secs(2),
        };
        assert_eq!(rate(Some(100), 300, two), 100.0);
        assert_eq!(rate(Some(300), 300, two), 0.0);
        // Reset: the dataplane restarted; what it counted since.
        assert_eq!(rate(Some(500), 30, two), 15.0);
        // First seen: nothing known yet.
        assert_eq!(rate(None, 300, two), 0.0);
        assert_eq!(rate(Some(1), 300, Figures::Totals), 300.0);
        assert_eq!(
            rate(
                Some(1),
                300,
                Figures::Rates {
                    over: Duration::ZERO
                }
            ),
            0.0
        );
    }

    #[test]
    fn drop_reasons_largest_first_then_by_name() {
        let m: BTreeMap<String, f64> = [("b", 2.0), ("a", 2.0), ("z", 0.0), ("c", 9.5), ("d", 0.5)]
            .iter()
            .map(|&(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(
            top_reasons(&m),
            vec![
                ("c".to_owned(), 9.5),
                ("a".to_owned(), 2.0),
                ("b".to_owned(), 2.0),
                ("d".to_owned(), 0.5),
            ]
        );
    }

    #[test]
    fn first_sample_shows_totals() {
        let (first, _) = samples();
        let v = build(None, &first);
        assert_eq!(v.figures, Figures::Totals);
        let srv1 = v.members[0].figures.as_ref().unwrap();
        assert_eq!(srv1.traffic.wire_rx, 200.0);
        assert_eq!(srv1.traffic.syn, 20.0);
        assert_eq!(srv1.flows, 14);
        // other_host 20 (srv1 w0) + 20 (srv2 w0); malformed 1 + 1; not_for_us 1 (srv1 w1).
        assert_eq!(
            v.drops,
            vec![
                ("other_host".to_owned(), 40.0),
                ("malformed".to_owned(), 2.0),
                ("not_for_us".to_owned(), 1.0),
            ]
        );
    }

    #[test]
    fn second_sample_shows_rates_per_member_worker_and_cluster() {
        let (first, second) = samples();
        let v = build(Some(&first), &second);
        assert_eq!(
            v.figures,
            Figures::Rates {
                over: Duration::from_secs(2)
            }
        );
        assert_eq!(
            (v.cluster.as_str(), v.seed.as_str(), &v.seed_error),
            ("lab", "srv1", &None)
        );
        // Worker counters tripled (scale 1 -> 3) in 2 s: wire_rx 100 -> 300
        // is 100/s per worker.
        let w = &v.workers[0];
        assert_eq!(
            (w.member.as_str(), w.worker, w.up, w.flows),
            ("srv1", 0, true, 21)
        );
        assert_eq!(
            w.traffic,
            Traffic {
                wire_rx: 100.0,
                wire_tx: 50.0,
                kernel_rx: 40.0,
                kernel_tx: 60.0,
                syn: 10.0,
                // other_host went 20 -> 10: reset, 10 / 2 s; malformed 1 -> 1.
                drops: 5.0,
                offers_sent: 4.0,
                offers_accepted: 3.0,
                offers_refused: 1.0,
            }
        );
        assert_eq!(
            v.workers
                .iter()
                .map(|w| (w.member.as_str(), w.worker))
                .collect::<Vec<_>>(),
            vec![("srv1", 0), ("srv1", 1), ("srv2", 0)]
        );
        let srv1 = v.members[0].figures.as_ref().unwrap();
        assert_eq!(srv1.traffic.wire_rx, 200.0);
        // w0: 5/s, w1: not_for_us 1 -> 3 = 1/s.
        assert_eq!(srv1.traffic.drops, 6.0);
        assert_eq!(srv1.flows, 42);
        assert_eq!(v.cluster_traffic.wire_rx, 300.0);
        assert_eq!(v.cluster_traffic.syn, 30.0);
        assert_eq!(v.cluster_traffic.offers_sent, 12.0);
        assert_eq!(v.cluster_flows, 63);
        assert_eq!(
            v.drops,
            vec![
                ("other_host".to_owned(), 10.0),
                ("not_for_us".to_owned(), 1.0),
            ]
        );
        assert_eq!(
            v.epoch,
            Some(EpochSummary {
                newest: 5,
                on_newest: 1,
                confirmed: 1,
                answered: 2
            })
        );
        assert_eq!(
            v.members
                .iter()
                .map(|m| (m.name.as_str(), m.state))
                .collect::<Vec<_>>(),
            vec![
                ("srv1", State::Live),
                ("srv2", State::Draining),
                ("srv3", State::Dead)
            ]
        );
        assert_eq!(v.members[2].figures, Err("connection refused".to_owned()));
    }

    #[test]
    fn a_member_out_of_the_view_that_answers_is_leaving() {
        let m = member(3, "srv3", false, false);
        assert_eq!(State::of(&m, true), State::Leaving);
        assert_eq!(State::of(&m, false), State::Dead);
        assert_eq!(
            State::of(&member(3, "srv3", true, true), false),
            State::Draining
        );
    }
}
