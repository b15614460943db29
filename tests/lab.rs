//! End-to-end tests on the lab (the `shoal_lab` library, which `deploy/lab/lab`
//! runs as a command): real kernels, nginx and
//! curl in network namespaces, `shoal-dataplane` on DPDK (`net_af_packet` +
//! `net_tap`) or on the portable backend.
//!
//! They need root, network namespaces and release binaries, so they are
//! `#[ignore]`d in a plain `cargo test`; `tests/run.sh` builds the binaries
//! and runs them with `--ignored --test-threads=1` (one lab at a time), with
//! `SHOAL_BIN_DIR` pointing at the release build.
#![allow(clippy::unwrap_used)]
// a panic is a failed test
// Methods on the `Lab` guard tie every lab command to a lab that is up.
#![allow(clippy::unused_self)]
// Test scripts are built line by line; clarity over avoiding a temporary.
#![allow(clippy::format_push_string)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use shoal_e2e::ok;
use shoal_lab::{LabBackend, Node, Part, Server, UpOptions};

const MEMBERS: [&str; 3] = ["srv1", "srv2", "srv3"];

fn server(node: &str) -> Server {
    node.parse().unwrap()
}

/// Three servers on DPDK in `mode` (names as on the command line).
fn dpdk(mode: &str) -> UpOptions {
    UpOptions {
        mode: shoal_lab::options::parse_mode(mode).unwrap(),
        ..UpOptions::default()
    }
}

/// A running lab; `down` when dropped, then checks nothing is left.
struct Lab(shoal_lab::Lab);

impl Lab {
    fn up(backend: LabBackend) -> Lab {
        Lab::up_with(&UpOptions::for_backend(backend))
    }

    fn up_with(opts: &UpOptions) -> Lab {
        assert!(
            std::env::var_os("SHOAL_BIN_DIR").is_some(),
            "set SHOAL_BIN_DIR to the release build (tests/run.sh does)"
        );
        // A lab left by an earlier failed run.
        let _ = shoal_lab::Lab::down();
        Lab(shoal_lab::Lab::up(opts).unwrap_or_else(|e| panic!("lab up {opts:?}: {e}")))
    }

    /// Client ports whose connections `node`'s inspector takes (from the
    /// lab's own config and the dataplane's selector).
    fn ports_inspected_by(&self, node: &str, count: usize) -> Vec<u16> {
        let cfg = self.0.server_config(server("srv1")).unwrap();
        let id = cfg
            .cluster
            .members
            .iter()
            .find(|m| m.name == node)
            .unwrap()
            .id;
        let tables = shoal_dataplane::pipeline::Tables::from_config(&cfg, 1).unwrap();
        let client = std::net::Ipv4Addr::new(198, 18, 0, 2);
        (20_000..40_000)
            .filter(|&port| {
                tables.services[0]
                    .selector
                    .select(shoal_select::ClientKey { addr: client, port })
                    == Some(id)
            })
            .take(count)
            .collect()
    }

    /// Starts slow 8 MB downloads from fixed client ports in the background;
    /// `finish_downloads` waits for them and returns (served by, sha256).
    fn start_downloads(&self, ports: &[u16], rate: &str) {
        let mut script = String::from("mkdir -p /tmp/shoal-dl && rm -f /tmp/shoal-dl/*\n");
        for p in ports {
            script.push_str(&format!(
                "(curl -s -m 60 --local-port {p} --limit-rate {rate} -D /tmp/shoal-dl/{p}.h \
                 -o /tmp/shoal-dl/{p}.body http://198.18.0.100/files/8m; echo $? > /tmp/shoal-dl/{p}.rc) \
                 >/dev/null 2>&1 &\n"
            ));
        }
        self.client(&script);
    }

    fn finish_downloads(&self, ports: &[u16]) -> Vec<(String, String)> {
        let mut script = String::from(
            "for i in $(seq 1 600); do n=$(ls /tmp/shoal-dl/*.rc 2>/dev/null | wc -l); \
             [ \"$n\" -ge PORTS ] && break; sleep 0.1; done\n",
        )
        .replace("PORTS", &ports.len().to_string());
        for p in ports {
            script.push_str(&format!(
                "echo \"$(grep -i '^x-served-by' /tmp/shoal-dl/{p}.h | tr -d '\\r' | cut -d' ' -f2) \
                 $(sha256sum < /tmp/shoal-dl/{p}.body | cut -d' ' -f1) $(cat /tmp/shoal-dl/{p}.rc)\"\n"
            ));
        }
        script.push_str("rm -rf /tmp/shoal-dl\n");
        self.client(&script)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                assert_eq!(f.len(), 3, "download result: {l}");
                assert_eq!(f[2], "0", "curl failed: {l}");
                (f[0].to_owned(), f[1].to_owned())
            })
            .collect()
    }

    /// Sets `node`'s load figure (membership file + SIGHUP).
    fn load(&self, node: &str, load: f64) {
        self.0.load(server(node), load).unwrap();
    }

    fn drain(&self, node: &str) {
        self.0.drain(server(node)).unwrap();
    }

    fn undrain(&self, node: &str) {
        self.0.undrain(server(node)).unwrap();
    }

    fn kill(&self, node: &str, part: Part) {
        self.0.kill(server(node), part).unwrap();
    }

    fn start(&self, node: &str, part: Part) {
        self.0.start(server(node), part).unwrap();
    }

    /// `lab status --json`, as scripts see it.
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(shoal_lab::Lab::status().unwrap()).unwrap()
    }

    /// Runs `cmd` in `node`'s namespace; its stdout.
    fn exec(&self, node: &str, cmd: &[&str]) -> String {
        let node: Node = node.parse().unwrap();
        ok(&shoal_lab::Lab::command(node, cmd)
            .unwrap()
            .output()
            .unwrap())
    }

    fn client(&self, script: &str) -> String {
        self.exec("client", &["bash", "-c", script])
    }

    fn stats(&self, node: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(format!("/run/shoal-lab/{node}/stats.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn counter(&self, node: &str, name: &str) -> u64 {
        self.stats(node)["counters"][name].as_u64().unwrap()
    }

    /// Waits until every running dataplane has written its stats file with
    /// an `uptime_s` more than 1.2 s past the one it had at the call (the
    /// lab writes every 0.5 s from figures the workers publish every
    /// 0.25 s), so counters read afterwards include everything handled
    /// before the call and what follows from it within about a second
    /// (handoff answers: an inspector settles every offer within 750 ms).
    /// Waits on what the files say, not on a fixed sleep, so a loaded
    /// machine only makes it slower; a dataplane restarted meanwhile counts
    /// as written. Bounded: a dataplane that stops writing for 60 s fails
    /// the test naming it.
    fn settle(&self) {
        let uptime = |node: &str| -> Option<f64> {
            let text = std::fs::read_to_string(format!("/run/shoal-lab/{node}/stats.json")).ok()?;
            serde_json::from_str::<serde_json::Value>(&text).ok()?["uptime_s"].as_f64()
        };
        let running: Vec<String> = self.status()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["dataplane"]["alive"] == true)
            .filter_map(|n| n["name"].as_str().map(str::to_owned))
            .collect();
        let since: Vec<Option<f64>> = running.iter().map(|n| uptime(n)).collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let behind: Vec<&String> = running
                .iter()
                .zip(&since)
                .filter(|(n, s)| match (uptime(n), s) {
                    (Some(now), Some(s)) => *s <= now && now < s + 1.2,
                    (Some(_), None) => false,
                    (None, _) => true,
                })
                .map(|(n, _)| n)
                .collect();
            if behind.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the stats of {behind:?} were not written for 60 s"
            );
        }
    }

    fn assert_alive(&self) {
        let s = self.status();
        for n in s["nodes"].as_array().unwrap() {
            assert_eq!(
                n["dataplane"]["alive"], true,
                "{} dataplane died",
                n["name"]
            );
            assert_eq!(n["nginx"]["alive"], true, "{} nginx died", n["name"]);
            assert_eq!(
                n["control"]["alive"], true,
                "{} shoal-control died",
                n["name"]
            );
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let down = shoal_lab::Lab::down();
        let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let left = String::from_utf8_lossy(&netns.stdout).into_owned();
        if !std::thread::panicking() {
            down.unwrap();
            assert!(!left.contains("shoal-"), "namespaces left: {left}");
            assert!(!Path::new("/run/shoal-lab").exists(), "run dir left");
            // Stopped processes may linger a moment as zombies until reaped;
            // processes under another root (another lab in a chroot, e.g. a
            // CI run on the same host) are not ours.
            let ps = Command::new("ps")
                .args(["-C", "shoal-dataplane", "-o", "pid=,stat="])
                .output()
                .unwrap();
            let our_root = std::fs::read_link("/proc/self/root").ok();
            let live = String::from_utf8_lossy(&ps.stdout)
                .lines()
                .filter_map(|l| {
                    l.trim()
                        .split_once(char::is_whitespace)
                        .map(|(p, st)| (p, st.trim()))
                })
                .filter(|(_, st)| !st.starts_with('Z'))
                .filter(|(pid, _)| std::fs::read_link(format!("/proc/{pid}/root")).ok() == our_root)
                .count();
            assert_eq!(live, 0, "dataplane processes left");
        }
    }
}

/// One client request's result.
#[derive(Debug)]
struct Fetch {
    path: String,
    code: u16,
    served_by: String,
    size: u64,
    sha256: String,
    body_head: String,
}

/// Runs `n` requests (16 at a time, one connection each) from the client.
/// `f` answered 200 with an intact body: /whoami names the server that
/// served it, a file has the sha256 the lab lists in `files`.
fn assert_intact(f: &Fetch, files: &serde_json::Value) {
    assert_eq!(f.code, 200, "{f:?}");
    if f.path == "whoami" {
        assert_eq!(f.body_head, f.served_by, "{f:?}");
    } else {
        let name = f.path.trim_start_matches("files/");
        assert_eq!(f.sha256, files[name]["sha256"].as_str().unwrap(), "{f:?}");
    }
}

fn fetch_many(lab: &Lab, n: u32) -> Vec<Fetch> {
    fetch_mix(lab, n, 20)
}

