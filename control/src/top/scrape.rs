//! One member's exporter text (`/metrics`, see `metrics.rs`) read back into
//! the figures `shoalctl top` shows: epoch, lease and, per dataplane
//! worker, the packet, SYN, drop, handoff and flow counters.
//!
//! This module owns the parsing of the Prometheus text exposition format
//! (the subset `metrics.rs` writes: `name{k="v",...} value` lines and `#`
//! comments) and the choice of series; it does no I/O.

use std::collections::BTreeMap;

/// One worker's counters (totals since its dataplane started) and gauges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerCounters {
    /// The worker's stats segment is readable (`shoal_dataplane_up`).
    pub up: bool,
    /// Frames received on the wire port.
    pub wire_rx: u64,
    /// Frames transmitted on the wire port.
    pub wire_tx: u64,
    /// Frames received from the local kernel.
    pub kernel_rx: u64,
    /// Frames delivered to the local kernel.
    pub kernel_tx: u64,
    /// New connections this worker claimed (`syn_accepted`).
    pub syn_accepted: u64,
    /// Dropped frames by reason (`drop_<reason>`).
    pub drops: BTreeMap<String, u64>,
    /// Connections offered to another member (`handoff_offered`).
    pub offers_sent: u64,
    /// Offers another member accepted (`handoff_handed_over`).
    pub offers_accepted: u64,
    /// Offers nobody accepted, served here instead (`handoff_fallback`).
    pub offers_refused: u64,
    /// Flows in the worker's table now (a gauge).
    pub flows_live: u64,
}

/// What one member's exporter says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// The epoch in force on the member.
    pub epoch: u64,
    /// Every live peer's dataplane runs that epoch's table.
    pub epoch_confirmed: bool,
    /// Control renews the member's lease.
    pub lease_held: bool,
    /// Milliseconds left of the lease last sent to its dataplane.
    pub lease_remaining_ms: u64,
    /// The dataplane's workers by index.
    pub workers: BTreeMap<u32, WorkerCounters>,
}

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Line<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

impl Line<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `name{k="v",...} value` (labels optional); `None` for anything
/// else.
fn parse_line(line: &str) -> Option<Line<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key_start = 0;
        loop {
            // key="value" pairs separated by commas, until '}'.
            let (eq, _) = chars.by_ref().find(|&(_, c)| c == '=' || c == '}')?;
            if inner[eq..].starts_with('}') {
                rest = &inner[eq + 1..];
                break;
            }
            let key = inner[key_start..eq].trim_start_matches(',').trim();
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.push((key, value));
            key_start = chars.clone().next()?.0;
        }
    }
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Line {
        name,
        labels,
        value,
    })
}

