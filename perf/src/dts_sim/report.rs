//! One run of the model over 1..=N servers: the inputs, a row per cluster
//! size, the same for every selector, and the comparison with the seed's
//! figure; printed as Markdown or as JSON (`{"inputs": .., "rows": ..}`).

use core::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::model::{l7_inspect_for_ratio, rates, Costs, L4Placement, Rates};
use super::shares::{client_keys, selector_shares, SelectorKind};

/// The seed's §4.2: with 8 nodes, multiple request inspectors give about
/// 3.4 times the single inspector's connection rate.
pub const SEED_SERVERS: usize = 8;
/// The seed's ratio (abstract and §1: "about 3.4 times").
pub const SEED_RATIO: f64 = 3.4;
/// The check: L4 with multiple inspectors on N servers gives at least this
/// fraction of N times one server.
pub const L4_CHECK: f64 = 0.9;

/// Everything a run depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    /// Per-connection CPU costs.
    pub costs: Costs,
    /// Cluster sizes 1..=`max_servers` (at most 16).
    pub max_servers: usize,
    /// Client keys hashed to measure the shares.
    pub keys: u32,
    /// Client addresses the keys are spread over.
    pub clients: u32,
    /// Virtual nodes per member of the DTS ring (the seed: 63).
    pub vnodes: u32,
    /// The selector of the main table.
    pub selector: SelectorKind,
    /// Who serves an L4 connection when every member inspects.
    pub l4_placement: L4Placement,
}

impl Default for Inputs {
    fn default() -> Self {
        Inputs {
            costs: Costs::default(),
            max_servers: 16,
            keys: 200_000,
            clients: 1_000,
            vnodes: 63,
            selector: SelectorKind::DtsRing,
            l4_placement: L4Placement::RoundRobin,
        }
    }
}

impl Inputs {
    /// The limits the command line enforces.
    pub fn validate(&self) -> Result<(), String> {
        self.costs.validate()?;
        if !(1..=16).contains(&self.max_servers) {
            return Err(format!(
                "--servers must be 1..=16, not {}",
                self.max_servers
            ));
        }
        if !(1_000..=10_000_000).contains(&self.keys) {
            return Err(format!("--keys must be 1000..=10000000, not {}", self.keys));
        }
        if self.clients == 0 || self.keys.div_ceil(self.clients) > 64_512 {
            return Err(format!(
                "--clients must be >= 1 and leave at most 64512 ports per client \
                 (keys / clients), not {}",
                self.clients
            ));
        }
        if !(1..=4096).contains(&self.vnodes) {
            return Err(format!("--vnodes must be 1..=4096, not {}", self.vnodes));
        }
        Ok(())
    }
}

/// One cluster size with the main table's selector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Servers in the cluster.
    pub servers: usize,
    /// Connections per second, L4, single inspector.
    pub l4_single: f64,
    /// Connections per second, L4, multiple inspectors.
    pub l4_multiple: f64,
    /// Connections per second, L7 splice, single inspector.
    pub l7_single: f64,
    /// Connections per second, L7 splice, multiple inspectors.
    pub l7_multiple: f64,
    /// `l4_single` over one server's L4 rate.
    pub l4_single_x: f64,
    /// `l4_multiple` over one server's L4 rate.
    pub l4_multiple_x: f64,
    /// `l7_single` over one server's L7 rate.
    pub l7_single_x: f64,
    /// `l7_multiple` over one server's L7 rate.
    pub l7_multiple_x: f64,
    /// `l4_multiple / l4_single`.
    pub l4_multiple_over_single: f64,
    /// `l7_multiple / l7_single` (the seed's figure at 8 servers).
    pub l7_multiple_over_single: f64,
    /// The largest inspection share of one member.
    pub max_share: f64,
    /// The smallest.
    pub min_share: f64,
    /// `l4_multiple_x >= 0.9 × servers`.
    pub l4_check: bool,
}

/// One cluster size with one selector (every selector's table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectorRow {
    /// The selector.
    pub selector: SelectorKind,
    /// Servers in the cluster.
    pub servers: usize,
    /// The largest inspection share of one member.
    pub max_share: f64,
    /// The smallest.
    pub min_share: f64,
    /// L7 multiple over one server.
    pub l7_multiple_x: f64,
    /// L7 multiple over L7 single.
    pub l7_multiple_over_single: f64,
    /// L4 multiple over one server with [`L4Placement::Local`] (the
    /// inspector serves, so serving follows the shares), whatever the
    /// main table's placement.
    pub l4_local_x: f64,
    /// `l4_local_x >= 0.9 × servers`.
    pub l4_local_check: bool,
}