/// `n` requests, 16 at a time, one connection each: every `big_every`-th
/// fetches /files/8m, every 5th (or 50th when `big_every` > 20) /files/1m,
/// half /files/1k, the rest /whoami.
fn fetch_mix(lab: &Lab, n: u32, big_every: u32) -> Vec<Fetch> {
    let mid_every = if big_every > 20 { 50 } else { 5 };
    let script = format!(
        r#"set -eu
dir=$(mktemp -d /tmp/shoal-e2e.XXXXXX)
trap 'rm -rf "$dir"' EXIT
seq 1 {n} | xargs -P 16 -I{{}} sh -c '
  i={{}}
  if [ $((i % {big_every})) -eq 0 ]; then p=files/8m
  elif [ $((i % {mid_every})) -eq 1 ]; then p=files/1m
  elif [ $((i % 2)) -eq 0 ]; then p=files/1k
  else p=whoami; fi
  curl -s -m 60 -H "Connection: close" -o "$0/$i.body" \
    -w "$i $p %{{http_code}} %header{{x-served-by}} %{{size_download}}\n" \
    "http://198.18.0.100/$p" > "$0/$i.result" || echo "$i $p 000 - 0" > "$0/$i.result"
' "$dir"
for f in "$dir"/*.result; do
  i=$(basename "$f" .result)
  sum=$(sha256sum "$dir/$i.body" 2>/dev/null | cut -d" " -f1)
  head=$(head -c 8 "$dir/$i.body" 2>/dev/null | tr -dc "a-z0-9")
  echo "$(cat "$f") ${{sum:--}} ${{head:--}}"
done
"#
    );
    let out = lab.client(&script);
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 7, "bad result line: {l}");
            Fetch {
                path: f[1].to_owned(),
                code: f[2].parse().unwrap(),
                served_by: f[3].to_owned(),
                size: f[4].parse().unwrap(),
                sha256: f[5].to_owned(),
                body_head: f[6].to_owned(),
            }
        })
        .collect()
}

/// 200 requests all succeed with the right bodies, spread over the three
/// servers, each answered by exactly one of them.
fn serve_200(backend: LabBackend) {
    let lab = Lab::up(backend);
    let status = lab.status();
    let files = &status["files"];
    let fetches = fetch_many(&lab, 200);
    assert_eq!(fetches.len(), 200);
    let mut by_server: BTreeMap<String, u64> = BTreeMap::new();
    for f in &fetches {
        assert_eq!(f.code, 200, "{f:?}");
        *by_server.entry(f.served_by.clone()).or_default() += 1;
        if f.path == "whoami" {
            assert_eq!(f.body_head, f.served_by, "{f:?}");
        } else {
            let name = f.path.trim_start_matches("files/");
            assert_eq!(f.size, files[name]["size"].as_u64().unwrap(), "{f:?}");
            assert_eq!(f.sha256, files[name]["sha256"].as_str().unwrap(), "{f:?}");
        }
    }
    assert_eq!(fetches.iter().filter(|f| f.path == "files/8m").count(), 10);
    // All three answered; ring hashing of 200 client ports: each >= 25.
    assert_eq!(
        by_server.keys().cloned().collect::<Vec<_>>(),
        ["srv1", "srv2", "srv3"]
    );
    assert!(by_server.values().all(|&n| n >= 25), "{by_server:?}");
    lab.settle();
    let mut accepted = 0;
    for (node, served) in &by_server {
        // Each connection's SYN was taken by exactly one dataplane, and that
        // server's nginx logged exactly the requests the client saw from it.
        let syns = lab.counter(node, "syn_accepted");
        accepted += syns;
        assert_eq!(syns, *served, "{node}");
        let log = std::fs::read_to_string(format!("/run/shoal-lab/{node}/access.log")).unwrap();
        assert_eq!(log.lines().count() as u64, *served, "{node} access log");
        assert_eq!(lab.counter(node, "drop_malformed"), 0, "{node}");
        // With DPDK every server runs two workers: both take connections
        // (their share of the client ports), frames reach their owner
        // through the steering rings, none is lost there.
        let workers = lab.stats(node)["workers"].as_array().unwrap().clone();
        let want = if backend == LabBackend::Dpdk { 2 } else { 1 };
        assert_eq!(workers.len(), want, "{node}: {workers:?}");
        let per_worker: Vec<u64> = workers
            .iter()
            .map(|w| w["syn_accepted"].as_u64().unwrap())
            .collect();
        assert_eq!(per_worker.iter().sum::<u64>(), syns, "{node}: {workers:?}");
        if want == 2 {
            assert!(per_worker.iter().all(|&n| n >= 3), "{node}: {workers:?}");
            assert!(
                workers
                    .iter()
                    .all(|w| w["steered_in_packets"].as_u64().unwrap() > 0),
                "{node}: {workers:?}"
            );
            assert_eq!(lab.counter(node, "drop_steer_ring_full"), 0, "{node}");
        }
    }
    assert_eq!(accepted, 200);
    lab.assert_alive();
}

/// 1000 connections in each mode: all complete with the right bodies, every
/// server takes a fair share, the mode's rewriting really happened.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn every_mode_serves_1000_connections() {
    for (mode, state) in [
        ("local", "stateful"),
        ("dpr-mac", "stateless"),
        ("dpr-mac", "stateful"),
        ("dpr-ipip", "stateless"),
        ("dpr-ipip", "stateful"),
    ] {
        let lab = Lab::up_with(&UpOptions {
            state: shoal_lab::options::parse_state(state).unwrap(),
            ..dpdk(mode)
        });
        // shoal-control reports real load (busy fraction); pin every
        // member's load to 0 so stateful DPR keeps connections with their
        // inspector whatever this machine's load (the overload test covers
        // the other case).
        for node in MEMBERS {
            lab.load(node, 0.0);
        }
        let files = lab.status()["files"].clone();
        let fetches = fetch_mix(&lab, 1000, 200);
        assert_eq!(fetches.len(), 1000, "{mode} {state}");
        let mut by_server: BTreeMap<String, u64> = BTreeMap::new();
        for f in &fetches {
            assert_eq!(f.code, 200, "{mode} {state}: {f:?}");
            *by_server.entry(f.served_by.clone()).or_default() += 1;
            if f.path == "whoami" {
                assert_eq!(f.body_head, f.served_by, "{f:?}");
            } else {
                let name = f.path.trim_start_matches("files/");
                assert_eq!(f.sha256, files[name]["sha256"].as_str().unwrap(), "{f:?}");
            }
        }
        // Equal weights, consistent hashing of 1000 client ports: each
        // server between 20 % and 47 % of the connections.
        assert_eq!(by_server.len(), 3, "{mode} {state}: {by_server:?}");
        assert!(
            by_server.values().all(|&n| (200..=470).contains(&n)),
            "{mode} {state}: {by_server:?}"
        );
        lab.settle();
        let sum = |name: &str| -> u64 { MEMBERS.iter().map(|n| lab.counter(n, name)).sum() };
        let logged: u64 = MEMBERS
            .iter()
            .map(|n| {
                std::fs::read_to_string(format!("/run/shoal-lab/{n}/access.log"))
                    .unwrap()
                    .lines()
                    .count() as u64
            })
            .sum();
        assert_eq!(logged, 1000, "{mode} {state}: requests served in total");
        assert_eq!(sum("drop_malformed"), 0);
        match (mode, state) {
            ("local", _) | (_, "stateful") => {
                // Loads pinned to 0: every connection stays with its inspector.
                assert_eq!(sum("syn_accepted"), 1000, "{mode} {state}");
                assert_eq!(sum("dpr_redirected"), 0, "{mode} {state}");
            }
            ("dpr-mac", _) => {
                // The target hash sends about 2/3 of connections elsewhere.
                assert!(
                    sum("dpr_redirected") > 1000,
                    "{mode}: {}",
                    sum("dpr_redirected")
                );
                // Redirected frames cross the hub once more; under load the
                // receivers' AF_PACKET rings may miss a few (TCP resends).
                let (sent, got) = (sum("dpr_redirected"), sum("dpr_received"));
                assert!(
                    got <= sent && got * 10 >= sent * 9,
                    "{mode}: {sent} redirected, {got} received"
                );
            }
            _ => {
                assert!(sum("ipip_decapsulated") > 1000, "{mode}");
                let (sent, got) = (sum("dpr_redirected"), sum("ipip_decapsulated"));
                assert!(
                    got <= sent && got * 10 >= sent * 9,
                    "{mode}: {sent} tunnelled, {got} decapsulated"
                );
                // Every tunnelled SYN had its MSS clamped to fit the tunnel.
                assert!(sum("mss_clamped") > 300, "{mode}: {}", sum("mss_clamped"));
            }
        }
        lab.assert_alive();
    }
}

/// A drained server takes no new connections while its downloads finish.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn drained_server_finishes_its_downloads_and_takes_no_new_connections() {
    let lab = Lab::up(LabBackend::Dpdk);
    let sha = lab.status()["files"]["8m"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let ports = lab.ports_inspected_by("srv2", 4);
    lab.start_downloads(&ports, "2M"); // about 4 s each
    std::thread::sleep(std::time::Duration::from_millis(800));
    lab.drain("srv2");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let fetches = fetch_mix(&lab, 150, 1000);
    assert!(fetches.iter().all(|f| f.code == 200), "{fetches:?}");
    assert!(
        fetches.iter().all(|f| f.served_by != "srv2"),
        "a drained server took a new connection"
    );
    let downloads = lab.finish_downloads(&ports);
    assert_eq!(downloads.len(), 4);
    for (served_by, got) in downloads {
        assert_eq!(served_by, "srv2");
        assert_eq!(got, sha, "a download on the drained server was cut");
    }
    // Undrained, it takes connections again.
    lab.undrain("srv2");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let again = fetch_mix(&lab, 60, 1000);
    assert!(again.iter().any(|f| f.served_by == "srv2"));
    lab.assert_alive();
}

/// Stateful DPR: a member over `max_load` passes its new connections on while
/// the ones it holds keep working.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn overloaded_member_passes_new_connections_on_in_stateful_dpr() {
    let lab = Lab::up_with(&UpOptions {
        state: shoal_config::State::Stateful,
        ..dpdk("dpr-ipip")
    });
    let sha = lab.status()["files"]["8m"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let ports = lab.ports_inspected_by("srv1", 8);
    let (held, later) = ports.split_at(3);
    // shoal-control reports real load (busy fraction): pinned to 0 first,
    // so the held downloads stay with srv1 whatever this machine's load.
    for node in MEMBERS {
        lab.load(node, 0.0);
    }
    lab.start_downloads(held, "2M");
    std::thread::sleep(std::time::Duration::from_millis(800));
    // The lab config has max_load 0.5 and least-loaded choice.
    lab.load("srv1", 0.9);
    lab.load("srv3", 0.2);
    // srv2's measured load is pinned too: the least loaded is then srv2.
    lab.load("srv2", 0.0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // New connections srv1 inspects go to the least-loaded member, srv2 (load 0).
    let mut script = String::new();
    for p in later {
        script.push_str(&format!(
            "curl -s -m 10 --local-port {p} -o /dev/null -w '%header{{x-served-by}}\\n' http://198.18.0.100/whoami\n"
        ));
    }
    let served = lab.client(&script);
    assert_eq!(
        served.lines().collect::<Vec<_>>(),
        vec!["srv2"; later.len()],
        "{served}"
    );
    for (served_by, got) in lab.finish_downloads(held) {
        assert_eq!(served_by, "srv1", "held connections stay");
        assert_eq!(got, sha);
    }
    lab.settle();
    assert_eq!(
        lab.counter("srv1", "dpr_overload_choice"),
        later.len() as u64
    );
    lab.assert_alive();
}

/// Polls `probe` every 200 ms until it returns `Some`, for at most `within`;
/// panics naming `what` (and the last value seen) after that.
fn await_value<T>(
    what: &str,
    within: std::time::Duration,
    mut probe: impl FnMut() -> (Option<T>, String),
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        let (got, seen) = probe();
        if let Some(v) = got {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {within:?} (last seen: {seen})"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `member`'s composite load as `observer`'s shoal-control last heard it
/// announced (`shoalctl status --json`).
fn announced_load(observer: &str, member: &str) -> f64 {
    let v: serde_json::Value =
        serde_json::from_str(&shoalctl(observer, &["status", "--json"])).unwrap();
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == member)
        .and_then(|m| m["load"]["load"].as_f64())
        .unwrap()
}

/// Who served one new connection per client port (`X-Served-By`).
fn served_from_ports(lab: &Lab, ports: &[u16]) -> Vec<String> {
    let mut script = String::new();
    for p in ports {
        script.push_str(&format!(
            "curl -s -m 10 --local-port {p} -H 'Connection: close' -o /dev/null \
             -w '%header{{x-served-by}}\\n' http://198.18.0.100/whoami\n"
        ));
    }
    lab.client(&script).lines().map(str::to_owned).collect()
}

/// Issue 16: the load counts the application. srv1's nginx is saturated
/// directly (wrk to srv1's own address, not the VIP: the dataplanes forward
/// it to srv1's kernel as any own-address traffic, so the dataplane figures
/// stay low and only the application's share can tell); once srv2 hears
/// srv1 announce a load above `max_load` (0.5), new connections srv1 inspects
/// all go to the others (stateful DPR's load choice) and are counted; once
/// the hog stops and srv1's load falls below `max_load` again, srv1 serves
/// them itself.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn saturated_nginx_makes_its_member_pass_new_connections_on() {
    let lab = Lab::up_with(&UpOptions {
        state: shoal_config::State::Stateful,
        ..dpdk("dpr-mac")
    });
    let ports = lab.ports_inspected_by("srv1", 50);
    let (during, rest) = ports.split_at(30);
    let (after, probes) = rest.split_at(10);
    let calm = |what: &str| {
        await_value(what, std::time::Duration::from_secs(20), || {
            let l = announced_load("srv2", "srv1");
            (
                (l < 0.5).then_some(l),
                format!("srv1 load {l} as srv2 hears it"),
            )
        })
    };
    calm("srv1's load below max_load at start");
    let mut redirected_before = lab.counter("srv1", "dpr_overload_choice");

    // The hog: bounded by -d and --timeout, killed by its PID at the end.
    let hog = lab.client(
        "nohup wrk -t2 -c64 -d25s --timeout 2s http://198.18.0.11/files/1k \
         >/tmp/shoal-e2e-hog.out 2>&1 </dev/null & echo $!",
    );
    let hog: u32 = hog.trim().parse().unwrap();
    let loaded = await_value(
        "srv1's announced load above max_load under the hog",
        std::time::Duration::from_secs(15),
        || {
            let l = announced_load("srv2", "srv1");
            (
                (l > 0.6).then_some(l),
                format!("srv1 load {l} as srv2 hears it"),
            )
        },
    );
    let srv1: serde_json::Value =
        serde_json::from_str(&shoalctl("srv1", &["status", "--json"])).unwrap();
    let detail = &srv1["load_detail"];
    eprintln!(
        "hog: srv1 load {loaded:.3} as srv2 hears it; srv1's own figures: busy {:.3}, app {:.3} \
         (last interval {:.3} on CPU + {:.3} waiting)",
        srv1["load"]["busy"].as_f64().unwrap(),
        detail["app"].as_f64().unwrap(),
        detail["app_last_cpu"].as_f64().unwrap_or(f64::NAN),
        detail["app_last_wait"].as_f64().unwrap_or(f64::NAN),
    );
    // The load is the application's: the dataplane's figures stay low.
    assert!(srv1["load"]["busy"].as_f64().unwrap() < 0.5, "{srv1}");
    assert!(detail["app"].as_f64().unwrap() > 0.5, "{srv1}");
    // srv2 can hear the load before srv1's own dataplane has it (control
    // hands its dataplane the membership on its own tick): wait until a
    // probe connection srv1 inspects is passed on (the one redirected
    // probe is counted in dpr_overload_choice), then fetch.
    let mut next_probe = probes.iter();
    await_value(
        "srv1's own dataplane passes a new connection on",
        std::time::Duration::from_secs(10),
        || match next_probe.next() {
            Some(&p) => {
                let by = served_from_ports(&lab, &[p]);
                (
                    (by[0] != "srv1").then_some(()),
                    format!("probe {p} served by {by:?}"),
                )
            }
            None => (None, "out of probe ports".to_owned()),
        },
    );
    redirected_before += 1;
    let served = served_from_ports(&lab, during);
    let redirected = lab.counter("srv1", "dpr_overload_choice");
    let still_loaded = announced_load("srv2", "srv1");
    lab.client(&format!(
        "kill {hog} 2>/dev/null; for i in $(seq 1 50); do kill -0 {hog} 2>/dev/null || break; \
         sleep 0.1; done; cat /tmp/shoal-e2e-hog.out; rm -f /tmp/shoal-e2e-hog.out"
    ));
    eprintln!("hog: {served:?}; srv1 load {still_loaded:.3} after the fetches");
    assert_eq!(served.len(), during.len(), "{served:?}");
    assert!(
        served.iter().all(|s| s == "srv2" || s == "srv3"),
        "srv1 served a new connection while over max_load: {served:?}"
    );
    // Every one of them passed on by srv1's load choice (the stats file is
    // written every 200 ms: wait for it to show all of them).
    let moved = await_value(
        "srv1's dpr_overload_choice counts the connections",
        std::time::Duration::from_secs(5),
        || {
            let n = lab.counter("srv1", "dpr_overload_choice") - redirected_before;
            (
                (n >= during.len() as u64).then_some(n),
                format!("{n} (read {redirected})"),
            )
        },
    );
    assert_eq!(moved, during.len() as u64);

    // The hog is gone: srv1's load falls and it serves its own again.
    let fell = calm("srv1's load back below max_load after the hog");
    let served = served_from_ports(&lab, after);
    eprintln!("after: srv1 load {fell:.3}; {served:?}");
    assert_eq!(served, vec!["srv1"; after.len()]);
    assert_eq!(
        lab.counter("srv1", "dpr_overload_choice") - redirected_before,
        during.len() as u64
    );
    lab.assert_alive();
}

#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn dpdk_backend_serves_200_requests_each_by_one_server() {
    serve_200(LabBackend::Dpdk);
}

#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn portable_backend_serves_200_requests_each_by_one_server() {
    serve_200(LabBackend::Portable);
}

/// Garbage on the hub and clients vanishing mid-transfer: counted, no crash,
/// and the cluster keeps serving.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn garbage_and_vanishing_clients_are_survived() {
    let lab = Lab::up(LabBackend::Dpdk);
    // 600 frames from the client's raw socket: 200 random frames to the
    // cluster MAC with the IPv4 ethertype, 200 truncated IPv4 headers, 200
    // IPv4 to the VIP with a bad IHL. Every server sees all of them.
    let sender = r#"
import os, random, socket, struct
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
rnd = random.Random(7)
cluster = bytes.fromhex("0200c6120064"); me = bytes.fromhex("0200c6120002")
vip = bytes([198, 18, 0, 100]); cli = bytes([198, 18, 0, 2])
def csum(h):
    t = sum(struct.unpack("!%dH" % (len(h) // 2), h)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return (~t) & 0xffff
sent = 0
for i in range(200):
    s.send(cluster + me + b"\x08\x00" + bytes([0x90 | rnd.randrange(16)]) + os.urandom(rnd.randrange(19, 80))); sent += 1
    s.send(cluster + me + b"\x08\x00" + bytes([0x45]) + os.urandom(rnd.randrange(0, 18))); sent += 1
    h = bytearray(struct.pack("!BBHHHBBH4s4s", 0x43, 0, 40, i, 0, 64, 6, 0, cli, vip))
    s.send(cluster + me + b"\x08\x00" + bytes(h) + bytes(20)); sent += 1
print(sent)
"#;
    let before: Vec<u64> = ["srv1", "srv2", "srv3"]
        .iter()
        .map(|n| lab.counter(n, "drop_malformed"))
        .collect();
    let sent = lab.client(&format!(
        "/usr/bin/python3 -c '{}'",
        sender.replace('\'', "\"")
    ));
    assert_eq!(sent.trim(), "600");
    // Six slow downloads killed after a second: their servers hold flows and
    // sockets for a client that is gone.
    lab.client(
        r"pids=''
for i in 1 2 3 4 5 6; do
  curl -s -m 20 --limit-rate 300k -o /dev/null http://198.18.0.100/files/8m & pids=$pids' '$!
done
sleep 1; kill -9 $pids; wait 2>/dev/null || true",
    );
    lab.settle();
    for (i, node) in ["srv1", "srv2", "srv3"].iter().enumerate() {
        let dropped = lab.counter(node, "drop_malformed") - before[i];
        assert_eq!(dropped, 600, "{node}: malformed frames counted");
        let m = &lab.stats(node)["malformed"]["ipv4"];
        assert_eq!(m["bad_version"], 200, "{node}: {m}");
        assert_eq!(m["truncated"], 200, "{node}: {m}");
        assert_eq!(m["bad_ihl"], 200, "{node}: {m}");
    }
    lab.assert_alive();
    // Still serving, intact.
    let fetches = fetch_many(&lab, 20);
    assert!(fetches.iter().all(|f| f.code == 200), "{fetches:?}");
    let sha = lab.status()["files"]["8m"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(fetches
        .iter()
        .filter(|f| f.path == "files/8m")
        .all(|f| f.sha256 == sha));
    lab.assert_alive();
}

/// `shoalctl` of the release build, run inside `node`'s namespace.
fn shoalctl(node: &str, args: &[&str]) -> String {
    let bin = PathBuf::from(std::env::var_os("SHOAL_BIN_DIR").unwrap()).join("shoalctl");
    let mut all = vec![bin.to_str().unwrap()];
    all.extend_from_slice(args);
    let node: Node = node.parse().unwrap();
    ok(&shoal_lab::Lab::command(node, &all)
        .unwrap()
        .output()
        .unwrap())
}

/// Each member's (epoch, digest, converged, live member count).
fn control_views(nodes: &[&str]) -> Vec<(u64, String, bool, usize)> {
    nodes
        .iter()
        .map(|n| {
            let v: serde_json::Value =
                serde_json::from_str(&shoalctl(n, &["status", "--json"])).unwrap();
            let live = v["members"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["alive"] == true)
                .count();
            (
                v["epoch"].as_u64().unwrap(),
                v["epoch_digest"].as_str().unwrap().to_owned(),
                v["converged"].as_bool().unwrap(),
                live,
            )
        })
        .collect()
}

/// Waits (bounded) until every running member reports the same converged
/// epoch with `live` live members; returns the epoch.
fn await_agreement(nodes: &[&str], live: usize, within: std::time::Duration) -> u64 {
    let deadline = std::time::Instant::now() + within;
    loop {
        let views = control_views(nodes);
        let first = &views[0];
        if views
            .iter()
            .all(|v| v.2 && v.3 == live && v.0 == first.0 && v.1 == first.1)
        {
            return first.0;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no agreement on an epoch with {live} live members: {views:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Control: the members agree on one epoch; a killed member's share of new
/// connections moves to the others within the failure timeout while the
/// survivors' connections continue; it rejoins; forged messages change
/// nothing and are counted.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn control_agrees_fails_over_and_rejoins() {
    let lab = Lab::up(LabBackend::Dpdk);
    let sha = lab.status()["files"]["8m"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let epoch = await_agreement(&MEMBERS, 3, std::time::Duration::from_secs(5));
    // Slow downloads held by srv1 and srv2.
    let mut held = lab.ports_inspected_by("srv1", 2);
    held.extend(lab.ports_inspected_by("srv2", 2));
    lab.start_downloads(&held, "2M");
    std::thread::sleep(std::time::Duration::from_millis(500));
    lab.kill("srv3", Part::All);
    // failure_timeout_ms = 1000 in the lab, announcements every 100 ms.
    std::thread::sleep(std::time::Duration::from_millis(1600));
    let after = await_agreement(&["srv1", "srv2"], 2, std::time::Duration::from_secs(3));
    assert!(after > epoch);
    let fetches = fetch_mix(&lab, 90, 1000);
    assert!(fetches.iter().all(|f| f.code == 200), "{fetches:?}");
    assert!(
        fetches.iter().all(|f| f.served_by != "srv3"),
        "a dead member got a new connection"
    );
    for (served_by, got) in lab.finish_downloads(&held) {
        assert!(served_by == "srv1" || served_by == "srv2");
        assert_eq!(got, sha, "a survivor's connection was hurt by the failover");
    }
    lab.start("srv3", Part::All);
    let rejoined = await_agreement(&MEMBERS, 3, std::time::Duration::from_secs(6));
    assert!(rejoined > after);
    let again = fetch_mix(&lab, 60, 1000);
    assert!(again.iter().all(|f| f.code == 200));
    assert!(
        again.iter().any(|f| f.served_by == "srv3"),
        "srv3 did not rejoin"
    );

    // Forged control messages: garbage and a well-formed-looking datagram
    // under a wrong key. Counted, and the epoch does not move.
    let metric = |name: &str| -> u64 {
        let text = lab.client("curl -s http://198.18.0.11:9464/metrics");
        text.lines()
            .filter(|l| l.starts_with("shoal_control_messages_received_total") && l.contains(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let rejected_before = metric("outcome=\"malformed\"") + metric("outcome=\"bad_mac\"");
    lab.client(
        "/usr/bin/python3 -c 'import os, socket\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
for i in range(40): s.sendto(os.urandom(64 + i), (\"198.18.0.11\", 7946))\n\
for i in range(10): s.sendto(b\"SHOAL\" + bytes(200), (\"198.18.0.11\", 7946))'",
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let rejected =
        metric("outcome=\"malformed\"") + metric("outcome=\"bad_mac\"") - rejected_before;
    assert_eq!(rejected, 50, "forged messages counted");
    assert_eq!(
        await_agreement(&MEMBERS, 3, std::time::Duration::from_secs(2)),
        rejoined
    );
    lab.assert_alive();
}

/// A real Prometheus scrapes the three exporters; a PromQL query over what
/// it scraped gives the per-server connection split the client saw.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn prometheus_sees_the_connection_split() {
    let lab = Lab::up(LabBackend::Dpdk);
    let fetches = fetch_mix(&lab, 60, 1000);
    let mut by_server: BTreeMap<String, u64> = BTreeMap::new();
    for f in &fetches {
        assert_eq!(f.code, 200);
        *by_server.entry(f.served_by.clone()).or_default() += 1;
    }
    // Every exporter passes promtool's lint.
    for k in 1..=3 {
        let out = lab.client(&format!(
            "curl -s http://198.18.0.1{k}:9464/metrics | promtool check metrics && echo LINT-OK"
        ));
        assert!(out.contains("LINT-OK"), "srv{k}: {out}");
    }
    let script = r#"set -eu
dir=$(mktemp -d /tmp/shoal-prom.XXXXXX)
cat > "$dir/prometheus.yml" <<'YML'
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: shoal
    static_configs:
      - targets: ["198.18.0.11:9464", "198.18.0.12:9464", "198.18.0.13:9464"]
YML
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
  --web.listen-address=127.0.0.1:9390 > "$dir/log" 2>&1 &
pid=$!
q='sum by (instance) (shoal_dataplane_selections_total{outcome="syn_accepted"})'
out=""
for i in $(seq 1 60); do
  sleep 0.5
  out=$(curl -s -G --data-urlencode "query=$q" http://127.0.0.1:9390/api/v1/query || true)
  n=$(printf '%s' "$out" | grep -o '"instance"' | wc -l)
  [ "$n" -ge 3 ] && break
done
kill "$pid"; wait "$pid" 2>/dev/null || true
rm -rf "$dir"
printf '%s\n' "$out"
"#;
    let out = lab.client(script);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["status"], "success", "{out}");
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for r in v["data"]["result"].as_array().unwrap() {
        let instance = r["metric"]["instance"].as_str().unwrap();
        let k: usize = instance
            .trim_start_matches("198.18.0.1")
            .trim_end_matches(":9464")
            .parse()
            .unwrap();
        let n: u64 = r["value"][1].as_str().unwrap().parse().unwrap();
        seen.insert(MEMBERS[k - 1].to_owned(), n);
    }
    assert_eq!(seen, by_server, "PromQL split vs what the client saw");
}

/// `shoalctl drain` through control: no new connections to the drained
/// member while its downloads finish. Killing shoal-control alone fences
/// its dataplane (no new connections once the lease lapses, established
/// ones go on), the others take its share without a failed request, and a
/// restarted control takes it back.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn shoalctl_drain_and_control_restart_keep_traffic_flowing() {
    let lab = Lab::up(LabBackend::Dpdk);
    let sha = lab.status()["files"]["8m"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    await_agreement(&MEMBERS, 3, std::time::Duration::from_secs(5));
    let held = lab.ports_inspected_by("srv2", 3);
    lab.start_downloads(&held, "2M");
    std::thread::sleep(std::time::Duration::from_millis(500));
    shoalctl(
        "srv1",
        &[
            "drain",
            "srv2",
            "--token-file",
            "/run/shoal-lab/admin.token",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(600));
    let fetches = fetch_mix(&lab, 90, 1000);
    assert!(fetches.iter().all(|f| f.code == 200));
    assert!(
        fetches.iter().all(|f| f.served_by != "srv2"),
        "drained srv2 took a new connection"
    );
    for (served_by, got) in lab.finish_downloads(&held) {
        assert_eq!(served_by, "srv2");
        assert_eq!(got, sha);
    }
    shoalctl(
        "srv3",
        &[
            "undrain",
            "srv2",
            "--token-file",
            "/run/shoal-lab/admin.token",
        ],
    );

    // Control dies on srv1 mid-transfer. srv1's dataplane keeps serving its
    // established downloads, but its lease lapses (at most the failure
    // timeout minus the lease margin after the kill: nobody renews it) and
    // from then on it answers no new SYN; srv2 and srv3 remove srv1 after
    // the failure timeout and take its share once both their dataplanes run
    // the new epoch. Clients never meet two kernels answering one SYN; a SYN
    // sent in the gap between is retransmitted by the client's kernel.
    let held = lab.ports_inspected_by("srv1", 3);
    lab.start_downloads(&held, "2M");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let refused_before = lab.counter("srv1", "claims_refused_lease");
    lab.kill("srv1", Part::Control);
    // Past the lease's end (< 1 s after the kill): every SYN from now on
    // is one srv1 does not claim, whatever the others do meanwhile.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let during = fetch_mix(&lab, 60, 1000);
    assert!(during.iter().all(|f| f.code == 200), "{during:?}");
    assert!(
        during.iter().all(|f| f.served_by != "srv1"),
        "srv1 claimed a new connection without a lease: {during:?}"
    );
    lab.settle();
    assert!(
        lab.counter("srv1", "claims_refused_lease") > refused_before,
        "srv1 refused the SYNs it would have inspected"
    );
    lab.start("srv1", Part::Control);
    for (served_by, got) in lab.finish_downloads(&held) {
        assert_eq!(
            served_by, "srv1",
            "its established downloads stayed on srv1"
        );
        assert_eq!(got, sha);
    }
    await_agreement(&MEMBERS, 3, std::time::Duration::from_secs(6));
    // Back with a lease: srv1 takes new connections again.
    let after = fetch_mix(&lab, 60, 1000);
    assert!(after.iter().all(|f| f.code == 200), "{after:?}");
    assert!(
        after.iter().any(|f| f.served_by == "srv1"),
        "srv1 claims its share again once its control is back"
    );
    lab.assert_alive();
}

/// Fetches /probe/1../probe/`paths` `rounds` times over (new connections,
/// new client ports: other inspectors) and returns the server of each
/// path, asserting that a path is always served by the same server.
fn probe_owners(lab: &Lab, rounds: u32, paths: u32) -> BTreeMap<String, String> {
    let out = lab.client(&format!(
        "for r in $(seq 1 {rounds}); do for i in $(seq 1 {paths}); do \
           curl -s -m 5 -o /dev/null -w \"$i %header{{x-served-by}}\\n\" http://198.18.0.100/probe/$i; \
         done; done"
    ));
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for line in out.lines() {
        let (path, server) = line.split_once(' ').unwrap();
        assert!(MEMBERS.contains(&server), "{line}");
        let first = owner
            .entry(path.to_owned())
            .or_insert_with(|| server.to_owned());
        assert_eq!(first, server, "path {path} moved between servers");
    }
    owner
}

/// Splice mode: SYN cookies, the request read by the dataplane, URL
/// dispatch (url-hash, every path hashed), handover to the chosen server —
/// the inspector's own kernel or another member's through an authenticated
/// handoff — and translation in both directions, with curl's Linux defaults
/// (SACK, timestamps, window scaling); bodies intact, every path always on
/// the same server whoever inspects it, all three servers used, then wrk
/// with 500 concurrent connections without errors.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn splice_mode_dispatches_urls_and_hands_connections_over() {
    let lab = Lab::up_with(&dpdk("splice"));
    let files = lab.status()["files"].clone();
    let fetches = fetch_mix(&lab, 200, 40);
    for f in &fetches {
        assert_eq!(f.code, 200, "{f:?}");
        if f.path == "whoami" {
            assert_eq!(f.body_head, f.served_by);
        } else {
            let name = f.path.trim_start_matches("files/");
            assert_eq!(f.sha256, files[name]["sha256"].as_str().unwrap(), "{f:?}");
        }
    }
    // 30 paths, each fetched 3 times over new connections (new client
    // ports, so different inspectors): always the same server per path.
    let owner = probe_owners(&lab, 3, 30);
    assert_eq!(owner.len(), 30);
    let used: std::collections::BTreeSet<&String> = owner.values().collect();
    assert_eq!(used.len(), 3, "{owner:?}");
    lab.settle();
    let sum = |name: &str| -> u64 { MEMBERS.iter().map(|n| lab.counter(n, name)).sum() };
    assert_eq!(sum("splice_spliced"), 290, "every connection spliced once");
    assert!(
        sum("handoff_handed_over") > 100,
        "{}",
        sum("handoff_handed_over")
    );
    assert_eq!(sum("handoff_handed_over"), sum("handoff_received"));
    assert_eq!(sum("handoff_fallback"), 0);
    assert_eq!(sum("splice_cookie_rejected"), 0);
    // 500 concurrent connections, each spliced, then kept alive.
    let out = lab.client(
        "ulimit -n 4096; wrk -t2 -c500 -d4s --timeout 10s http://198.18.0.100/files/1k 2>&1",
    );
    assert!(out.contains("requests in"), "{out}");
    assert!(!out.contains("Socket errors"), "{out}");
    assert!(!out.contains("Non-2xx"), "{out}");
    lab.assert_alive();
}

/// Splice under loss and reordering (injected by the dataplanes: 2 % of
/// wire frames dropped, 5 % held behind later ones): transfers complete
/// intact, through handoffs and retransmissions.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn splice_transfers_survive_loss_and_reordering() {
    let lab = Lab::up_with(&UpOptions {
        inject: Some("20,50".parse().unwrap()),
        ..dpdk("splice")
    });
    let files = lab.status()["files"].clone();
    let fetches = fetch_mix(&lab, 60, 10);
    for f in &fetches {
        assert_eq!(f.code, 200, "{f:?}");
        if f.path != "whoami" {
            let name = f.path.trim_start_matches("files/");
            assert_eq!(f.sha256, files[name]["sha256"].as_str().unwrap(), "{f:?}");
        }
    }
    assert_eq!(fetches.iter().filter(|f| f.path == "files/8m").count(), 6);
    lab.settle();
    let sum = |name: &str| -> u64 { MEMBERS.iter().map(|n| lab.counter(n, name)).sum() };
    assert!(
        sum("injected_drop") > 100 && sum("injected_reorder") > 100,
        "faults were injected"
    );
    lab.assert_alive();
}

/// CARISMA rare: the hashed server's kernel does the handshake; requests
/// that belong to another server move there after it (exact RST, handoff,
/// translation), the others stay; paths still stick to one server and
/// bodies arrive intact.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn rare_mode_moves_only_requests_that_belong_elsewhere() {
    let lab = Lab::up_with(&UpOptions {
        handoff: shoal_config::HandoffMode::Rare,
        ..dpdk("splice")
    });
    let files = lab.status()["files"].clone();
    let fetches = fetch_mix(&lab, 60, 20);
    for f in &fetches {
        assert_eq!(f.code, 200, "{f:?}");
        if f.path != "whoami" {
            let name = f.path.trim_start_matches("files/");
            assert_eq!(f.sha256, files[name]["sha256"].as_str().unwrap(), "{f:?}");
        }
    }
    let out = lab.client(
        "for r in 1 2; do for i in $(seq 1 20); do \
           curl -s -m 5 -o /dev/null -w \"$i %header{x-served-by}\\n\" http://198.18.0.100/probe/$i; \
         done; done",
    );
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for line in out.lines() {
        let (path, server) = line.split_once(' ').unwrap();
        let first = owner
            .entry(path.to_owned())
            .or_insert_with(|| server.to_owned());
        assert_eq!(first, server, "path {path} moved between servers");
    }
    lab.settle();
    let sum = |name: &str| -> u64 { MEMBERS.iter().map(|n| lab.counter(n, name)).sum() };
    assert_eq!(
        sum("rare_kept") + sum("rare_moved"),
        100,
        "every request judged once"
    );
    assert!(
        sum("rare_kept") > 10 && sum("rare_moved") > 30,
        "kept {}, moved {}",
        sum("rare_kept"),
        sum("rare_moved")
    );
    assert_eq!(sum("handoff_handed_over"), sum("rare_moved"));
    lab.assert_alive();
}

/// Requests per second from wrk's report.
fn wrk_rate(out: &str) -> f64 {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate in wrk's report:\n{out}"))
}

/// Issue 11: rapid 4-tuple reuse. wrk with `Connection: close` (one
/// connection per request; the server closes first, so the client keeps no
/// TIME-WAIT) from a client whose ephemeral ports are narrowed to 1000, so
/// every 4-tuple comes back many times a second, well within the
/// tombstones' and the kernels' TIME-WAIT lifetimes. Local mode first, then
/// splice mode on the same lab set-up: splice completes at least half as
/// many connections per second, without socket errors, and the inspectors'
/// tombstones and the receivers' spliced flows give way to the new
/// connections.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn splice_keeps_up_with_rapid_tuple_reuse() {
    let wrk = "sysctl -qw net.ipv4.ip_local_port_range='40000 40999' && ulimit -n 4096 && \
               wrk -t2 -c32 -d4s --timeout 2s -H 'Connection: close' \
               http://198.18.0.100/files/1k 2>&1";
    let local = {
        let lab = Lab::up_with(&dpdk("local"));
        let out = lab.client(wrk);
        assert!(!out.contains("Socket errors"), "local: {out}");
        lab.assert_alive();
        wrk_rate(&out)
    };
    let lab = Lab::up_with(&dpdk("splice"));
    let out = lab.client(wrk);
    let splice = wrk_rate(&out);
    lab.settle();
    let sum = |name: &str| -> u64 { MEMBERS.iter().map(|n| lab.counter(n, name)).sum() };
    eprintln!(
        "connections/s: local {local:.0}, splice {splice:.0}; tuple_reused {} \
         (tombstone {}, spliced {}), splice_replay_old_socket {}, handoff_fallback {}",
        sum("tuple_reused"),
        sum("tuple_reused_tombstone"),
        sum("tuple_reused_spliced"),
        sum("splice_replay_old_socket"),
        sum("handoff_fallback"),
    );
    assert!(!out.contains("Socket errors"), "splice: {out}");
    assert!(
        splice * 2.0 >= local,
        "splice {splice:.0} connections/s, local {local:.0}\n{out}"
    );
    assert!(sum("tuple_reused_tombstone") > 0, "4-tuples were reused");
    assert!(sum("tuple_reused_spliced") > 0, "4-tuples were reused");
    lab.assert_alive();
}

/// Churn under load, in `local`, `dpr-mac` and `splice` modes, on four
/// servers: four client loops of short connections and three slow 8 MB
/// downloads run while, in turn, a fourth member joins, one control is
/// killed and restarted at once, one control is stopped (`SIGSTOP`) for
/// longer than the failure timeout and resumed, the dataplane serving a
/// download is killed (`kill -9`) and restarted (it restores its flows from
/// its snapshot: the download goes on),
/// a member is drained and undrained, a weight changes and back, and the
/// config is reloaded. Every connection completes with 200 and the right
/// body (never two kernels answering one SYN), every download is intact,
/// and the connect-time p50/p99 and the longest connect per event are
/// printed.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn churn_keeps_every_connection() {
    for mode in ["local", "dpr-mac", "splice"] {
        churn(mode);
    }
}

fn unix_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn churn(mode: &str) {
    let nodes = ["srv1", "srv2", "srv3", "srv4"];
    let lab = Lab::up_with(&UpOptions {
        nodes: 4,
        ..dpdk(mode)
    });
    for node in nodes {
        lab.load(node, 0.0);
    }
    let sha = lab.status()["files"]["8m"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    // srv4 starts out of the cluster: it joins under load.
    lab.kill("srv4", Part::All);
    await_agreement(&nodes[..3], 3, std::time::Duration::from_secs(5));
    let mut held = lab.ports_inspected_by("srv1", 2);
    held.extend(lab.ports_inspected_by("srv2", 1));
    lab.start_downloads(&held, "500K"); // about 17 s each
                                        // Short connections: 4 loops, bounded in count and time.
    lab.client(
        r#"rm -rf /tmp/shoal-churn && mkdir -p /tmp/shoal-churn
for l in 1 2 3 4; do
  (end=$(( $(date +%s) + 90 )); n=0
   while [ ! -e /tmp/shoal-churn/stop ] && [ "$(date +%s)" -lt "$end" ] && [ "$n" -lt 20000 ]; do
     n=$((n + 1)); t=$(date +%s.%N)
     rm -f /tmp/shoal-churn/body.$l
     r=$(curl -s -m 20 -H "Connection: close" -o /tmp/shoal-churn/body.$l \
          -w '%{http_code} %{time_connect} %{time_total} %header{x-served-by}' http://198.18.0.100/whoami)
     rc=$?
     set -- $r
     b=$(head -c 8 /tmp/shoal-churn/body.$l 2>/dev/null | tr -dc a-z0-9)
     echo "$t ${1:-000} ${2:-0} ${4:--} ${b:--} $rc ${3:-0}" >> /tmp/shoal-churn/loop.$l
   done) >/dev/null 2>&1 &
done"#,
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let served: Vec<String> = lab
        .client(&format!(
            "for p in {}; do grep -i '^x-served-by' /tmp/shoal-dl/$p.h | tr -d '\\r' | cut -d' ' -f2; done",
            held.iter().map(u16::to_string).collect::<Vec<_>>().join(" ")
        ))
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        served.len(),
        held.len(),
        "{mode}: downloads started: {served:?}"
    );
    // The dataplane to kill: one a download is on. It restores its flows
    // from its snapshot when it comes back, so the download goes on.
    let victim = served[0].clone();
    let victim = victim.as_str();
    let pid = |node: &str, what: &str| {
        std::fs::read_to_string(format!("/run/shoal-lab/{node}/{what}.pid"))
            .unwrap()
            .trim()
            .to_owned()
    };
    let signal = |sig: &str, pid: &str| {
        let st = Command::new("kill").args([sig, pid]).status().unwrap();
        assert!(st.success(), "kill {sig} {pid}");
    };
    let token = ["--token-file", "/run/shoal-lab/admin.token"];
    let ms = |n| std::thread::sleep(std::time::Duration::from_millis(n));
    let mut events: Vec<(String, f64, f64)> = Vec::new();
    let mut event = |name: &str, f: &mut dyn FnMut()| {
        let t0 = unix_s();
        f();
        events.push((name.to_owned(), t0, unix_s()));
        ms(1500);
    };
    event("join srv4", &mut || {
        lab.start("srv4", Part::All);
        await_agreement(&nodes, 4, std::time::Duration::from_secs(6));
    });
    event("kill -9 srv1's control, restart", &mut || {
        lab.kill("srv1", Part::Control);
        ms(200);
        lab.start("srv1", Part::Control);
    });
    event(
        "SIGSTOP srv2's control 1.5 s (> failure timeout)",
        &mut || {
            let p = pid("srv2", "control");
            signal("-STOP", &p);
            ms(1500);
            signal("-CONT", &p);
            await_agreement(&nodes, 4, std::time::Duration::from_secs(6));
        },
    );
    event(
        &format!("kill -9 {victim}'s dataplane, restart"),
        &mut || {
            lab.kill(victim, Part::Dataplane);
            ms(1000);
            lab.start(victim, Part::Dataplane);
            await_agreement(&nodes, 4, std::time::Duration::from_secs(8));
        },
    );
    event("drain srv3, undrain", &mut || {
        shoalctl("srv1", &[&["drain", "srv3"][..], &token[..]].concat());
        ms(1000);
        shoalctl("srv2", &[&["undrain", "srv3"][..], &token[..]].concat());
    });
    event("weight srv4 300, back to 100", &mut || {
        shoalctl(
            "srv4",
            &[&["weight", "srv4", "300"][..], &token[..]].concat(),
        );
        ms(1000);
        shoalctl(
            "srv4",
            &[&["weight", "srv4", "100"][..], &token[..]].concat(),
        );
    });
    event("reload the config on every member", &mut || {
        for n in nodes {
            shoalctl(n, &[&["reload"][..], &token[..]].concat());
        }
    });
    lab.client("touch /tmp/shoal-churn/stop; sleep 0.1");
    // Every loop finishes its last request (curl -m 20) and stops.
    let out = lab.client(
        "for i in $(seq 1 250); do pgrep -f 'shoal-churn/body' >/dev/null || break; sleep 0.1; done; \
         cat /tmp/shoal-churn/loop.*; rm -rf /tmp/shoal-churn",
    );
    // Per connection: start (unix s), HTTP status, connect time, served by,
    // body, curl's exit status (28 timeout, 56 reset, 7 refused, 52 empty
    // reply), total time.
    let mut rows: Vec<(f64, String, f64, String, String, String, String)> = Vec::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f.len(), 7, "{mode}: bad line {l}");
        rows.push((
            f[0].parse().unwrap(),
            f[1].to_owned(),
            f[2].parse().unwrap_or(f64::MAX),
            f[3].to_owned(),
            f[4].to_owned(),
            f[5].to_owned(),
            f[6].to_owned(),
        ));
    }
    assert!(rows.len() > 200, "{mode}: only {} connections", rows.len());
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| r.1 != "200" || r.3 != r.4)
        .map(|r| {
            // The event it fell in (or the quiet time after one).
            let during = events
                .iter()
                .rfind(|(_, t0, _)| r.0 >= *t0)
                .map_or("before the first event", |(name, _, _)| name.as_str());
            format!(
                "at {:.3} ({during}): HTTP {} curl exit {} connect {:.3} s total {} s served by {} body {}",
                r.0, r.1, r.5, r.2, r.6, r.3, r.4
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{mode}: {} of {} connections failed:\n{}\nevents (name, start, end): {:?}",
        failed.len(),
        rows.len(),
        failed[..failed.len().min(20)].join("\n"),
        events
    );
    for (served_by, got) in lab.finish_downloads(&held) {
        assert_eq!(
            got, sha,
            "{mode}: a download on {served_by} was cut or corrupted"
        );
    }
    let mut connect: Vec<f64> = rows.iter().map(|r| r.2).collect();
    connect.sort_by(f64::total_cmp);
    let q = |p: f64| connect[((connect.len() - 1) as f64 * p) as usize] * 1000.0;
    println!(
        "churn {mode}: {} connections, 0 failed; connect p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        rows.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
    for (name, t0, t1) in &events {
        let worst = rows
            .iter()
            .filter(|r| r.0 >= *t0 && r.0 <= t1 + 1.5)
            .map(|r| r.2)
            .fold(0.0, f64::max);
        println!(
            "churn {mode}: {name}: longest connect {:.0} ms",
            worst * 1000.0
        );
    }
    lab.assert_alive();
}

/// Run-time reprogramming through the rings: `shoalctl reload` switches the
/// service from `local` to stateless `dpr-mac` on every member without a
/// restart (new connections are redirected by their inspector, all still
/// answered); a change of how the service picks inspectors is refused,
/// naming the key; `shoalctl flows evict CLIENT` empties the client's flows
/// on every worker; before that, in `local` mode, `shoalctl flows pin` on
/// every member sends all the client's new connections to one server and
/// `unpin` spreads them again.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn reload_changes_the_service_mode_and_evict_removes_flows() {
    let lab = Lab::up(LabBackend::Dpdk);
    await_agreement(&MEMBERS, 3, std::time::Duration::from_secs(5));
    let token = ["--token-file", "/run/shoal-lab/admin.token"];
    let before = fetch_mix(&lab, 30, 1000);
    assert!(before.iter().all(|f| f.code == 200), "{before:?}");
    for node in MEMBERS {
        assert_eq!(lab.counter(node, "dpr_redirected"), 0, "{node}");
    }
    // A pin of the client (198.18.0.2/32) to srv2 on every member: every
    // new connection is served by srv2, whichever member inspects it.
    for node in MEMBERS {
        let out = shoalctl(
            node,
            &[
                &["flows", "pin", "198.18.0.2", "srv2", "--for", "60"][..],
                &token[..],
            ]
            .concat(),
        );
        assert!(
            out.contains("go to member 2 for 60 s (2 worker(s) told)"),
            "{node}: {out}"
        );
    }
    let status = shoalctl("srv1", &[&["status"][..], &token[..]].concat());
    assert!(
        status.contains("pin: new connections of 198.18.0.2/32 go to member 2"),
        "{status}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pinned = fetch_mix(&lab, 30, 1000);
    assert!(
        pinned
            .iter()
            .all(|f| f.code == 200 && f.served_by == "srv2"),
        "{pinned:?}"
    );
    // Counters reach the stats files within a stats interval or two.
    let placed_now = || -> u64 {
        MEMBERS
            .iter()
            .map(|n| lab.counter(n, "placed_pinned"))
            .sum()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while placed_now() < 30 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let placed = placed_now();
    assert_eq!(placed, 30, "connections placed by the pin");
    assert!(
        lab.counter("srv1", "dpr_redirected") > 0,
        "srv1 inspected none"
    );
    for node in MEMBERS {
        let out = shoalctl(
            node,
            &[&["flows", "unpin", "198.18.0.2"][..], &token[..]].concat(),
        );
        assert!(out.contains("unpinned 198.18.0.2/32"), "{node}: {out}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let unpinned = fetch_mix(&lab, 30, 1000);
    let servers: std::collections::BTreeSet<&str> =
        unpinned.iter().map(|f| f.served_by.as_str()).collect();
    assert!(servers.len() > 1, "{unpinned:?}");
    lab.settle();
    assert_eq!(placed_now(), placed, "placed by a pin after unpin");
    let edit = |from: &str, to: &str| {
        for node in MEMBERS {
            let path = format!("/run/shoal-lab/{node}/dataplane.toml");
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains(from), "{path} has no {from:?}");
            std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        }
    };
    // A selection change is refused on reload: nothing applied anywhere.
    edit("vnodes = 64", "vnodes = 65");
    let bin = PathBuf::from(std::env::var_os("SHOAL_BIN_DIR").unwrap()).join("shoalctl");
    let refused = shoal_lab::Lab::command(
        "srv1".parse().unwrap(),
        &[bin.to_str().unwrap(), "reload", token[0], token[1]],
    )
    .unwrap()
    .output()
    .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr).to_string()
        + &String::from_utf8_lossy(&refused.stdout);
    assert!(err.contains("services[0].selection"), "{err}");
    edit("vnodes = 65", "vnodes = 64");
    // Local -> stateless DPR, member by member.
    edit("mode = \"local\"", "mode = \"dpr-mac\"");
    edit("state = \"stateful\"", "state = \"stateless\"");
    for node in MEMBERS {
        let out = shoalctl(node, &[&["reload"][..], &token[..]].concat());
        assert!(out.contains("service table"), "{node}: {out}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let after = fetch_mix(&lab, 60, 1000);
    assert!(after.iter().all(|f| f.code == 200), "{after:?}");
    let redirected: u64 = MEMBERS
        .iter()
        .map(|n| lab.counter(n, "dpr_redirected"))
        .sum();
    let stateless: u64 = MEMBERS
        .iter()
        .map(|n| lab.counter(n, "dpr_stateless"))
        .sum();
    assert!(redirected > 0, "no connection redirected after the reload");
    assert!(stateless > 0, "no stateless DPR packet after the reload");
    lab.settle();
    // Every member holds flows of the client (closing/tombstones): evict them.
    for node in MEMBERS {
        let live = lab.stats(node)["flows_live"].as_u64().unwrap();
        let out = shoalctl(
            node,
            &[&["flows", "evict", "198.18.0.2"][..], &token[..]].concat(),
        );
        assert!(out.contains("on 2 worker(s)"), "{node}: {out}");
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let evicted = lab.counter(node, "flows_evicted_by_operator");
        assert!(
            evicted > 0 || live == 0,
            "{node}: {live} live, none evicted"
        );
        assert_eq!(lab.stats(node)["flows_live"].as_u64().unwrap(), 0, "{node}");
    }
    lab.assert_alive();
}

/// The server url-hash dispatch sends each of `/id/1..=n` to, learned over
/// fresh connections (two rounds, from different client ports; the lab's
/// `/id/` answers "<server> <path> <client port>").
fn id_owners(lab: &Lab, n: u32) -> BTreeMap<u32, String> {
    let out = lab.client(&format!(
        "for r in 1 2; do for i in $(seq 1 {n}); do \
           curl -s -m 5 http://198.18.0.100/id/$i; \
         done; done"
    ));
    let mut owner = BTreeMap::new();
    for line in out.lines() {
        let (server, path, _) = id_line(line);
        let first = owner.entry(path).or_insert_with(|| server.clone());
        assert_eq!(*first, server, "path /id/{path} moved between servers");
    }
    assert_eq!(owner.len(), n as usize, "{out}");
    let used: std::collections::BTreeSet<&String> = owner.values().collect();
    assert_eq!(used.len(), 3, "{owner:?}");
    owner
}

/// "<server> /id/<i> <port>" from the lab's `/id/` location.
fn id_line(line: &str) -> (String, u32, u16) {
    let mut words = line.split(' ');
    let (Some(server), Some(path), Some(port)) = (words.next(), words.next(), words.next()) else {
        panic!("not an /id/ answer: {line:?}");
    };
    assert!(MEMBERS.contains(&server), "{line}");
    let i = path.strip_prefix("/id/").unwrap().parse().unwrap();
    (server.to_owned(), i, port.parse().unwrap())
}

/// Lines of every server's access log so far (a mark for `served_away`).
fn access_marks() -> Vec<usize> {
    MEMBERS
        .iter()
        .map(|n| {
            std::fs::read_to_string(server(n).dir().join("access.log"))
                .map_or(0, |t| t.lines().count())
        })
        .collect()
}

/// Requests for `/id/<i>` the servers logged after `marks`, and how many
/// of them a server other than `owner[i]` served.
fn served_away(owner: &BTreeMap<u32, String>, marks: &[usize]) -> (usize, usize) {
    let (mut all, mut away) = (0, 0);
    for (n, mark) in MEMBERS.iter().zip(marks) {
        let log = std::fs::read_to_string(server(n).dir().join("access.log")).unwrap();
        for line in log.lines().skip(*mark) {
            let Some(i) = line
                .split("\"GET /id/")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|i| i.parse::<u32>().ok())
            else {
                continue;
            };
            all += 1;
            if owner[&i] != *n {
                away += 1;
            }
        }
    }
    (all, away)
}

/// wrk with 200 keep-alive connections cycling over `/id/1..=30`; its report.
fn wrk_over_ids(lab: &Lab, seconds: u32) -> String {
    let script = std::env::temp_dir().join(format!("shoal-lab-ids-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        "local i = 0\n\
         request = function()\n  i = i + 1\n  return wrk.format(\"GET\", \"/id/\" .. (i % 30 + 1))\nend\n",
    )
    .unwrap();
    let out = lab.client(&format!(
        "ulimit -n 4096; wrk -t2 -c200 -d{seconds}s --timeout 10s -s {} http://198.18.0.100/ 2>&1",
        script.display()
    ));
    let _ = std::fs::remove_file(&script);
    out
}

/// Issue 14 on the lab: one keep-alive connection's requests each reach the
/// server url-hash dispatch names (the connection moves between kernels at
/// request boundaries), in sequence, pipelined five per segment, and under
/// wrk with 200 connections — with no errors and no request served away
/// from its server.
fn keep_alive_requests_reach_their_servers(handoff: shoal_config::HandoffMode) {
    let lab = Lab::up_with(&UpOptions {
        handoff,
        ..dpdk("splice")
    });
    let owner = id_owners(&lab, 30);

    // 30 requests on one connection (curl reuses it: one connect).
    let urls: Vec<String> = (1..=30)
        .map(|i| format!("http://198.18.0.100/id/{i}"))
        .collect();
    let out = lab.client(&format!(
        "curl -s -m 30 -w 'connects %{{num_connects}}\\n' {}",
        urls.join(" ")
    ));
    let mut ports = std::collections::BTreeSet::new();
    let mut seen = Vec::new();
    let mut connects = 0;
    for line in out.lines() {
        if let Some(n) = line.strip_prefix("connects ") {
            connects += n.parse::<u32>().unwrap();
            continue;
        }
        let (srv, i, port) = id_line(line);
        assert_eq!(srv, owner[&i], "/id/{i} served by {srv}");
        ports.insert(port);
        seen.push(i);
    }
    assert_eq!(seen, (1..=30).collect::<Vec<u32>>(), "{out}");
    assert_eq!((connects, ports.len()), (1, 1), "one connection: {out}");

    // Its owner history (`shoalctl flows show`), asked of every member:
    // one arrival per server change, each naming the server before (the
    // first names the inspector).
    let port = ports.iter().next().unwrap().to_string();
    // Workers write their move logs with their flow snapshots (200 ms).
    std::thread::sleep(std::time::Duration::from_millis(600));
    let mut arrivals: Vec<(String, String)> = Vec::new();
    for n in MEMBERS {
        let v: serde_json::Value = serde_json::from_str(&shoalctl(
            n,
            &["flows", "show", &format!("198.18.0.2:{port}"), "--json"],
        ))
        .unwrap();
        for e in v["events"].as_array().unwrap() {
            if e["event"] == "arrived-from" {
                arrivals.push((n.to_owned(), e["member"].as_str().unwrap().to_owned()));
            }
        }
    }
    let mut servers: Vec<&String> = (1..=30).map(|i| &owner[&i]).collect();
    servers.dedup();
    let history = format!("servers {servers:?}, arrivals {arrivals:?}");
    for w in servers.windows(2) {
        let at = arrivals
            .iter()
            .position(|(to, from)| to == w[1] && from == w[0])
            .unwrap_or_else(|| panic!("no move {} -> {}: {history}", w[0], w[1]));
        arrivals.swap_remove(at);
    }
    assert_eq!(arrivals.len(), 1, "{history}");
    assert_eq!(&arrivals[0].0, servers[0], "{history}");

    // Pipelined: six segments of five requests on one connection (a raw
    // client: bash's /dev/tcp), the last one asking to close.
    let mut script = String::from("exec 3<>/dev/tcp/198.18.0.100/80\n");
    for b in 0..6 {
        let mut batch = String::new();
        for j in 1..=5 {
            let i = b * 5 + j;
            let close = if i == 30 {
                "Connection: close\\r\\n"
            } else {
                ""
            };
            batch.push_str(&format!(
                "GET /id/{i} HTTP/1.1\\r\\nHost: 198.18.0.100\\r\\n{close}\\r\\n"
            ));
        }
        script.push_str(&format!("printf '{batch}' >&3\nsleep 0.2\n"));
    }
    script.push_str("timeout 20 cat <&3\n");
    let out = lab.client(&script);
    let answers: Vec<(String, u32, u16)> = out
        .lines()
        .filter(|l| l.starts_with("srv"))
        .map(id_line)
        .collect();
    assert_eq!(
        answers.iter().map(|a| a.1).collect::<Vec<u32>>(),
        (1..=30).collect::<Vec<u32>>(),
        "every answer once, in order: {out}"
    );
    for (srv, i, _) in &answers {
        assert_eq!(*srv, owner[i], "/id/{i} served by {srv}");
    }
    let ports: std::collections::BTreeSet<u16> = answers.iter().map(|a| a.2).collect();
    assert_eq!(ports.len(), 1, "one connection: {out}");

    // wrk, 200 keep-alive connections over the 30 paths.
    let marks = access_marks();
    let out = wrk_over_ids(&lab, 4);
    assert!(out.contains("requests in"), "{out}");
    assert!(!out.contains("Socket errors"), "{out}");
    assert!(!out.contains("Non-2xx"), "{out}");
    let (all, away) = served_away(&owner, &marks);
    eprintln!("wrk: {all} requests logged, {away} served away from their server");
    lab.settle();
    let sum = |name: &str| -> u64 { MEMBERS.iter().map(|n| lab.counter(n, name)).sum() };
    let persist: Vec<String> = lab.stats("srv1")["counters"]
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| {
                    [
                        "persist",
                        "rehandoff",
                        "handoff",
                        "splice",
                        "tuple",
                        "kernel_rst",
                    ]
                    .iter()
                    .any(|p| k.starts_with(p))
                })
                .map(|k| format!("{k}={}", sum(k)))
                .collect()
        })
        .unwrap_or_default();
    eprintln!("{}", persist.join(" "));
    assert!(all > 1000, "{all} requests");
    // A re-handoff whose target has not accepted 750 ms after the offer
    // falls back by design: the request is served where the connection
    // is, counted `rehandoff_fallback`. On these two shared vCPUs a stall
    // can cause one (a CI run saw 1 in 19 356), so the test does not race
    // it: every request served away must be such a counted fallback, and
    // fallbacks must stay rare.
    let fallbacks = sum("rehandoff_fallback");
    assert!(
        away as u64 <= fallbacks,
        "{away} requests served away from their server, {fallbacks} counted fallbacks"
    );
    assert!(
        fallbacks * 1000 <= sum("rehandoff_started"),
        "{fallbacks} fallbacks of {} re-handoffs",
        sum("rehandoff_started")
    );
    assert!(sum("rehandoff_done") > 100, "{}", sum("rehandoff_done"));
    assert_eq!(sum("persist_session_lost"), 0);
    lab.assert_alive();
}

#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn keep_alive_requests_reach_their_servers_frequent() {
    keep_alive_requests_reach_their_servers(shoal_config::HandoffMode::Frequent);
}

#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn keep_alive_requests_reach_their_servers_rare() {
    keep_alive_requests_reach_their_servers(shoal_config::HandoffMode::Rare);
}

/// What issue 14 changed, measured: with only the first request of a
/// keep-alive connection dispatched (as before), wrk's requests are mostly
/// served away from their server.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn first_request_only_serves_keep_alive_where_it_started() {
    let lab = Lab::up_with(&UpOptions {
        first_request_only: true,
        ..dpdk("splice")
    });
    let owner = id_owners(&lab, 30);
    let marks = access_marks();
    let out = wrk_over_ids(&lab, 4);
    assert!(!out.contains("Socket errors"), "{out}");
    let (all, away) = served_away(&owner, &marks);
    eprintln!("wrk, first request only: {all} requests logged, {away} served away");
    assert!(all > 1000, "{all} requests");
    assert!(away * 2 > all, "{away} of {all} served away");
    lab.settle();
    let sum = |name: &str| -> u64 { MEMBERS.iter().map(|n| lab.counter(n, name)).sum() };
    assert_eq!(sum("persist_connections"), 0);
    lab.assert_alive();
}

/// Issue 17: forged redirects. From the client (not a member), IP-in-IP to
/// srv2's own address carrying SYNs for the VIP, and SYNs for the VIP sent
/// straight to srv2's own MAC (what a member's DPR MAC rewrite looks like),
/// for client ports another member inspects: srv2 counts and drops every
/// one, its kernel sees none of them, and the cluster goes on serving.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn forged_redirects_from_a_non_member_are_dropped() {
    use shoal_dataplane::traffic::{tcp_frame, tcp_header, Endpoint};
    use shoal_lab::topology::{CLIENT_ADDR, CLIENT_MAC, VIP};
    use shoal_wire::{EthernetAddress, TcpFlags};
    let lab = Lab::up_with(&dpdk("dpr-ipip"));
    let ports = lab.ports_inspected_by("srv1", 20);
    let srv2 = server("srv2");
    let srv2_mac = EthernetAddress(srv2.mac().0);
    let client = |port| Endpoint {
        mac: EthernetAddress(CLIENT_MAC.0),
        ip: CLIENT_ADDR,
        port,
    };
    let vip = |mac| Endpoint {
        mac,
        ip: VIP,
        port: 80,
    };
    let mut frames = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let syn = tcp_header(port, 80, 7_000 + i as u32, None, TcpFlags::SYN);
        // Straight to srv2's own MAC.
        frames.push(tcp_frame(&client(port), &vip(srv2_mac), &syn, &[], 1));
        // Inside IP-in-IP from the client to srv2's own address.
        let inner = tcp_frame(&client(port), &vip(srv2_mac), &syn, &[], 2);
        frames.push(shoal_dataplane::traffic::ipv4_frame(
            &client(0),
            &Endpoint {
                mac: srv2_mac,
                ip: srv2.addr(),
                port: 0,
            },
            shoal_wire::IpProtocol::IpIp,
            inner.len() - 14,
            3,
            |l4| l4.copy_from_slice(&inner[14..]),
        ));
    }
    let hex: Vec<String> = frames
        .iter()
        .map(|f| {
            f.iter().fold(String::new(), |mut s, b| {
                let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{b:02x}"));
                s
            })
        })
        .collect();
    let in_segs = || -> u64 {
        let snmp = lab.exec("srv2", &["cat", "/proc/net/snmp"]);
        let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
        let at = names.split(' ').position(|n| n == "InSegs").unwrap();
        values.split(' ').nth(at).unwrap().parse().unwrap()
    };
    lab.settle();
    let before = in_segs();
    let out = lab.client(&format!(
        "python3 -c 'import socket,sys\n\
s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
s.bind((\"eth0\",0))\n\
for h in sys.argv[1:]: s.send(bytes.fromhex(h))\n\
print(\"sent\",len(sys.argv)-1)' {}",
        hex.join(" ")
    ));
    assert_eq!(out.trim(), format!("sent {}", frames.len()), "{out}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    lab.settle();
    let after = in_segs();
    assert_eq!(lab.counter("srv2", "drop_ipip_not_member"), 20);
    assert_eq!(lab.counter("srv2", "drop_redirect_not_member"), 20);
    assert_eq!(lab.counter("srv2", "ipip_decapsulated"), 0);
    assert_eq!(lab.counter("srv2", "dpr_received"), 0);
    assert!(
        after - before < 5,
        "srv2's kernel got {} segments",
        after - before
    );
    // The cluster still serves, each connection once and intact.
    let files = lab.status()["files"].clone();
    for f in fetch_many(&lab, 30) {
        assert_intact(&f, &files);
    }
    lab.assert_alive();
}

/// Raw frames a client forges in the lab (issue 17): a blind RST on its
/// own keep-alive connection (RFC 5961: a sequence number far outside the
/// window) and ICMP fragmentation-needed errors, one quoting that
/// connection and one quoting a connection nobody has. Prints each
/// response's status line and body, and the local port.
const FORGE_PY: &str = r#"
import socket, struct, sys, time
VIP, CLIENT = "198.18.0.100", "198.18.0.2"
ETH = bytes.fromhex("0200c6120064") + bytes.fromhex("0200c6120002") + b"\x08\x00"
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
def ip(src, dst, proto, payload, ident):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload
def tcp(src, dst, sport, dport, seq, ack, flags):
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 1000, 0, 0)
    c = csum(socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(h)) + h)
    return h[:16] + struct.pack("!H", c) + h[18:]
def frag_needed(port):
    quoted = ip(VIP, CLIENT, 6, tcp(VIP, CLIENT, 80, port, 1, 1, 0x10), 7)[:28]
    body = struct.pack("!BBHHH", 3, 4, 0, 0, 1400) + quoted
    return ip(CLIENT, VIP, 1, body[:2] + struct.pack("!H", csum(body)) + body[4:], 8)
def get(s, n):
    s.sendall(b"GET /id/%d HTTP/1.1\r\nHost: shoal\r\n\r\n" % n)
    data = b""
    while b"\r\n\r\n" not in data: data += s.recv(4096)
    head, body = data.split(b"\r\n\r\n", 1)
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(body) < length: body += s.recv(4096)
    return head.split(b"\r\n")[0].decode() + " | " + body.decode().strip()
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind(("eth0", 0))
s = socket.create_connection((VIP, 80), timeout=5)
port = s.getsockname()[1]
print(get(s, 1))
raw.send(ETH + ip(CLIENT, VIP, 6, tcp(CLIENT, VIP, port, 80, 0x5eed0000, 0, 0x04), 9))
raw.send(ETH + frag_needed(port))
raw.send(ETH + frag_needed(port ^ 0x4000))
time.sleep(1)
print(get(s, 2))
time.sleep(3)
print(get(s, 3))
print("port", port)
"#;

/// TCP segments from the VIP to the lab client's port 9 (no connection),
/// sent from a server's namespace onto its TAP, as its kernel would.
const STRAY_PY: &str = r#"
import socket, struct
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
VIP, CLIENT = socket.inet_aton("198.18.0.100"), socket.inet_aton("198.18.0.2")
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind(("shoal0", 0))
mac = raw.getsockname()[4]
for i in range(5):
    tcp = struct.pack("!HHIIBBHHH", 80, 9, 1000 + i, 1, 5 << 4, 0x18, 1000, 0, 0) + b"stray"
    c = csum(VIP + CLIENT + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i, 0x4000, 64, 6, 0, VIP, CLIENT)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    raw.send(bytes.fromhex("0200c6120002") + mac + b"\x08\x00" + ip + tcp)
print("sent 5")
"#;

/// Issue 17, forged traffic end to end (local mode): a blind RST does not
/// end a live keep-alive connection (the flow survives it, counted, and the
/// connection goes on); an ICMP error quoting the connection reaches only
/// the kernel that serves it; one quoting a connection nobody has reaches
/// no kernel and is counted by every member; segments a server's kernel
/// sends from the VIP for no connection of its own are dropped, counted.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn blind_resets_and_icmp_errors_quoting_nothing_change_nothing() {
    let lab = Lab::up_with(&dpdk("local"));
    let dest_unreachs = |node: &str| -> u64 {
        let snmp = lab.exec(node, &["cat", "/proc/net/snmp"]);
        let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp:"));
        let (names, values) = (icmp.next().unwrap(), icmp.next().unwrap());
        let at = names
            .split(' ')
            .position(|n| n == "InDestUnreachs")
            .unwrap();
        values.split(' ').nth(at).unwrap().parse().unwrap()
    };
    lab.settle();
    let before: Vec<u64> = MEMBERS.iter().map(|m| dest_unreachs(m)).collect();
    let script = std::env::temp_dir().join(format!("shoal-forge-{}.py", std::process::id()));
    std::fs::write(&script, FORGE_PY).unwrap();
    let out = lab.client(&format!("python3 {}", script.display()));
    std::fs::remove_file(&script).unwrap();
    lab.settle();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    let port = lines[3].trim_start_matches("port ");
    let owner = lines[0]
        .split(" | ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    for (i, line) in lines[..3].iter().enumerate() {
        assert_eq!(
            *line,
            format!("HTTP/1.1 200 OK | {owner} /id/{} {port}", i + 1),
            "every request on the one connection, served by {owner}: {out}"
        );
    }
    // A local process on srv1 forges TCP from the VIP to the client (no
    // connection of srv1's): srv1's dataplane drops all 5, the client's
    // kernel sees none.
    let client_in_segs = || -> u64 {
        let snmp = lab.client("cat /proc/net/snmp");
        let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
        let at = names.split(' ').position(|n| n == "InSegs").unwrap();
        values.split(' ').nth(at).unwrap().parse().unwrap()
    };
    let segs_before = client_in_segs();
    let stray = std::env::temp_dir().join(format!("shoal-stray-{}.py", std::process::id()));
    std::fs::write(&stray, STRAY_PY).unwrap();
    let sent = lab.exec("srv1", &["python3", stray.to_str().unwrap()]);
    std::fs::remove_file(&stray).unwrap();
    assert_eq!(sent.trim(), "sent 5", "{sent}");
    lab.settle();
    assert_eq!(lab.counter("srv1", "kernel_vip_no_flow"), 5);
    assert_eq!(
        client_in_segs(),
        segs_before,
        "the client got a stray segment"
    );
    for (k, m) in MEMBERS.iter().enumerate() {
        let mine = *m == owner;
        assert_eq!(
            lab.counter(m, "blind_reset_survived"),
            u64::from(mine),
            "{m}"
        );
        assert_eq!(lab.counter(m, "icmp_error_to_flow"), u64::from(mine), "{m}");
        assert_eq!(
            lab.counter(m, "drop_icmp_no_flow"),
            if mine { 1 } else { 2 },
            "{m}"
        );
        assert_eq!(
            dest_unreachs(m) - before[k],
            u64::from(mine),
            "{m}: ICMP errors its kernel received"
        );
    }
    lab.assert_alive();
}

/// Counters that must stay 0 in a healthy cluster under well-behaved load:
/// any of them in the soak is an anomaly.
const ANOMALIES: [&str; 10] = [
    "drop_malformed",
    "drop_flow_table_full",
    "drop_tx_queue_full",
    "drop_no_buffer",
    "decap_failed",
    "splice_conn_table_full",
    "splice_busy_answered",
    "splice_refused",
    "persist_session_lost",
    "drop_steer_ring_full",
];

/// The resident set of `node`'s `what` process (kB).
fn rss_kb(node: &str, what: &str) -> u64 {
    let pid = std::fs::read_to_string(format!("/run/shoal-lab/{node}/{what}.pid")).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// (requests, non-2xx, socket errors) from a wrk report.
fn wrk_errors(report: &str) -> (u64, u64, u64) {
    let num = |s: &str| s.trim_matches(',').parse::<u64>().unwrap_or(0);
    let requests = report
        .lines()
        .find(|l| l.contains("requests in"))
        .map_or(0, |l| num(l.split_whitespace().next().unwrap_or("0")));
    let non2xx = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .map_or(0, |v| num(v.trim()));
    let socket = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or(0, |v| {
            v.split(',')
                .filter_map(|p| p.split_whitespace().last())
                .map(num)
                .sum()
        });
    (requests, non2xx, socket)
}

/// Issue 17, soak: mixed traffic in every mode in turn (`shoalctl reload`
/// switches the service between phases: local, stateless DPR by MAC,
/// stateful DPR by IP-in-IP, splice) with a member drained and undrained in
/// every phase (stateless DPR: its control killed and restarted instead, as
/// a drain re-targets some of its connections by design). `SHOAL_SOAK_SECONDS` long (default 180, what CI runs;
/// `tests/soak.sh` runs 30 minutes). Asserts: no failed request of the
/// well-behaved load (keep-alive and one-connection-per-request wrk), no
/// anomaly counter, no memory growth of either process on any server (RSS
/// sampled: the last quarter's highest within 10 % + 4 MB of the first
/// phase's); prints a summary.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn soak() {
    let seconds: u64 = std::env::var("SHOAL_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let lab = Lab::up_with(&dpdk("local"));
    await_agreement(&MEMBERS, 3, std::time::Duration::from_secs(5));
    let token = ["--token-file", "/run/shoal-lab/admin.token"];
    let phases: [(&str, &str, &str); 4] = [
        ("local", "local", "stateful"),
        ("dpr-mac stateless", "dpr-mac", "stateless"),
        ("dpr-ipip stateful", "dpr-ipip", "stateful"),
        ("splice", "splice", "stateful"),
    ];
    let phase_s = (seconds / 4).max(20);
    let (mut mode, mut state) = ("local", "stateful");
    let mut samples: Vec<(u64, Vec<u64>)> = Vec::new();
    let mut summary = Vec::new();
    let started = std::time::Instant::now();
    for (k, (name, next_mode, next_state)) in phases.iter().enumerate() {
        if k > 0 {
            for node in MEMBERS {
                let path = format!("/run/shoal-lab/{node}/dataplane.toml");
                let text = std::fs::read_to_string(&path).unwrap();
                let text = text
                    .replacen(
                        &format!("mode = \"{mode}\""),
                        &format!("mode = \"{next_mode}\""),
                        1,
                    )
                    .replacen(
                        &format!("state = \"{state}\""),
                        &format!("state = \"{next_state}\""),
                        1,
                    );
                std::fs::write(&path, text).unwrap();
            }
            for node in MEMBERS {
                let out = shoalctl(node, &[&["reload"][..], &token[..]].concat());
                assert!(out.contains("service table"), "{node}: {out}");
            }
        }
        (mode, state) = (next_mode, next_state);
        // Two bounded wrk runs in the background: keep-alive over /id/N and
        // one connection per request; the churn happens meanwhile.
        lab.client(&format!(
            "rm -rf /tmp/shoal-soak && mkdir -p /tmp/shoal-soak && ulimit -n 4096 && \
             (wrk -t1 -c32 -d{phase_s}s --timeout 10s http://198.18.0.100/id/7 > /tmp/shoal-soak/ka 2>&1 &) && \
             (wrk -t1 -c8 -d{phase_s}s --timeout 10s -H 'Connection: close' http://198.18.0.100/whoami \
               > /tmp/shoal-soak/close 2>&1 &)"
        ));
        let phase_end = std::time::Instant::now() + std::time::Duration::from_secs(phase_s);
        let mut drained = false;
        while std::time::Instant::now() < phase_end {
            std::thread::sleep(std::time::Duration::from_secs(5));
            let rss: Vec<u64> = MEMBERS
                .iter()
                .flat_map(|n| [rss_kb(n, "dataplane"), rss_kb(n, "control")])
                .collect();
            samples.push((started.elapsed().as_secs(), rss));
            if !drained
                && phase_end
                    .saturating_duration_since(std::time::Instant::now())
                    .as_secs()
                    < phase_s / 2
            {
                if *next_state == "stateless" {
                    // Stateless DPR re-hashes every packet over the live
                    // members: a drain moves the connections whose target
                    // changes, and their new target's kernel resets them
                    // (by design; issue 18's second chance is the remedy).
                    // Churn that keeps the member set: control restarted.
                    lab.kill("srv3", Part::Control);
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    lab.start("srv3", Part::Control);
                } else {
                    shoalctl("srv1", &[&["drain", "srv3"][..], &token[..]].concat());
                    std::thread::sleep(std::time::Duration::from_secs(2));
                    shoalctl("srv2", &[&["undrain", "srv3"][..], &token[..]].concat());
                }
                drained = true;
            }
        }
        let reports = lab.client(
            "for i in $(seq 1 300); do [ \"$(grep -l 'requests in' /tmp/shoal-soak/ka /tmp/shoal-soak/close 2>/dev/null | wc -l)\" -ge 2 ] && break; sleep 0.1; done; \
             cat /tmp/shoal-soak/ka; echo ====; cat /tmp/shoal-soak/close; rm -rf /tmp/shoal-soak",
        );
        let (ka, close) = reports.split_once("====").unwrap();
        let (ka, close) = (wrk_errors(ka), wrk_errors(close));
        assert!(ka.0 > 0 && close.0 > 0, "{name}: no requests: {reports}");
        assert_eq!(
            (ka.1, ka.2, close.1, close.2),
            (0, 0, 0, 0),
            "{name}: failed requests: {reports}"
        );
        summary.push(format!(
            "{name}: {} keep-alive + {} one-per-connection requests, 0 failed",
            ka.0, close.0
        ));
    }
    lab.settle();
    for node in MEMBERS {
        for c in ANOMALIES {
            assert_eq!(lab.counter(node, c), 0, "{node}: {c}");
        }
    }
    // Memory: the last quarter's highest against the first phase's highest.
    let quarter = samples.len() / 4;
    assert!(quarter >= 1, "too few samples");
    for (i, label) in MEMBERS
        .iter()
        .flat_map(|n| [format!("{n} dataplane"), format!("{n} control")])
        .enumerate()
    {
        let first = samples[..quarter].iter().map(|s| s.1[i]).max().unwrap();
        let last = samples[samples.len() - quarter..]
            .iter()
            .map(|s| s.1[i])
            .max()
            .unwrap();
        summary.push(format!(
            "{label}: RSS {first} kB (first phase) -> {last} kB (last quarter)"
        ));
        assert!(
            last <= first + first / 10 + 4096,
            "{label}: RSS grew from {first} kB to {last} kB"
        );
    }
    lab.assert_alive();
    println!(
        "soak {} s ({} s per mode):",
        started.elapsed().as_secs(),
        phase_s
    );
    for l in summary {
        println!("  {l}");
    }
}

/// Captures the handoff datagrams on the hub (the client's port sees every
/// frame) while 24 requests for different paths go through splice, then
/// sends each captured datagram again, byte for byte, and once more with its
/// last byte flipped. Prints "ok N" (the 200s), "captured N", "replayed N".
const HANDOFF_REPLAY_PY: &str = r#"
import socket, struct, threading, time
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
raw.bind(("eth0", 0))
raw.settimeout(0.2)
captured, stop = [], []
def sniff():
    while not stop:
        try:
            f = raw.recv(4096)
        except socket.timeout:
            continue
        if len(f) > 42 and f[12:14] == b"\x08\x00" and f[23] == 17:
            ihl = (f[14] & 15) * 4
            if struct.unpack("!H", f[14 + ihl + 2:14 + ihl + 4])[0] == 7947:
                captured.append(f)
t = threading.Thread(target=sniff)
t.start()
ok = 0
for i in range(24):
    s = socket.create_connection(("198.18.0.100", 80), timeout=5)
    s.sendall(b"GET /id/%d HTTP/1.1\r\nHost: shoal\r\nConnection: close\r\n\r\n" % i)
    data = b""
    while True:
        b = s.recv(4096)
        if not b: break
        data += b
    s.close()
    ok += data.startswith(b"HTTP/1.1 200")
time.sleep(0.5)
stop.append(1)
t.join()
print("ok", ok)
print("captured", len(captured))
send = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
send.bind(("eth0", 0))
for f in captured:
    send.send(f)
for f in captured:
    send.send(f[:-1] + bytes([f[-1] ^ 0xff]))
print("replayed", len(captured))
"#;

/// Issue 17, forged handoff traffic end to end (splice): every handoff
/// datagram seen on the segment, sent again byte for byte, is refused as a
/// replay by the member it was for, and with a flipped byte as a bad tag;
/// none replays a connection into a kernel again, and the cluster goes on
/// serving.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn replayed_and_forged_handoff_datagrams_change_nothing() {
    let lab = Lab::up_with(&dpdk("splice"));
    lab.settle();
    let sum = |name: &str| -> u64 { MEMBERS.iter().map(|m| lab.counter(m, name)).sum() };
    let script =
        std::env::temp_dir().join(format!("shoal-handoff-replay-{}.py", std::process::id()));
    std::fs::write(&script, HANDOFF_REPLAY_PY).unwrap();
    lab.client("ip link set eth0 promisc on");
    let out = lab.client(&format!("python3 {}", script.display()));
    lab.client("ip link set eth0 promisc off");
    std::fs::remove_file(&script).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"ok 24"), "{out}");
    let captured: u64 = lines[1].trim_start_matches("captured ").parse().unwrap();
    assert!(captured >= 4, "too few handoffs to replay: {out}");
    lab.settle();
    assert_eq!(
        sum("handoff_datagram"),
        captured,
        "each captured datagram accepted once: {out}"
    );
    assert_eq!(sum("handoff_rejected_replayed"), captured);
    assert_eq!(sum("handoff_rejected_bad_mac"), captured);
    assert_eq!(sum("handoff_rejected"), 2 * captured);
    // No replayed offer took a connection again: every connection a
    // member received is one its inspector handed over, and no accept came
    // late.
    assert!(sum("handoff_received") > 0);
    assert_eq!(sum("handoff_received"), sum("handoff_handed_over"));
    assert_eq!(sum("handoff_late_accept"), 0);
    for f in fetch_many(&lab, 12) {
        assert_eq!(f.code, 200, "{f:?}");
    }
    lab.assert_alive();
}

/// Issue 15: request classes end to end, answered by the dataplane to
/// curl. Three classes picked by a request header, each with a rate of one
/// request per 1000 s: every inspecting worker (3 servers x 2 workers)
/// admits at most one request of each class and refuses the rest with the
/// class's answer: `bulk` a 503 with `Retry-After: 7` and its own page,
/// `moved` a 307 to another site, `rude` a reset. Requests of no class are
/// all served, before and after.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn request_classes_answer_busy_redirect_and_reset_to_curl() {
    use shoal_config::{DispatchPolicy, Mode, RefuseAction, RequestClass};
    const N: usize = 20;
    let class = |name: &str, header: &str, f: &dyn Fn(&mut RequestClass)| {
        let mut c = RequestClass::catch_all(name);
        c.header = Some(header.to_owned());
        c.max_rate = Some(0.001);
        f(&mut c);
        c
    };
    // The lab's own config for splice (rendered as srv1's: a base must be
    // valid by itself), with the classes.
    let opts = dpdk("splice");
    let mut base =
        shoal_lab::render::server_config(&shoal_lab::render::lab_base(), &opts, server("srv1"), 2);
    assert_eq!(base.services[0].mode, Mode::Splice);
    let dispatch = base.services[0].dispatch.as_mut().unwrap();
    assert_eq!(dispatch.policy, DispatchPolicy::UrlHash);
    dispatch.classes = vec![
        class("bulk", "X-Bulk", &|c| {
            c.retry_after_s = 7;
            c.busy_body = Some("<h1>too busy for bulk</h1>\n".to_owned());
        }),
        class("moved", "X-Moved", &|c| {
            c.on_refuse = RefuseAction::Redirect;
            c.redirect_to = Some("https://other.example/".to_owned());
            c.redirect_status = 307;
        }),
        class("rude", "X-Rude", &|c| c.on_refuse = RefuseAction::Reset),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("classes.toml");
    std::fs::write(&path, toml::to_string(&base).unwrap()).unwrap();
    let lab = Lab::up_with(&UpOptions {
        config: Some(path),
        ..opts
    });
    let run = |header: &str, fmt: &str| -> Vec<String> {
        let out = lab.client(&format!(
            "for i in $(seq {N}); do rm -f /tmp/classes-*; \
             code=$(curl -s -m 5 -H '{header}: 1' -o /tmp/classes-body -D /tmp/classes-head \
             -w '{fmt}' http://198.18.0.100/whoami); rc=$?; \
             ra=$(tr -d '\\r' < /tmp/classes-head 2>/dev/null | grep -i '^retry-after'); \
             b=$(grep -o 'too busy for bulk' /tmp/classes-body 2>/dev/null); \
             echo \"$code rc=$rc | $ra $b\"; done; rm -f /tmp/classes-*"
        ));
        out.lines().map(str::to_owned).collect()
    };
    let bulk = run("X-Bulk", "%{http_code}");
    let moved = run("X-Moved", "%{http_code} %{redirect_url}");
    let rude = run("X-Rude", "%{http_code}");
    assert_eq!((bulk.len(), moved.len(), rude.len()), (N, N, N), "{bulk:?}");
    let count = |lines: &[String], pat: &str| lines.iter().filter(|l| l.starts_with(pat)).count();
    // Admitted: 200 from an nginx, at most one per inspecting worker.
    let served = |lines: &[String]| count(lines, "200 ");
    for (name, lines) in [("bulk", &bulk), ("moved", &moved), ("rude", &rude)] {
        assert!(served(lines) <= 6, "{name}: {lines:#?}");
    }
    let busy = count(&bulk, "503 rc=0 | Retry-After: 7 too busy for bulk");
    assert_eq!(busy + served(&bulk), N, "{bulk:#?}");
    let redirected = count(&moved, "307 https://other.example/ rc=0 | ");
    assert_eq!(redirected + served(&moved), N, "{moved:#?}");
    // A reset: curl gets no status and fails (56: connection reset).
    let reset = count(&rude, "000 rc=56 | ");
    assert_eq!(reset + served(&rude), N, "{rude:#?}");
    assert!(busy >= N - 6 && redirected >= N - 6 && reset >= N - 6);
    eprintln!(
        "refused of {N} each: bulk {busy} (503), moved {redirected} (307), rude {reset} (reset)"
    );

    lab.settle();
    let sum = |name: &str| -> u64 { MEMBERS.iter().map(|n| lab.counter(n, name)).sum() };
    assert_eq!(sum("splice_refused") as usize, busy + redirected + reset);
    assert_eq!(sum("splice_bad_request"), 0);
    // Per class and reason in /metrics.
    let mut refused = BTreeMap::new();
    for k in 1..=3 {
        let text = lab.client(&format!("curl -s http://198.18.0.1{k}:9464/metrics"));
        for line in text
            .lines()
            .filter(|l| l.starts_with("shoal_dataplane_class_refused_total{"))
        {
            let class = line
                .split("class=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            assert!(
                line.contains("reason=\"rate\"") || line.ends_with(" 0"),
                "{line}"
            );
            let v: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            *refused.entry(class.to_owned()).or_insert(0) += v;
        }
    }
    assert_eq!(
        refused.get("bulk").copied(),
        Some(busy as u64),
        "{refused:?}"
    );
    assert_eq!(
        refused.get("moved").copied(),
        Some(redirected as u64),
        "{refused:?}"
    );
    assert_eq!(
        refused.get("rude").copied(),
        Some(reset as u64),
        "{refused:?}"
    );
    assert_eq!(refused.get("default").copied(), Some(0), "{refused:?}");
    // Requests of no class: all served, intact.
    let files = lab.status()["files"].clone();
    for f in fetch_many(&lab, 30) {
        assert_intact(&f, &files);
    }
    lab.assert_alive();
}

/// Issue 15, CARISMA *always* handoff: four servers, srv1 a front end and
/// srv2-srv4 back ends (`lab up --mode splice --nodes 4 --front-ends 1`).
/// srv1 inspects every connection and hands every request over; it serves
/// none (its kernel gets no replayed connection) and sends little (the
/// back ends answer the client directly); every body intact, and a
/// keep-alive wrk run sees no error.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn always_handoff_front_end_serves_nothing_and_back_ends_answer() {
    let lab = Lab::up_with(&UpOptions {
        nodes: 4,
        front_ends: 1,
        ..dpdk("splice")
    });
    let files = lab.status()["files"].clone();
    let fetched = fetch_many(&lab, 120);
    let mut by_server: BTreeMap<String, u32> = BTreeMap::new();
    let mut bytes = 0u64;
    for f in &fetched {
        assert_intact(f, &files);
        *by_server.entry(f.served_by.clone()).or_default() += 1;
        bytes += f.size;
    }
    assert_eq!(
        by_server.get("srv1"),
        None,
        "the front end served: {by_server:?}"
    );
    // The lab's url-hash dispatch places each of its four paths on one of
    // the back ends.
    assert!(
        by_server.len() >= 2,
        "one back end served all: {by_server:?}"
    );
    let wrk = lab
        .client("ulimit -n 4096; wrk -t1 -c16 -d8s --timeout 5s http://198.18.0.100/files/1k 2>&1");
    let (requests, non2xx, socket_errors) = wrk_errors(&wrk);
    assert!(requests > 1000, "{wrk}");
    assert_eq!((non2xx, socket_errors), (0, 0), "{wrk}");
    lab.settle();
    assert_eq!(
        lab.counter("srv1", "splice_replayed"),
        0,
        "srv1's kernel took a connection"
    );
    let handed: u64 = lab.counter("srv1", "handoff_handed_over");
    assert!(handed >= 120, "{handed} handed over");
    for b in ["srv2", "srv3", "srv4"] {
        assert_eq!(
            lab.counter(b, "splice_cookie_sent"),
            0,
            "{b} inspected a connection"
        );
    }
    let front_tx = lab.counter("srv1", "wire_tx_bytes");
    assert!(
        front_tx * 10 < bytes,
        "srv1 sent {front_tx} bytes of {bytes} downloaded: the back ends answer directly"
    );
    lab.assert_alive();
}

/// One measurement of [`interactive_p99_stays_low_under_bulk_with_strict_priority`]:
/// a trickle of small requests alone, then the same under a bulk load of
/// 1 MB downloads from many clients; the small requests' times (seconds)
/// and statuses, and each bulk fetch's status line.
struct PriorityRun {
    unloaded: Vec<f64>,
    loaded: Vec<f64>,
    interactive_codes: Vec<String>,
    bulk: Vec<String>,
}

impl PriorityRun {
    /// `BULK` clients each fetch `/slow/1m` (1 MB at 512 KiB/s) in a loop
    /// for `seconds` (a client told to come back later with `Retry-After`
    /// waits that long, as a well-behaved one does, or until the end)
    /// while, from 2 s in to the end, one client fetches `/whoami` in a
    /// row (as many as fit: with classes some thousands, so the p99 is not
    /// one scheduling hiccup of a shared machine); `n` fetches of the same
    /// trickle alone before and `n` after are the unloaded figure (both
    /// pooled: a steadier baseline).
    fn measure(lab: &Lab, n: usize, seconds: u32) -> PriorityRun {
        const BULK: usize = 48;
        let fetch = "curl -s -m 10 -o /dev/null \
             -w 'I %{http_code} %{time_total}\\n' http://198.18.0.100/whoami";
        let trickle = format!("for i in $(seq {n}); do {fetch}; done");
        let out = lab.client(&format!(
            "{trickle} | sed 's/^I /U /'; \
             end=$((SECONDS+{seconds})); \
             for j in $(seq {BULK}); do ( while [ $SECONDS -lt $end ]; do \
               curl -s -m 10 -o /dev/null -D /tmp/prio-head-$j \
                 -w 'B %{{http_code}} %{{size_download}}' http://198.18.0.100/slow/1m; \
               ra=$(tr -d '\\r' < /tmp/prio-head-$j | grep -i '^retry-after' | tr -d ' '); \
               echo \" $ra\"; w=${{ra#*:}}; left=$((end-SECONDS)); \
               if [ -n \"$w\" ]; then [ $w -gt $left ] && w=$left; [ $w -gt 0 ] && sleep $w; fi; \
             done > /tmp/prio-bulk-$j ) & done; \
             sleep 2; while [ $SECONDS -lt $end ]; do {fetch}; done; wait; \
             {trickle} | sed 's/^I /U /'; \
             cat /tmp/prio-bulk-*; rm -f /tmp/prio-bulk-* /tmp/prio-head-*"
        ));
        let mut run = PriorityRun {
            unloaded: Vec::new(),
            loaded: Vec::new(),
            interactive_codes: Vec::new(),
            bulk: Vec::new(),
        };
        for line in out.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some(phase @ ("U" | "I")) => {
                    let code = words.next().unwrap_or("").to_owned();
                    let t: f64 = words.next().unwrap_or("nan").parse().unwrap_or(f64::NAN);
                    run.interactive_codes.push(code);
                    if phase == "U" {
                        run.unloaded.push(t);
                    } else {
                        run.loaded.push(t);
                    }
                }
                Some("B") => run.bulk.push(line.to_owned()),
                _ => panic!("unexpected line {line:?} in\n{out}"),
            }
        }
        assert_eq!(run.unloaded.len(), 2 * n, "{out}");
        assert!(
            run.loaded.len() >= 10,
            "{} fetches under load: too few for a p99",
            run.loaded.len()
        );
        run
    }

    /// The 99th percentile of `times` (nearest rank).
    fn p99(times: &[f64]) -> f64 {
        let mut t = times.to_vec();
        t.sort_by(f64::total_cmp);
        let rank = ((t.len() as f64) * 0.99).ceil() as usize;
        t[rank.clamp(1, t.len()) - 1]
    }

    /// Loaded p99 over unloaded p99.
    fn ratio(&self) -> f64 {
        Self::p99(&self.loaded) / Self::p99(&self.unloaded)
    }
}

/// Issue 15, CARISMA §7 in the lab: splice mode, three servers, a bulk
/// class (`/slow/`: 1 MB downloads at 512 KiB/s, as to clients on slow
/// links, from 48 clients at once: together enough to saturate the lab's
/// CPUs) and an interactive one (`/whoami`, one client in a row). With
/// strict priority, at most 1 bulk request active (one worker per server),
/// a bulk queue of 2 and 3 s of waiting: no interactive request ever waits
/// in the scheduler (the class wait histogram); the bulk requests over
/// the limit get 503 with `Retry-After` (and come back after it, as
/// well-behaved clients do), every other bulk fetch is a whole 1 MB, and no
/// interactive request fails. Then the same lab without classes: the
/// interactive p99 under the same load (over its unloaded p99, both
/// measured in the same run) suffers more. The figures are printed; the
/// 2x goal is measured by `perf/priority.sh` (rule: speed targets are
/// benchmarks, not timed tests).
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn interactive_p99_stays_low_under_bulk_with_strict_priority() {
    use shoal_config::{RequestClass, Scheduling, SchedulingPolicy};
    const N: usize = 500;
    const SECONDS: u32 = 12;
    // One worker per server: the limits are per worker, and six polling
    // workers on this machine's two cores would be most of the noise.
    let opts = UpOptions {
        workers: 1,
        ..dpdk("splice")
    };
    let mut base =
        shoal_lab::render::server_config(&shoal_lab::render::lab_base(), &opts, server("srv1"), 2);
    let dispatch = base.services[0].dispatch.as_mut().unwrap();
    let mut interactive = RequestClass::catch_all("interactive");
    interactive.path_prefix = Some("/whoami".to_owned());
    interactive.priority = 0;
    let mut bulk = RequestClass::catch_all("bulk");
    bulk.path_prefix = Some("/slow/".to_owned());
    bulk.priority = 1;
    bulk.max_active = Some(1);
    bulk.max_queue = 2;
    bulk.max_wait_ms = 3_000;
    bulk.retry_after_s = 30;
    dispatch.classes = vec![interactive, bulk];
    dispatch.scheduling = Some(Scheduling {
        policy: SchedulingPolicy::Priority,
        max_active: 8,
    });
    base.validate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("priority.toml");
    std::fs::write(&path, toml::to_string(&base).unwrap()).unwrap();

    let with = {
        let lab = Lab::up_with(&UpOptions {
            config: Some(path),
            ..opts.clone()
        });
        let run = PriorityRun::measure(&lab, N, SECONDS);
        lab.settle();
        let sum = |name: &str| -> u64 { MEMBERS.iter().map(|n| lab.counter(n, name)).sum() };
        let refused = sum("persist_refused");
        let metrics: String = (1..=3)
            .map(|k| lab.client(&format!("curl -s http://198.18.0.1{k}:9464/metrics")))
            .collect();
        // The sum over members and workers of `metric{...class="<class>"...}`
        // samples whose labels also contain `also`.
        let sum_of = |metric: &str, class: &str, also: &str| -> f64 {
            metrics
                .lines()
                .filter(|l| {
                    l.starts_with(&format!("{metric}{{"))
                        && l.contains(&format!("class=\"{class}\""))
                        && l.contains(also)
                })
                .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
                .sum()
        };
        let released = |class: &str| sum_of("shoal_dataplane_class_released_total", class, "");
        assert!(
            released("interactive") >= (2 * N + run.loaded.len()) as f64,
            "{metrics}"
        );
        assert!(released("bulk") > 0.0, "{metrics}");
        // Strict priority, deterministically: no interactive request waited
        // in a scheduler queue (every one released within the first
        // bucket, 1 ms), however busy the bulk class was.
        let wait = "shoal_dataplane_class_wait_seconds";
        let waited = sum_of(&format!("{wait}_count"), "interactive", "");
        assert!(waited >= released("interactive"), "{metrics}");
        let within_1ms = sum_of(&format!("{wait}_bucket"), "interactive", "le=\"0.001\"");
        assert!(
            (within_1ms - waited).abs() < 0.5,
            "an interactive request waited behind bulk ones ({within_1ms} of {waited} within 1 ms): {metrics}"
        );
        lab.assert_alive();
        (run, refused)
    };
    let (run, refused) = with;
    let whole = run
        .bulk
        .iter()
        .filter(|l| l.as_str() == "B 200 1048576 ")
        .count();
    let busy = run
        .bulk
        .iter()
        .filter(|l| l.starts_with("B 503 ") && l.ends_with(" Retry-After:30"))
        .count();
    assert_eq!(whole + busy, run.bulk.len(), "{:#?}", run.bulk);
    assert!(
        busy > 0,
        "the bulk class never went over its limit: {:#?}",
        run.bulk
    );
    assert!(whole > 0, "{:#?}", run.bulk);
    assert_eq!(
        refused as usize, busy,
        "every busy answer is a counted refusal"
    );
    assert!(
        run.interactive_codes.iter().all(|c| c == "200"),
        "{:?}",
        run.interactive_codes
    );

    let lab = Lab::up_with(&opts);
    let without = PriorityRun::measure(&lab, N, SECONDS);
    lab.assert_alive();
    drop(lab);
    eprintln!(
        "interactive p99: unloaded {:.1} ms, under bulk with classes {:.1} ms over {} fetches (x{:.2}; bulk {whole} whole, {busy} busy); \
         without classes unloaded {:.1} ms, under bulk {:.1} ms over {} fetches (x{:.2}; bulk {} fetches)",
        PriorityRun::p99(&run.unloaded) * 1e3,
        PriorityRun::p99(&run.loaded) * 1e3,
        run.loaded.len(),
        run.ratio(),
        PriorityRun::p99(&without.unloaded) * 1e3,
        PriorityRun::p99(&without.loaded) * 1e3,
        without.loaded.len(),
        without.ratio(),
        without.bulk.len(),
    );
    // The 2x goal itself is a speed figure: `perf/priority.sh` measures it
    // (a timed assertion here failed on a shared 2-core machine at x2.13,
    // the unloaded p99 being 2 ms). What the lab asserts is the ordering,
    // by a wide margin (x1-x2 against x20-x80 in every run so far).
    assert!(
        without.ratio() > run.ratio(),
        "without classes the interactive p99 should suffer more: x{:.2} vs x{:.2}",
        without.ratio(),
        run.ratio()
    );
}

/// Issue 15, sticky sessions end to end: splice mode with
/// `[services.dispatch.sticky]` and `/id/` hashed path by path (so the
/// connections of one session would scatter without the cookie). 100
/// sessions (curl, each with its own cookie jar) of 5 connections each: the
/// first response of each session sets the signed cookie naming its member
/// and every connection of the session is served there. Then that member
/// most sessions use is drained: its sessions still go to it (a drain
/// moves new sessions only) and new sessions go elsewhere.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn sticky_sessions_stay_on_their_member_and_a_drain_moves_new_ones_only() {
    const SESSIONS: usize = 100;
    let opts = dpdk("splice");
    let mut base =
        shoal_lab::render::server_config(&shoal_lab::render::lab_base(), &opts, server("srv1"), 2);
    let dispatch = base.services[0].dispatch.as_mut().unwrap();
    dispatch.hot_paths = vec!["/id/".to_owned()];
    dispatch.sticky = Some(shoal_config::Sticky::default());
    base.validate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sticky.toml");
    std::fs::write(&path, toml::to_string(&base).unwrap()).unwrap();
    let lab = Lab::up_with(&UpOptions {
        config: Some(path),
        ..opts
    });
    // `S <session> <connection> <served by>` per fetch, `J <session>
    // <cookie value>` per session.
    let run = |sessions: std::ops::RangeInclusive<usize>, conns: usize| -> String {
        lab.client(&format!(
            "for s in $(seq {} {}); do j=/tmp/sticky-jar-$s; \
               for c in $(seq {conns}); do \
                 echo \"S $s $c $(curl -s -m 5 -b $j -c $j http://198.18.0.100/id/s$s/c$c$RANDOM | cut -d' ' -f1)\"; \
               done; \
               echo \"J $s $(grep -h shoal_member $j | awk '{{print $7}}')\"; \
             done",
            sessions.start(),
            sessions.end()
        ))
    };
    let parse = |out: &str| -> (BTreeMap<usize, Vec<String>>, BTreeMap<usize, String>) {
        let mut served: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let mut cookies = BTreeMap::new();
        for line in out.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                ["S", s, _, by] => served
                    .entry(s.parse().unwrap())
                    .or_default()
                    .push((*by).to_owned()),
                ["J", s, value] => {
                    cookies.insert(s.parse().unwrap(), (*value).to_owned());
                }
                _ => panic!("unexpected line {line:?} in\n{out}"),
            }
        }
        (served, cookies)
    };
    let (served, cookies) = parse(&run(1..=SESSIONS, 5));
    assert_eq!(served.len(), SESSIONS, "{served:?}");
    let mut per_member: BTreeMap<String, usize> = BTreeMap::new();
    for (s, by) in &served {
        assert_eq!(by.len(), 5);
        assert!(MEMBERS.contains(&by[0].as_str()), "session {s}: {by:?}");
        assert!(by.iter().all(|b| b == &by[0]), "session {s} moved: {by:?}");
        let cookie = &cookies[s];
        assert!(
            cookie.starts_with(&format!("{}.", by[0])) && cookie.len() == 4 + 1 + 24,
            "session {s}: cookie {cookie:?}, served by {}",
            by[0]
        );
        *per_member.entry(by[0].clone()).or_default() += 1;
    }
    assert!(
        per_member.len() >= 2,
        "sessions over one member: {per_member:?}"
    );
    lab.settle();
    let sum = |name: &str| -> u64 { MEMBERS.iter().map(|n| lab.counter(n, name)).sum() };
    assert_eq!(sum("sticky_issued") as usize, SESSIONS);
    assert_eq!(sum("dispatch_sticky_cookie") as usize, 4 * SESSIONS);
    assert_eq!(sum("sticky_forged") + sum("sticky_stale"), 0);

    // Drain the member most sessions use.
    let (busiest, n) = per_member.iter().max_by_key(|(_, n)| **n).unwrap();
    let busiest = busiest.clone();
    lab.drain(&busiest);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (again, _) = parse(&run(1..=SESSIONS, 1));
    for (s, by) in &again {
        assert_eq!(by, &served[s][..1], "session {s} moved after the drain");
    }
    let (new, new_cookies) = parse(&run(SESSIONS + 1..=SESSIONS + 60, 2));
    for (s, by) in &new {
        assert!(
            by.iter().all(|b| b != &busiest),
            "new session {s} on drained {busiest}"
        );
        assert_eq!(by[0], by[1], "new session {s} moved");
        assert!(new_cookies[s].starts_with(&format!("{}.", by[0])));
    }
    eprintln!("sticky: {SESSIONS} sessions x 5 connections over {per_member:?}; drained {busiest} ({n} sessions) kept them, 60 new sessions elsewhere");
    lab.client("rm -f /tmp/sticky-jar-*");
    lab.undrain(&busiest);
}

/// Client ports whose connections the routed lab's members serve (the
/// target every receiver computes, `Tables::routed_target`, for the routed
/// client's address), `count` each for `nodes`, from port `from` up (a
/// port used for an earlier connection is in `TIME_WAIT` on the client).
fn routed_ports_served_by(lab: &Lab, nodes: &[&str], count: usize, from: u16) -> Vec<u16> {
    let tables = routed_tables(lab, &MEMBERS);
    let mut ports = Vec::new();
    for node in nodes {
        let id = tables.members.iter().find(|m| m.name == *node).unwrap().id;
        ports.extend(
            (from..from.saturating_add(10_000))
                .filter(|&port| routed_target(&tables, port) == Some(id))
                .take(count),
        );
    }
    ports
}

/// The tables every member computes routed targets with when `alive` are
/// the members taking new connections (the others dead or drained).
fn routed_tables(lab: &Lab, alive: &[&str]) -> shoal_dataplane::pipeline::Tables {
    let cfg = lab.0.server_config(server("srv1")).unwrap();
    let members = cfg
        .cluster
        .members
        .iter()
        .map(|m| shoal_dataplane::pipeline::MemberEntry {
            alive: alive.contains(&m.name.as_str()),
            ..shoal_dataplane::pipeline::MemberEntry::from_config(m)
        })
        .collect();
    shoal_dataplane::pipeline::Tables::build(&cfg, 1, members).unwrap()
}

/// The routed client's connection from `port` to the VIP's first service:
/// its target member's id under `tables`.
fn routed_target(tables: &shoal_dataplane::pipeline::Tables, port: u16) -> Option<u16> {
    tables.routed_target(
        0,
        shoal_select::ClientKey {
            addr: shoal_lab::topology::ROUTED_CLIENT_ADDR,
            port,
        },
    )
}

/// Client ports whose connections the "moved" figures follow.
const MOVED_PORTS: std::ops::Range<u16> = 31_000..31_300;

/// A drain of srv2 under downloads it serves (routed, `before`: the
/// placement before it, for the moved figures), undone at the end.
fn routed_drain_lets_downloads_finish(lab: &Lab, before: &(Vec<String>, Vec<Option<u16>>)) {
    let sha8 = lab.status()["files"]["8m"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    // A drain withdraws at once and lets srv2's running downloads finish
    // (8 s each, begun before it): their packets now reach srv1 and srv3,
    // whose targets are no longer srv2, and get their second chance there.
    // `shoalctl drain srv2 --wait`, run on srv2, returns once srv2 holds no
    // open connection.
    let draining = routed_ports_served_by(lab, &["srv2"], 4, 36_000);
    lab.start_downloads(&draining, "1M");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let token = ["--token-file", "/run/shoal-lab/admin.token"];
    shoalctl("srv2", &[&["drain", "srv2"][..], &token].concat());
    let withdrawn = await_next_hops(&["srv1", "srv3"], std::time::Duration::from_secs(5));
    println!(
        "routed: shoalctl drain srv2 -> withdrawn in {} ms",
        withdrawn.as_millis()
    );
    print_moved("drain srv2", before, &placement(lab, &["srv1", "srv3"]));
    await_bgp_status("srv2", "bgp: withdrawn (draining)");
    let t0 = std::time::Instant::now();
    let waited = shoalctl(
        "srv2",
        &[&["drain", "srv2", "--wait", "--timeout", "60"][..], &token].concat(),
    );
    println!(
        "routed: shoalctl drain srv2 --wait returned after {} ms: {}",
        t0.elapsed().as_millis(),
        waited.trim().replace('\n', "; ")
    );
    assert!(waited.contains("connection(s) open"), "{waited}");
    assert!(
        waited.contains("srv2: drained, no connection open"),
        "{waited}"
    );
    for (port, (by, sum)) in draining.iter().zip(lab.finish_downloads(&draining)) {
        assert_eq!(sum, sha8, "download from port {port} across srv2's drain");
        assert_eq!(by, "srv2", "download from port {port}");
    }
    lab.undrain("srv2");
    await_next_hops(&MEMBERS, std::time::Duration::from_secs(5));
}

/// The router's next hop (the ECMP receiver) for the routed client's
/// connection from each of `ports` to the VIP on port 80, as the kernel's
/// L4 multipath hash picks it for a packet arriving from the client side
/// (`eth1`).
fn router_receivers(lab: &Lab, ports: &[u16]) -> Vec<String> {
    let client = shoal_lab::topology::ROUTED_CLIENT_ADDR;
    let mut script = String::from("ip -batch - <<'EOF'\n");
    for p in ports {
        script.push_str(&format!(
            "route get 198.18.0.100 from {client} iif eth1 ipproto tcp sport {p} dport 80\n"
        ));
    }
    script.push_str("EOF\n");
    let out = lab.exec("router", &["bash", "-c", &script]);
    let hops: Vec<String> = out
        .lines()
        .filter_map(|l| l.split(" via ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert_eq!(hops.len(), ports.len(), "{out}");
    hops
}

/// Prints how many of the [`MOVED_PORTS`] connections `event` gave another
/// receiver (router, measured) and another target (tables, computed),
/// from `before` to `after` (receivers, then targets).
fn print_moved(
    event: &str,
    before: &(Vec<String>, Vec<Option<u16>>),
    after: &(Vec<String>, Vec<Option<u16>>),
) {
    let n = before.0.len();
    let receivers = before
        .0
        .iter()
        .zip(&after.0)
        .filter(|(a, b)| a != b)
        .count();
    // Moved between next hops that are in both sets (legacy multipath
    // re-hashes them too; a resilient group would not).
    let survivors = before
        .0
        .iter()
        .zip(&after.0)
        .filter(|(a, b)| a != b && after.0.contains(a) && before.0.contains(b))
        .count();
    let targets = before
        .1
        .iter()
        .zip(&after.1)
        .filter(|(a, b)| a != b)
        .count();
    println!(
        "routed: {event}: {receivers} of {n} connections moved to another receiver \
         ({survivors} between receivers in both sets), {targets} to another target"
    );
}

/// The receivers and targets of the [`MOVED_PORTS`] connections now, with
/// `alive` taking new connections.
fn placement(lab: &Lab, alive: &[&str]) -> (Vec<String>, Vec<Option<u16>>) {
    let ports: Vec<u16> = MOVED_PORTS.collect();
    let tables = routed_tables(lab, alive);
    (
        router_receivers(lab, &ports),
        ports.iter().map(|&p| routed_target(&tables, p)).collect(),
    )
}

/// Waits (5 s at most) until `node`'s `shoalctl status` says `want`:
/// control publishes its BGP status once per interval, so the router can
/// see a change a moment before the status does.
fn await_bgp_status(node: &str, want: &str) {
    await_value(
        &format!("{node}'s status to say {want:?}"),
        std::time::Duration::from_secs(5),
        || {
            let st = shoalctl(node, &["status"]);
            (st.contains(want).then_some(()), st)
        },
    );
}

/// Waits until the router's VIP route has exactly `want` as next hops;
/// returns how long that took.
fn await_next_hops(want: &[&str], within: std::time::Duration) -> std::time::Duration {
    let t0 = std::time::Instant::now();
    let want: Vec<std::net::Ipv4Addr> = want.iter().map(|n| server(n).addr()).collect();
    await_value("the router's VIP next hops", within, || {
        let hops = shoal_lab::bird::vip_next_hops();
        ((hops == want).then_some(()), format!("{hops:?}"))
    });
    t0.elapsed()
}

/// The part of the routed lab tests every mode shares (the lab up, every
/// member announced): new connections spread over the three members; `lab
/// kill srv3` withdraws its next hop while downloads held by srv1 and srv2
/// go on intact; `lab start srv3` announces it again, it serves new
/// connections, and downloads begun in its absence whose target is now
/// srv3 finish intact on their holders through srv3's second chance. Prints
/// the times and the connections each event moved; returns where the 300
/// [`MOVED_PORTS`] connections are placed at the end (all three members).
fn routed_spread_kill_and_return(lab: &Lab) -> (Vec<String>, Vec<Option<u16>>) {
    let status = lab.status();
    let files = status["files"].clone();
    assert_eq!(
        status["router"]["vip_next_hops"].as_array().unwrap().len(),
        3
    );

    // Spread: every server takes new connections from the router.
    let fetches = fetch_mix(lab, 150, 1000);
    for f in &fetches {
        assert_intact(f, &files);
    }
    for node in MEMBERS {
        assert!(
            fetches.iter().any(|f| f.served_by == node),
            "{node} served none of 150: {fetches:?}"
        );
    }

    let all_three = placement(lab, &MEMBERS);

    // Slow downloads (16 s each) served by srv1 and srv2, across the kill.
    let held = routed_ports_served_by(lab, &["srv1", "srv2"], 2, 30_000);
    let mut script = String::from("mkdir -p /tmp/shoal-rt && rm -f /tmp/shoal-rt/*\n");
    for p in &held {
        script.push_str(&format!(
            "(curl -s -m 90 --local-port {p} -D /tmp/shoal-rt/{p}.h -o /tmp/shoal-rt/{p}.body \
             http://198.18.0.100/slow/8m; echo $? > /tmp/shoal-rt/{p}.rc) >/dev/null 2>&1 &\n"
        ));
    }
    lab.client(&script);
    std::thread::sleep(std::time::Duration::from_secs(1));

    lab.kill("srv3", Part::All);
    let withdrawn = await_next_hops(&["srv1", "srv2"], std::time::Duration::from_secs(10));
    println!(
        "routed: lab kill srv3 -> srv3's next hop gone at the router in {} ms (BGP hold time {} s)",
        withdrawn.as_millis(),
        shoal_lab::bird::HOLD_TIME_S
    );
    let without_srv3 = placement(lab, &["srv1", "srv2"]);
    print_moved("lab kill srv3", &all_three, &without_srv3);
    let after = fetch_mix(lab, 90, 1000);
    for f in &after {
        assert_intact(f, &files);
        assert_ne!(f.served_by, "srv3", "{f:?}");
    }

    let mut wait = String::from(
        "for i in $(seq 1 900); do n=$(ls /tmp/shoal-rt/*.rc 2>/dev/null | wc -l); \
         [ \"$n\" -ge PORTS ] && break; sleep 0.1; done\n",
    )
    .replace("PORTS", &held.len().to_string());
    for p in &held {
        wait.push_str(&format!(
            "echo \"$(grep -i '^x-served-by' /tmp/shoal-rt/{p}.h | tr -d '\\r' | cut -d' ' -f2) \
             $(sha256sum < /tmp/shoal-rt/{p}.body | cut -d' ' -f1) $(cat /tmp/shoal-rt/{p}.rc)\"\n"
        ));
    }
    wait.push_str("rm -rf /tmp/shoal-rt\n");
    let sha = files["8m"]["sha256"].as_str().unwrap();
    let results = lab.client(&wait);
    assert_eq!(results.lines().count(), held.len(), "{results}");
    for (line, want) in results.lines().zip(["srv1", "srv1", "srv2", "srv2"]) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f, [want, sha, "0"], "a download across the kill: {line}");
    }

    // Connections begun while srv3 is away whose target is srv3 once it is
    // back (12 downloads of 8 s, held by srv1 and srv2): when it returns,
    // the router hands some of their packets to srv3 itself, the others
    // send them to srv3 in GUE; srv3 holds no flow for them and gives each
    // its second chance at its holder (its previous tables are the
    // membership without itself: `set_tables_joining`).
    let late = routed_ports_served_by(lab, &["srv3"], 12, 30_000);
    lab.start_downloads(&late, "1M");
    std::thread::sleep(std::time::Duration::from_secs(1));

    let t0 = std::time::Instant::now();
    lab.start("srv3", Part::All);
    await_next_hops(&MEMBERS, std::time::Duration::from_secs(20));
    println!(
        "routed: lab start srv3 -> srv3's next hop back at the router in {} ms (start included)",
        t0.elapsed().as_millis()
    );
    let back = placement(lab, &MEMBERS);
    print_moved("lab start srv3", &without_srv3, &back);
    let again = fetch_mix(lab, 150, 1000);
    for f in &again {
        assert_intact(f, &files);
    }
    assert!(
        again.iter().any(|f| f.served_by == "srv3"),
        "srv3 serves nothing after re-announcing"
    );
    let sha8 = files["8m"]["sha256"].as_str().unwrap();
    for (port, (by, sum)) in late.iter().zip(lab.finish_downloads(&late)) {
        assert_eq!(sum, sha8, "download from port {port} across srv3's return");
        assert!(
            by == "srv1" || by == "srv2",
            "download from port {port} served by {by}"
        );
    }
    lab.settle();
    assert!(lab.counter("srv3", "routed_second_chance") > 0);
    assert_eq!(lab.counter("srv3", "routed_second_chance_dropped"), 0);
    let text = shoal_lab::Lab::status().unwrap().text();
    assert!(text.contains("router: ns=up"), "{text}");
    assert!(text.contains("srv3 Established"), "{text}");
    back
}

/// Issue 18, routed mode (`lab up --topology routed`, `local`): the client
/// sits behind a BIRD 2 router that spreads the VIP over the three servers
/// by ECMP (L4 hash), each server's BIRD announcing it while its control
/// says so. New connections from many client ports reach every server;
/// `lab kill srv3` (a crash: BIRD dies with it) removes srv3's next hop at
/// the router within the BGP hold time (3 s, bounded here by 10 s), after
/// which every new connection succeeds on srv1/srv2, and slow downloads
/// served by srv1 and srv2 that ran across the kill finish intact (packets
/// the router sent to srv3 in the meantime are retransmitted); `lab start
/// srv3` announces it again and it serves new connections, while downloads
/// begun in its absence whose target is now srv3 finish intact on their
/// holders through srv3's second chance (none dropped there). `shoalctl
/// drain srv2` withdraws at once and srv2's running downloads finish
/// intact; `drain --wait` returns once srv2 holds no open connection. The
/// times are printed (kill -> withdrawn at the router, start -> announced,
/// drain -> withdrawn) and, per event, how many of 300 connections moved
/// to another receiver (the router's `ip route get`) and another target.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn routed_local_spreads_by_ecmp_withdraws_a_killed_member_and_reannounces() {
    let lab = Lab::up_with(&UpOptions {
        topology: shoal_lab::options::LabTopology::Routed,
        ..UpOptions::default()
    });
    await_next_hops(&MEMBERS, std::time::Duration::from_secs(20));
    for node in MEMBERS {
        // Control publishes its BGP status once per interval: the router
        // may see a change a moment before `shoalctl status` does.
        await_bgp_status(node, "bgp: announced (serving); sessions tor up");
        let v: serde_json::Value =
            serde_json::from_str(&shoalctl(node, &["status", "--json"])).unwrap();
        assert_eq!(v["bgp"]["announced"], true, "{node}: {}", v["bgp"]);
        assert_eq!(v["bgp"]["sessions"][0]["up"], true, "{node}: {}", v["bgp"]);
    }
    let back = routed_spread_kill_and_return(&lab);
    let files = lab.status()["files"].clone();

    // The other reasons to withdraw, each undone: a drain, a failed health
    // check (srv1's nginx stopped: no answer within the timeout, 3 in a
    // row), a SIGTERM to control (withdraw first, then leave).
    routed_drain_lets_downloads_finish(&lab, &back);

    let nginx: Vec<u32> = shoal_lab::process::pids_in("shoal-srv1")
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "nginx")
        })
        .collect();
    assert!(!nginx.is_empty());
    let signal = |sig: &str, pids: &[u32]| {
        let pids: Vec<String> = pids.iter().map(ToString::to_string).collect();
        ok(&Command::new("kill")
            .arg(format!("-{sig}"))
            .args(&pids)
            .output()
            .unwrap());
    };
    signal("STOP", &nginx);
    let sick = await_next_hops(&["srv2", "srv3"], std::time::Duration::from_secs(5));
    println!(
        "routed: srv1's nginx stopped -> withdrawn in {} ms",
        sick.as_millis()
    );
    await_bgp_status("srv1", "bgp: withdrawn (health_failed)");
    signal("CONT", &nginx);
    await_next_hops(&MEMBERS, std::time::Duration::from_secs(5));

    let control =
        shoal_lab::process::read_pid(Path::new("/run/shoal-lab/srv2/control.pid")).unwrap();
    signal("TERM", &[control]);
    let term = await_next_hops(&["srv1", "srv3"], std::time::Duration::from_secs(5));
    println!(
        "routed: SIGTERM to srv2's control -> withdrawn in {} ms",
        term.as_millis()
    );
    await_value(
        "srv2's control to exit",
        std::time::Duration::from_secs(5),
        || {
            let alive = shoal_lab::process::alive(control);
            ((!alive).then_some(()), format!("alive {alive}"))
        },
    );
    let log = std::fs::read_to_string("/run/shoal-lab/srv2/control.log").unwrap();
    assert!(log.contains("VIP withdrawn for the shutdown"), "{log}");
    lab.start("srv2", Part::Control);
    await_next_hops(&MEMBERS, std::time::Duration::from_secs(10));
    let last = fetch_mix(&lab, 60, 1000);
    for f in &last {
        assert_intact(f, &files);
    }
    lab.assert_alive();
}

/// Issue 18, routed mode with a stateless `dpr-ipip` service (`lab up
/// --topology routed --mode dpr-ipip --state stateless`): the target is the
/// service's DPR target hash, not the inspector selection, and the rest is
/// as in `local` (`routed_spread_kill_and_return`): spread over the three
/// members, `lab kill srv3` and `lab start srv3` with no download broken
/// (held across the kill, begun in srv3's absence), a drain of srv2 whose
/// running downloads finish (`routed_drain_lets_downloads_finish`),
/// receivers forwarding to targets in GUE.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn routed_dpr_ipip_keeps_connections_across_a_kill_a_return_and_a_drain() {
    let lab = Lab::up_with(&UpOptions {
        topology: shoal_lab::options::LabTopology::Routed,
        mode: shoal_config::Mode::DprIpip,
        state: shoal_config::State::Stateless,
        ..UpOptions::default()
    });
    await_next_hops(&MEMBERS, std::time::Duration::from_secs(20));
    // The lab's tables are dpr-ipip ones: a target differs from the
    // inspector selection for some connections.
    let tables = routed_tables(&lab, &MEMBERS);
    assert_eq!(tables.services[0].mode, shoal_config::Mode::DprIpip);
    let differ = MOVED_PORTS
        .filter(|&port| {
            let key = shoal_select::ClientKey {
                addr: shoal_lab::topology::ROUTED_CLIENT_ADDR,
                port,
            };
            tables.services[0].selector.select(key) != routed_target(&tables, port)
        })
        .count();
    assert!(differ > 0, "the DPR target hash is the inspector selection");
    let back = routed_spread_kill_and_return(&lab);
    routed_drain_lets_downloads_finish(&lab, &back);
    lab.settle();
    assert!(routed_counter(&lab, "routed_forwarded") > 0);
    assert_eq!(routed_counter(&lab, "drop_encap_not_member"), 0);
    lab.assert_alive();
}

/// Issue 18, splice in routed mode (`lab up --topology routed --mode
/// splice`): the inspector is each connection's routed target; receivers
/// send it the client's packets in GUE, it reads the request and hands the
/// connection to the member its URL dispatches to, whose kernel answers the
/// client directly; the inspector's tombstone forwards the client's later
/// packets there. Then the inspector of running downloads is killed: their
/// packets reach the new target, which has no flow and whose alternate
/// (the dead inspector) is gone, so it floods a copy to the other live
/// member, which holds them and answers `located`: they finish intact.
/// Downloads begun while the member is away whose target it is once back
/// finish intact through its second chance at their inspector's
/// tombstone. Then the member serving all of them drains: withdrawn at
/// once, the downloads finish, `drain --wait` returns when they ended.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn routed_splice_hands_over_and_keeps_connections_when_their_inspector_dies() {
    let lab = Lab::up_with(&UpOptions {
        topology: shoal_lab::options::LabTopology::Routed,
        mode: shoal_config::Mode::Splice,
        ..UpOptions::default()
    });
    await_next_hops(&MEMBERS, std::time::Duration::from_secs(20));
    let files = lab.status()["files"].clone();
    let fetches = fetch_mix(&lab, 120, 1000);
    for f in &fetches {
        assert_intact(f, &files);
    }
    // Each path on one server whatever the receiver and the inspector.
    let owner = probe_owners(&lab, 2, 20);
    assert_eq!(owner.len(), 20, "{owner:?}");
    lab.settle();
    let sum =
        |names: &[&str], name: &str| -> u64 { names.iter().map(|n| lab.counter(n, name)).sum() };
    assert_eq!(
        sum(&MEMBERS, "handoff_handed_over"),
        sum(&MEMBERS, "handoff_received")
    );
    assert!(sum(&MEMBERS, "handoff_handed_over") > 0);
    assert!(sum(&MEMBERS, "routed_tombstone_forwarded") > 0);
    assert_eq!(sum(&MEMBERS, "splice_cookie_rejected"), 0);
    for node in MEMBERS {
        // The router spread connections over every receiver.
        assert!(lab.counter(node, "routed_forwarded") > 0, "{node}");
    }

    // The member /slow/8m is dispatched to serves the downloads; another
    // one inspects them and is killed.
    let serving = lab
        .client("curl -s -m 5 -r 0-0 -o /dev/null -w '%header{x-served-by}' http://198.18.0.100/slow/8m")
        .trim()
        .to_owned();
    assert!(MEMBERS.contains(&serving.as_str()), "{serving}");
    let victim = if serving == "srv3" { "srv2" } else { "srv3" };
    let others: Vec<&str> = MEMBERS.iter().copied().filter(|n| *n != victim).collect();
    // Inspected by the victim; without it, targeted at the member that does
    // not serve them (so that a packet reaching that one finds no flow).
    let (all, without) = (routed_tables(&lab, &MEMBERS), routed_tables(&lab, &others));
    let id = |name: &str| all.members.iter().find(|m| m.name == name).unwrap().id;
    let held: Vec<u16> = (30_000..40_000)
        .filter(|&p| {
            routed_target(&all, p) == Some(id(victim))
                && routed_target(&without, p) != Some(id(&serving))
        })
        .take(6)
        .collect();
    assert_eq!(held.len(), 6);
    start_slow_downloads(&lab, "/tmp/shoal-rs", &held);
    std::thread::sleep(std::time::Duration::from_secs(1));
    lab.kill(victim, Part::All);
    let withdrawn = await_next_hops(&others, std::time::Duration::from_secs(10));
    println!(
        "routed splice: lab kill {victim} -> withdrawn in {} ms",
        withdrawn.as_millis()
    );
    // Those the router now hands to the member that does not serve them.
    let serving_addr = server(&serving).addr().to_string();
    let lost_inspector = router_receivers(&lab, &held)
        .iter()
        .filter(|r| **r != serving_addr)
        .count();
    // Once the survivors' membership no longer counts the victim, the only
    // way those downloads go on (until it returns) is a flood from the
    // member the router now hands them to: TCP retransmits until one gets
    // through, so wait for it (bounded).
    await_agreement(&others, 2, std::time::Duration::from_secs(15));
    if lost_inspector > 0 {
        await_value(
            "a flood for the dead inspector's downloads",
            std::time::Duration::from_secs(30),
            || {
                let (flooded, learned) = (
                    sum(&others, "routed_flooded"),
                    sum(&others, "routed_located_learned"),
                );
                (
                    (flooded > 0 && learned > 0).then_some(()),
                    format!("flooded {flooded}, located learned {learned}"),
                )
            },
        );
    }
    for f in &fetch_mix(&lab, 45, 1000) {
        assert_intact(f, &files);
        assert_ne!(f.served_by, victim, "{f:?}");
    }

    // Begun in the victim's absence, its connections once it is back; the
    // held downloads run across the return too.
    let late = routed_ports_served_by(&lab, &[victim], 6, 32_000);
    start_slow_downloads(&lab, "/tmp/shoal-rs-late", &late);
    std::thread::sleep(std::time::Duration::from_secs(1));
    lab.start(victim, Part::All);
    await_next_hops(&MEMBERS, std::time::Duration::from_secs(20));
    for f in &fetch_mix(&lab, 45, 1000) {
        assert_intact(f, &files);
    }
    // The member serving every download drains: withdrawn at once, its
    // downloads go on (their packets reach the others, which no longer
    // target it, and get their second chance or a tombstone's forwarding
    // to it); `drain --wait` returns once they ended.
    let token = ["--token-file", "/run/shoal-lab/admin.token"];
    shoalctl(
        &serving,
        &[&["drain", serving.as_str()][..], &token].concat(),
    );
    let rest: Vec<&str> = MEMBERS.iter().copied().filter(|n| *n != serving).collect();
    let withdrawn = await_next_hops(&rest, std::time::Duration::from_secs(5));
    println!(
        "routed splice: shoalctl drain {serving} -> withdrawn in {} ms",
        withdrawn.as_millis()
    );
    let bin = PathBuf::from(std::env::var_os("SHOAL_BIN_DIR").unwrap()).join("shoalctl");
    let node: Node = serving.parse().unwrap();
    let out = shoal_lab::Lab::command(
        node,
        &[
            &[
                bin.to_str().unwrap(),
                "drain",
                serving.as_str(),
                "--wait",
                "--timeout",
                "30",
            ][..],
            &token,
        ]
        .concat(),
    )
    .unwrap()
    .output()
    .unwrap();
    let waited = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !waited.contains("drained, no connection open") {
        for node in MEMBERS {
            let c = &lab.stats(node)["counters"];
            let mine: Vec<String> = c
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, v)| {
                    v.as_u64().unwrap_or(0) > 0
                        && [
                            "routed",
                            "handoff",
                            "persist",
                            "splice",
                            "drop",
                            "second",
                            "flood",
                            "located",
                            "tombstone",
                        ]
                        .iter()
                        .any(|w| k.contains(w))
                })
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!("{node}: {}", mine.join(" "));
        }
        println!("{}", lab.client("ss -tni | head -80"));
        for (dir, ports) in [("/tmp/shoal-rs", &held), ("/tmp/shoal-rs-late", &late)] {
            for p in ports {
                println!(
                    "{dir} {p}: {}",
                    lab.client(&format!(
                        "cat {dir}/{p}.rc 2>/dev/null; ls -l {dir}/{p}.body"
                    ))
                    .trim()
                );
            }
        }
        panic!("drain --wait: {waited}");
    }
    let sha = files["8m"]["sha256"].as_str().unwrap();
    for (dir, ports, what) in [
        (
            "/tmp/shoal-rs",
            &held,
            "across the kill and return of its inspector and a drain",
        ),
        (
            "/tmp/shoal-rs-late",
            &late,
            "begun without its inspector, across its return and a drain",
        ),
    ] {
        for (port, (by, sum, rc)) in ports.iter().zip(finish_slow_downloads(&lab, dir, ports)) {
            assert_eq!(
                (by.as_str(), sum.as_str(), rc.as_str()),
                (serving.as_str(), sha, "0"),
                "port {port}: {what}"
            );
        }
    }
    lab.settle();
    println!(
        "routed splice: {lost_inspector} of {} downloads reached a member without their flow; \
         flooded packets {}, flood copies missed {}, located learned {}, tombstone forwarded {}",
        held.len(),
        sum(&others, "routed_flooded"),
        sum(&others, "routed_flood_miss"),
        sum(&others, "routed_located_learned"),
        sum(&others, "routed_tombstone_forwarded"),
    );
    assert!(
        lab.counter(victim, "splice_cookie_sent") > 0,
        "{victim} inspects again"
    );
    assert!(lab.counter(victim, "routed_second_chance") > 0);
    assert_eq!(lab.counter(victim, "routed_second_chance_dropped"), 0);
    lab.assert_alive();
}

/// Starts a /slow/8m download (16 s at 512 KiB/s) from each client port in
/// the background, results under `dir` in the client namespace.
fn start_slow_downloads(lab: &Lab, dir: &str, ports: &[u16]) {
    let mut script = format!("mkdir -p {dir} && rm -f {dir}/*\n");
    for p in ports {
        script.push_str(&format!(
            "(curl -s -m 90 --local-port {p} -D {dir}/{p}.h -o {dir}/{p}.body \
             http://198.18.0.100/slow/8m; echo $? > {dir}/{p}.rc) >/dev/null 2>&1 &\n"
        ));
    }
    lab.client(&script);
}

/// Waits for the downloads of [`start_slow_downloads`]; (served by, sha256,
/// curl's exit code) per port, in order.
fn finish_slow_downloads(lab: &Lab, dir: &str, ports: &[u16]) -> Vec<(String, String, String)> {
    let mut script = format!(
        "for i in $(seq 1 900); do n=$(ls {dir}/*.rc 2>/dev/null | wc -l); \
         [ \"$n\" -ge {} ] && break; sleep 0.1; done\n",
        ports.len()
    );
    for p in ports {
        script.push_str(&format!(
            "echo \"$(grep -i '^x-served-by' {dir}/{p}.h | tr -d '\\r' | cut -d' ' -f2) \
             $(sha256sum < {dir}/{p}.body | cut -d' ' -f1) $(cat {dir}/{p}.rc)\"\n"
        ));
    }
    script.push_str(&format!("rm -rf {dir}\n"));
    lab.client(&script)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "download result: {l}");
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
        })
        .collect()
}

/// Sum of a dataplane counter over the three servers.
fn routed_counter(lab: &Lab, name: &str) -> u64 {
    MEMBERS
        .iter()
        .map(|n| lab.stats(n)["counters"][name].as_u64().unwrap_or(0))
        .sum()
}

/// Issue 18: the router's ECMP set changed under running downloads, by
/// hand, with both Linux multipath flavours: a route of its own (metric 10,
/// before BIRD's) over the three servers, then srv3 removed as a next hop
/// (it stays a member: connections it serves now arrive through srv1 or
/// srv2, which forward them in GUE), then added back. Legacy multipath
/// re-hashes every flow on each change, a resilient group (`ip nexthop ...
/// type resilient`) only the removed hop's; 0 downloads break in either.
/// Prints how many packets receivers forwarded to targets (GUE) per flavour.
#[test]
#[ignore = "needs root, netns and release binaries: run by tests/run.sh"]
fn routed_ecmp_changes_under_downloads_break_no_connection() {
    let lab = Lab::up_with(&UpOptions {
        topology: shoal_lab::options::LabTopology::Routed,
        ..UpOptions::default()
    });
    await_next_hops(&MEMBERS, std::time::Duration::from_secs(20));
    let sha = lab.status()["files"]["8m"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let vip = "198.18.0.100/32";
    let route = |args: &[&str]| {
        lab.exec("router", &[&["ip"][..], args].concat());
    };
    let hop = |n: &str| server(n).addr().to_string();
    for (round, flavour) in (0u16..).zip(["legacy", "resilient"]) {
        let (all, two): (Vec<String>, Vec<String>) = if flavour == "legacy" {
            let set = |nodes: &[&str]| {
                let mut v = vec![
                    "route".to_owned(),
                    "replace".to_owned(),
                    vip.to_owned(),
                    "metric".to_owned(),
                    "10".to_owned(),
                ];
                for n in nodes {
                    v.extend(["nexthop", "via", &hop(n), "dev", "eth0"].map(str::to_owned));
                }
                v
            };
            (set(&MEMBERS), set(&["srv1", "srv2"]))
        } else {
            for (id, n) in MEMBERS.iter().enumerate() {
                route(&[
                    "nexthop",
                    "replace",
                    "id",
                    &(id + 1).to_string(),
                    "via",
                    &hop(n),
                    "dev",
                    "eth0",
                ]);
            }
            let group = |g: &str| {
                [
                    "nexthop",
                    "replace",
                    "id",
                    "10",
                    "group",
                    g,
                    "type",
                    "resilient",
                    "buckets",
                    "128",
                ]
                .map(str::to_owned)
                .to_vec()
            };
            route(
                &group("1/2/3")
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            );
            route(&["route", "replace", vip, "metric", "10", "nhid", "10"]);
            (group("1/2/3"), group("1/2"))
        };
        let run = |v: &[String]| route(&v.iter().map(String::as_str).collect::<Vec<_>>());
        run(&all);
        // Other ports each round: the last round's are in TIME_WAIT.
        let ports: Vec<u16> = (0..12).map(|i| 33_000 + 100 * round + i).collect();
        let forwarded = routed_counter(&lab, "routed_forwarded");
        start_slow_downloads(&lab, "/tmp/shoal-ecmp", &ports);
        std::thread::sleep(std::time::Duration::from_secs(3));
        run(&two);
        std::thread::sleep(std::time::Duration::from_secs(4));
        run(&all);
        let results = finish_slow_downloads(&lab, "/tmp/shoal-ecmp", &ports);
        println!(
            "routed ECMP {flavour}: 12 downloads across 3 -> 2 -> 3 next hops, {} packets \
             forwarded receiver -> target in GUE",
            routed_counter(&lab, "routed_forwarded") - forwarded
        );
        for (port, (by, got, rc)) in ports.iter().zip(&results) {
            assert_eq!(rc, "0", "{flavour}: download from port {port} failed");
            assert_eq!(
                got, &sha,
                "{flavour}: download from port {port} (served by {by})"
            );
        }
        route(&["route", "del", vip, "metric", "10"]);
        if flavour == "resilient" {
            route(&["nexthop", "flush"]);
        }
    }
    lab.assert_alive();
}
