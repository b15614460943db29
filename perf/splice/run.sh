#!/usr/bin/env bash
# New connections per second for small requests (one request per
# connection), measured in one lab run at several concurrencies: Shoal's
# splice mode on the VIP (SYN cookie, request read, URL dispatch, handover to
# the chosen server's kernel, translated flow) against nginx and HAProxy as
# reverse proxies (on srv1's own address, ports 8080 and 8081, round-robin
# to the same three nginx), same client, same wrk settings.
#
# Per run: connections/s, p50 and p99 latency (wrk --latency), and the CPU
# the dispatching path spent per 1000 connections: for a proxy, its
# processes' CPU time (/proc/PID/stat utime+stime) over the run; for Shoal,
# the time the three dataplanes' workers spent in polls that found packets
# (`busy_ns` in their stats files, `shoal_dataplane_busy_seconds_total`): a
# poll-mode worker takes its whole core whatever the load, so its process CPU
# time says nothing about the work. The dataplanes' process CPU is printed
# too. The back ends' nginx serve the same requests in every case and are
# not counted.
#
# Settings (environment):
#   DURATION=5               seconds per measurement
#   CONCURRENCY="1 16 128 512" wrk connections (-c), each a run of all three
#   SHARED_WITH=..           what else ran on the cores (printed)
# Installs haproxy (Debian) when missing; fails loudly on a missing tool or
# an empty figure. Bounded: every wrk run has -d and --timeout; the lab is
# taken down on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-5}
CONCURRENCY=${CONCURRENCY:-"1 16 128 512"}
SHARED_WITH=${SHARED_WITH:-"nothing declared (set SHARED_WITH)"}
LAB=deploy/lab/lab
die() {
    echo "perf/splice/run.sh: error: $*" >&2
    exit 1
}
if ! command -v haproxy >/dev/null; then
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
        || die "haproxy missing: install it (Debian: apt-get install -y haproxy) and rerun"
    echo "perf/splice/run.sh: installing haproxy (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >&2 || die "apt-get install haproxy failed"
    # The package starts a system-wide haproxy on *:80 in the root
    # namespace; the lab does not need it.
    command -v systemctl >/dev/null && systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
for t in nginx python3 lscpu; do command -v "$t" >/dev/null || die "$t missing"; done
CLK_TCK=$(getconf CLK_TCK)

export SHOAL_BIN_DIR=${SHOAL_BIN_DIR:-$PWD/target/release}
$LAB down >/dev/null 2>&1 || true
$LAB up --nodes 3 --backend dpdk --mode splice >/dev/null
RUN=/run/shoal-lab
trap '$LAB down >/dev/null 2>&1 || true' EXIT

cat >"$RUN/proxy.conf" <<NGINX
worker_processes 1;
pid $RUN/proxy.pid;
error_log $RUN/proxy-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    upstream shoal { server 198.18.0.11:80; server 198.18.0.12:80; server 198.18.0.13:80; }
    server {
        listen 198.18.0.11:8080 backlog=4096;
        location / { proxy_pass http://shoal; proxy_http_version 1.1; }
    }
}
NGINX
cat >"$RUN/haproxy.cfg" <<HAPROXY
global
    # 2 fds per proxied connection: 8000 stays under the lab's 20000 limit.
    maxconn 8000
    nbthread 1
    pidfile $RUN/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend f
    bind 198.18.0.11:8081
    default_backend b
backend b
    balance roundrobin
    server s1 198.18.0.11:80
    server s2 198.18.0.12:80
    server s3 198.18.0.13:80
HAPROXY
$LAB exec srv1 nginx -c "$RUN/proxy.conf"
$LAB exec srv1 haproxy -D -f "$RUN/haproxy.cfg"
sleep 0.5
[ -s "$RUN/proxy.pid" ] && [ -s "$RUN/haproxy.pid" ] || die "a proxy did not start (see $RUN/proxy-error.log)"

