//! This member's load, computed from the dataplane's stats segments and the
//! host's and application's CPU figures.
//!
//! This module owns the figures the DPR report names (open connections, CPU busy
//! fraction, redirected connections) plus handed-over connections, the
//! host's CPU and the application's share, their exponential smoothing
//! (`control.load_smoothing`) and the composite *load* the selectors compare
//! with `max_load`:
//! `load = max(w_busy·busy, w_conn·connections/capacity, w_host·host_cpu,
//! w_app·app)` clamped to 0..=1 (`control.load.weights`), a share of
//! capacity (1 = the poll loops never idle, the flow tables are full, the
//! host's CPUs or the application's are all busy). A figure absent this
//! interval (no pid file, every CPU the dataplane's) counts nothing. It
//! reads nothing itself: the daemon passes in each worker's counters and the
//! CPU figures (`cpu.rs`).
//!
//! Only the composite travels in the announcement (`message.rs`, unchanged
//! by the CPU figures): peers compare it with `max_load`; the figures it is
//! made of are this member's `/status` and `/metrics`.

use shoal_config::LoadWeights;

use crate::message::LoadFigures;

/// Stats counter: live flows (gauge).
pub const FLOWS_LIVE: &str = "flows_live";
/// Stats counter: polls that found packets.
pub const POLLS_BUSY: &str = "polls_busy";
/// Stats counter: polls that found nothing.
pub const POLLS_IDLE: &str = "polls_idle";
/// Stats gauge: connections this member redirected to another (absent = 0).
pub const FLOWS_REDIRECTED: &str = "flows_redirected";
/// Stats gauge: connections handed over by splice (absent = 0).
pub const FLOWS_HANDED_OVER: &str = "flows_handed_over";

/// One worker's counters as read from its stats segment.
#[derive(Debug, Clone, Copy)]
pub struct WorkerCounters<'a> {
    /// The dataplane instance that wrote them (changes on restart).
    pub instance: u64,
    /// Counter names.
    pub names: &'a [String],
    /// Values, index-aligned with `names`.
    pub values: &'a [u64],
}

impl WorkerCounters<'_> {
    /// The value of counter `name` (absent = `None`).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.values.get(i).copied())
    }
}

/// One interval's CPU figures (`cpu.rs`), each a share in 0..=1 or absent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuFigures {
    /// The host's busy share over the CPUs the dataplane does not own.
    pub host_cpu: Option<f64>,
    /// The application's share of the CPUs it can use.
    pub app: Option<f64>,
}

/// This member's figures beyond what the announcement carries (for
/// `/status` and `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LocalLoad {
    /// Smoothed host CPU busy share (none: absent).
    pub host_cpu: Option<f32>,
    /// Smoothed application CPU share (none: absent).
    pub app: Option<f32>,
    /// Open connections as a share of the flow tables' capacity.
    pub connections_share: f32,
    /// The weights in force.
    pub weights: Weights,
}

/// `control.load.weights` as `/status` shows them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Weights {
    /// Busy fraction's.
    pub busy: f64,
    /// Connections share's.
    pub connections: f64,
    /// Host CPU's.
    pub host_cpu: f64,
    /// Application's.
    pub app: f64,
}

impl From<LoadWeights> for Weights {
    fn from(w: LoadWeights) -> Weights {
        Weights {
            busy: w.busy,
            connections: w.connections,
            host_cpu: w.host_cpu,
            app: w.app,
        }
    }
}

impl Default for LocalLoad {
    fn default() -> LocalLoad {
        LocalLoad {
            host_cpu: None,
            app: None,
            connections_share: 0.0,
            weights: LoadWeights::default().into(),
        }
    }
}

/// The composite load: the largest weighted figure, clamped to 0..=1;
/// absent figures count nothing.
pub fn composite(
    w: &LoadWeights,
    busy: f64,
    connections_share: f64,
    host_cpu: Option<f64>,
    app: Option<f64>,
) -> f64 {
    let terms = [
        w.busy * busy,
        w.connections * connections_share,
        host_cpu.map_or(0.0, |h| w.host_cpu * h),
        app.map_or(0.0, |a| w.app * a),
    ];
    terms
        .into_iter()
        .filter(|t| t.is_finite())
        .fold(0.0, f64::max)
        .clamp(0.0, 1.0)
}

/// Raw figures of one interval and their moving average.
#[derive(Debug, Clone)]
pub struct LoadTracker {
    alpha: f64,
    flow_capacity: u64,
    weights: LoadWeights,
    /// Per worker: (instance, polls busy, polls idle) at the last read.
    baseline: Vec<Option<(u64, u64, u64)>>,
    smoothed: Option<[f64; 4]>,
    host_cpu: Option<f64>,
    app: Option<f64>,
}

