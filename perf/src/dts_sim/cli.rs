//! The command line of `dts-sim`: flags, the `--costs` file, and their
//! errors (every mistake is a message naming the flag, never a panic).

use std::path::Path;

use serde::Deserialize;

use super::model::{Costs, L4Placement};
use super::report::Inputs;
use super::shares::SelectorKind;

/// The usage line.
pub const USAGE: &str = "usage: dts-sim [--json] [--servers N (1..=16)] [--costs FILE.json] \
[--app-ns NS] [--per-packet-ns NS] [--packets P] [--l4-inspect-ns NS] [--l7-inspect-ns NS] \
[--l7-receive-ns NS] [--bystander-ns NS] [--keys K] [--clients C] [--vnodes V] \
[--selector dts-ring|ring|default|maglev] [--l4-placement local|round-robin]
  --costs: a JSON object with any of app_ns, per_packet_ns, packets, l4_inspect_ns, \
l7_inspect_ns, l7_receive_ns, bystander_ns (flags override it); l4_inspect_ns defaults \
to packets x per_packet_ns";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Print the usage.
    Help,
    /// Run the model.
    Run {
        /// The inputs.
        inputs: Inputs,
        /// JSON instead of Markdown.
        json: bool,
    },
}

/// A `--costs` file: any subset of [`Costs`]' fields.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CostsFile {
    app_ns: Option<f64>,
    per_packet_ns: Option<f64>,
    packets: Option<f64>,
    l4_inspect_ns: Option<f64>,
    l7_inspect_ns: Option<f64>,
    l7_receive_ns: Option<f64>,
    bystander_ns: Option<f64>,
}

impl CostsFile {
    /// The costs set by flags override the file's: merge `other` over self.
    fn overlay(self, other: CostsFile) -> CostsFile {
        CostsFile {
            app_ns: other.app_ns.or(self.app_ns),
            per_packet_ns: other.per_packet_ns.or(self.per_packet_ns),
            packets: other.packets.or(self.packets),
            l4_inspect_ns: other.l4_inspect_ns.or(self.l4_inspect_ns),
            l7_inspect_ns: other.l7_inspect_ns.or(self.l7_inspect_ns),
            l7_receive_ns: other.l7_receive_ns.or(self.l7_receive_ns),
            bystander_ns: other.bystander_ns.or(self.bystander_ns),
        }
    }

    fn apply(self, base: Costs) -> Costs {
        let mut c = Costs {
            app_ns: self.app_ns.unwrap_or(base.app_ns),
            per_packet_ns: self.per_packet_ns.unwrap_or(base.per_packet_ns),
            packets: self.packets.unwrap_or(base.packets),
            l4_inspect_ns: base.l4_inspect_ns,
            l7_inspect_ns: self.l7_inspect_ns.unwrap_or(base.l7_inspect_ns),
            l7_receive_ns: self.l7_receive_ns.unwrap_or(base.l7_receive_ns),
            bystander_ns: self.bystander_ns.unwrap_or(base.bystander_ns),
        };
        c.l4_inspect_ns = self.l4_inspect_ns.unwrap_or(c.packets * c.per_packet_ns);
        c
    }
}

/// Reads a `--costs` file.
fn read_costs(path: &Path) -> Result<CostsFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--costs {}: cannot read: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("--costs {}: {e}", path.display()))
}

fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
    v.parse()
        .map_err(|_| format!("{flag}: cannot read {v:?}\n{USAGE}"))
}

fn cost(flag: &str, v: Option<String>) -> Result<Option<f64>, String> {
    let x: f64 = value(flag, v)?;
    if !x.is_finite() || x < 0.0 {
        return Err(format!(
            "{flag}: must be a finite number >= 0, not {x}\n{USAGE}"
        ));
    }
    Ok(Some(x))
}

/// Parses the arguments (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut inputs = Inputs::default();
    let mut json = false;
    let mut file: Option<CostsFile> = None;
    let mut flags = CostsFile::default();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--json" => json = true,
            "--servers" => inputs.max_servers = value(&flag, it.next())?,
            "--keys" => inputs.keys = value(&flag, it.next())?,
            "--clients" => inputs.clients = value(&flag, it.next())?,
            "--vnodes" => inputs.vnodes = value(&flag, it.next())?,
            "--selector" => {
                let v: String = value(&flag, it.next())?;
                inputs.selector = SelectorKind::parse(&v)
                    .ok_or_else(|| format!("--selector: unknown selector {v:?}\n{USAGE}"))?;
            }
            "--l4-placement" => {
                let v: String = value(&flag, it.next())?;
                inputs.l4_placement = match v.as_str() {
                    "local" => L4Placement::Local,
                    "round-robin" => L4Placement::RoundRobin,
                    _ => return Err(format!("--l4-placement: unknown placement {v:?}\n{USAGE}")),
                };
            }
            "--costs" => {
                let path: String = value(&flag, it.next())?;
                file = Some(read_costs(Path::new(&path))?);
            }
            "--app-ns" => flags.app_ns = cost(&flag, it.next())?,
            "--per-packet-ns" => flags.per_packet_ns = cost(&flag, it.next())?,
            "--packets" => flags.packets = cost(&flag, it.next())?,
            "--l4-inspect-ns" => flags.l4_inspect_ns = cost(&flag, it.next())?,
            "--l7-inspect-ns" => flags.l7_inspect_ns = cost(&flag, it.next())?,
            "--l7-receive-ns" => flags.l7_receive_ns = cost(&flag, it.next())?,
            "--bystander-ns" => flags.bystander_ns = cost(&flag, it.next())?,
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    inputs.costs = file.unwrap_or_default().overlay(flags).apply(inputs.costs);
    inputs.validate().map_err(|e| format!("{e}\n{USAGE}"))?;
    Ok(Command::Run { inputs, json })
}