/// A counter or gauge reading as a whole number (negative and NaN read 0).
fn whole(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

/// Reads the exporter text of one member. Series `top` does not show are
/// skipped; so are lines that do not parse.
pub fn parse(text: &str) -> Scrape {
    let mut s = Scrape::default();
    for line in text.lines().filter_map(parse_line) {
        let v = line.value;
        match line.name {
            "shoal_epoch" => s.epoch = whole(v),
            "shoal_epoch_confirmed" => s.epoch_confirmed = v > 0.5,
            "shoal_lease_held" => s.lease_held = v > 0.5,
            "shoal_lease_remaining_seconds" => s.lease_remaining_ms = whole(v * 1000.0),
            _ => {}
        }
        let Some(worker) = line.label("worker").and_then(|w| w.parse::<u32>().ok()) else {
            continue;
        };
        let w = s.workers.entry(worker).or_default();
        match (line.name, line.label("port"), line.label("direction")) {
            ("shoal_dataplane_up", ..) => w.up = v > 0.5,
            ("shoal_dataplane_packets_total", Some(port), Some(dir)) => match (port, dir) {
                ("wire", "rx") => w.wire_rx = whole(v),
                ("wire", "tx") => w.wire_tx = whole(v),
                ("kernel", "rx") => w.kernel_rx = whole(v),
                ("kernel", "tx") => w.kernel_tx = whole(v),
                _ => {}
            },
            ("shoal_dataplane_selections_total", ..)
                if line.label("outcome") == Some("syn_accepted") =>
            {
                w.syn_accepted = whole(v);
            }
            ("shoal_dataplane_drops_total", ..) => {
                if let Some(reason) = line.label("reason") {
                    w.drops.insert(reason.to_owned(), whole(v));
                }
            }
            ("shoal_dataplane_events_total", ..) => match line.label("event") {
                Some("handoff_offered") => w.offers_sent = whole(v),
                Some("handoff_handed_over") => w.offers_accepted = whole(v),
                Some("handoff_fallback") => w.offers_refused = whole(v),
                _ => {}
            },
            ("shoal_dataplane_flows_live", ..) => w.flows_live = whole(v),
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics;
    use crate::status::{LeaseStatus, Status};

    #[test]
    fn lines_with_and_without_labels() {
        assert_eq!(
            parse_line("shoal_epoch 7"),
            Some(Line {
                name: "shoal_epoch",
                labels: vec![],
                value: 7.0
            })
        );
        assert_eq!(
            parse_line(r#"m{a="x\"y\\z\n",b="2"} 0.5"#),
            Some(Line {
                name: "m",
                labels: vec![("a", "x\"y\\z\n".to_owned()), ("b", "2".to_owned())],
                value: 0.5
            })
        );
        assert_eq!(parse_line("# HELP shoal_epoch x"), None);
        assert_eq!(parse_line("m{a=x} 1"), None);
        assert_eq!(parse_line("m{a=\"x\"} one"), None);
        assert_eq!(parse_line("m +Inf").map(|l| l.value), Some(f64::INFINITY));
    }

    /// A snapshot as the daemon publishes it, through the exporter's own
    /// `render`, read back.
    #[test]
    fn reads_back_what_the_exporter_writes() {
        let names = [
            "wire_rx_packets",
            "wire_tx_packets",
            "kernel_rx_packets",
            "kernel_tx_packets",
            "wire_rx_bytes",
            "drop_other_host",
            "drop_malformed",
            "syn_accepted",
            "syn_other_inspector",
            "handoff_offered",
            "handoff_handed_over",
            "handoff_fallback",
            "flows_live",
        ];
        let status = Status {
            epoch: 7,
            epoch_confirmed: true,
            lease: LeaseStatus {
                held: true,
                remaining_ms: 600,
                refused: None,
            },
            workers: vec![crate::status::test_worker(&names)],
            ..Status::default()
        };
        let s = parse(&metrics::render(&status));
        assert_eq!(s.epoch, 7);
        assert!(s.epoch_confirmed);
        assert!(s.lease_held);
        assert_eq!(s.lease_remaining_ms, 600);
        assert_eq!(s.workers.len(), 1);
        assert_eq!(
            s.workers[&0],
            WorkerCounters {
                up: true,
                wire_rx: 1,
                wire_tx: 2,
                kernel_rx: 3,
                kernel_tx: 4,
                syn_accepted: 8,
                drops: [("other_host".to_owned(), 6), ("malformed".to_owned(), 7)]
                    .into_iter()
                    .collect(),
                offers_sent: 10,
                offers_accepted: 11,
                offers_refused: 12,
                flows_live: 13,
            }
        );
    }

    #[test]
    fn handoffs_and_several_workers() {
        let text = "\
shoal_dataplane_events_total{worker=\"1\",event=\"handoff_offered\"} 10
shoal_dataplane_events_total{worker=\"1\",event=\"handoff_handed_over\"} 8
shoal_dataplane_events_total{worker=\"1\",event=\"handoff_fallback\"} 2
shoal_dataplane_events_total{worker=\"1\",event=\"arp_vip_replied\"} 99
shoal_dataplane_packets_total{worker=\"0\",port=\"wire\",direction=\"tx\"} 12
shoal_dataplane_packets_total{worker=\"1\",port=\"kernel\",direction=\"rx\"} 13
";
        let s = parse(text);
        assert_eq!(s.workers.len(), 2);
        assert_eq!(s.workers[&0].wire_tx, 12);
        let w1 = &s.workers[&1];
        assert_eq!(
            (
                w1.offers_sent,
                w1.offers_accepted,
                w1.offers_refused,
                w1.kernel_rx
            ),
            (10, 8, 2, 13)
        );
    }
}
