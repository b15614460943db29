#!/usr/bin/env python3
"""The engine of `perf/run`: Shoal against what an operator would pick
instead, measured in one run on the same lab, cores and files.

Suites (each a list of runs in the results file, schema in perf/report.py):

  l7-new        one request per connection (/whoami): Shoal splice
                (frequent and rare handoff) vs nginx and HAProxy (http mode)
                as reverse proxies, at 1/16/128/512 connections
  l7-keepalive  the same paths, keep-alive connections (requests/s)
  l7-large      1 MiB and 8 MiB downloads (one per connection), Mbit/s
  l4-new        Shoal local, dpr-mac and dpr-ipip (stateless, stateful) vs
                HAProxy (tcp mode) and nginx `stream`
  l4-large      the same paths, 1 MiB downloads
  scaling       Shoal local with 1 and 3 servers
  table1        seed 001 Table 1 (DPR paper) beside the lab's figures
  bench         the dispatching path's own CPU per connection
                (perf/benches/splice.rs) beside the lab's and the proxies'
  dts-scaling   the DTS scaling simulator (seed 002 §4.2), when built

The proxies run in a namespace of their own on the lab's hub
(`shoal-perf-front`, 198.18.0.3), in front of the same three nginx the
Shoal paths reach; the client is the lab's (`shoal-client`). CPU of the
dispatching path per run: for Shoal the dataplanes' busy time (`busy_ns`,
the wall time of polls that found packets; a poll-mode worker takes its
core whatever the load, so process CPU says nothing), for a proxy its
processes' CPU time (utime + stime from /proc).

Every wrk run is bounded (-d, --timeout); every lab is taken down and the
front namespace deleted on exit, also on failure. A missing tool or an empty
figure is an error, never a skipped row.
"""

import argparse
import datetime
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
RUN = "/run/shoal-lab"
VIP = "198.18.0.100"
SERVERS = ["198.18.0.11", "198.18.0.12", "198.18.0.13"]
CLIENT_NS = "shoal-client"
HUB_NS = "shoal-hub"
FRONT_NS = "shoal-perf-front"
FRONT_ADDR = "198.18.0.3"
FRONT_PORT = "p-perf-front"
FRONT_DIR = "/run/shoal-perf-front"
LUA = os.path.join(ROOT, "perf", "wrk-report.lua")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# > one stats interval of the lab's dataplanes (1 s): the stats files then
# hold every packet of the run.
STATS_WAIT = 1.2

# Ports of the proxies on the front: (path name, port).
NGINX_HTTP = ("nginx", 8080)
HAPROXY_HTTP = ("haproxy", 8081)
HAPROXY_TCP = ("haproxy-tcp", 8082)
NGINX_STREAM = ("nginx-stream", 8083)

# Seed 001 (DPR paper), Table 1: max HTTP GETs/s and average latency (ms).
SEED_TABLE1 = [
    ("Baseline 1-Host", 104, 912.4),
    ("Stateful/Imbalanced", 183, 150.5),
    ("Stateful/Balanced", 180, 150.4),
    ("Stateless/Imbalanced", 194, 131.3),
    ("TCP Router", 194, 126.9),
    ("Baseline 2-Hosts", 196, 124.0),
]


class BenchError(Exception):
    """A failure that ends the run with a message naming the problem."""


def log(msg):
    print(f"perf/run: {msg}", file=sys.stderr, flush=True)


def sh(args, check=True, capture=False, timeout=120):
    """Runs a command (a list); returns its stdout when `capture`."""
    try:
        res = subprocess.run(
            args,
            check=False,
            text=True,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"{' '.join(args)}: no end after {timeout} s") from e
    if check and res.returncode != 0:
        raise BenchError(f"{' '.join(args)} failed ({res.returncode}): {res.stderr.strip()[-800:]}")
    return res.stdout if capture else None


def in_ns(ns, args):
    return ["ip", "netns", "exec", ns] + args