# CPU ticks (utime + stime) of the given PIDs and their children threads.
ticks() {
    local t=0 p
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || die "process $p is gone"
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
NGINX_PIDS=$(pgrep -P "$(cat "$RUN/proxy.pid")" | tr '\n' ' ')
NGINX_PIDS="$(cat "$RUN/proxy.pid") $NGINX_PIDS"
HAPROXY_PIDS=$(cat "$RUN/haproxy.pid")
DP_PIDS=$(cat "$RUN"/srv*/dataplane.pid | tr '\n' ' ')
# shellcheck disable=SC2086
{ [ -n "$DP_PIDS" ] && ticks $DP_PIDS >/dev/null; } || die "no dataplane pid files in $RUN"

# The dataplanes' busy time so far, nanoseconds (every worker of every
# server; the stats files are rewritten every interval).
busy_ns() {
    python3 - "$RUN" <<'PY'
import glob, json, sys
print(sum(w["busy_ns"] for f in glob.glob(sys.argv[1] + "/srv*/stats.json")
          for w in json.load(open(f))["workers"]))
PY
}
STATS_WAIT=1.2 # > one stats interval: the files hold the figures of the run
OUT=$(mktemp /tmp/shoal-splice-bench.XXXXXX)
# run NAME URL CONNS PIDS...: one wrk run; prints a result line. For
# Shoal the CPU is the dataplanes' busy time (PIDS: their processes, whose
# CPU time is printed beside it).
run() {
    local name=$1 url=$2 c=$3
    shift 3
    local t0 t1 b0=0 b1=0 out threads=2
    [ "$c" -lt 2 ] && threads=1
    if [ "$name" = shoal ]; then sleep "$STATS_WAIT"; b0=$(busy_ns); fi
    t0=$(ticks "$@")
    out=$($LAB client wrk -t"$threads" -c"$c" -d"${DURATION}s" --timeout 5s --latency \
        -H "Connection: close" "$url")
    t1=$(ticks "$@")
    if [ "$name" = shoal ]; then sleep "$STATS_WAIT"; b1=$(busy_ns); fi
    WRK_OUT=$out python3 - "$name" "$c" "$((t1 - t0))" "$CLK_TCK" "$DURATION" "$((b1 - b0))" <<'PY' \
        || die "no figures from wrk for $name at $c connections: $out"
import os, re, sys
name, c, ticks, hz, dur, busy = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
out = os.environ["WRK_OUT"]
rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
def lat(p):
    m = re.search(rf"\s{p}%\s+([0-9.]+)(us|ms|s)\b", out)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
bad = (int(errors.group(1)) if errors else 0) + (sum(map(int, sock.groups())) if sock else 0)
proc_cpu = ticks / hz
cpu = busy / 1e9 if name == "shoal" else proc_cpu
per_k = cpu / (rps * dur) * 1000 if rps > 0 else float("nan")
print(f"{name:8s} {c:5d} {rps:10.0f} {lat(50):9.2f} {lat(99):9.2f} {cpu:8.2f} {per_k:10.3f} {bad:6d} {proc_cpu:9.2f}")
PY
}

echo "splice vs proxies: new connections/s, one request each (/whoami), ${DURATION}s per run"
echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) CPUs; shared with: $SHARED_WITH"
echo "three lab servers (DPDK dataplanes, 2 workers each, net_af_packet), their nginx, the proxies and wrk share these CPUs"
echo "cpu_s: shoal = dataplane busy time (polls that found packets), proxies = process CPU; proc_cpu_s = process CPU of what cpu_s measures"
printf '%-8s %5s %10s %9s %9s %8s %10s %6s %9s\n' path conns conn/s p50_ms p99_ms cpu_s cpu_s/1k errors proc_cpu_s | tee "$OUT"
for c in $CONCURRENCY; do
    # shellcheck disable=SC2086
    run shoal http://198.18.0.100/whoami "$c" $DP_PIDS | tee -a "$OUT"
    # shellcheck disable=SC2086
    run nginx http://198.18.0.11:8080/whoami "$c" $NGINX_PIDS | tee -a "$OUT"
    run haproxy http://198.18.0.11:8081/whoami "$c" $HAPROXY_PIDS | tee -a "$OUT"
done
python3 - "$OUT" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
by = {(r[0], r[1]): r for r in rows}
print("ratios (shoal / proxy), connections/s and CPU per 1000 connections:")
for c in sorted({r[1] for r in rows}, key=int):
    s = by[("shoal", c)]
    for p in ("nginx", "haproxy"):
        q = by[(p, c)]
        print(f"  {c:>4} conns: vs {p:7s} conn/s x{float(s[2]) / float(q[2]):.2f}, CPU/1k x{float(s[6]) / float(q[6]):.2f}")
bad = sum(int(r[7]) for r in rows)
if bad:
    print(f"WARNING: {bad} failed requests in total (see the errors column)")
PY
rm -f "$OUT"
$LAB exec srv1 sh -c "kill \$(cat $RUN/proxy.pid) \$(cat $RUN/haproxy.pid)"
