//! Shoal's control side. Today: the operator's view of a config
//! ([`describe`]), used by `shoalctl check-config`, and the selection
//! figures of `shoalctl ring-stats` ([`ring_stats`]). Membership and load
//! exchange, failure detection, the shared-memory command rings, the
//! Prometheus exporter and the admin API land here (issue 7).

pub mod ring_stats;

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
