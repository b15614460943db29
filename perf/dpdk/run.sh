#!/usr/bin/env bash
# DPDK throughput: shoal-dataplane's full pipeline vs dpdk-testpmd io
# forwarding, on the same vdevs, in the same run.
#
# Both read the same capture in a loop from DPDK's pcap PMD (net_pcap,
# infinite_rx=1: frames served from memory) and transmit to net_null. The
# capture is 1000 short client connections to the VIP (gen-trace); with a
# one-member cluster, after the first pass every frame hits a flow and goes
# to the kernel port: parse, flow lookup, state tracking, forward.
# Prints Mpps of both and the ratio. Bounded: DURATION seconds each.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-6}
LCORES=${LCORES:-0,1}        # main lcore + forwarding lcore for testpmd
WORK=$(mktemp -d /tmp/shoal-dpdk-bench.XXXXXX)
PREFIX_T=shoal-bench-testpmd-$$
PREFIX_S=shoal-bench-shoal-$$
cleanup() { rm -rf "$WORK" "/var/run/dpdk/$PREFIX_T" "/var/run/dpdk/$PREFIX_S"; }
trap cleanup EXIT

CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo build --release -q -p shoal-dataplane --features dpdk
BIN=target/release/shoal-dataplane
$BIN gen-trace --config perf/dpdk/bench.toml --out "$WORK/trace.pcap" --connections 1000 --clients 100 2>/dev/null
PCAP_VDEV="net_pcap0,rx_pcap=$WORK/trace.pcap,infinite_rx=1"

# --- testpmd io forwarding: the ceiling -------------------------------------
timeout -s INT $((DURATION + 4)) dpdk-testpmd -l "$LCORES" --no-huge -m 512 --no-pci --file-prefix "$PREFIX_T" \
    --vdev "$PCAP_VDEV" --vdev net_null0 -- --total-num-mbufs=16384 --forward-mode=io \
    --stats-period 1 --port-topology=chained > "$WORK/testpmd.log" 2>&1 || true
# Port 0 (pcap) Rx-pps, ignoring the first sample (warm-up).
TESTPMD_PPS=$(grep -E "Rx-pps:" "$WORK/testpmd.log" | awk 'NR%2==1 {print $2}' | tail -n +2 | sort -n | tail -1)

# --- shoal-dataplane ---------------------------------------------------------
sed -e "s|^eal_args = \[\]|eal_args = [\"--file-prefix\", \"$PREFIX_S\"]|" perf/dpdk/bench.toml > "$WORK/bench.toml"
sed -i "s|^device = \"net_pcap0\"|device = \"$PCAP_VDEV\"|" "$WORK/bench.toml"
$BIN run --config "$WORK/bench.toml" --stats-file "$WORK/stats.json" --stats-interval 1 > "$WORK/shoal.log" 2>&1 &
PID=$!
sleep 2
S1=$(python3 -c "import json;d=json.load(open('$WORK/stats.json'));print(d['counters']['kernel_tx_packets'], d['uptime_s'])")
sleep "$DURATION"
S2=$(python3 -c "import json;d=json.load(open('$WORK/stats.json'));print(d['counters']['kernel_tx_packets'], d['uptime_s'])")
kill -TERM $PID; wait $PID || true
python3 - "$S1" "$S2" "${TESTPMD_PPS:-0}" "$WORK/stats.json" <<'PY'
import json, sys
p1, t1 = map(float, sys.argv[1].split()); p2, t2 = map(float, sys.argv[2].split())
shoal = (p2 - p1) / (t2 - t1) / 1e6
testpmd = float(sys.argv[3]) / 1e6
c = json.load(open(sys.argv[4]))["counters"]
print(f"testpmd io (pcap -> null):       {testpmd:6.2f} Mpps")
print(f"shoal-dataplane (full pipeline): {shoal:6.2f} Mpps  (flow_hit {c['flow_hit']}, drops {c['drop_malformed']} malformed)")
if testpmd > 0:
    print(f"ratio shoal / testpmd:           {shoal / testpmd:6.2f}")
PY