/// The seed's figure beside ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedComparison {
    /// 8.
    pub servers: usize,
    /// The seed's multiple / single ratio (3.4).
    pub seed_ratio: f64,
    /// Ours, L7 splice (the seed's inspector hands over, as splice does).
    pub l7_ratio: f64,
    /// Ours, L4.
    pub l4_ratio: f64,
    /// The L7 inspection cost (ns) that would give the seed's ratio with
    /// the other inputs as given, if any does.
    pub l7_inspect_ns_for_seed: Option<f64>,
    /// That cost over everything a spliced connection costs its server
    /// (application, receive, translated packets).
    pub inspect_over_serve_for_seed: Option<f64>,
    /// The same quotient for the inputs given.
    pub inspect_over_serve: f64,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What it ran with.
    pub inputs: Inputs,
    /// One row per cluster size, the main table's selector.
    pub rows: Vec<Row>,
    /// Every selector, every cluster size (selector-major).
    pub selectors: Vec<SelectorRow>,
    /// The seed's figure and ours at 8 servers.
    pub seed: SeedComparison,
}

fn min_max(shares: &[f64]) -> (f64, f64) {
    shares
        .iter()
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), &s| {
            (lo.min(s), hi.max(s))
        })
}

fn check(x: f64, servers: usize) -> bool {
    // A hair of tolerance: equal shares give exactly N x in exact
    // arithmetic, and N x 0.9 must not fail on rounding.
    x >= L4_CHECK * servers as f64 - 1e-9
}

/// Runs the model. The shares are measured once per selector and cluster
/// size; the rest is arithmetic.
pub fn run(inputs: &Inputs) -> Report {
    let keys = client_keys(inputs.keys, inputs.clients);
    let costs = &inputs.costs;
    let one = rates(costs, &[1.0], inputs.l4_placement);
    let sizes = 1..=inputs.max_servers;
    let mut rows = Vec::new();
    let mut selectors = Vec::new();
    let mut seed_shares = None;
    for kind in SelectorKind::ALL {
        for n in sizes.clone() {
            let shares = selector_shares(kind, n, inputs.vnodes, &keys);
            let r = rates(costs, &shares, inputs.l4_placement);
            let local = rates(costs, &shares, L4Placement::Local);
            let (lo, hi) = min_max(&shares);
            let l4x = local.l4_multiple / one.l4_multiple;
            selectors.push(SelectorRow {
                selector: kind,
                servers: n,
                max_share: hi,
                min_share: lo,
                l7_multiple_x: r.l7_multiple / one.l7_multiple,
                l7_multiple_over_single: r.l7_multiple / r.l7_single,
                l4_local_x: l4x,
                l4_local_check: check(l4x, n),
            });
            if kind == inputs.selector {
                rows.push(row(n, &r, &one, lo, hi));
                if n == SEED_SERVERS {
                    seed_shares = Some(shares);
                }
            }
        }
    }
    let seed_shares = seed_shares
        .unwrap_or_else(|| selector_shares(inputs.selector, SEED_SERVERS, inputs.vnodes, &keys));
    let r8 = rates(costs, &seed_shares, inputs.l4_placement);
    let for_seed = l7_inspect_for_ratio(costs, &seed_shares, inputs.l4_placement, SEED_RATIO);
    let serve = costs.l7_serve_ns();
    let seed = SeedComparison {
        servers: SEED_SERVERS,
        seed_ratio: SEED_RATIO,
        l7_ratio: r8.l7_multiple / r8.l7_single,
        l4_ratio: r8.l4_multiple / r8.l4_single,
        l7_inspect_ns_for_seed: for_seed,
        inspect_over_serve_for_seed: for_seed.map(|x| x / serve),
        inspect_over_serve: costs.l7_inspect_ns / serve,
    };
    Report {
        inputs: inputs.clone(),
        rows,
        selectors,
        seed,
    }
}