impl LoadTracker {
    /// A tracker with smoothing factor `alpha` in (0, 1] (1 = no smoothing)
    /// over `workers` workers whose flow tables hold `flow_capacity` flows
    /// in total.
    pub fn new(alpha: f64, workers: usize, flow_capacity: u64) -> LoadTracker {
        LoadTracker {
            alpha: alpha.clamp(f64::MIN_POSITIVE, 1.0),
            flow_capacity: flow_capacity.max(1),
            weights: LoadWeights::default(),
            baseline: vec![None; workers],
            smoothed: None,
            host_cpu: None,
            app: None,
        }
    }

    /// Sets the weights of the composite (start and config reload).
    pub fn set_weights(&mut self, weights: LoadWeights) {
        self.weights = weights;
    }

    /// Folds one interval's CPU figures in (smoothed like the others); an
    /// absent figure is forgotten, and starts afresh when it is back.
    pub fn update_cpu(&mut self, cpu: CpuFigures) {
        let ema = |old: Option<f64>, new: Option<f64>| {
            let new = new.filter(|v| v.is_finite())?.clamp(0.0, 1.0);
            Some(old.map_or(new, |o| self.alpha * new + (1.0 - self.alpha) * o))
        };
        self.host_cpu = ema(self.host_cpu, cpu.host_cpu);
        self.app = ema(self.app, cpu.app);
    }

    /// The figures beyond the announcement's, smoothed.
    pub fn local(&self) -> LocalLoad {
        let conns = self.smoothed.map_or(0.0, |s| s[0]);
        LocalLoad {
            host_cpu: self.host_cpu.map(|v| v as f32),
            app: self.app.map(|v| v as f32),
            connections_share: (conns / self.flow_capacity as f64) as f32,
            weights: self.weights.into(),
        }
    }

    /// Changes the smoothing factor (config reload).
    pub fn set_alpha(&mut self, alpha: f64) {
        self.alpha = alpha.clamp(f64::MIN_POSITIVE, 1.0);
    }