class Lab:
    """The lab cluster, driven through the shoal-lab binary."""

    def __init__(self, bin_dir):
        self.bin = os.path.join(bin_dir, "shoal-lab")
        if not os.access(self.bin, os.X_OK):
            raise BenchError(f"{self.bin} missing (perf/run builds it; SHOAL_BIN_DIR={bin_dir})")
        self.desc = None

    def up(self, *opts):
        self.down()
        log(f"lab up {' '.join(opts)}")
        sh([self.bin, "up", *opts], timeout=300)
        self.desc = " ".join(opts)
        front_up()

    def down(self):
        front_down()
        sh([self.bin, "down"], check=False, timeout=120)
        self.desc = None

    def load(self, node, value):
        sh([self.bin, "load", node, str(value)])


def front_up():
    """The proxies' namespace: one more port on the lab's hub."""
    front_down()
    sh(["ip", "netns", "add", FRONT_NS])
    sh(["ip", "-n", HUB_NS, "link", "add", FRONT_PORT, "type", "veth", "peer", "name", "eth0", "netns", FRONT_NS])
    sh(["ip", "-n", HUB_NS, "link", "set", FRONT_PORT, "master", "br0"])
    sh(["bridge", "-n", HUB_NS, "link", "set", "dev", FRONT_PORT, "learning", "off", "flood", "on", "mcast_flood", "on"])
    sh(["ip", "-n", HUB_NS, "link", "set", FRONT_PORT, "up"])
    sh(["ip", "-n", FRONT_NS, "addr", "add", f"{FRONT_ADDR}/24", "dev", "eth0"])
    # As on the lab's client: af_packet would carry CHECKSUM_PARTIAL
    # segments with bad checksums (docs/platform.md §5).
    sh(in_ns(FRONT_NS, ["ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off"]))
    sh(["ip", "-n", FRONT_NS, "link", "set", "eth0", "up"])
    sh(["ip", "-n", FRONT_NS, "link", "set", "lo", "up"])
    os.makedirs(FRONT_DIR, exist_ok=True)


def front_down():
    for pidfile in glob.glob(f"{FRONT_DIR}/*.pid"):
        try:
            pid = int(open(pidfile).read().split()[0])
            os.kill(pid, signal.SIGTERM)
        except (ValueError, IndexError, ProcessLookupError, FileNotFoundError):
            # No pid, or the process is gone already: nothing to wait for.
            continue
        for _ in range(50):
            try:
                os.kill(pid, 0)
                time.sleep(0.05)
            except ProcessLookupError:
                break
    if os.path.exists(f"/run/netns/{FRONT_NS}"):
        sh(["ip", "netns", "del", FRONT_NS], check=False)
    shutil.rmtree(FRONT_DIR, ignore_errors=True)


