//! The Prometheus exporter's text: [`render`] turns a [`Status`] snapshot
//! into the text exposition format (version 0.0.4).
//!
//! This module owns the metric names, their help and types, and how the
//! dataplane's counter names map to them. The text is written by hand
//! rather than through `prometheus-client`: the dataplane's counter set is
//! only known at run time (it comes from the stats segment), every value is
//! an absolute reading to copy rather than an event to count, and the
//! whole output is rebuilt from one snapshot per scrape — a registry of
//! incrementing counters would add a second copy of state and a crate for
//! ~150 lines of formatting. The HTTP side lives in `daemon.rs`.
//!
//! Dataplane counters (per `worker`):
//!
//! | stats name | metric |
//! |---|---|
//! | `{wire,kernel}_{rx,tx}_{packets,bytes}` | `shoal_dataplane_{packets,bytes}_total{port,direction}` |
//! | `drop_<reason>` | `shoal_dataplane_drops_total{reason}` |
//! | `dispatch_<reason>` | `shoal_dataplane_dispatch_total{reason}` |
//! | `handoff_rejected_<reason>` | `shoal_dataplane_handoff_rejected_total{reason}` |
//! | `class/<service>/<class>/admitted` | `shoal_dataplane_class_admitted_total{service,class}` |
//! | `class/<service>/<class>/refused_<reason>` | `shoal_dataplane_class_refused_total{service,class,reason}` |
//! | `class/<service>/<class>/released` | `shoal_dataplane_class_released_total{service,class}` |
//! | `class/<service>/<class>/{waiting,active}` | `shoal_dataplane_class_{queue_length,active}{service,class}` |
//! | `class/<service>/<class>/wait_le_<ms>`, `wait_le_inf`, `wait_sum_us` | `shoal_dataplane_class_wait_seconds` (histogram) |
//! | `malformed_<layer>_<reason>` | `shoal_dataplane_malformed_total{layer,reason}` |
//! | `syn_accepted`, `syn_other_inspector`, `claims_refused_{lease,pending}`, `syn_retransmit`, `vip_stateless_{local,other}` | `shoal_dataplane_selections_total{outcome}` |
//! | `lease_held`, `epochs_pending`, `applied_epoch` | `shoal_dataplane_{lease_held,epochs_pending,epoch}` |
//! | `flows_live` | `shoal_dataplane_flows_live` |
//! | `flows_{syn,established,closing,tombstone}` | `shoal_dataplane_flows{state}` |
//! | `flows_evicted_<state>` | `shoal_dataplane_flows_evicted_total{state}` |
//! | `flows_{redirected,handed_over}` | `shoal_dataplane_flows_{redirected,handed_over}` |
//! | `pins_live` | `shoal_dataplane_pins_live` |
//! | `placed_pinned`, `pin_{ignored_stateless,target_gone,rejected_full}` | `shoal_dataplane_pins_total{outcome}` (`placed`, `ignored_stateless`, `target_gone`, `rejected_full`) |
//! | `polls_{busy,idle}` | `shoal_dataplane_polls_total{result}` |
//! | `busy_ns` | `shoal_dataplane_busy_seconds_total` |
//! | `persist_connections`, `persist_requests{,_here,_held}` | `shoal_dataplane_persist_{connections,requests}_total` (`requests{dispatched}`: all, here, held) |
//! | `persist_untracked_<reason>` | `shoal_dataplane_persist_untracked_total{reason}` |
//! | `persist_held_bytes`, `persist_hold_ms` | `shoal_dataplane_persist_held_bytes_total`, `shoal_dataplane_persist_hold_seconds_total` |
//! | `rehandoff_<outcome>` | `shoal_dataplane_rehandoffs_total{outcome}` |
//! | `synproxy_<event>` | `shoal_dataplane_synproxy_total{event}` (`cookie_sent`, `accepted`, `cookie_rejected`, `engaged`, `disengaged`, `kept_here`, `timeout`) |
//! | anything else | `shoal_dataplane_events_total{event}` |

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::status::Status;

/// `text/plain; version=0.0.4`: the content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

struct Family {
    help: &'static str,
    kind: Kind,
    samples: Vec<(String, String)>,
}

#[derive(Default)]
struct Out {
    families: BTreeMap<&'static str, Family>,
}