fn row(n: usize, r: &Rates, one: &Rates, min_share: f64, max_share: f64) -> Row {
    let l4x = r.l4_multiple / one.l4_multiple;
    Row {
        servers: n,
        l4_single: r.l4_single,
        l4_multiple: r.l4_multiple,
        l7_single: r.l7_single,
        l7_multiple: r.l7_multiple,
        l4_single_x: r.l4_single / one.l4_single,
        l4_multiple_x: l4x,
        l7_single_x: r.l7_single / one.l7_single,
        l7_multiple_x: r.l7_multiple / one.l7_multiple,
        l4_multiple_over_single: r.l4_multiple / r.l4_single,
        l7_multiple_over_single: r.l7_multiple / r.l7_single,
        max_share,
        min_share,
        l4_check: check(l4x, n),
    }
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "pass"
    } else {
        "FAIL"
    }
}

impl Report {
    /// The report as a JSON document (an object with `inputs`, `rows`,
    /// `selectors` and `seed`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as Markdown: the inputs, the main table, every selector's
    /// shares and scaling, the seed's figure beside ours.
    pub fn markdown(&self) -> String {
        let inp = &self.inputs;
        let c = &inp.costs;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# dts-sim: costs per connection (ns): app {}, l4_inspect {}, l7_inspect {}, \
             l7_receive {}, per_packet {} x {} packets, bystander {}",
            c.app_ns,
            c.l4_inspect_ns,
            c.l7_inspect_ns,
            c.l7_receive_ns,
            c.per_packet_ns,
            c.packets,
            c.bystander_ns
        );
        let _ = writeln!(
            out,
            "# shares: {} client keys over {} addresses; main table: {}; L4 multiple placed {}; \
             L7 and single inspectors hand over round-robin",
            inp.keys,
            inp.clients,
            inp.selector.describe(inp.vnodes),
            inp.l4_placement.name()
        );
        out.push('\n');
        out.push_str(
            "| servers | L4 single conn/s | L4 multiple | L7 single | L7 multiple | \
             L4 single x1 | L4 multiple x1 | L7 single x1 | L7 multiple x1 | \
             L4 multiple/single | L7 multiple/single | max share | L4 multiple >= 0.9 N |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | \
                 {:.2} | {:.4} | {} |",
                r.servers,
                r.l4_single,
                r.l4_multiple,
                r.l7_single,
                r.l7_multiple,
                r.l4_single_x,
                r.l4_multiple_x,
                r.l7_single_x,
                r.l7_multiple_x,
                r.l4_multiple_over_single,
                r.l7_multiple_over_single,
                r.max_share,
                pass(r.l4_check)
            );
        }
        out.push('\n');
        out.push_str(
            "Per selector: max inspection share; L7 multiple x one server; L7 multiple/single; \
             L4 multiple x one server with `local` placement (the inspector serves) and the \
             0.9 N check\n\n| servers |",
        );
        for k in SelectorKind::ALL {
            let _ = write!(out, " {} |", k.describe(inp.vnodes));
        }
        out.push_str("\n|---|");
        for _ in SelectorKind::ALL {
            out.push_str("---|");
        }
        out.push('\n');
        for n in 1..=inp.max_servers {
            let _ = write!(out, "| {n} |");
            for k in SelectorKind::ALL {
                if let Some(r) = self
                    .selectors
                    .iter()
                    .find(|r| r.selector == k && r.servers == n)
                {
                    let _ = write!(
                        out,
                        " {:.4}; {:.2}; {:.2}; {:.2} {} |",
                        r.max_share,
                        r.l7_multiple_x,
                        r.l7_multiple_over_single,
                        r.l4_local_x,
                        pass(r.l4_local_check)
                    );
                }
            }
            out.push('\n');
        }
        let d = &self.seed;
        out.push('\n');
        let _ = writeln!(
            out,
            "Seed 002 §4.2, {} nodes: multiple inspectors ~{}x the single inspector. \
             Here ({}): L7 {:.2}x, L4 {:.2}x.",
            d.servers,
            d.seed_ratio,
            inp.selector.describe(inp.vnodes),
            d.l7_ratio,
            d.l4_ratio
        );
        match (d.l7_inspect_ns_for_seed, d.inspect_over_serve_for_seed) {
            (Some(x), Some(q)) => {
                let _ = writeln!(
                    out,
                    "L7 inspection / serving cost here: {:.3}; the seed's {}x needs l7_inspect \
                     = {:.0} ns ({:.3} of the serving cost), the other inputs as given.",
                    d.inspect_over_serve, d.seed_ratio, x, q
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "L7 inspection / serving cost here: {:.3}; no inspection cost gives the \
                     seed's {}x with these shares (the ratio is bounded by 1 / max share).",
                    d.inspect_over_serve, d.seed_ratio
                );
            }
        }
        out
    }
}