def start_proxies(kinds, servers):
    """Starts the named proxies in the front namespace, in front of
    `servers` (port 80); returns {path: [pids]}."""
    pids = {}
    up_http = "".join(f"server {s}:80; " for s in servers)
    conf = [
        "worker_processes 1;",
        f"pid {FRONT_DIR}/nginx.pid;",
        f"error_log {FRONT_DIR}/nginx-error.log;",
        "worker_rlimit_nofile 20000;",
        "events { worker_connections 8192; }",
    ]
    if "stream" in kinds:
        conf.insert(0, "load_module /usr/lib/nginx/modules/ngx_stream_module.so;")
        conf.append(
            "stream { upstream b { " + up_http + "} "
            f"server {{ listen {FRONT_ADDR}:{NGINX_STREAM[1]} backlog=4096; proxy_pass b; }} }}"
        )
    if "http" in kinds:
        conf.append(
            "http { access_log off; upstream b { " + up_http + "keepalive 64; } "
            f"server {{ listen {FRONT_ADDR}:{NGINX_HTTP[1]} backlog=4096; "
            "location / { proxy_pass http://b; proxy_http_version 1.1; "
            'proxy_set_header Connection ""; proxy_buffering off; } } }'
        )
    if "http" in kinds or "stream" in kinds:
        with open(f"{FRONT_DIR}/nginx.conf", "w") as f:
            f.write("\n".join(conf) + "\n")
        sh(in_ns(FRONT_NS, ["nginx", "-c", f"{FRONT_DIR}/nginx.conf"]))
    hap = [
        "global",
        # Two descriptors per proxied connection: 8000 stays under this
        # machine's 20000 open files (a hard limit root cannot raise here).
        "    maxconn 8000",
        "    nbthread 1",
        f"    pidfile {FRONT_DIR}/haproxy.pid",
        "defaults",
        "    timeout connect 5s",
        "    timeout client 30s",
        "    timeout server 30s",
    ]
    hap_backend = "".join(f"    server s{i} {s}:80\n" for i, s in enumerate(servers, 1))
    if "haproxy-http" in kinds:
        hap += [
            "frontend fh",
            "    mode http",
            f"    bind {FRONT_ADDR}:{HAPROXY_HTTP[1]}",
            "    default_backend bh",
            "backend bh",
            "    mode http",
            "    balance roundrobin",
            hap_backend,
        ]
    if "haproxy-tcp" in kinds:
        hap += [
            "frontend ft",
            "    mode tcp",
            f"    bind {FRONT_ADDR}:{HAPROXY_TCP[1]}",
            "    default_backend bt",
            "backend bt",
            "    mode tcp",
            "    balance roundrobin",
            hap_backend,
        ]
    if "haproxy-http" in kinds or "haproxy-tcp" in kinds:
        with open(f"{FRONT_DIR}/haproxy.cfg", "w") as f:
            f.write("\n".join(hap) + "\n")
        sh(in_ns(FRONT_NS, ["haproxy", "-D", "-f", f"{FRONT_DIR}/haproxy.cfg"]))
    time.sleep(0.5)
    if "http" in kinds or "stream" in kinds:
        master = read_pid(f"{FRONT_DIR}/nginx.pid")
        pids["nginx"] = [master] + children(master)
    if "haproxy-http" in kinds or "haproxy-tcp" in kinds:
        pids["haproxy"] = [read_pid(f"{FRONT_DIR}/haproxy.pid")]
    return pids


