//! Namespace plumbing through `ip`, `bridge`, `sysctl` and `ethtool`: each a
//! command run to completion, failing with the command line and what it
//! printed. Reading link state (`ip -j`) too.
//!
//! Only namespaces whose names [`is_lab_namespace`] accepts are listed.

use std::ffi::OsStr;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::topology::is_lab_namespace;
use crate::LabError;

/// Runs `program args`, returns its stdout; fails with its stderr.
pub fn run<I, S>(program: &str, args: I) -> Result<String, LabError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    let line = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| LabError::Spawn {
        what: line.clone(),
        source: e,
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command: line,
            output: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// `ip ARGS...`.
pub fn ip(args: &[&str]) -> Result<String, LabError> {
    run("ip", args)
}

/// `ip -n NS ARGS...`.
pub fn ip_in(ns: &str, args: &[&str]) -> Result<String, LabError> {
    run("ip", ["-n", ns].iter().chain(args))
}

/// `ip netns exec NS ARGS...`.
pub fn exec_in(ns: &str, args: &[&str]) -> Result<String, LabError> {
    run("ip", ["netns", "exec", ns].iter().chain(args))
}

/// `sysctl -qw KEY=VALUE...` inside `ns`.
pub fn sysctl(ns: &str, settings: &[&str]) -> Result<(), LabError> {
    run(
        "ip",
        ["netns", "exec", ns, "sysctl", "-qw"]
            .iter()
            .chain(settings),
    )
    .map(drop)
}

/// The lab's namespaces that exist (also ones left without a run directory).
pub fn lab_namespaces() -> Vec<String> {
    let mut names: Vec<String> = ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| is_lab_namespace(n))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// Namespace `ns` exists.
pub fn exists(ns: &str) -> bool {
    crate::process::netns_id(ns).is_some()
}

/// A new namespace with IPv6 off (before any interface is created in or
/// moved into it) and `lo` up.
pub fn create(ns: &str) -> Result<(), LabError> {
    ip(&["netns", "add", ns])?;
    sysctl(
        ns,
        &[
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ],
    )?;
    ip_in(ns, &["link", "set", "lo", "up"]).map(drop)
}

/// One interface's state as `status` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// `operstate` (`UP`, `DOWN`, `UNKNOWN`).
    pub state: Option<String>,
    /// The flags (`UP`, `LOWER_UP`, `PROMISC`, ...).
    pub flags: Vec<String>,
    /// `LOWER_UP` among the flags (carrier).
    pub lower_up: bool,
    /// The MAC.
    pub mac: Option<String>,
    /// IPv4 addresses with prefix length (`198.18.0.11/24`).
    pub addresses: Vec<String>,
}

impl Link {
    /// Administratively up.
    pub fn up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }
}

#[derive(Deserialize)]
struct IpAddr {
    operstate: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
    address: Option<String>,
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Deserialize)]
struct AddrInfo {
    family: Option<String>,
    local: Option<String>,
    prefixlen: Option<u8>,
}

/// `dev` in `ns`, or none if it does not exist.
pub fn link(ns: &str, dev: &str) -> Option<Link> {
    let out = ip_in(ns, &["-j", "addr", "show", "dev", dev]).ok()?;
    parse_link(&out)
}

fn parse_link(json: &str) -> Option<Link> {
    let mut list: Vec<IpAddr> = serde_json::from_str(json).ok()?;
    if list.is_empty() {
        return None;
    }
    let info = list.swap_remove(0);
    Some(Link {
        state: info.operstate,
        lower_up: info.flags.iter().any(|f| f == "LOWER_UP"),
        flags: info.flags,
        mac: info.address,
        addresses: info
            .addr_info
            .iter()
            .filter(|a| a.family.as_deref() == Some("inet"))
            .filter_map(|a| Some(format!("{}/{}", a.local.as_ref()?, a.prefixlen?)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json() {
        let json = r#"[{"ifindex":5,"ifname":"shoal0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],
            "mtu":1500,"operstate":"UNKNOWN","address":"02:00:c6:12:00:0b",
            "addr_info":[{"family":"inet","local":"198.18.0.11","prefixlen":24},
                         {"family":"inet","local":"198.18.0.100","prefixlen":32},
                         {"family":"inet6","local":"fe80::1","prefixlen":64}]}]"#;
        let l = parse_link(json).unwrap();
        assert!(l.lower_up && l.up());
        assert_eq!(l.mac.as_deref(), Some("02:00:c6:12:00:0b"));
        assert_eq!(l.addresses, ["198.18.0.11/24", "198.18.0.100/32"]);
        assert_eq!(l.state.as_deref(), Some("UNKNOWN"));
        assert_eq!(parse_link("[]"), None);
    }
}
