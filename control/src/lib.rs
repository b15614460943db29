//! Shoal's control side: the `shoal-control` daemon and `shoalctl`.
//!
//! - [`membership`]: the DPR report's broadcaster, receiver and cleaner as a
//!   pure state machine, replay protection, numbered epochs, operator
//!   settings; [`message`]: the signed announcement on the wire. The cluster
//!   key and admin token files are [`shoal_key`]'s.
//! - [`load`]: this member's load from the dataplane's stats and [`cpu`]'s
//!   figures (the host's CPU and the application's share, from `/proc`);
//!   [`dataplane`]: command rings and stats segments (`shoal-channel`).
//! - [`metrics`]: the Prometheus text; [`admin`]: the admin API's routes
//!   and reload rules; [`status`]: the snapshot both serve.
//! - [`daemon`]: sockets, threads and the main loop of `shoal-control`.
//! - [`cli_admin`]: `shoalctl status|members|ring|drain|undrain|weight|reload`;
//!   [`describe`]: `shoalctl check-config`; [`ring_stats`]: `shoalctl ring-stats`;
//!   [`top`]: `shoalctl top`, the live view of the cluster.

#![forbid(unsafe_code)]

pub mod admin;
pub mod bgp;
pub mod cli_admin;
pub mod cpu;
pub mod daemon;
pub mod dataplane;
pub mod load;
pub mod membership;
pub mod message;
pub mod metrics;
pub mod status;

pub mod ring_stats;
pub mod top;

use serde::Serialize;
use shoal_config::Config;

/// What `shoalctl check-config` reports about a valid config.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConfigSummary {
    /// Cluster name.
    pub cluster: String,
    /// The member this config is for.
    pub local_member: String,
    /// Its id.
    pub local_id: u16,
    /// Members in the cluster.
    pub members: usize,
    /// Members that take new connections (weight > 0).
    pub active_members: usize,
    /// Services as `name vip:port/protocol mode`.
    pub services: Vec<String>,
}

/// Summarises a validated config for an operator.
pub fn describe(cfg: &Config) -> ConfigSummary {
    let local_id = cfg
        .cluster
        .members
        .iter()
        .find(|m| m.name == cfg.cluster.local_member)
        .map_or(0, |m| m.id);
    ConfigSummary {
        cluster: cfg.cluster.name.clone(),
        local_member: cfg.cluster.local_member.clone(),
        local_id,
        members: cfg.cluster.members.len(),
        active_members: cfg.cluster.members.iter().filter(|m| m.weight > 0).count(),
        services: cfg
            .services
            .iter()
            .map(|s| {
                format!(
                    "{} {}:{}/{} {}",
                    s.name,
                    s.vip,
                    s.port,
                    lower(&format!("{:?}", s.protocol)),
                    kebab(&format!("{:?}", s.mode))
                )
            })
            .collect(),
    }
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// `DprIpip` -> `dpr-ipip`: the spelling the config uses.
fn kebab(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for (i, ch) in s.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_matches_config_spelling() {
        assert_eq!(kebab("DprIpip"), "dpr-ipip");
        assert_eq!(kebab("Local"), "local");
    }
}
