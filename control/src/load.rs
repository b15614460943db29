//! This member's load, computed from the dataplane's stats segments.
//!
//! This module owns the figures the DPR report names (open connections, CPU busy
//! fraction, redirected connections) plus handed-over connections, their
//! exponential smoothing (`control.load_smoothing`) and the composite
//! *load* the selectors compare with `max_load`:
//! `load = max(busy, connections / flow capacity)`, a share of capacity in
//! 0..=1 (1 = the poll loops never idle, or the flow tables are full). It
//! reads nothing itself: the daemon passes in each worker's counters.

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

/// Raw figures of one interval and their moving average.
#[derive(Debug, Clone)]
pub struct LoadTracker {
    alpha: f64,
    flow_capacity: u64,
    /// Per worker: (instance, polls busy, polls idle) at the last read.
    baseline: Vec<Option<(u64, u64, u64)>>,
    smoothed: Option<[f64; 4]>,
}

impl LoadTracker {
    /// A tracker with smoothing factor `alpha` in (0, 1] (1 = no smoothing)
    /// over `workers` workers whose flow tables hold `flow_capacity` flows
    /// in total.
    pub fn new(alpha: f64, workers: usize, flow_capacity: u64) -> LoadTracker {
        LoadTracker {
            alpha: alpha.clamp(f64::MIN_POSITIVE, 1.0),
            flow_capacity: flow_capacity.max(1),
            baseline: vec![None; workers],
            smoothed: None,
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
        let load = busy.max(conns / self.flow_capacity as f64);
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
}
