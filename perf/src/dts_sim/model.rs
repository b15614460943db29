//! The throughput model: per-connection CPU costs, the four
//! configurations, the CPU each node spends per connection of the cluster's
//! rate, and the rate at which the most loaded node reaches its capacity.
//!
//! Every node is one CPU of capacity 1 s/s. A connection costs CPU on its
//! *inspector* (the member whose selector share it falls in, or the single
//! inspector), on the member that *serves* it, and a little on every other
//! member, which sees its client's packets on the broadcast segment and lets
//! them go (*bystander*). Inspector and server are drawn independently
//! (round-robin placement, as the seed's inspector hands over), except for
//! L4 multiple with [`L4Placement::Local`], where the inspector serves (Shoal's
//! `local` mode, DTS's layer-4 balancing). With a cluster rate of `r`
//! connections per second, node `i` is busy `r × load_i` seconds per
//! second, so the cluster saturates at `r = 1 / max_i load_i`.

use serde::{Deserialize, Serialize};

/// Per-connection CPU costs in nanoseconds. Defaults and where each comes
/// from: the module documentation of [`super`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Costs {
    /// The web server serving one small request on its connection,
    /// including the kernel's TCP work (handshake, request, response, close).
    pub app_ns: f64,
    /// The dataplane's work per packet of an established flow.
    pub per_packet_ns: f64,
    /// Packets of one connection through the serving member's dataplane.
    pub packets: f64,
    /// The inspector's dataplane work for one L4 connection (selection on
    /// the SYN, the flow, every packet forwarded): `packets × per_packet_ns`
    /// unless given.
    pub l4_inspect_ns: f64,
    /// The inspector's work for one L7 (splice) connection: SYN cookie,
    /// request read, dispatch, handoff offer.
    pub l7_inspect_ns: f64,
    /// The receiving member's work for one spliced connection: the offer,
    /// the replay into its kernel, the translated flow (its packets are
    /// charged apart, `packets × per_packet_ns`).
    pub l7_receive_ns: f64,
    /// A member that neither inspects nor serves a connection: seeing its
    /// client's packets on the broadcast segment and letting them go.
    pub bystander_ns: f64,
}

impl Default for Costs {
    fn default() -> Self {
        Costs {
            app_ns: 150_000.0,
            per_packet_ns: 75.0,
            packets: 10.0,
            l4_inspect_ns: 750.0,
            l7_inspect_ns: 400_000.0,
            l7_receive_ns: 400_000.0,
            bystander_ns: 300.0,
        }
    }
}

impl Costs {
    /// The fields by name, in the order the report prints them.
    pub fn fields(&self) -> [(&'static str, f64); 7] {
        [
            ("app_ns", self.app_ns),
            ("per_packet_ns", self.per_packet_ns),
            ("packets", self.packets),
            ("l4_inspect_ns", self.l4_inspect_ns),
            ("l7_inspect_ns", self.l7_inspect_ns),
            ("l7_receive_ns", self.l7_receive_ns),
            ("bystander_ns", self.bystander_ns),
        ]
    }

    /// Every cost finite and non-negative, and a connection costs its
    /// server something (`app_ns > 0`), so every rate is finite.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in self.fields() {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} must be a finite number >= 0, not {v}"));
            }
        }
        if self.app_ns <= 0.0 {
            return Err("app_ns must be > 0 (a connection costs its server something)".to_owned());
        }
        Ok(())
    }

    /// The serving member's dataplane for one connection it did not
    /// inspect: `packets × per_packet_ns`.
    pub fn serve_packets_ns(&self) -> f64 {
        self.packets * self.per_packet_ns
    }

    /// Everything a spliced connection costs its server: the application,
    /// the receive and the translated packets.
    pub fn l7_serve_ns(&self) -> f64 {
        self.app_ns + self.l7_receive_ns + self.serve_packets_ns()
    }
}

/// Which dataplane work a connection gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// L4: the inspector picks the server from the client key alone.
    L4,
    /// L7 splice: the inspector reads the request and hands the connection
    /// over to the server it picks.
    L7,
}

/// Who serves an L4 connection when every member inspects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum L4Placement {
    /// The inspector serves (Shoal's `local` mode, DTS's layer-4
    /// balancing): serving follows the selector's shares.
    Local,
    /// Round-robin over every member (DPR to the others), as the seed's
    /// placement; the server pays the forwarded packets.
    RoundRobin,
}

