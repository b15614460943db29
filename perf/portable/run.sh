#!/usr/bin/env bash
# The portable backend before and after batching, in one run: frames per
# syscall and Mpps of the wire port (AF_PACKET on a veth: per-frame poll +
# recvfrom/sendto as before vs one recvmmsg/sendmmsg per burst) and of the
# kernel port (TAP: one read/write per frame in both).
#
# Needs root. Creates the network namespace pbench-<pid> with a veth pair
# (pbv0 measured, pbv1 its peer; no addresses, IPv6 off), runs
# shoal-portable-bench in it and deletes it on exit, also on failure.
# Bounded: FRAMES frames x ROUNDS rounds per figure (each phase capped at
# 30 s, the whole bench at 300 s). Prints the CPU, the cores and what else
# ran on them. Method: perf/README.md, "Portable backend".
set -euo pipefail
cd "$(dirname "$0")/../.."
FRAMES=${FRAMES:-100000}
ROUNDS=${ROUNDS:-5}
FRAME_LEN=${FRAME_LEN:-60}

if [ "$(id -u)" != 0 ]; then
    echo "perf/portable/run.sh: needs root (network namespaces, AF_PACKET, TAP)" >&2
    exit 1
fi
. deploy/prereqs.sh
ensure_packages build-essential pkg-config iproute2 procps util-linux
ensure_rust
[ -c /dev/net/tun ] || { echo "perf/portable/run.sh: /dev/net/tun missing (modprobe tun)" >&2; exit 1; }

NS=pbench-$$
WORK=$(mktemp -d /tmp/pbench.XXXXXX)
TOP_PID=
cleanup() {
    [ -n "$TOP_PID" ] && kill "$TOP_PID" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building shoal-portable-bench (release)"
cargo build --release -q -p shoal-perf --bin shoal-portable-bench
BIN="${CARGO_TARGET_DIR:-target}/release/shoal-portable-bench"
[ -x "$BIN" ] || { echo "perf/portable/run.sh: $BIN not built" >&2; exit 1; }

ip netns add "$NS"
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$NS" link add pbv0 type veth peer name pbv1
ip -n "$NS" link set pbv0 up
ip -n "$NS" link set pbv1 up

echo "== machine"
echo "cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores online, kernel $(uname -r)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# What shares the cores while the bench runs: top's second sample (the
# first one averages since boot), bounded to 3 samples.
top -b -n 3 -d 2 -w 120 > "$WORK/top.txt" 2>/dev/null &
TOP_PID=$!

echo "== bench (namespace $NS)"
timeout 300 ip netns exec "$NS" "$BIN" pbv0 pbv1 pbtap0 "$FRAMES" "$ROUNDS" "$FRAME_LEN"

wait "$TOP_PID" 2>/dev/null || true
TOP_PID=
echo "== what else ran on the cores during the bench (top, 2 s sample)"
awk '/^top - /{n++} n==2' "$WORK/top.txt" | sed -n '1,3p;7,16p'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
