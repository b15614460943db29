//! BIRD 2 in the routed lab (`--topology routed`): the router's config
//! (BGP from every server, ECMP into its kernel with `merge paths`), each
//! server's config (one BGP session to the router, the VIP route in
//! `protocol static shoal_vips`, disabled until that server's control
//! enables it), starting `bird` in a namespace, and reading what the
//! router has (`birdc show protocols`, the kernel's VIP next hops).
//!
//! The timers are the lab's, short so a test sees withdrawals in seconds:
//! hold time 3 s (the shortest BGP allows), keepalive 1 s, retries after
//! 1-2 s instead of BIRD's 60 s error wait.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::netns;
use crate::process;
use crate::topology::{paths, Server, ROUTER_ADDR, ROUTER_ASN, ROUTER_NS, SERVER_ASN, VIP};
use crate::LabError;

/// The BGP hold time of every session, seconds: a server that dies
/// silently is withdrawn at the router this long after its last keepalive.
pub const HOLD_TIME_S: u32 = 3;

/// The BGP timers both ends use.
fn timers() -> String {
    format!(
        "hold time {HOLD_TIME_S}; keepalive time 1; connect delay time 1; \
         connect retry time 2; error wait time 1, 5;"
    )
}

/// The router's bird.conf: a session from each of `nodes` servers, every
/// path to the VIP merged into one multipath route in the kernel.
pub fn router_conf(nodes: u8) -> String {
    let mut s = format!(
        "# shoal-lab router: BGP from every server, ECMP to the VIP.\n\
         log stderr all;\n\
         router id {ROUTER_ADDR};\n\
         protocol device {{ scan time 10; }}\n\
         protocol kernel {{\n  ipv4 {{ import none; export all; }};\n  merge paths on;\n}}\n\
         template bgp shoal {{\n  local {ROUTER_ADDR} as {ROUTER_ASN};\n  {}\n  \
         ipv4 {{ import all; export none; }};\n}}\n",
        timers()
    );
    for server in Server::all(nodes) {
        let _ = writeln!(
            s,
            "protocol bgp {server} from shoal {{ neighbor {} as {SERVER_ASN}; }}",
            server.addr()
        );
    }
    s
}

/// A server's bird.conf: the VIP in a static protocol that starts disabled
/// (control enables it: `[control.bgp]`), exported to the router only.
pub fn server_conf(server: Server) -> String {
    format!(
        "# shoal-lab {server}: announces {VIP}/32 to the router while shoal-control enables \
         shoal_vips.\n\
         log stderr all;\n\
         router id {addr};\n\
         protocol device {{ scan time 10; }}\n\
         protocol static shoal_vips {{\n  disabled yes;\n  ipv4;\n  route {VIP}/32 blackhole;\n}}\n\
         protocol bgp tor {{\n  local {addr} as {SERVER_ASN};\n  neighbor {ROUTER_ADDR} as {ROUTER_ASN};\n  {}\n  \
         ipv4 {{ import none; export where proto = \"shoal_vips\"; }};\n}}\n",
        timers(),
        addr = server.addr()
    )
}

/// BIRD's control socket in `dir`.
pub fn socket(dir: &Path) -> PathBuf {
    dir.join("bird.ctl")
}

/// Writes `conf` to `dir/bird.conf` and starts `bird -f` in `ns`
/// (recorded in `dir/bird.pid`, output in `dir/bird.log`); waits (bounded)
/// for its control socket.
pub fn start(ns: &str, dir: &Path, conf: &str) -> Result<u32, LabError> {
    std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    let path = dir.join("bird.conf");
    std::fs::write(&path, conf).map_err(|e| LabError::io(&path, e))?;
    let sock = socket(dir);
    let _ = std::fs::remove_file(&sock);
    let pid = process::spawn(
        ns,
        Path::new("/usr/sbin/bird"),
        &[
            "-f".into(),
            "-c".into(),
            path.display().to_string(),
            "-s".into(),
            sock.display().to_string(),
        ],
        &dir.join("bird.pid"),
        &dir.join("bird.log"),
    )?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        // The socket exists before the config is parsed: ready once BIRD
        // answers on it.
        let answers = sock.exists()
            && netns::exec_in(
                ns,
                &["birdc", "-s", &sock.display().to_string(), "show", "status"],
            )
            .is_ok();
        if answers {
            return Ok(pid);
        }
        if !process::alive(pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(dir.join("bird.log")).unwrap_or_default();
    Err(LabError::State(format!(
        "bird in {ns} did not answer on {} within 5 s: {}",
        sock.display(),
        log.trim()
    )))
}

/// `birdc -s SOCKET show protocols` in `ns` (the text; empty when BIRD
/// does not answer).
pub fn show_protocols(ns: &str, dir: &Path) -> String {
    netns::exec_in(
        ns,
        &[
            "birdc",
            "-s",
            &socket(dir).display().to_string(),
            "show",
            "protocols",
        ],
    )
    .unwrap_or_default()
}

/// The router's BGP sessions as `(server, established)`.
pub fn router_sessions() -> Vec<(String, bool)> {
    show_protocols(ROUTER_NS, &paths::router_dir())
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[1] == "BGP")
                .then(|| (f[0].to_owned(), f[3] == "up" && l.contains("Established")))
        })
        .collect()
}

/// The next hops of the VIP's route in the router's kernel (ascending;
/// empty when there is no route).
pub fn vip_next_hops() -> Vec<Ipv4Addr> {
    let text =
        netns::ip_in(ROUTER_NS, &["route", "show", &format!("{VIP}/32")]).unwrap_or_default();
    parse_next_hops(&text)
}

/// The `via` addresses of `ip route show` output (one route, single or
/// multipath).
pub fn parse_next_hops(text: &str) -> Vec<Ipv4Addr> {
    let mut hops: Vec<Ipv4Addr> = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .filter_map(|w| w[1].parse().ok())
        .collect();
    hops.sort_unstable();
    hops.dedup();
    hops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hops_of_single_and_multipath_routes() {
        let multi = "198.18.0.100 proto bird metric 32 \n\
                     \tnexthop via 198.18.0.12 dev eth0 weight 1 \n\
                     \tnexthop via 198.18.0.11 dev eth0 weight 1 \n";
        assert_eq!(
            parse_next_hops(multi),
            [Ipv4Addr::new(198, 18, 0, 11), Ipv4Addr::new(198, 18, 0, 12)]
        );
        assert_eq!(
            parse_next_hops("198.18.0.100 via 198.18.0.13 dev eth0 proto bird metric 32\n"),
            [Ipv4Addr::new(198, 18, 0, 13)]
        );
        assert!(parse_next_hops("").is_empty());
    }

    #[test]
    fn configs_name_every_server_and_the_vip() {
        let r = router_conf(3);
        assert!(r.contains("merge paths on;"));
        assert!(r.contains("protocol bgp srv3 from shoal { neighbor 198.18.0.13 as 65001; }"));
        let s = server_conf(Server::new(2).unwrap());
        assert!(s.contains("route 198.18.0.100/32 blackhole;"));
        assert!(s.contains("local 198.18.0.12 as 65001;"));
        assert!(s.contains("disabled yes;"));
        assert!(s.contains("hold time 3;"));
    }
}