impl L4Placement {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            L4Placement::Local => "local",
            L4Placement::RoundRobin => "round-robin",
        }
    }
}

/// The single inspector's shares: member 0 inspects everything.
pub fn single_shares(servers: usize) -> Vec<f64> {
    let mut s = vec![0.0; servers];
    if let Some(first) = s.first_mut() {
        *first = 1.0;
    }
    s
}

/// CPU nanoseconds node `i` spends per connection of the cluster's rate,
/// for inspection shares `shares` (summing to 1; one entry per node).
///
/// A single inspector is `shares = [1, 0, ..]` and always places
/// round-robin. `multiple_l4` says how L4 is placed when `shares` come from
/// a selector (every member inspects).
pub fn node_loads(
    costs: &Costs,
    layer: Layer,
    shares: &[f64],
    multiple_l4: Option<L4Placement>,
) -> Vec<f64> {
    let n = shares.len();
    if n == 0 {
        return Vec::new();
    }
    // Round-robin placement: every node serves 1/N, independently of who
    // inspected the connection.
    let p = 1.0 / n as f64;
    shares
        .iter()
        .map(|&s| match (layer, multiple_l4) {
            (Layer::L4, Some(L4Placement::Local)) => {
                // Inspector = server: its share of the dataplane work and
                // of the application; a bystander for the rest.
                s * (costs.l4_inspect_ns + costs.app_ns) + (1.0 - s) * costs.bystander_ns
            }
            (Layer::L4, _) => {
                s * costs.l4_inspect_ns
                    + p * costs.app_ns
                    + p * (1.0 - s) * costs.serve_packets_ns()
                    + (1.0 - s) * (1.0 - p) * costs.bystander_ns
            }
            (Layer::L7, _) => {
                s * costs.l7_inspect_ns
                    + p * costs.l7_serve_ns()
                    + (1.0 - s) * (1.0 - p) * costs.bystander_ns
            }
        })
        .collect()
}

/// The cluster's connection rate (per second) at which its most loaded
/// node reaches capacity, and that node's index (the bottleneck).
pub fn saturation(loads: &[f64]) -> (f64, usize) {
    let (i, max) = loads
        .iter()
        .copied()
        .enumerate()
        .fold(
            (0, 0.0_f64),
            |(bi, bm), (i, l)| if l > bm { (i, l) } else { (bi, bm) },
        );
    if max <= 0.0 {
        return (f64::INFINITY, i);
    }
    (1e9 / max, i)
}

/// The four configurations' rates for one cluster: `multiple` are the
/// selector's inspection shares (one per node).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// L4, one inspector placing round-robin (DPR).
    pub l4_single: f64,
    /// L4, every member inspects its share.
    pub l4_multiple: f64,
    /// L7 splice, one inspector handing over round-robin.
    pub l7_single: f64,
    /// L7 splice, every member inspects its share, hands over round-robin.
    pub l7_multiple: f64,
}

/// The four rates of a cluster whose selector gives `multiple` shares.
pub fn rates(costs: &Costs, multiple: &[f64], placement: L4Placement) -> Rates {
    let single = single_shares(multiple.len());
    let rate = |layer, shares: &[f64], pl| saturation(&node_loads(costs, layer, shares, pl)).0;
    Rates {
        l4_single: rate(Layer::L4, &single, None),
        l4_multiple: rate(Layer::L4, multiple, Some(placement)),
        l7_single: rate(Layer::L7, &single, None),
        l7_multiple: rate(Layer::L7, multiple, Some(placement)),
    }
}

/// The L7 inspection cost at which multiple inspectors reach `target` times
/// the single inspector's rate with these `shares` (the other costs as
/// given), by bisection; `None` if no cost up to 1 000 s reaches it (the
/// ratio tends to `1 / max share` as inspection dominates).
pub fn l7_inspect_for_ratio(
    costs: &Costs,
    shares: &[f64],
    placement: L4Placement,
    target: f64,
) -> Option<f64> {
    let ratio = |x: f64| {
        let c = Costs {
            l7_inspect_ns: x,
            ..*costs
        };
        let r = rates(&c, shares, placement);
        r.l7_multiple / r.l7_single
    };
    let (mut lo, mut hi) = (0.0_f64, 1e12_f64);
    if ratio(lo) >= target {
        return Some(0.0);
    }
    if ratio(hi) < target {
        return None;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if ratio(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}
