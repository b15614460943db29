#!/usr/bin/env bash
# DPDK throughput: shoal-dataplane's full pipeline vs dpdk-testpmd io
# forwarding, on the same vdevs and lcores, in the same run.
#
# Both read the same capture in a loop from DPDK's pcap PMD (net_pcap,
# infinite_rx=1: frames served from memory) and transmit to net_null (with
# no-rx=1: the kernel port sends nothing back). The capture is 1000 client
# connections to the VIP (gen-trace, TRACE below); with a one-member
# cluster, after the first pass every frame hits a flow and goes to the
# kernel port: parse, flow lookup, state tracking, forward.
#
# Settings (environment):
#   DURATION=6     seconds measured per forwarder and run
#   RUNS=1         measurements of both, alternating (repeat when noisy)
#   WORKERS=1      forwarding lcores: 1, or N > 1 for Shoal with N workers
#                  (dataplane.cores) vs testpmd --nb-cores=N --rxq=N --txq=N;
#                  the pcap vdev then has N rx queues, one capture each, the
#                  frames split by Shoal's owner function (gen-trace --split),
#                  as an RSS table programmed to match it would deliver them
#   TRACE=established  established: 500 connections opened once, then 16
#                  rounds of pure ACKs (9 100 frames: net_pcap's infinite_rx
#                  preloads the whole capture into the port's mbuf pool, so
#                  it must stay well under the 16 384 mbufs); the capture's
#                  SYNs come again once per pass as retransmissions of the
#                  flows' own SYNs (5.5 % of frames): forwarding of
#                  established flows. churn: 1000 short connections, SYN
#                  to FIN, so every pass closes and re-creates every flow
#                  (the only trace before 2026-12-04 evening)
#   TESTPMD_MODE=io  testpmd's forwarding mode: io (the ceiling: touches no
#                  packet byte), or macswap / 5tswap (read and rewrite the
#                  headers, closer to what a forwarder does per packet)
#   SHARED_WITH=.. what else ran on the machine's cores (printed with every
#                  figure; the script also prints the load and busiest processes)
#
# Installs what it lacks (Debian/Ubuntu, as root: dpdk-dev for dpdk-testpmd,
# libdpdk-dev and pkg-config to build, python3, util-linux for lscpu) and
# fails with a message, never silently, when a tool is missing or a
# measurement comes out empty. Bounded: every process runs under `timeout`.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-6}
RUNS=${RUNS:-1}
WORKERS=${WORKERS:-1}
TRACE=${TRACE:-established}
TESTPMD_MODE=${TESTPMD_MODE:-io}
SHARED_WITH=${SHARED_WITH:-"nothing declared (set SHARED_WITH)"}

die() {
    echo "perf/dpdk/run.sh: error: $*" >&2
    exit 1
}

# install PACKAGE...: apt-get install, or fail naming the packages.
install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "perf/dpdk/run.sh: installing $* (apt-get)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 \
            || die "apt-get install -y $* failed (try apt-get update first)"
    else
        die "missing $*: install it (Debian/Ubuntu: apt-get install -y $*) and rerun"
    fi
}

# need COMMAND PACKAGE: the command, installing its package when missing.
need() {
    command -v "$1" >/dev/null || install "$2"
    command -v "$1" >/dev/null || die "'$1' still missing after installing $2"
}

need dpdk-testpmd dpdk-dev # Debian ships testpmd in dpdk-dev, not dpdk
need pkg-config pkg-config
pkg-config --exists libdpdk || install libdpdk-dev
pkg-config --exists libdpdk || die "pkg-config finds no libdpdk after installing libdpdk-dev"
need python3 python3
need lscpu util-linux
need timeout coreutils
command -v cargo >/dev/null || die "cargo missing: install Rust (https://rustup.rs) and rerun"
case "$TESTPMD_MODE" in
io | macswap | 5tswap) ;;
*) die "TESTPMD_MODE must be io, macswap or 5tswap (got '$TESTPMD_MODE')" ;;
esac
case "$TRACE" in
established) TRACE_ARGS=(--connections 500 --established 16) ;;
churn) TRACE_ARGS=(--connections 1000) ;;
*) die "TRACE must be 'established' or 'churn' (got '$TRACE')" ;;
esac
case "$WORKERS" in
'' | *[!0-9]* | 0) die "WORKERS must be a positive integer (got '$WORKERS')" ;;
esac

