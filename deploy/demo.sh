#!/usr/bin/env bash
# The README's demo, on a fresh Debian 12 as root. Usage: deploy/demo.sh [--keep]
# 1. build Shoal (with DPDK), generate client traffic toward the VIP of a
#    3-member cluster, replay it through the real pipeline as each member and
#    show that every connection is taken by exactly one member;
# 2. the lab, L4 (`local` mode): 3 servers in network namespaces on one
#    broadcast hub, shoal-dataplane on DPDK, shoal-control, nginx; real HTTP
#    requests from the client namespace and which server answered each;
# 3. a failover under load: a server is killed (dataplane, control, nginx)
#    while a client keeps connecting; every request still succeeds;
# 4. the lab, L7 (`splice` mode): requests for different paths land on all
#    three servers (URL hashing), each answered directly by its server;
# 5. what a real Prometheus scraped from the three members, as PromQL
#    answers per server.
# Without --keep it tears everything down and leaves nothing behind but the
# build in ./target; with --keep the splice lab and Prometheus stay up and it
# prints how to reach them and `shoalctl top`.
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=0
case "${1:-}" in
--keep) KEEP=1 ;;
"") ;;
*) echo "usage: deploy/demo.sh [--keep]" >&2 && exit 2 ;;
esac

. deploy/prereqs.sh
ensure_packages build-essential pkg-config python3 curl ca-certificates clang libclang-dev libdpdk-dev dpdk \
    iproute2 ethtool nginx-light wrk openssl procps util-linux prometheus
ensure_rust

T0=$SECONDS
echo "== building shoal-dataplane and shoal-control (release)"
cargo build --release --locked -q -p shoal-dataplane --features dpdk
cargo build --release --locked -q -p shoal-control
BIN=target/release
CONFIG=deploy/examples/replay.toml
WORK=$(mktemp -d /tmp/shoal-demo.XXXXXX)
PROM_PID_FILE=/run/shoal-demo-prometheus.pid
VIP=198.18.0.100