    /// Folds one interval's reads in (`None` = that worker's segment is not
    /// readable) and returns the smoothed figures. With no readable worker
    /// the figures stay as they were.
    pub fn update(&mut self, workers: &[Option<WorkerCounters<'_>>]) -> LoadFigures {
        if self.baseline.len() < workers.len() {
            self.baseline.resize(workers.len(), None);
        }
        let mut any = false;
        let (mut conns, mut redirected, mut handed) = (0u64, 0u64, 0u64);
        let (mut d_busy, mut d_idle) = (0u64, 0u64);
        for (w, read) in workers.iter().enumerate() {
            let Some(c) = read else {
                self.baseline[w] = None;
                continue;
            };
            any = true;
            conns += c.get(FLOWS_LIVE).unwrap_or(0);
            redirected += c.get(FLOWS_REDIRECTED).unwrap_or(0);
            handed += c.get(FLOWS_HANDED_OVER).unwrap_or(0);
            let busy = c.get(POLLS_BUSY).unwrap_or(0);
            let idle = c.get(POLLS_IDLE).unwrap_or(0);
            if let Some((inst, b0, i0)) = self.baseline[w] {
                // Same dataplane instance and counters that only grew.
                if inst == c.instance && busy >= b0 && idle >= i0 {
                    d_busy += busy - b0;
                    d_idle += idle - i0;
                }
            }
            self.baseline[w] = Some((c.instance, busy, idle));
        }
        if any {
            let prev_busy = self.smoothed.map_or(0.0, |s| s[1]);
            let busy = if d_busy + d_idle > 0 {
                d_busy as f64 / (d_busy + d_idle) as f64
            } else {
                prev_busy
            };
            let raw = [conns as f64, busy, redirected as f64, handed as f64];
            self.smoothed = Some(match self.smoothed {
                None => raw,
                Some(old) => {
                    let mut s = old;
                    for (s, r) in s.iter_mut().zip(raw) {
                        *s = self.alpha * r + (1.0 - self.alpha) * *s;
                    }
                    s
                }
            });
        }
        self.figures()
    }

    /// The current smoothed figures (all zero before the first read).
    pub fn figures(&self) -> LoadFigures {
        let [conns, busy, redirected, handed] = self.smoothed.unwrap_or([0.0; 4]);
        let load = composite(
            &self.weights,
            busy,
            conns / self.flow_capacity as f64,
            self.host_cpu,
            self.app,
        );
        LoadFigures {
            load: load as f32,
            busy: busy as f32,
            connections: conns as f32,
            redirected: redirected as f32,
            handed_over: handed as f32,
        }
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the figures are exact by construction
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        [FLOWS_LIVE, POLLS_BUSY, POLLS_IDLE, "syn_accepted"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    #[test]
    fn busy_fraction_over_the_interval_and_ema() {
        let n = names();
        let mut t = LoadTracker::new(0.5, 2, 1000);
        let v0 = [100, 10, 90, 5];
        let w = |inst, v: &'static [u64]| {
            Some(WorkerCounters {
                instance: inst,
                names: &n,
                values: v,
            })
        };
        // First read: no baseline, busy unknown (0); connections 100 + 0.
        let f = t.update(&[w(1, &[100, 10, 90, 5]), None]);
        assert_eq!(f.connections, 100.0);
        assert_eq!(f.busy, 0.0);
        assert_eq!(f.load, 0.1);
        let _ = v0;
        // Next: +30 busy, +70 idle => 0.3; EMA 0.5 => busy 0.15, conns 150.
        let f = t.update(&[w(1, &[200, 40, 160, 5]), None]);
        assert_eq!(f.busy, 0.15);
        assert_eq!(f.connections, 150.0);
        assert_eq!(f.load, 0.15);
        // Dataplane restarted (new instance): no delta this time, busy kept.
        let f = t.update(&[w(2, &[0, 1, 1, 0]), None]);
        assert_eq!(f.busy, 0.15);
        assert_eq!(f.connections, 75.0);
        // Nothing readable: unchanged.
        assert_eq!(t.update(&[None, None]), f);
        assert_eq!(f.redirected, 0.0);
        assert_eq!(f.handed_over, 0.0);
    }

    #[test]
    fn composite_is_the_largest_weighted_figure_clamped() {
        let w = LoadWeights::default();
        assert_eq!(composite(&w, 0.1, 0.2, Some(0.3), Some(0.7)), 0.7);
        assert_eq!(composite(&w, 0.1, 0.2, None, None), 0.2);
        let half_app = LoadWeights {
            app: 0.5,
            host_cpu: 0.0,
            ..w
        };
        assert_eq!(composite(&half_app, 0.1, 0.2, Some(0.9), Some(0.8)), 0.4);
        // A share above 1 (the app on more CPUs than app_cpus) is clamped;
        // NaN counts nothing.
        assert_eq!(composite(&w, 0.0, 0.0, None, Some(1.7)), 1.0);
        assert_eq!(composite(&w, f64::NAN, 0.0, Some(0.25), None), 0.25);
        let nothing = LoadWeights {
            busy: 0.0,
            connections: 0.0,
            host_cpu: 0.0,
            app: 0.0,
        };
        assert_eq!(composite(&nothing, 1.0, 1.0, Some(1.0), Some(1.0)), 0.0);
    }

    #[test]
    fn cpu_figures_are_smoothed_weighed_and_forgotten_when_absent() {
        let n = names();
        let mut t = LoadTracker::new(0.5, 1, 1000);
        t.set_weights(LoadWeights {
            host_cpu: 0.0,
            ..LoadWeights::default()
        });
        let w = |v: &'static [u64]| {
            Some(WorkerCounters {
                instance: 1,
                names: &n,
                values: v,
            })
        };
        t.update_cpu(CpuFigures {
            host_cpu: Some(0.9),
            app: Some(0.8),
        });
        let f = t.update(&[w(&[100, 10, 90, 5])]);
        // Busy unknown yet, connections 0.1, host ignored (weight 0), app 0.8.
        assert_eq!(f.load, 0.8);
        assert_eq!(t.local().host_cpu, Some(0.9));
        assert_eq!(t.local().app, Some(0.8));
        assert_eq!(t.local().connections_share, 0.1);
        assert_eq!(t.local().weights.host_cpu, 0.0);
        // EMA 0.5: app 0.8 -> 0.5 with a raw 0.2.
        t.update_cpu(CpuFigures {
            host_cpu: Some(0.1),
            app: Some(0.2),
        });
        assert_eq!(t.update(&[w(&[100, 10, 90, 5])]).load, 0.5);
        assert_eq!(t.local().host_cpu, Some(0.5));
        // The pid file vanished: app absent, the load falls back to the rest.
        t.update_cpu(CpuFigures {
            host_cpu: Some(0.1),
            app: None,
        });
        let f = t.update(&[w(&[100, 10, 90, 5])]);
        assert_eq!(t.local().app, None);
        assert_eq!(f.load, 0.1);
        // Back: starts from its raw value, not from the old average.
        t.update_cpu(CpuFigures {
            host_cpu: None,
            app: Some(0.6),
        });
        assert_eq!(t.update(&[w(&[100, 10, 90, 5])]).load, 0.6);
        assert_eq!(t.local().host_cpu, None);
    }
}
