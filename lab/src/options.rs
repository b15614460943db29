//! What `up` (and `dataplane-config`) is asked for: the typed options of a
//! lab, checked once, and the signature `up` compares to find out whether
//! the lab that is up is the one asked for.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use shoal_config::{HandoffMode, Mode, State};

use crate::topology::MAX_NODES;

/// How a server's packets reach its kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabBackend {
    /// `shoal-dataplane` on DPDK vdevs (`net_af_packet` + `net_tap`).
    #[default]
    Dpdk,
    /// `shoal-dataplane` on `AF_PACKET` + a Linux TAP.
    Portable,
    /// No dataplane and no control: the server's own address on `eth0`
    /// (tests the namespaces, hub and nginx only).
    None,
}

impl LabBackend {
    /// The name on the command line and in status.
    pub fn as_str(self) -> &'static str {
        match self {
            LabBackend::Dpdk => "dpdk",
            LabBackend::Portable => "portable",
            LabBackend::None => "none",
        }
    }
}

impl fmt::Display for LabBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LabBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_kebab(s)
            .ok_or_else(|| format!("--backend must be dpdk, portable or none (got '{s}')"))
    }
}

/// How the client reaches the servers (`--topology`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabTopology {
    /// The client on the hub with the servers (`dataplane.topology = "segment"`).
    #[default]
    Segment,
    /// The client behind a BIRD 2 router (`shoal-router`) that spreads the
    /// VIP over the servers by ECMP; each server's BIRD announces it, driven
    /// by its control (`dataplane.topology = "routed"`, `[control.bgp]`).
    Routed,
}

impl LabTopology {
    /// The name on the command line and in status.
    pub fn as_str(self) -> &'static str {
        match self {
            LabTopology::Segment => "segment",
            LabTopology::Routed => "routed",
        }
    }
}

impl fmt::Display for LabTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LabTopology {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_kebab(s).ok_or_else(|| format!("--topology must be segment or routed (got '{s}')"))
    }
}

/// Fault injection on every dataplane's wire port (`SHOAL_LAB_INJECT=DROP,REORDER`):
/// frames dropped and reordered per thousand (the lab kernel has no netem).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Inject {
    /// Wire frames dropped per thousand.
    pub drop_permille: u32,
    /// Wire frames reordered per thousand.
    pub reorder_permille: u32,
}

impl FromStr for Inject {
    type Err = String;
    /// `DROP,REORDER`, e.g. `20,20`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("SHOAL_LAB_INJECT must be DROP,REORDER (per thousand), got '{s}'");
        let (drop, reorder) = s.split_once(',').ok_or_else(bad)?;
        let num = |t: &str| {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
                .ok_or_else(bad)
        };
        Ok(Inject {
            drop_permille: num(drop)?,
            reorder_permille: num(reorder)?,
        })
    }
}

/// The options of `lab up`; [`UpOptions::default`] is `--nodes 3 --backend
/// dpdk --mode local --state stateful --handoff frequent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpOptions {
    /// Servers, 1..=89.
    pub nodes: u8,
    /// Dataplane backend (or none).
    pub backend: LabBackend,
    /// The service's mode.
    pub mode: Mode,
    /// Stateless or stateful placement (DPR modes).
    pub state: State,
    /// CARISMA handoff (splice mode).
    pub handoff: HandoffMode,
    /// A base config the lab loads (through `shoal_config`, so validated) and
    /// then sets the per-server keys of; none = the lab's own base.
    pub config: Option<PathBuf>,
    /// Fault injection on every dataplane's wire port.
    pub inject: Option<Inject>,
    /// Dataplane workers per server (cores); the portable backend runs one.
    #[serde(default = "one_worker")]
    pub workers: u8,
    /// Splice: dispatch only the first request of a keep-alive connection
    /// (`dispatch.per_request = false`; the default follows every request).
    #[serde(default)]
    pub first_request_only: bool,
    /// Splice, CARISMA *always* handoff: the first this many servers are
    /// front ends (inspect, never serve), the others back ends (serve,
    /// never inspect); 0 = every server does both.
    #[serde(default)]
    pub front_ends: u8,
    /// Segment (a hub) or routed (a BGP router in front).
    #[serde(default)]
    pub topology: LabTopology,
}

fn one_worker() -> u8 {
    1
}