def read_pid(path):
    for _ in range(40):
        try:
            return int(open(path).read().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            time.sleep(0.05)
    raise BenchError(f"no pid in {path}: the process did not start (logs in {FRONT_DIR})")


def children(pid):
    out = []
    for task in glob.glob(f"/proc/{pid}/task/*/children"):
        out += [int(p) for p in open(task).read().split()]
    return out


def ticks(pids):
    """CPU seconds (utime + stime) of `pids` so far."""
    total = 0
    for pid in pids:
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except FileNotFoundError as e:
            raise BenchError(f"process {pid} is gone") from e
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def dataplane_pids():
    pids = []
    for f in sorted(glob.glob(f"{RUN}/srv*/dataplane.pid")):
        pids.append(int(open(f).read().split()[0]))
    if not pids:
        raise BenchError(f"no dataplane pid files in {RUN}")
    return pids


def busy_s():
    """Every lab dataplane worker's busy time so far, seconds."""
    total = 0
    files = glob.glob(f"{RUN}/srv*/stats.json")
    if not files:
        raise BenchError(f"no stats files in {RUN}/srv*/")
    for f in files:
        total += sum(w["busy_ns"] for w in json.load(open(f))["workers"])
    return total / 1e9


class Bench:
    def __init__(self, args):
        self.args = args
        self.duration = args.duration
        self.runs = []
        self.tables = []
        self.lab = Lab(args.bin_dir)
        self.repeats = {}
        # The splice bench's µs per connection ("local", "handoff").
        self.bench_us = {}
        # Downloads of 8 MiB take seconds each at 16 connections: longer
        # runs, so that each connection completes several.
        self.large_duration = args.large_duration or max(2 * args.duration, 10)

    def wrk(self, url, conns, close=True, duration=None, ns=CLIENT_NS):
        """Starts one wrk; returns the Popen (its stdout has the report)."""
        duration = duration or self.duration
        threads = 1 if conns < 2 else 2
        # A download may take most of the run; a small request never 5 s.
        timeout = max(5, duration)
        cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--timeout", f"{timeout}s", "-s", LUA]
        if close:
            cmd += ["-H", "Connection: close"]
        cmd.append(url)
        return subprocess.Popen(
            in_ns(ns, cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wrk_result(self, proc, what, duration=None):
        try:
            out, err = proc.communicate(timeout=(duration or self.duration) + 30)
        except subprocess.TimeoutExpired as e:
            proc.kill()
            raise BenchError(f"wrk for {what} did not end") from e
        m = re.search(r"^WRKJSON (.*)$", out, re.M)
        if proc.returncode != 0 or not m:
            raise BenchError(f"no figures from wrk for {what}: {out[-600:]} {err[-400:]}")
        r = json.loads(m.group(1))
        if r["requests"] == 0:
            raise BenchError(f"wrk for {what}: no request completed ({out[-400:]})")
        return r

    def measure(self, suite, path, url, conns, cpu, close=True, size=None, servers=3, note="", duration=None):
        """One wrk run against `url`; `cpu` is "shoal" (dataplane busy time),
        a list of proxy PIDs, or None (not measured). Appends and returns
        the run."""
        what = f"{suite} {path} c={conns}" + (f" size={size}" if size else "")
        if cpu == "shoal":
            time.sleep(STATS_WAIT)
            b0, p0 = busy_s(), ticks(dataplane_pids())
        elif cpu is not None:
            p0 = ticks(cpu)
        r = self.wrk_result(self.wrk(url, conns, close, duration), what, duration)
        if cpu == "shoal":
            p1 = ticks(dataplane_pids())
            time.sleep(STATS_WAIT)
            cpu_s, cpu_what = busy_s() - b0, f"dataplane busy time ({servers} servers)"
        elif cpu is not None:
            p1 = ticks(cpu)
            cpu_s, cpu_what = p1 - p0, "proxy process CPU"
        run = self.record(suite, path, conns, r, size, servers, note)
        if cpu is None:
            self.show(run)
            return run
        run.update(
            cpu_s=round(cpu_s, 4),
            cpu_per_1k_s=round(cpu_s / r["requests"] * 1000, 5),
            cpu_what=cpu_what,
            proc_cpu_s=round(p1 - p0, 3),
        )
        self.show(run)
        return run

    def record(self, suite, path, conns, r, size, servers, note):
        dur = r["duration_us"] / 1e6
        errors = sum(r["errors"].values())
        run = {
            "suite": suite,
            "path": path,
            "conns": conns,
            "size_bytes": size,
            "servers": servers,
            "rate": round(r["requests"] / dur, 1),
            "rate_unit": "req/s" if suite.endswith("keepalive") or suite.endswith("large") else "conn/s",
            "mbit_s": round(r["bytes"] * 8 / dur / 1e6, 2),
            "latency_ms": r["latency_ms"],
            "mean_ms": r["mean_ms"],
            "requests": r["requests"],
            "errors": errors,
            "error_kinds": r["errors"],
            "note": note,
        }
        self.runs.append(run)
        return run

    def show(self, run):
        lat = run["latency_ms"]
        cpu = run.get("cpu_per_1k_s")
        log(
            f"{run['suite']:13s} {run['path']:26s} c={run['conns']:<4d} "
            f"{run['rate']:9.0f} {run['rate_unit']:6s} {run['mbit_s']:8.1f} Mbit/s "
            f"p50 {lat['50']:.2f} p99 {lat['99']:.2f} ms"
            + (f" cpu/1k {cpu:.3f} s" if cpu is not None else "")
            + (f"  ERRORS {run['errors']}" if run["errors"] else "")
        )

    # -- the suites -----------------------------------------------------

    def l7(self):
        a = self.args
        self.lab.up("--nodes", "3", "--backend", "dpdk", "--mode", "splice", "--handoff", "frequent")
        pids = start_proxies({"http", "haproxy-http"}, SERVERS)
        paths = [
            ("shoal-splice-frequent", f"http://{VIP}", "shoal"),
            (NGINX_HTTP[0], f"http://{FRONT_ADDR}:{NGINX_HTTP[1]}", pids["nginx"]),
            (HAPROXY_HTTP[0], f"http://{FRONT_ADDR}:{HAPROXY_HTTP[1]}", pids["haproxy"]),
        ]
        for c in a.concurrency:
            for path, base, cpu in paths:
                self.measure("l7-new", path, base + "/whoami", c, cpu)
        # Run-to-run noise: the middle concurrency twice more.
        c = a.concurrency[len(a.concurrency) // 2]
        for path, base, cpu in paths[:2]:
            self.repeats[path] = [r["rate"] for r in self.runs if (r["suite"], r["path"], r["conns"]) == ("l7-new", path, c)]
            for _ in range(2):
                run = self.measure("l7-new", path, base + "/whoami", c, cpu, note="repeat")
                self.runs.remove(run)
                self.repeats.setdefault(path, []).append(run["rate"])
        for c in a.keepalive_concurrency:
            for path, base, cpu in paths:
                self.measure("l7-keepalive", path, base + "/whoami", c, cpu, close=False)
        if a.profile:
            self.profile(f"http://{VIP}/whoami", a.concurrency[len(a.concurrency) // 2])
        for name, size in (("1m", 1 << 20), ("8m", 8 << 20)):
            for path, base, cpu in paths:
                self.measure("l7-large", path, f"{base}/files/{name}", a.large_conns, cpu, size=size, duration=self.large_duration)
        self.lab.up("--nodes", "3", "--backend", "dpdk", "--mode", "splice", "--handoff", "rare")
        for c in a.concurrency:
            self.measure("l7-new", "shoal-splice-rare", f"http://{VIP}/whoami", c, "shoal")

    def profile(self, url, conns):
        """Where the dispatching path's time goes: `perf record` of every
        lab dataplane during one more splice run (not among the figures:
        sampling slows it), summarised by symbol into profile.txt."""
        if not shutil.which("perf"):
            raise BenchError("perf missing (Debian: linux-perf); --no-profile skips the profile")
        data = os.path.join(self.args.out, "perf.data")
        os.makedirs(self.args.out, exist_ok=True)
        pids = ",".join(str(p) for p in dataplane_pids())
        rec = subprocess.Popen(
            ["perf", "record", "-F", "999", "-g", "-p", pids, "-o", data, "--", "sleep", str(self.duration)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        r = self.wrk_result(self.wrk(url, conns), "the profiled run")
        _, err = rec.communicate(timeout=self.duration + 60)
        if rec.returncode != 0:
            raise BenchError(f"perf record failed: {err[-400:]}")
        def report(sort, limit):
            out = sh(
                ["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", sort,
                 "--percent-limit", limit, "-g", "none"],
                capture=True,
                timeout=300,
            )
            return [line.rstrip() for line in out.splitlines() if line.strip() and not line.startswith("#")]

        by_dso = report("dso", "0.5")
        lines = report("comm,dso,symbol", "0.7")
        with open(os.path.join(self.args.out, "profile.txt"), "w") as f:
            f.write(
                f"# perf record -F 999 -g of the lab's dataplanes (pids {pids}) during "
                f"{self.duration} s of splice, {conns} connections, one request each: "
                f"{r['requests']} connections ({r['requests'] / (r['duration_us'] / 1e6):.0f}/s)\n"
                "# self time by object (>= 0.5 %): the dataplane's code, the kernel (AF_PACKET I/O, scheduling), the vDSO (clock reads)\n"
            )
            f.write("\n".join(by_dso) + "\n")
            f.write("# self time by thread, object and symbol (>= 0.7 %)\n")
            f.write("\n".join(lines[:80]) + "\n")
        os.unlink(data)
        log(f"profile: {self.args.out}/profile.txt")

    def l4(self):
        a = self.args
        c = a.l4_conns
        modes = [
            ("shoal-local", ["--mode", "local"]),
            ("shoal-dpr-mac-stateless", ["--mode", "dpr-mac", "--state", "stateless"]),
            ("shoal-dpr-mac-stateful", ["--mode", "dpr-mac", "--state", "stateful"]),
            ("shoal-dpr-ipip-stateless", ["--mode", "dpr-ipip", "--state", "stateless"]),
            ("shoal-dpr-ipip-stateful", ["--mode", "dpr-ipip", "--state", "stateful"]),
        ]
        for path, opts in modes:
            self.lab.up("--nodes", "3", "--backend", "dpdk", *opts)
            if path == "shoal-local":
                pids = start_proxies({"stream", "haproxy-tcp"}, SERVERS)
                for p, port, cpu in (
                    (HAPROXY_TCP[0], HAPROXY_TCP[1], pids["haproxy"]),
                    (NGINX_STREAM[0], NGINX_STREAM[1], pids["nginx"]),
                ):
                    self.measure("l4-new", p, f"http://{FRONT_ADDR}:{port}/whoami", c, cpu)
                    self.measure("l4-large", p, f"http://{FRONT_ADDR}:{port}/files/1m", a.large_conns, cpu, size=1 << 20, duration=self.large_duration)
            self.measure("l4-new", path, f"http://{VIP}/whoami", c, "shoal")
            self.measure("l4-large", path, f"http://{VIP}/files/1m", a.large_conns, "shoal", size=1 << 20, duration=self.large_duration)
            if path == "shoal-local":
                run = dict(self.runs[-2])
                run.update(suite="scaling", servers=3)
                self.runs.append(run)
        self.lab.up("--nodes", "1", "--backend", "dpdk", "--mode", "local")
        self.measure("scaling", "shoal-local", f"http://{VIP}/whoami", c, "shoal", servers=1)

    def table1(self):
        """Seed 001 Table 1: two servers (the seed's hosts), GETs of a 1 KiB
        document, one per connection (SPECweb96 used HTTP/1.0)."""
        a = self.args
        c = a.table1_conns
        rows = {}

        def both(runs):
            rate = sum(r["rate"] for r in runs)
            mean = sum(r["mean_ms"] * r["rate"] for r in runs) / rate
            return rate, mean, sum(r["errors"] for r in runs)

        self.lab.up("--nodes", "3", "--backend", "none")
        pids = start_proxies({"haproxy-tcp"}, SERVERS[:2])
        r = self.measure("table1", "baseline-1-host", f"http://{SERVERS[0]}/files/1k", c, None)
        rows["Baseline 1-Host"] = (r["rate"], r["mean_ms"], r["errors"], "no dataplane; one client → srv1")
        procs = [self.wrk(f"http://{s}/files/1k", c) for s in SERVERS[:2]]
        runs = [self.record("table1", f"baseline-2-hosts-srv{i}", c, self.wrk_result(p, f"baseline 2 hosts srv{i}"), None, 2, "") for i, p in enumerate(procs, 1)]
        for run in runs:
            self.show(run)
        rate, mean, err = both(runs)
        rows["Baseline 2-Hosts"] = (rate, mean, err, "no dataplane; two clients, one per server")
        r = self.measure("table1", "tcp-router-haproxy", f"http://{FRONT_ADDR}:{HAPROXY_TCP[1]}/files/1k", 2 * c, pids["haproxy"], servers=2)
        rows["TCP Router"] = (r["rate"], r["mean_ms"], r["errors"], "HAProxy tcp mode on its own namespace → srv1, srv2")
        for state in ("stateless", "stateful"):
            self.lab.up("--nodes", "2", "--backend", "dpdk", "--mode", "dpr-mac", "--state", state)
            r = self.measure("table1", f"shoal-dpr-mac-{state}", f"http://{VIP}/files/1k", 2 * c, "shoal", servers=2)
            label = "Stateless/Imbalanced" if state == "stateless" else "Stateful/Balanced"
            how = (
                "dpr-mac stateless, 2 servers: each inspector rewrites ~half (hash)"
                if state == "stateless"
                else "dpr-mac stateful, 2 servers under max_load: each serves what it inspects"
            )
            rows[label] = (r["rate"], r["mean_ms"], r["errors"], how)
        out = []
        for name, seed_rate, seed_ms in SEED_TABLE1:
            if name in rows:
                rate, mean, err, how = rows[name]
                out.append([name, seed_rate, seed_ms, round(rate), round(mean, 2), err, how])
            else:
                out.append([name, seed_rate, seed_ms, None, None, None,
                            "not reproducible on a broadcast segment: the inspector election spreads arrivals by hash, so no host receives them all"])
        order_seed = [r[0] for r in sorted(out, key=lambda r: r[1]) if r[3] is not None]
        order_lab = [r[0] for r in sorted(out, key=lambda r: r[3] if r[3] is not None else -1) if r[3] is not None]
        self.tables.append({
            "id": "table1",
            "title": "Seed 001 (DPR paper) Table 1 beside the lab: max GETs/s and mean latency",
            "columns": ["experiment", "seed GETs/s", "seed ms", "lab GETs/s", "lab mean ms", "lab errors", "how in the lab"],
            "rows": out,
            "note": (
                f"lab: 1 KiB GETs, one per connection, {c} connections per client, {self.duration} s; "
                "every server, the client and the proxy share the machine's CPUs, so 2 hosts cannot double 1 host here. "
                f"Ordering, slowest first — seed: {', '.join(order_seed)}; lab: {', '.join(order_lab)}."
            ),
        })

    def bench(self):
        """The dispatching path's own CPU per connection (benches/splice.rs:
        every frame of a connection through a 3-member cluster's pipelines,
        thread CPU time), beside what the lab and the proxies spent."""
        out = sh(
            ["cargo", "bench", "--locked", "-q", "-p", "shoal-perf", "--bench", "splice", "--",
             "--warm-up-time", "1", "--measurement-time", "3", "--noplot"],
            capture=True,
            timeout=900,
        )
        unit = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3}
        found = {}
        for m in re.finditer(r"splice_connection/(\w+)\s+time:\s+\[\S+ \S+ ([0-9.]+) (ns|µs|us|ms)", out):
            found[m.group(1)] = float(m.group(2)) * unit[m.group(3)]
        if set(found) != {"local", "handoff"}:
            raise BenchError(f"no splice bench figures in its output: {out[-600:]}")
        self.bench_us = found
        rows = [
            ["Shoal splice, local (pipeline CPU, bench)", round(found["local"], 2), "3 members' pipelines, thread CPU; no I/O"],
            ["Shoal splice, handed over (pipeline CPU, bench)", round(found["handoff"], 2), "3 members' pipelines, thread CPU; no I/O"],
        ]
        lab = [r for r in self.runs if r["suite"] == "l7-new" and r.get("cpu_per_1k_s") is not None]
        if lab:
            c = max(r["conns"] for r in lab if r["conns"] <= 128)
            for r in lab:
                if r["conns"] == c:
                    rows.append([
                        f"{r['path']} in the lab, {c} connections",
                        round(r["cpu_per_1k_s"] * 1000, 1),
                        r["cpu_what"] + (" (includes AF_PACKET system calls and time descheduled)" if r["path"].startswith("shoal") else " (user + system)"),
                    ])
        self.tables.append({
            "id": "cpu-per-connection",
            "title": "CPU per connection on the dispatching path (µs)",
            "columns": ["path", "µs per connection", "what is counted"],
            "rows": rows,
            "note": (
                "The bench is the dataplane's own work (perf/benches/splice.rs). In the lab every "
                "dataplane does its I/O through AF_PACKET system calls and shares 2 CPUs with 6 poll-mode "
                "workers, 3 nginx, the proxies and wrk, so its busy time is mostly not pipeline work; "
                "on a DPDK NIC the I/O is ~28 ns per frame (testpmd io, perf/README.md) x ~20 frames."
            ),
        })

    def dts(self):
        """The DTS scaling simulator (seed 002 §4.2): with its default
        inputs (the lab's busy time per connection as the inspection cost),
        and again with the pipeline costs the splice bench measured."""
        exe = os.path.join(TARGET, "release", "dts-sim")
        if not os.access(exe, os.X_OK):
            raise BenchError(f"{exe} missing (perf/run builds it)")
        variants = [("inputs from perf/README (lab busy time as inspection cost)", [])]
        if self.bench_us:
            inspect = self.bench_us["local"] * 1000
            receive = max(self.bench_us["handoff"] - self.bench_us["local"], 0) * 1000
            variants.append((
                "inspection and receiving costs from the splice bench of this run "
                f"(inspect = local connection {inspect / 1000:.1f} µs, receive = handoff - local {receive / 1000:.1f} µs)",
                ["--l7-inspect-ns", str(round(inspect)), "--l7-receive-ns", str(round(receive))],
            ))
        for i, (how, flags) in enumerate(variants):
            doc = json.loads(sh([exe, "--json", *flags], capture=True))
            cols = ["servers", "l4_multiple_x", "l7_single_x", "l7_multiple_x",
                    "l7_multiple_over_single", "max_share", "l4_check"]
            rows = [[round(r[k], 3) if isinstance(r[k], float) else r[k] for k in cols] for r in doc["rows"]]
            seed = doc.get("seed", {})
            self.tables.append({
                "id": f"dts-scaling-{i + 1}",
                "title": f"DTS scaling simulator ({how})",
                "columns": cols,
                "rows": rows,
                "note": (
                    f"seed 002 §4.2: 8 nodes, multiple inspectors ≈ {seed.get('seed_ratio', 3.4)}× single; "
                    f"here {seed.get('l7_ratio', float('nan')):.2f}× (L7). l4_check: N servers ≥ 0.9·N × one. "
                    "costs (ns): " + json.dumps(doc["inputs"]["costs"])
                ),
            })


def meta(args):
    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except FileNotFoundError:
            return ""

    cpu = re.search(r"Model name:\s*(.*)", out(["lscpu"]))
    commit = out(["git", "rev-parse", "--short", "HEAD"])
    if out(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += "+dirty"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "cpu": cpu.group(1).strip() if cpu else "unknown",
        "cpus": os.cpu_count(),
        "kernel": os.uname().release,
        "shared_with": args.shared_with,
        "duration_s": args.duration,
        "notes": [
            "lab: 3 servers (DPDK dataplanes, 2 workers each, net_af_packet on a flooding bridge), their nginx, "
            "the proxies (one process, one thread each) and wrk all share these CPUs",
            "cpu: Shoal = dataplane busy time (polls that found packets, all servers); proxy = process CPU",
            "IPVS, the natural DSR peer of the L4 modes, is not in this kernel (no ip_vs module)",
        ],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="results folder (created)")
    p.add_argument("--bin-dir", default=os.environ.get("SHOAL_BIN_DIR", os.path.join(TARGET, "release")))
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--concurrency", default="1,16,128,512")
    p.add_argument("--keepalive-concurrency", default="16,128")
    p.add_argument("--large-conns", type=int, default=16)
    p.add_argument("--large-duration", type=int, default=0, help="seconds per download run (default: max(2 x duration, 10))")
    p.add_argument("--l4-conns", type=int, default=128)
    p.add_argument("--table1-conns", type=int, default=64)
    p.add_argument("--suites", default="l7,l4,table1,bench,dts")
    p.add_argument("--no-profile", dest="profile", action="store_false", help="no perf record of the splice path")
    p.add_argument("--shared-with", default=os.environ.get("SHARED_WITH", "nothing declared (set SHARED_WITH)"))
    a = p.parse_args()
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    a.concurrency, a.keepalive_concurrency = ints(a.concurrency), ints(a.keepalive_concurrency)
    suites = a.suites.split(",")
    bench = Bench(a)
    doc = {"schema": 1, "meta": meta(a)}
    started = time.monotonic()
    try:
        for s in suites:
            if s not in ("l7", "l4", "table1", "bench", "dts"):
                raise BenchError(f"unknown suite '{s}' (l7, l4, table1, bench, dts)")
            getattr(bench, s)()
    finally:
        bench.lab.down()
    spreads = {
        path: (max(v) - min(v)) / statistics.median(v)
        for path, v in bench.repeats.items()
        if len(v) >= 2
    }
    doc["noise"] = {
        "rel": round(max(spreads.values()), 4) if spreads else 0.1,
        "how": (
            "the middle concurrency of l7-new run 3 times for "
            + ", ".join(f"{k} ({v * 100:.1f} %)" for k, v in spreads.items())
            + ": (max - min) / median of the rate"
            if spreads
            else "not measured (l7 suite not run): 10 % assumed"
        ),
    }
    doc["runs"] = bench.runs
    doc["tables"] = bench.tables
    doc["meta"]["wall_s"] = round(time.monotonic() - started)
    errors = sum(r["errors"] for r in bench.runs)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    log(f"{len(bench.runs)} runs in {doc['meta']['wall_s']} s; {errors} failed requests; {a.out}/results.json")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"perf/run: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