CPU_MODEL=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
NCPU=$(nproc)
[ -n "$CPU_MODEL" ] || CPU_MODEL="unknown CPU (lscpu gave no model name)"
[ "$WORKERS" -le "$NCPU" ] || die "WORKERS=$WORKERS forwarding lcores on $NCPU CPUs"
MACHINE="$CPU_MODEL, $NCPU CPUs; shared with: $SHARED_WITH"

WORK=$(mktemp -d /tmp/shoal-dpdk-bench.XXXXXX)
PREFIX_T=shoal-bench-testpmd-$$
PREFIX_S=shoal-bench-shoal-$$
SHOAL_PID=
cleanup() {
    if [ -n "$SHOAL_PID" ]; then kill -TERM "$SHOAL_PID" 2>/dev/null || true; fi
    rm -rf "$WORK" "/var/run/dpdk/$PREFIX_T" "/var/run/dpdk/$PREFIX_S"
}
trap cleanup EXIT

export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
cargo build --release -q -p shoal-dataplane --features dpdk || die "cargo build of shoal-dataplane (dpdk) failed"
BIN=${CARGO_TARGET_DIR:-target}/release/shoal-dataplane
[ -x "$BIN" ] || die "$BIN not built"
SPLIT=()
[ "$WORKERS" -gt 1 ] && SPLIT=(--split "$WORKERS")
"$BIN" gen-trace --config perf/dpdk/bench.toml --out "$WORK/trace.pcap" --clients 100 \
    "${SPLIT[@]}" "${TRACE_ARGS[@]}" 2>"$WORK/gen.log" || { cat "$WORK/gen.log" >&2; die "gen-trace failed"; }

# Lcores, the same for both: main lcore 0 (testpmd's does no forwarding;
# Shoal's `main_core = 0` only housekeeps) + forwarding lcores 1..N (Shoal
# `cores = [1..N]`). When the machine has only N CPUs, testpmd's (idle) main
# lcore shares CPU 0 with its first forwarding lcore and Shoal's workers run
# on cores 0..N-1, worker 0 on the main lcore (no `main_core`).
PCAP_VDEV="net_pcap0"
if [ "$WORKERS" -eq 1 ]; then
    PCAP_VDEV+=",rx_pcap=$WORK/trace.pcap"
else
    for ((q = 0; q < WORKERS; q++)); do
        [ -s "$WORK/trace.pcap.q$q.pcap" ] || die "queue $q's capture is empty: $(cat "$WORK/gen.log")"
        PCAP_VDEV+=",rx_pcap=$WORK/trace.pcap.q$q.pcap"
    done
fi
PCAP_VDEV+=",infinite_rx=1"
NULL_VDEV="net_null0,no-rx=1"
if [ "$WORKERS" -lt "$NCPU" ]; then
    TESTPMD_LCORES=(-l "0-$WORKERS")
    SHOAL_CORES=$(seq -s, 1 "$WORKERS")
    MAIN_CORE='\nmain_core = 0' # GNU sed: \n in the replacement is a newline
else
    MAIN_CORE=""
    map="0@0"
    for ((l = 1; l <= WORKERS; l++)); do map+=",$l@$((l - 1))"; done
    TESTPMD_LCORES=(--lcores "$map")
    SHOAL_CORES=$(seq -s, 0 $((WORKERS - 1)))
fi
QUEUES=()
[ "$WORKERS" -gt 1 ] && QUEUES=(--nb-cores="$WORKERS" --rxq="$WORKERS" --txq="$WORKERS")

sed -e "s|^eal_args = \[\]|eal_args = [\"--file-prefix\", \"$PREFIX_S\"]|" \
    -e "s|^device = \"net_pcap0\"|device = \"$PCAP_VDEV\"|" \
    -e "s|^device = \"net_null0\"|device = \"$NULL_VDEV\"|" \
    -e "s|^cores = \[1\]|cores = [$SHOAL_CORES]$MAIN_CORE|" perf/dpdk/bench.toml >"$WORK/bench.toml"
grep -q "$PREFIX_S" "$WORK/bench.toml" && grep -q "cores = \[$SHOAL_CORES\]" "$WORK/bench.toml" \
    && grep -q '^shm_path = "/dev/null/' "$WORK/bench.toml" \
    && { [ -z "$MAIN_CORE" ] || grep -q '^main_core = 0$' "$WORK/bench.toml"; } \
    || die "perf/dpdk/bench.toml no longer has the lines this script edits (eal_args, device, cores) or its control-less shm_path"

# What shares the cores right now (printed with the figures).
context() {
    echo "  machine: $MACHINE"
    echo "  load average before: $(cut -d' ' -f1-3 /proc/loadavg); busiest other processes (%CPU):" \
        "$(ps -eo pcpu=,comm= --sort=-pcpu | head -4 | awk '{printf "%s %s%%; ", $2, $1}')"
}