/// Workers per server by default: two with DPDK (the multi-worker path,
/// with flow steering, is what every lab test runs), one otherwise.
pub fn default_workers(backend: LabBackend) -> u8 {
    if backend == LabBackend::Dpdk {
        2
    } else {
        1
    }
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            nodes: 3,
            backend: LabBackend::Dpdk,
            mode: Mode::Local,
            state: State::Stateful,
            handoff: HandoffMode::Frequent,
            config: None,
            inject: None,
            workers: default_workers(LabBackend::Dpdk),
            first_request_only: false,
            front_ends: 0,
            topology: LabTopology::Segment,
        }
    }
}

impl UpOptions {
    /// The defaults for `backend` (its default number of workers).
    pub fn for_backend(backend: LabBackend) -> UpOptions {
        UpOptions {
            backend,
            workers: default_workers(backend),
            ..UpOptions::default()
        }
    }

    /// Checks the node count (the enums are checked by their types).
    pub fn check(&self) -> Result<(), String> {
        if self.workers == 0 || (self.workers > 1 && self.backend == LabBackend::Portable) {
            return Err(format!(
                "--workers must be 1 with --backend {} and at least 1 with dpdk (got {})",
                self.backend, self.workers
            ));
        }
        if self.front_ends > 0 && (self.mode != Mode::Splice || self.front_ends >= self.nodes) {
            return Err(format!(
                "--front-ends needs --mode splice and fewer front ends than --nodes \
                 (got {} of {} in mode {})",
                self.front_ends,
                self.nodes,
                kebab(&self.mode)
            ));
        }
        if self.topology == LabTopology::Routed {
            if self.backend == LabBackend::None {
                return Err(
                    "--topology routed needs a dataplane (--backend dpdk or portable)".to_owned(),
                );
            }
            let stateless_dpr = self.mode == Mode::DprIpip && self.state == State::Stateless;
            if self.mode != Mode::Local && self.mode != Mode::Splice && !stateless_dpr {
                return Err(format!(
                    "--topology routed serves --mode local, splice or dpr-ipip --state stateless \
                     (got mode {} state {})",
                    kebab(&self.mode),
                    kebab(&self.state)
                ));
            }
            if self.mode == Mode::Splice && self.handoff == HandoffMode::Rare {
                return Err(
                    "--topology routed hands spliced connections over with --handoff frequent \
                     (got rare)"
                        .to_owned(),
                );
            }
        }
        if (1..=MAX_NODES).contains(&self.nodes) {
            Ok(())
        } else {
            Err(format!(
                "--nodes must be a number from 1 to {MAX_NODES} (got '{}')",
                self.nodes
            ))
        }
    }
}

/// Parses a kebab-case name of a schema enum (`dpr-mac`, `stateless`,
/// `rare`) with the schema's own serde names, so the lab never keeps a
/// second list of them.
pub fn parse_kebab<T: DeserializeOwned>(s: &str) -> Option<T> {
    T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s)).ok()
}

/// The kebab-case name of a schema enum value (`dpr-ipip`).
pub fn kebab<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// `--mode`.
pub fn parse_mode(s: &str) -> Result<Mode, String> {
    parse_kebab(s)
        .ok_or_else(|| format!("--mode must be local, dpr-mac, dpr-ipip or splice (got '{s}')"))
}

/// `--state`.
pub fn parse_state(s: &str) -> Result<State, String> {
    parse_kebab(s).ok_or_else(|| format!("--state must be stateless or stateful (got '{s}')"))
}

/// `--handoff`.
pub fn parse_handoff(s: &str) -> Result<HandoffMode, String> {
    parse_kebab(s).ok_or_else(|| format!("--handoff must be frequent or rare (got '{s}')"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_schemas() {
        assert_eq!(parse_mode("dpr-ipip"), Ok(Mode::DprIpip));
        assert_eq!(parse_state("stateless"), Ok(State::Stateless));
        assert_eq!(parse_handoff("rare"), Ok(HandoffMode::Rare));
        assert!(parse_mode("fast").is_err());
        assert_eq!(kebab(&Mode::DprMac), "dpr-mac");
        assert_eq!("none".parse(), Ok(LabBackend::None));
        assert!("memory".parse::<LabBackend>().is_err());
    }

    #[test]
    fn inject() {
        assert_eq!(
            "20,5".parse(),
            Ok(Inject {
                drop_permille: 20,
                reorder_permille: 5
            })
        );
        for bad in ["", "20", "20,", ",5", "a,b", "1,2,3", "-1,2"] {
            assert!(bad.parse::<Inject>().is_err(), "{bad}");
        }
    }
}
