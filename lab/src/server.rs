//! The steps of bringing up one server's kernel side and web server: its
//! hub port, sysctls, the TAP the dataplane creates (bounded wait, the
//! lab's MAC and addresses on it, re-applied if the dataplane undid them),
//! and nginx. Called by [`crate::Lab`] in the order it owns; starts no
//! Shoal process itself.

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::netns::{self, ip_in, sysctl};
use crate::process::{self, recorded};
use crate::topology::{Server, CLIENT_NET, HUB_NS, ROUTER_ADDR, TAP, VIP};
use crate::www::NginxConf;
use crate::{log, LabError};

/// How long `up` waits for a dataplane to bring up its TAP.
const DATAPLANE_WAIT: Duration = Duration::from_secs(20);
/// Pins the kernel's TCP window scale to 7 (`shared/notes/splice-replay.md` §5).
const TCP_RMEM: &str = "4096 131072 6291456";

/// A veth from the hub bridge (`port`) to `eth0` in `ns`, flooding on, learning off.
pub(crate) fn hub_port(port: &str, ns: &str) -> Result<(), LabError> {
    ip_in(
        HUB_NS,
        &[
            "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ],
    )?;
    ip_in(HUB_NS, &["link", "set", port, "master", "br0"])?;
    netns::run(
        "bridge",
        [
            "-n",
            HUB_NS,
            "link",
            "set",
            "dev",
            port,
            "learning",
            "off",
            "flood",
            "on",
            "mcast_flood",
            "on",
        ],
    )?;
    ip_in(HUB_NS, &["link", "set", port, "up"]).map(drop)
}

/// ARP and routing behaviour of a server's kernel.
pub(crate) fn server_sysctls(ns: &str) -> Result<(), LabError> {
    sysctl(
        ns,
        &[
            "net.ipv4.conf.all.arp_announce=2",
            "net.ipv4.conf.default.arp_announce=2",
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.default.arp_ignore=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            "net.ipv4.ip_nonlocal_bind=1",
            &format!("net.ipv4.tcp_rmem={TCP_RMEM}"),
        ],
    )
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `shoal0` exists with `LOWER_UP` (the dataplane holds it), bounded.
pub(crate) fn wait_tap(s: Server) -> Result<(), LabError> {
    let ns = s.namespace();
    let dir = s.dir();
    let pid = process::read_pid(&dir.join("dataplane.pid"));
    let deadline = Instant::now() + DATAPLANE_WAIT;
    while Instant::now() < deadline {
        if let Some(link) = netns::link(&ns, TAP) {
            if link.lower_up {
                // Attach race: the first egress frame can be lost before this.
                sleep(Duration::from_millis(50));
                return Ok(());
            }
            // LOWER_UP needs the interface up: DPDK's net_tap sets it up
            // itself, a dataplane that only creates the TAP may not.
            if !link.up() {
                let _ = ip_in(&ns, &["link", "set", TAP, "up"]);
            }
        }
        if !pid.is_some_and(process::alive) {
            return Err(LabError::Start {
                server: s,
                what: format!(
                    "shoal-dataplane (pid {}) exited before {TAP} came up",
                    pid.map_or_else(|| "?".to_owned(), |p| p.to_string())
                ),
                log_tail: log_tail(&dir.join("dataplane.log"), 20),
            });
        }
        sleep(Duration::from_millis(100));
    }
    Err(LabError::Start {
        server: s,
        what: format!(
            "{TAP} not up with LOWER_UP after {}s",
            DATAPLANE_WAIT.as_secs()
        ),
        log_tail: log_tail(&dir.join("dataplane.log"), 20),
    })
}

/// The server's MAC, own address and VIP on `shoal0`, its ARP sysctls, up.
pub(crate) fn configure_tap(s: Server) -> Result<(), LabError> {
    let ns = s.namespace();
    ip_in(&ns, &["link", "set", TAP, "address", &s.mac().to_string()])?;
    ip_in(
        &ns,
        &["addr", "replace", &format!("{}/24", s.addr()), "dev", TAP],
    )?;
    ip_in(&ns, &["addr", "replace", &format!("{VIP}/32"), "dev", TAP])?;
    sysctl(
        &ns,
        &[
            &format!("net.ipv4.conf.{TAP}.arp_announce=2"),
            &format!("net.ipv4.conf.{TAP}.arp_ignore=1"),
            &format!("net.ipv4.conf.{TAP}.rp_filter=0"),
        ],
    )?;
    ip_in(&ns, &["link", "set", TAP, "up"]).map(drop)
}

/// `--topology routed`: the route to the clients' network through the
/// router, on `shoal0` (gone with the TAP when the dataplane stops).
pub(crate) fn route_to_clients(s: Server) -> Result<(), LabError> {
    ip_in(
        &s.namespace(),
        &[
            "route",
            "replace",
            CLIENT_NET,
            "via",
            &ROUTER_ADDR.to_string(),
            "dev",
            TAP,
        ],
    )
    .map(drop)
}

/// What of `s`'s `shoal0` configuration was undone since [`configure_tap`]
/// (a dataplane that resets the TAP while it starts its ports).
pub(crate) fn tap_drift(s: Server) -> Vec<String> {
    let Some(link) = netns::link(&s.namespace(), TAP) else {
        return vec![format!("{TAP} is gone")];
    };
    let mut drift = Vec::new();
    if link.mac.as_deref() != Some(s.mac().to_string().as_str()) {
        drift.push(format!("MAC is not {}", s.mac()));
    }
    if !link.up() {
        drift.push("link is down".to_owned());
    }
    for want in [format!("{}/24", s.addr()), format!("{VIP}/32")] {
        if !link.addresses.contains(&want) {
            drift.push(format!("{want} missing"));
        }
    }
    drift
}

pub(crate) fn recheck_tap(s: Server) -> Result<(), LabError> {
    let drift = tap_drift(s);
    if drift.is_empty() {
        return Ok(());
    }
    log(&format!(
        "warning: {s}: the dataplane changed {TAP} after the lab configured it ({}); configuring it again",
        drift.join("; ")
    ));
    configure_tap(s)?;
    let drift = tap_drift(s);
    if drift.is_empty() {
        Ok(())
    } else {
        Err(LabError::Start {
            server: s,
            what: format!("{TAP}: {}", drift.join("; ")),
            log_tail: String::new(),
        })
    }
}

/// The user nginx's workers run as, and its uid and gid.
fn nginx_user() -> (String, Option<(u32, u32)>) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let find = |name: &str| {
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
    };
    match find("www-data") {
        Some(ids) => ("www-data".to_owned(), Some(ids)),
        None => ("nobody".to_owned(), find("nobody")),
    }
}

/// nginx in `s`'s namespace (daemon); waits (bounded) for its PID file,
/// which nginx writes once its sockets are bound.
pub(crate) fn start_nginx(s: Server) -> Result<(), LabError> {
    let ns = s.namespace();
    let dir = s.dir();
    let (user, ids) = nginx_user();
    let tmp = dir.join("nginx-tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| LabError::io(&tmp, e))?;
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).map_err(|e| LabError::io(&tmp, e))?;
    }
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, NginxConf { server: s, user }.render())
        .map_err(|e| LabError::io(&conf, e))?;
    let out_path = dir.join("nginx.out");
    let out = File::options()
        .create(true)
        .append(true)
        .open(&out_path)
        .map_err(|e| LabError::io(&out_path, e))?;
    let err = out.try_clone().map_err(|e| LabError::io(&out_path, e))?;
    let status = Command::new("ip")
        .args(["netns", "exec", &ns, "nginx", "-q", "-e"])
        .arg(dir.join("error.log"))
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| LabError::Spawn {
            what: "nginx".to_owned(),
            source: e,
        })?;
    if !status.success() {
        return Err(LabError::Start {
            server: s,
            what: "nginx did not start".to_owned(),
            log_tail: format!(
                "{}\n{}",
                log_tail(&out_path, 5),
                log_tail(&dir.join("error.log"), 5)
            ),
        });
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if recorded(&dir.join("nginx.pid"), &ns).is_some() {
            return Ok(());
        }
        sleep(Duration::from_millis(100));
    }
    Err(LabError::Start {
        server: s,
        what: "nginx wrote no pid file in 5 s".to_owned(),
        log_tail: log_tail(&dir.join("error.log"), 5),
    })
}