stop_prometheus() {
    local pid
    [ -s "$PROM_PID_FILE" ] || return 0
    pid=$(cat "$PROM_PID_FILE")
    # Ours only: the pid file names the process this script started.
    if [ -d "/proc/$pid" ] && grep -q prometheus "/proc/$pid/comm" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    fi
    rm -f "$PROM_PID_FILE"
}
cleanup() {
    if [ "$KEEP" = 1 ]; then return; fi
    stop_prometheus
    deploy/lab/lab down >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------- 1. replay
$BIN/shoalctl check-config "$CONFIG"
CONNS=300
$BIN/shoal-dataplane gen-trace --config "$CONFIG" --out "$WORK/clients.pcap" --connections $CONNS --clients 30
for m in srv1 srv2 srv3; do
    $BIN/shoal-dataplane replay --config "$CONFIG" --member $m --in "$WORK/clients.pcap" \
        --out "$WORK/$m-wire.pcap" --kernel-out "$WORK/$m-kernel.pcap" >"$WORK/$m.json"
done

python3 - "$WORK" "$CONNS" <<'PY'
import json, sys
work, conns = sys.argv[1], int(sys.argv[2])
print()
print("Every server sees every client frame; the ring hash picks one inspector per connection.")
print(f"{'member':8} {'SYNs taken':>10} {'left to others':>15} {'frames to kernel':>17} {'ARP replies':>12} {'dropped silently':>17}")
total = 0
for m in ("srv1", "srv2", "srv3"):
    c = json.load(open(f"{work}/{m}.json"))["counters"]
    total += c["syn_accepted"]
    print(f"{m:8} {c['syn_accepted']:>10} {c['syn_other_inspector']:>15} {c['kernel_tx_packets']:>17}"
          f" {c['arp_vip_replied']:>12} {c['vip_no_flow']:>17}")
print()
if total != conns:
    sys.exit(f"FAILED: {total} connections accepted in total, expected exactly {conns}")
print(f"OK: all {conns} connections were accepted by exactly one member.")
PY

# ---------------------------------------------------------------- 2. L4 lab
echo
echo "== the lab, L4: 3 servers, one VIP, shoal-dataplane on DPDK (net_af_packet + net_tap)"
export SHOAL_BIN_DIR="$PWD/$BIN"
deploy/lab/lab up --nodes 3 --backend dpdk --mode local
deploy/lab/lab status
echo
echo "== 30 requests from the client (one connection each) to http://$VIP"
deploy/lab/lab client bash -c '
  for i in $(seq 1 30); do
    curl -s -m 10 -H "Connection: close" -o /dev/null -w "%header{x-served-by}\n" http://'$VIP'/whoami
  done | sort | uniq -c | sed "s/^/   /"
  sum=$(curl -s -m 30 http://'$VIP'/files/8m | sha256sum | cut -d" " -f1)
  echo "   /files/8m through the VIP: sha256 $sum"'
echo "   (status above lists the expected sha256)"

# ---------------------------------------------------------------- 3. failover
echo
echo "== failover under load: 300 requests (5 s timeout each) while srv3 is killed"
deploy/lab/lab client bash -c '
  for i in $(seq 1 300); do
    curl -s -m 5 -H "Connection: close" -o /dev/null -w "%{http_code} %header{x-served-by}\n" http://'$VIP'/whoami \
      || echo "failed"
  done' >"$WORK/failover.txt" &
LOAD=$!
sleep 2
deploy/lab/lab kill srv3
echo "   srv3 killed (dataplane, control and nginx) at $(date +%T)"
wait "$LOAD"
python3 - "$WORK/failover.txt" <<'PY'
import collections, sys
lines = [l.split() for l in open(sys.argv[1]) if l.strip()]
ok = [l for l in lines if l[0] == "200"]
failed = len(lines) - len(ok)
by = collections.Counter(l[1] for l in ok if len(l) > 1)
print(f"   {len(ok)} of {len(lines)} requests answered 200, {failed} failed; served by "
      + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))
if len(lines) != 300 or failed:
    sys.exit("FAILED: a request was lost in the failover")
print("   OK: no request lost; srv1 and srv2 took srv3's share once it stopped answering")
PY
deploy/lab/lab down

# ---------------------------------------------------------------- 4. splice lab
echo
echo "== the lab, L7: splice mode (the inspector reads the request, hands the connection"
echo "   to the server its URL hashes to; that server answers the client directly)"
deploy/lab/lab up --nodes 3 --backend dpdk --mode splice
deploy/lab/lab client bash -c '
  for p in /whoami /files/1k /files/1m /a /b /c /d /e /f /g /h /i /j /k; do
    printf "   %-10s -> %s\n" "$p" "$(curl -s -m 10 -H "Connection: close" -o /dev/null -w "%{http_code} %header{x-served-by}" http://'$VIP'$p)"
  done' | tee "$WORK/splice.txt"
python3 - "$WORK/splice.txt" <<'PY'
import sys
servers = {l.split()[-1] for l in open(sys.argv[1]) if l.strip()}
print(f"   paths landed on: {', '.join(sorted(servers))}")
if servers != {"srv1", "srv2", "srv3"}:
    sys.exit("FAILED: expected the paths to land on all three servers")
PY

# ---------------------------------------------------------------- 5. Prometheus
echo
echo "== Prometheus (real, in the client namespace) scraping the three members' /metrics"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: shoal
    static_configs:
      - targets: ["198.18.0.11:9464"]
        labels: {member: srv1}
      - targets: ["198.18.0.12:9464"]
        labels: {member: srv2}
      - targets: ["198.18.0.13:9464"]
        labels: {member: srv3}
EOF
stop_prometheus
ip netns exec shoal-client prometheus --config.file="$WORK/prometheus.yml" \
    --storage.tsdb.path="$WORK/prometheus-data" --web.listen-address=127.0.0.1:9090 \
    >"$WORK/prometheus.log" 2>&1 &
echo $! >"$PROM_PID_FILE"
query() {
    deploy/lab/lab client curl -s -m 5 --get http://127.0.0.1:9090/api/v1/query --data-urlencode "query=$1"
}
up=0
for _ in $(seq 1 60); do
    up=$(query 'sum(up{job="shoal"})' 2>/dev/null | python3 -c 'import json,sys
try: print(int(float(json.load(sys.stdin)["data"]["result"][0]["value"][1])))
except Exception: print(0)')
    [ "$up" = 3 ] && break
    sleep 0.5
done
[ "$up" = 3 ] || { echo "FAILED: Prometheus does not see 3 members up (log: $WORK/prometheus.log)"; exit 1; }
# A little more traffic, then let two scrapes happen.
deploy/lab/lab client bash -c 'for i in $(seq 1 30); do curl -s -m 5 -o /dev/null http://'$VIP'/p$i; done'
sleep 2.5
show() {
    local title=$1 q=$2
    echo "   $title"
    echo "     PromQL: $q"
    query "$q" | python3 -c 'import json,sys
r = json.load(sys.stdin)["data"]["result"]
for s in sorted(r, key=lambda s: s["metric"].get("member", "")):
    member, value = s["metric"].get("member", "?"), float(s["value"][1])
    print(f"     {member:6} {value:>10.0f}")
if len(r) != 3: sys.exit(f"FAILED: expected an answer per member, got {len(r)}")'
}
show "frames received on the wire, per server" \
    'sum by (member) (shoal_dataplane_packets_total{port="wire",direction="rx"})'
show "connections each server answered with a SYN cookie (it was the inspector)" \
    'sum by (member) (shoal_dataplane_events_total{event="splice_cookie_sent"}) or sum by (member) (shoal_dataplane_selections_total{outcome="syn_accepted"})'
show "connections each server's kernel took over (spliced here)" \
    'sum by (member) (shoal_dataplane_events_total{event="splice_spliced"})'
echo
echo "== shoalctl top --once, from srv1 (the live view; without --once it refreshes every second)"
deploy/lab/lab exec srv1 "$PWD/$BIN/shoalctl" top --once --width 150 | sed 's/^/   /'

echo
echo "== demo done in $((SECONDS - T0)) s"
if [ "$KEEP" = 1 ]; then
    cat <<EOF

The splice lab and Prometheus are still up (--keep):
  live view of the cluster:  sudo deploy/lab/lab exec srv1 $PWD/$BIN/shoalctl top      (q quits)
  Prometheus query:          sudo deploy/lab/lab client curl -s 'http://127.0.0.1:9090/api/v1/query?query=up'
  Prometheus web UI:         sudo ip netns exec shoal-client curl -s http://127.0.0.1:9090/graph (inside shoal-client)
  requests:                  sudo deploy/lab/lab client curl -s http://$VIP/whoami
When done:                   sudo kill \$(cat $PROM_PID_FILE); sudo deploy/lab/lab down; rm -rf $WORK
EOF
fi