# testpmd io forwarding: the ceiling. Sets TESTPMD_PPS: the port-0 Rx-pps
# (all queues), the best of the samples after the first (warm-up).
run_testpmd() {
    local log="$WORK/testpmd.$1.log"
    timeout -s INT $((DURATION + 4)) dpdk-testpmd "${TESTPMD_LCORES[@]}" --no-huge -m 512 --no-pci \
        --file-prefix "$PREFIX_T" --vdev "$PCAP_VDEV" --vdev "$NULL_VDEV" -- \
        --total-num-mbufs=16384 --forward-mode="$TESTPMD_MODE" "${QUEUES[@]}" \
        --stats-period 1 --port-topology=chained >"$log" 2>&1 || true
    local pps
    pps=$(awk '/NIC statistics for port 0/ {p=1} /NIC statistics for port 1/ {p=0}
               p && /Rx-pps:/ {print $2}' "$log" | tail -n +2 | sort -n | tail -1)
    if [ -z "$pps" ] || [ "$pps" = 0 ]; then
        echo "---- testpmd log (tail) ----" >&2
        tail -30 "$log" >&2
        die "testpmd gave no Rx-pps figure for port 0 (log above)"
    fi
    TESTPMD_PPS=$pps
}

# shoal-dataplane run: sets SHOAL_PPS, the packets delivered to the kernel
# port per second over DURATION, from the stats file (all workers summed).
read_stats() {
    python3 -c "import json,sys
d=json.load(open(sys.argv[1]))
print(d['counters']['kernel_tx_packets'], d['uptime_s'])" "$WORK/stats.json"
}
run_shoal() {
    local log="$WORK/shoal.$1.log"
    rm -f "$WORK/stats.json"
    timeout -s TERM $((DURATION + 20)) "$BIN" run --config "$WORK/bench.toml" --stats-file "$WORK/stats.json" \
        --stats-interval 1 >"$log" 2>&1 &
    SHOAL_PID=$!
    local i
    for ((i = 0; i < 50; i++)); do
        [ -s "$WORK/stats.json" ] && break
        kill -0 "$SHOAL_PID" 2>/dev/null || break
        sleep 0.2
    done
    if [ ! -s "$WORK/stats.json" ]; then
        tail -30 "$log" >&2
        die "shoal-dataplane wrote no stats file within 10 s (log above)"
    fi
    sleep 2 # warm-up: the first pass creates the flows
    local s1 s2
    s1=$(read_stats) || die "unreadable stats file"
    sleep "$DURATION"
    s2=$(read_stats) || die "unreadable stats file"
    kill -TERM "$SHOAL_PID"
    wait "$SHOAL_PID" || true
    grep -q "UNFENCED" "$log" || { tail -30 "$log" >&2; die "shoal-dataplane ran fenced behind a control lease: it answers no SYN without control (log above)"; }
    SHOAL_PID=
    SHOAL_PPS=$(python3 - "$s1" "$s2" <<'PY'
import sys
p1, t1 = map(float, sys.argv[1].split()); p2, t2 = map(float, sys.argv[2].split())
if t2 <= t1 or p2 <= p1:
    sys.exit(1)
print(f"{(p2 - p1) / (t2 - t1):.0f}")
PY
    ) || { tail -30 "$log" >&2; die "shoal-dataplane forwarded nothing over ${DURATION}s (log above)"; }
}

echo "DPDK forwarding, $WORKERS forwarding lcore(s), $TRACE trace, pcap -> null, ${DURATION}s per measurement, $RUNS run(s)"
context
RATIOS=()
for ((run = 1; run <= RUNS; run++)); do
    run_testpmd "$run"
    run_shoal "$run"
    t=$TESTPMD_PPS s=$SHOAL_PPS
    r=$(python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$s" "$t")
    RATIOS+=("$r")
    printf "run %d: testpmd $TESTPMD_MODE %6.2f Mpps | shoal-dataplane (%d worker(s), full pipeline) %6.2f Mpps | ratio %s\n" \
        "$run" "$(python3 -c "print($t / 1e6)")" "$WORKERS" "$(python3 -c "print($s / 1e6)")" "$r"
done
python3 - "${RATIOS[@]}" <<'PY'
import statistics, sys
r = sorted(map(float, sys.argv[1:]))
print(f"ratio shoal / testpmd: median {statistics.median(r):.2f} (min {r[0]:.2f}, max {r[-1]:.2f}) over {len(r)} run(s)")
PY
context
