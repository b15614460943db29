#!/usr/bin/env bash
# Keep-alive connections whose requests belong to different servers (issue
# 14, seed 004): requests/s and CPU per request, in one script run on the
# same lab set-up, for
#   1. Shoal splice with per-request dispatch (every request to the server
#      url-hash names; the connection moves between kernels: DTCP re-handoff),
#   2. Shoal splice dispatching only the first request of a connection
#      (`--first-request-only`: later requests stay where the first went),
#   3. nginx as a reverse proxy on srv1's own address doing the same
#      per-request routing (`hash $uri consistent` over the three servers,
#      keep-alive to them), the proxy any operator would put in front.
# wrk: CONNS keep-alive connections cycling over /id/1..30 (the lab's nginx
# answers "<server> <path> <port>"), DURATION seconds each. CPU: utime +
# stime from /proc of the dispatching path (the three dataplanes; the proxy)
# and of the three serving nginx, per request. The dataplanes poll (the
# lab's sleep 200 µs after an idle stretch), so their CPU includes polling.
# Also counted (access logs): requests not served by the server that served
# most requests for their path.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}
LAB=deploy/lab/lab
export SHOAL_BIN_DIR=${SHOAL_BIN_DIR:-$PWD/target/release}
for tool in wrk python3 nginx; do
    command -v "$tool" >/dev/null || { echo "perf/keepalive: $tool is missing (apt-get install wrk python3 nginx-light)" >&2; exit 1; }
done
for bin in shoal-dataplane shoal-control shoal-lab; do
    [ -x "$SHOAL_BIN_DIR/$bin" ] || { echo "perf/keepalive: $SHOAL_BIN_DIR/$bin missing (cargo build --release -p shoal-dataplane --features dpdk -p shoal-control -p shoal-lab)" >&2; exit 1; }
done
RUN=/run/shoal-lab
LUA=$(mktemp /tmp/shoal-keepalive-XXXXXX.lua)
OUT=$(mktemp -d /tmp/shoal-keepalive-XXXXXX)
cleanup() { $LAB down >/dev/null 2>&1 || true; rm -rf "$LUA" "$OUT"; }
trap cleanup EXIT
cat > "$LUA" <<'LUA'
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/id/" .. (i % 30 + 1))
end
LUA

# CPU seconds (utime + stime) of the processes whose pid files are given,
# and of their children.
cpu() {
    python3 - "$@" <<'PY'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
def pids(root):
    out = [root]
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1]) == root:
                    out.append(int(p))
            except OSError:
                pass
    return out
total = 0
for f in sys.argv[1:]:
    try:
        root = int(open(f).read().split()[0])
    except (OSError, ValueError):
        sys.exit(f"perf/keepalive: no pid in {f}")
    for p in pids(root):
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
print(total / tick)
PY
}

away() { # requests in the access logs after line marks $1 $2 $3 not on their path's server
    python3 - "$@" <<'PY'
import collections, re, sys
marks = [int(m) for m in sys.argv[1:4]]
by_path = collections.defaultdict(collections.Counter)
for s, mark in zip(["srv1", "srv2", "srv3"], marks):
    for line in open(f"/run/shoal-lab/{s}/access.log").read().splitlines()[mark:]:
        m = re.search(r'"GET /id/(\d+) ', line)
        if m:
            by_path[int(m.group(1))][s] += 1
total = sum(sum(c.values()) for c in by_path.values())
# A path's server: the one that served most of its requests (Shoal's
# url-hash and the proxy's hash $uri place paths differently).
away = sum(sum(c.values()) - max(c.values()) for c in by_path.values())
print(f"{away} {total}")
PY
}

marks() { for s in srv1 srv2 srv3; do wc -l < "$RUN/$s/access.log"; done | tr '\n' ' '; }

# One measured run: label, URL, pid files of the dispatching path.
measure() {
    local label=$1 url=$2; shift 2
    local m d0 n0 d1 n1 out rate reqs
    m=$(marks)
    d0=$(cpu "$@"); n0=$(cpu $RUN/srv1/nginx.pid $RUN/srv2/nginx.pid $RUN/srv3/nginx.pid)
    out=$($LAB client bash -c "ulimit -n 4096; wrk -t2 -c$CONNS -d${DURATION}s --timeout 10s -s $LUA $url 2>&1")
    d1=$(cpu "$@"); n1=$(cpu $RUN/srv1/nginx.pid $RUN/srv2/nginx.pid $RUN/srv3/nginx.pid)
    if ! grep -q "requests in" <<<"$out" || grep -q "Socket errors" <<<"$out"; then
        echo "perf/keepalive: $label: wrk failed:" >&2; echo "$out" >&2; exit 1
    fi
    rate=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    echo "$label|$rate|$reqs|$(python3 -c "print($d1-$d0, $n1-$n0)")|$(away $m)" >> "$OUT/rows"
}

$LAB down >/dev/null 2>&1 || true
$LAB up --nodes 3 --backend dpdk --mode splice >/dev/null 2>&1
DP="$RUN/srv1/dataplane.pid $RUN/srv2/dataplane.pid $RUN/srv3/dataplane.pid"
# shellcheck disable=SC2086
measure "Shoal splice, per-request dispatch (re-handoff)" http://198.18.0.100/ $DP

# nginx reverse proxy with the same per-request routing, on srv1.
conf=$RUN/proxy.conf
cat > "$conf" <<NGINX
worker_processes 1;
pid $RUN/proxy.pid;
error_log $RUN/proxy-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    upstream shoal {
        hash \$uri consistent;
        server 198.18.0.11:80; server 198.18.0.12:80; server 198.18.0.13:80;
        keepalive 64;
    }
    server {
        listen 198.18.0.11:8080;
        location / {
            proxy_pass http://shoal;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
NGINX
$LAB exec srv1 nginx -c "$conf"
measure "nginx reverse proxy, hash \$uri per request (srv1:8080)" http://198.18.0.11:8080/ $RUN/proxy.pid
$LAB exec srv1 sh -c "kill \$(cat $RUN/proxy.pid)"

$LAB down >/dev/null 2>&1 || true
$LAB up --nodes 3 --backend dpdk --mode splice --first-request-only >/dev/null 2>&1
# shellcheck disable=SC2086
measure "Shoal splice, first request only (no re-handoff)" http://198.18.0.100/ $DP

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores shared by the lab (3 dataplanes, 3 nginx, proxy, wrk)"
echo "wrk -t2 -c$CONNS -d${DURATION}s keep-alive over /id/1..30"
python3 - "$OUT/rows" <<'PY'
import sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1])]
print("| path | requests/s | dispatching path CPU µs/request | serving nginx CPU µs/request | requests not on their path's server |")
print("|---|---|---|---|---|")
for label, rate, reqs, cpu, away in rows:
    d, n = (float(x) for x in cpu.split())
    a, t = (int(x) for x in away.split())
    reqs = max(int(reqs), 1)
    print(f"| {label} | {float(rate):.0f} | {d / reqs * 1e6:.0f} | {n / reqs * 1e6:.0f} | {a} of {t} ({100 * a / max(t, 1):.0f} %) |")
PY