impl Out {
    fn add(
        &mut self,
        name: &'static str,
        kind: Kind,
        help: &'static str,
        labels: &[(&str, &str)],
        value: String,
    ) {
        let f = self.families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            samples: Vec::new(),
        });
        let mut l = String::new();
        if !labels.is_empty() {
            l.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    l.push(',');
                }
                let _ = write!(l, "{k}=\"{}\"", escape(v));
            }
            l.push('}');
        }
        f.samples.push((l, value));
    }

    fn counter(&mut self, name: &'static str, help: &'static str, labels: &[(&str, &str)], v: u64) {
        self.add(name, Kind::Counter, help, labels, v.to_string());
    }

    fn gauge(&mut self, name: &'static str, help: &'static str, labels: &[(&str, &str)], v: f64) {
        self.add(name, Kind::Gauge, help, labels, float(v));
    }

    /// One sample of histogram `name`: `suffix` is `_bucket` (with an `le`
    /// label last), `_sum` or `_count`.
    fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        suffix: &str,
        labels: &[(&str, &str)],
        value: String,
    ) {
        self.add(name, Kind::Histogram, help, labels, value);
        if let Some(f) = self.families.get_mut(name) {
            if let Some(last) = f.samples.last_mut() {
                last.0.insert_str(0, suffix);
            }
        }
    }

    fn finish(self) -> String {
        let mut s = String::new();
        for (name, f) in self.families {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(s, "# HELP {name} {}", f.help);
            let _ = writeln!(s, "# TYPE {name} {kind}");
            for (labels, value) in f.samples {
                let _ = writeln!(s, "{name}{labels} {value}");
            }
        }
        s
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

const SELECTIONS: [&str; 7] = [
    "syn_accepted",
    "syn_other_inspector",
    "claims_refused_lease",
    "claims_refused_pending",
    "syn_retransmit",
    "vip_stateless_local",
    "vip_stateless_other",
];

/// The histogram of request waiting times at the serving member.
const WAIT: &str = "shoal_dataplane_class_wait_seconds";
const WAIT_HELP: &str =
    "Time requests waited in the serving member's scheduler before release or refusal, by class.";

fn dataplane_counter(out: &mut Out, worker: &str, name: &str, value: u64) {
    let w = ("worker", worker);
    let mut parts = name.splitn(3, '_');
    let words = (parts.next(), parts.next(), parts.next());
    if let (Some(port @ ("wire" | "kernel")), Some(dir @ ("rx" | "tx")), Some(unit)) = words {
        let labels = [w, ("port", port), ("direction", dir)];
        match unit {
            "packets" => {
                return out.counter(
                    "shoal_dataplane_packets_total",
                    "Frames received/transmitted per port.",
                    &labels,
                    value,
                )
            }
            "bytes" => {
                return out.counter(
                    "shoal_dataplane_bytes_total",
                    "Bytes received/transmitted per port.",
                    &labels,
                    value,
                )
            }
            _ => {}
        }
    }
    if let Some(reason) = name.strip_prefix("drop_") {
        return out.counter(
            "shoal_dataplane_drops_total",
            "Frames dropped, by reason.",
            &[w, ("reason", reason)],
            value,
        );
    }
    if let Some(rest) = name.strip_prefix("class/") {
        // `class/<service>/<class>/<what>`: class names have no '/', a
        // service name may.
        let mut back = rest.rsplitn(3, '/');
        if let (Some(what), Some(class), Some(service)) = (back.next(), back.next(), back.next()) {
            let labels = [w, ("service", service), ("class", class)];
            if what == "admitted" {
                return out.counter(
                    "shoal_dataplane_class_admitted_total",
                    "Requests of splice services admitted, by request class (services.dispatch.classes).",
                    &labels,
                    value,
                );
            }
            if let Some(reason) = what.strip_prefix("refused_") {
                return out.counter(
                    "shoal_dataplane_class_refused_total",
                    "Requests of splice services refused by their class and answered with its on_refuse answer, by class and reason (rate, load, in_flight, queue_full, waited_too_long).",
                    &[w, ("service", service), ("class", class), ("reason", reason)],
                    value,
                );
            }
            match what {
                "released" => {
                    return out.counter(
                        "shoal_dataplane_class_released_total",
                        "Requests the serving member's scheduler released into its kernel, by class (services.dispatch.scheduling).",
                        &labels,
                        value,
                    )
                }
                "waiting" => {
                    return out.gauge(
                        "shoal_dataplane_class_queue_length",
                        "Requests waiting in the serving member's scheduler, by class.",
                        &labels,
                        value as f64,
                    )
                }
                "active" => {
                    return out.gauge(
                        "shoal_dataplane_class_active",
                        "Requests released into the serving member's kernel whose response is not complete, by class.",
                        &labels,
                        value as f64,
                    )
                }
                _ => {}
            }
            if let Some(le) = what.strip_prefix("wait_le_") {
                let le = if le == "inf" {
                    "+Inf".to_owned()
                } else {
                    le.parse::<u64>()
                        .map_or_else(|_| le.to_owned(), |ms| float(ms as f64 / 1000.0))
                };
                let with_le = [
                    w,
                    ("service", service),
                    ("class", class),
                    ("le", le.as_str()),
                ];
                out.histogram(WAIT, WAIT_HELP, "_bucket", &with_le, value.to_string());
                if le == "+Inf" {
                    out.histogram(WAIT, WAIT_HELP, "_count", &labels, value.to_string());
                }
                return;
            }
            if what == "wait_sum_us" {
                return out.histogram(WAIT, WAIT_HELP, "_sum", &labels, float(value as f64 / 1e6));
            }
        }
    }
    if let Some(reason) = name.strip_prefix("handoff_rejected_") {
        return out.counter(
            "shoal_dataplane_handoff_rejected_total",
            "Handoff datagrams refused, by reason (bad_mac, malformed, not_for_us, clock_skew, replayed, stale).",
            &[w, ("reason", reason)],
            value,
        );
    }
    if let Some(reason) = name.strip_prefix("dispatch_") {
        return out.counter(
            "shoal_dataplane_dispatch_total",
            "L7 dispatch decisions (splice), by the policy's reason (e.g. lard_moved, dtcp_replicated).",
            &[w, ("reason", reason)],
            value,
        );
    }
    if let Some(rest) = name.strip_prefix("malformed_") {
        if let Some((layer, reason)) = rest.split_once('_') {
            return out.counter(
                "shoal_dataplane_malformed_total",
                "Malformed frames, by protocol layer and parse error.",
                &[w, ("layer", layer), ("reason", reason)],
                value,
            );
        }
    }
    if let Some(to) = name.strip_prefix("steered_to_worker_") {
        return out.counter(
            "shoal_dataplane_steered_total",
            "Frames this worker received and passed to the worker owning their connection, by destination worker.",
            &[w, ("to", to)],
            value,
        );
    }
    if let Some(to) = name.strip_prefix("steer_drops_to_worker_") {
        return out.counter(
            "shoal_dataplane_steer_drops_total",
            "Frames dropped because the steering ring toward a worker was full, by destination worker.",
            &[w, ("to", to)],
            value,
        );
    }
    if let Some(reason) = name.strip_prefix("persist_untracked_") {
        return out.counter(
            "shoal_dataplane_persist_untracked_total",
            "Keep-alive connections no longer followed request by request (they stay where they are), by reason.",
            &[w, ("reason", reason)],
            value,
        );
    }
    if let Some(outcome) = name.strip_prefix("rehandoff_") {
        return out.counter(
            "shoal_dataplane_rehandoffs_total",
            "Keep-alive connections moved to the member of their next request (DTCP re-handoff), by outcome: started, done, fallback (served here after a refusal or no answer), hold_timeout.",
            &[w, ("outcome", outcome)],
            value,
        );
    }
    if let Some(event) = name.strip_prefix("synproxy_") {
        return out.counter(
            "shoal_dataplane_synproxy_total",
            "SYN proxy of the L4 TCP services (services.syn_proxy), by event: cookie_sent (SYNs answered with a cookie), accepted (valid cookie ACKs: connections created), cookie_rejected (ACKs without a valid cookie, dropped), engaged / disengaged (auto crossing its threshold; engaged - disengaged = services proxying now), kept_here (DPR target elsewhere but no handoff possible), timeout (the kernel never answered the replayed SYN).",
            &[w, ("event", event)],
            value,
        );
    }
    if let Some(which) = name.strip_prefix("persist_requests") {
        let dispatched = match which {
            "" => "all",
            "_here" => "here",
            "_held" => "held",
            _ => which,
        };
        return out.counter(
            "shoal_dataplane_persist_requests_total",
            "Requests dispatched on followed keep-alive connections: all, served by the kernel the connection was on (here), held for another member (held). Requests per connection: all / shoal_dataplane_persist_connections_total.",
            &[w, ("dispatched", dispatched)],
            value,
        );
    }
    if SELECTIONS.contains(&name) {
        return out.counter(
            "shoal_dataplane_selections_total",
            "Inspector selection outcomes for new connections and stateless packets.",
            &[w, ("outcome", name)],
            value,
        );
    }
    match name {
        "flows_live" => out.gauge(
            "shoal_dataplane_flows_live",
            "Flows in the worker's flow table.",
            &[w],
            value as f64,
        ),
        "flows_evicted_syn"
        | "flows_evicted_established"
        | "flows_evicted_closing"
        | "flows_evicted_tombstone" => out.counter(
            "shoal_dataplane_flows_evicted_total",
            "Live flows a full flow table evicted to make room, by state (half-open first).",
            &[w, ("state", &name["flows_evicted_".len()..])],
            value,
        ),
        "flows_syn" | "flows_established" | "flows_closing" | "flows_tombstone" => out.gauge(
            "shoal_dataplane_flows",
            "Flows in the worker's flow table, by state.",
            &[w, ("state", &name["flows_".len()..])],
            value as f64,
        ),
        "pins_live" => out.gauge(
            "shoal_dataplane_pins_live",
            "Operator pins in force on the worker (shoalctl flows pin).",
            &[w],
            value as f64,
        ),
        "placed_pinned" | "pin_ignored_stateless" | "pin_target_gone" | "pin_rejected_full" => {
            out.counter(
                "shoal_dataplane_pins_total",
                "New connections an operator's pin placed (placed), or did not: stateless DPR \
                 service (ignored_stateless), pinned member gone (target_gone); pins refused \
                 because the worker holds its maximum (rejected_full).",
                &[
                    w,
                    (
                        "outcome",
                        match name {
                            "placed_pinned" => "placed",
                            n => &n["pin_".len()..],
                        },
                    ),
                ],
                value,
            );
        }
        "flows_redirected" => out.gauge(
            "shoal_dataplane_flows_redirected",
            "Connections redirected to another member.",
            &[w],
            value as f64,
        ),
        "flows_handed_over" => out.gauge(
            "shoal_dataplane_flows_handed_over",
            "Connections handed over to another member (splice).",
            &[w],
            value as f64,
        ),
        "lease_held" => out.gauge(
            "shoal_dataplane_lease_held",
            "1 while the worker holds control's lease (claims new connections).",
            &[w],
            value as f64,
        ),
        "epochs_pending" => out.gauge(
            "shoal_dataplane_epochs_pending",
            "Epochs the worker keeps until every member confirms a newer one (claims only keys it owns in all).",
            &[w],
            value as f64,
        ),
        "applied_epoch" => out.gauge(
            "shoal_dataplane_epoch",
            "Membership epoch the worker runs.",
            &[w],
            value as f64,
        ),
        "steered_in_packets" | "steered_out_packets" => out.counter(
            "shoal_dataplane_steered_packets_total",
            "Frames passed between workers (flow steering): in = received from other workers, out = passed to them.",
            &[w, ("direction", if name == "steered_in_packets" { "in" } else { "out" })],
            value,
        ),
        "workers" => out.gauge(
            "shoal_dataplane_workers",
            "Workers of the dataplane (dataplane.cores).",
            &[w],
            value as f64,
        ),
        // A deadline, a digest, the worker label's own value: shown by
        // /status, not metrics.
        "lease_until_ns" | "applied_digest" | "applied_alive_mask" | "worker_index" => {}
        "persist_connections" => out.counter(
            "shoal_dataplane_persist_connections_total",
            "Keep-alive connections followed request by request on this worker (one per kernel the connection is replayed into).",
            &[w],
            value,
        ),
        "persist_held_bytes" => out.counter(
            "shoal_dataplane_persist_held_bytes_total",
            "Request bytes held by the dataplane while a keep-alive connection waited to move.",
            &[w],
            value,
        ),
        "persist_hold_ms" => out.add(
            "shoal_dataplane_persist_hold_seconds_total",
            Kind::Counter,
            "Time requests were held before their connection moved (sum).",
            &[w],
            float(value as f64 / 1000.0),
        ),
        "polls_busy" | "polls_idle" => out.counter(
            "shoal_dataplane_polls_total",
            "Worker polls that found packets (busy) or none (idle).",
            &[w, ("result", &name["polls_".len()..])],
            value,
        ),
        "busy_ns" => out.add(
            "shoal_dataplane_busy_seconds_total",
            Kind::Counter,
            "Time the worker spent in polls that found packets (its work; a poll-mode \
             worker's CPU time is all of its core whatever the load).",
            &[w],
            float(value as f64 / 1e9),
        ),
        _ => out.counter(
            "shoal_dataplane_events_total",
            "Other pipeline outcomes, by dataplane counter name.",
            &[w, ("event", name)],
            value,
        ),
    }
}

/// The exposition text of `s`.
pub fn render(s: &Status) -> String {
    let mut out = Out::default();
    out.gauge(
        "shoal_epoch",
        "Membership epoch number in force on this member.",
        &[],
        s.epoch as f64,
    );
    out.counter(
        "shoal_epoch_changes_total",
        "Membership epoch changes since start.",
        &[],
        s.epoch_changes,
    );
    out.gauge(
        "shoal_epoch_converged",
        "1 when every live peer announces this member's epoch and table.",
        &[],
        f64::from(u8::from(s.converged)),
    );
    out.gauge(
        "shoal_epoch_confirmed",
        "1 when every live peer's dataplane runs this member's epoch table.",
        &[],
        f64::from(u8::from(s.epoch_confirmed)),
    );
    out.gauge(
        "shoal_lease_held",
        "1 when control renews its dataplane's lease (settled, majority heard, every live peer acknowledging).",
        &[],
        f64::from(u8::from(s.lease.held)),
    );
    out.gauge(
        "shoal_lease_remaining_seconds",
        "Time left of the lease last sent to the dataplane.",
        &[],
        s.lease.remaining_ms as f64 / 1000.0,
    );
    load_detail(&mut out, &s.load_detail);
    if let Some(b) = &s.bgp {
        bgp(&mut out, b);
    }
    for m in &s.members {
        let id = m.id.to_string();
        let l = [("member", m.name.as_str()), ("id", id.as_str())];
        out.gauge(
            "shoal_member_up",
            "1 when the member is alive in this member's view.",
            &l,
            f64::from(u8::from(m.alive)),
        );
        out.gauge(
            "shoal_member_weight",
            "Member weight in force (relative share of new connections).",
            &l,
            f64::from(m.weight),
        );
        out.gauge(
            "shoal_member_draining",
            "1 when the member is drained (no new connections).",
            &l,
            f64::from(u8::from(m.draining)),
        );
        out.gauge(
            "shoal_member_load_ratio",
            "Member load as a share of capacity (compared with max_load).",
            &l,
            f64::from(m.load.load),
        );
        out.gauge(
            "shoal_member_busy_ratio",
            "Fraction of the member's dataplane polls that found packets (smoothed).",
            &l,
            f64::from(m.load.busy),
        );
        out.gauge(
            "shoal_member_connections",
            "Open connections on the member (smoothed).",
            &l,
            f64::from(m.load.connections),
        );
    }
    for (outcome, n) in &s.messages_received {
        out.counter(
            "shoal_control_messages_received_total",
            "Control announcements received, by outcome.",
            &[("outcome", outcome)],
            *n,
        );
    }
    for n in &s.networks {
        out.counter(
            "shoal_control_messages_sent_total",
            "Control announcements sent, per network.",
            &[("network", &n.name)],
            n.sent,
        );
        out.counter(
            "shoal_control_send_errors_total",
            "Control announcements the socket refused, per network.",
            &[("network", &n.name)],
            n.send_errors,
        );
    }
    for (result, n) in &s.dataplane_pushes {
        out.counter(
            "shoal_control_dataplane_pushes_total",
            "Commands pushed to dataplane workers, by result.",
            &[("result", result)],
            *n,
        );
    }
    for w in &s.workers {
        let worker = w.worker.to_string();
        out.gauge(
            "shoal_dataplane_up",
            "1 when the worker's stats segment is readable.",
            &[("worker", &worker)],
            f64::from(u8::from(w.stats_open)),
        );
        out.gauge(
            "shoal_dataplane_command_ring_open",
            "1 when control has the worker's command ring open.",
            &[("worker", &worker)],
            f64::from(u8::from(w.ring_open)),
        );
        if s.flow_table_capacity > 0 {
            out.gauge(
                "shoal_dataplane_flow_table_capacity",
                "Flows the worker's flow table holds (dataplane.flow_table.capacity).",
                &[("worker", &worker)],
                s.flow_table_capacity as f64,
            );
        }
        if let Some(age) = w.stats_age_seconds {
            out.gauge(
                "shoal_dataplane_stats_age_seconds",
                "Seconds since the worker last wrote its stats segment.",
                &[("worker", &worker)],
                age,
            );
        }
        for (name, v) in w.names.iter().zip(&w.values) {
            dataplane_counter(&mut out, &worker, name, *v);
        }
    }
    out.finish()
}

/// The BGP announcer (`[control.bgp]`): every (to, reason) pair is
/// written, 0 until it happens, so `increase()` sees the first one.
fn bgp(out: &mut Out, b: &crate::bgp::BgpStatus) {
    out.gauge(
        "shoal_bgp_announced",
        "1 when this member's BIRD announces the VIP routes (control.bgp).",
        &[],
        f64::from(u8::from(b.announced)),
    );
    out.gauge(
        "shoal_bgp_wanted",
        "1 when control wants the VIP announced (differs from shoal_bgp_announced while birdc fails).",
        &[],
        f64::from(u8::from(b.wanted)),
    );
    let pairs = [("announced", "serving")].into_iter().chain(
        [
            "starting",
            "not_live",
            "draining",
            "lease_lapsed",
            "health_failed",
            "shutdown",
        ]
        .map(|r| ("withdrawn", r)),
    );
    for (to, reason) in pairs {
        let n = b
            .transitions
            .iter()
            .find(|t| t.to == to && t.reason == reason)
            .map_or(0, |t| t.count);
        out.counter(
            "shoal_bgp_transitions_total",
            "Announcements and withdrawals applied through birdc, by new state and reason.",
            &[("to", to), ("reason", reason)],
            n,
        );
    }
    for session in &b.sessions {
        out.gauge(
            "shoal_bgp_session_up",
            "1 when the BGP session (a BIRD protocol) is established.",
            &[("peer", &session.name)],
            f64::from(u8::from(session.up)),
        );
    }
    out.counter(
        "shoal_bgp_birdc_errors_total",
        "birdc calls that failed (retried).",
        &[],
        b.birdc_errors,
    );
    out.counter(
        "shoal_bgp_health_checks_total",
        "Health checks of the local application (control.bgp.health_url).",
        &[],
        b.health_checks,
    );
    out.gauge(
        "shoal_bgp_health_failing",
        "Consecutive failed health checks of the local application.",
        &[],
        f64::from(b.health_failed_in_a_row),
    );
}

/// The own load's figures beyond the announced ones (`control.load`).
fn load_detail(out: &mut Out, d: &crate::status::LoadDetail) {
    let f = &d.figures;
    out.gauge(
        "shoal_load_connections_ratio",
        "Open connections as a share of the flow tables' capacity (smoothed).",
        &[],
        f64::from(f.connections_share),
    );
    if let Some(h) = f.host_cpu {
        out.gauge(
            "shoal_load_host_cpu_ratio",
            "Busy share of the host's CPUs outside dataplane.cores (smoothed; absent when unknown).",
            &[],
            f64::from(h),
        );
    }
    if let Some(a) = f.app {
        out.gauge(
            "shoal_load_app_share_ratio",
            "CPU time of the application's processes plus the time they waited for a CPU, over the CPUs it can use (smoothed; absent when unknown).",
            &[],
            f64::from(a),
        );
    }
    if let Some(cpus) = d.app_cpus {
        out.gauge(
            "shoal_load_app_cpus",
            "CPUs the application's share is taken of (control.load.app_cpus).",
            &[],
            cpus,
        );
        for reason in ["pid_file", "process_gone"] {
            out.counter(
                "shoal_load_app_unavailable_total",
                "Load intervals without the application figure, by reason (pid file missing or unreadable, process gone).",
                &[("reason", reason)],
                d.app_unavailable.get(reason).copied().unwrap_or(0),
            );
        }
    }
    let w = &f.weights;
    for (figure, v) in [
        ("busy", w.busy),
        ("connections", w.connections),
        ("host_cpu", w.host_cpu),
        ("app", w.app),
    ] {
        out.gauge(
            "shoal_load_weight",
            "Weight of each figure in the composite load (control.load.weights).",
            &[("figure", figure)],
            v,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::LoadFigures;
    use crate::status::{MemberStatus, NetworkStatus};
    use std::net::Ipv4Addr;

    pub(crate) fn fixed_status() -> Status {
        let names = [
            "wire_rx_packets",
            "wire_rx_bytes",
            "kernel_tx_packets",
            "drop_other_host",
            "drop_malformed",
            "malformed_tcp_bad_data_offset",
            "syn_accepted",
            "flows_live",
            "flows_established",
            "polls_busy",
            "polls_idle",
            "arp_vip_replied",
            "claims_refused_lease",
            "lease_held",
            "lease_until_ns",
        ];
        Status {
            cluster: "lab".into(),
            member: "srv1".into(),
            id: 1,
            epoch: 7,
            epoch_changes: 3,
            converged: true,
            settled: true,
            members: vec![
                MemberStatus {
                    id: 1,
                    name: "srv1".into(),
                    address: Ipv4Addr::new(198, 18, 0, 11),
                    local: true,
                    alive: true,
                    weight: 100,
                    draining: false,
                    load: LoadFigures {
                        load: 0.25,
                        busy: 0.25,
                        connections: 12.0,
                        ..LoadFigures::default()
                    },
                    incarnation: 1,
                    last_heard_ms_ago: None,
                    epoch: 7,
                },
                MemberStatus {
                    id: 2,
                    name: "srv2".into(),
                    address: Ipv4Addr::new(198, 18, 0, 12),
                    local: false,
                    alive: false,
                    weight: 50,
                    draining: true,
                    load: LoadFigures::default(),
                    incarnation: 0,
                    last_heard_ms_ago: None,
                    epoch: 0,
                },
            ],
            messages_received: [("accepted", 10), ("bad_mac", 2)]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            networks: vec![NetworkStatus {
                name: "lab".into(),
                sent: 20,
                send_errors: 1,
            }],
            dataplane_pushes: [("ok".to_owned(), 4)].into_iter().collect(),
            workers: vec![crate::status::test_worker(&names)],
            flow_table_capacity: 1024,
            load_detail: crate::status::LoadDetail {
                figures: crate::load::LocalLoad {
                    host_cpu: Some(0.5),
                    app: Some(0.75),
                    connections_share: 0.25,
                    weights: crate::load::Weights {
                        busy: 1.0,
                        connections: 1.0,
                        host_cpu: 0.0,
                        app: 1.0,
                    },
                },
                app_cpus: Some(1.0),
                app_pid_files: vec!["/run/nginx.pid".into()],
                host_cpu_note: None,
                app_note: None,
                app_last_cpu: Some(0.25),
                app_last_wait: Some(0.5),
                app_unavailable: [("pid_file".to_owned(), 3)].into_iter().collect(),
            },
            epoch_confirmed: true,
            lease: crate::status::LeaseStatus {
                held: true,
                remaining_ms: 600,
                refused: None,
            },
            ..Status::default()
        }
    }

    #[test]
    fn steering_figures_per_worker_pair() {
        let mut status = fixed_status();
        let mut w = crate::status::test_worker(&[
            "steered_in_packets",
            "steered_out_packets",
            "steered_to_worker_0",
            "steer_drops_to_worker_0",
            "drop_steer_ring_full",
            "workers",
            "worker_index",
        ]);
        w.worker = 1;
        status.workers.push(w);
        let text = render(&status);
        for line in [
            "shoal_dataplane_steered_packets_total{worker=\"1\",direction=\"in\"} 1",
            "shoal_dataplane_steered_packets_total{worker=\"1\",direction=\"out\"} 2",
            "shoal_dataplane_steered_total{worker=\"1\",to=\"0\"} 3",
            "shoal_dataplane_steer_drops_total{worker=\"1\",to=\"0\"} 4",
            "shoal_dataplane_drops_total{worker=\"1\",reason=\"steer_ring_full\"} 5",
            "shoal_dataplane_workers{worker=\"1\"} 6",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("worker_index"), "{text}");
    }

    #[test]
    fn keep_alive_moves_are_their_own_families() {
        let mut status = fixed_status();
        status.workers.push(crate::status::test_worker(&[
            "persist_connections",
            "persist_requests",
            "persist_requests_here",
            "persist_requests_held",
            "persist_untracked_gap",
            "rehandoff_done",
            "rehandoff_fallback",
            "persist_held_bytes",
            "persist_hold_ms",
        ]));
        let text = render(&status);
        for line in [
            "shoal_dataplane_persist_connections_total{worker=\"0\"} 1",
            "shoal_dataplane_persist_requests_total{worker=\"0\",dispatched=\"all\"} 2",
            "shoal_dataplane_persist_requests_total{worker=\"0\",dispatched=\"here\"} 3",
            "shoal_dataplane_persist_requests_total{worker=\"0\",dispatched=\"held\"} 4",
            "shoal_dataplane_persist_untracked_total{worker=\"0\",reason=\"gap\"} 5",
            "shoal_dataplane_rehandoffs_total{worker=\"0\",outcome=\"done\"} 6",
            "shoal_dataplane_rehandoffs_total{worker=\"0\",outcome=\"fallback\"} 7",
            "shoal_dataplane_persist_held_bytes_total{worker=\"0\"} 8",
            "shoal_dataplane_persist_hold_seconds_total{worker=\"0\"} 0.009",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("event=\"persist_"), "{text}");
        assert!(!text.contains("event=\"rehandoff_"), "{text}");
    }

    #[test]
    fn syn_proxy_events_are_one_family() {
        let mut status = fixed_status();
        status.workers.push(crate::status::test_worker(&[
            "synproxy_cookie_sent",
            "synproxy_accepted",
            "synproxy_cookie_rejected",
            "synproxy_engaged",
            "synproxy_disengaged",
        ]));
        let text = render(&status);
        for line in [
            "# TYPE shoal_dataplane_synproxy_total counter",
            "shoal_dataplane_synproxy_total{worker=\"0\",event=\"cookie_sent\"} 1",
            "shoal_dataplane_synproxy_total{worker=\"0\",event=\"accepted\"} 2",
            "shoal_dataplane_synproxy_total{worker=\"0\",event=\"cookie_rejected\"} 3",
            "shoal_dataplane_synproxy_total{worker=\"0\",event=\"engaged\"} 4",
            "shoal_dataplane_synproxy_total{worker=\"0\",event=\"disengaged\"} 5",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("event=\"synproxy_"), "{text}");
    }

    #[test]
    fn pins_are_a_gauge_and_one_family() {
        let mut status = fixed_status();
        status.workers.push(crate::status::test_worker(&[
            "pins_live",
            "placed_pinned",
            "pin_ignored_stateless",
            "pin_target_gone",
            "pin_rejected_full",
        ]));
        let text = render(&status);
        for line in [
            "# TYPE shoal_dataplane_pins_live gauge",
            "shoal_dataplane_pins_live{worker=\"0\"} 1",
            "# TYPE shoal_dataplane_pins_total counter",
            "shoal_dataplane_pins_total{worker=\"0\",outcome=\"placed\"} 2",
            "shoal_dataplane_pins_total{worker=\"0\",outcome=\"ignored_stateless\"} 3",
            "shoal_dataplane_pins_total{worker=\"0\",outcome=\"target_gone\"} 4",
            "shoal_dataplane_pins_total{worker=\"0\",outcome=\"rejected_full\"} 5",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("event=\"pin"), "{text}");
        assert!(!text.contains("event=\"placed_pinned"), "{text}");
    }

    #[test]
    fn busy_time_is_seconds() {
        let mut status = fixed_status();
        let mut w = crate::status::test_worker(&["polls_busy", "busy_ns"]);
        w.values = vec![10, 2_500_000_000];
        status.workers.push(w);
        let text = render(&status);
        for line in [
            "# TYPE shoal_dataplane_busy_seconds_total counter",
            "shoal_dataplane_busy_seconds_total{worker=\"0\"} 2.5",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn dispatch_reasons_are_one_family() {
        let mut status = fixed_status();
        let mut w = crate::status::test_worker(&[
            "dispatch_lard_moved",
            "dispatch_dtcp_holder",
            "dispatch_dtcp_placed",
            "dispatch_dtcp_replicated",
        ]);
        w.worker = 1;
        status.workers.push(w);
        let text = render(&status);
        for line in [
            "# TYPE shoal_dataplane_dispatch_total counter",
            "shoal_dataplane_dispatch_total{worker=\"1\",reason=\"lard_moved\"} 1",
            "shoal_dataplane_dispatch_total{worker=\"1\",reason=\"dtcp_holder\"} 2",
            "shoal_dataplane_dispatch_total{worker=\"1\",reason=\"dtcp_placed\"} 3",
            "shoal_dataplane_dispatch_total{worker=\"1\",reason=\"dtcp_replicated\"} 4",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("event=\"dispatch_"), "{text}");
    }

    #[test]
    fn request_classes_are_two_families_with_service_and_class() {
        let mut status = fixed_status();
        let mut w = crate::status::test_worker(&[
            "class/web/api/admitted",
            "class/web/api/refused_rate",
            "class/a/b/bulk/refused_waited_too_long",
        ]);
        w.worker = 2;
        status.workers.push(w);
        let text = render(&status);
        for line in [
            "# TYPE shoal_dataplane_class_admitted_total counter",
            "shoal_dataplane_class_admitted_total{worker=\"2\",service=\"web\",class=\"api\"} 1",
            "shoal_dataplane_class_refused_total{worker=\"2\",service=\"web\",class=\"api\",reason=\"rate\"} 2",
            "shoal_dataplane_class_refused_total{worker=\"2\",service=\"a/b\",class=\"bulk\",reason=\"waited_too_long\"} 3",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("event=\"class/"), "{text}");
    }

    #[test]
    fn class_scheduling_is_a_counter_two_gauges_and_a_histogram() {
        let mut status = fixed_status();
        let mut w = crate::status::test_worker(&[
            "class/web/bulk/released",
            "class/web/bulk/waiting",
            "class/web/bulk/active",
            "class/web/bulk/wait_le_1",
            "class/web/bulk/wait_le_250",
            "class/web/bulk/wait_le_inf",
            "class/web/bulk/wait_sum_us",
        ]);
        w.worker = 0;
        status.workers.push(w);
        let text = render(&status);
        let expected = "\
# HELP shoal_dataplane_class_wait_seconds Time requests waited in the serving member's scheduler before release or refusal, by class.
# TYPE shoal_dataplane_class_wait_seconds histogram
shoal_dataplane_class_wait_seconds_bucket{worker=\"0\",service=\"web\",class=\"bulk\",le=\"0.001\"} 4
shoal_dataplane_class_wait_seconds_bucket{worker=\"0\",service=\"web\",class=\"bulk\",le=\"0.25\"} 5
shoal_dataplane_class_wait_seconds_bucket{worker=\"0\",service=\"web\",class=\"bulk\",le=\"+Inf\"} 6
shoal_dataplane_class_wait_seconds_count{worker=\"0\",service=\"web\",class=\"bulk\"} 6
shoal_dataplane_class_wait_seconds_sum{worker=\"0\",service=\"web\",class=\"bulk\"} 0.000007
";
        assert!(text.contains(expected), "{expected} missing in\n{text}");
        for line in [
            "# TYPE shoal_dataplane_class_released_total counter",
            "shoal_dataplane_class_released_total{worker=\"0\",service=\"web\",class=\"bulk\"} 1",
            "# TYPE shoal_dataplane_class_queue_length gauge",
            "shoal_dataplane_class_queue_length{worker=\"0\",service=\"web\",class=\"bulk\"} 2",
            "# TYPE shoal_dataplane_class_active gauge",
            "shoal_dataplane_class_active{worker=\"0\",service=\"web\",class=\"bulk\"} 3",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("event=\"class/"), "{text}");
    }

    #[test]
    fn exact_text_for_a_fixed_snapshot() {
        let text = render(&fixed_status());
        let expected = "\
# HELP shoal_control_dataplane_pushes_total Commands pushed to dataplane workers, by result.
# TYPE shoal_control_dataplane_pushes_total counter
shoal_control_dataplane_pushes_total{result=\"ok\"} 4
# HELP shoal_control_messages_received_total Control announcements received, by outcome.
# TYPE shoal_control_messages_received_total counter
shoal_control_messages_received_total{outcome=\"accepted\"} 10
shoal_control_messages_received_total{outcome=\"bad_mac\"} 2
# HELP shoal_control_messages_sent_total Control announcements sent, per network.
# TYPE shoal_control_messages_sent_total counter
shoal_control_messages_sent_total{network=\"lab\"} 20
# HELP shoal_control_send_errors_total Control announcements the socket refused, per network.
# TYPE shoal_control_send_errors_total counter
shoal_control_send_errors_total{network=\"lab\"} 1
# HELP shoal_dataplane_bytes_total Bytes received/transmitted per port.
# TYPE shoal_dataplane_bytes_total counter
shoal_dataplane_bytes_total{worker=\"0\",port=\"wire\",direction=\"rx\"} 2
# HELP shoal_dataplane_command_ring_open 1 when control has the worker's command ring open.
# TYPE shoal_dataplane_command_ring_open gauge
shoal_dataplane_command_ring_open{worker=\"0\"} 1
# HELP shoal_dataplane_drops_total Frames dropped, by reason.
# TYPE shoal_dataplane_drops_total counter
shoal_dataplane_drops_total{worker=\"0\",reason=\"other_host\"} 4
shoal_dataplane_drops_total{worker=\"0\",reason=\"malformed\"} 5
# HELP shoal_dataplane_events_total Other pipeline outcomes, by dataplane counter name.
# TYPE shoal_dataplane_events_total counter
shoal_dataplane_events_total{worker=\"0\",event=\"arp_vip_replied\"} 12
# HELP shoal_dataplane_flow_table_capacity Flows the worker's flow table holds (dataplane.flow_table.capacity).
# TYPE shoal_dataplane_flow_table_capacity gauge
shoal_dataplane_flow_table_capacity{worker=\"0\"} 1024
# HELP shoal_dataplane_flows Flows in the worker's flow table, by state.
# TYPE shoal_dataplane_flows gauge
shoal_dataplane_flows{worker=\"0\",state=\"established\"} 9
# HELP shoal_dataplane_flows_live Flows in the worker's flow table.
# TYPE shoal_dataplane_flows_live gauge
shoal_dataplane_flows_live{worker=\"0\"} 8
# HELP shoal_dataplane_lease_held 1 while the worker holds control's lease (claims new connections).
# TYPE shoal_dataplane_lease_held gauge
shoal_dataplane_lease_held{worker=\"0\"} 14
# HELP shoal_dataplane_malformed_total Malformed frames, by protocol layer and parse error.
# TYPE shoal_dataplane_malformed_total counter
shoal_dataplane_malformed_total{worker=\"0\",layer=\"tcp\",reason=\"bad_data_offset\"} 6
# HELP shoal_dataplane_packets_total Frames received/transmitted per port.
# TYPE shoal_dataplane_packets_total counter
shoal_dataplane_packets_total{worker=\"0\",port=\"wire\",direction=\"rx\"} 1
shoal_dataplane_packets_total{worker=\"0\",port=\"kernel\",direction=\"tx\"} 3
# HELP shoal_dataplane_polls_total Worker polls that found packets (busy) or none (idle).
# TYPE shoal_dataplane_polls_total counter
shoal_dataplane_polls_total{worker=\"0\",result=\"busy\"} 10
shoal_dataplane_polls_total{worker=\"0\",result=\"idle\"} 11
# HELP shoal_dataplane_selections_total Inspector selection outcomes for new connections and stateless packets.
# TYPE shoal_dataplane_selections_total counter
shoal_dataplane_selections_total{worker=\"0\",outcome=\"syn_accepted\"} 7
shoal_dataplane_selections_total{worker=\"0\",outcome=\"claims_refused_lease\"} 13
# HELP shoal_dataplane_stats_age_seconds Seconds since the worker last wrote its stats segment.
# TYPE shoal_dataplane_stats_age_seconds gauge
shoal_dataplane_stats_age_seconds{worker=\"0\"} 0.5
# HELP shoal_dataplane_up 1 when the worker's stats segment is readable.
# TYPE shoal_dataplane_up gauge
shoal_dataplane_up{worker=\"0\"} 1
# HELP shoal_epoch Membership epoch number in force on this member.
# TYPE shoal_epoch gauge
shoal_epoch 7
# HELP shoal_epoch_changes_total Membership epoch changes since start.
# TYPE shoal_epoch_changes_total counter
shoal_epoch_changes_total 3
# HELP shoal_epoch_confirmed 1 when every live peer's dataplane runs this member's epoch table.
# TYPE shoal_epoch_confirmed gauge
shoal_epoch_confirmed 1
# HELP shoal_epoch_converged 1 when every live peer announces this member's epoch and table.
# TYPE shoal_epoch_converged gauge
shoal_epoch_converged 1
# HELP shoal_lease_held 1 when control renews its dataplane's lease (settled, majority heard, every live peer acknowledging).
# TYPE shoal_lease_held gauge
shoal_lease_held 1
# HELP shoal_lease_remaining_seconds Time left of the lease last sent to the dataplane.
# TYPE shoal_lease_remaining_seconds gauge
shoal_lease_remaining_seconds 0.6
# HELP shoal_load_app_cpus CPUs the application's share is taken of (control.load.app_cpus).
# TYPE shoal_load_app_cpus gauge
shoal_load_app_cpus 1
# HELP shoal_load_app_share_ratio CPU time of the application's processes plus the time they waited for a CPU, over the CPUs it can use (smoothed; absent when unknown).
# TYPE shoal_load_app_share_ratio gauge
shoal_load_app_share_ratio 0.75
# HELP shoal_load_app_unavailable_total Load intervals without the application figure, by reason (pid file missing or unreadable, process gone).
# TYPE shoal_load_app_unavailable_total counter
shoal_load_app_unavailable_total{reason=\"pid_file\"} 3
shoal_load_app_unavailable_total{reason=\"process_gone\"} 0
# HELP shoal_load_connections_ratio Open connections as a share of the flow tables' capacity (smoothed).
# TYPE shoal_load_connections_ratio gauge
shoal_load_connections_ratio 0.25
# HELP shoal_load_host_cpu_ratio Busy share of the host's CPUs outside dataplane.cores (smoothed; absent when unknown).
# TYPE shoal_load_host_cpu_ratio gauge
shoal_load_host_cpu_ratio 0.5
# HELP shoal_load_weight Weight of each figure in the composite load (control.load.weights).
# TYPE shoal_load_weight gauge
shoal_load_weight{figure=\"busy\"} 1
shoal_load_weight{figure=\"connections\"} 1
shoal_load_weight{figure=\"host_cpu\"} 0
shoal_load_weight{figure=\"app\"} 1
# HELP shoal_member_busy_ratio Fraction of the member's dataplane polls that found packets (smoothed).
# TYPE shoal_member_busy_ratio gauge
shoal_member_busy_ratio{member=\"srv1\",id=\"1\"} 0.25
shoal_member_busy_ratio{member=\"srv2\",id=\"2\"} 0
# HELP shoal_member_connections Open connections on the member (smoothed).
# TYPE shoal_member_connections gauge
shoal_member_connections{member=\"srv1\",id=\"1\"} 12
shoal_member_connections{member=\"srv2\",id=\"2\"} 0
# HELP shoal_member_draining 1 when the member is drained (no new connections).
# TYPE shoal_member_draining gauge
shoal_member_draining{member=\"srv1\",id=\"1\"} 0
shoal_member_draining{member=\"srv2\",id=\"2\"} 1
# HELP shoal_member_load_ratio Member load as a share of capacity (compared with max_load).
# TYPE shoal_member_load_ratio gauge
shoal_member_load_ratio{member=\"srv1\",id=\"1\"} 0.25
shoal_member_load_ratio{member=\"srv2\",id=\"2\"} 0
# HELP shoal_member_up 1 when the member is alive in this member's view.
# TYPE shoal_member_up gauge
shoal_member_up{member=\"srv1\",id=\"1\"} 1
shoal_member_up{member=\"srv2\",id=\"2\"} 0
# HELP shoal_member_weight Member weight in force (relative share of new connections).
# TYPE shoal_member_weight gauge
shoal_member_weight{member=\"srv1\",id=\"1\"} 100
shoal_member_weight{member=\"srv2\",id=\"2\"} 50
";
        for (i, (got, want)) in text.lines().zip(expected.lines()).enumerate() {
            assert_eq!(got, want, "line {}", i + 1);
        }
        assert_eq!(text, expected);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(0.1), "0.1");
    }

    fn bgp_status() -> Status {
        let mut s = fixed_status();
        s.bgp = Some(crate::bgp::BgpStatus {
            announced: true,
            wanted: true,
            reason: "serving".into(),
            protocol: "shoal_vips".into(),
            protocol_state: Some("up".into()),
            health_checks: 40,
            health_failed_in_a_row: 1,
            health_error: Some("HTTP 503".into()),
            sessions: vec![crate::bgp::SessionStatus {
                name: "tor1".into(),
                up: true,
                state: "up".into(),
                info: "Established".into(),
            }],
            transitions: vec![crate::bgp::Transition {
                to: "withdrawn".into(),
                reason: "draining".into(),
                count: 2,
            }],
            birdc_errors: 3,
            last_error: None,
        });
        s
    }

    #[test]
    fn bgp_families() {
        let text = render(&bgp_status());
        for line in [
            "shoal_bgp_announced 1",
            "shoal_bgp_wanted 1",
            "shoal_bgp_transitions_total{to=\"announced\",reason=\"serving\"} 0",
            "shoal_bgp_transitions_total{to=\"withdrawn\",reason=\"draining\"} 2",
            "shoal_bgp_transitions_total{to=\"withdrawn\",reason=\"shutdown\"} 0",
            "shoal_bgp_session_up{peer=\"tor1\"} 1",
            "shoal_bgp_birdc_errors_total 3",
            "shoal_bgp_health_checks_total 40",
            "shoal_bgp_health_failing 1",
            "# TYPE shoal_bgp_transitions_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert_eq!(text.matches("shoal_bgp_transitions_total{").count(), 7);
        assert!(!render(&fixed_status()).contains("shoal_bgp"));
    }

    #[test]
    fn promtool_accepts_the_output() {
        promtool_check(&render(&fixed_status()));
        promtool_check(&render(&bgp_status()));
    }

    fn promtool_check(text: &str) {
        let Ok(out) = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(text.as_bytes())?;
                }
                child.wait_with_output()
            })
        else {
            // The test command (tests/run.sh, CI) installs promtool and sets
            // SHOAL_REQUIRE_TOOLS=1: there a missing promtool is a failure.
            assert!(
                std::env::var_os("SHOAL_REQUIRE_TOOLS").is_none(),
                "promtool not found (apt package `prometheus`) and SHOAL_REQUIRE_TOOLS is set"
            );
            println!("note: promtool not installed (apt package `prometheus`); check skipped");
            return;
        };
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    }
}
